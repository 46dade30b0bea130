/* bench_util.h - what the forq side of the benchmarks shares (forq_bench, pytask_bench,
 * map_bench): a monotonic clock, the exit on a failed libforq call, and the connection to forqd,
 * so that every benchmark connects alike (CURVE included) and says the same about a failure. */
#ifndef FORQ_BENCH_UTIL_H
#define FORQ_BENCH_UTIL_H

#include <forq/forq.h>

/* Seconds on the monotonic clock. */
double bench_now_s(void);

/* Print "PROGRAM: what: <libforq's detail>" on stderr and exit 1. */
void bench_die(const char *what) __attribute__((noreturn));

/* A client of forqd at ep (10 s to connect), with CURVE when the environment gives forqd's
 * public key and this client's pair (FORQ_BENCH_SERVER_KEY, FORQ_BENCH_PUBLIC_KEY,
 * FORQ_BENCH_SECRET_KEY, as scripts/bench sets them for a tcp endpoint that requires it).
 * Exits through bench_die when it cannot connect. */
forq_client_t *bench_connect(const char *ep);

#endif
