/* bench_tasks.c - the task plugin of scripts/bench: a job that takes its worker down, for the
 * worker-replacement figure; and, for Python's ctypes, the trial division forqd's count_primes
 * runs (the same code, daemon/worker/primes.h), so that the CPU-bound peer runs the very same work.
 *     forqd --tasks build-release/bench/bench_tasks.so */
#include <forq/task.h>

#include "../daemon/worker/primes.h"

#include <stdlib.h>

/* for ctypes: primes p with lo <= p < hi */
__attribute__((visibility("default"))) int64_t bench_count_primes(int64_t lo, int64_t hi);
int64_t bench_count_primes(int64_t lo, int64_t hi)
{
    return forq_count_primes(lo, hi);
}

/* crash() -> never returns: the worker dies of SIGABRT, forqd answers the job "crashed" and
 * forks a replacement */
static int crash(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    (void)ctx;
    (void)args;
    (void)out;
    abort();
}

static const forq_task_def_t tasks[] = {
    {"crash", crash, "crash() -> the worker dies of SIGABRT"},
    {NULL, NULL, NULL},
};

FORQ_PLUGIN_DEFINE("bench", tasks, NULL, NULL);
