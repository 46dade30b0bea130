/* test_tasks.c - a task plugin for the test suites: tasks that misbehave on purpose. */
#include <forq/task.h>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* segv() -> dies of SIGSEGV */
static int t_segv(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    (void)ctx, (void)args, (void)out;
    raise(SIGSEGV);
    return 0;
}

/* abort() -> dies of SIGABRT */
static int t_abort(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    (void)ctx, (void)args, (void)out;
    abort();
}

/* exit(code) -> the worker exits with code */
static int t_exit(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    int64_t code;
    (void)out;
    if (forq_task_arg_int(ctx, args, 0, &code) < 0)
        return -1;
    _exit((int)code);
}

/* getpid() -> the worker's pid */
static int t_getpid(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    (void)ctx, (void)args;
    return msgpack_pack_int(out, (int)getpid());
}

/* spin() -> burns CPU forever */
static int t_spin(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    volatile unsigned long x = 1;
    (void)ctx, (void)args;
    while (x)
        x++;
    return msgpack_pack_nil(out);
}

/* coop_spin() -> runs until forqd tells it of a cancel (forq_task_cancelled), then fails
 * with Cancelled */
static int t_coop_spin(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    struct timespec tick = {0, 5 * 1000000};
    (void)args, (void)out;
    while (!forq_task_cancelled(ctx))
        nanosleep(&tick, NULL);
    return forq_task_error(ctx, "Cancelled", "stopped at the cancel");
}

/* alloc(bytes) -> true if malloc and touching them worked, else MemoryError */
static int t_alloc(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    int64_t n;
    char *p;
    if (forq_task_arg_int(ctx, args, 0, &n) < 0)
        return -1;
    p = malloc((size_t)n);
    if (!p)
        return forq_task_error(ctx, "MemoryError", "cannot allocate %lld bytes", (long long)n);
    memset(p, 1, (size_t)n);
    free(p);
    return msgpack_pack_true(out);
}

/* crash_once(path) -> crashes if `path` does not exist yet (creating it), else returns "ok" */
static int t_crash_once(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    const char *p;
    size_t n;
    char path[512];
    if (forq_task_arg_bytes(ctx, args, 0, &p, &n) < 0 || n >= sizeof(path))
        return -1;
    memcpy(path, p, n);
    path[n] = '\0';
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        raise(SIGSEGV);
    }
    msgpack_pack_str(out, 2);
    return msgpack_pack_str_body(out, "ok", 2);
}

/* blob(n) -> n bytes */
static int t_blob(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    int64_t n;
    if (forq_task_arg_int(ctx, args, 0, &n) < 0)
        return -1;
    char *p = calloc(1, (size_t)n + 1);
    msgpack_pack_bin(out, (size_t)n);
    msgpack_pack_bin_body(out, p, (size_t)n);
    free(p);
    return 0;
}

/* two_values() -> packs two values: a buggy task the worker must catch */
static int t_two_values(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    (void)ctx, (void)args;
    msgpack_pack_int(out, 1);
    return msgpack_pack_int(out, 2);
}

/* silent_fail() -> returns -1 without an error */
static int t_silent_fail(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    (void)ctx, (void)args, (void)out;
    return -1;
}

/* job_id() -> the job's id as the task sees it */
static int t_job_id(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    const char *id = forq_task_job_id(ctx);
    (void)args;
    msgpack_pack_str(out, strlen(id));
    return msgpack_pack_str_body(out, id, strlen(id));
}

/* dict_typed(name, op, key[, value]) -> [rc, what]: one typed dict helper of <forq/task.h>
 * (op: get_int, set_int, get_double, set_double, get_str, set_str, set_bytes), its return code
 * and what it gave: the value got, the version set, or forq_task_dict_error()'s text */
static int t_dict_typed(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    const char *name, *op, *key, *sv = NULL;
    size_t nl, ol, kl, svl = 0;
    char nb[65], ob[32], kb[256], *str = NULL;
    int64_t iv = 0;
    double dv = 0;
    uint64_t ver = 0;
    size_t len = 0;
    int rc;

    if (forq_task_arg_bytes(ctx, args, 0, &name, &nl) < 0 ||
        forq_task_arg_bytes(ctx, args, 1, &op, &ol) < 0 ||
        forq_task_arg_bytes(ctx, args, 2, &key, &kl) < 0)
        return -1;
    snprintf(nb, sizeof(nb), "%.*s", (int)nl, name);
    snprintf(ob, sizeof(ob), "%.*s", (int)ol, op);
    snprintf(kb, sizeof(kb), "%.*s", (int)kl, key);
    if ((strcmp(ob, "set_int") == 0 && forq_task_arg_int(ctx, args, 3, &iv) < 0) ||
        (strcmp(ob, "set_double") == 0 && forq_task_arg_double(ctx, args, 3, &dv) < 0) ||
        (strncmp(ob, "set_", 4) == 0 && strcmp(ob, "set_int") && strcmp(ob, "set_double") &&
         forq_task_arg_bytes(ctx, args, 3, &sv, &svl) < 0))
        return -1;
    if (strcmp(ob, "get_int") == 0)
        rc = forq_task_dict_get_int(ctx, nb, kb, &iv);
    else if (strcmp(ob, "get_double") == 0)
        rc = forq_task_dict_get_double(ctx, nb, kb, &dv);
    else if (strcmp(ob, "get_str") == 0)
        rc = forq_task_dict_get_str(ctx, nb, kb, &str, &len);
    else if (strcmp(ob, "set_int") == 0)
        rc = forq_task_dict_set_int(ctx, nb, kb, iv, &ver);
    else if (strcmp(ob, "set_double") == 0)
        rc = forq_task_dict_set_double(ctx, nb, kb, dv, &ver);
    else if (strcmp(ob, "set_str") == 0) {
        char *z = strndup(sv, svl);
        rc = forq_task_dict_set_str(ctx, nb, kb, z, &ver);
        free(z);
    } else if (strcmp(ob, "set_bytes") == 0)
        rc = forq_task_dict_set_bytes(ctx, nb, kb, sv, svl, &ver);
    else
        return forq_task_error(ctx, "ValueError", "dict_typed: no op '%s'", ob);
    msgpack_pack_array(out, 2);
    msgpack_pack_int(out, rc);
    if (rc == FORQ_TASK_DICT_ERROR) {
        const char *e = forq_task_dict_error(ctx);
        msgpack_pack_str(out, strlen(e));
        return msgpack_pack_str_body(out, e, strlen(e));
    }
    if (rc != FORQ_TASK_DICT_OK)
        return msgpack_pack_nil(out);
    if (strncmp(ob, "set_", 4) == 0)
        return msgpack_pack_uint64(out, ver);
    if (strcmp(ob, "get_int") == 0)
        return msgpack_pack_int64(out, iv);
    if (strcmp(ob, "get_double") == 0)
        return msgpack_pack_double(out, dv);
    /* get_str: the text, and whether the copy is NUL-terminated after its length */
    msgpack_pack_str(out, len);
    msgpack_pack_str_body(out, str, len);
    rc = str[len] == '\0' ? 0 : forq_task_error(ctx, "DictError", "get_str: no NUL after it");
    free(str);
    return rc;
}

/* now() -> CLOCK_MONOTONIC in nanoseconds, to order jobs by when they ran */
static int t_now(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    struct timespec ts;
    (void)ctx, (void)args;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return msgpack_pack_int64(out, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

/* progress_steps(n) -> n, reporting progress after each of n steps of 60 ms */
static int t_progress_steps(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    int64_t n;
    struct timespec step = {0, 60 * 1000000};
    if (forq_task_arg_int(ctx, args, 0, &n) < 0)
        return -1;
    for (int64_t i = 1; i <= n; i++) {
        char text[32];
        nanosleep(&step, NULL);
        snprintf(text, sizeof(text), "step %lld", (long long)i);
        forq_task_progress(ctx, (uint64_t)i, (uint64_t)n, text);
    }
    return msgpack_pack_int64(out, n);
}

/* crash_on(n, bad) -> n, or SIGSEGV when n == bad */
static int t_crash_on(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    int64_t n, bad;
    if (forq_task_arg_int(ctx, args, 0, &n) < 0 || forq_task_arg_int(ctx, args, 1, &bad) < 0)
        return -1;
    if (n == bad)
        raise(SIGSEGV);
    return msgpack_pack_int64(out, n);
}

/* dict_count(name, key, n) -> the counter after n increments through the task's dict access;
 * also checks get, set, cas and del from a task, failing with DictError if one misbehaves */
static int t_dict_count(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    const char *name, *key;
    size_t nl, kl;
    int64_t n, now = 0;
    char nb[65], kb[256];
    uint64_t ver;
    void *v;
    size_t len;

    if (forq_task_arg_bytes(ctx, args, 0, &name, &nl) < 0 ||
        forq_task_arg_bytes(ctx, args, 1, &key, &kl) < 0 || forq_task_arg_int(ctx, args, 2, &n) < 0)
        return -1;
    snprintf(nb, sizeof(nb), "%.*s", (int)nl, name);
    snprintf(kb, sizeof(kb), "%.*s", (int)kl, key);
    for (int64_t i = 0; i < n; i++)
        if (forq_task_dict_incr(ctx, nb, kb, 1, &now) != FORQ_TASK_DICT_OK)
            return forq_task_error(ctx, "DictError", "incr: %s", forq_task_dict_error(ctx));
    /* a private key: set, get, cas (a conflict, then a success), del */
    char mine[300];
    snprintf(mine, sizeof(mine), "%s-%s", kb, forq_task_job_id(ctx));
    if (forq_task_dict(ctx, "set", nb, mine, "\x07", 1, 0, 0, 0, NULL, NULL, &ver) != 0 ||
        forq_task_dict(ctx, "get", nb, mine, NULL, 0, 0, 0, 0, &v, &len, NULL) != 0 || len != 1 ||
        ((char *)v)[0] != 7)
        return forq_task_error(ctx, "DictError", "set/get: %s", forq_task_dict_error(ctx));
    free(v);
    if (forq_task_dict(ctx, "cas", nb, mine, "\x08", 1, 0, ver + 1000, 0, NULL, NULL, NULL) !=
            FORQ_TASK_DICT_CONFLICT ||
        forq_task_dict(ctx, "cas", nb, mine, "\x08", 1, 0, ver, 0, NULL, NULL, NULL) != 0 ||
        forq_task_dict(ctx, "del", nb, mine, NULL, 0, 0, 0, 0, NULL, NULL, NULL) != 0 ||
        forq_task_dict(ctx, "del", nb, mine, NULL, 0, 0, 0, 0, NULL, NULL, NULL) !=
            FORQ_TASK_DICT_NOT_FOUND)
        return forq_task_error(ctx, "DictError", "cas/del: %s", forq_task_dict_error(ctx));
    if (forq_task_dict(ctx, "set", "bad name", "k", "\x01", 1, 0, 0, 0, NULL, NULL, NULL) !=
        FORQ_TASK_DICT_ERROR)
        return forq_task_error(ctx, "DictError", "a bad name was accepted");
    return msgpack_pack_int64(out, now);
}

/* dict_count_keys(name) -> the number of keys of a dict, paging through it 2 at a time */
static int t_dict_count_keys(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    const char *name;
    size_t nl, total = 0;
    char nb[65], *after = NULL;
    if (forq_task_arg_bytes(ctx, args, 0, &name, &nl) < 0)
        return -1;
    snprintf(nb, sizeof(nb), "%.*s", (int)nl, name);
    do {
        void *page;
        size_t len, off = 0;
        char *next = NULL;
        msgpack_zone zone;
        msgpack_object o;
        if (forq_task_dict_page(ctx, nb, 0, after, 2, &page, &len, &next) != FORQ_TASK_DICT_OK)
            return forq_task_error(ctx, "DictError", "page: %s", forq_task_dict_error(ctx));
        msgpack_zone_init(&zone, 256);
        if (msgpack_unpack(page, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
            o.type == MSGPACK_OBJECT_ARRAY)
            total += o.via.array.size;
        msgpack_zone_destroy(&zone);
        free(page);
        free(after);
        after = next;
    } while (after);
    return msgpack_pack_uint64(out, total);
}

/* gate(name, key) -> true once the key exists (waits up to 60 s for the test to open it) */
static int t_gate(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    const char *name, *key;
    size_t nl, kl;
    char nb[65], kb[256];

    if (forq_task_arg_bytes(ctx, args, 0, &name, &nl) < 0 ||
        forq_task_arg_bytes(ctx, args, 1, &key, &kl) < 0)
        return -1;
    snprintf(nb, sizeof(nb), "%.*s", (int)nl, name);
    snprintf(kb, sizeof(kb), "%.*s", (int)kl, key);
    if (forq_task_dict(ctx, "wait", nb, kb, NULL, 0, 0, 0, 60000, NULL, NULL, NULL) !=
        FORQ_TASK_DICT_OK)
        return forq_task_error(ctx, "GateError", "the gate never opened: %s",
                               forq_task_dict_error(ctx));
    return msgpack_pack_true(out);
}

/* The name in argument i, NUL-terminated into buf (65 bytes). */
static int arg_name(forq_task_ctx_t *ctx, const msgpack_object *args, uint32_t i, char *buf)
{
    const char *p;
    size_t n;
    if (forq_task_arg_bytes(ctx, args, i, &p, &n) < 0)
        return -1;
    snprintf(buf, 65, "%.*s", (int)n, p);
    return 0;
}

/* queue_relay(src, dst, n) -> n: takes n items from queue src (each waiting for ever) and puts
 * them into dst, in order; a put that finds dst at maxsize 1000 waits for room. */
static int t_queue_relay(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    char src[65], dst[65];
    int64_t n;
    size_t left;

    if (arg_name(ctx, args, 0, src) < 0 || arg_name(ctx, args, 1, dst) < 0 ||
        forq_task_arg_int(ctx, args, 2, &n) < 0)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        void *v;
        size_t len;
        if (forq_task_queue_get(ctx, src, -1, &v, &len) != FORQ_TASK_DICT_OK)
            return forq_task_error(ctx, "QueueError", "get: %s", forq_task_dict_error(ctx));
        int rc = forq_task_queue_put(ctx, dst, v, len, 0, 1000, 10000, &left);
        free(v);
        if (rc != FORQ_TASK_DICT_OK)
            return forq_task_error(ctx, "QueueError", "put: %d %s", rc, forq_task_dict_error(ctx));
    }
    if (forq_task_queue_get(ctx, src, 0, NULL, NULL) != FORQ_TASK_DICT_EMPTY ||
        forq_task_queue_len(ctx, dst, &left) != FORQ_TASK_DICT_OK)
        return forq_task_error(ctx, "QueueError", "src not empty, or len: %s",
                               forq_task_dict_error(ctx));
    return msgpack_pack_int64(out, n);
}

/* locked_incr(lock, dict, key, n) -> the counter: n times, under the lock, a get then a fenced
 * set of one more (not atomic without the lock); checks that a released token fences nothing. */
static int t_locked_incr(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    char lock[65], dict[65], key[65];
    int64_t n, v = 0;
    uint64_t token = 0;

    if (arg_name(ctx, args, 0, lock) < 0 || arg_name(ctx, args, 1, dict) < 0 ||
        arg_name(ctx, args, 2, key) < 0 || forq_task_arg_int(ctx, args, 3, &n) < 0)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        v = 0;
        if (forq_task_lock_acquire(ctx, lock, 1, 10000, -1, &token) != FORQ_TASK_DICT_OK)
            return forq_task_error(ctx, "LockError", "acquire: %s", forq_task_dict_error(ctx));
        int rc = forq_task_dict_get_int(ctx, dict, key, &v);
        if (rc != FORQ_TASK_DICT_OK && rc != FORQ_TASK_DICT_NOT_FOUND)
            return forq_task_error(ctx, "LockError", "get: %s", forq_task_dict_error(ctx));
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_int64(&pk, ++v);
        rc = forq_task_dict_set_fenced(ctx, dict, key, sb.data, sb.size, lock, token, NULL);
        msgpack_sbuffer_destroy(&sb);
        if (rc != FORQ_TASK_DICT_OK || forq_task_lock_renew(ctx, lock, token, 5000) != 0 ||
            forq_task_lock_release(ctx, lock, token) != FORQ_TASK_DICT_OK)
            return forq_task_error(ctx, "LockError", "set/renew/release: %s",
                                   forq_task_dict_error(ctx));
    }
    if (forq_task_lock_release(ctx, lock, token) != FORQ_TASK_DICT_CONFLICT ||
        forq_task_dict_set_fenced(ctx, dict, key, "\x00", 1, lock, token, NULL) !=
            FORQ_TASK_DICT_CONFLICT)
        return forq_task_error(ctx, "LockError", "a released token still holds");
    return msgpack_pack_int64(out, v);
}

/* event_wait(name, timeout_ms) -> whether the event was set in time (sets "<name>-seen" then). */
static int t_event_wait(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    char name[65], seen[80];
    int64_t ms;
    int set = 0;

    if (arg_name(ctx, args, 0, name) < 0 || forq_task_arg_int(ctx, args, 1, &ms) < 0)
        return -1;
    int rc = forq_task_event_wait(ctx, name, (int)ms, &set);
    if (rc == FORQ_TASK_DICT_ERROR)
        return forq_task_error(ctx, "EventError", "%s", forq_task_dict_error(ctx));
    snprintf(seen, sizeof(seen), "%.40s-seen", name);
    if (rc == FORQ_TASK_DICT_OK &&
        (forq_task_event_set(ctx, seen) != 0 || forq_task_event_clear(ctx, name) != 0))
        return forq_task_error(ctx, "EventError", "%s", forq_task_dict_error(ctx));
    return rc == FORQ_TASK_DICT_OK ? msgpack_pack_true(out) : msgpack_pack_false(out);
}

static const forq_task_def_t tasks[] = {
    {"gate", t_gate, "gate(name, key) -> true once the key exists"},
    {"queue_relay", t_queue_relay, "queue_relay(src, dst, n) -> n items moved"},
    {"locked_incr", t_locked_incr, "locked_incr(lock, dict, key, n) -> counter"},
    {"event_wait", t_event_wait, "event_wait(name, timeout_ms) -> set in time"},
    {"dict_count", t_dict_count, "dict_count(name, key, n) -> counter"},
    {"dict_count_keys", t_dict_count_keys, "dict_count_keys(name) -> keys, paged"},
    {"progress_steps", t_progress_steps, "progress_steps(n) -> n"},
    {"crash_on", t_crash_on, "crash_on(n, bad) -> n"},
    {"now", t_now, "now() -> monotonic ns"},
    {"segv", t_segv, "segv() -> SIGSEGV"},
    {"abort", t_abort, "abort() -> SIGABRT"},
    {"exit", t_exit, "exit(code)"},
    {"getpid", t_getpid, "getpid() -> pid"},
    {"spin", t_spin, "spin() -> never returns"},
    {"coop_spin", t_coop_spin, "coop_spin() -> runs until cancelled"},
    {"alloc", t_alloc, "alloc(bytes) -> true"},
    {"crash_once", t_crash_once, "crash_once(path) -> \"ok\" after one crash"},
    {"blob", t_blob, "blob(n) -> n zero bytes"},
    {"two_values", t_two_values, "packs two values"},
    {"silent_fail", t_silent_fail, "fails without an error"},
    {"job_id", t_job_id, "job_id() -> the job's id"},
    {"dict_typed", t_dict_typed, "dict_typed(name, op, key[, value]) -> [rc, what]"},
    {NULL, NULL, NULL},
};

FORQ_PLUGIN_DEFINE("test", tasks, NULL, NULL);
