/* fuzz_wlink.c - libFuzzer harness for the worker-link framing (wlink.h): the input is the byte
 * stream a worker writes on its socketpair. It goes in, in pieces, through a real socketpair;
 * the broker's side reads messages until an error or the end of the stream, as the broker does.
 *
 * Checked against a reference reading of the framing written from wlink.h's description: the
 * same messages (header, payload, flag, bytes), then the same ending (-EPIPE at the end of the
 * stream, -EBADMSG, -EMSGSIZE). Owned and borrowed messages alternate, and some owned ones are
 * held and taken back (wlink_hold), so that every path frees what it should under LeakSanitizer.
 */
#define _GNU_SOURCE
#include "wlink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX   (256 * 1024) /* longest message the link accepts */
#define PIECE 1021         /* bytes written between reads: frames arrive cut anywhere */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The reference: the next message of data[*off..size) per wlink.h, or how the stream ends. */
typedef struct {
    int rc; /* 1: a message; else the -errno wlink_recv must return */
    const uint8_t *hdr, *payload;
    size_t hlen, plen;
    int has_payload;
} expect_t;

static expect_t reference_next(const uint8_t *data, size_t size, size_t *off)
{
    expect_t e = {0};
    size_t left = size - *off;

    if (left < 4)
        return (expect_t){.rc = -EPIPE};
    uint32_t len = le32(data + *off);
    if (len < 4)
        return (expect_t){.rc = -EBADMSG};
    if (len > (uint64_t)MAX + 4)
        return (expect_t){.rc = -EMSGSIZE};
    if (left - 4 < len)
        return (expect_t){.rc = -EPIPE}; /* the stream ends inside the message */
    const uint8_t *body = data + *off + 4;
    uint32_t word = le32(body);
    size_t hlen = word & ~WLINK_HAS_PAYLOAD;
    int has_payload = (word & WLINK_HAS_PAYLOAD) != 0;
    if (hlen > len - 4 || (!has_payload && hlen != len - 4))
        return (expect_t){.rc = -EBADMSG};
    e.rc = 1;
    e.hdr = body + 4;
    e.hlen = hlen;
    e.payload = body + 4 + hlen;
    e.plen = len - 4 - hlen;
    e.has_payload = has_payload;
    *off += 4 + len;
    return e;
}

typedef struct {
    const uint8_t *data;
    size_t size, off; /* the reference's position */
    unsigned n;       /* messages so far */
    int ended;        /* wlink_recv returned an error: the link is dropped */
} run_t;

/* Compare one result of wlink_recv with the reference. */
static void check(run_t *r, wlink_t *l, int rc, wlink_msg_t *m)
{
    expect_t e;

    if (rc == 0)
        return; /* no whole message yet */
    e = reference_next(r->data, r->size, &r->off);
    if (rc != e.rc)
        abort();
    if (rc < 0) {
        r->ended = 1;
        return;
    }
    if (m->hlen != e.hlen || m->plen != e.plen || (int)m->has_payload != e.has_payload ||
        memcmp(m->hdr, e.hdr, e.hlen) != 0 || (e.plen && memcmp(m->payload, e.payload, e.plen)))
        abort();
    if (!m->has_payload && m->plen != 0)
        abort();
    if (m->base && r->n % 3 == 0)
        wlink_hold(l, m); /* taken back (and freed) at the end */
    else
        free(m->base);
    r->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_t r = {data, size, 0, 0, 0};
    wlink_t l;
    wlink_msg_t m;
    int sv[2], rc;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    if (wlink_init(&l, sv[0], MAX) != 0)
        abort();
    /* write a piece, then read every whole message it completes, as the broker's loop does */
    for (size_t at = 0; at < size && !r.ended; at += PIECE) {
        size_t n = size - at < PIECE ? size - at : PIECE;
        if (write(sv[1], data + at, n) != (ssize_t)n)
            abort(); /* the reader drains everything it is given: there is always room */
        while (!r.ended && (rc = wlink_recv(&l, 0, r.n & 1, &m)) != 0)
            check(&r, &l, rc, &m);
    }
    /* the worker goes away: what is left, then the end of the stream */
    close(sv[1]);
    while (!r.ended) {
        rc = wlink_recv(&l, -1, r.n & 1, &m);
        if (rc == 0)
            abort(); /* no timeout was asked for */
        check(&r, &l, rc, &m);
    }
    while (wlink_take_held(&l, &m))
        free(m.base);
    wlink_done(&l);
    return 0;
}
