/* check_workers.c - end to end, the worker pool: large payloads through a worker link, jobs
 * sent ahead to busy workers (--prefetch, --max-jobs-per-worker), crashes that fail only their
 * own job, recycling, per-job resource limits, and a forkserver that dies and is replaced. A real
 * forqd on an ipc endpoint in a temporary directory (testutil_e2e.c). */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"

#include <check.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static forqd_t d;
static forq_client_t *c;

/* Start forqd with the test plugin, `workers` workers and extra args, and connect c. */
static void up(int workers, const char *const *extra)
{
    e2e_up(&d, &c, workers, extra);
}

static void down(void)
{
    e2e_down(&d, &c);
}

/* ---- the worker link ---- */

/* Args and results far longer than a worker link's socket buffer: the broker writes what the
 * link takes and the rest when it is writable, reads a long result into its own buffer and
 * hands it on; nothing is lost or reordered, and other jobs go on meanwhile. */
START_TEST(test_large_payloads_through_the_worker_link)
{
    size_t len = 3u << 20;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char *blob = malloc(len);
    forq_future_t *f[3], *small;
    const void *res;
    size_t rlen;

    for (size_t i = 0; i < len; i++)
        blob[i] = (char)(i * 31 + (i >> 16));
    up(2, NULL);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_bin(&pk, len);
    msgpack_pack_bin_body(&pk, blob, len);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(forq_submit(c, "echo", sb.data, sb.size, NULL, &f[i]), FORQ_OK);
    small = submit_json(c, "echo", "[1]", NULL);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(wait_state(f[i], 30000), FORQ_STATE_OK);
        ck_assert_int_eq(forq_future_result(f[i], &res, &rlen), FORQ_OK);
        ck_assert_uint_eq(rlen, sb.size); /* echo returns its args */
        ck_assert_mem_eq(res, sb.data, sb.size);
        forq_future_destroy(&f[i]);
    }
    ASSERT_RESULT(small, "[1]");
    forq_future_destroy(&small);
    msgpack_sbuffer_destroy(&sb);
    free(blob);
    down();
}
END_TEST

/* ---- jobs sent ahead to busy workers (--prefetch) ---- */

/* Run `n` jobs of a task so that forqd learns it is short. */
static void train(const char *task, const char *args, int n)
{
    for (int i = 0; i < n; i++) {
        forq_future_t *f = submit_json(c, task, args, NULL);
        ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_OK);
        forq_future_destroy(&f);
    }
}

/* Start a job that holds the one worker until the test sets dict "gates" key `id`. */
static forq_future_t *busy_with(const char *id)
{
    forq_submit_opts_t o = submit_opts();
    char args[96];
    o.id = id;
    snprintf(args, sizeof(args), "[\"gates\", \"%s\"]", id);
    forq_future_t *f = submit_json(c, "gate", args, &o);
    wait_running(c, id);
    return f;
}

static void open_gate(const char *id)
{
    ck_assert_int_eq(forq_dict_set(c, "gates", id, "\xc3", 1, test_ms(5000), NULL), FORQ_OK);
}

static void wait_ahead(long long n)
{
    for (int k = 0; k < test_ms(1000) && stat_of(c, "ahead") < n; k++)
        usleep(10000);
    ck_assert_int_eq(stat_of(c, "ahead"), n);
}

static void queue_echoes(forq_future_t **f, int n, const char *prefix)
{
    char id[32], args[32];
    for (int i = 0; i < n; i++) {
        forq_submit_opts_t o = submit_opts();
        snprintf(id, sizeof(id), "%s-%d", prefix, i);
        snprintf(args, sizeof(args), "[%d]", i);
        o.id = id;
        f[i] = submit_json(c, "echo", args, &o);
    }
}

static void expect_echoes(forq_future_t **f, int n, int skip)
{
    char want[32];
    for (int i = 0; i < n; i++) {
        if (i == skip)
            continue;
        snprintf(want, sizeof(want), "[%d]", i);
        ASSERT_RESULT(f[i], want);
    }
}

typedef struct {
    forq_client_t *c;
    const char *id;
    forq_err_t e;
    forq_cancel_t out;
} cancel_call_t;

static void *cancel_thread(void *arg)
{
    cancel_call_t *k = arg;
    k->e = forq_client_cancel(k->c, k->id, test_ms(10000), &k->out);
    return NULL;
}

START_TEST(test_jobs_sent_ahead)
{
    enum { N = 6 };
    forq_future_t *f[N], *busy, *many[2000];
    forq_job_info_t info = {0};
    forq_cancel_t out;
    char want[32];

    up(1, NULL);
    train("echo", "[0]", 3);
    /* behind a running job, short jobs go to the busy worker at once (it keeps them while its
     * task waits for a dict reply on the same link), and run in order */
    busy = busy_with("busy1");
    queue_echoes(f, N, "a");
    wait_ahead(N);
    ck_assert_int_eq(forq_client_status(c, "a-1", test_ms(5000), &info), FORQ_OK);
    /* not started: queued, as far as anyone knows */
    ck_assert_int_eq(info.state, FORQ_STATE_QUEUED);
    open_gate("busy1");
    ASSERT_RESULT(busy, "true");
    expect_echoes(f, N, -1);
    forq_future_destroy(&busy);
    for (int i = 0; i < N; i++)
        forq_future_destroy(&f[i]);
    /* cancel one of them: the answer waits for the worker, which skips it; the others run */
    busy = busy_with("busy1b");
    queue_echoes(f, N, "a2");
    wait_ahead(N);
    forq_client_t *other = forqd_client(&d);
    /* no answer yet: it comes once the worker has looked, and the worker is held */
    ck_assert_int_eq(forq_client_cancel(c, "a2-2", 0, &out), FORQ_ERR_TIMEOUT);
    open_gate("busy1b");
    ck_assert_int_eq(wait_state(f[2], 10000), FORQ_STATE_CANCELLED);
    ck_assert_str_eq(forq_future_detail(f[2]), "cancelled before it started");
    ck_assert_int_eq(forq_client_cancel(other, "a2-2", test_ms(5000), &out), FORQ_OK);
    ck_assert_int_eq(out, FORQ_CANCEL_FINISHED);
    forq_client_destroy(&other);
    ASSERT_RESULT(busy, "true");
    expect_echoes(f, N, 2);
    for (int i = 0; i < N; i++)
        forq_future_destroy(&f[i]);
    forq_future_destroy(&busy);
    /* cancel the first of them, the one the worker would start next: it skips it, says so,
     * and nobody is killed; the cancel is answered dequeued, the job cancelled */
    long long started = stat_of(c, "workers_started");
    busy = busy_with("busy1c");
    queue_echoes(f, N, "a3");
    wait_ahead(N);
    ck_assert_int_eq(forq_client_cancel(c, "a3-0", 0, &out), FORQ_ERR_TIMEOUT);
    cancel_call_t k = {.c = forqd_client(&d), .id = "a3-0"};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, cancel_thread, &k), 0);
    usleep((useconds_t)test_ms(200) * 1000);
    open_gate("busy1c");
    pthread_join(th, NULL);
    ck_assert_int_eq(k.e, FORQ_OK);
    ck_assert_int_eq(k.out, FORQ_CANCEL_DEQUEUED);
    forq_client_destroy(&k.c);
    ck_assert_int_eq(wait_state(f[0], 10000), FORQ_STATE_CANCELLED);
    ck_assert_str_eq(forq_future_detail(f[0]), "cancelled before it started");
    ASSERT_RESULT(busy, "true");
    expect_echoes(f, N, 0);
    ck_assert_int_eq(stat_of(c, "workers_started"), started); /* no worker was killed */
    for (int i = 0; i < N; i++)
        forq_future_destroy(&f[i]);
    forq_future_destroy(&busy);
    /* the worker dies under a running job: that job crashed; those sent ahead never started,
     * so they run on the replacement, not counted as retries */
    busy = busy_with("busy2");
    queue_echoes(f, N, "b");
    wait_ahead(N);
    forq_client_status(c, "busy2", test_ms(5000), &info);
    ck_assert_int_gt(info.pid, 0);
    kill(info.pid, SIGKILL);
    ck_assert_int_eq(wait_state(busy, 10000), FORQ_STATE_CRASHED);
    expect_echoes(f, N, -1);
    for (int i = 0; i < N; i++) {
        ck_assert_uint_eq(forq_future_attempts(f[i]), 1);
        forq_future_destroy(&f[i]);
    }
    forq_future_destroy(&busy);
    /* a run timeout kills the worker: the same */
    forq_submit_opts_t o = submit_opts();
    o.timeout = test_ms(300) / 1000.0;
    o.id = "busy3";
    busy = submit_json(c, "gate", "[\"gates\", \"never\"]", &o);
    queue_echoes(f, N, "c");
    ck_assert_int_eq(wait_state(busy, test_ms(10000)), FORQ_STATE_TIMEOUT);
    expect_echoes(f, N, -1);
    for (int i = 0; i < N; i++)
        forq_future_destroy(&f[i]);
    forq_future_destroy(&busy);
    /* jobs sent ahead while the running task waits for many dict replies on the same link */
    busy = submit_json(c, "dict_count", "[\"ahead\", \"n\", 3000]", NULL);
    for (int i = 0; i < test_ms(500) && stat_of(c, "running") == 0; i++)
        usleep(1000);
    queue_echoes(f, N, "d");
    ASSERT_RESULT(busy, "3000");
    expect_echoes(f, N, -1);
    for (int i = 0; i < N; i++)
        forq_future_destroy(&f[i]);
    forq_future_destroy(&busy);
    /* and a stream of them: every one answered, in full */
    int n = getenv("FORQ_TEST_CORE_ONLY") ? 200 : 2000;
    for (int i = 0; i < n; i++) {
        snprintf(want, sizeof(want), "[%d]", i);
        many[i] = submit_json(c, "echo", want, NULL);
    }
    for (int i = 0; i < n; i++) {
        snprintf(want, sizeof(want), "[%d]", i);
        ASSERT_RESULT(many[i], want);
        forq_future_destroy(&many[i]);
    }
    ck_assert_int_gt(stat_of(c, "sent_ahead"), N);
    down();
}
END_TEST

START_TEST(test_ahead_within_max_jobs_per_worker)
{
    /* a worker recycled every 3 jobs is never sent more than it will run */
    const char *extra[] = {"--max-jobs-per-worker", "3", NULL};
    forq_future_t *f[300];
    char args[32];

    up(2, extra);
    train("echo", "[0]", 3);
    for (int i = 0; i < 300; i++) {
        snprintf(args, sizeof(args), "[%d]", i);
        f[i] = submit_json(c, "echo", args, NULL);
    }
    expect_echoes(f, 300, -1);
    for (int i = 0; i < 300; i++)
        forq_future_destroy(&f[i]);
    ck_assert_int_eq(stat_of(c, "crashed"), 0);
    ck_assert_int_eq(stat_of(c, "retried"), 0);
    ck_assert_int_ge(stat_of(c, "workers_started"), 300 / 3);
    down();
}
END_TEST

START_TEST(test_prefetch_off)
{
    /* --prefetch 0: a busy worker is sent nothing more */
    const char *extra[] = {"--prefetch", "0", NULL};
    forq_future_t *f[3], *busy;

    up(1, extra);
    train("echo", "[0]", 3);
    busy = busy_with("busy");
    queue_echoes(f, 3, "p");
    for (int i = 0; i < test_ms(500) && stat_of(c, "queued") < 3; i++)
        usleep(1000);
    ck_assert_int_eq(stat_of(c, "queued"), 3);
    ck_assert_int_eq(stat_of(c, "ahead"), 0);
    open_gate("busy");
    ASSERT_RESULT(busy, "true");
    expect_echoes(f, 3, -1);
    for (int i = 0; i < 3; i++)
        forq_future_destroy(&f[i]);
    forq_future_destroy(&busy);
    ck_assert_int_eq(stat_of(c, "sent_ahead"), 0);
    down();
}
END_TEST

/* ---- crashes ---- */

START_TEST(test_crashes_fail_only_their_job)
{
    up(2, NULL);
    forq_future_t *slow = submit_json(c, "sleep", "[0.5]", NULL);
    forq_future_t *segv = submit_json(c, "segv", "[]", NULL);
    forq_future_t *abrt = submit_json(c, "abort", "[]", NULL);
    forq_future_t *ex = submit_json(c, "exit", "[3]", NULL);
    forq_future_t *after[20];
    for (int i = 0; i < 20; i++) {
        char a[16];
        snprintf(a, sizeof(a), "%d", i);
        after[i] = submit_json(c, "echo", a, NULL);
    }
    ck_assert_int_eq(wait_state(segv, 10000), FORQ_STATE_CRASHED);
    ck_assert_int_eq(forq_future_signal(segv), SIGSEGV);
    ck_assert_int_eq(forq_future_exit_code(segv), -1);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(segv), "signal 11"));
    ck_assert_int_eq(forq_future_result(segv, NULL, NULL), FORQ_ERR_CRASHED);
    ck_assert_int_eq(wait_state(abrt, 10000), FORQ_STATE_CRASHED);
    ck_assert_int_eq(forq_future_signal(abrt), SIGABRT);
    ck_assert_int_eq(wait_state(ex, 10000), FORQ_STATE_CRASHED);
    ck_assert_int_eq(forq_future_signal(ex), 0);
    ck_assert_int_eq(forq_future_exit_code(ex), 3);
    ck_assert_int_eq(wait_state(slow, 10000), FORQ_STATE_OK);
    for (int i = 0; i < 20; i++) {
        char a[16];
        snprintf(a, sizeof(a), "%d", i);
        ASSERT_RESULT(after[i], a);
        forq_future_destroy(&after[i]);
    }
    ck_assert_int_eq(stat_of(c, "worker_crashes"), 3);
    ck_assert_int_eq(stat_of(c, "crashed"), 3);
    ck_assert_int_gt(stat_of(c, "last_replace_us"), 0);
    ck_assert(forqd_log_has(&d, "crashed"));
    forq_future_destroy(&slow);
    forq_future_destroy(&segv);
    forq_future_destroy(&abrt);
    forq_future_destroy(&ex);
    down();
}
END_TEST

/* ---- recycling, limits, the forkserver ---- */

START_TEST(test_recycling)
{
    const char *extra[] = {"--max-jobs-per-worker", "2", NULL};
    int pids[8];
    up(1, extra);
    for (int i = 0; i < 8; i++) {
        forq_future_t *f = submit_json(c, "getpid", "[]", NULL);
        char *s = result_json(f, 10000);
        ck_assert_ptr_nonnull(s);
        pids[i] = atoi(s);
        free(s);
        forq_future_destroy(&f);
    }
    for (int i = 0; i < 8; i += 2) {
        ck_assert_int_eq(pids[i], pids[i + 1]);
        if (i)
            ck_assert_int_ne(pids[i], pids[i - 1]);
    }
    ck_assert_int_ge(stat_of(c, "workers_started"), 4);
    ck_assert_int_eq(stat_of(c, "worker_crashes"), 0);
    down();
}
END_TEST

/* Wall-clock seconds this process takes to use one second of CPU now: on a loaded machine a
 * worker's CPU second takes as long. */
static double wall_per_cpu_second(void)
{
    struct timespec w0, w1, used;
    volatile unsigned long spin = 0;

    clock_gettime(CLOCK_MONOTONIC, &w0);
    do {
        for (int i = 0; i < 100000; i++)
            spin += (unsigned long)i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
    } while (used.tv_sec < 1);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    (void)spin;
    return (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
}

/* --cancel-grace: a cancelled running task is told (forq_task_cancelled) and may stop by
 * itself, its worker spared; one that does not is killed when the grace is over. */
START_TEST(test_cooperative_cancel)
{
    const char *extra[] = {"--cancel-grace", "400", NULL};
    forq_submit_opts_t o = submit_opts();
    forq_job_info_t info;
    forq_cancel_t out;

    up(1, extra);
    o.id = "coop";
    forq_future_t *f = submit_json(c, "coop_spin", "[]", &o);
    wait_running(c, "coop");
    ck_assert_int_eq(forq_client_status(c, "coop", 5000, &info), FORQ_OK);
    int pid = info.pid;
    ck_assert_int_eq(forq_client_cancel(c, "coop", 5000, &out), FORQ_OK);
    ck_assert_int_eq(out, FORQ_CANCEL_KILLING);
    ck_assert_int_eq(wait_state(f, 5000), FORQ_STATE_CANCELLED);
    ck_assert_msg(strstr(forq_future_detail(f), "the task stopped when told"), "%s",
                  forq_future_detail(f));
    forq_future_destroy(&f);
    /* the same worker runs the next job: nothing was killed */
    f = submit_json(c, "getpid", "[]", NULL);
    char want[32];
    snprintf(want, sizeof(want), "%d", pid);
    ASSERT_RESULT(f, want);
    forq_future_destroy(&f);
    ck_assert_int_eq(stat_of(c, "workers_started"), 1);
    /* a task that does not look is killed once the grace is over */
    o.id = "deaf";
    f = submit_json(c, "spin", "[]", &o);
    wait_running(c, "deaf");
    ck_assert_int_eq(forq_client_cancel(c, "deaf", 5000, &out), FORQ_OK);
    ck_assert_int_eq(wait_state(f, 5000), FORQ_STATE_CANCELLED);
    forq_future_destroy(&f);
    for (int i = 0; i < test_ms(200) && stat_of(c, "workers_started") < 2; i++)
        usleep(10000); /* its replacement */
    ck_assert_int_eq(stat_of(c, "workers_started"), 2);
    down();
}
END_TEST

START_TEST(test_resource_limits)
{
    double cal = wall_per_cpu_second();
    up(1, NULL);
    forq_submit_opts_t o = submit_opts();
    o.max_cpu_seconds = 1;
    /* one second of the job's own CPU time, not up to two (RLIMIT_CPU alone counts the whole
     * process, in whole seconds) */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    forq_future_t *f = submit_json(c, "spin", "[]", &o);
    ck_assert_int_eq(wait_state(f, 20000), FORQ_STATE_CRASHED);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_int_eq(forq_future_signal(f), SIGXCPU);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(f), "CPU limit"));
    ck_assert_msg(took >= 0.95, "the job was stopped after %.2f s, before its 1 s", took);
    ck_assert_msg(took < 1.6 * cal * test_ms(1000) / 1000.0,
                  "the job ran %.2f s for a 1 s CPU limit (1 s of CPU takes %.2f s here now)", took,
                  cal);
    forq_future_destroy(&f);
#ifdef UNDER_ASAN
    /* AddressSanitizer reserves terabytes of shadow address space: no RLIMIT_AS fits it */
    down();
    return;
#endif
    o = submit_opts();
    o.max_memory = 256u << 20;
    f = submit_json(c, "alloc", "[1073741824]", &o);
    ck_assert_int_eq(wait_state(f, 20000), FORQ_STATE_ERROR);
    ck_assert_str_eq(forq_future_error_type(f), "MemoryError");
    forq_future_destroy(&f);
    /* the limit was for that job only */
    f = submit_json(c, "alloc", "[536870912]", NULL);
    ASSERT_RESULT(f, "true");
    forq_future_destroy(&f);
    down();
}
END_TEST

START_TEST(test_forkserver_restart)
{
    up(2, NULL);
    forq_future_t *f = submit_json(c, "echo", "1", NULL);
    ASSERT_RESULT(f, "1");
    forq_future_destroy(&f);
    long long fs = stat_of(c, "forkserver_pid");
    ck_assert_int_gt(fs, 0);
    ck_assert_int_eq(kill((pid_t)fs, SIGKILL), 0);
    for (int i = 0; i < test_ms(500) && stat_of(c, "forkserver_pid") == fs; i++)
        usleep(10000);
    ck_assert_int_ne(stat_of(c, "forkserver_pid"), fs);
    f = submit_json(c, "count_primes", "[1,1000]", NULL);
    ASSERT_RESULT(f, "168");
    forq_future_destroy(&f);
    ck_assert(forqd_log_has(&d, "starting a new one"));
    down();
}
END_TEST

static Suite *workers_suite(void)
{
    Suite *s = suite_create("workers");
    TCase *core = tcase_create("core");
    TCase *full;

    tcase_set_timeout(core, test_ms(60));
    tcase_add_test(core, test_large_payloads_through_the_worker_link);
    tcase_add_test(core, test_crashes_fail_only_their_job);
    suite_add_tcase(s, core);
    /* under valgrind (FORQ_TEST_CORE_ONLY) the core cases only */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(60));
    /* not under valgrind, where a worker is too slow for any task to count as short */
    tcase_add_test(full, test_jobs_sent_ahead);
    tcase_add_test(full, test_ahead_within_max_jobs_per_worker);
    tcase_add_test(full, test_prefetch_off);
    tcase_add_test(full, test_recycling);
    tcase_add_test(full, test_resource_limits);
    tcase_add_test(full, test_cooperative_cancel);
    tcase_add_test(full, test_forkserver_restart);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(workers_suite());
}
