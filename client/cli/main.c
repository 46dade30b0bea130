/* main.c - the forq command: global options, the command table, the helpers every command
 * shares, and the two smallest commands (cancel, ping). Each command is a small function over
 * libforq in its own file (cli.h says which); help.c has every help text. */
#define _GNU_SOURCE
#include "cli.h"

#include "forq_config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void vusage(const char *cmd, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void vusage(const char *cmd, const char *fmt, va_list ap)
{
    fputs("forq: ", stderr);
    vfprintf(stderr, fmt, ap);
    if (cmd)
        fprintf(stderr, "; see forq help %s\n", cmd);
    else
        fputs("; see forq help\n", stderr);
}

int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vusage(NULL, fmt, ap);
    va_end(ap);
    return EXIT_USAGE;
}

int cmd_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vusage(cmd, fmt, ap);
    va_end(ap);
    return EXIT_USAGE;
}

int parse_seconds(const char *flag, const char *s, double *ret)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0) || v > 1e9) {
        fprintf(stderr, "forq: %s takes a number of seconds, not '%s'\n", flag, s);
        return -1;
    }
    *ret = v;
    return 0;
}

int parse_int(const char *flag, const char *s, long min, long max, long *ret)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < min || v > max) {
        fprintf(stderr, "forq: %s takes a whole number from %ld to %ld, not '%s'\n", flag, min, max,
                s);
        return -1;
    }
    *ret = v;
    return 0;
}

int ms_of(double s)
{
    if (s < 0)
        return -1;
    return s * 1000 >= (double)INT_MAX ? INT_MAX : (int)(s * 1000);
}

int connect_client(const globals_t *g, forq_client_t **ret)
{
    forq_client_opts_t o;
    forq_err_t e;
    sigset_t block, old;
    char pub[41] = "", sec[41] = "", srv[41] = "";
    int rc;

    forq_client_opts_init(&o);
    if ((rc = keys_apply(g, &o, pub, sec, srv)) != 0)
        return rc;
    o.endpoint = g->endpoint;
    o.connect_timeout_ms = ms_of(g->connect_timeout);
    if (o.connect_timeout_ms <= 0)
        o.connect_timeout_ms = 1;
    o.lost_after_ms = g->lost_after > 0 && ms_of(g->lost_after) == 0 ? 1 : ms_of(g->lost_after);
    /* the threads libforq and ZeroMQ start inherit this mask: Ctrl-C comes to this thread */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    e = forq_client_new(&o, ret);
    explicit_bzero(sec, sizeof(sec)); /* libforq copied it */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e == FORQ_OK)
        return 0;
    fprintf(stderr, "forq: %s\n", forq_errdetail());
    return e == FORQ_ERR_INVALID ? EXIT_USAGE : EXIT_CONNECT;
}

#define NOTICE_MS 2000 /* a wait this long for an unreachable forqd is worth a word */
#define SLICE_MS  100  /* how often a wait looks at forqd, the job's progress and Ctrl-C */

void note_unreachable(const globals_t *g, forq_client_t *c, bool *told)
{
    if (*told || forq_client_unreachable_ms(c) < NOTICE_MS || !term_stderr_is_tty())
        return;
    *told = true;
    if (g->lost_after > 0)
        term_say("waiting for forqd at %s to come back (the job is given up as lost after %g s "
                 "without it: --lost-after)",
                 forq_client_endpoint(c), g->lost_after);
    else
        term_say("waiting for forqd at %s to come back (Ctrl-C stops waiting)",
                 forq_client_endpoint(c));
}

/* The job's latest progress on the status line, when it changed. */
static void show_progress(forq_future_t *f, uint64_t *shown_done, uint64_t *shown_total)
{
    uint64_t done, total;
    char *text = NULL, bar[64];

    if (!term_stderr_is_tty() || !forq_future_progress(f, &done, &total, &text))
        return;
    if (done != *shown_done || total != *shown_total) {
        *shown_done = done;
        *shown_total = total;
        if (total) {
            term_bar(bar, sizeof(bar), 20, done, total);
            term_status("%s %llu/%llu %3.0f%%%s%s", bar, (unsigned long long)done,
                        (unsigned long long)total, done >= total ? 100.0 : 100.0 * done / total,
                        text && *text ? "  " : "", text ? text : "");
        } else {
            term_status("%llu done%s%s", (unsigned long long)done, text && *text ? "  " : "",
                        text ? text : "");
        }
    }
    free(text);
}

forq_err_t wait_future(const globals_t *g, forq_client_t *c, forq_future_t *f, int timeout_ms)
{
    struct timespec t0, now;
    uint64_t shown_done = UINT64_MAX, shown_total = UINT64_MAX;
    bool told = false;
    forq_err_t e;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int slice = SLICE_MS;
        if (timeout_ms >= 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            long left = timeout_ms -
                        ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
            if (left <= 0) {
                e = forq_future_wait(f, 0);
                break;
            }
            if (left < slice)
                slice = (int)left;
        }
        if ((e = forq_future_wait(f, slice)) == FORQ_OK || term_interrupted())
            break;
        show_progress(f, &shown_done, &shown_total);
        note_unreachable(g, c, &told);
    }
    term_forget(); /* what comes next (the result, a message) stands alone */
    return e == FORQ_OK ? FORQ_OK : FORQ_ERR_TIMEOUT;
}

void print_json(json_t *j, size_t flags)
{
    char *s = json_dumps(j, flags | JSON_ENCODE_ANY);
    if (s) {
        puts(s);
        free(s);
    }
}

void print_msgpack(const void *data, size_t len, size_t flags)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;

    msgpack_zone_init(&zone, 4096);
    if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS) {
        json_t *j = msgpack_to_json(&o);
        print_json(j, flags);
        json_decref(j);
    }
    msgpack_zone_destroy(&zone);
}

int exit_for(forq_state_t st)
{
    switch (st) {
    case FORQ_STATE_OK:
        return 0;
    case FORQ_STATE_ERROR:
        return EXIT_TASK_ERROR;
    case FORQ_STATE_TIMEOUT:
        return EXIT_JOB_TIMEOUT;
    case FORQ_STATE_CANCELLED:
        return EXIT_CANCELLED;
    case FORQ_STATE_CRASHED:
        return EXIT_CRASHED;
    case FORQ_STATE_REJECTED:
        return EXIT_REJECTED;
    default:
        return EXIT_LOST;
    }
}

const char *plural(unsigned long long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

void unknown_job_detail(forq_client_t *c, const char *id, char *buf, size_t size)
{
    forq_future_t *f = NULL;

    /* a fetch of a job forqd does not know is answered at once, in the words of forq wait */
    if (forq_client_fetch(c, id, &f) == FORQ_OK && forq_future_wait(f, 2000) == FORQ_OK &&
        forq_future_state(f) == FORQ_STATE_UNKNOWN && *forq_future_detail(f))
        snprintf(buf, size, "%s", forq_future_detail(f));
    else
        snprintf(buf, size,
                 "forqd has no job '%s': it was never submitted here, or finished longer ago "
                 "than forqd remembers (forqd --retain, --retain-seconds)",
                 id);
    forq_future_destroy(&f);
}

static int cmd_cancel(const globals_t *g, int argc, char **argv)
{
    static const char *const names[] = {"unknown", "dequeued", "killing", "finished"};
    const char *id = NULL;
    forq_client_t *c;
    forq_cancel_t out;
    args_t a;
    int r, rc;

    args_init(&a, argc, argv);
    while ((r = args_next(&a, NULL)) != ARGS_END) {
        if (r == ARGS_STOP)
            return a.rc;
        if (id)
            return cmd_usage_error("cancel", "%s", "cancel takes exactly one job ID");
        id = a.val;
    }
    if (!id)
        return cmd_usage_error("cancel", "%s", "cancel takes exactly one job ID");
    if ((rc = connect_client(g, &c)) != 0)
        return rc;
    forq_err_t e = forq_client_cancel(c, id, ms_of(g->connect_timeout), &out);
    if (e != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        forq_client_destroy(&c);
        return e == FORQ_ERR_FORBIDDEN ? EXIT_FORBIDDEN : EXIT_CONNECT;
    }
    json_t *j = json_pack("{s:s, s:s}", "id", id, "outcome", names[out]);
    if (out == FORQ_CANCEL_FINISHED) {
        forq_job_info_t info;
        if (forq_client_status(c, id, ms_of(g->connect_timeout), &info) == FORQ_OK &&
            info.state != FORQ_STATE_UNKNOWN) {
            json_object_set_new(j, "state", json_string(forq_state_name(info.state)));
            fprintf(stderr, "forq: job %s had already finished (%s): nothing to cancel\n", id,
                    forq_state_name(info.state));
        } else {
            fprintf(stderr, "forq: job %s had already finished: nothing to cancel\n", id);
        }
    } else if (out == FORQ_CANCEL_UNKNOWN) {
        char why[1100];
        unknown_job_detail(c, id, why, sizeof(why));
        fprintf(stderr, "forq: %s\n", why);
    }
    print_json(j, JSON_COMPACT);
    json_decref(j);
    forq_client_destroy(&c);
    return (out == FORQ_CANCEL_DEQUEUED || out == FORQ_CANCEL_KILLING) ? 0 : EXIT_NOT_FOUND;
}

static int cmd_ping(const globals_t *g, int argc, char **argv)
{
    forq_client_t *c;
    struct timespec t0, t1;
    char *version = NULL;
    args_t a;
    int r, rc;

    args_init(&a, argc, argv);
    while ((r = args_next(&a, NULL)) != ARGS_END) {
        if (r == ARGS_STOP)
            return a.rc;
        return cmd_usage_error("ping", "%s", "ping takes no arguments");
    }
    if ((rc = connect_client(g, &c)) != 0)
        return rc;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (forq_client_ping(c, ms_of(g->connect_timeout), &version) != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        rc = EXIT_CONNECT;
    } else {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("%s at %s: %.0f us\n", version, forq_client_endpoint(c),
               (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3);
        free(version);
    }
    forq_client_destroy(&c);
    return rc;
}

static const struct {
    const char *name;
    int (*run)(const globals_t *g, int argc, char **argv);
} commands[] = {
    {"submit", cmd_submit}, {"map", cmd_map},     {"wait", cmd_wait},     {"cancel", cmd_cancel},
    {"status", cmd_status}, {"tasks", cmd_tasks}, {"dict", cmd_dict},     {"ping", cmd_ping},
    {"jobs", cmd_jobs},     {"purge", cmd_purge}, {"keygen", cmd_keygen}, {"help", cmd_help},
    {"queue", cmd_queue},   {"lock", cmd_lock},   {"event", cmd_event},
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"connect-timeout", required_argument, NULL, 'c'},
        {"lost-after", required_argument, NULL, 'l'},
        {"key", required_argument, NULL, 'k'},
        {"server-key", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    globals_t g = {NULL, 5.0, FORQ_LOST_AFTER_DEF / 1000.0, NULL, NULL};
    int ch;

    while ((ch = getopt_long(argc, argv, "+:e:hV", opts, NULL)) != -1) {
        switch (ch) {
        case 'e':
            g.endpoint = optarg;
            break;
        case 'c':
            if (parse_seconds("--connect-timeout", optarg, &g.connect_timeout) < 0)
                return EXIT_USAGE;
            break;
        case 'l':
            if (parse_seconds("--lost-after", optarg, &g.lost_after) < 0)
                return EXIT_USAGE;
            break;
        case 'k':
            g.key_file = optarg;
            break;
        case 's':
            g.server_key = optarg;
            break;
        case 'h':
            return help_print(NULL);
        case 'V':
            printf("forq %s\n", FORQ_VERSION);
            return 0;
        case ':':
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s' (the options of a command come after it)",
                               argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return usage_error("%s", "a COMMAND is needed");
    const char *cmd = argv[optind];
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].run(&g, argc - optind, argv + optind);
    return usage_error("unknown command '%s'", cmd);
}
