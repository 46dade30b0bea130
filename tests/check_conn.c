/* check_conn.c - libforq's connection (client/conn.c) end to end: what it learns from forqd at
 * connect, and what it does when forqd is too small for a message, away, back, replaced or
 * not forqd at all.
 *
 * - an oversized submit or dict value is refused locally with too_large, and the connection and
 *   the other jobs are unharmed (ZeroMQ drops a connection for a frame over forqd's limit);
 * - a forqd that dies and stays down, or was never there: pending futures resolve LOST after
 *   lost_after_ms, and the default is not "for ever";
 * - a reconnection to the same forqd (through a byte proxy the test cuts) is not a restart: a
 *   job forqd has is answered, one it never got is not called "restarted" nor submitted again;
 *   a killed and restarted forqd (a new instance) is a restart (check_executor.c);
 * - no forqd at the endpoint: a missing or dead ipc socket fails at once, an unreachable tcp
 *   endpoint costs the connect timeout and no linger, and a peer that is not forqd is named. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"

#include <errno.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static forqd_t d;
static forq_client_t *c;

#define T 5000

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* A client of `ep` with a connect check and lost_after_ms (0 keeps the default). */
static forq_client_t *client_of(const char *ep, int lost_after_ms)
{
    forq_client_opts_t o;
    forq_client_t *cl = NULL;

    forq_client_opts_init(&o);
    o.endpoint = ep;
    o.connect_timeout_ms = test_ms(T);
    if (lost_after_ms)
        o.lost_after_ms = lost_after_ms;
    ck_assert_msg(forq_client_new(&o, &cl) == FORQ_OK, "%s", forq_errdetail());
    return cl;
}

/* msgpack [bin of n bytes]: args of n + 6 bytes. */
static void big_args(msgpack_sbuffer *sb, size_t n)
{
    msgpack_packer pk;
    char *zeros = calloc(1, n ? n : 1);

    ck_assert_ptr_nonnull(zeros);
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_bin(&pk, n);
    msgpack_pack_bin_body(&pk, zeros, n);
    free(zeros);
}

/* ---- item 10: oversized messages ---- */

START_TEST(test_oversized_submit_refused_locally)
{
    static const char *const extra[] = {"--max-payload", "65536", NULL};
    forq_submit_opts_t o = submit_opts();
    forq_future_t *other, *big = NULL, *after;
    msgpack_sbuffer sb;

    e2e_up(&d, &c, 1, extra);
    o.id = "other";
    other = submit_json(c, "sleep", "[0.5]", &o);
    wait_running(c, "other");
    /* over max_payload + 4 KiB: sent, ZeroMQ would drop the connection */
    big_args(&sb, 80000);
    o.id = "big";
    ck_assert_msg(forq_submit(c, "echo", sb.data, sb.size, &o, &big) == FORQ_ERR_INVALID,
                  "an args frame of %zu bytes was accepted for a forqd of --max-payload 65536",
                  sb.size);
    ck_assert_ptr_null(big);
    ck_assert_msg(strstr(forq_errdetail(), "too_large") && strstr(forq_errdetail(), "80006") &&
                      strstr(forq_errdetail(), "65536"),
                  "detail: %s", forq_errdetail());
    /* with retries too: nothing is sent, so nothing is sent again */
    o.retries = 2;
    ck_assert_int_eq(forq_submit(c, "echo", sb.data, sb.size, &o, &big), FORQ_ERR_INVALID);
    msgpack_sbuffer_destroy(&sb);
    /* under the limit but over max_payload: forqd would refuse it; so does the client */
    big_args(&sb, 65536);
    ck_assert_int_eq(forq_submit(c, "echo", sb.data, sb.size, &o, &big), FORQ_ERR_INVALID);
    msgpack_sbuffer_destroy(&sb);
    /* a dict value as well */
    big_args(&sb, 70000);
    ck_assert_int_eq(forq_dict_set(c, "d", "k", sb.data, sb.size, T, NULL), FORQ_ERR_INVALID);
    ck_assert_msg(strstr(forq_errdetail(), "too_large"), "detail: %s", forq_errdetail());
    msgpack_sbuffer_destroy(&sb);
    /* the connection and the other job are unharmed */
    ck_assert_int_eq(wait_state(other, 10000), FORQ_STATE_OK);
    ck_assert_uint_eq(forq_future_attempts(other), 1);
    after = submit_json(c, "echo", "[1]", NULL);
    ASSERT_RESULT(after, "[1]");
    ck_assert_int_eq(stat_of(c, "submitted"), 2);
    forq_future_destroy(&other);
    forq_future_destroy(&after);
    e2e_down(&d, &c);
}
END_TEST

/* Before forqd told its limit, the documented default (64 MiB) holds. */
START_TEST(test_oversized_submit_default_limit)
{
    forq_future_t *f = NULL;
    msgpack_sbuffer sb;

    e2e_up(&d, &c, 1, NULL);
    big_args(&sb, (64u << 20) + 1);
    ck_assert_int_eq(forq_submit(c, "echo", sb.data, sb.size, NULL, &f), FORQ_ERR_INVALID);
    ck_assert_msg(strstr(forq_errdetail(), "too_large"), "detail: %s", forq_errdetail());
    msgpack_sbuffer_destroy(&sb);
    e2e_down(&d, &c);
}
END_TEST

/* ---- item 11: a forqd that does not come back ---- */

START_TEST(test_lost_after_default_is_finite)
{
    forq_client_opts_t o;
    forq_client_opts_init(&o);
    ck_assert_int_eq(o.lost_after_ms, 60000);
}
END_TEST

/* forqd killed and not restarted: every pending future resolves LOST after lost_after_ms. */
START_TEST(test_forqd_gone_futures_lost)
{
    forq_client_t *cl;
    forq_future_t *running, *queued;
    struct timespec t0;

    e2e_up(&d, &c, 1, NULL);
    cl = client_of(d.endpoint, 500);
    running = submit_json(cl, "sleep", "[30]", NULL);
    queued = submit_json(cl, "sleep", "[30]", NULL);
    wait_running(c, forq_future_id(running));
    forq_client_destroy(&c);
    e2e_kill(&d);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(wait_state(running, 10000), FORQ_STATE_LOST);
    ck_assert_int_eq(wait_state(queued, 10000), FORQ_STATE_LOST);
    ck_assert_msg(elapsed_ms(&t0) < test_ms(5000), "lost after %ld ms", elapsed_ms(&t0));
    ck_assert_msg(strstr(forq_future_detail(running), "unreachable"), "%s",
                  forq_future_detail(running));
    forq_future_destroy(&running);
    forq_future_destroy(&queued);
    forq_client_destroy(&cl);
    forqd_stop(&d);
}
END_TEST

/* A forqd that was never there: no disconnection ever happens, the futures still end. */
START_TEST(test_never_connected_futures_lost)
{
    forq_client_opts_t o;
    forq_client_t *cl;
    forq_future_t *f;
    char dir[256], ep[320];

    temp_dir(dir, sizeof(dir), "forq-conn");
    snprintf(ep, sizeof(ep), "ipc://%s/none.sock", dir);
    forq_client_opts_init(&o);
    o.endpoint = ep;
    o.lost_after_ms = 300;
    ck_assert_int_eq(forq_client_new(&o, &cl), FORQ_OK);
    f = submit_json(cl, "sleep", "[1]", NULL);
    ck_assert_int_eq(wait_state(f, 5000), FORQ_STATE_LOST);
    ck_assert_msg(strstr(forq_future_detail(f), "unreachable"), "%s", forq_future_detail(f));
    forq_future_destroy(&f);
    forq_client_destroy(&cl);
    rmdir(dir);
}
END_TEST

/* ---- a proxy between client and forqd, to cut the connection while forqd lives on ---- */

#define PROXY_PAIRS 8

typedef struct {
    char path[300];          /* where clients connect */
    char target[300];        /* forqd's socket */
    int lfd;                 /* listening socket */
    int fds[PROXY_PAIRS][2]; /* client side, forqd side; -1 when free */
    pthread_t th;
    atomic_bool stop;      /* end the thread */
    atomic_bool cut;       /* close every connection now */
    atomic_bool blackhole; /* drop what clients send */
} proxy_t;

static void proxy_close(proxy_t *p, int i)
{
    close(p->fds[i][0]);
    close(p->fds[i][1]);
    p->fds[i][0] = p->fds[i][1] = -1;
}

static bool write_all(int fd, const char *buf, ssize_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, (size_t)n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        buf += w;
        n -= w;
    }
    return true;
}

/* An AF_UNIX address for path (which must fit). */
static struct sockaddr_un unix_addr(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);

    ck_assert_msg(n < sizeof(sa.sun_path), "socket path too long: %s", path);
    memcpy(sa.sun_path, path, n + 1);
    return sa;
}

static int unix_connect(const char *path)
{
    struct sockaddr_un sa = unix_addr(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *proxy_main(void *arg)
{
    proxy_t *p = arg;
    char buf[65536];

    while (!atomic_load(&p->stop)) {
        struct pollfd pf[1 + 2 * PROXY_PAIRS];
        int who[1 + 2 * PROXY_PAIRS], n = 0;

        if (atomic_exchange(&p->cut, false))
            for (int i = 0; i < PROXY_PAIRS; i++)
                if (p->fds[i][0] >= 0)
                    proxy_close(p, i);
        pf[n] = (struct pollfd){p->lfd, POLLIN, 0};
        who[n++] = -1;
        for (int i = 0; i < PROXY_PAIRS; i++) {
            if (p->fds[i][0] < 0)
                continue;
            for (int side = 0; side < 2; side++) {
                pf[n] = (struct pollfd){p->fds[i][side], POLLIN, 0};
                who[n++] = 2 * i + side;
            }
        }
        if (poll(pf, (nfds_t)n, 20) <= 0)
            continue;
        for (int k = 1; k < n; k++) {
            int i = who[k] / 2, side = who[k] % 2;
            if (!pf[k].revents || p->fds[i][0] < 0)
                continue;
            ssize_t r = read(p->fds[i][side], buf, sizeof(buf));
            if (r <= 0) {
                proxy_close(p, i);
                continue;
            }
            if (side == 0 && atomic_load(&p->blackhole))
                continue; /* swallowed */
            if (!write_all(p->fds[i][!side], buf, r))
                proxy_close(p, i);
        }
        if (pf[0].revents & POLLIN) {
            int a = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC), b = -1, i;
            for (i = 0; i < PROXY_PAIRS && p->fds[i][0] >= 0; i++)
                ;
            if (a >= 0 && i < PROXY_PAIRS && (b = unix_connect(p->target)) >= 0) {
                p->fds[i][0] = a;
                p->fds[i][1] = b;
            } else if (a >= 0) {
                close(a);
            }
        }
    }
    for (int i = 0; i < PROXY_PAIRS; i++)
        if (p->fds[i][0] >= 0)
            proxy_close(p, i);
    return NULL;
}

/* A proxy at <dir>/proxy.sock to forqd's <dir>/forqd.sock. */
static void proxy_start(proxy_t *p, const char *dir)
{
    struct sockaddr_un sa;

    memset(p, 0, sizeof(*p));
    snprintf(p->path, sizeof(p->path), "%s/proxy.sock", dir);
    snprintf(p->target, sizeof(p->target), "%s/forqd.sock", dir);
    for (int i = 0; i < PROXY_PAIRS; i++)
        p->fds[i][0] = p->fds[i][1] = -1;
    sa = unix_addr(p->path);
    p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(p->lfd, 0);
    ck_assert_int_eq(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(p->lfd, 16), 0);
    ck_assert_int_eq(pthread_create(&p->th, NULL, proxy_main, p), 0);
}

static void proxy_stop(proxy_t *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->th, NULL);
    close(p->lfd);
    unlink(p->path);
}

/* ---- item 10: a reconnection is a restart only when forqd's instance changed ---- */

/* The connection drops and comes back to the same forqd: a job it has is answered; jobs whose
 * submits were lost on the way are not "restarted", and are not run again. */
START_TEST(test_reconnect_same_instance)
{
    forq_submit_opts_t o = submit_opts();
    forq_future_t *known, *cut, *cut_retries;
    forq_client_t *pc;
    forq_job_info_t info;
    proxy_t px;
    char ep[320];

    e2e_up(&d, &c, 2, NULL);
    proxy_start(&px, d.dir);
    snprintf(ep, sizeof(ep), "ipc://%s", px.path);
    pc = client_of(ep, 0);
    o.id = "known";
    known = submit_json(pc, "sleep", "[1]", &o);
    wait_running(c, "known");
    atomic_store(&px.blackhole, true);
    o.id = "cut";
    cut = submit_json(pc, "echo", "[1]", &o);
    o.id = "cut-retries";
    o.retries = 1;
    cut_retries = submit_json(pc, "echo", "[2]", &o);
    usleep(300000); /* the submits leave the client, into the proxy's hole */
    atomic_store(&px.blackhole, false);
    atomic_store(&px.cut, true);
    ck_assert_int_eq(wait_state(known, 15000), FORQ_STATE_OK);
    ck_assert_uint_eq(forq_future_attempts(known), 1);
    ck_assert_int_eq(wait_state(cut, 15000), FORQ_STATE_LOST);
    ck_assert_msg(strstr(forq_future_detail(cut), "did not restart"), "%s",
                  forq_future_detail(cut));
    ck_assert_int_eq(wait_state(cut_retries, 15000), FORQ_STATE_LOST);
    ck_assert_msg(strstr(forq_future_detail(cut_retries), "did not restart"), "%s",
                  forq_future_detail(cut_retries));
    /* not submitted again: the same forqd may have run it (a result expired) */
    ck_assert_int_eq(forq_client_status(c, "cut-retries", test_ms(T), &info), FORQ_OK);
    ck_assert_int_eq(info.state, FORQ_STATE_UNKNOWN);
    forq_future_destroy(&known);
    forq_future_destroy(&cut);
    forq_future_destroy(&cut_retries);
    forq_client_destroy(&pc);
    proxy_stop(&px);
    e2e_down(&d, &c);
}
END_TEST

/* ---- item 12: no forqd at the endpoint ---- */

/* forq_client_new() with a connect check; returns its error, the time it took in *ms. */
static forq_err_t connect_to(const char *ep, int timeout_ms, long *ms)
{
    forq_client_opts_t o;
    forq_client_t *cl = NULL;
    struct timespec t0;
    forq_err_t e;

    forq_client_opts_init(&o);
    o.endpoint = ep;
    o.connect_timeout_ms = timeout_ms;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    e = forq_client_new(&o, &cl);
    *ms = elapsed_ms(&t0);
    forq_client_destroy(&cl);
    return e;
}

START_TEST(test_missing_socket_fails_at_once)
{
    char dir[256], ep[320];
    long ms;

    temp_dir(dir, sizeof(dir), "forq-conn");
    snprintf(ep, sizeof(ep), "ipc://%s/forqd.sock", dir);
    ck_assert_int_eq(connect_to(ep, 5000, &ms), FORQ_ERR_CONNECT);
    ck_assert_msg(strstr(forq_errdetail(), "does not exist"), "%s", forq_errdetail());
    ck_assert_msg(strstr(forq_errdetail(), ep), "%s", forq_errdetail());
    ck_assert_msg(ms < test_ms(1000), "%ld ms for a missing socket file", ms);
    rmdir(dir);
}
END_TEST

/* A socket file left behind, nothing listening. */
START_TEST(test_dead_socket_fails_at_once)
{
    struct sockaddr_un sa;
    char dir[256], ep[320], path[300];
    long ms;
    int fd;

    temp_dir(dir, sizeof(dir), "forq-conn");
    snprintf(path, sizeof(path), "%s/forqd.sock", dir);
    sa = unix_addr(path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd); /* bound, never listening: as a dead forqd's */
    snprintf(ep, sizeof(ep), "ipc://%s", sa.sun_path);
    ck_assert_int_eq(connect_to(ep, 5000, &ms), FORQ_ERR_CONNECT);
    ck_assert_msg(strstr(forq_errdetail(), "nothing listens"), "%s", forq_errdetail());
    ck_assert_msg(ms < test_ms(1000), "%ld ms for a dead socket file", ms);
    unlink(sa.sun_path);
    rmdir(dir);
}
END_TEST

/* A tcp endpoint nobody answers: the connect timeout, and no linger after it. */
START_TEST(test_unreachable_costs_the_timeout_only)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    char ep[64];
    long ms;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* a port that was free a moment ago: refused, and ZeroMQ keeps retrying */
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", ntohs(sa.sin_port));
    ck_assert_int_eq(connect_to(ep, 300, &ms), FORQ_ERR_CONNECT);
    ck_assert_msg(strstr(forq_errdetail(), "no forqd at"), "%s", forq_errdetail());
    ck_assert_msg(ms < 300 + test_ms(1000), "%ld ms for a 300 ms connect timeout", ms);
}
END_TEST

/* Another ZeroMQ service at the endpoint: a socket forq cannot talk to (PUB), or one that
 * answers with something that is not forq's protocol. */
typedef struct {
    void *sock;
    atomic_bool stop;
} peer_t;

static void *garbage_peer(void *arg)
{
    peer_t *p = arg;
    while (!atomic_load(&p->stop)) {
        zmq_pollitem_t it = {p->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        zmq_msg_t id, m;
        int more = 1;
        size_t ml = sizeof(more);
        zmq_msg_init(&id);
        zmq_msg_recv(&id, p->sock, 0);
        while (zmq_getsockopt(p->sock, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
            zmq_msg_init(&m);
            zmq_msg_recv(&m, p->sock, 0);
            zmq_msg_close(&m);
        }
        zmq_msg_send(&id, p->sock, ZMQ_SNDMORE);
        zmq_send(p->sock, "HTTP/1.0 400 Bad Request", 24, 0);
    }
    return NULL;
}

static void not_forqd(int type)
{
    void *ctx = zmq_ctx_new();
    peer_t p = {.sock = zmq_socket(ctx, type)};
    pthread_t th;
    char dir[256], ep[320];
    long ms;
    int zero = 0;

    memset(&th, 0, sizeof(th));
    temp_dir(dir, sizeof(dir), "forq-conn");
    snprintf(ep, sizeof(ep), "ipc://%s/other.sock", dir);
    zmq_setsockopt(p.sock, ZMQ_LINGER, &zero, sizeof(zero));
    ck_assert_int_eq(zmq_bind(p.sock, ep), 0);
    if (type == ZMQ_ROUTER)
        ck_assert_int_eq(pthread_create(&th, NULL, garbage_peer, &p), 0);
    ck_assert_int_eq(connect_to(ep, test_ms(1000), &ms), FORQ_ERR_CONNECT);
    ck_assert_msg(strstr(forq_errdetail(), "is not forqd"), "%s", forq_errdetail());
    if (type == ZMQ_ROUTER) {
        atomic_store(&p.stop, true);
        pthread_join(th, NULL);
    }
    zmq_close(p.sock);
    zmq_ctx_term(ctx);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_peer_of_another_kind)
{
    not_forqd(ZMQ_PUB);
}
END_TEST

START_TEST(test_peer_answers_garbage)
{
    not_forqd(ZMQ_ROUTER);
}
END_TEST

static Suite *conn_suite(void)
{
    Suite *s = suite_create("conn");
    TCase *core = tcase_create("core"), *full;

    tcase_set_timeout(core, test_ms(60));
    tcase_add_test(core, test_oversized_submit_refused_locally);
    tcase_add_test(core, test_lost_after_default_is_finite);
    tcase_add_test(core, test_never_connected_futures_lost);
    tcase_add_test(core, test_missing_socket_fails_at_once);
    tcase_add_test(core, test_dead_socket_fails_at_once);
    suite_add_tcase(s, core);
    /* under valgrind (FORQ_TEST_CORE_ONLY) the core cases only */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(120));
    tcase_add_test(full, test_oversized_submit_default_limit);
    tcase_add_test(full, test_forqd_gone_futures_lost);
    tcase_add_test(full, test_reconnect_same_instance);
    tcase_add_test(full, test_unreachable_costs_the_timeout_only);
    tcase_add_test(full, test_peer_of_another_kind);
    tcase_add_test(full, test_peer_answers_garbage);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(conn_suite());
}
