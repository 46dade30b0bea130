/* map.c - `forq map`: every line of the input through forq_imap, one output line per input line.
 *
 * Output line N answers input line N. A line that cannot be an item - blank (unless
 * --skip-blank), or not JSON - never reaches forqd: the feed notes it as a "bad line" with its
 * output position and goes on to the next line, and the printer puts its $error line in its
 * place. The map's own indexes count only the items fed, so a position is the item's index plus
 * the bad lines before it (pos_of).
 *
 * The map stops early in two cases, and then cancels its jobs, prints what was finished (in
 * input order up to the first item that was not) and says how far it got: Ctrl-C or SIGTERM
 * (exit 130), and a rejection by forqd, which would hit every chunk the same way - an unknown
 * task, forqd shutting down, a full queue (one message, exit 6).
 *
 * On a terminal a progress bar is the status line (term.c): erased before each result line
 * that goes to the terminal and drawn again after. */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    size_t pos;  /* output position (from 0) */
    size_t line; /* input line number (from 1) */
    char *why;   /* the message; NULL once printed */
} bad_t;

typedef struct {
    FILE *in;   /* the input */
    char *line; /* getline's buffer */
    size_t cap;
    size_t lineno;        /* lines read */
    size_t positions;     /* output positions handed out: items fed and bad lines */
    bool skip_blank;      /* --skip-blank */
    int read_errno;       /* reading the input failed */
    msgpack_sbuffer item; /* the last item, packed */
    bad_t *bad;           /* every bad line, by position */
    size_t nbad, cap_bad;
    size_t bad_printed; /* bad[0 .. bad_printed) are printed (in input order) */
} feed_t;

static void add_bad(feed_t *fd, const char *why)
{
    if (fd->nbad == fd->cap_bad) {
        fd->cap_bad = fd->cap_bad ? fd->cap_bad * 2 : 64;
        if (!(fd->bad = realloc(fd->bad, fd->cap_bad * sizeof(*fd->bad)))) {
            fputs("forq: out of memory\n", stderr);
            exit(EXIT_PROTOCOL);
        }
    }
    fd->bad[fd->nbad++] = (bad_t){fd->positions++, fd->lineno, strdup(why)};
}

static int feed_line(void *ud, const void **ret_item, size_t *ret_len)
{
    feed_t *fd = ud;
    json_error_t jerr;
    msgpack_packer pk;
    char err[256], where[64], why[700];
    ssize_t n;

    while (!term_interrupted() && (n = getline(&fd->line, &fd->cap, fd->in)) >= 0) {
        fd->lineno++;
        if (strspn(fd->line, " \t\r\n") == (size_t)n) {
            snprintf(why, sizeof(why),
                     "input line %zu is blank (forq map --skip-blank skips blank lines)",
                     fd->lineno);
            if (!fd->skip_blank)
                add_bad(fd, why);
            continue;
        }
        if (fd->line[n - 1] == '\n')
            fd->line[n - 1] = '\0'; /* an error's column counts on this line, not the next */
        json_t *j = json_loads(fd->line, JSON_DECODE_ANY, &jerr);
        if (!j) {
            snprintf(where, sizeof(where), "input line %zu", fd->lineno);
            json_error_words(where, &jerr, why, sizeof(why));
            add_bad(fd, why);
            continue;
        }
        msgpack_sbuffer_clear(&fd->item);
        msgpack_packer_init(&pk, &fd->item, msgpack_sbuffer_write);
        int r = json_to_msgpack(j, &pk, err, sizeof(err));
        json_decref(j);
        if (r < 0) {
            snprintf(why, sizeof(why), "input line %zu: %s", fd->lineno, err);
            add_bad(fd, why);
            continue;
        }
        fd->positions++;
        *ret_item = fd->item.data;
        *ret_len = fd->item.size;
        return 1;
    }
    if (ferror(fd->in) && errno != EINTR)
        fd->read_errno = errno;
    return 0;
}

/* The output position of the item the map calls `index`: index plus the bad lines before it.
 * Bad line j comes after bad[j].pos - j items, a count that never decreases with j. */
static size_t pos_of(const feed_t *fd, size_t index)
{
    size_t lo = 0, hi = fd->nbad;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (fd->bad[mid].pos - mid <= index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return index + lo;
}

/* Lines of a file that will be output lines: its total for the progress bar. */
static size_t count_lines(const char *path, bool skip_blank)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, n = 0;
    ssize_t len;
    if (!f)
        return 0;
    while ((len = getline(&line, &cap, f)) >= 0)
        n += !skip_blank || strspn(line, " \t\r\n") != (size_t)len;
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

typedef struct {
    feed_t fd;
    bool unordered;
    size_t total;          /* output lines to come, when known (--input), else 0 */
    size_t printed;        /* output lines printed */
    size_t failed;         /* of them, $error lines */
    size_t listed;         /* failures listed on stderr */
    double started, drawn; /* when the map started, when the bar was last drawn */
} out_t;

/* The progress bar: done/total (when known), rate, ETA, failures. */
static void draw_progress(out_t *o, bool now)
{
    double t = mono_s(), el = t - o->started, rate = el > 0 ? (double)o->printed / el : 0;
    char bar[40];

    if (!term_stderr_is_tty() || (!now && t - o->drawn < 0.1))
        return;
    o->drawn = t;
    if (o->total) {
        double eta = rate > 0 && o->total > o->printed ? (double)(o->total - o->printed) / rate : 0;
        term_bar(bar, sizeof(bar), 30, o->printed, o->total);
        term_status("%s %zu/%zu  %.0f/s  ETA %d:%02d  %zu failed", bar, o->printed, o->total, rate,
                    (int)eta / 60, (int)eta % 60, o->failed);
    } else {
        term_status("%zu %s  %.0f/s  %zu failed", o->printed, plural(o->printed, "item", "items"),
                    rate, o->failed);
    }
}

/* Print the line of output position pos: `value` (taken), or an $error. */
static void emit(out_t *o, size_t pos, json_t *value, const char *state, const char *type,
                 const char *message)
{
    json_t *line = value;

    if (!value) {
        line = json_pack("{s:{s:I, s:s, s:s, s:s}}", "$error", "index", (json_int_t)pos, "state",
                         state, "type", type, "message", message);
        bool typed = strcmp(type, state) != 0 && strcmp(state, "invalid") != 0;
        if (o->listed++ < 10)
            term_say("item %zu %s: %s%s%s", pos, state, typed ? type : "", typed ? ": " : "",
                     message);
        o->failed++;
    }
    if (o->unordered)
        line = json_pack("[I, o]", (json_int_t)pos, line);
    term_result(line);
    json_decref(line);
    o->printed++;
    draw_progress(o, false);
}

static void emit_bad(out_t *o, bad_t *b)
{
    emit(o, b->pos, NULL, "invalid", "InputError", b->why);
    free(b->why);
    b->why = NULL;
}

/* The bad lines due before output position `upto` (ordered), or all of them found so far
 * (unordered, where they go out as soon as they are read). */
static void emit_bad_lines(out_t *o, size_t upto)
{
    while (o->fd.bad_printed < o->fd.nbad && o->fd.bad[o->fd.bad_printed].pos < upto)
        emit_bad(o, &o->fd.bad[o->fd.bad_printed++]);
}

static void emit_item(out_t *o, const forq_map_item_t *it)
{
    size_t pos = pos_of(&o->fd, it->index);

    if (it->state == FORQ_STATE_OK) {
        msgpack_zone zone;
        msgpack_object obj;
        size_t off = 0;
        msgpack_zone_init(&zone, 1024);
        msgpack_unpack(it->data, it->len, &off, &zone, &obj);
        emit(o, pos, msgpack_to_json(&obj), NULL, NULL, NULL);
        msgpack_zone_destroy(&zone);
    } else {
        const char *st = forq_state_name(it->state);
        emit(o, pos, NULL, st, it->error_type ? it->error_type : st, it->detail);
    }
}

/* A rejection's own words, without libforq's "its chunk job ID rejected: " before them. */
static const char *rejection_words(const char *detail)
{
    const char *p = strstr(detail, " rejected: ");
    return strncmp(detail, "its chunk job ", 14) == 0 && p ? p + 11 : detail;
}

int cmd_map(const globals_t *g, int argc, char **argv)
{
    enum { O_INPUT = 1, O_CHUNK, O_WINDOW, O_UNORDERED, O_SKIP };
    static const opt_t opts[] = {
        {"input", true, O_INPUT},
        {"chunksize", true, O_CHUNK},
        {"window", true, O_WINDOW},
        {"unordered", false, O_UNORDERED},
        JOB_OPTS,
        {"skip-blank", false, O_SKIP},
        {NULL, false, 0},
    };
    forq_map_opts_t mo;
    out_t o = {0};
    forq_client_t *c = NULL;
    forq_map_t *m = NULL;
    forq_map_item_t it;
    const char *input = NULL, *task = NULL;
    char rejected[1100] = "";
    bool told = false, stopping = false, stopped_output = false;
    long v;
    int r, rc = 0;
    forq_err_t e;
    args_t a;

    forq_map_opts_init(&mo);
    args_init(&a, argc, argv);
    while ((r = args_next(&a, opts)) != ARGS_END) {
        switch (r) {
        case ARGS_STOP:
            return a.rc;
        case ARGS_OPERAND:
            if (task)
                return cmd_usage_error("map", "%s",
                                       "map takes exactly one TASK (items come from stdin or "
                                       "--input)");
            task = a.val;
            break;
        case O_INPUT:
            input = a.val;
            break;
        case O_SKIP:
            o.fd.skip_blank = true;
            break;
        case O_CHUNK:
            if (parse_int("--chunksize", a.val, 1, 1000000, &v) < 0)
                return EXIT_USAGE;
            mo.chunksize = (size_t)v;
            break;
        case O_WINDOW:
            if (parse_int("--window", a.val, 1, 100000, &v) < 0)
                return EXIT_USAGE;
            mo.window = (size_t)v;
            break;
        case O_UNORDERED:
            mo.unordered = o.unordered = true;
            break;
        case O_JOB_TIMEOUT:
        case O_JOB_PRIORITY:
        case O_JOB_RETRIES:
        case O_JOB_TAGS:
            if (job_option(r, a.val, &mo.job) < 0)
                return EXIT_USAGE;
            break;
        }
    }
    if (!task)
        return cmd_usage_error("map", "%s", "map needs a TASK (items come from stdin or --input)");
    mo.star = true; /* each line is a call's args, as for submit */
    o.fd.in = stdin;
    if (input) {
        if (!(o.fd.in = fopen(input, "r"))) {
            fprintf(stderr, "forq: cannot read %s: %s\n", input, strerror(errno));
            return EXIT_USAGE;
        }
        o.total = count_lines(input, o.fd.skip_blank);
    }
    msgpack_sbuffer_init(&o.fd.item);
    o.started = mono_s();
    if ((rc = connect_client(g, &c)) != 0)
        goto out;
    term_catch_interrupts();
    if (forq_imap(c, task, feed_line, &o.fd, &mo, &m) != FORQ_OK) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        rc = EXIT_USAGE;
        goto out;
    }
    for (;;) {
        /* in slices: to see Ctrl-C, and tell a user at a terminal when the wait is for forqd */
        while ((e = forq_map_next(m, 100, &it)) == FORQ_ERR_TIMEOUT) {
            if (term_interrupted() && !stopping) {
                forq_map_cancel(m);
                stopping = true;
            }
            note_unreachable(g, c, &told);
        }
        if (term_interrupted() && !stopping) {
            forq_map_cancel(m);
            stopping = true;
        }
        if (o.unordered)
            emit_bad_lines(&o, SIZE_MAX);
        if (e != FORQ_OK)
            break;
        if (!o.unordered && !stopped_output)
            emit_bad_lines(&o, pos_of(&o.fd, it.index)); /* the ones before this item */
        if (it.state == FORQ_STATE_REJECTED && !rejected[0]) {
            /* what rejected this chunk rejects every chunk: one message, not one per item */
            snprintf(rejected, sizeof(rejected), "%s", rejection_words(it.detail));
            forq_map_cancel(m);
            stopping = true;
        }
        if (stopping && (it.state == FORQ_STATE_CANCELLED || it.state == FORQ_STATE_REJECTED))
            stopped_output = true; /* not finished: in order, nothing after it either */
        if (!stopped_output ||
            (o.unordered && it.state != FORQ_STATE_CANCELLED && it.state != FORQ_STATE_REJECTED))
            emit_item(&o, &it);
    }
    if (e == FORQ_ERR_EXHAUSTED && !stopped_output)
        emit_bad_lines(&o, SIZE_MAX); /* the ones after the last item */
    term_forget();
    size_t seen = o.total ? o.total : o.fd.positions;
    if (rejected[0]) {
        fprintf(stderr, "forq: forqd rejected the map's jobs: %s", rejected);
        if (o.printed)
            fprintf(stderr, " (stopped after %zu of %zu %s)", o.printed, seen,
                    plural(seen, "item", "items"));
        fputc('\n', stderr);
        rc = EXIT_REJECTED;
    } else if (term_interrupted()) {
        fprintf(stderr, "forq: interrupted: %zu of %zu %s done", o.printed, seen,
                plural(seen, "item", "items"));
        if (o.failed)
            fprintf(stderr, " (%zu failed)", o.failed);
        fputs(!o.total && !feof(o.fd.in) ? "; the rest of the input was not read\n" : "\n", stderr);
        rc = EXIT_INTERRUPTED;
    } else if (e != FORQ_ERR_EXHAUSTED) {
        fprintf(stderr, "forq: %s\n", forq_errdetail());
        rc = EXIT_USAGE;
    } else if (o.fd.read_errno) {
        fprintf(stderr, "forq: reading the input failed after line %zu: %s\n", o.fd.lineno,
                strerror(o.fd.read_errno));
        rc = EXIT_PROTOCOL;
    } else if (o.failed) {
        fprintf(stderr, "forq: %zu of %zu %s failed%s\n", o.failed, o.printed,
                plural(o.printed, "item", "items"),
                o.listed > 10 ? " (the first 10 are listed above)" : "");
        rc = EXIT_TASK_ERROR;
    } else if (term_stderr_is_tty()) {
        fprintf(stderr, "forq: %zu %s in %.1f s\n", o.printed, plural(o.printed, "item", "items"),
                mono_s() - o.started);
    }
out:
    forq_map_destroy(&m);
    forq_client_destroy(&c);
    msgpack_sbuffer_destroy(&o.fd.item);
    for (size_t i = o.fd.bad_printed; i < o.fd.nbad; i++)
        free(o.fd.bad[i].why);
    free(o.fd.bad);
    free(o.fd.line);
    if (input && o.fd.in)
        fclose(o.fd.in);
    return rc;
}
