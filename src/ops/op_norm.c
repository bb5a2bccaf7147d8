/* BatchNormalization: X (N,C,...) with per-channel scale, B, mean, var (C).
 * Inference form Y = scale * (X - mean) / sqrt(var + epsilon) + B, computed as
 * one multiply-add per element with per-channel factors. Training mode
 * (batch statistics, the running mean/var and saved-stat outputs) is refused. */
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
} bn_job_t;

/* Planes [p0, p1) of (N*C, S). */
static void bn_planes(void *ctx, int64_t p0, int64_t p1)
{
    const bn_job_t *j = ctx;
    for (int64_t p = p0; p < p1; p++) {
        int64_t ch = p % j->c;
        const float a = j->scale[ch] / sqrtf(j->var[ch] + j->eps);
        const float b = j->bias[ch] - j->mean[ch] * a;
        const float *restrict xp = j->x + p * j->spatial;
        float *restrict yp = j->y + p * j->spatial;
        int64_t i = 0;
        for (; i + 16 <= j->spatial; i += 16) /* fixed trip count: vectorised at -O2 */
            for (int k = 0; k < 16; k++) yp[i + k] = xp[i + k] * a + b;
        for (; i < j->spatial; i++) yp[i] = xp[i] * a + b;
    }
}

/* x (N, C, S), scale/bias/mean/var (C) -> y (N, C, S) */
void batchnorm_forward(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale, const float *bias,
                       const float *mean, const float *var, float eps, float *y, sfp_threads_t *threads)
{
    bn_job_t j = {c, spatial, x, scale, bias, mean, var, eps, y};
    int64_t grain = spatial >= 8192 ? 1 : 8192 / (spatial ? spatial : 1);
    sfp_threads_for(threads, n * c, grain, bn_planes, &j);
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

static int bn_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    int rc;
    *scratch_bytes = 0;
    for (int i = 0; i < 5; i++)
        if ((rc = exec_need_dtype(x, i, SFP_DT_FLOAT, err)) < 0) return rc;
    return 0;
}

static int bn_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    const sfp_shape_t *xs = x->in_shape[0];
    batchnorm_forward(xs->dims[0], xs->dims[1], shape_prod(xs, 2, xs->ndim), x->in[0], x->in[1], x->in[2], x->in[3],
                      x->in[4], node_attr_float(x->node, "epsilon", 1e-5f), x->out[0], x->threads);
    return 0;
}

const sfp_op_def_t op_defs_norm[] = {
    {"BatchNormalization", 5, 5, 1, 5, bn_attrs, bn_check, bn_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0x6,
     {.forward = bn_forward_node, .prepare = bn_prepare}},
    {0},
};
