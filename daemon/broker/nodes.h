/* nodes.h - the head's side of worker nodes (PROTOCOL.md section 14): a ROUTER on every
 * --node-listen endpoint, the table of joined nodes (name, tasks, tags, slots, credit, jobs in
 * flight, heartbeats) and of the runs they hold. A job sent to a node is JOB_REMOTE (job.h); its
 * run is named on the link by a run id, new for every attempt, so that a result of an attempt
 * the head gave up on (the node was lost, the job retried) finds no run and is dropped.
 *
 * jobs.c asks for a node with credit for a job (nodes_pick), hands it over (nodes_start), and
 * tells when the job leaves it (nodes_run_end); nodes.c reports what nodes say through
 * jobs_finish(), jobs_retry() and jobs_requeue(). */
#ifndef FORQ_NODES_H
#define FORQ_NODES_H

#include "broker_int.h"
#include "job.h"

#include <msgpack.h>

typedef struct nodes nodes_t;
typedef struct node node_t;

nodes_t *nodes_new(broker_t *b);
/* Close the socket and free every record (no replies). Safe twice. */
void nodes_destroy(nodes_t **n);
/* Bind cfg's --node-listen endpoints (in the client socket's ZeroMQ context, for the ZAP
 * handler). 0, or -errno after printing why. Nothing to do without endpoints. */
int nodes_bind(nodes_t *n, void *zctx);

/* Does a joined node offer the task (name, len bytes)? */
bool nodes_offer(const nodes_t *n, const char *task, size_t len);
/* A node that has job's task and tags and credit left (the one with the most), or NULL. */
node_t *nodes_pick(nodes_t *n, const job_t *job);
/* May some node take one more job (of a short task, at least)? */
bool nodes_have_room(const nodes_t *n);
/* Send job (its attempt just counted, phase JOB_REMOTE) to node. */
void nodes_start(nodes_t *n, node_t *node, job_t *job);
/* The job leaves its node (answered, retried, requeued): forget its run. */
void nodes_run_end(nodes_t *n, job_t *job);
/* Ask the job's node to cancel it (the node answers with the job's result). */
void nodes_cancel(nodes_t *n, job_t *job);
/* Where a REMOTE job runs: its node's name, since when (ms). */
const char *nodes_run_where(const job_t *job, uint64_t *ret_started_ms);

/* A node's task's dict request carries, as its origin's routing id, NODES_ROUTE and the
 * node's routing id: no client's routing id begins so (ZeroMQ's own are 5 bytes, ids a client
 * sets never begin with a zero byte). outbox.c sends what is addressed so through here: 0, or
 * -EHOSTUNREACH when no such node is joined (payload then still the caller's). */
#define NODES_ROUTE     "\0node:"
#define NODES_ROUTE_LEN 6
int nodes_route(nodes_t *n, const uint8_t *ident, size_t ilen, zmq_msg_t *hdr, zmq_msg_t *payload);

/* Call fn on every job at a node until it returns false. */
void nodes_visit(nodes_t *n, bool (*fn)(const job_t *job, void *ud), void *ud);

/* Stopping: cancel every job at a node (final: answer them lost at once). */
void nodes_stop_all(nodes_t *n, bool final);
/* Counts, and the nodes as a msgpack array of maps for stats. */
size_t nodes_count(const nodes_t *n);
size_t nodes_slots(const nodes_t *n);
size_t nodes_busy(const nodes_t *n);
void nodes_pack(const nodes_t *n, msgpack_packer *pk);

#endif
