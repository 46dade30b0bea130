/* client.c - libforq: the connection, its I/O thread, requests and submission.
 *
 * A ZeroMQ socket may not be used by two threads at once, so the DEALER socket has one owner at
 * a time (c->owner, under the client lock; the lock hand-off is the memory barrier ZeroMQ asks
 * for when a socket changes threads):
 * - a thread blocked in a call that waits (forq_future_wait, the synchronous requests and dict
 *   calls) drives the socket itself when nobody else does: it sends, receives and resolves
 *   futures, its own and others', and wakes the other waiters. A round trip then costs no
 *   thread hand-off inside libforq; without this, the two hand-offs to and from an I/O thread
 *   were a third of a round trip's latency (README, "Performance").
 * - a thread that submits when nobody owns the socket sends its message itself.
 * - the I/O thread owns it when work is pending and no caller waits: results for callbacks,
 *   as_completed, forq_wait and maps, and everything pending once a submitter walked away. It
 *   is woken at once when someone registers a listener, and otherwise 1 ms after the last owner
 *   left pending work behind (HANDOFF_NS) - so that a submit followed at once by a wait never
 *   wakes it. It also watches the connection.
 * Messages wait on a mutex-protected queue until the owner sends them; a thread that queues one
 * pokes the owner (the I/O thread's eventfd, or the driving caller's) only when the queue was
 * empty, so a burst of submissions costs one wake-up. Replies find their future by job id
 * (results, progress) or by request number (replies to cancel, status, stats, ping). Every
 * pending thing is a future: job futures are the caller's, request futures belong to the
 * blocking calls.
 *
 * A socket monitor tells the I/O thread when the connection drops and comes back; after a
 * reconnection it fetches every pending job again, so that a result forqd could not deliver
 * meanwhile still arrives, and a job a restarted forqd never heard of is submitted again (with
 * retries) or resolved LOST — never left hanging.
 *
 * Payloads are not copied on their way out: the queued message's memory is handed to ZeroMQ with
 * zmq_msg_init_data() and freed by it once sent. */
#define _GNU_SOURCE
#include "client_int.h"

#include "endpoint.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct outmsg {
    struct outmsg *next;        /* FIFO */
    size_t hlen, plen;          /* header and payload bytes in data */
    bool has_payload;           /* send a payload frame */
    char data[];                /* header then payload */
} outmsg_t;

#define HANDOFF_NS 1000000 /* pending work left by a caller goes to the I/O thread after this */

enum { OWN_NONE, OWN_IO, OWN_CALLER };

/* The client whose socket this thread drives, if any (a callback may wait again). */
static __thread forq_client_t *tl_driving;

struct forq_client {
    void *zctx;                 /* the process's shared ZeroMQ context (shared_ctx_get) */
    void *sock;                 /* DEALER, used only by its owner (see the top comment) */
    void *monitor;              /* PAIR receiving the socket's connect/disconnect events */
    pthread_t io;               /* the I/O thread */
    int wake_fd;                /* eventfd: the I/O thread should look again */
    int drive_fd;               /* eventfd: the caller driving the socket should look again */
    int timer_fd;               /* timerfd: hand pending work to the I/O thread */
    pthread_cond_t owner_cv;    /* the socket was released, or futures were resolved */
    pthread_mutex_t lock;       /* guards everything below */
    int owner;                  /* OWN_NONE, OWN_IO or OWN_CALLER */
    unsigned waiting;           /* threads in client_wait() waiting for the socket or a result */
    bool io_wanted;             /* a listener waits: give pending work to the I/O thread at once */
    bool timer_armed;
    outmsg_t *out_head, *out_tail; /* messages for the socket's owner to send */
    forq_future_t *pending;     /* futures awaiting a reply, by key */
    bool stopping;              /* destroy has begun */
    uint64_t next_req;          /* request numbers */
    uint64_t next_job;          /* job id counter */
    char prefix[17];            /* random hex prefix of generated ids */
    char *endpoint;             /* owned */
    size_t max_message;
    int linger_ms;
    int lost_after_ms;          /* see forq_client_opts_t */
};

static __thread char detail_buf[512];

forq_err_t client_fail(forq_err_t err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail_buf, sizeof(detail_buf), fmt, ap);
    va_end(ap);
    return err;
}

const char *forq_errdetail(void)
{
    return detail_buf;
}

const char *forq_strerror(forq_err_t err)
{
    static const char *const names[] = {
        [FORQ_OK] = "success",
        [FORQ_ERR_INVALID] = "invalid argument",
        [FORQ_ERR_NOMEM] = "out of memory",
        [FORQ_ERR_CONNECT] = "cannot reach forqd",
        [FORQ_ERR_TIMEOUT] = "timed out waiting",
        [FORQ_ERR_PROTOCOL] = "protocol error",
        [FORQ_ERR_CLOSED] = "client closed",
        [FORQ_ERR_PENDING] = "result not ready",
        [FORQ_ERR_TASK] = "task raised an error",
        [FORQ_ERR_CANCELLED] = "job cancelled",
        [FORQ_ERR_JOB_TIMEOUT] = "job timed out",
        [FORQ_ERR_CRASHED] = "job's worker crashed",
        [FORQ_ERR_REJECTED] = "job rejected",
        [FORQ_ERR_LOST] = "job lost",
        [FORQ_ERR_SYSTEM] = "system error",
        [FORQ_ERR_NOT_FOUND] = "no such job",
        [FORQ_ERR_EXHAUSTED] = "no more items",
        [FORQ_ERR_CONFLICT] = "version conflict",
        [FORQ_ERR_FULL] = "dict service full",
    };
    if ((unsigned)err < sizeof(names) / sizeof(names[0]) && names[err])
        return names[err];
    return "unknown error";
}

const char *forq_state_name(forq_state_t st)
{
    if (st == FORQ_STATE_PENDING)
        return "pending";
    const char *n = wire_state_name((wire_state_t)st);
    return n ? n : "unknown";
}

/* ---- the pending table ---- */

/* Register f under its key. Client lock held. */
static bool table_add(forq_client_t *c, forq_future_t *f)
{
    forq_future_t *old;

    HASH_FIND_STR(c->pending, f->key, old);
    if (old)
        return false;
    HASH_ADD_STR(c->pending, key, f);
    pthread_mutex_lock(&f->mu);
    f->client = c;
    if (!f->conn)
        f->conn = c; /* written once, before the caller sees f */
    pthread_mutex_unlock(&f->mu);
    return true;
}

/* Take f out of the table. Client lock held. */
static void table_del(forq_client_t *c, forq_future_t *f)
{
    HASH_DEL(c->pending, f);
    pthread_mutex_lock(&f->mu);
    f->client = NULL;
    pthread_mutex_unlock(&f->mu);
}

int client_drop_pending(forq_client_t *c, forq_future_t *f)
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

/* ---- the I/O thread ---- */

static void free_outmsg(void *data, void *hint)
{
    (void)data;
    free(hint);
}

/* Send one queued message. Returns 0, or -errno (EAGAIN: the socket cannot take it now). */
static int send_out(forq_client_t *c, outmsg_t *m)
{
    if (zmq_send(c->sock, m->data, m->hlen, ZMQ_DONTWAIT | (m->has_payload ? ZMQ_SNDMORE : 0)) <
        0)
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

/* Build a message: header + optional payload. NULL on out-of-memory. */
static outmsg_t *outmsg_new(const msgpack_sbuffer *hdr, const void *payload, size_t plen,
                            bool has_payload)
{
    outmsg_t *m = malloc(sizeof(*m) + hdr->size + plen);
    if (!m)
        return NULL;
    m->next = NULL;
    m->hlen = hdr->size;
    m->plen = plen;
    m->has_payload = has_payload;
    memcpy(m->data, hdr->data, hdr->size);
    if (plen)
        memcpy(m->data + hdr->size, payload, plen);
    return m;
}

/* Put m on the queue (client lock held); returns whether its owner must be poked. */
static bool queue_locked(forq_client_t *c, outmsg_t *m)
{
    bool wake = c->out_head == NULL;
    if (c->out_tail)
        c->out_tail->next = m;
    else
        c->out_head = m;
    c->out_tail = m;
    return wake;
}

static void signal_fd(int fd)
{
    uint64_t one = 1;
    if (write(fd, &one, sizeof(one)) < 0) {
        /* the counter is saturated: its reader is awake anyway */
    }
}

static void drain_fd(int fd)
{
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0) {
        /* nothing to read: another wake-up already consumed it */
    }
}

/* Tell whoever owns the socket to look again (client lock held). */
static void poke_locked(forq_client_t *c)
{
    signal_fd(c->owner == OWN_CALLER ? c->drive_fd : c->wake_fd);
}

/* Is there anything the socket's owner must do (client lock held)? */
static bool has_work_locked(forq_client_t *c)
{
    return c->out_head || c->pending || c->stopping;
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
    } else if (c->io_wanted && has_work_locked(c)) {
        signal_fd(c->wake_fd);
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

static outmsg_t *encode_msg(const wire_hdr_t *h, const void *payload, size_t plen, bool has)
{
    msgpack_sbuffer sb;
    outmsg_t *m = NULL;

    msgpack_sbuffer_init(&sb);
    if (wire_hdr_encode(&sb, h) == 0)
        m = outmsg_new(&sb, payload, plen, has);
    msgpack_sbuffer_destroy(&sb);
    return m;
}

/* The submit message of f's job. */
static outmsg_t *submit_msg(const forq_future_t *f, const void *args, size_t args_len)
{
    const forq_submit_opts_t *o = &f->opts;
    wire_hdr_t h = {.cmd = WIRE_SUBMIT,
                    .id = wire_str(f->key),
                    .task = wire_str(f->task),
                    .timeout_ms = o->timeout > 0 ? (uint64_t)(o->timeout * 1000.0 + 0.999) : 0,
                    .deadline_ms = o->deadline > 0 ? (uint64_t)(o->deadline * 1000.0 + 0.999) : 0,
                    .priority = (uint32_t)o->priority,
                    .has_priority = true,
                    .retries = o->retries,
                    .max_result = o->max_result,
                    .as_bytes = o->max_memory,
                    .cpu_s = o->max_cpu_seconds,
                    .chunk = f->chunk,
                    .name = wire_str(o->store_dict),
                    .key = wire_str(o->store_key)};
    return encode_msg(&h, args, args_len, true);
}

/* A pending job forqd does not know after a reconnection: submit it again if it allows, else
 * it is lost. Called in the I/O thread with nothing locked; f is referenced. */
static void job_unknown_after_reconnect(forq_client_t *c, forq_future_t *f)
{
    outmsg_t *m = NULL;

    if (f->opts.retries > 0 && f->args) {
        f->opts.retries--;
        m = submit_msg(f, f->args, f->args_len);
    }
    pthread_mutex_lock(&c->lock);
    if (m && !c->stopping && table_add(c, f)) {
        f->refetching = false;
        if (queue_locked(c, m))
            poke_locked(c);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    pthread_mutex_unlock(&c->lock);
    free(m);
    future_resolve_local(f, FORQ_STATE_LOST, NULL,
                         "forqd restarted and does not know this job, which allows no more "
                         "retries");
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
        msgpack_zone_destroy(&zone);
        return; /* nothing to attach it to */
    }
    pthread_mutex_lock(&c->lock);
    if (h.has_req && h.cmd != WIRE_RESULT && h.cmd != WIRE_PROGRESS) {
        snprintf(key, sizeof(key), "#%llu", (unsigned long long)h.req);
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
            table_del(c, f);
    }
    pthread_mutex_unlock(&c->lock);
    if (!f) {
        msgpack_zone_destroy(&zone);
        return;
    }
    if (h.cmd == WIRE_PROGRESS) {
        future_progress(f, &h);
    } else if (h.cmd == WIRE_RESULT && h.state == WIRE_ST_UNKNOWN && f->refetching) {
        job_unknown_after_reconnect(c, f);
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

/* After a reconnection: ask forqd about every pending job. */
static void refetch_all(forq_client_t *c)
{
    forq_future_t *f, *tmp;
    bool poke = false;

    pthread_mutex_lock(&c->lock);
    HASH_ITER(hh, c->pending, f, tmp)
    {
        if (f->is_request)
            continue;
        wire_hdr_t h = {.cmd = WIRE_FETCH, .id = wire_str(f->key)};
        outmsg_t *m = encode_msg(&h, NULL, 0, false);
        if (!m)
            continue;
        f->refetching = true;
        poke |= queue_locked(c, m);
    }
    if (poke)
        poke_locked(c);
    pthread_mutex_unlock(&c->lock);
}

/* Resolve every pending future LOST (forqd unreachable too long, or the client destroyed). */
static void lose_all(forq_client_t *c, const char *why)
{
    forq_future_t *f, *tmp, **lost;
    size_t n = 0;

    pthread_mutex_lock(&c->lock);
    lost = calloc(HASH_COUNT(c->pending) + 1, sizeof(*lost));
    if (!lost) {
        pthread_mutex_unlock(&c->lock);
        abort(); /* no memory to keep the exactly-once promise */
    }
    HASH_ITER(hh, c->pending, f, tmp)
    {
        future_ref(f);
        table_del(c, f);
        lost[n++] = f;
    }
    pthread_mutex_unlock(&c->lock);
    /* resolved without the lock: their callbacks may call into the client */
    for (size_t i = 0; i < n; i++) {
        future_resolve_local(lost[i], FORQ_STATE_LOST, NULL, why);
        future_unref(lost[i]);
    }
    free(lost);
    /* and the waiters look again */
    pthread_mutex_lock(&c->lock);
    pthread_cond_broadcast(&c->owner_cv);
    if (c->owner == OWN_CALLER)
        signal_fd(c->drive_fd);
    pthread_mutex_unlock(&c->lock);
}

/* Read the monitor's events: true if the connection came back after dropping. */
static bool monitor_events(forq_client_t *c, bool *down, uint64_t *down_since)
{
    bool back = false;
    for (;;) {
        zmq_msg_t ev, addr;
        uint16_t event;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, c->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return back;
        }
        zmq_msg_init(&addr);
        zmq_msg_recv(&addr, c->monitor, 0);
        memcpy(&event, zmq_msg_data(&ev), sizeof(event));
        if (event == ZMQ_EVENT_DISCONNECTED && !*down) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            *down = true;
            *down_since = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
        } else if (event == ZMQ_EVENT_CONNECTED && *down) {
            *down = false;
            back = true;
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
    }
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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
    bool down = false;
    uint64_t down_since = 0;

    for (;;) {
        bool mine, stopping, out;

        pthread_mutex_lock(&c->lock);
        if (c->owner == OWN_NONE && !c->waiting && has_work_locked(c)) {
            c->owner = OWN_IO;
            c->io_wanted = false;
        }
        mine = c->owner == OWN_IO;
        stopping = c->stopping;
        out = c->out_head != NULL;
        pthread_mutex_unlock(&c->lock);
        if (stopping && mine && !out)
            break; /* everything delivered */

        zmq_pollitem_t items[4] = {{NULL, c->wake_fd, ZMQ_POLLIN, 0},
                                   {c->monitor, 0, ZMQ_POLLIN, 0},
                                   {NULL, c->timer_fd, ZMQ_POLLIN, 0},
                                   {c->sock, 0, ZMQ_POLLIN | (out ? ZMQ_POLLOUT : 0), 0}};
        int tmo = stopping ? c->linger_ms : (down && c->lost_after_ms > 0) ? 100 : -1;
        int r = zmq_poll(items, mine ? 4 : 3, tmo);
        if (r < 0 && errno != EINTR)
            break;
        if (stopping && r == 0)
            break; /* linger over: give up on what was not sent */
        if (items[1].revents && monitor_events(c, &down, &down_since))
            refetch_all(c);
        if (down && c->lost_after_ms > 0 && mono_ms() - down_since >= (uint64_t)c->lost_after_ms) {
            lose_all(c, "forqd was unreachable for longer than the client's lost_after_ms");
            down_since = mono_ms();
        }
        if (items[0].revents)
            drain_fd(c->wake_fd);
        if (items[2].revents) {
            drain_fd(c->timer_fd);
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
    while (c->out_head) {
        outmsg_t *m = c->out_head;
        c->out_head = m->next;
        free(m);
    }
    c->out_tail = NULL;
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
        uint64_t now = mono_ms();
        if (deadline && now >= deadline)
            return false;
        zmq_pollitem_t items[2] = {{c->sock, 0, ZMQ_POLLIN | (out_left ? ZMQ_POLLOUT : 0), 0},
                                   {NULL, poke_fd, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, deadline ? (long)(deadline - now) : -1) < 0 && errno != EINTR)
            return future_wait_done(f, deadline ? (int)(deadline - now) : -1);
        if (items[1].revents)
            drain_fd(poke_fd);
    }
}

bool client_wait(forq_client_t *c, forq_future_t *f, int timeout_ms)
{
    uint64_t deadline = timeout_ms >= 0 ? mono_ms() + (uint64_t)timeout_ms : 0;
    bool done;

    if (timeout_ms == 0 && deadline == 0)
        deadline = 1; /* already passed */
    if (tl_driving == c)
        return drive(c, f, deadline); /* a callback of our own drive waits again */
    pthread_mutex_lock(&c->lock);
    for (;;) {
        if (future_wait_done(f, 0)) {
            pthread_mutex_unlock(&c->lock);
            return true;
        }
        if (c->owner == OWN_NONE && !c->stopping) {
            c->owner = OWN_CALLER;
            break;
        }
        uint64_t now = mono_ms();
        if (deadline && now >= deadline) {
            pthread_mutex_unlock(&c->lock);
            return false;
        }
        if (c->owner == OWN_IO)
            signal_fd(c->wake_fd); /* it hands over once it has looked */
        c->waiting++;
        if (deadline) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += (time_t)((deadline - now) / 1000);
            until.tv_nsec += (long)((deadline - now) % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&c->owner_cv, &c->lock, &until);
        } else {
            pthread_cond_wait(&c->owner_cv, &c->lock);
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

void client_want_io(forq_client_t *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->owner == OWN_NONE && !c->waiting)
        signal_fd(c->wake_fd);
    else if (c->owner == OWN_CALLER)
        c->io_wanted = true;
    pthread_mutex_unlock(&c->lock);
}

/* Queue a message for the socket's owner, or send it now if nobody owns the socket, and
 * register `f` (if not NULL) for its reply. Takes m. */
static forq_err_t enqueue_for(forq_client_t *c, outmsg_t *m, forq_future_t *f, bool will_wait)
{
    bool w;

    if (!m)
        return client_fail(FORQ_ERR_NOMEM, "out of memory queuing a message");
    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        free(m);
        return client_fail(FORQ_ERR_CLOSED, "the client is being destroyed");
    }
    if (f && !table_add(c, f)) {
        pthread_mutex_unlock(&c->lock);
        free(m);
        return client_fail(FORQ_ERR_INVALID, "this client already waits for job '%s'", f->key);
    }
    w = queue_locked(c, m);
    if (c->owner == OWN_NONE && !c->waiting && tl_driving != c && will_wait) {
        /* nobody owns the socket, and this thread waits for the reply at once: it sends the
         * message as it starts driving (client_wait) */
    } else if (c->owner == OWN_NONE && !c->waiting && tl_driving != c) {
        /* nobody owns the socket: send it from this thread */
        c->owner = OWN_CALLER;
        pthread_mutex_unlock(&c->lock);
        flush_out(c);
        pthread_mutex_lock(&c->lock);
        release_locked(c);
    } else if (w) {
        poke_locked(c);
    }
    pthread_mutex_unlock(&c->lock);
    return FORQ_OK;
}

static forq_err_t enqueue(forq_client_t *c, outmsg_t *m, forq_future_t *f)
{
    return enqueue_for(c, m, f, false);
}

/* ---- client ---- */

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

void forq_client_opts_init(forq_client_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->linger_ms = 2000;
}

static void client_free(forq_client_t *c)
{
    if (c->monitor)
        zmq_close(c->monitor);
    if (c->sock)
        zmq_close(c->sock);
    while (c->out_head) {
        outmsg_t *m = c->out_head;
        c->out_head = m->next;
        free(m);
    }
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
    free(c->endpoint);
    free(c);
}

forq_err_t forq_client_new(const forq_client_opts_t *opts, forq_client_t **ret_client)
{
    forq_client_opts_t defaults;
    forq_client_t *c;
    char ep[4200], ident[24], monep[64];
    uint8_t rnd[8];
    int64_t maxmsg;
    int zero = 0;

    if (!ret_client)
        return client_fail(FORQ_ERR_INVALID, "forq_client_new: ret_client is NULL");
    if (!opts) {
        forq_client_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->endpoint)
        snprintf(ep, sizeof(ep), "%s", opts->endpoint);
    else if (getenv("FORQ_ENDPOINT") && *getenv("FORQ_ENDPOINT"))
        snprintf(ep, sizeof(ep), "%s", getenv("FORQ_ENDPOINT"));
    else if (endpoint_default(ep, sizeof(ep)) < 0)
        return client_fail(FORQ_ERR_INVALID,
                           "the default endpoint path is too long; set FORQ_ENDPOINT");
    if (strncmp(ep, "ipc://", 6) != 0 && strncmp(ep, "tcp://", 6) != 0)
        return client_fail(FORQ_ERR_INVALID, "endpoint '%s' must start with ipc:// or tcp://",
                           ep);

    c = calloc(1, sizeof(*c));
    if (!c || !(c->endpoint = strdup(ep))) {
        free(c);
        return client_fail(FORQ_ERR_NOMEM, "out of memory creating a client");
    }
    c->wake_fd = c->drive_fd = c->timer_fd = -1;
    pthread_mutex_init(&c->lock, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&c->owner_cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    c->max_message = opts->max_message ? opts->max_message : WIRE_PAYLOAD_DEF + WIRE_HEADER_MAX;
    c->linger_ms = opts->linger_ms >= 0 ? opts->linger_ms : 0;
    c->lost_after_ms = opts->lost_after_ms;
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
        memcpy(rnd, &t, sizeof(rnd));
    }
    for (int i = 0; i < 8; i++)
        snprintf(c->prefix + 2 * i, 3, "%02x", rnd[i]);
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
    snprintf(ident, sizeof(ident), "c%s", c->prefix);
    maxmsg = (int64_t)c->max_message;
    zmq_setsockopt(c->sock, ZMQ_ROUTING_ID, ident, strlen(ident));
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
    zmq_setsockopt(c->sock, ZMQ_LINGER, &c->linger_ms, sizeof(c->linger_ms));
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &zero, sizeof(zero));
    zmq_setsockopt(c->sock, ZMQ_RCVHWM, &zero, sizeof(zero));
    snprintf(monep, sizeof(monep), "inproc://forq-monitor-%p", (void *)c);
    if (zmq_socket_monitor(c->sock, monep, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) < 0 ||
        zmq_connect(c->monitor, monep) < 0)
        goto sys;
    if (zmq_connect(c->sock, ep) < 0) {
        forq_err_t e = client_fail(FORQ_ERR_INVALID, "cannot connect to '%s': %s", ep,
                                   zmq_strerror(errno));
        client_free(c);
        return e;
    }
    if (pthread_create(&c->io, NULL, io_main, c) != 0)
        goto sys;
    if (opts->connect_timeout_ms > 0) {
        forq_err_t e = forq_client_ping(c, opts->connect_timeout_ms, NULL);
        if (e != FORQ_OK) {
            char keep[sizeof(detail_buf)];
            snprintf(keep, sizeof(keep), "%s", detail_buf);
            forq_client_destroy(&c);
            return client_fail(e, "%s", keep);
        }
    }
    *ret_client = c;
    return FORQ_OK;
sys:
    {
        forq_err_t e = client_fail(FORQ_ERR_SYSTEM, "cannot create the client's sockets: %s",
                                   zmq_strerror(errno));
        client_free(c);
        return e;
    }
}

void forq_client_destroy(forq_client_t **cp)
{
    forq_client_t *c;

    if (!cp || !(c = *cp))
        return;
    *cp = NULL;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_mutex_unlock(&c->lock);
    lose_all(c, "the client was destroyed before the result arrived");
    signal_fd(c->wake_fd);
    pthread_join(c->io, NULL);
    zmq_socket_monitor(c->sock, NULL, 0);
    client_free(c);
}

const char *forq_client_endpoint(const forq_client_t *c)
{
    return c ? c->endpoint : NULL;
}

static forq_err_t request(forq_client_t *c, wire_hdr_t *h, int timeout_ms, forq_future_t **ret_f)
{
    return client_request(c, h, NULL, 0, timeout_ms, ret_f);
}

static forq_err_t request_send(forq_client_t *c, wire_hdr_t *h, const void *payload, size_t plen,
                               bool will_wait, forq_future_t **ret_f)
{
    forq_future_t *f;
    forq_err_t e;

    if (!c)
        return client_fail(FORQ_ERR_INVALID, "client is NULL");
    if (!(f = future_new()))
        return client_fail(FORQ_ERR_NOMEM, "out of memory");
    f->is_request = true;
    pthread_mutex_lock(&c->lock);
    h->req = ++c->next_req;
    pthread_mutex_unlock(&c->lock);
    h->has_req = true;
    snprintf(f->key, sizeof(f->key), "#%llu", (unsigned long long)h->req);
    if ((e = enqueue_for(c, encode_msg(h, payload, plen, payload != NULL), f, will_wait)) !=
        FORQ_OK) {
        future_unref(f);
        return e;
    }
    *ret_f = f;
    return FORQ_OK;
}

forq_err_t client_request_async(forq_client_t *c, wire_hdr_t *h, const void *payload,
                                size_t plen, forq_future_t **ret_f)
{
    return request_send(c, h, payload, plen, false, ret_f);
}

forq_err_t client_request(forq_client_t *c, wire_hdr_t *h, const void *payload, size_t plen,
                          int timeout_ms, forq_future_t **ret_f)
{
    forq_future_t *f = NULL;
    forq_err_t e;

    if ((e = request_send(c, h, payload, plen, true, &f)) != FORQ_OK)
        return e;
    if (!client_wait(c, f, timeout_ms)) {
        future_unref(f); /* leaves the table with its last reference */
        return client_fail(h->cmd == WIRE_PING ? FORQ_ERR_CONNECT : FORQ_ERR_TIMEOUT,
                           "forqd did not answer at %s within %d ms; is it running?",
                           c->endpoint, timeout_ms);
    }
    if (f->reply_cmd == WIRE_ERROR || f->state == FORQ_STATE_LOST) {
        e = client_fail(f->reply_cmd == WIRE_ERROR ? FORQ_ERR_PROTOCOL : FORQ_ERR_CLOSED, "%s%s%s",
                        f->code ? f->code : "", f->code ? ": " : "", f->detail ? f->detail : "");
        future_unref(f);
        return e;
    }
    *ret_f = f;
    return FORQ_OK;
}

forq_err_t forq_client_ping(forq_client_t *c, int timeout_ms, char **ret_version)
{
    wire_hdr_t h = {.cmd = WIRE_PING};
    forq_future_t *f;
    forq_err_t e = request(c, &h, timeout_ms, &f);

    if (e != FORQ_OK)
        return e;
    if (ret_version)
        *ret_version = strdup(f->detail ? f->detail : "forqd");
    future_unref(f);
    return FORQ_OK;
}

static bool id_ok(const char *id)
{
    return id && wire_id_is_valid(id, strlen(id));
}

/* A request about job `id` (cancel, status): checks the id, then request(). */
static forq_err_t id_request(forq_client_t *c, wire_cmd_t cmd, const char *id, int timeout_ms,
                             forq_future_t **ret_f)
{
    wire_hdr_t h = {.cmd = cmd, .id = wire_str(id)};

    if (!id_ok(id))
        return client_fail(FORQ_ERR_INVALID,
                           "job id must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    return request(c, &h, timeout_ms, ret_f);
}

forq_err_t forq_client_cancel(forq_client_t *c, const char *id, int timeout_ms,
                              forq_cancel_t *ret_outcome)
{
    forq_future_t *f;
    forq_err_t e;

    if ((e = id_request(c, WIRE_CANCEL, id, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (ret_outcome) {
        const char *o = f->outcome ? f->outcome : "";
        *ret_outcome = strcmp(o, "dequeued") == 0   ? FORQ_CANCEL_DEQUEUED
                       : strcmp(o, "killing") == 0  ? FORQ_CANCEL_KILLING
                       : strcmp(o, "finished") == 0 ? FORQ_CANCEL_FINISHED
                                                    : FORQ_CANCEL_UNKNOWN;
    }
    future_unref(f);
    return FORQ_OK;
}

forq_err_t client_cancel_async(forq_client_t *c, const char *id)
{
    wire_hdr_t h = {.cmd = WIRE_CANCEL, .id = wire_str(id)};
    return enqueue(c, encode_msg(&h, NULL, 0, false), NULL);
}

forq_err_t forq_client_status(forq_client_t *c, const char *id, int timeout_ms,
                              forq_job_info_t *ret_info)
{
    forq_future_t *f;
    forq_err_t e;

    if ((e = id_request(c, WIRE_STATUS, id, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (ret_info) {
        memset(ret_info, 0, sizeof(*ret_info));
        ret_info->state = f->state;
        snprintf(ret_info->task, sizeof(ret_info->task), "%s", f->task_name ? f->task_name : "");
        ret_info->attempts = f->attempts;
        ret_info->pid = f->pid;
        ret_info->priority = f->priority;
    }
    future_unref(f);
    return FORQ_OK;
}

forq_err_t forq_client_stats(forq_client_t *c, int timeout_ms, void **ret_data, size_t *ret_len)
{
    wire_hdr_t h = {.cmd = WIRE_STATS};
    forq_future_t *f;
    forq_err_t e;

    if (!ret_data || !ret_len)
        return client_fail(FORQ_ERR_INVALID, "forq_client_stats: ret_data and ret_len are required");
    if ((e = request(c, &h, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (!f->result) {
        future_unref(f);
        return client_fail(FORQ_ERR_PROTOCOL, "forqd's stats reply had no payload");
    }
    *ret_data = f->result;
    *ret_len = f->result_len;
    f->result = NULL;
    future_unref(f);
    return FORQ_OK;
}

forq_err_t forq_client_fetch(forq_client_t *c, const char *id, forq_future_t **ret_future)
{
    wire_hdr_t h = {.cmd = WIRE_FETCH, .id = wire_str(id)};
    forq_future_t *f;
    forq_err_t e;

    if (!c || !ret_future)
        return client_fail(FORQ_ERR_INVALID, "client and ret_future are required");
    if (!id_ok(id))
        return client_fail(FORQ_ERR_INVALID,
                           "job id must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    if (!(f = future_new()))
        return client_fail(FORQ_ERR_NOMEM, "out of memory");
    snprintf(f->key, sizeof(f->key), "%s", id);
    if ((e = enqueue(c, encode_msg(&h, NULL, 0, false), f)) != FORQ_OK) {
        future_unref(f);
        return e;
    }
    *ret_future = f;
    return FORQ_OK;
}

/* ---- submit ---- */

void forq_submit_opts_init(forq_submit_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->priority = WIRE_PRIORITY_DEF;
}

forq_err_t client_submit(forq_client_t *c, forq_future_t *f, const void *args, size_t args_len)
{
    if (f->opts.retries > 0) {
        /* kept to submit again if a restarted forqd has never heard of the job */
        if (!(f->args = malloc(args_len ? args_len : 1)))
            return client_fail(FORQ_ERR_NOMEM, "out of memory");
        memcpy(f->args, args, args_len);
        f->args_len = args_len;
    }
    return enqueue(c, submit_msg(f, args, args_len), f);
}

forq_err_t forq_submit(forq_client_t *c, const char *task, const void *args, size_t args_len,
                       const forq_submit_opts_t *opts, forq_future_t **ret_future)
{
    forq_submit_opts_t defaults;
    wire_err_t werr;
    forq_future_t *f;
    forq_err_t e;

    if (!c || !ret_future)
        return client_fail(FORQ_ERR_INVALID, "forq_submit: client and ret_future are required");
    if (!opts) {
        forq_submit_opts_init(&defaults);
        opts = &defaults;
    }
    if (!task || !wire_task_is_valid(task, strlen(task)))
        return client_fail(FORQ_ERR_INVALID,
                           "task name must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    if (opts->id && !id_ok(opts->id))
        return client_fail(FORQ_ERR_INVALID,
                           "job id must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    if (opts->priority < 0 || opts->priority > WIRE_PRIORITY_MAX)
        return client_fail(FORQ_ERR_INVALID, "priority must be from 0 to %d", WIRE_PRIORITY_MAX);
    if (opts->retries > WIRE_RETRIES_MAX)
        return client_fail(FORQ_ERR_INVALID, "retries must be at most %d", WIRE_RETRIES_MAX);
    if (!(opts->timeout >= 0) || !(opts->deadline >= 0))
        return client_fail(FORQ_ERR_INVALID, "timeout and deadline must not be negative");
    if ((opts->store_dict || opts->store_key) &&
        (!opts->store_dict || !wire_id_is_valid(opts->store_dict, strlen(opts->store_dict)) ||
         !opts->store_key || !*opts->store_key || strlen(opts->store_key) > WIRE_KEY_MAX))
        return client_fail(FORQ_ERR_INVALID, "store_dict (a dict name) and store_key (1-1024 "
                                             "bytes) go together");
    if (!args || wire_check(args, args_len, WIRE_DEPTH_MAX, &werr) < 0)
        return client_fail(FORQ_ERR_INVALID, "args must be exactly one msgpack value: %s",
                           args ? werr.msg : "args is NULL");
    if (!(f = future_new()))
        return client_fail(FORQ_ERR_NOMEM, "out of memory");
    if (opts->id) {
        snprintf(f->key, sizeof(f->key), "%s", opts->id);
    } else {
        pthread_mutex_lock(&c->lock);
        uint64_t n = ++c->next_job;
        pthread_mutex_unlock(&c->lock);
        snprintf(f->key, sizeof(f->key), "%s-%llx", c->prefix, (unsigned long long)n);
    }
    snprintf(f->task, sizeof(f->task), "%s", task);
    f->opts = *opts;
    f->opts.id = NULL;
    if ((e = client_submit(c, f, args, args_len)) != FORQ_OK) {
        future_unref(f);
        return e;
    }
    *ret_future = f;
    return FORQ_OK;
}

void client_new_id(forq_client_t *c, char *buf, size_t size)
{
    pthread_mutex_lock(&c->lock);
    uint64_t n = ++c->next_job;
    pthread_mutex_unlock(&c->lock);
    snprintf(buf, size, "%s-%llx", c->prefix, (unsigned long long)n);
}
