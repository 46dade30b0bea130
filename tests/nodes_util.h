/* nodes_util.h - helpers of the worker-node suites: real forqd processes on tcp 127.0.0.1, a
 * head with --node-listen (plaintext under --insecure-tcp unless a test sets up keys) and
 * nodes that --join it. */
#ifndef FORQ_NODES_UTIL_H
#define FORQ_NODES_UTIL_H

#define FORQ_TEST_E2E
#include "testutil.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

extern char head_ep[64]; /* tcp://127.0.0.1:PORT of the head's node endpoint */
extern char empty[256];  /* a plugin directory with no plugin: built-in tasks only */
extern forqd_t head;     /* the head of the running test */
extern forq_client_t *c; /* a client of it */

/* The head's heartbeat interval in these tests: 200 ms, 20 times that under valgrind. */
const char *hb_ms(void);
uint64_t mono_ms(void);
/* This test process's own port (each test is a forked process) and an empty plugin dir. */
void pick_port(void);
/* The head: `workers` workers, built-in tasks only, nodes on head_ep in plaintext; c. */
void start_head(int workers, const char *const *extra);
/* A node named `name` with `workers` workers, the test plugin's tasks when `plugin`; extra
 * beginning with "--curve" leaves --insecure-tcp out. */
void start_node(forqd_t *d, const char *name, int workers, bool plugin, const char *const *extra);
/* The head's stats map, unpacked into zone (*data: the caller frees). */
msgpack_object head_stats(msgpack_zone *zone, void **data);
bool str_is(const msgpack_object *o, const char *s);
const msgpack_object *map_get(const msgpack_object *m, const char *key);
/* A number the head's `nodes` list shows for node `name`; -1 when it is not listed. */
long long node_stat(const char *name, const char *key);
/* Wait until the head lists n nodes (10 s). */
void wait_nodes(long long n);
/* Wait until d's log says text (ms, scaled under valgrind). */
void wait_log(const forqd_t *d, const char *text, int ms);

#endif
