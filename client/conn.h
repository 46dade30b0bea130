/* conn.h - a client's connection to forqd: the socket and who drives it, the I/O thread, the
 * outgoing queue, the table of pending futures, and the ZeroMQ context all clients of a process
 * share. struct forq_client is private to conn.c and health.c (conn_int.h); client.c builds the
 * public API on these calls, future.c waits through them. What the client knows about forqd
 * (its limits, reachability, why it is silent) is health.h. */
#ifndef FORQ_CLIENT_CONN_H
#define FORQ_CLIENT_CONN_H

#include "client_int.h"
#include "dcache.h"

/* Connect to endpoint `ep` (checked by the caller) with opts' limits and start the I/O thread.
 * FORQ_OK with *ret_client owned by the caller (conn_destroy); FORQ_ERR_INVALID when ZeroMQ
 * refuses the endpoint, FORQ_ERR_SYSTEM, FORQ_ERR_NOMEM (detail set). Does not wait for forqd. */
forq_err_t conn_new(const char *ep, const forq_client_opts_t *opts, forq_client_t **ret_client);

/* Resolve every pending future LOST, deliver what is queued for up to linger_ms when orders (a
 * job, cancel or dict change) may still be on their way, stop the I/O thread and free c. Must
 * not race other calls on c. */
void conn_destroy(forq_client_t *c);

/* The endpoint; borrowed until conn_destroy. */
const char *conn_endpoint(const forq_client_t *c);

/* A fresh request number (replies find their request future by "#<number>"). */
uint64_t conn_next_req(forq_client_t *c);

/* A fresh job id of this client: its random prefix and a counter. */
void conn_new_id(forq_client_t *c, char *buf, size_t size);

/* Queue the message h (+ a payload frame if has_payload) for the socket's owner, or send it at
 * once from this thread if nobody owns the socket and the caller does not wait for the reply
 * right away (will_wait: the caller's conn_wait() sends it). If f is not NULL, register it under
 * f->key for the reply. FORQ_ERR_CLOSED while destroying, FORQ_ERR_INVALID if f->key is
 * pending already, FORQ_ERR_NOMEM. */
forq_err_t conn_send(forq_client_t *c, const wire_hdr_t *h, const void *payload, size_t plen,
                     bool has_payload, forq_future_t *f, bool will_wait);

/* Wait until f (sent on c) is done or timeout_ms passes (-1: no limit), driving c's socket in
 * this thread when nobody else does. Returns whether f is done; false early when forqd refused
 * the handshake before c ever connected (health_refused_first_locked: nothing can answer). */
bool conn_wait(forq_client_t *c, forq_future_t *f, int timeout_ms);

/* A listener was registered on a pending future of c: make sure someone reads the socket. */
void conn_want_io(forq_client_t *c);

/* The client's dict cache (dcache.h), never NULL after conn_new. */
dcache_t *conn_dcache(forq_client_t *c);
/* A dict is cached (on) or none is: while one is, the I/O thread reads the socket whenever no
 * caller does, so forqd's invalidations are applied as they arrive. */
void conn_set_caching(forq_client_t *c, bool on);
/* May a cached value be served now? false while the link is down. Otherwise applies what the
 * socket holds already (when no other thread drives it: that one reads as messages come) and
 * gives the link's handshake count (dcache_get's session). */
bool conn_cache_ready(forq_client_t *c, uint64_t *ret_session);

/* Drop a reference to a pending future under the client's lock. Returns -1 if f is no longer
 * pending (the caller drops it plainly), 1 if it was the last (f left the table; the caller
 * frees it), 0 otherwise. */
int conn_drop_pending(forq_client_t *c, forq_future_t *f);

#endif
