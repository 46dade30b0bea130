/* pyfs_main.c - forqd-python, the forkserver image for Python tasks.
 *
 * forqd starts this program, never a user: when the configuration asks for Python tasks and
 * it is installed beside python.so, forqd execs it (with --forkserver-fd and forqd's own
 * arguments) instead of running the forkserver in its own image (forkserver.h). It is forqd's
 * forkserver and workers (daemon/worker/) with the Python runtime (pyrt.h) and CPython linked
 * in statically, from the distribution's position-dependent libpython3.X.a: the code its own
 * python3 binary is built from, where the shared libpython that python.so links pays for
 * position-independent code and symbol interposition on every call inside the interpreter
 * (about 9 % of a CPU-bound Python task's time here: pyrt.h). */
#include "pyrt.h" /* Python.h first: it sets the feature macros */

#include "config.h"
#include "forkserver.h"
#include "proctitle.h"

#include "forq_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    config_t cfg;
    int r;

    argv = proctitle_init(argc, argv);
    r = config_parse(&cfg, argc, argv);
    if (r != 0) {
        config_done(&cfg);
        return r > 0 ? 0 : 1;
    }
    if (cfg.forkserver_fd < 0) {
        fprintf(stderr, "forqd-python: this is forqd's forkserver for Python tasks and only "
                        "forqd starts it; run forqd with python-import instead\n");
        config_done(&cfg);
        return 2;
    }
    /* forqd and this image must come from one build: the forkserver's messages and the worker
     * link are internal, not a stable interface */
    const char *theirs = getenv(FORKSERVER_BUILD_ENV);
    if (!theirs || strcmp(theirs, FORQ_BUILD_ID) != 0) {
        char why[512];
        int n = snprintf(why, sizeof(why),
                         "forqd-python is from build %s, forqd from build %s: they were "
                         "installed apart (an upgrade?); restart forqd, or reinstall forq",
                         FORQ_BUILD_ID, theirs ? theirs : "(unknown)");
        forkserver_send(cfg.forkserver_fd, FS_FAILED, getpid(), 0, why,
                        (uint32_t)(n < (int)sizeof(why) ? n : (int)sizeof(why) - 1));
        config_done(&cfg);
        return 1;
    }
    forkserver_python_builtin = &pyrt_builtin_plugin;
    forkserver_main(&cfg, cfg.forkserver_fd);
}
