/* map_bench.c - items per second of forq_map and forq_imap of a tiny task (square) over N
 * integers, chunks of 1000. Prints "map ITEMS_PER_S" and "imap ITEMS_PER_S".
 *     map_bench ENDPOINT [N] */
#include "bench_util.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    long next, n;
    char buf[16];
} gen_t;

static size_t pack_int(char *buf, long v)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t n;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_long(&pk, v);
    memcpy(buf, sb.data, sb.size);
    n = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static int feed(void *ud, const void **item, size_t *len)
{
    gen_t *g = ud;
    if (g->next >= g->n)
        return 0;
    *len = pack_int(g->buf, g->next++);
    *item = g->buf;
    return 1;
}

/* Drain a map, checking every result. */
static int drain(forq_map_t *m, long n)
{
    forq_map_item_t it;
    long k = 0;
    while (forq_map_next(m, -1, &it) == FORQ_OK) {
        if (it.state != FORQ_STATE_OK) {
            fprintf(stderr, "item %zu: %s\n", it.index, it.detail);
            return -1;
        }
        k++;
    }
    return k == n ? 0 : -1;
}

int main(int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 1000000;
    forq_client_opts_t co;
    forq_client_t *c;
    forq_map_opts_t mo;
    forq_map_t *m;
    char(*bytes)[16] = calloc((size_t)n, 16);
    const void **items = calloc((size_t)n, sizeof(*items));
    size_t *lens = calloc((size_t)n, sizeof(*lens));
    double t0;

    if (argc < 2)
        return fprintf(stderr, "usage: map_bench ENDPOINT [N]\n"), 2;
    forq_client_opts_init(&co);
    co.endpoint = argv[1];
    co.connect_timeout_ms = 5000;
    if (forq_client_new(&co, &c) != FORQ_OK)
        return fprintf(stderr, "%s\n", forq_errdetail()), 1;
    for (long i = 0; i < n; i++) {
        lens[i] = pack_int(bytes[i], i);
        items[i] = bytes[i];
    }
    forq_map_opts_init(&mo);
    mo.chunksize = 1000;
    mo.window = 8;

    t0 = bench_now_s();
    if (forq_map(c, "square", items, lens, (size_t)n, &mo, &m) != FORQ_OK || drain(m, n) < 0)
        return fprintf(stderr, "map failed: %s\n", forq_errdetail()), 1;
    printf("map %.0f\n", (double)n / (bench_now_s() - t0));
    forq_map_destroy(&m);

    gen_t g = {0, n, {0}};
    t0 = bench_now_s();
    if (forq_imap(c, "square", feed, &g, &mo, &m) != FORQ_OK || drain(m, n) < 0)
        return fprintf(stderr, "imap failed: %s\n", forq_errdetail()), 1;
    printf("imap %.0f\n", (double)n / (bench_now_s() - t0));
    forq_map_destroy(&m);
    forq_client_destroy(&c);
    free(bytes);
    free(items);
    free(lens);
    return 0;
}
