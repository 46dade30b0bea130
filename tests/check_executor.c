/* check_executor.c - libforq as an executor, end to end against a real forqd: map, starmap,
 * imap, imap_unordered, item errors, cancel of a map, crashes inside a map, done callbacks,
 * progress, forq_wait, as_completed, detached jobs and retention, forqd restarts under pending
 * futures, a million items through imap in bounded memory, and the CLI's map and wait. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"

#include <check.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static forqd_t d;
static forq_client_t *c;

/* Items 0..n-1 as packed msgpack integers. */
typedef struct {
    char (*bytes)[16];
    const void **items;
    size_t *lens;
    size_t n;
} ints_t;

static void ints_make(ints_t *t, size_t n, size_t base)
{
    t->n = n;
    t->bytes = calloc(n, sizeof(*t->bytes));
    t->items = calloc(n, sizeof(*t->items));
    t->lens = calloc(n, sizeof(*t->lens));
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_int64(&pk, (int64_t)(base + i));
        memcpy(t->bytes[i], sb.data, sb.size);
        t->items[i] = t->bytes[i];
        t->lens[i] = sb.size;
        msgpack_sbuffer_destroy(&sb);
    }
}

static void ints_free(ints_t *t)
{
    free(t->bytes);
    free(t->items);
    free(t->lens);
}

/* A map item's result as an integer (or boolean as 0/1); echo's [x] counts as x. */
static int64_t item_int(const forq_map_item_t *it)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    int64_t v = -999;
    msgpack_zone_init(&zone, 256);
    ck_assert_int_eq(msgpack_unpack(it->data, it->len, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
    if (o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 1)
        o = o.via.array.ptr[0];
    if (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER || o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        v = o.via.i64;
    else if (o.type == MSGPACK_OBJECT_BOOLEAN)
        v = o.via.boolean;
    msgpack_zone_destroy(&zone);
    return v;
}

static bool prime(int64_t n)
{
    if (n < 2)
        return false;
    for (int64_t i = 2; i * i <= n; i++)
        if (n % i == 0)
            return false;
    return true;
}

/* ---- map ---- */

START_TEST(test_map_ordered)
{
    ints_t in;
    forq_map_opts_t mo;
    forq_map_t *m;
    forq_map_item_t it;
    size_t k = 0;

    e2e_up(&d, &c, 2, NULL);
    ints_make(&in, 1000, 0);
    forq_map_opts_init(&mo);
    mo.chunksize = 7;
    mo.window = 3;
    ck_assert_int_eq(forq_map(c, "is_prime", in.items, in.lens, in.n, &mo, &m), FORQ_OK);
    while (forq_map_next(m, test_ms(30000), &it) == FORQ_OK) {
        ck_assert_uint_eq(it.index, k);
        ck_assert_int_eq(it.state, FORQ_STATE_OK);
        ck_assert_int_eq(item_int(&it), prime((int64_t)k));
        k++;
    }
    ck_assert_uint_eq(k, 1000);
    ck_assert_int_eq(forq_map_next(m, 0, &it), FORQ_ERR_EXHAUSTED);
    ck_assert_uint_eq(forq_map_failed(m), 0);
    /* 1000 items in chunks of 7 were 143 jobs */
    ck_assert_int_eq(stat_of(c, "submitted"), 143);
    forq_map_destroy(&m);
    ints_free(&in);
    e2e_down(&d, &c);
}
END_TEST

START_TEST(test_starmap)
{
    /* count_primes(lo, hi) over [[0,100],[100,200],...]: star passes each item as the args */
    const char *items_json[] = {"\x92\x00\x64", "\x92\x64\xcc\xc8", "\x92\xcc\xc8\xcd\x01\x2c"};
    size_t lens[] = {3, 4, 6};
    int64_t expect[] = {25, 21, 16};
    forq_map_opts_t mo;
    forq_map_t *m;
    forq_map_item_t it;

    e2e_up(&d, &c, 2, NULL);
    forq_map_opts_init(&mo);
    mo.star = true;
    mo.chunksize = 2;
    ck_assert_int_eq(forq_map(c, "count_primes", (const void *const *)items_json, lens, 3, &mo, &m),
                     FORQ_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(forq_map_next(m, test_ms(10000), &it), FORQ_OK);
        ck_assert_int_eq(item_int(&it), expect[i]);
    }
    ck_assert_int_eq(forq_map_next(m, 0, &it), FORQ_ERR_EXHAUSTED);
    forq_map_destroy(&m);
    e2e_down(&d, &c);
}
END_TEST

START_TEST(test_imap_unordered)
{
    ints_t in;
    forq_map_opts_t mo;
    forq_map_t *m;
    forq_map_item_t it;
    char seen[500] = {0};
    size_t k = 0;

    e2e_up(&d, &c, 2, NULL);
    ints_make(&in, 500, 0);
    forq_map_opts_init(&mo);
    mo.unordered = true;
    mo.chunksize = 10;
    ck_assert_int_eq(forq_map(c, "echo", in.items, in.lens, in.n, &mo, &m), FORQ_OK);
    while (forq_map_next(m, test_ms(30000), &it) == FORQ_OK) {
        ck_assert_uint_lt(it.index, 500);
        ck_assert_int_eq(seen[it.index], 0);
        seen[it.index] = 1;
        ck_assert_int_eq(item_int(&it), (int64_t)it.index);
        k++;
    }
    ck_assert_uint_eq(k, 500);
    forq_map_destroy(&m);
    ints_free(&in);
    e2e_down(&d, &c);
}
END_TEST

START_TEST(test_item_errors_inside_a_chunk)
{
    /* is_prime over [5, "x", 7, nil, 11]: the bad items fail, the rest go on */
    const char *items[] = {"\x05", "\xa1x", "\x07", "\xc0", "\x0b"};
    size_t lens[] = {1, 2, 1, 1, 1};
    forq_map_opts_t mo;
    forq_map_t *m;
    forq_map_item_t it;

    e2e_up(&d, &c, 1, NULL);
    forq_map_opts_init(&mo);
    mo.chunksize = 5;
    ck_assert_int_eq(forq_map(c, "is_prime", (const void *const *)items, lens, 5, &mo, &m),
                     FORQ_OK);
    for (size_t i = 0; i < 5; i++) {
        ck_assert_int_eq(forq_map_next(m, test_ms(10000), &it), FORQ_OK);
        ck_assert_uint_eq(it.index, i);
        if (i == 1 || i == 3) {
            ck_assert_int_eq(it.state, FORQ_STATE_ERROR);
            ck_assert_str_eq(it.error_type, "TypeError");
            ck_assert_ptr_nonnull(strstr(it.detail, "must be an integer"));
        } else {
            ck_assert_int_eq(it.state, FORQ_STATE_OK);
            ck_assert_int_eq(item_int(&it), 1);
        }
    }
    ck_assert_uint_eq(forq_map_failed(m), 2);
    forq_map_destroy(&m);
    e2e_down(&d, &c);
}
END_TEST

START_TEST(test_map_bad_input)
{
    const char *items[] = {"\x05", "\x92\x01", "\x07"}; /* the second is not one value */
    size_t lens[] = {1, 2, 1};
    forq_map_t *m;
    forq_map_item_t it;

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(forq_map(c, "echo", (const void *const *)items, lens, 3, NULL, &m), FORQ_OK);
    ck_assert_int_eq(forq_map_next(m, test_ms(10000), &it), FORQ_OK);
    ck_assert_int_eq(item_int(&it), 5);
    ck_assert_int_eq(forq_map_next(m, test_ms(10000), &it), FORQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "item 1"));
    forq_map_destroy(&m);
    forq_map_opts_t bad;
    forq_map_opts_init(&bad);
    bad.chunksize = 0;
    ck_assert_int_eq(forq_map(c, "echo", NULL, NULL, 0, &bad, &m), FORQ_ERR_INVALID);
    ck_assert_int_eq(forq_map(c, "bad name", NULL, NULL, 0, NULL, &m), FORQ_ERR_INVALID);
    e2e_down(&d, &c);
}
END_TEST

START_TEST(test_map_cancel_midway)
{
    const char *items[200];
    size_t lens[200];
    forq_map_opts_t mo;
    forq_map_t *m;
    forq_map_item_t it;
    size_t ok = 0, cancelled = 0;

    e2e_up(&d, &c, 2, NULL);
    for (int i = 0; i < 200; i++) {
        items[i] = "\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a"; /* 0.1 */
        lens[i] = 9;
    }
    forq_map_opts_init(&mo);
    mo.chunksize = 1;
    mo.window = 4;
    ck_assert_int_eq(forq_map(c, "sleep", (const void *const *)items, lens, 200, &mo, &m), FORQ_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(forq_map_next(m, test_ms(10000), &it), FORQ_OK);
        ck_assert_int_eq(it.state, FORQ_STATE_OK);
        ok++;
    }
    ck_assert_int_eq(forq_map_cancel(m), FORQ_OK);
    while (forq_map_next(m, test_ms(10000), &it) == FORQ_OK) {
        if (it.state == FORQ_STATE_OK)
            ok++;
        else if (it.state == FORQ_STATE_CANCELLED)
            cancelled++;
        else
            ck_abort_msg("unexpected state %s", forq_state_name(it.state));
    }
    ck_assert_int_eq(forq_map_next(m, 0, &it), FORQ_ERR_EXHAUSTED);
    ck_assert_uint_gt(cancelled, 0);
    ck_assert_uint_lt(ok + cancelled, 200);
    ck_assert_int_ge(stat_of(c, "cancelled"), (long long)cancelled);
    forq_map_destroy(&m);
    e2e_down(&d, &c);
}
END_TEST

START_TEST(test_crash_inside_a_map)
{
    /* crash_on(i, 13) over 0..39 in chunks of 5: only 10..14 fail */
    char bytes[40][8];
    const void *items[40];
    size_t lens[40];
    forq_map_opts_t mo;
    forq_map_t *m;
    forq_map_item_t it;

    e2e_up(&d, &c, 2, NULL);
    for (int i = 0; i < 40; i++) {
        bytes[i][0] = (char)0x92;
        bytes[i][1] = (char)i;
        bytes[i][2] = 13;
        items[i] = bytes[i];
        lens[i] = 3;
    }
    forq_map_opts_init(&mo);
    mo.star = true;
    mo.chunksize = 5;
    ck_assert_int_eq(forq_map(c, "crash_on", items, lens, 40, &mo, &m), FORQ_OK);
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(forq_map_next(m, test_ms(10000), &it), FORQ_OK);
        if (i >= 10 && i < 15) {
            ck_assert_int_eq(it.state, FORQ_STATE_CRASHED);
            ck_assert_ptr_nonnull(strstr(it.detail, "signal 11"));
        } else {
            ck_assert_int_eq(it.state, FORQ_STATE_OK);
            ck_assert_int_eq(item_int(&it), i);
        }
    }
    ck_assert_uint_eq(forq_map_failed(m), 5);
    forq_map_destroy(&m);

    /* with retries, a chunk whose worker crashed once runs again */
    char marker[300], item[320];
    snprintf(marker, sizeof(marker), "%s/crash-once", d.dir);
    item[0] = (char)0x91;
    item[1] = (char)0xd9;
    item[2] = (char)strlen(marker);
    memcpy(item + 3, marker, strlen(marker));
    const void *same[10];
    size_t slens[10];
    for (int i = 0; i < 10; i++) {
        same[i] = item;
        slens[i] = 3 + strlen(marker);
    }
    forq_map_opts_init(&mo);
    mo.star = true;
    mo.chunksize = 5;
    mo.job.retries = 1;
    ck_assert_int_eq(forq_map(c, "crash_once", same, slens, 10, &mo, &m), FORQ_OK);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(forq_map_next(m, test_ms(10000), &it), FORQ_OK);
        ck_assert_msg(it.state == FORQ_STATE_OK, "item %d: %s", i, it.detail);
    }
    ck_assert_int_eq(stat_of(c, "retried"), 1);
    forq_map_destroy(&m);
    e2e_down(&d, &c);
}
END_TEST

/* ---- callbacks ---- */

typedef struct {
    atomic_int calls;
    pthread_t thread;
    forq_state_t state;
    int order[4];
    atomic_int n;
} cb_t;

static void on_done(forq_future_t *f, void *ud)
{
    cb_t *cb = ud;
    cb->state = forq_future_state(f);
    cb->thread = pthread_self();
    atomic_fetch_add(&cb->calls, 1);
}

static void on_done_order(forq_future_t *f, void *ud)
{
    cb_t *cb = (cb_t *)((char *)ud - ((uintptr_t)ud & 3));
    (void)f;
    cb->order[atomic_fetch_add(&cb->n, 1)] = (int)((uintptr_t)ud & 3);
}

static void on_done_free(forq_future_t *f, void *ud)
{
    forq_future_t **fp = ud;
    ck_assert_ptr_eq(*fp, f);
    forq_future_destroy(fp);
}

START_TEST(test_done_callbacks)
{
    cb_t a = {0}, b = {0}, t = {0};
    static cb_t ord __attribute__((aligned(8)));
    forq_future_t *f, *g, *h;

    e2e_up(&d, &c, 1, NULL);
    /* fires once when the result arrives; with no thread waiting, on the I/O thread */
    f = submit_json(c, "sleep", "[0.1]", NULL);
    ck_assert_int_eq(forq_future_add_done_callback(f, on_done, &a), FORQ_OK);
    for (int i = 0; i < 1000 && atomic_load(&a.calls) == 0; i++)
        usleep(10000);
    ck_assert_int_eq(atomic_load(&a.calls), 1);
    ck_assert(!pthread_equal(a.thread, pthread_self()));
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_OK);
    ck_assert_int_eq(a.state, FORQ_STATE_OK);
    /* added after done: fires at once, in this thread */
    ck_assert_int_eq(forq_future_add_done_callback(f, on_done, &b), FORQ_OK);
    ck_assert_int_eq(atomic_load(&b.calls), 1);
    ck_assert(pthread_equal(b.thread, pthread_self()));
    forq_future_destroy(&f);
    /* in the order added */
    memset(&ord, 0, sizeof(ord));
    g = submit_json(c, "echo", "1", NULL);
    for (uintptr_t i = 1; i <= 3; i++)
        forq_future_add_done_callback(g, on_done_order, (char *)&ord + i);
    wait_state(g, 10000);
    for (int i = 0; i < 100 && atomic_load(&ord.n) < 3; i++)
        usleep(10000);
    ck_assert_int_eq(ord.order[0], 1);
    ck_assert_int_eq(ord.order[1], 2);
    ck_assert_int_eq(ord.order[2], 3);
    forq_future_destroy(&g);
    /* a callback may free its future (ASan and valgrind check the rest) */
    h = submit_json(c, "echo", "2", NULL);
    forq_future_t *keep = h;
    forq_future_add_done_callback(keep, on_done_free, &h);
    for (int i = 0; i < 500 && h; i++)
        usleep(10000);
    ck_assert_ptr_null(h);
    /* at teardown: a pending future's callback fires exactly once, LOST */
    forq_client_t *tmp = forqd_client(&d);
    forq_future_t *p = submit_json(tmp, "sleep", "[5]", NULL);
    forq_future_add_done_callback(p, on_done, &t);
    forq_client_destroy(&tmp);
    ck_assert_int_eq(atomic_load(&t.calls), 1);
    ck_assert_int_eq(t.state, FORQ_STATE_LOST);
    ck_assert(pthread_equal(t.thread, pthread_self()));
    forq_future_destroy(&p);
    ck_assert_int_eq(atomic_load(&t.calls), 1);
    e2e_down(&d, &c);
}
END_TEST

/* ---- one client shared by threads; callbacks that wait ---- */

typedef struct {
    int id, n, bad;
    bool dict;
} sharer_t;

/* Submit-and-wait (or a synchronous dict incr) n times on the shared client. */
static void *share_loop(void *arg)
{
    sharer_t *t = arg;
    char args[32], want[32];

    for (int i = 0; i < t->n; i++) {
        if (t->dict) {
            int64_t v;
            if (forq_dict_incr(c, "shared", "n", 1, 10000, &v) != FORQ_OK)
                t->bad++;
            continue;
        }
        snprintf(args, sizeof(args), "[%d]", t->id * 100000 + i);
        snprintf(want, sizeof(want), "[%d]", t->id * 100000 + i);
        forq_future_t *f = submit_json(c, "echo", args, NULL);
        char *got = result_json(f, 30000);
        if (!got || strcmp(got, want) != 0)
            t->bad++;
        free(got);
        forq_future_destroy(&f);
    }
    return NULL;
}

START_TEST(test_shared_client_threads)
{
    /* waiting threads take turns reading the one socket and deliver each other's results */
    enum { N = 6 };
    pthread_t th[N];
    sharer_t t[N];
    int64_t v = 0;
    int n = test_quick() ? 50 : 300;

    e2e_up(&d, &c, 2, NULL);
    for (int i = 0; i < N; i++) {
        t[i] = (sharer_t){.id = i, .n = n, .dict = i >= 4};
        ck_assert_int_eq(pthread_create(&th[i], NULL, share_loop, &t[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(t[i].bad == 0, "thread %d: %d of %d calls went wrong", i, t[i].bad, n);
    }
    ck_assert_int_eq(forq_dict_incr(c, "shared", "n", 0, 5000, &v), FORQ_OK);
    ck_assert_int_eq(v, 2 * n);
    e2e_down(&d, &c);
}
END_TEST

typedef struct {
    atomic_int calls;
    forq_err_t ping;
    char *nested;
} waiting_cb_t;

/* A callback that makes waiting calls on the client it runs for. */
static void on_done_wait(forq_future_t *f, void *ud)
{
    waiting_cb_t *w = ud;
    (void)f;
    w->ping = forq_client_ping(c, 5000, NULL);
    forq_future_t *g = submit_json(c, "echo", "[7]", NULL);
    w->nested = result_json(g, 10000);
    forq_future_destroy(&g);
    atomic_fetch_add(&w->calls, 1);
}

START_TEST(test_callback_may_wait)
{
    waiting_cb_t a = {0}, b = {0};
    forq_future_t *f, *g;

    e2e_up(&d, &c, 2, NULL);
    /* fired by the I/O thread: nobody waits */
    f = submit_json(c, "sleep", "[0.05]", NULL);
    forq_future_add_done_callback(f, on_done_wait, &a);
    for (int i = 0; i < 1000 && atomic_load(&a.calls) == 0; i++)
        usleep(10000);
    ck_assert_int_eq(atomic_load(&a.calls), 1);
    ck_assert_int_eq(a.ping, FORQ_OK);
    ck_assert_str_eq(a.nested, "[7]");
    /* fired by this thread, which reads the socket while it waits */
    g = submit_json(c, "sleep", "[0.05]", NULL);
    forq_future_add_done_callback(g, on_done_wait, &b);
    ck_assert_int_eq(wait_state(g, 10000), FORQ_STATE_OK);
    for (int i = 0; i < 1000 && atomic_load(&b.calls) == 0; i++)
        usleep(10000);
    ck_assert_int_eq(atomic_load(&b.calls), 1);
    ck_assert_int_eq(b.ping, FORQ_OK);
    ck_assert_str_eq(b.nested, "[7]");
    free(a.nested);
    free(b.nested);
    forq_future_destroy(&f);
    forq_future_destroy(&g);
    e2e_down(&d, &c);
}
END_TEST

/* ---- progress ---- */

typedef struct {
    atomic_int calls;
    uint64_t last_done, last_total;
    char text[32];
} prog_t;

static void on_progress(forq_future_t *f, uint64_t done, uint64_t total, const char *text, void *ud)
{
    prog_t *p = ud;
    (void)f;
    ck_assert_uint_ge(done, p->last_done);
    p->last_done = done;
    p->last_total = total;
    snprintf(p->text, sizeof(p->text), "%s", text);
    atomic_fetch_add(&p->calls, 1);
}

START_TEST(test_progress)
{
    prog_t p = {0};
    uint64_t done = 0, total = 0;
    char *text = NULL;

    e2e_up(&d, &c, 1, NULL);
    forq_future_t *f = submit_json(c, "progress_steps", "[5]", NULL);
    forq_future_on_progress(f, on_progress, &p);
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_OK);
    ck_assert_int_ge(atomic_load(&p.calls), 2);
    ck_assert_uint_eq(p.last_done, 5);
    ck_assert_uint_eq(p.last_total, 5);
    ck_assert_str_eq(p.text, "step 5");
    ck_assert(forq_future_progress(f, &done, &total, &text));
    ck_assert_uint_eq(done, 5);
    ck_assert_str_eq(text, "step 5");
    free(text);
    forq_future_destroy(&f);
    /* a task that reports nothing has no progress */
    f = submit_json(c, "echo", "1", NULL);
    wait_state(f, 10000);
    ck_assert(!forq_future_progress(f, NULL, NULL, NULL));
    forq_future_destroy(&f);
    e2e_down(&d, &c);
}
END_TEST

/* ---- wait and as_completed ---- */

START_TEST(test_wait_modes)
{
    size_t n;
    e2e_up(&d, &c, 3, NULL);
    forq_future_t *slow = submit_json(c, "sleep", "[0.5]", NULL);
    forq_future_t *fast = submit_json(c, "echo", "1", NULL);
    forq_future_t *bad = submit_json(c, "is_prime", "[\"x\"]", NULL);

    forq_future_t *first[] = {slow, fast};
    ck_assert_int_eq(forq_wait(first, 2, FORQ_FIRST_COMPLETED, test_ms(5000), &n), FORQ_OK);
    ck_assert_uint_ge(n, 1);
    ck_assert(forq_future_done(fast));
    ck_assert(!forq_future_done(slow));

    forq_future_t *exc[] = {slow, bad};
    ck_assert_int_eq(forq_wait(exc, 2, FORQ_FIRST_EXCEPTION, test_ms(5000), &n), FORQ_OK);
    ck_assert(forq_future_done(bad));
    ck_assert(!forq_future_done(slow));

    forq_future_t *longer = submit_json(c, "sleep", "[2]", NULL);
    forq_future_t *all4[] = {slow, fast, bad, longer};
    ck_assert_int_eq(forq_wait(all4, 4, FORQ_ALL_COMPLETED, 100, &n), FORQ_ERR_TIMEOUT);
    ck_assert_uint_lt(n, 4);
    forq_future_t *all3[] = {slow, fast, bad};
    ck_assert_int_eq(forq_wait(all3, 3, FORQ_ALL_COMPLETED, test_ms(5000), &n), FORQ_OK);
    ck_assert_uint_eq(n, 3);
    /* FIRST_EXCEPTION with no exception waits for all */
    forq_future_t *okonly[] = {slow, fast};
    ck_assert_int_eq(forq_wait(okonly, 2, FORQ_FIRST_EXCEPTION, test_ms(5000), &n), FORQ_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(forq_wait(NULL, 0, FORQ_ALL_COMPLETED, 0, &n), FORQ_OK);
    forq_future_destroy(&slow);
    forq_future_destroy(&fast);
    forq_future_destroy(&bad);
    forq_future_destroy(&longer);
    e2e_down(&d, &c);
}
END_TEST

START_TEST(test_as_completed)
{
    forq_as_completed_t *it;
    forq_future_t *f[3], *got;
    int n = test_quick() ? 200 : 2000;

    e2e_up(&d, &c, 3, NULL);
    f[0] = submit_json(c, "sleep", "[0.6]", NULL);
    f[1] = submit_json(c, "sleep", "[0.1]", NULL);
    f[2] = submit_json(c, "sleep", "[0.35]", NULL);
    ck_assert_int_eq(forq_as_completed_new(f, 3, &it), FORQ_OK);
    int expect[3] = {1, 2, 0};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(forq_as_completed_next(it, test_ms(5000), &got), FORQ_OK);
        ck_assert_ptr_eq(got, f[expect[i]]);
    }
    ck_assert_int_eq(forq_as_completed_next(it, 0, &got), FORQ_ERR_EXHAUSTED);
    forq_as_completed_destroy(&it);
    for (int i = 0; i < 3; i++)
        forq_future_destroy(&f[i]);

    /* thousands, each yielded once; the caller's handles may go meanwhile */
    forq_future_t **many = calloc((size_t)n, sizeof(*many));
    char *seen = calloc((size_t)n, 1);
    for (int i = 0; i < n; i++) {
        char a[16];
        snprintf(a, sizeof(a), "%d", i);
        many[i] = submit_json(c, "echo", a, NULL);
    }
    ck_assert_int_eq(forq_as_completed_new(many, (size_t)n, &it), FORQ_OK);
    forq_future_t **copy = calloc((size_t)n, sizeof(*copy));
    memcpy(copy, many, (size_t)n * sizeof(*copy));
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(forq_as_completed_next(it, test_ms(30000), &got), FORQ_OK);
        int k = -1;
        for (int j = 0; j < n; j++)
            if (copy[j] == got)
                k = j;
        ck_assert_int_ge(k, 0);
        ck_assert_int_eq(seen[k], 0);
        seen[k] = 1;
        ck_assert_int_eq(forq_future_state(got), FORQ_STATE_OK);
    }
    ck_assert_int_eq(forq_as_completed_next(it, 0, &got), FORQ_ERR_EXHAUSTED);
    forq_as_completed_destroy(&it);
    for (int i = 0; i < n; i++)
        forq_future_destroy(&many[i]);
    /* the iterator keeps futures alive that the caller already dropped */
    forq_future_t *one = submit_json(c, "sleep", "[0.1]", NULL);
    ck_assert_int_eq(forq_as_completed_new(&one, 1, &it), FORQ_OK);
    forq_future_t *alias = one;
    forq_future_destroy(&one);
    ck_assert_int_eq(forq_as_completed_next(it, test_ms(5000), &got), FORQ_OK);
    ck_assert_ptr_eq(got, alias);
    forq_as_completed_destroy(&it);
    free(many);
    free(copy);
    free(seen);
    e2e_down(&d, &c);
}
END_TEST

/* ---- detached jobs and retention ---- */

START_TEST(test_detached_fetch)
{
    forq_submit_opts_t o = submit_opts();
    forq_future_t *f, *g, *h;

    e2e_up(&d, &c, 1, NULL);
    forq_client_t *a = forqd_client(&d), *b = forqd_client(&d);
    o.id = "det-1";
    f = submit_json(a, "sleep", "[0.3]", &o);
    forq_future_destroy(&f);
    forq_client_destroy(&a); /* the submitter is gone */
    ck_assert_int_eq(forq_client_fetch(b, "det-1", &g), FORQ_OK);
    ck_assert_int_eq(forq_client_fetch(c, "det-1", &h), FORQ_OK); /* a second fetcher */
    ck_assert_int_eq(wait_state(g, 5000), FORQ_STATE_OK);
    ck_assert_int_eq(wait_state(h, 5000), FORQ_STATE_OK);
    forq_future_destroy(&g);
    forq_future_destroy(&h);
    /* once finished, the result is still there */
    ck_assert_int_eq(forq_client_fetch(b, "det-1", &g), FORQ_OK);
    ck_assert_int_eq(wait_state(g, 5000), FORQ_STATE_OK);
    forq_future_destroy(&g);
    o.id = "det-2";
    f = submit_json(b, "is_prime", "[\"x\"]", &o);
    wait_state(f, 5000);
    forq_future_destroy(&f);
    ck_assert_int_eq(forq_client_fetch(c, "det-2", &g), FORQ_OK);
    ck_assert_int_eq(wait_state(g, 5000), FORQ_STATE_ERROR);
    ck_assert_str_eq(forq_future_error_type(g), "TypeError");
    forq_future_destroy(&g);
    ck_assert_int_eq(forq_client_fetch(c, "never-was", &g), FORQ_OK);
    ck_assert_int_eq(wait_state(g, 5000), FORQ_STATE_UNKNOWN);
    ck_assert_int_eq(forq_future_result(g, NULL, NULL), FORQ_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(g), "never submitted"));
    forq_future_destroy(&g);
    ck_assert_int_eq(forq_client_fetch(c, "bad id", &g), FORQ_ERR_INVALID);
    forq_client_destroy(&b);
    e2e_down(&d, &c);
}
END_TEST

START_TEST(test_retention_limits)
{
    const char *extra[] = {"--retain", "2", "--retain-bytes", "5000", NULL};
    forq_submit_opts_t o = submit_opts();
    forq_future_t *f, *g;
    const char *ids[] = {"r1", "r2", "r3"};

    e2e_up(&d, &c, 1, extra);
    for (int i = 0; i < 3; i++) {
        o.id = ids[i];
        f = submit_json(c, "echo", "1", &o);
        wait_state(f, 5000);
        forq_future_destroy(&f);
    }
    ck_assert_int_eq(forq_client_fetch(c, "r1", &g), FORQ_OK);
    ck_assert_int_eq(wait_state(g, 5000), FORQ_STATE_UNKNOWN);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(g), "the last 2 jobs"));
    forq_future_destroy(&g);
    ck_assert_int_eq(forq_client_fetch(c, "r3", &g), FORQ_OK);
    ASSERT_RESULT(g, "1");
    forq_future_destroy(&g);
    /* bytes: two results of 3000 bytes do not fit in 5000; the older is forgotten */
    o.id = "big-1";
    f = submit_json(c, "blob", "[3000]", &o);
    wait_state(f, 5000);
    forq_future_destroy(&f);
    o.id = "big-2";
    f = submit_json(c, "blob", "[3000]", &o);
    wait_state(f, 5000);
    forq_future_destroy(&f);
    ck_assert_int_eq(forq_client_fetch(c, "big-1", &g), FORQ_OK);
    ck_assert_int_eq(wait_state(g, 5000), FORQ_STATE_UNKNOWN);
    forq_future_destroy(&g);
    ck_assert_int_eq(forq_client_fetch(c, "big-2", &g), FORQ_OK);
    ck_assert_int_eq(wait_state(g, 5000), FORQ_STATE_OK);
    forq_future_destroy(&g);
    ck_assert_int_le(stat_of(c, "retained_bytes"), 5000);
    e2e_down(&d, &c);
}
END_TEST

/* ---- forqd restarts under pending futures ---- */

START_TEST(test_forqd_restart_under_pending_futures)
{
    forq_submit_opts_t o = submit_opts();
    forq_future_t *lost, *again;

    e2e_up(&d, &c, 2, NULL);
    o.id = "no-retries";
    lost = submit_json(c, "sleep", "[30]", &o);
    o.id = "with-retries";
    o.retries = 1;
    again = submit_json(c, "sleep", "[0.2]", &o);
    wait_running(c, "no-retries");
    wait_running(c, "with-retries");
    e2e_crash_restart(&d, 2, NULL);
    /* the client reconnects by itself, sees a new instance (a restart, not a reconnection),
     * asks about both, and neither hangs */
    ck_assert_int_eq(wait_state(lost, 15000), FORQ_STATE_LOST);
    ck_assert_msg(strstr(forq_future_detail(lost), "restarted (a new instance)"), "%s",
                  forq_future_detail(lost));
    ck_assert_int_eq(wait_state(again, 15000), FORQ_STATE_OK);
    forq_future_destroy(&lost);
    forq_future_destroy(&again);
    e2e_down(&d, &c);
}
END_TEST

START_TEST(test_lost_after_forqd_gone)
{
    forq_client_opts_t co;
    forq_client_t *cl;
    forq_future_t *f;
    int status;

    e2e_up(&d, &c, 1, NULL);
    forq_client_opts_init(&co);
    co.endpoint = d.endpoint;
    co.lost_after_ms = 300;
    ck_assert_int_eq(forq_client_new(&co, &cl), FORQ_OK);
    f = submit_json(cl, "sleep", "[30]", NULL);
    wait_running(c, forq_future_id(f));
    kill(d.pid, SIGKILL);
    waitpid(d.pid, &status, 0);
    d.pid = 0;
    ck_assert_int_eq(wait_state(f, 10000), FORQ_STATE_LOST);
    ck_assert_ptr_nonnull(strstr(forq_future_detail(f), "unreachable"));
    forq_future_destroy(&f);
    forq_client_destroy(&cl);
    forq_client_destroy(&c);
    forqd_stop(&d);
}
END_TEST

/* ---- a million items, flat memory ---- */

typedef struct {
    size_t next, n;
    char buf[16];
} gen_t;

static int gen_feed(void *ud, const void **item, size_t *len)
{
    gen_t *g = ud;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    if (g->next >= g->n)
        return 0;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_uint64(&pk, g->next++);
    memcpy(g->buf, sb.data, sb.size);
    *item = g->buf;
    *len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return 1;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

START_TEST(test_imap_million_items_flat_memory)
{
    const long bound_kib = 64 * 1024; /* the stated bound: 64 MiB of growth */
    gen_t g = {0, test_quick() ? 100000 : 1000000, {0}};
    forq_map_opts_t mo;
    forq_map_t *m;
    forq_map_item_t it;
    long base, peak = 0;
    size_t k = 0;

    e2e_up(&d, &c, 2, NULL);
    forq_map_opts_init(&mo);
    mo.chunksize = 1000;
    mo.window = 8;
    ck_assert_int_eq(forq_imap(c, "echo", gen_feed, &g, &mo, &m), FORQ_OK);
    base = rss_kib();
    while (forq_map_next(m, test_ms(30000), &it) == FORQ_OK) {
        ck_assert_uint_eq(it.index, k);
        if (k % 100000 == 0)
            ck_assert_int_eq(item_int(&it), (int64_t)k);
        if (k % 10000 == 0) {
            long now = rss_kib();
            if (now - base > peak)
                peak = now - base;
        }
        k++;
    }
    ck_assert_uint_eq(k, g.n);
#ifndef UNDER_ASAN
    /* (AddressSanitizer holds freed memory in a 256 MiB quarantine on purpose: RSS says nothing
     * there; the plain build asserts the bound) */
    ck_assert_msg(peak < bound_kib, "client memory grew by %ld KiB over %zu items", peak, k);
#else
    (void)bound_kib;
#endif
    fprintf(stderr, "imap: %zu items, client RSS growth peaked at %ld KiB\n", k, peak);
    forq_map_destroy(&m);
    e2e_down(&d, &c);
}
END_TEST

/* ---- the CLI ---- */

START_TEST(test_cli_map_and_wait)
{
    char cmd[1024], out[8192];
    const char *cli = getenv("FORQ_CLI");

    e2e_up(&d, &c, 2, NULL);
    snprintf(cmd, sizeof(cmd), "seq 1 12 | %s -e %s map is_prime --chunksize 5 2>/dev/null", cli,
             d.endpoint);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "false\ntrue\ntrue\nfalse\ntrue\nfalse\ntrue\nfalse\nfalse\nfalse\ntrue\n"
                          "false\n");
    snprintf(
        cmd, sizeof(cmd),
        "printf '[1,100]\\n\"x\"\\n\\n[100,200]\\n' | %s -e %s map count_primes 2>&1 >/dev/null",
        cli, d.endpoint);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "item 1 error: TypeError"));
    ck_assert_ptr_nonnull(strstr(out, "2 of 4 items failed")); /* the blank line is an item */
    snprintf(cmd, sizeof(cmd),
             "printf '[1,100]\\n\"x\"\\n' | %s -e %s map count_primes 2>/dev/null", cli,
             d.endpoint);
    sh(cmd, out, sizeof(out));
    ck_assert_ptr_nonnull(strstr(out, "25\n{\"$error\":{\"index\":1,"));
    snprintf(cmd, sizeof(cmd), "printf '1\\n[2,\\n' | %s -e %s map echo 2>/dev/null", cli,
             d.endpoint);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 1); /* a line that is not JSON is a failed item */
    ck_assert_ptr_nonnull(strstr(out, "1\n{\"$error\":{\"index\":1,\"state\":\"invalid\""));
    snprintf(cmd, sizeof(cmd), "seq 1 3 | %s -e %s map echo --unordered --chunksize 1 | sort", cli,
             d.endpoint);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "[0,1]\n[1,2]\n[2,3]\n");
    /* on a terminal (script(1) gives it one): a progress bar with done/total, rate and ETA */
    if (system("command -v script >/dev/null") == 0) {
        char in[300];
        snprintf(in, sizeof(in), "%s/in.jsonl", d.dir);
        FILE *f = fopen(in, "w");
        for (int i = 0; i < 20; i++)
            fprintf(f, "0.02\n");
        fclose(f);
        snprintf(cmd, sizeof(cmd),
                 "script -qc '%s -e %s map sleep --input %s --chunksize 1 --window 2 >/dev/null' "
                 "/dev/null </dev/null | tr '\\r' '\\n'",
                 cli, d.endpoint, in);
        sh(cmd, out, sizeof(out));
        ck_assert_msg(strstr(out, "/20 ") && strstr(out, "/s  ETA ") && strstr(out, "20 items in"),
                      "no progress bar: %s", out);
    }
    snprintf(cmd, sizeof(cmd), "%s -e %s map echo --chunksize 0 2>/dev/null", cli, d.endpoint);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 2);
    /* wait for a detached job */
    snprintf(cmd, sizeof(cmd), "%s -e %s submit sleep 0.2 --no-wait --id cli-det", cli, d.endpoint);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 0);
    snprintf(cmd, sizeof(cmd), "%s -e %s wait cli-det", cli, d.endpoint);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "null\n");
    snprintf(cmd, sizeof(cmd), "%s -e %s wait nope 2>&1", cli, d.endpoint);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 11);
    ck_assert_ptr_nonnull(strstr(out, "never submitted"));
    snprintf(cmd, sizeof(cmd),
             "%s -e %s submit sleep 5 --no-wait --id cli-slow >/dev/null && "
             "%s -e %s wait cli-slow --timeout 0.1 2>/dev/null",
             cli, d.endpoint, cli, d.endpoint);
    ck_assert_int_eq(sh(cmd, out, sizeof(out)), 10);
    e2e_down(&d, &c);
}
END_TEST

static Suite *executor_suite(void)
{
    Suite *s = suite_create("executor");
    TCase *core = tcase_create("core"), *full;

    tcase_set_timeout(core, test_ms(120));
    tcase_add_test(core, test_map_ordered);
    tcase_add_test(core, test_item_errors_inside_a_chunk);
    tcase_add_test(core, test_map_cancel_midway);
    tcase_add_test(core, test_done_callbacks);
    tcase_add_test(core, test_shared_client_threads);
    tcase_add_test(core, test_callback_may_wait);
    tcase_add_test(core, test_progress);
    tcase_add_test(core, test_wait_modes);
    tcase_add_test(core, test_as_completed);
    tcase_add_test(core, test_detached_fetch);
    suite_add_tcase(s, core);
    /* under valgrind (FORQ_TEST_CORE_ONLY) the core cases only; ASan runs them all */
    if (getenv("FORQ_TEST_CORE_ONLY"))
        return s;
    full = tcase_create("full");
    tcase_set_timeout(full, test_ms(120));
    tcase_add_test(full, test_starmap);
    tcase_add_test(full, test_imap_unordered);
    tcase_add_test(full, test_map_bad_input);
    tcase_add_test(full, test_crash_inside_a_map);
    tcase_add_test(full, test_retention_limits);
    tcase_add_test(full, test_forqd_restart_under_pending_futures);
    tcase_add_test(full, test_lost_after_forqd_gone);
    tcase_add_test(full, test_imap_million_items_flat_memory);
    tcase_add_test(full, test_cli_map_and_wait);
    suite_add_tcase(s, full);
    return s;
}

int main(void)
{
    return run_suite(executor_suite());
}
