/* plugins.h - the registry of tasks a forkserver preloads: the built-in tasks and those of the
 * plugins named by --tasks. Workers inherit it through fork and look tasks up by name. */
#ifndef FORQ_PLUGINS_H
#define FORQ_PLUGINS_H

#include "config.h"
#include "forq/task.h"

#include <stddef.h>

typedef struct {
    const char *name;   /* task name (borrowed from its plugin) */
    forq_task_fn fn;    /* the function */
    const char *plugin; /* the plugin's name */
    const char *doc;    /* its one-line doc string (borrowed), or NULL */
} task_entry_t;

/* Register the tasks of a plugin descriptor (the built-ins use this too). Returns 0, or -EINVAL
 * with a one-line reason in err: bad ABI version, bad or duplicate task name. */
int plugins_register(const forq_plugin_t *plugin, const char *origin, char *err, size_t errlen);

/* The configuration that plugins read through forq_plugin_setting() (borrowed: it must outlive
 * the loading). */
void plugins_set_config(const config_t *cfg);

/* Load a plugin file, or every *.so in a directory (in name order), register its tasks and run
 * its load (ABI 2) and init hooks. Returns 0 or -errno with a one-line reason naming the file in
 * err. */
int plugins_load(const char *path, char *err, size_t errlen);

/* The same for a plugin linked into the program (forqd-python's Python runtime): register it
 * and run its load and init hooks. */
int plugins_start(const forq_plugin_t *plugin, const char *origin, char *err, size_t errlen);

/* Run every loaded plugin's before_fork hook (in load order), and after the fork, in the
 * forkserver, its after_fork_parent hook (in reverse order). */
void plugins_before_fork(void);
void plugins_after_fork_parent(void);

/* Run every loaded plugin's worker_init hook. Returns 0 or -1 with the plugin named in err. */
int plugins_worker_init(char *err, size_t errlen);

/* The task called `name` (not NUL-terminated), or NULL. */
const task_entry_t *plugins_find(const char *name, size_t len);

/* Iterate the registry: entry i, or NULL past the end. */
const task_entry_t *plugins_at(size_t i);

/* Forget every task and close every plugin. */
void plugins_unload_all(void);

#endif
