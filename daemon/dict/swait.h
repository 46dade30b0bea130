/* swait.h - the clients and tasks that wait in a shared type's op: a blocked queue.get (for an
 * item), a queue.put over its maxsize (for room), a lock.acquire (for the lock), an event.wait
 * (for the event). Each waits in the broker, as a record here, in its object's FIFO (the
 * module's list, through prev/next) and in the service's list of all of them (for the limit,
 * and to forget those of a worker that died).
 *
 * A waiter is answered once: by its module when what it waits for comes, or on its timeout
 * (`expired`: the module answers and frees it), or never when its client is gone (the module
 * finds out when it tries to answer: outbox_deliver), its worker died (`dropped`: the module
 * unlinks it, nothing is answered) or its connection withdrew it (<kind>.withdraw naming its
 * req: the module unlinks it and answers the withdraw instead, swaiter_find). A waiter holds what
 * its request carried (a put's item, the lease asked for), never anything taken from the object it
 * waits on: a consumer that disappears while it waits takes nothing with it. */
#ifndef FORQ_DICT_SWAIT_H
#define FORQ_DICT_SWAIT_H

#include "svc.h"
#include "timers.h"

#include <zmq.h>

#define SWAITERS_MAX 10000 /* shared-type waits open at once (besides the dict's own 10000) */

typedef void (*swaiter_fn)(dict_service_t *s, swaiter_t *w);

struct swaiter {
    swaiter_t *prev, *next;         /* in its object's FIFO (the module's) */
    swaiter_t *all_prev, *all_next; /* in the service's list */
    timer_node_t timer;             /* its timeout, when it has one */
    swaiter_fn expired;             /* the timeout came: answer and free it */
    swaiter_fn dropped;             /* its worker died: unlink it from its object */
    void *obj;                      /* the queue, lock or event it waits on */
    wire_hdr_t req;                 /* req/has_req (for the answer), and what the op asked:
                                       front, maxsize, lease_ms, permits (strings not kept) */
    bool has_payload;               /* a put's item */
    zmq_msg_t payload;
    bool delim;        /* the client sends an empty delimiter frame */
    pid_t worker;      /* or: a task waits, in this worker */
    uint16_t who;      /* the identity it acts as */
    uint8_t ident_len; /* its routing id */
    uint8_t ident[255];
};

/* A waiter for the request h from o on obj, its timeout armed when h has one; payload (may be
 * NULL) is moved into it. NULL after answering `too_many_waiters` when SWAITERS_MAX are open. */
swaiter_t *swaiter_new(dict_service_t *s, const origin_t *o, const wire_hdr_t *h,
                       zmq_msg_t *payload, void *obj, swaiter_fn expired, swaiter_fn dropped);
/* Where the waiter's answer goes (borrows from w). */
origin_t swaiter_origin(const swaiter_t *w);
/* A withdraw: the waiter of o's request `of` in `list` (an object's FIFO, through next), or
 * NULL; *ret_other is set when a waiter of another connection (or task) has that req. Scans
 * the object's waiters only. */
swaiter_t *swaiter_find(swaiter_t *list, const origin_t *o, uint64_t of, bool *ret_other);
/* Answer the withdraw h: found:true when it was withdrawn; else `forbidden` when only another
 * connection's request had that req (`other`), else found:false, code "not_waiting" (it was
 * answered, or never waited). `count`: the reply's (the object's items or holders). */
void swaiter_withdraw_answer(dict_service_t *s, const origin_t *o, const wire_hdr_t *h,
                             bool withdrawn, bool other, uint64_t count);
/* Disarm, take out of the service's list, free (its item too, if still there). The module has
 * unlinked it from its object. */
void swaiter_free(dict_service_t *s, swaiter_t *w);
/* A worker died: drop its task's waiters (each `dropped`, then freed), unanswered. */
void swaiters_worker_gone(dict_service_t *s, pid_t pid);
/* The timer kind of the waiters (at the service's start). */
void swaiters_init(dict_service_t *s);
/* forqd stops: free every waiter, unanswered and without its `dropped` (the modules free their
 * objects after, without looking at their lists). */
void swaiters_free_all(dict_service_t *s);

#endif
