/* Elementwise ops: Relu, Sigmoid, Identity, Dropout (inference), Cast,
 * Softmax, and the broadcasting binaries Add/Sub/Mul/Div. Binaries on
 * constant int64 operands are folded (older exports compute Reshape targets
 * with them). Forward: flat loops split over the thread pool; the binaries
 * first merge dims that step alike so the inner loop is one contiguous run.
 * Backward: the same loops; a broadcast operand's gradient is summed over
 * the dims it was broadcast along (one thread: several outputs land on one
 * element). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "ops/ops.h"

static const char *const no_attrs[] = {NULL};
static const char *const dropout_attrs[] = {"ratio", "seed", "is_test", NULL};
static const char *const softmax_attrs[] = {"axis", NULL};
static const char *const cast_attrs[] = {"to", "saturate", NULL};
static const char *const binary_attrs[] = {"broadcast", "axis", NULL}; /* opset < 7 */

static int same_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    if ((rc = op_set_out(c, 0, x->dtype, x->ndim, x->dims, x->batch0, err)) < 0) return rc;
    /* Dropout's optional mask output */
    if (c->node->n_outputs > 1 && (rc = op_set_out(c, 1, SFP_DT_BOOL, x->ndim, x->dims, x->batch0, err)) < 0)
        return rc;
    const sfp_tensor_t *k = graph_const(c->g, c->node->inputs[0]);
    if (k && !strcmp(c->node->op_type, "Identity")) {
        sfp_tensor_t *copy = NULL;
        if ((rc = sfp_tensor_clone(k, &copy, err)) < 0) return rc;
        return op_fold(c, 0, copy, x->batch0, err);
    }
    return 0;
}

static int softmax_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, axis = 0;
    if ((rc = op_need_rank(c, 0, 1, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    if ((rc = op_axis(c, node_attr_int(c->node, "axis", c->opset >= 13 ? -1 : 1), x->ndim, &axis, err)) < 0)
        return rc;
    return op_set_out(c, 0, x->dtype, x->ndim, x->dims, x->batch0, err);
}

static int dropout_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    if (c->opset < 7 && node_attr_int(c->node, "is_test", 0) == 0)
        return op_errorf(c, err, SFP_EUNSUPPORTED,
                         "is_test=0 (training mode of opset 6) is not supported; export the model in eval mode");
    if (c->node->n_inputs > 2 && c->node->inputs[2] >= 0) {
        const sfp_tensor_t *t = graph_const(c->g, c->node->inputs[2]);
        if (!t || sfp_tensor_get_int(t, 0) != 0)
            return op_errorf(c, err, SFP_EUNSUPPORTED, "training_mode must be a constant false");
    }
    return 0;
}

static int cast_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    sfp_dtype_t to = (sfp_dtype_t)node_attr_int(c->node, "to", 0);
    if (sfp_dtype_size(to) == 0) return op_errorf(c, err, SFP_EUNSUPPORTED, "cast to type %d is not supported", (int)to);
    if ((rc = op_set_out(c, 0, to, x->ndim, x->dims, x->batch0, err)) < 0) return rc;
    const sfp_tensor_t *k = graph_const(c->g, c->node->inputs[0]);
    if (!k) return 0;
    sfp_tensor_t *t = NULL;
    if ((rc = sfp_tensor_create(NULL, to, k->ndim, k->dims, &t, err)) < 0) return rc;
    int64_t n = sfp_tensor_numel(k);
    for (int64_t i = 0; i < n; i++) {
        double d = sfp_tensor_get_double(k, i);
        switch (to) {
        case SFP_DT_FLOAT: ((float *)t->data)[i] = (float)d; break;
        case SFP_DT_DOUBLE: ((double *)t->data)[i] = d; break;
        case SFP_DT_INT64: ((int64_t *)t->data)[i] = sfp_tensor_get_int(k, i); break;
        case SFP_DT_INT32: ((int32_t *)t->data)[i] = (int32_t)sfp_tensor_get_int(k, i); break;
        default:
            sfp_tensor_free(t);
            return 0; /* not folded; still inferred */
        }
    }
    return op_fold(c, 0, t, x->batch0, err);
}

/* Linear index into a broadcast operand of shape (nd, d) for output index i. */
static int64_t bcast_index(int64_t i, int out_nd, const int64_t *out_dims, int nd, const int64_t *d)
{
    int64_t idx = 0, stride = 1;
    for (int k = out_nd - 1; k >= 0; k--) {
        int64_t coord = i % out_dims[k];
        i /= out_dims[k];
        int kk = k - (out_nd - nd);
        if (kk >= 0) {
            if (d[kk] != 1) idx += coord * stride;
            stride *= d[kk];
        }
    }
    return idx;
}

static int binary_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc, nd = 0;
    int64_t dims[SFP_MAX_DIMS];
    if ((rc = op_need_rank(c, 0, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    if ((rc = op_need_rank(c, 1, 0, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *a = op_in(c, 0), *b = op_in(c, 1);
    if (a->dtype != b->dtype)
        return op_errorf(c, err, SFP_EBADMODEL, "operand types differ (%s vs %s)", sfp_dtype_name(a->dtype),
                         sfp_dtype_name(b->dtype));
    if ((rc = op_broadcast(c, a, b, &nd, dims, err)) < 0) return rc;
    /* The batch dimension survives when the operand carrying it keeps dim 0. */
    bool batch0 = (a->batch0 && a->ndim == nd) || (b->batch0 && b->ndim == nd);
    if ((rc = op_set_out(c, 0, a->dtype, nd, dims, batch0, err)) < 0) return rc;
    const sfp_tensor_t *ka = graph_const(c->g, c->node->inputs[0]), *kb = graph_const(c->g, c->node->inputs[1]);
    if (!ka || !kb || a->dtype != SFP_DT_INT64) return 0;
    sfp_tensor_t *t = NULL;
    if ((rc = sfp_tensor_create(NULL, SFP_DT_INT64, nd, dims, &t, err)) < 0) return rc;
    int64_t n = sfp_tensor_numel(t);
    char op = c->node->op_type[0];
    for (int64_t i = 0; i < n; i++) {
        int64_t x = sfp_tensor_get_int(ka, bcast_index(i, nd, dims, ka->ndim, ka->dims));
        int64_t y = sfp_tensor_get_int(kb, bcast_index(i, nd, dims, kb->ndim, kb->dims));
        int64_t r = 0;
        bool overflow = false;
        if (op == 'A') overflow = __builtin_add_overflow(x, y, &r);
        else if (op == 'S') overflow = __builtin_sub_overflow(x, y, &r);
        else if (op == 'M') overflow = __builtin_mul_overflow(x, y, &r);
        else if (y == 0) {
            sfp_tensor_free(t);
            return op_errorf(c, err, SFP_EBADMODEL, "integer division by zero in a shape computation");
        } else if (x == INT64_MIN && y == -1) overflow = true;
        else r = x / y;
        if (overflow) {
            sfp_tensor_free(t);
            return op_errorf(c, err, SFP_EBADMODEL, "integer overflow in a shape computation");
        }
        ((int64_t *)t->data)[i] = r;
    }
    return op_fold(c, 0, t, batch0, err);
}

static int binary_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    if (node_attr(c->node, "broadcast") || node_attr(c->node, "axis"))
        return op_errorf(c, err, SFP_EUNSUPPORTED, "legacy broadcast/axis attributes (opset < 7) are not supported");
    return 0;
}

/* ---- forward: unary ---- */
typedef struct unary_job {
    const float *x;
    float *y;
} unary_job_t;

#define UNARY_GRAIN 16384

/* Blocks of 16: a fixed trip count gcc vectorises at -O2, where it leaves
 * open-ended loops scalar. */
static void relu_span(int64_t n, const float *restrict x, float *restrict y)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) y[i + k] = x[i + k] > 0.0f ? x[i + k] : 0.0f;
    for (; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_range(void *ctx, int64_t i0, int64_t i1)
{
    const unary_job_t *j = ctx;
    relu_span(i1 - i0, j->x + i0, j->y + i0);
}

/* x (n) -> y (n) */
void relu_forward(int64_t n, const float *x, float *y, sfp_threads_t *threads)
{
    unary_job_t j = {x, y};
    sfp_threads_for(threads, n, UNARY_GRAIN, relu_range, &j);
}

static void sigmoid_range(void *ctx, int64_t i0, int64_t i1)
{
    const unary_job_t *j = ctx;
    const float *restrict x = j->x;
    float *restrict y = j->y;
    for (int64_t i = i0; i < i1; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

/* x (n) -> y (n) */
void sigmoid_forward(int64_t n, const float *x, float *y, sfp_threads_t *threads)
{
    unary_job_t j = {x, y};
    sfp_threads_for(threads, n, UNARY_GRAIN / 4, sigmoid_range, &j);
}

static int float_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    *scratch_bytes = 0;
    return exec_need_dtype(x, 0, SFP_DT_FLOAT, err);
}

static int relu_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    relu_forward(shape_numel(x->in_shape[0]), x->in[0], x->out[0], x->threads);
    return 0;
}

static int sigmoid_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    sigmoid_forward(shape_numel(x->in_shape[0]), x->in[0], x->out[0], x->threads);
    return 0;
}

static int copy_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    *scratch_bytes = 0;
    return exec_need_sized(x, 0, err);
}

/* Inference: y = x; the optional mask output is all true. */
static int dropout_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    int rc = exec_copy_forward(x, err);
    if (rc == 0 && x->node->n_outputs > 1 && x->out[1])
        memset(x->out[1], 1, (size_t)shape_numel(x->out_shape[1]));
    return rc;
}

/* ---- forward: softmax ---- */
typedef struct softmax_job {
    int64_t len, inner;
    const float *x;
    float *y;
} softmax_job_t;

static void softmax_rows(void *ctx, int64_t o0, int64_t o1)
{
    const softmax_job_t *j = ctx;
    const int64_t len = j->len, inner = j->inner;
    for (int64_t o = o0; o < o1; o++)
        for (int64_t in = 0; in < inner; in++) {
            const float *x = j->x + o * len * inner + in;
            float *y = j->y + o * len * inner + in;
            float top = -INFINITY;
            for (int64_t i = 0; i < len; i++)
                if (x[i * inner] > top) top = x[i * inner];
            double sum = 0.0;
            for (int64_t i = 0; i < len; i++) {
                float e = expf(x[i * inner] - top);
                y[i * inner] = e;
                sum += (double)e;
            }
            const float scale = (float)(1.0 / sum);
            for (int64_t i = 0; i < len; i++) y[i * inner] *= scale;
        }
}

/* x (outer, len, inner) -> y, softmax over len */
void softmax_forward(int64_t outer, int64_t len, int64_t inner, const float *x, float *y, sfp_threads_t *threads)
{
    softmax_job_t j = {len, inner, x, y};
    int64_t row = len * inner;
    sfp_threads_for(threads, outer, row >= 4096 ? 1 : 4096 / (row ? row : 1), softmax_rows, &j);
}

/* ONNX Softmax before opset 13 flattens to (prod(dims[:axis]), prod(dims[axis:]));
 * from 13 it normalises along axis only. */
static int softmax_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0];
    sfp_op_ctx_t c = exec_ctx(x);
    int axis = 0, rc = op_axis(&c, node_attr_int(x->node, "axis", x->opset >= 13 ? -1 : 1), xs->ndim, &axis, err);
    if (rc < 0) return rc;
    int64_t outer = shape_prod(xs, 0, axis);
    if (x->opset >= 13)
        softmax_forward(outer, xs->dims[axis], shape_prod(xs, axis + 1, xs->ndim), x->in[0], x->out[0], x->threads);
    else
        softmax_forward(outer, shape_prod(xs, axis, xs->ndim), 1, x->in[0], x->out[0], x->threads);
    return 0;
}

/* ---- forward: Cast ---- */
static bool cast_type_ok(sfp_dtype_t dt)
{
    switch (dt) {
    case SFP_DT_FLOAT: case SFP_DT_DOUBLE: case SFP_DT_BOOL:
    case SFP_DT_INT8: case SFP_DT_INT16: case SFP_DT_INT32: case SFP_DT_INT64:
    case SFP_DT_UINT8: case SFP_DT_UINT16: case SFP_DT_UINT32: case SFP_DT_UINT64:
        return true;
    default:
        return false;
    }
}

static int cast_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    *scratch_bytes = 0;
    sfp_dtype_t from = x->in_shape[0]->dtype, to = x->out_shape[0]->dtype;
    if (!cast_type_ok(from) || !cast_type_ok(to))
        return exec_errorf(x, err, SFP_EUNSUPPORTED,
                           "cast from %s to %s is not supported (float16, bfloat16 and strings are not)",
                           sfp_dtype_name(from), sfp_dtype_name(to));
    return 0;
}

static bool is_float_type(sfp_dtype_t dt)
{
    return dt == SFP_DT_FLOAT || dt == SFP_DT_DOUBLE;
}

static void store_int(sfp_dtype_t to, void *dst, int64_t i, uint64_t bits)
{
    switch (to) {
    case SFP_DT_BOOL: ((uint8_t *)dst)[i] = bits != 0; break;
    case SFP_DT_INT8: case SFP_DT_UINT8: ((uint8_t *)dst)[i] = (uint8_t)bits; break;
    case SFP_DT_INT16: case SFP_DT_UINT16: ((uint16_t *)dst)[i] = (uint16_t)bits; break;
    case SFP_DT_INT32: case SFP_DT_UINT32: ((uint32_t *)dst)[i] = (uint32_t)bits; break;
    default: ((uint64_t *)dst)[i] = bits; break;
    }
}

/* A float to an integer: NaN gives 0, out-of-range values saturate, the rest
 * truncate toward zero (C's conversion, which is undefined out of range). */
static uint64_t float_to_bits(sfp_dtype_t to, double d)
{
    if (isnan(d)) return to == SFP_DT_BOOL;
    if (to == SFP_DT_BOOL) return d != 0.0;
    bool is_unsigned = to == SFP_DT_UINT8 || to == SFP_DT_UINT16 || to == SFP_DT_UINT32 || to == SFP_DT_UINT64;
    if (is_unsigned) {
        if (d <= 0.0) return 0;
        return d >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)d;
    }
    if (d <= -9223372036854775808.0) return (uint64_t)INT64_MIN;
    if (d >= 9223372036854775807.0) return (uint64_t)INT64_MAX;
    return (uint64_t)(int64_t)d;
}

static int cast_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    sfp_dtype_t from = x->in_shape[0]->dtype, to = x->out_shape[0]->dtype;
    int64_t n = shape_numel(x->in_shape[0]);
    const void *src = x->in[0];
    void *dst = x->out[0];
    for (int64_t i = 0; i < n; i++) {
        double d = 0.0;
        int64_t v = 0;
        uint64_t u = 0;
        bool from_float = is_float_type(from), from_u64 = from == SFP_DT_UINT64;
        switch (from) {
        case SFP_DT_FLOAT: d = (double)((const float *)src)[i]; break;
        case SFP_DT_DOUBLE: d = ((const double *)src)[i]; break;
        case SFP_DT_BOOL: case SFP_DT_UINT8: v = ((const uint8_t *)src)[i]; break;
        case SFP_DT_INT8: v = ((const int8_t *)src)[i]; break;
        case SFP_DT_INT16: v = ((const int16_t *)src)[i]; break;
        case SFP_DT_UINT16: v = ((const uint16_t *)src)[i]; break;
        case SFP_DT_INT32: v = ((const int32_t *)src)[i]; break;
        case SFP_DT_UINT32: v = ((const uint32_t *)src)[i]; break;
        case SFP_DT_UINT64: u = ((const uint64_t *)src)[i]; break;
        default: v = ((const int64_t *)src)[i]; break;
        }
        if (to == SFP_DT_FLOAT) {
            ((float *)dst)[i] = from_float ? (float)d : from_u64 ? (float)u : (float)v;
        } else if (to == SFP_DT_DOUBLE) {
            ((double *)dst)[i] = from_float ? d : from_u64 ? (double)u : (double)v;
        } else {
            store_int(to, dst, i, from_float ? float_to_bits(to, d) : from_u64 ? u : (uint64_t)v);
        }
    }
    return 0;
}

/* ---- forward: broadcasting binaries ---- */
bool bcast_init(int a_ndim, const int64_t *a_dims, int b_ndim, const int64_t *b_dims, sfp_bcast_t *s)
{
    int r = a_ndim > b_ndim ? a_ndim : b_ndim;
    int64_t out[SFP_MAX_DIMS], sa[SFP_MAX_DIMS], sb[SFP_MAX_DIMS];
    int64_t step_a = 1, step_b = 1;
    for (int k = r - 1; k >= 0; k--) {
        int ia = k - (r - a_ndim), ib = k - (r - b_ndim);
        int64_t da = ia >= 0 ? a_dims[ia] : 1, db = ib >= 0 ? b_dims[ib] : 1;
        if (da != db && da != 1 && db != 1) return false;
        out[k] = da == 1 ? db : da;
        sa[k] = da == 1 ? 0 : step_a;
        sb[k] = db == 1 ? 0 : step_b;
        step_a *= da;
        step_b *= db;
    }
    /* drop size-1 dims, merge neighbours that continue each other in a and b */
    s->ndim = 0;
    for (int k = 0; k < r; k++) {
        if (out[k] == 1) continue;
        int t = s->ndim - 1;
        if (t >= 0 && s->a_stride[t] == sa[k] * out[k] && s->b_stride[t] == sb[k] * out[k]) {
            s->out[t] *= out[k];
            s->a_stride[t] = sa[k];
            s->b_stride[t] = sb[k];
            continue;
        }
        s->out[s->ndim] = out[k];
        s->a_stride[s->ndim] = sa[k];
        s->b_stride[s->ndim] = sb[k];
        s->ndim++;
    }
    if (s->ndim == 0) {
        s->ndim = 1;
        s->out[0] = 1;
        s->a_stride[0] = s->b_stride[0] = 0;
    }
    return true;
}

bool binary_has_zero_i64(int64_t n, const int64_t *b)
{
    for (int64_t i = 0; i < n; i++)
        if (b[i] == 0) return true;
    return false;
}

/* One run of n outputs; the stride cases the compiler can vectorise are
 * spelled out, in blocks of 16 (a fixed trip count gcc vectorises at -O2). */
#define BINARY_RUN(T, EXPR)                                                                         \
    do {                                                                                            \
        int64_t i = 0;                                                                              \
        if (sa == 1 && sb == 1) {                                                                   \
            for (; i + 16 <= n; i += 16)                                                            \
                for (int k = 0; k < 16; k++) { T x = a[i + k], z = b[i + k]; y[i + k] = (EXPR); }   \
            for (; i < n; i++) { T x = a[i], z = b[i]; y[i] = (EXPR); }                             \
        } else if (sa == 1 && sb == 0) {                                                            \
            const T z = b[0];                                                                       \
            for (; i + 16 <= n; i += 16)                                                            \
                for (int k = 0; k < 16; k++) { T x = a[i + k]; y[i + k] = (EXPR); }                 \
            for (; i < n; i++) { T x = a[i]; y[i] = (EXPR); }                                       \
        } else if (sa == 0 && sb == 1) {                                                            \
            const T x = a[0];                                                                       \
            for (; i + 16 <= n; i += 16)                                                            \
                for (int k = 0; k < 16; k++) { T z = b[i + k]; y[i + k] = (EXPR); }                 \
            for (; i < n; i++) { T z = b[i]; y[i] = (EXPR); }                                       \
        } else {                                                                                    \
            for (; i < n; i++) { T x = a[i * sa], z = b[i * sb]; y[i] = (EXPR); }                   \
        }                                                                                           \
    } while (0)

static void run_f32(sfp_binary_op_t op, int64_t n, const float *restrict a, int64_t sa, const float *restrict b,
                    int64_t sb, float *restrict y)
{
    switch (op) {
    case SFP_BIN_ADD: BINARY_RUN(float, x + z); break;
    case SFP_BIN_SUB: BINARY_RUN(float, x - z); break;
    case SFP_BIN_MUL: BINARY_RUN(float, x * z); break;
    case SFP_BIN_DIV: BINARY_RUN(float, x / z); break;
    }
}

/* Wrapping two's-complement arithmetic (C's signed overflow is undefined);
 * division truncates toward zero, INT64_MIN / -1 wraps. Divisors are non-zero. */
static inline int64_t i64_add(int64_t x, int64_t z) { return (int64_t)((uint64_t)x + (uint64_t)z); }
static inline int64_t i64_sub(int64_t x, int64_t z) { return (int64_t)((uint64_t)x - (uint64_t)z); }
static inline int64_t i64_mul(int64_t x, int64_t z) { return (int64_t)((uint64_t)x * (uint64_t)z); }
static inline int64_t i64_div(int64_t x, int64_t z)
{
    if (z == -1) return (int64_t)(0 - (uint64_t)x);
    return z == 0 ? 0 : x / z;
}

static void run_i64(sfp_binary_op_t op, int64_t n, const int64_t *restrict a, int64_t sa, const int64_t *restrict b,
                    int64_t sb, int64_t *restrict y)
{
    switch (op) {
    case SFP_BIN_ADD: BINARY_RUN(int64_t, i64_add(x, z)); break;
    case SFP_BIN_SUB: BINARY_RUN(int64_t, i64_sub(x, z)); break;
    case SFP_BIN_MUL: BINARY_RUN(int64_t, i64_mul(x, z)); break;
    case SFP_BIN_DIV: BINARY_RUN(int64_t, i64_div(x, z)); break;
    }
}

typedef struct binary_job {
    sfp_binary_op_t op;
    const sfp_bcast_t *s;
    const void *a, *b;
    void *y;
    bool is_f32;
} binary_job_t;

/* Rows [r0, r1) of the merged output (rows = all dims but the last). */
static void binary_rows(void *ctx, int64_t r0, int64_t r1)
{
    const binary_job_t *j = ctx;
    const sfp_bcast_t *s = j->s;
    const int last = s->ndim - 1;
    const int64_t inner = s->out[last];
    int64_t pos[SFP_MAX_DIMS] = {0}, off_a = 0, off_b = 0;
    int64_t rest = r0;
    for (int d = last - 1; d >= 0; d--) {
        pos[d] = rest % s->out[d];
        rest /= s->out[d];
        off_a += pos[d] * s->a_stride[d];
        off_b += pos[d] * s->b_stride[d];
    }
    for (int64_t r = r0; r < r1; r++) {
        if (j->is_f32)
            run_f32(j->op, inner, (const float *)j->a + off_a, s->a_stride[last], (const float *)j->b + off_b,
                    s->b_stride[last], (float *)j->y + r * inner);
        else
            run_i64(j->op, inner, (const int64_t *)j->a + off_a, s->a_stride[last], (const int64_t *)j->b + off_b,
                    s->b_stride[last], (int64_t *)j->y + r * inner);
        for (int d = last - 1; d >= 0; d--) {
            off_a += s->a_stride[d];
            off_b += s->b_stride[d];
            if (++pos[d] < s->out[d]) break;
            off_a -= pos[d] * s->a_stride[d];
            off_b -= pos[d] * s->b_stride[d];
            pos[d] = 0;
        }
    }
}

static void binary_run(const binary_job_t *j, sfp_threads_t *threads)
{
    const sfp_bcast_t *s = j->s;
    int64_t rows = 1, inner = s->out[s->ndim - 1];
    for (int d = 0; d < s->ndim - 1; d++) rows *= s->out[d];
    sfp_threads_for(threads, rows, inner >= UNARY_GRAIN ? 1 : UNARY_GRAIN / (inner ? inner : 1), binary_rows,
                     (void *)j);
}

/* a, b broadcast by s -> y (prod(s->out)) */
void binary_forward_f32(sfp_binary_op_t op, const sfp_bcast_t *s, const float *a, const float *b, float *y,
                        sfp_threads_t *threads)
{
    binary_job_t j = {op, s, a, b, y, true};
    binary_run(&j, threads);
}

void binary_forward_i64(sfp_binary_op_t op, const sfp_bcast_t *s, const int64_t *a, const int64_t *b, int64_t *y,
                        sfp_threads_t *threads)
{
    binary_job_t j = {op, s, a, b, y, false};
    binary_run(&j, threads);
}

void binary_forward_f32_ref(sfp_binary_op_t op, int a_ndim, const int64_t *a_dims, const float *a, int b_ndim,
                            const int64_t *b_dims, const float *b, int y_ndim, const int64_t *y_dims, float *y)
{
    int64_t n = 1;
    for (int k = 0; k < y_ndim; k++) n *= y_dims[k];
    for (int64_t i = 0; i < n; i++) {
        float x = a[bcast_index(i, y_ndim, y_dims, a_ndim, a_dims)];
        float z = b[bcast_index(i, y_ndim, y_dims, b_ndim, b_dims)];
        y[i] = op == SFP_BIN_ADD ? x + z : op == SFP_BIN_SUB ? x - z : op == SFP_BIN_MUL ? x * z : x / z;
    }
}

void binary_forward_i64_ref(sfp_binary_op_t op, int a_ndim, const int64_t *a_dims, const int64_t *a, int b_ndim,
                            const int64_t *b_dims, const int64_t *b, int y_ndim, const int64_t *y_dims, int64_t *y)
{
    int64_t n = 1;
    for (int k = 0; k < y_ndim; k++) n *= y_dims[k];
    for (int64_t i = 0; i < n; i++) {
        int64_t x = a[bcast_index(i, y_ndim, y_dims, a_ndim, a_dims)];
        int64_t z = b[bcast_index(i, y_ndim, y_dims, b_ndim, b_dims)];
        y[i] = op == SFP_BIN_ADD ? i64_add(x, z) : op == SFP_BIN_SUB ? i64_sub(x, z)
             : op == SFP_BIN_MUL ? i64_mul(x, z) : i64_div(x, z);
    }
}

static sfp_binary_op_t binary_op_of(const sfp_node_t *n)
{
    switch (n->op_type[0]) {
    case 'A': return SFP_BIN_ADD;
    case 'S': return SFP_BIN_SUB;
    case 'M': return SFP_BIN_MUL;
    default: return SFP_BIN_DIV;
    }
}

static int binary_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    *scratch_bytes = 0;
    sfp_dtype_t dt = x->in_shape[0]->dtype;
    if (dt != SFP_DT_FLOAT && dt != SFP_DT_INT64)
        return exec_errorf(x, err, SFP_EUNSUPPORTED, "operands of type %s are not supported (float32 and int64 are)",
                           sfp_dtype_name(dt));
    return exec_need_dtype(x, 1, dt, err);
}

static int binary_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *as = x->in_shape[0], *bs = x->in_shape[1];
    sfp_bcast_t s;
    if (!bcast_init(as->ndim, as->dims, bs->ndim, bs->dims, &s))
        return exec_errorf(x, err, SFP_EBADMODEL, "operand shapes do not broadcast");
    sfp_binary_op_t op = binary_op_of(x->node);
    if (as->dtype == SFP_DT_FLOAT) {
        binary_forward_f32(op, &s, x->in[0], x->in[1], x->out[0], x->threads);
        return 0;
    }
    if (op == SFP_BIN_DIV && binary_has_zero_i64(shape_numel(bs), x->in[1]))
        return exec_errorf(x, err, SFP_EBADDATA, "integer division by zero");
    binary_forward_i64(op, &s, x->in[0], x->in[1], x->out[0], x->threads);
    return 0;
}

/* ---- backward ---- */
typedef struct accumulate_job {
    const float *src;
    float *dst;
} accumulate_job_t;

static void accumulate_range(void *ctx, int64_t i0, int64_t i1)
{
    const accumulate_job_t *j = ctx;
    const float *restrict src = j->src + i0;
    float *restrict dst = j->dst + i0;
    const int64_t n = i1 - i0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) dst[i + k] += src[i + k];
    for (; i < n; i++) dst[i] += src[i];
}

/* src (n) -> dst (n) += */
void grad_accumulate(int64_t n, const float *src, float *dst, sfp_threads_t *threads)
{
    accumulate_job_t j = {src, dst};
    sfp_threads_for(threads, n, UNARY_GRAIN, accumulate_range, &j);
}

typedef struct unary_bwd_job {
    const float *y, *dy;
    float *dx;
    bool fresh;                 /* dx = instead of dx += (relu) */
} unary_bwd_job_t;

static void relu_bwd_range(void *ctx, int64_t i0, int64_t i1)
{
    const unary_bwd_job_t *j = ctx;
    const float *restrict y = j->y + i0, *restrict dy = j->dy + i0;
    float *restrict dx = j->dx + i0;
    const int64_t n = i1 - i0;
    int64_t i = 0;
    /* dy read unconditionally: a select the compiler vectorises, no branch
     * on the (random) signs */
    if (j->fresh) {
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++) {
                const float g = dy[i + k];
                dx[i + k] = y[i + k] > 0.0f ? g : 0.0f;
            }
        for (; i < n; i++) {
            const float g = dy[i];
            dx[i] = y[i] > 0.0f ? g : 0.0f;
        }
        return;
    }
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) {
            const float g = dy[i + k];
            dx[i + k] += y[i + k] > 0.0f ? g : 0.0f;
        }
    for (; i < n; i++) {
        const float g = dy[i];
        dx[i] += y[i] > 0.0f ? g : 0.0f;
    }
}

/* y = relu(x), dy (n) -> dx (n) += */
void relu_backward(int64_t n, const float *y, const float *dy, float *dx, bool dx_fresh, sfp_threads_t *threads)
{
    unary_bwd_job_t j = {y, dy, dx, dx_fresh};
    sfp_threads_for(threads, n, UNARY_GRAIN, relu_bwd_range, &j);
}

static void sigmoid_bwd_range(void *ctx, int64_t i0, int64_t i1)
{
    const unary_bwd_job_t *j = ctx;
    const float *restrict y = j->y, *restrict dy = j->dy;
    float *restrict dx = j->dx;
    for (int64_t i = i0; i < i1; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

/* y = sigmoid(x), dy (n) -> dx (n) += */
void sigmoid_backward(int64_t n, const float *y, const float *dy, float *dx, sfp_threads_t *threads)
{
    unary_bwd_job_t j = {y, dy, dx, false};
    sfp_threads_for(threads, n, UNARY_GRAIN, sigmoid_bwd_range, &j);
}

typedef struct softmax_bwd_job {
    int64_t len, inner;
    const float *y, *dy;
    float *dx;
} softmax_bwd_job_t;

static void softmax_bwd_rows(void *ctx, int64_t o0, int64_t o1)
{
    const softmax_bwd_job_t *j = ctx;
    const int64_t len = j->len, inner = j->inner;
    for (int64_t o = o0; o < o1; o++)
        for (int64_t in = 0; in < inner; in++) {
            const int64_t base = o * len * inner + in;
            const float *y = j->y + base, *dy = j->dy + base;
            float *dx = j->dx + base;
            double dot = 0.0;
            for (int64_t i = 0; i < len; i++) dot += (double)dy[i * inner] * (double)y[i * inner];
            const float d = (float)dot;
            for (int64_t i = 0; i < len; i++) dx[i * inner] += y[i * inner] * (dy[i * inner] - d);
        }
}

/* y = softmax (outer, len, inner), dy -> dx += */
void softmax_backward(int64_t outer, int64_t len, int64_t inner, const float *y, const float *dy, float *dx,
                      sfp_threads_t *threads)
{
    softmax_bwd_job_t j = {len, inner, y, dy, dx};
    int64_t row = len * inner;
    sfp_threads_for(threads, outer, row >= 4096 ? 1 : 4096 / (row ? row : 1), softmax_bwd_rows, &j);
}

/* The gradient of one operand: which one, and the other's values. */
typedef struct binary_bwd_job {
    sfp_binary_op_t op;
    const sfp_bcast_t *s;
    const float *a, *b, *dy;
    float *grad;
    bool wrt_a;
} binary_bwd_job_t;

/* d out / d operand at one output, times g. */
static inline float binary_partial(sfp_binary_op_t op, bool wrt_a, float a, float b, float g)
{
    switch (op) {
    case SFP_BIN_ADD: return g;
    case SFP_BIN_SUB: return wrt_a ? g : -g;
    case SFP_BIN_MUL: return wrt_a ? g * b : g * a;
    default: return wrt_a ? g / b : -g * a / (b * b);
    }
}

/* Rows [r0, r1) of the merged output, as binary_rows walks them. */
static void binary_bwd_rows(void *ctx, int64_t r0, int64_t r1)
{
    const binary_bwd_job_t *j = ctx;
    const sfp_bcast_t *s = j->s;
    const int last = s->ndim - 1;
    const int64_t inner = s->out[last], sa = s->a_stride[last], sb = s->b_stride[last];
    const int64_t sg = j->wrt_a ? sa : sb;
    const bool need_a = j->op == SFP_BIN_DIV || (j->op == SFP_BIN_MUL && !j->wrt_a);
    const bool need_b = j->op == SFP_BIN_DIV || (j->op == SFP_BIN_MUL && j->wrt_a);
    int64_t pos[SFP_MAX_DIMS] = {0}, off_a = 0, off_b = 0;
    int64_t rest = r0;
    for (int d = last - 1; d >= 0; d--) {
        pos[d] = rest % s->out[d];
        rest /= s->out[d];
        off_a += pos[d] * s->a_stride[d];
        off_b += pos[d] * s->b_stride[d];
    }
    for (int64_t r = r0; r < r1; r++) {
        const float *restrict dy = j->dy + r * inner;
        float *restrict g = j->grad + (j->wrt_a ? off_a : off_b);
        const float *a = j->a ? j->a + off_a : NULL, *b = j->b ? j->b + off_b : NULL;
        if (sg == 0) { /* the whole run lands on one element */
            double sum = 0.0;
            for (int64_t i = 0; i < inner; i++)
                sum += (double)binary_partial(j->op, j->wrt_a, need_a ? a[i * sa] : 0.0f, need_b ? b[i * sb] : 0.0f,
                                              dy[i]);
            g[0] += (float)sum;
        } else if (j->op == SFP_BIN_ADD || j->op == SFP_BIN_SUB) {
            const float sign = j->op == SFP_BIN_SUB && !j->wrt_a ? -1.0f : 1.0f;
            for (int64_t i = 0; i < inner; i++) g[i * sg] += sign * dy[i];
        } else {
            for (int64_t i = 0; i < inner; i++)
                g[i * sg] += binary_partial(j->op, j->wrt_a, need_a ? a[i * sa] : 0.0f, need_b ? b[i * sb] : 0.0f,
                                            dy[i]);
        }
        for (int d = last - 1; d >= 0; d--) {
            off_a += s->a_stride[d];
            off_b += s->b_stride[d];
            if (++pos[d] < s->out[d]) break;
            off_a -= pos[d] * s->a_stride[d];
            off_b -= pos[d] * s->b_stride[d];
            pos[d] = 0;
        }
    }
}

static void binary_bwd_operand(binary_bwd_job_t *j, sfp_threads_t *threads)
{
    const sfp_bcast_t *s = j->s;
    const int64_t *stride = j->wrt_a ? s->a_stride : s->b_stride;
    int64_t rows = 1, inner = s->out[s->ndim - 1];
    bool broadcast = false;
    for (int d = 0; d < s->ndim; d++) {
        if (stride[d] == 0 && s->out[d] > 1) broadcast = true;
        if (d < s->ndim - 1) rows *= s->out[d];
    }
    /* rows of a broadcast operand share elements: one thread */
    int64_t grain = broadcast ? rows : inner >= UNARY_GRAIN ? 1 : UNARY_GRAIN / (inner ? inner : 1);
    sfp_threads_for(threads, rows, grain, binary_bwd_rows, j);
}

/* a, b broadcast by s, dy (prod(s->out)) -> da +=, db += */
void binary_backward_f32(sfp_binary_op_t op, const sfp_bcast_t *s, const float *a, const float *b, const float *dy,
                         float *da, float *db, sfp_threads_t *threads)
{
    binary_bwd_job_t j = {op, s, a, b, dy, da, true};
    if (da) binary_bwd_operand(&j, threads);
    j.grad = db;
    j.wrt_a = false;
    if (db) binary_bwd_operand(&j, threads);
}

void binary_backward_f32_ref(sfp_binary_op_t op, int a_ndim, const int64_t *a_dims, const float *a, int b_ndim,
                             const int64_t *b_dims, const float *b, int y_ndim, const int64_t *y_dims,
                             const float *dy, float *da, float *db)
{
    int64_t n = 1;
    for (int k = 0; k < y_ndim; k++) n *= y_dims[k];
    for (int64_t i = 0; i < n; i++) {
        int64_t ia = bcast_index(i, y_ndim, y_dims, a_ndim, a_dims), ib = bcast_index(i, y_ndim, y_dims, b_ndim, b_dims);
        double x = a ? (double)a[ia] : 0.0, z = b ? (double)b[ib] : 0.0, g = (double)dy[i];
        double ga = op == SFP_BIN_MUL ? g * z : op == SFP_BIN_DIV ? g / z : g;
        double gb = op == SFP_BIN_ADD ? g : op == SFP_BIN_SUB ? -g : op == SFP_BIN_MUL ? g * x : -g * x / (z * z);
        if (da) da[ia] += (float)ga;
        if (db) db[ib] += (float)gb;
    }
}

static int relu_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    if (x->din[0])
        relu_backward(shape_numel(x->in_shape[0]), x->out[0], x->dout[0], x->din[0], (x->din_fresh & 1u) != 0,
                      x->threads);
    return 0;
}

static int sigmoid_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    if (x->din[0]) sigmoid_backward(shape_numel(x->in_shape[0]), x->out[0], x->dout[0], x->din[0], x->threads);
    return 0;
}

static int softmax_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0];
    sfp_op_ctx_t c = exec_ctx(x);
    int axis = 0, rc = op_axis(&c, node_attr_int(x->node, "axis", x->opset >= 13 ? -1 : 1), xs->ndim, &axis, err);
    if (rc < 0 || !x->din[0]) return rc;
    int64_t outer = shape_prod(xs, 0, axis);
    if (x->opset >= 13)
        softmax_backward(outer, xs->dims[axis], shape_prod(xs, axis + 1, xs->ndim), x->out[0], x->dout[0], x->din[0],
                         x->threads);
    else
        softmax_backward(outer, shape_prod(xs, axis, xs->ndim), 1, x->out[0], x->dout[0], x->din[0], x->threads);
    return 0;
}

static int binary_prepare_backward(const sfp_exec_t *x, size_t *saved_bytes, size_t *scratch_bytes, sfp_error_t *err)
{
    *saved_bytes = *scratch_bytes = 0;
    return exec_need_dtype(x, 0, SFP_DT_FLOAT, err);
}

static int binary_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    const sfp_shape_t *as = x->in_shape[0], *bs = x->in_shape[1];
    sfp_bcast_t s;
    if (!bcast_init(as->ndim, as->dims, bs->ndim, bs->dims, &s))
        return exec_errorf(x, err, SFP_EBADMODEL, "operand shapes do not broadcast");
    /* Add (overwrite_din): an operand of the output's size whose gradient
     * is fresh is dy itself; a broadcast one is zeroed and summed into */
    float *din[2] = {x->din[0], x->din[1]};
    const size_t out_n = (size_t)shape_numel(x->out_shape[0]);
    for (int k = 0; k < 2; k++) {
        if (!din[k] || !(x->din_fresh >> k & 1u)) continue;
        if ((size_t)shape_numel(x->in_shape[k]) == out_n) {
            memcpy(din[k], x->dout[0], sizeof(float) * out_n);
            din[k] = NULL;
        } else {
            memset(din[k], 0, sizeof(float) * (size_t)shape_numel(x->in_shape[k]));
        }
    }
    binary_backward_f32(binary_op_of(x->node), &s, x->in[0], x->in[1], x->dout[0], din[0], din[1], x->threads);
    return 0;
}

const sfp_op_def_t op_defs_elementwise[] = {
    {"Relu", 1, 1, 1, 1, no_attrs, NULL, same_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0,
     {.forward = relu_forward_node, .prepare = float_prepare, .backward = relu_backward_node, .keep_outputs = 0x1,
      .overwrite_din = 0x1},
     .id = SFP_OP_RELU, .chan = SFP_CHAN_SAME, .flags = SFP_OPF_ZERO_KEEPS},
    {"Sigmoid", 1, 1, 1, 1, no_attrs, NULL, same_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0,
     {.forward = sigmoid_forward_node, .prepare = float_prepare, .backward = sigmoid_backward_node,
      .keep_outputs = 0x1},
     .id = SFP_OP_SIGMOID, .chan = SFP_CHAN_SAME},
    {"Identity", 1, 1, 1, 1, no_attrs, NULL, same_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = exec_copy_forward, .prepare = copy_prepare, .backward = exec_copy_backward},
     .id = SFP_OP_IDENTITY, .chan = SFP_CHAN_SAME, .flags = SFP_OPF_ZERO_KEEPS},
    /* inference form: y = x, so the gradient passes unchanged */
    {"Dropout", 1, 3, 1, 2, dropout_attrs, dropout_check, same_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = dropout_forward_node, .prepare = copy_prepare, .backward = exec_copy_backward},
     .id = SFP_OP_DROPOUT, .chan = SFP_CHAN_SAME, .flags = SFP_OPF_ZERO_KEEPS},
    {"Softmax", 1, 1, 1, 1, softmax_attrs, NULL, softmax_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0,
     {.forward = softmax_forward_node, .prepare = float_prepare, .backward = softmax_backward_node,
      .keep_outputs = 0x1},
     .id = SFP_OP_SOFTMAX, .chan = SFP_CHAN_MIXES},
    {"Cast", 1, 1, 1, 1, cast_attrs, NULL, cast_infer, NULL, SFP_WORK_NONE, 0,
     {.forward = cast_forward_node, .prepare = cast_prepare},
     .id = SFP_OP_CAST, .chan = SFP_CHAN_SAME, .flags = SFP_OPF_ZERO_KEEPS},
    {"Add", 2, 2, 1, 1, binary_attrs, binary_check, binary_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0,
     {.forward = binary_forward_node, .prepare = binary_prepare, .backward = binary_backward_node,
      .prepare_backward = binary_prepare_backward, .keep_inputs = 0x0, .overwrite_din = 0x3},
     .id = SFP_OP_ADD, .chan = SFP_CHAN_BROADCAST, .shrink = SFP_SHRINK_BROADCAST, .flags = SFP_OPF_SHIFT},
    {"Sub", 2, 2, 1, 1, binary_attrs, binary_check, binary_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0,
     {.forward = binary_forward_node, .prepare = binary_prepare, .backward = binary_backward_node,
      .prepare_backward = binary_prepare_backward, .keep_inputs = 0x0},
     .id = SFP_OP_SUB, .chan = SFP_CHAN_BROADCAST, .shrink = SFP_SHRINK_BROADCAST, .flags = SFP_OPF_SHIFT},
    /* Mul and Div read both operands backward; Add and Sub neither */
    {"Mul", 2, 2, 1, 1, binary_attrs, binary_check, binary_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0,
     {.forward = binary_forward_node, .prepare = binary_prepare, .backward = binary_backward_node,
      .prepare_backward = binary_prepare_backward, .keep_inputs = 0x3},
     .id = SFP_OP_MUL, .chan = SFP_CHAN_BROADCAST, .shrink = SFP_SHRINK_BROADCAST, .flags = SFP_OPF_ZERO_ABSORBS},
    {"Div", 2, 2, 1, 1, binary_attrs, binary_check, binary_infer, op_work_out_elems, SFP_WORK_ELEMENTWISE, 0,
     {.forward = binary_forward_node, .prepare = binary_prepare, .backward = binary_backward_node,
      .prepare_backward = binary_prepare_backward, .keep_inputs = 0x3},
     .id = SFP_OP_DIV, .chan = SFP_CHAN_BROADCAST, .shrink = SFP_SHRINK_BROADCAST},
    {0},
};
