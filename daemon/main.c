/* main.c - forqd: parse flags, fork the forkserver while still single-threaded, run the broker
 * with the dict service attached.
 * With --forkserver-fd (internal) this process is a re-executed forkserver instead. */
#include "broker.h"
#include "config.h"
#include "forkserver.h"
#include "log.h"
#include "service.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    config_t cfg;
    sigset_t mask;
    pid_t fs_pid;
    int fs_fd, r, status;

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
