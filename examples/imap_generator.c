/* imap_generator.c - imap over a large generator, in bounded memory:
 *
 *     def numbers():
 *         yield from range(2_000_000)
 *     print(sum(p.imap(is_prime, numbers(), chunksize=1000)))
 *
 * Python's imap reads its whole input first; forq's pulls items only as its window has room,
 * so the generator may be endless. */
#include "example.h"

typedef struct {
    int64_t next, end;
    msgpack_sbuffer item;
} numbers_t;

/* The generator: one integer per call, 0 at the end. */
static int numbers(void *ud, const void **item, size_t *len)
{
    numbers_t *g = ud;
    if (g->next >= g->end)
        return 0;
    pack_int(&g->item, g->next++);
    *item = g->item.data;
    *len = g->item.size;
    return 1;
}

int main(int argc, char **argv)
{
    forq_client_t *c = example_connect(argc, argv);
    numbers_t g = {0, argc > 2 ? atoll(argv[2]) : 2000000, {0}};
    forq_map_opts_t opts;
    forq_map_t *m;
    forq_map_item_t it;
    int64_t primes = 0;

    msgpack_sbuffer_init(&g.item);
    forq_map_opts_init(&opts);
    opts.chunksize = 1000;
    opts.window = 8;
    if (forq_imap(c, "is_prime", numbers, &g, &opts, &m) != FORQ_OK)
        return fprintf(stderr, "imap: %s\n", forq_errdetail()), 1;
    while (forq_map_next(m, -1, &it) == FORQ_OK)
        primes += read_int(it.data, it.len);
    printf("primes below %lld: %lld\n", (long long)g.end, (long long)primes);
    forq_map_destroy(&m);
    msgpack_sbuffer_destroy(&g.item);
    forq_client_destroy(&c);
    return 0;
}
