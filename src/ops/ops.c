/* Operator registry and the helpers every op file uses. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "util/threads.h"
#include "util/util.h"

static const sfp_op_def_t *const families[] = {
    op_defs_conv, op_defs_norm, op_defs_elementwise, op_defs_pool,
    op_defs_shape, op_defs_pad_slice, op_defs_gemm, op_defs_transpose, op_defs_activation,
    op_defs_reduce, op_defs_split, op_defs_conv_transpose, op_defs_resize, op_defs_layer_norm,
};

/* The ONNX name of every id, in enum order. */
static const char *const op_id_names[SFP_OP_COUNT + 1] = {
    [SFP_OP_ADD] = "Add", [SFP_OP_AVERAGE_POOL] = "AveragePool", [SFP_OP_BATCH_NORMALIZATION] = "BatchNormalization",
    [SFP_OP_CAST] = "Cast", [SFP_OP_CLIP] = "Clip", [SFP_OP_CONCAT] = "Concat", [SFP_OP_CONSTANT] = "Constant",
    [SFP_OP_CONSTANT_OF_SHAPE] = "ConstantOfShape", [SFP_OP_CONV] = "Conv", [SFP_OP_CONV_TRANSPOSE] = "ConvTranspose", [SFP_OP_DIV] = "Div",
    [SFP_OP_DROPOUT] = "Dropout", [SFP_OP_FLATTEN] = "Flatten", [SFP_OP_GATHER] = "Gather", [SFP_OP_GEMM] = "Gemm",
    [SFP_OP_GLOBAL_AVERAGE_POOL] = "GlobalAveragePool", [SFP_OP_GLOBAL_MAX_POOL] = "GlobalMaxPool",
    [SFP_OP_HARD_SIGMOID] = "HardSigmoid", [SFP_OP_HARD_SWISH] = "HardSwish", [SFP_OP_IDENTITY] = "Identity",
    [SFP_OP_LAYER_NORMALIZATION] = "LayerNormalization", [SFP_OP_LEAKY_RELU] = "LeakyRelu", [SFP_OP_MATMUL] = "MatMul", [SFP_OP_MAX_POOL] = "MaxPool", [SFP_OP_MUL] = "Mul",
    [SFP_OP_PAD] = "Pad", [SFP_OP_REDUCE_MEAN] = "ReduceMean", [SFP_OP_RELU] = "Relu", [SFP_OP_RESHAPE] = "Reshape", [SFP_OP_RESIZE] = "Resize", [SFP_OP_SHAPE] = "Shape",
    [SFP_OP_SIGMOID] = "Sigmoid", [SFP_OP_SLICE] = "Slice", [SFP_OP_SOFTMAX] = "Softmax",
    [SFP_OP_SPLIT] = "Split", [SFP_OP_SQUEEZE] = "Squeeze",
    [SFP_OP_SUB] = "Sub", [SFP_OP_TRANSPOSE] = "Transpose", [SFP_OP_UNSQUEEZE] = "Unsqueeze", [SFP_OP_UPSAMPLE] = "Upsample",
    [SFP_OP_COUNT] = NULL,
};
_Static_assert(sizeof op_id_names / sizeof op_id_names[0] == SFP_OP_COUNT + 1, "one name per op id");

const sfp_op_def_t *op_find(const char *op_type, const char *domain)
{
    if (domain && *domain && strcmp(domain, "ai.onnx") != 0) return NULL;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const sfp_op_def_t *d = families[f]; d->op_type; d++)
            if (strcmp(d->op_type, op_type) == 0) return d;
    return NULL;
}

const sfp_op_def_t *op_of(const sfp_node_t *n)
{
    return op_find(n->op_type, n->domain);
}

bool op_is(const sfp_node_t *n, sfp_op_id_t id)
{
    const sfp_op_def_t *d = op_of(n);
    return d && d->id == id;
}

bool op_has(const sfp_node_t *n, unsigned flags)
{
    const sfp_op_def_t *d = op_of(n);
    return d && (d->flags & flags) == flags;
}

bool op_keeps_zero(const sfp_graph_t *g, const sfp_node_t *n)
{
    const sfp_op_def_t *d = op_of(n);
    return d && ((d->flags & SFP_OPF_ZERO_KEEPS) || (d->keeps_zero && d->keeps_zero(g, n)));
}

sfp_chan_rule_t op_chan(const sfp_graph_t *g, const sfp_node_t *n)
{
    const sfp_op_def_t *d = op_of(n);
    if (!d) return SFP_CHAN_UNKNOWN;
    return d->chan_of ? d->chan_of(g, n) : d->chan;
}

const sfp_op_def_t *op_by_id(sfp_op_id_t id)
{
    return (unsigned)id < SFP_OP_COUNT ? op_find(op_id_names[id], "") : NULL;
}

const char *const *op_names(void)
{
    return op_id_names;
}

const sfp_value_t *op_in(const sfp_op_ctx_t *c, int i)
{
    if (i >= c->node->n_inputs || c->node->inputs[i] < 0) return NULL;
    return &c->g->values[c->node->inputs[i]];
}

sfp_value_t *op_out(const sfp_op_ctx_t *c, int i)
{
    if (i >= c->node->n_outputs || c->node->outputs[i] < 0) return NULL;
    return &c->g->values[c->node->outputs[i]];
}

int op_errorf(const sfp_op_ctx_t *c, sfp_error_t *err, int code, const char *fmt, ...)
{
    char what[SFP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return sfp_errorf(err, code, "node '%s' (%s): %s", sfp_q(c->node->name), sfp_q(c->node->op_type), what);
}

int op_set_out(const sfp_op_ctx_t *c, int i, sfp_dtype_t dt, int ndim, const int64_t *dims, bool batch0,
               sfp_error_t *err)
{
    sfp_value_t *v = op_out(c, i);
    if (!v) return 0;
    if (ndim < 0 || ndim > SFP_MAX_DIMS)
        return op_errorf(c, err, SFP_EUNSUPPORTED, "output rank %d outside 0..%d", ndim, SFP_MAX_DIMS);
    int64_t numel = 0;
    for (int k = 0; k < ndim; k++)
        if (dims[k] < 0 || dims[k] > OP_MAX_DIM)
            return op_errorf(c, err, SFP_EBADMODEL, "output dimension %d would be %lld", k, (long long)dims[k]);
    if (sfp_shape_numel(ndim, dims, &numel, NULL) < 0 || numel > ((int64_t)1 << 40))
        return op_errorf(c, err, SFP_EBADMODEL, "output '%s' would hold an absurd number of elements", sfp_q(v->name));
    v->dtype = dt;
    v->ndim = ndim;
    for (int k = 0; k < ndim; k++) v->dims[k] = dims[k];
    v->batch0 = batch0 && ndim > 0;
    return 0;
}

int op_need_rank(const sfp_op_ctx_t *c, int i, int lo, int hi, sfp_error_t *err)
{
    const sfp_value_t *v = op_in(c, i);
    if (!v) return op_errorf(c, err, SFP_EBADMODEL, "input %d is missing", i);
    if (v->ndim < 0) return op_errorf(c, err, SFP_EBADMODEL, "input '%s' has no known shape", sfp_q(v->name));
    if (v->ndim < lo || v->ndim > hi) {
        if (lo == hi)
            return op_errorf(c, err, SFP_EBADMODEL, "input '%s' has rank %d, expected %d", sfp_q(v->name), v->ndim, lo);
        return op_errorf(c, err, SFP_EBADMODEL, "input '%s' has rank %d, expected %d to %d", sfp_q(v->name), v->ndim,
                         lo, hi);
    }
    return 0;
}

int op_const_ints(const sfp_op_ctx_t *c, int i, int64_t *out, int max, int *n, sfp_error_t *err)
{
    const sfp_value_t *v = op_in(c, i);
    if (!v) return op_errorf(c, err, SFP_EBADMODEL, "input %d is missing", i);
    const sfp_tensor_t *t = graph_const(c->g, c->node->inputs[i]);
    if (!t)
        return op_errorf(c, err, SFP_EUNSUPPORTED, "input '%s' must be known before running (a constant or a shape computation)",
                         sfp_q(v->name));
    if (t->dtype != SFP_DT_INT64 && t->dtype != SFP_DT_INT32)
        return op_errorf(c, err, SFP_EBADMODEL, "input '%s' must be int64, is %s", sfp_q(v->name), sfp_dtype_name(t->dtype));
    if (t->ndim > 1) return op_errorf(c, err, SFP_EBADMODEL, "input '%s' must be a 1-D list", sfp_q(v->name));
    int64_t count = sfp_tensor_numel(t);
    if (count > max) return op_errorf(c, err, SFP_EUNSUPPORTED, "input '%s' lists %lld values, at most %d supported",
                                      sfp_q(v->name), (long long)count, max);
    for (int64_t k = 0; k < count; k++) out[k] = sfp_tensor_get_int(t, k);
    *n = (int)count;
    return 0;
}

int op_axis(const sfp_op_ctx_t *c, int64_t axis, int rank, int *out, sfp_error_t *err)
{
    if (axis < -rank || axis >= rank)
        return op_errorf(c, err, SFP_EBADMODEL, "axis %lld out of range for rank %d", (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 0;
}

int op_broadcast(const sfp_op_ctx_t *c, const sfp_value_t *a, const sfp_value_t *b, int *ndim, int64_t *dims,
                 sfp_error_t *err)
{
    int r = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int k = 0; k < r; k++) {
        int ia = k - (r - a->ndim), ib = k - (r - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return op_errorf(c, err, SFP_EBADMODEL, "shapes of '%s' and '%s' do not broadcast (dim %d: %lld vs %lld)",
                             sfp_q(a->name), sfp_q(b->name), k, (long long)da, (long long)db);
        dims[k] = da == 1 ? db : da;
    }
    *ndim = r;
    return 0;
}

int op_fold(const sfp_op_ctx_t *c, int i, sfp_tensor_t *t, bool batch0, sfp_error_t *err)
{
    sfp_value_t *v = op_out(c, i);
    if (!v) {
        sfp_tensor_free(t);
        return 0;
    }
    int rc = op_set_out(c, i, t->dtype, t->ndim, t->dims, batch0, err);
    if (rc < 0) {
        sfp_tensor_free(t);
        return rc;
    }
    sfp_tensor_free(v->folded);
    v->folded = t;
    return 0;
}

int64_t op_numel(const sfp_value_t *v)
{
    int64_t n = 1;
    for (int k = 0; k < v->ndim; k++) n *= v->dims[k];
    return n;
}

int64_t op_work_out_elems(const sfp_graph_t *g, const sfp_node_t *n)
{
    if (n->n_outputs < 1 || n->outputs[0] < 0) return 0;
    const sfp_value_t *v = &g->values[n->outputs[0]];
    return v->ndim >= 0 ? op_numel(v) : 0;
}

/* ---- forward helpers ---- */
typedef struct fused_bwd_job {
    float *dy, *dres;
    const float *y;
    bool relu, fresh;
} fused_bwd_job_t;

/* One pass: g = relu ? (y > 0 ? dy : 0) : dy, stored back into dy, and
 * dres = g or dres += g. dy is read unconditionally (a select the compiler
 * vectorises in the fixed 16-lane blocks, no branch on the random signs). */
static void fused_bwd_range(void *ctx, int64_t i0, int64_t i1)
{
    const fused_bwd_job_t *j = ctx;
    float *restrict dy = j->dy;
    const float *restrict y = j->y;
    float *restrict dr = j->dres;
    const bool relu = j->relu, fresh = j->fresh;
    int64_t i = i0;
    for (; i + 16 <= i1; i += 16) {
        float g[16];
        for (int k = 0; k < 16; k++) {
            const float d = dy[i + k];
            g[k] = !relu || y[i + k] > 0.0f ? d : 0.0f;
            dy[i + k] = g[k];
        }
        if (dr && fresh)
            for (int k = 0; k < 16; k++) dr[i + k] = g[k];
        else if (dr)
            for (int k = 0; k < 16; k++) dr[i + k] += g[k];
    }
    for (; i < i1; i++) {
        const float d = dy[i];
        const float g = !relu || y[i] > 0.0f ? d : 0.0f;
        dy[i] = g;
        if (dr) dr[i] = fresh ? g : dr[i] + g;
    }
}

void exec_fused_backward(const sfp_exec_t *x)
{
    const sfp_fusion_t *f = x->fused;
    if (!f || !x->dout[0]) return;
    const int k = x->node->n_inputs;
    fused_bwd_job_t j = {(float *)x->dout[0], f->residual ? x->din[k] : NULL, x->out[0], f->relu,
                         (x->din_fresh >> k & 1u) != 0};
    if (!j.relu && !j.dres) return;
    sfp_threads_for(x->threads, shape_numel(x->out_shape[0]), 16384, fused_bwd_range, &j);
}

int exec_errorf(const sfp_exec_t *x, sfp_error_t *err, int code, const char *fmt, ...)
{
    char what[SFP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return sfp_errorf(err, code, "node '%s' (%s): %s", sfp_q(x->node->name), sfp_q(x->node->op_type), what);
}

sfp_op_ctx_t exec_ctx(const sfp_exec_t *x)
{
    /* The window and attribute helpers only read the node through it. */
    sfp_op_ctx_t c = {NULL, (sfp_graph_t *)x->g, x->node, x->opset};
    return c;
}

int64_t shape_prod(const sfp_shape_t *s, int from, int to)
{
    int64_t p = 1;
    for (int k = from; k < to; k++) p *= s->dims[k];
    return p;
}

int64_t shape_numel(const sfp_shape_t *s)
{
    return shape_prod(s, 0, s->ndim);
}

int exec_need_dtype(const sfp_exec_t *x, int i, sfp_dtype_t dt, sfp_error_t *err)
{
    const sfp_shape_t *s = i < x->node->n_inputs ? x->in_shape[i] : NULL;
    if (s && s->dtype != dt)
        return exec_errorf(x, err, SFP_EUNSUPPORTED, "input %d is %s; the runtime computes this op in %s only", i,
                           sfp_dtype_name(s->dtype), sfp_dtype_name(dt));
    return 0;
}

int exec_need_sized(const sfp_exec_t *x, int i, sfp_error_t *err)
{
    const sfp_shape_t *s = i < x->node->n_outputs ? x->out_shape[i] : NULL;
    if (s && sfp_dtype_size(s->dtype) == 0)
        return exec_errorf(x, err, SFP_EUNSUPPORTED, "output %d has type %s, which the runtime cannot hold", i,
                           sfp_dtype_name(s->dtype));
    return 0;
}

int exec_ints(const sfp_exec_t *x, int i, int64_t *out, int max, int *n, sfp_error_t *err)
{
    const sfp_shape_t *s = i < x->node->n_inputs ? x->in_shape[i] : NULL;
    const void *p = i < x->node->n_inputs ? x->in[i] : NULL;
    if (!s || !p) return exec_errorf(x, err, SFP_EBADMODEL, "input %d is missing", i);
    if (s->dtype != SFP_DT_INT64 && s->dtype != SFP_DT_INT32)
        return exec_errorf(x, err, SFP_EBADMODEL, "input %d must be int64, is %s", i, sfp_dtype_name(s->dtype));
    int64_t count = shape_numel(s);
    if (s->ndim > 1 || count > max)
        return exec_errorf(x, err, SFP_EUNSUPPORTED, "input %d must be a list of at most %d values", i, max);
    for (int64_t k = 0; k < count; k++) {
        if (s->dtype == SFP_DT_INT64) {
            out[k] = ((const int64_t *)p)[k];
        } else {
            out[k] = ((const int32_t *)p)[k];
        }
    }
    *n = (int)count;
    return 0;
}

int exec_copy_forward(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    const sfp_shape_t *s = x->out_shape[0];
    size_t bytes = (size_t)shape_numel(s) * sfp_dtype_size(s->dtype);
    if (bytes && x->out[0] != x->in[0]) memmove(x->out[0], x->in[0], bytes);
    return 0;
}

int exec_copy_backward(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    if (x->din[0]) grad_accumulate(shape_numel(x->out_shape[0]), x->dout[0], x->din[0], x->threads);
    return 0;
}
