/* forkserver.h - the process that forks workers.
 *
 * forqd forks the forkserver before it creates any ZeroMQ context (a forked child of a threaded
 * process may only call async-signal-safe functions). The forkserver loads the task plugins once,
 * then forks a worker for every SPAWN request, kills workers on request (only its own unreaped
 * children, so a recycled pid is never hit), reaps them, and reports every exit with its wait
 * status. It runs in its own session (a terminal's Ctrl-C reaches only the broker, which drains),
 * dies with forqd (PR_SET_PDEATHSIG) and takes its workers with it.
 *
 * When a forkserver dies, forqd — by then threaded — starts a new one by fork + execve of
 * /proc/self/exe with --forkserver-fd, which runs forkserver_main() in a fresh image. For Python
 * tasks with forqd-python installed, every forkserver, the first one too, is that program
 * instead (FORKSERVER_PYTHON_IMAGE below). A program that cannot be run, or one from another
 * build, answers FAILED with what to do, as a forkserver that cannot load its plugins does.
 *
 * The channel is an AF_UNIX SOCK_SEQPACKET pair: each message is one forkserver_msg_t, followed for
 * HELLO by the task names (each NUL-terminated) and for FAILED by a one-line reason. SPAWNED
 * carries the broker's end of the new worker's link (wlink.h) as SCM_RIGHTS. */
#ifndef FORQ_FORKSERVER_H
#define FORQ_FORKSERVER_H

#include "config.h"

#include <forq/task.h>

#include <stdint.h>
#include <sys/types.h>

typedef enum {
    FS_SPAWN = 1, /* broker -> fs: fork one worker */
    FS_KILL,      /* broker -> fs: send signal `arg` to worker `pid` if it is still ours */
    FS_HELLO,     /* fs -> broker: plugins loaded; the task names follow */
    FS_FAILED,    /* fs -> broker: start-up failed; the reason follows; the fs exits */
    FS_SPAWNED,   /* fs -> broker: worker `pid` forked */
    FS_SPAWN_ERR, /* fs -> broker: fork failed with errno `arg` */
    FS_EXITED,    /* fs -> broker: worker `pid` ended with wait status `arg` */
} forkserver_type_t;

typedef struct {
    uint32_t type; /* forkserver_type_t */
    int32_t pid;   /* worker pid, or the forkserver's own in HELLO */
    int32_t arg;   /* signal, errno or wait status */
    uint32_t len;  /* bytes of text that follow */
} forkserver_msg_t;

#define FS_MSG_MAX 65536 /* largest message, header and text */

/* Room for one received message; its text follows the header. */
typedef union {
    forkserver_msg_t m;
    char raw[FS_MSG_MAX];
} forkserver_buf_t;

static inline const char *forkserver_buf_text(const forkserver_buf_t *u)
{
    return u->raw + sizeof(forkserver_msg_t);
}

/* Fork the first forkserver (no ZeroMQ context may exist yet). Returns 0 with the child's pid and
 * the broker's end of the channel, or -errno. */
int forkserver_fork(const config_t *cfg, pid_t *ret_pid, int *ret_fd);

/* Start a forkserver from a threaded process: fork + execve of /proc/self/exe with
 * --forkserver-fd. Returns 0 with pid and fd, or -errno. */
int forkserver_exec(const config_t *cfg, pid_t *ret_pid, int *ret_fd);

/* Python tasks: when the configuration wants them and FORKSERVER_PYTHON_IMAGE is in the Python
 * runtime's directory (python.so's, config_python_runtime), both functions above exec that
 * program instead: the same forkserver with the runtime and CPython linked in statically
 * (daemon/python/pyfs_main.c), whose Python code runs faster than libpython's shared build.
 * It sets forkserver_python_builtin, which forkserver_main() registers instead of loading
 * python.so. Without the image, forqd's own forkserver loads python.so. */
#define FORKSERVER_PYTHON_IMAGE "forqd-python"

/* forkserver_exec() tells the program it runs which build forqd is (forq_build.h) in this
 * environment variable; forqd-python refuses to serve another build's forqd (FAILED, with what
 * to do). */
#define FORKSERVER_BUILD_ENV "FORQ_FORKSERVER_BUILD"
extern const forq_plugin_t *forkserver_python_builtin;

/* The forkserver itself: load plugins, say HELLO (or FAILED), serve until the channel closes.
 * Never returns. */
void forkserver_main(const config_t *cfg, int fd) __attribute__((noreturn));

/* Send a message (with `len` bytes of text, may be 0). Returns 0 or -errno. */
int forkserver_send(int fd, forkserver_type_t type, int32_t pid, int32_t arg, const void *text,
                    uint32_t len);

/* The same, passing a descriptor along (SCM_RIGHTS) when pass_fd >= 0. */
int forkserver_send_fd(int fd, forkserver_type_t type, int32_t pid, int32_t arg, const void *text,
                       uint32_t len, int pass_fd);

/* Receive one message into buf (FS_MSG_MAX bytes), without waiting. Returns the bytes read, 0 at
 * end of channel, or -errno (-EAGAIN when empty, -EBADMSG for a short message). A descriptor
 * passed along goes to *ret_fd (close-on-exec; -1 if none), or is closed when ret_fd is NULL. */
ssize_t forkserver_recv(int fd, void *buf, size_t size, int *ret_fd);

#endif
