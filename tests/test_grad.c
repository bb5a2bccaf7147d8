/* Gradients of the training runtime against central finite differences:
 * every op's backward (run through a training plan, so the op table entry,
 * the plan's gradient routing and the kernel are all exercised) on small
 * random shapes, the backward kernels against their `_ref` twins, a whole
 * residual block with the cross-entropy loss, and the plan's bookkeeping
 * (parameters, buffer reuse, refusals, one backward per run).
 *
 * Finite differences run in float32 (the runtime has no double kernels):
 * L = sum_i r_i y_i over output 0 with fixed random r, summed in double;
 * dL/dt ~ (L(t + h) - L(t - h)) / 2h per element, h = 1e-2 for inputs in
 * [-1, 1]. The figure reported per tensor is max |analytic - fd| divided by
 * the largest |fd| of the tensor (floor 1e-3). Error sources: truncation,
 * zero for the linear ops and O(h^2) ~ 1e-4 relative for the smooth ones;
 * rounding of the float outputs, ulp(y) sqrt(outputs moved) / h ~ 1e-4. FD_TOL
 * = 5e-3 keeps a margin over both, while a wrong index, stride, pad, sign or
 * missing term moves the figure by 1e-1 or more. Piecewise-linear ops (Relu,
 * max pooling) get inputs kept at least 0.05 away from their kinks. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700

#include "testutil.h"

#include <math.h>

#include "ops/kernels.h"
#include "ops/ops.h"
#include "train/plan.h"
#include "train/train.h"

#define FD_H 1e-2f
#define FD_TOL 5e-3
/* Fast backward kernels against the `_ref` twins (double sums): the same
 * sums in another order, a few ulps per term of sums of up to ~1000 terms. */
#define KERNEL_TOL 1e-4


/* ---- data ---- */

/* Values in +-[0.1, 1]: at least 0.1 from Relu's kink. */
static float *away_from_zero(uint32_t *seed, int64_t n)
{
    float *p = tu_uniform(seed, n, 0.1f, 1.0f);
    for (int64_t i = 0; i < n; i++)
        if (tu_rand(seed) & 1) p[i] = -p[i];
    return p;
}

/* A shuffled ramp 0.05 apart: every window has one clear maximum. */
static float *distinct(uint32_t *seed, int64_t n)
{
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = 0.05f * (float)i - 0.025f * (float)n;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(tu_rand(seed) % (uint32_t)(i + 1));
        float t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

static int64_t numel(int ndim, const int64_t *dims)
{
    int64_t n = 1;
    for (int k = 0; k < ndim; k++) n *= dims[k];
    return n;
}

/* ---- the finite-difference harness ---- */
typedef struct fd_setup {
    float h;
    bool training;           /* BatchNormalization by batch statistics */
    int threads;
} fd_setup_t;

static const fd_setup_t FD_DEFAULT = {FD_H, true, 1};

static double weighted_output(sfp_plan_t *p, const void *const *in, const float *r)
{
    sfp_error_t err = {0};
    TU_OK(&err, plan_run(p, in, &err));
    const float *y = plan_output(p, 0);
    int64_t n = shape_numel(plan_output_shape(p, 0));
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)r[i] * (double)y[i];
    return sum;
}

/* max |a - fd| / max(1e-3, max |fd|) of one tensor t (n elements, perturbed
 * in place) whose analytic gradient is a. */
static double fd_tensor(sfp_plan_t *p, const void *const *in, const float *r, float *t, const float *a, int64_t n,
                        float h)
{
    double worst = 0.0, scale = 1e-3;
    for (int64_t i = 0; i < n; i++) {
        const float keep = t[i];
        t[i] = keep + h;
        double up = weighted_output(p, in, r);
        t[i] = keep - h;
        double down = weighted_output(p, in, r);
        t[i] = keep;
        double fd = (up - down) / (2.0 * (double)h);
        scale = fmax(scale, fabs(fd));
        worst = fmax(worst, fabs(fd - (double)a[i]));
        if (isnan((double)a[i])) worst = HUGE_VAL;
    }
    return worst / scale;
}

/* Plans m at its declared shapes with gradients for the plan inputs, runs it
 * on inputs[] (one array per plan input, perturbed in place and restored),
 * back-propagates a random r and checks every input and parameter gradient.
 * Returns the worst figure; prints one line per tensor under `what`. */
static double fd_check(sfp_model_t *m, float **inputs, const fd_setup_t *setup, const char *what)
{
    sfp_error_t err = {0};
    sfp_plan_t *p = NULL;
    TU_OK(&err, model_validate(m, &err));
    TU_OK(&err, plan_create(m, 0, SFP_PLAN_TRAIN | SFP_PLAN_INPUT_GRADS, setup->threads, &p, &err));
    plan_set_training(p, setup->training);
    const int n_in = plan_n_inputs(p), n_par = plan_n_params(p);
    const void *in[8] = {0};
    assert_true(n_in <= 8);
    for (int i = 0; i < n_in; i++) in[i] = inputs[i];
    uint32_t seed = 77;
    const int64_t n_out = shape_numel(plan_output_shape(p, 0));
    float *r = tu_uniform(&seed, n_out, -1.0f, 1.0f);
    TU_OK(&err, plan_run(p, in, &err));
    plan_zero_grad(p);
    TU_OK(&err, plan_backward(p, r, &err));
    /* copies: the FD runs below reuse the plan's buffers */
    float *grads[8 + 64] = {0};
    int64_t sizes[8 + 64] = {0};
    assert_true(n_par <= 64);
    for (int i = 0; i < n_in; i++) {
        const float *g = plan_value_grad(p, plan_input_value(p, i));
        sizes[i] = shape_numel(plan_input_shape(p, i));
        grads[i] = malloc(sizeof(float) * (size_t)sizes[i]);
        assert_non_null(grads[i]);
        if (g) {
            memcpy(grads[i], g, sizeof(float) * (size_t)sizes[i]);
        } else { /* no gradient flows to it: it must not matter */
            memset(grads[i], 0, sizeof(float) * (size_t)sizes[i]);
        }
    }
    for (int i = 0; i < n_par; i++) {
        const sfp_param_t *prm = plan_param(p, i);
        sizes[8 + i] = prm->numel;
        grads[8 + i] = malloc(sizeof(float) * (size_t)prm->numel);
        assert_non_null(grads[8 + i]);
        memcpy(grads[8 + i], prm->grad, sizeof(float) * (size_t)prm->numel);
    }
    double worst = 0.0;
    for (int i = 0; i < n_in; i++) {
        double e = fd_tensor(p, in, r, inputs[i], grads[i], sizes[i], setup->h);
        print_message("    %-34s input %-10s fd error %.2e\n", what,
                      m->graph.values[plan_input_value(p, i)].name, e);
        worst = fmax(worst, e);
    }
    for (int i = 0; i < n_par; i++) {
        const sfp_param_t *prm = plan_param(p, i);
        double e = fd_tensor(p, in, r, prm->data, grads[8 + i], sizes[8 + i], setup->h);
        print_message("    %-34s param %-10s fd error %.2e\n", what, prm->name, e);
        worst = fmax(worst, e);
    }
    for (int i = 0; i < 8 + 64; i++) free(grads[i]);
    free(r);
    plan_free(p);
    if (!(worst <= FD_TOL)) fail_msg("%s: gradient differs from finite differences by %g (> %g)", what, worst, FD_TOL);
    return worst;
}

static void free_inputs(float **inputs, int n)
{
    for (int i = 0; i < n; i++) free(inputs[i]);
}

/* fd_check of m's one input filled uniform in [-1, 1) (n elements, seed);
 * frees m. */
static void fd_check_uniform(sfp_model_t *m, int64_t n, uint32_t seed, const char *what)
{
    float *x = tu_uniform(&seed, n, -1.0f, 1.0f);
    fd_check(m, &x, &FD_DEFAULT, what);
    free(x);
    sfp_model_free(m);
}

/* ---- Conv ---- */
typedef struct conv_case {
    int n_spatial;
    int64_t batch, in_c, out_c, group;
    int64_t in[3], kernel[3], stride[3], dilation[3], pads[6];
    bool bias;
} conv_case_t;

static void check_conv_case(const conv_case_t *c, uint32_t seed, const char *what)
{
    sfp_model_t *m = tu_model(13);
    int64_t x_dims[5] = {c->batch, c->in_c}, w_dims[5] = {c->out_c, c->in_c / c->group};
    for (int d = 0; d < c->n_spatial; d++) {
        x_dims[2 + d] = c->in[d];
        w_dims[2 + d] = c->kernel[d];
    }
    const int rank = 2 + c->n_spatial;
    tu_input(m, "x", SFP_DT_FLOAT, rank, x_dims);
    tu_init_f32(m, "w", rank, w_dims, NULL, seed);
    if (c->bias) tu_init_f32(m, "b", 1, &c->out_c, NULL, seed + 1);
    sfp_node_t *n = tu_node(m, "Conv", "conv", c->bias ? "x,w,b" : "x,w", "y");
    tu_attr_int(n, "group", c->group);
    tu_attr_ints(n, "strides", (size_t)c->n_spatial, c->stride);
    tu_attr_ints(n, "dilations", (size_t)c->n_spatial, c->dilation);
    tu_attr_ints(n, "pads", 2 * (size_t)c->n_spatial, c->pads);
    tu_output(m, "y");
    float *x = tu_uniform(&seed, numel(rank, x_dims), -1.0f, 1.0f);
    fd_check(m, &x, &FD_DEFAULT, what);
    free(x);
    sfp_model_free(m);
}

static void test_conv_backward_matches_finite_differences(void **state)
{
    (void)state;
    const conv_case_t cases[] = {
        /* 3x3 pad 1 (ResNet body), bias (fused BN) */
        {2, 2, 3, 4, 1, {5, 5}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, true},
        /* strided, uneven pads, no bias */
        {2, 2, 2, 3, 1, {6, 5}, {3, 2}, {2, 1}, {1, 1}, {1, 0, 0, 1}, false},
        /* groups and dilation */
        {2, 1, 4, 6, 2, {6, 6}, {2, 3}, {1, 2}, {2, 1}, {1, 2, 1, 0}, true},
        /* depthwise */
        {2, 2, 3, 3, 3, {4, 5}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, false},
        /* 1x1 stride 1: the pointwise path without im2col */
        {2, 3, 4, 2, 1, {3, 4}, {1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, true},
        /* 1x1 stride 2: the downsampling shortcut of option B */
        {2, 2, 2, 4, 1, {5, 5}, {1, 1}, {2, 2}, {1, 1}, {0, 0, 0, 0}, false},
        /* the direct dW kernel: a width of 11 (a row is no whole vector),
         * 18 output channels (a second, partly used tile of 16) */
        {2, 3, 3, 18, 1, {4, 11}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, true},
        /* ... stride 2 on an odd width (two phases per axis), uneven pads */
        {2, 2, 3, 5, 1, {5, 13}, {3, 3}, {2, 2}, {1, 1}, {1, 0, 1, 1}, false},
        /* ... groups on a width of 9, dilation */
        {2, 2, 4, 6, 2, {5, 9}, {3, 2}, {1, 1}, {1, 2}, {1, 1, 1, 0}, true},
        /* 1-D and 3-D */
        {1, 2, 2, 3, 1, {9}, {3}, {2}, {1}, {1, 2}, true},
        {3, 1, 2, 2, 1, {3, 4, 3}, {2, 2, 2}, {1, 2, 1}, {1, 1, 1}, {1, 0, 1, 0, 1, 0}, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "Conv case %zu", i);
        check_conv_case(&cases[i], (uint32_t)(11 + i), what);
    }
}

static void random_conv_shape(uint32_t *seed, int n_spatial, sfp_conv_shape_t *s)
{
    memset(s, 0, sizeof *s);
    s->n_spatial = n_spatial;
    s->group = 1 + tu_rand(seed) % 2;
    s->in_channels = s->group * (1 + tu_rand(seed) % 4);
    s->out_channels = s->group * (1 + tu_rand(seed) % 4);
    s->batch = 1 + tu_rand(seed) % 20; /* up to 20: several images per sgemm and several partials */
    for (int d = 0; d < n_spatial; d++) {
        for (;;) {
            s->in[d] = 1 + tu_rand(seed) % 9;
            s->kernel[d] = 1 + tu_rand(seed) % 3;
            s->stride[d] = 1 + tu_rand(seed) % 2;
            s->dilation[d] = 1 + tu_rand(seed) % 2;
            s->pad_begin[d] = tu_rand(seed) % 2;
            int64_t pad_end = tu_rand(seed) % 2;
            int64_t room = s->in[d] + s->pad_begin[d] + pad_end - ((s->kernel[d] - 1) * s->dilation[d] + 1);
            if (room < 0) continue;
            s->out[d] = room / s->stride[d] + 1;
            break;
        }
    }
}

/* conv_backward on one shape against the tap-by-tap reference, with no pool
 * and with two threads; dw and db the same bits for both. */
static void check_conv_backward_kernel(const sfp_conv_shape_t *s, uint32_t *seed, sfp_threads_t *two)
{
    const int ns = s->n_spatial;
    int64_t x_n = s->batch * s->in_channels * numel(ns, s->in);
    int64_t w_n = s->out_channels * (s->in_channels / s->group) * numel(ns, s->kernel);
    int64_t y_n = s->batch * s->out_channels * numel(ns, s->out);
    size_t scratch_n = 0;
    assert_true(conv_backward_scratch_floats(s, 2, &scratch_n));
    float *x = tu_uniform(seed, x_n, -1, 1), *w = tu_uniform(seed, w_n, -1, 1), *dy = tu_uniform(seed, y_n, -1, 1);
    float *scratch = malloc(sizeof(float) * (scratch_n + 1));
    /* start from the same non-zero values: backward must add */
    float *dx[3], *dw[3], *db[3];
    for (int k = 0; k < 3; k++) {
        uint32_t s2 = 99;
        dx[k] = tu_uniform(&s2, x_n, -1, 1);
        dw[k] = tu_uniform(&s2, w_n, -1, 1);
        db[k] = tu_uniform(&s2, s->out_channels, -1, 1);
    }
    conv_backward_ref(s, x, w, dy, dx[0], dw[0], db[0]);
    conv_backward(s, x, w, dy, dx[1], dw[1], db[1], false, scratch, NULL);
    /* two threads, dx written fresh over garbage, the start values added after */
    for (int64_t i = 0; i < x_n; i++) dx[2][i] = NAN;
    conv_backward(s, x, w, dy, dx[2], dw[2], db[2], true, scratch, two);
    uint32_t s3 = 99;
    float *dx_start = tu_uniform(&s3, x_n, -1, 1);
    for (int64_t i = 0; i < x_n; i++) dx[2][i] += dx_start[i];
    free(dx_start);
    for (int k = 1; k < 3; k++) {
        for (int64_t i = 0; i < x_n; i++) TU_EXPECT_NEAR(dx[k][i], dx[0][i], KERNEL_TOL * 10);
        for (int64_t i = 0; i < w_n; i++)
            assert_true(fabs((double)dw[k][i] - (double)dw[0][i]) <= KERNEL_TOL * fmax(1.0, fabs((double)dw[0][i])) * 10);
        for (int64_t i = 0; i < s->out_channels; i++)
            assert_true(fabs((double)db[k][i] - (double)db[0][i]) <= KERNEL_TOL * fmax(1.0, fabs((double)db[0][i])) * 10);
    }
    /* dw and db sum in an order fixed by the shape (the partials): the
     * same for any thread count. dx of stride-1 convolutions is a forward
     * convolution, whose images are grouped into sgemm calls by thread
     * (test_kernels' THREAD_TOL, 1e-5) */
    for (int64_t i = 0; i < w_n; i++) assert_true(dw[2][i] == dw[1][i]);
    for (int64_t i = 0; i < s->out_channels; i++) assert_true(db[2][i] == db[1][i]);
    for (int64_t i = 0; i < x_n; i++) TU_EXPECT_NEAR(dx[2][i], dx[1][i], 1e-5 * fmax(1.0, fabs((double)dx[1][i])));
    free(x);
    free(w);
    free(dy);
    free(scratch);
    for (int k = 0; k < 3; k++) {
        free(dx[k]);
        free(dw[k]);
        free(db[k]);
    }
}

/* conv_backward (im2col/sgemm/col2im, the direct dW kernel, partial sums,
 * threads) on random shapes and a few chosen ones. */
static void test_conv_backward_kernel_matches_ref(void **state)
{
    (void)state;
    uint32_t seed = 5;
    sfp_error_t err = {0};
    sfp_threads_t *two = NULL;
    TU_OK(&err, sfp_threads_create(2, &two, &err));
    for (int iter = 0; iter < 40; iter++) {
        sfp_conv_shape_t s;
        random_conv_shape(&seed, 1 + iter % 3, &s);
        check_conv_backward_kernel(&s, &seed, two);
    }
    /* for the direct dW kernel (2-D, AVX2), shapes the random ones do not
     * reach: rows of 11 to 35 positions (no whole vectors), channel counts
     * past a tile of 16, strides, groups, batches of several partials;
     * batch, in, out, group, h, w, kernel, stride, pad */
    const int64_t shapes[][9] = {
        {20, 3, 17, 1, 12, 11, 3, 1, 1}, {9, 8, 24, 1, 7, 35, 3, 2, 1}, {12, 6, 10, 2, 9, 13, 3, 1, 0},
        {5, 16, 33, 1, 8, 8, 3, 1, 1},   {3, 4, 4, 4, 10, 19, 3, 2, 1}, {33, 2, 5, 1, 3, 9, 2, 1, 0},
    };
    for (size_t iter = 0; iter < sizeof shapes / sizeof shapes[0]; iter++) {
        const int64_t *d = shapes[iter];
        sfp_conv_shape_t s = {.batch = d[0], .in_channels = d[1], .out_channels = d[2], .group = d[3], .n_spatial = 2};
        for (int k = 0; k < 2; k++) {
            s.in[k] = d[4 + k];
            s.kernel[k] = d[6];
            s.stride[k] = d[7];
            s.dilation[k] = 1;
            s.pad_begin[k] = d[8];
            s.out[k] = (s.in[k] + 2 * d[8] - d[6]) / d[7] + 1;
        }
        check_conv_backward_kernel(&s, &seed, two);
    }
    sfp_threads_free(two);
}

/* ---- BatchNormalization ---- */
static sfp_model_t *bn_model(const int64_t *x_dims, int rank, uint32_t seed)
{
    sfp_model_t *m = tu_model(15);
    const int64_t c = x_dims[1];
    tu_input(m, "x", SFP_DT_FLOAT, rank, x_dims);
    float *scale = tu_uniform(&seed, c, 0.5f, 1.5f), *mean = tu_uniform(&seed, c, -0.5f, 0.5f);
    float *var = tu_uniform(&seed, c, 0.5f, 2.0f);
    tu_init_f32(m, "scale", 1, &c, scale, 0);
    tu_init_f32(m, "bias", 1, &c, NULL, seed);
    tu_init_f32(m, "mean", 1, &c, mean, 0);
    tu_init_f32(m, "var", 1, &c, var, 0);
    sfp_node_t *n = tu_node(m, "BatchNormalization", "bn", "x,scale,bias,mean,var", "y");
    tu_attr_float(n, "epsilon", 1e-3f);
    tu_attr_float(n, "momentum", 0.8f);
    tu_output(m, "y");
    free(scale);
    free(mean);
    free(var);
    return m;
}

static void test_batchnorm_training_backward_matches_finite_differences(void **state)
{
    (void)state;
    const int64_t dims4[4] = {3, 2, 3, 4}, dims2[2] = {6, 3}, dims3[3] = {2, 3, 5};
    const int64_t *dims[3] = {dims4, dims2, dims3};
    const int ranks[3] = {4, 2, 3};
    for (int i = 0; i < 3; i++) {
        uint32_t seed = 40 + (uint32_t)i;
        sfp_model_t *m = bn_model(dims[i], ranks[i], seed);
        float *x = tu_uniform(&seed, numel(ranks[i], dims[i]), -1.0f, 2.0f);
        char what[64];
        snprintf(what, sizeof what, "BN training rank %d", ranks[i]);
        fd_check(m, &x, &FD_DEFAULT, what);
        free(x);
        sfp_model_free(m);
    }
}

static void test_batchnorm_inference_backward_matches_finite_differences(void **state)
{
    (void)state;
    const int64_t dims[4] = {2, 3, 2, 3};
    uint32_t seed = 50;
    sfp_model_t *m = bn_model(dims, 4, seed);
    float *x = tu_uniform(&seed, numel(4, dims), -1.0f, 2.0f);
    fd_setup_t setup = FD_DEFAULT;
    setup.training = false;
    fd_check(m, &x, &setup, "BN running statistics");
    free(x);
    sfp_model_free(m);
}

/* Batch statistics on data far from zero whose images differ (the one-pass
 * sums are taken about image 0's mean): mean and 1/std against a two-pass
 * double computation, to float rounding. */
static void test_batchnorm_train_statistics_match_double_reference(void **state)
{
    (void)state;
    uint32_t seed = 71;
    const int64_t n = 4, c = 3, sp = 1000, total = n * c * sp;
    float *x = tu_uniform(&seed, total, -1, 1), *y = malloc(sizeof(float) * (size_t)total);
    const float scale[3] = {1, 1, 1}, bias[3] = {0, 0, 0};
    for (int64_t i = 0; i < total; i++) x[i] += 1000.0f + 50.0f * (float)(i / (c * sp)) + (float)(i / sp % c);
    float mean[3], invstd[3];
    batchnorm_train_forward(n, c, sp, x, scale, bias, 1e-5f, 0.9f, y, mean, invstd, NULL, NULL, NULL);
    for (int64_t ch = 0; ch < c; ch++) {
        double sum = 0.0, sq = 0.0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < sp; k++) sum += (double)x[(i * c + ch) * sp + k];
        const double mu = sum / (double)(n * sp);
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < sp; k++) sq += ((double)x[(i * c + ch) * sp + k] - mu) * ((double)x[(i * c + ch) * sp + k] - mu);
        const double inv = 1.0 / sqrt(sq / (double)(n * sp) + 1e-5);
        TU_EXPECT_NEAR(mean[ch], mu, 2e-7 * mu);       /* a float ulp or two of ~1000 */
        TU_EXPECT_NEAR(invstd[ch], inv, 1e-6 * inv);
    }
    free(x);
    free(y);
}

/* One training run: batch mean/biased var normalise, the running statistics
 * move by ONNX's momentum with the unbiased variance. */
static void test_batchnorm_training_updates_running_statistics(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const int64_t dims[4] = {2, 2, 1, 3};
    uint32_t seed = 60;
    sfp_model_t *m = bn_model(dims, 4, seed);
    TU_OK(&err, model_validate(m, &err));
    const sfp_graph_t *g = &m->graph;
    float mean0[2], var0[2];
    memcpy(mean0, g->values[graph_find_value(g, "mean")].init->data, sizeof mean0);
    memcpy(var0, g->values[graph_find_value(g, "var")].init->data, sizeof var0);
    const float x[12] = {1, 2, 3, -1, 0, 4, 5, 6, 7, 0.5f, 0.25f, 2};
    sfp_plan_t *p = NULL;
    TU_OK(&err, plan_create(m, 0, SFP_PLAN_TRAIN, 1, &p, &err));
    const void *in[1] = {x};
    TU_OK(&err, plan_run(p, in, &err));
    const float *rm = g->values[graph_find_value(g, "mean")].init->data;
    const float *rv = g->values[graph_find_value(g, "var")].init->data;
    const float *scale = g->values[graph_find_value(g, "scale")].init->data;
    const float *bias = g->values[graph_find_value(g, "bias")].init->data;
    const float *y = plan_output(p, 0);
    for (int c = 0; c < 2; c++) {
        double vals[6], mu = 0.0, ss = 0.0;
        for (int n = 0; n < 2; n++)
            for (int k = 0; k < 3; k++) vals[n * 3 + k] = (double)x[(n * 2 + c) * 3 + k];
        for (int i = 0; i < 6; i++) mu += vals[i] / 6.0;
        for (int i = 0; i < 6; i++) ss += (vals[i] - mu) * (vals[i] - mu);
        TU_EXPECT_NEAR(rm[c], 0.8 * (double)mean0[c] + 0.2 * mu, 1e-6);
        TU_EXPECT_NEAR(rv[c], 0.8 * (double)var0[c] + 0.2 * ss / 5.0, 1e-5);
        for (int n = 0; n < 2; n++)
            for (int k = 0; k < 3; k++) {
                double want = (vals[n * 3 + k] - mu) / sqrt(ss / 6.0 + 1e-3) * (double)scale[c] + (double)bias[c];
                TU_EXPECT_NEAR(y[(n * 2 + c) * 3 + k], want, 1e-5);
            }
    }
    /* validation mode reads the running statistics and leaves them alone */
    plan_set_training(p, false);
    float rm1[2] = {rm[0], rm[1]};
    TU_OK(&err, plan_run(p, in, &err));
    assert_true(rm[0] == rm1[0] && rm[1] == rm1[1]);
    TU_EXPECT_NEAR(y[0], ((double)x[0] - (double)rm[0]) / sqrt((double)rv[0] + 1e-3) * (double)scale[0] + (double)bias[0], 1e-5);
    plan_free(p);
    sfp_model_free(m);
}

static void test_batchnorm_backward_kernel_matches_ref(void **state)
{
    (void)state;
    uint32_t seed = 70;
    sfp_error_t err = {0};
    sfp_threads_t *two = NULL;
    TU_OK(&err, sfp_threads_create(2, &two, &err));
    const int64_t n = 4, c = 5, sp = 300, total = n * c * sp;
    float *x = tu_uniform(&seed, total, -2, 3), *dy = tu_uniform(&seed, total, -1, 1), *scale = tu_uniform(&seed, c, 0.5f, 1.5f);
    float *bias = tu_uniform(&seed, c, -1, 1), *y = malloc(sizeof(float) * (size_t)total);
    float mean[5], invstd[5];
    batchnorm_train_forward(n, c, sp, x, scale, bias, 1e-5f, 0.9f, y, mean, invstd, NULL, NULL, two);
    for (int stats = 0; stats < 2; stats++) {
        float *dx[3], *ds[3], *dbias[3];
        for (int k = 0; k < 3; k++) {
            uint32_t s2 = 3;
            dx[k] = tu_uniform(&s2, total, -1, 1);
            ds[k] = tu_uniform(&s2, c, -1, 1);
            dbias[k] = tu_uniform(&s2, c, -1, 1);
        }
        batchnorm_backward_ref(n, c, sp, x, scale, mean, invstd, dy, stats, dx[0], ds[0], dbias[0]);
        batchnorm_backward(n, c, sp, x, scale, mean, invstd, dy, stats, dx[1], false, ds[1], dbias[1], NULL);
        /* dx written fresh over garbage, the start values added after */
        float *dx_start = malloc(sizeof(float) * (size_t)total);
        memcpy(dx_start, dx[2], sizeof(float) * (size_t)total);
        for (int64_t i = 0; i < total; i++) dx[2][i] = NAN;
        batchnorm_backward(n, c, sp, x, scale, mean, invstd, dy, stats, dx[2], true, ds[2], dbias[2], two);
        for (int64_t i = 0; i < total; i++) dx[2][i] += dx_start[i];
        free(dx_start);
        for (int k = 1; k < 3; k++) {
            for (int64_t i = 0; i < total; i++) TU_EXPECT_NEAR(dx[k][i], dx[0][i], KERNEL_TOL);
            for (int64_t i = 0; i < c; i++) {
                TU_EXPECT_NEAR(ds[k][i], ds[0][i], KERNEL_TOL * fmax(1.0, fabs((double)ds[0][i])));
                TU_EXPECT_NEAR(dbias[k][i], dbias[0][i], KERNEL_TOL * fmax(1.0, fabs((double)dbias[0][i])));
            }
        }
        for (int k = 0; k < 3; k++) {
            free(dx[k]);
            free(ds[k]);
            free(dbias[k]);
        }
    }
    free(x);
    free(dy);
    free(scale);
    free(bias);
    free(y);
    sfp_threads_free(two);
}

/* ---- unary ---- */
static void check_unary(const char *op, float *(*gen)(uint32_t *, int64_t), int opset, int64_t axis)
{
    sfp_model_t *m = tu_model(opset);
    const int64_t dims[3] = {2, 3, 5};
    tu_input(m, "x", SFP_DT_FLOAT, 3, dims);
    sfp_node_t *n = tu_node(m, op, op, "x", "y");
    if (axis != INT64_MIN) tu_attr_int(n, "axis", axis);
    tu_output(m, "y");
    uint32_t seed = 90;
    float *x = gen(&seed, 30);
    if (!strcmp(op, "Softmax") || !strcmp(op, "Sigmoid"))
        for (int i = 0; i < 30; i++) x[i] *= 3.0f;
    char what[64];
    snprintf(what, sizeof what, "%s opset %d", op, opset);
    fd_check(m, &x, &FD_DEFAULT, what);
    free(x);
    sfp_model_free(m);
}

static float *gen_uniform(uint32_t *seed, int64_t n)
{
    return tu_uniform(seed, n, -1.0f, 1.0f);
}

static void test_unary_backward_matches_finite_differences(void **state)
{
    (void)state;
    check_unary("Relu", away_from_zero, 13, INT64_MIN);
    check_unary("Sigmoid", gen_uniform, 13, INT64_MIN);
    check_unary("Softmax", gen_uniform, 13, 1);
    check_unary("Softmax", gen_uniform, 11, 1); /* flattened from axis on */
    check_unary("Identity", gen_uniform, 13, INT64_MIN);
    check_unary("Dropout", gen_uniform, 13, INT64_MIN);
    check_unary("Flatten", gen_uniform, 13, 2);
}

/* ---- piecewise activations (op_activation.c) ---- */
/* Values in [-4, 4] kept 0.05 from every kink in kinks[0..n_kinks): finite
 * differences of h = 1e-2 then never straddle one. */
static float *away_from_kinks(uint32_t *seed, int64_t count, const float *kinks, int n_kinks)
{
    float *p = tu_uniform(seed, count, -4.0f, 4.0f);
    for (int64_t i = 0; i < count; i++)
        for (int k = 0; k < n_kinks; k++)
            if (fabsf(p[i] - kinks[k]) < 0.05f) p[i] = kinks[k] + (p[i] < kinks[k] ? -0.05f : 0.05f);
    return p;
}

/* One activation node y = op(x[, ins...]) on x (2, 3, 4, 5); attributes set by
 * the caller through *node before the check runs. */
static sfp_model_t *activation_model(const char *op, int opset, const char *ins, sfp_node_t **node)
{
    sfp_model_t *m = tu_model(opset);
    const int64_t dims[4] = {2, 3, 4, 5};
    tu_input(m, "x", SFP_DT_FLOAT, 4, dims);
    *node = tu_node(m, op, op, ins, "y");
    tu_output(m, "y");
    return m;
}

static void check_activation(sfp_model_t *m, const float *kinks, int n_kinks, const char *what)
{
    uint32_t seed = 31;
    float *x = away_from_kinks(&seed, 120, kinks, n_kinks);
    fd_check(m, &x, &FD_DEFAULT, what);
    free(x);
    sfp_model_free(m);
}

static void test_activations_backward_match_finite_differences(void **state)
{
    (void)state;
    sfp_node_t *n = NULL;
    {
        /* ReLU6 as PyTorch exports it from opset 11: bounds as inputs */
        sfp_model_t *m = activation_model("Clip", 13, "x,lo,hi", &n);
        const int64_t one = 1;
        const float lo = 0.0f, hi = 6.0f;
        tu_init(m, "lo", SFP_DT_FLOAT, 0, &one, &lo);
        tu_init(m, "hi", SFP_DT_FLOAT, 0, &one, &hi);
        const float kinks[2] = {0.0f, 6.0f};
        check_activation(m, kinks, 2, "Clip opset 13 [0, 6]");
    }
    {
        sfp_model_t *m = activation_model("Clip", 13, "x,,hi", &n); /* min omitted */
        const int64_t one = 1;
        const float hi = 1.5f;
        tu_init(m, "hi", SFP_DT_FLOAT, 0, &one, &hi);
        const float kinks[1] = {1.5f};
        check_activation(m, kinks, 1, "Clip opset 13 max only");
    }
    {
        sfp_model_t *m = activation_model("Clip", 9, "x", &n); /* bounds as attributes */
        tu_attr_float(n, "min", -1.0f);
        tu_attr_float(n, "max", 2.0f);
        const float kinks[2] = {-1.0f, 2.0f};
        check_activation(m, kinks, 2, "Clip opset 9 [-1, 2]");
    }
    {
        sfp_model_t *m = activation_model("LeakyRelu", 13, "x", &n);
        tu_attr_float(n, "alpha", 0.1f);
        const float kinks[1] = {0.0f};
        check_activation(m, kinks, 1, "LeakyRelu alpha 0.1");
    }
    {
        sfp_model_t *m = activation_model("LeakyRelu", 13, "x", &n); /* default alpha 0.01 */
        const float kinks[1] = {0.0f};
        check_activation(m, kinks, 1, "LeakyRelu default alpha");
    }
    {
        sfp_model_t *m = activation_model("HardSigmoid", 13, "x", &n); /* 0.2 x + 0.5: ramp on [-2.5, 2.5] */
        const float kinks[2] = {-2.5f, 2.5f};
        check_activation(m, kinks, 2, "HardSigmoid default");
    }
    {
        sfp_model_t *m = activation_model("HardSigmoid", 13, "x", &n); /* PyTorch's: x / 6 + 1/2 */
        tu_attr_float(n, "alpha", 1.0f / 6.0f);
        const float kinks[2] = {-3.0f, 3.0f};
        check_activation(m, kinks, 2, "HardSigmoid alpha 1/6");
    }
    {
        sfp_model_t *m = activation_model("HardSwish", 14, "x", &n);
        const float kinks[2] = {-3.0f, 3.0f};
        check_activation(m, kinks, 2, "HardSwish");
    }
}

/* ---- ReduceMean (op_reduce.c) ---- */
/* x (2, 3, 4, 5) reduced over axes[0..n_axes) (none: all); opset 18 gives
 * the axes as an input. */
static void check_reduce_mean(int opset, int n_axes, const int64_t *axes, int64_t keepdims, const char *what)
{
    sfp_model_t *m = tu_model(opset);
    const int64_t dims[4] = {2, 3, 4, 5};
    tu_input(m, "x", SFP_DT_FLOAT, 4, dims);
    sfp_node_t *n = NULL;
    if (opset >= 18 && n_axes) {
        tu_init_i64(m, "axes", n_axes, axes);
        n = tu_node(m, "ReduceMean", "mean", "x,axes", "y");
    } else {
        n = tu_node(m, "ReduceMean", "mean", "x", "y");
        if (n_axes) tu_attr_ints(n, "axes", (size_t)n_axes, axes);
    }
    tu_attr_int(n, "keepdims", keepdims);
    tu_output(m, "y");
    fd_check_uniform(m, 120, 47, what);
}

static void test_reduce_mean_backward_matches_finite_differences(void **state)
{
    (void)state;
    const int64_t hw[2] = {2, 3}, chan[1] = {1}, outer_axes[2] = {0, 2}, neg[2] = {-1, -2};
    check_reduce_mean(13, 2, hw, 0, "ReduceMean [2, 3] keepdims 0");   /* x.mean([2, 3]) */
    check_reduce_mean(13, 2, neg, 1, "ReduceMean [-1, -2] keepdims 1");
    check_reduce_mean(13, 1, chan, 1, "ReduceMean [1] keepdims 1");    /* (outer, len, inner) */
    check_reduce_mean(13, 2, outer_axes, 0, "ReduceMean [0, 2] keepdims 0"); /* the general walk */
    check_reduce_mean(13, 0, NULL, 0, "ReduceMean all axes");
    check_reduce_mean(18, 2, hw, 0, "ReduceMean opset 18 axes input");
}

/* ---- Split (op_split.c) ---- */
/* x (2, 6, 3, 2) split on the channels, the parts put back together in
 * another order by Concat (a part left out gets no gradient). */
static void check_split(int opset, const char *ins, const char *cat, int n_outputs, const char *what)
{
    sfp_model_t *m = tu_model(opset);
    const int64_t dims[4] = {2, 6, 3, 2}, sizes[3] = {1, 3, 2};
    tu_input(m, "x", SFP_DT_FLOAT, 4, dims);
    if (strchr(ins, ',')) tu_init_i64(m, "sizes", 3, sizes);
    sfp_node_t *n = tu_node(m, "Split", "split", ins, n_outputs == 3 ? "p0,p1,p2" : "p0,p1");
    tu_attr_int(n, "axis", 1);
    if (opset < 13) tu_attr_ints(n, "split", 3, sizes);
    if (opset >= 18 && !strchr(ins, ',')) tu_attr_int(n, "num_outputs", n_outputs);
    tu_attr_int(tu_node(m, "Concat", "cat", cat, "y"), "axis", 1);
    tu_output(m, "y");
    fd_check_uniform(m, 72, 53, what);
}

static void test_split_backward_matches_finite_differences(void **state)
{
    (void)state;
    check_split(13, "x,sizes", "p2,p0,p2", 3, "Split sizes input, p1 unused");
    check_split(11, "x", "p1,p0,p2", 3, "Split opset 11 attribute");
    check_split(13, "x", "p1,p0", 2, "Split equal halves");
    check_split(18, "x", "p2,p1", 3, "Split num_outputs 3");
}

/* ---- broadcasting binaries ---- */
static void check_binary(const char *op, int a_rank, const int64_t *a_dims, int b_rank, const int64_t *b_dims,
                         uint32_t seed)
{
    sfp_model_t *m = tu_model(13);
    tu_input(m, "a", SFP_DT_FLOAT, a_rank, a_dims);
    tu_input(m, "b", SFP_DT_FLOAT, b_rank, b_dims);
    tu_node(m, op, op, "a,b", "y");
    tu_output(m, "y");
    float *in[2] = {tu_uniform(&seed, numel(a_rank, a_dims), -1, 1), tu_uniform(&seed, numel(b_rank, b_dims), 0.5f, 1.5f)};
    char what[64];
    snprintf(what, sizeof what, "%s rank %d by rank %d", op, a_rank, b_rank);
    fd_check(m, in, &FD_DEFAULT, what);
    free_inputs(in, 2);
    sfp_model_free(m);
}

static void test_broadcast_binaries_backward_match_finite_differences(void **state)
{
    (void)state;
    const char *ops[4] = {"Add", "Sub", "Mul", "Div"};
    const int64_t full[4] = {2, 3, 2, 4}, per_channel[3] = {3, 1, 1}, scalar[1] = {1}, last[1] = {4};
    const int64_t left[4] = {2, 1, 2, 1}, right[3] = {3, 1, 4};
    for (int i = 0; i < 4; i++) {
        uint32_t seed = 100 + (uint32_t)i;
        check_binary(ops[i], 4, full, 4, full, seed);
        check_binary(ops[i], 4, full, 3, per_channel, seed);
        check_binary(ops[i], 4, full, 1, scalar, seed);
        check_binary(ops[i], 1, last, 4, full, seed);        /* the broadcast operand first */
        check_binary(ops[i], 4, left, 3, right, seed);       /* both broadcast */
        check_binary(ops[i], 0, NULL, 4, full, seed);        /* rank-0 scalar */
    }
}

/* Both operands the same value: the gradients of the two inputs add up. */
static void test_binary_with_one_value_twice_accumulates(void **state)
{
    (void)state;
    const char *ops[2] = {"Mul", "Add"};
    for (int i = 0; i < 2; i++) {
        sfp_model_t *m = tu_model(13);
        const int64_t dims[2] = {3, 4};
        tu_input(m, "x", SFP_DT_FLOAT, 2, dims);
        tu_node(m, ops[i], "self", "x,x", "y");
        tu_output(m, "y");
        uint32_t seed = 7;
        float *x = tu_uniform(&seed, 12, -1, 1);
        fd_check(m, &x, &FD_DEFAULT, i == 0 ? "Mul x * x" : "Add x + x");
        free(x);
        sfp_model_free(m);
    }
}

static void test_binary_backward_kernel_matches_ref(void **state)
{
    (void)state;
    uint32_t seed = 120;
    sfp_error_t err = {0};
    sfp_threads_t *two = NULL;
    TU_OK(&err, sfp_threads_create(2, &two, &err));
    const int64_t a_dims[4] = {16, 8, 40, 30}, b_dims[3] = {8, 1, 30};
    const int64_t y_n = 16 * 8 * 40 * 30, b_n = 8 * 30;
    float *a = tu_uniform(&seed, y_n, -1, 1), *b = tu_uniform(&seed, b_n, 0.5f, 1.5f), *dy = tu_uniform(&seed, y_n, -1, 1);
    sfp_bcast_t s;
    assert_true(bcast_init(4, a_dims, 3, b_dims, &s));
    for (int op = 0; op < 4; op++) {
        float *da[3], *db[3];
        for (int k = 0; k < 3; k++) {
            da[k] = calloc((size_t)y_n, sizeof(float));
            db[k] = calloc((size_t)b_n, sizeof(float));
            assert_true(da[k] && db[k]);
        }
        binary_backward_f32_ref((sfp_binary_op_t)op, 4, a_dims, a, 3, b_dims, b, 4, a_dims, dy, da[0], db[0]);
        binary_backward_f32((sfp_binary_op_t)op, &s, a, b, dy, da[1], db[1], NULL);
        binary_backward_f32((sfp_binary_op_t)op, &s, a, b, dy, da[2], db[2], two);
        for (int k = 1; k < 3; k++) {
            for (int64_t i = 0; i < y_n; i++) TU_EXPECT_NEAR(da[k][i], da[0][i], 1e-6);
            for (int64_t i = 0; i < b_n; i++)
                TU_EXPECT_NEAR(db[k][i], db[0][i], KERNEL_TOL * fmax(1.0, fabs((double)db[0][i])));
        }
        for (int k = 0; k < 3; k++) {
            free(da[k]);
            free(db[k]);
        }
    }
    free(a);
    free(b);
    free(dy);
    sfp_threads_free(two);
}

/* ---- pooling ---- */
typedef struct pool_case {
    const char *op;
    int64_t in[2], kernel[2], stride[2], dilation[2], pads[4];
    int ceil_mode, count_include_pad;
} pool_case_t;

static void test_pooling_backward_matches_finite_differences(void **state)
{
    (void)state;
    const pool_case_t cases[] = {
        {"MaxPool", {7, 6}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, 0, 0},
        {"MaxPool", {7, 6}, {3, 2}, {2, 2}, {1, 1}, {1, 0, 1, 1}, 1, 0},     /* ceil_mode */
        {"MaxPool", {8, 7}, {2, 2}, {1, 2}, {2, 1}, {0, 0, 1, 0}, 0, 0},     /* dilation */
        {"AveragePool", {7, 6}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, 0, 0},
        {"AveragePool", {7, 6}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, 0, 1}, /* count_include_pad */
        {"AveragePool", {7, 6}, {3, 2}, {2, 2}, {1, 1}, {1, 0, 0, 1}, 1, 1}, /* ceil overhang */
        {"AveragePool", {6, 6}, {1, 1}, {2, 2}, {1, 1}, {0, 0, 0, 0}, 0, 0}, /* SFP's DownsampleA */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const pool_case_t *c = &cases[i];
        sfp_model_t *m = tu_model(19);
        const int64_t dims[4] = {2, 2, c->in[0], c->in[1]};
        tu_input(m, "x", SFP_DT_FLOAT, 4, dims);
        sfp_node_t *n = tu_node(m, c->op, "pool", "x", "y");
        tu_attr_ints(n, "kernel_shape", 2, c->kernel);
        tu_attr_ints(n, "strides", 2, c->stride);
        tu_attr_ints(n, "dilations", 2, c->dilation);
        tu_attr_ints(n, "pads", 4, c->pads);
        tu_attr_int(n, "ceil_mode", c->ceil_mode);
        if (!strcmp(c->op, "AveragePool")) tu_attr_int(n, "count_include_pad", c->count_include_pad);
        tu_output(m, "y");
        uint32_t seed = 130 + (uint32_t)i;
        float *x = distinct(&seed, numel(4, dims));
        char what[64];
        snprintf(what, sizeof what, "%s case %zu", c->op, i);
        fd_check(m, &x, &FD_DEFAULT, what);
        free(x);
        sfp_model_free(m);
    }
    const char *globals[2] = {"GlobalAveragePool", "GlobalMaxPool"};
    for (int i = 0; i < 2; i++) {
        sfp_model_t *m = tu_model(13);
        const int64_t dims[4] = {2, 3, 3, 4};
        tu_input(m, "x", SFP_DT_FLOAT, 4, dims);
        tu_node(m, globals[i], "pool", "x", "y");
        tu_output(m, "y");
        uint32_t seed = 140;
        float *x = distinct(&seed, 72);
        fd_check(m, &x, &FD_DEFAULT, globals[i]);
        free(x);
        sfp_model_free(m);
    }
}

/* maxpool_backward and avgpool_backward against their _ref twins. */
static void check_pool_backward(const sfp_pool_shape_t *s, const float *x, const float *dy, int64_t x_n,
                                double max_tol, double avg_tol)
{
    float *dx[2] = {calloc((size_t)x_n, sizeof(float)), calloc((size_t)x_n, sizeof(float))};
    assert_non_null(dx[0]);
    assert_non_null(dx[1]);
    maxpool_backward_ref(s, x, dy, dx[0]);
    maxpool_backward(s, x, dy, dx[1], NULL);
    for (int64_t i = 0; i < x_n; i++) TU_EXPECT_NEAR(dx[1][i], dx[0][i], max_tol);
    memset(dx[0], 0, sizeof(float) * (size_t)x_n);
    memset(dx[1], 0, sizeof(float) * (size_t)x_n);
    avgpool_backward_ref(s, dy, dx[0]);
    avgpool_backward(s, dy, dx[1], NULL);
    for (int64_t i = 0; i < x_n; i++) TU_EXPECT_NEAR(dx[1][i], dx[0][i], avg_tol);
    free(dx[0]);
    free(dx[1]);
}

static void test_pooling_backward_kernels_match_ref(void **state)
{
    (void)state;
    uint32_t seed = 150;
    for (int iter = 0; iter < 30; iter++) {
        sfp_pool_shape_t s = {0};
        s.batch = 2;
        s.channels = 3;
        s.n_spatial = 1 + iter % 3;
        s.count_include_pad = iter % 2;
        for (int d = 0; d < s.n_spatial; d++) {
            s.in[d] = 3 + tu_rand(&seed) % 6;
            s.kernel[d] = 1 + tu_rand(&seed) % 3;
            s.stride[d] = 1 + tu_rand(&seed) % 2;
            s.dilation[d] = 1 + tu_rand(&seed) % 2;
            s.pad_begin[d] = tu_rand(&seed) % (uint32_t)s.kernel[d];
            s.pad_end[d] = tu_rand(&seed) % (uint32_t)s.kernel[d];
            int64_t room = s.in[d] + s.pad_begin[d] + s.pad_end[d] - ((s.kernel[d] - 1) * s.dilation[d] + 1);
            if (room < 0) s.in[d] += -room;
            room = s.in[d] + s.pad_begin[d] + s.pad_end[d] - ((s.kernel[d] - 1) * s.dilation[d] + 1);
            s.out[d] = room / s.stride[d] + 1;
        }
        int64_t x_n = 6 * numel(s.n_spatial, s.in), y_n = 6 * numel(s.n_spatial, s.out);
        float *x = distinct(&seed, x_n), *dy = tu_uniform(&seed, y_n, -1, 1);
        check_pool_backward(&s, x, dy, x_n, 1e-6, 1e-5);
        free(x);
        free(dy);
    }
    /* 2-D windows inside the input (the path without bounds): a 1x1 average
     * (downsampling shortcut), overlapping and disjoint windows, and for max
     * all-equal inputs, where the first tap of each window must win */
    static const int64_t inside[][6] = {{9, 8, 1, 1, 2, 2}, {8, 8, 2, 2, 2, 2}, {7, 9, 3, 3, 1, 1}, {9, 9, 3, 2, 2, 1}};
    for (size_t i = 0; i < sizeof inside / sizeof inside[0]; i++)
        for (int ties = 0; ties < 2; ties++) {
            const int64_t *d = inside[i];
            sfp_pool_shape_t s = {.batch = 2, .channels = 3, .n_spatial = 2};
            for (int k = 0; k < 2; k++) {
                s.in[k] = d[k];
                s.kernel[k] = d[2 + k];
                s.stride[k] = d[4 + k];
                s.dilation[k] = 1;
                s.out[k] = (d[k] - d[2 + k]) / d[4 + k] + 1;
            }
            int64_t x_n = 6 * d[0] * d[1], y_n = 6 * s.out[0] * s.out[1];
            float *x = ties ? calloc((size_t)x_n, sizeof(float)) : distinct(&seed, x_n);
            float *dy = tu_uniform(&seed, y_n, -1, 1);
            check_pool_backward(&s, x, dy, x_n, 0.0, 1e-6);
            free(x);
            free(dy);
        }
}

/* ---- Gemm and MatMul ---- */
static void test_gemm_backward_with_transposes_and_c_broadcast(void **state)
{
    (void)state;
    const int64_t m_ = 3, n_ = 4, k_ = 5;
    const int c_ranks[5] = {1, 2, 2, 2, 0};
    const int64_t c_shapes[5][2] = {{4, 0}, {1, 4}, {3, 1}, {3, 4}, {0, 0}};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int ci = 0; ci < 5; ci++) {
                sfp_model_t *m = tu_model(13);
                const int64_t a_shape[2] = {ta ? k_ : m_, ta ? m_ : k_}, b_shape[2] = {tb ? n_ : k_, tb ? k_ : n_};
                tu_input(m, "a", SFP_DT_FLOAT, 2, a_shape);
                tu_init_f32(m, "b", 2, b_shape, NULL, 3);
                tu_init_f32(m, "c", c_ranks[ci], c_shapes[ci], NULL, 4);
                sfp_node_t *n = tu_node(m, "Gemm", "gemm", "a,b,c", "y");
                tu_attr_int(n, "transA", ta);
                tu_attr_int(n, "transB", tb);
                tu_attr_float(n, "alpha", 0.7f);
                tu_attr_float(n, "beta", ci == 3 ? 1.0f : 1.3f);
                tu_output(m, "y");
                uint32_t seed = 160;
                float *a = tu_uniform(&seed, m_ * k_, -1, 1);
                char what[64];
                snprintf(what, sizeof what, "Gemm tA=%d tB=%d C rank %d", ta, tb, c_ranks[ci]);
                fd_check(m, &a, &FD_DEFAULT, what);
                free(a);
                sfp_model_free(m);
            }
}

static void check_matmul(int a_rank, const int64_t *a_dims, int b_rank, const int64_t *b_dims, bool b_param,
                         const char *what)
{
    sfp_model_t *m = tu_model(13);
    tu_input(m, "a", SFP_DT_FLOAT, a_rank, a_dims);
    if (b_param)
        tu_init_f32(m, "b", b_rank, b_dims, NULL, 5);
    else
        tu_input(m, "b", SFP_DT_FLOAT, b_rank, b_dims);
    tu_node(m, "MatMul", "mm", "a,b", "y");
    tu_output(m, "y");
    uint32_t seed = 170;
    float *in[2] = {tu_uniform(&seed, numel(a_rank, a_dims), -1, 1), tu_uniform(&seed, numel(b_rank, b_dims), -1, 1)};
    fd_check(m, in, &FD_DEFAULT, what);
    free_inputs(in, 2);
    sfp_model_free(m);
}

static void test_matmul_backward_batches_and_broadcasts(void **state)
{
    (void)state;
    const int64_t a3[3] = {2, 3, 4}, b2[2] = {4, 5}, a2[2] = {3, 4}, b3[3] = {2, 4, 5};
    const int64_t a4[4] = {2, 1, 3, 4}, b4[4] = {1, 2, 4, 2}, v4[1] = {4};
    check_matmul(3, a3, 2, b2, true, "MatMul batch x shared weight");
    check_matmul(2, a2, 3, b3, false, "MatMul broadcast a");
    check_matmul(4, a4, 4, b4, false, "MatMul both broadcast");
    check_matmul(1, v4, 3, b3, false, "MatMul 1-D a");
    check_matmul(3, a3, 1, v4, false, "MatMul 1-D b");
}

static void test_matmul_backward_kernel_matches_ref(void **state)
{
    (void)state;
    uint32_t seed = 180;
    const int64_t a_dims[4] = {3, 1, 7, 9}, b_dims[3] = {2, 9, 5};
    sfp_matmul_shape_t s;
    assert_true(matmul_shape_init(4, a_dims, 3, b_dims, &s));
    const int64_t a_n = 3 * 7 * 9, b_n = 2 * 9 * 5, y_n = 3 * 2 * 7 * 5;
    float *a = tu_uniform(&seed, a_n, -1, 1), *b = tu_uniform(&seed, b_n, -1, 1), *dy = tu_uniform(&seed, y_n, -1, 1);
    float *da[2] = {calloc((size_t)a_n, 4), calloc((size_t)a_n, 4)}, *db[2] = {calloc((size_t)b_n, 4), calloc((size_t)b_n, 4)};
    matmul_backward_ref(&s, a, b, dy, da[0], db[0]);
    matmul_backward(&s, a, b, dy, da[1], db[1]);
    for (int64_t i = 0; i < a_n; i++) TU_EXPECT_NEAR(da[1][i], da[0][i], KERNEL_TOL);
    for (int64_t i = 0; i < b_n; i++) TU_EXPECT_NEAR(db[1][i], db[0][i], KERNEL_TOL);
    free(a);
    free(b);
    free(dy);
    for (int k = 0; k < 2; k++) {
        free(da[k]);
        free(db[k]);
    }
}

/* ---- data movement ---- */
static void test_concat_pad_slice_transpose_backward_match_finite_differences(void **state)
{
    (void)state;
    uint32_t seed = 190;
    {
        sfp_model_t *m = tu_model(13);
        const int64_t a[4] = {2, 2, 3, 2}, b[4] = {2, 3, 3, 2};
        tu_input(m, "a", SFP_DT_FLOAT, 4, a);
        tu_input(m, "b", SFP_DT_FLOAT, 4, b);
        sfp_node_t *n = tu_node(m, "Concat", "cat", "a,b,a", "y");
        tu_attr_int(n, "axis", 1);
        tu_output(m, "y");
        float *in[2] = {tu_uniform(&seed, 24, -1, 1), tu_uniform(&seed, 36, -1, 1)};
        fd_check(m, in, &FD_DEFAULT, "Concat a,b,a on channels");
        free_inputs(in, 2);
        sfp_model_free(m);
    }
    {
        /* opset 11: pads as an input, negative (cropping) on one axis */
        sfp_model_t *m = tu_model(13);
        const int64_t x[4] = {2, 3, 4, 3}, pads[8] = {0, 1, -1, 2, 0, 2, 1, -1};
        tu_input(m, "x", SFP_DT_FLOAT, 4, x);
        tu_init_i64(m, "pads", 8, pads);
        tu_node(m, "Pad", "pad", "x,pads", "y");
        tu_output(m, "y");
        float *in = tu_uniform(&seed, 72, -1, 1);
        fd_check(m, &in, &FD_DEFAULT, "Pad opset 13 with cropping");
        free(in);
        sfp_model_free(m);
    }
    {
        /* opset 2: pads as an attribute, a value */
        sfp_model_t *m = tu_model(9);
        const int64_t x[3] = {2, 3, 4}, pads[6] = {0, 2, 1, 1, 0, 2};
        tu_input(m, "x", SFP_DT_FLOAT, 3, x);
        sfp_node_t *n = tu_node(m, "Pad", "pad", "x", "y");
        tu_attr_ints(n, "pads", 6, pads);
        tu_attr_float(n, "value", 1.5f);
        tu_output(m, "y");
        float *in = tu_uniform(&seed, 24, -1, 1);
        fd_check(m, &in, &FD_DEFAULT, "Pad opset 9 attribute");
        free(in);
        sfp_model_free(m);
    }
    {
        /* reflect and edge: gradients of the copies sum at their source;
         * reflect with pads as large as the dim less one, edge cropping one side */
        const char *modes[2] = {"reflect", "edge"};
        const int64_t x[4] = {2, 3, 4, 5}, pads[2][8] = {{0, 0, 3, 4, 0, 0, 2, 1}, {0, 0, 5, -1, 0, 0, 2, 3}};
        for (int k = 0; k < 2; k++) {
            sfp_model_t *m = tu_model(13);
            tu_input(m, "x", SFP_DT_FLOAT, 4, x);
            tu_init_i64(m, "pads", 8, pads[k]);
            sfp_node_t *n = tu_node(m, "Pad", "pad", "x,pads", "y");
            tu_attr_string(n, "mode", modes[k]);
            tu_output(m, "y");
            float *in = tu_uniform(&seed, 120, -1, 1);
            fd_check(m, &in, &FD_DEFAULT, k == 0 ? "Pad reflect" : "Pad edge with cropping");
            free(in);
            sfp_model_free(m);
        }
        sfp_model_t *m = tu_model(9); /* attribute pads */
        const int64_t x3[3] = {2, 3, 4}, pads3[6] = {0, 0, 2, 0, 0, 3};
        tu_input(m, "x", SFP_DT_FLOAT, 3, x3);
        sfp_node_t *n = tu_node(m, "Pad", "pad", "x", "y");
        tu_attr_ints(n, "pads", 6, pads3);
        tu_attr_string(n, "mode", "reflect");
        tu_output(m, "y");
        float *in = tu_uniform(&seed, 24, -1, 1);
        fd_check(m, &in, &FD_DEFAULT, "Pad reflect opset 9");
        free(in);
        sfp_model_free(m);
    }
    {
        sfp_model_t *m = tu_model(13);
        const int64_t x[4] = {2, 4, 7, 6};
        const int64_t starts[3] = {0, 6, 1}, ends[3] = {INT64_MAX, -100, 5}, axes[3] = {2, 3, 1}, steps[3] = {2, -2, 3};
        tu_input(m, "x", SFP_DT_FLOAT, 4, x);
        tu_init_i64(m, "starts", 3, starts);
        tu_init_i64(m, "ends", 3, ends);
        tu_init_i64(m, "axes", 3, axes);
        tu_init_i64(m, "steps", 3, steps);
        tu_node(m, "Slice", "slice", "x,starts,ends,axes,steps", "y");
        tu_output(m, "y");
        float *in = tu_uniform(&seed, numel(4, x), -1, 1);
        fd_check(m, &in, &FD_DEFAULT, "Slice steps 2, -2, 3");
        free(in);
        sfp_model_free(m);
    }
    {
        sfp_model_t *m = tu_model(13);
        const int64_t x[4] = {2, 3, 4, 5}, perm[4] = {2, 0, 3, 1};
        tu_input(m, "x", SFP_DT_FLOAT, 4, x);
        sfp_node_t *n = tu_node(m, "Transpose", "tr", "x", "y");
        tu_attr_ints(n, "perm", 4, perm);
        tu_output(m, "y");
        float *in = tu_uniform(&seed, 120, -1, 1);
        fd_check(m, &in, &FD_DEFAULT, "Transpose perm 2,0,3,1");
        free(in);
        sfp_model_free(m);
    }
    {
        sfp_model_t *m = tu_model(13);
        const int64_t x[4] = {2, 3, 2, 2}, shape[3] = {0, 4, -1}, axes[1] = {1};
        tu_input(m, "x", SFP_DT_FLOAT, 4, x);
        tu_init_i64(m, "shape", 3, shape);
        tu_init_i64(m, "axes", 1, axes);
        tu_node(m, "Reshape", "reshape", "x,shape", "r");
        tu_node(m, "Unsqueeze", "unsq", "r,axes", "u");
        tu_node(m, "Squeeze", "sq", "u,axes", "y");
        tu_output(m, "y");
        float *in = tu_uniform(&seed, 24, -1, 1);
        fd_check(m, &in, &FD_DEFAULT, "Reshape Unsqueeze Squeeze");
        free(in);
        sfp_model_free(m);
    }
}

/* The two zero-padding shortcuts of CIFAR ResNets, as PyTorch exports them:
 * A-concat (1x1 average pool of stride 2, then cat(x, x * 0)) and A-pad
 * (x[:, :, ::2, ::2], then zero channels on both sides); the Mul-by-zero
 * constant is not a parameter and gets no gradient. */
static void test_zero_padding_shortcuts_backward_match_finite_differences(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    uint32_t seed = 200;
    {
        sfp_model_t *m = tu_model(13);
        const int64_t x[4] = {2, 3, 6, 6};
        tu_input(m, "x", SFP_DT_FLOAT, 4, x);
        const float zero = 0.0f;
        tu_init_f32(m, "zero", 0, NULL, &zero, 0);
        sfp_node_t *n = tu_node(m, "AveragePool", "avg", "x", "p");
        tu_attr_ints(n, "kernel_shape", 2, (const int64_t[]){1, 1});
        tu_attr_ints(n, "strides", 2, (const int64_t[]){2, 2});
        tu_node(m, "Mul", "mul", "p,zero", "z");
        n = tu_node(m, "Concat", "cat", "p,z", "y");
        tu_attr_int(n, "axis", 1);
        tu_output(m, "y");
        float *in = tu_uniform(&seed, 216, -1, 1);
        fd_check(m, &in, &FD_DEFAULT, "shortcut A-concat");
        sfp_plan_t *p = NULL;
        TU_OK(&err, plan_create(m, 0, SFP_PLAN_TRAIN, 1, &p, &err));
        assert_int_equal(plan_n_params(p), 0);
        assert_null(plan_value_grad(p, graph_find_value(&m->graph, "zero")));
        plan_free(p);
        free(in);
        sfp_model_free(m);
    }
    {
        sfp_model_t *m = tu_model(11);
        const int64_t x[4] = {2, 2, 6, 6};
        const int64_t starts[1] = {0}, ends[1] = {INT64_MAX}, ax2[1] = {2}, ax3[1] = {3}, steps[1] = {2};
        const int64_t pads[8] = {0, 1, 0, 0, 0, 1, 0, 0};
        tu_input(m, "x", SFP_DT_FLOAT, 4, x);
        tu_init_i64(m, "starts", 1, starts);
        tu_init_i64(m, "ends", 1, ends);
        tu_init_i64(m, "ax2", 1, ax2);
        tu_init_i64(m, "ax3", 1, ax3);
        tu_init_i64(m, "steps", 1, steps);
        tu_init_i64(m, "pads", 8, pads);
        tu_node(m, "Slice", "rows", "x,starts,ends,ax2,steps", "s1");
        tu_node(m, "Slice", "cols", "s1,starts,ends,ax3,steps", "s2");
        tu_node(m, "Pad", "pad", "s2,pads", "y");
        tu_output(m, "y");
        float *in = tu_uniform(&seed, 144, -1, 1);
        fd_check(m, &in, &FD_DEFAULT, "shortcut A-pad");
        free(in);
        sfp_model_free(m);
    }
}

/* ---- a residual block with the loss ---- */
/* x (N,4,6,6) -> conv 3x3 -> BN -> relu -> conv 3x3 -> BN -> add x -> relu
 * -> GAP -> flatten -> gemm (3 classes) = logits */
/* A residual block whose shortcut is the input itself, BN after both convs. */
static sfp_model_t *resnet_block(int64_t batch)
{
    const tu_resnet_spec_t spec = {.batch = batch, .in_c = 4, .hw = 6, .width = 4, .classes = 3, .bn2 = true,
                                   .from_input = true};
    return tu_small_resnet(&spec);
}

static double block_loss(sfp_plan_t *p, const float *x, const int32_t *labels, float *dlogits)
{
    sfp_error_t err = {0};
    const void *in[1] = {x};
    TU_OK(&err, plan_run(p, in, &err));
    double loss = 0.0;
    const sfp_shape_t *ys = plan_output_shape(p, 0);
    TU_OK(&err, loss_softmax_xent(ys->dims[0], ys->dims[1], plan_output(p, 0), labels, 0.1f, &loss, dlogits, NULL,
                                  &err));
    return loss;
}

/* Signs of both Relu inputs of the block (n1 and s), kept by the plan. */
static void relu_signs(const sfp_plan_t *p, const sfp_model_t *m, int64_t count, bool *signs)
{
    const float *n1 = plan_value_data(p, graph_find_value(&m->graph, "n1"));
    const float *sum = plan_value_data(p, graph_find_value(&m->graph, "s"));
    for (int64_t i = 0; i < count; i++) {
        signs[i] = n1[i] > 0.0f;
        signs[count + i] = sum[i] > 0.0f;
    }
}

/* Every parameter and input element of the block against central
 * differences of the cross-entropy loss itself. BN in training mode couples
 * the whole batch, so every element moves every Relu input a little: an
 * element whose +-h moves one across zero is no test of the gradient (the
 * loss has a kink in between) and is skipped and counted; they must stay
 * few. h = 2e-3 keeps them under 1% while the float rounding of the loss
 * (~1e-7 / h of the gradient's scale) stays near 1e-3, under FD_TOL. */
static void test_resnet_block_loss_gradient_matches_finite_differences(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = resnet_block(3);
    sfp_plan_t *p = NULL;
    TU_OK(&err, plan_create(m, 0, SFP_PLAN_TRAIN | SFP_PLAN_INPUT_GRADS | SFP_PLAN_KEEP_ACTIVATIONS, 2, &p, &err));
    uint32_t seed = 210;
    const int64_t act = 3 * 4 * 36;
    float *x = tu_uniform(&seed, act, -1, 1);
    bool *up_signs = malloc(2 * (size_t)act), *down_signs = malloc(2 * (size_t)act);
    assert_true(up_signs && down_signs);
    const int32_t labels[3] = {2, 0, 1};
    float dlogits[9];
    block_loss(p, x, labels, dlogits);
    plan_zero_grad(p);
    TU_OK(&err, plan_backward(p, dlogits, &err));
    double worst = 0.0;
    int64_t checked = 0, skipped = 0;
    const float h = 2e-3f;
    for (int t = -1; t < plan_n_params(p); t++) {
        const sfp_param_t *prm = t >= 0 ? plan_param(p, t) : NULL;
        float *data = prm ? prm->data : x;
        int64_t n = prm ? prm->numel : act;
        float *a = malloc(sizeof(float) * (size_t)n);
        memcpy(a, prm ? prm->grad : plan_value_grad(p, plan_input_value(p, 0)), sizeof(float) * (size_t)n);
        double scale = 1e-3, diff = 0.0;
        for (int64_t i = 0; i < n; i++) {
            float keep = data[i];
            data[i] = keep + h;
            double up = block_loss(p, x, labels, NULL);
            relu_signs(p, m, act, up_signs);
            data[i] = keep - h;
            double down = block_loss(p, x, labels, NULL);
            relu_signs(p, m, act, down_signs);
            data[i] = keep;
            if (memcmp(up_signs, down_signs, 2 * (size_t)act) != 0) {
                skipped++;
                continue;
            }
            checked++;
            double fd = (up - down) / (2.0 * (double)h);
            scale = fmax(scale, fabs(fd));
            diff = fmax(diff, fabs(fd - (double)a[i]));
        }
        print_message("    %-34s %-10s %-6s fd error %.2e\n", "ResNet block + CE", prm ? prm->name : "x",
                      prm ? (prm->kind == SFP_PARAM_WEIGHT ? "weight" : prm->kind == SFP_PARAM_BIAS ? "bias" : "norm")
                          : "input",
                      diff / scale);
        worst = fmax(worst, diff / scale);
        free(a);
    }
    print_message("    ResNet block + CE: %lld elements checked, %lld skipped (a Relu input crossed zero)\n",
                  (long long)checked, (long long)skipped);
    assert_int_equal(plan_n_params(p), 8); /* w1 w2 g1 b1 g2 b2 fc_w fc_b */
    assert_true(skipped * 10 < checked);
    if (!(worst <= FD_TOL)) fail_msg("ResNet block: gradient off by %g", worst);
    plan_free(p);
    free(x);
    free(up_signs);
    free(down_signs);
    sfp_model_free(m);
}

/* ---- plan bookkeeping ---- */
/* The lifetime-planned gradients (activations reused by gradients) give
 * exactly the gradients of a plan that keeps everything, in less memory;
 * and 1 or 2 threads give the same figures. */
static void test_gradient_buffers_reuse_memory_without_changing_results(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = resnet_block(6);
    sfp_plan_t *plans[3] = {NULL, NULL, NULL};
    TU_OK(&err, plan_create(m, 0, SFP_PLAN_TRAIN, 1, &plans[0], &err));
    TU_OK(&err, plan_create(m, 0, SFP_PLAN_TRAIN | SFP_PLAN_KEEP_ACTIVATIONS, 1, &plans[1], &err));
    TU_OK(&err, plan_create(m, 0, SFP_PLAN_TRAIN, 2, &plans[2], &err));
    assert_true(plan_arena_bytes(plans[0]) < plan_arena_bytes(plans[1]));
    uint32_t seed = 220;
    float *x = tu_uniform(&seed, 6 * 4 * 36, -1, 1);
    const int32_t labels[6] = {0, 1, 2, 2, 1, 0};
    float *grads[3][8];
    for (int k = 0; k < 3; k++) {
        float dlogits[18];
        block_loss(plans[k], x, labels, dlogits);
        TU_OK(&err, plan_backward(plans[k], dlogits, &err));
        assert_int_equal(plan_n_params(plans[k]), 8);
        for (int i = 0; i < 8; i++) {
            const sfp_param_t *prm = plan_param(plans[k], i);
            grads[k][i] = malloc(sizeof(float) * (size_t)prm->numel);
            memcpy(grads[k][i], prm->grad, sizeof(float) * (size_t)prm->numel);
        }
    }
    for (int i = 0; i < 8; i++) {
        const sfp_param_t *prm = plan_param(plans[0], i);
        for (int64_t e = 0; e < prm->numel; e++) {
            assert_true(grads[1][i][e] == grads[0][i][e]);
            TU_EXPECT_NEAR(grads[2][i][e], grads[0][i][e], 1e-6 * fmax(1.0, fabs((double)grads[0][i][e])));
        }
    }
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 8; i++) free(grads[k][i]);
        plan_free(plans[k]);
    }
    free(x);
    sfp_model_free(m);
}

/* Parameters are the initializers at param_inputs positions; BN running
 * statistics and shape constants are not; kinds follow the role. Gradients
 * accumulate over backward passes until plan_zero_grad. */
static void test_parameters_and_accumulation(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = resnet_block(2);
    sfp_plan_t *p = NULL;
    TU_OK(&err, plan_create(m, 0, SFP_PLAN_TRAIN, 1, &p, &err));
    const char *names[8] = {"w1", "w2", "g1", "b1", "g2", "b2", "fc_w", "fc_b"}; /* initializer order */
    const sfp_param_kind_t kinds[8] = {SFP_PARAM_WEIGHT, SFP_PARAM_WEIGHT, SFP_PARAM_NORM, SFP_PARAM_NORM,
                                       SFP_PARAM_NORM,   SFP_PARAM_NORM,   SFP_PARAM_WEIGHT, SFP_PARAM_BIAS};
    assert_int_equal(plan_n_params(p), 8);
    for (int i = 0; i < 8; i++) {
        assert_string_equal(plan_param(p, i)->name, names[i]);
        assert_int_equal(plan_param(p, i)->kind, kinds[i]);
    }
    assert_null(plan_value_grad(p, graph_find_value(&m->graph, "m1")));
    assert_null(plan_value_grad(p, graph_find_value(&m->graph, "v2")));
    assert_null(plan_value_grad(p, graph_find_value(&m->graph, "x"))); /* no SFP_PLAN_INPUT_GRADS */
    uint32_t seed = 230;
    float *x = tu_uniform(&seed, 2 * 4 * 36, -1, 1), dlogits[6];
    const int32_t labels[2] = {1, 2};
    block_loss(p, x, labels, dlogits);
    TU_OK(&err, plan_backward(p, dlogits, &err));
    float once[3];
    memcpy(once, plan_param(p, 7)->grad, sizeof once);
    block_loss(p, x, labels, dlogits);
    TU_OK(&err, plan_backward(p, dlogits, &err));
    for (int i = 0; i < 3; i++) TU_EXPECT_NEAR(plan_param(p, 7)->grad[i], 2.0f * once[i], 1e-6);
    /* the bias gradient of a softmax layer sums to zero over the classes */
    TU_EXPECT_NEAR(once[0] + once[1] + once[2], 0.0f, 1e-6);
    plan_zero_grad(p);
    for (int i = 0; i < 3; i++) assert_true(plan_param(p, 7)->grad[i] == 0.0f);
    plan_free(p);
    free(x);
    sfp_model_free(m);
}

static void test_backward_needs_a_training_plan_and_one_run(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = resnet_block(2);
    sfp_plan_t *p = NULL, *inference = NULL;
    TU_OK(&err, plan_create(m, 0, SFP_PLAN_TRAIN, 1, &p, &err));
    TU_OK(&err, plan_create(m, 0, 0, 1, &inference, &err));
    float dlogits[6] = {0};
    int rc = plan_backward(p, dlogits, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "plan_run first");
    rc = plan_backward(inference, dlogits, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "SFP_PLAN_TRAIN");
    assert_int_equal(plan_n_params(inference), 0);
    uint32_t seed = 240;
    float *x = tu_uniform(&seed, 2 * 4 * 36, -1, 1);
    const void *in[1] = {x};
    TU_OK(&err, plan_run(p, in, &err));
    TU_OK(&err, plan_backward(p, dlogits, &err));
    rc = plan_backward(p, dlogits, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "one backward pass per run");
    plan_free(p);
    plan_free(inference);
    free(x);
    sfp_model_free(m);
}

/* An op without a backward on the gradient path is refused when planning,
 * naming the node; off the path it is fine. */
static void test_training_refuses_ops_without_backward_on_the_gradient_path(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    const int64_t x_dims[2] = {2, 3}, w_dims[2] = {3, 3};
    tu_input(m, "x", SFP_DT_FLOAT, 2, x_dims);
    tu_init_f32(m, "w", 2, w_dims, NULL, 1);
    tu_node(m, "MatMul", "mm", "x,w", "h");
    sfp_node_t *n = tu_node(m, "Cast", "cast_1", "h", "y");
    tu_attr_int(n, "to", SFP_DT_FLOAT);
    tu_output(m, "y");
    TU_OK(&err, model_validate(m, &err));
    sfp_plan_t *p = NULL;
    int rc = plan_create(m, 0, SFP_PLAN_TRAIN, 1, &p, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUNSUPPORTED, "cast_1", "Cast", "gradients");
    assert_null(p);
    TU_OK(&err, plan_create(m, 0, 0, 1, &p, &err)); /* inference is fine */
    plan_free(p);
    sfp_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_backward_matches_finite_differences),
        cmocka_unit_test(test_conv_backward_kernel_matches_ref),
        cmocka_unit_test(test_batchnorm_training_backward_matches_finite_differences),
        cmocka_unit_test(test_batchnorm_inference_backward_matches_finite_differences),
        cmocka_unit_test(test_batchnorm_train_statistics_match_double_reference),
        cmocka_unit_test(test_batchnorm_training_updates_running_statistics),
        cmocka_unit_test(test_batchnorm_backward_kernel_matches_ref),
        cmocka_unit_test(test_unary_backward_matches_finite_differences),
        cmocka_unit_test(test_activations_backward_match_finite_differences),
        cmocka_unit_test(test_reduce_mean_backward_matches_finite_differences),
        cmocka_unit_test(test_split_backward_matches_finite_differences),
        cmocka_unit_test(test_broadcast_binaries_backward_match_finite_differences),
        cmocka_unit_test(test_binary_with_one_value_twice_accumulates),
        cmocka_unit_test(test_binary_backward_kernel_matches_ref),
        cmocka_unit_test(test_pooling_backward_matches_finite_differences),
        cmocka_unit_test(test_pooling_backward_kernels_match_ref),
        cmocka_unit_test(test_gemm_backward_with_transposes_and_c_broadcast),
        cmocka_unit_test(test_matmul_backward_batches_and_broadcasts),
        cmocka_unit_test(test_matmul_backward_kernel_matches_ref),
        cmocka_unit_test(test_concat_pad_slice_transpose_backward_match_finite_differences),
        cmocka_unit_test(test_zero_padding_shortcuts_backward_match_finite_differences),
        cmocka_unit_test(test_resnet_block_loss_gradient_matches_finite_differences),
        cmocka_unit_test(test_gradient_buffers_reuse_memory_without_changing_results),
        cmocka_unit_test(test_parameters_and_accumulation),
        cmocka_unit_test(test_backward_needs_a_training_plan_and_one_run),
        cmocka_unit_test(test_training_refuses_ops_without_backward_on_the_gradient_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
