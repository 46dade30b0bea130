/* pyconv.c - msgpack <-> Python values, see pyrt.h. The one definition of the mapping that
 * PROTOCOL.md ("Python tasks") documents:
 *
 *   msgpack nil, bool, int, float  <->  None, bool, int (64 bits, signed or unsigned), float
 *   str <-> str (UTF-8), bin <-> bytes (bytearray and memoryview are sent as bin too)
 *   array <-> list (a tuple is sent as an array; an array used as a map key becomes a tuple)
 *   map <-> dict
 *
 * Anything else in a result (a set, an int beyond 64 bits, a datetime, any other object) is a
 * TypeError that names its type; msgpack extension values in args are a TypeError too. No
 * user code runs while packing (no __reduce__, no __index__ on a non-int): what crosses is data
 * only. */
#include "pyrt.h"

#include <stdint.h>

static PyObject *to_py(const msgpack_object *o, bool as_key);

static PyObject *array_to_py(const msgpack_object_array *a, bool as_tuple)
{
    PyObject *r = as_tuple ? PyTuple_New(a->size) : PyList_New(a->size);

    if (!r)
        return NULL;
    for (uint32_t i = 0; i < a->size; i++) {
        PyObject *item = to_py(&a->ptr[i], as_tuple);
        if (!item) {
            Py_DECREF(r);
            return NULL;
        }
        if (as_tuple)
            PyTuple_SET_ITEM(r, i, item); /* steals */
        else
            PyList_SET_ITEM(r, i, item);
    }
    return r;
}

static PyObject *map_to_py(const msgpack_object_map *m)
{
    PyObject *d = PyDict_New();

    if (!d)
        return NULL;
    for (uint32_t i = 0; i < m->size; i++) {
        PyObject *k = to_py(&m->ptr[i].key, true);
        PyObject *v = k ? to_py(&m->ptr[i].val, false) : NULL;
        int r = v ? PyDict_SetItem(d, k, v) : -1;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (r < 0) {
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_SetString(PyExc_TypeError,
                                "a map key that is a map has no Python form (a dict cannot be "
                                "a dict's key)");
            }
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

/* as_key: arrays become tuples, so that a map keyed by arrays is a dict keyed by tuples */
static PyObject *to_py(const msgpack_object *o, bool as_key)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        Py_RETURN_NONE;
    case MSGPACK_OBJECT_BOOLEAN:
        return PyBool_FromLong(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return PyLong_FromUnsignedLongLong(o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return PyLong_FromLongLong(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return PyFloat_FromDouble(o->via.f64);
    case MSGPACK_OBJECT_STR:
        /* strict: a str that is not UTF-8 is a UnicodeDecodeError (send bytes as bin) */
        return PyUnicode_DecodeUTF8(o->via.str.size ? o->via.str.ptr : "",
                                    (Py_ssize_t)o->via.str.size, "strict");
    case MSGPACK_OBJECT_BIN:
        return PyBytes_FromStringAndSize(o->via.bin.size ? o->via.bin.ptr : "",
                                         (Py_ssize_t)o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY:
        return array_to_py(&o->via.array, as_key);
    case MSGPACK_OBJECT_MAP:
        return map_to_py(&o->via.map);
    case MSGPACK_OBJECT_EXT:
        return PyErr_Format(PyExc_TypeError,
                            "a msgpack extension value (type %d) has no Python form here",
                            (int)o->via.ext.type);
    }
    return PyErr_Format(PyExc_TypeError, "an unknown msgpack value (type %d)", (int)o->type);
}

PyObject *pyconv_to_py(const msgpack_object *o)
{
    return to_py(o, false);
}

static int pack_int(msgpack_packer *pk, PyObject *v)
{
    int overflow = 0;
    long long s = PyLong_AsLongLongAndOverflow(v, &overflow);

    if (s == -1 && PyErr_Occurred())
        return -1;
    if (!overflow)
        return msgpack_pack_int64(pk, s) < 0 ? -1 : 0;
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(v);
        if (!(u == (unsigned long long)-1 && PyErr_Occurred()))
            return msgpack_pack_uint64(pk, u) < 0 ? -1 : 0;
        PyErr_Clear();
    }
    PyErr_Format(PyExc_TypeError,
                 "an int beyond 64 bits (%s) has no msgpack form; send it as a str",
                 overflow > 0 ? "2**64 or more" : "below -2**63");
    return -1;
}

static int pack(msgpack_packer *pk, PyObject *v, unsigned depth);

static int pack_seq(msgpack_packer *pk, PyObject *v, unsigned depth)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
    PyObject **items = PySequence_Fast_ITEMS(v);

    if ((uint64_t)n > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a list of more than 2**32-1 items has no msgpack form");
        return -1;
    }
    if (msgpack_pack_array(pk, (size_t)n) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        int r = pack(pk, items[i], depth + 1);
        if (r < 0)
            return r;
    }
    return 0;
}

static int pack_dict(msgpack_packer *pk, PyObject *v, unsigned depth)
{
    Py_ssize_t pos = 0;
    PyObject *k, *val;

    if (msgpack_pack_map(pk, (size_t)PyDict_GET_SIZE(v)) < 0)
        return -1;
    /* packing runs no Python code, so the dict cannot change under PyDict_Next */
    while (PyDict_Next(v, &pos, &k, &val)) {
        int r = pack(pk, k, depth + 1);
        if (r == 0)
            r = pack(pk, val, depth + 1);
        if (r < 0)
            return r;
    }
    return 0;
}

static int pack_bytes(msgpack_packer *pk, const void *p, Py_ssize_t n)
{
    if ((uint64_t)n > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "bytes longer than 4 GiB have no msgpack form");
        return -1;
    }
    if (msgpack_pack_bin(pk, (size_t)n) < 0 || (n && msgpack_pack_bin_body(pk, p, (size_t)n) < 0))
        return -1;
    return 0;
}

static int pack(msgpack_packer *pk, PyObject *v, unsigned depth)
{
    if (depth >= PYCONV_DEPTH_MAX && (PyList_Check(v) || PyTuple_Check(v) || PyDict_Check(v)))
        return -2;
    if (v == Py_None)
        return msgpack_pack_nil(pk) < 0 ? -1 : 0;
    if (PyBool_Check(v))
        return (v == Py_True ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) < 0 ? -1 : 0;
    if (PyLong_Check(v))
        return pack_int(pk, v);
    if (PyFloat_Check(v))
        return msgpack_pack_double(pk, PyFloat_AS_DOUBLE(v)) < 0 ? -1 : 0;
    if (PyUnicode_Check(v)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        if (!s)
            return -1; /* lone surrogates: UnicodeEncodeError */
        if (msgpack_pack_str(pk, (size_t)n) < 0 ||
            (n && msgpack_pack_str_body(pk, s, (size_t)n) < 0))
            return -1;
        return 0;
    }
    if (PyBytes_Check(v))
        return pack_bytes(pk, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
    if (PyByteArray_Check(v))
        return pack_bytes(pk, PyByteArray_AS_STRING(v), PyByteArray_GET_SIZE(v));
    if (PyMemoryView_Check(v)) {
        Py_buffer b;
        int r;
        if (PyObject_GetBuffer(v, &b, PyBUF_CONTIG_RO) < 0)
            return -1;
        r = pack_bytes(pk, b.buf, b.len);
        PyBuffer_Release(&b);
        return r;
    }
    if (PyList_Check(v) || PyTuple_Check(v)) {
        /* PySequence_Fast of a list or tuple is the object itself: no copy, no user code */
        PyObject *seq = PySequence_Fast(v, "");
        int r;
        if (!seq)
            return -1;
        r = pack_seq(pk, seq, depth);
        Py_DECREF(seq);
        return r;
    }
    if (PyDict_Check(v))
        return pack_dict(pk, v, depth);
    PyErr_Format(PyExc_TypeError,
                 "a value of type '%.200s' has no msgpack form; send None, bool, int (64 bits), "
                 "float, str, bytes, list, tuple or dict",
                 Py_TYPE(v)->tp_name);
    return -1;
}

int pyconv_pack(msgpack_packer *pk, PyObject *v)
{
    int r = pack(pk, v, 0);
    if (r == -1 && !PyErr_Occurred())
        PyErr_SetString(PyExc_MemoryError, "cannot pack the value (out of memory)");
    return r;
}

/* Is this the keyword-arguments element {"$kw": {...}}? */
static bool is_kwargs(const msgpack_object *o)
{
    const msgpack_object_kv *kv;

    if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size != 1)
        return false;
    kv = &o->via.map.ptr[0];
    return kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 3 &&
           memcmp(kv->key.via.str.ptr, "$kw", 3) == 0 && kv->val.type == MSGPACK_OBJECT_MAP;
}

static PyObject *kwargs_to_py(const msgpack_object_map *m)
{
    for (uint32_t i = 0; i < m->size; i++)
        if (m->ptr[i].key.type != MSGPACK_OBJECT_STR)
            return PyErr_Format(PyExc_TypeError,
                                "keyword argument names must be strings (\"$kw\" map entry %u "
                                "is not)",
                                i + 1);
    return map_to_py(m);
}

int pyconv_args(const msgpack_object *args, PyObject **ret_args, PyObject **ret_kwargs)
{
    const msgpack_object *items = args;
    uint32_t n = 1;
    PyObject *pos, *kw = NULL;

    if (args->type == MSGPACK_OBJECT_ARRAY) {
        items = args->via.array.ptr;
        n = args->via.array.size;
        if (n > 0 && is_kwargs(&items[n - 1])) {
            if (!(kw = kwargs_to_py(&items[n - 1].via.map.ptr[0].val.via.map)))
                return -1;
            n--;
        }
    }
    if (!(pos = PyTuple_New(n))) {
        Py_XDECREF(kw);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        PyObject *a = to_py(&items[i], false);
        if (!a) {
            Py_DECREF(pos);
            Py_XDECREF(kw);
            return -1;
        }
        PyTuple_SET_ITEM(pos, i, a);
    }
    *ret_args = pos;
    *ret_kwargs = kw;
    return 0;
}
