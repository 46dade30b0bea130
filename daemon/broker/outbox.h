/* outbox.h - everything the broker sends: replies and results to clients, by routing id, and
 * messages to workers, by pid (through pool.h's link queue). Also the table of clients, which
 * exist in the broker only as destinations and as owners of queue lanes.
 *
 * Sending to clients never blocks: the client socket is a ROUTER with ZMQ_ROUTER_MANDATORY, so a
 * vanished client is EHOSTUNREACH (the reply is counted undeliverable) and a full pipe is
 * EAGAIN (the reply waits in the client's backlog, retried every few milliseconds, and counts
 * against the client's limit so the backlog is bounded). */
#ifndef FORQ_OUTBOX_H
#define FORQ_OUTBOX_H

#include "broker_int.h"
#include "sched.h"

#include <uthash.h>

typedef struct backlog_msg backlog_msg_t;
typedef struct client client_t;

/* A client with live jobs or undelivered replies. */
struct client {
    UT_hash_handle hh;                     /* in the outbox's table by identity */
    sched_lane_t lanes[SCHED_NPRIO];       /* its queued jobs per priority */
    size_t live;                           /* its QUEUED, AHEAD and RUNNING jobs (jobs.c) */
    backlog_msg_t *backlog, *backlog_tail; /* replies waiting for room, FIFO */
    size_t backlog_n;                      /* their count */
    size_t backlog_bytes;                  /* and their bytes, header and payload */
    client_t *bl_prev, *bl_next;           /* in the outbox's backlogged list while backlog_n > 0 */
    bool delim;                            /* it sends an empty delimiter frame (REQ socket) */
    uint16_t who;                          /* the identity that uses this routing id */
    uint8_t ident_len;                     /* bytes of ident */
    uint8_t ident[];                       /* ZeroMQ routing id */
};

/* The outbox of b; registers its backlog retry with b's loop. */
outbox_t *outbox_new(broker_t *b);
/* Give undelivered replies until `until_ms` to leave, then free them and every client. */
void outbox_destroy(outbox_t **out, uint64_t until_ms);
/* The client socket (listen.c made it) that replies leave by. */
void outbox_set_socket(outbox_t *out, void *sock);

/* The client with this routing id; created (empty) when `create`, else NULL if unknown. */
client_t *outbox_client(outbox_t *out, const void *ident, size_t len, bool create);
/* Forget c if it has neither live jobs nor backlog. */
void outbox_client_release(outbox_t *out, client_t *c);
size_t outbox_clients(const outbox_t *out);
/* The first client (the rest by hh.next), or NULL. */
const client_t *outbox_client_first(const outbox_t *out);
size_t outbox_backlog(const outbox_t *out);

/* Encode h into the outbox's scratch buffer: valid until the next encode. NULL when out of
 * memory (logged). */
const msgpack_sbuffer *outbox_encode(outbox_t *out, const wire_hdr_t *h);
/* Send h (and payload, consumed; may be NULL) to whoever o names. */
void outbox_send(outbox_t *out, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload);
/* Send an error reply naming the request req (may be NULL): code and a one-line message. */
void outbox_error(outbox_t *out, const origin_t *o, const wire_hdr_t *req, const char *code,
                  const char *msg);
/* A message given to outbox_deliver() with this hook comes back through it if its client is
 * gone before it could leave: returned(ud, payload) hands the payload (NULL if there was none)
 * back to the caller, who owns it again; returned(ud, NULL) with `sent` true says it left (free
 * ud). Called exactly once per message, from the loop (never from inside outbox_deliver). */
typedef void (*outbox_returned_fn)(void *ud, zmq_msg_t *payload, bool sent);

/* Send h (and payload, may be NULL) to whoever o names, saying whether it can arrive: for what
 * must not be lost on its way to a client that is gone (a queue's item, a lock's grant).
 * Returns 0 when it left (payload consumed; ud still the caller's), 1 when it waits in the
 * client's backlog (payload consumed; ud now the hook's: the backlog gives the payload back
 * through `returned` if the client goes before it leaves), or -EHOSTUNREACH when no
 * connection holds the client's routing id, or its worker is gone or being killed: nothing was
 * sent and the payload is still the caller's. */
int outbox_deliver(outbox_t *out, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload,
                   outbox_returned_fn returned, void *ud);
/* Give back every message of every backlog that was handed over with `returned`, unsent
 * (forqd stops: the caller keeps what they held). */
void outbox_take_back(outbox_t *out, outbox_returned_fn returned);

/* Send an already encoded header (and payload, consumed) to a client. */
void outbox_send_raw(outbox_t *out, const void *ident, size_t ilen, bool delim, const void *hdr,
                     size_t hlen, zmq_msg_t *payload);

#endif
