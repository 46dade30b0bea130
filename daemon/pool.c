/* pool.c - the broker's side of the worker pool: the forkserver channel, worker records and
 * their links (wlink.h), READY and DONE from workers, exits, kills, crash handling and
 * replacement.
 *
 * A worker is asked for with SPAWN; the forkserver answers SPAWNED(pid) with the broker's end of
 * the worker's link; the worker says READY on it. Messages to workers are queued and written at
 * the end of each loop iteration, many to a write; writes never block: what a link cannot take
 * waits until it is writable. A worker that ends — by its task's crash, by our kill
 * for a cancel or a timeout, by recycling — is reported by the forkserver with its wait status,
 * which is how a crash becomes a precise result: its job, and only its job, is answered (or
 * retried), and a replacement is asked for at once. Workers being killed or retiring no longer
 * count towards the pool size, so their replacements start in parallel. */
#define _GNU_SOURCE
#include "broker_int.h"

#include "forkserver.h"
#include "log.h"
#include "notify.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utlist.h>

static void reload_refuse(broker_t *b, const char *why);

static void free_base(void *data, void *hint)
{
    (void)data;
    free(hint);
}

task_name_t *pool_task(broker_t *b, const char *name, size_t len)
{
    task_name_t *t;
    HASH_FIND(hh, b->tasks, name, len, t);
    return t;
}

static void learn_tasks(broker_t *b, const char *names, size_t len)
{
    task_name_t *t, *tmp;
    size_t count = 0;

    HASH_ITER(hh, b->tasks, t, tmp)
        t->present = false;
    for (size_t off = 0; off < len;) {
        const char *s = names + off;
        size_t n = strnlen(s, len - off);
        if (n == 0 || off + n >= len)
            break;
        if (!(t = pool_task(b, s, n))) {
            t = xcalloc(1, sizeof(*t) + n + 1);
            memcpy(t->name, s, n);
            HASH_ADD(hh, b->tasks, name[0], n, t);
        }
        t->present = true;
        count++;
        off += n + 1;
    }
    log_info("forkserver %d ready with %zu tasks", (int)b->fs_pid, count);
}

int pool_wait_hello(broker_t *b, int timeout_ms)
{
    union {
        fs_msg_t m;
        char raw[FS_MSG_MAX];
    } u;
    struct pollfd p = {b->fs_fd, POLLIN, 0};
    ssize_t n;

    if (poll(&p, 1, timeout_ms) <= 0) {
        fprintf(stderr, "forqd: the forkserver did not start within %d s\n", timeout_ms / 1000);
        return -ETIMEDOUT;
    }
    n = fs_recv(b->fs_fd, &u, sizeof(u), NULL);
    if (n <= 0 || u.m.type == FS_FAILED) {
        if (n > 0)
            fprintf(stderr, "forqd: %.*s\n", (int)u.m.len, u.raw + sizeof(fs_msg_t));
        else
            fprintf(stderr, "forqd: the forkserver died during start-up\n");
        return -ECHILD;
    }
    if (u.m.type != FS_HELLO) {
        fprintf(stderr, "forqd: the forkserver sent %u before HELLO\n", u.m.type);
        return -EPROTO;
    }
    learn_tasks(b, u.raw + sizeof(fs_msg_t), (size_t)n - sizeof(fs_msg_t));
    b->fs_ready = true;
    return 0;
}

static worker_t *worker_new(broker_t *b, pid_t pid, int fd)
{
    worker_t *w = xcalloc(1, sizeof(*w));

    w->pid = pid;
    w->fs_pid = b->fs_pid;
    w->state = W_STARTING;
    w->spawn_us = now_us();
    w->ident_len = (uint8_t)snprintf(w->ident, sizeof(w->ident), "w%d", (int)pid);
    if (wlink_init(&w->link, fd, (size_t)b->cfg->max_payload + WIRE_HEADER_MAX) < 0) {
        log_error("out of memory for worker %d's link; it will be replaced", (int)pid);
        wlink_done(&w->link);
    } else {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    HASH_ADD_INT(b->worker_tab, pid, w);
    return w;
}

worker_t *pool_worker(broker_t *b, pid_t pid)
{
    worker_t *w;
    HASH_FIND_INT(b->worker_tab, &pid, w);
    return w;
}

size_t pool_count(broker_t *b)
{
    return HASH_COUNT(b->worker_tab);
}

static void link_close(worker_t *w)
{
    while (w->out) {
        wout_t *o = w->out;
        w->out = o->next;
        zmq_msg_close(&o->payload);
        free(o);
    }
    w->out_tail = NULL;
    wlink_done(&w->link);
}

static void worker_forget(broker_t *b, worker_t *w)
{
    if (w->state == W_IDLE)
        DL_DELETE2(b->idle, w, idle_prev, idle_next);
    link_close(w);
    HASH_DEL(b->worker_tab, w);
    free(w);
}

static void set_idle(broker_t *b, worker_t *w)
{
    w->state = W_IDLE;
    DL_PREPEND2(b->idle, w, idle_prev, idle_next); /* most recently used first: its caches are warm */
}

worker_t *pool_take_idle(broker_t *b)
{
    worker_t *w = b->idle;
    if (w) {
        DL_DELETE2(b->idle, w, idle_prev, idle_next);
        w->state = W_BUSY;
    }
    return w;
}

/* The link failed: it is closed; the worker's exit report will tell the rest. */
static void link_failed(worker_t *w, const char *why)
{
    log_warn("the link to worker %d failed (%s); its exit report follows", (int)w->pid, why);
    link_close(w);
}

/* Write what the link takes of the out queue, many messages to a write. */
static void link_flush(worker_t *w)
{
    while (w->out && w->link.fd >= 0) {
        struct iovec iov[128];
        struct msghdr mh = {.msg_iov = iov};
        size_t n = 0, want = 0;
        ssize_t k;

        for (wout_t *o = w->out; o && n + 2 <= 128; o = o->next) {
            size_t plen = zmq_msg_size(&o->payload);
            uint8_t *pl = zmq_msg_data(&o->payload);
            if (o->off < o->hlen) {
                iov[n++] = (struct iovec){o->head + o->off, o->hlen - o->off};
                if (plen)
                    iov[n++] = (struct iovec){pl, plen};
            } else {
                iov[n++] = (struct iovec){pl + (o->off - o->hlen), o->len - o->off};
            }
            want += o->len - o->off;
        }
        mh.msg_iovlen = n;
        k = sendmsg(w->link.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                link_failed(w, strerror(errno));
            return;
        }
        for (size_t left = (size_t)k; left > 0 && w->out;) {
            wout_t *o = w->out;
            size_t rest = o->len - o->off;
            if (left < rest) {
                o->off += left;
                break;
            }
            left -= rest;
            w->out = o->next;
            if (!w->out)
                w->out_tail = NULL;
            zmq_msg_close(&o->payload);
            free(o);
        }
        if ((size_t)k < want)
            return; /* the link is full: the rest when it is writable */
    }
}

void pool_flush(broker_t *b)
{
    for (size_t i = 0; i < b->n_dirty; i++) {
        worker_t *w = pool_worker(b, b->dirty[i]);
        if (w) {
            w->dirty = false;
            link_flush(w);
        }
    }
    b->n_dirty = 0;
}

int pool_send(broker_t *b, worker_t *w, const void *hdr, size_t hlen, zmq_msg_t *payload)
{
    zmq_msg_t none;
    wout_t *o;

    zmq_msg_init(&none);
    if (!payload)
        payload = &none;
    if (w->link.fd < 0 || hlen > WIRE_HEADER_MAX) {
        zmq_msg_close(payload);
        return -EPIPE;
    }
    /* queued, and written with the others at the end of the broker's loop iteration */
    o = xmalloc(sizeof(*o) + WLINK_PREFIX + hlen);
    o->next = NULL;
    o->hlen = WLINK_PREFIX + hlen;
    o->len = o->hlen + zmq_msg_size(payload);
    o->off = 0;
    wlink_prefix(o->head, hlen, zmq_msg_size(payload), payload != &none);
    memcpy(o->head + WLINK_PREFIX, hdr, hlen);
    zmq_msg_init(&o->payload);
    zmq_msg_move(&o->payload, payload);
    zmq_msg_close(payload);
    if (w->out_tail)
        w->out_tail->next = o;
    else
        w->out = o;
    w->out_tail = o;
    if (!w->dirty) {
        w->dirty = true;
        if (b->n_dirty == b->cap_dirty) {
            b->cap_dirty = b->cap_dirty ? 2 * b->cap_dirty : 16;
            b->dirty = xrealloc(b->dirty, b->cap_dirty * sizeof(*b->dirty));
        }
        b->dirty[b->n_dirty++] = w->pid;
    }
    return 0;
}

bool pool_send_job(broker_t *b, worker_t *w, job_t *job)
{
    wire_hdr_t h = {.cmd = WIRE_JOB, .id = {job->id, job->id_len}, .task = wire_str(job->task),
                    .max_result = job->max_result, .as_bytes = job->as_bytes,
                    .cpu_s = job->cpu_s, .attempts = job->attempts, .chunk = job->chunk};
    zmq_msg_t args;

    msgpack_sbuffer_clear(&b->hbuf);
    wire_hdr_encode(&b->hbuf, &h);
    zmq_msg_init(&args);
    zmq_msg_copy(&args, &job->msg); /* reference-counted: no copy of the bytes */
    if (pool_send(b, w, b->hbuf.data, b->hbuf.size, &args) < 0) {
        log_warn("worker %d is unreachable; job %s goes back to the queue", (int)w->pid, job->id);
        w->state = W_RETIRING;
        return false;
    }
    log_debug("job %s (%s) %s worker %d", job->id, job->task,
              job->phase == JOB_AHEAD ? "sent ahead to" : "started on", (int)w->pid);
    return true;
}

void pool_cancel_ahead(broker_t *b, worker_t *w, job_t *job)
{
    wire_hdr_t h = {.cmd = WIRE_CANCEL, .id = {job->id, job->id_len}};

    msgpack_sbuffer_clear(&b->hbuf);
    wire_hdr_encode(&b->hbuf, &h);
    pool_send(b, w, b->hbuf.data, b->hbuf.size, NULL); /* a dead link: its exit report answers */
}

/* The jobs sent ahead to a worker that will not run them: back to the front of the queue in
 * their order (never started, so no retry is spent), or cancelled when that was asked or forqd
 * is stopping. */
static void requeue_ahead(broker_t *b, worker_t *w)
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
        if ((job->x && job->x->canceller) || b->draining) {
            wire_hdr_t x = {.msg = wire_str("cancelled before it started")};
            if (b->draining) {
                x.code = wire_str("shutting_down");
                x.msg = wire_str("forqd is shutting down; the job never started");
            }
            broker_finish(b, job, WIRE_ST_CANCELLED, &x, NULL);
        } else {
            broker_requeue(b, job);
        }
    }
    free(list);
}

/* The channel of the forkserver that forked a worker, -1 if gone. */
static int fs_fd_of(broker_t *b, pid_t fs)
{
    if (fs == b->fs_pid)
        return b->fs_fd;
    for (int i = 0; i < OLD_FS_MAX; i++)
        if (b->old_fs[i].pid == fs)
            return b->old_fs[i].fd;
    return -1;
}

/* Is the worker one of a forkserver a reload replaced? */
static bool outdated(const broker_t *b, const worker_t *w)
{
    return w->fs_pid != b->fs_pid;
}

void pool_kill(broker_t *b, worker_t *w, kill_reason_t why)
{
    int fd = fs_fd_of(b, w->fs_pid);

    if (w->kill != KILL_NONE || fd < 0)
        return;
    w->kill = why;
    w->kill_seq = w->job ? w->job->seq : 0;
    fs_send(fd, FS_KILL, w->pid, SIGKILL, NULL, 0);
}

/* A worker of a replaced forkserver with nothing left to run goes. */
static void retire_if_outdated(broker_t *b, worker_t *w)
{
    if (!outdated(b, w) || w->job || w->ahead)
        return;
    if (w->state == W_IDLE)
        DL_DELETE2(b->idle, w, idle_prev, idle_next);
    w->state = W_RETIRING;
    pool_kill(b, w, KILL_RETIRE);
}

static void describe(int status, char *buf, size_t size)
{
    if (WIFSIGNALED(status))
        snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "exited with code %d", WEXITSTATUS(status));
}

static void job_of_dead_worker(broker_t *b, worker_t *w, int status, bool fs_died)
{
    job_t *job = w->job;
    char what[128], msg[WIRE_TEXT_MAX];
    wire_hdr_t x = {0};

    describe(status, what, sizeof(what));
    if (w->kill != KILL_NONE && w->kill_seq != job->seq) {
        /* the job the kill was for had just finished and this one, sent ahead, had started */
        if (job->retries_left > 0 && !b->draining) {
            job->retries_left--;
            b->st.retried++;
            broker_requeue(b, job);
            return;
        }
        x.msg = wire_str("its worker was killed to stop the job before it, which finished just "
                         "as this one started; submit it with retries to have it run again");
        broker_finish(b, job, WIRE_ST_CRASHED, &x, NULL);
        return;
    }
    switch (w->kill) {
    case KILL_CANCEL:
        x.msg = wire_str("cancelled while running; its worker was killed");
        broker_finish(b, job, WIRE_ST_CANCELLED, &x, NULL);
        return;
    case KILL_TIMEOUT:
        snprintf(msg, sizeof(msg), "ran longer than its timeout of %llu ms; its worker was killed",
                 (unsigned long long)job->timeout_ms);
        x.msg = wire_str(msg);
        broker_finish(b, job, WIRE_ST_TIMEOUT, &x, NULL);
        return;
    case KILL_SHUTDOWN:
        x.code = wire_str("shutting_down");
        x.msg = wire_str("forqd is shutting down; the job was still running after the grace time");
        broker_finish(b, job, WIRE_ST_CANCELLED, &x, NULL);
        return;
    case KILL_NONE:
    case KILL_RETIRE:
        break;
    }
    if (job->retries_left > 0 && !b->draining) {
        job->retries_left--;
        b->st.retried++;
        log_warn("worker %d %s while running job %s (%s); retrying it (%u retries left)",
                 (int)w->pid, fs_died ? "died with its forkserver" : what, job->id, job->task,
                 job->retries_left);
        broker_requeue(b, job);
        return;
    }
    if (fs_died) {
        x.msg = wire_str("its worker died with the forkserver");
        broker_finish(b, job, WIRE_ST_LOST, &x, NULL);
        return;
    }
    if (WIFSIGNALED(status)) {
        x.signal = WTERMSIG(status);
        if (x.signal == SIGXCPU && job->cpu_s)
            snprintf(msg, sizeof(msg), "used more than its CPU limit of %u s; worker %s",
                     job->cpu_s, what);
        else
            snprintf(msg, sizeof(msg), "worker %s while running the job", what);
    } else {
        x.exit_code = WEXITSTATUS(status);
        x.has_exit = true;
        snprintf(msg, sizeof(msg), "worker %s while running the job", what);
    }
    x.msg = wire_str(msg);
    log_warn("job %s (%s) crashed: %s", job->id, job->task, msg);
    broker_finish(b, job, WIRE_ST_CRASHED, &x, NULL);
}

static void link_read(broker_t *b, worker_t *w, size_t max_msgs);

/* A forkserver a reload replaced goes once the last of its workers is gone. */
static void close_old_fs_if_done(broker_t *b, pid_t fs)
{
    worker_t *w, *tmp;

    if (fs == b->fs_pid)
        return;
    HASH_ITER(hh, b->worker_tab, w, tmp)
        if (w->fs_pid == fs)
            return;
    for (int i = 0; i < OLD_FS_MAX; i++) {
        if (b->old_fs[i].pid == fs) {
            log_info("forkserver %d, replaced by a reload, has no workers left; it exits",
                     (int)fs);
            close(b->old_fs[i].fd); /* it exits; pool_reap collects it */
            b->old_fs[i] = (fsrv_t){0, -1};
        }
    }
}

static void on_exit_report(broker_t *b, pid_t pid, int status)
{
    worker_t *w = pool_worker(b, pid);
    char what[128];

    if (!w)
        return;
    /* it is gone, so everything it wrote is in the link: a DONE sent just before a planned
     * exit (recycling) is read before its job is judged */
    link_read(b, w, SIZE_MAX);
    describe(status, what, sizeof(what));
    if (w->job) {
        if (w->kill == KILL_NONE) {
            b->st.worker_crashes++;
            b->replace_from_us = now_us();
        }
        job_of_dead_worker(b, w, status, false);
    } else if (!w->ready && w->kill == KILL_NONE) {
        b->spawn_failures++;
        log_warn("worker %d %s before it was ready", (int)pid, what);
    } else if (w->state != W_RETIRING && w->kill == KILL_NONE) {
        log_warn("idle worker %d %s", (int)pid, what);
    }
    requeue_ahead(b, w); /* never started: they run elsewhere */
    pid_t fs = w->fs_pid;
    worker_forget(b, w);
    close_old_fs_if_done(b, fs);
}

static void on_ready(broker_t *b, worker_t *w)
{
    if (w->ready)
        return;
    w->ready = true;
    b->spawn_failures = 0;
    b->spawn_at = 0;
    if (b->replace_from_us) {
        b->st.last_replace_us = now_us() - b->replace_from_us;
        b->replace_from_us = 0;
    }
    log_debug("worker %d ready after %llu us", (int)w->pid,
              (unsigned long long)(now_us() - w->spawn_us));
    if (w->kill == KILL_NONE && !b->draining && !outdated(b, w))
        set_idle(b, w);
    else if (w->kill == KILL_NONE && outdated(b, w))
        retire_if_outdated(b, w);
    else
        w->state = W_RETIRING;
}

/* A job's run time, into its task's moving average (what decides sending ahead). */
static void learn_run_time(job_t *job, uint64_t run_us)
{
    task_name_t *t = (task_name_t *)(job->task - offsetof(task_name_t, name));

    if (t->samples == 0)
        t->avg_us = run_us;
    else
        t->avg_us = t->avg_us - t->avg_us / 8 + run_us / 8;
    if (t->samples < 1000)
        t->samples++;
}

static void on_done(broker_t *b, worker_t *w, const wire_hdr_t *h, zmq_msg_t *payload)
{
    job_t *job = w->job;

    if (!job || h->id.len != job->id_len || memcmp(h->id.ptr, job->id, job->id_len) != 0) {
        /* a job sent ahead that the worker skipped, as we asked */
        for (job = w->ahead; job; job = job->ahead_next)
            if (h->id.len == job->id_len && memcmp(h->id.ptr, job->id, job->id_len) == 0)
                break;
        if (job && h->state == WIRE_ST_CANCELLED && job->x && job->x->canceller) {
            wire_hdr_t x = {.msg = wire_str("cancelled before it started")};
            broker_finish(b, job, WIRE_ST_CANCELLED, &x, NULL);
            return;
        }
        log_warn("worker %d reported a job it was not running; ignored", (int)w->pid);
        return;
    }
    w->jobs_done++;
    learn_run_time(job, h->run_us);
    if (h->state == WIRE_ST_OK) {
        wire_hdr_t x = {.run_us = h->run_us};
        if (!payload) {
            x.etype = wire_str("TaskError");
            x.msg = wire_str("the worker sent no result frame");
            broker_finish(b, job, WIRE_ST_ERROR, &x, NULL);
        } else {
            broker_finish(b, job, WIRE_ST_OK, &x, payload);
        }
    } else {
        wire_hdr_t x = {.etype = h->etype, .msg = h->msg, .run_us = h->run_us};
        if (!x.etype.ptr)
            x.etype = wire_str("Error");
        broker_finish(b, job, WIRE_ST_ERROR, &x, NULL);
    }
    if (h->retire)
        requeue_ahead(b, w); /* it exits now: what it holds goes back */
    if (w->ahead)
        broker_promote(b, w); /* the worker has started the next one by now */
    else if (w->kill != KILL_NONE || h->retire || b->draining)
        w->state = W_RETIRING;
    else if (outdated(b, w))
        retire_if_outdated(b, w);
    else
        set_idle(b, w);
    /* the caller dispatches once it has read what the link had (pool_worker_io, and after an
     * exit report pool_fs_input / pool_fs_extra_input) */
}

/* One message from a worker. */
static void on_worker_msg(broker_t *b, worker_t *w, wlink_msg_t *m)
{
    wire_hdr_t h;
    wire_err_t err;
    zmq_msg_t pm;

    msgpack_zone_clear(&b->zone);
    if (wire_hdr_decode(m->hdr, m->hlen, &b->zone, &h, &err) < 0) {
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
    if (h.cmd == WIRE_READY)
        on_ready(b, w);
    else if (h.cmd == WIRE_DONE)
        on_done(b, w, &h, m->has_payload ? &pm : NULL);
    else if (h.cmd == WIRE_DICT) {
        /* the running task uses the dict service */
        origin_t o = {(const uint8_t *)w->ident, w->ident_len, false, true};
        dict_on_request(b, &o, &h, m->has_payload ? &pm : NULL);
    } else if (h.cmd == WIRE_PROGRESS) {
        if (w->job && h.id.len == w->job->id_len &&
            memcmp(h.id.ptr, w->job->id, h.id.len) == 0)
            broker_progress(b, w->job, &h);
    } else {
        log_warn("worker %d sent '%s', which workers may not send", (int)w->pid,
                 wire_cmd_name(h.cmd));
    }
    if (m->has_payload)
        zmq_msg_close(&pm);
    free(m->base);
}

/* Read and handle up to max_msgs messages that the link has now. */
static void link_read(broker_t *b, worker_t *w, size_t max_msgs)
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
                pool_kill(b, w, KILL_NONE);
            }
            link_close(w);
            return;
        }
        on_worker_msg(b, w, &m);
    }
}

size_t pool_poll_items(broker_t *b, zmq_pollitem_t *items, pid_t *pids, size_t max)
{
    worker_t *w, *tmp;
    size_t n = 0;

    HASH_ITER(hh, b->worker_tab, w, tmp)
    {
        if (n == max)
            break;
        if (w->link.fd < 0)
            continue;
        items[n] = (zmq_pollitem_t){NULL, w->link.fd, ZMQ_POLLIN | (w->out ? ZMQ_POLLOUT : 0), 0};
        pids[n++] = w->pid;
    }
    return n;
}

void pool_worker_io(broker_t *b, pid_t pid, short revents)
{
    worker_t *w = pool_worker(b, pid);

    if (!w)
        return;
    if (revents & ZMQ_POLLOUT)
        link_flush(w);
    if (revents & (ZMQ_POLLIN | ZMQ_POLLERR))
        link_read(b, w, BROKER_BATCH);
    broker_dispatch(b);
}

static void forkserver_lost(broker_t *b, const char *why)
{
    worker_t *w, *tmp;
    pid_t fs = b->fs_pid;

    log_error("forkserver %d %s; its workers died with it; starting a new one", (int)b->fs_pid,
              why);
    if (b->fs_fd >= 0)
        close(b->fs_fd);
    b->fs_fd = -1;
    b->fs_pid = 0;
    b->fs_ready = false;
    b->spawn_pending = 0;
    HASH_ITER(hh, b->worker_tab, w, tmp)
    {
        if (w->fs_pid != fs)
            continue; /* a replaced forkserver's worker: still alive */
        if (w->job)
            job_of_dead_worker(b, w, 0, true);
        requeue_ahead(b, w);
        worker_forget(b, w);
    }
    b->fs_failures++;
    b->fs_restart_at = now_ms() + (b->fs_failures > 1 ? 1000u << (b->fs_failures > 5 ? 5 : b->fs_failures) : 0);
}

void pool_fs_input(broker_t *b)
{
    union {
        fs_msg_t m;
        char raw[FS_MSG_MAX];
    } u;

    while (b->fs_fd >= 0) {
        int fd;
        ssize_t n = fs_recv(b->fs_fd, &u, sizeof(u), &fd);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            forkserver_lost(b, "closed its channel");
            break;
        }
        switch (u.m.type) {
        case FS_HELLO:
            learn_tasks(b, u.raw + sizeof(fs_msg_t), (size_t)n - sizeof(fs_msg_t));
            b->fs_ready = true;
            b->fs_failures = 0;
            break;
        case FS_FAILED:
            log_error("new forkserver failed: %.*s", (int)u.m.len, u.raw + sizeof(fs_msg_t));
            break;
        case FS_SPAWNED:
            if (b->spawn_pending)
                b->spawn_pending--;
            if (fd < 0 || pool_worker(b, u.m.pid)) {
                log_error("the forkserver reported worker %d without its link; killing it",
                          (int)u.m.pid);
                if (fd >= 0)
                    close(fd);
                fs_send(b->fs_fd, FS_KILL, u.m.pid, SIGKILL, NULL, 0);
                break;
            }
            worker_new(b, u.m.pid, fd);
            fd = -1;
            b->st.workers_started++;
            break;
        case FS_SPAWN_ERR:
            if (b->spawn_pending)
                b->spawn_pending--;
            b->spawn_failures++;
            log_warn("the forkserver cannot fork a worker: %s", strerror(u.m.arg));
            break;
        case FS_EXITED:
            on_exit_report(b, u.m.pid, u.m.arg);
            break;
        default:
            log_warn("unexpected message %u from the forkserver", u.m.type);
        }
        if (fd >= 0)
            close(fd);
    }
    broker_dispatch(b); /* jobs of a dead worker went back to the queue */
}

void pool_reap(broker_t *b)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == b->next_fs.pid) {
            b->next_fs.pid = 0; /* reaped: do not kill its pid again */
            reload_refuse(b, "the new forkserver died during start-up");
        } else if (pid == b->fs_pid) {
            char what[128];
            describe(status, what, sizeof(what));
            forkserver_lost(b, what);
        }
    }
}

void pool_maintain(broker_t *b, uint64_t now)
{
    size_t have = b->spawn_pending;
    worker_t *w, *tmp;

    if (!b->fs_pid && !b->draining && now >= b->fs_restart_at) {
        if (forkserver_exec(b->cfg, &b->fs_pid, &b->fs_fd) < 0) {
            log_error("cannot start a forkserver: %s; retrying in 5 s", strerror(errno));
            b->fs_restart_at = now + 5000;
        }
        return;
    }
    if (!b->fs_ready || b->draining || now < b->spawn_at)
        return;
    HASH_ITER(hh, b->worker_tab, w, tmp)
        have += w->state != W_RETIRING && w->kill == KILL_NONE && !outdated(b, w);
    /* fewer workers after a reload: idle ones go */
    HASH_ITER(hh, b->worker_tab, w, tmp)
    {
        if (have <= (size_t)b->cfg->workers)
            break;
        if (w->state == W_IDLE && w->kill == KILL_NONE) {
            DL_DELETE2(b->idle, w, idle_prev, idle_next);
            w->state = W_RETIRING;
            pool_kill(b, w, KILL_RETIRE);
            have--;
        }
    }
    while (have < (size_t)b->cfg->workers) {
        if (fs_send(b->fs_fd, FS_SPAWN, 0, 0, NULL, 0) < 0)
            return;
        b->spawn_pending++;
        have++;
        if (b->spawn_failures) {
            /* workers die before READY: back off, up to 5 s between attempts */
            unsigned shift = b->spawn_failures > 9 ? 9 : b->spawn_failures;
            b->spawn_at = now + (10u << shift > 5000 ? 5000 : 10u << shift);
            if (b->spawn_failures == 3)
                log_error("workers keep dying before they are ready; check the log above and "
                          "the task plugins' worker_init");
            return;
        }
    }
}

/* ---- reload (SIGHUP) ---- */

static void reload_refuse(broker_t *b, const char *why)
{
    char status[160];

    log_error("reload refused: %s; forqd goes on with the configuration it had", why);
    if (b->next_fs.fd >= 0)
        close(b->next_fs.fd); /* it exits */
    if (b->next_fs.pid > 0)
        kill(b->next_fs.pid, SIGKILL);
    b->next_fs = (fsrv_t){0, -1};
    if (b->next_cfg) {
        config_done(b->next_cfg);
        free(b->next_cfg);
        b->next_cfg = NULL;
    }
    broker_status_line(b, status, sizeof(status));
    notify_ready(status);
}

void pool_reload(broker_t *b)
{
    config_t *n;

    if (b->next_cfg) {
        log_warn("SIGHUP: a reload is already under way; this one is ignored");
        return;
    }
    if (b->draining) {
        log_warn("SIGHUP: forqd is stopping; no reload");
        return;
    }
    notify_reloading();
    log_notice("SIGHUP: reloading the configuration%s%s", b->cfg->config_file ? " from " : "",
               b->cfg->config_file ? b->cfg->config_file : "");
    n = xcalloc(1, sizeof(*n));
    b->next_cfg = n;
    /* the same flags, the file as it is now; errors were printed, one line each */
    if (config_parse(n, b->cfg->argc, b->cfg->argv) != 0 || config_derive(n) < 0 ||
        config_check(n) < 0) {
        reload_refuse(b, "the configuration has an error (the line above says which)");
        return;
    }
    /* what was set up once at start does not change in place: say so */
    const config_t *o = b->cfg;
    if (n->state_dir ? !o->state_dir || strcmp(n->state_dir, o->state_dir) != 0
                     : o->state_dir != NULL)
        log_warn("reload: a new state-dir takes effect at the next start");
    if (n->fsync_policy != o->fsync_policy || n->dict_max_keys != o->dict_max_keys ||
        n->dict_max_value != o->dict_max_value || n->dict_max_bytes != o->dict_max_bytes)
        log_warn("reload: new fsync and dict-max-* settings take effect at the next start");
    if (n->max_payload != o->max_payload || n->client_hwm != o->client_hwm)
        log_warn("reload: new max-payload and client-hwm settings take effect at the next start");
    /* the plugins are loaded afresh by a new forkserver; the reload completes at its HELLO */
    if (forkserver_exec(n, &b->next_fs.pid, &b->next_fs.fd) < 0) {
        reload_refuse(b, "cannot start a new forkserver");
        return;
    }
}

/* The new forkserver is up with its plugins: switch to it and to the new configuration. */
static void reload_commit(broker_t *b, const char *names, size_t len)
{
    config_t *n = b->next_cfg;
    worker_t *w, *tmp;
    char status[160];
    int slot = -1;

    for (int i = 0; i < OLD_FS_MAX; i++)
        if (b->old_fs[i].pid == 0)
            slot = i;
    if (slot < 0) {
        reload_refuse(b, "the workers of earlier reloads are still finishing their jobs");
        return;
    }
    if (broker_rebind(b, n) < 0) {
        reload_refuse(b, "an endpoint cannot be bound");
        return;
    }
    /* the old forkserver stays while its workers finish what they run */
    b->old_fs[slot] = (fsrv_t){b->fs_pid, b->fs_fd};
    b->fs_pid = b->next_fs.pid;
    b->fs_fd = b->next_fs.fd;
    b->next_fs = (fsrv_t){0, -1};
    b->fs_ready = true;
    b->fs_failures = 0;
    b->spawn_pending = 0;
    learn_tasks(b, names, len);
    if (b->cfg_owned) {
        config_done(b->cfg_owned);
        free(b->cfg_owned);
    }
    b->cfg = b->cfg_owned = n;
    b->next_cfg = NULL;
    log_setup(n->log_level, "forqd");
    HASH_ITER(hh, b->worker_tab, w, tmp)
        retire_if_outdated(b, w);
    close_old_fs_if_done(b, b->old_fs[slot].pid);
    log_notice("reloaded: %ld workers, %zu endpoint(s); busy workers of the old plugins finish "
               "their jobs first", b->cfg->workers, b->cfg->listen.n);
    broker_status_line(b, status, sizeof(status));
    notify_ready(status);
}

size_t pool_fs_items(broker_t *b, zmq_pollitem_t *items, int *roles)
{
    size_t n = 0;

    if (b->next_fs.fd >= 0) {
        items[n] = (zmq_pollitem_t){NULL, b->next_fs.fd, ZMQ_POLLIN, 0};
        roles[n++] = -1;
    }
    for (int i = 0; i < OLD_FS_MAX; i++) {
        if (b->old_fs[i].fd >= 0) {
            items[n] = (zmq_pollitem_t){NULL, b->old_fs[i].fd, ZMQ_POLLIN, 0};
            roles[n++] = i;
        }
    }
    return n;
}

void pool_fs_extra_input(broker_t *b, int role)
{
    union {
        fs_msg_t m;
        char raw[FS_MSG_MAX];
    } u;

    for (;;) {
        int fd = role < 0 ? b->next_fs.fd : b->old_fs[role].fd, passed;
        ssize_t n;

        if (fd < 0)
            return;
        n = fs_recv(fd, &u, sizeof(u), &passed);
        if (passed >= 0)
            close(passed); /* neither sends workers */
        if (n == -EAGAIN)
            break;
        if (role < 0) {
            if (n > 0 && u.m.type == FS_HELLO) {
                reload_commit(b, u.raw + sizeof(fs_msg_t), (size_t)n - sizeof(fs_msg_t));
            } else if (n > 0 && u.m.type == FS_FAILED) {
                char why[600];
                snprintf(why, sizeof(why), "the new plugins do not load: %.*s", (int)u.m.len,
                         u.raw + sizeof(fs_msg_t));
                reload_refuse(b, why);
            } else if (n <= 0) {
                reload_refuse(b, "the new forkserver died during start-up");
            }
            return;
        }
        if (n <= 0) {
            /* a replaced forkserver died: its workers died with it */
            pid_t fs = b->old_fs[role].pid;
            worker_t *w, *tmp;
            close(fd);
            b->old_fs[role] = (fsrv_t){0, -1};
            HASH_ITER(hh, b->worker_tab, w, tmp)
            {
                if (w->fs_pid != fs)
                    continue;
                if (w->job)
                    job_of_dead_worker(b, w, 0, true);
                requeue_ahead(b, w);
                worker_forget(b, w);
            }
            break;
        }
        if (u.m.type == FS_EXITED)
            on_exit_report(b, u.m.pid, u.m.arg);
    }
    broker_dispatch(b);
}

void pool_shutdown(broker_t *b)
{
    worker_t *w, *tmp;
    int status;

    for (int i = 0; i < OLD_FS_MAX; i++) {
        if (b->old_fs[i].fd >= 0)
            close(b->old_fs[i].fd);
        if (b->old_fs[i].pid > 0)
            waitpid(b->old_fs[i].pid, &status, 0);
        b->old_fs[i] = (fsrv_t){0, -1};
    }
    if (b->next_fs.pid > 0) {
        if (b->next_fs.fd >= 0)
            close(b->next_fs.fd);
        kill(b->next_fs.pid, SIGKILL);
        waitpid(b->next_fs.pid, &status, 0);
        b->next_fs = (fsrv_t){0, -1};
    }
    if (b->next_cfg) {
        config_done(b->next_cfg);
        free(b->next_cfg);
        b->next_cfg = NULL;
    }

    if (b->fs_fd >= 0)
        close(b->fs_fd); /* the forkserver kills its workers and exits */
    b->fs_fd = -1;
    if (b->fs_pid > 0) {
        for (int i = 0; i < 500 && waitpid(b->fs_pid, &status, WNOHANG) == 0; i++)
            usleep(10000);
        if (waitpid(b->fs_pid, &status, WNOHANG) == 0) {
            kill(b->fs_pid, SIGKILL);
            waitpid(b->fs_pid, &status, 0);
        }
    }
    HASH_ITER(hh, b->worker_tab, w, tmp)
        worker_forget(b, w);
}
