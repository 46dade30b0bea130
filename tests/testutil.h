/* testutil.h - helpers shared by the Check suites: the runner, a real forqd in a temporary
 * directory, and JSON-written jobs. */
#ifndef FORQ_TESTUTIL_H
#define FORQ_TESTUTIL_H

#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* Built with AddressSanitizer (gcc or clang)? */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* Run a suite (forked tests); prints Check's summary. Returns the process exit status. */
int run_suite(Suite *s);

/* Shorten soak-style loops? True under valgrind, or when FORQ_TEST_QUICK=1 (meson option
 * test_quick, for a short local run). CI runs the full counts. */
bool test_quick(void);

/* Make a fresh private directory /tmp/<name>.<random> into buf (fails the test otherwise);
 * returns buf. */
char *temp_dir(char *buf, size_t size, const char *name);

/* Make a fresh file /tmp/<name>.<random>, its path into buf; returns its descriptor. */
int temp_file(char *buf, size_t size, const char *name);

/* Run a shell command; its stdout (NUL-terminated, truncated to outlen) in out. Returns its
 * exit status, or -1 if it did not exit. */
int sh(const char *cmd, char *out, size_t outlen);

/* Scale a timeout for slow runs (valgrind). */
int test_ms(int ms);

#ifdef FORQ_TEST_E2E
#include "forq/forq.h"

typedef struct {
    pid_t pid;          /* forqd */
    char dir[256];      /* its private temporary directory */
    char endpoint[320]; /* ipc://<dir>/forqd.sock */
    char log[320];      /* its stderr */
    unsigned nofile;    /* set before starting: its soft and hard open-file limit (0: ours) */
} forqd_t;

/* Start $FORQD (under $FORQ_TEST_WRAP if set) with `args` (NULL-terminated, may be NULL) on an
 * ipc endpoint in a new temporary directory, and wait until it answers a ping. Fails the test
 * if it does not. */
void forqd_start(forqd_t *d, const char *const *args);

/* Start forqd expecting it to fail: returns its exit status; the log is in d->log. */
int forqd_start_fail(forqd_t *d, const char *const *args);

/* SIGTERM forqd and wait for it (30 s, more under valgrind). Returns its exit status, or 128 +
 * the signal that killed it. Prints its log when the status is not 0. Removes the directory. */
int forqd_stop(forqd_t *d);

/* Does forqd's log contain `text`? */
bool forqd_log_has(const forqd_t *d, const char *text);

/* A client of d (fails the test if it cannot connect). */
forq_client_t *forqd_client(const forqd_t *d);

/* Submit `task` with args written as JSON; opts may be NULL. Fails the test on a local error. */
forq_future_t *submit_json(forq_client_t *c, const char *task, const char *args_json,
                           const forq_submit_opts_t *opts);

/* Wait (up to ms) and return the future's result as compact JSON (caller frees), or NULL when it
 * did not end ok. */
char *result_json(forq_future_t *f, int ms);

/* Wait for f (fails the test after ms) and return its final state. */
forq_state_t wait_state(forq_future_t *f, int ms);

/* Assert that future f ends ok with a result whose JSON is `expect`. */
#define ASSERT_RESULT(f, expect)                                                                   \
    do {                                                                                           \
        char *got_ = result_json(f, 30000);                                                        \
        ck_assert_msg(got_ &&strcmp(got_, expect) == 0, "job %s: got %s (%s: %s), want %s",        \
                      forq_future_id(f), got_ ? got_ : "no result",                                \
                      forq_state_name(forq_future_state(f)), forq_future_detail(f), expect);       \
        free(got_);                                                                                \
    } while (0)

/* A counter of forqd's stats map. */
long long stat_of(forq_client_t *c, const char *name);

/* Default submit options. */
forq_submit_opts_t submit_opts(void);

/* Wait (up to 5 s, scaled) until job `id` runs; fails the test otherwise. */
void wait_running(forq_client_t *c, const char *id);

/* Start forqd with the test plugin ($FORQ_TEST_PLUGIN), `workers` workers and extra args
 * (NULL-terminated, may be NULL), and connect *ret_client to it. */
void e2e_up(forqd_t *d, forq_client_t **ret_client, int workers, const char *const *extra);

/* Destroy the client and stop forqd, asserting a clean exit. */
void e2e_down(forqd_t *d, forq_client_t **client);

/* Kill forqd with SIGKILL (its forkserver and workers die with it). */
void e2e_kill(forqd_t *d);

/* Start a new forqd on the same endpoint, with the same arguments as e2e_up() was given. */
void e2e_restart(forqd_t *d, int workers, const char *const *extra);

/* e2e_kill, then e2e_restart. */
void e2e_crash_restart(forqd_t *d, int workers, const char *const *extra);
#endif

#endif
