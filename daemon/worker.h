/* worker.h - a worker process: forked by the forkserver, it makes its own ZeroMQ context,
 * connects a DEALER to the broker's worker endpoint, says READY, then runs one job at a time
 * until the broker is gone or it has run --max-jobs-per-worker jobs. */
#ifndef FORQ_WORKER_H
#define FORQ_WORKER_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <msgpack.h>

/* Run the worker loop. Never returns. */
void worker_main(const config_t *cfg) __attribute__((noreturn));

/* The outcome of one job, as the worker reports it. */
typedef struct {
    bool ok;                      /* the task returned a result */
    char etype[64];               /* error type when !ok */
    char emsg[1025];              /* error message when !ok */
    msgpack_sbuffer result;       /* the packed result when ok (owned) */
    unsigned long long run_us;    /* wall time of the task call */
} job_outcome_t;

/* Run task `task` (len bytes) on the msgpack `args` bytes, under the job's limits. Used by the
 * worker loop and by unit tests. `ret` must be freed with job_outcome_done(). */
void worker_run(const config_t *cfg, const char *job_id, const char *task, size_t task_len,
                const void *args, size_t args_len, size_t max_result, unsigned long long as_bytes,
                unsigned long long cpu_s, job_outcome_t *ret);
void job_outcome_done(job_outcome_t *o);

#endif
