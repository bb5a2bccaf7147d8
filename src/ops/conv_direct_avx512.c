/* The direct convolution's register tiles for AVX-512 (16-float zmm vectors,
 * 32 registers, lane masks): forward tiles of up to 24 accumulators, two-row
 * tiles for maps of 8 columns or fewer (8 positions of two output rows per
 * vector), masked loads and stores for row tails, and the weight-gradient
 * tile. Compiled with function target attributes, called only when the CPU
 * has AVX-512 F/BW/VL (util/cpu.h). */
#include "ops/conv_direct_impl.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

/* Lanes [0, n) set, n in [0, 16]. */
static inline __mmask16 first_lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

/* One vector of B: 16 positions of a row, or (two-row tiles) 8 of this row
 * and 8 of the next, src_row floats further. */
#define LOAD_B(ROWS_, b, src_row)                                                                                  \
    ((ROWS_) == 1 ? _mm512_loadu_ps(b)                                                                             \
                  : _mm512_mask_loadu_ps(_mm512_castps256_ps512(_mm256_loadu_ps(b)), (__mmask16)0xFF00,            \
                                         (b) + (src_row)-8))

AVX512 static inline void tile_epilogue(const __m512 *acc, int nv, int two_rows, const tile_out_t *o)
{
    const __m512 zero = _mm512_setzero_ps();
    for (int i = 0; i < o->rows; i++) {
        const __m512 sc = _mm512_set1_ps(o->scale ? o->scale[i] : 1.0f);
        const __m512 sh = _mm512_set1_ps(o->shift ? o->shift[i] : 0.0f);
        float *y = o->y + i * o->ld;
        const float *res = o->res ? o->res + i * o->ld : NULL;
        if (two_rows) { /* lanes 0-7: row oy at y; lanes 8-15: row oy + 1 at y + row_ld */
            const __mmask16 lo = first_lanes(o->valid), hi = o->out_rows > 1 ? (__mmask16)(lo << 8) : 0;
            __m512 t = _mm512_fmadd_ps(acc[i], sc, sh);
            if (res)
                t = _mm512_add_ps(t, _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(lo, res), hi, res + o->row_ld - 8));
            if (o->relu) t = _mm512_max_ps(t, zero);
            _mm512_mask_storeu_ps(y, lo, t);
            _mm512_mask_storeu_ps(y + o->row_ld - 8, hi, t);
            continue;
        }
        for (int v = 0; v < nv && 16 * v < o->valid; v++) {
            const __mmask16 m = first_lanes(o->valid - 16 * v);
            __m512 t = _mm512_fmadd_ps(acc[i * nv + v], sc, sh);
            if (res) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(m, res + 16 * v));
            if (o->relu) t = _mm512_max_ps(t, zero);
            _mm512_mask_storeu_ps(y + 16 * v, m, t);
        }
    }
}

/* One function per tile shape: MR channels x NV vectors, ROWS_ output rows
 * per vector (2 only with NV 1). */
#define DEFINE_TILE(MR_, NV_, ROWS_)                                                                               \
    AVX512 static void tile_##MR_##x##NV_##r##ROWS_(int64_t k, const float *restrict wpanel,                      \
                                                   const float *restrict src, const int32_t *restrict off,        \
                                                   const tile_out_t *o)                                           \
    {                                                                                                              \
        __m512 acc[MR_][NV_];                                                                                      \
        const int64_t src_row = o->src_row;                                                                        \
        _Pragma("GCC unroll 24") for (int i = 0; i < MR_; i++)                                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV_; v++) acc[i][v] = _mm512_setzero_ps();                 \
        for (int64_t r = 0; r < k; r++) {                                                                          \
            const float *b = src + off[r];                                                                         \
            __m512 bv[NV_];                                                                                        \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV_; v++) bv[v] = LOAD_B(ROWS_, b + 16 * v, src_row);      \
            const float *a = wpanel + r * MR_;                                                                     \
            _Pragma("GCC unroll 24") for (int i = 0; i < MR_; i++)                                                 \
            {                                                                                                      \
                const __m512 ai = _mm512_set1_ps(a[i]);                                                            \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV_; v++) acc[i][v] =                                  \
                    _mm512_fmadd_ps(ai, bv[v], acc[i][v]);                                                         \
            }                                                                                                      \
        }                                                                                                          \
        __m512 out[MR_ * NV_]; /* acc itself stays unaddressed, so in registers */                               \
        _Pragma("GCC unroll 24") for (int i = 0; i < MR_; i++)                                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV_; v++) out[i * NV_ + v] = acc[i][v];                    \
        tile_epilogue(out, NV_, ROWS_ == 2, o);                                                                    \
    }

DEFINE_TILE(24, 1, 1)
DEFINE_TILE(12, 2, 1)
DEFINE_TILE(24, 1, 2)
DEFINE_TILE(16, 1, 1)
DEFINE_TILE(16, 1, 2)
DEFINE_TILE(20, 1, 1)
DEFINE_TILE(12, 1, 1)
DEFINE_TILE(8, 1, 1)
DEFINE_TILE(4, 1, 1)
DEFINE_TILE(20, 1, 2)
DEFINE_TILE(12, 1, 2)
DEFINE_TILE(8, 1, 2)
DEFINE_TILE(4, 1, 2)
DEFINE_TILE(10, 2, 1)
DEFINE_TILE(8, 2, 1)
DEFINE_TILE(6, 2, 1)
DEFINE_TILE(4, 2, 1)
DEFINE_TILE(2, 2, 1)

/* The weight gradient: 2 vectors of 16 channels x 12 taps in 24
 * registers; per position two loads of dY and twelve broadcasts of x. Used
 * for channel counts that are a multiple of 32 (measured 1 thread, batch 32,
 * on a Zen 4 EPYC: 32 channels 16x16 84 GFLOP/s against AVX2's tile's 81,
 * 64 channels 8x8 86 against 85; 16 channels waste half of it: 44 against
 * 80), AVX2's tile otherwise. */
#define DW_MV 2
#define DW_NR 12
AVX512 static void dw_tile(const dw_tile_in_t *t, float sums[DW_MAX_NR][DW_MAX_CHANNELS])
{
    __m512 acc[DW_MV][DW_NR];
#pragma GCC unroll 2
    for (int v = 0; v < DW_MV; v++)
#pragma GCC unroll 12
        for (int r = 0; r < DW_NR; r++) acc[v][r] = _mm512_setzero_ps();
    for (int64_t n = 0; n < t->images; n++) {
        const float *d = t->dyt + n * t->dyt_image, *xb[DW_NR];
#pragma GCC unroll 12
        for (int r = 0; r < DW_NR; r++) xb[r] = t->pad + n * t->pad_image + t->off[r];
        for (int64_t oy = 0; oy < t->oh; oy++, d += t->ow * t->ld) {
            const int64_t xr = oy * t->wq;
            for (int64_t ox = 0; ox < t->ow; ox++) {
                __m512 dv[DW_MV];
#pragma GCC unroll 2
                for (int v = 0; v < DW_MV; v++) dv[v] = _mm512_loadu_ps(d + ox * t->ld + 16 * v);
#pragma GCC unroll 12
                for (int r = 0; r < DW_NR; r++) {
                    const __m512 xv = _mm512_set1_ps(xb[r][xr + ox]);
#pragma GCC unroll 2
                    for (int v = 0; v < DW_MV; v++) acc[v][r] = _mm512_fmadd_ps(dv[v], xv, acc[v][r]);
                }
            }
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < DW_NR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < DW_MV; v++) _mm512_storeu_ps(sums[r] + 16 * v, acc[v][r]);
}

/* Shapes a layer may use (24 accumulators where the channels allow: 16 and
 * 32 channels run as 16 + ... rows by the narrower last tiles), then the
 * narrower ones for a group's last channel tile. */
static const tile_shape_t shapes[] = {
    {12, 2, 1}, {24, 1, 1}, {24, 1, 2}, {16, 1, 1}, {16, 1, 2},                       /* choosable */
    {20, 1, 1}, {12, 1, 1}, {8, 1, 1},  {4, 1, 1},  {20, 1, 2}, {12, 1, 2}, {8, 1, 2}, /* last tiles */
    {4, 1, 2},  {10, 2, 1}, {8, 2, 1},  {6, 2, 1},  {4, 2, 1},  {2, 2, 1}};
static const tile_fn fns[] = {tile_12x2r1, tile_24x1r1, tile_24x1r2, tile_16x1r1, tile_16x1r2, tile_20x1r1,
                              tile_12x1r1, tile_8x1r1,  tile_4x1r1,  tile_20x1r2, tile_12x1r2, tile_8x1r2,
                              tile_4x1r2,  tile_10x2r1, tile_8x2r1,  tile_6x2r1,  tile_4x2r1,  tile_2x2r1};
_Static_assert(sizeof shapes / sizeof shapes[0] == sizeof fns / sizeof fns[0], "one function per shape");
static const dw_tile_kind_t dw_kind = {dw_tile, 16 * DW_MV, DW_NR};
const conv_direct_isa_t conv_direct_avx512 = {"avx512", 16, shapes, fns, 5, (int)(sizeof shapes / sizeof shapes[0]),
                                              &dw_kind, &conv_direct_avx2_dw};
#else
const conv_direct_isa_t conv_direct_avx512 = {"avx512", 16, NULL, NULL, 0, 0, NULL, NULL}; /* never chosen */
#endif
