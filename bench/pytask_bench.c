/* pytask_bench.c - the forq side of scripts/bench's Python task workloads (issue 15), against a
 * forqd serving examples/python/tasks/classic.py:
 *
 *     pytask_bench cpu EP RANGE LIMIT CHUNKS   classic.is_prime over range(1, RANGE) as a map in
 *                                              CHUNKS chunks, then classic.count_primes over
 *                                              CHUNKS list slices of range(LIMIT), all at once:
 *                                              "isprime_s X count_s Y primes P below Q"
 *     pytask_bench jobs EP N INFLIGHT          classic.multiply(i, 2) pipelined, a window of
 *                                              INFLIGHT: "jobs_per_s X"
 *
 * The chunks are those bench/pypeer.py gives ProcessPoolExecutor(2).map and Pool(2).map. Every
 * result is checked: a wrong answer exits 1 rather than print a figure. */
#include "bench_util.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t result_int(const void *data, size_t len)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    int64_t v;

    msgpack_zone_init(&zone, 64);
    if (msgpack_unpack(data, len, &off, &zone, &o) != MSGPACK_UNPACK_SUCCESS)
        bench_die("a result that is not msgpack");
    if (o.type == MSGPACK_OBJECT_BOOLEAN)
        v = o.via.boolean;
    else if (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER || o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        v = o.via.i64;
    else
        bench_die("a result that is not an integer");
    msgpack_zone_destroy(&zone);
    return v;
}

static int gen_from_1(void *ud, size_t i, msgpack_packer *pk)
{
    (void)ud;
    msgpack_pack_int64(pk, (int64_t)i + 1);
    return 1;
}

/* [[lo, lo+1, ..., hi-1]]: one list slice, count_primes's one argument */
static void pack_slice(msgpack_sbuffer *sb, long lo, long hi)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, (size_t)(hi - lo));
    for (long n = lo; n < hi; n++)
        msgpack_pack_long(&pk, n);
}

static int bench_cpu(const char *ep, long range, long limit, long chunks)
{
    forq_client_t *c = bench_connect(ep);
    forq_future_t **f = calloc((size_t)chunks, sizeof(*f));
    forq_map_opts_t mo;
    forq_map_t *m;
    forq_map_item_t it;
    msgpack_sbuffer sb;
    long primes_range = 0, primes_limit = 0;
    double t0, t_isprime, t_count;

    /* is_prime over range(1, RANGE), CHUNKS chunks (the pool peers' chunksize) */
    forq_map_opts_init(&mo);
    mo.chunksize = (size_t)((range - 1 + chunks - 1) / chunks);
    mo.window = (size_t)chunks;
    t0 = bench_now_s();
    if (forq_map_gen(c, "classic.is_prime", (size_t)(range - 1), gen_from_1, NULL, &mo, &m) !=
        FORQ_OK)
        bench_die("map");
    while (forq_map_next(m, -1, &it) == FORQ_OK) {
        if (it.state != FORQ_STATE_OK)
            bench_die(it.detail);
        primes_range += result_int(it.data, it.len);
    }
    t_isprime = bench_now_s() - t0;
    forq_map_destroy(&m);
    /* count_primes over CHUNKS list slices of range(LIMIT), submitted at once */
    msgpack_sbuffer_init(&sb);
    t0 = bench_now_s();
    for (long i = 0; i < chunks; i++) {
        pack_slice(&sb, limit * i / chunks, limit * (i + 1) / chunks);
        if (forq_submit(c, "classic.count_primes", sb.data, sb.size, NULL, &f[i]) != FORQ_OK)
            bench_die("submit");
    }
    for (long i = 0; i < chunks; i++) {
        const void *res = NULL;
        size_t len = 0;
        if (forq_future_wait(f[i], -1) != FORQ_OK ||
            forq_future_result(f[i], &res, &len) != FORQ_OK)
            bench_die("count_primes");
        primes_limit += result_int(res, len);
        forq_future_destroy(&f[i]);
    }
    t_count = bench_now_s() - t0;
    msgpack_sbuffer_destroy(&sb);
    free(f);
    forq_client_destroy(&c);
    if (range == 300000 && primes_range != 25997) {
        fprintf(stderr, "pytask_bench: %ld primes in range(1, 300000), not 25997\n", primes_range);
        return 1;
    }
    printf("isprime_s %.4f count_s %.4f primes %ld below %ld\n", t_isprime, t_count, primes_range,
           primes_limit);
    return 0;
}

static int bench_jobs(const char *ep, long n, long inflight)
{
    forq_client_t *c = bench_connect(ep);
    forq_future_t **f = calloc((size_t)n, sizeof(*f));
    msgpack_sbuffer sb;
    msgpack_packer pk;
    long done = 0;
    double t0;

    msgpack_sbuffer_init(&sb);
    t0 = bench_now_s();
    for (long i = 0; i < n; i++) {
        if (i - done >= inflight) { /* the window is full: take the oldest result */
            const void *res;
            size_t len;
            if (forq_future_wait(f[done], -1) != FORQ_OK ||
                forq_future_result(f[done], &res, &len) != FORQ_OK ||
                result_int(res, len) != 2 * done)
                bench_die("multiply");
            forq_future_destroy(&f[done++]);
        }
        msgpack_sbuffer_clear(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_long(&pk, i);
        msgpack_pack_int(&pk, 2);
        if (forq_submit(c, "classic.multiply", sb.data, sb.size, NULL, &f[i]) != FORQ_OK)
            bench_die("submit");
    }
    for (; done < n; done++) {
        const void *res;
        size_t len;
        if (forq_future_wait(f[done], -1) != FORQ_OK ||
            forq_future_result(f[done], &res, &len) != FORQ_OK || result_int(res, len) != 2 * done)
            bench_die("multiply");
        forq_future_destroy(&f[done]);
    }
    printf("jobs_per_s %.0f\n", (double)n / (bench_now_s() - t0));
    msgpack_sbuffer_destroy(&sb);
    free(f);
    forq_client_destroy(&c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "cpu") == 0)
        return bench_cpu(argv[2], atol(argv[3]), atol(argv[4]), atol(argv[5]));
    if (argc == 5 && strcmp(argv[1], "jobs") == 0)
        return bench_jobs(argv[2], atol(argv[3]), atol(argv[4]));
    fprintf(stderr, "usage: pytask_bench cpu EP RANGE LIMIT CHUNKS | jobs EP N INFLIGHT\n");
    return 2;
}
