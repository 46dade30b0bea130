/* check_wlink.c - the worker link's framing (wlink.h) over a real socketpair: messages with and
 * without payload, many in one read, a message longer than the read-ahead buffer arriving in
 * pieces, owned and borrowed bytes, and every bad frame: oversize, a header longer than its
 * message, a short length, the end of the stream, a timeout. */
#define _GNU_SOURCE
#include "wlink.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int sv[2];
static wlink_t rx, tx;

static void setup(void)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(wlink_init(&rx, sv[0], 1 << 20), 0);
    ck_assert_int_eq(wlink_init(&tx, sv[1], 1 << 20), 0);
}

static void teardown(void)
{
    wlink_done(&rx);
    if (sv[1] >= 0)
        wlink_done(&tx);
}

static void nonblocking(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

START_TEST(test_messages_round_trip)
{
    wlink_msg_t m;

    ck_assert_int_eq(wlink_send(&tx, "hdr1", 4, "payload", 7, true), 0);
    ck_assert_int_eq(wlink_send(&tx, "h2", 2, NULL, 0, false), 0);
    ck_assert_int_eq(wlink_send(&tx, "h3", 2, NULL, 0, true), 0); /* an empty payload frame */
    ck_assert_int_eq(wlink_recv(&rx, -1, false, &m), 1);
    ck_assert_ptr_null(m.base);
    ck_assert_uint_eq(m.hlen, 4);
    ck_assert_mem_eq(m.hdr, "hdr1", 4);
    ck_assert(m.has_payload);
    ck_assert_uint_eq(m.plen, 7);
    ck_assert_mem_eq(m.payload, "payload", 7);
    ck_assert_int_eq(wlink_recv(&rx, -1, true, &m), 1);
    ck_assert_ptr_nonnull(m.base);
    ck_assert_mem_eq(m.hdr, "h2", 2);
    ck_assert(!m.has_payload);
    ck_assert_uint_eq(m.plen, 0);
    free(m.base);
    ck_assert_int_eq(wlink_recv(&rx, -1, false, &m), 1);
    ck_assert(m.has_payload);
    ck_assert_uint_eq(m.plen, 0);
    /* nothing more: a non-blocking read says so, a timed one times out */
    nonblocking(sv[0]);
    ck_assert_int_eq(wlink_recv(&rx, 0, false, &m), 0);
    ck_assert_int_eq(wlink_recv(&rx, 50, false, &m), 0);
}
END_TEST

typedef struct {
    int fd;
    const uint8_t *data;
    size_t len;
} writer_t;

/* (a child process: daemon/sched.h shadows <sched.h>, which <pthread.h> needs) */
static void write_slowly(writer_t *w)
{
    uint8_t prefix[WLINK_PREFIX];

    wlink_prefix(prefix, 3, w->len, true);
    ck_assert_int_eq(write(w->fd, prefix, 5), 5); /* even the prefix in pieces */
    usleep(1000);
    ck_assert_int_eq(write(w->fd, prefix + 5, 3), 3);
    ck_assert_int_eq(write(w->fd, "big", 3), 3);
    for (size_t off = 0; off < w->len;) {
        size_t n = w->len - off < 100000 ? w->len - off : 100000;
        ssize_t k = write(w->fd, w->data + off, n);
        ck_assert_int_gt(k, 0);
        off += (size_t)k;
    }
}

START_TEST(test_big_message_in_pieces)
{
    size_t len = 700000; /* ten times the read-ahead buffer */
    uint8_t *data = malloc(len);
    writer_t w = {sv[1], data, len};
    pid_t pid;
    wlink_msg_t m;
    int r, status;

    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7);
    nonblocking(sv[0]);
    if ((pid = fork()) == 0) {
        write_slowly(&w);
        _exit(0);
    }
    ck_assert_int_gt(pid, 0);
    /* the broker's way: read what is there, come back when readable */
    while ((r = wlink_recv(&rx, 0, false, &m)) == 0)
        usleep(200);
    ck_assert_int_eq(r, 1);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(status, 0);
    ck_assert_ptr_nonnull(m.base); /* its own allocation, handed to the caller */
    ck_assert_mem_eq(m.hdr, "big", 3);
    ck_assert_uint_eq(m.plen, len);
    ck_assert_mem_eq(m.payload, data, len);
    free(m.base);
    /* and the link goes on with small ones */
    ck_assert_int_eq(wlink_send(&tx, "after", 5, "x", 1, true), 0);
    ck_assert_int_eq(wlink_recv(&rx, 1000, false, &m), 1);
    ck_assert_mem_eq(m.hdr, "after", 5);
    free(data);
}
END_TEST

START_TEST(test_many_in_one_read)
{
    wlink_msg_t m;
    char h[16];

    for (int i = 0; i < 1000; i++) {
        int n = snprintf(h, sizeof(h), "m%d", i);
        ck_assert_int_eq(wlink_send(&tx, h, (size_t)n, &i, sizeof(i), true), 0);
        if (i % 100 == 99) { /* keep the socket buffer from filling */
            for (int j = i - 99; j <= i; j++) {
                int n2 = snprintf(h, sizeof(h), "m%d", j);
                ck_assert_int_eq(wlink_recv(&rx, 1000, false, &m), 1);
                ck_assert_uint_eq(m.hlen, (size_t)n2);
                ck_assert_mem_eq(m.hdr, h, (size_t)n2);
                ck_assert_mem_eq(m.payload, &j, sizeof(j));
            }
        }
    }
}
END_TEST

static void send_raw(const void *p, size_t n)
{
    ck_assert_int_eq(write(sv[1], p, n), (ssize_t)n);
}

START_TEST(test_bad_frames)
{
    wlink_msg_t m;
    uint8_t b[16];

    /* longer than the link's limit: refused before anything is allocated */
    wlink_prefix(b, 4, (1 << 20) + 1, true);
    send_raw(b, 8);
    ck_assert_int_eq(wlink_recv(&rx, 1000, false, &m), -EMSGSIZE);
    wlink_done(&rx);
    wlink_done(&tx);
    setup();
    /* a header longer than its message */
    wlink_prefix(b, 4, 0, false);
    b[4] = 9; /* hlen 9 in a message of 4 + 4 bytes */
    memcpy(b + 8, "abcd", 4);
    send_raw(b, 12);
    ck_assert_int_eq(wlink_recv(&rx, 1000, false, &m), -EBADMSG);
    wlink_done(&rx);
    wlink_done(&tx);
    setup();
    /* a length too short to hold the header length */
    memset(b, 0, 8);
    b[0] = 2;
    send_raw(b, 8);
    ck_assert_int_eq(wlink_recv(&rx, 1000, false, &m), -EBADMSG);
    wlink_done(&rx);
    wlink_done(&tx);
    setup();
    /* the peer goes away in the middle of a message */
    wlink_prefix(b, 4, 100, true);
    send_raw(b, 8);
    wlink_done(&tx);
    sv[1] = -1;
    ck_assert_int_eq(wlink_recv(&rx, 1000, false, &m), -EPIPE);
}
END_TEST

START_TEST(test_send_to_closed_peer)
{
    wlink_done(&rx); /* closes our end */
    ck_assert_int_eq(wlink_send(&tx, "h", 1, NULL, 0, false), -EPIPE);
    ck_assert_int_eq(wlink_init(&rx, -1, 16), 0); /* for teardown */
}
END_TEST

static Suite *wlink_suite(void)
{
    Suite *su = suite_create("wlink");
    TCase *tc = tcase_create("link");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_messages_round_trip);
    tcase_add_test(tc, test_big_message_in_pieces);
    tcase_add_test(tc, test_many_in_one_read);
    tcase_add_test(tc, test_bad_frames);
    tcase_add_test(tc, test_send_to_closed_peer);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    return run_suite(wlink_suite());
}
