/* dict.c - libforq's side of the dict service: each call is one `dict` request (PROTOCOL.md) and
 * its `dict_reply`, through the client's request machinery. A reply `error` carries a code
 * (PROTOCOL.md); err_of_code() turns it into the call's forq_err_t. */
#define _GNU_SOURCE
#include "client_int.h"
#include "conn.h"
#include "dcache.h"
#include "health.h"
#include "ops.h"

#include <stdlib.h>
#include <string.h>

#define WAIT_GRACE_MS 5000 /* how much longer than forqd's wait the client waits for its answer */

/* The wire name of an op (the table in proto/ops.c). */
static wire_str_t op_str(ops_id_t op)
{
    return wire_str(ops_get(op)->name);
}

static bool name_ok(const char *name)
{
    return name && wire_id_is_valid(name, strlen(name));
}

static bool key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    return n > 0 && n <= WIRE_KEY_MAX;
}

forq_err_t dict_err_of_code(const char *code)
{
    static const struct {
        const char *code;
        forq_err_t err;
    } codes[] = {
        {"dict_full", FORQ_ERR_FULL},         {"disk_full", FORQ_ERR_FULL},
        {"disk_error", FORQ_ERR_SYSTEM},      {"too_large", FORQ_ERR_INVALID},
        {"not_integer", FORQ_ERR_INVALID},    {"overflow", FORQ_ERR_INVALID},
        {"cursor_expired", FORQ_ERR_INVALID}, {"missing_field", FORQ_ERR_INVALID},
        {"stale_token", FORQ_ERR_CONFLICT},   {"too_many_waiters", FORQ_ERR_FULL},
    };

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(code, codes[i].code) == 0)
            return codes[i].err;
    if (strncmp(code, "bad_", 4) == 0) /* bad_key, bad_value, bad_op, ... */
        return FORQ_ERR_INVALID;
    return FORQ_ERR_PROTOCOL;
}

/* Check a dict request's arguments and fill in its header. name NULL: an op on no dict
 * (dicts), sent without a name. */
static forq_err_t build(forq_client_t *c, wire_hdr_t *h, const char *name, const char *key,
                        bool needs_key, const void *val, size_t vlen)
{
    wire_err_t werr;

    if (!c)
        return errors_fail(FORQ_ERR_INVALID, "client is NULL");
    if (name && !name_ok(name))
        return errors_fail(FORQ_ERR_INVALID,
                           "dict name must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    if (needs_key && !key_ok(key))
        return errors_fail(FORQ_ERR_INVALID, "dict key must be a string of 1-1024 bytes");
    if (val && wire_check(val, vlen, WIRE_DEPTH_MAX, &werr) < 0)
        return errors_fail(FORQ_ERR_INVALID, "the value must be one msgpack value: %s", werr.msg);
    if (val && health_check_payload(c, "the value", vlen) != FORQ_OK)
        return FORQ_ERR_INVALID; /* ZeroMQ would drop the connection; the detail is set */
    h->cmd = WIRE_DICT;
    if (name) {
        const ops_desc_t *d = ops_find(h->op.ptr, h->op.len);
        /* this client's own change: its cached copy goes first (forqd's invalidation follows) */
        if (d && d->mutates && d->kind == OPS_KIND_DICT)
            dcache_drop(conn_dcache(c), name,
                        d->needs & OPS_F_KEY ? key : NULL); /* update, mset, clear: all */
        h->name = wire_str(name);
    }
    if (key)
        h->key = wire_str(key);
    return FORQ_OK;
}

/* Send one dict request and wait; on FORQ_OK *ret_f is the reply (future_unref it). */
static forq_err_t call(forq_client_t *c, wire_hdr_t *h, const char *name, const char *key,
                       bool needs_key, const void *val, size_t vlen, int timeout_ms,
                       forq_future_t **ret_f)
{
    forq_err_t e = build(c, h, name, key, needs_key, val, vlen);
    return e != FORQ_OK ? e : client_request(c, h, val, vlen, timeout_ms, dict_err_of_code, ret_f);
}

/* Hand the reply's value to the caller. */
static void take_value(forq_future_t *f, void **ret_value, size_t *ret_len)
{
    if (ret_value) {
        *ret_value = f->result;
        f->result = NULL;
    }
    if (ret_len)
        *ret_len = f->result_len;
}

/* get, pop: the key must exist; hand its value (and version) to the caller. */
static forq_err_t value_op(forq_client_t *c, ops_id_t op, const char *name, const char *key,
                           int timeout_ms, void **ret_value, size_t *ret_len, uint64_t *ret_version)
{
    wire_hdr_t h = {.op = op_str(op)};
    forq_future_t *f;
    forq_err_t e = call(c, &h, name, key, true, NULL, 0, timeout_ms, &f);

    if (e != FORQ_OK)
        return e;
    if (!f->found) {
        future_unref(f);
        return errors_fail(FORQ_ERR_NOT_FOUND, "dict '%s' has no key '%s'", name, key);
    }
    take_value(f, ret_value, ret_len);
    if (ret_version)
        *ret_version = f->ver;
    future_unref(f);
    return FORQ_OK;
}

/* get from a cached dict: the cache's copy, else a tracked get whose value the cache keeps. */
static forq_err_t cached_get(forq_client_t *c, const char *name, const char *key, int timeout_ms,
                             void **ret_value, size_t *ret_len, uint64_t *ret_version)
{
    dcache_t *dc = conn_dcache(c);
    wire_hdr_t h = {.op = op_str(OPS_GET), .track = true};
    uint64_t session;
    forq_future_t *f;
    forq_err_t e;

    if (!key_ok(key))
        return errors_fail(FORQ_ERR_INVALID, "dict key must be a string of 1-1024 bytes");
    if (conn_cache_ready(c, &session) &&
        dcache_get(dc, name, key, session, ret_value, ret_len, ret_version))
        return FORQ_OK; /* no round trip */
    dcache_count(dc, false);
    if ((e = call(c, &h, name, key, true, NULL, 0, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (!f->found) {
        future_unref(f);
        return errors_fail(FORQ_ERR_NOT_FOUND, "dict '%s' has no key '%s'", name, key);
    }
    if (f->result)
        dcache_put(dc, name, key, f->result, f->result_len, f->ver, f->cache_seq, f->cache_session);
    take_value(f, ret_value, ret_len);
    if (ret_version)
        *ret_version = f->ver;
    future_unref(f);
    return FORQ_OK;
}

forq_err_t forq_dict_get(forq_client_t *c, const char *name, const char *key, int timeout_ms,
                         void **ret_value, size_t *ret_len, uint64_t *ret_version)
{
    if (c && dcache_is_on(conn_dcache(c), name))
        return cached_get(c, name, key, timeout_ms, ret_value, ret_len, ret_version);
    return value_op(c, OPS_GET, name, key, timeout_ms, ret_value, ret_len, ret_version);
}

forq_err_t forq_dict_cache(forq_client_t *c, const char *name, size_t max_bytes)
{
    if (!c)
        return errors_fail(FORQ_ERR_INVALID, "client is NULL");
    if (!name_ok(name))
        return errors_fail(FORQ_ERR_INVALID,
                           "dict name must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    conn_set_caching(c, dcache_enable(conn_dcache(c), name, max_bytes));
    return FORQ_OK;
}

void forq_dict_cache_stats(forq_client_t *c, uint64_t *ret_hits, uint64_t *ret_misses,
                           uint64_t *ret_invalidations, size_t *ret_entries)
{
    if (c)
        dcache_stats(conn_dcache(c), ret_hits, ret_misses, ret_invalidations, ret_entries);
}

forq_err_t forq_dict_set(forq_client_t *c, const char *name, const char *key, const void *value,
                         size_t len, int timeout_ms, uint64_t *ret_version)
{
    wire_hdr_t h = {.op = op_str(OPS_SET)};
    forq_future_t *f;
    forq_err_t e;

    if (!value)
        return errors_fail(FORQ_ERR_INVALID, "value is NULL");
    if ((e = call(c, &h, name, key, true, value, len, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (ret_version)
        *ret_version = f->ver;
    future_unref(f);
    return FORQ_OK;
}

/* del, has: a key op whose answer is `found`. */
static forq_err_t found_op(forq_client_t *c, ops_id_t op, const char *name, const char *key,
                           int timeout_ms, bool *ret_found)
{
    wire_hdr_t h = {.op = op_str(op)};
    forq_future_t *f;
    forq_err_t e = call(c, &h, name, key, true, NULL, 0, timeout_ms, &f);

    if (e != FORQ_OK)
        return e;
    *ret_found = f->found;
    future_unref(f);
    return FORQ_OK;
}

forq_err_t forq_dict_del(forq_client_t *c, const char *name, const char *key, int timeout_ms)
{
    bool found;
    forq_err_t e = found_op(c, OPS_DEL, name, key, timeout_ms, &found);
    if (e == FORQ_OK && !found)
        return errors_fail(FORQ_ERR_NOT_FOUND, "dict '%s' has no key '%s'", name, key);
    return e;
}

forq_err_t forq_dict_has(forq_client_t *c, const char *name, const char *key, int timeout_ms,
                         bool *ret_has)
{
    bool found;
    forq_err_t e = found_op(c, OPS_HAS, name, key, timeout_ms, &found);
    if (e == FORQ_OK && ret_has)
        *ret_has = found;
    return e;
}

/* len, clear: a dict op whose answer is `count`. */
static forq_err_t count_op(forq_client_t *c, ops_id_t op, const char *name, int timeout_ms,
                           size_t *ret_count)
{
    wire_hdr_t h = {.op = op_str(op)};
    forq_future_t *f;
    forq_err_t e = call(c, &h, name, NULL, false, NULL, 0, timeout_ms, &f);

    if (e != FORQ_OK)
        return e;
    if (ret_count)
        *ret_count = (size_t)f->count;
    future_unref(f);
    return FORQ_OK;
}

forq_err_t forq_dict_len(forq_client_t *c, const char *name, int timeout_ms, size_t *ret_len)
{
    return count_op(c, OPS_LEN, name, timeout_ms, ret_len);
}

forq_err_t forq_dict_clear(forq_client_t *c, const char *name, int timeout_ms, size_t *ret_removed)
{
    return count_op(c, OPS_CLEAR, name, timeout_ms, ret_removed);
}

forq_err_t forq_dict_update(forq_client_t *c, const char *name, const void *map, size_t len,
                            int timeout_ms)
{
    wire_hdr_t h = {.op = op_str(OPS_UPDATE)};
    forq_future_t *f;
    forq_err_t e;

    if (!map)
        return errors_fail(FORQ_ERR_INVALID, "map is NULL");
    if ((e = call(c, &h, name, NULL, false, map, len, timeout_ms, &f)) != FORQ_OK)
        return e;
    future_unref(f);
    return FORQ_OK;
}

forq_err_t forq_dict_setdefault(forq_client_t *c, const char *name, const char *key,
                                const void *value, size_t len, int timeout_ms, void **ret_value,
                                size_t *ret_len)
{
    wire_hdr_t h = {.op = op_str(OPS_SETDEFAULT)};
    forq_future_t *f;
    forq_err_t e;

    if (!value)
        return errors_fail(FORQ_ERR_INVALID, "value is NULL");
    if ((e = call(c, &h, name, key, true, value, len, timeout_ms, &f)) != FORQ_OK)
        return e;
    take_value(f, ret_value, ret_len);
    future_unref(f);
    return FORQ_OK;
}

forq_err_t forq_dict_pop(forq_client_t *c, const char *name, const char *key, int timeout_ms,
                         void **ret_value, size_t *ret_len)
{
    return value_op(c, OPS_POP, name, key, timeout_ms, ret_value, ret_len, NULL);
}

forq_err_t forq_dict_incr(forq_client_t *c, const char *name, const char *key, int64_t delta,
                          int timeout_ms, int64_t *ret_value)
{
    wire_hdr_t h = {.op = op_str(OPS_INCR), .delta = delta, .has_delta = true};
    forq_future_t *f;
    forq_err_t e = call(c, &h, name, key, true, NULL, 0, timeout_ms, &f);
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;

    if (e != FORQ_OK)
        return e;
    msgpack_zone_init(&zone, 64);
    if (!f->result ||
        msgpack_unpack(f->result, f->result_len, &off, &zone, &o) != MSGPACK_UNPACK_SUCCESS ||
        (o.type != MSGPACK_OBJECT_POSITIVE_INTEGER && o.type != MSGPACK_OBJECT_NEGATIVE_INTEGER)) {
        e = errors_fail(FORQ_ERR_PROTOCOL, "forqd's incr reply had no integer");
    } else if (ret_value) {
        *ret_value = o.via.i64;
    }
    msgpack_zone_destroy(&zone);
    future_unref(f);
    return e;
}

forq_err_t forq_dict_cas(forq_client_t *c, const char *name, const char *key,
                         uint64_t expected_version, const void *value, size_t len, int timeout_ms,
                         uint64_t *ret_version)
{
    wire_hdr_t h = {.op = op_str(OPS_CAS), .ver = expected_version, .has_ver = true};
    forq_future_t *f;
    forq_err_t e;

    if (!value)
        return errors_fail(FORQ_ERR_INVALID, "value is NULL");
    if ((e = call(c, &h, name, key, true, value, len, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (ret_version)
        *ret_version = f->ver;
    if (f->code && strcmp(f->code, ops_get(OPS_CAS)->reply_code) == 0)
        e = errors_fail(FORQ_ERR_CONFLICT, "'%s' is at version %llu, not %llu", key,
                        (unsigned long long)f->ver, (unsigned long long)expected_version);
    future_unref(f);
    return e;
}

forq_err_t forq_dict_wait(forq_client_t *c, const char *name, const char *key,
                          uint64_t seen_version, int timeout_ms, void **ret_value, size_t *ret_len,
                          uint64_t *ret_version)
{
    bool next = seen_version == FORQ_DICT_NEXT_CHANGE;
    wire_hdr_t h = {.op = op_str(OPS_WAIT),
                    .ver = next ? 0 : seen_version,
                    .has_ver = !next,
                    .timeout_ms = timeout_ms > 0 ? (uint64_t)timeout_ms : 0};
    forq_future_t *f;
    forq_err_t e =
        call(c, &h, name, key, true, NULL, 0, timeout_ms < 0 ? -1 : timeout_ms + WAIT_GRACE_MS, &f);

    if (e != FORQ_OK)
        return e;
    if (f->code && strcmp(f->code, ops_get(OPS_WAIT)->reply_code) == 0)
        e = errors_fail(FORQ_ERR_TIMEOUT, "'%s' did not change within %d ms", key, timeout_ms);
    else if (!f->found)
        e = errors_fail(FORQ_ERR_NOT_FOUND, "'%s' was deleted", key);
    if (ret_version)
        *ret_version = f->found ? f->ver : 0;
    if (e == FORQ_OK)
        take_value(f, ret_value, ret_len);
    future_unref(f);
    return e;
}

forq_err_t forq_dict_page(forq_client_t *c, const char *name, bool items, const char *after,
                          size_t limit, int timeout_ms, void **ret_data, size_t *ret_len,
                          char **ret_next)
{
    wire_hdr_t h = {.op = wire_str(items ? "items" : "keys"), .limit = limit};
    forq_future_t *f;
    forq_err_t e;

    if (!ret_data || !ret_len)
        return errors_fail(FORQ_ERR_INVALID, "ret_data and ret_len are required");
    if (after && !key_ok(after))
        return errors_fail(FORQ_ERR_INVALID, "after must be a key of 1-1024 bytes");
    if ((e = call(c, &h, name, after, false, NULL, 0, timeout_ms, &f)) != FORQ_OK)
        return e;
    take_value(f, ret_data, ret_len);
    if (ret_next) {
        *ret_next = f->more ? f->cursor : NULL;
        if (f->more)
            f->cursor = NULL;
    }
    future_unref(f);
    return FORQ_OK;
}

forq_err_t forq_dict_list(forq_client_t *c, const char *after, size_t limit, int timeout_ms,
                          void **ret_data, size_t *ret_len, char **ret_next)
{
    wire_hdr_t h = {.op = op_str(OPS_DICTS), .limit = limit};
    forq_future_t *f;
    forq_err_t e;

    if (!ret_data || !ret_len)
        return errors_fail(FORQ_ERR_INVALID, "ret_data and ret_len are required");
    if (after && !key_ok(after))
        return errors_fail(FORQ_ERR_INVALID, "after must be a dict name of 1-1024 bytes");
    if ((e = call(c, &h, NULL, after, false, NULL, 0, timeout_ms, &f)) != FORQ_OK)
        return e;
    take_value(f, ret_data, ret_len);
    if (ret_next) {
        *ret_next = f->more ? f->cursor : NULL;
        if (f->more)
            f->cursor = NULL;
    }
    future_unref(f);
    return FORQ_OK;
}

/* ---- many keys at once ---- */

/* The array header at p: its entry count and its length. -1 if it is not an array. */
static int array_at(const uint8_t *p, size_t len, uint32_t *ret_n, size_t *ret_off)
{
    if (len >= 1 && p[0] >= 0x90 && p[0] <= 0x9f) {
        *ret_n = p[0] & 0x0f;
        *ret_off = 1;
    } else if (len >= 3 && p[0] == 0xdc) {
        *ret_n = (uint32_t)p[1] << 8 | p[2];
        *ret_off = 3;
    } else if (len >= 5 && p[0] == 0xdd) {
        *ret_n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        *ret_off = 5;
    } else {
        return -1;
    }
    return 0;
}

/* A msgpack unsigned integer at p (as forqd packs versions), or -1. */
static int uint_at(const uint8_t *p, size_t len, uint64_t *ret, size_t *ret_off)
{
    unsigned n = 0;
    if (len >= 1 && p[0] <= 0x7f) {
        *ret = p[0];
        *ret_off = 1;
        return 0;
    }
    if (len >= 1 && p[0] >= 0xcc && p[0] <= 0xcf)
        n = 1u << (p[0] - 0xcc);
    if (!n || len < 1 + n)
        return -1;
    *ret = 0;
    for (unsigned i = 0; i < n; i++)
        *ret = *ret << 8 | p[1 + i];
    *ret_off = 1 + n;
    return 0;
}

/* mget's reply (an array of nil or [ver, value], one per key asked) into the caller's arrays.
 * On failure nothing is left allocated. */
static forq_err_t take_many(const forq_future_t *f, size_t n, void **ret_values, size_t *ret_lens,
                            uint64_t *ret_versions)
{
    const uint8_t *p = f->result;
    size_t len = f->result_len, off, at;
    uint32_t got;
    wire_err_t werr;

    if (!p || array_at(p, len, &got, &off) < 0 || got != n)
        return errors_fail(FORQ_ERR_PROTOCOL, "forqd's mget reply is not an array of %zu entries",
                           n);
    at = off;
    for (size_t i = 0; i < n; i++) {
        uint64_t ver = 0;
        size_t vlen = 0, step;
        uint32_t two;
        void *copy = NULL;
        if (at < len && p[at] == 0xc0) {
            at++;
        } else if (array_at(p + at, len - at, &two, &step) < 0 || two != 2 ||
                   uint_at(p + at + step, len - at - step, &ver, &off) < 0 ||
                   wire_value_len(p + at + step + off, len - at - step - off, WIRE_DEPTH_MAX, &vlen,
                                  &werr) < 0) {
            for (size_t j = 0; j < i; j++) {
                free(ret_values[j]);
                ret_values[j] = NULL;
            }
            return errors_fail(FORQ_ERR_PROTOCOL, "forqd's mget reply has a bad entry %zu", i);
        } else {
            at += step + off;
            copy = malloc(vlen ? vlen : 1);
            if (!copy) {
                for (size_t j = 0; j < i; j++) {
                    free(ret_values[j]);
                    ret_values[j] = NULL;
                }
                return errors_fail(FORQ_ERR_NOMEM, "out of memory reading an mget reply");
            }
            memcpy(copy, p + at, vlen);
            at += vlen;
        }
        ret_values[i] = copy;
        if (ret_lens)
            ret_lens[i] = vlen;
        if (ret_versions)
            ret_versions[i] = ver;
    }
    return FORQ_OK;
}

forq_err_t forq_dict_mget(forq_client_t *c, const char *name, const char *const *keys, size_t n,
                          int timeout_ms, void **ret_values, size_t *ret_lens,
                          uint64_t *ret_versions, size_t *ret_found)
{
    wire_hdr_t h = {.op = op_str(OPS_MGET)};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    forq_future_t *f;
    forq_err_t e;

    if (!keys || !ret_values || n == 0 || n > FORQ_DICT_MULTI_MAX)
        return errors_fail(FORQ_ERR_INVALID,
                           "mget needs keys and ret_values, and 1 to %d keys in one call",
                           FORQ_DICT_MULTI_MAX);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        if (!key_ok(keys[i])) {
            msgpack_sbuffer_destroy(&sb);
            return errors_fail(FORQ_ERR_INVALID, "mget: key %zu must be a string of 1-1024 bytes",
                               i);
        }
        msgpack_pack_str_with_body(&pk, keys[i], strlen(keys[i]));
    }
    e = call(c, &h, name, NULL, false, sb.data, sb.size, timeout_ms, &f);
    msgpack_sbuffer_destroy(&sb);
    if (e != FORQ_OK)
        return e;
    e = take_many(f, n, ret_values, ret_lens, ret_versions);
    if (e == FORQ_OK && ret_found)
        *ret_found = (size_t)f->count;
    future_unref(f);
    return e;
}

forq_err_t forq_dict_mset(forq_client_t *c, const char *name, const char *const *keys,
                          const void *const *values, const size_t *lens, size_t n, int timeout_ms,
                          uint64_t *ret_version)
{
    wire_hdr_t h = {.op = op_str(OPS_MSET)};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    forq_future_t *f;
    wire_err_t werr;
    forq_err_t e;

    if (!keys || !values || !lens || n == 0 || n > FORQ_DICT_MULTI_MAX)
        return errors_fail(FORQ_ERR_INVALID,
                           "mset needs keys, values and lens, and 1 to %d keys in one call",
                           FORQ_DICT_MULTI_MAX);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n);
    for (size_t i = 0; i < n; i++) {
        if (!key_ok(keys[i]) || !values[i] ||
            wire_check(values[i], lens[i], WIRE_VALUE_DEPTH_MAX, &werr) < 0) {
            msgpack_sbuffer_destroy(&sb);
            return errors_fail(FORQ_ERR_INVALID,
                               "mset: entry %zu needs a key of 1-1024 bytes and one msgpack "
                               "value (nesting at most %d levels)",
                               i, WIRE_VALUE_DEPTH_MAX);
        }
        msgpack_pack_str_with_body(&pk, keys[i], strlen(keys[i]));
        msgpack_sbuffer_write(&sb, values[i], lens[i]);
    }
    e = call(c, &h, name, NULL, false, sb.data, sb.size, timeout_ms, &f);
    msgpack_sbuffer_destroy(&sb);
    if (e != FORQ_OK)
        return e;
    if (ret_version)
        *ret_version = f->ver;
    future_unref(f);
    return FORQ_OK;
}

/* ---- asynchronous ---- */

void forq_dict_op_init(forq_dict_op_t *op)
{
    memset(op, 0, sizeof(*op));
    op->version = FORQ_DICT_NEXT_CHANGE;
}

forq_err_t forq_dict_submit(forq_client_t *c, const forq_dict_op_t *op, forq_future_t **ret)
{
    const ops_desc_t *d;
    wire_hdr_t h = {0};
    forq_err_t e;

    if (!op || !op->op || !ret)
        return errors_fail(FORQ_ERR_INVALID, "op, op->op and ret_future are required");
    if (!(d = ops_find_verb(OPS_KIND_DICT, op->op)))
        return errors_fail(FORQ_ERR_INVALID,
                           "unknown dict op '%s' (queues, locks and events have calls of their "
                           "own: forq_queue_*, forq_lock_*, forq_event_*)",
                           op->op);
    h.op = wire_str(d->name);
    h.limit = op->limit;
    if (d->takes & OPS_F_DELTA) {
        h.delta = op->delta;
        h.has_delta = true;
    }
    /* cas needs the version it expects; wait takes the one seen, unless it waits for the next
     * change */
    if ((d->needs & OPS_F_VER) ||
        ((d->takes & OPS_F_VER) && op->version != FORQ_DICT_NEXT_CHANGE)) {
        h.ver = op->version;
        h.has_ver = true;
    }
    if ((d->takes & OPS_F_TIMEOUT) && op->timeout_ms > 0)
        h.timeout_ms = (uint64_t)op->timeout_ms;
    if (!d->nameless && !op->name)
        return errors_fail(FORQ_ERR_INVALID, "dict op '%s' needs the dict's name", d->name);
    /* an op on no dict (dicts) ignores op->name: forqd would too */
    if ((e = build(c, &h, d->nameless ? NULL : op->name, op->key, (d->needs & OPS_F_KEY) != 0,
                   op->value, op->len)) != FORQ_OK)
        return e;
    return client_request_async(c, &h, op->value, op->len, ret);
}

forq_err_t forq_dict_reply(forq_future_t *f, bool *ret_found, uint64_t *ret_version,
                           uint64_t *ret_count)
{
    if (!f)
        return errors_fail(FORQ_ERR_INVALID, "future is NULL");
    if (!forq_future_done(f))
        return errors_fail(FORQ_ERR_PENDING, "the dict request is not answered yet");
    if (f->reply_cmd == WIRE_ERROR) {
        return errors_fail(dict_err_of_code(f->code ? f->code : ""), "%s: %s",
                           f->code ? f->code : "error", f->detail ? f->detail : "");
    }
    if (f->reply_cmd != WIRE_DICT_REPLY)
        return errors_fail(FORQ_ERR_LOST, "%s", f->detail ? f->detail : "no answer");
    if (ret_found)
        *ret_found = f->found;
    if (ret_version)
        *ret_version = f->ver;
    if (ret_count)
        *ret_count = f->count;
    if (f->code && strcmp(f->code, ops_get(OPS_CAS)->reply_code) == 0)
        return errors_fail(FORQ_ERR_CONFLICT, "version conflict: the key is at %llu",
                           (unsigned long long)f->ver);
    if (f->code && strcmp(f->code, ops_get(OPS_WAIT)->reply_code) == 0)
        return errors_fail(FORQ_ERR_TIMEOUT, "the key did not change in time");
    return FORQ_OK;
}
