/* check_nodes_fail.c - end to end, worker nodes when things go wrong (PROTOCOL.md 14.5): a
 * node killed in the middle of a map has its jobs retried and the map completes; a frozen node
 * (SIGSTOP) is lost within 3 heartbeats and its late results are dropped, and it rejoins and
 * gets work again; a frozen head keeps its node, which reports its job; a node that leaves
 * (SIGTERM) drains; a head restarted under a node; a node whose head stays away past
 * --node-grace cancels what it kept. Real forqd processes on tcp 127.0.0.1 (nodes_util.h). */
#define _GNU_SOURCE
#include "nodes_util.h"

#include <check.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- failures ---- */

/* kill -9 of a node in the middle of a map: the chunks it held are retried elsewhere, every
 * item is answered, the map completes. */
START_TEST(test_node_killed_mid_map_map_completes)
{
    forqd_t n[3] = {0};
    const char *names[3] = {"k1", "k2", "k3"};
    size_t items = 240;
    const void **it = calloc(items, sizeof(*it));
    size_t *lens = calloc(items, sizeof(*lens));
    static const char item[] = {(char)0xcb, 0x3f,       (char)0x94, 0x7a, (char)0xe1,
                                0x47,       (char)0xae, 0x14,       0x7b}; /* 0.02 (float 64) */
    forq_map_opts_t mo;
    forq_map_t *m;
    forq_map_item_t r;
    size_t got = 0;

    start_head(1, (const char *const[]){"--tag", "head", NULL});
    for (int i = 0; i < 3; i++)
        start_node(&n[i], names[i], 2, false, (const char *const[]){"--tag", "n", NULL});
    wait_nodes(3);
    for (size_t i = 0; i < items; i++) {
        it[i] = item;
        lens[i] = sizeof(item);
    }
    forq_map_opts_init(&mo);
    mo.chunksize = 4;
    mo.window = 16;
    mo.job.retries = 3;
    mo.job.tags = "n"; /* nodes only: the head's own worker takes none */
    ck_assert_int_eq(forq_map(c, "sleep", (const void *const *)it, lens, items, &mo, &m), FORQ_OK);
    while (got < 20) {
        ck_assert_int_eq(forq_map_next(m, test_ms(30000), &r), FORQ_OK);
        ck_assert_int_eq(r.state, FORQ_STATE_OK);
        got++;
    }
    ck_assert_int_gt(node_stat("k2", "inflight"), 0);
    e2e_kill(&n[1]);
    for (; forq_map_next(m, test_ms(30000), &r) == FORQ_OK; got++)
        ck_assert_msg(r.state == FORQ_STATE_OK, "item %zu: %s", r.index, r.detail);
    ck_assert_uint_eq(got, items);
    ck_assert_uint_eq(forq_map_failed(m), 0);
    forq_map_destroy(&m);
    ck_assert_int_gt(stat_of(c, "retried"), 0);
    ck_assert_int_eq(stat_of(c, "lost"), 0);
    ck_assert_int_eq(node_stat("k2", "done"), -1); /* gone from the list */
    ck_assert(forqd_log_has(&head, "node k2 lost"));
    free(it);
    free(lens);
    ck_assert_int_eq(forqd_stop(&n[0]), 0);
    ck_assert_int_eq(forqd_stop(&n[2]), 0);
    e2e_down(&head, &c);
}
END_TEST

/* A frozen node (SIGSTOP) is lost within 3 heartbeats; its jobs run elsewhere; when it thaws
 * its late results are dropped (each job answered once), and it rejoins and gets work again.
 * A job without retries that was on it is answered lost, naming the node. */
START_TEST(test_frozen_node_lost_late_results_dropped_rejoins)
{
    forqd_t a = {0}, b = {0};
    forq_future_t *f[4], *once;
    forq_submit_opts_t o = submit_opts();
    uint64_t t0;

    start_head(1, NULL);
    start_node(&a, "frozen", 1, false, (const char *const[]){"--tag", "n", NULL});
    wait_nodes(1);
    o.tags = "n";
    once = submit_json(c, "sleep", "[0.5]", &o); /* no retries: lost with its node */
    o.retries = 2;
    for (int i = 0; i < 4; i++)
        f[i] = submit_json(c, "sleep", "[0.5]", &o);
    wait_running(c, forq_future_id(once));
    start_node(&b, "thawed", 2, false, (const char *const[]){"--tag", "n", NULL});
    wait_nodes(2);
    kill(a.pid, SIGSTOP);
    t0 = mono_ms();
    while (node_stat("frozen", "slots") >= 0 && mono_ms() - t0 < 5000)
        usleep(10000);
    /* 3 intervals of 200 ms, and the head's turn and this poll */
    ck_assert_msg(mono_ms() - t0 < 1200, "the frozen node was lost after %llu ms",
                  (unsigned long long)(mono_ms() - t0));
    ck_assert_int_eq(wait_state(once, 10000), FORQ_STATE_LOST);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(once), "node frozen lost"));
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(wait_state(f[i], 10000), FORQ_STATE_OK);
    usleep(300000); /* the frozen node's workers finished their sleeps meanwhile */
    kill(a.pid, SIGCONT);
    wait_log(&head, "dropped the late result", 5000);
    wait_nodes(2); /* it rejoined */
    ck_assert_int_eq(stat_of(c, "ok"), 4);
    ck_assert_int_eq(stat_of(c, "lost"), 1);
    /* it gets work again: more jobs than the other node has credit for */
    for (int i = 0; i < 4; i++)
        forq_future_destroy(&f[i]);
    for (int i = 0; i < 4; i++)
        f[i] = submit_json(c, "sleep", "[0.3]", &o);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(wait_state(f[i], 10000), FORQ_STATE_OK);
        forq_future_destroy(&f[i]);
    }
    ck_assert_int_gt(node_stat("frozen", "done"), 0);
    ck_assert_int_eq(stat_of(c, "ok"), 8);
    forq_future_destroy(&once);
    ck_assert_int_eq(forqd_stop(&a), 0);
    ck_assert_int_eq(forqd_stop(&b), 0);
    e2e_down(&head, &c);
}
END_TEST

/* A head frozen for longer than 3 heartbeats: its node loses it, keeps its job running, joins
 * again when the head thaws and reports the job, which ends ok on its first attempt. */
START_TEST(test_frozen_head_node_keeps_and_reports_its_job)
{
    forqd_t a = {0};
    forq_future_t *f;
    forq_submit_opts_t o = submit_opts();

    start_head(1, NULL);
    start_node(&a, "patient", 1, false, (const char *const[]){"--tag", "n", NULL});
    wait_nodes(1);
    o.tags = "n";
    f = submit_json(c, "sleep", "[2]", &o);
    wait_running(c, forq_future_id(f));
    kill(head.pid, SIGSTOP);
    wait_log(&a, "lost the head", 5000);
    kill(head.pid, SIGCONT);
    wait_log(&a, "rejoined", 5000);
    ck_assert(forqd_log_has(&a, "1 run(s) held"));
    ck_assert_int_eq(node_stat("patient", "inflight"), 1);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_OK);
    ck_assert_uint_eq(forq_future_attempts(f), 1);
    forq_future_destroy(&f);
    ck_assert_int_eq(stat_of(c, "lost") + stat_of(c, "retried"), 0);
    ck_assert(!forqd_log_has(&head, "node patient lost"));
    ck_assert_int_eq(forqd_stop(&a), 0);
    e2e_down(&head, &c);
}
END_TEST

/* A node that leaves (SIGTERM) says so, finishes the job it runs and hands back the one it had
 * not started, which runs on another node: no attempt lost, nothing retried, exit 0. */
START_TEST(test_node_leaves_cleanly_its_jobs_finish_or_move)
{
    forqd_t a = {0}, b = {0};
    forq_future_t *f[4];
    forq_submit_opts_t o = submit_opts();
    int status;

    start_head(1, NULL);
    start_node(&a, "leaver", 1, false, (const char *const[]){"--tag", "n", NULL});
    wait_nodes(1);
    o.tags = "n";
    for (int i = 0; i < 2; i++) /* credit 2: one runs at the node, one waits there */
        f[i] = submit_json(c, "sleep", "[0.4]", &o);
    wait_running(c, forq_future_id(f[0]));
    ck_assert_int_eq(node_stat("leaver", "inflight"), 2);
    start_node(&b, "stayer", 1, false, (const char *const[]){"--tag", "n", NULL});
    wait_nodes(2);
    for (int i = 2; i < 4; i++)
        f[i] = submit_json(c, "sleep", "[0.4]", &o);
    kill(a.pid, SIGTERM);
    ck_assert_int_eq(waitpid(a.pid, &status, 0), a.pid);
    a.pid = 0;
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(wait_state(f[i], 10000), FORQ_STATE_OK);
        ck_assert_uint_eq(forq_future_attempts(f[i]), 1);
        forq_future_destroy(&f[i]);
    }
    /* "is leaving" (its bye) comes first unless it had nothing left to finish */
    wait_log(&head, "node leaver left", 5000);
    ck_assert_int_eq(stat_of(c, "retried") + stat_of(c, "lost"), 0);
    ck_assert_int_gt(node_stat("stayer", "done"), 0); /* how many depends on timing */
    ck_assert_int_eq(forqd_stop(&b), 0);
    e2e_down(&head, &c);
}
END_TEST

/* The head killed and started again under its node: the node rejoins, the run it held for the
 * old head is cancelled there, and it gets the new head's work. */
START_TEST(test_head_restarted_node_rejoins)
{
    forqd_t a = {0};
    forq_client_t *ca;
    forq_future_t *f;
    int status;

    start_head(1, NULL);
    start_node(&a, "steady", 1, true, NULL);
    wait_nodes(1);
    f = submit_json(c, "spin", "[]", NULL);
    wait_running(c, forq_future_id(f));
    forq_future_destroy(&f);
    forq_client_destroy(&c);
    kill(head.pid, SIGKILL);
    waitpid(head.pid, &status, 0);
    head.pid = 0;
    start_head(1, NULL); /* the same port: this test process's */
    wait_nodes(1);
    wait_log(&a, "rejoined", 5000);
    ca = forqd_client(&a);
    for (int i = 0; i < test_ms(100) && stat_of(ca, "cancelled") < 1; i++)
        usleep(50000);
    ck_assert_int_eq(stat_of(ca, "cancelled"), 1); /* the old head's spin */
    forq_client_destroy(&ca);
    f = submit_json(c, "getpid", "[]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_OK);
    forq_future_destroy(&f);
    ck_assert_int_eq(node_stat("steady", "done"), 1);
    ck_assert_int_eq(forqd_stop(&a), 0);
    e2e_down(&head, &c);
}
END_TEST

/* A node whose head does not come back within --node-grace cancels the job it kept. */
START_TEST(test_node_grace_over_cancels_kept_jobs)
{
    forqd_t a = {0};
    forq_client_t *ca;
    forq_future_t *f;
    forq_submit_opts_t o = submit_opts();
    int status;

    start_head(1, NULL);
    start_node(&a, "orphan", 1, false,
               (const char *const[]){"--tag", "n", "--node-grace", "1", NULL});
    wait_nodes(1);
    o.tags = "n";
    f = submit_json(c, "sleep", "[30]", &o);
    wait_running(c, forq_future_id(f));
    forq_future_destroy(&f);
    forq_client_destroy(&c);
    kill(head.pid, SIGKILL);
    waitpid(head.pid, &status, 0);
    head.pid = 0;
    wait_log(&a, "lost the head", 5000);
    wait_log(&a, "stayed away longer than --node-grace: 1 run(s) cancelled", 5000);
    ca = forqd_client(&a);
    for (int i = 0; i < test_ms(100) && stat_of(ca, "cancelled") < 1; i++)
        usleep(50000);
    ck_assert_int_eq(stat_of(ca, "cancelled"), 1);
    ck_assert_int_eq(stat_of(ca, "running"), 0);
    forq_client_destroy(&ca);
    ck_assert_int_eq(forqd_stop(&a), 0);
    forqd_stop(&head); /* its directory */
}
END_TEST

static Suite *nodes_fail_suite(void)
{
    Suite *s = suite_create("nodes_fail");
    TCase *core = tcase_create("core"), *full;

    tcase_set_timeout(core, test_ms(120));
    tcase_add_test(core, test_node_leaves_cleanly_its_jobs_finish_or_move);
    suite_add_tcase(s, core);
    /* under valgrind (FORQ_TEST_CORE_ONLY) the core case only: the others time losses */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(120));
    tcase_add_test(full, test_node_killed_mid_map_map_completes);
    tcase_add_test(full, test_frozen_node_lost_late_results_dropped_rejoins);
    tcase_add_test(full, test_frozen_head_node_keeps_and_reports_its_job);
    tcase_add_test(full, test_head_restarted_node_rejoins);
    tcase_add_test(full, test_node_grace_over_cancels_kept_jobs);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(nodes_fail_suite());
}
