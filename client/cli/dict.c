/* dict.c - `forq dict`: one dict operation per call, values as JSON, and the listing
 * operations (keys, items, dump) paged through forq_dict_page. */
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

/* A JSON argument as msgpack in sb; usage error on bad JSON. */
static int json_arg(const char *text, msgpack_sbuffer *sb)
{
    json_error_t jerr;
    msgpack_packer pk;
    char err[256];
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);

    if (!j) {
        fprintf(stderr, "forq: VALUE_JSON is not JSON (%s); quote strings, e.g. '\"text\"'\n",
                jerr.text);
        return -1;
    }
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int r = json_to_msgpack(j, &pk, err, sizeof(err));
    json_decref(j);
    if (r < 0)
        fprintf(stderr, "forq: VALUE_JSON: %s\n", err);
    return r;
}

static int dict_exit(forq_err_t e)
{
    fprintf(stderr, "forq: %s\n", forq_errdetail());
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
    return e == FORQ_OK ? 0 : dict_exit(e);
}

int cmd_dict(const globals_t *g, int argc, char **argv)
{
    static const struct option opts[] = {{"version", required_argument, NULL, 'v'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    forq_client_t *c = NULL;
    msgpack_sbuffer sb;
    uint64_t seen = FORQ_DICT_NEXT_CHANGE, ver = 0;
    double wait_s = -1;
    int ch, rc = 0, tmo = (int)(g->connect_timeout * 1000);
    forq_err_t e = FORQ_OK;
    void *val = NULL;
    size_t vlen = 0;
    char *end;

    optind = 0;
    while ((ch = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (ch == 'v') {
            seen = strtoull(optarg, &end, 10);
            if (end == optarg || *end)
                return usage_error("--version takes a version number, not '%s'", optarg);
        } else if (ch == 't') {
            if (parse_seconds("--timeout", optarg, &wait_s) < 0)
                return EXIT_USAGE;
        } else if (ch == ':') {
            return usage_error("%s needs a value", argv[optind - 1]);
        } else {
            return usage_error("dict has no option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind < 2)
        return usage_error("%s", "dict needs an OP and a NAME");
    const char *op = argv[optind], *name = argv[optind + 1];
    char **rest = argv + optind + 2;
    int nrest = argc - optind - 2;
    /* "dump" is the CLI's own: items, one JSON line each */
    const ops_desc_t *d = strcmp(op, "dump") == 0 ? ops_get(OPS_ITEMS) : ops_find(op, strlen(op));
    if (!d)
        return usage_error("unknown dict op '%s'", op);
    if (nrest < d->args_min || nrest > d->args_max)
        return usage_error("dict %s takes other arguments; see forq --help", op);
    msgpack_sbuffer_init(&sb);
    /* the JSON operand: set/setdefault VALUE, cas VALUE, update MAP */
    const char *json = d->json_arg >= 0 ? rest[d->json_arg] : NULL;
    if (json && json_arg(json, &sb) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return EXIT_USAGE;
    }
    if ((rc = connect_client(g, &c)) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    switch (d->id) {
    case OPS_GET:
        e = forq_dict_get(c, name, rest[0], tmo, &val, &vlen, NULL);
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
            delta = strtoll(rest[1], &end, 10);
            if (end == rest[1] || *end) {
                rc = usage_error("incr's DELTA must be an integer, not '%s'", rest[1]);
                goto out;
            }
        }
        if ((e = forq_dict_incr(c, name, rest[0], delta, tmo, &now)) == FORQ_OK)
            printf("%lld\n", (long long)now);
        break;
    }
    case OPS_CAS: {
        uint64_t expect = strtoull(rest[1], &end, 10);
        if (end == rest[1] || *end) {
            rc = usage_error("cas's VERSION must be a number, not '%s'", rest[1]);
            goto out;
        }
        e = forq_dict_cas(c, name, rest[0], expect, sb.data, sb.size, tmo, &ver);
        if (e == FORQ_OK)
            printf("%llu\n", (unsigned long long)ver);
        break;
    }
    case OPS_WAIT:
        e = forq_dict_wait(c, name, rest[0], seen, wait_s < 0 ? -1 : (int)(wait_s * 1000), &val,
                           &vlen, &ver);
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
    default: /* keys, items, dump */
        rc = dict_list(c, op, name, tmo);
        goto out;
    }
    if (e == FORQ_OK && val)
        print_msgpack(val, vlen, JSON_COMPACT);
    rc = e == FORQ_OK ? 0 : dict_exit(e);
out:
    free(val);
    msgpack_sbuffer_destroy(&sb);
    forq_client_destroy(&c);
    return rc;
}
