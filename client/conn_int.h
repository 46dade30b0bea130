/* conn_int.h - what conn.c and health.c share, and nothing else includes: the layout of a
 * client, the few primitives of conn.c's pending table and outgoing queue that health.c acts
 * through, and the few events conn.c hands health.c.
 *
 * The split: conn.c moves messages (sockets and who drives them, the I/O thread, the queue,
 * the table, replies); health.c keeps what the client knows about forqd and what it does when
 * the connection drops or comes back. health.c never touches the socket or its owner: it acts
 * through the primitives below and wakes waiters after resolving futures. It writes the fields
 * under "health.c's"; conn.c sets their first values (conn_new), reads `up` (destroy's linger,
 * the I/O thread's tick), drops `hello` at destroy and notes an unreadable answer in
 * `peer_problem`. `orders` and `orders_while_down` are conn.c's; a handshake clears the latter.
 *
 * Locking is conn.h's and client_int.h's: one client lock guards every field below `lock`. */
#ifndef FORQ_CLIENT_CONN_INT_H
#define FORQ_CLIENT_CONN_INT_H

#include "client_int.h"
#include "dcache.h"

/* A queued message (conn.c): header and payload in one block, freed by ZeroMQ once sent. */
typedef struct outmsg outmsg_t;

enum { OWN_NONE, OWN_IO, OWN_CALLER };

struct forq_client {
    void *zctx;              /* the process's shared ZeroMQ context (shared_ctx_get) */
    void *sock;              /* DEALER, used only by its owner (see the top comment) */
    void *monitor;           /* PAIR receiving the socket's connect/disconnect events */
    pthread_t io;            /* the I/O thread */
    int wake_fd;             /* eventfd: the I/O thread should look again */
    int drive_fd;            /* eventfd: the caller driving the socket should look again */
    int timer_fd;            /* timerfd: hand pending work to the I/O thread */
    pthread_cond_t owner_cv; /* the socket was released, or futures were resolved */
    pthread_mutex_t lock;    /* guards everything below */
    int owner;               /* OWN_NONE, OWN_IO or OWN_CALLER */
    unsigned waiting;        /* threads in conn_wait() waiting for the socket or a result */
    bool io_wanted;          /* a listener waits: give pending work to the I/O thread at once */
    bool timer_armed;
    outmsg_t *out_head, *out_tail; /* messages for the socket's owner to send */
    forq_future_t *pending;        /* futures awaiting a reply, by key */
    bool stopping;                 /* destroy has begun */
    uint64_t next_req;             /* request numbers */
    uint64_t next_job;             /* job id counter */
    char prefix[17];               /* random hex prefix of generated ids */
    char *endpoint;                /* owned */
    size_t max_message;
    int linger_ms;     /* destroy's delivery time for orders (see conn_destroy) */
    int lost_after_ms; /* see forq_client_opts_t */
    /* health.c's: what the monitor (health_monitor_events) and forqd's pongs
     * (health_learn_locked) told */
    bool up;                /* the handshake with the peer succeeded and the link holds */
    bool ever_up;           /* it did once: a later handshake is a reconnection */
    uint64_t down_since;    /* monotonic ms: when the link went down (or the client began) */
    uint64_t session;       /* handshakes so far */
    bool orders;            /* a job, cancel or dict change was ever queued */
    bool orders_while_down; /* one was queued while down, since the last handshake */
    uint64_t max_payload;   /* forqd's payload limit: its pong's, WIRE_PAYLOAD_DEF before */
    bool limits_known;      /* a pong told max_payload */
    uint64_t instance;      /* forqd's instance id from its last pong; 0: not known */
    uint64_t pong_session;  /* the session whose first pong decided `restart` */
    int restart;            /* RESTART_*: what this connection's first pong said */
    forq_future_t *hello;   /* the ping of the last handshake; this client's reference */
    char peer_problem[256]; /* why the peer does not seem to be forqd; "" if nothing seen */
    bool transport_seen;    /* a connection was made, handshake or not */
    bool curve;             /* connecting with CURVE (a server key was given) */
    char auth_problem[320]; /* why forqd refused the handshake, in full; "" if it did not */
    /* the dict cache (dcache.h; its own lock): set at conn_new, freed at destroy */
    dcache_t *dcache;
    bool caching; /* a dict is cached: the I/O thread reads invalidations when nobody else does */
};

/* Is the forqd of this connection the one of the previous connection? */
enum { RESTART_UNKNOWN, RESTART_SAME, RESTART_NEW };

/* ---- conn.c, for health.c ---- */

/* Register f under its key; false if the key is pending already. Client lock held. */
bool conn_table_add(forq_client_t *c, forq_future_t *f);

/* Take f out of the table. Client lock held. */
void conn_table_del(forq_client_t *c, forq_future_t *f);

/* The message h + an optional payload frame (has), copied into one block that the caller owns
 * until conn_queue_locked takes it (free() it otherwise). NULL on out-of-memory. */
outmsg_t *conn_encode(const wire_hdr_t *h, const void *payload, size_t plen, bool has);

/* Put m on the outgoing queue, which takes it (client lock held); returns whether its owner
 * must be poked (conn_poke_locked): the queue was empty. */
bool conn_queue_locked(forq_client_t *c, outmsg_t *m);

/* Tell whoever owns the socket to look again (client lock held). */
void conn_poke_locked(forq_client_t *c);

/* ---- health.c, for conn.c ---- */

/* Read the socket monitor's events (I/O thread only; nothing locked). */
void health_monitor_events(forq_client_t *c);

/* A pong (ours at a handshake, or a caller's ping): learn forqd's limits and instance. Client
 * lock held. */
void health_learn_locked(forq_client_t *c, const wire_hdr_t *h);

/* f, a job fetched again after a reconnection, is unknown to forqd: submit it again or resolve
 * it. Nothing locked; f is referenced (the caller keeps its reference) and out of the table. */
void health_job_unknown(forq_client_t *c, forq_future_t *f);

/* Resolve pending futures LOST (with `why`): all of them (all: the client is being destroyed),
 * or those that waited lost_after_ms on an unreachable forqd. Nothing locked. */
void health_lose_pending(forq_client_t *c, bool all, const char *why);

/* forqd is unreachable and lost_after_ms is set: resolve the futures that waited too long
 * (I/O thread, every LOST_CHECK_MS; nothing locked). */
void health_lose_overdue(forq_client_t *c);

#endif
