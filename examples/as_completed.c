/* as_completed.c - concurrent.futures.as_completed:
 *
 *     futures = {ex.submit(time.sleep, s): s for s in (0.5, 0.1, 0.25)}
 *     for f in as_completed(futures):
 *         print("slept", futures[f])
 */
#include "example.h"

int main(int argc, char **argv)
{
    static const char *naps[] = {"\xcb\x3f\xe0\x00\x00\x00\x00\x00\x00",  /* 0.5 */
                                 "\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a",  /* 0.1 */
                                 "\xcb\x3f\xd0\x00\x00\x00\x00\x00\x00"}; /* 0.25 */
    static const char *names[] = {"0.5", "0.1", "0.25"};
    forq_client_t *c = example_connect(argc, argv);
    forq_future_t *f[3], *done;
    forq_as_completed_t *it;

    for (int i = 0; i < 3; i++)
        if (forq_submit(c, "sleep", naps[i], 9, NULL, &f[i]) != FORQ_OK)
            return fprintf(stderr, "submit: %s\n", forq_errdetail()), 1;
    forq_as_completed_new(f, 3, &it);
    while (forq_as_completed_next(it, -1, &done) == FORQ_OK)
        for (int i = 0; i < 3; i++)
            if (done == f[i])
                printf("slept %s s: %s\n", names[i], forq_state_name(forq_future_state(done)));
    forq_as_completed_destroy(&it);
    for (int i = 0; i < 3; i++)
        forq_future_destroy(&f[i]);
    forq_client_destroy(&c);
    return 0;
}
