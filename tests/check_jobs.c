/* check_jobs.c - end to end, the life of a job: every built-in task, bad arguments and
 * rejections, cancel, run timeouts and queue deadlines, retries, priorities and fairness between
 * clients, queue limits and duplicate ids, many clients at once, and a client that stops reading
 * (forqd's backlog). A real forqd on an ipc endpoint in a temporary directory (testutil_e2e.c). */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"
#include "wire.h"

#include <check.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

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

/* ---- every built-in task ---- */

START_TEST(test_builtin_tasks)
{
    const char *extra[] = {"--allow-exec", "cat", NULL};
    up(2, extra);
    forq_future_t *f[8];
    f[0] = submit_json(c, "echo", "[1,\"two\",{\"3\":[true,null]}]", NULL);
    f[1] = submit_json(c, "count_primes", "[1,300000]", NULL);
    f[2] = submit_json(c, "is_prime", "[10000019]", NULL);
    f[3] = submit_json(c, "is_prime", "[10000081]", NULL);
    f[4] = submit_json(c, "sum_squares", "[1000]", NULL);
    f[5] = submit_json(c, "sha256", "[\"abc\"]", NULL);
    f[6] = submit_json(c, "sleep", "[0.01]", NULL);
    f[7] = submit_json(c, "exec", "[{\"argv\":[\"cat\"],\"stdin\":\"x\"}]", NULL);
    ASSERT_RESULT(f[0], "[1,\"two\",{\"3\":[true,null]}]");
    ASSERT_RESULT(f[1], "25997");
    ASSERT_RESULT(f[2], "true");
    ASSERT_RESULT(f[3], "false");
    ASSERT_RESULT(f[4], "332833500");
    ASSERT_RESULT(f[5], "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"");
    ASSERT_RESULT(f[6], "null");
    ASSERT_RESULT(f[7], "{\"exit_code\":0,\"signal\":null,\"stdout\":\"x\",\"stderr\":\"\"}");
    for (int i = 0; i < 8; i++) {
        ck_assert_uint_eq(forq_future_attempts(f[i]), 1);
        forq_future_destroy(&f[i]);
    }
    forq_future_destroy(&f[0]); /* twice is a no-op */
    down();
}
END_TEST

/* msgpack as compact JSON text (libforq's own conversion); the caller frees. */
static char *msgpack_to_json_text(const void *data, size_t len)
{
    char *s = NULL;
    ck_assert_int_eq(forq_msgpack_to_json(data, len, &s), FORQ_OK);
    return s;
}

/* The operator's view: status of one job (owner, times, progress), the list of live jobs
 * (filters, limit) and purge. */
START_TEST(test_status_jobs_and_purge)
{
    forq_job_info_t info;
    forq_submit_opts_t o = submit_opts();
    void *data = NULL;
    size_t len = 0, n = 0;
    bool more = true;
    char *j;

    up(1, NULL);
    o.id = "steps";
    forq_future_t *run = submit_json(c, "progress_steps", "[40]", &o);
    wait_running(c, "steps");
    forq_future_t *q[3];
    const char *ids[] = {"q-echo-1", "q-sleep", "q-echo-2"};
    const char *tasks[] = {"echo", "sleep", "echo"};
    for (int i = 0; i < 3; i++) {
        forq_submit_opts_t qo = submit_opts();
        qo.id = ids[i];
        q[i] = submit_json(c, tasks[i], "[0]", &qo);
    }
    /* a running job: owner, times, latest progress */
    for (int i = 0; i < test_ms(200); i++) {
        ck_assert_int_eq(forq_client_status(c, "steps", 5000, &info), FORQ_OK);
        if (info.done >= 2)
            break;
        usleep(10000);
    }
    ck_assert_int_eq(info.state, FORQ_STATE_RUNNING);
    ck_assert_str_eq(info.owner, "local");
    ck_assert_uint_ge(info.done, 2);
    ck_assert_uint_eq(info.total, 40);
    ck_assert_msg(strncmp(info.text, "step ", 5) == 0, "%s", info.text);
    ck_assert_uint_ge(info.run_ms, 100);
    ck_assert_uint_ge(info.age_ms, info.run_ms);
    ck_assert_int_eq(forq_client_status(c, "q-sleep", 5000, &info), FORQ_OK);
    ck_assert_int_eq(info.state, FORQ_STATE_QUEUED);
    ck_assert_uint_eq(info.run_ms, 0);
    /* the list: running first, then the queue; filters and a limit */
    ck_assert_int_eq(forq_client_jobs(c, NULL, NULL, 0, 5000, &data, &len, &more), FORQ_OK);
    ck_assert(!more);
    j = msgpack_to_json_text(data, len);
    free(data);
    ck_assert_msg(strstr(j, "{\"id\":\"steps\",\"task\":\"progress_steps\",\"status\":\"running\","
                            "\"owner\":\"local\""),
                  "%s", j);
    ck_assert_msg(strstr(j, "\"q-echo-1\"") < strstr(j, "\"q-sleep\"") &&
                      strstr(j, "\"q-sleep\"") < strstr(j, "\"q-echo-2\""),
                  "%s", j);
    free(j);
    ck_assert_int_eq(forq_client_jobs(c, "queued", "echo", 0, 5000, &data, &len, &more), FORQ_OK);
    j = msgpack_to_json_text(data, len);
    free(data);
    ck_assert_msg(strstr(j, "q-echo-1") && strstr(j, "q-echo-2") && !strstr(j, "q-sleep") &&
                      !strstr(j, "\"steps\""),
                  "%s", j);
    free(j);
    ck_assert_int_eq(forq_client_jobs(c, NULL, NULL, 2, 5000, &data, &len, &more), FORQ_OK);
    ck_assert(more);
    free(data);
    ck_assert_int_eq(forq_client_jobs(c, "done", NULL, 0, 5000, &data, &len, &more),
                     FORQ_ERR_INVALID);
    /* purge the echo jobs: the sleep stays queued, the running job runs on */
    ck_assert_int_eq(forq_client_purge(c, "echo", 5000, &n), FORQ_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(wait_state(q[0], 5000), FORQ_STATE_CANCELLED);
    ck_assert_msg(strstr(forq_future_detail(q[0]), "purged by local"), "%s",
                  forq_future_detail(q[0]));
    ck_assert_int_eq(wait_state(q[2], 5000), FORQ_STATE_CANCELLED);
    ck_assert_int_eq(forq_client_status(c, "q-sleep", 5000, &info), FORQ_OK);
    ck_assert_int_eq(info.state, FORQ_STATE_QUEUED);
    ck_assert_int_eq(forq_client_purge(c, NULL, 5000, &n), FORQ_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(wait_state(q[1], 5000), FORQ_STATE_CANCELLED);
    ck_assert_int_eq(forq_client_status(c, "steps", 5000, &info), FORQ_OK);
    ck_assert_int_eq(info.state, FORQ_STATE_RUNNING);
    forq_cancel_t out;
    ck_assert_int_eq(forq_client_cancel(c, "steps", 5000, &out), FORQ_OK);
    ck_assert_int_eq(wait_state(run, 10000), FORQ_STATE_CANCELLED);
    for (int i = 0; i < 3; i++)
        forq_future_destroy(&q[i]);
    forq_future_destroy(&run);
    down();
}
END_TEST

START_TEST(test_bad_args_are_errors)
{
    up(1, NULL);
    forq_future_t *f = submit_json(c, "is_prime", "[\"seven\"]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_ERROR);
    ck_assert_str_eq(forq_future_error_type(f), "TypeError");
    ck_assert_ptr_nonnull(strstr(forq_future_detail(f), "must be an integer"));
    ck_assert_int_eq(forq_future_result(f, NULL, NULL), FORQ_ERR_TASK);
    forq_future_destroy(&f);
    f = submit_json(c, "sleep", "[-3]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_ERROR);
    ck_assert_str_eq(forq_future_error_type(f), "ValueError");
    forq_future_destroy(&f);
    /* the count of arguments in words: "1 was given", "3 were given" */
    f = submit_json(c, "count_primes", "[5]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_ERROR);
    ck_assert_msg(strstr(forq_future_detail(f), "takes 2 arguments but 1 was given"), "%s",
                  forq_future_detail(f));
    forq_future_destroy(&f);
    f = submit_json(c, "count_primes", "[1, 2, 3]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_ERROR);
    ck_assert_msg(strstr(forq_future_detail(f), "but 3 were given"), "%s", forq_future_detail(f));
    forq_future_destroy(&f);
    /* a buggy task that packs two values, one that fails silently */
    f = submit_json(c, "two_values", "[]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_ERROR);
    ck_assert_str_eq(forq_future_error_type(f), "TaskError");
    forq_future_destroy(&f);
    f = submit_json(c, "silent_fail", "[]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_ERROR);
    forq_future_destroy(&f);
    /* the worker survived all of it */
    f = submit_json(c, "echo", "7", NULL);
    ASSERT_RESULT(f, "7");
    ck_assert_int_eq(stat_of(c, "worker_crashes"), 0);
    forq_future_destroy(&f);
    down();
}
END_TEST

START_TEST(test_rejections)
{
    const char *extra[] = {"--max-payload", "4096", NULL};
    up(1, extra);
    forq_future_t *f = submit_json(c, "no_such_task", "[]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(f), "unknown_task");
    ck_assert_ptr_nonnull(strstr(forq_future_detail(f), "no_such_task"));
    forq_future_destroy(&f);
    f = submit_json(c, "exec", "[{\"argv\":[\"ls\"]}]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(f), "task_disabled");
    forq_future_destroy(&f);
    /* args over --max-payload: libforq knows the limit from forqd's pong and refuses them
     * without sending (forqd's own rejection of such a frame: tests/interop) */
    static char big[6003];
    memset(big, 'a', sizeof(big));
    big[0] = (char)0xda; /* str16 of 6000 bytes */
    big[1] = (char)(6000 >> 8);
    big[2] = (char)(6000 & 0xff);
    f = NULL;
    ck_assert_int_eq(forq_submit(c, "echo", big, sizeof(big), NULL, &f), FORQ_ERR_INVALID);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(forq_errdetail(), "too_large"), "%s", forq_errdetail());
    /* a result over the job's limit */
    forq_submit_opts_t o = submit_opts();
    o.max_result = 100;
    f = submit_json(c, "blob", "[1000]", &o);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_ERROR);
    ck_assert_str_eq(forq_future_error_type(f), "ResultTooLarge");
    forq_future_destroy(&f);
    /* local checks: bad task name, bad id, bad priority, args not msgpack */
    forq_future_t *g = NULL;
    ck_assert_int_eq(forq_submit(c, "bad name", "\x90", 1, NULL, &g), FORQ_ERR_INVALID);
    o = submit_opts();
    o.id = "has space";
    ck_assert_int_eq(forq_submit(c, "echo", "\x90", 1, &o, &g), FORQ_ERR_INVALID);
    o = submit_opts();
    o.priority = 10;
    ck_assert_int_eq(forq_submit(c, "echo", "\x90", 1, &o, &g), FORQ_ERR_INVALID);
    ck_assert_int_eq(forq_submit(c, "echo", "\x92\x01", 2, NULL, &g), FORQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "msgpack"));
    ck_assert_ptr_null(g);
    down();
}
END_TEST

/* ---- cancel ---- */

START_TEST(test_cancel_queued_and_running)
{
    up(1, NULL);
    forq_submit_opts_t o = submit_opts();
    forq_cancel_t out;
    o.id = "runner";
    forq_future_t *run = submit_json(c, "sleep", "[30]", &o);
    o.id = "waiter";
    forq_future_t *wait = submit_json(c, "echo", "1", &o);
    forq_job_info_t info;
    wait_running(c, "runner");
    ck_assert_int_eq(forq_client_status(c, "runner", test_ms(5000), &info), FORQ_OK);
    ck_assert_int_gt(info.pid, 0);
    ck_assert_str_eq(info.task, "sleep");
    ck_assert_int_eq(forq_client_status(c, "waiter", test_ms(5000), &info), FORQ_OK);
    ck_assert_int_eq(info.state, FORQ_STATE_QUEUED);

    ck_assert_int_eq(forq_future_cancel(wait, test_ms(5000), &out), FORQ_OK);
    ck_assert_int_eq(out, FORQ_CANCEL_DEQUEUED);
    ck_assert_int_eq(wait_state(wait, 5000), FORQ_STATE_CANCELLED);
    ck_assert_int_eq(forq_future_result(wait, NULL, NULL), FORQ_ERR_CANCELLED);

    ck_assert_int_eq(forq_client_cancel(c, "runner", test_ms(5000), &out), FORQ_OK);
    ck_assert_int_eq(out, FORQ_CANCEL_KILLING);
    ck_assert_int_eq(wait_state(run, 10000), FORQ_STATE_CANCELLED);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(run), "killed"));

    /* cancelling a finished job says so; an unknown id too */
    ck_assert_int_eq(forq_client_cancel(c, "runner", test_ms(5000), &out), FORQ_OK);
    ck_assert_int_eq(out, FORQ_CANCEL_FINISHED);
    ck_assert_int_eq(forq_client_cancel(c, "never-was", test_ms(5000), &out), FORQ_OK);
    ck_assert_int_eq(out, FORQ_CANCEL_UNKNOWN);
    ck_assert_int_eq(forq_future_cancel(run, test_ms(5000), &out), FORQ_OK);
    ck_assert_int_eq(out, FORQ_CANCEL_FINISHED);
    ck_assert_int_eq(forq_client_status(c, "runner", test_ms(5000), &info), FORQ_OK);
    ck_assert_int_eq(info.state, FORQ_STATE_CANCELLED);

    /* the pool keeps serving: a fresh worker took the killed one's place */
    forq_future_t *after = submit_json(c, "getpid", "[]", NULL);
    ck_assert_int_eq(wait_state(after, 10000), FORQ_STATE_OK);
    ck_assert_int_eq(stat_of(c, "cancelled"), 2);
    forq_future_destroy(&run);
    forq_future_destroy(&wait);
    forq_future_destroy(&after);
    down();
}
END_TEST

/* ---- timeouts and deadlines ---- */

START_TEST(test_run_timeout)
{
    up(1, NULL);
    forq_submit_opts_t o = submit_opts();
    o.timeout = 0.3;
    forq_future_t *f = submit_json(c, "spin", "[]", &o);
    forq_future_t *next = submit_json(c, "echo", "\"after\"", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_TIMEOUT);
    ck_assert_int_eq(forq_future_result(f, NULL, NULL), FORQ_ERR_JOB_TIMEOUT);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(f), "300 ms"));
    ASSERT_RESULT(next, "\"after\"");
    forq_future_destroy(&f);
    forq_future_destroy(&next);
    down();
}
END_TEST

START_TEST(test_queue_deadline)
{
    up(1, NULL);
    forq_submit_opts_t o = submit_opts();
    forq_future_t *blocker = submit_json(c, "sleep", "[0.6]", NULL);
    o.deadline = 0.1;
    forq_future_t *late = submit_json(c, "echo", "1", &o);
    ck_assert_int_eq(wait_state(late, 5000), FORQ_STATE_TIMEOUT);
    ck_assert_str_eq(forq_future_code(late), "deadline");
    ck_assert_int_eq(forq_future_attempts(late), 0);
    ck_assert_int_eq(wait_state(blocker, 5000), FORQ_STATE_OK);
    forq_future_destroy(&blocker);
    forq_future_destroy(&late);
    down();
}
END_TEST

/* ---- retries ---- */

START_TEST(test_retries)
{
    char marker[300], args[400];
    up(1, NULL);
    snprintf(marker, sizeof(marker), "%s/crashed-once", d.dir);
    snprintf(args, sizeof(args), "[\"%s\"]", marker);
    forq_submit_opts_t o = submit_opts();
    o.retries = 1;
    forq_future_t *f = submit_json(c, "crash_once", args, &o);
    ASSERT_RESULT(f, "\"ok\"");
    ck_assert_uint_eq(forq_future_attempts(f), 2);
    forq_future_destroy(&f);
    o.retries = 2;
    f = submit_json(c, "segv", "[]", &o);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_CRASHED);
    ck_assert_uint_eq(forq_future_attempts(f), 3);
    ck_assert_int_eq(stat_of(c, "retried"), 3);
    /* the result says it was every attempt, not only the last */
    ck_assert_msg(strstr(forq_future_detail(f), "crashed on all 3 attempts: ") ==
                      forq_future_detail(f),
                  "detail: %s", forq_future_detail(f));
    ck_assert_ptr_nonnull(strstr(forq_future_detail(f), "signal 11"));
    forq_future_destroy(&f);
    down();
}
END_TEST

/* ---- scheduling ---- */

START_TEST(test_priorities)
{
    up(1, NULL);
    forq_future_t *block = submit_json(c, "sleep", "[0.3]", NULL);
    forq_future_t *f[6];
    int prio[6] = {0, 9, 5, 0, 9, 5};
    for (int i = 0; i < 6; i++) {
        forq_submit_opts_t o = submit_opts();
        o.priority = prio[i];
        f[i] = submit_json(c, "now", "[]", &o);
    }
    /* order by when each ran */
    long long at[6];
    for (int i = 0; i < 6; i++) {
        char *s = result_json(f[i], 10000);
        ck_assert_ptr_nonnull(s);
        at[i] = atoll(s);
        free(s);
    }
    int expect[6] = {1, 4, 2, 5, 0, 3}; /* priority first, then FIFO */
    for (int i = 0; i + 1 < 6; i++)
        ck_assert_msg(at[expect[i]] < at[expect[i + 1]], "job %d ran after job %d", expect[i],
                      expect[i + 1]);
    for (int i = 0; i < 6; i++)
        forq_future_destroy(&f[i]);
    forq_future_destroy(&block);
    down();
}
END_TEST

START_TEST(test_fair_between_clients)
{
    up(1, NULL);
    forq_client_t *a = forqd_client(&d), *b = forqd_client(&d);
    forq_future_t *block = submit_json(c, "sleep", "[0.3]", NULL);
    forq_future_t *fa[10], *fb[2];
    usleep(50000);
    for (int i = 0; i < 10; i++)
        fa[i] = submit_json(a, "sleep", "[0.01]", NULL);
    usleep(50000); /* a's jobs are all queued before b's */
    for (int i = 0; i < 2; i++)
        fb[i] = submit_json(b, "sleep", "[0.01]", NULL);
    ck_assert_int_eq(wait_state(fb[1], 10000), FORQ_STATE_OK);
    /* round robin: b's second job ran no later than a's third */
    int a_done = 0;
    for (int i = 0; i < 10; i++)
        a_done += forq_future_done(fa[i]);
    ck_assert_msg(a_done <= 3, "client b waited for %d of client a's jobs", a_done);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(wait_state(fa[i], 10000), FORQ_STATE_OK);
        forq_future_destroy(&fa[i]);
    }
    forq_future_destroy(&fb[0]);
    forq_future_destroy(&fb[1]);
    forq_future_destroy(&block);
    forq_client_destroy(&a);
    forq_client_destroy(&b);
    down();
}
END_TEST

START_TEST(test_queue_limits)
{
    const char *extra[] = {"--queue-max", "3", "--client-queue-max", "2", NULL};
    up(1, extra);
    forq_client_t *other = forqd_client(&d);
    /* running long enough for the submits below, on a loaded machine too */
    forq_future_t *a = submit_json(c, "sleep", "[2]", NULL);
    forq_future_t *b = submit_json(c, "echo", "1", NULL);    /* queued: c has 2 */
    forq_future_t *over = submit_json(c, "echo", "2", NULL); /* client limit */
    ck_assert_int_eq(wait_state(over, 5000), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(over), "client_queue_full");
    forq_future_t *o1 = submit_json(other, "echo", "3", NULL);
    forq_future_t *o2 = submit_json(other, "echo", "4", NULL);   /* queue now holds 3 */
    forq_future_t *full = submit_json(other, "echo", "5", NULL); /* total limit */
    ck_assert_int_eq(wait_state(full, 5000), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(full), "queue_full");
    /* nothing accepted was lost */
    ck_assert_int_eq(wait_state(a, 10000), FORQ_STATE_OK);
    ASSERT_RESULT(b, "1");
    ASSERT_RESULT(o1, "3");
    ASSERT_RESULT(o2, "4");
    ck_assert_int_eq(stat_of(c, "rejected"), 2);
    forq_future_destroy(&a);
    forq_future_destroy(&b);
    forq_future_destroy(&over);
    forq_future_destroy(&o1);
    forq_future_destroy(&o2);
    forq_future_destroy(&full);
    forq_client_destroy(&other);
    down();
}
END_TEST

START_TEST(test_duplicate_id)
{
    up(1, NULL);
    forq_client_t *other = forqd_client(&d);
    forq_submit_opts_t o = submit_opts();
    o.id = "same";
    forq_future_t *first = submit_json(c, "sleep", "[0.3]", &o);
    usleep(50000);
    forq_future_t *dup = submit_json(other, "echo", "1", &o);
    ck_assert_int_eq(wait_state(dup, 5000), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(dup), "duplicate_id");
    ck_assert_int_eq(wait_state(first, 5000), FORQ_STATE_OK);
    /* once finished, the id may be used again */
    forq_future_t *again = submit_json(other, "echo", "2", &o);
    ASSERT_RESULT(again, "2");
    forq_future_destroy(&first);
    forq_future_destroy(&dup);
    forq_future_destroy(&again);
    forq_client_destroy(&other);
    down();
}
END_TEST

/* ---- many clients ---- */

typedef struct {
    const forqd_t *d;
    int base, n, ok;
} load_t;

static void *load_main(void *arg)
{
    load_t *l = arg;
    forq_client_t *cl = forqd_client(l->d);
    forq_future_t **f = calloc((size_t)l->n, sizeof(*f));
    for (int i = 0; i < l->n; i++) {
        char a[32];
        snprintf(a, sizeof(a), "%d", l->base + i);
        f[i] = submit_json(cl, "echo", a, NULL);
    }
    for (int i = 0; i < l->n; i++) {
        char want[32], *got = result_json(f[i], 60000);
        snprintf(want, sizeof(want), "%d", l->base + i);
        l->ok += got && strcmp(got, want) == 0;
        free(got);
        forq_future_destroy(&f[i]);
    }
    free(f);
    forq_client_destroy(&cl);
    return NULL;
}

START_TEST(test_many_clients_exactly_once)
{
    pthread_t t[4];
    load_t l[4];
    int per = test_quick() ? 50 : 250; /* 1000 jobs; fewer under valgrind or in quick mode */
    up(2, NULL);
    for (int i = 0; i < 4; i++) {
        l[i] = (load_t){&d, i * 100000, per, 0};
        pthread_create(&t[i], NULL, load_main, &l[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(l[i].ok, per);
    }
    ck_assert_int_eq(stat_of(c, "submitted"), 4 * per);
    ck_assert_int_eq(stat_of(c, "ok"), 4 * per);
    ck_assert_int_eq(stat_of(c, "undeliverable"), 0);
    down();
}
END_TEST

START_TEST(test_client_destroyed_with_pending_futures)
{
    up(1, NULL);
    forq_client_t *tmp = forqd_client(&d);
    forq_future_t *f = submit_json(tmp, "sleep", "[0.2]", NULL);
    forq_client_destroy(&tmp);
    ck_assert(forq_future_done(f));
    ck_assert_int_eq(forq_future_state(f), FORQ_STATE_LOST);
    ck_assert_int_eq(forq_future_result(f, NULL, NULL), FORQ_ERR_LOST);
    forq_future_destroy(&f);
    /* forqd drops the result for the vanished client and goes on */
    usleep(400000);
    f = submit_json(c, "echo", "1", NULL);
    ASSERT_RESULT(f, "1");
    forq_future_destroy(&f);
    ck_assert_int_eq(stat_of(c, "undeliverable"), 1);
    down();
}
END_TEST

/* ---- a client that stops reading ---- */

/* A raw DEALER connected to forqd that takes one reply at a time (ZMQ_RCVHWM 1) and waits up to
 * 10 s for each: while the test does not read, forqd must hold the rest. */
static void *slow_reader(void *zctx)
{
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    int hwm = 1, tmo = test_ms(10000);

    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    ck_assert_int_eq(zmq_connect(s, d.endpoint), 0);
    return s;
}

/* Send an echo job `id` with the msgpack args, as a raw submit (sb: scratch). */
static void raw_submit(void *s, msgpack_sbuffer *sb, const char *id, const void *args, size_t len)
{
    wire_hdr_t h = {.cmd = WIRE_SUBMIT, .id = wire_str(id), .task = wire_str("echo")};

    msgpack_sbuffer_clear(sb);
    wire_hdr_encode(sb, &h);
    zmq_send(s, sb->data, sb->size, ZMQ_SNDMORE);
    zmq_send(s, args, len, 0);
}

/* Receive reply `i` of n: its header into h (decoded into zone, borrowing from buf, which holds
 * WIRE_HEADER_MAX bytes), the frames after it read and dropped. */
static void raw_reply(void *s, int i, int n, char *buf, msgpack_zone *zone, wire_hdr_t *h)
{
    char junk[4096];
    wire_err_t err;
    int len = zmq_recv(s, buf, WIRE_HEADER_MAX, 0), more = 0;
    size_t ml = sizeof(more);

    ck_assert_msg(len > 0, "reply %d of %d never came", i, n);
    msgpack_zone_clear(zone);
    ck_assert_int_eq(wire_hdr_decode(buf, (size_t)len, zone, h, &err), 0);
    while (zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml) == 0 && more)
        zmq_recv(s, junk, sizeof(junk), 0);
}

START_TEST(test_slow_client_backlog)
{
    const char *extra[] = {"--client-hwm", "10", NULL};
    int n = test_quick() ? 500 : 3000;
    char *seen;
    msgpack_sbuffer sb;
    msgpack_zone zone;
    up(2, extra);
    void *zctx = zmq_ctx_new(), *s = slow_reader(zctx);

    msgpack_sbuffer_init(&sb);
    char args[200];
    memset(args, 'x', sizeof(args));
    args[0] = (char)0xd9; /* str8 of 198 bytes: big enough to fill kernel buffers */
    args[1] = (char)198;
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "slow-%d", i);
        raw_submit(s, &sb, id, args, sizeof(args));
    }
    /* not reading: forqd must hold what zmq will not take, and go on serving others */
    long long backlog = 0;
    for (int i = 0; i < test_ms(300) && (backlog = stat_of(c, "backlog")) == 0; i++)
        usleep(10000);
    ck_assert_msg(backlog > 0, "forqd never had to hold results back");
    forq_future_t *other = submit_json(c, "echo", "\"unblocked\"", NULL);
    ASSERT_RESULT(other, "\"unblocked\"");
    forq_future_destroy(&other);
    /* now read: every job answered exactly once, ok */
    seen = calloc((size_t)n, 1);
    msgpack_zone_init(&zone, 1024);
    for (int i = 0; i < n; i++) {
        char buf[WIRE_HEADER_MAX];
        wire_hdr_t h;
        raw_reply(s, i, n, buf, &zone, &h);
        ck_assert_int_eq(h.state, WIRE_ST_OK);
        int k = atoi(h.id.ptr + 5);
        ck_assert_int_eq(seen[k], 0);
        seen[k] = 1;
    }
    ck_assert_int_eq(stat_of(c, "backlog"), 0);
    ck_assert_int_eq(stat_of(c, "undeliverable"), 0);
    free(seen);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&sb);
    zmq_close(s);
    zmq_ctx_term(zctx);
    down();
}
END_TEST

/* Replies held for a client that does not read are bounded in bytes, not only in count: past
 * --client-backlog-bytes its submits are rejected, with the reason, until it reads. */
START_TEST(test_backlog_bounded_in_bytes)
{
    const char *extra[] = {"--client-hwm", "10", "--client-backlog-bytes", "100000", NULL};
    int n = 300, rejected = 0, ok = 0, over = 0;
    static char args[2048];
    msgpack_sbuffer sb;
    msgpack_zone zone;

    up(2, extra);
    void *zctx = zmq_ctx_new(), *s = slow_reader(zctx);
    msgpack_sbuffer_init(&sb);
    memset(args, 'x', sizeof(args));
    args[0] = (char)0xda; /* str16 of 2045 bytes */
    args[1] = (char)(2045 >> 8);
    args[2] = (char)(2045 & 0xff);
    for (int i = 0; i <= n; i++) {
        char id[32];
        if (i == n) /* the backlog is over 100,000 bytes by now: this one is refused */
            for (int k = 0; k < test_ms(500) && stat_of(c, "backlog") < 60; k++)
                usleep(10000);
        snprintf(id, sizeof(id), "%s-%d", i == n ? "over" : "held", i);
        raw_submit(s, &sb, id, args, sizeof(args));
    }
    msgpack_zone_init(&zone, 1024);
    for (int i = 0; i <= n; i++) {
        char buf[WIRE_HEADER_MAX];
        wire_hdr_t h;
        raw_reply(s, i, n + 1, buf, &zone, &h);
        if (h.state == WIRE_ST_REJECTED) {
            /* the last one for sure; earlier ones too once the backlog had grown */
            over += wire_str_eq(h.id, "over-300");
            ck_assert_msg(wire_str_eq(h.code, "client_queue_full"), "%.*s: %.*s", (int)h.code.len,
                          h.code.ptr, (int)h.msg.len, h.msg.ptr);
            ck_assert_ptr_nonnull(memmem(h.msg.ptr, h.msg.len, "--client-backlog-bytes", 22));
            rejected++;
        } else {
            ck_assert_int_eq(h.state, WIRE_ST_OK);
            ok++;
        }
    }
    ck_assert_int_eq(over, 1);
    ck_assert_int_eq(ok + rejected, n + 1);
    ck_assert_int_eq(stat_of(c, "backlog"), 0);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&sb);
    zmq_close(s);
    zmq_ctx_term(zctx);
    down();
}
END_TEST

/* forqd's resident memory in KiB. */
static long rss_kib(pid_t pid)
{
    char path[64];
    long size = 0, resident = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* A burst of 10,000 jobs with 4 KiB results, retained one second: once they have expired and
 * forqd is idle, the memory goes back to the system (it stayed 19-40 MiB above the baseline). */
START_TEST(test_memory_returns_after_a_burst)
{
    enum { N = 10000 };
    static forq_future_t *f[N];
    const char *extra[] = {"--retain-seconds", "1", NULL};

    up(2, extra);
    for (int i = 0; i < 200; i++) { /* warm: workers, tables, ZeroMQ's buffers */
        forq_future_t *w = submit_json(c, "echo", "[1]", NULL);
        ck_assert_int_eq(wait_state(w, 10000), FORQ_STATE_OK);
        forq_future_destroy(&w);
    }
    sleep(2);
    long base = rss_kib(d.pid), peak;
    ck_assert_int_gt(base, 0);
    for (int i = 0; i < N; i++)
        f[i] = submit_json(c, "blob", "[4096]", NULL);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(wait_state(f[i], 30000), FORQ_STATE_OK);
        forq_future_destroy(&f[i]);
    }
    peak = rss_kib(d.pid);
    /* retention runs out (1 s); forqd looks at its free memory about once a second when idle */
    long now = peak;
    for (int i = 0; i < 60 && now > base + 8192; i++) {
        usleep(100000);
        now = rss_kib(d.pid);
    }
#ifdef UNDER_ASAN
    /* AddressSanitizer's allocator keeps freed memory in quarantine: nothing to measure */
    (void)now;
#else
    ck_assert_msg(now <= base + 8192,
                  "forqd's RSS: %ld KiB before the burst, %ld at its peak, %ld after it expired",
                  base, peak, now);
#endif
    down();
}
END_TEST

static Suite *jobs_suite(void)
{
    Suite *s = suite_create("jobs");
    TCase *core = tcase_create("core");
    TCase *full;

    tcase_set_timeout(core, test_ms(60));
    tcase_add_test(core, test_builtin_tasks);
    tcase_add_test(core, test_cancel_queued_and_running);
    tcase_add_test(core, test_many_clients_exactly_once);
    tcase_add_test(core, test_run_timeout);
    suite_add_tcase(s, core);
    /* under valgrind (FORQ_TEST_CORE_ONLY) the core cases only */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(60));
    tcase_add_test(full, test_bad_args_are_errors);
    tcase_add_test(full, test_status_jobs_and_purge);
    tcase_add_test(full, test_rejections);
    tcase_add_test(full, test_queue_deadline);
    tcase_add_test(full, test_retries);
    tcase_add_test(full, test_priorities);
    tcase_add_test(full, test_fair_between_clients);
    tcase_add_test(full, test_queue_limits);
    tcase_add_test(full, test_duplicate_id);
    tcase_add_test(full, test_client_destroyed_with_pending_futures);
    tcase_add_test(full, test_slow_client_backlog);
    tcase_add_test(full, test_memory_returns_after_a_burst);
    tcase_add_test(full, test_backlog_bounded_in_bytes);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(jobs_suite());
}
