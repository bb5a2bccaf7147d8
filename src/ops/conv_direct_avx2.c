/* The direct convolution's register tiles for AVX2 + FMA (8-float ymm
 * vectors, 16 registers): forward tiles of up to 12 accumulators and the
 * weight-gradient tile. Compiled with function target attributes, called
 * only when the CPU has AVX2 and FMA (util/cpu.h). */
#include "ops/conv_direct_impl.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

/* Lanes [0, n) of a vector as a maskload/maskstore mask. */
AVX2 static __m256i lane_mask(int n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

AVX2 static inline void tile_epilogue(const __m256 *acc, int nv, const tile_out_t *o)
{
    const __m256 zero = _mm256_setzero_ps();
    for (int i = 0; i < o->rows; i++) {
        const __m256 sc = _mm256_set1_ps(o->scale ? o->scale[i] : 1.0f);
        const __m256 sh = _mm256_set1_ps(o->shift ? o->shift[i] : 0.0f);
        float *y = o->y + i * o->ld;
        const float *res = o->res ? o->res + i * o->ld : NULL;
        for (int v = 0; v < nv && 8 * v < o->valid; v++) {
            __m256 t = _mm256_add_ps(_mm256_mul_ps(acc[i * nv + v], sc), sh);
            const int lanes = o->valid - 8 * v;
            if (lanes >= 8) {
                if (res) t = _mm256_add_ps(t, _mm256_loadu_ps(res + 8 * v));
                if (o->relu) t = _mm256_max_ps(t, zero);
                _mm256_storeu_ps(y + 8 * v, t);
            } else {
                const __m256i mask = lane_mask(lanes);
                if (res) t = _mm256_add_ps(t, _mm256_maskload_ps(res + 8 * v, mask));
                if (o->relu) t = _mm256_max_ps(t, zero);
                _mm256_maskstore_ps(y + 8 * v, mask, t);
            }
        }
    }
}

/* One function per tile shape (MR channels x NV vectors of one row). */
#define DEFINE_TILE(MR_, NV_)                                                                                      \
    AVX2 static void tile_##MR_##x##NV_(int64_t k, const float *restrict wpanel, const float *restrict src,        \
                                        const int32_t *restrict off, const tile_out_t *o)                          \
    {                                                                                                              \
        __m256 acc[MR_][NV_];                                                                                      \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR_; i++)                                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV_; v++) acc[i][v] = _mm256_setzero_ps();                 \
        for (int64_t r = 0; r < k; r++) {                                                                          \
            const float *b = src + off[r];                                                                         \
            __m256 bv[NV_];                                                                                        \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV_; v++) bv[v] = _mm256_loadu_ps(b + 8 * v);              \
            const float *a = wpanel + r * MR_;                                                                     \
            _Pragma("GCC unroll 16") for (int i = 0; i < MR_; i++)                                                 \
            {                                                                                                      \
                const __m256 ai = _mm256_broadcast_ss(a + i);                                                      \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV_; v++) acc[i][v] =                                  \
                    _mm256_fmadd_ps(ai, bv[v], acc[i][v]);                                                         \
            }                                                                                                      \
        }                                                                                                          \
        __m256 out[MR_ * NV_]; /* acc itself stays unaddressed, so in registers */                               \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR_; i++)                                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV_; v++) out[i * NV_ + v] = acc[i][v];                    \
        tile_epilogue(out, NV_, o);                                                                                \
    }

DEFINE_TILE(6, 2)
DEFINE_TILE(4, 3)
DEFINE_TILE(12, 1)
DEFINE_TILE(8, 1)
DEFINE_TILE(4, 2)
DEFINE_TILE(2, 2)
DEFINE_TILE(2, 3)
DEFINE_TILE(2, 1)
DEFINE_TILE(4, 1)

/* The weight gradient: 2 vectors of 8 channels x 6 taps in 12 registers;
 * per position two loads of dY and six broadcasts of x. */
#define DW_MV 2
#define DW_NR 6
AVX2 static void dw_tile(const dw_tile_in_t *t, float sums[DW_MAX_NR][DW_MAX_CHANNELS])
{
    __m256 acc[DW_MV][DW_NR];
#pragma GCC unroll 4
    for (int v = 0; v < DW_MV; v++)
#pragma GCC unroll 8
        for (int r = 0; r < DW_NR; r++) acc[v][r] = _mm256_setzero_ps();
    for (int64_t n = 0; n < t->images; n++) {
        const float *d = t->dyt + n * t->dyt_image, *xb[DW_NR];
#pragma GCC unroll 8
        for (int r = 0; r < DW_NR; r++) xb[r] = t->pad + n * t->pad_image + t->off[r];
        for (int64_t oy = 0; oy < t->oh; oy++, d += t->ow * t->ld) {
            const int64_t xr = oy * t->wq;
            for (int64_t ox = 0; ox < t->ow; ox++) {
                __m256 dv[DW_MV];
#pragma GCC unroll 4
                for (int v = 0; v < DW_MV; v++) dv[v] = _mm256_loadu_ps(d + ox * t->ld + 8 * v);
#pragma GCC unroll 8
                for (int r = 0; r < DW_NR; r++) {
                    const __m256 xv = _mm256_broadcast_ss(xb[r] + xr + ox);
#pragma GCC unroll 4
                    for (int v = 0; v < DW_MV; v++) acc[v][r] = _mm256_fmadd_ps(dv[v], xv, acc[v][r]);
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < DW_NR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < DW_MV; v++) _mm256_storeu_ps(sums[r] + 8 * v, acc[v][r]);
}

/* Shapes a layer may use ({6,2}: 16/32-channel layers, {12,1}: 64 channels
 * on 8x8 maps), then narrower ones for a group's last channel tile: 16
 * channels as 6 + 6 + 4 rows compute 16 rows instead of 18, 32 as 6 x 5 + 2
 * and 64 as 12 x 5 + 4 likewise. */
static const tile_shape_t shapes[] = {{6, 2, 1}, {4, 3, 1}, {12, 1, 1}, {8, 1, 1}, {4, 2, 1},
                                      {2, 2, 1}, {2, 3, 1}, {2, 1, 1}, {4, 1, 1}};
static const tile_fn fns[] = {tile_6x2, tile_4x3, tile_12x1, tile_8x1, tile_4x2,
                              tile_2x2, tile_2x3, tile_2x1, tile_4x1};
const dw_tile_kind_t conv_direct_avx2_dw = {dw_tile, 8 * DW_MV, DW_NR};
/* dst[p * dst_ld + m] = src[m * src_ld + p] for m < rows, p < cols: 8 x 8
 * blocks transposed in registers (unpack, shuffle, swap of 128-bit halves),
 * the edges one float at a time. */
AVX2 void conv_direct_transpose(const float *restrict src, int64_t src_ld, int64_t rows, int64_t cols,
                                float *restrict dst, int64_t dst_ld)
{
    const int64_t rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
    for (int64_t m = 0; m < rows8; m += 8)
        for (int64_t p = 0; p < cols8; p += 8) {
            __m256 r[8], t[8], u[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (m + i) * src_ld + p);
            for (int i = 0; i < 8; i += 2) {
                t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
                t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
            }
            for (int i = 0; i < 8; i += 4) {
                u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
                u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
                u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
                u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
            }
            for (int i = 0; i < 4; i++) {
                _mm256_storeu_ps(dst + (p + i) * dst_ld + m, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
                _mm256_storeu_ps(dst + (p + i + 4) * dst_ld + m, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
            }
        }
    for (int64_t m = 0; m < rows; m++) /* the edges: rows past rows8, columns past cols8 */
        for (int64_t p = m < rows8 ? cols8 : 0; p < cols; p++) dst[p * dst_ld + m] = src[m * src_ld + p];
}

/* Even-indexed floats of in[0, n) to even[], odd-indexed to odd[]: a
 * stride-2 row split into its two phase planes, 16 floats per step. */
AVX2 void conv_direct_split2(const float *restrict in, int64_t n, float *restrict even, float *restrict odd)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 a = _mm256_loadu_ps(in + i), b = _mm256_loadu_ps(in + i + 8);
        /* per 128-bit half: a0 a2 b0 b2 | a4 a6 b4 b6, then the halves' middle swapped */
        const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        const __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        _mm256_storeu_ps(even + i / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
        _mm256_storeu_ps(odd + i / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8)));
    }
    for (; i < n; i++) (i % 2 ? odd : even)[i / 2] = in[i];
}

const conv_direct_isa_t conv_direct_avx2 = {"avx2", 8, shapes, fns, 5, (int)(sizeof shapes / sizeof shapes[0]),
                                            &conv_direct_avx2_dw, &conv_direct_avx2_dw};
#else
void conv_direct_transpose(const float *src, int64_t src_ld, int64_t rows, int64_t cols, float *dst, int64_t dst_ld)
{
    for (int64_t m = 0; m < rows; m++)
        for (int64_t p = 0; p < cols; p++) dst[p * dst_ld + m] = src[m * src_ld + p];
}
void conv_direct_split2(const float *in, int64_t n, float *even, float *odd)
{
    for (int64_t i = 0; i < n; i++) (i % 2 ? odd : even)[i / 2] = in[i];
}
const dw_tile_kind_t conv_direct_avx2_dw = {NULL, 16, 1};
const conv_direct_isa_t conv_direct_avx2 = {"avx2", 8, NULL, NULL, 0, 0, NULL, NULL}; /* never chosen */
#endif
