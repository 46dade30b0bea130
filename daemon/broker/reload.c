/* reload.c - SIGHUP, see reload.h. */
#define _GNU_SOURCE
#include "reload.h"

#include "access.h"
#include "forkserver.h"
#include "log.h"
#include "notify.h"
#include "pool.h"
#include "stats.h"
#include "util.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct reload {
    broker_t *b;
    pid_t fs_pid;    /* the new forkserver, 0 while no reload is under way */
    int fs_fd;       /* its channel, -1 = none */
    loop_io_t *io;   /* the channel's registration */
    config_t *next;  /* the configuration under way (owned) */
    config_t *owned; /* b->cfg when a reload made it (owned) */
};

static void say_ready(reload_t *r)
{
    char status[160];

    stats_status_line(r->b, status, sizeof(status));
    notify_ready(status);
}

static void stop_new_forkserver(reload_t *r)
{
    loop_io_del(r->b->loop, r->io);
    r->io = NULL;
    if (r->fs_fd >= 0)
        close(r->fs_fd); /* it exits */
    if (r->fs_pid > 0)
        kill(r->fs_pid, SIGKILL);
    r->fs_pid = 0;
    r->fs_fd = -1;
}

static void free_next(reload_t *r)
{
    if (r->next) {
        config_done(r->next);
        free(r->next);
        r->next = NULL;
    }
}

static void refuse(reload_t *r, const char *why)
{
    access_abort(r->b->access);
    log_error("reload refused: %s; forqd goes on with the configuration it had", why);
    stop_new_forkserver(r);
    free_next(r);
    say_ready(r);
}

/* The new forkserver is up with its plugins: switch to it and to the new configuration. */
static void commit(reload_t *r, const char *names, size_t len)
{
    broker_t *b = r->b;
    config_t *n = r->next;

    if (!pool_can_switch(b->pool)) {
        refuse(r, "the workers of earlier reloads are still finishing their jobs");
        return;
    }
    if (listener_rebind(b->listen, n) < 0) {
        refuse(r, "an endpoint cannot be bound");
        return;
    }
    access_commit(b->access);
    loop_io_del(b->loop, r->io);
    r->io = NULL;
    if (r->owned) {
        config_done(r->owned);
        free(r->owned);
    }
    b->cfg = r->owned = n;
    r->next = NULL;
    log_setup(n->log_level, "forqd");
    pool_switch(b->pool, r->fs_pid, r->fs_fd, names, len); /* room: checked above */
    r->fs_pid = 0;
    r->fs_fd = -1;
    log_notice("reloaded: %ld workers, %zu endpoint(s); busy workers of the old plugins finish "
               "their jobs first",
               b->cfg->workers, b->cfg->listen.n);
    say_ready(r);
}

/* The new forkserver's channel: HELLO, FAILED, or its end. */
static void on_input(void *ud, short revents)
{
    reload_t *r = ud;
    forkserver_buf_t u;
    int passed;
    ssize_t n;

    (void)revents;
    if (r->fs_fd < 0)
        return;
    n = forkserver_recv(r->fs_fd, &u, sizeof(u), &passed);
    if (passed >= 0)
        close(passed); /* it forks no workers before the switch */
    if (n == -EAGAIN)
        return;
    if (n > 0 && u.m.type == FS_HELLO) {
        commit(r, forkserver_buf_text(&u), (size_t)n - sizeof(forkserver_msg_t));
    } else if (n > 0 && u.m.type == FS_FAILED) {
        char why[600];
        snprintf(why, sizeof(why), "the new plugins do not load: %.*s", (int)u.m.len,
                 forkserver_buf_text(&u));
        refuse(r, why);
    } else if (n <= 0) {
        refuse(r, "the new forkserver died during start-up");
    }
}

static void on_sighup(void *ud, int signo)
{
    reload_t *r = ud;
    broker_t *b = r->b;
    const config_t *o = b->cfg;
    config_t *n;

    (void)signo;
    if (r->next) {
        log_warn("SIGHUP: a reload is already under way; this one is ignored");
        return;
    }
    if (b->draining) {
        log_warn("SIGHUP: forqd is stopping; no reload");
        return;
    }
    notify_reloading();
    log_notice("SIGHUP: reloading the configuration%s%s", o->config_file ? " from " : "",
               o->config_file ? o->config_file : "");
    n = r->next = xcalloc(1, sizeof(*n));
    /* the same flags, the file as it is now; errors were printed, one line each */
    if (config_parse(n, o->argc, o->argv) != 0 || config_derive(n) < 0 || config_check(n) < 0) {
        refuse(r, "the configuration has an error (the line above says which)");
        return;
    }
    if (access_prepare(b->access, n) < 0) {
        refuse(r, "the clients file has an error (the line above says which)");
        return;
    }
    /* what was set up once at start does not change in place: say so */
    if (n->state_dir ? !o->state_dir || strcmp(n->state_dir, o->state_dir) != 0
                     : o->state_dir != NULL)
        log_warn("reload: a new state-dir takes effect at the next start");
    if (n->fsync_policy != o->fsync_policy || n->dict_max_keys != o->dict_max_keys ||
        n->dict_max_value != o->dict_max_value || n->dict_max_bytes != o->dict_max_bytes)
        log_warn("reload: new fsync and dict-max-* settings take effect at the next start");
    if (n->max_payload != o->max_payload || n->client_hwm != o->client_hwm)
        log_warn("reload: new max-payload and client-hwm settings take effect at the next start");
    /* the plugins are loaded afresh by a new forkserver; the reload completes at its HELLO */
    if (forkserver_exec(n, &r->fs_pid, &r->fs_fd) < 0) {
        refuse(r, "cannot start a new forkserver");
        return;
    }
    r->io = loop_io_add(b->loop, NULL, r->fs_fd, ZMQ_POLLIN, ORDER_OLD_FS, on_input, r);
}

bool reload_reaped(reload_t *r, pid_t pid)
{
    if (!r || pid == 0 || pid != r->fs_pid)
        return false;
    r->fs_pid = 0; /* reaped: do not kill its pid again */
    refuse(r, "the new forkserver died during start-up");
    return true;
}

reload_t *reload_new(broker_t *b)
{
    reload_t *r = xcalloc(1, sizeof(*r));

    r->b = b;
    r->fs_fd = -1;
    loop_signal_add(b->loop, SIGHUP, ORDER_SIGNALS, on_sighup, r);
    return r;
}

void reload_destroy(reload_t **rp)
{
    reload_t *r = *rp;
    int status;

    if (!r)
        return;
    if (r->fs_pid > 0) {
        pid_t pid = r->fs_pid;
        stop_new_forkserver(r);
        waitpid(pid, &status, 0);
    } else if (r->fs_fd >= 0) {
        close(r->fs_fd);
    }
    free_next(r);
    if (r->owned) {
        if (r->b->cfg == r->owned)
            r->b->cfg = NULL;
        config_done(r->owned);
        free(r->owned);
    }
    free(r);
    *rp = NULL;
}
