/* dcache.h - libforq's client-side cache of dict values (forq_dict_cache), kept right by the
 * invalidations forqd pushes (PROTOCOL.md 6.8.1). conn.c hands it the invalidations as it reads
 * them and stamps each dict reply with the cache's sequence; dict.c looks values up, stores what
 * a tracked get read, and drops what this client itself changes. */
#ifndef FORQ_CLIENT_DCACHE_H
#define FORQ_CLIENT_DCACHE_H

#include "client_int.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dcache dcache_t;

dcache_t *dcache_new(void);
void dcache_free(dcache_t *dc);
/* Cache dict `name` with at most max_bytes of keys and values (0: stop, and drop its copy).
 * Returns whether any dict is cached now. */
bool dcache_enable(dcache_t *dc, const char *name, size_t max_bytes);
/* Is `name` cached? (Lock-free fast answer for the common "no cache at all" case.) */
bool dcache_is_on(dcache_t *dc, const char *name);
/* The sequence number of the invalidations applied so far (a reply is stamped with it). */
uint64_t dcache_seq(dcache_t *dc);
/* Look key up for a client whose link is in handshake `session`: a copy of its value
 * (malloc'ed, the caller frees) and version. A session other than the cache's drops
 * everything first (invalidations may have been lost while the link was down). */
bool dcache_get(dcache_t *dc, const char *name, const char *key, uint64_t session, void **ret_value,
                size_t *ret_len, uint64_t *ret_version);
/* Store what a tracked get read, unless an invalidation was applied since its reply was read
 * (seq differs) or the link changed (session): then it may be stale already. */
void dcache_put(dcache_t *dc, const char *name, const char *key, const void *value, size_t len,
                uint64_t version, uint64_t seq, uint64_t session);
/* Drop key (NULL: every key) of dict `name` (this client changes it). */
void dcache_drop(dcache_t *dc, const char *name, const char *key);
/* Apply an `invalidate` from forqd: h->name and the keys in payload (an array), or the whole
 * dict (no payload), or everything (no name). */
void dcache_invalidate(dcache_t *dc, const wire_hdr_t *h, const void *payload, size_t plen,
                       bool has_payload);
/* Counters for forq_dict_cache_stats. */
void dcache_stats(dcache_t *dc, uint64_t *ret_hits, uint64_t *ret_misses,
                  uint64_t *ret_invalidations, size_t *ret_entries);
/* A hit or a miss. */
void dcache_count(dcache_t *dc, bool hit);

#endif
