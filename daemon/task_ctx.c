/* task_ctx.c - the functions <forq/task.h> gives to tasks. They are exported from the forqd
 * executable (linked with --export-dynamic) so that plugins resolve them at load. */
#include "task_ctx.h"

#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

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

    if (!ctx->sock)
        return 0;
    if (now - ctx->last_progress_us < 50000 && !(total && done >= total))
        return 0;
    ctx->last_progress_us = now;
    snprintf(t, sizeof(t), "%s", text ? text : "");
    wire_hdr_t h = {.cmd = WIRE_PROGRESS, .id = wire_str(ctx->job_id), .done = done,
                    .total = total, .msg = text ? wire_str(t) : (wire_str_t){0}};
    msgpack_sbuffer_init(&sb);
    if (wire_hdr_encode(&sb, &h) == 0)
        zmq_send(ctx->sock, sb.data, sb.size, ZMQ_DONTWAIT); /* best effort */
    msgpack_sbuffer_destroy(&sb);
    return 0;
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
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a float";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_BIN: return "bytes";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    case MSGPACK_OBJECT_EXT: return "an extension value";
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
            return forq_task_error(ctx, "OverflowError", "%s() argument %u is too large",
                                   ctx->task, i + 1);
        *ret = (int64_t)o->via.u64;
        return 0;
    }
    return forq_task_error(ctx, "TypeError", "%s() argument %u must be an integer, not %s",
                           ctx->task, i + 1, type_word(o));
}

int forq_task_arg_double(forq_task_ctx_t *ctx, const msgpack_object *args, uint32_t i,
                         double *ret)
{
    const msgpack_object *o = need(ctx, args, i);
    if (!o)
        return -1;
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *ret = o->via.f64; return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *ret = (double)o->via.u64; return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *ret = (double)o->via.i64; return 0;
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
            return forq_task_error(ctx, "TypeError", "%s() takes %u argument%s but %u were given",
                                   ctx->task, min, min == 1 ? "" : "s", n);
        return forq_task_error(ctx, "TypeError",
                               "%s() takes %u to %u arguments but %u were given", ctx->task, min,
                               max, n);
    }
    return 0;
}
