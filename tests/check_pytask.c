/* check_pytask.c - end to end, Python functions as tasks (daemon/python/): a real forqd with the
 * Python runtime serving tests/python_tasks/ptasks.py. Calls with positional and keyword
 * arguments, every conversion both ways and each unsupported type, exceptions with their
 * traceback, crashes, timeouts and cancels of Python tasks, progress, dicts, the shared types
 * (queues, locks, events, values) and print() from a task, imports that fail or start threads,
 * reloads of changed code, many tiny jobs, a chunked map, the example module and the settings.
 * (check_pyrt.c: the runtime in its own process.) */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"

#include <check.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static forqd_t d;
static forq_client_t *c;

static const char *env(const char *name)
{
    const char *v = getenv(name);
    ck_assert_msg(v && *v, "%s is not set (run the tests through meson test)", name);
    return v;
}

/* forqd's arguments for the Python runtime with the test module's directory and `extra`
 * (NULL-terminated); args must hold 40. */
static void py_args(const char **args, char *w, size_t wsize, int workers, const char *const *extra)
{
    int n = 0;

    snprintf(w, wsize, "%d", workers);
    args[n++] = "--workers";
    args[n++] = w;
    args[n++] = "--python-runtime";
    args[n++] = env("FORQ_PYTHON_RUNTIME");
    args[n++] = "--python-path";
    args[n++] = env("FORQ_PYTHON_PKG");
    args[n++] = "--python-path";
    args[n++] = env("FORQ_PYTHON_TASKS");
    for (int i = 0; extra && extra[i] && n < 38; i++)
        args[n++] = extra[i];
    args[n] = NULL;
}

/* forqd serving ptasks (and what `extra` adds) with `workers` workers; c connected. */
static void up(int workers, const char *const *extra)
{
    const char *args[40], *more[24];
    char w[16];
    int n = 0;

    more[n++] = "--python-import";
    more[n++] = "ptasks";
    for (int i = 0; extra && extra[i] && n < 23; i++)
        more[n++] = extra[i];
    more[n] = NULL;
    py_args(args, w, sizeof(w), workers, more);
    forqd_start(&d, args);
    c = forqd_client(&d);
}

static void down(void)
{
    e2e_down(&d, &c);
}

static forq_future_t *submit_raw(const char *task, const char *args, size_t len)
{
    forq_future_t *f = NULL;
    ck_assert_msg(forq_submit(c, task, args, len, NULL, &f) == FORQ_OK, "submit %s: %s", task,
                  forq_errdetail());
    return f;
}

/* f ends `error` with etype and a message holding `part`. */
static void assert_error(forq_future_t *f, const char *etype, const char *part)
{
    ck_assert_int_eq(wait_state(f, test_ms(30000)), FORQ_STATE_ERROR);
    ck_assert_msg(strcmp(forq_future_error_type(f), etype) == 0, "etype %s, want %s (%s)",
                  forq_future_error_type(f), etype, forq_future_detail(f));
    ck_assert_msg(strstr(forq_future_detail(f), part), "message '%s' lacks '%s'",
                  forq_future_detail(f), part);
}

#define EXPECT_ERROR(task, args, etype, part)                                                      \
    do {                                                                                           \
        forq_future_t *f_ = submit_json(c, task, args, NULL);                                      \
        assert_error(f_, etype, part);                                                             \
        forq_future_destroy(&f_);                                                                  \
    } while (0)

#define EXPECT_JSON(task, args, expect)                                                            \
    do {                                                                                           \
        forq_future_t *f_ = submit_json(c, task, args, NULL);                                      \
        ASSERT_RESULT(f_, expect);                                                                 \
        forq_future_destroy(&f_);                                                                  \
    } while (0)

/* f ends ok with exactly these result bytes. */
static void assert_bytes(forq_future_t *f, const char *want, size_t len)
{
    const void *res;
    size_t rlen;

    ck_assert_int_eq(wait_state(f, test_ms(30000)), FORQ_STATE_OK);
    ck_assert_int_eq(forq_future_result(f, &res, &rlen), FORQ_OK);
    ck_assert_uint_eq(rlen, len);
    ck_assert_mem_eq(res, want, len);
}

/* ---- calls ---- */

START_TEST(test_positional_and_keyword_arguments)
{
    up(1, NULL);
    EXPECT_JSON("ptasks.add", "[2, 3]", "5");
    EXPECT_JSON("ptasks.add", "[2]", "2");
    EXPECT_JSON("ptasks.add", "[2, 3, {\"$kw\": {\"scale\": 10}}]", "50");
    EXPECT_JSON("ptasks.add", "[{\"$kw\": {\"a\": 1, \"b\": 2}}]", "3");
    /* a single value that is not an array is the one positional argument */
    EXPECT_JSON("ptasks.echo", "7", "[[7],{}]");
    EXPECT_JSON("ptasks.echo", "[1, {\"$kw\": {\"x\": [2]}}]", "[[1],{\"x\":[2]}]");
    /* a last argument that looks like keywords is passed as one, followed by no keywords */
    EXPECT_JSON("ptasks.echo", "[{\"$kw\": {\"y\": 2}}, {\"$kw\": {}}]",
                "[[{\"$kw\":{\"y\":2}}],{}]");
    /* a map of two keys, or "$kw" to a non-map, is an ordinary argument */
    EXPECT_JSON("ptasks.echo", "[{\"$kw\": 1}]", "[[{\"$kw\":1}],{}]");
    EXPECT_ERROR("ptasks.add", "[1, {\"$kw\": {\"nope\": 1}}]", "TypeError",
                 "unexpected keyword argument 'nope'");
    EXPECT_ERROR("ptasks.add", "[]", "TypeError", "missing 1 required positional argument");
    /* keyword names must be strings: [{"$kw": {1: 2}}] */
    forq_future_t *f = submit_raw("ptasks.add", "\x91\x81\xa3$kw\x81\x01\x02", 9);
    assert_error(f, "TypeError", "keyword argument names must be strings");
    forq_future_destroy(&f);
    down();
}
END_TEST

/* msgpack -> Python: every kind, and the same values back (echo packs what it got). */
START_TEST(test_conversions_in)
{
    /* [nil, true, false, 1, -1, 2**64-1, -2**63, 1.5, "s", b"\x00", [1], {"a": 1}, {[1, 2]: 3}] */
    static const char args[] = "\x9d\xc0\xc3\xc2\x01\xff\xcf\xff\xff\xff\xff\xff\xff\xff\xff"
                               "\xd3\x80\x00\x00\x00\x00\x00\x00\x00"
                               "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\xa1s\xc4\x01\x00\x91\x01"
                               "\x81\xa1\x61\x01\x81\x92\x01\x02\x03";
    size_t alen = sizeof(args) - 1;
    char want[128];
    forq_future_t *f;

    up(1, NULL);
    f = submit_raw("ptasks.kinds", args, alen);
    ASSERT_RESULT(f, "[\"NoneType\",\"bool\",\"bool\",\"int\",\"int\",\"int\",\"int\",\"float\","
                     "\"str\",\"bytes\",\"list\",\"dict\",\"dict\"]");
    forq_future_destroy(&f);
    /* echo answers [args, {}]: the same bytes inside, a map keyed by an array included */
    f = submit_raw("ptasks.echo", args, alen);
    want[0] = '\x92';
    memcpy(want + 1, args, alen);
    want[1 + alen] = '\x80';
    assert_bytes(f, want, alen + 2);
    forq_future_destroy(&f);
    /* that key was a tuple in Python */
    f = submit_raw("ptasks.keytypes", "\x91\x82\x92\x01\x02\x03\xa1k\x04", 9);
    ASSERT_RESULT(f, "[\"str\",\"tuple\"]");
    forq_future_destroy(&f);
    /* what has no Python form: an extension value, a str that is not UTF-8, a map as a key */
    f = submit_raw("ptasks.echo", "\x91\xd4\x05\x01", 4);
    assert_error(f, "TypeError", "msgpack extension value (type 5)");
    forq_future_destroy(&f);
    f = submit_raw("ptasks.echo", "\x91\xa2\xff\xfe", 4);
    assert_error(f, "UnicodeDecodeError", "the job's arguments: 'utf-8' codec can't decode");
    forq_future_destroy(&f);
    f = submit_raw("ptasks.echo", "\x91\x81\x81\x01\x02\x03", 6);
    assert_error(f, "TypeError", "a map key that is a map has no Python form");
    forq_future_destroy(&f);
    down();
}
END_TEST

/* Python -> msgpack: every kind, and each unsupported type named. */
START_TEST(test_conversions_out)
{
    static const struct {
        const char *what, *json;
    } ok[] = {
        {"none", "null"},
        {"true", "true"},
        {"false", "false"},
        {"int", "-5"},
        {"float", "1.5"},
        {"str", "\"h\xc3\xa9llo\""},
        {"bytes", "{\"$base64\":\"AP8=\"}"},
        {"bytearray", "{\"$base64\":\"YWI=\"}"},
        {"memoryview", "{\"$base64\":\"Y2Q=\"}"},
        {"list", "[1,[2]]"},
        {"tuple", "[1,[2,3]]"},
    };
    static const struct {
        const char *what, *etype, *part;
    } bad[] = {
        {"big", "TypeError", "an int beyond 64 bits (2**64 or more) has no msgpack form"},
        {"small", "TypeError", "an int beyond 64 bits (below -2**63)"},
        {"set", "TypeError", "a value of type 'set' has no msgpack form"},
        {"object", "TypeError", "a value of type 'object' has no msgpack form"},
        {"surrogate", "UnicodeEncodeError", "surrogates not allowed"},
        {"deep", "ResultTooDeep", "nests deeper than 32 levels"},
    };
    char args[64];
    forq_future_t *f;

    up(1, NULL);
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(args, sizeof(args), "[\"%s\"]", ok[i].what);
        EXPECT_JSON("ptasks.give", args, ok[i].json);
    }
    /* exact bytes where JSON would blur them: uint64, int64, a dict with an int key */
    f = submit_json(c, "ptasks.give", "[\"u64\"]", NULL);
    assert_bytes(f, "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);
    forq_future_destroy(&f);
    f = submit_json(c, "ptasks.give", "[\"i64min\"]", NULL);
    assert_bytes(f, "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9);
    forq_future_destroy(&f);
    f = submit_json(c, "ptasks.give", "[\"dict\"]", NULL);
    assert_bytes(f, "\x82\xa1\x61\x01\x02\xa1\x62", 7);
    forq_future_destroy(&f);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(args, sizeof(args), "[\"%s\"]", bad[i].what);
        EXPECT_ERROR("ptasks.give", args, bad[i].etype, bad[i].part);
    }
    down();
}
END_TEST

/* ---- errors ---- */

START_TEST(test_exception_with_traceback)
{
    forq_future_t *f;
    const char *m;

    up(1, NULL);
    /* a module's own exception: its qualified name, str(), then the frames innermost last */
    f = submit_json(c, "ptasks.fail", "[7]", NULL);
    assert_error(f, "ptasks.Oops", "bad x: 7\n\nTraceback (most recent call last):\n");
    m = forq_future_detail(f);
    ck_assert_ptr_nonnull(strstr(m, "ptasks.py\", line"));
    ck_assert_ptr_nonnull(strstr(m, "in fail"));
    ck_assert(strstr(m, "in fail") < strstr(m, "in _inner"));
    ck_assert_ptr_nonnull(strstr(m, "raise Oops("));
    forq_future_destroy(&f);
    /* a built-in exception by its plain name */
    EXPECT_ERROR("ptasks.divide", "[1, 0]", "ZeroDivisionError", "division by zero\n\nTraceback");
    /* 300 frames do not fit 1024 bytes: the oldest give way to "  ...", the innermost stay */
    f = submit_json(c, "ptasks.recurse", "[300]", NULL);
    assert_error(f, "ValueError", "bottom\n\nTraceback (most recent call last):\n  ...\n");
    m = forq_future_detail(f);
    ck_assert_uint_le(strlen(m), 1024);
    ck_assert_msg(strstr(m, "raise ValueError(\"bottom\")") != NULL, "innermost frame lost: %s", m);
    forq_future_destroy(&f);
    /* the task crossing worker and client intact: the next call is fine */
    EXPECT_JSON("ptasks.divide", "[1, 4]", "0.25");
    down();
}
END_TEST

/* ---- workers: crash, timeout, cancel, recycling, limits ---- */

START_TEST(test_segfault_is_crashed_and_the_pool_keeps_serving)
{
    forq_future_t *f;

    up(2, NULL);
    f = submit_json(c, "ptasks.segv", "[]", NULL);
    ck_assert_int_eq(wait_state(f, test_ms(30000)), FORQ_STATE_CRASHED);
#ifdef UNDER_ASAN /* forqd's AddressSanitizer reports the fault and exits instead */
    ck_assert(forq_future_signal(f) == SIGSEGV || forq_future_exit_code(f) > 0);
#else
    ck_assert_int_eq(forq_future_signal(f), SIGSEGV);
#endif
    forq_future_destroy(&f);
    for (int i = 0; i < 20; i++)
        EXPECT_JSON("ptasks.add", "[1, 1]", "2");
    for (int i = 0; i < test_ms(500) && stat_of(c, "workers_live") != 2; i++)
        usleep(10000);
    ck_assert_int_eq(stat_of(c, "workers_live"), 2);
    down();
}
END_TEST

START_TEST(test_timeout_kills_a_looping_task)
{
    forq_submit_opts_t o = submit_opts();
    forq_future_t *f;

    up(1, NULL);
    o.timeout = 0.3;
    f = submit_json(c, "ptasks.spin", "[]", &o);
    ck_assert_int_eq(wait_state(f, test_ms(30000)), FORQ_STATE_TIMEOUT);
    forq_future_destroy(&f);
    EXPECT_JSON("ptasks.add", "[4, 5]", "9");
    down();
}
END_TEST

START_TEST(test_cancel_running_python_task)
{
    forq_submit_opts_t o = submit_opts();
    forq_cancel_t outcome;
    forq_future_t *f;

    up(1, NULL);
    o.id = "nap-1";
    f = submit_json(c, "ptasks.nap", "[60]", &o);
    wait_running(c, "nap-1");
    ck_assert_int_eq(forq_future_cancel(f, test_ms(5000), &outcome), FORQ_OK);
    ck_assert_int_eq(outcome, FORQ_CANCEL_KILLING);
    ck_assert_int_eq(wait_state(f, test_ms(10000)), FORQ_STATE_CANCELLED);
    forq_future_destroy(&f);
    EXPECT_JSON("ptasks.add", "[1, 2]", "3");
    down();
}
END_TEST

START_TEST(test_max_jobs_per_worker_and_limits)
{
    const char *extra[] = {"--max-jobs-per-worker", "3", NULL};
    char *pids[6];
    int distinct = 0;

    up(1, extra);
    for (int i = 0; i < 6; i++) {
        forq_future_t *f = submit_json(c, "ptasks.getpid", "[]", NULL);
        pids[i] = result_json(f, test_ms(30000));
        ck_assert_ptr_nonnull(pids[i]);
        forq_future_destroy(&f);
    }
    for (int i = 0; i < 6; i++) {
        bool seen = false;
        for (int k = 0; k < i; k++)
            seen = seen || strcmp(pids[k], pids[i]) == 0;
        distinct += !seen;
    }
    ck_assert_int_eq(distinct, 2); /* three jobs each */
    for (int i = 0; i < 6; i++)
        free(pids[i]);
#ifndef UNDER_ASAN /* ASan's shadow memory needs more address space than any limit allows */
    forq_submit_opts_t o = submit_opts();
    o.max_memory = 256u << 20;
    forq_future_t *f = submit_json(c, "ptasks.alloc", "[512]", &o);
    assert_error(f, "MemoryError", "");
    forq_future_destroy(&f);
    EXPECT_JSON("ptasks.alloc", "[1]", "1048576");
#endif
    down();
}
END_TEST

/* ---- forq.worker: progress, dict, print ---- */

START_TEST(test_progress_and_dict_from_a_task)
{
    forq_future_t *f;
    uint64_t done = 0, total = 0;
    char *text = NULL;
    void *v = NULL;
    size_t len = 0;

    up(1, NULL);
    f = submit_json(c, "ptasks.report", "[5]", NULL);
    ASSERT_RESULT(f, "5");
    ck_assert(forq_future_progress(f, &done, &total, &text));
    ck_assert_uint_eq(done, 5);
    ck_assert_uint_eq(total, 5);
    ck_assert_str_eq(text, "step 5");
    free(text);
    forq_future_destroy(&f);
    f = submit_json(c, "ptasks.use_dict", "[\"dd\"]", NULL);
    ASSERT_RESULT(f, "{\"len\":4,\"n\":5,\"old\":1,\"conflict\":true,\"a\":2,"
                     "\"keys\":[\"a\",\"b\",\"c\",\"n\"],\"items\":[\"a\",\"b\",\"c\",\"n\"],"
                     "\"popped\":\"dflt\",\"has_b\":true,\"c\":{\"x\":{\"$base64\":\"eQ==\"}}}");
    forq_future_destroy(&f);
    /* what the task wrote is there for clients */
    ck_assert_int_eq(forq_dict_get(c, "dd", "a", test_ms(5000), &v, &len, NULL), FORQ_OK);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(((const char *)v)[0], 2);
    free(v);
    /* forq.worker from a thread the task started is refused */
    EXPECT_JSON("ptasks.outside_api", "[]",
                "\"forq.worker.progress() must be called from the thread that runs the task, not "
                "from a thread it started\"");
    /* no cancel was asked */
    EXPECT_JSON("ptasks.was_cancelled", "[]", "false");
    down();
}
END_TEST

/* The shared types from Python tasks (forq.worker.queue, lock, semaphore, event, value), on
 * the same queues, locks and events as clients, with the submitter's rights. */
static void wait_waiters(long long n)
{
    for (int i = 0; i < 500 && stat_of(c, "shared_waiters") != n; i++)
        usleep(10000);
    ck_assert_int_eq(stat_of(c, "shared_waiters"), n);
}

START_TEST(test_shared_types_from_a_task)
{
    forq_future_t *f;
    void *v = NULL;
    size_t len = 0;
    uint64_t t;

    up(2, NULL);
    /* a task puts, a client gets them, in order */
    EXPECT_JSON("ptasks.queue_produce", "[\"tq\", [\"apple\", \"banana\", 3]]", "[3,\"Full\",1]");
    ck_assert_int_eq(forq_queue_get(c, "tq", 0, &v, &len), FORQ_OK);
    ck_assert_mem_eq(v,
                     "\xa5"
                     "apple",
                     6);
    free(v);
    ck_assert_int_eq(forq_queue_get(c, "tq", 0, &v, &len), FORQ_OK);
    free(v);
    ck_assert_int_eq(forq_queue_get(c, "tq", 0, &v, &len), FORQ_OK);
    ck_assert_int_eq(((const unsigned char *)v)[0], 3);
    free(v);
    /* a task blocked in get takes what a client puts */
    f = submit_json(c, "ptasks.queue_consume", "[\"tq\", 20]", NULL);
    wait_waiters(1);
    ck_assert_int_eq(forq_queue_put(c, "tq", "\xa4pear", 5, false, 0, test_ms(5000), NULL),
                     FORQ_OK);
    ASSERT_RESULT(f, "\"pear\"");
    forq_future_destroy(&f);
    EXPECT_JSON("ptasks.queue_consume", "[\"tq\", 0.2]", "\"empty\"");
    /* a task's lock: its token, fenced into the dict, larger than a client's grant before */
    ck_assert_int_eq(forq_lock_acquire(c, "tl", 0, 0, &t), FORQ_OK);
    EXPECT_JSON("ptasks.lock_try", "[\"tl\"]", "false"); /* held by the client */
    f = submit_json(c, "ptasks.lock_token", "[\"tl\"]", NULL);
    wait_waiters(1); /* the task waits for the client's grant */
    ck_assert_int_eq(forq_lock_release(c, "tl", t, test_ms(5000)), FORQ_OK);
    ck_assert_int_eq(wait_state(f, test_ms(30000)), FORQ_STATE_OK);
    ck_assert_int_eq(forq_dict_get(c, "tl", "token", test_ms(5000), &v, &len, NULL), FORQ_OK);
    {
        /* [token, true]: the token as the dict holds it, and larger than the client's */
        const unsigned char *res;
        msgpack_zone zone;
        msgpack_object o;
        size_t rlen, off = 0;
        ck_assert_int_eq(forq_future_result(f, (const void **)&res, &rlen), FORQ_OK);
        ck_assert_uint_eq(rlen, len + 2);
        ck_assert_int_eq(res[0], 0x92);
        ck_assert_mem_eq(res + 1, v, len);
        ck_assert_int_eq(res[rlen - 1], 0xc3);
        msgpack_zone_init(&zone, 64);
        ck_assert_int_eq(msgpack_unpack(v, len, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
        ck_assert_int_eq(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        ck_assert_uint_gt(o.via.u64, t);
        msgpack_zone_destroy(&zone);
    }
    free(v);
    forq_future_destroy(&f);
    EXPECT_JSON("ptasks.lock_try", "[\"tl\"]", "true"); /* the task released it */
    EXPECT_JSON("ptasks.stale_fence", "[\"ts\"]", "\"StaleToken\"");
    /* an event a task waits on */
    f = submit_json(c, "ptasks.event_wait", "[\"te\", 20]", NULL);
    wait_waiters(1);
    ck_assert_int_eq(forq_event_set(c, "te", test_ms(5000)), FORQ_OK);
    ASSERT_RESULT(f, "true");
    forq_future_destroy(&f);
    EXPECT_JSON("ptasks.event_wait", "[\"te-unset\", 0.2]", "false");
    EXPECT_JSON("ptasks.event_flip", "[\"tf\"]", "[true,false]");
    /* a value under its lock, as forq.Value's counter */
    EXPECT_JSON("ptasks.value_add", "[\"tv\", 5]", "5");
    EXPECT_JSON("ptasks.value_add", "[\"tv\", 2]", "7");
    ck_assert_int_eq(forq_dict_get(c, "tv", "value", test_ms(5000), &v, &len, NULL), FORQ_OK);
    ck_assert_int_eq(((const char *)v)[0], 7);
    free(v);
    down();
}
END_TEST

START_TEST(test_print_goes_to_the_log_with_the_job_id)
{
    const char *extra[] = {"--log-level", "debug", NULL};
    forq_submit_opts_t o = submit_opts();
    forq_future_t *f;

    up(1, extra);
    o.id = "talk-1";
    f = submit_json(c, "ptasks.talk", "[\"hi\"]", &o);
    ASSERT_RESULT(f, "\"talk-1\"");
    forq_future_destroy(&f);
    ck_assert(forqd_log_has(&d, "debug: job talk-1: said: hi"));
    ck_assert(forqd_log_has(&d, "debug: job talk-1: partial")); /* flushed at the job's end */
    down();
}
END_TEST

/* ---- what is a task ---- */

START_TEST(test_only_declared_functions_are_tasks)
{
    const char *extra[] = {"--python-task", "ptasks:not_a_task", NULL};
    forq_future_t *f;

    up(1, NULL);
    for (int i = 0; i < 3; i++) {
        static const char *const names[] = {"ptasks.not_a_task", "ptasks.os", "ptasks._inner"};
        f = submit_json(c, names[i], "[]", NULL);
        ck_assert_int_eq(wait_state(f, test_ms(10000)), FORQ_STATE_REJECTED);
        ck_assert_str_eq(forq_future_code(f), "unknown_task");
        forq_future_destroy(&f);
    }
    down();
    /* named in the configuration, it is one */
    up(1, extra);
    EXPECT_JSON("ptasks.not_a_task", "[]", "\"reachable\"");
    down();
}
END_TEST

START_TEST(test_import_error_stops_forqd_with_the_traceback)
{
    const char *args[40], *extra[] = {"--python-import", "badimport", NULL};
    char w[16];

    py_args(args, w, sizeof(w), 1, extra);
    ck_assert_int_eq(forqd_start_fail(&d, args), 1);
    ck_assert(forqd_log_has(&d, "python: importing module 'badimport' failed:"));
    ck_assert(forqd_log_has(&d, "Traceback (most recent call last):"));
    ck_assert(forqd_log_has(&d, "badimport.py\", line 5, in helper"));
    ck_assert(forqd_log_has(&d, "ZeroDivisionError: division by zero"));
    ck_assert(forqd_log_has(&d, "forqd: task plugin"));
    ck_assert(forqd_log_has(&d, "fix it, or take it out of the configuration"));
    /* a module that is not there, and a runtime that is not there */
    extra[1] = "no_such_module";
    py_args(args, w, sizeof(w), 1, extra);
    ck_assert_int_eq(forqd_start_fail(&d, args), 1);
    ck_assert(forqd_log_has(&d, "ModuleNotFoundError: No module named 'no_such_module'"));
    const char *none[] = {
        "--workers", "1", "--python-runtime", "/nonexistent/python.so", "--python-import",
        "ptasks",    NULL};
    ck_assert_int_eq(forqd_start_fail(&d, none), 1);
    ck_assert(forqd_log_has(&d, "need the Python runtime /nonexistent/python.so"));
}
END_TEST

START_TEST(test_thread_at_import_is_refused_unless_allowed)
{
    const char *args[40], *extra[] = {"--python-import", "threads_at_import", NULL, NULL};
    char w[16];

    py_args(args, w, sizeof(w), 1, extra);
    ck_assert_int_eq(forqd_start_fail(&d, args), 1);
    ck_assert(forqd_log_has(&d, "importing module 'threads_at_import' started 1 thread(s)"));
    ck_assert(forqd_log_has(&d, "python-allow-threads = yes"));
    extra[2] = "--python-allow-threads";
    py_args(args, w, sizeof(w), 1, extra);
    forqd_start(&d, args);
    c = forqd_client(&d);
    EXPECT_JSON("threads_at_import.alive", "[]", "true");
    ck_assert(forqd_log_has(&d, "python-allow-threads is set"));
    down();
}
END_TEST

/* forqd's Python settings: printed back by --check-config, refused with a reason when wrong. */
START_TEST(test_settings)
{
    char cmd[2048], out[4096];

    snprintf(cmd, sizeof(cmd),
             "%s --config /dev/null --check-config --python-import ptasks --python-task "
             "ptasks:add --python-path %s --python-runtime %s 2>&1",
             env("FORQD"), env("FORQ_PYTHON_TASKS"), env("FORQ_PYTHON_RUNTIME"));
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "\npython-import = ptasks\n"));
    ck_assert_ptr_nonnull(strstr(out, "\npython-task = ptasks:add\n"));
    ck_assert_ptr_nonnull(strstr(out, "\npython-allow-threads = no\n"));
    snprintf(cmd, sizeof(cmd), "%s --config /dev/null --python-task nocolon 2>&1", env("FORQD"));
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "--python-task takes MODULE:FUNCTION"));
    snprintf(cmd, sizeof(cmd), "%s --config /dev/null --python-import 'a b' 2>&1", env("FORQD"));
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "--python-import takes a module name"));
    snprintf(cmd, sizeof(cmd),
             "%s --config /dev/null --check-config --python-import x --python-path /nonexistent "
             "2>&1",
             env("FORQD"));
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "python-path: /nonexistent is not a directory"));
}
END_TEST

/* ---- reload ---- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void reload_and_wait(const char *what)
{
    int before = 0;
    char line[256];
    FILE *f = fopen(d.log, "r");
    /* count what is there already: this reload's line is the next one */
    while (f && fgets(line, sizeof(line), f))
        before += strstr(line, what) != NULL;
    if (f)
        fclose(f);
    kill(d.pid, SIGHUP);
    for (int i = 0; i < test_ms(1000); i++) {
        int now = 0;
        if ((f = fopen(d.log, "r"))) {
            while (fgets(line, sizeof(line), f))
                now += strstr(line, what) != NULL;
            fclose(f);
        }
        if (now > before)
            return;
        usleep(10000);
    }
    ck_abort_msg("the log never said '%s' again", what);
}

START_TEST(test_reload_picks_up_changed_code)
{
    char dir[64], conf[128], mod[128], text[1024];
    const char *args[] = {"--config", conf, NULL};
    forq_future_t *f, *busy;

    temp_dir(dir, sizeof(dir), "forq-pyreload");
    snprintf(conf, sizeof(conf), "%s/forqd.conf", dir);
    snprintf(mod, sizeof(mod), "%s/live.py", dir);
    write_file(mod, "import forq\n\n@forq.task\ndef version():\n    return 1\n");
    /* the configuration file's form of the settings */
    snprintf(text, sizeof(text),
             "[forqd]\nworkers = 1\npython-runtime = %s\npython_path = %s\npython-path = %s\n"
             "python-path = %s\npython-import = live\npython-import = ptasks\n",
             env("FORQ_PYTHON_RUNTIME"), env("FORQ_PYTHON_PKG"), env("FORQ_PYTHON_TASKS"), dir);
    write_file(conf, text);
    forqd_start(&d, args);
    c = forqd_client(&d);
    EXPECT_JSON("live.version", "[]", "1");
    /* a job runs on the old worker through the reload and finishes there */
    busy = submit_json(c, "ptasks.nap", "[0.5]", NULL);
    for (int i = 0; i < test_ms(500) && stat_of(c, "running") == 0; i++)
        usleep(1000);
    write_file(mod, "import forq\n\n@forq.task\ndef version():\n    return 2\n\n"
                    "@forq.task\ndef added():\n    return 'new'\n");
    reload_and_wait("reloaded:");
    ASSERT_RESULT(busy, "0.5");
    forq_future_destroy(&busy);
    EXPECT_JSON("live.version", "[]", "2");
    EXPECT_JSON("live.added", "[]", "\"new\"");
    /* a module that no longer imports: the reload is refused, the code that runs goes on */
    write_file(mod, "import forq\n\nraise RuntimeError('half-edited')\n");
    reload_and_wait("reload refused");
    ck_assert(forqd_log_has(&d, "RuntimeError: half-edited"));
    EXPECT_JSON("live.version", "[]", "2");
    /* the task a module drops is gone after the next good reload */
    write_file(mod, "import forq\n\n@forq.task\ndef version():\n    return 3\n");
    reload_and_wait("reloaded:");
    EXPECT_JSON("live.version", "[]", "3");
    f = submit_json(c, "live.added", "[]", NULL);
    ck_assert_int_eq(wait_state(f, test_ms(10000)), FORQ_STATE_REJECTED);
    forq_future_destroy(&f);
    down();
    snprintf(text, sizeof(text), "rm -rf %s", dir);
    ck_assert_int_eq(system(text), 0);
}
END_TEST

/* ---- volume ---- */

START_TEST(test_many_tiny_python_jobs)
{
    int n = test_quick() ? 1000 : 10000;
    forq_future_t **f = calloc((size_t)n, sizeof(*f));
    char args[32], want[32];

    up(2, NULL);
    for (int i = 0; i < n; i++) {
        snprintf(args, sizeof(args), "[%d]", i);
        f[i] = submit_json(c, "ptasks.square", args, NULL);
    }
    for (int i = 0; i < n; i++) {
        snprintf(want, sizeof(want), "%lld", (long long)i * i);
        ASSERT_RESULT(f[i], want);
        forq_future_destroy(&f[i]);
    }
    free(f);
    ck_assert_int_eq(stat_of(c, "ok"), n);
    down();
}
END_TEST

static int gen_int(void *ud, size_t i, msgpack_packer *pk)
{
    (void)ud;
    msgpack_pack_int64(pk, (int64_t)i);
    return 1;
}

/* divide(12, i): item 0 raises */
static int gen_divide(void *ud, size_t i, msgpack_packer *pk)
{
    (void)ud;
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 12);
    msgpack_pack_int64(pk, (int64_t)i);
    return 1;
}

START_TEST(test_chunked_map_of_a_python_function)
{
    forq_map_opts_t mo;
    forq_map_t *m;
    forq_map_item_t it;
    size_t k = 0;

    up(2, NULL);
    forq_map_opts_init(&mo);
    mo.chunksize = 50;
    ck_assert_int_eq(forq_map_gen(c, "ptasks.square", 1000, gen_int, NULL, &mo, &m), FORQ_OK);
    while (forq_map_next(m, test_ms(30000), &it) == FORQ_OK) {
        msgpack_zone zone;
        msgpack_object o;
        size_t off = 0;
        ck_assert_uint_eq(it.index, k);
        ck_assert_int_eq(it.state, FORQ_STATE_OK);
        msgpack_zone_init(&zone, 64);
        ck_assert_int_eq(msgpack_unpack(it.data, it.len, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
        ck_assert_uint_eq(o.via.u64, (uint64_t)(k * k));
        msgpack_zone_destroy(&zone);
        k++;
    }
    ck_assert_uint_eq(k, 1000);
    ck_assert_int_eq(stat_of(c, "submitted"), 20);
    forq_map_destroy(&m);
    /* an item's exception is that item's error, with its traceback; the rest are ok */
    mo.star = true;
    mo.chunksize = 4;
    ck_assert_int_eq(forq_map_gen(c, "ptasks.divide", 8, gen_divide, NULL, &mo, &m), FORQ_OK);
    k = 0;
    while (forq_map_next(m, test_ms(30000), &it) == FORQ_OK) {
        if (k == 0) {
            ck_assert_int_eq(it.state, FORQ_STATE_ERROR);
            ck_assert_str_eq(it.error_type, "ZeroDivisionError");
            ck_assert_ptr_nonnull(strstr(it.detail, "division by zero\n\nTraceback"));
        } else {
            ck_assert_int_eq(it.state, FORQ_STATE_OK);
        }
        k++;
    }
    ck_assert_uint_eq(k, 8);
    ck_assert_uint_eq(forq_map_failed(m), 1);
    forq_map_destroy(&m);
    down();
}
END_TEST

/* ---- examples/python/tasks: the classic examples' functions ---- */

START_TEST(test_examples_module)
{
    const char *args[40], *extra[] = {"--python-path", env("FORQ_PYTHON_EXAMPLES"),
                                      "--python-import", "classic", NULL};
    char w[16], file[128], json[200];
    int fd;

    py_args(args, w, sizeof(w), 2, extra);
    forqd_start(&d, args);
    c = forqd_client(&d);
    EXPECT_JSON("classic.is_prime", "[10000019]", "true");
    EXPECT_JSON("classic.is_prime", "[10000033]", "false");
    EXPECT_JSON("classic.is_prime", "[10000079]", "true");
    EXPECT_JSON("classic.is_prime", "[10000081]", "false");
    EXPECT_JSON("classic.count_primes", "[[2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]", "5");
    EXPECT_JSON("classic.sum_squares", "[10]", "285");
    EXPECT_JSON("classic.multiply", "[6, 7]", "42");
    EXPECT_JSON("classic.slow_square", "[3, {\"$kw\": {\"delay\": 0.01}}]", "9");
    fd = temp_file(file, sizeof(file), "forq-pyhash");
    ck_assert_int_eq(write(fd, "abc", 3), 3);
    close(fd);
    snprintf(json, sizeof(json), "[\"%s\"]", file);
    forq_future_t *f = submit_json(c, "classic.hash_file", json, NULL);
    snprintf(json, sizeof(json),
             "[\"%s\",\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"]", file);
    ASSERT_RESULT(f, json);
    forq_future_destroy(&f);
    unlink(file);
    EXPECT_ERROR("classic.hash_file", "[\"/nonexistent/file\"]", "FileNotFoundError",
                 "No such file or directory: '/nonexistent/file'");
    down();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pytask");
    TCase *core = tcase_create("core"), *full;
    const char *wrap = getenv("FORQ_TEST_WRAP");
    char *vg = NULL;

    /* under valgrind, forqd's processes that run CPython use its suppressions
     * (python_tasks/valgrind.supp: what libpython allocated and never frees), and memcheck
     * follows forqd into forqd-python, the forkserver image it execs, and its workers */
    if (wrap && strstr(wrap, "valgrind") && getenv("FORQ_PYTHON_TASKS") &&
        asprintf(&vg, "%s --trace-children=yes --suppressions=%s/valgrind.supp", wrap,
                 getenv("FORQ_PYTHON_TASKS")) > 0)
        setenv("FORQ_TEST_WRAP", vg, 1);
    free(vg);
    tcase_set_timeout(core, test_ms(120));
    tcase_add_test(core, test_positional_and_keyword_arguments);
    tcase_add_test(core, test_conversions_in);
    tcase_add_test(core, test_conversions_out);
    tcase_add_test(core, test_exception_with_traceback);
    tcase_add_test(core, test_progress_and_dict_from_a_task);
    tcase_add_test(core, test_shared_types_from_a_task);
    tcase_add_test(core, test_print_goes_to_the_log_with_the_job_id);
    tcase_add_test(core, test_only_declared_functions_are_tasks);
    tcase_add_test(core, test_import_error_stops_forqd_with_the_traceback);
    tcase_add_test(core, test_thread_at_import_is_refused_unless_allowed);
    tcase_add_test(core, test_examples_module);
    tcase_add_test(core, test_settings);
    suite_add_tcase(s, core);
    /* under valgrind (FORQ_TEST_CORE_ONLY) the core cases only: not the segfault (memcheck
     * reports the fault itself), not the volume or the timing-bound cases, not the case that
     * starts CPython in this process (with CK_FORK=no it has libzmq's threads by then) */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return run_suite(s);
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(300));
    tcase_add_test(full, test_segfault_is_crashed_and_the_pool_keeps_serving);
    tcase_add_test(full, test_timeout_kills_a_looping_task);
    tcase_add_test(full, test_cancel_running_python_task);
    tcase_add_test(full, test_max_jobs_per_worker_and_limits);
    tcase_add_test(full, test_reload_picks_up_changed_code);
    tcase_add_test(full, test_many_tiny_python_jobs);
    tcase_add_test(full, test_chunked_map_of_a_python_function);
    suite_add_tcase(s, full);
    return run_suite(s);
}
