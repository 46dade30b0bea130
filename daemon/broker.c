/* broker.c - the event loop, the client side of the protocol and the life of a job.
 *
 * One thread, one zmq_poll over: the client ROUTER, a signalfd, the forkserver channel and the
 * workers' links (socketpairs, wlink.h); timers give the poll its timeout. Every readable
 * socket is drained (in bounded batches, so neither side starves the other) before polling
 * again; what the iteration sends to workers goes out at its end, many messages to a write.
 * Args and result frames are moved, never copied or decoded: a payload passes only the
 * allocation-free structural check of wire_check().
 *
 * Sending to clients never blocks: the client socket is a ROUTER with ZMQ_ROUTER_MANDATORY, so a
 * vanished client is EHOSTUNREACH (the result is counted undeliverable, and stays visible to
 * status) and a full pipe is EAGAIN (the result waits in the client's backlog, retried every
 * few milliseconds, and counts against the client's limit so the backlog is bounded). */
#define _GNU_SOURCE
#include "broker_int.h"

#include "forkserver.h"
#include "forq_config.h"
#include "log.h"
#include "notify.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <utlist.h>

#define MAX_FRAMES  5     /* identity, delimiter, header, payload, and one to spot extras */
#define BACKLOG_MS  5     /* retry interval for results zmq could not take */

/* ---- sending to clients ---- */

static int encode(broker_t *b, const wire_hdr_t *h)
{
    msgpack_sbuffer_clear(&b->hbuf);
    return wire_hdr_encode(&b->hbuf, h);
}

static client_t *client_get(broker_t *b, const void *ident, size_t len, bool create)
{
    client_t *c;

    HASH_FIND(hh, b->client_tab, ident, len, c);
    if (c || !create)
        return c;
    c = xcalloc(1, sizeof(*c) + len);
    memcpy(c->ident, ident, len);
    c->ident_len = (uint8_t)len;
    for (unsigned p = 0; p < SCHED_NPRIO; p++)
        sched_lane_init(&c->lanes[p], p);
    HASH_ADD(hh, b->client_tab, ident, len, c);
    return c;
}

static void client_release(broker_t *b, client_t *c)
{
    if (c->live > 0 || c->backlog_n > 0)
        return;
    HASH_DEL(b->client_tab, c);
    free(c);
}

/* Send identity, [delimiter], header, [payload] without blocking. Returns 0, -EAGAIN (nothing
 * was sent: the pipe is full) or -EHOSTUNREACH (no such client). Consumes `payload` on 0. */
static int try_send(broker_t *b, const void *ident, size_t ilen, bool delim, zmq_msg_t *hdr,
                    zmq_msg_t *payload)
{
    int more = ZMQ_SNDMORE | ZMQ_DONTWAIT;

    if (zmq_send(b->clients, ident, ilen, more) < 0)
        return errno == EAGAIN ? -EAGAIN : -EHOSTUNREACH;
    /* the first frame is in: the rest of a multipart message always follows */
    if (delim)
        zmq_send(b->clients, "", 0, more);
    zmq_msg_send(hdr, b->clients, payload ? more : ZMQ_DONTWAIT);
    if (payload)
        zmq_msg_send(payload, b->clients, ZMQ_DONTWAIT);
    return 0;
}

/* Send an encoded header (and payload, consumed) to a client by identity; see the top
 * comment. */
static void send_raw(broker_t *b, const void *ident, size_t ilen, bool delim, const void *hbytes,
                     size_t hlen, zmq_msg_t *payload)
{
    zmq_msg_t hdr;
    client_t *c = client_get(b, ident, ilen, false);
    int r;

    zmq_msg_init_size(&hdr, hlen);
    memcpy(zmq_msg_data(&hdr), hbytes, hlen);
    /* results queue behind earlier ones that are still waiting */
    r = (c && c->backlog_n) ? -EAGAIN : try_send(b, ident, ilen, delim, &hdr, payload);
    if (r == -EAGAIN) {
        outmsg_t *m = xcalloc(1, sizeof(*m));
        c = client_get(b, ident, ilen, true);
        c->delim = delim;
        zmq_msg_init(&m->hdr);
        zmq_msg_move(&m->hdr, &hdr);
        zmq_msg_init(&m->payload);
        if (payload) {
            zmq_msg_move(&m->payload, payload);
            m->has_payload = true;
        }
        if (c->backlog_n++ == 0) {
            c->backlog = c->backlog_tail = m;
            DL_APPEND2(b->backlogged, c, bl_prev, bl_next);
        } else {
            c->backlog_tail->next = m;
            c->backlog_tail = m;
        }
        return;
    }
    if (r == -EHOSTUNREACH) {
        b->st.undeliverable++;
        log_debug("a reply for a client that is gone was dropped");
        if (payload)
            zmq_msg_close(payload);
    }
    zmq_msg_close(&hdr);
}

/* Encode a header and send it (and payload, consumed) to a client. */
static void send_client(broker_t *b, const void *ident, size_t ilen, bool delim,
                        const wire_hdr_t *h, zmq_msg_t *payload)
{
    if (encode(b, h) < 0) {
        log_error("out of memory encoding a reply");
        if (payload)
            zmq_msg_close(payload);
        return;
    }
    send_raw(b, ident, ilen, delim, b->hbuf.data, b->hbuf.size, payload);
}

static void flush_backlog(broker_t *b)
{
    client_t *c, *tmp;

    DL_FOREACH_SAFE2(b->backlogged, c, tmp, bl_next)
    {
        while (c->backlog) {
            outmsg_t *m = c->backlog;
            int r = try_send(b, c->ident, c->ident_len, c->delim, &m->hdr,
                             m->has_payload ? &m->payload : NULL);
            if (r == -EAGAIN)
                break;
            if (r == -EHOSTUNREACH)
                b->st.undeliverable++;
            c->backlog = m->next;
            c->backlog_n--;
            zmq_msg_close(&m->hdr);
            zmq_msg_close(&m->payload);
            free(m);
        }
        if (c->backlog_n == 0) {
            c->backlog_tail = NULL;
            DL_DELETE2(b->backlogged, c, bl_prev, bl_next);
            client_release(b, c);
        }
    }
}

/* To a worker: its task waits for the answer. */
static void send_worker(broker_t *b, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload)
{
    char buf[16];
    long pid;
    worker_t *w = NULL;

    if (o->ilen > 1 && o->ilen < sizeof(buf)) {
        memcpy(buf, o->ident + 1, o->ilen - 1);
        buf[o->ilen - 1] = '\0';
        if (parse_long(buf, 1, INT32_MAX, &pid) == 0)
            w = pool_worker(b, (pid_t)pid);
    }
    if (!w || encode(b, h) < 0) {
        if (payload)
            zmq_msg_close(payload);
        return; /* gone: its exit report follows */
    }
    pool_send(b, w, b->hbuf.data, b->hbuf.size, payload);
}

void broker_send(broker_t *b, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload)
{
    if (o->worker)
        send_worker(b, o, h, payload);
    else
        send_client(b, o->ident, o->ilen, o->delim, h, payload);
}

static void send_error(broker_t *b, const void *ident, size_t ilen, bool delim,
                       const wire_hdr_t *req, const char *code, const char *msg);

void broker_error(broker_t *b, const origin_t *o, const wire_hdr_t *req, const char *code,
                  const char *msg)
{
    if (o->worker) {
        wire_hdr_t h = {.cmd = WIRE_ERROR, .code = wire_str(code), .msg = wire_str(msg),
                        .req = req->req, .has_req = req->has_req};
        send_worker(b, o, &h, NULL);
        return;
    }
    send_error(b, o->ident, o->ilen, o->delim, req, code, msg);
}

static void send_error(broker_t *b, const void *ident, size_t ilen, bool delim,
                       const wire_hdr_t *req, const char *code, const char *msg)
{
    wire_hdr_t h = {.cmd = WIRE_ERROR, .code = wire_str(code), .msg = wire_str(msg)};
    if (req) {
        h.id = req->id;
        h.req = req->req;
        h.has_req = req->has_req;
    }
    b->st.malformed++;
    send_client(b, ident, ilen, delim, &h, NULL);
}

/* ---- the life of a job ---- */

static void retain(broker_t *b, job_t *job)
{
    job->finished_ms = now_ms();
    DL_APPEND2(b->done, job, done_prev, done_next);
    b->n_done++;
}

static void free_watchers(job_t *job)
{
    while (job->x && job->x->watchers) {
        watcher_t *w = job->x->watchers;
        job->x->watchers = w->next;
        free(w);
    }
}


/* Take an AHEAD job out of its worker's list. */
static void unlink_ahead(broker_t *b, job_t *job)
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
        b->ahead--;
    }
    job->ahead_next = NULL;
    job->worker = NULL;
}

/* Free a job record: its args, retained result and watchers. */
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
        free(job->x);
    }
    free(job);
}

/* The job's extra part, made when first needed. */
static job_extra_t *extra(job_t *job)
{
    if (!job->x)
        job->x = xcalloc(1, sizeof(*job->x));
    return job->x;
}

static void forget(broker_t *b, job_t *job)
{
    DL_DELETE2(b->done, job, done_prev, done_next);
    b->n_done--;
    b->retained_bytes -= job->rhdr_len + zmq_msg_size(&job->msg);
    jobtab_del(&b->jobs, job);
    job_free(job);
}

static void prune(broker_t *b, uint64_t now)
{
    while (b->done && ((long)b->n_done > b->cfg->retain_count ||
                       b->retained_bytes > (size_t)b->cfg->retain_bytes ||
                       b->done->finished_ms + (uint64_t)b->cfg->retain_ms <= now))
        forget(b, b->done);
}

static uint64_t *counter_of(broker_t *b, wire_state_t st)
{
    switch (st) {
    case WIRE_ST_OK: return &b->st.ok;
    case WIRE_ST_ERROR: return &b->st.error;
    case WIRE_ST_CANCELLED: return &b->st.cancelled;
    case WIRE_ST_TIMEOUT: return &b->st.timeout;
    case WIRE_ST_CRASHED: return &b->st.crashed;
    default: return &b->st.lost;
    }
}

void broker_finish(broker_t *b, job_t *job, wire_state_t state, const wire_hdr_t *extra,
                   zmq_msg_t *payload)
{
    client_t *c = job->client;
    wire_hdr_t h = {0};

    if (extra)
        h = *extra;
    h.cmd = WIRE_RESULT;
    h.id = (wire_str_t){job->id, job->id_len};
    h.state = state;
    h.attempts = job->attempts;
    if (job->worker)
        h.pid = job->worker->pid;

    timers_del(&b->timers, &job->timer);
    if (job->phase == JOB_QUEUED)
        sched_remove(&b->sched, &job->item);
    if (job->phase == JOB_RUNNING) {
        job->worker->job = NULL;
        job->worker = NULL;
        b->running--;
    }
    if (job->phase == JOB_AHEAD)
        unlink_ahead(b, job);
    if (job->x && job->x->canceller)
        broker_answer_canceller(b, job, state == WIRE_ST_CANCELLED ? "dequeued" : "finished");
    (*counter_of(b, state))++;
    log_debug("job %s (%s) %s after %u attempt(s)", job->id, job->task, wire_state_name(state),
              job->attempts);
    if (payload && state != WIRE_ST_OK) {
        zmq_msg_close(payload);
        payload = NULL;
    }
    char store_msg[256];
    const char *store = job->x ? job->x->store : NULL;
    if (store && payload) {
        const char *key = store + strlen(store) + 1;
        int r = dict_store_result(b, store, key, zmq_msg_data(payload),
                                  zmq_msg_size(payload));
        if (r < 0) {
            snprintf(store_msg, sizeof(store_msg),
                     "the result could not be stored in dict '%s' (%s); it is only in this reply",
                     store, r == -E2BIG    ? "larger than --dict-max-value"
                                 : r == -ENOSPC ? "the dict service or its disk is full"
                                                : strerror(-r));
            h.code = wire_str("store_failed");
            h.msg = wire_str(store_msg);
        }
    }
    /* kept for fetch: the header as sent and a shared (reference-counted) copy of the result */
    if (encode(b, &h) < 0) {
        log_error("out of memory encoding a result");
        abort();
    }
    job->rhdr = xmalloc(b->hbuf.size);
    memcpy(job->rhdr, b->hbuf.data, b->hbuf.size);
    job->rhdr_len = (uint32_t)b->hbuf.size;
    /* the args are not needed any more: their place holds the result */
    zmq_msg_close(&job->msg);
    zmq_msg_init(&job->msg);
    if (payload)
        zmq_msg_copy(&job->msg, payload);
    b->retained_bytes += job->rhdr_len + zmq_msg_size(&job->msg);
    for (watcher_t *w = job->x ? job->x->watchers : NULL; w; w = w->next) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        if (payload)
            zmq_msg_copy(&copy, payload);
        send_raw(b, w->ident, w->ident_len, w->delim, job->rhdr, job->rhdr_len,
                 payload ? &copy : NULL);
        zmq_msg_close(&copy);
    }
    free_watchers(job);
    send_raw(b, c->ident, c->ident_len, c->delim, job->rhdr, job->rhdr_len, payload);
    job->phase = JOB_DONE;
    job->final = state;
    job->client = NULL;
    c->live--;
    client_release(b, c);
    retain(b, job);
}

void broker_progress(broker_t *b, job_t *job, const wire_hdr_t *p)
{
    wire_hdr_t h = {.cmd = WIRE_PROGRESS, .id = {job->id, job->id_len}, .done = p->done,
                    .total = p->total, .msg = p->msg};
    client_t *c = job->client;

    if (encode(b, &h) < 0)
        return;
    for (watcher_t *w = job->x ? job->x->watchers : NULL; w; w = w->next)
        send_raw(b, w->ident, w->ident_len, w->delim, b->hbuf.data, b->hbuf.size, NULL);
    send_raw(b, c->ident, c->ident_len, c->delim, b->hbuf.data, b->hbuf.size, NULL);
}

static void enqueue(broker_t *b, job_t *job, bool front)
{
    job->phase = JOB_QUEUED;
    sched_push(&b->sched, &job->client->lanes[job->prio], &job->item, front);
    if (job->deadline_at)
        timers_add(&b->timers, &job->timer, job->deadline_at);
}

void broker_requeue(broker_t *b, job_t *job)
{
    if (job->phase == JOB_RUNNING) {
        job->worker->job = NULL;
        job->worker = NULL;
        b->running--;
    }
    if (job->phase == JOB_AHEAD)
        unlink_ahead(b, job);
    timers_del(&b->timers, &job->timer);
    enqueue(b, job, true);
}

/* The job starts running on w (which is not idle any more). */
static void start_running(broker_t *b, worker_t *w, job_t *job)
{
    timers_del(&b->timers, &job->timer);
    job->deadline_at = 0; /* it started: the queue deadline is met, retries included */
    job->phase = JOB_RUNNING;
    job->worker = w;
    job->attempts++;
    w->job = job;
    b->running++;
    if (job->timeout_ms)
        timers_add(&b->timers, &job->timer, now_ms() + job->timeout_ms);
}

/* Is this job's task one that runs in under a millisecond, on average of its recent jobs?
 * Only such jobs go ahead to busy workers: for them the round trip of handing out one job at
 * a time is most of the cost, and a job waiting behind another costs little. */
static bool short_task(const job_t *job)
{
    const task_name_t *t = (const task_name_t *)(job->task - offsetof(task_name_t, name));
    return t->samples >= 3 && t->avg_us < 1000;
}

/* A busy worker that may take one more job ahead: the one with fewest, within --prefetch and
 * its --max-jobs-per-worker budget; NULL if none. */
static worker_t *ahead_slot(broker_t *b)
{
    worker_t *w, *tmp, *best = NULL;
    long limit = b->cfg->prefetch, max_jobs = b->cfg->max_jobs_per_worker;

    HASH_ITER(hh, b->worker_tab, w, tmp)
    {
        if (w->state != W_BUSY || !w->job || w->kill != KILL_NONE || w->link.fd < 0 ||
            w->fs_pid != b->fs_pid || (long)w->n_ahead >= limit ||
            (max_jobs > 0 && (long)(w->jobs_done + 1 + w->n_ahead) >= max_jobs))
            continue;
        if (!best || w->n_ahead < best->n_ahead)
            best = w;
    }
    return best;
}

void broker_dispatch(broker_t *b)
{
    while (b->idle && b->sched.total > 0) {
        worker_t *w = pool_take_idle(b);
        job_t *job = container_of(sched_pop(&b->sched), job_t, item);

        start_running(b, w, job);
        if (!pool_send_job(b, w, job)) {
            job->attempts--;
            broker_requeue(b, job);
        }
    }
    while (b->sched.total > 0 && !b->draining) {
        job_t *job = container_of(sched_peek(&b->sched), job_t, item);
        worker_t *w;

        if (!short_task(job) || !(w = ahead_slot(b)))
            return;
        sched_pop(&b->sched);
        timers_del(&b->timers, &job->timer);
        job->deadline_at = 0; /* handed to a worker: it starts within moments */
        job->phase = JOB_AHEAD;
        job->worker = w;
        job->ahead_next = NULL;
        if (w->ahead_tail)
            w->ahead_tail->ahead_next = job;
        else
            w->ahead = job;
        w->ahead_tail = job;
        w->n_ahead++;
        b->ahead++;
        b->st.sent_ahead++;
        if (!pool_send_job(b, w, job)) {
            broker_requeue(b, job);
            return;
        }
    }
}

void broker_promote(broker_t *b, worker_t *w)
{
    job_t *job = w->ahead;

    if (!job)
        return;
    unlink_ahead(b, job);
    start_running(b, w, job);
    if (job->x && job->x->canceller) {
        /* it started before the worker saw the cancel: as for any running job, kill it */
        broker_answer_canceller(b, job, "killing");
        pool_kill(b, w, KILL_CANCEL);
    }
}

void broker_answer_canceller(broker_t *b, job_t *job, const char *outcome)
{
    while (job->x && job->x->canceller) {
        canceller_t *k = job->x->canceller;
        wire_hdr_t r = {.cmd = WIRE_CANCEL_REPLY, .id = {job->id, job->id_len}, .req = k->req,
                        .has_req = k->has_req, .outcome = wire_str(outcome)};
        job->x->canceller = k->next;
        if (job->worker && strcmp(outcome, "killing") == 0)
            r.pid = job->worker->pid;
        send_client(b, k->ident, k->ident_len, k->delim, &r, NULL);
        free(k);
    }
}

/* ---- client commands ---- */

static void reject(broker_t *b, const origin_t *o, const wire_hdr_t *req, const char *code,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void reject(broker_t *b, const origin_t *o, const wire_hdr_t *req, const char *code,
                   const char *fmt, ...)
{
    char msg[WIRE_TEXT_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    wire_hdr_t h = {.cmd = WIRE_RESULT, .id = req->id, .state = WIRE_ST_REJECTED,
                    .code = wire_str(code), .msg = wire_str(msg)};
    b->st.rejected++;
    log_debug("job %.*s rejected: %s", (int)req->id.len, req->id.ptr, msg);
    send_client(b, o->ident, o->ilen, o->delim, &h, NULL);
}

static job_t *find_job(broker_t *b, wire_str_t id)
{
    job_t *job;
    job = jobtab_find(&b->jobs, id.ptr, id.len);
    return job;
}

static void on_submit(broker_t *b, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *args)
{
    const config_t *cfg = b->cfg;
    job_t *old = find_job(b, h->id), *job;
    task_name_t *t;
    client_t *c;
    wire_err_t werr;

    if (old && old->phase != JOB_DONE) {
        send_error(b, o->ident, o->ilen, o->delim, h, "duplicate_id",
                   "a job with this id is queued or running; choose a new id");
        return;
    }
    if (b->draining)
        return reject(b, o, h, "shutting_down",
                      "forqd is shutting down and accepts no new jobs; retry when it is back");
    t = pool_task(b, h->task.ptr, h->task.len);
    if (!t || !t->present)
        return reject(b, o, h, "unknown_task",
                      "forqd has no task '%.*s'; 'forq status' lists the tasks it has",
                      (int)h->task.len, h->task.ptr);
    if (strcmp(t->name, "exec") == 0 && cfg->exec_allow.n == 0)
        return reject(b, o, h, "task_disabled",
                      "the exec task is disabled; start forqd with --allow-exec PROGRAM");
    if (zmq_msg_size(args) > (size_t)cfg->max_payload)
        return reject(b, o, h, "too_large",
                      "the args frame is %zu bytes, more than this forqd's --max-payload of %ld",
                      zmq_msg_size(args), cfg->max_payload);
    if (wire_check(zmq_msg_data(args), zmq_msg_size(args), WIRE_DEPTH_MAX, &werr) < 0)
        return reject(b, o, h, "bad_args", "the args frame is not one valid msgpack value: %s",
                      werr.msg);
    if ((h->name.ptr || h->key.ptr) &&
        (!h->name.ptr || !h->key.ptr || !wire_id_is_valid(h->name.ptr, h->name.len) ||
         h->key.len == 0 || memchr(h->key.ptr, '\0', h->key.len)))
        return reject(b, o, h, "bad_store",
                      "to store the result give both 'name' (a dict name) and 'key' (1-1024 "
                      "bytes, no NUL)");
    if ((long)b->sched.total >= cfg->queue_max)
        return reject(b, o, h, "queue_full",
                      "forqd's queue holds %zu jobs, its limit (--queue-max); retry later",
                      b->sched.total);
    c = client_get(b, o->ident, o->ilen, true);
    c->delim = o->delim;
    if ((long)(c->live + c->backlog_n) >= cfg->client_queue_max) {
        reject(b, o, h, "client_queue_full",
               "this client has %zu unfinished jobs and undelivered results, its limit "
               "(--client-queue-max); wait for results before submitting more",
               c->live + c->backlog_n);
        client_release(b, c);
        return;
    }
    if (old)
        forget(b, old);

    job = xcalloc(1, sizeof(*job) + h->id.len + 1);
    memcpy(job->id, h->id.ptr, h->id.len);
    job->id_len = (uint8_t)h->id.len;
    job->task = t->name;
    if (++b->next_seq == 0)
        b->next_seq = 1; /* 0 means none */
    job->seq = b->next_seq;
    zmq_msg_init(&job->msg);
    zmq_msg_move(&job->msg, args);
    job->chunk = h->chunk;
    if (h->name.ptr) {
        char *store = extra(job)->store = xmalloc(h->name.len + h->key.len + 2);
        memcpy(store, h->name.ptr, h->name.len);
        store[h->name.len] = '\0';
        memcpy(store + h->name.len + 1, h->key.ptr, h->key.len);
        store[h->name.len + 1 + h->key.len] = '\0';
    }
    job->client = c;
    timer_node_init(&job->timer);
    job->prio = (uint8_t)(h->has_priority ? h->priority : WIRE_PRIORITY_DEF);
    job->timeout_ms = h->timeout_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)h->timeout_ms;
    job->deadline_at = h->deadline_ms ? now_ms() + h->deadline_ms : 0;
    job->retries_left = h->retries;
    job->max_result = (uint32_t)(h->max_result && h->max_result < (uint64_t)cfg->max_payload
                                     ? h->max_result
                                     : (uint64_t)cfg->max_payload);
    job->as_bytes = h->as_bytes;
    job->cpu_s = (uint32_t)h->cpu_s;
    jobtab_add(&b->jobs, job);
    c->live++;
    b->st.submitted++;
    enqueue(b, job, false);
    broker_dispatch(b);
}

static void on_cancel(broker_t *b, const origin_t *o, const wire_hdr_t *h)
{
    job_t *job = find_job(b, h->id);
    wire_hdr_t r = {.cmd = WIRE_CANCEL_REPLY, .id = h->id, .req = h->req, .has_req = h->has_req};

    if (!job) {
        r.outcome = wire_str("unknown");
        send_client(b, o->ident, o->ilen, o->delim, &r, NULL);
        return;
    }
    switch (job->phase) {
    case JOB_QUEUED: {
        r.outcome = wire_str("dequeued");
        send_client(b, o->ident, o->ilen, o->delim, &r, NULL);
        wire_hdr_t x = {.msg = wire_str("cancelled before it started")};
        broker_finish(b, job, WIRE_ST_CANCELLED, &x, NULL);
        break;
    }
    case JOB_AHEAD:
    {
        /* the worker has it: the answer waits for it to say whether it had started the job
         * (then it is killed like any running job) or skipped it */
        canceller_t *k = xmalloc(sizeof(*k) + o->ilen);
        k->next = extra(job)->canceller;
        k->req = h->req;
        k->has_req = h->has_req;
        k->delim = o->delim;
        k->ident_len = (uint8_t)o->ilen;
        memcpy(k->ident, o->ident, o->ilen);
        if (!k->next)
            pool_cancel_ahead(b, job->worker, job);
        job->x->canceller = k;
        break;
    }
    case JOB_RUNNING:
        r.outcome = wire_str("killing");
        r.pid = job->worker->pid;
        send_client(b, o->ident, o->ilen, o->delim, &r, NULL);
        pool_kill(b, job->worker, KILL_CANCEL);
        break;
    case JOB_DONE:
        r.outcome = wire_str("finished");
        r.state = job->final;
        send_client(b, o->ident, o->ilen, o->delim, &r, NULL);
        break;
    }
}

static void on_status(broker_t *b, const origin_t *o, const wire_hdr_t *h)
{
    job_t *job = find_job(b, h->id);
    wire_hdr_t r = {.cmd = WIRE_STATUS_REPLY, .id = h->id, .req = h->req, .has_req = h->has_req,
                    .state = WIRE_ST_UNKNOWN};
    if (job) {
        r.task = wire_str(job->task);
        r.attempts = job->attempts;
        if (job->phase == JOB_QUEUED || job->phase == JOB_AHEAD) {
            r.state = WIRE_ST_QUEUED;
            r.priority = job->prio;
            r.has_priority = true;
        } else if (job->phase == JOB_RUNNING) {
            r.state = WIRE_ST_RUNNING;
            r.pid = job->worker->pid;
        } else {
            r.state = job->final;
        }
    }
    send_client(b, o->ident, o->ilen, o->delim, &r, NULL);
}

/* fetch: the job's result — now if it is finished, when it finishes otherwise. */
static void on_fetch(broker_t *b, const origin_t *o, const wire_hdr_t *h)
{
    job_t *job = find_job(b, h->id);
    char msg[WIRE_TEXT_MAX];

    if (!job) {
        snprintf(msg, sizeof(msg),
                 "forqd has no job '%.*s': it was never submitted here, or finished longer ago "
                 "than forqd remembers (the last %ld jobs, %ld s, %ld bytes of results)",
                 (int)h->id.len, h->id.ptr, b->cfg->retain_count, b->cfg->retain_ms / 1000,
                 b->cfg->retain_bytes);
        wire_hdr_t r = {.cmd = WIRE_RESULT, .id = h->id, .state = WIRE_ST_UNKNOWN,
                        .code = wire_str("unknown_job"), .msg = wire_str(msg)};
        send_client(b, o->ident, o->ilen, o->delim, &r, NULL);
        return;
    }
    if (job->phase == JOB_DONE) {
        zmq_msg_t copy;
        bool has = zmq_msg_size(&job->msg) > 0;
        zmq_msg_init(&copy);
        if (has)
            zmq_msg_copy(&copy, &job->msg);
        send_raw(b, o->ident, o->ilen, o->delim, job->rhdr, job->rhdr_len, has ? &copy : NULL);
        zmq_msg_close(&copy);
        return;
    }
    /* the submitter gets the result anyway */
    if (o->ilen == job->client->ident_len && memcmp(o->ident, job->client->ident, o->ilen) == 0)
        return;
    size_t n = 0;
    for (watcher_t *w = job->x ? job->x->watchers : NULL; w; w = w->next, n++)
        if (w->ident_len == o->ilen && memcmp(w->ident, o->ident, o->ilen) == 0)
            return;
    if (n >= WATCHERS_MAX) {
        send_error(b, o->ident, o->ilen, o->delim, h, "too_many_watchers",
                   "this job already has 16 fetchers waiting; fetch it again once it is done");
        return;
    }
    watcher_t *w = xcalloc(1, sizeof(*w) + o->ilen);
    w->delim = o->delim;
    w->ident_len = (uint8_t)o->ilen;
    memcpy(w->ident, o->ident, o->ilen);
    w->next = extra(job)->watchers;
    job->x->watchers = w;
}

static void pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
    msgpack_pack_uint64(pk, v);
}

static void pack_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
}

static void pack_strs(msgpack_packer *pk, char **v, size_t n)
{
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_str(pk, strlen(v[i]));
        msgpack_pack_str_body(pk, v[i], strlen(v[i]));
    }
}

static void rate_update(broker_t *b, uint64_t now_us);

/* A worker's resident memory in KiB, 0 if unknown. */
static uint64_t rss_kib(pid_t pid)
{
    char path[64];
    unsigned long size = 0, resident = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    if (!(f = fopen(path, "r")))
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
}

/* "worker_list": each worker's pid, state, running job, jobs done, jobs sent ahead, RSS. */
static void pack_worker_list(broker_t *b, msgpack_packer *pk)
{
    static const char *const states[] = {"starting", "idle", "busy", "retiring"};
    worker_t *w, *wt;

    pack_key(pk, "worker_list");
    msgpack_pack_array(pk, HASH_COUNT(b->worker_tab));
    HASH_ITER(hh, b->worker_tab, w, wt)
    {
        const char *st = w->kill != KILL_NONE ? "killed" : states[w->state];
        msgpack_pack_map(pk, 6);
        pack_kv_u64(pk, "pid", (uint64_t)w->pid);
        pack_key(pk, "state");
        msgpack_pack_str(pk, strlen(st));
        msgpack_pack_str_body(pk, st, strlen(st));
        pack_key(pk, "job");
        if (w->job) {
            msgpack_pack_str(pk, w->job->id_len);
            msgpack_pack_str_body(pk, w->job->id, w->job->id_len);
        } else {
            msgpack_pack_nil(pk);
        }
        pack_kv_u64(pk, "jobs_done", w->jobs_done);
        pack_kv_u64(pk, "ahead", w->n_ahead);
        pack_kv_u64(pk, "rss_kib", rss_kib(w->pid));
    }
}

static void on_stats(broker_t *b, const origin_t *o, const wire_hdr_t *h)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    zmq_msg_t payload;
    size_t idle = 0, busy = 0, ntasks = 0, backlog = 0;
    worker_t *w, *wt;
    task_name_t *t, *tt;
    client_t *cl;

    HASH_ITER(hh, b->worker_tab, w, wt)
    {
        idle += w->state == W_IDLE;
        busy += w->state == W_BUSY;
    }
    HASH_ITER(hh, b->tasks, t, tt)
        ntasks += t->present;
    DL_FOREACH2(b->backlogged, cl, bl_next)
        backlog += cl->backlog_n;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rate_update(b, now_us());
    msgpack_pack_map(&pk, 36 + 6); /* + dict_pack_stats() */
    pack_key(&pk, "version");
    msgpack_pack_str(&pk, strlen(FORQ_VERSION));
    msgpack_pack_str_body(&pk, FORQ_VERSION, strlen(FORQ_VERSION));
    pack_kv_u64(&pk, "pid", (uint64_t)getpid());
    pack_kv_u64(&pk, "forkserver_pid", (uint64_t)b->fs_pid);
    pack_kv_u64(&pk, "uptime_ms", now_ms() - b->started_ms);
    pack_kv_u64(&pk, "workers", (uint64_t)b->cfg->workers);
    pack_kv_u64(&pk, "workers_live", HASH_COUNT(b->worker_tab));
    pack_kv_u64(&pk, "workers_idle", idle);
    pack_kv_u64(&pk, "workers_busy", busy);
    pack_kv_u64(&pk, "queued", b->sched.total);
    pack_key(&pk, "queued_by_priority");
    msgpack_pack_array(&pk, SCHED_NPRIO);
    for (unsigned p = 0; p < SCHED_NPRIO; p++)
        msgpack_pack_uint64(&pk, b->sched.len[p]);
    pack_kv_u64(&pk, "running", b->running);
    pack_kv_u64(&pk, "ahead", b->ahead);
    pack_kv_u64(&pk, "clients", HASH_COUNT(b->client_tab));
    pack_kv_u64(&pk, "backlog", backlog);
    pack_kv_u64(&pk, "retained", b->n_done);
    pack_kv_u64(&pk, "retained_bytes", b->retained_bytes);
    pack_kv_u64(&pk, "submitted", b->st.submitted);
    pack_kv_u64(&pk, "ok", b->st.ok);
    pack_kv_u64(&pk, "error", b->st.error);
    pack_kv_u64(&pk, "cancelled", b->st.cancelled);
    pack_kv_u64(&pk, "timeout", b->st.timeout);
    pack_kv_u64(&pk, "crashed", b->st.crashed);
    pack_kv_u64(&pk, "rejected", b->st.rejected);
    pack_kv_u64(&pk, "lost", b->st.lost);
    pack_kv_u64(&pk, "retried", b->st.retried);
    pack_kv_u64(&pk, "undeliverable", b->st.undeliverable);
    pack_kv_u64(&pk, "malformed", b->st.malformed);
    pack_kv_u64(&pk, "workers_started", b->st.workers_started);
    pack_kv_u64(&pk, "worker_crashes", b->st.worker_crashes);
    pack_kv_u64(&pk, "last_replace_us", b->st.last_replace_us);
    pack_kv_u64(&pk, "sent_ahead", b->st.sent_ahead);
    pack_key(&pk, "jobs_per_s");
    msgpack_pack_double(&pk, b->rate);
    pack_worker_list(b, &pk);
    pack_key(&pk, "endpoints");
    pack_strs(&pk, b->cfg->listen.items, b->cfg->listen.n);
    pack_key(&pk, "tasks");
    msgpack_pack_array(&pk, ntasks);
    HASH_ITER(hh, b->tasks, t, tt)
    {
        if (!t->present)
            continue;
        msgpack_pack_str(&pk, strlen(t->name));
        msgpack_pack_str_body(&pk, t->name, strlen(t->name));
    }
    pack_key(&pk, "exec_allowed");
    pack_strs(&pk, b->cfg->exec_allow.items, b->cfg->exec_allow.n);
    dict_pack_stats(b, &pk);

    zmq_msg_init_size(&payload, sb.size);
    memcpy(zmq_msg_data(&payload), sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    wire_hdr_t r = {.cmd = WIRE_STATS_REPLY, .req = h->req, .has_req = h->has_req};
    send_client(b, o->ident, o->ilen, o->delim, &r, &payload);
}

static void close_frames(zmq_msg_t *f, int n)
{
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

/* Read one multipart message into f (extra frames are read and dropped). Returns the number of
 * frames kept, -1 if there was none, or -2 - kept when frames were dropped. */
static int recv_multipart(void *sock, zmq_msg_t *f, int max)
{
    int n = 0, more = 1;
    size_t ml = sizeof(more);
    bool extra = false;

    zmq_msg_init(&f[0]);
    if (zmq_msg_recv(&f[0], sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f[0]);
        return -1;
    }
    n = 1;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
        if (n < max) {
            zmq_msg_init(&f[n]);
            zmq_msg_recv(&f[n], sock, 0);
            n++;
        } else {
            zmq_msg_t junk;
            zmq_msg_init(&junk);
            zmq_msg_recv(&junk, sock, 0);
            zmq_msg_close(&junk);
            extra = true;
        }
    }
    return extra ? -2 - n : n;
}

static bool client_input(broker_t *b)
{
    zmq_msg_t f[MAX_FRAMES];
    int n = recv_multipart(b->clients, f, MAX_FRAMES), first = 1;
    bool too_many = false;
    origin_t o = {0};
    wire_hdr_t h;
    wire_err_t err;

    if (n == -1)
        return false;
    if (n < -1) {
        n = -2 - n;
        too_many = true;
    }
    o.ident = zmq_msg_data(&f[0]);
    o.ilen = zmq_msg_size(&f[0]);
    o.delim = n > 1 && zmq_msg_size(&f[1]) == 0;
    if (o.delim)
        first = 2;
    if (first >= n) {
        send_error(b, o.ident, o.ilen, o.delim, NULL, "bad_frames",
                   "message has no header frame");
        goto out;
    }
    msgpack_zone_clear(&b->zone);
    if (wire_hdr_decode(zmq_msg_data(&f[first]), zmq_msg_size(&f[first]), &b->zone, &h, &err) <
        0) {
        send_error(b, o.ident, o.ilen, o.delim, &h, err.code, err.msg);
        goto out;
    }
    int payloads = n - first - 1 + (too_many ? 1 : 0);
    switch (h.cmd) {
    case WIRE_SUBMIT:
        if (payloads != 1) {
            send_error(b, o.ident, o.ilen, o.delim, &h, "bad_frames",
                       "submit takes exactly one args frame after the header");
            break;
        }
        on_submit(b, &o, &h, &f[first + 1]);
        break;
    case WIRE_DICT:
        if (payloads > 1) {
            send_error(b, o.ident, o.ilen, o.delim, &h, "bad_frames",
                       "dict takes at most one value frame after the header");
            break;
        }
        dict_on_request(b, &o, &h, payloads ? &f[first + 1] : NULL);
        break;
    case WIRE_CANCEL:
    case WIRE_STATUS:
    case WIRE_STATS:
    case WIRE_PING:
    case WIRE_FETCH:
        if (payloads != 0) {
            send_error(b, o.ident, o.ilen, o.delim, &h, "bad_frames",
                       "this command takes no frame after the header");
            break;
        }
        if (h.cmd == WIRE_CANCEL)
            on_cancel(b, &o, &h);
        else if (h.cmd == WIRE_STATUS)
            on_status(b, &o, &h);
        else if (h.cmd == WIRE_STATS)
            on_stats(b, &o, &h);
        else if (h.cmd == WIRE_FETCH)
            on_fetch(b, &o, &h);
        else {
            wire_hdr_t r = {.cmd = WIRE_PONG, .req = h.req, .has_req = h.has_req,
                            .pid = getpid(), .msg = wire_str("forqd " FORQ_VERSION)};
            send_client(b, o.ident, o.ilen, o.delim, &r, NULL);
        }
        break;
    default: {
        char msg[96];
        snprintf(msg, sizeof(msg), "'%s' is not a command a client may send",
                 wire_cmd_name(h.cmd));
        send_error(b, o.ident, o.ilen, o.delim, &h, "unknown_command", msg);
    }
    }
out:
    close_frames(f, n);
    return true;
}

/* ---- signals, timers, shutdown ---- */

static void start_drain(broker_t *b)
{
    sched_item_t *it;
    size_t cancelled = 0;

    if (b->draining) {
        log_notice("second stop signal: cancelling running jobs now");
        b->drain_deadline = now_ms();
        return;
    }
    b->draining = true;
    b->drain_deadline = now_ms() + (uint64_t)b->cfg->grace_ms;
    notify_stopping();
    while ((it = sched_pop(&b->sched))) {
        job_t *job = container_of(it, job_t, item);
        wire_hdr_t x = {.code = wire_str("shutting_down"),
                        .msg = wire_str("forqd is shutting down; the job never started")};
        broker_finish(b, job, WIRE_ST_CANCELLED, &x, NULL);
        cancelled++;
    }
    log_notice("stopping: %zu queued job(s) cancelled, %zu running job(s) get %ld s to finish",
               cancelled, b->running, b->cfg->grace_ms / 1000);
}

static void drain_check(broker_t *b, uint64_t now)
{
    if (!b->draining)
        return;
    if (b->running == 0 && b->ahead == 0) {
        b->stop = true;
        return;
    }
    if (!b->drain_killed && now >= b->drain_deadline) {
        worker_t *w, *tmp;
        log_notice("grace time over: cancelling %zu running job(s)", b->running);
        HASH_ITER(hh, b->worker_tab, w, tmp)
            if (w->job)
                pool_kill(b, w, KILL_SHUTDOWN);
        b->drain_killed = true;
        b->drain_deadline = now + 5000;
    } else if (b->drain_killed && now >= b->drain_deadline) {
        /* the forkserver did not report the kills: answer the jobs anyway */
        worker_t *w, *tmp;
        HASH_ITER(hh, b->worker_tab, w, tmp)
        {
            wire_hdr_t x = {.msg = wire_str("forqd stopped before its worker reported")};
            if (w->job)
                broker_finish(b, w->job, WIRE_ST_LOST, &x, NULL);
            while (w->ahead)
                broker_finish(b, w->ahead, WIRE_ST_LOST, &x, NULL);
        }
        b->stop = true;
    }
}

static void on_signals(broker_t *b)
{
    struct signalfd_siginfo si;

    while (read(b->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGTERM:
        case SIGINT:
            start_drain(b);
            break;
        case SIGCHLD:
            pool_reap(b);
            break;
        case SIGHUP:
            pool_reload(b);
            break;
        }
    }
}

static void fire_timers(broker_t *b, uint64_t now)
{
    timer_node_t *t;

    while ((t = timers_peek(&b->timers)) && t->at <= now) {
        if (t->kind == TIMER_DICT_WAIT) {
            dict_on_timer(b, t); /* disarms it */
            continue;
        }
        job_t *job = container_of(t, job_t, timer);
        timers_del(&b->timers, t);
        if (job->phase == JOB_QUEUED) {
            char msg[128];
            snprintf(msg, sizeof(msg), "its queue deadline passed before a worker was free");
            wire_hdr_t x = {.code = wire_str("deadline"), .msg = wire_str(msg)};
            broker_finish(b, job, WIRE_ST_TIMEOUT, &x, NULL);
        } else if (job->phase == JOB_RUNNING) {
            pool_kill(b, job->worker, KILL_TIMEOUT);
        }
    }
}

/* Jobs finished since start, whatever their end. */
static uint64_t finished(const broker_t *b)
{
    return b->st.ok + b->st.error + b->st.cancelled + b->st.timeout + b->st.crashed + b->st.lost;
}

void broker_status_line(broker_t *b, char *buf, size_t size)
{
    size_t busy = 0;
    worker_t *w, *tmp;

    HASH_ITER(hh, b->worker_tab, w, tmp)
        busy += w->state == W_BUSY;
    snprintf(buf, size, "%zu/%ld workers busy, %zu queued, %.0f jobs/s", busy, b->cfg->workers,
             b->sched.total, b->rate);
}

/* jobs/s over about the last 10 s: an exponentially decaying average of finished jobs */
#define RATE_TAU_S 10.0

static void rate_update(broker_t *b, uint64_t now)
{
    double dt = (double)(now - b->rate_at_us) / 1e6; /* now: in us */
    uint64_t done = finished(b);

    if (b->rate_at_us == 0) {
        b->rate_at_us = now;
        b->rate_count = done;
        return;
    }
    if (dt < 0.05)
        return;
    double decay = exp(-dt / RATE_TAU_S);
    /* the jobs of the interval, spread evenly over it, into the average */
    b->rate = b->rate * decay + (double)(done - b->rate_count) / dt * (1.0 - decay);
    b->rate_at_us = now;
    b->rate_count = done;
}

/* The service manager's view: READY=1 once the endpoints are bound and the pool is up, then a
 * STATUS line every second; the watchdog ping. */
static void service_tick(broker_t *b, uint64_t now)
{
    char status[160];

    notify_tick(now);
    rate_update(b, now * 1000);
    if (!b->notify || (b->notified_ready && now < b->status_at) || b->draining)
        return;
    if (!b->notified_ready) { /* READY waits for the whole pool */
        size_t ready = 0;
        worker_t *w, *tmp;
        HASH_ITER(hh, b->worker_tab, w, tmp)
            ready += w->ready && w->kill == KILL_NONE;
        if (ready < (size_t)b->cfg->workers)
            return;
    }
    broker_status_line(b, status, sizeof(status));
    if (!b->notified_ready)
        notify_ready(status);
    else
        notify_status(status);
    b->notified_ready = true;
    b->status_at = now + 1000;
}

static int next_timeout(broker_t *b, uint64_t now)
{
    uint64_t at = notify_next();
    timer_node_t *t = timers_peek(&b->timers);

    if (t && t->at < at)
        at = t->at;
    if (b->notify && b->notified_ready && !b->draining && b->status_at < at)
        at = b->status_at;
    if (b->backlogged && now + BACKLOG_MS < at)
        at = now + BACKLOG_MS;
    if (b->draining && b->drain_deadline < at)
        at = b->drain_deadline;
    if (!b->fs_pid && b->fs_restart_at < at)
        at = b->fs_restart_at;
    if (b->spawn_at > now && b->spawn_at < at)
        at = b->spawn_at;
    if (b->done && b->done->finished_ms + (uint64_t)b->cfg->retain_ms < at)
        at = b->done->finished_ms + (uint64_t)b->cfg->retain_ms;
    if (b->dict_log && now + 1000 < at)
        at = now + 1000; /* the dict log's fsync every second, and compaction */
    if (at == UINT64_MAX)
        return -1;
    return at <= now ? 0 : (int)(at - now > 60000 ? 60000 : at - now);
}

/* ---- set-up and tear-down ---- */

/* Refuse to steal the ipc endpoint of a forqd that is alive: zmq would unlink its socket. */
static int ipc_in_use(const char *ep)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const char *path = ep + 6;
    int fd, r;

    if (strncmp(ep, "ipc://", 6) != 0 || strlen(path) >= sizeof(sa.sun_path))
        return 0;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    return r == 0;
}

static int bind_all(broker_t *b)
{
    const config_t *cfg = b->cfg;
    int one = 1, hwm = (int)cfg->client_hwm, rcvhwm = 100000, linger = 2000;
    int64_t maxmsg = cfg->max_payload + WIRE_HEADER_MAX;

    b->clients = zmq_socket(b->zctx, ZMQ_ROUTER);
    zmq_setsockopt(b->clients, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
    zmq_setsockopt(b->clients, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(b->clients, ZMQ_RCVHWM, &rcvhwm, sizeof(rcvhwm));
    zmq_setsockopt(b->clients, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
    zmq_setsockopt(b->clients, ZMQ_LINGER, &linger, sizeof(linger));
    for (size_t i = 0; i < cfg->listen.n; i++) {
        const char *ep = cfg->listen.items[i];
        if (ipc_in_use(ep)) {
            fprintf(stderr, "forqd: %s is in use by a running forqd; stop it or choose another "
                            "endpoint with --listen\n", ep);
            return -EADDRINUSE;
        }
        if (zmq_bind(b->clients, ep) < 0) {
            fprintf(stderr, "forqd: cannot listen on %s: %s\n", ep, zmq_strerror(errno));
            return -errno;
        }
    }
    return 0;
}

static bool listed(const strv_t *v, const char *s)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->items[i], s) == 0)
            return true;
    return false;
}

int broker_rebind(broker_t *b, const config_t *next)
{
    const strv_t *old = &b->cfg->listen, *now = &next->listen;
    size_t bound = 0;
    int r = 0;

    for (; bound < now->n; bound++) {
        const char *ep = now->items[bound];
        if (listed(old, ep))
            continue;
        if (ipc_in_use(ep) || zmq_bind(b->clients, ep) < 0) {
            r = errno ? -errno : -EADDRINUSE;
            log_error("reload: cannot listen on %s: %s", ep,
                      ipc_in_use(ep) ? "another forqd uses it" : zmq_strerror(errno));
            break;
        }
        log_notice("reload: now listening on %s too", ep);
    }
    if (r < 0) { /* undo: the old configuration stays whole */
        for (size_t i = 0; i < bound; i++)
            if (!listed(old, now->items[i]))
                zmq_unbind(b->clients, now->items[i]);
        return r;
    }
    for (size_t i = 0; i < old->n; i++) {
        if (!listed(now, old->items[i])) {
            zmq_unbind(b->clients, old->items[i]);
            log_notice("reload: no longer listening on %s", old->items[i]);
        }
    }
    return 0;
}

static void teardown(broker_t *b)
{
    job_t *job;
    client_t *c, *ct;
    task_name_t *t, *tt;
    uint64_t until = now_ms() + 2000;

    /* give undelivered results a last chance */
    while (b->backlogged && now_ms() < until) {
        flush_backlog(b);
        if (b->backlogged)
            usleep(BACKLOG_MS * 1000);
    }
    pool_shutdown(b);
    dict_service_done(b);
    for (size_t i = 0; i < b->jobs.cap; i++)
        if ((job = jobtab_at(&b->jobs, i)))
            job_free(job);
    jobtab_free(&b->jobs);
    HASH_ITER(hh, b->client_tab, c, ct)
    {
        while (c->backlog) {
            outmsg_t *m = c->backlog;
            c->backlog = m->next;
            zmq_msg_close(&m->hdr);
            zmq_msg_close(&m->payload);
            free(m);
        }
        HASH_DEL(b->client_tab, c);
        free(c);
    }
    HASH_ITER(hh, b->tasks, t, tt)
    {
        HASH_DEL(b->tasks, t);
        free(t);
    }
    timers_done(&b->timers);
    msgpack_zone_destroy(&b->zone);
    msgpack_sbuffer_destroy(&b->hbuf);
    if (b->clients)
        zmq_close(b->clients);
    if (b->zctx)
        zmq_ctx_term(b->zctx);
    if (b->sigfd >= 0)
        close(b->sigfd);
}

int broker_run(const config_t *cfg, pid_t fs_pid, int fs_fd)
{
    broker_t b = {.cfg = cfg, .fs_fd = fs_fd, .fs_pid = fs_pid, .sigfd = -1,
                  .next_fs = {0, -1}};
    zmq_pollitem_t *items = NULL; /* clients, signals, forkserver, then the workers' links */
    pid_t *pids = NULL;
    size_t n_items = 0;
    sigset_t mask;
    int status = 1;

    msgpack_zone_init(&b.zone, 4096);
    msgpack_sbuffer_init(&b.hbuf);
    sched_init(&b.sched);
    b.started_ms = now_ms();
    b.notify = notify_init();
    for (int i = 0; i < OLD_FS_MAX; i++)
        b.old_fs[i] = (fsrv_t){0, -1};
    if (dict_service_init(&b) < 0)
        goto out;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    b.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (b.sigfd < 0) {
        fprintf(stderr, "forqd: cannot create a signalfd: %s\n", strerror(errno));
        goto out;
    }
    if (pool_wait_hello(&b, 30000) < 0)
        goto out;
    b.zctx = zmq_ctx_new();
    if (!b.zctx || bind_all(&b) < 0)
        goto out;
    log_notice("forqd %s ready: %ld workers, listening on %s%s", FORQ_VERSION, cfg->workers,
               cfg->listen.items[0], cfg->listen.n > 1 ? " and more" : "");

    for (;;) {
        uint64_t now = now_ms();
        fire_timers(&b, now);
        if (b.backlogged)
            flush_backlog(&b);
        pool_maintain(&b, now);
        service_tick(&b, now);
        prune(&b, now);
        dict_tick(&b, now);
        drain_check(&b, now);
        if (b.stop)
            break;
        pool_flush(&b); /* what this iteration sent to workers, a write each */
        size_t cap = 3 + 1 + OLD_FS_MAX + pool_count(&b);
        if (cap > n_items) {
            n_items = cap + 16;
            items = xrealloc(items, n_items * sizeof(*items));
            pids = xrealloc(pids, n_items * sizeof(*pids));
        }
        int roles[1 + OLD_FS_MAX];
        items[0] = (zmq_pollitem_t){b.clients, 0, ZMQ_POLLIN, 0};
        items[1] = (zmq_pollitem_t){NULL, b.sigfd, ZMQ_POLLIN, 0};
        items[2] = (zmq_pollitem_t){NULL, b.fs_fd, b.fs_fd >= 0 ? ZMQ_POLLIN : 0, 0};
        size_t nf = pool_fs_items(&b, items + 3, roles);
        size_t nw = pool_poll_items(&b, items + 3 + nf, pids, n_items - 3 - nf);
        if (zmq_poll(items, (int)(3 + nf + nw), next_timeout(&b, now)) < 0 && errno != EINTR) {
            log_error("zmq_poll failed: %s", zmq_strerror(errno));
            break;
        }
        /* workers first: their records stay valid until the forkserver reports them gone */
        for (size_t i = 0; i < nw; i++)
            if (items[3 + nf + i].revents)
                pool_worker_io(&b, pids[i], items[3 + nf + i].revents);
        for (size_t i = 0; i < nf; i++)
            if (items[3 + i].revents)
                pool_fs_extra_input(&b, roles[i]);
        if (items[1].revents)
            on_signals(&b);
        if (items[2].revents)
            pool_fs_input(&b);
        if (items[0].revents)
            for (int i = 0; i < BROKER_BATCH && client_input(&b); i++)
                ;
    }
    free(items);
    free(pids);
    free(b.dirty);
    if (b.cfg_owned) {
        config_done(b.cfg_owned);
        free(b.cfg_owned);
    }
    log_notice("stopped: %llu jobs submitted, %llu ok, %llu failed otherwise",
               (unsigned long long)b.st.submitted, (unsigned long long)b.st.ok,
               (unsigned long long)(b.st.error + b.st.cancelled + b.st.timeout + b.st.crashed +
                                    b.st.lost));
    status = 0;
out:
    teardown(&b);
    return status;
}
