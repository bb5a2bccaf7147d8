/* Gemm and MatMul. Gemm: A (M,K) or its transpose, B (K,N) or its transpose,
 * optional C broadcast to (M,N); MACs = M*N*K. MatMul: numpy matmul with
 * batch broadcasting; MACs = batch * M * N * K. Forward: sfp_sgemm, one call
 * for Gemm and for a MatMul whose B is shared by the whole batch. Backward:
 * two sgemm with beta = 1 (dA = dY B^T, dB = A^T dY in the stored layouts);
 * broadcast operands (C, MatMul batch dims) get the sum of their outputs. */
#include <string.h>

#include "ops/ops.h"

static const char *const gemm_attrs[] = {"alpha", "beta", "transA", "transB", "broadcast", NULL};
static const char *const no_attrs[] = {NULL};

static int gemm_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 2, 2, err)) < 0) return rc;
    if ((rc = op_need_rank(c, 1, 2, 2, err)) < 0) return rc;
    const sfp_value_t *a = op_in(c, 0), *b = op_in(c, 1), *cc = op_in(c, 2);
    bool ta = node_attr_int(c->node, "transA", 0) != 0, tb = node_attr_int(c->node, "transB", 0) != 0;
    int64_t m = ta ? a->dims[1] : a->dims[0], k = ta ? a->dims[0] : a->dims[1];
    int64_t kb = tb ? b->dims[1] : b->dims[0], n = tb ? b->dims[0] : b->dims[1];
    if (k != kb)
        return op_errorf(c, err, SFP_EBADMODEL, "A '%s' has %lld columns but B '%s' has %lld rows", sfp_q(a->name),
                         (long long)k, sfp_q(b->name), (long long)kb);
    int64_t dims[2] = {m, n};
    if (cc) {
        if (cc->ndim < 0 || cc->ndim > 2)
            return op_errorf(c, err, SFP_EBADMODEL, "C '%s' must have rank 0 to 2", sfp_q(cc->name));
        for (int d = 0; d < cc->ndim; d++) {
            int64_t want = dims[2 - cc->ndim + d];
            if (cc->dims[d] != 1 && cc->dims[d] != want)
                return op_errorf(c, err, SFP_EBADMODEL, "C '%s' does not broadcast to [%lld, %lld]", sfp_q(cc->name),
                                 (long long)m, (long long)n);
        }
    }
    return op_set_out(c, 0, a->dtype, 2, dims, a->batch0 && !ta, err);
}

static int64_t gemm_work(const sfp_graph_t *g, const sfp_node_t *n)
{
    const sfp_value_t *a = &g->values[n->inputs[0]];
    int64_t k = node_attr_int(n, "transA", 0) ? a->dims[0] : a->dims[1];
    return op_work_out_elems(g, n) * k;
}

/* Rows of the output scale with kept_out; K is input 0's kept features
 * unless A is transposed (then its channels are not features). */
static int64_t gemm_work_kept(const sfp_graph_t *g, const sfp_node_t *n, int64_t kept_in, int64_t kept_out)
{
    const sfp_value_t *a = &g->values[n->inputs[0]], *y = &g->values[n->outputs[0]];
    int64_t k = node_attr_int(n, "transA", 0) ? a->dims[0] : kept_in;
    return y->dims[1] > 0 ? op_work_out_elems(g, n) / y->dims[1] * kept_out * k : 0;
}

/* Gemm B is (K, N), or (N, K) with transB: output features on axis 1 or 0. */
static int gemm_weight_axis(const sfp_node_t *n)
{
    return node_attr_int(n, "transB", 0) ? 0 : 1;
}

static int matmul_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 1, SFP_MAX_DIMS, err)) < 0) return rc;
    if ((rc = op_need_rank(c, 1, 1, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *a = op_in(c, 0), *b = op_in(c, 1);
    /* Promote 1-D operands as numpy does, then broadcast the batch dims. */
    sfp_value_t pa = *a, pb = *b;
    if (a->ndim == 1) {
        pa.ndim = 2;
        pa.dims[0] = 1;
        pa.dims[1] = a->dims[0];
    }
    if (b->ndim == 1) {
        pb.ndim = 2;
        pb.dims[0] = b->dims[0];
        pb.dims[1] = 1;
    }
    int64_t k = pa.dims[pa.ndim - 1];
    if (k != pb.dims[pb.ndim - 2])
        return op_errorf(c, err, SFP_EBADMODEL, "inner dimensions differ: '%s' has %lld, '%s' has %lld", sfp_q(a->name),
                         (long long)k, sfp_q(b->name), (long long)pb.dims[pb.ndim - 2]);
    sfp_value_t ba = pa, bb = pb;
    ba.ndim -= 2;
    bb.ndim -= 2;
    int nd = 0;
    int64_t dims[SFP_MAX_DIMS];
    if ((rc = op_broadcast(c, &ba, &bb, &nd, dims, err)) < 0) return rc;
    if (a->ndim > 1) dims[nd++] = pa.dims[pa.ndim - 2];
    if (b->ndim > 1) dims[nd++] = pb.dims[pb.ndim - 1];
    bool batch0 = a->batch0 && a->ndim >= 2 && (a->ndim >= b->ndim);
    return op_set_out(c, 0, a->dtype, nd, dims, batch0, err);
}

static int64_t matmul_work(const sfp_graph_t *g, const sfp_node_t *n)
{
    const sfp_value_t *a = &g->values[n->inputs[0]];
    return op_work_out_elems(g, n) * a->dims[a->ndim - 1];
}

/* 2-D A (M, K) x B (K, N): features on the last axes. */
static int64_t matmul_work_kept(const sfp_graph_t *g, const sfp_node_t *n, int64_t kept_in, int64_t kept_out)
{
    const sfp_value_t *a = &g->values[n->inputs[0]], *y = &g->values[n->outputs[0]];
    int64_t n_out = y->dims[y->ndim - 1], k = a->ndim == 2 ? kept_in : a->dims[a->ndim - 1];
    return n_out > 0 ? op_work_out_elems(g, n) / n_out * (y->ndim == 2 ? kept_out : n_out) * k : 0;
}

/* MatMul B (K, N): output features on axis 1. */
static int matmul_weight_axis(const sfp_node_t *n)
{
    (void)n;
    return 1;
}

static int gemm_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    if (node_attr(c->node, "broadcast") && node_attr_int(c->node, "broadcast", 0) == 0 && c->opset < 7)
        return op_errorf(c, err, SFP_EUNSUPPORTED, "legacy broadcast=0 is not supported");
    return 0;
}

/* ---- forward ---- */
static int gemm_dims(const sfp_exec_t *x, int64_t *m, int64_t *n, int64_t *k)
{
    const sfp_shape_t *as = x->in_shape[0], *bs = x->in_shape[1];
    bool ta = node_attr_int(x->node, "transA", 0) != 0, tb = node_attr_int(x->node, "transB", 0) != 0;
    *m = ta ? as->dims[1] : as->dims[0];
    *k = ta ? as->dims[0] : as->dims[1];
    *n = tb ? bs->dims[0] : bs->dims[1];
    return 0;
}

static int gemm_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    int rc;
    int64_t m = 0, n = 0, k = 0;
    *scratch_bytes = 0;
    for (int i = 0; i < 3; i++)
        if ((rc = exec_need_dtype(x, i, SFP_DT_FLOAT, err)) < 0) return rc;
    gemm_dims(x, &m, &n, &k);
    if (!sfp_sgemm_fits(m, n, k, x->in_shape[0]->dims[1], x->in_shape[1]->dims[1], n))
        return exec_errorf(x, err, SFP_EUNSUPPORTED, "the product is too large for the BLAS interface");
    return 0;
}

/* A (M,K) or (K,M), B (K,N) or (N,K), C broadcast to (M,N) -> Y (M,N) = alpha A B + beta C */
static int gemm_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    int64_t m = 0, n = 0, k = 0;
    gemm_dims(x, &m, &n, &k);
    bool ta = node_attr_int(x->node, "transA", 0) != 0, tb = node_attr_int(x->node, "transB", 0) != 0;
    float alpha = node_attr_float(x->node, "alpha", 1.0f), beta = node_attr_float(x->node, "beta", 1.0f);
    const float *c = x->node->n_inputs > 2 ? x->in[2] : NULL;
    float *y = x->out[0];
    if (c && beta != 0.0f) {
        const sfp_shape_t *cs = x->in_shape[2];
        int64_t col_step = cs->ndim >= 1 && cs->dims[cs->ndim - 1] != 1 ? 1 : 0;
        int64_t row_step = cs->ndim == 2 && cs->dims[0] != 1 ? cs->dims[1] : 0;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) y[i * n + j] = beta * c[i * row_step + j * col_step];
    }
    sfp_blas_set_threads(sfp_threads_count(x->threads));
    sfp_sgemm(ta, tb, m, n, k, alpha, x->in[0], x->in_shape[0]->dims[1], x->in[1], x->in_shape[1]->dims[1],
              c && beta != 0.0f ? 1.0f : 0.0f, y, n);
    return 0;
}

bool matmul_shape_init(int a_ndim, const int64_t *a_dims, int b_ndim, const int64_t *b_dims, sfp_matmul_shape_t *s)
{
    int64_t ad[SFP_MAX_DIMS + 1], bd[SFP_MAX_DIMS + 1];
    int an = a_ndim, bn = b_ndim;
    if (an < 1 || bn < 1 || an > SFP_MAX_DIMS || bn > SFP_MAX_DIMS) return false;
    memcpy(ad, a_dims, sizeof(int64_t) * (size_t)an);
    memcpy(bd, b_dims, sizeof(int64_t) * (size_t)bn);
    if (an == 1) {
        ad[1] = ad[0];
        ad[0] = 1;
        an = 2;
    }
    if (bn == 1) {
        bd[1] = 1;
        bn = 2;
    }
    memset(s, 0, sizeof *s);
    s->m = ad[an - 2];
    s->k = ad[an - 1];
    s->n = bd[bn - 1];
    if (bd[bn - 2] != s->k) return false;
    int ab = an - 2, bb = bn - 2, r = ab > bb ? ab : bb;
    int64_t step_a = s->m * s->k, step_b = s->k * s->n;
    s->batch_ndim = r;
    for (int d = r - 1; d >= 0; d--) {
        int ia = d - (r - ab), ib = d - (r - bb);
        int64_t da = ia >= 0 ? ad[ia] : 1, db = ib >= 0 ? bd[ib] : 1;
        if (da != db && da != 1 && db != 1) return false;
        s->batch[d] = da == 1 ? db : da;
        s->a_stride[d] = da == 1 ? 0 : step_a;
        s->b_stride[d] = db == 1 ? 0 : step_b;
        step_a *= da;
        step_b *= db;
    }
    return true;
}

/* a (batch.., m, k), b (batch.., k, n) -> y (batch.., m, n) */
void matmul_forward(const sfp_matmul_shape_t *s, const float *a, const float *b, float *y)
{
    int64_t count = 1;
    bool b_shared = true, a_dense = true;
    int64_t dense = s->m * s->k;
    for (int d = s->batch_ndim - 1; d >= 0; d--) {
        count *= s->batch[d];
        if (s->b_stride[d] != 0 && s->batch[d] != 1) b_shared = false;
        if (s->batch[d] != 1 && s->a_stride[d] != dense) a_dense = false;
        dense *= s->batch[d];
    }
    if (b_shared && a_dense) { /* the batch stacks into the rows of one product */
        sfp_sgemm(false, false, count * s->m, s->n, s->k, 1.0f, a, s->k, b, s->n, 0.0f, y, s->n);
        return;
    }
    int64_t pos[SFP_MAX_DIMS] = {0};
    for (int64_t i = 0; i < count; i++) {
        int64_t off_a = 0, off_b = 0;
        for (int d = 0; d < s->batch_ndim; d++) {
            off_a += pos[d] * s->a_stride[d];
            off_b += pos[d] * s->b_stride[d];
        }
        sfp_sgemm(false, false, s->m, s->n, s->k, 1.0f, a + off_a, s->k, b + off_b, s->n, 0.0f, y + i * s->m * s->n,
                  s->n);
        for (int d = s->batch_ndim - 1; d >= 0; d--) {
            if (++pos[d] < s->batch[d]) break;
            pos[d] = 0;
        }
    }
}

/* Element offsets into A and B of broadcast batch entry i (row-major over s->batch). */
static void matmul_batch_offsets(const sfp_matmul_shape_t *s, int64_t i, int64_t *off_a, int64_t *off_b)
{
    *off_a = *off_b = 0;
    for (int64_t d = s->batch_ndim - 1, t = i; d >= 0; d--) {
        *off_a += t % s->batch[d] * s->a_stride[d];
        *off_b += t % s->batch[d] * s->b_stride[d];
        t /= s->batch[d];
    }
}

void matmul_forward_ref(const sfp_matmul_shape_t *s, const float *a, const float *b, float *y)
{
    int64_t count = 1;
    for (int d = 0; d < s->batch_ndim; d++) count *= s->batch[d];
    for (int64_t i = 0; i < count; i++) {
        int64_t off_a = 0, off_b = 0;
        matmul_batch_offsets(s, i, &off_a, &off_b);
        for (int64_t r = 0; r < s->m; r++)
            for (int64_t c = 0; c < s->n; c++) {
                double acc = 0.0;
                for (int64_t p = 0; p < s->k; p++)
                    acc += (double)a[off_a + r * s->k + p] * (double)b[off_b + p * s->n + c];
                y[(i * s->m + r) * s->n + c] = (float)acc;
            }
    }
}

static int matmul_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    int rc;
    sfp_matmul_shape_t s;
    *scratch_bytes = 0;
    for (int i = 0; i < 2; i++)
        if ((rc = exec_need_dtype(x, i, SFP_DT_FLOAT, err)) < 0) return rc;
    const sfp_shape_t *as = x->in_shape[0], *bs = x->in_shape[1];
    if (!matmul_shape_init(as->ndim, as->dims, bs->ndim, bs->dims, &s))
        return exec_errorf(x, err, SFP_EBADMODEL, "operand shapes do not multiply");
    int64_t rows = s.m;
    for (int d = 0; d < s.batch_ndim; d++) rows *= s.batch[d];
    if (!sfp_sgemm_fits(rows, s.n, s.k, s.k, s.n, s.n))
        return exec_errorf(x, err, SFP_EUNSUPPORTED, "the product is too large for the BLAS interface");
    return 0;
}

static int matmul_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    sfp_matmul_shape_t s;
    const sfp_shape_t *as = x->in_shape[0], *bs = x->in_shape[1];
    if (!matmul_shape_init(as->ndim, as->dims, bs->ndim, bs->dims, &s))
        return exec_errorf(x, err, SFP_EBADMODEL, "operand shapes do not multiply");
    sfp_blas_set_threads(sfp_threads_count(x->threads));
    matmul_forward(&s, x->in[0], x->in[1], x->out[0]);
    return 0;
}

/* ---- backward ---- */
/* y (m,n) = alpha op(a) op(b), dy (m,n) -> da += (a's layout), db += (b's) */
void gemm_backward(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                   const float *b, const float *dy, float *da, float *db)
{
    const int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
    if (da) {
        if (!trans_a) /* da (m,k) += alpha dy (m,n) op(b)^T (n,k) */
            sfp_sgemm(false, !trans_b, m, k, n, alpha, dy, n, b, ldb, 1.0f, da, lda);
        else /* da (k,m) += alpha op(b) (k,n) dy^T (n,m) */
            sfp_sgemm(trans_b, true, k, m, n, alpha, b, ldb, dy, n, 1.0f, da, lda);
    }
    if (db) {
        if (!trans_b) /* db (k,n) += alpha op(a)^T (k,m) dy (m,n) */
            sfp_sgemm(!trans_a, false, k, n, m, alpha, a, lda, dy, n, 1.0f, db, ldb);
        else /* db (n,k) += alpha dy^T (n,m) op(a) (m,k) */
            sfp_sgemm(true, trans_a, n, k, m, alpha, dy, n, a, lda, 1.0f, db, ldb);
    }
}

/* a (batch.., m, k), b (batch.., k, n), dy (batch.., m, n) -> da +=, db += */
void matmul_backward(const sfp_matmul_shape_t *s, const float *a, const float *b, const float *dy, float *da,
                     float *db)
{
    int64_t count = 1;
    bool b_shared = true, a_dense = true;
    int64_t dense = s->m * s->k;
    for (int d = s->batch_ndim - 1; d >= 0; d--) {
        count *= s->batch[d];
        if (s->b_stride[d] != 0 && s->batch[d] != 1) b_shared = false;
        if (s->batch[d] != 1 && s->a_stride[d] != dense) a_dense = false;
        dense *= s->batch[d];
    }
    if (b_shared && a_dense) { /* the batch stacks into the rows of one product */
        if (da) sfp_sgemm(false, true, count * s->m, s->k, s->n, 1.0f, dy, s->n, b, s->n, 1.0f, da, s->k);
        if (db) sfp_sgemm(true, false, s->k, s->n, count * s->m, 1.0f, a, s->k, dy, s->n, 1.0f, db, s->n);
        return;
    }
    /* one product per batch element; broadcast operands accumulate in turn */
    int64_t pos[SFP_MAX_DIMS] = {0};
    for (int64_t i = 0; i < count; i++) {
        int64_t off_a = 0, off_b = 0;
        for (int d = 0; d < s->batch_ndim; d++) {
            off_a += pos[d] * s->a_stride[d];
            off_b += pos[d] * s->b_stride[d];
        }
        const float *dyi = dy + i * s->m * s->n;
        if (da) sfp_sgemm(false, true, s->m, s->k, s->n, 1.0f, dyi, s->n, b + off_b, s->n, 1.0f, da + off_a, s->k);
        if (db) sfp_sgemm(true, false, s->k, s->n, s->m, 1.0f, a + off_a, s->k, dyi, s->n, 1.0f, db + off_b, s->n);
        for (int d = s->batch_ndim - 1; d >= 0; d--) {
            if (++pos[d] < s->batch[d]) break;
            pos[d] = 0;
        }
    }
}

void matmul_backward_ref(const sfp_matmul_shape_t *s, const float *a, const float *b, const float *dy, float *da,
                         float *db)
{
    int64_t count = 1;
    for (int d = 0; d < s->batch_ndim; d++) count *= s->batch[d];
    for (int64_t i = 0; i < count; i++) {
        int64_t off_a = 0, off_b = 0;
        matmul_batch_offsets(s, i, &off_a, &off_b);
        for (int64_t r = 0; r < s->m; r++)
            for (int64_t c = 0; c < s->n; c++) {
                const double g = (double)dy[(i * s->m + r) * s->n + c];
                for (int64_t p = 0; p < s->k; p++) {
                    if (da) da[off_a + r * s->k + p] += (float)(g * (double)b[off_b + p * s->n + c]);
                    if (db) db[off_b + p * s->n + c] += (float)(g * (double)a[off_a + r * s->k + p]);
                }
            }
    }
}

static int gemm_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    int64_t m = 0, n = 0, k = 0;
    gemm_dims(x, &m, &n, &k);
    bool ta = node_attr_int(x->node, "transA", 0) != 0, tb = node_attr_int(x->node, "transB", 0) != 0;
    float alpha = node_attr_float(x->node, "alpha", 1.0f), beta = node_attr_float(x->node, "beta", 1.0f);
    const float *dy = x->dout[0];
    sfp_blas_set_threads(sfp_threads_count(x->threads));
    gemm_backward(ta, tb, m, n, k, alpha, x->in[0], x->in[1], dy, x->din[0], x->din[1]);
    float *dc = x->node->n_inputs > 2 ? x->din[2] : NULL;
    if (dc) { /* dC = beta dY summed over the dims C was broadcast along */
        const sfp_shape_t *cs = x->in_shape[2];
        int64_t col_step = cs->ndim >= 1 && cs->dims[cs->ndim - 1] != 1 ? 1 : 0;
        int64_t row_step = cs->ndim == 2 && cs->dims[0] != 1 ? cs->dims[1] : 0;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) dc[i * row_step + j * col_step] += beta * dy[i * n + j];
    }
    return 0;
}

static int matmul_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    sfp_matmul_shape_t s;
    const sfp_shape_t *as = x->in_shape[0], *bs = x->in_shape[1];
    if (!matmul_shape_init(as->ndim, as->dims, bs->ndim, bs->dims, &s))
        return exec_errorf(x, err, SFP_EBADMODEL, "operand shapes do not multiply");
    sfp_blas_set_threads(sfp_threads_count(x->threads));
    matmul_backward(&s, x->in[0], x->in[1], x->dout[0], x->din[0], x->din[1]);
    return 0;
}

const sfp_op_def_t op_defs_gemm[] = {
    {"Gemm", 2, 3, 1, 1, gemm_attrs, gemm_check, gemm_infer, gemm_work, SFP_WORK_DENSE, 0x6,
     {.forward = gemm_forward_node, .prepare = gemm_prepare, .backward = gemm_backward_node, .keep_inputs = 0x3},
     .id = SFP_OP_GEMM, .chan = SFP_CHAN_DENSE, .shrink = SFP_SHRINK_FILTERS, .flags = SFP_OPF_FILTERS, .weight_axis = gemm_weight_axis, .work_kept = gemm_work_kept},
    {"MatMul", 2, 2, 1, 1, no_attrs, NULL, matmul_infer, matmul_work, SFP_WORK_DENSE, 0x2,
     {.forward = matmul_forward_node, .prepare = matmul_prepare, .backward = matmul_backward_node,
      .keep_inputs = 0x3},
     .id = SFP_OP_MATMUL, .chan = SFP_CHAN_DENSE, .shrink = SFP_SHRINK_FILTERS, .flags = SFP_OPF_FILTERS, .weight_axis = matmul_weight_axis, .work_kept = matmul_work_kept},
    {0},
};
