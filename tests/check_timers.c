/* check_timers.c - the deadline heap. */
#include "testutil.h"
#include "timers.h"

#include <check.h>
#include <stdlib.h>

START_TEST(test_order_and_delete)
{
    timers_t h = {0};
    timer_node_t n[200];
    uint64_t last = 0;

    srand(42);
    for (int i = 0; i < 200; i++) {
        timer_node_init(&n[i]);
        timers_add(&h, &n[i], (uint64_t)(rand() % 1000));
    }
    /* delete every third, re-arm every fifth later */
    for (int i = 0; i < 200; i += 3)
        timers_del(&h, &n[i]);
    for (int i = 0; i < 200; i += 5)
        timers_add(&h, &n[i], 2000 + (uint64_t)i);
    size_t expect = 0;
    for (int i = 0; i < 200; i++)
        expect += (i % 3 != 0) || (i % 5 == 0);
    ck_assert_uint_eq(h.n, expect);
    for (size_t k = 0; k < expect; k++) {
        timer_node_t *t = timers_peek(&h);
        ck_assert_ptr_nonnull(t);
        ck_assert_uint_ge(t->at, last);
        last = t->at;
        timers_del(&h, t);
        ck_assert_uint_eq(t->idx, TIMER_IDLE);
    }
    ck_assert_ptr_null(timers_peek(&h));
    timers_del(&h, &n[1]); /* not armed: nothing happens */
    timers_done(&h);
}
END_TEST

static Suite *timers_suite(void)
{
    Suite *s = suite_create("timers");
    TCase *tc = tcase_create("heap");
    tcase_add_test(tc, test_order_and_delete);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(timers_suite());
}
