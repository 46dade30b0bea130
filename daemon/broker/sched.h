/* sched.h - the job queue: priorities, FIFO within a priority, and round robin between clients
 * inside a priority, so that no client can starve another.
 *
 * Each client owns one lane per priority (a FIFO of items, embedded in its jobs). The scheduler
 * keeps, per priority, a ring of the non-empty lanes. sched_pop() takes the highest priority
 * with work, pops the first item of the lane at the ring's head, and moves that lane to the tail:
 * clients with queued work at the same priority take turns, one job each. All operations are
 * O(1) except the scan of the (ten) priorities. The scheduler owns nothing: items and lanes live
 * in the caller's jobs and clients. */
#ifndef FORQ_SCHED_H
#define FORQ_SCHED_H

#include "wire.h"

#include <stdbool.h>
#include <stddef.h>

#define SCHED_NPRIO (WIRE_PRIORITY_MAX + 1)

typedef struct sched_lane sched_lane_t;

typedef struct sched_item {
    struct sched_item *prev, *next; /* in the lane (utlist DL: head->prev is the tail) */
    sched_lane_t *lane;             /* lane it is queued in, NULL when not queued */
} sched_item_t;

struct sched_lane {
    sched_item_t *items;            /* FIFO of queued items */
    struct sched_lane *prev, *next; /* in its priority's ring while non-empty */
    unsigned prio;                  /* the priority this lane serves */
    size_t len;                     /* items queued */
};

typedef struct {
    sched_lane_t *ring[SCHED_NPRIO]; /* non-empty lanes per priority; head is served next */
    size_t len[SCHED_NPRIO];         /* items queued per priority */
    size_t total;                    /* items queued in all */
} sched_t;

void sched_init(sched_t *s);
void sched_lane_init(sched_lane_t *lane, unsigned prio);

/* Queue `item` in `lane`: at the tail, or at the head when `front` (a retried job). */
void sched_push(sched_t *s, sched_lane_t *lane, sched_item_t *item, bool front);

/* The next item to run, removed from its lane; NULL when nothing is queued. */
sched_item_t *sched_pop(sched_t *s);

/* The item sched_pop() would return, left queued; NULL when nothing is queued. */
sched_item_t *sched_peek(const sched_t *s);

/* Call fn on queued items, highest priority first (within one, client by client in queue
 * order), until it returns false; fn must not change the queue. Returns how many it saw. */
size_t sched_visit(const sched_t *s, bool (*fn)(sched_item_t *item, void *ud), void *ud);

/* Take a queued item to run it, as sched_pop() takes the first: its lane goes to the back of
 * its ring (its client had its turn). For a job found past one that cannot run now. */
void sched_take(sched_t *s, sched_item_t *item);

/* Remove a queued item (cancel, deadline). Does nothing if it is not queued. */
void sched_remove(sched_t *s, sched_item_t *item);

#endif
