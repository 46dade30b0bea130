/* broker.h - forqd's broker: one thread around one event loop that owns the job table, the
 * queue, the worker pool and the timers, and answers every accepted job exactly once.
 *
 * A service that lives in the broker's loop without being part of it (the dict service,
 * daemon/dict/) attaches itself with broker_attach_dict() and sends through the outbox
 * (outbox.h): the broker calls it through the table of functions it gives, and never includes
 * its headers. */
#ifndef FORQ_BROKER_H
#define FORQ_BROKER_H

#include "config.h"
#include "wire.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <zmq.h>

typedef struct broker broker_t;
typedef struct loop loop_t;
typedef struct outbox outbox_t;

/* Who sent a request: a client by routing id, or a worker's running task by pid. Borrowed for
 * the duration of the call: copy what must outlive it. */
typedef struct origin {
    const uint8_t *ident; /* routing id of a client */
    size_t ilen;          /* its bytes */
    bool delim;           /* it sends an empty delimiter frame (REQ socket) */
    pid_t worker;         /* or: the worker whose task asked, 0 for a client */
    uint16_t who;         /* the identity it acts as (access.h): the client's, or the running
                             job's owner for a task */
} origin_t;

/* The dict service, as the broker sees it. */
typedef struct {
    /* A `dict` request (from a client or a task); payload (may be NULL) is the value frame. */
    void (*request)(void *ud, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload);
    /* Pack exactly n_stats key/value pairs into the stats map. */
    void (*pack_stats)(void *ud, msgpack_packer *pk);
    size_t n_stats;
    /* Keep a finished job's result (the `store` submit option). 0, or -errno. */
    int (*store)(void *ud, const char *name, const char *key, const void *val, size_t len);
    /* The worker `pid` is gone (its exit was reported): forget what its task waited for. */
    void (*worker_gone)(void *ud, pid_t pid);
} broker_dict_ops_t;

/* A broker for cfg (borrowed until broker_destroy) with the forkserver already started (its
 * pid and channel, taken). NULL after printing why (no signalfd, say). The signals TERM, INT,
 * HUP and CHLD must be blocked in every thread. */
broker_t *broker_new(const config_t *cfg, pid_t fs_pid, int fs_fd);
/* Stop the workers and the forkservers, free everything. Safe twice. */
void broker_destroy(broker_t **b);
/* What a service registers with (borrowed, as long as the broker). */
loop_t *broker_loop(broker_t *b);
outbox_t *broker_outbox(broker_t *b);
void broker_attach_dict(broker_t *b, const broker_dict_ops_t *ops, void *ud);
/* May the identity `who` (origin_t.who) read the dict `name` (len bytes)? The dict service asks
 * it for each dict it would list in answer to `dicts`, which anyone may ask: the broker checks
 * the rights of every other dict op before the service sees it. False for an identity whose key
 * was removed. O(1) for "local"; one fnmatch per read=/write= glob otherwise. */
bool broker_dict_readable(broker_t *b, uint16_t who, const char *name, size_t len);
/* Wait for the forkserver, bind, and run until SIGTERM/SIGINT has drained the broker.
 * Returns the process exit status: 0 after a clean stop, 1 on a start-up error (printed). */
int broker_run(broker_t *b);

#endif
