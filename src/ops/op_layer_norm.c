/* LayerNormalization (opset 17): X normalised over axes [axis, rank) per
 * row of the leading axes: Y = (X - mean) / sqrt(var + epsilon) * Scale +
 * B, Scale and B over the normalised shape; optional outputs Mean and
 * InvStdDev (the leading shape, ones after). Forward only (statistics in
 * double); channels mix when the normalised axes include axis 1. */
#include <math.h>

#include "ops/ops.h"

static const char *const ln_attrs[] = {"axis", "epsilon", "stash_type", NULL};

/* The normalised axis of node n on a value of rank `rank`. */
static int ln_axis(const sfp_node_t *n, int rank)
{
    int64_t a = node_attr_int(n, "axis", -1);
    return (int)(a < 0 ? a + rank : a);
}

static int ln_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, axis;
    if ((rc = op_need_rank(c, 0, 1, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    if ((rc = op_axis(c, node_attr_int(c->node, "axis", -1), x->ndim, &axis, err)) < 0) return rc;
    int64_t inner = 1;
    for (int k = axis; k < x->ndim; k++) inner *= x->dims[k];
    for (int i = 1; i < 3; i++) {
        const sfp_value_t *p = op_in(c, i);
        if (!p) continue;
        if (p->ndim < 0 || p->dtype != x->dtype || op_numel(p) != inner || p->ndim > x->ndim - axis)
            return op_errorf(c, err, SFP_EUNSUPPORTED, "'%s' must be %s with the normalised shape (%lld elements)",
                             sfp_q(p->name), sfp_dtype_name(x->dtype), (long long)inner);
    }
    if ((rc = op_set_out(c, 0, x->dtype, x->ndim, x->dims, x->batch0, err)) < 0) return rc;
    int64_t stat[SFP_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) stat[k] = k < axis ? x->dims[k] : 1;
    for (int i = 1; i < 3; i++)
        if ((rc = op_set_out(c, i, SFP_DT_FLOAT, x->ndim, stat, x->batch0 && axis > 0, err)) < 0) return rc;
    return 0;
}

static sfp_chan_rule_t ln_chan(const sfp_graph_t *g, const sfp_node_t *n)
{
    int rank = g->values[n->inputs[0]].ndim;
    return rank < 2 || ln_axis(n, rank) <= 1 ? SFP_CHAN_MIXES : SFP_CHAN_SAME;
}

static int ln_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    int rc;
    *scratch_bytes = 0;
    for (int i = 0; i < 3; i++)
        if ((rc = exec_need_dtype(x, i, SFP_DT_FLOAT, err)) < 0) return rc;
    return 0;
}

static int ln_forward(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    const sfp_shape_t *s = x->in_shape[0];
    int axis = ln_axis(x->node, s->ndim);
    int64_t outer = shape_prod(s, 0, axis), inner = shape_prod(s, axis, s->ndim);
    const double eps = (double)node_attr_float(x->node, "epsilon", 1e-5f);
    const float *in = x->in[0], *scale = x->in[1], *bias = x->node->n_inputs > 2 ? x->in[2] : NULL;
    float *y = x->out[0], *mean_out = x->node->n_outputs > 1 ? x->out[1] : NULL;
    float *inv_out = x->node->n_outputs > 2 ? x->out[2] : NULL;
    for (int64_t r = 0; r < outer; r++) {
        const float *row = in + r * inner;
        double sum = 0.0, sq = 0.0;
        for (int64_t i = 0; i < inner; i++) sum += (double)row[i];
        const double mean = inner ? sum / (double)inner : 0.0;
        for (int64_t i = 0; i < inner; i++) sq += ((double)row[i] - mean) * ((double)row[i] - mean);
        const double inv = 1.0 / sqrt((inner ? sq / (double)inner : 0.0) + eps);
        for (int64_t i = 0; i < inner; i++)
            y[r * inner + i] = (float)(((double)row[i] - mean) * inv * (double)scale[i] + (bias ? (double)bias[i] : 0.0));
        if (mean_out) mean_out[r] = (float)mean;
        if (inv_out) inv_out[r] = (float)inv;
    }
    return 0;
}

/* Not zero-keeping (a zero row becomes B); its parameters span the
 * normalised shape, not channels, so removal rewrites nothing. */
const sfp_op_def_t op_defs_layer_norm[] = {
    {"LayerNormalization", 2, 3, 1, 3, ln_attrs, NULL, ln_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0x6,
     {.forward = ln_forward, .prepare = ln_prepare},
     .id = SFP_OP_LAYER_NORMALIZATION, .chan = SFP_CHAN_MIXES, .chan_of = ln_chan},
    {0},
};
