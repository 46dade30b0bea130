/* nodemsg.c - the node link's frames. See nodemsg.h. */
#define _GNU_SOURCE
#include "nodemsg.h"

#include "wire.h"

#include <errno.h>
#include <string.h>

int nodemsg_recv(void *sock, zmq_msg_t *f, int max)
{
    int n = 0, more = 1;
    size_t ml = sizeof(more);
    bool extra = false;

    zmq_msg_init(&f[0]);
    if (zmq_msg_recv(&f[0], sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f[0]);
        return -1;
    }
    n = 1;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
        if (n < max) {
            zmq_msg_init(&f[n]);
            zmq_msg_recv(&f[n], sock, 0);
            n++;
        } else {
            zmq_msg_t junk;
            zmq_msg_init(&junk);
            zmq_msg_recv(&junk, sock, 0);
            zmq_msg_close(&junk);
            extra = true;
        }
    }
    return extra ? -2 - n : n;
}

void nodemsg_close(zmq_msg_t *f, int n)
{
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

bool nodemsg_is(zmq_msg_t *f, const char *k)
{
    size_t n = strlen(k);
    return zmq_msg_size(f) == n && memcmp(zmq_msg_data(f), k, n) == 0;
}

int nodemsg_send(void *sock, const void *ident, size_t ilen, const char *kind, const void *data,
                 size_t len, zmq_msg_t *msg, zmq_msg_t *msg2)
{
    bool more = data || msg;

    if (ident && zmq_send(sock, ident, ilen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -errno;
    if (zmq_send(sock, kind, strlen(kind), (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
        return -errno;
    if (data && zmq_send(sock, data, len, (msg ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
        return -errno;
    if (msg && zmq_msg_send(msg, sock, (msg2 ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
        return -errno;
    if (msg2 && zmq_msg_send(msg2, sock, ZMQ_DONTWAIT) < 0)
        return -errno;
    return 0;
}

static bool key_is(const msgpack_object *k, const char *s)
{
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, s, n) == 0;
}

/* Unpack a checked map frame into zone; NULL when it is not a map. */
static const msgpack_object_map *unpack_map(const void *data, size_t len, msgpack_zone *zone,
                                            msgpack_object *obj)
{
    wire_err_t err;
    size_t off = 0;

    if (wire_check(data, len, 2, &err) < 0)
        return NULL;
    if (msgpack_unpack(data, len, &off, zone, obj) != MSGPACK_UNPACK_SUCCESS ||
        obj->type != MSGPACK_OBJECT_MAP)
        return NULL;
    return &obj->via.map;
}

uint64_t nodemsg_map_uint(const void *data, size_t len, msgpack_zone *zone, const char *key,
                          uint64_t def)
{
    msgpack_object obj;
    const msgpack_object_map *m = unpack_map(data, len, zone, &obj);

    for (uint32_t i = 0; m && i < m->size; i++)
        if (key_is(&m->ptr[i].key, key) && m->ptr[i].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return m->ptr[i].val.via.u64;
    return def;
}

const char *nodemsg_str(const msgpack_object *o, size_t *len)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return NULL;
    *len = o->via.str.size;
    return o->via.str.ptr;
}

static bool str_array(const msgpack_object *o, uint32_t max)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > max)
        return false;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_STR || !wire_id_is_valid(e->via.str.ptr, e->via.str.size))
            return false;
    }
    return true;
}

int nodemsg_join_decode(const void *data, size_t len, msgpack_zone *zone, nodemsg_join_t *ret,
                        const char **why)
{
    msgpack_object obj;
    const msgpack_object_map *m = unpack_map(data, len, zone, &obj);
    const msgpack_object empty = {.type = MSGPACK_OBJECT_ARRAY};

    memset(ret, 0, sizeof(*ret));
    ret->tasks = ret->tags = ret->held = empty;
    if (!m) {
        *why = "the join is not one msgpack map";
        return -1;
    }
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
        bool uint = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
        if (key_is(k, "v") && uint)
            ret->v = v->via.u64;
        else if (key_is(k, "name") && v->type == MSGPACK_OBJECT_STR)
            ret->name = v->via.str.ptr, ret->name_len = v->via.str.size;
        else if (key_is(k, "slots") && uint)
            ret->slots = v->via.u64;
        else if (key_is(k, "credit") && uint)
            ret->credit = v->via.u64;
        else if (key_is(k, "tasks"))
            ret->tasks = *v;
        else if (key_is(k, "tags"))
            ret->tags = *v;
        else if (key_is(k, "held"))
            ret->held = *v;
    }
    if (ret->v != NODE_VERSION)
        *why = "it speaks another version of the node link; run the same forq on head and nodes";
    else if (!ret->name || !wire_id_is_valid(ret->name, ret->name_len))
        *why = "its name is missing or not 1-64 of A-Z a-z 0-9 . _ : -";
    else if (ret->slots == 0 || ret->slots > 65536 || ret->credit < ret->slots ||
             ret->credit > 1025 * ret->slots)
        *why = "its slots or credit are out of bounds";
    else if (!str_array(&ret->tasks, NODE_TASKS_MAX) || !str_array(&ret->tags, NODE_TAGS_MAX) ||
             !str_array(&ret->held, NODE_HELD_MAX))
        *why = "its tasks, tags or held runs are not arrays of valid names";
    else
        return 0;
    return -1;
}
