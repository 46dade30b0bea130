/* wait.h - the completion queue: futures in the order they finish.
 *
 * One queue serves every "wait for many" of libforq: forq_wait(), the as_completed iterator and
 * unordered maps. Its owner listens on futures (cq_listen); when one is done, the listener puts
 * it on the queue with a reference and wakes the owner, who takes futures off in completion
 * order (cq_pop).
 *
 * Lifetime: a queue is reference-counted - its owner holds one reference and every listener that
 * may still fire holds another - so a listener firing on the I/O thread never touches a queue
 * whose owner is gone. cq_close() is the owner's last word: futures still queued are dropped at
 * once, listeners that fire later find the queue closed and only drop their reference, and the
 * last reference frees it. Listeners the owner takes back (cq_unlisten) never fire.
 *
 * Threads: any thread may fire a listener; cq_pop, cq_listen, cq_unlisten and cq_close are the
 * owner's (one thread at a time). Locks: the queue's own mutex, taken with no future or client
 * lock held, and never held while a future is released. */
#ifndef FORQ_CLIENT_WAIT_H
#define FORQ_CLIENT_WAIT_H

#include "client_int.h"

typedef struct cq cq_t;

/* A new queue with room for `hint` futures before it grows; the caller owns it (cq_close).
 * NULL on out-of-memory. */
cq_t *cq_new(size_t hint);

/* Listen on f: once it is done (at once, in this thread, if it is done already) it goes on the
 * queue. On success *ret_reg is the registration for cq_unlisten(); false on out-of-memory. */
bool cq_listen(cq_t *q, forq_future_t *f, future_listener_t **ret_reg);

/* Take back the registration *reg on f if it has not fired (it then never fires); sets *reg to
 * NULL. Safe on a NULL *reg. Must not be called for a registration whose future was popped
 * already - clear it then instead (the firer freed it). */
void cq_unlisten(cq_t *q, forq_future_t *f, future_listener_t **reg);

/* The next finished future, waiting up to timeout_ms (-1: no limit, 0: just look); NULL if
 * none came in time. The caller owns one reference to it (future_unref). */
forq_future_t *cq_pop(cq_t *q, int timeout_ms);

/* Close the queue: drop the futures on it and the owner's reference. Sets *q to NULL; no-op on
 * NULL. Listeners not taken back keep the memory until they fire. */
void cq_close(cq_t **q);

/* Queues not freed yet, in the whole process (for tests: a queue outlives its listeners only). */
size_t cq_live(void);

#endif
