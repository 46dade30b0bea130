/* forq/task.h - the forq task plugin ABI, version 2 (forqd also loads plugins built for 1).
 *
 * A task plugin is a shared object that forqd loads once, in its forkserver, before any worker
 * exists (`forqd --tasks PATH`). Workers are forked from the forkserver and so inherit the loaded
 * plugin copy-on-write. A plugin declares its tasks in one exported constant:
 *
 *     #include <forq/task.h>
 *
 *     static int square(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
 *     {
 *         int64_t x;
 *         if (forq_task_arg_int(ctx, args, 0, &x) < 0)
 *             return -1;                       // the error is already set on ctx
 *         return msgpack_pack_int64(out, x * x);
 *     }
 *
 *     static const forq_task_def_t tasks[] = {
 *         {"square", square, "square(x) -> x*x"},
 *         {NULL, NULL, NULL},
 *     };
 *
 *     FORQ_PLUGIN_DEFINE("example", tasks, NULL, NULL);
 *
 * Build it with `cc -shared -fPIC $(pkg-config --cflags --libs forq-task) -o example.so ...`.
 *
 * What a task's progress reports and dict calls become on the wire, and what clients see of a
 * job's result or error, is specified in PROTOCOL.md, installed as
 * <prefix>/share/doc/forq/PROTOCOL.md (e.g. /usr/local/share/doc/forq/).
 *
 * The contract of a task function:
 * - `args` is the job's argument value, already checked for structure and unpacked; it and
 *   everything it points to is valid only during the call. By convention args is an array of
 *   positional arguments (Python's *args); a client may also send a single non-array value,
 *   which forq_task_arg_*() treat as a one-element array.
 * - On success the task packs exactly one msgpack value into `out` and returns 0.
 * - On failure it calls forq_task_error() (which returns -1) and returns -1; whatever it
 *   packed is discarded. The client receives status "error" with the type and message.
 * - A task runs in its own worker process, one job at a time. It may block, allocate, and use
 *   threads; it must not install handlers for SIGTERM or SIGKILL or change the worker's
 *   process group. A crash (signal, exit) fails only this job, with status "crashed".
 * - The job may be cancelled or time out at any moment: the worker is then killed with SIGKILL.
 *
 * ABI rules: FORQ_TASK_ABI_VERSION changes when a struct below changes; new functions may be
 * added within a version. A plugin says which version it was built for in its descriptor's
 * first field, and forqd reads only the fields of that version: it loads plugins built for any
 * version from FORQ_TASK_ABI_MIN to FORQ_TASK_ABI_VERSION and refuses others with a message.
 *
 * Version 2 added, for plugins that learn their tasks only at load time (the
 * Python runtime imports modules and finds their @forq.task functions):
 * - three fields at the end of forq_plugin_t: `load` (declare tasks, read forqd's settings) and
 *   `before_fork` / `after_fork_parent` (around each worker's fork in the forkserver); `tasks`
 *   may be NULL when `load` declares them;
 * - forq_plugin_declare(), forq_plugin_setting(), forq_plugin_fail() for `load`;
 * - forq_task_log() (a line in forqd's log, with the job id) and forq_task_cancelled().
 * A version 1 plugin's source builds unchanged against version 2 (FORQ_PLUGIN_DEFINE leaves
 * the new fields NULL); its binary loads unchanged too. */
#ifndef FORQ_TASK_H
#define FORQ_TASK_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FORQ_TASK_ABI_VERSION 2
#define FORQ_TASK_ABI_MIN     1 /* the oldest version forqd still loads */

#if defined(__GNUC__)
#define FORQ_TASK_EXPORT       __attribute__((visibility("default")))
#define FORQ_TASK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FORQ_TASK_EXPORT
#define FORQ_TASK_PRINTF(a, b)
#endif

/* The context of one running job: opaque, owned by the worker, valid during the task call. */
typedef struct forq_task_ctx forq_task_ctx_t;

/* A task: see the contract above. Returns 0 on success, -1 after forq_task_error(). */
typedef int (*forq_task_fn)(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out);

/* What forq_plugin_t.load gets: forqd's side of a plugin being loaded (opaque). Valid only
 * during the call. */
typedef struct forq_plugin_host forq_plugin_host_t;

/* One task of a plugin. */
typedef struct {
    const char *name; /* 1-64 chars of A-Z a-z 0-9 . _ : -, unique across all plugins */
    forq_task_fn fn;  /* the function */
    const char *doc;  /* one line: signature and what it returns, may be NULL */
} forq_task_def_t;

/* What a plugin exports under the symbol FORQ_PLUGIN_SYMBOL. */
typedef struct {
    uint32_t abi_version;         /* FORQ_TASK_ABI_VERSION the plugin was built with */
    const char *name;             /* the plugin's name, for logs */
    const forq_task_def_t *tasks; /* array ended by an entry whose name is NULL */
    /* Called once in the forkserver after loading (preload: read tables, warm caches); may be
     * NULL. Returns 0, or -1 to refuse loading (forqd then stops with the plugin's name). */
    int (*init)(void);
    /* Called once in each worker after fork, before its first job; may be NULL. Returns 0, or
     * -1 and the worker exits (forqd logs it and starts another after a backoff). */
    int (*worker_init)(void);
    /* ---- ABI 2; forqd reads these only from a plugin built for version 2 or later ---- */
    /* Called once in the forkserver after the `tasks` table is registered and before `init`,
     * may be NULL. It may declare more tasks (forq_plugin_declare) and read forqd's settings
     * (forq_plugin_setting). Returns 0, or -1 to refuse loading after forq_plugin_fail(): forqd
     * does not start (a reload is refused) and logs the reason. */
    int (*load)(forq_plugin_host_t *host);
    /* Called in the forkserver just before / just after (in the forkserver, whether or not the
     * fork succeeded) each worker's fork; may be NULL. worker_init runs in the new worker. */
    void (*before_fork)(void);
    void (*after_fork_parent)(void);
} forq_plugin_t;

/* The symbol keeps its name across versions: abi_version says which layout follows. */
#define FORQ_PLUGIN_SYMBOL "forq_plugin_v1"

/* Declare the plugin: FORQ_PLUGIN_DEFINE(name, tasks, init, worker_init). */
/* (designated: a plugin built with -Wextra sees no field left out; the later ones are NULL) */
#define FORQ_PLUGIN_DEFINE(pname, ptasks, pinit, pworker_init)                                     \
    FORQ_TASK_EXPORT const forq_plugin_t forq_plugin_v1 = {.abi_version = FORQ_TASK_ABI_VERSION,   \
                                                           .name = (pname),                        \
                                                           .tasks = (ptasks),                      \
                                                           .init = (pinit),                        \
                                                           .worker_init = (pworker_init)}

/* Fail the job with an error of `type` (a short word such as "ValueError") and a message made
 * from `fmt`. Both are truncated to 1024 bytes. Always returns -1, so a task can
 * `return forq_task_error(...)`. Calling it again replaces the earlier error. */
FORQ_TASK_EXPORT int forq_task_error(forq_task_ctx_t *ctx, const char *type, const char *fmt, ...)
    FORQ_TASK_PRINTF(3, 4);

/* ---- loading (ABI 2): for forq_plugin_t.load ---- */

/* Declare one more task: `name` as for forq_task_def_t (copied), `fn` its function, `doc` one
 * line or NULL (as in forq_task_def_t; forqd does not keep it yet). One function may serve
 * several names: forq_task_name() tells which was called. Returns 0, or -1 after forq_plugin_fail()
 * with the reason (a bad or duplicate name, or called outside `load`). */
FORQ_TASK_EXPORT int forq_plugin_declare(forq_plugin_host_t *host, const char *name,
                                         forq_task_fn fn, const char *doc);

/* The `i`-th value (from 0) of forqd's setting `name` (the long option's name, e.g.
 * "python-import"), or NULL past the last value or for a setting plugins may not read.
 * Repeatable settings have a value per occurrence; yes/no settings read "yes" or "no".
 * Readable: python-path, python-import, python-task, python-allow-threads, log-level.
 * Borrowed: valid during the call. */
FORQ_TASK_EXPORT const char *forq_plugin_setting(const forq_plugin_host_t *host, const char *name,
                                                 size_t i);

/* Say why loading fails (one line, truncated to 1024 bytes); `load` then returns -1. Always
 * returns -1. */
FORQ_TASK_EXPORT int forq_plugin_fail(forq_plugin_host_t *host, const char *fmt, ...)
    FORQ_TASK_PRINTF(2, 3);

/* Levels of forq_task_log(): syslog's. */
#define FORQ_LOG_ERROR   3
#define FORQ_LOG_WARNING 4
#define FORQ_LOG_NOTICE  5
#define FORQ_LOG_INFO    6
#define FORQ_LOG_DEBUG   7

/* Write to forqd's log at `level` (FORQ_LOG_*; dropped when above forqd's --log-level): each
 * line of the text (it is split at newlines; 4000 bytes at most in all, each line cut at about
 * 1900) becomes one log line, prefixed with "job <id>: " when ctx is not NULL. ctx may be NULL
 * (in load, init, worker_init). (ABI 2) */
FORQ_TASK_EXPORT void forq_task_log(const forq_task_ctx_t *ctx, int level, const char *fmt, ...)
    FORQ_TASK_PRINTF(3, 4);

/* Has forqd asked to cancel the running job? Reads what forqd has sent (without waiting) and
 * returns 1 once a `cancel` naming this job has arrived, else 0. For tasks that can stop early
 * and tidily: with forqd's --cancel-grace MS, a cancelled running job's task is told and has MS
 * to return (any error it returns then makes the job `cancelled`, its worker spared); after
 * that, or at once without --cancel-grace (the default), its worker is killed. (ABI 2) */
FORQ_TASK_EXPORT int forq_task_cancelled(forq_task_ctx_t *ctx);

/* The id of the running job, as the client chose it (forq_future_id(), `forq submit --id`).
 * Inside a map (forq_map*, `forq map`) the task is called once per item within a chunk job, and
 * this is the chunk job's id: the same for every item of that chunk, another for the next chunk
 * (libforq names chunks like any job, "<client prefix>-<n>"); nothing tells an item's index, so
 * put what tells items apart in their args. Borrowed: valid during the task call. */
FORQ_TASK_EXPORT const char *forq_task_job_id(const forq_task_ctx_t *ctx);

/* The name of the running task. Borrowed: valid during the task call. */
FORQ_TASK_EXPORT const char *forq_task_name(const forq_task_ctx_t *ctx);

/* Report progress of the running job: `done` of `total` units (total 0 = unknown) and a short
 * text (may be NULL; truncated to 1024 bytes). The client's future shows the latest report.
 * Reports closer than 50 ms apart are dropped, except one with done >= total; call it as often
 * as is convenient. Never fails the job; returns 0. */
FORQ_TASK_EXPORT int forq_task_progress(forq_task_ctx_t *ctx, uint64_t done, uint64_t total,
                                        const char *text);

/* Number of positional arguments: the array's size, or 1 for a non-array value. */
FORQ_TASK_EXPORT uint32_t forq_task_arg_count(const msgpack_object *args);

/* Positional argument `i`, or NULL past the end. Borrowed from `args`. */
FORQ_TASK_EXPORT const msgpack_object *forq_task_arg(const msgpack_object *args, uint32_t i);

/* Read positional argument `i` as an integer / number (integers convert) / string (str or bin;
 * `*ret_len` gets its length, `*ret` borrows from args and is not NUL-terminated).
 * On a missing or mistyped argument they set a TypeError on ctx naming the position and
 * return -1; `*ret` is then untouched. */
FORQ_TASK_EXPORT int forq_task_arg_int(forq_task_ctx_t *ctx, const msgpack_object *args, uint32_t i,
                                       int64_t *ret);
FORQ_TASK_EXPORT int forq_task_arg_double(forq_task_ctx_t *ctx, const msgpack_object *args,
                                          uint32_t i, double *ret);
FORQ_TASK_EXPORT int forq_task_arg_bytes(forq_task_ctx_t *ctx, const msgpack_object *args,
                                         uint32_t i, const char **ret, size_t *ret_len);

/* Fail unless the job has between `min` and `max` positional arguments (TypeError). */
FORQ_TASK_EXPORT int forq_task_arg_range(forq_task_ctx_t *ctx, const msgpack_object *args,
                                         uint32_t min, uint32_t max);

/* ---- the dict service, from a running task ---- */

/* What forq_task_dict() returns. */
#define FORQ_TASK_DICT_OK        0 /* done */
#define FORQ_TASK_DICT_NOT_FOUND 1 /* get, del, pop: no such key; wait: it was deleted */
#define FORQ_TASK_DICT_CONFLICT  2 /* cas: the key's version differs (*ret_version: the current) */
#define FORQ_TASK_DICT_TIMEOUT   3 /* wait: nothing changed within timeout_ms */
/* refused (limits, bad name, key or value) or no answer: forq_task_dict_error() says why; the
 * job goes on */
#define FORQ_TASK_DICT_ERROR       -1
#define FORQ_TASK_DICT_NEXT_CHANGE UINT64_MAX

/* Use forqd's dict service (the same named dicts as forq_dict_*() in <forq/forq.h>) from a
 * task: send one operation and wait for forqd's answer. `op` is one of "get", "set", "del",
 * "has", "setdefault", "pop", "incr", "cas", "update", "len", "clear", "wait" (see
 * proto/PROTOCOL.md, dict). In: `key` (NULL for len, clear, update), `value` (msgpack, len bytes;
 * NULL when the op takes none), `delta` (incr), `version` (cas: expected, 0 = absent; wait: seen,
 * FORQ_TASK_DICT_NEXT_CHANGE = from now), `timeout_ms` (wait; 0 = none). Out, each may be NULL:
 * *ret_value (msgpack, malloc'ed: the caller frees) and *ret_len, *ret_version (also the count
 * for len and clear). A wait ties up this worker: give it a timeout. */
FORQ_TASK_EXPORT int forq_task_dict(forq_task_ctx_t *ctx, const char *op, const char *name,
                                    const char *key, const void *value, size_t len, int64_t delta,
                                    uint64_t version, int timeout_ms, void **ret_value,
                                    size_t *ret_len, uint64_t *ret_version);

/* Why the last forq_task_dict() call returned FORQ_TASK_DICT_ERROR. Borrowed: valid during the
 * task call. */
FORQ_TASK_EXPORT const char *forq_task_dict_error(const forq_task_ctx_t *ctx);

/* dict "keys" / "items" (with `items`) from a task: up to `limit` (0: 1000) keys after `after`
 * (NULL: from the start) as a msgpack array (of keys, or of [key, version, value]) in *ret_data
 * (malloc'ed: the caller frees); *ret_next the cursor of the next page (malloc'ed) or NULL after
 * the last. Returns FORQ_TASK_DICT_OK or FORQ_TASK_DICT_ERROR. */
FORQ_TASK_EXPORT int forq_task_dict_page(forq_task_ctx_t *ctx, const char *name, int items,
                                         const char *after, size_t limit, void **ret_data,
                                         size_t *ret_len, char **ret_next);

/* dict "incr": add delta to an integer (a missing key counts as 0); *ret_value the new value. */
FORQ_TASK_EXPORT int forq_task_dict_incr(forq_task_ctx_t *ctx, const char *name, const char *key,
                                         int64_t delta, int64_t *ret_value);

/* Typed get and set of one key, for the common scalar values (stored as msgpack: clients see
 * them as forq_dict_get() and `forq dict get` do).
 * The getters return FORQ_TASK_DICT_OK with *ret_value, FORQ_TASK_DICT_NOT_FOUND when the key
 * does not exist, or FORQ_TASK_DICT_ERROR when forqd refused or the value is of another type
 * (forq_task_dict_error() says which, e.g. "dict 'd' key 'k' holds a string, not an integer");
 * *ret_value is untouched unless OK. _get_double takes integers too; _get_str takes str or bin
 * and gives a malloc'ed copy with a NUL after its *ret_len bytes (may be NULL) that the caller
 * frees. The setters store the value (a str for _set_str, NUL-terminated text; bin for
 * _set_bytes) and return FORQ_TASK_DICT_OK with *ret_version (may be NULL) the key's new
 * version, or FORQ_TASK_DICT_ERROR (limits, bad name or key). Added within ABI version 1. */
FORQ_TASK_EXPORT int forq_task_dict_get_int(forq_task_ctx_t *ctx, const char *name, const char *key,
                                            int64_t *ret_value);
FORQ_TASK_EXPORT int forq_task_dict_set_int(forq_task_ctx_t *ctx, const char *name, const char *key,
                                            int64_t value, uint64_t *ret_version);
FORQ_TASK_EXPORT int forq_task_dict_get_double(forq_task_ctx_t *ctx, const char *name,
                                               const char *key, double *ret_value);
FORQ_TASK_EXPORT int forq_task_dict_set_double(forq_task_ctx_t *ctx, const char *name,
                                               const char *key, double value,
                                               uint64_t *ret_version);
FORQ_TASK_EXPORT int forq_task_dict_get_str(forq_task_ctx_t *ctx, const char *name, const char *key,
                                            char **ret_str, size_t *ret_len);
FORQ_TASK_EXPORT int forq_task_dict_set_str(forq_task_ctx_t *ctx, const char *name, const char *key,
                                            const char *value, uint64_t *ret_version);
FORQ_TASK_EXPORT int forq_task_dict_set_bytes(forq_task_ctx_t *ctx, const char *name,
                                              const char *key, const void *value, size_t len,
                                              uint64_t *ret_version);

/* ---- shared queues, locks and events, from a running task (added within ABI version 2) ---- */

/* The same queues, locks and events as forq_queue_*(), forq_lock_*() and forq_event_*() in
 * <forq/forq.h> (PROTOCOL.md, shared types), with the submitter's rights. Each sends one request
 * and waits for forqd's answer: a call that blocks waits up to timeout_ms (-1: for ever, 0: not
 * at all) in forqd, and this worker with it, so give it a timeout shorter than the job's. They
 * return FORQ_TASK_DICT_OK, one of the answers below, or FORQ_TASK_DICT_ERROR (refused: a bad
 * name or value, limits, rights; or no answer) with forq_task_dict_error() saying why. */
#define FORQ_TASK_DICT_EMPTY 4 /* queue get: no item came in time */
#define FORQ_TASK_DICT_FULL  5 /* queue put: the queue held maxsize items and no room came */

/* Put value (msgpack, len bytes) into queue `name` (at the front when `front` is not 0); with
 * maxsize > 0, wait up to timeout_ms for room (FORQ_TASK_DICT_FULL). *ret_count (may be NULL):
 * the items it holds after. */
FORQ_TASK_EXPORT int forq_task_queue_put(forq_task_ctx_t *ctx, const char *name, const void *value,
                                         size_t len, int front, size_t maxsize, int timeout_ms,
                                         size_t *ret_count);
/* Take the first item of queue `name`, waiting up to timeout_ms for one (FORQ_TASK_DICT_EMPTY):
 * *ret_value (malloc'ed msgpack: the caller frees) and *ret_len. */
FORQ_TASK_EXPORT int forq_task_queue_get(forq_task_ctx_t *ctx, const char *name, int timeout_ms,
                                         void **ret_value, size_t *ret_len);
/* The number of items of queue `name`. */
FORQ_TASK_EXPORT int forq_task_queue_len(forq_task_ctx_t *ctx, const char *name, size_t *ret_len);

/* Acquire lock `name` (a semaphore of `permits` holders when permits > 1; 0 counts as 1) for a
 * lease of lease_ms (0: 60000), waiting up to timeout_ms: FORQ_TASK_DICT_TIMEOUT when it was
 * not granted in time; *ret_token the grant's fencing token. */
FORQ_TASK_EXPORT int forq_task_lock_acquire(forq_task_ctx_t *ctx, const char *name,
                                            unsigned permits, int lease_ms, int timeout_ms,
                                            uint64_t *ret_token);
/* Release grant `token`, or renew its lease (lease_ms, 0: 60000): FORQ_TASK_DICT_CONFLICT when
 * the token does not hold the lock (its lease ended, or it was released). */
FORQ_TASK_EXPORT int forq_task_lock_release(forq_task_ctx_t *ctx, const char *name, uint64_t token);
FORQ_TASK_EXPORT int forq_task_lock_renew(forq_task_ctx_t *ctx, const char *name, uint64_t token,
                                          int lease_ms);
/* dict "set", fenced: done only while grant `token` holds `lock`, else FORQ_TASK_DICT_CONFLICT
 * and nothing changes. *ret_version (may be NULL): the key's new version. */
FORQ_TASK_EXPORT int forq_task_dict_set_fenced(forq_task_ctx_t *ctx, const char *name,
                                               const char *key, const void *value, size_t len,
                                               const char *lock, uint64_t token,
                                               uint64_t *ret_version);

/* Set or clear event `name`; wait up to timeout_ms for it to be set: FORQ_TASK_DICT_OK when it
 * is, FORQ_TASK_DICT_TIMEOUT when it was not in time (with timeout_ms 0: whether it is set,
 * as *ret_is_set, which may be NULL). */
FORQ_TASK_EXPORT int forq_task_event_set(forq_task_ctx_t *ctx, const char *name);
FORQ_TASK_EXPORT int forq_task_event_clear(forq_task_ctx_t *ctx, const char *name);
FORQ_TASK_EXPORT int forq_task_event_wait(forq_task_ctx_t *ctx, const char *name, int timeout_ms,
                                          int *ret_is_set);

#ifdef __cplusplus
}
#endif
#endif
