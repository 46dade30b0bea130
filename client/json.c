/* json.c - JSON text in and out of libforq: forq_json_to_msgpack(), forq_msgpack_to_json(),
 * forq_submit_json() and forq_future_result_json(), through jansson.
 *
 * JSON has no bytes and msgpack has more than JSON, so the forms are the forq command's (the
 * CLI's json_mp.c converts through these functions): msgpack bin is
 * {"$base64": "..."} and such an object (exactly that key, a string) becomes bin on the way in;
 * ext is {"$ext": TYPE, "$base64": "..."}; a map key that is not a string is written as its
 * JSON text; NaN and the infinities become null; a str that is not UTF-8 becomes $base64; an
 * unsigned integer above INT64_MAX becomes a real (jansson's integers are int64_t); a NUL in a
 * str is written as \u0000 and read back (JSON_ALLOW_NUL), so every text written here reads.
 *
 * msgpack that comes in (a result from forqd, a caller's bytes) passes wire_check() before
 * msgpack-c unpacks it: msgpack-c reserves memory from declared sizes, and the check proves
 * every declared element is backed by bytes. Nothing here keeps state: any thread. */
#define _GNU_SOURCE
#include "client_int.h"

#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON to msgpack ---- */

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* The bytes of a base64 string (malloc'ed into *ret), or -1 if it is not base64. */
static int b64_decode(const char *in, size_t n, uint8_t **ret, size_t *ret_len)
{
    struct base64_decode_ctx ctx;
    size_t len = BASE64_DECODE_LENGTH(n);
    uint8_t *out = malloc(len + 1);

    if (!out)
        return -1;
    base64_decode_init(&ctx);
    if (!base64_decode_update(&ctx, &len, out, n, in) || !base64_decode_final(&ctx)) {
        free(out);
        return -1;
    }
    *ret = out;
    *ret_len = len;
    return 0;
}

/* Pack j. FORQ_OK, or FORQ_ERR_INVALID / FORQ_ERR_NOMEM with the detail set. */
static forq_err_t pack_json(const json_t *j, msgpack_packer *pk)
{
    forq_err_t e;

    switch (json_typeof(j)) {
    case JSON_NULL:
        msgpack_pack_nil(pk);
        return FORQ_OK;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        return FORQ_OK;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        return FORQ_OK;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(j));
        return FORQ_OK;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        return FORQ_OK;
    case JSON_STRING:
        pack_str(pk, json_string_value(j), json_string_length(j));
        return FORQ_OK;
    case JSON_ARRAY: {
        size_t i;
        json_t *v;
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, v)
        {
            if ((e = pack_json(v, pk)) != FORQ_OK)
                return e;
        }
        return FORQ_OK;
    }
    case JSON_OBJECT: {
        json_t *b = json_object_get(j, "$base64"), *v;
        const char *k;
        if (b && json_object_size(j) == 1) {
            uint8_t *data;
            size_t len;
            if (!json_is_string(b) ||
                b64_decode(json_string_value(b), json_string_length(b), &data, &len) < 0)
                return errors_fail(FORQ_ERR_INVALID,
                                   "{\"$base64\": ...} must hold a base64 string (it stands "
                                   "for bytes)");
            msgpack_pack_bin(pk, len);
            msgpack_pack_bin_body(pk, data, len);
            free(data);
            return FORQ_OK;
        }
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)j, k, v)
        {
            pack_str(pk, k, strlen(k));
            if ((e = pack_json(v, pk)) != FORQ_OK)
                return e;
        }
        return FORQ_OK;
    }
    }
    return errors_fail(FORQ_ERR_INVALID, "a JSON value of an unknown type");
}

forq_err_t forq_json_to_msgpack(const char *json, void **ret_data, size_t *ret_len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    json_error_t jerr;
    json_t *j;
    forq_err_t e;

    if (!json || !ret_data || !ret_len)
        return errors_fail(FORQ_ERR_INVALID, "forq_json_to_msgpack: json, ret_data and ret_len "
                                             "are required");
    if (!(j = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr)))
        return errors_fail(FORQ_ERR_INVALID, "not JSON: %s (line %d, column %d)", jerr.text,
                           jerr.line, jerr.column);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    e = pack_json(j, &pk);
    json_decref(j);
    if (e != FORQ_OK || !sb.data) {
        msgpack_sbuffer_destroy(&sb);
        return e != FORQ_OK ? e : errors_fail(FORQ_ERR_NOMEM, "out of memory");
    }
    *ret_len = sb.size;
    *ret_data = msgpack_sbuffer_release(&sb);
    return FORQ_OK;
}

/* ---- msgpack to JSON ---- */

static json_t *bytes_json(const char *p, size_t n)
{
    char *s = malloc(BASE64_ENCODE_RAW_LENGTH(n) + 1);
    json_t *j;

    if (!s)
        return NULL;
    base64_encode_raw(s, n, (const uint8_t *)p);
    s[BASE64_ENCODE_RAW_LENGTH(n)] = '\0';
    j = json_pack("{s:s}", "$base64", s);
    free(s);
    return j;
}

/* A new JSON value for o, or NULL when out of memory. */
static json_t *to_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return json_real((double)o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return isfinite(o->via.f64) ? json_real(o->via.f64) : json_null();
    case MSGPACK_OBJECT_STR: {
        /* msgpack-c leaves ptr NULL for an empty string, which json_stringn refuses */
        json_t *j =
            o->via.str.size ? json_stringn(o->via.str.ptr, o->via.str.size) : json_string("");
        return j ? j : bytes_json(o->via.str.ptr, o->via.str.size); /* not UTF-8 */
    }
    case MSGPACK_OBJECT_BIN:
        return bytes_json(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_EXT: {
        json_t *j = bytes_json(o->via.ext.ptr, o->via.ext.size);
        if (j && json_object_set_new(j, "$ext", json_integer(o->via.ext.type)) < 0) {
            json_decref(j);
            return NULL;
        }
        return j;
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++) {
            json_t *v = to_json(&o->via.array.ptr[i]);
            if (!v || json_array_append_new(a, v) < 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            json_t *v = to_json(&kv->val), *kj = NULL;
            char *k;
            if (kv->key.type == MSGPACK_OBJECT_STR)
                k = strndup(kv->key.via.str.ptr ? kv->key.via.str.ptr : "", kv->key.via.str.size);
            else
                k = (kj = to_json(&kv->key)) ? json_dumps(kj, JSON_COMPACT | JSON_ENCODE_ANY)
                                             : NULL;
            json_decref(kj);
            if (!v || !k || json_object_set_new(m, k, v) < 0) {
                if (!k)
                    json_decref(v);
                free(k);
                json_decref(m);
                return NULL;
            }
            free(k);
        }
        return m;
    }
    }
    return json_null();
}

forq_err_t forq_msgpack_to_json(const void *data, size_t len, char **ret_json)
{
    msgpack_zone zone;
    msgpack_object o;
    wire_err_t err;
    json_t *j = NULL;
    char *s = NULL;

    if (!data || !ret_json)
        return errors_fail(FORQ_ERR_INVALID, "forq_msgpack_to_json: data and ret_json are "
                                             "required");
    msgpack_zone_init(&zone, 4096);
    if (wire_unpack(data, len, &zone, &o, &err) < 0) {
        msgpack_zone_destroy(&zone);
        return errors_fail(FORQ_ERR_INVALID, "not one msgpack value: %s", err.msg);
    }
    if ((j = to_json(&o)))
        s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    msgpack_zone_destroy(&zone);
    if (!s)
        return errors_fail(FORQ_ERR_NOMEM, "out of memory");
    *ret_json = s;
    return FORQ_OK;
}

/* ---- jobs ---- */

forq_err_t forq_submit_json(forq_client_t *client, const char *task, const char *args_json,
                            const forq_submit_opts_t *opts, forq_future_t **ret_future)
{
    void *args;
    size_t len;
    forq_err_t e;

    if ((e = forq_json_to_msgpack(args_json, &args, &len)) != FORQ_OK) {
        if (e == FORQ_ERR_INVALID && args_json) {
            char why[400];
            snprintf(why, sizeof(why), "%s", forq_errdetail());
            return errors_fail(e, "the args of %s: %s", task ? task : "the job", why);
        }
        return e;
    }
    e = forq_submit(client, task, args, len, opts, ret_future);
    free(args);
    return e;
}

forq_err_t forq_future_result_json(forq_future_t *future, char **ret_json)
{
    const void *data;
    size_t len;
    forq_err_t e;

    if (!ret_json)
        return errors_fail(FORQ_ERR_INVALID, "forq_future_result_json: ret_json is NULL");
    if ((e = forq_future_result(future, &data, &len)) != FORQ_OK)
        return e;
    return forq_msgpack_to_json(data, len, ret_json);
}
