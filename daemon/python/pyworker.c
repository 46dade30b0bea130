/* pyworker.c - _forq_worker, the built-in module behind forq.worker (python/forq/worker.py):
 * the running job's id, progress, cancel check, log lines and dict calls, over the task
 * context that forqd gives the running task (<forq/task.h>). forq/worker.py holds the
 * user-facing API (docstrings, the Dict-like class, error classes); this file only crosses
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
              PyModule_AddObject(m, "NEXT_CHANGE",
                                 PyLong_FromUnsignedLongLong(FORQ_TASK_DICT_NEXT_CHANGE)) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
