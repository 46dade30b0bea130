/* proctitle.h - what ps and top show for forqd's processes: "forqd: broker",
 * "forqd: forkserver", "forqd: worker idle", "forqd: worker count_primes <job id>".
 *
 * ps and `top -c` read /proc/PID/cmdline, the memory the kernel put the command line in; a title
 * is written there (proctitle.c says how, and why that is safe). `top` and `ps -e` show the
 * 15-byte process name instead (prctl PR_SET_NAME): the broker keeps "forqd", so that
 * `killall forqd` and `pidof forqd` still find the process to signal; the forkserver is
 * "forqd-forksrv" and a worker "forqd-worker". */
#ifndef FORQ_PROCTITLE_H
#define FORQ_PROCTITLE_H

/* Take over the command line's memory for titles: first thing in main(), before anything reads
 * argv or the environment (getenv keeps working: environ moves to the heap). Returns the argv
 * to use from then on, a heap copy (argv[argc] is NULL); the original strings are overwritten
 * by the first title. Not thread-safe: call it while the process has one thread. */
char **proctitle_init(int argc, char **argv);

/* Show `fmt` as the process's title (truncated to the room the command line had, at least the
 * original command line's length). A no-op before proctitle_init(). */
void proctitle_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set the process name of `top` and `ps -e` (15 bytes at most). */
void proctitle_set_name(const char *name);

#endif
