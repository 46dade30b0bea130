/* forq/forq.h - libforq, the C client of forqd.
 *
 * forq runs jobs on a pool of worker processes behind a broker (forqd), as Python's
 * concurrent.futures.ProcessPoolExecutor does in-process. A client connects, submits jobs (a
 * task name and msgpack arguments) and gets a future per job; it can wait on the future with a
 * timeout, read its result or error, and cancel it, also while it runs.
 *
 *     forq_client_t *c;
 *     forq_future_t *f;
 *     const void *res;
 *     size_t len;
 *
 *     if (forq_client_new(NULL, &c) != FORQ_OK)                 // default endpoint
 *         errx(1, "%s", forq_errdetail());
 *     forq_submit(c, "is_prime", args, args_len, NULL, &f);     // args: msgpack bytes
 *     if (forq_future_wait(f, 5000) == FORQ_OK &&
 *         forq_future_result(f, &res, &len) == FORQ_OK)
 *         ... unpack res ...
 *     forq_future_destroy(&f);
 *     forq_client_destroy(&c);
 *
 * Conventions:
 * - Every call that can fail returns forq_err_t; FORQ_OK is 0. forq_strerror() names a code;
 *   forq_errdetail() gives the one-line detail of the calling thread's last failed call.
 * - Output parameters are named ret_* and are untouched on failure.
 * - `_new` returns what the caller owns; `_destroy(T **)` frees, sets the pointer to NULL and is
 *   a no-op on NULL. `const char *` results are borrowed: the comment says until when.
 * - Threads: a client may be used from several threads at once (submit on one, wait on
 *   another). A future may be waited on from any thread; destroying it must not race other
 *   calls on the same future. forq_client_destroy() must not race other calls on its client.
 * - The library never logs, never exits and never raises signals (it ignores SIGPIPE on its
 *   own sockets through ZeroMQ).
 * - A job's failure (task error, crash, timeout, cancel, rejection) is a result of its future,
 *   not a failed call: forq_future_wait() returns FORQ_OK when the future is done, whatever
 *   the outcome, and forq_future_result() tells the outcome. */
#ifndef FORQ_FORQ_H
#define FORQ_FORQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define FORQ_EXPORT __attribute__((visibility("default")))
#else
#define FORQ_EXPORT
#endif

#define FORQ_ID_MAX 64 /* bytes in a job id */

/* Error codes. Append-only: values never change meaning. */
typedef enum {
    FORQ_OK = 0,
    FORQ_ERR_INVALID = 1,     /* a bad argument (NULL, bad name, args not one msgpack value) */
    FORQ_ERR_NOMEM = 2,       /* out of memory */
    FORQ_ERR_CONNECT = 3,     /* forqd did not answer at the endpoint */
    FORQ_ERR_TIMEOUT = 4,     /* the wait timed out; the job goes on */
    FORQ_ERR_PROTOCOL = 5,    /* forqd refused a message or sent one we cannot read */
    FORQ_ERR_CLOSED = 6,      /* the client was destroyed */
    FORQ_ERR_PENDING = 7,     /* the future has no result yet */
    FORQ_ERR_TASK = 8,        /* the job's task raised an error */
    FORQ_ERR_CANCELLED = 9,   /* the job was cancelled */
    FORQ_ERR_JOB_TIMEOUT = 10, /* the job ran past its timeout or queue deadline */
    FORQ_ERR_CRASHED = 11,    /* the job's worker died (signal or exit) */
    FORQ_ERR_REJECTED = 12,   /* forqd refused the job (limits, unknown task, shutting down) */
    FORQ_ERR_LOST = 13,       /* the job's outcome is unknown (forqd or the client went away) */
    FORQ_ERR_SYSTEM = 14,     /* a system or ZeroMQ call failed; the detail says which */
} forq_err_t;

/* What a job is or became. Values match the wire protocol's states in order. */
typedef enum {
    FORQ_STATE_PENDING = 0,   /* a future without its result yet */
    FORQ_STATE_QUEUED = 1,
    FORQ_STATE_RUNNING = 2,
    FORQ_STATE_OK = 3,
    FORQ_STATE_ERROR = 4,
    FORQ_STATE_CANCELLED = 5,
    FORQ_STATE_TIMEOUT = 6,
    FORQ_STATE_CRASHED = 7,
    FORQ_STATE_REJECTED = 8,
    FORQ_STATE_LOST = 9,
    FORQ_STATE_UNKNOWN = 10,  /* forqd does not know the id (never seen, or forgotten) */
} forq_state_t;

/* What a cancel did. */
typedef enum {
    FORQ_CANCEL_UNKNOWN = 0,  /* no job with that id (never seen, or forgotten) */
    FORQ_CANCEL_DEQUEUED = 1, /* it was queued and is now removed; its result says cancelled */
    FORQ_CANCEL_KILLING = 2,  /* it was running; its worker is being killed */
    FORQ_CANCEL_FINISHED = 3, /* it had already finished; nothing was done */
} forq_cancel_t;

typedef struct forq_client forq_client_t;
typedef struct forq_future forq_future_t;

/* Options of a connection. Initialise with forq_client_opts_init(), then set what you need. */
typedef struct {
    const char *endpoint;    /* forqd's endpoint; NULL: $FORQ_ENDPOINT, else the default
                                ipc://$XDG_RUNTIME_DIR/forq/forqd.sock (or /tmp/forq-UID/...) */
    int connect_timeout_ms;  /* > 0: forq_client_new() pings forqd and fails with
                                FORQ_ERR_CONNECT if it does not answer in time; 0: no check */
    size_t max_message;      /* largest message accepted from forqd, bytes; 0: 64 MiB + 4 KiB */
    int linger_ms;           /* how long forq_client_destroy() tries to deliver messages not yet
                                sent; default 2000 */
} forq_client_opts_t;

/* Options of one job. Initialise with forq_submit_opts_init(). */
typedef struct {
    const char *id;          /* job id (1-64 of A-Z a-z 0-9 . _ : -); NULL: a unique one */
    double timeout;          /* run timeout in seconds; 0: none. Past it the worker is killed */
    double deadline;         /* queue deadline in seconds from submission; 0: none */
    int priority;            /* 0..9, larger runs first; default 5 */
    unsigned retries;        /* times to run the job again if its worker crashes; default 0 */
    size_t max_result;       /* result size limit in bytes; 0: forqd's --max-payload */
    size_t max_memory;       /* address-space limit of the job in bytes; 0: none */
    unsigned max_cpu_seconds; /* CPU-time limit of the job; 0: none */
} forq_submit_opts_t;

/* What forq_client_status() tells about a job. */
typedef struct {
    forq_state_t state;      /* QUEUED, RUNNING, a final state, or UNKNOWN */
    char task[65];           /* task name, "" when unknown */
    unsigned attempts;       /* times it was started */
    int pid;                 /* worker pid while RUNNING, else 0 */
    int priority;            /* priority while QUEUED, else -1 */
} forq_job_info_t;

/* ---- errors ---- */

/* A short description of `err`. Static: never freed. */
FORQ_EXPORT const char *forq_strerror(forq_err_t err);

/* The detail of the last call that failed in this thread, one line ("" if none). Borrowed: valid
 * until the next libforq call in this thread. */
FORQ_EXPORT const char *forq_errdetail(void);

/* The wire name of a state ("ok", "crashed", ...). Static. */
FORQ_EXPORT const char *forq_state_name(forq_state_t state);

/* ---- the client ---- */

/* Set `opts` to the defaults. */
FORQ_EXPORT void forq_client_opts_init(forq_client_opts_t *opts);

/* Connect to forqd (opts may be NULL for the defaults). Starts one I/O thread.
 * Returns FORQ_OK with *ret_client owned by the caller (forq_client_destroy), or
 * FORQ_ERR_INVALID (bad endpoint), FORQ_ERR_CONNECT (no answer within connect_timeout_ms),
 * FORQ_ERR_SYSTEM, FORQ_ERR_NOMEM. */
FORQ_EXPORT forq_err_t forq_client_new(const forq_client_opts_t *opts,
                                       forq_client_t **ret_client);

/* Disconnect: resolve every pending future of this client as FORQ_STATE_LOST (detail: "the client
 * was destroyed"), deliver unsent messages for up to linger_ms, stop the I/O thread, free.
 * Futures stay valid for reading and must still be destroyed. No-op on NULL / *client NULL. */
FORQ_EXPORT void forq_client_destroy(forq_client_t **client);

/* The endpoint this client uses. Borrowed: valid until the client is destroyed. */
FORQ_EXPORT const char *forq_client_endpoint(const forq_client_t *client);

/* Ask forqd whether it is there. Returns FORQ_OK and, if ret_version is not NULL, a version string
 * the caller frees; FORQ_ERR_CONNECT when no answer comes within timeout_ms (-1: forever). */
FORQ_EXPORT forq_err_t forq_client_ping(forq_client_t *client, int timeout_ms,
                                        char **ret_version);

/* Cancel the job `id` (any client's). *ret_outcome says what happened; the job's own future,
 * if any, receives its result as usual. FORQ_ERR_TIMEOUT when no answer in timeout_ms. */
FORQ_EXPORT forq_err_t forq_client_cancel(forq_client_t *client, const char *id, int timeout_ms,
                                          forq_cancel_t *ret_outcome);

/* What forqd knows of job `id`. FORQ_ERR_TIMEOUT when no answer in timeout_ms. */
FORQ_EXPORT forq_err_t forq_client_status(forq_client_t *client, const char *id, int timeout_ms,
                                          forq_job_info_t *ret_info);

/* forqd's counters and gauges as one msgpack map (PROTOCOL.md, "stats_reply"). On FORQ_OK,
 * *ret_data is malloc'ed msgpack the caller frees, *ret_len its size. */
FORQ_EXPORT forq_err_t forq_client_stats(forq_client_t *client, int timeout_ms, void **ret_data,
                                         size_t *ret_len);

/* ---- submitting ---- */

/* Set `opts` to the defaults. */
FORQ_EXPORT void forq_submit_opts_init(forq_submit_opts_t *opts);

/* Submit a job: run `task` with `args` (exactly one msgpack value, args_len bytes; by convention
 * an array of positional arguments). Does not wait: the message is queued for the I/O thread.
 * opts may be NULL for the defaults. Returns FORQ_OK with *ret_future owned by the caller
 * (forq_future_destroy), or FORQ_ERR_INVALID (bad task name, id or args; detail says which),
 * FORQ_ERR_CLOSED, FORQ_ERR_NOMEM. A job forqd refuses still returns FORQ_OK here: its future
 * resolves as FORQ_STATE_REJECTED with the reason. */
FORQ_EXPORT forq_err_t forq_submit(forq_client_t *client, const char *task, const void *args,
                                   size_t args_len, const forq_submit_opts_t *opts,
                                   forq_future_t **ret_future);

/* ---- futures ---- */

/* The job's id. Borrowed: valid until the future is destroyed. */
FORQ_EXPORT const char *forq_future_id(const forq_future_t *future);

/* Wait until the future is done, for at most timeout_ms (-1: forever, 0: just look). Returns
 * FORQ_OK when done (whatever the outcome), FORQ_ERR_TIMEOUT otherwise. */
FORQ_EXPORT forq_err_t forq_future_wait(forq_future_t *future, int timeout_ms);

/* Is the future done? Never blocks. */
FORQ_EXPORT bool forq_future_done(forq_future_t *future);

/* The job's final state, or FORQ_STATE_PENDING. */
FORQ_EXPORT forq_state_t forq_future_state(forq_future_t *future);

/* The result of a done future. FORQ_OK: *ret_data and *ret_len hold the task's msgpack result,
 * borrowed until the future is destroyed. Otherwise the outcome as an error code:
 * FORQ_ERR_PENDING, FORQ_ERR_TASK, FORQ_ERR_CANCELLED, FORQ_ERR_JOB_TIMEOUT, FORQ_ERR_CRASHED,
 * FORQ_ERR_REJECTED, FORQ_ERR_LOST; forq_future_detail() then says more. */
FORQ_EXPORT forq_err_t forq_future_result(forq_future_t *future, const void **ret_data,
                                          size_t *ret_len);

/* The error type a task raised ("ValueError", ...), or NULL. Borrowed until destroy. */
FORQ_EXPORT const char *forq_future_error_type(forq_future_t *future);

/* One line on how the job ended (error message, rejection or crash reason), or "" for ok and
 * pending. Borrowed until destroy. */
FORQ_EXPORT const char *forq_future_detail(forq_future_t *future);

/* The machine-readable code of a rejection or protocol error ("queue_full", ...), or NULL. */
FORQ_EXPORT const char *forq_future_code(forq_future_t *future);

/* For a crashed job: the signal that killed its worker (0 if none) and its exit code (-1 if it
 * was killed by a signal or did not crash). */
FORQ_EXPORT int forq_future_signal(forq_future_t *future);
FORQ_EXPORT int forq_future_exit_code(forq_future_t *future);

/* Times the job was started (retries count), known once done. */
FORQ_EXPORT unsigned forq_future_attempts(forq_future_t *future);

/* Cancel this future's job: forq_client_cancel() on its id. */
FORQ_EXPORT forq_err_t forq_future_cancel(forq_future_t *future, int timeout_ms,
                                          forq_cancel_t *ret_outcome);

/* Free a future. A job still pending goes on in forqd; its result is then dropped. */
FORQ_EXPORT void forq_future_destroy(forq_future_t **future);

#ifdef __cplusplus
}
#endif
#endif
