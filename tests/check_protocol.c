/* check_protocol.c - end to end, the wire seen from a raw ZeroMQ peer: malformed frames of
 * every kind answered with the right error while the peer's good jobs go on, REQ envelopes, and
 * libforq's own check of what a (fake) broker sends. A real forqd on an ipc endpoint in a
 * temporary directory (testutil_e2e.c). */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"
#include "wire.h"

#include <check.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static forqd_t d;
static forq_client_t *c;

/* Start forqd with the test plugin, `workers` workers and extra args, and connect c. */
static void up(int workers, const char *const *extra)
{
    e2e_up(&d, &c, workers, extra);
}

static void down(void)
{
    e2e_down(&d, &c);
}

/* ---- malformed input from a raw ZeroMQ peer ---- */

static void *raw_connect(void *zctx, int type, const char *ep)
{
    void *s = zmq_socket(zctx, type);
    int tmo = test_ms(5000), zero = 0;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    ck_assert_int_eq(zmq_connect(s, ep), 0);
    return s;
}

/* Send frames (NULL-terminated list of (data, len) pairs given as parallel arrays). */
static void raw_send(void *s, const void *const *frames, const size_t *lens, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_ge(zmq_send(s, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0), 0);
}

/* Receive one reply; returns its header decoded into *h (strings valid until next call). */
static void raw_recv(void *s, wire_hdr_t *h, int *nframes)
{
    static char buf[WIRE_HEADER_MAX];
    static msgpack_zone zone;
    static bool init;
    wire_err_t err;
    int n = 0, more = 1;
    size_t ml = sizeof(more);
    int len;

    if (!init) {
        msgpack_zone_init(&zone, 1024);
        init = true;
    }
    msgpack_zone_clear(&zone);
    len = zmq_recv(s, buf, sizeof(buf), 0);
    ck_assert_msg(len >= 0, "no reply from forqd");
    n = 1;
    if (len == 0) { /* REQ-style delimiter */
        len = zmq_recv(s, buf, sizeof(buf), 0);
        ck_assert_int_ge(len, 0);
    }
    ck_assert_int_eq(wire_hdr_decode(buf, (size_t)len, &zone, h, &err), 0);
    while (zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
        char junk[256];
        ck_assert_int_ge(zmq_recv(s, junk, sizeof(junk), 0), 0);
        n++;
    }
    if (nframes)
        *nframes = n;
}

static msgpack_sbuffer hdr(const wire_hdr_t *h)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_hdr_encode(&sb, h);
    return sb;
}

static bool good_answered; /* the result of the well-behaved job "good-1" arrived */

static void expect_error(void *s, const void *const *frames, const size_t *lens, int n,
                         const char *code)
{
    wire_hdr_t h;
    int nframes;
    raw_send(s, frames, lens, n);
    raw_recv(s, &h, &nframes);
    if (h.cmd == WIRE_RESULT && wire_str_eq(h.id, "good-1")) {
        ck_assert_int_eq(h.state, WIRE_ST_OK);
        ck_assert_int_eq(nframes, 2);
        good_answered = true;
        raw_recv(s, &h, NULL);
    }
    ck_assert_msg(h.cmd == WIRE_ERROR, "got '%s', want an error", wire_cmd_name(h.cmd));
    ck_assert_msg(wire_str_eq(h.code, code), "got code '%.*s', want '%s'", (int)h.code.len,
                  h.code.ptr, code);
    ck_assert(h.msg.len > 0);
}

START_TEST(test_malformed_frames)
{
    up(1, NULL);
    void *zctx = zmq_ctx_new();
    void *s = raw_connect(zctx, ZMQ_DEALER, d.endpoint);
    wire_hdr_t h;
    int nframes;

    /* a well-behaved job of the same peer, in flight while it misbehaves */
    wire_hdr_t sub = {.cmd = WIRE_SUBMIT, .id = wire_str("good-1"), .task = wire_str("sleep")};
    msgpack_sbuffer sb = hdr(&sub);
    const void *ok_frames[] = {sb.data, "\x91\xcb\x3f\xc9\x99\x99\x99\x99\x99\x9a"}; /* [0.2] */
    size_t ok_lens[] = {sb.size, 10};
    raw_send(s, ok_frames, ok_lens, 2);

    static const char garbage[] = "\xff\x00 not msgpack";
    static const unsigned char bomb[] = {0x81, 0xa3, 'c', 'm', 'd', 0xdd, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char arr[] = {0x93, 0x01, 0x02, 0x03};
    const void *f1[] = {garbage};
    size_t l1[] = {sizeof(garbage) - 1};
    expect_error(s, f1, l1, 1, "bad_message");
    const void *f2[] = {bomb};
    size_t l2[] = {sizeof(bomb)};
    expect_error(s, f2, l2, 1, "bad_message");
    const void *f3[] = {arr};
    size_t l3[] = {sizeof(arr)};
    expect_error(s, f3, l3, 1, "bad_header");
    const void *f4[] = {""};
    size_t l4[] = {0};
    expect_error(s, f4, l4, 1, "bad_frames");

    wire_hdr_t bad = {.cmd = WIRE_SUBMIT,
                      .id = wire_str("x1"),
                      .task = wire_str("echo"),
                      .req = 77,
                      .has_req = true};
    msgpack_sbuffer b2 = hdr(&bad);
    const void *f5[] = {b2.data}; /* submit without args frame */
    size_t l5[] = {b2.size};
    raw_send(s, f5, l5, 1);
    raw_recv(s, &h, NULL);
    ck_assert_int_eq(h.cmd, WIRE_ERROR);
    ck_assert(wire_str_eq(h.code, "bad_frames"));
    ck_assert(wire_str_eq(h.id, "x1"));
    ck_assert_uint_eq(h.req, 77);
    const void *f6[] = {b2.data, "\x90", "\x90"}; /* too many frames */
    size_t l6[] = {b2.size, 1, 1};
    expect_error(s, f6, l6, 3, "bad_frames");
    /* args that are not msgpack: the job is rejected with the reason */
    const void *f7[] = {b2.data, bomb};
    size_t l7[] = {b2.size, sizeof(bomb)};
    raw_send(s, f7, l7, 2);
    raw_recv(s, &h, &nframes);
    if (h.cmd == WIRE_RESULT && wire_str_eq(h.id, "good-1")) {
        good_answered = true;
        raw_recv(s, &h, NULL);
    }
    ck_assert_int_eq(h.cmd, WIRE_RESULT);
    ck_assert_int_eq(h.state, WIRE_ST_REJECTED);
    ck_assert(wire_str_eq(h.code, "bad_args"));
    /* a worker command from a client */
    wire_hdr_t wk = {.cmd = WIRE_READY};
    msgpack_sbuffer b3 = hdr(&wk);
    const void *f8[] = {b3.data};
    size_t l8[] = {b3.size};
    expect_error(s, f8, l8, 1, "unknown_command");
    /* a future protocol version */
    static const unsigned char v9[] = {0x82, 0xa1, 'v', 0x09, 0xa3, 'c', 'm',
                                       'd',  0xa4, 'p', 'i',  'n',  'g'};
    const void *f9[] = {v9};
    size_t l9[] = {sizeof(v9)};
    expect_error(s, f9, l9, 1, "bad_version");

    /* after all that, the good job is answered, and the peer can still talk */
    if (!good_answered) {
        raw_recv(s, &h, &nframes);
        ck_assert_int_eq(h.cmd, WIRE_RESULT);
        ck_assert(wire_str_eq(h.id, "good-1"));
        ck_assert_int_eq(h.state, WIRE_ST_OK);
        ck_assert_int_eq(nframes, 2);
    }
    wire_hdr_t ping = {.cmd = WIRE_PING, .req = 5, .has_req = true};
    msgpack_sbuffer b4 = hdr(&ping);
    const void *f10[] = {b4.data};
    size_t l10[] = {b4.size};
    raw_send(s, f10, l10, 1);
    raw_recv(s, &h, NULL);
    ck_assert_int_eq(h.cmd, WIRE_PONG);
    ck_assert_uint_eq(h.req, 5);
    ck_assert_int_eq(stat_of(c, "malformed"), 8);

    /* a REQ socket works too: the broker keeps its envelope */
    void *r = raw_connect(zctx, ZMQ_REQ, d.endpoint);
    raw_send(r, f10, l10, 1);
    raw_recv(r, &h, NULL);
    ck_assert_int_eq(h.cmd, WIRE_PONG);

    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&b2);
    msgpack_sbuffer_destroy(&b3);
    msgpack_sbuffer_destroy(&b4);
    zmq_close(s);
    zmq_close(r);
    zmq_ctx_term(zctx);
    down();
}
END_TEST

/* `n` nested one-element arrays around an empty array: n + 1 levels in all. */
static size_t nested(unsigned char *buf, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        buf[len++] = 0x91;
    buf[len++] = 0x90;
    return len;
}

/* One depth limit at every layer (PROTOCOL.md section 10): the broker's check, the worker's
 * unpacking, the dict service, and what clients unpack, empty containers counted. */
START_TEST(test_depth_limit_at_every_layer)
{
    unsigned char deep[80];
    wire_hdr_t h;
    int nframes;

    up(1, NULL);
    void *zctx = zmq_ctx_new();
    void *s = raw_connect(zctx, ZMQ_DEALER, d.endpoint);
    for (int levels = WIRE_DEPTH_MAX; levels <= WIRE_DEPTH_MAX + 1; levels++) {
        /* echo's args: a job whose args nest `levels` deep runs at the limit and is refused
         * past it, by the broker, with the reason */
        char id[16];
        snprintf(id, sizeof(id), "deep-%d", levels);
        wire_hdr_t sub = {.cmd = WIRE_SUBMIT, .id = wire_str(id), .task = wire_str("echo")};
        msgpack_sbuffer sb = hdr(&sub);
        const void *f[] = {sb.data, deep};
        size_t l[] = {sb.size, nested(deep, levels - 1)};
        raw_send(s, f, l, 2);
        raw_recv(s, &h, &nframes);
        ck_assert_int_eq(h.cmd, WIRE_RESULT);
        if (levels <= WIRE_DEPTH_MAX) {
            ck_assert_msg(h.state == WIRE_ST_OK, "%d levels: %s: %.*s", levels,
                          wire_state_name(h.state), (int)h.msg.len, h.msg.ptr);
            ck_assert_int_eq(nframes, 2);
        } else {
            ck_assert_int_eq(h.state, WIRE_ST_REJECTED);
            ck_assert(wire_str_eq(h.code, "bad_args"));
            ck_assert_ptr_nonnull(memmem(h.msg.ptr, h.msg.len, "nested deeper than 32", 21));
        }
        msgpack_sbuffer_destroy(&sb);
    }
    /* a dict value goes out again inside an items page, two levels deeper: 30 levels */
    for (int levels = WIRE_VALUE_DEPTH_MAX; levels <= WIRE_VALUE_DEPTH_MAX + 1; levels++) {
        void *v = NULL;
        size_t vlen = 0, n = nested(deep, levels - 1);
        forq_err_t e = forq_dict_set(c, "deep", "k", deep, n, test_ms(5000), NULL);
        if (levels <= WIRE_VALUE_DEPTH_MAX) {
            ck_assert_int_eq(e, FORQ_OK);
            ck_assert_int_eq(forq_dict_get(c, "deep", "k", test_ms(5000), &v, &vlen, NULL),
                             FORQ_OK);
            ck_assert_uint_eq(vlen, n);
            free(v);
            char *after = NULL;
            ck_assert_int_eq(
                forq_dict_page(c, "deep", true, NULL, 0, test_ms(5000), &v, &vlen, &after),
                FORQ_OK);
            free(v);
            free(after);
        } else {
            ck_assert_int_eq(e, FORQ_ERR_INVALID);
            ck_assert_msg(strstr(forq_errdetail(), "at most 30 levels"), "%s", forq_errdetail());
        }
    }
    /* update: a map of values, each within the same 30 */
    unsigned char map[96];
    size_t mlen = 0;
    map[mlen++] = 0x81;
    map[mlen++] = 0xa1;
    map[mlen++] = 'u';
    mlen += nested(map + mlen, WIRE_VALUE_DEPTH_MAX); /* one level too deep */
    ck_assert_int_eq(forq_dict_update(c, "deep", map, mlen, test_ms(5000)), FORQ_ERR_INVALID);
    ck_assert_msg(strstr(forq_errdetail(), "at most 30 levels"), "%s", forq_errdetail());
    /* the store is untouched, forqd answers */
    ck_assert_int_eq(forq_dict_has(c, "deep", "u", test_ms(5000), &(bool){true}), FORQ_OK);
    zmq_close(s);
    zmq_ctx_term(zctx);
    down();
}
END_TEST

/* libforq applies the structural check to what a broker sends, too. */
START_TEST(test_client_refuses_malformed_result)
{
    char dir[64], ep[128];
    void *zctx = zmq_ctx_new(), *router = zmq_socket(zctx, ZMQ_ROUTER);
    forq_client_opts_t o;
    forq_client_t *cl;
    forq_future_t *f;
    zmq_msg_t ident, hm, am;
    int tmo = test_ms(5000), zero = 0;
    msgpack_zone zone;
    wire_hdr_t h;
    wire_err_t err;

    temp_dir(dir, sizeof(dir), "forq-fake");
    snprintf(ep, sizeof(ep), "ipc://%s/fake.sock", dir);
    zmq_setsockopt(router, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof(zero));
    ck_assert_int_eq(zmq_bind(router, ep), 0);
    forq_client_opts_init(&o);
    o.endpoint = ep;
    ck_assert_int_eq(forq_client_new(&o, &cl), FORQ_OK);
    f = submit_json(cl, "echo", "1", NULL);
    /* the fake broker reads the submit and answers "ok" with a lying payload */
    zmq_msg_init(&ident);
    zmq_msg_init(&hm);
    zmq_msg_init(&am);
    ck_assert_int_ge(zmq_msg_recv(&ident, router, 0), 0);
    ck_assert_int_ge(zmq_msg_recv(&hm, router, 0), 0);
    ck_assert_int_ge(zmq_msg_recv(&am, router, 0), 0);
    msgpack_zone_init(&zone, 1024);
    ck_assert_int_eq(wire_hdr_decode(zmq_msg_data(&hm), zmq_msg_size(&hm), &zone, &h, &err), 0);
    wire_hdr_t r = {.cmd = WIRE_RESULT, .id = h.id, .state = WIRE_ST_OK};
    msgpack_sbuffer sb = hdr(&r);
    zmq_msg_send(&ident, router, ZMQ_SNDMORE);
    zmq_send(router, sb.data, sb.size, ZMQ_SNDMORE);
    zmq_send(router, "\xdd\xff\xff\xff\xff", 5, 0);
    ck_assert_int_eq(wait_state(f, 5000), FORQ_STATE_LOST);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(f), "malformed result"));
    forq_future_destroy(&f);
    forq_client_destroy(&cl);
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&zone);
    zmq_msg_close(&hm);
    zmq_msg_close(&am);
    zmq_close(router);
    zmq_ctx_term(zctx);
    char path[160];
    snprintf(path, sizeof(path), "%s/fake.sock", dir);
    unlink(path);
    rmdir(dir);
}
END_TEST

static Suite *protocol_suite(void)
{
    Suite *s = suite_create("protocol");
    TCase *core = tcase_create("core");
    TCase *full;

    tcase_set_timeout(core, test_ms(60));
    tcase_add_test(core, test_malformed_frames);
    suite_add_tcase(s, core);
    /* under valgrind (FORQ_TEST_CORE_ONLY) the core cases only */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(60));
    tcase_add_test(full, test_client_refuses_malformed_result);
    tcase_add_test(full, test_depth_limit_at_every_layer);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(protocol_suite());
}
