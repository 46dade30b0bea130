/* future.c - futures: a job's description, its result, progress and done callbacks.
 *
 * A future is the one record of a job (or of an internal request) on the client's side: what
 * was submitted (task, options with their own copies of the option strings, the args when it
 * may be submitted again), and once done, how it ended. Everything that waits for futures
 * registers a listener (future_listener_t) on each: a done callback, a completion queue (wait.c:
 * forq_wait, as_completed, unordered maps). Resolving a future takes its listener list under its
 * lock and fires each listener after unlocking, holding a reference so that a callback may destroy
 * the future. Nothing polls: a result wakes exactly the waiters of its future.
 *
 * Invariants: `done` goes from false to true once, under `mu`; after that the result fields
 * never change and are read without the lock. A done future holds no listeners. */
#define _GNU_SOURCE
#include "client_int.h"

#include "conn.h"
#include "health.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

forq_future_t *future_new(void)
{
    forq_future_t *f = calloc(1, sizeof(*f));

    if (!f)
        return NULL;
    atomic_init(&f->refs, 1);
    util_cond_init(&f->cond);
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
    free(f->store_dict);
    free(f->store_key);
    free(f->tags);
    free(f->p_text);
    free(f->result);
    free(f->etype);
    free(f->detail);
    free(f->code);
    free(f->outcome);
    free(f->task_name);
    free(f->owner);
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
        int r = conn_drop_pending(c, f);
        if (r >= 0) {
            if (r == 1)
                future_free(f);
            return;
        }
    }
    if (atomic_fetch_sub(&f->refs, 1) == 1)
        future_free(f);
}

forq_err_t future_set_job(forq_future_t *f, const char *task, const forq_submit_opts_t *opts,
                          bool chunk)
{
    snprintf(f->task, sizeof(f->task), "%s", task);
    f->opts = *opts;
    f->opts.id = NULL; /* the key is the id */
    f->chunk = chunk;
    /* copies: the job may be submitted again long after the caller's strings are gone */
    f->opts.store_dict = f->store_dict = opts->store_dict ? strdup(opts->store_dict) : NULL;
    f->opts.store_key = f->store_key = opts->store_key ? strdup(opts->store_key) : NULL;
    f->opts.tags = f->tags = opts->tags ? strdup(opts->tags) : NULL;
    if ((opts->store_dict && !f->store_dict) || (opts->store_key && !f->store_key) ||
        (opts->tags && !f->tags))
        return errors_fail(FORQ_ERR_NOMEM, "out of memory");
    return FORQ_OK;
}

void future_submit_hdr(const forq_future_t *f, wire_hdr_t *ret_h)
{
    const forq_submit_opts_t *o = &f->opts;

    *ret_h =
        (wire_hdr_t){.cmd = WIRE_SUBMIT,
                     .id = wire_str(f->key),
                     .task = wire_str(f->task),
                     .timeout_ms = o->timeout > 0 ? (uint64_t)(o->timeout * 1000.0 + 0.999) : 0,
                     .deadline_ms = o->deadline > 0 ? (uint64_t)(o->deadline * 1000.0 + 0.999) : 0,
                     .priority = (uint32_t)o->priority,
                     .has_priority = true,
                     .retries = o->retries,
                     .max_result = o->max_result,
                     .as_bytes = o->max_memory,
                     .cpu_s = o->max_cpu_seconds,
                     .chunk = f->chunk,
                     .name = wire_str(o->store_dict),
                     .key = wire_str(o->store_key),
                     .tags = wire_str(o->tags)};
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
    future_listener_t *r = f->regs;

    f->done = true;
    f->regs = NULL;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
    future_ref(f);
    while (r) {
        future_listener_t *next = r->next;
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
    f->owner = dup_str(h->owner);
    f->age_ms = h->age_ms;
    f->run_ms = h->run_ms;
    f->st_done = h->done;
    f->st_total = h->total;
    f->signal = (int)h->signal;
    f->exit_code = h->has_exit ? (int)h->exit_code : -1;
    f->pid = (int)h->pid;
    f->priority = h->has_priority ? (int)h->priority : -1;
    f->attempts = h->attempts;
    f->found = h->found;
    f->more = h->more;
    f->ver = h->ver;
    f->count = h->count;
    f->token = h->token;
    f->lease_ms = h->lease_ms;
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

void future_listen(forq_future_t *f, future_listener_t *r)
{
    pthread_mutex_lock(&f->mu);
    if (!f->done) {
        future_listener_t **p = &f->regs;
        while (*p)
            p = &(*p)->next; /* fired in the order added */
        r->next = NULL;
        *p = r;
        pthread_mutex_unlock(&f->mu);
        if (f->conn)
            conn_want_io(f->conn); /* nobody may be reading the socket now */
        return;
    }
    pthread_mutex_unlock(&f->mu);
    future_ref(f);
    r->fire(r, f);
    future_unref(f);
}

bool future_unlisten(forq_future_t *f, future_listener_t *r)
{
    bool found = false;

    pthread_mutex_lock(&f->mu);
    for (future_listener_t **p = &f->regs; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return found;
}

bool future_wait_done(forq_future_t *f, int timeout_ms)
{
    struct timespec until;
    bool done;

    if (timeout_ms > 0)
        util_deadline(timeout_ms, &until);
    pthread_mutex_lock(&f->mu);
    while (!f->done && timeout_ms != 0 &&
           util_cond_wait(&f->cond, &f->mu, timeout_ms > 0 ? &until : NULL))
        ;
    done = f->done;
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
    char why[400];
    int64_t down;

    if (!f)
        return errors_fail(FORQ_ERR_INVALID, "future is NULL");
    /* not done means its client is alive (destroying a client resolves its futures) */
    if (future_wait_done(f, 0) ||
        (f->conn ? conn_wait(f->conn, f, timeout_ms) : future_wait_done(f, timeout_ms)))
        return FORQ_OK;
    /* a wait for a forqd that is not there says so, rather than only that time passed */
    if (f->conn && (down = health_unreachable_ms(f->conn)) > 0) {
        health_why_silent(f->conn, (int)(down < INT32_MAX ? down : INT32_MAX), why, sizeof(why));
        return errors_fail(FORQ_ERR_TIMEOUT, "job %s is not done after %d ms: %s", f->key,
                           timeout_ms, why);
    }
    return errors_fail(FORQ_ERR_TIMEOUT, "job %s is not done after %d ms", f->key, timeout_ms);
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
    case FORQ_STATE_OK:
        return FORQ_OK;
    case FORQ_STATE_ERROR:
        return FORQ_ERR_TASK;
    case FORQ_STATE_CANCELLED:
        return FORQ_ERR_CANCELLED;
    case FORQ_STATE_TIMEOUT:
        return FORQ_ERR_JOB_TIMEOUT;
    case FORQ_STATE_CRASHED:
        return FORQ_ERR_CRASHED;
    case FORQ_STATE_REJECTED:
        return FORQ_ERR_REJECTED;
    case FORQ_STATE_UNKNOWN:
        return FORQ_ERR_NOT_FOUND;
    default:
        return FORQ_ERR_LOST;
    }
}

forq_err_t forq_future_result(forq_future_t *f, const void **ret_data, size_t *ret_len)
{
    forq_err_t e;

    if (!f)
        return errors_fail(FORQ_ERR_INVALID, "future is NULL");
    if (!forq_future_done(f))
        return errors_fail(FORQ_ERR_PENDING, "job %s has no result yet", f->key);
    e = err_of(f->state);
    if (e == FORQ_OK) {
        if (ret_data)
            *ret_data = f->result;
        if (ret_len)
            *ret_len = f->result_len;
        return FORQ_OK;
    }
    if (e == FORQ_ERR_TASK)
        return errors_fail(e, "%s: %s", f->etype ? f->etype : "Error", f->detail ? f->detail : "");
    return errors_fail(e, "%s", f->detail ? f->detail : "");
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
        return errors_fail(FORQ_ERR_INVALID, "future is NULL");
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
        return errors_fail(FORQ_ERR_INVALID, "future is NULL");
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

static void fire_callback(future_listener_t *r, forq_future_t *f)
{
    forq_done_fn fn = (forq_done_fn)(uintptr_t)r->ctx;
    void *ud = r->ctx2;
    free(r);
    fn(f, ud);
}

forq_err_t forq_future_add_done_callback(forq_future_t *f, forq_done_fn fn, void *userdata)
{
    future_listener_t *r;

    if (!f || !fn)
        return errors_fail(FORQ_ERR_INVALID, "future and callback are required");
    if (!(r = calloc(1, sizeof(*r))))
        return errors_fail(FORQ_ERR_NOMEM, "out of memory");
    r->fire = fire_callback;
    r->ctx = (void *)(uintptr_t)fn;
    r->ctx2 = userdata;
    future_listen(f, r);
    return FORQ_OK;
}
