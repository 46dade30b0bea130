/* starmap_multiply.c - Pool.starmap(multiply, [(1, 2), (3, 4), (5, 6)]):
 *
 *     with Pool() as p:
 *         print(p.starmap(multiply, [(1, 2), (3, 4), (5, 6)]))
 *
 * Needs the example plugin: forqd --tasks examples/plugin/classic.so */
#include "example.h"

int main(int argc, char **argv)
{
    static const int64_t pairs[3][2] = {{1, 2}, {3, 4}, {5, 6}};
    forq_client_t *c = example_connect(argc, argv);
    msgpack_sbuffer bufs[3];
    const void *items[3];
    size_t lens[3];
    forq_map_opts_t opts;
    forq_map_t *m;
    forq_map_item_t it;

    for (int i = 0; i < 3; i++) {
        msgpack_sbuffer_init(&bufs[i]);
        pack_ints(&bufs[i], pairs[i], 2); /* each item is the whole args array */
        items[i] = bufs[i].data;
        lens[i] = bufs[i].size;
    }
    forq_map_opts_init(&opts);
    opts.star = true;
    if (forq_map(c, "multiply", items, lens, 3, &opts, &m) != FORQ_OK)
        return fprintf(stderr, "starmap: %s\n", forq_errdetail()), 1;
    printf("[");
    while (forq_map_next(m, -1, &it) == FORQ_OK)
        printf("%s%lld", it.index ? ", " : "", (long long)read_int(it.data, it.len));
    printf("]\n");
    forq_map_destroy(&m);
    for (int i = 0; i < 3; i++)
        msgpack_sbuffer_destroy(&bufs[i]);
    forq_client_destroy(&c);
    return 0;
}
