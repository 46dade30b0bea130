/* skeys.h - how the shared types are kept in the dict store: under internal dict names that no
 * client can name (they begin with the byte 0x01, outside the names' alphabet), one per kind:
 *
 *     "\x01q"  a queue's items:    key "NAME/<pos>"    value: the item as it was put
 *     "\x01l"  a lock's holders:   key "NAME/<token>"  value: [expires_ms, lease_ms]
 *     "\x01e"  the events set:     key "NAME"          value: true
 *
 * <pos> and <token> are 16 lower-case hex digits. A queue's items are in the order of their
 * positions (a put takes the position after the last, a put at the front the one before the
 * first). A holder's token is the version the store gave its key when the lock was granted:
 * versions grow with every change and never repeat (PROTOCOL.md 6.8), so tokens do too, across
 * restarts and crashes. expires_ms is the lease's end in milliseconds of the Unix epoch (a
 * restart frees a lock whose lease ended meanwhile).
 *
 * What comes back from the log is read here, and only here: skeys_each() parses every entry of
 * an internal dict, skips (and counts) what is not well formed, and never trusts a length it
 * has not checked; the fuzzer (fuzz_dictlog) runs it on every log it replays. */
#ifndef FORQ_DICT_SKEYS_H
#define FORQ_DICT_SKEYS_H

#include "store.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SKEYS_QUEUES                                                                               \
    "\x01"                                                                                         \
    "q" /* (a hex escape would eat the letter) */
#define SKEYS_LOCKS                                                                                \
    "\x01"                                                                                         \
    "l"
#define SKEYS_EVENTS                                                                               \
    "\x01"                                                                                         \
    "e"
#define SKEYS_NLEN    2             /* bytes of each internal name */
#define SKEYS_KEY_MAX (64 + 1 + 16) /* bytes of a "NAME/<hex>" key */

/* Is a store dict name an internal one (not a dict a client sees)? */
bool skeys_is_internal(const char *name, size_t nlen);

/* "NAME/<16 hex digits of n>" into buf (SKEYS_KEY_MAX + 1 bytes); returns its length. */
size_t skeys_make(char *buf, const char *name, size_t nlen, uint64_t n);

/* Pack a holder's value [expires_ms, lease_ms]. */
void skeys_pack_lease(msgpack_sbuffer *sb, uint64_t expires_ms, uint64_t lease_ms);

/* One well-formed entry of an internal dict. `name` borrows from the store's key. */
typedef struct {
    const char *name; /* the queue's, lock's or event's name (valid: 1-64 of the alphabet) */
    size_t nlen;
    uint64_t n;          /* queues: the position; locks: the token (0 for events) */
    uint64_t expires_ms; /* locks: the lease's end, Unix epoch ms */
    uint64_t lease_ms;   /* locks: the lease */
    const dval_t *val;   /* the stored value (queues: the item) */
} skeys_entry_t;

/* Visit every well-formed entry of the internal dict `kind` (SKEYS_QUEUES, _LOCKS, _EVENTS);
 * fn returns 0 to go on. Returns the number of entries skipped as malformed. */
typedef int (*skeys_fn)(void *ud, const skeys_entry_t *e);
size_t skeys_each(dstore_t *s, const char *kind, skeys_fn fn, void *ud);

#endif
