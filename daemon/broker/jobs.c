/* jobs.c - the whole life of a job. See jobs.h, and job.h for the phases.
 *
 * Dispatch runs once per loop turn, as a tick: whatever the turn's callbacks did (submits read,
 * workers freed, jobs requeued by a dead worker), the queue meets the idle workers once, and
 * then, for short tasks, the busy workers with room ahead. Args and results are moved or shared
 * (zmq_msg_copy is a reference count), never copied or decoded. */
#define _GNU_SOURCE
#include "jobs.h"
#include "jobs_int.h"

#include "access.h"
#include "jobtab.h"
#include "log.h"
#include "nodes.h"
#include "outbox.h"
#include "pool.h"
#include "tasks.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <utlist.h>

static outbox_t *out_of(jobs_t *jobs)
{
    return jobs->b->out;
}

/* ---- records ---- */

static void free_watchers(job_t *job)
{
    while (job->x && job->x->watchers) {
        watcher_t *w = job->x->watchers;
        job->x->watchers = w->next;
        free(w);
    }
}

/* Free a job record: its args or result, watchers and cancellers. */
static void job_free(job_t *job)
{
    zmq_msg_close(&job->msg);
    free(job->rhdr);
    if (job->x) {
        while (job->x->canceller) {
            canceller_t *k = job->x->canceller;
            job->x->canceller = k->next;
            free(k);
        }
        free_watchers(job);
        free(job->x->store);
        free(job->x->tags);
        free(job->x);
    }
    free(job);
}

/* The job's extra part, made when first needed. */
job_extra_t *job_extra(job_t *job)
{
    if (!job->x)
        job->x = xcalloc(1, sizeof(*job->x));
    return job->x;
}

job_t *jobs_find(jobs_t *jobs, wire_str_t id)
{
    return jobtab_find(&jobs->tab, id.ptr, id.len);
}

static void retain(jobs_t *jobs, job_t *job)
{
    job->finished_ms = now_ms();
    DL_APPEND2(jobs->done, job, done_prev, done_next);
    jobs->n_done++;
}

static void forget(jobs_t *jobs, job_t *job)
{
    DL_DELETE2(jobs->done, job, done_prev, done_next);
    jobs->n_done--;
    jobs->retained_bytes -= job->rhdr_len + zmq_msg_size(&job->msg);
    jobtab_del(&jobs->tab, job);
    job_free(job);
}

/* Forget finished jobs past the retention limits; when the next one expires. */
static uint64_t prune(jobs_t *jobs, uint64_t now)
{
    const config_t *cfg = jobs->b->cfg;

    while (jobs->done && ((long)jobs->n_done > cfg->retain_count ||
                          jobs->retained_bytes > (size_t)cfg->retain_bytes ||
                          jobs->done->finished_ms + (uint64_t)cfg->retain_ms <= now))
        forget(jobs, jobs->done);
    return jobs->done ? jobs->done->finished_ms + (uint64_t)cfg->retain_ms : LOOP_NEVER;
}

/* ---- phases ---- */

/* Take an AHEAD job out of its worker's list. */
static void unlink_ahead(jobs_t *jobs, job_t *job)
{
    worker_t *w = job->worker;
    job_t **p = &w->ahead, *prev = NULL;

    while (*p && *p != job) {
        prev = *p;
        p = &(*p)->ahead_next;
    }
    if (*p) {
        *p = job->ahead_next;
        if (w->ahead_tail == job)
            w->ahead_tail = prev;
        w->n_ahead--;
        jobs->ahead--;
    }
    job->ahead_next = NULL;
    job->worker = NULL;
}

/* Out of its worker, whatever it was there (RUNNING or AHEAD). */
static void leave_worker(jobs_t *jobs, job_t *job)
{
    if (job->phase == JOB_RUNNING) {
        job->worker->job = NULL;
        job->worker = NULL;
        jobs->running--;
    }
    if (job->phase == JOB_AHEAD)
        unlink_ahead(jobs, job);
    if (job->phase == JOB_REMOTE) {
        nodes_run_end(jobs->b->nodes, job);
        jobs->running--;
    }
}

static void enqueue(jobs_t *jobs, job_t *job, bool front)
{
    job->phase = JOB_QUEUED;
    sched_push(&jobs->sched, &job->client->lanes[job->prio], &job->item, front);
    if (job->deadline_at)
        loop_timer_arm(jobs->b->loop, &job->timer, job->deadline_at);
}

/* Back to the front of the queue (a retry, or a job a dead worker never started). */
void jobs_requeue_front(jobs_t *jobs, job_t *job)
{
    leave_worker(jobs, job);
    loop_timer_disarm(jobs->b->loop, &job->timer);
    enqueue(jobs, job, true);
}

/* The job starts running on w (which is not idle any more). */
void jobs_start_running(jobs_t *jobs, worker_t *w, job_t *job)
{
    loop_timer_disarm(jobs->b->loop, &job->timer);
    job->deadline_at = 0; /* it started: the queue deadline is met, retries included */
    job->phase = JOB_RUNNING;
    job->worker = w;
    job->attempts++;
    w->job = job;
    w->job_started_ms = now_ms();
    w->prog_done = w->prog_total = 0;
    w->prog_text[0] = '\0';
    jobs->running++;
    if (job->timeout_ms)
        loop_timer_arm(jobs->b->loop, &job->timer, now_ms() + job->timeout_ms);
}

/* Send the one answer to every cancel that waited for the worker (see canceller_t). */
static void answer_cancellers(jobs_t *jobs, job_t *job, const char *outcome)
{
    while (job->x && job->x->canceller) {
        canceller_t *k = job->x->canceller;
        wire_hdr_t r = {.cmd = WIRE_CANCEL_REPLY,
                        .id = {job->id, job->id_len},
                        .req = k->req,
                        .has_req = k->has_req,
                        .outcome = wire_str(outcome)};
        origin_t o = {k->ident, k->ident_len, k->delim, 0};
        job->x->canceller = k->next;
        if (job->worker && strcmp(outcome, "killing") == 0)
            r.pid = job->worker->pid;
        outbox_send(out_of(jobs), &o, &r, NULL);
        free(k);
    }
}

static uint64_t *counter_of(counters_t *st, wire_state_t state)
{
    switch (state) {
    case WIRE_ST_OK:
        return &st->ok;
    case WIRE_ST_ERROR:
        return &st->error;
    case WIRE_ST_CANCELLED:
        return &st->cancelled;
    case WIRE_ST_TIMEOUT:
        return &st->timeout;
    case WIRE_ST_CRASHED:
        return &st->crashed;
    default:
        return &st->lost;
    }
}

/* Keep an ok result in the dict the job named; on failure, say so in the result header. */
static void store_result(jobs_t *jobs, job_t *job, zmq_msg_t *payload, wire_hdr_t *h, char *msg,
                         size_t size)
{
    broker_t *b = jobs->b;
    const char *name = job->x->store, *key = name + strlen(name) + 1;
    int r = b->dict ? b->dict->store(b->dict_ud, name, key, zmq_msg_data(payload),
                                     zmq_msg_size(payload))
                    : -ENOTSUP;

    if (r == 0)
        return;
    snprintf(msg, size,
             "the result could not be stored in dict '%s' (%s); it is only in this reply", name,
             r == -E2BIG    ? "larger than --dict-max-value"
             : r == -ENOSPC ? "the dict service or its disk is full"
                            : strerror(-r));
    h->code = wire_str("store_failed");
    h->msg = wire_str(msg);
}

void jobs_finish(jobs_t *jobs, job_t *job, wire_state_t state, const wire_hdr_t *extra_hdr,
                 zmq_msg_t *payload)
{
    outbox_t *out = out_of(jobs);
    client_t *c = job->client;
    wire_hdr_t h = {0};
    char store_msg[256];

    if (extra_hdr)
        h = *extra_hdr;
    h.cmd = WIRE_RESULT;
    h.id = (wire_str_t){job->id, job->id_len};
    h.state = state;
    h.attempts = job->attempts;
    if (job->worker)
        h.pid = job->worker->pid;

    loop_timer_disarm(jobs->b->loop, &job->timer);
    if (job->phase == JOB_QUEUED)
        sched_remove(&jobs->sched, &job->item);
    leave_worker(jobs, job);
    if (job->x && job->x->canceller)
        answer_cancellers(jobs, job, state == WIRE_ST_CANCELLED ? "dequeued" : "finished");
    (*counter_of(&jobs->b->st, state))++;
    log_debug("job %s (%s) %s after %u attempt(s)", job->id, job->task, wire_state_name(state),
              job->attempts);
    if (payload && state != WIRE_ST_OK) {
        zmq_msg_close(payload);
        payload = NULL;
    }
    if (payload && job->x && job->x->store)
        store_result(jobs, job, payload, &h, store_msg, sizeof(store_msg));
    /* kept for fetch: the header as sent and a shared (reference-counted) copy of the result */
    const msgpack_sbuffer *e = outbox_encode(out, &h);
    if (!e)
        abort(); /* out of memory, logged */
    job->rhdr = xmalloc(e->size);
    memcpy(job->rhdr, e->data, e->size);
    job->rhdr_len = (uint32_t)e->size;
    /* the args are not needed any more: their place holds the result */
    zmq_msg_close(&job->msg);
    zmq_msg_init(&job->msg);
    if (payload)
        zmq_msg_copy(&job->msg, payload);
    jobs->retained_bytes += job->rhdr_len + zmq_msg_size(&job->msg);
    for (watcher_t *w = job->x ? job->x->watchers : NULL; w; w = w->next) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        if (payload)
            zmq_msg_copy(&copy, payload);
        outbox_send_raw(out, w->ident, w->ident_len, w->delim, job->rhdr, job->rhdr_len,
                        payload ? &copy : NULL);
        zmq_msg_close(&copy);
    }
    free_watchers(job);
    outbox_send_raw(out, c->ident, c->ident_len, c->delim, job->rhdr, job->rhdr_len, payload);
    job->phase = JOB_DONE;
    job->final = state;
    job->client = NULL;
    c->live--;
    access_live_add(jobs->b->access, job->owner, -1);
    outbox_client_release(out, c);
    retain(jobs, job);
}

/* A worker started `job`, sent ahead to it, having finished the one before. */
static void promote(jobs_t *jobs, worker_t *w, job_t *job)
{
    unlink_ahead(jobs, job);
    jobs_start_running(jobs, w, job);
    if (job->x && job->x->canceller) {
        /* it started before the worker saw the cancel: as for any running job, kill it */
        answer_cancellers(jobs, job, "killing");
        pool_kill(jobs->b->pool, w, KILL_CANCEL);
    }
}

/* ---- requests ---- */

void jobs_accept(jobs_t *jobs, client_t *c, const wire_hdr_t *h, const char *task, zmq_msg_t *args)
{
    const config_t *cfg = jobs->b->cfg;
    job_t *old = jobs_find(jobs, h->id), *job;

    if (old)
        forget(jobs, old); /* finished (the caller checked): the id is reused */
    job = xcalloc(1, sizeof(*job) + h->id.len + 1);
    memcpy(job->id, h->id.ptr, h->id.len);
    job->id_len = (uint8_t)h->id.len;
    job->task = task;
    if (++jobs->next_seq == 0)
        jobs->next_seq = 1; /* 0 means none */
    job->seq = jobs->next_seq;
    zmq_msg_init(&job->msg);
    zmq_msg_move(&job->msg, args);
    job->chunk = h->chunk;
    if (h->name.ptr) {
        char *store = job_extra(job)->store = xmalloc(h->name.len + h->key.len + 2);
        memcpy(store, h->name.ptr, h->name.len);
        store[h->name.len] = '\0';
        memcpy(store + h->name.len + 1, h->key.ptr, h->key.len);
        store[h->name.len + 1 + h->key.len] = '\0';
    }
    job->client = c;
    job->owner = c->who;
    timer_node_init(&job->timer);
    job->timer.kind = jobs->timer_kind;
    job->prio = (uint8_t)(h->has_priority ? h->priority : WIRE_PRIORITY_DEF);
    job->timeout_ms = h->timeout_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)h->timeout_ms;
    job->deadline_at = h->deadline_ms ? now_ms() + h->deadline_ms : 0;
    job->retries_left = h->retries;
    job->max_result = (uint32_t)(h->max_result && h->max_result < (uint64_t)cfg->max_payload
                                     ? h->max_result
                                     : (uint64_t)cfg->max_payload);
    job->as_bytes = h->as_bytes;
    job->accepted_ms = now_ms();
    job->cpu_s = (uint32_t)h->cpu_s;
    if (h->tags.len)
        job_extra(job)->tags = xstrndup(h->tags.ptr, h->tags.len);
    jobtab_add(&jobs->tab, job);
    c->live++;
    access_live_add(jobs->b->access, job->owner, 1);
    jobs->b->st.submitted++;
    enqueue(jobs, job, false);
}

void jobs_cancel(jobs_t *jobs, const origin_t *o, const wire_hdr_t *h)
{
    outbox_t *out = out_of(jobs);
    job_t *job = jobs_find(jobs, h->id);
    wire_hdr_t r = {.cmd = WIRE_CANCEL_REPLY, .id = h->id, .req = h->req, .has_req = h->has_req};

    if (!job) {
        r.outcome = wire_str("unknown");
        outbox_send(out, o, &r, NULL);
        return;
    }
    switch (job->phase) {
    case JOB_QUEUED: {
        r.outcome = wire_str("dequeued");
        outbox_send(out, o, &r, NULL);
        wire_hdr_t x = {.msg = wire_str("cancelled before it started")};
        jobs_finish(jobs, job, WIRE_ST_CANCELLED, &x, NULL);
        break;
    }
    case JOB_AHEAD: {
        /* the worker has it: the answer waits for it to say whether it had started the job
         * (then it is killed like any running job) or skipped it */
        canceller_t *k = xmalloc(sizeof(*k) + o->ilen);
        k->next = job_extra(job)->canceller;
        k->req = h->req;
        k->has_req = h->has_req;
        k->delim = o->delim;
        k->ident_len = (uint8_t)o->ilen;
        memcpy(k->ident, o->ident, o->ilen);
        if (!k->next)
            pool_cancel_ahead(jobs->b->pool, job->worker, job);
        job->x->canceller = k;
        break;
    }
    case JOB_RUNNING: {
        uint64_t grace = (uint64_t)jobs->b->cfg->cancel_grace_ms;
        r.outcome = wire_str("killing");
        r.pid = job->worker->pid;
        outbox_send(out, o, &r, NULL);
        if (grace == 0 || (job->x && job->x->cancel_told)) {
            pool_kill(jobs->b->pool, job->worker, KILL_CANCEL);
            break;
        }
        /* tell the task (forq_task_cancelled) and give it the grace to stop by itself; the
         * job's timer, its run timeout until now, kills it after that */
        job_extra(job)->cancel_told = true;
        pool_cancel_ahead(jobs->b->pool, job->worker, job);
        if (job->timer.idx == TIMER_IDLE || job->timer.at > now_ms() + grace)
            loop_timer_arm(jobs->b->loop, &job->timer, now_ms() + grace);
        break;
    }
    case JOB_REMOTE: {
        /* at a node, queued there or running: it answers with the job's result */
        r.outcome = wire_str("killing");
        outbox_send(out, o, &r, NULL);
        if (!job_extra(job)->cancel_told) {
            job->x->cancel_told = true;
            nodes_cancel(jobs->b->nodes, job);
        }
        break;
    }
    case JOB_DONE:
        r.outcome = wire_str("finished");
        r.state = job->final;
        outbox_send(out, o, &r, NULL);
        break;
    }
}

/* ---- what workers report ---- */

/* The jobs sent ahead to a worker that will not run them: back to the front of the queue in
 * their order (never started, so no retry is spent), or cancelled when that was asked or forqd
 * is stopping. */
static void requeue_ahead(jobs_t *jobs, worker_t *w)
{
    job_t **list, *job;
    size_t n = 0;

    if (!w->ahead)
        return;
    list = xmalloc(w->n_ahead * sizeof(*list));
    for (job = w->ahead; job && n < w->n_ahead; job = job->ahead_next)
        list[n++] = job;
    /* the last first: each goes to the front */
    while (n-- > 0) {
        job = list[n];
        if ((job->x && job->x->canceller) || jobs->b->draining) {
            wire_hdr_t x = {.msg = wire_str("cancelled before it started")};
            if (jobs->b->draining) {
                x.code = wire_str("shutting_down");
                x.msg = wire_str("forqd is shutting down; the job never started");
            }
            jobs_finish(jobs, job, WIRE_ST_CANCELLED, &x, NULL);
        } else {
            jobs_requeue_front(jobs, job);
        }
    }
    free(list);
}

void jobs_requeue(jobs_t *jobs, job_t *job)
{
    if (job->attempts)
        job->attempts--;
    if (jobs->b->draining) { /* nothing will run it: the stop's answer */
        wire_hdr_t x = {.code = wire_str("shutting_down"),
                        .msg = wire_str("forqd is shutting down; the job never started")};
        jobs_finish(jobs, job, WIRE_ST_CANCELLED, &x, NULL);
        return;
    }
    jobs_requeue_front(jobs, job);
}

static bool id_is(const job_t *job, wire_str_t id)
{
    return id.len == job->id_len && memcmp(id.ptr, job->id, id.len) == 0;
}

static job_t *ahead_by_id(worker_t *w, wire_str_t id)
{
    job_t *job = w->ahead;
    while (job && !id_is(job, id))
        job = job->ahead_next;
    return job;
}

/* What a worker runs after a `done` (PROTOCOL.md section 8): the job `next` names; without
 * `next`, the first job sent ahead, which it starts when that arrives, unless a cancel of it is
 * under way: then only the worker's `done` for it tells whether it skipped the job or ran it.
 * True when the worker has nothing left. */
static bool start_next(jobs_t *jobs, worker_t *w, wire_str_t next)
{
    job_t *job;

    if (!w->ahead)
        return true;
    if (next.ptr) {
        if (!(job = ahead_by_id(w, next))) {
            log_warn("worker %d starts job %.*s, which it was not sent; taking its first",
                     (int)w->pid, (int)next.len, next.ptr);
            job = w->ahead;
        }
    } else {
        job = w->ahead;
        if (job->x && job->x->canceller)
            return false; /* undecided: its own done will say */
    }
    promote(jobs, w, job);
    return false;
}

bool jobs_worker_done(jobs_t *jobs, worker_t *w, const wire_hdr_t *h, zmq_msg_t *payload)
{
    job_t *job = w->job;

    if (!job || !id_is(job, h->id)) {
        job_t *ahead = ahead_by_id(w, h->id);
        if (ahead && h->state == WIRE_ST_CANCELLED) {
            /* a job sent ahead that the worker skipped, as we asked */
            wire_hdr_t x = {.msg = wire_str("cancelled before it started")};
            jobs_finish(jobs, ahead, WIRE_ST_CANCELLED, &x, NULL);
            return w->job ? false : start_next(jobs, w, (wire_str_t){0});
        }
        if (!ahead || w->job) {
            log_warn("worker %d reported a job it was not running; ignored", (int)w->pid);
            return false;
        }
        /* one whose start was undecided (start_next): the worker ran it */
        job = ahead;
        unlink_ahead(jobs, job);
        jobs_start_running(jobs, w, job);
    }
    w->jobs_done++;
    tasks_ran(job->task, h->run_us);
    if (h->state == WIRE_ST_OK) {
        wire_hdr_t x = {.run_us = h->run_us};
        if (!payload) {
            x.etype = wire_str("TaskError");
            x.msg = wire_str("the worker sent no result frame");
            jobs_finish(jobs, job, WIRE_ST_ERROR, &x, NULL);
        } else {
            jobs_finish(jobs, job, WIRE_ST_OK, &x, payload);
        }
    } else if (job->x && job->x->cancel_told) {
        /* the task stopped at the cancel it was told of: cancelled, its worker spared */
        wire_hdr_t x = {.msg = wire_str("cancelled while running: the task stopped when told"),
                        .run_us = h->run_us};
        jobs_finish(jobs, job, WIRE_ST_CANCELLED, &x, NULL);
    } else {
        /* every error result carries a type and a message (PROTOCOL.md section 6.6) */
        wire_hdr_t x = {.etype = h->etype, .msg = h->msg, .run_us = h->run_us};
        if (!x.etype.ptr || !x.etype.len)
            x.etype = wire_str("Error");
        if (!x.msg.ptr || !x.msg.len)
            x.msg = wire_str("the task failed without saying why");
        jobs_finish(jobs, job, WIRE_ST_ERROR, &x, NULL);
    }
    if (h->retire) {
        requeue_ahead(jobs, w); /* it exits now: what it holds goes back */
        return true;
    }
    return start_next(jobs, w, h->next);
}

/* Retry a job whose worker died, if it may; false if it may not. */
bool jobs_retry(jobs_t *jobs, job_t *job)
{
    if (job->retries_left == 0 || jobs->b->draining)
        return false;
    job->retries_left--;
    jobs->b->st.retried++;
    jobs_requeue_front(jobs, job);
    return true;
}

/* The running job of a worker that died: its one result, or a retry. */
static void running_job_lost(jobs_t *jobs, worker_t *w, int status, bool fs_died)
{
    job_t *job = w->job;
    char what[128], msg[WIRE_TEXT_MAX];
    wire_hdr_t x = {0};

    describe_wait_status(status, what, sizeof(what));
    if (w->kill != KILL_NONE && w->kill_seq != job->seq) {
        /* the job the kill was for had just finished and this one, sent ahead, had started */
        if (jobs_retry(jobs, job))
            return;
        x.msg = wire_str("its worker was killed to stop the job before it, which finished just "
                         "as this one started; submit it with retries to have it run again");
        jobs_finish(jobs, job, WIRE_ST_CRASHED, &x, NULL);
        return;
    }
    switch (w->kill) {
    case KILL_CANCEL:
        x.msg = wire_str("cancelled while running; its worker was killed");
        jobs_finish(jobs, job, WIRE_ST_CANCELLED, &x, NULL);
        return;
    case KILL_TIMEOUT:
        snprintf(msg, sizeof(msg), "ran longer than its timeout of %llu ms; its worker was killed",
                 (unsigned long long)job->timeout_ms);
        x.msg = wire_str(msg);
        jobs_finish(jobs, job, WIRE_ST_TIMEOUT, &x, NULL);
        return;
    case KILL_SHUTDOWN:
        x.code = wire_str("shutting_down");
        x.msg = wire_str("forqd is shutting down; the job was still running after the grace time");
        jobs_finish(jobs, job, WIRE_ST_CANCELLED, &x, NULL);
        return;
    case KILL_NONE:
    case KILL_RETIRE:
        break;
    }
    if (job->retries_left > 0 && !jobs->b->draining) {
        log_warn("worker %d %s while running job %s (%s); retrying it (%u retries left)",
                 (int)w->pid, fs_died ? "died with its forkserver" : what, job->id, job->task,
                 job->retries_left - 1u);
        jobs_retry(jobs, job);
        return;
    }
    if (fs_died) {
        x.msg = wire_str("its worker died with the forkserver");
        jobs_finish(jobs, job, WIRE_ST_LOST, &x, NULL);
        return;
    }
    /* retries are spent on crashes only: more than one attempt means every one crashed */
    char all[64] = "";
    if (job->attempts > 1)
        snprintf(all, sizeof(all), "crashed on all %u attempts: ", (unsigned)job->attempts);
    if (WIFSIGNALED(status)) {
        x.signal = WTERMSIG(status);
        if (x.signal == SIGXCPU && job->cpu_s)
            snprintf(msg, sizeof(msg), "%sused more than its CPU limit of %u s; worker %s", all,
                     job->cpu_s, what);
        else
            snprintf(msg, sizeof(msg), "%sworker %s while running the job", all, what);
    } else {
        x.exit_code = WEXITSTATUS(status);
        x.has_exit = true;
        snprintf(msg, sizeof(msg), "%sworker %s while running the job", all, what);
    }
    x.msg = wire_str(msg);
    log_warn("job %s (%s) crashed: %s", job->id, job->task, msg);
    jobs_finish(jobs, job, WIRE_ST_CRASHED, &x, NULL);
}

void jobs_worker_lost(jobs_t *jobs, worker_t *w, int status, bool fs_died)
{
    if (w->job)
        running_job_lost(jobs, w, status, fs_died);
    requeue_ahead(jobs, w); /* never started: they run elsewhere */
}

/* ---- deadlines, the turn ---- */

static void on_timer(void *ud, timer_node_t *t, uint64_t now)
{
    jobs_t *jobs = ud;
    job_t *job = container_of(t, job_t, timer);

    (void)now;
    loop_timer_disarm(jobs->b->loop, t);
    if (job->phase == JOB_QUEUED) {
        wire_hdr_t x = {.code = wire_str("deadline"),
                        .msg = wire_str("its queue deadline passed before a worker was free")};
        jobs_finish(jobs, job, WIRE_ST_TIMEOUT, &x, NULL);
    } else if (job->phase == JOB_RUNNING) {
        /* a cancel's grace over, or the run timeout */
        pool_kill(jobs->b->pool, job->worker,
                  job->x && job->x->cancel_told ? KILL_CANCEL : KILL_TIMEOUT);
    } else if (job->phase == JOB_REMOTE) {
        /* the node did not answer its run timeout in time: the head does */
        char msg[WIRE_TEXT_MAX];
        uint64_t started;
        snprintf(msg, sizeof(msg),
                 "ran longer than its timeout of %lu ms on node %s, which did not report it",
                 (unsigned long)job->timeout_ms, nodes_run_where(job, &started));
        wire_hdr_t x = {.msg = wire_str(msg)};
        nodes_cancel(jobs->b->nodes, job);
        jobs_finish(jobs, job, WIRE_ST_TIMEOUT, &x, NULL);
    }
}

size_t jobs_cancel_queued(jobs_t *jobs, const wire_hdr_t *why)
{
    sched_item_t *it;
    size_t n = 0;

    while ((it = sched_pop(&jobs->sched))) {
        jobs_finish(jobs, container_of(it, job_t, item), WIRE_ST_CANCELLED, why, NULL);
        n++;
    }
    return n;
}

const sched_t *jobs_queue(const jobs_t *jobs)
{
    return &jobs->sched;
}

broker_t *jobs_broker(const jobs_t *jobs)
{
    return jobs->b;
}

static uint64_t tick(void *ud, uint64_t now)
{
    jobs_t *jobs = ud;
    uint64_t next = prune(jobs, now);

    jobs_dispatch(jobs);
    return next;
}

jobs_t *jobs_new(broker_t *b)
{
    jobs_t *jobs = xcalloc(1, sizeof(*jobs));

    jobs->b = b;
    sched_init(&jobs->sched);
    jobs->timer_kind = loop_timer_kind(b->loop, on_timer, jobs);
    loop_tick_add(b->loop, tick, jobs);
    return jobs;
}

void jobs_destroy(jobs_t **jobsp)
{
    jobs_t *jobs = *jobsp;
    job_t *job;

    if (!jobs)
        return;
    for (size_t i = 0; i < jobs->tab.cap; i++)
        if ((job = jobtab_at(&jobs->tab, i)))
            job_free(job);
    jobtab_free(&jobs->tab);
    free(jobs);
    *jobsp = NULL;
}

void jobs_counts(const jobs_t *jobs, jobs_counts_t *ret)
{
    ret->queued = jobs->sched.total;
    for (unsigned p = 0; p < SCHED_NPRIO; p++)
        ret->by_prio[p] = jobs->sched.len[p];
    ret->running = jobs->running;
    ret->ahead = jobs->ahead;
    ret->retained = jobs->n_done;
    ret->retained_bytes = jobs->retained_bytes;
}
