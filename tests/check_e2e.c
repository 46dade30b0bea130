/* check_e2e.c - end to end: a real forqd on an ipc endpoint in a temporary directory, real
 * worker processes, real sockets, libforq and raw ZeroMQ peers. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"
#include "wire.h"

#include <check.h>
#include <time.h>
#include <sys/un.h>
#include <sys/socket.h>
#include <poll.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

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

/* ---- every built-in task ---- */

/* Args and results far longer than a worker link's socket buffer: the broker writes what the
 * link takes and the rest when it is writable, reads a long result into its own buffer and
 * hands it on; nothing is lost or reordered, and other jobs go on meanwhile. */
START_TEST(test_large_payloads_through_the_worker_link)
{
    size_t len = 3u << 20;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char *blob = malloc(len);
    forq_future_t *f[3], *small;
    const void *res;
    size_t rlen;

    for (size_t i = 0; i < len; i++)
        blob[i] = (char)(i * 31 + (i >> 16));
    up(2, NULL);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_bin(&pk, len);
    msgpack_pack_bin_body(&pk, blob, len);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(forq_submit(c, "echo", sb.data, sb.size, NULL, &f[i]), FORQ_OK);
    small = submit_json(c, "echo", "[1]", NULL);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(wait_state(f[i], 30000), FORQ_STATE_OK);
        ck_assert_int_eq(forq_future_result(f[i], &res, &rlen), FORQ_OK);
        ck_assert_uint_eq(rlen, sb.size); /* echo returns its args */
        ck_assert_mem_eq(res, sb.data, sb.size);
        forq_future_destroy(&f[i]);
    }
    ASSERT_RESULT(small, "[1]");
    forq_future_destroy(&small);
    msgpack_sbuffer_destroy(&sb);
    free(blob);
    down();
}
END_TEST

/* ---- jobs sent ahead to busy workers (--prefetch) ---- */

/* Run `n` jobs of a task so that forqd learns it is short. */
static void train(const char *task, const char *args, int n)
{
    for (int i = 0; i < n; i++) {
        forq_future_t *f = submit_json(c, task, args, NULL);
        ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_OK);
        forq_future_destroy(&f);
    }
}

/* Start a job that holds the one worker until the test sets dict "gates" key `id`. */
static forq_future_t *busy_with(const char *id)
{
    forq_submit_opts_t o = submit_opts();
    char args[96];
    o.id = id;
    snprintf(args, sizeof(args), "[\"gates\", \"%s\"]", id);
    forq_future_t *f = submit_json(c, "gate", args, &o);
    wait_running(c, id);
    return f;
}

static void open_gate(const char *id)
{
    ck_assert_int_eq(forq_dict_set(c, "gates", id, "\xc3", 1, test_ms(5000), NULL), FORQ_OK);
}

static void wait_ahead(long long n)
{
    for (int k = 0; k < test_ms(1000) && stat_of(c, "ahead") < n; k++)
        usleep(10000);
    ck_assert_int_eq(stat_of(c, "ahead"), n);
}

static void queue_echoes(forq_future_t **f, int n, const char *prefix)
{
    char id[32], args[32];
    for (int i = 0; i < n; i++) {
        forq_submit_opts_t o = submit_opts();
        snprintf(id, sizeof(id), "%s-%d", prefix, i);
        snprintf(args, sizeof(args), "[%d]", i);
        o.id = id;
        f[i] = submit_json(c, "echo", args, &o);
    }
}

static void expect_echoes(forq_future_t **f, int n, int skip)
{
    char want[32];
    for (int i = 0; i < n; i++) {
        if (i == skip)
            continue;
        snprintf(want, sizeof(want), "[%d]", i);
        ASSERT_RESULT(f[i], want);
    }
}

START_TEST(test_jobs_sent_ahead)
{
    enum { N = 6 };
    forq_future_t *f[N], *busy, *many[2000];
    forq_job_info_t info = {0};
    forq_cancel_t out;
    char want[32];

    up(1, NULL);
    train("echo", "[0]", 3);
    /* behind a running job, short jobs go to the busy worker at once (it keeps them while its
     * task waits for a dict reply on the same link), and run in order */
    busy = busy_with("busy1");
    queue_echoes(f, N, "a");
    wait_ahead(N);
    ck_assert_int_eq(forq_client_status(c, "a-1", test_ms(5000), &info), FORQ_OK);
    ck_assert_int_eq(info.state, FORQ_STATE_QUEUED); /* not started: queued, as far as anyone knows */
    open_gate("busy1");
    ASSERT_RESULT(busy, "true");
    expect_echoes(f, N, -1);
    forq_future_destroy(&busy);
    for (int i = 0; i < N; i++)
        forq_future_destroy(&f[i]);
    /* cancel one of them: the answer waits for the worker, which skips it; the others run */
    busy = busy_with("busy1b");
    queue_echoes(f, N, "a2");
    wait_ahead(N);
    forq_client_t *other = forqd_client(&d);
    /* no answer yet: it comes once the worker has looked, and the worker is held */
    ck_assert_int_eq(forq_client_cancel(c, "a2-2", 0, &out), FORQ_ERR_TIMEOUT);
    open_gate("busy1b");
    ck_assert_int_eq(wait_state(f[2], 10000), FORQ_STATE_CANCELLED);
    ck_assert_str_eq(forq_future_detail(f[2]), "cancelled before it started");
    ck_assert_int_eq(forq_client_cancel(other, "a2-2", test_ms(5000), &out), FORQ_OK);
    ck_assert_int_eq(out, FORQ_CANCEL_FINISHED);
    forq_client_destroy(&other);
    ASSERT_RESULT(busy, "true");
    expect_echoes(f, N, 2);
    for (int i = 0; i < N; i++)
        forq_future_destroy(&f[i]);
    forq_future_destroy(&busy);
    /* the worker dies under a running job: that job crashed; those sent ahead never started,
     * so they run on the replacement, not counted as retries */
    busy = busy_with("busy2");
    queue_echoes(f, N, "b");
    wait_ahead(N);
    forq_client_status(c, "busy2", test_ms(5000), &info);
    ck_assert_int_gt(info.pid, 0);
    kill(info.pid, SIGKILL);
    ck_assert_int_eq(wait_state(busy, 10000), FORQ_STATE_CRASHED);
    expect_echoes(f, N, -1);
    for (int i = 0; i < N; i++) {
        ck_assert_uint_eq(forq_future_attempts(f[i]), 1);
        forq_future_destroy(&f[i]);
    }
    forq_future_destroy(&busy);
    /* a run timeout kills the worker: the same */
    forq_submit_opts_t o = submit_opts();
    o.timeout = test_ms(300) / 1000.0;
    o.id = "busy3";
    busy = submit_json(c, "gate", "[\"gates\", \"never\"]", &o);
    queue_echoes(f, N, "c");
    ck_assert_int_eq(wait_state(busy, test_ms(10000)), FORQ_STATE_TIMEOUT);
    expect_echoes(f, N, -1);
    for (int i = 0; i < N; i++)
        forq_future_destroy(&f[i]);
    forq_future_destroy(&busy);
    /* jobs sent ahead while the running task waits for many dict replies on the same link */
    busy = submit_json(c, "dict_count", "[\"ahead\", \"n\", 3000]", NULL);
    for (int i = 0; i < test_ms(500) && stat_of(c, "running") == 0; i++)
        usleep(1000);
    queue_echoes(f, N, "d");
    ASSERT_RESULT(busy, "3000");
    expect_echoes(f, N, -1);
    for (int i = 0; i < N; i++)
        forq_future_destroy(&f[i]);
    forq_future_destroy(&busy);
    /* and a stream of them: every one answered, in full */
    int n = getenv("FORQ_TEST_CORE_ONLY") ? 200 : 2000;
    for (int i = 0; i < n; i++) {
        snprintf(want, sizeof(want), "[%d]", i);
        many[i] = submit_json(c, "echo", want, NULL);
    }
    for (int i = 0; i < n; i++) {
        snprintf(want, sizeof(want), "[%d]", i);
        ASSERT_RESULT(many[i], want);
        forq_future_destroy(&many[i]);
    }
    ck_assert_int_gt(stat_of(c, "sent_ahead"), N);
    down();
}
END_TEST

START_TEST(test_ahead_within_max_jobs_per_worker)
{
    /* a worker recycled every 3 jobs is never sent more than it will run */
    const char *extra[] = {"--max-jobs-per-worker", "3", NULL};
    forq_future_t *f[300];
    char args[32];

    up(2, extra);
    train("echo", "[0]", 3);
    for (int i = 0; i < 300; i++) {
        snprintf(args, sizeof(args), "[%d]", i);
        f[i] = submit_json(c, "echo", args, NULL);
    }
    expect_echoes(f, 300, -1);
    for (int i = 0; i < 300; i++)
        forq_future_destroy(&f[i]);
    ck_assert_int_eq(stat_of(c, "crashed"), 0);
    ck_assert_int_eq(stat_of(c, "retried"), 0);
    ck_assert_int_ge(stat_of(c, "workers_started"), 300 / 3);
    down();
}
END_TEST

START_TEST(test_prefetch_off)
{
    /* --prefetch 0: a busy worker is sent nothing more */
    const char *extra[] = {"--prefetch", "0", NULL};
    forq_future_t *f[3], *busy;

    up(1, extra);
    train("echo", "[0]", 3);
    busy = busy_with("busy");
    queue_echoes(f, 3, "p");
    for (int i = 0; i < test_ms(500) && stat_of(c, "queued") < 3; i++)
        usleep(1000);
    ck_assert_int_eq(stat_of(c, "queued"), 3);
    ck_assert_int_eq(stat_of(c, "ahead"), 0);
    open_gate("busy");
    ASSERT_RESULT(busy, "true");
    expect_echoes(f, 3, -1);
    for (int i = 0; i < 3; i++)
        forq_future_destroy(&f[i]);
    forq_future_destroy(&busy);
    ck_assert_int_eq(stat_of(c, "sent_ahead"), 0);
    down();
}
END_TEST

#ifdef FORQ_TEST_SYSTEMD
/* ---- systemd's service protocol (sd_notify), from a NOTIFY_SOCKET the test binds ---- */

/* The next datagram, or "" after ms. */
static void notify_recv(int fd, char *buf, size_t size, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n = 0;
    buf[0] = '\0';
    if (poll(&p, 1, ms) == 1 && (n = recv(fd, buf, size - 1, 0)) > 0)
        buf[n] = '\0';
}

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

START_TEST(test_sd_notify)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char buf[512], sockpath[100], dirbuf[64];
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), pings = 0, statuses = 0;
    uint64_t first = 0, last = 0, t0;

    temp_dir(dirbuf, sizeof(dirbuf), "forq-notify");
    snprintf(sockpath, sizeof(sockpath), "%s/notify.sock", dirbuf);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sockpath);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setenv("NOTIFY_SOCKET", sockpath, 1);
    setenv("WATCHDOG_USEC", "200000", 1); /* a ping every 100 ms */
    up(2, NULL);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    /* READY once both workers are up, with a status line */
    t0 = ms_now();
    do
        notify_recv(fd, buf, sizeof(buf), test_ms(5000));
    while (buf[0] && strstr(buf, "READY=1") == NULL);
    ck_assert_msg(strstr(buf, "READY=1\nSTATUS=0/2 workers busy, 0 queued"), "got '%s'", buf);
    /* watchdog pings at half the period, and a status every second */
    while (ms_now() - t0 < 1500) {
        notify_recv(fd, buf, sizeof(buf), 500);
        if (strcmp(buf, "WATCHDOG=1") == 0) {
            pings++;
            if (!first)
                first = ms_now();
            last = ms_now();
        } else if (strncmp(buf, "STATUS=", 7) == 0) {
            statuses++;
            ck_assert_ptr_nonnull(strstr(buf, "workers busy"));
        }
    }
    ck_assert_int_ge(pings, 8);
    ck_assert_int_le(pings, 20);
    ck_assert_uint_ge(last - first, (uint64_t)(pings - 1) * 80);
    ck_assert_int_ge(statuses, 1);
    /* SIGHUP: RELOADING, then READY once the new forkserver is up */
    kill(d.pid, SIGHUP);
    do
        notify_recv(fd, buf, sizeof(buf), test_ms(5000));
    while (buf[0] && strncmp(buf, "RELOADING=1", 11) != 0);
    ck_assert_str_eq(buf, "RELOADING=1\nSTATUS=reloading the configuration");
    do
        notify_recv(fd, buf, sizeof(buf), test_ms(5000));
    while (buf[0] && strncmp(buf, "READY=1", 7) != 0);
    ck_assert_msg(strncmp(buf, "READY=1\nSTATUS=", 15) == 0, "got '%s'", buf);
    /* SIGTERM: STOPPING */
    kill(d.pid, SIGTERM);
    do
        notify_recv(fd, buf, sizeof(buf), test_ms(5000));
    while (buf[0] && strncmp(buf, "STOPPING=1", 10) != 0);
    ck_assert_str_eq(buf, "STOPPING=1\nSTATUS=stopping: draining running jobs");
    down();
    close(fd);
    unlink(sockpath);
    rmdir(dirbuf);
}
END_TEST
#endif

/* ---- SIGHUP: reload the configuration and the plugins in place ---- */

static void write_conf(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Send SIGHUP and wait until forqd's log says `what`. */
static void reload_and_wait(const char *what)
{
    kill(d.pid, SIGHUP);
    for (int i = 0; i < test_ms(500) && !forqd_log_has(&d, what); i++)
        usleep(10000);
    ck_assert_msg(forqd_log_has(&d, what), "the log never said '%s'", what);
}

START_TEST(test_reload)
{
    char cdir[64], conf[128], text[600];
    const char *args[] = {"--config", conf, NULL};
    forq_future_t *f, *busy;

    temp_dir(cdir, sizeof(cdir), "forq-reload");
    snprintf(conf, sizeof(conf), "%s/forqd.conf", cdir);
    write_conf(conf, "[forqd]\nworkers = 1\n"); /* the built-in tasks only */
    forqd_start(&d, args);
    c = forqd_client(&d);
    f = submit_json(c, "getpid", "[]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(f), "unknown_task");
    forq_future_destroy(&f);
    /* a job runs on the old worker through the reload, and finishes */
    busy = submit_json(c, "sleep", "[1]", NULL);
    for (int i = 0; i < test_ms(500) && stat_of(c, "running") == 0; i++)
        usleep(1000);
    /* a plugin, two workers: the reload loads the plugin in a new forkserver */
    snprintf(text, sizeof(text), "[forqd]\nworkers = 2\ntasks = %s\n", getenv("FORQ_TEST_PLUGIN"));
    write_conf(conf, text);
    reload_and_wait("reloaded: 2 workers");
    ASSERT_RESULT(busy, "null");
    forq_future_destroy(&busy);
    f = submit_json(c, "getpid", "[]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_OK);
    forq_future_destroy(&f);
    for (int i = 0; i < test_ms(500) && stat_of(c, "workers_live") != 2; i++)
        usleep(10000);
    ck_assert_int_eq(stat_of(c, "workers_live"), 2);
    /* a bad configuration is refused: the old one goes on */
    write_conf(conf, "[forqd]\nworkers = lots\n");
    reload_and_wait("reload refused: the configuration has an error");
    ck_assert(forqd_log_has(&d, "forqd.conf:2: workers takes a whole number"));
    f = submit_json(c, "getpid", "[]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_OK);
    forq_future_destroy(&f);
    /* so is a plugin that is not there */
    write_conf(conf, "[forqd]\ntasks = /nonexistent/plugin.so\n");
    reload_and_wait("tasks: cannot use /nonexistent/plugin.so");
    f = submit_json(c, "getpid", "[]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_OK);
    forq_future_destroy(&f);
    /* and back to the built-ins: the plugin's tasks are gone */
    write_conf(conf, "[forqd]\nworkers = 1\n");
    kill(d.pid, SIGHUP);
    for (int i = 0; i < test_ms(500); i++) {
        f = submit_json(c, "getpid", "[]", NULL);
        forq_state_t st = wait_state(f, 10000);
        forq_future_destroy(&f);
        if (st == FORQ_STATE_REJECTED)
            break;
        usleep(10000);
    }
    f = submit_json(c, "getpid", "[]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_REJECTED);
    forq_future_destroy(&f);
    f = submit_json(c, "echo", "[3]", NULL);
    ASSERT_RESULT(f, "[3]");
    forq_future_destroy(&f);
    down();
    unlink(conf);
    rmdir(cdir);
}
END_TEST

/* Endpoints follow the file on reload (forqd started with no --listen flag, which would win). */
START_TEST(test_reload_endpoints)
{
    char dir[64], conf[128], cmd[1024], out[256], log[128];
    long pid;

    temp_dir(dir, sizeof(dir), "forq-reload-ep");
    snprintf(conf, sizeof(conf), "%s/forqd.conf", dir);
    snprintf(log, sizeof(log), "%s/forqd.log", dir);
    snprintf(cmd, sizeof(cmd), "listen = ipc://%s/a.sock\nworkers = 1\n", dir);
    write_conf(conf, cmd);
    snprintf(cmd, sizeof(cmd), "XDG_RUNTIME_DIR=%s %s --config %s >/dev/null 2>%s & echo $!", dir,
             getenv("FORQD"), conf, log);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 0);
    pid = atol(out);
    ck_assert_int_gt(pid, 0);
    snprintf(cmd, sizeof(cmd), "%s -e ipc://%s/a.sock --connect-timeout %d ping >/dev/null 2>&1",
             getenv("FORQ_CLI"), dir, test_ms(5000) / 1000);
    ck_assert_int_eq(system(cmd), 0);
    /* move to b.sock */
    snprintf(cmd, sizeof(cmd), "listen = ipc://%s/b.sock\nworkers = 1\n", dir);
    write_conf(conf, cmd);
    kill((pid_t)pid, SIGHUP);
    snprintf(cmd, sizeof(cmd), "grep -q 'reloaded:' %s", log);
    for (int i = 0; i < test_ms(500) && system(cmd) != 0; i++)
        usleep(10000);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s -e ipc://%s/b.sock --connect-timeout %d ping >/dev/null 2>&1",
             getenv("FORQ_CLI"), dir, test_ms(5000) / 1000);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s -e ipc://%s/a.sock --connect-timeout 0.3 ping >/dev/null 2>&1",
             getenv("FORQ_CLI"), dir);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 8); /* nobody there any more */
    kill((pid_t)pid, SIGTERM);
    for (int i = 0; i < test_ms(500) && kill((pid_t)pid, 0) == 0; i++)
        usleep(10000);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_builtin_tasks)
{
    const char *extra[] = {"--allow-exec", "cat", NULL};
    up(2, extra);
    forq_future_t *f[8];
    f[0] = submit_json(c, "echo", "[1,\"two\",{\"3\":[true,null]}]", NULL);
    f[1] = submit_json(c, "count_primes", "[1,300000]", NULL);
    f[2] = submit_json(c, "is_prime", "[10000019]", NULL);
    f[3] = submit_json(c, "is_prime", "[10000081]", NULL);
    f[4] = submit_json(c, "sum_squares", "[1000]", NULL);
    f[5] = submit_json(c, "sha256", "[\"abc\"]", NULL);
    f[6] = submit_json(c, "sleep", "[0.01]", NULL);
    f[7] = submit_json(c, "exec", "[{\"argv\":[\"cat\"],\"stdin\":\"x\"}]", NULL);
    ASSERT_RESULT(f[0], "[1,\"two\",{\"3\":[true,null]}]");
    ASSERT_RESULT(f[1], "25997");
    ASSERT_RESULT(f[2], "true");
    ASSERT_RESULT(f[3], "false");
    ASSERT_RESULT(f[4], "332833500");
    ASSERT_RESULT(f[5], "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"");
    ASSERT_RESULT(f[6], "null");
    ASSERT_RESULT(f[7], "{\"exit_code\":0,\"signal\":null,\"stdout\":\"x\",\"stderr\":\"\"}");
    for (int i = 0; i < 8; i++) {
        ck_assert_uint_eq(forq_future_attempts(f[i]), 1);
        forq_future_destroy(&f[i]);
    }
    forq_future_destroy(&f[0]); /* twice is a no-op */
    down();
}
END_TEST

START_TEST(test_bad_args_are_errors)
{
    up(1, NULL);
    forq_future_t *f = submit_json(c, "is_prime", "[\"seven\"]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_ERROR);
    ck_assert_str_eq(forq_future_error_type(f), "TypeError");
    ck_assert_ptr_nonnull(strstr(forq_future_detail(f), "must be an integer"));
    ck_assert_int_eq(forq_future_result(f, NULL, NULL), FORQ_ERR_TASK);
    forq_future_destroy(&f);
    f = submit_json(c, "sleep", "[-3]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_ERROR);
    ck_assert_str_eq(forq_future_error_type(f), "ValueError");
    forq_future_destroy(&f);
    /* a buggy task that packs two values, one that fails silently */
    f = submit_json(c, "two_values", "[]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_ERROR);
    ck_assert_str_eq(forq_future_error_type(f), "TaskError");
    forq_future_destroy(&f);
    f = submit_json(c, "silent_fail", "[]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_ERROR);
    forq_future_destroy(&f);
    /* the worker survived all of it */
    f = submit_json(c, "echo", "7", NULL);
    ASSERT_RESULT(f, "7");
    ck_assert_int_eq(stat_of(c, "worker_crashes"), 0);
    forq_future_destroy(&f);
    down();
}
END_TEST

START_TEST(test_rejections)
{
    const char *extra[] = {"--max-payload", "4096", NULL};
    up(1, extra);
    forq_future_t *f = submit_json(c, "no_such_task", "[]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(f), "unknown_task");
    ck_assert_ptr_nonnull(strstr(forq_future_detail(f), "no_such_task"));
    forq_future_destroy(&f);
    f = submit_json(c, "exec", "[{\"argv\":[\"ls\"]}]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(f), "task_disabled");
    forq_future_destroy(&f);
    /* args over --max-payload */
    char big[6000];
    memset(big, 'a', sizeof(big));
    big[0] = '"';
    big[sizeof(big) - 2] = '"';
    big[sizeof(big) - 1] = '\0';
    f = submit_json(c, "echo", big, NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(f), "too_large");
    forq_future_destroy(&f);
    /* a result over the job's limit */
    forq_submit_opts_t o = submit_opts();
    o.max_result = 100;
    f = submit_json(c, "blob", "[1000]", &o);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_ERROR);
    ck_assert_str_eq(forq_future_error_type(f), "ResultTooLarge");
    forq_future_destroy(&f);
    /* local checks: bad task name, bad id, bad priority, args not msgpack */
    forq_future_t *g = NULL;
    ck_assert_int_eq(forq_submit(c, "bad name", "\x90", 1, NULL, &g), FORQ_ERR_INVALID);
    o = submit_opts();
    o.id = "has space";
    ck_assert_int_eq(forq_submit(c, "echo", "\x90", 1, &o, &g), FORQ_ERR_INVALID);
    o = submit_opts();
    o.priority = 10;
    ck_assert_int_eq(forq_submit(c, "echo", "\x90", 1, &o, &g), FORQ_ERR_INVALID);
    ck_assert_int_eq(forq_submit(c, "echo", "\x92\x01", 2, NULL, &g), FORQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "msgpack"));
    ck_assert_ptr_null(g);
    down();
}
END_TEST

/* ---- cancel ---- */


START_TEST(test_cancel_queued_and_running)
{
    up(1, NULL);
    forq_submit_opts_t o = submit_opts();
    forq_cancel_t out;
    o.id = "runner";
    forq_future_t *run = submit_json(c, "sleep", "[30]", &o);
    o.id = "waiter";
    forq_future_t *wait = submit_json(c, "echo", "1", &o);
    forq_job_info_t info;
    wait_running(c, "runner");
    ck_assert_int_eq(forq_client_status(c, "runner", test_ms(5000), &info), FORQ_OK);
    ck_assert_int_gt(info.pid, 0);
    ck_assert_str_eq(info.task, "sleep");
    ck_assert_int_eq(forq_client_status(c, "waiter", test_ms(5000), &info), FORQ_OK);
    ck_assert_int_eq(info.state, FORQ_STATE_QUEUED);

    ck_assert_int_eq(forq_future_cancel(wait, test_ms(5000), &out), FORQ_OK);
    ck_assert_int_eq(out, FORQ_CANCEL_DEQUEUED);
    ck_assert_int_eq(wait_state(wait, 5000), FORQ_STATE_CANCELLED);
    ck_assert_int_eq(forq_future_result(wait, NULL, NULL), FORQ_ERR_CANCELLED);

    ck_assert_int_eq(forq_client_cancel(c, "runner", test_ms(5000), &out), FORQ_OK);
    ck_assert_int_eq(out, FORQ_CANCEL_KILLING);
    ck_assert_int_eq(wait_state(run, 10000), FORQ_STATE_CANCELLED);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(run), "killed"));

    /* cancelling a finished job says so; an unknown id too */
    ck_assert_int_eq(forq_client_cancel(c, "runner", test_ms(5000), &out), FORQ_OK);
    ck_assert_int_eq(out, FORQ_CANCEL_FINISHED);
    ck_assert_int_eq(forq_client_cancel(c, "never-was", test_ms(5000), &out), FORQ_OK);
    ck_assert_int_eq(out, FORQ_CANCEL_UNKNOWN);
    ck_assert_int_eq(forq_future_cancel(run, test_ms(5000), &out), FORQ_OK);
    ck_assert_int_eq(out, FORQ_CANCEL_FINISHED);
    ck_assert_int_eq(forq_client_status(c, "runner", test_ms(5000), &info), FORQ_OK);
    ck_assert_int_eq(info.state, FORQ_STATE_CANCELLED);

    /* the pool keeps serving: a fresh worker took the killed one's place */
    forq_future_t *after = submit_json(c, "getpid", "[]", NULL);
    ck_assert_int_eq(wait_state(after, 10000), FORQ_STATE_OK);
    ck_assert_int_eq(stat_of(c, "cancelled"), 2);
    forq_future_destroy(&run);
    forq_future_destroy(&wait);
    forq_future_destroy(&after);
    down();
}
END_TEST

/* ---- timeouts and deadlines ---- */

START_TEST(test_run_timeout)
{
    up(1, NULL);
    forq_submit_opts_t o = submit_opts();
    o.timeout = 0.3;
    forq_future_t *f = submit_json(c, "spin", "[]", &o);
    forq_future_t *next = submit_json(c, "echo", "\"after\"", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_TIMEOUT);
    ck_assert_int_eq(forq_future_result(f, NULL, NULL), FORQ_ERR_JOB_TIMEOUT);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(f), "300 ms"));
    ASSERT_RESULT(next, "\"after\"");
    forq_future_destroy(&f);
    forq_future_destroy(&next);
    down();
}
END_TEST

START_TEST(test_queue_deadline)
{
    up(1, NULL);
    forq_submit_opts_t o = submit_opts();
    forq_future_t *blocker = submit_json(c, "sleep", "[0.6]", NULL);
    o.deadline = 0.1;
    forq_future_t *late = submit_json(c, "echo", "1", &o);
    ck_assert_int_eq(wait_state(late, 5000), FORQ_STATE_TIMEOUT);
    ck_assert_str_eq(forq_future_code(late), "deadline");
    ck_assert_int_eq(forq_future_attempts(late), 0);
    ck_assert_int_eq(wait_state(blocker, 5000), FORQ_STATE_OK);
    forq_future_destroy(&blocker);
    forq_future_destroy(&late);
    down();
}
END_TEST

/* ---- crashes ---- */

START_TEST(test_crashes_fail_only_their_job)
{
    up(2, NULL);
    forq_future_t *slow = submit_json(c, "sleep", "[0.5]", NULL);
    forq_future_t *segv = submit_json(c, "segv", "[]", NULL);
    forq_future_t *abrt = submit_json(c, "abort", "[]", NULL);
    forq_future_t *ex = submit_json(c, "exit", "[3]", NULL);
    forq_future_t *after[20];
    for (int i = 0; i < 20; i++) {
        char a[16];
        snprintf(a, sizeof(a), "%d", i);
        after[i] = submit_json(c, "echo", a, NULL);
    }
    ck_assert_int_eq(wait_state(segv, 10000), FORQ_STATE_CRASHED);
    ck_assert_int_eq(forq_future_signal(segv), SIGSEGV);
    ck_assert_int_eq(forq_future_exit_code(segv), -1);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(segv), "signal 11"));
    ck_assert_int_eq(forq_future_result(segv, NULL, NULL), FORQ_ERR_CRASHED);
    ck_assert_int_eq(wait_state(abrt, 10000), FORQ_STATE_CRASHED);
    ck_assert_int_eq(forq_future_signal(abrt), SIGABRT);
    ck_assert_int_eq(wait_state(ex, 10000), FORQ_STATE_CRASHED);
    ck_assert_int_eq(forq_future_signal(ex), 0);
    ck_assert_int_eq(forq_future_exit_code(ex), 3);
    ck_assert_int_eq(wait_state(slow, 10000), FORQ_STATE_OK);
    for (int i = 0; i < 20; i++) {
        char a[16];
        snprintf(a, sizeof(a), "%d", i);
        ASSERT_RESULT(after[i], a);
        forq_future_destroy(&after[i]);
    }
    ck_assert_int_eq(stat_of(c, "worker_crashes"), 3);
    ck_assert_int_eq(stat_of(c, "crashed"), 3);
    ck_assert_int_gt(stat_of(c, "last_replace_us"), 0);
    ck_assert(forqd_log_has(&d, "crashed"));
    forq_future_destroy(&slow);
    forq_future_destroy(&segv);
    forq_future_destroy(&abrt);
    forq_future_destroy(&ex);
    down();
}
END_TEST

START_TEST(test_retries)
{
    char marker[300], args[400];
    up(1, NULL);
    snprintf(marker, sizeof(marker), "%s/crashed-once", d.dir);
    snprintf(args, sizeof(args), "[\"%s\"]", marker);
    forq_submit_opts_t o = submit_opts();
    o.retries = 1;
    forq_future_t *f = submit_json(c, "crash_once", args, &o);
    ASSERT_RESULT(f, "\"ok\"");
    ck_assert_uint_eq(forq_future_attempts(f), 2);
    forq_future_destroy(&f);
    o.retries = 2;
    f = submit_json(c, "segv", "[]", &o);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_CRASHED);
    ck_assert_uint_eq(forq_future_attempts(f), 3);
    ck_assert_int_eq(stat_of(c, "retried"), 3);
    forq_future_destroy(&f);
    down();
}
END_TEST

START_TEST(test_recycling)
{
    const char *extra[] = {"--max-jobs-per-worker", "2", NULL};
    int pids[8];
    up(1, extra);
    for (int i = 0; i < 8; i++) {
        forq_future_t *f = submit_json(c, "getpid", "[]", NULL);
        char *s = result_json(f, 10000);
        ck_assert_ptr_nonnull(s);
        pids[i] = atoi(s);
        free(s);
        forq_future_destroy(&f);
    }
    for (int i = 0; i < 8; i += 2) {
        ck_assert_int_eq(pids[i], pids[i + 1]);
        if (i)
            ck_assert_int_ne(pids[i], pids[i - 1]);
    }
    ck_assert_int_ge(stat_of(c, "workers_started"), 4);
    ck_assert_int_eq(stat_of(c, "worker_crashes"), 0);
    down();
}
END_TEST

START_TEST(test_resource_limits)
{
    up(1, NULL);
    forq_submit_opts_t o = submit_opts();
    o.max_cpu_seconds = 1;
    forq_future_t *f = submit_json(c, "spin", "[]", &o);
    ck_assert_int_eq(wait_state(f, 20000), FORQ_STATE_CRASHED);
    ck_assert_int_eq(forq_future_signal(f), SIGXCPU);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(f), "CPU limit"));
    forq_future_destroy(&f);
#ifdef UNDER_ASAN
    /* AddressSanitizer reserves terabytes of shadow address space: no RLIMIT_AS fits it */
    down();
    return;
#endif
    o = submit_opts();
    o.max_memory = 256u << 20;
    f = submit_json(c, "alloc", "[1073741824]", &o);
    ck_assert_int_eq(wait_state(f, 20000), FORQ_STATE_ERROR);
    ck_assert_str_eq(forq_future_error_type(f), "MemoryError");
    forq_future_destroy(&f);
    /* the limit was for that job only */
    f = submit_json(c, "alloc", "[536870912]", NULL);
    ASSERT_RESULT(f, "true");
    forq_future_destroy(&f);
    down();
}
END_TEST

START_TEST(test_forkserver_restart)
{
    up(2, NULL);
    forq_future_t *f = submit_json(c, "echo", "1", NULL);
    ASSERT_RESULT(f, "1");
    forq_future_destroy(&f);
    long long fs = stat_of(c, "forkserver_pid");
    ck_assert_int_gt(fs, 0);
    ck_assert_int_eq(kill((pid_t)fs, SIGKILL), 0);
    for (int i = 0; i < test_ms(500) && stat_of(c, "forkserver_pid") == fs; i++)
        usleep(10000);
    ck_assert_int_ne(stat_of(c, "forkserver_pid"), fs);
    f = submit_json(c, "count_primes", "[1,1000]", NULL);
    ASSERT_RESULT(f, "168");
    forq_future_destroy(&f);
    ck_assert(forqd_log_has(&d, "starting a new one"));
    down();
}
END_TEST

/* ---- scheduling ---- */

START_TEST(test_priorities)
{
    up(1, NULL);
    forq_future_t *block = submit_json(c, "sleep", "[0.3]", NULL);
    forq_future_t *f[6];
    int prio[6] = {0, 9, 5, 0, 9, 5};
    for (int i = 0; i < 6; i++) {
        forq_submit_opts_t o = submit_opts();
        o.priority = prio[i];
        f[i] = submit_json(c, "now", "[]", &o);
    }
    /* order by when each ran */
    long long at[6];
    for (int i = 0; i < 6; i++) {
        char *s = result_json(f[i], 10000);
        ck_assert_ptr_nonnull(s);
        at[i] = atoll(s);
        free(s);
    }
    int expect[6] = {1, 4, 2, 5, 0, 3}; /* priority first, then FIFO */
    for (int i = 0; i + 1 < 6; i++)
        ck_assert_msg(at[expect[i]] < at[expect[i + 1]], "job %d ran after job %d", expect[i],
                      expect[i + 1]);
    for (int i = 0; i < 6; i++)
        forq_future_destroy(&f[i]);
    forq_future_destroy(&block);
    down();
}
END_TEST

START_TEST(test_fair_between_clients)
{
    up(1, NULL);
    forq_client_t *a = forqd_client(&d), *b = forqd_client(&d);
    forq_future_t *block = submit_json(c, "sleep", "[0.3]", NULL);
    forq_future_t *fa[10], *fb[2];
    usleep(50000);
    for (int i = 0; i < 10; i++)
        fa[i] = submit_json(a, "sleep", "[0.01]", NULL);
    usleep(50000); /* a's jobs are all queued before b's */
    for (int i = 0; i < 2; i++)
        fb[i] = submit_json(b, "sleep", "[0.01]", NULL);
    ck_assert_int_eq(wait_state(fb[1], 10000), FORQ_STATE_OK);
    /* round robin: b's second job ran no later than a's third */
    int a_done = 0;
    for (int i = 0; i < 10; i++)
        a_done += forq_future_done(fa[i]);
    ck_assert_msg(a_done <= 3, "client b waited for %d of client a's jobs", a_done);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(wait_state(fa[i], 10000), FORQ_STATE_OK);
        forq_future_destroy(&fa[i]);
    }
    forq_future_destroy(&fb[0]);
    forq_future_destroy(&fb[1]);
    forq_future_destroy(&block);
    forq_client_destroy(&a);
    forq_client_destroy(&b);
    down();
}
END_TEST

START_TEST(test_queue_limits)
{
    const char *extra[] = {"--queue-max", "3", "--client-queue-max", "2", NULL};
    up(1, extra);
    forq_client_t *other = forqd_client(&d);
    forq_future_t *a = submit_json(c, "sleep", "[0.5]", NULL);  /* running */
    forq_future_t *b = submit_json(c, "echo", "1", NULL);        /* queued: c has 2 */
    forq_future_t *over = submit_json(c, "echo", "2", NULL);     /* client limit */
    ck_assert_int_eq(wait_state(over, 5000), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(over), "client_queue_full");
    forq_future_t *o1 = submit_json(other, "echo", "3", NULL);
    forq_future_t *o2 = submit_json(other, "echo", "4", NULL);   /* queue now holds 3 */
    forq_future_t *full = submit_json(other, "echo", "5", NULL); /* total limit */
    ck_assert_int_eq(wait_state(full, 5000), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(full), "queue_full");
    /* nothing accepted was lost */
    ck_assert_int_eq(wait_state(a, 5000), FORQ_STATE_OK);
    ASSERT_RESULT(b, "1");
    ASSERT_RESULT(o1, "3");
    ASSERT_RESULT(o2, "4");
    ck_assert_int_eq(stat_of(c, "rejected"), 2);
    forq_future_destroy(&a);
    forq_future_destroy(&b);
    forq_future_destroy(&over);
    forq_future_destroy(&o1);
    forq_future_destroy(&o2);
    forq_future_destroy(&full);
    forq_client_destroy(&other);
    down();
}
END_TEST

START_TEST(test_duplicate_id)
{
    up(1, NULL);
    forq_client_t *other = forqd_client(&d);
    forq_submit_opts_t o = submit_opts();
    o.id = "same";
    forq_future_t *first = submit_json(c, "sleep", "[0.3]", &o);
    usleep(50000);
    forq_future_t *dup = submit_json(other, "echo", "1", &o);
    ck_assert_int_eq(wait_state(dup, 5000), FORQ_STATE_REJECTED);
    ck_assert_str_eq(forq_future_code(dup), "duplicate_id");
    ck_assert_int_eq(wait_state(first, 5000), FORQ_STATE_OK);
    /* once finished, the id may be used again */
    forq_future_t *again = submit_json(other, "echo", "2", &o);
    ASSERT_RESULT(again, "2");
    forq_future_destroy(&first);
    forq_future_destroy(&dup);
    forq_future_destroy(&again);
    forq_client_destroy(&other);
    down();
}
END_TEST

/* ---- many clients ---- */

typedef struct {
    const forqd_t *d;
    int base, n, ok;
} load_t;

static void *load_main(void *arg)
{
    load_t *l = arg;
    forq_client_t *cl = forqd_client(l->d);
    forq_future_t **f = calloc((size_t)l->n, sizeof(*f));
    for (int i = 0; i < l->n; i++) {
        char a[32];
        snprintf(a, sizeof(a), "%d", l->base + i);
        f[i] = submit_json(cl, "echo", a, NULL);
    }
    for (int i = 0; i < l->n; i++) {
        char want[32], *got = result_json(f[i], 60000);
        snprintf(want, sizeof(want), "%d", l->base + i);
        l->ok += got && strcmp(got, want) == 0;
        free(got);
        forq_future_destroy(&f[i]);
    }
    free(f);
    forq_client_destroy(&cl);
    return NULL;
}

START_TEST(test_many_clients_exactly_once)
{
    pthread_t t[4];
    load_t l[4];
    int per = test_quick() ? 50 : 250; /* 1000 jobs; fewer under valgrind or in quick mode */
    up(2, NULL);
    for (int i = 0; i < 4; i++) {
        l[i] = (load_t){&d, i * 100000, per, 0};
        pthread_create(&t[i], NULL, load_main, &l[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(l[i].ok, per);
    }
    ck_assert_int_eq(stat_of(c, "submitted"), 4 * per);
    ck_assert_int_eq(stat_of(c, "ok"), 4 * per);
    ck_assert_int_eq(stat_of(c, "undeliverable"), 0);
    down();
}
END_TEST

START_TEST(test_client_destroyed_with_pending_futures)
{
    up(1, NULL);
    forq_client_t *tmp = forqd_client(&d);
    forq_future_t *f = submit_json(tmp, "sleep", "[0.2]", NULL);
    forq_client_destroy(&tmp);
    ck_assert(forq_future_done(f));
    ck_assert_int_eq(forq_future_state(f), FORQ_STATE_LOST);
    ck_assert_int_eq(forq_future_result(f, NULL, NULL), FORQ_ERR_LOST);
    forq_future_destroy(&f);
    /* forqd drops the result for the vanished client and goes on */
    usleep(400000);
    f = submit_json(c, "echo", "1", NULL);
    ASSERT_RESULT(f, "1");
    forq_future_destroy(&f);
    ck_assert_int_eq(stat_of(c, "undeliverable"), 1);
    down();
}
END_TEST

/* ---- a client that stops reading ---- */

START_TEST(test_slow_client_backlog)
{
    const char *extra[] = {"--client-hwm", "10", NULL};
    int n = test_quick() ? 500 : 3000, hwm = 1, tmo = test_ms(10000);
    char *seen;
    msgpack_sbuffer sb;
    msgpack_zone zone;
    up(2, extra);
    void *zctx = zmq_ctx_new(), *s = zmq_socket(zctx, ZMQ_DEALER);

    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    ck_assert_int_eq(zmq_connect(s, d.endpoint), 0);
    msgpack_sbuffer_init(&sb);
    char args[200];
    memset(args, 'x', sizeof(args));
    args[0] = (char)0xd9; /* str8 of 198 bytes: big enough to fill kernel buffers */
    args[1] = (char)198;
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "slow-%d", i);
        wire_hdr_t h = {.cmd = WIRE_SUBMIT, .id = wire_str(id), .task = wire_str("echo")};
        msgpack_sbuffer_clear(&sb);
        wire_hdr_encode(&sb, &h);
        zmq_send(s, sb.data, sb.size, ZMQ_SNDMORE);
        zmq_send(s, args, sizeof(args), 0);
    }
    /* not reading: forqd must hold what zmq will not take, and go on serving others */
    long long backlog = 0;
    for (int i = 0; i < test_ms(300) && (backlog = stat_of(c, "backlog")) == 0; i++)
        usleep(10000);
    ck_assert_msg(backlog > 0, "forqd never had to hold results back");
    forq_future_t *other = submit_json(c, "echo", "\"unblocked\"", NULL);
    ASSERT_RESULT(other, "\"unblocked\"");
    forq_future_destroy(&other);
    /* now read: every job answered exactly once, ok */
    seen = calloc((size_t)n, 1);
    msgpack_zone_init(&zone, 1024);
    for (int i = 0; i < n; i++) {
        char buf[WIRE_HEADER_MAX], junk[256];
        wire_hdr_t h;
        wire_err_t err;
        int len = zmq_recv(s, buf, sizeof(buf), 0), more = 0;
        size_t ml = sizeof(more);
        ck_assert_msg(len > 0, "result %d of %d never came", i, n);
        msgpack_zone_clear(&zone);
        ck_assert_int_eq(wire_hdr_decode(buf, (size_t)len, &zone, &h, &err), 0);
        ck_assert_int_eq(h.state, WIRE_ST_OK);
        int k = atoi(h.id.ptr + 5);
        ck_assert_int_eq(seen[k], 0);
        seen[k] = 1;
        while (zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml) == 0 && more)
            zmq_recv(s, junk, sizeof(junk), 0);
    }
    ck_assert_int_eq(stat_of(c, "backlog"), 0);
    ck_assert_int_eq(stat_of(c, "undeliverable"), 0);
    free(seen);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&sb);
    zmq_close(s);
    zmq_ctx_term(zctx);
    down();
}
END_TEST

/* ---- malformed input from a raw ZeroMQ peer ---- */

static void *raw_connect(void *zctx, int type, const char *ep)
{
    void *s = zmq_socket(zctx, type);
    int tmo = test_ms(5000), zero = 0;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    ck_assert_int_eq(zmq_connect(s, ep), 0);
    return s;
}

/* Send frames (NULL-terminated list of (data, len) pairs given as parallel arrays). */
static void raw_send(void *s, const void *const *frames, const size_t *lens, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_ge(zmq_send(s, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0), 0);
}

/* Receive one reply; returns its header decoded into *h (strings valid until next call). */
static void raw_recv(void *s, wire_hdr_t *h, int *nframes)
{
    static char buf[WIRE_HEADER_MAX];
    static msgpack_zone zone;
    static bool init;
    wire_err_t err;
    int n = 0, more = 1;
    size_t ml = sizeof(more);
    int len;

    if (!init) {
        msgpack_zone_init(&zone, 1024);
        init = true;
    }
    msgpack_zone_clear(&zone);
    len = zmq_recv(s, buf, sizeof(buf), 0);
    ck_assert_msg(len >= 0, "no reply from forqd");
    n = 1;
    if (len == 0) { /* REQ-style delimiter */
        len = zmq_recv(s, buf, sizeof(buf), 0);
        ck_assert_int_ge(len, 0);
    }
    ck_assert_int_eq(wire_hdr_decode(buf, (size_t)len, &zone, h, &err), 0);
    while (zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
        char junk[256];
        ck_assert_int_ge(zmq_recv(s, junk, sizeof(junk), 0), 0);
        n++;
    }
    if (nframes)
        *nframes = n;
}

static msgpack_sbuffer hdr(const wire_hdr_t *h)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_hdr_encode(&sb, h);
    return sb;
}

static bool good_answered; /* the result of the well-behaved job "good-1" arrived */

static void expect_error(void *s, const void *const *frames, const size_t *lens, int n,
                         const char *code)
{
    wire_hdr_t h;
    int nframes;
    raw_send(s, frames, lens, n);
    raw_recv(s, &h, &nframes);
    if (h.cmd == WIRE_RESULT && wire_str_eq(h.id, "good-1")) {
        ck_assert_int_eq(h.state, WIRE_ST_OK);
        ck_assert_int_eq(nframes, 2);
        good_answered = true;
        raw_recv(s, &h, NULL);
    }
    ck_assert_msg(h.cmd == WIRE_ERROR, "got '%s', want an error", wire_cmd_name(h.cmd));
    ck_assert_msg(wire_str_eq(h.code, code), "got code '%.*s', want '%s'", (int)h.code.len,
                  h.code.ptr, code);
    ck_assert(h.msg.len > 0);
}

START_TEST(test_malformed_frames)
{
    up(1, NULL);
    void *zctx = zmq_ctx_new();
    void *s = raw_connect(zctx, ZMQ_DEALER, d.endpoint);
    wire_hdr_t h;
    int nframes;

    /* a well-behaved job of the same peer, in flight while it misbehaves */
    wire_hdr_t sub = {.cmd = WIRE_SUBMIT, .id = wire_str("good-1"), .task = wire_str("sleep")};
    msgpack_sbuffer sb = hdr(&sub);
    const void *ok_frames[] = {sb.data, "\x91\xcb\x3f\xc9\x99\x99\x99\x99\x99\x9a"}; /* [0.2] */
    size_t ok_lens[] = {sb.size, 10};
    raw_send(s, ok_frames, ok_lens, 2);

    static const char garbage[] = "\xff\x00 not msgpack";
    static const unsigned char bomb[] = {0x81, 0xa3, 'c', 'm', 'd', 0xdd, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char arr[] = {0x93, 0x01, 0x02, 0x03};
    const void *f1[] = {garbage};
    size_t l1[] = {sizeof(garbage) - 1};
    expect_error(s, f1, l1, 1, "bad_message");
    const void *f2[] = {bomb};
    size_t l2[] = {sizeof(bomb)};
    expect_error(s, f2, l2, 1, "bad_message");
    const void *f3[] = {arr};
    size_t l3[] = {sizeof(arr)};
    expect_error(s, f3, l3, 1, "bad_header");
    const void *f4[] = {""};
    size_t l4[] = {0};
    expect_error(s, f4, l4, 1, "bad_frames");

    wire_hdr_t bad = {.cmd = WIRE_SUBMIT, .id = wire_str("x1"), .task = wire_str("echo"),
                      .req = 77, .has_req = true};
    msgpack_sbuffer b2 = hdr(&bad);
    const void *f5[] = {b2.data}; /* submit without args frame */
    size_t l5[] = {b2.size};
    raw_send(s, f5, l5, 1);
    raw_recv(s, &h, NULL);
    ck_assert_int_eq(h.cmd, WIRE_ERROR);
    ck_assert(wire_str_eq(h.code, "bad_frames"));
    ck_assert(wire_str_eq(h.id, "x1"));
    ck_assert_uint_eq(h.req, 77);
    const void *f6[] = {b2.data, "\x90", "\x90"}; /* too many frames */
    size_t l6[] = {b2.size, 1, 1};
    expect_error(s, f6, l6, 3, "bad_frames");
    /* args that are not msgpack: the job is rejected with the reason */
    const void *f7[] = {b2.data, bomb};
    size_t l7[] = {b2.size, sizeof(bomb)};
    raw_send(s, f7, l7, 2);
    raw_recv(s, &h, &nframes);
    if (h.cmd == WIRE_RESULT && wire_str_eq(h.id, "good-1")) {
        good_answered = true;
        raw_recv(s, &h, NULL);
    }
    ck_assert_int_eq(h.cmd, WIRE_RESULT);
    ck_assert_int_eq(h.state, WIRE_ST_REJECTED);
    ck_assert(wire_str_eq(h.code, "bad_args"));
    /* a worker command from a client */
    wire_hdr_t wk = {.cmd = WIRE_READY};
    msgpack_sbuffer b3 = hdr(&wk);
    const void *f8[] = {b3.data};
    size_t l8[] = {b3.size};
    expect_error(s, f8, l8, 1, "unknown_command");
    /* a future protocol version */
    static const unsigned char v9[] = {0x82, 0xa1, 'v', 0x09, 0xa3, 'c', 'm', 'd', 0xa4, 'p',
                                       'i', 'n', 'g'};
    const void *f9[] = {v9};
    size_t l9[] = {sizeof(v9)};
    expect_error(s, f9, l9, 1, "bad_version");

    /* after all that, the good job is answered, and the peer can still talk */
    if (!good_answered) {
        raw_recv(s, &h, &nframes);
        ck_assert_int_eq(h.cmd, WIRE_RESULT);
        ck_assert(wire_str_eq(h.id, "good-1"));
        ck_assert_int_eq(h.state, WIRE_ST_OK);
        ck_assert_int_eq(nframes, 2);
    }
    wire_hdr_t ping = {.cmd = WIRE_PING, .req = 5, .has_req = true};
    msgpack_sbuffer b4 = hdr(&ping);
    const void *f10[] = {b4.data};
    size_t l10[] = {b4.size};
    raw_send(s, f10, l10, 1);
    raw_recv(s, &h, NULL);
    ck_assert_int_eq(h.cmd, WIRE_PONG);
    ck_assert_uint_eq(h.req, 5);
    ck_assert_int_eq(stat_of(c, "malformed"), 8);

    /* a REQ socket works too: the broker keeps its envelope */
    void *r = raw_connect(zctx, ZMQ_REQ, d.endpoint);
    raw_send(r, f10, l10, 1);
    raw_recv(r, &h, NULL);
    ck_assert_int_eq(h.cmd, WIRE_PONG);

    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&b2);
    msgpack_sbuffer_destroy(&b3);
    msgpack_sbuffer_destroy(&b4);
    zmq_close(s);
    zmq_close(r);
    zmq_ctx_term(zctx);
    down();
}
END_TEST

/* libforq applies the structural check to what a broker sends, too. */
START_TEST(test_client_refuses_malformed_result)
{
    char dir[64], ep[128];
    void *zctx = zmq_ctx_new(), *router = zmq_socket(zctx, ZMQ_ROUTER);
    forq_client_opts_t o;
    forq_client_t *cl;
    forq_future_t *f;
    zmq_msg_t ident, hm, am;
    int tmo = test_ms(5000), zero = 0;
    msgpack_zone zone;
    wire_hdr_t h;
    wire_err_t err;

    temp_dir(dir, sizeof(dir), "forq-fake");
    snprintf(ep, sizeof(ep), "ipc://%s/fake.sock", dir);
    zmq_setsockopt(router, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof(zero));
    ck_assert_int_eq(zmq_bind(router, ep), 0);
    forq_client_opts_init(&o);
    o.endpoint = ep;
    ck_assert_int_eq(forq_client_new(&o, &cl), FORQ_OK);
    f = submit_json(cl, "echo", "1", NULL);
    /* the fake broker reads the submit and answers "ok" with a lying payload */
    zmq_msg_init(&ident);
    zmq_msg_init(&hm);
    zmq_msg_init(&am);
    ck_assert_int_ge(zmq_msg_recv(&ident, router, 0), 0);
    ck_assert_int_ge(zmq_msg_recv(&hm, router, 0), 0);
    ck_assert_int_ge(zmq_msg_recv(&am, router, 0), 0);
    msgpack_zone_init(&zone, 1024);
    ck_assert_int_eq(wire_hdr_decode(zmq_msg_data(&hm), zmq_msg_size(&hm), &zone, &h, &err), 0);
    wire_hdr_t r = {.cmd = WIRE_RESULT, .id = h.id, .state = WIRE_ST_OK};
    msgpack_sbuffer sb = hdr(&r);
    zmq_msg_send(&ident, router, ZMQ_SNDMORE);
    zmq_send(router, sb.data, sb.size, ZMQ_SNDMORE);
    zmq_send(router, "\xdd\xff\xff\xff\xff", 5, 0);
    ck_assert_int_eq(wait_state(f, 5000), FORQ_STATE_LOST);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(f), "malformed result"));
    forq_future_destroy(&f);
    forq_client_destroy(&cl);
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&zone);
    zmq_msg_close(&hm);
    zmq_msg_close(&am);
    zmq_close(router);
    zmq_ctx_term(zctx);
    char path[160];
    snprintf(path, sizeof(path), "%s/fake.sock", dir);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* ---- shutdown ---- */

START_TEST(test_sigterm_answers_everything)
{
    up(1, NULL);
    forq_submit_opts_t o = submit_opts();
    o.id = "long";
    forq_future_t *running = submit_json(c, "sleep", "[0.3]", &o);
    forq_future_t *queued[5];
    for (int i = 0; i < 5; i++)
        queued[i] = submit_json(c, "echo", "1", NULL);
    wait_running(c, "long");
    kill(d.pid, SIGTERM);
    /* the running job finishes within the grace time, the queued ones are cancelled */
    ck_assert_int_eq(wait_state(running, 10000), FORQ_STATE_OK);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(wait_state(queued[i], 10000), FORQ_STATE_CANCELLED);
        ck_assert_str_eq(forq_future_code(queued[i]), "shutting_down");
        forq_future_destroy(&queued[i]);
    }
    forq_future_destroy(&running);
    down();
}
END_TEST

START_TEST(test_sigterm_grace_over)
{
    const char *extra[] = {"--grace", "0", NULL};
    up(1, extra);
    forq_submit_opts_t o = submit_opts();
    o.id = "long";
    forq_future_t *running = submit_json(c, "sleep", "[30]", &o);
    wait_running(c, "long");
    kill(d.pid, SIGTERM);
    ck_assert_int_eq(wait_state(running, 10000), FORQ_STATE_CANCELLED);
    ck_assert_str_eq(forq_future_code(running), "shutting_down");
    forq_future_destroy(&running);
    down();
}
END_TEST

START_TEST(test_start_errors)
{
    forqd_t x;
    const char *missing[] = {"--tasks", "/nonexistent/plugin.so", NULL};
    ck_assert_int_eq(forqd_start_fail(&x, missing), 1);
    ck_assert(forqd_log_has(&x, "/nonexistent/plugin.so"));
    forqd_stop(&x);
    const char *bad[] = {"--tasks", getenv("FORQ_TEST_BAD_PLUGIN"), NULL};
    ck_assert_int_eq(forqd_start_fail(&x, bad), 1);
    ck_assert(forqd_log_has(&x, "task ABI"));
    forqd_stop(&x);
    const char *sd[] = {"--state-dir", "/proc/forq-cannot-be", NULL};
    ck_assert_int_eq(forqd_start_fail(&x, sd), 1);
    ck_assert(forqd_log_has(&x, "cannot create the state directory"));
    forqd_stop(&x);
    const char *fs[] = {"--fsync", "sometimes", NULL};
    ck_assert_int_eq(forqd_start_fail(&x, fs), 1);
    ck_assert(forqd_log_has(&x, "--fsync takes always, everysec or no"));
    forqd_stop(&x);
    const char *flag[] = {"--workers", "zero", NULL};
    ck_assert_int_eq(forqd_start_fail(&x, flag), 1);
    ck_assert(forqd_log_has(&x, "--workers takes a whole number"));
    forqd_stop(&x);
    /* an endpoint a live forqd holds is not stolen */
    up(1, NULL);
    const char *same[] = {"--listen", d.endpoint, NULL};
    ck_assert_int_eq(forqd_start_fail(&x, same), 1);
    ck_assert(forqd_log_has(&x, "in use"));
    forqd_stop(&x);
    forq_future_t *f = submit_json(c, "echo", "1", NULL);
    ASSERT_RESULT(f, "1");
    forq_future_destroy(&f);
    down();
}
END_TEST

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
    snprintf(cmd, sizeof(cmd), "%s -e ipc:///tmp/forq-nobody-%d.sock --connect-timeout 0.2 ping "
             ">/dev/null 2>&1", getenv("FORQ_CLI"), (int)getpid());
    int st = system(cmd);
    ck_assert_int_eq(WEXITSTATUS(st), 8);
}
END_TEST

static Suite *e2e_suite(void)
{
    Suite *s = suite_create("e2e");
    TCase *core = tcase_create("core");
    TCase *full;

    tcase_set_timeout(core, test_ms(60));
    tcase_add_test(core, test_builtin_tasks);
    tcase_add_test(core, test_large_payloads_through_the_worker_link);
    tcase_add_test(core, test_cancel_queued_and_running);
    tcase_add_test(core, test_crashes_fail_only_their_job);
    tcase_add_test(core, test_malformed_frames);
    tcase_add_test(core, test_sigterm_answers_everything);
    tcase_add_test(core, test_many_clients_exactly_once);
    tcase_add_test(core, test_run_timeout);
    suite_add_tcase(s, core);
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    /* not under valgrind, where a worker is too slow for any task to count as short */
    tcase_add_test(full, test_jobs_sent_ahead);
    tcase_add_test(full, test_ahead_within_max_jobs_per_worker);
    tcase_add_test(full, test_prefetch_off);
    tcase_add_test(full, test_reload);
    tcase_add_test(full, test_reload_endpoints);
#ifdef FORQ_TEST_SYSTEMD
    tcase_add_test(full, test_sd_notify);
#endif
    tcase_set_timeout(full, test_ms(60));
    tcase_add_test(full, test_bad_args_are_errors);
    tcase_add_test(full, test_rejections);
    tcase_add_test(full, test_queue_deadline);
    tcase_add_test(full, test_retries);
    tcase_add_test(full, test_recycling);
    tcase_add_test(full, test_resource_limits);
    tcase_add_test(full, test_forkserver_restart);
    tcase_add_test(full, test_priorities);
    tcase_add_test(full, test_fair_between_clients);
    tcase_add_test(full, test_queue_limits);
    tcase_add_test(full, test_duplicate_id);
    tcase_add_test(full, test_client_destroyed_with_pending_futures);
    tcase_add_test(full, test_sigterm_grace_over);
    tcase_add_test(full, test_client_refuses_malformed_result);
    tcase_add_test(full, test_slow_client_backlog);
    tcase_add_test(full, test_start_errors);
    tcase_add_test(full, test_cli_exit_codes);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(e2e_suite());
}
