/* linkq.h - the broker's queue of messages for one worker link (wlink.h framing): messages
 * wait here and are written many to a write (sendmsg with an iovec per piece, payloads never
 * copied), never blocking: what the socket cannot take waits until it is writable. */
#ifndef FORQ_LINKQ_H
#define FORQ_LINKQ_H

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

typedef struct linkq_msg linkq_msg_t;

typedef struct {
    linkq_msg_t *head, *tail; /* FIFO, owned */
} linkq_t;

/* Queue a header (copied) and a payload (may be NULL; taken: left empty). */
void linkq_push(linkq_t *q, const void *hdr, size_t hlen, zmq_msg_t *payload);
/* Write what fd takes now. 0 when the queue is empty or the socket is full (the rest waits),
 * -errno when the socket failed (the queue is left as it is). */
int linkq_flush(linkq_t *q, int fd);
/* Drop every queued message. */
void linkq_clear(linkq_t *q);

static inline bool linkq_is_empty(const linkq_t *q)
{
    return q->head == NULL;
}

#endif
