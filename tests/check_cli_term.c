/* check_cli_term.c - end to end, what `forq submit` and `forq wait` ($FORQ_CLI) show on a
 * terminal (a pseudo-terminal: the job's progress, erased before the result) and do on Ctrl-C
 * and SIGTERM (real signals): cancel the job, or leave it running and say how to find it. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"
#include "testutil_cli.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static forqd_t d;
static forq_client_t *c;

/* submit on a terminal: the progress (done/total, the task's text) shows while it runs, and
 * the result line stands alone. */
START_TEST(test_submit_progress_on_a_terminal)
{
    static const char *const args[] = {"submit", "progress_steps", "[10]", NULL};
    char raw[65536], screen[65536];

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(cli_pty_run(d.endpoint, args, test_ms(20000), raw, sizeof(raw)), 0);
    ck_assert_msg(strstr(raw, "/10 ") && strstr(raw, "step "), "no progress shown: %s", raw);
    term_screen(raw, screen, sizeof(screen));
    ck_assert_msg(strcmp(screen, "10\n") == 0, "the screen shows:\n%s", screen);
    e2e_down(&d, &c);
}
END_TEST

/* wait on a terminal, for a job submitted elsewhere: its progress too. */
START_TEST(test_wait_progress_on_a_terminal)
{
    static const char *const args[] = {"wait", "cli-steps", NULL};
    forq_submit_opts_t so = submit_opts();
    char raw[65536], screen[65536];

    e2e_up(&d, &c, 1, NULL);
    so.id = "cli-steps";
    forq_future_t *f = submit_json(c, "progress_steps", "[10]", &so);
    ck_assert_int_eq(cli_pty_run(d.endpoint, args, test_ms(20000), raw, sizeof(raw)), 0);
    ck_assert_msg(strstr(raw, "/10 ") && strstr(raw, "step "), "no progress shown: %s", raw);
    term_screen(raw, screen, sizeof(screen));
    ck_assert_msg(strcmp(screen, "10\n") == 0, "the screen shows:\n%s", screen);
    forq_future_destroy(&f);
    e2e_down(&d, &c);
}
END_TEST

/* Run `forq <args>` (a job with id `id`), signal it once the job runs (and, for a job that ran
 * already, once forq had time to start waiting); its exit status, and its stderr in err. */
static int signal_while_running(const char *const *args, const char *id, int sig, char *err,
                                size_t errlen)
{
    char errpath[300];
    int err_fd = temp_file(errpath, sizeof(errpath), "forq-term-err"), rc;
    pid_t pid = cli_spawn(d.endpoint, args, -1, -1, err_fd);

    forq_job_info_t info;
    bool ran =
        forq_client_status(c, id, 5000, &info) == FORQ_OK && info.state == FORQ_STATE_RUNNING;

    close(err_fd);
    wait_running(c, id);
    if (ran)
        usleep((useconds_t)test_ms(700) * 1000);
    kill(pid, sig);
    rc = cli_wait_exit(pid, test_ms(10000));
    read_file(errpath, err, errlen);
    unlink(errpath);
    return rc;
}

/* The job's state once it settled: a cancelled job is "running" until its worker is gone. */
static forq_state_t state_of(const char *id)
{
    forq_job_info_t info;
    for (int i = 0; i < test_ms(200); i++) {
        ck_assert_int_eq(forq_client_status(c, id, 5000, &info), FORQ_OK);
        if (info.state != FORQ_STATE_RUNNING)
            break;
        usleep(10000);
    }
    return info.state;
}

static forq_state_t state_of_now(const char *id)
{
    forq_job_info_t info;
    ck_assert_int_eq(forq_client_status(c, id, 5000, &info), FORQ_OK);
    return info.state;
}

/* Ctrl-C on a waiting submit cancels the job (it ran on, out of reach, before); SIGTERM too. */
START_TEST(test_submit_interrupt_cancels)
{
    static const char *const args[] = {"submit", "sleep", "[30]", "--id", "cli-int", NULL};
    static const char *const args2[] = {"submit", "sleep", "[30]", "--id", "cli-term", NULL};
    char err[4096];
    int rc;

    e2e_up(&d, &c, 1, NULL);
    rc = signal_while_running(args, "cli-int", SIGINT, err, sizeof(err));
    ck_assert_msg(rc == 130, "forq exited %d: %s", rc, err);
    ck_assert_msg(strstr(err, "interrupted: job cli-int cancelled"), "%s", err);
    ck_assert_int_eq(state_of("cli-int"), FORQ_STATE_CANCELLED);
    rc = signal_while_running(args2, "cli-term", SIGTERM, err, sizeof(err));
    ck_assert_msg(rc == 130, "forq exited %d: %s", rc, err);
    ck_assert_int_eq(state_of("cli-term"), FORQ_STATE_CANCELLED);
    e2e_down(&d, &c);
}
END_TEST

/* --detach-on-interrupt: the job goes on, and forq says how to reach it. */
START_TEST(test_submit_interrupt_detaches)
{
    static const char *const args[] = {
        "submit", "sleep", "[30]", "--id", "cli-det", "--detach-on-interrupt", NULL};
    static const char *const wait_args[] = {"wait", "cli-det", NULL};
    char err[4096];
    int rc;

    e2e_up(&d, &c, 1, NULL);
    rc = signal_while_running(args, "cli-det", SIGINT, err, sizeof(err));
    ck_assert_msg(rc == 130, "forq exited %d: %s", rc, err);
    ck_assert_str_eq(err, "forq: job cli-det goes on: forq wait cli-det / forq cancel cli-det\n");
    ck_assert_int_eq(state_of_now("cli-det"), FORQ_STATE_RUNNING);
    /* Ctrl-C on forq wait stops the wait, not the job */
    rc = signal_while_running(wait_args, "cli-det", SIGINT, err, sizeof(err));
    ck_assert_msg(rc == 130, "forq wait exited %d: %s", rc, err);
    ck_assert_msg(strstr(err, "job cli-det goes on: forq wait cli-det / forq cancel cli-det"), "%s",
                  err);
    ck_assert_int_eq(state_of_now("cli-det"), FORQ_STATE_RUNNING);
    forq_cancel_t out; /* not left for forqd's stop to wait its grace period for */
    ck_assert_int_eq(forq_client_cancel(c, "cli-det", 5000, &out), FORQ_OK);
    e2e_down(&d, &c);
}
END_TEST

static Suite *cli_term_suite(void)
{
    Suite *s = suite_create("cli_term");
    TCase *full;

    /* no core case: under valgrind (FORQ_TEST_CORE_ONLY) this suite runs nothing */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(60));
    tcase_add_test(full, test_submit_progress_on_a_terminal);
    tcase_add_test(full, test_wait_progress_on_a_terminal);
    tcase_add_test(full, test_submit_interrupt_cancels);
    tcase_add_test(full, test_submit_interrupt_detaches);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(cli_term_suite());
}
