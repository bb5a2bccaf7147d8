/* ReduceMean: the mean over a set of axes (x.mean([2, 3]) heads of
 * ShuffleNetV2 and MNASNet), axes as an attribute before opset 18 and as an
 * input from 18, keepdims 0 or 1. Runs of dims alike (reduced or kept) are
 * merged first, so a reduction over one block of axes is (outer, len,
 * inner) with double sums per output; other patterns walk every element.
 * Backward: each input element gets dy / len of its output. float32. */
#include <string.h>

#include "ops/ops.h"

static const char *const reduce_attrs[] = {"axes", "keepdims", "noop_with_empty_axes", NULL};

/* Where axes live before and from opset 18. */
static int reduce_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    if (c->opset < 18 && c->node->n_inputs > 1)
        return op_errorf(c, err, SFP_EBADMODEL, "axes is an attribute before opset 18, not an input");
    if (c->opset >= 18 && node_attr(c->node, "axes"))
        return op_errorf(c, err, SFP_EBADMODEL, "axes is an input from opset 18, not an attribute");
    return 0;
}

/* reduced[k] for every axis k of a rank `rank` input from the n axes
 * given; none reduce all axes, or none with noop_with_empty_axes. */
static int reduce_mask_of(const sfp_op_ctx_t *c, const int64_t *given, int n, int rank, bool *reduced,
                          sfp_error_t *err)
{
    bool all = n == 0 && !node_attr_int(c->node, "noop_with_empty_axes", 0);
    for (int k = 0; k < rank; k++) reduced[k] = all;
    for (int i = 0; i < n; i++) {
        int a = 0, rc = op_axis(c, given[i], rank, &a, err);
        if (rc < 0) return rc;
        if (reduced[a] && !all) return op_errorf(c, err, SFP_EBADMODEL, "axis %d listed twice", a);
        reduced[a] = true;
    }
    return 0;
}

/* The mask from the graph: the axes attribute, else the constant axes
 * input (reduce_check has made sure the form fits the opset). */
static int reduce_mask(const sfp_op_ctx_t *c, int rank, bool *reduced, sfp_error_t *err)
{
    int64_t given[SFP_MAX_DIMS];
    int n = 0, rc;
    const int64_t *p = NULL;
    size_t count = node_attr_ints(c->node, "axes", &p);
    if (count > SFP_MAX_DIMS) return op_errorf(c, err, SFP_EBADMODEL, "more axes than dims");
    if (count) {
        memcpy(given, p, sizeof(int64_t) * count);
        n = (int)count;
    } else if (c->node->n_inputs > 1 && c->node->inputs[1] >= 0 &&
               (rc = op_const_ints(c, 1, given, SFP_MAX_DIMS, &n, err)) < 0) {
        return rc;
    }
    return reduce_mask_of(c, given, n, rank, reduced, err);
}

int op_reduce_axes(const sfp_graph_t *g, const sfp_node_t *n, bool *reduced, bool *keepdims, sfp_error_t *err)
{
    sfp_op_ctx_t c = {NULL, (sfp_graph_t *)g, n, 0};
    const sfp_value_t *x = n->n_inputs > 0 && n->inputs[0] >= 0 ? &g->values[n->inputs[0]] : NULL;
    if (!x || x->ndim < 0) return op_errorf(&c, err, SFP_EBADMODEL, "input shape unknown");
    *keepdims = node_attr_int(n, "keepdims", 1) != 0;
    return reduce_mask(&c, x->ndim, reduced, err);
}

static int reduce_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    bool reduced[SFP_MAX_DIMS];
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    if ((rc = reduce_mask(c, x->ndim, reduced, err)) < 0) return rc;
    const bool keep = node_attr_int(c->node, "keepdims", 1) != 0;
    int64_t dims[SFP_MAX_DIMS];
    int nd = 0;
    for (int k = 0; k < x->ndim; k++) {
        if (!reduced[k]) dims[nd++] = x->dims[k];
        else if (keep) dims[nd++] = 1;
    }
    return op_set_out(c, 0, x->dtype, nd, dims, x->batch0 && x->ndim > 0 && !reduced[0], err);
}

static int64_t reduce_work(const sfp_graph_t *g, const sfp_node_t *n)
{
    const sfp_value_t *x = &g->values[n->inputs[0]];
    return x->ndim >= 0 ? op_numel(x) : 0;
}

/* ---- runtime ---- */
/* Input dims with runs of alike dims merged: dims[k] is reduced when red[k]. */
typedef struct reduce_geom {
    int ndim;
    int64_t dims[SFP_MAX_DIMS];
    bool red[SFP_MAX_DIMS];
    int64_t len;                 /* elements averaged per output */
} reduce_geom_t;

static int reduce_geometry(const sfp_exec_t *x, reduce_geom_t *r, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0];
    bool reduced[SFP_MAX_DIMS];
    sfp_op_ctx_t c = exec_ctx(x);
    int rc;
    if (!node_attr(x->node, "axes") && x->node->n_inputs > 1 && x->in[1]) {
        /* axes from the input's data */
        int64_t given[SFP_MAX_DIMS];
        int n = 0;
        if ((rc = exec_ints(x, 1, given, SFP_MAX_DIMS, &n, err)) < 0) return rc;
        if ((rc = reduce_mask_of(&c, given, n, xs->ndim, reduced, err)) < 0) return rc;
    } else if ((rc = reduce_mask(&c, xs->ndim, reduced, err)) < 0) {
        return rc;
    }
    memset(r, 0, sizeof *r);
    r->len = 1;
    for (int k = 0; k < xs->ndim; k++) {
        if (reduced[k]) r->len *= xs->dims[k];
        if (xs->dims[k] == 1) continue; /* a dim of 1 merges with either kind */
        if (r->ndim > 0 && r->red[r->ndim - 1] == reduced[k]) {
            r->dims[r->ndim - 1] *= xs->dims[k];
        } else {
            r->dims[r->ndim] = xs->dims[k];
            r->red[r->ndim++] = reduced[k];
        }
    }
    return 0;
}

/* One block of reduced dims (or none): x is (outer, len, inner). */
static bool reduce_is_block(const reduce_geom_t *r, int64_t *outer, int64_t *inner)
{
    int first = -1, blocks = 0;
    for (int k = 0; k < r->ndim; k++)
        if (r->red[k]) {
            blocks++;
            if (first < 0) first = k;
        }
    if (blocks > 1) return false;
    *outer = 1;
    *inner = 1;
    for (int k = 0; k < r->ndim; k++) {
        if (first < 0 || k < first) *outer *= r->dims[k];
        else if (k > first) *inner *= r->dims[k];
    }
    return true;
}

typedef struct reduce_job {
    int64_t len, inner;
    const float *x, *dy;
    float *y, *dx;
} reduce_job_t;

/* outputs [o0, o1) of (outer, inner), each the mean over len */
static void reduce_mean_range(void *ctx, int64_t o0, int64_t o1)
{
    const reduce_job_t *j = ctx;
    const int64_t len = j->len, inner = j->inner;
    for (int64_t o = o0; o < o1; o++) {
        const float *x = j->x + (o / inner) * len * inner + o % inner;
        double sum = 0.0;
        for (int64_t k = 0; k < len; k++) sum += (double)x[k * inner];
        j->y[o] = (float)(sum / (double)len);
    }
}

static void reduce_mean_bwd_range(void *ctx, int64_t o0, int64_t o1)
{
    const reduce_job_t *j = ctx;
    const int64_t len = j->len, inner = j->inner;
    const float scale = 1.0f / (float)len;
    for (int64_t o = o0; o < o1; o++) {
        float *dx = j->dx + (o / inner) * len * inner + o % inner;
        const float g = j->dy[o] * scale;
        for (int64_t k = 0; k < len; k++) dx[k * inner] += g;
    }
}

/* Output index of input element i (merged dims): the kept coordinates. */
static int64_t reduce_out_index(const reduce_geom_t *r, int64_t i)
{
    int64_t o = 0, stride = 1;
    for (int k = r->ndim - 1; k >= 0; k--) {
        int64_t coord = i % r->dims[k];
        i /= r->dims[k];
        if (!r->red[k]) {
            o += coord * stride;
            stride *= r->dims[k];
        }
    }
    return o;
}

static int reduce_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    reduce_geom_t r;
    int64_t outer = 1, inner = 1;
    int rc = exec_need_dtype(x, 0, SFP_DT_FLOAT, err);
    if (rc == 0) rc = reduce_geometry(x, &r, err);
    if (rc < 0) return rc;
    /* the general walk's sums */
    *scratch_bytes = reduce_is_block(&r, &outer, &inner) ? 0 : (size_t)shape_numel(x->out_shape[0]) * sizeof(double);
    return 0;
}

/* x (in dims) -> y (kept dims): y = sum / len */
static int reduce_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    reduce_geom_t r;
    int64_t outer = 1, inner = 1;
    int rc = reduce_geometry(x, &r, err);
    if (rc < 0) return rc;
    const int64_t n_out = shape_numel(x->out_shape[0]), n_in = shape_numel(x->in_shape[0]);
    if (reduce_is_block(&r, &outer, &inner)) {
        reduce_job_t j = {r.len, inner, x->in[0], NULL, x->out[0], NULL};
        sfp_threads_for(x->threads, outer * inner, r.len >= 4096 ? 1 : 4096 / (r.len ? r.len : 1), reduce_mean_range,
                        &j);
        return 0;
    }
    double *sum = x->scratch;
    const float *in = x->in[0];
    float *y = x->out[0];
    memset(sum, 0, sizeof(double) * (size_t)n_out);
    for (int64_t i = 0; i < n_in; i++) sum[reduce_out_index(&r, i)] += (double)in[i];
    for (int64_t o = 0; o < n_out; o++) y[o] = (float)(sum[o] / (double)r.len);
    return 0;
}

/* dy (kept dims) -> dx (in dims) += dy / len */
static int reduce_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    reduce_geom_t r;
    int64_t outer = 1, inner = 1;
    int rc = reduce_geometry(x, &r, err);
    if (rc < 0 || !x->din[0]) return rc;
    if (reduce_is_block(&r, &outer, &inner)) {
        reduce_job_t j = {r.len, inner, NULL, x->dout[0], NULL, x->din[0]};
        sfp_threads_for(x->threads, outer * inner, r.len >= 4096 ? 1 : 4096 / (r.len ? r.len : 1),
                        reduce_mean_bwd_range, &j);
        return 0;
    }
    const float *dy = x->dout[0];
    float *dx = x->din[0];
    const float scale = 1.0f / (float)r.len;
    const int64_t n_in = shape_numel(x->in_shape[0]);
    for (int64_t i = 0; i < n_in; i++) dx[i] += dy[reduce_out_index(&r, i)] * scale;
    return 0;
}

static int reduce_prepare_backward(const sfp_exec_t *x, size_t *saved_bytes, size_t *scratch_bytes, sfp_error_t *err)
{
    *saved_bytes = *scratch_bytes = 0;
    return exec_need_dtype(x, 0, SFP_DT_FLOAT, err);
}

/* Channels follow when axis 1 is not reduced (SFP_CHAN_REDUCE asks
 * op_reduce_axes); not zero-keeping by flag, since that is a channel-wise
 * rule's promise. */
const sfp_op_def_t op_defs_reduce[] = {
    {"ReduceMean", 1, 2, 1, 1, reduce_attrs, reduce_check, reduce_infer, reduce_work, SFP_WORK_ELEMENTWISE, 0,
     {.forward = reduce_forward_node, .prepare = reduce_prepare, .backward = reduce_backward_node,
      .prepare_backward = reduce_prepare_backward},
     .id = SFP_OP_REDUCE_MEAN, .chan = SFP_CHAN_REDUCE},
    {0},
};
