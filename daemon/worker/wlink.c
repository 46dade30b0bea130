/* wlink.c - see wlink.h. */
#define _GNU_SOURCE
#include "wlink.h"

#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int wlink_init(wlink_t *l, int fd, size_t max)
{
    memset(l, 0, sizeof(*l));
    l->fd = fd;
    l->max = max;
    l->buf = malloc(WLINK_RBUF);
    return l->buf ? 0 : -ENOMEM;
}

struct wlink_held {
    wlink_held_t *next;
    wlink_msg_t m;
};

void wlink_hold(wlink_t *l, const wlink_msg_t *m)
{
    wlink_held_t *h = malloc(sizeof(*h));

    if (!h) {
        free(m->base); /* out of memory: the message is lost, as if never sent */
        return;
    }
    h->next = NULL;
    h->m = *m;
    if (l->held_tail)
        l->held_tail->next = h;
    else
        l->held = h;
    l->held_tail = h;
}

bool wlink_take_held(wlink_t *l, wlink_msg_t *m)
{
    wlink_held_t *h = l->held;

    if (!h)
        return false;
    l->held = h->next;
    if (!l->held)
        l->held_tail = NULL;
    *m = h->m;
    free(h);
    return true;
}

void wlink_done(wlink_t *l)
{
    wlink_msg_t m;

    while (wlink_take_held(l, &m))
        free(m.base);
    if (l->fd >= 0)
        close(l->fd);
    free(l->buf);
    free(l->big);
    memset(l, 0, sizeof(*l));
    l->fd = -1;
}

void wlink_prefix(uint8_t out[WLINK_PREFIX], size_t hlen, size_t plen, bool has_payload)
{
    put_le32(out, (uint32_t)(4 + hlen + plen));
    put_le32(out + 4, (uint32_t)hlen | (has_payload ? WLINK_HAS_PAYLOAD : 0));
}

/* Split a message body (after the length field) into header and payload. */
static int parse(uint8_t *body, size_t len, void *base, wlink_msg_t *m)
{
    uint32_t word = get_le32(body);
    size_t hlen = word & ~WLINK_HAS_PAYLOAD;

    if (hlen > len - 4 || (!(word & WLINK_HAS_PAYLOAD) && hlen != len - 4))
        return -EBADMSG;
    m->base = base;
    m->hdr = body + 4;
    m->hlen = hlen;
    m->has_payload = (word & WLINK_HAS_PAYLOAD) != 0;
    m->payload = body + 4 + hlen;
    m->plen = len - 4 - hlen;
    return 1;
}

/* Wait until fd is readable or the deadline passes. 1, 0 on timeout, -errno. */
static int wait_readable(int fd, int timeout_ms, uint64_t deadline)
{
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = -1, r;

        if (timeout_ms > 0) {
            uint64_t now = now_ms();
            if (now >= deadline)
                return 0;
            left = (int)(deadline - now);
        }
        if ((r = poll(&p, 1, left)) >= 0)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}

int wlink_recv(wlink_t *l, int timeout_ms, bool own, wlink_msg_t *m)
{
    uint64_t deadline = timeout_ms > 0 ? now_ms() + (uint64_t)timeout_ms : 0;

    for (;;) {
        uint8_t *dst;
        size_t room;

        if (l->big) {
            if (l->big_have == l->big_len) {
                uint8_t *body = l->big;
                int r;
                l->big = NULL;
                if ((r = parse(body, l->big_len, body, m)) < 0)
                    free(body);
                return r;
            }
            dst = l->big + l->big_have;
            room = l->big_len - l->big_have;
        } else {
            size_t avail = l->wpos - l->rpos;
            if (avail >= 4) {
                size_t len = get_le32(l->buf + l->rpos);
                if (len < 4)
                    return -EBADMSG;
                if (len > l->max + 4)
                    return -EMSGSIZE;
                if (avail >= 4 + len) {
                    uint8_t *body = l->buf + l->rpos + 4;
                    void *base = NULL;
                    l->rpos += 4 + len;
                    if (own) {
                        if (!(base = malloc(len)))
                            return -ENOMEM;
                        memcpy(base, body, len);
                        body = base;
                    }
                    int r = parse(body, len, base, m);
                    if (r < 0)
                        free(base);
                    return r;
                }
                if (4 + len > WLINK_RBUF) {
                    /* its own allocation, read into directly from now on */
                    if (!(l->big = malloc(len)))
                        return -ENOMEM;
                    l->big_len = len;
                    l->big_have = avail - 4;
                    memcpy(l->big, l->buf + l->rpos + 4, l->big_have);
                    l->rpos = l->wpos = 0;
                    continue;
                }
            }
            if (l->rpos > 0) {
                memmove(l->buf, l->buf + l->rpos, avail);
                l->wpos = avail;
                l->rpos = 0;
            }
            dst = l->buf + l->wpos;
            room = WLINK_RBUF - l->wpos;
        }
        if (timeout_ms != 0) {
            int r = wait_readable(l->fd, timeout_ms, deadline);
            if (r <= 0)
                return r;
        }
        ssize_t n = read(l->fd, dst, room);
        if (n == 0)
            return -EPIPE;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN && timeout_ms == 0)
                return 0;
            if (errno == EAGAIN)
                continue; /* a spurious wake-up: wait again */
            return -errno;
        }
        if (l->big)
            l->big_have += (size_t)n;
        else
            l->wpos += (size_t)n;
    }
}

/* Write iov[0..n) whole on fd, waiting for room. */
static int write_all(int fd, struct iovec *iov, size_t n)
{
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n};

    while (mh.msg_iovlen > 0) {
        ssize_t k = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (k < 0) {
            struct pollfd p = {fd, POLLOUT, 0};
            if (errno == EAGAIN && (poll(&p, 1, -1) >= 0 || errno == EINTR))
                continue; /* a non-blocking fd that is full: wait for room */
            if (errno == EINTR)
                continue;
            return -errno;
        }
        while (mh.msg_iovlen > 0 && (size_t)k >= mh.msg_iov[0].iov_len) {
            k -= (ssize_t)mh.msg_iov[0].iov_len;
            mh.msg_iov++;
            mh.msg_iovlen--;
        }
        if (mh.msg_iovlen > 0) {
            mh.msg_iov[0].iov_base = (uint8_t *)mh.msg_iov[0].iov_base + k;
            mh.msg_iov[0].iov_len -= (size_t)k;
        }
    }
    return 0;
}

int wlink_send(wlink_t *l, const void *hdr, size_t hlen, const void *payload, size_t plen,
               bool has_payload)
{
    uint8_t prefix[WLINK_PREFIX];
    struct iovec iov[3] = {{prefix, sizeof(prefix)}, {(void *)hdr, hlen}, {(void *)payload, plen}};

    wlink_prefix(prefix, hlen, plen, has_payload);
    return write_all(l->fd, iov, plen ? 3 : 2);
}
