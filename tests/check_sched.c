/* check_sched.c - the scheduler: priorities, FIFO within one, round robin between clients. */
#include "sched.h"
#include "testutil.h"
#include "util.h"

#include <check.h>

typedef struct {
    sched_item_t item;
    int client;
    int n;
} tjob_t;

typedef struct {
    sched_lane_t lanes[SCHED_NPRIO];
} tclient_t;

static sched_t s;
static tclient_t clients[4];
static tjob_t jobs[64];

static void setup(void)
{
    sched_init(&s);
    for (int c = 0; c < 4; c++)
        for (unsigned p = 0; p < SCHED_NPRIO; p++)
            sched_lane_init(&clients[c].lanes[p], p);
}

static tjob_t *push(int i, int client, unsigned prio)
{
    jobs[i] = (tjob_t){.client = client, .n = i};
    sched_push(&s, &clients[client].lanes[prio], &jobs[i].item, false);
    return &jobs[i];
}

static int pop(void)
{
    sched_item_t *it = sched_pop(&s);
    return it ? container_of(it, tjob_t, item)->n : -1;
}

START_TEST(test_fifo_within_client)
{
    for (int i = 0; i < 5; i++)
        push(i, 0, 5);
    ck_assert_uint_eq(s.total, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(pop(), i);
    ck_assert_int_eq(pop(), -1);
    ck_assert_uint_eq(s.total, 0);
}
END_TEST

START_TEST(test_priority_order)
{
    push(0, 0, 0);
    push(1, 0, 5);
    push(2, 1, 9);
    push(3, 0, 5);
    push(4, 2, 0);
    ck_assert_uint_eq(s.len[5], 2);
    ck_assert_int_eq(pop(), 2);
    ck_assert_int_eq(pop(), 1);
    ck_assert_int_eq(pop(), 3);
    ck_assert_int_eq(pop(), 0);
    ck_assert_int_eq(pop(), 4);
}
END_TEST

START_TEST(test_round_robin_between_clients)
{
    /* client 0 queues 6 jobs before client 1 queues 2 and client 2 queues 1 */
    for (int i = 0; i < 6; i++)
        push(i, 0, 5);
    push(10, 1, 5);
    push(11, 1, 5);
    push(20, 2, 5);
    int order[9];
    for (int i = 0; i < 9; i++)
        order[i] = pop();
    int expect[9] = {0, 10, 20, 1, 11, 2, 3, 4, 5};
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(order[i], expect[i]);
}
END_TEST

START_TEST(test_remove_and_front)
{
    tjob_t *a = push(0, 0, 5);
    push(1, 0, 5);
    tjob_t *c = push(2, 1, 5);
    sched_remove(&s, &a->item);
    sched_remove(&s, &a->item); /* twice is harmless */
    ck_assert_ptr_null(a->item.lane);
    sched_remove(&s, &c->item);
    ck_assert_uint_eq(s.total, 1);
    /* a retried job goes to the front of its lane */
    jobs[3] = (tjob_t){.n = 3};
    sched_push(&s, &clients[0].lanes[5], &jobs[3].item, true);
    ck_assert_int_eq(pop(), 3);
    ck_assert_int_eq(pop(), 1);
    ck_assert_int_eq(pop(), -1);
    for (unsigned p = 0; p < SCHED_NPRIO; p++) {
        ck_assert_ptr_null(s.ring[p]);
        ck_assert_uint_eq(s.len[p], 0);
    }
}
END_TEST

START_TEST(test_many_clients_interleave)
{
    /* 4 clients x 8 jobs: any window of 4 consecutive pops serves 4 distinct clients */
    for (int c = 0; c < 4; c++)
        for (int k = 0; k < 8; k++)
            push(c * 8 + k, c, 3);
    for (int w = 0; w < 8; w++) {
        int seen = 0;
        for (int k = 0; k < 4; k++)
            seen |= 1 << (pop() / 8);
        ck_assert_int_eq(seen, 0xf);
    }
}
END_TEST

/* sched_take: a job taken past the first (the first could not run) gives its client's turn
 * away as a pop does: the other client's jobs come next. */
START_TEST(test_take_gives_the_turn_away)
{
    push(0, 0, 5);
    push(1, 1, 5);
    push(2, 0, 5);
    push(3, 1, 5);
    sched_take(&s, &jobs[0].item); /* client 0 had its turn: to the back */
    ck_assert_uint_eq(s.total, 3);
    ck_assert_int_eq(pop(), 1); /* client 1 (sched_remove would have left client 0 first) */
    ck_assert_int_eq(pop(), 2);
    ck_assert_int_eq(pop(), 3);
    sched_take(&s, &jobs[3].item); /* not queued: nothing */
    ck_assert_uint_eq(s.total, 0);
}
END_TEST

static Suite *sched_suite(void)
{
    Suite *su = suite_create("sched");
    TCase *tc = tcase_create("queue");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_fifo_within_client);
    tcase_add_test(tc, test_priority_order);
    tcase_add_test(tc, test_round_robin_between_clients);
    tcase_add_test(tc, test_remove_and_front);
    tcase_add_test(tc, test_take_gives_the_turn_away);
    tcase_add_test(tc, test_many_clients_interleave);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    return run_suite(sched_suite());
}
