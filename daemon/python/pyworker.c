/* pyworker.c - _forq_worker, the built-in module behind forq.worker (python/forq/worker.py):
 * the running job's id, progress, cancel check, log lines, dict calls and the shared types'
 * (queues, locks, events, fenced dict writes), over the task context that forqd gives the
 * running task (<forq/task.h>). forq/worker.py holds the user-facing API (docstrings, the
 * Dict-, Queue-, Lock-, Event- and Value-like classes, error classes); this file only crosses
 * into C. Every call acts on the job the worker's main thread runs now, and only from that
 * thread: the worker's link to forqd carries one request at a time. */
#include "pyrt.h"

#include <stdlib.h>
#include <string.h>

static forq_task_ctx_t *cur;        /* the running job's context, NULL between jobs */
static unsigned long job_thread;    /* the thread that runs it */
static int log_max = FORQ_LOG_INFO; /* forqd's --log-level: lines above it are not made */

void pyworker_enter(forq_task_ctx_t *ctx)
{
    cur = ctx;
    job_thread = PyThread_get_thread_ident();
}

void pyworker_leave(void)
{
    cur = NULL;
}

void pyworker_set_log_level(int level)
{
    log_max = level;
}

static void flush_one(const char *name)
{
    PyObject *f = PySys_GetObject(name); /* borrowed */
    PyObject *r;

    if (!f)
        return;
    r = PyObject_CallMethod(f, "flush", NULL);
    if (!r)
        PyErr_Clear(); /* a writer that cannot flush loses its last partial line, nothing more */
    Py_XDECREF(r);
}

/* Has a writer kept a partial line since the last flush (_forq_worker.pending())? Most jobs
 * print nothing: they pay no flush. */
static bool output_pending;

void pyworker_flush_output(void)
{
    if (!output_pending)
        return;
    output_pending = false;
    flush_one("stdout");
    flush_one("stderr");
}

static PyObject *w_pending(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    output_pending = true;
    Py_RETURN_NONE;
}

/* The running job's context, or NULL with RuntimeError set. */
static forq_task_ctx_t *need_job(const char *what)
{
    if (!cur) {
        PyErr_Format(PyExc_RuntimeError,
                     "forq.worker.%s() works only inside a task that forqd runs", what);
        return NULL;
    }
    if (PyThread_get_thread_ident() != job_thread) {
        PyErr_Format(PyExc_RuntimeError,
                     "forq.worker.%s() must be called from the thread that runs the task, not "
                     "from a thread it started",
                     what);
        return NULL;
    }
    return cur;
}

static PyObject *w_job_id(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    if (!cur)
        Py_RETURN_NONE;
    return PyUnicode_FromString(forq_task_job_id(cur));
}

static PyObject *w_task_name(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    if (!cur)
        Py_RETURN_NONE;
    return PyUnicode_FromString(forq_task_name(cur));
}

static PyObject *w_progress(PyObject *self, PyObject *args)
{
    unsigned long long done, total;
    const char *text;
    forq_task_ctx_t *ctx;

    (void)self;
    if (!PyArg_ParseTuple(args, "KKz:progress", &done, &total, &text))
        return NULL;
    if (!(ctx = need_job("progress")))
        return NULL;
    forq_task_progress(ctx, done, total, text);
    Py_RETURN_NONE;
}

static PyObject *w_cancelled(PyObject *self, PyObject *unused)
{
    forq_task_ctx_t *ctx;

    (void)self, (void)unused;
    if (!(ctx = need_job("cancelled")))
        return NULL;
    return PyBool_FromLong(forq_task_cancelled(ctx));
}

static PyObject *w_log(PyObject *self, PyObject *args)
{
    int level;
    const char *text;

    (void)self;
    if (!PyArg_ParseTuple(args, "is:log", &level, &text))
        return NULL;
    if (level > log_max)
        Py_RETURN_NONE;
    /* a thread the task started logs with the job's id too: it is the job's output */
    forq_task_log(cur, level, "%s", text);
    Py_RETURN_NONE;
}

static PyObject *w_log_level(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return PyLong_FromLong(log_max);
}

/* A msgpack value from forqd as a Python object (NULL with an exception). */
static PyObject *unpack(const void *data, size_t len)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    PyObject *r;

    msgpack_zone_init(&zone, 1024);
    if (msgpack_unpack(data, len, &off, &zone, &o) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_zone_destroy(&zone);
        PyErr_SetString(PyExc_ValueError, "forqd's dict answer holds no msgpack value");
        return NULL;
    }
    r = pyconv_to_py(&o);
    msgpack_zone_destroy(&zone);
    return r;
}

/* Pack `v` into sb: 0, or -1 with an exception. */
static int pack_value(msgpack_sbuffer *sb, PyObject *v)
{
    msgpack_packer pk;
    int r;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    r = pyconv_pack(&pk, v);
    if (r == -2)
        PyErr_Format(PyExc_ValueError, "the value nests deeper than %d levels", PYCONV_DEPTH_MAX);
    return r < 0 ? -1 : 0;
}

/* dict(op, name, key, value, has_value, delta, version, timeout_ms) -> (rc, value, version):
 * rc is one of forq_task_dict()'s; with FORQ_TASK_DICT_ERROR, value is the reason (a str
 * "code: message"). */
static PyObject *w_dict(PyObject *self, PyObject *args)
{
    const char *op, *name, *key;
    PyObject *value, *rv = NULL, *result;
    int has_value, timeout_ms, rc;
    long long delta;
    unsigned long long version;
    forq_task_ctx_t *ctx;
    msgpack_sbuffer sb;
    void *out = NULL;
    size_t out_len = 0;
    uint64_t out_ver = 0;

    (void)self;
    if (!PyArg_ParseTuple(args,
                          "ssz"
                          "OpLKi:dict",
                          &op, &name, &key, &value, &has_value, &delta, &version, &timeout_ms))
        return NULL;
    if (!(ctx = need_job("dict")))
        return NULL;
    msgpack_sbuffer_init(&sb);
    if (has_value && pack_value(&sb, value) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS /* a dict call waits for forqd: other threads of the task may run */
        rc = forq_task_dict(ctx, op, name, key, has_value ? sb.data : NULL, sb.size, delta, version,
                            timeout_ms, &out, &out_len, &out_ver);
    Py_END_ALLOW_THREADS msgpack_sbuffer_destroy(&sb);
    if (rc == FORQ_TASK_DICT_ERROR) {
        const char *why = forq_task_dict_error(ctx);
        rv = PyUnicode_DecodeUTF8(why, (Py_ssize_t)strlen(why), "replace");
    } else if (out)
        rv = unpack(out, out_len);
    else {
        Py_INCREF(Py_None);
        rv = Py_None;
    }
    free(out);
    if (!rv)
        return NULL;
    result = Py_BuildValue("(iNK)", rc, rv, (unsigned long long)out_ver);
    return result;
}

/* dict_page(name, items, after, limit) -> (rc, entries or reason, next cursor or None) */
static PyObject *w_dict_page(PyObject *self, PyObject *args)
{
    const char *name, *after;
    int items, rc;
    Py_ssize_t limit;
    forq_task_ctx_t *ctx;
    void *data = NULL;
    size_t len = 0;
    char *next = NULL;
    PyObject *entries, *nx;

    (void)self;
    if (!PyArg_ParseTuple(args, "spzn:dict_page", &name, &items, &after, &limit))
        return NULL;
    if (!(ctx = need_job("dict")))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = forq_task_dict_page(
        ctx, name, items, after, limit > 0 ? (size_t)limit : 0, &data, &len, &next);
    Py_END_ALLOW_THREADS if (rc != FORQ_TASK_DICT_OK)
    {
        free(data);
        free(next);
        const char *why = forq_task_dict_error(ctx);
        PyObject *w = PyUnicode_DecodeUTF8(why, (Py_ssize_t)strlen(why), "replace");
        return w ? Py_BuildValue("(iNO)", rc, w, Py_None) : NULL;
    }
    entries = data ? unpack(data, len) : PyList_New(0);
    if (next) {
        nx = PyUnicode_FromString(next);
    } else {
        Py_INCREF(Py_None);
        nx = Py_None;
    }
    free(data);
    free(next);
    if (!entries || !nx) {
        Py_XDECREF(entries);
        Py_XDECREF(nx);
        return NULL;
    }
    return Py_BuildValue("(iNN)", rc, entries, nx);
}

/* ---- the shared types: queues, locks, events (<forq/task.h>'s forq_task_queue_* ...) ----
 *
 * Each returns (rc, answer): rc one of the FORQ_TASK_DICT_* codes, the answer the call's (an
 * item, a count, a token, whether an event is set), or with ERROR the reason as a str ("code:
 * message"). A call that waits in forqd releases the GIL, as w_dict does. */

/* (rc, ok) or, with ERROR, (rc, the reason); steals ok (may be NULL: None). */
static PyObject *answer(forq_task_ctx_t *ctx, int rc, PyObject *ok)
{
    if (rc == FORQ_TASK_DICT_ERROR) {
        const char *why = forq_task_dict_error(ctx);
        Py_XDECREF(ok);
        ok = PyUnicode_DecodeUTF8(why, (Py_ssize_t)strlen(why), "replace");
        if (!ok)
            return NULL;
    } else if (!ok) {
        if (PyErr_Occurred())
            return NULL;
        Py_INCREF(Py_None);
        ok = Py_None;
    }
    return Py_BuildValue("(iN)", rc, ok);
}

/* queue_put(name, value, front, maxsize, timeout_ms) -> (rc, items after) */
static PyObject *w_queue_put(PyObject *self, PyObject *args)
{
    const char *name;
    PyObject *value;
    int front, timeout_ms, rc;
    Py_ssize_t maxsize;
    size_t count = 0;
    forq_task_ctx_t *ctx;
    msgpack_sbuffer sb;

    (void)self;
    if (!PyArg_ParseTuple(args, "sOpni:queue_put", &name, &value, &front, &maxsize, &timeout_ms))
        return NULL;
    if (!(ctx = need_job("queue")))
        return NULL;
    msgpack_sbuffer_init(&sb);
    if (pack_value(&sb, value) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS /* with maxsize, it may wait for room */
        rc = forq_task_queue_put(ctx, name, sb.data, sb.size, front,
                                 maxsize > 0 ? (size_t)maxsize : 0, timeout_ms, &count);
    Py_END_ALLOW_THREADS msgpack_sbuffer_destroy(&sb);
    return answer(ctx, rc, PyLong_FromSize_t(count));
}

/* queue_get(name, timeout_ms) -> (rc, item) */
static PyObject *w_queue_get(PyObject *self, PyObject *args)
{
    const char *name;
    int timeout_ms, rc;
    forq_task_ctx_t *ctx;
    void *out = NULL;
    size_t len = 0;
    PyObject *item = NULL;

    (void)self;
    if (!PyArg_ParseTuple(args, "si:queue_get", &name, &timeout_ms))
        return NULL;
    if (!(ctx = need_job("queue")))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = forq_task_queue_get(ctx, name, timeout_ms, &out, &len);
    Py_END_ALLOW_THREADS if (rc == FORQ_TASK_DICT_OK && out)
    {
        if (!(item = unpack(out, len))) {
            free(out);
            return NULL;
        }
    }
    free(out);
    return answer(ctx, rc, item);
}

/* queue_len(name) -> (rc, items) */
static PyObject *w_queue_len(PyObject *self, PyObject *args)
{
    const char *name;
    forq_task_ctx_t *ctx;
    size_t n = 0;
    int rc;

    (void)self;
    if (!PyArg_ParseTuple(args, "s:queue_len", &name))
        return NULL;
    if (!(ctx = need_job("queue")))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = forq_task_queue_len(ctx, name, &n);
    Py_END_ALLOW_THREADS return answer(ctx, rc, PyLong_FromSize_t(n));
}

/* lock_acquire(name, permits, lease_ms, timeout_ms) -> (rc, token) */
static PyObject *w_lock_acquire(PyObject *self, PyObject *args)
{
    const char *name;
    unsigned int permits;
    int lease_ms, timeout_ms, rc;
    uint64_t token = 0;
    forq_task_ctx_t *ctx;

    (void)self;
    if (!PyArg_ParseTuple(args, "sIii:lock_acquire", &name, &permits, &lease_ms, &timeout_ms))
        return NULL;
    if (!(ctx = need_job("lock")))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc =
        forq_task_lock_acquire(ctx, name, permits, lease_ms, timeout_ms, &token);
    Py_END_ALLOW_THREADS return answer(ctx, rc, PyLong_FromUnsignedLongLong(token));
}

/* lock_release(name, token) and lock_renew(name, token, lease_ms) -> (rc, None) */
static PyObject *w_lock_release(PyObject *self, PyObject *args)
{
    const char *name;
    unsigned long long token;
    forq_task_ctx_t *ctx;
    int rc;

    (void)self;
    if (!PyArg_ParseTuple(args, "sK:lock_release", &name, &token))
        return NULL;
    if (!(ctx = need_job("lock")))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = forq_task_lock_release(ctx, name, token);
    Py_END_ALLOW_THREADS return answer(ctx, rc, NULL);
}

static PyObject *w_lock_renew(PyObject *self, PyObject *args)
{
    const char *name;
    unsigned long long token;
    int lease_ms, rc;
    forq_task_ctx_t *ctx;

    (void)self;
    if (!PyArg_ParseTuple(args, "sKi:lock_renew", &name, &token, &lease_ms))
        return NULL;
    if (!(ctx = need_job("lock")))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = forq_task_lock_renew(ctx, name, token, lease_ms);
    Py_END_ALLOW_THREADS return answer(ctx, rc, NULL);
}

/* dict_set_fenced(name, key, value, lock, token) -> (rc, version); CONFLICT: stale token */
static PyObject *w_dict_set_fenced(PyObject *self, PyObject *args)
{
    const char *name, *key, *lock;
    PyObject *value;
    unsigned long long token;
    uint64_t ver = 0;
    forq_task_ctx_t *ctx;
    msgpack_sbuffer sb;
    int rc;

    (void)self;
    if (!PyArg_ParseTuple(args, "ssOsK:dict_set_fenced", &name, &key, &value, &lock, &token))
        return NULL;
    if (!(ctx = need_job("dict")))
        return NULL;
    msgpack_sbuffer_init(&sb);
    if (pack_value(&sb, value) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS rc =
        forq_task_dict_set_fenced(ctx, name, key, sb.data, sb.size, lock, token, &ver);
    Py_END_ALLOW_THREADS msgpack_sbuffer_destroy(&sb);
    return answer(ctx, rc, PyLong_FromUnsignedLongLong(ver));
}

/* event(op, name) -> (rc, None): op "set" or "clear" */
static PyObject *w_event(PyObject *self, PyObject *args)
{
    const char *op, *name;
    forq_task_ctx_t *ctx;
    int rc;

    (void)self;
    if (!PyArg_ParseTuple(args, "ss:event", &op, &name))
        return NULL;
    if (strcmp(op, "set") != 0 && strcmp(op, "clear") != 0) {
        PyErr_Format(PyExc_ValueError, "event op must be 'set' or 'clear', not '%s'", op);
        return NULL;
    }
    if (!(ctx = need_job("event")))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc =
        op[0] == 's' ? forq_task_event_set(ctx, name) : forq_task_event_clear(ctx, name);
    Py_END_ALLOW_THREADS return answer(ctx, rc, NULL);
}

/* event_wait(name, timeout_ms) -> (rc, is set) */
static PyObject *w_event_wait(PyObject *self, PyObject *args)
{
    const char *name;
    int timeout_ms, rc, is_set = 0;
    forq_task_ctx_t *ctx;

    (void)self;
    if (!PyArg_ParseTuple(args, "si:event_wait", &name, &timeout_ms))
        return NULL;
    if (!(ctx = need_job("event")))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = forq_task_event_wait(ctx, name, timeout_ms, &is_set);
    Py_END_ALLOW_THREADS return answer(ctx, rc, PyBool_FromLong(is_set));
}

static PyMethodDef methods[] = {
    {"job_id", w_job_id, METH_NOARGS, "The running job's id, or None between jobs."},
    {"task_name", w_task_name, METH_NOARGS, "The running task's name, or None between jobs."},
    {"progress", w_progress, METH_VARARGS, "progress(done, total, text): report progress."},
    {"cancelled", w_cancelled, METH_NOARGS, "Has forqd asked to cancel the running job?"},
    {"log", w_log, METH_VARARGS, "log(level, text): a line in forqd's log (syslog level)."},
    {"log_level", w_log_level, METH_NOARGS, "forqd's log level (syslog's numbers)."},
    {"pending", w_pending, METH_NOARGS, "A writer holds a partial line: flush at the job's end."},
    {"dict", w_dict, METH_VARARGS,
     "dict(op, name, key, value, has_value, delta, version, timeout_ms) -> (rc, value, version)"},
    {"dict_page", w_dict_page, METH_VARARGS,
     "dict_page(name, items, after, limit) -> (rc, entries, next)"},
    {"queue_put", w_queue_put, METH_VARARGS,
     "queue_put(name, value, front, maxsize, timeout_ms) -> (rc, count)"},
    {"queue_get", w_queue_get, METH_VARARGS, "queue_get(name, timeout_ms) -> (rc, item)"},
    {"queue_len", w_queue_len, METH_VARARGS, "queue_len(name) -> (rc, count)"},
    {"lock_acquire", w_lock_acquire, METH_VARARGS,
     "lock_acquire(name, permits, lease_ms, timeout_ms) -> (rc, token)"},
    {"lock_release", w_lock_release, METH_VARARGS, "lock_release(name, token) -> (rc, None)"},
    {"lock_renew", w_lock_renew, METH_VARARGS, "lock_renew(name, token, lease_ms) -> (rc, None)"},
    {"dict_set_fenced", w_dict_set_fenced, METH_VARARGS,
     "dict_set_fenced(name, key, value, lock, token) -> (rc, version)"},
    {"event", w_event, METH_VARARGS, "event(op, name) -> (rc, None): op 'set' or 'clear'"},
    {"event_wait", w_event_wait, METH_VARARGS, "event_wait(name, timeout_ms) -> (rc, is_set)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_forq_worker",
    "forqd's side of forq.worker: use forq.worker, not this module.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyObject *pyworker_module_init(void)
{
    PyObject *m = PyModule_Create(&module);

    if (m && (PyModule_AddIntConstant(m, "OK", FORQ_TASK_DICT_OK) < 0 ||
              PyModule_AddIntConstant(m, "NOT_FOUND", FORQ_TASK_DICT_NOT_FOUND) < 0 ||
              PyModule_AddIntConstant(m, "CONFLICT", FORQ_TASK_DICT_CONFLICT) < 0 ||
              PyModule_AddIntConstant(m, "TIMEOUT", FORQ_TASK_DICT_TIMEOUT) < 0 ||
              PyModule_AddIntConstant(m, "ERROR", FORQ_TASK_DICT_ERROR) < 0 ||
              PyModule_AddIntConstant(m, "EMPTY", FORQ_TASK_DICT_EMPTY) < 0 ||
              PyModule_AddIntConstant(m, "FULL", FORQ_TASK_DICT_FULL) < 0 ||
              PyModule_AddObject(m, "NEXT_CHANGE",
                                 PyLong_FromUnsignedLongLong(FORQ_TASK_DICT_NEXT_CHANGE)) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
