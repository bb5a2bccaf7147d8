/* Private to src/train: the execution plan's layout, shared by plan.c
 * (planning, placement, forward) and autograd.c (gradient analysis and the
 * backward walk). Nothing outside src/train includes this. */
#ifndef SFP_PLAN_IMPL_H
#define SFP_PLAN_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "train/plan.h"

#define PLAN_ALIGN 64
/* A buffer that is never given back (graph outputs, kept activations). */
#define PLAN_NEVER_FREED INT32_MAX

typedef enum value_kind {
    VK_NONE = 0,   /* not needed by this plan */
    VK_CONST,      /* initializer or folded constant, not produced by a step */
    VK_INPUT,      /* plan input: the caller's memory */
    VK_BUFFER      /* written by a step into the arena */
} value_kind_t;

typedef struct plan_step {
    int node;
    const sfp_op_def_t *def;
    sfp_exec_t x;
    const sfp_shape_t **in_shape, **out_shape;
    const void **in;
    void **out;
    /* training plans */
    void **in_init;            /* writable initializer data per input, or NULL */
    const void **dout;         /* gradient of each output, or NULL */
    void **din;                /* gradient of each input, or NULL */
    size_t saved_offset;       /* x.saved within the arena */
    size_t persist_offset;     /* x.persist within the arena (SFP_PLAN_CONST_WEIGHTS) */
    bool backward;             /* plan_backward runs this step */
    /* inference plans: nodes fused into this one (fuse_steps) */
    int out0;                  /* value written as output 0 (the last fused node's output) */
    int residual;              /* value the fusion adds, or -1 */
    sfp_fusion_t fusion;       /* x.fused points here when something was fused */
    double seconds;            /* SFP_PLAN_PROFILE: summed over runs */
    double backward_seconds;
} plan_step_t;

/* A step's values as its backward sees them: the node's inputs, then the
 * residual a fused Add reads (one more slot); output 0 is the last fused
 * node's output. A fused Relu keeps output 0 for backward (its mask). */
static inline int step_n_inputs(const plan_step_t *st)
{
    return st->x.node->n_inputs + (st->residual >= 0 ? 1 : 0);
}

static inline int step_input(const plan_step_t *st, int k)
{
    return k < st->x.node->n_inputs ? st->x.node->inputs[k] : st->residual;
}

static inline int step_output(const plan_step_t *st, int o)
{
    return o == 0 ? st->out0 : st->x.node->outputs[o];
}

static inline unsigned step_keep_outputs(const plan_step_t *st)
{
    return st->def->run.keep_outputs | (st->x.fused && st->fusion.relu ? 1u : 0u);
}

/* din_fresh-capable slots: the op's, and a fused residual's (written whole
 * or added to, as din_fresh says). */
static inline unsigned step_overwrite_din(const plan_step_t *st)
{
    return st->def->run.overwrite_din | (st->residual >= 0 ? 1u << st->x.node->n_inputs : 0u);
}

struct sfp_plan {
    sfp_model_t *m;
    int64_t batch;
    unsigned flags;
    int n_values;
    sfp_shape_t *shapes;       /* per value, snapshot at the plan's batch */
    value_kind_t *kind;
    void **data;               /* per value: where its bytes are (NULL: none) */
    size_t *offset;            /* VK_BUFFER: offset in the arena; copied constants too */
    bool *copied;              /* VK_CONST copied into the arena (folded values) */
    int n_steps;
    plan_step_t *steps;
    const sfp_shape_t **shape_ptrs; /* backing store of the steps' shape arrays */
    const void **in_ptrs;
    void **out_ptrs;
    int n_inputs, n_outputs;
    int *input_ids, *output_ids;
    sfp_threads_t *threads;
    int n_threads;
    uint8_t *arena;
    size_t arena_bytes, scratch_bytes, scratch_offset;

    /* ---- training (SFP_PLAN_TRAIN); see autograd.c ---- */
    bool training;             /* mode of the next plan_run */
    bool ran_training;         /* mode of the last plan_run */
    bool backward_ready;       /* a plan_run happened and no plan_backward since */
    bool *has_grad;            /* per value: gets a gradient buffer */
    int *grad_birth;           /* per value: step whose backward first writes it; -1 = seeded at the start */
    int *producer_step;        /* per value: step writing it, or -1 */
    void **grad;               /* per value: its gradient (arena), or NULL */
    size_t *grad_offset;
    int *param_index;          /* per value: index in params, or -1 */
    int n_params;
    sfp_param_t *params;
    void **in_init_ptrs;       /* backing store of the steps' training arrays */
    const void **dout_ptrs;
    void **din_ptrs;
    size_t saved_bytes_total, params_offset, params_bytes;
    bool shared;               /* plan_share_batch: steps see &share */
    sfp_batch_share_t share;

    /* ---- batch-split inference plans (plan_split.c) ---- */
    int n_sub;                 /* > 0: n_sub one-thread plans of consecutive slices */
    sfp_plan_t **sub;
    void **out_bufs;           /* per output: the whole batch's (p->data points there) */
    const void **split_in;     /* per slice: its inputs */
    sfp_error_t *split_err;    /* per slice: its last error */
    int *split_rc;
};

/* plan.c: the graph's inferred shapes into p->shapes (and the per-value
 * arrays), p->batch from the inputs' free batch dim. */
int plan_snapshot_shapes(sfp_plan_t *p, sfp_error_t *err);
/* plan_split.c: 1 when this plan is not split (plan_create makes the single
 * one), 0 with *out, < 0 on error. */
int plan_split_create(sfp_model_t *m, int64_t batch, unsigned flags, int threads, sfp_plan_t **out,
                      sfp_error_t *err);
/* plan_split_run: plan_run of a split plan, its inputs bound (p->data). */
int plan_split_run(sfp_plan_t *p, sfp_error_t *err);

/* Time line of buffer lifetimes: forward step s runs at time s, the backward
 * of step s at 2 * n_steps - 1 - s. */
static inline int32_t plan_backward_time(const sfp_plan_t *p, int step)
{
    return (int32_t)(2 * p->n_steps - 1 - step);
}

/* ---- autograd.c, called by plan_create for SFP_PLAN_TRAIN ---- */
/* Parameters, which values get gradients, which steps run backward; each
 * backward-running step's prepare_backward (saved and scratch bytes).
 * Needs the steps built and the threads created. */
int autograd_analyse(sfp_plan_t *p, sfp_error_t *err);
/* Birth and death times of the gradient buffers (indices n_values + v) and
 * the later deaths of forward values that backward passes read. birth/death
 * hold 2 * n_values entries; birth -1 = not a buffer. */
void autograd_lifetimes(const sfp_plan_t *p, int32_t *birth, int32_t *death);
/* Bytes after the slots: per-step saved state and the parameter gradients
 * (placed from *at on, which is advanced). */
int autograd_place_persistent(sfp_plan_t *p, size_t *at, sfp_error_t *err);
/* Points the steps' training arrays at the arena once it exists. */
void autograd_bind(sfp_plan_t *p);
void autograd_free(sfp_plan_t *p);

/* plan.c helpers shared with autograd.c */
int plan_value_bytes(const sfp_plan_t *p, int id, size_t *out, sfp_error_t *err);
bool plan_align_up(size_t n, size_t *out);
bool plan_add_size(size_t a, size_t b, size_t *out);

#endif
