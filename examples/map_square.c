/* map_square.c - Pool.map(square, range(10)):
 *
 *     with Pool(4) as p:
 *         print(p.map(square, range(10)))
 *
 * Needs the example plugin: forqd --tasks examples/plugin/classic.so */
#include "example.h"

int main(int argc, char **argv)
{
    forq_client_t *c = example_connect(argc, argv);
    msgpack_sbuffer bufs[10];
    const void *items[10];
    size_t lens[10];
    forq_map_t *m;
    forq_map_item_t it;

    for (int i = 0; i < 10; i++) {
        msgpack_sbuffer_init(&bufs[i]);
        pack_int(&bufs[i], i);
        items[i] = bufs[i].data;
        lens[i] = bufs[i].size;
    }
    if (forq_map(c, "square", items, lens, 10, NULL, &m) != FORQ_OK)
        return fprintf(stderr, "map: %s\n", forq_errdetail()), 1;
    printf("[");
    while (forq_map_next(m, -1, &it) == FORQ_OK)
        printf("%s%lld", it.index ? ", " : "", (long long)read_int(it.data, it.len));
    printf("]\n");
    forq_map_destroy(&m);
    for (int i = 0; i < 10; i++)
        msgpack_sbuffer_destroy(&bufs[i]);
    forq_client_destroy(&c);
    return 0;
}
