/* Pad (constant mode) and Slice: channel-range ops of the zero-padding
 * shortcut (x[:, :, ::2, ::2] then F.pad over channels). Pads and slice
 * bounds must be known before running; Slice folds on constant data. */
#include <string.h>

#include "ops/ops.h"

static const char *const pad_attrs[] = {"mode", "pads", "value", NULL};
static const char *const slice_attrs[] = {"starts", "ends", "axes", NULL};

static int pad_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    const char *mode = node_attr_string(c->node, "mode", "constant");
    if (strcmp(mode, "constant") != 0)
        return op_errorf(c, err, SFP_EUNSUPPORTED, "mode '%s' is not supported (constant only)", mode);
    if (c->node->n_inputs > 3 && c->node->inputs[3] >= 0)
        return op_errorf(c, err, SFP_EUNSUPPORTED, "the axes input (opset 18) is not supported");
    return 0;
}

static int pad_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, n = 0;
    int64_t pads[2 * SFP_MAX_DIMS];
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    if (c->opset >= 11) {
        if ((rc = op_const_ints(c, 1, pads, 2 * SFP_MAX_DIMS, &n, err)) < 0) return rc;
        if (c->node->n_inputs > 2 && c->node->inputs[2] >= 0 && !graph_const(c->g, c->node->inputs[2]))
            return op_errorf(c, err, SFP_EUNSUPPORTED, "constant_value must be known before running");
    } else {
        const int64_t *p = NULL;
        n = (int)node_attr_ints(c->node, "pads", &p);
        if (n > 2 * SFP_MAX_DIMS) return op_errorf(c, err, SFP_EBADMODEL, "too many pads");
        if (n) memcpy(pads, p, sizeof(int64_t) * (size_t)n);
    }
    if (n != 2 * x->ndim)
        return op_errorf(c, err, SFP_EBADMODEL, "pads lists %d values, rank %d needs %d", n, x->ndim, 2 * x->ndim);
    int64_t dims[SFP_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) {
        dims[k] = x->dims[k] + pads[k] + pads[k + x->ndim];
        if (dims[k] < 0) return op_errorf(c, err, SFP_EBADMODEL, "pads crop dim %d below zero", k);
    }
    bool batch0 = x->batch0 && pads[0] == 0 && pads[x->ndim] == 0;
    return op_set_out(c, 0, x->dtype, x->ndim, dims, batch0, err);
}

/* Resolved per-axis slice: start, step and count, after ONNX's clamping. */
typedef struct slice_axis {
    int64_t start, step, count;
} slice_axis_t;

static int slice_plan(const sfp_op_ctx_t *c, const sfp_value_t *x, slice_axis_t *plan, sfp_error_t *err)
{
    int rc, ns = 0, ne = 0, na = 0, nst = 0;
    int64_t starts[SFP_MAX_DIMS], ends[SFP_MAX_DIMS], axes[SFP_MAX_DIMS], steps[SFP_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) plan[k] = (slice_axis_t){0, 1, x->dims[k]};
    if (c->opset >= 10) {
        if ((rc = op_const_ints(c, 1, starts, SFP_MAX_DIMS, &ns, err)) < 0) return rc;
        if ((rc = op_const_ints(c, 2, ends, SFP_MAX_DIMS, &ne, err)) < 0) return rc;
        if (c->node->n_inputs > 3 && c->node->inputs[3] >= 0 &&
            (rc = op_const_ints(c, 3, axes, SFP_MAX_DIMS, &na, err)) < 0)
            return rc;
        if (c->node->n_inputs > 4 && c->node->inputs[4] >= 0 &&
            (rc = op_const_ints(c, 4, steps, SFP_MAX_DIMS, &nst, err)) < 0)
            return rc;
    } else {
        const int64_t *p = NULL;
        ns = (int)node_attr_ints(c->node, "starts", &p);
        if (ns > SFP_MAX_DIMS) return op_errorf(c, err, SFP_EBADMODEL, "too many starts");
        if (ns) memcpy(starts, p, sizeof(int64_t) * (size_t)ns);
        ne = (int)node_attr_ints(c->node, "ends", &p);
        if (ne > SFP_MAX_DIMS) return op_errorf(c, err, SFP_EBADMODEL, "too many ends");
        if (ne) memcpy(ends, p, sizeof(int64_t) * (size_t)ne);
        na = (int)node_attr_ints(c->node, "axes", &p);
        if (na > SFP_MAX_DIMS) return op_errorf(c, err, SFP_EBADMODEL, "too many axes");
        if (na) memcpy(axes, p, sizeof(int64_t) * (size_t)na);
    }
    if (ne != ns || (na && na != ns) || (nst && nst != ns))
        return op_errorf(c, err, SFP_EBADMODEL, "starts, ends, axes and steps differ in length");
    bool seen[SFP_MAX_DIMS] = {0};
    for (int i = 0; i < ns; i++) {
        int a = i;
        if (na && (rc = op_axis(c, axes[i], x->ndim, &a, err)) < 0) return rc;
        if (!na && i >= x->ndim) return op_errorf(c, err, SFP_EBADMODEL, "more starts than input dims");
        if (seen[a]) return op_errorf(c, err, SFP_EBADMODEL, "axis %d repeated", a);
        seen[a] = true;
        int64_t dim = x->dims[a], step = nst ? steps[i] : 1, s = starts[i], e = ends[i];
        if (step == 0) return op_errorf(c, err, SFP_EBADMODEL, "step 0");
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        if (step > 0) {
            s = s < 0 ? 0 : (s > dim ? dim : s);
            e = e < 0 ? 0 : (e > dim ? dim : e);
        } else {
            s = s < 0 ? 0 : (s > dim - 1 ? dim - 1 : s);
            e = e < -1 ? -1 : (e > dim - 1 ? dim - 1 : e);
        }
        int64_t count = step > 0 ? (e - s + step - 1) / step : (s - e + (-step) - 1) / (-step);
        plan[a] = (slice_axis_t){s, step, count > 0 ? count : 0};
    }
    return 0;
}

static int slice_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    slice_axis_t plan[SFP_MAX_DIMS];
    if ((rc = op_need_rank(c, 0, 1, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    if ((rc = slice_plan(c, x, plan, err)) < 0) return rc;
    int64_t dims[SFP_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) dims[k] = plan[k].count;
    bool batch0 = x->batch0 && plan[0].start == 0 && plan[0].step == 1 && plan[0].count == x->dims[0];
    if ((rc = op_set_out(c, 0, x->dtype, x->ndim, dims, batch0, err)) < 0) return rc;
    const sfp_tensor_t *k = graph_const(c->g, c->node->inputs[0]);
    if (!k || sfp_dtype_size(x->dtype) == 0) return 0; /* constant data (shape computations): fold */
    sfp_tensor_t *t = NULL;
    if ((rc = sfp_tensor_create(NULL, x->dtype, x->ndim, dims, &t, err)) < 0) return rc;
    size_t es = sfp_dtype_size(x->dtype);
    int64_t stride[SFP_MAX_DIMS], idx[SFP_MAX_DIMS] = {0}, total = op_numel(op_out(c, 0));
    for (int d = x->ndim - 1, s = 1; d >= 0; d--) {
        stride[d] = s;
        s *= (int)x->dims[d];
    }
    for (int64_t o = 0; o < total; o++) {
        int64_t at = 0;
        for (int d = 0; d < x->ndim; d++) at += (plan[d].start + idx[d] * plan[d].step) * stride[d];
        memcpy((char *)t->data + (size_t)o * es, (const char *)k->data + (size_t)at * es, es);
        for (int d = x->ndim - 1; d >= 0; d--) {
            if (++idx[d] < dims[d]) break;
            idx[d] = 0;
        }
    }
    return op_fold(c, 0, t, batch0, err);
}

const sfp_op_def_t op_defs_pad_slice[] = {
    {"Pad", 1, 4, 1, 1, pad_attrs, pad_check, pad_infer, NULL, SFP_WORK_NONE, 0},
    {"Slice", 1, 5, 1, 1, slice_attrs, NULL, slice_infer, NULL, SFP_WORK_NONE, 0},
    {0},
};
