#define _GNU_SOURCE
/* check_tasks.c - the built-in tasks and the worker's job runner, without a daemon: results,
 * every kind of bad argument (an error result, never a crash), limits, exec's allow list. */
#include "json_mp.h"
#include "plugins.h"
#include "task_ctx.h"
#include "testutil.h"
#include "worker.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static config_t cfg;

static void setup(void)
{
    char err[256];
    memset(&cfg, 0, sizeof(cfg));
    cfg.max_payload = 1 << 20;
    ck_assert_int_eq(plugins_register(&builtin_plugin, "builtin", err, sizeof(err)), 0);
}

static void teardown(void)
{
    plugins_unload_all();
}

/* Run a job on raw msgpack args. */
static void run_raw(const char *task, const void *args, size_t len, size_t max_result, bool chunk,
                    job_outcome_t *out)
{
    job_spec_t spec = {.job_id = "job-1",
                       .task = task,
                       .task_len = strlen(task),
                       .args = args,
                       .args_len = len,
                       .max_result = max_result,
                       .chunk = chunk};
    worker_run(&cfg, &spec, out);
}

/* Run task on JSON args (a chunk when `chunk`); returns the result as JSON, or
 * "Type: message" for an error. */
static char *run_json(const char *task, const char *json, bool chunk)
{
    json_error_t jerr;
    json_t *j = json_loads(json, JSON_DECODE_ANY, &jerr);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    job_outcome_t out;
    char err[128], *s;

    ck_assert_msg(j != NULL, "bad JSON in test: %s", json);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(json_to_msgpack(j, &pk, err, sizeof(err)), 0);
    json_decref(j);
    run_raw(task, sb.data, sb.size, (size_t)cfg.max_payload, chunk, &out);
    msgpack_sbuffer_destroy(&sb);
    if (out.ok) {
        msgpack_zone zone;
        msgpack_object o;
        size_t off = 0;
        msgpack_zone_init(&zone, 1024);
        ck_assert_int_eq(msgpack_unpack(out.result.data, out.result.size, &off, &zone, &o),
                         MSGPACK_UNPACK_SUCCESS);
        json_t *r = msgpack_to_json(&o);
        s = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(r);
        msgpack_zone_destroy(&zone);
    } else {
        ck_assert_int_eq(out.result.size, 0);
        if (asprintf(&s, "%s: %s", out.etype, out.emsg) < 0)
            s = NULL;
    }
    job_outcome_done(&out);
    return s;
}

static char *run(const char *task, const char *json)
{
    return run_json(task, json, false);
}

#define CHECK_RUN(task, args, expect)                                                              \
    do {                                                                                           \
        char *got_ = run(task, args);                                                              \
        ck_assert_msg(got_ &&strcmp(got_, expect) == 0, "%s(%s): got '%s', want '%s'", task, args, \
                      got_, expect);                                                               \
        free(got_);                                                                                \
    } while (0)

/* The error type of a run, with the message checked to be non-empty. */
#define CHECK_ERR(task, args, type)                                                                \
    do {                                                                                           \
        char *got_ = run(task, args);                                                              \
        ck_assert_msg(got_ &&strncmp(got_, type ": ", strlen(type) + 2) == 0 &&                    \
                          strlen(got_) > strlen(type) + 2,                                         \
                      "%s(%s): got '%s', want a %s", task, args, got_, type);                      \
        free(got_);                                                                                \
    } while (0)

START_TEST(test_echo)
{
    CHECK_RUN("echo", "[1,\"a\",{\"k\":[true,null,1.5]}]", "[1,\"a\",{\"k\":[true,null,1.5]}]");
    CHECK_RUN("echo", "42", "42");
    CHECK_RUN("echo", "{\"$base64\":\"AAEC\"}", "{\"$base64\":\"AAEC\"}");
}
END_TEST

START_TEST(test_primes)
{
    CHECK_RUN("count_primes", "[1,300000]", "25997");
    CHECK_RUN("count_primes", "[0,10]", "4");
    CHECK_RUN("count_primes", "[10,0]", "0");
    CHECK_RUN("is_prime", "[10000019]", "true");
    CHECK_RUN("is_prime", "[10000033]", "false"); /* 397 * 25189 */
    CHECK_RUN("is_prime", "[10000079]", "true");
    CHECK_RUN("is_prime", "[10000081]", "false");
    CHECK_RUN("is_prime", "2", "true");
    CHECK_RUN("is_prime", "[1]", "false");
    CHECK_RUN("is_prime", "[-7]", "false");
    CHECK_ERR("is_prime", "[\"7\"]", "TypeError");
    CHECK_ERR("is_prime", "[]", "TypeError");
    CHECK_ERR("is_prime", "[1,2]", "TypeError");
    CHECK_ERR("is_prime", "[1.5]", "TypeError");
    CHECK_ERR("count_primes", "[1]", "TypeError");
    CHECK_ERR("count_primes", "[-1,5]", "ValueError");
}
END_TEST

START_TEST(test_sum_squares)
{
    CHECK_RUN("sum_squares", "[1000]", "332833500");
    CHECK_RUN("sum_squares", "[0]", "0");
    CHECK_ERR("sum_squares", "[-1]", "ValueError");
    CHECK_ERR("sum_squares", "[100000000]", "OverflowError");
    CHECK_ERR("sum_squares", "[null]", "TypeError");
}
END_TEST

START_TEST(test_sleep)
{
    CHECK_RUN("sleep", "[0.01]", "null");
    CHECK_RUN("sleep", "0", "null");
    CHECK_ERR("sleep", "[-1]", "ValueError");
    CHECK_ERR("sleep", "[\"x\"]", "TypeError");
}
END_TEST

START_TEST(test_sha256)
{
    char path[64];
    char args[128];
    int fd = temp_file(path, sizeof(path), "forq-sha");

    CHECK_RUN("sha256", "[\"abc\"]",
              "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"");
    CHECK_RUN("sha256", "[{\"$base64\":\"YWJj\"}]",
              "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"");
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "abc", 3), 3);
    close(fd);
    snprintf(args, sizeof(args), "[{\"path\":\"%s\"}]", path);
    CHECK_RUN("sha256", args,
              "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"");
    unlink(path);
    CHECK_ERR("sha256", args, "FileNotFoundError");
    CHECK_ERR("sha256", "[{\"file\":\"x\"}]", "TypeError");
    CHECK_ERR("sha256", "[{\"path\":5}]", "TypeError");
    CHECK_ERR("sha256", "[5]", "TypeError");
    CHECK_ERR("sha256", "[{\"path\":\"/\"}]", "OSError");
}
END_TEST

START_TEST(test_exec)
{
    char *allow[] = {"cat", "sh"};

    /* disabled: no program allowed */
    CHECK_ERR("exec", "[{\"argv\":[\"cat\"]}]", "PermissionError");
    cfg.exec_allow.items = allow;
    cfg.exec_allow.n = 2;
    CHECK_RUN("exec", "[{\"argv\":[\"cat\"],\"stdin\":\"hi\\n\"}]",
              "{\"exit_code\":0,\"signal\":null,\"stdout\":\"hi\\n\",\"stderr\":\"\"}");
    CHECK_RUN("exec",
              "{\"argv\":[\"sh\",\"-c\",\"echo $X; echo e >&2; exit 3\"],"
              "\"env\":{\"X\":\"val\"}}",
              "{\"exit_code\":3,\"signal\":null,\"stdout\":\"val\\n\",\"stderr\":\"e\\n\"}");
    CHECK_RUN("exec", "{\"argv\":[\"sh\",\"-c\",\"kill -9 $$\"]}",
              "{\"exit_code\":null,\"signal\":9,\"stdout\":\"\",\"stderr\":\"\"}");
    CHECK_RUN("exec", "{\"argv\":[\"sh\",\"-c\",\"pwd\"],\"cwd\":\"/tmp\"}",
              "{\"exit_code\":0,\"signal\":null,\"stdout\":\"/tmp\\n\",\"stderr\":\"\"}");
    CHECK_ERR("exec", "{\"argv\":[\"ls\"]}", "PermissionError");
    CHECK_ERR("exec", "{\"argv\":[]}", "TypeError");
    CHECK_ERR("exec", "{\"argv\":\"cat\"}", "TypeError");
    CHECK_ERR("exec", "{\"argv\":[\"cat\"],\"bogus\":1}", "TypeError");
    CHECK_ERR("exec", "{\"argv\":[\"cat\"],\"env\":{\"A=B\":\"c\"}}", "TypeError");
    CHECK_ERR("exec", "{\"argv\":[\"cat\"],\"cwd\":\"/nonexistent\"}", "FileNotFoundError");
    char *got = run("exec", "{\"argv\":[\"cat\"],\"cwd\":\"/nonexistent\"}");
    ck_assert_ptr_nonnull(strstr(got, "directory '/nonexistent'"));
    free(got);
    CHECK_ERR("exec", "[1]", "TypeError");
    /* output past the result limit */
    cfg.max_payload = 1000;
    CHECK_ERR("exec", "{\"argv\":[\"sh\",\"-c\",\"head -c 100000 /dev/zero\"]}", "OutputTooLarge");
    cfg.exec_allow.n = 0;
    cfg.exec_allow.items = NULL;
}
END_TEST

START_TEST(test_runner_errors)
{
    job_outcome_t out;

    CHECK_ERR("no_such_task", "[]", "UnknownTask");
    /* args that are not one msgpack value */
    run_raw("echo", "\xdd\xff\xff\xff\xff", 5, 1000, false, &out);
    ck_assert(!out.ok);
    ck_assert_str_eq(out.etype, "ValueError");
    job_outcome_done(&out);
    run_raw("echo", "\xc0\xc0", 2, 1000, false, &out);
    ck_assert(!out.ok);
    job_outcome_done(&out);
    /* an integer beyond int64 (JSON cannot write it): [uint64 max] */
    run_raw("is_prime", "\x91\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 10, 1000, false, &out);
    ck_assert(!out.ok);
    ck_assert_str_eq(out.etype, "OverflowError");
    job_outcome_done(&out);
    /* result larger than the job's limit */
    run_raw("echo", "\xa5hello", 6, 3, false, &out);
    ck_assert(!out.ok);
    ck_assert_str_eq(out.etype, "ResultTooLarge");
    job_outcome_done(&out);
}
END_TEST

START_TEST(test_chunks)
{
    char *got;
    /* one entry per call, in order; an item's error does not stop the others */
    got = run_json("is_prime", "[[7],[8],[\"x\"],9973,[]]", true);
    ck_assert_ptr_nonnull(got);
    ck_assert_msg(strncmp(got, "[[0,true],[0,false],[1,\"TypeError\",", 35) == 0, "%s", got);
    ck_assert_ptr_nonnull(strstr(got, "[0,true],[1,\"TypeError\","));
    free(got);
    got = run_json("echo", "[]", true);
    ck_assert_str_eq(got, "[]");
    free(got);
    got = run_json("echo", "7", true);
    ck_assert_ptr_nonnull(strstr(got, "TypeError: a chunk job's args must be an array"));
    free(got);
    /* the limit covers the whole chunk */
    job_outcome_t out;
    run_raw("echo",
            "\x92\xa3"
            "abc\xa3"
            "def",
            9, 8, true, &out);
    ck_assert(!out.ok);
    ck_assert_str_eq(out.etype, "ResultTooLarge");
    job_outcome_done(&out);
}
END_TEST

START_TEST(test_registry)
{
    static const forq_task_def_t dup[] = {{"echo", NULL, NULL}, {NULL, NULL, NULL}};
    static const forq_plugin_t p_dup = {FORQ_TASK_ABI_VERSION, "dup", dup, NULL, NULL};
    static const forq_plugin_t p_abi = {99, "abi", dup, NULL, NULL};
    char err[256];

    ck_assert_ptr_nonnull(plugins_find("count_primes", 12));
    ck_assert_ptr_null(plugins_find("count", 5));
    ck_assert_int_lt(plugins_register(&p_dup, "dup.so", err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "dup.so"));
    ck_assert_int_lt(plugins_register(&p_abi, "abi.so", err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "ABI"));
    ck_assert_int_lt(plugins_load("/nonexistent.so", err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent.so"));
}
END_TEST

static Suite *tasks_suite(void)
{
    Suite *s = suite_create("tasks");
    TCase *tc = tcase_create("builtin");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_echo);
    tcase_add_test(tc, test_primes);
    tcase_add_test(tc, test_sum_squares);
    tcase_add_test(tc, test_sleep);
    tcase_add_test(tc, test_sha256);
    tcase_add_test(tc, test_exec);
    tcase_add_test(tc, test_runner_errors);
    tcase_add_test(tc, test_chunks);
    tcase_add_test(tc, test_registry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(tasks_suite());
}
