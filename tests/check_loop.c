/* check_loop.c - the broker's event loop (daemon/broker/loop.c): ticks, timers by kind,
 * descriptors in order, removal during a turn, signals, stop. */
#include "loop.h"
#include "testutil.h"
#include "util.h"

#include <check.h>
#include <signal.h>
#include <unistd.h>
#include <zmq.h>

/* ---- ticks and timers ---- */

typedef struct {
    loop_t *loop;
    char log[64]; /* what fired, in order */
    size_t n;
    int turns; /* ticks seen */
    uint64_t start;
    timer_node_t t[3];
} ctx_t;

static void note(ctx_t *c, char ch)
{
    if (c->n + 1 < sizeof(c->log))
        c->log[c->n++] = ch;
}

static uint64_t tick_a(void *ud, uint64_t now)
{
    ctx_t *c = ud;
    (void)now;
    note(c, 'a');
    c->turns++;
    return LOOP_NEVER;
}

static uint64_t tick_b(void *ud, uint64_t now)
{
    ctx_t *c = ud;
    note(c, 'b');
    if (c->turns >= 3)
        loop_stop(c->loop);
    return now; /* another turn at once */
}

START_TEST(test_ticks_in_order_until_stop)
{
    ctx_t c = {.loop = loop_new()};

    loop_tick_add(c.loop, tick_a, &c);
    loop_tick_add(c.loop, tick_b, &c);
    ck_assert_int_eq(loop_run(c.loop), 0);
    c.log[c.n] = '\0';
    /* b stops the loop in the third turn: nothing runs after it */
    ck_assert_str_eq(c.log, "ababab");
    loop_destroy(&c.loop);
    ck_assert_ptr_null(c.loop);
    loop_destroy(&c.loop); /* safe twice */
}
END_TEST

static void on_timer(void *ud, timer_node_t *t, uint64_t now)
{
    ctx_t *c = ud;
    ck_assert_uint_ge(now, t->at);
    note(c, (char)('0' + (t - c->t)));
    loop_timer_disarm(c->loop, t);
    if (t == &c->t[0]) /* the latest: the last to fire */
        loop_stop(c->loop);
}

START_TEST(test_timers_fire_by_time_and_wake_the_poll)
{
    ctx_t c = {.loop = loop_new()};
    uint8_t kind = loop_timer_kind(c.loop, on_timer, &c);
    uint64_t t0 = now_ms();

    ck_assert_uint_ne(kind, 0);
    for (int i = 0; i < 3; i++) {
        timer_node_init(&c.t[i]);
        c.t[i].kind = kind;
    }
    loop_timer_arm(c.loop, &c.t[0], t0 + 60);
    loop_timer_arm(c.loop, &c.t[1], t0 + 20);
    loop_timer_arm(c.loop, &c.t[2], t0 + 40);
    /* nothing to poll and no tick: the timers alone end the poll */
    ck_assert_int_eq(loop_run(c.loop), 0);
    c.log[c.n] = '\0';
    ck_assert_str_eq(c.log, "120");
    ck_assert_uint_ge(now_ms() - t0, 60);
    ck_assert_uint_lt(now_ms() - t0, (uint64_t)test_ms(5000));
    loop_destroy(&c.loop);
}
END_TEST

/* ---- descriptors ---- */

typedef struct {
    loop_t *loop;
    int fds[3][2]; /* pipes */
    loop_io_t *io[3];
    char log[16];
    size_t n;
} io_ctx_t;

static void on_io(io_ctx_t *c, int i, short revents)
{
    char buf[8];

    ck_assert(revents & ZMQ_POLLIN);
    ck_assert_int_gt(read(c->fds[i][0], buf, sizeof(buf)), 0);
    c->log[c->n++] = (char)('0' + i);
}

static void io0(void *ud, short revents)
{
    io_ctx_t *c = ud;
    on_io(c, 0, revents);
    /* the first to run removes the third, which is ready in this very turn */
    loop_io_del(c->loop, c->io[2]);
}

static void io1(void *ud, short revents)
{
    io_ctx_t *c = ud;
    on_io(c, 1, revents);
    loop_stop(c->loop);
}

static void io2(void *ud, short revents)
{
    on_io(ud, 2, revents); /* must not run: removed earlier in the turn */
}

START_TEST(test_ready_callbacks_by_order_and_removal_in_a_turn)
{
    io_ctx_t c = {.loop = loop_new()};
    loop_io_fn fns[3] = {io0, io1, io2};

    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(pipe(c.fds[i]), 0);
        ck_assert_int_eq(write(c.fds[i][1], "x", 1), 1);
    }
    /* registered last to first: the order, not the registration, decides who runs first */
    for (int i = 2; i >= 0; i--)
        c.io[i] = loop_io_add(c.loop, NULL, c.fds[i][0], ZMQ_POLLIN, i + 1, fns[i], &c);
    ck_assert_int_eq(loop_run(c.loop), 0);
    c.log[c.n] = '\0';
    ck_assert_str_eq(c.log, "01");
    for (int i = 0; i < 3; i++) {
        close(c.fds[i][0]);
        close(c.fds[i][1]);
    }
    loop_destroy(&c.loop);
}
END_TEST

static void never(void *ud, short revents)
{
    (void)ud;
    (void)revents;
    ck_abort_msg("a registration waiting for nothing was polled");
}

static uint64_t stop_at_third_turn(void *ud, uint64_t now)
{
    void **a = ud;
    int *turns = a[1];
    if (++*turns == 3)
        loop_stop(a[0]);
    return now + 10;
}

START_TEST(test_events_zero_is_not_polled)
{
    loop_t *loop = loop_new();
    int fds[2], turns = 0;
    void *a[2] = {loop, &turns};

    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(write(fds[1], "x", 1), 1);
    loop_io_t *io = loop_io_add(loop, NULL, fds[0], ZMQ_POLLIN, 0, never, NULL);
    loop_io_events(io, 0);
    loop_tick_add(loop, stop_at_third_turn, a);
    ck_assert_int_eq(loop_run(loop), 0);
    ck_assert_int_eq(turns, 3);
    close(fds[0]);
    close(fds[1]);
    loop_destroy(&loop);
}
END_TEST

/* ---- signals ---- */

static void on_usr(void *ud, int signo)
{
    int *got = ud;
    *got = signo;
}

static uint64_t raise_then_stop(void *ud, uint64_t now)
{
    void **a = ud;
    int *got = a[1];
    (void)now;
    if (*got)
        loop_stop(a[0]);
    else
        kill(getpid(), SIGUSR1);
    return LOOP_NEVER;
}

START_TEST(test_signal_through_signalfd)
{
    loop_t *loop = loop_new();
    sigset_t mask;
    int got = 0;
    void *a[2] = {loop, &got};

    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    ck_assert_int_eq(loop_signal_add(loop, SIGUSR1, 0, on_usr, &got), 0);
    loop_tick_add(loop, raise_then_stop, a);
    ck_assert_int_eq(loop_run(loop), 0);
    ck_assert_int_eq(got, SIGUSR1);
    loop_destroy(&loop);
}
END_TEST

static Suite *loop_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc = tcase_create("loop");
    tcase_add_test(tc, test_ticks_in_order_until_stop);
    tcase_add_test(tc, test_timers_fire_by_time_and_wake_the_poll);
    tcase_add_test(tc, test_ready_callbacks_by_order_and_removal_in_a_turn);
    tcase_add_test(tc, test_events_zero_is_not_polled);
    tcase_add_test(tc, test_signal_through_signalfd);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(loop_suite());
}
