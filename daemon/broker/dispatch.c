/* dispatch.c - where queued jobs go, once per loop turn: to an idle worker of this forqd when it
 * has the task (and the job's tags), else to a worker node with credit (nodes.h), then, for
 * short tasks, ahead to busy workers. See jobs.h. */
#define _GNU_SOURCE
#include "jobs.h"
#include "jobs_int.h"

#include "nodes.h"
#include "pool.h"
#include "tasks.h"
#include "util.h"

#include <string.h>

/* Does every tag of `want` (comma-separated; NULL: none) appear among this forqd's --tag? */
static bool tags_here(const config_t *cfg, const char *want)
{
    while (want && *want) {
        const char *comma = strchr(want, ',');
        size_t len = comma ? (size_t)(comma - want) : strlen(want), i = 0;
        while (i < cfg->tags.n &&
               !(strlen(cfg->tags.items[i]) == len && memcmp(cfg->tags.items[i], want, len) == 0))
            i++;
        if (len && i == cfg->tags.n)
            return false;
        want = comma ? comma + 1 : NULL;
    }
    return true;
}

/* May the job run on this forqd's own workers? */
static bool runs_here(const jobs_t *jobs, const job_t *job)
{
    return tasks_is_local(job->task) && tags_here(jobs->b->cfg, job->x ? job->x->tags : NULL);
}

/* The job goes to a node (nodes.h). */
static void start_remote(jobs_t *jobs, node_t *node, job_t *job)
{
    loop_timer_disarm(jobs->b->loop, &job->timer);
    job->deadline_at = 0;
    job->phase = JOB_REMOTE;
    job->attempts++;
    jobs->running++;
    if (job->timeout_ms) /* the node enforces it; this is the backstop if it cannot say */
        loop_timer_arm(jobs->b->loop, &job->timer,
                       now_ms() + job->timeout_ms + 3 * (uint64_t)jobs->b->cfg->heartbeat_ms +
                           2000);
    nodes_start(jobs->b->nodes, node, job);
}

/* Give a queued job to an idle worker of this forqd or to a node with credit; false when
 * neither can take it now. *no_idle: this forqd has no idle worker left this turn. */
static bool place(jobs_t *jobs, job_t *job, bool *no_idle)
{
    worker_t *w;
    node_t *node;

    if (!*no_idle && runs_here(jobs, job)) {
        if ((w = pool_take_idle(jobs->b->pool))) {
            sched_take(&jobs->sched, &job->item);
            jobs_start_running(jobs, w, job);
            if (!pool_send_job(jobs->b->pool, w, job)) {
                job->attempts--;
                jobs_requeue_front(jobs, job);
            }
            return true;
        }
        *no_idle = true;
    }
    if (jobs->b->draining || !(node = nodes_pick(jobs->b->nodes, job)))
        return false;
    sched_take(&jobs->sched, &job->item);
    start_remote(jobs, node, job);
    return true;
}

#define LOOKAHEAD 64 /* queued jobs looked at past one that can go nowhere now */

typedef struct {
    job_t *v[LOOKAHEAD];
    size_t n;
} lookahead_t;

static bool collect(sched_item_t *item, void *ud)
{
    lookahead_t *la = ud;
    la->v[la->n++] = container_of(item, job_t, item);
    return la->n < LOOKAHEAD;
}

/* The queue meets idle workers and nodes with credit, in the scheduler's order (priorities,
 * then round robin between clients). A job that can go nowhere now (its task or tags only on
 * busy nodes) does not hold back the next LOOKAHEAD jobs that can. */
void jobs_dispatch(jobs_t *jobs)
{
    pool_t *pool = jobs->b->pool;
    worker_t *w;
    bool no_idle = false;

    while (jobs->sched.total > 0 &&
           place(jobs, container_of(sched_peek(&jobs->sched), job_t, item), &no_idle))
        ;
    if (jobs->sched.total > 1 && (!no_idle || nodes_count(jobs->b->nodes) > 0)) {
        lookahead_t la = {.n = 0};
        sched_visit(&jobs->sched, collect, &la);
        for (size_t i = 1; i < la.n && (!no_idle || nodes_have_room(jobs->b->nodes)); i++)
            place(jobs, la.v[i], &no_idle);
    }
    while (jobs->sched.total > 0 && !jobs->b->draining) {
        job_t *job = container_of(sched_peek(&jobs->sched), job_t, item);

        if (!tasks_is_short(job->task) || !runs_here(jobs, job) || !(w = pool_ahead_slot(pool)))
            return;
        sched_pop(&jobs->sched);
        loop_timer_disarm(jobs->b->loop, &job->timer);
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
        jobs->ahead++;
        jobs->b->st.sent_ahead++;
        if (!pool_send_job(pool, w, job)) {
            jobs_requeue_front(jobs, job);
            return;
        }
    }
}
