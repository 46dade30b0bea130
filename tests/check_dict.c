/* check_dict.c - the dict store: every operation's semantics, versions, limits, atomic update,
 * paging, and the change hook; values that grow and shrink in place; update's duplicate keys and
 * its cost with many keys. */
#include "store.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static dstore_t *s;
static int changes;
static char last_key[64];

static void on_change(void *ud, const char *name, size_t nlen, const char *key, size_t klen)
{
    (void)ud, (void)name, (void)nlen;
    changes++;
    snprintf(last_key, sizeof(last_key), "%.*s", key ? (int)klen : 5, key ? key : "(all)");
}

static void setup(void)
{
    dstore_limits_t lim = {.max_keys = 5, .max_value = 100, .max_bytes = 1000};
    s = dstore_new(&lim, on_change, NULL);
    changes = 0;
}

static void teardown(void)
{
    dstore_free(s);
}

#define N(x) x, strlen(x)

/* A batch for dstore_update read from arrays. */
typedef struct {
    const char *const *keys;
    const size_t *klens;
    const void *const *vals;
    const size_t *vlens;
} arrays_t;

static void arrays_get(const void *ud, size_t i, dstore_kv_t *ret)
{
    const arrays_t *a = ud;
    *ret = (dstore_kv_t){a->keys[i], a->klens[i], a->vals[i], a->vlens[i]};
}

static int update(dstore_t *st, const char *name, size_t nlen, size_t n, const char *const *keys,
                  const size_t *klens, const void *const *vals, const size_t *vlens,
                  uint64_t *ret_ver)
{
    arrays_t a = {keys, klens, vals, vlens};
    dstore_batch_t b = {n, arrays_get, &a};
    return dstore_update(st, name, nlen, &b, ret_ver);
}

START_TEST(test_set_get_versions)
{
    dval_t v;
    uint64_t v1, v2, v3;
    ck_assert_int_eq(dstore_get(s, N("d"), N("a"), &v), -ENOENT);
    ck_assert_int_eq(dstore_set(s, N("d"), N("a"), "\x01", 1, &v1), 0);
    ck_assert_int_eq(dstore_set(s, N("d"), N("b"), "\x02", 1, &v2), 0);
    ck_assert_int_eq(dstore_set(s, N("d"), N("a"), "\x03", 1, &v3), 0);
    ck_assert_uint_lt(v1, v2);
    ck_assert_uint_lt(v2, v3);
    ck_assert_int_eq(dstore_get(s, N("d"), N("a"), &v), 0);
    ck_assert_uint_eq(v.ver, v3);
    ck_assert_int_eq(((const char *)v.data)[0], 3);
    ck_assert_uint_eq(dstore_len(s, N("d")), 2);
    ck_assert_uint_eq(dstore_len(s, N("other")), 0);
    ck_assert_int_eq(changes, 3);
    ck_assert_str_eq(last_key, "a");
    ck_assert_int_eq(dstore_del(s, N("d"), N("a")), 0);
    ck_assert_int_eq(dstore_del(s, N("d"), N("a")), -ENOENT);
    ck_assert_uint_eq(dstore_len(s, N("d")), 1);
    ck_assert_uint_eq(dstore_dicts(s), 1);
}
END_TEST

START_TEST(test_incr)
{
    int64_t v;
    uint64_t ver;
    ck_assert_int_eq(dstore_incr(s, N("c"), N("n"), 5, &v, &ver), 0);
    ck_assert_int_eq(v, 5);
    ck_assert_int_eq(dstore_incr(s, N("c"), N("n"), -7, &v, &ver), 0);
    ck_assert_int_eq(v, -2);
    ck_assert_int_eq(dstore_set(s, N("c"), N("s"), "\xa1x", 2, &ver), 0);
    ck_assert_int_eq(dstore_incr(s, N("c"), N("s"), 1, &v, &ver), -EINVAL);
    ck_assert_int_eq(
        dstore_set(s, N("c"), N("big"), "\xd3\x7f\xff\xff\xff\xff\xff\xff\xff", 9, &ver), 0);
    ck_assert_int_eq(dstore_incr(s, N("c"), N("big"), 1, &v, &ver), -ERANGE);
}
END_TEST

START_TEST(test_cas_setdefault_pop)
{
    uint64_t ver, cur;
    dval_t v;
    void *val;
    size_t len;
    ck_assert_int_eq(dstore_cas(s, N("d"), N("k"), 0, "\x01", 1, &ver), 0); /* must not exist */
    ck_assert_int_eq(dstore_cas(s, N("d"), N("k"), 0, "\x02", 1, &cur), -ESTALE);
    ck_assert_uint_eq(cur, ver);
    ck_assert_int_eq(dstore_cas(s, N("d"), N("k"), ver, "\x02", 1, &cur), 0);
    ck_assert_uint_gt(cur, ver);
    ck_assert_int_eq(dstore_setdefault(s, N("d"), N("k"), "\x09", 1, &v), 0);
    ck_assert_int_eq(((const char *)v.data)[0], 2);
    ck_assert_int_eq(dstore_setdefault(s, N("d"), N("new"), "\x09", 1, &v), 0);
    ck_assert_int_eq(((const char *)v.data)[0], 9);
    ck_assert_int_eq(dstore_pop(s, N("d"), N("k"), &val, &len, &ver), 0);
    ck_assert_int_eq(((char *)val)[0], 2);
    free(val);
    ck_assert_int_eq(dstore_pop(s, N("d"), N("k"), &val, &len, &ver), -ENOENT);
}
END_TEST

/* A value is kept inside its entry as first stored; a larger one replacing it gets a place of
 * its own, a smaller one goes back inside; pop hands over a copy either way. */
START_TEST(test_values_grow_and_shrink)
{
    char v50[50], v90[90];
    uint64_t ver;
    dval_t v;
    void *val;
    size_t len;

    memset(v50, 5, sizeof(v50));
    memset(v90, 9, sizeof(v90));
    ck_assert_int_eq(dstore_set(s, N("d"), N("a"), "\x01\x02", 2, &ver), 0);
    ck_assert_int_eq(dstore_set(s, N("d"), N("a"), v50, sizeof(v50), &ver), 0);
    ck_assert_int_eq(dstore_get(s, N("d"), N("a"), &v), 0);
    ck_assert_uint_eq(v.len, 50);
    ck_assert_int_eq(memcmp(v.data, v50, 50), 0);
    ck_assert_int_eq(dstore_set(s, N("d"), N("a"), v90, sizeof(v90), &ver), 0);
    ck_assert_int_eq(dstore_get(s, N("d"), N("a"), &v), 0);
    ck_assert_int_eq(memcmp(v.data, v90, 90), 0);
    ck_assert_int_eq(dstore_set(s, N("d"), N("a"), "\x03", 1, &ver), 0);
    ck_assert_int_eq(dstore_get(s, N("d"), N("a"), &v), 0);
    ck_assert_uint_eq(v.len, 1);
    ck_assert_int_eq(((const char *)v.data)[0], 3);
    ck_assert_uint_eq(dstore_bytes(s), 2);
    ck_assert_int_eq(dstore_set(s, N("d"), N("b"), v50, sizeof(v50), &ver), 0);
    ck_assert_int_eq(dstore_set(s, N("d"), N("b"), v90, sizeof(v90), &ver), 0);
    ck_assert_int_eq(dstore_pop(s, N("d"), N("b"), &val, &len, &ver), 0); /* its own place */
    ck_assert_uint_eq(len, 90);
    ck_assert_int_eq(memcmp(val, v90, 90), 0);
    free(val);
    ck_assert_int_eq(dstore_pop(s, N("d"), N("a"), &val, &len, &ver), 0); /* inside the entry */
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(((char *)val)[0], 3);
    free(val);
    ck_assert_uint_eq(dstore_bytes(s), 0);
}
END_TEST

START_TEST(test_limits_never_evict)
{
    uint64_t ver;
    char big[101] = {0};
    char key[8];
    ck_assert_int_eq(dstore_set(s, N("d"), N("x"), big, sizeof(big), &ver), -E2BIG);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(dstore_set(s, N("d"), N(key), "\x01", 1, &ver), 0);
    }
    ck_assert_int_eq(dstore_set(s, N("d"), N("k9"), "\x01", 1, &ver), -ENOSPC);
    ck_assert_uint_eq(dstore_keys(s), 5);
    /* replacing an existing key is fine */
    ck_assert_int_eq(dstore_set(s, N("d"), N("k0"), "\x02", 1, &ver), 0);
    ck_assert_uint_eq(dstore_clear(s, N("d")), 5);
    ck_assert_uint_eq(dstore_keys(s), 0);
    ck_assert_uint_eq(dstore_bytes(s), 0);
    ck_assert_str_eq(last_key, "(all)");
}
END_TEST

START_TEST(test_update_all_or_nothing)
{
    const char *keys[] = {"a", "b", "c", "d", "e", "f"};
    size_t klens[] = {1, 1, 1, 1, 1, 1};
    const void *vals[] = {"\x01", "\x02", "\x03", "\x04", "\x05", "\x06"};
    size_t vlens[] = {1, 1, 1, 1, 1, 1};
    uint64_t ver;
    ck_assert_int_eq(update(s, N("u"), 6, keys, klens, vals, vlens, &ver), -ENOSPC);
    ck_assert_uint_eq(dstore_len(s, N("u")), 0);
    ck_assert_int_eq(update(s, N("u"), 3, keys, klens, vals, vlens, &ver), 0);
    ck_assert_uint_eq(dstore_len(s, N("u")), 3);
}
END_TEST

static int collect(void *ud, const char *key, size_t klen, const dval_t *val)
{
    char *out = ud;
    (void)val;
    strncat(out, key, klen);
    return 0;
}

START_TEST(test_paging)
{
    uint64_t ver;
    char out[64] = "";
    bool more;
    const char *keys[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++)
        dstore_set(s, N("p"), N(keys[i]), "\x01", 1, &ver);
    ck_assert_int_eq(dstore_iter(s, N("p"), NULL, 0, 2, collect, out, &more), 2);
    ck_assert(more);
    ck_assert_int_eq(dstore_iter(s, N("p"), N("b"), 2, collect, out, &more), 2);
    ck_assert(more);
    ck_assert_int_eq(dstore_iter(s, N("p"), N("d"), 2, collect, out, &more), 1);
    ck_assert(!more);
    ck_assert_str_eq(out, "abcde");
    ck_assert_int_eq(dstore_iter(s, N("p"), N("zz"), 2, collect, out, &more), -ENOENT);
    ck_assert_int_eq(dstore_iter(s, N("none"), NULL, 0, 2, collect, out, &more), 0);
}
END_TEST

/* A key given twice is one key: at its first place, with its last value, one change. */
START_TEST(test_update_duplicate_keys)
{
    const char *keys[] = {"a", "b", "a", "c", "b"};
    size_t klens[] = {1, 1, 1, 1, 1};
    const void *vals[] = {"\x01", "\x02", "\x03", "\x04", "\x05"};
    size_t vlens[] = {1, 1, 1, 1, 1};
    char out[16] = "";
    uint64_t ver;
    dval_t v;
    bool more;

    ck_assert_int_eq(update(s, N("u"), 5, keys, klens, vals, vlens, &ver), 0);
    ck_assert_int_eq(changes, 3);
    ck_assert_uint_eq(dstore_len(s, N("u")), 3);
    ck_assert_uint_eq(dstore_bytes(s), 6);
    ck_assert_int_eq(dstore_get(s, N("u"), N("a"), &v), 0);
    ck_assert_int_eq(((const char *)v.data)[0], 3);
    ck_assert_int_eq(dstore_get(s, N("u"), N("b"), &v), 0);
    ck_assert_int_eq(((const char *)v.data)[0], 5);
    ck_assert_uint_eq(v.ver, ver - 1);
    ck_assert_int_eq(dstore_get(s, N("u"), N("c"), &v), 0);
    ck_assert_uint_eq(v.ver, ver);
    ck_assert_int_eq(dstore_iter(s, N("u"), NULL, 0, 10, collect, out, &more), 3);
    ck_assert_str_eq(out, "abc");
}
END_TEST

/* 200,000 keys in one update: linear work (the duplicate check compared every key with every
 * earlier one: 2 * 10^10 comparisons). */
START_TEST(test_update_many_keys_is_linear)
{
    enum { NK = 200000 };
    dstore_limits_t lim = {NK, 100, 1 << 30};
    dstore_t *t = dstore_new(&lim, NULL, NULL);
    const char **keys = malloc((NK + 1) * sizeof(*keys));
    const void **vals = malloc((NK + 1) * sizeof(*vals));
    size_t *klens = malloc((NK + 1) * sizeof(*klens)), *vlens = malloc((NK + 1) * sizeof(*vlens));
    char *buf = malloc((NK + 1) * 8);
    struct timespec a, b;
    uint64_t ver;

    for (int i = 0; i <= NK; i++) {
        snprintf(buf + 8 * i, 8, "%07d", i);
        keys[i] = buf + 8 * i;
        klens[i] = 7;
        vals[i] = "\x01";
        vlens[i] = 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &a);
    ck_assert_int_eq(update(t, N("u"), NK, keys, klens, vals, vlens, &ver), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    fprintf(stderr, "update of %d keys: %.1f ms\n", NK, ms);
    ck_assert_uint_eq(dstore_len(t, N("u")), NK);
    ck_assert_double_lt(ms, test_ms(2000));
    /* the same keys again: all replaced, none new */
    ck_assert_int_eq(update(t, N("u"), NK, keys, klens, vals, vlens, &ver), 0);
    ck_assert_uint_eq(dstore_keys(t), NK);
    /* one entry more than the store may ever hold: refused before any work */
    ck_assert_int_eq(update(t, N("v"), NK + 1, keys, klens, vals, vlens, &ver), -ENOSPC);
    dstore_free(t);
    free(keys);
    free(vals);
    free(klens);
    free(vlens);
    free(buf);
}
END_TEST

/* ---- listing the dicts (dstore_iter_dicts) ---- */

/* Collects "name:keys," into a string, and counts what keep was asked. */
typedef struct {
    char out[4096];
    const char *prefix; /* keep only names that begin with it (NULL: all) */
    int asked;          /* keep's calls */
} dicts_t;

static bool keep_prefix(void *ud, const char *name, size_t nlen)
{
    dicts_t *d = ud;
    d->asked++;
    return !d->prefix || (nlen >= strlen(d->prefix) && !memcmp(name, d->prefix, strlen(d->prefix)));
}

static int collect_dict(void *ud, const char *name, size_t nlen, size_t keys)
{
    dicts_t *d = ud;
    size_t n = strlen(d->out);
    snprintf(d->out + n, sizeof(d->out) - n, "%.*s:%zu,", (int)nlen, name, keys);
    return 0;
}

/* Every dict in one page, from after `after` (NULL: all), with keep_prefix. */
static long list_dicts(dstore_t *st, dicts_t *d, const char *after, size_t limit, bool *more)
{
    d->out[0] = '\0';
    return dstore_iter_dicts(st, after, after ? strlen(after) : 0, limit,
                             d->prefix ? keep_prefix : NULL, d, collect_dict, d, more);
}

START_TEST(test_dicts_in_name_order)
{
    dstore_limits_t lim = {100, 100, 10000};
    dstore_t *t = dstore_new(&lim, NULL, NULL);
    dicts_t d = {0};
    uint64_t ver;
    bool more;

    /* created out of order; "a.x" sorts between "a" and "ab" ('.' < 'b'), "a" before "a.x" */
    ck_assert_int_eq(list_dicts(t, &d, NULL, 10, &more), 0);
    ck_assert(!more);
    ck_assert_str_eq(d.out, "");
    dstore_set(t, N("b"), N("k"), "\x01", 1, &ver);
    dstore_set(t, N("ab"), N("k"), "\x01", 1, &ver);
    dstore_set(t, N("a.x"), N("k1"), "\x01", 1, &ver);
    dstore_set(t, N("a.x"), N("k2"), "\x01", 1, &ver);
    dstore_set(t, N("c"), N("k"), "\x01", 1, &ver);
    dstore_set(t, N("a"), N("k1"), "\x01", 1, &ver);
    dstore_set(t, N("a"), N("k2"), "\x01", 1, &ver);
    dstore_set(t, N("a"), N("k3"), "\x01", 1, &ver);
    ck_assert_int_eq(list_dicts(t, &d, NULL, 10, &more), 5);
    ck_assert_str_eq(d.out, "a:3,a.x:2,ab:1,b:1,c:1,");
    ck_assert(!more);

    /* pages of two: the cursor is the page's last name */
    ck_assert_int_eq(list_dicts(t, &d, NULL, 2, &more), 2);
    ck_assert_str_eq(d.out, "a:3,a.x:2,");
    ck_assert(more);
    /* between pages: the cursor's dict empties (gone), one is added before it, one after */
    ck_assert_int_eq(dstore_del(t, N("a.x"), N("k1")), 0);
    ck_assert_int_eq(dstore_del(t, N("a.x"), N("k2")), 0);
    dstore_set(t, N("a.a"), N("k"), "\x01", 1, &ver);
    dstore_set(t, N("b.new"), N("k"), "\x01", 1, &ver);
    ck_assert_int_eq(list_dicts(t, &d, "a.x", 2, &more), 2);
    ck_assert_str_eq(d.out, "ab:1,b:1,");
    ck_assert(more);
    ck_assert_int_eq(list_dicts(t, &d, "b", 2, &more), 2);
    ck_assert_str_eq(d.out, "b.new:1,c:1,");
    ck_assert(!more); /* exactly: no empty last page */
    /* a cursor that was never a name is a place too; after the last: nothing */
    ck_assert_int_eq(list_dicts(t, &d, "aa", 10, &more), 4);
    ck_assert_str_eq(d.out, "ab:1,b:1,b.new:1,c:1,");
    ck_assert_int_eq(list_dicts(t, &d, "zzz", 10, &more), 0);
    ck_assert(!more);

    /* every way a dict goes: clear, pop of its last key, forget; it comes back by restore */
    ck_assert_uint_eq(dstore_clear(t, N("a")), 3);
    void *v;
    size_t vlen;
    ck_assert_int_eq(dstore_pop(t, N("ab"), N("k"), &v, &vlen, &ver), 0);
    free(v);
    dstore_forget(t, N("c"), NULL, 0);
    ck_assert_int_eq(list_dicts(t, &d, NULL, 10, &more), 3);
    ck_assert_str_eq(d.out, "a.a:1,b:1,b.new:1,");
    dstore_restore(t, N("c"), N("k"), "\x01", 1, 7);
    ck_assert_int_eq(list_dicts(t, &d, NULL, 10, &more), 4);
    ck_assert_str_eq(d.out, "a.a:1,b:1,b.new:1,c:1,");
    ck_assert_uint_eq(dstore_dicts(t), 4);
    dstore_free(t);
}
END_TEST

/* keep skips dicts without counting them; `more` says whether a kept one remains. */
START_TEST(test_dicts_filtered)
{
    dstore_limits_t lim = {100, 100, 10000};
    dstore_t *t = dstore_new(&lim, NULL, NULL);
    const char *names[] = {"a1", "b1", "a2", "b2", "a3", "b3", "c"};
    dicts_t d = {.prefix = "a"};
    uint64_t ver;
    bool more;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        dstore_set(t, N(names[i]), N("k"), "\x01", 1, &ver);
    ck_assert_int_eq(list_dicts(t, &d, NULL, 2, &more), 2);
    ck_assert_str_eq(d.out, "a1:1,a2:1,");
    ck_assert(more);
    ck_assert_int_eq(list_dicts(t, &d, "a2", 2, &more), 1);
    ck_assert_str_eq(d.out, "a3:1,");
    ck_assert(!more); /* b1..c follow, but none may be listed */
    ck_assert_int_eq(list_dicts(t, &d, "a3", 2, &more), 0);
    ck_assert(!more);
    d.prefix = "z";
    ck_assert_int_eq(list_dicts(t, &d, NULL, 2, &more), 0);
    ck_assert(!more);
    dstore_free(t);
}
END_TEST

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Random names added and removed, against a sorted copy: the order, the counts, paging from
 * every kind of cursor, and a page's work bounded by the page (keep is asked about the page's
 * names and one more, not about every dict). */
START_TEST(test_dicts_against_reference)
{
    enum { NAMES = 3000, ROUNDS = 6000 };
    dstore_limits_t lim = {NAMES, 100, 1 << 24};
    dstore_t *t = dstore_new(&lim, NULL, NULL);
    static char pool[NAMES][16];
    static bool in[NAMES];
    static char *sorted[NAMES];
    static char listed[NAMES * 24];
    unsigned seed = 12345;
    size_t n = 0;
    uint64_t ver;
    bool more;

    /* distinct names of different lengths, some prefixes of others ("1f" and "1f3-9") */
    for (int i = 0; i < NAMES; i++)
        snprintf(pool[i], sizeof(pool[i]), i % 3 ? "%x-%d" : "%x", (unsigned)rand_r(&seed) % 4096,
                 i);
    for (int i = 0; i < NAMES; i += 3)
        for (int j = 0; j < i; j += 3)
            if (strcmp(pool[i], pool[j]) == 0)
                snprintf(pool[i], sizeof(pool[i]), "u%d", i); /* keep them distinct */
    for (int r = 0; r < ROUNDS; r++) {
        int i = rand_r(&seed) % NAMES;
        if (in[i])
            ck_assert_uint_eq(dstore_clear(t, N(pool[i])), 1);
        else
            ck_assert_int_eq(dstore_set(t, N(pool[i]), N("k"), "\x01", 1, &ver), 0);
        in[i] = !in[i];
    }
    for (int j = 0; j < NAMES; j++)
        if (in[j])
            sorted[n++] = pool[j];
    qsort(sorted, n, sizeof(sorted[0]), cmp_str);
    ck_assert_uint_eq(dstore_dicts(t), n);
    ck_assert_uint_gt(n, NAMES / 4);

    /* the whole list in pages of 7, from the cursor each page gives */
    char expect[NAMES * 24] = "";
    for (size_t k = 0; k < n; k++)
        strcat(strcat(expect, sorted[k]), ":1,");
    listed[0] = '\0';
    dicts_t d = {.prefix = ""};
    char cursor[32] = "";
    int pages = 0;
    do {
        d.asked = 0;
        long got = list_dicts(t, &d, pages ? cursor : NULL, 7, &more);
        ck_assert_int_le(d.asked, 8);
        ck_assert_int_le(got, 7);
        strcat(listed, d.out);
        if (got > 0) {
            /* the last name of the page */
            char *end = d.out + strlen(d.out) - 1, *p = end;
            while (p > d.out && p[-1] != ',')
                p--;
            snprintf(cursor, sizeof(cursor), "%.*s", (int)(strchr(p, ':') - p), p);
        }
        pages++;
    } while (more);
    ck_assert_str_eq(listed, expect);
    ck_assert_int_eq(pages, (int)((n + 6) / 7));
    dstore_free(t);
}
END_TEST

static Suite *dict_suite(void)
{
    Suite *su = suite_create("dict");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_set_get_versions);
    tcase_add_test(tc, test_incr);
    tcase_add_test(tc, test_cas_setdefault_pop);
    tcase_add_test(tc, test_values_grow_and_shrink);
    tcase_add_test(tc, test_limits_never_evict);
    tcase_add_test(tc, test_update_all_or_nothing);
    tcase_add_test(tc, test_paging);
    tcase_add_test(tc, test_update_duplicate_keys);
    tcase_add_test(tc, test_update_many_keys_is_linear);
    tcase_add_test(tc, test_dicts_in_name_order);
    tcase_add_test(tc, test_dicts_filtered);
    tcase_add_test(tc, test_dicts_against_reference);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    return run_suite(dict_suite());
}
