/* pool.c - the worker processes: the forkserver channels, worker records and their links
 * (wlink.h), spawning, killing, reaping and replacing. See pool.h.
 *
 * A worker is asked for with SPAWN; the forkserver answers SPAWNED(pid) with the broker's end of
 * the worker's link; the worker says READY on it. Messages to workers are queued and written at
 * the end of each loop turn, many to a write; writes never block: what a link cannot take
 * waits until it is writable. A worker that ends — by its task's crash, by our kill for a
 * cancel or a timeout, by recycling — is reported by the forkserver with its wait status, which
 * is how a crash becomes a precise result (jobs_worker_lost), and a replacement is asked for at
 * once. Workers being killed or retiring no longer count towards the pool size, so their
 * replacements start in parallel.
 *
 * After a reload the previous forkservers stay (up to OLD_FS_MAX) while their workers finish
 * the jobs they run; each goes when its last worker has gone. */
#define _GNU_SOURCE
#include "pool.h"

#include "access.h"
#include "forkserver.h"
#include "jobs.h"
#include "linkq.h"
#include "log.h"
#include "nodelink.h"
#include "outbox.h"
#include "reload.h"
#include "tasks.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utlist.h>

#define OLD_FS_MAX 4 /* replaced forkservers whose workers still finish jobs */

/* A forkserver: the current one, or one a reload replaced. */
typedef struct {
    pool_t *pool;
    pid_t pid;     /* 0 = none */
    int fd;        /* its channel, -1 = none */
    loop_io_t *io; /* the channel's registration */
} fsrv_t;

struct pool {
    broker_t *b;
    fsrv_t fs;                 /* the current forkserver */
    bool fs_ready;             /* it said HELLO */
    unsigned fs_failures;      /* forkservers that died in a row */
    uint64_t fs_restart_at;    /* when to start the next one (ms) */
    fsrv_t old_fs[OLD_FS_MAX]; /* forkservers a reload replaced, while workers of theirs run */
    worker_t *tab;             /* workers, by pid */
    worker_t *idle;            /* IDLE workers, most recently used first */
    size_t spawn_pending;      /* SPAWNs sent without SPAWNED or SPAWN_ERR */
    unsigned spawn_failures;   /* workers that died before READY, in a row */
    uint64_t spawn_at;         /* no spawn before this (ms): crash-loop backoff */
    uint64_t replace_from_us;  /* when a crashed worker's exit was seen, 0 = none pending */
    pid_t *dirty;              /* workers with messages queued this turn */
    size_t n_dirty, cap_dirty;
    msgpack_zone zone; /* scratch for decoding workers' headers */
};

static void free_base(void *data, void *hint)
{
    (void)data;
    free(hint);
}

/* ---- records ---- */

worker_t *pool_worker(pool_t *pool, pid_t pid)
{
    worker_t *w;
    HASH_FIND_INT(pool->tab, &pid, w);
    return w;
}

worker_t *pool_workers(pool_t *pool)
{
    return pool->tab;
}

pid_t pool_forkserver(const pool_t *pool)
{
    return pool->fs.pid;
}

size_t pool_count(const pool_t *pool)
{
    return HASH_COUNT(pool->tab);
}

size_t pool_busy(const pool_t *pool)
{
    size_t n = 0;
    for (const worker_t *w = pool->tab; w; w = w->hh.next)
        n += w->state == W_BUSY;
    return n;
}

size_t pool_ready(const pool_t *pool)
{
    size_t n = 0;
    for (const worker_t *w = pool->tab; w; w = w->hh.next)
        n += w->ready && w->kill == KILL_NONE;
    return n;
}

static void worker_io(void *ud, short revents);

static worker_t *worker_new(pool_t *pool, pid_t pid, int fd)
{
    worker_t *w = xcalloc(1, sizeof(*w));

    w->pool = pool;
    w->pid = pid;
    w->fs_pid = pool->fs.pid;
    w->state = W_STARTING;
    w->spawn_us = now_us();
    if (wlink_init(&w->link, fd, (size_t)pool->b->cfg->max_payload + WIRE_HEADER_MAX) < 0) {
        log_error("out of memory for worker %d's link; it will be replaced", (int)pid);
        wlink_done(&w->link);
    } else {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        w->io = loop_io_add(pool->b->loop, NULL, fd, ZMQ_POLLIN, ORDER_WORKER, worker_io, w);
    }
    HASH_ADD_INT(pool->tab, pid, w);
    return w;
}

static void link_close(pool_t *pool, worker_t *w)
{
    linkq_clear(&w->outq);
    loop_io_del(pool->b->loop, w->io);
    w->io = NULL;
    wlink_done(&w->link);
}

static void worker_forget(pool_t *pool, worker_t *w)
{
    if (w->state == W_IDLE)
        DL_DELETE2(pool->idle, w, idle_prev, idle_next);
    link_close(pool, w);
    HASH_DEL(pool->tab, w);
    free(w);
}

static void set_idle(pool_t *pool, worker_t *w)
{
    w->state = W_IDLE;
    DL_PREPEND2(pool->idle, w, idle_prev, idle_next); /* most recently used first: warm caches */
}

worker_t *pool_take_idle(pool_t *pool)
{
    worker_t *w = pool->idle;
    if (w) {
        DL_DELETE2(pool->idle, w, idle_prev, idle_next);
        w->state = W_BUSY;
    }
    return w;
}

worker_t *pool_ahead_slot(pool_t *pool)
{
    worker_t *w, *tmp, *best = NULL;
    long limit = pool->b->cfg->prefetch, max_jobs = pool->b->cfg->max_jobs_per_worker;

    HASH_ITER(hh, pool->tab, w, tmp)
    {
        if (w->state != W_BUSY || !w->job || w->kill != KILL_NONE || w->link.fd < 0 ||
            w->fs_pid != pool->fs.pid || (long)w->n_ahead >= limit ||
            (max_jobs > 0 && (long)(w->jobs_done + 1 + w->n_ahead) >= max_jobs))
            continue;
        if (!best || w->n_ahead < best->n_ahead)
            best = w;
    }
    return best;
}

/* Is the worker one of a forkserver a reload replaced? */
static bool outdated(const pool_t *pool, const worker_t *w)
{
    return w->fs_pid != pool->fs.pid;
}

/* The channel of the forkserver that forked a worker, -1 if gone. */
static int fs_fd_of(const pool_t *pool, pid_t fs)
{
    if (fs == pool->fs.pid)
        return pool->fs.fd;
    for (int i = 0; i < OLD_FS_MAX; i++)
        if (pool->old_fs[i].pid == fs)
            return pool->old_fs[i].fd;
    return -1;
}

void pool_kill(pool_t *pool, worker_t *w, kill_reason_t why)
{
    int fd = fs_fd_of(pool, w->fs_pid);

    if (w->kill != KILL_NONE || fd < 0)
        return;
    w->kill = why;
    w->kill_seq = w->job ? w->job->seq : 0;
    forkserver_send(fd, FS_KILL, w->pid, SIGKILL, NULL, 0);
}

/* A worker of a replaced forkserver with nothing left to run goes. */
static void retire_if_outdated(pool_t *pool, worker_t *w)
{
    if (!outdated(pool, w) || w->job || w->ahead)
        return;
    if (w->state == W_IDLE)
        DL_DELETE2(pool->idle, w, idle_prev, idle_next);
    w->state = W_RETIRING;
    pool_kill(pool, w, KILL_RETIRE);
}

/* ---- links ---- */

/* The link failed: it is closed; the worker's exit report will tell the rest. */
static void link_failed(pool_t *pool, worker_t *w, const char *why)
{
    log_warn("the link to worker %d failed (%s); its exit report follows", (int)w->pid, why);
    link_close(pool, w);
}

/* Write what the link takes of its queue. */
static void link_flush(pool_t *pool, worker_t *w)
{
    int r = w->link.fd >= 0 ? linkq_flush(&w->outq, w->link.fd) : 0;

    if (r < 0)
        link_failed(pool, w, strerror(-r));
    if (w->io)
        loop_io_events(w->io, ZMQ_POLLIN | (linkq_is_empty(&w->outq) ? 0 : ZMQ_POLLOUT));
}

int pool_send(pool_t *pool, worker_t *w, const void *hdr, size_t hlen, zmq_msg_t *payload)
{
    if (w->link.fd < 0 || hlen > WIRE_HEADER_MAX) {
        if (payload)
            zmq_msg_close(payload);
        return -EPIPE;
    }
    /* queued, and written with the others at the end of the loop turn */
    linkq_push(&w->outq, hdr, hlen, payload);
    if (payload)
        zmq_msg_close(payload);
    if (!w->dirty) {
        w->dirty = true;
        if (pool->n_dirty == pool->cap_dirty) {
            pool->cap_dirty = pool->cap_dirty ? 2 * pool->cap_dirty : 16;
            pool->dirty = xrealloc(pool->dirty, pool->cap_dirty * sizeof(*pool->dirty));
        }
        pool->dirty[pool->n_dirty++] = w->pid;
    }
    return 0;
}

/* The last tick of a turn: write what the turn queued for workers, a write per link. */
static uint64_t flush_tick(void *ud, uint64_t now)
{
    pool_t *pool = ud;

    (void)now;
    for (size_t i = 0; i < pool->n_dirty; i++) {
        worker_t *w = pool_worker(pool, pool->dirty[i]);
        if (w) {
            w->dirty = false;
            link_flush(pool, w);
        }
    }
    pool->n_dirty = 0;
    return LOOP_NEVER;
}

bool pool_send_job(pool_t *pool, worker_t *w, job_t *job)
{
    wire_hdr_t h = {.cmd = WIRE_JOB,
                    .id = {job->id, job->id_len},
                    .task = wire_str(job->task),
                    .max_result = job->max_result,
                    .as_bytes = job->as_bytes,
                    .cpu_s = job->cpu_s,
                    .attempts = job->attempts,
                    .chunk = job->chunk};
    const msgpack_sbuffer *e = outbox_encode(pool->b->out, &h);
    zmq_msg_t args;

    zmq_msg_init(&args);
    zmq_msg_copy(&args, &job->msg); /* reference-counted: no copy of the bytes */
    if (!e || pool_send(pool, w, e->data, e->size, &args) < 0) {
        if (!e)
            zmq_msg_close(&args);
        log_warn("worker %d is unreachable; job %s goes back to the queue", (int)w->pid, job->id);
        w->state = W_RETIRING;
        return false;
    }
    log_debug("job %s (%s) %s worker %d", job->id, job->task,
              job->phase == JOB_AHEAD ? "sent ahead to" : "started on", (int)w->pid);
    return true;
}

void pool_cancel_ahead(pool_t *pool, worker_t *w, job_t *job)
{
    wire_hdr_t h = {.cmd = WIRE_CANCEL, .id = {job->id, job->id_len}};
    const msgpack_sbuffer *e = outbox_encode(pool->b->out, &h);

    if (e) /* a dead link: its exit report answers */
        pool_send(pool, w, e->data, e->size, NULL);
}

/* ---- what workers say ---- */

static void on_ready(pool_t *pool, worker_t *w)
{
    if (w->ready)
        return;
    w->ready = true;
    pool->spawn_failures = 0;
    pool->spawn_at = 0;
    if (pool->replace_from_us) {
        pool->b->st.last_replace_us = now_us() - pool->replace_from_us;
        pool->replace_from_us = 0;
    }
    log_debug("worker %d ready after %llu us", (int)w->pid,
              (unsigned long long)(now_us() - w->spawn_us));
    if (w->kill == KILL_NONE && !pool->b->draining && !outdated(pool, w))
        set_idle(pool, w);
    else if (w->kill == KILL_NONE && outdated(pool, w))
        retire_if_outdated(pool, w);
    else
        w->state = W_RETIRING;
}

static void on_done(pool_t *pool, worker_t *w, const wire_hdr_t *h, zmq_msg_t *payload)
{
    if (!jobs_worker_done(pool->b->jobs, w, h, payload))
        return; /* it runs the next job sent ahead, or the message named no job of its */
    if (w->kill != KILL_NONE || h->retire || pool->b->draining)
        w->state = W_RETIRING;
    else if (outdated(pool, w))
        retire_if_outdated(pool, w);
    else
        set_idle(pool, w);
}

/* One message from a worker. */
static void on_worker_msg(pool_t *pool, worker_t *w, wlink_msg_t *m)
{
    broker_t *b = pool->b;
    wire_hdr_t h;
    wire_err_t err;
    zmq_msg_t pm;

    msgpack_zone_clear(&pool->zone);
    if (wire_hdr_decode(m->hdr, m->hlen, &pool->zone, &h, &err) < 0) {
        log_warn("bad message from worker %d: %s", (int)w->pid, err.msg);
        free(m->base);
        return;
    }
    if (m->has_payload) {
        if (m->base) /* its own allocation: handed to ZeroMQ as it is */
            zmq_msg_init_data(&pm, m->payload, m->plen, free_base, m->base);
        else if (zmq_msg_init_size(&pm, m->plen) == 0)
            memcpy(zmq_msg_data(&pm), m->payload, m->plen);
        m->base = NULL;
    }
    if (h.cmd == WIRE_READY) {
        on_ready(pool, w);
    } else if (h.cmd == WIRE_DONE) {
        on_done(pool, w, &h, m->has_payload ? &pm : NULL);
    } else if (h.cmd == WIRE_DICT && b->nodelink &&
               nodelink_dict(b->nodelink, w, &h, m->has_payload ? &pm : NULL)) {
        /* a job the head sent: its task uses the head's dict service */
    } else if (h.cmd == WIRE_DICT && b->dict) {
        /* the running task uses the dict service */
        origin_t o = {.worker = w->pid, .who = w->job ? w->job->owner : ACCESS_NOBODY};
        if (commands_dict_allowed(b, &o, &h))
            b->dict->request(b->dict_ud, &o, &h, m->has_payload ? &pm : NULL);
    } else if (h.cmd == WIRE_PROGRESS) {
        jobs_worker_progress(b->jobs, w, &h);
    } else {
        log_warn("worker %d sent '%s', which workers may not send", (int)w->pid,
                 wire_cmd_name(h.cmd));
    }
    if (m->has_payload)
        zmq_msg_close(&pm);
    free(m->base);
}

/* Read and handle up to max_msgs messages that the link has now. */
static void link_read(pool_t *pool, worker_t *w, size_t max_msgs)
{
    for (size_t i = 0; i < max_msgs && w->link.fd >= 0; i++) {
        wlink_msg_t m;
        int r = wlink_recv(&w->link, 0, false, &m);
        if (r == 0)
            return;
        if (r < 0) {
            /* EPIPE: it closed its end; ECONNRESET: it died with our messages unread */
            if (r != -EPIPE && r != -ECONNRESET) {
                log_error("worker %d broke the worker protocol (%s); killing it", (int)w->pid,
                          strerror(-r));
                pool_kill(pool, w, KILL_NONE);
            }
            link_close(pool, w);
            return;
        }
        on_worker_msg(pool, w, &m);
    }
}

/* A worker's link is readable or writable. */
static void worker_io(void *ud, short revents)
{
    worker_t *w = ud;

    if (revents & ZMQ_POLLOUT)
        link_flush(w->pool, w);
    if (revents & (ZMQ_POLLIN | ZMQ_POLLERR))
        link_read(w->pool, w, BROKER_BATCH);
}

/* ---- forkservers ---- */

/* A forkserver a reload replaced goes once the last of its workers is gone. */
static void close_old_fs_if_done(pool_t *pool, pid_t fs)
{
    if (fs == pool->fs.pid)
        return;
    for (const worker_t *w = pool->tab; w; w = w->hh.next)
        if (w->fs_pid == fs)
            return;
    for (int i = 0; i < OLD_FS_MAX; i++) {
        fsrv_t *o = &pool->old_fs[i];
        if (o->pid == fs) {
            log_info("forkserver %d, replaced by a reload, has no workers left; it exits", (int)fs);
            loop_io_del(pool->b->loop, o->io);
            close(o->fd); /* it exits; pool_reap collects it */
            *o = (fsrv_t){pool, 0, -1, NULL};
        }
    }
}

static void on_exit_report(pool_t *pool, pid_t pid, int status)
{
    worker_t *w = pool_worker(pool, pid);
    char what[128];

    if (!w)
        return;
    /* it is gone, so everything it wrote is in the link: a DONE sent just before a planned
     * exit (recycling) is read before its job is judged */
    link_read(pool, w, SIZE_MAX);
    describe_wait_status(status, what, sizeof(what));
    if (w->job) {
        if (w->kill == KILL_NONE) {
            pool->b->st.worker_crashes++;
            pool->replace_from_us = now_us();
        }
    } else if (!w->ready && w->kill == KILL_NONE) {
        pool->spawn_failures++;
        log_warn("worker %d %s before it was ready", (int)pid, what);
    } else if (w->state != W_RETIRING && w->kill == KILL_NONE) {
        log_warn("idle worker %d %s", (int)pid, what);
    }
    jobs_worker_lost(pool->b->jobs, w, status, false);
    broker_worker_gone(pool->b, w->pid);
    pid_t fs = w->fs_pid;
    worker_forget(pool, w);
    close_old_fs_if_done(pool, fs);
}

/* The workers of forkserver fs died with it. */
static void workers_died_with(pool_t *pool, pid_t fs)
{
    worker_t *w, *tmp;

    HASH_ITER(hh, pool->tab, w, tmp)
    {
        if (w->fs_pid != fs)
            continue;
        jobs_worker_lost(pool->b->jobs, w, 0, true);
        broker_worker_gone(pool->b, w->pid);
        worker_forget(pool, w);
    }
}

static void forkserver_lost(pool_t *pool, const char *why)
{
    pid_t fs = pool->fs.pid;

    log_error("forkserver %d %s; its workers died with it; starting a new one", (int)fs, why);
    loop_io_del(pool->b->loop, pool->fs.io);
    if (pool->fs.fd >= 0)
        close(pool->fs.fd);
    pool->fs = (fsrv_t){pool, 0, -1, NULL};
    pool->fs_ready = false;
    pool->spawn_pending = 0;
    workers_died_with(pool, fs); /* a replaced forkserver's workers are still alive */
    pool->fs_failures++;
    pool->fs_restart_at =
        now_ms() +
        (pool->fs_failures > 1 ? 1000u << (pool->fs_failures > 5 ? 5 : pool->fs_failures) : 0);
}

static void learn_tasks(pool_t *pool, const forkserver_buf_t *u, size_t n)
{
    size_t count =
        tasks_learn(pool->b->tasks, forkserver_buf_text(u), n - sizeof(forkserver_msg_t));
    log_info("forkserver %d ready with %zu tasks", (int)pool->fs.pid, count);
}

/* The current forkserver's channel is readable. */
static void fs_input(void *ud, short revents)
{
    pool_t *pool = ud;
    forkserver_buf_t u;

    (void)revents;
    while (pool->fs.fd >= 0) {
        int fd;
        ssize_t n = forkserver_recv(pool->fs.fd, &u, sizeof(u), &fd);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            forkserver_lost(pool, "closed its channel");
            break;
        }
        switch (u.m.type) {
        case FS_HELLO:
            learn_tasks(pool, &u, (size_t)n);
            pool->fs_ready = true;
            pool->fs_failures = 0;
            break;
        case FS_FAILED:
            log_error("new forkserver failed: %.*s", (int)u.m.len, forkserver_buf_text(&u));
            break;
        case FS_SPAWNED:
            if (pool->spawn_pending)
                pool->spawn_pending--;
            if (fd < 0 || pool_worker(pool, u.m.pid)) {
                log_error("the forkserver reported worker %d without its link; killing it",
                          (int)u.m.pid);
                forkserver_send(pool->fs.fd, FS_KILL, u.m.pid, SIGKILL, NULL, 0);
                break;
            }
            worker_new(pool, u.m.pid, fd);
            fd = -1;
            pool->b->st.workers_started++;
            break;
        case FS_SPAWN_ERR:
            if (pool->spawn_pending)
                pool->spawn_pending--;
            pool->spawn_failures++;
            log_warn("the forkserver cannot fork a worker: %s", strerror(u.m.arg));
            break;
        case FS_EXITED:
            on_exit_report(pool, u.m.pid, u.m.arg);
            break;
        default:
            log_warn("unexpected message %u from the forkserver", u.m.type);
        }
        if (fd >= 0)
            close(fd);
    }
}

/* A replaced forkserver's channel is readable: exit reports of its workers, or its end. */
static void old_fs_input(void *ud, short revents)
{
    fsrv_t *o = ud;
    pool_t *pool = o->pool;
    forkserver_buf_t u;

    (void)revents;
    while (o->fd >= 0) {
        int passed;
        ssize_t n = forkserver_recv(o->fd, &u, sizeof(u), &passed);

        if (passed >= 0)
            close(passed); /* it forks no more workers */
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            /* it died: its workers died with it */
            pid_t fs = o->pid;
            loop_io_del(pool->b->loop, o->io);
            close(o->fd);
            *o = (fsrv_t){pool, 0, -1, NULL};
            workers_died_with(pool, fs);
            break;
        }
        if (u.m.type == FS_EXITED)
            on_exit_report(pool, u.m.pid, u.m.arg);
    }
}

static void watch_fs(pool_t *pool)
{
    pool->fs.io =
        loop_io_add(pool->b->loop, NULL, pool->fs.fd, ZMQ_POLLIN, ORDER_FS, fs_input, pool);
}

static fsrv_t *free_old_slot(pool_t *pool)
{
    for (int i = 0; i < OLD_FS_MAX; i++)
        if (pool->old_fs[i].pid == 0)
            return &pool->old_fs[i];
    return NULL;
}

bool pool_can_switch(pool_t *pool)
{
    return free_old_slot(pool) != NULL;
}

int pool_switch(pool_t *pool, pid_t fs_pid, int fs_fd, const char *names, size_t len)
{
    worker_t *w, *tmp;
    fsrv_t *o = free_old_slot(pool);

    if (!o)
        return -ENOSPC;
    /* the old forkserver stays while its workers finish what they run */
    loop_io_del(pool->b->loop, pool->fs.io);
    *o = pool->fs;
    o->io = loop_io_add(pool->b->loop, NULL, o->fd, ZMQ_POLLIN, ORDER_OLD_FS, old_fs_input, o);
    pool->fs = (fsrv_t){pool, fs_pid, fs_fd, NULL};
    watch_fs(pool);
    pool->fs_ready = true;
    pool->fs_failures = 0;
    pool->spawn_pending = 0;
    log_info("forkserver %d ready with %zu tasks", (int)fs_pid,
             tasks_learn(pool->b->tasks, names, len));
    HASH_ITER(hh, pool->tab, w, tmp)
    retire_if_outdated(pool, w);
    close_old_fs_if_done(pool, o->pid);
    return 0;
}

void pool_reap(pool_t *pool)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (reload_reaped(pool->b->reload, pid))
            continue;
        if (pid == pool->fs.pid) {
            char what[128];
            describe_wait_status(status, what, sizeof(what));
            forkserver_lost(pool, what);
        }
    }
}

/* Start a forkserver when there is none; keep the pool at its size, with a back-off when
 * workers die before they are ready. */
static uint64_t maintain(void *ud, uint64_t now)
{
    pool_t *pool = ud;
    const config_t *cfg = pool->b->cfg;
    size_t have = pool->spawn_pending;
    worker_t *w, *tmp;

    if (!pool->fs.pid) {
        if (pool->b->draining)
            return LOOP_NEVER;
        if (now < pool->fs_restart_at)
            return pool->fs_restart_at;
        if (forkserver_exec(cfg, &pool->fs.pid, &pool->fs.fd) < 0) {
            log_error("cannot start a forkserver: %s; retrying in 5 s", strerror(errno));
            pool->fs_restart_at = now + 5000;
            return pool->fs_restart_at;
        }
        watch_fs(pool);
        return LOOP_NEVER;
    }
    if (!pool->fs_ready || pool->b->draining)
        return LOOP_NEVER;
    if (now < pool->spawn_at)
        return pool->spawn_at;
    HASH_ITER(hh, pool->tab, w, tmp)
    have += w->state != W_RETIRING && w->kill == KILL_NONE && !outdated(pool, w);
    /* fewer workers after a reload: idle ones go */
    HASH_ITER(hh, pool->tab, w, tmp)
    {
        if (have <= (size_t)cfg->workers)
            break;
        if (w->state == W_IDLE && w->kill == KILL_NONE) {
            DL_DELETE2(pool->idle, w, idle_prev, idle_next);
            w->state = W_RETIRING;
            pool_kill(pool, w, KILL_RETIRE);
            have--;
        }
    }
    while (have < (size_t)cfg->workers) {
        if (forkserver_send(pool->fs.fd, FS_SPAWN, 0, 0, NULL, 0) < 0)
            return LOOP_NEVER;
        pool->spawn_pending++;
        have++;
        if (pool->spawn_failures) {
            /* workers die before READY: back off, up to 5 s between attempts */
            unsigned shift = pool->spawn_failures > 9 ? 9 : pool->spawn_failures;
            pool->spawn_at = now + (10u << shift > 5000 ? 5000 : 10u << shift);
            if (pool->spawn_failures == 3)
                log_error("workers keep dying before they are ready; check the log above and "
                          "the task plugins' worker_init");
            return pool->spawn_at;
        }
    }
    return LOOP_NEVER;
}

static void on_sigchld(void *ud, int signo)
{
    (void)signo;
    pool_reap(ud);
}

pool_t *pool_new(broker_t *b, pid_t fs_pid, int fs_fd)
{
    pool_t *pool = xcalloc(1, sizeof(*pool));

    pool->b = b;
    pool->fs = (fsrv_t){pool, fs_pid, fs_fd, NULL};
    for (int i = 0; i < OLD_FS_MAX; i++)
        pool->old_fs[i] = (fsrv_t){pool, 0, -1, NULL};
    msgpack_zone_init(&pool->zone, 4096);
    return pool;
}

int pool_start(pool_t *pool, int timeout_ms)
{
    struct pollfd p = {pool->fs.fd, POLLIN, 0};
    forkserver_buf_t u;
    ssize_t n;

    if (poll(&p, 1, timeout_ms) <= 0) {
        fprintf(stderr, "forqd: the forkserver did not start within %d s\n", timeout_ms / 1000);
        return -ETIMEDOUT;
    }
    n = forkserver_recv(pool->fs.fd, &u, sizeof(u), NULL);
    if (n <= 0 || u.m.type == FS_FAILED) {
        if (n > 0)
            fprintf(stderr, "forqd: %.*s\n", (int)u.m.len, forkserver_buf_text(&u));
        else
            fprintf(stderr, "forqd: the forkserver died during start-up\n");
        return -ECHILD;
    }
    if (u.m.type != FS_HELLO) {
        fprintf(stderr, "forqd: the forkserver sent %u before HELLO\n", u.m.type);
        return -EPROTO;
    }
    learn_tasks(pool, &u, (size_t)n);
    pool->fs_ready = true;
    watch_fs(pool);
    loop_signal_add(pool->b->loop, SIGCHLD, ORDER_SIGNALS, on_sigchld, pool);
    loop_tick_add(pool->b->loop, maintain, pool);
    loop_tick_add(pool->b->loop, flush_tick, pool);
    return 0;
}

void pool_destroy(pool_t **poolp)
{
    pool_t *pool = *poolp;
    worker_t *w, *tmp;
    int status;

    if (!pool)
        return;
    for (int i = 0; i < OLD_FS_MAX; i++) {
        if (pool->old_fs[i].fd >= 0)
            close(pool->old_fs[i].fd);
        if (pool->old_fs[i].pid > 0)
            waitpid(pool->old_fs[i].pid, &status, 0);
    }
    if (pool->fs.fd >= 0)
        close(pool->fs.fd); /* the forkserver kills its workers and exits */
    if (pool->fs.pid > 0) {
        for (int i = 0; i < 500 && waitpid(pool->fs.pid, &status, WNOHANG) == 0; i++)
            usleep(10000);
        if (waitpid(pool->fs.pid, &status, WNOHANG) == 0) {
            kill(pool->fs.pid, SIGKILL);
            waitpid(pool->fs.pid, &status, 0);
        }
    }
    HASH_ITER(hh, pool->tab, w, tmp)
    worker_forget(pool, w);
    free(pool->dirty);
    msgpack_zone_destroy(&pool->zone);
    free(pool);
    *poolp = NULL;
}
