/* client_int.h - libforq's internals shared by client.c (connection, I/O thread, requests),
 * future.c (futures, callbacks, wait, as_completed) and map.c (map, imap).
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
typedef struct reg {
    struct reg *next;                                   /* in future->regs */
    void (*fire)(struct reg *r, forq_future_t *f);      /* what to do; frees r */
    void *ctx;                                          /* the listener's own */
    void *ctx2;                                         /* and a second word */
} reg_t;

struct forq_future {
    UT_hash_handle hh;          /* in client->pending while `client` is set */
    atomic_int refs;            /* references; see the top comment */
    forq_client_t *client;      /* set while pending in its client's table (client lock) */
    forq_client_t *conn;        /* the client it was sent on; set once, before it is shared */
    bool is_request;            /* internal request (cancel, status, ...), keyed "#<req>" */
    bool refetching;            /* asked again after a reconnection */
    pthread_mutex_t mu;         /* guards what follows */
    pthread_cond_t cond;        /* signalled when done */
    bool done;                  /* resolved: the result fields no longer change */
    reg_t *regs;                /* listeners to fire once done */
    char key[FORQ_ID_MAX + 1];  /* job id or "#<req>" */
    /* kept to submit again when forqd restarted and the job allows retries */
    char task[FORQ_ID_MAX + 1];
    forq_submit_opts_t opts;    /* opts.id is NULL: the key is the id */
    bool chunk;                 /* a map's chunk job */
    void *args;                 /* owned copy, only when opts.retries > 0 */
    size_t args_len;
    /* progress */
    bool has_progress;
    uint64_t p_done, p_total;
    char *p_text;               /* owned */
    forq_progress_fn on_progress;
    void *on_progress_ud;
    /* the result */
    wire_cmd_t reply_cmd;       /* what answered (requests) */
    forq_state_t state;
    void *result;               /* owned payload, NULL if none */
    size_t result_len;
    char *etype, *detail, *code, *outcome, *task_name; /* owned strings, NULL if absent */
    int signal, exit_code, pid, priority;
    unsigned attempts;
    /* dict replies */
    bool found, more;
    uint64_t ver, count;
    char *cursor;               /* owned: the next page's starting key */
};

/* future.c */
forq_future_t *future_new(void);
void future_ref(forq_future_t *f);
void future_unref(forq_future_t *f);
/* Resolve from a reply; takes `payload`. Fires the listeners. No lock held by the caller. */
void future_resolve(forq_future_t *f, const wire_hdr_t *h, void *payload, size_t plen);
/* Resolve locally (client destroyed, forqd lost the job, bad frame). */
void future_resolve_local(forq_future_t *f, forq_state_t st, const char *code,
                          const char *detail);
/* Record a progress report and call the future's progress callback. */
void future_progress(forq_future_t *f, const wire_hdr_t *h);
/* Register a listener; fires it at once (in this thread) if f is done already. */
void future_listen(forq_future_t *f, reg_t *r);
/* Remove a listener that has not fired. Returns true if it was removed (then it never fires). */
bool future_unlisten(forq_future_t *f, reg_t *r);
bool future_wait_done(forq_future_t *f, int timeout_ms);

/* client.c */
forq_err_t client_fail(forq_err_t err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Queue a submit of f's job (f->key, f->task, f->opts, f->chunk) with args, registering f. */
forq_err_t client_submit(forq_client_t *c, forq_future_t *f, const void *args, size_t args_len);
/* Drop a reference to a pending future under the client's lock. Returns -1 if f is no longer
 * pending (the caller drops it plainly), 1 if it was the last (f left the table; the caller
 * frees it), 0 otherwise. */
int client_drop_pending(forq_client_t *c, forq_future_t *f);
/* Send a request (h, with an optional payload frame) and wait for its reply. On FORQ_OK *ret_f
 * is the resolved request future; drop it with future_unref(). A reply `error` is
 * FORQ_ERR_PROTOCOL (detail "code: message"); no reply in time is FORQ_ERR_TIMEOUT. */
forq_err_t client_request(forq_client_t *c, wire_hdr_t *h, const void *payload, size_t plen,
                          int timeout_ms, forq_future_t **ret_f);
/* Send a request without waiting: *ret_f resolves with the reply. */
forq_err_t client_request_async(forq_client_t *c, wire_hdr_t *h, const void *payload,
                                size_t plen, forq_future_t **ret_f);
/* Wait until f (sent on c) is done or timeout_ms passes (-1: no limit), driving c's socket in
 * this thread when nobody else does. Returns whether f is done. */
bool client_wait(forq_client_t *c, forq_future_t *f, int timeout_ms);
/* A listener was registered on a pending future of c: make sure someone reads the socket. */
void client_want_io(forq_client_t *c);
/* A fresh job id of this client (for a map's chunks). */
void client_new_id(forq_client_t *c, char *buf, size_t size);
/* Send cancel for job `id` without waiting for the reply. */
forq_err_t client_cancel_async(forq_client_t *c, const char *id);

#endif
