/* client.c - libforq: connection, I/O thread and futures.
 *
 * A ZeroMQ socket may not be used by two threads at once, so one I/O thread owns the DEALER
 * socket. API threads put encoded messages on a mutex-protected queue and wake the thread
 * through an eventfd (only when the queue was empty: a burst of submissions costs one wake-up).
 * The thread sends them, receives replies, finds the waiting future by job id (results) or by
 * request number (replies to cancel, status, stats, ping), fills it in and signals its condition
 * variable. Every pending thing is a future: job futures are the caller's, request futures are
 * internal to the blocking calls.
 *
 * Payloads are not copied on their way out: the queued message's memory is handed to ZeroMQ with
 * zmq_msg_init_data() and freed by it once sent. */
#define _GNU_SOURCE
#include "forq/forq.h"

#include "endpoint.h"
#include "wire.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>
#include <zmq.h>

/* uthash must not exit the process inside a library: report instead */
#undef uthash_fatal
#define uthash_fatal(msg) abort()

#define REQ_KEY_MAX 24

typedef struct outmsg {
    struct outmsg *next;        /* FIFO */
    size_t hlen, plen;          /* header and payload bytes in data */
    bool has_payload;           /* send a payload frame */
    char data[];                /* header then payload */
} outmsg_t;

struct forq_future {
    UT_hash_handle hh;          /* in client->pending while in_table */
    forq_client_t *client;      /* while pending; NULL once resolved (never used after that) */
    bool in_table;              /* registered for a reply (guarded by the client's lock) */
    bool done;                  /* resolved; the fields below are then immutable */
    bool is_request;            /* an internal request, keyed by "#req" */
    pthread_mutex_t mu;         /* guards done and the result fields */
    pthread_cond_t cond;        /* signalled when done */
    char key[FORQ_ID_MAX + 1];  /* job id or "#<req>" */
    uint64_t req;               /* request number (requests) */
    wire_cmd_t reply_cmd;       /* what answered (requests) */
    forq_state_t state;         /* final state (jobs) or the reply's status (requests) */
    void *result;               /* result / reply payload (owned), NULL if none */
    size_t result_len;
    char *etype, *detail, *code, *outcome, *task; /* owned strings, NULL if absent */
    int signal, exit_code, pid, priority;
    unsigned attempts;
};

struct forq_client {
    void *zctx;                 /* ZeroMQ context */
    void *sock;                 /* DEALER, used only by the I/O thread after start */
    pthread_t io;               /* the I/O thread */
    int wake_fd;                /* eventfd: the queue has messages, or stop */
    pthread_mutex_t lock;       /* guards everything below */
    outmsg_t *out_head, *out_tail; /* messages for the I/O thread */
    forq_future_t *pending;     /* futures awaiting a reply, by key */
    bool stopping;              /* destroy has begun */
    uint64_t next_req;          /* request numbers */
    uint64_t next_job;          /* job id counter */
    char prefix[17];            /* random hex prefix of generated ids */
    char *endpoint;             /* owned */
    size_t max_message;
    int linger_ms;
};

static __thread char detail_buf[512];

static forq_err_t fail(forq_err_t err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static forq_err_t fail(forq_err_t err, const char *fmt, ...)
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

/* ---- futures ---- */

static forq_future_t *future_new(void)
{
    forq_future_t *f = calloc(1, sizeof(*f));
    pthread_condattr_t ca;

    if (!f)
        return NULL;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&f->mu, NULL);
    f->exit_code = -1;
    f->priority = -1;
    return f;
}

static void future_free(forq_future_t *f)
{
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    free(f->result);
    free(f->etype);
    free(f->detail);
    free(f->code);
    free(f->outcome);
    free(f->task);
    free(f);
}

static char *dup_str(wire_str_t s)
{
    char *p;
    if (!s.ptr)
        return NULL;
    p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

/* Resolve a future with a client-side outcome (lost at teardown). Client lock held. */
static void resolve_local(forq_future_t *f, forq_state_t st, const char *detail)
{
    pthread_mutex_lock(&f->mu);
    f->client = NULL;
    f->state = st;
    free(f->detail);
    f->detail = strdup(detail);
    f->done = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

/* Fill a future from a decoded reply; takes `payload` (malloc'ed) when not NULL. Client lock
 * held. */
static void resolve(forq_future_t *f, const wire_hdr_t *h, void *payload, size_t plen)
{
    pthread_mutex_lock(&f->mu);
    f->client = NULL;
    f->reply_cmd = h->cmd;
    if (h->cmd == WIRE_ERROR) {
        f->state = FORQ_STATE_REJECTED;
        f->code = dup_str(h->code);
    } else {
        f->state = (forq_state_t)h->state;
        f->code = dup_str(h->code);
    }
    f->etype = dup_str(h->etype);
    f->detail = dup_str(h->msg);
    f->outcome = dup_str(h->outcome);
    f->task = dup_str(h->task);
    f->signal = (int)h->signal;
    f->exit_code = h->has_exit ? (int)h->exit_code : -1;
    f->pid = (int)h->pid;
    f->priority = h->has_priority ? (int)h->priority : -1;
    f->attempts = h->attempts;
    f->result = payload;
    f->result_len = plen;
    f->done = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

/* ---- the I/O thread ---- */

static void free_outmsg(void *data, void *hint)
{
    (void)data;
    free(hint);
}

/* Send one queued message. Returns 0, or -EAGAIN when the socket cannot take it now. */
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

static void on_reply(forq_client_t *c, zmq_msg_t *hm, zmq_msg_t *pm, bool has_payload)
{
    msgpack_zone zone;
    wire_hdr_t h;
    wire_err_t err;
    char key[REQ_KEY_MAX > FORQ_ID_MAX + 1 ? REQ_KEY_MAX : FORQ_ID_MAX + 1];
    forq_future_t *f = NULL;

    msgpack_zone_init(&zone, 1024);
    if (wire_hdr_decode(zmq_msg_data(hm), zmq_msg_size(hm), &zone, &h, &err) < 0) {
        msgpack_zone_destroy(&zone);
        return; /* nothing to attach it to */
    }
    pthread_mutex_lock(&c->lock);
    if (h.has_req && h.cmd != WIRE_RESULT) {
        snprintf(key, sizeof(key), "#%llu", (unsigned long long)h.req);
        HASH_FIND_STR(c->pending, key, f);
    } else if (h.id.ptr) {
        HASH_FIND(hh, c->pending, h.id.ptr, h.id.len, f);
        if (f && f->is_request)
            f = NULL;
    }
    if (f) {
        void *payload = NULL;
        size_t plen = 0;
        HASH_DEL(c->pending, f);
        f->in_table = false;
        /* results reach callers' unpackers: they get the same check as anything untrusted */
        if (has_payload &&
            wire_check(zmq_msg_data(pm), zmq_msg_size(pm), WIRE_DEPTH_MAX, &err) < 0) {
            char why[sizeof(err.msg) + 64];
            snprintf(why, sizeof(why), "forqd sent a malformed result frame: %s", err.msg);
            f->reply_cmd = WIRE_ERROR; /* requests report it as a protocol error */
            f->code = strdup("bad_message");
            resolve_local(f, FORQ_STATE_LOST, why);
        } else {
            if (has_payload && (payload = malloc(zmq_msg_size(pm) ? zmq_msg_size(pm) : 1))) {
                plen = zmq_msg_size(pm);
                memcpy(payload, zmq_msg_data(pm), plen);
            }
            resolve(f, &h, payload, plen);
        }
    }
    pthread_mutex_unlock(&c->lock);
    msgpack_zone_destroy(&zone);
}

static void recv_all(forq_client_t *c)
{
    for (;;) {
        zmq_msg_t f[3];
        int n = 0, more = 1;
        size_t ml = sizeof(more);

        zmq_msg_init(&f[0]);
        if (zmq_msg_recv(&f[0], c->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f[0]);
            return;
        }
        n = 1;
        while (zmq_getsockopt(c->sock, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
            zmq_msg_t *m = n < 3 ? &f[n] : NULL, junk;
            if (!m)
                m = &junk;
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

static void *io_main(void *arg)
{
    forq_client_t *c = arg;
    outmsg_t *held = NULL, *held_tail = NULL; /* taken from the queue, not yet sent */
    bool stopping = false;

    while (!stopping || held) {
        zmq_pollitem_t items[2] = {{c->sock, 0, ZMQ_POLLIN | (held ? ZMQ_POLLOUT : 0), 0},
                                   {NULL, c->wake_fd, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, stopping ? c->linger_ms : -1) < 0 && errno != EINTR)
            break;
        if (stopping && !items[0].revents && !items[1].revents)
            break; /* linger over: give up on what was not sent */
        if (items[1].revents) {
            uint64_t v;
            if (read(c->wake_fd, &v, sizeof(v)) < 0) {
                /* nothing to read: another wake-up already consumed it */
            }
            pthread_mutex_lock(&c->lock);
            if (c->out_head) {
                if (held_tail)
                    held_tail->next = c->out_head;
                else
                    held = c->out_head;
                held_tail = c->out_tail;
                c->out_head = c->out_tail = NULL;
            }
            stopping = c->stopping;
            pthread_mutex_unlock(&c->lock);
        }
        while (held) {
            outmsg_t *next = held->next;
            if (send_out(c, held) < 0)
                break;
            held = next;
            if (!held)
                held_tail = NULL;
        }
        if (items[0].revents & ZMQ_POLLIN)
            recv_all(c);
    }
    while (held) {
        outmsg_t *next = held->next;
        free(held);
        held = next;
    }
    return NULL;
}

/* Queue a message for the I/O thread and register `f` (if not NULL) for its reply. The caller
 * has encoded `hdr`. Takes nothing on failure. */
static forq_err_t enqueue(forq_client_t *c, const msgpack_sbuffer *hdr, const void *payload,
                          size_t plen, bool has_payload, forq_future_t *f)
{
    outmsg_t *m = malloc(sizeof(*m) + hdr->size + plen);
    bool wake;

    if (!m)
        return fail(FORQ_ERR_NOMEM, "out of memory queuing a message");
    m->next = NULL;
    m->hlen = hdr->size;
    m->plen = plen;
    m->has_payload = has_payload;
    memcpy(m->data, hdr->data, hdr->size);
    if (plen)
        memcpy(m->data + hdr->size, payload, plen);

    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        free(m);
        return fail(FORQ_ERR_CLOSED, "the client is being destroyed");
    }
    if (f) {
        forq_future_t *old;
        HASH_FIND_STR(c->pending, f->key, old);
        if (old) {
            pthread_mutex_unlock(&c->lock);
            free(m);
            return fail(FORQ_ERR_INVALID, "this client already waits for job '%s'", f->key);
        }
        HASH_ADD_STR(c->pending, key, f);
        f->in_table = true;
        f->client = c;
    }
    wake = c->out_head == NULL;
    if (c->out_tail)
        c->out_tail->next = m;
    else
        c->out_head = m;
    c->out_tail = m;
    pthread_mutex_unlock(&c->lock);
    if (wake) {
        uint64_t one = 1;
        if (write(c->wake_fd, &one, sizeof(one)) < 0) {
            /* the counter is saturated: the thread is awake anyway */
        }
    }
    return FORQ_OK;
}

/* ---- client ---- */

void forq_client_opts_init(forq_client_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->linger_ms = 2000;
}

forq_err_t forq_client_new(const forq_client_opts_t *opts, forq_client_t **ret_client)
{
    forq_client_opts_t defaults;
    forq_client_t *c;
    char ep[4200], ident[24];
    uint8_t rnd[8];
    int64_t maxmsg;
    int zero = 0;

    if (!ret_client)
        return fail(FORQ_ERR_INVALID, "forq_client_new: ret_client is NULL");
    if (!opts) {
        forq_client_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->endpoint)
        snprintf(ep, sizeof(ep), "%s", opts->endpoint);
    else if (getenv("FORQ_ENDPOINT") && *getenv("FORQ_ENDPOINT"))
        snprintf(ep, sizeof(ep), "%s", getenv("FORQ_ENDPOINT"));
    else if (endpoint_default(ep, sizeof(ep)) < 0)
        return fail(FORQ_ERR_INVALID, "the default endpoint path is too long; set FORQ_ENDPOINT");
    if (strncmp(ep, "ipc://", 6) != 0 && strncmp(ep, "tcp://", 6) != 0)
        return fail(FORQ_ERR_INVALID, "endpoint '%s' must start with ipc:// or tcp://", ep);

    c = calloc(1, sizeof(*c));
    if (!c || !(c->endpoint = strdup(ep))) {
        free(c);
        return fail(FORQ_ERR_NOMEM, "out of memory creating a client");
    }
    pthread_mutex_init(&c->lock, NULL);
    c->max_message = opts->max_message ? opts->max_message : WIRE_PAYLOAD_DEF + WIRE_HEADER_MAX;
    c->linger_ms = opts->linger_ms >= 0 ? opts->linger_ms : 0;
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
        memcpy(rnd, &t, sizeof(rnd));
    }
    for (int i = 0; i < 8; i++)
        snprintf(c->prefix + 2 * i, 3, "%02x", rnd[i]);
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    c->zctx = zmq_ctx_new();
    if (c->wake_fd < 0 || !c->zctx)
        goto sys;
    zmq_ctx_set(c->zctx, ZMQ_IO_THREADS, 1);
    c->sock = zmq_socket(c->zctx, ZMQ_DEALER);
    if (!c->sock)
        goto sys;
    /* a stable routing id: results still find us after a reconnect */
    snprintf(ident, sizeof(ident), "c%s", c->prefix);
    maxmsg = (int64_t)c->max_message;
    zmq_setsockopt(c->sock, ZMQ_ROUTING_ID, ident, strlen(ident));
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
    zmq_setsockopt(c->sock, ZMQ_LINGER, &c->linger_ms, sizeof(c->linger_ms));
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &zero, sizeof(zero));
    zmq_setsockopt(c->sock, ZMQ_RCVHWM, &zero, sizeof(zero));
    if (zmq_connect(c->sock, ep) < 0) {
        forq_err_t e = fail(FORQ_ERR_INVALID, "cannot connect to '%s': %s", ep, zmq_strerror(errno));
        zmq_close(c->sock);
        c->sock = NULL;
        forq_client_destroy(&c);
        return e;
    }
    if (pthread_create(&c->io, NULL, io_main, c) != 0) {
        zmq_close(c->sock);
        c->sock = NULL;
        goto sys;
    }
    if (opts->connect_timeout_ms > 0) {
        forq_err_t e = forq_client_ping(c, opts->connect_timeout_ms, NULL);
        if (e != FORQ_OK) {
            char keep[sizeof(detail_buf)];
            snprintf(keep, sizeof(keep), "%s", detail_buf);
            forq_client_destroy(&c);
            return fail(e, "%s", keep);
        }
    }
    *ret_client = c;
    return FORQ_OK;
sys:
    {
        forq_err_t e = fail(FORQ_ERR_SYSTEM, "cannot create the client's socket: %s",
                            zmq_strerror(errno));
        if (c->zctx)
            zmq_ctx_term(c->zctx);
        if (c->wake_fd >= 0)
            close(c->wake_fd);
        pthread_mutex_destroy(&c->lock);
        free(c->endpoint);
        free(c);
        return e;
    }
}

void forq_client_destroy(forq_client_t **cp)
{
    forq_client_t *c;
    forq_future_t *f, *tmp;
    uint64_t one = 1;

    if (!cp || !(c = *cp))
        return;
    *cp = NULL;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    HASH_ITER(hh, c->pending, f, tmp)
    {
        HASH_DEL(c->pending, f);
        f->in_table = false;
        resolve_local(f, FORQ_STATE_LOST, "the client was destroyed before the result arrived");
    }
    pthread_mutex_unlock(&c->lock);
    if (c->sock) {
        if (write(c->wake_fd, &one, sizeof(one)) < 0) {
            /* saturated counter: the thread is awake */
        }
        pthread_join(c->io, NULL);
        zmq_close(c->sock);
    }
    while (c->out_head) {
        outmsg_t *m = c->out_head;
        c->out_head = m->next;
        free(m);
    }
    zmq_ctx_term(c->zctx);
    close(c->wake_fd);
    pthread_mutex_destroy(&c->lock);
    free(c->endpoint);
    free(c);
}

const char *forq_client_endpoint(const forq_client_t *c)
{
    return c ? c->endpoint : NULL;
}

/* Wait for f. Returns true if it is done within timeout_ms (-1: forever, 0: just look). */
static bool wait_done(forq_future_t *f, int timeout_ms)
{
    struct timespec until;
    bool done;

    pthread_mutex_lock(&f->mu);
    if (f->done || timeout_ms == 0) {
        done = f->done;
        pthread_mutex_unlock(&f->mu);
        return done;
    }
    if (timeout_ms < 0) {
        while (!f->done)
            pthread_cond_wait(&f->cond, &f->mu);
        pthread_mutex_unlock(&f->mu);
        return true;
    }
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!f->done)
        if (pthread_cond_timedwait(&f->cond, &f->mu, &until) == ETIMEDOUT)
            break;
    done = f->done;
    pthread_mutex_unlock(&f->mu);
    return done;
}

/* Send a request header and wait for its reply. On FORQ_OK *ret_f is the resolved request
 * future, which the caller frees with future_free(). */
static forq_err_t request(forq_client_t *c, wire_hdr_t *h, int timeout_ms, forq_future_t **ret_f)
{
    msgpack_sbuffer sb;
    forq_future_t *f;
    forq_err_t e;
    bool done;

    if (!c)
        return fail(FORQ_ERR_INVALID, "client is NULL");
    if (!(f = future_new()))
        return fail(FORQ_ERR_NOMEM, "out of memory");
    f->is_request = true;
    pthread_mutex_lock(&c->lock);
    h->req = ++c->next_req;
    pthread_mutex_unlock(&c->lock);
    h->has_req = true;
    snprintf(f->key, sizeof(f->key), "#%llu", (unsigned long long)h->req);
    msgpack_sbuffer_init(&sb);
    if (wire_hdr_encode(&sb, h) < 0) {
        msgpack_sbuffer_destroy(&sb);
        future_free(f);
        return fail(FORQ_ERR_NOMEM, "out of memory");
    }
    e = enqueue(c, &sb, NULL, 0, false, f);
    msgpack_sbuffer_destroy(&sb);
    if (e != FORQ_OK) {
        future_free(f);
        return e;
    }
    done = wait_done(f, timeout_ms);
    if (!done) {
        pthread_mutex_lock(&c->lock);
        if (f->in_table) {
            HASH_DEL(c->pending, f);
            f->in_table = false;
        }
        pthread_mutex_unlock(&c->lock);
    }
    if (!done) {
        future_free(f);
        return fail(h->cmd == WIRE_PING ? FORQ_ERR_CONNECT : FORQ_ERR_TIMEOUT,
                    "forqd did not answer at %s within %d ms; is it running?", c->endpoint,
                    timeout_ms);
    }
    if (f->reply_cmd == WIRE_ERROR || f->state == FORQ_STATE_LOST) {
        e = fail(f->reply_cmd == WIRE_ERROR ? FORQ_ERR_PROTOCOL : FORQ_ERR_CLOSED, "%s%s%s",
                 f->code ? f->code : "", f->code ? ": " : "", f->detail ? f->detail : "");
        future_free(f);
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
    future_free(f);
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
        return fail(FORQ_ERR_INVALID, "job id must be 1-64 characters of A-Z a-z 0-9 . _ : -");
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
    future_free(f);
    return FORQ_OK;
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
        snprintf(ret_info->task, sizeof(ret_info->task), "%s", f->task ? f->task : "");
        ret_info->attempts = f->attempts;
        ret_info->pid = f->pid;
        ret_info->priority = f->priority;
    }
    future_free(f);
    return FORQ_OK;
}

forq_err_t forq_client_stats(forq_client_t *c, int timeout_ms, void **ret_data, size_t *ret_len)
{
    wire_hdr_t h = {.cmd = WIRE_STATS};
    forq_future_t *f;
    forq_err_t e;

    if (!ret_data || !ret_len)
        return fail(FORQ_ERR_INVALID, "forq_client_stats: ret_data and ret_len are required");
    if ((e = request(c, &h, timeout_ms, &f)) != FORQ_OK)
        return e;
    if (!f->result) {
        future_free(f);
        return fail(FORQ_ERR_PROTOCOL, "forqd's stats reply had no payload");
    }
    *ret_data = f->result;
    *ret_len = f->result_len;
    f->result = NULL;
    future_free(f);
    return FORQ_OK;
}

/* ---- submit ---- */

void forq_submit_opts_init(forq_submit_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->priority = WIRE_PRIORITY_DEF;
}

static uint64_t to_ms(double s)
{
    return s <= 0 ? 0 : (uint64_t)(s * 1000.0 + 0.5) ? (uint64_t)(s * 1000.0 + 0.5) : 1;
}

forq_err_t forq_submit(forq_client_t *c, const char *task, const void *args, size_t args_len,
                       const forq_submit_opts_t *opts, forq_future_t **ret_future)
{
    forq_submit_opts_t defaults;
    msgpack_sbuffer sb;
    wire_err_t werr;
    forq_future_t *f;
    forq_err_t e;

    if (!c || !ret_future)
        return fail(FORQ_ERR_INVALID, "forq_submit: client and ret_future are required");
    if (!opts) {
        forq_submit_opts_init(&defaults);
        opts = &defaults;
    }
    if (!task || !wire_task_is_valid(task, strlen(task)))
        return fail(FORQ_ERR_INVALID,
                    "task name must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    if (opts->id && !id_ok(opts->id))
        return fail(FORQ_ERR_INVALID, "job id must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    if (opts->priority < 0 || opts->priority > WIRE_PRIORITY_MAX)
        return fail(FORQ_ERR_INVALID, "priority must be from 0 to %d", WIRE_PRIORITY_MAX);
    if (opts->retries > WIRE_RETRIES_MAX)
        return fail(FORQ_ERR_INVALID, "retries must be at most %d", WIRE_RETRIES_MAX);
    if (!(opts->timeout >= 0) || !(opts->deadline >= 0))
        return fail(FORQ_ERR_INVALID, "timeout and deadline must not be negative");
    if (!args || wire_check(args, args_len, WIRE_DEPTH_MAX, &werr) < 0)
        return fail(FORQ_ERR_INVALID, "args must be exactly one msgpack value: %s",
                    args ? werr.msg : "args is NULL");
    if (!(f = future_new()))
        return fail(FORQ_ERR_NOMEM, "out of memory");
    if (opts->id) {
        snprintf(f->key, sizeof(f->key), "%s", opts->id);
    } else {
        pthread_mutex_lock(&c->lock);
        uint64_t n = ++c->next_job;
        pthread_mutex_unlock(&c->lock);
        snprintf(f->key, sizeof(f->key), "%s-%llx", c->prefix, (unsigned long long)n);
    }
    wire_hdr_t h = {.cmd = WIRE_SUBMIT,
                    .id = wire_str(f->key),
                    .task = wire_str(task),
                    .timeout_ms = to_ms(opts->timeout),
                    .deadline_ms = to_ms(opts->deadline),
                    .priority = (uint32_t)opts->priority,
                    .has_priority = true,
                    .retries = opts->retries,
                    .max_result = opts->max_result,
                    .as_bytes = opts->max_memory,
                    .cpu_s = opts->max_cpu_seconds};
    msgpack_sbuffer_init(&sb);
    if (wire_hdr_encode(&sb, &h) < 0) {
        msgpack_sbuffer_destroy(&sb);
        future_free(f);
        return fail(FORQ_ERR_NOMEM, "out of memory");
    }
    e = enqueue(c, &sb, args, args_len, true, f);
    msgpack_sbuffer_destroy(&sb);
    if (e != FORQ_OK) {
        future_free(f);
        return e;
    }
    *ret_future = f;
    return FORQ_OK;
}

/* ---- future accessors ---- */

const char *forq_future_id(const forq_future_t *f)
{
    return f ? f->key : NULL;
}

forq_err_t forq_future_wait(forq_future_t *f, int timeout_ms)
{
    if (!f)
        return fail(FORQ_ERR_INVALID, "future is NULL");
    return wait_done(f, timeout_ms) ? FORQ_OK : fail(FORQ_ERR_TIMEOUT, "job %s is not done after %d ms", f->key,
                                 timeout_ms);
}

bool forq_future_done(forq_future_t *f)
{
    return f && wait_done(f, 0);
}

forq_state_t forq_future_state(forq_future_t *f)
{
    return forq_future_done(f) ? f->state : FORQ_STATE_PENDING;
}

forq_err_t forq_future_result(forq_future_t *f, const void **ret_data, size_t *ret_len)
{
    if (!f)
        return fail(FORQ_ERR_INVALID, "future is NULL");
    if (!forq_future_done(f))
        return fail(FORQ_ERR_PENDING, "job %s has no result yet", f->key);
    switch (f->state) {
    case FORQ_STATE_OK:
        if (ret_data)
            *ret_data = f->result;
        if (ret_len)
            *ret_len = f->result_len;
        return FORQ_OK;
    case FORQ_STATE_ERROR: return fail(FORQ_ERR_TASK, "%s: %s", f->etype ? f->etype : "Error",
                                       f->detail ? f->detail : "");
    case FORQ_STATE_CANCELLED: return fail(FORQ_ERR_CANCELLED, "%s", f->detail ? f->detail : "");
    case FORQ_STATE_TIMEOUT: return fail(FORQ_ERR_JOB_TIMEOUT, "%s", f->detail ? f->detail : "");
    case FORQ_STATE_CRASHED: return fail(FORQ_ERR_CRASHED, "%s", f->detail ? f->detail : "");
    case FORQ_STATE_REJECTED: return fail(FORQ_ERR_REJECTED, "%s", f->detail ? f->detail : "");
    default: return fail(FORQ_ERR_LOST, "%s", f->detail ? f->detail : "");
    }
}

const char *forq_future_error_type(forq_future_t *f)
{
    return forq_future_done(f) ? f->etype : NULL;
}

const char *forq_future_detail(forq_future_t *f)
{
    return forq_future_done(f) && f->detail ? f->detail : "";
}

const char *forq_future_code(forq_future_t *f)
{
    return forq_future_done(f) ? f->code : NULL;
}

int forq_future_signal(forq_future_t *f)
{
    return forq_future_done(f) ? f->signal : 0;
}

int forq_future_exit_code(forq_future_t *f)
{
    return forq_future_done(f) ? f->exit_code : -1;
}

unsigned forq_future_attempts(forq_future_t *f)
{
    return forq_future_done(f) ? f->attempts : 0;
}

forq_err_t forq_future_cancel(forq_future_t *f, int timeout_ms, forq_cancel_t *ret_outcome)
{
    forq_client_t *c;

    if (!f)
        return fail(FORQ_ERR_INVALID, "future is NULL");
    pthread_mutex_lock(&f->mu);
    c = f->done ? NULL : f->client;
    pthread_mutex_unlock(&f->mu);
    if (!c) {
        /* already answered: there is nothing left to cancel */
        if (ret_outcome)
            *ret_outcome = FORQ_CANCEL_FINISHED;
        return FORQ_OK;
    }
    return forq_client_cancel(c, f->key, timeout_ms, ret_outcome);
}

void forq_future_destroy(forq_future_t **fp)
{
    forq_future_t *f;
    forq_client_t *c;

    if (!fp || !(f = *fp))
        return;
    *fp = NULL;
    pthread_mutex_lock(&f->mu);
    c = f->client;
    pthread_mutex_unlock(&f->mu);
    if (c) {
        pthread_mutex_lock(&c->lock);
        if (f->in_table)
            HASH_DEL(c->pending, f);
        pthread_mutex_unlock(&c->lock);
    }
    future_free(f);
}
