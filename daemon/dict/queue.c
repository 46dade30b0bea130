/* queue.c - shared queues (PROTOCOL.md 6.9.1): queue.put, get, len, range and clear.
 *
 * A queue's items are values in the store (skeys.h: "\x01q", key "NAME/<pos>"), so they are
 * logged, limited, compacted and replayed as dict values are; what the store does not keep is
 * their order, a ring of positions per queue here, rebuilt at start by sorting the positions.
 * A put takes the position after the last item (before the first with `front`), a get the first
 * item. A queue exists while it has items or waiters.
 *
 * Consumers that block wait here in FIFO order (swait.h); a put into an empty queue with
 * consumers waiting hands its item straight to the first of them (no store, no log: it is
 * delivered as it is put). An item is taken out of the store, durably, before it leaves, and
 * goes back to the front of its queue if it cannot reach its consumer: when no connection holds
 * the consumer's routing id any more (outbox_deliver), and when it waited in the consumer's
 * backlog and the consumer went before it left (item_returned). So a consumer that disappears
 * while it waits takes nothing with it, and one item goes to exactly one consumer.
 *
 * Producers over a put's `maxsize` wait in FIFO order too, their item with them; room made by a
 * get or a clear lets them in, in order. A consumer or producer may withdraw its waiting request
 * (queue.withdraw): it leaves its FIFO with nothing taken or put. */
#define _GNU_SOURCE
#include "skeys.h"
#include "swait.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#define BASE_POS (1ull << 63) /* the position of an empty queue's first item */

typedef struct queue {
    UT_hash_handle hh;          /* in queues_t.by_name */
    uint64_t *pos;              /* ring of the items' positions, first at head */
    size_t cap, head, n;        /* its size, where the first is, how many */
    swaiter_t *getters;         /* consumers waiting for an item, FIFO */
    swaiter_t *putters;         /* producers waiting for room, FIFO */
    size_t nlen;                /* bytes of name */
    char name[WIRE_ID_MAX + 1]; /* NUL-terminated */
} queue_t;

struct queues {
    queue_t *by_name;
    size_t items;  /* in all queues */
    bool stopping; /* forqd stops: items given back go into the store, to no consumer */
};

/* An item on its way to a consumer, in the consumer's backlog: where it goes back to. */
typedef struct {
    dict_service_t *s;
    size_t nlen;
    char name[WIRE_ID_MAX + 1];
} item_home_t;

/* ---- a queue's ring of positions ---- */

static uint64_t at(const queue_t *q, size_t i)
{
    return q->pos[(q->head + i) % q->cap];
}

static void grow(queue_t *q)
{
    size_t cap = q->cap ? 2 * q->cap : 16;
    uint64_t *p = xmalloc(cap * sizeof(*p));

    for (size_t i = 0; i < q->n; i++)
        p[i] = at(q, i);
    free(q->pos);
    q->pos = p;
    q->cap = cap;
    q->head = 0;
}

static void push(queue_t *q, uint64_t pos, bool front)
{
    if (q->n == q->cap)
        grow(q);
    if (front) {
        q->head = (q->head + q->cap - 1) % q->cap;
        q->pos[q->head] = pos;
    } else {
        q->pos[(q->head + q->n) % q->cap] = pos;
    }
    q->n++;
}

static void pop_front(queue_t *q)
{
    q->head = (q->head + 1) % q->cap;
    q->n--;
}

/* The position a put takes. */
static uint64_t next_pos(const queue_t *q, bool front)
{
    if (q->n == 0)
        return BASE_POS;
    return front ? at(q, 0) - 1 : at(q, q->n - 1) + 1;
}

/* ---- queues by name ---- */

static queue_t *find(dict_service_t *s, const char *name, size_t nlen, bool create)
{
    queue_t *q;

    HASH_FIND(hh, s->queues->by_name, name, nlen, q);
    if (q || !create)
        return q;
    q = xcalloc(1, sizeof(*q));
    memcpy(q->name, name, nlen);
    q->nlen = nlen;
    HASH_ADD(hh, s->queues->by_name, name, nlen, q);
    return q;
}

/* A queue with no items and nobody waiting is forgotten. */
static void forget_if_idle(dict_service_t *s, queue_t *q)
{
    if (q->n || q->getters || q->putters)
        return;
    HASH_DEL(s->queues->by_name, q);
    free(q->pos);
    free(q);
}

static size_t key_of(const queue_t *q, uint64_t pos, char *buf)
{
    return skeys_make(buf, q->name, q->nlen, pos);
}

/* ---- answers ---- */

static void answer(dict_service_t *s, const origin_t *o, const wire_hdr_t *req, wire_hdr_t *rep,
                   zmq_msg_t *item)
{
    rep->cmd = WIRE_DICT_REPLY;
    rep->req = req->req;
    rep->has_req = req->has_req;
    outbox_send(s->out, o, rep, item);
}

static void offer(dict_service_t *s, queue_t *q, zmq_msg_t *item, bool front);

/* The backlog gives back an item its consumer left without: to the front of its queue. */
static void item_returned(void *ud, zmq_msg_t *payload, bool sent)
{
    item_home_t *home = ud;

    if (!sent && payload) {
        queue_t *q = find(home->s, home->name, home->nlen, true);
        log_info("queue %s: an item's consumer went away before it could take it; the item "
                 "goes back to the front",
                 q->name);
        offer(home->s, q, payload, true);
        forget_if_idle(home->s, q);
    }
    free(home);
}

/* Hand an item to a consumer (found: true, count: the items left): true when it left or waits
 * in the consumer's backlog (which gives it back if the consumer goes before it leaves), false
 * when the consumer is gone: the item is still the caller's. */
static bool hand_over(dict_service_t *s, const queue_t *q, const origin_t *o, const wire_hdr_t *req,
                      zmq_msg_t *item)
{
    wire_hdr_t rep = {.cmd = WIRE_DICT_REPLY,
                      .req = req->req,
                      .has_req = req->has_req,
                      .found = true,
                      .count = q->n};
    item_home_t *home = xmalloc(sizeof(*home));
    int r;

    home->s = s;
    home->nlen = q->nlen;
    memcpy(home->name, q->name, q->nlen + 1);
    r = outbox_deliver(s->out, o, &rep, item, item_returned, home);
    if (r != 1)
        free(home); /* it left, or never went: the backlog does not hold it */
    return r >= 0;
}

/* ---- putting ---- */

/* Store an item at the back (front) of q, in the log first. 0, or -errno after undoing it. */
static int store(dict_service_t *s, queue_t *q, const void *data, size_t len, bool front,
                 const origin_t *o, const wire_hdr_t *req)
{
    uint64_t pos = next_pos(q, front), ver;
    char key[SKEYS_KEY_MAX + 1];
    size_t klen = key_of(q, pos, key);
    int r;

    svc_remember(s, SKEYS_QUEUES, SKEYS_NLEN, key, klen);
    if ((r = dstore_set(s->store, SKEYS_QUEUES, SKEYS_NLEN, key, klen, data, len, &ver)) < 0) {
        svc_forget_undo(s);
        if (o)
            svc_store_error(s, o, req, r);
        return r;
    }
    if ((r = svc_commit(s)) < 0) {
        if (o)
            svc_log_refused(s, o, req, r);
        return r;
    }
    push(q, pos, front);
    s->queues->items++;
    return 0;
}

/* An item for q (payload taken): to the first consumer still there, or into the queue. Used for
 * what has no producer to answer any more (an item given back). */
static void offer(dict_service_t *s, queue_t *q, zmq_msg_t *item, bool front)
{
    while (q->getters && !s->queues->stopping) {
        swaiter_t *w = q->getters;
        origin_t o = swaiter_origin(w);
        bool went = hand_over(s, q, &o, &w->req, item);
        DL_DELETE(q->getters, w);
        swaiter_free(s, w);
        if (went)
            return;
    }
    if (store(s, q, zmq_msg_data(item), zmq_msg_size(item), front, NULL, NULL) < 0)
        log_error("queue %s: an item that could not be delivered could not be put back either "
                  "(the dict service is full, or its log failed): it is lost",
                  q->name);
    zmq_msg_close(item);
}

/* The put of a producer (payload taken), answered: found true and the count, or an error. */
static void put(dict_service_t *s, queue_t *q, const origin_t *o, const wire_hdr_t *req,
                zmq_msg_t *item, bool front)
{
    wire_hdr_t rep = {.found = true};

    /* an empty queue with consumers waiting: straight to the first one still there */
    while (q->getters) {
        swaiter_t *w = q->getters;
        origin_t wo = swaiter_origin(w);
        bool went = hand_over(s, q, &wo, &w->req, item);
        DL_DELETE(q->getters, w);
        swaiter_free(s, w);
        if (went) {
            answer(s, o, req, &rep, NULL);
            return;
        }
    }
    if (store(s, q, zmq_msg_data(item), zmq_msg_size(item), front, o, req) == 0) {
        rep.count = q->n;
        answer(s, o, req, &rep, NULL);
    }
    zmq_msg_close(item);
}

static bool has_room(const queue_t *q, uint64_t maxsize)
{
    return maxsize == 0 || q->n < maxsize;
}

/* Room was made: the producers waiting for it go in, in order. */
static void let_putters_in(dict_service_t *s, queue_t *q)
{
    while (q->putters && has_room(q, q->putters->req.maxsize)) {
        swaiter_t *w = q->putters;
        origin_t o = swaiter_origin(w);
        DL_DELETE(q->putters, w);
        put(s, q, &o, &w->req, &w->payload, w->req.front);
        zmq_msg_init(&w->payload); /* put() took it */
        swaiter_free(s, w);
    }
}

static void putter_expired(dict_service_t *s, swaiter_t *w)
{
    queue_t *q = w->obj;
    origin_t o = swaiter_origin(w);
    wire_hdr_t rep = {.code = wire_str(ops_get(OPS_QPUT)->reply_code), .count = q->n};

    DL_DELETE(q->putters, w);
    answer(s, &o, &w->req, &rep, NULL);
    swaiter_free(s, w);
    forget_if_idle(s, q);
}

static void putter_dropped(dict_service_t *s, swaiter_t *w)
{
    queue_t *q = w->obj;

    DL_DELETE(q->putters, w);
    let_putters_in(s, q); /* it may have held those behind it back */
    forget_if_idle(s, q);
}

static void op_put(dict_service_t *s, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload)
{
    queue_t *q = find(s, h->name.ptr, h->name.len, true);
    zmq_msg_t item;

    zmq_msg_init(&item);
    zmq_msg_move(&item, payload);
    /* a bounded put waits behind the producers already waiting: they keep their order */
    if (h->maxsize && (q->putters || !has_room(q, h->maxsize))) {
        if (h->block) {
            swaiter_t *w = swaiter_new(s, o, h, &item, q, putter_expired, putter_dropped);
            if (w)
                DL_APPEND(q->putters, w);
        } else {
            wire_hdr_t rep = {.code = wire_str(ops_get(OPS_QPUT)->reply_code), .count = q->n};
            answer(s, o, h, &rep, NULL);
        }
        zmq_msg_close(&item);
        forget_if_idle(s, q);
        return;
    }
    put(s, q, o, h, &item, h->front);
    forget_if_idle(s, q);
}

/* ---- getting ---- */

/* Take q's first item for a consumer: out of the store and the log first, then to it; back to
 * the front if it cannot reach it. */
static void take(dict_service_t *s, queue_t *q, const origin_t *o, const wire_hdr_t *req)
{
    char key[SKEYS_KEY_MAX + 1];
    size_t klen = key_of(q, at(q, 0), key);
    zmq_msg_t item;
    dval_t v;
    int r;

    if (dstore_get(s->store, SKEYS_QUEUES, SKEYS_NLEN, key, klen, &v) < 0) {
        /* cannot be: every position in the ring has its key */
        log_error("queue %s: item %s is missing from the store; skipped", q->name, key);
        pop_front(q);
        s->queues->items--;
        outbox_error(s->out, o, req, "internal", "the queue's first item was missing; retry");
        return;
    }
    zmq_msg_init_size(&item, v.len);
    memcpy(zmq_msg_data(&item), v.data, v.len);
    svc_remember(s, SKEYS_QUEUES, SKEYS_NLEN, key, klen);
    dstore_del(s->store, SKEYS_QUEUES, SKEYS_NLEN, key, klen);
    if ((r = svc_commit(s)) < 0) {
        zmq_msg_close(&item);
        svc_log_refused(s, o, req, r);
        return;
    }
    pop_front(q);
    s->queues->items--;
    if (!hand_over(s, q, o, req, &item))
        offer(s, q, &item, true); /* its consumer is gone: the next one, or the front */
    let_putters_in(s, q);
}

static void getter_expired(dict_service_t *s, swaiter_t *w)
{
    queue_t *q = w->obj;
    origin_t o = swaiter_origin(w);
    wire_hdr_t rep = {.code = wire_str(ops_get(OPS_QGET)->reply_code)};

    DL_DELETE(q->getters, w);
    answer(s, &o, &w->req, &rep, NULL);
    swaiter_free(s, w);
    forget_if_idle(s, q);
}

static void getter_dropped(dict_service_t *s, swaiter_t *w)
{
    queue_t *q = w->obj;

    DL_DELETE(q->getters, w);
    forget_if_idle(s, q);
}

static void op_get(dict_service_t *s, const origin_t *o, const wire_hdr_t *h)
{
    queue_t *q = find(s, h->name.ptr, h->name.len, h->block);

    if (q && q->n) {
        take(s, q, o, h);
    } else if (h->block) {
        swaiter_t *w = swaiter_new(s, o, h, NULL, q, getter_expired, getter_dropped);
        if (w)
            DL_APPEND(q->getters, w);
    } else {
        wire_hdr_t rep = {.code = wire_str(ops_get(OPS_QGET)->reply_code)};
        answer(s, o, h, &rep, NULL);
        return;
    }
    forget_if_idle(s, q);
}

/* ---- reading and clearing ---- */

static void op_range(dict_service_t *s, const origin_t *o, const wire_hdr_t *h)
{
    queue_t *q = find(s, h->name.ptr, h->name.len, false);
    size_t n = q ? q->n : 0, limit = h->limit ? h->limit : 1000, first, count;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    zmq_msg_t page;

    if (limit > 10000)
        limit = 10000;
    first = h->start < n ? (size_t)h->start : n;
    count = n - first < limit ? n - first : limit;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, count);
    for (size_t i = 0; i < count; i++) {
        char key[SKEYS_KEY_MAX + 1];
        size_t klen = key_of(q, at(q, first + i), key);
        dval_t v;
        if (dstore_get(s->store, SKEYS_QUEUES, SKEYS_NLEN, key, klen, &v) == 0)
            msgpack_sbuffer_write(&sb, v.data, v.len);
        else
            msgpack_pack_nil(&pk); /* cannot be (take() says so) */
    }
    wire_hdr_t rep = {.count = count, .more = first + count < n};
    zmq_msg_init_size(&page, sb.size);
    memcpy(zmq_msg_data(&page), sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    answer(s, o, h, &rep, &page);
}

/* Every item goes: their deletions are logged first, as one frame (no copy of what they held is
 * kept to undo them), then the store forgets them. */
static void op_clear(dict_service_t *s, const origin_t *o, const wire_hdr_t *h)
{
    queue_t *q = find(s, h->name.ptr, h->name.len, false);
    wire_hdr_t rep = {0};
    char key[SKEYS_KEY_MAX + 1];
    int r;

    if (!q || q->n == 0)
        return answer(s, o, h, &rep, NULL);
    if (s->log) {
        for (size_t i = 0; i < q->n; i++)
            dictlog_put(s->log, SKEYS_QUEUES, SKEYS_NLEN, key, key_of(q, at(q, i), key), NULL, 0,
                        0);
        dictlog_put_version(s->log, dstore_version(s->store));
        if ((r = dictlog_commit(s->log)) < 0)
            return svc_log_refused(s, o, h, r);
    }
    s->logged = true; /* the store's change hook must not log them again */
    for (size_t i = 0; i < q->n; i++)
        dstore_del(s->store, SKEYS_QUEUES, SKEYS_NLEN, key, key_of(q, at(q, i), key));
    s->logged = false;
    rep.count = q->n;
    s->queues->items -= q->n;
    q->n = 0;
    q->head = 0;
    answer(s, o, h, &rep, NULL);
    let_putters_in(s, q);
    forget_if_idle(s, q);
}

/* A blocked get or put of o's, withdrawn: it goes with nothing taken or put. A put may have
 * held those behind it back. */
static void op_withdraw(dict_service_t *s, const origin_t *o, const wire_hdr_t *h)
{
    queue_t *q = find(s, h->name.ptr, h->name.len, false);
    bool other = false, putter = false;
    swaiter_t *w = NULL;

    if (q && !(w = swaiter_find(q->getters, o, h->of, &other)))
        putter = (w = swaiter_find(q->putters, o, h->of, &other)) != NULL;
    if (w) {
        if (putter)
            DL_DELETE(q->putters, w);
        else
            DL_DELETE(q->getters, w);
        swaiter_free(s, w);
    }
    swaiter_withdraw_answer(s, o, h, w != NULL, other, q ? q->n : 0);
    if (q) {
        if (putter)
            let_putters_in(s, q);
        forget_if_idle(s, q);
    }
}

void queue_request(dict_service_t *s, const ops_desc_t *op, const origin_t *o, const wire_hdr_t *h,
                   zmq_msg_t *payload)
{
    queue_t *q;
    wire_hdr_t rep = {0};

    switch (op->id) {
    case OPS_QPUT:
        op_put(s, o, h, payload);
        break;
    case OPS_QGET:
        op_get(s, o, h);
        break;
    case OPS_QLEN:
        q = find(s, h->name.ptr, h->name.len, false);
        rep.count = q ? q->n : 0;
        answer(s, o, h, &rep, NULL);
        break;
    case OPS_QRANGE:
        op_range(s, o, h);
        break;
    case OPS_QWITHDRAW:
        op_withdraw(s, o, h);
        break;
    default:
        op_clear(s, o, h);
        break;
    }
}

/* ---- start and stop ---- */

static int load_item(void *ud, const skeys_entry_t *e)
{
    dict_service_t *s = ud;
    queue_t *q = find(s, e->name, e->nlen, true);

    push(q, e->n, false);
    s->queues->items++;
    return 0;
}

static int pos_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

queues_t *queues_new(dict_service_t *s)
{
    queue_t *q, *tmp;
    size_t bad;

    s->queues = xcalloc(1, sizeof(*s->queues));
    bad = skeys_each(s->store, SKEYS_QUEUES, load_item, s);
    if (bad)
        log_error("dict log: %zu queue item(s) with a malformed key were ignored", bad);
    /* the store keeps them in the order they were added: a put at the front came later */
    HASH_ITER(hh, s->queues->by_name, q, tmp)
    {
        if (q->head + q->n > q->cap) /* never: loading only appends */
            grow(q);
        qsort(q->pos + q->head, q->n, sizeof(*q->pos), pos_cmp);
    }
    if (s->queues->items)
        log_info("dict log: %zu items in %u queues restored", s->queues->items,
                 HASH_COUNT(s->queues->by_name));
    return s->queues;
}

void queues_free(dict_service_t *s)
{
    queue_t *q, *tmp;

    if (!s->queues)
        return;
    HASH_ITER(hh, s->queues->by_name, q, tmp)
    {
        HASH_DEL(s->queues->by_name, q);
        free(q->pos);
        free(q);
    }
    free(s->queues);
    s->queues = NULL;
}

void queues_take_back(dict_service_t *s)
{
    s->queues->stopping = true; /* nothing goes back into a backlog being emptied */
    outbox_take_back(s->out, item_returned);
}

size_t queues_count(const dict_service_t *s)
{
    return HASH_COUNT(s->queues->by_name);
}

size_t queues_items(const dict_service_t *s)
{
    return s->queues->items;
}
