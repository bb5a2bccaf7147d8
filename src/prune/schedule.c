/* Pruning schedules while fine-tuning: SFP's zero-after-each-epoch (zeroed
 * filters may regrow), the smooth multiplicative decay to exact zero, and the
 * hybrid whose choice is part L2 norm, part redundancy. The pruner's only
 * state is its current choice, always re-derived from the weights, so a run
 * resumed from a checkpoint's weights continues exactly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prune/prune.h"
#include "util/util.h"

struct sfp_pruner {
    sfp_model_t *m;           /* borrowed */
    const sfp_groups_t *gs;   /* borrowed */
    sfp_prune_opts_t o;       /* o.skip points at skip_copy */
    char *skip_copy;          /* owned */
    int64_t total_steps;
    int *remove;              /* owned: channels removed per group (gs->n) */
    sfp_removal_t *choice;    /* owned: the channels currently chosen */
    bool have_choice;
    int64_t n_chosen;
    int64_t macs_before, macs_after; /* batch 1: the model as given, and after the removal at o.rate */
};

void pruner_opts_default(sfp_prune_opts_t *o)
{
    *o = (sfp_prune_opts_t){.method = SFP_PRUNE_SMOOTH, .rate = 0.5, .cluster_rate = 0.0, .decay_fraction = 0.2};
}

int pruner_create(sfp_model_t *m, const sfp_groups_t *gs, const sfp_prune_opts_t *o, int64_t total_steps,
                  sfp_pruner_t **out, sfp_error_t *err)
{
    *out = NULL;
    if (o->method != SFP_PRUNE_SFP && o->method != SFP_PRUNE_SMOOTH && o->method != SFP_PRUNE_HYBRID)
        return sfp_errorf(err, SFP_EUSAGE, "--method: unknown pruning method %d", (int)o->method);
    if (!(o->rate >= 0.0 && o->rate < 1.0))
        return sfp_errorf(err, SFP_EUSAGE, "--rate %g: must be at least 0 and below 1", o->rate);
    if (!(o->cluster_rate >= 0.0 && o->cluster_rate < 1.0))
        return sfp_errorf(err, SFP_EUSAGE, "--cluster-rate %g: must be at least 0 and below 1", o->cluster_rate);
    if (o->method != SFP_PRUNE_SFP && !(o->decay_fraction > 0.0 && o->decay_fraction <= 1.0))
        return sfp_errorf(err, SFP_EUSAGE, "--decay-fraction %g: must be above 0 and at most 1", o->decay_fraction);
    if (total_steps < 1)
        return sfp_errorf(err, SFP_EUSAGE, "pruning schedule over %lld training steps: needs at least 1",
                          (long long)total_steps);
    if (gs->n_values != m->graph.n_values)
        return sfp_errorf(err, SFP_ERUNTIME, "internal: groups were computed for another graph");
    sfp_pruner_t *p = calloc(1, sizeof *p);
    if (!p) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    p->m = m;
    p->gs = gs;
    p->o = *o;
    p->total_steps = total_steps;
    int rc = removal_create(gs, &p->choice, err);
    if (rc == 0 && o->skip && !(p->skip_copy = sfp_strdup(o->skip))) rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
    if (rc < 0) {
        pruner_free(p);
        return rc;
    }
    p->o.skip = p->skip_copy;
    p->o.remove = NULL;
    if (!(p->remove = calloc((size_t)(gs->n > 0 ? gs->n : 1), sizeof(int)))) rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int gi = 0; rc == 0 && gi < gs->n; gi++)
        p->remove[gi] = o->remove                                    ? o->remove[gi]
                        : prune_group_skipped(m, gs, gi, p->o.skip) ? 0
                                                                     : prune_group_count(&gs->g[gi], o->rate);
    if (rc < 0 || (rc = prune_macs_at_rate(m, gs, 0.0, NULL, &p->macs_before, err)) < 0 ||
        (rc = prune_macs_counts(m, gs, p->remove, &p->macs_after, err)) < 0) {
        pruner_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void pruner_macs(const sfp_pruner_t *p, int64_t *before, int64_t *after)
{
    *before = p->macs_before;
    *after = p->macs_after;
}

bool pruner_decays(const sfp_pruner_t *p)
{
    return p->o.method != SFP_PRUNE_SFP;
}

void pruner_free(sfp_pruner_t *p)
{
    if (!p) return;
    removal_free(p->choice);
    free(p->remove);
    free(p->skip_copy);
    free(p);
}

double pruner_alpha(const sfp_pruner_t *p, int64_t step)
{
    if (p->o.method == SFP_PRUNE_SFP || step <= 0) return 1.0;
    double span = p->o.decay_fraction * (double)p->total_steps;
    if (span < 1.0) return 0.0; /* shorter than one step: gone after the first */
    double alpha = 1.0 - (double)step / span;
    return alpha > 0.0 ? alpha : 0.0;
}

/* ---- hybrid: redundancy ----
 * Why: a filter whose direction nearly equals another's produces (up to a
 * scale the following BN absorbs) the same feature map, so it carries
 * information the network still has through its twin; removing it costs
 * less than its L2 norm suggests, while the L2 criterion alone would keep
 * both twins and drop a small filter that is unique. Each channel is the
 * concatenation of the source filter rows prune_score_l2 sums over, scaled
 * to unit length, so the Euclidean distance is a cosine distance. The closest
 * pair among the remaining channels loses its member with the smaller L2
 * score (prune_score_l2; ties: the higher index), which leaves the set with
 * its distances; repeat. An all-zero filter counts as a duplicate of anything
 * (distance 0): it carries nothing, and so a choice that has decayed to
 * exactly zero is chosen again at the next epoch. */

/* Squared distance; four partial sums so the loop pipelines (same order on
 * every run: deterministic). */
static double dist_sq(const double *a, const double *b, int64_t d)
{
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t e = 0;
    for (; e + 4 <= d; e += 4)
        for (int k = 0; k < 4; k++) {
            double t = a[e + k] - b[e + k];
            s[k] += t * t;
        }
    for (; e < d; e++) s[0] += (a[e] - b[e]) * (a[e] - b[e]);
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Length of channel j's concatenated filter rows; rows stay in slot order. */
static int channel_length(const sfp_model_t *m, const sfp_groups_t *gs, int gi, int j, int64_t *len, sfp_error_t *err)
{
    const sfp_chan_group_t *grp = &gs->g[gi];
    *len = 0;
    for (int k = grp->slot_start[j]; k < grp->slot_start[j + 1]; k++) {
        sfp_filter_row_t fr;
        int rc = prune_filter_row(m, gs, gi, k, &fr, err);
        if (rc < 0) return rc;
        if (fr.w) *len += fr.outer * fr.inner;
    }
    return 0;
}

/* Fills vec (d entries) with channel j's filters at unit length; *is_zero when
 * they are all zero (vec is then zero). */
static int channel_unit_vector(const sfp_model_t *m, const sfp_groups_t *gs, int gi, int j, double *vec, int64_t d,
                               bool *is_zero, sfp_error_t *err)
{
    const sfp_chan_group_t *grp = &gs->g[gi];
    double *at = vec, sum = 0.0;
    for (int k = grp->slot_start[j]; k < grp->slot_start[j + 1]; k++) {
        sfp_filter_row_t fr;
        int rc = prune_filter_row(m, gs, gi, k, &fr, err);
        if (rc < 0) return rc;
        if (!fr.w) continue;
        prune_filter_row_copy(&fr, at);
        at += fr.outer * fr.inner;
    }
    for (int64_t e = 0; e < d; e++) sum += vec[e] * vec[e];
    *is_zero = !(sum > 0.0);
    if (*is_zero) {
        memset(vec, 0, sizeof(double) * (size_t)d);
        return 0;
    }
    double inv = 1.0 / sqrt(sum);
    for (int64_t e = 0; e < d; e++) vec[e] *= inv;
    return 0;
}

/* Nearest remaining neighbour of i (ties: lower index); -1 when none. */
static void nearest(const double *dist, int ns, const bool *alive, int i, int *nn, double *nn_dist)
{
    nn[i] = -1;
    nn_dist[i] = INFINITY;
    for (int j = 0; j < ns; j++)
        if (j != i && alive[j] && dist[(size_t)i * (size_t)ns + (size_t)j] < nn_dist[i]) {
            nn_dist[i] = dist[(size_t)i * (size_t)ns + (size_t)j];
            nn[i] = j;
        }
}

/* Work space of one redundancy choice: ns remaining channels of length d. */
typedef struct cluster_ws {
    int ns;
    int64_t d;
    int *idx;        /* channel index of each remaining channel, ascending */
    double *vec;     /* ns x d unit vectors */
    bool *is_zero;
    double *dist;    /* ns x ns squared distances */
    bool *alive;
    int *nn;
    double *nn_dist;
} cluster_ws_t;

static void cluster_ws_free(cluster_ws_t *w)
{
    free(w->idx);
    free(w->vec);
    free(w->is_zero);
    free(w->dist);
    free(w->alive);
    free(w->nn);
    free(w->nn_dist);
}

/* Survivors of the L2 part, their unit vectors and all pairwise distances. */
static int cluster_ws_fill(const sfp_model_t *m, const sfp_groups_t *gs, int gi, const bool *chosen, cluster_ws_t *w,
                           sfp_error_t *err)
{
    const sfp_chan_group_t *grp = &gs->g[gi];
    size_t ns = 0, vec_bytes = 0, dist_bytes = 0;
    int rc = 0;
    for (int j = 0; j < grp->n_channels; j++) ns += !chosen[j];
    w->ns = (int)ns;
    w->idx = malloc(sizeof(int) * ns);
    w->is_zero = malloc(sizeof(bool) * ns);
    w->alive = malloc(sizeof(bool) * ns);
    w->nn = malloc(sizeof(int) * ns);
    w->nn_dist = malloc(sizeof(double) * ns);
    if (!w->idx || !w->is_zero || !w->alive || !w->nn || !w->nn_dist) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int j = 0, at = 0; j < grp->n_channels; j++)
        if (!chosen[j]) w->idx[at++] = j;
    for (size_t i = 0; i < ns && rc == 0; i++) {
        int64_t len = 0;
        rc = channel_length(m, gs, gi, w->idx[i], &len, err);
        if (rc == 0 && i == 0) w->d = len;
        else if (rc == 0 && len != w->d)
            rc = sfp_errorf(err, SFP_EUNSUPPORTED, "channel group '%s': channels %d and %d have filters of different sizes (%lld, %lld); cannot compare them",
                            sfp_q(grp->label), w->idx[0], w->idx[i], (long long)w->d, (long long)len);
    }
    if (rc < 0) return rc;
    if (!sfp_mul_size(ns, (size_t)w->d, &vec_bytes) || !sfp_mul_size(vec_bytes, sizeof(double), &vec_bytes) ||
        !sfp_mul_size(ns, ns, &dist_bytes) || !sfp_mul_size(dist_bytes, sizeof(double), &dist_bytes) ||
        !(w->vec = malloc(vec_bytes ? vec_bytes : 1)) || !(w->dist = malloc(dist_bytes ? dist_bytes : 1)))
        return sfp_errorf(err, SFP_ENOMEM, "channel group '%s': out of memory for the distances of %zu channels",
                          sfp_q(grp->label), ns);
    for (size_t i = 0; i < ns && rc == 0; i++)
        rc = channel_unit_vector(m, gs, gi, w->idx[i], w->vec + i * (size_t)w->d, w->d, &w->is_zero[i], err);
    if (rc < 0) return rc;
    for (size_t i = 0; i < ns; i++) {
        w->dist[i * ns + i] = 0.0;
        for (size_t j = i + 1; j < ns; j++) {
            double d = w->is_zero[i] || w->is_zero[j]
                           ? 0.0
                           : dist_sq(w->vec + i * (size_t)w->d, w->vec + j * (size_t)w->d, w->d);
            w->dist[i * ns + j] = w->dist[j * ns + i] = d;
        }
        w->alive[i] = true;
    }
    return 0;
}

/* Chooses n_cluster more channels of group gi by redundancy among those not
 * chosen yet (n_cluster < the number not chosen). */
static int choose_redundant(const sfp_model_t *m, const sfp_groups_t *gs, int gi, const double *scores, bool *chosen,
                            int n_cluster, sfp_error_t *err)
{
    cluster_ws_t w = {0};
    int rc = cluster_ws_fill(m, gs, gi, chosen, &w, err);
    for (int i = 0; i < w.ns && rc == 0; i++) nearest(w.dist, w.ns, w.alive, i, w.nn, w.nn_dist);
    for (int c = 0; c < n_cluster && rc == 0; c++) {
        int best = -1; /* first in index order among the closest: ties go to the lower pair */
        for (int i = 0; i < w.ns; i++)
            if (w.alive[i] && w.nn[i] >= 0 && (best < 0 || w.nn_dist[i] < w.nn_dist[best])) best = i;
        if (best < 0) {
            rc = sfp_errorf(err, SFP_ERUNTIME, "channel group '%s': filter distances are not finite (training diverged?)",
                            sfp_q(gs->g[gi].label));
            break;
        }
        int a = best, b = w.nn[best];
        double sa = scores[w.idx[a]], sb = scores[w.idx[b]];
        int victim = sa < sb ? a : sb < sa ? b : (w.idx[a] > w.idx[b] ? a : b);
        chosen[w.idx[victim]] = true;
        w.alive[victim] = false;
        for (int i = 0; i < w.ns; i++)
            if (w.alive[i] && w.nn[i] == victim) nearest(w.dist, w.ns, w.alive, i, w.nn, w.nn_dist);
    }
    cluster_ws_free(&w);
    return rc;
}

/* Hybrid choice for one group: the lowest-L2 part first, then redundancy
 * among the rest; in a group that grouped convolutions split, part by part
 * (the other parts' channels count as chosen while one part is clustered). */
static int choose_hybrid_group(sfp_pruner_t *p, int gi, sfp_error_t *err)
{
    const sfp_chan_group_t *grp = &p->gs->g[gi];
    int n = grp->n_channels, parts = prune_group_parts(grp);
    int total = p->remove[gi] / parts; /* per part */
    if (total <= 0) return 0;
    int n_cluster = prune_count(n / parts, p->o.cluster_rate);
    if (n_cluster > total) n_cluster = total;
    double *scores = malloc(sizeof(double) * (size_t)n);
    int *order = malloc(sizeof(int) * (size_t)n);
    bool *chosen = calloc((size_t)n, sizeof(bool)), *masked = malloc(sizeof(bool) * (size_t)n);
    int rc = scores && order && chosen && masked ? prune_rank_l2(p->m, p->gs, gi, scores, order, err)
                                                 : sfp_errorf(err, SFP_ENOMEM, "out of memory");
    if (rc == 0) rc = prune_take_lowest(grp, order, total - n_cluster, chosen, err);
    for (int part = 0; part < parts && rc == 0 && n_cluster > 0; part++) {
        for (int j = 0; j < n; j++) masked[j] = chosen[j] || (grp->segment && grp->segment[j] != part);
        rc = choose_redundant(p->m, p->gs, gi, scores, masked, n_cluster, err);
        for (int j = 0; j < n && rc == 0; j++)
            if (masked[j] && (!grp->segment || grp->segment[j] == part)) chosen[j] = true;
    }
    for (int j = 0; j < n && rc == 0; j++)
        if (chosen[j]) removal_add_channel(p->choice, p->gs, gi, j);
    free(scores);
    free(order);
    free(chosen);
    free(masked);
    return rc;
}

/* Chooses from the current weights (a function of the weights only). */
static int choose(sfp_pruner_t *p, sfp_error_t *err)
{
    int rc = 0;
    removal_clear(p->choice, p->gs);
    p->have_choice = false;
    if (p->o.method != SFP_PRUNE_HYBRID) rc = prune_select_counts(p->m, p->gs, p->remove, p->choice, err);
    for (int gi = 0; gi < p->gs->n && rc == 0 && p->o.method == SFP_PRUNE_HYBRID; gi++)
        rc = choose_hybrid_group(p, gi, err);
    if (rc < 0) {
        removal_clear(p->choice, p->gs);
        p->n_chosen = 0;
        return rc;
    }
    p->n_chosen = removal_n_channels(p->choice, p->gs);
    p->have_choice = true;
    return 0;
}

int pruner_epoch_begin(sfp_pruner_t *p, int64_t epoch, int64_t step, sfp_error_t *err)
{
    if (epoch < 0 || step < 0)
        return sfp_errorf(err, SFP_ERUNTIME, "internal: pruner_epoch_begin(epoch %lld, step %lld)", (long long)epoch,
                          (long long)step);
    int rc = choose(p, err);
    /* sfp re-chooses too, for pruner_choice: the weights left by the previous
     * epoch's end give the same choice, so a resumed run matches. */
    if (rc == 0 && p->o.method == SFP_PRUNE_SFP && epoch == 0) rc = surgery_scale(p->m, p->gs, p->choice, 0.0f, err);
    return rc;
}

int pruner_after_step(sfp_pruner_t *p, int64_t step, sfp_error_t *err)
{
    if (p->o.method == SFP_PRUNE_SFP) return 0;
    if (!p->have_choice)
        return sfp_errorf(err, SFP_ERUNTIME, "internal: pruner_after_step(%lld) before pruner_epoch_begin",
                          (long long)step);
    double before = pruner_alpha(p, step), after = pruner_alpha(p, step + 1);
    if (after > 0.0 && after == before) return 0;
    /* alpha is non-increasing: after > 0 implies before > 0; once it is 0 the
     * choice is zeroed after every step (the step may have moved it) */
    float factor = after > 0.0 ? (float)(after / before) : 0.0f;
    return surgery_scale(p->m, p->gs, p->choice, factor, err);
}

int pruner_epoch_end(sfp_pruner_t *p, int64_t epoch, sfp_error_t *err)
{
    if (epoch < 0) return sfp_errorf(err, SFP_ERUNTIME, "internal: pruner_epoch_end(epoch %lld)", (long long)epoch);
    if (p->o.method != SFP_PRUNE_SFP) return 0;
    int rc = choose(p, err);
    return rc < 0 ? rc : surgery_scale(p->m, p->gs, p->choice, 0.0f, err);
}

int pruner_finish(sfp_pruner_t *p, sfp_removal_t *r, sfp_error_t *err)
{
    int rc = 0;
    if (r->n_values != p->gs->n_values)
        return sfp_errorf(err, SFP_ERUNTIME, "internal: pruner_finish: removal made for other groups");
    if (!p->have_choice && (rc = choose(p, err)) < 0) return rc;
    if ((rc = surgery_scale(p->m, p->gs, p->choice, 0.0f, err)) < 0) return rc;
    for (int gi = 0; gi < p->gs->n; gi++)
        for (int j = 0; j < p->gs->g[gi].n_channels; j++)
            if (removal_has_channel(p->choice, p->gs, gi, j)) removal_add_channel(r, p->gs, gi, j);
    return 0;
}

int64_t pruner_n_chosen(const sfp_pruner_t *p)
{
    return p->n_chosen;
}

const sfp_removal_t *pruner_choice(const sfp_pruner_t *p)
{
    return p->choice;
}

/* ---- checkpoint state ---- */
/* Version 2 adds each group's count (u32, after its channel count), so a
 * resumed run removes what the first run decided even where the counts came
 * from the weights (--global); version 1 states are still read. */
static const char choice_magic[8] = {'S', 'F', 'P', 'P', 'R', 'U', 'N', '2'};

static void put_u32(sfp_buf_t *b, uint32_t v)
{
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    sfp_buf_append(b, le, 4);
}

static bool get_u32(const uint8_t *buf, size_t len, size_t *pos, uint32_t *v)
{
    if (len - *pos < 4) return false;
    const uint8_t *q = buf + *pos;
    *v = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    *pos += 4;
    return true;
}

int pruner_save_choice(const sfp_pruner_t *p, uint8_t **out, size_t *len, sfp_error_t *err)
{
    sfp_buf_t b = {0};
    sfp_buf_append(&b, choice_magic, sizeof choice_magic);
    put_u32(&b, p->have_choice ? 1u : 0u);
    put_u32(&b, (uint32_t)p->gs->n);
    for (int gi = 0; gi < p->gs->n; gi++) {
        put_u32(&b, (uint32_t)p->gs->g[gi].n_channels);
        put_u32(&b, (uint32_t)p->remove[gi]);
        for (int j = 0; j < p->gs->g[gi].n_channels; j++) {
            uint8_t c = removal_has_channel(p->choice, p->gs, gi, j) ? 1 : 0;
            sfp_buf_append(&b, &c, 1);
        }
    }
    if (b.failed) {
        free(b.data);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    *out = b.data;
    *len = b.len;
    return 0;
}

int pruner_load_choice(sfp_pruner_t *p, const uint8_t *buf, size_t len, sfp_error_t *err)
{
    size_t pos = sizeof choice_magic;
    uint32_t have = 0, ng = 0;
    if (!buf || len < pos || memcmp(buf, choice_magic, sizeof choice_magic - 1) != 0 ||
        (buf[sizeof choice_magic - 1] != '1' && buf[sizeof choice_magic - 1] != '2'))
        return sfp_errorf(err, SFP_EBADDATA, "pruning state: not an onnx-sfp pruner state");
    if (!get_u32(buf, len, &pos, &have) || !get_u32(buf, len, &pos, &ng) || have > 1)
        return sfp_errorf(err, SFP_EBADDATA, "pruning state: truncated header");
    if (ng != (uint32_t)p->gs->n)
        return sfp_errorf(err, SFP_EBADDATA, "pruning state: made for %u channel groups, this model has %d", ng,
                          p->gs->n);
    const bool has_counts = buf[sizeof choice_magic - 1] == '2';
    int *remove = malloc(sizeof(int) * (size_t)(p->gs->n > 0 ? p->gs->n : 1));
    if (!remove) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    memcpy(remove, p->remove, sizeof(int) * (size_t)p->gs->n);
    removal_clear(p->choice, p->gs);
    for (int gi = 0; gi < p->gs->n; gi++) {
        uint32_t nc = 0, count = 0;
        const sfp_chan_group_t *grp = &p->gs->g[gi];
        int parts = prune_group_parts(grp);
        if (!get_u32(buf, len, &pos, &nc) || nc != (uint32_t)grp->n_channels ||
            (has_counts && (!get_u32(buf, len, &pos, &count) || count >= nc ||
                            (count > 0 && (!grp->prunable || count % (uint32_t)parts != 0)))) ||
            len - pos < nc) {
            free(remove);
            removal_clear(p->choice, p->gs);
            return sfp_errorf(err, SFP_EBADDATA, "pruning state: group %d does not match this model's (%d channels)",
                              gi, p->gs->g[gi].n_channels);
        }
        if (has_counts) remove[gi] = (int)count;
        for (uint32_t j = 0; j < nc; j++)
            if (buf[pos + j]) removal_add_channel(p->choice, p->gs, gi, (int)j);
        pos += nc;
    }
    int rc = 0;
    if (pos != len) rc = sfp_errorf(err, SFP_EBADDATA, "pruning state: %zu bytes after the last group", len - pos);
    if (rc == 0 && has_counts) {
        memcpy(p->remove, remove, sizeof(int) * (size_t)p->gs->n);
        rc = prune_macs_counts(p->m, p->gs, p->remove, &p->macs_after, err);
    }
    free(remove);
    if (rc < 0) {
        removal_clear(p->choice, p->gs);
        return rc;
    }
    p->have_choice = have != 0;
    p->n_chosen = removal_n_channels(p->choice, p->gs);
    return 0;
}
