/* job.h - the job record, its phases and its rare parts.
 *
 * Phases and invariants (jobs.c keeps them; every other file only reads):
 * - QUEUED: in the scheduler, in its client's `live`, its timer armed iff it has a queue
 *   deadline.
 * - AHEAD: sent to a busy worker (--prefetch, short tasks only), in worker->ahead in the order
 *   the worker will start them, `worker` set, in `live`, no timer. The worker starts it when
 *   the jobs before it are done (jobs_promote), or skips it when asked (a cancel); if the
 *   worker dies first it goes back to the front of the queue, no retry spent.
 * - RUNNING: `worker` set and worker->job == job, in `live`, its timer armed iff it has a run
 *   timeout.
 * - REMOTE: sent to a worker node (nodes.h): x->run names the attempt, `worker` NULL, in
 *   `live`, its timer armed iff it has a run timeout (the head's backstop, past the node's).
 * - DONE: answered, args freed, `client` NULL, in the retention list until pruned.
 * Every job that leaves QUEUED, AHEAD or RUNNING for DONE goes through jobs_finish(), which
 * sends its one result. */
#ifndef FORQ_JOB_H
#define FORQ_JOB_H

#include "sched.h"
#include "timers.h"
#include "wire.h"

#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

typedef struct client client_t;
typedef struct worker worker_t;

typedef enum { JOB_QUEUED, JOB_AHEAD, JOB_RUNNING, JOB_DONE, JOB_REMOTE } job_phase_t;

/* Who asked to cancel a job sent ahead, answered when the worker has said whether it had
 * started it. */
typedef struct canceller {
    struct canceller *next; /* list: each cancel gets its answer */
    uint64_t req;           /* the request's number, echoed */
    bool has_req, delim;    /* it had one; REQ-style envelope */
    uint8_t ident_len;      /* bytes of ident */
    uint8_t ident[];        /* routing id */
} canceller_t;

#define WATCHERS_MAX 16 /* clients that fetch one unfinished job, besides its submitter */

/* A client that asked (fetch) for an unfinished job's result. */
typedef struct watcher {
    struct watcher *next; /* list */
    bool delim;           /* REQ-style envelope */
    uint8_t ident_len;    /* bytes of ident */
    uint8_t ident[];      /* routing id */
} watcher_t;

/* What few jobs need, allocated when first needed. */
typedef struct job_extra {
    watcher_t *watchers;    /* fetchers of this unfinished job */
    char *store;            /* "name\0key": store an ok result there (owned), or NULL */
    canceller_t *canceller; /* cancels waiting for the worker's answer (AHEAD), owned */
    bool cancel_told;       /* RUNNING: the task was told of a cancel (--cancel-grace); its
                               worker is killed when the grace is over; REMOTE: a cancel was
                               sent to its node */
    void *run;              /* REMOTE: its run at a node (nodes.c owns it) */
    char *tags;             /* tags its executor must have, comma-separated (owned), or NULL */
} job_extra_t;

/* A job. Kept small: a million of them may be queued (bench/, workload 7). */
typedef struct job {
    zmq_msg_t msg;          /* the args frame until DONE (passed through untouched, kept for
                               retries); then the result frame of an ok job (a shared copy,
                               for fetch), empty otherwise */
    client_t *client;       /* submitter until DONE */
    worker_t *worker;       /* while AHEAD or RUNNING */
    struct job *ahead_next; /* in worker->ahead while AHEAD */
    job_extra_t *x;         /* NULL unless fetched, stored or cancelled ahead (owned) */
    const char *task;       /* interned task name (tasks.c) */
    union {
        sched_item_t item; /* queue links while QUEUED */
        struct {
            struct job *done_prev, *done_next; /* retention list while DONE */
        };
    };
    timer_node_t timer; /* queue deadline while QUEUED, run timeout while RUNNING */
    uint8_t *rhdr;      /* while DONE: the encoded result header, for fetch */
    union {
        uint64_t deadline_at; /* until it starts: absolute queue deadline (ms), 0 = none */
        uint64_t finished_ms; /* once DONE: when */
    };
    uint64_t as_bytes;     /* address-space limit, 0 = none */
    uint64_t accepted_ms;  /* when forqd accepted it */
    uint32_t seq;          /* order of acceptance (wrapping): names it across reuse of its
                              memory for the moment a kill is on its way */
    uint32_t max_result;   /* result size limit (<= --max-payload, at most 1 GiB) */
    uint32_t timeout_ms;   /* run timeout, 0 = none (at most 49 days) */
    uint32_t cpu_s;        /* CPU-seconds limit, 0 = none */
    uint32_t rhdr_len;     /* bytes of rhdr */
    uint16_t retries_left; /* crashes it may still survive (<= WIRE_RETRIES_MAX) */
    uint16_t attempts;     /* times it was started */
    uint16_t owner;        /* the identity that submitted it (access.h) */
    uint8_t phase;         /* job_phase_t; see the invariants above */
    uint8_t final;         /* wire_state_t: terminal state when DONE */
    uint8_t prio;          /* 0..9 */
    bool chunk;            /* args is an array of calls */
    uint8_t id_len;        /* bytes of id */
    char id[];             /* the client's job id, NUL-terminated */
} job_t;

/* A job's extra record, made on first use (jobs.c). */
job_extra_t *job_extra(job_t *job);

#endif
