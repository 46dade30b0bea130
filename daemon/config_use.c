/* config_use.c - what is made of a parsed configuration (config.c reads it): the checks of
 * --check-config, the configuration printed as a file that reads back the same, and what is
 * derived from it: the clients file and key paths, whether CURVE and Python are wanted, the
 * settings a plugin may read. See config.h. */
#define _GNU_SOURCE
#include "config.h"

#include "dictlog.h"
#include "endpoint.h"
#include "forq_config.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int config_check_nodes(const config_t *cfg)
{
    if (cfg->join && strncmp(cfg->join, "tcp://", 6) == 0 && !cfg->insecure_tcp && !cfg->head_key) {
        fprintf(stderr,
                "forqd: join = %s needs head-key (the head's forqd --show-key), or insecure-tcp "
                "on both sides for a loopback test\n",
                cfg->join);
        return -EINVAL;
    }
    for (size_t i = 0; cfg->join && i < cfg->node_listen.n; i++)
        if (strcmp(cfg->node_listen.items[i], cfg->join) == 0) {
            fprintf(stderr,
                    "forqd: join = %s is this forqd's own node-listen; join another "
                    "forqd's\n",
                    cfg->join);
            return -EINVAL;
        }
    return 0;
}

int config_check(const config_t *cfg)
{
    struct stat st;

    if (config_check_nodes(cfg) < 0)
        return -EINVAL;

    for (size_t i = 0; i < cfg->tasks.n; i++) {
        if (stat(cfg->tasks.items[i], &st) < 0) {
            int r = -errno;
            const char *where = i < cfg->tasks_where.n ? cfg->tasks_where.items[i] : "tasks";
            fprintf(stderr, "forqd: %s%s: cannot use %s: %s; fix the path or remove it\n", where,
                    strncmp(where, "--", 2) == 0 ? "" : ": tasks", cfg->tasks.items[i],
                    strerror(errno));
            return r;
        }
    }
    for (size_t i = 0; i < cfg->python_path.n; i++) {
        if (stat(cfg->python_path.items[i], &st) < 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr,
                    "forqd: python-path: %s is not a directory; create it or change the "
                    "setting\n",
                    cfg->python_path.items[i]);
            return -ENOTDIR;
        }
    }
    if (config_wants_python(cfg) && stat(config_python_runtime(cfg), &st) < 0) {
        int r = -errno;
        fprintf(stderr, "forqd: python-import and python-task need the Python runtime %s: %s; %s\n",
                config_python_runtime(cfg), strerror(errno),
                FORQ_HAVE_PYTHON ? "install forq, or set python-runtime"
                                 : "this forq was built without Python: rebuild it with "
                                   "libpython3-dev installed (meson -Dpython=enabled)");
        return r;
    }
    if (cfg->state_dir && (stat(cfg->state_dir, &st) < 0 || !S_ISDIR(st.st_mode))) {
        fprintf(stderr,
                "forqd: %s: state-dir: %s is not a directory; create it or change the "
                "setting\n",
                cfg->state_dir_where ? cfg->state_dir_where : "state-dir", cfg->state_dir);
        return -ENOTDIR;
    }
    return 0;
}

static void print_list(FILE *out, const char *name, const strv_t *v)
{
    for (size_t i = 0; i < v->n; i++)
        fprintf(out, "%s = %s\n", name, v->items[i]);
}

void config_print(const config_t *cfg, FILE *out)
{

    fprintf(out, "# forqd %s: the configuration in effect (%s)\n", FORQ_VERSION,
            cfg->config_file ? cfg->config_file : "no config file; defaults and flags");
    fprintf(out, "[forqd]\n");
    if (!cfg->listen.n) {
        char ep[4200];
        if (endpoint_default(ep, sizeof(ep)) == 0)
            fprintf(out, "# listen: none given, so the default:\nlisten = %s\n", ep);
    }
    print_list(out, "listen", &cfg->listen);
    fprintf(out, "workers = %ld\n", cfg->workers);
    print_list(out, "tasks", &cfg->tasks);
    fprintf(out, "max-jobs-per-worker = %ld\n", cfg->max_jobs_per_worker);
    fprintf(out, "prefetch = %ld\n", cfg->prefetch);
    fprintf(out, "log-level = %s\n", log_level_name(cfg->log_level));
    print_list(out, "allow-exec", &cfg->exec_allow);
    fprintf(out, "queue-max = %ld\n", cfg->queue_max);
    fprintf(out, "client-queue-max = %ld\n", cfg->client_queue_max);
    fprintf(out, "client-hwm = %ld\n", cfg->client_hwm);
    fprintf(out, "client-backlog-bytes = %ld\n", cfg->client_backlog_bytes);
    fprintf(out, "grace = %ld\n", cfg->grace_ms / 1000);
    fprintf(out, "cancel-grace = %ld\n", cfg->cancel_grace_ms);
    fprintf(out, "max-payload = %ld\n", cfg->max_payload);
    fprintf(out, "retain = %ld\n", cfg->retain_count);
    fprintf(out, "retain-seconds = %ld\n", cfg->retain_ms / 1000);
    fprintf(out, "retain-bytes = %ld\n", cfg->retain_bytes);
    if (cfg->state_dir)
        fprintf(out, "state-dir = %s\n", cfg->state_dir);
    fprintf(out, "fsync = %s\n", config_fsync_name(cfg->fsync_policy));
    fprintf(out, "dict-max-keys = %ld\n", cfg->dict_max_keys);
    fprintf(out, "dict-max-value = %ld\n", cfg->dict_max_value);
    fprintf(out, "dict-max-bytes = %ld\n", cfg->dict_max_bytes);
    char path[4096];
    config_clients_path(cfg, path, sizeof(path));
    fprintf(out, "clients = %s\n", path);
    config_server_key_path(cfg, path, sizeof(path));
    fprintf(out, "server-key = %s\n", path);
    fprintf(out, "insecure-tcp = %s\n", cfg->insecure_tcp ? "yes" : "no");
    if (cfg->ipc_group)
        fprintf(out, "ipc-group = %s\n", cfg->ipc_group);
    print_list(out, "node-listen", &cfg->node_listen);
    if (cfg->join)
        fprintf(out, "join = %s\n", cfg->join);
    if (cfg->head_key)
        fprintf(out, "head-key = %s\n", cfg->head_key);
    print_list(out, "tag", &cfg->tags);
    if (cfg->node_name)
        fprintf(out, "node-name = %s\n", cfg->node_name);
    fprintf(out, "heartbeat = %ld\n", cfg->heartbeat_ms);
    fprintf(out, "node-grace = %ld\n", cfg->node_grace_ms / 1000);
    print_list(out, "python-path", &cfg->python_path);
    print_list(out, "python-import", &cfg->python_import);
    print_list(out, "python-task", &cfg->python_task);
    if (config_wants_python(cfg)) {
        fprintf(out, "python-allow-threads = %s\n", cfg->python_allow_threads ? "yes" : "no");
        fprintf(out, "python-runtime = %s\n", config_python_runtime(cfg));
    }
}

int config_fsync_from(const char *name)
{
    if (strcmp(name, "always") == 0)
        return FSYNC_ALWAYS;
    if (strcmp(name, "everysec") == 0)
        return FSYNC_EVERYSEC;
    if (strcmp(name, "no") == 0)
        return FSYNC_NO;
    return -1;
}

const char *config_fsync_name(int policy)
{
    return policy == FSYNC_ALWAYS ? "always" : policy == FSYNC_NO ? "no" : "everysec";
}

bool config_wants_python(const config_t *cfg)
{
    return cfg->python_import.n > 0 || cfg->python_task.n > 0;
}

const char *config_python_runtime(const config_t *cfg)
{
    return cfg->python_runtime ? cfg->python_runtime : FORQ_PYTHON_RUNTIME;
}

const char *config_plugin_setting(const config_t *cfg, const char *name, size_t i)
{
    const strv_t *v = NULL;

    if (strcmp(name, "python-path") == 0)
        v = &cfg->python_path;
    else if (strcmp(name, "python-import") == 0)
        v = &cfg->python_import;
    else if (strcmp(name, "python-task") == 0)
        v = &cfg->python_task;
    else if (strcmp(name, "python-allow-threads") == 0)
        return i == 0 ? (cfg->python_allow_threads ? "yes" : "no") : NULL;
    else if (strcmp(name, "log-level") == 0)
        return i == 0 ? log_level_name(cfg->log_level) : NULL;
    return v && i < v->n ? v->items[i] : NULL;
}

bool config_needs_curve(const config_t *cfg)
{
    if (cfg->insecure_tcp)
        return false;
    for (size_t i = 0; i < cfg->listen.n; i++)
        if (strncmp(cfg->listen.items[i], "tcp://", 6) == 0)
            return true;
    for (size_t i = 0; i < cfg->node_listen.n; i++)
        if (strncmp(cfg->node_listen.items[i], "tcp://", 6) == 0)
            return true;
    return false;
}

/* dir + "/" + name into buf (cut short if it does not fit: the open then fails, naming it). */
static void path_join(char *buf, size_t size, const char *dir, const char *name)
{
    size_t dl = strlen(dir), nl = strlen(name);

    if (dl + 1 + nl + 1 > size) {
        dl = size > nl + 2 ? size - nl - 2 : 0;
        nl = size - dl - 2 < nl ? size - dl - 2 : nl;
    }
    memcpy(buf, dir, dl);
    buf[dl] = '/';
    memcpy(buf + dl + 1, name, nl);
    buf[dl + 1 + nl] = '\0';
}

/* The directory part of path ("." for none) into buf. */
static void dir_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        snprintf(buf, size, ".");
    else if (slash == path)
        snprintf(buf, size, "/");
    else
        snprintf(buf, size, "%.*s", (int)(slash - path), path);
}

void config_clients_path(const config_t *cfg, char *buf, size_t size)
{
    char dir[4096];

    if (cfg->clients_file) {
        snprintf(buf, size, "%s", cfg->clients_file);
        return;
    }
    dir_of(cfg->config_file ? cfg->config_file : FORQ_CONFIG_DEFAULT, dir, sizeof(dir));
    path_join(buf, size, dir, "clients");
}

void config_server_key_path(const config_t *cfg, char *buf, size_t size)
{
    char clients[4096], dir[4096];

    if (cfg->server_key) {
        snprintf(buf, size, "%s", cfg->server_key);
    } else if (cfg->state_dir) {
        path_join(buf, size, cfg->state_dir, "server.key");
    } else if (getenv("STATE_DIRECTORY") && *getenv("STATE_DIRECTORY")) {
        /* systemd's StateDirectory= (the unit's /var/lib/forq); the first one if several */
        char sd[4096];
        snprintf(sd, sizeof(sd), "%s", getenv("STATE_DIRECTORY"));
        sd[strcspn(sd, ":")] = '\0';
        path_join(buf, size, sd, "server.key");
    } else {
        config_clients_path(cfg, clients, sizeof(clients));
        dir_of(clients, dir, sizeof(dir));
        path_join(buf, size, dir, "server.key");
    }
}
