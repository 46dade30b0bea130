/* example.h - small helpers shared by the example programs: connect, pack and read integers.
 * Each example takes forqd's endpoint as its optional first argument. */
#ifndef FORQ_EXAMPLE_H
#define FORQ_EXAMPLE_H

#include <forq/forq.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Connect to forqd (argv[1], else $FORQ_ENDPOINT, else the default); exit on failure. */
static inline forq_client_t *example_connect(int argc, char **argv)
{
    forq_client_opts_t o;
    forq_client_t *c;

    forq_client_opts_init(&o);
    o.endpoint = argc > 1 ? argv[1] : NULL;
    o.connect_timeout_ms = 5000;
    if (forq_client_new(&o, &c) != FORQ_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], forq_errdetail());
        exit(1);
    }
    return c;
}

/* Pack msgpack into a caller-provided sbuffer: an integer, or an array of integers. */
static inline void pack_int(msgpack_sbuffer *sb, int64_t v)
{
    msgpack_packer pk;
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_int64(&pk, v);
}

static inline void pack_ints(msgpack_sbuffer *sb, const int64_t *v, size_t n)
{
    msgpack_packer pk;
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_int64(&pk, v[i]);
}

/* A msgpack integer or boolean as int64 (0 for anything else). */
static inline int64_t read_int(const void *data, size_t len)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    int64_t v = 0;

    msgpack_zone_init(&zone, 256);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS) {
        if (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER || o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            v = o.via.i64;
        else if (o.type == MSGPACK_OBJECT_BOOLEAN)
            v = o.via.boolean;
    }
    msgpack_zone_destroy(&zone);
    return v;
}

/* Submit task(args...) with integer args; exit on a local error. */
static inline forq_future_t *submit_ints(forq_client_t *c, const char *task, const int64_t *v,
                                         size_t n, const forq_submit_opts_t *opts)
{
    msgpack_sbuffer sb;
    forq_future_t *f;

    msgpack_sbuffer_init(&sb);
    pack_ints(&sb, v, n);
    if (forq_submit(c, task, sb.data, sb.size, opts, &f) != FORQ_OK) {
        fprintf(stderr, "submit %s: %s\n", task, forq_errdetail());
        exit(1);
    }
    msgpack_sbuffer_destroy(&sb);
    return f;
}

#endif
