/* pyrt.h - the Python task runtime: CPython embedded in forqd's forkserver.
 *
 * What: forqd serves Python functions as tasks. The operator names modules (python-import) and
 * functions (python-task MODULE:FUNCTION); the functions those modules declare with
 * @forq.task (python/forq/tasks.py), and those named in the configuration, become tasks. A
 * client can call nothing else: no pickled code, no attribute walking from a task name.
 *
 * How: this directory builds python.so, a task plugin (ABI 2, <forq/task.h>) that forqd's
 * forkserver loads only when the configuration asks for Python tasks (config_wants_python).
 * Its `load` hook initialises CPython once, in the forkserver, imports the modules there and
 * declares one task per function (forq_plugin_declare), all served by one C function that
 * finds the Python function by task name. Workers are forked from the forkserver with the
 * interpreter and the modules already in memory (copy-on-write): a crashed worker's replacement
 * is ready in under 2 ms here, where multiprocessing's forkserver with the same module
 * preloaded takes tens of milliseconds per Process start (bench/, row 9). Around each fork the
 * plugin's fork hooks call PyOS_BeforeFork / PyOS_AfterFork_Parent, and its worker_init
 * PyOS_AfterFork_Child. A job runs in the worker's main thread with the GIL; between jobs the
 * GIL is released (threads a task left behind may run; forqd's own code uses no Python).
 *
 * Why a plugin and not code linked into forqd: forqd does not depend on libpython (a forqd
 * without Python tasks never maps it, a distribution can ship the runtime as a separate
 * package), and the runtime uses only the public plugin ABI, which it extended by what any
 * plugin that learns its tasks at load time needs (load, fork hooks, forq_task_log,
 * forq_task_cancelled). Why not a fresh interpreter per job (the `exec` task): start-up and
 * imports would be paid per job.
 *
 * Where it runs: forqd-python (pyfs_main.c), installed beside python.so, is the same runtime and
 * forqd's forkserver linked with the distribution's static, position-dependent libpython3.X.a.
 * When it is there, forqd execs it as the forkserver (forkserver.h), and the workers it forks
 * run Python code in about 9 % less time than on the shared libpython (measured on one core with
 * bench/pypeer.py's workload: 1.19 s on /usr/bin/python3, 1.24 s on the static library,
 * 1.36 s on the shared one). Without it, forqd's own forkserver loads python.so.
 *
 * Invariants:
 * - The forkserver never runs a Python thread that could hold a lock across fork: after the
 *   imports the runtime counts the process's threads (/proc/self/task) and refuses to load
 *   (forqd does not start; a reload is refused) if a module started one, naming the module,
 *   unless python-allow-threads is set.
 * - An import error is a refusal too, with the Python traceback in forqd's log.
 * - forq.worker's calls act on the running job's context, and only from the thread that runs
 *   the job (the worker's link is not shared).
 * - Values cross as msgpack in both directions through pyconv.c, the one place that defines the
 *   mapping (PROTOCOL.md "Python tasks").
 *
 * Files: pyrt.c (the plugin: interpreter, imports, the task call, errors), pyconv.c (msgpack <->
 * Python), pyworker.c (the _forq_worker module behind forq.worker). */
#ifndef FORQ_PYRT_H
#define FORQ_PYRT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <forq/task.h>

/* Built into forqd-python (pyfs_main.c, -DFORQ_PYRT_BUILTIN) rather than as python.so: the
 * plugin is then pyrt_builtin_plugin, which the forkserver registers itself. */
#ifdef FORQ_PYRT_BUILTIN
#define PYRT_BUILTIN 1
extern const forq_plugin_t pyrt_builtin_plugin;
#else
#define PYRT_BUILTIN 0
#endif

/* The deepest a value may nest in msgpack (PROTOCOL.md section 5: 32 levels); deeper results are
 * refused while packing, which also ends self-referencing lists. */
#define PYCONV_DEPTH_MAX 32

/* The longest task name (PROTOCOL.md section 4). */
#define FORQ_TASK_NAME_MAX 64

/* ---- pyconv.c ---- */

/* A new Python object for a msgpack value, or NULL with a Python exception set (a string that
 * is not UTF-8, an extension type, a map key Python cannot hash). Map keys that are arrays
 * become tuples. */
PyObject *pyconv_to_py(const msgpack_object *o);

/* Pack a Python value. Returns 0; -1 with a Python exception set (a TypeError naming a type
 * msgpack cannot carry, an int beyond 64 bits, a str that is not encodable); or -2, with no
 * exception, when the value nests deeper than PYCONV_DEPTH_MAX. */
int pyconv_pack(msgpack_packer *pk, PyObject *v);

/* A job's args as a call's: *ret_args a new tuple, *ret_kwargs a new dict or NULL. args is an
 * array of positional arguments whose last element, when it is a map of the single key "$kw"
 * to a map, holds the keyword arguments; any other value is the one positional argument.
 * Returns 0, or -1 with a Python exception set. */
int pyconv_args(const msgpack_object *args, PyObject **ret_args, PyObject **ret_kwargs);

/* ---- pyworker.c: the built-in module _forq_worker ---- */

/* The module's init function, for PyImport_AppendInittab before the interpreter starts. */
PyObject *pyworker_module_init(void);

/* The job the worker's main thread runs now: set for the call of a task, NULL otherwise. */
void pyworker_enter(forq_task_ctx_t *ctx);
void pyworker_leave(void);

/* forqd's --log-level (FORQ_LOG_*): _forq_worker.log() makes no line above it. */
void pyworker_set_log_level(int level);

/* Flush the print() writers (a partial last line still belongs to the job that wrote it). */
void pyworker_flush_output(void);

#endif
