/* shared.c - libforq's side of the shared types: queues, locks (and semaphores), events, and the
 * fenced dict writes. Each call is one `dict` request with a queue.*, lock.* or event.* op
 * (PROTOCOL.md 6.9) and its dict_reply, through the client's request machinery; the request is
 * checked first with the op table's own words (ops_check_request), as forqd would.
 *
 * A call that blocks sends "block" and its timeout_ms to forqd, which does the waiting, and
 * waits for the answer WAIT_GRACE_MS longer. If even that wait ends first (forqd is slow or
 * unreachable), the call withdraws its request (<kind>.withdraw, forq_shared_withdraw) rather
 * than drop an answer forqd still owes: withdrawn, nothing was taken, put or granted; answered
 * already, the answer arrives before the withdraw's reply (one connection keeps its order) and
 * the call returns it, item and all. */
#define _GNU_SOURCE
#include "client_int.h"
#include "health.h"
#include "ops.h"

#include <stdlib.h>
#include <string.h>

#define WAIT_GRACE_MS 5000

/* The reply's payload, handed to the caller. */
static void *take_result(forq_future_t *f)
{
    void *p = f->result;
    f->result = NULL;
    return p;
}

/* Fill in and check a request: `blocks` ops send block/timeout_ms. *ret_answer_ms: how long to
 * wait for the answer (forqd's wait and the grace after it). */
static forq_err_t prepare(forq_client_t *c, ops_id_t id, wire_hdr_t *h, const char *name,
                          const void *val, size_t vlen, bool blocks, int timeout_ms,
                          int *ret_answer_ms)
{
    const ops_desc_t *d = ops_get(id);
    int answer_ms = timeout_ms;
    wire_err_t werr;

    if (!c)
        return errors_fail(FORQ_ERR_INVALID, "client is NULL");
    if (!name || !wire_id_is_valid(name, strlen(name)))
        return errors_fail(FORQ_ERR_INVALID,
                           "%s name must be 1-64 characters of A-Z a-z 0-9 . _ : -",
                           ops_kind_name(d->kind));
    h->cmd = WIRE_DICT;
    h->op = wire_str(d->name);
    h->name = wire_str(name);
    if (blocks) {
        h->block = timeout_ms != 0;
        h->timeout_ms = timeout_ms > 0 ? (uint64_t)timeout_ms : 0;
        answer_ms = timeout_ms < 0 ? -1 : timeout_ms + WAIT_GRACE_MS;
    }
    if (ops_check_request(h, val, vlen, val != NULL, NULL, &werr) < 0)
        return errors_fail(FORQ_ERR_INVALID, "%s: %s", werr.code, werr.msg);
    if (val && health_check_payload(c, "the item", vlen) != FORQ_OK)
        return FORQ_ERR_INVALID; /* ZeroMQ would drop the connection; the detail is set */
    *ret_answer_ms = answer_ms;
    return FORQ_OK;
}

/* Remember on f the op and name of a request that may wait in forqd (forq_shared_withdraw). */
static void mark_waiting(forq_future_t *f, ops_id_t id, const char *name)
{
    f->wait_op = (int)id;
    snprintf(f->wait_name, sizeof(f->wait_name), "%s", name);
}

/* A resolved request future as client_request() returns it: FORQ_OK with *ret_f, or the error
 * of its `error` reply or its loss (f dropped then). */
static forq_err_t answer_of(forq_future_t *f, forq_future_t **ret_f)
{
    forq_err_t e;

    if (f->reply_cmd != WIRE_ERROR && f->state != FORQ_STATE_LOST) {
        *ret_f = f;
        return FORQ_OK;
    }
    e = f->reply_cmd != WIRE_ERROR                     ? FORQ_ERR_CONNECT
        : f->code && strcmp(f->code, "forbidden") == 0 ? FORQ_ERR_FORBIDDEN
                                                       : dict_err_of_code(f->code ? f->code : "");
    errors_fail(e, "%s%s%s", f->code ? f->code : "", f->code ? ": " : "",
                f->detail ? f->detail : "no answer");
    future_unref(f);
    return e;
}

/* A request that waits in forqd up to its timeout: sent, waited for answer_ms, and withdrawn
 * if that wait ends first (see the top of the file). */
static forq_err_t call_waiting(forq_client_t *c, ops_id_t id, wire_hdr_t *h, const char *name,
                               const void *val, size_t vlen, int answer_ms, forq_future_t **ret_f)
{
    forq_future_t *f;
    bool withdrawn = false;
    forq_err_t e = client_request_async(c, h, val, vlen, &f);

    if (e != FORQ_OK)
        return e;
    mark_waiting(f, id, name);
    if (forq_future_wait(f, answer_ms) != FORQ_OK) {
        e = forq_shared_withdraw(f, WAIT_GRACE_MS, &withdrawn);
        if (e == FORQ_OK && !withdrawn) /* answered first: that answer came before */
            forq_future_wait(f, 0);
        if (withdrawn || !forq_future_done(f)) {
            future_unref(f);
            return errors_fail(FORQ_ERR_TIMEOUT,
                               "forqd at %s did not answer %s on '%s' within %d ms; %s",
                               forq_client_endpoint(c), ops_get(id)->name, name, answer_ms,
                               withdrawn ? "the request was withdrawn: nothing was taken, put or "
                                           "granted"
                                         : "is it running? (withdrawing the request failed too)");
        }
    }
    return answer_of(f, ret_f);
}

/* One request and its answer. */
static forq_err_t call(forq_client_t *c, ops_id_t id, wire_hdr_t *h, const char *name,
                       const void *val, size_t vlen, bool blocks, int timeout_ms,
                       forq_future_t **ret_f)
{
    int answer_ms;
    forq_err_t e = prepare(c, id, h, name, val, vlen, blocks, timeout_ms, &answer_ms);

    if (e != FORQ_OK)
        return e;
    /* a request that waits in forqd, and that this client may stop waiting for */
    if (h->block && answer_ms >= 0)
        return call_waiting(c, id, h, name, val, vlen, answer_ms, ret_f);
    return client_request(c, h, val, vlen, answer_ms, dict_err_of_code, ret_f);
}

/* The withdraw op of a kind. */
static ops_id_t withdraw_op(ops_kind_t kind)
{
    return kind == OPS_KIND_QUEUE  ? OPS_QWITHDRAW
           : kind == OPS_KIND_LOCK ? OPS_LWITHDRAW
                                   : OPS_EWITHDRAW;
}

forq_err_t forq_shared_withdraw(forq_future_t *f, int timeout_ms, bool *ret_withdrawn)
{
    wire_hdr_t h = {0};
    forq_future_t *wf;
    bool withdrawn;
    forq_err_t e;

    if (!f || !ret_withdrawn)
        return errors_fail(FORQ_ERR_INVALID, "future and ret_withdrawn are required");
    if (!f->wait_op || !f->conn)
        return errors_fail(FORQ_ERR_INVALID,
                           "this future is not a queue get or put, lock acquire or event wait: "
                           "it has no request waiting in forqd to withdraw");
    if (forq_future_done(f)) { /* answered (or lost) already: nothing to ask */
        *ret_withdrawn = false;
        return FORQ_OK;
    }
    h.of = strtoull(f->key + 1, NULL, 10); /* the key is "#<req>" */
    h.has_of = true;
    e = call(f->conn, withdraw_op(ops_get((ops_id_t)f->wait_op)->kind), &h, f->wait_name, NULL, 0,
             false, timeout_ms, &wf);
    if (e != FORQ_OK)
        return e;
    withdrawn = wf->found;
    future_unref(wf);
    if (withdrawn) /* no answer will ever come: resolve it here */
        future_resolve_local(f, FORQ_STATE_CANCELLED, "withdrawn",
                             "the request was withdrawn before forqd answered it: nothing was "
                             "taken, put or granted");
    *ret_withdrawn = withdrawn;
    return FORQ_OK;
}

/* The reply's `code` is the op's answer code ("full", "empty", "held", "timeout")? */
static bool answered(const forq_future_t *f, ops_id_t id)
{
    return f->code && strcmp(f->code, ops_get(id)->reply_code) == 0;
}

/* ---- queues ---- */

forq_err_t forq_queue_put(forq_client_t *c, const char *name, const void *value, size_t len,
                          bool front, size_t maxsize, int timeout_ms, size_t *ret_count)
{
    wire_hdr_t h = {.front = front, .maxsize = maxsize};
    forq_future_t *f;
    forq_err_t e;

    if (!value)
        return errors_fail(FORQ_ERR_INVALID, "value is NULL");
    /* without a bound forqd has nothing to wait for, and answers at once */
    if ((e = call(c, OPS_QPUT, &h, name, value, len, true, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (answered(f, OPS_QPUT))
        e = errors_fail(FORQ_ERR_FULL, "queue '%s' holds %zu items, its maxsize%s", name,
                        (size_t)f->count, timeout_ms ? ", and no room came in time" : "");
    else if (ret_count)
        *ret_count = (size_t)f->count;
    future_unref(f);
    return e;
}

forq_err_t forq_queue_get(forq_client_t *c, const char *name, int timeout_ms, void **ret_value,
                          size_t *ret_len)
{
    wire_hdr_t h = {0};
    forq_future_t *f;
    forq_err_t e = call(c, OPS_QGET, &h, name, NULL, 0, true, timeout_ms, &f);

    if (e != FORQ_OK)
        return e;
    if (!f->found) {
        e = timeout_ms == 0
                ? errors_fail(FORQ_ERR_EMPTY, "queue '%s' is empty", name)
                : errors_fail(FORQ_ERR_EMPTY, "no item came into queue '%s' within %d ms", name,
                              timeout_ms);
    } else if (!f->result) {
        e = errors_fail(FORQ_ERR_PROTOCOL, "forqd's answer to queue.get had no item");
    } else {
        if (ret_value)
            *ret_value = take_result(f);
        if (ret_len)
            *ret_len = f->result_len;
    }
    future_unref(f);
    return e;
}

forq_err_t forq_queue_put_async(forq_client_t *c, const char *name, const void *value, size_t len,
                                bool front, size_t maxsize, int timeout_ms,
                                forq_future_t **ret_future)
{
    wire_hdr_t h = {.front = front, .maxsize = maxsize};
    int answer_ms;
    forq_err_t e;

    if (!value || !ret_future)
        return errors_fail(FORQ_ERR_INVALID, "value and ret_future are required");
    if ((e = prepare(c, OPS_QPUT, &h, name, value, len, true, timeout_ms, &answer_ms)) != FORQ_OK)
        return e;
    if ((e = client_request_async(c, &h, value, len, ret_future)) == FORQ_OK)
        mark_waiting(*ret_future, OPS_QPUT, name);
    return e;
}

forq_err_t forq_queue_get_async(forq_client_t *c, const char *name, int timeout_ms,
                                forq_future_t **ret_future)
{
    wire_hdr_t h = {0};
    int answer_ms;
    forq_err_t e;

    if (!ret_future)
        return errors_fail(FORQ_ERR_INVALID, "ret_future is required");
    if ((e = prepare(c, OPS_QGET, &h, name, NULL, 0, true, timeout_ms, &answer_ms)) != FORQ_OK)
        return e;
    if ((e = client_request_async(c, &h, NULL, 0, ret_future)) == FORQ_OK)
        mark_waiting(*ret_future, OPS_QGET, name);
    return e;
}

/* A future forq_shared_withdraw() resolved: FORQ_ERR_CANCELLED. */
static bool was_withdrawn(forq_future_t *f)
{
    return f && forq_future_done(f) && f->code && strcmp(f->code, "withdrawn") == 0;
}

forq_err_t forq_queue_reply(forq_future_t *f, size_t *ret_count)
{
    forq_err_t e;

    if (was_withdrawn(f))
        return errors_fail(FORQ_ERR_CANCELLED, "%s", f->detail);
    if ((e = forq_dict_reply(f, NULL, NULL, NULL)) != FORQ_OK)
        return e;

    if (answered(f, OPS_QPUT))
        return errors_fail(FORQ_ERR_FULL, "the queue holds %llu items, its maxsize",
                           (unsigned long long)f->count);
    if (answered(f, OPS_QGET))
        return errors_fail(FORQ_ERR_EMPTY, "no item came into the queue in time");
    if (ret_count)
        *ret_count = (size_t)f->count;
    return FORQ_OK;
}

/* queue.len, queue.clear: an answer that is `count`. */
static forq_err_t count_op(forq_client_t *c, ops_id_t id, const char *name, int timeout_ms,
                           size_t *ret_count)
{
    wire_hdr_t h = {0};
    forq_future_t *f;
    forq_err_t e = call(c, id, &h, name, NULL, 0, false, timeout_ms, &f);

    if (e != FORQ_OK)
        return e;
    if (ret_count)
        *ret_count = (size_t)f->count;
    future_unref(f);
    return FORQ_OK;
}

forq_err_t forq_queue_len(forq_client_t *c, const char *name, int timeout_ms, size_t *ret_len)
{
    return count_op(c, OPS_QLEN, name, timeout_ms, ret_len);
}

forq_err_t forq_queue_clear(forq_client_t *c, const char *name, int timeout_ms, size_t *ret_removed)
{
    return count_op(c, OPS_QCLEAR, name, timeout_ms, ret_removed);
}

forq_err_t forq_queue_range(forq_client_t *c, const char *name, size_t start, size_t limit,
                            int timeout_ms, void **ret_data, size_t *ret_len, bool *ret_more)
{
    wire_hdr_t h = {.start = start, .limit = limit};
    forq_future_t *f;
    forq_err_t e;

    if (!ret_data || !ret_len)
        return errors_fail(FORQ_ERR_INVALID, "ret_data and ret_len are required");
    if ((e = call(c, OPS_QRANGE, &h, name, NULL, 0, false, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (!f->result) {
        e = errors_fail(FORQ_ERR_PROTOCOL, "forqd's answer to queue.range had no page");
    } else {
        *ret_len = f->result_len;
        *ret_data = take_result(f);
        if (ret_more)
            *ret_more = f->more;
    }
    future_unref(f);
    return e;
}

/* ---- locks ---- */

forq_err_t forq_sem_acquire(forq_client_t *c, const char *name, unsigned permits, int lease_ms,
                            int timeout_ms, uint64_t *ret_token)
{
    wire_hdr_t h = {.lease_ms = lease_ms > 0 ? (uint64_t)lease_ms : 0, .permits = permits};
    forq_future_t *f;
    forq_err_t e;

    if (permits < 1 || permits > WIRE_PERMITS_MAX)
        return errors_fail(FORQ_ERR_INVALID, "permits must be 1 to %d, not %u", WIRE_PERMITS_MAX,
                           permits);
    if ((e = call(c, OPS_LACQUIRE, &h, name, NULL, 0, true, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (answered(f, OPS_LACQUIRE) || !f->found)
        e = errors_fail(FORQ_ERR_TIMEOUT, "lock '%s' is held%s", name,
                        timeout_ms ? " and was not granted in time" : "");
    else if (ret_token)
        *ret_token = f->token;
    future_unref(f);
    return e;
}

forq_err_t forq_sem_acquire_async(forq_client_t *c, const char *name, unsigned permits,
                                  int lease_ms, int timeout_ms, forq_future_t **ret_future)
{
    wire_hdr_t h = {.lease_ms = lease_ms > 0 ? (uint64_t)lease_ms : 0, .permits = permits};
    int answer_ms;
    forq_err_t e;

    if (!ret_future)
        return errors_fail(FORQ_ERR_INVALID, "ret_future is required");
    if (permits < 1 || permits > WIRE_PERMITS_MAX)
        return errors_fail(FORQ_ERR_INVALID, "permits must be 1 to %d, not %u", WIRE_PERMITS_MAX,
                           permits);
    if ((e = prepare(c, OPS_LACQUIRE, &h, name, NULL, 0, true, timeout_ms, &answer_ms)) != FORQ_OK)
        return e;
    if ((e = client_request_async(c, &h, NULL, 0, ret_future)) == FORQ_OK)
        mark_waiting(*ret_future, OPS_LACQUIRE, name);
    return e;
}

forq_err_t forq_lock_reply(forq_future_t *f, uint64_t *ret_token)
{
    forq_err_t e;
    bool found;

    if (was_withdrawn(f))
        return errors_fail(FORQ_ERR_CANCELLED, "%s", f->detail);
    if ((e = forq_dict_reply(f, &found, NULL, NULL)) != FORQ_OK)
        return e;
    if (answered(f, OPS_LACQUIRE) || !found)
        return errors_fail(FORQ_ERR_TIMEOUT,
                           "the lock is held (%llu holders) and was not "
                           "granted in time",
                           (unsigned long long)f->count);
    if (ret_token)
        *ret_token = f->token;
    return FORQ_OK;
}

forq_err_t forq_lock_acquire(forq_client_t *c, const char *name, int lease_ms, int timeout_ms,
                             uint64_t *ret_token)
{
    return forq_sem_acquire(c, name, 1, lease_ms, timeout_ms, ret_token);
}

/* release, renew: found false means the token does not hold the lock. */
static forq_err_t token_op(forq_client_t *c, ops_id_t id, const char *name, uint64_t token,
                           int lease_ms, int timeout_ms)
{
    wire_hdr_t h = {
        .token = token, .has_token = true, .lease_ms = lease_ms > 0 ? (uint64_t)lease_ms : 0};
    forq_future_t *f;
    forq_err_t e = call(c, id, &h, name, NULL, 0, false, timeout_ms, &f);

    if (e != FORQ_OK)
        return e;
    if (!f->found)
        e = errors_fail(FORQ_ERR_CONFLICT,
                        "token %llu does not hold lock '%s' (its lease ended, or it was released): "
                        "what it guarded may have been changed since",
                        (unsigned long long)token, name);
    future_unref(f);
    return e;
}

forq_err_t forq_lock_release(forq_client_t *c, const char *name, uint64_t token, int timeout_ms)
{
    return token_op(c, OPS_LRELEASE, name, token, 0, timeout_ms);
}

forq_err_t forq_lock_renew(forq_client_t *c, const char *name, uint64_t token, int lease_ms,
                           int timeout_ms)
{
    return token_op(c, OPS_LRENEW, name, token, lease_ms, timeout_ms);
}

/* ---- fenced dict writes ---- */

static forq_err_t fenced(forq_client_t *c, ops_id_t id, wire_hdr_t *h, const char *name,
                         const char *key, const void *value, size_t len, const char *lock,
                         uint64_t token, int timeout_ms, uint64_t *ret_version)
{
    forq_future_t *f;
    forq_err_t e;

    if (!value)
        return errors_fail(FORQ_ERR_INVALID, "value is NULL");
    if (!lock || !wire_id_is_valid(lock, strlen(lock)))
        return errors_fail(FORQ_ERR_INVALID,
                           "lock name must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    if (!key || !*key || strlen(key) > WIRE_KEY_MAX)
        return errors_fail(FORQ_ERR_INVALID, "dict key must be a string of 1-1024 bytes");
    h->key = wire_str(key);
    h->lock = wire_str(lock);
    h->token = token;
    h->has_token = true;
    if ((e = call(c, id, h, name, value, len, false, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (ret_version)
        *ret_version = f->ver;
    if (answered(f, OPS_CAS))
        e = errors_fail(FORQ_ERR_CONFLICT, "'%s' is at version %llu, not %llu", key,
                        (unsigned long long)f->ver, (unsigned long long)h->ver);
    future_unref(f);
    return e;
}

forq_err_t forq_dict_set_fenced(forq_client_t *c, const char *name, const char *key,
                                const void *value, size_t len, const char *lock, uint64_t token,
                                int timeout_ms, uint64_t *ret_version)
{
    wire_hdr_t h = {0};
    return fenced(c, OPS_SET, &h, name, key, value, len, lock, token, timeout_ms, ret_version);
}

forq_err_t forq_dict_cas_fenced(forq_client_t *c, const char *name, const char *key,
                                uint64_t expected_version, const void *value, size_t len,
                                const char *lock, uint64_t token, int timeout_ms,
                                uint64_t *ret_version)
{
    wire_hdr_t h = {.ver = expected_version, .has_ver = true};
    return fenced(c, OPS_CAS, &h, name, key, value, len, lock, token, timeout_ms, ret_version);
}

/* ---- events ---- */

static forq_err_t change_event(forq_client_t *c, ops_id_t id, const char *name, int timeout_ms)
{
    wire_hdr_t h = {0};
    forq_future_t *f;
    forq_err_t e = call(c, id, &h, name, NULL, 0, false, timeout_ms, &f);

    if (e == FORQ_OK)
        future_unref(f);
    return e;
}

forq_err_t forq_event_set(forq_client_t *c, const char *name, int timeout_ms)
{
    return change_event(c, OPS_ESET, name, timeout_ms);
}

forq_err_t forq_event_clear(forq_client_t *c, const char *name, int timeout_ms)
{
    return change_event(c, OPS_ECLEAR, name, timeout_ms);
}

forq_err_t forq_event_wait(forq_client_t *c, const char *name, int timeout_ms, bool *ret_is_set)
{
    wire_hdr_t h = {0};
    forq_future_t *f;
    forq_err_t e = call(c, OPS_EWAIT, &h, name, NULL, 0, true, timeout_ms, &f);

    if (e != FORQ_OK)
        return e;
    if (ret_is_set)
        *ret_is_set = f->found;
    if (!f->found && timeout_ms != 0)
        e = errors_fail(FORQ_ERR_TIMEOUT, "event '%s' was not set within %d ms", name, timeout_ms);
    future_unref(f);
    return e;
}
