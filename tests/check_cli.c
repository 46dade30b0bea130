/* check_cli.c - end to end, the forq command line ($FORQ_CLI): its output and the exit codes
 * scripts rely on, against a real forqd on an ipc endpoint in a temporary directory
 * (testutil_e2e.c). */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

/* ---- the CLI ---- */

static int cli(const char *args, char *out, size_t outlen)
{
    char cmd[1024];
    FILE *p;
    size_t n = 0;
    int status;

    snprintf(cmd, sizeof(cmd), "%s -e %s %s 2>/dev/null", getenv("FORQ_CLI"), d.endpoint, args);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    if (out) {
        n = fread(out, 1, outlen - 1, p);
        out[n] = '\0';
        if (n && out[n - 1] == '\n')
            out[n - 1] = '\0';
    } else {
        char junk[4096];
        while (fread(junk, 1, sizeof(junk), p) > 0)
            ;
    }
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_cli_exit_codes)
{
    char out[4096];
    up(1, NULL);
    ck_assert_int_eq(cli("submit count_primes '[1,300000]'", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "25997");
    ck_assert_int_eq(cli("submit is_prime 10000019", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "true");
    ck_assert_int_eq(cli("submit is_prime '\"x\"'", NULL, 0), 1);
    ck_assert_int_eq(cli("submit", NULL, 0), 2);
    ck_assert_int_eq(cli("submit echo '[1,'", NULL, 0), 2);
    ck_assert_int_eq(cli("submit spin --timeout 0.2", NULL, 0), 3);
    ck_assert_int_eq(cli("submit segv", NULL, 0), 5);
    ck_assert_int_eq(cli("submit nothing_like_it", NULL, 0), 6);
    ck_assert_int_eq(cli("submit sleep 5 --wait-timeout 0.1", NULL, 0), 10);
    ck_assert_int_eq(cli("submit sleep 0.1 --no-wait --id cli-job", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "cli-job");
    ck_assert_int_eq(cli("status cli-job", out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"id\":\"cli-job\""));
    ck_assert_int_eq(cli("status nope", NULL, 0), 11);
    ck_assert_int_eq(cli("cancel nope", NULL, 0), 11);
    ck_assert_int_eq(cli("ping", NULL, 0), 0);
    ck_assert_int_eq(cli("status --json", out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"workers\": 1"));
    ck_assert_ptr_nonnull(strstr(out, "\"worker_list\": ["));
    ck_assert_ptr_nonnull(strstr(out, "\"jobs_per_s\""));
    /* the operator's view */
    ck_assert_int_eq(cli("status", out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "forqd " FORQ_TEST_VERSION ", pid "));
    ck_assert_ptr_nonnull(strstr(out, "workers:   1 configured, 1 live"));
    ck_assert_ptr_nonnull(strstr(out, "PID      STATE     JOBS DONE"));
    ck_assert_ptr_nonnull(strstr(out, "jobs:      "));
    ck_assert_ptr_nonnull(strstr(out, " submitted, "));
    ck_assert_int_eq(cli("status --bogus", NULL, 0), 2);
    ck_assert_int_eq(cli("frobnicate", NULL, 0), 2);
    down();
    /* nobody listening */
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "%s -e ipc:///tmp/forq-nobody-%d.sock --connect-timeout 0.2 ping "
             ">/dev/null 2>&1",
             getenv("FORQ_CLI"), (int)getpid());
    int st = system(cmd);
    ck_assert_int_eq(WEXITSTATUS(st), 8);
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *full;

    /* no core case: under valgrind (FORQ_TEST_CORE_ONLY) this suite runs nothing */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(60));
    tcase_add_test(full, test_cli_exit_codes);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(cli_suite());
}
