/* track.h - which client connections read which dict keys with tracking on (`get` with
 * `track`), so that forqd can tell them when a key changes (`invalidate`, PROTOCOL.md 6.8.1):
 * the broker's half of client-side caching, after Redis 6's default tracking mode.
 *
 * A key is tracked for a connection from its tracked read until its next change; the change
 * sends the connection one `invalidate` and forgets the pair (the client reads again, tracked,
 * to be told of the next change). Memory is bounded: at most TRACK_PER_CONN_MAX keys per
 * connection and TRACK_TOTAL_MAX in all; a connection that would pass either is told to drop
 * everything (an `invalidate` without name) and its table is dropped. forqd does not learn of
 * disconnections: a gone connection's entries go with its keys' next changes or with the
 * bounds (their invalidations are undeliverable, counted as such by the outbox). */
#ifndef FORQ_DICT_TRACK_H
#define FORQ_DICT_TRACK_H

#include "broker.h"
#include "outbox.h"

#include <stdbool.h>
#include <stddef.h>

#define TRACK_PER_CONN_MAX 100000  /* keys one connection may have tracked */
#define TRACK_TOTAL_MAX    1000000 /* keys tracked for all connections together */

typedef struct track track_t;

/* An empty table; invalidations leave through out. */
track_t *track_new(outbox_t *out);
/* Free everything (no message is sent). Safe with NULL. */
void track_free(track_t *t);
/* Connection o (a client: a task has no routing id and is never tracked) read `key` of dict
 * `name` with tracking on. */
void track_read(track_t *t, const origin_t *o, const char *name, size_t nlen, const char *key,
                size_t klen);
/* A key of dict `name` changed (key NULL: every key of it, a clear): every connection tracking
 * it gets an invalidation at the next track_flush, and the pairs are forgotten. */
void track_changed(track_t *t, const char *name, size_t nlen, const char *key, size_t klen);
/* Send the invalidations track_changed collected: one message per connection and dict. Call
 * once the change is committed, before its reply. With `overflows`, also tell the connections
 * that passed a bound to drop everything: after the reply of the read that passed it. */
void track_flush(track_t *t, bool overflows);
/* Keys tracked now (all connections), and connections with any. */
size_t track_keys(const track_t *t);
size_t track_conns(const track_t *t);

#endif
