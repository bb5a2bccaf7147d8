/* How many channels each dependency group loses, decided once from the
 * options: a uniform rate, per-pattern rates (--rates FILE), a global
 * ranking across groups (--global), the --flops search over any of these,
 * and the rounding of the kept counts (--round-to). Every later choice
 * (prune_select_counts, the fine-tuning schedules) takes these counts. */
#include <fnmatch.h>
#include <json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prune/prune.h"
#include "util/util.h"

void prune_rules_free(sfp_rate_rule_t *rules, int n)
{
    for (int i = 0; rules && i < n; i++) free(rules[i].pattern);
    free(rules);
}

int prune_rules_parse(const char *text, const char *path, sfp_rate_rule_t **rules, int *n, sfp_error_t *err)
{
    *rules = NULL;
    *n = 0;
    json_object *root = json_tokener_parse(text);
    if (!root || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return sfp_errorf(err, SFP_EUSAGE, "--rates %s: not a JSON object of pattern -> rate", sfp_q(path));
    }
    int count = json_object_object_length(root), rc = 0, i = 0;
    sfp_rate_rule_t *out = calloc(count > 0 ? (size_t)count : 1, sizeof *out);
    if (!out) rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
    /* json-c keeps the keys in file order: first match wins */
    json_object_object_foreach(root, key, val)
    {
        if (rc < 0) break;
        double rate = json_object_get_double(val);
        if (!(json_object_is_type(val, json_type_double) || json_object_is_type(val, json_type_int)) ||
            !(rate >= 0.0 && rate < 1.0))
            rc = sfp_errorf(err, SFP_EUSAGE, "--rates %s: \"%s\": the rate must be a number in [0, 1)", sfp_q(path),
                            sfp_q(key));
        else if (!(out[i].pattern = sfp_strdup(key)))
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        else
            out[i++].rate = rate;
    }
    json_object_put(root);
    if (rc < 0) {
        prune_rules_free(out, i);
        return rc;
    }
    *rules = out;
    *n = i;
    return 0;
}

int prune_rules_load(const char *path, sfp_rate_rule_t **rules, int *n, sfp_error_t *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = sfp_read_file(path, 1 << 20, &buf, &len, err);
    if (rc < 0) return rc;
    char *text = malloc(len + 1);
    if (!text) rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
    else {
        memcpy(text, buf, len);
        text[len] = '\0';
        rc = prune_rules_parse(text, path, rules, n, err);
    }
    free(text);
    free(buf);
    return rc;
}

bool prune_group_matches(const sfp_model_t *m, const sfp_groups_t *gs, int gi, const char *pattern)
{
    const sfp_chan_group_t *grp = &gs->g[gi];
    if (fnmatch(pattern, grp->label, 0) == 0) return true;
    for (int k = 0; k < grp->n_sources; k++)
        if (fnmatch(pattern, m->graph.nodes[grp->sources[k]].name, 0) == 0) return true;
    return false;
}

int prune_round_kept(int n_channels, int parts, int remove, int round_to)
{
    if (parts < 1) parts = 1;
    int size = n_channels / parts, per_part = remove / parts;
    if (round_to <= 1 || per_part <= 0) return parts * (per_part > 0 ? per_part : 0);
    if (size < round_to) return 0; /* a part smaller than N stays whole */
    int kept = size - per_part;
    int rounded = (kept + round_to / 2) / round_to * round_to; /* nearest multiple, ties upwards */
    int most = size / round_to * round_to;
    if (rounded < round_to) rounded = round_to;
    if (rounded > most) rounded = most;
    return parts * (size - rounded);
}

/* One channel of the global ranking. */
typedef struct ranked {
    double importance;
    int group, index;
} ranked_t;

static int cmp_ranked(const void *pa, const void *pb)
{
    const ranked_t *a = pa, *b = pb;
    if (a->importance != b->importance) return a->importance < b->importance ? -1 : 1;
    if (a->group != b->group) return a->group - b->group;
    return a->index - b->index;
}

/* What the counts are made from, computed once per prune_counts_make. */
typedef struct rate_ctx {
    sfp_model_t *m;
    const sfp_groups_t *gs;
    const sfp_rate_opts_t *o;
    double *fixed;      /* per group: the --rates rate, or -1 (follows the rate being searched), or -2 (left whole) */
    ranked_t *ranked;   /* --global: every channel of the groups that follow the rate, ascending importance */
    int64_t n_ranked;
} rate_ctx_t;

/* Global ranking: a channel's L2 score over its group's mean score, so a
 * layer's scale (its fan-in, the BN after it) cancels; a group with a long
 * tail of weak filters loses more of them than a group of even ones. */
static int rank_global(rate_ctx_t *c, sfp_error_t *err)
{
    const sfp_groups_t *gs = c->gs;
    int64_t total = 0;
    for (int gi = 0; gi < gs->n; gi++)
        if (c->fixed[gi] == -1.0) total += gs->g[gi].n_channels;
    c->ranked = malloc(sizeof *c->ranked * (size_t)(total > 0 ? total : 1));
    if (!c->ranked) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int gi = 0; gi < gs->n; gi++) {
        if (c->fixed[gi] != -1.0) continue;
        int n = gs->g[gi].n_channels;
        double *scores = malloc(sizeof(double) * (size_t)n), mean = 0.0;
        if (!scores) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        int rc = prune_score_l2(c->m, gs, gi, scores, err);
        if (rc < 0) {
            free(scores);
            return rc;
        }
        for (int j = 0; j < n; j++) mean += scores[j] / (double)n;
        for (int j = 0; j < n; j++)
            c->ranked[c->n_ranked++] = (ranked_t){mean > 0.0 ? scores[j] / mean : 0.0, gi, j};
        free(scores);
    }
    qsort(c->ranked, (size_t)c->n_ranked, sizeof *c->ranked, cmp_ranked);
    return 0;
}

/* Counts at one value of the rate (the one --flops searches). */
static void counts_at(const rate_ctx_t *c, double rate, int *remove)
{
    const sfp_groups_t *gs = c->gs;
    for (int gi = 0; gi < gs->n; gi++) {
        const sfp_chan_group_t *grp = &gs->g[gi];
        double r = c->fixed[gi] >= 0.0 ? c->fixed[gi] : rate;
        remove[gi] = c->fixed[gi] == -2.0 || (c->o->global && c->fixed[gi] == -1.0) ? 0 : prune_group_count(grp, r);
    }
    if (c->o->global) {
        /* the lowest floor(rate * N) of the N ranked channels, never a
         * group's last channel of a part */
        int64_t want = (int64_t)floor(rate * (double)c->n_ranked + 1e-9), taken = 0;
        for (int64_t i = 0; i < c->n_ranked && taken < want; i++) {
            const sfp_chan_group_t *grp = &gs->g[c->ranked[i].group];
            int parts = prune_group_parts(grp);
            if (remove[c->ranked[i].group] >= grp->n_channels - parts) continue;
            remove[c->ranked[i].group]++;
            taken++;
        }
        for (int gi = 0; gi < gs->n; gi++)
            if (c->fixed[gi] == -1.0) remove[gi] -= remove[gi] % prune_group_parts(&gs->g[gi]); /* equal parts */
    }
    for (int gi = 0; gi < gs->n; gi++) {
        const sfp_chan_group_t *grp = &gs->g[gi];
        remove[gi] = prune_round_kept(grp->n_channels, prune_group_parts(grp), remove[gi], c->o->round_to);
    }
}

static int search_flops(rate_ctx_t *c, int *remove, double *rate, sfp_error_t *err)
{
    int64_t base = 0, macs = 0;
    int *none = calloc((size_t)(c->gs->n > 0 ? c->gs->n : 1), sizeof(int));
    if (!none) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    int rc = prune_macs_counts(c->m, c->gs, none, &base, err);
    free(none);
    double target = (double)base * (1.0 - c->o->flops);
    if (rc == 0) {
        counts_at(c, 0.99, remove);
        rc = prune_macs_counts(c->m, c->gs, remove, &macs, err);
    }
    if (rc == 0 && (double)macs > target)
        return sfp_errorf(err, SFP_ERUNTIME, "--flops %.3f cannot be reached: pruning every prunable group at rate 0.99 removes only %.1f%% of MACs",
                          c->o->flops, 100.0 * (1.0 - (double)macs / (double)base));
    double lo = 0.0, hi = 0.99;
    while (rc == 0 && hi - lo > 1e-3) {
        double mid = 0.5 * (lo + hi);
        counts_at(c, mid, remove);
        if ((rc = prune_macs_counts(c->m, c->gs, remove, &macs, err)) < 0) break;
        if ((double)macs <= target) hi = mid;
        else lo = mid;
    }
    if (rc == 0) {
        *rate = hi;
        counts_at(c, hi, remove);
    }
    return rc;
}

int prune_counts_make(sfp_model_t *m, const sfp_groups_t *gs, const sfp_rate_opts_t *o, sfp_prune_counts_t **out,
                      sfp_error_t *err)
{
    *out = NULL;
    if (!(o->rate >= 0.0 && o->rate < 1.0)) return sfp_errorf(err, SFP_EUSAGE, "--rate %g: must be at least 0 and below 1", o->rate);
    if (!(o->flops >= 0.0 && o->flops < 1.0))
        return sfp_errorf(err, SFP_EUSAGE, "--flops %g: must be at least 0 and below 1", o->flops);
    if (o->round_to < 0 || o->round_to > 4096)
        return sfp_errorf(err, SFP_EUSAGE, "--round-to %d: must be between 1 and 4096", o->round_to);
    if (gs->n_values != m->graph.n_values)
        return sfp_errorf(err, SFP_ERUNTIME, "internal: groups were computed for another graph");
    sfp_prune_counts_t *pc = calloc(1, sizeof *pc);
    rate_ctx_t c = {m, gs, o, NULL, NULL, 0};
    size_t ng = (size_t)(gs->n > 0 ? gs->n : 1);
    int rc = 0;
    if (!pc || !(pc->remove = calloc(ng, sizeof(int))) || !(c.fixed = malloc(ng * sizeof(double))))
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int gi = 0; rc == 0 && gi < gs->n; gi++) {
        c.fixed[gi] = prune_group_skipped(m, gs, gi, o->skip) ? -2.0 : -1.0;
        for (int k = 0; k < o->n_rules && c.fixed[gi] == -1.0; k++)
            if (prune_group_matches(m, gs, gi, o->rules[k].pattern)) c.fixed[gi] = o->rules[k].rate;
    }
    if (rc == 0 && o->global) rc = rank_global(&c, err);
    if (rc == 0) {
        pc->n = gs->n;
        pc->rate = o->rate;
        if (o->flops > 0.0) rc = search_flops(&c, pc->remove, &pc->rate, err);
        else counts_at(&c, o->rate, pc->remove);
    }
    free(c.fixed);
    free(c.ranked);
    if (rc < 0) {
        prune_counts_free(pc);
        return rc;
    }
    *out = pc;
    return 0;
}

void prune_counts_free(sfp_prune_counts_t *pc)
{
    if (!pc) return;
    free(pc->remove);
    free(pc);
}
