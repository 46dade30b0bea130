/* health.c - what a client knows about forqd, and what it does when the connection drops or
 * comes back: forqd's limits and instance (the pong), a restart told from a reconnection, the
 * pending jobs fetched again or resubmitted, futures LOST after lost_after_ms, and why a peer
 * does not answer.
 *
 * How: a socket monitor tells the I/O thread (health_monitor_events) when the connection drops
 * and comes back. After every handshake the client pings forqd without waiting: the pong
 * (health_learn_locked, called on every pong conn.c receives) tells forqd's payload limit
 * (submits and dict values over it are refused locally: ZeroMQ would drop the connection) and
 * its instance id, new at every start. After a reconnection it fetches every pending job again,
 * so a result forqd could not deliver meanwhile still arrives; a job forqd does not know
 * (health_job_unknown) is submitted again (with retries, from the future's own copy of its
 * description) only when the instance changed - forqd restarted - and resolved LOST otherwise,
 * never left hanging. While forqd is unreachable, a future that has waited lost_after_ms
 * resolves LOST (health_lose_overdue, every LOST_CHECK_MS from the I/O thread). What the
 * monitor saw of a peer that is not forqd names it when a ping goes unanswered.
 *
 * Why a file of its own: conn.c moves messages (sockets, owners, the I/O thread, the queue, the
 * table, replies); this file decides what they mean for forqd's health. It acts only through
 * conn.c's table and queue primitives (conn_int.h): it never touches the socket, and conn.c
 * calls it only on a monitor event, a pong, an unknown job after a reconnection, a lost_after
 * tick and destroy.
 *
 * Invariants: every field it keeps lives in struct forq_client under the client lock; a
 * future is resolved with no lock held; the restart verdict (`restart`) is taken from the first
 * pong of each connection (session) only. */
#define _GNU_SOURCE
#include "health.h"

#include "conn.h"
#include "conn_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* ---- pongs and jobs forqd does not know ---- */

/* A pending job forqd does not know after a reconnection. The first pong of the connection
 * said whether forqd restarted (its instance changed):
 * - the same forqd: the job never reached it (its submit was cut off with the connection, for
 *   one larger than forqd accepts before its limits were known) or its result outlived forqd's
 *   --retain limits while we were away. It is not submitted again (it may have run); it is
 *   REJECTED too_large when its args exceed forqd's limit, else LOST, saying which.
 * - a new forqd (or one that does not tell): it lost the job; submit it again if it allows,
 *   else it is LOST.
 * Called with nothing locked; f is referenced and out of the table. */
void health_job_unknown(forq_client_t *c, forq_future_t *f)
{
    outmsg_t *m = NULL;
    uint64_t limit;
    int restart;
    char why[400];

    pthread_mutex_lock(&c->lock);
    restart = c->restart;
    limit = c->max_payload;
    pthread_mutex_unlock(&c->lock);
    if (f->args_len > limit) {
        snprintf(why, sizeof(why),
                 "the args are %zu bytes, more than the %llu forqd at %s accepts (its "
                 "--max-payload): it dropped the connection; send smaller arguments",
                 f->args_len, (unsigned long long)limit, c->endpoint);
        future_resolve_local(f, FORQ_STATE_REJECTED, "too_large", why);
        return;
    }
    if (restart == RESTART_SAME) {
        snprintf(why, sizeof(why),
                 "forqd at %s did not restart but does not know this job: its submit was cut "
                 "off when the connection dropped, or its result expired (forqd's --retain) "
                 "while this client was away; its outcome is unknown",
                 c->endpoint);
        future_resolve_local(f, FORQ_STATE_LOST, NULL, why);
        return;
    }
    if (f->opts.retries > 0 && f->args) {
        wire_hdr_t h;
        f->opts.retries--;
        future_submit_hdr(f, &h);
        m = conn_encode(&h, f->args, f->args_len, true);
    }
    pthread_mutex_lock(&c->lock);
    if (m && !c->stopping && conn_table_add(c, f)) {
        f->refetching = false;
        if (conn_queue_locked(c, m))
            conn_poke_locked(c);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    pthread_mutex_unlock(&c->lock);
    free(m);
    future_resolve_local(f, FORQ_STATE_LOST, NULL,
                         restart == RESTART_NEW
                             ? "forqd restarted (a new instance) and lost this job, which allows "
                               "no more retries"
                             : "forqd does not know this job after a reconnection (it restarted, "
                               "or lost it); the job allows no more retries");
}

/* A pong (ours at a handshake, or a caller's ping): forqd's limits, and whether this connection
 * reaches the forqd of the previous one. Only the first pong of a connection decides that: the
 * pongs that follow are the same forqd's. Client lock held. */
void health_learn_locked(forq_client_t *c, const wire_hdr_t *h)
{
    if (h->max_payload) {
        c->max_payload = h->max_payload;
        c->limits_known = true;
    }
    if (c->pong_session != c->session) {
        c->pong_session = c->session;
        c->restart = !h->instance || !c->instance ? RESTART_UNKNOWN
                     : h->instance == c->instance ? RESTART_SAME
                                                  : RESTART_NEW;
    }
    if (h->instance)
        c->instance = h->instance;
}

/* ---- the connection drops and comes back ---- */

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
        outmsg_t *m = conn_encode(&h, NULL, 0, false);
        if (!m)
            continue;
        f->refetching = true;
        poke |= conn_queue_locked(c, m);
    }
    if (poke)
        conn_poke_locked(c);
    pthread_mutex_unlock(&c->lock);
}

/* Resolve pending futures LOST: all of them (the client is destroyed), or (all false) those
 * that have waited on an unreachable forqd for lost_after_ms - counted from when forqd went
 * down, or from when the future began to wait if that was later. */
void health_lose_pending(forq_client_t *c, bool all, const char *why)
{
    forq_future_t *f, *tmp, **lost;
    uint64_t now = util_mono_ms();
    size_t n = 0;

    pthread_mutex_lock(&c->lock);
    lost = calloc(HASH_COUNT(c->pending) + 1, sizeof(*lost));
    if (!lost) {
        pthread_mutex_unlock(&c->lock);
        abort(); /* no memory to keep the exactly-once promise */
    }
    HASH_ITER(hh, c->pending, f, tmp)
    {
        uint64_t since = f->pending_since > c->down_since ? f->pending_since : c->down_since;
        if (!all && (c->up || now - since < (uint64_t)c->lost_after_ms))
            continue;
        future_ref(f);
        conn_table_del(c, f);
        lost[n++] = f;
    }
    pthread_mutex_unlock(&c->lock);
    /* resolved without the lock: their callbacks may call into the client */
    for (size_t i = 0; i < n; i++) {
        future_resolve_local(lost[i], FORQ_STATE_LOST, NULL, why);
        future_unref(lost[i]);
    }
    free(lost);
    if (!n)
        return;
    /* and the waiters look again */
    pthread_mutex_lock(&c->lock);
    pthread_cond_broadcast(&c->owner_cv);
    if (c->owner == OWN_CALLER)
        util_fd_signal(c->drive_fd);
    pthread_mutex_unlock(&c->lock);
}

/* The I/O thread's tick while forqd is unreachable: lose what waited lost_after_ms. */
void health_lose_overdue(forq_client_t *c)
{
    char why[300];
    snprintf(why, sizeof(why),
             "forqd at %s stayed unreachable for %g s (lost_after_ms; forq "
             "--lost-after): the job's outcome is unknown",
             c->endpoint, c->lost_after_ms / 1000.0);
    health_lose_pending(c, false, why);
}

/* After a handshake: ask forqd for its limits and instance (a ping; its pong is read like any
 * reply, health_learn_locked). The future keeps the socket's owner reading until the pong is there.
 */
static void say_hello(forq_client_t *c)
{
    forq_future_t *f = future_new(), *old = NULL;
    outmsg_t *m = NULL;

    if (f) {
        wire_hdr_t h = {.cmd = WIRE_PING, .has_req = true, .req = conn_next_req(c)};
        f->is_request = true;
        snprintf(f->key, sizeof(f->key), "#%llu", (unsigned long long)h.req);
        m = conn_encode(&h, NULL, 0, false);
    }
    pthread_mutex_lock(&c->lock);
    if (m && !c->stopping && conn_table_add(c, f)) {
        if (conn_queue_locked(c, m))
            conn_poke_locked(c);
        m = NULL;
        old = c->hello;
        c->hello = f;
        f = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    free(m); /* not sent: the limits stay as they are */
    if (f)
        future_unref(f);
    if (old)
        future_unref(old);
}

/* Read the monitor's events (I/O thread). A handshake makes the link up: say hello, and on a
 * reconnection ask forqd about every pending job. A handshake that fails on the protocol means
 * the peer is not a forqd (another kind of ZeroMQ socket, or not ZeroMQ at all), and so does a
 * connection that never completes one: kept to name it when a ping goes unanswered. */
void health_monitor_events(forq_client_t *c)
{
    for (;;) {
        zmq_msg_t ev, addr;
        uint16_t event;
        uint32_t value = 0;
        bool again;

        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, c->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        zmq_msg_init(&addr);
        zmq_msg_recv(&addr, c->monitor, 0);
        memcpy(&event, zmq_msg_data(&ev), sizeof(event));
        if (zmq_msg_size(&ev) >= sizeof(event) + sizeof(value))
            memcpy(&value, (char *)zmq_msg_data(&ev) + sizeof(event), sizeof(value));
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
        pthread_mutex_lock(&c->lock);
        switch (event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            again = c->ever_up;
            c->up = c->ever_up = true;
            c->orders_while_down = false; /* they go now */
            c->session++;
            c->peer_problem[0] = '\0';
            c->auth_problem[0] = '\0';
            pthread_mutex_unlock(&c->lock);
            say_hello(c);
            if (again)
                refetch_all(c);
            continue;
        case ZMQ_EVENT_DISCONNECTED:
            if (c->up) {
                c->up = false;
                c->down_since = util_mono_ms();
            }
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
                snprintf(c->auth_problem, sizeof(c->auth_problem),
                         c->curve ? "forqd at %s does not use CURVE on this endpoint: connect "
                                    "without a server key (--server-key, $FORQ_SERVER_KEY)"
                                  : "forqd at %s requires CURVE: give its public key with "
                                    "--server-key ($FORQ_SERVER_KEY; forqd --show-key prints "
                                    "it) and your key pair with --key ($FORQ_KEY)",
                         c->endpoint);
                break;
            }
            if (c->curve && (value & 0xF0000000u) == ZMQ_PROTOCOL_ERROR_ZMTP_UNSPECIFIED) {
                snprintf(c->auth_problem, sizeof(c->auth_problem),
                         "the CURVE handshake with forqd at %s failed: is the server key you "
                         "gave forqd's (forqd --show-key prints it)?",
                         c->endpoint);
                break;
            }
            snprintf(c->peer_problem, sizeof(c->peer_problem),
                     "the ZeroMQ handshake failed (protocol error 0x%x: another kind of ZeroMQ "
                     "socket, or not ZeroMQ)",
                     (unsigned)value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            snprintf(c->auth_problem, sizeof(c->auth_problem),
                     "authentication refused by forqd at %s: is your public key in its clients "
                     "file? (forq keygen prints it; the operator adds a line for it)",
                     c->endpoint);
            break;
        case ZMQ_EVENT_CONNECTED:
            c->transport_seen = true; /* a handshake failing for want of a peer is no sign */
            break;
        default:
            break;
        }
        if (c->auth_problem[0] && !c->ever_up) {
            /* refused before it ever connected: nothing will be answered; waiters hear it now
             * (conn_wait, drive), not when their time is up */
            pthread_cond_broadcast(&c->owner_cv);
            util_fd_signal(c->drive_fd);
        }
        pthread_mutex_unlock(&c->lock);
    }
}

/* ---- what the rest of the library asks ---- */

uint64_t health_max_payload(forq_client_t *c, bool *ret_known)
{
    pthread_mutex_lock(&c->lock);
    uint64_t limit = c->max_payload;
    if (ret_known)
        *ret_known = c->limits_known;
    pthread_mutex_unlock(&c->lock);
    return limit;
}

forq_err_t health_check_payload(forq_client_t *c, const char *what, size_t len)
{
    bool known;
    uint64_t limit = health_max_payload(c, &known);

    if (len <= limit)
        return FORQ_OK;
    return errors_fail(FORQ_ERR_INVALID,
                       "too_large: %s is %zu bytes, more than the %llu %s; send less, or pass a "
                       "file path or dict key in its place",
                       what, len, (unsigned long long)limit,
                       known ? "forqd accepts (its --max-payload)"
                             : "forqd accepts by default (its own limit is not known yet)");
}

int64_t health_unreachable_ms(forq_client_t *c)
{
    int64_t ms = 0;

    pthread_mutex_lock(&c->lock);
    if (!c->up) {
        ms = (int64_t)(util_mono_ms() - c->down_since);
        if (ms < 1)
            ms = 1; /* down: never 0 */
    }
    pthread_mutex_unlock(&c->lock);
    return ms;
}

bool health_refused_first_locked(const forq_client_t *c)
{
    return c->auth_problem[0] != '\0' && !c->ever_up;
}

bool health_refused(forq_client_t *c)
{
    pthread_mutex_lock(&c->lock);
    bool r = c->auth_problem[0] != '\0';
    pthread_mutex_unlock(&c->lock);
    return r;
}

void health_why_silent(forq_client_t *c, int timeout_ms, char *buf, size_t size)
{
    pthread_mutex_lock(&c->lock);
    if (c->auth_problem[0])
        snprintf(buf, size, "%s", c->auth_problem);
    else if (c->curve && c->transport_seen && !c->ever_up)
        snprintf(buf, size,
                 "the CURVE handshake with forqd at %s did not complete in %d ms: is the server "
                 "key you gave forqd's (forqd --show-key prints it), and is your key in its "
                 "clients file?",
                 c->endpoint, timeout_ms);
    else if (c->peer_problem[0])
        snprintf(buf, size,
                 "the peer at %s is not forqd: %s; check the endpoint (-e, "
                 "$FORQ_ENDPOINT)",
                 c->endpoint, c->peer_problem);
    else if (c->up)
        snprintf(buf, size,
                 "a ZeroMQ peer at %s took the connection but did not answer a ping "
                 "within %d ms: it is not forqd, or forqd is stuck",
                 c->endpoint, timeout_ms);
    else if (c->transport_seen && !c->ever_up)
        snprintf(buf, size,
                 "the peer at %s is not forqd: it takes connections but did not "
                 "complete ZeroMQ's handshake in %d ms; check the endpoint (-e, "
                 "$FORQ_ENDPOINT)",
                 c->endpoint, timeout_ms);
    else
        snprintf(buf, size,
                 "no forqd at %s: nothing answered within %d ms; is forqd running, and "
                 "is this its endpoint (-e, $FORQ_ENDPOINT)?",
                 c->endpoint, timeout_ms);
    pthread_mutex_unlock(&c->lock);
}
