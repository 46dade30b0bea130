/* multi.c - the dict op `mget`: many keys of one dict read in one request (PROTOCOL.md 6.8).
 * `mset`, its writing half, is `update` under another name (update.c): the same all-or-none
 * plan, the same single log frame.
 *
 * The broker runs one request at a time, so the keys are read at one instant: no write falls
 * between two of them. The request is refused whole, before any work, when it names more keys
 * than one request may (MULTI_KEYS_MAX) or has a key that is not one; the reply is refused whole
 * when the values it would carry pass --max-payload (the client could not take the frame). The
 * reply's values are the stored bytes, copied once into the reply frame. */
#include "svc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The array at data's start: its entry count and where its first entry begins. */
static int array_header(const uint8_t *p, size_t len, uint32_t *ret_n, size_t *ret_off)
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

/* The bytes msgpack takes for the array header of n entries. */
static size_t array_hdr_len(size_t n)
{
    return n < 16 ? 1 : n <= UINT16_MAX ? 3 : 5;
}

void svc_mget(dict_service_t *s, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload)
{
    const uint8_t *p = zmq_msg_data(payload);
    size_t len = zmq_msg_size(payload), off, total, at;
    uint32_t n, found = 0;
    char msg[256];
    msgpack_sbuffer sb;
    msgpack_packer pk;

    if (array_header(p, len, &n, &off) < 0) {
        outbox_error(s->out, o, h, "bad_value", "mget takes an array of keys (strings)");
        return;
    }
    if (n > MULTI_KEYS_MAX) {
        snprintf(msg, sizeof(msg),
                 "mget: %" PRIu32 " keys in one request, over the limit of %u; ask in several "
                 "requests",
                 n, MULTI_KEYS_MAX);
        outbox_error(s->out, o, h, "too_large", msg);
        return;
    }
    /* pass 1: every key is one, and the reply's size (nothing is copied yet) */
    total = array_hdr_len(n);
    at = off;
    for (uint32_t i = 0; i < n; i++) {
        const char *key;
        size_t klen, next;
        dval_t v;
        if (wire_str_header(p + at, len - at, &key, &klen, &next) < 0 || klen == 0 ||
            klen > WIRE_KEY_MAX || memchr(key, '\0', klen)) {
            outbox_error(s->out, o, h, "bad_key",
                         "mget: keys must be non-empty strings of at most 1024 bytes without NUL");
            return;
        }
        at += next;
        if (dstore_get(s->store, h->name.ptr, h->name.len, key, klen, &v) == 0)
            total += 1 + 9 + v.len; /* [ver, value]: array header, version, the value */
        else
            total += 1; /* nil */
    }
    if (total > (size_t)s->cfg->max_payload) {
        snprintf(msg, sizeof(msg),
                 "mget: the values of these %" PRIu32 " keys come to about %zu bytes, over this "
                 "forqd's --max-payload of %ld; ask for fewer keys at once",
                 n, total, s->cfg->max_payload);
        outbox_error(s->out, o, h, "too_large", msg);
        return;
    }
    /* pass 2: the reply, the keys read again at the same instant (nothing ran in between) */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
    at = off;
    for (uint32_t i = 0; i < n; i++) {
        const char *key;
        size_t klen, next;
        dval_t v;
        wire_str_header(p + at, len - at, &key, &klen, &next);
        at += next;
        if (dstore_get(s->store, h->name.ptr, h->name.len, key, klen, &v) == 0) {
            msgpack_pack_array(&pk, 2);
            msgpack_pack_uint64(&pk, v.ver);
            msgpack_sbuffer_write(&sb, v.data, v.len);
            found++;
        } else {
            msgpack_pack_nil(&pk);
        }
    }
    wire_hdr_t rep = {.count = found};
    svc_reply(s, o, h, &rep, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}
