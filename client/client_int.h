/* client_int.h - libforq's internals shared by every file of the library: the future record
 * and its listeners (future.c), the error detail (errors.c) and the requests and submission of
 * client.c. The connection's own interface is conn.h (client.c and future.c use it), what it
 * knows about forqd is health.h (client.c, dict.c), the completion queue's is wait.h (wait.c
 * and map.c).
 *
 * Locking: a client's `lock` guards its pending table, its outgoing queue and each pending
 * future's `client` link; a future's `mu` guards its result, progress and listeners. Order:
 * client lock, then future mu. Listeners and user callbacks run with no lock held.
 *
 * Lifetime: futures are reference-counted. The caller's handle is one reference; the I/O
 * thread, iterators and callbacks in flight hold others. While a future is pending it is in its
 * client's table, and the last reference to such a future is dropped under the client's lock,
 * so that the I/O thread never finds a freed future there. */
#ifndef FORQ_CLIENT_INT_H
#define FORQ_CLIENT_INT_H

#include "forq/forq.h"
#include "wire.h"

#include <pthread.h>
#include <stdatomic.h>
#include <uthash.h>

#undef uthash_fatal
#define uthash_fatal(msg) abort() /* a library must not exit() */

/* A listener registered on one future: fired once, when it is done, without locks, while the
 * firer holds a reference on the future. */
typedef struct future_listener {
    struct future_listener *next;                              /* in future->regs */
    void (*fire)(struct future_listener *r, forq_future_t *f); /* what to do; frees r */
    void *ctx;                                                 /* the listener's own */
    void *ctx2;                                                /* and a second word */
} future_listener_t;

struct forq_future {
    UT_hash_handle hh;         /* in client->pending while `client` is set */
    atomic_int refs;           /* references; see the top comment */
    forq_client_t *client;     /* set while pending in its client's table (client lock) */
    forq_client_t *conn;       /* the client it was sent on; set once, before it is shared */
    bool is_request;           /* internal request (cancel, status, ...), keyed "#<req>" */
    bool refetching;           /* asked again after a reconnection */
    uint64_t pending_since;    /* monotonic ms it entered the pending table (lost_after_ms) */
    pthread_mutex_t mu;        /* guards what follows */
    pthread_cond_t cond;       /* signalled when done */
    bool done;                 /* resolved: the result fields no longer change */
    future_listener_t *regs;   /* listeners to fire once done */
    char key[FORQ_ID_MAX + 1]; /* job id or "#<req>" */
    /* kept to submit again when forqd restarted and the job allows retries (future_set_job) */
    char task[FORQ_ID_MAX + 1];
    forq_submit_opts_t opts;      /* opts.id is NULL: the key is the id; the strings are below */
    char *store_dict, *store_key; /* owned copies behind opts.store_dict, opts.store_key */
    char *tags;                   /* owned copy behind opts.tags */
    bool chunk;                   /* a map's chunk job */
    void *args;                   /* owned copy, only when opts.retries > 0 */
    size_t args_len;              /* its size, kept also without the copy */
    /* progress */
    bool has_progress;
    uint64_t p_done, p_total;
    char *p_text; /* owned */
    forq_progress_fn on_progress;
    void *on_progress_ud;
    /* the result */
    wire_cmd_t reply_cmd; /* what answered (requests) */
    forq_state_t state;
    void *result; /* owned payload, NULL if none */
    size_t result_len;
    char *etype, *detail, *code, *outcome, *task_name; /* owned strings, NULL if absent */
    int signal, exit_code, pid, priority;
    unsigned attempts;
    /* status replies */
    char *owner;                /* owned, NULL if absent */
    uint64_t age_ms, run_ms;    /* since accepted; since started (running) */
    uint64_t st_done, st_total; /* latest progress of a running job */
    /* dict replies */
    bool found, more;
    uint64_t ver, count;
    uint64_t token, lease_ms; /* lock.acquire, lock.renew */
    char *cursor;             /* owned: the next page's starting key */
    /* a shared-type request that may wait in forqd (forq_shared_withdraw); set by its sender
     * before the caller sees the future */
    int wait_op;                     /* its ops_id_t; 0 (OPS_NONE): not one */
    char wait_name[FORQ_ID_MAX + 1]; /* the queue, lock or event it waits on */
    uint64_t cache_seq;     /* dict replies: the cache's invalidations applied when it was read */
    uint64_t cache_session; /* ... and the link's handshake count then (dcache_put) */
};

/* errors.c */
/* Set this thread's detail (forq_errdetail) and return err. */
forq_err_t errors_fail(forq_err_t err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* future.c */
forq_future_t *future_new(void);
void future_ref(forq_future_t *f);
void future_unref(forq_future_t *f);
/* Describe f's job: task, options (copied, strings too; opts->id is not kept) and whether it is
 * a map's chunk. FORQ_ERR_NOMEM (f then still frees cleanly). Before f is shared. */
forq_err_t future_set_job(forq_future_t *f, const char *task, const forq_submit_opts_t *opts,
                          bool chunk);
/* The submit header of f's job; borrows from f. */
void future_submit_hdr(const forq_future_t *f, wire_hdr_t *ret_h);
/* Resolve from a reply; takes `payload`. Fires the listeners. No lock held by the caller. */
void future_resolve(forq_future_t *f, const wire_hdr_t *h, void *payload, size_t plen);
/* Resolve locally (client destroyed, forqd lost the job, bad frame). */
void future_resolve_local(forq_future_t *f, forq_state_t st, const char *code, const char *detail);
/* Record a progress report and call the future's progress callback. */
void future_progress(forq_future_t *f, const wire_hdr_t *h);
/* Register a listener; fires it at once (in this thread) if f is done already. */
void future_listen(forq_future_t *f, future_listener_t *r);
/* Remove a listener that has not fired. Returns true if it was removed (then it never fires). */
bool future_unlisten(forq_future_t *f, future_listener_t *r);
/* Wait (without driving any socket) until f is done or timeout_ms passes (-1: no limit). */
bool future_wait_done(forq_future_t *f, int timeout_ms);

/* dict.c */
/* The forq_err_t of a `dict` request forqd answered with `error` (its code). */
forq_err_t dict_err_of_code(const char *code);

/* client.c */
/* Queue a submit of f's job (described by future_set_job) with args, registering f; keeps a
 * copy of args when the job allows retries. */
forq_err_t client_submit(forq_client_t *c, forq_future_t *f, const void *args, size_t args_len);
/* Send a request (h, with an optional payload frame) and wait for its reply. On FORQ_OK *ret_f
 * is the resolved request future; drop it with future_unref(). A reply `error` is
 * err_of_code(its code), or FORQ_ERR_PROTOCOL when err_of_code is NULL (detail "code: message");
 * no reply in time is FORQ_ERR_TIMEOUT. */
forq_err_t client_request(forq_client_t *c, wire_hdr_t *h, const void *payload, size_t plen,
                          int timeout_ms, forq_err_t (*err_of_code)(const char *code),
                          forq_future_t **ret_f);
/* Send a request without waiting: *ret_f resolves with the reply. */
forq_err_t client_request_async(forq_client_t *c, wire_hdr_t *h, const void *payload, size_t plen,
                                forq_future_t **ret_f);
/* Send cancel for job `id` without waiting for the reply. */
forq_err_t client_cancel_async(forq_client_t *c, const char *id);

#endif
