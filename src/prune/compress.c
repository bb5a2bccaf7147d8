/* sfp_compress: the whole of `compress --epochs 0` as one library call: the
 * rate (or the --flops search), the dependency groups, the L2 choice, the
 * masked copy, the removal and the figures. */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "onnxsfp/compress.h"
#include "onnxsfp/report.h"
#include "prune/prune.h"

void sfp_compress_opts_default(sfp_compress_opts_t *o)
{
    *o = (sfp_compress_opts_t){.rate = 0.5, .flops = 0.0, .skip = NULL, .round_to = 1, .global = false};
}

bool prune_skip_matches(const sfp_model_t *m, const sfp_groups_t *gs, const char *pattern)
{
    for (int gi = 0; gi < gs->n; gi++)
        for (int k = 0; k < gs->g[gi].n_sources; k++)
            if (fnmatch(pattern, m->graph.nodes[gs->g[gi].sources[k]].name, 0) == 0) return true;
    return false;
}

static int count(sfp_model_t *m, int64_t *params, int64_t *macs, sfp_error_t *err)
{
    sfp_report_t *rep = NULL;
    int rc = sfp_report_build(m, NULL, &rep, err);
    if (rc == 0) {
        *params = rep->params;
        *macs = rep->macs;
    }
    sfp_report_free(rep);
    return rc;
}

int prune_mask_copy(sfp_model_t *copy, const sfp_model_t *m, const sfp_groups_t *gs, const sfp_removal_t *r,
                     sfp_error_t *err)
{
    sfp_groups_t *cgs = NULL;
    sfp_removal_t *cr = NULL;
    int rc = groups_find(copy, &cgs, err);
    if (rc == 0) rc = removal_create(cgs, &cr, err);
    for (int v = 0; rc == 0 && v < r->n_values; v++) {
        if (!r->masks[v]) continue;
        int cv = graph_find_value(&copy->graph, m->graph.values[v].name);
        if (cv < 0 || !cr->masks[cv] || cgs->value_slots[cv] != gs->value_slots[v])
            rc = sfp_errorf(err, SFP_ERUNTIME, "internal: value '%s' differs in the model's copy", sfp_q(m->graph.values[v].name));
        else
            memcpy(cr->masks[cv], r->masks[v], (size_t)gs->value_slots[v] * sizeof(bool));
    }
    if (rc == 0) rc = surgery_mask(copy, cgs, cr, err);
    removal_free(cr);
    groups_free(cgs);
    return rc;
}

int sfp_compress(sfp_model_t *m, const sfp_compress_opts_t *o, sfp_model_t **masked, sfp_compress_result_t *res,
                 sfp_error_t *err)
{
    sfp_compress_result_t r = {.rate = o->rate};
    sfp_groups_t *gs = NULL;
    sfp_removal_t *removal = NULL;
    sfp_model_t *copy = NULL;
    int rc = 0;
    if (masked) *masked = NULL;
    if (!(o->rate >= 0.0 && o->rate < 1.0)) return sfp_errorf(err, SFP_EUSAGE, "rate %g: must be at least 0 and below 1", o->rate);
    if (!(o->flops >= 0.0 && o->flops < 1.0))
        return sfp_errorf(err, SFP_EUSAGE, "flops %g: must be at least 0 and below 1", o->flops);
    if ((rc = count(m, &r.params_before, &r.macs_before, err)) < 0) return rc;
    if (!(o->round_to >= 0 && o->round_to <= 4096))
        return sfp_errorf(err, SFP_EUSAGE, "round_to %d: must be between 0 and 4096", o->round_to);
    sfp_rate_opts_t ro = {o->rate, o->flops, o->global, o->round_to, o->skip, NULL, 0};
    sfp_prune_counts_t *pc = NULL;
    if ((rc = groups_find(m, &gs, err)) < 0) return rc;
    if (o->skip && !prune_skip_matches(m, gs, o->skip))
        rc = sfp_errorf(err, SFP_EUSAGE, "skip pattern '%s' matches no layer", sfp_q(o->skip));
    if (rc == 0) rc = prune_counts_make(m, gs, &ro, &pc, err);
    if (rc == 0) r.rate = pc->rate;
    if (rc == 0) rc = removal_create(gs, &removal, err);
    if (rc == 0) rc = prune_select_counts(m, gs, pc->remove, removal, err);
    if (rc == 0 && masked && (rc = sfp_model_clone(m, &copy, err)) == 0) rc = prune_mask_copy(copy, m, gs, removal, err);
    if (rc == 0) {
        r.groups = gs->n;
        r.channels_removed = removal_n_channels(removal, gs);
        for (int gi = 0; gi < gs->n; gi++) {
            int removed = 0;
            for (int j = 0; j < gs->g[gi].n_channels && !removed; j++) removed = removal_has_channel(removal, gs, gi, j);
            r.groups_pruned += removed;
        }
        rc = surgery_apply(m, gs, removal, err);
    }
    if (rc == 0) rc = count(m, &r.params_after, &r.macs_after, err);
    removal_free(removal);
    prune_counts_free(pc);
    groups_free(gs);
    if (rc < 0) {
        sfp_model_free(copy);
        return rc;
    }
    if (masked) *masked = copy;
    if (res) *res = r;
    return 0;
}
