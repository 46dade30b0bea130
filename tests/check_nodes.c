/* check_nodes.c - end to end, worker nodes (PROTOCOL.md section 14): real forqd processes, a
 * head with --node-listen on tcp://127.0.0.1 and nodes that --join it (plaintext under
 * --insecure-tcp on loopback, and CURVE with the node role). Jobs spread over every node and
 * are each answered once; a task or tag only one node has goes only there; tasks on nodes use
 * the head's dict service; a blocked job does not hold the queue; priorities and retries
 * across the hop; cancel and timeout of a job on a node; the node settings; keys that are
 * unknown, or lack the node role, are refused. Failures (lost nodes and heads): check_nodes_fail.c.
 */
#define _GNU_SOURCE
#include "nodes_util.h"

#include <check.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* 10,000 jobs (2,000 quick) over a head and three nodes: every one answered once, with its
 * own result, and every node took a share. */
START_TEST(test_jobs_spread_over_nodes_each_answered_once)
{
    forqd_t n[3] = {0};
    const char *names[3] = {"n1", "n2", "n3"};
    int total = test_quick() ? 2000 : 10000;
    forq_future_t **f = calloc((size_t)total, sizeof(*f));
    char args[32], want[32];

    start_head(1, NULL);
    for (int i = 0; i < 3; i++)
        start_node(&n[i], names[i], 2, true, NULL);
    wait_nodes(3);
    for (int i = 0; i < total; i++) {
        snprintf(args, sizeof(args), "[%d]", i);
        f[i] = submit_json(c, "echo", args, NULL);
    }
    for (int i = 0; i < total; i++) {
        snprintf(want, sizeof(want), "[%d]", i);
        ASSERT_RESULT(f[i], want);
        ck_assert_uint_eq(forq_future_attempts(f[i]), 1);
        forq_future_destroy(&f[i]);
    }
    free(f);
    ck_assert_int_eq(stat_of(c, "submitted"), total);
    ck_assert_int_eq(stat_of(c, "ok"), total);
    ck_assert_int_eq(stat_of(c, "lost") + stat_of(c, "retried"), 0);
    long long at_nodes = 0;
    for (int i = 0; i < 3; i++) {
        long long done = node_stat(names[i], "done");
        ck_assert_msg(done > 0, "node %s ran no job", names[i]);
        at_nodes += done;
    }
    ck_assert_int_le(at_nodes, total);
    ck_assert_int_eq(stat_of(c, "node_slots"), 6);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(forqd_stop(&n[i]), 0);
    e2e_down(&head, &c);
}
END_TEST

/* A task only one node has runs only there; a task nobody has is rejected; tags choose. */
START_TEST(test_task_and_tags_choose_the_node)
{
    forqd_t a = {0}, b = {0}, g = {0};
    forq_future_t *f[20];
    forq_submit_opts_t o = submit_opts();

    start_head(1, NULL);
    start_node(&a, "has-plugin", 1, true, NULL);
    start_node(&b, "builtins", 1, false, NULL);
    start_node(&g, "gpu-box", 1, false, (const char *const[]){"--tag", "gpu", NULL});
    wait_nodes(3);
    for (int i = 0; i < 20; i++)
        f[i] = submit_json(c, "getpid", "[]", NULL);
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(wait_state(f[i], 30000), FORQ_STATE_OK);
        forq_future_destroy(&f[i]);
    }
    ck_assert_int_eq(node_stat("has-plugin", "done"), 20);
    ck_assert_int_eq(node_stat("builtins", "done"), 0);
    ck_assert_int_eq(node_stat("gpu-box", "done"), 0);
    f[0] = submit_json(c, "no_such_task", "[]", NULL);
    ck_assert_int_eq(wait_state(f[0], 10000), FORQ_STATE_REJECTED);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(f[0]), "no task 'no_such_task'"));
    forq_future_destroy(&f[0]);
    /* echo is everywhere; with tags=gpu only the tagged node may run it */
    o.tags = "gpu";
    for (int i = 0; i < 20; i++)
        f[i] = submit_json(c, "echo", "[1]", &o);
    for (int i = 0; i < 20; i++) {
        ASSERT_RESULT(f[i], "[1]");
        forq_future_destroy(&f[i]);
    }
    ck_assert_int_eq(node_stat("gpu-box", "done"), 20);
    ck_assert_int_eq(forqd_stop(&a), 0);
    ck_assert_int_eq(forqd_stop(&b), 0);
    ck_assert_int_eq(forqd_stop(&g), 0);
    e2e_down(&head, &c);
}
END_TEST

/* Tasks on every node reach the head's dict service through their node: incr from all of them
 * adds up exactly, in the head's dict, and none lands in a node's own. */
START_TEST(test_dict_incr_from_every_node_adds_up)
{
    forqd_t n[3] = {0};
    const char *names[3] = {"d1", "d2", "d3"};
    forq_future_t *f[6];
    int per = test_quick() ? 50 : 200;
    char args[64];
    void *v;
    size_t len;

    start_head(1, NULL);
    for (int i = 0; i < 3; i++)
        start_node(&n[i], names[i], 2, true, NULL);
    wait_nodes(3);
    snprintf(args, sizeof(args), "[\"shared\", \"count\", %d]", per);
    for (int i = 0; i < 6; i++) /* dict_count is the test plugin's: the nodes' alone */
        f[i] = submit_json(c, "dict_count", args, NULL);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(wait_state(f[i], 30000), FORQ_STATE_OK);
        forq_future_destroy(&f[i]);
    }
    for (int i = 0; i < 3; i++)
        ck_assert_int_gt(node_stat(names[i], "done"), 0);
    ck_assert_int_eq(forq_dict_get(c, "shared", "count", 5000, &v, &len, NULL), FORQ_OK);
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    msgpack_zone_init(&zone, 256);
    ck_assert_int_eq(msgpack_unpack(v, len, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_eq(o.via.u64, 6u * (unsigned)per);
    msgpack_zone_destroy(&zone);
    free(v);
    for (int i = 0; i < 3; i++) {
        forq_client_t *cn = forqd_client(&n[i]);
        ck_assert_int_eq(forq_dict_get(cn, "shared", "count", 5000, &v, &len, NULL),
                         FORQ_ERR_NOT_FOUND);
        forq_client_destroy(&cn);
        ck_assert_int_eq(forqd_stop(&n[i]), 0);
    }
    e2e_down(&head, &c);
}
END_TEST

/* A job that can go nowhere now (its tag only on a busy node) does not hold back the jobs
 * behind it that the head's own workers can run. */
START_TEST(test_blocked_job_does_not_hold_the_queue)
{
    forqd_t g = {0};
    forq_future_t *gpu[4], *plain;
    forq_submit_opts_t o = submit_opts();

    start_head(1, NULL);
    start_node(&g, "gpu-only", 1, false, (const char *const[]){"--tag", "gpu", NULL});
    wait_nodes(1);
    o.tags = "gpu";
    for (int i = 0; i < 4; i++) /* the node holds 2; 2 wait at the head of the queue */
        gpu[i] = submit_json(c, "sleep", "[0.5]", &o);
    wait_running(c, forq_future_id(gpu[0]));
    plain = submit_json(c, "echo", "[5]", NULL);
    ck_assert_int_eq(wait_state(plain, 400), FORQ_STATE_OK); /* long before the gpu jobs */
    ck_assert(!forq_future_done(gpu[2]));
    forq_future_destroy(&plain);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(wait_state(gpu[i], 10000), FORQ_STATE_OK);
        forq_future_destroy(&gpu[i]);
    }
    ck_assert_int_eq(node_stat("gpu-only", "done"), 4);
    ck_assert_int_eq(forqd_stop(&g), 0);
    e2e_down(&head, &c);
}
END_TEST

/* Across the hop: priorities order what waits at the head (a high-priority job overtakes the
 * low ones queued before it), a crash at the node is retried by the head (one attempt more),
 * and a crash without retries is answered crashed with the node's signal. */
START_TEST(test_priorities_and_retries_across_the_hop)
{
    forqd_t a = {0};
    forq_future_t *low[6], *high, *f;
    forq_submit_opts_t o = submit_opts();
    char dir[256], args[400];

    start_head(1, NULL);
    start_node(&a, "one", 1, true, (const char *const[]){"--tag", "n", NULL});
    wait_nodes(1);
    o.tags = "n";
    o.priority = 1;
    for (int i = 0; i < 6; i++) /* 2 go to the node (its credit of a long task), 4 wait */
        low[i] = submit_json(c, "sleep", "[0.2]", &o);
    wait_running(c, forq_future_id(low[0]));
    o.priority = 9;
    high = submit_json(c, "sleep", "[0.2]", &o);
    ck_assert_int_eq(wait_state(high, 10000), FORQ_STATE_OK);
    int done_before = 0;
    for (int i = 2; i < 6; i++)
        done_before += forq_future_done(low[i]);
    ck_assert_int_eq(done_before, 0); /* none of the waiting low ones ran before it */
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(wait_state(low[i], 10000), FORQ_STATE_OK);
        forq_future_destroy(&low[i]);
    }
    forq_future_destroy(&high);
    /* a crash at the node: retried by the head */
    temp_dir(dir, sizeof(dir), "forq-crash");
    snprintf(args, sizeof(args), "[\"%s/once\"]", dir);
    o = submit_opts();
    o.retries = 1;
    f = submit_json(c, "crash_once", args, &o);
    ASSERT_RESULT(f, "\"ok\"");
    ck_assert_uint_eq(forq_future_attempts(f), 2);
    forq_future_destroy(&f);
    ck_assert_int_eq(stat_of(c, "retried"), 1);
    f = submit_json(c, "segv", "[]", NULL);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_CRASHED);
    ck_assert_int_eq(forq_future_signal(f), SIGSEGV);
    forq_future_destroy(&f);
    ck_assert_int_eq(forqd_stop(&a), 0);
    e2e_down(&head, &c);
}
END_TEST

/* Cancel of a job queued at a node and of one running there; a run timeout enforced there. */
START_TEST(test_cancel_and_timeout_on_a_node)
{
    forqd_t a = {0};
    forq_future_t *run, *queued, *slow;
    forq_submit_opts_t o = submit_opts();

    start_head(1, NULL);
    start_node(&a, "solo", 1, true, NULL);
    wait_nodes(1);
    run = submit_json(c, "spin", "[]", NULL);
    queued = submit_json(c, "spin", "[]", NULL); /* credit 2: held at the node, queued there */
    wait_running(c, forq_future_id(run));
    ck_assert_int_eq(node_stat("solo", "inflight"), 2);
    /* the operator's list shows both: running at the node, by its name */
    void *data;
    size_t len, off = 0;
    msgpack_zone zone;
    msgpack_object o2;
    ck_assert_int_eq(forq_client_jobs(c, "running", NULL, 0, 5000, &data, &len, NULL), FORQ_OK);
    msgpack_zone_init(&zone, 1024);
    ck_assert_int_eq(msgpack_unpack(data, len, &off, &zone, &o2), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(o2.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(o2.via.array.size, 2);
    const msgpack_object *where = map_get(&o2.via.array.ptr[0], "node");
    ck_assert(where && str_is(where, "solo"));
    msgpack_zone_destroy(&zone);
    free(data);
    ck_assert_int_eq(forq_future_cancel(queued, 5000, NULL), FORQ_OK);
    ck_assert_int_eq(wait_state(queued, 10000), FORQ_STATE_CANCELLED);
    ck_assert_int_eq(forq_future_cancel(run, 5000, NULL), FORQ_OK);
    ck_assert_int_eq(wait_state(run, 10000), FORQ_STATE_CANCELLED);
    o.timeout = 0.3;
    slow = submit_json(c, "spin", "[]", &o);
    ck_assert_int_eq(wait_state(slow, 10000), FORQ_STATE_TIMEOUT);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(slow), "timeout of 300 ms"));
    ck_assert_int_eq(node_stat("solo", "inflight"), 0);
    forq_future_destroy(&run);
    forq_future_destroy(&queued);
    forq_future_destroy(&slow);
    ck_assert_int_eq(forqd_stop(&a), 0);
    e2e_down(&head, &c);
}
END_TEST

/* The node settings are checked before anything starts, each error one line that says what
 * to do. */
START_TEST(test_node_settings_checked)
{
    static const struct {
        const char *args[6];
        const char *says;
    } bad[] = {
        {{"--join", "tcp://127.0.0.1:1", NULL}, "needs head-key (the head's forqd --show-key)"},
        {{"--join", "tcp://127.0.0.1:1", "--node-listen", "tcp://127.0.0.1:1", "--insecure-tcp",
          NULL},
         "is this forqd's own node-listen"},
        {{"--join", "udp://x", NULL}, "takes the head's node endpoint, tcp://HOST:PORT"},
        {{"--tag", "a,b", NULL}, "--tag takes a name of 1-64"},
        {{"--heartbeat", "5", NULL}, "--heartbeat takes a whole number from 10"},
        {{"--head-key", "short", NULL}, "--head-key takes the head's public key, 40 Z85"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        forqd_t d = {0};
        ck_assert_int_eq(forqd_start_fail(&d, bad[i].args), 1);
        ck_assert_msg(forqd_log_has(&d, bad[i].says), "case %zu: no '%s' in the log", i,
                      bad[i].says);
    }
}
END_TEST

/* ---- keys ---- */

/* `forqd --server-key FILE --show-key`: makes the pair, prints the public key into pub. */
static void make_key(const char *file, char pub[41])
{
    char cmd[600], out[128];

    snprintf(cmd, sizeof(cmd), "'%s' --server-key '%s' --show-key", getenv("FORQD"), file);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 0);
    ck_assert_uint_ge(strlen(out), 40);
    memcpy(pub, out, 40);
    pub[40] = '\0';
}

/* Over CURVE: a node whose key has the node role joins; an unknown key fails the handshake,
 * and so does a listed key without the node role; both are logged, and the nodes say what to
 * check. */
START_TEST(test_node_keys_curve_and_roles)
{
    char dir[256], hkey[300], k1[300], k2[300], k3[300], clients[300], line[400];
    char hpub[41], p1[41], p2[41], p3[41];
    forqd_t good = {0}, norole = {0}, unknown = {0};
    const char *args[16];
    int n = 0;
    FILE *fp;

    pick_port();
    temp_dir(dir, sizeof(dir), "forq-keys");
    snprintf(hkey, sizeof(hkey), "%s/head.key", dir);
    snprintf(k1, sizeof(k1), "%s/good.key", dir);
    snprintf(k2, sizeof(k2), "%s/norole.key", dir);
    snprintf(k3, sizeof(k3), "%s/unknown.key", dir);
    snprintf(clients, sizeof(clients), "%s/clients", dir);
    make_key(hkey, hpub);
    make_key(k1, p1);
    make_key(k2, p2);
    make_key(k3, p3);
    ck_assert_ptr_nonnull(fp = fopen(clients, "w"));
    fprintf(fp, "%s good node\n%s norole tasks=*\n", p1, p2);
    fclose(fp);
    chmod(clients, 0600);
    args[n++] = "--workers";
    args[n++] = "1";
    args[n++] = "--node-listen";
    args[n++] = head_ep;
    args[n++] = "--heartbeat";
    args[n++] = hb_ms();
    args[n++] = "--clients";
    args[n++] = clients;
    args[n++] = "--server-key";
    args[n++] = hkey;
    args[n] = NULL;
    forqd_start(&head, args);
    c = forqd_client(&head);
    start_node(&good, "good", 1, true,
               (const char *const[]){"--curve", "--server-key", k1, "--head-key", hpub, NULL});
    start_node(&norole, "norole", 1, true,
               (const char *const[]){"--curve", "--server-key", k2, "--head-key", hpub, NULL});
    start_node(&unknown, "unknown", 1, true,
               (const char *const[]){"--curve", "--server-key", k3, "--head-key", hpub, NULL});
    wait_nodes(1);
    ck_assert_int_eq(node_stat("good", "slots"), 1);
    snprintf(line, sizeof(line), "its public key %s is not in the clients file", p3);
    wait_log(&head, line, 5000);
    wait_log(&head, "refused a node at", 5000); /* in the handshake: no node role */
    wait_log(&head, "(norole) has no node role", 5000);
    wait_log(&norole, "no answer from the head", 8000);
    wait_log(&unknown, "no answer from the head", 8000);
    ck_assert_int_eq(node_stat("norole", "slots"), -1);
    ck_assert_int_eq(node_stat("unknown", "slots"), -1);
    forq_future_t *f = submit_json(c, "getpid", "[]", NULL); /* only the good node has it */
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_OK);
    forq_future_destroy(&f);
    ck_assert_int_eq(node_stat("good", "done"), 1);
    ck_assert_int_eq(forqd_stop(&good), 0);
    ck_assert_int_eq(forqd_stop(&norole), 0);
    ck_assert_int_eq(forqd_stop(&unknown), 0);
    e2e_down(&head, &c);
}
END_TEST

static Suite *nodes_suite(void)
{
    Suite *s = suite_create("nodes");
    TCase *core = tcase_create("core"), *full;

    tcase_set_timeout(core, test_ms(120));
    tcase_add_test(core, test_jobs_spread_over_nodes_each_answered_once);
    tcase_add_test(core, test_cancel_and_timeout_on_a_node);
    tcase_add_test(core, test_node_keys_curve_and_roles);
    tcase_add_test(core, test_node_settings_checked);
    suite_add_tcase(s, core);
    /* under valgrind (FORQ_TEST_CORE_ONLY) the core cases only */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(120));
    tcase_add_test(full, test_task_and_tags_choose_the_node);
    tcase_add_test(full, test_dict_incr_from_every_node_adds_up);
    tcase_add_test(full, test_blocked_job_does_not_hold_the_queue);
    tcase_add_test(full, test_priorities_and_retries_across_the_hop);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(nodes_suite());
}
