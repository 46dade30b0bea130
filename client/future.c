/* future.c - futures: results, progress, done callbacks, forq_wait and as_completed.
 *
 * Everything that waits for futures registers a listener (reg_t) on each: a done callback, a
 * forq_wait() call, an as_completed iterator, a map. Resolving a future takes its listener list
 * under its lock and fires each listener after unlocking, holding a reference so that a
 * callback may destroy the future. Nothing polls: a result wakes exactly the waiters of its
 * future. */
#define _GNU_SOURCE
#include "client_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

forq_future_t *future_new(void)
{
    forq_future_t *f = calloc(1, sizeof(*f));
    pthread_condattr_t ca;

    if (!f)
        return NULL;
    atomic_init(&f->refs, 1);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&f->mu, NULL);
    f->exit_code = -1;
    f->priority = -1;
    return f;
}

static void future_free(forq_future_t *f)
{
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    free(f->args);
    free(f->p_text);
    free(f->result);
    free(f->etype);
    free(f->detail);
    free(f->code);
    free(f->outcome);
    free(f->task_name);
    free(f->cursor);
    free(f);
}

void future_ref(forq_future_t *f)
{
    atomic_fetch_add(&f->refs, 1);
}

void future_unref(forq_future_t *f)
{
    forq_client_t *c;

    pthread_mutex_lock(&f->mu);
    c = f->client;
    pthread_mutex_unlock(&f->mu);
    /* pending: the client decides under its lock whether this was the last reference */
    if (c) {
        int r = client_drop_pending(c, f);
        if (r >= 0) {
            if (r == 1)
                future_free(f);
            return;
        }
    }
    if (atomic_fetch_sub(&f->refs, 1) == 1)
        future_free(f);
}

static char *dup_str(wire_str_t s)
{
    char *p;
    if (!s.ptr)
        return NULL;
    p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

/* Mark done and fire the listeners. f->mu held on entry, released on return. */
static void finish(forq_future_t *f)
{
    reg_t *r = f->regs;

    f->done = true;
    f->regs = NULL;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
    future_ref(f);
    while (r) {
        reg_t *next = r->next;
        r->fire(r, f);
        r = next;
    }
    future_unref(f);
}

void future_resolve(forq_future_t *f, const wire_hdr_t *h, void *payload, size_t plen)
{
    pthread_mutex_lock(&f->mu);
    if (f->done) {
        pthread_mutex_unlock(&f->mu);
        free(payload);
        return;
    }
    f->reply_cmd = h->cmd;
    f->state = h->cmd == WIRE_ERROR        ? FORQ_STATE_REJECTED
               : h->cmd == WIRE_DICT_REPLY ? FORQ_STATE_OK
                                           : (forq_state_t)h->state;
    f->code = dup_str(h->code);
    f->etype = dup_str(h->etype);
    f->detail = dup_str(h->msg);
    f->outcome = dup_str(h->outcome);
    f->task_name = dup_str(h->task);
    f->signal = (int)h->signal;
    f->exit_code = h->has_exit ? (int)h->exit_code : -1;
    f->pid = (int)h->pid;
    f->priority = h->has_priority ? (int)h->priority : -1;
    f->attempts = h->attempts;
    f->found = h->found;
    f->more = h->more;
    f->ver = h->ver;
    f->count = h->count;
    f->cursor = dup_str(h->key);
    f->result = payload;
    f->result_len = plen;
    finish(f);
}

void future_resolve_local(forq_future_t *f, forq_state_t st, const char *code, const char *detail)
{
    pthread_mutex_lock(&f->mu);
    if (f->done) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    f->state = st;
    f->reply_cmd = code ? WIRE_ERROR : WIRE_CMD_NONE;
    f->code = code ? strdup(code) : NULL;
    f->detail = strdup(detail);
    finish(f);
}

void future_progress(forq_future_t *f, const wire_hdr_t *h)
{
    forq_progress_fn fn;
    void *ud;
    char *text;

    pthread_mutex_lock(&f->mu);
    f->has_progress = true;
    f->p_done = h->done;
    f->p_total = h->total;
    free(f->p_text);
    f->p_text = dup_str(h->msg);
    fn = f->on_progress;
    ud = f->on_progress_ud;
    text = f->p_text ? strdup(f->p_text) : NULL;
    pthread_mutex_unlock(&f->mu);
    if (fn)
        fn(f, h->done, h->total, text ? text : "", ud);
    free(text);
}

void future_listen(forq_future_t *f, reg_t *r)
{
    pthread_mutex_lock(&f->mu);
    if (!f->done) {
        reg_t **p = &f->regs;
        while (*p)
            p = &(*p)->next; /* fired in the order added */
        r->next = NULL;
        *p = r;
        pthread_mutex_unlock(&f->mu);
        if (f->conn)
            client_want_io(f->conn); /* nobody may be reading the socket now */
        return;
    }
    pthread_mutex_unlock(&f->mu);
    future_ref(f);
    r->fire(r, f);
    future_unref(f);
}

bool future_unlisten(forq_future_t *f, reg_t *r)
{
    bool found = false;

    pthread_mutex_lock(&f->mu);
    for (reg_t **p = &f->regs; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return found;
}

static void deadline_of(int timeout_ms, struct timespec *until)
{
    clock_gettime(CLOCK_MONOTONIC, until);
    until->tv_sec += timeout_ms / 1000;
    until->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until->tv_nsec >= 1000000000L) {
        until->tv_sec++;
        until->tv_nsec -= 1000000000L;
    }
}

/* Wait on cond (its mutex held) until *flag or the deadline; timeout_ms < 0: forever. */
static bool wait_flag(pthread_cond_t *cond, pthread_mutex_t *mu, const bool *flag, int timeout_ms)
{
    struct timespec until;

    if (*flag || timeout_ms == 0)
        return *flag;
    if (timeout_ms > 0)
        deadline_of(timeout_ms, &until);
    while (!*flag) {
        if (timeout_ms < 0)
            pthread_cond_wait(cond, mu);
        else if (pthread_cond_timedwait(cond, mu, &until) == ETIMEDOUT)
            break;
    }
    return *flag;
}

bool future_wait_done(forq_future_t *f, int timeout_ms)
{
    bool done;
    pthread_mutex_lock(&f->mu);
    done = wait_flag(&f->cond, &f->mu, &f->done, timeout_ms);
    pthread_mutex_unlock(&f->mu);
    return done;
}

/* ---- public accessors ---- */

const char *forq_future_id(const forq_future_t *f)
{
    return f ? f->key : NULL;
}

forq_err_t forq_future_wait(forq_future_t *f, int timeout_ms)
{
    if (!f)
        return client_fail(FORQ_ERR_INVALID, "future is NULL");
    /* not done means its client is alive (destroying a client resolves its futures) */
    return (future_wait_done(f, 0) || (f->conn ? client_wait(f->conn, f, timeout_ms)
                                                : future_wait_done(f, timeout_ms)))
               ? FORQ_OK
               : client_fail(FORQ_ERR_TIMEOUT, "job %s is not done after %d ms", f->key,
                             timeout_ms);
}

bool forq_future_done(forq_future_t *f)
{
    return f && future_wait_done(f, 0);
}

forq_state_t forq_future_state(forq_future_t *f)
{
    return forq_future_done(f) ? f->state : FORQ_STATE_PENDING;
}

static forq_err_t err_of(forq_state_t st)
{
    switch (st) {
    case FORQ_STATE_OK: return FORQ_OK;
    case FORQ_STATE_ERROR: return FORQ_ERR_TASK;
    case FORQ_STATE_CANCELLED: return FORQ_ERR_CANCELLED;
    case FORQ_STATE_TIMEOUT: return FORQ_ERR_JOB_TIMEOUT;
    case FORQ_STATE_CRASHED: return FORQ_ERR_CRASHED;
    case FORQ_STATE_REJECTED: return FORQ_ERR_REJECTED;
    case FORQ_STATE_UNKNOWN: return FORQ_ERR_NOT_FOUND;
    default: return FORQ_ERR_LOST;
    }
}

forq_err_t forq_future_result(forq_future_t *f, const void **ret_data, size_t *ret_len)
{
    forq_err_t e;

    if (!f)
        return client_fail(FORQ_ERR_INVALID, "future is NULL");
    if (!forq_future_done(f))
        return client_fail(FORQ_ERR_PENDING, "job %s has no result yet", f->key);
    e = err_of(f->state);
    if (e == FORQ_OK) {
        if (ret_data)
            *ret_data = f->result;
        if (ret_len)
            *ret_len = f->result_len;
        return FORQ_OK;
    }
    if (e == FORQ_ERR_TASK)
        return client_fail(e, "%s: %s", f->etype ? f->etype : "Error", f->detail ? f->detail : "");
    return client_fail(e, "%s", f->detail ? f->detail : "");
}

const char *forq_future_error_type(forq_future_t *f)
{
    return forq_future_done(f) ? f->etype : NULL;
}

const char *forq_future_detail(forq_future_t *f)
{
    return forq_future_done(f) && f->detail ? f->detail : "";
}

const char *forq_future_code(forq_future_t *f)
{
    return forq_future_done(f) ? f->code : NULL;
}

int forq_future_signal(forq_future_t *f)
{
    return forq_future_done(f) ? f->signal : 0;
}

int forq_future_exit_code(forq_future_t *f)
{
    return forq_future_done(f) ? f->exit_code : -1;
}

unsigned forq_future_attempts(forq_future_t *f)
{
    return forq_future_done(f) ? f->attempts : 0;
}

bool forq_future_progress(forq_future_t *f, uint64_t *ret_done, uint64_t *ret_total,
                          char **ret_text)
{
    bool has;

    if (!f)
        return false;
    pthread_mutex_lock(&f->mu);
    has = f->has_progress;
    if (has) {
        if (ret_done)
            *ret_done = f->p_done;
        if (ret_total)
            *ret_total = f->p_total;
        if (ret_text)
            *ret_text = strdup(f->p_text ? f->p_text : "");
    }
    pthread_mutex_unlock(&f->mu);
    return has;
}

forq_err_t forq_future_on_progress(forq_future_t *f, forq_progress_fn fn, void *userdata)
{
    if (!f)
        return client_fail(FORQ_ERR_INVALID, "future is NULL");
    pthread_mutex_lock(&f->mu);
    f->on_progress = fn;
    f->on_progress_ud = userdata;
    pthread_mutex_unlock(&f->mu);
    return FORQ_OK;
}

forq_err_t forq_future_cancel(forq_future_t *f, int timeout_ms, forq_cancel_t *ret_outcome)
{
    forq_client_t *c;

    if (!f)
        return client_fail(FORQ_ERR_INVALID, "future is NULL");
    pthread_mutex_lock(&f->mu);
    c = f->done ? NULL : f->client;
    pthread_mutex_unlock(&f->mu);
    if (!c) {
        /* already answered: there is nothing left to cancel */
        if (ret_outcome)
            *ret_outcome = FORQ_CANCEL_FINISHED;
        return FORQ_OK;
    }
    return forq_client_cancel(c, f->key, timeout_ms, ret_outcome);
}

void forq_future_destroy(forq_future_t **fp)
{
    if (fp && *fp) {
        forq_future_t *f = *fp;
        *fp = NULL;
        future_unref(f);
    }
}

/* ---- done callbacks ---- */

static void fire_callback(reg_t *r, forq_future_t *f)
{
    forq_done_fn fn = (forq_done_fn)(uintptr_t)r->ctx;
    void *ud = r->ctx2;
    free(r);
    fn(f, ud);
}

forq_err_t forq_future_add_done_callback(forq_future_t *f, forq_done_fn fn, void *userdata)
{
    reg_t *r;

    if (!f || !fn)
        return client_fail(FORQ_ERR_INVALID, "future and callback are required");
    if (!(r = calloc(1, sizeof(*r))))
        return client_fail(FORQ_ERR_NOMEM, "out of memory");
    r->fire = fire_callback;
    r->ctx = (void *)(uintptr_t)fn;
    r->ctx2 = userdata;
    future_listen(f, r);
    return FORQ_OK;
}

/* ---- waiting on many: a sink collects futures as they finish ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    atomic_int refs;          /* the owner, plus one per registration that may still fire */
    forq_future_t **ready;    /* finished futures in completion order (a ring) */
    size_t cap, head, len;
    size_t ndone, nerror;     /* counts for forq_wait */
    bool changed;             /* something arrived since the waiter last looked */
} sink_t;

static sink_t *sink_new(size_t cap)
{
    sink_t *s = calloc(1, sizeof(*s));
    pthread_condattr_t ca;
    if (!s || !(s->ready = calloc(cap ? cap : 1, sizeof(*s->ready)))) {
        free(s);
        return NULL;
    }
    s->cap = cap ? cap : 1;
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    return s;
}

static void sink_unref(sink_t *s)
{
    if (atomic_fetch_sub(&s->refs, 1) == 1) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cond);
        free(s->ready);
        free(s);
    }
}

/* A registration's fire: record f in the sink (with a reference), wake the waiter. The fire owns
 * the registration: whoever wins, the firer or future_unlisten()'s caller, frees it. */
static void fire_sink(reg_t *r, forq_future_t *f)
{
    sink_t *s = r->ctx;
    free(r);
    pthread_mutex_lock(&s->mu);
    if (s->len < s->cap) {
        future_ref(f);
        s->ready[(s->head + s->len++) % s->cap] = f;
    }
    s->ndone++;
    s->nerror += f->state != FORQ_STATE_OK;
    s->changed = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    sink_unref(s);
}

/* Register s on each future (regs[i] for futures[i]). Returns false on out-of-memory, with
 * the registrations made so far left for sink_close(). */
static bool sink_listen(sink_t *s, forq_future_t *const *futures, reg_t **regs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!(regs[i] = calloc(1, sizeof(reg_t))))
            return false;
        regs[i]->fire = fire_sink;
        regs[i]->ctx = s;
        atomic_fetch_add(&s->refs, 1);
        future_listen(futures[i], regs[i]);
    }
    return true;
}

/* Remove what has not fired (a fired registration was freed by its fire); drop the references
 * the sink holds on ready futures; release the owner's reference. */
static void sink_close(sink_t *s, forq_future_t *const *futures, reg_t **regs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (futures[i] && regs[i] && future_unlisten(futures[i], regs[i])) {
            free(regs[i]);
            sink_unref(s);
        }
        regs[i] = NULL;
    }
    pthread_mutex_lock(&s->mu);
    while (s->len) {
        future_unref(s->ready[s->head]);
        s->head = (s->head + 1) % s->cap;
        s->len--;
    }
    pthread_mutex_unlock(&s->mu);
    sink_unref(s);
}

forq_err_t forq_wait(forq_future_t *const *futures, size_t n, forq_wait_t mode, int timeout_ms,
                     size_t *ret_done)
{
    struct timespec until;
    reg_t **regs;
    sink_t *s;
    bool met = false;

    if (!futures && n)
        return client_fail(FORQ_ERR_INVALID, "futures is NULL");
    for (size_t i = 0; i < n; i++)
        if (!futures[i])
            return client_fail(FORQ_ERR_INVALID, "futures[%zu] is NULL", i);
    regs = calloc(n ? n : 1, sizeof(*regs));
    s = sink_new(n);
    if (!regs || !s) {
        free(regs);
        if (s)
            sink_unref(s);
        return client_fail(FORQ_ERR_NOMEM, "out of memory");
    }
    if (!sink_listen(s, futures, regs, n)) {
        sink_close(s, futures, regs, n);
        free(regs);
        return client_fail(FORQ_ERR_NOMEM, "out of memory");
    }
    if (timeout_ms > 0)
        deadline_of(timeout_ms, &until);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        met = s->ndone == n || (mode == FORQ_FIRST_COMPLETED && s->ndone > 0) ||
              (mode == FORQ_FIRST_EXCEPTION && s->nerror > 0);
        if (met || timeout_ms == 0)
            break;
        if (timeout_ms < 0)
            pthread_cond_wait(&s->cond, &s->mu);
        else if (pthread_cond_timedwait(&s->cond, &s->mu, &until) == ETIMEDOUT)
            break;
    }
    if (ret_done)
        *ret_done = s->ndone;
    pthread_mutex_unlock(&s->mu);
    sink_close(s, futures, regs, n);
    free(regs);
    return met ? FORQ_OK : client_fail(FORQ_ERR_TIMEOUT, "the wait condition was not met in %d ms",
                                       timeout_ms);
}

struct forq_as_completed {
    sink_t *sink;
    forq_future_t **futures; /* referenced until returned or the iterator is destroyed */
    reg_t **regs;
    size_t n, returned;
};

forq_err_t forq_as_completed_new(forq_future_t *const *futures, size_t n,
                                 forq_as_completed_t **ret)
{
    forq_as_completed_t *it;

    if (!ret || (!futures && n))
        return client_fail(FORQ_ERR_INVALID, "futures and ret are required");
    for (size_t i = 0; i < n; i++)
        if (!futures[i])
            return client_fail(FORQ_ERR_INVALID, "futures[%zu] is NULL", i);
    it = calloc(1, sizeof(*it));
    if (!it || !(it->futures = calloc(n ? n : 1, sizeof(*it->futures))) ||
        !(it->regs = calloc(n ? n : 1, sizeof(*it->regs))) || !(it->sink = sink_new(n))) {
        if (it) {
            free(it->futures);
            free(it->regs);
            free(it);
        }
        return client_fail(FORQ_ERR_NOMEM, "out of memory");
    }
    it->n = n;
    for (size_t i = 0; i < n; i++) {
        it->futures[i] = futures[i];
        future_ref(futures[i]);
    }
    if (!sink_listen(it->sink, it->futures, it->regs, n)) {
        forq_as_completed_destroy(&it);
        return client_fail(FORQ_ERR_NOMEM, "out of memory");
    }
    *ret = it;
    return FORQ_OK;
}

forq_err_t forq_as_completed_next(forq_as_completed_t *it, int timeout_ms, forq_future_t **ret)
{
    sink_t *s;
    struct timespec until;
    forq_future_t *f = NULL;

    if (!it || !ret)
        return client_fail(FORQ_ERR_INVALID, "iterator and ret are required");
    if (it->returned == it->n)
        return client_fail(FORQ_ERR_EXHAUSTED, "all %zu futures were returned", it->n);
    s = it->sink;
    if (timeout_ms > 0)
        deadline_of(timeout_ms, &until);
    pthread_mutex_lock(&s->mu);
    while (s->len == 0 && timeout_ms != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&s->cond, &s->mu);
        else if (pthread_cond_timedwait(&s->cond, &s->mu, &until) == ETIMEDOUT)
            break;
    }
    if (s->len) {
        f = s->ready[s->head];
        s->head = (s->head + 1) % s->cap;
        s->len--;
    }
    pthread_mutex_unlock(&s->mu);
    if (!f)
        return client_fail(FORQ_ERR_TIMEOUT, "no future finished within %d ms", timeout_ms);
    /* the caller holds its own reference; drop the sink's and the iterator's */
    for (size_t i = 0; i < it->n; i++) {
        if (it->futures[i] == f) {
            it->futures[i] = NULL;
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
    sink_close(it->sink, it->futures, it->regs, it->n);
    for (size_t i = 0; i < it->n; i++)
        if (it->futures[i])
            future_unref(it->futures[i]);
    free(it->futures);
    free(it->regs);
    free(it);
}
