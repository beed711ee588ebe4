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
 */
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define RESTRICT __restrict__

static inline void axpy(float *RESTRICT y, const float *RESTRICT x, float a, int64_t n) {
#pragma omp simd
    for (int64_t b = 0; b < n; ++b) y[b] += a * x[b];
}

static inline float dot(const float *RESTRICT x, const float *RESTRICT y, int64_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t b = 0; b < n; ++b) acc += x[b] * y[b];
    return acc;
}

/* yt (rows x batch) = W (rows x cols, CSR) @ xt (cols x batch) + bias (rows, may be NULL). */
void dst_spmm(int64_t rows, int64_t batch, const int64_t *RESTRICT rowptr,
              const int64_t *RESTRICT col, const float *RESTRICT val, const float *RESTRICT xt,
              const float *RESTRICT bias, float *RESTRICT yt, int threads) {
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int64_t i = 0; i < rows; ++i) {
        float *RESTRICT out = yt + i * batch;
        const float init = bias ? bias[i] : 0.0f;
        for (int64_t b = 0; b < batch; ++b) out[b] = init;
        for (int64_t k = rowptr[i]; k < rowptr[i + 1]; ++k)
            axpy(out, xt + col[k] * batch, val[k], batch);
    }
}

/* dxt (cols x batch) = W^T @ dyt, W^T given as CSC of W: colptr, the row of each entry, and
 * perm[k], the CSR position of CSC entry k (the values stay in CSR order). */
void dst_spmm_t(int64_t cols, int64_t batch, const int64_t *RESTRICT colptr,
                const int64_t *RESTRICT row, const int64_t *RESTRICT perm,
                const float *RESTRICT val, const float *RESTRICT dyt, float *RESTRICT dxt,
                int threads) {
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int64_t j = 0; j < cols; ++j) {
        float *RESTRICT out = dxt + j * batch;
        memset(out, 0, (size_t)batch * sizeof(float));
        for (int64_t k = colptr[j]; k < colptr[j + 1]; ++k)
            axpy(out, dyt + row[k] * batch, val[perm[k]], batch);
    }
}

/* gval[k] = dot(dyt[i, :], xt[col[k], :]) for every stored k of row i: the weight gradient at
 * the stored positions only. */
void dst_sddmm(int64_t rows, int64_t batch, const int64_t *RESTRICT rowptr,
               const int64_t *RESTRICT col, const float *RESTRICT dyt, const float *RESTRICT xt,
               float *RESTRICT gval, int threads) {
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int64_t i = 0; i < rows; ++i) {
        const float *RESTRICT g = dyt + i * batch;
        for (int64_t k = rowptr[i]; k < rowptr[i + 1]; ++k)
            gval[k] = dot(g, xt + col[k] * batch, batch);
    }
}

/* Both gradients in one pass over the CSR structure (one thread: the scatter into dxt would
 * race otherwise). dxt must be zeroed by the caller. */
void dst_backward_fused(int64_t rows, int64_t batch, const int64_t *RESTRICT rowptr,
                        const int64_t *RESTRICT col, const float *RESTRICT val,
                        const float *RESTRICT dyt, const float *RESTRICT xt,
                        float *RESTRICT gval, float *RESTRICT dxt) {
    for (int64_t i = 0; i < rows; ++i) {
        const float *RESTRICT g = dyt + i * batch;
        for (int64_t k = rowptr[i]; k < rowptr[i + 1]; ++k) {
            const int64_t j = col[k];
            gval[k] = dot(g, xt + j * batch, batch);
            axpy(dxt + j * batch, g, val[k], batch);
        }
    }
}
