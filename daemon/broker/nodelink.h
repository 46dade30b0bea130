/* nodelink.h - a node's side of the node link (PROTOCOL.md section 14): with --join, this forqd
 * is a worker node of a head. A DEALER connects to the head's node endpoint (CURVE, with this
 * forqd's own key pair and the head's public key), joins, heartbeats, and feeds the jobs the
 * head sends straight into this forqd's own request handling (commands.c), as a local
 * client's requests under a routing id no client can have, whose answers outbox.c hands back
 * here (nodelink_route): no socket in between. The node's forkserver, workers, plugins, run
 * timeouts and cancel are the ones every forqd has. Results and progress go back untouched, named
 * by the head's run id. A node that loses its head keeps its jobs for --node-grace, reports them if
 * it rejoins, and cancels them otherwise. */
#ifndef FORQ_NODELINK_H
#define FORQ_NODELINK_H

#include "broker_int.h"
#include "job.h"

/* The routing id under which this forqd's queue sees the head's jobs: no client's can be it
 * (ZeroMQ's own ids are 5 bytes, ids a client sets never begin with a zero byte). outbox.c
 * sends what is addressed to it through nodelink_route(). */
#define NODELINK_ROUTE     "\0forq-head"
#define NODELINK_ROUTE_LEN 10

/* Start the link of b (cfg->join set) in zctx, where the client socket is bound (with
 * NODELINK_INPROC). NULL after printing why. */
nodelink_t *nodelink_new(broker_t *b, void *zctx);
/* A dict request of worker w's running task: when that job came from the head, the request
 * goes to the head's dict service (with the job's owner's rights there), its answer back to
 * the worker, and true is returned; false for a job this forqd's own clients submitted. */
bool nodelink_dict(nodelink_t *l, worker_t *w, const wire_hdr_t *h, zmq_msg_t *payload);
/* An answer of this forqd to the head's request (hdr sent or taken; payload, may be NULL,
 * consumed): a run's result goes to the head, or waits while the head is away; progress goes
 * to the head; the rest is dropped. Always 0. */
int nodelink_route(nodelink_t *l, zmq_msg_t *hdr, zmq_msg_t *payload);
/* Send the head what this forqd answered last, say goodbye when stopping, close. Safe twice. */
void nodelink_destroy(nodelink_t **l);

#endif
