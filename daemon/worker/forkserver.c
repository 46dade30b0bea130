/* forkserver.c - see forkserver.h. One thread, one poll loop over the channel and a signalfd
 * for SIGCHLD. */
#define _GNU_SOURCE
#include "forkserver.h"
#include "forq_build.h"

#include "log.h"
#include "plugins.h"
#include "proctitle.h"
#include "task_ctx.h"
#include "util.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

int forkserver_send_fd(int fd, forkserver_type_t type, int32_t pid, int32_t arg, const void *text,
                       uint32_t len, int pass_fd)
{
    char buf[FS_MSG_MAX];
    forkserver_msg_t m = {type, pid, arg, len};
    struct iovec iov = {buf, sizeof(m) + len};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    if (sizeof(m) + len > sizeof(buf))
        return -EMSGSIZE;
    memcpy(buf, &m, sizeof(m));
    if (len)
        memcpy(buf + sizeof(m), text, len);
    if (pass_fd >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.space;
        mh.msg_controllen = sizeof(ctl.space);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    for (;;) {
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

int forkserver_send(int fd, forkserver_type_t type, int32_t pid, int32_t arg, const void *text,
                    uint32_t len)
{
    return forkserver_send_fd(fd, type, pid, arg, text, len, -1);
}

ssize_t forkserver_recv(int fd, void *buf, size_t size, int *ret_fd)
{
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;

    if (ret_fd)
        *ret_fd = -1;
    for (;;) {
        struct iovec iov = {buf, size};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl.space,
                            .msg_controllen = sizeof(ctl.space)};
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int passed;
                memcpy(&passed, CMSG_DATA(c), sizeof(int));
                if (ret_fd && *ret_fd < 0)
                    *ret_fd = passed;
                else
                    close(passed);
            }
        }
        if (n > 0 && (size_t)n < sizeof(forkserver_msg_t)) {
            if (ret_fd && *ret_fd >= 0)
                close(*ret_fd);
            if (ret_fd)
                *ret_fd = -1;
            return -EBADMSG;
        }
        return n;
    }
}

static void reset_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
}

const forq_plugin_t *forkserver_python_builtin;

/* The forkserver image for Python tasks: forqd-python in the Python runtime's directory, if the
 * configuration wants Python and it is there (a new string), else NULL. */
static char *python_image(const config_t *cfg)
{
    const char *rt, *slash;
    size_t dir, size;
    char *path;

    if (!config_wants_python(cfg))
        return NULL;
    rt = config_python_runtime(cfg);
    slash = strrchr(rt, '/');
    dir = slash ? (size_t)(slash - rt + 1) : 0;
    size = dir + sizeof(FORKSERVER_PYTHON_IMAGE);
    path = xmalloc(size);
    snprintf(path, size, "%.*s%s", (int)dir, rt, FORKSERVER_PYTHON_IMAGE);
    if (access(path, X_OK) < 0) {
        free(path);
        return NULL;
    }
    return path;
}

int forkserver_fork(const config_t *cfg, pid_t *ret_pid, int *ret_fd)
{
    int sv[2];
    pid_t parent = getpid(), pid;
    char *image = python_image(cfg);

    if (image) { /* the Python image is a program of its own: exec it */
        free(image);
        return forkserver_exec(cfg, ret_pid, ret_fd);
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid = fork();
    if (pid < 0) {
        int r = -errno;
        close(sv[0]);
        close(sv[1]);
        return r;
    }
    if (pid == 0) {
        close(sv[0]);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(1);
        forkserver_main(cfg, sv[1]);
    }
    close(sv[1]);
    *ret_pid = pid;
    *ret_fd = sv[0];
    return 0;
}

extern char **environ;

/* Append s to the message in buf (len so far, size cap): async-signal-safe. */
static size_t put_text(char *buf, size_t len, size_t size, const char *s)
{
    while (*s && len < size)
        buf[len++] = *s++;
    return len;
}

/* After a failed execve in the child: tell the broker on fd 3 (FAILED, as a forkserver that cannot
 * start does) what could not run and why. Only async-signal-safe calls. */
static void exec_failed(const char *path, bool python, int err)
{
    char msg[1024];
    size_t n = 0;
    const char *why = err == ENOENT    ? "it is not there"
                      : err == EACCES  ? "permission denied"
                      : err == ENOEXEC ? "it is not a program this machine runs"
                      : err == ENOMEM  ? "out of memory"
                                       : "execve failed";

    n = put_text(msg, n, sizeof(msg), "cannot run the forkserver ");
    n = put_text(msg, n, sizeof(msg), path);
    n = put_text(msg, n, sizeof(msg), ": ");
    n = put_text(msg, n, sizeof(msg), why);
    n = put_text(msg, n, sizeof(msg),
                 python ? "; reinstall forq, or remove that file so that forqd loads python.so"
                        : "; restart forqd (was its program replaced or removed?)");
    forkserver_send(3, FS_FAILED, getpid(), err, msg, (uint32_t)n);
}

int forkserver_exec(const config_t *cfg, pid_t *ret_pid, int *ret_fd)
{
    int sv[2];
    pid_t parent = getpid(), pid;
    char **argv, **envp, *image, *build_env;
    char fdarg[32];
    size_t n_env = 0;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    image = python_image(cfg);
    /* everything the child needs is built before fork: after it, only async-signal-safe calls */
    /* the original flags, plus what the broker derived from them (the last flag wins) */
    argv = xcalloc((size_t)cfg->argc + 2, sizeof(char *));
    snprintf(fdarg, sizeof(fdarg), "--forkserver-fd=%d", 3);
    argv[0] = cfg->argv[0];
    argv[1] = fdarg;
    for (int i = 1; i < cfg->argc; i++)
        argv[i + 1] = cfg->argv[i];
    /* the environment, and which build this forqd is (in place of any such entry forqd was
     * given): a forkserver image checks it */
    for (char **e = environ; *e; e++)
        n_env++;
    envp = xcalloc(n_env + 2, sizeof(char *));
    n_env = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, FORKSERVER_BUILD_ENV "=", sizeof(FORKSERVER_BUILD_ENV)) != 0)
            envp[n_env++] = *e;
    build_env = xstrdup(FORKSERVER_BUILD_ENV "=" FORQ_BUILD_ID);
    envp[n_env] = build_env;
    pid = fork();
    if (pid < 0) {
        int r = -errno;
        free(argv);
        free(envp);
        free(build_env);
        free(image);
        close(sv[0]);
        close(sv[1]);
        return r;
    }
    if (pid == 0) {
        sigset_t none;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* fd 3 without close-on-exec (dup2 clears it; when the pair's end is 3 already,
         * fcntl); every other descriptor forqd has is O_CLOEXEC */
        if (sv[1] == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(sv[1], 3) < 0)
            _exit(1);
        execve(image ? image : "/proc/self/exe", argv, envp);
        exec_failed(image ? image : "/proc/self/exe", image != NULL, errno);
        _exit(127);
    }
    free(argv);
    free(envp);
    free(build_env);
    free(image);
    close(sv[1]);
    *ret_pid = pid;
    *ret_fd = sv[0];
    return 0;
}

/* ---- the forkserver process ---- */

static pid_t *kids; /* our unreaped workers */
static size_t n_kids, cap_kids;

static void kids_add(pid_t pid)
{
    if (n_kids == cap_kids) {
        cap_kids = cap_kids ? 2 * cap_kids : 16;
        kids = xrealloc(kids, cap_kids * sizeof(*kids));
    }
    kids[n_kids++] = pid;
}

static bool kids_remove(pid_t pid)
{
    for (size_t i = 0; i < n_kids; i++) {
        if (kids[i] == pid) {
            kids[i] = kids[--n_kids];
            return true;
        }
    }
    return false;
}

static void fail_start(int fd, const char *why) __attribute__((noreturn));
static void fail_start(int fd, const char *why)
{
    forkserver_send(fd, FS_FAILED, getpid(), 0, why, (uint32_t)strlen(why));
    _exit(1);
}

#define HELLO_DOC_MAX 200 /* bytes of a task's doc string the broker is told */

/* HELLO: "name\tdoc\0" for every task (the doc cut short, its tabs and line breaks made
 * spaces; "name\0" alone when it has none). */
static void say_hello(int fd)
{
    char buf[FS_MSG_MAX - sizeof(forkserver_msg_t)];
    size_t len = 0;
    const task_entry_t *t;

    for (size_t i = 0; (t = plugins_at(i)); i++) {
        size_t n = strlen(t->name), d = t->doc ? strnlen(t->doc, HELLO_DOC_MAX) : 0;
        if (len + n + 1 + d + 1 > sizeof(buf))
            fail_start(fd, "too many tasks to report to the broker (names and docs: 64 KiB)");
        memcpy(buf + len, t->name, n);
        len += n;
        if (d) {
            buf[len++] = '\t';
            for (size_t k = 0; k < d; k++)
                buf[len++] =
                    t->doc[k] == '\t' || t->doc[k] == '\n' || t->doc[k] == '\r' ? ' ' : t->doc[k];
        }
        buf[len++] = '\0';
    }
    if (forkserver_send(fd, FS_HELLO, getpid(), 0, buf, (uint32_t)len) < 0)
        _exit(1);
}

static void spawn(const config_t *cfg, int fd, int sfd)
{
    pid_t me = getpid();
    pid_t pid;
    int link[2];

    /* the worker's link to the broker: our end goes to the broker with the SPAWNED report */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, link) < 0) {
        forkserver_send(fd, FS_SPAWN_ERR, 0, errno, NULL, 0);
        return;
    }
    /* the plugins' fork hooks (ABI 2): CPython's PyOS_BeforeFork / PyOS_AfterFork_Parent */
    plugins_before_fork();
    pid = fork();
    if (pid != 0)
        plugins_after_fork_parent();
    if (pid < 0) {
        forkserver_send(fd, FS_SPAWN_ERR, 0, errno, NULL, 0);
        close(link[0]);
        close(link[1]);
        return;
    }
    if (pid == 0) {
        close(fd);
        close(sfd);
        close(link[0]);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != me)
            _exit(1);
        reset_signals();
        free(kids);
        worker_main(cfg, link[1]);
    }
    close(link[1]);
    kids_add(pid);
    forkserver_send_fd(fd, FS_SPAWNED, pid, 0, NULL, 0, link[0]);
    close(link[0]);
}

static void reap(int fd)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (kids_remove(pid))
            forkserver_send(fd, FS_EXITED, pid, status, NULL, 0);
    }
}

void forkserver_main(const config_t *cfg, int fd)
{
    char err[1024];
    sigset_t mask;
    int sfd;

    unsetenv(FORKSERVER_BUILD_ENV); /* forkserver_exec's note to us, not for the tasks */
    log_setup(cfg->log_level, "forkserver");
    proctitle_set("forqd: forkserver");
    proctitle_set_name("forqd-forksrv");
    /* our own session: a terminal's SIGINT reaches only the broker, which drains */
    setsid();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        fail_start(fd, "forkserver cannot create a signalfd");
    fcntl(fd, F_SETFD, FD_CLOEXEC);

    plugins_set_config(cfg);
    if (plugins_register(&builtin_plugin, "builtin", err, sizeof(err)) < 0)
        fail_start(fd, err);
    for (size_t i = 0; i < cfg->tasks.n; i++)
        if (plugins_load(cfg->tasks.items[i], err, sizeof(err)) < 0)
            fail_start(fd, err);
    /* Python tasks: the runtime plugin initialises CPython and imports the modules, here,
     * once, before any worker is forked (daemon/python/pyrt.h) */
    if (config_wants_python(cfg) && forkserver_python_builtin) {
        if (plugins_start(forkserver_python_builtin, FORKSERVER_PYTHON_IMAGE, err, sizeof(err)) < 0)
            fail_start(fd, err);
    } else if (config_wants_python(cfg)) {
        const char *rt = config_python_runtime(cfg);
        log_info("Python tasks: no %s beside %s: its interpreter runs in forqd's forkserver, "
                 "from the shared libpython (slower Python code)",
                 FORKSERVER_PYTHON_IMAGE, rt);
        if (access(rt, R_OK) < 0) {
            snprintf(err, sizeof(err),
                     "python-import and python-task need the Python runtime %s: %s; install "
                     "forq built with libpython3-dev, or set python-runtime",
                     rt, strerror(errno));
            fail_start(fd, err);
        }
        if (plugins_load(rt, err, sizeof(err)) < 0)
            fail_start(fd, err);
    }
    say_hello(fd);

    for (;;) {
        struct pollfd p[2] = {{fd, POLLIN, 0}, {sfd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                ;
            reap(fd);
        }
        if (p[0].revents) {
            forkserver_buf_t u;
            ssize_t n = forkserver_recv(fd, &u, sizeof(u), NULL);
            if (n == 0 || (n < 0 && n != -EAGAIN))
                break; /* the broker is gone: so are we, and our workers */
            if (n < 0)
                continue;
            if (u.m.type == FS_SPAWN)
                spawn(cfg, fd, sfd);
            else if (u.m.type == FS_KILL) {
                for (size_t i = 0; i < n_kids; i++)
                    if (kids[i] == u.m.pid)
                        kill(u.m.pid, u.m.arg);
            }
        }
    }
    for (size_t i = 0; i < n_kids; i++)
        kill(kids[i], SIGKILL);
    while (n_kids > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0 && errno != EINTR)
            break;
        if (pid > 0)
            kids_remove(pid);
    }
    free(kids);
    plugins_unload_all();
    _exit(0);
}
