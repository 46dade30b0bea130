/* joblist.c - the queue as a whole, for operators: the list of live jobs (`jobs`), and
 * cancelling queued jobs in bulk (`purge`, and a removed key's jobs). See jobs.h.
 *
 * Running jobs are found through the workers, queued ones by walking the queue in priority
 * order; a listing looks at no more than JOBS_SCAN_MAX queued jobs, so that no request costs
 * the broker more than a few milliseconds however long the queue. */
#define _GNU_SOURCE
#include "jobs.h"

#include "access.h"
#include "log.h"
#include "nodes.h"
#include "outbox.h"
#include "pool.h"
#include "util.h"

#include <msgpack.h>
#include <stdio.h>
#include <string.h>
#include <uthash.h>

#define JOBS_LIMIT_DEF 1000
#define JOBS_LIMIT_MAX 10000
#define JOBS_SCAN_MAX  100000 /* queued jobs one listing looks at */

typedef struct {
    jobs_t *jobs;
    broker_t *b;
    uint16_t who;         /* the asker */
    bool all;             /* an admin: everyone's jobs */
    wire_state_t want;    /* WIRE_ST_QUEUED, WIRE_ST_RUNNING, or NONE: both */
    wire_str_t task;      /* only this task's, when set */
    msgpack_packer pk;    /* the entries */
    msgpack_sbuffer sb;   /* their bytes */
    size_t limit, listed; /* at most limit entries; how many so far */
    bool more;            /* a match was left out (limit, or the scan stopped) */
    uint64_t now;
} list_t;

static void pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

static void pack_key(msgpack_packer *pk, const char *k)
{
    pack_str(pk, k, strlen(k));
}

static bool selected(const list_t *l, const job_t *job)
{
    return (l->all || job->owner == l->who) &&
           (!l->task.ptr ||
            (strlen(job->task) == l->task.len && memcmp(job->task, l->task.ptr, l->task.len) == 0));
}

/* One entry: id, task, status, owner, priority, age_ms, attempts; a running job's pid, run_ms
 * and latest progress (done, total, text). */
static void pack_job(list_t *l, const job_t *job, bool running)
{
    msgpack_packer *pk = &l->pk;
    const worker_t *w = running ? job->worker : NULL;
    const char *owner = access_name(l->b->access, job->owner);
    bool remote = running && job->phase == JOB_REMOTE;

    msgpack_pack_map(pk, w ? 12 : remote ? 9 : 7);
    pack_key(pk, "id");
    pack_str(pk, job->id, job->id_len);
    pack_key(pk, "task");
    pack_key(pk, job->task);
    pack_key(pk, "status");
    pack_key(pk, running ? "running" : "queued");
    pack_key(pk, "owner");
    pack_key(pk, owner);
    pack_key(pk, "priority");
    msgpack_pack_uint32(pk, job->prio);
    pack_key(pk, "age_ms");
    msgpack_pack_uint64(pk, l->now - job->accepted_ms);
    pack_key(pk, "attempts");
    msgpack_pack_uint32(pk, job->attempts);
    if (remote) { /* at a worker node: its name instead of a pid */
        uint64_t started;
        pack_key(pk, "node");
        pack_key(pk, nodes_run_where(job, &started));
        pack_key(pk, "run_ms");
        msgpack_pack_uint64(pk, l->now - started);
    }
    if (w) {
        pack_key(pk, "pid");
        msgpack_pack_int64(pk, w->pid);
        pack_key(pk, "run_ms");
        msgpack_pack_uint64(pk, l->now - w->job_started_ms);
        pack_key(pk, "done");
        msgpack_pack_uint64(pk, w->prog_done);
        pack_key(pk, "total");
        msgpack_pack_uint64(pk, w->prog_total);
        pack_key(pk, "text");
        pack_key(pk, w->prog_text);
    }
}

/* Add job if selected; false once the list is full. */
static bool add(list_t *l, const job_t *job, bool running)
{
    if (!selected(l, job))
        return true;
    if (l->listed == l->limit) {
        l->more = true;
        return false;
    }
    pack_job(l, job, running);
    l->listed++;
    return true;
}

static bool visit_remote(const job_t *job, void *ud)
{
    return add(ud, job, true);
}

static bool visit_queued(sched_item_t *item, void *ud)
{
    list_t *l = ud;
    return add(l, container_of(item, job_t, item), false);
}

void jobs_list(jobs_t *jobs, const origin_t *o, const wire_hdr_t *h)
{
    broker_t *b = jobs_broker(jobs);
    list_t l = {.jobs = jobs,
                .b = b,
                .who = o->who,
                .all = access_admin(b->access, o->who),
                .want = h->state,
                .task = h->task,
                .limit = h->limit ? (h->limit > JOBS_LIMIT_MAX ? JOBS_LIMIT_MAX : h->limit)
                                  : JOBS_LIMIT_DEF,
                .now = now_ms()};
    worker_t *w, *tmp;
    bool full = false;

    if (l.want != WIRE_ST_NONE && l.want != WIRE_ST_QUEUED && l.want != WIRE_ST_RUNNING) {
        outbox_error(b->out, o, h, "bad_field",
                     "jobs lists live jobs: 'status' is queued or running, or absent for both");
        return;
    }
    msgpack_sbuffer_init(&l.sb);
    msgpack_packer_init(&l.pk, &l.sb, msgpack_sbuffer_write);
    if (l.want != WIRE_ST_QUEUED) {
        HASH_ITER(hh, pool_workers(b->pool), w, tmp)
        {
            if (!full && w->job)
                full = !add(&l, w->job, true);
        }
        if (!full)
            nodes_visit(b->nodes, visit_remote, &l);
    }
    if (l.want != WIRE_ST_RUNNING) {
        HASH_ITER(hh, pool_workers(b->pool), w, tmp)
        {
            for (const job_t *a = w->ahead; a && !full; a = a->ahead_next)
                full = !add(&l, a, false);
        }
        if (!full && sched_visit(jobs_queue(jobs), visit_queued, &l) >= JOBS_SCAN_MAX)
            l.more = true;
    }

    msgpack_sbuffer all;
    msgpack_packer pk;
    zmq_msg_t payload;
    msgpack_sbuffer_init(&all);
    msgpack_packer_init(&pk, &all, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, l.listed);
    msgpack_sbuffer_write(&all, l.sb.data, l.sb.size);
    zmq_msg_init_size(&payload, all.size);
    memcpy(zmq_msg_data(&payload), all.data, all.size);
    wire_hdr_t r = {.cmd = WIRE_JOBS_REPLY,
                    .req = h->req,
                    .has_req = h->has_req,
                    .count = l.listed,
                    .more = l.more};
    outbox_send(b->out, o, &r, &payload);
    zmq_msg_close(&payload);
    msgpack_sbuffer_destroy(&all);
    msgpack_sbuffer_destroy(&l.sb);
}

/* ---- cancelling in bulk ---- */

typedef struct {
    bool by_owner; /* else by task (or every job, task.ptr NULL) */
    uint16_t owner;
    wire_str_t task;
    job_t **found;
    size_t n, cap;
} pick_t;

static bool visit_pick(sched_item_t *item, void *ud)
{
    pick_t *p = ud;
    job_t *job = container_of(item, job_t, item);

    if (p->by_owner ? job->owner != p->owner
                    : p->task.ptr && (strlen(job->task) != p->task.len ||
                                      memcmp(job->task, p->task.ptr, p->task.len) != 0))
        return true;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->found = xrealloc(p->found, p->cap * sizeof(*p->found));
    }
    p->found[p->n++] = job;
    return true;
}

/* Cancel what p picked: gathered first, as finishing a job changes the queue. */
static size_t cancel_picked(jobs_t *jobs, pick_t *p, const wire_hdr_t *why)
{
    size_t n;

    sched_visit(jobs_queue(jobs), visit_pick, p);
    for (size_t i = 0; i < p->n; i++)
        jobs_finish(jobs, p->found[i], WIRE_ST_CANCELLED, why, NULL);
    n = p->n;
    free(p->found);
    return n;
}

size_t jobs_cancel_owner(jobs_t *jobs, uint16_t owner, const wire_hdr_t *why)
{
    pick_t p = {.by_owner = true, .owner = owner};
    return cancel_picked(jobs, &p, why);
}

void jobs_purge(jobs_t *jobs, const origin_t *o, const wire_hdr_t *h)
{
    broker_t *b = jobs_broker(jobs);
    pick_t p = {.task = h->task};
    char msg[160];
    size_t n;

    if (!access_admin(b->access, o->who)) {
        outbox_error(b->out, o, h, "forbidden",
                     "purge cancels every client's jobs: it needs the admin right in forqd's "
                     "clients file; ask forqd's operator");
        return;
    }
    snprintf(msg, sizeof(msg), "cancelled before it started: purged by %s",
             access_name(b->access, o->who));
    wire_hdr_t why = {.msg = wire_str(msg)};
    n = cancel_picked(jobs, &p, &why);
    log_notice("purge by %s: %zu queued job(s)%s%.*s cancelled", access_name(b->access, o->who), n,
               h->task.ptr ? " of task " : "", (int)h->task.len, h->task.ptr ? h->task.ptr : "");
    wire_hdr_t r = {.cmd = WIRE_PURGE_REPLY, .req = h->req, .has_req = h->has_req, .count = n};
    outbox_send(b->out, o, &r, NULL);
}
