/* event.c - events (PROTOCOL.md 6.9.3): event.set, clear and wait, as multiprocessing.Event.
 *
 * An event is set while its key is in the store (skeys.h: "\x01e", key NAME, value true): logged,
 * restored at start, within the same limits as everything else. Who waits for an event to be set
 * waits here (swait.h); setting it answers every one of them. */
#define _GNU_SOURCE
#include "skeys.h"
#include "swait.h"

#include "util.h"

#include <string.h>
#include <uthash.h>
#include <utlist.h>

typedef struct evobj {
    UT_hash_handle hh;          /* in events_t.by_name */
    swaiter_t *waiters;         /* who waits for it to be set */
    size_t nlen;                /* bytes of name */
    char name[WIRE_ID_MAX + 1]; /* NUL-terminated */
} evobj_t;

struct events {
    evobj_t *by_name; /* the events someone waits for */
};

static const char set_value[] = {'\xc3'}; /* msgpack true */

static evobj_t *find(dict_service_t *s, const char *name, size_t nlen, bool create)
{
    evobj_t *e;

    HASH_FIND(hh, s->events->by_name, name, nlen, e);
    if (e || !create)
        return e;
    e = xcalloc(1, sizeof(*e));
    memcpy(e->name, name, nlen);
    e->nlen = nlen;
    HASH_ADD(hh, s->events->by_name, name, nlen, e);
    return e;
}

static void forget_if_idle(dict_service_t *s, evobj_t *e)
{
    if (e->waiters)
        return;
    HASH_DEL(s->events->by_name, e);
    free(e);
}

static bool is_set(dict_service_t *s, const wire_hdr_t *h)
{
    dval_t v;
    return dstore_get(s->store, SKEYS_EVENTS, SKEYS_NLEN, h->name.ptr, h->name.len, &v) == 0;
}

static void answer(dict_service_t *s, const origin_t *o, const wire_hdr_t *req, wire_hdr_t *rep)
{
    rep->cmd = WIRE_DICT_REPLY;
    rep->req = req->req;
    rep->has_req = req->has_req;
    outbox_send(s->out, o, rep, NULL);
}

static void waiter_expired(dict_service_t *s, swaiter_t *w)
{
    evobj_t *e = w->obj;
    origin_t o = swaiter_origin(w);
    wire_hdr_t rep = {.code = wire_str(ops_get(OPS_EWAIT)->reply_code)};

    DL_DELETE(e->waiters, w);
    answer(s, &o, &w->req, &rep);
    swaiter_free(s, w);
    forget_if_idle(s, e);
}

static void waiter_dropped(dict_service_t *s, swaiter_t *w)
{
    evobj_t *e = w->obj;

    DL_DELETE(e->waiters, w);
    forget_if_idle(s, e);
}

/* Set or clear: the key in or out of the store, in the log before the answer. */
static void op_change(dict_service_t *s, const origin_t *o, const wire_hdr_t *h, bool set)
{
    bool was = is_set(s, h);
    wire_hdr_t rep = {.found = set};
    uint64_t ver;
    int r;

    if (was != set) {
        svc_remember(s, SKEYS_EVENTS, SKEYS_NLEN, h->name.ptr, h->name.len);
        if (set)
            r = dstore_set(s->store, SKEYS_EVENTS, SKEYS_NLEN, h->name.ptr, h->name.len, set_value,
                           sizeof(set_value), &ver);
        else
            r = dstore_del(s->store, SKEYS_EVENTS, SKEYS_NLEN, h->name.ptr, h->name.len);
        if (r < 0) {
            svc_forget_undo(s);
            return svc_store_error(s, o, h, r);
        }
        if ((r = svc_commit(s)) < 0)
            return svc_log_refused(s, o, h, r);
    }
    evobj_t *e = set ? find(s, h->name.ptr, h->name.len, false) : NULL;
    rep.count = 0;
    while (e && e->waiters) {
        swaiter_t *w = e->waiters;
        origin_t wo = swaiter_origin(w);
        wire_hdr_t wrep = {.found = true};
        DL_DELETE(e->waiters, w);
        answer(s, &wo, &w->req, &wrep);
        swaiter_free(s, w);
        rep.count++; /* the waiters it woke */
    }
    if (e)
        forget_if_idle(s, e);
    if (!set)
        rep.found = was; /* clear: whether it was set */
    answer(s, o, h, &rep);
}

static void op_wait(dict_service_t *s, const origin_t *o, const wire_hdr_t *h)
{
    wire_hdr_t rep = {.found = true};

    if (is_set(s, h) || !h->block) {
        rep.found = is_set(s, h);
        answer(s, o, h, &rep);
        return;
    }
    evobj_t *e = find(s, h->name.ptr, h->name.len, true);
    swaiter_t *w = swaiter_new(s, o, h, NULL, e, waiter_expired, waiter_dropped);
    if (w)
        DL_APPEND(e->waiters, w);
    forget_if_idle(s, e);
}

/* A blocked wait of o's, withdrawn: it is never answered. */
static void op_withdraw(dict_service_t *s, const origin_t *o, const wire_hdr_t *h)
{
    evobj_t *e = find(s, h->name.ptr, h->name.len, false);
    bool other = false;
    swaiter_t *w = e ? swaiter_find(e->waiters, o, h->of, &other) : NULL;

    if (w) {
        DL_DELETE(e->waiters, w);
        swaiter_free(s, w);
    }
    swaiter_withdraw_answer(s, o, h, w != NULL, other, 0);
    if (e)
        forget_if_idle(s, e);
}

void event_request(dict_service_t *s, const ops_desc_t *op, const origin_t *o, const wire_hdr_t *h)
{
    if (op->id == OPS_EWITHDRAW)
        op_withdraw(s, o, h);
    else if (op->id == OPS_EWAIT)
        op_wait(s, o, h);
    else
        op_change(s, o, h, op->id == OPS_ESET);
}

events_t *events_new(dict_service_t *s)
{
    s->events = xcalloc(1, sizeof(*s->events));
    return s->events;
}

void events_free(dict_service_t *s)
{
    evobj_t *e, *tmp;

    if (!s->events)
        return;
    HASH_ITER(hh, s->events->by_name, e, tmp)
    {
        HASH_DEL(s->events->by_name, e);
        free(e);
    }
    free(s->events);
    s->events = NULL;
}
