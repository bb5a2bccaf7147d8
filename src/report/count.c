/* Counting: one row per node with its output shape, parameters (initializers
 * the op marks as trainable, each counted once) and work from the op table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "onnxsfp/report.h"
#include "ops/ops.h"
#include "util/util.h"

/* Add/Sub of an initializer after MatMul is the bias of a Linear layer. */
static bool is_linear_bias(const sfp_graph_t *g, const sfp_node_t *n, int i)
{
    if (!op_is(n, SFP_OP_ADD) || n->n_inputs != 2) return false;
    int other = n->inputs[1 - i];
    return other >= 0 && g->values[other].producer >= 0 && op_is(&g->nodes[g->values[other].producer], SFP_OP_MATMUL);
}

int sfp_report_build(sfp_model_t *m, const char *path, sfp_report_t **out, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int rc;
    if (g->batch != 1 && (rc = model_infer_shapes(m, 1, err)) < 0) return rc;
    sfp_report_t *r = calloc(1, sizeof *r);
    char *counted = calloc((size_t)g->n_values + 1, 1);
    if (!r || !counted) {
        free(r);
        free(counted);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    r->rows = calloc((size_t)g->n_nodes + 1, sizeof *r->rows);
    r->path = sfp_strdup(path ? path : "");
    if (!r->rows || !r->path) {
        free(counted);
        sfp_report_free(r);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const sfp_node_t *n = &g->nodes[i];
        const sfp_op_def_t *def = op_find(n->op_type, n->domain);
        sfp_report_row_t *row = &r->rows[r->n_rows++];
        char label[32];
        snprintf(label, sizeof label, "#%d", i);
        row->name = sfp_strdup(*n->name ? n->name : label);
        row->op_type = sfp_strdup(n->op_type);
        if (!row->name || !row->op_type) {
            free(counted);
            sfp_report_free(r);
            return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        }
        if (n->n_outputs > 0 && n->outputs[0] >= 0) {
            const sfp_value_t *o = &g->values[n->outputs[0]];
            row->ndim = o->ndim > 0 ? o->ndim : 0;
            memcpy(row->shape, o->dims, sizeof row->shape);
        }
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0 || !g->values[v].init || counted[v]) continue;
            if (!((def && (def->param_inputs >> k) & 1) || is_linear_bias(g, n, k))) continue;
            counted[v] = 1;
            row->params += sfp_tensor_numel(g->values[v].init);
        }
        int64_t work = def && def->work ? def->work(g, n) : 0;
        if (def && def->work_kind == SFP_WORK_DENSE) row->macs = work;
        else if (def && def->work_kind == SFP_WORK_ELEMENTWISE) row->elem_ops = work;
        r->params += row->params;
        r->macs += row->macs;
        r->elem_ops += row->elem_ops;
    }
    free(counted);
    *out = r;
    return 0;
}

void sfp_report_free(sfp_report_t *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_rows; i++) {
        free(r->rows[i].name);
        free(r->rows[i].op_type);
    }
    free(r->rows);
    free(r->path);
    free(r);
}
