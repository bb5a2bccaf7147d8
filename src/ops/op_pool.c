/* Pooling: MaxPool and AveragePool over a kernel_shape window (pads,
 * strides, dilations, ceil_mode, count_include_pad), GlobalAveragePool and
 * GlobalMaxPool to (N,C,1,...,1). Work = output elements * window size. */
#include "ops/ops.h"

static const char *const maxpool_attrs[] = {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads",
                                            "storage_order", "strides", NULL};
static const char *const avgpool_attrs[] = {"auto_pad", "ceil_mode", "count_include_pad", "dilations",
                                            "kernel_shape", "pads", "strides", NULL};
static const char *const no_attrs[] = {NULL};

static int pool_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    if (c->node->n_outputs > 1 && c->node->outputs[1] >= 0)
        return op_errorf(c, err, SFP_EUNSUPPORTED, "the Indices output is not supported");
    return op_check_auto_pad(c, err);
}

static int pool_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 3, 2 + SFP_MAX_SPATIAL, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    sfp_window_t win;
    bool ceil_mode = node_attr_int(c->node, "ceil_mode", 0) != 0;
    if ((rc = op_window(c, x->dims + 2, x->ndim - 2, NULL, ceil_mode, &win, err)) < 0) return rc;
    for (int k = 0; k < win.n_spatial; k++)
        if (win.pad_begin[k] >= win.kernel[k] * win.dilation[k] || win.pad_end[k] >= win.kernel[k] * win.dilation[k])
            return op_errorf(c, err, SFP_EBADMODEL, "pads must be smaller than the kernel");
    int64_t dims[SFP_MAX_DIMS] = {x->dims[0], x->dims[1]};
    for (int k = 0; k < win.n_spatial; k++) dims[2 + k] = win.out[k];
    return op_set_out(c, 0, x->dtype, x->ndim, dims, x->batch0, err);
}

static int64_t pool_work(const sfp_graph_t *g, const sfp_node_t *n)
{
    const int64_t *ks = NULL;
    size_t nk = node_attr_ints(n, "kernel_shape", &ks);
    int64_t win = 1;
    for (size_t k = 0; k < nk; k++) win *= ks[k];
    return op_work_out_elems(g, n) * win;
}

static int global_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 3, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    int64_t dims[SFP_MAX_DIMS] = {x->dims[0], x->dims[1]};
    for (int k = 2; k < x->ndim; k++) dims[k] = 1;
    return op_set_out(c, 0, x->dtype, x->ndim, dims, x->batch0, err);
}

static int64_t global_work(const sfp_graph_t *g, const sfp_node_t *n)
{
    const sfp_value_t *x = &g->values[n->inputs[0]];
    return x->ndim >= 0 ? op_numel(x) : 0;
}

const sfp_op_def_t op_defs_pool[] = {
    {"MaxPool", 1, 1, 1, 2, maxpool_attrs, pool_check, pool_infer, pool_work, SFP_WORK_ELEMENTWISE, 0},
    {"AveragePool", 1, 1, 1, 1, avgpool_attrs, pool_check, pool_infer, pool_work, SFP_WORK_ELEMENTWISE, 0},
    {"GlobalAveragePool", 1, 1, 1, 1, no_attrs, NULL, global_infer, global_work, SFP_WORK_ELEMENTWISE, 0},
    {"GlobalMaxPool", 1, 1, 1, 1, no_attrs, NULL, global_infer, global_work, SFP_WORK_ELEMENTWISE, 0},
    {0},
};
