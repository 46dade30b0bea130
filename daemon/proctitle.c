/* proctitle.c - see proctitle.h. The way PostgreSQL (ps_status.c) and nginx (ngx_setproctitle.c)
 * do it on Linux.
 *
 * /proc/PID/cmdline is the process's memory from the kernel's arg_start to arg_end: the argv
 * strings, one after another, each NUL-terminated; the environment strings follow at once. A
 * title is written over that memory. Titles are longer than a bare `forqd`, so the room is argv's
 * strings plus the environment strings that follow them without a gap; before that memory is
 * reused, the environment is copied to the heap (environ points at the copies, getenv keeps
 * working) and the program gets a heap copy of argv (forqd re-executes a forkserver with its
 * original flags, from that copy). glibc's program_invocation_name pointed into argv: it is
 * pointed at a copy too.
 *
 * What the kernel shows (fs/proc/base.c, get_mm_cmdline): when the byte at arg_end - 1 (the NUL
 * after the last argument) is still NUL, the whole argv area, NULs included (ps would show the
 * title followed by blanks); when it was overwritten, the memory up to the first NUL - and that
 * may run on into the environment area. So a title is written NUL-terminated, and every byte
 * after it up to arg_end is a blank: the kernel then shows exactly the title, whatever its
 * length. */
#define _GNU_SOURCE
#include "proctitle.h"

#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

extern char **environ;

static char *area;     /* argv[0]'s memory, the start of the title's room; NULL: not taken */
static size_t room;    /* bytes of room: argv's strings and the environment's after them */
static size_t arg_len; /* of which argv's: arg_end - 1 is area[arg_len - 1] */
/* the copies of argv and the environment, kept reachable for ever (volatile: never read, the
 * stores must stay; glibc's exit-time clean-up, which valgrind runs, clears environ) */
static char **volatile argv_copy;
static char **volatile env_copy;

char **proctitle_init(int argc, char **argv)
{
    char **copy = xcalloc((size_t)argc + 1, sizeof(char *));
    char *end = NULL;
    bool whole = argc > 0;
    size_t n = 0;

    for (int i = 0; i < argc; i++) {
        copy[i] = xstrdup(argv[i]);
        if (i == 0 || argv[i] == end)
            end = argv[i] + strlen(argv[i]) + 1;
        else
            whole = false; /* not laid out as the kernel does: use what is contiguous */
    }
    if (argc == 0 || !argv[0])
        return argv_copy = copy;
    arg_len = (size_t)(end - argv[0]);
    if (!whole)
        arg_len = 0; /* arg_end unknown: no blanks to the end of argv, NULs instead */
    if (environ) {
        while (environ[n])
            n++;
        char **env = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            if (whole && environ[i] == end)
                end = environ[i] + strlen(environ[i]) + 1;
            env[i] = xstrdup(environ[i]);
        }
        environ = env_copy = env;
    }
    program_invocation_name = copy[0];
    program_invocation_short_name = strrchr(copy[0], '/') ? strrchr(copy[0], '/') + 1 : copy[0];
    area = argv[0];
    room = (size_t)(end - argv[0]);
    return argv_copy = copy;
}

void proctitle_set(const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!area || room < 2)
        return;
    va_start(ap, fmt);
    n = vsnprintf(area, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= room)
        n = (int)room - 1; /* truncated; vsnprintf wrote the NUL at area[room - 1] */
    if ((size_t)n + 1 < arg_len)
        memset(area + n + 1, ' ', arg_len - (size_t)n - 1);
}

void proctitle_set_name(const char *name)
{
    prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}
