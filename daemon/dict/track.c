/* track.c - see track.h. Two levels of tables, dicts by name and their tracked keys by key, each
 * key with the (few) connections that read it; and the connections by routing id, each with its
 * count of tracked keys. A change looks up its key (O(1)), queues one invalidation per reader and
 * forgets the key; invalidations are sent after the request's reply, grouped per connection: one
 * message per connection per request (a request changes keys of one dict).
 *
 * The changes' invalidations leave before the reply of the request that made them (after its
 * commit): the writer, when it tracks the key too, has read it before its write returns.
 *
 * A connection that passes a bound is not cut off at once: it is marked, and at the flush (after
 * the reply of the read that passed the bound) it is told to drop everything and forgotten. That
 * order matters: the client caches what that reply carried, and the invalidation that follows it
 * on the same connection is what makes it drop that too (the key was never tracked). */
#define _GNU_SOURCE
#include "track.h"

#include "util.h"
#include "wire.h"

#include <msgpack.h>
#include <string.h>
#include <uthash.h>

typedef struct treader treader_t;

typedef struct tkey {
    UT_hash_handle hh;   /* in tdict.keys */
    treader_t **readers; /* connections that read it, tracked */
    uint32_t n, cap;
    size_t klen;
    char key[];
} tkey_t;

typedef struct tdict {
    UT_hash_handle hh; /* in track.dicts */
    tkey_t *keys;
    size_t nlen;
    char name[];
} tdict_t;

struct treader {
    UT_hash_handle hh;    /* in track.readers by routing id */
    size_t nkeys;         /* keys it tracks */
    bool delim;           /* a REQ socket: replies need the empty frame */
    bool pending;         /* on track.pend */
    bool overflow;        /* passed a bound: drop all at the flush */
    bool pend_all;        /* the whole pending dict changed (a clear) */
    treader_t *pend_next; /* track.pend */
    msgpack_sbuffer keys; /* the changed keys to tell it, packed (array body) */
    uint32_t n_keys;      /* how many */
    uint8_t ilen;
    uint8_t ident[255];
};

struct track {
    outbox_t *out;
    tdict_t *dicts;
    treader_t *readers;
    size_t keys;      /* (key, connection) pairs */
    treader_t *pend;  /* readers with something to be told */
    size_t pend_nlen; /* the dict of the pending invalidations */
    char pend_name[WIRE_ID_MAX + 1];
};

track_t *track_new(outbox_t *out)
{
    track_t *t = xcalloc(1, sizeof(*t));
    t->out = out;
    return t;
}

static void reader_free(treader_t *r)
{
    msgpack_sbuffer_destroy(&r->keys);
    free(r);
}

void track_free(track_t *t)
{
    tdict_t *d, *dt;
    tkey_t *k, *kt;
    treader_t *r, *rt;

    if (!t)
        return;
    HASH_ITER(hh, t->dicts, d, dt)
    {
        HASH_ITER(hh, d->keys, k, kt)
        {
            HASH_DEL(d->keys, k);
            free(k->readers);
            free(k);
        }
        HASH_DEL(t->dicts, d);
        free(d);
    }
    HASH_ITER(hh, t->readers, r, rt)
    {
        HASH_DEL(t->readers, r);
        reader_free(r);
    }
    free(t);
}

size_t track_keys(const track_t *t)
{
    return t->keys;
}

size_t track_conns(const track_t *t)
{
    return HASH_COUNT(t->readers);
}

static void pend_add(track_t *t, treader_t *r)
{
    if (r->pending)
        return;
    r->pending = true;
    r->pend_next = t->pend;
    t->pend = r;
}

/* Remove r from key k (the pair is forgotten). */
static void key_drop_reader(track_t *t, tkey_t *k, uint32_t i)
{
    k->readers[i]->nkeys--;
    k->readers[i] = k->readers[--k->n];
    t->keys--;
}

static void key_free(tdict_t *d, tkey_t *k)
{
    HASH_DEL(d->keys, k);
    free(k->readers);
    free(k);
}

static void dict_free_if_empty(track_t *t, tdict_t *d)
{
    if (!d->keys) {
        HASH_DEL(t->dicts, d);
        free(d);
    }
}

/* Forget every key r tracks (it is told to drop everything). */
static void reader_forget_all(track_t *t, treader_t *r)
{
    tdict_t *d, *dt;
    tkey_t *k, *kt;

    HASH_ITER(hh, t->dicts, d, dt)
    {
        HASH_ITER(hh, d->keys, k, kt)
        {
            for (uint32_t i = 0; i < k->n; i++)
                if (k->readers[i] == r) {
                    key_drop_reader(t, k, i);
                    break;
                }
            if (!k->n)
                key_free(d, k);
        }
        dict_free_if_empty(t, d);
    }
}

void track_read(track_t *t, const origin_t *o, const char *name, size_t nlen, const char *key,
                size_t klen)
{
    treader_t *r;
    tdict_t *d;
    tkey_t *k;

    if (!o->ilen || o->ilen > sizeof(r->ident))
        return; /* a task: nothing caches for it */
    HASH_FIND(hh, t->readers, o->ident, o->ilen, r);
    if (!r) {
        r = xcalloc(1, sizeof(*r));
        r->ilen = (uint8_t)o->ilen;
        memcpy(r->ident, o->ident, o->ilen);
        msgpack_sbuffer_init(&r->keys);
        HASH_ADD(hh, t->readers, ident, r->ilen, r);
    }
    r->delim = o->delim;
    if (r->overflow)
        return;
    HASH_FIND(hh, t->dicts, name, nlen, d);
    if (!d) {
        d = xcalloc(1, sizeof(*d) + nlen + 1);
        memcpy(d->name, name, nlen);
        d->nlen = nlen;
        HASH_ADD_KEYPTR(hh, t->dicts, d->name, nlen, d);
    }
    HASH_FIND(hh, d->keys, key, klen, k);
    if (!k) {
        k = xcalloc(1, sizeof(*k) + klen + 1);
        memcpy(k->key, key, klen);
        k->klen = klen;
        HASH_ADD_KEYPTR(hh, d->keys, k->key, klen, k);
    }
    for (uint32_t i = 0; i < k->n; i++)
        if (k->readers[i] == r)
            return; /* tracked already */
    if (r->nkeys + 1 > TRACK_PER_CONN_MAX || t->keys + 1 > TRACK_TOTAL_MAX) {
        r->overflow = true; /* told at the flush, after this read's reply */
        pend_add(t, r);
        if (!k->n)
            key_free(d, k);
        dict_free_if_empty(t, d);
        return;
    }
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 2;
        k->readers = xrealloc(k->readers, k->cap * sizeof(*k->readers));
    }
    k->readers[k->n++] = r;
    r->nkeys++;
    t->keys++;
}

void track_changed(track_t *t, const char *name, size_t nlen, const char *key, size_t klen)
{
    tdict_t *d;
    tkey_t *k, *kt;

    if (!t->dicts)
        return;
    HASH_FIND(hh, t->dicts, name, nlen, d);
    if (!d)
        return;
    if (t->pend && (t->pend_nlen != nlen || memcmp(t->pend_name, name, nlen) != 0))
        track_flush(t, false); /* one dict per message: another dict's changes go first */
    memcpy(t->pend_name, name, nlen);
    t->pend_nlen = nlen;
    if (!key) {
        HASH_ITER(hh, d->keys, k, kt)
        {
            while (k->n) {
                treader_t *r = k->readers[0];
                r->pend_all = true;
                pend_add(t, r);
                key_drop_reader(t, k, 0);
            }
            key_free(d, k);
        }
        dict_free_if_empty(t, d);
        return;
    }
    HASH_FIND(hh, d->keys, key, klen, k);
    if (!k)
        return;
    while (k->n) {
        treader_t *r = k->readers[0];
        if (!r->pend_all) {
            msgpack_packer pk;
            msgpack_packer_init(&pk, &r->keys, msgpack_sbuffer_write);
            msgpack_pack_str_with_body(&pk, key, klen);
            r->n_keys++;
        }
        pend_add(t, r);
        key_drop_reader(t, k, 0);
    }
    key_free(d, k);
    dict_free_if_empty(t, d);
}

/* Send r the invalidation of the pending dict: its changed keys, or all of it. */
static void tell_dict(track_t *t, treader_t *r)
{
    origin_t o = {r->ident, r->ilen, r->delim, 0, 0};
    wire_hdr_t h = {.cmd = WIRE_INVALIDATE, .name = {t->pend_name, t->pend_nlen}};
    msgpack_sbuffer hdr;
    msgpack_packer pk;
    zmq_msg_t m;

    if (r->pend_all) {
        outbox_send(t->out, &o, &h, NULL); /* no keys: the whole dict */
        return;
    }
    /* the keys: an array header, then the packed strings */
    msgpack_sbuffer_init(&hdr);
    msgpack_packer_init(&pk, &hdr, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, r->n_keys);
    zmq_msg_init_size(&m, hdr.size + r->keys.size);
    memcpy(zmq_msg_data(&m), hdr.data, hdr.size);
    memcpy((char *)zmq_msg_data(&m) + hdr.size, r->keys.data, r->keys.size);
    msgpack_sbuffer_destroy(&hdr);
    outbox_send(t->out, &o, &h, &m);
}

void track_flush(track_t *t, bool overflows)
{
    treader_t *keep = NULL;

    while (t->pend) {
        treader_t *r = t->pend;
        t->pend = r->pend_next;
        if (r->n_keys || r->pend_all)
            tell_dict(t, r);
        r->pend_all = false;
        r->n_keys = 0;
        msgpack_sbuffer_clear(&r->keys);
        if (r->overflow && !overflows) {
            r->pend_next = keep; /* told after the reply of the read that passed the bound */
            keep = r;
            continue;
        }
        if (r->overflow) {
            origin_t o = {r->ident, r->ilen, r->delim, 0, 0};
            wire_hdr_t h = {.cmd = WIRE_INVALIDATE};
            outbox_send(t->out, &o, &h, NULL); /* no name: everything */
            reader_forget_all(t, r);
        }
        r->pending = r->overflow = false;
        if (!r->nkeys) {
            HASH_DEL(t->readers, r);
            reader_free(r);
        }
    }
    t->pend = keep;
}
