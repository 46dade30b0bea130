/* check_submit_opts.c - the option strings given to forq_submit() and forq_map() are copied.
 *
 * libforq reads a job's options again long after the call that took them: a job with retries is
 * submitted again when a restarted forqd has never heard of it, and a map submits its chunks one
 * by one from forq_map_next(). These tests reuse or free the caller's strings right after the
 * call and check that what forqd finally does still follows the strings as they were at the
 * call (under ASan, reading a freed string is a use-after-free report). */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"

#include <stdio.h>

static forqd_t d;
static forq_client_t *c;

#define T 5000

/* Does dict `name` hold `key`? */
static bool has_key(const char *name, const char *key)
{
    bool has = false;
    ck_assert_int_eq(forq_dict_has(c, name, key, T, &has), FORQ_OK);
    return has;
}

/* A job with retries and a store option; forqd is killed and restarted while it runs, so the
 * client submits it again from the options it kept. `reuse` changes the caller's strings after
 * forq_submit() returned: overwrite them (freed at the end), or free them at once. */
static void submit_survives_restart(bool free_them)
{
    forq_submit_opts_t o = submit_opts();
    char *dict = strdup("results"), *key = strdup("answer");
    forq_future_t *f;

    e2e_up(&d, &c, 1, NULL);
    o.id = "store-retry";
    o.retries = 1;
    o.store_dict = dict;
    o.store_key = key;
    f = submit_json(c, "sleep", "[0.3]", &o);
    if (free_them) {
        free(dict);
        free(key);
        dict = key = NULL;
    } else {
        snprintf(dict, strlen("results") + 1, "%s", "others");
        snprintf(key, strlen("answer") + 1, "%s", "wrong");
    }
    wait_running(c, "store-retry");
    e2e_crash_restart(&d, 1, NULL);
    /* the client reconnects, forqd does not know the job: it is submitted again */
    ck_assert_int_eq(wait_state(f, 15000), FORQ_STATE_OK);
    ck_assert_msg(forq_future_code(f) == NULL, "the resubmitted job: %s: %s", forq_future_code(f),
                  forq_future_detail(f));
    ck_assert_uint_eq(forq_future_attempts(f), 1);
    forq_future_destroy(&f);
    ck_assert_msg(has_key("results", "answer"), "the result is not under results/answer");
    ck_assert(!has_key("others", "wrong"));
    free(dict);
    free(key);
    e2e_down(&d, &c);
}

START_TEST(test_submit_strings_overwritten)
{
    submit_survives_restart(false);
}
END_TEST

START_TEST(test_submit_strings_freed)
{
    submit_survives_restart(true);
}
END_TEST

/* A map submits its chunks from forq_map_next(), long after forq_map() returned. */
static void map_store(bool free_them)
{
    forq_map_opts_t mo;
    forq_map_t *m;
    forq_map_item_t it;
    char *dict = strdup("mapped"), *key = strdup("last");
    static const uint8_t one = 0x01, two = 0x02, three = 0x03;
    const void *items[] = {&one, &two, &three};
    const size_t lens[] = {1, 1, 1};
    size_t n = 0;

    e2e_up(&d, &c, 1, NULL);
    forq_map_opts_init(&mo);
    mo.chunksize = 1;
    mo.window = 1;
    mo.job.store_dict = dict;
    mo.job.store_key = key;
    ck_assert_int_eq(forq_map(c, "echo", items, lens, 3, &mo, &m), FORQ_OK);
    if (free_them) {
        free(dict);
        free(key);
        dict = key = NULL;
    } else {
        snprintf(dict, strlen("mapped") + 1, "%s", "other");
        snprintf(key, strlen("last") + 1, "%s", "bad");
    }
    while (forq_map_next(m, test_ms(10000), &it) == FORQ_OK) {
        ck_assert_msg(it.state == FORQ_STATE_OK, "item %zu: %s: %s", it.index,
                      forq_state_name(it.state), it.detail);
        ck_assert_uint_eq(it.index, n);
        n++;
    }
    ck_assert_uint_eq(n, 3);
    forq_map_destroy(&m);
    ck_assert_msg(has_key("mapped", "last"), "no chunk result under mapped/last");
    ck_assert(!has_key("other", "bad"));
    free(dict);
    free(key);
    e2e_down(&d, &c);
}

START_TEST(test_map_strings_overwritten)
{
    map_store(false);
}
END_TEST

START_TEST(test_map_strings_freed)
{
    map_store(true);
}
END_TEST

static Suite *submit_opts_suite(void)
{
    Suite *s = suite_create("submit_opts");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, test_ms(120));
    tcase_add_test(tc, test_map_strings_overwritten);
    tcase_add_test(tc, test_map_strings_freed);
    tcase_add_test(tc, test_submit_strings_overwritten);
    tcase_add_test(tc, test_submit_strings_freed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(submit_opts_suite());
}
