/* Conv: shape inference and MACs. X (N,C,D1..Dk), W (M, C/group, k1..kk),
 * B (M) -> Y (N, M, O1..Ok). MACs = elements of Y * (C/group) * prod(k). */
#include "ops/ops.h"

static const char *const conv_attrs[] = {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides", NULL};

static int conv_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 3, 2 + SFP_MAX_SPATIAL, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0), *w = op_in(c, 1), *b = op_in(c, 2);
    if ((rc = op_need_rank(c, 1, x->ndim, x->ndim, err)) < 0) return rc;
    int64_t group = node_attr_int(c->node, "group", 1);
    int64_t m = w->dims[0], cin = x->dims[1];
    if (group < 1 || cin % group != 0 || m % group != 0)
        return op_errorf(c, err, SFP_EBADMODEL, "group %lld does not divide %lld input and %lld output channels",
                         (long long)group, (long long)cin, (long long)m);
    if (w->dims[1] * group != cin)
        return op_errorf(c, err, SFP_EBADMODEL, "weight '%s' expects %lld input channels, input '%s' has %lld",
                         sfp_q(w->name), (long long)(w->dims[1] * group), sfp_q(x->name), (long long)cin);
    if (b && (b->ndim != 1 || b->dims[0] != m))
        return op_errorf(c, err, SFP_EBADMODEL, "bias '%s' must have shape [%lld]", sfp_q(b->name), (long long)m);
    int ns = x->ndim - 2;
    const int64_t *ks = NULL;
    size_t nks = node_attr_ints(c->node, "kernel_shape", &ks);
    if (nks && ((int)nks != ns))
        return op_errorf(c, err, SFP_EBADMODEL, "kernel_shape lists %zu sizes for %d spatial dims", nks, ns);
    for (size_t k = 0; k < nks; k++)
        if (ks[k] != w->dims[2 + k])
            return op_errorf(c, err, SFP_EBADMODEL, "kernel_shape %lld differs from weight '%s' (%lld)", (long long)ks[k],
                             sfp_q(w->name), (long long)w->dims[2 + k]);
    sfp_window_t win;
    if ((rc = op_window(c, x->dims + 2, ns, w->dims + 2, false, &win, err)) < 0) return rc;
    int64_t dims[SFP_MAX_DIMS] = {x->dims[0], m};
    for (int k = 0; k < ns; k++) dims[2 + k] = win.out[k];
    return op_set_out(c, 0, x->dtype, x->ndim, dims, x->batch0, err);
}

static int64_t conv_work(const sfp_graph_t *g, const sfp_node_t *n)
{
    const sfp_value_t *w = &g->values[n->inputs[1]];
    int64_t per = w->dims[1];
    for (int k = 2; k < w->ndim; k++) per *= w->dims[k];
    return op_work_out_elems(g, n) * per;
}

const sfp_op_def_t op_defs_conv[] = {
    {"Conv", 2, 3, 1, 1, conv_attrs, NULL, conv_infer, conv_work, SFP_WORK_DENSE, 0x6},
    {0},
};
