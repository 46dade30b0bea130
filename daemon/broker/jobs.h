/* jobs.h - the life of a job, from acceptance to its one result: queueing, dispatch to idle
 * workers and ahead to busy ones, cancel, deadlines and run timeouts, the fate of a dead
 * worker's jobs (crashed, retried, requeued), results, fetch and retention. The only exit is
 * jobs_finish(). See job.h for the phases and their invariants. */
#ifndef FORQ_JOBS_H
#define FORQ_JOBS_H

#include "broker_int.h"
#include "job.h"
#include "sched.h"

jobs_t *jobs_new(broker_t *b);
/* Free every job record (no replies are sent). Safe twice. */
void jobs_destroy(jobs_t **jobs);

job_t *jobs_find(jobs_t *jobs, wire_str_t id);
/* Queue a new job for client c (the caller checked h and the limits). Takes args. `task` is
 * interned (tasks.h). A finished job of the same id is forgotten first. */
void jobs_accept(jobs_t *jobs, client_t *c, const wire_hdr_t *h, const char *task, zmq_msg_t *args);
/* The one exit: answer the job (extra: fields of the result header; payload: the result of an
 * ok job, consumed) and retain it for fetch and status. */
void jobs_finish(jobs_t *jobs, job_t *job, wire_state_t state, const wire_hdr_t *extra,
                 zmq_msg_t *payload);
/* Requests about a job by id: cancel (answers cancel_reply), fetch (its result, now or when
 * it ends). */
void jobs_cancel(jobs_t *jobs, const origin_t *o, const wire_hdr_t *h);
void jobs_fetch(jobs_t *jobs, const origin_t *o, const wire_hdr_t *h);

/* From pool.c, the seam: */
/* A worker's DONE (payload: its result frame, consumed). True when the worker has nothing left
 * (idle, or retiring: pool.c decides); false while it runs, or may run, a job sent ahead. */
bool jobs_worker_done(jobs_t *jobs, worker_t *w, const wire_hdr_t *h, zmq_msg_t *payload);
/* A worker's PROGRESS for its running job. */
void jobs_worker_progress(jobs_t *jobs, worker_t *w, const wire_hdr_t *h);
/* A worker died (status: its wait status; fs_died: with its forkserver): its running job is
 * answered or retried, its jobs sent ahead go back to the queue. */
void jobs_worker_lost(jobs_t *jobs, worker_t *w, int status, bool fs_died);

/* From nodes.c: a job at a node that may be retried is queued again at the front (a retry
 * spent; true), else false and nothing changed. */
bool jobs_retry(jobs_t *jobs, job_t *job);
/* A job at a node that never started there: back to the front, no attempt counted. */
void jobs_requeue(jobs_t *jobs, job_t *job);
/* A node's progress report for a REMOTE job (watch.c). */
void jobs_remote_progress(jobs_t *jobs, job_t *job, const wire_hdr_t *p);

/* The queue (joblist.c walks it), and the broker the jobs belong to. */
const sched_t *jobs_queue(const jobs_t *jobs);
broker_t *jobs_broker(const jobs_t *jobs);

/* joblist.c: the queue as a whole, for operators. */
/* Cancel the queued jobs of one identity (its key was removed); returns how many. */
size_t jobs_cancel_owner(jobs_t *jobs, uint16_t owner, const wire_hdr_t *why);
/* `jobs`: the live jobs (running, sent ahead, queued) that h's `status` and `task` select,
 * o's own or, for an admin, everyone's; at most h's `limit` of them (default 1000, at most
 * 10000), as a jobs_reply with a payload array. */
void jobs_list(jobs_t *jobs, const origin_t *o, const wire_hdr_t *h);
/* `purge` (admin): cancel the queued jobs of h's `task`, or all; answers a purge_reply. */
void jobs_purge(jobs_t *jobs, const origin_t *o, const wire_hdr_t *h);
/* Answer every queued job cancelled (why: the result's code and msg); how many there were. */
size_t jobs_cancel_queued(jobs_t *jobs, const wire_hdr_t *why);

/* Counts for stats. */
typedef struct {
    size_t queued, by_prio[SCHED_NPRIO], running, ahead, retained, retained_bytes;
} jobs_counts_t;
void jobs_counts(const jobs_t *jobs, jobs_counts_t *ret);

#endif
