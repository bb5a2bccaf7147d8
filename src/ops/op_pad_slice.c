/* Pad and Slice: channel-range ops of the zero-padding shortcut
 * (x[:, :, ::2, ::2] then F.pad over channels), and Pad's reflect and edge
 * modes (F.pad reflect / replicate). Pads and slice bounds must be known
 * before running; Slice folds on constant data. Forward: any element type;
 * constant mode copies rows of the last dim as runs, reflect and edge map
 * every output element to its source. Backward (float32): each element's
 * gradient goes back where it came from (reflect and edge: summed over its
 * copies); the pad value and the cropped or skipped elements get none. */
#include <string.h>

#include "ops/ops.h"

static const char *const pad_attrs[] = {"mode", "pads", "value", NULL};
static const char *const slice_attrs[] = {"starts", "ends", "axes", NULL};

typedef enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_OTHER } pad_mode_t;

static pad_mode_t pad_mode_of(const sfp_node_t *n)
{
    const char *mode = node_attr_string(n, "mode", "constant");
    return !strcmp(mode, "constant") ? PAD_CONSTANT
           : !strcmp(mode, "reflect") ? PAD_REFLECT
           : !strcmp(mode, "edge")    ? PAD_EDGE
                                      : PAD_OTHER;
}

static int pad_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    if (pad_mode_of(c->node) == PAD_OTHER)
        return op_errorf(c, err, SFP_EUNSUPPORTED, "mode '%s' is not supported (constant, reflect, edge)",
                         sfp_q(node_attr_string(c->node, "mode", "")));
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
        if (pads[k] < -OP_MAX_DIM || pads[k] > OP_MAX_DIM || pads[k + x->ndim] < -OP_MAX_DIM || pads[k + x->ndim] > OP_MAX_DIM)
            return op_errorf(c, err, SFP_EBADMODEL, "pads of dim %d are out of range", k);
        dims[k] = x->dims[k] + pads[k] + pads[k + x->ndim];
        if (dims[k] < 0) return op_errorf(c, err, SFP_EBADMODEL, "pads crop dim %d below zero", k);
        if (x->dims[k] == 0 && dims[k] > 0 && pad_mode_of(c->node) != PAD_CONSTANT)
            return op_errorf(c, err, SFP_EBADMODEL, "reflect or edge padding of the empty dim %d", k);
    }
    bool batch0 = x->batch0 && pads[0] == 0 && pads[x->ndim] == 0;
    return op_set_out(c, 0, x->dtype, x->ndim, dims, batch0, err);
}

/* Resolved per-axis slice: start, step and count, after ONNX's clamping. */
typedef struct slice_axis {
    int64_t start, step, count;
} slice_axis_t;

/* Slice's starts/ends/axes/steps as given (inputs from opset 10, attributes before). */
typedef struct slice_lists {
    int ns, ne, na, nst;
    int64_t starts[SFP_MAX_DIMS], ends[SFP_MAX_DIMS], axes[SFP_MAX_DIMS], steps[SFP_MAX_DIMS];
} slice_lists_t;

static int slice_lists_attr(const sfp_op_ctx_t *c, slice_lists_t *l, sfp_error_t *err)
{
    const char *names[3] = {"starts", "ends", "axes"};
    int64_t *dst[3] = {l->starts, l->ends, l->axes};
    int *count[3] = {&l->ns, &l->ne, &l->na};
    for (int i = 0; i < 3; i++) {
        const int64_t *p = NULL;
        size_t n = node_attr_ints(c->node, names[i], &p);
        if (n > SFP_MAX_DIMS) return op_errorf(c, err, SFP_EBADMODEL, "too many %s", names[i]);
        if (n) memcpy(dst[i], p, sizeof(int64_t) * n);
        *count[i] = (int)n;
    }
    return 0;
}

/* Lists from the graph's constants (shape inference). */
static int slice_lists_const(const sfp_op_ctx_t *c, slice_lists_t *l, sfp_error_t *err)
{
    int rc;
    memset(l, 0, sizeof *l);
    if (c->opset < 10) return slice_lists_attr(c, l, err);
    if ((rc = op_const_ints(c, 1, l->starts, SFP_MAX_DIMS, &l->ns, err)) < 0) return rc;
    if ((rc = op_const_ints(c, 2, l->ends, SFP_MAX_DIMS, &l->ne, err)) < 0) return rc;
    if (c->node->n_inputs > 3 && c->node->inputs[3] >= 0 &&
        (rc = op_const_ints(c, 3, l->axes, SFP_MAX_DIMS, &l->na, err)) < 0)
        return rc;
    if (c->node->n_inputs > 4 && c->node->inputs[4] >= 0 &&
        (rc = op_const_ints(c, 4, l->steps, SFP_MAX_DIMS, &l->nst, err)) < 0)
        return rc;
    return 0;
}

static int slice_resolve(const sfp_op_ctx_t *c, int ndim, const int64_t *dims, const slice_lists_t *l,
                         slice_axis_t *plan, sfp_error_t *err)
{
    int rc;
    for (int k = 0; k < ndim; k++) plan[k] = (slice_axis_t){0, 1, dims[k]};
    if (l->ne != l->ns || (l->na && l->na != l->ns) || (l->nst && l->nst != l->ns))
        return op_errorf(c, err, SFP_EBADMODEL, "starts, ends, axes and steps differ in length");
    bool seen[SFP_MAX_DIMS] = {0};
    for (int i = 0; i < l->ns; i++) {
        int a = i;
        if (l->na && (rc = op_axis(c, l->axes[i], ndim, &a, err)) < 0) return rc;
        if (!l->na && i >= ndim) return op_errorf(c, err, SFP_EBADMODEL, "more starts than input dims");
        if (seen[a]) return op_errorf(c, err, SFP_EBADMODEL, "axis %d repeated", a);
        seen[a] = true;
        int64_t dim = dims[a], step = l->nst ? l->steps[i] : 1, s = l->starts[i], e = l->ends[i];
        if (step == 0) return op_errorf(c, err, SFP_EBADMODEL, "step 0");
        if (step < -((int64_t)1 << 62)) step = -((int64_t)1 << 62); /* keeps -step and the count below in range */
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        if (step > 0) {
            s = s < 0 ? 0 : (s > dim ? dim : s);
            e = e < 0 ? 0 : (e > dim ? dim : e);
        } else {
            s = s < 0 ? 0 : (s > dim - 1 ? dim - 1 : s); /* ONNX: starts clamp to [0, dim-1] */
            e = e < -1 ? -1 : (e > dim - 1 ? dim - 1 : e);
        }
        int64_t span = step > 0 ? e - s : s - e, mag = step > 0 ? step : -step;
        int64_t count = span > 0 ? (span - 1) / mag + 1 : 0;
        plan[a] = (slice_axis_t){s, step, count};
    }
    return 0;
}

static int slice_plan(const sfp_op_ctx_t *c, const sfp_value_t *x, slice_axis_t *plan, sfp_error_t *err)
{
    slice_lists_t l;
    int rc = slice_lists_const(c, &l, err);
    if (rc < 0) return rc;
    return slice_resolve(c, x->ndim, x->dims, &l, plan, err);
}

int op_slice_axis(const sfp_graph_t *g, const sfp_node_t *n, int axis, int *index, int64_t *start, int64_t *step,
                  int64_t *count, sfp_error_t *err)
{
    /* the lists' form tells the opset: attributes before 10, inputs from 10 */
    sfp_op_ctx_t c = {NULL, (sfp_graph_t *)g, n, node_attr(n, "starts") ? 9 : 10};
    const sfp_value_t *x = op_in(&c, 0);
    slice_axis_t plan[SFP_MAX_DIMS];
    slice_lists_t l;
    int rc;
    if (!x || x->ndim <= axis) return op_errorf(&c, err, SFP_EBADMODEL, "input has no axis %d", axis);
    if ((rc = slice_lists_const(&c, &l, err)) < 0) return rc;
    if ((rc = slice_resolve(&c, x->ndim, x->dims, &l, plan, err)) < 0) return rc;
    *index = -1;
    for (int i = 0; i < l.ns; i++) {
        int a = i;
        if (l.na && (rc = op_axis(&c, l.axes[i], x->ndim, &a, err)) < 0) return rc;
        if (a == axis) *index = i;
    }
    *start = plan[axis].start;
    *step = plan[axis].step;
    *count = plan[axis].count;
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
    int64_t stride[SFP_MAX_DIMS], idx[SFP_MAX_DIMS] = {0}, total = op_numel(op_out(c, 0)), step = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        stride[d] = step;
        step *= x->dims[d];
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

/* ---- forward ---- */
static void copy_elems(size_t elem, void *dst, const void *src, int64_t n, int64_t src_step)
{
    if (src_step == 1) {
        memcpy(dst, src, (size_t)n * elem);
        return;
    }
    switch (elem) {
    case 4: {
        uint32_t *d = dst;
        const uint32_t *p = src;
        for (int64_t i = 0; i < n; i++) d[i] = p[i * src_step];
        break;
    }
    case 8: {
        uint64_t *d = dst;
        const uint64_t *p = src;
        for (int64_t i = 0; i < n; i++) d[i] = p[i * src_step];
        break;
    }
    default:
        for (int64_t i = 0; i < n; i++)
            memcpy((char *)dst + (size_t)i * elem, (const char *)src + (size_t)(i * src_step) * elem, elem);
    }
}

/* Calls fn for every row of x (all dims but the last) that lands inside y,
 * with the element offsets in x and in y of the row's valid run of n
 * elements (pads may be negative: they crop). Shared by forward and backward. */
typedef void (*pad_row_fn)(int64_t x_at, int64_t y_at, int64_t n, void *ctx);

static void pad_each_row(int ndim, const int64_t *x_dims, const int64_t *pad_begin, const int64_t *y_dims,
                         pad_row_fn fn, void *ctx)
{
    const int last = ndim - 1;
    int64_t x_rows = 1;
    for (int d = 0; d < last; d++) x_rows *= x_dims[d];
    int64_t lo = pad_begin[last] < 0 ? -pad_begin[last] : 0;
    int64_t hi = x_dims[last];
    if (hi > y_dims[last] - pad_begin[last]) hi = y_dims[last] - pad_begin[last];
    if (hi <= lo) return;
    int64_t pos[SFP_MAX_DIMS] = {0};
    for (int64_t r = 0; r < x_rows; r++) {
        int64_t y_off = 0;
        bool inside = true;
        for (int d = 0; d < last; d++) {
            int64_t yd = pos[d] + pad_begin[d];
            if (yd < 0 || yd >= y_dims[d]) inside = false;
            y_off = y_off * y_dims[d] + yd;
        }
        if (inside) fn(r * x_dims[last] + lo, y_off * y_dims[last] + pad_begin[last] + lo, hi - lo, ctx);
        for (int d = last - 1; d >= 0; d--) {
            if (++pos[d] < x_dims[d]) break;
            pos[d] = 0;
        }
    }
}

typedef struct pad_copy_ctx {
    size_t elem;
    const char *x;
    char *y;
} pad_copy_ctx_t;

static void pad_copy_row(int64_t x_at, int64_t y_at, int64_t n, void *ctx)
{
    const pad_copy_ctx_t *c = ctx;
    memcpy(c->y + (size_t)y_at * c->elem, c->x + (size_t)x_at * c->elem, (size_t)n * c->elem);
}

/* x (x_dims) -> y (y_dims = x_dims + pads), value everywhere outside x */
void pad_forward(int ndim, const int64_t *x_dims, const int64_t *pad_begin, const int64_t *y_dims, size_t elem,
                 const void *value, const void *x, void *y)
{
    int64_t y_numel = 1;
    for (int d = 0; d < ndim; d++) y_numel *= y_dims[d];
    if (y_numel == 0) return;
    bool same = true; /* no pads (exports write Pad ops of zeros): one copy */
    for (int d = 0; d < ndim; d++) same = same && pad_begin[d] == 0 && x_dims[d] == y_dims[d];
    if (same) {
        memcpy(y, x, (size_t)y_numel * elem);
        return;
    }
    /* fill: one element, then doubling copies */
    memcpy(y, value, elem);
    for (int64_t done = 1; done < y_numel;) {
        int64_t n = done < y_numel - done ? done : y_numel - done;
        memcpy((char *)y + (size_t)done * elem, y, (size_t)n * elem);
        done += n;
    }
    if (ndim == 0) {
        memcpy(y, x, elem);
        return;
    }
    pad_copy_ctx_t c = {elem, x, y};
    pad_each_row(ndim, x_dims, pad_begin, y_dims, pad_copy_row, &c);
}

/* Reference kernels: the x element that y element o comes from, -1 for padding. */
static int64_t pad_ref_source(int ndim, const int64_t *x_dims, const int64_t *pad_begin, const int64_t *y_dims,
                              int64_t o)
{
    int64_t at = 0, stride = 1;
    for (int64_t d = ndim - 1, t = o; d >= 0; d--) {
        int64_t xd = t % y_dims[d] - pad_begin[d];
        t /= y_dims[d];
        if (xd < 0 || xd >= x_dims[d]) return -1;
        at += xd * stride;
        stride *= x_dims[d];
    }
    return at;
}

void pad_forward_ref(int ndim, const int64_t *x_dims, const int64_t *pad_begin, const int64_t *y_dims, size_t elem,
                     const void *value, const void *x, void *y)
{
    int64_t y_numel = 1;
    for (int d = 0; d < ndim; d++) y_numel *= y_dims[d];
    for (int64_t o = 0; o < y_numel; o++) {
        int64_t at = pad_ref_source(ndim, x_dims, pad_begin, y_dims, o);
        memcpy((char *)y + (size_t)o * elem, at >= 0 ? (const char *)x + (size_t)at * elem : value, elem);
    }
}

/* x (x_dims) -> y (count): y[i...] = x[start + i * step ...] */
void slice_forward(int ndim, const int64_t *x_dims, const int64_t *start, const int64_t *step, const int64_t *count,
                   size_t elem, const void *x, void *y)
{
    int64_t rows = 1, x_stride[SFP_MAX_DIMS], st = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        x_stride[d] = st;
        st *= x_dims[d];
    }
    if (ndim == 0) {
        memcpy(y, x, elem);
        return;
    }
    const int last = ndim - 1;
    for (int d = 0; d < ndim; d++) rows *= count[d];
    if (rows == 0) return;
    rows /= count[last];
    int64_t pos[SFP_MAX_DIMS] = {0};
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = start[last];
        for (int d = 0; d < last; d++) off += (start[d] + pos[d] * step[d]) * x_stride[d];
        copy_elems(elem, (char *)y + (size_t)(r * count[last]) * elem, (const char *)x + (size_t)off * elem,
                   count[last], step[last]);
        for (int d = last - 1; d >= 0; d--) {
            if (++pos[d] < count[d]) break;
            pos[d] = 0;
        }
    }
}

void slice_forward_ref(int ndim, const int64_t *x_dims, const int64_t *start, const int64_t *step,
                       const int64_t *count, size_t elem, const void *x, void *y)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= count[d];
    for (int64_t o = 0; o < n; o++) {
        int64_t at = 0, stride = 1;
        for (int64_t d = ndim - 1, t = o; d >= 0; d--) {
            at += (start[d] + t % count[d] * step[d]) * stride;
            t /= count[d];
            stride *= x_dims[d];
        }
        memcpy((char *)y + (size_t)o * elem, (const char *)x + (size_t)at * elem, elem);
    }
}

static int movement_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    *scratch_bytes = 0;
    return exec_need_sized(x, 0, err);
}

/* The pad value as one element of the data type. */
static int pad_value(const sfp_exec_t *x, sfp_dtype_t dt, uint8_t *value, sfp_error_t *err)
{
    size_t elem = sfp_dtype_size(dt);
    memset(value, 0, elem);
    if (x->opset >= 11) {
        if (x->node->n_inputs < 3 || !x->in[2]) return 0;
        const sfp_shape_t *vs = x->in_shape[2];
        if (vs->dtype != dt || shape_numel(vs) != 1)
            return exec_errorf(x, err, SFP_EBADMODEL, "constant_value must be one %s value", sfp_dtype_name(dt));
        memcpy(value, x->in[2], elem);
        return 0;
    }
    float v = node_attr_float(x->node, "value", 0.0f);
    if (dt == SFP_DT_FLOAT) {
        memcpy(value, &v, sizeof v);
    } else if (dt == SFP_DT_DOUBLE) {
        double d = (double)v;
        memcpy(value, &d, sizeof d);
    } else if (v != 0.0f) {
        return exec_errorf(x, err, SFP_EUNSUPPORTED, "a non-zero pad value for %s data", sfp_dtype_name(dt));
    }
    return 0;
}

/* Pad's pads (input from opset 11, attribute before), 2 * rank of them. */
static int pad_pads(const sfp_exec_t *x, int64_t *pads, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0];
    int n = 0, rc;
    if (x->opset >= 11) {
        if ((rc = exec_ints(x, 1, pads, 2 * SFP_MAX_DIMS, &n, err)) < 0) return rc;
    } else {
        const int64_t *p = NULL;
        n = (int)node_attr_ints(x->node, "pads", &p);
        if (n <= 2 * SFP_MAX_DIMS && n) memcpy(pads, p, sizeof(int64_t) * (size_t)n);
    }
    if (n != 2 * xs->ndim) return exec_errorf(x, err, SFP_EBADMODEL, "pads lists %d values for rank %d", n, xs->ndim);
    return 0;
}

/* Reflect and edge: the source of position i (may be outside [0, n)) of a
 * dim of n elements, n > 0. Reflect mirrors about the end elements without
 * repeating them (numpy's 'reflect'), any number of times. */
static inline int64_t pad_source(int64_t i, int64_t n, bool reflect)
{
    if (i >= 0 && i < n) return i;
    if (!reflect || n == 1) return i < 0 ? 0 : n - 1;
    const int64_t period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

/* Calls fn(x_row, y_row) for every row of y (all dims but the last) with the
 * element offset of the x row it reads. */
static void pad_each_mode_row(int ndim, const int64_t *x_dims, const int64_t *pad_begin, const int64_t *y_dims,
                              bool reflect, void (*fn)(int64_t x_row, int64_t y_row, void *ctx), void *ctx)
{
    const int last = ndim - 1;
    int64_t rows = 1, pos[SFP_MAX_DIMS] = {0};
    for (int d = 0; d < last; d++) rows *= y_dims[d];
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0;
        for (int d = 0; d < last; d++) off = off * x_dims[d] + pad_source(pos[d] - pad_begin[d], x_dims[d], reflect);
        fn(off * x_dims[last], r * y_dims[last], ctx);
        for (int d = last - 1; d >= 0; d--) {
            if (++pos[d] < y_dims[d]) break;
            pos[d] = 0;
        }
    }
}

typedef struct pad_mode_ctx {
    int64_t x_len, y_len, begin;
    bool reflect;
    size_t elem;
    const char *x;
    char *y;
    const float *dy;
    float *dx;
} pad_mode_ctx_t;

static void pad_mode_copy_row(int64_t x_row, int64_t y_row, void *ctx)
{
    const pad_mode_ctx_t *c = ctx;
    for (int64_t j = 0; j < c->y_len; j++) {
        int64_t at = x_row + pad_source(j - c->begin, c->x_len, c->reflect);
        memcpy(c->y + (size_t)(y_row + j) * c->elem, c->x + (size_t)at * c->elem, c->elem);
    }
}

static void pad_mode_add_row(int64_t x_row, int64_t y_row, void *ctx)
{
    const pad_mode_ctx_t *c = ctx;
    for (int64_t j = 0; j < c->y_len; j++) c->dx[x_row + pad_source(j - c->begin, c->x_len, c->reflect)] += c->dy[y_row + j];
}

/* x (x_dims) -> y (y_dims): every element of y copies its source in x */
static void pad_forward_mode(int ndim, const int64_t *x_dims, const int64_t *pad_begin, const int64_t *y_dims,
                             size_t elem, bool reflect, const void *x, void *y)
{
    int64_t y_numel = 1;
    for (int d = 0; d < ndim; d++) y_numel *= y_dims[d];
    if (y_numel == 0) return;
    if (ndim == 0) {
        memcpy(y, x, elem);
        return;
    }
    pad_mode_ctx_t c = {x_dims[ndim - 1], y_dims[ndim - 1], pad_begin[ndim - 1], reflect, elem, x, y, NULL, NULL};
    pad_each_mode_row(ndim, x_dims, pad_begin, y_dims, reflect, pad_mode_copy_row, &c);
}

/* dy (y_dims) -> dx (x_dims) += each element's gradient at its source */
static void pad_backward_mode(int ndim, const int64_t *x_dims, const int64_t *pad_begin, const int64_t *y_dims,
                              bool reflect, const float *dy, float *dx)
{
    int64_t y_numel = 1;
    for (int d = 0; d < ndim; d++) y_numel *= y_dims[d];
    if (y_numel == 0) return;
    if (ndim == 0) {
        dx[0] += dy[0];
        return;
    }
    pad_mode_ctx_t c = {x_dims[ndim - 1], y_dims[ndim - 1], pad_begin[ndim - 1], reflect, sizeof(float), NULL, NULL,
                        dy, dx};
    pad_each_mode_row(ndim, x_dims, pad_begin, y_dims, reflect, pad_mode_add_row, &c);
}

static int pad_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0], *ys = x->out_shape[0];
    int64_t pads[2 * SFP_MAX_DIMS];
    int rc;
    if ((rc = pad_pads(x, pads, err)) < 0) return rc;
    pad_mode_t mode = pad_mode_of(x->node);
    if (mode != PAD_CONSTANT) {
        pad_forward_mode(xs->ndim, xs->dims, pads, ys->dims, sfp_dtype_size(xs->dtype), mode == PAD_REFLECT, x->in[0],
                         x->out[0]);
        return 0;
    }
    uint8_t value[16];
    if ((rc = pad_value(x, xs->dtype, value, err)) < 0) return rc;
    pad_forward(xs->ndim, xs->dims, pads, ys->dims, sfp_dtype_size(xs->dtype), value, x->in[0], x->out[0]);
    return 0;
}

/* Start, step and count per axis as the plan's shapes fix them. */
static int slice_geometry(const sfp_exec_t *x, int64_t *start, int64_t *step, int64_t *count, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0];
    sfp_op_ctx_t c = exec_ctx(x);
    slice_lists_t l;
    slice_axis_t plan[SFP_MAX_DIMS];
    int rc = 0;
    memset(&l, 0, sizeof l);
    if (x->opset < 10) {
        rc = slice_lists_attr(&c, &l, err);
    } else {
        if (rc == 0) rc = exec_ints(x, 1, l.starts, SFP_MAX_DIMS, &l.ns, err);
        if (rc == 0) rc = exec_ints(x, 2, l.ends, SFP_MAX_DIMS, &l.ne, err);
        if (rc == 0 && x->node->n_inputs > 3 && x->in[3]) rc = exec_ints(x, 3, l.axes, SFP_MAX_DIMS, &l.na, err);
        if (rc == 0 && x->node->n_inputs > 4 && x->in[4]) rc = exec_ints(x, 4, l.steps, SFP_MAX_DIMS, &l.nst, err);
    }
    if (rc == 0) rc = slice_resolve(&c, xs->ndim, xs->dims, &l, plan, err);
    if (rc < 0) return rc;
    for (int d = 0; d < xs->ndim; d++) {
        start[d] = plan[d].start;
        step[d] = plan[d].step;
        count[d] = plan[d].count;
        if (count[d] != x->out_shape[0]->dims[d])
            return exec_errorf(x, err, SFP_ERUNTIME, "slice bounds changed since the plan was made");
    }
    return 0;
}

static int slice_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0];
    int64_t start[SFP_MAX_DIMS], step[SFP_MAX_DIMS], count[SFP_MAX_DIMS];
    int rc = slice_geometry(x, start, step, count, err);
    if (rc < 0) return rc;
    slice_forward(xs->ndim, xs->dims, start, step, count, sfp_dtype_size(xs->dtype), x->in[0], x->out[0]);
    return 0;
}

/* ---- backward ---- */
typedef struct pad_grad_ctx {
    const float *dy;
    float *dx;
} pad_grad_ctx_t;

static void pad_add_row(int64_t x_at, int64_t y_at, int64_t n, void *ctx)
{
    const pad_grad_ctx_t *c = ctx;
    const float *restrict src = c->dy + y_at;
    float *restrict dst = c->dx + x_at;
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

/* dy (y_dims) -> dx (x_dims) += the window x was placed in (pads may crop) */
void pad_backward(int ndim, const int64_t *x_dims, const int64_t *pad_begin, const int64_t *y_dims, const float *dy,
                  float *dx)
{
    if (ndim == 0) {
        dx[0] += dy[0];
        return;
    }
    pad_grad_ctx_t c = {dy, dx};
    pad_each_row(ndim, x_dims, pad_begin, y_dims, pad_add_row, &c);
}

void pad_backward_ref(int ndim, const int64_t *x_dims, const int64_t *pad_begin, const int64_t *y_dims,
                      const float *dy, float *dx)
{
    int64_t y_numel = 1;
    for (int d = 0; d < ndim; d++) y_numel *= y_dims[d];
    for (int64_t o = 0; o < y_numel; o++) {
        int64_t at = pad_ref_source(ndim, x_dims, pad_begin, y_dims, o);
        if (at >= 0) dx[at] += dy[o];
    }
}

/* dy (count) -> dx (x_dims): dx[start + i * step] += dy[i] */
void slice_backward(int ndim, const int64_t *x_dims, const int64_t *start, const int64_t *step, const int64_t *count,
                    const float *dy, float *dx)
{
    if (ndim == 0) {
        dx[0] += dy[0];
        return;
    }
    int64_t rows = 1, x_stride[SFP_MAX_DIMS], st = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        x_stride[d] = st;
        st *= x_dims[d];
    }
    const int last = ndim - 1;
    for (int d = 0; d < ndim; d++) rows *= count[d];
    if (rows == 0) return;
    rows /= count[last];
    int64_t pos[SFP_MAX_DIMS] = {0};
    const int64_t run = count[last], stp = step[last];
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = start[last];
        for (int d = 0; d < last; d++) off += (start[d] + pos[d] * step[d]) * x_stride[d];
        const float *restrict src = dy + r * run;
        float *restrict dst = dx + off;
        for (int64_t i = 0; i < run; i++) dst[i * stp] += src[i];
        for (int d = last - 1; d >= 0; d--) {
            if (++pos[d] < count[d]) break;
            pos[d] = 0;
        }
    }
}

void slice_backward_ref(int ndim, const int64_t *x_dims, const int64_t *start, const int64_t *step,
                        const int64_t *count, const float *dy, float *dx)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= count[d];
    for (int64_t o = 0; o < n; o++) {
        int64_t at = 0, stride = 1;
        for (int64_t d = ndim - 1, t = o; d >= 0; d--) {
            at += (start[d] + t % count[d] * step[d]) * stride;
            t /= count[d];
            stride *= x_dims[d];
        }
        dx[at] += dy[o];
    }
}

static int pad_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0], *ys = x->out_shape[0];
    int64_t pads[2 * SFP_MAX_DIMS];
    int rc = pad_pads(x, pads, err);
    if (rc < 0 || !x->din[0]) return rc;
    pad_mode_t mode = pad_mode_of(x->node);
    if (mode != PAD_CONSTANT)
        pad_backward_mode(xs->ndim, xs->dims, pads, ys->dims, mode == PAD_REFLECT, x->dout[0], x->din[0]);
    else
        pad_backward(xs->ndim, xs->dims, pads, ys->dims, x->dout[0], x->din[0]);
    return 0;
}

static int slice_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0];
    int64_t start[SFP_MAX_DIMS], step[SFP_MAX_DIMS], count[SFP_MAX_DIMS];
    int rc = slice_geometry(x, start, step, count, err);
    if (rc == 0 && x->din[0]) slice_backward(xs->ndim, xs->dims, start, step, count, x->dout[0], x->din[0]);
    return rc;
}

/* Only the data gradient exists: a pad value that needs one is refused. */
static int pad_prepare_backward(const sfp_exec_t *x, size_t *saved_bytes, size_t *scratch_bytes, sfp_error_t *err)
{
    *saved_bytes = *scratch_bytes = 0;
    if (x->node->n_inputs > 2 && x->din[2])
        return exec_errorf(x, err, SFP_EUNSUPPORTED, "the gradient of constant_value is not supported");
    return exec_need_dtype(x, 0, SFP_DT_FLOAT, err);
}

static int slice_prepare_backward(const sfp_exec_t *x, size_t *saved_bytes, size_t *scratch_bytes, sfp_error_t *err)
{
    *saved_bytes = *scratch_bytes = 0;
    return exec_need_dtype(x, 0, SFP_DT_FLOAT, err);
}

const sfp_op_def_t op_defs_pad_slice[] = {
    {"Pad", 1, 4, 1, 1, pad_attrs, pad_check, pad_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = pad_forward_node, .prepare = movement_prepare, .backward = pad_backward_node,
      .prepare_backward = pad_prepare_backward},
     .id = SFP_OP_PAD, .chan = SFP_CHAN_PAD, .shrink = SFP_SHRINK_PAD},
    {"Slice", 1, 5, 1, 1, slice_attrs, NULL, slice_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = slice_forward_node, .prepare = movement_prepare, .backward = slice_backward_node,
      .prepare_backward = slice_prepare_backward},
     .id = SFP_OP_SLICE, .chan = SFP_CHAN_SLICE, .shrink = SFP_SHRINK_SLICE},
    {0},
};
