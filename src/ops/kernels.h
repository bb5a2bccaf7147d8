/* The numeric kernels of the forward runtime: plain functions over flat
 * row-major arrays with their sizes, no graph objects, so tests and the
 * backward passes can call them alone. Each fast kernel has a plain `_ref`
 * twin next to it (same file) that the tests compare it with. Kernels never
 * allocate; what they need beyond their operands comes in `scratch`. The
 * thread pool may be NULL (single-threaded). float32 unless named otherwise.
 * Each op's section lists its forward, then its backward (training runtime):
 * each *_backward is the adjoint of the forward kernel above it: given dy,
 * the gradient of the loss with respect to the forward's output, it ADDS the
 * gradients of the inputs into dx, dw, ... (+=; the caller zeroes them). A
 * NULL gradient pointer means that gradient is not wanted. Shapes are the
 * forward's. Each has a plain `_ref` twin where the fast one is not already
 * the plain loop. */
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
/* What conv_forward_fused does to each output after the convolution sum acc
 * of (n, m, o) (the bias is not in acc): y = act(acc * scale[m] + shift[m] +
 * residual[n, m, o]). scale NULL: 1; shift NULL: 0 (shift = b gives the
 * plain conv); residual (N, M, O..) or NULL; relu or identity. */
typedef struct sfp_conv_epilogue {
    const float *scale, *shift, *residual;
    bool relu;
} sfp_conv_epilogue_t;
/* The convolution with its epilogue; scratch as conv_forward. residual may
 * not overlap y, except that the direct kernel allows residual == y (each
 * element is read just before it is written: y += conv). 2-D shapes go to the direct kernel when the CPU has
 * AVX2 or AVX-512 (conv_direct_applies), the others to im2col + sgemm and one pass
 * over y for the epilogue. */
void conv_forward_fused(const sfp_conv_shape_t *s, const float *x, const float *w, const sfp_conv_epilogue_t *e,
                        float *y, float *scratch, sfp_threads_t *threads);
/* The same with w also in the direct kernel's layout (conv_direct_pack), or
 * packed NULL. */
void conv_forward_packed(const sfp_conv_shape_t *s, const float *x, const float *w, const float *packed,
                         const sfp_conv_epilogue_t *e, float *y, float *scratch, sfp_threads_t *threads);
/* Direct kernel (conv_direct.c): 2-D convolutions without im2col on a CPU
 * with AVX2 + FMA or AVX-512, the tiles of the instruction set util/cpu.h
 * chose (conv_direct_avx2.c, conv_direct_avx512.c; see conv_direct.c). */
bool conv_direct_applies(const sfp_conv_shape_t *s);
/* Floats of scratch conv_direct_forward needs; false when the shape is not
 * for it. */
bool conv_direct_scratch_floats(const sfp_conv_shape_t *s, int n_threads, size_t *out);
/* packed: NULL (the weights are packed into scratch on every call), or
 * conv_direct_packed_bytes of w as conv_direct_pack left them (inference
 * plans whose weights do not change pack once). */
void conv_direct_forward(const sfp_conv_shape_t *s, const float *x, const float *w, const float *packed,
                         const sfp_conv_epilogue_t *e, float *y, float *scratch, sfp_threads_t *threads);
/* Bytes of w in the kernel's layout (0: the shape is not for the direct
 * kernel), and the packing itself. */
size_t conv_direct_packed_bytes(const sfp_conv_shape_t *s);
void conv_direct_pack(const sfp_conv_shape_t *s, const float *w, float *packed);
/* dw +=, db += of the direct kernel's shapes (conv_direct_applies): the
 * weight gradient straight from the padded phase planes, no im2col; sums
 * over a fixed number of image ranges, so the same for any thread count. */
bool conv_direct_dw_scratch_floats(const sfp_conv_shape_t *s, int n_threads, size_t *out);
void conv_direct_backward_dw(const sfp_conv_shape_t *s, const float *x, const float *dy, float *dw, float *db,
                             float *scratch, sfp_threads_t *threads);
void conv_forward_ref(const sfp_conv_shape_t *s, const float *x, const float *w, const float *b, float *y);

/* Conv: x (N,C,D..), w (M,C/G,K..), dy (N,M,O..) -> dx (N,C,D..) +=,
 * dw (M,C/G,K..) +=, db (M) +=. dW: the direct kernel where it applies
 * (conv_direct_backward_dw), else im2col + sgemm, per image (or several
 * images side by side on small maps); both cut the batch into a fixed number
 * of partial sums of dw/db that do not depend on the thread count, workers
 * take whole partials. dX: with stride 1, the forward convolution of
 * dY by the flipped kernel with its channel axes swapped (the direct kernel
 * where it applies, dx being the residual its epilogue adds; im2col + sgemm
 * otherwise); other strides sgemm + col2im. */
bool conv_backward_scratch_floats(const sfp_conv_shape_t *s, int n_threads, size_t *out);
/* dx_fresh: dx holds nothing yet and is written, not added to (every
 * element; the backward's first writer of a gradient saves its zeroing). */
void conv_backward(const sfp_conv_shape_t *s, const float *x, const float *w, const float *dy, float *dx, float *dw,
                   float *db, bool dx_fresh, float *scratch, sfp_threads_t *threads);
void conv_backward_ref(const sfp_conv_shape_t *s, const float *x, const float *w, const float *dy, float *dx,
                       float *dw, float *db);
/* Adjoint of conv_im2col: adds the rows of col (channels [c0, c0 +
 * n_channels) of one image, row stride ld) back into dx_image; positions in
 * the padding are dropped. Threads split channels. */
void conv_col2im(const sfp_conv_shape_t *s, const float *col, int64_t c0, int64_t n_channels, int64_t ld,
                 float *dx_image, sfp_threads_t *threads);

/* ---- BatchNormalization (op_norm.c) ---- */
/* x (N, C, S) -> y (N, C, S): y = scale * (x - mean) / sqrt(var + eps) + bias. */
void batchnorm_forward(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale, const float *bias,
                       const float *mean, const float *var, float eps, float *y, sfp_threads_t *threads);
/* The per-channel factors of the inference form, y = x * a + b, for x that
 * already had pre_bias (C, or NULL) added: a = scale / sqrt(var + eps),
 * b = bias - mean * a (+ pre_bias * a). */
void batchnorm_fold(int64_t c, const float *scale, const float *bias, const float *mean, const float *var, float eps,
                    const float *pre_bias, float *a, float *b);
void batchnorm_forward_ref(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale,
                           const float *bias, const float *mean, const float *var, float eps, float *y);

/* BatchNormalization, training form: x (N, C, S) -> y normalised by each
 * channel's batch mean and biased variance; save_mean / save_invstd (C, may
 * be NULL) keep mean and 1/sqrt(var + eps) for backward; running_mean /
 * running_var (C,
 * both or neither NULL) become momentum * running + (1 - momentum) * batch,
 * with the unbiased variance (N*S/(N*S-1)) as ONNX and PyTorch do. Sums:
 * float lanes within blocks of 256 elements, blocks added in double; mean
 * and variance in one pass of sums about the mean of image 0's plane (so
 * without cancellation), then the output. Needs N*S >= 2. */
void batchnorm_train_forward(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale,
                             const float *bias, float eps, float momentum, float *y, float *save_mean,
                             float *save_invstd, float *running_mean, float *running_var, sfp_threads_t *threads);
/* x (N,C,S), dy -> dx +=, dscale +=, dbias += for y = scale * (x - mean) *
 * invstd + bias. batch_stats: mean/invstd were the batch's own (training
 * form), so the gradient also flows through them; otherwise they are
 * constants (running statistics). */
void batchnorm_backward(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale,
                        const float *mean, const float *invstd, const float *dy, bool batch_stats, float *dx,
                        bool dx_fresh, float *dscale, float *dbias, sfp_threads_t *threads);
void batchnorm_backward_ref(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale,
                            const float *mean, const float *invstd, const float *dy, bool batch_stats, float *dx,
                            float *dscale, float *dbias);

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

/* dst (n) += src (n). */
void grad_accumulate(int64_t n, const float *src, float *dst, sfp_threads_t *threads);

/* y = relu(x) (n): dx += dy where y > 0 (dx_fresh: dx = dy there, 0 elsewhere). */
void relu_backward(int64_t n, const float *y, const float *dy, float *dx, bool dx_fresh, sfp_threads_t *threads);
/* y = sigmoid(x) (n): dx += dy * y * (1 - y). */
void sigmoid_backward(int64_t n, const float *y, const float *dy, float *dx, sfp_threads_t *threads);
/* y = softmax of x (outer, len, inner) over len: dx += y * (dy - sum(dy * y)). */
void softmax_backward(int64_t outer, int64_t len, int64_t inner, const float *y, const float *dy, float *dx,
                      sfp_threads_t *threads);
/* a, b broadcast by s to y (prod(s->out)); dy (y) -> da += (a's shape),
 * db += (b's shape), summed over the dims an operand was broadcast along.
 * a and b are read for Mul and Div only; da and db may be the same buffer
 * (x op x). */
void binary_backward_f32(sfp_binary_op_t op, const sfp_bcast_t *s, const float *a, const float *b, const float *dy,
                         float *da, float *db, sfp_threads_t *threads);
void binary_backward_f32_ref(sfp_binary_op_t op, int a_ndim, const int64_t *a_dims, const float *a, int b_ndim,
                             const int64_t *b_dims, const float *b, int y_ndim, const int64_t *y_dims,
                             const float *dy, float *da, float *db);

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

/* Pooling: x (N,C,D..), dy (N,C,O..) -> dx +=. Max sends each output's
 * gradient to the first maximum of its window (row-major tap order, as the
 * forward picks it and PyTorch does); average spreads it over the taps the
 * forward divided by. */
void maxpool_backward(const sfp_pool_shape_t *s, const float *x, const float *dy, float *dx, sfp_threads_t *threads);
void maxpool_backward_ref(const sfp_pool_shape_t *s, const float *x, const float *dy, float *dx);
void avgpool_backward(const sfp_pool_shape_t *s, const float *dy, float *dx, sfp_threads_t *threads);
void avgpool_backward_ref(const sfp_pool_shape_t *s, const float *dy, float *dx);
/* x (planes, spatial), dy (planes) -> dx (planes, spatial) +=. */
void global_avgpool_backward(int64_t planes, int64_t spatial, const float *dy, float *dx, sfp_threads_t *threads);
void global_maxpool_backward(int64_t planes, int64_t spatial, const float *x, const float *dy, float *dx,
                             sfp_threads_t *threads);

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

/* Gemm without C: y (m,n) = alpha op(a) op(b), a (m,k) or (k,m) when
 * trans_a, b (k,n) or (n,k) when trans_b -> da +=, db += (same layouts). */
void gemm_backward(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                   const float *b, const float *dy, float *da, float *db);
/* MatMul (shapes as matmul_shape_init) -> da +=, db +=, summed over the
 * batch dims an operand was broadcast along. */
void matmul_backward(const sfp_matmul_shape_t *s, const float *a, const float *b, const float *dy, float *da,
                     float *db);
void matmul_backward_ref(const sfp_matmul_shape_t *s, const float *a, const float *b, const float *dy, float *da,
                         float *db);

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

/* Data movement, float32: the gradient goes back where the element came from. */
/* dy (outer, sum(len_i) * inner) -> dx_i (outer, len_i * inner) += (dx[i] may be NULL). */
void concat_backward(int n_inputs, float *const *dx, const int64_t *len, int64_t outer, int64_t inner,
                     const float *dy);
/* dy (y_dims) -> dx (x_dims) += the window pad_forward placed x in. */
void pad_backward(int ndim, const int64_t *x_dims, const int64_t *pad_begin, const int64_t *y_dims, const float *dy,
                  float *dx);
void pad_backward_ref(int ndim, const int64_t *x_dims, const int64_t *pad_begin, const int64_t *y_dims,
                      const float *dy, float *dx);
/* dy (count) -> dx (x_dims): dx[start + i * step] += dy[i]. */
void slice_backward(int ndim, const int64_t *x_dims, const int64_t *start, const int64_t *step, const int64_t *count,
                    const float *dy, float *dx);
void slice_backward_ref(int ndim, const int64_t *x_dims, const int64_t *start, const int64_t *step,
                        const int64_t *count, const float *dy, float *dx);
/* y = transpose(x, perm), x (x_dims): dx += transpose(dy, perm^-1). */
void transpose_backward(int rank, const int64_t *x_dims, const int *perm, const float *dy, float *dx);

#endif
