/* check_api.c - what libforq and the plugin ABI give so that C users need not write it by hand:
 * JSON in and out (forq_json_to_msgpack, forq_msgpack_to_json, forq_submit_json,
 * forq_future_result_json), a map whose items a callback packs (forq_map_gen), the typed dict
 * helpers of <forq/task.h> (through the test plugin's dict_typed task), what forq_task_job_id()
 * is inside a chunk, and what a wait says when forqd is not there. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"

#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <unistd.h>

static forqd_t d;
static forq_client_t *c;

#define T 10000

/* JSON -> msgpack -> JSON: the text as forq_msgpack_to_json() writes it back. */
static char *round_trip(const char *json)
{
    void *mp;
    size_t len;
    char *back = NULL;

    ck_assert_msg(forq_json_to_msgpack(json, &mp, &len) == FORQ_OK, "%s: %s", json,
                  forq_errdetail());
    ck_assert_msg(forq_msgpack_to_json(mp, len, &back) == FORQ_OK, "%s: %s", json,
                  forq_errdetail());
    free(mp);
    return back;
}

START_TEST(test_json_round_trip)
{
    static const char *const same[] = {
        "[1,-2,\"x\",null,true,false,1.5]",
        "{\"a\":[],\"b\":{\"c\":\"\"}}",
        "{\"$base64\":\"AAH/\"}",
        "\"caf\xc3\xa9\"",
        "9223372036854775807",
        "[{\"$base64\":\"\"}]",
        "\"a\\u0000b\"", /* a str with a NUL in it, as forq_msgpack_to_json writes it */
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        char *back = round_trip(same[i]);
        ck_assert_str_eq(back, same[i]);
        free(back);
    }
    /* $base64 is bytes: msgpack bin, 3 bytes */
    void *mp;
    size_t len;
    ck_assert_int_eq(forq_json_to_msgpack("{\"$base64\":\"AAH/\"}", &mp, &len), FORQ_OK);
    ck_assert_uint_eq(len, 5);
    ck_assert_uint_eq(((uint8_t *)mp)[0], 0xc4); /* bin 8 */
    ck_assert_uint_eq(((uint8_t *)mp)[1], 3);
    free(mp);
}
END_TEST

/* What msgpack has and JSON has not. */
START_TEST(test_msgpack_beyond_json)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char *j;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_map(&pk, 1); /* a map with an integer key */
    msgpack_pack_int(&pk, 7);
    msgpack_pack_true(&pk);
    msgpack_pack_double(&pk, NAN);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    msgpack_pack_str(&pk, 2); /* not UTF-8 */
    msgpack_pack_str_body(&pk, "\xff\xfe", 2);
    msgpack_pack_ext(&pk, 2, 5);
    msgpack_pack_ext_body(&pk, "hi", 2);
    ck_assert_int_eq(forq_msgpack_to_json(sb.data, sb.size, &j), FORQ_OK);
    ck_assert_str_eq(j, "[{\"7\":true},null,1.8446744073709552e19,{\"$base64\":\"//4=\"},"
                        "{\"$base64\":\"aGk=\",\"$ext\":5}]");
    free(j);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_json_errors)
{
    void *mp = (void *)1;
    size_t len = 0;
    char *j = (char *)1;
    static const uint8_t truncated[] = {0x92, 0x01};              /* an array of 2 with 1 element */
    static const uint8_t huge[] = {0xdd, 0x7f, 0xff, 0xff, 0xff}; /* 2^31 elements, no bytes */
    static const uint8_t two[] = {0x01, 0x02};                    /* two values */

    ck_assert_int_eq(forq_json_to_msgpack("[1, 2", &mp, &len), FORQ_ERR_INVALID);
    ck_assert_msg(strstr(forq_errdetail(), "not JSON") && strstr(forq_errdetail(), "line 1"), "%s",
                  forq_errdetail());
    ck_assert_int_eq(forq_json_to_msgpack("{\"$base64\": \"***\"}", &mp, &len), FORQ_ERR_INVALID);
    ck_assert_msg(strstr(forq_errdetail(), "base64"), "%s", forq_errdetail());
    ck_assert_int_eq(forq_json_to_msgpack(NULL, &mp, &len), FORQ_ERR_INVALID);
    ck_assert_ptr_eq(mp, (void *)1); /* untouched on failure */
    ck_assert_int_eq(forq_msgpack_to_json(truncated, sizeof(truncated), &j), FORQ_ERR_INVALID);
    ck_assert_int_eq(forq_msgpack_to_json(huge, sizeof(huge), &j), FORQ_ERR_INVALID);
    ck_assert_int_eq(forq_msgpack_to_json(two, sizeof(two), &j), FORQ_ERR_INVALID);
    ck_assert_msg(strstr(forq_errdetail(), "not one msgpack value"), "%s", forq_errdetail());
    ck_assert_ptr_eq(j, (char *)1);
}
END_TEST

START_TEST(test_submit_json)
{
    forq_future_t *f;
    char *res;

    e2e_up(&d, &c, 2, NULL);
    ck_assert_int_eq(forq_submit_json(c, "count_primes", "[1, 300000]", NULL, &f), FORQ_OK);
    ck_assert_int_eq(forq_future_wait(f, T), FORQ_OK);
    ck_assert_int_eq(forq_future_result_json(f, &res), FORQ_OK);
    ck_assert_str_eq(res, "25997");
    free(res);
    forq_future_destroy(&f);

    /* bytes and maps go through the job and back as they were */
    ck_assert_int_eq(
        forq_submit_json(c, "echo", "[{\"$base64\":\"AAE=\"},{\"k\":[1.25]}]", NULL, &f), FORQ_OK);
    ck_assert_int_eq(forq_future_wait(f, T), FORQ_OK);
    ck_assert_int_eq(forq_future_result_json(f, &res), FORQ_OK);
    ck_assert_str_eq(res, "[{\"$base64\":\"AAE=\"},{\"k\":[1.25]}]");
    free(res);
    forq_future_destroy(&f);

    /* a task's error is the outcome, with its detail */
    ck_assert_int_eq(forq_submit_json(c, "count_primes", "[-1, 5]", NULL, &f), FORQ_OK);
    ck_assert_int_eq(forq_future_wait(f, T), FORQ_OK);
    res = NULL;
    ck_assert_int_eq(forq_future_result_json(f, &res), FORQ_ERR_TASK);
    ck_assert_ptr_null(res);
    ck_assert_msg(strstr(forq_errdetail(), "ValueError") && strstr(forq_errdetail(), "negative"),
                  "%s", forq_errdetail());
    forq_future_destroy(&f);

    /* not JSON: nothing is sent, the detail says where */
    f = NULL;
    ck_assert_int_eq(forq_submit_json(c, "echo", "[1,", NULL, &f), FORQ_ERR_INVALID);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(forq_errdetail(), "the args of echo: not JSON"), "%s", forq_errdetail());
    ck_assert_int_eq(stat_of(c, "submitted"), 3);
    e2e_down(&d, &c);
}
END_TEST

/* ---- forq_map_gen ---- */

typedef struct {
    size_t calls;   /* times gen was called */
    size_t stop_at; /* return -1 here (SIZE_MAX: never) */
    size_t end_at;  /* return 0 here (SIZE_MAX: never) */
    int bad;        /* 1: pack nothing at stop_at; 2: pack two values there */
} gen_t;

static int squares(void *ud, size_t i, struct msgpack_packer *pk)
{
    gen_t *g = ud;
    g->calls++;
    if (i == g->end_at)
        return 0;
    if (i == g->stop_at) {
        if (g->bad == 0)
            return -1;
        if (g->bad == 2) {
            msgpack_pack_int(pk, 1);
            msgpack_pack_int(pk, 2);
        }
        return 1;
    }
    return msgpack_pack_int64(pk, (int64_t)(i * i)) == 0 ? 1 : -1;
}

/* Map echo over gen's items; returns how many came back (each checked to be i*i, in order);
 * *ret_end gets what forq_map_next() said after the last. */
static size_t run_gen(size_t n, gen_t *g, size_t chunksize, size_t window, forq_err_t *ret_end,
                      size_t *ret_max_ahead)
{
    forq_map_opts_t o;
    forq_map_t *m;
    forq_map_item_t it;
    size_t got = 0;
    forq_err_t e;

    forq_map_opts_init(&o);
    o.chunksize = chunksize;
    o.window = window;
    ck_assert_int_eq(forq_map_gen(c, "echo", n, squares, g, &o, &m), FORQ_OK);
    *ret_max_ahead = 0;
    while ((e = forq_map_next(m, T, &it)) == FORQ_OK) {
        ck_assert_uint_eq(it.index, got);
        ck_assert_msg(it.state == FORQ_STATE_OK, "item %zu: %s", it.index, it.detail);
        char *j;
        char want[32];
        ck_assert_int_eq(forq_msgpack_to_json(it.data, it.len, &j), FORQ_OK);
        snprintf(want, sizeof(want), "[%zu]", got * got); /* echo gives [item] back */
        ck_assert_str_eq(j, want);
        free(j);
        got++;
        if (g->calls - got > *ret_max_ahead)
            *ret_max_ahead = g->calls - got;
    }
    *ret_end = e;
    forq_map_destroy(&m);
    return got;
}

START_TEST(test_map_gen)
{
    forq_err_t end;
    size_t ahead;

    e2e_up(&d, &c, 2, NULL);
    /* n items, asked for lazily: never more than window * chunksize ahead of the reader */
    gen_t g = {0, SIZE_MAX, SIZE_MAX, 0};
    ck_assert_uint_eq(run_gen(1000, &g, 7, 3, &end, &ahead), 1000);
    ck_assert_int_eq(end, FORQ_ERR_EXHAUSTED);
    ck_assert_uint_eq(g.calls, 1000); /* not called past n */
    ck_assert_msg(ahead <= 3 * 7, "gen ran %zu items ahead of the reader", ahead);

    /* n unknown: until gen says 0 */
    g = (gen_t){0, SIZE_MAX, 50, 0};
    ck_assert_uint_eq(run_gen(SIZE_MAX, &g, 8, 2, &end, &ahead), 50);
    ck_assert_int_eq(end, FORQ_ERR_EXHAUSTED);

    /* -1 stops the map after the items before it */
    g = (gen_t){0, 30, SIZE_MAX, 0};
    ck_assert_uint_eq(run_gen(100, &g, 8, 2, &end, &ahead), 30);
    ck_assert_int_eq(end, FORQ_ERR_INVALID);
    ck_assert_msg(strstr(forq_errdetail(), "stopped at item 30"), "%s", forq_errdetail());

    /* an item that is not one msgpack value: nothing packed, or two values */
    for (int bad = 1; bad <= 2; bad++) {
        g = (gen_t){0, 5, SIZE_MAX, bad};
        ck_assert_uint_eq(run_gen(100, &g, 4, 2, &end, &ahead), 5); /* the items before it */
        ck_assert_int_eq(end, FORQ_ERR_INVALID);
    }

    /* no gen */
    forq_map_t *m = NULL;
    ck_assert_int_eq(forq_map_gen(c, "echo", 3, NULL, NULL, NULL, &m), FORQ_ERR_INVALID);
    ck_assert_ptr_null(m);
    e2e_down(&d, &c);
}
END_TEST

/* ---- the task side ---- */

/* Inside a chunk, forq_task_job_id() is the chunk job's id: one per chunk, shared by its items,
 * and like any id libforq makes; a single job sees its own. */
static int indices(void *ud, size_t i, struct msgpack_packer *pk)
{
    (void)ud;
    return msgpack_pack_uint64(pk, i) == 0 ? 1 : -1;
}

START_TEST(test_job_id_in_chunk)
{
    forq_map_opts_t o;
    forq_map_t *m;
    forq_map_item_t it;
    char ids[12][FORQ_ID_MAX + 1];
    size_t n = 0;
    forq_future_t *f;
    char *res, want[FORQ_ID_MAX + 8];

    e2e_up(&d, &c, 2, NULL);
    forq_map_opts_init(&o);
    o.chunksize = 4;
    ck_assert_int_eq(forq_map_gen(c, "job_id", 12, indices, NULL, &o, &m), FORQ_OK);
    while (forq_map_next(m, T, &it) == FORQ_OK) {
        char *j;
        ck_assert_int_eq(it.state, FORQ_STATE_OK);
        ck_assert_int_eq(forq_msgpack_to_json(it.data, it.len, &j), FORQ_OK);
        ck_assert(strlen(j) > 2 && j[0] == '"');
        snprintf(ids[n++], sizeof(ids[0]), "%.*s", (int)strlen(j) - 2, j + 1);
        free(j);
    }
    forq_map_destroy(&m);
    ck_assert_uint_eq(n, 12);
    for (size_t i = 0; i < 12; i++) {
        ck_assert_str_eq(ids[i], ids[i - i % 4]); /* one id per chunk */
        if (i % 4 == 0 && i > 0)
            ck_assert_str_ne(ids[i], ids[i - 4]);   /* another for the next chunk */
        ck_assert_ptr_nonnull(strchr(ids[i], '-')); /* "<client prefix>-<n>" */
    }
    /* a single job: its own id */
    ck_assert_int_eq(forq_submit_json(c, "job_id", "[]", NULL, &f), FORQ_OK);
    ck_assert_int_eq(forq_future_wait(f, T), FORQ_OK);
    ck_assert_int_eq(forq_future_result_json(f, &res), FORQ_OK);
    snprintf(want, sizeof(want), "\"%s\"", forq_future_id(f));
    ck_assert_str_eq(res, want);
    free(res);
    forq_future_destroy(&f);
    e2e_down(&d, &c);
}
END_TEST

/* Run dict_typed(args) and return its [rc, what] as JSON (caller frees). */
static char *typed(const char *args)
{
    forq_future_t *f;
    char *res = NULL;

    ck_assert_int_eq(forq_submit_json(c, "dict_typed", args, NULL, &f), FORQ_OK);
    ck_assert_int_eq(forq_future_wait(f, T), FORQ_OK);
    ck_assert_msg(forq_future_result_json(f, &res) == FORQ_OK, "dict_typed %s: %s", args,
                  forq_errdetail());
    forq_future_destroy(&f);
    return res;
}

#define ASSERT_TYPED(args, want)                                                                   \
    do {                                                                                           \
        char *got_ = typed(args);                                                                  \
        ck_assert_msg(strcmp(got_, want) == 0, "dict_typed %s: got %s, want %s", args, got_,       \
                      want);                                                                       \
        free(got_);                                                                                \
    } while (0)

/* What a client reads under key, as JSON. */
static char *client_get(const char *key)
{
    void *v;
    size_t len;
    uint64_t ver;
    char *j;

    ck_assert_int_eq(forq_dict_get(c, "typed", key, T, &v, &len, &ver), FORQ_OK);
    ck_assert_int_eq(forq_msgpack_to_json(v, len, &j), FORQ_OK);
    free(v);
    return j;
}

START_TEST(test_task_dict_typed)
{
    char *j;
    void *mp;
    size_t len;

    e2e_up(&d, &c, 1, NULL);
    /* the task sets, the client reads the same typed values */
    ASSERT_TYPED("[\"typed\", \"set_int\", \"i\", -42]", "[0,1]");
    ASSERT_TYPED("[\"typed\", \"set_int\", \"i\", 7]", "[0,2]"); /* versions grow */
    ASSERT_TYPED("[\"typed\", \"set_double\", \"d\", 2.5]", "[0,3]");
    ASSERT_TYPED("[\"typed\", \"set_str\", \"s\", \"caf\xc3\xa9\"]", "[0,4]");
    ASSERT_TYPED("[\"typed\", \"set_bytes\", \"b\", {\"$base64\": \"AP8=\"}]", "[0,5]");
    ASSERT_TYPED("[\"typed\", \"set_bytes\", \"e\", {\"$base64\": \"\"}]", "[0,6]");
    j = client_get("i");
    ck_assert_str_eq(j, "7");
    free(j);
    j = client_get("d");
    ck_assert_str_eq(j, "2.5");
    free(j);
    j = client_get("s");
    ck_assert_str_eq(j, "\"caf\xc3\xa9\"");
    free(j);
    j = client_get("b");
    ck_assert_str_eq(j, "{\"$base64\":\"AP8=\"}");
    free(j);

    /* and reads back what it (or a client) stored */
    ASSERT_TYPED("[\"typed\", \"get_int\", \"i\"]", "[0,7]");
    ASSERT_TYPED("[\"typed\", \"get_double\", \"d\"]", "[0,2.5]");
    ASSERT_TYPED("[\"typed\", \"get_double\", \"i\"]", "[0,7.0]"); /* integers convert */
    ASSERT_TYPED("[\"typed\", \"get_str\", \"s\"]", "[0,\"caf\xc3\xa9\"]");
    ASSERT_TYPED("[\"typed\", \"get_str\", \"e\"]", "[0,\"\"]");
    ck_assert_int_eq(forq_json_to_msgpack("\"from the client\"", &mp, &len), FORQ_OK);
    ck_assert_int_eq(forq_dict_set(c, "typed", "c", mp, len, T, NULL), FORQ_OK);
    free(mp);
    ASSERT_TYPED("[\"typed\", \"get_str\", \"c\"]", "[0,\"from the client\"]");

    /* a missing key, and a value of another type, in words */
    ASSERT_TYPED("[\"typed\", \"get_int\", \"nope\"]", "[1,null]");
    ASSERT_TYPED("[\"typed\", \"get_int\", \"s\"]",
                 "[-1,\"dict 'typed' key 's' holds a string, not an integer\"]");
    ASSERT_TYPED("[\"typed\", \"get_double\", \"b\"]",
                 "[-1,\"dict 'typed' key 'b' holds bytes, not a number\"]");
    ASSERT_TYPED("[\"typed\", \"get_str\", \"i\"]",
                 "[-1,\"dict 'typed' key 'i' holds an integer, not a string or bytes\"]");
    /* a refusal names its reason */
    j = typed("[\"bad name\", \"set_int\", \"k\", 1]");
    ck_assert_msg(strncmp(j, "[-1,\"dict name must be", 22) == 0, "%s", j);
    free(j);
    e2e_down(&d, &c);
}
END_TEST

/* ---- a wait for a forqd that is not there ---- */

START_TEST(test_wait_says_forqd_is_down)
{
    char dir[256], ep[320];
    forq_client_opts_t o;
    forq_future_t *f;

    temp_dir(dir, sizeof(dir), "forq-api-down");
    snprintf(ep, sizeof(ep), "ipc://%s/forqd.sock", dir);
    forq_client_opts_init(&o);
    o.endpoint = ep;
    o.linger_ms = 0;
    ck_assert_int_eq(forq_client_new(&o, &c), FORQ_OK); /* no connect timeout: no check */
    ck_assert_int_eq(forq_submit_json(c, "count_primes", "[1, 300000]", NULL, &f), FORQ_OK);
    ck_assert_int_eq(forq_future_wait(f, test_ms(300)), FORQ_ERR_TIMEOUT);
    ck_assert_msg(strstr(forq_errdetail(), "no forqd at ") && strstr(forq_errdetail(), ep) &&
                      strstr(forq_errdetail(), "is forqd running"),
                  "%s", forq_errdetail());
    forq_future_destroy(&f);
    forq_client_destroy(&c);
    rmdir(dir);
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, test_ms(120));
    tcase_add_test(tc, test_json_round_trip);
    tcase_add_test(tc, test_msgpack_beyond_json);
    tcase_add_test(tc, test_json_errors);
    tcase_add_test(tc, test_submit_json);
    tcase_add_test(tc, test_map_gen);
    tcase_add_test(tc, test_job_id_in_chunk);
    tcase_add_test(tc, test_task_dict_typed);
    tcase_add_test(tc, test_wait_says_forqd_is_down);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(api_suite());
}
