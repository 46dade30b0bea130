/* forq/forq.h - libforq, the C client of forqd.
 *
 * forq runs jobs on a pool of worker processes behind a broker (forqd), as Python's
 * concurrent.futures.ProcessPoolExecutor does in-process. A client connects, submits jobs (a
 * task name and msgpack arguments) and gets a future per job; it can wait on the future with a
 * timeout, read its result or error, and cancel it, also while it runs.
 *
 * What libforq says to forqd is FJP/1, specified in PROTOCOL.md, installed as
 * <prefix>/share/doc/forq/PROTOCOL.md (e.g. /usr/local/share/doc/forq/): what forqd answers and
 * why, and enough to write a client in another language.
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
 *   the outcome, and forq_future_result() tells the outcome.
 * - Reconnection: ZeroMQ reconnects by itself. At every connection the client asks forqd
 *   (without waiting) for its payload limit and its instance id, new at every start. After a
 *   reconnection it asks forqd for every pending job (fetch): a job forqd still has is answered
 *   as usual. One it does not know is submitted again if forqd restarted (its instance changed)
 *   and the job allows retries, else it resolves LOST (never run twice by the same forqd).
 * - A forqd that stays away: a pending future resolves LOST once forqd has been unreachable for
 *   lost_after_ms (default FORQ_LOST_AFTER_DEF, 60 s) while it waited; nothing hangs for ever
 *   unless lost_after_ms is 0. forq_client_unreachable_ms() tells how long it has been away. */
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

#define FORQ_ID_MAX         64    /* bytes in a job id */
#define FORQ_LOST_AFTER_DEF 60000 /* ms: forq_client_opts_t.lost_after_ms by default */

/* Error codes. Append-only: values never change meaning. */
typedef enum {
    FORQ_OK = 0,
    FORQ_ERR_INVALID = 1,      /* a bad argument (NULL, bad name, args not one msgpack value) */
    FORQ_ERR_NOMEM = 2,        /* out of memory */
    FORQ_ERR_CONNECT = 3,      /* forqd did not answer at the endpoint */
    FORQ_ERR_TIMEOUT = 4,      /* the wait timed out; the job goes on */
    FORQ_ERR_PROTOCOL = 5,     /* forqd refused a message or sent one we cannot read */
    FORQ_ERR_CLOSED = 6,       /* the client was destroyed */
    FORQ_ERR_PENDING = 7,      /* the future has no result yet */
    FORQ_ERR_TASK = 8,         /* the job's task raised an error */
    FORQ_ERR_CANCELLED = 9,    /* the job was cancelled */
    FORQ_ERR_JOB_TIMEOUT = 10, /* the job ran past its timeout or queue deadline */
    FORQ_ERR_CRASHED = 11,     /* the job's worker died (signal or exit) */
    FORQ_ERR_REJECTED = 12,    /* forqd refused the job (limits, unknown task, shutting down) */
    FORQ_ERR_LOST = 13,        /* the job's outcome is unknown (forqd or the client went away) */
    FORQ_ERR_SYSTEM = 14,      /* a system or ZeroMQ call failed; the detail says which */
    FORQ_ERR_NOT_FOUND = 15,   /* forqd has no such job (never submitted, or forgotten) */
    FORQ_ERR_EXHAUSTED = 16,   /* an iterator has returned everything */
    FORQ_ERR_CONFLICT = 17,    /* dict compare-and-set: the version differs; a lock's token
                                  no longer holds it (its lease ended, or it was released) */
    FORQ_ERR_FULL = 18,        /* the dict service is at its limits (keys or bytes); a queue
                                  holds its maxsize (put: no room came within the timeout) */
    FORQ_ERR_FORBIDDEN = 19,   /* forqd's clients file does not give this client the right */
    FORQ_ERR_EMPTY = 20,       /* a queue had no item (get: none came within the timeout) */
} forq_err_t;

/* What a job is or became. Values match the wire protocol's states in order. */
typedef enum {
    FORQ_STATE_PENDING = 0, /* a future without its result yet */
    FORQ_STATE_QUEUED = 1,
    FORQ_STATE_RUNNING = 2,
    FORQ_STATE_OK = 3,
    FORQ_STATE_ERROR = 4,
    FORQ_STATE_CANCELLED = 5,
    FORQ_STATE_TIMEOUT = 6,
    FORQ_STATE_CRASHED = 7,
    FORQ_STATE_REJECTED = 8,
    FORQ_STATE_LOST = 9,
    FORQ_STATE_UNKNOWN = 10, /* forqd does not know the id (never seen, or forgotten) */
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
    const char *endpoint;   /* forqd's endpoint; NULL: $FORQ_ENDPOINT, else the default
                               ipc://$XDG_RUNTIME_DIR/forq/forqd.sock (or /tmp/forq-UID/...) */
    int connect_timeout_ms; /* > 0: forq_client_new() pings forqd and fails with
                               FORQ_ERR_CONNECT if it does not answer in time - at once when an
                               ipc socket file is missing or nothing listens on it; the detail
                               names a peer that is not forqd. 0: no check, forqd may come later */
    size_t max_message;     /* largest message accepted from forqd, bytes; 0: 64 MiB + 4 KiB */
    int linger_ms;          /* how long forq_client_destroy() tries to deliver jobs, cancels and
                               dict changes not yet sent; default 2000. Only those: a client
                               that only asked questions, or whose forqd went away before its
                               last order, is destroyed at once */
    int lost_after_ms;      /* a pending future resolves as LOST (detail: "unreachable") once
                               forqd has been unreachable this long while it waited; default
                               FORQ_LOST_AFTER_DEF (60000); 0: wait for forqd for ever */
    const char *server_key; /* forqd's CURVE public key, 40 Z85 characters (forqd --show-key):
                               connect with CURVE, as forqd's tcp endpoints require. NULL:
                               plaintext (ipc endpoints, or forqd --insecure-tcp) */
    const char *public_key; /* this client's CURVE key pair (Z85; forq keygen makes one), */
    const char *secret_key; /* which forqd's clients file must list. NULL: a fresh pair,
                               which forqd refuses unless it lists it; copied at connect */
} forq_client_opts_t;

/* Options of one job. Initialise with forq_submit_opts_init(). The strings are copied by the
 * call that takes the options (forq_submit, forq_map, forq_imap): the caller may change or free
 * them as soon as it returns, even though the job may be submitted again later (retries after
 * forqd restarted, a map's later chunks). */
typedef struct {
    const char *id;           /* job id (1-64 of A-Z a-z 0-9 . _ : -); NULL: a unique one */
    double timeout;           /* run timeout in seconds; 0: none. Past it the worker is killed */
    double deadline;          /* queue deadline in seconds from submission; 0: none */
    int priority;             /* 0..9, larger runs first; default 5 */
    unsigned retries;         /* times to run the job again if its worker crashes; default 0 */
    size_t max_result;        /* result size limit in bytes; 0: forqd's --max-payload */
    size_t max_memory;        /* address-space limit of the job in bytes; 0: none */
    unsigned max_cpu_seconds; /* CPU-time limit of the job; 0: none */
    const char *store_dict;   /* with store_key: when the job ends ok, forqd also stores its result
                                 in this dict under store_key (forq_dict_get), where it outlives
                                 the client; NULL: not stored */
    const char *store_key;
    const char *tags; /* with worker nodes: comma-separated tags the forqd or node that runs the
                         job must have (its --tag), e.g. "gpu"; NULL: any */
} forq_submit_opts_t;

/* What forq_client_status() tells about a job. */
typedef struct {
    forq_state_t state; /* QUEUED, RUNNING, a final state, or UNKNOWN */
    char task[65];      /* task name, "" when unknown */
    unsigned attempts;  /* times it was started */
    int pid;            /* worker pid while RUNNING, else 0 */
    int priority;       /* priority while QUEUED, else -1 */
    char owner[65];     /* the identity that submitted it ("local" for ipc clients) */
    uint64_t age_ms;    /* since forqd accepted it */
    uint64_t run_ms;    /* while RUNNING: since it started, else 0 */
    uint64_t done;      /* while RUNNING: its latest progress report (0, 0 if none): done */
    uint64_t total;     /*   of total (0: unknown) */
    char text[128];     /*   and its text, "" if none */
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
FORQ_EXPORT forq_err_t forq_client_new(const forq_client_opts_t *opts, forq_client_t **ret_client);

/* Disconnect: resolve every pending future of this client as FORQ_STATE_LOST (detail: "the client
 * was destroyed"), deliver unsent messages for up to linger_ms, stop the I/O thread, free.
 * Futures stay valid for reading and must still be destroyed. No-op on NULL / *client NULL. */
FORQ_EXPORT void forq_client_destroy(forq_client_t **client);

/* The endpoint this client uses. Borrowed: valid until the client is destroyed. */
FORQ_EXPORT const char *forq_client_endpoint(const forq_client_t *client);

/* How long forqd has been unreachable, in ms: 0 while connected; > 0 since the connection
 * dropped, or since the client was created if it never connected. For telling a user that a
 * wait is a wait for forqd (the forq command does after 2 s). Any thread. */
FORQ_EXPORT int64_t forq_client_unreachable_ms(forq_client_t *client);

/* Ask forqd whether it is there. Returns FORQ_OK and, if ret_version is not NULL, a version string
 * the caller frees; FORQ_ERR_CONNECT when no answer comes within timeout_ms (-1: forever). */
FORQ_EXPORT forq_err_t forq_client_ping(forq_client_t *client, int timeout_ms, char **ret_version);

/* Cancel the job `id` (any client's). *ret_outcome says what happened; the job's own future,
 * if any, receives its result as usual. FORQ_ERR_TIMEOUT when no answer in timeout_ms. */
FORQ_EXPORT forq_err_t forq_client_cancel(forq_client_t *client, const char *id, int timeout_ms,
                                          forq_cancel_t *ret_outcome);

/* What forqd knows of job `id`. FORQ_ERR_TIMEOUT when no answer in timeout_ms. */
FORQ_EXPORT forq_err_t forq_client_status(forq_client_t *client, const char *id, int timeout_ms,
                                          forq_job_info_t *ret_info);

/* The live jobs (running, then queued by priority) forqd has: an admin's request lists every
 * client's, anyone else's its own. `state` "queued" or "running" (NULL: both), `task` (NULL:
 * any) select; at most `limit` (0: 1000; at most 10000). On FORQ_OK, *ret_data is a malloc'ed
 * msgpack array of maps (id, task, status, owner, priority, age_ms, attempts; for a running
 * job also pid, run_ms, done, total, text) the caller frees; *ret_more (may be NULL) says some
 * were left out. */
FORQ_EXPORT forq_err_t forq_client_jobs(forq_client_t *client, const char *state, const char *task,
                                        size_t limit, int timeout_ms, void **ret_data,
                                        size_t *ret_len, bool *ret_more);

/* Cancel the queued jobs of `task` (NULL: every queued job), whoever submitted them: an admin
 * command (FORQ_ERR_FORBIDDEN otherwise). *ret_count (may be NULL) gets how many. Jobs already
 * with a worker are not touched: forq_client_cancel() them. */
FORQ_EXPORT forq_err_t forq_client_purge(forq_client_t *client, const char *task, int timeout_ms,
                                         size_t *ret_count);

/* forqd's counters and gauges as one msgpack map (PROTOCOL.md, "stats_reply"). On FORQ_OK,
 * *ret_data is malloc'ed msgpack the caller frees, *ret_len its size. */
FORQ_EXPORT forq_err_t forq_client_stats(forq_client_t *client, int timeout_ms, void **ret_data,
                                         size_t *ret_len);

/* ---- submitting ---- */

/* Set `opts` to the defaults. */
FORQ_EXPORT void forq_submit_opts_init(forq_submit_opts_t *opts);

/* Submit a job: run `task` with `args` (exactly one msgpack value, args_len bytes; by convention
 * an array of positional arguments). Does not wait: the message is sent at once or queued.
 * opts may be NULL for the defaults. Returns FORQ_OK with *ret_future owned by the caller
 * (forq_future_destroy), or FORQ_ERR_INVALID (bad task name, id or args; detail says which; args
 * larger than forqd's --max-payload, or than the default 64 MiB before forqd told its own, get a
 * detail starting "too_large:" and are never sent), FORQ_ERR_CLOSED, FORQ_ERR_NOMEM. A job forqd
 * refuses still returns FORQ_OK here: its future resolves as FORQ_STATE_REJECTED with the reason.
 * args and the strings of opts are copied: they may be freed once the call returns. */
FORQ_EXPORT forq_err_t forq_submit(forq_client_t *client, const char *task, const void *args,
                                   size_t args_len, const forq_submit_opts_t *opts,
                                   forq_future_t **ret_future);

/* ---- futures ---- */

/* The job's id. Borrowed: valid until the future is destroyed. */
FORQ_EXPORT const char *forq_future_id(const forq_future_t *future);

/* Wait until the future is done, for at most timeout_ms (-1: forever, 0: just look). Returns
 * FORQ_OK when done (whatever the outcome), FORQ_ERR_TIMEOUT otherwise; forq_errdetail() then
 * also says when forqd is unreachable ("no forqd at ENDPOINT: nothing answered within N ms;
 * is forqd running...?") or the peer is not forqd. */
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

/* Free a future (drop the caller's reference). A job still pending goes on in forqd; its result
 * is then dropped. An as_completed iterator or a callback in progress keeps the memory valid
 * until it is done with it. */
FORQ_EXPORT void forq_future_destroy(forq_future_t **future);

/* ---- JSON ---- */

/* Arguments and results are msgpack; these take and give JSON text instead, in the forms the
 * forq command uses: bytes (msgpack bin) are {"$base64": "..."}, and an object with exactly that
 * one key becomes bytes on the way in; msgpack ext is {"$ext": TYPE, "$base64": "..."}; a map key
 * that is not a string is written as its JSON text; NaN and infinities become null; an integer
 * above INT64_MAX becomes a real. JSON integers must fit int64_t. Any thread.
 *
 *     forq_future_t *f;
 *     char *res;
 *     forq_submit_json(c, "count_primes", "[1, 300000]", NULL, &f);
 *     if (forq_future_wait(f, 5000) == FORQ_OK && forq_future_result_json(f, &res) == FORQ_OK)
 *         puts(res), free(res);                                   // 25997
 */

/* The msgpack of one JSON value (any value, not only an array or object). FORQ_OK with
 * *ret_data malloc'ed (the caller frees) and *ret_len its size; FORQ_ERR_INVALID when `json`
 * is not JSON (the detail gives jansson's reason, line and column) or holds a bad $base64;
 * FORQ_ERR_NOMEM. */
FORQ_EXPORT forq_err_t forq_json_to_msgpack(const char *json, void **ret_data, size_t *ret_len);

/* The compact JSON text of one msgpack value of len bytes. FORQ_OK with *ret_json malloc'ed
 * (the caller frees); FORQ_ERR_INVALID when data is not exactly one well-formed msgpack value
 * nested at most 32 deep (it is checked before it is read); FORQ_ERR_NOMEM. */
FORQ_EXPORT forq_err_t forq_msgpack_to_json(const void *data, size_t len, char **ret_json);

/* forq_submit() with the args written as JSON text, e.g. "[1, 300000]". Returns what
 * forq_submit() returns, or FORQ_ERR_INVALID when args_json is not JSON (the detail says where;
 * nothing is sent). */
FORQ_EXPORT forq_err_t forq_submit_json(forq_client_t *client, const char *task,
                                        const char *args_json, const forq_submit_opts_t *opts,
                                        forq_future_t **ret_future);

/* forq_future_result() as JSON text: FORQ_OK with *ret_json malloc'ed (the caller frees), or the
 * same outcome codes as forq_future_result() (FORQ_ERR_PENDING, FORQ_ERR_TASK, ...) with the
 * detail; FORQ_ERR_INVALID if the result is not readable msgpack. */
FORQ_EXPORT forq_err_t forq_future_result_json(forq_future_t *future, char **ret_json);

/* ---- callbacks and progress ---- */

/* Called once when a future is done. */
typedef void (*forq_done_fn)(forq_future_t *future, void *userdata);

/* Call fn(future, userdata) exactly once, when the future is done: at once, in this thread, if
 * it is done already; else in the thread that receives the result - the client's I/O thread,
 * or a thread blocked in a waiting call on the same client (forq_future_wait, a synchronous
 * request or dict call), which reads the client's socket itself while it waits - or in the
 * thread that destroys the client (the future is then LOST). Callbacks run in the order added.
 * fn may destroy the future, submit jobs and make waiting calls on the client (they are served
 * in the same thread); it should not block for long (it holds up the client's other results)
 * and must not destroy the client. */
FORQ_EXPORT forq_err_t forq_future_add_done_callback(forq_future_t *future, forq_done_fn fn,
                                                     void *userdata);

/* Called for each progress report of a running job (in the thread that receives it, under the
 * same rules as a done callback). `text` is borrowed for the call. */
typedef void (*forq_progress_fn)(forq_future_t *future, uint64_t done, uint64_t total,
                                 const char *text, void *userdata);

/* Set (or with fn NULL, clear) the future's progress callback. */
FORQ_EXPORT forq_err_t forq_future_on_progress(forq_future_t *future, forq_progress_fn fn,
                                               void *userdata);

/* The latest progress report: true with done/total (total 0 = unknown) and, if ret_text is not
 * NULL, a copy of its text the caller frees; false if the task has reported none. */
FORQ_EXPORT bool forq_future_progress(forq_future_t *future, uint64_t *ret_done,
                                      uint64_t *ret_total, char **ret_text);

/* ---- waiting on many ---- */

typedef enum {
    FORQ_FIRST_COMPLETED = 0, /* return when any future is done */
    FORQ_FIRST_EXCEPTION = 1, /* when any ends other than ok, or all are done */
    FORQ_ALL_COMPLETED = 2,   /* when all are done */
} forq_wait_t;

/* Wait for futures[0..n) until `mode` is met or timeout_ms passes (-1: forever). Returns
 * FORQ_OK when met, else FORQ_ERR_TIMEOUT; *ret_done (may be NULL) gets how many are done.
 * Driven by the results forqd pushes: no polling. The futures must not be destroyed during the
 * call. */
FORQ_EXPORT forq_err_t forq_wait(forq_future_t *const *futures, size_t n, forq_wait_t mode,
                                 int timeout_ms, size_t *ret_done);

typedef struct forq_as_completed forq_as_completed_t;

/* An iterator that yields futures[0..n) in the order they finish (Python's as_completed). It
 * keeps each future alive until it has yielded it. Free with forq_as_completed_destroy(). */
FORQ_EXPORT forq_err_t forq_as_completed_new(forq_future_t *const *futures, size_t n,
                                             forq_as_completed_t **ret_iter);

/* The next future to finish (the caller's own, not a new reference), waiting up to timeout_ms
 * (-1: forever). FORQ_ERR_TIMEOUT if none finished in time, FORQ_ERR_EXHAUSTED after all n. */
FORQ_EXPORT forq_err_t forq_as_completed_next(forq_as_completed_t *iter, int timeout_ms,
                                              forq_future_t **ret_future);

FORQ_EXPORT void forq_as_completed_destroy(forq_as_completed_t **iter);

/* ---- detached jobs ---- */

/* A future for job `id`, submitted by any client (a detached job: `forq submit --no-wait`).
 * forqd answers with the result if it still has it, when the job finishes if it is queued or
 * running, or FORQ_STATE_UNKNOWN (forq_future_result: FORQ_ERR_NOT_FOUND) if it has no such job:
 * never submitted, or finished longer ago than it keeps results (its --retain limits). */
FORQ_EXPORT forq_err_t forq_client_fetch(forq_client_t *client, const char *id,
                                         forq_future_t **ret_future);

/* ---- map, starmap, imap, imap_unordered ---- */

typedef struct forq_map forq_map_t;

/* Options of a map. Initialise with forq_map_opts_init(). */
typedef struct {
    size_t chunksize;       /* items per chunk job; default 64 */
    size_t window;          /* chunk jobs in flight or waiting to be read; default 8. Memory is
                               bounded by window * chunksize items, however long the input */
    bool unordered;         /* yield results as chunks finish, not in input order */
    bool star;              /* starmap: each item is already an args array; otherwise each item
                               is one argument (the task gets [item]) */
    forq_submit_opts_t job; /* options of every chunk job: timeout (per chunk), priority,
                               retries, ...; job.id must be NULL; its strings are copied */
} forq_map_opts_t;

/* One result of a map. Pointers are borrowed until the next forq_map_next() or destroy. */
typedef struct {
    size_t index;       /* the item's position in the input, from 0 */
    forq_state_t state; /* OK; ERROR when the task raised for this item; or its chunk's
                           fate: CANCELLED, TIMEOUT, CRASHED, REJECTED, LOST */
    const void *data;   /* OK: the result, msgpack */
    size_t len;
    const char *error_type; /* ERROR: e.g. "ValueError", else NULL */
    const char *detail;     /* how it failed; "" when OK */
} forq_map_item_t;

/* Feeds a map: point *ret_item at the next item's msgpack bytes (copied before the next call)
 * and return 1; return 0 at the end of the input; -1 stops the map (no more items are fed). */
typedef int (*forq_map_feed_fn)(void *userdata, const void **ret_item, size_t *ret_len);

FORQ_EXPORT void forq_map_opts_init(forq_map_opts_t *opts);

/* imap: run `task` on every item `feed` produces, pulling items only as the window has room
 * (from inside forq_map_next(), in the caller's thread). opts may be NULL. */
FORQ_EXPORT forq_err_t forq_imap(forq_client_t *client, const char *task, forq_map_feed_fn feed,
                                 void *userdata, const forq_map_opts_t *opts, forq_map_t **ret_map);

/* Packs item `index` of a map into `pk` (msgpack-c's packer, of <msgpack.h>: pack exactly one
 * value) and returns 1; returns 0 at the end of the input, -1 to stop the map. Called from
 * inside forq_map_gen() and forq_map_next(), in the caller's thread, with index 0, 1, 2, ... */
struct msgpack_packer;
typedef int (*forq_map_gen_fn)(void *userdata, size_t index, struct msgpack_packer *pk);

/* map over items a callback makes: gen(userdata, i, pk) packs item i, for i < n (SIZE_MAX: until
 * gen returns 0). Like forq_imap(), items are asked for only as the window has room, so n may be
 * huge; the library owns the buffer, so nothing has to stay valid between calls. opts may be
 * NULL. An item that is not exactly one msgpack value (nothing packed, or two) stops the map
 * like a -1: forq_map_next() then returns FORQ_ERR_INVALID after the items before it. */
FORQ_EXPORT forq_err_t forq_map_gen(forq_client_t *client, const char *task, size_t n,
                                    forq_map_gen_fn gen, void *userdata,
                                    const forq_map_opts_t *opts, forq_map_t **ret_map);

/* map over an array: items[i] (lens[i] bytes of msgpack) for i < n. The array is read lazily
 * and must stay valid until the map is exhausted or destroyed. */
FORQ_EXPORT forq_err_t forq_map(forq_client_t *client, const char *task, const void *const *items,
                                const size_t *lens, size_t n, const forq_map_opts_t *opts,
                                forq_map_t **ret_map);

/* The next result: in input order, or in completion order with opts.unordered. Waits up to
 * timeout_ms (-1: forever). FORQ_OK with *ret_item; FORQ_ERR_TIMEOUT; FORQ_ERR_EXHAUSTED when
 * every fed item was yielded; FORQ_ERR_INVALID if the feed returned -1 (after the fed items). A
 * failed item is FORQ_OK with its state and detail: the rest go on. */
FORQ_EXPORT forq_err_t forq_map_next(forq_map_t *map, int timeout_ms, forq_map_item_t *ret_item);

/* Stop the map: feed no more, cancel its chunk jobs in flight (queued ones are removed, running
 * ones killed). forq_map_next() then yields the items already fed, those cancelled included. */
FORQ_EXPORT forq_err_t forq_map_cancel(forq_map_t *map);

/* Items that ended other than ok, so far. */
FORQ_EXPORT size_t forq_map_failed(const forq_map_t *map);

/* Free a map; chunk jobs still in flight are cancelled. */
FORQ_EXPORT void forq_map_destroy(forq_map_t **map);

/* ---- the dict service: a shared Manager().dict() ---- */

/* Named dicts inside forqd, shared by every client and task: keys are non-empty strings of up to
 * 1024 bytes, values are one msgpack value each, and every value has a version that grows on each
 * change. Every operation is atomic (forqd is single-threaded): incr is a real counter, cas a
 * real compare-and-set. Each call waits up to timeout_ms (-1: forever) for forqd's answer and
 * returns FORQ_ERR_TIMEOUT if none comes. Values returned through ret_value are malloc'ed msgpack
 * the caller frees. Errors: FORQ_ERR_INVALID (bad name, key or value; the detail says which;
 * a value larger than forqd's --max-payload is "too_large" and never sent),
 * FORQ_ERR_FULL (the service is at --dict-max-keys / --dict-max-bytes: nothing is ever evicted),
 * FORQ_ERR_NOT_FOUND where a key must exist. Dict names: 1-64 of A-Z a-z 0-9 . _ : -. */

#define FORQ_DICT_NEXT_CHANGE UINT64_MAX /* forq_dict_wait: wait for the next change from now */

/* The value and version of key. FORQ_ERR_NOT_FOUND if it does not exist. */
FORQ_EXPORT forq_err_t forq_dict_get(forq_client_t *client, const char *name, const char *key,
                                     int timeout_ms, void **ret_value, size_t *ret_len,
                                     uint64_t *ret_version);

/* Store value (one msgpack value, len bytes) under key; *ret_version (may be NULL) its version. */
FORQ_EXPORT forq_err_t forq_dict_set(forq_client_t *client, const char *name, const char *key,
                                     const void *value, size_t len, int timeout_ms,
                                     uint64_t *ret_version);

/* Delete key. FORQ_ERR_NOT_FOUND if it did not exist. */
FORQ_EXPORT forq_err_t forq_dict_del(forq_client_t *client, const char *name, const char *key,
                                     int timeout_ms);

/* Does key exist? */
FORQ_EXPORT forq_err_t forq_dict_has(forq_client_t *client, const char *name, const char *key,
                                     int timeout_ms, bool *ret_has);

/* Number of keys of the dict (0 for a dict that does not exist). */
FORQ_EXPORT forq_err_t forq_dict_len(forq_client_t *client, const char *name, int timeout_ms,
                                     size_t *ret_len);

/* Delete every key of the dict; *ret_removed (may be NULL) how many there were. */
FORQ_EXPORT forq_err_t forq_dict_clear(forq_client_t *client, const char *name, int timeout_ms,
                                       size_t *ret_removed);

/* Set several keys at once, all or none: `map` is a msgpack map of string keys to values. */
FORQ_EXPORT forq_err_t forq_dict_update(forq_client_t *client, const char *name, const void *map,
                                        size_t len, int timeout_ms);

/* Store value under key unless it exists; *ret_value gets the value now stored either way. */
FORQ_EXPORT forq_err_t forq_dict_setdefault(forq_client_t *client, const char *name,
                                            const char *key, const void *value, size_t len,
                                            int timeout_ms, void **ret_value, size_t *ret_len);

/* Remove key and return its value. FORQ_ERR_NOT_FOUND if it did not exist. */
FORQ_EXPORT forq_err_t forq_dict_pop(forq_client_t *client, const char *name, const char *key,
                                     int timeout_ms, void **ret_value, size_t *ret_len);

/* Add delta to the integer under key (a missing key counts as 0) and return the new value.
 * FORQ_ERR_INVALID if the value is not an integer or the sum overflows. */
FORQ_EXPORT forq_err_t forq_dict_incr(forq_client_t *client, const char *name, const char *key,
                                      int64_t delta, int timeout_ms, int64_t *ret_value);

/* Store value under key only if the key's version is expected_version (0: the key must not
 * exist). FORQ_OK with the new version, or FORQ_ERR_CONFLICT with *ret_version the current one
 * (0 when the key does not exist). */
FORQ_EXPORT forq_err_t forq_dict_cas(forq_client_t *client, const char *name, const char *key,
                                     uint64_t expected_version, const void *value, size_t len,
                                     int timeout_ms, uint64_t *ret_version);

/* Block until key's version differs from seen_version (0: the key is absent;
 * FORQ_DICT_NEXT_CHANGE: the next change from now) — at once if it already does — or until
 * timeout_ms passes (FORQ_ERR_TIMEOUT). Then ret_value, ret_len and ret_version (each may be NULL)
 * describe the key now; FORQ_ERR_NOT_FOUND if the change was its deletion. */
FORQ_EXPORT forq_err_t forq_dict_wait(forq_client_t *client, const char *name, const char *key,
                                      uint64_t seen_version, int timeout_ms, void **ret_value,
                                      size_t *ret_len, uint64_t *ret_version);

/* One page of the dict in insertion order: up to `limit` (0: 1000, at most 10000) keys after key
 * `after` (NULL: from the start). *ret_data is a msgpack array of keys or, with `items`, of
 * [key, version, value] triples (caller frees); *ret_next (may be NULL) is the key to pass as
 * `after` for the next page, or NULL after the last page (caller frees). FORQ_ERR_INVALID with
 * "cursor_expired" if `after` was deleted meanwhile. */
FORQ_EXPORT forq_err_t forq_dict_page(forq_client_t *client, const char *name, bool items,
                                      const char *after, size_t limit, int timeout_ms,
                                      void **ret_data, size_t *ret_len, char **ret_next);

/* One page of the dicts this client may read, with how many keys each holds: up to `limit`
 * (0: 1000, at most 10000) dicts in byte order of their names, after the name `after` (NULL:
 * from the first). `after` need not name a dict now, so paging goes on past a dict that was
 * emptied meanwhile (a dict exists while it has keys); dicts added meanwhile are listed when
 * their names come after the page. *ret_data is a msgpack array of [name, key count] pairs
 * (caller frees); *ret_next (may be NULL) is the name to pass as `after` for the next page, or
 * NULL after the last page (caller frees). A client of a tcp endpoint sees only the dicts its
 * line of forqd's clients file lets it read (read= or write=); over ipc, every dict. */
FORQ_EXPORT forq_err_t forq_dict_list(forq_client_t *client, const char *after, size_t limit,
                                      int timeout_ms, void **ret_data, size_t *ret_len,
                                      char **ret_next);

/* ---- a client-side cache, kept right by forqd ---- */

/* Keep a local copy of what forq_dict_get reads from dict `name` on this client, at most
 * max_bytes of keys and values (the oldest go first past it); max_bytes 0 turns it off and drops
 * the copy. A cached get costs no round trip. The first get of a key asks forqd with tracking on
 * (PROTOCOL.md 6.8.1): forqd remembers that this client read it and, when anyone changes it
 * (set, del, pop, incr, cas, setdefault, update, mset, clear), sends this client an invalidation
 * - before the change's own reply - and libforq drops the copy the moment it reads it: a value is
 * never served after its invalidation was read. libforq reads them as they come (its I/O thread
 * holds the socket while no call of yours does, and a cached get first reads what the socket
 * already holds when it can). This client's own changes drop its copy before they are sent.
 * While the link to forqd is down nothing is served from the copy, and it is emptied on the next
 * connection (invalidations sent meanwhile were lost). Only forq_dict_get uses the copy; the
 * other reads (has, mget, items...) always ask forqd. FORQ_ERR_INVALID for a bad name. Thread:
 * any. A cached client's synchronous calls hand the socket back and forth with its I/O thread:
 * an uncached call costs one hand-off more than on a client with no cache. */
FORQ_EXPORT forq_err_t forq_dict_cache(forq_client_t *client, const char *name, size_t max_bytes);
/* The cache's counters since the client was made: gets answered from the copy, gets that asked
 * forqd, invalidations read, and entries held now (each may be NULL). */
FORQ_EXPORT void forq_dict_cache_stats(forq_client_t *client, uint64_t *ret_hits,
                                       uint64_t *ret_misses, uint64_t *ret_invalidations,
                                       size_t *ret_entries);

/* ---- many keys in one request ---- */

#define FORQ_DICT_MULTI_MAX 100000 /* keys in one forq_dict_mget / forq_dict_mset */

/* Read n keys of dict `name` (1 <= n <= FORQ_DICT_MULTI_MAX; a key may repeat) in one request,
 * all at one instant: no write falls between two of them. On FORQ_OK, for each i:
 * ret_values[i] is key i's value (malloc'ed msgpack, the caller frees each) or NULL when the key
 * does not exist; ret_lens[i] its size and ret_versions[i] its version, 0 when absent (either
 * array may be NULL); *ret_found (may be NULL) how many exist. Errors: FORQ_ERR_INVALID (a bad
 * name or key; or "too_large": the values would pass forqd's --max-payload - ask for fewer),
 * and those of every dict call; on an error nothing is allocated. */
FORQ_EXPORT forq_err_t forq_dict_mget(forq_client_t *client, const char *name,
                                      const char *const *keys, size_t n, int timeout_ms,
                                      void **ret_values, size_t *ret_lens, uint64_t *ret_versions,
                                      size_t *ret_found);
/* Set n keys of dict `name` in one request, all or none: values[i] is one msgpack value of
 * lens[i] bytes for keys[i] (a key given twice keeps its first place and its last value). With
 * forqd's --state-dir the whole mset is one frame of the log, so a crash keeps all of it or none.
 * *ret_version (may be NULL): the version of the last key written; the distinct keys got
 * consecutive versions in the order of their first place. Refused whole, nothing changed:
 * FORQ_ERR_INVALID (a bad key or value; more than FORQ_DICT_MULTI_MAX keys; a value over
 * --dict-max-value), FORQ_ERR_FULL (the keys would pass --dict-max-keys or --dict-max-bytes). */
FORQ_EXPORT forq_err_t forq_dict_mset(forq_client_t *client, const char *name,
                                      const char *const *keys, const void *const *values,
                                      const size_t *lens, size_t n, int timeout_ms,
                                      uint64_t *ret_version);

/* ---- the dict service, asynchronously ---- */

/* Pipelining: forq_dict_submit() returns at once, so one thread may keep many requests in flight
 * on one client - send a window of them, then wait for the oldest and send the next (bench/
 * dict_bench.c `inflight`). forqd answers one connection's requests in the order they were sent
 * (a `wait` answers when its key changes), and the client matches each answer to its future by
 * request number whatever the order. A window of 50 to 800 requests reaches forqd's capacity from
 * one thread; mget/mset ("mget": value an array of keys; "mset": value a map) carry many keys per
 * request on top of that. */

/* One dict operation for forq_dict_submit(). Initialise with forq_dict_op_init(). */
typedef struct {
    const char *op;    /* "get", "set", "del", "has", "setdefault", "pop", "incr", "cas",
                          "wait", "len", "clear", "update", "keys", "items", "dicts", "mget" or
                          "mset" */
    const char *name;  /* the dict (dicts: ignored, may be NULL) */
    const char *key;   /* the key (keys, items, dicts: the page cursor, or NULL) */
    const void *value; /* msgpack value (set, setdefault, cas; update, mset: a map; mget: an
                          array of keys), or NULL */
    size_t len;
    int64_t delta;    /* incr */
    uint64_t version; /* cas: expected (0: absent); wait: seen (FORQ_DICT_NEXT_CHANGE) */
    int timeout_ms;   /* wait: forqd's timeout, 0: none */
    size_t limit;     /* keys, items, dicts: page size, 0: 1000 */
} forq_dict_op_t;

FORQ_EXPORT void forq_dict_op_init(forq_dict_op_t *op);

/* Send a dict operation without waiting: *ret_future resolves with forqd's answer, and works
 * with forq_future_wait, callbacks, forq_wait and as_completed like any future (destroy it).
 * Read the answer with forq_dict_reply() and, where the op returns a value, with
 * forq_future_result() (the value, or for keys/items/dicts the page). */
FORQ_EXPORT forq_err_t forq_dict_submit(forq_client_t *client, const forq_dict_op_t *op,
                                        forq_future_t **ret_future);

/* The answer of a dict future: FORQ_OK with found, version and count (len, clear, keys, items,
 * dicts) (each may be NULL), or how it failed: FORQ_ERR_CONFLICT (cas; version: the current one),
 * FORQ_ERR_TIMEOUT (wait), FORQ_ERR_FULL, FORQ_ERR_INVALID, FORQ_ERR_PENDING, FORQ_ERR_LOST. */
FORQ_EXPORT forq_err_t forq_dict_reply(forq_future_t *future, bool *ret_found,
                                       uint64_t *ret_version, uint64_t *ret_count);

/* ---- shared queues, locks and events: the rest of Manager() ---- */

/* Queues, locks and events live in forqd beside the dicts: every operation is atomic, they are
 * durable with the dicts (forqd --state-dir: in the same log, with the same fsync policy), and
 * within the same limits (--dict-max-keys counts a queue's items, --dict-max-bytes their
 * bytes). Names are 1-64 of A-Z a-z 0-9 . _ : - and each kind has its own: a queue "jobs" and a
 * dict "jobs" are two things (under the same rights of forqd's clients file, read= and write=).
 * A queue, lock or event exists while it holds something; an absent one is an empty queue, a
 * free lock, an event that is not set.
 *
 * A call that blocks waits in forqd, up to its timeout_ms (-1: for ever; 0: not at all, it
 * answers at once), and libforq waits for forqd's answer 5 s longer than that; if even that
 * runs out, the call withdraws its request (forq_shared_withdraw) and returns FORQ_ERR_TIMEOUT
 * with nothing taken, put or granted, or, when forqd answered first, its answer. The calls that
 * do not block wait up to timeout_ms (-1: for ever) for forqd's answer, as the dict calls do,
 * and return FORQ_ERR_TIMEOUT when none came. All are thread-safe, like every call on a
 * client. Errors besides those listed: FORQ_ERR_INVALID (a bad name or value: the detail says
 * which), FORQ_ERR_FULL (forqd's limits), FORQ_ERR_FORBIDDEN, FORQ_ERR_CONNECT, FORQ_ERR_LOST. */

/* Put `value` (one msgpack value, len bytes) into queue `name`: at the back, or with `front`
 * at the front (the next get takes it). With maxsize > 0 the queue holds at most maxsize items:
 * when it is full the put waits for room up to timeout_ms, behind the puts already waiting, and
 * returns FORQ_ERR_FULL if none came (the item is not put). *ret_count (may be NULL) gets the
 * items the queue holds after the put (0 when the item went straight to a consumer that was
 * waiting). */
FORQ_EXPORT forq_err_t forq_queue_put(forq_client_t *client, const char *name, const void *value,
                                      size_t len, bool front, size_t maxsize, int timeout_ms,
                                      size_t *ret_count);

/* Take the first item of queue `name`, waiting up to timeout_ms for one; FORQ_ERR_EMPTY if none
 * came. *ret_value gets the item (malloc'ed msgpack, the caller frees) and *ret_len its size.
 * Consumers that wait are served in the order they came, one item to exactly one consumer; an
 * item is out of the queue only once it is on its way to this client: if this client goes away
 * while it waits, it takes nothing with it. */
FORQ_EXPORT forq_err_t forq_queue_get(forq_client_t *client, const char *name, int timeout_ms,
                                      void **ret_value, size_t *ret_len);

/* forq_queue_put() and forq_queue_get() without waiting: *ret_future resolves with forqd's
 * answer, and works with forq_future_wait, callbacks, forq_wait and as_completed like a job's
 * (destroy it). Read it with forq_queue_reply() and, for a get, the item with
 * forq_future_result() (borrowed from the future). Requests from one client are answered in
 * the order forqd took them: a consumer that keeps several gets in flight receives items in
 * queue order as fast as they come. An item is on its way to this client once forqd answers
 * the get: destroying a get's future before its answer came drops the item with it — wait for
 * it first. */
FORQ_EXPORT forq_err_t forq_queue_put_async(forq_client_t *client, const char *name,
                                            const void *value, size_t len, bool front,
                                            size_t maxsize, int timeout_ms,
                                            forq_future_t **ret_future);
FORQ_EXPORT forq_err_t forq_queue_get_async(forq_client_t *client, const char *name, int timeout_ms,
                                            forq_future_t **ret_future);

/* The answer of a queue future: FORQ_OK (*ret_count, may be NULL: the items the queue holds
 * after it), FORQ_ERR_EMPTY (a get that found no item in time), FORQ_ERR_FULL (a put that
 * found no room), FORQ_ERR_CANCELLED (withdrawn: forq_shared_withdraw), FORQ_ERR_PENDING, or
 * how the request failed. */
FORQ_EXPORT forq_err_t forq_queue_reply(forq_future_t *future, size_t *ret_count);

/* Take back a request that waits in forqd and whose answer is no longer wanted: the future of
 * forq_queue_get_async(), forq_queue_put_async() or forq_sem_acquire_async(). forqd answers
 * at once whether it was still waiting, atomically: FORQ_OK with *ret_withdrawn true: it was,
 * and now never will be answered: no item was taken (the next goes to the next consumer), none
 * put, no grant made; the future is resolved cancelled (its reply: FORQ_ERR_CANCELLED).
 * *ret_withdrawn false: forqd had answered it (or, for a future already done, there was nothing
 * to ask): its answer is in the future, which is done (an item in it is this client's: use it,
 * or put it back with `front`). Waits up to timeout_ms (-1: for ever) for forqd's reply:
 * FORQ_ERR_TIMEOUT then, the future untouched. FORQ_ERR_INVALID for any other future (a job's,
 * a dict call's); FORQ_ERR_FORBIDDEN, FORQ_ERR_CONNECT. Thread-safe; the future stays the
 * caller's. */
FORQ_EXPORT forq_err_t forq_shared_withdraw(forq_future_t *future, int timeout_ms,
                                            bool *ret_withdrawn);

/* The number of items of queue `name` (0 for a queue that does not exist). */
FORQ_EXPORT forq_err_t forq_queue_len(forq_client_t *client, const char *name, int timeout_ms,
                                      size_t *ret_len);

/* Read items of queue `name` without taking them: up to `limit` (0: 1000, at most 10000) from
 * the item at index `start` (0: the first). *ret_data is a msgpack array of the items (the
 * caller frees); *ret_more (may be NULL) is true when items follow. Items that gets take
 * meanwhile shift the indexes: a page is a glimpse, not a cursor. */
FORQ_EXPORT forq_err_t forq_queue_range(forq_client_t *client, const char *name, size_t start,
                                        size_t limit, int timeout_ms, void **ret_data,
                                        size_t *ret_len, bool *ret_more);

/* Remove every item of queue `name`; *ret_removed (may be NULL) how many there were. Puts that
 * waited for room go in. */
FORQ_EXPORT forq_err_t forq_queue_clear(forq_client_t *client, const char *name, int timeout_ms,
                                        size_t *ret_removed);

/* Acquire lock `name`, waiting up to timeout_ms for it; FORQ_ERR_TIMEOUT if it was not granted
 * in time. Acquirers that wait are served in the order they came. The grant is a lease of
 * lease_ms (0: 60000; at most a day): unless renewed (forq_lock_renew) or released before, it
 * ends by itself, so a holder that dies or hangs frees the lock. *ret_token gets the grant's
 * fencing token, which grows with every grant of any lock and never repeats, restarts
 * included: release and renew name the grant by it, and a change fenced with it
 * (forq_dict_set_fenced) is refused once the grant has ended. */
FORQ_EXPORT forq_err_t forq_lock_acquire(forq_client_t *client, const char *name, int lease_ms,
                                         int timeout_ms, uint64_t *ret_token);

/* A semaphore: lock `name` with up to `permits` (1 to 10000) holders at once, each with its
 * own grant and token; otherwise as forq_lock_acquire(). Every acquirer of a name should give
 * the same permits. */
FORQ_EXPORT forq_err_t forq_sem_acquire(forq_client_t *client, const char *name, unsigned permits,
                                        int lease_ms, int timeout_ms, uint64_t *ret_token);

/* forq_sem_acquire() without waiting: *ret_future resolves with forqd's answer (destroy it);
 * read it with forq_lock_reply(). Take it back with forq_shared_withdraw(): a grant whose
 * future is destroyed unread holds the lock until its lease ends. */
FORQ_EXPORT forq_err_t forq_sem_acquire_async(forq_client_t *client, const char *name,
                                              unsigned permits, int lease_ms, int timeout_ms,
                                              forq_future_t **ret_future);

/* The answer of an acquire future: FORQ_OK with *ret_token (may be NULL) the grant's token,
 * FORQ_ERR_TIMEOUT (not granted in time), FORQ_ERR_CANCELLED (withdrawn), FORQ_ERR_PENDING, or
 * how the request failed. */
FORQ_EXPORT forq_err_t forq_lock_reply(forq_future_t *future, uint64_t *ret_token);

/* End the grant `token` of lock (or semaphore) `name`; acquirers waiting get it.
 * FORQ_ERR_CONFLICT when the token does not hold the lock (its lease ended, or it was released
 * already): whatever it guarded may have been changed by the next holder. */
FORQ_EXPORT forq_err_t forq_lock_release(forq_client_t *client, const char *name, uint64_t token,
                                         int timeout_ms);

/* Renew the grant `token` of lock `name`: its lease ends lease_ms (0: 60000) from now.
 * FORQ_ERR_CONFLICT when the token does not hold the lock any more. */
FORQ_EXPORT forq_err_t forq_lock_renew(forq_client_t *client, const char *name, uint64_t token,
                                       int lease_ms, int timeout_ms);

/* forq_dict_set() and forq_dict_cas(), fenced: done only while grant `token` holds lock `lock`,
 * else nothing changes and they return FORQ_ERR_CONFLICT ("stale_token"). Reading the lock
 * needs the read right on its name. */
FORQ_EXPORT forq_err_t forq_dict_set_fenced(forq_client_t *client, const char *name,
                                            const char *key, const void *value, size_t len,
                                            const char *lock, uint64_t token, int timeout_ms,
                                            uint64_t *ret_version);
FORQ_EXPORT forq_err_t forq_dict_cas_fenced(forq_client_t *client, const char *name,
                                            const char *key, uint64_t expected_version,
                                            const void *value, size_t len, const char *lock,
                                            uint64_t token, int timeout_ms, uint64_t *ret_version);

/* Set event `name` (multiprocessing.Event.set): everyone waiting for it is answered, and waits
 * return at once until it is cleared. */
FORQ_EXPORT forq_err_t forq_event_set(forq_client_t *client, const char *name, int timeout_ms);

/* Clear event `name`. */
FORQ_EXPORT forq_err_t forq_event_clear(forq_client_t *client, const char *name, int timeout_ms);

/* Wait up to timeout_ms for event `name` to be set (at once if it is): FORQ_OK when it is set,
 * FORQ_ERR_TIMEOUT when it was not set in time. With timeout_ms 0, *ret_is_set (may be NULL)
 * says whether it is set, and the call returns FORQ_OK either way. */
FORQ_EXPORT forq_err_t forq_event_wait(forq_client_t *client, const char *name, int timeout_ms,
                                       bool *ret_is_set);

#ifdef __cplusplus
}
#endif
#endif
