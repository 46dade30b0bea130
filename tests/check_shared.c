/* check_shared.c - the other shared types end to end against a real forqd: locks (leases that
 * end, tokens that grow, fenced writes refused once stale, semaphores, mutual exclusion of 4
 * clients on a non-atomic counter, a holder SIGKILLed: the test runs itself again as that
 * holder, `check_shared --holder FD ENDPOINT`), events; queues, locks and events across a
 * restart, from tasks, and from the CLI. Queues on their own: check_queue.c; withdrawing a
 * blocked request: check_withdraw.c. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "shared_util.h"

/* ---- locks ---- */

typedef struct {
    const forqd_t *d;
    const char *name;
    int timeout_ms;
    uint64_t token;
    forq_err_t e;
    atomic_int done;
} acquirer_t;

static void *acquirer_main(void *arg)
{
    acquirer_t *a = arg;
    forq_client_t *cl = forqd_client(a->d);
    a->e = forq_lock_acquire(cl, a->name, 0, a->timeout_ms, &a->token);
    atomic_store(&a->done, 1);
    forq_client_destroy(&cl);
    return NULL;
}

START_TEST(test_lock_operations)
{
    acquirer_t a = {.d = &d, .name = "L", .timeout_ms = -1};
    uint64_t t1, t2, t3, t4;
    pthread_t th;

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(forq_lock_acquire(c, "L", 0, 0, &t1), FORQ_OK);
    ck_assert_int_eq(forq_lock_acquire(c, "L", 0, 0, &t2), FORQ_ERR_TIMEOUT);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "lock 'L' is held"));
    uint64_t t0 = ms_now();
    ck_assert_int_eq(forq_lock_acquire(c, "L", 0, 200, &t2), FORQ_ERR_TIMEOUT);
    ck_assert_uint_ge(ms_now() - t0, 190);
    /* a waiter gets it on release, with a larger token */
    pthread_create(&th, NULL, acquirer_main, &a);
    wait_stat(c, "shared_waiters", 1);
    ck_assert_int_eq(forq_lock_renew(c, "L", t1, 5000, T), FORQ_OK);
    ck_assert_int_eq(forq_lock_release(c, "L", t1, T), FORQ_OK);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.e, FORQ_OK);
    ck_assert_uint_gt(a.token, t1);
    /* the old token holds nothing any more */
    ck_assert_int_eq(forq_lock_release(c, "L", t1, T), FORQ_ERR_CONFLICT);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "does not hold lock 'L'"));
    ck_assert_int_eq(forq_lock_renew(c, "L", t1, 0, T), FORQ_ERR_CONFLICT);
    ck_assert_int_eq(forq_lock_release(c, "L", a.token, T), FORQ_OK);
    ck_assert_int_eq(stat_of(c, "locks_held"), 0);
    /* a semaphore of 2 */
    ck_assert_int_eq(forq_sem_acquire(c, "S", 2, 0, 0, &t2), FORQ_OK);
    ck_assert_int_eq(forq_sem_acquire(c, "S", 2, 0, 0, &t3), FORQ_OK);
    ck_assert_int_eq(forq_sem_acquire(c, "S", 2, 0, 0, &t4), FORQ_ERR_TIMEOUT);
    ck_assert_uint_gt(t3, t2);
    ck_assert_int_eq(forq_lock_release(c, "S", t2, T), FORQ_OK);
    ck_assert_int_eq(forq_sem_acquire(c, "S", 2, 0, 0, &t4), FORQ_OK);
    ck_assert_uint_gt(t4, t3);
    ck_assert_int_eq(stat_of(c, "locks_held"), 2);
    ck_assert_int_eq(forq_sem_acquire(c, "S", 0, 0, 0, &t4), FORQ_ERR_INVALID);
    ck_assert_int_eq(forq_lock_acquire(c, "L", 100000000, 0, &t4), FORQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "more than a day"));
    e2e_down(&d, &c);
}
END_TEST

/* A lease that is not renewed ends by itself; the holder's fenced writes are refused from then
 * on, and the next grant's token is larger. */
START_TEST(test_lease_ends_and_fence_refuses)
{
    msgpack_sbuffer one = val_int(1), two = val_int(2);
    uint64_t t1, t2, ver;

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(forq_lock_acquire(c, "F", 300, 0, &t1), FORQ_OK);
    ck_assert_int_eq(forq_dict_set_fenced(c, "data", "k", one.data, one.size, "F", t1, T, &ver),
                     FORQ_OK);
    ck_assert_int_eq(
        forq_dict_cas_fenced(c, "data", "k", ver, two.data, two.size, "F", t1, T, &ver), FORQ_OK);
    ck_assert_int_eq(forq_dict_cas_fenced(c, "data", "k", 1, two.data, two.size, "F", t1, T, NULL),
                     FORQ_ERR_CONFLICT); /* the version, not the fence */
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "is at version"));
    usleep(test_ms(600) * 1000);
    ck_assert_int_eq(stat_of(c, "locks_held"), 0);
    ck_assert(forqd_log_has(&d, "the lease of token"));
    ck_assert_int_eq(forq_dict_set_fenced(c, "data", "k", one.data, one.size, "F", t1, T, NULL),
                     FORQ_ERR_CONFLICT);
    ck_assert_msg(strstr(forq_errdetail(), "stale_token"), "%s", forq_errdetail());
    ck_assert_int_eq(forq_lock_acquire(c, "F", 0, 0, &t2), FORQ_OK);
    ck_assert_uint_gt(t2, t1);
    ck_assert_int_eq(forq_dict_set_fenced(c, "data", "k", one.data, one.size, "F", t1, T, NULL),
                     FORQ_ERR_CONFLICT);
    ck_assert_int_eq(forq_dict_set_fenced(c, "data", "k", one.data, one.size, "F", t2, T, NULL),
                     FORQ_OK);
    /* a renewed lease does not end */
    ck_assert_int_eq(forq_lock_renew(c, "F", t2, 300, T), FORQ_OK);
    for (int i = 0; i < 4; i++) {
        usleep(150000);
        ck_assert_int_eq(forq_lock_renew(c, "F", t2, 300, T), FORQ_OK);
    }
    ck_assert_int_eq(forq_lock_release(c, "F", t2, T), FORQ_OK);
    msgpack_sbuffer_destroy(&one);
    msgpack_sbuffer_destroy(&two);
    e2e_down(&d, &c);
}
END_TEST

typedef struct {
    const forqd_t *d;
    int rounds;
    forq_err_t e;
} counter_t;

/* The seeds' counter, under a forq lock: get, add one, set: not atomic without the lock. */
static void *counter_main(void *arg)
{
    counter_t *k = arg;
    forq_client_t *cl = forqd_client(k->d);
    for (int i = 0; i < k->rounds && k->e == FORQ_OK; i++) {
        uint64_t token;
        void *v = NULL;
        size_t len;
        int64_t n = 0;
        if ((k->e = forq_lock_acquire(cl, "counter-lock", 10000, -1, &token)) != FORQ_OK)
            break;
        forq_err_t g = forq_dict_get(cl, "counters", "n", T, &v, &len, NULL);
        if (g == FORQ_OK)
            n = as_int(v, len);
        free(v);
        msgpack_sbuffer next = val_int(n + 1);
        k->e = forq_dict_set_fenced(cl, "counters", "n", next.data, next.size, "counter-lock",
                                    token, T, NULL);
        msgpack_sbuffer_destroy(&next);
        if (k->e == FORQ_OK)
            k->e = forq_lock_release(cl, "counter-lock", token, T);
    }
    forq_client_destroy(&cl);
    return NULL;
}

/* 4 clients x N get-then-set under the lock: the exact total. */
START_TEST(test_lock_mutual_exclusion)
{
    counter_t k[4];
    pthread_t th[4];
    int rounds = test_quick() ? 50 : 1000;
    void *v;
    size_t len;

    e2e_up(&d, &c, 1, NULL);
    for (int i = 0; i < 4; i++) {
        k[i] = (counter_t){&d, rounds, FORQ_OK};
        pthread_create(&th[i], NULL, counter_main, &k[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(k[i].e == FORQ_OK, "client %d: %s", i, forq_strerror(k[i].e));
    }
    ck_assert_int_eq(forq_dict_get(c, "counters", "n", T, &v, &len, NULL), FORQ_OK);
    ck_assert_int_eq(as_int(v, len), 4 * rounds);
    free(v);
    e2e_down(&d, &c);
}
END_TEST

/* A holder SIGKILLed: its lease ends, the next acquirer gets the lock with a larger token, and
 * the dead holder's token fences nothing. */
START_TEST(test_holder_sigkilled)
{
    int fds[2];
    uint64_t dead_token, token;
    pid_t pid;

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(pipe(fds), 0);
    pid = spawn_helper("--holder", fds[1]);
    close(fds[1]);
    ck_assert_int_eq(read(fds[0], &dead_token, sizeof(dead_token)), sizeof(dead_token));
    close(fds[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    uint64_t t0 = ms_now();
    ck_assert_int_eq(forq_lock_acquire(c, "held", 0, test_ms(5000), &token), FORQ_OK);
    ck_assert_uint_ge(ms_now() - t0, 100); /* it waited for the lease to end */
    ck_assert_uint_gt(token, dead_token);
    ck_assert_int_eq(forq_dict_set_fenced(c, "x", "k", "\x01", 1, "held", dead_token, T, NULL),
                     FORQ_ERR_CONFLICT);
    ck_assert_int_eq(forq_dict_set_fenced(c, "x", "k", "\x01", 1, "held", token, T, NULL), FORQ_OK);
    e2e_down(&d, &c);
}
END_TEST

/* ---- events ---- */

typedef struct {
    const forqd_t *d;
    forq_err_t e;
} eventer_t;

static void *event_waiter_main(void *arg)
{
    eventer_t *w = arg;
    forq_client_t *cl = forqd_client(w->d);
    w->e = forq_event_wait(cl, "go", -1, NULL);
    forq_client_destroy(&cl);
    return NULL;
}

START_TEST(test_events)
{
    eventer_t w[2] = {{&d, -1}, {&d, -1}};
    pthread_t th[2];
    bool set = true;

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(forq_event_wait(c, "go", 0, &set), FORQ_OK);
    ck_assert(!set);
    ck_assert_int_eq(forq_event_wait(c, "go", 200, &set), FORQ_ERR_TIMEOUT);
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, event_waiter_main, &w[i]);
    wait_stat(c, "shared_waiters", 2);
    ck_assert_int_eq(forq_event_set(c, "go", T), FORQ_OK);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(w[i].e, FORQ_OK);
    }
    ck_assert_int_eq(forq_event_wait(c, "go", -1, &set), FORQ_OK); /* set: at once */
    ck_assert(set);
    ck_assert_int_eq(forq_event_set(c, "go", T), FORQ_OK); /* twice is once */
    ck_assert_int_eq(forq_event_clear(c, "go", T), FORQ_OK);
    ck_assert_int_eq(forq_event_wait(c, "go", 0, &set), FORQ_OK);
    ck_assert(!set);
    ck_assert_int_eq(forq_event_clear(c, "go", T), FORQ_OK);
    e2e_down(&d, &c);
}
END_TEST

/* ---- from tasks ---- */

START_TEST(test_from_tasks)
{
    forq_future_t *f[4];
    char buf[32];
    void *v;
    size_t len;

    e2e_up(&d, &c, 3, NULL);
    /* a task relays a queue's items, in order */
    f[0] = submit_json(c, "queue_relay", "[\"in\", \"out\", 5]", NULL);
    for (int i = 0; i < 5; i++)
        put_int(c, "in", i);
    ASSERT_RESULT(f[0], "5");
    forq_future_destroy(&f[0]);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(forq_queue_get(c, "out", 0, &v, &len), FORQ_OK);
        ck_assert_int_eq(as_int(v, len), i);
        free(v);
    }
    /* 3 tasks x 30 get-then-set under a lock, fenced */
    for (int i = 0; i < 3; i++)
        f[i] = submit_json(c, "locked_incr", "[\"tl\", \"tasks\", \"n\", 30]", NULL);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(wait_state(f[i], test_ms(30000)) == FORQ_STATE_OK, "job %d: %s", i,
                      forq_future_detail(f[i]));
        forq_future_destroy(&f[i]);
    }
    ck_assert_int_eq(forq_dict_get(c, "tasks", "n", T, &v, &len, NULL), FORQ_OK);
    ck_assert_int_eq(as_int(v, len), 90);
    free(v);
    /* an event a task waits for */
    f[0] = submit_json(c, "event_wait", "[\"start\", 10000]", NULL);
    wait_stat(c, "shared_waiters", 1);
    ck_assert_int_eq(forq_event_set(c, "start", T), FORQ_OK);
    ASSERT_RESULT(f[0], "true");
    forq_future_destroy(&f[0]);
    ck_assert_int_eq(forq_event_wait(c, "start-seen", 0, NULL), FORQ_OK);
    f[0] = submit_json(c, "event_wait", "[\"start\", 100]", NULL);
    ASSERT_RESULT(f[0], "false");
    forq_future_destroy(&f[0]);
    /* a task blocked in get whose job is cancelled: its worker is killed, its wait dropped, and
     * the next item goes to whoever asks next */
    f[0] = submit_json(c, "queue_relay", "[\"never\", \"void\", 1]", NULL);
    wait_stat(c, "shared_waiters", 1);
    ck_assert_int_eq(forq_future_cancel(f[0], T, NULL), FORQ_OK);
    ck_assert_int_eq(wait_state(f[0], test_ms(10000)), FORQ_STATE_CANCELLED);
    forq_future_destroy(&f[0]);
    wait_stat(c, "shared_waiters", 0);
    put_str(c, "never", "kept");
    ck_assert_str_eq(get_str(c, "never", 0, buf, sizeof(buf)), "kept");
    e2e_down(&d, &c);
}
END_TEST

/* ---- the CLI ---- */

/* forq queue/lock/event: the seeds' producer and consumer from the shell, and the exit codes. */
START_TEST(test_cli)
{
    char cmd[1024], out[4096], pre[512], token[32], args[128];
    e2e_up(&d, &c, 1, NULL);
    snprintf(pre, sizeof(pre), "%s -e %s", getenv("FORQ_CLI"), d.endpoint);
#define RUN(args)                                                                                  \
    (snprintf(cmd, sizeof(cmd), "%s %s 2>/dev/null", pre, args), sh(cmd, out, sizeof(out)))
    ck_assert_int_eq(RUN("queue put fruit '\"apple\"'"), 0);
    ck_assert_str_eq(out, "1\n");
    ck_assert_int_eq(RUN("queue put fruit '\"banana\"'"), 0);
    ck_assert_int_eq(RUN("queue put fruit '\"cherry\"'"), 0);
    ck_assert_int_eq(RUN("queue put fruit null"), 0);
    ck_assert_int_eq(RUN("queue put fruit '\"first\"' --front"), 0);
    ck_assert_str_eq(out, "5\n");
    ck_assert_int_eq(RUN("queue len fruit"), 0);
    ck_assert_str_eq(out, "5\n");
    ck_assert_int_eq(RUN("queue range fruit --start 1 --limit 2"), 0);
    ck_assert_str_eq(out, "[\"apple\",\"banana\"]\n");
    ck_assert_int_eq(RUN("queue get fruit"), 0);
    ck_assert_str_eq(out, "\"first\"\n");
    /* the consumer, as a shell loop: until the sentinel */
    snprintf(cmd, sizeof(cmd),
             "F='%s'; while x=$($F queue get fruit) && [ \"$x\" != null ]; do echo \"$x\"; done",
             pre);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "\"apple\"\n\"banana\"\n\"cherry\"\n");
    ck_assert_int_eq(RUN("queue get fruit --nowait"), 10);
    ck_assert_int_eq(RUN("queue get fruit --timeout 0.1"), 10);
    ck_assert_int_eq(RUN("queue put small 1 --maxsize 1"), 0);
    ck_assert_int_eq(RUN("queue put small 2 --maxsize 1 --nowait"), 13);
    ck_assert_int_eq(RUN("queue clear small"), 0);
    ck_assert_str_eq(out, "1\n");
    /* locks */
    ck_assert_int_eq(RUN("lock acquire deploy --lease 30"), 0);
    snprintf(token, sizeof(token), "%.20s", out);
    token[strcspn(token, "\n")] = '\0';
    ck_assert_int_eq(RUN("lock acquire deploy --nowait"), 10);
    snprintf(args, sizeof(args), "lock renew deploy %s --lease 10", token);
    ck_assert_int_eq(RUN(args), 0);
    snprintf(args, sizeof(args), "lock release deploy %s", token);
    ck_assert_int_eq(RUN(args), 0);
    ck_assert_int_eq(RUN(args), 12); /* twice: the token holds nothing */
    /* events */
    ck_assert_int_eq(RUN("event wait go --nowait"), 0);
    ck_assert_str_eq(out, "false\n");
    ck_assert_int_eq(RUN("event wait go --timeout 0.1"), 10);
    ck_assert_int_eq(RUN("event set go"), 0);
    ck_assert_int_eq(RUN("event wait go"), 0);
    ck_assert_str_eq(out, "true\n");
    ck_assert_int_eq(RUN("event clear go"), 0);
    /* usage */
    ck_assert_int_eq(RUN("queue pop fruit"), 2);
    ck_assert_int_eq(RUN("dict queue.len fruit"), 2);
    ck_assert_int_eq(RUN("queue put fruit 1 --lease 3"), 2);
    ck_assert_int_eq(RUN("queue put fruit '[1,'"), 2);
    ck_assert_int_eq(RUN("lock release deploy"), 2);
    ck_assert_int_eq(RUN("lock release deploy -3"), 2);
    ck_assert_int_eq(RUN("queue get 'bad name'"), 2);
    ck_assert_int_eq(RUN("queue get fruit --timeout 1 --nowait"), 2);
#undef RUN
    e2e_down(&d, &c);
}
END_TEST

/* ---- durability ---- */

/* Items (in their order, front puts included), grants and events survive a restart; tokens
 * go on growing. */
START_TEST(test_durable_restart)
{
    const char *extra[] = {"--state-dir", state, NULL};
    char buf[32];
    uint64_t t1, t2;
    size_t n;
    bool set;

    make_state_dir();
    e2e_up(&d, &c, 1, extra);
    put_str(c, "keep", "b");
    put_str(c, "keep", "c");
    msgpack_sbuffer a = val_str("a");
    ck_assert_int_eq(forq_queue_put(c, "keep", a.data, a.size, true, 0, T, NULL), FORQ_OK);
    msgpack_sbuffer_destroy(&a);
    put_str(c, "keep", "d");
    ck_assert_str_eq(get_str(c, "keep", 0, buf, sizeof(buf)), "a");
    ck_assert_int_eq(forq_lock_acquire(c, "kept", 60000, 0, &t1), FORQ_OK);
    ck_assert_int_eq(forq_event_set(c, "flag", T), FORQ_OK);
    e2e_down(&d, &c);
    e2e_up(&d, &c, 1, extra);
    ck_assert(forqd_log_has(&d, "3 items in 1 queues restored"));
    ck_assert_int_eq(forq_queue_len(c, "keep", T, &n), FORQ_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(get_str(c, "keep", 0, buf, sizeof(buf)), "b");
    ck_assert_int_eq(forq_lock_acquire(c, "kept", 0, 0, &t2), FORQ_ERR_TIMEOUT); /* still held */
    ck_assert_int_eq(forq_event_wait(c, "flag", 0, &set), FORQ_OK);
    ck_assert(set);
    ck_assert_int_eq(forq_lock_release(c, "kept", t1, T), FORQ_OK);
    ck_assert_int_eq(forq_lock_acquire(c, "kept", 0, 0, &t2), FORQ_OK);
    ck_assert_uint_gt(t2, t1);
    ck_assert_str_eq(get_str(c, "keep", 0, buf, sizeof(buf)), "c");
    ck_assert_str_eq(get_str(c, "keep", 0, buf, sizeof(buf)), "d");
    e2e_down(&d, &c);
    remove_state_dir();
}
END_TEST

static Suite *shared_suite(void)
{
    Suite *s = suite_create("shared");
    TCase *core = tcase_create("core"), *full;

    tcase_set_timeout(core, test_ms(60));
    tcase_add_test(core, test_lock_operations);
    tcase_add_test(core, test_lease_ends_and_fence_refuses);
    tcase_add_test(core, test_lock_mutual_exclusion);
    tcase_add_test(core, test_events);
    tcase_add_test(core, test_durable_restart);
    tcase_add_test(core, test_from_tasks);
    tcase_add_test(core, test_cli);
    suite_add_tcase(s, core);
    /* under valgrind (FORQ_TEST_CORE_ONLY) the core cases only; ASan runs them all */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(180));
    tcase_add_test(full, test_holder_sigkilled);
    suite_add_tcase(s, full);
    return s;
}

/* A lock holder: acquires "held" with a lease of 500 ms, reports its token, and holds it until
 * it is killed. */
static int holder_process(forq_client_t *cl, int fd)
{
    uint64_t t = 0;
    if (forq_lock_acquire(cl, "held", 500, -1, &t) != FORQ_OK)
        return 1;
    if (write(fd, &t, sizeof(t)) != sizeof(t))
        return 1;
    pause();
    return 0;
}

int main(int argc, char **argv)
{
    int rc = helper_main(argc, argv, "--holder", holder_process);
    return rc >= 0 ? rc : run_suite(shared_suite());
}
