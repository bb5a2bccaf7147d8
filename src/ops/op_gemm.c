/* Gemm and MatMul. Gemm: A (M,K) or its transpose, B (K,N) or its transpose,
 * optional C broadcast to (M,N); MACs = M*N*K. MatMul: numpy matmul with
 * batch broadcasting; MACs = batch * M * N * K. */
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

static int gemm_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    if (node_attr(c->node, "broadcast") && node_attr_int(c->node, "broadcast", 0) == 0 && c->opset < 7)
        return op_errorf(c, err, SFP_EUNSUPPORTED, "legacy broadcast=0 is not supported");
    return 0;
}

const sfp_op_def_t op_defs_gemm[] = {
    {"Gemm", 2, 3, 1, 1, gemm_attrs, gemm_check, gemm_infer, gemm_work, SFP_WORK_DENSE, 0x6},
    {"MatMul", 2, 2, 1, 1, no_attrs, NULL, matmul_infer, matmul_work, SFP_WORK_DENSE, 0x2},
    {0},
};
