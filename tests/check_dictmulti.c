/* check_dictmulti.c - many keys in one request (issue 17): mget and mset end to end through
 * libforq, the CLI and raw requests; atomic (a reader never sees half an mset; a refused mset
 * changed nothing), refused whole at the limits (key count, --dict-max-keys, --dict-max-value,
 * --dict-max-bytes, a reply over --max-payload), and one frame of the log (kill -9, and a torn
 * last frame, keep all of an mset or none). */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"

#include <check.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static forqd_t d;
static forq_client_t *c;
static char state[64];

#define T (test_ms(5000))

static msgpack_sbuffer val_int(int64_t v)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_int64(&pk, v);
    return sb;
}

static int64_t as_int(const void *data, size_t len)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    int64_t v = -12345;
    msgpack_zone_init(&zone, 64);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
        (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER || o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
        v = o.via.i64;
    msgpack_zone_destroy(&zone);
    return v;
}

/* mset of keys p0..p(n-1) = base+i. */
static forq_err_t mset_n(forq_client_t *cl, const char *name, const char *prefix, int n,
                         int64_t base, uint64_t *ret_ver)
{
    char **keys = calloc((size_t)n, sizeof(*keys));
    const void **vals = calloc((size_t)n, sizeof(*vals));
    size_t *lens = calloc((size_t)n, sizeof(*lens));
    msgpack_sbuffer *sb = calloc((size_t)n, sizeof(*sb));
    for (int i = 0; i < n; i++) {
        ck_assert_int_gt(asprintf(&keys[i], "%s%d", prefix, i), 0);
        sb[i] = val_int(base + i);
        vals[i] = sb[i].data;
        lens[i] = sb[i].size;
    }
    forq_err_t e =
        forq_dict_mset(cl, name, (const char *const *)keys, vals, lens, (size_t)n, T, ret_ver);
    for (int i = 0; i < n; i++) {
        free(keys[i]);
        msgpack_sbuffer_destroy(&sb[i]);
    }
    free(keys);
    free(vals);
    free(lens);
    free(sb);
    return e;
}

/* How many of p0..p(n-1) exist (one mget). */
static size_t count_n(forq_client_t *cl, const char *name, const char *prefix, int n)
{
    char **keys = calloc((size_t)n, sizeof(*keys));
    void **vals = calloc((size_t)n, sizeof(*vals));
    size_t found = 0;
    for (int i = 0; i < n; i++)
        ck_assert_int_gt(asprintf(&keys[i], "%s%d", prefix, i), 0);
    ck_assert_int_eq(
        forq_dict_mget(cl, name, (const char *const *)keys, (size_t)n, T, vals, NULL, NULL, &found),
        FORQ_OK);
    for (int i = 0; i < n; i++) {
        free(vals[i]);
        free(keys[i]);
    }
    free(keys);
    free(vals);
    return found;
}

START_TEST(test_mget_mset)
{
    const char *keys[] = {"a", "zz", "b", "a"};
    void *vals[4];
    size_t lens[4], found;
    uint64_t vers[4], last;

    e2e_up(&d, &c, 1, NULL);
    ck_assert_int_eq(mset_n(c, "m", "k", 3, 10, &last), FORQ_OK);
    /* the three keys got consecutive versions, the last one reported */
    const char *k3[] = {"k0", "k1", "k2"};
    ck_assert_int_eq(forq_dict_mget(c, "m", k3, 3, T, vals, lens, vers, &found), FORQ_OK);
    ck_assert_uint_eq(found, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(as_int(vals[i], lens[i]), 10 + i);
        ck_assert_uint_eq(vers[i], last - 2 + (uint64_t)i);
        free(vals[i]);
    }
    /* absent keys are NULL with version 0; a key may repeat */
    msgpack_sbuffer one = val_int(1), two = val_int(2);
    ck_assert_int_eq(forq_dict_set(c, "m", "a", one.data, one.size, T, NULL), FORQ_OK);
    ck_assert_int_eq(forq_dict_set(c, "m", "b", two.data, two.size, T, NULL), FORQ_OK);
    ck_assert_int_eq(forq_dict_mget(c, "m", keys, 4, T, vals, lens, vers, &found), FORQ_OK);
    ck_assert_uint_eq(found, 3);
    ck_assert_int_eq(as_int(vals[0], lens[0]), 1);
    ck_assert_ptr_null(vals[1]);
    ck_assert_uint_eq(vers[1], 0);
    ck_assert_int_eq(as_int(vals[2], lens[2]), 2);
    ck_assert_int_eq(as_int(vals[3], lens[3]), 1);
    ck_assert_uint_eq(vers[0], vers[3]);
    for (int i = 0; i < 4; i++)
        free(vals[i]);
    /* a dict that does not exist: all absent */
    ck_assert_int_eq(forq_dict_mget(c, "none", keys, 4, T, vals, NULL, NULL, &found), FORQ_OK);
    ck_assert_uint_eq(found, 0);
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_null(vals[i]);
    /* refused locally: no keys, a bad key */
    ck_assert_int_eq(forq_dict_mget(c, "m", keys, 0, T, vals, NULL, NULL, NULL), FORQ_ERR_INVALID);
    const char *bad[] = {"a", ""};
    ck_assert_int_eq(forq_dict_mget(c, "m", bad, 2, T, vals, NULL, NULL, NULL), FORQ_ERR_INVALID);
    msgpack_sbuffer_destroy(&one);
    msgpack_sbuffer_destroy(&two);
    e2e_down(&d, &c);
}
END_TEST

/* An async op with a raw value frame, answered: its forq_dict_reply and the error's detail. */
static forq_err_t raw_op(const char *op, const void *value, size_t len)
{
    forq_dict_op_t o;
    forq_future_t *f;
    forq_dict_op_init(&o);
    o.op = op;
    o.name = "m";
    o.value = value;
    o.len = len;
    ck_assert_int_eq(forq_dict_submit(c, &o, &f), FORQ_OK);
    ck_assert_int_eq(forq_future_wait(f, T), FORQ_OK);
    forq_err_t e = forq_dict_reply(f, NULL, NULL, NULL);
    forq_future_destroy(&f);
    return e;
}

START_TEST(test_refused_whole_at_limits)
{
    const char *extra[] = {
        "--dict-max-keys", "5", "--dict-max-value", "100", "--max-payload", "4096", NULL};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t n;

    e2e_up(&d, &c, 1, extra);
    ck_assert_int_eq(mset_n(c, "m", "old", 3, 0, NULL), FORQ_OK);
    /* 3 new keys over --dict-max-keys 5: none is written */
    ck_assert_int_eq(mset_n(c, "m", "new", 3, 0, NULL), FORQ_ERR_FULL);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "--dict-max-keys"));
    ck_assert_int_eq(forq_dict_len(c, "m", T, &n), FORQ_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(count_n(c, "m", "new", 3), 0);
    /* one value over --dict-max-value among small ones: none is written, the old values stay */
    {
        const char *keys[] = {"old0", "big"};
        char big[200];
        msgpack_sbuffer nine = val_int(9);
        memset(big, 'x', sizeof(big));
        big[0] = (char)0xd9;
        big[1] = (char)198;
        const void *vals[] = {nine.data, big};
        size_t lens[] = {nine.size, sizeof(big)};
        ck_assert_int_eq(forq_dict_mset(c, "m", keys, vals, lens, 2, T, NULL), FORQ_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(forq_errdetail(), "--dict-max-value"));
        void *v;
        size_t len;
        ck_assert_int_eq(forq_dict_get(c, "m", "old0", T, &v, &len, NULL), FORQ_OK);
        ck_assert_int_eq(as_int(v, len), 0);
        free(v);
        msgpack_sbuffer_destroy(&nine);
    }
    /* the limits are forqd's too: the same mset sent raw is refused alike */
    /* a key that is not a string: bad_key from forqd, nothing written */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "new0", 4);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_int(&pk, 7);
    msgpack_pack_int(&pk, 1);
    ck_assert_int_eq(raw_op("mset", sb.data, sb.size), FORQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "bad_key"));
    ck_assert_uint_eq(count_n(c, "m", "new", 1), 0);
    msgpack_sbuffer_destroy(&sb);
    /* mget's value must be an array of keys */
    ck_assert_int_eq(raw_op("mget", "\x01", 1), FORQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "bad_value"));
    e2e_down(&d, &c);
}
END_TEST

START_TEST(test_key_count_and_reply_size)
{
    const char *extra[] = {"--max-payload", "1048576", NULL};
    msgpack_sbuffer sb;
    msgpack_packer pk;

    e2e_up(&d, &c, 1, extra);
    /* more keys than one request may carry: too_large, before any work */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 100001);
    for (int i = 0; i < 100001; i++)
        msgpack_pack_str_with_body(&pk, "a", 1);
    ck_assert_int_eq(raw_op("mget", sb.data, sb.size), FORQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "too_large"));
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 100001);
    for (int i = 0; i < 100001; i++) {
        msgpack_pack_str_with_body(&pk, "a", 1);
        msgpack_pack_int(&pk, 1);
    }
    ck_assert_int_eq(raw_op("mset", sb.data, sb.size), FORQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "too_large"));
    msgpack_sbuffer_destroy(&sb);
    size_t n;
    ck_assert_int_eq(forq_dict_len(c, "m", T, &n), FORQ_OK);
    ck_assert_uint_eq(n, 0);
    /* a reply whose values would pass --max-payload: refused whole, with what to do */
    char big[300000];
    memset(big, 'x', sizeof(big));
    big[0] = (char)0xdb;
    big[1] = 0;
    big[2] = (char)((sizeof(big) - 5) >> 16);
    big[3] = (char)((sizeof(big) - 5) >> 8);
    big[4] = (char)((sizeof(big) - 5) & 0xff);
    for (int i = 0; i < 4; i++) {
        char key[8];
        snprintf(key, sizeof(key), "b%d", i);
        ck_assert_int_eq(forq_dict_set(c, "m", key, big, sizeof(big), T, NULL), FORQ_OK);
    }
    const char *keys[] = {"b0", "b1", "b2", "b3"};
    void *vals[4];
    size_t lens[4];
    ck_assert_int_eq(forq_dict_mget(c, "m", keys, 4, T, vals, lens, NULL, NULL), FORQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(forq_errdetail(), "--max-payload"));
    ck_assert_int_eq(forq_dict_mget(c, "m", keys, 3, T, vals, lens, NULL, NULL), FORQ_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(lens[i], sizeof(big));
        ck_assert_int_eq(memcmp(vals[i], big, sizeof(big)), 0);
        free(vals[i]);
    }
    e2e_down(&d, &c);
}
END_TEST

typedef struct {
    const forqd_t *d;
    atomic_bool stop;
    long torn; /* reads that saw a and b differ */
    long reads;
} pair_t;

static void *pair_reader(void *arg)
{
    pair_t *p = arg;
    forq_client_t *cl = forqd_client(p->d);
    const char *keys[] = {"a", "b"};
    while (!atomic_load(&p->stop)) {
        void *v[2];
        size_t l[2];
        ck_assert_int_eq(forq_dict_mget(cl, "pair", keys, 2, T, v, l, NULL, NULL), FORQ_OK);
        if (v[0] && v[1] && as_int(v[0], l[0]) != as_int(v[1], l[1]))
            p->torn++;
        p->reads++;
        free(v[0]);
        free(v[1]);
    }
    forq_client_destroy(&cl);
    return NULL;
}

/* A reader never sees half of an mset: mget reads its keys at one instant. */
START_TEST(test_reader_never_sees_half)
{
    const char *keys[] = {"a", "b"};
    pair_t p = {&d, false, 0, 0};
    pthread_t th;
    int rounds = test_quick() ? 500 : 3000;

    e2e_up(&d, &c, 1, NULL);
    pthread_create(&th, NULL, pair_reader, &p);
    for (int i = 0; i < rounds; i++) {
        msgpack_sbuffer v = val_int(i);
        const void *vals[] = {v.data, v.data};
        size_t lens[] = {v.size, v.size};
        ck_assert_int_eq(forq_dict_mset(c, "pair", keys, vals, lens, 2, T, NULL), FORQ_OK);
        msgpack_sbuffer_destroy(&v);
    }
    atomic_store(&p.stop, true);
    pthread_join(th, NULL);
    fprintf(stderr, "mget during %d msets: %ld reads, %ld torn\n", rounds, p.reads, p.torn);
    ck_assert_int_gt(p.reads, 0);
    ck_assert_int_eq(p.torn, 0);
    e2e_down(&d, &c);
}
END_TEST

static void remove_state_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", state);
    if (system(cmd) != 0) {
        /* a leftover temporary directory is harmless */
    }
}

/* kill -9 after acknowledged msets: every one is there after the restart. Then a torn last
 * frame (the tail of the log cut in the middle of an mset's frame, as a crash during its write
 * leaves it): the restart keeps none of that mset, and all of the ones before. */
START_TEST(test_replay_after_kill9)
{
    const char *extra[] = {"--state-dir", state, "--fsync", "always", NULL};
    char path[160];
    struct stat st;

    temp_dir(state, sizeof(state), "forq-state");
    e2e_up(&d, &c, 1, extra);
    ck_assert_int_eq(mset_n(c, "r", "x", 500, 0, NULL), FORQ_OK);
    ck_assert_int_eq(mset_n(c, "r", "y", 500, 0, NULL), FORQ_OK);
    e2e_kill(&d);
    e2e_restart(&d, 1, extra);
    forq_client_destroy(&c);
    c = forqd_client(&d);
    ck_assert_uint_eq(count_n(c, "r", "x", 500), 500);
    ck_assert_uint_eq(count_n(c, "r", "y", 500), 500);
    /* the last mset's frame, torn: its keys all go, the others stay */
    snprintf(path, sizeof(path), "%s/dict.log", state);
    ck_assert_int_eq(stat(path, &st), 0);
    off_t before = st.st_size;
    ck_assert_int_eq(mset_n(c, "r", "z", 500, 0, NULL), FORQ_OK);
    e2e_kill(&d);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_gt(st.st_size, before + 1000);
    ck_assert_int_eq(truncate(path, before + (st.st_size - before) / 2), 0);
    e2e_restart(&d, 1, extra);
    forq_client_destroy(&c);
    c = forqd_client(&d);
    ck_assert_uint_eq(count_n(c, "r", "z", 500), 0);
    ck_assert_uint_eq(count_n(c, "r", "x", 500), 500);
    ck_assert_uint_eq(count_n(c, "r", "y", 500), 500);
    e2e_down(&d, &c);
    remove_state_dir();
}
END_TEST

START_TEST(test_cli)
{
    char cmd[1024], out[4096], pre[512];

    e2e_up(&d, &c, 1, NULL);
    snprintf(pre, sizeof(pre), "%s -e %s dict", getenv("FORQ_CLI"), d.endpoint);
#define RUN(args)                                                                                  \
    (snprintf(cmd, sizeof(cmd), "%s %s 2>/dev/null", pre, args), sh(cmd, out, sizeof(out)))
    ck_assert_int_eq(RUN("mset d '{\"a\": 1, \"b\": [2, 3], \"c\": \"x\"}'"), 0);
    ck_assert_int_eq(RUN("mget d a nope c b"), 0);
    ck_assert_str_eq(out, "{\"a\":1,\"c\":\"x\",\"b\":[2,3]}\n");
    ck_assert_int_eq(RUN("mget d"), 2);
    ck_assert_int_eq(RUN("mset d '{}'"), 2);
    ck_assert_int_eq(RUN("mset d '[1]'"), 2);
#undef RUN
    e2e_down(&d, &c);
}
END_TEST

static Suite *dictmulti_suite(void)
{
    Suite *s = suite_create("dictmulti");
    TCase *tc = tcase_create("multi");

    tcase_set_timeout(tc, test_ms(120));
    tcase_add_test(tc, test_mget_mset);
    tcase_add_test(tc, test_refused_whole_at_limits);
    tcase_add_test(tc, test_key_count_and_reply_size);
    tcase_add_test(tc, test_reader_never_sees_half);
    tcase_add_test(tc, test_replay_after_kill9);
    tcase_add_test(tc, test_cli);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(dictmulti_suite());
}
