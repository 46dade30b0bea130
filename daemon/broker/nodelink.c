/* nodelink.c - a node's link to its head. See nodelink.h and PROTOCOL.md section 14.
 *
 * States: JOINING (a join is sent every heartbeat interval until the head welcomes it) and
 * JOINED. Any message from the head counts as its heartbeat; 3 intervals without one and the
 * head is lost: the socket is made anew (ZeroMQ's Paranoid Pirate worker does the same, so
 * that nothing queued for the dead connection is sent to the next), and the link joins again,
 * naming the runs it still holds. Results that come while the head is away wait, for
 * --node-grace, and go to the head after the welcome; past the grace every run held is
 * cancelled and its result dropped. */
#define _GNU_SOURCE
#include "nodelink.h"

#include "access.h"
#include "jobs.h"
#include "log.h"
#include "nodemsg.h"
#include "outbox.h"
#include "pool.h"
#include "tasks.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uthash.h>

typedef struct held {
    UT_hash_handle hh;  /* in link->held by id */
    zmq_msg_t hdr, pay; /* its result while the head is away (pending), else empty */
    bool pending, has_pay;
    char id[WIRE_ID_MAX + 1];
} held_t;

/* A dict request sent to the head for a worker's task, by the link's own request number. */
typedef struct dreq {
    UT_hash_handle hh; /* in link->dreqs by req */
    uint64_t req;      /* the link's number for it */
    uint64_t wreq;     /* the worker's own */
    bool has_wreq;
    pid_t pid; /* the worker */
} dreq_t;

struct nodelink {
    broker_t *b;
    void *zctx;
    void *head; /* DEALER to the head */
    loop_io_t *head_io;
    bool joined, ever_joined, bye_sent;
    uint64_t hb_ms; /* agreed at the welcome */
    uint64_t last_heard, last_sent, next_join;
    uint64_t unheard_since; /* joining, and no answer from the head since (0: answered) */
    uint64_t lost_since;    /* when the head was lost with runs held; 0: not lost */
    dreq_t *dreqs;          /* dict requests the head has not answered */
    uint64_t dreq_seq;      /* their numbers */
    held_t *held;           /* runs given by the head and not yet reported to it */
    msgpack_zone zone;
    char name[WIRE_ID_MAX + 1];
};

static void on_head(void *ud, short revents);
static void dict_answer(nodelink_t *l, wire_hdr_t *h, zmq_msg_t *payload);

static held_t *held_find(nodelink_t *l, const char *id, size_t len)
{
    held_t *h;
    HASH_FIND(hh, l->held, id, len, h);
    return h;
}

static void held_free(nodelink_t *l, held_t *h)
{
    HASH_DEL(l->held, h);
    if (h->pending) {
        zmq_msg_close(&h->hdr);
        if (h->has_pay)
            zmq_msg_close(&h->pay);
    }
    free(h);
}

static void to_head(nodelink_t *l, const char *kind, const void *data, size_t len, zmq_msg_t *m1,
                    zmq_msg_t *m2)
{
    if (nodemsg_send(l->head, NULL, 0, kind, data, len, m1, m2) < 0)
        log_debug("node link: a %s could not be sent to the head: %s", kind, zmq_strerror(errno));
    l->last_sent = now_ms();
}

static int open_head(nodelink_t *l)
{
    const config_t *cfg = l->b->cfg;
    int linger = 2000, ivl = 100, ivl_max = 1000, hwm = 1000000;
    int64_t maxmsg = cfg->max_payload + WIRE_HEADER_MAX;
    char ident[WIRE_ID_MAX + 8];

    l->head = zmq_socket(l->zctx, ZMQ_DEALER);
    snprintf(ident, sizeof(ident), "node:%s", l->name);
    zmq_setsockopt(l->head, ZMQ_ROUTING_ID, ident, strlen(ident));
    zmq_setsockopt(l->head, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(l->head, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
    zmq_setsockopt(l->head, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max));
    zmq_setsockopt(l->head, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(l->head, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(l->head, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
    if (strncmp(cfg->join, "tcp://", 6) == 0 && !cfg->insecure_tcp) {
        char pub[FORQ_KEY_Z85], sec[FORQ_KEY_Z85];
        bool made;
        if (!cfg->head_key) {
            fprintf(stderr,
                    "forqd: --join %s needs --head-key (the head's forqd --show-key), or "
                    "--insecure-tcp on both sides for a loopback test\n",
                    cfg->join);
            return -EINVAL;
        }
        if (access_server_key(cfg, pub, sec, &made) < 0)
            return -EINVAL;
        zmq_setsockopt(l->head, ZMQ_CURVE_SERVERKEY, cfg->head_key, 40);
        zmq_setsockopt(l->head, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(l->head, ZMQ_CURVE_SECRETKEY, sec, 40);
    } else if (strncmp(cfg->join, "tcp://", 6) == 0) {
        log_warn("joining %s in plaintext, without keys (--insecure-tcp): loopback tests only",
                 cfg->join);
    }
    if (zmq_connect(l->head, cfg->join) < 0) {
        fprintf(stderr, "forqd: cannot join %s: %s\n", cfg->join, zmq_strerror(errno));
        return -errno;
    }
    l->head_io = loop_io_add(l->b->loop, l->head, -1, ZMQ_POLLIN, ORDER_CLIENTS, on_head, l);
    return 0;
}

static void send_join(nodelink_t *l)
{
    const config_t *cfg = l->b->cfg;
    long credit = cfg->workers * (1 + cfg->prefetch); /* each worker: one job, and its prefetch */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    held_t *h, *tmp;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_uint64(&pk, NODE_VERSION);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, l->name, strlen(l->name));
    msgpack_pack_str_with_body(&pk, "slots", 5);
    msgpack_pack_uint64(&pk, (uint64_t)cfg->workers);
    msgpack_pack_str_with_body(&pk, "credit", 6);
    msgpack_pack_uint64(&pk, (uint64_t)credit);
    msgpack_pack_str_with_body(&pk, "tasks", 5);
    tasks_pack(l->b->tasks, &pk);
    msgpack_pack_str_with_body(&pk, "tags", 4);
    msgpack_pack_array(&pk, cfg->tags.n);
    for (size_t i = 0; i < cfg->tags.n; i++)
        msgpack_pack_str_with_body(&pk, cfg->tags.items[i], strlen(cfg->tags.items[i]));
    msgpack_pack_str_with_body(&pk, "held", 4);
    msgpack_pack_array(&pk, HASH_COUNT(l->held));
    HASH_ITER(hh, l->held, h, tmp)
    msgpack_pack_str_with_body(&pk, h->id, strlen(h->id));
    to_head(l, "join", sb.data, sb.size, NULL, NULL);
    msgpack_sbuffer_destroy(&sb);
}

/* Send what waited for the head: results of runs it still names. */
static void flush_pending(nodelink_t *l)
{
    held_t *h, *tmp;

    HASH_ITER(hh, l->held, h, tmp)
    {
        if (!h->pending)
            continue;
        to_head(l, "fjp", NULL, 0, &h->hdr, h->has_pay ? &h->pay : NULL);
        held_free(l, h);
    }
}

static void on_head_msg(nodelink_t *l, zmq_msg_t *f, int n)
{
    l->last_heard = now_ms();
    l->unheard_since = 0;
    if (nodemsg_is(&f[0], "welcome")) {
        msgpack_zone_clear(&l->zone);
        l->hb_ms = n > 1 ? nodemsg_map_uint(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &l->zone,
                                            "hb_ms", (uint64_t)l->b->cfg->heartbeat_ms)
                         : (uint64_t)l->b->cfg->heartbeat_ms;
        if (l->hb_ms < 10)
            l->hb_ms = 10;
        log_notice("node %s %s %s (heartbeat %" PRIu64 " ms, %u run(s) held)", l->name,
                   l->ever_joined ? "rejoined" : "joined", l->b->cfg->join, l->hb_ms,
                   HASH_COUNT(l->held));
        l->joined = l->ever_joined = true;
        l->lost_since = 0;
        flush_pending(l);
    } else if (nodemsg_is(&f[0], "refuse")) {
        char why[WIRE_TEXT_MAX + 1] = "";
        if (n > 1) {
            /* the map's one string, shown as sent (it is one line from the head) */
            msgpack_object o;
            size_t off = 0;
            wire_err_t err;
            msgpack_zone_clear(&l->zone);
            if (wire_check(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), 1, &err) == 0 &&
                msgpack_unpack(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &off, &l->zone, &o) ==
                    MSGPACK_UNPACK_SUCCESS &&
                o.type == MSGPACK_OBJECT_MAP && o.via.map.size == 1 &&
                o.via.map.ptr[0].val.type == MSGPACK_OBJECT_STR)
                snprintf(why, sizeof(why), "%.*s", (int)o.via.map.ptr[0].val.via.str.size,
                         o.via.map.ptr[0].val.via.str.ptr);
        }
        log_error("the head %s refused this node: %s; trying again in 10 s", l->b->cfg->join, why);
        l->joined = false;
        l->next_join = now_ms() + 10000;
    } else if (nodemsg_is(&f[0], "rejoin")) {
        if (l->joined)
            log_warn("the head %s no longer knows this node; joining again", l->b->cfg->join);
        l->joined = false;
        l->next_join = 0;
    } else if (nodemsg_is(&f[0], "fjp") && n > 1) {
        wire_hdr_t h;
        wire_err_t err;
        msgpack_zone_clear(&l->zone);
        if (wire_hdr_decode(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &l->zone, &h, &err) < 0)
            return;
        if (h.cmd == WIRE_DICT_REPLY || h.cmd == WIRE_ERROR) {
            dict_answer(l, &h, n > 2 ? &f[2] : NULL);
            return;
        }
        if (h.cmd == WIRE_SUBMIT && !held_find(l, h.id.ptr, h.id.len)) {
            held_t *x = xcalloc(1, sizeof(*x));
            snprintf(x->id, sizeof(x->id), "%.*s", (int)h.id.len, h.id.ptr);
            HASH_ADD(hh, l->held, id[0], strlen(x->id), x);
        } else if (h.cmd == WIRE_SUBMIT) {
            return; /* sent twice (a join raced it): it runs once */
        }
        /* into this forqd's own queue, as a local client's request: its answers come back
         * through nodelink_route() */
        origin_t o = {.ident = (const uint8_t *)NODELINK_ROUTE, .ilen = NODELINK_ROUTE_LEN};
        commands_handle(l->b, &o, &h, n - 2, n > 2 ? &f[2] : NULL);
    }
}

/* The head's answer to a dict request: to the worker that asked, with its own number. */
static void dict_answer(nodelink_t *l, wire_hdr_t *h, zmq_msg_t *payload)
{
    dreq_t *d;
    worker_t *w;
    const msgpack_sbuffer *e;

    HASH_FIND(hh, l->dreqs, &h->req, sizeof(h->req), d);
    if (!d)
        return;
    HASH_DEL(l->dreqs, d);
    h->req = d->wreq;
    h->has_req = d->has_wreq;
    h->id = (wire_str_t){0};
    if ((w = pool_worker(l->b->pool, d->pid)) && (e = outbox_encode(l->b->out, h))) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        if (payload)
            zmq_msg_copy(&copy, payload);
        pool_send(l->b->pool, w, e->data, e->size, payload ? &copy : NULL);
        zmq_msg_close(&copy);
    }
    free(d);
}

/* Every dict request in flight fails: the head is gone. */
static void dict_fail_all(nodelink_t *l)
{
    dreq_t *d, *tmp;

    HASH_ITER(hh, l->dreqs, d, tmp)
    {
        wire_hdr_t h = {.cmd = WIRE_ERROR,
                        .req = d->req,
                        .has_req = true,
                        .code = wire_str("internal"),
                        .msg = wire_str("this node lost its head during the request; the dict "
                                        "service is the head's: retry")};
        dict_answer(l, &h, NULL);
    }
}

bool nodelink_dict(nodelink_t *l, worker_t *w, const wire_hdr_t *h, zmq_msg_t *payload)
{
    job_t *job = w->job;
    const msgpack_sbuffer *e;
    wire_hdr_t f = *h;
    dreq_t *d;

    if (!job || !held_find(l, job->id, job->id_len))
        return false; /* a job of this forqd's own clients: its own dict service */
    if (!l->joined) {
        origin_t o = {.worker = w->pid};
        outbox_error(l->b->out, &o, h, "internal",
                     "this node has lost its head, whose dict service its tasks use; retry");
        return true;
    }
    d = xcalloc(1, sizeof(*d));
    d->req = ++l->dreq_seq;
    d->wreq = h->req;
    d->has_wreq = h->has_req;
    d->pid = w->pid;
    HASH_ADD(hh, l->dreqs, req, sizeof(d->req), d);
    f.req = d->req;
    f.has_req = true;
    f.id = (wire_str_t){job->id, job->id_len}; /* the run: the head knows whose rights */
    if ((e = outbox_encode(l->b->out, &f))) {
        zmq_msg_t hm, copy;
        zmq_msg_init_size(&hm, e->size);
        memcpy(zmq_msg_data(&hm), e->data, e->size);
        zmq_msg_init(&copy);
        if (payload)
            zmq_msg_copy(&copy, payload);
        to_head(l, "fjp", NULL, 0, &hm, payload ? &copy : NULL);
        zmq_msg_close(&hm);
        zmq_msg_close(&copy);
    }
    return true;
}

static void on_head(void *ud, short revents)
{
    nodelink_t *l = ud;
    zmq_msg_t f[NODE_FRAMES_MAX];

    (void)revents;
    for (int i = 0; i < BROKER_BATCH; i++) {
        int n = nodemsg_recv(l->head, f, NODE_FRAMES_MAX);
        if (n == -1)
            break;
        if (n < -1)
            n = -2 - n;
        on_head_msg(l, f, n);
        nodemsg_close(f, n);
    }
}

int nodelink_route(nodelink_t *l, zmq_msg_t *hdr, zmq_msg_t *payload)
{
    wire_hdr_t h;
    wire_err_t err;
    held_t *x;

    msgpack_zone_clear(&l->zone);
    if (wire_hdr_decode(zmq_msg_data(hdr), zmq_msg_size(hdr), &l->zone, &h, &err) < 0 ||
        (h.cmd != WIRE_PROGRESS && h.cmd != WIRE_RESULT) || (h.cmd == WIRE_PROGRESS && !l->joined))
        goto drop; /* cancel replies and errors: the result says it all */
    if (h.cmd == WIRE_PROGRESS) {
        to_head(l, "fjp", NULL, 0, hdr, NULL);
        goto drop;
    }
    if (!(x = held_find(l, h.id.ptr, h.id.len)) || x->pending)
        goto drop; /* abandoned after the grace: the head has given up on it */
    if (l->joined) {
        to_head(l, "fjp", NULL, 0, hdr, payload);
        held_free(l, x);
        return 0;
    }
    x->pending = true;
    zmq_msg_init(&x->hdr);
    zmq_msg_move(&x->hdr, hdr);
    if ((x->has_pay = payload != NULL)) {
        zmq_msg_init(&x->pay);
        zmq_msg_move(&x->pay, payload);
    }
    return 0;
drop:
    if (payload)
        zmq_msg_close(payload);
    return 0;
}

/* Cancel every run held: the head did not come back within the grace. */
static void abandon(nodelink_t *l)
{
    held_t *h, *tmp;
    size_t n = 0;
    origin_t o = {.ident = (const uint8_t *)NODELINK_ROUTE, .ilen = NODELINK_ROUTE_LEN};

    HASH_ITER(hh, l->held, h, tmp)
    {
        bool pending = h->pending;
        char id[sizeof(h->id)];
        memcpy(id, h->id, sizeof(id));
        wire_hdr_t c = {.cmd = WIRE_CANCEL, .id = wire_str(id)};
        held_free(l, h); /* first: its result, if the cancel makes one now, is dropped */
        if (!pending)
            jobs_cancel(l->b->jobs, &o, &c);
        n++;
    }
    if (n)
        log_warn("the head %s stayed away longer than --node-grace: %zu run(s) cancelled, their "
                 "results dropped",
                 l->b->cfg->join, n);
}

static uint64_t tick(void *ud, uint64_t now)
{
    nodelink_t *l = ud;
    uint64_t hb = l->joined ? l->hb_ms : (uint64_t)l->b->cfg->heartbeat_ms, next;

    if (!l->joined && !l->unheard_since)
        l->unheard_since = now;
    if (!l->joined && l->unheard_since != UINT64_MAX && now >= l->unheard_since + 3 * hb) {
        /* a refused handshake has no answer at all: say what to check, once */
        log_warn("no answer from the head at %s yet: is it up, is this node's key (forqd "
                 "--show-key) in its clients file with the node role, and --head-key its forqd "
                 "--show-key?",
                 l->b->cfg->join);
        l->unheard_since = UINT64_MAX;
    }

    if (l->joined && l->b->draining && !l->bye_sent) {
        to_head(l, "bye", NULL, 0, NULL, NULL);
        l->bye_sent = true;
    }
    if (l->joined && now >= l->last_heard + 3 * hb) {
        log_warn("lost the head %s: no heartbeat for %" PRIu64 " ms; %u run(s) kept for %ld s "
                 "while joining again",
                 l->b->cfg->join, now - l->last_heard, HASH_COUNT(l->held),
                 l->b->cfg->node_grace_ms / 1000);
        l->joined = false;
        l->lost_since = now;
        l->next_join = now;
        dict_fail_all(l);
        loop_io_del(l->b->loop, l->head_io);
        zmq_close(l->head);
        if (open_head(l) < 0)
            log_error("node link: cannot reconnect to %s", l->b->cfg->join);
    }
    if (!l->joined && l->lost_since && now >= l->lost_since + (uint64_t)l->b->cfg->node_grace_ms) {
        abandon(l);
        l->lost_since = 0;
    }
    if (!l->joined && now >= l->next_join && !l->b->draining) {
        send_join(l);
        l->next_join = now + hb;
    }
    if (l->joined && now >= l->last_sent + hb)
        to_head(l, "hb", NULL, 0, NULL, NULL);
    next = l->joined ? l->last_sent + hb : l->next_join;
    if (l->joined && l->last_heard + 3 * hb < next)
        next = l->last_heard + 3 * hb;
    if (!l->joined && l->lost_since && l->lost_since + (uint64_t)l->b->cfg->node_grace_ms < next)
        next = l->lost_since + (uint64_t)l->b->cfg->node_grace_ms;
    return next;
}

nodelink_t *nodelink_new(broker_t *b, void *zctx)
{
    nodelink_t *l = xcalloc(1, sizeof(*l));
    char host[256] = "node";

    l->b = b;
    l->zctx = zctx;
    msgpack_zone_init(&l->zone, 4096);
    if (b->cfg->node_name) {
        snprintf(l->name, sizeof(l->name), "%s", b->cfg->node_name);
    } else {
        gethostname(host, sizeof(host) - 1);
        snprintf(l->name, sizeof(l->name), "%s", host);
        if (!wire_id_is_valid(l->name, strlen(l->name))) {
            fprintf(stderr,
                    "forqd: the host name '%s' is not a node name (1-64 of A-Z a-z 0-9 . "
                    "_ : -); give one with --node-name\n",
                    host);
            nodelink_destroy(&l);
            return NULL;
        }
    }
    if (open_head(l) < 0) {
        nodelink_destroy(&l);
        return NULL;
    }
    loop_tick_add(b->loop, tick, l);
    log_notice("node %s joining %s with %ld slots", l->name, b->cfg->join, b->cfg->workers);
    return l;
}

void nodelink_destroy(nodelink_t **lp)
{
    nodelink_t *l = *lp;
    held_t *h, *tmp;

    if (!l)
        return;
    if (l->head && l->joined && l->b->draining)
        to_head(l, "gone", NULL, 0, NULL, NULL); /* after every answer: they left as made */
    HASH_ITER(hh, l->held, h, tmp)
    held_free(l, h);
    dreq_t *d, *dt;
    HASH_ITER(hh, l->dreqs, d, dt)
    {
        HASH_DEL(l->dreqs, d);
        free(d);
    }
    if (l->head)
        zmq_close(l->head);
    msgpack_zone_destroy(&l->zone);
    free(l);
    *lp = NULL;
}
