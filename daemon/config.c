/* config.c - forqd's settings: defaults, a config file (INI, read with inih) and flags, which
 * win. Every setting has one name, the long flag's; errors name the flag, or the file and line,
 * and what the setting takes. */
#include "config.h"

#include "dictlog.h"

#include "endpoint.h"
#include "forq_config.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
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
    "                              them; repeatable; default: the plugin directory\n"
    "                              " FORQ_PLUGINDIR "\n"
    "                              if it exists (any --tasks replaces it)\n"
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
    "      --client-backlog-bytes B  bytes of replies forqd may hold for one client that\n"
    "                              does not read before its submits are rejected (default\n"
    "                              268435456)\n"
    "      --grace SECONDS         on SIGTERM, how long running jobs may finish before they\n"
    "                              are cancelled (default 10)\n"
    "      --cancel-grace MS       a cancelled running job's task is told (it sees\n"
    "                              forq_task_cancelled) and may stop by itself within MS\n"
    "                              before its worker is killed (default 0: killed at once)\n"
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
    "      --clients FILE          the clients allowed on tcp endpoints: CURVE public keys,\n"
    "                              names and rights (default: `clients` beside the config\n"
    "                              file, see forqd(8) \"Remote clients\")\n"
    "      --server-key FILE       forqd's CURVE key pair, made at the first start when\n"
    "                              absent (default: server.key in --state-dir, else in\n"
    "                              $STATE_DIRECTORY (systemd), else beside the clients file)\n"
    "      --insecure-tcp          serve tcp endpoints in plaintext, without keys: anyone\n"
    "                              who reaches the port has every right (a warning at start)\n"
    "      --ipc-group GROUP       let GROUP use the ipc endpoints (socket and forqd's\n"
    "                              runtime directory 0770); default: this user only\n"
    "      --python-import MODULE  import MODULE in the forkserver and serve its\n"
    "                              @forq.task functions as tasks; repeatable\n"
    "      --python-task MOD:FUNC  serve function FUNC of module MOD as the task\n"
    "                              MOD.FUNC; repeatable\n"
    "      --python-path DIR       put DIR first on Python's module path; repeatable\n"
    "      --python-allow-threads  import modules that start threads all the same (a\n"
    "                              forkserver with threads may fork broken workers)\n"
    "      --python-runtime FILE   the Python task runtime (default\n"
    "                              " FORQ_PYTHON_RUNTIME ")\n"
    "      --node-listen EP        accept worker nodes on EP (tcp://HOST:PORT, CURVE: their\n"
    "                              keys need the node role in the clients file); repeatable\n"
    "      --join EP               run as a node of the head forqd at EP (tcp://HOST:PORT)\n"
    "      --head-key KEY          the head's CURVE public key (its forqd --show-key)\n"
    "      --tag NAME              a tag this forqd's workers have (submit option tags);\n"
    "                              repeatable\n"
    "      --node-name NAME        the name a node joins under (default: the host name)\n"
    "      --heartbeat MS          head: the heartbeat interval of the node link; a node\n"
    "                              silent for 3 of them is lost (default 1000)\n"
    "      --node-grace SECONDS    node: how long jobs keep running after the head is lost,\n"
    "                              waiting for a rejoin, before they are cancelled (default 30)\n"
    "  -c, --config FILE           read settings from FILE (INI: every option above as\n"
    "                              `name = value`, repeatable ones on several lines);\n"
    "                              default " FORQ_CONFIG_DEFAULT " if it exists; flags win\n"
    "      --show-key              print forqd's CURVE public key (for clients'\n"
    "                              --server-key), making the key pair if absent, and exit\n"
    "      --check-config          check the configuration, print it as it would be used\n"
    "                              and exit (0 if good, 1 with the error)\n"
    "  -h, --help                  print this help and exit\n"
    "  -V, --version               print the version and exit\n"
    "\n"
    "Signals: SIGTERM or SIGINT stops accepting jobs, lets running jobs finish within the\n"
    "grace time, cancels the rest, answers every job and exits 0. A second one skips the\n"
    "grace time. SIGHUP reloads the configuration and the plugins (a bad one is refused).\n"
    "Exit status: 0 after a clean stop, 1 on a start-up error (the message says which).\n";

enum {
    OPT_ALLOW_EXEC = 1000,
    OPT_QUEUE_MAX,
    OPT_CLIENT_QUEUE_MAX,
    OPT_CLIENT_HWM,
    OPT_CLIENT_BACKLOG_BYTES,
    OPT_GRACE,
    OPT_CANCEL_GRACE,
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
    OPT_CHECK_CONFIG,
    OPT_CLIENTS,
    OPT_SERVER_KEY,
    OPT_INSECURE_TCP,
    OPT_IPC_GROUP,
    OPT_SHOW_KEY,
    OPT_PYTHON_PATH,
    OPT_PYTHON_IMPORT,
    OPT_PYTHON_TASK,
    OPT_PYTHON_ALLOW_THREADS,
    OPT_PYTHON_RUNTIME,
    OPT_NODE_LISTEN,
    OPT_JOIN,
    OPT_HEAD_KEY,
    OPT_TAG,
    OPT_NODE_NAME,
    OPT_HEARTBEAT,
    OPT_NODE_GRACE,
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

/* A flag without a value; a config file says yes or no. */
static int yes_no(const char *what, const char *arg, bool *ret)
{
    if (!arg || strcmp(arg, "yes") == 0 || strcmp(arg, "true") == 0) {
        *ret = true;
    } else if (strcmp(arg, "no") == 0 || strcmp(arg, "false") == 0) {
        *ret = false;
    } else {
        fprintf(stderr, "forqd: %s takes yes or no, not '%s'\n", what, arg);
        return -EINVAL;
    }
    return 0;
}

/* A dotted Python name: identifiers (ASCII) joined by dots. */
static bool py_name_ok(const char *s, size_t n, bool dots)
{
    bool start = true;

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.' && dots && !start && i + 1 < n) {
            start = true;
            continue;
        }
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (!start && c >= '0' && c <= '9')))
            return false;
        start = false;
    }
    return true;
}

static bool endpoint_ok(const char *ep)
{
    return strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "tcp://", 6) == 0;
}

static const struct option long_opts[] = {
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
    {"client-backlog-bytes", required_argument, NULL, OPT_CLIENT_BACKLOG_BYTES},
    {"grace", required_argument, NULL, OPT_GRACE},
    {"cancel-grace", required_argument, NULL, OPT_CANCEL_GRACE},
    {"max-payload", required_argument, NULL, OPT_MAX_PAYLOAD},
    {"retain", required_argument, NULL, OPT_RETAIN},
    {"retain-seconds", required_argument, NULL, OPT_RETAIN_SECONDS},
    {"retain-bytes", required_argument, NULL, OPT_RETAIN_BYTES},
    {"dict-max-keys", required_argument, NULL, OPT_DICT_MAX_KEYS},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"fsync", required_argument, NULL, OPT_FSYNC},
    {"dict-max-value", required_argument, NULL, OPT_DICT_MAX_VALUE},
    {"dict-max-bytes", required_argument, NULL, OPT_DICT_MAX_BYTES},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"server-key", required_argument, NULL, OPT_SERVER_KEY},
    {"insecure-tcp", no_argument, NULL, OPT_INSECURE_TCP},
    {"ipc-group", required_argument, NULL, OPT_IPC_GROUP},
    {"python-path", required_argument, NULL, OPT_PYTHON_PATH},
    {"python-import", required_argument, NULL, OPT_PYTHON_IMPORT},
    {"python-task", required_argument, NULL, OPT_PYTHON_TASK},
    {"python-allow-threads", no_argument, NULL, OPT_PYTHON_ALLOW_THREADS},
    {"python-runtime", required_argument, NULL, OPT_PYTHON_RUNTIME},
    {"node-listen", required_argument, NULL, OPT_NODE_LISTEN},
    {"join", required_argument, NULL, OPT_JOIN},
    {"head-key", required_argument, NULL, OPT_HEAD_KEY},
    {"tag", required_argument, NULL, OPT_TAG},
    {"node-name", required_argument, NULL, OPT_NODE_NAME},
    {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
    {"node-grace", required_argument, NULL, OPT_NODE_GRACE},
    /* the options above are the settings a config file may hold; these are not */
    {"config", required_argument, NULL, 'c'},
    {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
    {"show-key", no_argument, NULL, OPT_SHOW_KEY},
    {"forkserver-fd", required_argument, NULL, OPT_FORKSERVER_FD},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};
/* The settings a config file may hold: the entries of long_opts before --config. */
static bool is_setting(int i)
{
    for (int k = 0; k <= i; k++)
        if (long_opts[k].val == 'c')
            return false;
    return long_opts[i].name != NULL;
}

static void defaults(config_t *cfg)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    memset(cfg, 0, sizeof(*cfg));
    cfg->workers = cores > 0 ? cores : 1;
    cfg->prefetch = 16;
    cfg->log_level = LOG_INFO;
    cfg->queue_max = 1000000;
    cfg->client_queue_max = 100000;
    cfg->client_hwm = 100000;
    cfg->client_backlog_bytes = 256L << 20;
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
    cfg->heartbeat_ms = 1000;
    cfg->node_grace_ms = 30000;
}

/* Where a setting came from, for --check-config's errors: "FILE:LINE" of "FILE:LINE: name",
 * or the flag itself. Static storage: copy it. */
static const char *where_of(const char *what)
{
    static char buf[4200];
    const char *colon = strstr(what, ": ");

    snprintf(buf, sizeof(buf), "%.*s", colon ? (int)(colon - what) : (int)strlen(what), what);
    return buf;
}

/* Apply one setting. `what` names it in errors: "--workers" for a flag, "FILE:LINE: workers"
 * for a line of a config file. Returns 0 or -EINVAL after printing the error. */
static int set_option(config_t *cfg, int code, const char *what, const char *arg)
{
    long v;

    switch (code) {
    case 'l':
        if (!endpoint_ok(arg)) {
            fprintf(stderr, "forqd: %s takes ipc://PATH or tcp://HOST:PORT, not '%s'\n", what, arg);
            return -EINVAL;
        }
        strv_push(&cfg->listen, arg);
        return 0;
    case 'w':
        return number(what, arg, 1, 4096, &cfg->workers);
    case 't':
        strv_push(&cfg->tasks, arg);
        strv_push(&cfg->tasks_where, where_of(what));
        return 0;
    case 'm':
        return number(what, arg, 0, 1000000000, &cfg->max_jobs_per_worker);
    case OPT_PREFETCH:
        return number(what, arg, 0, 1024, &cfg->prefetch);
    case 'L':
        if ((cfg->log_level = log_level_from(arg)) < 0) {
            fprintf(stderr, "forqd: %s takes error, warning, notice, info or debug, not '%s'\n",
                    what, arg);
            return -EINVAL;
        }
        return 0;
    case OPT_ALLOW_EXEC:
        strv_push(&cfg->exec_allow, arg);
        return 0;
    case OPT_QUEUE_MAX:
        return number(what, arg, 1, 100000000, &cfg->queue_max);
    case OPT_CLIENT_QUEUE_MAX:
        return number(what, arg, 1, 100000000, &cfg->client_queue_max);
    case OPT_CLIENT_HWM:
        return number(what, arg, 1, 10000000, &cfg->client_hwm);
    case OPT_CLIENT_BACKLOG_BYTES:
        return number(what, arg, 1, LONG_MAX, &cfg->client_backlog_bytes);
    case OPT_GRACE:
        if (number(what, arg, 0, 86400, &v) < 0)
            return -EINVAL;
        cfg->grace_ms = v * 1000;
        return 0;
    case OPT_CANCEL_GRACE:
        return number(what, arg, 0, 3600000, &cfg->cancel_grace_ms);
    case OPT_MAX_PAYLOAD:
        return number(what, arg, 1024, 1L << 30, &cfg->max_payload);
    case OPT_RETAIN:
        return number(what, arg, 0, 10000000, &cfg->retain_count);
    case OPT_RETAIN_SECONDS:
        if (number(what, arg, 0, 31536000, &v) < 0)
            return -EINVAL;
        cfg->retain_ms = v * 1000;
        return 0;
    case OPT_RETAIN_BYTES:
        return number(what, arg, 0, 1L << 40, &cfg->retain_bytes);
    case OPT_STATE_DIR:
        free(cfg->state_dir);
        free(cfg->state_dir_where);
        cfg->state_dir = xstrdup(arg);
        cfg->state_dir_where = xstrdup(where_of(what));
        return 0;
    case OPT_FSYNC:
        if ((cfg->fsync_policy = config_fsync_from(arg)) < 0) {
            fprintf(stderr, "forqd: %s takes always, everysec or no, not '%s'\n", what, arg);
            return -EINVAL;
        }
        return 0;
    case OPT_DICT_MAX_KEYS:
        return number(what, arg, 1, 1L << 32, &cfg->dict_max_keys);
    case OPT_DICT_MAX_VALUE:
        return number(what, arg, 16, 1L << 30, &cfg->dict_max_value);
    case OPT_DICT_MAX_BYTES:
        return number(what, arg, 1024, 1L << 40, &cfg->dict_max_bytes);
    case OPT_CLIENTS:
        free(cfg->clients_file);
        cfg->clients_file = xstrdup(arg);
        return 0;
    case OPT_SERVER_KEY:
        free(cfg->server_key);
        cfg->server_key = xstrdup(arg);
        return 0;
    case OPT_INSECURE_TCP:
        return yes_no(what, arg, &cfg->insecure_tcp);
    case OPT_IPC_GROUP:
        free(cfg->ipc_group);
        cfg->ipc_group = xstrdup(arg);
        return 0;
    case OPT_PYTHON_PATH:
        strv_push(&cfg->python_path, arg);
        return 0;
    case OPT_PYTHON_IMPORT:
        if (!py_name_ok(arg, strlen(arg), true)) {
            fprintf(stderr, "forqd: %s takes a module name such as tasks or pkg.tasks, not '%s'\n",
                    what, arg);
            return -EINVAL;
        }
        strv_push(&cfg->python_import, arg);
        return 0;
    case OPT_PYTHON_TASK: {
        const char *colon = strchr(arg, ':');
        if (!colon || !py_name_ok(arg, (size_t)(colon - arg), true) ||
            !py_name_ok(colon + 1, strlen(colon + 1), false) ||
            !wire_task_is_valid(arg, strlen(arg))) {
            fprintf(stderr,
                    "forqd: %s takes MODULE:FUNCTION (a function of the module itself; 64 "
                    "characters at most), not '%s'\n",
                    what, arg);
            return -EINVAL;
        }
        strv_push(&cfg->python_task, arg);
        return 0;
    }
    case OPT_PYTHON_ALLOW_THREADS:
        return yes_no(what, arg, &cfg->python_allow_threads);
    case OPT_PYTHON_RUNTIME:
        free(cfg->python_runtime);
        cfg->python_runtime = xstrdup(arg);
        return 0;
    case OPT_NODE_LISTEN:
        if (strncmp(arg, "tcp://", 6) != 0 && strncmp(arg, "ipc://", 6) != 0) {
            fprintf(stderr, "forqd: %s takes tcp://HOST:PORT (or ipc://PATH), not '%s'\n", what,
                    arg);
            return -EINVAL;
        }
        strv_push(&cfg->node_listen, arg);
        return 0;
    case OPT_JOIN:
        if (strncmp(arg, "tcp://", 6) != 0 && strncmp(arg, "ipc://", 6) != 0) {
            fprintf(stderr, "forqd: %s takes the head's node endpoint, tcp://HOST:PORT, not '%s'\n",
                    what, arg);
            return -EINVAL;
        }
        free(cfg->join);
        cfg->join = xstrdup(arg);
        return 0;
    case OPT_HEAD_KEY:
        if (strlen(arg) != 40) {
            fprintf(stderr,
                    "forqd: %s takes the head's public key, 40 Z85 characters (its forqd "
                    "--show-key), not '%s'\n",
                    what, arg);
            return -EINVAL;
        }
        free(cfg->head_key);
        cfg->head_key = xstrdup(arg);
        return 0;
    case OPT_TAG:
        if (!wire_id_is_valid(arg, strlen(arg)) || strchr(arg, ',')) {
            fprintf(stderr, "forqd: %s takes a name of 1-64 of A-Z a-z 0-9 . _ : -, not '%s'\n",
                    what, arg);
            return -EINVAL;
        }
        strv_push(&cfg->tags, arg);
        return 0;
    case OPT_NODE_NAME:
        if (!wire_id_is_valid(arg, strlen(arg))) {
            fprintf(stderr, "forqd: %s takes a name of 1-64 of A-Z a-z 0-9 . _ : -, not '%s'\n",
                    what, arg);
            return -EINVAL;
        }
        free(cfg->node_name);
        cfg->node_name = xstrdup(arg);
        return 0;
    case OPT_HEARTBEAT:
        return number(what, arg, 10, 600000, &cfg->heartbeat_ms);
    case OPT_NODE_GRACE:
        if (number(what, arg, 0, 86400, &v) < 0)
            return -EINVAL;
        cfg->node_grace_ms = v * 1000;
        return 0;
    case OPT_FORKSERVER_FD:
        if (number(what, arg, 0, 65535, &v) < 0)
            return -EINVAL;
        cfg->forkserver_fd = (int)v;
        return 0;
    }
    return -EINVAL;
}

/* ---- the config file ---- */

typedef struct {
    config_t *cfg;
    const char *path;
    FILE *fp;
    int line;    /* of the last line read */
    bool failed; /* an error was printed */
} ini_state_t;

/* inih's reader, counting lines so that errors can name theirs */
static char *read_line(char *str, int num, void *stream)
{
    ini_state_t *st = stream;
    char *r = fgets(str, num, st->fp);
    if (r)
        st->line++;
    return r;
}

static int on_setting(void *user, const char *section, const char *name, const char *value)
{
    ini_state_t *st = user;
    char what[4200];

    snprintf(what, sizeof(what), "%s:%d: %s", st->path, st->line, name);
    if (*section && strcmp(section, "forqd") != 0) {
        fprintf(stderr,
                "forqd: %s:%d: unknown section [%s]; settings go at the top or under "
                "[forqd]\n",
                st->path, st->line, section);
        st->failed = true;
        return 0;
    }
    char key[64];
    size_t kl = strlen(name);
    if (kl >= sizeof(key))
        kl = sizeof(key) - 1;
    for (size_t i = 0; i < kl; i++) /* insecure_tcp = insecure-tcp */
        key[i] = name[i] == '_' ? '-' : name[i];
    key[kl] = '\0';
    for (int i = 0; is_setting(i); i++) {
        if (strcmp(long_opts[i].name, key) == 0) {
            if (!*value) {
                fprintf(stderr, "forqd: %s needs a value\n", what);
                st->failed = true;
                return 0;
            }
            if (set_option(st->cfg, long_opts[i].val, what, value) < 0) {
                st->failed = true;
                return 0;
            }
            return 1;
        }
    }
    fprintf(stderr, "forqd: %s:%d: unknown setting '%s'; see forqd --help for the names\n",
            st->path, st->line, name);
    st->failed = true;
    return 0;
}

/* Load a config file. A missing file is an error only when `required`. 0 or -errno/-EINVAL. */
static int load_file(config_t *cfg, const char *path, bool required)
{
    ini_state_t st = {cfg, path, NULL, 0, false};
    int r;

    if (!(st.fp = fopen(path, "r"))) {
        if (errno == ENOENT && !required)
            return 0;
        r = -errno;
        fprintf(stderr, "forqd: cannot read the config file %s: %s\n", path, strerror(errno));
        return r;
    }
    r = ini_parse_stream(read_line, &st, on_setting, &st);
    fclose(st.fp);
    if (r > 0 && !st.failed)
        fprintf(stderr,
                "forqd: %s:%d: not a setting (want `name = value`, a [section] or a "
                "# comment)\n",
                path, r);
    if (r != 0)
        return -EINVAL;
    free(cfg->config_file);
    cfg->config_file = xstrdup(path);
    return 0;
}

/* The repeatable settings: a flag's values replace the file's. */
static const int list_codes[] = {'l',
                                 't',
                                 OPT_ALLOW_EXEC,
                                 OPT_PYTHON_PATH,
                                 OPT_PYTHON_IMPORT,
                                 OPT_PYTHON_TASK,
                                 OPT_NODE_LISTEN,
                                 OPT_TAG};
#define N_LISTS (sizeof(list_codes) / sizeof(list_codes[0]))

static int list_index(int code)
{
    for (size_t k = 0; k < N_LISTS; k++)
        if (list_codes[k] == code)
            return (int)k;
    return -1;
}

static strv_t *list_of(config_t *cfg, int code)
{
    strv_t *lists[N_LISTS] = {&cfg->listen,      &cfg->tasks,         &cfg->exec_allow,
                              &cfg->python_path, &cfg->python_import, &cfg->python_task,
                              &cfg->node_listen, &cfg->tags};
    return lists[list_index(code)];
}

int config_parse(config_t *cfg, int argc, char **argv)
{
    const char *config_path = NULL;
    bool cleared[N_LISTS] = {false}; /* list settings given as flags */
    char what[80];
    int c, r;

    defaults(cfg);
    cfg->argc = argc;
    cfg->argv = argv;

    /* first pass: what to do and where the config file is; flags are applied after it */
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:w:t:m:L:c:hV", long_opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case OPT_CHECK_CONFIG:
            cfg->check_config = true;
            break;
        case OPT_SHOW_KEY:
            cfg->show_key = true;
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
        case '?':
            fprintf(stderr, "forqd: unknown option '%s'; see forqd --help\n", argv[optind - 1]);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "forqd: unexpected argument '%s'; forqd takes only options, see --help\n",
                argv[optind]);
        return -EINVAL;
    }
    if ((r = load_file(cfg, config_path ? config_path : FORQ_CONFIG_DEFAULT, config_path != NULL)) <
        0)
        return r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":l:w:t:m:L:c:hV", long_opts, NULL)) != -1) {
        const char *name = NULL;
        if (c == 'c' || c == OPT_CHECK_CONFIG || c == OPT_SHOW_KEY)
            continue;
        for (int i = 0; long_opts[i].name; i++)
            if (long_opts[i].val == c)
                name = long_opts[i].name;
        if (list_index(c) >= 0) {
            int k = list_index(c);
            if (!cleared[k]) { /* flags replace what the file listed */
                strv_free(list_of(cfg, c));
                if (c == 't')
                    strv_free(&cfg->tasks_where);
            }
            cleared[k] = true;
        }
        snprintf(what, sizeof(what), "--%s", name ? name : "?");
        if (set_option(cfg, c, what, optarg) < 0)
            return -EINVAL;
    }
    /* the plugin directory that `pkg-config --variable=plugindir forq-task` announces: a plugin
     * installed there is loaded without a setting, as long as no file or flag lists others */
    struct stat st;
    if (cfg->tasks.n == 0 && stat(FORQ_PLUGINDIR, &st) == 0 && S_ISDIR(st.st_mode)) {
        strv_push(&cfg->tasks, FORQ_PLUGINDIR);
        strv_push(&cfg->tasks_where, "the default plugin directory");
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
        fprintf(stderr,
                "forqd: %s is not a directory owned by this user; remove it or set "
                "XDG_RUNTIME_DIR\n",
                dir);
        return -EPERM;
    }
    return 0;
}

int config_derive(config_t *cfg)
{
    char dir[4096], buf[4200];
    int r;

    if (config_check_nodes(cfg) < 0)
        return -EINVAL;
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
    strv_free(&cfg->tasks_where);
    strv_free(&cfg->exec_allow);
    strv_free(&cfg->python_path);
    strv_free(&cfg->python_import);
    strv_free(&cfg->python_task);
    free(cfg->python_runtime);
    cfg->python_runtime = NULL;
    free(cfg->state_dir);
    free(cfg->state_dir_where);
    free(cfg->config_file);
    free(cfg->clients_file);
    free(cfg->server_key);
    free(cfg->ipc_group);
    strv_free(&cfg->node_listen);
    strv_free(&cfg->tags);
    free(cfg->join);
    free(cfg->head_key);
    free(cfg->node_name);
    cfg->state_dir = cfg->config_file = cfg->clients_file = cfg->server_key = cfg->ipc_group = NULL;
}

bool config_exec_allowed(const config_t *cfg, const char *prog)
{
    for (size_t i = 0; i < cfg->exec_allow.n; i++)
        if (strcmp(cfg->exec_allow.items[i], prog) == 0)
            return true;
    return false;
}
