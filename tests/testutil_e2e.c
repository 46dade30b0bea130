/* testutil_e2e.c - a real forqd for end-to-end tests, and jobs written as JSON. */
#define _GNU_SOURCE
#define FORQ_TEST_E2E
#include "testutil.h"

#include "json_mp.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t spawn_in(forqd_t *d, const char *const *args, bool fresh_dir);

static pid_t spawn(forqd_t *d, const char *const *args)
{
    return spawn_in(d, args, true);
}

static pid_t spawn_in(forqd_t *d, const char *const *args, bool fresh_dir)
{
    const char *bin = getenv("FORQD");
    const char *wrap = getenv("FORQ_TEST_WRAP");
    char *argv[64], *wcopy = NULL;
    int n = 0;
    pid_t pid;

    ck_assert_msg(bin != NULL, "FORQD is not set (run the tests through meson test)");
    if (fresh_dir) {
        temp_dir(d->dir, sizeof(d->dir), "forq-test");
    }
    snprintf(d->endpoint, sizeof(d->endpoint), "ipc://%s/forqd.sock", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/forqd.log", d->dir);
    if (wrap && *wrap) {
        wcopy = strdup(wrap);
        for (char *save = NULL, *t = strtok_r(wcopy, " ", &save); t && n < 40;
             t = strtok_r(NULL, " ", &save))
            argv[n++] = t;
    }
    argv[n++] = (char *)bin;
    argv[n++] = "--listen";
    argv[n++] = d->endpoint;
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        /* a test that fails without forking (valgrind runs) never stops its forqd: it must not
         * outlive the test and hold its output pipe open */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char rt[300];
        snprintf(rt, sizeof(rt), "%s", d->dir);
        setenv("XDG_RUNTIME_DIR", rt, 1); /* its private worker socket goes there too */
        if (fd >= 0)
            dup2(fd, 2);
        if (d->nofile) {
            struct rlimit lim = {d->nofile, d->nofile};
            setrlimit(RLIMIT_NOFILE, &lim);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    free(wcopy);
    return pid;
}

static void wait_ready(forqd_t *d);

void forqd_start(forqd_t *d, const char *const *args)
{
    d->pid = spawn(d, args);
    wait_ready(d);
}

static void wait_ready(forqd_t *d)
{
    forq_client_opts_t o;
    forq_client_t *c = NULL;
    int status;

    forq_client_opts_init(&o);
    o.endpoint = d->endpoint;
    ck_assert_int_eq(forq_client_new(&o, &c), FORQ_OK);
    for (int i = 0; i < test_ms(100); i++) {
        if (forq_client_ping(c, 100, NULL) == FORQ_OK) {
            forq_client_destroy(&c);
            return;
        }
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            break;
        }
    }
    forq_client_destroy(&c);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "cat %s >&2", d->log);
    if (system(cmd) < 0) {
        /* the log is only a help */
    }
    ck_abort_msg("forqd did not start");
}

int forqd_start_fail(forqd_t *d, const char *const *args)
{
    int status;

    d->pid = spawn(d, args);
    for (int i = 0; i < test_ms(1000); i++) {
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(10000);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    ck_abort_msg("forqd kept running though it should have failed");
    return -1;
}

bool forqd_log_has(const forqd_t *d, const char *text)
{
    FILE *f = fopen(d->log, "r");
    char line[4096];
    bool found = false;

    if (!f)
        return false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

static bool log_has_valgrind_report(const forqd_t *d)
{
    FILE *f = fopen(d->log, "r");
    char line[4096];
    bool found = false;
    int pid, n;

    if (!f)
        return false;
    while (!found && fgets(line, sizeof(line), f))
        found = sscanf(line, "==%d==%n", &pid, &n) == 1 && n > 4;
    fclose(f);
    return found;
}

int forqd_stop(forqd_t *d)
{
    int status = 0, rc;
    char cmd[700];

    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        for (int i = 0; i < test_ms(3000); i++) {
            if (waitpid(d->pid, &status, WNOHANG) == d->pid)
                break;
            usleep(10000);
        }
        if (waitpid(d->pid, &status, WNOHANG) == 0) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &status, 0);
            fprintf(stderr, "forqd did not stop after SIGTERM\n");
        }
    }
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    /* under valgrind, a report from any of forqd's processes (forkserver, workers) fails too */
    if (rc == 0 && getenv("FORQ_TEST_WRAP") && log_has_valgrind_report(d))
        rc = 99;
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "echo '--- forqd log:' >&2; cat %s >&2", d->log);
        if (system(cmd) < 0) {
            /* the log is only a help */
        }
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", d->dir);
    if (system(cmd) < 0) {
        /* a leftover temporary directory is harmless */
    }
    d->pid = 0;
    return rc;
}

forq_client_t *forqd_client(const forqd_t *d)
{
    forq_client_opts_t o;
    forq_client_t *c = NULL;

    forq_client_opts_init(&o);
    o.endpoint = d->endpoint;
    o.connect_timeout_ms = test_ms(5000);
    ck_assert_msg(forq_client_new(&o, &c) == FORQ_OK, "%s", forq_errdetail());
    return c;
}

forq_future_t *submit_json(forq_client_t *c, const char *task, const char *args_json,
                           const forq_submit_opts_t *opts)
{
    json_error_t jerr;
    json_t *j = json_loads(args_json, JSON_DECODE_ANY, &jerr);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    forq_future_t *f = NULL;
    char err[128];

    ck_assert_msg(j != NULL, "bad test JSON %s: %s", args_json, jerr.text);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(json_to_msgpack(j, &pk, err, sizeof(err)), 0);
    json_decref(j);
    ck_assert_msg(forq_submit(c, task, sb.data, sb.size, opts, &f) == FORQ_OK, "%s",
                  forq_errdetail());
    msgpack_sbuffer_destroy(&sb);
    return f;
}

forq_state_t wait_state(forq_future_t *f, int ms)
{
    ck_assert_msg(forq_future_wait(f, test_ms(ms)) == FORQ_OK, "job %s not done in %d ms",
                  forq_future_id(f), ms);
    return forq_future_state(f);
}

char *result_json(forq_future_t *f, int ms)
{
    const void *data;
    size_t len, off = 0;
    msgpack_zone zone;
    msgpack_object o;
    char *s;

    wait_state(f, ms);
    if (forq_future_result(f, &data, &len) != FORQ_OK)
        return NULL;
    msgpack_zone_init(&zone, 1024);
    ck_assert_int_eq(msgpack_unpack(data, len, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
    json_t *j = msgpack_to_json(&o);
    s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    msgpack_zone_destroy(&zone);
    return s;
}

long long stat_of(forq_client_t *c, const char *name)
{
    void *data;
    size_t len, off = 0;
    msgpack_zone zone;
    msgpack_object o;
    long long v = -1;

    ck_assert_int_eq(forq_client_stats(c, test_ms(5000), &data, &len), FORQ_OK);
    msgpack_zone_init(&zone, 4096);
    ck_assert_int_eq(msgpack_unpack(data, len, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(o.type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < o.via.map.size; i++) {
        msgpack_object_kv *kv = &o.via.map.ptr[i];
        if (kv->key.via.str.size == strlen(name) &&
            memcmp(kv->key.via.str.ptr, name, strlen(name)) == 0 &&
            kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            v = (long long)kv->val.via.u64;
    }
    msgpack_zone_destroy(&zone);
    free(data);
    ck_assert_msg(v >= 0, "no counter '%s' in stats", name);
    return v;
}

/* Arguments for forqd with the test plugin. */
static void plugin_args(const char **args, char *w, size_t wsize, int workers,
                        const char *const *extra)
{
    int n = 0;
    const char *plugin = getenv("FORQ_TEST_PLUGIN");

    ck_assert_msg(plugin != NULL, "FORQ_TEST_PLUGIN is not set");
    snprintf(w, wsize, "%d", workers);
    args[n++] = "--workers";
    args[n++] = w;
    args[n++] = "--tasks";
    args[n++] = plugin;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        args[n++] = extra[i];
    args[n] = NULL;
}

void e2e_up(forqd_t *d, forq_client_t **ret_client, int workers, const char *const *extra)
{
    const char *args[32];
    char w[16];

    plugin_args(args, w, sizeof(w), workers, extra);
    forqd_start(d, args);
    *ret_client = forqd_client(d);
}

void e2e_down(forqd_t *d, forq_client_t **client)
{
    forq_client_destroy(client);
    ck_assert_int_eq(forqd_stop(d), 0);
}

void e2e_kill(forqd_t *d)
{
    int status;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    d->pid = 0;
}

void e2e_restart(forqd_t *d, int workers, const char *const *extra)
{
    const char *args[32];
    char w[16];

    plugin_args(args, w, sizeof(w), workers, extra);
    d->pid = spawn_in(d, args, false);
    wait_ready(d);
}

void e2e_crash_restart(forqd_t *d, int workers, const char *const *extra)
{
    e2e_kill(d);
    e2e_restart(d, workers, extra);
}

forq_submit_opts_t submit_opts(void)
{
    forq_submit_opts_t o;
    forq_submit_opts_init(&o);
    return o;
}

void wait_running(forq_client_t *c, const char *id)
{
    forq_job_info_t info = {0};
    for (int i = 0; i < test_ms(500); i++) {
        ck_assert_int_eq(forq_client_status(c, id, test_ms(5000), &info), FORQ_OK);
        if (info.state == FORQ_STATE_RUNNING)
            return;
        usleep(10000);
    }
    ck_abort_msg("job %s never ran", id);
}
