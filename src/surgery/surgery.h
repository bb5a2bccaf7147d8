/* Channel dependency groups (groups.c), removal masks (masks.c), physical
 * removal (apply.c), in-place scaling of marked channels (scale.c) and
 * BatchNormalization re-inserted for training (bn_fold.c).
 *
 * Every float activation with a channel axis (axis 1) has one "slot" per
 * channel (per feature after Flatten). A union-find joins slots that must go
 * together: an op's output channel with the input channel it comes from,
 * residual Adds across their operands, Concat/Pad ranges onto their sources,
 * Flatten features onto their channel. A connected set of slots is one
 * channel; channels touching the same set of values form a group (e.g. "the
 * residual stream of stage 1", 16 channels). Removal is a per-value mask of
 * slots; each node is then rewritten locally from the masks of its values. */
#ifndef SFP_SURGERY_H
#define SFP_SURGERY_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"

/* One coupled set of channels. Channel j of the group owns slots
 * slots[slot_start[j] .. slot_start[j+1]) (value id, index on its axis). */
typedef struct sfp_chan_group {
    int n_channels;
    int *slot_start;          /* n_channels + 1 */
    int *slot_value;          /* value id per slot entry */
    int64_t *slot_index;      /* channel/feature index per slot entry */
    int n_values;
    int *values;              /* distinct values touched, ascending */
    int n_sources;
    int *sources;             /* Conv/Gemm/MatMul nodes whose output rows make these channels */
    /* Grouped convolutions read or make these channels in n_segments equal
     * contiguous parts; removal must take the same number from each part
     * (segment[j]: channel j's part; NULL when n_segments is 1). */
    int n_segments;
    int *segment;
    bool prunable;
    char reason[160];         /* why not prunable */
    char label[160];          /* readable: the first source's name, else the first value's */
} sfp_chan_group_t;

typedef struct sfp_groups {
    int n;
    sfp_chan_group_t *g;
    /* per value: its slot count (0 when the value has no channel axis) */
    int n_values;
    int64_t *value_slots;
    bool *value_zero;         /* value known to be all zeros (x.mul(0) shortcut) */
} sfp_groups_t;

/* Finds the groups of m (shapes inferred at batch 1). Ops it cannot see
 * through give SFP_EUNSUPPORTED naming the node. */
int groups_find(sfp_model_t *m, sfp_groups_t **out, sfp_error_t *err);
void groups_free(sfp_groups_t *gs);

/* Removal: masks[v][s] = true when slot s of value v goes. */
typedef struct sfp_removal {
    int n_values;
    bool **masks;             /* NULL entries for values without removals */
} sfp_removal_t;

int removal_create(const sfp_groups_t *gs, sfp_removal_t **out, sfp_error_t *err);
/* Marks channel j of group gi for removal. */
void removal_add_channel(sfp_removal_t *r, const sfp_groups_t *gs, int gi, int j);
/* True when channel j of group gi is marked (its slots are marked together). */
bool removal_has_channel(const sfp_removal_t *r, const sfp_groups_t *gs, int gi, int j);
/* Channels marked, over all groups. */
int64_t removal_n_channels(const sfp_removal_t *r, const sfp_groups_t *gs);
/* Unmarks everything. */
void removal_clear(sfp_removal_t *r, const sfp_groups_t *gs);
/* Slots of value v marked (0 for a value without slots). */
int64_t removal_removed(const sfp_removal_t *r, const sfp_groups_t *gs, int v);
/* True when slot i of value v is marked. */
bool removal_slot_removed(const sfp_removal_t *r, int v, int64_t i);
void removal_free(sfp_removal_t *r);

/* Removes the marked channels from every node of m (weights out and in,
 * biases, BN parameters and statistics, Gemm columns, Pad extents, shape
 * constants) and re-infers shapes. */
int surgery_apply(sfp_model_t *m, const sfp_groups_t *gs, const sfp_removal_t *r, sfp_error_t *err);

/* Multiplies, for every marked channel at full size, the source filter rows
 * (Conv filters, Gemm/MatMul output rows) and their biases, the scale and
 * bias of the BatchNormalization on the channel, and per-channel constant
 * operands of Add/Sub by factor. Consumers' input columns, BN running
 * statistics and Mul/Div operands are left alone. Why BN's scale and bias:
 * a BN in training mode normalises by the batch statistics, so scaling only
 * the filter rows would leave its output, and so the channel, unchanged;
 * scaling the affine part scales what the channel carries downstream. An
 * initializer shared between nodes has each row scaled once. factor 0
 * writes exact zeros (any dtype); another factor needs float tensors
 * (SFP_EUNSUPPORTED names the node otherwise). Rows whose tensor is not an
 * initializer (a constant computed by a node) are skipped. */
int surgery_scale(sfp_model_t *m, const sfp_groups_t *gs, const sfp_removal_t *r, float factor, sfp_error_t *err);

/* One slice of an initializer: index `row` on axis `axis` of t. */
typedef struct sfp_channel_row {
    sfp_tensor_t *t;
    int axis;
    int64_t row;
} sfp_channel_row_t;

/* The rows surgery_scale multiplies for channel j of group gi alone (filter
 * rows, conv biases, BN scale and bias, Add/Sub constants), each once,
 * ordered by tensor address, axis and row. *out is malloc'd (NULL when
 * none). Lets an outside implementation (tools/torch_sfp.py, through
 * `report --groups --json`) prune exactly the same scope. */
int groups_channel_rows(sfp_model_t *m, const sfp_groups_t *gs, int gi, int j, sfp_channel_row_t **out, size_t *n,
                        sfp_error_t *err);

/* Zeroes the marked channels at full size (the --keep-masked model):
 * surgery_scale with factor 0, so each removed channel is exactly zero
 * everywhere it flows. */
int surgery_mask(sfp_model_t *m, const sfp_groups_t *gs, const sfp_removal_t *r, sfp_error_t *err);

/* ---- BatchNormalization folded by the exporter (bn_fold.c) ---- */
/* Name prefix of the BatchNormalization nodes bn_insert adds. */
#define BN_MARK "onnx-sfp.bn/"
bool bn_is_reinserted(const sfp_node_t *n);
/* Conv nodes (float initializer weight and bias) whose output no
 * BatchNormalization reads and some later Conv/Gemm/MatMul does (directly
 * or through other nodes; a last conv is a classifier): what an exporter's
 * BN folding left. *nodes is malloc'd (NULL when none). Assumes
 * topological order. */
int bn_bare_convs(const sfp_model_t *m, int **nodes, int *n, sfp_error_t *err);
/* After each conv convs[i] a BatchNormalization named BN_MARK + the conv's
 * output name, with running statistics mean[i] / var[i] (the conv output's
 * per-channel mean and variance), scale sqrt(var + eps) and bias mean: the
 * identity in inference, and nearly so in training while the batch
 * statistics stay near these. Re-sorts, validates and infers shapes. */
int bn_insert(sfp_model_t *m, int n, const int *convs, const double *const *mean, const double *const *var,
              sfp_error_t *err);
/* Folds every re-inserted BatchNormalization into its convolution (weight
 * rows scaled by gamma / sqrt(var + eps), bias (b - mean) * that + beta; a
 * bias is added when the conv had none) and removes it. Nodes that do not
 * fit (not after a conv of their own) are left as they are. */
int bn_fold_reinserted(sfp_model_t *m, int *n_folded, sfp_error_t *err);

/* The writable initializer of input k of node n; one shared with other
 * nodes (or a folded constant) is first copied into one of n's own. *out
 * NULL when the input is omitted. */
int surgery_own_init(sfp_graph_t *g, sfp_node_t *n, int k, sfp_tensor_t **out, sfp_error_t *err);

#endif
