/* primes.c - the classic multiprocessing example on forq: count the primes in range(1, 300000)
 * across the pool and test four large numbers, then do the same work in this one process and
 * compare the times.
 *
 *     primes [ENDPOINT]                 (default: $FORQ_ENDPOINT, else forqd's default endpoint)
 *     primes --below N [--runs R] [ENDPOINT]
 *
 * The classic work takes ~10 ms in one process: the pool's fixed costs (a round trip per job,
 * waking the workers) are a good part of that, so its time ratio says little. --below N counts
 * the primes below N instead (20,000,000: 2.5-4 s in one process), where the pool's ratio shows its
 * speed-up: about 1 / workers.
 *
 * The range is cut into 4 chunks per worker (16 with --below: the later numbers cost more, and
 * smaller chunks even out the workers' shares). Both runs are repeated (5 times, 3 with
 * --below), alternating, and the medians are compared (the machine may be shared and noisy).
 * The single-process run uses the same trial division as forqd's built-in tasks. */
#include <forq/forq.h>

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIMIT      300000
#define MAX_CHUNKS 1024
#define RUNS       5
#define MAX_RUNS   15

static const int64_t candidates[] = {10000019, 10000033, 10000079, 10000081};
#define NCAND (sizeof(candidates) / sizeof(candidates[0]))

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool is_prime(int64_t n)
{
    if (n < 2)
        return false;
    if (n < 4)
        return true;
    if (n % 2 == 0 || n % 3 == 0)
        return false;
    for (int64_t i = 5; i <= n / i; i += 6)
        if (n % i == 0 || n % (i + 2) == 0)
            return false;
    return true;
}

/* Submit task(args...) with up to two integer arguments. */
static forq_future_t *submit(forq_client_t *c, const char *task, int nargs, int64_t a, int64_t b)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    forq_future_t *f = NULL;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (size_t)nargs);
    msgpack_pack_int64(&pk, a);
    if (nargs > 1)
        msgpack_pack_int64(&pk, b);
    if (forq_submit(c, task, sb.data, sb.size, NULL, &f) != FORQ_OK) {
        fprintf(stderr, "primes: cannot submit: %s\n", forq_errdetail());
        exit(1);
    }
    msgpack_sbuffer_destroy(&sb);
    return f;
}

/* Wait for f and unpack its result; exits with the reason if the job failed. */
static msgpack_object result(forq_future_t *f, msgpack_zone *zone)
{
    const void *data;
    size_t len, off = 0;
    msgpack_object o;

    forq_future_wait(f, -1);
    if (forq_future_result(f, &data, &len) != FORQ_OK) {
        fprintf(stderr, "primes: job %s %s: %s\n", forq_future_id(f),
                forq_state_name(forq_future_state(f)), forq_future_detail(f));
        exit(1);
    }
    msgpack_unpack(data, len, &off, zone, &o);
    return o;
}

/* The number of workers forqd has, from its stats. */
static int pool_size(forq_client_t *c)
{
    void *data;
    size_t len, off = 0;
    msgpack_zone zone;
    msgpack_object o;
    int n = 2;

    if (forq_client_stats(c, 5000, &data, &len) != FORQ_OK)
        return n;
    msgpack_zone_init(&zone, 4096);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
        o.type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < o.via.map.size; i++)
            if (o.via.map.ptr[i].key.via.str.size == 7 &&
                memcmp(o.via.map.ptr[i].key.via.str.ptr, "workers", 7) == 0)
                n = (int)o.via.map.ptr[i].val.via.u64;
    msgpack_zone_destroy(&zone);
    free(data);
    return n;
}

/* One pool run: the primes in range(1, limit) in `chunks` count_primes jobs and, with ncand, the
 * is_prime tests, every job in flight at once, results collected in order. Returns its ms. */
static double run_pool(forq_client_t *c, int64_t limit, int chunks, size_t ncand,
                       int64_t *ret_total, bool *ret_prime)
{
    forq_future_t *counts[MAX_CHUNKS], *tests[NCAND];
    msgpack_zone zone;
    double t0 = now_ms();

    msgpack_zone_init(&zone, 4096);
    /* the last chunks cost the most (trial division up to sqrt(n)): they go first, so that the
     * cheap ones fill the gaps at the end and the workers finish together */
    for (int i = chunks - 1; i >= 0; i--) {
        int64_t lo = 1 + (int64_t)i * (limit - 1) / chunks;
        int64_t hi = 1 + (int64_t)(i + 1) * (limit - 1) / chunks;
        counts[i] = submit(c, "count_primes", 2, lo, hi);
    }
    for (size_t i = 0; i < ncand; i++)
        tests[i] = submit(c, "is_prime", 1, candidates[i], 0);
    *ret_total = 0;
    for (int i = 0; i < chunks; i++)
        *ret_total += result(counts[i], &zone).via.i64;
    for (size_t i = 0; i < ncand; i++)
        ret_prime[i] = result(tests[i], &zone).via.boolean;
    t0 = now_ms() - t0;
    for (int i = 0; i < chunks; i++)
        forq_future_destroy(&counts[i]);
    for (size_t i = 0; i < ncand; i++)
        forq_future_destroy(&tests[i]);
    msgpack_zone_destroy(&zone);
    return t0;
}

/* The same work in this process. Returns its ms. */
static double run_single(int64_t limit, size_t ncand, int64_t *ret_total, bool *ret_prime)
{
    double t0 = now_ms();
    *ret_total = 0;
    for (int64_t n = 1; n < limit; n++)
        *ret_total += is_prime(n);
    for (size_t i = 0; i < ncand; i++)
        ret_prime[i] = is_prime(candidates[i]);
    return now_ms() - t0;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(void)
{
    fprintf(stderr, "usage: primes [--below N [--runs R]] [ENDPOINT]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    forq_client_opts_t opts;
    forq_client_t *c;
    int64_t total = 0, single_total = 0, limit = LIMIT;
    bool prime[NCAND], single_prime[NCAND], big = false;
    double pool_ms[MAX_RUNS], single_ms[MAX_RUNS];
    size_t ncand = NCAND;
    int workers, chunks, runs = RUNS;
    const char *endpoint = NULL;

    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--below") == 0 && i + 1 < argc) {
            limit = strtoll(argv[++i], &end, 10);
            if (*end || limit < 2 || limit > INT64_C(1) << 40)
                usage();
            big = true;
            ncand = 0;
            runs = 3;
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = (int)strtol(argv[++i], &end, 10);
            if (*end || runs < 1 || runs > MAX_RUNS)
                usage();
        } else if (argv[i][0] == '-' || endpoint) {
            usage();
        } else {
            endpoint = argv[i];
        }
    }
    forq_client_opts_init(&opts);
    opts.endpoint = endpoint;
    opts.connect_timeout_ms = 5000;
    if (forq_client_new(&opts, &c) != FORQ_OK) {
        fprintf(stderr, "primes: %s\n", forq_errdetail());
        return 1;
    }
    workers = pool_size(c);
    chunks = (big ? 16 : 4) * workers;
    if (chunks > MAX_CHUNKS)
        chunks = MAX_CHUNKS;
    for (int r = 0; r < runs; r++) {
        pool_ms[r] = run_pool(c, limit, chunks, ncand, &total, prime);
        single_ms[r] = run_single(limit, ncand, &single_total, single_prime);
        if (total != single_total || memcmp(prime, single_prime, ncand * sizeof(bool)) != 0) {
            fprintf(stderr, "primes: the pool and this process disagree\n");
            return 1;
        }
    }
    qsort(pool_ms, (size_t)runs, sizeof(double), by_value);
    qsort(single_ms, (size_t)runs, sizeof(double), by_value);

    if (big)
        printf("primes below %lld: %lld  (%d count_primes jobs on %d workers at %s)\n",
               (long long)limit, (long long)total, chunks, workers, forq_client_endpoint(c));
    else
        printf("primes in range(1, %lld): %lld  (%d count_primes jobs on %d workers at %s)\n",
               (long long)limit, (long long)total, chunks, workers, forq_client_endpoint(c));
    for (size_t i = 0; i < ncand; i++)
        printf("%lld is prime: %s\n", (long long)candidates[i], prime[i] ? "True" : "False");
    printf("median of %d run%s:\n", runs, runs == 1 ? "" : "s");
    printf("  pool (%d workers): %8.1f ms\n", workers, pool_ms[runs / 2]);
    printf("  single process:   %8.1f ms\n", single_ms[runs / 2]);
    printf("  pool/single time ratio: %.2f\n", pool_ms[runs / 2] / single_ms[runs / 2]);
    forq_client_destroy(&c);
    return 0;
}
