/* config.h - forqd's configuration: defaults, the config file (INI), command-line flags, and
 * the derived endpoints. main.c makes one config_t at start; nobody changes a config_t once it is
 * made. A reload (SIGHUP, broker/reload.c) parses a new one and hands it to a new forkserver
 * (whose workers inherit it through fork); when that one is up the broker switches to it and
 * frees the one it replaced. The dict service keeps the start's: its settings wait for a
 * restart. */
#ifndef FORQ_CONFIG_H
#define FORQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct {
    char **items; /* owned strings */
    size_t n;     /* count */
} strv_t;

typedef struct {
    strv_t listen;             /* client endpoints to bind (--listen, repeatable) */
    long workers;              /* pool size (--workers, default: cores) */
    strv_t tasks;              /* plugin files or directories (--tasks, repeatable) */
    strv_t tasks_where;        /* where each came from: "FILE:LINE", "--tasks" or "default" */
    long max_jobs_per_worker;  /* recycle a worker after this many jobs, 0 = never */
    long prefetch;             /* short-task jobs a busy worker may hold ahead, 0 = none */
    int log_level;             /* LOG_ERR .. LOG_DEBUG */
    strv_t exec_allow;         /* programs the exec task may run; empty = exec disabled */
    long queue_max;            /* queued jobs in total before submits are rejected */
    long client_queue_max;     /* queued + running + undelivered jobs of one client */
    long client_hwm;           /* replies ZeroMQ buffers per client before forqd keeps them */
    long client_backlog_bytes; /* bytes of replies held for one client before its submits fail */
    long grace_ms;             /* how long running jobs may finish after SIGTERM */
    long cancel_grace_ms;      /* a cancelled running job's task is told and may stop by itself
                                  this long before its worker is killed; 0: killed at once */
    long max_payload;          /* bytes of one args or result frame */
    long retain_count;         /* finished jobs remembered for status and cancel */
    long retain_ms;            /* and for how long */
    long retain_bytes;         /* and how many bytes of their results, at most */
    char *state_dir;           /* where the dict log lives; NULL: dicts in memory only */
    char *state_dir_where;     /* where it was set: "FILE:LINE" or "--state-dir" */
    int fsync_policy;          /* fsync_policy_t of the dict log */
    long dict_max_keys;        /* keys in all dicts */
    long dict_max_value;       /* bytes of one dict value */
    long dict_max_bytes;       /* bytes of all dict keys and values */
    char *clients_file;        /* the authorised CURVE clients (--clients); NULL: the default,
                                  `clients` beside the config file (config_clients_path) */
    char *server_key;          /* forqd's CURVE key pair file (--server-key); NULL: the default
                                  (config_server_key_path) */
    bool insecure_tcp;         /* --insecure-tcp: serve tcp endpoints in plaintext, every peer
                                  with every right */
    char *ipc_group;           /* --ipc-group: the group that may use the ipc endpoints */
    strv_t python_path;        /* directories put first on the embedded Python's sys.path */
    strv_t python_import;      /* modules the forkserver imports (their @forq.task functions) */
    strv_t python_task;        /* MODULE:FUNCTION tasks named in the configuration */
    bool python_allow_threads; /* import modules that start threads all the same */
    char *python_runtime;      /* the Python runtime plugin; NULL: FORQ_PYTHON_RUNTIME */
    strv_t node_listen;        /* endpoints where worker nodes join (--node-listen) */
    char *join;                /* --join: run as a node of the head at this endpoint */
    char *head_key;            /* --head-key: the head's CURVE public key (Z85) */
    strv_t tags;               /* --tag: tags this forqd's workers have */
    char *node_name;           /* --node-name: the name a node joins under; NULL: host name */
    long heartbeat_ms;         /* node link heartbeat interval (the head's is agreed) */
    long node_grace_ms;        /* a node keeps jobs this long after losing its head */
    bool show_key;             /* --show-key: print forqd's public key and exit */
    int forkserver_fd;         /* >= 0: this process is a re-executed forkserver (internal) */
    char *config_file;         /* the config file read, NULL if none */
    bool check_config;         /* --check-config: print the configuration and exit */
    char **argv;               /* argv forqd was started with, for re-executing a forkserver */
    int argc;                  /* its count */
} config_t;

/* Make `cfg` from the defaults, the config file (--config FILE, else FORQ_CONFIG_DEFAULT if it
 * exists) and argv's flags, in that order (a repeatable flag replaces the file's list). Returns
 * 0 to run, 1 when --help or --version was printed, or -EINVAL/-errno after printing a one-line
 * error naming the flag, or the file and line, to stderr. */
int config_parse(config_t *cfg, int argc, char **argv);

/* What --check-config checks beyond parsing: the plugin paths and the state directory exist.
 * 0, or -errno after printing the problem. */
int config_check(const config_t *cfg);

/* The node settings together: join over tcp needs head-key (or insecure-tcp), and names
 * another forqd than this one. 0, or -EINVAL after printing the problem. */
int config_check_nodes(const config_t *cfg);

/* Print the configuration in effect as a config file forqd would read back. */
void config_print(const config_t *cfg, FILE *out);

/* Fill in what the flags left to be derived: the default listen endpoint (creating its
 * directory). Returns 0 or -errno after
 * printing why. Called by the broker only, never by a re-executed forkserver. */
int config_derive(config_t *cfg);

/* Does cfg serve an endpoint that needs CURVE (tcp without --insecure-tcp)? */
bool config_needs_curve(const config_t *cfg);

/* The clients file in effect: --clients, else `clients` in the config file's directory (that
 * of FORQ_CONFIG_DEFAULT when there is none). */
void config_clients_path(const config_t *cfg, char *buf, size_t size);

/* forqd's key pair file: --server-key, else `server.key` in --state-dir, else in systemd's
 * $STATE_DIRECTORY, else in the clients file's directory. */
void config_server_key_path(const config_t *cfg, char *buf, size_t size);

/* The dict log's fsync policy (fsync_policy_t, dictlog.h) from its name: "always",
 * "everysec" or "no"; -1 for another. And back. */
int config_fsync_from(const char *name);
const char *config_fsync_name(int policy);

/* Does cfg ask for Python tasks (python-import or python-task)? */
bool config_wants_python(const config_t *cfg);

/* The Python runtime plugin file: --python-runtime, else the installed one. */
const char *config_python_runtime(const config_t *cfg);

/* The i-th value of the setting `name` that plugins may read (forq_plugin_setting() in
 * <forq/task.h>), or NULL. Borrowed from cfg. */
const char *config_plugin_setting(const config_t *cfg, const char *name, size_t i);

/* Free everything the config owns. */
void config_done(config_t *cfg);

/* Is `prog` (a job's argv[0]) one the operator allowed for the exec task? */
bool config_exec_allowed(const config_t *cfg, const char *prog);

#endif
