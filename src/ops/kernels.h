/* The numeric kernels of the forward runtime: plain functions over flat
 * row-major arrays with their sizes, no graph objects, so tests and the
 * backward passes can call them alone. Each fast kernel has a plain `_ref`
 * twin next to it (same file) that the tests compare it with. Kernels never
 * allocate; what they need beyond their operands comes in `scratch`. The
 * thread pool may be NULL (single-threaded). float32 unless named otherwise. */
#ifndef SFP_KERNELS_H
#define SFP_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnxsfp/tensor.h"
#include "util/threads.h"

#define SFP_MAX_SPATIAL 6

/* ---- BLAS (src/ops/blas.c, the only file calling cblas_*) ---- */
/* C (m,n) = alpha * op(A) op(B) + beta * C, row-major; op(A) is (m,k), op(B)
 * (k,n); lda/ldb/ldc are the row strides of A, B, C as stored. beta == 0
 * ignores what C held. Sizes must fit in int (sfp_sgemm_fits). */
void sfp_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
               int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
void sfp_sgemm_ref(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                   int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
/* True when every size and stride fits the BLAS interface (32-bit ints). */
bool sfp_sgemm_fits(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc);
/* Threads OpenBLAS uses inside one sgemm (process-wide setting); kernels that
 * call sfp_sgemm set it first. */
void sfp_blas_set_threads(int n_threads);

/* ---- Conv (op_conv.c) ---- */
/* x (N, C, D1..Dk), w (M, C/group, K1..Kk), b (M) or NULL -> y (N, M, O1..Ok).
 * pad_begin as resolved by op_window (auto_pad applied); pads at the end are
 * implied by out[]. */
typedef struct sfp_conv_shape {
    int64_t batch, in_channels, out_channels, group;
    int n_spatial;
    int64_t in[SFP_MAX_SPATIAL], out[SFP_MAX_SPATIAL], kernel[SFP_MAX_SPATIAL];
    int64_t stride[SFP_MAX_SPATIAL], dilation[SFP_MAX_SPATIAL], pad_begin[SFP_MAX_SPATIAL];
} sfp_conv_shape_t;
/* True for 1x..x1 kernels with stride 1 and no padding: x is already the
 * im2col matrix. */
bool conv_is_pointwise(const sfp_conv_shape_t *s);
/* Floats of scratch conv_forward needs with a pool of n_threads; false on
 * overflow. */
bool conv_scratch_floats(const sfp_conv_shape_t *s, int n_threads, size_t *out);
/* im2col of one image's channels [c0, c0 + n_channels) into col: row
 * (channel, kernel tap) at col + row * ld holds prod(O) values; positions in
 * the padding read 0. */
void conv_im2col(const sfp_conv_shape_t *s, const float *x_image, int64_t c0, int64_t n_channels, float *col,
                 int64_t ld, sfp_threads_t *threads);
/* With two images or more and several threads, whole images go to each
 * thread (sgemm single-threaded inside); otherwise sgemm and im2col use all
 * threads. Small feature maps put several images side by side in one sgemm. */
void conv_forward(const sfp_conv_shape_t *s, const float *x, const float *w, const float *b, float *y,
                  float *scratch, sfp_threads_t *threads);
void conv_forward_ref(const sfp_conv_shape_t *s, const float *x, const float *w, const float *b, float *y);

/* ---- BatchNormalization, inference form (op_norm.c) ---- */
/* x (N, C, S) -> y (N, C, S): y = scale * (x - mean) / sqrt(var + eps) + bias. */
void batchnorm_forward(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale, const float *bias,
                       const float *mean, const float *var, float eps, float *y, sfp_threads_t *threads);
void batchnorm_forward_ref(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale,
                           const float *bias, const float *mean, const float *var, float eps, float *y);

/* ---- elementwise (op_elementwise.c) ---- */
/* x (n) -> y (n). */
void relu_forward(int64_t n, const float *x, float *y, sfp_threads_t *threads);
void sigmoid_forward(int64_t n, const float *x, float *y, sfp_threads_t *threads);

typedef enum sfp_binary_op { SFP_BIN_ADD, SFP_BIN_SUB, SFP_BIN_MUL, SFP_BIN_DIV } sfp_binary_op_t;
/* Numpy broadcast of a and b to the output shape, as element strides (0 on
 * broadcast dims). bcast_init merges adjacent dims that step alike. */
typedef struct sfp_bcast {
    int ndim;
    int64_t out[SFP_MAX_DIMS];
    int64_t a_stride[SFP_MAX_DIMS], b_stride[SFP_MAX_DIMS];
} sfp_bcast_t;
/* false when the shapes do not broadcast. */
bool bcast_init(int a_ndim, const int64_t *a_dims, int b_ndim, const int64_t *b_dims, sfp_bcast_t *s);
/* a, b broadcast to y (numel of the output). Integer division truncates;
 * callers check divisors for zero first (binary_has_zero_i64). */
void binary_forward_f32(sfp_binary_op_t op, const sfp_bcast_t *s, const float *a, const float *b, float *y,
                        sfp_threads_t *threads);
void binary_forward_i64(sfp_binary_op_t op, const sfp_bcast_t *s, const int64_t *a, const int64_t *b, int64_t *y,
                        sfp_threads_t *threads);
/* The same per element through unmerged shapes (for the tests). */
void binary_forward_f32_ref(sfp_binary_op_t op, int a_ndim, const int64_t *a_dims, const float *a, int b_ndim,
                            const int64_t *b_dims, const float *b, int y_ndim, const int64_t *y_dims, float *y);
void binary_forward_i64_ref(sfp_binary_op_t op, int a_ndim, const int64_t *a_dims, const int64_t *a, int b_ndim,
                            const int64_t *b_dims, const int64_t *b, int y_ndim, const int64_t *y_dims, int64_t *y);
bool binary_has_zero_i64(int64_t n, const int64_t *b);

/* x (outer, len, inner) -> y: softmax over the len axis for every
 * (outer, inner) pair, max subtracted first. */
void softmax_forward(int64_t outer, int64_t len, int64_t inner, const float *x, float *y, sfp_threads_t *threads);

/* ---- pooling (op_pool.c) ---- */
/* x (N, C, D1..Dk) -> y (N, C, O1..Ok). Window positions outside the input
 * (pads, ceil_mode's last window) are skipped by max; average divides by the
 * taps inside the input, or with count_include_pad by the taps inside the
 * padded input [-pad_begin, in + pad_end). */
typedef struct sfp_pool_shape {
    int64_t batch, channels;
    int n_spatial;
    int64_t in[SFP_MAX_SPATIAL], out[SFP_MAX_SPATIAL], kernel[SFP_MAX_SPATIAL];
    int64_t stride[SFP_MAX_SPATIAL], dilation[SFP_MAX_SPATIAL];
    int64_t pad_begin[SFP_MAX_SPATIAL], pad_end[SFP_MAX_SPATIAL];
    bool count_include_pad;
} sfp_pool_shape_t;
void maxpool_forward(const sfp_pool_shape_t *s, const float *x, float *y, sfp_threads_t *threads);
void maxpool_forward_ref(const sfp_pool_shape_t *s, const float *x, float *y);
void avgpool_forward(const sfp_pool_shape_t *s, const float *x, float *y, sfp_threads_t *threads);
void avgpool_forward_ref(const sfp_pool_shape_t *s, const float *x, float *y);
/* x (planes, spatial) -> y (planes). */
void global_avgpool_forward(int64_t planes, int64_t spatial, const float *x, float *y, sfp_threads_t *threads);
void global_maxpool_forward(int64_t planes, int64_t spatial, const float *x, float *y, sfp_threads_t *threads);

/* ---- Gemm and MatMul (op_gemm.c) ---- */
/* a (batch_a..., m, k), b (batch_b..., k, n) -> y (batch..., m, n) with the
 * batch dims broadcast; ranks here are after numpy's 1-D promotion. */
typedef struct sfp_matmul_shape {
    int batch_ndim;
    int64_t batch[SFP_MAX_DIMS];
    int64_t a_stride[SFP_MAX_DIMS], b_stride[SFP_MAX_DIMS]; /* matrix strides per batch dim, 0 = broadcast */
    int64_t m, n, k;
} sfp_matmul_shape_t;
/* Shapes as the model gives them (1-D operands promoted as numpy does); false
 * when the inner dims differ or the batch dims do not broadcast. */
bool matmul_shape_init(int a_ndim, const int64_t *a_dims, int b_ndim, const int64_t *b_dims, sfp_matmul_shape_t *s);
void matmul_forward(const sfp_matmul_shape_t *s, const float *a, const float *b, float *y);
void matmul_forward_ref(const sfp_matmul_shape_t *s, const float *a, const float *b, float *y);

/* ---- data movement (op_shape.c, op_pad_slice.c) ---- */
/* Concatenation of inputs along an axis, seen as (outer, len_i * inner) blocks
 * of elem bytes. */
void concat_forward(int n_inputs, const void *const *x, const int64_t *len, int64_t outer, int64_t inner,
                    size_t elem, void *y);
/* Pad (constant): y = value everywhere, then x placed at offset pad_begin (pads
 * may be negative: cropping). */
void pad_forward(int ndim, const int64_t *x_dims, const int64_t *pad_begin, const int64_t *y_dims, size_t elem,
                 const void *value, const void *x, void *y);
void pad_forward_ref(int ndim, const int64_t *x_dims, const int64_t *pad_begin, const int64_t *y_dims, size_t elem,
                     const void *value, const void *x, void *y);
/* y[i] = x[start + i * step] per axis (count[] output elements per axis). */
void slice_forward(int ndim, const int64_t *x_dims, const int64_t *start, const int64_t *step, const int64_t *count,
                   size_t elem, const void *x, void *y);
void slice_forward_ref(int ndim, const int64_t *x_dims, const int64_t *start, const int64_t *step,
                       const int64_t *count, size_t elem, const void *x, void *y);

#endif
