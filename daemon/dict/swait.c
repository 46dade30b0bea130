/* swait.c - see swait.h. */
#define _GNU_SOURCE
#include "swait.h"

#include "util.h"

#include <stdio.h>
#include <string.h>
#include <utlist.h>

static void on_timer(void *ud, timer_node_t *t, uint64_t now)
{
    swaiter_t *w = container_of(t, swaiter_t, timer);

    (void)now;
    loop_timer_disarm(((dict_service_t *)ud)->loop, t);
    w->expired(ud, w); /* answers and frees it */
}

void swaiters_init(dict_service_t *s)
{
    s->swait_kind = loop_timer_kind(s->loop, on_timer, s);
}

swaiter_t *swaiter_new(dict_service_t *s, const origin_t *o, const wire_hdr_t *h,
                       zmq_msg_t *payload, void *obj, swaiter_fn expired, swaiter_fn dropped)
{
    swaiter_t *w;

    if (s->n_swaiters >= SWAITERS_MAX) {
        char msg[128];
        snprintf(msg, sizeof(msg),
                 "forqd already has %d queue, lock and event waits open; retry later",
                 SWAITERS_MAX);
        outbox_error(s->out, o, h, "too_many_waiters", msg);
        return NULL;
    }
    w = xcalloc(1, sizeof(*w));
    timer_node_init(&w->timer);
    w->timer.kind = s->swait_kind;
    w->expired = expired;
    w->dropped = dropped;
    w->obj = obj;
    w->req = (wire_hdr_t){.req = h->req,
                          .has_req = h->has_req,
                          .front = h->front,
                          .maxsize = h->maxsize,
                          .lease_ms = h->lease_ms,
                          .permits = h->permits};
    zmq_msg_init(&w->payload);
    if (payload) {
        zmq_msg_move(&w->payload, payload);
        w->has_payload = true;
    }
    w->delim = o->delim;
    w->worker = o->worker;
    w->who = o->who;
    w->ident_len = (uint8_t)o->ilen;
    if (o->ilen) /* a task has no routing id */
        memcpy(w->ident, o->ident, o->ilen);
    DL_APPEND2(s->swaiters, w, all_prev, all_next);
    s->n_swaiters++;
    if (h->timeout_ms)
        loop_timer_arm(s->loop, &w->timer, now_ms() + h->timeout_ms);
    return w;
}

origin_t swaiter_origin(const swaiter_t *w)
{
    return (origin_t){w->ident, w->ident_len, w->delim, w->worker, w->who};
}

/* Did o send w's request (the same routing id, or the same worker's task)? */
static bool same_origin(const swaiter_t *w, const origin_t *o)
{
    return w->worker == o->worker && w->ident_len == o->ilen &&
           memcmp(w->ident, o->ident, w->ident_len) == 0;
}

swaiter_t *swaiter_find(swaiter_t *list, const origin_t *o, uint64_t of, bool *ret_other)
{
    for (swaiter_t *w = list; w; w = w->next) {
        if (!w->req.has_req || w->req.req != of)
            continue;
        if (same_origin(w, o))
            return w;
        *ret_other = true;
    }
    return NULL;
}

void swaiter_withdraw_answer(dict_service_t *s, const origin_t *o, const wire_hdr_t *h,
                             bool withdrawn, bool other, uint64_t count)
{
    const ops_desc_t *op = ops_find(h->op.ptr, h->op.len);
    const char *kind = ops_kind_name(op->kind);
    wire_hdr_t rep = {.cmd = WIRE_DICT_REPLY,
                      .req = h->req,
                      .has_req = h->has_req,
                      .found = withdrawn,
                      .count = count};

    if (!withdrawn && other) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "request %llu waiting on %s '%.*s' was sent by another connection: a "
                 "connection may withdraw only its own requests",
                 (unsigned long long)h->of, kind, (int)h->name.len, h->name.ptr);
        outbox_error(s->out, o, h, "forbidden", msg);
        return;
    }
    if (!withdrawn)
        rep.code = wire_str(op->reply_code);
    outbox_send(s->out, o, &rep, NULL);
}

void swaiter_free(dict_service_t *s, swaiter_t *w)
{
    loop_timer_disarm(s->loop, &w->timer);
    DL_DELETE2(s->swaiters, w, all_prev, all_next);
    s->n_swaiters--;
    zmq_msg_close(&w->payload);
    free(w);
}

void swaiters_worker_gone(dict_service_t *s, pid_t pid)
{
    swaiter_t *w;

    /* from the start again after each: dropping one may let others in (and free them) */
    for (;;) {
        DL_SEARCH_SCALAR2(s->swaiters, w, worker, pid, all_next);
        if (!w)
            return;
        w->dropped(s, w);
        swaiter_free(s, w);
    }
}

void swaiters_free_all(dict_service_t *s)
{
    while (s->swaiters)
        swaiter_free(s, s->swaiters);
}
