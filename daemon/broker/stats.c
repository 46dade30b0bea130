/* stats.c - the stats reply, jobs/s and sd_notify. See stats.h. */
#define _GNU_SOURCE
#include "stats.h"

#include "access.h"
#include "conncap.h"
#include "forq_config.h"
#include "jobs.h"
#include "nodes.h"
#include "notify.h"
#include "outbox.h"
#include "pool.h"
#include "tasks.h"
#include "util.h"

#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* jobs/s over about the last 10 s: an exponentially decaying average of finished jobs */
#define RATE_TAU_S 10.0

#define TRIM_EVERY_MS 1000       /* how often an idle broker looks at the memory it holds */
#define TRIM_FREE_MIN (4u << 20) /* freed bytes worth handing back */

struct stats {
    broker_t *b;
    uint64_t trim_at;    /* when to look at freed memory next (ms) */
    bool notify;         /* a service manager listens (notify.h) */
    bool notified_ready; /* READY=1 was sent */
    uint64_t status_at;  /* when to send the next STATUS (ms) */
    double rate;         /* jobs/s, about the last 10 s (rate_update) */
    uint64_t rate_at_us; /* when it was last brought up to date */
    uint64_t rate_count; /* jobs finished then */
};

/* Jobs finished since start, whatever their end. */
static uint64_t finished(const counters_t *st)
{
    return st->ok + st->error + st->cancelled + st->timeout + st->crashed + st->lost;
}

static void rate_update(stats_t *s, uint64_t now_us)
{
    double dt = (double)(now_us - s->rate_at_us) / 1e6;
    uint64_t done = finished(&s->b->st);

    if (s->rate_at_us == 0) {
        s->rate_at_us = now_us;
        s->rate_count = done;
        return;
    }
    if (dt < 0.05)
        return;
    double decay = exp(-dt / RATE_TAU_S);
    /* the jobs of the interval, spread evenly over it, into the average */
    s->rate = s->rate * decay + (double)(done - s->rate_count) / dt * (1.0 - decay);
    s->rate_at_us = now_us;
    s->rate_count = done;
}

void stats_status_line(broker_t *b, char *buf, size_t size)
{
    jobs_counts_t jc;

    jobs_counts(b->jobs, &jc);
    if (nodes_count(b->nodes))
        snprintf(buf, size,
                 "%zu/%ld workers busy, %zu/%zu node slots busy on %zu node(s), %zu "
                 "queued, %.0f jobs/s",
                 pool_busy(b->pool), b->cfg->workers, nodes_busy(b->nodes), nodes_slots(b->nodes),
                 nodes_count(b->nodes), jc.queued, b->stats->rate);
    else
        snprintf(buf, size, "%zu/%ld workers busy, %zu queued, %.0f jobs/s", pool_busy(b->pool),
                 b->cfg->workers, jc.queued, b->stats->rate);
}

/* Memory a burst left behind goes back to the system once forqd is idle: freed job records,
 * args and results stay in malloc's free lists otherwise (tens to hundreds of MiB after a
 * burst that expired). Only when nothing is queued or running, and at most once a second. */
static uint64_t trim_if_idle(stats_t *s, uint64_t now)
{
    jobs_counts_t jc;

    if (now < s->trim_at)
        return s->trim_at;
    s->trim_at = now + TRIM_EVERY_MS;
    jobs_counts(s->b->jobs, &jc);
    if (jc.queued || jc.running || jc.ahead || outbox_backlog(s->b->out))
        return s->trim_at; /* busy: look again after it */
    if (mallinfo2().fordblks >= TRIM_FREE_MIN)
        malloc_trim(0);
    return LOOP_NEVER; /* idle and trimmed: nothing to look at until work comes */
}

/* The service manager's view: READY=1 once the endpoints are bound and the pool is up, then a
 * STATUS line every second; the watchdog ping. And the idle trim. */
static uint64_t tick(void *ud, uint64_t now)
{
    stats_t *s = ud;
    broker_t *b = s->b;
    char status[160];
    uint64_t next = notify_next(), trim = trim_if_idle(s, now);

    if (trim < next)
        next = trim;
    notify_tick(now);
    rate_update(s, now * 1000);
    if (!s->notify || b->draining)
        return next;
    if (s->notified_ready && now < s->status_at)
        return s->status_at < next ? s->status_at : next;
    /* READY waits for the whole pool */
    if (!s->notified_ready && pool_ready(b->pool) < (size_t)b->cfg->workers)
        return next;
    stats_status_line(b, status, sizeof(status));
    if (!s->notified_ready)
        notify_ready(status);
    else
        notify_status(status);
    s->notified_ready = true;
    s->status_at = now + 1000;
    return s->status_at < next ? s->status_at : next;
}

stats_t *stats_new(broker_t *b)
{
    stats_t *s = xcalloc(1, sizeof(*s));

    s->b = b;
    s->notify = notify_init();
    loop_tick_add(b->loop, tick, s);
    return s;
}

void stats_destroy(stats_t **sp)
{
    free(*sp);
    *sp = NULL;
}

static void pack_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
}

static void pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    pack_key(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void pack_strs(msgpack_packer *pk, char **v, size_t n)
{
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        pack_key(pk, v[i]);
}

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
static void pack_worker_list(broker_t *b, const origin_t *o, msgpack_packer *pk)
{
    bool admin = access_admin(b->access, o->who);
    static const char *const states[] = {"starting", "idle", "busy", "retiring"};
    worker_t *w, *wt;

    pack_key(pk, "worker_list");
    msgpack_pack_array(pk, pool_count(b->pool));
    HASH_ITER(hh, pool_workers(b->pool), w, wt)
    {
        /* another client's job is shown only to an admin */
        bool shown = w->job && (admin || w->job->owner == o->who);
        msgpack_pack_map(pk, 7);
        pack_kv_u64(pk, "pid", (uint64_t)w->pid);
        pack_key(pk, "state");
        pack_key(pk, w->kill != KILL_NONE ? "killed" : states[w->state]);
        pack_key(pk, "job");
        if (shown) {
            msgpack_pack_str(pk, w->job->id_len);
            msgpack_pack_str_body(pk, w->job->id, w->job->id_len);
        } else {
            msgpack_pack_nil(pk);
        }
        pack_key(pk, "owner");
        if (shown)
            pack_key(pk, access_name(b->access, w->job->owner));
        else
            msgpack_pack_nil(pk);
        pack_kv_u64(pk, "jobs_done", w->jobs_done);
        pack_kv_u64(pk, "ahead", w->n_ahead);
        pack_kv_u64(pk, "rss_kib", rss_kib(w->pid));
    }
}

/* "client_list" (to admins): each client with live jobs or held replies: its identity, its
 * unfinished jobs, its held replies. */
static void pack_client_list(broker_t *b, msgpack_packer *pk)
{
    pack_key(pk, "client_list");
    msgpack_pack_array(pk, outbox_clients(b->out));
    for (const client_t *c = outbox_client_first(b->out); c; c = c->hh.next) {
        msgpack_pack_map(pk, 3);
        pack_key(pk, "identity");
        pack_key(pk, access_name(b->access, c->who));
        pack_kv_u64(pk, "jobs", c->live);
        pack_kv_u64(pk, "backlog", c->backlog_n);
    }
}

#define BROKER_STATS 42 /* the entries stats_reply packs itself, client_list aside */

void stats_reply(broker_t *b, const origin_t *o, const wire_hdr_t *h)
{
    const counters_t *st = &b->st;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    zmq_msg_t payload;
    jobs_counts_t jc;
    size_t idle = 0;

    for (const worker_t *w = pool_workers(b->pool); w; w = w->hh.next)
        idle += w->state == W_IDLE;
    jobs_counts(b->jobs, &jc);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rate_update(b->stats, now_us());
    bool admin = access_admin(b->access, o->who);
    msgpack_pack_map(&pk, BROKER_STATS + admin + (b->dict ? b->dict->n_stats : 0));
    pack_key(&pk, "version");
    pack_key(&pk, FORQ_VERSION);
    pack_kv_u64(&pk, "pid", (uint64_t)getpid());
    pack_kv_u64(&pk, "forkserver_pid", (uint64_t)pool_forkserver(b->pool));
    pack_kv_u64(&pk, "uptime_ms", now_ms() - b->started_ms);
    pack_key(&pk, "identity");
    pack_key(&pk, access_name(b->access, o->who));
    pack_kv_u64(&pk, "workers", (uint64_t)b->cfg->workers);
    pack_kv_u64(&pk, "workers_live", pool_count(b->pool));
    pack_kv_u64(&pk, "workers_idle", idle);
    pack_kv_u64(&pk, "workers_busy", pool_busy(b->pool));
    pack_kv_u64(&pk, "queued", jc.queued);
    pack_key(&pk, "queued_by_priority");
    msgpack_pack_array(&pk, SCHED_NPRIO);
    for (unsigned p = 0; p < SCHED_NPRIO; p++)
        msgpack_pack_uint64(&pk, jc.by_prio[p]);
    pack_kv_u64(&pk, "running", jc.running);
    pack_kv_u64(&pk, "ahead", jc.ahead);
    pack_kv_u64(&pk, "clients", outbox_clients(b->out));
    pack_kv_u64(&pk, "conn_cap", (uint64_t)conncap_ceiling());
    pack_kv_u64(&pk, "conns_refused", conncap_refused());
    pack_kv_u64(&pk, "backlog", outbox_backlog(b->out));
    pack_kv_u64(&pk, "retained", jc.retained);
    pack_kv_u64(&pk, "retained_bytes", jc.retained_bytes);
    pack_kv_u64(&pk, "submitted", st->submitted);
    pack_kv_u64(&pk, "ok", st->ok);
    pack_kv_u64(&pk, "error", st->error);
    pack_kv_u64(&pk, "cancelled", st->cancelled);
    pack_kv_u64(&pk, "timeout", st->timeout);
    pack_kv_u64(&pk, "crashed", st->crashed);
    pack_kv_u64(&pk, "rejected", st->rejected);
    pack_kv_u64(&pk, "lost", st->lost);
    pack_kv_u64(&pk, "retried", st->retried);
    pack_kv_u64(&pk, "undeliverable", st->undeliverable);
    pack_kv_u64(&pk, "malformed", st->malformed);
    pack_kv_u64(&pk, "workers_started", st->workers_started);
    pack_kv_u64(&pk, "worker_crashes", st->worker_crashes);
    pack_kv_u64(&pk, "last_replace_us", st->last_replace_us);
    pack_kv_u64(&pk, "sent_ahead", st->sent_ahead);
    pack_key(&pk, "jobs_per_s");
    msgpack_pack_double(&pk, b->stats->rate);
    pack_worker_list(b, o, &pk);
    if (admin)
        pack_client_list(b, &pk);
    pack_key(&pk, "endpoints");
    pack_strs(&pk, b->cfg->listen.items, b->cfg->listen.n);
    pack_key(&pk, "tasks");
    tasks_pack(b->tasks, &pk);
    pack_key(&pk, "task_docs");
    tasks_pack_docs(b->tasks, &pk);
    pack_kv_u64(&pk, "node_slots", nodes_slots(b->nodes));
    pack_key(&pk, "nodes");
    nodes_pack(b->nodes, &pk);
    pack_key(&pk, "exec_allowed");
    pack_strs(&pk, b->cfg->exec_allow.items, b->cfg->exec_allow.n);
    if (b->dict)
        b->dict->pack_stats(b->dict_ud, &pk);

    zmq_msg_init_size(&payload, sb.size);
    memcpy(zmq_msg_data(&payload), sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    wire_hdr_t r = {.cmd = WIRE_STATS_REPLY, .req = h->req, .has_req = h->has_req};
    outbox_send(b->out, o, &r, &payload);
}
