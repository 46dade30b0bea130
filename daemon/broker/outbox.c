/* outbox.c - sending to clients and workers, and the backlog of replies a full pipe could not
 * take yet. See outbox.h. */
#define _GNU_SOURCE
#include "outbox.h"

#include "log.h"
#include "nodelink.h"
#include "nodes.h"
#include "pool.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <utlist.h>

#define BACKLOG_MS 5 /* retry interval for replies zmq could not take */

/* A reply that zmq could not take yet (the client's pipe was full). */
struct backlog_msg {
    backlog_msg_t *next; /* FIFO */
    zmq_msg_t hdr;       /* encoded header */
    zmq_msg_t payload;   /* result frame, when has_payload */
    bool has_payload;
    outbox_returned_fn returned; /* outbox_deliver's hook, or NULL */
    void *ud;                    /* and its argument */
};

struct outbox {
    broker_t *b;
    void *sock;           /* the client ROUTER (listen.c), NULL until bound */
    client_t *clients;    /* by identity */
    client_t *backlogged; /* clients with undelivered replies */
    msgpack_sbuffer hbuf; /* scratch for header encoding */
};

/* Free m; its hook learns whether it was sent, or gets its payload back. */
static void backlog_msg_free(backlog_msg_t *m, bool sent)
{
    if (m->returned)
        m->returned(m->ud, sent || !m->has_payload ? NULL : &m->payload, sent);
    zmq_msg_close(&m->hdr);
    zmq_msg_close(&m->payload);
    free(m);
}

/* Send identity, [delimiter], header, [payload] without blocking. Returns 0, -EAGAIN (nothing
 * was sent: the pipe is full) or -EHOSTUNREACH (no such client). Consumes `payload` on 0. */
static int try_send(outbox_t *out, const void *ident, size_t ilen, bool delim, zmq_msg_t *hdr,
                    zmq_msg_t *payload)
{
    int more = ZMQ_SNDMORE | ZMQ_DONTWAIT;

    if (ilen == NODELINK_ROUTE_LEN && memcmp(ident, NODELINK_ROUTE, NODELINK_ROUTE_LEN) == 0 &&
        out->b->nodelink)
        return nodelink_route(out->b->nodelink, hdr, payload);
    if (ilen > NODES_ROUTE_LEN && memcmp(ident, NODES_ROUTE, NODES_ROUTE_LEN) == 0)
        return nodes_route(out->b->nodes, (const uint8_t *)ident + NODES_ROUTE_LEN,
                           ilen - NODES_ROUTE_LEN, hdr, payload);
    if (!out->sock || zmq_send(out->sock, ident, ilen, more) < 0)
        return errno == EAGAIN ? -EAGAIN : -EHOSTUNREACH;
    /* the first frame is in: the rest of a multipart message always follows */
    if (delim)
        zmq_send(out->sock, "", 0, more);
    zmq_msg_send(hdr, out->sock, payload ? more : ZMQ_DONTWAIT);
    if (payload)
        zmq_msg_send(payload, out->sock, ZMQ_DONTWAIT);
    return 0;
}

static backlog_msg_t *backlog_push(outbox_t *out, client_t *c, zmq_msg_t *hdr, zmq_msg_t *payload)
{
    backlog_msg_t *m = xcalloc(1, sizeof(*m));

    zmq_msg_init(&m->hdr);
    zmq_msg_move(&m->hdr, hdr);
    zmq_msg_init(&m->payload);
    if (payload) {
        zmq_msg_move(&m->payload, payload);
        m->has_payload = true;
    }
    c->backlog_bytes += zmq_msg_size(&m->hdr) + zmq_msg_size(&m->payload);
    if (c->backlog_n++ == 0) {
        c->backlog = c->backlog_tail = m;
        DL_APPEND2(out->backlogged, c, bl_prev, bl_next);
    } else {
        c->backlog_tail->next = m;
        c->backlog_tail = m;
    }
    return m;
}

void outbox_send_raw(outbox_t *out, const void *ident, size_t ilen, bool delim, const void *hbytes,
                     size_t hlen, zmq_msg_t *payload)
{
    zmq_msg_t hdr;
    client_t *c = outbox_client(out, ident, ilen, false);
    int r;

    zmq_msg_init_size(&hdr, hlen);
    memcpy(zmq_msg_data(&hdr), hbytes, hlen);
    /* replies queue behind earlier ones that are still waiting */
    r = (c && c->backlog_n) ? -EAGAIN : try_send(out, ident, ilen, delim, &hdr, payload);
    if (r == -EAGAIN) {
        c = outbox_client(out, ident, ilen, true);
        c->delim = delim;
        backlog_push(out, c, &hdr, payload);
        return;
    }
    if (r == -EHOSTUNREACH) {
        out->b->st.undeliverable++;
        log_debug("a reply for a client that is gone was dropped");
        if (payload)
            zmq_msg_close(payload);
    }
    zmq_msg_close(&hdr);
}

const msgpack_sbuffer *outbox_encode(outbox_t *out, const wire_hdr_t *h)
{
    msgpack_sbuffer_clear(&out->hbuf);
    if (wire_hdr_encode(&out->hbuf, h) < 0) {
        log_error("out of memory encoding a reply");
        return NULL;
    }
    return &out->hbuf;
}

int outbox_deliver(outbox_t *out, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload,
                   outbox_returned_fn returned, void *ud)
{
    const msgpack_sbuffer *e = outbox_encode(out, h);
    client_t *c;
    zmq_msg_t hdr;
    int r;

    if (!e)
        return -EHOSTUNREACH; /* out of memory (logged): it cannot go */
    if (o->worker) {
        /* a worker being killed is as good as gone: what it was sent dies with it */
        worker_t *w = pool_worker(out->b->pool, o->worker);
        if (!w || w->link.fd < 0 || w->kill != KILL_NONE)
            return -EHOSTUNREACH;
        pool_send(out->b->pool, w, e->data, e->size, payload); /* cannot fail: the link is open */
        return 0;
    }
    zmq_msg_init_size(&hdr, e->size);
    memcpy(zmq_msg_data(&hdr), e->data, e->size);
    c = outbox_client(out, o->ident, o->ilen, false);
    r = (c && c->backlog_n) ? -EAGAIN : try_send(out, o->ident, o->ilen, o->delim, &hdr, payload);
    if (r == -EAGAIN) {
        c = outbox_client(out, o->ident, o->ilen, true);
        c->delim = o->delim;
        backlog_msg_t *m = backlog_push(out, c, &hdr, payload);
        m->returned = returned;
        m->ud = ud;
        return 1;
    }
    zmq_msg_close(&hdr);
    if (r == -EHOSTUNREACH)
        out->b->st.undeliverable++;
    return r;
}

void outbox_take_back(outbox_t *out, outbox_returned_fn returned)
{
    client_t *c, *tmp;

    DL_FOREACH_SAFE2(out->backlogged, c, tmp, bl_next)
    {
        backlog_msg_t **pp = &c->backlog, *last = NULL;
        while (*pp) {
            backlog_msg_t *m = *pp;
            if (m->returned != returned) {
                last = m;
                pp = &m->next;
                continue;
            }
            *pp = m->next;
            c->backlog_n--;
            c->backlog_bytes -= zmq_msg_size(&m->hdr) + zmq_msg_size(&m->payload);
            backlog_msg_free(m, false);
        }
        c->backlog_tail = last;
        if (c->backlog_n == 0) {
            DL_DELETE2(out->backlogged, c, bl_prev, bl_next);
            outbox_client_release(out, c);
        }
    }
}

void outbox_send(outbox_t *out, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload)
{
    const msgpack_sbuffer *e = outbox_encode(out, h);
    worker_t *w = NULL;

    if (e && o->worker) {
        /* a worker's task waits for the answer; gone, its exit report follows */
        if ((w = pool_worker(out->b->pool, o->worker)))
            pool_send(out->b->pool, w, e->data, e->size, payload);
        else if (payload)
            zmq_msg_close(payload);
        return;
    }
    if (!e) {
        if (payload)
            zmq_msg_close(payload);
        return;
    }
    outbox_send_raw(out, o->ident, o->ilen, o->delim, e->data, e->size, payload);
}

void outbox_error(outbox_t *out, const origin_t *o, const wire_hdr_t *req, const char *code,
                  const char *msg)
{
    wire_hdr_t h = {.cmd = WIRE_ERROR, .code = wire_str(code), .msg = wire_str(msg)};

    if (req) {
        h.req = req->req;
        h.has_req = req->has_req;
        if (!o->worker)
            h.id = req->id;
    }
    if (!o->worker)
        out->b->st.malformed++;
    outbox_send(out, o, &h, NULL);
}

client_t *outbox_client(outbox_t *out, const void *ident, size_t len, bool create)
{
    client_t *c;

    HASH_FIND(hh, out->clients, ident, len, c);
    if (c || !create)
        return c;
    c = xcalloc(1, sizeof(*c) + len);
    memcpy(c->ident, ident, len);
    c->ident_len = (uint8_t)len;
    for (unsigned p = 0; p < SCHED_NPRIO; p++)
        sched_lane_init(&c->lanes[p], p);
    HASH_ADD(hh, out->clients, ident, len, c);
    return c;
}

void outbox_client_release(outbox_t *out, client_t *c)
{
    if (c->live > 0 || c->backlog_n > 0)
        return;
    HASH_DEL(out->clients, c);
    free(c);
}

const client_t *outbox_client_first(const outbox_t *out)
{
    return out->clients;
}

size_t outbox_clients(const outbox_t *out)
{
    return HASH_COUNT(out->clients);
}

size_t outbox_backlog(const outbox_t *out)
{
    size_t n = 0;
    client_t *c;

    DL_FOREACH2(out->backlogged, c, bl_next)
    n += c->backlog_n;
    return n;
}

static void flush_backlog(outbox_t *out)
{
    client_t *c, *tmp;

    DL_FOREACH_SAFE2(out->backlogged, c, tmp, bl_next)
    {
        while (c->backlog) {
            backlog_msg_t *m = c->backlog;
            int r = try_send(out, c->ident, c->ident_len, c->delim, &m->hdr,
                             m->has_payload ? &m->payload : NULL);
            if (r == -EAGAIN)
                break;
            if (r == -EHOSTUNREACH)
                out->b->st.undeliverable++;
            c->backlog = m->next;
            c->backlog_n--;
            c->backlog_bytes -= zmq_msg_size(&m->hdr) + zmq_msg_size(&m->payload);
            backlog_msg_free(m, r == 0);
        }
        if (c->backlog_n == 0) {
            c->backlog_tail = NULL;
            DL_DELETE2(out->backlogged, c, bl_prev, bl_next);
            outbox_client_release(out, c);
        }
    }
}

static uint64_t tick(void *ud, uint64_t now)
{
    outbox_t *out = ud;

    if (!out->backlogged)
        return LOOP_NEVER;
    flush_backlog(out);
    return out->backlogged ? now + BACKLOG_MS : LOOP_NEVER;
}

outbox_t *outbox_new(broker_t *b)
{
    outbox_t *out = xcalloc(1, sizeof(*out));

    out->b = b;
    msgpack_sbuffer_init(&out->hbuf);
    loop_tick_add(b->loop, tick, out);
    return out;
}

void outbox_set_socket(outbox_t *out, void *sock)
{
    out->sock = sock;
}

void outbox_destroy(outbox_t **outp, uint64_t until_ms)
{
    outbox_t *out = *outp;
    client_t *c, *ct;

    if (!out)
        return;
    /* give undelivered replies a last chance */
    while (out->backlogged && now_ms() < until_ms) {
        flush_backlog(out);
        if (out->backlogged)
            usleep(BACKLOG_MS * 1000);
    }
    HASH_ITER(hh, out->clients, c, ct)
    {
        while (c->backlog) {
            backlog_msg_t *m = c->backlog;
            c->backlog = m->next;
            backlog_msg_free(m, false);
        }
        HASH_DEL(out->clients, c);
        free(c);
    }
    msgpack_sbuffer_destroy(&out->hbuf);
    free(out);
    *outp = NULL;
}
