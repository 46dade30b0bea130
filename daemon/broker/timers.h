/* timers.h - deadlines as a binary min-heap of nodes embedded in their owners (jobs). A node
 * knows its index, so removing one (a job that finished before its deadline) is O(log n). */
#ifndef FORQ_TIMERS_H
#define FORQ_TIMERS_H

#include <stddef.h>
#include <stdint.h>

#define TIMER_IDLE SIZE_MAX

typedef struct {
    uint64_t at;  /* when it fires, in now_ms() time */
    size_t idx;   /* position in the heap, TIMER_IDLE when not armed */
    uint8_t kind; /* which callback fires it (loop_timer_kind()); 0 by default */
} timer_node_t;

typedef struct {
    timer_node_t **v; /* the heap (owned array, borrowed nodes) */
    size_t n, cap;    /* nodes armed, array size */
} timers_t;

void timer_node_init(timer_node_t *t);

/* Arm `t` to fire at `at` (re-arms it if already armed). */
void timers_add(timers_t *h, timer_node_t *t, uint64_t at);

/* Disarm `t`; nothing happens if it is not armed. */
void timers_del(timers_t *h, timer_node_t *t);

/* The earliest armed node, or NULL. */
timer_node_t *timers_peek(const timers_t *h);

/* Free the heap's array (the nodes belong to their owners). */
void timers_done(timers_t *h);

#endif
