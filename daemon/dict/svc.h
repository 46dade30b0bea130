/* svc.h - the dict service's insides, shared by its files: service.c (requests, dict ops and
 * their waits, the log's commit and undo), update.c (dict update), and the shared types:
 * multi.c (dict mget), queue.c, lock.c, event.c, with swait.c (what their blocked requests wait
 * with) and skeys.c (how they are kept in the store).
 *
 * The shared types live in the same store as the dicts, under internal dict names that no
 * client can name (they begin with a byte outside the names' alphabet, skeys.h): so they are in
 * the same log, with the same fsync policy, the same undo when the log cannot take a change,
 * the same compaction and replay, and the same limits (--dict-max-keys, --dict-max-bytes). What
 * the store does not hold (a queue's order, a lock's lease timers, the waiters) is rebuilt from
 * it at start. Every request runs to its end in the broker's loop: each op is atomic.
 *
 * A change is answered only once it is in the log (svc_commit, then a send), so a reply never
 * promises more than the log holds. */
#ifndef FORQ_DICT_SVC_H
#define FORQ_DICT_SVC_H

#include "broker.h"
#include "config.h"
#include "dictlog.h"
#include "loop.h"
#include "ops.h"
#include "outbox.h"
#include "service.h"
#include "store.h"
#include "wire.h"

typedef struct dwaiter dwaiter_t;
typedef struct dchange dchange_t;
typedef struct dundo dundo_t;
typedef struct swaiter swaiter_t;
typedef struct queues queues_t;
typedef struct locks locks_t;
typedef struct events events_t;
typedef struct track track_t;

struct dict_service {
    const config_t *cfg; /* as at start: the dict settings wait for a restart */
    broker_t *broker;    /* what an identity may read (dicts) */
    loop_t *loop;        /* for the waits' timeouts */
    outbox_t *out;       /* replies leave by it */
    uint8_t timer_kind;  /* of dwaiter_t.timer */
    dstore_t *store;     /* the dicts, and the shared types under internal names */
    dictlog_t *log;      /* their log, NULL without --state-dir */
    dwaiter_t *waiters;  /* clients and tasks in a dict wait */
    size_t n_waiters;
    dchange_t *changed; /* keys changed by the request under way (the first few) */
    size_t n_changed;   /* how many: past WAKE_BY_KEY_MAX only counted */
    dundo_t *undo;      /* their values before it, while a log is kept */
    bool logged;        /* the changes under way are in the log already (update, clear) */
    track_t *track;     /* which connections cache which keys (track.h) */
    /* the shared types */
    swaiter_t *swaiters; /* every client and task waiting in one of their ops (swait.c) */
    size_t n_swaiters;   /* their count, at most SWAITERS_MAX */
    uint8_t swait_kind;  /* of swaiter_t.timer */
    queues_t *queues;    /* queue.c */
    locks_t *locks;      /* lock.c */
    events_t *events;    /* event.c */
};

/* ---- service.c: the log's commit and undo, replies ---- */

/* Keep key's state before a change, to undo it if the log cannot take it (with a log only). */
void svc_remember(dict_service_t *s, const char *name, size_t nlen, const char *key, size_t klen);
/* Commit the request's pending changes to the log; if it cannot take them, undo them (from
 * what svc_remember kept) and return -errno (nothing changed after all). 0 without a log. */
int svc_commit(dict_service_t *s);
/* Forget what svc_remember kept (the request changed nothing after all). */
void svc_forget_undo(dict_service_t *s);
/* Reply with h (cmd and req set here) and, when data is not NULL, one value frame, once the
 * request's changes are in the log; if they cannot be, the error instead. */
void svc_reply(dict_service_t *s, const origin_t *o, const wire_hdr_t *req, wire_hdr_t *h,
               const void *data, size_t len);
/* The error reply to a request whose change the log could not take (r: -errno). */
void svc_log_refused(dict_service_t *s, const origin_t *o, const wire_hdr_t *req, int r);
/* An error from the store (-E2BIG, -ENOSPC, ...) as an error reply. */
void svc_store_error(dict_service_t *s, const origin_t *o, const wire_hdr_t *h, int r);

/* ---- update.c, multi.c: many keys in one request ---- */

#define MULTI_KEYS_MAX                                                                             \
    100000u /* keys in one update, mset or mget: bounds what one request costs                     \
             */

/* dict update (and mset): a map of string keys to values, all or none. */
void svc_update(dict_service_t *s, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload);
/* dict mget: an array of keys, read at one instant; the reply holds nil or [ver, value] each. */
void svc_mget(dict_service_t *s, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload);

/* ---- queue.c, lock.c, event.c: each builds its state from the store (after the log's replay)
 * at _new, answers its ops, and frees everything (waiters unanswered) at _free ---- */

queues_t *queues_new(dict_service_t *s);
void queues_free(dict_service_t *s);
void queue_request(dict_service_t *s, const ops_desc_t *op, const origin_t *o, const wire_hdr_t *h,
                   zmq_msg_t *payload);
size_t queues_count(const dict_service_t *s);
size_t queues_items(const dict_service_t *s);
/* forqd stops: items on their way in a client's backlog go back to their queues. */
void queues_take_back(dict_service_t *s);

locks_t *locks_new(dict_service_t *s);
void locks_free(dict_service_t *s);
void lock_request(dict_service_t *s, const ops_desc_t *op, const origin_t *o, const wire_hdr_t *h);
/* Does lock `name` have a holder with this token (a fenced change may go ahead)? */
bool lock_fence_holds(dict_service_t *s, const char *name, size_t nlen, uint64_t token);
size_t locks_held(const dict_service_t *s);

events_t *events_new(dict_service_t *s);
void events_free(dict_service_t *s);
void event_request(dict_service_t *s, const ops_desc_t *op, const origin_t *o, const wire_hdr_t *h);

#endif
