/* task_shared.c - the shared types from a running task (<forq/task.h>): queues, locks, events and
 * fenced dict writes, each one request on the worker's link (task_ctx_call) with the op table's
 * fields. A call that blocks waits in forqd; the worker waits for the answer 5 s longer (for
 * ever without a timeout): an answer given up on would be dropped when it came, and a queue's
 * get answer holds its item. Exported from the forqd executable like task_ctx.c's. */
#include "task_ctx.h"

#include "ops.h"
#include "util.h"

#include <string.h>

#define WAIT_GRACE_MS 5000

/* One request: h holds the op's fields; the op and name are set here. On FORQ_TASK_DICT_OK the
 * answer is in *r and *m (free m->base). */
static int call(forq_task_ctx_t *ctx, ops_id_t id, wire_hdr_t *h, const char *name,
                const void *value, size_t len, bool blocks, int timeout_ms, msgpack_zone *zone,
                wlink_msg_t *m, wire_hdr_t *r)
{
    const ops_desc_t *d = ops_get(id);
    int wait_ms = 30000;

    if (!name || !wire_id_is_valid(name, strlen(name)))
        return task_ctx_fail(ctx, "%s name must be 1-64 characters of A-Z a-z 0-9 . _ : -",
                             ops_kind_name(d->kind));
    h->op = wire_str(d->name);
    h->name = wire_str(name);
    if (blocks) {
        h->block = timeout_ms != 0;
        h->timeout_ms = timeout_ms > 0 ? (uint64_t)timeout_ms : 0;
        wait_ms = timeout_ms < 0 ? -1 : timeout_ms + WAIT_GRACE_MS;
    }
    return task_ctx_call(ctx, h, value, len, wait_ms, zone, m, r);
}

/* A request whose answer is found/count/token: *r gets the answer's header (strings not kept). */
static int simple(forq_task_ctx_t *ctx, ops_id_t id, wire_hdr_t *h, const char *name,
                  const void *value, size_t len, bool blocks, int timeout_ms, wire_hdr_t *ret)
{
    msgpack_zone zone;
    wlink_msg_t m;
    int rc;

    msgpack_zone_init(&zone, 512);
    rc = call(ctx, id, h, name, value, len, blocks, timeout_ms, &zone, &m, ret);
    if (rc == FORQ_TASK_DICT_OK) {
        const char *code = ops_get(id)->reply_code;
        bool answered = code && wire_str_eq(ret->code, code);
        ret->code = (wire_str_t){answered ? code : NULL, answered ? strlen(code) : 0};
        ret->msg = ret->key = ret->op = ret->name = ret->lock = (wire_str_t){0};
        free(m.base);
    }
    msgpack_zone_destroy(&zone);
    return rc;
}

int forq_task_queue_put(forq_task_ctx_t *ctx, const char *name, const void *value, size_t len,
                        int front, size_t maxsize, int timeout_ms, size_t *ret_count)
{
    wire_hdr_t h = {.front = front != 0, .maxsize = maxsize}, r;
    int rc;

    if (!value)
        return task_ctx_fail(ctx, "forq_task_queue_put: the value is NULL");
    if ((rc = simple(ctx, OPS_QPUT, &h, name, value, len, true, timeout_ms, &r)) != 0)
        return rc;
    if (r.code.ptr)
        return FORQ_TASK_DICT_FULL;
    if (ret_count)
        *ret_count = (size_t)r.count;
    return FORQ_TASK_DICT_OK;
}

int forq_task_queue_get(forq_task_ctx_t *ctx, const char *name, int timeout_ms, void **ret_value,
                        size_t *ret_len)
{
    wire_hdr_t h = {0}, r;
    msgpack_zone zone;
    wlink_msg_t m;
    int rc;

    msgpack_zone_init(&zone, 512);
    rc = call(ctx, OPS_QGET, &h, name, NULL, 0, true, timeout_ms, &zone, &m, &r);
    if (rc == FORQ_TASK_DICT_OK) {
        if (!r.found || !m.has_payload) {
            rc = FORQ_TASK_DICT_EMPTY;
        } else {
            if (ret_value) {
                *ret_value = xmalloc(m.plen ? m.plen : 1);
                memcpy(*ret_value, m.payload, m.plen);
            }
            if (ret_len)
                *ret_len = m.plen;
        }
        free(m.base);
    }
    msgpack_zone_destroy(&zone);
    return rc;
}

int forq_task_queue_len(forq_task_ctx_t *ctx, const char *name, size_t *ret_len)
{
    wire_hdr_t h = {0}, r;
    int rc = simple(ctx, OPS_QLEN, &h, name, NULL, 0, false, 0, &r);

    if (rc == FORQ_TASK_DICT_OK && ret_len)
        *ret_len = (size_t)r.count;
    return rc;
}

int forq_task_lock_acquire(forq_task_ctx_t *ctx, const char *name, unsigned permits, int lease_ms,
                           int timeout_ms, uint64_t *ret_token)
{
    wire_hdr_t h = {.permits = permits, .lease_ms = lease_ms > 0 ? (uint64_t)lease_ms : 0}, r;
    int rc;

    if (permits > WIRE_PERMITS_MAX)
        return task_ctx_fail(ctx, "permits must be 1 to %d, not %u", WIRE_PERMITS_MAX, permits);
    if ((rc = simple(ctx, OPS_LACQUIRE, &h, name, NULL, 0, true, timeout_ms, &r)) != 0)
        return rc;
    if (!r.found)
        return FORQ_TASK_DICT_TIMEOUT;
    if (ret_token)
        *ret_token = r.token;
    return FORQ_TASK_DICT_OK;
}

static int token_op(forq_task_ctx_t *ctx, ops_id_t id, const char *name, uint64_t token,
                    int lease_ms)
{
    wire_hdr_t h = {.token = token,
                    .has_token = true,
                    .lease_ms = lease_ms > 0 ? (uint64_t)lease_ms : 0},
               r;
    int rc = simple(ctx, id, &h, name, NULL, 0, false, 0, &r);

    return rc != FORQ_TASK_DICT_OK ? rc : r.found ? FORQ_TASK_DICT_OK : FORQ_TASK_DICT_CONFLICT;
}

int forq_task_lock_release(forq_task_ctx_t *ctx, const char *name, uint64_t token)
{
    return token_op(ctx, OPS_LRELEASE, name, token, 0);
}

int forq_task_lock_renew(forq_task_ctx_t *ctx, const char *name, uint64_t token, int lease_ms)
{
    return token_op(ctx, OPS_LRENEW, name, token, lease_ms);
}

int forq_task_dict_set_fenced(forq_task_ctx_t *ctx, const char *name, const char *key,
                              const void *value, size_t len, const char *lock, uint64_t token,
                              uint64_t *ret_version)
{
    wire_hdr_t h = {.key = wire_str(key),
                    .lock = wire_str(lock),
                    .token = token,
                    .has_token = true},
               r;
    int rc;

    if (!value || !lock || !wire_id_is_valid(lock, strlen(lock)))
        return task_ctx_fail(ctx, "forq_task_dict_set_fenced: a value and a valid lock name, "
                                  "please");
    rc = simple(ctx, OPS_SET, &h, name, value, len, false, 0, &r);
    if (rc == FORQ_TASK_DICT_ERROR && strncmp(forq_task_dict_error(ctx), "stale_token", 11) == 0)
        return FORQ_TASK_DICT_CONFLICT;
    if (rc == FORQ_TASK_DICT_OK && ret_version)
        *ret_version = r.ver;
    return rc;
}

int forq_task_event_set(forq_task_ctx_t *ctx, const char *name)
{
    wire_hdr_t h = {0}, r;
    return simple(ctx, OPS_ESET, &h, name, NULL, 0, false, 0, &r);
}

int forq_task_event_clear(forq_task_ctx_t *ctx, const char *name)
{
    wire_hdr_t h = {0}, r;
    return simple(ctx, OPS_ECLEAR, &h, name, NULL, 0, false, 0, &r);
}

int forq_task_event_wait(forq_task_ctx_t *ctx, const char *name, int timeout_ms, int *ret_is_set)
{
    wire_hdr_t h = {0}, r;
    int rc = simple(ctx, OPS_EWAIT, &h, name, NULL, 0, true, timeout_ms, &r);

    if (rc != FORQ_TASK_DICT_OK)
        return rc;
    if (ret_is_set)
        *ret_is_set = r.found;
    return r.found || timeout_ms == 0 ? FORQ_TASK_DICT_OK : FORQ_TASK_DICT_TIMEOUT;
}
