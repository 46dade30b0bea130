/* broker.c - the broker's hub: makes the subsystems (broker_int.h lists them), owns what no
 * single one does (SIGTERM's drain: cancel the queue, grace for running jobs, then kills),
 * runs the loop, and takes everything down in order.
 *
 * One thread, one loop (loop.h) over the client ROUTER, a signalfd, the forkserver channels and
 * the workers' links; timers and ticks give the poll its timeout. */
#define _GNU_SOURCE
#include "broker_int.h"

#include "access.h"

#include "forq_config.h"
#include "jobs.h"
#include "log.h"
#include "nodelink.h"
#include "nodes.h"
#include "notify.h"
#include "outbox.h"
#include "pool.h"
#include "reload.h"
#include "stats.h"
#include "tasks.h"
#include "util.h"

#include <signal.h>
#include <sys/random.h>
#include <stdio.h>
#include <string.h>

#define LAST_CHANCE_MS 2000 /* undelivered replies may still leave after the stop */

/* SIGTERM, SIGINT: stop accepting, cancel what is queued, give running jobs the grace time; a
 * second signal ends the grace at once. */
static void on_stop_signal(void *ud, int signo)
{
    broker_t *b = ud;
    wire_hdr_t why = {.code = wire_str("shutting_down"),
                      .msg = wire_str("forqd is shutting down; the job never started")};
    jobs_counts_t jc;
    size_t cancelled;

    (void)signo;
    if (b->draining) {
        log_notice("second stop signal: cancelling running jobs now");
        b->drain_deadline = now_ms();
        return;
    }
    notify_stopping();
    b->draining = true;
    b->drain_deadline = now_ms() + (uint64_t)b->cfg->grace_ms;
    cancelled = jobs_cancel_queued(b->jobs, &why);
    jobs_counts(b->jobs, &jc);
    log_notice("stopping: %zu queued job(s) cancelled, %zu running job(s) get %ld s to finish",
               cancelled, jc.running, b->cfg->grace_ms / 1000);
}

/* While draining: stop when nothing runs; past the grace time kill what still runs; if the
 * kills are not reported either, answer the jobs anyway. */
static uint64_t drain_tick(void *ud, uint64_t now)
{
    broker_t *b = ud;
    worker_t *w, *tmp;
    jobs_counts_t jc;

    if (!b->draining)
        return LOOP_NEVER;
    jobs_counts(b->jobs, &jc);
    if (jc.running == 0 && jc.ahead == 0) {
        loop_stop(b->loop);
        return LOOP_NEVER;
    }
    if (now < b->drain_deadline)
        return b->drain_deadline;
    if (!b->drain_killed) {
        log_notice("grace time over: cancelling %zu running job(s)", jc.running);
        HASH_ITER(hh, pool_workers(b->pool), w, tmp)
        if (w->job)
            pool_kill(b->pool, w, KILL_SHUTDOWN);
        nodes_stop_all(b->nodes, false);
        b->drain_killed = true;
        b->drain_deadline = now + 5000;
        return b->drain_deadline;
    }
    /* the forkserver did not report the kills: answer the jobs anyway */
    HASH_ITER(hh, pool_workers(b->pool), w, tmp)
    {
        wire_hdr_t x = {.msg = wire_str("forqd stopped before its worker reported")};
        if (w->job)
            jobs_finish(b->jobs, w->job, WIRE_ST_LOST, &x, NULL);
        while (w->ahead)
            jobs_finish(b->jobs, w->ahead, WIRE_ST_LOST, &x, NULL);
    }
    nodes_stop_all(b->nodes, true);
    loop_stop(b->loop);
    return LOOP_NEVER;
}

broker_t *broker_new(const config_t *cfg, pid_t fs_pid, int fs_fd)
{
    broker_t *b = xcalloc(1, sizeof(*b));
    int r;

    b->cfg = cfg;
    b->started_ms = now_ms();
    /* a restart is a new instance; 0 stays "unknown" */
    while (getrandom(&b->instance, sizeof(b->instance), 0) != (ssize_t)sizeof(b->instance) ||
           b->instance == 0)
        ;
    b->loop = loop_new();
    b->tasks = tasks_new();
    /* the order of their ticks in a turn: replies that waited, the job queue, the service
     * manager; then what services attach; then the pool (pool_start), whose last tick writes
     * what the turn queued for workers */
    b->out = outbox_new(b);
    b->jobs = jobs_new(b);
    b->stats = stats_new(b);
    loop_tick_add(b->loop, drain_tick, b);
    b->pool = pool_new(b, fs_pid, fs_fd);
    b->reload = reload_new(b);
    b->listen = listener_new(b);
    b->access = access_new(b);
    b->nodes = nodes_new(b);
    if ((r = loop_signal_add(b->loop, SIGTERM, ORDER_SIGNALS, on_stop_signal, b)) < 0 ||
        (r = loop_signal_add(b->loop, SIGINT, ORDER_SIGNALS, on_stop_signal, b)) < 0) {
        fprintf(stderr, "forqd: cannot create a signalfd: %s\n", strerror(-r));
        broker_destroy(&b);
        return NULL;
    }
    return b;
}

loop_t *broker_loop(broker_t *b)
{
    return b->loop;
}

outbox_t *broker_outbox(broker_t *b)
{
    return b->out;
}

void broker_attach_dict(broker_t *b, const broker_dict_ops_t *ops, void *ud)
{
    b->dict = ops;
    b->dict_ud = ud;
}

void broker_worker_gone(broker_t *b, pid_t pid)
{
    if (b->dict && b->dict->worker_gone)
        b->dict->worker_gone(b->dict_ud, pid);
}

int broker_run(broker_t *b)
{
    const counters_t *st = &b->st;

    if (pool_start(b->pool, 30000) < 0 || listener_bind(b->listen) < 0 ||
        nodes_bind(b->nodes, listener_context(b->listen)) < 0)
        return 1;
    if (b->cfg->join && !(b->nodelink = nodelink_new(b, listener_context(b->listen))))
        return 1;
    log_notice("forqd %s ready: %ld workers, listening on %s%s", FORQ_VERSION, b->cfg->workers,
               b->cfg->listen.items[0], b->cfg->listen.n > 1 ? " and more" : "");
    if (loop_run(b->loop) < 0)
        return 1;
    log_notice(
        "stopped: %llu jobs submitted, %llu ok, %llu failed otherwise",
        (unsigned long long)st->submitted, (unsigned long long)st->ok,
        (unsigned long long)(st->error + st->cancelled + st->timeout + st->crashed + st->lost));
    return 0;
}

void broker_destroy(broker_t **bp)
{
    broker_t *b = *bp;

    if (!b)
        return;
    nodelink_destroy(&b->nodelink); /* first: what its forqd answered last goes to the head */
    outbox_destroy(&b->out, now_ms() + LAST_CHANCE_MS);
    pool_destroy(&b->pool);
    reload_destroy(&b->reload);
    jobs_destroy(&b->jobs);
    tasks_destroy(&b->tasks);
    stats_destroy(&b->stats);
    nodes_destroy(&b->nodes);
    access_destroy(&b->access); /* its sockets first: the listener's context ends with it */
    listener_destroy(&b->listen);
    loop_destroy(&b->loop);
    free(b);
    *bp = NULL;
}
