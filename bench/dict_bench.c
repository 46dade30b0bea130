/* dict_bench.c - ops/s of the dict service's set, get and incr, measured three ways:
 *
 *     dict_bench ENDPOINT OPS CLIENTS          CLIENTS threads, each with its own connection,
 *                                              doing synchronous calls (what a threaded program
 *                                              sees); prints "set N get N incr N" (ops/s)
 *     dict_bench inflight ENDPOINT OPS DEPTH   one thread, one connection, DEPTH requests in
 *                                              flight through libforq's async dict API
 *                                              (forq_dict_submit): pipelining, as
 *                                              redis-benchmark -P does on one connection
 *     dict_bench multi ENDPOINT KEYS DEPTH BATCH  one thread, DEPTH async mset/mget requests
 *                                              in flight, each of BATCH keys; prints
 *                                              "mset N mget N" in keys/s (the peer: redis-benchmark
 *                                              -P BATCH, also keys/s)
 *     dict_bench cache ENDPOINT OPS N          the client-side cache: OPS gets of one cached key
 *                                              ("cached_get" ops/s), and N times a set by
 *                                              one client until the copy is gone at another
 *                                              ("inval_p50_us", "inval_p99_us")
 *     dict_bench latency ENDPOINT N            N synchronous gets, one at a time, after a warm-up:
 *                                              "p50_us X p99_us Y" (beside forq_bench zmq-latency,
 *                                              ZeroMQ's own DEALER/ROUTER round trip)
 *     dict_bench loop ENDPOINT OPS CONNS       one thread, CONNS raw DEALER sockets speaking the
 *                                              protocol, each with one request outstanding,
 *                                              driven by one epoll over their ZMQ_FDs: what
 *                                              redis-benchmark -c CONNS does with its one
 *                                              event loop
 *
 * Every reply is checked (a dict_reply, not an error). Keys are "k<client>-<i % 100>" as in
 * redis-benchmark's small keyspace; incr works on one counter. DICT_BENCH_ONLY=get (or set,
 * incr) in the environment runs that op alone (to profile forqd one op at a time). */
#define _GNU_SOURCE
#include <forq/forq.h>

#include <msgpack.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static const char *const names[] = {"set", "get", "incr"};

/* Is op left out by DICT_BENCH_ONLY? */
static bool skip(int op)
{
    const char *only = getenv("DICT_BENCH_ONLY");
    return only && *only && strcmp(only, names[op]) != 0;
}

typedef struct {
    const char *ep;
    int id, ops, op, failed;
    pthread_barrier_t *start;
    forq_client_t *c;
} th_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static forq_client_t *connect_to(const char *ep)
{
    forq_client_opts_t o;
    forq_client_t *c;
    forq_client_opts_init(&o);
    o.endpoint = ep;
    o.connect_timeout_ms = 5000;
    if (forq_client_new(&o, &c) != FORQ_OK) {
        fprintf(stderr, "dict_bench: %s\n", forq_errdetail());
        exit(1);
    }
    return c;
}

static void *run(void *arg)
{
    th_t *t = arg;
    char key[32];
    pthread_barrier_wait(t->start);
    for (int i = 0; i < t->ops; i++) {
        snprintf(key, sizeof(key), "k%d-%d", t->id, i % 100);
        void *v = NULL;
        size_t len;
        int64_t n;
        forq_err_t e = t->op == 0   ? forq_dict_set(t->c, "bench", key, "\xcd\x30\x39", 3, -1, NULL)
                       : t->op == 1 ? forq_dict_get(t->c, "bench", key, -1, &v, &len, NULL)
                                    : forq_dict_incr(t->c, "bench", "counter", 1, -1, &n);
        free(v);
        t->failed += e != FORQ_OK;
    }
    pthread_barrier_wait(t->start);
    return NULL;
}

static int threads(const char *ep, int ops, int clients)
{
    th_t *t = calloc((size_t)clients, sizeof(*t));
    pthread_t *th = calloc((size_t)clients, sizeof(*th));
    pthread_barrier_t start;

    for (int i = 0; i < clients; i++)
        t[i].c = connect_to(ep);
    for (int op = 0; op < 3; op++) {
        pthread_barrier_init(&start, NULL, (unsigned)clients + 1);
        for (int i = 0; i < clients; i++) {
            t[i] = (th_t){ep, i, ops / clients, op, 0, &start, t[i].c};
            pthread_create(&th[i], NULL, run, &t[i]);
        }
        pthread_barrier_wait(&start);
        double t0 = now_s();
        pthread_barrier_wait(&start);
        double dt = now_s() - t0;
        int failed = 0;
        for (int i = 0; i < clients; i++) {
            pthread_join(th[i], NULL);
            failed += t[i].failed;
        }
        pthread_barrier_destroy(&start);
        if (failed)
            return fprintf(stderr, "%d %s calls failed\n", failed, names[op]), 1;
        printf("%s %.0f\n", names[op], (double)(ops / clients * clients) / dt);
    }
    for (int i = 0; i < clients; i++)
        forq_client_destroy(&t[i].c);
    free(t);
    free(th);
    return 0;
}

/* One connection, `depth` async requests in flight: a full window waits for its oldest. */
static int inflight(const char *ep, int ops, int depth)
{
    forq_client_t *c = connect_to(ep);
    forq_future_t **win = calloc((size_t)depth, sizeof(*win));
    char key[32];

    for (int op = 0; op < 3; op++) {
        int failed = 0;
        double t0 = now_s();
        if (skip(op))
            continue;
        for (int i = 0; i < ops + depth; i++) {
            int slot = i % depth;
            if (win[slot]) {
                failed += forq_future_wait(win[slot], -1) != FORQ_OK ||
                          forq_dict_reply(win[slot], NULL, NULL, NULL) != FORQ_OK;
                forq_future_destroy(&win[slot]);
            }
            if (i >= ops)
                continue;
            forq_dict_op_t o;
            forq_dict_op_init(&o);
            snprintf(key, sizeof(key), "k0-%d", i % 100);
            o.op = names[op];
            o.name = "bench";
            o.key = op == 2 ? "counter" : key;
            o.delta = 1;
            if (op == 0) {
                o.value = "\xcd\x30\x39";
                o.len = 3;
            }
            if (forq_dict_submit(c, &o, &win[slot]) != FORQ_OK)
                return fprintf(stderr, "dict_bench: submit: %s\n", forq_errdetail()), 1;
        }
        double dt = now_s() - t0;
        if (failed)
            return fprintf(stderr, "%d %s calls failed\n", failed, names[op]), 1;
        printf("%s %.0f\n", names[op], ops / dt);
    }
    forq_client_destroy(&c);
    free(win);
    return 0;
}

/* The msgpack value of one mset (a map of batch keys) or mget (an array of them) into sb. */
static void pack_multi(msgpack_sbuffer *sb, bool set, int first, int batch)
{
    msgpack_packer pk;
    char key[32];
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (set)
        msgpack_pack_map(&pk, (size_t)batch);
    else
        msgpack_pack_array(&pk, (size_t)batch);
    for (int j = 0; j < batch; j++) {
        int n = snprintf(key, sizeof(key), "k0-%d", (first + j) % 100);
        msgpack_pack_str_with_body(&pk, key, (size_t)n);
        if (set)
            msgpack_pack_uint16(&pk, 12345);
    }
}

/* One connection, `depth` mset (then mget) requests of `batch` keys in flight. */
static int multi(const char *ep, int keys, int depth, int batch)
{
    static const char *const mnames[] = {"mset", "mget"};
    forq_client_t *c = connect_to(ep);
    forq_future_t **win = calloc((size_t)depth, sizeof(*win));
    int reqs = keys / batch;
    msgpack_sbuffer sb;

    msgpack_sbuffer_init(&sb);
    for (int op = 0; op < 2; op++) {
        int failed = 0;
        double t0 = now_s();
        for (int i = 0; i < reqs + depth; i++) {
            int slot = i % depth;
            if (win[slot]) {
                uint64_t count = 0;
                failed += forq_future_wait(win[slot], -1) != FORQ_OK ||
                          forq_dict_reply(win[slot], NULL, NULL, &count) != FORQ_OK ||
                          count != (uint64_t)(op == 0 ? (batch < 100 ? batch : 100) : batch);
                forq_future_destroy(&win[slot]);
            }
            if (i >= reqs)
                continue;
            forq_dict_op_t o;
            forq_dict_op_init(&o);
            pack_multi(&sb, op == 0, i * batch, batch);
            o.op = mnames[op];
            o.name = "bench";
            o.value = sb.data;
            o.len = sb.size;
            if (forq_dict_submit(c, &o, &win[slot]) != FORQ_OK)
                return fprintf(stderr, "dict_bench: submit: %s\n", forq_errdetail()), 1;
        }
        double dt = now_s() - t0;
        if (failed)
            return fprintf(stderr, "%d %s calls failed\n", failed, mnames[op]), 1;
        printf("%s %.0f\n", mnames[op], (double)reqs * batch / dt);
    }
    msgpack_sbuffer_destroy(&sb);
    forq_client_destroy(&c);
    free(win);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t invalidations(forq_client_t *c)
{
    uint64_t n = 0;
    forq_dict_cache_stats(c, NULL, NULL, &n, NULL);
    return n;
}

/* Cached gets per second; then the time from a set by one client to the copy gone at another. */
static int cache(const char *ep, int ops, int n)
{
    forq_client_t *r = connect_to(ep), *w = connect_to(ep);
    double *us = calloc((size_t)n, sizeof(*us));
    void *v;
    size_t len;

    if (forq_dict_set(w, "bcache", "k", "\x01", 1, -1, NULL) != FORQ_OK ||
        forq_dict_cache(r, "bcache", 1 << 20) != FORQ_OK ||
        forq_dict_get(r, "bcache", "k", -1, &v, &len, NULL) != FORQ_OK)
        return fprintf(stderr, "dict_bench: %s\n", forq_errdetail()), 1;
    free(v);
    uint64_t h0;
    forq_dict_cache_stats(r, &h0, NULL, NULL, NULL);
    double t0 = now_s();
    for (int i = 0; i < ops; i++) {
        if (forq_dict_get(r, "bcache", "k", -1, &v, &len, NULL) != FORQ_OK)
            return fprintf(stderr, "dict_bench: cached get: %s\n", forq_errdetail()), 1;
        free(v);
    }
    double dt = now_s() - t0;
    uint64_t h1;
    forq_dict_cache_stats(r, &h1, NULL, NULL, NULL);
    if (h1 - h0 != (uint64_t)ops)
        return fprintf(stderr, "dict_bench: %llu of %d gets were cached\n",
                       (unsigned long long)(h1 - h0), ops),
               1;
    printf("cached_get %.0f\n", ops / dt);
    for (int i = 0; i < n; i++) {
        char val[2] = {(char)(i & 0x7f), 0};
        forq_future_t *f;
        forq_dict_op_t o;
        /* the reader holds a tracked copy */
        if (forq_dict_get(r, "bcache", "k", -1, &v, &len, NULL) != FORQ_OK)
            return fprintf(stderr, "dict_bench: get: %s\n", forq_errdetail()), 1;
        free(v);
        uint64_t before = invalidations(r);
        forq_dict_op_init(&o);
        o.op = "set";
        o.name = "bcache";
        o.key = "k";
        o.value = val;
        o.len = 1;
        double s0 = now_s();
        if (forq_dict_submit(w, &o, &f) != FORQ_OK)
            return fprintf(stderr, "dict_bench: set: %s\n", forq_errdetail()), 1;
        while (invalidations(r) == before) {
            sched_yield(); /* the reader's I/O thread applies it: leave it the core */
            if (now_s() - s0 > 5) {
                uint64_t hh, mm, ii;
                forq_dict_cache_stats(r, &hh, &mm, &ii, NULL);
                return fprintf(stderr,
                               "dict_bench: no invalidation within 5 s (set %d of %d; hits %llu "
                               "misses %llu invalidations %llu)\n",
                               i + 1, n, (unsigned long long)hh, (unsigned long long)mm,
                               (unsigned long long)ii),
                       1;
            }
        }
        us[i] = (now_s() - s0) * 1e6;
        forq_future_wait(f, -1);
        forq_future_destroy(&f);
    }
    qsort(us, (size_t)n, sizeof(*us), cmp_double);
    printf("inval_p50_us %.1f inval_p99_us %.1f\n", us[n / 2], us[(n * 99) / 100]);
    free(us);
    forq_client_destroy(&r);
    forq_client_destroy(&w);
    return 0;
}

/* The round trip of one synchronous get, N times. */
static int latency(const char *ep, int n)
{
    forq_client_t *c = connect_to(ep);
    double *us = calloc((size_t)n, sizeof(*us));
    void *v;
    size_t len;

    if (forq_dict_set(c, "blat", "k", "\x01", 1, -1, NULL) != FORQ_OK)
        return fprintf(stderr, "dict_bench: %s\n", forq_errdetail()), 1;
    for (int i = -200; i < n; i++) {
        double t0 = now_s();
        if (forq_dict_get(c, "blat", "k", -1, &v, &len, NULL) != FORQ_OK)
            return fprintf(stderr, "dict_bench: get: %s\n", forq_errdetail()), 1;
        double dt = now_s() - t0;
        free(v);
        if (i >= 0)
            us[i] = dt * 1e6;
    }
    qsort(us, (size_t)n, sizeof(*us), cmp_double);
    printf("p50_us %.1f p99_us %.1f\n", us[n / 2], us[(n * 99) / 100]);
    free(us);
    forq_client_destroy(&c);
    return 0;
}

/* ---- one event loop over raw DEALER sockets ---- */

/* The request header {v:1, cmd:"dict", op, name:"bench", key, req} into sb (reset first). */
static void pack_req(msgpack_sbuffer *sb, int op, const char *key, uint64_t req)
{
    msgpack_packer pk;
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_str_with_body(&pk, "cmd", 3);
    msgpack_pack_str_with_body(&pk, "dict", 4);
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, names[op], strlen(names[op]));
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, "bench", 5);
    msgpack_pack_str_with_body(&pk, "key", 3);
    msgpack_pack_str_with_body(&pk, key, strlen(key));
    msgpack_pack_str_with_body(&pk, "req", 3);
    msgpack_pack_uint64(&pk, req);
}

static int send_req(void *s, msgpack_sbuffer *sb, int op, int conn, uint64_t i)
{
    char key[32];
    snprintf(key, sizeof(key), "k%d-%d", conn, (int)(i % 100));
    pack_req(sb, op, op == 2 ? "counter" : key, i + 1);
    if (zmq_send(s, sb->data, sb->size, op == 0 ? ZMQ_SNDMORE : 0) < 0)
        return -1;
    return op == 0 && zmq_send(s, "\xcd\x30\x39", 3, 0) < 0 ? -1 : 0;
}

/* Read one reply (header, maybe a value frame); 0 if it is a dict_reply. */
static int recv_reply(void *s)
{
    char buf[4096];
    int more = 0, ok;
    size_t ml = sizeof(more);
    int n = zmq_recv(s, buf, sizeof(buf), 0);
    if (n < 0)
        return -1;
    ok = memmem(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf), "dict_reply", 10) != NULL;
    zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
    while (more) {
        zmq_recv(s, buf, sizeof(buf), 0);
        zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
    }
    return ok ? 0 : -1;
}

static int loop(const char *ep, int ops, int conns)
{
    void *ctx = zmq_ctx_new();
    void **s = calloc((size_t)conns, sizeof(*s));
    int *ready = calloc((size_t)conns + 64, sizeof(*ready)), n_ready = 0;
    uint64_t *sent = calloc((size_t)conns, sizeof(*sent));
    msgpack_sbuffer sb;
    int zero = 0, ep_fd = epoll_create1(EPOLL_CLOEXEC);

    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < conns; i++) {
        s[i] = zmq_socket(ctx, ZMQ_DEALER);
        zmq_setsockopt(s[i], ZMQ_LINGER, &zero, sizeof(zero));
        if (zmq_connect(s[i], ep) < 0)
            return fprintf(stderr, "dict_bench: connect %s: %s\n", ep, zmq_strerror(zmq_errno())),
                   1;
        int fd;
        size_t fl = sizeof(fd);
        zmq_getsockopt(s[i], ZMQ_FD, &fd, &fl);
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep_fd, EPOLL_CTL_ADD, fd, &e);
        /* one round trip each before the clock starts: every connection is up */
        if (send_req(s[i], &sb, 1, i, 0) < 0 || recv_reply(s[i]) < 0)
            return fprintf(stderr, "dict_bench: no answer from %s\n", ep), 1;
    }
    for (int op = 0; op < 3; op++) {
        int per = ops / conns, done = 0, failed = 0;
        double t0 = now_s();
        if (skip(op))
            continue;
        for (int i = 0; i < conns; i++) {
            sent[i] = 0;
            if (send_req(s[i], &sb, op, i, sent[i]++) < 0)
                return fprintf(stderr, "dict_bench: send failed\n"), 1;
        }
        /* epoll over the sockets' ZMQ_FDs: a wake-up costs O(sockets ready), not a look at all
         * fifty as zmq_poll takes (the client's loop, not forqd, was the bound). ZMQ_FD says
         * "look at ZMQ_EVENTS": each socket ready is drained until it has nothing more. */
        for (int i = 0; i < conns; i++)
            ready[n_ready++] = i;
        while (done < per * conns) {
            if (!n_ready) {
                struct epoll_event evs[64];
                int n = epoll_wait(ep_fd, evs, 64, -1);
                if (n < 0)
                    return fprintf(stderr, "dict_bench: epoll_wait failed\n"), 1;
                for (int k = 0; k < n; k++)
                    ready[n_ready++] = (int)evs[k].data.u32;
            }
            int i = ready[--n_ready];
            for (;;) {
                int ev;
                size_t el = sizeof(ev);
                zmq_getsockopt(s[i], ZMQ_EVENTS, &ev, &el);
                if (!(ev & ZMQ_POLLIN))
                    break;
                failed += recv_reply(s[i]) < 0;
                done++;
                if (sent[i] < (uint64_t)per && send_req(s[i], &sb, op, i, sent[i]++) < 0)
                    return fprintf(stderr, "dict_bench: send failed\n"), 1;
            }
        }
        double dt = now_s() - t0;
        if (failed)
            return fprintf(stderr, "%d %s replies were errors\n", failed, names[op]), 1;
        printf("%s %.0f\n", names[op], per * conns / dt);
    }
    for (int i = 0; i < conns; i++)
        zmq_close(s[i]);
    zmq_ctx_term(ctx);
    msgpack_sbuffer_destroy(&sb);
    free(s);
    free(ready);
    free(sent);
    close(ep_fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "inflight") == 0 && atoi(argv[4]) > 0)
        return inflight(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 6 && strcmp(argv[1], "multi") == 0 && atoi(argv[4]) > 0 && atoi(argv[5]) > 0)
        return multi(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    if (argc == 5 && strcmp(argv[1], "cache") == 0 && atoi(argv[3]) > 0 && atoi(argv[4]) > 0)
        return cache(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 4 && strcmp(argv[1], "latency") == 0 && atoi(argv[3]) > 0)
        return latency(argv[2], atoi(argv[3]));
    if (argc == 5 && strcmp(argv[1], "loop") == 0 && atoi(argv[4]) > 0)
        return loop(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 4 && atoi(argv[3]) > 0)
        return threads(argv[1], atoi(argv[2]), atoi(argv[3]));
    fprintf(stderr,
            "usage: dict_bench ENDPOINT OPS CLIENTS | inflight ENDPOINT OPS DEPTH | "
            "loop ENDPOINT OPS CONNS | multi ENDPOINT KEYS DEPTH BATCH | cache ENDPOINT OPS N | "
            "latency ENDPOINT N\n");
    return 2;
}
