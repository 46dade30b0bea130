/* admin.c - the operator's commands on the queue: `forq jobs` lists live jobs (an admin sees
 * every client's, anyone else their own), `forq purge` cancels queued ones (admin). */
#define _GNU_SOURCE
#include "cli.h"

#include "json_mp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "1.2 s", "3 min", "2.0 h" */
static void human_age(char *buf, size_t size, json_int_t ms)
{
    if (ms < 60000)
        snprintf(buf, size, "%.1f s", (double)ms / 1000);
    else if (ms < 3600000)
        snprintf(buf, size, "%lld min", (long long)(ms / 60000));
    else
        snprintf(buf, size, "%.1f h", (double)ms / 3600000);
}

static json_int_t num(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static void print_table(const json_t *list, bool more)
{
    const json_t *j;
    size_t i;

    printf("%-24s %-16s %-8s %-12s %4s %9s  %s\n", "ID", "TASK", "STATE", "OWNER", "PRIO", "AGE",
           "PROGRESS");
    json_array_foreach(list, i, j)
    {
        char age[32], prog[200] = "-";
        human_age(age, sizeof(age), num(j, "age_ms"));
        if (json_object_get(j, "done") && num(j, "total"))
            snprintf(prog, sizeof(prog), "%lld/%lld %s", (long long)num(j, "done"),
                     (long long)num(j, "total"), str(j, "text"));
        else if (json_object_get(j, "done") && num(j, "done"))
            snprintf(prog, sizeof(prog), "%lld %s", (long long)num(j, "done"), str(j, "text"));
        printf("%-24s %-16s %-8s %-12s %4lld %9s  %s\n", str(j, "id"), str(j, "task"),
               str(j, "status"), str(j, "owner"), (long long)num(j, "priority"), age, prog);
    }
    if (more)
        printf("(more jobs than listed: narrow with --state, --task or raise --limit)\n");
}

int cmd_jobs(const globals_t *g, int argc, char **argv)
{
    static const opt_t opts[] = {{"state", true, 's'},
                                 {"task", true, 't'},
                                 {"limit", true, 'l'},
                                 {"json", false, 'j'},
                                 {NULL, false, 0}};
    const char *state = NULL, *task = NULL;
    bool json = false, more = false;
    long limit = 0;
    forq_client_t *c;
    void *data;
    size_t len;
    args_t a;
    int r, rc;

    args_init(&a, argc, argv);
    while ((r = args_next(&a, opts)) != ARGS_END) {
        switch (r) {
        case ARGS_STOP:
            return a.rc;
        case 's':
            if (strcmp(a.val, "queued") != 0 && strcmp(a.val, "running") != 0)
                return cmd_usage_error("jobs", "--state takes queued or running, not '%s'", a.val);
            state = a.val;
            break;
        case 't':
            task = a.val;
            break;
        case 'l':
            if (parse_int("--limit", a.val, 1, 10000, &limit) < 0)
                return EXIT_USAGE;
            break;
        case 'j':
            json = true;
            break;
        default:
            return cmd_usage_error("jobs", "unexpected argument '%s'", a.val);
        }
    }
    if ((rc = connect_client(g, &c)) != 0)
        return rc;
    forq_err_t e = forq_client_jobs(c, state, task, (size_t)limit, ms_of(g->connect_timeout), &data,
                                    &len, &more);
    forq_client_destroy(&c);
    if (e != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        return e == FORQ_ERR_FORBIDDEN ? EXIT_FORBIDDEN : EXIT_CONNECT;
    }
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    json_t *list = NULL;
    msgpack_zone_init(&zone, 4096);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS)
        list = msgpack_to_json(&o);
    msgpack_zone_destroy(&zone);
    free(data);
    if (!json_is_array(list)) {
        json_decref(list);
        fprintf(stderr, "forq: forqd sent a job list that is not an array\n");
        return EXIT_PROTOCOL;
    }
    if (json)
        print_json(list, JSON_COMPACT);
    else
        print_table(list, more);
    json_decref(list);
    return 0;
}

int cmd_purge(const globals_t *g, int argc, char **argv)
{
    static const opt_t opts[] = {{"task", true, 't'}, {NULL, false, 0}};
    const char *task = NULL;
    forq_client_t *c;
    size_t n = 0;
    args_t a;
    int r, rc;

    args_init(&a, argc, argv);
    while ((r = args_next(&a, opts)) != ARGS_END) {
        if (r == ARGS_STOP)
            return a.rc;
        if (r == 't')
            task = a.val;
        else
            return cmd_usage_error("purge", "unexpected argument '%s'", a.val);
    }
    if ((rc = connect_client(g, &c)) != 0)
        return rc;
    forq_err_t e = forq_client_purge(c, task, ms_of(g->connect_timeout), &n);
    forq_client_destroy(&c);
    if (e != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        return e == FORQ_ERR_FORBIDDEN ? EXIT_FORBIDDEN : EXIT_CONNECT;
    }
    printf("{\"cancelled\":%zu}\n", n);
    fprintf(stderr, "forq: %zu queued %s cancelled%s%s\n", n, plural(n, "job", "jobs"),
            task ? " of task " : "", task ? task : "");
    return 0;
}
