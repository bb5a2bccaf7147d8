/* The forward kernels against their plain `_ref` twins on random shapes
 * (conv with groups, strides, dilations and pads in 1-D to 3-D; pooling with
 * ceil_mode; broadcasting binaries; sgemm and batched matmul; data movement),
 * the direct convolution's tiles of every instruction set the CPU has, and
 * the same results whatever the thread count. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernels.h"
#include "testutil.h"
#include "train/plan.h"
#include "util/cpu.h"

/* Fast and reference kernels sum in different orders (BLAS blocking versus one
 * double accumulator): 1e-4 of the magnitude of the terms allows a few ulps
 * per term for the sums of up to ~1000 products drawn here, and is far below
 * the error of any wrong tap, pad or stride (an O(1) change of an output). */
#define KERNEL_TOL 1e-4
/* Thread counts only change how work is split, never the order of a sum in
 * our loops; OpenBLAS may split K differently: 1e-5 relative. */
#define THREAD_TOL 1e-5

static float *random_floats(uint32_t *seed, int64_t n)
{
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(tu_rand(seed) % 20001) / 10000.0f - 1.0f;
    return p;
}

static int64_t rand_in(uint32_t *seed, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(tu_rand(seed) % (uint32_t)(hi - lo + 1));
}

/* max |a - b| / max(1, |b|) over n elements, NaN counts as infinitely off. */
static double max_rel_diff(const float *a, const float *b, int64_t n)
{
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / fmax(1.0, fabs((double)b[i]));
        if (isnan(d)) return HUGE_VAL;
        if (d > worst) worst = d;
    }
    return worst;
}

#define EXPECT_CLOSE(a, b, n, tol, ...)                                                            \
    do {                                                                                           \
        double d_ = max_rel_diff((a), (b), (n));                                                   \
        if (!(d_ <= (tol))) {                                                                      \
            print_error("max relative difference %g > %g: ", d_, (double)(tol));                 \
            print_error(__VA_ARGS__);                                                              \
            print_error("\n");                                                                     \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static int64_t prod(const int64_t *d, int n)
{
    int64_t p = 1;
    for (int k = 0; k < n; k++) p *= d[k];
    return p;
}

/* ONNX's explicit-pad output size, with ceil_mode's rule that the last window
 * starts inside the input or its begin pad. */
static int64_t out_size(int64_t in, int64_t k, int64_t stride, int64_t dil, int64_t pb, int64_t pe, bool ceil_mode)
{
    int64_t room = in + pb + pe - ((k - 1) * dil + 1);
    int64_t out = ceil_mode ? (room + stride - 1) / stride + 1 : room / stride + 1;
    if (ceil_mode && (out - 1) * stride >= in + pb) out--;
    return out;
}

static void random_conv(uint32_t *seed, int n_spatial, sfp_conv_shape_t *s)
{
    memset(s, 0, sizeof *s);
    s->n_spatial = n_spatial;
    s->group = rand_in(seed, 1, 3);
    s->in_channels = s->group * rand_in(seed, 1, 4);
    s->out_channels = s->group * rand_in(seed, 1, 4);
    s->batch = rand_in(seed, 1, 3);
    for (int d = 0; d < n_spatial; d++) {
        for (;;) {
            s->in[d] = rand_in(seed, 1, n_spatial == 3 ? 6 : 11);
            s->kernel[d] = rand_in(seed, 1, 4);
            s->stride[d] = rand_in(seed, 1, 3);
            s->dilation[d] = rand_in(seed, 1, 2);
            s->pad_begin[d] = rand_in(seed, 0, 2);
            int64_t pad_end = rand_in(seed, 0, 2);
            int64_t room = s->in[d] + s->pad_begin[d] + pad_end - ((s->kernel[d] - 1) * s->dilation[d] + 1);
            if (room < 0) continue;
            s->out[d] = out_size(s->in[d], s->kernel[d], s->stride[d], s->dilation[d], s->pad_begin[d], pad_end, false);
            break;
        }
    }
}

static void check_conv(const sfp_conv_shape_t *s, bool with_bias, uint32_t *seed, sfp_threads_t *threads)
{
    int ns = s->n_spatial;
    int64_t x_n = s->batch * s->in_channels * prod(s->in, ns);
    int64_t w_n = s->out_channels * (s->in_channels / s->group) * prod(s->kernel, ns);
    int64_t y_n = s->batch * s->out_channels * prod(s->out, ns);
    size_t scratch_n = 0;
    assert_true(conv_scratch_floats(s, sfp_threads_count(threads), &scratch_n));
    float *x = random_floats(seed, x_n), *w = random_floats(seed, w_n), *b = random_floats(seed, s->out_channels);
    float *y = malloc(sizeof(float) * (size_t)y_n), *y_ref = malloc(sizeof(float) * (size_t)y_n);
    float *scratch = malloc(sizeof(float) * (scratch_n + 1));
    assert_non_null(y);
    assert_non_null(y_ref);
    assert_non_null(scratch);
    conv_forward(s, x, w, with_bias ? b : NULL, y, scratch, threads);
    conv_forward_ref(s, x, w, with_bias ? b : NULL, y_ref);
    EXPECT_CLOSE(y, y_ref, y_n, KERNEL_TOL, "conv %dD group %lld in %lld", ns, (long long)s->group, (long long)s->in[0]);
    free(x);
    free(w);
    free(b);
    free(y);
    free(y_ref);
    free(scratch);
}

static void test_conv_matches_ref_on_random_shapes(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    sfp_error_t err = {0};
    sfp_threads_t *threads = NULL;
    TU_OK(&err, sfp_threads_create(2, &threads, &err));
    for (int trial = 0; trial < 300; trial++) {
        sfp_conv_shape_t s;
        random_conv(&seed, 1 + trial % 3, &s);
        check_conv(&s, trial % 2 == 0, &seed, threads);
    }
    sfp_threads_free(threads);
}

/* 1x1 stride 1 without pads multiplies x directly (no im2col): same result. */
static void test_conv_pointwise_path_matches_ref(void **state)
{
    (void)state;
    uint32_t seed = 777;
    sfp_conv_shape_t s = {0};
    s.batch = 3;
    s.in_channels = 8;
    s.out_channels = 6;
    s.group = 2;
    s.n_spatial = 2;
    for (int d = 0; d < 2; d++) {
        s.in[d] = s.out[d] = 5 + d;
        s.kernel[d] = s.stride[d] = s.dilation[d] = 1;
    }
    assert_true(conv_is_pointwise(&s));
    check_conv(&s, true, &seed, NULL);
    s.dilation[0] = 3; /* irrelevant for a 1x1 kernel */
    check_conv(&s, false, &seed, NULL);
}

/* One shape through the fused forward (scale, shift, residual, relu) and the
 * backward (dx written fresh, dw and db added) against the _ref kernels. */
static void check_conv_isa(const sfp_conv_shape_t *s, uint32_t *seed, sfp_threads_t *threads, const char *isa)
{
    const int64_t x_n = s->batch * s->in_channels * s->in[0] * s->in[1];
    const int64_t w_n = s->out_channels * (s->in_channels / s->group) * s->kernel[0] * s->kernel[1];
    const int64_t plane = s->out[0] * s->out[1], y_n = s->batch * s->out_channels * plane;
    size_t f_n = 0, b_n = 0;
    assert_true(conv_scratch_floats(s, sfp_threads_count(threads), &f_n));
    assert_true(conv_backward_scratch_floats(s, sfp_threads_count(threads), &b_n));
    float *x = random_floats(seed, x_n), *w = random_floats(seed, w_n), *res = random_floats(seed, y_n);
    float *sc = random_floats(seed, s->out_channels), *sh = random_floats(seed, s->out_channels);
    float *dy = random_floats(seed, y_n), *y = malloc(sizeof(float) * (size_t)y_n);
    float *y_ref = malloc(sizeof(float) * (size_t)y_n), *scratch = malloc(sizeof(float) * ((f_n > b_n ? f_n : b_n) + 1));
    float *dx = malloc(sizeof(float) * (size_t)x_n), *dx_ref = calloc((size_t)x_n, sizeof(float));
    float *dw = calloc((size_t)w_n, sizeof(float)), *dw_ref = calloc((size_t)w_n, sizeof(float));
    float *db = calloc((size_t)s->out_channels, sizeof(float)), *db_ref = calloc((size_t)s->out_channels, sizeof(float));
    assert_true(y && y_ref && scratch && dx && dx_ref && dw && dw_ref && db && db_ref);
    const sfp_conv_epilogue_t e = {sc, sh, res, true};
    conv_forward_fused(s, x, w, &e, y, scratch, threads);
    conv_forward_ref(s, x, w, NULL, y_ref);
    for (int64_t i = 0; i < y_n; i++) {
        const int64_t m = i / plane % s->out_channels;
        const float v = y_ref[i] * sc[m] + sh[m] + res[i];
        y_ref[i] = v > 0.0f ? v : 0.0f;
    }
    EXPECT_CLOSE(y, y_ref, y_n, KERNEL_TOL, "%s: fused conv %lld -> %lld channels, %lldx%lld, stride %lld", isa,
                 (long long)s->in_channels, (long long)s->out_channels, (long long)s->in[0], (long long)s->in[1],
                 (long long)s->stride[0]);
    for (int64_t i = 0; i < x_n; i++) dx[i] = NAN;
    conv_backward(s, x, w, dy, dx, dw, db, true, scratch, threads);
    conv_backward_ref(s, x, w, dy, dx_ref, dw_ref, db_ref);
    /* dW sums batch x positions products (up to ~600 here): 1e-4 relative */
    EXPECT_CLOSE(dx, dx_ref, x_n, KERNEL_TOL, "%s: dx %lld -> %lld", isa, (long long)s->in_channels,
                 (long long)s->out_channels);
    EXPECT_CLOSE(dw, dw_ref, w_n, KERNEL_TOL, "%s: dw %lld -> %lld", isa, (long long)s->in_channels,
                 (long long)s->out_channels);
    EXPECT_CLOSE(db, db_ref, s->out_channels, KERNEL_TOL, "%s: db", isa);
    free(x);
    free(w);
    free(res);
    free(sc);
    free(sh);
    free(dy);
    free(y);
    free(y_ref);
    free(scratch);
    free(dx);
    free(dx_ref);
    free(dw);
    free(dw_ref);
    free(db);
    free(db_ref);
}

/* Every instruction set the CPU has (so the AVX2 tiles stay tested on an
 * AVX-512 machine), on the channel counts and widths that pick each tile
 * shape and its narrower last tile: 1..70 channels incl. pruned counts (11,
 * 13, 22, 26, 44), rows of 3 to 40 positions (masked tails, two-row tiles
 * on maps of 8 columns or fewer and an odd row count), stride 2 with pads 0
 * to 2, groups, and batch 1 split into bands of rows over three threads;
 * the backward's dY transpose on 8x8 blocks and their edges. */
static void test_direct_conv_every_isa_matches_ref(void **state)
{
    (void)state;
    const sfp_isa_t best = sfp_cpu_isa_supported();
    uint32_t seed = 4242;
    sfp_error_t err = {0};
    sfp_threads_t *two = NULL, *three = NULL;
    TU_OK(&err, sfp_threads_create(2, &two, &err));
    TU_OK(&err, sfp_threads_create(3, &three, &err));
    /* batch, in, out, group, h, w, stride, pad (stride 2 with pads 0, 1, 2: rows split into column phases
     * from an even and an odd start, 16 at a time and the tail) */
    static const int64_t shapes[][8] = {
        {2, 16, 16, 1, 32, 32, 1, 1}, {2, 11, 11, 1, 32, 32, 1, 1}, {1, 13, 26, 1, 16, 16, 2, 1},
        {3, 22, 22, 1, 16, 16, 1, 1}, {2, 44, 44, 1, 8, 8, 1, 1},   {2, 64, 64, 1, 8, 8, 1, 1},
        {1, 32, 64, 1, 16, 16, 2, 1}, {3, 7, 70, 1, 7, 7, 1, 1},    {2, 5, 33, 1, 9, 35, 1, 1},
        {2, 6, 24, 2, 5, 3, 1, 1},    {1, 3, 1, 1, 13, 21, 2, 1},   {5, 26, 13, 1, 6, 12, 1, 1},
        {1, 16, 16, 1, 32, 32, 1, 1}, {1, 22, 11, 1, 17, 33, 1, 1}, {1, 16, 24, 1, 13, 8, 1, 1},
        {1, 7, 70, 1, 7, 7, 1, 1},    {2, 5, 8, 1, 9, 35, 2, 0},    {1, 9, 16, 1, 11, 40, 2, 2},
    };
    for (int isa = SFP_ISA_SCALAR; isa <= (int)best; isa++) {
        assert_int_equal(sfp_cpu_set_isa((sfp_isa_t)isa), isa);
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            const int64_t *d = shapes[i];
            sfp_conv_shape_t s = {.batch = d[0], .in_channels = d[1], .out_channels = d[2], .group = d[3],
                                  .n_spatial = 2};
            for (int k = 0; k < 2; k++) {
                s.in[k] = d[4 + k];
                s.kernel[k] = 3;
                s.stride[k] = d[6];
                s.dilation[k] = 1;
                s.pad_begin[k] = d[7];
                s.out[k] = (d[4 + k] + 2 * d[7] - 3) / d[6] + 1;
            }
            assert_true(conv_direct_applies(&s) == (isa != SFP_ISA_SCALAR));
            /* batch 1 on three threads: bands of rows, each padded by its thread */
            check_conv_isa(&s, &seed, d[0] == 1 ? three : i % 2 ? two : NULL, sfp_isa_name((sfp_isa_t)isa));
        }
    }
    sfp_cpu_set_isa(best);
    sfp_threads_free(two);
    sfp_threads_free(three);
}

static void random_pool(uint32_t *seed, int n_spatial, bool ceil_mode, sfp_pool_shape_t *s)
{
    memset(s, 0, sizeof *s);
    s->batch = rand_in(seed, 1, 2);
    s->channels = rand_in(seed, 1, 3);
    s->n_spatial = n_spatial;
    s->count_include_pad = tu_rand(seed) % 2;
    for (int d = 0; d < n_spatial; d++) {
        for (;;) {
            s->in[d] = rand_in(seed, 1, 12);
            s->kernel[d] = rand_in(seed, 1, 4);
            s->stride[d] = rand_in(seed, 1, 3);
            s->dilation[d] = rand_in(seed, 1, 2);
            s->pad_begin[d] = rand_in(seed, 0, s->kernel[d] - 1);
            s->pad_end[d] = rand_in(seed, 0, s->kernel[d] - 1);
            int64_t room = s->in[d] + s->pad_begin[d] + s->pad_end[d] - ((s->kernel[d] - 1) * s->dilation[d] + 1);
            if (room < 0) continue;
            s->out[d] = out_size(s->in[d], s->kernel[d], s->stride[d], s->dilation[d], s->pad_begin[d], s->pad_end[d],
                                 ceil_mode);
            break;
        }
    }
}

static void test_pooling_matches_ref_with_pads_dilations_and_ceil_mode(void **state)
{
    (void)state;
    uint32_t seed = 4242;
    sfp_error_t err = {0};
    sfp_threads_t *threads = NULL;
    TU_OK(&err, sfp_threads_create(2, &threads, &err));
    for (int trial = 0; trial < 400; trial++) {
        sfp_pool_shape_t s;
        random_pool(&seed, 1 + trial % 3, trial % 4 >= 2, &s);
        int64_t x_n = s.batch * s.channels * prod(s.in, s.n_spatial), y_n = s.batch * s.channels * prod(s.out, s.n_spatial);
        float *x = random_floats(&seed, x_n), *y = malloc(sizeof(float) * (size_t)y_n),
              *y_ref = malloc(sizeof(float) * (size_t)y_n);
        assert_non_null(y);
        assert_non_null(y_ref);
        maxpool_forward(&s, x, y, threads);
        maxpool_forward_ref(&s, x, y_ref);
        EXPECT_CLOSE(y, y_ref, y_n, 0.0, "maxpool trial %d", trial);
        avgpool_forward(&s, x, y, threads);
        avgpool_forward_ref(&s, x, y_ref);
        EXPECT_CLOSE(y, y_ref, y_n, 1e-6, "avgpool trial %d", trial);
        free(x);
        free(y);
        free(y_ref);
    }
    sfp_threads_free(threads);
}

/* The two copies exports write around a downsampling shortcut: a Pad of
 * zeros (one memcpy) and AveragePool 1x1 stride 2 (a strided copy), equal
 * to the reference bit for bit, on an odd plane. */
static void test_zero_pad_and_pointwise_avgpool_are_exact_copies(void **state)
{
    (void)state;
    uint32_t seed = 77;
    const int64_t xd[4] = {3, 5, 9, 7}, zero[4] = {0, 0, 0, 0};
    const int64_t x_n = prod(xd, 4);
    float *x = random_floats(&seed, x_n), value = 1.5f;
    float *y = malloc(sizeof(float) * (size_t)x_n), *y_ref = malloc(sizeof(float) * (size_t)x_n);
    assert_true(y && y_ref);
    pad_forward(4, xd, zero, xd, sizeof(float), &value, x, y);
    pad_forward_ref(4, xd, zero, xd, sizeof(float), &value, x, y_ref);
    EXPECT_CLOSE(y, y_ref, x_n, 0.0, "pad without pads");
    sfp_pool_shape_t s = {.batch = 3, .channels = 5, .n_spatial = 2};
    for (int d = 0; d < 2; d++) {
        s.in[d] = xd[2 + d];
        s.kernel[d] = s.dilation[d] = 1;
        s.stride[d] = 2;
        s.out[d] = out_size(s.in[d], 1, 2, 1, 0, 0, false);
    }
    const int64_t y_n = 3 * 5 * s.out[0] * s.out[1];
    avgpool_forward(&s, x, y, NULL);
    avgpool_forward_ref(&s, x, y_ref);
    EXPECT_CLOSE(y, y_ref, y_n, 0.0, "avgpool 1x1 stride 2");
    free(x);
    free(y);
    free(y_ref);
}

/* AveragePool 3x3, stride 2, pads 1, ceil_mode on a 4x4 plane of ones: 3x3
 * outputs, the last window [3, 6) reaching past the padded input [-1, 5).
 * Without count_include_pad every output is 1. With it the divisor counts
 * the taps inside the padded input only (as ONNX Runtime does), per dim:
 * window [-1, 2) has 3 of them (2 real), [1, 4) 3 (3), [3, 6) 2 (1). */
static void test_avgpool_count_include_pad_excludes_ceil_overhang(void **state)
{
    (void)state;
    sfp_pool_shape_t s = {0};
    s.batch = s.channels = 1;
    s.n_spatial = 2;
    for (int d = 0; d < 2; d++) {
        s.in[d] = 4;
        s.kernel[d] = 3;
        s.stride[d] = 2;
        s.dilation[d] = 1;
        s.pad_begin[d] = s.pad_end[d] = 1;
        s.out[d] = out_size(4, 3, 2, 1, 1, 1, true);
    }
    assert_int_equal(s.out[0], 3);
    float x[16], y[9];
    for (int i = 0; i < 16; i++) x[i] = 1.0f;
    avgpool_forward(&s, x, y, NULL);
    for (int i = 0; i < 9; i++) assert_float_equal(y[i], 1.0f, 1e-6f);
    s.count_include_pad = true;
    avgpool_forward(&s, x, y, NULL);
    const float want_1d[3] = {2.0f / 3.0f, 1.0f, 1.0f / 2.0f};
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) assert_float_equal(y[r * 3 + c], want_1d[r] * want_1d[c], 1e-6f);
}

static void test_global_pools_average_and_max_each_plane(void **state)
{
    (void)state;
    uint32_t seed = 99;
    const int64_t planes = 7, spatial = 13;
    float *x = random_floats(&seed, planes * spatial), y[7], z[7];
    global_avgpool_forward(planes, spatial, x, y, NULL);
    global_maxpool_forward(planes, spatial, x, z, NULL);
    for (int64_t p = 0; p < planes; p++) {
        double sum = 0.0;
        float best = -INFINITY;
        for (int64_t i = 0; i < spatial; i++) {
            sum += (double)x[p * spatial + i];
            if (x[p * spatial + i] > best) best = x[p * spatial + i];
        }
        assert_float_equal(y[p], (float)(sum / (double)spatial), 1e-6f);
        assert_float_equal(z[p], best, 0.0f);
    }
    free(x);
}

static void random_dims(uint32_t *seed, int *ndim, int64_t *dims, int max_rank)
{
    *ndim = (int)rand_in(seed, 0, max_rank);
    for (int k = 0; k < *ndim; k++) dims[k] = rand_in(seed, 1, 4);
}

static void test_binary_broadcast_matches_ref_float_and_int64(void **state)
{
    (void)state;
    uint32_t seed = 31337;
    sfp_error_t err = {0};
    sfp_threads_t *threads = NULL;
    TU_OK(&err, sfp_threads_create(2, &threads, &err));
    for (int trial = 0; trial < 500; trial++) {
        int yn = 0, an = 0, bn = 0;
        int64_t yd[SFP_MAX_DIMS], ad[SFP_MAX_DIMS], bd[SFP_MAX_DIMS];
        random_dims(&seed, &yn, yd, 5);
        /* a and b: suffixes of y with some dims set to 1 */
        an = (int)rand_in(&seed, 0, yn);
        bn = (int)rand_in(&seed, 0, yn);
        for (int k = 0; k < an; k++) ad[k] = tu_rand(&seed) % 3 == 0 ? 1 : yd[yn - an + k];
        for (int k = 0; k < bn; k++) bd[k] = tu_rand(&seed) % 3 == 0 ? 1 : yd[yn - bn + k];
        /* the output shape is the broadcast of a and b */
        sfp_bcast_t s;
        assert_true(bcast_init(an, ad, bn, bd, &s));
        int on = an > bn ? an : bn;
        int64_t od[SFP_MAX_DIMS];
        for (int k = 0; k < on; k++) {
            int ia = k - (on - an), ib = k - (on - bn);
            int64_t da = ia >= 0 ? ad[ia] : 1, db = ib >= 0 ? bd[ib] : 1;
            od[k] = da == 1 ? db : da;
        }
        int64_t a_n = prod(ad, an), b_n = prod(bd, bn), y_n = prod(od, on);
        float *a = random_floats(&seed, a_n), *b = random_floats(&seed, b_n);
        float *y = malloc(sizeof(float) * (size_t)y_n), *y_ref = malloc(sizeof(float) * (size_t)y_n);
        int64_t *ia = malloc(sizeof(int64_t) * (size_t)a_n), *ib = malloc(sizeof(int64_t) * (size_t)b_n);
        int64_t *iy = malloc(sizeof(int64_t) * (size_t)y_n), *iy_ref = malloc(sizeof(int64_t) * (size_t)y_n);
        assert_true(y && y_ref && ia && ib && iy && iy_ref);
        for (int64_t i = 0; i < a_n; i++) ia[i] = (int64_t)(tu_rand(&seed) % 2001) - 1000;
        for (int64_t i = 0; i < b_n; i++) ib[i] = (int64_t)(tu_rand(&seed) % 2000) - 1000 + (tu_rand(&seed) % 2 ? 0 : 3000);
        for (int op = SFP_BIN_ADD; op <= SFP_BIN_DIV; op++) {
            binary_forward_f32((sfp_binary_op_t)op, &s, a, b, y, threads);
            binary_forward_f32_ref((sfp_binary_op_t)op, an, ad, a, bn, bd, b, on, od, y_ref);
            for (int64_t i = 0; i < y_n; i++)
                if (!(y[i] == y_ref[i] || (isnan(y[i]) && isnan(y_ref[i]))))
                    fail_msg("float op %d trial %d at %lld", op, trial, (long long)i);
            if (op == SFP_BIN_DIV && binary_has_zero_i64(b_n, ib)) continue;
            binary_forward_i64((sfp_binary_op_t)op, &s, ia, ib, iy, threads);
            binary_forward_i64_ref((sfp_binary_op_t)op, an, ad, ia, bn, bd, ib, on, od, iy_ref);
            for (int64_t i = 0; i < y_n; i++)
                if (iy[i] != iy_ref[i]) fail_msg("int64 op %d trial %d at %lld", op, trial, (long long)i);
        }
        free(a);
        free(b);
        free(y);
        free(y_ref);
        free(ia);
        free(ib);
        free(iy);
        free(iy_ref);
    }
    sfp_threads_free(threads);
}

/* Integer arithmetic wraps instead of overflowing; INT64_MIN / -1 too. */
static void test_int64_binaries_wrap_on_overflow(void **state)
{
    (void)state;
    sfp_bcast_t s;
    int64_t one = 1;
    assert_true(bcast_init(1, &one, 1, &one, &s));
    int64_t a = INT64_MAX, b = 1, y = 0;
    binary_forward_i64(SFP_BIN_ADD, &s, &a, &b, &y, NULL);
    assert_true(y == INT64_MIN);
    a = INT64_MIN;
    b = -1;
    binary_forward_i64(SFP_BIN_DIV, &s, &a, &b, &y, NULL);
    assert_true(y == INT64_MIN);
    a = -7;
    b = 2;
    binary_forward_i64(SFP_BIN_DIV, &s, &a, &b, &y, NULL);
    assert_true(y == -3); /* truncation toward zero */
}

static void test_sgemm_matches_ref_with_transposes(void **state)
{
    (void)state;
    uint32_t seed = 2024;
    for (int trial = 0; trial < 60; trial++) {
        int64_t m = rand_in(&seed, 1, 40), n = rand_in(&seed, 1, 40), k = rand_in(&seed, 0, 70);
        bool ta = trial & 1, tb = trial & 2;
        float alpha = trial % 3 == 0 ? 0.5f : 1.0f, beta = trial % 5 == 0 ? 0.0f : 0.25f;
        float *a = random_floats(&seed, m * k), *b = random_floats(&seed, k * n);
        float *c = random_floats(&seed, m * n), *c_ref = malloc(sizeof(float) * (size_t)(m * n));
        assert_non_null(c_ref);
        memcpy(c_ref, c, sizeof(float) * (size_t)(m * n));
        sfp_sgemm(ta, tb, m, n, k, alpha, a, ta ? m : k, b, tb ? k : n, beta, c, n);
        sfp_sgemm_ref(ta, tb, m, n, k, alpha, a, ta ? m : k, b, tb ? k : n, beta, c_ref, n);
        EXPECT_CLOSE(c, c_ref, m * n, KERNEL_TOL, "sgemm %lld x %lld x %lld", (long long)m, (long long)n, (long long)k);
        free(a);
        free(b);
        free(c);
        free(c_ref);
    }
}

static void test_matmul_batches_and_broadcasts_like_ref(void **state)
{
    (void)state;
    uint32_t seed = 5150;
    for (int trial = 0; trial < 200; trial++) {
        int an = (int)rand_in(&seed, 1, 4), bn = (int)rand_in(&seed, 1, 4);
        int64_t ad[SFP_MAX_DIMS], bd[SFP_MAX_DIMS], batch[2] = {rand_in(&seed, 1, 3), rand_in(&seed, 1, 3)};
        int64_t m = rand_in(&seed, 1, 5), n = rand_in(&seed, 1, 5), k = rand_in(&seed, 1, 6);
        /* batch dims: a suffix of (batch[0], batch[1]), some set to 1 */
        for (int d = 0; d < an - 2; d++) ad[d] = tu_rand(&seed) % 3 == 0 ? 1 : batch[2 - (an - 2) + d];
        for (int d = 0; d < bn - 2; d++) bd[d] = tu_rand(&seed) % 3 == 0 ? 1 : batch[2 - (bn - 2) + d];
        if (an >= 2) {
            ad[an - 2] = m;
            ad[an - 1] = k;
        } else {
            ad[0] = k;
        }
        if (bn >= 2) {
            bd[bn - 2] = k;
            bd[bn - 1] = n;
        } else {
            bd[0] = k;
        }
        sfp_matmul_shape_t s;
        assert_true(matmul_shape_init(an, ad, bn, bd, &s));
        int64_t count = prod(s.batch, s.batch_ndim), y_n = count * s.m * s.n;
        float *a = random_floats(&seed, prod(ad, an)), *b = random_floats(&seed, prod(bd, bn));
        float *y = malloc(sizeof(float) * (size_t)y_n), *y_ref = malloc(sizeof(float) * (size_t)y_n);
        assert_true(y && y_ref);
        matmul_forward(&s, a, b, y);
        matmul_forward_ref(&s, a, b, y_ref);
        EXPECT_CLOSE(y, y_ref, y_n, KERNEL_TOL, "matmul trial %d", trial);
        free(a);
        free(b);
        free(y);
        free(y_ref);
    }
}

static void test_batchnorm_and_softmax_match_definitions(void **state)
{
    (void)state;
    uint32_t seed = 8;
    const int64_t n = 3, c = 5, sp = 17;
    float *x = random_floats(&seed, n * c * sp), *scale = random_floats(&seed, c), *bias = random_floats(&seed, c);
    float *mean = random_floats(&seed, c), *var = random_floats(&seed, c);
    float y[3 * 5 * 17], y_ref[3 * 5 * 17];
    for (int64_t i = 0; i < c; i++) var[i] = var[i] + 1.5f;
    batchnorm_forward(n, c, sp, x, scale, bias, mean, var, 1e-5f, y, NULL);
    batchnorm_forward_ref(n, c, sp, x, scale, bias, mean, var, 1e-5f, y_ref);
    EXPECT_CLOSE(y, y_ref, n * c * sp, 1e-5, "batchnorm");
    /* softmax over the middle axis of (3, 5, 17) */
    softmax_forward(n, c, sp, x, y, NULL);
    for (int64_t o = 0; o < n; o++)
        for (int64_t in = 0; in < sp; in++) {
            double sum = 0.0;
            for (int64_t i = 0; i < c; i++) sum += exp((double)x[(o * c + i) * sp + in]);
            for (int64_t i = 0; i < c; i++)
                y_ref[(o * c + i) * sp + in] = (float)(exp((double)x[(o * c + i) * sp + in]) / sum);
        }
    EXPECT_CLOSE(y, y_ref, n * c * sp, 1e-6, "softmax");
    free(x);
    free(scale);
    free(bias);
    free(mean);
    free(var);
}

static void test_pad_and_slice_match_ref_on_random_shapes(void **state)
{
    (void)state;
    uint32_t seed = 606;
    for (int trial = 0; trial < 300; trial++) {
        int nd = (int)rand_in(&seed, 1, 4);
        int64_t xd[SFP_MAX_DIMS], yd[SFP_MAX_DIMS], pb[SFP_MAX_DIMS], start[SFP_MAX_DIMS], step[SFP_MAX_DIMS],
            count[SFP_MAX_DIMS];
        for (int d = 0; d < nd; d++) {
            xd[d] = rand_in(&seed, 1, 6);
            pb[d] = rand_in(&seed, -xd[d] + 1, 3);
            int64_t pe = rand_in(&seed, -(xd[d] + pb[d]) + 1 > -3 ? -(xd[d] + pb[d]) + 1 : -3, 3);
            yd[d] = xd[d] + pb[d] + pe;
            assert_true(yd[d] >= 1);
            step[d] = rand_in(&seed, 1, 3) * (tu_rand(&seed) % 2 ? 1 : -1);
            start[d] = step[d] > 0 ? rand_in(&seed, 0, xd[d] - 1) : rand_in(&seed, 0, xd[d] - 1);
            int64_t room = step[d] > 0 ? xd[d] - start[d] : start[d] + 1;
            int64_t mag = step[d] > 0 ? step[d] : -step[d];
            count[d] = rand_in(&seed, 0, (room + mag - 1) / mag);
        }
        int64_t x_n = prod(xd, nd), y_n = prod(yd, nd), s_n = prod(count, nd);
        float *x = random_floats(&seed, x_n), value = 7.5f;
        float *y = malloc(sizeof(float) * (size_t)(y_n + 1)), *y_ref = malloc(sizeof(float) * (size_t)(y_n + 1));
        assert_true(y && y_ref);
        pad_forward(nd, xd, pb, yd, sizeof(float), &value, x, y);
        pad_forward_ref(nd, xd, pb, yd, sizeof(float), &value, x, y_ref);
        EXPECT_CLOSE(y, y_ref, y_n, 0.0, "pad trial %d", trial);
        float *z = malloc(sizeof(float) * (size_t)(s_n + 1)), *z_ref = malloc(sizeof(float) * (size_t)(s_n + 1));
        assert_true(z && z_ref);
        slice_forward(nd, xd, start, step, count, sizeof(float), x, z);
        slice_forward_ref(nd, xd, start, step, count, sizeof(float), x, z_ref);
        EXPECT_CLOSE(z, z_ref, s_n, 0.0, "slice trial %d", trial);
        free(x);
        free(y);
        free(y_ref);
        free(z);
        free(z_ref);
    }
}

/* The same kernel with 1 and 2 threads. */
static void test_kernels_do_not_depend_on_thread_count(void **state)
{
    (void)state;
    uint32_t seed = 1;
    sfp_error_t err = {0};
    sfp_threads_t *two = NULL;
    TU_OK(&err, sfp_threads_create(2, &two, &err));
    assert_int_equal(sfp_threads_count(two), 2);
    sfp_conv_shape_t s = {0};
    s.batch = 4;
    s.in_channels = 16;
    s.out_channels = 32;
    s.group = 1;
    s.n_spatial = 2;
    for (int d = 0; d < 2; d++) {
        s.in[d] = 32;
        s.kernel[d] = 3;
        s.stride[d] = 2;
        s.dilation[d] = 1;
        s.pad_begin[d] = 1;
        s.out[d] = 16;
    }
    size_t scratch_n = 0;
    assert_true(conv_scratch_floats(&s, 2, &scratch_n));
    int64_t x_n = 4 * 16 * 32 * 32, y_n = 4 * 32 * 16 * 16;
    float *x = random_floats(&seed, x_n), *w = random_floats(&seed, 32 * 16 * 9), *b = random_floats(&seed, 32);
    /* y1, y2 hold the conv output (y_n) and the elementwise results (x_n) */
    float *y1 = malloc(sizeof(float) * (size_t)x_n), *y2 = malloc(sizeof(float) * (size_t)x_n);
    float *scratch = malloc(sizeof(float) * scratch_n);
    assert_true(y1 && y2 && scratch);
    sfp_blas_set_threads(1);
    conv_forward(&s, x, w, b, y1, scratch, NULL);
    sfp_blas_set_threads(2);
    conv_forward(&s, x, w, b, y2, scratch, two);
    EXPECT_CLOSE(y2, y1, y_n, THREAD_TOL, "conv 1 vs 2 threads");
    float *var = random_floats(&seed, 16);
    for (int i = 0; i < 16; i++) var[i] += 2.0f;
    batchnorm_forward(4, 16, 1024, x, w, b, w + 16, var, 1e-3f, y1, NULL);
    batchnorm_forward(4, 16, 1024, x, w, b, w + 16, var, 1e-3f, y2, two);
    EXPECT_CLOSE(y2, y1, x_n, 0.0, "batchnorm 1 vs 2 threads");
    relu_forward(x_n, x, y1, NULL);
    relu_forward(x_n, x, y2, two);
    EXPECT_CLOSE(y2, y1, x_n, 0.0, "relu 1 vs 2 threads");
    sfp_pool_shape_t p = {0};
    p.batch = 4;
    p.channels = 16;
    p.n_spatial = 2;
    for (int d = 0; d < 2; d++) {
        p.in[d] = 32;
        p.kernel[d] = 3;
        p.stride[d] = 2;
        p.dilation[d] = 1;
        p.pad_begin[d] = p.pad_end[d] = 1;
        p.out[d] = 16;
    }
    maxpool_forward(&p, x, y1, NULL);
    maxpool_forward(&p, x, y2, two);
    EXPECT_CLOSE(y2, y1, 4 * 16 * 256, 0.0, "maxpool 1 vs 2 threads");
    sfp_bcast_t bc;
    int64_t xd[4] = {4, 16, 32, 32}, cd[3] = {16, 1, 1};
    assert_true(bcast_init(4, xd, 3, cd, &bc));
    binary_forward_f32(SFP_BIN_MUL, &bc, x, b, y1, NULL);
    binary_forward_f32(SFP_BIN_MUL, &bc, x, b, y2, two);
    EXPECT_CLOSE(y2, y1, x_n, 0.0, "broadcast mul 1 vs 2 threads");
    free(var);
    free(x);
    free(w);
    free(b);
    free(y1);
    free(y2);
    free(scratch);
    sfp_threads_free(two);
}

/* A small residual network (conv-BN-relu, strided conv, add, pooling, gemm,
 * softmax) run by plans with 1 and 2 threads. */
/* The shared small residual network with a max pool and a softmax output. */
static sfp_model_t *small_resnet(void)
{
    const tu_resnet_spec_t spec = {.batch = -1, .in_c = 3, .hw = 16, .width = 8, .classes = 10, .maxpool = true,
                                   .softmax = true};
    return tu_small_resnet(&spec);
}

static void test_plan_results_do_not_depend_on_thread_count(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = small_resnet();
    TU_OK(&err, model_validate(m, &err));
    uint32_t seed = 3;
    float *x = random_floats(&seed, 5 * 3 * 16 * 16);
    sfp_plan_t *p1 = NULL, *p2 = NULL;
    TU_OK(&err, plan_create(m, 5, 0, 1, &p1, &err));
    TU_OK(&err, plan_create(m, 5, 0, 2, &p2, &err));
    assert_int_equal(plan_threads(p1), 1);
    assert_int_equal(plan_threads(p2), 2);
    const void *in[1] = {x};
    TU_OK(&err, plan_run(p1, in, &err));
    TU_OK(&err, plan_run(p2, in, &err));
    for (int o = 0; o < 2; o++) {
        assert_int_equal(plan_output_shape(p1, o)->dims[0], 5);
        EXPECT_CLOSE(plan_output(p2, o), plan_output(p1, o), 50, THREAD_TOL, "output %d", o);
    }
    plan_free(p1);
    plan_free(p2);
    free(x);
    sfp_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_matches_ref_on_random_shapes),
        cmocka_unit_test(test_conv_pointwise_path_matches_ref),
        cmocka_unit_test(test_direct_conv_every_isa_matches_ref),
        cmocka_unit_test(test_pooling_matches_ref_with_pads_dilations_and_ceil_mode),
        cmocka_unit_test(test_avgpool_count_include_pad_excludes_ceil_overhang),
        cmocka_unit_test(test_zero_pad_and_pointwise_avgpool_are_exact_copies),
        cmocka_unit_test(test_global_pools_average_and_max_each_plane),
        cmocka_unit_test(test_binary_broadcast_matches_ref_float_and_int64),
        cmocka_unit_test(test_int64_binaries_wrap_on_overflow),
        cmocka_unit_test(test_sgemm_matches_ref_with_transposes),
        cmocka_unit_test(test_matmul_batches_and_broadcasts_like_ref),
        cmocka_unit_test(test_batchnorm_and_softmax_match_definitions),
        cmocka_unit_test(test_pad_and_slice_match_ref_on_random_shapes),
        cmocka_unit_test(test_kernels_do_not_depend_on_thread_count),
        cmocka_unit_test(test_plan_results_do_not_depend_on_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
