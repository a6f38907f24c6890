/* Per-object sums of one image channel, run by run: the compiled kernel of
 * steinbock_like.measure.intensities.RunSums.
 *
 * run_sums(values, starts, labels, out) adds, for every run r, the float64 sum of
 * values[starts[r]:starts[r + 1]] (the last run ends at len(values)) to
 * out[labels[r]]. Buffers are C-contiguous, native byte order:
 *   values  float32 'f', float64 'd', uint16 'H', int16 'h', uint8 'B', int8 'b'
 *   starts  int32 'i' or int64 'l'/'q', ascending, starts[0] == 0
 *   labels  uint32 'I' or int64 'l'/'q', each < len(out)
 *   out     float64 'd', writable
 * Runs are summed in order and added in run order, as np.add.reduceat followed by
 * np.bincount do, so the result is the numpy path's to the last bit. The GIL is
 * released while summing: channels can be reduced in threads.
 *
 * Built as an optional extension (setup.py): where no compiler is available the
 * numpy path is used and results are the same.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static char buffer_code(const Py_buffer *view)
{
    const char *format = view->format ? view->format : "B";
    /* numpy writes '<f' or '=f' for native little-endian: take the type letter */
    size_t length = strlen(format);
    if (length == 2 && (format[0] == '<' || format[0] == '=' || format[0] == '@')) {
        return format[1];
    }
    return length == 1 ? format[0] : '\0';
}

/* One loop per (value, start, label) type: the types are fixed inside the loop. */
#define SUM_RUNS(VALUE_T, START_T, LABEL_T)                                     \
    {                                                                           \
        const VALUE_T *v = (const VALUE_T *)values;                             \
        const START_T *s = (const START_T *)starts;                             \
        const LABEL_T *l = (const LABEL_T *)labels;                             \
        for (Py_ssize_t r = 0; r < num_runs; r++) {                             \
            int64_t begin = (int64_t)s[r];                                      \
            int64_t end = r + 1 < num_runs ? (int64_t)s[r + 1] : num_values;    \
            int64_t label = (int64_t)l[r];                                      \
            if (label < 0 || label >= num_out || begin < 0 || begin > end       \
                || end > num_values) {                                          \
                bad_label = 1;                                                  \
                break;                                                          \
            }                                                                   \
            double sum = 0.0;                                                   \
            for (int64_t k = begin; k < end; k++) {                             \
                sum += (double)v[k];                                            \
            }                                                                   \
            out[label] += sum;                                                  \
        }                                                                       \
    }

#define SUM_RUNS_INDEXED(VALUE_T)                                               \
    if (start_code == 'i' && label_code == 'I') SUM_RUNS(VALUE_T, int32_t, uint32_t)      \
    else if (start_code == 'i') SUM_RUNS(VALUE_T, int32_t, int64_t)             \
    else if (label_code == 'I') SUM_RUNS(VALUE_T, int64_t, uint32_t)            \
    else SUM_RUNS(VALUE_T, int64_t, int64_t)

static int is_index_code(char code, int allow_unsigned32)
{
    return code == 'i' || code == 'l' || code == 'q' || (allow_unsigned32 && code == 'I');
}

static PyObject *run_sums(PyObject *self, PyObject *args)
{
    PyObject *objects[4];
    Py_buffer views[4];
    int flags[4] = {PyBUF_C_CONTIGUOUS | PyBUF_FORMAT, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT,
                    PyBUF_C_CONTIGUOUS | PyBUF_FORMAT,
                    PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE};
    int acquired = 0;
    if (!PyArg_ParseTuple(args, "OOOO", &objects[0], &objects[1], &objects[2], &objects[3])) {
        return NULL;
    }
    for (; acquired < 4; acquired++) {
        if (PyObject_GetBuffer(objects[acquired], &views[acquired], flags[acquired]) < 0) {
            for (int i = 0; i < acquired; i++) {
                PyBuffer_Release(&views[i]);
            }
            return NULL;
        }
    }
    Py_buffer values_view = views[0], starts_view = views[1], labels_view = views[2],
              out_view = views[3];
    PyObject *result = NULL;
    char value_code = buffer_code(&values_view);
    char start_code = buffer_code(&starts_view);
    char label_code = buffer_code(&labels_view);
    /* 'l' is 8 bytes on the 64-bit platforms this is built for; checked below */
    if (!strchr("fdHhBb", value_code) || value_code == '\0') {
        PyErr_SetString(PyExc_TypeError, "run_sums: unsupported value type");
        goto done;
    }
    if (!is_index_code(start_code, 0) || starts_view.itemsize != (start_code == 'i' ? 4 : 8)
        || !is_index_code(label_code, 1)
        || labels_view.itemsize != (label_code == 'I' ? 4 : 8)) {
        PyErr_SetString(PyExc_TypeError, "run_sums: starts int32/int64, labels uint32/int64");
        goto done;
    }
    if (buffer_code(&out_view) != 'd') {
        PyErr_SetString(PyExc_TypeError, "run_sums: out must be float64");
        goto done;
    }
    Py_ssize_t num_values = values_view.len / values_view.itemsize;
    Py_ssize_t num_runs = starts_view.len / starts_view.itemsize;
    if (labels_view.len / labels_view.itemsize != num_runs) {
        PyErr_SetString(PyExc_ValueError, "run_sums: starts and labels differ in length");
        goto done;
    }
    const void *values = values_view.buf;
    const void *starts = starts_view.buf;
    const void *labels = labels_view.buf;
    double *out = (double *)out_view.buf;
    int64_t num_out = out_view.len / (Py_ssize_t)sizeof(double);
    int bad_label = 0;
    Py_BEGIN_ALLOW_THREADS
    switch (value_code) {
    case 'f': SUM_RUNS_INDEXED(float) break;
    case 'd': SUM_RUNS_INDEXED(double) break;
    case 'H': SUM_RUNS_INDEXED(uint16_t) break;
    case 'h': SUM_RUNS_INDEXED(int16_t) break;
    case 'B': SUM_RUNS_INDEXED(uint8_t) break;
    case 'b': SUM_RUNS_INDEXED(int8_t) break;
    }
    Py_END_ALLOW_THREADS
    if (bad_label) {
        PyErr_SetString(PyExc_ValueError, "run_sums: a run or label is out of range");
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    for (int i = 0; i < 4; i++) {
        PyBuffer_Release(&views[i]);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"run_sums", run_sums, METH_VARARGS,
     "run_sums(values, starts, labels, out): add each run's float64 sum to out[label]."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_run_sums", "Compiled run sums for measure intensities.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__run_sums(void)
{
    return PyModule_Create(&module);
}
