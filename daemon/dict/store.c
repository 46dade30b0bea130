/* store.c - see store.h. Two levels of uthash tables: dicts by name, entries by key. uthash keeps
 * insertion order for iteration, which gives keys/items paging a stable order. A dict exists
 * while it has keys. The dicts are also in a skip list by name (names.h), so that listing them
 * a page at a time costs O(log dicts + page), and a page can resume after a dict that is gone:
 * it costs a dict O(log dicts) when it is created or emptied, never a key's write.
 *
 * An entry is one allocation: its header, its key and, as first stored, its value. A value
 * replaced by one that fits goes in the same place; a larger one gets an allocation of its own.
 * Most dict values are small and rarely grow, and a separate allocation per value cost 32 bytes
 * or more each (a third of a small entry's memory, issue 11 item 3). */
#include "store.h"

#include "names.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <msgpack.h>
#include <stddef.h>
#include <string.h>
#include <sys/random.h>
#include <uthash.h>

typedef struct entry {
    UT_hash_handle hh; /* in dict->entries by key */
    uint64_t ver;      /* version of the current value */
    void *val;         /* msgpack value: at room() when it fits there, else owned */
    uint32_t vlen;     /* values are at most 1 GiB (--dict-max-value) */
    uint32_t room;     /* bytes for a value after the key */
    uint16_t klen;     /* keys are at most DICT_KEY_MAX bytes */
    char key[];        /* NUL-terminated, then `room` bytes */
} entry_t;

/* The place for a value inside the entry, after its key. */
static char *room(entry_t *e)
{
    return e->key + e->klen + 1;
}

typedef struct dict {
    UT_hash_handle hh; /* in store->dicts by name */
    entry_t *entries;  /* by key */
    size_t nlen;
    char name[]; /* NUL-terminated */
} dict_t;

struct dstore {
    dict_t *dicts;  /* by name */
    names_t *order; /* the dicts again, in byte order of their names (items: dict_t) */
    dstore_limits_t lim;
    size_t keys;               /* keys in all dicts */
    size_t bytes;              /* bytes of keys and values */
    uint64_t ver;              /* the last version handed out */
    uint64_t seed;             /* secret key of key_hash() */
    dstore_changed_fn changed; /* hook, may be NULL */
    void *ud;
    bool quiet; /* the hook is off */
};

dstore_t *dstore_new(const dstore_limits_t *limits, dstore_changed_fn changed, void *ud)
{
    dstore_t *s = xcalloc(1, sizeof(*s));
    s->lim = *limits;
    s->changed = changed;
    s->ud = ud;
    if (getrandom(&s->seed, sizeof(s->seed), GRND_NONBLOCK) != sizeof(s->seed))
        s->seed = (uint64_t)now_ms() ^ (uint64_t)(uintptr_t)s; /* no entropy yet: still varies */
    s->order = names_new(s->seed ^ 0x6a09e667f3bcc909ULL);
    return s;
}

static void entry_free(entry_t *e)
{
    if (e->val != room(e))
        free(e->val);
    free(e);
}

/* Replace an entry's value by a copy of val (which does not point into the entry). */
static void set_value(entry_t *e, const void *val, size_t vlen)
{
    if (vlen <= e->room) {
        if (e->val != room(e))
            free(e->val);
        e->val = room(e);
    } else {
        e->val = e->val == room(e) ? xmalloc(vlen) : xrealloc(e->val, vlen);
    }
    memcpy(e->val, val, vlen);
    e->vlen = (uint32_t)vlen;
}

static void dict_free(dict_t *d)
{
    entry_t *e, *tmp;
    HASH_ITER(hh, d->entries, e, tmp)
    {
        HASH_DEL(d->entries, e);
        entry_free(e);
    }
    free(d);
}

void dstore_free(dstore_t *s)
{
    dict_t *d, *tmp;
    if (!s)
        return;
    HASH_ITER(hh, s->dicts, d, tmp)
    {
        HASH_DEL(s->dicts, d);
        dict_free(d);
    }
    names_free(s->order);
    free(s);
}

static dict_t *find_dict(dstore_t *s, const char *name, size_t nlen, bool create)
{
    dict_t *d;
    HASH_FIND(hh, s->dicts, name, nlen, d);
    if (d || !create)
        return d;
    d = xcalloc(1, sizeof(*d) + nlen + 1);
    memcpy(d->name, name, nlen);
    d->nlen = nlen;
    HASH_ADD_KEYPTR(hh, s->dicts, d->name, nlen, d);
    names_add(s->order, d->name, nlen, d);
    return d;
}

static entry_t *find_entry(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen)
{
    dict_t *d = find_dict(s, name, nlen, false);
    entry_t *e = NULL;
    if (d)
        HASH_FIND(hh, d->entries, key, klen, e);
    return e;
}

static void notify(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen)
{
    if (s->changed && !s->quiet)
        s->changed(s->ud, name, nlen, key, klen);
}

/* Would storing vlen bytes under a key (new or replacing old_vlen) fit? */
static int fits(const dstore_t *s, bool is_new, size_t klen, size_t old_vlen, size_t vlen)
{
    if (vlen > s->lim.max_value)
        return -E2BIG;
    if (is_new && s->keys + 1 > s->lim.max_keys)
        return -ENOSPC;
    if (s->bytes - old_vlen + vlen + (is_new ? klen : 0) > s->lim.max_bytes)
        return -ENOSPC;
    return 0;
}

/* Store a copy of val under key; limits already checked. */
static entry_t *put(dstore_t *s, dict_t *d, const char *key, size_t klen, const void *val,
                    size_t vlen)
{
    entry_t *e;

    assert(klen <= DICT_KEY_MAX && vlen <= UINT32_MAX);
    HASH_FIND(hh, d->entries, key, klen, e);
    if (e) {
        s->bytes -= e->vlen;
        set_value(e, val, vlen);
    } else {
        e = xcalloc(1, offsetof(entry_t, key) + klen + 1 + vlen);
        memcpy(e->key, key, klen);
        e->klen = (uint16_t)klen;
        e->room = (uint32_t)vlen;
        e->val = room(e);
        memcpy(e->val, val, vlen);
        e->vlen = (uint32_t)vlen;
        HASH_ADD_KEYPTR(hh, d->entries, e->key, klen, e);
        s->keys++;
        s->bytes += klen;
    }
    e->ver = ++s->ver;
    s->bytes += vlen;
    return e;
}

/* Remove a dict (its keys are counted out already). */
static void drop_dict(dstore_t *s, dict_t *d)
{
    names_del(s->order, d->name, d->nlen);
    HASH_DEL(s->dicts, d);
    dict_free(d);
}

/* Remove an entry (and its dict when it empties). */
static void drop(dstore_t *s, dict_t *d, entry_t *e)
{
    HASH_DEL(d->entries, e);
    s->keys--;
    s->bytes -= e->klen + e->vlen;
    entry_free(e);
    if (!d->entries)
        drop_dict(s, d);
}

int dstore_get(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
               dval_t *ret)
{
    entry_t *e = find_entry(s, name, nlen, key, klen);
    if (!e)
        return -ENOENT;
    *ret = (dval_t){e->val, e->vlen, e->ver};
    return 0;
}

int dstore_set(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
               const void *val, size_t vlen, uint64_t *ret_ver)
{
    entry_t *e = find_entry(s, name, nlen, key, klen);
    int r = fits(s, !e, klen, e ? e->vlen : 0, vlen);
    if (r < 0)
        return r;
    e = put(s, find_dict(s, name, nlen, true), key, klen, val, vlen);
    *ret_ver = e->ver;
    notify(s, name, nlen, key, klen);
    return 0;
}

int dstore_del(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen)
{
    dict_t *d = find_dict(s, name, nlen, false);
    entry_t *e = NULL;
    if (d)
        HASH_FIND(hh, d->entries, key, klen, e);
    if (!e)
        return -ENOENT;
    drop(s, d, e);
    notify(s, name, nlen, key, klen);
    return 0;
}

int dstore_setdefault(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
                      const void *val, size_t vlen, dval_t *ret)
{
    entry_t *e = find_entry(s, name, nlen, key, klen);
    if (!e) {
        int r = fits(s, true, klen, 0, vlen);
        if (r < 0)
            return r;
        e = put(s, find_dict(s, name, nlen, true), key, klen, val, vlen);
        notify(s, name, nlen, key, klen);
    }
    *ret = (dval_t){e->val, e->vlen, e->ver};
    return 0;
}

int dstore_pop(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
               void **ret_val, size_t *ret_len, uint64_t *ret_ver)
{
    dict_t *d = find_dict(s, name, nlen, false);
    entry_t *e = NULL;
    if (d)
        HASH_FIND(hh, d->entries, key, klen, e);
    if (!e)
        return -ENOENT;
    *ret_len = e->vlen;
    *ret_ver = e->ver;
    if (e->val == room(e)) {
        *ret_val = xmalloc(e->vlen ? e->vlen : 1);
        memcpy(*ret_val, e->val, e->vlen);
    } else {
        *ret_val = TAKE_PTR(e->val);
        e->val = room(e);
    }
    drop(s, d, e);
    notify(s, name, nlen, key, klen);
    return 0;
}

/* A msgpack integer's value, or -EINVAL. */
static int read_int(const void *data, size_t len, int64_t *ret)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    int r = -EINVAL;

    msgpack_zone_init(&zone, 64);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS) {
        if (o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
            (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER && o.via.u64 <= INT64_MAX)) {
            *ret = o.via.i64;
            r = 0;
        } else if (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            r = -ERANGE;
        }
    }
    msgpack_zone_destroy(&zone);
    return r;
}

/* A msgpack_packer's sink that is a fixed buffer (an int's encoding: never more than 9 bytes). */
typedef struct {
    char *at;
    size_t len;
} fixed_buf_t;

static int fixed_write(void *data, const char *buf, size_t len)
{
    fixed_buf_t *f = data;
    if (f->len + len > DSTORE_INT_MAX)
        return -1;
    memcpy(f->at + f->len, buf, len);
    f->len += len;
    return 0;
}

size_t dstore_pack_int(int64_t v, char out[DSTORE_INT_MAX])
{
    fixed_buf_t f = {out, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f, fixed_write);
    msgpack_pack_int64(&pk, v);
    return f.len;
}

int dstore_incr(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
                int64_t delta, int64_t *ret_value, uint64_t *ret_ver)
{
    entry_t *e = find_entry(s, name, nlen, key, klen);
    int64_t v = 0, sum;
    char packed[DSTORE_INT_MAX];
    size_t plen;
    int r;

    if (e && (r = read_int(e->val, e->vlen, &v)) < 0)
        return r;
    if (__builtin_add_overflow(v, delta, &sum))
        return -ERANGE;
    plen = dstore_pack_int(sum, packed);
    r = fits(s, !e, klen, e ? e->vlen : 0, plen);
    if (r == 0) {
        e = put(s, find_dict(s, name, nlen, true), key, klen, packed, plen);
        *ret_value = sum;
        *ret_ver = e->ver;
        notify(s, name, nlen, key, klen);
    }
    return r;
}

int dstore_cas(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
               uint64_t expect, const void *val, size_t vlen, uint64_t *ret_ver)
{
    entry_t *e = find_entry(s, name, nlen, key, klen);
    uint64_t cur = e ? e->ver : 0;
    int r;

    if (cur != expect) {
        *ret_ver = cur;
        return -ESTALE;
    }
    if ((r = fits(s, !e, klen, e ? e->vlen : 0, vlen)) < 0)
        return r;
    e = put(s, find_dict(s, name, nlen, true), key, klen, val, vlen);
    *ret_ver = e->ver;
    notify(s, name, nlen, key, klen);
    return 0;
}

/* ---- the keys of one update: which entries name the same key ---- */

/* A keyed hash (the store's secret seed): keys come from the network, and a hash anyone can
 * compute lets a peer send keys that all land in one slot, which makes the set quadratic. */
static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t key_hash(uint64_t seed, const char *k, size_t n)
{
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL), w;

    for (; n >= 8; k += 8, n -= 8) {
        memcpy(&w, k, 8);
        h = mix64(h ^ w);
    }
    w = 0;
    memcpy(&w, k, n);
    return mix64(h ^ w ^ 0x5bd1e9955bd1e995ULL);
}

int dstore_update_plan(dstore_t *s, const char *name, size_t nlen, const dstore_batch_t *b,
                       dstore_plan_t *ret)
{
    size_t n = b->n, cap = 16, add_keys = 0, bytes = s->bytes;
    dict_t *d = find_dict(s, name, nlen, false);
    uint32_t *slot; /* the hash set: index + 1 of a key's first entry; 0: empty */
    dstore_kv_t kv, o;

    *ret = (dstore_plan_t){0, s->ver + 1, NULL};
    /* limits that need no work first: a batch larger than the whole store cannot fit */
    if (n > s->lim.max_keys || n >= UINT32_MAX)
        return -ENOSPC;
    for (size_t i = 0; i < n; i++) {
        b->get(b->ud, i, &kv);
        if (kv.vlen > s->lim.max_value)
            return -E2BIG;
    }
    if (n == 0)
        return 0;
    while (cap < 2 * n)
        cap *= 2;
    slot = xcalloc(cap, sizeof(*slot));
    ret->last = xmalloc(n * sizeof(*ret->last));
    for (size_t i = 0; i < n; i++) {
        b->get(b->ud, i, &kv);
        for (size_t h = (size_t)key_hash(s->seed, kv.key, kv.klen) & (cap - 1);;
             h = (h + 1) & (cap - 1)) {
            uint32_t j = slot[h];
            if (j == 0) { /* a key not seen before in this batch */
                entry_t *e = NULL;
                slot[h] = (uint32_t)i + 1;
                ret->last[i] = (uint32_t)i;
                ret->distinct++;
                if (d)
                    HASH_FIND(hh, d->entries, kv.key, kv.klen, e);
                if (e)
                    bytes = bytes - e->vlen + kv.vlen;
                else {
                    add_keys++;
                    bytes += kv.klen + kv.vlen;
                }
                break;
            }
            b->get(b->ud, j - 1, &o);
            if (o.klen == kv.klen && memcmp(o.key, kv.key, kv.klen) == 0) {
                /* again: this value replaces the one counted for the key so far */
                b->get(b->ud, ret->last[j - 1], &o);
                bytes = bytes - o.vlen + kv.vlen;
                ret->last[j - 1] = (uint32_t)i;
                ret->last[i] = DSTORE_DUP;
                break;
            }
        }
    }
    free(slot);
    if (s->keys + add_keys > s->lim.max_keys || bytes > s->lim.max_bytes) {
        dstore_plan_done(ret);
        return -ENOSPC;
    }
    return 0;
}

void dstore_update_apply(dstore_t *s, const char *name, size_t nlen, const dstore_batch_t *b,
                         dstore_plan_t *p, uint64_t *ret_ver)
{
    dstore_kv_t k, v;
    dict_t *d;

    assert(p->first_ver == s->ver + 1); /* nothing changed since the plan */
    *ret_ver = s->ver;
    if (p->distinct) {
        d = find_dict(s, name, nlen, true);
        for (size_t i = 0; i < b->n; i++) {
            if (p->last[i] == DSTORE_DUP)
                continue;
            b->get(b->ud, i, &k);
            b->get(b->ud, p->last[i], &v);
            *ret_ver = put(s, d, k.key, k.klen, v.val, v.vlen)->ver;
            notify(s, name, nlen, k.key, k.klen);
        }
    }
    dstore_plan_done(p);
}

void dstore_plan_done(dstore_plan_t *p)
{
    free(p->last);
    p->last = NULL;
}

int dstore_update(dstore_t *s, const char *name, size_t nlen, const dstore_batch_t *b,
                  uint64_t *ret_ver)
{
    dstore_plan_t p;
    int r = dstore_update_plan(s, name, nlen, b, &p);

    if (r == 0)
        dstore_update_apply(s, name, nlen, b, &p, ret_ver);
    return r;
}

size_t dstore_len(dstore_t *s, const char *name, size_t nlen)
{
    dict_t *d = find_dict(s, name, nlen, false);
    return d ? HASH_COUNT(d->entries) : 0;
}

size_t dstore_clear(dstore_t *s, const char *name, size_t nlen)
{
    dict_t *d = find_dict(s, name, nlen, false);
    size_t n;
    entry_t *e, *tmp;

    if (!d)
        return 0;
    n = HASH_COUNT(d->entries);
    HASH_ITER(hh, d->entries, e, tmp)
    {
        s->keys--;
        s->bytes -= e->klen + e->vlen;
    }
    drop_dict(s, d);
    notify(s, name, nlen, NULL, 0);
    return n;
}

long dstore_iter(dstore_t *s, const char *name, size_t nlen, const char *after, size_t alen,
                 size_t limit, dstore_visit_fn fn, void *ud, bool *ret_more)
{
    dict_t *d = find_dict(s, name, nlen, false);
    entry_t *e;
    long n = 0;

    *ret_more = false;
    if (!d)
        return after ? -ENOENT : 0;
    if (after) {
        HASH_FIND(hh, d->entries, after, alen, e);
        if (!e)
            return -ENOENT;
        e = e->hh.next;
    } else {
        e = d->entries;
    }
    for (; e && (size_t)n < limit; e = e->hh.next, n++) {
        dval_t v = {e->val, e->vlen, e->ver};
        if (fn(ud, e->key, e->klen, &v) != 0)
            break;
    }
    *ret_more = e != NULL;
    return n;
}

long dstore_iter_dicts(dstore_t *s, const char *after, size_t alen, size_t limit,
                       dstore_keep_fn keep, void *keep_ud, dstore_dict_fn fn, void *ud,
                       bool *ret_more)
{
    const names_node_t *x = names_seek(s->order, after, alen);
    long n = 0;

    *ret_more = false;
    for (; x; x = names_next(x)) {
        const dict_t *d = names_item(x);
        if (keep && !keep(keep_ud, d->name, d->nlen))
            continue;
        if ((size_t)n == limit) {
            *ret_more = true; /* one more the caller may see: the page is not the last */
            break;
        }
        if (fn(ud, d->name, d->nlen, HASH_COUNT(d->entries)) != 0) {
            *ret_more = true; /* stopped by fn: this one was not visited */
            break;
        }
        n++;
    }
    return n;
}

void dstore_restore(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
                    const void *val, size_t vlen, uint64_t ver)
{
    entry_t *e = put(s, find_dict(s, name, nlen, true), key, klen, val, vlen);
    s->ver--; /* put() took a fresh version: hand it back, and use the given one */
    e->ver = ver;
    if (ver > s->ver)
        s->ver = ver;
}

uint64_t dstore_version(const dstore_t *s)
{
    return s->ver;
}

void dstore_restore_version(dstore_t *s, uint64_t ver)
{
    if (ver > s->ver)
        s->ver = ver;
}

void dstore_forget(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen)
{
    bool q = s->quiet;
    s->quiet = true;
    if (key)
        dstore_del(s, name, nlen, key, klen);
    else
        dstore_clear(s, name, nlen);
    s->quiet = q;
}

void dstore_quiet(dstore_t *s, bool quiet)
{
    s->quiet = quiet;
}

void dstore_each(dstore_t *s, dstore_all_fn fn, void *ud)
{
    dict_t *d, *dt;
    entry_t *e, *et;
    HASH_ITER(hh, s->dicts, d, dt)
    {
        HASH_ITER(hh, d->entries, e, et)
        {
            dval_t v = {e->val, e->vlen, e->ver};
            if (fn(ud, d->name, d->nlen, e->key, e->klen, &v) != 0)
                return;
        }
    }
}

size_t dstore_keys(const dstore_t *s)
{
    return s->keys;
}

size_t dstore_bytes(const dstore_t *s)
{
    return s->bytes;
}

size_t dstore_dicts(const dstore_t *s)
{
    return HASH_COUNT(s->dicts);
}
