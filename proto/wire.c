/* wire.c - structural check of untrusted msgpack and the header frame codec.
 *
 * wire_check() is a single pass over the bytes with a small stack of "elements still to read"
 * per open container. It keeps the sum of all pending elements and refuses a container whose
 * declared count, added to that sum, exceeds the bytes left: every element takes at least one
 * byte, so a frame that passes cannot make msgpack-c reserve more than a small multiple of its
 * own size. Strings, binaries and extensions must fit in what remains. Exactly one value, no
 * trailing bytes.
 *
 * Headers are flat maps (depth 1) of short string keys to scalars; unknown keys are ignored so
 * that later versions can add fields, known keys must have their type and bounds. */
#include "wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(wire_err_t *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(wire_err_t *err, const char *code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return -EBADMSG;
}

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Check the one value at the start of data; *ret_len gets its length. */
static int check_one(const void *data, size_t len, unsigned max_depth, size_t *ret_len,
                     wire_err_t *err)
{
    const uint8_t *p = data;
    size_t pos = 0;
    uint64_t stack[WIRE_DEPTH_MAX + 1];
    unsigned depth = 0;
    uint64_t pending = 1; /* elements declared and not yet read, all levels */

    if (max_depth > WIRE_DEPTH_MAX)
        max_depth = WIRE_DEPTH_MAX;
    if (len == 0)
        return fail(err, "bad_message", "empty frame where a msgpack value was expected");
    stack[0] = 1;
    for (;;) {
        while (stack[depth] == 0) {
            if (depth == 0)
                goto done;
            depth--;
        }
        if (pos >= len)
            return fail(err, "bad_message", "msgpack value truncated at byte %zu", pos);
        stack[depth]--;
        pending--;

        uint8_t b = p[pos++];
        size_t left = len - pos;
        uint64_t n = 0;    /* container elements */
        uint64_t skip = 0; /* bytes of scalar body */
        unsigned lenb = 0; /* bytes of a length field */
        bool container = false;

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool: nothing follows */
        } else if (b >= 0x80 && b <= 0x8f) {
            n = 2u * (b & 0x0f);
            container = true;
        } else if (b >= 0x90 && b <= 0x9f) {
            n = b & 0x0f;
            container = true;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            /* one line per type byte reads better than clang-format's layout */
            /* clang-format off */
            switch (b) {
            case 0xc4: case 0xd9: lenb = 1; break;             /* bin8, str8 */
            case 0xc5: case 0xda: lenb = 2; break;             /* bin16, str16 */
            case 0xc6: case 0xdb: lenb = 4; break;             /* bin32, str32 */
            case 0xc7: lenb = 1; skip = 1; break;              /* ext8: len, type */
            case 0xc8: lenb = 2; skip = 1; break;              /* ext16 */
            case 0xc9: lenb = 4; skip = 1; break;              /* ext32 */
            case 0xca: skip = 4; break;                        /* float32 */
            case 0xcb: skip = 8; break;                        /* float64 */
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                        /* fixext1..16: type + data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: lenb = 2; container = true; break;      /* array16 */
            case 0xdd: lenb = 4; container = true; break;      /* array32 */
            case 0xde: lenb = 2; container = true; break;      /* map16 */
            case 0xdf: lenb = 4; container = true; break;      /* map32 */
            default:
                return fail(err, "bad_message", "invalid msgpack type byte 0x%02x at byte %zu",
                            b, pos - 1);
            }
            /* clang-format on */
        }
        if (lenb) {
            if (left < lenb)
                return fail(err, "bad_message", "msgpack length field truncated at byte %zu", pos);
            uint64_t v = be(p + pos, lenb);
            pos += lenb;
            left -= lenb;
            if (container)
                n = (b == 0xde || b == 0xdf) ? 2 * v : v;
            else
                skip += v;
        }
        if (container) {
            if (n > left || pending + n > left)
                return fail(err, "bad_message",
                            "msgpack container at byte %zu declares %llu elements but only %zu "
                            "bytes follow",
                            pos, (unsigned long long)n, left);
            if (n > 0) {
                if (depth + 1 > max_depth)
                    return fail(err, "too_deep", "msgpack value nested deeper than %u levels",
                                max_depth);
                stack[++depth] = n;
                pending += n;
            }
        } else if (skip) {
            if (skip > left)
                return fail(err, "bad_message",
                            "msgpack value at byte %zu declares %llu bytes but only %zu follow",
                            pos, (unsigned long long)skip, left);
            pos += skip;
        }
    }
done:
    *ret_len = pos;
    return 0;
}

int wire_check(const void *data, size_t len, unsigned max_depth, wire_err_t *err)
{
    size_t n;
    int r = check_one(data, len, max_depth, &n, err);
    if (r < 0)
        return r;
    if (n != len)
        return fail(err, "bad_message", "%zu trailing bytes after the msgpack value", len - n);
    return 0;
}

int wire_value_len(const void *data, size_t len, unsigned max_depth, size_t *ret_len,
                   wire_err_t *err)
{
    return check_one(data, len, max_depth, ret_len, err);
}

int wire_unpack(const void *data, size_t len, msgpack_zone *zone, msgpack_object *ret,
                wire_err_t *err)
{
    size_t off = 0;
    int r = wire_check(data, len, WIRE_DEPTH_MAX, err);
    if (r < 0)
        return r;
    if (msgpack_unpack(data, len, &off, zone, ret) != MSGPACK_UNPACK_SUCCESS)
        return fail(err, "bad_message", "msgpack value could not be unpacked");
    return 0;
}

/* ---- names ---- */

/* two tables that read better in columns */
/* clang-format off */
static const char *const cmd_names[] = {
    [WIRE_SUBMIT] = "submit",  [WIRE_CANCEL] = "cancel",        [WIRE_STATUS] = "status",
    [WIRE_STATS] = "stats",    [WIRE_PING] = "ping",            [WIRE_RESULT] = "result",
    [WIRE_CANCEL_REPLY] = "cancel_reply", [WIRE_STATUS_REPLY] = "status_reply",
    [WIRE_STATS_REPLY] = "stats_reply",   [WIRE_PONG] = "pong", [WIRE_ERROR] = "error",
    [WIRE_READY] = "ready",    [WIRE_JOB] = "job",              [WIRE_DONE] = "done",
    [WIRE_FETCH] = "fetch",    [WIRE_PROGRESS] = "progress",
    [WIRE_DICT] = "dict",      [WIRE_DICT_REPLY] = "dict_reply",
};

static const char *const state_names[] = {
    [WIRE_ST_QUEUED] = "queued",       [WIRE_ST_RUNNING] = "running", [WIRE_ST_OK] = "ok",
    [WIRE_ST_ERROR] = "error",         [WIRE_ST_CANCELLED] = "cancelled",
    [WIRE_ST_TIMEOUT] = "timeout",     [WIRE_ST_CRASHED] = "crashed",
    [WIRE_ST_REJECTED] = "rejected",   [WIRE_ST_LOST] = "lost",       [WIRE_ST_UNKNOWN] = "unknown",
};
/* clang-format on */

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static int lookup(const char *const *names, size_t count, const char *s, size_t len)
{
    for (size_t i = 1; i < count; i++)
        if (names[i] && strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
            return (int)i;
    return 0;
}

const char *wire_cmd_name(wire_cmd_t cmd)
{
    return (cmd > 0 && (size_t)cmd < N_ELEMS(cmd_names)) ? cmd_names[cmd] : NULL;
}

wire_cmd_t wire_cmd_from(const char *name, size_t len)
{
    return (wire_cmd_t)lookup(cmd_names, N_ELEMS(cmd_names), name, len);
}

const char *wire_state_name(wire_state_t st)
{
    return (st > 0 && (size_t)st < N_ELEMS(state_names)) ? state_names[st] : NULL;
}

wire_state_t wire_state_from(const char *name, size_t len)
{
    return (wire_state_t)lookup(state_names, N_ELEMS(state_names), name, len);
}

static bool name_chars_ok(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

bool wire_id_is_valid(const char *s, size_t len)
{
    return name_chars_ok(s, len, WIRE_ID_MAX);
}

bool wire_task_is_valid(const char *s, size_t len)
{
    return name_chars_ok(s, len, WIRE_TASK_MAX);
}

wire_str_t wire_str(const char *s)
{
    return (wire_str_t){s, s ? strlen(s) : 0};
}

bool wire_str_eq(wire_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.ptr && s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* ---- header decode ---- */

typedef enum { F_STR, F_UINT, F_INT, F_BOOL } ftype_t;

/* A known header field: its key, type, bound and where it lands in wire_hdr_t. */
typedef struct {
    const char *key; /* on the wire */
    ftype_t type;    /* what the value must be */
    uint64_t max;    /* upper bound (strings: bytes), 0 = the type's own */
    size_t off;      /* offset of the value in wire_hdr_t */
    size_t size;     /* bytes of the value's member: 4 or 8 for integers */
    size_t has_off;  /* offset of its has_ flag, or SIZE_MAX */
} field_t;

#define NOHAS         SIZE_MAX
#define MSIZE(member) sizeof(((wire_hdr_t *)0)->member)
#define FLD(k, t, m, member)                                                                       \
    {                                                                                              \
        k, t, m, offsetof(wire_hdr_t, member), MSIZE(member), NOHAS                                \
    }
#define FLDH(k, t, m, member, has)                                                                 \
    {                                                                                              \
        k, t, m, offsetof(wire_hdr_t, member), MSIZE(member), offsetof(wire_hdr_t, has)            \
    }

/* clang-format off */
static const field_t fields[] = {
    FLD("id", F_STR, WIRE_ID_MAX, id),
    FLDH("req", F_UINT, 0, req, has_req),
    FLD("task", F_STR, WIRE_TASK_MAX, task),
    FLD("timeout_ms", F_UINT, 0, timeout_ms),
    FLD("deadline_ms", F_UINT, 0, deadline_ms),
    FLDH("priority", F_UINT, WIRE_PRIORITY_MAX, priority, has_priority),
    FLD("retries", F_UINT, WIRE_RETRIES_MAX, retries),
    FLD("max_result", F_UINT, 0, max_result),
    FLD("as_bytes", F_UINT, 0, as_bytes),
    FLD("cpu_s", F_UINT, UINT32_MAX, cpu_s),
    FLD("code", F_STR, WIRE_TEXT_MAX, code),
    FLD("etype", F_STR, WIRE_TEXT_MAX, etype),
    FLD("msg", F_STR, WIRE_TEXT_MAX, msg),
    FLD("signal", F_INT, 0, signal),
    FLDH("exit", F_INT, 0, exit_code, has_exit),
    FLD("attempts", F_UINT, 0, attempts),
    FLD("pid", F_INT, 0, pid),
    FLD("run_us", F_UINT, 0, run_us),
    FLD("outcome", F_STR, WIRE_TEXT_MAX, outcome),
    FLD("retire", F_BOOL, 0, retire),
    FLD("chunk", F_BOOL, 0, chunk),
    FLD("done", F_UINT, 0, done),
    FLD("total", F_UINT, 0, total),
    FLD("op", F_STR, 16, op),
    FLD("name", F_STR, WIRE_ID_MAX, name),
    FLD("key", F_STR, WIRE_KEY_MAX, key),
    FLDH("ver", F_UINT, 0, ver, has_ver),
    FLDH("delta", F_INT, 0, delta, has_delta),
    FLD("limit", F_UINT, 0, limit),
    FLD("found", F_BOOL, 0, found),
    FLD("count", F_UINT, 0, count),
    FLD("more", F_BOOL, 0, more),
};
/* clang-format on */

/* Store a bounded uint64 into a member of the width it has. */
static void store_uint(wire_hdr_t *h, const field_t *f, uint64_t v)
{
    char *at = (char *)h + f->off;
    if (f->size == sizeof(uint32_t)) {
        uint32_t v32 = (uint32_t)v;
        memcpy(at, &v32, sizeof(v32));
    } else {
        memcpy(at, &v, sizeof(v));
    }
}

static int decode_field(wire_hdr_t *h, const field_t *f, const msgpack_object *v, wire_err_t *err)
{
    char *at = (char *)h + f->off;

    switch (f->type) {
    case F_STR:
        if (v->type != MSGPACK_OBJECT_STR)
            return fail(err, "bad_field", "header field '%s' must be a string", f->key);
        if (v->via.str.size > f->max)
            return fail(err, "bad_field",
                        "header field '%s' is %u bytes, more than the %llu allowed", f->key,
                        v->via.str.size, (unsigned long long)f->max);
        *(wire_str_t *)(void *)at = (wire_str_t){v->via.str.ptr, v->via.str.size};
        break;
    case F_UINT:
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return fail(err, "bad_field", "header field '%s' must be a non-negative integer",
                        f->key);
        if ((f->max && v->via.u64 > f->max) ||
            (f->size == sizeof(uint32_t) && v->via.u64 > UINT32_MAX))
            return fail(err, "bad_field", "header field '%s' is %llu, more than the %llu allowed",
                        f->key, (unsigned long long)v->via.u64, (unsigned long long)f->max);
        store_uint(h, f, v->via.u64);
        break;
    case F_INT:
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
            *(int64_t *)(void *)at = (int64_t)v->via.u64;
        else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            *(int64_t *)(void *)at = v->via.i64;
        else
            return fail(err, "bad_field", "header field '%s' must be an integer", f->key);
        break;
    case F_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return fail(err, "bad_field", "header field '%s' must be true or false", f->key);
        *(bool *)(void *)at = v->via.boolean;
        break;
    }
    if (f->has_off != NOHAS)
        *(bool *)((char *)h + f->has_off) = true;
    return 0;
}

static const field_t *find_field(const char *k, size_t n)
{
    for (size_t i = 0; i < N_ELEMS(fields); i++)
        if (strlen(fields[i].key) == n && memcmp(fields[i].key, k, n) == 0)
            return &fields[i];
    return NULL;
}

/* The fields each command cannot do without. */
static int check_required(const wire_hdr_t *h, wire_err_t *err)
{
    switch (h->cmd) {
    case WIRE_SUBMIT:
    case WIRE_JOB:
        if (!h->task.ptr)
            return fail(err, "missing_field", "'%s' needs a 'task' field", wire_cmd_name(h->cmd));
        if (!wire_task_is_valid(h->task.ptr, h->task.len))
            return fail(err, "bad_field",
                        "task name must be 1-%d characters of A-Z a-z 0-9 . _ : -", WIRE_TASK_MAX);
        __attribute__((fallthrough)); /* a job also needs its id */
    case WIRE_CANCEL:
    case WIRE_STATUS:
    case WIRE_FETCH:
    case WIRE_PROGRESS:
    case WIRE_RESULT:
    case WIRE_DONE:
        if (!h->id.ptr)
            return fail(err, "missing_field", "'%s' needs an 'id' field", wire_cmd_name(h->cmd));
        if (!wire_id_is_valid(h->id.ptr, h->id.len))
            return fail(err, "bad_field", "job id must be 1-%d characters of A-Z a-z 0-9 . _ : -",
                        WIRE_ID_MAX);
        break;
    default:
        break;
    }
    if (h->cmd == WIRE_DICT) {
        if (!h->op.ptr || !h->name.ptr)
            return fail(err, "missing_field", "'dict' needs 'op' and 'name' fields");
        if (!wire_id_is_valid(h->name.ptr, h->name.len))
            return fail(err, "bad_field",
                        "dict name must be 1-%d characters of A-Z a-z 0-9 . _ : -", WIRE_ID_MAX);
    }
    if ((h->cmd == WIRE_RESULT || h->cmd == WIRE_DONE || h->cmd == WIRE_STATUS_REPLY) &&
        h->state == WIRE_ST_NONE)
        return fail(err, "missing_field", "'%s' needs a 'status' field", wire_cmd_name(h->cmd));
    return 0;
}

int wire_hdr_decode(const void *data, size_t len, msgpack_zone *zone, wire_hdr_t *ret,
                    wire_err_t *err)
{
    msgpack_object o;
    size_t off = 0;
    bool has_version = false;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (len > WIRE_HEADER_MAX)
        return fail(err, "too_large", "header frame is %zu bytes, more than the %d allowed", len,
                    WIRE_HEADER_MAX);
    r = wire_check(data, len, 1, err);
    if (r < 0)
        return r;
    if (msgpack_unpack(data, len, &off, zone, &o) != MSGPACK_UNPACK_SUCCESS)
        return fail(err, "bad_message", "header frame could not be unpacked");
    if (o.type != MSGPACK_OBJECT_MAP)
        return fail(err, "bad_header", "header frame must be a msgpack map");
    if (o.via.map.size > WIRE_KEYS_MAX)
        return fail(err, "bad_header", "header map has %u entries, more than the %d allowed",
                    o.via.map.size, WIRE_KEYS_MAX);

    /* First pass for what an error reply needs (cmd, id, req), so that a later field's error
     * can still be answered precisely. */
    for (uint32_t i = 0; i < o.via.map.size; i++) {
        const msgpack_object_kv *kv = &o.via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR)
            return fail(err, "bad_header", "header keys must be strings");
        wire_str_t k = {kv->key.via.str.ptr, kv->key.via.str.size};
        if (wire_str_eq(k, "cmd") && kv->val.type == MSGPACK_OBJECT_STR)
            ret->cmd = wire_cmd_from(kv->val.via.str.ptr, kv->val.via.str.size);
        else if (wire_str_eq(k, "req") && kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            ret->req = kv->val.via.u64;
            ret->has_req = true;
        } else if (wire_str_eq(k, "id") && kv->val.type == MSGPACK_OBJECT_STR &&
                   wire_id_is_valid(kv->val.via.str.ptr, kv->val.via.str.size))
            ret->id = (wire_str_t){kv->val.via.str.ptr, kv->val.via.str.size};
    }

    for (uint32_t i = 0; i < o.via.map.size; i++) {
        const msgpack_object_kv *kv = &o.via.map.ptr[i];
        const char *k = kv->key.via.str.ptr;
        size_t kn = kv->key.via.str.size;
        const field_t *f;

        if (kn == 1 && k[0] == 'v') {
            if (kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return fail(err, "bad_field", "header field 'v' must be a positive integer");
            if (kv->val.via.u64 != WIRE_VERSION)
                return fail(err, "bad_version",
                            "protocol version %llu is not supported; this peer speaks version %d",
                            (unsigned long long)kv->val.via.u64, WIRE_VERSION);
            ret->version = WIRE_VERSION;
            has_version = true;
        } else if (kn == 3 && memcmp(k, "cmd", 3) == 0) {
            if (kv->val.type != MSGPACK_OBJECT_STR)
                return fail(err, "bad_field", "header field 'cmd' must be a string");
            if (ret->cmd == WIRE_CMD_NONE)
                return fail(err, "unknown_command", "unknown command '%.*s'",
                            (int)(kv->val.via.str.size > 40 ? 40 : kv->val.via.str.size),
                            kv->val.via.str.ptr);
        } else if (kn == 6 && memcmp(k, "status", 6) == 0) {
            if (kv->val.type != MSGPACK_OBJECT_STR ||
                (ret->state = wire_state_from(kv->val.via.str.ptr, kv->val.via.str.size)) ==
                    WIRE_ST_NONE)
                return fail(err, "bad_field", "header field 'status' must name a job state");
        } else if ((f = find_field(k, kn)) != NULL) {
            r = decode_field(ret, f, &kv->val, err);
            if (r < 0)
                return r;
        }
        /* unknown keys are ignored: later versions may add fields */
    }
    if (!has_version)
        return fail(err, "missing_field", "header has no 'v' (protocol version) field");
    if (ret->cmd == WIRE_CMD_NONE)
        return fail(err, "missing_field", "header has no 'cmd' field");
    return check_required(ret, err);
}

/* ---- header encode ---- */

typedef struct {
    msgpack_packer pk;
    unsigned count;
    bool counting;
} enc_t;

/* Count a field that is `present`; true when its value is to be packed now (key written). */
static bool field(enc_t *e, const char *k, bool present)
{
    size_t n = strlen(k);

    if (!present)
        return false;
    e->count++;
    if (e->counting)
        return false;
    msgpack_pack_str(&e->pk, n);
    msgpack_pack_str_body(&e->pk, k, n);
    return true;
}

static void put_str(enc_t *e, const char *k, wire_str_t s)
{
    if (field(e, k, s.ptr != NULL)) {
        msgpack_pack_str(&e->pk, s.len);
        msgpack_pack_str_body(&e->pk, s.ptr, s.len);
    }
}

static void put_uint(enc_t *e, const char *k, uint64_t v, bool force)
{
    if (field(e, k, v || force))
        msgpack_pack_uint64(&e->pk, v);
}

static void put_int(enc_t *e, const char *k, int64_t v, bool force)
{
    if (field(e, k, v || force))
        msgpack_pack_int64(&e->pk, v);
}

static void encode_fields(enc_t *e, const wire_hdr_t *h)
{
    put_uint(e, "v", h->version ? h->version : WIRE_VERSION, true);
    put_str(e, "cmd", wire_str(wire_cmd_name(h->cmd)));
    put_str(e, "id", h->id);
    put_uint(e, "req", h->req, h->has_req);
    put_str(e, "task", h->task);
    put_uint(e, "timeout_ms", h->timeout_ms, false);
    put_uint(e, "deadline_ms", h->deadline_ms, false);
    put_uint(e, "priority", h->priority, h->has_priority);
    put_uint(e, "retries", h->retries, false);
    put_uint(e, "max_result", h->max_result, false);
    put_uint(e, "as_bytes", h->as_bytes, false);
    put_uint(e, "cpu_s", h->cpu_s, false);
    put_str(e, "status", wire_str(wire_state_name(h->state)));
    put_str(e, "code", h->code);
    put_str(e, "etype", h->etype);
    put_str(e, "msg", h->msg);
    put_int(e, "signal", h->signal, false);
    put_int(e, "exit", h->exit_code, h->has_exit);
    put_uint(e, "attempts", h->attempts, false);
    put_int(e, "pid", h->pid, false);
    put_uint(e, "run_us", h->run_us, false);
    put_str(e, "outcome", h->outcome);
    if (field(e, "retire", h->retire))
        msgpack_pack_true(&e->pk);
    if (field(e, "chunk", h->chunk))
        msgpack_pack_true(&e->pk);
    put_uint(e, "done", h->done, h->cmd == WIRE_PROGRESS);
    put_uint(e, "total", h->total, false);
    put_str(e, "op", h->op);
    put_str(e, "name", h->name);
    put_str(e, "key", h->key);
    put_uint(e, "ver", h->ver, h->has_ver);
    put_int(e, "delta", h->delta, h->has_delta);
    put_uint(e, "limit", h->limit, false);
    if (field(e, "found", h->cmd == WIRE_DICT_REPLY))
        h->found ? msgpack_pack_true(&e->pk) : msgpack_pack_false(&e->pk);
    put_uint(e, "count", h->count, false);
    if (field(e, "more", h->more))
        msgpack_pack_true(&e->pk);
}

int wire_hdr_encode(msgpack_sbuffer *buf, const wire_hdr_t *hdr)
{
    enc_t e = {.counting = true};
    size_t before = buf->size;

    encode_fields(&e, hdr);
    msgpack_packer_init(&e.pk, buf, msgpack_sbuffer_write);
    if (msgpack_pack_map(&e.pk, e.count) < 0)
        return -ENOMEM;
    e.counting = false;
    e.count = 0;
    encode_fields(&e, hdr);
    /* sbuffer writes fail only on out-of-memory, which leaves the buffer short */
    if (buf->size == before)
        return -ENOMEM;
    return 0;
}
