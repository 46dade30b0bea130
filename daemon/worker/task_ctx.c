/* task_ctx.c - the functions <forq/task.h> gives to tasks. They are exported from the forqd
 * executable (linked with --export-dynamic) so that plugins resolve them at load. */
#include "task_ctx.h"

#include "log.h"
#include "ops.h"
#include "util.h"
#include "wlink.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int forq_task_error(forq_task_ctx_t *ctx, const char *type, const char *fmt, ...)
{
    va_list ap;

    ctx->failed = true;
    snprintf(ctx->etype, sizeof(ctx->etype), "%s", type && *type ? type : "Error");
    va_start(ap, fmt);
    vsnprintf(ctx->emsg, sizeof(ctx->emsg), fmt, ap);
    va_end(ap);
    return -1;
}

int forq_task_progress(forq_task_ctx_t *ctx, uint64_t done, uint64_t total, const char *text)
{
    uint64_t now = now_us();
    msgpack_sbuffer sb;
    char t[WIRE_TEXT_MAX + 1];

    if (!ctx->link)
        return 0;
    if (now - ctx->last_progress_us < 50000 && !(total && done >= total))
        return 0;
    ctx->last_progress_us = now;
    snprintf(t, sizeof(t), "%s", text ? text : "");
    wire_hdr_t h = {.cmd = WIRE_PROGRESS,
                    .id = wire_str(ctx->job_id),
                    .done = done,
                    .total = total,
                    .msg = text ? wire_str(t) : (wire_str_t){0}};
    msgpack_sbuffer_init(&sb);
    if (wire_hdr_encode(&sb, &h) == 0)
        wlink_send(ctx->link, sb.data, sb.size, NULL, 0, false); /* best effort */
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

void forq_task_log(const forq_task_ctx_t *ctx, int level, const char *fmt, ...)
{
    char text[4001];
    va_list ap;

    if (level < LOG_ERR)
        level = LOG_ERR;
    if (level > LOG_DEBUG || level > log_level())
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    /* one log line per line of text: a line in forqd's log is one event */
    for (char *line = text, *nl; line; line = nl) {
        if ((nl = strchr(line, '\n')))
            *nl++ = '\0';
        if (!nl && !*line && line != text)
            break; /* the text ended with a newline */
        if (ctx)
            log_msg(level, "job %s: %.1900s", ctx->job_id, line);
        else
            log_msg(level, "%.1900s", line);
    }
}

/* A message read while the task runs: a cancel of this job is noted (and, like any job or
 * cancel, kept for the worker loop). Returns true when it was kept. */
static bool note_cancel(forq_task_ctx_t *ctx, wlink_t *l, const wlink_msg_t *m, const wire_hdr_t *h)
{
    if (h->cmd != WIRE_JOB && h->cmd != WIRE_CANCEL)
        return false;
    if (h->cmd == WIRE_CANCEL && ctx->job_id && wire_str_eq(h->id, ctx->job_id))
        ctx->cancelled = true;
    wlink_hold(l, m);
    return true;
}

int forq_task_cancelled(forq_task_ctx_t *ctx)
{
    msgpack_zone zone;
    wlink_msg_t m;
    wire_hdr_t h;
    wire_err_t err;

    if (!ctx->link || ctx->cancelled)
        return ctx->cancelled;
    msgpack_zone_init(&zone, 512);
    while (wlink_recv(ctx->link, 0, true, &m) > 0) {
        msgpack_zone_clear(&zone);
        if (wire_hdr_decode(m.hdr, m.hlen, &zone, &h, &err) < 0 ||
            !note_cancel(ctx, ctx->link, &m, &h))
            free(m.base); /* a late dict answer, or bytes the worker loop would refuse too */
    }
    msgpack_zone_destroy(&zone);
    return ctx->cancelled;
}

/* ---- the dict service ---- */

int task_ctx_fail(forq_task_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->dict_error, sizeof(ctx->dict_error), fmt, ap);
    va_end(ap);
    return FORQ_TASK_DICT_ERROR;
}

/* Wait for the reply to request `req` on the worker's link: older replies are dropped, a job
 * sent ahead (or its cancel) is kept for the worker loop. Returns 0 with the reply in *m (owned:
 * free m->base) and its header in *h, or -1 when none came in time or the link failed. */
static int dict_recv(forq_task_ctx_t *ctx, wlink_t *l, uint64_t req, int timeout_ms, wlink_msg_t *m,
                     msgpack_zone *zone, wire_hdr_t *h)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    wire_err_t err;

    for (;;) {
        int64_t left = timeout_ms < 0 ? -1 : (int64_t)(deadline - now_ms());

        if (left == 0 || (timeout_ms >= 0 && left < 0) || wlink_recv(l, (int)left, true, m) <= 0)
            return -1;
        msgpack_zone_clear(zone);
        if (wire_hdr_decode(m->hdr, m->hlen, zone, h, &err) < 0) {
            free(m->base);
            continue;
        }
        if (note_cancel(ctx, l, m, h))
            continue;
        if (h->has_req && h->req == req &&
            (!m->has_payload || wire_check(m->payload, m->plen, WIRE_DEPTH_MAX, &err) == 0))
            return 0;
        free(m->base);
    }
}

static int dict_call(forq_task_ctx_t *ctx, const char *op, const char *name, const char *key,
                     const void *value, size_t len, int64_t delta, uint64_t version, int timeout_ms,
                     size_t limit, void **ret_value, size_t *ret_len, uint64_t *ret_version,
                     char **ret_next)
{
    bool next = version == FORQ_TASK_DICT_NEXT_CHANGE;
    const ops_desc_t *d = ops_find_verb(OPS_KIND_DICT, op);
    wire_hdr_t h = {.op = wire_str(op),
                    .name = wire_str(name),
                    .key = wire_str(key),
                    .delta = delta,
                    .has_delta = d && (d->takes & OPS_F_DELTA),
                    .timeout_ms = timeout_ms > 0 ? (uint64_t)timeout_ms : 0,
                    .limit = limit};
    msgpack_zone zone;
    wlink_msg_t m;
    wire_hdr_t r;
    wire_err_t err;
    int rc;

    if (!ctx->link)
        return task_ctx_fail(ctx, "the dict service is reachable only from a task run by forqd");
    if (!d)
        return task_ctx_fail(ctx,
                             "unknown dict op '%s' (queues, locks and events have calls of "
                             "their own: forq_task_queue_*, ...)",
                             op ? op : "(null)");
    if (!name || !wire_id_is_valid(name, strlen(name)))
        return task_ctx_fail(ctx, "dict name must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    if (value && wire_check(value, len, WIRE_DEPTH_MAX, &err) < 0)
        return task_ctx_fail(ctx, "the value is not one msgpack value: %s", err.msg);
    /* cas needs the version it expects; wait takes the one seen, unless it waits for the next
     * change */
    if (d && ((d->needs & OPS_F_VER) || ((d->takes & OPS_F_VER) && !next))) {
        h.ver = version;
        h.has_ver = true;
    }
    msgpack_zone_init(&zone, 1024);
    rc = task_ctx_call(ctx, &h, value, len, timeout_ms > 0 ? timeout_ms + 5000 : 30000, &zone, &m,
                       &r);
    d = ops_find(h.op.ptr, h.op.len);
    if (rc == FORQ_TASK_DICT_OK) {
        if (d->reply_code && wire_str_eq(r.code, d->reply_code))
            rc = d->id == OPS_CAS ? FORQ_TASK_DICT_CONFLICT : FORQ_TASK_DICT_TIMEOUT;
        else if (!r.found && d->absent_is_not_found)
            rc = FORQ_TASK_DICT_NOT_FOUND;
        if (ret_version)
            *ret_version = d->reply == OPS_REPLY_COUNT ? r.count : r.ver;
        if (ret_value) {
            *ret_value = NULL;
            if (m.has_payload && rc == FORQ_TASK_DICT_OK) {
                *ret_value = xmalloc(m.plen ? m.plen : 1);
                memcpy(*ret_value, m.payload, m.plen);
            }
        }
        if (ret_len)
            *ret_len = m.has_payload ? m.plen : 0;
        if (ret_next)
            *ret_next = r.more && r.key.ptr ? xstrndup(r.key.ptr, r.key.len) : NULL;
        free(m.base);
    }
    msgpack_zone_destroy(&zone);
    return rc;
}

int task_ctx_call(forq_task_ctx_t *ctx, wire_hdr_t *h, const void *value, size_t len, int wait_ms,
                  msgpack_zone *zone, wlink_msg_t *ret_m, wire_hdr_t *ret)
{
    msgpack_sbuffer sb;
    wire_err_t err;

    if (!ctx->link)
        return task_ctx_fail(ctx, "the dict service is reachable only from a task run by forqd");
    h->cmd = WIRE_DICT;
    h->req = ++ctx->dict_req;
    h->has_req = true;
    /* refused here with the words forqd would answer, without the round trip */
    if (ops_check_request(h, value, len, value != NULL, NULL, &err) < 0)
        return task_ctx_fail(ctx, "%s: %s", err.code, err.msg);
    msgpack_sbuffer_init(&sb);
    if (wire_hdr_encode(&sb, h) < 0 ||
        wlink_send(ctx->link, sb.data, sb.size, value, value ? len : 0, value != NULL) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return task_ctx_fail(ctx, "cannot send the request to forqd");
    }
    msgpack_sbuffer_destroy(&sb);
    if (dict_recv(ctx, ctx->link, h->req, wait_ms, ret_m, zone, ret) < 0)
        return task_ctx_fail(ctx, "forqd did not answer the %.*s request", (int)h->op.len,
                             h->op.ptr);
    if (ret->cmd == WIRE_ERROR) {
        task_ctx_fail(ctx, "%.*s: %.*s", (int)ret->code.len, ret->code.ptr, (int)ret->msg.len,
                      ret->msg.ptr);
        free(ret_m->base);
        return FORQ_TASK_DICT_ERROR;
    }
    return FORQ_TASK_DICT_OK;
}

int forq_task_dict(forq_task_ctx_t *ctx, const char *op, const char *name, const char *key,
                   const void *value, size_t len, int64_t delta, uint64_t version, int timeout_ms,
                   void **ret_value, size_t *ret_len, uint64_t *ret_version)
{
    return dict_call(ctx, op, name, key, value, len, delta, version, timeout_ms, 0, ret_value,
                     ret_len, ret_version, NULL);
}

int forq_task_dict_page(forq_task_ctx_t *ctx, const char *name, int items, const char *after,
                        size_t limit, void **ret_data, size_t *ret_len, char **ret_next)
{
    return dict_call(ctx, items ? "items" : "keys", name, after, NULL, 0, 0, 0, 0, limit, ret_data,
                     ret_len, NULL, ret_next);
}

const char *forq_task_dict_error(const forq_task_ctx_t *ctx)
{
    return ctx->dict_error;
}

int forq_task_dict_incr(forq_task_ctx_t *ctx, const char *name, const char *key, int64_t delta,
                        int64_t *ret_value)
{
    void *v = NULL;
    size_t len = 0, off = 0;
    msgpack_zone zone;
    msgpack_object o;
    int rc = forq_task_dict(ctx, ops_get(OPS_INCR)->name, name, key, NULL, 0, delta, 0, 0, &v, &len,
                            NULL);

    if (rc != FORQ_TASK_DICT_OK)
        return rc;
    msgpack_zone_init(&zone, 64);
    if (v && msgpack_unpack(v, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
        (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER || o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)) {
        if (ret_value)
            *ret_value = o.via.i64;
    } else {
        rc = task_ctx_fail(ctx, "forqd's incr answer had no integer");
    }
    msgpack_zone_destroy(&zone);
    free(v);
    return rc;
}

const char *forq_task_job_id(const forq_task_ctx_t *ctx)
{
    return ctx->job_id;
}

const char *forq_task_name(const forq_task_ctx_t *ctx)
{
    return ctx->task;
}

uint32_t forq_task_arg_count(const msgpack_object *args)
{
    return args->type == MSGPACK_OBJECT_ARRAY ? args->via.array.size : 1;
}

const msgpack_object *forq_task_arg(const msgpack_object *args, uint32_t i)
{
    if (args->type != MSGPACK_OBJECT_ARRAY)
        return i == 0 ? args : NULL;
    return i < args->via.array.size ? &args->via.array.ptr[i] : NULL;
}

static const char *type_word(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "a float";
    case MSGPACK_OBJECT_STR:
        return "a string";
    case MSGPACK_OBJECT_BIN:
        return "bytes";
    case MSGPACK_OBJECT_ARRAY:
        return "an array";
    case MSGPACK_OBJECT_MAP:
        return "a map";
    case MSGPACK_OBJECT_EXT:
        return "an extension value";
    }
    return "a value";
}

static const msgpack_object *need(forq_task_ctx_t *ctx, const msgpack_object *args, uint32_t i)
{
    const msgpack_object *o = forq_task_arg(args, i);
    if (!o)
        forq_task_error(ctx, "TypeError", "%s() missing argument %u", ctx->task, i + 1);
    return o;
}

int forq_task_arg_int(forq_task_ctx_t *ctx, const msgpack_object *args, uint32_t i, int64_t *ret)
{
    const msgpack_object *o = need(ctx, args, i);
    if (!o)
        return -1;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *ret = o->via.i64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX)
            return forq_task_error(ctx, "OverflowError", "%s() argument %u is too large", ctx->task,
                                   i + 1);
        *ret = (int64_t)o->via.u64;
        return 0;
    }
    return forq_task_error(ctx, "TypeError", "%s() argument %u must be an integer, not %s",
                           ctx->task, i + 1, type_word(o));
}

int forq_task_arg_double(forq_task_ctx_t *ctx, const msgpack_object *args, uint32_t i, double *ret)
{
    const msgpack_object *o = need(ctx, args, i);
    if (!o)
        return -1;
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *ret = o->via.f64;
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *ret = (double)o->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *ret = (double)o->via.i64;
        return 0;
    default:
        return forq_task_error(ctx, "TypeError", "%s() argument %u must be a number, not %s",
                               ctx->task, i + 1, type_word(o));
    }
}

int forq_task_arg_bytes(forq_task_ctx_t *ctx, const msgpack_object *args, uint32_t i,
                        const char **ret, size_t *ret_len)
{
    const msgpack_object *o = need(ctx, args, i);
    if (!o)
        return -1;
    if (o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN) {
        *ret = o->via.str.ptr; /* str and bin share their layout */
        *ret_len = o->via.str.size;
        return 0;
    }
    return forq_task_error(ctx, "TypeError", "%s() argument %u must be a string or bytes, not %s",
                           ctx->task, i + 1, type_word(o));
}

int forq_task_arg_range(forq_task_ctx_t *ctx, const msgpack_object *args, uint32_t min,
                        uint32_t max)
{
    uint32_t n = forq_task_arg_count(args);
    if (n < min || n > max) {
        if (min == max)
            return forq_task_error(ctx, "TypeError", "%s() takes %u argument%s but %u %s given",
                                   ctx->task, min, min == 1 ? "" : "s", n, n == 1 ? "was" : "were");
        return forq_task_error(ctx, "TypeError", "%s() takes %u to %u arguments but %u %s given",
                               ctx->task, min, max, n, n == 1 ? "was" : "were");
    }
    return 0;
}

/* ---- typed dict get and set ---- */

/* A typed get's value: the reply (raw) and the object unpacked from it into zone. */
typedef struct {
    msgpack_zone zone;
    msgpack_object o;
    void *raw; /* the reply the object borrows from */
} got_t;

/* Get key and unpack its value into g: FORQ_TASK_DICT_OK with g->o, or what the get returned.
 * Either way the caller ends with got_done. */
static int got_get(forq_task_ctx_t *ctx, const char *name, const char *key, got_t *g)
{
    size_t len = 0, off = 0;
    int rc;

    msgpack_zone_init(&g->zone, 256);
    g->raw = NULL;
    rc = forq_task_dict(ctx, ops_get(OPS_GET)->name, name, key, NULL, 0, 0, 0, 0, &g->raw, &len,
                        NULL);
    if (rc != FORQ_TASK_DICT_OK)
        return rc;
    /* dict_recv checked the payload's structure before it was handed over */
    if (!g->raw || msgpack_unpack(g->raw, len, &off, &g->zone, &g->o) != MSGPACK_UNPACK_SUCCESS)
        return task_ctx_fail(ctx, "forqd's get answer for dict '%s' key '%s' had no value", name,
                             key);
    return FORQ_TASK_DICT_OK;
}

/* Free what got_get kept; returns rc. */
static int got_done(got_t *g, int rc)
{
    msgpack_zone_destroy(&g->zone);
    free(g->raw);
    return rc;
}

static int wrong_type(forq_task_ctx_t *ctx, const char *name, const char *key,
                      const msgpack_object *o, const char *want)
{
    return task_ctx_fail(ctx, "dict '%s' key '%s' holds %s, not %s", name, key, type_word(o), want);
}

int forq_task_dict_get_int(forq_task_ctx_t *ctx, const char *name, const char *key,
                           int64_t *ret_value)
{
    got_t g;
    int rc;

    if ((rc = got_get(ctx, name, key, &g)) == FORQ_TASK_DICT_OK) {
        const msgpack_object *o = &g.o;
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
            (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)) {
            if (ret_value)
                *ret_value = o->via.i64;
        } else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            rc = task_ctx_fail(ctx, "dict '%s' key '%s' holds an integer above INT64_MAX", name,
                               key);
        } else {
            rc = wrong_type(ctx, name, key, o, "an integer");
        }
    }
    return got_done(&g, rc);
}

int forq_task_dict_get_double(forq_task_ctx_t *ctx, const char *name, const char *key,
                              double *ret_value)
{
    got_t g;
    double d = 0;
    int rc;

    if ((rc = got_get(ctx, name, key, &g)) == FORQ_TASK_DICT_OK) {
        const msgpack_object *o = &g.o;
        if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
            d = o->via.f64;
        else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            d = (double)o->via.u64;
        else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            d = (double)o->via.i64;
        else
            rc = wrong_type(ctx, name, key, o, "a number");
        if (rc == FORQ_TASK_DICT_OK && ret_value)
            *ret_value = d;
    }
    return got_done(&g, rc);
}

int forq_task_dict_get_str(forq_task_ctx_t *ctx, const char *name, const char *key, char **ret_str,
                           size_t *ret_len)
{
    got_t g;
    int rc;

    if ((rc = got_get(ctx, name, key, &g)) == FORQ_TASK_DICT_OK) {
        const msgpack_object *o = &g.o;
        if (o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN) {
            /* str and bin share their layout; an empty one may have no pointer */
            if (ret_str) {
                *ret_str = xmalloc(o->via.str.size + 1);
                if (o->via.str.size)
                    memcpy(*ret_str, o->via.str.ptr, o->via.str.size);
                (*ret_str)[o->via.str.size] = '\0';
            }
            if (ret_len)
                *ret_len = o->via.str.size;
        } else {
            rc = wrong_type(ctx, name, key, o, "a string or bytes");
        }
    }
    return got_done(&g, rc);
}

/* A typed set's value, packed into sb by pk. */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} packed_t;

/* Start p; returns the packer to pack the one value with. */
static msgpack_packer *packed_init(packed_t *p)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
    return &p->pk;
}

/* Set key to the value packed in p, and free p. */
static int dict_set_packed(forq_task_ctx_t *ctx, const char *name, const char *key, packed_t *p,
                           uint64_t *ret_version)
{
    int rc = forq_task_dict(ctx, ops_get(OPS_SET)->name, name, key, p->sb.data, p->sb.size, 0, 0, 0,
                            NULL, NULL, ret_version);
    msgpack_sbuffer_destroy(&p->sb);
    return rc;
}

int forq_task_dict_set_int(forq_task_ctx_t *ctx, const char *name, const char *key, int64_t value,
                           uint64_t *ret_version)
{
    packed_t p;

    msgpack_pack_int64(packed_init(&p), value);
    return dict_set_packed(ctx, name, key, &p, ret_version);
}

int forq_task_dict_set_double(forq_task_ctx_t *ctx, const char *name, const char *key, double value,
                              uint64_t *ret_version)
{
    packed_t p;

    msgpack_pack_double(packed_init(&p), value);
    return dict_set_packed(ctx, name, key, &p, ret_version);
}

int forq_task_dict_set_str(forq_task_ctx_t *ctx, const char *name, const char *key,
                           const char *value, uint64_t *ret_version)
{
    packed_t p;

    if (!value)
        return task_ctx_fail(ctx, "forq_task_dict_set_str: the value is NULL");
    msgpack_pack_str_with_body(packed_init(&p), value, strlen(value));
    return dict_set_packed(ctx, name, key, &p, ret_version);
}

int forq_task_dict_set_bytes(forq_task_ctx_t *ctx, const char *name, const char *key,
                             const void *value, size_t len, uint64_t *ret_version)
{
    packed_t p;
    msgpack_packer *pk;

    if (!value && len)
        return task_ctx_fail(ctx, "forq_task_dict_set_bytes: the value is NULL");
    pk = packed_init(&p);
    msgpack_pack_bin(pk, len);
    if (len)
        msgpack_pack_bin_body(pk, value, len);
    return dict_set_packed(ctx, name, key, &p, ret_version);
}
