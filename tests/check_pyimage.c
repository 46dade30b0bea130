/* check_pyimage.c - end to end, the forkserver image of Python tasks (forkserver.h,
 * daemon/python/pyfs_main.c): forqd runs forqd-python when it is beside the runtime python.so,
 * loads python.so into its own forkserver when it is not, and refuses, saying what to do, an
 * image it cannot run or one from another build. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static forqd_t d;
static forq_client_t *c;
static char dir[64]; /* a runtime directory of the test's own: python.so and maybe an image */
static char runtime[320];

static const char *env(const char *name)
{
    const char *v = getenv(name);
    ck_assert_msg(v && *v, "%s is not set (run the tests through meson test)", name);
    return v;
}

/* forqd's arguments: the runtime `rt`, the test module. */
static void args_for(const char **args, const char *rt)
{
    const char *a[] = {"--workers",
                       "1",
                       "--python-runtime",
                       rt,
                       "--python-path",
                       env("FORQ_PYTHON_PKG"),
                       "--python-path",
                       env("FORQ_PYTHON_TASKS"),
                       "--python-import",
                       "ptasks",
                       NULL};
    memcpy(args, a, sizeof(a));
}

/* The build tree's forqd-python (beside $FORQ_PYTHON_RUNTIME), into buf; false if not built. */
static bool built_image(char *buf, size_t size)
{
    const char *rt = env("FORQ_PYTHON_RUNTIME");
    snprintf(buf, size, "%.*sforqd-python", (int)(strrchr(rt, '/') + 1 - rt), rt);
    return access(buf, X_OK) == 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, mode), 0);
}

/* A directory with a copy of python.so and nothing else. */
static void setup(void)
{
    char cmd[1024];

    /* mkdtemp's template: the prefix, then the six 'X' it replaces */
    size_t n = (size_t)snprintf(dir, sizeof(dir), "/tmp/forq-pyimage-");
    memset(dir + n, 'X', 6);
    dir[n + 6] = '\0';
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(runtime, sizeof(runtime), "%s/python.so", dir);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", env("FORQ_PYTHON_RUNTIME"), runtime);
    ck_assert_int_eq(system(cmd), 0);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "check_pyimage: could not remove %s\n", dir);
}

/* The program a worker runs (/proc/self/exe), as JSON. */
static char *worker_image(void)
{
    forq_future_t *f = submit_json(c, "ptasks.image", "[]", NULL);
    char *got = result_json(f, test_ms(30000));
    ck_assert_msg(got, "ptasks.image: %s", forq_future_detail(f));
    forq_future_destroy(&f);
    return got;
}

static void serves_add(void)
{
    forq_future_t *f = submit_json(c, "ptasks.add", "[2, 3]", NULL);
    ASSERT_RESULT(f, "5");
    forq_future_destroy(&f);
}

START_TEST(test_image_beside_the_runtime_is_the_forkserver)
{
    char image[4096], *got;
    const char *args[16];

    if (!built_image(image, sizeof(image)))
        return; /* built without a static libpython: nothing to run */
    args_for(args, env("FORQ_PYTHON_RUNTIME"));
    forqd_start(&d, args);
    c = forqd_client(&d);
    got = worker_image();
    ck_assert_msg(strstr(got, "/forqd-python\""), "the worker runs %s, not %s", got, image);
    free(got);
    serves_add();
    ck_assert(!forqd_log_has(&d, "no forqd-python beside"));
    e2e_down(&d, &c);
}
END_TEST

START_TEST(test_without_the_image_forqd_loads_python_so)
{
    const char *args[16];
    char *got;

    args_for(args, runtime);
    forqd_start(&d, args);
    c = forqd_client(&d);
    got = worker_image();
    ck_assert_msg(!strstr(got, "forqd-python"), "the worker runs %s", got);
    free(got);
    serves_add();
    ck_assert(forqd_log_has(&d, "no forqd-python beside"));
    e2e_down(&d, &c);
}
END_TEST

/* Before: "the forkserver died during start-up", naming nothing. */
START_TEST(test_an_image_that_cannot_run_is_named)
{
    const char *args[16];
    char image[400];

    snprintf(image, sizeof(image), "%s/forqd-python", dir);
    write_file(image, "not a program\n", 0755);
    args_for(args, runtime);
    ck_assert_int_eq(forqd_start_fail(&d, args), 1);
    ck_assert_msg(forqd_log_has(&d, "cannot run the forkserver") && forqd_log_has(&d, image) &&
                      forqd_log_has(&d, "it is not a program this machine runs") &&
                      forqd_log_has(&d, "remove that file so that forqd loads python.so"),
                  "see %s", d.log);
}
END_TEST

START_TEST(test_an_image_from_another_build_is_refused)
{
    const char *args[16];
    char real[4096], image[400], script[4400];

    if (!built_image(real, sizeof(real)))
        return;
    /* the real image, told that its forqd is another build */
    snprintf(image, sizeof(image), "%s/forqd-python", dir);
    snprintf(script, sizeof(script),
             "#!/bin/sh\nFORQ_FORKSERVER_BUILD=0.0.0-other exec '%s' \"$@\"\n", real);
    write_file(image, script, 0755);
    args_for(args, runtime);
    ck_assert_int_eq(forqd_start_fail(&d, args), 1);
    ck_assert_msg(forqd_log_has(&d, "forqd from build 0.0.0-other") &&
                      forqd_log_has(&d, "restart forqd, or reinstall forq"),
                  "see %s", d.log);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pyimage");
    TCase *core = tcase_create("core");
    const char *wrap = getenv("FORQ_TEST_WRAP");
    char *vg = NULL;

    /* under valgrind, as check_pytask: CPython's suppressions, and into forqd-python */
    if (wrap && strstr(wrap, "valgrind") && getenv("FORQ_PYTHON_TASKS") &&
        asprintf(&vg, "%s --trace-children=yes --suppressions=%s/valgrind.supp", wrap,
                 getenv("FORQ_PYTHON_TASKS")) > 0)
        setenv("FORQ_TEST_WRAP", vg, 1);
    free(vg);

    tcase_set_timeout(core, test_ms(120));
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_image_beside_the_runtime_is_the_forkserver);
    tcase_add_test(core, test_without_the_image_forqd_loads_python_so);
    tcase_add_test(core, test_an_image_that_cannot_run_is_named);
    tcase_add_test(core, test_an_image_from_another_build_is_refused);
    suite_add_tcase(s, core);
    return run_suite(s);
}
