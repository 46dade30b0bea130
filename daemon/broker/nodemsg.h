/* nodemsg.h - the node link's framing, shared by the head (nodes.c) and the node (nodelink.c):
 * every message is a kind frame ("join", "welcome", "refuse", "hb", "fjp", "bye", "rejoin") and
 * what the kind carries (PROTOCOL.md section 14). Control messages carry one msgpack map, read
 * here after the structural check of wire_check(); `fjp` carries FJP frames untouched. */
#ifndef FORQ_NODEMSG_H
#define FORQ_NODEMSG_H

#include "config.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define NODE_VERSION    1    /* of the node link; a head refuses another */
#define NODE_FRAMES_MAX 5    /* routing id, kind, two frames, one to spot extras */
#define NODE_TASKS_MAX  4096 /* task names a node may announce */
#define NODE_TAGS_MAX   64   /* tags a node may announce */
#define NODE_HELD_MAX   100000

/* A join, as the head reads it: borrowed from the zone it was unpacked in. */
typedef struct {
    uint64_t v;             /* link version */
    const char *name;       /* the node's name */
    size_t name_len;        /* its bytes */
    uint64_t slots, credit; /* workers; jobs it may hold at once (slots + prefetch) */
    msgpack_object tasks;   /* array of task names */
    msgpack_object tags;    /* array of tags */
    msgpack_object held;    /* array of run ids it still holds (running or answered) */
} nodemsg_join_t;

/* Read one multipart message into f (at most max; extras dropped, -2 - kept returned). The
 * number of frames, -1 if none was waiting. */
int nodemsg_recv(void *sock, zmq_msg_t *f, int max);
void nodemsg_close(zmq_msg_t *f, int n);
/* Is frame f the kind k? */
bool nodemsg_is(zmq_msg_t *f, const char *k);
/* Send [ident] kind [data, len] [msg, taken]: ident NULL for a DEALER. 0 or -errno. */
int nodemsg_send(void *sock, const void *ident, size_t ilen, const char *kind, const void *data,
                 size_t len, zmq_msg_t *msg, zmq_msg_t *msg2);
/* Decode a join map (checked first); 0, or -1 with *why set. */
int nodemsg_join_decode(const void *data, size_t len, msgpack_zone *zone, nodemsg_join_t *ret,
                        const char **why);
/* A string element of a msgpack array, or NULL (len in *len). */
const char *nodemsg_str(const msgpack_object *o, size_t *len);
/* The uint under `key` in a map frame (after the check); def when absent or malformed. */
uint64_t nodemsg_map_uint(const void *data, size_t len, msgpack_zone *zone, const char *key,
                          uint64_t def);

#endif
