/* dstbench's CPU kernels for sparse training: a CSR weight times dense activations that are
 * kept transposed (features x batch), so that every stored weight touches one contiguous row
 * of `batch` floats and the inner loops vectorize.
 *
 *   forward      yt[i, :]  = sum_k val[k] * xt[col[k], :]  (+ bias[i])      rows of W
 *   input grad   dxt[j, :] = sum_k val[perm[k]] * dyt[row[k], :]            columns of W (CSC)
 *   weight grad  gval[k]   = dot(dyt[i, :], xt[col[k], :])  for k in row i   (SDDMM)
 *
 * Every output element is written by exactly one thread (rows, columns or stored weights are
 * split among threads), so results do not depend on the thread count, and no atomics are
 * needed. Indices are int64 (torch's own index type), values float32.
 *
 * Why it is written this way: a stored weight's work is short (one row of `batch` floats), so
 * a fixed cost per weight (a loop prologue, a reload of the output row) would dominate. The
 * products therefore accumulate a block of up to 64 output floats in registers across all of
 * a row's weights (GCC/Clang vector types: whatever SIMD width the processor has, no
 * intrinsics), and the dot products keep four independent accumulators.
 */
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define RESTRICT __restrict__

typedef float v8 __attribute__((vector_size(32)));
/* The same vector read from or written to memory with only float alignment. */
typedef float v8u __attribute__((vector_size(32), aligned(4)));

static inline v8 splat(float a) { return (v8){a, a, a, a, a, a, a, a}; }

/* out[0:8*NV] = init + sum_k coef(k) * src(k)[0:8*NV], NV vectors in registers. */
#define BLOCK_SUM(NV, out, init, K0, K1, COEF, SRC)                                         \
    do {                                                                                  \
        v8 acc[NV];                                                                       \
        for (int t = 0; t < (NV); ++t) acc[t] = splat(init);                              \
        for (int64_t k = (K0); k < (K1); ++k) {                                           \
            PREFETCH_AHEAD;                                                               \
            const v8 a = splat(COEF);                                                     \
            const v8u *RESTRICT p = (const v8u *)(SRC);                                   \
            for (int t = 0; t < (NV); ++t) acc[t] += a * p[t];                            \
        }                                                                                 \
        for (int t = 0; t < (NV); ++t) ((v8u *)(out))[t] = acc[t];                        \
    } while (0)

/* A whole row of `batch` outputs: blocks of 64, then 32, then 8 floats in registers, then the
 * last few one by one (small batches, such as digits' 32, stay vectorized). */
#define ROW_SUM(out, init, batch, K0, K1, COEF, SRC_AT)                                      \
    do {                                                                                  \
        int64_t c0 = 0;                                                                   \
        for (; c0 + 64 <= (batch); c0 += 64)                                              \
            BLOCK_SUM(8, (out) + c0, init, K0, K1, COEF, SRC_AT + c0);                    \
        for (; c0 + 32 <= (batch); c0 += 32)                                              \
            BLOCK_SUM(4, (out) + c0, init, K0, K1, COEF, SRC_AT + c0);                    \
        for (; c0 + 8 <= (batch); c0 += 8)                                                \
            BLOCK_SUM(1, (out) + c0, init, K0, K1, COEF, SRC_AT + c0);                    \
        if (c0 < (batch))                                                                 \
            TAIL_SUM((out) + c0, init, (batch) - c0, K0, K1, COEF, SRC_AT + c0);          \
    } while (0)

/* The last few floats of a row, one by one (batch not a multiple of 8). */
#define TAIL_SUM(out, init, width, K0, K1, COEF, SRC)                                       \
    do {                                                                                  \
        for (int64_t b = 0; b < (width); ++b) (out)[b] = (init);                          \
        for (int64_t k = (K0); k < (K1); ++k) {                                           \
            const float a = (COEF);                                                       \
            const float *RESTRICT p = (SRC);                                              \
            for (int64_t b = 0; b < (width); ++b) (out)[b] += a * p[b];                   \
        }                                                                                 \
    } while (0)

static inline float dot(const float *RESTRICT x, const float *RESTRICT y, int64_t n) {
    v8 s0 = splat(0.0f), s1 = s0, s2 = s0, s3 = s0;
    int64_t b = 0;
    for (; b + 32 <= n; b += 32) {
        const v8u *px = (const v8u *)(x + b), *py = (const v8u *)(y + b);
        s0 += px[0] * py[0];
        s1 += px[1] * py[1];
        s2 += px[2] * py[2];
        s3 += px[3] * py[3];
    }
    const v8 s = (s0 + s1) + (s2 + s3);
    float acc = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; b < n; ++b) acc += x[b] * y[b];
    return acc;
}

/* The rows a stored weight reads are scattered: ask for the one DISTANCE weights ahead while
 * this one computes, so that memory latency overlaps the arithmetic (large layers whose
 * activations do not fit in the cache gain most). The look-ahead may cross into the next row
 * (a prefetch is only a hint) but never reads an index past the last stored weight. */
#define DISTANCE 8

/* yt (rows x batch) = W (rows x cols, CSR) @ xt (cols x batch) + bias (rows, may be NULL). */
void dst_spmm(int64_t rows, int64_t batch, const int64_t *RESTRICT rowptr,
              const int64_t *RESTRICT col, const float *RESTRICT val, const float *RESTRICT xt,
              const float *RESTRICT bias, float *RESTRICT yt, int threads) {
    const int64_t nnz = rowptr[rows];
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int64_t i = 0; i < rows; ++i) {
        const float init = bias ? bias[i] : 0.0f;
#define PREFETCH_AHEAD \
    if (k + DISTANCE < nnz) __builtin_prefetch(xt + col[k + DISTANCE] * batch + c0)
        ROW_SUM(yt + i * batch, init, batch, rowptr[i], rowptr[i + 1], val[k], xt + col[k] * batch);
    }
}

/* dxt (cols x batch) = W^T @ dyt, W^T given as CSC of W: colptr, the row of each entry, and
 * perm[k], the CSR position of CSC entry k (the values stay in CSR order). */
void dst_spmm_t(int64_t cols, int64_t batch, const int64_t *RESTRICT colptr,
                const int64_t *RESTRICT row, const int64_t *RESTRICT perm,
                const float *RESTRICT val, const float *RESTRICT dyt, float *RESTRICT dxt,
                int threads) {
    const int64_t nnz = colptr[cols];
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int64_t j = 0; j < cols; ++j) {
#undef PREFETCH_AHEAD
#define PREFETCH_AHEAD \
    if (k + DISTANCE < nnz) __builtin_prefetch(dyt + row[k + DISTANCE] * batch + c0)
        ROW_SUM(dxt + j * batch, 0.0f, batch, colptr[j], colptr[j + 1], val[perm[k]],
                dyt + row[k] * batch);
    }
}

/* gval[k] = dot(dyt[i, :], xt[col[k], :]) for every stored k of row i: the weight gradient at
 * the stored positions only. */
void dst_sddmm(int64_t rows, int64_t batch, const int64_t *RESTRICT rowptr,
               const int64_t *RESTRICT col, const float *RESTRICT dyt, const float *RESTRICT xt,
               float *RESTRICT gval, int threads) {
    const int64_t nnz = rowptr[rows];
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int64_t i = 0; i < rows; ++i) {
        const float *RESTRICT g = dyt + i * batch;
        for (int64_t k = rowptr[i]; k < rowptr[i + 1]; ++k) {
            if (k + DISTANCE < nnz) __builtin_prefetch(xt + col[k + DISTANCE] * batch);
            gval[k] = dot(g, xt + col[k] * batch, batch);
        }
    }
}

/* dst (cols x rows) = src (rows x cols)^T, in 16 x 16 tiles (the network's input, and the last
 * layer's output gradient, arrive batch-major). */
void dst_transpose(int64_t rows, int64_t cols, const float *RESTRICT src, float *RESTRICT dst) {
    for (int64_t r0 = 0; r0 < rows; r0 += 16)
        for (int64_t c0 = 0; c0 < cols; c0 += 16) {
            const int64_t r1 = r0 + 16 < rows ? r0 + 16 : rows;
            const int64_t c1 = c0 + 16 < cols ? c0 + 16 : cols;
            for (int64_t c = c0; c < c1; ++c)
                for (int64_t r = r0; r < r1; ++r) dst[c * rows + r] = src[r * cols + c];
        }
}
