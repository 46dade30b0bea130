/* service.c - the dict service inside the broker's loop: checks `dict` requests against the op
 * table (proto/ops.h), runs them on the store (store.c), answers `dict_reply` through the
 * broker's outbox, and keeps the clients and tasks that wait for a key to change. The shared
 * types' ops (queue.*, lock.*, event.*) go to queue.c, lock.c and event.c (svc.h says how they
 * live in the same store), after the fence a change may carry is checked here.
 *
 * The listing ops' pages are packed by page.c. `dicts` lists the dicts to whoever asks, but only
 * those the asker may read: the service knows no identities, so it asks the broker about each
 * dict it would list (broker_dict_readable), with the identity the request came with.
 *
 * The broker is single-threaded, so every operation is atomic without locks. A waiter is woken
 * by the store's change hook the moment a write changes its key's version (or deletes it), or
 * by its timer.
 *
 * With --state-dir every change also goes to the log (dictlog.c): the store's change hook adds
 * each changed key's new state to the pending frame, and the frame is committed just before the
 * request's reply is sent, so a reply never promises more than the log holds (under fsync
 * always: nothing an acknowledged write did is lost to a crash). If the log cannot take the
 * frame (disk full, I/O error) the request's changes are undone from the values kept before it,
 * the client gets an error saying so, and reads go on working (`update` and `clear`, which may
 * change many keys, are logged before they change anything instead: no copy of what they
 * replace). Waiters are woken only after a change is committed. */
#define _GNU_SOURCE
#include "service.h"

#include "page.h"
#include "skeys.h"
#include "svc.h"
#include "swait.h"
#include "track.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <utlist.h>

#define WAITERS_MAX     10000 /* clients in a wait at once */
#define WAKE_BY_KEY_MAX 16    /* changes in one request matched against waiters key by key */

struct dwaiter {
    dwaiter_t *prev, *next; /* the service's waiters */
    timer_node_t timer;     /* its timeout */
    uint64_t req;           /* echoed in the reply */
    bool has_req;
    uint64_t ver; /* the version the client has seen (0: the key was absent) */
    bool delim;
    pid_t worker; /* or a task waits: its worker */
    uint8_t ident_len;
    uint8_t ident[255];
    uint8_t nlen;
    char name[WIRE_ID_MAX + 1];
    size_t klen;
    char key[];
};

/* A key changed by the request under way (key NULL: the whole dict). Name and key share one
 * allocation (an update changes many keys of one dict: no fixed-size name per key). */
struct dchange {
    struct dchange *next;
    size_t nlen, klen;
    bool all;
    const char *name; /* in key[], after the key */
    char key[];
};

/* A key's state before the request under way, to undo it if the log cannot take the change. */
struct dundo {
    struct dundo *next;
    bool had; /* it existed */
    uint64_t ver;
    void *val; /* owned copy */
    size_t vlen, nlen, klen;
    const char *name; /* in key[], after the key */
    char key[];
};

static void on_change(void *ud, const char *name, size_t nlen, const char *key, size_t klen);

/* The store, and with --state-dir the log replayed into it. 0, or -1 after printing why. */
static int open_store(dict_service_t *s)
{
    dstore_limits_t lim = {(size_t)s->cfg->dict_max_keys, (size_t)s->cfg->dict_max_value,
                           (size_t)s->cfg->dict_max_bytes};
    char err[1024];
    size_t cut = 0;

    s->store = dstore_new(&lim, on_change, s);
    if (!s->cfg->state_dir)
        return 0;
    if (dictlog_open(s->cfg->state_dir, (fsync_policy_t)s->cfg->fsync_policy, s->store, &s->log,
                     &cut, err, sizeof(err)) < 0) {
        fprintf(stderr, "forqd: %s\n", err);
        return -1;
    }
    if (dictlog_report(s->log)->damaged)
        log_error("%s", err);
    else if (cut)
        log_warn("dict log %s/dict.log: a torn tail of %zu bytes (a crash during a write) was "
                 "cut off%s%s",
                 s->cfg->state_dir, cut, err[0] ? "; " : "", err);
    log_info("dict log %s/dict.log: %zu keys in %zu dicts restored, fsync %s", s->cfg->state_dir,
             dstore_keys(s->store), dstore_dicts(s->store),
             config_fsync_name(s->cfg->fsync_policy));
    return 0;
}

void svc_forget_undo(dict_service_t *s)
{
    while (s->undo) {
        dundo_t *u = s->undo;
        s->undo = u->next;
        free(u->val);
        free(u);
    }
}

static void free_changed(dict_service_t *s)
{
    s->n_changed = 0;
    while (s->changed) {
        dchange_t *c = s->changed;
        s->changed = c->next;
        free(c);
    }
}

void svc_remember(dict_service_t *s, const char *name, size_t nlen, const char *key, size_t klen)
{
    dval_t v;
    dundo_t *u;

    if (!s->log)
        return;
    u = xcalloc(1, sizeof(*u) + klen + 1 + nlen + 1);
    memcpy(u->key + klen + 1, name, nlen);
    u->name = u->key + klen + 1;
    u->nlen = nlen;
    memcpy(u->key, key, klen);
    u->klen = klen;
    if (dstore_get(s->store, name, nlen, key, klen, &v) == 0) {
        u->had = true;
        u->ver = v.ver;
        u->val = xmalloc(v.len ? v.len : 1);
        memcpy(u->val, v.data, v.len);
        u->vlen = v.len;
    }
    u->next = s->undo;
    s->undo = u;
}

int svc_commit(dict_service_t *s)
{
    int r;

    if (!s->log)
        return 0;
    dictlog_put_version(s->log, dstore_version(s->store));
    r = dictlog_commit(s->log);
    if (r < 0) {
        dstore_quiet(s->store, true);
        for (dundo_t *u = s->undo; u; u = u->next) {
            if (u->had)
                dstore_restore(s->store, u->name, u->nlen, u->key, u->klen, u->val, u->vlen,
                               u->ver);
            else
                dstore_forget(s->store, u->name, u->nlen, u->key, u->klen);
        }
        dstore_quiet(s->store, false);
        free_changed(s); /* nothing changed after all */
        log_error("dict log: a write failed (%s); the change was undone and refused", strerror(-r));
    }
    svc_forget_undo(s);
    return r;
}

static void wake_changed(dict_service_t *s);

void dict_service_destroy(dict_service_t **sp)
{
    dict_service_t *s = *sp;

    if (!s)
        return;
    broker_attach_dict(s->broker, NULL, NULL);
    if (s->queues)
        queues_take_back(s); /* items still in a backlog go back to their queues, logged */
    swaiters_free_all(s);
    queues_free(s);
    locks_free(s);
    events_free(s);
    svc_forget_undo(s);
    free_changed(s);
    track_free(s->track);
    dictlog_close(&s->log);
    while (s->waiters) {
        dwaiter_t *w = s->waiters;
        DL_DELETE(s->waiters, w);
        loop_timer_disarm(s->loop, &w->timer);
        free(w);
    }
    dstore_free(s->store);
    free(s);
    *sp = NULL;
}

void svc_log_refused(dict_service_t *s, const origin_t *o, const wire_hdr_t *req, int r)
{
    char msg[256];
    snprintf(msg, sizeof(msg),
             "the dict log in %s could not take the change (%s): nothing "
             "was changed; reads still work; free space or fix the disk and retry",
             s->cfg->state_dir, strerror(-r));
    outbox_error(s->out, o, req, r == -ENOSPC ? "disk_full" : "disk_error", msg);
}

void svc_reply(dict_service_t *s, const origin_t *o, const wire_hdr_t *req, wire_hdr_t *h,
               const void *data, size_t len)
{
    zmq_msg_t m;
    int r = svc_commit(s);
    if (r < 0)
        return svc_log_refused(s, o, req, r);
    track_flush(s->track, false); /* the changes' invalidations go before the reply */
    h->cmd = WIRE_DICT_REPLY;
    h->req = req->req;
    h->has_req = req->has_req;
    if (data) {
        zmq_msg_init_size(&m, len);
        memcpy(zmq_msg_data(&m), data, len);
    }
    outbox_send(s->out, o, h, data ? &m : NULL);
}

void svc_store_error(dict_service_t *s, const origin_t *o, const wire_hdr_t *h, int r)
{
    char msg[256];
    const char *code;

    switch (r) {
    case -E2BIG:
        code = "too_large";
        snprintf(msg, sizeof(msg),
                 "the value is larger than this forqd's --dict-max-value of %ld "
                 "bytes",
                 s->cfg->dict_max_value);
        break;
    case -ENOSPC:
        code = "dict_full";
        snprintf(msg, sizeof(msg),
                 "the dicts hold %zu keys and %zu bytes, at their limits "
                 "(--dict-max-keys %ld, --dict-max-bytes %ld); delete keys or raise the limits",
                 dstore_keys(s->store), dstore_bytes(s->store), s->cfg->dict_max_keys,
                 s->cfg->dict_max_bytes);
        break;
    case -EINVAL:
        code = "not_integer";
        snprintf(msg, sizeof(msg), "incr: the value of '%.*s' is not an integer", (int)h->key.len,
                 h->key.ptr);
        break;
    case -ERANGE:
        code = "overflow";
        snprintf(msg, sizeof(msg), "incr: the result does not fit in a 64-bit integer");
        break;
    default:
        code = "internal";
        snprintf(msg, sizeof(msg), "the dict operation failed: %s", strerror(-r));
    }
    outbox_error(s->out, o, h, code, msg);
}

/* ---- waiters ---- */

/* Answer a waiter with the key's current state (code "timeout" when it timed out). */
static void wake(dict_service_t *s, dwaiter_t *w, const char *code)
{
    origin_t o = {w->ident, w->ident_len, w->delim, w->worker};
    wire_hdr_t req = {.req = w->req, .has_req = w->has_req};
    wire_hdr_t h = {.code = wire_str(code)};
    dval_t v;

    if (dstore_get(s->store, w->name, w->nlen, w->key, w->klen, &v) == 0) {
        h.found = true;
        h.ver = v.ver;
        h.has_ver = true;
        svc_reply(s, &o, &req, &h, v.data, v.len);
    } else {
        svc_reply(s, &o, &req, &h, NULL, 0);
    }
    DL_DELETE(s->waiters, w);
    loop_timer_disarm(s->loop, &w->timer);
    s->n_waiters--;
    free(w);
}

static void on_change(void *ud, const char *name, size_t nlen, const char *key, size_t klen)
{
    dict_service_t *s = ud;
    dchange_t *c;
    dval_t v;

    if (s->log && !s->logged) {
        if (!key)
            dictlog_put_clear(s->log, name, nlen);
        else if (dstore_get(s->store, name, nlen, key, klen, &v) == 0)
            dictlog_put(s->log, name, nlen, key, klen, v.data, v.len, v.ver);
        else
            dictlog_put(s->log, name, nlen, key, klen, NULL, 0, 0);
    }
    if (skeys_is_internal(name, nlen))
        return; /* a shared type's: no dict wait can name it */
    if (s->track)
        track_changed(s->track, name, nlen, key, klen); /* told before the reply: svc_reply */
    if (!s->n_waiters)
        return; /* nobody waits: nothing to wake (a wait is a request of its own, never one
                   that also changes keys) */
    if (s->n_changed++ >= WAKE_BY_KEY_MAX)
        return; /* wake_changed will look at every waiter instead: no record per key */
    c = xcalloc(1, sizeof(*c) + klen + 1 + nlen + 1);
    memcpy(c->key + klen + 1, name, nlen);
    c->name = c->key + klen + 1;
    c->nlen = nlen;
    c->all = key == NULL;
    if (key)
        memcpy(c->key, key, klen);
    c->klen = klen;
    c->next = s->changed;
    s->changed = c;
}

/* After a request's changes are committed: tell the connections that track a changed key, and
 * answer the waiters whose key changed. */
static void wake_changed(dict_service_t *s)
{
    track_flush(s->track, true);
    if (s->n_changed > WAKE_BY_KEY_MAX) {
        /* many keys changed (an update): one pass over the waiters, not one per key and waiter.
         * A waiting key keeps the version its waiter saw until a change, so a version that
         * differs now is exactly a change */
        dwaiter_t *w, *tmp;
        DL_FOREACH_SAFE(s->waiters, w, tmp)
        {
            dval_t v;
            uint64_t now =
                dstore_get(s->store, w->name, w->nlen, w->key, w->klen, &v) == 0 ? v.ver : 0;
            if (now != w->ver)
                wake(s, w, NULL);
        }
        free_changed(s);
        return;
    }
    while (s->changed) {
        dchange_t *c = s->changed;
        dwaiter_t *w, *tmp;
        s->changed = c->next;
        DL_FOREACH_SAFE(s->waiters, w, tmp)
        {
            if (w->nlen != c->nlen || memcmp(w->name, c->name, c->nlen) != 0)
                continue;
            if (!c->all && (w->klen != c->klen || memcmp(w->key, c->key, c->klen) != 0))
                continue;
            dval_t v;
            uint64_t now =
                dstore_get(s->store, w->name, w->nlen, w->key, w->klen, &v) == 0 ? v.ver : 0;
            if (now != w->ver)
                wake(s, w, NULL);
        }
        free(c);
    }
    s->n_changed = 0;
}

/* A finished job's result, stored under name/key (the submit option `store`). */
static int store_result(void *ud, const char *name, const char *key, const void *val, size_t vlen)
{
    dict_service_t *s = ud;
    uint64_t ver;
    int r;

    svc_remember(s, name, strlen(name), key, strlen(key));
    r = dstore_set(s->store, name, strlen(name), key, strlen(key), val, vlen, &ver);
    if (r < 0) {
        svc_forget_undo(s);
        return r;
    }
    if ((r = svc_commit(s)) < 0)
        return r;
    wake_changed(s);
    return 0;
}

/* The log's fsync every second (everysec) and its compaction. */
static uint64_t tick(void *ud, uint64_t now)
{
    dict_service_t *s = ud;
    int r;

    if (!s->log)
        return LOOP_NEVER;
    if ((r = dictlog_tick(s->log, s->store, now)) < 0)
        log_error("dict log: compaction failed (%s); the old log is kept and grows; next try in "
                  "%u s: free space in %s",
                  strerror(-r), dictlog_retry_ms(s->log) / 1000, s->cfg->state_dir);
    return now + 1000;
}

static void on_timer(void *ud, timer_node_t *t, uint64_t now)
{
    (void)now;
    wake(ud, container_of(t, dwaiter_t, timer), "timeout"); /* disarms and frees it */
}

static void op_wait(dict_service_t *s, const origin_t *o, const wire_hdr_t *h)
{
    dval_t v;
    uint64_t now =
        dstore_get(s->store, h->name.ptr, h->name.len, h->key.ptr, h->key.len, &v) == 0 ? v.ver : 0;
    dwaiter_t *w;

    if (h->has_ver && h->ver != now) {
        /* it changed already: answer at once */
        wire_hdr_t r = {.found = now != 0, .ver = now, .has_ver = now != 0};
        svc_reply(s, o, h, &r, now ? v.data : NULL, now ? v.len : 0);
        return;
    }
    if (s->n_waiters >= WAITERS_MAX) {
        outbox_error(s->out, o, h, "too_many_waiters",
                     "forqd already has 10000 dict waits open; retry later");
        return;
    }
    w = xcalloc(1, sizeof(*w) + h->key.len + 1);
    timer_node_init(&w->timer);
    w->timer.kind = s->timer_kind;
    w->req = h->req;
    w->has_req = h->has_req;
    w->ver = now;
    w->delim = o->delim;
    w->worker = o->worker;
    w->ident_len = (uint8_t)o->ilen;
    if (o->ilen) /* a task has no routing id */
        memcpy(w->ident, o->ident, o->ilen);
    w->nlen = (uint8_t)h->name.len;
    memcpy(w->name, h->name.ptr, h->name.len);
    w->klen = h->key.len;
    memcpy(w->key, h->key.ptr, h->key.len);
    DL_APPEND(s->waiters, w);
    s->n_waiters++;
    if (h->timeout_ms)
        loop_timer_arm(s->loop, &w->timer, now_ms() + h->timeout_ms);
}

/* ---- pages ---- */

static void op_page(dict_service_t *s, const origin_t *o, const wire_hdr_t *h, bool items)
{
    page_t p;

    if (page_keys(&p, s->store, h, items) < 0) {
        outbox_error(s->out, o, h, "cursor_expired",
                     "the page cursor's key was deleted meanwhile; list the dict again from the "
                     "start");
        return;
    }
    svc_reply(s, o, h, &p.rep, p.frame.data, p.frame.size);
    page_done(&p);
}

/* Whom a dicts page is for: the broker says which dicts it may read. */
typedef struct {
    broker_t *broker;
    uint16_t who;
} reader_t;

static bool readable(void *ud, const char *name, size_t nlen)
{
    const reader_t *r = ud;
    return !skeys_is_internal(name, nlen) && broker_dict_readable(r->broker, r->who, name, nlen);
}

/* The dicts the asker may read, with their key counts. */
static void op_dicts(dict_service_t *s, const origin_t *o, const wire_hdr_t *h)
{
    reader_t r = {s->broker, o->who};
    page_t p;

    page_dicts(&p, s->store, h, readable, &r);
    svc_reply(s, o, h, &p.rep, p.frame.data, p.frame.size);
    page_done(&p);
}

/* ---- the request ---- */

static void on_request(void *ud, const origin_t *o, const wire_hdr_t *h, zmq_msg_t *payload)
{
    dict_service_t *s = ud;
    const char *name = h->name.ptr, *key = h->key.ptr;
    size_t nlen = h->name.len, klen = h->key.len;
    const ops_desc_t *op;
    wire_err_t werr;
    dval_t v;
    uint64_t ver = 0;
    int r;

    if (ops_check_request(h, payload ? zmq_msg_data(payload) : NULL,
                          payload ? zmq_msg_size(payload) : 0, payload != NULL, &op, &werr) < 0) {
        outbox_error(s->out, o, h, werr.code, werr.msg);
        return;
    }
    /* a fenced change goes ahead only while its token holds its lock */
    if (h->lock.ptr && !lock_fence_holds(s, h->lock.ptr, h->lock.len, h->token)) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "lock '%.*s' is not held with token %llu (its lease ended, or it was released): "
                 "nothing was changed; acquire the lock again",
                 (int)h->lock.len, h->lock.ptr, (unsigned long long)h->token);
        outbox_error(s->out, o, h, "stale_token", msg);
        return;
    }
    if (op->kind != OPS_KIND_DICT) {
        if (op->kind == OPS_KIND_QUEUE)
            queue_request(s, op, o, h, payload);
        else if (op->kind == OPS_KIND_LOCK)
            lock_request(s, op, o, h);
        else
            event_request(s, op, o, h);
        svc_forget_undo(s);
        return;
    }
    const void *val = payload ? zmq_msg_data(payload) : NULL;
    size_t vlen = payload ? zmq_msg_size(payload) : 0;
    wire_hdr_t rep = {0};

    /* what a one-key op may change, kept to undo it if the log cannot take it (update and
     * clear write the log first instead) */
    if (op->mutates && key)
        svc_remember(s, name, nlen, key, klen);

    switch (op->id) {
    case OPS_GET:
    case OPS_HAS:
        if (dstore_get(s->store, name, nlen, key, klen, &v) == 0) {
            rep.found = true;
            rep.ver = v.ver;
            rep.has_ver = true;
            if (h->track && op->id == OPS_GET)
                track_read(s->track, o, name, nlen, key, klen);
            svc_reply(s, o, h, &rep, op->id == OPS_GET ? v.data : NULL, v.len);
        } else {
            svc_reply(s, o, h, &rep, NULL, 0);
        }
        break;
    case OPS_SET:
        if ((r = dstore_set(s->store, name, nlen, key, klen, val, vlen, &ver)) < 0)
            return svc_store_error(s, o, h, r);
        rep = (wire_hdr_t){.found = true, .ver = ver, .has_ver = true};
        svc_reply(s, o, h, &rep, NULL, 0);
        break;
    case OPS_DEL:
        rep.found = dstore_del(s->store, name, nlen, key, klen) == 0;
        svc_reply(s, o, h, &rep, NULL, 0);
        break;
    case OPS_KEYS:
    case OPS_ITEMS:
        op_page(s, o, h, op->id == OPS_ITEMS);
        break;
    case OPS_DICTS:
        op_dicts(s, o, h);
        break;
    case OPS_LEN:
        rep.count = dstore_len(s->store, name, nlen);
        svc_reply(s, o, h, &rep, NULL, 0);
        break;
    case OPS_CLEAR:
        /* the clear's record first: keeping a copy of the whole dict to undo it would cost as
         * much memory as the dict */
        if (s->log && dstore_len(s->store, name, nlen)) {
            dictlog_put_clear(s->log, name, nlen);
            dictlog_put_version(s->log, dstore_version(s->store));
            if ((r = dictlog_commit(s->log)) < 0)
                return svc_log_refused(s, o, h, r);
            s->logged = true;
        }
        rep.count = dstore_clear(s->store, name, nlen);
        s->logged = false;
        svc_reply(s, o, h, &rep, NULL, 0);
        break;
    case OPS_UPDATE:
    case OPS_MSET:
        svc_update(s, o, h, payload);
        break;
    case OPS_MGET:
        svc_mget(s, o, h, payload);
        break;
    case OPS_SETDEFAULT: {
        bool existed = dstore_get(s->store, name, nlen, key, klen, &v) == 0;
        if ((r = dstore_setdefault(s->store, name, nlen, key, klen, val, vlen, &v)) < 0)
            return svc_store_error(s, o, h, r);
        rep = (wire_hdr_t){.found = existed, .ver = v.ver, .has_ver = true};
        svc_reply(s, o, h, &rep, v.data, v.len);
        break;
    }
    case OPS_POP: {
        void *popped;
        size_t plen;
        if (dstore_pop(s->store, name, nlen, key, klen, &popped, &plen, &ver) == 0) {
            rep = (wire_hdr_t){.found = true, .ver = ver, .has_ver = true};
            svc_reply(s, o, h, &rep, popped, plen);
            free(popped);
        } else {
            svc_reply(s, o, h, &rep, NULL, 0);
        }
        break;
    }
    case OPS_INCR: {
        int64_t now;
        char packed[DSTORE_INT_MAX];
        if ((r = dstore_incr(s->store, name, nlen, key, klen, h->has_delta ? h->delta : 1, &now,
                             &ver)) < 0)
            return svc_store_error(s, o, h, r);
        rep = (wire_hdr_t){.found = true, .ver = ver, .has_ver = true};
        svc_reply(s, o, h, &rep, packed, dstore_pack_int(now, packed));
        break;
    }
    case OPS_CAS:
        r = dstore_cas(s->store, name, nlen, key, klen, h->ver, val, vlen, &ver);
        if (r == -ESTALE) {
            rep = (wire_hdr_t){
                .code = wire_str(op->reply_code), .found = ver != 0, .ver = ver, .has_ver = true};
            svc_reply(s, o, h, &rep, NULL, 0);
            return;
        }
        if (r < 0)
            return svc_store_error(s, o, h, r);
        rep = (wire_hdr_t){.found = true, .ver = ver, .has_ver = true};
        svc_reply(s, o, h, &rep, NULL, 0);
        break;
    case OPS_WAIT:
    default:
        op_wait(s, o, h);
        break;
    }
    svc_forget_undo(s); /* an op that changed nothing kept its pre-images for nothing */
    wake_changed(s);
}

static void pack_stats(void *ud, msgpack_packer *pk)
{
    dict_service_t *s = ud;
    static const char *const keys[] = {
        "dict_keys",   "dict_bytes", "dicts",          "dict_waiters",      "queues",
        "queue_items", "locks_held", "shared_waiters", "dict_tracked_keys", "dict_tracking_conns"};
    static const char *const internal[] = {SKEYS_QUEUES, SKEYS_LOCKS, SKEYS_EVENTS};
    size_t dicts = dstore_dicts(s->store);
    for (size_t i = 0; i < ELEMENTSOF(internal); i++)
        dicts -= dstore_len(s->store, internal[i], SKEYS_NLEN) > 0;
    uint64_t vals[] = {dstore_keys(s->store), dstore_bytes(s->store), dicts,         s->n_waiters,
                       queues_count(s),       queues_items(s),        locks_held(s), s->n_swaiters,
                       track_keys(s->track),  track_conns(s->track)};

    for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
        msgpack_pack_str_with_body(pk, keys[i], strlen(keys[i]));
        msgpack_pack_uint64(pk, vals[i]);
    }
    char dur[64];
    snprintf(dur, sizeof(dur), "log, fsync %s", config_fsync_name(s->cfg->fsync_policy));
    if (!s->log)
        snprintf(dur, sizeof(dur), "memory");
    msgpack_pack_str_with_body(pk, "dict_durability", 15);
    msgpack_pack_str_with_body(pk, dur, strlen(dur));
    msgpack_pack_str_with_body(pk, "dict_log_bytes", 14);
    msgpack_pack_uint64(pk, s->log ? dictlog_size(s->log) : 0);
}

/* A worker died: its task's waits go (a queue's item it waited for stays for the next). */
static void worker_gone(void *ud, pid_t pid)
{
    dict_service_t *s = ud;
    dwaiter_t *w, *tmp;

    DL_FOREACH_SAFE(s->waiters, w, tmp)
    {
        if (w->worker != pid)
            continue;
        DL_DELETE(s->waiters, w);
        loop_timer_disarm(s->loop, &w->timer);
        s->n_waiters--;
        free(w);
    }
    swaiters_worker_gone(s, pid);
}

static const broker_dict_ops_t ops_for_broker = {
    .request = on_request,
    .pack_stats = pack_stats,
    .n_stats = 12,
    .store = store_result,
    .worker_gone = worker_gone,
};

dict_service_t *dict_service_new(broker_t *b, const config_t *cfg)
{
    dict_service_t *s = xcalloc(1, sizeof(*s));

    s->cfg = cfg;
    s->broker = b;
    s->loop = broker_loop(b);
    s->out = broker_outbox(b);
    if (open_store(s) < 0) {
        dict_service_destroy(&s);
        return NULL;
    }
    s->track = track_new(s->out);
    s->timer_kind = loop_timer_kind(s->loop, on_timer, s);
    swaiters_init(s);
    queues_new(s);
    locks_new(s);
    events_new(s);
    loop_tick_add(s->loop, tick, s);
    broker_attach_dict(b, &ops_for_broker, s);
    return s;
}
