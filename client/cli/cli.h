/* cli.h - what the files of the forq command share: exit codes, global options, and the
 * helpers every command uses.
 *
 * main.c parses the global options, dispatches, and has the helpers (connecting, waiting,
 * printing JSON) and the smallest commands (cancel, ping); args.c reads a command's options and
 * operands, and JSON arguments from the command line, a file or stdin; help.c is every help
 * text; term.c the status line on a terminal and Ctrl-C; jobs.c has submit and wait; map.c the
 * map; dict.c the dict commands; shared.c queue, lock and event; status.c status and tasks. */
#ifndef FORQ_CLI_H
#define FORQ_CLI_H

#include "forq/forq.h"
#include "json_mp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes, documented in help.c and forq(1). */
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
    EXIT_NOT_INTEGER = 14,  /* dict incr: the value is not an integer, or the sum overflows */
    EXIT_FORBIDDEN = 15,    /* forqd's clients file does not give this client the right */
    EXIT_INTERRUPTED = 130, /* Ctrl-C or SIGTERM (128 + SIGINT, as a shell reports it) */
};

typedef struct {
    const char *endpoint;   /* -e */
    double connect_timeout; /* seconds */
    double lost_after;      /* seconds forqd may stay unreachable before a job is lost; 0: ever */
    const char *key_file;   /* --key: this client's CURVE key pair file */
    const char *server_key; /* --server-key: forqd's public key, or a file holding it */
} globals_t;

/* ---- main.c ---- */

/* Print "forq: <message>; see forq help [CMD]" on stderr; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same for command `cmd`: the hint names its help. */
int cmd_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse a number of seconds (>= 0) given to `flag`; -1 after a message on stderr. */
int parse_seconds(const char *flag, const char *s, double *ret);
/* Parse a whole number in [min, max] given to `flag`; -1 after a message on stderr. */
int parse_int(const char *flag, const char *s, long min, long max, long *ret);
/* Seconds as the int milliseconds libforq takes: -1 (no limit) for s < 0, at most INT_MAX. */
int ms_of(double s);
/* Connect to forqd with the global options; 0, or the exit code after a message on stderr.
 * libforq's threads are started with SIGINT and SIGTERM blocked, so that the main thread is
 * the one that receives them (term.c). */
int connect_client(const globals_t *g, forq_client_t **ret);
/* Wait for f up to timeout_ms (-1: no limit) as forq_future_wait() does, and on a terminal
 * show its latest progress on the status line and tell a user once, after 2 s, that the wait
 * is for forqd to come back. Returns FORQ_ERR_TIMEOUT also when interrupted (term_interrupted
 * says which). */
forq_err_t wait_future(const globals_t *g, forq_client_t *c, forq_future_t *f, int timeout_ms);
/* The line wait_future() prints, when it is due: *told says whether it was printed already. */
void note_unreachable(const globals_t *g, forq_client_t *c, bool *told);
/* Print a JSON value (jansson flags) on one line of stdout. */
void print_json(json_t *j, size_t flags);
/* Print one msgpack value as JSON on one line of stdout. */
void print_msgpack(const void *data, size_t len, size_t flags);
/* The exit code of a job's final state. */
int exit_for(forq_state_t st);
/* The UTC time ms_ago milliseconds before now, ISO 8601 with milliseconds (status.c). */
void iso_time_ago(char *buf, size_t size, uint64_t ms_ago);
/* "1 item", "2 items": the word for n (plural by adding "s" unless `plural` is given). */
const char *plural(unsigned long long n, const char *one, const char *many);
/* What forqd says about a job id it does not know (the words `forq wait` shows), into buf. */
void unknown_job_detail(forq_client_t *c, const char *id, char *buf, size_t size);

/* ---- args.c: a command's options and operands ---- */

typedef struct {
    const char *name; /* the long name without "--" */
    bool has_arg;     /* takes a value: --name VALUE or --name=VALUE */
    int id;           /* what args_next() returns for it (> 0) */
} opt_t;

typedef struct {
    int argc;
    char **argv;     /* argv[0] is the command's name */
    int i;           /* the next element to look at */
    bool operands;   /* "--" was seen: everything after it is an operand */
    const char *cmd; /* the command, for messages and its help */
    const char *val; /* the option's value, or the operand */
    int rc;          /* ARGS_STOP: the exit status to return */
} args_t;

enum {
    ARGS_END = 0,      /* nothing more */
    ARGS_OPERAND = -1, /* an operand in a->val */
    ARGS_STOP = -2,    /* help was printed (rc 0) or a usage error (rc 2): return a->rc */
};

void args_init(args_t *a, int argc, char **argv);
/* The next option (its id, value in a->val), operand, or the end. Options may come anywhere;
 * "--" ends them; "-" and negative numbers ("-7", "-0.5") are operands; "-h" and "--help"
 * print the command's help. */
int args_next(args_t *a, const opt_t *opts);

/* Read a JSON value written as `text` on the command line, or "-" (stdin) or "@FILE" (the
 * file), for the argument called `what` (ARGS_JSON, VALUE_JSON). Returns a new reference, or
 * NULL after a one-line message on stderr. */
json_t *json_argument(const char *what, const char *text);
/* The same, packed as msgpack into sb. -1 after a message on stderr. */
int json_argument_msgpack(const char *what, const char *text, msgpack_sbuffer *sb);
/* Why `text` (shown to the user as `where`, e.g. "ARGS_JSON" or "input line 3") is not JSON,
 * in words, into buf; with the quoting hint only where a bare word is the likely cause. */
void json_error_words(const char *where, const json_error_t *e, char *buf, size_t size);

/* ---- jobs.c: the options every job takes, in submit and map ---- */

/* Their ids, above any command's own; JOB_OPTS are their entries for a command's opt_t table. */
enum { O_JOB_TIMEOUT = 100, O_JOB_PRIORITY, O_JOB_RETRIES, O_JOB_TAGS };
/* clang-format off */
#define JOB_OPTS \
    {"timeout", true, O_JOB_TIMEOUT}, \
    {"priority", true, O_JOB_PRIORITY}, \
    {"retries", true, O_JOB_RETRIES}, \
    {"tags", true, O_JOB_TAGS}
/* clang-format on */
/* Set the option `id` (one of O_JOB_*) to val in so; -1 after a message on stderr. */
int job_option(int id, const char *val, forq_submit_opts_t *so);

/* ---- keys.c ---- */

/* The CURVE keys of a connection (--server-key / $FORQ_SERVER_KEY, --key / $FORQ_KEY, else
 * the default key file) into o, backed by pub, sec and srv. 0 (nothing to set without a
 * server key), or the exit code after a one-line message. */
int keys_apply(const globals_t *g, forq_client_opts_t *o, char pub[41], char sec[41], char srv[41]);
int cmd_keygen(const globals_t *g, int argc, char **argv);

/* ---- help.c ---- */

/* Print the help of `cmd` (NULL: the overview) on stdout; EXIT_USAGE for an unknown one. */
int help_print(const char *cmd);
int cmd_help(const globals_t *g, int argc, char **argv);

/* ---- term.c: the status line on a terminal, and Ctrl-C ---- */

/* Watch SIGINT and SIGTERM: the first sets term_interrupted(), a second exits at once (130). */
void term_catch_interrupts(void);
bool term_interrupted(void);
/* Is stderr a terminal (the status line is shown)? Is stdout one too? */
bool term_stderr_is_tty(void);
bool term_stdout_is_tty(void);
/* Show `text` as the status line (replacing the one shown), cut to the terminal's width. No-op
 * when stderr is not a terminal. */
void term_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Erase the status line before other output goes to the terminal; term_redraw() shows it again
 * (term_forget(): not any more). */
void term_clear(void);
void term_redraw(void);
void term_forget(void);
/* A progress bar "[===   ]" of `width` cells for done of total, into buf. */
void term_bar(char *buf, size_t size, size_t width, uint64_t done, uint64_t total);
/* Print a line on stderr ("forq: " + the message): the status line is erased first and drawn
 * again after. */
void term_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A result line on stdout: when stdout is the terminal, the status line is erased before it and
 * drawn again after. */
void term_result(json_t *j);

/* ---- the commands: argv[0] is the command's name; each returns the exit status ---- */
int cmd_submit(const globals_t *g, int argc, char **argv);
int cmd_map(const globals_t *g, int argc, char **argv);
int cmd_wait(const globals_t *g, int argc, char **argv);
int cmd_dict(const globals_t *g, int argc, char **argv);
int cmd_queue(const globals_t *g, int argc, char **argv); /* shared.c, as lock and event */
int cmd_lock(const globals_t *g, int argc, char **argv);
int cmd_event(const globals_t *g, int argc, char **argv);
int cmd_status(const globals_t *g, int argc, char **argv);
int cmd_tasks(const globals_t *g, int argc, char **argv);
int cmd_jobs(const globals_t *g, int argc, char **argv);
int cmd_purge(const globals_t *g, int argc, char **argv);

#endif
