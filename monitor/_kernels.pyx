# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled kernels of the per-record hot path: reading a batch of record dicts into columns.

Built by ``pip install`` (Cython); :mod:`monitor.columns` uses them when they import and
falls back to its pure-Python path otherwise, with identical results (checked by
``tests/unit/test_kernels.py``). Each function does what a few Python passes over the batch
do (``itemgetter``, ``set(map(type, ...))``, ``np.fromiter``, ``dict.fromkeys``) in one pass.

The value rules are those of :mod:`monitor.columns`: a numeric value is valid when it is a
finite ``float`` or ``int`` (not ``bool``); ``None``, an absent key, NaN and +-inf are missing;
anything else (a string, a bool, an integer beyond float range, ...) is a wrong type.

The kernels run no user code while they hold borrowed references: they take only plain
containers (``dict`` records, lists whose element access is ``list``'s own) and give up
(return ``None``, so the caller takes the pure-Python path) on what would need it, such as a
number of a subclass of ``int`` or ``float`` (``float(v)`` may call its ``__float__``).
"""

from cpython.dict cimport PyDict_GetItem, PyDict_GetItemWithError, PyDict_Next
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.math cimport NAN, isfinite

import numpy as np

cdef extern from "Python.h":
    bint PyFloat_CheckExact(object o)
    bint PyFloat_Check(object o)
    bint PyLong_Check(object o)
    bint PyBool_Check(object o)
    bint PyDict_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    double PyFloat_AS_DOUBLE(object o)
    double PyLong_AsDouble(object o) except? -1.0

cdef signed char VALID = 0
cdef signed char MISSING = 1
cdef signed char WRONG_TYPE = 2
cdef signed char NEEDS_PYTHON = 3  # a number of a subclass: left to the pure-Python path


cdef inline signed char _number(object v, double* out):
    """The value's status, and its float in ``out`` (NaN unless valid); runs no user code."""
    cdef double d
    out[0] = NAN
    if v is None:
        return MISSING
    if PyFloat_CheckExact(v):
        d = PyFloat_AS_DOUBLE(v)
    elif PyLong_CheckExact(v):
        try:
            d = PyLong_AsDouble(v)
        except OverflowError:
            return WRONG_TYPE
    elif PyBool_Check(v):
        return WRONG_TYPE
    elif PyLong_Check(v) or PyFloat_Check(v):  # IntEnum, numpy.float64, ...: float(v) is theirs
        return NEEDS_PYTHON
    else:
        return WRONG_TYPE
    if not isfinite(d):
        return MISSING
    out[0] = d
    return VALID


def extract_rows(object batch, tuple numeric, tuple other):
    """One pass over the records of ``batch`` (dicts): the numeric fields ``numeric`` as a block
    and the fields ``other`` as lists of values.

    Returns ``(x, status, values, absent)``: ``x`` (float64) and ``status`` (int8, 0 valid,
    1 missing, 2 wrong type) of shape ``(len(numeric), len(batch))``; ``values`` one list per
    name of ``other`` (``None`` where a record lacks the key); ``absent`` the number of records
    lacking each key, numeric names first. ``None`` when ``batch`` is not a plain list, some
    record is not a plain ``dict``, or some number is of a subclass.

    Records from one producer have their keys in one order: the first record's order is learnt,
    and a record with the same keys in the same order is read by walking its entries, without a
    hash lookup per field; any other record is read by lookups.
    """
    if not _plain_list(batch):
        return None
    # Own every record for the whole pass, whatever the list does meanwhile.
    cdef tuple records = tuple(<list>batch)
    cdef Py_ssize_t n = PyTuple_GET_SIZE(records)
    cdef Py_ssize_t k = PyTuple_GET_SIZE(numeric)
    cdef Py_ssize_t m = PyTuple_GET_SIZE(other)
    cdef Py_ssize_t i, j, c, pos, width = 0
    cdef PyObject* p
    cdef PyObject* key
    cdef PyObject* value
    cdef object rec, name
    cdef double d
    for i in range(n):
        if not PyDict_CheckExact(<object>PyTuple_GET_ITEM(records, i)):
            return None  # a dict subclass may have its own __getitem__ or __missing__
    x = np.empty((k, n), dtype=np.float64)
    status = np.empty((k, n), dtype=np.int8)
    cdef double[:, ::1] xv = x
    cdef signed char[:, ::1] sv = status
    cdef list values = [[None] * n for j in range(m)]
    cdef Py_ssize_t[::1] absent = np.zeros(k + m, dtype=np.intp)
    # The learnt layout: the first record's keys and, per position, the wanted column (-1: none);
    # none learnt (width 0) when the first record lacks a wanted key or a name is wanted twice.
    cdef list keys = []
    cdef Py_ssize_t[::1] target = np.empty(0, dtype=np.intp)
    cdef dict wanted
    if n:
        rec = <object>PyTuple_GET_ITEM(records, 0)
        keys = list(<dict>rec)
        wanted = {name: j for j, name in enumerate(numeric + other)}
        if len(wanted) == k + m and wanted.keys() <= set(keys):
            target = np.array([wanted.get(key_, -1) for key_ in keys], dtype=np.intp)
            width = len(keys)
    for i in range(n):
        rec = <object>PyTuple_GET_ITEM(records, i)
        if width != 0 and len(<dict>rec) == width:
            # Walk the entries; a key out of place sends the record to the lookups below, which
            # rewrite every column of it (a None where a key turns out to be absent).
            pos = 0
            c = 0
            while PyDict_Next(rec, &pos, &key, &value):
                if key != <PyObject*>PyList_GET_ITEM(keys, c) and not _same_str(key, PyList_GET_ITEM(keys, c)):
                    break
                j = target[c]
                c += 1
                if j < 0:
                    continue
                if j < k:
                    sv[j, i] = _number(<object>value, &d)
                    if sv[j, i] == NEEDS_PYTHON:
                        return None
                    xv[j, i] = d
                else:
                    _put(values, j - k, i, value)
            else:
                continue  # every wanted key was here, in the learnt positions
        # A lookup may run a colliding key's __eq__ (and raise, as indexing would): each value
        # found is used before the next lookup.
        for j in range(k):
            p = PyDict_GetItemWithError(rec, <object>PyTuple_GET_ITEM(numeric, j))
            if p is NULL:
                absent[j] += 1
                xv[j, i] = NAN
                sv[j, i] = MISSING
            else:
                sv[j, i] = _number(<object>p, &d)
                if sv[j, i] == NEEDS_PYTHON:
                    return None
                xv[j, i] = d
        for j in range(m):
            p = PyDict_GetItemWithError(rec, <object>PyTuple_GET_ITEM(other, j))
            if p is NULL:
                absent[k + j] += 1
                _put(values, j, i, <PyObject*>None)
            else:
                _put(values, j, i, p)
    return x, status, values, np.asarray(absent).tolist()


cdef bint _plain_list(object obj):
    """A ``list``, or a subclass that reads its items as ``list`` does (``RecordBatch``)."""
    if type(obj) is list:
        return True
    if not isinstance(obj, list):
        return False
    cls = type(obj)
    return (cls.__iter__ is list.__iter__ and cls.__len__ is list.__len__
            and cls.__getitem__ is list.__getitem__)


cdef inline bint _same_str(PyObject* a, PyObject* b):
    """Equal ``str`` keys that are different objects (only ``str``: no user ``__eq__`` runs while
    a record's entries are walked)."""
    return PyUnicode_CheckExact(<object>a) and PyUnicode_CheckExact(<object>b) and <object>a == <object>b


cdef inline void _put(list values, Py_ssize_t j, Py_ssize_t i, PyObject* v):
    """``values[j][i] = v`` (replacing the ``None`` placed there)."""
    cdef object col = <object>PyList_GET_ITEM(values, j)
    cdef PyObject* old = PyList_GET_ITEM(col, i)
    Py_INCREF(<object>v)
    PyList_SET_ITEM(col, i, <object>v)
    Py_DECREF(<object>old)


def numeric_lists(list columns, Py_ssize_t n):
    """The block ``(x, status)`` of numeric columns given as lists of ``n`` values each (a
    columnar message); ``None`` when some column is not a ``list`` of length ``n`` (or holds a
    number of a subclass)."""
    cdef Py_ssize_t k = PyList_GET_SIZE(columns)
    cdef Py_ssize_t i, j
    cdef list values
    cdef object col
    cdef double d
    for j in range(k):
        col = <object>PyList_GET_ITEM(columns, j)
        if type(col) is not list or PyList_GET_SIZE(col) != n:
            return None
    x = np.empty((k, n), dtype=np.float64)
    status = np.empty((k, n), dtype=np.int8)
    cdef double[:, ::1] xv = x
    cdef signed char[:, ::1] sv = status
    for j in range(k):
        values = <list>PyList_GET_ITEM(columns, j)
        for i in range(n):
            sv[j, i] = _number(<object>PyList_GET_ITEM(values, i), &d)
            if sv[j, i] == NEEDS_PYTHON:
                return None
            xv[j, i] = d
    return x, status


def encode_strings(object column):
    """Codes of a categorical column whose values are all ``str`` or ``None``: ``(codes, vocab)``
    with ``vocab`` the distinct strings in order of first appearance, ``codes`` (int32) each
    value's index in it and -1 for ``None``; ``None`` when some value is of another type (or
    ``column`` is not a list)."""
    if not _plain_list(column):
        return None
    cdef list values = <list>column
    cdef Py_ssize_t n = PyList_GET_SIZE(values)
    cdef Py_ssize_t i
    cdef PyObject* p
    cdef object v
    cdef dict index = {}
    cdef list vocab = []
    codes = np.empty(n, dtype=np.int32)
    cdef int[::1] cv = codes
    for i in range(n):
        v = <object>PyList_GET_ITEM(values, i)
        if v is None:
            cv[i] = -1
            continue
        if not PyUnicode_CheckExact(v):
            return None
        p = PyDict_GetItem(index, v)
        if p is NULL:
            cv[i] = len(vocab)
            index[v] = cv[i]
            vocab.append(v)
        else:
            cv[i] = <object>p
    return codes, vocab
