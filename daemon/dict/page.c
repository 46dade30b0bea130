/* page.c - see page.h. An entry is packed as it is visited, into a body whose array header is
 * written in front once the page's count is known (a msgpack array header's size depends on
 * it): one copy of the page, no list of entries kept aside. */
#include "page.h"

#include <errno.h>
#include <string.h>

typedef struct {
    msgpack_packer pk; /* into the body */
    bool items;        /* [key, ver, value] triples rather than keys */
    const char *last;  /* the last entry visited: the next page's cursor */
    size_t last_len;
} visit_t;

static size_t limit_of(const wire_hdr_t *h)
{
    return h->limit ? (h->limit > PAGE_MAX ? PAGE_MAX : (size_t)h->limit) : PAGE_DEF;
}

static int visit_key(void *ud, const char *key, size_t klen, const dval_t *val)
{
    visit_t *v = ud;

    if (v->items)
        msgpack_pack_array(&v->pk, 3);
    msgpack_pack_str_with_body(&v->pk, key, klen);
    if (v->items) {
        msgpack_pack_uint64(&v->pk, val->ver);
        /* the value is msgpack already: append its bytes */
        msgpack_sbuffer_write(v->pk.data, val->data, val->len);
    }
    v->last = key;
    v->last_len = klen;
    return 0;
}

static int visit_dict(void *ud, const char *name, size_t nlen, size_t keys)
{
    visit_t *v = ud;

    msgpack_pack_array(&v->pk, 2);
    msgpack_pack_str_with_body(&v->pk, name, nlen);
    msgpack_pack_uint64(&v->pk, keys);
    v->last = name;
    v->last_len = nlen;
    return 0;
}

/* The frame: the array header for n entries, then the body. The fields: count, and with more
 * the cursor (a copy of the last entry visited). */
static void finish(page_t *p, msgpack_sbuffer *body, const visit_t *v, long n, bool more)
{
    msgpack_packer pk;

    msgpack_sbuffer_init(&p->frame);
    msgpack_packer_init(&pk, &p->frame, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (size_t)n);
    msgpack_sbuffer_write(&p->frame, body->data, body->size);
    msgpack_sbuffer_destroy(body);
    p->rep = (wire_hdr_t){.count = (uint64_t)n, .more = more};
    if (more && v->last && v->last_len <= WIRE_KEY_MAX) {
        memcpy(p->cursor, v->last, v->last_len);
        p->rep.key = (wire_str_t){p->cursor, v->last_len};
    }
}

int page_keys(page_t *p, dstore_t *s, const wire_hdr_t *h, bool items)
{
    msgpack_sbuffer body;
    visit_t v = {.items = items};
    bool more;
    long n;

    msgpack_sbuffer_init(&body);
    msgpack_packer_init(&v.pk, &body, msgpack_sbuffer_write);
    n = dstore_iter(s, h->name.ptr, h->name.len, h->key.ptr, h->key.len, limit_of(h), visit_key, &v,
                    &more);
    if (n < 0) {
        msgpack_sbuffer_destroy(&body);
        return -ENOENT;
    }
    finish(p, &body, &v, n, more);
    return 0;
}

void page_dicts(page_t *p, dstore_t *s, const wire_hdr_t *h, dstore_keep_fn keep, void *ud)
{
    msgpack_sbuffer body;
    visit_t v = {0};
    bool more;
    long n;

    msgpack_sbuffer_init(&body);
    msgpack_packer_init(&v.pk, &body, msgpack_sbuffer_write);
    n = dstore_iter_dicts(s, h->key.ptr, h->key.len, limit_of(h), keep, ud, visit_dict, &v, &more);
    finish(p, &body, &v, n, more);
}

void page_done(page_t *p)
{
    msgpack_sbuffer_destroy(&p->frame);
}
