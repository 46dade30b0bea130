/* pyrt.c - the Python task runtime plugin; the design is in pyrt.h. In order: the small Python
 * helpers it runs inside the interpreter, starting the interpreter and importing the modules
 * (load), the fork hooks, and the call of a task. */
#define _GNU_SOURCE
#include "pyrt.h"

#include <dirent.h>
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The interpreter's side of the runtime, run once at load in a module of its own
 * (_forq_runtime): print() writers, error descriptions, the list of declared tasks. Kept in
 * Python where it is text handling, in C where it is the per-job path. */
static const char runtime_py[] =
    "import sys, traceback, _forq_worker\n"
    "\n"
    "class LogWriter:\n"
    "    \"\"\"sys.stdout and sys.stderr in forqd: each line becomes a line of forqd's log,\n"
    "    with the running job's id.\"\"\"\n"
    "    encoding = 'utf-8'\n"
    "    errors = 'replace'\n"
    "    def __init__(self, level, name):\n"
    "        self._level, self._buf, self.name = level, '', name\n"
    "        self._on = level <= _forq_worker.log_level()\n"
    "    def write(self, s):\n"
    "        if not isinstance(s, str):\n"
    "            raise TypeError('write() argument must be str, not ' + type(s).__name__)\n"
    "        if self._on and s:\n"
    "            self._buf += s\n"
    "            if '\\n' in self._buf:\n"
    "                *lines, self._buf = self._buf.split('\\n')\n"
    "                for line in lines:\n"
    "                    _forq_worker.log(self._level, line)\n"
    "            if len(self._buf) > 4000:\n"
    "                self.flush()\n"
    "            elif self._buf:\n"
    "                _forq_worker.pending()\n"
    "        return len(s)\n"
    "    def flush(self):\n"
    "        if self._buf:\n"
    "            buf, self._buf = self._buf, ''\n"
    "            _forq_worker.log(self._level, buf)\n"
    "    def isatty(self):\n"
    "        return False\n"
    "    def writable(self):\n"
    "        return True\n"
    "    def readable(self):\n"
    "        return False\n"
    "    def fileno(self):\n"
    "        import io\n"
    "        raise io.UnsupportedOperation('forqd logs this stream: it has no file descriptor')\n"
    "\n"
    "def setup(paths):\n"
    "    sys.path[0:0] = paths\n"
    "    sys.stdout = LogWriter(7, '<stdout: forqd log, debug>')\n"
    "    sys.stderr = LogWriter(4, '<stderr: forqd log, warning>')\n"
    "\n"
    "TEXT_MAX = 1024\n"
    "HEAD = '\\n\\nTraceback (most recent call last):\\n'\n"
    "MORE = '  ...\\n'\n"
    "\n"
    "def cut(s, n):\n"
    "    b = s.encode('utf-8', 'replace')\n"
    "    return s if len(b) <= n else b[:max(n, 0)].decode('utf-8', 'ignore')\n"
    "\n"
    "def type_name(t):\n"
    "    m, q = getattr(t, '__module__', None), getattr(t, '__qualname__', t.__name__)\n"
    "    return q if m in (None, 'builtins') else m + '.' + q\n"
    "\n"
    "def describe(exc, prefix):\n"
    "    \"\"\"(etype, msg, the whole traceback) of an exception: msg is str(exc), then the\n"
    "    frames, innermost last, within 1024 bytes (PROTOCOL.md, Python tasks).\"\"\"\n"
    "    try:\n"
    "        text = str(exc)\n"
    "    except BaseException:\n"
    "        text = '<str() of the exception failed>'\n"
    "    text = prefix + text\n"
    "    tb = exc.__traceback__\n"
    "    full = ''.join(traceback.format_exception(type(exc), exc, tb))\n"
    "    etype = cut(type_name(type(exc)), 200)\n"
    "    frames = traceback.format_tb(tb) if tb else []\n"
    "    if not frames:\n"
    "        return etype, cut(text, TEXT_MAX), full\n"
    "    msg = cut(text, 512)\n"
    "    room = TEXT_MAX - len(msg.encode()) - len(HEAD) - len(MORE)\n"
    "    kept = []\n"
    "    for f in reversed(frames):\n"
    "        n = len(f.encode())\n"
    "        if n > room:\n"
    "            break\n"
    "        kept.append(f)\n"
    "        room -= n\n"
    "    if not kept:\n"
    "        kept.append(cut(frames[-1], room))\n"
    "    if len(kept) < len(frames) or kept[0] != frames[-1]:\n"
    "        kept.append(MORE)\n"
    "    return etype, msg + HEAD + ''.join(reversed(kept)).rstrip('\\n'), full\n"
    "\n"
    "def collect(config_tasks):\n"
    "    \"\"\"{name: function}: the @forq.task functions of the imported modules and the\n"
    "    MODULE:FUNCTION tasks of the configuration.\"\"\"\n"
    "    ft = sys.modules.get('forq.tasks')\n"
    "    out = dict(ft.declared()) if ft is not None else {}\n"
    "    for spec in config_tasks:\n"
    "        mod, _, func = spec.partition(':')\n"
    "        fn = getattr(sys.modules[mod], func, None)\n"
    "        if not callable(fn):\n"
    "            raise ValueError('python-task %s: module %s has no function %s' % (spec, mod, "
    "func))\n"
    "        name = mod + '.' + func\n"
    "        if out.get(name, fn) is not fn:\n"
    "            raise ValueError('python-task %s: @forq.task already declared the task %s for '\n"
    "                             'another function' % (spec, name))\n"
    "        out[name] = fn\n"
    "    return out\n";

#if PYRT_BUILTIN
#define forq_plugin_v1 pyrt_builtin_plugin
#endif
FORQ_TASK_EXPORT extern const forq_plugin_t forq_plugin_v1;

static PyObject *tasks;        /* task name -> function */
static PyObject *describe_fn;  /* _forq_runtime.describe */
static PyThreadState *between; /* the main thread's state while it does not hold the GIL */
static bool started;           /* the interpreter runs */
static bool loaded;            /* load ran once */

/* ---- errors ---- */

/* Log `text` (lines) at `level`. */
static void log_text(const forq_task_ctx_t *ctx, int level, PyObject *text)
{
    const char *s = text && PyUnicode_Check(text) ? PyUnicode_AsUTF8(text) : NULL;
    if (s)
        forq_task_log(ctx, level, "%s", s);
    else
        PyErr_Clear();
}

/* Describe the pending exception: *ret_etype and *ret_msg as for an error result, the whole
 * traceback logged at `level` with `ctx`'s job id. Clears the exception. */
static void take_exception(const forq_task_ctx_t *ctx, const char *prefix, int level, char *etype,
                           size_t etlen, char *msg, size_t mlen)
{
    PyObject *t, *v, *tb, *d = NULL;

    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    snprintf(etype, etlen, "%s", "TaskError");
    snprintf(msg, mlen, "%s", "the task failed without an exception");
    if (!v)
        goto out;
    if (tb)
        PyException_SetTraceback(v, tb);
    d = PyObject_CallFunction(describe_fn, "Os", v, prefix ? prefix : "");
    if (d && PyTuple_Check(d) && PyTuple_GET_SIZE(d) == 3) {
        const char *e = PyUnicode_AsUTF8(PyTuple_GET_ITEM(d, 0));
        const char *m = e ? PyUnicode_AsUTF8(PyTuple_GET_ITEM(d, 1)) : NULL;
        if (e && m) {
            snprintf(etype, etlen, "%s", e);
            snprintf(msg, mlen, "%s", m);
        }
        log_text(ctx, level, PyTuple_GET_ITEM(d, 2));
    }
    PyErr_Clear(); /* describe itself failed: the generic words above stand */
out:
    Py_XDECREF(d);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
}

/* The pending exception as the job's error. Returns -1. */
static int fail_job(forq_task_ctx_t *ctx, const char *prefix)
{
    char etype[256], msg[1025];

    take_exception(ctx, prefix, FORQ_LOG_DEBUG, etype, sizeof(etype), msg, sizeof(msg));
    return forq_task_error(ctx, etype, "%s", msg);
}

/* The pending exception as the reason loading fails, its traceback in the log. Returns -1. */
static int fail_load(forq_plugin_host_t *host, const char *what)
{
    char etype[256], msg[1025];

    forq_task_log(NULL, FORQ_LOG_ERROR, "python: %s failed:", what);
    take_exception(NULL, NULL, FORQ_LOG_ERROR, etype, sizeof(etype), msg, sizeof(msg));
    msg[strcspn(msg, "\n")] = '\0'; /* the message's first line; the traceback was logged */
    return forq_plugin_fail(host,
                            "python: %s failed: %s: %s (the traceback is in the log above); fix "
                            "it, or take it out of the configuration",
                            what, etype, msg);
}

/* ---- load: the interpreter, the modules, the tasks ---- */

static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    if (!d)
        return 1;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* dl_iterate_phdr: the first shared libpython loaded, into *data. */
static int find_libpython(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "/libpython")) {
        snprintf(data, 256, "%s", info->dlpi_name);
        return 1;
    }
    return 0;
}

/* Import `module`; refuse one that fails or that starts threads, and in forqd-python one that
 * loads the shared libpython (an extension linked against it): a second interpreter. */
static int import_checked(forq_plugin_host_t *host, const char *module, bool allow_threads)
{
    char what[300];
    PyObject *m;
    int before = thread_count(), after;

    snprintf(what, sizeof(what), "importing module '%s'", module);
    if (!(m = PyImport_ImportModule(module)))
        return fail_load(host, what);
    Py_DECREF(m);
    if (PYRT_BUILTIN) {
        char lib[256] = "";
        if (dl_iterate_phdr(find_libpython, lib))
            return forq_plugin_fail(
                host,
                "python: importing module '%s' loaded %s, a second CPython beside the one "
                "linked into forqd-python (an extension module linked against libpython); "
                "remove forqd-python beside python.so so that forqd loads python.so, or "
                "rebuild the extension without linking libpython",
                module, lib);
    }
    if ((after = thread_count()) > before) {
        if (!allow_threads)
            return forq_plugin_fail(
                host,
                "python: importing module '%s' started %d thread(s); forqd forks workers from "
                "this process and a fork copies no thread (a lock one held stays locked): start "
                "threads in the task, or (numpy, OpenBLAS) set OPENBLAS_NUM_THREADS=1, or set "
                "python-allow-threads = yes to accept the risk",
                module, after - before);
        forq_task_log(NULL, FORQ_LOG_WARNING,
                      "python: importing module '%s' started %d thread(s); python-allow-threads "
                      "is set, so workers are forked from a threaded process",
                      module, after - before);
    }
    return 0;
}

/* Make libpython's symbols global: extension modules (ctypes, zmq ...) are built to find them
 * in the process, but forqd loads plugins RTLD_LOCAL. Keep this plugin and libpython loaded for
 * the life of the process: Python objects point into both. */
static int pin_libraries(forq_plugin_host_t *host)
{
    Dl_info info;

    if (PYRT_BUILTIN)
        return 0; /* forqd-python: CPython is in the executable, which exports its symbols */

    if (dladdr(&_Py_NoneStruct, &info) && info.dli_fname &&
        !dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD | RTLD_NODELETE))
        return forq_plugin_fail(host, "python: cannot make libpython's symbols global (%s): %s",
                                info.dli_fname, dlerror());
    if (dladdr(&forq_plugin_v1, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    return 0;
}

static int start_interpreter(forq_plugin_host_t *host)
{
    PyConfig config;
    PyStatus st;

    if (PyImport_AppendInittab("_forq_worker", pyworker_module_init) < 0)
        return forq_plugin_fail(host, "python: cannot register the _forq_worker module");
    /* isolated: no PYTHON* environment variables, no user site directory, no signal
     * handlers (forqd's forkserver and workers own their signals); the interpreter's paths
     * are those of the python3 that matches libpython, whatever python3 is first in PATH */
    PyConfig_InitIsolatedConfig(&config);
    config.write_bytecode = 0; /* the operator's directories stay as they are */
    config.install_signal_handlers = 0;
    st = PyConfig_SetBytesString(&config, &config.program_name, FORQ_PYTHON_EXECUTABLE);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st))
        return forq_plugin_fail(host, "python: cannot start the interpreter: %s",
                                st.err_msg ? st.err_msg : "(no reason given)");
    started = true;
    return 0;
}

/* A new list of the values of a setting. */
static PyObject *setting_list(forq_plugin_host_t *host, const char *name)
{
    PyObject *l = PyList_New(0);
    const char *v;

    for (size_t i = 0; l && (v = forq_plugin_setting(host, name, i)); i++) {
        PyObject *s = PyUnicode_FromString(v);
        if (!s || PyList_Append(l, s) < 0) {
            Py_XDECREF(s);
            Py_CLEAR(l);
            break;
        }
        Py_DECREF(s);
    }
    return l;
}

static int log_level_of(const char *name)
{
    static const char *const names[] = {"error", "warning", "notice", "info", "debug"};
    for (int i = 0; name && i < 5; i++)
        if (strcmp(name, names[i]) == 0)
            return FORQ_LOG_ERROR + i;
    return FORQ_LOG_INFO;
}

/* Run runtime_py; its setup() with the python-path directories. */
static PyObject *start_runtime(forq_plugin_host_t *host)
{
    PyObject *mod = PyImport_AddModule("_forq_runtime"); /* borrowed */
    PyObject *ns = mod ? PyModule_GetDict(mod) : NULL, *r, *paths;

    if (!ns || !(r = PyRun_String(runtime_py, Py_file_input, ns, ns))) {
        fail_load(host, "starting forq's runtime code");
        return NULL;
    }
    Py_DECREF(r);
    if (!(paths = setting_list(host, "python-path")))
        return NULL;
    r = PyObject_CallMethod(mod, "setup", "O", paths);
    Py_DECREF(paths);
    if (!r) {
        fail_load(host, "setting up sys.path and sys.stdout");
        return NULL;
    }
    Py_DECREF(r);
    describe_fn = PyObject_GetAttrString(mod, "describe");
    return describe_fn ? mod : NULL;
}

static int rt_call(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out);

/* Declare the tasks that collect() finds. */
static int declare_tasks(forq_plugin_host_t *host, PyObject *mod)
{
    PyObject *specs = setting_list(host, "python-task"), *found, *name, *fn;
    Py_ssize_t pos = 0;
    char why[200];

    if (!specs)
        return fail_load(host, "reading python-task");
    found = PyObject_CallMethod(mod, "collect", "O", specs);
    Py_DECREF(specs);
    if (!found || !PyDict_Check(found)) {
        Py_XDECREF(found);
        return fail_load(host, "collecting the tasks");
    }
    tasks = found;
    while (PyDict_Next(tasks, &pos, &name, &fn)) {
        const char *n = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
        if (!n) {
            snprintf(why, sizeof(why), "reading a task name");
            return fail_load(host, why);
        }
        if (forq_plugin_declare(host, n, rt_call, NULL) < 0)
            return -1; /* the reason is set: a bad name, or one another plugin has */
    }
    if (PyDict_GET_SIZE(tasks) == 0)
        forq_task_log(NULL, FORQ_LOG_WARNING,
                      "python: the modules declare no tasks (decorate functions with "
                      "@forq.task, or list them as python-task = MODULE:FUNCTION)");
    else
        forq_task_log(NULL, FORQ_LOG_INFO, "python %.*s: %zd task(s) ready",
                      (int)strcspn(Py_GetVersion(), " "), Py_GetVersion(), PyDict_GET_SIZE(tasks));
    return 0;
}

static int rt_load(forq_plugin_host_t *host)
{
    bool allow_threads;
    const char *v;
    PyObject *mod;

    if (loaded)
        return forq_plugin_fail(host, "the Python runtime is loaded twice; name it once, as "
                                      "python-runtime, not also in tasks");
    loaded = true;
    if (!forq_plugin_setting(host, "python-import", 0) &&
        !forq_plugin_setting(host, "python-task", 0))
        return 0; /* loaded without anything to serve (a tasks directory): stay idle */
    v = forq_plugin_setting(host, "python-allow-threads", 0);
    allow_threads = v && strcmp(v, "yes") == 0;
    pyworker_set_log_level(log_level_of(forq_plugin_setting(host, "log-level", 0)));
    if (pin_libraries(host) < 0 || start_interpreter(host) < 0)
        return -1;
    if (thread_count() > 1 && !allow_threads)
        return forq_plugin_fail(host, "python: the forkserver has threads before any import "
                                      "(an LD_PRELOAD library?); set python-allow-threads = "
                                      "yes to go on");
    if (!(mod = start_runtime(host)))
        return -1;
    for (size_t i = 0; (v = forq_plugin_setting(host, "python-import", i)); i++)
        if (import_checked(host, v, allow_threads) < 0)
            return -1;
    for (size_t i = 0; (v = forq_plugin_setting(host, "python-task", i)); i++) {
        char module[256];
        snprintf(module, sizeof(module), "%.*s", (int)strcspn(v, ":"), v);
        if (import_checked(host, module, allow_threads) < 0)
            return -1;
    }
    if (declare_tasks(host, mod) < 0)
        return -1;
    pyworker_flush_output();
    between = PyEval_SaveThread(); /* threads an import started (if allowed) may run */
    return 0;
}

/* ---- fork ---- */

static void rt_before_fork(void)
{
    if (!started)
        return;
    PyEval_RestoreThread(between);
    PyOS_BeforeFork();
}

static void rt_after_fork_parent(void)
{
    if (!started)
        return;
    PyOS_AfterFork_Parent();
    between = PyEval_SaveThread();
}

static int rt_worker_init(void)
{
    if (!started)
        return 0;
    PyOS_AfterFork_Child(); /* this thread held the GIL at fork */
    between = PyEval_SaveThread();
    return 0;
}

/* ---- the call of a task ---- */

/* The function of task `name` (borrowed: `tasks` keeps it), or NULL. The last one found is
 * kept: a chunk calls the same task item after item. */
static PyObject *find_task(const char *name)
{
    static char last[FORQ_TASK_NAME_MAX + 1];
    static PyObject *last_fn;
    PyObject *fn;

    if (last_fn && strcmp(name, last) == 0)
        return last_fn;
    fn = PyDict_GetItemString(tasks, name);
    if (fn && strlen(name) < sizeof(last)) {
        strcpy(last, name);
        last_fn = fn;
    }
    return fn;
}

static int rt_call(forq_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out)
{
    PyObject *fn, *a = NULL, *kw = NULL, *r = NULL;
    int rc = 0;

    PyEval_RestoreThread(between);
    fn = find_task(forq_task_name(ctx));
    if (!fn) {
        rc = forq_task_error(ctx, "UnknownTask", "this worker has no Python task '%s'",
                             forq_task_name(ctx));
    } else if (pyconv_args(args, &a, &kw) < 0) {
        rc = fail_job(ctx, "the job's arguments: ");
    } else {
        PyObject *t, *v, *tb;
        pyworker_enter(ctx);
        r = PyObject_Call(fn, a, kw);
        /* the writers' last partial lines belong to this job; flushing runs Python code, so
         * the task's exception waits aside */
        PyErr_Fetch(&t, &v, &tb);
        pyworker_flush_output();
        PyErr_Restore(t, v, tb);
        pyworker_leave();
        if (!r) {
            rc = fail_job(ctx, "");
        } else {
            int p = pyconv_pack(out, r);
            if (p == -2)
                rc = forq_task_error(ctx, "ResultTooDeep",
                                     "the result of '%s' nests deeper than %d levels, more than "
                                     "clients can read",
                                     forq_task_name(ctx), PYCONV_DEPTH_MAX);
            else if (p < 0)
                rc = fail_job(ctx, "the result cannot be sent: ");
        }
    }
    Py_XDECREF(r);
    Py_XDECREF(a);
    Py_XDECREF(kw);
    between = PyEval_SaveThread();
    return rc;
}

/* python.so's plugin; in forqd-python (pyfs_main.c) the same runtime linked in, registered by
 * the forkserver itself (forkserver_python_builtin) */
FORQ_TASK_EXPORT const forq_plugin_t forq_plugin_v1 = {
    .abi_version = FORQ_TASK_ABI_VERSION,
    .name = "python",
    .tasks = NULL,
    .init = NULL,
    .worker_init = rt_worker_init,
    .load = rt_load,
    .before_fork = rt_before_fork,
    .after_fork_parent = rt_after_fork_parent,
};
