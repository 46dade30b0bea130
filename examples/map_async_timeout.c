/* map_async_timeout.c - map_async(...).get(timeout):
 *
 *     res = p.map_async(time.sleep, [0.1, 0.2, 5])
 *     try:
 *         print(res.get(timeout=1))
 *     except TimeoutError:
 *         print("TimeoutError")
 *
 * A map runs in forqd while the caller does other things; the caller gives each wait a
 * deadline, and on timeout cancels what is left. */
#include "example.h"

#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    static const double naps[] = {0.1, 0.2, 5};
    forq_client_t *c = example_connect(argc, argv);
    msgpack_sbuffer bufs[3];
    const void *items[3];
    size_t lens[3];
    forq_map_opts_t opts;
    forq_map_t *m;
    forq_map_item_t it;
    double deadline = now_ms() + 1000;
    forq_err_t e = FORQ_OK;

    for (int i = 0; i < 3; i++) {
        msgpack_packer pk;
        msgpack_sbuffer_init(&bufs[i]);
        msgpack_packer_init(&pk, &bufs[i], msgpack_sbuffer_write);
        msgpack_pack_double(&pk, naps[i]);
        items[i] = bufs[i].data;
        lens[i] = bufs[i].size;
    }
    forq_map_opts_init(&opts);
    opts.chunksize = 1; /* one sleep per job, so they run side by side */
    if (forq_map(c, "sleep", items, lens, 3, &opts, &m) != FORQ_OK)
        return fprintf(stderr, "map: %s\n", forq_errdetail()), 1;
    while (e == FORQ_OK) {
        int left = (int)(deadline - now_ms());
        e = forq_map_next(m, left > 0 ? left : 0, &it);
        if (e == FORQ_OK)
            printf("item %zu done\n", it.index);
    }
    if (e == FORQ_ERR_TIMEOUT) {
        printf("TimeoutError: %s\n", forq_errdetail());
        forq_map_cancel(m); /* the 5 s sleep's worker is killed, not left running */
    }
    forq_map_destroy(&m);
    for (int i = 0; i < 3; i++)
        msgpack_sbuffer_destroy(&bufs[i]);
    forq_client_destroy(&c);
    return e == FORQ_ERR_TIMEOUT ? 0 : 1;
}
