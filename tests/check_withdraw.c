/* check_withdraw.c - taking back a request that waits in forqd (queue.withdraw, lock.withdraw,
 * event.withdraw; PROTOCOL.md 6.9) end to end against a real forqd: a withdrawn get takes no
 * item and a withdrawn put puts none, a withdrawn acquire is never granted, a withdrawn event
 * wait is never answered; one answered first says so; only the connection that sent a request
 * may withdraw it; and libforq's own blocking get, outwaited by a stopped forqd, loses no item. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "shared_util.h"

#include "wire.h"

#include <zmq.h>

/* ---- queues ---- */

/* A get withdrawn while it waits takes nothing: the next item goes to the next consumer and the
 * queue's length stays right; a put withdrawn while it waits for room puts nothing. One answered
 * first says so, its answer in its future; a future with nothing waiting is refused. */
START_TEST(test_withdraw)
{
    forq_client_t *c2;
    forq_future_t *g1, *g2, *p, *j;
    const void *v;
    size_t len, n;
    bool w;

    e2e_up(&d, &c, 1, NULL);
    c2 = forqd_client(&d);
    ck_assert_int_eq(forq_queue_get_async(c, "wq", -1, &g1), FORQ_OK);
    wait_stat(c, "shared_waiters", 1);
    ck_assert_int_eq(forq_queue_get_async(c2, "wq", -1, &g2), FORQ_OK);
    wait_stat(c, "shared_waiters", 2);
    ck_assert_int_eq(forq_shared_withdraw(g1, T, &w), FORQ_OK);
    ck_assert(w);
    ck_assert(forq_future_done(g1));
    ck_assert_int_eq(forq_queue_reply(g1, NULL), FORQ_ERR_CANCELLED);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "withdrawn"));
    ck_assert_int_eq(stat_of(c, "shared_waiters"), 1);
    /* the next item goes past it, to the consumer behind */
    put_int(c, "wq", 5);
    ck_assert_int_eq(forq_future_wait(g2, T), FORQ_OK);
    ck_assert_int_eq(forq_future_result(g2, &v, &len), FORQ_OK);
    ck_assert_int_eq(as_int(v, len), 5);
    put_int(c, "wq", 6);
    ck_assert_int_eq(forq_queue_len(c, "wq", T, &n), FORQ_OK);
    ck_assert_uint_eq(n, 1); /* nobody took it */
    /* answered already: it says so, and the future holds the item */
    ck_assert_int_eq(forq_shared_withdraw(g2, T, &w), FORQ_OK);
    ck_assert(!w);
    forq_future_destroy(&g2);
    ck_assert_int_eq(forq_queue_get_async(c, "wq", -1, &g2), FORQ_OK);
    ck_assert_int_eq(forq_shared_withdraw(g2, T, &w), FORQ_OK);
    ck_assert(!w);
    ck_assert(forq_future_done(g2)); /* its answer came before the withdraw's */
    ck_assert_int_eq(forq_future_result(g2, &v, &len), FORQ_OK);
    ck_assert_int_eq(as_int(v, len), 6);
    /* a put that waits for room, withdrawn: nothing put, the one behind it goes in */
    put_int(c, "full", 1);
    msgpack_sbuffer two = val_int(2), three = val_int(3);
    ck_assert_int_eq(forq_queue_put_async(c, "full", two.data, two.size, false, 1, -1, &p),
                     FORQ_OK);
    wait_stat(c, "shared_waiters", 1);
    ck_assert_int_eq(forq_queue_put_async(c2, "full", three.data, three.size, false, 2, -1, &j),
                     FORQ_OK);
    wait_stat(c, "shared_waiters", 2); /* behind the first, though it has room */
    ck_assert_int_eq(forq_shared_withdraw(p, T, &w), FORQ_OK);
    ck_assert(w);
    ck_assert_int_eq(forq_future_wait(j, T), FORQ_OK);
    ck_assert_int_eq(forq_queue_reply(j, &n), FORQ_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(forq_queue_get(c, "full", 0, (void **)&v, &len), FORQ_OK);
    ck_assert_int_eq(as_int(v, len), 1);
    free((void *)v);
    ck_assert_int_eq(forq_queue_get(c, "full", 0, (void **)&v, &len), FORQ_OK);
    ck_assert_int_eq(as_int(v, len), 3); /* and never 2 */
    free((void *)v);
    msgpack_sbuffer_destroy(&two);
    msgpack_sbuffer_destroy(&three);
    /* a future that has nothing waiting in forqd: refused here */
    forq_dict_op_t op;
    forq_dict_op_init(&op);
    op.op = "len";
    op.name = "dd";
    forq_future_destroy(&j);
    ck_assert_int_eq(forq_dict_submit(c, &op, &j), FORQ_OK);
    ck_assert_int_eq(forq_shared_withdraw(j, T, &w), FORQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "no request waiting in forqd"));
    ck_assert_int_eq(forq_shared_withdraw(NULL, T, &w), FORQ_ERR_INVALID);
    forq_future_destroy(&j);
    forq_future_destroy(&p);
    forq_future_destroy(&g1);
    forq_future_destroy(&g2);
    forq_client_destroy(&c2);
    e2e_down(&d, &c);
}
END_TEST

typedef struct {
    forq_client_t *cl;
    forq_err_t e;
    int64_t item;
    char detail[256];
} stopped_get_t;

static void *stopped_get_main(void *arg)
{
    stopped_get_t *g = arg;
    void *v = NULL;
    size_t len = 0;

    g->e = forq_queue_get(g->cl, "sq", 200, &v, &len);
    snprintf(g->detail, sizeof(g->detail), "%s", forq_errdetail());
    if (g->e == FORQ_OK)
        g->item = as_int(v, len);
    free(v);
    return NULL;
}

/* libforq's own wait for a get ends before forqd's answer (forqd is stopped past the get's
 * timeout and the grace): the get is withdrawn, or its answer, which came first, is returned.
 * Either way the item put meanwhile is not lost. */
START_TEST(test_get_outwaited_loses_nothing)
{
    stopped_get_t g = {.e = -1, .item = -1};
    forq_client_t *c2;
    forq_future_t *p;
    pthread_t th;
    size_t n;

    e2e_up(&d, &c, 1, NULL);
    c2 = forqd_client(&d);
    g.cl = c;
    pthread_create(&th, NULL, stopped_get_main, &g);
    wait_stat(c2, "shared_waiters", 1);
    kill(d.pid, SIGSTOP);
    msgpack_sbuffer one = val_int(77);
    ck_assert_int_eq(forq_queue_put_async(c2, "sq", one.data, one.size, false, 0, 0, &p), FORQ_OK);
    msgpack_sbuffer_destroy(&one);
    usleep(5600 * 1000); /* past 200 ms + libforq's 5 s grace: the withdraw is on its way */
    kill(d.pid, SIGCONT);
    pthread_join(th, NULL);
    ck_assert_int_eq(forq_future_wait(p, T), FORQ_OK);
    ck_assert_int_eq(forq_queue_len(c2, "sq", T, &n), FORQ_OK);
    if (g.e == FORQ_OK) { /* the put reached the get first: the item is the get's */
        ck_assert_int_eq(g.item, 77);
        ck_assert_uint_eq(n, 0);
    } else { /* the get was answered empty, or withdrawn, first: the item is in the queue */
        ck_assert_msg(g.e == FORQ_ERR_EMPTY ||
                          (g.e == FORQ_ERR_TIMEOUT && strstr(g.detail, "was withdrawn")),
                      "get: %d %s", g.e, g.detail);
        ck_assert_uint_eq(n, 1);
    }
    ck_assert_int_eq(stat_of(c2, "shared_waiters"), 0);
    forq_future_destroy(&p);
    forq_client_destroy(&c2);
    e2e_down(&d, &c);
}
END_TEST

/* ---- locks, events, and the wire ---- */

/* An acquire withdrawn while it waits is never granted: the lock goes to the one behind it. */
START_TEST(test_lock_withdraw)
{
    forq_client_t *c2;
    forq_future_t *a1, *a2;
    uint64_t t1, t2 = 0;
    bool w;

    e2e_up(&d, &c, 1, NULL);
    c2 = forqd_client(&d);
    ck_assert_int_eq(forq_lock_acquire(c, "WL", 0, 0, &t1), FORQ_OK);
    ck_assert_int_eq(forq_sem_acquire_async(c2, "WL", 1, 0, -1, &a1), FORQ_OK);
    wait_stat(c, "shared_waiters", 1);
    ck_assert_int_eq(forq_sem_acquire_async(c, "WL", 1, 0, -1, &a2), FORQ_OK);
    wait_stat(c, "shared_waiters", 2);
    ck_assert_int_eq(forq_shared_withdraw(a1, T, &w), FORQ_OK);
    ck_assert(w);
    ck_assert_int_eq(forq_lock_reply(a1, NULL), FORQ_ERR_CANCELLED);
    ck_assert_int_eq(forq_lock_release(c, "WL", t1, T), FORQ_OK);
    ck_assert_int_eq(forq_future_wait(a2, T), FORQ_OK);
    ck_assert_int_eq(forq_lock_reply(a2, &t2), FORQ_OK);
    ck_assert_uint_gt(t2, t1);
    ck_assert_int_eq(stat_of(c, "locks_held"), 1); /* a2's alone: none went to a1 */
    ck_assert_int_eq(forq_lock_release(c, "WL", t2, T), FORQ_OK);
    ck_assert_int_eq(stat_of(c, "locks_held"), 0);
    ck_assert_int_eq(forq_shared_withdraw(a2, T, &w), FORQ_OK); /* done: nothing to ask */
    ck_assert(!w);
    forq_future_destroy(&a1);
    forq_future_destroy(&a2);
    forq_client_destroy(&c2);
    e2e_down(&d, &c);
}
END_TEST

/* A raw connection with its own routing id. */
static void *raw_socket(void *zctx, const char *ident)
{
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_ROUTING_ID, ident, strlen(ident));
    ck_assert_int_eq(zmq_connect(s, d.endpoint), 0);
    return s;
}

static void raw_send(void *s, const char *op, const char *name, uint64_t req, bool block,
                     uint64_t of)
{
    wire_hdr_t h = {.cmd = WIRE_DICT,
                    .op = wire_str(op),
                    .name = wire_str(name),
                    .req = req,
                    .has_req = true,
                    .block = block,
                    .of = of,
                    .has_of = of != 0};
    msgpack_sbuffer sb;

    msgpack_sbuffer_init(&sb);
    ck_assert_int_eq(wire_hdr_encode(&sb, &h), 0);
    ck_assert_int_eq(zmq_send(s, sb.data, sb.size, 0), (int)sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* The next reply's header (strings copied into buf: code, then msg), its payload skipped;
 * cmd WIRE_CMD_NONE when none came within ms. */
static wire_hdr_t raw_recv(void *s, int ms, char *buf, size_t size)
{
    zmq_pollitem_t pi = {s, 0, ZMQ_POLLIN, 0};
    wire_hdr_t h = {0};
    msgpack_zone zone;
    wire_err_t err;
    zmq_msg_t m;
    int more = 1;
    size_t ml = sizeof(more);

    buf[0] = '\0';
    if (zmq_poll(&pi, 1, ms) != 1)
        return h;
    zmq_msg_init(&m);
    ck_assert_int_ge(zmq_msg_recv(&m, s, 0), 0);
    msgpack_zone_init(&zone, 256);
    ck_assert_int_eq(wire_hdr_decode(zmq_msg_data(&m), zmq_msg_size(&m), &zone, &h, &err), 0);
    snprintf(buf, size, "%.*s|%.*s", (int)h.code.len, h.code.ptr ? h.code.ptr : "", (int)h.msg.len,
             h.msg.ptr ? h.msg.ptr : "");
    h.code = h.msg = h.op = h.name = (wire_str_t){0}; /* they pointed into the frame */
    msgpack_zone_destroy(&zone);
    zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
    while (more) {
        zmq_msg_recv(&m, s, 0);
        zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
    }
    zmq_msg_close(&m);
    return h;
}

/* On the wire: only the connection that sent a request may withdraw it; an unknown req, or
 * one answered already, is "not_waiting"; each kind has its own names. */
START_TEST(test_withdraw_on_the_wire)
{
    void *zctx = zmq_ctx_new(), *a, *b;
    char buf[512];
    wire_hdr_t h;

    e2e_up(&d, &c, 1, NULL);
    a = raw_socket(zctx, "withdraw-a");
    b = raw_socket(zctx, "withdraw-b");
    raw_send(a, "queue.get", "rq", 7, true, 0);
    wait_stat(c, "shared_waiters", 1);
    /* another connection's request: refused, and it still waits */
    raw_send(b, "queue.withdraw", "rq", 1, false, 7);
    h = raw_recv(b, T, buf, sizeof(buf));
    ck_assert_int_eq(h.cmd, WIRE_ERROR);
    ck_assert_uint_eq(h.req, 1);
    ck_assert_ptr_nonnull(strstr(buf, "forbidden|request 7 waiting on queue 'rq' was sent by "
                                      "another connection"));
    /* an unknown req */
    raw_send(b, "queue.withdraw", "rq", 2, false, 99);
    h = raw_recv(b, T, buf, sizeof(buf));
    ck_assert_int_eq(h.cmd, WIRE_DICT_REPLY);
    ck_assert(!h.found);
    ck_assert_str_eq(buf, "not_waiting|");
    /* the lock named rq is another thing */
    raw_send(a, "lock.withdraw", "rq", 3, false, 7);
    h = raw_recv(a, T, buf, sizeof(buf));
    ck_assert(!h.found);
    ck_assert_str_eq(buf, "not_waiting|");
    ck_assert_int_eq(stat_of(c, "shared_waiters"), 1);
    /* answered, then withdrawn: not_waiting, after the answer */
    put_int(c, "rq", 42);
    raw_send(a, "queue.withdraw", "rq", 4, false, 7);
    h = raw_recv(a, T, buf, sizeof(buf));
    ck_assert_int_eq(h.cmd, WIRE_DICT_REPLY);
    ck_assert_uint_eq(h.req, 7);
    ck_assert(h.found);
    h = raw_recv(a, T, buf, sizeof(buf));
    ck_assert_uint_eq(h.req, 4);
    ck_assert(!h.found);
    ck_assert_str_eq(buf, "not_waiting|");
    /* an event wait, withdrawn: the set answers nobody */
    raw_send(a, "event.wait", "ev", 8, true, 0);
    wait_stat(c, "shared_waiters", 1);
    raw_send(a, "event.withdraw", "ev", 9, false, 8);
    h = raw_recv(a, T, buf, sizeof(buf));
    ck_assert_uint_eq(h.req, 9);
    ck_assert(h.found);
    ck_assert_int_eq(stat_of(c, "shared_waiters"), 0);
    ck_assert_int_eq(forq_event_set(c, "ev", T), FORQ_OK);
    h = raw_recv(a, 200, buf, sizeof(buf));
    ck_assert_int_eq(h.cmd, WIRE_CMD_NONE);
    /* a withdraw without its 'of' */
    raw_send(a, "event.withdraw", "ev", 10, false, 0);
    h = raw_recv(a, T, buf, sizeof(buf));
    ck_assert_int_eq(h.cmd, WIRE_ERROR);
    ck_assert_ptr_nonnull(strstr(buf, "missing_field|event.withdraw needs 'of'"));
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(zctx);
    e2e_down(&d, &c);
}
END_TEST

static Suite *withdraw_suite(void)
{
    Suite *s = suite_create("withdraw");
    TCase *core = tcase_create("core"), *full;

    tcase_set_timeout(core, test_ms(60));
    tcase_add_test(core, test_withdraw);
    tcase_add_test(core, test_lock_withdraw);
    tcase_add_test(core, test_withdraw_on_the_wire);
    suite_add_tcase(s, core);
    /* under valgrind (FORQ_TEST_CORE_ONLY) the core cases only: the stopped forqd takes 6 s */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(60));
    tcase_add_test(full, test_get_outwaited_loses_nothing);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(withdraw_suite());
}
