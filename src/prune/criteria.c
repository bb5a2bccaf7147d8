/* Pruning criteria over dependency groups: the filter (weight row) behind
 * each slot of a channel, and the L2 score of a channel as the sum of the
 * norms of its source filters. */
#include <math.h>

#include "ops/ops.h"
#include "prune/prune.h"

int prune_filter_row(const sfp_model_t *m, const sfp_groups_t *gs, int gi, int k, sfp_filter_row_t *out,
                      sfp_error_t *err)
{
    const sfp_graph_t *g = &m->graph;
    const sfp_chan_group_t *grp = &gs->g[gi];
    int p = g->values[grp->slot_value[k]].producer;
    *out = (sfp_filter_row_t){0};
    if (p < 0) return 0;
    const sfp_node_t *n = &g->nodes[p];
    const sfp_op_def_t *def = op_of(n);
    if (!def || !(def->flags & SFP_OPF_FILTERS)) return 0;
    const sfp_tensor_t *w = graph_const(g, n->inputs[1]);
    if (!w || w->dtype != SFP_DT_FLOAT)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "node '%s' (%s): weights must be float initializers", sfp_q(n->name),
                          sfp_q(n->op_type));
    int axis = def->weight_axis(n);
    out->w = w->data;
    out->row = grp->slot_index[k];
    out->len = w->dims[axis];
    out->outer = out->inner = 1;
    for (int d = 0; d < axis; d++) out->outer *= w->dims[d];
    for (int d = axis + 1; d < w->ndim; d++) out->inner *= w->dims[d];
    return 0;
}

void prune_filter_row_copy(const sfp_filter_row_t *fr, double *dst)
{
    for (int64_t i = 0; i < fr->outer; i++) {
        const float *src = fr->w + (i * fr->len + fr->row) * fr->inner;
        for (int64_t e = 0; e < fr->inner; e++) *dst++ = (double)src[e];
    }
}

int prune_score_l2(const sfp_model_t *m, const sfp_groups_t *gs, int gi, double *out, sfp_error_t *err)
{
    const sfp_chan_group_t *grp = &gs->g[gi];
    for (int j = 0; j < grp->n_channels; j++) {
        out[j] = 0.0;
        for (int k = grp->slot_start[j]; k < grp->slot_start[j + 1]; k++) {
            sfp_filter_row_t fr;
            int rc = prune_filter_row(m, gs, gi, k, &fr, err);
            if (rc < 0) return rc;
            if (!fr.w) continue;
            double sum = 0.0;
            for (int64_t i = 0; i < fr.outer; i++) {
                const float *row = fr.w + (i * fr.len + fr.row) * fr.inner;
                for (int64_t e = 0; e < fr.inner; e++) sum += (double)row[e] * (double)row[e];
            }
            out[j] += sqrt(sum);
        }
    }
    return 0;
}
