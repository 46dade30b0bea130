/* health.h - what the library asks about forqd through a client (health.c): its payload
 * limit, how long it has been unreachable, why it does not answer. client.c and dict.c use
 * it; conn.c's side of health.c is in conn_int.h. Every call takes the client's lock; any
 * thread. */
#ifndef FORQ_CLIENT_HEALTH_H
#define FORQ_CLIENT_HEALTH_H

#include "client_int.h"

/* forqd's payload limit: from its last pong, WIRE_PAYLOAD_DEF until one came (*ret_known, may
 * be NULL, says which). */
uint64_t health_max_payload(forq_client_t *c, bool *ret_known);

/* FORQ_OK if a payload of len bytes (`what`: "the args", ...) fits forqd's limit; else
 * FORQ_ERR_INVALID with a too_large detail saying the size, the limit and what to do. */
forq_err_t health_check_payload(forq_client_t *c, const char *what, size_t len);

/* How long forqd has been unreachable, ms: 0 while connected, > 0 otherwise (since the client
 * was created if it never connected). */
int64_t health_unreachable_ms(forq_client_t *c);

/* Why a ping went unanswered for timeout_ms, one line into buf: the peer is not forqd (a failed
 * handshake, an unreadable answer), a peer took the connection but is silent, or nothing
 * answered at all. */
void health_why_silent(forq_client_t *c, int timeout_ms, char *buf, size_t size);
/* Did forqd refuse the handshake (CURVE: an unknown key, a plaintext client, a wrong server
 * key)? health_why_silent() then says why. */
bool health_refused(forq_client_t *c);

/* ... before it was ever connected (client lock held): no request can be answered, and a
 * waiter stops waiting (conn_wait) with the reason health_why_silent() gives. */
bool health_refused_first_locked(const forq_client_t *c);

#endif
