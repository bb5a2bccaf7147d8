/* Execution plan: a model's nodes in topological order at one batch size, with
 * every activation buffer, the shared scratch and the copies of batch-
 * dependent constants placed in one allocation made up front. plan_run only
 * calls the ops' forward entry points; it allocates nothing. The training
 * runtime extends a plan made with SFP_PLAN_KEEP_ACTIVATIONS with backward. */
#ifndef SFP_PLAN_H
#define SFP_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "onnxsfp/model.h"
#include "ops/ops.h"

enum {
    /* Every value keeps its own buffer until the next run (for backward
     * passes and inspection); without it buffers are reused once their last
     * reader has run, and only graph outputs are guaranteed after a run. */
    SFP_PLAN_KEEP_ACTIVATIONS = 1u << 0,
    /* plan_run times every step (plan_step_seconds). */
    SFP_PLAN_PROFILE = 1u << 1
};

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
 * dims, row-major); the caller keeps it alive and unchanged during the call.
 * Errors name the node. */
int plan_run(sfp_plan_t *p, const void *const *inputs, sfp_error_t *err);

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
/* Bytes of the one allocation (activations + scratch + constant copies). */
size_t plan_arena_bytes(const sfp_plan_t *p);
int plan_threads(const sfp_plan_t *p);
/* Nodes plan_run executes (folded and unused nodes are not), in order. */
int plan_n_steps(const sfp_plan_t *p);
int plan_step_node(const sfp_plan_t *p, int step);          /* node id in the graph */
/* With SFP_PLAN_PROFILE: wall time of the step summed over all runs so far. */
double plan_step_seconds(const sfp_plan_t *p, int step);

#endif
