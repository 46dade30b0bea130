/* timeout_cancel.c - a job that runs too long, and cancelling a running job: two things
 * ProcessPoolExecutor cannot do (future.cancel() fails once the call runs; result(timeout)
 * only stops waiting). In forq the worker is killed and a fresh one takes its place. */
#include "example.h"

#include <unistd.h>

int main(int argc, char **argv)
{
    static const char ten[] = "\x91\x0a"; /* [10] */
    forq_client_t *c = example_connect(argc, argv);
    forq_submit_opts_t o;
    forq_future_t *f;
    forq_cancel_t out;

    forq_submit_opts_init(&o);
    o.timeout = 0.5;
    forq_submit(c, "sleep", ten, 2, &o, &f);
    forq_future_wait(f, -1);
    printf("sleep(10) with timeout 0.5 s: %s (%s)\n", forq_state_name(forq_future_state(f)),
           forq_future_detail(f));
    forq_future_destroy(&f);

    forq_submit(c, "sleep", ten, 2, NULL, &f);
    usleep(300000); /* let it start */
    forq_future_cancel(f, 5000, &out);
    printf("cancel while running: %s\n", out == FORQ_CANCEL_KILLING ? "worker killed" : "?");
    forq_future_wait(f, -1);
    printf("its result: %s (%s)\n", forq_state_name(forq_future_state(f)), forq_future_detail(f));
    forq_future_destroy(&f);
    forq_client_destroy(&c);
    return 0;
}
