/* store.c - see store.h. Two levels of uthash tables: dicts by name, entries by key. uthash keeps
 * insertion order for iteration, which gives keys/items paging a stable order. A dict exists
 * while it has keys. */
#include "store.h"

#include "util.h"

#include <assert.h>
#include <errno.h>
#include <msgpack.h>
#include <string.h>
#include <sys/random.h>
#include <uthash.h>

typedef struct entry {
    UT_hash_handle hh; /* in dict->entries by key */
    uint64_t ver;      /* version of the current value */
    void *val;         /* msgpack value (owned) */
    size_t vlen;
    size_t klen;
    char key[]; /* NUL-terminated */
} entry_t;

typedef struct dict {
    UT_hash_handle hh; /* in store->dicts by name */
    entry_t *entries;  /* by key */
    size_t nlen;
    char name[]; /* NUL-terminated */
} dict_t;

struct dstore {
    dict_t *dicts; /* by name */
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
    return s;
}

static void entry_free(entry_t *e)
{
    free(e->val);
    free(e);
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
    void *copy = xmalloc(vlen);

    memcpy(copy, val, vlen);
    HASH_FIND(hh, d->entries, key, klen, e);
    if (e) {
        s->bytes -= e->vlen;
        free(e->val);
    } else {
        e = xcalloc(1, sizeof(*e) + klen + 1);
        memcpy(e->key, key, klen);
        e->klen = klen;
        HASH_ADD_KEYPTR(hh, d->entries, e->key, klen, e);
        s->keys++;
        s->bytes += klen;
    }
    e->val = copy;
    e->vlen = vlen;
    e->ver = ++s->ver;
    s->bytes += vlen;
    return e;
}

/* Remove an entry (and its dict when it empties). */
static void drop(dstore_t *s, dict_t *d, entry_t *e)
{
    HASH_DEL(d->entries, e);
    s->keys--;
    s->bytes -= e->klen + e->vlen;
    entry_free(e);
    if (!d->entries) {
        HASH_DEL(s->dicts, d);
        dict_free(d);
    }
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
    *ret_val = e->val;
    *ret_len = e->vlen;
    *ret_ver = e->ver;
    e->val = NULL;
    s->bytes -= e->vlen;
    e->vlen = 0;
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

int dstore_incr(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
                int64_t delta, int64_t *ret_value, uint64_t *ret_ver)
{
    entry_t *e = find_entry(s, name, nlen, key, klen);
    int64_t v = 0, sum;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    if (e && (r = read_int(e->val, e->vlen, &v)) < 0)
        return r;
    if (__builtin_add_overflow(v, delta, &sum))
        return -ERANGE;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_int64(&pk, sum);
    r = fits(s, !e, klen, e ? e->vlen : 0, sb.size);
    if (r == 0) {
        e = put(s, find_dict(s, name, nlen, true), key, klen, sb.data, sb.size);
        *ret_value = sum;
        *ret_ver = e->ver;
        notify(s, name, nlen, key, klen);
    }
    msgpack_sbuffer_destroy(&sb);
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

size_t dstore_first_of(const dstore_t *s, size_t n, const char *const *keys, const size_t *klens,
                       uint32_t *ret_first)
{
    size_t cap = 16, distinct = 0;
    uint32_t *slot; /* index + 1 of a key's first entry; 0: empty */

    assert(n < UINT32_MAX);
    while (cap < 2 * n)
        cap *= 2;
    slot = xcalloc(cap, sizeof(*slot));
    for (size_t i = 0; i < n; i++) {
        size_t h = (size_t)key_hash(s->seed, keys[i], klens[i]) & (cap - 1);
        for (;; h = (h + 1) & (cap - 1)) {
            uint32_t j = slot[h];
            if (j == 0) {
                slot[h] = (uint32_t)i + 1;
                ret_first[i] = (uint32_t)i;
                distinct++;
                break;
            }
            if (klens[j - 1] == klens[i] && memcmp(keys[j - 1], keys[i], klens[i]) == 0) {
                ret_first[i] = j - 1;
                break;
            }
        }
    }
    free(slot);
    return distinct;
}

int dstore_update(dstore_t *s, const char *name, size_t nlen, size_t n, const char *const *keys,
                  const size_t *klens, const void *const *vals, const size_t *vlens,
                  uint64_t *ret_ver)
{
    size_t add_keys = 0, bytes = s->bytes;
    uint32_t *first, *last;
    dict_t *d;

    /* limits that need no work first: a batch larger than the whole store cannot fit */
    if (n > s->lim.max_keys || n >= UINT32_MAX)
        return -ENOSPC;
    for (size_t i = 0; i < n; i++)
        if (vlens[i] > s->lim.max_value)
            return -E2BIG;
    if (n == 0) {
        *ret_ver = s->ver;
        return 0;
    }
    /* a key given twice is one key: kept where it first appears, with its last value (as
     * Python's dict.update); first[] and last[] make that linear */
    first = xmalloc(n * sizeof(*first));
    last = xmalloc(n * sizeof(*last));
    dstore_first_of(s, n, keys, klens, first);
    for (size_t i = 0; i < n; i++)
        last[first[i]] = (uint32_t)i;
    /* check the whole batch first: all or nothing */
    for (size_t i = 0; i < n; i++) {
        if (first[i] != i)
            continue;
        entry_t *e = find_entry(s, name, nlen, keys[i], klens[i]);
        bytes += vlens[last[i]];
        if (e)
            bytes -= e->vlen;
        else {
            add_keys++;
            bytes += klens[i];
        }
    }
    if (s->keys + add_keys > s->lim.max_keys || bytes > s->lim.max_bytes) {
        free(first);
        free(last);
        return -ENOSPC;
    }
    d = find_dict(s, name, nlen, true);
    for (size_t i = 0; i < n; i++) {
        if (first[i] != i)
            continue;
        *ret_ver = put(s, d, keys[i], klens[i], vals[last[i]], vlens[last[i]])->ver;
        notify(s, name, nlen, keys[i], klens[i]);
    }
    free(first);
    free(last);
    return 0;
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
    HASH_DEL(s->dicts, d);
    dict_free(d);
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
