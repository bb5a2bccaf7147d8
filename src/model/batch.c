/* model_free_batch: a model exported with a fixed batch becomes batch-free.
 * The data input's dim 0 turns symbolic; a Reshape whose constant target froze
 * the export batch (PyTorch's x.view(x.size(0), -1) exported as [2, -1]) gets
 * that entry rewritten to copy dim 0; outputs and value_info follow. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "ops/ops.h"
#include "util/util.h"

#define BATCH_PARAM "N"

/* Gives Reshape node n a target equal to its current one with entry 0 = first. */
static int rewrite_target(sfp_graph_t *g, sfp_node_t *n, int64_t first, sfp_error_t *err)
{
    int vid = n->inputs[1];
    sfp_value_t *tv = &g->values[vid];
    if (tv->init && graph_count_consumers(g, vid) == 1 && !(tv->flags & SFP_VAL_INPUT)) {
        if (tv->init->dtype == SFP_DT_INT64) ((int64_t *)tv->init->data)[0] = first;
        else ((int32_t *)tv->init->data)[0] = (int32_t)first;
        return 0;
    }
    if (tv->producer >= 0 && graph_count_consumers(g, vid) == 1) {
        sfp_node_t *p = &g->nodes[tv->producer];
        const sfp_attr_t *a = node_attr(p, "value");
        if (!strcmp(p->op_type, "Constant") && a && a->type == SFP_ATTR_TENSOR && a->t->dtype == SFP_DT_INT64) {
            ((int64_t *)a->t->data)[0] = first;
            return 0;
        }
        if (!strcmp(p->op_type, "Constant") && a && a->type == SFP_ATTR_INTS) {
            ((sfp_attr_t *)a)->ints[0] = first;
            return 0;
        }
    }
    /* Shared or computed: give this node its own initializer. */
    const sfp_tensor_t *k = graph_const(g, vid);
    sfp_tensor_t *t = NULL;
    int rc = sfp_tensor_clone(k, &t, err), nid = -1;
    if (rc < 0) return rc;
    if (t->dtype == SFP_DT_INT64) ((int64_t *)t->data)[0] = first;
    else ((int32_t *)t->data)[0] = (int32_t)first;
    /* Sized to the name: a fixed buffer truncated every candidate to the same
     * string for long names, and the search below never ended. */
    size_t cap = strlen(tv->name) + 32;
    char *name = malloc(cap);
    if (!name) {
        sfp_tensor_free(t);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    for (int i = 0;; i++) {
        snprintf(name, cap, "%s_batchfree%s%d", tv->name, i ? "_" : "", i);
        if (graph_find_value(g, name) < 0) break;
    }
    rc = graph_add_value(g, name, &nid, err);
    free(name);
    if (rc < 0) {
        sfp_tensor_free(t);
        return rc;
    }
    if ((rc = graph_set_init(g, nid, t, err)) < 0) return rc;
    n->inputs[1] = nid;
    return 0;
}

static int fix_reshapes(sfp_model_t *m, int64_t export_batch, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int rc;
    for (int i = 0; i < g->n_nodes; i++) {
        sfp_node_t *n = &g->nodes[i];
        if (strcmp(n->op_type, "Reshape")) continue;
        const sfp_value_t *x = &g->values[n->inputs[0]], *tv = &g->values[n->inputs[1]];
        const sfp_tensor_t *k = graph_const(g, n->inputs[1]);
        if (!k || tv->batch_dep || !x->batch0 || sfp_tensor_numel(k) < 1) continue;
        if (sfp_tensor_get_int(k, 0) != export_batch || x->dims[0] != export_batch) continue;
        int64_t first = 0;
        if (node_attr_int(n, "allowzero", 0)) {
            for (int64_t j = 1; j < sfp_tensor_numel(k); j++)
                if (sfp_tensor_get_int(k, j) == -1)
                    return sfp_errorf(err, SFP_EUNSUPPORTED, "node '%s' (Reshape): target freezes the batch and cannot be made batch-free (allowzero=1 with a -1)",
                                      sfp_q(n->name));
            first = -1;
        }
        if ((rc = rewrite_target(g, n, first, err)) < 0) return rc;
    }
    return 0;
}

static int set_batch_param(sfp_decl_type_t *d, const char *param, sfp_error_t *err)
{
    if (d->rank < 1 || d->params[0]) return 0;
    d->params[0] = sfp_strdup(param);
    if (!d->params[0]) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    d->dims[0] = -1;
    return 0;
}

/* True when the model also infers at batch + 1 and every graph output then
 * either keeps its shape or changes only dim 0 (from batch to batch + 1):
 * the batch is not mixed into other dims (as Flatten with axis 0 mixes it).
 * Leaves the shapes inferred for batch. */
static int outputs_follow_batch(sfp_model_t *m, int64_t batch, bool *follows, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int rc;
    *follows = false;
    if (model_infer_shapes(m, batch + 1, NULL) < 0) /* a shape computation that holds only at batch */
        return model_infer_shapes(m, batch, err);
    *follows = true;
    int64_t *dims = calloc((size_t)g->n_outputs * SFP_MAX_DIMS + 1, sizeof *dims);
    if (!dims) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int i = 0; i < g->n_outputs; i++)
        memcpy(dims + (size_t)i * SFP_MAX_DIMS, g->values[g->outputs[i]].dims, sizeof(int64_t) * SFP_MAX_DIMS);
    if ((rc = model_infer_shapes(m, batch, err)) < 0) {
        free(dims);
        return rc;
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const sfp_value_t *v = &g->values[g->outputs[i]];
        const int64_t *next = dims + (size_t)i * SFP_MAX_DIMS;
        bool same = true, scaled = v->ndim >= 1 && v->dims[0] == batch && next[0] == batch + 1;
        for (int k = 0; k < v->ndim; k++) {
            same = same && next[k] == v->dims[k];
            scaled = scaled && (k == 0 || next[k] == v->dims[k]);
        }
        if (!same && !scaled) *follows = false;
    }
    free(dims);
    return 0;
}

int model_free_batch(sfp_model_t *m, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int in = graph_data_input(g), rc;
    if (in < 0) return 0; /* several or no data inputs: shapes stay as declared */
    sfp_value_t *x = &g->values[in];
    if (x->decl.rank < 2 || x->decl.dtype != SFP_DT_FLOAT) return 0;
    int64_t export_batch = x->decl.dims[0] >= 0 ? x->decl.dims[0] : 1;
    if ((rc = set_batch_param(&x->decl, BATCH_PARAM, err)) < 0) return rc;
    const char *param = x->decl.params[0];
    if ((rc = model_infer_shapes(m, export_batch, err)) < 0) return rc;
    if ((rc = fix_reshapes(m, export_batch, err)) < 0) return rc;
    bool follows = true;
    if ((rc = outputs_follow_batch(m, export_batch, &follows, err)) < 0) return rc;
    if (!follows) return 1;
    for (int i = 0; i < g->n_values; i++) {
        sfp_value_t *v = &g->values[i];
        if (v->init || !(v->flags & (SFP_VAL_OUTPUT | SFP_VAL_VINFO)) || !v->batch0) continue;
        if (v->decl.rank >= 1 && v->decl.dims[0] == export_batch && (rc = set_batch_param(&v->decl, param, err)) < 0)
            return rc;
    }
    return 0;
}
