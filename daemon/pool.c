/* pool.c - the broker's side of the worker pool: the forkserver channel, worker records, READY
 * and DONE from workers, exits, kills, crash handling and replacement.
 *
 * A worker is asked for with SPAWN; the forkserver answers SPAWNED(pid); the worker connects and
 * says READY (either may arrive first). A worker that ends — by its task's crash, by our kill
 * for a cancel or a timeout, by recycling — is reported by the forkserver with its wait status,
 * which is how a crash becomes a precise result: its job, and only its job, is answered (or
 * retried), and a replacement is asked for at once. Workers being killed or retiring no longer
 * count towards the pool size, so their replacements start in parallel. */
#define _GNU_SOURCE
#include "broker_int.h"

#include "forkserver.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utlist.h>

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
    n = fs_recv(b->fs_fd, &u, sizeof(u));
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

static worker_t *worker_get(broker_t *b, pid_t pid, bool create)
{
    worker_t *w;

    HASH_FIND_INT(b->worker_tab, &pid, w);
    if (w || !create)
        return w;
    w = xcalloc(1, sizeof(*w));
    w->pid = pid;
    w->state = W_STARTING;
    w->spawn_us = now_us();
    w->ident_len = (uint8_t)snprintf(w->ident, sizeof(w->ident), "w%d", (int)pid);
    HASH_ADD_INT(b->worker_tab, pid, w);
    return w;
}

static void worker_forget(broker_t *b, worker_t *w)
{
    if (w->state == W_IDLE)
        DL_DELETE2(b->idle, w, idle_prev, idle_next);
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

bool pool_start_job(broker_t *b, worker_t *w, job_t *job)
{
    wire_hdr_t h = {.cmd = WIRE_JOB, .id = {job->id, job->id_len}, .task = wire_str(job->task),
                    .max_result = job->max_result, .as_bytes = job->as_bytes,
                    .cpu_s = job->cpu_s, .attempts = job->attempts, .chunk = job->chunk};
    zmq_msg_t args;

    w->job = job;
    msgpack_sbuffer_clear(&b->hbuf);
    wire_hdr_encode(&b->hbuf, &h);
    if (zmq_send(b->workers_sock, w->ident, w->ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        /* its connection is gone; its exit report will follow */
        log_warn("worker %d is unreachable; job %s goes back to the queue", (int)w->pid, job->id);
        w->job = NULL;
        w->state = W_RETIRING;
        return false;
    }
    zmq_send(b->workers_sock, b->hbuf.data, b->hbuf.size, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_msg_init(&args);
    zmq_msg_copy(&args, &job->args); /* reference-counted: no copy of the bytes */
    zmq_msg_send(&args, b->workers_sock, ZMQ_DONTWAIT);
    log_debug("job %s (%s) started on worker %d", job->id, job->task, (int)w->pid);
    return true;
}

void pool_kill(broker_t *b, worker_t *w, kill_reason_t why)
{
    if (w->kill != KILL_NONE || b->fs_fd < 0)
        return;
    w->kill = why;
    fs_send(b->fs_fd, FS_KILL, w->pid, SIGKILL, NULL, 0);
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

static void on_exit_report(broker_t *b, pid_t pid, int status)
{
    worker_t *w = worker_get(b, pid, false);
    char what[128];

    if (!w)
        return;
    describe(status, what, sizeof(what));
    if (w->job) {
        if (w->kill == KILL_NONE) {
            b->st.worker_crashes++;
            b->replace_from_us = now_us();
        }
        job_of_dead_worker(b, w, status, false);
    } else if (!w->ready) {
        b->spawn_failures++;
        log_warn("worker %d %s before it was ready", (int)pid, what);
    } else if (w->state != W_RETIRING && w->kill == KILL_NONE) {
        log_warn("idle worker %d %s", (int)pid, what);
    }
    worker_forget(b, w);
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
    if (w->kill == KILL_NONE && !b->draining)
        set_idle(b, w);
    else
        w->state = W_RETIRING;
}

static void on_done(broker_t *b, worker_t *w, const wire_hdr_t *h, zmq_msg_t *payload)
{
    job_t *job = w->job;

    if (!job || h->id.len != job->id_len || memcmp(h->id.ptr, job->id, job->id_len) != 0) {
        log_warn("worker %d reported a job it was not running; ignored", (int)w->pid);
        return;
    }
    w->jobs_done++;
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
    if (w->kill != KILL_NONE || h->retire || b->draining)
        w->state = W_RETIRING;
    else
        set_idle(b, w);
    broker_dispatch(b);
}

void pool_worker_input(broker_t *b, zmq_msg_t *f, int n)
{
    const char *ident = zmq_msg_data(&f[0]);
    size_t ilen = zmq_msg_size(&f[0]);
    char buf[16];
    long pid;
    wire_hdr_t h;
    wire_err_t err;
    worker_t *w;

    if (ilen < 2 || ilen >= sizeof(buf) || ident[0] != 'w')
        return;
    memcpy(buf, ident + 1, ilen - 1);
    buf[ilen - 1] = '\0';
    if (parse_long(buf, 1, INT32_MAX, &pid) < 0 || n < 2)
        return;
    msgpack_zone_clear(&b->zone);
    if (wire_hdr_decode(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &b->zone, &h, &err) < 0) {
        log_warn("bad message from worker %ld: %s", pid, err.msg);
        return;
    }
    w = worker_get(b, (pid_t)pid, h.cmd == WIRE_READY);
    if (!w) {
        log_debug("message from unknown worker %ld ignored", pid);
        return;
    }
    if (h.cmd == WIRE_READY)
        on_ready(b, w);
    else if (h.cmd == WIRE_DONE)
        on_done(b, w, &h, n > 2 ? &f[2] : NULL);
    else if (h.cmd == WIRE_DICT) {
        /* the running task uses the dict service */
        origin_t o = {(const uint8_t *)ident, ilen, false, true};
        dict_on_request(b, &o, &h, n > 2 ? &f[2] : NULL);
    } else if (h.cmd == WIRE_PROGRESS) {
        if (w->job && h.id.len == w->job->id_len &&
            memcmp(h.id.ptr, w->job->id, h.id.len) == 0)
            broker_progress(b, w->job, &h);
    }
    else
        log_warn("worker %ld sent '%s', which workers may not send", pid, wire_cmd_name(h.cmd));
    broker_dispatch(b);
}

static void forkserver_lost(broker_t *b, const char *why)
{
    worker_t *w, *tmp;

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
        if (w->job)
            job_of_dead_worker(b, w, 0, true);
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
        ssize_t n = fs_recv(b->fs_fd, &u, sizeof(u));
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            forkserver_lost(b, "closed its channel");
            return;
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
            worker_get(b, u.m.pid, true);
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
    }
}

void pool_reap(broker_t *b)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == b->fs_pid) {
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
        have += w->state != W_RETIRING && w->kill == KILL_NONE;
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

void pool_shutdown(broker_t *b)
{
    worker_t *w, *tmp;
    int status;

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
