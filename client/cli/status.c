/* status.c - `forq status`: one job's state, or forqd's stats map as JSON (--json) or as an
 * operator's overview (workers, queue, counters, rates, tasks); and `forq tasks`, the tasks
 * forqd offers, from the same stats map. */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static json_int_t jint(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static void human_size(char *buf, size_t size, json_int_t kib)
{
    if (kib >= 10240)
        snprintf(buf, size, "%.0f MiB", (double)kib / 1024);
    else if (kib >= 1024)
        snprintf(buf, size, "%.1f MiB", (double)kib / 1024);
    else
        snprintf(buf, size, "%lld KiB", (long long)kib);
}

/* The task of a running job, asked of forqd (the worker list names only the job), into buf. */
static void task_of(forq_client_t *c, int tmo, const char *id, char *buf, size_t size)
{
    forq_job_info_t info;

    if (forq_client_status(c, id, tmo, &info) == FORQ_OK && info.task[0])
        snprintf(buf, size, "%s", info.task);
    else
        snprintf(buf, size, "-"); /* finished meanwhile */
}

/* The worker nodes that joined this forqd (a head), when there are any. */
static void print_nodes(const json_t *s)
{
    const json_t *nodes = json_object_get(s, "nodes"), *n, *x;
    size_t i, k;

    if (!json_array_size(nodes))
        return;
    printf("nodes:     %zu joined, %lld slots\n", json_array_size(nodes),
           (long long)jint(s, "node_slots"));
    printf("  %-16s %-21s %5s %5s %9s %8s  %s\n", "NAME", "ADDRESS", "SLOTS", "BUSY", "JOBS DONE",
           "HEARD", "TASKS / TAGS");
    json_array_foreach(nodes, i, n)
    {
        char heard[32];
        snprintf(heard, sizeof(heard), "%lld ms", (long long)jint(n, "heartbeat_ms"));
        printf("  %-16s %-21s %5lld %5lld %9lld %8s  %zu task(s)",
               json_string_value(json_object_get(n, "name")),
               json_string_value(json_object_get(n, "address")), (long long)jint(n, "slots"),
               (long long)jint(n, "busy"), (long long)jint(n, "done"), heard,
               json_array_size(json_object_get(n, "tasks")));
        json_array_foreach(json_object_get(n, "tags"), k, x)
            printf("%s%s", k ? "," : "; tags ", json_string_value(x));
        if (json_is_true(json_object_get(n, "draining")))
            printf(" (leaving)");
        printf("\n");
    }
}

/* forqd's view for an operator: what `forq status` prints without an ID. */
static void print_overview(const json_t *s, forq_client_t *c, int tmo)
{
    json_int_t up = jint(s, "uptime_ms") / 1000;
    const json_t *wl = json_object_get(s, "worker_list"), *w, *ep;
    const json_t *prio = json_object_get(s, "queued_by_priority");
    size_t i;
    char rss[32], task[FORQ_ID_MAX + 1];

    printf("forqd %s, pid %lld, up %lldd %02lldh %02lldm %02llds\n",
           json_string_value(json_object_get(s, "version")), (long long)jint(s, "pid"),
           (long long)(up / 86400), (long long)(up / 3600 % 24), (long long)(up / 60 % 60),
           (long long)(up % 60));
    if (json_is_string(json_object_get(s, "identity")))
        printf("you:       %s\n", json_string_value(json_object_get(s, "identity")));
    printf("endpoints:");
    json_array_foreach(json_object_get(s, "endpoints"), i, ep) printf(" %s", json_string_value(ep));
    printf("\nworkers:   %lld configured, %lld live: %lld busy, %lld idle\n",
           (long long)jint(s, "workers"), (long long)jint(s, "workers_live"),
           (long long)jint(s, "workers_busy"), (long long)jint(s, "workers_idle"));
    printf("  %-8s %-9s %9s %6s %10s  %-16s %-12s %s\n", "PID", "STATE", "JOBS DONE", "AHEAD",
           "RSS", "TASK", "OWNER", "JOB");
    json_array_foreach(wl, i, w)
    {
        const json_t *job = json_object_get(w, "job");
        human_size(rss, sizeof(rss), jint(w, "rss_kib"));
        if (json_is_string(job))
            task_of(c, tmo, json_string_value(job), task, sizeof(task));
        const json_t *owner = json_object_get(w, "owner");
        printf("  %-8lld %-9s %9lld %6lld %10s  %-16s %-12s %s\n", (long long)jint(w, "pid"),
               json_string_value(json_object_get(w, "state")), (long long)jint(w, "jobs_done"),
               (long long)jint(w, "ahead"), rss, json_is_string(job) ? task : "-",
               json_is_string(owner) ? json_string_value(owner) : "-",
               json_is_string(job) ? json_string_value(job) : "-");
    }
    print_nodes(s);
    printf("queue:     %lld queued, %lld sent ahead, %lld running", (long long)jint(s, "queued"),
           (long long)jint(s, "ahead"), (long long)jint(s, "running"));
    if (jint(s, "queued") > 0) {
        const json_t *n;
        printf(" (by priority:");
        for (i = json_array_size(prio); i-- > 0;)
            if ((n = json_array_get(prio, i)) && json_integer_value(n) > 0)
                printf(" %zu: %lld", i, (long long)json_integer_value(n));
        printf(")");
    }
    printf("\njobs:      %lld submitted, %lld ok, %lld error, %lld cancelled, %lld timeout, "
           "%lld crashed, %lld rejected, %lld lost\n",
           (long long)jint(s, "submitted"), (long long)jint(s, "ok"), (long long)jint(s, "error"),
           (long long)jint(s, "cancelled"), (long long)jint(s, "timeout"),
           (long long)jint(s, "crashed"), (long long)jint(s, "rejected"),
           (long long)jint(s, "lost"));
    json_int_t crashes = jint(s, "worker_crashes"), started = jint(s, "workers_started");
    printf("rate:      %.1f jobs/s (about the last 10 s); %lld retried, %lld worker %s, "
           "%lld %s started\n",
           json_number_value(json_object_get(s, "jobs_per_s")), (long long)jint(s, "retried"),
           (long long)crashes, plural(crashes, "crash", "crashes"), (long long)started,
           plural(started, "worker", "workers"));
    json_int_t clients = jint(s, "clients"), backlog = jint(s, "backlog");
    printf("clients:   %lld with work in forqd, %lld %s held for slow readers\n",
           (long long)clients, (long long)backlog, plural(backlog, "reply", "replies"));
    const json_t *cl = json_object_get(s, "client_list"), *ce; /* to admins only */
    json_array_foreach(cl, i, ce)
        printf("  %-16s %lld %s, %lld held\n", json_string_value(json_object_get(ce, "identity")),
               (long long)jint(ce, "jobs"), plural(jint(ce, "jobs"), "job", "jobs"),
               (long long)jint(ce, "backlog"));
    json_int_t keys = jint(s, "dict_keys"), dicts = jint(s, "dicts"), bytes = jint(s, "dict_bytes");
    printf("dict:      %lld %s in %lld %s, %lld %s, %s\n", (long long)keys,
           plural(keys, "key", "keys"), (long long)dicts, plural(dicts, "dict", "dicts"),
           (long long)bytes, plural(bytes, "byte", "bytes"),
           json_string_value(json_object_get(s, "dict_durability")));
    printf("tasks:    ");
    json_array_foreach(json_object_get(s, "tasks"), i, ep) printf(" %s", json_string_value(ep));
    printf("\n");
}

/* forqd's stats map as JSON; 0, or the exit code after a message on stderr. */
static int stats_json(const globals_t *g, forq_client_t *c, json_t **ret)
{
    void *data;
    size_t len, off = 0;
    msgpack_zone zone;
    msgpack_object o;
    int rc = 0;

    if (forq_client_stats(c, ms_of(g->connect_timeout), &data, &len) != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        return EXIT_CONNECT;
    }
    msgpack_zone_init(&zone, 4096);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
        o.type == MSGPACK_OBJECT_MAP) {
        *ret = msgpack_to_json(&o);
    } else {
        fprintf(stderr, "forq: forqd sent stats that are not a msgpack map\n");
        rc = EXIT_PROTOCOL;
    }
    msgpack_zone_destroy(&zone);
    free(data);
    return rc;
}

/* "2026-11-30T23:10:04.123Z": the UTC time ms_ago milliseconds before now. */
void iso_time_ago(char *buf, size_t size, uint64_t ms_ago)
{
    struct timespec now;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - (int64_t)ms_ago;
    time_t t = (time_t)(ms / 1000);
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int)(ms % 1000));
}

static int job_status(const globals_t *g, forq_client_t *c, const char *id)
{
    forq_job_info_t info;

    forq_err_t e = forq_client_status(c, id, ms_of(g->connect_timeout), &info);
    if (e != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        return e == FORQ_ERR_FORBIDDEN ? EXIT_FORBIDDEN : EXIT_CONNECT;
    }
    json_t *j = json_pack("{s:s, s:s}", "id", id, "state", forq_state_name(info.state));
    if (info.task[0])
        json_object_set_new(j, "task", json_string(info.task));
    if (info.state != FORQ_STATE_UNKNOWN)
        json_object_set_new(j, "attempts", json_integer(info.attempts));
    if (info.pid)
        json_object_set_new(j, "pid", json_integer(info.pid));
    if (info.priority >= 0)
        json_object_set_new(j, "priority", json_integer(info.priority));
    if (info.owner[0])
        json_object_set_new(j, "owner", json_string(info.owner));
    if (info.state != FORQ_STATE_UNKNOWN) {
        char when[40];
        iso_time_ago(when, sizeof(when), info.age_ms);
        json_object_set_new(j, "queued_at", json_string(when));
    }
    if (info.state == FORQ_STATE_RUNNING) {
        char when[40];
        iso_time_ago(when, sizeof(when), info.run_ms);
        json_object_set_new(j, "started_at", json_string(when));
        json_object_set_new(j, "elapsed_s", json_real((double)info.run_ms / 1000.0));
        if (info.done || info.total || info.text[0]) {
            json_t *p = json_pack("{s:I}", "done", (json_int_t)info.done);
            if (info.total)
                json_object_set_new(p, "total", json_integer((json_int_t)info.total));
            if (info.text[0])
                json_object_set_new(p, "text", json_string(info.text));
            json_object_set_new(j, "progress", p);
        }
    } else if (info.state == FORQ_STATE_QUEUED) {
        json_object_set_new(j, "waiting_s", json_real((double)info.age_ms / 1000.0));
    }
    print_json(j, JSON_COMPACT);
    json_decref(j);
    if (info.state != FORQ_STATE_UNKNOWN)
        return 0;
    char why[1100];
    unknown_job_detail(c, id, why, sizeof(why));
    fprintf(stderr, "forq: %s\n", why);
    return EXIT_NOT_FOUND;
}

int cmd_status(const globals_t *g, int argc, char **argv)
{
    static const opt_t opts[] = {{"json", false, 'j'}, {NULL, false, 0}};
    forq_client_t *c;
    json_t *s = NULL;
    const char *id = NULL;
    bool as_json = false;
    args_t a;
    int r, rc;

    args_init(&a, argc, argv);
    while ((r = args_next(&a, opts)) != ARGS_END) {
        if (r == ARGS_STOP)
            return a.rc;
        if (r == 'j')
            as_json = true;
        else if (!id)
            id = a.val;
        else
            return cmd_usage_error("status", "%s", "status takes at most one job ID, and --json");
    }
    if ((rc = connect_client(g, &c)) != 0)
        return rc;
    if (id) {
        rc = job_status(g, c, id);
    } else if ((rc = stats_json(g, c, &s)) == 0) {
        if (as_json)
            print_json(s, JSON_INDENT(2));
        else
            print_overview(s, c, ms_of(g->connect_timeout));
        json_decref(s);
    }
    forq_client_destroy(&c);
    return rc;
}

int cmd_tasks(const globals_t *g, int argc, char **argv)
{
    static const opt_t opts[] = {{"json", false, 'j'}, {NULL, false, 0}};
    forq_client_t *c;
    json_t *s = NULL, *t;
    bool as_json = false;
    size_t i;
    args_t a;
    int r, rc;

    args_init(&a, argc, argv);
    while ((r = args_next(&a, opts)) != ARGS_END) {
        if (r == ARGS_STOP)
            return a.rc;
        if (r == 'j')
            as_json = true;
        else
            return cmd_usage_error("tasks", "%s", "tasks takes no arguments, only --json");
    }
    if ((rc = connect_client(g, &c)) != 0)
        return rc;
    if ((rc = stats_json(g, c, &s)) == 0) {
        json_t *tasks = json_object_get(s, "tasks"), *docs = json_object_get(s, "task_docs");
        json_t *list = json_array();
        int width = 0;
        json_array_foreach(tasks, i, t)
        {
            const char *name = json_string_value(t), *doc;
            doc = json_string_value(json_object_get(docs, name ? name : ""));
            json_array_append_new(
                list, json_pack("{s:s, s:s}", "name", name ? name : "", "doc", doc ? doc : ""));
            if (name && (int)strlen(name) > width)
                width = (int)strlen(name);
        }
        if (as_json) {
            print_json(list, JSON_COMPACT);
        } else {
            json_array_foreach(list, i, t)
            {
                const char *doc = json_string_value(json_object_get(t, "doc"));
                if (doc && *doc)
                    printf("%-*s  %s\n", width, json_string_value(json_object_get(t, "name")), doc);
                else
                    puts(json_string_value(json_object_get(t, "name")));
            }
        }
        json_decref(list);
        json_decref(s);
    }
    forq_client_destroy(&c);
    return rc;
}
