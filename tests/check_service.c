/* check_service.c - end to end, forqd as a service: systemd's sd_notify protocol, SIGHUP
 * reload of the configuration, the plugins and the endpoints, SIGTERM draining, and start-up
 * errors. A real forqd on an ipc endpoint in a temporary directory (testutil_e2e.c). */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"
#include "wire.h"

#include <check.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <time.h>
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
    /* forq fails at once while the socket file is not there yet: ask until forqd is up */
    snprintf(cmd, sizeof(cmd), "%s -e ipc://%s/a.sock --connect-timeout 1 ping >/dev/null 2>&1",
             getenv("FORQ_CLI"), dir);
    for (int i = 0; i < test_ms(500) && system(cmd) != 0; i++)
        usleep(10000);
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

/* Under systemd's default soft limit of 1,024 descriptors, 1,100 clients: forqd takes its hard
 * limit at start, serves them all, and lives (libzmq used to abort on the accept it could not
 * make). */
START_TEST(test_many_clients_under_a_low_fd_limit)
{
    enum { N = 1100 };
    static void *s[N];
    struct rlimit r, low;
    char buf[256];
    int answered = 0, tmo = test_ms(10000), zero = 0;

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &r), 0);
    ck_assert_msg(r.rlim_max == RLIM_INFINITY || r.rlim_max >= 3 * N,
                  "this test needs a hard open-file limit of %d or more (ulimit -Hn)", 3 * N);
    low = r;
    low.rlim_cur = 1024;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    up(1, NULL);                                       /* forqd inherits the low soft limit */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &r), 0); /* the test's own sockets need room */

    void *zctx = zmq_ctx_new();
    zmq_ctx_set(zctx, ZMQ_MAX_SOCKETS, N + 64);
    wire_hdr_t ping = {.cmd = WIRE_PING};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_hdr_encode(&sb, &ping);
    for (int i = 0; i < N; i++) {
        s[i] = zmq_socket(zctx, ZMQ_DEALER);
        ck_assert_ptr_nonnull(s[i]);
        zmq_setsockopt(s[i], ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
        zmq_setsockopt(s[i], ZMQ_LINGER, &zero, sizeof(zero));
        ck_assert_int_eq(zmq_connect(s[i], d.endpoint), 0);
        ck_assert_int_ge(zmq_send(s[i], sb.data, sb.size, 0), 0);
    }
    for (int i = 0; i < N; i++)
        answered += zmq_recv(s[i], buf, sizeof(buf), 0) > 0;
    ck_assert_int_eq(answered, N);
    /* and forqd goes on as before */
    forq_future_t *f = submit_json(c, "echo", "[7]", NULL);
    ASSERT_RESULT(f, "[7]");
    forq_future_destroy(&f);
    for (int i = 0; i < N; i++)
        zmq_close(s[i]);
    zmq_ctx_term(zctx);
    msgpack_sbuffer_destroy(&sb);
    down();
}
END_TEST

/* Connect n raw stream sockets to addr, one after the other (each tcp handshake finished
 * before the next, so that the listen queue never overflows; a full ipc queue is retried), for
 * up to 10 s in all; returns how many connected. */
static int connect_raw(int *fds, int n, const struct sockaddr *addr, socklen_t alen)
{
    int done = 0;

    for (int tries = 0; done < n && tries < test_ms(1000); tries++) {
        for (; done < n; done++) {
            struct pollfd p = {.events = POLLOUT};
            p.fd = fds[done] =
                socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            ck_assert_int_ge(fds[done], 0);
            if (connect(fds[done], addr, alen) < 0 &&
                (errno != EINPROGRESS || poll(&p, 1, 1000) != 1)) {
                close(fds[done]);
                break;
            }
        }
        if (done < n)
            usleep(10000);
    }
    return done;
}

/* How many of fds forqd closed (the peer reads end of file): counted until the count is above
 * zero and has not moved for half a second (tcp connections over the listen queue finish their
 * handshake only when the kernel retries them), or for ms at most. */
static int closed_by_peer(const int *fds, int n, int ms)
{
    int closed = 0, last = -1, still = 0;
    char byte;

    for (int waited = 0; waited < ms && still < 5; waited += 100) {
        usleep(100000);
        closed = 0;
        for (int i = 0; i < n; i++)
            closed += recv(fds[i], &byte, 1, MSG_DONTWAIT | MSG_PEEK) == 0;
        still = closed > 0 && closed == last ? still + 1 : 0;
        last = closed;
    }
    return closed;
}

/* forqd's CPU time so far, in clock ticks. */
static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024], *p;
    long ut = 0, st = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    ck_assert_ptr_nonnull(f = fopen(path, "r"));
    ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
    fclose(f);
    ck_assert_ptr_nonnull(p = strrchr(buf, ')'));
    /* after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime stime */
    ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st),
                     2);
    return ut + st;
}

/* Under a hard limit of 1,024 descriptors, which forqd cannot raise, 1,100 connections over
 * ipc and then over tcp: forqd caps the connections it keeps below its limit, closes the extra
 * ones at once (libzmq aborted on the accept it could not make over ipc, and spun at 100 % CPU
 * over tcp), counts them, goes on serving the clients it has, and takes new ones when
 * connections end. */
START_TEST(test_connection_cap_under_a_low_hard_limit)
{
    enum { N = 1100 };
    static int fds[N];
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(in);
    char tcp_ep[64];
    int probe, status;

    /* a free tcp port for the second endpoint */
    probe = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(probe, (struct sockaddr *)&in, sizeof(in)), 0);
    ck_assert_int_eq(getsockname(probe, (struct sockaddr *)&in, &alen), 0);
    close(probe);
    snprintf(tcp_ep, sizeof(tcp_ep), "tcp://127.0.0.1:%d", ntohs(in.sin_port));
    const char *extra[] = {"--listen", tcp_ep, "--insecure-tcp", NULL};
    d.nofile = 1024;
    up(2, extra);
    d.nofile = 0;
    ck_assert_uint_lt(strlen(d.endpoint) - 6, sizeof(un.sun_path));
    memcpy(un.sun_path, d.endpoint + 6, strlen(d.endpoint) - 6 + 1); /* after "ipc://" */

    for (int round = 0; round < 2; round++) {
        const struct sockaddr *addr = round ? (struct sockaddr *)&in : (struct sockaddr *)&un;
        socklen_t len = round ? sizeof(in) : sizeof(un);
        int n = connect_raw(fds, N, addr, len), refused;
        long t0;

        ck_assert_int_eq(waitpid(d.pid, &status, WNOHANG), 0); /* forqd lives */
        ck_assert_msg(n == N, "%s: only %d of %d connections were made", round ? "tcp" : "ipc", n,
                      N);
        refused = closed_by_peer(fds, N, test_ms(10000));
        /* some were refused, most were kept, and holding the rest does not spin */
        ck_assert_msg(refused > 0 && refused < 300, "%d of %d refused", refused, N);
        t0 = cpu_ticks(d.pid);
        usleep(500000);
        ck_assert_int_lt(cpu_ticks(d.pid) - t0, sysconf(_SC_CLK_TCK) / 8);
        ck_assert_int_eq(waitpid(d.pid, &status, WNOHANG), 0);
        /* the client connected before goes on being served at the cap */
        forq_future_t *f = submit_json(c, "echo", "[7]", NULL);
        ASSERT_RESULT(f, "[7]");
        forq_future_destroy(&f);
        ck_assert_int_ge(stat_of(c, "conns_refused"), refused);
        for (int i = 0; i < N; i++)
            close(fds[i]);
    }
    ck_assert_int_gt(stat_of(c, "conn_cap"), 900);
    ck_assert_int_lt(stat_of(c, "conn_cap"), 1024);
    /* with the connections gone, a new client is served */
    forq_client_t *c2 = forqd_client(&d);
    forq_future_t *f = submit_json(c2, "echo", "[8]", NULL);
    ASSERT_RESULT(f, "[8]");
    forq_future_destroy(&f);
    forq_client_destroy(&c2);
    ck_assert(forqd_log_has(&d, "refused"));
    down();
}
END_TEST

START_TEST(test_start_errors)
{
    forqd_t x = {0};
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

static Suite *service_suite(void)
{
    Suite *s = suite_create("service");
    TCase *core = tcase_create("core");
    TCase *full;

    tcase_set_timeout(core, test_ms(60));
    tcase_add_test(core, test_sigterm_answers_everything);
    suite_add_tcase(s, core);
    /* under valgrind (FORQ_TEST_CORE_ONLY) the core cases only */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(60));
    tcase_add_test(full, test_reload);
    tcase_add_test(full, test_reload_endpoints);
#ifdef FORQ_TEST_SYSTEMD
    tcase_add_test(full, test_sd_notify);
#endif
    tcase_add_test(full, test_sigterm_grace_over);
    tcase_add_test(full, test_start_errors);
    tcase_add_test(full, test_many_clients_under_a_low_fd_limit);
    tcase_add_test(full, test_connection_cap_under_a_low_hard_limit);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(service_suite());
}
