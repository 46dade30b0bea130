/* queue_bench.c - the shared queue (issue 16), measured as its peers are (bench/queue_peer.py):
 * one producer and one consumer, each a thread with its own connection, as two processes would.
 *     queue_bench tput ENDPOINT N    N items put (each put answered) while the consumer gets
 *                                    them (blocking get): prints "items_per_s X"
 *     queue_bench pipe ENDPOINT N    the same, each side keeping WINDOW requests in flight
 *                                    (forq_queue_put_async, forq_queue_get_async), as
 *                                    multiprocessing.Queue's put returns before the item is sent
 *     queue_bench wake ENDPOINT N    a consumer blocked in get, then a put: from the put's call
 *                                    to the consumer holding the item, N times (a ping-pong: the
 *                                    consumer acks on a second queue, the producer waits 1 ms for
 *                                    it to block again): prints "p50_us X p99_us Y"
 * Every item is checked (its number, in order); a wrong one fails the run. */
#include <forq/forq.h>

#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *ep;
static int n_items, failed;
static double *lat_us;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static forq_client_t *connect_to(void)
{
    forq_client_opts_t o;
    forq_client_t *c;

    forq_client_opts_init(&o);
    o.endpoint = ep;
    o.connect_timeout_ms = 5000;
    if (forq_client_new(&o, &c) != FORQ_OK) {
        fprintf(stderr, "queue_bench: %s\n", forq_errdetail());
        exit(1);
    }
    return c;
}

static int64_t read_u64(const void *data, size_t len)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    int64_t v = -1;

    msgpack_zone_init(&zone, 64);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
        o.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        v = (int64_t)o.via.u64;
    msgpack_zone_destroy(&zone);
    return v;
}

static void put_u64(forq_client_t *c, const char *q, uint64_t v)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_uint64(&pk, v);
    if (forq_queue_put(c, q, sb.data, sb.size, false, 0, -1, NULL) != FORQ_OK) {
        fprintf(stderr, "queue_bench: put: %s\n", forq_errdetail());
        failed = 1;
    }
    msgpack_sbuffer_destroy(&sb);
}

static int64_t get_u64(forq_client_t *c, const char *q)
{
    void *v;
    size_t len;
    int64_t x;

    if (forq_queue_get(c, q, -1, &v, &len) != FORQ_OK) {
        fprintf(stderr, "queue_bench: get: %s\n", forq_errdetail());
        failed = 1;
        return -1;
    }
    x = read_u64(v, len);
    free(v);
    return x;
}

static void *tput_consumer(void *arg)
{
    forq_client_t *c = arg;
    for (int i = 0; i < n_items && !failed; i++)
        if (get_u64(c, "bench.q") != i)
            failed = 1;
    return NULL;
}

static void *wake_consumer(void *arg)
{
    forq_client_t *c = arg;
    for (int i = 0; i < n_items && !failed; i++) {
        int64_t t0 = get_u64(c, "bench.wake");
        lat_us[i] = (double)(now_ns() - (uint64_t)t0) / 1000.0;
        put_u64(c, "bench.ack", (uint64_t)i);
    }
    return NULL;
}

#define WINDOW 64

static void *pipe_consumer(void *arg)
{
    forq_client_t *c = arg;
    forq_future_t *f[WINDOW];
    int issued = 0;

    for (int i = 0; i < n_items && !failed; i++) {
        while (issued < n_items && issued - i < WINDOW)
            if (forq_queue_get_async(c, "bench.q", -1, &f[issued++ % WINDOW]) != FORQ_OK)
                failed = 1;
        forq_future_t *g = f[i % WINDOW];
        const void *v;
        size_t len;
        if (forq_future_wait(g, -1) != FORQ_OK || forq_queue_reply(g, NULL) != FORQ_OK ||
            forq_future_result(g, &v, &len) != FORQ_OK || read_u64(v, len) != i)
            failed = 1;
        forq_future_destroy(&g);
    }
    return NULL;
}

static void pipe_producer(forq_client_t *c)
{
    forq_future_t *f[WINDOW];
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < n_items + WINDOW && !failed; i++) {
        if (i >= WINDOW) {
            forq_future_t *g = f[i % WINDOW];
            if (forq_future_wait(g, -1) != FORQ_OK || forq_queue_reply(g, NULL) != FORQ_OK)
                failed = 1;
            forq_future_destroy(&g);
        }
        if (i < n_items) {
            msgpack_sbuffer_clear(&sb);
            msgpack_pack_uint64(&pk, (uint64_t)i);
            if (forq_queue_put_async(c, "bench.q", sb.data, sb.size, false, 0, -1,
                                     &f[i % WINDOW]) != FORQ_OK)
                failed = 1;
        }
    }
    msgpack_sbuffer_destroy(&sb);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    pthread_t th;
    forq_client_t *prod, *cons;
    bool wake;

    if (argc != 4 ||
        (strcmp(argv[1], "tput") && strcmp(argv[1], "pipe") && strcmp(argv[1], "wake")))
        return fprintf(stderr, "usage: queue_bench tput|pipe|wake ENDPOINT N\n"), 2;
    wake = strcmp(argv[1], "wake") == 0;
    ep = argv[2];
    n_items = atoi(argv[3]);
    prod = connect_to();
    cons = connect_to();
    forq_queue_clear(prod, "bench.q", -1, NULL);
    if (!wake) {
        bool piped = strcmp(argv[1], "pipe") == 0;
        uint64_t t0 = now_ns();
        pthread_create(&th, NULL, piped ? pipe_consumer : tput_consumer, cons);
        if (piped)
            pipe_producer(prod);
        for (int i = 0; i < n_items && !failed && !piped; i++)
            put_u64(prod, "bench.q", (uint64_t)i);
        pthread_join(th, NULL);
        if (!failed)
            printf("items_per_s %.0f\n", n_items / ((double)(now_ns() - t0) / 1e9));
    } else {
        lat_us = calloc((size_t)n_items, sizeof(*lat_us));
        pthread_create(&th, NULL, wake_consumer, cons);
        for (int i = 0; i < n_items && !failed; i++) {
            usleep(1000); /* the consumer is blocked in get again */
            put_u64(prod, "bench.wake", now_ns());
            if (get_u64(prod, "bench.ack") != i)
                failed = 1;
        }
        pthread_join(th, NULL);
        qsort(lat_us, (size_t)n_items, sizeof(*lat_us), cmp);
        if (!failed)
            printf("p50_us %.1f p99_us %.1f\n", lat_us[n_items / 2], lat_us[n_items * 99 / 100]);
        free(lat_us);
    }
    forq_client_destroy(&prod);
    forq_client_destroy(&cons);
    return failed;
}
