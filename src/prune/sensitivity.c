/* Sensitivity of each channel group to pruning: the group pruned alone at a
 * few rates (lowest L2, no fine-tuning) on a masked copy of the model,
 * whose function equals the pruned model's, and the validation accuracy of
 * each. The table a user reads before choosing per-group rates. */
#include <math.h>
#include <stdlib.h>

#include "prune/prune.h"

static int accuracy_of(sfp_model_t *m, const sfp_dataset_t *ds, const sfp_data_prep_t *prep, int64_t batch,
                       int threads, double *acc, int64_t *images, sfp_error_t *err)
{
    sfp_evaluator_t *ev = NULL;
    sfp_eval_result_t r;
    int rc = evaluator_create(m, ds, prep, batch, threads, &ev, err);
    if (rc == 0) rc = evaluator_run(ev, &r, err);
    evaluator_free(ev);
    if (rc == 0) {
        *acc = r.accuracy;
        if (images) *images = r.images;
    }
    return rc;
}

/* Accuracy of m with only group gi losing its lowest-L2 `remove` channels. */
static int accuracy_pruned(sfp_model_t *m, const sfp_groups_t *gs, int gi, int remove, const sfp_dataset_t *ds,
                           const sfp_data_prep_t *prep, int64_t batch, int threads, double *acc, sfp_error_t *err)
{
    int *counts = calloc((size_t)gs->n, sizeof(int));
    sfp_removal_t *r = NULL;
    sfp_model_t *copy = NULL;
    int rc = counts ? removal_create(gs, &r, err) : sfp_errorf(err, SFP_ENOMEM, "out of memory");
    if (rc == 0) {
        counts[gi] = remove;
        rc = prune_select_counts(m, gs, counts, r, err);
    }
    if (rc == 0) rc = sfp_model_clone(m, &copy, err);
    if (rc == 0) rc = prune_mask_copy(copy, m, gs, r, err);
    if (rc == 0) rc = accuracy_of(copy, ds, prep, batch, threads, acc, NULL, err);
    sfp_model_free(copy);
    removal_free(r);
    free(counts);
    return rc;
}

int prune_sensitivity(sfp_model_t *m, const sfp_groups_t *gs, const double *rates, int n_rates, int round_to,
                      const char *skip, const sfp_dataset_t *ds, const sfp_data_prep_t *prep, int64_t batch, int threads,
                      void (*progress)(void *ctx, int done, int total), void *ctx, sfp_sensitivity_t *out,
                      sfp_error_t *err)
{
    *out = (sfp_sensitivity_t){0};
    if (n_rates < 1) return sfp_errorf(err, SFP_EUSAGE, "--rates: no rate given");
    for (int k = 0; k < n_rates; k++)
        if (!(rates[k] >= 0.0 && rates[k] < 1.0))
            return sfp_errorf(err, SFP_EUSAGE, "--rates: %g must be at least 0 and below 1", rates[k]);
    size_t cells = (size_t)(gs->n > 0 ? gs->n : 1) * (size_t)n_rates;
    out->accuracy = malloc(cells * sizeof(double));
    out->removed = calloc(cells, sizeof(int));
    out->n_groups = gs->n;
    out->n_rates = n_rates;
    int rc = out->accuracy && out->removed ? accuracy_of(m, ds, prep, batch, threads, &out->base_accuracy, &out->images, err)
                                           : sfp_errorf(err, SFP_ENOMEM, "out of memory");
    int total = 0, done = 0;
    for (int gi = 0; gi < gs->n; gi++) total += !prune_group_skipped(m, gs, gi, skip);
    for (int gi = 0; gi < gs->n && rc == 0; gi++) {
        bool left = prune_group_skipped(m, gs, gi, skip);
        for (int k = 0; k < n_rates && rc == 0; k++) {
            size_t at = (size_t)gi * (size_t)n_rates + (size_t)k;
            out->accuracy[at] = left ? (double)NAN : out->base_accuracy;
            const sfp_chan_group_t *grp = &gs->g[gi];
            out->removed[at] = left ? 0 : prune_group_count(grp, rates[k]);
            if (out->removed[at] > 0 && round_to > 1)
                out->removed[at] = prune_round_kept(grp->n_channels, prune_group_parts(grp),
                                                    out->removed[at], round_to);
            if (out->removed[at] > 0)
                rc = accuracy_pruned(m, gs, gi, out->removed[at], ds, prep, batch, threads, &out->accuracy[at], err);
        }
        if (!left && progress && rc == 0) progress(ctx, ++done, total);
    }
    if (rc < 0) prune_sensitivity_clear(out);
    return rc;
}

void prune_sensitivity_clear(sfp_sensitivity_t *s)
{
    free(s->accuracy);
    free(s->removed);
    *s = (sfp_sensitivity_t){0};
}
