/* dcache.c - see dcache.h. One mutex over everything: a table of cached dicts by name, each a
 * uthash table of entries (key, value, version) in insertion order, evicted oldest first past the
 * dict's byte cap. `seq` counts the invalidations applied (and local drops): a value read by a
 * tracked get is stored only if no invalidation came between its reply and its storing - one
 * that came may be about it, and the reply's value may be older than the change it announced.
 * `session` is the link's handshake count when the cache was last known right: the broker's
 * invalidations do not reach a client while the link is down, so a new session starts empty. */
#define _GNU_SOURCE
#include "dcache.h"

#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#undef uthash_fatal
#define uthash_fatal(msg) abort()

typedef struct dentry {
    UT_hash_handle hh; /* in dcdict.entries, oldest first */
    uint64_t ver;
    size_t vlen;
    void *val; /* owned */
    char key[];
} dentry_t;

typedef struct dcdict {
    UT_hash_handle hh; /* in dcache.dicts */
    dentry_t *entries;
    size_t bytes, max_bytes;
    char name[];
} dcdict_t;

struct dcache {
    pthread_mutex_t mu;
    atomic_bool any; /* some dict is cached: the fast "no" of dcache_is_on */
    atomic_uint_fast64_t seq;
    uint64_t session;
    dcdict_t *dicts;
    uint64_t hits, misses, invalidations;
};

dcache_t *dcache_new(void)
{
    dcache_t *dc = calloc(1, sizeof(*dc));
    if (dc)
        pthread_mutex_init(&dc->mu, NULL);
    return dc;
}

static void entry_drop(dcdict_t *d, dentry_t *e)
{
    HASH_DEL(d->entries, e);
    d->bytes -= strlen(e->key) + e->vlen;
    free(e->val);
    free(e);
}

static void dict_clear(dcdict_t *d)
{
    dentry_t *e, *t;
    HASH_ITER(hh, d->entries, e, t)
    entry_drop(d, e);
}

static void clear_all(dcache_t *dc)
{
    dcdict_t *d, *t;
    HASH_ITER(hh, dc->dicts, d, t)
    dict_clear(d);
}

void dcache_free(dcache_t *dc)
{
    dcdict_t *d, *t;
    if (!dc)
        return;
    HASH_ITER(hh, dc->dicts, d, t)
    {
        dict_clear(d);
        HASH_DEL(dc->dicts, d);
        free(d);
    }
    pthread_mutex_destroy(&dc->mu);
    free(dc);
}

bool dcache_enable(dcache_t *dc, const char *name, size_t max_bytes)
{
    dcdict_t *d;
    bool any;

    pthread_mutex_lock(&dc->mu);
    HASH_FIND_STR(dc->dicts, name, d);
    if (!max_bytes && d) {
        dict_clear(d);
        HASH_DEL(dc->dicts, d);
        free(d);
    } else if (max_bytes && !d && (d = calloc(1, sizeof(*d) + strlen(name) + 1))) {
        strcpy(d->name, name);
        HASH_ADD_STR(dc->dicts, name, d);
    }
    if (max_bytes && d) {
        d->max_bytes = max_bytes;
        while (d->bytes > d->max_bytes && d->entries)
            entry_drop(d, d->entries);
    }
    any = dc->dicts != NULL;
    atomic_store(&dc->any, any);
    pthread_mutex_unlock(&dc->mu);
    return any;
}

bool dcache_is_on(dcache_t *dc, const char *name)
{
    dcdict_t *d;
    if (!dc || !atomic_load_explicit(&dc->any, memory_order_relaxed) || !name)
        return false;
    pthread_mutex_lock(&dc->mu);
    HASH_FIND_STR(dc->dicts, name, d);
    pthread_mutex_unlock(&dc->mu);
    return d != NULL;
}

uint64_t dcache_seq(dcache_t *dc)
{
    return dc ? atomic_load(&dc->seq) : 0;
}

/* A new link: what was cached may have missed invalidations. Lock held. */
static void check_session(dcache_t *dc, uint64_t session)
{
    if (session != dc->session) {
        clear_all(dc);
        dc->session = session;
        atomic_fetch_add(&dc->seq, 1);
    }
}

bool dcache_get(dcache_t *dc, const char *name, const char *key, uint64_t session, void **ret_value,
                size_t *ret_len, uint64_t *ret_version)
{
    dcdict_t *d;
    dentry_t *e = NULL;
    void *copy = NULL;

    pthread_mutex_lock(&dc->mu);
    check_session(dc, session);
    HASH_FIND_STR(dc->dicts, name, d);
    if (d)
        HASH_FIND_STR(d->entries, key, e);
    if (e && (!ret_value || (copy = malloc(e->vlen ? e->vlen : 1)))) {
        if (copy)
            memcpy(copy, e->val, e->vlen);
        if (ret_value)
            *ret_value = copy;
        if (ret_len)
            *ret_len = e->vlen;
        if (ret_version)
            *ret_version = e->ver;
        dc->hits++;
        pthread_mutex_unlock(&dc->mu);
        return true;
    }
    pthread_mutex_unlock(&dc->mu);
    return false;
}

void dcache_count(dcache_t *dc, bool hit)
{
    pthread_mutex_lock(&dc->mu);
    if (hit)
        dc->hits++;
    else
        dc->misses++;
    pthread_mutex_unlock(&dc->mu);
}

void dcache_put(dcache_t *dc, const char *name, const char *key, const void *value, size_t len,
                uint64_t version, uint64_t seq, uint64_t session)
{
    dcdict_t *d;
    dentry_t *e;
    size_t klen = strlen(key);

    pthread_mutex_lock(&dc->mu);
    HASH_FIND_STR(dc->dicts, name, d);
    if (!d || seq != atomic_load(&dc->seq) || session != dc->session || klen + len > d->max_bytes) {
        pthread_mutex_unlock(&dc->mu);
        return; /* an invalidation came meanwhile, or it does not fit: not kept */
    }
    HASH_FIND_STR(d->entries, key, e);
    if (e)
        entry_drop(d, e);
    e = malloc(sizeof(*e) + klen + 1);
    void *copy = malloc(len ? len : 1);
    if (!e || !copy) {
        free(e);
        free(copy);
        pthread_mutex_unlock(&dc->mu);
        return;
    }
    memcpy(e->key, key, klen + 1);
    memcpy(copy, value, len);
    e->val = copy;
    e->vlen = len;
    e->ver = version;
    HASH_ADD_STR(d->entries, key, e);
    d->bytes += klen + len;
    while (d->bytes > d->max_bytes && d->entries)
        entry_drop(d, d->entries); /* the oldest first */
    pthread_mutex_unlock(&dc->mu);
}

/* Drop key (NULL: all) of dict d. Lock held. */
static void drop_locked(dcache_t *dc, dcdict_t *d, const char *key, size_t klen)
{
    dentry_t *e;
    atomic_fetch_add(&dc->seq, 1);
    if (!d)
        return;
    if (!key) {
        dict_clear(d);
        return;
    }
    HASH_FIND(hh, d->entries, key, klen, e);
    if (e)
        entry_drop(d, e);
}

void dcache_drop(dcache_t *dc, const char *name, const char *key)
{
    dcdict_t *d;
    if (!dcache_is_on(dc, name))
        return;
    pthread_mutex_lock(&dc->mu);
    HASH_FIND_STR(dc->dicts, name, d);
    drop_locked(dc, d, key, key ? strlen(key) : 0);
    pthread_mutex_unlock(&dc->mu);
}

void dcache_invalidate(dcache_t *dc, const wire_hdr_t *h, const void *payload, size_t plen,
                       bool has_payload)
{
    dcdict_t *d = NULL;

    if (!dc)
        return;
    pthread_mutex_lock(&dc->mu);
    dc->invalidations++;
    if (!h->name.ptr) {
        clear_all(dc); /* forqd dropped this connection's tracking: everything */
        atomic_fetch_add(&dc->seq, 1);
        pthread_mutex_unlock(&dc->mu);
        return;
    }
    HASH_FIND(hh, dc->dicts, h->name.ptr, h->name.len, d);
    if (!has_payload) {
        drop_locked(dc, d, NULL, 0);
        pthread_mutex_unlock(&dc->mu);
        return;
    }
    /* the keys: an array of strings; anything else drops the whole dict (never keep doubt) */
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    msgpack_zone_init(&zone, 1024);
    if (msgpack_unpack(payload, plen, &off, &zone, &o) != MSGPACK_UNPACK_SUCCESS ||
        o.type != MSGPACK_OBJECT_ARRAY) {
        drop_locked(dc, d, NULL, 0);
    } else {
        atomic_fetch_add(&dc->seq, 1);
        for (uint32_t i = 0; d && i < o.via.array.size; i++) {
            const msgpack_object *k = &o.via.array.ptr[i];
            if (k->type != MSGPACK_OBJECT_STR) {
                drop_locked(dc, d, NULL, 0);
                break;
            }
            drop_locked(dc, d, k->via.str.ptr, k->via.str.size);
        }
    }
    msgpack_zone_destroy(&zone);
    pthread_mutex_unlock(&dc->mu);
}

void dcache_stats(dcache_t *dc, uint64_t *ret_hits, uint64_t *ret_misses,
                  uint64_t *ret_invalidations, size_t *ret_entries)
{
    dcdict_t *d, *t;
    size_t n = 0;
    pthread_mutex_lock(&dc->mu);
    HASH_ITER(hh, dc->dicts, d, t)
    n += HASH_COUNT(d->entries);
    if (ret_hits)
        *ret_hits = dc->hits;
    if (ret_misses)
        *ret_misses = dc->misses;
    if (ret_invalidations)
        *ret_invalidations = dc->invalidations;
    if (ret_entries)
        *ret_entries = n;
    pthread_mutex_unlock(&dc->mu);
}
