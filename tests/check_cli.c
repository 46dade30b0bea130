/* check_cli.c - end to end, the forq command line ($FORQ_CLI): its output and the exit codes
 * scripts rely on, against a real forqd on an ipc endpoint in a temporary directory
 * (testutil_e2e.c). */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"

#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

static long ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* No forqd at an ipc endpoint: forq says so at once, not after the connect timeout and a
 * linger (it took 7 s with the default 5 s timeout). */
START_TEST(test_cli_missing_socket)
{
    char dir[256], cmd[1024], out[4096];
    const char *const cmds[] = {"ping", "submit echo '[1]'", "status"};
    struct timespec t0;

    temp_dir(dir, sizeof(dir), "forq-cli");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        snprintf(cmd, sizeof(cmd), "%s -e ipc://%s/forqd.sock %s 2>&1", getenv("FORQ_CLI"), dir,
                 cmds[i]);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ck_assert_int_eq(sh(cmd, out, sizeof(out)), 8);
        ck_assert_msg(ms_since(&t0) < 1000, "forq %s took %ld ms", cmds[i], ms_since(&t0));
        ck_assert_msg(strstr(out, "the socket file does not exist") && strstr(out, dir) &&
                          strstr(out, "FORQ_ENDPOINT") &&
                          strchr(out, '\n') == out + strlen(out) - 1, /* one line */
                      "forq %s said: %s", cmds[i], out);
    }
    rmdir(dir);
}
END_TEST

/* Run the CLI with `args` (NULL-terminated) in the background, stderr to `err_fd`. */
static pid_t cli_spawn(const char *const *args, int err_fd)
{
    const char *argv[32];
    int n = 0;
    pid_t pid;

    argv[n++] = getenv("FORQ_CLI");
    argv[n++] = "-e";
    argv[n++] = d.endpoint;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(err_fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Wait up to ms for pid; its exit status, or -1 (then it is killed). */
static int wait_exit(pid_t pid, int ms)
{
    int status;
    for (int i = 0; i < ms / 10; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/* forqd dies and stays down while forq submit waits: the job is lost after --lost-after, not
 * waited for for ever. */
START_TEST(test_cli_lost_after)
{
    static const char *const args[] = {"--lost-after", "1",    "submit",   "sleep",
                                       "[30]",         "--id", "cli-lost", NULL};
    char errpath[256], err[4096];
    int fd, rc;
    pid_t pid;
    FILE *f;

    up(1, NULL);
    fd = temp_file(errpath, sizeof(errpath), "forq-cli-err");
    pid = cli_spawn(args, fd);
    close(fd);
    wait_running(c, "cli-lost");
    forq_client_destroy(&c);
    e2e_kill(&d);
    rc = wait_exit(pid, test_ms(15000));
    f = fopen(errpath, "r");
    err[fread(err, 1, sizeof(err) - 1, f)] = '\0';
    fclose(f);
    unlink(errpath);
    ck_assert_msg(rc == 7, "forq exited %d: %s", rc, err);
    ck_assert_msg(strstr(err, "job cli-lost lost") && strstr(err, "unreachable"), "%s", err);
    forqd_stop(&d);
}
END_TEST

/* The same on a terminal: after 2 s forq says, once, that it waits for forqd to come back. */
START_TEST(test_cli_waiting_notice)
{
    static const char *const args[] = {"--lost-after", "5",    "submit",  "sleep",
                                       "[30]",         "--id", "cli-pty", NULL};
    char out[8192], want[400];
    size_t n = 0;
    int master, slave, rc = -1, status;
    pid_t pid;

    up(1, NULL);
    ck_assert_int_eq(openpty(&master, &slave, NULL, NULL, NULL), 0);
    pid = cli_spawn(args, slave);
    close(slave);
    wait_running(c, "cli-pty");
    forq_client_destroy(&c);
    e2e_kill(&d);
    /* by the clock, not by turns: a turn with output to read takes no time */
    struct timespec now, until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += test_ms(20000) / 1000;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (rc >= 0 || now.tv_sec > until.tv_sec ||
            (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec))
            break;
        struct pollfd pf = {master, POLLIN, 0};
        if (poll(&pf, 1, 10) > 0) {
            ssize_t r = read(master, out + n, sizeof(out) - 1 - n);
            if (r > 0)
                n += (size_t)r;
        }
        if (waitpid(pid, &status, WNOHANG) == pid)
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    out[n] = '\0';
    close(master);
    if (rc < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    snprintf(want, sizeof(want), "waiting for forqd at %s to come back", d.endpoint);
    ck_assert_msg(strstr(out, want), "no notice on the terminal: %s", out);
    ck_assert_msg(!strstr(strstr(out, want) + 1, want), "told more than once: %s", out);
    ck_assert_msg(rc == 7, "forq exited %d: %s", rc, out);
    forqd_stop(&d);
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
    tcase_add_test(full, test_cli_missing_socket);
    tcase_add_test(full, test_cli_lost_after);
    tcase_add_test(full, test_cli_waiting_notice);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(cli_suite());
}
