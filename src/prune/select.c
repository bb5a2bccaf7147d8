/* L2-norm selection per dependency group (coupled channels are scored by the
 * summed filter norms of the layers that produce them; the same indices go
 * from every member) and the uniform-rate search behind --flops. */
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "prune/prune.h"

int prune_count(int n_channels, double rate)
{
    int n = (int)floor(rate * (double)n_channels + 1e-9);
    if (n >= n_channels) n = n_channels - 1;
    return n < 0 ? 0 : n;
}

int prune_group_count(const sfp_chan_group_t *grp, double rate)
{
    int parts = prune_group_parts(grp);
    return parts * prune_count(grp->n_channels / parts, rate);
}

int prune_take_lowest(const sfp_chan_group_t *grp, const int *order, int per_segment, bool *chosen, sfp_error_t *err)
{
    int parts = prune_group_parts(grp);
    int *count = calloc((size_t)parts, sizeof(int));
    if (!count) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int i = 0; i < grp->n_channels; i++) {
        int j = order[i], part = grp->segment ? grp->segment[j] : 0;
        if (chosen[j] || count[part] >= per_segment) continue;
        chosen[j] = true;
        count[part]++;
    }
    free(count);
    return 0;
}

bool prune_group_skipped(const sfp_model_t *m, const sfp_groups_t *gs, int gi, const char *skip)
{
    const sfp_chan_group_t *grp = &gs->g[gi];
    if (!grp->prunable) return true;
    if (!skip) return false;
    for (int k = 0; k < grp->n_sources; k++)
        if (fnmatch(skip, m->graph.nodes[grp->sources[k]].name, 0) == 0) return true;
    return false;
}

typedef struct scored {
    double score;
    int index;
} scored_t;

static int cmp_scored(const void *pa, const void *pb)
{
    const scored_t *a = pa, *b = pb;
    if (a->score != b->score) return a->score < b->score ? -1 : 1;
    return a->index - b->index; /* ties: lower index first, deterministic */
}

int prune_rank_l2(const sfp_model_t *m, const sfp_groups_t *gs, int gi, double *scores, int *order, sfp_error_t *err)
{
    int n = gs->g[gi].n_channels;
    scored_t *sorted = malloc(sizeof *sorted * (size_t)n);
    if (!sorted) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    int rc = prune_score_l2(m, gs, gi, scores, err);
    if (rc == 0) {
        for (int j = 0; j < n; j++) sorted[j] = (scored_t){scores[j], j};
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_scored);
        for (int j = 0; j < n; j++) order[j] = sorted[j].index;
    }
    free(sorted);
    return rc;
}

int prune_select_counts(const sfp_model_t *m, const sfp_groups_t *gs, const int *remove, sfp_removal_t *r,
                        sfp_error_t *err)
{
    for (int gi = 0; gi < gs->n; gi++) {
        const sfp_chan_group_t *grp = &gs->g[gi];
        int parts = prune_group_parts(grp);
        if (remove[gi] <= 0) continue;
        if (!grp->prunable || remove[gi] % parts != 0 || remove[gi] >= grp->n_channels)
            return sfp_errorf(err, SFP_ERUNTIME, "internal: channel group '%s' cannot lose %d of %d channels",
                              sfp_q(grp->label), remove[gi], grp->n_channels);
        double *scores = malloc(sizeof(double) * (size_t)grp->n_channels);
        int *order = malloc(sizeof *order * (size_t)grp->n_channels);
        bool *chosen = calloc((size_t)grp->n_channels, sizeof(bool));
        int rc = scores && order && chosen ? prune_rank_l2(m, gs, gi, scores, order, err)
                                           : sfp_errorf(err, SFP_ENOMEM, "out of memory");
        if (rc == 0) rc = prune_take_lowest(grp, order, remove[gi] / parts, chosen, err);
        for (int j = 0; j < grp->n_channels && rc == 0; j++)
            if (chosen[j]) removal_add_channel(r, gs, gi, j);
        free(scores);
        free(order);
        free(chosen);
        if (rc < 0) return rc;
    }
    return 0;
}

int prune_select_l2(const sfp_model_t *m, const sfp_groups_t *gs, double rate, const char *skip, sfp_removal_t *r,
                    sfp_error_t *err)
{
    int *remove = calloc((size_t)(gs->n > 0 ? gs->n : 1), sizeof(int));
    if (!remove) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int gi = 0; gi < gs->n; gi++)
        remove[gi] = prune_group_skipped(m, gs, gi, skip) ? 0 : prune_group_count(&gs->g[gi], rate);
    int rc = prune_select_counts(m, gs, remove, r, err);
    free(remove);
    return rc;
}

/* Channels (features) value v keeps under r: its slots less the marked ones;
 * a value without slots keeps dim 1 (0 when it has none). */
static int64_t kept_channels(const sfp_graph_t *g, const sfp_groups_t *gs, const sfp_removal_t *r, int v)
{
    if (v < 0) return 0;
    if (gs->value_slots[v]) return gs->value_slots[v] - removal_removed(r, gs, v);
    return g->values[v].ndim > 1 ? g->values[v].dims[1] : 0;
}

int prune_macs_removed(sfp_model_t *m, const sfp_groups_t *gs, const sfp_removal_t *r, int64_t *macs, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int rc;
    if (gs->n_values != g->n_values)
        return sfp_errorf(err, SFP_ERUNTIME, "internal: groups were computed for another graph");
    if (g->batch != 1 && (rc = model_infer_shapes(m, 1, err)) < 0) return rc;
    int64_t total = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const sfp_node_t *n = &g->nodes[i];
        const sfp_op_def_t *def = op_of(n);
        if (!def || def->work_kind != SFP_WORK_DENSE || !def->work) continue;
        if (def->work_kept && n->n_inputs > 0 && n->n_outputs > 0)
            total += def->work_kept(g, n, kept_channels(g, gs, r, n->inputs[0]), kept_channels(g, gs, r, n->outputs[0]));
        else
            total += def->work(g, n);
    }
    *macs = total;
    return 0;
}

int prune_macs_counts(sfp_model_t *m, const sfp_groups_t *gs, const int *remove, int64_t *macs, sfp_error_t *err)
{
    sfp_removal_t *r = NULL;
    int rc = removal_create(gs, &r, err);
    if (rc == 0) rc = prune_select_counts(m, gs, remove, r, err);
    if (rc == 0) rc = prune_macs_removed(m, gs, r, macs, err);
    removal_free(r);
    return rc;
}

int prune_macs_at_rate(sfp_model_t *m, const sfp_groups_t *gs, double rate, const char *skip, int64_t *macs,
                       sfp_error_t *err)
{
    sfp_removal_t *r = NULL;
    int rc = removal_create(gs, &r, err);
    if (rc == 0) rc = prune_select_l2(m, gs, rate, skip, r, err);
    if (rc == 0) rc = prune_macs_removed(m, gs, r, macs, err);
    removal_free(r);
    return rc;
}

int prune_rate_for_flops(sfp_model_t *m, const sfp_rate_opts_t *o, double *rate, sfp_error_t *err)
{
    sfp_groups_t *gs = NULL;
    sfp_prune_counts_t *pc = NULL;
    int rc = groups_find(m, &gs, err);
    if (rc == 0) rc = prune_counts_make(m, gs, o, &pc, err);
    if (rc == 0) *rate = pc->rate;
    prune_counts_free(pc);
    groups_free(gs);
    return rc;
}
