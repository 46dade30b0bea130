/* linkq.c - see linkq.h. */
#define _GNU_SOURCE
#include "linkq.h"

#include "util.h"
#include "wlink.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define IOV_MAX_PER_WRITE 128

struct linkq_msg {
    linkq_msg_t *next; /* FIFO */
    size_t len, off;   /* bytes in all (prefix, header, payload), bytes written */
    size_t hlen;       /* prefix + header bytes in head */
    zmq_msg_t payload; /* empty when the message has none */
    uint8_t head[];    /* prefix and header */
};

void linkq_push(linkq_t *q, const void *hdr, size_t hlen, zmq_msg_t *payload)
{
    linkq_msg_t *m = xmalloc(sizeof(*m) + WLINK_PREFIX + hlen);
    size_t plen = payload ? zmq_msg_size(payload) : 0;

    m->next = NULL;
    m->hlen = WLINK_PREFIX + hlen;
    m->len = m->hlen + plen;
    m->off = 0;
    wlink_prefix(m->head, hlen, plen, payload != NULL);
    memcpy(m->head + WLINK_PREFIX, hdr, hlen);
    zmq_msg_init(&m->payload);
    if (payload)
        zmq_msg_move(&m->payload, payload);
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
}

static void pop(linkq_t *q)
{
    linkq_msg_t *m = q->head;

    q->head = m->next;
    if (!q->head)
        q->tail = NULL;
    zmq_msg_close(&m->payload);
    free(m);
}

int linkq_flush(linkq_t *q, int fd)
{
    while (q->head) {
        struct iovec iov[IOV_MAX_PER_WRITE];
        struct msghdr mh = {.msg_iov = iov};
        size_t n = 0, want = 0;
        ssize_t k;

        for (linkq_msg_t *m = q->head; m && n + 2 <= IOV_MAX_PER_WRITE; m = m->next) {
            size_t plen = zmq_msg_size(&m->payload);
            uint8_t *pl = zmq_msg_data(&m->payload);
            if (m->off < m->hlen) {
                iov[n++] = (struct iovec){m->head + m->off, m->hlen - m->off};
                if (plen)
                    iov[n++] = (struct iovec){pl, plen};
            } else {
                iov[n++] = (struct iovec){pl + (m->off - m->hlen), m->len - m->off};
            }
            want += m->len - m->off;
        }
        mh.msg_iovlen = n;
        k = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -errno;
        }
        for (size_t left = (size_t)k; left > 0 && q->head;) {
            linkq_msg_t *m = q->head;
            size_t rest = m->len - m->off;
            if (left < rest) {
                m->off += left;
                break;
            }
            left -= rest;
            pop(q);
        }
        if ((size_t)k < want)
            return 0; /* the socket is full: the rest when it is writable */
    }
    return 0;
}

void linkq_clear(linkq_t *q)
{
    while (q->head)
        pop(q);
}
