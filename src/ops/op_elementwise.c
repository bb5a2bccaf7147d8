/* Elementwise ops: Relu, Sigmoid, Identity, Dropout (inference), Cast,
 * Softmax, and the broadcasting binaries Add/Sub/Mul/Div. Binaries on
 * constant int64 operands are folded (older exports compute Reshape targets
 * with them). */
#include <string.h>

#include "ops/ops.h"

static const char *const no_attrs[] = {NULL};
static const char *const dropout_attrs[] = {"ratio", "seed", "is_test", NULL};
static const char *const softmax_attrs[] = {"axis", NULL};
static const char *const cast_attrs[] = {"to", "saturate", NULL};
static const char *const binary_attrs[] = {"broadcast", "axis", NULL}; /* opset < 7 */

static int same_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    if ((rc = op_set_out(c, 0, x->dtype, x->ndim, x->dims, x->batch0, err)) < 0) return rc;
    /* Dropout's optional mask output */
    if (c->node->n_outputs > 1 && (rc = op_set_out(c, 1, SFP_DT_BOOL, x->ndim, x->dims, x->batch0, err)) < 0)
        return rc;
    const sfp_tensor_t *k = graph_const(c->g, c->node->inputs[0]);
    if (k && !strcmp(c->node->op_type, "Identity")) {
        sfp_tensor_t *copy = NULL;
        if ((rc = sfp_tensor_clone(k, &copy, err)) < 0) return rc;
        return op_fold(c, 0, copy, x->batch0, err);
    }
    return 0;
}

static int softmax_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, axis = 0;
    if ((rc = op_need_rank(c, 0, 1, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    if ((rc = op_axis(c, node_attr_int(c->node, "axis", c->opset >= 13 ? -1 : 1), x->ndim, &axis, err)) < 0)
        return rc;
    return op_set_out(c, 0, x->dtype, x->ndim, x->dims, x->batch0, err);
}

static int dropout_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    if (c->node->n_inputs > 2 && c->node->inputs[2] >= 0) {
        const sfp_tensor_t *t = graph_const(c->g, c->node->inputs[2]);
        if (!t || sfp_tensor_get_int(t, 0) != 0)
            return op_errorf(c, err, SFP_EUNSUPPORTED, "training_mode must be a constant false");
    }
    return 0;
}

static int cast_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    sfp_dtype_t to = (sfp_dtype_t)node_attr_int(c->node, "to", 0);
    if (sfp_dtype_size(to) == 0) return op_errorf(c, err, SFP_EUNSUPPORTED, "cast to type %d is not supported", (int)to);
    if ((rc = op_set_out(c, 0, to, x->ndim, x->dims, x->batch0, err)) < 0) return rc;
    const sfp_tensor_t *k = graph_const(c->g, c->node->inputs[0]);
    if (!k) return 0;
    sfp_tensor_t *t = NULL;
    if ((rc = sfp_tensor_create(NULL, to, k->ndim, k->dims, &t, err)) < 0) return rc;
    int64_t n = sfp_tensor_numel(k);
    for (int64_t i = 0; i < n; i++) {
        double d = sfp_tensor_get_double(k, i);
        switch (to) {
        case SFP_DT_FLOAT: ((float *)t->data)[i] = (float)d; break;
        case SFP_DT_DOUBLE: ((double *)t->data)[i] = d; break;
        case SFP_DT_INT64: ((int64_t *)t->data)[i] = sfp_tensor_get_int(k, i); break;
        case SFP_DT_INT32: ((int32_t *)t->data)[i] = (int32_t)sfp_tensor_get_int(k, i); break;
        default:
            sfp_tensor_free(t);
            return 0; /* not folded; still inferred */
        }
    }
    return op_fold(c, 0, t, x->batch0, err);
}

/* Linear index into a broadcast operand of shape (nd, d) for output index i. */
static int64_t bcast_index(int64_t i, int out_nd, const int64_t *out_dims, int nd, const int64_t *d)
{
    int64_t idx = 0, stride = 1;
    for (int k = out_nd - 1; k >= 0; k--) {
        int64_t coord = i % out_dims[k];
        i /= out_dims[k];
        int kk = k - (out_nd - nd);
        if (kk >= 0) {
            if (d[kk] != 1) idx += coord * stride;
            stride *= d[kk];
        }
    }
    return idx;
}

static int binary_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, nd = 0;
    int64_t dims[SFP_MAX_DIMS];
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    if ((rc = op_need_rank(c, 1, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *a = op_in(c, 0), *b = op_in(c, 1);
    if (a->dtype != b->dtype)
        return op_errorf(c, err, SFP_EBADMODEL, "operand types differ (%s vs %s)", sfp_dtype_name(a->dtype),
                         sfp_dtype_name(b->dtype));
    if ((rc = op_broadcast(c, a, b, &nd, dims, err)) < 0) return rc;
    /* The batch dimension survives when the operand carrying it keeps dim 0. */
    bool batch0 = (a->batch0 && a->ndim == nd) || (b->batch0 && b->ndim == nd);
    if ((rc = op_set_out(c, 0, a->dtype, nd, dims, batch0, err)) < 0) return rc;
    const sfp_tensor_t *ka = graph_const(c->g, c->node->inputs[0]), *kb = graph_const(c->g, c->node->inputs[1]);
    if (!ka || !kb || a->dtype != SFP_DT_INT64) return 0;
    sfp_tensor_t *t = NULL;
    if ((rc = sfp_tensor_create(NULL, SFP_DT_INT64, nd, dims, &t, err)) < 0) return rc;
    int64_t n = sfp_tensor_numel(t);
    char op = c->node->op_type[0];
    for (int64_t i = 0; i < n; i++) {
        int64_t x = sfp_tensor_get_int(ka, bcast_index(i, nd, dims, ka->ndim, ka->dims));
        int64_t y = sfp_tensor_get_int(kb, bcast_index(i, nd, dims, kb->ndim, kb->dims));
        int64_t r = 0;
        if (op == 'A') r = x + y;
        else if (op == 'S') r = x - y;
        else if (op == 'M') r = x * y;
        else if (y == 0) {
            sfp_tensor_free(t);
            return op_errorf(c, err, SFP_EBADMODEL, "integer division by zero in a shape computation");
        } else r = x / y;
        ((int64_t *)t->data)[i] = r;
    }
    return op_fold(c, 0, t, batch0, err);
}

static int binary_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    if (node_attr(c->node, "broadcast") || node_attr(c->node, "axis"))
        return op_errorf(c, err, SFP_EUNSUPPORTED, "legacy broadcast/axis attributes (opset < 7) are not supported");
    return 0;
}

const sfp_op_def_t op_defs_elementwise[] = {
    {"Relu", 1, 1, 1, 1, no_attrs, NULL, same_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0},
    {"Sigmoid", 1, 1, 1, 1, no_attrs, NULL, same_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0},
    {"Identity", 1, 1, 1, 1, no_attrs, NULL, same_infer, NULL, SFP_WORK_NONE, 0},
    {"Dropout", 1, 3, 1, 2, dropout_attrs, dropout_check, same_infer, NULL, SFP_WORK_NONE, 0},
    {"Softmax", 1, 1, 1, 1, softmax_attrs, NULL, softmax_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0},
    {"Cast", 1, 1, 1, 1, cast_attrs, NULL, cast_infer, NULL, SFP_WORK_NONE, 0},
    {"Add", 2, 2, 1, 1, binary_attrs, binary_check, binary_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0},
    {"Sub", 2, 2, 1, 1, binary_attrs, binary_check, binary_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0},
    {"Mul", 2, 2, 1, 1, binary_attrs, binary_check, binary_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0},
    {"Div", 2, 2, 1, 1, binary_attrs, binary_check, binary_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0},
    {0},
};
