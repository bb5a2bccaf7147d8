/* Piecewise activations of mobile networks: Clip (ReLU6), LeakyRelu,
 * HardSigmoid, HardSwish (opset 14). One forward loop and one backward loop over a
 * kind and two parameters (act_t); the backward reads the forward's input x,
 * so the derivative at x is exact on every piece (zero outside Clip's and
 * HardSigmoid's linear range, as PyTorch's backward gives it). float32. */
#include <float.h>
#include <string.h>

#include "ops/ops.h"

typedef enum act_kind { ACT_CLIP, ACT_LEAKY_RELU, ACT_HARD_SIGMOID, ACT_HARD_SWISH } act_kind_t;

/* Clip: a = min, b = max. LeakyRelu: a = alpha. HardSigmoid and HardSwish:
 * y = max(0, min(1, a x + b)) (times x for HardSwish; a = 1/6, b = 1/2). */
typedef struct act {
    act_kind_t kind;
    float a, b;
} act_t;

static const char *const clip_attrs[] = {"min", "max", NULL}; /* opset < 11 */
static const char *const alpha_attrs[] = {"alpha", NULL};
static const char *const alpha_beta_attrs[] = {"alpha", "beta", NULL};
static const char *const no_attrs[] = {NULL};

static inline float clamp01(float v)
{
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

static inline float act_value(const act_t *f, float x)
{
    switch (f->kind) {
    case ACT_CLIP: {
        float y = x < f->a ? f->a : x; /* NaN passes through both compares */
        return y > f->b ? f->b : y;
    }
    case ACT_LEAKY_RELU: return x >= 0.0f ? x : f->a * x;
    case ACT_HARD_SIGMOID: return clamp01(f->a * x + f->b);
    case ACT_HARD_SWISH: return x * clamp01(f->a * x + f->b);
    }
    return x;
}

/* dy/dx at x (0 on the flat pieces and at Clip's bounds). */
static inline float act_slope(const act_t *f, float x)
{
    switch (f->kind) {
    case ACT_CLIP: return x > f->a && x < f->b ? 1.0f : 0.0f;
    case ACT_LEAKY_RELU: return x > 0.0f ? 1.0f : f->a;
    case ACT_HARD_SIGMOID: {
        const float t = f->a * x + f->b;
        return t > 0.0f && t < 1.0f ? f->a : 0.0f;
    }
    case ACT_HARD_SWISH: {
        const float t = f->a * x + f->b; /* d(x t)/dx = t + a x on the ramp */
        return t <= 0.0f ? 0.0f : t >= 1.0f ? 1.0f : t + f->a * x;
    }
    }
    return 1.0f;
}

/* ---- shapes ---- */
static int clip_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    if (c->opset >= 11 && (node_attr(c->node, "min") || node_attr(c->node, "max")))
        return op_errorf(c, err, SFP_EBADMODEL, "min and max are inputs from opset 11, not attributes");
    if (c->opset < 11 && c->node->n_inputs > 1)
        return op_errorf(c, err, SFP_EBADMODEL, "min and max are attributes before opset 11, not inputs");
    return 0;
}

static int act_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    /* Clip's min and max (opset 11): one value each */
    for (int i = 1; i < c->node->n_inputs; i++) {
        const sfp_value_t *b = op_in(c, i);
        if (b && b->ndim >= 0 && op_numel(b) != 1)
            return op_errorf(c, err, SFP_EBADMODEL, "input '%s' must hold one value, holds %lld", sfp_q(b->name),
                             (long long)op_numel(b));
        if (b && b->ndim >= 0 && b->dtype != x->dtype)
            return op_errorf(c, err, SFP_EBADMODEL, "input '%s' is %s, the data %s", sfp_q(b->name),
                             sfp_dtype_name(b->dtype), sfp_dtype_name(x->dtype));
    }
    return op_set_out(c, 0, x->dtype, x->ndim, x->dims, x->batch0, err);
}

/* Clip keeps 0 when min <= 0 <= max; a bound not known before running
 * (computed) may not. */
static bool clip_keeps_zero(const sfp_graph_t *g, const sfp_node_t *n)
{
    if (node_attr(n, "min") || node_attr(n, "max")) /* before opset 11 */
        return node_attr_float(n, "min", -FLT_MAX) <= 0.0f && node_attr_float(n, "max", FLT_MAX) >= 0.0f;
    for (int i = 1; i < n->n_inputs && i < 3; i++) {
        if (n->inputs[i] < 0) continue;
        const sfp_tensor_t *t = graph_const(g, n->inputs[i]);
        if (!t || sfp_tensor_numel(t) != 1) return false;
        double bound = sfp_tensor_get_double(t, 0);
        if (i == 1 ? !(bound <= 0.0) : !(bound >= 0.0)) return false;
    }
    return true;
}

/* ---- runtime ---- */
/* The node's function; Clip's bounds come from its inputs (opset 11) or
 * attributes (before), either missing meaning unbounded. */
static int act_of(const sfp_exec_t *x, act_t *f, sfp_error_t *err)
{
    memset(f, 0, sizeof *f);
    const sfp_op_def_t *def = op_of(x->node);
    switch (def ? def->id : SFP_OP_COUNT) {
    case SFP_OP_CLIP: break;
    case SFP_OP_LEAKY_RELU:
        *f = (act_t){ACT_LEAKY_RELU, node_attr_float(x->node, "alpha", 0.01f), 0.0f};
        return 0;
    case SFP_OP_HARD_SIGMOID:
        *f = (act_t){ACT_HARD_SIGMOID, node_attr_float(x->node, "alpha", 0.2f), node_attr_float(x->node, "beta", 0.5f)};
        return 0;
    case SFP_OP_HARD_SWISH:
        *f = (act_t){ACT_HARD_SWISH, 1.0f / 6.0f, 0.5f};
        return 0;
    default:
        return exec_errorf(x, err, SFP_ERUNTIME, "internal: not an activation of this file");
    }
    f->kind = ACT_CLIP;
    f->a = -FLT_MAX;
    f->b = FLT_MAX;
    if (x->opset < 11) {
        f->a = node_attr_float(x->node, "min", -FLT_MAX);
        f->b = node_attr_float(x->node, "max", FLT_MAX);
        return 0;
    }
    if (x->node->n_inputs > 1 && x->in[1]) f->a = *(const float *)x->in[1];
    if (x->node->n_inputs > 2 && x->in[2]) f->b = *(const float *)x->in[2];
    return 0;
}

static int act_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    *scratch_bytes = 0;
    for (int i = 0; i < x->node->n_inputs; i++) {
        int rc = exec_need_dtype(x, i, SFP_DT_FLOAT, err);
        if (rc < 0) return rc;
    }
    return 0;
}

typedef struct act_job {
    act_t f;
    const float *x, *dy;
    float *y, *dx;
} act_job_t;

#define ACT_GRAIN 16384

static void act_forward_range(void *ctx, int64_t i0, int64_t i1)
{
    const act_job_t *j = ctx;
    const act_t f = j->f;
    const float *restrict x = j->x;
    float *restrict y = j->y;
    for (int64_t i = i0; i < i1; i++) y[i] = act_value(&f, x[i]);
}

static void act_backward_range(void *ctx, int64_t i0, int64_t i1)
{
    const act_job_t *j = ctx;
    const act_t f = j->f;
    const float *restrict x = j->x, *restrict dy = j->dy;
    float *restrict dx = j->dx;
    for (int64_t i = i0; i < i1; i++) dx[i] += dy[i] * act_slope(&f, x[i]);
}

/* x (n) -> y (n) */
static int act_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    act_job_t j = {.x = x->in[0], .y = x->out[0]};
    int rc = act_of(x, &j.f, err);
    if (rc < 0) return rc;
    sfp_threads_for(x->threads, shape_numel(x->in_shape[0]), ACT_GRAIN, act_forward_range, &j);
    return 0;
}

/* x (n), dy (n) -> dx (n) += dy * f'(x); the bounds get no gradient */
static int act_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    act_job_t j = {.x = x->in[0], .dy = x->dout[0], .dx = x->din[0]};
    int rc = act_of(x, &j.f, err);
    if (rc < 0 || !j.dx) return rc;
    sfp_threads_for(x->threads, shape_numel(x->in_shape[0]), ACT_GRAIN, act_backward_range, &j);
    return 0;
}

static int act_prepare_backward(const sfp_exec_t *x, size_t *saved_bytes, size_t *scratch_bytes, sfp_error_t *err)
{
    *saved_bytes = *scratch_bytes = 0;
    for (int i = 1; i < x->node->n_inputs; i++)
        if (x->din[i])
            return exec_errorf(x, err, SFP_EUNSUPPORTED, "the gradient of the bound '%s' is not supported",
                               sfp_q(x->g->values[x->node->inputs[i]].name));
    return exec_need_dtype(x, 0, SFP_DT_FLOAT, err);
}

/* Clip keeps zero by its bounds (keeps_zero), HardSigmoid does not (f(0) =
 * beta); LeakyRelu and HardSwish map 0 to 0. */
const sfp_op_def_t op_defs_activation[] = {
    {"Clip", 1, 3, 1, 1, clip_attrs, clip_check, act_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0,
     {.forward = act_forward_node, .prepare = act_prepare, .backward = act_backward_node,
      .prepare_backward = act_prepare_backward, .keep_inputs = 0x7},
     .id = SFP_OP_CLIP, .chan = SFP_CHAN_SAME, .keeps_zero = clip_keeps_zero},
    {"LeakyRelu", 1, 1, 1, 1, alpha_attrs, NULL, act_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0,
     {.forward = act_forward_node, .prepare = act_prepare, .backward = act_backward_node,
      .prepare_backward = act_prepare_backward, .keep_inputs = 0x1},
     .id = SFP_OP_LEAKY_RELU, .chan = SFP_CHAN_SAME, .flags = SFP_OPF_ZERO_KEEPS},
    {"HardSigmoid", 1, 1, 1, 1, alpha_beta_attrs, NULL, act_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0,
     {.forward = act_forward_node, .prepare = act_prepare, .backward = act_backward_node,
      .prepare_backward = act_prepare_backward, .keep_inputs = 0x1},
     .id = SFP_OP_HARD_SIGMOID, .chan = SFP_CHAN_SAME},
    {"HardSwish", 1, 1, 1, 1, no_attrs, NULL, act_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0,
     {.forward = act_forward_node, .prepare = act_prepare, .backward = act_backward_node,
      .prepare_backward = act_prepare_backward, .keep_inputs = 0x1},
     .id = SFP_OP_HARD_SWISH, .chan = SFP_CHAN_SAME, .flags = SFP_OPF_ZERO_KEEPS},
    {0},
};
