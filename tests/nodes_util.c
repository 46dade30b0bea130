/* nodes_util.c - what the worker-node suites (check_nodes.c, check_nodes_fail.c) share: a head
 * with --node-listen on a tcp port of the test process's own, nodes that join it, and the
 * head's view of them. See nodes_util.h. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "nodes_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The heartbeat interval of these tests' heads: 200 ms (20 times that under valgrind, where
 * only the core cases run, none of which times a loss). */
const char *hb_ms(void)
{
    static char buf[16];
    snprintf(buf, sizeof(buf), "%d", test_ms(200));
    return buf;
}

char head_ep[64];
char empty[256];
forqd_t head;
forq_client_t *c;

uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A port of this test process's own (each test is a forked process). */
void pick_port(void)
{
    snprintf(head_ep, sizeof(head_ep), "tcp://127.0.0.1:%d", 20000 + (int)(getpid() % 30000));
    temp_dir(empty, sizeof(empty), "forq-empty");
}

/* The head: `workers` workers with the built-in tasks only, nodes on head_ep in plaintext. */
void start_head(int workers, const char *const *extra)
{
    const char *args[32];
    char w[16];
    int n = 0;

    pick_port();
    snprintf(w, sizeof(w), "%d", workers);
    args[n++] = "--workers";
    args[n++] = w;
    args[n++] = "--tasks";
    args[n++] = empty;
    args[n++] = "--node-listen";
    args[n++] = head_ep;
    args[n++] = "--heartbeat";
    args[n++] = hb_ms();
    args[n++] = "--insecure-tcp";
    for (int i = 0; extra && extra[i] && n < 30; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    forqd_start(&head, args);
    c = forqd_client(&head);
}

/* A node named `name` with `workers` workers, the test plugin's tasks when `plugin`. */
void start_node(forqd_t *d, const char *name, int workers, bool plugin, const char *const *extra)
{
    const char *args[32];
    char w[16];
    int n = 0;

    snprintf(w, sizeof(w), "%d", workers);
    args[n++] = "--workers";
    args[n++] = w;
    args[n++] = "--tasks";
    args[n++] = plugin ? getenv("FORQ_TEST_PLUGIN") : empty;
    args[n++] = "--join";
    args[n++] = head_ep;
    args[n++] = "--node-name";
    args[n++] = name;
    if (!extra || !extra[0] || strcmp(extra[0], "--curve") != 0)
        args[n++] = "--insecure-tcp";
    for (int i = extra && extra[0] && strcmp(extra[0], "--curve") == 0 ? 1 : 0;
         extra && extra[i] && n < 30; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    forqd_start(d, args);
}

/* The head's stats map, unpacked into zone. */
msgpack_object head_stats(msgpack_zone *zone, void **data)
{
    size_t len, off = 0;
    msgpack_object o;

    ck_assert_int_eq(forq_client_stats(c, test_ms(5000), data, &len), FORQ_OK);
    ck_assert_int_eq(msgpack_unpack(*data, len, &off, zone, &o), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(o.type, MSGPACK_OBJECT_MAP);
    return o;
}

bool str_is(const msgpack_object *o, const char *s)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, strlen(s)) == 0;
}

const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    for (uint32_t i = 0; m->type == MSGPACK_OBJECT_MAP && i < m->via.map.size; i++)
        if (str_is(&m->via.map.ptr[i].key, key))
            return &m->via.map.ptr[i].val;
    return NULL;
}

/* A number the head's `nodes` list shows for node `name`; -1 when it is not listed. */
long long node_stat(const char *name, const char *key)
{
    msgpack_zone zone;
    void *data;
    long long v = -1;

    msgpack_zone_init(&zone, 4096);
    msgpack_object st = head_stats(&zone, &data);
    const msgpack_object *nodes = map_get(&st, "nodes");
    ck_assert_ptr_nonnull(nodes);
    ck_assert_int_eq(nodes->type, MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < nodes->via.array.size; i++) {
        const msgpack_object *n = &nodes->via.array.ptr[i], *nm = map_get(n, "name");
        if (nm && str_is(nm, name)) {
            const msgpack_object *x = map_get(n, key);
            ck_assert_msg(x && x->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "node %s has no %s",
                          name, key);
            v = (long long)x->via.u64;
        }
    }
    msgpack_zone_destroy(&zone);
    free(data);
    return v;
}

/* Wait until the head lists `n` nodes (10 s). */
void wait_nodes(long long n)
{
    for (int i = 0; i < test_ms(200); i++) {
        if (stat_of(c, "node_slots") >= 0) {
            msgpack_zone zone;
            void *data;
            msgpack_zone_init(&zone, 4096);
            msgpack_object st = head_stats(&zone, &data);
            const msgpack_object *nodes = map_get(&st, "nodes");
            long long have = nodes ? (long long)nodes->via.array.size : -1;
            msgpack_zone_destroy(&zone);
            free(data);
            if (have == n)
                return;
        }
        usleep(50000);
    }
    ck_abort_msg("the head never listed %lld node(s)", n);
}

void wait_log(const forqd_t *d, const char *text, int ms)
{
    for (int i = 0; i < test_ms(ms) / 20; i++) {
        if (forqd_log_has(d, text))
            return;
        usleep(20000);
    }
    ck_abort_msg("forqd's log never said '%s'", text);
}
