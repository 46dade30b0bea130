/* store.h - the dict service's store: named dicts of string keys to msgpack values, each value
 * with a version that grows on every change (one counter for the whole store, so versions are
 * unique and ordered). The broker is single-threaded, so every operation is atomic.
 *
 * The store owns copies of keys and values; views it returns borrow from it until the next
 * change. Every change calls the `changed` hook: the service wakes waiters and adds the change to
 * the append-only log (dictlog.h). Limits on keys, value size and total bytes are checked before
 * anything is changed: past them an operation fails with -ENOSPC or -E2BIG and nothing is evicted.
 */
#ifndef FORQ_DSTORE_H
#define FORQ_DSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DICT_NAME_MAX 64   /* bytes in a dict name (same alphabet as job ids) */
#define DICT_KEY_MAX  1024 /* bytes in a key (any UTF-8 text but NUL) */

typedef struct dstore dstore_t;

typedef struct {
    size_t max_keys;  /* keys in all dicts together */
    size_t max_value; /* bytes of one value */
    size_t max_bytes; /* bytes of all keys and values together */
} dstore_limits_t;

/* A borrowed view of a value: valid until the next change of the store. */
typedef struct {
    const void *data;
    size_t len;
    uint64_t ver;
} dval_t;

/* Called after every change of (name, key); key NULL when a whole dict changed (clear). */
typedef void (*dstore_changed_fn)(void *ud, const char *name, size_t nlen, const char *key,
                                  size_t klen);

dstore_t *dstore_new(const dstore_limits_t *limits, dstore_changed_fn changed, void *ud);
void dstore_free(dstore_t *s);

/* Each returns 0 or -errno: -ENOENT (no such key), -E2BIG (value over max_value), -ENOSPC (over
 * max_keys or max_bytes), -ESTALE (cas: the version differs), -EINVAL (incr: the value is not an
 * integer), -ERANGE (incr: overflow). Values are single msgpack values the caller checked. */
int dstore_get(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
               dval_t *ret);
int dstore_set(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
               const void *val, size_t vlen, uint64_t *ret_ver);
int dstore_del(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen);
/* Store val unless the key exists; *ret is the value now stored either way. */
int dstore_setdefault(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
                      const void *val, size_t vlen, dval_t *ret);
/* Remove the key and hand its value to the caller (*ret_val malloc'ed, caller frees). */
int dstore_pop(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
               void **ret_val, size_t *ret_len, uint64_t *ret_ver);
/* The msgpack encoding of v into out (at most DSTORE_INT_MAX bytes), as msgpack_pack_int64
 * writes it. Returns its length. No allocation: incr's hot path. */
#define DSTORE_INT_MAX 9
size_t dstore_pack_int(int64_t v, char out[DSTORE_INT_MAX]);
/* Add delta to an integer value (a missing key counts as 0). */
int dstore_incr(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
                int64_t delta, int64_t *ret_value, uint64_t *ret_ver);
/* Set if the key's version is `expect` (0: the key must not exist). On -ESTALE, *ret_ver is the
 * current version (0 when the key does not exist). */
int dstore_cas(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
               uint64_t expect, const void *val, size_t vlen, uint64_t *ret_ver);
/* The entries of an update, read one at a time: get() puts entry i's key and value (borrowed,
 * valid while the batch is) into *ret. The service hands over entries that stay in the request's
 * frame, so an update costs no array of n pointers and lengths. */
typedef struct {
    const char *key;
    size_t klen;
    const void *val;
    size_t vlen;
} dstore_kv_t;

typedef struct {
    size_t n; /* entries, < UINT32_MAX */
    void (*get)(const void *ud, size_t i, dstore_kv_t *ret);
    const void *ud;
} dstore_batch_t;

#define DSTORE_DUP UINT32_MAX /* dstore_plan_t.last: the entry's key came earlier */

/* An update checked against the limits, not yet applied. A key given more than once is one key,
 * kept at its first place with its last value (as Python's dict.update): one change per
 * distinct key, with the versions first_ver, first_ver + 1, ... in the order of first places. */
typedef struct {
    size_t distinct;    /* distinct keys: the changes applying it makes */
    uint64_t first_ver; /* the version the first of them gets */
    uint32_t *last;     /* per entry: the last entry with its key, or DSTORE_DUP (owned) */
} dstore_plan_t;

/* Check an update of dict `name` (all or none) without changing anything. 0 with *ret (to pass
 * to dstore_update_apply or dstore_plan_done), or -E2BIG (a value over max_value) or -ENOSPC
 * (over max_keys or max_bytes; a batch of more than max_keys entries is refused before any
 * work). Linear in n: duplicates are found with a hash set keyed with a secret, so chosen keys
 * cannot make it quadratic. Costs 4 bytes per entry until the plan is done, and 8 to 16 more
 * while it runs. */
int dstore_update_plan(dstore_t *s, const char *name, size_t nlen, const dstore_batch_t *b,
                       dstore_plan_t *ret);
/* Apply a plan made on this store with nothing changed since: it cannot fail. Calls the change
 * hook once per distinct key; *ret_ver gets the last version handed out. Frees the plan. */
void dstore_update_apply(dstore_t *s, const char *name, size_t nlen, const dstore_batch_t *b,
                         dstore_plan_t *p, uint64_t *ret_ver);
void dstore_plan_done(dstore_plan_t *p);
/* Plan and apply in one (no log to write in between). */
int dstore_update(dstore_t *s, const char *name, size_t nlen, const dstore_batch_t *b,
                  uint64_t *ret_ver);
/* Number of keys of a dict (0 when it does not exist). */
size_t dstore_len(dstore_t *s, const char *name, size_t nlen);
/* Remove every key of a dict; returns how many there were. */
size_t dstore_clear(dstore_t *s, const char *name, size_t nlen);

/* Visit up to `limit` keys of a dict in insertion order, starting after key `after` (NULL:
 * from the start). fn returns 0 to go on. Returns the number visited, -ENOENT if `after` is
 * not a key (it was deleted meanwhile: start again), and sets *ret_more when keys remain. */
typedef int (*dstore_visit_fn)(void *ud, const char *key, size_t klen, const dval_t *val);
long dstore_iter(dstore_t *s, const char *name, size_t nlen, const char *after, size_t alen,
                 size_t limit, dstore_visit_fn fn, void *ud, bool *ret_more);

/* Visit up to `limit` dicts in byte order of their names (a shorter name before a longer one
 * it begins), starting after the name `after` (alen bytes; NULL: from the first), which need
 * not be a dict's: one that went away meanwhile is a place like any other. Dicts that `keep`
 * refuses (NULL: keep every one; it gets keep_ud) are skipped and not counted. fn gets each
 * dict with its number of keys and returns 0 to go on. Returns the number visited; *ret_more
 * is set when a dict `keep` accepts remains after them (or fn stopped early).
 * Cost: O(log dicts + limit + skipped), the skipped being the dicts keep refuses from `after`
 * to the next dict it accepts after the page. */
typedef bool (*dstore_keep_fn)(void *ud, const char *name, size_t nlen);
typedef int (*dstore_dict_fn)(void *ud, const char *name, size_t nlen, size_t keys);
long dstore_iter_dicts(dstore_t *s, const char *after, size_t alen, size_t limit,
                       dstore_keep_fn keep, void *keep_ud, dstore_dict_fn fn, void *ud,
                       bool *ret_more);

/* Put a value back with a given version, without limits or the change hook: replay of the log,
 * and undoing a change the log could not record. Versions handed out later stay above it. */
void dstore_restore(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen,
                    const void *val, size_t vlen, uint64_t ver);

/* The last version handed out: the store's version counter. */
uint64_t dstore_version(const dstore_t *s);

/* Raise the version counter to at least ver (replay of the log's counter records), so that
 * versions handed out after it never repeat one handed out before a compaction. */
void dstore_restore_version(dstore_t *s, uint64_t ver);

/* Remove a key, or (key NULL) a whole dict, without the change hook. */
void dstore_forget(dstore_t *s, const char *name, size_t nlen, const char *key, size_t klen);

/* Turn the change hook off (replay, undo) or on again. */
void dstore_quiet(dstore_t *s, bool quiet);

/* Visit every key of every dict (compaction). fn returns 0 to go on. */
typedef int (*dstore_all_fn)(void *ud, const char *name, size_t nlen, const char *key, size_t klen,
                             const dval_t *val);
void dstore_each(dstore_t *s, dstore_all_fn fn, void *ud);

/* Totals for stats. */
size_t dstore_keys(const dstore_t *s);
size_t dstore_bytes(const dstore_t *s);
size_t dstore_dicts(const dstore_t *s);

#endif
