/* plugins.c - see plugins.h. The registry is a uthash table keyed by task name; plugins stay
 * open (RTLD_NOW so that an unresolved symbol fails the load at start, not at the first job). */
#include "plugins.h"

#include "util.h"
#include "wire.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <uthash.h>

typedef struct {
    task_entry_t e;    /* what callers see */
    UT_hash_handle hh; /* in `tasks` by name */
    size_t order;      /* registration order, for plugins_at */
} registered_task_t;

static registered_task_t *tasks;    /* the registry */
static registered_task_t **ordered; /* entries in registration order */
static size_t n_ordered;
static void **handles; /* dlopen handles */
static size_t n_handles;
static const forq_plugin_t **loaded; /* plugins with hooks */
static size_t n_loaded;

int plugins_register(const forq_plugin_t *p, const char *origin, char *err, size_t errlen)
{
    if (p->abi_version != FORQ_TASK_ABI_VERSION) {
        snprintf(err, errlen,
                 "%s: built for task ABI %u, this forqd speaks %d; rebuild it "
                 "against this forq's <forq/task.h>",
                 origin, p->abi_version, FORQ_TASK_ABI_VERSION);
        return -EINVAL;
    }
    if (!p->tasks) {
        snprintf(err, errlen, "%s: declares no task table", origin);
        return -EINVAL;
    }
    for (const forq_task_def_t *d = p->tasks; d->name; d++) {
        size_t n = strlen(d->name);
        registered_task_t *r;
        if (!wire_task_is_valid(d->name, n) || !d->fn) {
            snprintf(err, errlen,
                     "%s: task '%.64s' has a bad name (1-64 chars of A-Z a-z 0-9 . _ "
                     ": -) or no function",
                     origin, d->name);
            return -EINVAL;
        }
        HASH_FIND(hh, tasks, d->name, n, r);
        if (r) {
            snprintf(err, errlen, "%s: task '%s' is already defined by plugin '%s'", origin,
                     d->name, r->e.plugin);
            return -EINVAL;
        }
    }
    for (const forq_task_def_t *d = p->tasks; d->name; d++) {
        registered_task_t *r = xcalloc(1, sizeof(*r));
        r->e = (task_entry_t){d->name, d->fn, p->name ? p->name : origin, d->doc};
        r->order = n_ordered;
        HASH_ADD_KEYPTR(hh, tasks, r->e.name, strlen(r->e.name), r);
        ordered = xrealloc(ordered, (n_ordered + 1) * sizeof(*ordered));
        ordered[n_ordered++] = r;
    }
    loaded = xrealloc(loaded, (n_loaded + 1) * sizeof(*loaded));
    loaded[n_loaded++] = p;
    return 0;
}

static int load_file(const char *path, char *err, size_t errlen)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const forq_plugin_t *p;
    int r;

    if (!h) {
        snprintf(err, errlen, "cannot load task plugin %s: %s", path, dlerror());
        return -ENOEXEC;
    }
    p = dlsym(h, FORQ_PLUGIN_SYMBOL);
    if (!p) {
        snprintf(err, errlen,
                 "%s is not a forq task plugin: it exports no '%s' (use "
                 "FORQ_PLUGIN_DEFINE from <forq/task.h>)",
                 path, FORQ_PLUGIN_SYMBOL);
        dlclose(h);
        return -ENOEXEC;
    }
    r = plugins_register(p, path, err, errlen);
    if (r < 0) {
        dlclose(h);
        return r;
    }
    handles = xrealloc(handles, (n_handles + 1) * sizeof(*handles));
    handles[n_handles++] = h;
    if (p->init && p->init() < 0) {
        snprintf(err, errlen, "task plugin %s refused to start: its init hook failed", path);
        return -ECANCELED;
    }
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int so_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 3 && strcmp(d->d_name + n - 3, ".so") == 0;
}

int plugins_load(const char *path, char *err, size_t errlen)
{
    struct dirent **list;
    struct stat st;
    int n, r = 0;

    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "cannot load task plugins from %s: %s", path, strerror(errno));
        return -errno;
    }
    if (!S_ISDIR(st.st_mode))
        return load_file(path, err, errlen);
    n = scandir(path, &list, so_filter, by_name);
    if (n < 0) {
        snprintf(err, errlen, "cannot read plugin directory %s: %s", path, strerror(errno));
        return -errno;
    }
    for (int i = 0; i < n; i++) {
        char file[4096];
        if (r == 0) {
            snprintf(file, sizeof(file), "%s/%s", path, list[i]->d_name);
            r = load_file(file, err, errlen);
        }
        free(list[i]);
    }
    free(list);
    return r;
}

int plugins_worker_init(char *err, size_t errlen)
{
    for (size_t i = 0; i < n_loaded; i++) {
        if (loaded[i]->worker_init && loaded[i]->worker_init() < 0) {
            snprintf(err, errlen, "worker_init hook of task plugin '%s' failed",
                     loaded[i]->name ? loaded[i]->name : "?");
            return -1;
        }
    }
    return 0;
}

const task_entry_t *plugins_find(const char *name, size_t len)
{
    registered_task_t *r;
    HASH_FIND(hh, tasks, name, len, r);
    return r ? &r->e : NULL;
}

const task_entry_t *plugins_at(size_t i)
{
    return i < n_ordered ? &ordered[i]->e : NULL;
}

void plugins_unload_all(void)
{
    registered_task_t *r, *tmp;
    HASH_ITER(hh, tasks, r, tmp)
    {
        HASH_DEL(tasks, r);
        free(r);
    }
    free(ordered);
    ordered = NULL;
    n_ordered = 0;
    for (size_t i = 0; i < n_handles; i++)
        dlclose(handles[i]);
    free(handles);
    handles = NULL;
    n_handles = 0;
    free(loaded);
    loaded = NULL;
    n_loaded = 0;
}
