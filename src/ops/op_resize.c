/* Resize (opset 10+) and Upsample (opset 7-9): output size floor(in *
 * scale) per axis from constant scales, or the constant sizes. The forward
 * runs mode nearest (every coordinate transformation but
 * tf_crop_and_resize; Upsample and opset-10 Resize only at integer scales);
 * linear and cubic are shape-only. Channels pass through when the N and C
 * scales are 1. */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

static const char *const resize_attrs[] = {"mode", "coordinate_transformation_mode", "cubic_coeff_a", "exclude_outside",
                                           "extrapolation_value", "nearest_mode", NULL};
/* .chan is the usual rule; resize_chan keeps both sides whole where N or C
 * are scaled or sizes are given. */
static const char *const upsample_attrs[] = {"mode", "scales", NULL};

/* What one node asks: per-axis scales (the ratio out / in when sizes are
 * given) and the output size. */
typedef struct resize_geom {
    int ndim;
    double scale[SFP_MAX_DIMS];
    int64_t out[SFP_MAX_DIMS];
    bool from_sizes;
} resize_geom_t;

static bool is_upsample(const sfp_node_t *n)
{
    return op_is(n, SFP_OP_UPSAMPLE);
}

/* Index of the scales input (-1: an attribute, Upsample-7) and of sizes (-1: none). */
static void resize_inputs(const sfp_node_t *n, int64_t opset, int *scales, int *sizes)
{
    bool attr = is_upsample(n) && opset < 9;
    *scales = attr ? -1 : (is_upsample(n) || opset < 11) ? 1 : 2;
    *sizes = (!is_upsample(n) && opset >= 11) ? 3 : -1;
}

static int resize_geometry(const sfp_graph_t *g, const sfp_node_t *n, int64_t opset, resize_geom_t *r,
                           sfp_error_t *err)
{
    sfp_op_ctx_t c = {NULL, (sfp_graph_t *)g, n, opset};
    const sfp_value_t *x = &g->values[n->inputs[0]];
    int si, zi;
    resize_inputs(n, opset, &si, &zi);
    memset(r, 0, sizeof *r);
    r->ndim = x->ndim;
    const sfp_tensor_t *scales = si >= 0 && si < n->n_inputs && n->inputs[si] >= 0 ? graph_const(g, n->inputs[si]) : NULL;
    const sfp_tensor_t *sizes = zi >= 0 && zi < n->n_inputs && n->inputs[zi] >= 0 ? graph_const(g, n->inputs[zi]) : NULL;
    if (scales && sfp_tensor_numel(scales) == 0) scales = NULL;
    if (sizes && sfp_tensor_numel(sizes) == 0) sizes = NULL;
    const sfp_attr_t *a = si < 0 ? node_attr(n, "scales") : NULL;
    if (a && a->type != SFP_ATTR_FLOATS) return op_errorf(&c, err, SFP_EBADMODEL, "attribute scales must be floats");
    if (scales || a) {
        int64_t count = a ? (int64_t)a->n : sfp_tensor_numel(scales);
        if (count != x->ndim)
            return op_errorf(&c, err, SFP_EBADMODEL, "scales lists %lld values for rank %d", (long long)count, x->ndim);
        for (int k = 0; k < x->ndim; k++) {
            double s = a ? (double)a->floats[k] : sfp_tensor_get_double(scales, k);
            if (!(s > 0.0) || s > 1e6) return op_errorf(&c, err, SFP_EBADMODEL, "scale %g on axis %d", s, k);
            r->scale[k] = s;
            r->out[k] = (int64_t)floor((double)x->dims[k] * s);
        }
        return 0;
    }
    if (!sizes)
        return op_errorf(&c, err, SFP_EUNSUPPORTED, "scales or sizes must be given as constants");
    if (sizes->dtype != SFP_DT_INT64 || sfp_tensor_numel(sizes) != x->ndim)
        return op_errorf(&c, err, SFP_EBADMODEL, "sizes must list %d int64 values", x->ndim);
    r->from_sizes = true;
    for (int k = 0; k < x->ndim; k++) {
        r->out[k] = sfp_tensor_get_int(sizes, k);
        if (r->out[k] < 0 || x->dims[k] == 0) return op_errorf(&c, err, SFP_EBADMODEL, "size on axis %d", k);
        r->scale[k] = (double)r->out[k] / (double)x->dims[k];
    }
    return 0;
}

static int resize_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    const char *mode = node_attr_string(c->node, "mode", "nearest");
    if (strcmp(mode, "nearest") && strcmp(mode, "linear") && strcmp(mode, "cubic") &&
        !(is_upsample(c->node) && !strcmp(mode, "bilinear")))
        return op_errorf(c, err, SFP_EBADMODEL, "mode '%s' is not nearest, linear or cubic", mode);
    if (!strcmp(node_attr_string(c->node, "coordinate_transformation_mode", ""), "tf_crop_and_resize"))
        return op_errorf(c, err, SFP_EUNSUPPORTED, "coordinate_transformation_mode tf_crop_and_resize is not supported");
    return 0;
}

static int resize_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 1, SFP_MAX_DIMS, err)) < 0) return rc;
    resize_geom_t r;
    if ((rc = resize_geometry(c->g, c->node, c->opset, &r, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    return op_set_out(c, 0, x->dtype, x->ndim, r.out, x->batch0 && r.out[0] == x->dims[0], err);
}

/* Channels pass when N and C keep their sizes by scales of 1; sizes spell
 * the channel count out, so they keep both sides whole. */
static sfp_chan_rule_t resize_chan(const sfp_graph_t *g, const sfp_node_t *n)
{
    const sfp_value_t *x = &g->values[n->inputs[0]];
    resize_geom_t r;
    sfp_error_t err = {0};
    /* The geometry asks the opset only for which inputs hold scales and
     * sizes, which the input count tells. */
    int64_t opset = is_upsample(n) ? (n->n_inputs >= 2 ? 9 : 7) : (n->n_inputs >= 3 ? 11 : 10);
    if (x->ndim < 2 || resize_geometry(g, n, opset, &r, &err) < 0 || r.from_sizes) return SFP_CHAN_UNKNOWN;
    return r.scale[0] == 1.0 && r.scale[1] == 1.0 ? SFP_CHAN_SAME : SFP_CHAN_UNKNOWN;
}

/* Nearest and linear interpolation of an all-zero channel is zero. */
static bool resize_keeps_zero(const sfp_graph_t *g, const sfp_node_t *n)
{
    (void)g;
    const char *mode = node_attr_string(n, "mode", "nearest");
    return !strcmp(mode, "nearest") || !strcmp(mode, "linear") || !strcmp(mode, "bilinear");
}

/* ---- forward: nearest ---- */
static int resize_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    int rc;
    if ((rc = exec_need_dtype(x, 0, SFP_DT_FLOAT, err)) < 0) return rc;
    if (strcmp(node_attr_string(x->node, "mode", "nearest"), "nearest"))
        return exec_errorf(x, err, SFP_EUNSUPPORTED, "the runtime computes mode nearest only");
    const char *ct = node_attr_string(x->node, "coordinate_transformation_mode", "half_pixel");
    if (strcmp(ct, "half_pixel") && strcmp(ct, "pytorch_half_pixel") && strcmp(ct, "align_corners") &&
        strcmp(ct, "asymmetric"))
        return exec_errorf(x, err, SFP_EUNSUPPORTED, "coordinate_transformation_mode %s is not computed", ct);
    const char *nm = node_attr_string(x->node, "nearest_mode", "round_prefer_floor");
    if (strcmp(nm, "round_prefer_floor") && strcmp(nm, "round_prefer_ceil") && strcmp(nm, "floor") && strcmp(nm, "ceil"))
        return exec_errorf(x, err, SFP_EUNSUPPORTED, "nearest_mode %s is not computed", nm);
    int si, zi;
    resize_inputs(x->node, x->opset, &si, &zi);
    if (si >= 0 && (rc = exec_need_dtype(x, si, SFP_DT_FLOAT, err)) < 0) return rc;
    const sfp_shape_t *in = x->in_shape[0], *out = x->out_shape[0];
    if (is_upsample(x->node) || x->opset < 11)
        for (int k = 0; k < in->ndim; k++)
            if (in->dims[k] == 0 || out->dims[k] % in->dims[k])
                return exec_errorf(x, err, SFP_EUNSUPPORTED, "nearest at a scale that is not an integer (axis %d)", k);
    int64_t total = 0;
    for (int k = 0; k < out->ndim; k++) total += out->dims[k];
    *scratch_bytes = (size_t)total * sizeof(int64_t);
    return 0;
}

/* Input index of output index o on one axis (ONNX's coordinate transform,
 * then the nearest rounding, clamped). */
static int64_t nearest_index(int64_t o, double scale, int64_t len_in, int64_t len_out, const char *ct, const char *nm)
{
    double v;
    if (!strcmp(ct, "asymmetric")) {
        v = (double)o / scale;
    } else if (!strcmp(ct, "align_corners")) {
        v = len_out == 1 ? 0.0 : (double)o * (double)(len_in - 1) / (double)(len_out - 1);
    } else if (!strcmp(ct, "pytorch_half_pixel") && len_out == 1) {
        v = 0.0;
    } else {
        v = ((double)o + 0.5) / scale - 0.5;
    }
    double r;
    if (!strcmp(nm, "floor")) {
        r = floor(v);
    } else if (!strcmp(nm, "ceil")) {
        r = ceil(v);
    } else if (v - floor(v) == 0.5) {
        r = !strcmp(nm, "round_prefer_ceil") ? ceil(v) : floor(v);
    } else {
        r = round(v);
    }
    int64_t i = (int64_t)r;
    return i < 0 ? 0 : i >= len_in ? len_in - 1 : i;
}

static int resize_forward(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    const sfp_shape_t *in = x->in_shape[0], *out = x->out_shape[0];
    bool legacy = is_upsample(x->node) || x->opset < 11;
    const char *ct = legacy ? "asymmetric" : node_attr_string(x->node, "coordinate_transformation_mode", "half_pixel");
    const char *nm = legacy ? "floor" : node_attr_string(x->node, "nearest_mode", "round_prefer_floor");
    int si, zi;
    resize_inputs(x->node, x->opset, &si, &zi);
    const float *scales = si >= 0 && si < x->node->n_inputs && x->in[si] && shape_numel(x->in_shape[si]) > 0
                              ? x->in[si] : NULL;
    const sfp_attr_t *a = si < 0 ? node_attr(x->node, "scales") : NULL;
    int64_t *map[SFP_MAX_DIMS], stride[SFP_MAX_DIMS];
    int64_t *at = x->scratch;
    for (int k = in->ndim - 1; k >= 0; k--) stride[k] = k == in->ndim - 1 ? 1 : stride[k + 1] * in->dims[k + 1];
    for (int k = 0; k < in->ndim; k++) {
        double s = a ? (double)a->floats[k] : scales ? (double)scales[k] : (double)out->dims[k] / (double)in->dims[k];
        map[k] = at;
        for (int64_t o = 0; o < out->dims[k]; o++) at[o] = nearest_index(o, s, in->dims[k], out->dims[k], ct, nm) * stride[k];
        at += out->dims[k];
    }
    const float *src = x->in[0];
    float *dst = x->out[0];
    int64_t idx[SFP_MAX_DIMS] = {0}, total = shape_numel(out), last = out->ndim - 1;
    for (int64_t e = 0; e < total; e += out->dims[last]) {
        int64_t base = 0;
        for (int k = 0; k < last; k++) base += map[k][idx[k]];
        for (int64_t o = 0; o < out->dims[last]; o++) dst[e + o] = src[base + map[last][o]];
        for (int k = last - 1; k >= 0; k--) {
            if (++idx[k] < out->dims[k]) break;
            idx[k] = 0;
        }
    }
    return 0;
}

const sfp_op_def_t op_defs_resize[] = {
    {"Resize", 1, 4, 1, 1, resize_attrs, resize_check, resize_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0,
     {.forward = resize_forward, .prepare = resize_prepare},
     .id = SFP_OP_RESIZE, .chan = SFP_CHAN_SAME, .keeps_zero = resize_keeps_zero, .chan_of = resize_chan},
    {"Upsample", 1, 2, 1, 1, upsample_attrs, resize_check, resize_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0,
     {.forward = resize_forward, .prepare = resize_prepare},
     .id = SFP_OP_UPSAMPLE, .chan = SFP_CHAN_SAME, .keeps_zero = resize_keeps_zero, .chan_of = resize_chan},
    {0},
};
