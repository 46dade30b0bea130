/* ops.h - the operations of the `dict` command of FJP/1, written once: the dict ops (PROTOCOL.md
 * section 6.8) and those of the shared types, queues, locks and events (section 6.9). Each op's
 * name, what its request must carry, what its reply means, and how the CLI takes it.
 *
 * The client (forq_dict_*, forq_queue_*, forq_lock_*, forq_event_*), the CLI (forq dict, forq
 * queue, forq lock, forq event), the task context (forq_task_dict, forq_task_queue_*, ...) and
 * the broker's dict service all speak the same vocabulary; this table is it. One table, not one
 * per type: the broker checks every op's rights by its `mutates` flag and the name it acts on,
 * whatever the type (a queue, lock or event is a name under the same read=/write= globs as a
 * dict), and one request check refuses every malformed request in the same words. A shared
 * type's ops are named "<kind>.<verb>" on the wire ("queue.put"): the kind says which namespace
 * `name` is in, the verb is the CLI's word (forq queue put). ops_check_request() is the broker's
 * refusal of a malformed request, with the codes and texts forqd has always sent, so a sender
 * can refuse locally with the very same words.
 *
 * Everything here is static data: no allocation, safe from any thread. */
#ifndef FORQ_OPS_H
#define FORQ_OPS_H

#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The ops. Values are internal; the wire carries the names. */
typedef enum {
    OPS_NONE = 0,
    OPS_GET,
    OPS_SET,
    OPS_DEL,
    OPS_HAS,
    OPS_KEYS,
    OPS_ITEMS,
    OPS_LEN,
    OPS_CLEAR,
    OPS_UPDATE,
    OPS_SETDEFAULT,
    OPS_POP,
    OPS_INCR,
    OPS_CAS,
    OPS_WAIT,
    OPS_DICTS,
    OPS_MGET, /* many keys at once (issue 17) */
    OPS_MSET,
    /* queues (PROTOCOL.md 6.9.1) */
    OPS_QPUT,
    OPS_QGET,
    OPS_QLEN,
    OPS_QRANGE,
    OPS_QCLEAR,
    OPS_QWITHDRAW,
    /* locks and semaphores (6.9.2) */
    OPS_LACQUIRE,
    OPS_LRELEASE,
    OPS_LRENEW,
    OPS_LWITHDRAW,
    /* events (6.9.3) */
    OPS_ESET,
    OPS_ECLEAR,
    OPS_EWAIT,
    OPS_EWITHDRAW,
    OPS_COUNT_ /* not an op: one past the last */
} ops_id_t;

/* The namespace an op's `name` is in: the same name may be a dict, a queue, a lock and an event
 * at once, four different things (under the same rights, PROTOCOL.md 2.2). */
typedef enum {
    OPS_KIND_DICT = 0,
    OPS_KIND_QUEUE,
    OPS_KIND_LOCK,
    OPS_KIND_EVENT,
    OPS_KIND_COUNT_
} ops_kind_t;

/* What a request carries besides `name` (ops_desc_t.needs: required; .takes: optional).
 * `name` itself is required by every op but those that name no dict (ops_desc_t.nameless). */
enum {
    OPS_F_KEY = 1u << 0,      /* "key": 1..1024 bytes without NUL (optional: a page cursor) */
    OPS_F_VALUE = 1u << 1,    /* one value frame; an op without it takes no value frame */
    OPS_F_VER = 1u << 2,      /* "ver" (cas: expected, 0 = absent; wait: the version seen) */
    OPS_F_DELTA = 1u << 3,    /* "delta" (incr; 1 when absent) */
    OPS_F_TIMEOUT = 1u << 4,  /* "timeout_ms" (wait; 0 = none) */
    OPS_F_LIMIT = 1u << 5,    /* "limit": page size (0 = 1000, at most 10000) */
    OPS_F_BLOCK = 1u << 6,    /* "block" (wait for an item, room, the lock, the event) */
    OPS_F_FRONT = 1u << 7,    /* "front" (queue.put: at the front) */
    OPS_F_MAXSIZE = 1u << 8,  /* "maxsize" (queue.put: room for at most this many items) */
    OPS_F_LEASE = 1u << 9,    /* "lease_ms" (lock.acquire, lock.renew) */
    OPS_F_TOKEN = 1u << 10,   /* "token" (lock.release, lock.renew: the grant's) */
    OPS_F_PERMITS = 1u << 11, /* "permits" (lock.acquire: a semaphore's size) */
    OPS_F_START = 1u << 12,   /* "start" (queue.range: index of the first item) */
    OPS_F_FENCE = 1u << 13,   /* "lock" + "token": the change is refused unless that lock is held
                                 with that token (a fenced write) */
    OPS_F_OF = 1u << 14,      /* "of": the req of a blocked request of the same connection
                                 (the withdraw ops, PROTOCOL.md 6.9) */
};

/* What the answer of a dict_reply is. */
typedef enum {
    OPS_REPLY_VALUE,   /* a value frame when `found` (get, pop, wait; setdefault: the value now) */
    OPS_REPLY_FOUND,   /* `found` itself (has; del: whether it existed) */
    OPS_REPLY_COUNT,   /* `count` (len; clear: how many were removed) */
    OPS_REPLY_VERSION, /* `ver`, the new version (set, cas; update: the last, and `count`) */
    OPS_REPLY_INT,     /* a value frame holding an integer, the new value (incr) */
    OPS_REPLY_PAGE,    /* a value frame holding an array; `count`, `more`, `key` the cursor (keys,
                          items: a key of the dict; dicts: a dict name; queue.range: no
                          cursor, `more` only) */
    OPS_REPLY_TOKEN,   /* `token` when `found` (lock.acquire: granted), `count` the holders */
    OPS_REPLY_MANY,    /* a value frame holding an array, one entry per key asked: nil (absent)
                          or [ver, value]; `count` the keys found (mget) */
} ops_reply_t;

/* One op. */
typedef struct {
    const char *name;         /* "op" on the wire */
    ops_id_t id;              /* ops_get(id) is this entry */
    ops_kind_t kind;          /* the namespace of its `name` */
    const char *verb;         /* the CLI's word: forq <kind> <verb> (dict ops: the name) */
    bool nameless;            /* names no dict (dicts lists them): `name` is neither needed nor
                                 read, and the rights to ask are not a dict's (the broker filters
                                 the answer instead) */
    unsigned needs;           /* OPS_F_*: what the request must carry (ops_check_request) */
    unsigned takes;           /* OPS_F_*: what it may carry besides */
    ops_reply_t reply;        /* what the reply's answer is */
    bool mutates;             /* may change the store (so the change goes to the dict log) */
    bool reply_has_ver;       /* the reply carries the key's `ver` (when the key exists) */
    bool absent_is_not_found; /* found:false means "no such key" to the caller */
    const char *reply_code;   /* a `code` the dict_reply may carry as an answer, not an error:
                                 "conflict" (cas), "timeout" (wait, event.wait), "empty"
                                 (queue.get), "full" (queue.put), "held" (lock.acquire),
                                 "not_waiting" (withdraw); NULL: none */
    uint8_t args_min;         /* forq KIND VERB NAME ...: operands after NAME, at least */
    uint8_t args_max;         /* ... and at most */
    int8_t json_arg;          /* which operand is the JSON value (update: the map), -1: none */
    bool connection_only;     /* acts on a request of the asking connection (withdraw): the
                                 CLI, one request per connection, has no verb for it */
} ops_desc_t;

/* The op named by `len` bytes at `name` (not NUL-terminated; NULL finds nothing). Returns the
 * static entry, or NULL for a name that is not an op (prefixes and case variants included). */
const ops_desc_t *ops_find(const char *name, size_t len);

/* The op with this id, or NULL for OPS_NONE and values past the last. Every id from
 * OPS_NONE + 1 to OPS_COUNT_ - 1 has one: iterate with it. */
const ops_desc_t *ops_get(ops_id_t id);

/* The op of `kind` whose CLI word is `verb` (NUL-terminated), or NULL; never a
 * connection_only op. */
const ops_desc_t *ops_find_verb(ops_kind_t kind, const char *verb);

/* The kind's word: "dict", "queue", "lock", "event" (NULL past the last). */
const char *ops_kind_name(ops_kind_t kind);

/* Check a decoded `dict` request as forqd's dict service does, in its order: the op is known
 * (bad_op), the dict's name is there unless the op is nameless (missing_field; wire.c checks a
 * name that is there), the key is there when needed (missing_field), a value frame is there exactly
 * when needed (bad_frames) and is one msgpack value (bad_value), cas has its "ver"
 * (missing_field), lock.release and lock.renew their "token" (missing_field), a withdraw its
 * "of" (missing_field), and a fence is
 * whole ("lock" with "token": missing_field) and on an op that takes one (bad_field). `has_value`
 * says whether a value frame came; `value`/`len` are its bytes. Returns 0 with *ret_op (may be
 * NULL) set, or -EBADMSG with `err` filled with the code and text forqd puts in its `error` reply;
 * *ret_op is left untouched then. */
int ops_check_request(const wire_hdr_t *h, const void *value, size_t len, bool has_value,
                      const ops_desc_t **ret_op, wire_err_t *err);

#endif
