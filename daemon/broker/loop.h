/* loop.h - the broker's event loop, as a library: subsystems register their sockets,
 * descriptors, signals, timers and per-turn work with callbacks, and the loop knows none of them
 * (in the spirit of Redis's ae.c).
 *
 * One turn: run every tick in registration order (each does its periodic work and says when it
 * next wants to run), fire the timers that are due, poll every registration (ZeroMQ sockets and
 * plain descriptors alike, through zmq_poll) until the earliest wanted time, then call the
 * callbacks of what is ready, lowest `order` first. A registration removed during a turn (a
 * worker whose exit was reported) is not called again in that turn and freed after it.
 *
 * Timers are nodes embedded in their owners (timers.h); a node's `kind` names the callback that
 * fires it, so a million queued jobs cost no callback pointer each. Single-threaded; nothing
 * here is thread-safe. */
#ifndef FORQ_LOOP_H
#define FORQ_LOOP_H

#include "timers.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct loop loop_t;
typedef struct loop_io loop_io_t;

#define LOOP_NEVER UINT64_MAX /* a tick's answer: no wish to run at any particular time */

/* Ready: revents as zmq_poll sets them (ZMQ_POLLIN, ZMQ_POLLOUT, ZMQ_POLLERR). */
typedef void (*loop_io_fn)(void *ud, short revents);
/* Per-turn work before the poll; returns when it next wants a turn (ms, now_ms() time), or
 * LOOP_NEVER. */
typedef uint64_t (*loop_tick_fn)(void *ud, uint64_t now);
/* A timer of this kind is due; it is still armed: the callback disarms or re-arms it. */
typedef void (*loop_timer_fn)(void *ud, timer_node_t *t, uint64_t now);
typedef void (*loop_signal_fn)(void *ud, int signo);

/* A new loop; the caller owns it (loop_destroy). */
loop_t *loop_new(void);
/* Free the loop and every registration (not the timer nodes, which belong to their owners).
 * Safe twice. */
void loop_destroy(loop_t **loop);

/* Watch a ZeroMQ socket (sock) or a descriptor (fd, with sock NULL) for `events`; `order`
 * decides which ready callbacks run first (lower first). The loop owns the registration. */
loop_io_t *loop_io_add(loop_t *loop, void *sock, int fd, short events, int order, loop_io_fn fn,
                       void *ud);
/* Change what a registration waits for (0: nothing for now). */
void loop_io_events(loop_io_t *io, short events);
/* Remove a registration (the descriptor is not closed). Safe from inside any callback. */
void loop_io_del(loop_t *loop, loop_io_t *io);

/* Run fn at every turn, after the ticks registered before it. */
void loop_tick_add(loop_t *loop, loop_tick_fn fn, void *ud);

/* A kind of timer: returns the value to put in timer_node_t.kind (1..255). */
uint8_t loop_timer_kind(loop_t *loop, loop_timer_fn fn, void *ud);
void loop_timer_arm(loop_t *loop, timer_node_t *t, uint64_t at);
void loop_timer_disarm(loop_t *loop, timer_node_t *t);

/* Call fn when signo arrives. The signal must be blocked in every thread (main.c does it before
 * any thread exists); the loop reads it from one signalfd, whose callbacks run at `order` (that
 * of the first call). 0, or -errno. */
int loop_signal_add(loop_t *loop, int signo, int order, loop_signal_fn fn, void *ud);

/* Turn until loop_stop(). 0 after a stop, -errno if polling failed (logged). */
int loop_run(loop_t *loop);
void loop_stop(loop_t *loop);

#endif
