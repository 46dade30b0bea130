/* check_pyrt.c - the Python runtime and the plugin ABI in this process, without a forqd: a
 * version 1 plugin's descriptor is read without a byte past its layout and a newer one is
 * refused (task ABI 2, <forq/task.h>); forq.worker.cancelled() in a Python task sees a cancel
 * that names the running job, over a worker link whose other end this test holds. Linked with
 * forqd's modules, whose symbols it exports to the runtime plugin as forqd does. */
#define _GNU_SOURCE
#include "testutil.h"

#include "config.h"
#include "plugins.h"
#include "wire.h"
#include "wlink.h"
#include "worker.h"

#include <check.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *env(const char *name)
{
    const char *v = getenv(name);
    ck_assert_msg(v && *v, "%s is not set (run the tests through meson test)", name);
    return v;
}

/* ---- the plugin ABI: version 1 binaries, version 2 hooks ---- */

/* A version 1 descriptor exactly as a plugin built before version 2 lays it out. */
typedef struct {
    uint32_t abi_version;
    const char *name;
    const forq_task_def_t *tasks;
    int (*init)(void);
    int (*worker_init)(void);
} plugin_v1_t;

static int t_one(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    (void)ctx, (void)args;
    return msgpack_pack_int(out, 1);
}

START_TEST(test_abi_versions)
{
    static const forq_task_def_t defs[] = {{"v1.one", t_one, NULL}, {NULL, NULL, NULL}};
    /* on the heap, no byte beyond the version 1 layout: AddressSanitizer sees any read past */
    plugin_v1_t *v1 = malloc(sizeof(*v1));
    forq_plugin_t v3 = {.abi_version = FORQ_TASK_ABI_VERSION + 1, .name = "v3", .tasks = defs};
    char err[512];

    *v1 = (plugin_v1_t){1, "v1", defs, NULL, NULL};
    ck_assert_int_eq(plugins_register((const forq_plugin_t *)v1, "v1.so", err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(plugins_find("v1.one", 6));
    plugins_before_fork(); /* a version 1 plugin has no fork hooks: nothing to call */
    plugins_after_fork_parent();
    ck_assert_int_lt(plugins_register(&v3, "v3.so", err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "built for task ABI 3, this forqd speaks 1 to 2"), "%s", err);
    /* outside a plugin's load, declaring is refused */
    ck_assert_int_eq(forq_plugin_declare(NULL, "x.y", t_one, NULL), -1);
    ck_assert_ptr_null(forq_plugin_setting(NULL, "python-import", 0));
    plugins_unload_all();
    free(v1);
}
END_TEST

/* ---- forq.worker.cancelled(), in this process over a worker link ---- */

/* Run job `id` of task `task` (no args) with the worker's machinery; its result's first byte. */
static int run_job(const config_t *cfg, wlink_t *l, const char *id, const char *task)
{
    job_spec_t spec = {.job_id = id,
                       .task = task,
                       .task_len = strlen(task),
                       .args = "\x90",
                       .args_len = 1,
                       .max_result = 1 << 20,
                       .link = l};
    job_outcome_t out;
    int r;

    worker_run(cfg, &spec, &out);
    ck_assert_msg(out.ok, "%s: %s", out.etype, out.emsg);
    ck_assert_uint_eq(out.result.size, 1);
    r = (unsigned char)out.result.data[0];
    job_outcome_done(&out);
    return r;
}

static void send_cancel(int fd, const char *id)
{
    wlink_t b;
    msgpack_sbuffer sb;
    wire_hdr_t h = {.cmd = WIRE_CANCEL, .id = wire_str(id)};

    ck_assert_int_eq(wlink_init(&b, dup(fd), 1 << 16), 0);
    msgpack_sbuffer_init(&sb);
    ck_assert_int_eq(wire_hdr_encode(&sb, &h), 0);
    ck_assert_int_eq(wlink_send(&b, sb.data, sb.size, NULL, 0, false), 0);
    msgpack_sbuffer_destroy(&sb);
    wlink_done(&b);
}

START_TEST(test_cancelled_sees_a_cancel_for_the_running_job)
{
    char *argv[] = {"forqd",
                    "--python-runtime",
                    (char *)env("FORQ_PYTHON_RUNTIME"),
                    "--python-path",
                    (char *)env("FORQ_PYTHON_PKG"),
                    "--python-path",
                    (char *)env("FORQ_PYTHON_TASKS"),
                    "--python-import",
                    "ptasks",
                    NULL};
    config_t cfg;
    char err[1024];
    int sv[2];
    wlink_t l;

    ck_assert_int_eq(config_parse(&cfg, 9, argv), 0);
    plugins_set_config(&cfg);
    ck_assert_msg(plugins_load(config_python_runtime(&cfg), err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    ck_assert_int_eq(wlink_init(&l, sv[0], 1 << 20), 0);
    /* nothing sent: False */
    ck_assert_int_eq(run_job(&cfg, &l, "j1", "ptasks.was_cancelled"), 0xc2);
    /* a cancel for another job (one sent ahead): still False, and it is kept for the loop */
    send_cancel(sv[1], "j9");
    ck_assert_int_eq(run_job(&cfg, &l, "j2", "ptasks.was_cancelled"), 0xc2);
    /* a cancel naming the running job: True */
    send_cancel(sv[1], "j3");
    ck_assert_int_eq(run_job(&cfg, &l, "j3", "ptasks.was_cancelled"), 0xc3);
    wlink_done(&l);
    close(sv[1]);
    config_done(&cfg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pyrt");
    TCase *t = tcase_create("core");

    tcase_add_test(t, test_abi_versions);
    /* not under valgrind (FORQ_TEST_CORE_ONLY): the setup's memcheck runs this process without
     * CPython's suppressions; forqd's processes that run CPython are checked there by
     * check_pytask, with them */
    if (!getenv("FORQ_TEST_CORE_ONLY"))
        tcase_add_test(t, test_cancelled_sees_a_cancel_for_the_running_job);
    suite_add_tcase(s, t);
    return run_suite(s);
}
