/* Split (torch.split / chunk): one input cut along an axis into several
 * outputs. Sizes from the `split` attribute (before opset 13), the `split`
 * input (from 13), num_outputs (opset 18: ceil(dim / n) each, the last
 * smaller) or equal parts. Forward: any element type, (outer, len_i * inner)
 * blocks copied out; backward (float32): each output's gradient added back
 * into its block. */
#include <string.h>

#include "ops/ops.h"

#define SPLIT_MAX_OUTPUTS 1024

static const char *const split_attrs[] = {"axis", "split", "num_outputs", NULL};

static int split_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    for (int i = 0; i < c->node->n_outputs; i++)
        if (c->node->outputs[i] < 0) return op_errorf(c, err, SFP_EBADMODEL, "output %d is empty", i);
    if (c->opset < 13 && c->node->n_inputs > 1)
        return op_errorf(c, err, SFP_EBADMODEL, "split is an attribute before opset 13, not an input");
    if (c->opset >= 13 && node_attr(c->node, "split"))
        return op_errorf(c, err, SFP_EBADMODEL, "split is an input from opset 13, not an attribute");
    if (node_attr(c->node, "num_outputs")) {
        if (c->opset < 18) return op_errorf(c, err, SFP_EBADMODEL, "num_outputs exists from opset 18");
        if (c->node->n_inputs > 1 && c->node->inputs[1] >= 0)
            return op_errorf(c, err, SFP_EBADMODEL, "num_outputs and the split input are both given");
        if (node_attr_int(c->node, "num_outputs", 0) != c->node->n_outputs)
            return op_errorf(c, err, SFP_EBADMODEL, "num_outputs is %lld, the node has %d outputs",
                             (long long)node_attr_int(c->node, "num_outputs", 0), c->node->n_outputs);
    }
    return 0;
}

int op_split_sizes(const sfp_graph_t *g, const sfp_node_t *n, int *axis, int64_t *sizes, sfp_error_t *err)
{
    sfp_op_ctx_t c = {NULL, (sfp_graph_t *)g, n, 0};
    const sfp_value_t *x = op_in(&c, 0);
    int rc, count = n->n_outputs, given = 0;
    if (!x || x->ndim < 1) return op_errorf(&c, err, SFP_EBADMODEL, "input must have rank 1 or more");
    if ((rc = op_axis(&c, node_attr_int(n, "axis", 0), x->ndim, axis, err)) < 0) return rc;
    const int64_t dim = x->dims[*axis], *attr = NULL;
    size_t n_attr = node_attr_ints(n, "split", &attr);
    if (n_attr) {
        if (n_attr > SPLIT_MAX_OUTPUTS) return op_errorf(&c, err, SFP_EUNSUPPORTED, "more than %d parts", SPLIT_MAX_OUTPUTS);
        memcpy(sizes, attr, sizeof(int64_t) * n_attr);
        given = (int)n_attr;
    } else if (n->n_inputs > 1 && n->inputs[1] >= 0) {
        if ((rc = op_const_ints(&c, 1, sizes, SPLIT_MAX_OUTPUTS, &given, err)) < 0) return rc;
    }
    if (n_attr || given) {
        if (given != count)
            return op_errorf(&c, err, SFP_EBADMODEL, "split lists %d sizes for %d outputs", given, count);
        int64_t sum = 0;
        for (int i = 0; i < count; i++) {
            if (sizes[i] < 0 || sizes[i] > OP_MAX_DIM)
                return op_errorf(&c, err, SFP_EBADMODEL, "split size %lld", (long long)sizes[i]);
            sum += sizes[i];
        }
        if (sum != dim)
            return op_errorf(&c, err, SFP_EBADMODEL, "split sizes add up to %lld, dim %d is %lld", (long long)sum, *axis,
                             (long long)dim);
        return 0;
    }
    if (node_attr(n, "num_outputs")) { /* opset 18: ceil(dim / n), the last takes the rest */
        const int64_t part = (dim + count - 1) / count;
        int64_t left = dim;
        for (int i = 0; i < count; i++) {
            sizes[i] = left < part ? left : part;
            left -= sizes[i];
        }
        return 0;
    }
    if (dim % count != 0)
        return op_errorf(&c, err, SFP_EBADMODEL, "dim %d (%lld) does not split into %d equal parts", *axis,
                         (long long)dim, count);
    for (int i = 0; i < count; i++) sizes[i] = dim / count;
    return 0;
}

static int split_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, axis = 0;
    int64_t sizes[SPLIT_MAX_OUTPUTS];
    if ((rc = op_need_rank(c, 0, 1, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    if ((rc = op_split_sizes(c->g, c->node, &axis, sizes, err)) < 0) return rc;
    int64_t dims[SFP_MAX_DIMS];
    memcpy(dims, x->dims, sizeof dims);
    for (int i = 0; i < c->node->n_outputs; i++) {
        dims[axis] = sizes[i];
        if ((rc = op_set_out(c, i, x->dtype, x->ndim, dims, x->batch0 && axis != 0, err)) < 0) return rc;
    }
    return 0;
}

/* ---- runtime ---- */
static int split_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    *scratch_bytes = 0;
    for (int i = 0; i < x->node->n_outputs; i++) {
        int rc = exec_need_sized(x, i, err);
        if (rc < 0) return rc;
    }
    return 0;
}

/* The axis and each output's length on it, as the plan's shapes fix them. */
static int split_geometry(const sfp_exec_t *x, int *axis, int64_t *len, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0];
    sfp_op_ctx_t c = exec_ctx(x);
    int rc = op_axis(&c, node_attr_int(x->node, "axis", 0), xs->ndim, axis, err);
    if (rc < 0) return rc;
    int64_t sum = 0;
    for (int i = 0; i < x->node->n_outputs; i++) {
        len[i] = x->out_shape[i] ? x->out_shape[i]->dims[*axis] : 0;
        sum += len[i];
    }
    if (sum != xs->dims[*axis]) return exec_errorf(x, err, SFP_ERUNTIME, "split sizes changed since the plan was made");
    return 0;
}

/* x (outer, sum(len_i) * inner) -> y_i (outer, len_i * inner) (y_i may be NULL) */
static int split_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0];
    int64_t len[SPLIT_MAX_OUTPUTS];
    int axis = 0, rc = split_geometry(x, &axis, len, err);
    if (rc < 0) return rc;
    const size_t elem = sfp_dtype_size(xs->dtype);
    const int64_t outer = shape_prod(xs, 0, axis), inner = shape_prod(xs, axis + 1, xs->ndim);
    const char *src = x->in[0];
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < x->node->n_outputs; i++) {
            const size_t chunk = (size_t)(len[i] * inner) * elem;
            if (chunk && x->out[i]) memcpy((char *)x->out[i] + (size_t)o * chunk, src, chunk);
            src += chunk;
        }
    return 0;
}

/* dy_i (outer, len_i * inner) -> dx (outer, sum(len_i) * inner) += */
static int split_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0];
    int64_t len[SPLIT_MAX_OUTPUTS];
    int axis = 0, rc = split_geometry(x, &axis, len, err);
    if (rc < 0 || !x->din[0]) return rc;
    const int64_t outer = shape_prod(xs, 0, axis), inner = shape_prod(xs, axis + 1, xs->ndim);
    float *dst = x->din[0];
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < x->node->n_outputs; i++) {
            const int64_t chunk = len[i] * inner;
            if (x->dout[i]) {
                const float *restrict src = (const float *)x->dout[i] + o * chunk;
                float *restrict d = dst;
                for (int64_t k = 0; k < chunk; k++) d[k] += src[k];
            }
            dst += chunk;
        }
    return 0;
}

static int split_prepare_backward(const sfp_exec_t *x, size_t *saved_bytes, size_t *scratch_bytes, sfp_error_t *err)
{
    *saved_bytes = *scratch_bytes = 0;
    return exec_need_dtype(x, 0, SFP_DT_FLOAT, err);
}

const sfp_op_def_t op_defs_split[] = {
    {"Split", 1, 2, 1, SPLIT_MAX_OUTPUTS, split_attrs, split_check, split_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = split_forward_node, .prepare = split_prepare, .backward = split_backward_node,
      .prepare_backward = split_prepare_backward},
     .id = SFP_OP_SPLIT, .chan = SFP_CHAN_SPLIT, .shrink = SFP_SHRINK_SPLIT},
    {0},
};
