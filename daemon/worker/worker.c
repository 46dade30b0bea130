/* worker.c - see worker.h. Crashes are the worker's to have: a task that segfaults takes the
 * worker down, the forkserver reports the signal, and the broker answers the job "crashed". */
#define _GNU_SOURCE
#include "worker.h"

#include "log.h"
#include "plugins.h"
#include "proctitle.h"
#include "task_ctx.h"
#include "util.h"
#include "wire.h"
#include "wlink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>

static void set_error(job_outcome_t *o, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(job_outcome_t *o, const char *type, const char *fmt, ...)
{
    va_list ap;
    o->ok = false;
    snprintf(o->etype, sizeof(o->etype), "%s", type);
    va_start(ap, fmt);
    vsnprintf(o->emsg, sizeof(o->emsg), fmt, ap);
    va_end(ap);
}

void job_outcome_done(job_outcome_t *o)
{
    msgpack_sbuffer_destroy(&o->result);
}

/* Lower the soft limits for one job; `saved` gets what to restore. The CPU limit is the job's
 * own CPU time: a timer on this process's CPU clock raises SIGXCPU after cpu_s seconds of it
 * (RLIMIT_CPU counts the whole process in whole seconds, so alone it would grant a reused
 * worker's job up to a second more, and more after earlier jobs); RLIMIT_CPU stays as the
 * backstop a task cannot disarm. */
static void limits_apply(unsigned long long as_bytes, unsigned long long cpu_s,
                         struct rlimit *saved, timer_t *ret_timer, bool *ret_armed)
{
    getrlimit(RLIMIT_AS, &saved[0]);
    getrlimit(RLIMIT_CPU, &saved[1]);
    *ret_armed = false;
    if (as_bytes) {
        struct rlimit r = saved[0];
        if (r.rlim_max == RLIM_INFINITY || as_bytes < r.rlim_max)
            r.rlim_cur = as_bytes;
        setrlimit(RLIMIT_AS, &r);
    }
    if (cpu_s) {
        struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGXCPU};
        struct itimerspec its = {.it_value = {.tv_sec = (time_t)cpu_s}};
        struct rusage ru;
        struct rlimit r = saved[1];
        getrusage(RUSAGE_SELF, &ru);
        rlim_t used = (rlim_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1);
        if (r.rlim_max == RLIM_INFINITY || used + cpu_s + 1 < r.rlim_max)
            r.rlim_cur = used + cpu_s + 1;
        setrlimit(RLIMIT_CPU, &r);
        if (timer_create(CLOCK_PROCESS_CPUTIME_ID, &ev, ret_timer) == 0) {
            timer_settime(*ret_timer, 0, &its, NULL);
            *ret_armed = true;
        }
    }
}

static void limits_restore(const struct rlimit *saved, timer_t timer, bool armed)
{
    if (armed)
        timer_delete(timer);
    setrlimit(RLIMIT_AS, &saved[0]);
    setrlimit(RLIMIT_CPU, &saved[1]);
}

/* One call of the task; on success its result is in `out` (which it may have been part of).
 * The result may nest `max_depth` levels: less than WIRE_DEPTH_MAX where it is wrapped. */
static bool call(const task_entry_t *t, forq_task_ctx_t *ctx, const msgpack_object *args,
                 msgpack_sbuffer *out, unsigned max_depth, job_outcome_t *ret)
{
    msgpack_packer pk;
    size_t before = out->size;
    wire_err_t werr;
    int r;

    ctx->failed = false;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    r = t->fn(ctx, args, &pk);
    if (r < 0 || ctx->failed) {
        if (ctx->failed)
            set_error(ret, ctx->etype, "%s", ctx->emsg);
        else
            set_error(ret, "TaskError", "task '%s' failed without saying why", ctx->task);
    } else if (wire_check(out->data + before, out->size - before, max_depth, &werr) < 0) {
        if (strcmp(werr.code, "too_deep") == 0)
            set_error(ret, "ResultTooDeep",
                      "the result of '%s' nests deeper than %u levels, more than clients can "
                      "read",
                      ctx->task, max_depth);
        else
            set_error(ret, "TaskError", "task '%s' packed a bad result: %s", ctx->task, werr.msg);
    } else {
        return true;
    }
    out->size = before;
    return false;
}

static void pack_text(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* A chunk: each element of args is one call's args; one entry per call, errors included. */
static void run_chunk(const task_entry_t *t, forq_task_ctx_t *ctx, const msgpack_object *args,
                      job_outcome_t *ret)
{
    msgpack_packer pk;
    job_outcome_t item;

    if (args->type != MSGPACK_OBJECT_ARRAY) {
        set_error(ret, "TypeError", "a chunk job's args must be an array of calls' args");
        return;
    }
    msgpack_packer_init(&pk, &ret->result, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, args->via.array.size);
    for (uint32_t i = 0; i < args->via.array.size; i++) {
        size_t mark = ret->result.size;
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int(&pk, 0);
        item.ok = false; /* call() sets etype and emsg when it fails (no memset: 1 KiB an item) */
        /* an item's result goes out as [[0, value], ...] */
        if (!call(t, ctx, &args->via.array.ptr[i], &ret->result, WIRE_VALUE_DEPTH_MAX, &item)) {
            ret->result.size = mark;
            msgpack_pack_array(&pk, 3);
            msgpack_pack_int(&pk, 1);
            pack_text(&pk, item.etype);
            pack_text(&pk, item.emsg);
        }
    }
    ret->ok = true;
}

void worker_run(const config_t *cfg, const job_spec_t *job, job_outcome_t *ret)
{
    const task_entry_t *t = plugins_find(job->task, job->task_len);
    msgpack_zone zone;
    msgpack_object obj;
    wire_err_t werr;
    struct rlimit saved[2];
    timer_t cpu_timer = 0;
    bool cpu_armed = false;
    char name[WIRE_TASK_MAX + 1];
    forq_task_ctx_t ctx = {0};
    uint64_t t0;

    memset(ret, 0, sizeof(*ret));
    msgpack_sbuffer_init(&ret->result);
    snprintf(name, sizeof(name), "%.*s", (int)job->task_len, job->task);
    if (!t) {
        set_error(ret, "UnknownTask", "this worker has no task '%s'", name);
        return;
    }
    msgpack_zone_init(&zone, 4096);
    if (wire_unpack(job->args, job->args_len, &zone, &obj, &werr) < 0) {
        set_error(ret, "ValueError", "the job's arguments are not valid msgpack: %s", werr.msg);
        msgpack_zone_destroy(&zone);
        return;
    }
    ctx.job_id = job->job_id;
    ctx.task = name;
    ctx.cfg = cfg;
    ctx.max_result = job->max_result;
    ctx.link = job->link;

    if (job->as_bytes || job->cpu_s)
        limits_apply(job->as_bytes, job->cpu_s, saved, &cpu_timer, &cpu_armed);
    t0 = now_us();
    if (job->chunk)
        run_chunk(t, &ctx, &obj, ret);
    else
        ret->ok = call(t, &ctx, &obj, &ret->result, WIRE_DEPTH_MAX, ret);
    ret->run_us = now_us() - t0;
    if (job->as_bytes || job->cpu_s)
        limits_restore(saved, cpu_timer, cpu_armed);
    msgpack_zone_destroy(&zone);

    if (ret->ok && ret->result.size > job->max_result) {
        set_error(ret, "ResultTooLarge",
                  "the result of '%s' is %zu bytes, more than the job's "
                  "limit of %zu",
                  name, ret->result.size, job->max_result);
        msgpack_sbuffer_clear(&ret->result);
    }
}

static int send_hdr(wlink_t *l, const wire_hdr_t *h, msgpack_sbuffer *buf, const void *payload,
                    size_t plen, bool has_payload)
{
    msgpack_sbuffer_clear(buf);
    if (wire_hdr_encode(buf, h) < 0)
        return -ENOMEM;
    return wlink_send(l, buf->data, buf->size, payload, plen, has_payload);
}

/* Jobs this worker has received and not started (the broker sends jobs of short tasks ahead:
 * --prefetch), in order. */
typedef struct pending {
    struct pending *next;
    wlink_msg_t m;   /* owned; the strings below point into it */
    job_spec_t spec; /* the job, decoded */
    wire_str_t id;
    char id_z[WIRE_ID_MAX + 1]; /* spec.job_id */
} pending_t;

typedef struct {
    pending_t *head, *tail;
} inbox_t;

/* Handle one message from the broker: queue a job; skip a queued job the broker cancels
 * (answering DONE cancelled; a job already run is not found, and its DONE went out before);
 * drop a late dict reply. Returns -1 on a message a worker cannot take. */
static int take(wlink_t *l, inbox_t *in, wlink_msg_t *m, msgpack_zone *zone, msgpack_sbuffer *hbuf,
                size_t max_payload)
{
    wire_hdr_t h;
    wire_err_t werr;

    msgpack_zone_clear(zone);
    if (wire_hdr_decode(m->hdr, m->hlen, zone, &h, &werr) < 0) {
        log_error("bad message from the broker (%s); this worker exits", werr.msg);
        return -1;
    }
    if (h.cmd == WIRE_JOB) {
        pending_t *p = xmalloc(sizeof(*p));
        p->next = NULL;
        p->m = *m;
        p->id = h.id;
        snprintf(p->id_z, sizeof(p->id_z), "%.*s", (int)h.id.len, h.id.ptr);
        p->spec = (job_spec_t){.job_id = p->id_z,
                               .task = h.task.ptr,
                               .task_len = h.task.len,
                               .args = m->payload,
                               .args_len = m->plen,
                               .max_result = h.max_result ? h.max_result : max_payload,
                               .as_bytes = h.as_bytes,
                               .cpu_s = h.cpu_s,
                               .chunk = h.chunk,
                               .link = l};
        if (in->tail)
            in->tail->next = p;
        else
            in->head = p;
        in->tail = p;
        return 0;
    }
    if (h.cmd == WIRE_CANCEL) {
        for (pending_t **pp = &in->head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
            pending_t *p = *pp;
            if (p->id.len != h.id.len || memcmp(p->id.ptr, h.id.ptr, h.id.len) != 0)
                continue;
            *pp = p->next;
            if (in->tail == p)
                in->tail = prev;
            wire_hdr_t done = {.cmd = WIRE_DONE, .id = p->id, .state = WIRE_ST_CANCELLED};
            if (send_hdr(l, &done, hbuf, NULL, 0, false) < 0) {
                /* a broken link shows at the next read */
            }
            free(p->m.base);
            free(p);
            break;
        }
        free(m->base);
        return 0;
    }
    free(m->base);
    if (h.cmd == WIRE_DICT_REPLY || h.cmd == WIRE_ERROR)
        return 0; /* a late answer to a dict call its task stopped waiting for */
    log_error("bad message from the broker (not a job: %s); this worker exits",
              wire_cmd_name(h.cmd));
    return -1;
}

/* Take in everything the broker has sent (jobs, cancels), waiting for a first message when
 * `wait` and nothing is queued. False when the broker is gone. */
static bool take_all(wlink_t *l, inbox_t *in, msgpack_zone *zone, msgpack_sbuffer *hbuf,
                     size_t max_payload, bool wait)
{
    for (;;) {
        wlink_msg_t m;
        int r;

        if (wlink_take_held(l, &m))
            r = 1;
        else
            r = wlink_recv(l, wait && !in->head ? -1 : 0, true, &m);
        if (r == 0)
            return true;
        if (r < 0) {
            if (r != -EPIPE) /* EPIPE: the broker is gone, nothing more to do */
                log_error("bad message from the broker (%s); this worker exits", strerror(-r));
            return false;
        }
        if (take(l, in, &m, zone, hbuf, max_payload) < 0)
            _exit(3);
    }
}

void worker_main(const config_t *cfg, int fd)
{
    char err[512];
    wlink_t link;
    inbox_t in = {0};
    msgpack_sbuffer hbuf;
    msgpack_zone zone;
    size_t max_payload = (size_t)cfg->max_payload;
    long done = 0;
    bool alive;

    log_setup(cfg->log_level, "worker");
    proctitle_set("forqd: worker idle");
    proctitle_set_name("forqd-worker");
    if (plugins_worker_init(err, sizeof(err)) < 0) {
        log_error("%s; this worker exits", err);
        _exit(3);
    }
    /* non-blocking: between jobs it takes in whatever is there without waiting */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (wlink_init(&link, fd, max_payload + WIRE_HEADER_MAX) < 0)
        _exit(3);
    msgpack_sbuffer_init(&hbuf);
    msgpack_zone_init(&zone, 2048);

    wire_hdr_t ready = {.cmd = WIRE_READY, .pid = getpid()};
    if (send_hdr(&link, &ready, &hbuf, NULL, 0, false) < 0)
        _exit(3);

    alive = take_all(&link, &in, &zone, &hbuf, max_payload, true);
    while (alive && in.head) {
        job_outcome_t out;
        pending_t *p = in.head;
        int r;

        in.head = p->next;
        if (!in.head)
            in.tail = NULL;
        /* ps shows what runs: the task and its job (for a map, the chunk job) */
        proctitle_set("forqd: worker %.*s %s", (int)p->spec.task_len, p->spec.task, p->id_z);
        worker_run(cfg, &p->spec, &out);
        proctitle_set("forqd: worker idle");
        done++;

        wire_hdr_t reply = {.cmd = WIRE_DONE, .id = p->id, .run_us = out.run_us};
        reply.retire = cfg->max_jobs_per_worker > 0 && done >= cfg->max_jobs_per_worker;
        if (out.ok) {
            reply.state = WIRE_ST_OK;
        } else {
            reply.state = WIRE_ST_ERROR;
            reply.etype = wire_str(out.etype);
            reply.msg = wire_str(out.emsg);
        }
        /* what has come meanwhile, so that a cancel of the next job is seen before it starts;
         * `next` then tells the broker which job that is (PROTOCOL.md section 8) */
        if (!reply.retire)
            alive = take_all(&link, &in, &zone, &hbuf, max_payload, false);
        if (alive && !reply.retire && in.head)
            reply.next = in.head->id;
        /* at once, never held back for the next job's: when the broker kills this worker, what
         * it has written tells exactly which jobs finished */
        r = send_hdr(&link, &reply, &hbuf, out.result.data, out.ok ? out.result.size : 0, out.ok);
        free(p->m.base);
        free(p);
        job_outcome_done(&out);
        if (r < 0 || reply.retire)
            break;
        if (alive && !in.head)
            alive = take_all(&link, &in, &zone, &hbuf, max_payload, true);
    }
    while (in.head) {
        pending_t *p = in.head;
        in.head = p->next;
        free(p->m.base);
        free(p);
    }
    msgpack_sbuffer_destroy(&hbuf);
    msgpack_zone_destroy(&zone);
    wlink_done(&link);
    plugins_unload_all();
    _exit(0);
}
