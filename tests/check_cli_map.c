/* check_cli_map.c - end to end, `forq map` ($FORQ_CLI) against a real forqd: output line N
 * answers input line N, a rejection stops the map at once, Ctrl-C (a real SIGINT) cancels its
 * jobs and keeps what was done, and the progress bar on a pseudo-terminal never ends up inside
 * a result line. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"
#include "testutil_cli.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static forqd_t d;
static forq_client_t *c;

static long ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Write `text` to a new file in forqd's directory; its path into path. */
static void input_file(const char *name, const char *text, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", d.dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Output line N answers input line N: a blank line and a line that is not JSON are $error
 * items in their place, and the map goes on past them (it stopped at the first bad line, and
 * skipped blank ones, shifting every later answer). */
START_TEST(test_map_line_for_line)
{
    char path[400], args[600], out[8192], err[8192];

    e2e_up(&d, &c, 2, NULL);
    input_file("in.jsonl", "1\n\nhello\n7\n[2,\n4\n\n", path, sizeof(path));
    snprintf(args, sizeof(args), "map is_prime --chunksize 2 --input %s", path);
    ck_assert_int_eq(cli_run(d.endpoint, args, out, sizeof(out), err, sizeof(err)), 1);
    const char *want[] = {"false",
                          "{\"$error\":{\"index\":1,\"state\":\"invalid\"",
                          "{\"$error\":{\"index\":2,\"state\":\"invalid\"",
                          "true",
                          "{\"$error\":{\"index\":4,\"state\":\"invalid\"",
                          "false",
                          "{\"$error\":{\"index\":6,\"state\":\"invalid\""};
    char *line = out, *nl;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ck_assert_msg(line && (nl = strchr(line, '\n')), "line %zu missing: %s", i + 1, out);
        *nl = '\0';
        ck_assert_msg(strncmp(line, want[i], strlen(want[i])) == 0, "line %zu is %s, want %s",
                      i + 1, line, want[i]);
        line = nl + 1;
    }
    ck_assert_msg(*line == '\0', "more lines than input lines: %s", line);
    ck_assert_msg(strstr(err, "input line 2 is blank") && strstr(err, "input line 3 is not JSON") &&
                      strstr(err, "4 of 7 items failed"),
                  "%s", err);
    /* the message says what is wrong with the line, without the next line's position */
    ck_assert_msg(strstr(err, "input line 5 is not JSON (']' expected near end of file)"), "%s",
                  err);
    /* unordered: [index, result] with the same indexes */
    snprintf(args, sizeof(args), "map is_prime --unordered --chunksize 1 --input %s | sort", path);
    ck_assert_int_eq(cli_run(d.endpoint, args, out, sizeof(out), NULL, 0), 0);
    ck_assert_msg(strstr(out, "[0,false]\n") && strstr(out, "[1,{\"$error\":{\"index\":1,") &&
                      strstr(out, "[2,{\"$error\":{\"index\":2,") && strstr(out, "[3,true]\n") &&
                      strstr(out, "[5,false]\n") && strstr(out, "[6,{\"$error\":{\"index\":6,"),
                  "%s", out);
    /* --skip-blank: no output line for a blank one */
    snprintf(args, sizeof(args), "map is_prime --skip-blank <<'EOF'\n2\n\n4\nEOF\n");
    ck_assert_int_eq(cli_run(d.endpoint, args, out, sizeof(out), NULL, 0), 0);
    ck_assert_str_eq(out, "true\nfalse\n");
    /* one failure, in the singular */
    ck_assert_int_eq(
        cli_run(d.endpoint, "map is_prime <<'EOF'\n\"x\"\nEOF\n", NULL, 0, err, sizeof(err)), 1);
    ck_assert_msg(strstr(err, "forq: 1 of 1 item failed"), "%s", err);
    e2e_down(&d, &c);
}
END_TEST

/* An unknown task fails fast: one message and exit 6, not one $error line per item. */
START_TEST(test_map_rejected_fails_fast)
{
    char out[8192], err[8192], path[400], args[600];
    static char lines[700000];
    struct timespec t0;
    size_t n = 0;

    e2e_up(&d, &c, 1, NULL);
    for (int i = 1; i <= 100000; i++)
        n += (size_t)snprintf(lines + n, sizeof(lines) - n, "%d\n", i);
    input_file("many.jsonl", lines, path, sizeof(path));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(
        cli_run(d.endpoint, "map nothing_like_it < /dev/null", out, sizeof(out), err, sizeof(err)),
        0); /* no items: nothing to reject */
    snprintf(args, sizeof(args), "map nothing_like_it --chunksize 10 < %s", path);
    ck_assert_int_eq(cli_run(d.endpoint, args, out, sizeof(out), err, sizeof(err)), 6);
    ck_assert_str_eq(out, "");
    ck_assert_msg(strstr(err, "forqd has no task 'nothing_like_it'") &&
                      strchr(err, '\n') == err + strlen(err) - 1,
                  "not one line: %s", err);
    ck_assert_msg(ms_since(&t0) < test_ms(10000), "took %ld ms", ms_since(&t0));
    e2e_down(&d, &c);
}
END_TEST

/* Ctrl-C: the map's jobs are cancelled in forqd (the workers are free at once), the results
 * that were done are printed in order, and forq says how far it got and exits 130. */
START_TEST(test_map_interrupt)
{
    char in[400], outpath[300], errpath[300], out[4096], err[4096];
    int out_fd, err_fd, rc;
    pid_t pid;
    const char *args[] = {"map", "sleep", "--chunksize", "1", "--window", "2", "--input", in, NULL};

    e2e_up(&d, &c, 2, NULL);
    input_file("naps.jsonl", "0.01\n0.01\n30\n30\n30\n30\n", in, sizeof(in));
    out_fd = temp_file(outpath, sizeof(outpath), "forq-map-out");
    err_fd = temp_file(errpath, sizeof(errpath), "forq-map-err");
    pid = cli_spawn(d.endpoint, args, -1, out_fd, err_fd);
    close(out_fd);
    close(err_fd);
    /* both workers busy with the 30 s naps, the two short ones done */
    for (int i = 0; i < test_ms(1000) && (stat_of(c, "workers_busy") < 2 || stat_of(c, "ok") < 2);
         i++)
        usleep(10000);
    ck_assert_int_eq(stat_of(c, "workers_busy"), 2);
    kill(pid, SIGINT);
    rc = cli_wait_exit(pid, test_ms(10000));
    read_file(outpath, out, sizeof(out));
    read_file(errpath, err, sizeof(err));
    unlink(outpath);
    unlink(errpath);
    ck_assert_msg(rc == 130, "forq map exited %d: %s", rc, err);
    ck_assert_str_eq(out, "null\nnull\n");
    ck_assert_msg(strstr(err, "forq: interrupted: 2 of 6 items done"), "%s", err);
    /* nothing of the map runs on in forqd */
    for (int i = 0; i < test_ms(300) && stat_of(c, "workers_busy") > 0; i++)
        usleep(10000);
    ck_assert_int_eq(stat_of(c, "workers_busy"), 0);
    ck_assert_int_eq(stat_of(c, "queued"), 0);
    ck_assert_int_ge(stat_of(c, "cancelled"), 2);
    e2e_down(&d, &c);
}
END_TEST

/* A second Ctrl-C exits at once, even while the first one waits for forqd (stopped here). */
START_TEST(test_map_second_interrupt)
{
    static const char *const args[] = {"map", "sleep", "--chunksize", "1", NULL};
    char in[400];
    struct timespec t0;
    int in_fd, rc;
    pid_t pid;

    e2e_up(&d, &c, 1, NULL);
    input_file("naps.jsonl", "30\n30\n", in, sizeof(in));
    in_fd = open(in, O_RDONLY);
    pid = cli_spawn(d.endpoint, args, in_fd, -1, -1);
    close(in_fd);
    for (int i = 0; i < test_ms(500) && stat_of(c, "workers_busy") < 1; i++)
        usleep(10000);
    ck_assert_int_eq(stat_of(c, "workers_busy"), 1);
    kill(d.pid, SIGSTOP); /* forqd answers nothing: the first Ctrl-C's cancel waits */
    kill(pid, SIGINT);
    usleep(300000);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, WNOHANG), 0); /* still waiting for forqd */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kill(pid, SIGINT);
    rc = cli_wait_exit(pid, test_ms(2000));
    kill(d.pid, SIGCONT);
    ck_assert_int_eq(rc, 130);
    ck_assert_msg(ms_since(&t0) < test_ms(1000), "the second Ctrl-C took %ld ms", ms_since(&t0));
    e2e_down(&d, &c);
}
END_TEST

/* On a terminal, with the results on it too: each result line stands alone (the progress bar
 * is erased before it and drawn again after), and the bar did show. */
START_TEST(test_map_progress_bar_on_a_terminal)
{
    char in[400], raw[65536], screen[65536], want[4096] = "";
    static char naps[2048];
    const char *args[] = {"map", "sleep", "--chunksize", "1", "--window", "2", "--input", in, NULL};

    e2e_up(&d, &c, 2, NULL);
    naps[0] = '\0';
    for (int i = 0; i < 20; i++) {
        strcat(naps, "0.03\n");
        strcat(want, "null\n");
    }
    input_file("naps.jsonl", naps, in, sizeof(in));
    ck_assert_int_eq(cli_pty_run(d.endpoint, args, test_ms(30000), raw, sizeof(raw)), 0);
    ck_assert_msg(strstr(raw, "/20 ") && strstr(raw, "/s  ETA "), "no progress bar: %s", raw);
    term_screen(raw, screen, sizeof(screen));
    ck_assert_msg(strncmp(screen, want, strlen(want)) == 0, "the screen shows:\n%s", screen);
    ck_assert_msg(strncmp(screen + strlen(want), "forq: 20 items in ", 18) == 0,
                  "the screen shows:\n%s", screen);
    e2e_down(&d, &c);
}
END_TEST

static Suite *cli_map_suite(void)
{
    Suite *s = suite_create("cli_map");
    TCase *full;

    /* no core case: under valgrind (FORQ_TEST_CORE_ONLY) this suite runs nothing */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(60));
    tcase_add_test(full, test_map_line_for_line);
    tcase_add_test(full, test_map_rejected_fails_fast);
    tcase_add_test(full, test_map_interrupt);
    tcase_add_test(full, test_map_second_interrupt);
    tcase_add_test(full, test_map_progress_bar_on_a_terminal);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(cli_map_suite());
}
