/* cli.h - what the files of the forq command share: exit codes, global options, and the
 * helpers every command uses (argument parsing, connecting, printing JSON). main.c parses the
 * global options and dispatches; jobs.c has submit, map and wait; dict.c the dict commands;
 * status.c the status command. */
#ifndef FORQ_CLI_H
#define FORQ_CLI_H

#include "forq/forq.h"
#include "json_mp.h"

#include <stdbool.h>
#include <stddef.h>

/* Exit codes, documented in usage[] (main.c). */
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

typedef struct {
    const char *endpoint;   /* -e */
    double connect_timeout; /* seconds */
    double lost_after;      /* seconds forqd may stay unreachable before a job is lost; 0: ever */
} globals_t;

/* Print "forq: <message>; see forq --help" on stderr; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parse a number of seconds (>= 0) given to `flag`; -1 after a message on stderr. */
int parse_seconds(const char *flag, const char *s, double *ret);
/* Parse a whole number in [min, max] given to `flag`; -1 after a message on stderr. */
int parse_int(const char *flag, const char *s, long min, long max, long *ret);
/* Connect to forqd with the global options; 0, or the exit code after a message on stderr. */
int connect_client(const globals_t *g, forq_client_t **ret);
/* Wait for f up to timeout_ms (-1: no limit) as forq_future_wait() does, telling a user at a
 * terminal once, after 2 s, that the wait is for forqd to come back. */
forq_err_t wait_future(const globals_t *g, forq_client_t *c, forq_future_t *f, int timeout_ms);
/* The line wait_future() prints, when it is due: *told says whether it was printed already. */
void note_unreachable(const globals_t *g, forq_client_t *c, bool *told);
/* Print a JSON value (jansson flags) on one line of stdout. */
void print_json(json_t *j, size_t flags);
/* Print one msgpack value as JSON on one line of stdout. */
void print_msgpack(const void *data, size_t len, size_t flags);
/* The exit code of a job's final state. */
int exit_for(forq_state_t st);

/* The commands: argv[0] is the command's name. Each returns the process's exit status. */
int cmd_submit(const globals_t *g, int argc, char **argv);
int cmd_map(const globals_t *g, int argc, char **argv);
int cmd_wait(const globals_t *g, int argc, char **argv);
int cmd_dict(const globals_t *g, int argc, char **argv);
int cmd_status(const globals_t *g, int argc, char **argv);

#endif
