/* check_dictcache.c - the client-side dict cache (issue 17, PROTOCOL.md 6.8.1) end to end: a
 * cached get costs no round trip; every kind of change (set, del, pop, incr, cas, update, mset,
 * clear, from this client or another) invalidates; a reader never sees a value older than what
 * forqd held when it last asked forqd over the same connection (the invalidations of every
 * earlier change come before that answer); concurrent writers and cached readers over 100,000
 * ops agree with the final state; nothing is served while forqd is down, nor after it comes
 * back; both sides stay within their bounds. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"

#include <check.h>
#include <msgpack.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static forqd_t d;
static forq_client_t *c;

#define T (test_ms(5000))

static msgpack_sbuffer val_int(int64_t v)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_int64(&pk, v);
    return sb;
}

static int64_t as_int(const void *data, size_t len)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    int64_t v = -12345;
    msgpack_zone_init(&zone, 64);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
        (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER || o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
        v = o.via.i64;
    msgpack_zone_destroy(&zone);
    return v;
}

static void set_int(forq_client_t *cl, const char *key, int64_t v)
{
    msgpack_sbuffer sb = val_int(v);
    ck_assert_int_eq(forq_dict_set(cl, "c", key, sb.data, sb.size, T, NULL), FORQ_OK);
    msgpack_sbuffer_destroy(&sb);
}

/* The value of key through the cache (-1: absent). */
static int64_t get_int(forq_client_t *cl, const char *key)
{
    void *v;
    size_t len;
    forq_err_t e = forq_dict_get(cl, "c", key, T, &v, &len, NULL);
    if (e == FORQ_ERR_NOT_FOUND)
        return -1;
    ck_assert_msg(e == FORQ_OK, "get %s: %s", key, forq_errdetail());
    int64_t n = as_int(v, len);
    free(v);
    return n;
}

/* The value forqd holds now, asked over cl's connection without the cache (mget always asks):
 * its answer comes after the invalidations of every change made before it (-1: absent). */
static int64_t truth(forq_client_t *cl, const char *key)
{
    void *v;
    size_t len;
    ck_assert_int_eq(forq_dict_mget(cl, "c", &key, 1, T, &v, &len, NULL, NULL), FORQ_OK);
    int64_t n = v ? as_int(v, len) : -1;
    free(v);
    return n;
}

static uint64_t hits(forq_client_t *cl)
{
    uint64_t h;
    forq_dict_cache_stats(cl, &h, NULL, NULL, NULL);
    return h;
}

/* Every change invalidates: the reader's next get is the new value (or absent). */
START_TEST(test_every_change_invalidates)
{
    forq_client_t *w;
    msgpack_sbuffer one = val_int(1), nine = val_int(9);

    e2e_up(&d, &c, 1, NULL);
    w = forqd_client(&d);
    ck_assert_int_eq(forq_dict_cache(c, "c", 1 << 20), FORQ_OK);
    ck_assert_int_eq(forq_dict_cache(c, "bad name", 1 << 20), FORQ_ERR_INVALID);
    set_int(w, "k", 1);
    ck_assert_int_eq(get_int(c, "k"), 1); /* a miss: asks forqd, tracked */
    uint64_t h0 = hits(c);
    ck_assert_int_eq(get_int(c, "k"), 1); /* a hit */
    ck_assert_uint_eq(hits(c), h0 + 1);
    ck_assert_int_eq(stat_of(c, "dict_tracked_keys"), 1);

#define CHANGED_TO(v)                                                                              \
    do {                                                                                           \
        ck_assert_int_eq(truth(c, "k"), (v)); /* its invalidation is read by now */                \
        ck_assert_int_eq(get_int(c, "k"), (v));                                                    \
        ck_assert_int_eq(get_int(c, "k"), (v)); /* cached again (when it exists) */                \
    } while (0)
    set_int(w, "k", 2);
    CHANGED_TO(2);
    int64_t now;
    ck_assert_int_eq(forq_dict_incr(w, "c", "k", 5, T, &now), FORQ_OK);
    CHANGED_TO(7);
    uint64_t ver;
    void *v;
    size_t len;
    ck_assert_int_eq(forq_dict_get(w, "c", "k", T, &v, &len, &ver), FORQ_OK);
    free(v);
    ck_assert_int_eq(forq_dict_cas(w, "c", "k", ver, nine.data, nine.size, T, NULL), FORQ_OK);
    CHANGED_TO(9);
    ck_assert_int_eq(forq_dict_del(w, "c", "k", T), FORQ_OK);
    CHANGED_TO(-1);
    set_int(w, "k", 3);
    CHANGED_TO(3);
    ck_assert_int_eq(forq_dict_pop(w, "c", "k", T, &v, &len), FORQ_OK);
    free(v);
    CHANGED_TO(-1);
    set_int(w, "k", 4);
    CHANGED_TO(4);
    {
        const char *keys[] = {"k"};
        const void *vals[] = {one.data};
        size_t lens[] = {one.size};
        ck_assert_int_eq(forq_dict_mset(w, "c", keys, vals, lens, 1, T, NULL), FORQ_OK);
        CHANGED_TO(1);
    }
    {
        msgpack_sbuffer m;
        msgpack_packer pk;
        msgpack_sbuffer_init(&m);
        msgpack_packer_init(&pk, &m, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "k", 1);
        msgpack_pack_int(&pk, 6);
        ck_assert_int_eq(forq_dict_update(w, "c", m.data, m.size, T), FORQ_OK);
        msgpack_sbuffer_destroy(&m);
        CHANGED_TO(6);
    }
    ck_assert_int_eq(forq_dict_clear(w, "c", T, NULL), FORQ_OK);
    CHANGED_TO(-1);
    /* this client's own change: read back at once (dropped before it was sent) */
    set_int(c, "k", 11);
    ck_assert_int_eq(get_int(c, "k"), 11);
    set_int(c, "k", 12);
    ck_assert_int_eq(get_int(c, "k"), 12);
#undef CHANGED_TO
    /* forqd forgets a pair once it told it; a dict not cached is not tracked */
    ck_assert_int_eq(forq_dict_incr(w, "c", "k", 1, T, &now), FORQ_OK);
    ck_assert_int_eq(truth(c, "k"), 13);
    ck_assert_int_eq(stat_of(c, "dict_tracked_keys"), 0);
    ck_assert_int_eq(forq_dict_set(c, "other", "k", one.data, one.size, T, NULL), FORQ_OK);
    ck_assert_int_eq(forq_dict_get(c, "other", "k", T, &v, &len, NULL), FORQ_OK);
    free(v);
    ck_assert_int_eq(stat_of(c, "dict_tracked_keys"), 0);
    /* turned off: the copy goes, gets ask forqd */
    ck_assert_int_eq(get_int(c, "k"), 13);
    ck_assert_int_eq(forq_dict_cache(c, "c", 0), FORQ_OK);
    h0 = hits(c);
    ck_assert_int_eq(get_int(c, "k"), 13);
    ck_assert_uint_eq(hits(c), h0);
    msgpack_sbuffer_destroy(&one);
    msgpack_sbuffer_destroy(&nine);
    forq_client_destroy(&w);
    e2e_down(&d, &c);
}
END_TEST

/* The client's copy stays within its cap; the oldest go first. */
START_TEST(test_client_cap)
{
    size_t entries;

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(forq_dict_cache(c, "c", 64), FORQ_OK);
    for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof(key), "key%02d", i); /* 5 bytes + a 1-byte value */
        set_int(c, key, i);
        ck_assert_int_eq(get_int(c, key), i);
    }
    forq_dict_cache_stats(c, NULL, NULL, NULL, &entries);
    ck_assert_uint_le(entries, 64 / 6);
    ck_assert_uint_gt(entries, 0);
    ck_assert_int_eq(get_int(c, "key39"), 39); /* the newest is there */
    e2e_down(&d, &c);
}
END_TEST

typedef struct {
    const forqd_t *d;
    int id, ops;
    atomic_int *writers_left;
    long stale, hits;
} worker_t;

#define KEYS 8

static void *writer_main(void *arg)
{
    worker_t *wk = arg;
    forq_client_t *cl = forqd_client(wk->d);
    for (int i = 1; i <= wk->ops; i++) {
        char key[8];
        int64_t now;
        snprintf(key, sizeof(key), "k%d", i % KEYS);
        ck_assert_int_eq(forq_dict_incr(cl, "c", key, 1, T, &now), FORQ_OK);
    }
    atomic_fetch_sub(wk->writers_left, 1);
    forq_client_destroy(&cl);
    return NULL;
}

/* A reader's cached value is never older than forqd's answer just before it on the same
 * connection (counters only grow: older is smaller). */
static void *reader_main(void *arg)
{
    worker_t *wk = arg;
    forq_client_t *cl = forqd_client(wk->d);
    ck_assert_int_eq(forq_dict_cache(cl, "c", 1 << 20), FORQ_OK);
    for (int i = 0; i < wk->ops; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", (i + wk->id) % KEYS);
        if (i % 16 == 0) {
            int64_t t = truth(cl, key), v = get_int(cl, key);
            if (v < t)
                wk->stale++;
        } else {
            get_int(cl, key);
        }
    }
    /* the writers are done: after one more answer from forqd, every copy is the final state */
    while (atomic_load(wk->writers_left) > 0)
        usleep(1000);
    for (int k = 0; k < KEYS; k++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", k);
        int64_t t = truth(cl, key);
        ck_assert_int_eq(get_int(cl, key), t);
        ck_assert_int_eq(get_int(cl, key), t);
    }
    forq_dict_cache_stats(cl, (uint64_t *)&wk->hits, NULL, NULL, NULL);
    forq_client_destroy(&cl);
    return NULL;
}

START_TEST(test_concurrent_writers_and_cached_readers)
{
    enum { WRITERS = 2, READERS = 2 };
    int total = test_quick() ? 20000 : 100000;
    worker_t wk[WRITERS + READERS];
    pthread_t th[WRITERS + READERS];
    atomic_int left = WRITERS;
    long stale = 0, hit = 0;

    e2e_up(&d, &c, 1, NULL);
    for (int i = 0; i < WRITERS + READERS; i++) {
        /* a fifth of the ops are writes */
        int ops = i < WRITERS ? total / 5 / WRITERS : total * 4 / 5 / READERS;
        wk[i] = (worker_t){&d, i, ops, &left, 0, 0};
        pthread_create(&th[i], NULL, i < WRITERS ? writer_main : reader_main, &wk[i]);
    }
    for (int i = 0; i < WRITERS + READERS; i++)
        pthread_join(th[i], NULL);
    for (int i = WRITERS; i < WRITERS + READERS; i++) {
        stale += wk[i].stale;
        hit += wk[i].hits;
    }
    int64_t sum = 0;
    for (int k = 0; k < KEYS; k++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", k);
        sum += truth(c, key);
    }
    fprintf(stderr, "%d ops: %ld cached gets answered locally, %ld stale\n", total, hit, stale);
    ck_assert_int_eq(sum, (int64_t)(total / 5 / WRITERS) * WRITERS); /* no increment lost */
    ck_assert_int_eq(stale, 0);
    ck_assert_int_gt(hit, 0);
    e2e_down(&d, &c);
}
END_TEST

/* forqd down: nothing is served from the copy; back (a new forqd, empty): nothing stale. */
START_TEST(test_nothing_stale_across_a_disconnect)
{
    void *v;
    size_t len;

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(forq_dict_cache(c, "c", 1 << 20), FORQ_OK);
    set_int(c, "k", 1);
    ck_assert_int_eq(get_int(c, "k"), 1);
    ck_assert_int_eq(get_int(c, "k"), 1);
    e2e_kill(&d);
    /* the link is down once the client has seen it go: no answer from the copy */
    for (int i = 0; i < 200; i++) {
        forq_err_t e = forq_dict_get(c, "c", "k", 50, &v, &len, NULL);
        if (e == FORQ_OK)
            free(v);
        if (e != FORQ_OK)
            break;
        usleep(10000);
    }
    ck_assert_int_ne(forq_dict_get(c, "c", "k", 50, &v, &len, NULL), FORQ_OK);
    e2e_restart(&d, 1, NULL); /* memory only: the key is gone */
    for (int i = 0; i < 500; i++) {
        forq_err_t e = forq_dict_get(c, "c", "k", 200, &v, &len, NULL);
        ck_assert_int_ne(e, FORQ_OK); /* never the old 1 */
        if (e == FORQ_ERR_NOT_FOUND)
            break;
        usleep(10000);
    }
    ck_assert_int_eq(get_int(c, "k"), -1);
    set_int(c, "k", 2);
    ck_assert_int_eq(get_int(c, "k"), 2);
    e2e_down(&d, &c);
}
END_TEST

static uint64_t invalidations(forq_client_t *cl)
{
    uint64_t n;
    forq_dict_cache_stats(cl, NULL, NULL, &n, NULL);
    return n;
}

/* The invalidation of a change by another client reaches a reader that makes no call: its I/O
 * thread reads it. (A synchronous get whose answer the I/O thread read itself, while the caller
 * waited for the socket, left nobody reading it: the invalidation waited for the reader's next
 * call - within a few hundred rounds of this loop.) */
START_TEST(test_invalidation_reaches_an_idle_reader)
{
    forq_client_t *w;
    int rounds = test_quick() ? 500 : 2000;

    e2e_up(&d, &c, 1, NULL);
    w = forqd_client(&d);
    ck_assert_int_eq(forq_dict_cache(c, "c", 1 << 20), FORQ_OK);
    set_int(w, "k", 0);
    for (int i = 1; i <= rounds; i++) {
        forq_dict_op_t o;
        forq_future_t *f;
        msgpack_sbuffer sb = val_int(i);
        ck_assert_int_eq(get_int(c, "k"), i - 1); /* a miss: a tracked get */
        uint64_t before = invalidations(c);
        forq_dict_op_init(&o);
        o.op = "set";
        o.name = "c";
        o.key = "k";
        o.value = sb.data;
        o.len = sb.size;
        ck_assert_int_eq(forq_dict_submit(w, &o, &f), FORQ_OK);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        t1 = t0;
        while (invalidations(c) == before && t1.tv_sec - t0.tv_sec < 3) {
            sched_yield();
            clock_gettime(CLOCK_MONOTONIC, &t1);
        }
        ck_assert_msg(invalidations(c) > before, "round %d: no invalidation read in 3 s", i);
        ck_assert_int_eq(forq_future_wait(f, T), FORQ_OK);
        forq_future_destroy(&f);
        msgpack_sbuffer_destroy(&sb);
    }
    forq_client_destroy(&w);
    e2e_down(&d, &c);
}
END_TEST

/* A raw tracked get of key "t<i>" in dict "big", request number i + 1. */
static void raw_tracked_get(void *sock, int i)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char key[16];
    int n = snprintf(key, sizeof(key), "t%d", i);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_str_with_body(&pk, "cmd", 3);
    msgpack_pack_str_with_body(&pk, "dict", 4);
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, "get", 3);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, "big", 3);
    msgpack_pack_str_with_body(&pk, "key", 3);
    msgpack_pack_str_with_body(&pk, key, (size_t)n);
    msgpack_pack_str_with_body(&pk, "req", 3);
    msgpack_pack_uint64(&pk, (uint64_t)i + 1);
    msgpack_pack_str_with_body(&pk, "track", 5);
    msgpack_pack_true(&pk);
    ck_assert_int_eq(zmq_send(sock, sb.data, sb.size, 0), (int)sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* forqd tracks at most 100,000 keys per connection: the read past it is answered, then the
 * connection is told to drop everything (an invalidate without name) and forgotten. */
START_TEST(test_broker_bound_per_connection)
{
    enum { BOUND = 100000 };
    void *ctx = zmq_ctx_new(), *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;

    e2e_up(&d, &c, 1, NULL);
    /* the keys, in two msets */
    for (int half = 0; half < 2; half++) {
        int n = BOUND / 2 + half;
        char **keys = calloc((size_t)n, sizeof(*keys));
        const void **vals = calloc((size_t)n, sizeof(*vals));
        size_t *lens = calloc((size_t)n, sizeof(*lens));
        for (int i = 0; i < n; i++) {
            ck_assert_int_gt(asprintf(&keys[i], "t%d", half * (BOUND / 2) + i), 0);
            vals[i] = "\x01";
            lens[i] = 1;
        }
        ck_assert_int_eq(forq_dict_mset(c, "big", (const char *const *)keys, vals, lens, (size_t)n,
                                        test_ms(30000), NULL),
                         FORQ_OK);
        for (int i = 0; i < n; i++)
            free(keys[i]);
        free(keys);
        free(vals);
        free(lens);
    }
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
    ck_assert_int_eq(zmq_connect(sock, d.endpoint), 0);
    /* BOUND + 1 tracked gets, a window of 1000 in flight; every reply is a dict_reply, and one
     * invalidate without name comes, after the reply to the read past the bound */
    int sent = 0, replies = 0, drop_all = 0, replies_before_drop = -1;
    while (replies < BOUND + 1) {
        while (sent < BOUND + 1 && sent - replies < 1000)
            raw_tracked_get(sock, sent++);
        char buf[4096];
        int n = zmq_recv(sock, buf, sizeof(buf), 0);
        ck_assert_int_gt(n, 0);
        int more = 0;
        size_t ml = sizeof(more);
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
        while (more) {
            char junk[64];
            zmq_recv(sock, junk, sizeof(junk), 0);
            zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
        }
        if (memmem(buf, (size_t)n, "invalidate", 10)) {
            ck_assert_ptr_null(memmem(buf, (size_t)n, "name", 4)); /* everything */
            drop_all++;
            replies_before_drop = replies;
            continue;
        }
        ck_assert_ptr_nonnull(memmem(buf, (size_t)n, "dict_reply", 10));
        replies++;
    }
    /* the last reply may come before or after the invalidate is read here: wait for it */
    for (int i = 0; i < 200 && !drop_all; i++) {
        char buf[4096];
        int n = zmq_recv(sock, buf, sizeof(buf), ZMQ_DONTWAIT);
        if (n > 0 && memmem(buf, (size_t)n, "invalidate", 10)) {
            drop_all++;
            replies_before_drop = replies;
        } else {
            usleep(10000);
        }
    }
    ck_assert_int_eq(drop_all, 1);
    ck_assert_int_eq(replies_before_drop, BOUND + 1); /* after the reply of the read past it */
    ck_assert_int_eq(stat_of(c, "dict_tracked_keys"), 0);
    ck_assert_int_eq(stat_of(c, "dict_tracking_conns"), 0);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    e2e_down(&d, &c);
}
END_TEST

static Suite *dictcache_suite(void)
{
    Suite *s = suite_create("dictcache");
    TCase *tc = tcase_create("cache");

    tcase_set_timeout(tc, test_ms(120));
    tcase_add_test(tc, test_every_change_invalidates);
    tcase_add_test(tc, test_client_cap);
    tcase_add_test(tc, test_invalidation_reaches_an_idle_reader);
    tcase_add_test(tc, test_broker_bound_per_connection);
    tcase_add_test(tc, test_concurrent_writers_and_cached_readers);
    tcase_add_test(tc, test_nothing_stale_across_a_disconnect);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(dictcache_suite());
}
