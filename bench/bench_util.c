/* bench_util.c - see bench_util.h. */
#define _GNU_SOURCE
#include "bench_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, forq_errdetail());
    exit(1);
}

forq_client_t *bench_connect(const char *ep)
{
    forq_client_opts_t o;
    forq_client_t *c;

    forq_client_opts_init(&o);
    o.endpoint = ep;
    o.connect_timeout_ms = 10000;
    o.server_key = getenv("FORQ_BENCH_SERVER_KEY");
    o.public_key = getenv("FORQ_BENCH_PUBLIC_KEY");
    o.secret_key = getenv("FORQ_BENCH_SECRET_KEY");
    if (forq_client_new(&o, &c) != FORQ_OK)
        bench_die("connect");
    return c;
}
