/* loop.c - the broker's event loop: registrations polled with zmq_poll, timers from a heap
 * dispatched by kind, per-turn ticks, signals through a signalfd. See loop.h.
 *
 * The poll set is rebuilt each turn from the registrations, sorted by order (a handful of
 * levels: clients, signals, forkservers, and one per worker link). Registrations are kept in an
 * array; one removed during a turn is marked dead and compacted away after the callbacks, so a
 * pointer held by a callback further down the turn never dangles. */
#define _GNU_SOURCE
#include "loop.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <zmq.h>

#define POLL_MAX_MS 60000 /* poll at least this often, whatever the ticks say */
#define KINDS_MAX   8     /* timer kinds (jobs, dict waits, ...) */
#define SIGS_MAX    8     /* signals with a callback */

struct loop_io {
    void *sock;   /* ZeroMQ socket, or NULL for fd */
    int fd;       /* descriptor when sock is NULL */
    short events; /* ZMQ_POLLIN / ZMQ_POLLOUT wanted, 0 = skip for now */
    int order;    /* lower runs first */
    bool dead;    /* removed: skip, free after the turn */
    loop_io_fn fn;
    void *ud;
};

typedef struct {
    loop_tick_fn fn;
    void *ud;
} tick_t;

struct loop {
    loop_io_t **io; /* registrations, owned */
    size_t n_io, cap_io;
    bool has_dead; /* some io is dead: compact after the turn */
    tick_t *ticks; /* in registration order */
    size_t n_ticks;
    timers_t timers; /* armed timer nodes (borrowed) */
    struct {
        loop_timer_fn fn;
        void *ud;
    } kinds[KINDS_MAX];
    uint8_t n_kinds;
    int sigfd; /* -1 until a signal is registered */
    sigset_t sigmask;
    loop_io_t *sig_io;
    struct {
        int signo;
        loop_signal_fn fn;
        void *ud;
    } sigs[SIGS_MAX];
    size_t n_sigs;
    zmq_pollitem_t *items; /* scratch for zmq_poll */
    loop_io_t **item_io;   /* the registration of each item */
    size_t cap_items;
    bool stop;
};

loop_t *loop_new(void)
{
    loop_t *loop = xcalloc(1, sizeof(*loop));

    loop->sigfd = -1;
    sigemptyset(&loop->sigmask);
    loop->n_kinds = 1; /* kind 0: a node nobody registered; never armed */
    return loop;
}

void loop_destroy(loop_t **loopp)
{
    loop_t *loop = *loopp;

    if (!loop)
        return;
    for (size_t i = 0; i < loop->n_io; i++)
        free(loop->io[i]);
    free(loop->io);
    free(loop->ticks);
    free(loop->items);
    free(loop->item_io);
    timers_done(&loop->timers);
    if (loop->sigfd >= 0)
        close(loop->sigfd);
    free(loop);
    *loopp = NULL;
}

loop_io_t *loop_io_add(loop_t *loop, void *sock, int fd, short events, int order, loop_io_fn fn,
                       void *ud)
{
    loop_io_t *io = xcalloc(1, sizeof(*io));

    *io = (loop_io_t){sock, fd, events, order, false, fn, ud};
    if (loop->n_io == loop->cap_io) {
        loop->cap_io = loop->cap_io ? 2 * loop->cap_io : 16;
        loop->io = xrealloc(loop->io, loop->cap_io * sizeof(*loop->io));
    }
    loop->io[loop->n_io++] = io;
    return io;
}

void loop_io_events(loop_io_t *io, short events)
{
    io->events = events;
}

void loop_io_del(loop_t *loop, loop_io_t *io)
{
    if (!io || io->dead)
        return;
    io->dead = true;
    io->events = 0;
    loop->has_dead = true;
}

static void compact(loop_t *loop)
{
    size_t k = 0;

    for (size_t i = 0; i < loop->n_io; i++) {
        if (loop->io[i]->dead)
            free(loop->io[i]);
        else
            loop->io[k++] = loop->io[i];
    }
    loop->n_io = k;
    loop->has_dead = false;
}

void loop_tick_add(loop_t *loop, loop_tick_fn fn, void *ud)
{
    loop->ticks = xrealloc(loop->ticks, (loop->n_ticks + 1) * sizeof(*loop->ticks));
    loop->ticks[loop->n_ticks++] = (tick_t){fn, ud};
}

uint8_t loop_timer_kind(loop_t *loop, loop_timer_fn fn, void *ud)
{
    if (loop->n_kinds == KINDS_MAX) {
        log_error("the event loop has room for %d timer kinds; raise KINDS_MAX", KINDS_MAX);
        abort(); /* a programming error, found by the first test that starts forqd */
    }
    loop->kinds[loop->n_kinds].fn = fn;
    loop->kinds[loop->n_kinds].ud = ud;
    return loop->n_kinds++;
}

void loop_timer_arm(loop_t *loop, timer_node_t *t, uint64_t at)
{
    timers_add(&loop->timers, t, at);
}

void loop_timer_disarm(loop_t *loop, timer_node_t *t)
{
    timers_del(&loop->timers, t);
}

static void on_signalfd(void *ud, short revents)
{
    loop_t *loop = ud;
    struct signalfd_siginfo si;

    (void)revents;
    while (read(loop->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        for (size_t i = 0; i < loop->n_sigs; i++)
            if (loop->sigs[i].signo == (int)si.ssi_signo)
                loop->sigs[i].fn(loop->sigs[i].ud, (int)si.ssi_signo);
}

int loop_signal_add(loop_t *loop, int signo, int order, loop_signal_fn fn, void *ud)
{
    int fd;

    if (loop->n_sigs == SIGS_MAX)
        return -ENOSPC;
    sigaddset(&loop->sigmask, signo);
    fd = signalfd(loop->sigfd, &loop->sigmask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (loop->sigfd < 0) {
        loop->sigfd = fd;
        loop->sig_io = loop_io_add(loop, NULL, fd, ZMQ_POLLIN, order, on_signalfd, loop);
    }
    loop->sigs[loop->n_sigs].signo = signo;
    loop->sigs[loop->n_sigs].fn = fn;
    loop->sigs[loop->n_sigs].ud = ud;
    loop->n_sigs++;
    return 0;
}

void loop_stop(loop_t *loop)
{
    loop->stop = true;
}

static int cmp_order(const void *a, const void *b)
{
    const loop_io_t *x = *(loop_io_t *const *)a, *y = *(loop_io_t *const *)b;
    return (x->order > y->order) - (x->order < y->order);
}

/* The poll set of this turn, lowest order first. Returns the number of items. */
static size_t poll_set(loop_t *loop)
{
    size_t n = 0;

    if (loop->cap_items < loop->n_io) {
        loop->cap_items = loop->n_io + 16;
        loop->items = xrealloc(loop->items, loop->cap_items * sizeof(*loop->items));
        loop->item_io = xrealloc(loop->item_io, loop->cap_items * sizeof(*loop->item_io));
    }
    for (size_t i = 0; i < loop->n_io; i++)
        if (loop->io[i]->events && !loop->io[i]->dead)
            loop->item_io[n++] = loop->io[i];
    /* stable enough: registrations of one order are few kinds of one thing (workers) */
    if (n > 1)
        qsort(loop->item_io, n, sizeof(*loop->item_io), cmp_order);
    for (size_t i = 0; i < n; i++) {
        loop_io_t *io = loop->item_io[i];
        loop->items[i] = (zmq_pollitem_t){io->sock, io->sock ? 0 : io->fd, io->events, 0};
    }
    return n;
}

static void fire_timers(loop_t *loop, uint64_t now)
{
    timer_node_t *t;

    while ((t = timers_peek(&loop->timers)) && t->at <= now) {
        if (t->kind == 0 || t->kind >= loop->n_kinds) {
            timers_del(&loop->timers, t); /* nobody's: a bug, but never a loop that spins */
            continue;
        }
        /* the callback disarms or re-arms it (it may free its owner: t is not touched after) */
        loop->kinds[t->kind].fn(loop->kinds[t->kind].ud, t, now);
    }
}

int loop_run(loop_t *loop)
{
    while (!loop->stop) {
        uint64_t now = now_ms(), at = LOOP_NEVER;
        timer_node_t *t;

        fire_timers(loop, now);
        for (size_t i = 0; i < loop->n_ticks && !loop->stop; i++) {
            uint64_t want = loop->ticks[i].fn(loop->ticks[i].ud, now);
            if (want < at)
                at = want;
        }
        if (loop->stop)
            break;
        if ((t = timers_peek(&loop->timers)) && t->at < at)
            at = t->at;
        int timeout = at == LOOP_NEVER ? -1
                      : at <= now      ? 0
                                       : (int)(at - now > POLL_MAX_MS ? POLL_MAX_MS : at - now);
        size_t n = poll_set(loop);
        if (zmq_poll(loop->items, (int)n, timeout) < 0 && errno != EINTR) {
            int e = errno;
            log_error("zmq_poll failed: %s", zmq_strerror(e));
            return -e;
        }
        for (size_t i = 0; i < n; i++) {
            loop_io_t *io = loop->item_io[i];
            if (loop->items[i].revents && !io->dead)
                io->fn(io->ud, loop->items[i].revents);
        }
        if (loop->has_dead)
            compact(loop);
    }
    return 0;
}
