/* CSV rows of an integer index and float64 columns, with each float written as
 * Python's repr writes it (pandas' to_csv does the same): the compiled twin of
 * steinbock_like/io/float_text.py, ~10x faster.
 *
 * csv_rows(index, values) -> bytes
 *   index   int64, shape (n,)
 *   values  float64, shape (n, m), C-contiguous
 * Each row is "<index>,<v1>,...,<vm>\n"; NaN is an empty field.
 *
 * Method, for 1e-4 <= |x| < 1e16 (repr's positional range, the common case), all in
 * exact integer arithmetic (unsigned 128-bit): x = m * 2**q (m: 53-bit integer). With
 * e the decimal exponent of x and j = 16 - e, V = x * 10**j lies in [1e16, 1e17) and
 * equals N / 2**S exactly (N = m * 10**j * 2**(q + S), S = max(0, -q) + 2, N < 2**123).
 * The doubles that read as x are those within half a gap on either side: as integers
 * in the same units, half_up = 10**j * 2**(q - 1 + S) and half_down (a quarter gap
 * below a power of two), bounds included when m is even (round-half-even reading).
 * For t = 0, 1, ... the multiples of 10**t just below and above V are the only
 * (17 - t)-digit decimals that can read as x; the shortest t for which one of them
 * does is repr's digit count, and the nearer of the two repr's digits (a decimal that
 * fits at t also fits at every smaller t, so the search stops at the first failure).
 * Exact ties between the two, scientific notation (|x| < 1e-4 or >= 1e16 once
 * rounded), infinities and zero's sign are left to Python's own repr
 * (PyOS_double_to_string), so the text is always repr's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef unsigned __int128 u128;

/* Longest field written: "-0.0001" + 16 more digits, or a repr in scientific form */
#define MAX_FIELD 32

static u128 power_of_ten(int n)
{
    u128 p = 1;
    while (n-- > 0) {
        p *= 10;
    }
    return p;
}

static const uint64_t POW10[18] = {
    1ULL,
    10ULL,
    100ULL,
    1000ULL,
    10000ULL,
    100000ULL,
    1000000ULL,
    10000000ULL,
    100000000ULL,
    1000000000ULL,
    10000000000ULL,
    100000000000ULL,
    1000000000000ULL,
    10000000000000ULL,
    100000000000000ULL,
    1000000000000000ULL,
    10000000000000000ULL,
    100000000000000000ULL,
};

static u128 POW10_128[21];

/* repr(x) for positive x in the positional range; 0 where Python must decide. */
static int positional_repr(double x, char *out)
{
    if (!(x >= 1e-4 && x < 1e16)) {
        return 0;
    }
    int exp2;
    double fraction = frexp(x, &exp2);
    uint64_t m = (uint64_t)ldexp(fraction, 53); /* exact: 2**52 <= m < 2**53 */
    int q = exp2 - 53;
    int e = (int)floor(log10(x));
    int S = (q < 0 ? -q : 0) + 2;
    u128 N = 0;
    uint64_t Q = 0;
    int settled = 0;
    for (int attempt = 0; attempt < 3 && !settled; attempt++) {
        int j = 16 - e;
        if (j < 1 || j > 20) {
            return 0;
        }
        N = ((u128)m * POW10_128[j]) << (q + S);
        Q = (uint64_t)(N >> S);
        if (Q < POW10[16]) {
            e -= 1;
        } else if (Q >= POW10[17]) {
            e += 1;
        } else {
            settled = 1;
        }
    }
    if (!settled) {
        return 0;
    }
    int j = 16 - e;
    u128 half_up = POW10_128[j] << (q - 1 + S);
    u128 half_down = m == (1ULL << 52) ? POW10_128[j] << (q - 2 + S) : half_up;
    int inclusive = (m & 1) == 0;
    uint64_t best = 0;
    int best_t = -1;
    for (int t = 0; t <= 16; t++) {
        uint64_t p = POW10[t];
        uint64_t low = (Q / p) * p;
        uint64_t high = low + p;
        u128 below = N - ((u128)low << S);
        u128 above = ((u128)high << S) - N;
        int low_fits = below < half_down || (inclusive && below == half_down);
        int high_fits = above < half_up || (inclusive && above == half_up);
        if (!low_fits && !high_fits) {
            break;
        }
        if (low_fits && high_fits) {
            if (below == above) {
                return 0; /* an exact tie: repr's own rule decides */
            }
            best = below < above ? low : high;
        } else {
            best = low_fits ? low : high;
        }
        best_t = t;
    }
    if (best_t < 0) {
        return 0;
    }
    char digits[18];
    int count;
    if (best == POW10[17]) { /* rounded up to the next power of ten */
        digits[0] = '1';
        count = 1;
        e += 1;
        if (e > 15) {
            return 0;
        }
    } else {
        uint64_t value = best / POW10[best_t];
        count = 17 - best_t;
        for (int i = count - 1; i >= 0; i--) {
            digits[i] = (char)('0' + value % 10);
            value /= 10;
        }
    }
    int point = e + 1; /* digits before the decimal point */
    char *p = out;
    if (point > 0) {
        for (int i = 0; i < point; i++) {
            *p++ = i < count ? digits[i] : '0';
        }
        *p++ = '.';
        if (count > point) {
            memcpy(p, digits + point, (size_t)(count - point));
            p += count - point;
        } else {
            *p++ = '0';
        }
    } else {
        *p++ = '0';
        *p++ = '.';
        for (int i = 0; i < -point; i++) {
            *p++ = '0';
        }
        memcpy(p, digits, (size_t)count);
        p += count;
    }
    return (int)(p - out);
}

/* Python's repr of x, through Python itself (needs the GIL). */
static int python_repr(double x, char *out)
{
    char *text = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) {
        return -1;
    }
    size_t length = strlen(text);
    if (length > MAX_FIELD) {
        length = MAX_FIELD; /* cannot happen for a double; keeps the buffer safe */
    }
    memcpy(out, text, length);
    PyMem_Free(text);
    return (int)length;
}

static int write_integer(int64_t value, char *out)
{
    char reversed[24];
    int n = 0;
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    do {
        reversed[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    char *p = out;
    if (value < 0) {
        *p++ = '-';
    }
    while (n) {
        *p++ = reversed[--n];
    }
    return (int)(p - out);
}

static PyObject *csv_rows(PyObject *self, PyObject *args)
{
    PyObject *index_object, *values_object;
    if (!PyArg_ParseTuple(args, "OO", &index_object, &values_object)) {
        return NULL;
    }
    Py_buffer index, values;
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT;
    if (PyObject_GetBuffer(index_object, &index, flags) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(values_object, &values, flags) < 0) {
        PyBuffer_Release(&index);
        return NULL;
    }
    PyObject *result = NULL;
    char *buffer = NULL;
    const char *index_format = index.format ? index.format : "B";
    const char *values_format = values.format ? values.format : "B";
    if (index.itemsize != 8 || !strchr("lq", index_format[strlen(index_format) - 1])
        || index.ndim != 1) {
        PyErr_SetString(PyExc_TypeError, "csv_rows: index must be int64, one dimension");
        goto done;
    }
    if (values.itemsize != 8 || values_format[strlen(values_format) - 1] != 'd'
        || values.ndim != 2 || values.shape[0] != index.shape[0]) {
        PyErr_SetString(PyExc_TypeError, "csv_rows: values must be float64, (len(index), m)");
        goto done;
    }
    Py_ssize_t rows = values.shape[0], columns = values.shape[1];
    size_t capacity = (size_t)rows * ((size_t)columns * (MAX_FIELD + 1) + 24) + 1;
    buffer = PyMem_RawMalloc(capacity);
    if (buffer == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const int64_t *ids = (const int64_t *)index.buf;
    const double *data = (const double *)values.buf;
    char *p = buffer;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows && !failed; r++) {
        p += write_integer(ids[r], p);
        for (Py_ssize_t c = 0; c < columns; c++) {
            double x = data[r * columns + c];
            *p++ = ',';
            if (x != x) {
                continue; /* NaN: an empty field, as pandas writes it */
            }
            int length = x > 0 ? positional_repr(x, p) : 0;
            if (x < 0) {
                *p = '-';
                length = positional_repr(-x, p + 1);
                length = length ? length + 1 : 0;
            }
            if (length == 0) { /* zero, infinities, scientific notation, ties */
                Py_BLOCK_THREADS
                length = python_repr(x, p);
                Py_UNBLOCK_THREADS
                if (length < 0) {
                    failed = 1;
                    break;
                }
            }
            p += length;
        }
        *p++ = '\n';
    }
    Py_END_ALLOW_THREADS
    if (!failed) {
        result = PyBytes_FromStringAndSize(buffer, p - buffer);
    }
done:
    PyMem_RawFree(buffer);
    PyBuffer_Release(&index);
    PyBuffer_Release(&values);
    return result;
}

static PyMethodDef methods[] = {
    {"csv_rows", csv_rows, METH_VARARGS,
     "csv_rows(index, values) -> bytes: CSV rows, floats as Python's repr writes them."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_float_text", "Compiled CSV number writer.", -1, methods,
};

PyMODINIT_FUNC PyInit__float_text(void)
{
    for (int n = 0; n <= 20; n++) {
        POW10_128[n] = power_of_ten(n);
    }
    return PyModule_Create(&module);
}
