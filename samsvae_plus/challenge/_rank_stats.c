/* Rank statistics of every group of one file against its control, in one pass.
 *
 * The compiled core of samsvae_plus.challenge.rank_stats (read that module's docstring
 * first). Input: a file as CSR arrays (cells x genes, values >= 0, no NaN: validated
 * upstream), either normalised or raw counts with a per-cell table that normalises them
 * as they are read, and each cell's group, 0 being the control. Output, per group and
 * gene: the float64 sum of the values (in the file's order, so the pseudobulks equal the
 * per-group path's to the last bit); and for every group but the control, the Mann-Whitney
 * U1 against the control, the tie term sum(t^3 - t) of the pooled sample and the pooled
 * non-zero count.
 *
 * How: a counting sort lays each gene's non-zero values out as a column (visiting cells
 * in the hint's order), and each column, now in cache, is split by count bucket, so that
 * each bucket's values mostly ascend already; the buckets are merged into one sorted
 * column, and one pass over it counts, per group, the control values below each value
 * and the sizes of runs of equal values. Zeros are never stored: they form one tie block
 * whose size is known.
 * Every term is a multiple of 1/2 below 2^53, so the sums are exact in float64 whatever
 * their order, and equal the per-group path's bit for bit.
 *
 * The GIL is released while it runs, so two files are summarised on two cores.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Asks for transparent huge pages on the 2 MiB-aligned part of a large buffer: its
 * first touch then costs a few faults instead of one per 4 KiB page, which was most of
 * a first call's extra time (freed, the memory is reused by later calls either way).
 * A hint only: where THP is off or unknown, nothing changes. */
static void advise_huge_pages(void *buffer, size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)1 << 21;
    uintptr_t lo = ((uintptr_t)buffer + huge - 1) & ~(huge - 1);
    uintptr_t hi = ((uintptr_t)buffer + bytes) & ~(huge - 1);
    if (buffer && hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)buffer;
    (void)bytes;
#endif
}

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

/* Where the values come from (see rank_stats's docstring): as stored, or, for counts,
 * from a per-cell table (`table[r * width + c]` for an integer count c < width of row r)
 * and a list of the other positions with their values (`rest_pos` ascending). The bucket
 * of a count is its raw value, truncated and clipped to `n_buckets - 1`. */
typedef struct {
    const void *table;
    Py_ssize_t width;
    const int64_t *rest_pos;
    const void *rest_values;
    Py_ssize_t n_rest;
    Py_ssize_t n_buckets;
} source;

/* Sets v and b, the value and bucket of stored value k of a row whose table row is
 * `row_table` (NULL: values as stored, one bucket), advancing the rest cursor `rest`.
 * CHECK: jump to `end` on a value that is neither an integer below the table's width
 * nor listed in the rest list (the first pass checks; the second trusts it). */
#define VALUE_AND_BUCKET(T, CHECK)                                                     \
    do {                                                                               \
        T raw = data[k];                                                               \
        b = 0;                                                                         \
        if (!row_table) { v = raw; break; }                                            \
        if (rest < src.n_rest && rest_pos[rest] == k) {                                \
            v = rest_values[rest++];                                                   \
            b = raw < top ? (raw > 0 ? (Py_ssize_t)raw : 0) : n_buckets - 1;           \
        } else {                                                                       \
            if (CHECK && (!(raw >= 0 && raw < (T)width) || raw != (T)(int32_t)raw))    \
                goto end;                                                              \
            int32_t c = (int32_t)raw;                                                  \
            v = row_table[c];                                                          \
            b = c < n_buckets - 1 ? c : n_buckets - 1;                                 \
        }                                                                              \
    } while (0)

/* Fills the outputs; returns 0, or -1 (out of memory) or -2 (an index, group, row or
 * value out of range). Called without the GIL. `row_order` (may be NULL) is the order
 * in which cells are laid out. */
#define DEFINE_STATS(NAME, T, E, COLUMN_SORT)                                          \
    static int NAME(const T *data, const int32_t *indices, const int64_t *indptr,      \
                    const int32_t *group_of_row, Py_ssize_t n_rows, Py_ssize_t n_groups, \
                    Py_ssize_t n_genes, const int64_t *row_order, source src,          \
                    double *sums, double *u1, double *tie, double *nonzero)            \
    {                                                                                  \
        const T *table = src.table, *rest_values = src.rest_values;                   \
        const int64_t *rest_pos = src.rest_pos;                                        \
        Py_ssize_t width = src.width, n_buckets = src.n_buckets;                       \
        /* Entries carry their bucket next to the group (g << bits | b) until the      \
         * column is split by bucket; where that does not fit, one bucket (no hint).  \
         */                                                                            \
        int bits = 0;                                                                  \
        while (((Py_ssize_t)1 << bits) < n_buckets) bits++;                            \
        if ((n_groups - 1) > (INT32_MAX >> bits)) { n_buckets = 1; bits = 0; }         \
        const int32_t mask = (1 << bits) - 1;                                          \
        const T top = (T)(n_buckets - 1);                                              \
        int64_t *start = calloc((size_t)n_genes + 1, sizeof(int64_t));                 \
        int64_t *fill = malloc(sizeof(int64_t) * ((size_t)n_genes + 1));               \
        int64_t *bucket_start = malloc(sizeof(int64_t) * ((size_t)n_buckets + 2));     \
        int64_t *size = calloc((size_t)n_groups, sizeof(int64_t));                     \
        /* Each row's first entry in the rest list, found in the first pass. */        \
        int64_t *rest_row = malloc(sizeof(int64_t) * ((size_t)n_rows + 1));            \
        /* Per group of one gene: count, U and tie accumulators, and a run's count. */ \
        double *acc = calloc((size_t)n_groups * 4, sizeof(double));                    \
        int32_t *touched = malloc(sizeof(int32_t) * (size_t)n_groups);                 \
        int64_t *runs = malloc(sizeof(int64_t) * ((size_t)n_buckets + 1));             \
        E *entries = NULL, *tmp = NULL, *split = NULL;                                 \
        int status = -1;                                                               \
        if (!start || !fill || !bucket_start || !size || !rest_row || !acc || !touched || \
            !runs)                                                                     \
            goto end;                                                                  \
        memset(sums, 0, sizeof(double) * (size_t)(n_groups * n_genes));               \
        status = -2;                                                                   \
        int64_t rest = 0; /* the cursor in the rest list */                           \
        T v; Py_ssize_t b;                                                             \
        /* Sums in the file's order: the per-group path's to the last bit. */          \
        for (Py_ssize_t r = 0; r < n_rows; r++) {                                      \
            int32_t g = group_of_row[r];                                               \
            if (g < 0 || g >= n_groups) goto end;                                      \
            size[g]++;                                                                 \
            rest_row[r] = rest;                                                        \
            double *row_sums = sums + (Py_ssize_t)g * n_genes;                         \
            const T *row_table = table ? table + r * width : NULL;                     \
            for (int64_t k = indptr[r]; k < indptr[r + 1]; k++) {                      \
                int32_t gene = indices[k];                                             \
                if (gene < 0 || gene >= n_genes) goto end;                             \
                VALUE_AND_BUCKET(T, 1);                                                \
                row_sums[gene] += (double)v;                                           \
                if (v != 0) start[gene + 1]++;                                         \
            }                                                                          \
        }                                                                              \
        if (rest != src.n_rest) goto end; /* the rest list is not ascending */        \
        if (row_order) {                                                               \
            for (Py_ssize_t r = 0; r < n_rows; r++)                                    \
                if (row_order[r] < 0 || row_order[r] >= n_rows) goto end;              \
        }                                                                              \
        status = -1;                                                                   \
        int64_t longest = 0;                                                           \
        for (Py_ssize_t gene = 0; gene < n_genes; gene++) {                            \
            if (start[gene + 1] > longest) longest = start[gene + 1];                  \
            start[gene + 1] += start[gene];                                            \
        }                                                                              \
        entries = malloc(sizeof(E) * (size_t)(start[n_genes] + 1));                    \
        advise_huge_pages(entries, sizeof(E) * (size_t)(start[n_genes] + 1));          \
        tmp = malloc(sizeof(E) * (size_t)(longest + 1));                               \
        split = malloc(sizeof(E) * (size_t)(longest + 1));                             \
        if (!entries || !tmp || !split) goto end;                                      \
        /* The layout: a counting sort by gene, visiting cells in row_order, then each  \
         * gene's column by bucket (in cache): two sorts with few destinations each are \
         * faster than one into every (gene, bucket), whose writes miss the cache. */   \
        memcpy(fill, start, sizeof(int64_t) * (size_t)n_genes);                        \
        for (Py_ssize_t i = 0; i < n_rows; i++) {                                      \
            Py_ssize_t r = row_order ? (Py_ssize_t)row_order[i] : i;                   \
            int32_t g = group_of_row[r];                                               \
            const T *row_table = table ? table + r * width : NULL;                     \
            rest = rest_row[r];                                                        \
            for (int64_t k = indptr[r]; k < indptr[r + 1]; k++) {                      \
                VALUE_AND_BUCKET(T, 0);                                                \
                if (v == 0) continue;                                                  \
                E *e = entries + fill[indices[k]]++;                                   \
                e->v = v;                                                              \
                e->g = g << bits | (int32_t)b;                                         \
            }                                                                          \
        }                                                                              \
        double *count = acc, *u_acc = acc + n_groups, *tie_acc = acc + 2 * n_groups;   \
        double *in_run = acc + 3 * n_groups;                                           \
        double n2 = (double)size[0];                                                   \
        for (Py_ssize_t gene = 0; gene < n_genes; gene++) {                            \
            E *col = entries + start[gene];                                            \
            Py_ssize_t n = (Py_ssize_t)(start[gene + 1] - start[gene]);                \
            memset(bucket_start, 0, sizeof(int64_t) * ((size_t)n_buckets + 2));        \
            bucket_start[1] = n;                                                       \
            if (n_buckets > 1) {                                                       \
                /* Counted at b + 2, so that bucket_start[b + 1] becomes bucket b's fill \
                 * position and, once filled, bucket_start[0 .. n_buckets] bound the    \
                 * runs. */                                                            \
                bucket_start[1] = 0;                                                   \
                for (Py_ssize_t i = 0; i < n; i++) bucket_start[(col[i].g & mask) + 2]++; \
                for (Py_ssize_t j = 2; j <= n_buckets; j++) bucket_start[j] += bucket_start[j - 1]; \
                for (Py_ssize_t i = 0; i < n; i++) {                                   \
                    E e = col[i];                                                      \
                    int32_t b = e.g & mask;                                            \
                    e.g >>= bits;                                                      \
                    split[bucket_start[b + 1]++] = e;                                  \
                }                                                                      \
                col = split;                                                           \
            }                                                                          \
            col = COLUMN_SORT(col, tmp, bucket_start, n_buckets, runs);                \
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
        free(start); free(fill); free(bucket_start); free(size); free(rest_row); free(acc); free(touched);     \
        free(runs);                                                                    \
        free(entries); free(tmp); free(split);                                                    \
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

/* Releases the buffers that were acquired (obj set). */
static void release(Py_buffer **views, int n)
{
    for (int i = 0; i < n; i++) PyBuffer_Release(views[i]);
}

static PyObject *rank_stats(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *data_obj, *indices_obj, *indptr_obj, *groups_obj, *order_obj, *table_obj;
    PyObject *rest_pos_obj, *rest_values_obj, *out_obj[4];
    Py_ssize_t n_groups, n_genes, width, n_buckets;
    if (!PyArg_ParseTuple(args, "OOOOnnOOnOOnOOOO", &data_obj, &indices_obj, &indptr_obj,
                          &groups_obj, &n_groups, &n_genes, &order_obj, &table_obj, &width,
                          &rest_pos_obj, &rest_values_obj, &n_buckets, &out_obj[0],
                          &out_obj[1], &out_obj[2], &out_obj[3]))
        return NULL;
    if (n_groups < 1 || n_groups > INT32_MAX || n_genes < 0 || n_buckets < 1 ||
        n_buckets > 256 || width < 1 || width > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError,
                        "need 1 <= n_groups < 2^31, n_genes >= 0, 1 <= n_buckets <= 256 "
                        "and 1 <= width < 2^31");
        return NULL;
    }
    Py_buffer data, indices, indptr, groups, order, table, rest_pos, rest_values, out[4];
    Py_buffer *all[] = {&data,     &indices,     &indptr, &groups, &order,  &table,
                        &rest_pos, &rest_values, &out[0], &out[1], &out[2], &out[3]};
    const int n_views = 12;
    for (int i = 0; i < n_views; i++) all[i]->obj = NULL;
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
    Py_ssize_t item = data.itemsize;
    if (get_buffer(indices_obj, &indices, nnz, 4, 0, 0, "indices (int32)") < 0) goto done;
    if (get_buffer(groups_obj, &groups, n_rows, 4, 1, 0, "group_of_row (int32)") < 0) goto done;
    if (order_obj != Py_None &&
        get_buffer(order_obj, &order, n_rows, 8, 1, 0, "row_order (int64)") < 0)
        goto done;
    source src = {NULL, width, NULL, NULL, 0, n_buckets};
    if (table_obj != Py_None) {
        if (get_buffer(table_obj, &table, n_rows * width, item, 1, 0,
                       "table (rows x width, the data's dtype)") < 0 ||
            get_buffer(rest_pos_obj, &rest_pos, 0, 8, 0, 0, "rest_pos (int64)") < 0)
            goto done;
        src.n_rest = rest_pos.len / 8;
        if (get_buffer(rest_values_obj, &rest_values, src.n_rest, item, 1, 0,
                       "rest_values (one per rest position, the data's dtype)") < 0)
            goto done;
        src.table = table.buf;
        src.rest_pos = rest_pos.buf;
        src.rest_values = rest_values.buf;
    } else if (n_buckets != 1) {
        PyErr_SetString(PyExc_ValueError, "n_buckets must be 1 without a table");
        goto done;
    }
    const int64_t *order_buf = order.obj ? order.buf : NULL;
    for (int i = 0; i < 4; i++) {
        Py_ssize_t count = (i == 0 ? n_groups : n_tests) * n_genes;
        if (get_buffer(out_obj[i], &out[i], count, 8, 1, 1, out_names[i]) < 0) goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    if (is_float)
        status = stats_float(data.buf, indices.buf, indptr.buf, groups.buf, n_rows, n_groups,
                             n_genes, order_buf, src, out[0].buf, out[1].buf, out[2].buf,
                             out[3].buf);
    else
        status = stats_double(data.buf, indices.buf, indptr.buf, groups.buf, n_rows, n_groups,
                              n_genes, order_buf, src, out[0].buf, out[1].buf, out[2].buf,
                              out[3].buf);
    Py_END_ALLOW_THREADS
    if (status == -1) PyErr_NoMemory();
    if (status == -2)
        PyErr_SetString(PyExc_ValueError,
                        "a gene index, group id, row or value is out of range (or the rest "
                        "positions are not ascending)");
done:
    release(all, n_views);
    if (status != 0) return NULL;
    Py_RETURN_NONE;
}

/* Positions of the values that are not integers in [0, width), into `out` (when not
 * NULL); returns their number. Nearly every value of count data is a small integer, so
 * blocks of 64 values are screened first by a test the compiler vectorises: adding and
 * subtracting ROUND (2^23 for float, 2^52 for double) rounds a value in [0, width) to an
 * integer, so it changes exactly the non-integers. */
#define DEFINE_REST(NAME, T, ROUND)                                                    \
    static Py_ssize_t NAME(const T *data, Py_ssize_t n, Py_ssize_t width, int64_t *out) \
    {                                                                                  \
        Py_ssize_t found = 0;                                                          \
        const T w = (T)width;                                                          \
        for (Py_ssize_t lo = 0; lo < n; lo += 64) {                                    \
            Py_ssize_t hi = lo + 64 < n ? lo + 64 : n;                                 \
            int any = 0;                                                               \
            for (Py_ssize_t k = lo; k < hi; k++) {                                     \
                T x = data[k];                                                         \
                any |= (x >= w) | (x < 0) | ((x + ROUND) - ROUND != x);                \
            }                                                                          \
            if (!any) continue;                                                        \
            for (Py_ssize_t k = lo; k < hi; k++) {                                     \
                T x = data[k];                                                         \
                if (!(x >= 0 && x < w) || x != (T)(int32_t)x) {                        \
                    if (out) out[found] = k;                                           \
                    found++;                                                           \
                }                                                                      \
            }                                                                          \
        }                                                                              \
        return found;                                                                  \
    }
DEFINE_REST(rest_float, float, 0x1p23f)
DEFINE_REST(rest_double, double, 0x1p52)

static PyObject *rest_positions(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *data_obj;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "On", &data_obj, &width)) return NULL;
    if (width < 1 || width > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "need 1 <= width < 2^31");
        return NULL;
    }
    Py_buffer data;
    if (PyObject_GetBuffer(data_obj, &data, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    int is_float = data.format && strcmp(data.format, "f") == 0;
    int is_double = data.format && strcmp(data.format, "d") == 0;
    if (!is_float && !is_double) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "data: expected float32 or float64");
        return NULL;
    }
    Py_ssize_t n = data.len / data.itemsize, found;
    /* Counted first, then written: the result is usually a tiny share of the data. */
    Py_BEGIN_ALLOW_THREADS
    found = is_float ? rest_float(data.buf, n, width, NULL) : rest_double(data.buf, n, width, NULL);
    Py_END_ALLOW_THREADS
    PyObject *result = PyBytes_FromStringAndSize(NULL, found * 8);
    if (result) {
        int64_t *out = (int64_t *)PyBytes_AS_STRING(result);
        Py_BEGIN_ALLOW_THREADS
        if (is_float) rest_float(data.buf, n, width, out);
        else rest_double(data.buf, n, width, out);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&data);
    return result;
}

/* GCC vectorises float selects only when it may assume that no comparison traps; the
 * loops it applies to read no floating-point exception flags, and their results do not
 * change. */
#if defined(__GNUC__) && !defined(__clang__)
#define VECTORISED __attribute__((optimize("no-trapping-math")))
#else
#define VECTORISED
#endif

/* One pass over the values of a file for its validation: whether all are finite, the
 * smallest and largest, and whether any non-negative value below ROUND has a fractional
 * part above `tolerance` (in the data's dtype, as numpy computes x - floor(x) > tol:
 * below ROUND, (x + ROUND) - ROUND is x rounded to an integer, and the subtraction of
 * the floor is exact). Values from ROUND up are integers. Negative values are only
 * reported through the minimum (the caller rejects them). The extremes are taken over
 * integer keys that order like the floats (sign-magnitude to two's complement), since a
 * float min would keep the loop from being vectorised. */
#define DEFINE_SCAN(NAME, T, K, SIGN, ROUND)                                           \
    VECTORISED static void NAME(const T *data, Py_ssize_t n, T tolerance, int *finite, \
                                T *low, T *high, int *fraction)                        \
    {                                                                                  \
        K lo = ~(K)0 ^ SIGN, hi = SIGN; /* the largest and the smallest key */        \
        int bad = 0, frac = 0;                                                         \
        for (Py_ssize_t k = 0; k < n; k++) {                                           \
            T x = data[k];                                                             \
            K bits;                                                                    \
            memcpy(&bits, &x, sizeof bits);                                            \
            K key = bits ^ ((bits >> (8 * sizeof(K) - 1)) & ~SIGN);                    \
            lo = key < lo ? key : lo;                                                  \
            hi = key > hi ? key : hi;                                                  \
            bad |= !(x - x == 0); /* NaN or infinite */                                \
            T small = x < ROUND ? x : 0;                                               \
            small = small > 0 ? small : 0;                                             \
            T r = (small + ROUND) - ROUND;                                             \
            T floor_x = r > small ? r - 1 : r;                                         \
            frac |= small - floor_x > tolerance;                                       \
        }                                                                              \
        lo ^= (lo >> (8 * sizeof(K) - 1)) & ~SIGN; /* keys back to bits */             \
        hi ^= (hi >> (8 * sizeof(K) - 1)) & ~SIGN;                                     \
        memcpy(low, &lo, sizeof lo);                                                   \
        memcpy(high, &hi, sizeof hi);                                                  \
        *finite = !bad;                                                                \
        *fraction = frac;                                                              \
    }
DEFINE_SCAN(scan_float, float, int32_t, INT32_MIN, 0x1p23f)
DEFINE_SCAN(scan_double, double, int64_t, INT64_MIN, 0x1p52)

static PyObject *scan_values(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *data_obj;
    double tolerance;
    if (!PyArg_ParseTuple(args, "Od", &data_obj, &tolerance)) return NULL;
    Py_buffer data;
    if (PyObject_GetBuffer(data_obj, &data, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    int is_float = data.format && strcmp(data.format, "f") == 0;
    int is_double = data.format && strcmp(data.format, "d") == 0;
    Py_ssize_t n = data.itemsize ? data.len / data.itemsize : 0;
    if ((!is_float && !is_double) || n == 0) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "data: expected a non-empty float32 or float64 buffer");
        return NULL;
    }
    int finite, fraction;
    double low, high;
    Py_BEGIN_ALLOW_THREADS
    if (is_float) {
        float lo, hi;
        scan_float(data.buf, n, (float)tolerance, &finite, &lo, &hi, &fraction);
        low = lo;
        high = hi;
    } else {
        scan_double(data.buf, n, tolerance, &finite, &low, &high, &fraction);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    return Py_BuildValue("(OddO)", finite ? Py_True : Py_False, low, high,
                         fraction ? Py_True : Py_False);
}

/* erfc of every float64 in a writable buffer, in place, without the GIL: the C
 * library's erfc, which is what math.erfc calls, so the p-values keep their bits. */
static PyObject *erfc_inplace(PyObject *Py_UNUSED(self), PyObject *arg)
{
    Py_buffer view;
    if (get_buffer(arg, &view, 0, 8, 0, 1, "values (float64)") < 0) {
        if (view.obj) PyBuffer_Release(&view);
        return NULL;
    }
    if (!view.format || strcmp(view.format, "d") != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "values: expected float64");
        return NULL;
    }
    double *x = view.buf;
    Py_ssize_t n = view.len / 8;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) x[i] = erfc(x[i]);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"rank_stats", rank_stats, METH_VARARGS,
     "rank_stats(data, indices, indptr, group_of_row, n_groups, n_genes, row_order, "
     "table, width, rest_pos, rest_values, n_buckets, sums, u1, tie, nonzero)\n\n"
     "Fill the float64 outputs; see samsvae_plus.challenge.rank_stats."},
    {"rest_positions", rest_positions, METH_VARARGS,
     "rest_positions(data, width) -> bytes\n\nint64 positions of the values that are not "
     "integers in [0, width)."},
    {"scan_values", scan_values, METH_VARARGS,
     "scan_values(data, tolerance) -> (all finite, min, max, any fraction > tolerance)\n\n"
     "One pass over float32 or float64 values for the scorer's validation."},
    {"erfc_inplace", erfc_inplace, METH_O,
     "erfc_inplace(values)\n\nReplace every float64 by its erfc (the C library's)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rank_stats",
    "Compiled rank statistics of the challenge scorer (see samsvae_plus.challenge.rank_stats).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__rank_stats(void) { return PyModule_Create(&module); }
