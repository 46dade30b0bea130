/* shared.c - `forq queue`, `forq lock` and `forq event`: one operation of a shared type per
 * call. The verb and its operands are the op table's (proto/ops.h: the verb, the operand counts,
 * which operand is JSON), and so are the options each verb takes (its fields): an option a verb
 * does not take is refused, not ignored. A call that blocks (queue get, a bounded queue put, lock
 * acquire, event wait) waits for ever unless --timeout (or --nowait) says otherwise: Ctrl-C ends
 * forq, and a queue get that forq was waiting in takes no item with it. */
#define _GNU_SOURCE
#include "cli.h"
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exit code and message of a failed call. */
static int shared_exit(forq_err_t e)
{
    fprintf(stderr, "forq: %s\n", forq_errdetail());
    switch (e) {
    case FORQ_ERR_EMPTY:
    case FORQ_ERR_TIMEOUT:
        return EXIT_WAIT_TIMEOUT;
    case FORQ_ERR_CONFLICT:
        return EXIT_CONFLICT;
    case FORQ_ERR_FULL:
        return EXIT_FULL;
    case FORQ_ERR_INVALID:
        return EXIT_USAGE;
    case FORQ_ERR_CONNECT:
        return EXIT_CONNECT;
    case FORQ_ERR_FORBIDDEN:
        return EXIT_FORBIDDEN;
    default:
        return EXIT_PROTOCOL;
    }
}

/* The options, and the field of the op each one sets (a verb takes it only with that field). */
enum { O_TIMEOUT = 1, O_NOWAIT, O_FRONT, O_MAXSIZE, O_START, O_LIMIT, O_LEASE, O_PERMITS };

static const struct {
    int id;
    unsigned field;
} option_field[] = {
    {O_TIMEOUT, OPS_F_TIMEOUT}, {O_NOWAIT, OPS_F_BLOCK},    {O_FRONT, OPS_F_FRONT},
    {O_MAXSIZE, OPS_F_MAXSIZE}, {O_START, OPS_F_START},     {O_LIMIT, OPS_F_LIMIT},
    {O_LEASE, OPS_F_LEASE},     {O_PERMITS, OPS_F_PERMITS},
};

typedef struct {
    double timeout_s; /* -1: for ever */
    bool front;
    long maxsize, start, limit, permits;
    double lease_s;
} shared_opts_t;

/* A TOKEN operand: a whole number. */
static int token_of(const char *kind, const char *s, uint64_t *ret)
{
    char *end;
    *ret = strtoull(s, &end, 10);
    if (end == s || *end || s[0] == '-')
        return cmd_usage_error(kind, "TOKEN is the number lock acquire printed, not '%s'", s);
    return 0;
}

static int run(forq_client_t *c, const ops_desc_t *d, const char *name, char **rest,
               const msgpack_sbuffer *value, const shared_opts_t *so, int tmo)
{
    int wait_ms = ms_of(so->timeout_s);
    int lease_ms = so->lease_s > 0 ? ms_of(so->lease_s) : 0;
    void *val = NULL;
    size_t len = 0, n = 0;
    uint64_t token = 0;
    bool more = false, is_set = false;
    forq_err_t e;

    switch (d->id) {
    case OPS_QPUT:
        e = forq_queue_put(c, name, value->data, value->size, so->front, (size_t)so->maxsize,
                           wait_ms, &n);
        if (e == FORQ_OK)
            printf("%zu\n", n);
        break;
    case OPS_QGET:
        e = forq_queue_get(c, name, wait_ms, &val, &len);
        break;
    case OPS_QLEN:
    case OPS_QCLEAR:
        e = d->id == OPS_QLEN ? forq_queue_len(c, name, tmo, &n)
                              : forq_queue_clear(c, name, tmo, &n);
        if (e == FORQ_OK)
            printf("%zu\n", n);
        break;
    case OPS_QRANGE:
        e = forq_queue_range(c, name, (size_t)so->start, (size_t)so->limit, tmo, &val, &len, &more);
        if (e == FORQ_OK && more)
            fprintf(stderr, "forq: more items follow: --start %zu\n",
                    (size_t)so->start + (so->limit ? (size_t)so->limit : 1000));
        break;
    case OPS_LACQUIRE:
        e = forq_sem_acquire(c, name, (unsigned)so->permits, lease_ms, wait_ms, &token);
        if (e == FORQ_OK)
            printf("%llu\n", (unsigned long long)token);
        break;
    case OPS_LRELEASE:
    case OPS_LRENEW:
        if (token_of(ops_kind_name(d->kind), rest[0], &token) != 0)
            return EXIT_USAGE;
        e = d->id == OPS_LRELEASE ? forq_lock_release(c, name, token, tmo)
                                  : forq_lock_renew(c, name, token, lease_ms, tmo);
        break;
    case OPS_ESET:
        e = forq_event_set(c, name, tmo);
        break;
    case OPS_ECLEAR:
        e = forq_event_clear(c, name, tmo);
        break;
    default: /* event wait */
        e = forq_event_wait(c, name, wait_ms, &is_set);
        if (e == FORQ_OK)
            puts(is_set ? "true" : "false");
        break;
    }
    if (e == FORQ_OK && val)
        print_msgpack(val, len, JSON_COMPACT);
    free(val);
    return e == FORQ_OK ? 0 : shared_exit(e);
}

/* forq KIND VERB NAME [OPERAND] [OPTIONS] */
static int cmd_shared(const globals_t *g, ops_kind_t kind, int argc, char **argv)
{
    static const opt_t opts[] = {
        {"timeout", true, O_TIMEOUT}, {"nowait", false, O_NOWAIT},  {"front", false, O_FRONT},
        {"maxsize", true, O_MAXSIZE}, {"start", true, O_START},     {"limit", true, O_LIMIT},
        {"lease", true, O_LEASE},     {"permits", true, O_PERMITS}, {NULL, false, 0}};
    const char *kname = ops_kind_name(kind);
    shared_opts_t so = {.timeout_s = -1, .permits = 1};
    int seen[16] = {0}, nop = 0, r, rc;
    char *operand[4];
    forq_client_t *c = NULL;
    msgpack_sbuffer sb;
    args_t a;

    args_init(&a, argc, argv);
    while ((r = args_next(&a, opts)) != ARGS_END) {
        if (r == ARGS_STOP)
            return a.rc;
        if (r == ARGS_OPERAND) {
            if (nop == 4)
                return cmd_usage_error(kname, "unexpected argument '%s'", a.val);
            operand[nop++] = (char *)a.val;
            continue;
        }
        seen[r] = 1;
        if ((r == O_TIMEOUT && parse_seconds("--timeout", a.val, &so.timeout_s) < 0) ||
            (r == O_LEASE && parse_seconds("--lease", a.val, &so.lease_s) < 0) ||
            (r == O_MAXSIZE && parse_int("--maxsize", a.val, 0, 1L << 40, &so.maxsize) < 0) ||
            (r == O_START && parse_int("--start", a.val, 0, 1L << 40, &so.start) < 0) ||
            (r == O_LIMIT && parse_int("--limit", a.val, 1, 10000, &so.limit) < 0) ||
            (r == O_PERMITS && parse_int("--permits", a.val, 1, 10000, &so.permits) < 0))
            return EXIT_USAGE;
        if (r == O_NOWAIT)
            so.timeout_s = 0;
        so.front |= r == O_FRONT;
    }
    if (nop < 2)
        return cmd_usage_error(kname, "%s needs a VERB and a NAME", kname);
    const ops_desc_t *d = ops_find_verb(kind, operand[0]);
    if (!d)
        return cmd_usage_error(kname, "%s has no verb '%s'", kname, operand[0]);
    char **rest = operand + 2;
    int nrest = nop - 2;
    if (nrest < d->args_min || nrest > d->args_max)
        return cmd_usage_error(kname, "%s %s takes a NAME%s", kname, d->verb,
                               d->args_max == 0         ? " and nothing else"
                               : d->json_arg == 0       ? " and a VALUE_JSON"
                               : d->needs & OPS_F_TOKEN ? " and a TOKEN"
                                                        : "");
    for (size_t i = 0; i < sizeof(option_field) / sizeof(option_field[0]); i++)
        if (seen[option_field[i].id] && !((d->needs | d->takes) & option_field[i].field))
            return cmd_usage_error(kname, "%s %s takes no --%s", kname, d->verb,
                                   opts[option_field[i].id - 1].name);
    if (seen[O_TIMEOUT] && seen[O_NOWAIT])
        return cmd_usage_error(kname, "%s", "--timeout or --nowait, not both");
    msgpack_sbuffer_init(&sb);
    if (d->json_arg >= 0 && json_argument_msgpack("VALUE_JSON", rest[d->json_arg], &sb) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return EXIT_USAGE;
    }
    if ((rc = connect_client(g, &c)) == 0)
        rc = run(c, d, operand[1], rest, &sb, &so, ms_of(g->connect_timeout));
    msgpack_sbuffer_destroy(&sb);
    forq_client_destroy(&c);
    return rc;
}

int cmd_queue(const globals_t *g, int argc, char **argv)
{
    return cmd_shared(g, OPS_KIND_QUEUE, argc, argv);
}

int cmd_lock(const globals_t *g, int argc, char **argv)
{
    return cmd_shared(g, OPS_KIND_LOCK, argc, argv);
}

int cmd_event(const globals_t *g, int argc, char **argv)
{
    return cmd_shared(g, OPS_KIND_EVENT, argc, argv);
}
