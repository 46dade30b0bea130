/* listen.c - the client socket: a ROUTER bound to every --listen endpoint (rebound in place
 * by a reload), read in bounded batches; each message's header is decoded here and handed to
 * commands.c. Payload frames are not decoded: they pass only the allocation-free structural
 * check of wire_check() where a command takes them. */
#define _GNU_SOURCE
#include "broker_int.h"

#include "access.h"
#include "conncap.h"
#include "log.h"
#include "outbox.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FRAMES 5 /* identity, delimiter, header, payload, and one to spot extras */

struct listener {
    broker_t *b;
    void *zctx;              /* the broker's ZeroMQ context */
    void *sock;              /* ROUTER bound to cfg->listen */
    msgpack_zone zone;       /* scratch for header decoding */
    uint64_t refused_logged; /* conncap_refused() when last logged */
    uint64_t log_after;      /* no refusal logged before then (ms) */
};

/* Descriptors kept out of the connection cap: per worker its link and what spawning one opens,
 * and a margin for the dict log, its compaction, a reload's files and ZeroMQ's own. */
static unsigned fd_reserve(const config_t *cfg)
{
    return 64u + 4u * (unsigned)cfg->workers;
}

/* Refused connections are logged at most once a minute, with the count since the last line. */
static uint64_t log_refusals(void *ud, uint64_t now)
{
    listener_t *l = ud;
    uint64_t n = conncap_refused();

    if (n == l->refused_logged)
        return LOOP_NEVER;
    if (now < l->log_after)
        return l->log_after;
    log_warn("refused %" PRIu64 " client connection%s: forqd keeps its descriptors below %ld "
             "(the open-file limit less %u for workers and files); raise LimitNOFILE= or "
             "ulimit -n, or use fewer connections",
             n - l->refused_logged, n - l->refused_logged == 1 ? "" : "s", conncap_ceiling(),
             fd_reserve(l->b->cfg));
    l->refused_logged = n;
    l->log_after = now + 60000;
    return LOOP_NEVER;
}

static void close_frames(zmq_msg_t *f, int n)
{
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

/* Read one multipart message into f (extra frames are read and dropped). Returns the number of
 * frames kept, -1 if there was none, or -2 - kept when frames were dropped. */
static int recv_multipart(void *sock, zmq_msg_t *f, int max)
{
    int n = 0, more = 1;
    size_t ml = sizeof(more);
    bool extra = false;

    zmq_msg_init(&f[0]);
    if (zmq_msg_recv(&f[0], sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f[0]);
        return -1;
    }
    n = 1;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
        if (n < max) {
            zmq_msg_init(&f[n]);
            zmq_msg_recv(&f[n], sock, 0);
            n++;
        } else {
            zmq_msg_t junk;
            zmq_msg_init(&junk);
            zmq_msg_recv(&junk, sock, 0);
            zmq_msg_close(&junk);
            extra = true;
        }
    }
    return extra ? -2 - n : n;
}

/* One message from a client; false when there was none. */
static bool client_input(listener_t *l)
{
    zmq_msg_t f[MAX_FRAMES];
    int n = recv_multipart(l->sock, f, MAX_FRAMES), first = 1;
    bool too_many = false;
    origin_t o = {0};
    wire_hdr_t h;
    wire_err_t err;

    if (n == -1)
        return false;
    if (n < -1) {
        n = -2 - n;
        too_many = true;
    }
    o.ident = zmq_msg_data(&f[0]);
    o.ilen = zmq_msg_size(&f[0]);
    o.delim = n > 1 && zmq_msg_size(&f[1]) == 0;
    if (o.delim)
        first = 2;
    o.who = access_who(l->b->access, &f[first < n ? first : 0]);
    if (first >= n) {
        outbox_error(l->b->out, &o, NULL, "bad_frames", "message has no header frame");
    } else {
        msgpack_zone_clear(&l->zone);
        if (wire_hdr_decode(zmq_msg_data(&f[first]), zmq_msg_size(&f[first]), &l->zone, &h, &err) <
            0)
            commands_malformed(l->b, &o, &h, &err);
        else
            commands_handle(l->b, &o, &h, n - first - 1 + (too_many ? 1 : 0),
                            first + 1 < n ? &f[first + 1] : NULL);
    }
    close_frames(f, n);
    return true;
}

static void on_readable(void *ud, short revents)
{
    listener_t *l = ud;

    (void)revents;
    for (int i = 0; i < BROKER_BATCH && client_input(l); i++)
        ;
}

/* Refuse to steal the ipc endpoint of a forqd that is alive: zmq would unlink its socket. */
static int ipc_in_use(const char *ep)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const char *path = ep + 6;
    int fd, r;

    if (strncmp(ep, "ipc://", 6) != 0 || strlen(path) >= sizeof(sa.sun_path))
        return 0;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    return r == 0;
}

listener_t *listener_new(broker_t *b)
{
    listener_t *l = xcalloc(1, sizeof(*l));

    l->b = b;
    msgpack_zone_init(&l->zone, 4096);
    return l;
}

void *listener_socket(listener_t *l)
{
    return l->sock;
}

void *listener_context(listener_t *l)
{
    return l->zctx;
}

int listener_bind(listener_t *l)
{
    const config_t *cfg = l->b->cfg;
    int one = 1, hwm = (int)cfg->client_hwm, rcvhwm = 100000, linger = 2000, r;
    int64_t maxmsg = cfg->max_payload + WIRE_HEADER_MAX;

    conncap_arm(fd_reserve(cfg)); /* before libzmq's I/O thread exists */
    if (!(l->zctx = zmq_ctx_new()))
        return -errno;
    if ((r = access_start(l->b->access, l->zctx)) < 0)
        return r;
    l->sock = zmq_socket(l->zctx, ZMQ_ROUTER);
    zmq_setsockopt(l->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
    /* a client that reconnects with its routing id while its old connection is not yet seen
     * gone (a half-open TCP connection) takes the id over, rather than going unanswered */
    zmq_setsockopt(l->sock, ZMQ_ROUTER_HANDOVER, &one, sizeof(one));
    zmq_setsockopt(l->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(l->sock, ZMQ_RCVHWM, &rcvhwm, sizeof(rcvhwm));
    zmq_setsockopt(l->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
    zmq_setsockopt(l->sock, ZMQ_LINGER, &linger, sizeof(linger));
    for (size_t i = 0; i < cfg->listen.n; i++) {
        const char *ep = cfg->listen.items[i];
        if (ipc_in_use(ep)) {
            fprintf(stderr,
                    "forqd: %s is in use by a running forqd; stop it or choose another "
                    "endpoint with --listen\n",
                    ep);
            return -EADDRINUSE;
        }
        access_bind_options(l->b->access, l->sock, ep);
        if (zmq_bind(l->sock, ep) < 0) {
            fprintf(stderr, "forqd: cannot listen on %s: %s\n", ep, zmq_strerror(errno));
            return -errno;
        }
        if ((r = access_secure_ipc(l->b->access, ep)) < 0)
            return r;
    }
    access_watch(l->b->access, l->sock);
    outbox_set_socket(l->b->out, l->sock);
    loop_io_add(l->b->loop, l->sock, -1, ZMQ_POLLIN, ORDER_CLIENTS, on_readable, l);
    loop_tick_add(l->b->loop, log_refusals, l);
    return 0;
}

static bool listed(const strv_t *v, const char *s)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->items[i], s) == 0)
            return true;
    return false;
}

int listener_rebind(listener_t *l, const config_t *next)
{
    const strv_t *old = &l->b->cfg->listen, *now = &next->listen;
    size_t bound = 0;
    int r = 0;

    for (; bound < now->n; bound++) {
        const char *ep = now->items[bound];
        if (listed(old, ep))
            continue;
        access_bind_options(l->b->access, l->sock, ep);
        if (ipc_in_use(ep) || zmq_bind(l->sock, ep) < 0) {
            r = errno ? -errno : -EADDRINUSE;
            log_error("reload: cannot listen on %s: %s", ep,
                      ipc_in_use(ep) ? "another forqd uses it" : zmq_strerror(errno));
            break;
        }
        access_secure_ipc(l->b->access, ep);
        log_notice("reload: now listening on %s too", ep);
    }
    conncap_arm(fd_reserve(next));
    if (r < 0) { /* undo: the old configuration stays whole */
        for (size_t i = 0; i < bound; i++)
            if (!listed(old, now->items[i]))
                zmq_unbind(l->sock, now->items[i]);
        return r;
    }
    for (size_t i = 0; i < old->n; i++) {
        if (!listed(now, old->items[i])) {
            zmq_unbind(l->sock, old->items[i]);
            log_notice("reload: no longer listening on %s", old->items[i]);
        }
    }
    return 0;
}

void listener_destroy(listener_t **lp)
{
    listener_t *l = *lp;

    if (!l)
        return;
    msgpack_zone_destroy(&l->zone);
    if (l->sock)
        zmq_close(l->sock);
    if (l->zctx)
        zmq_ctx_term(l->zctx);
    free(l);
    *lp = NULL;
}
