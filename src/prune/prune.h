/* Choosing channels to prune: L2-norm criterion per dependency group, the
 * uniform rate of --rate, and the search behind --flops. */
#ifndef SFP_PRUNE_H
#define SFP_PRUNE_H

#include "surgery/surgery.h"

/* Channels removed from a group of n_channels at a rate: floor(rate * n + 1e-9),
 * never all of them. */
int prune_count(int n_channels, double rate);

/* True when group gi is left alone: not prunable, or one of its layers' names
 * matches the fnmatch pattern skip (NULL: none). */
bool prune_group_skipped(const sfp_model_t *m, const sfp_groups_t *gs, int gi, const char *skip);

/* Marks in r the lowest-L2 prune_count(n, rate) channels of every group that
 * is not skipped. */
int prune_select_l2(const sfp_model_t *m, const sfp_groups_t *gs, double rate, const char *skip, sfp_removal_t *r,
                    sfp_error_t *err);

/* Deep copy through the ONNX encoder (the copy is batch-free and inferred). */
int model_clone(const sfp_model_t *m, sfp_model_t **out, sfp_error_t *err);

/* MACs of m at batch 1 after removing the lowest-L2 channels at this rate. */
int prune_macs_at_rate(const sfp_model_t *m, double rate, const char *skip, int64_t *macs, sfp_error_t *err);

/* Smallest uniform rate (to 1e-3) whose pruned model has at most
 * (1 - flops) of the original MACs. SFP_ERUNTIME when even 0.99 falls short. */
int prune_rate_for_flops(const sfp_model_t *m, double flops, const char *skip, double *rate, sfp_error_t *err);

#endif
