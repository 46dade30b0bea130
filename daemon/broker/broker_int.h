/* broker_int.h - the broker's context: which subsystems it has and the little they share.
 * Every broker file includes it; what a subsystem keeps is in its own struct, opaque outside its
 * file, reached through its header's functions.
 *
 *   listen.c    the client socket: binding, receiving, decoding headers -> commands.c
 *   commands.c  what a client asks (submit, cancel, status, fetch, ping, stats, dict)
 *   outbox.c    all sending: to clients (with the backlog of a full pipe) and to workers
 *   jobs.c      the whole life of a job, from acceptance to its one result (job.h);
 *               joblist.c the queue as a whole (jobs, purge), watch.c fetchers and progress
 *   pool.c      worker processes, their links and the forkservers; reports to jobs.c
 *   tasks.c     the task names the forkserver offers and their run-time averages
 *   reload.c    SIGHUP: a new configuration and forkserver, switched to at its HELLO
 *   access.c    CURVE, the ZAP handler, the clients file: who a client is, what it may do
 *   stats.c     counters, the stats reply, jobs/s, the service manager's view
 *   dispatch.c  where queued jobs go each turn: own workers, worker nodes, ahead
 *   nodes.c     a head's worker nodes (--node-listen): joins, credit, runs, heartbeats, loss
 *   nodelink.c  a node's link to its head (--join), feeding this forqd's own queue
 *   loop.c      the event loop the others register with; knows none of them
 *
 * The only pair that calls each other is jobs.c and pool.c, through the small seam their
 * headers declare: pool reports a worker's READY, DONE and exit; jobs asks pool for workers,
 * to send a job, to skip one sent ahead, or to kill. */
#ifndef FORQ_BROKER_INT_H
#define FORQ_BROKER_INT_H

#include "broker.h"
#include "config.h"
#include "loop.h"
#include "wire.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

#define BROKER_BATCH 256 /* messages read from one socket before looking at the others */

/* The order in which ready callbacks run in one turn (loop.h): workers first, so that what a
 * worker wrote before it died is read before its exit report is handled. */
enum { ORDER_WORKER = 0, ORDER_OLD_FS, ORDER_SIGNALS, ORDER_FS, ORDER_CLIENTS };

typedef struct outbox outbox_t;
typedef struct jobs jobs_t;
typedef struct pool pool_t;
typedef struct tasks tasks_t;
typedef struct reload reload_t;
typedef struct stats stats_t;
typedef struct listener listener_t;
typedef struct access access_t;
typedef struct nodes nodes_t;
typedef struct nodelink nodelink_t;

typedef struct {
    uint64_t submitted, ok, error, cancelled, timeout, crashed, rejected, lost;
    uint64_t retried, undeliverable, malformed, workers_started, worker_crashes, sent_ahead;
    uint64_t last_replace_us; /* a crashed worker's exit to its replacement's READY */
} counters_t;

struct broker {
    const config_t *cfg; /* in effect; a reload swaps it (reload.c owns the new one) */
    loop_t *loop;
    listener_t *listen;
    outbox_t *out;
    jobs_t *jobs;
    pool_t *pool;
    tasks_t *tasks;
    reload_t *reload;
    stats_t *stats;
    access_t *access;              /* identities and rights */
    nodes_t *nodes;                /* worker nodes that joined this head (nodes.c) */
    nodelink_t *nodelink;          /* this forqd's link to its head, with --join (nodelink.c) */
    const broker_dict_ops_t *dict; /* the dict service, when one is attached */
    void *dict_ud;
    counters_t st;           /* what happened since start, for stats */
    bool draining;           /* SIGTERM seen: reject submits, finish running work */
    bool drain_killed;       /* grace over: running jobs' workers were killed (broker.c) */
    uint64_t drain_deadline; /* end of the grace time, or of the wait for the kills (ms) */
    uint64_t started_ms;     /* for uptime */
    uint64_t instance;       /* random, new at every start: tells clients of a restart */
};

/* listen.c: the client ROUTER */
listener_t *listener_new(broker_t *b);
void listener_destroy(listener_t **l);
/* Create the socket and bind cfg's endpoints; errors are printed. 0 or -errno. */
int listener_bind(listener_t *l);
/* Bind the endpoints of `next` that are not bound, unbind those it lacks. 0, or -errno after
 * logging why (nothing changed then). */
int listener_rebind(listener_t *l, const config_t *next);
void *listener_socket(listener_t *l);
/* The ZeroMQ context the client socket lives in (the node sockets share it, and its ZAP). */
void *listener_context(listener_t *l);

/* commands.c: one request from a client, decoded; `frames` payload frames follow the header
 * (payload: the first of them, NULL if none; too_many: more than the socket kept). */
void commands_handle(broker_t *b, const struct origin *o, const wire_hdr_t *h, int frames,
                     zmq_msg_t *payload);
/* A request whose header did not decode (err says why; h holds what could be read): the
 * error reply, or the submit's rejection when only its store name or key is wrong. */
void commands_malformed(broker_t *b, const struct origin *o, const wire_hdr_t *h,
                        const wire_err_t *err);
/* pool.c: worker pid is gone (its exit was reported): what its task waited for in the dict
 * service (a queue's get, a lock) goes to the next in line. */
void broker_worker_gone(broker_t *b, pid_t pid);
/* May o use the dict h names with h's op (read or write)? If not, the `forbidden` answer is
 * sent and false returned. For clients and for tasks alike. */
bool commands_dict_allowed(broker_t *b, const struct origin *o, const wire_hdr_t *h);

#endif
