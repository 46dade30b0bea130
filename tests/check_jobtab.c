/* check_jobtab.c - the broker's job table: open addressing with linear probing, keyed by the
 * jobs' own ids. Besides add/find/del and growth, the tests check the probing invariant itself
 * after deletions (every job is reachable from its home slot without crossing an empty slot),
 * since a wrong backward shift loses jobs only for some collision patterns. Home slots are
 * learnt from the table (the slot a lone job lands in), not from a copy of its hash. */
#include "jobtab.h"
#include "testutil.h"

#include "job.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Check reports every passing ck_assert to the runner (a write each): in the loops below that
 * run millions of times this one reports only a failure. */
#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: expected %s", __FILE__, __LINE__, #cond);                         \
    } while (0)
#define EXPECT_EQ(a, b) EXPECT((a) == (b))
#define EXPECT_NE(a, b) EXPECT((a) != (b))
#define EXPECT_LE(a, b) EXPECT((a) <= (b))

/* A job with only its id set, as the table sees it. */
static job_t *mkjob(const char *id)
{
    size_t len = strlen(id);
    job_t *j;

    EXPECT_LE(len, 255);
    j = calloc(1, sizeof(*j) + len + 1);
    EXPECT(j != NULL);
    j->id_len = (uint8_t)len;
    memcpy(j->id, id, len + 1);
    return j;
}

static job_t *find(const jobtab_t *t, const char *id)
{
    return jobtab_find(t, id, strlen(id));
}

/* The slot a job with this id takes in a fresh table (capacity 64, the first size). */
static size_t home64(const char *id)
{
    jobtab_t t = {0};
    job_t *j = mkjob(id);
    size_t at = SIZE_MAX;

    jobtab_add(&t, j);
    EXPECT_EQ(t.cap, 64);
    for (size_t i = 0; i < t.cap; i++)
        if (jobtab_at(&t, i) == j)
            at = i;
    EXPECT_NE(at, SIZE_MAX);
    jobtab_free(&t);
    free(j);
    return at;
}

/* Ids whose home slot (capacity 64) is `slot`: n of them into ids[] (each 16 bytes). */
static void colliding_ids(size_t slot, char (*ids)[16], int n)
{
    int found = 0;
    for (int k = 0; found < n && k < 1000000; k++) {
        char id[16];
        snprintf(id, sizeof(id), "c%d", k);
        if (home64(id) == slot)
            memcpy(ids[found++], id, sizeof(id));
    }
    EXPECT_EQ(found, n);
}

/* Linear probing's invariant, for a table of capacity 64: between a job's home slot and the
 * slot it is in, no slot is empty. Also: n matches the occupied slots, and the load stays at
 * most 3/4. */
static void check_invariant64(const jobtab_t *t)
{
    size_t used = 0;

    EXPECT_EQ(t->cap, 64);
    for (size_t i = 0; i < t->cap; i++) {
        const job_t *j = jobtab_at(t, i);
        if (!j)
            continue;
        used++;
        for (size_t k = home64(j->id); k != i; k = (k + 1) & 63)
            if (!jobtab_at(t, k))
                ck_abort_msg("job %s in slot %zu is cut off from its home", j->id, i);
        EXPECT_EQ(jobtab_find(t, j->id, j->id_len), j);
    }
    EXPECT_EQ(used, t->n);
    EXPECT_LE(t->n * 4, t->cap * 3);
}

START_TEST(test_empty)
{
    jobtab_t t = {0};

    ck_assert_ptr_null(find(&t, "x"));
    ck_assert_ptr_null(jobtab_find(&t, "", 0));
    ck_assert_uint_eq(t.n, 0);
    jobtab_free(&t); /* an empty table frees */
    jobtab_free(&t); /* and twice */
    ck_assert_ptr_null(t.slots);
    ck_assert_uint_eq(t.cap, 0);
}
END_TEST

START_TEST(test_add_find_del)
{
    jobtab_t t = {0};
    job_t *a = mkjob("alpha"), *ab = mkjob("alphabet"), *b = mkjob("beta");

    jobtab_add(&t, a);
    ck_assert_uint_eq(t.n, 1);
    ck_assert_uint_eq(t.cap, 64);
    ck_assert_ptr_eq(find(&t, "alpha"), a);
    ck_assert_ptr_null(find(&t, "beta"));
    /* the length is part of the key: a prefix or a longer id is another id */
    ck_assert_ptr_null(jobtab_find(&t, "alpha", 4));
    ck_assert_ptr_null(jobtab_find(&t, "alphabet", 8));
    jobtab_add(&t, ab);
    jobtab_add(&t, b);
    ck_assert_uint_eq(t.n, 3);
    ck_assert_ptr_eq(find(&t, "alpha"), a);
    ck_assert_ptr_eq(find(&t, "alphabet"), ab);
    ck_assert_ptr_eq(jobtab_find(&t, "alphabetical", 8), ab); /* only len bytes are read */
    ck_assert_ptr_eq(find(&t, "beta"), b);
    jobtab_del(&t, ab);
    ck_assert_uint_eq(t.n, 2);
    ck_assert_ptr_null(find(&t, "alphabet"));
    ck_assert_ptr_eq(find(&t, "alpha"), a);
    ck_assert_ptr_eq(find(&t, "beta"), b);
    jobtab_del(&t, a);
    jobtab_del(&t, b);
    ck_assert_uint_eq(t.n, 0);
    ck_assert_ptr_null(find(&t, "alpha"));
    ck_assert_ptr_null(find(&t, "beta"));
    jobtab_free(&t);
    free(a);
    free(ab);
    free(b);
}
END_TEST

/* Ids of every length the wire allows, and bytes that are not letters. */
START_TEST(test_id_lengths)
{
    jobtab_t t = {0};
    job_t *j[256];
    char id[256];

    for (int len = 0; len < 256; len++) {
        memset(id, 'a' + len % 26, (size_t)len);
        id[len] = '\0';
        j[len] = mkjob(id);
        jobtab_add(&t, j[len]);
    }
    ck_assert_uint_eq(t.n, 256);
    for (int len = 0; len < 256; len++) {
        memset(id, 'a' + len % 26, (size_t)len);
        ck_assert_ptr_eq(jobtab_find(&t, id, (size_t)len), j[len]);
    }
    ck_assert_ptr_eq(jobtab_find(&t, "", 0), j[0]);
    for (int len = 0; len < 256; len++) {
        jobtab_del(&t, j[len]);
        free(j[len]);
    }
    ck_assert_uint_eq(t.n, 0);
    jobtab_free(&t);
}
END_TEST

/* The table doubles before it is 3/4 full, from 64 slots, and keeps every job findable. */
START_TEST(test_growth)
{
    enum { N = 5000 };
    jobtab_t t = {0};
    job_t **j = calloc(N, sizeof(*j));
    char id[32];
    size_t last_cap = 0;
    int grew = 0;

    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "job-%d", i);
        j[i] = mkjob(id);
        jobtab_add(&t, j[i]);
        EXPECT_EQ(t.n, (size_t)i + 1);
        EXPECT_LE(t.n * 4, t.cap * 3);
        EXPECT_EQ(t.cap & (t.cap - 1), 0); /* a power of two */
        if (t.cap != last_cap) {
            EXPECT(last_cap == 0 ? t.cap == 64 : t.cap == 2 * last_cap);
            last_cap = t.cap;
            grew++;
            /* right after growing, everything is still there */
            for (int k = 0; k <= i; k++) {
                snprintf(id, sizeof(id), "job-%d", k);
                EXPECT_EQ(find(&t, id), j[k]);
            }
        }
    }
    EXPECT_EQ(t.cap, 8192); /* 5000 > 4096 * 3/4 */
    EXPECT_EQ(grew, 8);     /* 64 .. 8192 */
    /* iteration sees each job exactly once */
    size_t seen = 0;
    for (size_t i = 0; i < t.cap; i++) {
        job_t *x = jobtab_at(&t, i);
        if (x) {
            int k = atoi(x->id + 4);
            EXPECT_EQ(j[k], x);
            j[k] = NULL;
            free(x);
            seen++;
        }
    }
    EXPECT_EQ(seen, N);
    jobtab_free(&t);
    free(j);
}
END_TEST

/* Many ids, half of them removed in a scattered order: the rest are found, the removed are not,
 * and the table shrinks in count but keeps its capacity. */
START_TEST(test_many_ids)
{
    int n = test_quick() ? 20000 : 200000;
    jobtab_t t = {0};
    job_t **j = calloc((size_t)n, sizeof(*j));
    char id[40];

    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%08x-%d", (unsigned)i * 2654435761u, i);
        j[i] = mkjob(id);
        jobtab_add(&t, j[i]);
    }
    size_t cap = t.cap;
    for (int i = 0; i < n; i += 2) {
        int k = (int)(((unsigned)i * 7919u) % (unsigned)n) & ~1; /* even ones, scattered */
        if (j[k]) {
            jobtab_del(&t, j[k]);
            free(j[k]);
            j[k] = NULL;
        }
    }
    for (int i = 0; i < n; i += 2) { /* those the scatter missed */
        if (j[i]) {
            jobtab_del(&t, j[i]);
            free(j[i]);
            j[i] = NULL;
        }
    }
    EXPECT_EQ(t.n, (size_t)n / 2);
    EXPECT_EQ(t.cap, cap);
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%08x-%d", (unsigned)i * 2654435761u, i);
        EXPECT_EQ(find(&t, id), j[i]); /* NULL for the removed */
    }
    for (int i = 1; i < n; i += 2) {
        jobtab_del(&t, j[i]);
        free(j[i]);
    }
    EXPECT_EQ(t.n, 0);
    for (size_t i = 0; i < t.cap; i++)
        EXPECT(jobtab_at(&t, i) == NULL);
    jobtab_free(&t);
    free(j);
}
END_TEST

/* An id may be used again once its job is gone (the broker reuses finished ids): the new
 * record is found, not the old one, and the old memory is not touched. */
START_TEST(test_reuse_after_remove)
{
    jobtab_t t = {0};
    job_t *old = mkjob("same"), *other = mkjob("other"), *again;

    jobtab_add(&t, old);
    jobtab_add(&t, other);
    jobtab_del(&t, old);
    free(old);
    ck_assert_ptr_null(find(&t, "same"));
    again = mkjob("same");
    jobtab_add(&t, again);
    EXPECT_EQ(find(&t, "same"), again);
    EXPECT_EQ(find(&t, "other"), other);
    EXPECT_EQ(t.n, 2);
    /* over and over: the count stays right and nothing piles up */
    for (int i = 0; i < 10000; i++) {
        jobtab_del(&t, again);
        free(again);
        again = mkjob("same");
        jobtab_add(&t, again);
    }
    EXPECT_EQ(t.n, 2);
    EXPECT_EQ(t.cap, 64);
    EXPECT_EQ(find(&t, "same"), again);
    jobtab_del(&t, again);
    jobtab_del(&t, other);
    free(again);
    free(other);
    jobtab_free(&t);
}
END_TEST

/* Ids that share a home slot line up after it; deleting any one of them (first, middle, last)
 * shifts the ones behind it back so every other stays reachable. */
START_TEST(test_collisions)
{
    enum { K = 6 };
    char ids[K][16];
    size_t home = home64("anchor");

    colliding_ids(home, ids, K);
    for (int victim = 0; victim < K; victim++) {
        jobtab_t t = {0};
        job_t *j[K];
        for (int i = 0; i < K; i++) {
            j[i] = mkjob(ids[i]);
            jobtab_add(&t, j[i]);
        }
        /* a cluster: home, home+1, ... in order of insertion */
        for (int i = 0; i < K; i++)
            ck_assert_ptr_eq(jobtab_at(&t, (home + (size_t)i) & 63), j[i]);
        check_invariant64(&t);
        jobtab_del(&t, j[victim]);
        ck_assert_ptr_null(find(&t, ids[victim]));
        check_invariant64(&t);
        /* the gap is at the end of the cluster, not in it */
        ck_assert_ptr_null(jobtab_at(&t, (home + K - 1) & 63));
        for (int i = 0; i < K; i++)
            if (i != victim)
                ck_assert_ptr_eq(find(&t, ids[i]), j[i]);
        for (int i = 0; i < K; i++) {
            if (i != victim)
                jobtab_del(&t, j[i]);
            free(j[i]);
        }
        ck_assert_uint_eq(t.n, 0);
        jobtab_free(&t);
    }
}
END_TEST

/* A cluster that wraps from the last slot to the first, mixed with jobs whose home is inside
 * the wrapped part: a job may only move back over a gap that lies between its home and it. */
START_TEST(test_collisions_wrap_around)
{
    enum { K = 4 };
    char last[K][16], first[2][16];
    jobtab_t t = {0};
    job_t *jl[K], *jf[2];

    colliding_ids(62, last, K); /* takes 62, 63, 0, 1 */
    colliding_ids(0, first, 2); /* home 0, pushed to 2 and 3 */
    for (int i = 0; i < K; i++) {
        jl[i] = mkjob(last[i]);
        jobtab_add(&t, jl[i]);
    }
    for (int i = 0; i < 2; i++) {
        jf[i] = mkjob(first[i]);
        jobtab_add(&t, jf[i]);
    }
    ck_assert_ptr_eq(jobtab_at(&t, 63), jl[1]);
    ck_assert_ptr_eq(jobtab_at(&t, 0), jl[2]);
    ck_assert_ptr_eq(jobtab_at(&t, 3), jf[1]);
    check_invariant64(&t);
    /* delete across the wrap, one at a time, checking the invariant each time */
    int order[K + 2] = {1, 4, 0, 5, 3, 2}; /* indexes into jl (0..3) then jf (4..5) */
    for (int s = 0; s < K + 2; s++) {
        job_t *v = order[s] < K ? jl[order[s]] : jf[order[s] - K];
        jobtab_del(&t, v);
        ck_assert_ptr_null(jobtab_find(&t, v->id, v->id_len));
        check_invariant64(&t);
        free(v);
    }
    ck_assert_uint_eq(t.n, 0);
    jobtab_free(&t);
}
END_TEST

/* Random adds and deletes against a plain array that says which ids are in: a long run through
 * every probe pattern a small table (heavy collisions) and a growing one meet. */
START_TEST(test_random_against_model)
{
    enum { POOL = 3000 };
    jobtab_t t = {0};
    job_t *in[POOL] = {0};
    char id[32];
    size_t count = 0;
    unsigned seed = 12345;
    int steps = test_quick() ? 20000 : 200000;

    for (int s = 0; s < steps; s++) {
        seed = seed * 1103515245u + 12345u;
        /* a pool that starts small so the table stays near full at 64 slots for a while */
        int limit = s < steps / 4 ? 48 : POOL;
        int k = (int)((seed >> 8) % (unsigned)limit);
        if (in[k]) {
            jobtab_del(&t, in[k]);
            free(in[k]);
            in[k] = NULL;
            count--;
        } else {
            snprintf(id, sizeof(id), "r%d", k);
            in[k] = mkjob(id);
            jobtab_add(&t, in[k]);
            count++;
        }
        EXPECT_EQ(t.n, count);
        if (t.cap == 64 && s % 7 == 0)
            check_invariant64(&t);
        /* look up a few ids, in or not */
        for (int q = 0; q < 3; q++) {
            int x = (int)((seed >> (q * 5)) % (unsigned)limit);
            snprintf(id, sizeof(id), "r%d", x);
            EXPECT_EQ(find(&t, id), in[x]);
        }
    }
    for (int k = 0; k < POOL; k++) {
        snprintf(id, sizeof(id), "r%d", k);
        EXPECT_EQ(find(&t, id), in[k]);
        if (in[k]) {
            jobtab_del(&t, in[k]);
            free(in[k]);
        }
    }
    EXPECT_EQ(t.n, 0);
    jobtab_free(&t);
}
END_TEST

static Suite *jobtab_suite(void)
{
    Suite *s = suite_create("jobtab");
    TCase *tc = tcase_create("jobtab");

    tcase_set_timeout(tc, test_ms(60));
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_add_find_del);
    tcase_add_test(tc, test_id_lengths);
    tcase_add_test(tc, test_growth);
    tcase_add_test(tc, test_many_ids);
    tcase_add_test(tc, test_reuse_after_remove);
    tcase_add_test(tc, test_collisions);
    tcase_add_test(tc, test_collisions_wrap_around);
    tcase_add_test(tc, test_random_against_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(jobtab_suite());
}
