/* Shape bookkeeping ops: Flatten, Reshape, Concat, Constant, ConstantOfShape,
 * Shape, Gather, Unsqueeze, Squeeze. When their inputs are known before
 * running they are folded, so Reshape targets computed from Shape at export
 * time follow the batch size of each plan. Their forward entry points (for
 * inputs only known while running) move bytes of any fixed-size type.
 * Backward (float32): reshapes pass the gradient through unchanged, Concat
 * hands each input its slice. */
#include <string.h>

#include "ops/ops.h"

static const char *const axis_attrs[] = {"axis", NULL};
static const char *const reshape_attrs[] = {"allowzero", NULL};
static const char *const shape_attrs[] = {"start", "end", NULL};
static const char *const axes_attrs[] = {"axes", NULL};
static const char *const constant_attrs[] = {"value", "value_float", "value_floats", "value_int", "value_ints", NULL};
static const char *const cos_attrs[] = {"value", NULL};

static int64_t prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int k = from; k < to; k++) p *= d[k];
    return p;
}

static int flatten_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    int64_t axis = node_attr_int(c->node, "axis", 1);
    if (axis < -x->ndim || axis > x->ndim)
        return op_errorf(c, err, SFP_EBADMODEL, "axis %lld out of range for rank %d", (long long)axis, x->ndim);
    if (axis < 0) axis += x->ndim;
    int64_t dims[2] = {prod(x->dims, 0, (int)axis), prod(x->dims, (int)axis, x->ndim)};
    return op_set_out(c, 0, x->dtype, 2, dims, x->batch0 && axis >= 1, err);
}

static int reshape_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, n = 0, infer_at = -1;
    int64_t target[SFP_MAX_DIMS], dims[SFP_MAX_DIMS];
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    if ((rc = op_const_ints(c, 1, target, SFP_MAX_DIMS, &n, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    bool allowzero = node_attr_int(c->node, "allowzero", 0) != 0;
    int64_t known = 1, total = op_numel(x);
    for (int k = 0; k < n; k++) {
        if (target[k] == -1) {
            if (infer_at >= 0) return op_errorf(c, err, SFP_EBADMODEL, "shape has more than one -1");
            infer_at = k;
            continue;
        }
        if (target[k] == 0 && !allowzero) {
            if (k >= x->ndim) return op_errorf(c, err, SFP_EBADMODEL, "shape copies dim %d that the input lacks", k);
            dims[k] = x->dims[k];
        } else if (target[k] < 0) {
            return op_errorf(c, err, SFP_EBADMODEL, "shape entry %lld is invalid", (long long)target[k]);
        } else {
            dims[k] = target[k];
        }
        if (!sfp_mul_i64(known, dims[k], &known))
            return op_errorf(c, err, SFP_EBADMODEL, "target shape overflows");
    }
    if (infer_at >= 0) {
        if (known == 0 || total % known != 0)
            return op_errorf(c, err, SFP_EBADMODEL, "cannot reshape %lld elements of '%s' with a -1 into the rest (%lld)",
                             (long long)total, sfp_q(x->name), (long long)known);
        dims[infer_at] = total / known;
    } else if (known != total) {
        return op_errorf(c, err, SFP_EBADMODEL, "target shape holds %lld elements, input '%s' has %lld", (long long)known,
                         sfp_q(x->name), (long long)total);
    }
    /* The batch survives when dim 0 is copied, inferred, or computed from Shape. */
    bool batch0 = x->batch0 && n > 0 && dims[0] == x->dims[0] &&
                  (target[0] == 0 || target[0] == -1 || op_in(c, 1)->batch_dep);
    if ((rc = op_set_out(c, 0, x->dtype, n, dims, batch0, err)) < 0) return rc;
    const sfp_tensor_t *k = graph_const(c->g, c->node->inputs[0]);
    if (k) {
        sfp_tensor_t *t = NULL;
        if ((rc = sfp_tensor_clone(k, &t, err)) < 0) return rc;
        t->ndim = n;
        memcpy(t->dims, dims, sizeof(int64_t) * (size_t)n);
        return op_fold(c, 0, t, batch0, err);
    }
    return 0;
}

static int concat_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, axis = 0;
    if ((rc = op_need_rank(c, 0, 1, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x0 = op_in(c, 0);
    if (!node_attr(c->node, "axis")) return op_errorf(c, err, SFP_EBADMODEL, "attribute axis is required");
    if ((rc = op_axis(c, node_attr_int(c->node, "axis", 0), x0->ndim, &axis, err)) < 0) return rc;
    int64_t dims[SFP_MAX_DIMS];
    memcpy(dims, x0->dims, sizeof dims);
    dims[axis] = 0;
    bool all_const = true;
    for (int i = 0; i < c->node->n_inputs; i++) {
        if ((rc = op_need_rank(c, i, x0->ndim, x0->ndim, err)) < 0) return rc;
        const sfp_value_t *xi = op_in(c, i);
        if (xi->dtype != x0->dtype) return op_errorf(c, err, SFP_EBADMODEL, "inputs have different types");
        for (int k = 0; k < x0->ndim; k++)
            if (k != axis && xi->dims[k] != x0->dims[k])
                return op_errorf(c, err, SFP_EBADMODEL, "input '%s' differs in dim %d (%lld vs %lld)", sfp_q(xi->name), k,
                                 (long long)xi->dims[k], (long long)x0->dims[k]);
        dims[axis] += xi->dims[axis];
        if (!graph_const(c->g, c->node->inputs[i])) all_const = false;
    }
    bool batch0 = x0->batch0 && axis != 0;
    if ((rc = op_set_out(c, 0, x0->dtype, x0->ndim, dims, batch0, err)) < 0) return rc;
    if (!all_const || sfp_dtype_size(x0->dtype) == 0) return 0;
    sfp_tensor_t *t = NULL;
    if ((rc = sfp_tensor_create(NULL, x0->dtype, x0->ndim, dims, &t, err)) < 0) return rc;
    size_t es = sfp_dtype_size(x0->dtype);
    int64_t outer = prod(dims, 0, axis), inner = prod(dims, axis + 1, x0->ndim);
    char *dst = t->data;
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < c->node->n_inputs; i++) {
            const sfp_tensor_t *k = graph_const(c->g, c->node->inputs[i]);
            size_t chunk = (size_t)(k->dims[axis] * inner) * es;
            memcpy(dst, (const char *)k->data + (size_t)o * chunk, chunk);
            dst += chunk;
        }
    return op_fold(c, 0, t, batch0, err);
}

static int constant_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    const sfp_attr_t *a = c->node->n_attrs == 1 ? &c->node->attrs[0] : NULL;
    sfp_tensor_t *t = NULL;
    int rc = 0;
    if (!a) return op_errorf(c, err, SFP_EBADMODEL, "exactly one value attribute is required");
    if (!strcmp(a->name, "value") && a->type == SFP_ATTR_TENSOR) {
        rc = sfp_tensor_clone(a->t, &t, err);
    } else if (!strcmp(a->name, "value_float") && a->type == SFP_ATTR_FLOAT) {
        if ((rc = sfp_tensor_create(NULL, SFP_DT_FLOAT, 0, NULL, &t, err)) == 0) *(float *)t->data = a->f;
    } else if (!strcmp(a->name, "value_int") && a->type == SFP_ATTR_INT) {
        if ((rc = sfp_tensor_create(NULL, SFP_DT_INT64, 0, NULL, &t, err)) == 0) *(int64_t *)t->data = a->i;
    } else if (!strcmp(a->name, "value_floats") && a->type == SFP_ATTR_FLOATS) {
        int64_t d = (int64_t)a->n;
        if ((rc = sfp_tensor_create(NULL, SFP_DT_FLOAT, 1, &d, &t, err)) == 0 && a->n)
            memcpy(t->data, a->floats, sizeof(float) * a->n);
    } else if (!strcmp(a->name, "value_ints") && a->type == SFP_ATTR_INTS) {
        int64_t d = (int64_t)a->n;
        if ((rc = sfp_tensor_create(NULL, SFP_DT_INT64, 1, &d, &t, err)) == 0 && a->n)
            memcpy(t->data, a->ints, sizeof(int64_t) * a->n);
    } else {
        return op_errorf(c, err, SFP_EBADMODEL, "value attribute '%s' has the wrong type", sfp_q(a->name));
    }
    if (rc < 0) return rc;
    return op_fold(c, 0, t, false, err);
}

static int cos_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, n = 0;
    int64_t dims[SFP_MAX_DIMS];
    if ((rc = op_const_ints(c, 0, dims, SFP_MAX_DIMS, &n, err)) < 0) return rc;
    const sfp_attr_t *a = node_attr(c->node, "value");
    sfp_dtype_t dt = a && a->type == SFP_ATTR_TENSOR ? a->t->dtype : SFP_DT_FLOAT;
    if (a && (a->type != SFP_ATTR_TENSOR || sfp_tensor_numel(a->t) != 1))
        return op_errorf(c, err, SFP_EBADMODEL, "value must be a one-element tensor");
    for (int k = 0; k < n; k++)
        if (dims[k] < 0) return op_errorf(c, err, SFP_EBADMODEL, "negative dimension in the shape");
    int64_t numel = 0;
    if (sfp_shape_numel(n, dims, &numel, NULL) < 0 || numel > OP_FOLD_MAX_ELEMS)
        return op_set_out(c, 0, dt, n, dims, false, err); /* too big to fold: computed when run */
    sfp_tensor_t *t = NULL;
    if ((rc = sfp_tensor_create(NULL, dt, n, dims, &t, err)) < 0) return rc;
    if (a) {
        size_t es = sfp_dtype_size(dt);
        for (int64_t i = 0; i < numel; i++) memcpy((char *)t->data + (size_t)i * es, a->t->data, es);
    }
    return op_fold(c, 0, t, false, err);
}

static int shape_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    int64_t start = node_attr_int(c->node, "start", 0), end = node_attr_int(c->node, "end", x->ndim);
    if (start < 0) start += x->ndim;
    if (end < 0) end += x->ndim;
    if (start < 0) start = 0;
    if (end > x->ndim) end = x->ndim;
    int64_t n = end > start ? end - start : 0;
    sfp_tensor_t *t = NULL;
    if ((rc = sfp_tensor_create(NULL, SFP_DT_INT64, 1, &n, &t, err)) < 0) return rc;
    for (int64_t k = 0; k < n; k++) ((int64_t *)t->data)[k] = x->dims[start + k];
    return op_fold(c, 0, t, false, err);
}

static int gather_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, axis = 0;
    if ((rc = op_need_rank(c, 0, 1, SFP_MAX_DIMS, err)) < 0) return rc;
    if ((rc = op_need_rank(c, 1, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0), *idx = op_in(c, 1);
    if (idx->dtype != SFP_DT_INT64 && idx->dtype != SFP_DT_INT32)
        return op_errorf(c, err, SFP_EBADMODEL, "indices must be int32 or int64");
    if ((rc = op_axis(c, node_attr_int(c->node, "axis", 0), x->ndim, &axis, err)) < 0) return rc;
    int nd = x->ndim - 1 + idx->ndim;
    if (nd > SFP_MAX_DIMS) return op_errorf(c, err, SFP_EUNSUPPORTED, "output rank %d too large", nd);
    int64_t dims[SFP_MAX_DIMS];
    int o = 0;
    for (int k = 0; k < axis; k++) dims[o++] = x->dims[k];
    for (int k = 0; k < idx->ndim; k++) dims[o++] = idx->dims[k];
    for (int k = axis + 1; k < x->ndim; k++) dims[o++] = x->dims[k];
    bool batch0 = x->batch0 && axis > 0;
    if ((rc = op_set_out(c, 0, x->dtype, nd, dims, batch0, err)) < 0) return rc;
    const sfp_tensor_t *kx = graph_const(c->g, c->node->inputs[0]), *ki = graph_const(c->g, c->node->inputs[1]);
    if (!kx || !ki || sfp_dtype_size(x->dtype) == 0) return 0;
    sfp_tensor_t *t = NULL;
    if ((rc = sfp_tensor_create(NULL, x->dtype, nd, dims, &t, err)) < 0) return rc;
    size_t es = sfp_dtype_size(x->dtype);
    int64_t outer = prod(x->dims, 0, axis), inner = prod(x->dims, axis + 1, x->ndim), n_idx = op_numel(idx);
    int64_t len = x->dims[axis];
    for (int64_t oi = 0; oi < outer; oi++)
        for (int64_t j = 0; j < n_idx; j++) {
            int64_t at = sfp_tensor_get_int(ki, j);
            if (at < 0) at += len;
            if (at < 0 || at >= len) {
                sfp_tensor_free(t);
                return op_errorf(c, err, SFP_EBADMODEL, "index %lld out of range [0, %lld)", (long long)at, (long long)len);
            }
            memcpy((char *)t->data + (size_t)((oi * n_idx + j) * inner) * es,
                   (const char *)kx->data + (size_t)((oi * len + at) * inner) * es, (size_t)inner * es);
        }
    return op_fold(c, 0, t, batch0, err);
}

/* Axes from the attribute (opset < 13) or the optional second input. */
static int read_axes(const sfp_op_ctx_t *c, int64_t *axes, int *n, sfp_error_t *err)
{
    const int64_t *a = NULL;
    size_t na = node_attr_ints(c->node, "axes", &a);
    *n = 0;
    if (na) {
        if (na > SFP_MAX_DIMS) return op_errorf(c, err, SFP_EUNSUPPORTED, "too many axes");
        memcpy(axes, a, sizeof(int64_t) * na);
        *n = (int)na;
        return 0;
    }
    if (c->node->n_inputs > 1 && c->node->inputs[1] >= 0) return op_const_ints(c, 1, axes, SFP_MAX_DIMS, n, err);
    return 0;
}

static int fold_same_data(const sfp_op_ctx_t *c, int nd, const int64_t *dims, bool batch0, sfp_error_t *err)
{
    int rc;
    const sfp_value_t *x = op_in(c, 0);
    if ((rc = op_set_out(c, 0, x->dtype, nd, dims, batch0, err)) < 0) return rc;
    const sfp_tensor_t *k = graph_const(c->g, c->node->inputs[0]);
    if (!k) return 0;
    sfp_tensor_t *t = NULL;
    if ((rc = sfp_tensor_clone(k, &t, err)) < 0) return rc;
    t->ndim = nd;
    memcpy(t->dims, dims, sizeof(int64_t) * (size_t)nd);
    return op_fold(c, 0, t, batch0, err);
}

static int unsqueeze_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, n = 0;
    int64_t axes[SFP_MAX_DIMS];
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    if ((rc = read_axes(c, axes, &n, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    int nd = x->ndim + n;
    if (n == 0) return op_errorf(c, err, SFP_EBADMODEL, "axes are required");
    if (nd > SFP_MAX_DIMS) return op_errorf(c, err, SFP_EUNSUPPORTED, "output rank %d too large", nd);
    bool inserted[SFP_MAX_DIMS] = {0};
    for (int k = 0; k < n; k++) {
        int a = 0;
        if ((rc = op_axis(c, axes[k], nd, &a, err)) < 0) return rc;
        if (inserted[a]) return op_errorf(c, err, SFP_EBADMODEL, "axis %d repeated", a);
        inserted[a] = true;
    }
    int64_t dims[SFP_MAX_DIMS];
    for (int k = 0, src = 0; k < nd; k++) dims[k] = inserted[k] ? 1 : x->dims[src++];
    return fold_same_data(c, nd, dims, x->batch0 && !inserted[0], err);
}

static int squeeze_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, n = 0;
    int64_t axes[SFP_MAX_DIMS];
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    if ((rc = read_axes(c, axes, &n, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    bool drop[SFP_MAX_DIMS] = {0};
    for (int k = 0; k < n; k++) {
        int a = 0;
        if ((rc = op_axis(c, axes[k], x->ndim, &a, err)) < 0) return rc;
        if (x->dims[a] != 1) return op_errorf(c, err, SFP_EBADMODEL, "cannot squeeze dim %d of size %lld", a, (long long)x->dims[a]);
        drop[a] = true;
    }
    if (n == 0)
        for (int k = 0; k < x->ndim; k++) drop[k] = x->dims[k] == 1;
    int64_t dims[SFP_MAX_DIMS];
    int nd = 0;
    for (int k = 0; k < x->ndim; k++)
        if (!drop[k]) dims[nd++] = x->dims[k];
    return fold_same_data(c, nd, dims, x->batch0 && !drop[0], err);
}

/* ---- forward ---- */
static int sized_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    *scratch_bytes = 0;
    return exec_need_sized(x, 0, err);
}

/* x_i (outer, len_i * inner) -> y (outer, sum(len_i) * inner) */
void concat_forward(int n_inputs, const void *const *x, const int64_t *len, int64_t outer, int64_t inner,
                    size_t elem, void *y)
{
    char *dst = y;
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < n_inputs; i++) {
            size_t chunk = (size_t)(len[i] * inner) * elem;
            if (chunk) memcpy(dst, (const char *)x[i] + (size_t)o * chunk, chunk);
            dst += chunk;
        }
}

static int concat_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *ys = x->out_shape[0];
    sfp_op_ctx_t c = exec_ctx(x);
    int axis = 0, rc = op_axis(&c, node_attr_int(x->node, "axis", 0), ys->ndim, &axis, err);
    if (rc < 0) return rc;
    int64_t len[1024];
    int n = x->node->n_inputs;
    if (n > 1024) return exec_errorf(x, err, SFP_EUNSUPPORTED, "more than 1024 inputs");
    for (int i = 0; i < n; i++) len[i] = x->in_shape[i]->dims[axis];
    concat_forward(n, x->in, len, shape_prod(ys, 0, axis), shape_prod(ys, axis + 1, ys->ndim),
                   sfp_dtype_size(ys->dtype), x->out[0]);
    return 0;
}

static int concat_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    *scratch_bytes = 0;
    if (x->node->n_inputs > 1024) return exec_errorf(x, err, SFP_EUNSUPPORTED, "more than 1024 inputs");
    return exec_need_sized(x, 0, err);
}

/* The value attribute's bytes as the output (the folded copy is not used, so
 * the entry point stands alone). */
static int constant_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_attr_t *a = x->node->n_attrs == 1 ? &x->node->attrs[0] : NULL;
    const sfp_shape_t *ys = x->out_shape[0];
    size_t bytes = (size_t)shape_numel(ys) * sfp_dtype_size(ys->dtype);
    const void *src = NULL;
    size_t have = 0;
    if (a && a->type == SFP_ATTR_TENSOR) {
        src = a->t->data;
        have = a->t->nbytes;
    } else if (a && a->type == SFP_ATTR_FLOAT) {
        src = &a->f;
        have = sizeof a->f;
    } else if (a && a->type == SFP_ATTR_INT) {
        src = &a->i;
        have = sizeof a->i;
    } else if (a && a->type == SFP_ATTR_FLOATS) {
        src = a->floats;
        have = a->n * sizeof(float);
    } else if (a && a->type == SFP_ATTR_INTS) {
        src = a->ints;
        have = a->n * sizeof(int64_t);
    }
    if (have != bytes) return exec_errorf(x, err, SFP_EBADMODEL, "value holds %zu bytes, the output needs %zu", have, bytes);
    if (bytes) memcpy(x->out[0], src, bytes);
    return 0;
}

static int cos_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    const sfp_attr_t *a = node_attr(x->node, "value");
    const sfp_shape_t *ys = x->out_shape[0];
    size_t elem = sfp_dtype_size(ys->dtype);
    int64_t n = shape_numel(ys);
    if (!a || a->type != SFP_ATTR_TENSOR) {
        memset(x->out[0], 0, (size_t)n * elem);
        return 0;
    }
    for (int64_t i = 0; i < n; i++) memcpy((char *)x->out[0] + (size_t)i * elem, a->t->data, elem);
    return 0;
}

static int shape_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    const sfp_shape_t *xs = x->in_shape[0];
    int64_t start = node_attr_int(x->node, "start", 0), end = node_attr_int(x->node, "end", xs->ndim);
    if (start < 0) start += xs->ndim;
    if (end < 0) end += xs->ndim;
    if (start < 0) start = 0;
    if (end > xs->ndim) end = xs->ndim;
    int64_t *y = x->out[0];
    for (int64_t k = start; k < end; k++) y[k - start] = xs->dims[k];
    return 0;
}

static int gather_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    *scratch_bytes = 0;
    sfp_dtype_t it = x->in_shape[1]->dtype;
    if (it != SFP_DT_INT64 && it != SFP_DT_INT32)
        return exec_errorf(x, err, SFP_EBADMODEL, "indices must be int32 or int64, are %s", sfp_dtype_name(it));
    return exec_need_sized(x, 0, err);
}

/* data (outer, len, inner), indices (n_idx) -> y (outer, n_idx, inner) */
static int gather_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0], *is = x->in_shape[1];
    sfp_op_ctx_t c = exec_ctx(x);
    int axis = 0, rc = op_axis(&c, node_attr_int(x->node, "axis", 0), xs->ndim, &axis, err);
    if (rc < 0) return rc;
    size_t elem = sfp_dtype_size(xs->dtype);
    int64_t outer = shape_prod(xs, 0, axis), len = xs->dims[axis], inner = shape_prod(xs, axis + 1, xs->ndim);
    int64_t n_idx = shape_numel(is);
    for (int64_t j = 0; j < n_idx; j++) {
        int64_t at = is->dtype == SFP_DT_INT64 ? ((const int64_t *)x->in[1])[j] : ((const int32_t *)x->in[1])[j];
        if (at < -len || at >= len)
            return exec_errorf(x, err, SFP_EBADDATA, "index %lld out of range [-%lld, %lld)", (long long)at,
                               (long long)len, (long long)len);
    }
    size_t run = (size_t)inner * elem;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < n_idx; j++) {
            int64_t at = is->dtype == SFP_DT_INT64 ? ((const int64_t *)x->in[1])[j] : ((const int32_t *)x->in[1])[j];
            if (at < 0) at += len;
            if (run)
                memcpy((char *)x->out[0] + (size_t)(o * n_idx + j) * run,
                       (const char *)x->in[0] + (size_t)(o * len + at) * run, run);
        }
    return 0;
}

/* dy (outer, sum(len_i) * inner) -> dx_i (outer, len_i * inner) += */
void concat_backward(int n_inputs, float *const *dx, const int64_t *len, int64_t outer, int64_t inner,
                     const float *dy)
{
    const float *src = dy;
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < n_inputs; i++) {
            const int64_t chunk = len[i] * inner;
            if (dx[i]) {
                float *restrict dst = dx[i] + o * chunk;
                for (int64_t k = 0; k < chunk; k++) dst[k] += src[k];
            }
            src += chunk;
        }
}

static int concat_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *ys = x->out_shape[0];
    sfp_op_ctx_t c = exec_ctx(x);
    int axis = 0, rc = op_axis(&c, node_attr_int(x->node, "axis", 0), ys->ndim, &axis, err);
    if (rc < 0) return rc;
    int64_t len[1024];
    float *dx[1024];
    int n = x->node->n_inputs;
    if (n > 1024) return exec_errorf(x, err, SFP_EUNSUPPORTED, "more than 1024 inputs");
    for (int i = 0; i < n; i++) {
        len[i] = x->in_shape[i]->dims[axis];
        dx[i] = x->din[i];
    }
    concat_backward(n, dx, len, shape_prod(ys, 0, axis), shape_prod(ys, axis + 1, ys->ndim), x->dout[0]);
    return 0;
}

const sfp_op_def_t op_defs_shape[] = {
    {"Flatten", 1, 1, 1, 1, axis_attrs, NULL, flatten_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = exec_copy_forward, .prepare = sized_prepare, .backward = exec_copy_backward},
     .id = SFP_OP_FLATTEN, .chan = SFP_CHAN_RESHAPE},
    {"Reshape", 2, 2, 1, 1, reshape_attrs, NULL, reshape_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = exec_copy_forward, .prepare = sized_prepare, .backward = exec_copy_backward},
     .id = SFP_OP_RESHAPE, .chan = SFP_CHAN_RESHAPE, .shrink = SFP_SHRINK_RESHAPE},
    {"Concat", 1, 1024, 1, 1, axis_attrs, NULL, concat_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = concat_forward_node, .prepare = concat_prepare, .backward = concat_backward_node},
     .id = SFP_OP_CONCAT, .chan = SFP_CHAN_CONCAT},
    {"Constant", 0, 0, 1, 1, constant_attrs, NULL, constant_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = constant_forward_node, .prepare = sized_prepare},
     .id = SFP_OP_CONSTANT, .chan = SFP_CHAN_UNKNOWN},
    {"ConstantOfShape", 1, 1, 1, 1, cos_attrs, NULL, cos_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = cos_forward_node, .prepare = sized_prepare},
     .id = SFP_OP_CONSTANT_OF_SHAPE, .chan = SFP_CHAN_UNKNOWN},
    {"Shape", 1, 1, 1, 1, shape_attrs, NULL, shape_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = shape_forward_node},
     .id = SFP_OP_SHAPE, .chan = SFP_CHAN_NONE},
    {"Gather", 2, 2, 1, 1, axis_attrs, NULL, gather_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = gather_forward_node, .prepare = gather_prepare},
     .id = SFP_OP_GATHER, .chan = SFP_CHAN_UNKNOWN},
    {"Unsqueeze", 1, 2, 1, 1, axes_attrs, NULL, unsqueeze_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = exec_copy_forward, .prepare = sized_prepare, .backward = exec_copy_backward},
     .id = SFP_OP_UNSQUEEZE, .chan = SFP_CHAN_RESHAPE},
    {"Squeeze", 1, 2, 1, 1, axes_attrs, NULL, squeeze_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = exec_copy_forward, .prepare = sized_prepare, .backward = exec_copy_backward},
     .id = SFP_OP_SQUEEZE, .chan = SFP_CHAN_RESHAPE},
    {0},
};
