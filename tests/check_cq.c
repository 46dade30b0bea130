/* check_cq.c - libforq's completion queue (client/wait.c) on its own, with futures resolved by
 * hand (no forqd, no client): the order futures come out in, wake-ups, closing while listeners
 * are pending, and that the queue and the futures are released exactly when their last
 * reference goes. forq_wait() and as_completed, both built on the queue, are checked the same
 * way. */
#define _GNU_SOURCE
#include "testutil.h"

#include "wait.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

static forq_future_t *fut(void)
{
    forq_future_t *f = future_new();
    ck_assert_ptr_nonnull(f);
    return f;
}

static void resolve(forq_future_t *f, forq_state_t st)
{
    future_resolve_local(f, st, NULL, "resolved by the test");
}

static int refs(forq_future_t *f)
{
    return atomic_load(&f->refs);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Futures come out in the order they finished, not the order they were listened on; the ring
 * grows past its first size. */
START_TEST(test_completion_order)
{
    enum { N = 7 };
    static const int order[N] = {3, 0, 6, 4, 1, 5, 2};
    forq_future_t *f[N];
    future_listener_t *r[N];
    cq_t *q = cq_new(2);

    ck_assert_ptr_nonnull(q);
    for (int i = 0; i < N; i++) {
        f[i] = fut();
        ck_assert(cq_listen(q, f[i], &r[i]));
    }
    ck_assert_ptr_null(cq_pop(q, 0));
    for (int i = 0; i < N; i++)
        resolve(f[order[i]], FORQ_STATE_OK);
    for (int i = 0; i < N; i++) {
        forq_future_t *g = cq_pop(q, 0);
        ck_assert_ptr_eq(g, f[order[i]]);
        ck_assert_int_eq(refs(g), 2); /* the caller's and the popped one */
        future_unref(g);
        r[order[i]] = NULL; /* fired */
    }
    ck_assert_ptr_null(cq_pop(q, 0));
    cq_close(&q);
    ck_assert_ptr_null(q);
    ck_assert_uint_eq(cq_live(), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(refs(f[i]), 1);
        future_unref(f[i]);
    }
}
END_TEST

/* A future done before it is listened on is queued at once, in the listening thread. */
START_TEST(test_done_before_listen)
{
    forq_future_t *f = fut();
    future_listener_t *r;
    cq_t *q = cq_new(1);

    resolve(f, FORQ_STATE_ERROR);
    ck_assert(cq_listen(q, f, &r));
    ck_assert_ptr_eq(cq_pop(q, 0), f);
    future_unref(f);
    cq_close(&q);
    ck_assert_uint_eq(cq_live(), 0);
    ck_assert_int_eq(refs(f), 1);
    future_unref(f);
}
END_TEST

typedef struct {
    forq_future_t **f;
    size_t n;
    int delay_ms;
} resolver_t;

static void *resolver(void *arg)
{
    resolver_t *rs = arg;
    if (rs->delay_ms)
        usleep((useconds_t)rs->delay_ms * 1000);
    for (size_t i = 0; i < rs->n; i++)
        resolve(rs->f[i], FORQ_STATE_OK);
    return NULL;
}

/* A pop waits until another thread resolves a future, and a timed pop gives up in time. */
START_TEST(test_wakeup_and_timeout)
{
    forq_future_t *f = fut();
    resolver_t rs = {&f, 1, 100};
    pthread_t th;
    future_listener_t *r;
    cq_t *q = cq_new(1);
    uint64_t t0 = now_ms();

    ck_assert_ptr_null(cq_pop(q, 60));
    ck_assert_uint_ge(now_ms() - t0, 60);
    ck_assert(cq_listen(q, f, &r));
    t0 = now_ms();
    ck_assert_int_eq(pthread_create(&th, NULL, resolver, &rs), 0);
    ck_assert_ptr_eq(cq_pop(q, -1), f); /* blocks until the resolver fires */
    ck_assert_uint_ge(now_ms() - t0, 90);
    pthread_join(th, NULL);
    future_unref(f);
    cq_close(&q);
    ck_assert_uint_eq(cq_live(), 0);
    future_unref(f);
}
END_TEST

/* Closing with listeners pending: what was queued is released at once, later fires only drop
 * their reference, and the last one frees the queue. */
START_TEST(test_close_with_listeners_pending)
{
    forq_future_t *f[3] = {fut(), fut(), fut()};
    future_listener_t *r[3];
    cq_t *q = cq_new(3);

    for (int i = 0; i < 3; i++)
        ck_assert(cq_listen(q, f[i], &r[i]));
    resolve(f[0], FORQ_STATE_OK);
    ck_assert_int_eq(refs(f[0]), 2); /* the queue holds it */
    cq_close(&q);
    ck_assert_int_eq(refs(f[0]), 1); /* closing released it */
    ck_assert_uint_eq(cq_live(), 1); /* two listeners still hold the queue */
    resolve(f[1], FORQ_STATE_OK);
    ck_assert_int_eq(refs(f[1]), 1); /* not queued: the queue is closed */
    ck_assert_uint_eq(cq_live(), 1);
    resolve(f[2], FORQ_STATE_CRASHED);
    ck_assert_uint_eq(cq_live(), 0); /* the last listener freed it */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(refs(f[i]), 1);
        future_unref(f[i]);
    }
}
END_TEST

/* A listener taken back never fires; one that fired is only cleared. */
START_TEST(test_unlisten)
{
    forq_future_t *a = fut(), *b = fut();
    future_listener_t *ra, *rb;
    cq_t *q = cq_new(2);

    ck_assert(cq_listen(q, a, &ra));
    ck_assert(cq_listen(q, b, &rb));
    cq_unlisten(q, a, &ra);
    ck_assert_ptr_null(ra);
    resolve(a, FORQ_STATE_OK);
    ck_assert_ptr_null(cq_pop(q, 0));
    resolve(b, FORQ_STATE_OK);
    ck_assert_ptr_eq(cq_pop(q, 0), b);
    future_unref(b);
    cq_unlisten(q, b, &rb); /* fired: nothing to take back */
    ck_assert_ptr_null(rb);
    cq_close(&q);
    ck_assert_uint_eq(cq_live(), 0);
    ck_assert_int_eq(refs(a), 1);
    ck_assert_int_eq(refs(b), 1);
    future_unref(a);
    future_unref(b);
}
END_TEST

/* The I/O thread's case: listeners fire from another thread while the owner closes. Whatever
 * the interleaving, nothing is touched after it is freed (ASan, valgrind) and every reference
 * comes back. */
START_TEST(test_close_races_firing)
{
    enum { N = 64, ROUNDS = 200 };

    for (int round = 0; round < (test_quick() ? 20 : ROUNDS); round++) {
        forq_future_t *f[N];
        future_listener_t *r[N];
        resolver_t rs = {f, N, 0};
        pthread_t th;
        cq_t *q = cq_new(4);

        for (int i = 0; i < N; i++) {
            f[i] = fut();
            ck_assert(cq_listen(q, f[i], &r[i]));
        }
        ck_assert_int_eq(pthread_create(&th, NULL, resolver, &rs), 0);
        for (int i = 0; i < round % 5; i++) {
            forq_future_t *g = cq_pop(q, -1);
            for (int k = 0; k < N; k++)
                if (f[k] == g)
                    r[k] = NULL;
            future_unref(g);
        }
        for (int i = 0; i < N; i += 2)
            cq_unlisten(q, f[i], &r[i]);
        cq_close(&q);
        pthread_join(th, NULL);
        ck_assert_uint_eq(cq_live(), 0);
        for (int i = 0; i < N; i++) {
            ck_assert_int_eq(refs(f[i]), 1);
            future_unref(f[i]);
        }
    }
}
END_TEST

/* forq_wait over the queue: each mode, the count of done futures, and a timeout. */
START_TEST(test_forq_wait)
{
    forq_future_t *f[3] = {fut(), fut(), fut()};
    resolver_t rs = {&f[1], 1, 50};
    pthread_t th;
    size_t done = 99;

    ck_assert_int_eq(forq_wait(f, 3, FORQ_FIRST_COMPLETED, 30, &done), FORQ_ERR_TIMEOUT);
    ck_assert_uint_eq(done, 0);
    ck_assert_int_eq(pthread_create(&th, NULL, resolver, &rs), 0);
    ck_assert_int_eq(forq_wait(f, 3, FORQ_FIRST_COMPLETED, -1, &done), FORQ_OK);
    pthread_join(th, NULL);
    ck_assert_uint_eq(done, 1);
    ck_assert_int_eq(forq_wait(f, 3, FORQ_FIRST_EXCEPTION, 0, &done), FORQ_ERR_TIMEOUT);
    resolve(f[2], FORQ_STATE_CANCELLED);
    ck_assert_int_eq(forq_wait(f, 3, FORQ_FIRST_EXCEPTION, 0, &done), FORQ_OK);
    ck_assert_uint_eq(done, 2);
    ck_assert_int_eq(forq_wait(f, 3, FORQ_ALL_COMPLETED, 0, &done), FORQ_ERR_TIMEOUT);
    resolve(f[0], FORQ_STATE_OK);
    ck_assert_int_eq(forq_wait(f, 3, FORQ_ALL_COMPLETED, 0, &done), FORQ_OK);
    ck_assert_uint_eq(done, 3);
    ck_assert_uint_eq(cq_live(), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(refs(f[i]), 1);
        future_unref(f[i]);
    }
}
END_TEST

/* as_completed over the queue: completion order, its own references, and destroying it with
 * futures still pending. */
START_TEST(test_as_completed)
{
    forq_future_t *f[3] = {fut(), fut(), fut()}, *g;
    forq_as_completed_t *it;

    ck_assert_int_eq(forq_as_completed_new(f, 3, &it), FORQ_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(refs(f[i]), 2);
    ck_assert_int_eq(forq_as_completed_next(it, 0, &g), FORQ_ERR_TIMEOUT);
    resolve(f[2], FORQ_STATE_OK);
    resolve(f[0], FORQ_STATE_ERROR);
    ck_assert_int_eq(forq_as_completed_next(it, 0, &g), FORQ_OK);
    ck_assert_ptr_eq(g, f[2]);
    ck_assert_int_eq(refs(f[2]), 1);
    ck_assert_int_eq(forq_as_completed_next(it, 0, &g), FORQ_OK);
    ck_assert_ptr_eq(g, f[0]);
    forq_as_completed_destroy(&it);
    ck_assert_ptr_null(it);
    ck_assert_uint_eq(cq_live(), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(refs(f[i]), 1);
    resolve(f[1], FORQ_STATE_OK); /* nobody listens any more */
    for (int i = 0; i < 3; i++)
        future_unref(f[i]);
}
END_TEST

static Suite *cq_suite(void)
{
    Suite *s = suite_create("cq");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, test_ms(60));
    tcase_add_test(tc, test_completion_order);
    tcase_add_test(tc, test_done_before_listen);
    tcase_add_test(tc, test_wakeup_and_timeout);
    tcase_add_test(tc, test_close_with_listeners_pending);
    tcase_add_test(tc, test_unlisten);
    tcase_add_test(tc, test_close_races_firing);
    tcase_add_test(tc, test_forq_wait);
    tcase_add_test(tc, test_as_completed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(cq_suite());
}
