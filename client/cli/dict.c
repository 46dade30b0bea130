/* dict.c - `forq dict`: one dict operation per call, values as JSON (also from stdin or a
 * file), and the listing operations (keys, items, dump) paged through forq_dict_page, and list
 * (the dicts with their key counts) through forq_dict_list. */
#define _GNU_SOURCE
#include "cli.h"
#include "ops.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Exit code and message of a failed dict call. */
static int dict_exit(forq_err_t e, const char *op, const char *name, const char *key)
{
    const char *detail = forq_errdetail();

    /* incr's refusals, in words: they are about the stored value, not about the command line */
    if (strncmp(detail, "not_integer:", 12) == 0) {
        fprintf(stderr,
                "forq: the value of '%s' in dict '%s' is not an integer, so incr cannot add to it "
                "(forq dict get %s %s shows it)\n",
                key, name, name, key);
        return EXIT_NOT_INTEGER;
    }
    if (strncmp(detail, "overflow:", 9) == 0) {
        fprintf(stderr,
                "forq: incr of '%s' in dict '%s' would go beyond a 64-bit integer "
                "(-9223372036854775808 to 9223372036854775807); nothing was changed\n",
                key, name);
        return EXIT_NOT_INTEGER;
    }
    (void)op;
    fprintf(stderr, "forq: %s\n", detail);
    switch (e) {
    case FORQ_ERR_NOT_FOUND:
        return EXIT_NOT_FOUND;
    case FORQ_ERR_CONFLICT:
        return EXIT_CONFLICT;
    case FORQ_ERR_FULL:
        return EXIT_FULL;
    case FORQ_ERR_INVALID:
        return EXIT_USAGE;
    case FORQ_ERR_TIMEOUT:
        return EXIT_WAIT_TIMEOUT;
    case FORQ_ERR_CONNECT:
        return EXIT_CONNECT;
    case FORQ_ERR_FORBIDDEN:
        return EXIT_FORBIDDEN;
    default:
        return EXIT_PROTOCOL;
    }
}

/* Print every page of a dict: keys (a JSON array), items (a JSON object), or dump (lines). */
static int dict_list(forq_client_t *c, const char *op, const char *name, int tmo)
{
    bool items = strcmp(op, "keys") != 0;
    json_t *all = strcmp(op, "keys") == 0 ? json_array() : json_object();
    char *after = NULL;
    forq_err_t e = FORQ_OK;

    do {
        void *data;
        size_t len, off = 0;
        char *next = NULL;
        msgpack_zone zone;
        msgpack_object o;

        e = forq_dict_page(c, name, items, after, 0, tmo, &data, &len, &next);
        free(after);
        after = next;
        if (e != FORQ_OK)
            break;
        msgpack_zone_init(&zone, 4096);
        if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
            o.type == MSGPACK_OBJECT_ARRAY) {
            for (uint32_t i = 0; i < o.via.array.size; i++) {
                msgpack_object *it = &o.via.array.ptr[i];
                if (!items) {
                    json_array_append_new(all, msgpack_to_json(it));
                    continue;
                }
                msgpack_object *t = it->via.array.ptr; /* [key, version, value] */
                json_t *k = msgpack_to_json(&t[0]);
                if (strcmp(op, "dump") == 0) {
                    json_t *line =
                        json_pack("{s:o, s:o, s:o}", "key", k, "version", msgpack_to_json(&t[1]),
                                  "value", msgpack_to_json(&t[2]));
                    print_json(line, JSON_COMPACT);
                    json_decref(line);
                } else {
                    json_object_set_new(all, json_string_value(k), msgpack_to_json(&t[2]));
                    json_decref(k);
                }
            }
        }
        msgpack_zone_destroy(&zone);
        free(data);
    } while (after);
    free(after);
    if (e == FORQ_OK && strcmp(op, "dump") != 0)
        print_json(all, JSON_COMPACT);
    json_decref(all);
    return e == FORQ_OK ? 0 : dict_exit(e, op, name, NULL);
}

/* Print the dicts this client may read, every page, as one JSON object {name: key count} in
 * the order forqd lists them (byte order of the names). */
static int dict_list_dicts(forq_client_t *c, int tmo)
{
    json_t *all = json_object();
    char *after = NULL;
    forq_err_t e;

    do {
        void *data;
        size_t len, off = 0;
        char *next = NULL;
        msgpack_zone zone;
        msgpack_object o;

        e = forq_dict_list(c, after, 0, tmo, &data, &len, &next);
        free(after);
        after = next;
        if (e != FORQ_OK)
            break;
        msgpack_zone_init(&zone, 4096);
        if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
            o.type == MSGPACK_OBJECT_ARRAY) {
            for (uint32_t i = 0; i < o.via.array.size; i++) {
                const msgpack_object *p = &o.via.array.ptr[i]; /* [name, keys] */
                if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 2 ||
                    p->via.array.ptr[0].type != MSGPACK_OBJECT_STR)
                    continue;
                const msgpack_object_str *n = &p->via.array.ptr[0].via.str;
                char *name = strndup(n->ptr, n->size);
                json_object_set_new(all, name, msgpack_to_json(&p->via.array.ptr[1]));
                free(name);
            }
        }
        msgpack_zone_destroy(&zone);
        free(data);
    } while (after);
    free(after);
    if (e == FORQ_OK)
        print_json(all, JSON_COMPACT);
    json_decref(all);
    return e == FORQ_OK ? 0 : dict_exit(e, "list", NULL, NULL);
}

#define OPERANDS_MAX 257 /* OP NAME and up to 255 keys (mget: the op table's args_max) */

/* mget: the keys found, as one JSON object (a key that does not exist is left out). */
static int dict_mget(forq_client_t *c, const char *name, char **keys, int n, int tmo)
{
    void **vals = calloc((size_t)n, sizeof(*vals));
    size_t *lens = calloc((size_t)n, sizeof(*lens));
    json_t *all = json_object();
    forq_err_t e = vals && lens ? forq_dict_mget(c, name, (const char *const *)keys, (size_t)n, tmo,
                                                 vals, lens, NULL, NULL)
                                : FORQ_ERR_NOMEM;

    for (int i = 0; e == FORQ_OK && i < n; i++) {
        msgpack_zone zone;
        msgpack_object o;
        size_t off = 0;
        if (!vals[i])
            continue;
        msgpack_zone_init(&zone, 4096);
        if (msgpack_unpack(vals[i], lens[i], &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS)
            json_object_set_new(all, keys[i], msgpack_to_json(&o));
        msgpack_zone_destroy(&zone);
    }
    if (e == FORQ_OK)
        print_json(all, JSON_COMPACT);
    for (int i = 0; vals && i < n; i++)
        free(vals[i]);
    free(vals);
    free(lens);
    json_decref(all);
    return e == FORQ_OK ? 0 : dict_exit(e, "mget", name, NULL);
}

/* A value and its version, for --with-version: {"value": V, "ver": N}. */
static void print_with_version(const void *val, size_t len, uint64_t ver)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;

    msgpack_zone_init(&zone, 4096);
    if (msgpack_unpack(val, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS) {
        json_t *j = json_pack("{s:o, s:I}", "value", msgpack_to_json(&o), "ver", (json_int_t)ver);
        print_json(j, JSON_COMPACT);
        json_decref(j);
    }
    msgpack_zone_destroy(&zone);
}

int cmd_dict(const globals_t *g, int argc, char **argv)
{
    enum { O_VERSION = 1, O_TIMEOUT, O_WITH_VERSION };
    static const opt_t opts[] = {{"version", true, O_VERSION},
                                 {"timeout", true, O_TIMEOUT},
                                 {"with-version", false, O_WITH_VERSION},
                                 {NULL, false, 0}};
    forq_client_t *c = NULL;
    msgpack_sbuffer sb;
    uint64_t seen = FORQ_DICT_NEXT_CHANGE, ver = 0;
    double wait_s = -1;
    int r, rc = 0, tmo = ms_of(g->connect_timeout), nop = 0;
    forq_err_t e = FORQ_OK;
    bool with_version = false;
    void *val = NULL;
    size_t vlen = 0;
    char *end, *operand[OPERANDS_MAX];
    args_t a;

    args_init(&a, argc, argv);
    while ((r = args_next(&a, opts)) != ARGS_END) {
        switch (r) {
        case ARGS_STOP:
            return a.rc;
        case ARGS_OPERAND:
            if (nop == OPERANDS_MAX)
                return cmd_usage_error("dict",
                                       "too many arguments at '%s' (mget: at most %d keys on "
                                       "the command line)",
                                       a.val, OPERANDS_MAX - 2);
            operand[nop++] = (char *)a.val;
            break;
        case O_VERSION:
            seen = strtoull(a.val, &end, 10);
            if (end == a.val || *end || a.val[0] == '-')
                return cmd_usage_error("dict", "--version takes a version number, not '%s'", a.val);
            break;
        case O_TIMEOUT:
            if (parse_seconds("--timeout", a.val, &wait_s) < 0)
                return EXIT_USAGE;
            break;
        case O_WITH_VERSION:
            with_version = true;
            break;
        }
    }
    if (nop < 1)
        return cmd_usage_error("dict", "%s", "dict needs an OP and a NAME (or: forq dict list)");
    const char *op = operand[0];
    /* "dump" is the CLI's own: items, one JSON line each; "list" is the op on no dict, dicts */
    const ops_desc_t *d = strcmp(op, "dump") == 0   ? ops_get(OPS_ITEMS)
                          : strcmp(op, "list") == 0 ? ops_get(OPS_DICTS)
                                                    : ops_find_verb(OPS_KIND_DICT, op);
    if (!d)
        return cmd_usage_error("dict", "unknown dict op '%s'", op);
    /* the operands after OP: a NAME, then the op's own; none for list */
    int skip = d->nameless ? 1 : 2;
    if (nop < skip)
        return cmd_usage_error("dict", "dict %s needs a NAME", op);
    const char *name = d->nameless ? NULL : operand[1];
    char **rest = operand + skip;
    int nrest = nop - skip;
    if (d->nameless && nrest > 0)
        return cmd_usage_error("dict",
                               "dict %s takes no NAME or other operand: it lists every dict "
                               "you may read",
                               op);
    if (nrest < d->args_min || nrest > d->args_max) {
        static const char *const what[] = {"nothing else", "a KEY", "a KEY and a VALUE",
                                           "a KEY, a VERSION and a VALUE"};
        if (d->id == OPS_INCR)
            return cmd_usage_error("dict", "%s", "dict incr takes NAME KEY [DELTA]");
        if (d->id == OPS_UPDATE || d->id == OPS_MSET)
            return cmd_usage_error("dict", "dict %s takes NAME and a JSON object", op);
        if (d->id == OPS_MGET)
            return cmd_usage_error("dict", "dict mget takes NAME and 1 to %d KEYs",
                                   OPERANDS_MAX - 2);
        return cmd_usage_error("dict", "dict %s takes a NAME and %s", op, what[d->args_max]);
    }
    if (with_version && d->id != OPS_GET && d->id != OPS_WAIT)
        return cmd_usage_error("dict", "%s", "--with-version goes with get and wait");
    msgpack_sbuffer_init(&sb);
    /* the JSON operand: set/setdefault VALUE, cas VALUE, update MAP */
    const char *json = d->json_arg >= 0 ? rest[d->json_arg] : NULL;
    if (json && json_argument_msgpack(d->id == OPS_UPDATE || d->id == OPS_MSET ? "the JSON object"
                                                                               : "VALUE_JSON",
                                      json, &sb) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return EXIT_USAGE;
    }
    if ((rc = connect_client(g, &c)) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    switch (d->id) {
    case OPS_GET:
        e = forq_dict_get(c, name, rest[0], tmo, &val, &vlen, &ver);
        break;
    case OPS_POP:
        e = forq_dict_pop(c, name, rest[0], tmo, &val, &vlen);
        break;
    case OPS_SET:
        if ((e = forq_dict_set(c, name, rest[0], sb.data, sb.size, tmo, &ver)) == FORQ_OK)
            printf("%llu\n", (unsigned long long)ver);
        break;
    case OPS_DEL:
        e = forq_dict_del(c, name, rest[0], tmo);
        break;
    case OPS_HAS: {
        bool has;
        if ((e = forq_dict_has(c, name, rest[0], tmo, &has)) == FORQ_OK)
            puts(has ? "true" : "false");
        break;
    }
    case OPS_SETDEFAULT:
        e = forq_dict_setdefault(c, name, rest[0], sb.data, sb.size, tmo, &val, &vlen);
        break;
    case OPS_INCR: {
        long long delta = 1;
        int64_t now;
        if (nrest == 2) {
            errno = 0;
            delta = strtoll(rest[1], &end, 10);
            if (end == rest[1] || *end || errno == ERANGE) {
                rc = cmd_usage_error("dict",
                                     "incr's DELTA must be a whole number from "
                                     "-9223372036854775808 to 9223372036854775807, not '%s'",
                                     rest[1]);
                goto out;
            }
        }
        if ((e = forq_dict_incr(c, name, rest[0], delta, tmo, &now)) == FORQ_OK)
            printf("%lld\n", (long long)now);
        break;
    }
    case OPS_CAS: {
        uint64_t expect = strtoull(rest[1], &end, 10);
        if (end == rest[1] || *end || rest[1][0] == '-') {
            rc = cmd_usage_error("dict", "cas's VERSION must be a version number, not '%s'",
                                 rest[1]);
            goto out;
        }
        e = forq_dict_cas(c, name, rest[0], expect, sb.data, sb.size, tmo, &ver);
        if (e == FORQ_OK)
            printf("%llu\n", (unsigned long long)ver);
        break;
    }
    case OPS_WAIT:
        e = forq_dict_wait(c, name, rest[0], seen, ms_of(wait_s), &val, &vlen, &ver);
        break;
    case OPS_LEN:
    case OPS_CLEAR: {
        size_t n;
        e = d->id == OPS_LEN ? forq_dict_len(c, name, tmo, &n) : forq_dict_clear(c, name, tmo, &n);
        if (e == FORQ_OK)
            printf("%zu\n", n);
        break;
    }
    case OPS_UPDATE:
        e = forq_dict_update(c, name, sb.data, sb.size, tmo);
        break;
    case OPS_MSET: {
        /* the JSON object's entries as the C call takes them */
        msgpack_zone zone;
        msgpack_object o;
        size_t off = 0;
        msgpack_zone_init(&zone, 4096);
        if (msgpack_unpack(sb.data, sb.size, &off, &zone, &o) != MSGPACK_UNPACK_SUCCESS ||
            o.type != MSGPACK_OBJECT_MAP || o.via.map.size == 0) {
            msgpack_zone_destroy(&zone);
            rc = cmd_usage_error("dict", "%s", "dict mset takes a non-empty JSON object");
            goto out;
        }
        size_t n = o.via.map.size;
        char **keys = calloc(n, sizeof(*keys));
        msgpack_sbuffer *vs = calloc(n, sizeof(*vs));
        const void **vals = calloc(n, sizeof(*vals));
        size_t *lens = calloc(n, sizeof(*lens));
        for (size_t i = 0; keys && vs && vals && lens && i < n; i++) {
            const msgpack_object_kv *kv = &o.via.map.ptr[i];
            msgpack_packer pk;
            keys[i] = strndup(kv->key.via.str.ptr, kv->key.via.str.size);
            msgpack_sbuffer_init(&vs[i]);
            msgpack_packer_init(&pk, &vs[i], msgpack_sbuffer_write);
            msgpack_pack_object(&pk, kv->val);
            vals[i] = vs[i].data;
            lens[i] = vs[i].size;
        }
        e = keys && vs && vals && lens
                ? forq_dict_mset(c, name, (const char *const *)keys, vals, lens, n, tmo, &ver)
                : FORQ_ERR_NOMEM;
        if (e == FORQ_OK)
            printf("%llu\n", (unsigned long long)ver);
        for (size_t i = 0; keys && vs && i < n; i++) {
            free(keys[i]);
            msgpack_sbuffer_destroy(&vs[i]);
        }
        free(keys);
        free(vs);
        free(vals);
        free(lens);
        msgpack_zone_destroy(&zone);
        break;
    }
    case OPS_MGET:
        rc = dict_mget(c, name, rest, nrest, tmo);
        goto out;
    case OPS_DICTS:
        rc = dict_list_dicts(c, tmo);
        goto out;
    default: /* keys, items, dump */
        rc = dict_list(c, op, name, tmo);
        goto out;
    }
    if (e == FORQ_OK && val) {
        if (with_version)
            print_with_version(val, vlen, ver);
        else
            print_msgpack(val, vlen, JSON_COMPACT);
    }
    rc = e == FORQ_OK ? 0 : dict_exit(e, op, name, d->args_min > 0 ? rest[0] : NULL);
out:
    free(val);
    msgpack_sbuffer_destroy(&sb);
    forq_client_destroy(&c);
    return rc;
}
