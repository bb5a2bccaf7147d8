/* Execution plan: a model's nodes in topological order at one batch size, with
 * every activation buffer, the shared scratch and the copies of batch-
 * dependent constants placed in one allocation made up front. plan_run only
 * calls the ops' forward entry points; it allocates nothing. A plan made with
 * SFP_PLAN_TRAIN also runs the ops' backward entry points in reverse
 * (plan_backward), with the gradient buffers in the same allocation: a
 * gradient lives from the first backward step that writes it to its
 * producer's backward step, and takes the memory of activations that died. */
#ifndef SFP_PLAN_H
#define SFP_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "ops/ops.h"

enum {
    /* Every value keeps its own buffer until the next run (for backward
     * passes and inspection); without it buffers are reused once their last
     * reader has run, and only graph outputs are guaranteed after a run. */
    SFP_PLAN_KEEP_ACTIVATIONS = 1u << 0,
    /* plan_run times every step (plan_step_seconds). */
    SFP_PLAN_PROFILE = 1u << 1,
    /* Training: trainable parameters (the initializers at the op table's
     * param_inputs: Conv/Gemm/MatMul weights and biases, BN scale and bias)
     * get persistent gradient buffers, plan_backward is available, and
     * BatchNormalization normalises by batch statistics and updates its
     * running mean/var in place (plan_set_training switches to running
     * statistics for validation). Activations backward reads are kept until
     * it has read them. */
    SFP_PLAN_TRAIN = 1u << 2,
    /* With SFP_PLAN_TRAIN: float plan inputs get gradients too
     * (plan_value_grad after plan_backward). */
    SFP_PLAN_INPUT_GRADS = 1u << 3,
    /* Inference plans: the model's initializers do not change while the
     * plan lives, so ops may keep them in the layout their kernels read,
     * made at the first run (the direct convolution packs its weights once
     * instead of on every run). Ignored with SFP_PLAN_TRAIN. */
    SFP_PLAN_CONST_WEIGHTS = 1u << 4
};

/* What a trainable parameter is, for per-kind optimiser settings. */
typedef enum sfp_param_kind {
    SFP_PARAM_WEIGHT = 0,   /* Conv/Gemm/MatMul weight (input 1) */
    SFP_PARAM_BIAS,         /* Conv bias, Gemm C (input 2) */
    SFP_PARAM_NORM          /* BatchNormalization scale or bias */
} sfp_param_kind_t;

/* One trainable parameter of a training plan. Borrows: data is the model's
 * initializer (updated in place, seen by the next run of every plan on the
 * model); grad is the plan's, accumulated by plan_backward. */
typedef struct sfp_param {
    int value;              /* value id of the initializer */
    const char *name;       /* the initializer's name (the model's string) */
    sfp_param_kind_t kind;
    int64_t numel;
    float *data;
    float *grad;
} sfp_param_t;

typedef struct sfp_plan sfp_plan_t;

/* Infers m's shapes for batch (<= 0: the shapes as declared, a free batch
 * dim counting as 1), snapshots them, checks every needed node has a forward
 * that accepts its types, and allocates. threads <= 0: all cores.
 * The plan borrows m: initializers and Constant nodes' values are read in
 * place (so weights updated in place are seen by the next run); m must
 * outlive the plan and keep its nodes and values. m's inferred shapes are
 * left as they were before the call (re-inferred at their old batch). */
int plan_create(sfp_model_t *m, int64_t batch, unsigned flags, int threads, sfp_plan_t **out, sfp_error_t *err);
void plan_free(sfp_plan_t *p);

/* One forward pass. inputs[i] holds plan input i (plan_input_shape: dtype and
 * dims, row-major); the caller keeps it alive and unchanged during the call
 * (training plans: until plan_backward has returned). Errors name the node. */
int plan_run(sfp_plan_t *p, const void *const *inputs, sfp_error_t *err);

/* ---- training (plans made with SFP_PLAN_TRAIN) ---- */
/* Reverse mode over the last plan_run: dloss_doutput is the gradient of the
 * loss with respect to plan output 0 (its shape; other outputs contribute
 * none). Parameter gradients are ADDED to (see plan_zero_grad); activation
 * gradients are the plan's own. Once per plan_run (the run's activations are
 * reused by the backward pass): a second call is SFP_EUSAGE, and so is a
 * plan without SFP_PLAN_TRAIN. Allocates nothing. */
int plan_backward(sfp_plan_t *p, const float *dloss_doutput, sfp_error_t *err);
/* Zeroes every parameter gradient. */
void plan_zero_grad(sfp_plan_t *p);
/* Trainable parameters, in the model's initializer order. */
int plan_n_params(const sfp_plan_t *p);
const sfp_param_t *plan_param(const sfp_plan_t *p, int i);
/* BatchNormalization by batch statistics (true, the default of a training
 * plan) or by the running ones (false: validation; backward then treats them
 * as constants). Takes effect at the next plan_run. */
void plan_set_training(sfp_plan_t *p, bool training);
bool plan_training(const sfp_plan_t *p);
/* Every parameter gradient lies in one block of *n_floats floats (in
 * plan_param order, zero padding between them that stays zero), so a
 * data-parallel step sums them across processes in one call. NULL without
 * parameters. */
float *plan_grad_block(sfp_plan_t *p, size_t *n_floats);
/* Data parallelism (sfp_batch_share_t in ops.h): this plan's batch is a
 * share of share->total_batch; batch statistics are summed with share->sum.
 * share is copied; NULL goes back to a plan holding the whole batch. */
void plan_share_batch(sfp_plan_t *p, const sfp_batch_share_t *share);
/* The gradient of a value after plan_backward, or NULL when it has none.
 * Parameters and plan inputs (SFP_PLAN_INPUT_GRADS) keep theirs; other
 * values' gradients are only kept with SFP_PLAN_KEEP_ACTIVATIONS. */
const float *plan_value_grad(const sfp_plan_t *p, int value_id);
/* With SFP_PLAN_PROFILE: wall time of the step's backward over all calls. */
double plan_step_backward_seconds(const sfp_plan_t *p, int step);

/* Plan inputs: the graph inputs without an initializer, in file order. */
int plan_n_inputs(const sfp_plan_t *p);
int plan_input_value(const sfp_plan_t *p, int i);          /* value id in the graph */
const sfp_shape_t *plan_input_shape(const sfp_plan_t *p, int i);

/* Graph outputs, in file order; data valid after plan_run until the next run. */
int plan_n_outputs(const sfp_plan_t *p);
int plan_output_value(const sfp_plan_t *p, int i);
const sfp_shape_t *plan_output_shape(const sfp_plan_t *p, int i);
const void *plan_output(const sfp_plan_t *p, int i);

/* Any value by id: its shape at the plan's batch and where its data lives
 * (NULL when the plan does not hold it: unused values, and inputs before
 * the first run). Intermediate data is only meaningful with
 * SFP_PLAN_KEEP_ACTIVATIONS. */
const sfp_shape_t *plan_value_shape(const sfp_plan_t *p, int value_id);
const void *plan_value_data(const sfp_plan_t *p, int value_id);

/* The batch the shapes are for: dim 0 of the inputs with a free batch dim,
 * 0 when no input has one (shapes as declared). */
int64_t plan_batch(const sfp_plan_t *p);
/* Bytes of the one allocation (activations + scratch + constant copies);
 * of all of them for a split plan. */
size_t plan_arena_bytes(const sfp_plan_t *p);
int plan_threads(const sfp_plan_t *p);
/* Inference plans (no SFP_PLAN_TRAIN, _KEEP_ACTIVATIONS or _PROFILE) with
 * T >= 2 threads and a batch of at least T are split by the batch: T
 * one-thread plans of consecutive slices, each thread taking its images
 * through the whole graph (the same results; sgemm may sum in another
 * order at another batch), when every
 * step computes each image from that image alone (plan_split.c says how
 * that is decided). SFP_PLAN_SPLIT=0 in the environment turns it off. The
 * number of slices, 1 for a plan that is not split. */
int plan_slices(const sfp_plan_t *p);
/* Nodes plan_run executes (folded and unused nodes are not), in order. */
int plan_n_steps(const sfp_plan_t *p);
int plan_step_node(const sfp_plan_t *p, int step);          /* node id in the graph */
/* With SFP_PLAN_PROFILE: wall time of the step summed over all runs so far. */
double plan_step_seconds(const sfp_plan_t *p, int step);

#endif
