/* config.c - forqd's flags. Every flag has a long form; errors name the flag and what it takes. */
#include "config.h"

#include "dictlog.h"

#include "endpoint.h"
#include "forq_config.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "Usage: forqd [OPTION]...\n"
    "Run the forq broker in the foreground: a pool of worker processes that runs the jobs\n"
    "clients submit over ZeroMQ. With no options it listens on\n"
    "ipc://$XDG_RUNTIME_DIR/forq/forqd.sock (or ipc:///tmp/forq-UID/forqd.sock).\n"
    "\n"
    "  -l, --listen EP             bind a client endpoint (ipc://PATH or tcp://HOST:PORT);\n"
    "                              repeatable; default: the ipc endpoint above\n"
    "  -w, --workers N             worker processes (default: number of cores)\n"
    "  -t, --tasks PATH            load task plugins from a .so file or a directory of\n"
    "                              them; repeatable\n"
    "  -m, --max-jobs-per-worker N replace a worker after N jobs (default 0: never)\n"
    "      --prefetch N            jobs of a short task (under 1 ms on average) a busy worker\n"
    "                              may hold beyond the one it runs (default 16; 0: none)\n"
    "  -L, --log-level LEVEL       error, warning, notice, info (default) or debug\n"
    "      --allow-exec PROGRAM    enable the exec task for PROGRAM (a name or an absolute\n"
    "                              path); repeatable; exec is off unless given\n"
    "      --queue-max N           queued jobs in all before submits are rejected\n"
    "                              (default 1000000)\n"
    "      --client-queue-max N    unfinished jobs of one client before its submits are\n"
    "                              rejected (default 100000)\n"
    "      --client-hwm N          replies ZeroMQ may buffer for one client; past it forqd\n"
    "                              holds them (counted against --client-queue-max) until\n"
    "                              the client reads (default 100000)\n"
    "      --grace SECONDS         on SIGTERM, how long running jobs may finish before they\n"
    "                              are cancelled (default 10)\n"
    "      --max-payload BYTES     largest args or result frame (default 67108864)\n"
    "      --retain N              finished jobs remembered, with their results, for\n"
    "                              status, cancel and fetch (default 10000)\n"
    "      --retain-seconds S      and for how long (default 600)\n"
    "      --retain-bytes B        and how many bytes of results in all (default\n"
    "                              268435456); past any limit the oldest are forgotten\n"
    "      --state-dir DIR         keep the dicts durable in DIR (an append-only log,\n"
    "                              replayed at start); without it they live in memory\n"
    "      --fsync POLICY          always (a write is acknowledged once on disk),\n"
    "                              everysec (default: at most a second of writes at risk)\n"
    "                              or no (the kernel decides)\n"
    "      --dict-max-keys N       keys in all dicts together (default 1000000)\n"
    "      --dict-max-value BYTES  bytes of one dict value (default 16777216)\n"
    "      --dict-max-bytes BYTES  bytes of all dict keys and values (default 1073741824);\n"
    "                              past a limit writes fail with a clear error, nothing is\n"
    "                              evicted\n"
    "  -h, --help                  print this help and exit\n"
    "  -V, --version               print the version and exit\n"
    "\n"
    "Signals: SIGTERM or SIGINT stops accepting jobs, lets running jobs finish within the\n"
    "grace time, cancels the rest, answers every job and exits 0. A second one skips the\n"
    "grace time.\n"
    "Exit status: 0 after a clean stop, 1 on a start-up error (the message says which).\n";

enum {
    OPT_ALLOW_EXEC = 1000,
    OPT_QUEUE_MAX,
    OPT_CLIENT_QUEUE_MAX,
    OPT_CLIENT_HWM,
    OPT_GRACE,
    OPT_MAX_PAYLOAD,
    OPT_RETAIN,
    OPT_RETAIN_SECONDS,
    OPT_RETAIN_BYTES,
    OPT_DICT_MAX_KEYS,
    OPT_STATE_DIR,
    OPT_FSYNC,
    OPT_DICT_MAX_VALUE,
    OPT_DICT_MAX_BYTES,
    OPT_FORKSERVER_FD,
    OPT_PREFETCH,
};

static void strv_push(strv_t *v, const char *s)
{
    v->items = xrealloc(v->items, (v->n + 1) * sizeof(char *));
    v->items[v->n++] = xstrdup(s);
}

static void strv_free(strv_t *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->items[i]);
    free(v->items);
    v->items = NULL;
    v->n = 0;
}

static int number(const char *flag, const char *arg, long min, long max, long *ret)
{
    if (parse_long(arg, min, max, ret) < 0) {
        fprintf(stderr, "forqd: %s takes a whole number from %ld to %ld, not '%s'\n", flag, min,
                max, arg);
        return -EINVAL;
    }
    return 0;
}

static bool endpoint_ok(const char *ep)
{
    return strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "tcp://", 6) == 0;
}

int config_parse(config_t *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"workers", required_argument, NULL, 'w'},
        {"tasks", required_argument, NULL, 't'},
        {"max-jobs-per-worker", required_argument, NULL, 'm'},
        {"prefetch", required_argument, NULL, OPT_PREFETCH},
        {"log-level", required_argument, NULL, 'L'},
        {"allow-exec", required_argument, NULL, OPT_ALLOW_EXEC},
        {"queue-max", required_argument, NULL, OPT_QUEUE_MAX},
        {"client-queue-max", required_argument, NULL, OPT_CLIENT_QUEUE_MAX},
        {"client-hwm", required_argument, NULL, OPT_CLIENT_HWM},
        {"grace", required_argument, NULL, OPT_GRACE},
        {"max-payload", required_argument, NULL, OPT_MAX_PAYLOAD},
        {"retain", required_argument, NULL, OPT_RETAIN},
        {"retain-seconds", required_argument, NULL, OPT_RETAIN_SECONDS},
        {"retain-bytes", required_argument, NULL, OPT_RETAIN_BYTES},
        {"dict-max-keys", required_argument, NULL, OPT_DICT_MAX_KEYS},
        {"state-dir", required_argument, NULL, OPT_STATE_DIR},
        {"fsync", required_argument, NULL, OPT_FSYNC},
        {"dict-max-value", required_argument, NULL, OPT_DICT_MAX_VALUE},
        {"dict-max-bytes", required_argument, NULL, OPT_DICT_MAX_BYTES},
        {"forkserver-fd", required_argument, NULL, OPT_FORKSERVER_FD},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long v;
    int c;

    memset(cfg, 0, sizeof(*cfg));
    cfg->workers = cores > 0 ? cores : 1;
    cfg->prefetch = 16;
    cfg->log_level = LOG_INFO;
    cfg->queue_max = 1000000;
    cfg->client_queue_max = 100000;
    cfg->client_hwm = 100000;
    cfg->grace_ms = 10000;
    cfg->max_payload = WIRE_PAYLOAD_DEF;
    cfg->retain_count = 10000;
    cfg->retain_ms = 600000;
    cfg->retain_bytes = 256L << 20;
    cfg->fsync_policy = FSYNC_EVERYSEC;
    cfg->dict_max_keys = 1000000;
    cfg->dict_max_value = 16L << 20;
    cfg->dict_max_bytes = 1L << 30;
    cfg->forkserver_fd = -1;
    cfg->argc = argc;
    cfg->argv = argv;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:w:t:m:L:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (!endpoint_ok(optarg)) {
                fprintf(stderr, "forqd: --listen takes ipc://PATH or tcp://HOST:PORT, not '%s'\n",
                        optarg);
                return -EINVAL;
            }
            strv_push(&cfg->listen, optarg);
            break;
        case 'w':
            if (number("--workers", optarg, 1, 4096, &cfg->workers) < 0)
                return -EINVAL;
            break;
        case 't':
            strv_push(&cfg->tasks, optarg);
            break;
        case 'm':
            if (number("--max-jobs-per-worker", optarg, 0, 1000000000, &cfg->max_jobs_per_worker) <
                0)
                return -EINVAL;
            break;
        case OPT_PREFETCH:
            if (number("--prefetch", optarg, 0, 1024, &cfg->prefetch) < 0)
                return -EINVAL;
            break;
        case 'L':
            if ((cfg->log_level = log_level_from(optarg)) < 0) {
                fprintf(stderr, "forqd: --log-level takes error, warning, notice, info or debug, "
                                "not '%s'\n", optarg);
                return -EINVAL;
            }
            break;
        case OPT_ALLOW_EXEC:
            strv_push(&cfg->exec_allow, optarg);
            break;
        case OPT_QUEUE_MAX:
            if (number("--queue-max", optarg, 1, 100000000, &cfg->queue_max) < 0)
                return -EINVAL;
            break;
        case OPT_CLIENT_QUEUE_MAX:
            if (number("--client-queue-max", optarg, 1, 100000000, &cfg->client_queue_max) < 0)
                return -EINVAL;
            break;
        case OPT_CLIENT_HWM:
            if (number("--client-hwm", optarg, 1, 10000000, &cfg->client_hwm) < 0)
                return -EINVAL;
            break;
        case OPT_GRACE:
            if (number("--grace", optarg, 0, 86400, &v) < 0)
                return -EINVAL;
            cfg->grace_ms = v * 1000;
            break;
        case OPT_MAX_PAYLOAD:
            if (number("--max-payload", optarg, 1024, 1L << 30, &cfg->max_payload) < 0)
                return -EINVAL;
            break;
        case OPT_RETAIN:
            if (number("--retain", optarg, 0, 10000000, &cfg->retain_count) < 0)
                return -EINVAL;
            break;
        case OPT_RETAIN_SECONDS:
            if (number("--retain-seconds", optarg, 0, 31536000, &v) < 0)
                return -EINVAL;
            cfg->retain_ms = v * 1000;
            break;
        case OPT_RETAIN_BYTES:
            if (number("--retain-bytes", optarg, 0, 1L << 40, &cfg->retain_bytes) < 0)
                return -EINVAL;
            break;
        case OPT_STATE_DIR:
            free(cfg->state_dir);
            cfg->state_dir = xstrdup(optarg);
            break;
        case OPT_FSYNC:
            if ((cfg->fsync_policy = dictlog_policy_from(optarg)) < 0) {
                fprintf(stderr, "forqd: --fsync takes always, everysec or no, not '%s'\n", optarg);
                return -EINVAL;
            }
            break;
        case OPT_DICT_MAX_KEYS:
            if (number("--dict-max-keys", optarg, 1, 1L << 32, &cfg->dict_max_keys) < 0)
                return -EINVAL;
            break;
        case OPT_DICT_MAX_VALUE:
            if (number("--dict-max-value", optarg, 16, 1L << 30, &cfg->dict_max_value) < 0)
                return -EINVAL;
            break;
        case OPT_DICT_MAX_BYTES:
            if (number("--dict-max-bytes", optarg, 1024, 1L << 40, &cfg->dict_max_bytes) < 0)
                return -EINVAL;
            break;
        case OPT_FORKSERVER_FD:
            if (number("--forkserver-fd", optarg, 0, 65535, &v) < 0)
                return -EINVAL;
            cfg->forkserver_fd = (int)v;
            break;
        case 'h':
            fputs(usage, stdout);
            return 1;
        case 'V':
            printf("forqd %s (protocol %d)\n", FORQ_VERSION, WIRE_VERSION);
            return 1;
        case ':':
            fprintf(stderr, "forqd: %s needs a value; see forqd --help\n", argv[optind - 1]);
            return -EINVAL;
        default:
            fprintf(stderr, "forqd: unknown option '%s'; see forqd --help\n", argv[optind - 1]);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "forqd: unexpected argument '%s'; forqd takes only options, see --help\n",
                argv[optind]);
        return -EINVAL;
    }
    return 0;
}

static int make_dir(const char *dir)
{
    struct stat st;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        int r = -errno;
        fprintf(stderr, "forqd: cannot create runtime directory %s: %s\n", dir, strerror(errno));
        return r;
    }
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid()) {
        fprintf(stderr, "forqd: %s is not a directory owned by this user; remove it or set "
                        "XDG_RUNTIME_DIR\n", dir);
        return -EPERM;
    }
    return 0;
}

int config_derive(config_t *cfg)
{
    char dir[4096], buf[4200];
    int r;

    if (endpoint_default_dir(dir, sizeof(dir)) < 0) {
        fprintf(stderr, "forqd: the runtime directory path is too long; set XDG_RUNTIME_DIR\n");
        return -ENAMETOOLONG;
    }
    if (cfg->listen.n == 0) {
        if ((r = make_dir(dir)) < 0)
            return r;
        snprintf(buf, sizeof(buf), "ipc://%s/forqd.sock", dir);
        strv_push(&cfg->listen, buf);
    }
    return 0;
}

void config_done(config_t *cfg)
{
    strv_free(&cfg->listen);
    strv_free(&cfg->tasks);
    strv_free(&cfg->exec_allow);
    free(cfg->state_dir);
    cfg->state_dir = NULL;
}

bool config_exec_allowed(const config_t *cfg, const char *prog)
{
    for (size_t i = 0; i < cfg->exec_allow.n; i++)
        if (strcmp(cfg->exec_allow.items[i], prog) == 0)
            return true;
    return false;
}
