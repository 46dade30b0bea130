/* wire.c - the header frame codec (the structural check of untrusted msgpack, and reading it
 * in place, are wire_read.c's).
 *
 * Headers are flat maps (depth 1) of short string keys to scalars; unknown keys are ignored so
 * that later versions can add fields, known keys must have their type and bounds. One table of
 * fields (key, kind, bound, where the member lives, its has_ flag, when it is written) drives
 * both directions, so the field list is written once; _Generic in the table's row macro refuses
 * a row whose member's type does not match its kind. */
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
        err->field = NULL;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return -EBADMSG;
}

/* two tables that read better in columns */
/* clang-format off */
static const char *const cmd_names[] = {
    [WIRE_SUBMIT] = "submit",
    [WIRE_CANCEL] = "cancel",
    [WIRE_STATUS] = "status",
    [WIRE_STATS] = "stats",
    [WIRE_PING] = "ping",
    [WIRE_RESULT] = "result",
    [WIRE_CANCEL_REPLY] = "cancel_reply",
    [WIRE_STATUS_REPLY] = "status_reply",
    [WIRE_STATS_REPLY] = "stats_reply",
    [WIRE_PONG] = "pong",
    [WIRE_ERROR] = "error",
    [WIRE_READY] = "ready",
    [WIRE_JOB] = "job",
    [WIRE_DONE] = "done",
    [WIRE_FETCH] = "fetch",
    [WIRE_PROGRESS] = "progress",
    [WIRE_DICT] = "dict",
    [WIRE_DICT_REPLY] = "dict_reply",
    [WIRE_JOBS] = "jobs",
    [WIRE_PURGE] = "purge",
    [WIRE_JOBS_REPLY] = "jobs_reply",
    [WIRE_PURGE_REPLY] = "purge_reply",
    [WIRE_INVALIDATE] = "invalidate",
};

static const char *const state_names[] = {
    [WIRE_ST_QUEUED] = "queued",   [WIRE_ST_RUNNING] = "running",     [WIRE_ST_OK] = "ok",
    [WIRE_ST_ERROR] = "error",     [WIRE_ST_CANCELLED] = "cancelled", [WIRE_ST_TIMEOUT] = "timeout",
    [WIRE_ST_CRASHED] = "crashed", [WIRE_ST_REJECTED] = "rejected",   [WIRE_ST_LOST] = "lost",
    [WIRE_ST_UNKNOWN] = "unknown",
};
/* clang-format on */

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* A name for the last of each enum at least (check_wire tests that none in between is missing) */
_Static_assert(N_ELEMS(cmd_names) == WIRE_CMD_COUNT_, "cmd_names must name every wire_cmd_t");
_Static_assert(N_ELEMS(state_names) == WIRE_ST_COUNT_, "state_names must name every wire_state_t");

static int lookup(const char *const *names, size_t count, const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 1; i < count; i++)
        if (names[i] && names[i][0] == s[0] && strlen(names[i]) == len &&
            memcmp(names[i], s, len) == 0)
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

/* ---- the field table ---- */

/* The member types each kind may have: a row whose member has another type does not compile. */
/* clang-format off */
#define TYPES_VERSION uint32_t: 0
#define TYPES_CMD     wire_cmd_t: 0
#define TYPES_STATE   wire_state_t: 0
#define TYPES_STR     wire_str_t: 0
#define TYPES_UINT    uint32_t: 0, uint64_t: 0
#define TYPES_INT     int64_t: 0
#define TYPES_BOOL    bool: 0

#define HDR_M(m) (((wire_hdr_t *)0)->m) /* never evaluated: for _Generic and sizeof */
#define HAS(m)   (offsetof(wire_hdr_t, m) + _Generic(HDR_M(m), bool: 0))
#define NO_FLAG  WIRE_NO_FLAG

/* When encode writes a field (`written`): when it is set (or its has_ flag is); ALSO(c): that,
 * and for command c even when not set; ONLY(c): for command c alone, set or not. */
#define SET     WIRE_CMD_NONE, WIRE_CMD_NONE
#define ALSO(c) WIRE_##c, WIRE_CMD_NONE
#define ONLY(c) WIRE_##c, WIRE_##c

#define F(key, kind, max, m, has, written)                                                        \
    {key, WIRE_FK_##kind, max, offsetof(wire_hdr_t, m) + _Generic(HDR_M(m), TYPES_##kind),       \
     sizeof(HDR_M(m)), has, written, sizeof(key) - 1}

/* Every header field, in the order encode writes them. A new field: its member in wire_hdr_t,
 * one line here, and its row in PROTOCOL.md section 4. */
static const wire_field_t fields[] = {
    /* key           kind     bound              member       has_ flag          written */
    F("v",           VERSION, 0,                 version,     NO_FLAG,           SET),
    F("cmd",         CMD,     0,                 cmd,         NO_FLAG,           SET),
    F("id",          STR,     WIRE_ID_MAX,       id,          NO_FLAG,           SET),
    F("req",         UINT,    0,                 req,         HAS(has_req),      SET),
    F("task",        STR,     WIRE_TASK_MAX,     task,        NO_FLAG,           SET),
    F("timeout_ms",  UINT,    0,                 timeout_ms,  NO_FLAG,           SET),
    F("deadline_ms", UINT,    0,                 deadline_ms, NO_FLAG,           SET),
    F("priority",    UINT,    WIRE_PRIORITY_MAX, priority,    HAS(has_priority), SET),
    F("retries",     UINT,    WIRE_RETRIES_MAX,  retries,     NO_FLAG,           SET),
    F("max_result",  UINT,    0,                 max_result,  NO_FLAG,           SET),
    F("as_bytes",    UINT,    0,                 as_bytes,    NO_FLAG,           SET),
    F("cpu_s",       UINT,    UINT32_MAX,        cpu_s,       NO_FLAG,           SET),
    F("status",      STATE,   0,                 state,       NO_FLAG,           SET),
    F("code",        STR,     WIRE_TEXT_MAX,     code,        NO_FLAG,           SET),
    F("etype",       STR,     WIRE_TEXT_MAX,     etype,       NO_FLAG,           SET),
    F("msg",         STR,     WIRE_TEXT_MAX,     msg,         NO_FLAG,           SET),
    F("signal",      INT,     0,                 signal,      NO_FLAG,           SET),
    F("exit",        INT,     0,                 exit_code,   HAS(has_exit),     SET),
    F("attempts",    UINT,    0,                 attempts,    NO_FLAG,           SET),
    F("pid",         INT,     0,                 pid,         NO_FLAG,           SET),
    F("run_us",      UINT,    0,                 run_us,      NO_FLAG,           SET),
    F("outcome",     STR,     WIRE_TEXT_MAX,     outcome,     NO_FLAG,           SET),
    F("retire",      BOOL,    0,                 retire,      NO_FLAG,           SET),
    F("chunk",       BOOL,    0,                 chunk,       NO_FLAG,           SET),
    F("next",        STR,     WIRE_ID_MAX,       next,        NO_FLAG,           SET),
    F("done",        UINT,    0,                 done,        NO_FLAG,           ALSO(PROGRESS)),
    F("total",       UINT,    0,                 total,       NO_FLAG,           SET),
    F("op",          STR,     WIRE_OP_MAX,       op,          NO_FLAG,           SET),
    F("name",        STR,     WIRE_ID_MAX,       name,        NO_FLAG,           SET),
    F("key",         STR,     WIRE_KEY_MAX,      key,         NO_FLAG,           SET),
    F("ver",         UINT,    0,                 ver,         HAS(has_ver),      SET),
    F("delta",       INT,     0,                 delta,       HAS(has_delta),    SET),
    F("limit",       UINT,    0,                 limit,       NO_FLAG,           SET),
    F("found",       BOOL,    0,                 found,       NO_FLAG,           ONLY(DICT_REPLY)),
    F("count",       UINT,    0,                 count,       NO_FLAG,           SET),
    F("more",        BOOL,    0,                 more,        NO_FLAG,           SET),
    F("max_payload", UINT,    0,                 max_payload, NO_FLAG,           SET),
    F("instance",    UINT,    0,                 instance,    NO_FLAG,           SET),
    F("age_ms",      UINT,    0,                 age_ms,      NO_FLAG,           SET),
    F("run_ms",      UINT,    0,                 run_ms,      NO_FLAG,           SET),
    F("owner",       STR,     WIRE_ID_MAX,       owner,       NO_FLAG,           SET),
    F("block",       BOOL,    0,                 block,       NO_FLAG,           SET),
    F("front",       BOOL,    0,                 front,       NO_FLAG,           SET),
    F("maxsize",     UINT,    0,                 maxsize,     NO_FLAG,           SET),
    F("lease_ms",    UINT,    0,                 lease_ms,    NO_FLAG,           SET),
    F("token",       UINT,    0,                 token,       HAS(has_token),    SET),
    F("lock",        STR,     WIRE_ID_MAX,       lock,        NO_FLAG,           SET),
    F("permits",     UINT,    WIRE_PERMITS_MAX,  permits,     NO_FLAG,           SET),
    F("start",       UINT,    0,                 start,       NO_FLAG,           SET),
    F("of",          UINT,    0,                 of,          HAS(has_of),       SET),
    F("track",       BOOL,    0,                 track,       NO_FLAG,           SET),
    F("tags",        STR,     256,               tags,        NO_FLAG,           SET),
};
/* clang-format on */

const wire_field_t *wire_fields(size_t *ret_count)
{
    *ret_count = N_ELEMS(fields);
    return fields;
}

/* ---- reading and writing a member ---- */

static uint64_t load_uint(const void *at, size_t size)
{
    if (size == sizeof(uint32_t)) {
        uint32_t v32;
        memcpy(&v32, at, sizeof(v32));
        return v32;
    }
    uint64_t v;
    memcpy(&v, at, sizeof(v));
    return v;
}

/* Store a bounded uint64 into a member of the width it has. */
static void store_uint(void *at, size_t size, uint64_t v)
{
    if (size == sizeof(uint32_t)) {
        uint32_t v32 = (uint32_t)v;
        memcpy(at, &v32, sizeof(v32));
    } else {
        memcpy(at, &v, sizeof(v));
    }
}

static bool load_bool(const wire_hdr_t *h, size_t off)
{
    bool b;
    memcpy(&b, (const char *)h + off, sizeof(b));
    return b;
}

/* ---- header decode ---- */

static int decode_field(wire_hdr_t *h, const wire_field_t *f, const msgpack_object *v,
                        wire_err_t *err)
{
    char *at = (char *)h + f->off;
    wire_state_t st;
    wire_cmd_t cmd;

    switch (f->kind) {
    case WIRE_FK_VERSION:
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return fail(err, "bad_field", "header field '%s' must be a positive integer", f->key);
        if (v->via.u64 != WIRE_VERSION)
            return fail(err, "bad_version",
                        "protocol version %llu is not supported; this peer speaks version %d",
                        (unsigned long long)v->via.u64, WIRE_VERSION);
        store_uint(at, f->size, WIRE_VERSION);
        break;
    case WIRE_FK_CMD:
        /* the first pass of wire_hdr_decode() read the command: what is left is to refuse it */
        if (v->type != MSGPACK_OBJECT_STR)
            return fail(err, "bad_field", "header field '%s' must be a string", f->key);
        memcpy(&cmd, at, sizeof(cmd));
        if (cmd == WIRE_CMD_NONE)
            return fail(err, "unknown_command", "unknown command '%.*s'",
                        (int)(v->via.str.size > 40 ? 40 : v->via.str.size), v->via.str.ptr);
        break;
    case WIRE_FK_STATE:
        if (v->type != MSGPACK_OBJECT_STR)
            return fail(err, "bad_field", "header field '%s' must name a job state", f->key);
        st = wire_state_from(v->via.str.ptr, v->via.str.size);
        memcpy(at, &st, sizeof(st));
        if (st == WIRE_ST_NONE)
            return fail(err, "bad_field", "header field '%s' must name a job state", f->key);
        break;
    case WIRE_FK_STR:
        if (v->type != MSGPACK_OBJECT_STR)
            return fail(err, "bad_field", "header field '%s' must be a string", f->key);
        if (v->via.str.size > f->max)
            return fail(err, "bad_field",
                        "header field '%s' is %u bytes, more than the %llu allowed", f->key,
                        v->via.str.size, (unsigned long long)f->max);
        memcpy(at, &(wire_str_t){v->via.str.ptr, v->via.str.size}, sizeof(wire_str_t));
        break;
    case WIRE_FK_UINT:
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return fail(err, "bad_field", "header field '%s' must be a non-negative integer",
                        f->key);
        if ((f->max && v->via.u64 > f->max) ||
            (f->size == sizeof(uint32_t) && v->via.u64 > UINT32_MAX))
            return fail(err, "bad_field", "header field '%s' is %llu, more than the %llu allowed",
                        f->key, (unsigned long long)v->via.u64, (unsigned long long)f->max);
        store_uint(at, f->size, v->via.u64);
        break;
    case WIRE_FK_INT: {
        int64_t i;
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
            i = (int64_t)v->via.u64;
        else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            i = v->via.i64;
        else
            return fail(err, "bad_field", "header field '%s' must be an integer", f->key);
        memcpy(at, &i, sizeof(i));
        break;
    }
    case WIRE_FK_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return fail(err, "bad_field", "header field '%s' must be true or false", f->key);
        memcpy(at, &v->via.boolean, sizeof(bool));
        break;
    }
    if (f->has_off != WIRE_NO_FLAG)
        memcpy((char *)h + f->has_off, &(bool){true}, sizeof(bool));
    return 0;
}

static const wire_field_t *find_field(const char *k, size_t n)
{
    if (n == 0)
        return NULL;
    for (size_t i = 0; i < N_ELEMS(fields); i++)
        if (fields[i].key[0] == k[0] && fields[i].klen == n && memcmp(fields[i].key, k, n) == 0)
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
        /* whether the op needs a name is the op table's to say (ops_check_request): here only
         * a name that is there is checked */
        if (!h->op.ptr)
            return fail(err, "missing_field", "'dict' needs an 'op' field");
        if (h->name.ptr && !wire_id_is_valid(h->name.ptr, h->name.len))
            return fail(err, "bad_field",
                        "dict name must be 1-%d characters of A-Z a-z 0-9 . _ : -", WIRE_ID_MAX);
        if (h->lock.ptr && !wire_id_is_valid(h->lock.ptr, h->lock.len))
            return fail(err, "bad_field",
                        "lock name must be 1-%d characters of A-Z a-z 0-9 . _ : -", WIRE_ID_MAX);
    }
    if ((h->cmd == WIRE_RESULT || h->cmd == WIRE_DONE || h->cmd == WIRE_STATUS_REPLY) &&
        h->state == WIRE_ST_NONE)
        return fail(err, "missing_field", "'%s' needs a 'status' field", wire_cmd_name(h->cmd));
    return 0;
}

/* Every field of the header map o into ret, then the fields its command needs. */
static int decode_fields(const msgpack_object *o, wire_hdr_t *ret, wire_err_t *err)
{
    int r;

    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        const wire_field_t *f = find_field(kv->key.via.str.ptr, kv->key.via.str.size);

        /* unknown keys are ignored: later versions may add fields */
        if (f && (r = decode_field(ret, f, &kv->val, err)) < 0) {
            if (err)
                err->field = f->key;
            return r;
        }
    }
    if (ret->version == 0)
        return fail(err, "missing_field", "header has no 'v' (protocol version) field");
    if (ret->cmd == WIRE_CMD_NONE)
        return fail(err, "missing_field", "header has no 'cmd' field");
    return check_required(ret, err);
}

int wire_hdr_decode(const void *data, size_t len, msgpack_zone *zone, wire_hdr_t *ret,
                    wire_err_t *err)
{
    msgpack_object_kv kvs[WIRE_KEYS_MAX];
    msgpack_object o = {.type = MSGPACK_OBJECT_MAP};
    const uint8_t *p = data;
    size_t pos = 1;
    uint32_t n;
    int r;

    (void)zone; /* the header is read in place: a header map holds no containers to allocate */
    memset(ret, 0, sizeof(*ret));
    if (len > WIRE_HEADER_MAX)
        return fail(err, "too_large", "header frame is %zu bytes, more than the %d allowed", len,
                    WIRE_HEADER_MAX);
    r = wire_check(data, len, 1, err);
    if (r < 0)
        return r;
    if (p[0] >= 0x80 && p[0] <= 0x8f) {
        n = p[0] & 0x0f;
    } else if (p[0] == 0xde || p[0] == 0xdf) {
        n = (uint32_t)wire_be(p + 1, p[0] == 0xde ? 2 : 4);
        pos += p[0] == 0xde ? 2 : 4;
    } else {
        return fail(err, "bad_header", "header frame must be a msgpack map");
    }
    if (n > WIRE_KEYS_MAX)
        return fail(err, "bad_header", "header map has %u entries, more than the %d allowed", n,
                    WIRE_KEYS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        wire_read_scalar(p, &pos, &kvs[i].key);
        wire_read_scalar(p, &pos, &kvs[i].val);
    }
    o.via.map.size = n;
    o.via.map.ptr = kvs;

    /* First pass for what an error reply needs (cmd, id, req), so that a later field's error
     * can still be answered precisely. */
    for (uint32_t i = 0; i < o.via.map.size; i++) {
        const msgpack_object_kv *kv = &o.via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR)
            return fail(err, "bad_header", "header keys must be strings");
        const char *k = kv->key.via.str.ptr;
        uint32_t kl = kv->key.via.str.size;
        if (kl == 3 && memcmp(k, "cmd", 3) == 0 && kv->val.type == MSGPACK_OBJECT_STR)
            ret->cmd = wire_cmd_from(kv->val.via.str.ptr, kv->val.via.str.size);
        else if (kl == 3 && memcmp(k, "req", 3) == 0 &&
                 kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            ret->req = kv->val.via.u64;
            ret->has_req = true;
        } else if (kl == 2 && memcmp(k, "id", 2) == 0 && kv->val.type == MSGPACK_OBJECT_STR &&
                   wire_id_is_valid(kv->val.via.str.ptr, kv->val.via.str.size))
            ret->id = (wire_str_t){kv->val.via.str.ptr, kv->val.via.str.size};
    }

    /* an error reply echoes only an id that is valid */
    wire_str_t valid_id = ret->id;
    if ((r = decode_fields(&o, ret, err)) < 0)
        ret->id = valid_id;
    return r;
}

/* ---- header encode ---- */

/* Does the member hold something (a string, a non-zero number, true, a named enum)? */
static bool is_set(const wire_hdr_t *h, const wire_field_t *f)
{
    const char *at = (const char *)h + f->off;
    wire_str_t s;
    wire_cmd_t cmd;
    wire_state_t st;
    int64_t i;

    switch (f->kind) {
    case WIRE_FK_VERSION:
        return true; /* always written: 0 stands for WIRE_VERSION */
    case WIRE_FK_CMD:
        memcpy(&cmd, at, sizeof(cmd));
        return wire_cmd_name(cmd) != NULL;
    case WIRE_FK_STATE:
        memcpy(&st, at, sizeof(st));
        return wire_state_name(st) != NULL;
    case WIRE_FK_STR:
        memcpy(&s, at, sizeof(s));
        return s.ptr != NULL;
    case WIRE_FK_UINT:
        return load_uint(at, f->size) != 0;
    case WIRE_FK_INT:
        memcpy(&i, at, sizeof(i));
        return i != 0;
    case WIRE_FK_BOOL:
        return load_bool(h, f->off);
    }
    return false;
}

static bool is_written(const wire_hdr_t *h, const wire_field_t *f)
{
    if (f->only != WIRE_CMD_NONE && h->cmd != f->only)
        return false;
    return is_set(h, f) || (f->has_off != WIRE_NO_FLAG && load_bool(h, f->has_off)) ||
           (f->always != WIRE_CMD_NONE && h->cmd == f->always);
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_field(msgpack_packer *pk, const wire_hdr_t *h, const wire_field_t *f)
{
    const char *at = (const char *)h + f->off;
    const char *name;
    uint64_t u;
    int64_t i;
    wire_str_t s;
    wire_cmd_t cmd;
    wire_state_t st;

    pack_str(pk, f->key, f->klen);
    switch (f->kind) {
    case WIRE_FK_VERSION:
        u = load_uint(at, f->size);
        msgpack_pack_uint64(pk, u ? u : WIRE_VERSION);
        break;
    case WIRE_FK_CMD:
    case WIRE_FK_STATE:
        if (f->kind == WIRE_FK_CMD) {
            memcpy(&cmd, at, sizeof(cmd));
            name = wire_cmd_name(cmd);
        } else {
            memcpy(&st, at, sizeof(st));
            name = wire_state_name(st);
        }
        pack_str(pk, name, strlen(name));
        break;
    case WIRE_FK_STR:
        memcpy(&s, at, sizeof(s));
        pack_str(pk, s.ptr, s.len);
        break;
    case WIRE_FK_UINT:
        msgpack_pack_uint64(pk, load_uint(at, f->size));
        break;
    case WIRE_FK_INT:
        memcpy(&i, at, sizeof(i));
        msgpack_pack_int64(pk, i);
        break;
    case WIRE_FK_BOOL:
        if (load_bool(h, f->off))
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    }
}

int wire_hdr_encode(msgpack_sbuffer *buf, const wire_hdr_t *hdr)
{
    msgpack_packer pk;
    size_t before = buf->size, count = 0;
    uint8_t written[N_ELEMS(fields)];

    _Static_assert(N_ELEMS(fields) <= UINT8_MAX, "field indexes fit a byte");
    for (size_t i = 0; i < N_ELEMS(fields); i++)
        if (is_written(hdr, &fields[i]))
            written[count++] = (uint8_t)i;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    if (msgpack_pack_map(&pk, count) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < count; i++)
        pack_field(&pk, hdr, &fields[written[i]]);
    /* sbuffer writes fail only on out-of-memory, which leaves the buffer short */
    if (buf->size == before)
        return -ENOMEM;
    return 0;
}
