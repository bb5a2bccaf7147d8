/* What conv_direct.c (geometry, packing, threads) shares with the
 * instruction-set files that hold its register tiles (conv_direct_avx2.c,
 * conv_direct_avx512.c). Private to src/ops. */
#ifndef SFP_CONV_DIRECT_IMPL_H
#define SFP_CONV_DIRECT_IMPL_H

#include <stdbool.h>
#include <stdint.h>

/* A forward tile: MR output channels x NV vectors of `lanes` positions of
 * one output row; with rows == 2 each vector holds lanes / 2 positions of
 * two consecutive output rows (small maps on wide vectors). */
typedef struct tile_shape {
    int mr, nv, rows;
} tile_shape_t;

/* Where a tile's results go: mr rows of y (and of the residual) ld apart,
 * valid positions per output row from y on (the second output row of a
 * two-row tile row_ld further, out_rows of them valid); per-channel scale
 * and shift (may be NULL). */
typedef struct tile_out {
    float *y;
    const float *res;
    const float *scale, *shift;
    int64_t ld, row_ld, src_row; /* src_row: the padded plane's row (wq) */
    int valid, rows, out_rows;
    bool relu;
} tile_out_t;

/* acc[i][v] = sum over taps r < k of wpanel[r][i] * src[off[r] + ...], in
 * r order; then y = act(acc * scale + shift + res). */
typedef void (*tile_fn)(int64_t k, const float *wpanel, const float *src, const int32_t *off, const tile_out_t *o);

/* A weight-gradient tile: channels_per_tile channels of the transposed dY
 * (images, positions, ld channels) x nr taps; sums[r][c] over the chunk's
 * positions in order. */
#define DW_MAX_NR 12
#define DW_MAX_CHANNELS 32
typedef struct dw_tile_in {
    const float *dyt;
    const float *pad;
    int32_t off[DW_MAX_NR];
    int64_t ld, images, dyt_image, pad_image;
    int64_t oh, ow, wq;
} dw_tile_in_t;
typedef void (*dw_tile_fn)(const dw_tile_in_t *t, float sums[DW_MAX_NR][DW_MAX_CHANNELS]);

typedef struct dw_tile_kind {
    dw_tile_fn fn;
    int channels, nr;
} dw_tile_kind_t;
/* AVX2's weight-gradient tile (16 channels x 6 taps), also used by AVX-512
 * for channel counts that are no multiple of its own tile's 32. */
extern const dw_tile_kind_t conv_direct_avx2_dw;

/* One instruction set's tiles. shapes[0, n_choosable) may be chosen for a
 * layer; the rest serve as narrower last channel tiles (same nv and rows).
 * dw: the weight-gradient tile for channel counts that are a multiple of its
 * width, dw_other for the rest. */
#define MAX_MR 24
typedef struct conv_direct_isa {
    const char *name;
    int lanes;
    const tile_shape_t *shapes;
    const tile_fn *fns;
    int n_choosable, n_shapes;
    const dw_tile_kind_t *dw, *dw_other;
} conv_direct_isa_t;

extern const conv_direct_isa_t conv_direct_avx2;
extern const conv_direct_isa_t conv_direct_avx512;

/* Even-indexed floats of in[0, n) to even[0, ceil(n / 2)), odd-indexed to
 * odd[0, n / 2) (AVX2; every CPU the direct path runs on has it). */
void conv_direct_split2(const float *in, int64_t n, float *even, float *odd);
/* dst[p * dst_ld + m] = src[m * src_ld + p], m < rows, p < cols (AVX2). */
void conv_direct_transpose(const float *src, int64_t src_ld, int64_t rows, int64_t cols, float *dst, int64_t dst_ld);

#endif
