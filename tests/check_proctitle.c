/* check_proctitle.c - forqd's processes are recognisable in ps and top: /proc/PID/cmdline (what
 * ps and top -c show) reads exactly "forqd: broker", "forqd: forkserver", "forqd: worker idle"
 * or "forqd: worker TASK JOBID", and /proc/PID/comm (top, ps -e) "forqd", "forqd-forksrv",
 * "forqd-worker" - also for a forkserver re-executed by a reload, for a forqd started with an
 * empty environment (no room beyond its command line: titles are cut, never garbled), and under
 * the rules proctitle.c writes by, checked on a command line laid out in this process. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"
#include "proctitle.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static forqd_t d;
static forq_client_t *c;

/* /proc/PID/cmdline into buf (NUL-terminated after its bytes); returns its length in bytes. */
static size_t cmdline_of(pid_t pid, char *buf, size_t size)
{
    char path[64];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_msg(fd >= 0, "cannot open %s", path);
    n = read(fd, buf, size - 1);
    close(fd);
    ck_assert(n >= 0);
    buf[n] = '\0';
    return (size_t)n;
}

/* Assert that pid's command line is exactly `title`: one string, no blanks or NULs after it. */
static void assert_title(pid_t pid, const char *title)
{
    char buf[4096];
    size_t n = cmdline_of(pid, buf, sizeof(buf));

    ck_assert_msg(strcmp(buf, title) == 0, "pid %d shows '%s', want '%s'", (int)pid, buf, title);
    ck_assert_msg(n == strlen(title) + 1, "pid %d: %zu bytes of cmdline for '%s'", (int)pid, n,
                  title);
}

/* Wait up to 5 s until pid's command line is `title`, then assert it. */
static void await_title(pid_t pid, const char *title)
{
    char buf[4096];
    for (int i = 0; i < test_ms(5000) / 10; i++) {
        cmdline_of(pid, buf, sizeof(buf));
        if (strcmp(buf, title) == 0)
            break;
        usleep(10000);
    }
    assert_title(pid, title);
}

static void assert_comm(pid_t pid, const char *name)
{
    char path[64], buf[64] = "";
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    ck_assert_ptr_nonnull(f = fopen(path, "r"));
    ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    ck_assert_msg(strcmp(buf, name) == 0, "pid %d is named '%s', want '%s'", (int)pid, buf, name);
}

/* The children of `parent` (up to max) into kids; returns how many. */
static int children_of(pid_t parent, pid_t *kids, int max)
{
    DIR *dir = opendir("/proc");
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(dir);
    while ((e = readdir(dir)) && n < max) {
        char path[300], buf[512], *p;
        FILE *f;
        int ppid;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
        fclose(f);
        if (p && sscanf(p, ") %*c %d", &ppid) == 1 && ppid == parent)
            kids[n++] = (pid_t)atoi(e->d_name);
    }
    closedir(dir);
    return n;
}

/* The one forkserver of the broker, waiting (5 s) until it has `workers` children. */
static pid_t forkserver_of(pid_t broker, int workers)
{
    pid_t kids[8];
    for (int i = 0; i < test_ms(5000) / 10; i++) {
        int n = children_of(broker, kids, 8);
        if (n == 1 && children_of(kids[0], kids + 1, 7) == workers)
            return kids[0];
        usleep(10000);
    }
    ck_abort_msg("forqd %d has no forkserver with %d workers", (int)broker, workers);
    return -1;
}

START_TEST(test_titles)
{
    forq_submit_opts_t o = submit_opts();
    forq_job_info_t info;
    forq_future_t *f;
    pid_t fs, workers[4];
    char want[200];

    e2e_up(&d, &c, 2, NULL);
    assert_title(d.pid, "forqd: broker");
    assert_comm(d.pid, "forqd");
    fs = forkserver_of(d.pid, 2);
    assert_title(fs, "forqd: forkserver");
    assert_comm(fs, "forqd-forksrv");
    ck_assert_int_eq(children_of(fs, workers, 4), 2);
    for (int i = 0; i < 2; i++) {
        await_title(workers[i], "forqd: worker idle");
        assert_comm(workers[i], "forqd-worker");
    }

    /* a running job: its task and id; idle again once it is done */
    o.id = "title-1";
    f = submit_json(c, "sleep", "[0.6]", &o);
    wait_running(c, "title-1");
    ck_assert_int_eq(forq_client_status(c, "title-1", 5000, &info), FORQ_OK);
    ck_assert_int_gt(info.pid, 0);
    /* forqd calls a job running once it is sent: the worker retitles itself when it reads it */
    await_title(info.pid, "forqd: worker sleep title-1");
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_OK);
    await_title(info.pid, "forqd: worker idle");
    forq_future_destroy(&f);

    /* the longest task name and id fit (this forqd has its tests' environment for room) */
    static const char long_id[] =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde-"; /* 64 */
    o.id = long_id;
    f = submit_json(c, "sleep", "[0.6]", &o);
    wait_running(c, long_id);
    ck_assert_int_eq(forq_client_status(c, long_id, 5000, &info), FORQ_OK);
    snprintf(want, sizeof(want), "forqd: worker sleep %s", long_id);
    await_title(info.pid, want);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_OK);
    forq_future_destroy(&f);

    /* a reload starts a forkserver re-executed from /proc/self/exe: it says what it is, not
     * "exe" */
    kill(d.pid, SIGHUP);
    for (int i = 0; i < test_ms(5000) / 10; i++) {
        pid_t k[4];
        if (children_of(d.pid, k, 4) == 1 && k[0] != fs)
            break;
        usleep(10000);
    }
    fs = forkserver_of(d.pid, 2);
    await_title(fs, "forqd: forkserver");
    assert_comm(fs, "forqd-forksrv");
    ck_assert_int_eq(children_of(fs, workers, 4), 2);
    await_title(workers[0], "forqd: worker idle");
    e2e_down(&d, &c);
}
END_TEST

/* With an empty environment the title has the command line's room only: a title that does not
 * fit is cut to it, and ps still shows one clean string. */
START_TEST(test_titles_without_environment)
{
    char dir[256], ep[320], sock[300];
    char *const envp[] = {NULL};
    forq_client_opts_t co;
    forq_submit_opts_t o = submit_opts();
    forq_job_info_t info;
    forq_future_t *f;
    char buf[4096];
    pid_t pid;
    int status;

    temp_dir(dir, sizeof(dir), "forq-title");
    snprintf(sock, sizeof(sock), "%s/s", dir);
    snprintf(ep, sizeof(ep), "ipc://%s", sock);
    char *const argv[] = {(char *)getenv("FORQD"), "-l", ep, "-w", "1", NULL};
    size_t room = 0;
    for (int i = 0; argv[i]; i++)
        room += strlen(argv[i]) + 1;
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    forq_client_opts_init(&co);
    co.endpoint = ep;
    co.connect_timeout_ms = test_ms(10000);
    for (int i = 0; i < 200 && access(sock, F_OK) != 0; i++)
        usleep(25000);
    ck_assert_int_eq(forq_client_new(&co, &c), FORQ_OK);
    assert_title(pid, "forqd: broker");

    /* a title longer than the room: cut to room - 1 bytes, no garbage after */
    o.id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde-";
    f = submit_json(c, "sleep", "[0.5]", &o);
    wait_running(c, o.id);
    ck_assert_int_eq(forq_client_status(c, o.id, 5000, &info), FORQ_OK);
    snprintf(buf, sizeof(buf), "forqd: worker sleep %s", o.id);
    ck_assert_uint_gt(strlen(buf), room - 1); /* the case this test is about */
    buf[room - 1] = '\0';
    assert_title(info.pid, buf);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_OK);
    forq_future_destroy(&f);
    forq_client_destroy(&c);
    kill(pid, SIGTERM);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    unlink(sock);
    rmdir(dir);
}
END_TEST

/* The writing rules on a command line laid out here as the kernel lays one out: argv strings,
 * then the environment's, back to back. */
START_TEST(test_proctitle_rules)
{
    static char mem[] = "prog\0-x\0A=1\0BB=22\0";
    char *argv[] = {mem, mem + 5, NULL};
    char *env[] = {mem + 8, mem + 12, NULL};
    char **copy;
    extern char **environ;

    environ = env;
    copy = proctitle_init(2, argv);
    /* the program keeps its arguments and environment, elsewhere */
    ck_assert_str_eq(copy[0], "prog");
    ck_assert_str_eq(copy[1], "-x");
    ck_assert_ptr_null(copy[2]);
    ck_assert_ptr_ne(copy[0], mem);
    ck_assert_ptr_ne(environ, env);
    ck_assert_str_eq(getenv("BB"), "22");
    ck_assert_str_eq(program_invocation_name, "prog");

    /* short: the title, its NUL, blanks to the end of argv (arg_end - 1 is not NUL) */
    proctitle_set("t%d", 1);
    ck_assert_int_eq(memcmp(mem, "t1\0     ", 8), 0);
    /* longer than argv: on into the environment's room */
    proctitle_set("a long title");
    ck_assert_int_eq(memcmp(mem, "a long title\0", 13), 0);
    /* longer than all the room: cut, NUL-terminated in it */
    proctitle_set("%s", "0123456789abcdefghijklmnop");
    ck_assert_int_eq(memcmp(mem, "0123456789abcdefg\0", 18), 0);
    ck_assert_int_eq(mem[18], '\0'); /* the byte past the room is untouched */
    /* back to short: the longer title's bytes in argv become blanks */
    proctitle_set("ok");
    ck_assert_int_eq(memcmp(mem, "ok\0     ", 8), 0);
    ck_assert_str_eq(getenv("A"), "1");
}
END_TEST

static Suite *proctitle_suite(void)
{
    Suite *s = suite_create("proctitle");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, test_ms(120));
    tcase_add_test(tc, test_proctitle_rules);
    /* under valgrind forqd's /proc/PID/cmdline is valgrind's own command line */
    if (!getenv("FORQ_TEST_WRAP")) {
        tcase_add_test(tc, test_titles);
        tcase_add_test(tc, test_titles_without_environment);
    }
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(proctitle_suite());
}
