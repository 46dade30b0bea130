/* testutil_cli.h - driving the real forq command ($FORQ_CLI) in the CLI suites
 * (check_cli_*.c): running it with stdout and stderr apart, in the background to signal it,
 * or on a pseudo-terminal, and reading a terminal's output as a user sees it. */
#ifndef FORQ_TESTUTIL_CLI_H
#define FORQ_TESTUTIL_CLI_H

#include <stddef.h>
#include <sys/types.h>

/* Run `forq -e ENDPOINT <args>` through sh: args are shell text, and may end in a redirection,
 * a here-document or a pipe ("| sort"). forq's stderr goes to err, and what the command line
 * writes on stdout to out (NUL-terminated, either may be NULL). Returns the exit status, -1 if
 * it did not exit. */
int cli_run(const char *endpoint, const char *args, char *out, size_t outlen, char *err,
            size_t errlen);

/* Start forq with `args` (NULL-terminated argv after "forq -e ENDPOINT") in the background,
 * with stdin, stdout and stderr on the given descriptors (-1: /dev/null). */
pid_t cli_spawn(const char *endpoint, const char *const *args, int in_fd, int out_fd, int err_fd);

/* Wait up to ms for pid; its exit status, 256 + the signal that killed it, or -1 (then it is
 * killed). */
int cli_wait_exit(pid_t pid, int ms);

/* Run forq with `args` on a new pseudo-terminal (stdout and stderr both on it, stdin from
 * /dev/null) until it exits, at most ms; what it wrote to the terminal into raw. Returns its
 * exit status (256 + a signal that killed it), or -1. */
int cli_pty_run(const char *endpoint, const char *const *args, int ms, char *raw, size_t rawlen);

/* What a terminal shows after `raw`: its finished lines (each ended by "\n" in out), then the
 * line under the cursor if not empty. "\r" returns to the line's start, "ESC [ K" erases to
 * its end, other escape sequences are skipped, and a character overwrites the one under the
 * cursor - so a progress bar that a result line did not erase shows up in that line. */
void term_screen(const char *raw, char *out, size_t size);

/* The whole of a file (NUL-terminated, truncated to size) into buf. */
void read_file(const char *path, char *buf, size_t size);

#endif
