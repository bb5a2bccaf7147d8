/* Sliding-window geometry (Conv, MaxPool, AveragePool): ONNX's pads are
 * [x1_begin, x2_begin, ..., x1_end, x2_end]; auto_pad SAME_* pads so that
 * out = ceil(in / stride), the odd pixel at the end (UPPER) or start (LOWER). */
#include <string.h>

#include "ops/ops.h"

int op_check_auto_pad(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    const char *ap = node_attr_string(c->node, "auto_pad", "NOTSET");
    if (strcmp(ap, "NOTSET") && strcmp(ap, "SAME_UPPER") && strcmp(ap, "SAME_LOWER") && strcmp(ap, "VALID"))
        return op_errorf(c, err, SFP_EBADMODEL, "auto_pad '%s' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID", ap);
    return 0;
}

static int read_list(const sfp_op_ctx_t *c, const char *name, int count, int64_t dflt, int64_t lo, int64_t *out,
                     sfp_error_t *err)
{
    const int64_t *v = NULL;
    size_t n = node_attr_ints(c->node, name, &v);
    if (n == 0) {
        for (int k = 0; k < count; k++) out[k] = dflt;
        return 0;
    }
    if ((int)n != count)
        return op_errorf(c, err, SFP_EBADMODEL, "attribute %s has %zu values, expected %d", name, n, count);
    for (int k = 0; k < count; k++) {
        if (v[k] < lo || v[k] > ((int64_t)1 << 31))
            return op_errorf(c, err, SFP_EBADMODEL, "attribute %s value %lld out of range", name, (long long)v[k]);
        out[k] = v[k];
    }
    return 0;
}

int op_window(const sfp_op_ctx_t *c, const int64_t *in_spatial, int n_spatial, const int64_t *kernel,
              bool ceil_mode, sfp_window_t *w, sfp_error_t *err)
{
    int rc;
    int64_t pads[2 * SFP_MAX_SPATIAL];
    if (n_spatial < 1 || n_spatial > SFP_MAX_SPATIAL)
        return op_errorf(c, err, SFP_EUNSUPPORTED, "%d spatial dimensions (1 to %d supported)", n_spatial, SFP_MAX_SPATIAL);
    memset(w, 0, sizeof *w);
    w->n_spatial = n_spatial;
    if (kernel) {
        memcpy(w->kernel, kernel, sizeof(int64_t) * (size_t)n_spatial);
    } else {
        const int64_t *ks = NULL;
        if ((int)node_attr_ints(c->node, "kernel_shape", &ks) != n_spatial)
            return op_errorf(c, err, SFP_EBADMODEL, "kernel_shape must list %d sizes", n_spatial);
        if ((rc = read_list(c, "kernel_shape", n_spatial, 1, 1, w->kernel, err)) < 0) return rc;
    }
    if ((rc = read_list(c, "strides", n_spatial, 1, 1, w->stride, err)) < 0) return rc;
    if ((rc = read_list(c, "dilations", n_spatial, 1, 1, w->dilation, err)) < 0) return rc;
    if ((rc = read_list(c, "pads", 2 * n_spatial, 0, 0, pads, err)) < 0) return rc;
    if ((rc = op_check_auto_pad(c, err)) < 0) return rc;
    const char *ap = node_attr_string(c->node, "auto_pad", "NOTSET");
    for (int k = 0; k < n_spatial; k++) {
        int64_t in = in_spatial[k];
        int64_t span = (w->kernel[k] - 1) * w->dilation[k] + 1;
        w->in[k] = in;
        if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            int64_t out = (in + w->stride[k] - 1) / w->stride[k];
            int64_t total = (out - 1) * w->stride[k] + span - in;
            if (total < 0) total = 0;
            int64_t small = total / 2;
            w->pad_begin[k] = !strcmp(ap, "SAME_UPPER") ? small : total - small;
            w->pad_end[k] = total - w->pad_begin[k];
            w->out[k] = out;
        } else {
            if (!strcmp(ap, "VALID")) {
                w->pad_begin[k] = w->pad_end[k] = 0;
            } else {
                w->pad_begin[k] = pads[k];
                w->pad_end[k] = pads[k + n_spatial];
            }
            int64_t room = in + w->pad_begin[k] + w->pad_end[k] - span;
            if (room < 0)
                return op_errorf(c, err, SFP_EBADMODEL, "window of %lld does not fit spatial size %lld (with pads)",
                                 (long long)span, (long long)(in + w->pad_begin[k] + w->pad_end[k]));
            int64_t out = ceil_mode ? (room + w->stride[k] - 1) / w->stride[k] + 1 : room / w->stride[k] + 1;
            /* ceil mode: the last window must start inside the input or its begin pad */
            if (ceil_mode && (out - 1) * w->stride[k] >= in + w->pad_begin[k]) out--;
            w->out[k] = out;
        }
    }
    return 0;
}
