/* nodelink.h - a node's side of the node link (PROTOCOL.md section 14): with --join, this forqd
 * is a worker node of a head. A DEALER connects to the head's node endpoint (CURVE, with this
 * forqd's own key pair and the head's public key), joins, heartbeats, and feeds the jobs the
 * head sends into this forqd's own queue through an inproc connection to its client socket, as
 * a local client would: the node's forkserver, workers, plugins, run timeouts and cancel are
 * the ones every forqd has. Results and progress go back untouched, named by the head's run
 * id. A node that loses its head keeps its jobs for --node-grace, reports them if it rejoins,
 * and cancels them otherwise. */
#ifndef FORQ_NODELINK_H
#define FORQ_NODELINK_H

#include "broker_int.h"
#include "job.h"

#define NODELINK_INPROC "inproc://forq-nodelink" /* where the link meets its own forqd */

/* Start the link of b (cfg->join set) in zctx, where the client socket is bound (with
 * NODELINK_INPROC). NULL after printing why. */
nodelink_t *nodelink_new(broker_t *b, void *zctx);
/* A dict request of worker w's running task: when that job came from the head, the request
 * goes to the head's dict service (with the job's owner's rights there), its answer back to
 * the worker, and true is returned; false for a job this forqd's own clients submitted. */
bool nodelink_dict(nodelink_t *l, worker_t *w, const wire_hdr_t *h, zmq_msg_t *payload);
/* Send the head what this forqd answered last, say goodbye when stopping, close. Safe twice. */
void nodelink_destroy(nodelink_t **l);

#endif
