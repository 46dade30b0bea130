/* cli.c - the forq command: submit jobs, cancel them, ask about them, JSON in and out.
 * Each command is a small function over libforq; exit codes are documented in usage[]. */
#define _GNU_SOURCE
#include "forq/forq.h"
#include "forq_config.h"
#include "json_mp.h"
#include "wire.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    EXIT_TASK_ERROR = 1,
    EXIT_USAGE = 2,
    EXIT_JOB_TIMEOUT = 3,
    EXIT_CANCELLED = 4,
    EXIT_CRASHED = 5,
    EXIT_REJECTED = 6,
    EXIT_LOST = 7,
    EXIT_CONNECT = 8,
    EXIT_PROTOCOL = 9,
    EXIT_WAIT_TIMEOUT = 10,
    EXIT_NOT_FOUND = 11,
    EXIT_CONFLICT = 12,
    EXIT_FULL = 13,
};

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

typedef struct {
    const char *endpoint;  /* -e */
    double connect_timeout; /* seconds */
} globals_t;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("forq: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("; see forq --help\n", stderr);
    return EXIT_USAGE;
}

static int parse_seconds(const char *flag, const char *s, double *ret)
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

static int parse_int(const char *flag, const char *s, long min, long max, long *ret)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < min || v > max) {
        fprintf(stderr, "forq: %s takes a whole number from %ld to %ld, not '%s'\n", flag, min,
                max, s);
        return -1;
    }
    *ret = v;
    return 0;
}

static int connect_client(const globals_t *g, forq_client_t **ret)
{
    forq_client_opts_t o;
    forq_err_t e;

    forq_client_opts_init(&o);
    o.endpoint = g->endpoint;
    o.connect_timeout_ms = (int)(g->connect_timeout * 1000);
    if (o.connect_timeout_ms <= 0)
        o.connect_timeout_ms = 1;
    e = forq_client_new(&o, ret);
    if (e == FORQ_OK)
        return 0;
    fprintf(stderr, "forq: %s\n", forq_errdetail());
    return e == FORQ_ERR_INVALID ? EXIT_USAGE : EXIT_CONNECT;
}

static void print_json(json_t *j, size_t flags)
{
    char *s = json_dumps(j, flags | JSON_ENCODE_ANY);
    if (s) {
        puts(s);
        free(s);
    }
}

static void print_msgpack(const void *data, size_t len, size_t flags)
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

static int exit_for(forq_state_t st)
{
    switch (st) {
    case FORQ_STATE_OK: return 0;
    case FORQ_STATE_ERROR: return EXIT_TASK_ERROR;
    case FORQ_STATE_TIMEOUT: return EXIT_JOB_TIMEOUT;
    case FORQ_STATE_CANCELLED: return EXIT_CANCELLED;
    case FORQ_STATE_CRASHED: return EXIT_CRASHED;
    case FORQ_STATE_REJECTED: return EXIT_REJECTED;
    default: return EXIT_LOST;
    }
}

/* Report how a done future ended: the result on stdout, or one line on stderr. */
static int report(forq_future_t *f)
{
    forq_state_t st = forq_future_state(f);
    const void *data;
    size_t len;

    if (forq_future_result(f, &data, &len) == FORQ_OK) {
        print_msgpack(data, len, JSON_COMPACT);
        return 0;
    }
    if (st == FORQ_STATE_ERROR)
        fprintf(stderr, "forq: job %s failed: %s: %s\n", forq_future_id(f),
                forq_future_error_type(f) ? forq_future_error_type(f) : "Error",
                forq_future_detail(f));
    else if (st == FORQ_STATE_REJECTED)
        fprintf(stderr, "forq: job %s rejected (%s): %s\n", forq_future_id(f),
                forq_future_code(f) ? forq_future_code(f) : "rejected", forq_future_detail(f));
    else
        fprintf(stderr, "forq: job %s %s: %s\n", forq_future_id(f), forq_state_name(st),
                forq_future_detail(f));
    return exit_for(st);
}

static int cmd_submit(const globals_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},   {"deadline", required_argument, NULL, 'd'},
        {"priority", required_argument, NULL, 'p'},  {"retries", required_argument, NULL, 'r'},
        {"id", required_argument, NULL, 'i'},        {"no-wait", no_argument, NULL, 'n'},
        {"wait-timeout", required_argument, NULL, 'w'}, {"store", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    forq_submit_opts_t so;
    char store[WIRE_ID_MAX + 1 + 1024 + 1];
    forq_client_t *c = NULL;
    forq_future_t *f = NULL;
    json_t *args;
    json_error_t jerr;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char err[256];
    double wait_s = -1;
    bool no_wait = false;
    long v;
    int ch, rc;

    forq_submit_opts_init(&so);
    optind = 0; /* 0: full re-initialisation, so that options may follow operands */
    while ((ch = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (ch) {
        case 't': if (parse_seconds("--timeout", optarg, &so.timeout) < 0) return EXIT_USAGE; break;
        case 'd': if (parse_seconds("--deadline", optarg, &so.deadline) < 0) return EXIT_USAGE; break;
        case 'w': if (parse_seconds("--wait-timeout", optarg, &wait_s) < 0) return EXIT_USAGE; break;
        case 'p':
            if (parse_int("--priority", optarg, 0, 9, &v) < 0)
                return EXIT_USAGE;
            so.priority = (int)v;
            break;
        case 'r':
            if (parse_int("--retries", optarg, 0, 100, &v) < 0)
                return EXIT_USAGE;
            so.retries = (unsigned)v;
            break;
        case 'i': so.id = optarg; break;
        case 's': {
            char *slash = strchr(optarg, '/');
            if (!slash || slash == optarg || !slash[1] || strlen(optarg) >= sizeof(store))
                return usage_error("--store takes DICT/KEY, not '%s'", optarg);
            snprintf(store, sizeof(store), "%s", optarg);
            store[slash - optarg] = '\0';
            so.store_dict = store;
            so.store_key = store + (slash - optarg) + 1;
            break;
        }
        case 'n': no_wait = true; break;
        case ':': return usage_error("%s needs a value", argv[optind - 1]);
        default: return usage_error("submit has no option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return usage_error("%s", "submit needs a TASK");
    if (argc - optind > 2)
        return usage_error("unexpected argument '%s' (quote ARGS_JSON as one argument)",
                           argv[optind + 2]);
    if (optind + 1 < argc) {
        args = json_loads(argv[optind + 1], JSON_DECODE_ANY, &jerr);
        if (!args) {
            fprintf(stderr, "forq: ARGS_JSON is not JSON (%s); quote strings, e.g. '[\"text\"]'\n",
                    jerr.text);
            return EXIT_USAGE;
        }
    } else {
        args = json_array();
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rc = json_to_msgpack(args, &pk, err, sizeof(err));
    json_decref(args);
    if (rc < 0) {
        fprintf(stderr, "forq: ARGS_JSON: %s\n", err);
        msgpack_sbuffer_destroy(&sb);
        return EXIT_USAGE;
    }
    if ((rc = connect_client(g, &c)) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    if (forq_submit(c, argv[optind], sb.data, sb.size, &so, &f) != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        rc = EXIT_USAGE;
    } else if (no_wait) {
        forq_job_info_t info;
        /* one round trip: forqd has the job (or its rejection) once this answers */
        if (forq_client_status(c, forq_future_id(f), (int)(g->connect_timeout * 1000), &info) !=
            FORQ_OK) {
            fprintf(stderr, "forq: %s\n", forq_errdetail());
            rc = EXIT_CONNECT;
        } else if (forq_future_done(f) && forq_future_state(f) != FORQ_STATE_OK) {
            rc = report(f);
        } else {
            puts(forq_future_id(f));
            rc = 0;
        }
    } else if (forq_future_wait(f, wait_s < 0 ? -1 : (int)(wait_s * 1000)) != FORQ_OK) {
        fprintf(stderr, "forq: job %s still pending after %g s; it goes on ('forq status %s')\n",
                forq_future_id(f), wait_s, forq_future_id(f));
        rc = EXIT_WAIT_TIMEOUT;
    } else {
        rc = report(f);
    }
    msgpack_sbuffer_destroy(&sb);
    forq_future_destroy(&f);
    forq_client_destroy(&c);
    return rc;
}

/* ---- map ---- */

typedef struct {
    FILE *in;              /* the input */
    char *line;            /* getline's buffer */
    size_t cap;
    size_t lineno;         /* lines read */
    msgpack_sbuffer item;  /* the last item, packed */
    bool bad;              /* a line was not JSON */
} feed_t;

static int feed_line(void *ud, const void **ret_item, size_t *ret_len)
{
    feed_t *fd = ud;
    json_error_t jerr;
    msgpack_packer pk;
    char err[256];
    ssize_t n;

    while ((n = getline(&fd->line, &fd->cap, fd->in)) >= 0) {
        fd->lineno++;
        if (strspn(fd->line, " \t\r\n") == (size_t)n)
            continue; /* blank lines are not items */
        json_t *j = json_loads(fd->line, JSON_DECODE_ANY, &jerr);
        msgpack_sbuffer_clear(&fd->item);
        msgpack_packer_init(&pk, &fd->item, msgpack_sbuffer_write);
        if (!j || json_to_msgpack(j, &pk, err, sizeof(err)) < 0) {
            fprintf(stderr, "forq: input line %zu is not a JSON value (%s); stopping the map\n",
                    fd->lineno, j ? err : jerr.text);
            json_decref(j);
            fd->bad = true;
            return -1;
        }
        json_decref(j);
        *ret_item = fd->item.data;
        *ret_len = fd->item.size;
        return 1;
    }
    return 0;
}

static size_t count_items(const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, n = 0;
    ssize_t len;
    if (!f)
        return 0;
    while ((len = getline(&line, &cap, f)) >= 0)
        n += strspn(line, " \t\r\n") != (size_t)len;
    free(line);
    fclose(f);
    return n;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A progress bar on stderr: done/total (when known), rate, ETA. */
static void draw_progress(size_t done, size_t total, size_t failed, double started)
{
    double el = mono_s() - started, rate = el > 0 ? (double)done / el : 0;
    char bar[32];
    if (total) {
        size_t fill = done * 30 / total;
        memset(bar, '=', fill);
        memset(bar + fill, ' ', 30 - fill);
        bar[30] = '\0';
        double eta = rate > 0 ? (double)(total - done) / rate : 0;
        fprintf(stderr, "\r[%s] %zu/%zu  %.0f/s  ETA %d:%02d  %zu failed ", bar, done, total, rate,
                (int)eta / 60, (int)eta % 60, failed);
    } else {
        fprintf(stderr, "\r%zu items  %.0f/s  %zu failed ", done, rate, failed);
    }
}

static int cmd_map(const globals_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"input", required_argument, NULL, 'i'},    {"chunksize", required_argument, NULL, 'c'},
        {"window", required_argument, NULL, 'w'},   {"unordered", no_argument, NULL, 'u'},
        {"timeout", required_argument, NULL, 't'},  {"priority", required_argument, NULL, 'p'},
        {"retries", required_argument, NULL, 'r'},  {NULL, 0, NULL, 0},
    };
    forq_map_opts_t mo;
    feed_t fd = {0};
    forq_client_t *c = NULL;
    forq_map_t *m = NULL;
    forq_map_item_t it;
    const char *input = NULL;
    size_t total = 0, done = 0, shown = 0;
    double started = mono_s(), last_draw = 0;
    bool tty = isatty(STDERR_FILENO);
    long v;
    int ch, rc = 0;
    forq_err_t e;

    forq_map_opts_init(&mo);
    optind = 0;
    while ((ch = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (ch) {
        case 'i': input = optarg; break;
        case 'c':
            if (parse_int("--chunksize", optarg, 1, 1000000, &v) < 0)
                return EXIT_USAGE;
            mo.chunksize = (size_t)v;
            break;
        case 'w':
            if (parse_int("--window", optarg, 1, 100000, &v) < 0)
                return EXIT_USAGE;
            mo.window = (size_t)v;
            break;
        case 'u': mo.unordered = true; break;
        case 't': if (parse_seconds("--timeout", optarg, &mo.job.timeout) < 0) return EXIT_USAGE; break;
        case 'p':
            if (parse_int("--priority", optarg, 0, 9, &v) < 0)
                return EXIT_USAGE;
            mo.job.priority = (int)v;
            break;
        case 'r':
            if (parse_int("--retries", optarg, 0, 100, &v) < 0)
                return EXIT_USAGE;
            mo.job.retries = (unsigned)v;
            break;
        case ':': return usage_error("%s needs a value", argv[optind - 1]);
        default: return usage_error("map has no option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return usage_error("%s", "map takes exactly one TASK (items come from stdin or --input)");
    mo.star = true; /* each line is a call's args, as for submit */
    fd.in = stdin;
    if (input) {
        if (!(fd.in = fopen(input, "r"))) {
            fprintf(stderr, "forq: cannot read %s: %s\n", input, strerror(errno));
            return EXIT_USAGE;
        }
        total = count_items(input);
    }
    msgpack_sbuffer_init(&fd.item);
    if ((rc = connect_client(g, &c)) != 0)
        goto out;
    if (forq_imap(c, argv[optind], feed_line, &fd, &mo, &m) != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        rc = EXIT_USAGE;
        goto out;
    }
    while ((e = forq_map_next(m, -1, &it)) == FORQ_OK) {
        json_t *out;
        if (it.state == FORQ_STATE_OK) {
            msgpack_zone zone;
            msgpack_object o;
            size_t off = 0;
            msgpack_zone_init(&zone, 1024);
            msgpack_unpack(it.data, it.len, &off, &zone, &o);
            out = msgpack_to_json(&o);
            msgpack_zone_destroy(&zone);
        } else {
            out = json_pack("{s:{s:I, s:s, s:s, s:s}}", "$error", "index", (json_int_t)it.index,
                            "state", forq_state_name(it.state), "type",
                            it.error_type ? it.error_type : forq_state_name(it.state), "message",
                            it.detail);
            if (shown++ < 10)
                fprintf(stderr, "%sforq: item %zu %s: %s%s%s\n",
                        tty ? "\r\033[K" : "", it.index,
                        forq_state_name(it.state), it.error_type ? it.error_type : "",
                        it.error_type ? ": " : "", it.detail);
        }
        if (mo.unordered) {
            json_t *pair = json_pack("[I, o]", (json_int_t)it.index, out);
            print_json(pair, JSON_COMPACT);
            json_decref(pair);
        } else {
            print_json(out, JSON_COMPACT);
            json_decref(out);
        }
        done++;
        if (tty && mono_s() - last_draw > 0.1) {
            fflush(stdout);
            draw_progress(done, total, forq_map_failed(m), started);
            last_draw = mono_s();
        }
    }
    if (tty)
        fprintf(stderr, "\r\033[K");
    if (e != FORQ_ERR_EXHAUSTED && !fd.bad)
        fprintf(stderr, "forq: %s\n", forq_errdetail());
    if (forq_map_failed(m))
        fprintf(stderr, "forq: %zu of %zu items failed%s\n", forq_map_failed(m), done,
                shown > 10 ? " (the first 10 are listed above)" : "");
    else if (tty)
        fprintf(stderr, "forq: %zu items in %.1f s\n", done, mono_s() - started);
    rc = fd.bad || e != FORQ_ERR_EXHAUSTED ? EXIT_USAGE : forq_map_failed(m) ? 1 : 0;
out:
    forq_map_destroy(&m);
    forq_client_destroy(&c);
    msgpack_sbuffer_destroy(&fd.item);
    free(fd.line);
    if (input && fd.in)
        fclose(fd.in);
    return rc;
}

static int cmd_wait(const globals_t *g, int argc, char **argv)
{
    static const struct option opts[] = {{"timeout", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    forq_client_t *c = NULL;
    forq_future_t *f = NULL;
    double wait_s = -1;
    int ch, rc;

    optind = 0;
    while ((ch = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (ch == 't') {
            if (parse_seconds("--timeout", optarg, &wait_s) < 0)
                return EXIT_USAGE;
        } else if (ch == ':') {
            return usage_error("%s needs a value", argv[optind - 1]);
        } else {
            return usage_error("wait has no option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return usage_error("%s", "wait takes exactly one job ID");
    if ((rc = connect_client(g, &c)) != 0)
        return rc;
    if (forq_client_fetch(c, argv[optind], &f) != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        rc = EXIT_USAGE;
    } else if (forq_future_wait(f, wait_s < 0 ? -1 : (int)(wait_s * 1000)) != FORQ_OK) {
        fprintf(stderr, "forq: job %s still pending after %g s; it goes on\n", argv[optind],
                wait_s);
        rc = EXIT_WAIT_TIMEOUT;
    } else if (forq_future_state(f) == FORQ_STATE_UNKNOWN) {
        fprintf(stderr, "forq: %s\n", forq_future_detail(f));
        rc = EXIT_NOT_FOUND;
    } else {
        rc = report(f);
    }
    forq_future_destroy(&f);
    forq_client_destroy(&c);
    return rc;
}

/* ---- dict ---- */

/* A JSON argument as msgpack in sb; usage error on bad JSON. */
static int json_arg(const char *text, msgpack_sbuffer *sb)
{
    json_error_t jerr;
    msgpack_packer pk;
    char err[256];
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);

    if (!j) {
        fprintf(stderr, "forq: VALUE_JSON is not JSON (%s); quote strings, e.g. '\"text\"'\n",
                jerr.text);
        return -1;
    }
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int r = json_to_msgpack(j, &pk, err, sizeof(err));
    json_decref(j);
    if (r < 0)
        fprintf(stderr, "forq: VALUE_JSON: %s\n", err);
    return r;
}

static int dict_exit(forq_err_t e)
{
    fprintf(stderr, "forq: %s\n", forq_errdetail());
    switch (e) {
    case FORQ_ERR_NOT_FOUND: return EXIT_NOT_FOUND;
    case FORQ_ERR_CONFLICT: return EXIT_CONFLICT;
    case FORQ_ERR_FULL: return EXIT_FULL;
    case FORQ_ERR_INVALID: return EXIT_USAGE;
    case FORQ_ERR_TIMEOUT: return EXIT_WAIT_TIMEOUT;
    default: return EXIT_PROTOCOL;
    }
}

/* Print every page of a dict: keys (a JSON array), items (a JSON object), or dump (lines). */
static int dict_list(forq_client_t *c, const char *op, const char *name, int tmo)
{
    bool items = strcmp(op, "keys") != 0;
    json_t *all = strcmp(op, "keys") == 0 ? json_array() : json_object();
    char *after = NULL;
    forq_err_t e = FORQ_OK;

    do {
        void *data;
        size_t len, off = 0;
        char *next = NULL;
        msgpack_zone zone;
        msgpack_object o;

        e = forq_dict_page(c, name, items, after, 0, tmo, &data, &len, &next);
        free(after);
        after = next;
        if (e != FORQ_OK)
            break;
        msgpack_zone_init(&zone, 4096);
        if (msgpack_unpack(data, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
            o.type == MSGPACK_OBJECT_ARRAY) {
            for (uint32_t i = 0; i < o.via.array.size; i++) {
                msgpack_object *it = &o.via.array.ptr[i];
                if (!items) {
                    json_array_append_new(all, msgpack_to_json(it));
                    continue;
                }
                msgpack_object *t = it->via.array.ptr; /* [key, version, value] */
                json_t *k = msgpack_to_json(&t[0]);
                if (strcmp(op, "dump") == 0) {
                    json_t *line = json_pack("{s:o, s:o, s:o}", "key", k, "version",
                                             msgpack_to_json(&t[1]), "value",
                                             msgpack_to_json(&t[2]));
                    print_json(line, JSON_COMPACT);
                    json_decref(line);
                } else {
                    json_object_set_new(all, json_string_value(k), msgpack_to_json(&t[2]));
                    json_decref(k);
                }
            }
        }
        msgpack_zone_destroy(&zone);
        free(data);
    } while (after);
    free(after);
    if (e == FORQ_OK && strcmp(op, "dump") != 0)
        print_json(all, JSON_COMPACT);
    json_decref(all);
    return e == FORQ_OK ? 0 : dict_exit(e);
}

static int cmd_dict(const globals_t *g, int argc, char **argv)
{
    static const struct option opts[] = {{"version", required_argument, NULL, 'v'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    static const struct {
        const char *op;
        int min, max; /* operands after NAME */
    } ops[] = {{"get", 1, 1},  {"set", 2, 2},        {"del", 1, 1},  {"has", 1, 1},
               {"pop", 1, 1},  {"setdefault", 2, 2}, {"incr", 1, 2}, {"cas", 3, 3},
               {"wait", 1, 1}, {"len", 0, 0},        {"clear", 0, 0}, {"update", 1, 1},
               {"keys", 0, 0}, {"items", 0, 0},      {"dump", 0, 0}};
    forq_client_t *c = NULL;
    msgpack_sbuffer sb;
    uint64_t seen = FORQ_DICT_NEXT_CHANGE, ver = 0;
    double wait_s = -1;
    int ch, rc = 0, tmo = (int)(g->connect_timeout * 1000), found = -1;
    forq_err_t e = FORQ_OK;
    void *val = NULL;
    size_t vlen = 0;
    char *end;

    optind = 0;
    while ((ch = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (ch == 'v') {
            seen = strtoull(optarg, &end, 10);
            if (end == optarg || *end)
                return usage_error("--version takes a version number, not '%s'", optarg);
        } else if (ch == 't') {
            if (parse_seconds("--timeout", optarg, &wait_s) < 0)
                return EXIT_USAGE;
        } else if (ch == ':') {
            return usage_error("%s needs a value", argv[optind - 1]);
        } else {
            return usage_error("dict has no option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind < 2)
        return usage_error("%s", "dict needs an OP and a NAME");
    const char *op = argv[optind], *name = argv[optind + 1];
    char **rest = argv + optind + 2;
    int nrest = argc - optind - 2;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].op, op) == 0)
            found = (int)i;
    if (found < 0)
        return usage_error("unknown dict op '%s'", op);
    if (nrest < ops[found].min || nrest > ops[found].max)
        return usage_error("dict %s takes other arguments; see forq --help", op);
    msgpack_sbuffer_init(&sb);
    /* the JSON operand: set/setdefault VALUE, cas VALUE, update MAP */
    const char *json = strcmp(op, "cas") == 0 ? rest[2]
                       : (strcmp(op, "set") == 0 || strcmp(op, "setdefault") == 0) ? rest[1]
                       : strcmp(op, "update") == 0 ? rest[0]
                                                   : NULL;
    if (json && json_arg(json, &sb) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return EXIT_USAGE;
    }
    if ((rc = connect_client(g, &c)) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    if (strcmp(op, "get") == 0 || strcmp(op, "pop") == 0) {
        e = op[0] == 'g' ? forq_dict_get(c, name, rest[0], tmo, &val, &vlen, NULL)
                         : forq_dict_pop(c, name, rest[0], tmo, &val, &vlen);
    } else if (strcmp(op, "set") == 0) {
        if ((e = forq_dict_set(c, name, rest[0], sb.data, sb.size, tmo, &ver)) == FORQ_OK)
            printf("%llu\n", (unsigned long long)ver);
    } else if (strcmp(op, "del") == 0) {
        e = forq_dict_del(c, name, rest[0], tmo);
    } else if (strcmp(op, "has") == 0) {
        bool has;
        if ((e = forq_dict_has(c, name, rest[0], tmo, &has)) == FORQ_OK)
            puts(has ? "true" : "false");
    } else if (strcmp(op, "setdefault") == 0) {
        e = forq_dict_setdefault(c, name, rest[0], sb.data, sb.size, tmo, &val, &vlen);
    } else if (strcmp(op, "incr") == 0) {
        long long delta = 1;
        int64_t now;
        if (nrest == 2) {
            delta = strtoll(rest[1], &end, 10);
            if (end == rest[1] || *end) {
                rc = usage_error("incr's DELTA must be an integer, not '%s'", rest[1]);
                goto out;
            }
        }
        if ((e = forq_dict_incr(c, name, rest[0], delta, tmo, &now)) == FORQ_OK)
            printf("%lld\n", (long long)now);
    } else if (strcmp(op, "cas") == 0) {
        uint64_t expect = strtoull(rest[1], &end, 10);
        if (end == rest[1] || *end) {
            rc = usage_error("cas's VERSION must be a number, not '%s'", rest[1]);
            goto out;
        }
        e = forq_dict_cas(c, name, rest[0], expect, sb.data, sb.size, tmo, &ver);
        if (e == FORQ_OK)
            printf("%llu\n", (unsigned long long)ver);
    } else if (strcmp(op, "wait") == 0) {
        e = forq_dict_wait(c, name, rest[0], seen, wait_s < 0 ? -1 : (int)(wait_s * 1000), &val,
                           &vlen, &ver);
    } else if (strcmp(op, "len") == 0 || strcmp(op, "clear") == 0) {
        size_t n;
        e = op[0] == 'l' ? forq_dict_len(c, name, tmo, &n) : forq_dict_clear(c, name, tmo, &n);
        if (e == FORQ_OK)
            printf("%zu\n", n);
    } else if (strcmp(op, "update") == 0) {
        e = forq_dict_update(c, name, sb.data, sb.size, tmo);
    } else {
        rc = dict_list(c, op, name, tmo);
        goto out;
    }
    if (e == FORQ_OK && val)
        print_msgpack(val, vlen, JSON_COMPACT);
    rc = e == FORQ_OK ? 0 : dict_exit(e);
out:
    free(val);
    msgpack_sbuffer_destroy(&sb);
    forq_client_destroy(&c);
    return rc;
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
    json_array_foreach(json_object_get(s, "endpoints"), i, ep)
        printf(" %s", json_string_value(ep));
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
               (long long)jint(w, "ahead"), rss, json_is_string(job) ? json_string_value(job) : "-");
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

static int cmd_status(const globals_t *g, int argc, char **argv)
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
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    globals_t g = {NULL, 5.0};
    int ch;

    while ((ch = getopt_long(argc, argv, "+:e:hV", opts, NULL)) != -1) {
        switch (ch) {
        case 'e': g.endpoint = optarg; break;
        case 'c':
            if (parse_seconds("--connect-timeout", optarg, &g.connect_timeout) < 0)
                return EXIT_USAGE;
            break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': printf("forq %s\n", FORQ_VERSION); return 0;
        case ':': return usage_error("%s needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
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
