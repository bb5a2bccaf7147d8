/* model_infer_shapes: concrete shape of every value for one batch size. The
 * data input's symbolic dim 0 takes the batch; every op's infer sets its
 * outputs in topological order and folds what is computable before running. */
#include <string.h>

#include "model/model.h"
#include "ops/ops.h"
#include "util/util.h"

static void clear_inferred(sfp_graph_t *g)
{
    for (int i = 0; i < g->n_values; i++) {
        sfp_value_t *v = &g->values[i];
        sfp_tensor_free(v->folded);
        v->folded = NULL;
        v->batch_dep = false;
        v->batch0 = false;
        v->ndim = -1;
        v->dtype = SFP_DT_UNDEFINED;
    }
}

static int seed_inputs(sfp_graph_t *g, int64_t batch, sfp_error_t *err)
{
    for (int i = 0; i < g->n_values; i++) {
        sfp_value_t *v = &g->values[i];
        if (v->init) {
            v->dtype = v->init->dtype;
            v->ndim = v->init->ndim;
            memcpy(v->dims, v->init->dims, sizeof v->dims);
        }
    }
    for (int i = 0; i < g->n_inputs; i++) {
        sfp_value_t *v = &g->values[g->inputs[i]];
        if (v->init) continue;
        if (v->decl.rank < 0 || v->decl.dtype == SFP_DT_UNDEFINED)
            return sfp_errorf(err, SFP_EBADMODEL, "graph input '%s' has no declared type and shape", sfp_q(v->name));
        if (sfp_dtype_size(v->decl.dtype) == 0)
            return sfp_errorf(err, SFP_EUNSUPPORTED, "graph input '%s' has element type %s, which is not supported",
                              sfp_q(v->name), sfp_dtype_name(v->decl.dtype));
        v->dtype = v->decl.dtype;
        v->ndim = v->decl.rank;
        for (int k = 0; k < v->ndim; k++) {
            int64_t d = v->decl.dims[k];
            if (d < 0 && k == 0) {
                d = batch > 0 ? batch : 1;
                v->batch0 = true;
            }
            if (d < 0)
                return sfp_errorf(err, SFP_EUNSUPPORTED,
                                  "graph input '%s': dimension %d is symbolic ('%s'); give its size with --input-shape "
                                  "(e.g. --input-shape 1x3x224x224 or %s:1x3x224x224)",
                                  sfp_q(v->name), k, sfp_q(v->decl.params[k] ? v->decl.params[k] : "?"), sfp_q(v->name));
            v->dims[k] = d;
        }
        int64_t numel = 0, largest = 0;
        for (int k = 0; k < v->ndim; k++) largest = v->dims[k] > largest ? v->dims[k] : largest;
        /* each dim too: a zero elsewhere must not let 2^63 through to the ops' arithmetic */
        if (sfp_shape_numel(v->ndim, v->dims, &numel, NULL) < 0 || numel > ((int64_t)1 << 40) ||
            largest > ((int64_t)1 << 40))
            return sfp_errorf(err, SFP_EBADMODEL, "graph input '%s' would hold an absurd number of elements",
                              sfp_q(v->name));
    }
    return 0;
}

/* Folded values computed from a batched shape depend on the batch size. */
static void mark_batch_dep(sfp_graph_t *g, const sfp_node_t *n)
{
    bool dep = false;
    for (int i = 0; i < n->n_inputs; i++) {
        if (n->inputs[i] < 0) continue;
        const sfp_value_t *in = &g->values[n->inputs[i]];
        if (in->batch_dep || (!strcmp(n->op_type, "Shape") && in->batch0)) dep = true;
    }
    for (int o = 0; o < n->n_outputs; o++)
        if (n->outputs[o] >= 0 && g->values[n->outputs[o]].folded) g->values[n->outputs[o]].batch_dep = dep;
}

static int check_declared_outputs(const sfp_graph_t *g, sfp_error_t *err)
{
    for (int i = 0; i < g->n_outputs; i++) {
        const sfp_value_t *v = &g->values[g->outputs[i]];
        if (v->ndim < 0) return sfp_errorf(err, SFP_EBADMODEL, "graph output '%s' has no inferable shape", sfp_q(v->name));
        if (v->decl.rank < 0) continue;
        if (v->decl.rank != v->ndim)
            return sfp_errorf(err, SFP_EBADMODEL, "graph output '%s' is declared with rank %d but computes rank %d",
                              sfp_q(v->name), v->decl.rank, v->ndim);
        for (int k = 0; k < v->ndim; k++) {
            if (v->decl.dims[k] < 0 || (k == 0 && v->batch0)) continue;
            if (v->decl.dims[k] != v->dims[k])
                return sfp_errorf(err, SFP_EBADMODEL, "graph output '%s' is declared with dim %d = %lld but computes %lld",
                                  sfp_q(v->name), k, (long long)v->decl.dims[k], (long long)v->dims[k]);
        }
    }
    return 0;
}

int model_infer_shapes(sfp_model_t *m, int64_t batch, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int rc;
    clear_inferred(g);
    g->batch = 0;
    if ((rc = seed_inputs(g, batch, err)) < 0) return rc;
    sfp_op_ctx_t c = {m, g, NULL, sfp_model_opset(m, "")};
    for (int i = 0; i < g->n_nodes; i++) {
        c.node = &g->nodes[i];
        const sfp_op_def_t *def = op_find(c.node->op_type, c.node->domain);
        if (!def) return sfp_errorf(err, SFP_EUNSUPPORTED, "node '%s' (%s): operator not supported", sfp_q(c.node->name),
                                    sfp_q(c.node->op_type));
        for (int k = 0; k < c.node->n_inputs; k++) {
            const sfp_value_t *in = op_in(&c, k);
            if (in && in->ndim < 0)
                return op_errorf(&c, err, SFP_EBADMODEL, "input '%s' has no known shape", sfp_q(in->name));
        }
        if ((rc = def->infer(&c, err)) < 0) return rc;
        mark_batch_dep(g, c.node);
    }
    if ((rc = check_declared_outputs(g, err)) < 0) return rc;
    g->batch = batch > 0 ? batch : 1;
    return 0;
}
