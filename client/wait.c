/* wait.c - waiting on many futures: the completion queue, forq_wait() and as_completed.
 *
 * A completion queue (wait.h) is a ring of finished futures behind a mutex and a condition
 * variable, fed by listeners (future_listener_t) registered on each future. Nothing polls: a result
 * wakes exactly the owners that wait for its future. forq_wait() is a queue read until its
 * condition holds; an as_completed iterator is a queue read one future at a time; unordered maps
 * (map.c) read one too.
 *
 * Invariants: refs = 1 (the owner, until cq_close) + one per registration that has neither
 * fired nor been taken back. A queued future holds one reference taken by its listener; it
 * passes to whoever pops it, or is dropped by cq_close. Once closed, nothing is queued. */
#define _GNU_SOURCE
#include "wait.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

struct cq {
    pthread_mutex_t mu;    /* guards what follows */
    pthread_cond_t cond;   /* signalled when a future is queued */
    atomic_int refs;       /* see the invariants above */
    bool closed;           /* the owner is gone: queue nothing more */
    forq_future_t **ring;  /* finished futures in completion order, each referenced */
    size_t cap, head, len; /* the ring's size, first slot, futures on it */
};

static atomic_size_t live;

size_t cq_live(void)
{
    return atomic_load(&live);
}

cq_t *cq_new(size_t hint)
{
    cq_t *q = calloc(1, sizeof(*q));

    if (!q)
        return NULL;
    q->cap = hint ? hint : 16;
    if (!(q->ring = calloc(q->cap, sizeof(*q->ring)))) {
        free(q);
        return NULL;
    }
    atomic_init(&q->refs, 1);
    pthread_mutex_init(&q->mu, NULL);
    util_cond_init(&q->cond);
    atomic_fetch_add(&live, 1);
    return q;
}

static void cq_unref(cq_t *q)
{
    if (atomic_fetch_sub(&q->refs, 1) != 1)
        return;
    /* the owner closed it, which emptied it, and nothing is queued after closing */
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cond);
    free(q->ring);
    free(q);
    atomic_fetch_sub(&live, 1);
}

/* Append f (referenced by the caller) to the ring, growing it if full. q->mu held. */
static void push_locked(cq_t *q, forq_future_t *f)
{
    if (q->len == q->cap) {
        forq_future_t **ring = malloc(2 * q->cap * sizeof(*ring));
        if (!ring)
            abort(); /* no memory to keep the exactly-once promise */
        for (size_t i = 0; i < q->len; i++)
            ring[i] = q->ring[(q->head + i) % q->cap];
        free(q->ring);
        q->ring = ring;
        q->cap *= 2;
        q->head = 0;
    }
    q->ring[(q->head + q->len++) % q->cap] = f;
}

/* A registration's fire (any thread, no lock held, f referenced by the firer). The fire owns the
 * registration: whoever wins, the firer or cq_unlisten(), frees it. */
static void fire_cq(future_listener_t *r, forq_future_t *f)
{
    cq_t *q = r->ctx;

    free(r);
    pthread_mutex_lock(&q->mu);
    if (!q->closed) {
        future_ref(f);
        push_locked(q, f);
        pthread_cond_broadcast(&q->cond);
    }
    pthread_mutex_unlock(&q->mu);
    cq_unref(q);
}

bool cq_listen(cq_t *q, forq_future_t *f, future_listener_t **ret_reg)
{
    future_listener_t *r = calloc(1, sizeof(*r));

    if (!r)
        return false;
    r->fire = fire_cq;
    r->ctx = q;
    atomic_fetch_add(&q->refs, 1);
    *ret_reg = r; /* before listening: it may fire (and be freed) at once */
    future_listen(f, r);
    return true;
}

void cq_unlisten(cq_t *q, forq_future_t *f, future_listener_t **reg)
{
    /* a registration that fired is only compared here, never read: its future is done, and a
     * done future holds no registrations */
    if (*reg && future_unlisten(f, *reg)) {
        free(*reg);
        cq_unref(q);
    }
    *reg = NULL;
}

forq_future_t *cq_pop(cq_t *q, int timeout_ms)
{
    struct timespec until;
    forq_future_t *f = NULL;

    if (timeout_ms > 0)
        util_deadline(timeout_ms, &until);
    pthread_mutex_lock(&q->mu);
    while (q->len == 0 && timeout_ms != 0 &&
           util_cond_wait(&q->cond, &q->mu, timeout_ms > 0 ? &until : NULL))
        ;
    if (q->len) {
        f = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
    }
    pthread_mutex_unlock(&q->mu);
    return f;
}

void cq_close(cq_t **qp)
{
    cq_t *q;

    if (!qp || !(q = *qp))
        return;
    *qp = NULL;
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    while (q->len) {
        forq_future_t *f = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        pthread_mutex_unlock(&q->mu); /* releasing a future may take its client's lock */
        future_unref(f);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    cq_unref(q);
}

/* ---- forq_wait ---- */

/* Take back the registrations of futures[0..n) that have not fired, and close q. */
static void unlisten_all(cq_t **q, forq_future_t *const *futures, future_listener_t **regs,
                         size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (futures[i])
            cq_unlisten(*q, futures[i], &regs[i]);
    cq_close(q);
}

forq_err_t forq_wait(forq_future_t *const *futures, size_t n, forq_wait_t mode, int timeout_ms,
                     size_t *ret_done)
{
    uint64_t deadline = timeout_ms > 0 ? util_mono_ms() + (uint64_t)timeout_ms : 0;
    size_t ndone = 0, nerror = 0;
    forq_future_t *f;
    future_listener_t **regs;
    cq_t *q;
    bool met = false;

    if (!futures && n)
        return errors_fail(FORQ_ERR_INVALID, "futures is NULL");
    for (size_t i = 0; i < n; i++)
        if (!futures[i])
            return errors_fail(FORQ_ERR_INVALID, "futures[%zu] is NULL", i);
    regs = calloc(n ? n : 1, sizeof(*regs));
    q = cq_new(n);
    if (!regs || !q) {
        free(regs);
        cq_close(&q);
        return errors_fail(FORQ_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        if (!cq_listen(q, futures[i], &regs[i])) {
            unlisten_all(&q, futures, regs, n);
            free(regs);
            return errors_fail(FORQ_ERR_NOMEM, "out of memory");
        }
    }
    for (;;) {
        met = ndone == n || (mode == FORQ_FIRST_COMPLETED && ndone > 0) ||
              (mode == FORQ_FIRST_EXCEPTION && nerror > 0);
        if (met)
            break;
        int left = timeout_ms;
        if (timeout_ms > 0) {
            uint64_t now = util_mono_ms();
            left = now >= deadline ? 0 : (int)(deadline - now);
        }
        if (!(f = cq_pop(q, left)))
            break;
        ndone++;
        nerror += f->state != FORQ_STATE_OK;
        future_unref(f);
    }
    /* those that finished meanwhile are done too */
    while ((f = cq_pop(q, 0))) {
        ndone++;
        future_unref(f);
    }
    if (ret_done)
        *ret_done = ndone;
    unlisten_all(&q, futures, regs, n);
    free(regs);
    return met ? FORQ_OK
               : errors_fail(FORQ_ERR_TIMEOUT, "the wait condition was not met in %d ms",
                             timeout_ms);
}

/* ---- as_completed ---- */

struct forq_as_completed {
    cq_t *q;                  /* the futures as they finish */
    forq_future_t **futures;  /* referenced until returned (then NULL) or the iterator is freed */
    future_listener_t **regs; /* regs[i]: the listener on futures[i] */
    size_t n, returned;
};

forq_err_t forq_as_completed_new(forq_future_t *const *futures, size_t n, forq_as_completed_t **ret)
{
    forq_as_completed_t *it;

    if (!ret || (!futures && n))
        return errors_fail(FORQ_ERR_INVALID, "futures and ret are required");
    for (size_t i = 0; i < n; i++)
        if (!futures[i])
            return errors_fail(FORQ_ERR_INVALID, "futures[%zu] is NULL", i);
    it = calloc(1, sizeof(*it));
    if (!it || !(it->futures = calloc(n ? n : 1, sizeof(*it->futures))) ||
        !(it->regs = calloc(n ? n : 1, sizeof(*it->regs))) || !(it->q = cq_new(n))) {
        if (it) {
            free(it->futures);
            free(it->regs);
            free(it);
        }
        return errors_fail(FORQ_ERR_NOMEM, "out of memory");
    }
    it->n = n;
    for (size_t i = 0; i < n; i++) {
        it->futures[i] = futures[i];
        future_ref(futures[i]);
    }
    for (size_t i = 0; i < n; i++) {
        if (!cq_listen(it->q, it->futures[i], &it->regs[i])) {
            forq_as_completed_destroy(&it);
            return errors_fail(FORQ_ERR_NOMEM, "out of memory");
        }
    }
    *ret = it;
    return FORQ_OK;
}

forq_err_t forq_as_completed_next(forq_as_completed_t *it, int timeout_ms, forq_future_t **ret)
{
    forq_future_t *f;

    if (!it || !ret)
        return errors_fail(FORQ_ERR_INVALID, "iterator and ret are required");
    if (it->returned == it->n)
        return errors_fail(FORQ_ERR_EXHAUSTED, "all %zu futures were returned", it->n);
    if (!(f = cq_pop(it->q, timeout_ms)))
        return errors_fail(FORQ_ERR_TIMEOUT, "no future finished within %d ms", timeout_ms);
    /* the caller holds its own reference; drop the queue's and the iterator's */
    for (size_t i = 0; i < it->n; i++) {
        if (it->futures[i] == f) {
            it->futures[i] = NULL;
            it->regs[i] = NULL; /* fired, and freed by its firer */
            future_unref(f);
            break;
        }
    }
    future_unref(f);
    it->returned++;
    *ret = f;
    return FORQ_OK;
}

void forq_as_completed_destroy(forq_as_completed_t **itp)
{
    forq_as_completed_t *it;

    if (!itp || !(it = *itp))
        return;
    *itp = NULL;
    unlisten_all(&it->q, it->futures, it->regs, it->n);
    for (size_t i = 0; i < it->n; i++)
        if (it->futures[i])
            future_unref(it->futures[i]);
    free(it->futures);
    free(it->regs);
    free(it);
}
