/* json_mp.c - see json_mp.h. */
#include "json_mp.h"

#include <math.h>
#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    return msgpack_pack_str_body(pk, s, n);
}

static int b64_decode(const char *in, size_t n, uint8_t **ret, size_t *ret_len)
{
    struct base64_decode_ctx ctx;
    uint8_t *out = malloc(BASE64_DECODE_LENGTH(n) + 1);
    size_t len = BASE64_DECODE_LENGTH(n);

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

static char *b64_encode(const uint8_t *in, size_t n)
{
    char *out = malloc(BASE64_ENCODE_RAW_LENGTH(n) + 1);
    if (!out)
        return NULL;
    base64_encode_raw(out, n, in);
    out[BASE64_ENCODE_RAW_LENGTH(n)] = '\0';
    return out;
}

int json_to_msgpack(const json_t *j, msgpack_packer *pk, char *err, size_t errlen)
{
    switch (json_typeof(j)) {
    case JSON_NULL:
        return msgpack_pack_nil(pk);
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(j));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(j));
    case JSON_STRING:
        return pack_str(pk, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        size_t i;
        json_t *v;
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, v)
        {
            if (json_to_msgpack(v, pk, err, errlen) < 0)
                return -1;
        }
        return 0;
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        json_t *b = json_object_get(j, "$base64");
        if (b && json_object_size(j) == 1) {
            uint8_t *data;
            size_t len;
            if (!json_is_string(b) ||
                b64_decode(json_string_value(b), json_string_length(b), &data, &len) < 0) {
                snprintf(err, errlen, "{\"$base64\": ...} must hold a base64 string");
                return -1;
            }
            msgpack_pack_bin(pk, len);
            msgpack_pack_bin_body(pk, data, len);
            free(data);
            return 0;
        }
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)j, k, v)
        {
            pack_str(pk, k, strlen(k));
            if (json_to_msgpack(v, pk, err, errlen) < 0)
                return -1;
        }
        return 0;
    }
    }
    snprintf(err, errlen, "unsupported JSON value");
    return -1;
}

static json_t *bytes_json(const char *p, size_t n)
{
    char *s = b64_encode((const uint8_t *)p, n);
    json_t *j = s ? json_pack("{s:s}", "$base64", s) : NULL;
    free(s);
    return j;
}

json_t *msgpack_to_json(const msgpack_object *o)
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
        /* not UTF-8: show the bytes rather than fail */
        return j ? j : bytes_json(o->via.str.ptr, o->via.str.size);
    }
    case MSGPACK_OBJECT_BIN:
        return bytes_json(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_EXT: {
        json_t *j = bytes_json(o->via.ext.ptr, o->via.ext.size);
        if (j)
            json_object_set_new(j, "$ext", json_integer(o->via.ext.type));
        return j;
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++)
            json_array_append_new(a, msgpack_to_json(&o->via.array.ptr[i]));
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            json_t *v = msgpack_to_json(&kv->val);
            if (kv->key.type == MSGPACK_OBJECT_STR) {
                char *k = strndup(kv->key.via.str.ptr, kv->key.via.str.size);
                if (k)
                    json_object_set_new(m, k, v);
                else
                    json_decref(v);
                free(k);
            } else {
                json_t *kj = msgpack_to_json(&kv->key);
                char *k = kj ? json_dumps(kj, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
                if (k)
                    json_object_set_new(m, k, v);
                else
                    json_decref(v);
                free(k);
                json_decref(kj);
            }
        }
        return m;
    }
    }
    return json_null();
}
