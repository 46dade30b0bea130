/* check_cli_cmds.c - end to end, the forq command's ($FORQ_CLI) arguments, help, messages and
 * the smaller commands against a real forqd: ARGS_JSON from stdin and from a 70 MB file,
 * negative numbers, help for every command, bash completion, tasks, dict --with-version and
 * incr's own exit code, dict list, and the words of the messages. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"
#include "testutil_cli.h"

#include <check.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static forqd_t d;
static forq_client_t *c;

#define RUN(args, out, err) cli_run(d.endpoint, args, out, sizeof(out), err, sizeof(err))

/* ARGS_JSON from stdin ("-") and from a file ("@FILE"), and a negative number as an argument. */
START_TEST(test_args_from_stdin_file_and_negative)
{
    char out[4096], err[4096], path[400], args[600];

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(RUN("submit echo - <<'EOF'\n[1, {\"a\": \"b\"}]\nEOF\n", out, err), 0);
    ck_assert_str_eq(out, "[1,{\"a\":\"b\"}]\n");
    snprintf(path, sizeof(path), "%s/args.json", d.dir);
    FILE *f = fopen(path, "w");
    fputs("[\"from\",\n \"a file\"]\n", f);
    fclose(f);
    snprintf(args, sizeof(args), "submit echo @%s", path);
    ck_assert_int_eq(RUN(args, out, err), 0);
    ck_assert_str_eq(out, "[\"from\",\"a file\"]\n");
    snprintf(args, sizeof(args), "submit echo @%s/nothing.json", d.dir);
    ck_assert_int_eq(RUN(args, out, err), 2);
    ck_assert_msg(strstr(err, "cannot read ARGS_JSON from") && strstr(err, "No such file"), "%s",
                  err);
    ck_assert_int_eq(RUN("submit echo - <<'EOF'\n[1,\n2,\nEOF\n", out, err), 2);
    ck_assert_msg(strstr(err, "ARGS_JSON from stdin is not JSON (line 3"), "%s", err);
    /* negative numbers are arguments, not options */
    ck_assert_int_eq(RUN("submit echo -7", out, err), 0);
    ck_assert_str_eq(out, "-7\n");
    ck_assert_int_eq(RUN("submit echo -0.5 --priority 3", out, err), 0);
    ck_assert_str_eq(out, "-0.5\n");
    ck_assert_int_eq(RUN("submit is_prime -7", out, err), 0);
    ck_assert_str_eq(out, "false\n");
    ck_assert_int_eq(RUN("dict incr d n -5", out, err), 0);
    ck_assert_str_eq(out, "-5\n");
    ck_assert_int_eq(RUN("submit echo -x", out, err), 2);
    ck_assert_msg(strstr(err, "submit has no option '-x'"), "%s", err);
    e2e_down(&d, &c);
}
END_TEST

/* A 70 MB argument: no command line holds it (ARG_MAX), a file does. */
START_TEST(test_args_70_mb_from_a_file)
{
    static const char *const extra[] = {"--max-payload", "100000000", NULL};
    const size_t n = 70u << 20;
    char out[4096], err[4096], path[400], args[600], want[SHA256_DIGEST_SIZE * 2 + 2];
    uint8_t digest[SHA256_DIGEST_SIZE];
    struct sha256_ctx sha;
    char *text = malloc(n);

    e2e_up(&d, &c, 1, extra);
    memset(text, 'q', n);
    snprintf(path, sizeof(path), "%s/big.json", d.dir);
    FILE *f = fopen(path, "w");
    fputs("[\"", f);
    ck_assert_uint_eq(fwrite(text, 1, n, f), n);
    fputs("\"]", f);
    fclose(f);
    sha256_init(&sha);
    sha256_update(&sha, n, (const uint8_t *)text);
    sha256_digest(&sha, sizeof(digest), digest);
    for (size_t i = 0; i < sizeof(digest); i++)
        sprintf(want + 2 * i, "%02x", digest[i]);
    free(text);
    snprintf(args, sizeof(args), "submit sha256 @%s", path);
    ck_assert_msg(RUN(args, out, err) == 0, "forq said: %s", err);
    ck_assert_int_eq(strlen(out), 1 + 64 + 1 + 1); /* "hex"\n */
    ck_assert_msg(strncmp(out + 1, want, 64) == 0, "got %s, want %s", out, want);
    unlink(path);
    e2e_down(&d, &c);
}
END_TEST

/* forq help [COMMAND] and forq COMMAND --help, for every command. */
START_TEST(test_help_for_every_command)
{
    static const char *const cmds[] = {"submit", "map",   "wait", "cancel", "status", "tasks",
                                       "jobs",   "purge", "dict", "ping",   "keygen", "help"};
    char out[8192], out2[8192], err[4096], args[200], usage[64];

    /* no forqd needed: help never connects */
    ck_assert_int_eq(cli_run("ipc:///nowhere", "help", out, sizeof(out), err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "\n  %-8s ", cmds[i]);
        ck_assert_msg(strstr(out, line), "forq help does not list %s: %s", cmds[i], out);
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        snprintf(args, sizeof(args), "help %s", cmds[i]);
        ck_assert_int_eq(cli_run("ipc:///nowhere", args, out, sizeof(out), err, sizeof(err)), 0);
        snprintf(usage, sizeof(usage), "Usage: forq %s", cmds[i]);
        ck_assert_msg(strncmp(out, usage, strlen(usage)) == 0, "forq help %s: %s", cmds[i], out);
        for (char *l = out, *nl; (nl = strchr(l, '\n')); l = nl + 1)
            ck_assert_msg(nl - l < 80, "forq help %s: a line wider than 79 columns: %.*s", cmds[i],
                          (int)(nl - l), l);
        snprintf(args, sizeof(args), "%s --help", cmds[i]);
        ck_assert_int_eq(cli_run("ipc:///nowhere", args, out2, sizeof(out2), err, sizeof(err)), 0);
        ck_assert_str_eq(out, out2);
        snprintf(args, sizeof(args), "%s -h", cmds[i]);
        ck_assert_int_eq(cli_run("ipc:///nowhere", args, out2, sizeof(out2), err, sizeof(err)), 0);
        ck_assert_str_eq(out, out2);
    }
    ck_assert_int_eq(cli_run("ipc:///nowhere", "help frob", out, sizeof(out), err, sizeof(err)), 2);
    ck_assert_msg(strstr(err, "there is no command 'frob'"), "%s", err);
    /* a usage error points at the command's own help */
    ck_assert_int_eq(
        cli_run("ipc:///nowhere", "map echo --frob", out, sizeof(out), err, sizeof(err)), 2);
    ck_assert_str_eq(err, "forq: map has no option '--frob'; see forq help map\n");
}
END_TEST

/* The options every job takes (--timeout, --priority, --retries) are checked alike in submit and
 * map, before any connection, with the same words. */
START_TEST(test_job_options_in_submit_and_map)
{
    static const char *const cmds[] = {"submit echo", "map echo"};
    static const struct {
        const char *opt, *err;
    } bad[] = {
        {"--priority 10", "forq: --priority takes a whole number from 0 to 9, not '10'\n"},
        {"--priority=x", "forq: --priority takes a whole number from 0 to 9, not 'x'\n"},
        {"--retries 101", "forq: --retries takes a whole number from 0 to 100, not '101'\n"},
        {"--timeout=-1", "forq: --timeout takes a number of seconds, not '-1'\n"},
        {"--timeout", ""}, /* no value: the usage error names the command */
    };
    char out[4096], err[4096], args[200];

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            snprintf(args, sizeof(args), "%s %s", cmds[i], bad[k].opt);
            ck_assert_int_eq(cli_run("ipc:///nowhere", args, out, sizeof(out), err, sizeof(err)),
                             2);
            if (bad[k].err[0])
                ck_assert_str_eq(err, bad[k].err);
            else
                ck_assert_msg(strstr(err, "--timeout needs a value"), "%s: %s", args, err);
        }
    }
}
END_TEST

/* The completions bash offers: run the installed script's function as bash would. */
static void complete(const char *words, char *out, size_t size)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "bash -c 'source %s; COMP_WORDS=(%s); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
             "_forq; printf \"%%s\\n\" \"${COMPREPLY[@]}\" | sort' 2>&1",
             FORQ_COMPLETION, words);
    ck_assert_int_eq(sh(cmd, out, size), 0);
}

START_TEST(test_bash_completion)
{
    char out[4096], words[1024];

    e2e_up(&d, &c, 1, NULL);
    complete("forq su", out, sizeof(out));
    ck_assert_str_eq(out, "submit\n");
    complete("forq submit echo --ti", out, sizeof(out));
    ck_assert_str_eq(out, "--timeout\n");
    complete("forq map echo --sk", out, sizeof(out));
    ck_assert_str_eq(out, "--skip-blank\n");
    complete("forq dict in", out, sizeof(out));
    ck_assert_str_eq(out, "incr\n");
    complete("forq dict li", out, sizeof(out));
    ck_assert_str_eq(out, "list\n");
    complete("forq help di", out, sizeof(out));
    ck_assert_str_eq(out, "dict\n");
    complete("forq jobs --st", out, sizeof(out));
    ck_assert_str_eq(out, "--state\n");
    complete("forq --server", out, sizeof(out));
    ck_assert_str_eq(out, "--server-key\n");
    /* task names from the forqd on the command line */
    snprintf(words, sizeof(words), "%s -e %s submit progress_", getenv("FORQ_CLI"), d.endpoint);
    complete(words, out, sizeof(out));
    ck_assert_str_eq(out, "progress_steps\n");
    snprintf(words, sizeof(words), "%s -e %s map --chunksize 4 is_", getenv("FORQ_CLI"),
             d.endpoint);
    complete(words, out, sizeof(out));
    ck_assert_str_eq(out, "is_prime\n");
    e2e_down(&d, &c);
}
END_TEST

/* forq tasks, and the tasks in the human forq status. */
START_TEST(test_tasks)
{
    char out[8192], err[4096];

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(RUN("tasks", out, err), 0);
    /* each with its doc string, aligned */
    ck_assert_msg(strncmp(out, "echo ", 5) == 0 && strstr(out, " echo(*args) -> the arguments") &&
                      strstr(out, "\nprogress_steps ") && strstr(out, " progress_steps(n) -> n\n"),
                  "%s", out);
    ck_assert_int_eq(RUN("tasks --json", out, err), 0);
    ck_assert_msg(out[0] == '[' &&
                      strstr(out, "{\"name\":\"is_prime\",\"doc\":\"is_prime(n) -> bool\"}"),
                  "%s", out);
    ck_assert_int_eq(RUN("status", out, err), 0);
    ck_assert_msg(strstr(out, "\ntasks:     echo sleep is_prime") && strstr(out, " progress_steps"),
                  "%s", out);
    /* the worker table names the task its worker runs */
    ck_assert_int_eq(RUN("submit sleep 30 --no-wait --id cli-nap", out, err), 0);
    wait_running(c, "cli-nap");
    ck_assert_int_eq(RUN("status", out, err), 0);
    ck_assert_msg(strstr(out, "TASK             OWNER        JOB\n") &&
                      strstr(out, " sleep            local        cli-nap\n"),
                  "%s", out);
    /* forq jobs: the table and --json; forq purge */
    ck_assert_int_eq(RUN("submit echo 1 --no-wait --id cli-q1", out, err), 0);
    ck_assert_int_eq(RUN("jobs", out, err), 0);
    ck_assert_msg(strstr(out, "ID ") && strstr(out, "OWNER") && strstr(out, "cli-nap ") &&
                      strstr(out, "cli-q1 ") && strstr(out, " running ") && strstr(out, " queued "),
                  "%s", out);
    ck_assert_int_eq(RUN("jobs --state queued --json", out, err), 0);
    ck_assert_msg(out[0] == '[' && strstr(out, "\"id\":\"cli-q1\"") && !strstr(out, "cli-nap"),
                  "%s", out);
    ck_assert_int_eq(RUN("jobs --state done", out, err), 2);
    ck_assert_int_eq(RUN("status cli-nap", out, err), 0);
    ck_assert_msg(strstr(out, "\"owner\":\"local\"") && strstr(out, "\"started_at\":\"20") &&
                      strstr(out, "\"elapsed_s\":"),
                  "%s", out);
    ck_assert_int_eq(RUN("purge --task echo", out, err), 0);
    ck_assert_str_eq(out, "{\"cancelled\":1}\n");
    ck_assert_msg(strstr(err, "1 queued job cancelled of task echo"), "%s", err);
    ck_assert_int_eq(RUN("cancel cli-nap", out, err), 0);
    e2e_down(&d, &c);
}
END_TEST

/* dict get/wait --with-version, and incr on a value that is not an integer. */
START_TEST(test_dict_version_and_incr)
{
    char out[4096], err[4096], want[200];

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(RUN("dict set d k '{\"x\": 1}'", out, err), 0);
    long ver = atol(out);
    ck_assert_int_gt(ver, 0);
    ck_assert_int_eq(RUN("dict get d k --with-version", out, err), 0);
    snprintf(want, sizeof(want), "{\"value\":{\"x\":1},\"ver\":%ld}\n", ver);
    ck_assert_str_eq(out, want);
    ck_assert_int_eq(RUN("dict wait d k --version 0 --with-version", out, err), 0);
    ck_assert_str_eq(out, want);
    /* a cas loop without a dump: the version from get */
    snprintf(want, sizeof(want), "dict cas d k %ld '\"next\"'", ver);
    ck_assert_int_eq(RUN(want, out, err), 0);
    ck_assert_int_eq(RUN("dict get d nope --with-version", out, err), 11);
    ck_assert_int_eq(RUN("dict set d k --with-version 1", out, err), 2);
    /* incr: not an integer is its own exit code, said in words */
    ck_assert_int_eq(RUN("dict incr d k", out, err), 14);
    ck_assert_str_eq(err, "forq: the value of 'k' in dict 'd' is not an integer, so incr cannot "
                          "add to it (forq dict get d k shows it)\n");
    ck_assert_int_eq(RUN("dict set d big 9223372036854775807", out, err), 0);
    ck_assert_int_eq(RUN("dict incr d big", out, err), 14);
    ck_assert_msg(strstr(err, "would go beyond a 64-bit integer"), "%s", err);
    ck_assert_int_eq(RUN("dict set d v - <<'EOF'\n[true]\nEOF\n", out, err), 0);
    ck_assert_int_eq(RUN("dict get d v", out, err), 0);
    ck_assert_str_eq(out, "[true]\n");
    e2e_down(&d, &c);
}
END_TEST

/* forq dict list: the dicts and their key counts as one JSON object, by name, over every page
 * (1000 dicts a page), or {} when there is none. */
START_TEST(test_dict_list)
{
    static char out[64 << 10];
    char err[4096], want[64], name[32];

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(cli_run(d.endpoint, "dict list", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_str_eq(out, "{}\n");
    ck_assert_int_eq(RUN("dict set b k 1", out, err), 0);
    ck_assert_int_eq(RUN("dict update a '{\"x\": 1, \"y\": 2}'", out, err), 0);
    ck_assert_int_eq(RUN("dict list", out, err), 0);
    ck_assert_str_eq(out, "{\"a\":2,\"b\":1}\n");
    /* 1500 more: two pages of forqd's, one object */
    for (int i = 0; i < 1500; i++) {
        snprintf(name, sizeof(name), "p%04d", i);
        ck_assert_int_eq(forq_dict_set(c, name, "k", "\x01", 1, test_ms(5000), NULL), FORQ_OK);
    }
    ck_assert_int_eq(cli_run(d.endpoint, "dict list", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_uint_eq(strlen(out), strlen("{\"a\":2,\"b\":1,") + 1500 * strlen("\"p0000\":1,") + 1);
    static const char head[] = "{\"a\":2,\"b\":1,\"p0000\":1,\"p0001\":1,";
    ck_assert_msg(strncmp(out, head, strlen(head)) == 0, "%.100s", out);
    snprintf(want, sizeof(want), "\"p0999\":1,\"p1000\":1,");
    ck_assert_msg(strstr(out, want), "the pages do not join: %.200s", out + 10000);
    static const char tail[] = "\"p1499\":1}\n";
    ck_assert_str_eq(out + strlen(out) - strlen(tail), tail);
    /* it takes no NAME; a NAME is still needed by the others */
    ck_assert_int_eq(RUN("dict list d", out, err), 2);
    ck_assert_str_eq(err, "forq: dict list takes no NAME or other operand: it lists every dict you "
                          "may read; see forq help dict\n");
    ck_assert_int_eq(RUN("dict keys", out, err), 2);
    ck_assert_str_eq(err, "forq: dict keys needs a NAME; see forq help dict\n");
    ck_assert_int_eq(RUN("dict", out, err), 2);
    ck_assert_msg(strstr(err, "forq dict list"), "%s", err);
    e2e_down(&d, &c);
}
END_TEST

/* The words of the messages: singular and plural, a too big integer without an unrelated hint,
 * status and cancel of jobs that are not there to see or cancel. */
START_TEST(test_messages)
{
    char out[8192], err[4096];

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(RUN("submit echo 99999999999999999999", out, err), 2);
    ck_assert_msg(strstr(err, "the integer 99999999999999999999 is too big") &&
                      !strstr(err, "quote strings"),
                  "%s", err);
    ck_assert_int_eq(RUN("submit echo hello", out, err), 2);
    ck_assert_msg(strstr(err, "quote strings"), "%s", err); /* here the hint is the point */
    ck_assert_int_eq(RUN("status nosuchid", out, err), 11);
    ck_assert_str_eq(out, "{\"id\":\"nosuchid\",\"state\":\"unknown\"}\n");
    ck_assert_msg(strstr(err, "forqd has no job 'nosuchid': it was never submitted here"), "%s",
                  err);
    ck_assert_int_eq(RUN("cancel nosuchid", out, err), 11);
    ck_assert_msg(strstr(err, "forqd has no job 'nosuchid'"), "%s", err);
    ck_assert_int_eq(RUN("submit echo 1 --id cli-done", out, err), 0);
    ck_assert_int_eq(RUN("cancel cli-done", out, err), 11);
    ck_assert_str_eq(out, "{\"id\":\"cli-done\",\"outcome\":\"finished\",\"state\":\"ok\"}\n");
    ck_assert_str_eq(err, "forq: job cli-done had already finished (ok): nothing to cancel\n");
    /* one of each */
    ck_assert_int_eq(RUN("dict set d k 1", out, err), 0);
    ck_assert_int_eq(RUN("status", out, err), 0);
    ck_assert_msg(strstr(out, "dict:      1 key in 1 dict, ") && strstr(out, ", 1 worker started"),
                  "%s", out);
    e2e_down(&d, &c);
}
END_TEST

static Suite *cli_cmds_suite(void)
{
    Suite *s = suite_create("cli_cmds");
    TCase *full;

    /* no core case: under valgrind (FORQ_TEST_CORE_ONLY) this suite runs nothing */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(120));
    tcase_add_test(full, test_args_from_stdin_file_and_negative);
    tcase_add_test(full, test_args_70_mb_from_a_file);
    tcase_add_test(full, test_help_for_every_command);
    tcase_add_test(full, test_job_options_in_submit_and_map);
    tcase_add_test(full, test_bash_completion);
    tcase_add_test(full, test_tasks);
    tcase_add_test(full, test_dict_version_and_incr);
    tcase_add_test(full, test_dict_list);
    tcase_add_test(full, test_messages);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(cli_cmds_suite());
}
