/* testutil_cli.c - see testutil_cli.h. */
#define _GNU_SOURCE
#include "testutil_cli.h"

#include "testutil.h"

#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;

    if (f) {
        n = fread(buf, 1, size - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
}

int cli_run(const char *endpoint, const char *args, char *out, size_t outlen, char *err,
            size_t errlen)
{
    char cmd[8192], errpath[256], junk[256];
    int fd = temp_file(errpath, sizeof(errpath), "forq-cli-err"), rc;

    close(fd);
    /* the redirection before args, which may end in a here-document or a pipe */
    snprintf(cmd, sizeof(cmd), "%s -e %s 2>%s %s", getenv("FORQ_CLI"), endpoint, errpath, args);
    rc = sh(cmd, out ? out : junk, out ? outlen : sizeof(junk));
    if (err)
        read_file(errpath, err, errlen);
    unlink(errpath);
    return rc;
}

pid_t cli_spawn(const char *endpoint, const char *const *args, int in_fd, int out_fd, int err_fd)
{
    const char *argv[64];
    int n = 0;
    pid_t pid;

    argv[n++] = getenv("FORQ_CLI");
    argv[n++] = "-e";
    argv[n++] = endpoint;
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(in_fd >= 0 ? in_fd : null, 0);
        dup2(out_fd >= 0 ? out_fd : null, 1);
        dup2(err_fd >= 0 ? err_fd : null, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int status_of(int status)
{
    /* not 128 + the signal, as a shell says: a death by SIGINT must not pass for exit 130 */
    return WIFEXITED(status) ? WEXITSTATUS(status) : 256 + WTERMSIG(status);
}

int cli_wait_exit(pid_t pid, int ms)
{
    struct timespec t0, now;
    int status;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status_of(status);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > ms)
            break;
        usleep(5000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

int cli_pty_run(const char *endpoint, const char *const *args, int ms, char *raw, size_t rawlen)
{
    struct timespec t0, now;
    struct winsize ws = {.ws_row = 24, .ws_col = 120};
    size_t n = 0;
    int master, slave, status, rc = -1;
    pid_t pid;

    ck_assert_int_eq(openpty(&master, &slave, NULL, NULL, &ws), 0);
    pid = cli_spawn(endpoint, args, -1, slave, slave);
    close(slave);
    /* by the clock, not by turns: a turn with output to read takes no time */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd pf = {master, POLLIN, 0};
        if (poll(&pf, 1, 10) > 0) {
            ssize_t r = read(master, raw + n, rawlen - 1 - n);
            if (r > 0)
                n += (size_t)r;
            else if (rc >= 0)
                break; /* it exited and everything it wrote is read (EIO once the slave is gone) */
        } else if (rc >= 0) {
            break;
        }
        if (rc < 0 && waitpid(pid, &status, WNOHANG) == pid)
            rc = status_of(status);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > ms)
            break;
    }
    raw[n] = '\0';
    close(master);
    if (rc < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    return rc;
}

void term_screen(const char *raw, char *out, size_t size)
{
    char line[4096];
    size_t len = 0, col = 0, o = 0;

    for (const char *p = raw; *p; p++) {
        if (*p == '\r') {
            col = 0;
        } else if (*p == '\n') {
            o += (size_t)snprintf(out + o, o < size ? size - o : 0, "%.*s\n", (int)len, line);
            len = col = 0;
        } else if (*p == '\033' && p[1] == '[') {
            p += 2;
            while (*p && !(*p >= '@' && *p <= '~'))
                p++;
            if (*p == 'K')
                len = col;
            if (!*p)
                break;
        } else if (col < sizeof(line)) {
            line[col++] = *p;
            if (col > len)
                len = col;
        }
    }
    if (len)
        o += (size_t)snprintf(out + o, o < size ? size - o : 0, "%.*s", (int)len, line);
    if (o >= size)
        out[size - 1] = '\0';
}
