/* task_exec.c - the exec task: run one of the programs the operator allowed, feed it stdin and
 * collect its exit status, stdout and stderr.
 *
 * exec({"argv": [PROG, ARG...], "stdin": STR|BYTES, "env": {K: V}, "cwd": DIR})
 *   -> {"exit_code": INT|null, "signal": INT|null, "stdout": STR|BYTES, "stderr": STR|BYTES}
 *
 * The worker runs ZeroMQ threads, so the child may only call async-signal-safe functions until
 * execve: everything is prepared before fork. The child gets PR_SET_PDEATHSIG so that killing the
 * worker (cancel, timeout) also ends the program. Output beyond the job's result limit kills the
 * program and fails the job with OutputTooLarge. Without an "env", the program gets only
 * PATH=/usr/local/bin:/usr/bin:/bin. */
#define _GNU_SOURCE
#include "task_ctx.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define SAFE_PATH "/usr/local/bin:/usr/bin:/bin"

typedef struct {
    char **argv;       /* NULL-terminated, owned */
    char **envp;       /* NULL-terminated, owned */
    char *cwd;         /* owned or NULL */
    char *path;        /* resolved program path, owned */
    const char *input; /* stdin bytes, borrowed from args */
    size_t input_len;
} spec_t;

typedef struct {
    char *data; /* owned */
    size_t len; /* bytes held */
    size_t cap; /* bytes allocated */
} buf_t;

static void strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static void spec_done(spec_t *s)
{
    strv_free(s->argv);
    strv_free(s->envp);
    free(s->cwd);
    free(s->path);
}

static char *str_of(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR || memchr(o->via.str.ptr, '\0', o->via.str.size))
        return NULL;
    return xstrndup(o->via.str.ptr, o->via.str.size);
}

static bool key_is(const msgpack_object *k, const char *lit)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(lit) &&
           memcmp(k->via.str.ptr, lit, k->via.str.size) == 0;
}

static int parse_spec(forq_task_ctx_t *ctx, const msgpack_object *m, spec_t *s)
{
    const msgpack_object *argv = NULL, *env = NULL;

    if (m->type != MSGPACK_OBJECT_MAP)
        return forq_task_error(
            ctx, "TypeError",
            "exec() takes a map {\"argv\": [...], \"stdin\"?, \"env\"?, \"cwd\"?}");
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (key_is(&kv->key, "argv"))
            argv = &kv->val;
        else if (key_is(&kv->key, "env"))
            env = &kv->val;
        else if (key_is(&kv->key, "cwd")) {
            if (!(s->cwd = str_of(&kv->val)))
                return forq_task_error(ctx, "TypeError", "exec() 'cwd' must be a string");
        } else if (key_is(&kv->key, "stdin")) {
            if (kv->val.type != MSGPACK_OBJECT_STR && kv->val.type != MSGPACK_OBJECT_BIN)
                return forq_task_error(ctx, "TypeError",
                                       "exec() 'stdin' must be a string or bytes");
            s->input = kv->val.via.str.ptr;
            s->input_len = kv->val.via.str.size;
        } else {
            return forq_task_error(ctx, "TypeError", "exec() got an unknown key '%.*s'",
                                   kv->key.type == MSGPACK_OBJECT_STR ? (int)kv->key.via.str.size
                                                                      : 1,
                                   kv->key.type == MSGPACK_OBJECT_STR ? kv->key.via.str.ptr : "?");
        }
    }
    if (!argv || argv->type != MSGPACK_OBJECT_ARRAY || argv->via.array.size == 0)
        return forq_task_error(ctx, "TypeError",
                               "exec() 'argv' must be a non-empty array of strings");
    s->argv = xcalloc(argv->via.array.size + 1, sizeof(char *));
    for (uint32_t i = 0; i < argv->via.array.size; i++)
        if (!(s->argv[i] = str_of(&argv->via.array.ptr[i])))
            return forq_task_error(ctx, "TypeError", "exec() argv[%u] must be a string without NUL",
                                   i);
    if (env) {
        if (env->type != MSGPACK_OBJECT_MAP)
            return forq_task_error(ctx, "TypeError", "exec() 'env' must be a map of strings");
        s->envp = xcalloc(env->via.map.size + 1, sizeof(char *));
        for (uint32_t i = 0; i < env->via.map.size; i++) {
            _cleanup_(freep) char *k = str_of(&env->via.map.ptr[i].key);
            _cleanup_(freep) char *v = str_of(&env->via.map.ptr[i].val);
            if (!k || !v || !*k || strchr(k, '='))
                return forq_task_error(ctx, "TypeError",
                                       "exec() 'env' entries must be NAME: VALUE strings");
            s->envp[i] = xmalloc(strlen(k) + strlen(v) + 2);
            sprintf(s->envp[i], "%s=%s", k, v);
        }
    } else {
        s->envp = xcalloc(2, sizeof(char *));
        s->envp[0] = xstrdup("PATH=" SAFE_PATH);
    }
    return 0;
}

static int resolve(forq_task_ctx_t *ctx, spec_t *s)
{
    const char *prog = s->argv[0];
    const config_t *cfg = ctx->cfg;

    if (!cfg || cfg->exec_allow.n == 0)
        return forq_task_error(ctx, "PermissionError",
                               "the exec task is disabled; start forqd with --allow-exec PROGRAM");
    if (!config_exec_allowed(cfg, prog))
        return forq_task_error(ctx, "PermissionError",
                               "exec() of '%s' is not allowed; forqd allows only the programs "
                               "named by --allow-exec",
                               prog);
    if (strchr(prog, '/')) {
        s->path = xstrdup(prog);
        return 0;
    }
    char dirs[] = SAFE_PATH;
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char *p = xmalloc(strlen(d) + strlen(prog) + 2);
        sprintf(p, "%s/%s", d, prog);
        if (access(p, X_OK) == 0) {
            s->path = p;
            return 0;
        }
        free(p);
    }
    return forq_task_error(ctx, "FileNotFoundError", "exec(): program '%s' not found in %s", prog,
                           SAFE_PATH);
}

/* Which step of the child failed, reported with its errno through the error pipe. */
enum { STEP_DUP = 1, STEP_CHDIR, STEP_EXEC };

/* Async-signal-safe from fork to execve; reports a failed step and its errno through errfd. */
static void child(const spec_t *s, int in, int out, int err, int errfd)
{
    sigset_t none;
    int e[2] = {STEP_DUP, 0};

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        goto fail;
    e[0] = STEP_CHDIR;
    if (s->cwd && chdir(s->cwd) < 0)
        goto fail;
    e[0] = STEP_EXEC;
    execve(s->path, s->argv, s->envp);
fail:
    e[1] = errno;
    if (write(errfd, e, sizeof(e)) < 0) {
        /* the parent then sees no errno and reports exit code 127 */
    }
    _exit(127);
}

static int buf_add(buf_t *b, const char *d, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 4096;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, d, n);
    b->len += n;
    return 0;
}

static bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        unsigned c = p[i], extra;
        if (c < 0x80)
            extra = 0;
        else if (c >= 0xc2 && c <= 0xdf)
            extra = 1;
        else if (c >= 0xe0 && c <= 0xef)
            extra = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            extra = 3;
        else
            return false;
        if (extra > n - i - 1)
            return false;
        for (unsigned k = 1; k <= extra; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        i += extra + 1;
    }
    return true;
}

static void pack_text(msgpack_packer *out, const char *key, const buf_t *b)
{
    msgpack_pack_str(out, strlen(key));
    msgpack_pack_str_body(out, key, strlen(key));
    if (utf8_valid(b->data ? b->data : "", b->len)) {
        msgpack_pack_str(out, b->len);
        msgpack_pack_str_body(out, b->data, b->len);
    } else {
        msgpack_pack_bin(out, b->len);
        msgpack_pack_bin_body(out, b->data, b->len);
    }
}

static void pack_key(msgpack_packer *out, const char *key)
{
    msgpack_pack_str(out, strlen(key));
    msgpack_pack_str_body(out, key, strlen(key));
}

/* Feed stdin, collect stdout and stderr until both close; -EFBIG when output passes `limit`. */
static int pump(const spec_t *s, int *in, int out, int err, buf_t *o, buf_t *e, size_t limit)
{
    size_t written = 0;
    struct pollfd p[3] = {{*in, POLLOUT, 0}, {out, POLLIN, 0}, {err, POLLIN, 0}};
    char chunk[65536];

    if (s->input_len == 0) {
        close(*in);
        *in = p[0].fd = -1;
    }
    while (p[1].fd >= 0 || p[2].fd >= 0) {
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (p[0].fd >= 0 && p[0].revents) {
            ssize_t n = write(*in, s->input + written, s->input_len - written);
            if (n > 0)
                written += (size_t)n;
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                written = s->input_len; /* EPIPE: the program stopped reading */
            if (written == s->input_len) {
                close(*in);
                *in = p[0].fd = -1;
            }
        }
        for (int i = 1; i < 3; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            ssize_t n = read(p[i].fd, chunk, sizeof(chunk));
            if (n > 0) {
                buf_t *b = i == 1 ? o : e;
                if (o->len + e->len + (size_t)n > limit)
                    return -EFBIG;
                buf_add(b, chunk, (size_t)n);
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                p[i].fd = -1; /* closed by the caller */
            }
        }
    }
    return 0;
}

int task_exec(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    spec_t s = {0};
    buf_t o = {0}, e = {0};
    int in[2] = {-1, -1}, po[2] = {-1, -1}, pe[2] = {-1, -1}, ep[2] = {-1, -1};
    int r = -1, status, failed[2] = {0, 0};
    pid_t pid;

    if (forq_task_arg_range(ctx, args, 1, 1) < 0 ||
        parse_spec(ctx, forq_task_arg(args, 0), &s) < 0 || resolve(ctx, &s) < 0)
        goto out;
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0 ||
        pipe2(ep, O_CLOEXEC) < 0) {
        forq_task_error(ctx, "OSError", "exec(): pipe: %s", strerror(errno));
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        forq_task_error(ctx, "OSError", "exec(): fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0)
        child(&s, in[0], po[1], pe[1], ep[1]);
    close(in[0]), close(po[1]), close(pe[1]), close(ep[1]);
    in[0] = po[1] = pe[1] = ep[1] = -1;
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);

    int pr = pump(&s, &in[1], po[0], pe[0], &o, &e, ctx->max_result);
    if (pr < 0)
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (read(ep[0], failed, sizeof(failed)) != (ssize_t)sizeof(failed))
        failed[0] = 0;
    if (pr == -EFBIG) {
        forq_task_error(ctx, "OutputTooLarge",
                        "exec(): '%s' wrote more than the job's result limit of %zu bytes",
                        s.argv[0], ctx->max_result);
        goto out;
    } else if (pr < 0) {
        forq_task_error(ctx, "OSError", "exec(): %s", strerror(-pr));
        goto out;
    }
    if (failed[0]) {
        const char *type = failed[1] == ENOENT   ? "FileNotFoundError"
                           : failed[1] == EACCES ? "PermissionError"
                                                 : "OSError";
        if (failed[0] == STEP_CHDIR)
            forq_task_error(ctx, type, "exec(): cannot change to directory '%s': %s", s.cwd,
                            strerror(failed[1]));
        else
            forq_task_error(ctx, type, "exec(): cannot run '%s': %s", s.path, strerror(failed[1]));
        goto out;
    }
    msgpack_pack_map(out, 4);
    pack_key(out, "exit_code");
    if (WIFEXITED(status))
        msgpack_pack_int(out, WEXITSTATUS(status));
    else
        msgpack_pack_nil(out);
    pack_key(out, "signal");
    if (WIFSIGNALED(status))
        msgpack_pack_int(out, WTERMSIG(status));
    else
        msgpack_pack_nil(out);
    pack_text(out, "stdout", &o);
    pack_text(out, "stderr", &e);
    r = 0;
out:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (po[i] >= 0)
            close(po[i]);
        if (pe[i] >= 0)
            close(pe[i]);
        if (ep[i] >= 0)
            close(ep[i]);
    }
    free(o.data);
    free(e.data);
    spec_done(&s);
    return r;
}
