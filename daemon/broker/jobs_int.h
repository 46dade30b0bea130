/* jobs_int.h - what jobs.c shares with dispatch.c, and nobody else: the jobs record and the
 * phase changes dispatch makes. */
#ifndef FORQ_JOBS_INT_H
#define FORQ_JOBS_INT_H

#include "jobs.h"
#include "jobtab.h"

struct jobs {
    broker_t *b;
    jobtab_t tab;       /* every known job, by id */
    sched_t sched;      /* QUEUED jobs */
    uint8_t timer_kind; /* of job->timer (loop.h) */
    job_t *done;        /* retention list, oldest first */
    size_t n_done;
    size_t retained_bytes; /* result headers and frames kept for fetch */
    size_t running;        /* RUNNING jobs */
    size_t ahead;          /* AHEAD jobs */
    uint32_t next_seq;     /* job->seq */
};

/* The job starts running on w (which is not idle any more): its attempt counted. */
void jobs_start_running(jobs_t *jobs, worker_t *w, job_t *job);
/* Back to the front of the queue (a retry, or a job a dead worker never started). */
void jobs_requeue_front(jobs_t *jobs, job_t *job);
/* The queue meets idle workers, nodes with credit, and busy workers' room ahead. */
void jobs_dispatch(jobs_t *jobs);

#endif
