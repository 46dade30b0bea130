/* access.h - who a client is and what it may do.
 *
 * A tcp endpoint is served with CURVE (ZeroMQ RFC 26) unless --insecure-tcp: forqd's key pair
 * (made at the first start), and a ZAP handler (RFC 27) polled in the broker's own loop that
 * admits a peer only if its public key is in the clients file (auth/clients.h), and names it.
 * ipc endpoints are keyless: the runtime directory's permissions guard them, and their peers
 * are "local", with every right.
 *
 * Each message a client sends carries the name ZAP gave its connection; the broker keeps it as
 * a small number, an identity (the same name always gets the same number, for the life of the
 * process), which jobs and clients record as their owner. A reload (SIGHUP) reads the clients
 * file again: an identity whose key is gone keeps its number but loses every right. */
#ifndef FORQ_ACCESS_H
#define FORQ_ACCESS_H

#include "broker_int.h"
#include "clients.h"
#include "keyfile.h"

#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

#define ACCESS_LOCAL  0 /* the identity of ipc peers (and of tcp ones with --insecure-tcp) */
#define ACCESS_NOBODY 1 /* no rights: a name forqd never gave, a task with no job */

typedef struct access access_t;

access_t *access_new(broker_t *b);
void access_destroy(access_t **a);

/* Before the client socket is bound: when cfg needs CURVE, read (or make) the server key and
 * the clients file, and start the ZAP handler in zctx; with --insecure-tcp, warn. Errors are
 * printed, one line each. 0 or -errno. */
int access_start(access_t *a, void *zctx);

/* forqd's key pair from cfg's key file, made first when the file is absent (*made then).
 * 0, or -1 after printing why. */
int access_server_key(const config_t *cfg, char pub[FORQ_KEY_Z85], char sec[FORQ_KEY_Z85],
                      bool *made);

/* Set the options `ep` is to be bound with on sock: CURVE server for tcp (unless insecure),
 * NULL otherwise. */
void access_bind_options(access_t *a, void *sock, const char *ep);

/* The ZAP domain of the node endpoint (nodes.c sets it after access_bind_options): the ZAP
 * handler admits there only keys with the node role. */
#define ACCESS_NODE_DOMAIN "forq-node"

/* After an ipc endpoint is bound: its socket file (and forqd's own runtime directory) only for
 * this user, or this user and --ipc-group. 0, or -errno after printing why. */
int access_secure_ipc(access_t *a, const char *ep);

/* Watch the client socket's failed handshakes, to log them (rate-limited). */
void access_watch(access_t *a, void *sock);

/* A reload: read the clients file of `next`. 0, or -1 after logging why (nothing changed). */
int access_prepare(access_t *a, const config_t *next);
/* Switch to what access_prepare read: identities no longer listed lose their rights, and
 * their queued jobs are cancelled (jobs already with a worker finish). */
void access_commit(access_t *a);
/* Drop what access_prepare read. */
void access_abort(access_t *a);

/* The identity a message's frame came with. */
uint16_t access_who(access_t *a, zmq_msg_t *frame);
/* Its rights; NULL when its key was removed from the clients file. */
const auth_client_t *access_rights(const access_t *a, uint16_t who);
/* Its name ("local" for ACCESS_LOCAL). */
const char *access_name(const access_t *a, uint16_t who);
/* Unfinished jobs of `who` (queue limits count per identity): jobs.c keeps the count. */
size_t access_live(const access_t *a, uint16_t who);
void access_live_add(access_t *a, uint16_t who, int delta);
/* Does `who` have the admin right? */
bool access_admin(const access_t *a, uint16_t who);

#endif
