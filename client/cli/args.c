/* args.c - a command's options and operands, and JSON arguments.
 *
 * Not getopt: getopt takes "-7" for an option, and `forq submit is_prime -7` must submit -7.
 * Commands have long options only (besides -h), matched by their whole name, in any place
 * among the operands. JSON arguments may be written on the command line, or come from stdin
 * ("-") or a file ("@FILE") - a 70 MB argument does not fit on a command line (ARG_MAX). */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void args_init(args_t *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    a->argc = argc;
    a->argv = argv;
    a->i = 1;
    a->cmd = argv[0];
}

/* "-7", "-0.5", "-1e3", "-.5": a number, so an operand. */
static bool is_negative_number(const char *s)
{
    char *end;
    if (s[0] != '-' || !(s[1] == '.' || (s[1] >= '0' && s[1] <= '9')))
        return false;
    errno = 0;
    (void)strtod(s, &end);
    return *end == '\0';
}

int args_next(args_t *a, const opt_t *opts)
{
    if (a->i >= a->argc)
        return ARGS_END;
    const char *s = a->argv[a->i++];
    if (a->operands || s[0] != '-' || s[1] == '\0' || is_negative_number(s)) {
        a->val = s;
        return ARGS_OPERAND;
    }
    if (strcmp(s, "--") == 0) {
        a->operands = true;
        return args_next(a, opts);
    }
    if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
        a->rc = help_print(a->cmd);
        return ARGS_STOP;
    }
    if (s[1] != '-') {
        a->rc = cmd_usage_error(a->cmd, "%s has no option '%s' (its options are long: --name)",
                                a->cmd, s);
        return ARGS_STOP;
    }
    const char *name = s + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    for (const opt_t *o = opts; o && o->name; o++) {
        if (strlen(o->name) != len || strncmp(o->name, name, len) != 0)
            continue;
        if (!o->has_arg) {
            if (eq) {
                a->rc = cmd_usage_error(a->cmd, "--%s takes no value", o->name);
                return ARGS_STOP;
            }
            a->val = NULL;
        } else if (eq) {
            a->val = eq + 1;
        } else if (a->i < a->argc) {
            a->val = a->argv[a->i++];
        } else {
            a->rc = cmd_usage_error(a->cmd, "--%s needs a value", o->name);
            return ARGS_STOP;
        }
        return o->id;
    }
    a->rc = cmd_usage_error(a->cmd, "%s has no option '%.*s'", a->cmd, (int)(len + 2), s);
    return ARGS_STOP;
}

/* ---- JSON arguments ---- */

void json_error_words(const char *where, const json_error_t *e, char *buf, size_t size)
{
    static const char too_big[] = "too big integer";
    const char *near = strstr(e->text, "near '");

    if (strncmp(e->text, too_big, sizeof(too_big) - 1) == 0) {
        /* nothing to do with quoting: say what the limit is */
        int n = near ? (int)strcspn(near + 6, "'") : 0;
        snprintf(buf, size,
                 "%s: the integer %.*s is too big: integers go from -9223372036854775808 to "
                 "9223372036854775807 (write a bigger one as a float, e.g. 1e20, or a string)",
                 where, n > 60 ? 60 : n, near ? near + 6 : "");
    } else if (strncmp(e->text, "invalid token", 13) == 0) {
        /* most often a bare word the shell passed unquoted */
        snprintf(buf, size, "%s is not JSON (%s); quote strings, e.g. '[\"text\"]'", where,
                 e->text);
    } else if (e->line > 1) {
        snprintf(buf, size, "%s is not JSON (line %d, column %d: %s)", where, e->line, e->column,
                 e->text);
    } else {
        snprintf(buf, size, "%s is not JSON (%s)", where, e->text);
    }
}

json_t *json_argument(const char *what, const char *text)
{
    json_error_t jerr;
    json_t *j;
    char where[300], words[600];

    if (strcmp(text, "-") == 0) {
        j = json_loadf(stdin, JSON_DECODE_ANY, &jerr);
        snprintf(where, sizeof(where), "%s from stdin", what);
    } else if (text[0] == '@') {
        FILE *f = fopen(text + 1, "r");
        if (!f) {
            fprintf(stderr, "forq: cannot read %s from %s: %s\n", what, text + 1, strerror(errno));
            return NULL;
        }
        j = json_loadf(f, JSON_DECODE_ANY, &jerr);
        fclose(f);
        snprintf(where, sizeof(where), "%s in %s", what, text + 1);
    } else {
        j = json_loads(text, JSON_DECODE_ANY, &jerr);
        snprintf(where, sizeof(where), "%s", what);
    }
    if (!j) {
        json_error_words(where, &jerr, words, sizeof(words));
        fprintf(stderr, "forq: %s\n", words);
    }
    return j;
}

int json_argument_msgpack(const char *what, const char *text, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    char err[256];
    json_t *j = json_argument(what, text);
    int r;

    if (!j)
        return -1;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    r = json_to_msgpack(j, &pk, err, sizeof(err));
    json_decref(j);
    if (r < 0)
        fprintf(stderr, "forq: %s: %s\n", what, err);
    return r;
}
