/* Rank statistics of every group of one file against its control, in one pass.
 *
 * The compiled core of samsvae_plus.evaluate.rank_stats (read that module's docstring
 * first). Input: a normalised file as CSR arrays (cells x genes, values >= 0, no NaN:
 * validated upstream) and each cell's group, 0 being the control. Output, per group and
 * gene: the float64 sum of the values (in the file's order, so the pseudobulks equal the
 * numpy paths' to the last bit); and for every group but the control, the Mann-Whitney
 * U1 against the control, the tie term sum(t^3 - t) of the pooled sample and the pooled
 * non-zero count.
 *
 * How: a counting sort lays each gene's non-zero values out as a column split into the
 * sort hint's buckets (visiting cells in the hint's order, so that each bucket's values
 * mostly ascend already); the buckets are merged into one sorted column, and one pass
 * over it counts, per group, the control values below each value and the sizes of runs
 * of equal values. Zeros are never stored: they form one tie block whose size is known.
 * Every term is a multiple of 1/2 below 2^53, so the sums are exact in float64 whatever
 * their order, and equal the numpy paths' bit for bit.
 *
 * The GIL is released while it runs, so two files are summarised on two cores.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Below this size a run is sorted by insertion. */
#define INSERTION_MAX 24

/* Sorts an array of entries (a value and its group) by value, ascending. */
#define DEFINE_SORT(NAME, E)                                                           \
    static void NAME(E *a, Py_ssize_t n)                                               \
    {                                                                                  \
        while (n > INSERTION_MAX) {                                                    \
            /* Median of three as pivot; recurse into the smaller side only, so the    \
             * stack stays O(log n). */                                                \
            double x = a[0].v, y = a[n / 2].v, z = a[n - 1].v;                         \
            double pivot = x < y ? (y < z ? y : (x < z ? z : x))                       \
                                 : (x < z ? x : (y < z ? z : y));                      \
            Py_ssize_t i = -1, j = n;                                                  \
            for (;;) {                                                                 \
                do { i++; } while (a[i].v < pivot);                                    \
                do { j--; } while (a[j].v > pivot);                                    \
                if (i >= j) break;                                                     \
                E t = a[i]; a[i] = a[j]; a[j] = t;                                     \
            }                                                                          \
            Py_ssize_t left = j + 1;                                                   \
            if (left < n - left) {                                                     \
                NAME(a, left);                                                         \
                a += left; n -= left;                                                  \
            } else {                                                                   \
                NAME(a + left, n - left);                                              \
                n = left;                                                              \
            }                                                                          \
        }                                                                              \
        for (Py_ssize_t i = 1; i < n; i++) {                                           \
            E e = a[i];                                                                \
            Py_ssize_t j = i;                                                          \
            while (j > 0 && a[j - 1].v > e.v) { a[j] = a[j - 1]; j--; }                \
            a[j] = e;                                                                  \
        }                                                                              \
    }

/* Sorts a gene's column, given as consecutive runs (absolute offsets bounds[0] ..
 * bounds[n_runs]) that the sort hint leaves mostly ascending: a run found out of order is
 * sorted, then the runs are merged from the last one back into `tmp`. `runs` is scratch
 * for n_runs + 1 offsets. Returns where the sorted column lies (`col` or `tmp`). */
#define DEFINE_COLUMN_SORT(NAME, E, SORT)                                              \
    static E *NAME(E *col, E *tmp, const int64_t *bounds, Py_ssize_t n_runs,           \
                   int64_t *runs)                                                      \
    {                                                                                  \
        Py_ssize_t kept = 0;                                                           \
        runs[0] = 0;                                                                   \
        for (Py_ssize_t r = 0; r < n_runs; r++) {                                      \
            int64_t lo = bounds[r] - bounds[0], hi = bounds[r + 1] - bounds[0];        \
            if (hi == lo) continue;                                                    \
            for (int64_t i = lo + 1; i < hi; i++) {                                    \
                if (col[i].v < col[i - 1].v) { SORT(col + lo, hi - lo); break; }       \
            }                                                                          \
            runs[++kept] = hi; /* empty runs dropped: runs stay contiguous */          \
        }                                                                              \
        if (kept <= 1) return col;                                                     \
        /* Merge from the last run back: the tail so far lies in tmp, and each earlier  \
         * run is merged into it in place (the write position never passes the tail's  \
         * next unread value). Runs shrink with the bucket (higher counts are rarer),   \
         * so the big runs move only once or twice. */                                 \
        int64_t end = runs[kept];                                                      \
        memcpy(tmp + runs[kept - 1], col + runs[kept - 1],                             \
               sizeof(E) * (size_t)(end - runs[kept - 1]));                            \
        for (Py_ssize_t r = kept - 2; r >= 0; r--) {                                   \
            int64_t i = runs[r], mid = runs[r + 1], j = mid, k = runs[r];              \
            while (i < mid && j < end) tmp[k++] = tmp[j].v < col[i].v ? tmp[j++] : col[i++]; \
            while (i < mid) tmp[k++] = col[i++];                                       \
        }                                                                              \
        return tmp;                                                                    \
    }

static inline double cube_less(double t) { return t * t * t - t; }

/* Fills the outputs; returns 0, or -1 (out of memory) or -2 (an index out of range).
 * Called without the GIL. `row_order` (may be NULL) is the order in which cells are laid
 * out, `buckets` (may be NULL) one byte per stored value below `n_buckets`: the sort hint
 * of rank_stats's docstring. */
#define DEFINE_STATS(NAME, T, E, COLUMN_SORT)                                          \
    static int NAME(const T *data, const int32_t *indices, const int64_t *indptr,      \
                    const int32_t *group_of_row, Py_ssize_t n_rows, Py_ssize_t n_groups, \
                    Py_ssize_t n_genes, const int64_t *row_order, const uint8_t *buckets, \
                    Py_ssize_t n_buckets, double *sums, double *u1, double *tie,       \
                    double *nonzero)                                                   \
    {                                                                                  \
        Py_ssize_t n_bins = n_genes * n_buckets;                                       \
        int64_t *start = calloc((size_t)n_bins + 1, sizeof(int64_t));                  \
        int64_t *fill = malloc(sizeof(int64_t) * ((size_t)n_bins + 1));                \
        int64_t *size = calloc((size_t)n_groups, sizeof(int64_t));                     \
        /* Per group of one gene: count, U and tie accumulators, and a run's count. */ \
        double *acc = calloc((size_t)n_groups * 4, sizeof(double));                    \
        int32_t *touched = malloc(sizeof(int32_t) * (size_t)n_groups);                 \
        int64_t *runs = malloc(sizeof(int64_t) * ((size_t)n_buckets + 1));             \
        E *entries = NULL, *tmp = NULL;                                                \
        int status = -1;                                                               \
        if (!start || !fill || !size || !acc || !touched || !runs) goto end;           \
        memset(sums, 0, sizeof(double) * (size_t)(n_groups * n_genes));               \
        /* Sums in the file's order, so they equal the numpy paths' to the last bit. */ \
        status = -2;                                                                   \
        for (Py_ssize_t r = 0; r < n_rows; r++) {                                      \
            int32_t g = group_of_row[r];                                               \
            if (g < 0 || g >= n_groups) goto end;                                      \
            size[g]++;                                                                 \
            double *row_sums = sums + (Py_ssize_t)g * n_genes;                         \
            for (int64_t k = indptr[r]; k < indptr[r + 1]; k++) {                      \
                int32_t gene = indices[k];                                             \
                if (gene < 0 || gene >= n_genes) goto end;                             \
                if (buckets && buckets[k] >= n_buckets) goto end;                      \
                T v = data[k];                                                         \
                row_sums[gene] += (double)v;                                           \
                if (v != 0) start[(Py_ssize_t)gene * n_buckets + (buckets ? buckets[k] : 0) + 1]++; \
            }                                                                          \
        }                                                                              \
        if (row_order) {                                                               \
            for (Py_ssize_t r = 0; r < n_rows; r++)                                    \
                if (row_order[r] < 0 || row_order[r] >= n_rows) goto end;              \
        }                                                                              \
        status = -1;                                                                   \
        int64_t longest = 0;                                                           \
        for (Py_ssize_t b = 0; b < n_bins; b++) start[b + 1] += start[b];              \
        for (Py_ssize_t gene = 0; gene < n_genes; gene++) {                            \
            int64_t length = start[(gene + 1) * n_buckets] - start[gene * n_buckets];  \
            if (length > longest) longest = length;                                    \
        }                                                                              \
        entries = malloc(sizeof(E) * (size_t)(start[n_bins] + 1));                     \
        tmp = malloc(sizeof(E) * (size_t)(longest + 1));                               \
        if (!entries || !tmp) goto end;                                                \
        /* The layout: a counting sort by (gene, bucket), visiting cells in row_order. */ \
        memcpy(fill, start, sizeof(int64_t) * (size_t)n_bins);                         \
        for (Py_ssize_t i = 0; i < n_rows; i++) {                                      \
            Py_ssize_t r = row_order ? (Py_ssize_t)row_order[i] : i;                   \
            int32_t g = group_of_row[r];                                               \
            for (int64_t k = indptr[r]; k < indptr[r + 1]; k++) {                      \
                T v = data[k];                                                         \
                if (v == 0) continue;                                                  \
                E *e = entries + fill[(Py_ssize_t)indices[k] * n_buckets + (buckets ? buckets[k] : 0)]++; \
                e->v = v;                                                              \
                e->g = g;                                                              \
            }                                                                          \
        }                                                                              \
        double *count = acc, *u_acc = acc + n_groups, *tie_acc = acc + 2 * n_groups;   \
        double *in_run = acc + 3 * n_groups;                                           \
        double n2 = (double)size[0];                                                   \
        for (Py_ssize_t gene = 0; gene < n_genes; gene++) {                            \
            const int64_t *bounds = start + gene * n_buckets;                          \
            E *col = COLUMN_SORT(entries + bounds[0], tmp, bounds, n_buckets, runs);   \
            Py_ssize_t n = (Py_ssize_t)(start[(gene + 1) * n_buckets] - start[gene * n_buckets]); \
            memset(acc, 0, sizeof(double) * (size_t)n_groups * 3);                     \
            double below = 0.0, control_tie = 0.0; /* control values below the run */ \
            for (Py_ssize_t i = 0; i < n;) {                                           \
                Py_ssize_t e = i + 1;                                                  \
                while (e < n && col[e].v == col[i].v) e++;                             \
                if (e == i + 1) { /* a value no other cell has: no tie */              \
                    int32_t g = col[i].g;                                              \
                    count[g] += 1.0;                                                   \
                    if (g) u_acc[g] += below; else below += 1.0;                       \
                } else {                                                               \
                    double b = 0.0;                                                    \
                    Py_ssize_t n_touched = 0;                                          \
                    for (Py_ssize_t k = i; k < e; k++) {                               \
                        int32_t g = col[k].g;                                          \
                        if (!g) { b += 1.0; continue; }                                \
                        if (in_run[g] == 0.0) touched[n_touched++] = g;                \
                        in_run[g] += 1.0;                                              \
                    }                                                                  \
                    for (Py_ssize_t t = 0; t < n_touched; t++) {                       \
                        int32_t g = touched[t];                                        \
                        double a = in_run[g];                                          \
                        u_acc[g] += a * below + 0.5 * a * b;                           \
                        tie_acc[g] += cube_less(a + b) - cube_less(b);                 \
                        count[g] += a;                                                 \
                        in_run[g] = 0.0;                                               \
                    }                                                                  \
                    control_tie += cube_less(b);                                       \
                    count[0] += b;                                                     \
                    below += b;                                                        \
                }                                                                      \
                i = e;                                                                 \
            }                                                                          \
            double z2 = n2 - count[0];                                                 \
            for (Py_ssize_t g = 1; g < n_groups; g++) {                                \
                double z1 = (double)size[g] - count[g];                                \
                double z = z1 + z2;                                                    \
                Py_ssize_t out = (g - 1) * n_genes + gene;                             \
                /* Each value beats every control zero and smaller control value and   \
                 * ties with the equal ones; a zero ties with the control's zeros. */  \
                u1[out] = 0.5 * z1 * z2 + z2 * count[g] + u_acc[g];                    \
                tie[out] = cube_less(z) + control_tie + tie_acc[g];                    \
                nonzero[out] = count[g] + count[0];                                    \
            }                                                                          \
        }                                                                              \
        status = 0;                                                                    \
    end:                                                                               \
        free(start); free(fill); free(size); free(acc); free(touched); free(runs);                 \
        free(entries); free(tmp);                                                      \
        return status;                                                                 \
    }

typedef struct { float v; int32_t g; } entry_float;
typedef struct { double v; int32_t g; } entry_double;
DEFINE_SORT(sort_float, entry_float)
DEFINE_SORT(sort_double, entry_double)
DEFINE_COLUMN_SORT(column_float, entry_float, sort_float)
DEFINE_COLUMN_SORT(column_double, entry_double, sort_double)
DEFINE_STATS(stats_float, float, entry_float, column_float)
DEFINE_STATS(stats_double, double, entry_double, column_double)

/* A C-contiguous buffer of at least `count` items of `itemsize` bytes (exactly `count`
 * when `exact`), writable if asked. */
static int get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t count, Py_ssize_t itemsize,
                      int exact, int writable, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        view->obj = NULL;
        return -1;
    }
    Py_ssize_t items = view->len / (view->itemsize ? view->itemsize : 1);
    if (view->itemsize != itemsize || items < count || (exact && items != count)) {
        PyErr_Format(PyExc_ValueError, "%s: expected %s%zd items of %zd bytes", name,
                     exact ? "" : "at least ", count, itemsize);
        return -1;
    }
    return 0;
}

static PyObject *rank_stats(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *data_obj, *indices_obj, *indptr_obj, *groups_obj, *order_obj, *buckets_obj;
    PyObject *out_obj[4];
    Py_ssize_t n_groups, n_genes, n_buckets;
    if (!PyArg_ParseTuple(args, "OOOOnnOOnOOOO", &data_obj, &indices_obj, &indptr_obj,
                          &groups_obj, &n_groups, &n_genes, &order_obj, &buckets_obj,
                          &n_buckets, &out_obj[0], &out_obj[1], &out_obj[2], &out_obj[3]))
        return NULL;
    if (n_groups < 1 || n_groups > INT32_MAX || n_genes < 0 || n_buckets < 1 ||
        n_buckets > 256) {
        PyErr_SetString(PyExc_ValueError,
                        "need 1 <= n_groups < 2^31, n_genes >= 0 and 1 <= n_buckets <= 256");
        return NULL;
    }
    Py_buffer data, indices, indptr, groups, order, buckets, out[4];
    Py_buffer *all[] = {&data, &indices, &indptr, &groups, &order, &buckets,
                        &out[0], &out[1], &out[2], &out[3]};
    for (int i = 0; i < 10; i++) all[i]->obj = NULL;
    int status = -3;
    Py_ssize_t n_tests = n_groups - 1;
    const char *out_names[] = {"sums", "u1", "tie", "nonzero"};
    /* indptr first: it gives the number of rows and of stored values. */
    if (get_buffer(indptr_obj, &indptr, 1, 8, 0, 0, "indptr (int64)") < 0) goto done;
    Py_ssize_t n_rows = indptr.len / 8 - 1;
    const int64_t *offsets = indptr.buf;
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        if (offsets[0] != 0 || offsets[r] > offsets[r + 1]) {
            PyErr_SetString(PyExc_ValueError, "indptr: must start at 0 and not decrease");
            goto done;
        }
    }
    Py_ssize_t nnz = (Py_ssize_t)offsets[n_rows];
    if (PyObject_GetBuffer(data_obj, &data, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        data.obj = NULL;
        goto done;
    }
    int is_float = data.format && strcmp(data.format, "f") == 0;
    int is_double = data.format && strcmp(data.format, "d") == 0;
    if ((!is_float && !is_double) || data.len / data.itemsize < nnz) {
        PyErr_SetString(PyExc_ValueError, "data: expected float32 or float64 covering indptr");
        goto done;
    }
    if (get_buffer(indices_obj, &indices, nnz, 4, 0, 0, "indices (int32)") < 0) goto done;
    if (get_buffer(groups_obj, &groups, n_rows, 4, 1, 0, "group_of_row (int32)") < 0) goto done;
    if (order_obj != Py_None &&
        get_buffer(order_obj, &order, n_rows, 8, 1, 0, "row_order (int64)") < 0)
        goto done;
    if (buckets_obj != Py_None &&
        get_buffer(buckets_obj, &buckets, nnz, 1, 0, 0, "buckets (uint8)") < 0)
        goto done;
    if (buckets_obj == Py_None && n_buckets != 1) {
        PyErr_SetString(PyExc_ValueError, "n_buckets must be 1 without buckets");
        goto done;
    }
    const int64_t *order_buf = order.obj ? order.buf : NULL;
    const uint8_t *buckets_buf = buckets.obj ? buckets.buf : NULL;
    for (int i = 0; i < 4; i++) {
        Py_ssize_t count = (i == 0 ? n_groups : n_tests) * n_genes;
        if (get_buffer(out_obj[i], &out[i], count, 8, 1, 1, out_names[i]) < 0) goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    if (is_float)
        status = stats_float(data.buf, indices.buf, indptr.buf, groups.buf, n_rows, n_groups,
                             n_genes, order_buf, buckets_buf, n_buckets, out[0].buf,
                             out[1].buf, out[2].buf, out[3].buf);
    else
        status = stats_double(data.buf, indices.buf, indptr.buf, groups.buf, n_rows, n_groups,
                              n_genes, order_buf, buckets_buf, n_buckets, out[0].buf,
                              out[1].buf, out[2].buf, out[3].buf);
    Py_END_ALLOW_THREADS
    if (status == -1) PyErr_NoMemory();
    if (status == -2)
        PyErr_SetString(PyExc_ValueError,
                        "a gene index, group id, row or bucket is out of range");
done:
    for (int i = 0; i < 10; i++) PyBuffer_Release(all[i]);
    if (status != 0) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"rank_stats", rank_stats, METH_VARARGS,
     "rank_stats(data, indices, indptr, group_of_row, n_groups, n_genes, row_order, "
     "buckets, n_buckets, sums, u1, tie, nonzero)\n\nFill the float64 outputs; see samsvae_plus.evaluate.rank_stats."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rank_stats",
    "Compiled rank statistics of the challenge scorer (see samsvae_plus.evaluate.rank_stats).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__rank_stats(void) { return PyModule_Create(&module); }
