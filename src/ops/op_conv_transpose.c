/* ConvTranspose: X (N, C, D...), W (C, M/group, k...), optional B (M) ->
 * Y (N, M, O...). Shape inference and work only: the runtime has no forward
 * (plans refuse it, naming the node), so report and compress without
 * fine-tuning handle models that hold one. Its channels are not followed:
 * pruning leaves the channels on both sides whole. */
#include <string.h>

#include "ops/ops.h"

static const char *const convt_attrs[] = {"auto_pad", "dilations", "group", "kernel_shape", "output_padding",
                                          "output_shape", "pads", "strides", NULL};

/* Attribute `name` as count values (dflt when absent), each >= lo. */
static int convt_list(const sfp_op_ctx_t *c, const char *name, int count, int64_t dflt, int64_t lo, int64_t *out,
                      sfp_error_t *err)
{
    const int64_t *v = NULL;
    size_t n = node_attr_ints(c->node, name, &v);
    if (n && n != (size_t)count) /* before reading: a short list is not read past its end */
        return op_errorf(c, err, SFP_EBADMODEL, "attribute %s has %zu values, expected %d", name, n, count);
    for (int k = 0; k < count; k++) out[k] = n ? v[k] : dflt;
    for (int k = 0; k < count; k++)
        if (out[k] < lo || out[k] > OP_MAX_DIM)
            return op_errorf(c, err, SFP_EBADMODEL, "attribute %s value %lld out of range", name, (long long)out[k]);
    return 0;
}

/* Output size per ONNX: stride * (in - 1) + output_padding + (k - 1) *
 * dilation + 1 - pads, or output_shape, or in * stride for SAME_*. */
static int convt_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 3, 2 + SFP_MAX_SPATIAL, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0), *w = op_in(c, 1), *b = op_in(c, 2);
    if ((rc = op_need_rank(c, 1, x->ndim, x->ndim, err)) < 0) return rc;
    if ((rc = op_check_auto_pad(c, err)) < 0) return rc;
    int64_t group = node_attr_int(c->node, "group", 1), cin = x->dims[1];
    if (group < 1 || cin % group != 0 || w->dims[0] != cin)
        return op_errorf(c, err, SFP_EBADMODEL, "weight '%s' has %lld input channels, input '%s' %lld (group %lld)",
                         sfp_q(w->name), (long long)w->dims[0], sfp_q(x->name), (long long)cin, (long long)group);
    int64_t m = w->dims[1] * group;
    if (x->dtype != w->dtype || (b && b->dtype != x->dtype))
        return op_errorf(c, err, SFP_EBADMODEL, "input, weight and bias types differ");
    if (b && (b->ndim != 1 || b->dims[0] != m))
        return op_errorf(c, err, SFP_EBADMODEL, "bias '%s' must have shape [%lld]", sfp_q(b->name), (long long)m);
    int ns = x->ndim - 2;
    int64_t kernel[SFP_MAX_SPATIAL], stride[SFP_MAX_SPATIAL], dil[SFP_MAX_SPATIAL], opad[SFP_MAX_SPATIAL];
    int64_t pads[2 * SFP_MAX_SPATIAL];
    if ((rc = convt_list(c, "strides", ns, 1, 1, stride, err)) < 0 ||
        (rc = convt_list(c, "dilations", ns, 1, 1, dil, err)) < 0 ||
        (rc = convt_list(c, "output_padding", ns, 0, 0, opad, err)) < 0 ||
        (rc = convt_list(c, "pads", 2 * ns, 0, 0, pads, err)) < 0)
        return rc;
    const int64_t *ks = NULL;
    size_t nks = node_attr_ints(c->node, "kernel_shape", &ks);
    if (nks && (int)nks != ns)
        return op_errorf(c, err, SFP_EBADMODEL, "kernel_shape lists %zu sizes for %d spatial dims", nks, ns);
    for (int k = 0; k < ns; k++) {
        kernel[k] = w->dims[2 + k];
        if (nks && ks[k] != kernel[k])
            return op_errorf(c, err, SFP_EBADMODEL, "kernel_shape %lld differs from weight '%s' (%lld)",
                             (long long)ks[k], sfp_q(w->name), (long long)kernel[k]);
    }
    const int64_t *os = NULL;
    size_t nos = node_attr_ints(c->node, "output_shape", &os);
    if (nos && (int)nos != ns && (int)nos != ns + 2)
        return op_errorf(c, err, SFP_EBADMODEL, "output_shape lists %zu sizes for %d spatial dims", nos, ns);
    const char *ap = node_attr_string(c->node, "auto_pad", "NOTSET");
    bool same = !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER"), valid = !strcmp(ap, "VALID");
    int64_t dims[SFP_MAX_DIMS] = {x->dims[0], m};
    for (int k = 0; k < ns; k++) {
        int64_t in = x->dims[2 + k], span = (kernel[k] - 1) * dil[k] + 1, out;
        if (nos) {
            out = os[(int)nos - ns + k];
        } else if (same) {
            out = in * stride[k];
        } else {
            int64_t pad = valid ? 0 : pads[k] + pads[k + ns];
            out = stride[k] * (in - 1) + opad[k] + span - pad;
        }
        if (out < 1)
            return op_errorf(c, err, SFP_EBADMODEL, "spatial output size %d would be %lld", k, (long long)out);
        dims[2 + k] = out;
    }
    return op_set_out(c, 0, x->dtype, x->ndim, dims, x->batch0, err);
}

/* Every input element is multiplied into M/group outputs per kernel tap. */
static int64_t convt_work(const sfp_graph_t *g, const sfp_node_t *n)
{
    const sfp_value_t *x = &g->values[n->inputs[0]], *w = &g->values[n->inputs[1]];
    if (x->ndim < 0 || w->ndim < 2) return 0;
    int64_t per = w->dims[1];
    for (int k = 2; k < w->ndim; k++) per *= w->dims[k];
    return op_numel(x) * per;
}

const sfp_op_def_t op_defs_conv_transpose[] = {
    {"ConvTranspose", 2, 3, 1, 1, convt_attrs, NULL, convt_infer, convt_work, SFP_WORK_DENSE, 0x6, {0},
     .id = SFP_OP_CONV_TRANSPOSE, .chan = SFP_CHAN_UNKNOWN},
    {0},
};
