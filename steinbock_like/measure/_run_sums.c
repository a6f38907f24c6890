/* Per-object sums of image channels, run by run: the compiled kernel of
 * steinbock_like.measure.intensities.RunSums.
 *
 * run_sums(channels, starts, labels, out): for every channel i and every run r, adds
 * the float64 sum of channels[i][starts[r]:starts[r + 1]] (the last run ends at the
 * channel's end) to out[i, labels[r]]. Buffers are C-contiguous, native byte order:
 *   channels  a sequence of equally long 1-D buffers of one type: float32 'f',
 *             float64 'd', uint16 'H', int16 'h', uint8 'B' or int8 'b'
 *   starts    int32 'i' or int64 'l'/'q', ascending from 0
 *   labels    uint32 'I' or int64 'l'/'q', each < out.shape[1]
 *   out       float64 'd', shape (len(channels), N), writable
 * Each run is summed in order and the runs are added in run order (as np.bincount
 * adds them; np.add.reduceat may sum a long run pairwise): for values whose float64
 * sums are exact (integers, float32 of one scale) the result is numpy's to the bit.
 * Channels are summed four at a time: runs are short (~9 pixels in a cell mask),
 * and four independent sums hide the latency of the additions and the cost of each
 * run's start. The GIL is released: channels can be reduced in threads.
 *
 * Built as an optional extension (setup.py): where no compiler is available the
 * numpy path is used, with the same results.
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

#define MAX_GROUP 4

/* Sums of G channels (G = 1..4, a constant in each instance) over every run. */
#define SUM_GROUP(VALUE_T, START_T, LABEL_T, G)                                 \
    {                                                                           \
        const START_T *s = (const START_T *)starts;                             \
        const LABEL_T *l = (const LABEL_T *)labels;                             \
        const VALUE_T *v[MAX_GROUP];                                            \
        double *o[MAX_GROUP];                                                   \
        for (int c = 0; c < G; c++) {                                           \
            v[c] = (const VALUE_T *)values[first + c];                          \
            o[c] = out + (first + c) * num_out;                                 \
        }                                                                       \
        for (Py_ssize_t r = 0; r < num_runs; r++) {                             \
            int64_t begin = (int64_t)s[r];                                      \
            int64_t end = r + 1 < num_runs ? (int64_t)s[r + 1] : num_values;    \
            double sum[MAX_GROUP] = {0.0, 0.0, 0.0, 0.0};                       \
            for (int64_t k = begin; k < end; k++) {                             \
                for (int c = 0; c < G; c++) {                                   \
                    sum[c] += (double)v[c][k];                                  \
                }                                                               \
            }                                                                   \
            for (int c = 0; c < G; c++) {                                       \
                o[c][l[r]] += sum[c];                                           \
            }                                                                   \
        }                                                                       \
    }

#define SUM_CHANNELS(VALUE_T, START_T, LABEL_T)                                 \
    for (Py_ssize_t first = 0; first < num_channels; first += MAX_GROUP) {      \
        switch (num_channels - first < MAX_GROUP ? num_channels - first : MAX_GROUP) { \
        case 1: SUM_GROUP(VALUE_T, START_T, LABEL_T, 1) break;                  \
        case 2: SUM_GROUP(VALUE_T, START_T, LABEL_T, 2) break;                  \
        case 3: SUM_GROUP(VALUE_T, START_T, LABEL_T, 3) break;                  \
        default: SUM_GROUP(VALUE_T, START_T, LABEL_T, 4) break;                 \
        }                                                                       \
    }

#define SUM_INDEXED(VALUE_T)                                                    \
    if (start_code == 'i' && label_code == 'I') {                               \
        SUM_CHANNELS(VALUE_T, int32_t, uint32_t)                                \
    } else if (start_code == 'i') {                                             \
        SUM_CHANNELS(VALUE_T, int32_t, int64_t)                                 \
    } else if (label_code == 'I') {                                             \
        SUM_CHANNELS(VALUE_T, int64_t, uint32_t)                                \
    } else {                                                                    \
        SUM_CHANNELS(VALUE_T, int64_t, int64_t)                                 \
    }

static int64_t index_at(const void *data, char code, Py_ssize_t i)
{
    switch (code) {
    case 'i': return ((const int32_t *)data)[i];
    case 'I': return ((const uint32_t *)data)[i];
    default: return ((const int64_t *)data)[i];
    }
}

/* The runs must tile [0, num_values) in order and every label index a column of out:
 * checked once, so that the summing loops need no checks. */
static int runs_are_valid(const void *starts, char start_code, const void *labels,
                          char label_code, Py_ssize_t num_runs, int64_t num_values,
                          int64_t num_out)
{
    int64_t previous = 0;
    for (Py_ssize_t r = 0; r < num_runs; r++) {
        int64_t begin = index_at(starts, start_code, r);
        int64_t label = index_at(labels, label_code, r);
        if ((r == 0 ? begin != 0 : begin < previous) || begin > num_values || label < 0
            || label >= num_out) {
            return 0;
        }
        previous = begin;
    }
    return 1;
}

static int is_index(const Py_buffer *view, int allow_unsigned32)
{
    char code = buffer_code(view);
    if (code == 'i' || (allow_unsigned32 && code == 'I')) {
        return view->itemsize == 4;
    }
    return (code == 'l' || code == 'q') && view->itemsize == 8;
}

static PyObject *run_sums(PyObject *self, PyObject *args)
{
    PyObject *channels_object, *starts_object, *labels_object, *out_object;
    if (!PyArg_ParseTuple(args, "OOOO", &channels_object, &starts_object, &labels_object,
                          &out_object)) {
        return NULL;
    }
    PyObject *channels = PySequence_Fast(channels_object, "run_sums: channels: a sequence");
    if (channels == NULL) {
        return NULL;
    }
    Py_ssize_t num_channels = PySequence_Fast_GET_SIZE(channels);
    Py_buffer *views = PyMem_Calloc((size_t)num_channels + 3, sizeof(Py_buffer));
    const void **values = PyMem_Calloc((size_t)num_channels + 1, sizeof(void *));
    Py_ssize_t acquired = 0;
    PyObject *result = NULL;
    if (views == NULL || values == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT;
    for (; acquired < num_channels + 3; acquired++) {
        PyObject *item = acquired < num_channels ? PySequence_Fast_GET_ITEM(channels, acquired)
                         : acquired == num_channels     ? starts_object
                         : acquired == num_channels + 1 ? labels_object
                                                        : out_object;
        int item_flags = acquired == num_channels + 2 ? flags | PyBUF_WRITABLE : flags;
        if (PyObject_GetBuffer(item, &views[acquired], item_flags) < 0) {
            goto done;
        }
    }
    Py_buffer *starts_view = &views[num_channels], *labels_view = &views[num_channels + 1],
              *out_view = &views[num_channels + 2];
    char value_code = num_channels ? buffer_code(&views[0]) : 'f';
    int64_t num_values = num_channels ? views[0].len / views[0].itemsize : 0;
    for (Py_ssize_t c = 0; c < num_channels; c++) {
        if (value_code == '\0' || !strchr("fdHhBb", value_code)
            || buffer_code(&views[c]) != value_code) {
            PyErr_SetString(PyExc_TypeError,
                            "run_sums: unsupported value type, or channels of different types");
            goto done;
        }
        if (views[c].len / views[c].itemsize != num_values) {
            PyErr_SetString(PyExc_ValueError, "run_sums: channels differ in length");
            goto done;
        }
        values[c] = views[c].buf;
    }
    if (!is_index(starts_view, 0) || !is_index(labels_view, 1)) {
        PyErr_SetString(PyExc_TypeError, "run_sums: starts int32/int64, labels uint32/int64");
        goto done;
    }
    if (buffer_code(out_view) != 'd') {
        PyErr_SetString(PyExc_TypeError, "run_sums: out must be float64");
        goto done;
    }
    Py_ssize_t num_runs = starts_view->len / starts_view->itemsize;
    if (labels_view->len / labels_view->itemsize != num_runs) {
        PyErr_SetString(PyExc_ValueError, "run_sums: starts and labels differ in length");
        goto done;
    }
    int64_t num_out = num_channels ? out_view->len / (Py_ssize_t)sizeof(double) / num_channels
                                   : 0;
    if (num_out * num_channels * (Py_ssize_t)sizeof(double) != out_view->len) {
        PyErr_SetString(PyExc_ValueError, "run_sums: out must have one row per channel");
        goto done;
    }
    const void *starts = starts_view->buf;
    const void *labels = labels_view->buf;
    char start_code = buffer_code(starts_view);
    char label_code = buffer_code(labels_view);
    double *out = (double *)out_view->buf;
    int valid = 1;
    Py_BEGIN_ALLOW_THREADS
    valid = num_channels == 0
            || runs_are_valid(starts, start_code, labels, label_code, num_runs, num_values,
                              num_out);
    if (valid && num_channels) {
        switch (value_code) {
        case 'f': SUM_INDEXED(float) break;
        case 'd': SUM_INDEXED(double) break;
        case 'H': SUM_INDEXED(uint16_t) break;
        case 'h': SUM_INDEXED(int16_t) break;
        case 'B': SUM_INDEXED(uint8_t) break;
        case 'b': SUM_INDEXED(int8_t) break;
        }
    }
    Py_END_ALLOW_THREADS
    if (!valid) {
        PyErr_SetString(PyExc_ValueError, "run_sums: a run or label is out of range");
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    for (Py_ssize_t i = 0; i < acquired; i++) {
        PyBuffer_Release(&views[i]);
    }
    PyMem_Free(views);
    PyMem_Free(values);
    Py_DECREF(channels);
    return result;
}

static PyMethodDef methods[] = {
    {"run_sums", run_sums, METH_VARARGS,
     "run_sums(channels, starts, labels, out): add each run's float64 sum to out[c, label]."},
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
