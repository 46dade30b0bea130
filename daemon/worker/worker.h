/* worker.h - a worker process: forked by the forkserver with one end of a socketpair to the
 * broker (wlink.h), it says READY, then runs one job at a time until the broker is gone or it
 * has run --max-jobs-per-worker jobs. It has no ZeroMQ context and no threads. */
#ifndef FORQ_WORKER_H
#define FORQ_WORKER_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <msgpack.h>

/* Run the worker loop. Never returns. */
void worker_main(const config_t *cfg, int link_fd) __attribute__((noreturn));

/* The outcome of one job, as the worker reports it. */
typedef struct {
    bool ok;                   /* the task returned a result */
    char etype[64];            /* error type when !ok */
    char emsg[1025];           /* error message when !ok */
    msgpack_sbuffer result;    /* the packed result when ok (owned) */
    unsigned long long run_us; /* wall time of the task call */
} job_outcome_t;

/* Run task `task` (len bytes) on the msgpack `args` bytes, under the job's limits. Used by the
 * worker loop and by unit tests. `ret` must be freed with job_outcome_done(). */
typedef struct {
    const char *job_id; /* NUL-terminated */
    const char *task;   /* task name, task_len bytes */
    size_t task_len;
    const void *args; /* msgpack args (a chunk: an array of calls' args) */
    size_t args_len;
    size_t max_result;           /* result size limit */
    unsigned long long as_bytes; /* RLIMIT_AS for the job, 0 = none */
    unsigned long long cpu_s;    /* RLIMIT_CPU for the job, 0 = none */
    bool chunk;                  /* run the task once per element of args */
    struct wlink *link;          /* to the broker, for progress and dict calls; may be NULL */
} job_spec_t;

/* Run a job under its limits. A chunk's result is an array with one entry per call:
 * [0, value] or [1, etype, msg]. `ret` must be freed with job_outcome_done(). */
void worker_run(const config_t *cfg, const job_spec_t *job, job_outcome_t *ret);
void job_outcome_done(job_outcome_t *o);

#endif
