/* pool.h - the worker processes: the forkserver channels, worker records and their links
 * (wlink.h), spawning, killing, reaping and replacing. What happens to a worker's jobs is
 * jobs.c's business: pool reports READY, DONE and exits to it (jobs.h) and offers it the
 * functions below. */
#ifndef FORQ_POOL_H
#define FORQ_POOL_H

#include "broker_int.h"
#include "job.h"
#include "linkq.h"
#include "wlink.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uthash.h>

/* Why we asked the forkserver to kill a worker; KILL_RETIRE: an idle worker of a forkserver a
 * reload replaced, or one too many after a reload. */
typedef enum { KILL_NONE, KILL_CANCEL, KILL_TIMEOUT, KILL_SHUTDOWN, KILL_RETIRE } kill_reason_t;

typedef enum { W_STARTING, W_IDLE, W_BUSY, W_RETIRING } worker_state_t;

struct worker {
    UT_hash_handle hh;               /* in the pool's table by pid */
    pool_t *pool;                    /* its pool (the link's callback needs it) */
    pid_t pid;                       /* process id */
    pid_t fs_pid;                    /* the forkserver that forked it */
    worker_state_t state;            /* STARTING until READY; RETIRING after its last job */
    job_t *job;                      /* the job it runs, when BUSY (jobs.c) */
    kill_reason_t kill;              /* why we asked the forkserver to kill it */
    uint32_t kill_seq;               /* the job the kill was meant for (its seq), 0 = none */
    job_t *ahead, *ahead_tail;       /* jobs sent ahead, in the order it will start them (jobs.c) */
    unsigned n_ahead;                /* their count */
    bool ready;                      /* said READY */
    uint64_t jobs_done;              /* jobs it finished */
    uint64_t spawn_us;               /* when it was asked for */
    worker_t *idle_prev, *idle_next; /* in the pool's idle list while IDLE */
    wlink_t link;                    /* to the worker process; link.fd -1 once it closed */
    loop_io_t *io;                   /* the link's registration with the loop */
    linkq_t outq;                    /* messages waiting to be written on the link */
    bool dirty;                      /* in the pool's list of links to flush this turn */
    uint64_t job_started_ms;         /* when its running job started (jobs.c) */
    uint64_t prog_done, prog_total;  /* that job's latest progress report (jobs.c) */
    char prog_text[128];             /* and its text, cut to fit */
};

/* The pool of b with its forkserver (pid, channel: taken). */
pool_t *pool_new(broker_t *b, pid_t fs_pid, int fs_fd);
/* Stop every forkserver (they kill their workers) and free the records. Safe twice. */
void pool_destroy(pool_t **pool);
/* Wait for the first forkserver's HELLO, then register with the loop. 0, or -errno after
 * printing why. */
int pool_start(pool_t *pool, int timeout_ms);

/* Workers, by pid: the table's head, for HASH_ITER (stats); one worker, NULL if unknown. */
worker_t *pool_workers(pool_t *pool);
worker_t *pool_worker(pool_t *pool, pid_t pid);
pid_t pool_forkserver(const pool_t *pool);

/* For jobs.c: an idle worker, now BUSY (NULL if none); a busy worker that may take one more
 * job ahead within `limit` (--prefetch) and its --max-jobs-per-worker budget (NULL if none). */
worker_t *pool_take_idle(pool_t *pool);
worker_t *pool_ahead_slot(pool_t *pool);
/* Send a job (RUNNING or AHEAD on w) to the worker; false if its link is gone (w retires, its
 * exit report follows). */
bool pool_send_job(pool_t *pool, worker_t *w, job_t *job);
/* Ask the worker to skip a job sent ahead; it answers DONE(cancelled) or starts it anyway. */
void pool_cancel_ahead(pool_t *pool, worker_t *w, job_t *job);
/* Ask the worker's forkserver to kill it (once; the exit report tells the rest). */
void pool_kill(pool_t *pool, worker_t *w, kill_reason_t why);

/* Queue a message for a worker (payload, may be NULL, is taken); written at the end of the
 * turn, many to a write. 0, or -EPIPE if its link is gone (its exit report follows). Never
 * blocks: what the link cannot take waits for it to be writable. */
int pool_send(pool_t *pool, worker_t *w, const void *hdr, size_t hlen, zmq_msg_t *payload);

/* SIGCHLD: collect exited children. */
void pool_reap(pool_t *pool);
/* reload.c: a new forkserver (pid, channel: taken) said HELLO with these task names
 * (NUL-terminated, back to back). The old one stays while its workers finish their jobs.
 * -ENOSPC when the workers of too many earlier reloads still run (nothing taken then). */
int pool_switch(pool_t *pool, pid_t fs_pid, int fs_fd, const char *names, size_t len);
/* Is there room for one more replaced forkserver (pool_switch would not say -ENOSPC)? */
bool pool_can_switch(pool_t *pool);
/* Counts for stats and the service manager. */
size_t pool_count(const pool_t *pool);
size_t pool_busy(const pool_t *pool);
size_t pool_ready(const pool_t *pool);

#endif
