/* L2-norm selection per dependency group (coupled channels are scored by the
 * summed filter norms of the layers that produce them; the same indices go
 * from every member) and the uniform-rate search behind --flops. */
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onnxsfp/report.h"
#include "prune/prune.h"

int prune_count(int n_channels, double rate)
{
    int n = (int)floor(rate * (double)n_channels + 1e-9);
    if (n >= n_channels) n = n_channels - 1;
    return n < 0 ? 0 : n;
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

int prune_select_l2(const sfp_model_t *m, const sfp_groups_t *gs, double rate, const char *skip, sfp_removal_t *r,
                    sfp_error_t *err)
{
    for (int gi = 0; gi < gs->n; gi++) {
        const sfp_chan_group_t *grp = &gs->g[gi];
        int n_remove = prune_count(grp->n_channels, rate);
        if (n_remove == 0 || prune_group_skipped(m, gs, gi, skip)) continue;
        double *scores = malloc(sizeof(double) * (size_t)grp->n_channels);
        int *order = malloc(sizeof *order * (size_t)grp->n_channels);
        int rc = scores && order ? prune_rank_l2(m, gs, gi, scores, order, err)
                                 : sfp_errorf(err, SFP_ENOMEM, "out of memory");
        for (int j = 0; j < n_remove && rc == 0; j++) removal_add_channel(r, gs, gi, order[j]);
        free(scores);
        free(order);
        if (rc < 0) return rc;
    }
    return 0;
}

/* MACs at batch 1 of copy after surgery_apply(copy, gs, r). */
static int macs_after_removal(sfp_model_t *copy, const sfp_groups_t *gs, const sfp_removal_t *r, int64_t *macs,
                              sfp_error_t *err)
{
    sfp_report_t *rep = NULL;
    int rc = surgery_apply(copy, gs, r, err);
    if (rc == 0) rc = sfp_report_build(copy, NULL, &rep, err);
    if (rc == 0) *macs = rep->macs;
    sfp_report_free(rep);
    return rc;
}

int prune_macs_at_rate(const sfp_model_t *m, double rate, const char *skip, int64_t *macs, sfp_error_t *err)
{
    sfp_model_t *copy = NULL;
    sfp_groups_t *gs = NULL;
    sfp_removal_t *r = NULL;
    int rc = sfp_model_clone(m, &copy, err);
    if (rc == 0) rc = groups_find(copy, &gs, err);
    if (rc == 0) rc = removal_create(gs, &r, err);
    if (rc == 0) rc = prune_select_l2(copy, gs, rate, skip, r, err);
    if (rc == 0) rc = macs_after_removal(copy, gs, r, macs, err);
    removal_free(r);
    groups_free(gs);
    sfp_model_free(copy);
    return rc;
}

int prune_macs_removed(const sfp_model_t *m, const sfp_groups_t *gs, const sfp_removal_t *r, int64_t *macs,
                       sfp_error_t *err)
{
    sfp_model_t *copy = NULL;
    sfp_groups_t *copy_gs = NULL;
    sfp_removal_t *copy_r = NULL;
    int rc = sfp_model_clone(m, &copy, err);
    if (rc == 0) rc = groups_find(copy, &copy_gs, err);
    if (rc == 0) rc = removal_create(copy_gs, &copy_r, err);
    /* The copy's values are matched by name, not by id. */
    for (int v = 0; rc == 0 && v < r->n_values; v++) {
        if (!r->masks[v]) continue;
        int cv = graph_find_value(&copy->graph, m->graph.values[v].name);
        if (cv < 0 || !copy_r->masks[cv] || copy_gs->value_slots[cv] != gs->value_slots[v]) continue;
        memcpy(copy_r->masks[cv], r->masks[v], (size_t)gs->value_slots[v] * sizeof(bool));
    }
    if (rc == 0) rc = macs_after_removal(copy, copy_gs, copy_r, macs, err);
    removal_free(copy_r);
    groups_free(copy_gs);
    sfp_model_free(copy);
    return rc;
}

int prune_rate_for_flops(const sfp_model_t *m, double flops, const char *skip, double *rate, sfp_error_t *err)
{
    sfp_model_t *copy = NULL;
    sfp_report_t *rep = NULL;
    int rc = sfp_model_clone(m, &copy, err);
    if (rc == 0) rc = sfp_report_build(copy, NULL, &rep, err);
    int64_t base = rep ? rep->macs : 0, macs = 0;
    sfp_report_free(rep);
    sfp_model_free(copy);
    if (rc < 0) return rc;
    double target = (double)base * (1.0 - flops);
    if ((rc = prune_macs_at_rate(m, 0.99, skip, &macs, err)) < 0) return rc;
    if ((double)macs > target)
        return sfp_errorf(err, SFP_ERUNTIME, "--flops %.3f cannot be reached: pruning every prunable group at rate 0.99 removes only %.1f%% of MACs",
                          flops, 100.0 * (1.0 - (double)macs / (double)base));
    double lo = 0.0, hi = 0.99;
    while (hi - lo > 1e-3) {
        double mid = 0.5 * (lo + hi);
        if ((rc = prune_macs_at_rate(m, mid, skip, &macs, err)) < 0) return rc;
        if ((double)macs <= target) hi = mid;
        else lo = mid;
    }
    *rate = hi;
    return 0;
}
