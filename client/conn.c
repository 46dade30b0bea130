/* conn.c - a client's connection: who drives the socket, the I/O thread, the outgoing queue,
 * the pending table, replies and the process's shared ZeroMQ context.
 *
 * A ZeroMQ socket may not be used by two threads at once, so the DEALER socket has one owner at
 * a time (c->owner, under the client lock, whose hand-off is the barrier ZeroMQ asks for):
 * - a thread blocked in a call that waits (forq_future_wait, synchronous requests, dict calls)
 *   drives the socket itself when nobody else does: it sends, receives and resolves futures,
 *   its own and others', and wakes the other waiters. A round trip then costs no thread
 *   hand-off; the two hand-offs to and from an I/O thread were a third of a round trip's
 *   latency (README, "Performance"). A callback that waits again inside the driving thread
 *   drives on (the thread-local tl_driving).
 * - a thread that submits when nobody owns the socket sends its message itself.
 * - the I/O thread owns it when work is pending and no caller waits: results for callbacks,
 *   as_completed, forq_wait and maps, and everything left once a submitter walked away. It is
 *   woken at once when someone registers a listener, otherwise 1 ms after the last owner left
 *   pending work behind (HANDOFF_NS, timer_fd) - a submit followed by a wait never wakes it.
 *   While a dict is cached (dcache.h) it owns the socket whenever nobody else does, and is
 *   woken at once: forqd's invalidations are read as they come, not at the next call.
 * Each owner is poked through its own eventfd: wake_fd (I/O thread), drive_fd (a caller).
 *
 * Messages wait on a mutex-protected queue until the owner sends them; queuing one pokes the
 * owner only when the queue was empty, so a burst of submissions costs one wake-up. Replies
 * find their future by job id (results, progress) or by request number (every other reply).
 *
 * What the client knows about forqd and what it does when the connection drops or comes back
 * (the pong, a restart told from a reconnection, lost_after_ms, naming a peer that is not
 * forqd) is health.c's: the I/O thread hands it the socket monitor's events and a tick while
 * forqd is unreachable, on_reply hands it pongs and jobs forqd does not know; it acts through
 * this file's table and queue primitives (conn_int.h).
 *
 * destroy lingers (linger_ms) only when an order - a job, cancel or dict change - may still be
 * on its way: a client that only asked questions, or whose forqd is gone, ends at once.
 *
 * A message is copied once, header and payload into one block (the caller's buffers are free
 * when its call returns), which is then handed to ZeroMQ (zmq_msg_init_data) and freed by it.
 *
 * Invariants: a future is in `pending` exactly while its `client` link is set; only the
 * socket's owner touches the socket; the owner changes only under the lock. */
#define _GNU_SOURCE
#include "conn.h"

#include "conn_int.h"
#include "health.h"
#include "ops.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

struct outmsg {
    struct outmsg *next; /* FIFO */
    size_t hlen, plen;   /* header and payload bytes in data */
    bool has_payload;    /* send a payload frame */
    char data[];         /* header then payload */
};

#define HANDOFF_NS    1000000 /* pending work left by a caller goes to the I/O thread after this */
#define LOST_CHECK_MS 100     /* while forqd is unreachable: how often lost_after_ms is checked */

/* The client whose socket this thread drives, if any (a callback may wait again). */
static __thread forq_client_t *tl_driving;

/* ---- the pending table ---- */

/* Register f under its key. Client lock held. */
bool conn_table_add(forq_client_t *c, forq_future_t *f)
{
    forq_future_t *old;

    HASH_FIND_STR(c->pending, f->key, old);
    if (old)
        return false;
    HASH_ADD_STR(c->pending, key, f);
    pthread_mutex_lock(&f->mu);
    f->pending_since = util_mono_ms();
    f->client = c;
    if (!f->conn)
        f->conn = c; /* written once, before the caller sees f */
    pthread_mutex_unlock(&f->mu);
    return true;
}

/* Take f out of the table. Client lock held. */
void conn_table_del(forq_client_t *c, forq_future_t *f)
{
    HASH_DEL(c->pending, f);
    pthread_mutex_lock(&f->mu);
    f->client = NULL;
    pthread_mutex_unlock(&f->mu);
}

int conn_drop_pending(forq_client_t *c, forq_future_t *f)
{
    int r = 0;

    pthread_mutex_lock(&c->lock);
    pthread_mutex_lock(&f->mu);
    if (f->client != c) {
        r = -1;
    } else if (atomic_fetch_sub(&f->refs, 1) == 1) {
        HASH_DEL(c->pending, f);
        f->client = NULL;
        r = 1;
    }
    pthread_mutex_unlock(&f->mu);
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* ---- the outgoing queue ---- */

static void free_outmsg(void *data, void *hint)
{
    (void)data;
    free(hint);
}

/* Send one queued message. Returns 0, or -errno (EAGAIN: the socket cannot take it now). */
static int send_out(forq_client_t *c, outmsg_t *m)
{
    if (zmq_send(c->sock, m->data, m->hlen, ZMQ_DONTWAIT | (m->has_payload ? ZMQ_SNDMORE : 0)) < 0)
        return -errno;
    if (m->has_payload) {
        zmq_msg_t pm;
        zmq_msg_init_data(&pm, m->data + m->hlen, m->plen, free_outmsg, m);
        if (zmq_msg_send(&pm, c->sock, 0) < 0)
            zmq_msg_close(&pm); /* frees m */
    } else {
        free(m);
    }
    return 0;
}

/* Put m on the queue (client lock held); returns whether its owner must be poked. */
bool conn_queue_locked(forq_client_t *c, outmsg_t *m)
{
    bool wake = c->out_head == NULL;
    if (c->out_tail)
        c->out_tail->next = m;
    else
        c->out_head = m;
    c->out_tail = m;
    return wake;
}

/* Drop what was not sent (client lock held, or c no longer shared). */
static void free_queue_locked(forq_client_t *c)
{
    while (c->out_head) {
        outmsg_t *m = c->out_head;
        c->out_head = m->next;
        free(m);
    }
    c->out_tail = NULL;
}

/* Tell whoever owns the socket to look again (client lock held). */
void conn_poke_locked(forq_client_t *c)
{
    util_fd_signal(c->owner == OWN_CALLER ? c->drive_fd : c->wake_fd);
}

/* Is there anything the socket's owner must do (client lock held)? */
static bool has_work_locked(forq_client_t *c)
{
    return c->out_head || c->pending || c->stopping || c->caching;
}

/* Send what is queued; the socket's owner only. Returns false if some must wait for room. */
static bool flush_out(forq_client_t *c);

/* Give the socket up (its owner, lock held): to a waiting caller, else to the I/O thread when
 * work is pending - at once if a listener waits, else after HANDOFF_NS, so that a caller that
 * submits and then waits does not wake it. */
static void release_locked(forq_client_t *c)
{
    c->owner = OWN_NONE;
    if (c->waiting) {
        pthread_cond_broadcast(&c->owner_cv);
    } else if ((c->io_wanted || c->caching) && has_work_locked(c)) {
        /* a listener waits, or a cache needs forqd's invalidations read as they come */
        util_fd_signal(c->wake_fd);
    } else if (has_work_locked(c) && !c->timer_armed) {
        struct itimerspec its = {.it_value = {0, HANDOFF_NS}};
        timerfd_settime(c->timer_fd, 0, &its, NULL);
        c->timer_armed = true;
    } else if (!has_work_locked(c) && c->timer_armed) {
        /* nothing left for it: a wake-up for nothing costs more than this call */
        struct itimerspec off = {0};
        timerfd_settime(c->timer_fd, 0, &off, NULL);
        c->timer_armed = false;
    }
}

#define HDR_GUESS 256 /* bytes of a typical header: the encode buffer starts there */

/* The message h + an optional payload frame, copied into one block. NULL on out-of-memory. */
outmsg_t *conn_encode(const wire_hdr_t *h, const void *payload, size_t plen, bool has)
{
    msgpack_sbuffer sb;
    outmsg_t *m = NULL;

    /* msgpack_sbuffer_init would grow from 8 KiB at the first write (out of malloc's fast
     * bins); a small buffer grows the same way when a header is larger */
    sb.size = 0;
    sb.alloc = HDR_GUESS;
    if (!(sb.data = malloc(HDR_GUESS)))
        return NULL;
    if (wire_hdr_encode(&sb, h) == 0 && (m = malloc(sizeof(*m) + sb.size + plen))) {
        *m = (outmsg_t){.hlen = sb.size, .plen = plen, .has_payload = has};
        memcpy(m->data, sb.data, sb.size);
        if (plen)
            memcpy(m->data + sb.size, payload, plen);
    }
    msgpack_sbuffer_destroy(&sb);
    return m;
}

/* ---- replies ---- */

/* "#<req>", a request's key in the pending table (as client.c names it), without snprintf: a
 * formatted print was a tenth of a round trip's instructions in the client. */
static void req_key(char key[FORQ_ID_MAX + 1], uint64_t req)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + req % 10);
        req /= 10;
    } while (req);
    key[0] = '#';
    for (int i = 0; i < n; i++)
        key[1 + i] = digits[n - 1 - i];
    key[1 + n] = '\0';
}

static void on_reply(forq_client_t *c, zmq_msg_t *hm, zmq_msg_t *pm, bool has_payload)
{
    msgpack_zone zone;
    wire_hdr_t h;
    wire_err_t err;
    char key[FORQ_ID_MAX + 1];
    forq_future_t *f = NULL;

    msgpack_zone_init(&zone, 1024);
    if (wire_hdr_decode(zmq_msg_data(hm), zmq_msg_size(hm), &zone, &h, &err) < 0) {
        /* nothing to attach it to; but a peer that sends this is likely not forqd */
        pthread_mutex_lock(&c->lock);
        snprintf(c->peer_problem, sizeof(c->peer_problem),
                 "it answered with a message that is not forq's protocol (%s)", err.msg);
        pthread_mutex_unlock(&c->lock);
        msgpack_zone_destroy(&zone);
        return;
    }
    if (h.cmd == WIRE_INVALIDATE) {
        /* dict keys this client tracks changed: drop them before any later reply is read */
        dcache_invalidate(c->dcache, &h, has_payload ? zmq_msg_data(pm) : NULL,
                          has_payload ? zmq_msg_size(pm) : 0, has_payload);
        msgpack_zone_destroy(&zone);
        return;
    }
    pthread_mutex_lock(&c->lock);
    if (h.cmd == WIRE_PONG)
        health_learn_locked(c, &h);
    if (h.has_req && h.cmd != WIRE_RESULT && h.cmd != WIRE_PROGRESS) {
        req_key(key, h.req);
        HASH_FIND_STR(c->pending, key, f);
    } else if (h.id.ptr &&
               (h.cmd == WIRE_RESULT || h.cmd == WIRE_PROGRESS || h.cmd == WIRE_ERROR)) {
        /* only a job's own messages go to it by id (not, say, the reply to a cancel sent
         * without waiting) */
        HASH_FIND(hh, c->pending, h.id.ptr, h.id.len, f);
        if (f && f->is_request)
            f = NULL;
    }
    if (f) {
        future_ref(f);
        if (h.cmd != WIRE_PROGRESS)
            conn_table_del(c, f);
        if (h.cmd == WIRE_DICT_REPLY) {
            /* what the cache knew when this value was read (dcache_put) */
            f->cache_seq = dcache_seq(c->dcache);
            f->cache_session = c->session;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (!f) {
        msgpack_zone_destroy(&zone);
        return;
    }
    if (h.cmd == WIRE_PROGRESS) {
        future_progress(f, &h);
    } else if (h.cmd == WIRE_RESULT && h.state == WIRE_ST_UNKNOWN && f->refetching) {
        health_job_unknown(c, f);
    } else if (has_payload &&
               wire_check(zmq_msg_data(pm), zmq_msg_size(pm), WIRE_DEPTH_MAX, &err) < 0) {
        /* results reach callers' unpackers: they get the same check as anything untrusted */
        char why[sizeof(err.msg) + 64];
        snprintf(why, sizeof(why), "forqd sent a malformed result frame: %s", err.msg);
        future_resolve_local(f, FORQ_STATE_LOST, "bad_message", why);
    } else {
        void *payload = NULL;
        size_t plen = 0;
        if (has_payload && (payload = malloc(zmq_msg_size(pm) ? zmq_msg_size(pm) : 1))) {
            plen = zmq_msg_size(pm);
            memcpy(payload, zmq_msg_data(pm), plen);
        }
        future_resolve(f, &h, payload, plen);
    }
    future_unref(f);
    msgpack_zone_destroy(&zone);
}

/* Receive and handle every reply that is there; returns how many. */
static int recv_all(forq_client_t *c)
{
    for (int k = 0;; k++) {
        zmq_msg_t f[3];
        int n = 0, more = 1;
        size_t ml = sizeof(more);

        zmq_msg_init(&f[0]);
        if (zmq_msg_recv(&f[0], c->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f[0]);
            return k;
        }
        n = 1;
        while (zmq_getsockopt(c->sock, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
            zmq_msg_t junk, *m = n < 3 ? &f[n] : &junk;
            zmq_msg_init(m);
            zmq_msg_recv(m, c->sock, 0);
            if (m == &junk)
                zmq_msg_close(&junk);
            else
                n++;
        }
        on_reply(c, &f[0], n > 1 ? &f[1] : NULL, n > 1);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
    }
}
/* ---- the I/O thread, and callers that drive the socket ---- */

static bool flush_out(forq_client_t *c)
{
    outmsg_t *m, *last;

    pthread_mutex_lock(&c->lock);
    m = c->out_head;
    c->out_head = c->out_tail = NULL;
    pthread_mutex_unlock(&c->lock);
    while (m) {
        outmsg_t *next = m->next;
        if (send_out(c, m) < 0)
            break;
        m = next;
    }
    if (!m)
        return true;
    /* what could not go goes back to the front, before anything queued meanwhile */
    for (last = m; last->next; last = last->next)
        ;
    pthread_mutex_lock(&c->lock);
    last->next = c->out_head;
    if (!c->out_head)
        c->out_tail = last;
    c->out_head = m;
    pthread_mutex_unlock(&c->lock);
    return false;
}

static void *io_main(void *arg)
{
    forq_client_t *c = arg;

    for (;;) {
        bool mine, stopping, out, down;
        int linger;

        pthread_mutex_lock(&c->lock);
        if (c->owner == OWN_NONE && !c->waiting && has_work_locked(c)) {
            c->owner = OWN_IO;
            c->io_wanted = false;
        }
        mine = c->owner == OWN_IO;
        stopping = c->stopping;
        out = c->out_head != NULL;
        down = !c->up;
        linger = c->linger_ms;
        pthread_mutex_unlock(&c->lock);
        if (stopping && mine && !out)
            break; /* everything delivered */

        zmq_pollitem_t items[4] = {{NULL, c->wake_fd, ZMQ_POLLIN, 0},
                                   {c->monitor, 0, ZMQ_POLLIN, 0},
                                   {NULL, c->timer_fd, ZMQ_POLLIN, 0},
                                   {c->sock, 0, ZMQ_POLLIN | (out ? ZMQ_POLLOUT : 0), 0}};
        /* while forqd is unreachable, look every LOST_CHECK_MS for futures waiting too long */
        int tmo = stopping ? linger : (down && c->lost_after_ms > 0) ? LOST_CHECK_MS : -1;
        int r = zmq_poll(items, mine ? 4 : 3, tmo);
        if (r < 0 && errno != EINTR)
            break;
        if (stopping && r == 0)
            break; /* linger over: give up on what was not sent */
        if (items[1].revents)
            health_monitor_events(c);
        if (down && c->lost_after_ms > 0 && !stopping)
            health_lose_overdue(c);
        if (items[0].revents)
            util_fd_drain(c->wake_fd);
        if (items[2].revents) {
            util_fd_drain(c->timer_fd);
            pthread_mutex_lock(&c->lock);
            c->timer_armed = false;
            pthread_mutex_unlock(&c->lock);
        }
        if (mine) {
            tl_driving = c; /* a callback that waits drives on, in this thread */
            flush_out(c);
            if (items[3].revents & ZMQ_POLLIN)
                recv_all(c);
            tl_driving = NULL;
        }
        pthread_mutex_lock(&c->lock);
        if (c->owner == OWN_IO && (c->waiting || !has_work_locked(c))) {
            c->owner = OWN_NONE;
            if (c->waiting)
                pthread_cond_broadcast(&c->owner_cv);
        }
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_lock(&c->lock);
    free_queue_locked(c);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* Drive the socket (this thread owns it) until f is done or the deadline (ms, monotonic; 0 =
 * none) passes. */
static bool drive(forq_client_t *c, forq_future_t *f, uint64_t deadline)
{
    /* the owner never changes under its own feet: this thread is the owner */
    int poke_fd = c->owner == OWN_IO ? c->wake_fd : c->drive_fd;

    for (;;) {
        bool out_left = !flush_out(c);
        if (recv_all(c) > 0) {
            pthread_mutex_lock(&c->lock);
            if (c->waiting)
                pthread_cond_broadcast(&c->owner_cv); /* some may be theirs */
            pthread_mutex_unlock(&c->lock);
        }
        if (future_wait_done(f, 0))
            return true;
        uint64_t now = util_mono_ms();
        if (deadline && now >= deadline)
            return false;
        pthread_mutex_lock(&c->lock);
        bool refused = health_refused_first_locked(c);
        pthread_mutex_unlock(&c->lock);
        if (refused)
            return false;
        zmq_pollitem_t items[2] = {{c->sock, 0, ZMQ_POLLIN | (out_left ? ZMQ_POLLOUT : 0), 0},
                                   {NULL, poke_fd, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, deadline ? (long)(deadline - now) : -1) < 0 && errno != EINTR)
            return future_wait_done(f, deadline ? (int)(deadline - now) : -1);
        if (items[1].revents)
            util_fd_drain(poke_fd);
    }
}

/* A waiter leaves without taking the socket (its answer came, or its time is up): the I/O
 * thread may have given the socket up for it and gone to sleep without it while it still
 * counted as waiting; if work is left, it must look again (client lock held). */
static void unwait_locked(forq_client_t *c)
{
    if (c->owner == OWN_NONE && !c->waiting && !c->stopping && has_work_locked(c))
        util_fd_signal(c->wake_fd);
}

bool conn_wait(forq_client_t *c, forq_future_t *f, int timeout_ms)
{
    uint64_t deadline = timeout_ms >= 0 ? util_mono_ms() + (uint64_t)timeout_ms : 0;
    bool done;

    if (timeout_ms == 0 && deadline == 0)
        deadline = 1; /* already passed */
    if (tl_driving == c)
        return drive(c, f, deadline); /* a callback of our own drive waits again */
    pthread_mutex_lock(&c->lock);
    for (;;) {
        if (future_wait_done(f, 0)) {
            unwait_locked(c);
            pthread_mutex_unlock(&c->lock);
            return true;
        }
        if (c->owner == OWN_NONE && !c->stopping) {
            c->owner = OWN_CALLER;
            break;
        }
        uint64_t now = util_mono_ms();
        if ((deadline && now >= deadline) || health_refused_first_locked(c)) {
            unwait_locked(c);
            pthread_mutex_unlock(&c->lock);
            return false;
        }
        if (c->owner == OWN_IO)
            util_fd_signal(c->wake_fd); /* it hands over once it has looked */
        c->waiting++;
        if (deadline) {
            struct timespec until;
            util_deadline((int64_t)(deadline - now), &until);
            util_cond_wait(&c->owner_cv, &c->lock, &until);
        } else {
            util_cond_wait(&c->owner_cv, &c->lock, NULL);
        }
        c->waiting--;
    }
    pthread_mutex_unlock(&c->lock);
    tl_driving = c;
    done = drive(c, f, deadline);
    tl_driving = NULL;
    pthread_mutex_lock(&c->lock);
    release_locked(c);
    pthread_mutex_unlock(&c->lock);
    return done;
}

dcache_t *conn_dcache(forq_client_t *c)
{
    return c->dcache;
}

void conn_set_caching(forq_client_t *c, bool on)
{
    pthread_mutex_lock(&c->lock);
    c->caching = on;
    if (on && c->owner == OWN_NONE && !c->waiting)
        util_fd_signal(c->wake_fd); /* the I/O thread takes the socket now */
    pthread_mutex_unlock(&c->lock);
}

bool conn_cache_ready(forq_client_t *c, uint64_t *ret_session)
{
    bool drain;

    pthread_mutex_lock(&c->lock);
    if (!c->up || c->stopping) {
        pthread_mutex_unlock(&c->lock);
        return false;
    }
    *ret_session = c->session;
    drain = c->owner == OWN_NONE && tl_driving != c;
    if (drain)
        c->owner = OWN_CALLER;
    pthread_mutex_unlock(&c->lock);
    if (!drain)
        return true; /* its owner reads the socket as messages come */
    tl_driving = c;
    int got = recv_all(c); /* an invalidation already here is applied before the lookup */
    tl_driving = NULL;
    pthread_mutex_lock(&c->lock);
    if (got && c->waiting)
        pthread_cond_broadcast(&c->owner_cv);
    release_locked(c);
    pthread_mutex_unlock(&c->lock);
    return true;
}

void conn_want_io(forq_client_t *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->owner == OWN_NONE && !c->waiting)
        util_fd_signal(c->wake_fd);
    else if (c->owner == OWN_CALLER)
        c->io_wanted = true;
    pthread_mutex_unlock(&c->lock);
}

/* Does h change something in forqd (a job, a cancel, a dict change)? Only those are worth
 * destroy's linger: a question whose asker is gone needs no answer. */
static bool is_order(const wire_hdr_t *h)
{
    const ops_desc_t *op;

    if (h->cmd == WIRE_SUBMIT || h->cmd == WIRE_CANCEL)
        return true;
    return h->cmd == WIRE_DICT && (!(op = ops_find(h->op.ptr, h->op.len)) || op->mutates);
}

forq_err_t conn_send(forq_client_t *c, const wire_hdr_t *h, const void *payload, size_t plen,
                     bool has_payload, forq_future_t *f, bool will_wait)
{
    outmsg_t *m = conn_encode(h, payload, plen, has_payload);
    bool w;

    if (!m)
        return errors_fail(FORQ_ERR_NOMEM, "out of memory queuing a message");
    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        free(m);
        return errors_fail(FORQ_ERR_CLOSED, "the client is being destroyed");
    }
    if (f && !conn_table_add(c, f)) {
        pthread_mutex_unlock(&c->lock);
        free(m);
        return errors_fail(FORQ_ERR_INVALID, "this client already waits for job '%s'", f->key);
    }
    if (is_order(h)) {
        c->orders = true;
        c->orders_while_down |= !c->up;
    }
    w = conn_queue_locked(c, m);
    if (c->owner == OWN_NONE && !c->waiting && tl_driving != c && will_wait) {
        /* nobody owns the socket, and this thread waits for the reply at once: it sends the
         * message as it starts driving (conn_wait) */
    } else if (c->owner == OWN_NONE && !c->waiting && tl_driving != c) {
        /* nobody owns the socket: send it from this thread */
        c->owner = OWN_CALLER;
        pthread_mutex_unlock(&c->lock);
        flush_out(c);
        pthread_mutex_lock(&c->lock);
        release_locked(c);
    } else if (w) {
        conn_poke_locked(c);
    }
    pthread_mutex_unlock(&c->lock);
    return FORQ_OK;
}

/* ---- the shared context, creating and destroying ---- */

/* One ZeroMQ context for all the clients of a process: one ZeroMQ I/O thread, not one per
 * connection (50 clients in one process were 50 I/O threads, each a wake-up per message). */
static pthread_mutex_t shared_ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static void *shared_ctx;
static unsigned shared_ctx_refs;

static void *shared_ctx_get(void)
{
    void *ctx;
    pthread_mutex_lock(&shared_ctx_lock);
    if (!shared_ctx && (shared_ctx = zmq_ctx_new()))
        zmq_ctx_set(shared_ctx, ZMQ_IO_THREADS, 1);
    if (shared_ctx)
        shared_ctx_refs++;
    ctx = shared_ctx;
    pthread_mutex_unlock(&shared_ctx_lock);
    return ctx;
}

/* The last client gone: the context goes too (its sockets are closed by then). */
static void shared_ctx_put(void)
{
    void *ctx = NULL;
    pthread_mutex_lock(&shared_ctx_lock);
    if (--shared_ctx_refs == 0) {
        ctx = shared_ctx;
        shared_ctx = NULL;
    }
    pthread_mutex_unlock(&shared_ctx_lock);
    if (ctx)
        zmq_ctx_term(ctx);
}

static void client_free(forq_client_t *c)
{
    if (c->monitor)
        zmq_close(c->monitor);
    if (c->sock)
        zmq_close(c->sock);
    free_queue_locked(c);
    if (c->zctx)
        shared_ctx_put();
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    if (c->drive_fd >= 0)
        close(c->drive_fd);
    if (c->timer_fd >= 0)
        close(c->timer_fd);
    pthread_cond_destroy(&c->owner_cv);
    pthread_mutex_destroy(&c->lock);
    dcache_free(c->dcache);
    free(c->endpoint);
    free(c);
}

static bool z85_key(const char *k)
{
    uint8_t bin[32];
    return k && strlen(k) == 40 && zmq_z85_decode(bin, k) != NULL;
}

/* CURVE: forqd's public key, and this client's pair (a fresh one when none is given, which
 * forqd refuses unless its clients file lists it: the refusal then says so). */
static forq_err_t set_curve(forq_client_t *c, const forq_client_opts_t *opts)
{
    char pub[41], sec[41];

    if (!z85_key(opts->server_key))
        return errors_fail(FORQ_ERR_INVALID,
                           "the server key is not a CURVE public key (40 Z85 characters, as "
                           "forqd --show-key prints it)");
    if (opts->public_key || opts->secret_key) {
        if (!z85_key(opts->public_key) || !z85_key(opts->secret_key))
            return errors_fail(FORQ_ERR_INVALID,
                               "the client key pair is not two CURVE keys of 40 Z85 "
                               "characters (forq keygen makes a key file)");
        snprintf(pub, sizeof(pub), "%s", opts->public_key);
        snprintf(sec, sizeof(sec), "%s", opts->secret_key);
    } else if (zmq_curve_keypair(pub, sec) < 0) {
        return errors_fail(FORQ_ERR_SYSTEM, "cannot make a CURVE key pair: %s",
                           zmq_strerror(errno));
    }
    zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, opts->server_key, 40);
    zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, sec, 40);
    explicit_bzero(sec, sizeof(sec));
    c->curve = true;
    return FORQ_OK;
}

forq_err_t conn_new(const char *ep, const forq_client_opts_t *opts, forq_client_t **ret_client)
{
    forq_client_t *c = calloc(1, sizeof(*c));
    char ident[40], monep[64];
    uint8_t rnd[24];
    int64_t maxmsg;
    int zero = 0;

    if (!c || !(c->endpoint = strdup(ep))) {
        free(c);
        return errors_fail(FORQ_ERR_NOMEM, "out of memory creating a client");
    }
    c->wake_fd = c->drive_fd = c->timer_fd = -1;
    if (!(c->dcache = dcache_new())) {
        free(c->endpoint);
        free(c);
        return errors_fail(FORQ_ERR_NOMEM, "out of memory creating a client");
    }
    pthread_mutex_init(&c->lock, NULL);
    util_cond_init(&c->owner_cv);
    c->max_message = opts->max_message ? opts->max_message : WIRE_PAYLOAD_DEF + WIRE_HEADER_MAX;
    c->linger_ms = opts->linger_ms >= 0 ? opts->linger_ms : 0;
    c->lost_after_ms = opts->lost_after_ms > 0 ? opts->lost_after_ms : 0;
    c->down_since = util_mono_ms(); /* unreachable until the first handshake */
    c->max_payload = WIRE_PAYLOAD_DEF;
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
        for (size_t i = 0; i < sizeof(rnd); i += sizeof(t)) {
            memcpy(rnd + i, &t, sizeof(t));
            t = t * 6364136223846793005u + 1442695040888963407u;
        }
    }
    for (int i = 0; i < 8; i++)
        snprintf(c->prefix + 2 * i, 3, "%02x", rnd[i]);
    /* the routing id: 128 random bits of its own, which job ids do not reveal (with CURVE,
     * forqd binds it to this client's key, and nobody else learns it) */
    ident[0] = 'c';
    for (int i = 0; i < 16; i++)
        snprintf(ident + 1 + 2 * i, 3, "%02x", rnd[8 + i]);
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    c->drive_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    c->zctx = shared_ctx_get();
    if (c->wake_fd < 0 || c->drive_fd < 0 || c->timer_fd < 0 || !c->zctx)
        goto sys;
    c->sock = zmq_socket(c->zctx, ZMQ_DEALER);
    c->monitor = zmq_socket(c->zctx, ZMQ_PAIR);
    if (!c->sock || !c->monitor)
        goto sys;
    /* a stable routing id: results still find us after a reconnect */
    maxmsg = (int64_t)c->max_message;
    zmq_setsockopt(c->sock, ZMQ_ROUTING_ID, ident, strlen(ident));
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
    zmq_setsockopt(c->sock, ZMQ_LINGER, &c->linger_ms, sizeof(c->linger_ms));
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &zero, sizeof(zero));
    zmq_setsockopt(c->sock, ZMQ_RCVHWM, &zero, sizeof(zero));
    if (opts->server_key && set_curve(c, opts) != FORQ_OK) {
        client_free(c);
        return FORQ_ERR_INVALID;
    }
    snprintf(monep, sizeof(monep), "inproc://forq-monitor-%p", (void *)c);
    if (zmq_socket_monitor(c->sock, monep,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) < 0 ||
        zmq_connect(c->monitor, monep) < 0)
        goto sys;
    if (zmq_connect(c->sock, ep) < 0) {
        forq_err_t e =
            errors_fail(FORQ_ERR_INVALID, "cannot connect to '%s': %s", ep, zmq_strerror(errno));
        client_free(c);
        return e;
    }
    if (pthread_create(&c->io, NULL, io_main, c) != 0)
        goto sys;
    *ret_client = c;
    return FORQ_OK;
sys : {
    forq_err_t e =
        errors_fail(FORQ_ERR_SYSTEM, "cannot create the client's sockets: %s", zmq_strerror(errno));
    client_free(c);
    return e;
}
}

void conn_destroy(forq_client_t *c)
{
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    /* linger only for orders that may still be on their way: never for questions alone, nor
     * for a forqd that went away before the last order (a CLI that found no forqd ends now) */
    if (!c->orders || (!c->up && !c->orders_while_down))
        c->linger_ms = 0;
    pthread_mutex_unlock(&c->lock);
    health_lose_pending(c, true, "the client was destroyed before the result arrived");
    util_fd_signal(c->wake_fd);
    pthread_join(c->io, NULL);
    zmq_socket_monitor(c->sock, NULL, 0);
    zmq_setsockopt(c->sock, ZMQ_LINGER, &c->linger_ms, sizeof(c->linger_ms));
    if (c->hello)
        future_unref(c->hello); /* resolved by health_lose_pending: out of the table */
    client_free(c);
}

const char *conn_endpoint(const forq_client_t *c)
{
    return c->endpoint;
}

uint64_t conn_next_req(forq_client_t *c)
{
    pthread_mutex_lock(&c->lock);
    uint64_t n = ++c->next_req;
    pthread_mutex_unlock(&c->lock);
    return n;
}

void conn_new_id(forq_client_t *c, char *buf, size_t size)
{
    pthread_mutex_lock(&c->lock);
    uint64_t n = ++c->next_job;
    pthread_mutex_unlock(&c->lock);
    snprintf(buf, size, "%s-%llx", c->prefix, (unsigned long long)n);
}
