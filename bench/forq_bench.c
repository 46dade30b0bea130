/* forq_bench.c - the forq side of scripts/bench's workloads, and the raw ZeroMQ floor.
 *
 *     forq_bench jobs EP N INFLIGHT      tiny jobs (echo [i]) pipelined: "jobs_per_s X"
 *     forq_bench latency EP N            submit then wait, one at a time: "p50_us X p99_us Y"
 *     forq_bench zmq-server EP           a raw ROUTER echo (runs until killed)
 *     forq_bench zmq-latency EP N        DEALER round trips to it: "p50_us X p99_us Y"
 *     forq_bench cpu EP LIMIT CHUNKS     count_primes over range(LIMIT) in CHUNKS jobs, all
 *                                        submitted at once: "seconds X primes P"
 *     forq_bench cpu-local LIMIT         the same code in this one process: "seconds X primes P"
 *     forq_bench replace EP N            N jobs that crash their worker; forqd's figure of each
 *                                        crash to its replacement's READY: "replace_us MEDIAN"
 *     forq_bench spawn EP N              N tiny jobs on a forqd run with --max-jobs-per-worker 1
 *                                        (every job a fresh worker): "spawns_per_s X"
 *     forq_bench memory EP N PID         broker PID's RSS growth with N tiny jobs queued behind a
 *                                        busy worker, and an idle worker's RSS and PSS:
 *                                        "bytes_per_job X payload_bytes P worker_rss_kib R
 *                                        worker_pss_kib S"
 *
 * Every result is checked: a wrong answer exits 1 rather than print a figure. */
#define _GNU_SOURCE
#include "bench_util.h"

#include "../daemon/worker/primes.h"

#include <dirent.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* msgpack [v] or [a, b] */
static size_t pack_ints(char *buf, size_t size, int n, long a, long b)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t len;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (size_t)n);
    msgpack_pack_long(&pk, a);
    if (n > 1)
        msgpack_pack_long(&pk, b);
    len = sb.size < size ? sb.size : size;
    memcpy(buf, sb.data, len);
    msgpack_sbuffer_destroy(&sb);
    return len;
}

/* The single integer a result holds (echo's [v], count_primes' n). */
static long result_int(forq_future_t *f)
{
    const void *data;
    size_t len, off = 0;
    msgpack_zone zone;
    msgpack_object o;
    long v = -1;

    if (forq_future_result(f, &data, &len) != FORQ_OK) {
        fprintf(stderr, "forq_bench: job %s: %s\n", forq_future_id(f), forq_future_detail(f));
        exit(1);
    }
    msgpack_zone_init(&zone, 256);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS) {
        if (o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 1)
            o = o.via.array.ptr[0];
        if (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            v = (long)o.via.u64;
    }
    msgpack_zone_destroy(&zone);
    return v;
}

static void wait_ok(forq_future_t *f)
{
    if (forq_future_wait(f, -1) != FORQ_OK)
        bench_die("wait");
}

static int bench_jobs(const char *ep, long n, long inflight)
{
    forq_client_t *c = bench_connect(ep);
    forq_future_t **ring = calloc((size_t)inflight, sizeof(*ring));
    char args[32];
    long next = 0, done = 0;
    double t0 = bench_now_s();

    /* a window of `inflight`: wait for the oldest before submitting more */
    while (done < n) {
        while (next < n && next - done < inflight) {
            size_t len = pack_ints(args, sizeof(args), 1, next, 0);
            if (forq_submit(c, "echo", args, len, NULL, &ring[next % inflight]) != FORQ_OK)
                bench_die("submit");
            next++;
        }
        forq_future_t *f = ring[done % inflight];
        wait_ok(f);
        if (result_int(f) != done) {
            fprintf(stderr, "forq_bench: job %ld answered wrong\n", done);
            return 1;
        }
        forq_future_destroy(&ring[done % inflight]);
        done++;
    }
    printf("jobs_per_s %.0f\n", (double)n / (bench_now_s() - t0));
    free(ring);
    forq_client_destroy(&c);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_percentiles(double *us, long n)
{
    qsort(us, (size_t)n, sizeof(*us), cmp_double);
    printf("p50_us %.1f p99_us %.1f\n", us[n / 2], us[n * 99 / 100]);
}

#define WARMUP 200

static int bench_latency(const char *ep, long n)
{
    forq_client_t *c = bench_connect(ep);
    double *us = calloc((size_t)n, sizeof(*us));
    char args[32];

    for (long i = 0; i < n + WARMUP; i++) {
        size_t len = pack_ints(args, sizeof(args), 1, i, 0);
        forq_future_t *f;
        double t0 = bench_now_s();
        if (forq_submit(c, "echo", args, len, NULL, &f) != FORQ_OK)
            bench_die("submit");
        wait_ok(f);
        double dt = bench_now_s() - t0;
        if (result_int(f) != i)
            return fprintf(stderr, "forq_bench: job %ld answered wrong\n", i), 1;
        forq_future_destroy(&f);
        if (i >= WARMUP)
            us[i - WARMUP] = dt * 1e6;
    }
    print_percentiles(us, n);
    free(us);
    forq_client_destroy(&c);
    return 0;
}

static int zmq_server(const char *ep)
{
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_ROUTER);

    if (zmq_bind(s, ep) < 0)
        return fprintf(stderr, "forq_bench: bind %s: %s\n", ep, zmq_strerror(errno)), 1;
    for (;;) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, s, 0) < 0 || zmq_msg_recv(&body, s, 0) < 0)
            break;
        zmq_msg_send(&id, s, ZMQ_SNDMORE);
        zmq_msg_send(&body, s, 0);
    }
    return 0;
}

static int zmq_latency(const char *ep, long n)
{
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
    double *us = calloc((size_t)n, sizeof(*us));
    char args[32], back[64];

    if (zmq_connect(s, ep) < 0)
        return fprintf(stderr, "forq_bench: connect %s: %s\n", ep, zmq_strerror(errno)), 1;
    for (long i = 0; i < n + WARMUP; i++) {
        size_t len = pack_ints(args, sizeof(args), 1, i, 0);
        double t0 = bench_now_s();
        zmq_send(s, args, len, 0);
        int got = zmq_recv(s, back, sizeof(back), 0);
        double dt = bench_now_s() - t0;
        if (got != (int)len || memcmp(back, args, len) != 0)
            return fprintf(stderr, "forq_bench: the echo answered wrong\n"), 1;
        if (i >= WARMUP)
            us[i - WARMUP] = dt * 1e6;
    }
    print_percentiles(us, n);
    free(us);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
}

static int bench_cpu(const char *ep, long limit, long chunks)
{
    forq_client_t *c = bench_connect(ep);
    forq_future_t **f = calloc((size_t)chunks, sizeof(*f));
    char args[32];
    long primes = 0;
    double t0 = bench_now_s();

    for (long i = 0; i < chunks; i++) {
        size_t len = pack_ints(args, sizeof(args), 2, limit * i / chunks, limit * (i + 1) / chunks);
        if (forq_submit(c, "count_primes", args, len, NULL, &f[i]) != FORQ_OK)
            bench_die("submit");
    }
    for (long i = 0; i < chunks; i++) {
        wait_ok(f[i]);
        primes += result_int(f[i]);
        forq_future_destroy(&f[i]);
    }
    printf("seconds %.4f primes %ld\n", bench_now_s() - t0, primes);
    free(f);
    forq_client_destroy(&c);
    return 0;
}

static int bench_cpu_local(long limit)
{
    double t0 = bench_now_s();
    long primes = (long)forq_count_primes(0, limit);
    printf("seconds %.4f primes %ld\n", bench_now_s() - t0, primes);
    return 0;
}

/* One counter of forqd's stats, -1 if absent. */
static long long stat_of(forq_client_t *c, const char *name)
{
    void *data;
    size_t len, off = 0;
    msgpack_zone zone;
    msgpack_object o;
    long long v = -1;

    if (forq_client_stats(c, 5000, &data, &len) != FORQ_OK)
        bench_die("stats");
    msgpack_zone_init(&zone, 4096);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
        o.type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < o.via.map.size; i++) {
            msgpack_object_kv *kv = &o.via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(name) &&
                memcmp(kv->key.via.str.ptr, name, strlen(name)) == 0 &&
                kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                v = (long long)kv->val.via.u64;
        }
    msgpack_zone_destroy(&zone);
    free(data);
    return v;
}

static void wait_stat(forq_client_t *c, const char *name, long long want)
{
    for (int i = 0; i < 10000 && stat_of(c, name) != want; i++)
        usleep(1000);
    if (stat_of(c, name) != want) {
        fprintf(stderr, "forq_bench: %s never reached %lld\n", name, want);
        exit(1);
    }
}

static int bench_replace(const char *ep, long n)
{
    forq_client_t *c = bench_connect(ep);
    double *us = calloc((size_t)n, sizeof(*us));
    long long workers = stat_of(c, "workers");

    for (long i = 0; i < n; i++) {
        forq_future_t *f;
        wait_stat(c, "workers_idle", workers);
        if (forq_submit(c, "crash", "\x90", 1, NULL, &f) != FORQ_OK)
            bench_die("submit");
        wait_ok(f);
        if (forq_future_state(f) != FORQ_STATE_CRASHED)
            return fprintf(stderr, "forq_bench: the crash job ended %s\n",
                           forq_state_name(forq_future_state(f))),
                   1;
        forq_future_destroy(&f);
        wait_stat(c, "workers_idle", workers); /* the replacement is READY */
        us[i] = (double)stat_of(c, "last_replace_us");
    }
    qsort(us, (size_t)n, sizeof(*us), cmp_double);
    printf("replace_us %.0f\n", us[n / 2]);
    free(us);
    forq_client_destroy(&c);
    return 0;
}

static int bench_spawn(const char *ep, long n)
{
    forq_client_t *c = bench_connect(ep);
    forq_future_t **f = calloc((size_t)n, sizeof(*f));
    long long before = stat_of(c, "workers_started"), workers = stat_of(c, "workers");
    double t0 = bench_now_s();

    for (long i = 0; i < n; i++)
        if (forq_submit(c, "echo", "\x91\x01", 2, NULL, &f[i]) != FORQ_OK)
            bench_die("submit");
    for (long i = 0; i < n; i++) {
        wait_ok(f[i]);
        result_int(f[i]);
        forq_future_destroy(&f[i]);
    }
    double dt = bench_now_s() - t0;
    long long started = stat_of(c, "workers_started") - before;
    if (started + workers < n) /* each job on a fresh worker, or the figure means nothing */
        return fprintf(stderr,
                       "forq_bench: %lld workers for %ld jobs; run forqd with "
                       "--max-jobs-per-worker 1\n",
                       started, n),
               1;
    printf("spawns_per_s %.0f\n", (double)n / dt);
    free(f);
    forq_client_destroy(&c);
    return 0;
}

/* A /proc/PID/<file> field in kB, -1 if absent. */
static long proc_kib(long pid, const char *file, const char *field)
{
    char path[64], line[256];
    long v = -1;
    FILE *fp;

    snprintf(path, sizeof(path), "/proc/%ld/%s", pid, file);
    if (!(fp = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), fp))
        if (strncmp(line, field, strlen(field)) == 0 && line[strlen(field)] == ':')
            v = strtol(line + strlen(field) + 1, NULL, 10);
    fclose(fp);
    return v;
}

/* A child of `parent` (the first found), -1 if none. */
static long child_of(long parent)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", parent, parent);
    FILE *fp = fopen(path, "r");
    long pid = -1;
    if (fp) {
        if (fscanf(fp, "%ld", &pid) != 1)
            pid = -1;
        fclose(fp);
    }
    return pid;
}

static int bench_memory(const char *ep, long n, long broker)
{
    forq_client_t *c = bench_connect(ep);
    forq_future_t *blocker, **f = calloc((size_t)n, sizeof(*f));
    long fs = child_of(broker), worker = fs > 0 ? child_of(fs) : -1;
    long worker_rss = proc_kib(worker, "status", "VmRSS");
    long worker_pss = proc_kib(worker, "smaps_rollup", "Pss");
    const char *args = "\x91\x01"; /* [1] */
    size_t args_len = 2;

    if (worker < 0 || worker_rss < 0)
        return fprintf(stderr, "forq_bench: cannot find forqd %ld's worker\n", broker), 1;
    /* the one worker stays busy, so everything after queues */
    if (forq_submit(c, "sleep", "\x91\x3c", 2, NULL, &blocker) != FORQ_OK)
        bench_die("submit");
    wait_stat(c, "running", 1);
    long before = proc_kib(broker, "status", "VmRSS");
    for (long i = 0; i < n; i++)
        if (forq_submit(c, "echo", args, args_len, NULL, &f[i]) != FORQ_OK)
            bench_die("submit");
    wait_stat(c, "queued", n);
    long after = proc_kib(broker, "status", "VmRSS");
    printf("bytes_per_job %.0f payload_bytes %zu worker_rss_kib %ld worker_pss_kib %ld\n",
           (double)(after - before) * 1024.0 / (double)n - (double)args_len, args_len, worker_rss,
           worker_pss);
    /* cancel the lot: the broker gets its memory back before the next run */
    forq_client_destroy(&c);
    free(f);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "", *ep = argc > 2 ? argv[2] : NULL;
    long a = argc > 3 ? atol(argv[3]) : 0, b = argc > 4 ? atol(argv[4]) : 0;

    if (strcmp(cmd, "cpu-local") == 0 && ep && atol(ep) > 0)
        return bench_cpu_local(atol(ep));
    if (!ep)
        ;
    else if (strcmp(cmd, "jobs") == 0 && a > 0 && b > 0)
        return bench_jobs(ep, a, b);
    else if (strcmp(cmd, "latency") == 0 && a > 0)
        return bench_latency(ep, a);
    else if (strcmp(cmd, "zmq-server") == 0)
        return zmq_server(ep);
    else if (strcmp(cmd, "zmq-latency") == 0 && a > 0)
        return zmq_latency(ep, a);
    else if (strcmp(cmd, "cpu") == 0 && a > 0 && b > 0)
        return bench_cpu(ep, a, b);
    else if (strcmp(cmd, "replace") == 0 && a > 0)
        return bench_replace(ep, a);
    else if (strcmp(cmd, "spawn") == 0 && a > 0)
        return bench_spawn(ep, a);
    else if (strcmp(cmd, "memory") == 0 && a > 0 && b > 0)
        return bench_memory(ep, a, b);
    fprintf(stderr, "usage: forq_bench jobs|latency|zmq-server|zmq-latency|cpu|cpu-local|replace|"
                    "spawn|memory ENDPOINT ... (see the top of bench/forq_bench.c)\n");
    return 2;
}
