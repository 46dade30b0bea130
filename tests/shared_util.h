/* shared_util.h - what the shared types' suites (check_queue.c, check_shared.c) share: a forqd
 * and a client, small msgpack values, queue calls that must succeed, waiting for a stats
 * counter, a state directory, and a helper process that is the test binary run again. */
#ifndef FORQ_SHARED_UTIL_H
#define FORQ_SHARED_UTIL_H

#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"

#include <check.h>
#include <msgpack.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static forqd_t d;
static forq_client_t *c;

#define T (test_ms(5000))

static inline msgpack_sbuffer val_int(int64_t v)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_int64(&pk, v);
    return sb;
}

static inline msgpack_sbuffer val_str(const char *s)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_str_with_body(&pk, s, strlen(s));
    return sb;
}

static inline int64_t as_int(const void *data, size_t len)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    int64_t v = -12345;
    msgpack_zone_init(&zone, 64);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
        (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER || o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
        v = o.via.i64;
    msgpack_zone_destroy(&zone);
    return v;
}

/* The item as a string ("" for what is not one; "nil" for nil), into buf. */
static inline const char *as_str(const void *data, size_t len, char *buf, size_t size)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    buf[0] = '\0';
    msgpack_zone_init(&zone, 64);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS) {
        if (o.type == MSGPACK_OBJECT_STR)
            snprintf(buf, size, "%.*s", (int)o.via.str.size, o.via.str.ptr);
        else if (o.type == MSGPACK_OBJECT_NIL)
            snprintf(buf, size, "nil");
    }
    msgpack_zone_destroy(&zone);
    return buf;
}

static inline void put_str(forq_client_t *cl, const char *q, const char *s)
{
    msgpack_sbuffer v = val_str(s);
    ck_assert_int_eq(forq_queue_put(cl, q, v.data, v.size, false, 0, T, NULL), FORQ_OK);
    msgpack_sbuffer_destroy(&v);
}

static inline void put_int(forq_client_t *cl, const char *q, int64_t i)
{
    msgpack_sbuffer v = val_int(i);
    ck_assert_int_eq(forq_queue_put(cl, q, v.data, v.size, false, 0, T, NULL), FORQ_OK);
    msgpack_sbuffer_destroy(&v);
}

/* Get an item (waiting up to ms) as a string. */
static inline const char *get_str(forq_client_t *cl, const char *q, int ms, char *buf, size_t size)
{
    void *v;
    size_t len;
    forq_err_t e = forq_queue_get(cl, q, ms, &v, &len);
    ck_assert_msg(e == FORQ_OK, "get %s: %s: %s", q, forq_strerror(e), forq_errdetail());
    as_str(v, len, buf, size);
    free(v);
    return buf;
}

/* Wait (up to 10 s, scaled) until forqd's stats counter `name` is `want`. */
static inline void wait_stat(forq_client_t *cl, const char *name, long long want)
{
    long long got = -1;
    for (int i = 0; i < test_ms(10000) / 10; i++) {
        if ((got = stat_of(cl, name)) == want)
            return;
        usleep(10000);
    }
    ck_abort_msg("stats %s is %lld, not %lld", name, got, want);
}

/* A process of its own, with its own client (libforq's ZeroMQ context is not for a forked
 * child: the test runs itself again, `--consumer` or `--holder`, on d's endpoint, reporting on
 * the descriptor fd). */
static inline pid_t spawn_helper(const char *role, int fd)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char fdtext[16];
        snprintf(fdtext, sizeof(fdtext), "%d", fd);
        execl("/proc/self/exe", "helper", role, fdtext, d.endpoint, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static inline uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char state[64];

static inline void make_state_dir(void)
{
    temp_dir(state, sizeof(state), "forq-state");
}

static inline void remove_state_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", state);
    if (system(cmd) != 0) {
        /* a leftover temporary directory is harmless */
    }
}

/* main() of a suite whose tests run it again as a helper process (`ROLE FD ENDPOINT`): run
 * fn(client, fd) for that role and return its exit status; -1 when argv is not a helper's. */
static inline int helper_main(int argc, char **argv, const char *role,
                              int (*fn)(forq_client_t *cl, int fd))
{
    forq_client_opts_t o;
    forq_client_t *cl;
    int rc;

    if (argc != 4 || strcmp(argv[1], role) != 0)
        return -1;
    forq_client_opts_init(&o);
    o.endpoint = argv[3];
    if (forq_client_new(&o, &cl) != FORQ_OK) {
        fprintf(stderr, "%s: %s\n", role, forq_errdetail());
        return 1;
    }
    rc = fn(cl, atoi(argv[2]));
    forq_client_destroy(&cl);
    return rc;
}

#endif
