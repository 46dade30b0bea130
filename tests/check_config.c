/* check_config.c - forqd's settings: a config file (INI) and flags, flags winning (a repeatable
 * flag replaces the file's list); every bad file names its file, line and what is wrong; and
 * forqd --check-config prints the configuration in effect, which reads back the same. */
#define _GNU_SOURCE
#include "config.h"
#include "log.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], path[128], errpath[128];

static void setup(void)
{
    temp_dir(dir, sizeof(dir), "forq-config");
    snprintf(path, sizeof(path), "%s/forqd.conf", dir);
    snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        /* a leftover temporary directory is harmless */
    }
}

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* config_parse with these flags (after argv[0]); *err gets what it printed to stderr. */
static int parse(config_t *cfg, const char *const *flags, char *err, size_t errlen)
{
    char *argv[32];
    int argc = 0, saved = dup(2), fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    argv[argc++] = "forqd";
    for (int i = 0; flags[i]; i++)
        argv[argc++] = (char *)flags[i];
    argv[argc] = NULL;
    fflush(stderr);
    dup2(fd, 2);
    int r = config_parse(cfg, argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    FILE *f = fopen(errpath, "r");
    size_t n = fread(err, 1, errlen - 1, f);
    err[n] = '\0';
    fclose(f);
    return r;
}

START_TEST(test_file_then_flags)
{
    config_t cfg;
    char err[512];

    write_file("# forqd settings\n"
               "[forqd]\n"
               "workers = 3\n"
               "listen = ipc:///tmp/a.sock\n"
               "listen = tcp://127.0.0.1:7000   ; a second endpoint\n"
               "tasks = /usr/lib/a.so\n"
               "prefetch = 0\n"
               "log-level = debug\n"
               "grace = 30\n"
               "fsync = always\n");
    const char *f1[] = {"--config", path, NULL};
    ck_assert_int_eq(parse(&cfg, f1, err, sizeof(err)), 0);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(cfg.workers, 3);
    ck_assert_uint_eq(cfg.listen.n, 2);
    ck_assert_str_eq(cfg.listen.items[1], "tcp://127.0.0.1:7000");
    ck_assert_int_eq(cfg.prefetch, 0);
    ck_assert_int_eq(cfg.grace_ms, 30000);
    ck_assert_str_eq(cfg.config_file, path);
    config_done(&cfg);
    /* flags win; a repeatable flag replaces the file's list, the others stay */
    const char *f2[] = {"-c", path, "--workers", "5", "--listen", "ipc:///tmp/b.sock", NULL};
    ck_assert_int_eq(parse(&cfg, f2, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.workers, 5);
    ck_assert_uint_eq(cfg.listen.n, 1);
    ck_assert_str_eq(cfg.listen.items[0], "ipc:///tmp/b.sock");
    ck_assert_uint_eq(cfg.tasks.n, 1);
    ck_assert_int_eq(cfg.grace_ms, 30000);
    config_done(&cfg);
}
END_TEST

START_TEST(test_bad_files_name_file_and_line)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"workers = 2\nbogus = 1\n", ":2: unknown setting 'bogus'"},
        {"\n\nworkers = lots\n", ":3: workers takes a whole number from 1 to 4096, not 'lots'"},
        {"workers 3\n", ":1: not a setting"},
        {"[other]\nworkers = 3\n", ":2: unknown section [other]"},
        {"workers =\n", ":1: workers needs a value"},
        {"listen = http://x\n", ":1: listen takes ipc://PATH or tcp://HOST:PORT"},
        {"fsync = sometimes\n", ":1: fsync takes always, everysec or no"},
        {"log-level = loud\n", ":1: log-level takes error, warning"},
        {"forkserver-fd = 3\n", ":1: unknown setting 'forkserver-fd'"}, /* not a setting */
    };
    config_t cfg;
    char err[512], want[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_file(cases[i].text);
        const char *f[] = {"--config", path, NULL};
        ck_assert_int_lt(parse(&cfg, f, err, sizeof(err)), 0);
        snprintf(want, sizeof(want), "forqd: %s%s", path, cases[i].want);
        ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "case %zu: got '%s', want '%s...'", i,
                      err, want);
        ck_assert_msg(strchr(err, '\n') == err + strlen(err) - 1, "one line: '%s'", err);
        config_done(&cfg);
    }
    /* a file named with --config must exist */
    const char *f[] = {"--config", "/nonexistent/forqd.conf", NULL};
    ck_assert_int_lt(parse(&cfg, f, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "cannot read the config file /nonexistent/forqd.conf"));
    config_done(&cfg);
}
END_TEST

START_TEST(test_check_config_reads_back)
{
    char cmd[512], out1[4096], out2[4096], printed[128];

    write_file("workers = 3\nlisten = tcp://127.0.0.1:7001\nretain-seconds = 60\n"
               "allow-exec = cat\nallow-exec = ls\n");
    snprintf(cmd, sizeof(cmd), "%s --config %s --check-config --prefetch 4", getenv("FORQD"), path);
    ck_assert_int_eq(sh(cmd, out1, sizeof(out1)), 0);
    ck_assert_ptr_nonnull(strstr(out1, "\nworkers = 3\n"));
    ck_assert_ptr_nonnull(strstr(out1, "\nprefetch = 4\n"));
    ck_assert_ptr_nonnull(strstr(out1, "\nretain-seconds = 60\n"));
    ck_assert_ptr_nonnull(strstr(out1, "\nallow-exec = cat\nallow-exec = ls\n"));
    /* what it prints is a config file that gives the same configuration */
    snprintf(printed, sizeof(printed), "%s/printed.conf", dir);
    FILE *f = fopen(printed, "w");
    fputs(out1, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s --config %s --check-config", getenv("FORQD"), printed);
    ck_assert_int_eq(sh(cmd, out2, sizeof(out2)), 0);
    ck_assert_str_eq(strchr(out2, '\n'), strchr(out1, '\n')); /* all but the first line */
    /* and a bad one exits 1 with the reason */
    write_file("workers = 0\n");
    snprintf(cmd, sizeof(cmd), "%s --config %s --check-config 2>&1", getenv("FORQD"), path);
    ck_assert_int_eq(sh(cmd, out1, sizeof(out1)), 1);
    ck_assert_ptr_nonnull(strstr(out1, ":1: workers takes a whole number from 1 to 4096"));
    /* a bad path names the file and line that gave it */
    write_file("workers = 2\ntasks = /nonexistent/x.so\n");
    ck_assert_int_eq(sh(cmd, out1, sizeof(out1)), 1);
    ck_assert_msg(strstr(out1, ".conf:2: tasks: cannot use /nonexistent/x.so"), "%s", out1);
    snprintf(cmd, sizeof(cmd), "%s --config %s --check-config --tasks /nonexistent/y.so 2>&1",
             getenv("FORQD"), path);
    ck_assert_int_eq(sh(cmd, out1, sizeof(out1)), 1);
    ck_assert_msg(strstr(out1, "forqd: --tasks: cannot use /nonexistent/y.so"), "%s", out1);
    /* without a listen setting, the endpoint forqd would use is printed */
    write_file("workers = 2\n");
    snprintf(cmd, sizeof(cmd), "XDG_RUNTIME_DIR=/run/user/4242 %s --config %s --check-config",
             getenv("FORQD"), path);
    ck_assert_int_eq(sh(cmd, out1, sizeof(out1)), 0);
    ck_assert_msg(strstr(out1, "\nlisten = ipc:///run/user/4242/forq/forqd.sock\n"), "%s", out1);
}
END_TEST

/* When stderr is the journal (JOURNAL_STREAM names it), each line carries its syslog level;
 * otherwise a plain prefix. */
START_TEST(test_log_lines_for_the_journal)
{
    char buf[512];
    struct stat st;
    int saved = dup(2), fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    ck_assert_int_eq(fstat(fd, &st), 0);
    snprintf(buf, sizeof(buf), "%lu:%lu", (unsigned long)st.st_dev, (unsigned long)st.st_ino);
    dup2(fd, 2);
    setenv("JOURNAL_STREAM", buf, 1);
    log_setup(LOG_INFO, "forqd");
    log_notice("to the journal: %d", 1);
    log_debug("not at info level");
    unsetenv("JOURNAL_STREAM");
    log_setup(LOG_INFO, "forqd");
    log_warn("to a terminal");
    dup2(saved, 2);
    close(saved);
    close(fd);
    FILE *f = fopen(errpath, "r");
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    char want[128];
    snprintf(want, sizeof(want), "<5>forqd: to the journal: 1\nforqd[%d]: warning: to a terminal\n",
             (int)getpid());
    ck_assert_str_eq(buf, want);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *su = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_file_then_flags);
    tcase_add_test(tc, test_bad_files_name_file_and_line);
    tcase_add_test(tc, test_check_config_reads_back);
    tcase_add_test(tc, test_log_lines_for_the_journal);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    return run_suite(config_suite());
}
