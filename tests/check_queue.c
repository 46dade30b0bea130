/* check_queue.c - shared queues end to end against a real forqd: order, front, range, clear,
 * the asynchronous calls, blocked gets woken in the order they came, maxsize back-pressure; a
 * kill -9 under fsync always and a full disk; 4 consumers x 10,000 items each delivered exactly
 * once, with consumer processes SIGKILLed while they block in get (the test runs itself again
 * as those consumers: `check_queue --consumer FD ENDPOINT`). */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "shared_util.h"

#include <zmq.h>

/* ---- queues ---- */

START_TEST(test_queue_operations)
{
    char buf[64];
    void *v;
    size_t len, n;
    bool more;

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(forq_queue_get(c, "q", 0, &v, &len), FORQ_ERR_EMPTY);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "queue 'q' is empty"));
    put_str(c, "q", "apple");
    put_str(c, "q", "banana");
    msgpack_sbuffer first = val_str("first");
    ck_assert_int_eq(forq_queue_put(c, "q", first.data, first.size, true, 0, T, &n), FORQ_OK);
    msgpack_sbuffer_destroy(&first);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(forq_queue_len(c, "q", T, &n), FORQ_OK);
    ck_assert_uint_eq(n, 3);
    /* a page, without taking */
    ck_assert_int_eq(forq_queue_range(c, "q", 1, 1, T, &v, &len, &more), FORQ_OK);
    ck_assert_uint_eq(len, 7); /* ["apple"] */
    ck_assert(memcmp(v,
                     "\x91\xa5"
                     "apple",
                     7) == 0);
    ck_assert(more);
    free(v);
    ck_assert_int_eq(forq_queue_range(c, "q", 0, 0, T, &v, &len, &more), FORQ_OK);
    ck_assert(!more);
    ck_assert_int_eq(((unsigned char *)v)[0], 0x93);
    free(v);
    ck_assert_int_eq(forq_queue_range(c, "q", 9, 0, T, &v, &len, &more), FORQ_OK);
    ck_assert_int_eq(((unsigned char *)v)[0], 0x90); /* past the end: an empty page */
    free(v);
    /* gets, in order */
    ck_assert_str_eq(get_str(c, "q", 0, buf, sizeof(buf)), "first");
    ck_assert_str_eq(get_str(c, "q", 0, buf, sizeof(buf)), "apple");
    ck_assert_str_eq(get_str(c, "q", -1, buf, sizeof(buf)), "banana");
    ck_assert_int_eq(forq_queue_len(c, "q", T, &n), FORQ_OK);
    ck_assert_uint_eq(n, 0);
    /* a get that waits, and gives up after its timeout */
    uint64_t t0 = ms_now();
    ck_assert_int_eq(forq_queue_get(c, "q", 300, &v, &len), FORQ_ERR_EMPTY);
    ck_assert_uint_ge(ms_now() - t0, 290);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "within 300 ms"));
    /* clear */
    for (int i = 0; i < 5; i++)
        put_int(c, "q", i);
    ck_assert_int_eq(forq_queue_clear(c, "q", T, &n), FORQ_OK);
    ck_assert_uint_eq(n, 5);
    ck_assert_int_eq(forq_queue_clear(c, "q", T, &n), FORQ_OK);
    ck_assert_uint_eq(n, 0);
    /* a queue and a dict of the same name are two things */
    put_int(c, "both", 7);
    msgpack_sbuffer eight = val_int(8);
    ck_assert_int_eq(forq_dict_set(c, "both", "k", eight.data, eight.size, T, NULL), FORQ_OK);
    ck_assert_int_eq(forq_dict_len(c, "both", T, &n), FORQ_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(forq_queue_get(c, "both", 0, &v, &len), FORQ_OK);
    ck_assert_int_eq(as_int(v, len), 7);
    free(v);
    /* refusals: a clear message, nothing sent */
    ck_assert_int_eq(forq_queue_put(c, "bad name", eight.data, eight.size, false, 0, T, NULL),
                     FORQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "queue name must be"));
    ck_assert_int_eq(forq_queue_put(c, "q", "\x92\x01", 2, false, 0, T, NULL), FORQ_ERR_INVALID);
    ck_assert_int_eq(forq_queue_put(c, "q", NULL, 0, false, 0, T, NULL), FORQ_ERR_INVALID);
    /* the dict calls are for dicts: a shared type's op is refused, not half done */
    forq_dict_op_t op;
    forq_future_t *f = NULL;
    forq_dict_op_init(&op);
    op.op = "queue.get";
    op.name = "q";
    ck_assert_int_eq(forq_dict_submit(c, &op, &f), FORQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "forq_queue_*"));
    msgpack_sbuffer_destroy(&eight);
    /* the dicts list shows none of it */
    ck_assert_int_eq(forq_dict_list(c, NULL, 0, T, &v, &len, NULL), FORQ_OK);
    ck_assert_uint_eq(len, 1 + 1 + 1 + 4 + 1); /* [["both", 1]] */
    free(v);
    ck_assert_int_eq(stat_of(c, "dicts"), 1);
    ck_assert_int_eq(stat_of(c, "queues"), 0);
    e2e_down(&d, &c);
}
END_TEST

/* The asynchronous calls: gets in flight before the puts that answer them, in order. */
START_TEST(test_queue_async)
{
    forq_future_t *g[50], *p[50];
    const void *v;
    size_t len, n;

    e2e_up(&d, &c, 1, NULL);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(forq_queue_get_async(c, "aq", -1, &g[i]), FORQ_OK);
    wait_stat(c, "shared_waiters", 50);
    for (int i = 0; i < 50; i++) {
        msgpack_sbuffer sb = val_int(i);
        ck_assert_int_eq(forq_queue_put_async(c, "aq", sb.data, sb.size, false, 0, 0, &p[i]),
                         FORQ_OK);
        msgpack_sbuffer_destroy(&sb);
    }
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(forq_future_wait(g[i], T), FORQ_OK);
        ck_assert_int_eq(forq_queue_reply(g[i], NULL), FORQ_OK);
        ck_assert_int_eq(forq_future_result(g[i], &v, &len), FORQ_OK);
        ck_assert_int_eq(as_int(v, len), i);
        ck_assert_int_eq(forq_future_wait(p[i], T), FORQ_OK);
        ck_assert_int_eq(forq_queue_reply(p[i], &n), FORQ_OK);
        ck_assert_uint_eq(n, 0); /* each went straight to a get in flight */
        forq_future_destroy(&g[i]);
        forq_future_destroy(&p[i]);
    }
    ck_assert_int_eq(forq_queue_get_async(c, "aq", 0, &g[0]), FORQ_OK);
    ck_assert_int_eq(forq_future_wait(g[0], T), FORQ_OK);
    ck_assert_int_eq(forq_queue_reply(g[0], NULL), FORQ_ERR_EMPTY);
    forq_future_destroy(&g[0]);
    put_int(c, "aq", 1);
    msgpack_sbuffer two = val_int(2);
    ck_assert_int_eq(forq_queue_put_async(c, "aq", two.data, two.size, false, 1, 0, &p[0]),
                     FORQ_OK);
    msgpack_sbuffer_destroy(&two);
    ck_assert_int_eq(forq_future_wait(p[0], T), FORQ_OK);
    ck_assert_int_eq(forq_queue_reply(p[0], NULL), FORQ_ERR_FULL);
    forq_future_destroy(&p[0]);
    e2e_down(&d, &c);
}
END_TEST

typedef struct {
    const forqd_t *d;
    const char *queue;
    char got[16][32]; /* what it took, in order */
    int n;
    atomic_int ready;
} consumer_t;

/* The seeds' consumer: takes items until the sentinel (nil), in order. */
static void *consumer_main(void *arg)
{
    consumer_t *k = arg;
    forq_client_t *cl = forqd_client(k->d);
    atomic_store(&k->ready, 1);
    for (;;) {
        char buf[32];
        get_str(cl, k->queue, -1, buf, sizeof(buf));
        if (strcmp(buf, "nil") == 0)
            break;
        snprintf(k->got[k->n++], sizeof(k->got[0]), "%s", buf);
    }
    forq_client_destroy(&cl);
    return NULL;
}

/* The seeds' producer/consumer: the consumer is there first, blocked; the producer puts apple,
 * banana, cherry and a sentinel; the consumer prints them in order. */
START_TEST(test_producer_consumer)
{
    consumer_t k = {.d = &d, .queue = "fruit"};
    pthread_t th;

    e2e_up(&d, &c, 1, NULL);
    pthread_create(&th, NULL, consumer_main, &k);
    wait_stat(c, "shared_waiters", 1);
    put_str(c, "fruit", "apple");
    put_str(c, "fruit", "banana");
    put_str(c, "fruit", "cherry");
    ck_assert_int_eq(forq_queue_put(c, "fruit", "\xc0", 1, false, 0, T, NULL), FORQ_OK);
    pthread_join(th, NULL);
    ck_assert_int_eq(k.n, 3);
    ck_assert_str_eq(k.got[0], "apple");
    ck_assert_str_eq(k.got[1], "banana");
    ck_assert_str_eq(k.got[2], "cherry");
    e2e_down(&d, &c);
}
END_TEST

/* Consumers that wait are served in the order they came. */
START_TEST(test_blocked_gets_in_order)
{
    consumer_t k[3] = {{.d = &d, .queue = "w"}, {.d = &d, .queue = "w"}, {.d = &d, .queue = "w"}};
    pthread_t th[3];

    e2e_up(&d, &c, 1, NULL);
    for (int i = 0; i < 3; i++) {
        pthread_create(&th[i], NULL, consumer_main, &k[i]);
        wait_stat(c, "shared_waiters", i + 1); /* each behind the one before */
    }
    const char *items[] = {"a", "b", "c", NULL, NULL, NULL};
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 3; i++) {
            if (items[round * 3 + i])
                put_str(c, "w", items[round * 3 + i]);
            else
                ck_assert_int_eq(forq_queue_put(c, "w", "\xc0", 1, false, 0, T, NULL), FORQ_OK);
            if (round == 0)
                wait_stat(c, "shared_waiters", 3); /* back in line, at the end */
        }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(k[i].n, 1);
        ck_assert_str_eq(k[i].got[0], items[i]);
    }
    e2e_down(&d, &c);
}
END_TEST

typedef struct {
    const forqd_t *d;
    int64_t item;
    int timeout_ms;
    forq_err_t e;
    atomic_int done;
} putter_t;

static void *putter_main(void *arg)
{
    putter_t *p = arg;
    forq_client_t *cl = forqd_client(p->d);
    msgpack_sbuffer v = val_int(p->item);
    p->e = forq_queue_put(cl, "bounded", v.data, v.size, false, 2, p->timeout_ms, NULL);
    atomic_store(&p->done, 1);
    msgpack_sbuffer_destroy(&v);
    forq_client_destroy(&cl);
    return NULL;
}

/* maxsize: a put into a full queue is refused at once, or waits for room and gets in, in order,
 * or gives up after its timeout; nothing is dropped. */
START_TEST(test_maxsize_backpressure)
{
    msgpack_sbuffer one = val_int(1), two = val_int(2), three = val_int(3);
    putter_t p4 = {.d = &d, .item = 4, .timeout_ms = -1},
             p5 = {.d = &d, .item = 5, .timeout_ms = -1};
    pthread_t t4, t5;
    void *v;
    size_t len, n;

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(forq_queue_put(c, "bounded", one.data, one.size, false, 2, 0, &n), FORQ_OK);
    ck_assert_int_eq(forq_queue_put(c, "bounded", two.data, two.size, false, 2, 0, &n), FORQ_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(forq_queue_put(c, "bounded", three.data, three.size, false, 2, 0, &n),
                     FORQ_ERR_FULL);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "holds 2 items, its maxsize"));
    uint64_t t0 = ms_now();
    ck_assert_int_eq(forq_queue_put(c, "bounded", three.data, three.size, false, 2, 200, &n),
                     FORQ_ERR_FULL);
    ck_assert_uint_ge(ms_now() - t0, 190);
    /* an unbounded put is not held back */
    ck_assert_int_eq(forq_queue_put(c, "bounded", three.data, three.size, false, 0, 0, &n),
                     FORQ_OK);
    ck_assert_uint_eq(n, 3);
    /* two producers wait for room, in order */
    pthread_create(&t4, NULL, putter_main, &p4);
    wait_stat(c, "shared_waiters", 1);
    pthread_create(&t5, NULL, putter_main, &p5);
    wait_stat(c, "shared_waiters", 2);
    ck_assert_int_eq(forq_queue_get(c, "bounded", 0, &v, &len), FORQ_OK); /* 1: 2 left */
    ck_assert_int_eq(as_int(v, len), 1);
    free(v);
    usleep(100000);
    ck_assert(!atomic_load(&p4.done)); /* still 2 items: no room yet */
    ck_assert_int_eq(forq_queue_get(c, "bounded", 0, &v, &len), FORQ_OK); /* 2 */
    free(v);
    pthread_join(t4, NULL);
    ck_assert_int_eq(p4.e, FORQ_OK);
    ck_assert(!atomic_load(&p5.done));
    ck_assert_int_eq(forq_queue_clear(c, "bounded", T, &n), FORQ_OK); /* room for 5 too */
    ck_assert_uint_eq(n, 2);
    pthread_join(t5, NULL);
    ck_assert_int_eq(p5.e, FORQ_OK);
    ck_assert_int_eq(forq_queue_get(c, "bounded", 0, &v, &len), FORQ_OK);
    ck_assert_int_eq(as_int(v, len), 5);
    free(v);
    msgpack_sbuffer_destroy(&one);
    msgpack_sbuffer_destroy(&two);
    msgpack_sbuffer_destroy(&three);
    e2e_down(&d, &c);
}
END_TEST

typedef struct {
    const forqd_t *d;
    _Atomic int64_t put_acked; /* items 0..put_acked-1 were acknowledged */
    int64_t got[20000];        /* the items gets acknowledged, in order */
    int n_got;
    atomic_bool stop;
} traffic_t;

static void *producer_main(void *arg)
{
    traffic_t *t = arg;
    forq_client_t *cl = forqd_client(t->d);
    for (int64_t i = 0; i < 20000 && !atomic_load(&t->stop); i++) {
        msgpack_sbuffer v = val_int(i);
        forq_err_t e = forq_queue_put(cl, "durable", v.data, v.size, false, 0, 2000, NULL);
        msgpack_sbuffer_destroy(&v);
        if (e != FORQ_OK)
            break;
        t->put_acked = i + 1;
    }
    forq_client_destroy(&cl);
    return NULL;
}

static void *getter_main(void *arg)
{
    traffic_t *t = arg;
    forq_client_t *cl = forqd_client(t->d);
    /* the producer goes ahead: the queue holds items, in the log, when forqd is killed */
    while (!atomic_load(&t->stop) && atomic_load(&t->put_acked) < 300)
        usleep(1000);
    while (!atomic_load(&t->stop) && t->n_got < 20000) {
        void *v;
        size_t len;
        forq_err_t e = forq_queue_get(cl, "durable", 50, &v, &len);
        if (e == FORQ_ERR_EMPTY)
            continue;
        if (e != FORQ_OK)
            break;
        t->got[t->n_got++] = as_int(v, len);
        free(v);
    }
    forq_client_destroy(&cl);
    return NULL;
}

/* kill -9 under fsync always in the middle of puts and gets: after the restart every
 * acknowledged put is there unless an acknowledged get took it, no acknowledged get comes back,
 * and the order holds. */
START_TEST(test_kill9_keeps_acknowledged_puts_and_gets)
{
    const char *extra[] = {"--state-dir", state, "--fsync", "always", NULL};
    traffic_t *t = calloc(1, sizeof(*t));
    pthread_t tp, tg;
    void *v;
    size_t len, n;
    bool more;

    make_state_dir();
    e2e_up(&d, &c, 1, extra);
    t->d = &d;
    pthread_create(&tp, NULL, producer_main, t);
    pthread_create(&tg, NULL, getter_main, t);
    /* kill -9 once both have been at it for a while */
    for (int i = 0; i < 1000 && t->n_got < 100; i++)
        usleep(10000);
    e2e_kill(&d);
    atomic_store(&t->stop, true);
    pthread_join(tp, NULL);
    pthread_join(tg, NULL);
    e2e_restart(&d, 1, extra);
    forq_client_destroy(&c);
    c = forqd_client(&d);
    ck_assert_int_gt(t->put_acked, 0);
    ck_assert_int_gt(t->n_got, 0);
    /* gets took the items in order, from 0 */
    for (int i = 0; i < t->n_got; i++)
        ck_assert_int_eq(t->got[i], i);
    ck_assert_int_eq(forq_queue_range(c, "durable", 0, 10000, T, &v, &len, &more), FORQ_OK);
    ck_assert_int_eq(forq_queue_len(c, "durable", T, &n), FORQ_OK);
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    msgpack_zone_init(&zone, 4096);
    ck_assert_int_eq(msgpack_unpack(v, len, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(o.type, MSGPACK_OBJECT_ARRAY);
    /* what is left starts where the acknowledged gets stopped (or one after: the get in flight
     * may have been done), runs without a gap, and holds every acknowledged put (and at most
     * the put in flight) */
    int64_t first = o.via.array.size ? (int64_t)o.via.array.ptr[0].via.u64 : -1;
    if (o.via.array.size) {
        ck_assert_msg(first == t->n_got || first == t->n_got + 1, "first item %lld after %d gets",
                      (long long)first, t->n_got);
        for (uint32_t i = 0; i < o.via.array.size; i++)
            ck_assert_int_eq(o.via.array.ptr[i].via.u64, first + i);
        int64_t last = first + o.via.array.size - 1;
        ck_assert_msg(last == t->put_acked - 1 || last == t->put_acked,
                      "last item %lld after %lld puts", (long long)last, (long long)t->put_acked);
    } else {
        ck_assert_msg(t->put_acked - t->n_got <= 1, "%lld puts, %d gets, nothing left",
                      (long long)t->put_acked, t->n_got);
    }
    ck_assert_uint_eq(n, o.via.array.size);
    fprintf(stderr, "kill -9 after %lld acknowledged puts and %d gets: %u items left\n",
            (long long)t->put_acked, t->n_got, o.via.array.size);
    msgpack_zone_destroy(&zone);
    free(v);
    free(t);
    e2e_down(&d, &c);
    remove_state_dir();
}
END_TEST

/* A disk that fills up: the put the log cannot take is refused and leaves nothing behind; a get
 * the log cannot take leaves its item first in line; a restart finds what was acknowledged. */
START_TEST(test_disk_full)
{
    const char *extra[] = {"--state-dir", state, "--fsync", "always", NULL};
    char cmd[256], item[1200], buf[1300];
    int stored = 0, taken = 0;
    forq_err_t e = FORQ_OK;
    size_t n;

    make_state_dir();
    snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=64k tmpfs %s 2>/dev/null", state);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_disk_full: cannot mount a small tmpfs here (not root?); skipped\n");
        remove_state_dir();
        return;
    }
    e2e_up(&d, &c, 1, extra);
    for (int i = 0; i < 200; i++) {
        snprintf(item, sizeof(item), "item-%03d-%01100d", i, 0);
        msgpack_sbuffer v = val_str(item);
        e = forq_queue_put(c, "full", v.data, v.size, false, 0, T, NULL);
        msgpack_sbuffer_destroy(&v);
        if (e != FORQ_OK)
            break;
        stored++;
    }
    ck_assert_int_eq(e, FORQ_ERR_FULL);
    ck_assert_msg(strstr(forq_errdetail(), "disk_full"), "%s", forq_errdetail());
    ck_assert_int_gt(stored, 0);
    ck_assert_int_eq(forq_queue_len(c, "full", T, &n), FORQ_OK);
    ck_assert_uint_eq(n, (size_t)stored);
    /* gets, in order, until one the log cannot take: its item stays first */
    for (; taken < stored; taken++) {
        void *v;
        size_t len;
        if ((e = forq_queue_get(c, "full", 0, &v, &len)) != FORQ_OK)
            break;
        as_str(v, len, buf, sizeof(buf));
        free(v);
        snprintf(item, sizeof(item), "item-%03d-", taken);
        ck_assert_msg(strncmp(buf, item, strlen(item)) == 0, "got %.12s, not %s", buf, item);
    }
    if (taken < stored) {
        ck_assert_int_eq(e, FORQ_ERR_FULL);
        ck_assert_int_eq(forq_queue_len(c, "full", T, &n), FORQ_OK);
        ck_assert_uint_eq(n, (size_t)(stored - taken));
    }
    e2e_down(&d, &c);
    e2e_up(&d, &c, 1, extra);
    ck_assert_int_eq(forq_queue_len(c, "full", T, &n), FORQ_OK);
    ck_assert_uint_eq(n, (size_t)(stored - taken));
    if (taken < stored) {
        snprintf(item, sizeof(item), "item-%03d-", taken);
        void *v;
        size_t len;
        ck_assert_int_eq(forq_queue_range(c, "full", 0, 1, T, &v, &len, NULL), FORQ_OK);
        ck_assert_ptr_nonnull(memmem(v, len, item, strlen(item)));
        free(v);
    }
    fprintf(stderr, "disk full after %d puts; %d gets went through\n", stored, taken);
    e2e_down(&d, &c);
    snprintf(cmd, sizeof(cmd), "umount %s", state);
    ck_assert_int_eq(system(cmd), 0);
    remove_state_dir();
}
END_TEST

/* An item handed to a consumer whose pipe is full waits in forqd's backlog for it; the consumer
 * goes away before it drains: the item goes back to the front of its queue, for the next. */
START_TEST(test_item_back_from_a_backlog)
{
    const char *extra[] = {"--client-hwm", "2", NULL};
    char big[200000], buf[32];
    void *zctx = zmq_ctx_new(), *s = zmq_socket(zctx, ZMQ_DEALER);
    int one = 1, zero = 0;

    e2e_up(&d, &c, 1, extra);
    /* a value large enough that a few replies fill the kernel's buffers and ZeroMQ's pipe */
    big[0] = (char)0xc6; /* bin32 */
    big[1] = 0;
    big[2] = (char)((sizeof(big) - 5) >> 16);
    big[3] = (char)(((sizeof(big) - 5) >> 8) & 0xff);
    big[4] = (char)((sizeof(big) - 5) & 0xff);
    memset(big + 5, 'x', sizeof(big) - 5);
    ck_assert_int_eq(forq_dict_set(c, "blob", "k", big, sizeof(big), T, NULL), FORQ_OK);
    zmq_setsockopt(s, ZMQ_RCVHWM, &one, sizeof(one));
    zmq_setsockopt(s, ZMQ_RCVBUF, &one, sizeof(one));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_ROUTING_ID, "slow-consumer", 13);
    ck_assert_int_eq(zmq_connect(s, d.endpoint), 0);
    /* 40 gets of the big value, never read: forqd's backlog holds what the pipe cannot */
    for (int i = 0; i < 40; i++) {
        char hdr[96];
        int n = snprintf(hdr, sizeof(hdr),
                         "\x85\xa1v\x01\xa3"
                         "cmd\xa4"
                         "dict\xa2op\xa3get"
                         "\xa4name\xa4"
                         "blob\xa3key\xa1k");
        ck_assert_int_eq(zmq_send(s, hdr, (size_t)n, 0), n);
    }
    for (int i = 0; i < 500 && stat_of(c, "backlog") == 0; i++)
        usleep(10000);
    ck_assert_int_gt(stat_of(c, "backlog"), 0);
    /* then a get that waits; the item put for it joins the backlog */
    static const char get[] = "\x86\xa1v\x01\xa3"
                              "cmd\xa4"
                              "dict\xa2op\xa9queue.get"
                              "\xa4name\xa4"
                              "back\xa5"
                              "block\xc3\xa3req\x07";
    ck_assert_int_eq(zmq_send(s, get, sizeof(get) - 1, 0), (int)sizeof(get) - 1);
    wait_stat(c, "shared_waiters", 1);
    put_str(c, "back", "precious");
    ck_assert_int_eq(stat_of(c, "queue_items"), 0); /* on its way, in the backlog */
    /* the consumer goes: the backlog cannot deliver, and gives the item back */
    zmq_close(s);
    zmq_ctx_term(zctx);
    wait_stat(c, "queue_items", 1);
    ck_assert(forqd_log_has(&d, "the item goes back to the front"));
    ck_assert_str_eq(get_str(c, "back", 0, buf, sizeof(buf)), "precious");
    e2e_down(&d, &c);
}
END_TEST

/* ---- many consumers, and one killed while it blocks ---- */

#define ITEMS 10000

/* A consumer process: takes items until the sentinel (-1), writing each to fd as it gets it. */
static int consumer_process(forq_client_t *cl, int fd)
{
    for (;;) {
        void *v;
        size_t len;
        if (forq_queue_get(cl, "work", -1, &v, &len) != FORQ_OK)
            return 2;
        int32_t i = (int32_t)as_int(v, len);
        free(v);
        if (write(fd, &i, sizeof(i)) != sizeof(i))
            return 3;
        if (i < 0)
            return 0;
    }
}

static pid_t spawn_consumer(int fd)
{
    return spawn_helper("--consumer", fd);
}

/* Read what the consumers reported until `items` items (sentinels not counted) came. */
static void collect(int fd, int *seen, int items)
{
    int got = 0;
    while (got < items) {
        struct pollfd p = {fd, POLLIN, 0};
        int32_t i;
        ck_assert_msg(poll(&p, 1, test_ms(30000)) == 1, "%d of %d items reported", got, items);
        ck_assert_int_eq(read(fd, &i, sizeof(i)), sizeof(i));
        if (i < 0)
            continue;
        ck_assert_int_lt(i, ITEMS);
        seen[i]++;
        got++;
    }
}

/* 4 consumer processes x 10,000 items: each item to exactly one of them. Before and half-way,
 * a consumer is SIGKILLed while it blocks in get: it takes nothing with it. */
START_TEST(test_consumers_exactly_once_with_sigkill)
{
    int fds[2], *seen = calloc(ITEMS, sizeof(int));
    pid_t k[5];

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(pipe(fds), 0);
    /* the first in line is killed before any item comes */
    pid_t first = spawn_consumer(fds[1]);
    wait_stat(c, "shared_waiters", 1);
    kill(first, SIGKILL);
    waitpid(first, NULL, 0);
    usleep(100000); /* forqd's socket learns of the closed connection on its own time */
    for (int i = 0; i < 4; i++)
        k[i] = spawn_consumer(fds[1]);
    wait_stat(c, "shared_waiters", 5); /* the dead one's wait is still there */
    for (int i = 0; i < ITEMS / 2; i++)
        put_int(c, "work", i);
    collect(fds[0], seen, ITEMS / 2);
    /* everyone is blocked again, with nothing in the queue: kill one */
    wait_stat(c, "shared_waiters", 4);
    kill(k[0], SIGKILL);
    waitpid(k[0], NULL, 0);
    usleep(100000);
    for (int i = ITEMS / 2; i < ITEMS; i++)
        put_int(c, "work", i);
    collect(fds[0], seen, ITEMS / 2);
    for (int i = 0; i < 3; i++)
        put_int(c, "work", -1);
    for (int i = 1; i < 4; i++) {
        int st;
        waitpid(k[i], &st, 0);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    for (int i = 0; i < ITEMS; i++)
        ck_assert_msg(seen[i] == 1, "item %d delivered %d times", i, seen[i]);
    ck_assert_int_eq(stat_of(c, "queue_items"), 0);
    ck_assert_int_eq(stat_of(c, "shared_waiters"), 0);
    ck_assert_int_ge(stat_of(c, "undeliverable"), 2); /* the two dead consumers' items */
    close(fds[0]);
    close(fds[1]);
    free(seen);
    e2e_down(&d, &c);
}
END_TEST

typedef struct {
    const forqd_t *d;
    int n;
    int64_t *got;
} drain_t;

static void *drain_main(void *arg)
{
    drain_t *k = arg;
    forq_client_t *cl = forqd_client(k->d);
    for (;;) {
        void *v;
        size_t len;
        if (forq_queue_get(cl, "many", -1, &v, &len) != FORQ_OK)
            break;
        int64_t i = as_int(v, len);
        free(v);
        if (i < 0)
            break;
        k->got[k->n++] = i;
    }
    forq_client_destroy(&cl);
    return NULL;
}

/* 4 consumers in one process, a producer pipelining: every item exactly once, each consumer
 * sees its items in the order they were put. */
START_TEST(test_four_consumers_ten_thousand_items)
{
    drain_t k[4];
    pthread_t th[4];
    int *seen = calloc(ITEMS, sizeof(int));

    e2e_up(&d, &c, 1, NULL);
    for (int i = 0; i < 4; i++) {
        k[i] = (drain_t){&d, 0, calloc(ITEMS, sizeof(int64_t))};
        pthread_create(&th[i], NULL, drain_main, &k[i]);
    }
    for (int i = 0; i < ITEMS; i++)
        put_int(c, "many", i);
    for (int i = 0; i < 4; i++)
        put_int(c, "many", -1);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        for (int j = 0; j < k[i].n; j++) {
            seen[k[i].got[j]]++;
            if (j)
                ck_assert_int_gt(k[i].got[j], k[i].got[j - 1]);
        }
        free(k[i].got);
    }
    for (int i = 0; i < ITEMS; i++)
        ck_assert_msg(seen[i] == 1, "item %d delivered %d times", i, seen[i]);
    free(seen);
    e2e_down(&d, &c);
}
END_TEST

static Suite *queue_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *core = tcase_create("core"), *full;

    tcase_set_timeout(core, test_ms(60));
    tcase_add_test(core, test_queue_operations);
    tcase_add_test(core, test_queue_async);
    tcase_add_test(core, test_producer_consumer);
    tcase_add_test(core, test_blocked_gets_in_order);
    tcase_add_test(core, test_maxsize_backpressure);
    tcase_add_test(core, test_item_back_from_a_backlog);
    suite_add_tcase(s, core);
    /* under valgrind (FORQ_TEST_CORE_ONLY) the core cases only; ASan runs them all */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(180));
    tcase_add_test(full, test_kill9_keeps_acknowledged_puts_and_gets);
    tcase_add_test(full, test_disk_full);
    tcase_add_test(full, test_consumers_exactly_once_with_sigkill);
    tcase_add_test(full, test_four_consumers_ten_thousand_items);
    suite_add_tcase(s, full);
    return s;
}

int main(int argc, char **argv)
{
    int rc = helper_main(argc, argv, "--consumer", consumer_process);
    return rc >= 0 ? rc : run_suite(queue_suite());
}
