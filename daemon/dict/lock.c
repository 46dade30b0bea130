/* lock.c - locks with leases and fencing tokens, and semaphores on the same machinery
 * (PROTOCOL.md 6.9.2): lock.acquire, release and renew, and the check of a fenced change.
 *
 * A lock has up to `permits` holders at once (1: a lock; more: a semaphore). A grant is a key
 * in the store (skeys.h: "\x01l", "NAME/<token>", holding the lease's end), so it is logged
 * before it is answered and survives restarts; its token is the version the store gave that
 * key: it grows with every grant, of any lock, and never repeats (PROTOCOL.md 6.8). A grant
 * ends when its holder releases it or when its lease ends (a timer of the broker's loop): a
 * holder that died or hung frees the lock a lease after its last renew. A change that carries
 * a fence (`lock` and `token`) goes ahead only while that token holds that lock, so a holder
 * whose lease ended, and which has not noticed, cannot change what the next holder guards.
 *
 * Acquirers that block wait in FIFO order (swait.h), until granted, timed out or withdrawn
 * (lock.withdraw: never granted after). A grant to an acquirer that is gone (no
 * connection holds its routing id when the grant goes out) is released at once and the next one
 * gets the lock; a grant lost on its way (the client went while it waited in forqd's backlog)
 * ends with its lease. Restarts keep the leases' ends (wall-clock time): a lock whose lease
 * ended while forqd was down is free once it is back. */
#define _GNU_SOURCE
#include "skeys.h"
#include "swait.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <uthash.h>
#include <utlist.h>

#define LEASE_DEF_MS 60000u    /* a lease when the request gives none */
#define LEASE_MAX_MS 86400000u /* at most a day */
#define RETRY_MS     1000u     /* an ended lease the log could not record: tried again */

typedef struct lockobj lockobj_t;

typedef struct holder {
    struct holder *prev, *next; /* in its lock's holders */
    timer_node_t timer;         /* the lease's end */
    uint64_t token;             /* the grant's */
    bool ended;                 /* its lease ended (the log could not record it yet) */
    lockobj_t *lk;              /* its lock */
} holder_t;

struct lockobj {
    UT_hash_handle hh;          /* in locks_t.by_name */
    holder_t *holders;          /* the grants */
    size_t n;                   /* their count */
    swaiter_t *waiters;         /* acquirers waiting, FIFO */
    size_t nlen;                /* bytes of name */
    char name[WIRE_ID_MAX + 1]; /* NUL-terminated */
};

struct locks {
    lockobj_t *by_name;
    size_t held;        /* holders of all locks */
    uint8_t lease_kind; /* of holder_t.timer */
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static lockobj_t *find(dict_service_t *s, const char *name, size_t nlen, bool create)
{
    lockobj_t *lk;

    HASH_FIND(hh, s->locks->by_name, name, nlen, lk);
    if (lk || !create)
        return lk;
    lk = xcalloc(1, sizeof(*lk));
    memcpy(lk->name, name, nlen);
    lk->nlen = nlen;
    HASH_ADD(hh, s->locks->by_name, name, nlen, lk);
    return lk;
}

static void forget_if_idle(dict_service_t *s, lockobj_t *lk)
{
    if (lk->holders || lk->waiters)
        return;
    HASH_DEL(s->locks->by_name, lk);
    free(lk);
}

/* The live grant with this token (an ended one waiting for the log is not). */
static holder_t *holder_of(const lockobj_t *lk, uint64_t token)
{
    holder_t *h;

    DL_SEARCH_SCALAR(lk->holders, h, token, token);
    return h && !h->ended ? h : NULL;
}

static holder_t *add_holder(dict_service_t *s, lockobj_t *lk, uint64_t token, uint64_t ends_ms)
{
    holder_t *h = xcalloc(1, sizeof(*h));

    timer_node_init(&h->timer);
    h->timer.kind = s->locks->lease_kind;
    h->token = token;
    h->lk = lk;
    DL_APPEND(lk->holders, h);
    lk->n++;
    s->locks->held++;
    loop_timer_arm(s->loop, &h->timer, ends_ms);
    return h;
}

static void answer(dict_service_t *s, const origin_t *o, const wire_hdr_t *req, wire_hdr_t *rep)
{
    rep->cmd = WIRE_DICT_REPLY;
    rep->req = req->req;
    rep->has_req = req->has_req;
    outbox_send(s->out, o, rep, NULL);
}

/* Write the lease (its end and length) under the holder's key: a new grant or a renew. 0, or
 * -errno after undoing it (o: answered with the error). */
static int write_lease(dict_service_t *s, const lockobj_t *lk, uint64_t token, uint64_t lease_ms,
                       const origin_t *o, const wire_hdr_t *req, uint64_t *ret_ver)
{
    char key[SKEYS_KEY_MAX + 1];
    size_t klen = skeys_make(key, lk->name, lk->nlen, token);
    msgpack_sbuffer sb;
    int r;

    msgpack_sbuffer_init(&sb);
    skeys_pack_lease(&sb, wall_ms() + lease_ms, lease_ms);
    svc_remember(s, SKEYS_LOCKS, SKEYS_NLEN, key, klen);
    r = dstore_set(s->store, SKEYS_LOCKS, SKEYS_NLEN, key, klen, sb.data, sb.size, ret_ver);
    msgpack_sbuffer_destroy(&sb);
    if (r < 0) {
        svc_forget_undo(s);
        svc_store_error(s, o, req, r);
        return r;
    }
    if ((r = svc_commit(s)) < 0)
        svc_log_refused(s, o, req, r);
    return r;
}

/* End a grant: its key out of the store and the log. 0, or -errno (it holds on). */
static int end_grant(dict_service_t *s, holder_t *h)
{
    char key[SKEYS_KEY_MAX + 1];
    size_t klen = skeys_make(key, h->lk->name, h->lk->nlen, h->token);
    int r;

    svc_remember(s, SKEYS_LOCKS, SKEYS_NLEN, key, klen);
    dstore_del(s->store, SKEYS_LOCKS, SKEYS_NLEN, key, klen);
    if ((r = svc_commit(s)) < 0)
        return r;
    loop_timer_disarm(s->loop, &h->timer);
    DL_DELETE(h->lk->holders, h);
    h->lk->n--;
    s->locks->held--;
    free(h);
    return 0;
}

static uint64_t lease_of(const wire_hdr_t *h)
{
    return h->lease_ms ? h->lease_ms : LEASE_DEF_MS;
}

static uint32_t permits_of(const wire_hdr_t *h)
{
    return h->permits ? h->permits : 1;
}

/* Grant lk to o: true when it went (or is on its way), false when o is gone (the grant is
 * ended again) or it could not be written (o was answered with the error). */
static bool grant(dict_service_t *s, lockobj_t *lk, const origin_t *o, const wire_hdr_t *req)
{
    uint64_t token = dstore_version(s->store) + 1, ver, lease = lease_of(req);

    /* the token is the version the store gives the holder's key: the next one */
    if (write_lease(s, lk, token, lease, o, req, &ver) < 0)
        return false;
    holder_t *h = add_holder(s, lk, token, now_ms() + lease);
    wire_hdr_t rep = {.cmd = WIRE_DICT_REPLY,
                      .req = req->req,
                      .has_req = req->has_req,
                      .found = true,
                      .token = token,
                      .has_token = true,
                      .lease_ms = lease,
                      .count = lk->n};
    if (outbox_deliver(s->out, o, &rep, NULL, NULL, NULL) >= 0)
        return true;
    if (end_grant(s, h) < 0)
        log_error("lock %s: token %llu went to a client that is gone and could not be ended "
                  "(the dict log failed): it ends with its lease",
                  lk->name, (unsigned long long)token);
    return false;
}

/* Permits are free: the acquirers waiting get them, in order. */
static void grant_waiters(dict_service_t *s, lockobj_t *lk)
{
    while (lk->waiters && lk->n < permits_of(&lk->waiters->req)) {
        swaiter_t *w = lk->waiters;
        origin_t o = swaiter_origin(w);
        DL_DELETE(lk->waiters, w);
        grant(s, lk, &o, &w->req);
        swaiter_free(s, w);
    }
}

static void waiter_expired(dict_service_t *s, swaiter_t *w)
{
    lockobj_t *lk = w->obj;
    origin_t o = swaiter_origin(w);
    wire_hdr_t rep = {.code = wire_str(ops_get(OPS_LACQUIRE)->reply_code), .count = lk->n};

    DL_DELETE(lk->waiters, w);
    answer(s, &o, &w->req, &rep);
    swaiter_free(s, w);
    grant_waiters(s, lk); /* it may have held those behind it back */
    forget_if_idle(s, lk);
}

static void waiter_dropped(dict_service_t *s, swaiter_t *w)
{
    lockobj_t *lk = w->obj;

    DL_DELETE(lk->waiters, w);
    forget_if_idle(s, lk);
}

/* A lease ended: the lock is free for the next. */
static void on_lease_end(void *ud, timer_node_t *t, uint64_t now)
{
    dict_service_t *s = ud;
    holder_t *h = container_of(t, holder_t, timer);
    lockobj_t *lk = h->lk;
    uint64_t token = h->token;
    int r;

    h->ended = true; /* whatever the log says, it fences nothing any more */
    if ((r = end_grant(s, h)) < 0) {
        log_error("lock %s: the lease of token %llu ended but the dict log cannot record it "
                  "(%s); tried again in %u ms: free space or fix the disk",
                  lk->name, (unsigned long long)token, strerror(-r), RETRY_MS);
        loop_timer_arm(s->loop, t, now + RETRY_MS);
        return;
    }
    log_info("lock %s: the lease of token %llu ended without a release or renew; the lock is "
             "free",
             lk->name, (unsigned long long)token);
    grant_waiters(s, lk);
    forget_if_idle(s, lk);
}

static void op_acquire(dict_service_t *s, const origin_t *o, const wire_hdr_t *h)
{
    lockobj_t *lk;

    if (h->lease_ms > LEASE_MAX_MS) {
        char msg[128];
        snprintf(msg, sizeof(msg), "lease_ms %llu is more than a day (%u): renew instead",
                 (unsigned long long)h->lease_ms, LEASE_MAX_MS);
        outbox_error(s->out, o, h, "bad_field", msg);
        return;
    }
    lk = find(s, h->name.ptr, h->name.len, true);
    if (!lk->waiters && lk->n < permits_of(h)) {
        grant(s, lk, o, h);
    } else if (h->block) {
        swaiter_t *w = swaiter_new(s, o, h, NULL, lk, waiter_expired, waiter_dropped);
        if (w)
            DL_APPEND(lk->waiters, w);
    } else {
        wire_hdr_t rep = {.code = wire_str(ops_get(OPS_LACQUIRE)->reply_code), .count = lk->n};
        answer(s, o, h, &rep);
    }
    forget_if_idle(s, lk);
}

static void op_release(dict_service_t *s, const origin_t *o, const wire_hdr_t *h)
{
    lockobj_t *lk = find(s, h->name.ptr, h->name.len, false);
    holder_t *hd = lk ? holder_of(lk, h->token) : NULL;
    wire_hdr_t rep = {0};
    int r;

    if (hd) {
        if ((r = end_grant(s, hd)) < 0)
            return svc_log_refused(s, o, h, r);
        rep.found = true;
    }
    rep.count = lk ? lk->n : 0;
    answer(s, o, h, &rep);
    if (lk) {
        grant_waiters(s, lk);
        forget_if_idle(s, lk);
    }
}

static void op_renew(dict_service_t *s, const origin_t *o, const wire_hdr_t *h)
{
    lockobj_t *lk = find(s, h->name.ptr, h->name.len, false);
    holder_t *hd = lk ? holder_of(lk, h->token) : NULL;
    uint64_t lease = lease_of(h), ver;
    wire_hdr_t rep = {0};

    if (h->lease_ms > LEASE_MAX_MS) {
        outbox_error(s->out, o, h, "bad_field", "lease_ms is more than a day: renew more often");
        return;
    }
    if (hd) {
        if (write_lease(s, lk, hd->token, lease, o, h, &ver) < 0)
            return;
        loop_timer_arm(s->loop, &hd->timer, now_ms() + lease);
        rep = (wire_hdr_t){.found = true, .token = hd->token, .has_token = true, .lease_ms = lease};
    }
    rep.count = lk ? lk->n : 0;
    answer(s, o, h, &rep);
}

/* A blocked acquire of o's, withdrawn: it is never granted. It may have held those behind it
 * back (a semaphore's first waiter asking for fewer permits). */
static void op_withdraw(dict_service_t *s, const origin_t *o, const wire_hdr_t *h)
{
    lockobj_t *lk = find(s, h->name.ptr, h->name.len, false);
    bool other = false;
    swaiter_t *w = lk ? swaiter_find(lk->waiters, o, h->of, &other) : NULL;

    if (w) {
        DL_DELETE(lk->waiters, w);
        swaiter_free(s, w);
    }
    swaiter_withdraw_answer(s, o, h, w != NULL, other, lk ? lk->n : 0);
    if (lk) {
        grant_waiters(s, lk);
        forget_if_idle(s, lk);
    }
}

void lock_request(dict_service_t *s, const ops_desc_t *op, const origin_t *o, const wire_hdr_t *h)
{
    if (op->id == OPS_LWITHDRAW)
        op_withdraw(s, o, h);
    else if (op->id == OPS_LACQUIRE)
        op_acquire(s, o, h);
    else if (op->id == OPS_LRELEASE)
        op_release(s, o, h);
    else
        op_renew(s, o, h);
}

bool lock_fence_holds(dict_service_t *s, const char *name, size_t nlen, uint64_t token)
{
    lockobj_t *lk = find(s, name, nlen, false);
    holder_t *h = lk ? holder_of(lk, token) : NULL;

    return h && !h->ended && h->timer.at > now_ms(); /* a lease that ended holds nothing */
}

size_t locks_held(const dict_service_t *s)
{
    return s->locks->held;
}

/* ---- start and stop ---- */

typedef struct {
    dict_service_t *s;
    uint64_t now, wall;
} load_t;

static int load_holder(void *ud, const skeys_entry_t *e)
{
    load_t *l = ud;
    lockobj_t *lk = find(l->s, e->name, e->nlen, true);
    uint64_t left = e->expires_ms > l->wall ? e->expires_ms - l->wall : 0;

    /* a lease never lasts longer than it was given, whatever the clock did meanwhile */
    if (left > e->lease_ms)
        left = e->lease_ms;
    if (!holder_of(lk, e->n))
        add_holder(l->s, lk, e->n, l->now + left);
    return 0;
}

locks_t *locks_new(dict_service_t *s)
{
    load_t l = {s, now_ms(), wall_ms()};
    size_t bad;

    s->locks = xcalloc(1, sizeof(*s->locks));
    s->locks->lease_kind = loop_timer_kind(s->loop, on_lease_end, s);
    bad = skeys_each(s->store, SKEYS_LOCKS, load_holder, &l);
    if (bad)
        log_error("dict log: %zu lock grant(s) with a malformed key or lease were ignored", bad);
    if (s->locks->held)
        log_info("dict log: %zu lock grant(s) restored; each ends with its lease unless renewed",
                 s->locks->held);
    return s->locks;
}

void locks_free(dict_service_t *s)
{
    lockobj_t *lk, *tmp;

    if (!s->locks)
        return;
    HASH_ITER(hh, s->locks->by_name, lk, tmp)
    {
        while (lk->holders) {
            holder_t *h = lk->holders;
            loop_timer_disarm(s->loop, &h->timer);
            DL_DELETE(lk->holders, h);
            free(h);
        }
        HASH_DEL(s->locks->by_name, lk);
        free(lk);
    }
    free(s->locks);
    s->locks = NULL;
}
