/* Pruning a model in one call: choose the channels of every dependency
 * group by the L2 norm of their filters (no fine-tuning; the command line's
 * `compress --epochs 0`) and remove them for real, following residual Adds,
 * Concat/Pad shortcuts, BN and the classifier. Fine-tuning while pruning
 * (the sfp/smooth/hybrid schedules) is the command line's `compress --data`. */
#ifndef ONNXSFP_COMPRESS_H
#define ONNXSFP_COMPRESS_H

#include <stdint.h>

#include "onnxsfp/model.h"

typedef struct sfp_compress_opts {
    double rate;      /* fraction of each group's channels removed, [0, 1) */
    double flops;     /* > 0: instead of rate, the smallest uniform rate (to 0.001) that
                         removes at least this fraction of the MACs, [0, 1) */
    const char *skip; /* shell pattern of layer names whose groups stay whole, NULL: none */
    int round_to;     /* > 1: every group that loses channels keeps a multiple of round_to (per part of a
                         grouped convolution; nearest to the rate's count, at least round_to); a group (part)
                         smaller than round_to stays whole. 0 or 1: no rounding */
    bool global;      /* rate (or the flops search) is the fraction of all prunable channels, ranked across
                         groups by L2 norm over their group's mean: each group gets its own rate */
} sfp_compress_opts_t;

typedef struct sfp_compress_result {
    double rate;                    /* the rate used (chosen when flops > 0) */
    int groups, groups_pruned;      /* channel groups found, and those that lost channels */
    int64_t channels_removed;
    int64_t params_before, params_after; /* as sfp_report_build counts them, batch 1 */
    int64_t macs_before, macs_after;
} sfp_compress_result_t;

/* rate 0.5, no flops target, no skip, no rounding, uniform. */
void sfp_compress_opts_default(sfp_compress_opts_t *o);

/* Prunes m in place. masked (may be NULL) receives a copy of m at full size
 * with the removed channels zeroed: ONNX Runtime gives it and the pruned m
 * the same outputs (to 1e-4 of their scale). res (may be NULL) receives the
 * figures. Options out of range are SFP_EUSAGE naming them; a pattern that
 * matches no layer is SFP_EUSAGE. On failure m may be half changed. */
int sfp_compress(sfp_model_t *m, const sfp_compress_opts_t *o, sfp_model_t **masked, sfp_compress_result_t *res,
                 sfp_error_t *err);

#endif
