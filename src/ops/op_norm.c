/* BatchNormalization: X (N,C,...) with per-channel scale, B, mean, var (C).
 * Inference form Y = scale * (X - mean) / sqrt(var + epsilon) + B. Training
 * outputs (running mean/var, saved stats) are shaped (C) when present. */
#include "ops/ops.h"

static const char *const bn_attrs[] = {"epsilon", "momentum", "spatial", "training_mode", "is_test", NULL};

static int bn_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    if (node_attr_int(c->node, "spatial", 1) != 1)
        return op_errorf(c, err, SFP_EUNSUPPORTED, "spatial=0 (per-activation statistics) is not supported");
    if (node_attr_float(c->node, "epsilon", 1e-5f) < 0.0f)
        return op_errorf(c, err, SFP_EBADMODEL, "negative epsilon");
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

const sfp_op_def_t op_defs_norm[] = {
    {"BatchNormalization", 5, 5, 1, 5, bn_attrs, bn_check, bn_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0x6},
    {0},
};
