/* main.c - forqd: parse flags, fork the forkserver while still single-threaded, run the broker
 * with the dict service attached.
 * With --forkserver-fd (internal) this process is a re-executed forkserver instead. */
#include "broker.h"
#include "access.h"
#include "config.h"
#include "forkserver.h"
#include "log.h"
#include "proctitle.h"
#include "service.h"

#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Every client connection is a descriptor, and libzmq aborts when it cannot accept one: take
 * the whole hard limit (a soft limit of 1,024, systemd's default, is ~1,000 clients), and say
 * when even that is small. */
static void raise_fd_limit(void)
{
    struct rlimit r;

    if (getrlimit(RLIMIT_NOFILE, &r) < 0)
        return;
    if (r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
        getrlimit(RLIMIT_NOFILE, &r);
    }
    if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur < 4096)
        log_warn("the open-file limit is %llu: forqd can serve fewer than that many clients at "
                 "once; raise it (LimitNOFILE= in the unit, ulimit -n)",
                 (unsigned long long)r.rlim_cur);
}

int main(int argc, char **argv)
{
    config_t cfg;
    sigset_t mask;
    pid_t fs_pid;
    int fs_fd, r, status;

    /* ps shows "forqd: broker", "forqd: forkserver", "forqd: worker ..." (proctitle.h): the
     * command line's memory becomes the title's, and from here on argv is a copy */
    argv = proctitle_init(argc, argv);
    r = config_parse(&cfg, argc, argv);
    if (r != 0) {
        config_done(&cfg);
        return r > 0 ? 0 : 1;
    }
    if (cfg.forkserver_fd >= 0)
        forkserver_main(&cfg, cfg.forkserver_fd);
    if (cfg.check_config) {
        r = config_check(&cfg);
        if (r == 0)
            config_print(&cfg, stdout);
        config_done(&cfg);
        return r == 0 ? 0 : 1;
    }
    log_setup(cfg.log_level, "forqd");
    if (cfg.show_key) {
        char pub[FORQ_KEY_Z85], sec[FORQ_KEY_Z85], path[4096];
        bool made;
        r = access_server_key(&cfg, pub, sec, &made);
        if (r == 0 && made) {
            config_server_key_path(&cfg, path, sizeof(path));
            fprintf(stderr, "forqd: made a new key pair in %s\n", path);
        }
        if (r == 0)
            printf("%s\n", pub);
        explicit_bzero(sec, sizeof(sec));
        config_done(&cfg);
        return r == 0 ? 0 : 1;
    }
    proctitle_set("forqd: broker");
    raise_fd_limit();
    if (config_derive(&cfg) < 0) {
        config_done(&cfg);
        return 1;
    }
    /* blocked before any thread exists, so that every ZeroMQ thread inherits the mask and the
     * signals reach only the broker's signalfd */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    r = forkserver_fork(&cfg, &fs_pid, &fs_fd);
    if (r < 0) {
        fprintf(stderr, "forqd: cannot fork the forkserver: %s\n", strerror(-r));
        config_done(&cfg);
        return 1;
    }
    broker_t *b = broker_new(&cfg, fs_pid, fs_fd);
    dict_service_t *dict = b ? dict_service_new(b, &cfg) : NULL;
    status = dict ? broker_run(b) : 1;
    dict_service_destroy(&dict);
    broker_destroy(&b);
    config_done(&cfg);
    return status;
}
