/* BatchNormalization: X (N,C,...) with per-channel scale, B, mean, var (C).
 * Inference form Y = scale * (X - mean) / sqrt(var + epsilon) + B, computed as
 * one multiply-add per element with per-channel factors. A model's own
 * training mode (training_mode=1, the saved-stat outputs) is refused; a
 * training plan instead runs every BN in training form: batch statistics,
 * running mean/var updated in place (ONNX momentum), mean and 1/std saved
 * for the backward pass. */
#include <math.h>

#include "ops/ops.h"

static const char *const bn_attrs[] = {"epsilon", "momentum", "spatial", "training_mode", "is_test", NULL};

static int bn_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    if (node_attr_int(c->node, "spatial", 1) != 1)
        return op_errorf(c, err, SFP_EUNSUPPORTED, "spatial=0 (per-activation statistics) is not supported");
    if (node_attr_float(c->node, "epsilon", 1e-5f) < 0.0f)
        return op_errorf(c, err, SFP_EBADMODEL, "negative epsilon");
    if (node_attr_int(c->node, "training_mode", 0) != 0)
        return op_errorf(c, err, SFP_EUNSUPPORTED,
                         "training_mode=1 (normalising by batch statistics) is not supported; export the model in eval mode");
    if (c->opset < 7 && node_attr_int(c->node, "is_test", 0) == 0)
        return op_errorf(c, err, SFP_EUNSUPPORTED,
                         "is_test=0 (training mode of opset 6) is not supported; export the model in eval mode");
    for (int i = 1; i < c->node->n_outputs; i++)
        if (c->node->outputs[i] >= 0)
            return op_errorf(c, err, SFP_EUNSUPPORTED,
                             "the training outputs (running or saved mean and variance) are not supported; export the model in eval mode");
    return 0;
}

static int bn_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 2, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    for (int i = 1; i < 5; i++) {
        const sfp_value_t *p = op_in(c, i);
        if (!p) return op_errorf(c, err, SFP_EBADMODEL, "input %d is missing", i);
        if (p->ndim != 1 || p->dims[0] != x->dims[1])
            return op_errorf(c, err, SFP_EBADMODEL, "'%s' must have shape [%lld] (channels of '%s')", sfp_q(p->name),
                             (long long)x->dims[1], sfp_q(x->name));
    }
    if ((rc = op_set_out(c, 0, x->dtype, x->ndim, x->dims, x->batch0, err)) < 0) return rc;
    for (int i = 1; i < c->node->n_outputs; i++)
        if ((rc = op_set_out(c, i, x->dtype, 1, x->dims + 1, false, err)) < 0) return rc;
    return 0;
}

/* ---- forward ---- */
typedef struct bn_job {
    int64_t c, spatial;
    const float *x, *scale, *bias, *mean, *var;
    float eps;
    float *y;
    const float *res;   /* fused residual (same layout as y), or NULL */
    bool relu;          /* fused Relu */
} bn_job_t;

/* A fused residual Add and Relu on one plane just written (still in cache). */
static void plane_post(float *restrict y, const float *restrict res, bool relu, int64_t n)
{
    if (res) {
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++) y[i + k] += res[i + k];
        for (; i < n; i++) y[i] += res[i];
    }
    if (relu) {
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++) y[i + k] = y[i + k] > 0.0f ? y[i + k] : 0.0f;
        for (; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    }
}

static float bn_factor(float scale, float var, float eps) { return scale / sqrtf(var + eps); }

void batchnorm_fold(int64_t c, const float *scale, const float *bias, const float *mean, const float *var, float eps,
                    const float *pre_bias, float *a, float *b)
{
    for (int64_t ch = 0; ch < c; ch++) {
        a[ch] = bn_factor(scale[ch], var[ch], eps);
        b[ch] = bias[ch] - mean[ch] * a[ch] + (pre_bias ? pre_bias[ch] * a[ch] : 0.0f);
    }
}

/* Planes [p0, p1) of (N*C, S). */
static void bn_planes(void *ctx, int64_t p0, int64_t p1)
{
    const bn_job_t *j = ctx;
    for (int64_t p = p0; p < p1; p++) {
        int64_t ch = p % j->c;
        const float a = bn_factor(j->scale[ch], j->var[ch], j->eps);
        const float b = j->bias[ch] - j->mean[ch] * a;
        const float *restrict xp = j->x + p * j->spatial;
        float *restrict yp = j->y + p * j->spatial;
        int64_t i = 0;
        for (; i + 16 <= j->spatial; i += 16) /* fixed trip count: vectorised at -O2 */
            for (int k = 0; k < 16; k++) yp[i + k] = xp[i + k] * a + b;
        for (; i < j->spatial; i++) yp[i] = xp[i] * a + b;
        if (j->res || j->relu) plane_post(yp, j->res ? j->res + p * j->spatial : NULL, j->relu, j->spatial);
    }
}

static void bn_infer_run(const bn_job_t *j, int64_t n, sfp_threads_t *threads)
{
    int64_t grain = j->spatial >= 8192 ? 1 : 8192 / (j->spatial ? j->spatial : 1);
    sfp_threads_for(threads, n * j->c, grain, bn_planes, (void *)j);
}

/* x (N, C, S), scale/bias/mean/var (C) -> y (N, C, S) */
void batchnorm_forward(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale, const float *bias,
                       const float *mean, const float *var, float eps, float *y, sfp_threads_t *threads)
{
    bn_job_t j = {c, spatial, x, scale, bias, mean, var, eps, y, NULL, false};
    bn_infer_run(&j, n, threads);
}

void batchnorm_forward_ref(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale,
                           const float *bias, const float *mean, const float *var, float eps, float *y)
{
    for (int64_t i = 0; i < n * c * spatial; i++) {
        int64_t ch = i / spatial % c;
        y[i] = (float)(((double)x[i] - (double)mean[ch]) / sqrt((double)var[ch] + (double)eps) * (double)scale[ch] +
                       (double)bias[ch]);
    }
}

/* Scratch: the per-channel sums of a shared batch in training form (2C doubles). */
static int bn_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    int rc;
    *scratch_bytes = 2 * (size_t)x->in_shape[0]->dims[1] * sizeof(double);
    for (int i = 0; i < 5; i++)
        if ((rc = exec_need_dtype(x, i, SFP_DT_FLOAT, err)) < 0) return rc;
    return 0;
}

/* ---- training form ---- */
/* Sums over one plane for the batch statistics: 16 float lanes (a fixed trip
 * count gcc vectorises) within blocks of 256 elements, blocks added in
 * double, so the rounding stays that of a 256-term float sum whatever the
 * plane size. */
#define BN_BLOCK 256

/* sum of x (n) */
static double plane_sum(const float *restrict x, int64_t n)
{
    double total = 0.0;
    for (int64_t b = 0; b < n; b += BN_BLOCK) {
        const int64_t e = b + BN_BLOCK < n ? b + BN_BLOCK : n;
        float lane[16] = {0}, part = 0.0f;
        int64_t i = b;
        for (; i + 16 <= e; i += 16)
            for (int k = 0; k < 16; k++) lane[k] += x[i + k];
        for (; i < e; i++) part += x[i];
        for (int k = 0; k < 16; k++) part += lane[k];
        total += (double)part;
    }
    return total;
}

/* sum of (x - c)^2 (n) */
static double plane_sq_dev(const float *restrict x, int64_t n, float c)
{
    double total = 0.0;
    for (int64_t b = 0; b < n; b += BN_BLOCK) {
        const int64_t e = b + BN_BLOCK < n ? b + BN_BLOCK : n;
        float lane[16] = {0}, part = 0.0f;
        int64_t i = b;
        for (; i + 16 <= e; i += 16)
            for (int k = 0; k < 16; k++) {
                const float d = x[i + k] - c;
                lane[k] += d * d;
            }
        for (; i < e; i++) part += (x[i] - c) * (x[i] - c);
        for (int k = 0; k < 16; k++) part += lane[k];
        total += (double)part;
    }
    return total;
}

/* Two sums over one plane in one pass, of A and of B per element i (with
 * d = x[i] - c; G names the optional second array), blocked as above and
 * added to *sum_a and *sum_b. One function per pair (the macro): a shared
 * function testing for G in the loop measured 25% slower backward. */
#define DEFINE_PLANE_SUMS(NAME, G, A, B)                                                                           \
    static void NAME(const float *restrict x, const float *restrict G, int64_t n, float c, double *sum_a,         \
                     double *sum_b)                                                                                \
    {                                                                                                              \
        (void)G;                                                                                                   \
        for (int64_t b = 0; b < n; b += BN_BLOCK) {                                                                \
            const int64_t e = b + BN_BLOCK < n ? b + BN_BLOCK : n;                                                 \
            float lane_a[16] = {0}, lane_b[16] = {0}, part_a = 0.0f, part_b = 0.0f;                                \
            int64_t i = b;                                                                                         \
            for (; i + 16 <= e; i += 16)                                                                           \
                for (int k = 0; k < 16; k++) {                                                                     \
                    const int64_t at = i + k;                                                                      \
                    const float d = x[at] - c;                                                                     \
                    lane_a[k] += (A);                                                                              \
                    lane_b[k] += (B);                                                                              \
                }                                                                                                  \
            for (int64_t at = i; at < e; at++) {                                                                   \
                const float d = x[at] - c;                                                                         \
                part_a += (A);                                                                                     \
                part_b += (B);                                                                                     \
            }                                                                                                      \
            for (int k = 0; k < 16; k++) {                                                                         \
                part_a += lane_a[k];                                                                               \
                part_b += lane_b[k];                                                                               \
            }                                                                                                      \
            *sum_a += (double)part_a;                                                                              \
            *sum_b += (double)part_b;                                                                              \
        }                                                                                                          \
    }

/* sum of g and of g * (x - c) (n): the backward's */
DEFINE_PLANE_SUMS(plane_grad_sums, g, g[at], g[at] * d)
/* sum of (x - c) and of (x - c)^2 (n): the forward's statistics (g unused) */
DEFINE_PLANE_SUMS(plane_shifted_sums, g_unused, d, d * d)

typedef struct bn_train_job {
    int64_t n, c, spatial;
    int64_t count;           /* values per channel in the whole batch (all shares) */
    const float *x, *scale, *bias;
    float eps, momentum;
    float *y, *mean, *invstd, *running_mean, *running_var;
    double *sum, *sq;        /* shared batches: per-channel sums (C each) */
    const float *res;        /* fused residual, or NULL */
    bool relu;               /* fused Relu */
} bn_train_job_t;

static double channel_sum(const bn_train_job_t *j, int64_t ch)
{
    double sum = 0.0;
    for (int64_t i = 0; i < j->n; i++) sum += plane_sum(j->x + (i * j->c + ch) * j->spatial, j->spatial);
    return sum;
}

static double channel_sq_dev(const bn_train_job_t *j, int64_t ch, double mu)
{
    double sq = 0.0;
    for (int64_t i = 0; i < j->n; i++) sq += plane_sq_dev(j->x + (i * j->c + ch) * j->spatial, j->spatial, (float)mu);
    return sq;
}

/* From the channel's batch mean mu and sum of squared deviations sq:
 * saved statistics, running ones, then y = (x - mean) * (scale * invstd) + bias. */
static void channel_normalise(const bn_train_job_t *j, int64_t ch, double mu, double sq)
{
    const double var = sq / (double)j->count;
    const float mean = (float)mu, invstd = (float)(1.0 / sqrt(var + (double)j->eps));
    const float a = j->scale[ch] * invstd, b = j->bias[ch];
    if (j->mean) j->mean[ch] = mean;
    if (j->invstd) j->invstd[ch] = invstd;
    if (j->running_mean) {
        const double unbiased = j->count > 1 ? sq / (double)(j->count - 1) : var;
        j->running_mean[ch] = (float)((double)j->momentum * (double)j->running_mean[ch] +
                                      (1.0 - (double)j->momentum) * mu);
        j->running_var[ch] = (float)((double)j->momentum * (double)j->running_var[ch] +
                                     (1.0 - (double)j->momentum) * unbiased);
    }
    for (int64_t i = 0; i < j->n; i++) {
        const float *restrict xp = j->x + (i * j->c + ch) * j->spatial;
        float *restrict yp = j->y + (i * j->c + ch) * j->spatial;
        int64_t k = 0;
        for (; k + 16 <= j->spatial; k += 16)
            for (int l = 0; l < 16; l++) yp[k + l] = (xp[k + l] - mean) * a + b;
        for (; k < j->spatial; k++) yp[k] = (xp[k] - mean) * a + b;
        if (j->res || j->relu)
            plane_post(yp, j->res ? j->res + (i * j->c + ch) * j->spatial : NULL, j->relu, j->spatial);
    }
}

/* Channels [c0, c1): mean and variance in one pass over the channel, as
 * sums of d = x - k and d^2 about k, the mean of the first image's plane:
 * sum (x - mu)^2 = sum d^2 - (sum d)^2 / count, where (sum d)^2 / count is
 * about 1/spatial of the variance (k is a mean of spatial values), so the
 * subtraction cancels nothing measurable; then the output. One pass less
 * than mean, then deviations about it (which the shared path keeps). */
static void bn_train_channels(void *ctx, int64_t c0, int64_t c1)
{
    const bn_train_job_t *j = ctx;
    for (int64_t ch = c0; ch < c1; ch++) {
        const float shift = (float)(plane_sum(j->x + ch * j->spatial, j->spatial) / (double)j->spatial);
        double sum_d = 0.0, sum_d2 = 0.0;
        for (int64_t i = 0; i < j->n; i++)
            plane_shifted_sums(j->x + (i * j->c + ch) * j->spatial, NULL, j->spatial, shift, &sum_d, &sum_d2);
        const double mean_d = sum_d / (double)j->count, sq = sum_d2 - sum_d * mean_d;
        channel_normalise(j, ch, (double)shift + mean_d, sq > 0.0 ? sq : 0.0);
    }
}

/* The same in three phases for a shared batch; the sums over the
 * processes come in between. */
static void bn_shared_sums(void *ctx, int64_t c0, int64_t c1)
{
    const bn_train_job_t *j = ctx;
    for (int64_t ch = c0; ch < c1; ch++) j->sum[ch] = channel_sum(j, ch);
}

static void bn_shared_sq(void *ctx, int64_t c0, int64_t c1)
{
    const bn_train_job_t *j = ctx;
    for (int64_t ch = c0; ch < c1; ch++) j->sq[ch] = channel_sq_dev(j, ch, j->sum[ch] / (double)j->count);
}

static void bn_shared_normalise(void *ctx, int64_t c0, int64_t c1)
{
    const bn_train_job_t *j = ctx;
    for (int64_t ch = c0; ch < c1; ch++) channel_normalise(j, ch, j->sum[ch] / (double)j->count, j->sq[ch]);
}

static int64_t bn_channels_per_task(int64_t n, int64_t spatial)
{
    const int64_t per_channel = n * spatial;
    return per_channel >= 8192 ? 1 : 8192 / (per_channel ? per_channel : 1);
}

static void bn_train_run(bn_train_job_t *j, sfp_threads_t *threads)
{
    if (!j->running_mean || !j->running_var) j->running_mean = j->running_var = NULL;
    sfp_threads_for(threads, j->c, bn_channels_per_task(j->n, j->spatial), bn_train_channels, j);
}

/* x (N, C, S), scale/bias (C) -> y (N, C, S); save_mean/save_invstd (C,
 * may be NULL); running_mean/running_var (C) updated when not NULL */
void batchnorm_train_forward(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale,
                             const float *bias, float eps, float momentum, float *y, float *save_mean,
                             float *save_invstd, float *running_mean, float *running_var, sfp_threads_t *threads)
{
    bn_train_job_t j = {n,        c, spatial,   n * spatial, x,           scale,        bias,        eps,
                        momentum, y, save_mean, save_invstd, running_mean, running_var, NULL, NULL, NULL, false};
    bn_train_run(&j, threads);
}

static int bn_train_run_shared(const sfp_batch_share_t *share, bn_train_job_t *j, sfp_threads_t *threads,
                               sfp_error_t *err)
{
    const int64_t per_task = bn_channels_per_task(j->n, j->spatial);
    int rc;
    sfp_threads_for(threads, j->c, per_task, bn_shared_sums, j);
    if ((rc = share->sum(share->ctx, j->sum, j->c, err)) < 0) return rc;
    sfp_threads_for(threads, j->c, per_task, bn_shared_sq, j);
    if ((rc = share->sum(share->ctx, j->sq, j->c, err)) < 0) return rc;
    sfp_threads_for(threads, j->c, per_task, bn_shared_normalise, j);
    return 0;
}

typedef struct bn_bwd_job {
    int64_t n, c, spatial;
    int64_t count;           /* values per channel in the whole batch (all shares) */
    const float *x, *scale, *mean, *invstd, *dy;
    bool batch_stats;
    float *dx, *dscale, *dbias;
    double *sums;            /* shared batches: sum(dy), sum(dy xhat) per channel (2C) */
    bool dx_fresh;           /* dx = instead of dx += */
} bn_bwd_job_t;

/* This process's sum(dy) and sum(dy * xhat) of channel ch; they are also
 * the channel's dbias and dscale, accumulated here. */
static void channel_grad_sums(const bn_bwd_job_t *j, int64_t ch, double *sum_dy, double *sum_dy_xhat)
{
    double sum_dy_xc = 0.0;
    *sum_dy = 0.0;
    for (int64_t i = 0; i < j->n; i++)
        plane_grad_sums(j->x + (i * j->c + ch) * j->spatial, j->dy + (i * j->c + ch) * j->spatial, j->spatial,
                        j->mean[ch], sum_dy, &sum_dy_xc);
    *sum_dy_xhat = sum_dy_xc * (double)j->invstd[ch];
    if (j->dscale) j->dscale[ch] += (float)*sum_dy_xhat;
    if (j->dbias) j->dbias[ch] += (float)*sum_dy;
}

/* dx of channel ch from the whole batch's sum(dy) and sum(dy * xhat). */
static void channel_dx(const bn_bwd_job_t *j, int64_t ch, double sum_dy, double sum_dy_xhat)
{
    const float mean = j->mean[ch], invstd = j->invstd[ch];
    const float k_dy = j->scale[ch] * invstd;
    /* batch statistics: dx = k (dy - mean(dy) - xhat mean(dy xhat)) */
    const float mean_dy = j->batch_stats ? (float)(sum_dy / (double)j->count) : 0.0f;
    const float mean_dy_xhat = j->batch_stats ? (float)(sum_dy_xhat / (double)j->count) : 0.0f;
    /* dx += k_dy (dy - mean_dy) - k_x (x - mean) */
    const float k_x = k_dy * invstd * mean_dy_xhat, k_0 = k_dy * mean_dy;
    for (int64_t i = 0; i < j->n; i++) {
        const float *restrict xp = j->x + (i * j->c + ch) * j->spatial;
        const float *restrict gp = j->dy + (i * j->c + ch) * j->spatial;
        float *restrict dxp = j->dx + (i * j->c + ch) * j->spatial;
        int64_t k = 0;
        if (j->dx_fresh) {
            for (; k + 16 <= j->spatial; k += 16)
                for (int l = 0; l < 16; l++) dxp[k + l] = k_dy * gp[k + l] - k_0 - k_x * (xp[k + l] - mean);
            for (; k < j->spatial; k++) dxp[k] = k_dy * gp[k] - k_0 - k_x * (xp[k] - mean);
            continue;
        }
        for (; k + 16 <= j->spatial; k += 16)
            for (int l = 0; l < 16; l++) dxp[k + l] += k_dy * gp[k + l] - k_0 - k_x * (xp[k + l] - mean);
        for (; k < j->spatial; k++) dxp[k] += k_dy * gp[k] - k_0 - k_x * (xp[k] - mean);
    }
}

/* Channels [c0, c1): sum(dy) and sum(dy * xhat), then dx. */
static void bn_bwd_channels(void *ctx, int64_t c0, int64_t c1)
{
    const bn_bwd_job_t *j = ctx;
    for (int64_t ch = c0; ch < c1; ch++) {
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        channel_grad_sums(j, ch, &sum_dy, &sum_dy_xhat);
        if (j->dx) channel_dx(j, ch, sum_dy, sum_dy_xhat);
    }
}

static void bn_bwd_shared_sums(void *ctx, int64_t c0, int64_t c1)
{
    const bn_bwd_job_t *j = ctx;
    for (int64_t ch = c0; ch < c1; ch++) channel_grad_sums(j, ch, &j->sums[ch], &j->sums[j->c + ch]);
}

static void bn_bwd_shared_dx(void *ctx, int64_t c0, int64_t c1)
{
    const bn_bwd_job_t *j = ctx;
    for (int64_t ch = c0; ch < c1; ch++) channel_dx(j, ch, j->sums[ch], j->sums[j->c + ch]);
}

/* x, dy (N, C, S), scale/mean/invstd (C) -> dx (N, C, S) +=, dscale/dbias (C) += */
void batchnorm_backward(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale,
                        const float *mean, const float *invstd, const float *dy, bool batch_stats, float *dx,
                        bool dx_fresh, float *dscale, float *dbias, sfp_threads_t *threads)
{
    bn_bwd_job_t j = {n,  c,      spatial, n * spatial, x, scale, mean, invstd, dy, batch_stats,
                      dx, dscale, dbias,   NULL,        dx_fresh};
    sfp_threads_for(threads, c, bn_channels_per_task(n, spatial), bn_bwd_channels, &j);
}

/* As batchnorm_backward (batch statistics) for this process's share of a
 * batch: dscale/dbias get this share's terms (the caller sums parameter
 * gradients over the processes), dx the whole batch's means. sums: 2C. */
static int batchnorm_backward_shared(const sfp_batch_share_t *share, int64_t n, int64_t c, int64_t spatial,
                                     const float *x, const float *scale, const float *mean, const float *invstd,
                                     const float *dy, float *dx, bool dx_fresh, float *dscale, float *dbias,
                                     double *sums, sfp_threads_t *threads, sfp_error_t *err)
{
    bn_bwd_job_t j = {n,      c,  spatial, share->total_batch * spatial, x, scale, mean, invstd, dy, true, dx,
                      dscale, dbias, sums, dx_fresh};
    const int64_t per_task = bn_channels_per_task(n, spatial);
    sfp_threads_for(threads, c, per_task, bn_bwd_shared_sums, &j);
    if (!dx) return 0;
    int rc = share->sum(share->ctx, sums, 2 * c, err);
    if (rc < 0) return rc;
    sfp_threads_for(threads, c, per_task, bn_bwd_shared_dx, &j);
    return 0;
}

/* The chain rule spelled out through mean and variance (the textbook
 * derivation, in double): dxhat = dy scale; dvar = sum(dxhat (x - mu)) *
 * -1/2 (var + eps)^-3/2; dmu = -sum(dxhat) invstd; dx = dxhat invstd +
 * dvar 2 (x - mu) / M + dmu / M. */
void batchnorm_backward_ref(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale,
                            const float *mean, const float *invstd, const float *dy, bool batch_stats, float *dx,
                            float *dscale, float *dbias)
{
    const double count = (double)(n * spatial);
    for (int64_t ch = 0; ch < c; ch++) {
        const double mu = (double)mean[ch], is = (double)invstd[ch], sc = (double)scale[ch];
        double sum_dxhat = 0.0, sum_dxhat_centred = 0.0, sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < spatial; k++) {
                int64_t at = (i * c + ch) * spatial + k;
                double centred = (double)x[at] - mu, g = (double)dy[at];
                sum_dy += g;
                sum_dy_xhat += g * centred * is;
                sum_dxhat += g * sc;
                sum_dxhat_centred += g * sc * centred;
            }
        if (dscale) dscale[ch] += (float)sum_dy_xhat;
        if (dbias) dbias[ch] += (float)sum_dy;
        if (!dx) continue;
        const double dvar = batch_stats ? sum_dxhat_centred * -0.5 * is * is * is : 0.0;
        const double dmu = batch_stats ? -sum_dxhat * is : 0.0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < spatial; k++) {
                int64_t at = (i * c + ch) * spatial + k;
                double centred = (double)x[at] - mu;
                dx[at] += (float)((double)dy[at] * sc * is + dvar * 2.0 * centred / count + dmu / count);
            }
    }
}

/* A fused Add and Relu (sfp_exec_t.fused) are applied to each plane right
 * after it is normalised, in both forms. */
static int bn_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0];
    const int64_t n = xs->dims[0], c = xs->dims[1], spatial = shape_prod(xs, 2, xs->ndim);
    const float eps = node_attr_float(x->node, "epsilon", 1e-5f);
    const float *res = x->fused ? x->fused->residual : NULL;
    const bool relu = x->fused && x->fused->relu;
    if (!x->training) {
        bn_job_t j = {c, spatial, x->in[0], x->in[1], x->in[2], x->in[3], x->in[4], eps, x->out[0], res, relu};
        bn_infer_run(&j, n, x->threads);
        return 0;
    }
    if (n * spatial < 2)
        return exec_errorf(x, err, SFP_EUNSUPPORTED,
                           "training needs more than one value per channel (batch %lld x %lld positions)",
                           (long long)n, (long long)spatial);
    float *saved = x->saved; /* NULL when no backward pass reads it */
    bn_train_job_t j = {n, c, spatial, n * spatial, x->in[0], x->in[1], x->in[2], eps,
                        node_attr_float(x->node, "momentum", 0.9f), x->out[0], saved, saved ? saved + c : NULL,
                        x->in_init ? x->in_init[3] : NULL, x->in_init ? x->in_init[4] : NULL, NULL, NULL, res, relu};
    if (x->share) {
        double *sums = x->scratch;
        j.count = x->share->total_batch * spatial;
        j.sum = sums;
        j.sq = sums + c;
        return bn_train_run_shared(x->share, &j, x->threads, err);
    }
    bn_train_run(&j, x->threads);
    return 0;
}

/* Saved: batch mean and 1/std (2C floats); scratch: 1/std of the running
 * variance when backward runs in inference form (C floats), or the sums of
 * a shared batch (2C doubles). */
static int bn_prepare_backward(const sfp_exec_t *x, size_t *saved_bytes, size_t *scratch_bytes, sfp_error_t *err)
{
    (void)err;
    int64_t c = x->in_shape[0]->dims[1];
    *saved_bytes = 2 * (size_t)c * sizeof(float);
    *scratch_bytes = 2 * (size_t)c * sizeof(double);
    return 0;
}

static int bn_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    exec_fused_backward(x); /* a fused Add and Relu: dout[0] becomes the BN output's gradient */
    const sfp_shape_t *xs = x->in_shape[0];
    const int64_t n = xs->dims[0], c = xs->dims[1], spatial = shape_prod(xs, 2, xs->ndim);
    const float *mean = x->saved, *invstd = (const float *)x->saved + c;
    if (!x->training) { /* running statistics: constants of the graph */
        const float *var = x->in[4], eps = node_attr_float(x->node, "epsilon", 1e-5f);
        float *is = x->scratch;
        for (int64_t ch = 0; ch < c; ch++) is[ch] = 1.0f / sqrtf(var[ch] + eps);
        mean = x->in[3];
        invstd = is;
    } else if (x->share) {
        return batchnorm_backward_shared(x->share, n, c, spatial, x->in[0], x->in[1], mean, invstd, x->dout[0],
                                         x->din[0], (x->din_fresh & 1u) != 0, x->din[1], x->din[2], x->scratch,
                                         x->threads, err);
    }
    batchnorm_backward(n, c, spatial, x->in[0], x->in[1], mean, invstd, x->dout[0], x->training, x->din[0],
                       (x->din_fresh & 1u) != 0, x->din[1], x->din[2], x->threads);
    return 0;
}

const sfp_op_def_t op_defs_norm[] = {
    {"BatchNormalization", 5, 5, 1, 5, bn_attrs, bn_check, bn_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0x6,
     {.forward = bn_forward_node, .prepare = bn_prepare, .backward = bn_backward_node,
      .prepare_backward = bn_prepare_backward, .keep_inputs = 0x1f, .overwrite_din = 0x1, .fuse = true,
      .fuse_train = true},
     .id = SFP_OP_BATCH_NORMALIZATION, .chan = SFP_CHAN_SAME, .shrink = SFP_SHRINK_NORM, .flags = SFP_OPF_NORM},
    {0},
};
