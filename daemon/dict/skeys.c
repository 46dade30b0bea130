/* skeys.c - see skeys.h. The parsers take the store's bytes as untrusted: a log can be damaged
 * or edited, and replay restores a value as the bytes it holds. */
#include "skeys.h"

#include "wire.h"

#include <stdio.h>
#include <string.h>

bool skeys_is_internal(const char *name, size_t nlen)
{
    return nlen > 0 && name[0] == '\x01';
}

size_t skeys_make(char *buf, const char *name, size_t nlen, uint64_t n)
{
    memcpy(buf, name, nlen);
    return nlen + (size_t)snprintf(buf + nlen, SKEYS_KEY_MAX + 1 - nlen, "/%016llx",
                                   (unsigned long long)n);
}

void skeys_pack_lease(msgpack_sbuffer *sb, uint64_t expires_ms, uint64_t lease_ms)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, expires_ms);
    msgpack_pack_uint64(&pk, lease_ms);
}

/* "NAME/<16 hex>": the name and the number, or -1. */
static int parse_key(const char *key, size_t klen, skeys_entry_t *e)
{
    uint64_t n = 0;

    if (klen < 18 || key[klen - 17] != '/')
        return -1;
    for (size_t i = klen - 16; i < klen; i++) {
        char c = key[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        n = n << 4 | (uint64_t)d;
    }
    if (!wire_id_is_valid(key, klen - 17))
        return -1;
    e->name = key;
    e->nlen = klen - 17;
    e->n = n;
    return 0;
}

/* A msgpack unsigned integer at p (at most left bytes): its value and size, or 0. */
static size_t read_uint(const uint8_t *p, size_t left, uint64_t *ret)
{
    size_t w;

    if (left == 0)
        return 0;
    if (p[0] <= 0x7f) {
        *ret = p[0];
        return 1;
    }
    w = p[0] == 0xcc ? 1 : p[0] == 0xcd ? 2 : p[0] == 0xce ? 4 : p[0] == 0xcf ? 8 : 0;
    if (w == 0 || left < 1 + w)
        return 0;
    *ret = 0;
    for (size_t i = 0; i < w; i++)
        *ret = *ret << 8 | p[1 + i];
    return 1 + w;
}

/* [expires_ms, lease_ms], nothing after it. */
static int parse_lease(const dval_t *v, skeys_entry_t *e)
{
    const uint8_t *p = v->data;
    size_t a, b;

    if (v->len < 3 || p[0] != 0x92)
        return -1;
    if (!(a = read_uint(p + 1, v->len - 1, &e->expires_ms)) ||
        !(b = read_uint(p + 1 + a, v->len - 1 - a, &e->lease_ms)) || 1 + a + b != v->len)
        return -1;
    return 0;
}

typedef struct {
    const char *kind;
    skeys_fn fn;
    void *ud;
    size_t bad;
} each_t;

static int visit(void *ud, const char *key, size_t klen, const dval_t *val)
{
    each_t *x = ud;
    skeys_entry_t e = {.val = val};
    int r;

    if (strcmp(x->kind, SKEYS_EVENTS) == 0) {
        r = wire_id_is_valid(key, klen) ? 0 : -1;
        e.name = key;
        e.nlen = klen;
    } else {
        r = parse_key(key, klen, &e);
        if (r == 0 && strcmp(x->kind, SKEYS_LOCKS) == 0)
            r = parse_lease(val, &e);
    }
    if (r < 0) {
        x->bad++;
        return 0;
    }
    return x->fn(x->ud, &e);
}

size_t skeys_each(dstore_t *s, const char *kind, skeys_fn fn, void *ud)
{
    each_t x = {kind, fn, ud, 0};
    bool more;

    dstore_iter(s, kind, SKEYS_NLEN, NULL, 0, SIZE_MAX, visit, &x, &more);
    return x.bad;
}
