/* util.h - libforq's small helpers, written once: clocks, condition variables, eventfds.
 *
 * Every wait in the library measures time on CLOCK_MONOTONIC, so that a change of the wall
 * clock neither shortens nor stretches a timeout: deadlines are monotonic milliseconds or
 * monotonic timespecs, and every condition variable is created on that clock (util_cond_init)
 * so that pthread_cond_timedwait() reads the same clock as the deadline. */
#ifndef FORQ_CLIENT_UTIL_H
#define FORQ_CLIENT_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

/* Monotonic time in milliseconds. */
static inline uint64_t util_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The monotonic instant timeout_ms (>= 0) from now, for pthread_cond_timedwait(). */
static inline void util_deadline(int64_t timeout_ms, struct timespec *ret_until)
{
    clock_gettime(CLOCK_MONOTONIC, ret_until);
    ret_until->tv_sec += (time_t)(timeout_ms / 1000);
    ret_until->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ret_until->tv_nsec >= 1000000000L) {
        ret_until->tv_sec++;
        ret_until->tv_nsec -= 1000000000L;
    }
}

/* Initialise a condition variable whose timed waits read CLOCK_MONOTONIC. */
static inline void util_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &ca);
    pthread_condattr_destroy(&ca);
}

/* Wait on cond (mu held) until signalled or `until` (NULL: no limit) passes. Returns false when
 * the deadline passed. Callers loop on their own predicate. */
static inline bool util_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mu,
                                  const struct timespec *until)
{
    if (!until) {
        pthread_cond_wait(cond, mu);
        return true;
    }
    return pthread_cond_timedwait(cond, mu, until) != ETIMEDOUT;
}

/* Wake whoever reads the eventfd `fd`. */
static inline void util_fd_signal(int fd)
{
    uint64_t one = 1;
    if (write(fd, &one, sizeof(one)) < 0) {
        /* the counter is saturated: its reader is awake anyway */
    }
}

/* Consume an eventfd's or timerfd's count (non-blocking). */
static inline void util_fd_drain(int fd)
{
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0) {
        /* nothing to read: another wake-up already consumed it */
    }
}

#endif
