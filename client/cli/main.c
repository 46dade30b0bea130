/* main.c - the forq command: global options, the command table, the helpers every command
 * shares, and the two smallest commands (cancel, ping). Each command is a small function over
 * libforq in its own file (cli.h says which); exit codes are documented in usage[]. */
#define _GNU_SOURCE
#include "cli.h"

#include "forq_config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "Usage: forq [-e ENDPOINT] COMMAND [ARGS]\n"
    "Submit jobs to forqd and ask about them. Values are JSON on the command line and stdout.\n"
    "\n"
    "Commands:\n"
    "  submit TASK [ARGS_JSON] [OPTIONS]  run TASK and print its result as JSON; ARGS_JSON is\n"
    "                                     a JSON array of positional arguments or one value\n"
    "                                     (default [])\n"
    "      --timeout SECONDS       kill the job if it runs longer (answer: timeout)\n"
    "      --deadline SECONDS      give up if no worker started it in time\n"
    "      --priority N            0..9, larger runs first (default 5)\n"
    "      --retries N             run again if its worker crashes (default 0)\n"
    "      --id ID                 choose the job id (default: a unique one)\n"
    "      --store DICT/KEY        also store the result in the dict service\n"
    "      --no-wait               print the job id once forqd has it, do not wait\n"
    "      --wait-timeout SECONDS  stop waiting after SECONDS (the job goes on)\n"
    "  map TASK [OPTIONS]          run TASK on every line of input (one JSON args value per\n"
    "                              line, as for submit) and print one JSON result per line,\n"
    "                              in input order; a failed item prints\n"
    "                              {\"$error\": {\"index\", \"state\", \"type\", \"message\"}}\n"
    "      --input FILE            read FILE instead of stdin\n"
    "      --chunksize N           items per job (default 64)\n"
    "      --window N              jobs in flight (default 8)\n"
    "      --unordered             print [index, result] lines as they finish\n"
    "      --timeout SECONDS       run timeout of each job (a chunk of items)\n"
    "      --priority N, --retries N  as for submit\n"
    "  wait ID [--timeout S]       wait for a job submitted elsewhere (--no-wait) and print\n"
    "                              its result\n"
    "  cancel ID                   cancel a queued or running job\n"
    "  dict OP NAME [KEY] [VALUE_JSON]  the shared dicts:\n"
    "      get NAME KEY, set NAME KEY VALUE, del NAME KEY, has NAME KEY, pop NAME KEY,\n"
    "      setdefault NAME KEY VALUE, incr NAME KEY [DELTA], cas NAME KEY VERSION VALUE,\n"
    "      wait NAME KEY [--version V] [--timeout S], len NAME, clear NAME,\n"
    "      update NAME {\"k\": V, ...}, keys NAME, items NAME, dump NAME (JSON lines\n"
    "      of key, version, value)\n"
    "  status [ID] [--json]        one job's state; without ID forqd's view: version, uptime,\n"
    "                              endpoints, workers (pid, state, job, jobs done, RSS),\n"
    "                              queue per priority, counters, jobs/s (--json: all of it\n"
    "                              as JSON, for scripts)\n"
    "  ping                        check that forqd answers\n"
    "\n"
    "Options:\n"
    "  -e, --endpoint EP           forqd's endpoint (default: $FORQ_ENDPOINT, else\n"
    "                              ipc://$XDG_RUNTIME_DIR/forq/forqd.sock)\n"
    "      --connect-timeout S     how long to wait for forqd to answer (default 5)\n"
    "      --lost-after S          give a job up as lost when forqd stays unreachable this\n"
    "                              long while forq waits for it (default 60; 0: never)\n"
    "  -h, --help                  print this help\n"
    "  -V, --version               print the version\n"
    "\n"
    "Bytes are shown and given as {\"$base64\": \"...\"}.\n"
    "\n"
    "Exit status:\n"
    "   0 ok                        6 the job was rejected\n"
    "   1 the task raised an error  7 the job was lost\n"
    "   2 usage error               8 cannot reach forqd\n"
    "   3 the job timed out         9 protocol or system error\n"
    "   4 the job was cancelled    10 --wait-timeout expired (the job goes on)\n"
    "   5 the job's worker crashed 11 no such job or key / nothing to cancel\n"
    "  12 dict cas: version conflict 13 the dict service is full\n"
    "forq map exits 1 when any item failed, and prints a summary of failures on stderr.\n";

int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("forq: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("; see forq --help\n", stderr);
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

/* Seconds as the int milliseconds libforq takes, at most INT_MAX. */
static int ms_of(double s)
{
    return s * 1000 >= (double)INT_MAX ? INT_MAX : (int)(s * 1000);
}

int connect_client(const globals_t *g, forq_client_t **ret)
{
    forq_client_opts_t o;
    forq_err_t e;

    forq_client_opts_init(&o);
    o.endpoint = g->endpoint;
    o.connect_timeout_ms = ms_of(g->connect_timeout);
    if (o.connect_timeout_ms <= 0)
        o.connect_timeout_ms = 1;
    o.lost_after_ms = g->lost_after > 0 && ms_of(g->lost_after) == 0 ? 1 : ms_of(g->lost_after);
    e = forq_client_new(&o, ret);
    if (e == FORQ_OK)
        return 0;
    fprintf(stderr, "forq: %s\n", forq_errdetail());
    return e == FORQ_ERR_INVALID ? EXIT_USAGE : EXIT_CONNECT;
}

#define NOTICE_MS 2000 /* a wait this long for an unreachable forqd is worth a word */
#define SLICE_MS  250  /* how often a wait looks whether forqd is reachable */

void note_unreachable(const globals_t *g, forq_client_t *c, bool *told)
{
    if (*told || forq_client_unreachable_ms(c) < NOTICE_MS || !isatty(STDERR_FILENO))
        return;
    *told = true;
    if (g->lost_after > 0)
        fprintf(stderr,
                "forq: waiting for forqd at %s to come back (the job is given up as lost after "
                "%g s without it: --lost-after)\n",
                forq_client_endpoint(c), g->lost_after);
    else
        fprintf(stderr, "forq: waiting for forqd at %s to come back (Ctrl-C stops waiting)\n",
                forq_client_endpoint(c));
}

forq_err_t wait_future(const globals_t *g, forq_client_t *c, forq_future_t *f, int timeout_ms)
{
    struct timespec t0, now;
    bool told = false;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int slice = SLICE_MS;
        if (timeout_ms >= 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            long left = timeout_ms -
                        ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
            if (left <= 0)
                return forq_future_wait(f, 0);
            if (left < slice)
                slice = (int)left;
        }
        if (forq_future_wait(f, slice) == FORQ_OK)
            return FORQ_OK;
        note_unreachable(g, c, &told);
    }
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

static int cmd_cancel(const globals_t *g, int argc, char **argv)
{
    static const char *const names[] = {"unknown", "dequeued", "killing", "finished"};
    forq_client_t *c;
    forq_cancel_t out;
    int rc;

    if (argc != 2)
        return usage_error("%s", "cancel takes exactly one job ID");
    if ((rc = connect_client(g, &c)) != 0)
        return rc;
    if (forq_client_cancel(c, argv[1], (int)(g->connect_timeout * 1000), &out) != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        forq_client_destroy(&c);
        return EXIT_CONNECT;
    }
    json_t *j = json_pack("{s:s, s:s}", "id", argv[1], "outcome", names[out]);
    print_json(j, JSON_COMPACT);
    json_decref(j);
    forq_client_destroy(&c);
    return (out == FORQ_CANCEL_DEQUEUED || out == FORQ_CANCEL_KILLING) ? 0 : EXIT_NOT_FOUND;
}

static int cmd_ping(const globals_t *g, int argc, char **argv)
{
    forq_client_t *c;
    struct timespec a, b;
    char *version = NULL;
    int rc;

    (void)argv;
    if (argc != 1)
        return usage_error("%s", "ping takes no arguments");
    if ((rc = connect_client(g, &c)) != 0)
        return rc;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (forq_client_ping(c, (int)(g->connect_timeout * 1000), &version) != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        rc = EXIT_CONNECT;
    } else {
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%s at %s: %.0f us\n", version, forq_client_endpoint(c),
               (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3);
        free(version);
    }
    forq_client_destroy(&c);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"connect-timeout", required_argument, NULL, 'c'},
        {"lost-after", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    globals_t g = {NULL, 5.0, FORQ_LOST_AFTER_DEF / 1000.0};
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
        case 'h':
            fputs(usage, stdout);
            return 0;
        case 'V':
            printf("forq %s\n", FORQ_VERSION);
            return 0;
        case ':':
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return usage_error("%s", "a COMMAND is needed");
    const char *cmd = argv[optind];
    argc -= optind;
    argv += optind;
    if (strcmp(cmd, "submit") == 0)
        return cmd_submit(&g, argc, argv);
    if (strcmp(cmd, "cancel") == 0)
        return cmd_cancel(&g, argc, argv);
    if (strcmp(cmd, "map") == 0)
        return cmd_map(&g, argc, argv);
    if (strcmp(cmd, "wait") == 0)
        return cmd_wait(&g, argc, argv);
    if (strcmp(cmd, "dict") == 0)
        return cmd_dict(&g, argc, argv);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(&g, argc, argv);
    if (strcmp(cmd, "ping") == 0)
        return cmd_ping(&g, argc, argv);
    return usage_error("unknown command '%s'", cmd);
}
