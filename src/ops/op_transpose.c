/* Transpose: permutes axes (default: reversed). PyTorch's F.pad export
 * computes Pad's pads with Transpose on a small int64 matrix, so constant
 * inputs are folded. Backward: the inverse permutation, accumulated. */
#include <string.h>

#include "ops/ops.h"

static const char *const transpose_attrs[] = {"perm", NULL};

/* perm from the attribute, or reversed axes. */
static int read_perm(const sfp_op_ctx_t *c, int rank, int *perm, sfp_error_t *err)
{
    const int64_t *p = NULL;
    size_t n = node_attr_ints(c->node, "perm", &p);
    bool seen[SFP_MAX_DIMS] = {0};
    if (n == 0) {
        for (int k = 0; k < rank; k++) perm[k] = rank - 1 - k;
        return 0;
    }
    if ((int)n != rank) return op_errorf(c, err, SFP_EBADMODEL, "perm lists %zu axes for rank %d", n, rank);
    for (int k = 0; k < rank; k++) {
        if (p[k] < 0 || p[k] >= rank || seen[p[k]])
            return op_errorf(c, err, SFP_EBADMODEL, "perm is not a permutation of 0..%d", rank - 1);
        seen[p[k]] = true;
        perm[k] = (int)p[k];
    }
    return 0;
}

/* out[i0..in] = in[i_perm...]: walks the output in order. */
void transpose_copy(const void *src, void *dst, size_t esize, int rank, const int64_t *in_dims, const int *perm);
void transpose_copy(const void *src, void *dst, size_t esize, int rank, const int64_t *in_dims, const int *perm)
{
    int64_t in_stride[SFP_MAX_DIMS], out_dims[SFP_MAX_DIMS], idx[SFP_MAX_DIMS] = {0}, total = 1, step = 1;
    for (int k = rank - 1; k >= 0; k--) {
        in_stride[k] = step;
        step *= in_dims[k];
    }
    for (int k = 0; k < rank; k++) {
        out_dims[k] = in_dims[perm[k]];
        total *= out_dims[k];
    }
    for (int64_t o = 0; o < total; o++) {
        int64_t at = 0;
        for (int k = 0; k < rank; k++) at += idx[k] * in_stride[perm[k]];
        memcpy((char *)dst + (size_t)o * esize, (const char *)src + (size_t)at * esize, esize);
        for (int k = rank - 1; k >= 0; k--) {
            if (++idx[k] < out_dims[k]) break;
            idx[k] = 0;
        }
    }
}

static int transpose_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, perm[SFP_MAX_DIMS];
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    if ((rc = read_perm(c, x->ndim, perm, err)) < 0) return rc;
    int64_t dims[SFP_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) dims[k] = x->dims[perm[k]];
    bool batch0 = x->batch0 && x->ndim > 0 && perm[0] == 0;
    if ((rc = op_set_out(c, 0, x->dtype, x->ndim, dims, batch0, err)) < 0) return rc;
    const sfp_tensor_t *k = graph_const(c->g, c->node->inputs[0]);
    if (!k || sfp_dtype_size(k->dtype) == 0) return 0;
    sfp_tensor_t *t = NULL;
    if ((rc = sfp_tensor_create(NULL, k->dtype, k->ndim, dims, &t, err)) < 0) return rc;
    transpose_copy(k->data, t->data, sfp_dtype_size(k->dtype), k->ndim, k->dims, perm);
    return op_fold(c, 0, t, batch0, err);
}

static int transpose_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    *scratch_bytes = 0;
    return exec_need_sized(x, 0, err);
}

static int transpose_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    int perm[SFP_MAX_DIMS];
    const sfp_shape_t *xs = x->in_shape[0];
    sfp_op_ctx_t c = exec_ctx(x);
    int rc = read_perm(&c, xs->ndim, perm, err);
    if (rc == 0) transpose_copy(x->in[0], x->out[0], sfp_dtype_size(xs->dtype), xs->ndim, xs->dims, perm);
    return rc;
}

/* ---- backward ---- */
/* y = transpose(x, perm), x (x_dims): walks dy in order, dx += at the
 * element each came from */
void transpose_backward(int rank, const int64_t *x_dims, const int *perm, const float *dy, float *dx)
{
    int64_t in_stride[SFP_MAX_DIMS], out_dims[SFP_MAX_DIMS], idx[SFP_MAX_DIMS] = {0}, total = 1, step = 1;
    for (int k = rank - 1; k >= 0; k--) {
        in_stride[k] = step;
        step *= x_dims[k];
    }
    for (int k = 0; k < rank; k++) {
        out_dims[k] = x_dims[perm[k]];
        total *= out_dims[k];
    }
    for (int64_t o = 0; o < total; o++) {
        int64_t at = 0;
        for (int k = 0; k < rank; k++) at += idx[k] * in_stride[perm[k]];
        dx[at] += dy[o];
        for (int k = rank - 1; k >= 0; k--) {
            if (++idx[k] < out_dims[k]) break;
            idx[k] = 0;
        }
    }
}

static int transpose_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    int perm[SFP_MAX_DIMS];
    const sfp_shape_t *xs = x->in_shape[0];
    sfp_op_ctx_t c = exec_ctx(x);
    int rc = read_perm(&c, xs->ndim, perm, err);
    if (rc == 0 && x->din[0]) transpose_backward(xs->ndim, xs->dims, perm, x->dout[0], x->din[0]);
    return rc;
}

const sfp_op_def_t op_defs_transpose[] = {
    {"Transpose", 1, 1, 1, 1, transpose_attrs, NULL, transpose_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = transpose_forward_node, .prepare = transpose_prepare, .backward = transpose_backward_node},
     .id = SFP_OP_TRANSPOSE, .chan = SFP_CHAN_UNKNOWN},
    {0},
};
