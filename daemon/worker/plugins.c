/* plugins.c - see plugins.h. The registry is a uthash table keyed by task name; plugins stay
 * open (RTLD_NOW so that an unresolved symbol fails the load at start, not at the first job).
 *
 * ABI versions: a plugin's descriptor is read through its abi_version. A version 1 descriptor
 * is shorter than today's forq_plugin_t, so it is copied field by field into a zeroed one
 * (`loaded` keeps copies, never the plugin's pointer), and only then are the version 2 hooks
 * looked at. */
#include "plugins.h"

#include "util.h"
#include "wire.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <uthash.h>

typedef struct {
    task_entry_t e;    /* what callers see */
    UT_hash_handle hh; /* in `tasks` by name */
    size_t order;      /* registration order, for plugins_at */
    char *owned_name;  /* e.name when declared at load time (forq_plugin_declare) */
    char *owned_doc;   /* and e.doc then, copied */
} registered_task_t;

/* A plugin being loaded: what forq_plugin_declare() and friends act on. */
struct forq_plugin_host {
    const char *origin; /* its file, for messages */
    const char *plugin; /* its name, for task entries */
    char reason[WIRE_TEXT_MAX + 1];
    bool failed; /* forq_plugin_fail() was called */
};

static registered_task_t *tasks;    /* the registry */
static registered_task_t **ordered; /* entries in registration order */
static size_t n_ordered;
static void **handles; /* dlopen handles */
static size_t n_handles;
static forq_plugin_t *loaded; /* copies of the registered descriptors, for their hooks */
static size_t n_loaded;
static const config_t *host_cfg;         /* what forq_plugin_setting() reads */
static forq_plugin_host_t *current_host; /* the plugin whose `load` runs, or NULL */

void plugins_set_config(const config_t *cfg)
{
    host_cfg = cfg;
}

/* Is `name` a valid task name that no registered task has? Sets err otherwise. */
static bool name_is_free(const char *origin, const char *name, bool has_fn, char *err,
                         size_t errlen)
{
    size_t n = strlen(name);
    registered_task_t *r;

    if (!wire_task_is_valid(name, n) || !has_fn) {
        snprintf(err, errlen,
                 "%s: task '%.64s' has a bad name (1-64 chars of A-Z a-z 0-9 . _ "
                 ": -) or no function",
                 origin, name);
        return false;
    }
    HASH_FIND(hh, tasks, name, n, r);
    if (r) {
        snprintf(err, errlen, "%s: task '%s' is already defined by plugin '%s'", origin, name,
                 r->e.plugin);
        return false;
    }
    return true;
}

static void add_task(const char *name, forq_task_fn fn, const char *plugin, const char *doc,
                     char *owned, char *owned_doc)
{
    registered_task_t *r = xcalloc(1, sizeof(*r));
    r->e = (task_entry_t){name, fn, plugin, doc};
    r->order = n_ordered;
    r->owned_name = owned;
    r->owned_doc = owned_doc;
    HASH_ADD_KEYPTR(hh, tasks, r->e.name, strlen(r->e.name), r);
    ordered = xrealloc(ordered, (n_ordered + 1) * sizeof(*ordered));
    ordered[n_ordered++] = r;
}

int plugins_register(const forq_plugin_t *p, const char *origin, char *err, size_t errlen)
{
    forq_plugin_t copy = {0};

    if (p->abi_version < FORQ_TASK_ABI_MIN || p->abi_version > FORQ_TASK_ABI_VERSION) {
        snprintf(err, errlen,
                 "%s: built for task ABI %u, this forqd speaks %d to %d; rebuild it "
                 "against this forq's <forq/task.h>",
                 origin, p->abi_version, FORQ_TASK_ABI_MIN, FORQ_TASK_ABI_VERSION);
        return -EINVAL;
    }
    /* the fields every version has; then those of version 2 */
    copy.abi_version = p->abi_version;
    copy.name = p->name;
    copy.tasks = p->tasks;
    copy.init = p->init;
    copy.worker_init = p->worker_init;
    if (p->abi_version >= 2) {
        copy.load = p->load;
        copy.before_fork = p->before_fork;
        copy.after_fork_parent = p->after_fork_parent;
    }
    if (!copy.tasks && !copy.load) {
        snprintf(err, errlen, "%s: declares no task table", origin);
        return -EINVAL;
    }
    for (const forq_task_def_t *d = copy.tasks; d && d->name; d++)
        if (!name_is_free(origin, d->name, d->fn != NULL, err, errlen))
            return -EINVAL;
    for (const forq_task_def_t *d = copy.tasks; d && d->name; d++)
        add_task(d->name, d->fn, p->name ? p->name : origin, d->doc, NULL, NULL);
    loaded = xrealloc(loaded, (n_loaded + 1) * sizeof(*loaded));
    loaded[n_loaded++] = copy;
    return 0;
}

/* ---- what a plugin's `load` may call (ABI 2) ---- */

int forq_plugin_fail(forq_plugin_host_t *host, const char *fmt, ...)
{
    va_list ap;

    if (!host)
        return -1;
    va_start(ap, fmt);
    vsnprintf(host->reason, sizeof(host->reason), fmt, ap);
    va_end(ap);
    host->failed = true;
    return -1;
}

int forq_plugin_declare(forq_plugin_host_t *host, const char *name, forq_task_fn fn,
                        const char *doc)
{
    char err[WIRE_TEXT_MAX + 1];

    if (!host || host != current_host)
        return forq_plugin_fail(host, "forq_plugin_declare() called outside the plugin's load");
    if (!name || !name_is_free(host->origin, name, fn != NULL, err, sizeof(err)))
        return forq_plugin_fail(host, "%s", name ? err : "forq_plugin_declare(): no name");
    char *copy = xstrdup(name), *doc_copy = doc ? xstrdup(doc) : NULL;
    add_task(copy, fn, host->plugin, doc_copy, copy, doc_copy);
    return 0;
}

const char *forq_plugin_setting(const forq_plugin_host_t *host, const char *name, size_t i)
{
    if (!host || !host_cfg || !name)
        return NULL;
    return config_plugin_setting(host_cfg, name, i);
}

/* Run a version 2 plugin's load hook (the last descriptor registered). */
static int run_load(const char *path, char *err, size_t errlen)
{
    forq_plugin_t *p = &loaded[n_loaded - 1];
    forq_plugin_host_t host = {.origin = path, .plugin = p->name ? p->name : path};
    int r;

    if (!p->load)
        return 0;
    current_host = &host;
    r = p->load(&host);
    current_host = NULL;
    if (r < 0 || host.failed) {
        snprintf(err, errlen, "task plugin %s refused to load: %s", path,
                 host.failed ? host.reason : "its load hook failed without saying why");
        return -ECANCELED;
    }
    return 0;
}

/* The load and init hooks of the plugin just registered. */
static int start_registered(const forq_plugin_t *p, const char *origin, char *err, size_t errlen)
{
    int r;

    if ((r = run_load(origin, err, errlen)) < 0)
        return r;
    if (p->init && p->init() < 0) {
        snprintf(err, errlen, "task plugin %s refused to start: its init hook failed", origin);
        return -ECANCELED;
    }
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
    return start_registered(p, path, err, errlen);
}

int plugins_start(const forq_plugin_t *p, const char *origin, char *err, size_t errlen)
{
    int r = plugins_register(p, origin, err, errlen);
    return r < 0 ? r : start_registered(p, origin, err, errlen);
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
        if (loaded[i].worker_init && loaded[i].worker_init() < 0) {
            snprintf(err, errlen, "worker_init hook of task plugin '%s' failed",
                     loaded[i].name ? loaded[i].name : "?");
            return -1;
        }
    }
    return 0;
}

void plugins_before_fork(void)
{
    for (size_t i = 0; i < n_loaded; i++)
        if (loaded[i].before_fork)
            loaded[i].before_fork();
}

void plugins_after_fork_parent(void)
{
    for (size_t i = n_loaded; i-- > 0;)
        if (loaded[i].after_fork_parent)
            loaded[i].after_fork_parent();
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
        free(r->owned_name);
        free(r->owned_doc);
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
