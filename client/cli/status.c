/* status.c - `forq status`: one job's state, or forqd's stats map as JSON (--json) or as an
 * operator's overview (workers, queue, counters, rates). */
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

/* forqd's view for an operator: what `forq status` prints without an ID. */
static void print_overview(const json_t *s)
{
    json_int_t up = jint(s, "uptime_ms") / 1000;
    const json_t *wl = json_object_get(s, "worker_list"), *w, *ep;
    const json_t *prio = json_object_get(s, "queued_by_priority");
    size_t i;
    char rss[32];

    printf("forqd %s, pid %lld, up %lldd %02lldh %02lldm %02llds\n",
           json_string_value(json_object_get(s, "version")), (long long)jint(s, "pid"),
           (long long)(up / 86400), (long long)(up / 3600 % 24), (long long)(up / 60 % 60),
           (long long)(up % 60));
    printf("endpoints:");
    json_array_foreach(json_object_get(s, "endpoints"), i, ep) printf(" %s", json_string_value(ep));
    printf("\nworkers:   %lld configured, %lld live: %lld busy, %lld idle\n",
           (long long)jint(s, "workers"), (long long)jint(s, "workers_live"),
           (long long)jint(s, "workers_busy"), (long long)jint(s, "workers_idle"));
    printf("  %-8s %-9s %9s %6s %10s  %s\n", "PID", "STATE", "JOBS DONE", "AHEAD", "RSS", "JOB");
    json_array_foreach(wl, i, w)
    {
        const json_t *job = json_object_get(w, "job");
        human_size(rss, sizeof(rss), jint(w, "rss_kib"));
        printf("  %-8lld %-9s %9lld %6lld %10s  %s\n", (long long)jint(w, "pid"),
               json_string_value(json_object_get(w, "state")), (long long)jint(w, "jobs_done"),
               (long long)jint(w, "ahead"), rss,
               json_is_string(job) ? json_string_value(job) : "-");
    }
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
    printf("rate:      %.1f jobs/s (about the last 10 s); %lld retried, %lld worker crashes, "
           "%lld workers started\n",
           json_number_value(json_object_get(s, "jobs_per_s")), (long long)jint(s, "retried"),
           (long long)jint(s, "worker_crashes"), (long long)jint(s, "workers_started"));
    printf("clients:   %lld with work in forqd, %lld replies held for slow readers\n",
           (long long)jint(s, "clients"), (long long)jint(s, "backlog"));
    printf("dict:      %lld keys in %lld dicts, %lld bytes, %s\n", (long long)jint(s, "dict_keys"),
           (long long)jint(s, "dicts"), (long long)jint(s, "dict_bytes"),
           json_string_value(json_object_get(s, "dict_durability")));
}

int cmd_status(const globals_t *g, int argc, char **argv)
{
    forq_client_t *c;
    int rc, tmo = (int)(g->connect_timeout * 1000);
    bool as_json = false;
    const char *id = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = true;
        else if (!id && argv[i][0] != '-')
            id = argv[i];
        else
            return usage_error("%s", "status takes at most one job ID, and --json");
    }
    if ((rc = connect_client(g, &c)) != 0)
        return rc;
    if (id) {
        forq_job_info_t info;
        if (forq_client_status(c, id, tmo, &info) != FORQ_OK) {
            fprintf(stderr, "forq: %s\n", forq_errdetail());
            rc = EXIT_CONNECT;
        } else {
            json_t *j = json_pack("{s:s, s:s}", "id", id, "state", forq_state_name(info.state));
            if (info.task[0])
                json_object_set_new(j, "task", json_string(info.task));
            if (info.state != FORQ_STATE_UNKNOWN)
                json_object_set_new(j, "attempts", json_integer(info.attempts));
            if (info.pid)
                json_object_set_new(j, "pid", json_integer(info.pid));
            if (info.priority >= 0)
                json_object_set_new(j, "priority", json_integer(info.priority));
            print_json(j, JSON_COMPACT);
            json_decref(j);
            rc = info.state == FORQ_STATE_UNKNOWN ? EXIT_NOT_FOUND : 0;
        }
    } else {
        void *data;
        size_t len, off = 0;
        msgpack_zone zone;
        msgpack_object o;
        if (forq_client_stats(c, tmo, &data, &len) != FORQ_OK) {
            fprintf(stderr, "forq: %s\n", forq_errdetail());
            rc = EXIT_CONNECT;
        } else {
            msgpack_zone_init(&zone, 4096);
            if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS) {
                json_t *j = msgpack_to_json(&o);
                if (as_json)
                    print_json(j, JSON_INDENT(2));
                else
                    print_overview(j);
                json_decref(j);
            } else {
                fprintf(stderr, "forq: forqd sent stats that are not msgpack\n");
                rc = EXIT_PROTOCOL;
            }
            msgpack_zone_destroy(&zone);
            free(data);
        }
    }
    forq_client_destroy(&c);
    return rc;
}
