/* Choosing channels to prune: the criteria (criteria.c: filter rows and L2
 * scores per dependency group), the uniform rate of --rate and the search
 * behind --flops (select.c), and the schedules that prune while fine-tuning
 * (schedule.c). */
#ifndef SFP_PRUNE_H
#define SFP_PRUNE_H

#include "surgery/surgery.h"
#include "train/train.h"

/* The equal parts a group's channels are cut into: its grouped
 * convolutions' segments, or 1. Channels are removed part by part. */
static inline int prune_group_parts(const sfp_chan_group_t *grp)
{
    return grp->n_segments > 1 ? grp->n_segments : 1;
}

/* L2 score of every channel of group gi: the sum over its source layers of
 * the L2 norm of the filter (weight row) that makes the channel. out has
 * n_channels entries. */
int prune_score_l2(const sfp_model_t *m, const sfp_groups_t *gs, int gi, double *out, sfp_error_t *err);

/* The filter (weight row) behind one slot entry of a group, when a
 * Conv/Gemm/MatMul produces that slot's value. Borrows the weight's data.
 * The row has outer * inner elements; element (i, e) is
 * w[(i * len + row) * inner + e] (Conv: outer 1; Gemm/MatMul with the
 * outputs on axis 1: inner 1). */
typedef struct sfp_filter_row {
    const float *w;           /* NULL: the slot is not made by a source layer */
    int64_t outer, len, inner, row;
} sfp_filter_row_t;

/* Fills *out for slot entry k (slot_start[j] <= k < slot_start[j+1]) of
 * group gi. A source whose weight is not a float constant is SFP_EUNSUPPORTED. */
int prune_filter_row(const sfp_model_t *m, const sfp_groups_t *gs, int gi, int k, sfp_filter_row_t *out,
                      sfp_error_t *err);
/* Copies the row's elements into dst (outer * inner entries), in (i, e) order. */
void prune_filter_row_copy(const sfp_filter_row_t *fr, double *dst);

/* Channels removed from a group of n_channels at a rate: floor(rate * n + 1e-9),
 * never all of them. */
int prune_count(int n_channels, double rate);

/* Channels removed from a group at a rate: prune_count of each of its parts
 * (grouped convolutions: equal parts lose equally), summed. */
int prune_group_count(const sfp_chan_group_t *grp, double rate);

/* Marks in chosen[] the first per_segment channels of order[] (first goes
 * first) in each part of grp, skipping those chosen[] holds already. */
int prune_take_lowest(const sfp_chan_group_t *grp, const int *order, int per_segment, bool *chosen, sfp_error_t *err);

/* True when the shell pattern matches the name of a layer that makes some
 * group's channels (what --skip is matched against). */
bool prune_skip_matches(const sfp_model_t *m, const sfp_groups_t *gs, const char *pattern);

/* True when group gi is left alone: not prunable, or one of its layers' names
 * matches the fnmatch pattern skip (NULL: none). */
bool prune_group_skipped(const sfp_model_t *m, const sfp_groups_t *gs, int gi, const char *skip);

/* Scores (prune_score_l2) of the n_channels channels of group gi and their
 * order by ascending score, ties by lower index: order[0] goes first. */
int prune_rank_l2(const sfp_model_t *m, const sfp_groups_t *gs, int gi, double *scores, int *order, sfp_error_t *err);

/* Marks in r the lowest-L2 prune_count(n, rate) channels of every group that
 * is not skipped. */
int prune_select_l2(const sfp_model_t *m, const sfp_groups_t *gs, double rate, const char *skip, sfp_removal_t *r,
                    sfp_error_t *err);

/* MACs of m at batch 1 with the channels marked in r removed (r made from gs,
 * the groups of m), counted on the graph as it is (each dense op's row
 * counts its work with the kept channels): what sfp_report_build gives after
 * surgery_apply, without making the smaller model. */
int prune_macs_removed(sfp_model_t *m, const sfp_groups_t *gs, const sfp_removal_t *r, int64_t *macs, sfp_error_t *err);

/* MACs of m at batch 1 after removing the lowest-L2 channels at this rate. */
int prune_macs_at_rate(sfp_model_t *m, const sfp_groups_t *gs, double rate, const char *skip, int64_t *macs,
                       sfp_error_t *err);


/* Marks in r the lowest-L2 remove[gi] channels of every group gi (remove has
 * gs->n entries, prune_counts_make; a grouped-conv group loses remove[gi] /
 * n_segments from each part). */
int prune_select_counts(const sfp_model_t *m, const sfp_groups_t *gs, const int *remove, sfp_removal_t *r,
                        sfp_error_t *err);

/* MACs of m at batch 1 after removing the lowest-L2 remove[gi] channels of
 * every group. */
int prune_macs_counts(sfp_model_t *m, const sfp_groups_t *gs, const int *remove, int64_t *macs, sfp_error_t *err);

/* Zeroes in copy (a clone of m) the channels r (made from gs, m's groups)
 * removes from m. A clone may number its values otherwise, so the masks
 * travel by value name (compress.c). */
int prune_mask_copy(sfp_model_t *copy, const sfp_model_t *m, const sfp_groups_t *gs, const sfp_removal_t *r,
                    sfp_error_t *err);

/* ---- sensitivity (sensitivity.c) ----
 * Each prunable group pruned alone (lowest L2, prune_group_count at each
 * rate, no fine-tuning) on a masked copy of m (the same function as the
 * pruned model), evaluated on ds in inference mode. acc[gi * n_rates + k]:
 * the accuracy with group gi pruned at rates[k] (NaN for a group left alone:
 * not prunable or matching skip; the base accuracy when the rate removes
 * nothing); removed[gi * n_rates + k]: channels removed. progress (may be
 * NULL) is called after each group with (ctx, groups done, groups to do). */
typedef struct sfp_sensitivity {
    double base_accuracy;
    int64_t images;
    int n_groups, n_rates;
    double *accuracy;   /* n_groups x n_rates; owned */
    int *removed;       /* n_groups x n_rates; owned */
} sfp_sensitivity_t;

/* round_to > 1: each group's kept count is rounded as compress --round-to
 * does (prune_round_kept), so the table shows the counts compress would
 * keep. */
int prune_sensitivity(sfp_model_t *m, const sfp_groups_t *gs, const double *rates, int n_rates, int round_to,
                      const char *skip, const sfp_dataset_t *ds, const sfp_data_prep_t *prep, int64_t batch, int threads,
                      void (*progress)(void *ctx, int done, int total), void *ctx, sfp_sensitivity_t *out,
                      sfp_error_t *err);
void prune_sensitivity_clear(sfp_sensitivity_t *s);

/* ---- channels removed per group (rates.c) ----
 * Decided once from the options, before any choice of channels: the counts
 * go to prune_select_counts and to the pruner (sfp_prune_opts_t.remove), so
 * every schedule removes the same number from each group. */
typedef struct sfp_rate_rule {
    char *pattern;   /* fnmatch pattern of a group's label or one of its layers' names; owned */
    double rate;     /* [0, 1) */
} sfp_rate_rule_t;

typedef struct sfp_rate_opts {
    double rate;     /* uniform: each group's fraction; global: the fraction of all ranked channels; [0, 1) */
    double flops;    /* > 0: instead of rate, the smallest rate (to 1e-3) whose counts leave at most (1 - flops)
                        of the MACs (counted as prune_macs_removed) */
    bool global;     /* rank channels across the groups that follow the rate (not skipped, no rule) by their L2
                        score over their group's mean L2 score; the lowest floor(rate * N) of all N go, never the
                        last channel of a group (of a part) */
    int round_to;    /* > 1: every group that loses channels keeps a multiple of round_to per part (nearest to
                        the requested count, ties upwards; at least round_to); a part smaller than round_to
                        stays whole; 0 or 1: no rounding */
    const char *skip;               /* fnmatch pattern of layer names left whole (prune_group_skipped), NULL none */
    const sfp_rate_rule_t *rules;   /* --rates: the first rule matching a group fixes its rate (before global) */
    int n_rules;
} sfp_rate_opts_t;

typedef struct sfp_prune_counts {
    int n;          /* groups */
    int *remove;    /* channels removed per group, all parts together; owned */
    double rate;    /* the rate used: opts.rate, or the one the flops search chose */
} sfp_prune_counts_t;

/* Counts for every group of gs (groups_find(m)) from o, scored on m's
 * weights now. Options out of range are SFP_EUSAGE naming them; a flops
 * target that even rate 0.99 misses is SFP_ERUNTIME. */
int prune_counts_make(sfp_model_t *m, const sfp_groups_t *gs, const sfp_rate_opts_t *o, sfp_prune_counts_t **out,
                      sfp_error_t *err);
void prune_counts_free(sfp_prune_counts_t *pc);
/* The rate prune_counts_make chooses for o (o->flops > 0) on m's own groups:
 * the smallest (to 1e-3) whose counts leave at most (1 - flops) of the MACs.
 * Made on the input model, it fixes the rate a fine-tuning run's fingerprint
 * records; counts remade at that rate on a copy with the same weights are
 * the same. SFP_ERUNTIME when even 0.99 falls short. */
int prune_rate_for_flops(sfp_model_t *m, const sfp_rate_opts_t *o, double *rate, sfp_error_t *err);
/* Channels removed from a group of n_channels in `parts` equal parts when
 * `remove` were asked for, after rounding the kept count per part to a
 * multiple of round_to (as sfp_rate_opts_t.round_to says). */
int prune_round_kept(int n_channels, int parts, int remove, int round_to);
/* True when pattern matches the group's label or one of its layers' names. */
bool prune_group_matches(const sfp_model_t *m, const sfp_groups_t *gs, int gi, const char *pattern);
/* --rates FILE: a JSON object {"pattern": rate, ...}, in file order. Not an
 * object, or a rate outside [0, 1), is SFP_EUSAGE naming the file (path is
 * only used in messages by prune_rules_parse). */
int prune_rules_load(const char *path, sfp_rate_rule_t **rules, int *n, sfp_error_t *err);
int prune_rules_parse(const char *text, const char *path, sfp_rate_rule_t **rules, int *n, sfp_error_t *err);
void prune_rules_free(sfp_rate_rule_t *rules, int n);

/* ---- pruning schedules while fine-tuning (schedule.c) ----
 *
 * sfp:    SFP (He et al. 2018): after every epoch the lowest-L2 channels are
 *         zeroed; nothing stops gradients from regrowing them.
 * smooth: at every epoch start the lowest-L2 channels are chosen again; after
 *         every SGD step they are multiplied by alpha(s+1) / alpha(s), with
 *         alpha(s) = max(0, 1 - s / (decay_fraction * total_steps)), so an
 *         untouched channel follows alpha; once alpha is 0 they are set to
 *         exactly 0 after every step.
 * hybrid: as smooth, but part of the choice goes to near-duplicate filters.
 * The pruner's state is a function of the weights at an epoch boundary (plus
 * the step counter), so a run resumed from weights + epoch continues exactly. */
typedef enum sfp_prune_method { SFP_PRUNE_SFP = 0, SFP_PRUNE_SMOOTH, SFP_PRUNE_HYBRID } sfp_prune_method_t;

typedef struct sfp_prune_opts {
    sfp_prune_method_t method;
    double rate;           /* total fraction of each group's channels removed: prune_count(n, rate); [0, 1) */
    double cluster_rate;   /* hybrid: the part of those chosen by redundancy (prune_count(n, cluster_rate), at most
                              the total); the rest by L2 norm; [0, 1) */
    double decay_fraction; /* smooth/hybrid: chosen channels decay linearly to exactly zero over this fraction of
                              all training steps (default 0.2, bench/prune_accuracy.sh), then stay zero; (0, 1] */
    const char *skip;      /* fnmatch pattern of layer names left alone (prune_group_skipped), NULL none; copied */
    const int *remove;     /* channels removed per group (prune_counts_make, gs->n entries), copied; NULL:
                              prune_group_count(rate) of every group not skipped. cluster_rate's part is capped
                              at each group's count. */
} sfp_prune_opts_t;

/* The defaults: smooth, rate 0.5, cluster_rate 0, decay_fraction 0.2, no skip. */
void pruner_opts_default(sfp_prune_opts_t *o);

typedef struct sfp_pruner sfp_pruner_t;

/* Borrows m and gs (groups_find(m)); both must outlive the pruner. total_steps
 * = epochs * steps per epoch (>= 1). Options out of range are SFP_EUSAGE
 * naming the option (--rate, --cluster-rate, --decay-fraction). */
int pruner_create(sfp_model_t *m, const sfp_groups_t *gs, const sfp_prune_opts_t *o, int64_t total_steps,
                  sfp_pruner_t **out, sfp_error_t *err);
void pruner_free(sfp_pruner_t *p);
/* Before the first step of epoch e (global step index `step`): every method
 * chooses the channels again from the current weights; sfp also zeroes them
 * at epoch 0 (as SFP's code masks once before training). */
int pruner_epoch_begin(sfp_pruner_t *p, int64_t epoch, int64_t step, sfp_error_t *err);
/* After SGD step `step` (0-based, global): smooth/hybrid multiply the chosen
 * channels by alpha(step+1)/alpha(step); once alpha is 0 they are set
 * exactly to 0 after every step. sfp: nothing. */
int pruner_after_step(sfp_pruner_t *p, int64_t step, sfp_error_t *err);
/* After the last step of epoch e: sfp chooses the lowest-L2 channels and
 * zeroes them (they may regrow: no gradient mask). smooth/hybrid: nothing. */
int pruner_epoch_end(sfp_pruner_t *p, int64_t epoch, sfp_error_t *err);
/* End of training: the current choice (made from the weights now when no
 * epoch has begun) is made exactly zero and marked in r (removal_create(gs)
 * by the caller), ready for surgery_apply. */
int pruner_finish(sfp_pruner_t *p, sfp_removal_t *r, sfp_error_t *err);
/* For progress lines: channels currently chosen (all groups), and alpha at a
 * step (1 for sfp). */
int64_t pruner_n_chosen(const sfp_pruner_t *p);
double pruner_alpha(const sfp_pruner_t *p, int64_t step);
/* MACs at batch 1 of the model as given to pruner_create and after the
 * removal the schedule heads for (counted at creation). */
void pruner_macs(const sfp_pruner_t *p, int64_t *before, int64_t *after);
/* True for the schedules whose chosen channels decay (smooth, hybrid). */
bool pruner_decays(const sfp_pruner_t *p);
/* The pruner as the trainer's hooks (hooks.c). ctx is p itself (the address
 * of the caller's pointer), so the hooks can go to trainer_create before the
 * pruner is made from the trainer's step count. */
void pruner_train_hooks(sfp_pruner_t **p, sfp_train_hooks_t *out);
/* The current choice as a removal (borrowed; valid until the next pruner call). */
const sfp_removal_t *pruner_choice(const sfp_pruner_t *p);
/* The choice in the middle of an epoch cannot be re-derived from the weights
 * (smooth has already scaled them), so checkpoints carry it: "SFPPRUN1",
 * u32 have_choice, u32 groups, then per group u32 channels and one byte per
 * channel (1 chosen), little-endian. *out is malloc'd. Loading a state made
 * for other groups (another model or --skip) is SFP_EBADDATA. */
int pruner_save_choice(const sfp_pruner_t *p, uint8_t **out, size_t *len, sfp_error_t *err);
int pruner_load_choice(sfp_pruner_t *p, const uint8_t *buf, size_t len, sfp_error_t *err);

#endif
