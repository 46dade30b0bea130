/* broker.h - forqd's broker: one thread around one zmq_poll loop that owns the job table, the
 * queue, the worker pool and the timers, and answers every accepted job exactly once. */
#ifndef FORQ_BROKER_H
#define FORQ_BROKER_H

#include "config.h"

#include <sys/types.h>

typedef struct broker broker_t;

/* Run the broker until SIGTERM/SIGINT has drained it. The forkserver (pid, channel) must have
 * been started already; the signals TERM, INT, HUP and CHLD must be blocked in every thread.
 * Returns the process exit status: 0 after a clean stop, 1 on a start-up error (printed). */
int broker_run(const config_t *cfg, pid_t fs_pid, int fs_fd);

#endif
