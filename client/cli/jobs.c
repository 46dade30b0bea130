/* jobs.c - the commands about jobs: submit (one job, waiting for its result unless --no-wait),
 * map (every line of the input through forq_imap, with a progress line on a terminal) and wait
 * (the result of a job submitted elsewhere). */
#define _GNU_SOURCE
#include "cli.h"

#include "wire.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

int cmd_submit(const globals_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"deadline", required_argument, NULL, 'd'},
        {"priority", required_argument, NULL, 'p'},
        {"retries", required_argument, NULL, 'r'},
        {"id", required_argument, NULL, 'i'},
        {"no-wait", no_argument, NULL, 'n'},
        {"wait-timeout", required_argument, NULL, 'w'},
        {"store", required_argument, NULL, 's'},
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
        case 't':
            if (parse_seconds("--timeout", optarg, &so.timeout) < 0)
                return EXIT_USAGE;
            break;
        case 'd':
            if (parse_seconds("--deadline", optarg, &so.deadline) < 0)
                return EXIT_USAGE;
            break;
        case 'w':
            if (parse_seconds("--wait-timeout", optarg, &wait_s) < 0)
                return EXIT_USAGE;
            break;
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
        case 'i':
            so.id = optarg;
            break;
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
        case 'n':
            no_wait = true;
            break;
        case ':':
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            return usage_error("submit has no option '%s'", argv[optind - 1]);
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
    } else if (wait_future(g, c, f, wait_s < 0 ? -1 : (int)(wait_s * 1000)) != FORQ_OK) {
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
    FILE *in;   /* the input */
    char *line; /* getline's buffer */
    size_t cap;
    size_t lineno;        /* lines read */
    msgpack_sbuffer item; /* the last item, packed */
    bool bad;             /* a line was not JSON */
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

int cmd_map(const globals_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"input", required_argument, NULL, 'i'},   {"chunksize", required_argument, NULL, 'c'},
        {"window", required_argument, NULL, 'w'},  {"unordered", no_argument, NULL, 'u'},
        {"timeout", required_argument, NULL, 't'}, {"priority", required_argument, NULL, 'p'},
        {"retries", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0},
    };
    forq_map_opts_t mo;
    feed_t fd = {0};
    forq_client_t *c = NULL;
    forq_map_t *m = NULL;
    forq_map_item_t it;
    const char *input = NULL;
    size_t total = 0, done = 0, shown = 0;
    double started = mono_s(), last_draw = 0;
    bool tty = isatty(STDERR_FILENO), told = false;
    long v;
    int ch, rc = 0;
    forq_err_t e;

    forq_map_opts_init(&mo);
    optind = 0;
    while ((ch = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (ch) {
        case 'i':
            input = optarg;
            break;
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
        case 'u':
            mo.unordered = true;
            break;
        case 't':
            if (parse_seconds("--timeout", optarg, &mo.job.timeout) < 0)
                return EXIT_USAGE;
            break;
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
        case ':':
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            return usage_error("map has no option '%s'", argv[optind - 1]);
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
    for (;;) {
        /* in slices, to tell a user at a terminal when the wait is for forqd */
        while ((e = forq_map_next(m, 250, &it)) == FORQ_ERR_TIMEOUT)
            note_unreachable(g, c, &told);
        if (e != FORQ_OK)
            break;
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
                fprintf(stderr, "%sforq: item %zu %s: %s%s%s\n", tty ? "\r\033[K" : "", it.index,
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

int cmd_wait(const globals_t *g, int argc, char **argv)
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
    } else if (wait_future(g, c, f, wait_s < 0 ? -1 : (int)(wait_s * 1000)) != FORQ_OK) {
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
