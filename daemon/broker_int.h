/* broker_int.h - the broker's state, shared by broker.c (event loop, clients, job lifecycle) and
 * pool.c (workers and the forkserver). Not a public interface.
 *
 * Invariants:
 * - A job is in exactly one phase. QUEUED: in the scheduler, in its client's `live`, its timer
 *   armed iff it has a queue deadline. RUNNING: `worker` set and worker->job == job, in `live`,
 *   its timer armed iff it has a run timeout. DONE: answered, args freed, `client` NULL, in the
 *   retention list until pruned.
 * - Every job that leaves QUEUED or RUNNING for DONE goes through broker_finish(), which sends
 *   its one result. */
#ifndef FORQ_BROKER_INT_H
#define FORQ_BROKER_INT_H

#include "broker.h"
#include "config.h"
#include "dict.h"
#include "dictlog.h"
#include "sched.h"
#include "timers.h"
#include "wire.h"
#include "jobtab.h"
#include "wlink.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uthash.h>
#include <zmq.h>

typedef struct client client_t;
typedef struct worker worker_t;
typedef struct dwaiter dwaiter_t;

#define BROKER_BATCH 256 /* messages read from one socket before looking at the others */

/* What a timer node belongs to. */
enum { TIMER_JOB = 0, TIMER_DICT_WAIT = 1 };

/* Who sent a request: a client, or a worker asking for its running task (dict). */
typedef struct {
    const uint8_t *ident; /* routing id of the sender */
    size_t ilen;
    bool delim;           /* REQ-style envelope */
    bool worker;          /* from a worker's link (ident "w<pid>") */
} origin_t;

/* AHEAD: sent to a busy worker, which starts it when it has finished the jobs before it
 * (--prefetch, short tasks only). */
typedef enum { JOB_QUEUED, JOB_AHEAD, JOB_RUNNING, JOB_DONE } job_phase_t;

/* Who asked to cancel a job sent ahead, answered when the worker has said whether it had
 * started it. */
typedef struct canceller {
    struct canceller *next;     /* list: each cancel gets its answer */
    uint64_t req;
    bool has_req, delim;
    uint8_t ident_len;
    uint8_t ident[];
} canceller_t;

#define WATCHERS_MAX 16 /* clients that fetch one unfinished job, besides its submitter */

/* A client that asked (fetch) for an unfinished job's result. */
typedef struct watcher {
    struct watcher *next;       /* list */
    bool delim;                 /* REQ-style envelope */
    uint8_t ident_len;
    uint8_t ident[];            /* routing id */
} watcher_t;

/* What few jobs need, allocated when first needed. */
typedef struct job_extra {
    watcher_t *watchers;        /* fetchers of this unfinished job */
    char *store;                /* "name\0key": store an ok result there (owned), or NULL */
    canceller_t *canceller;     /* cancels waiting for the worker's answer (AHEAD), owned */
} job_extra_t;

/* A job. Kept small: a million of them may be queued (bench/, workload 7). */
typedef struct job {
    zmq_msg_t msg;              /* the args frame until DONE (passed through untouched, kept for
                                   retries); then the result frame of an ok job (a shared copy,
                                   for fetch), empty otherwise */
    client_t *client;           /* submitter until DONE */
    worker_t *worker;           /* while AHEAD or RUNNING */
    struct job *ahead_next;     /* in worker->ahead while AHEAD */
    job_extra_t *x;             /* NULL unless fetched, stored or cancelled ahead (owned) */
    const char *task;           /* interned task name (broker.tasks) */
    union {
        sched_item_t item;      /* queue links while QUEUED */
        struct {
            struct job *done_prev, *done_next; /* retention list while DONE */
        };
    };
    timer_node_t timer;         /* queue deadline while QUEUED, run timeout while RUNNING */
    uint8_t *rhdr;              /* while DONE: the encoded result header, for fetch */
    union {
        uint64_t deadline_at;   /* until it starts: absolute queue deadline (ms), 0 = none */
        uint64_t finished_ms;   /* once DONE: when */
    };
    uint64_t as_bytes;          /* address-space limit, 0 = none */
    uint32_t seq;               /* order of acceptance (wrapping): names it across reuse of its
                                   memory for the moment a kill is on its way */
    uint32_t max_result;        /* result size limit (<= --max-payload, at most 1 GiB) */
    uint32_t timeout_ms;        /* run timeout, 0 = none (at most 49 days) */
    uint32_t cpu_s;             /* CPU-seconds limit, 0 = none */
    uint32_t rhdr_len;          /* bytes of rhdr */
    uint16_t retries_left;      /* crashes it may still survive (<= WIRE_RETRIES_MAX) */
    uint16_t attempts;          /* times it was started */
    uint8_t phase;              /* job_phase_t; see the invariants above */
    uint8_t final;              /* wire_state_t: terminal state when DONE */
    uint8_t prio;               /* 0..9 */
    bool chunk;                 /* args is an array of calls */
    uint8_t id_len;             /* bytes of id */
    char id[];                  /* the client's job id, NUL-terminated */
} job_t;

/* A result that zmq could not take yet (the client's pipe was full). */
typedef struct outmsg {
    struct outmsg *next;        /* FIFO */
    zmq_msg_t hdr;              /* encoded header */
    zmq_msg_t payload;          /* result frame, when has_payload */
    bool has_payload;
} outmsg_t;

struct client {
    UT_hash_handle hh;          /* in broker.clients by identity */
    sched_lane_t lanes[SCHED_NPRIO]; /* its queued jobs per priority */
    size_t live;                /* QUEUED + RUNNING jobs */
    outmsg_t *backlog, *backlog_tail; /* results waiting for room */
    size_t backlog_n;           /* their count */
    client_t *bl_prev, *bl_next; /* in broker.backlogged while backlog_n > 0 */
    bool delim;                 /* it sends an empty delimiter frame (REQ socket) */
    uint8_t ident_len;          /* bytes of ident */
    uint8_t ident[];            /* ZeroMQ routing id */
};

/* KILL_RETIRE: an idle worker of a forkserver a reload replaced */
typedef enum { KILL_NONE, KILL_CANCEL, KILL_TIMEOUT, KILL_SHUTDOWN, KILL_RETIRE } kill_reason_t;

/* A forkserver: the current one, a reload's new one, or one a reload replaced. */
typedef struct {
    pid_t pid;                  /* 0 = none */
    int fd;                     /* its channel, -1 = none */
} fsrv_t;

#define OLD_FS_MAX 4            /* replaced forkservers whose workers still finish jobs */

/* A message to a worker that its link could not take yet. */
typedef struct wout {
    struct wout *next;          /* FIFO */
    size_t len, off;            /* bytes in all (prefix, header, payload), bytes written */
    size_t hlen;                /* prefix + header bytes in head */
    zmq_msg_t payload;          /* empty when the message has none */
    uint8_t head[];             /* prefix and header */
} wout_t;
typedef enum { W_STARTING, W_IDLE, W_BUSY, W_RETIRING } worker_state_t;

struct worker {
    UT_hash_handle hh;          /* in broker.workers by pid */
    pid_t pid;                  /* process id */
    pid_t fs_pid;               /* the forkserver that forked it */
    worker_state_t state;       /* STARTING until READY; RETIRING after its last job */
    job_t *job;                 /* the job it runs, when BUSY */
    kill_reason_t kill;         /* why we asked the forkserver to kill it */
    uint32_t kill_seq;          /* the job the kill was meant for (its seq), 0 = none */
    job_t *ahead, *ahead_tail;  /* jobs sent ahead, in the order it will start them */
    unsigned n_ahead;
    bool ready;                 /* said READY */
    uint64_t jobs_done;         /* jobs it finished */
    uint64_t spawn_us;          /* when it was asked for */
    worker_t *idle_prev, *idle_next; /* in broker.idle while IDLE */
    wlink_t link;               /* to the worker process; link.fd -1 once it closed */
    wout_t *out, *out_tail;     /* messages waiting to be written on the link */
    bool dirty;                 /* in broker.dirty */
    char ident[16];             /* "w<pid>": names it as the origin of a dict request */
    uint8_t ident_len;
};

/* Interned task names: job->task points here; entries live as long as the broker. */
typedef struct task_name {
    UT_hash_handle hh;
    bool present;               /* offered by the current forkserver */
    uint64_t avg_us;            /* moving average of its jobs' run time */
    uint32_t samples;           /* jobs in it, up to a cap */
    char name[];
} task_name_t;

typedef struct {
    uint64_t submitted, ok, error, cancelled, timeout, crashed, rejected, lost;
    uint64_t retried, undeliverable, malformed, workers_started, worker_crashes, sent_ahead;
    uint64_t last_replace_us;   /* a crashed worker's exit to its replacement's READY */
} counters_t;

struct broker {
    const config_t *cfg;
    void *zctx;                 /* ZeroMQ context */
    void *clients;              /* ROUTER bound to cfg->listen */
    int sigfd;                  /* signalfd: TERM, INT, HUP, CHLD */
    int fs_fd;                  /* channel to the forkserver, -1 while none */
    pid_t fs_pid;               /* the forkserver, 0 while none */
    bool fs_ready;              /* it said HELLO */
    unsigned fs_failures;       /* forkservers that died in a row */
    uint64_t fs_restart_at;     /* when to start the next one (ms) */
    jobtab_t jobs;              /* every known job, by id */
    client_t *client_tab;       /* clients with live jobs or backlog, by identity */
    worker_t *worker_tab;       /* workers, by pid */
    worker_t *idle;             /* IDLE workers, most recently used first */
    task_name_t *tasks;         /* interned task names */
    size_t spawn_pending;       /* SPAWNs sent without SPAWNED or SPAWN_ERR */
    unsigned spawn_failures;    /* workers that died before READY, in a row */
    uint64_t spawn_at;          /* no spawn before this (ms): crash-loop backoff */
    uint64_t replace_from_us;   /* when a crashed worker's exit was seen, 0 = none pending */
    sched_t sched;              /* queued jobs */
    timers_t timers;            /* job deadlines */
    job_t *done;                /* retention list, oldest first */
    size_t n_done;
    size_t retained_bytes;      /* result headers and frames kept for fetch */
    client_t *backlogged;       /* clients with undelivered results */
    size_t running;             /* RUNNING jobs */
    size_t ahead;               /* AHEAD jobs */
    pid_t *dirty;               /* workers with messages queued this loop iteration */
    size_t n_dirty, cap_dirty;
    uint32_t next_seq;          /* job->seq */
    fsrv_t next_fs;             /* a reload's new forkserver, until it says HELLO */
    config_t *next_cfg;         /* the reload's configuration (owned) */
    fsrv_t old_fs[OLD_FS_MAX];  /* forkservers a reload replaced, while workers of theirs run */
    config_t *cfg_owned;        /* b->cfg when a reload made it (owned) */
    bool notify;                /* a service manager listens (notify.h) */
    bool notified_ready;        /* READY=1 was sent */
    uint64_t status_at;         /* when to send the next STATUS (ms) */
    double rate;                /* jobs/s, about the last 10 s (rate_update) */
    uint64_t rate_at_us;        /* when it was last brought up to date */
    uint64_t rate_count;        /* jobs finished then */
    msgpack_zone zone;          /* scratch for header decoding */
    msgpack_sbuffer hbuf;       /* scratch for header encoding */
    bool draining;              /* SIGTERM seen: reject submits, finish running work */
    bool drain_killed;          /* grace over: running jobs' workers were killed */
    uint64_t drain_deadline;    /* end of the grace time (ms) */
    bool stop;                  /* leave the loop */
    uint64_t started_ms;        /* for uptime */
    counters_t st;
    dstore_t *dict;             /* the dict service's store */
    dictlog_t *dict_log;        /* its log, NULL without --state-dir */
    dwaiter_t *dict_waiters;    /* clients in a dict wait */
    size_t n_dict_waiters;
    struct dchange *dict_changed; /* keys changed by the request under way */
    struct dundo *dict_undo;    /* their values before it, while a log is kept */
};

/* broker.c */
void broker_finish(broker_t *b, job_t *job, wire_state_t state, const wire_hdr_t *extra,
                   zmq_msg_t *payload);
void broker_requeue(broker_t *b, job_t *job);
void broker_dispatch(broker_t *b);
/* A worker finished its running job: the next job sent ahead to it, if any, now runs. */
void broker_promote(broker_t *b, worker_t *w);
/* Answer a cancel that waited for the worker (see canceller_t). */
void broker_answer_canceller(broker_t *b, job_t *job, const char *outcome);
/* Bind the endpoints of `next` that are not bound, unbind those it lacks. 0, or -errno after
 * logging why (nothing changed then). */
int broker_rebind(broker_t *b, const config_t *next);
/* Status line for the service manager. */
void broker_status_line(broker_t *b, char *buf, size_t size);

void broker_progress(broker_t *b, job_t *job, const wire_hdr_t *h);
void broker_send(broker_t *b, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload);
void broker_error(broker_t *b, const origin_t *o, const wire_hdr_t *req, const char *code,
                  const char *msg);

/* broker_dict.c */
int dict_service_init(broker_t *b);
void dict_service_done(broker_t *b);
void dict_on_request(broker_t *b, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload);
void dict_on_timer(broker_t *b, timer_node_t *t);
size_t dict_pack_stats(broker_t *b, msgpack_packer *pk); /* returns the entries packed */
void dict_tick(broker_t *b, uint64_t now);
/* Store a finished job's result (the `store` option). 0, or -errno when it could not be kept. */
int dict_store_result(broker_t *b, const char *name, const char *key, const void *val,
                      size_t vlen);

/* pool.c */
int pool_wait_hello(broker_t *b, int timeout_ms);
void pool_fs_input(broker_t *b);
/* Fill poll items for the workers' links (POLLOUT too where messages wait); pids[i] names the
 * worker of items[i]. Returns how many were filled (at most max). */
size_t pool_poll_items(broker_t *b, zmq_pollitem_t *items, pid_t *pids, size_t max);
size_t pool_count(broker_t *b);
/* A worker's link is readable or writable (revents of its poll item). */
void pool_worker_io(broker_t *b, pid_t pid, short revents);
/* Send a message to a worker (payload, may be NULL, is taken): queued, and written by
 * pool_flush() at the end of the loop iteration. 0, or -EPIPE if its link is gone (its exit
 * report follows). Never blocks: what the link cannot take waits for it to be writable. */
int pool_send(broker_t *b, worker_t *w, const void *hdr, size_t hlen, zmq_msg_t *payload);
/* Write the messages queued this loop iteration (many to a write). */
void pool_flush(broker_t *b);
worker_t *pool_worker(broker_t *b, pid_t pid);
void pool_maintain(broker_t *b, uint64_t now);
void pool_kill(broker_t *b, worker_t *w, kill_reason_t why);
/* Send a job (RUNNING or AHEAD on w) to the worker; false if its link is gone (w retires). */
bool pool_send_job(broker_t *b, worker_t *w, job_t *job);
/* Ask the worker to skip a job sent ahead; it answers DONE(cancelled) or starts it anyway. */
void pool_cancel_ahead(broker_t *b, worker_t *w, job_t *job);
worker_t *pool_take_idle(broker_t *b);
void pool_reap(broker_t *b);
void pool_shutdown(broker_t *b);
/* SIGHUP: read the configuration again and start a forkserver with it; the reload completes
 * when that one says HELLO (pool_reload_input), or is refused, the old configuration kept. */
void pool_reload(broker_t *b);
/* Poll items for the reload's forkserver and the replaced ones; roles[i]: -1 the new one, else
 * the index in old_fs. Returns how many. */
size_t pool_fs_items(broker_t *b, zmq_pollitem_t *items, int *roles);
void pool_fs_extra_input(broker_t *b, int role);
task_name_t *pool_task(broker_t *b, const char *name, size_t len);

#endif
