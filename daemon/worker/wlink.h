/* wlink.h - the link between forqd and one of its local workers.
 *
 * A local worker talks to the broker over an AF_UNIX SOCK_STREAM socketpair that the forkserver
 * makes at fork (its end is passed to the broker with SCM_RIGHTS). The messages are those of
 * PROTOCOL.md section 8 - a header frame and an optional payload frame - framed as
 *
 *     u32 len     little-endian: bytes after this field (4 + header + payload)
 *     u32 hlen    little-endian: header bytes; bit 31 set when a payload frame follows
 *     header      hlen bytes of msgpack (the FJP header)
 *     payload     len - 4 - hlen bytes
 *
 * Why not ZeroMQ here: a ZeroMQ message between two processes passes through an I/O thread on
 * each side, four thread wake-ups per round trip that a socketpair does not have. On this
 * 2-core machine that was most of a job's latency (bench/, README "Performance"). Workers on
 * other machines (scale-out) reach a node's forqd, not the head's broker, so every worker link
 * is local. */
#ifndef FORQ_WLINK_H
#define FORQ_WLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WLINK_PREFIX      8 /* len + hlen */
#define WLINK_HAS_PAYLOAD 0x80000000u
#define WLINK_RBUF        (64 * 1024) /* read-ahead buffer; longer messages get their own */

typedef struct wlink_held wlink_held_t;

typedef struct wlink {
    int fd;
    size_t max;        /* longest message accepted (header + payload) */
    uint8_t *buf;      /* read-ahead, WLINK_RBUF bytes */
    size_t rpos, wpos; /* unread bytes are buf[rpos, wpos) */
    uint8_t *big;      /* body of a message longer than the buffer, being read */
    size_t big_len, big_have;
    wlink_held_t *held, *held_tail; /* messages read early, kept for later (wlink_hold) */
} wlink_t;

/* One message. Its bytes are owned (base != NULL: free(base) when done, or hand them on) or
 * borrowed from the link's buffer (base == NULL: valid until the next wlink_recv()). */
typedef struct {
    void *base;
    const uint8_t *hdr;
    size_t hlen;
    uint8_t *payload;
    size_t plen;
    bool has_payload;
} wlink_msg_t;

/* Set up a link on fd (taken: wlink_done() closes it). Returns 0 or -ENOMEM. */
int wlink_init(wlink_t *l, int fd, size_t max);
void wlink_done(wlink_t *l);

/* Receive one message. timeout_ms: 0 = only what can be read without waiting (a non-blocking fd
 * is expected then), -1 = wait for ever. `own`: always return owned bytes. Returns 1 with *m,
 * 0 if no whole message came in time, -EPIPE at the end of the stream, -EMSGSIZE for a message
 * longer than the link's max, -EBADMSG for a malformed frame, -ENOMEM, or another -errno. */
int wlink_recv(wlink_t *l, int timeout_ms, bool own, wlink_msg_t *m);

/* Keep an owned message read while waiting for another (a worker's task waits for a dict
 * reply; a job sent ahead comes first) to be taken, in order, by wlink_take_held(). */
void wlink_hold(wlink_t *l, const wlink_msg_t *m);
bool wlink_take_held(wlink_t *l, wlink_msg_t *m);

/* The frame prefix of a message. */
void wlink_prefix(uint8_t out[WLINK_PREFIX], size_t hlen, size_t plen, bool has_payload);

/* Send a whole message, waiting for room as long as it takes (the worker's side). Returns 0 or
 * -errno. */
int wlink_send(wlink_t *l, const void *hdr, size_t hlen, const void *payload, size_t plen,
               bool has_payload);

#endif
