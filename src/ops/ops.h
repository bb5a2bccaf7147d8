/* The operator table: for every supported ONNX op, its arity, the attributes
 * it understands, attribute checks, shape inference (with folding of the small
 * int64 shape computations) and its MAC count. One file per op family
 * registers its entries; graph-level passes (validate, infer, batch) use it. */
#ifndef SFP_OPS_H
#define SFP_OPS_H

#include "onnxsfp/model.h"
#include "ops/kernels.h"
#include "util/threads.h"
#include "util/util.h"

/* How report counts a node's work. */
typedef enum sfp_work_kind {
    SFP_WORK_NONE = 0,     /* data movement or shape bookkeeping */
    SFP_WORK_DENSE,        /* multiply-accumulates: Conv, Gemm, MatMul */
    SFP_WORK_ELEMENTWISE   /* per-element arithmetic: BN, Relu, Add, pooling */
} sfp_work_kind_t;

typedef struct sfp_op_ctx {
    const sfp_model_t *model; /* for the opset version */
    sfp_graph_t *g;
    const sfp_node_t *node;
    int64_t opset;
} sfp_op_ctx_t;

/* ---- forward runtime ---- */
/* Shape of one value as the execution plan fixed it (its own copy, so plans
 * at different batch sizes can live side by side). */
typedef struct sfp_shape {
    sfp_dtype_t dtype;
    int ndim;
    int64_t dims[SFP_MAX_DIMS];
} sfp_shape_t;

/* What an inference plan fused into a node whose op takes it (run.fuse),
 * in this order on output 0: a BatchNormalization (inference form; its node
 * for epsilon and its scale, B, mean, var data), a residual added (same
 * shape as output 0, never the output's own buffer), Relu. out[0] is then
 * the last fused node's output; the intermediate values are never made. */
typedef struct sfp_fusion {
    const sfp_node_t *bn;       /* NULL: none */
    const float *bn_param[4];
    const float *residual;      /* NULL: none */
    bool relu;
} sfp_fusion_t;

/* Data parallelism: the batch a training plan runs is this process's share
 * of total_batch examples spread over several processes. sum(ctx, values,
 * n) replaces values[0..n) by their sums over all processes (the same
 * result everywhere); BatchNormalization in training form sums its
 * per-channel statistics with it, so every share is normalised by the
 * whole batch's mean and variance. Every process must run the same nodes. */
typedef struct sfp_batch_share {
    int64_t total_batch;
    int (*sum)(void *ctx, double *values, int64_t n, sfp_error_t *err);
    void *ctx;
} sfp_batch_share_t;

/* What a forward entry point sees for one node. Borrows everything. Shapes
 * come from in_shape/out_shape, never from g->values (the graph may have been
 * re-inferred for another plan); g and node give names and attributes.
 * in[i]/in_shape[i] are NULL for an omitted optional input, out[i] likewise.
 * prepare() sees in[i] set for constant inputs only and out[i] NULL. */
typedef struct sfp_exec {
    const sfp_graph_t *g;
    const sfp_node_t *node;
    int64_t opset;
    const sfp_shape_t *const *in_shape;
    const sfp_shape_t *const *out_shape;
    const void *const *in;
    void *const *out;
    void *scratch;              /* scratch_bytes as prepare() asked, 64-byte aligned */
    const sfp_fusion_t *fused;  /* inference plans: what follows folded in, or NULL */
    size_t scratch_bytes;
    sfp_threads_t *threads;     /* for the kernels' parallel loops; may be NULL */
    /* ---- training runtime (src/train); zero/NULL in inference plans ---- */
    /* Normalisation uses (and updates) batch statistics instead of the
     * running ones. */
    bool training;
    /* Writable data of the inputs that are initializers (NULL for the
     * others): the running mean and variance BatchNormalization updates in
     * training mode. */
    void *const *in_init;
    /* NULL: the plan's batch is the whole batch; else see sfp_batch_share_t. */
    const sfp_batch_share_t *share;
    /* State the forward keeps for backward (saved_bytes as prepare_backward
     * asked, 64-byte aligned, private to the node): BN's batch statistics. */
    void *saved;
    size_t saved_bytes;
    /* Backward: dout[o] is the gradient of the loss with respect to output
     * o (NULL: none flows back through it); din[i] receives the gradient of
     * input i, accumulated (+=), NULL when not wanted (constants, integer
     * inputs, data). in[] and out[] hold the forward values the op asked to
     * keep (run.keep_inputs / keep_outputs); the others may be overwritten. */
    const void *const *dout;
    void *const *din;
    /* Bit i: din[i] holds nothing yet (this is its first writer) and the op
     * opted in with run.overwrite_din: backward writes every element of it
     * instead of adding (the plan skipped zeroing it). */
    unsigned din_fresh;
} sfp_exec_t;

/* Runtime entry points of an op; a NULL forward means the op cannot run. */
typedef struct sfp_op_run {
    /* Computes the outputs from the inputs. Must not allocate. */
    int (*forward)(const sfp_exec_t *x, sfp_error_t *err);
    /* Once per plan: refuses (SFP_EUNSUPPORTED) dtypes or attributes the forward
     * does not handle and says how many scratch bytes it needs. NULL: no
     * scratch, nothing to refuse. */
    int (*prepare)(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err);
    /* Reverse mode: accumulates into din[] the gradients of the inputs from
     * dout[] (see sfp_exec_t). Must not allocate. NULL: the op cannot be
     * trained through (refused when a gradient would have to cross it). */
    int (*backward)(const sfp_exec_t *x, sfp_error_t *err);
    /* Once per training plan: refuses what backward does not handle and
     * says how many bytes of saved state (forward -> backward) and of
     * backward scratch it needs. NULL: neither. */
    int (*prepare_backward)(const sfp_exec_t *x, size_t *saved_bytes, size_t *scratch_bytes, sfp_error_t *err);
    /* Forward values backward reads: bit i = input i / output i. A training
     * plan keeps them until the node's backward has run and may reuse the
     * memory of the others. */
    unsigned keep_inputs, keep_outputs;
    /* Bit i: backward honours sfp_exec_t.din_fresh for input i. */
    unsigned overwrite_din;
    /* forward honours sfp_exec_t.fused (inference plans may fuse into it) */
    bool fuse;
} sfp_op_run_t;

typedef struct sfp_op_def {
    const char *op_type;
    int min_inputs, max_inputs;
    int min_outputs, max_outputs;
    const char *const *attrs;        /* NULL-terminated names understood */
    /* Attribute values and static input ranks; NULL when nothing to check. */
    int (*check)(const sfp_op_ctx_t *c, sfp_error_t *err);
    /* Sets dtype/ndim/dims/batch0 (and folded, when computable) of the outputs. */
    int (*infer)(const sfp_op_ctx_t *c, sfp_error_t *err);
    /* Work at the inferred shapes: MACs for dense ops, element ops otherwise. */
    int64_t (*work)(const sfp_graph_t *g, const sfp_node_t *n);
    sfp_work_kind_t work_kind;
    unsigned param_inputs;           /* bit i: input i is a trainable parameter */
    /* Forward runtime; rows initialise it with designated members. */
    sfp_op_run_t run;
} sfp_op_def_t;

const sfp_op_def_t *op_find(const char *op_type, const char *domain);
/* NULL-terminated list of supported op types (for --help and messages). */
const char *const *op_names(void);

/* Each family file exposes its table. */
extern const sfp_op_def_t op_defs_conv[];
extern const sfp_op_def_t op_defs_norm[];
extern const sfp_op_def_t op_defs_elementwise[];
extern const sfp_op_def_t op_defs_pool[];
extern const sfp_op_def_t op_defs_shape[];
extern const sfp_op_def_t op_defs_pad_slice[];
extern const sfp_op_def_t op_defs_gemm[];
extern const sfp_op_def_t op_defs_transpose[];

/* Largest dimension any value may have, and the largest constant that shape
 * inference folds (bigger ones are computed when the plan runs). */
#define OP_MAX_DIM ((int64_t)1 << 40)
#define OP_FOLD_MAX_ELEMS ((int64_t)1 << 16)

/* ---- helpers for op files ---- */
const sfp_value_t *op_in(const sfp_op_ctx_t *c, int i);   /* NULL when omitted */
sfp_value_t *op_out(const sfp_op_ctx_t *c, int i);        /* NULL when omitted */
int op_set_out(const sfp_op_ctx_t *c, int i, sfp_dtype_t dt, int ndim, const int64_t *dims, bool batch0,
               sfp_error_t *err);
/* Error prefixed with the node's name and op type. */
int op_errorf(const sfp_op_ctx_t *c, sfp_error_t *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Input i must be inferred with rank in [lo, hi]. */
int op_need_rank(const sfp_op_ctx_t *c, int i, int lo, int hi, sfp_error_t *err);
/* Constant int64 list from input i (initializer or folded). */
int op_const_ints(const sfp_op_ctx_t *c, int i, int64_t *out, int max, int *n, sfp_error_t *err);
/* Normalises axis into [0, rank) or fails naming the node. */
int op_axis(const sfp_op_ctx_t *c, int64_t axis, int rank, int *out, sfp_error_t *err);
/* Numpy-style broadcast of two shapes. */
int op_broadcast(const sfp_op_ctx_t *c, const sfp_value_t *a, const sfp_value_t *b, int *ndim,
                 int64_t *dims, sfp_error_t *err);
/* Output i becomes a folded constant (takes ownership of t; dims must be set). */
int op_fold(const sfp_op_ctx_t *c, int i, sfp_tensor_t *t, bool batch0, sfp_error_t *err);
int64_t op_numel(const sfp_value_t *v);
/* Work helper: elements of output 0. */
int64_t op_work_out_elems(const sfp_graph_t *g, const sfp_node_t *n);

/* Sliding-window geometry shared by Conv and pooling: reads kernel_shape
 * (or the given kernel), strides, dilations, pads and auto_pad, resolves
 * auto_pad into explicit pads and computes each spatial output size. */
typedef struct sfp_window {
    int n_spatial;
    int64_t kernel[SFP_MAX_SPATIAL], stride[SFP_MAX_SPATIAL], dilation[SFP_MAX_SPATIAL];
    int64_t pad_begin[SFP_MAX_SPATIAL], pad_end[SFP_MAX_SPATIAL];
    int64_t in[SFP_MAX_SPATIAL], out[SFP_MAX_SPATIAL];
} sfp_window_t;
int op_window(const sfp_op_ctx_t *c, const int64_t *in_spatial, int n_spatial, const int64_t *kernel,
              bool ceil_mode, sfp_window_t *w, sfp_error_t *err);
/* Checks auto_pad's value. */
int op_check_auto_pad(const sfp_op_ctx_t *c, sfp_error_t *err);

/* ---- helpers for forward entry points ---- */
/* Error prefixed with the node's name and op type. */
int exec_errorf(const sfp_exec_t *x, sfp_error_t *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Context for op_window and friends at the plan's shapes (borrows x). */
sfp_op_ctx_t exec_ctx(const sfp_exec_t *x);
int64_t shape_numel(const sfp_shape_t *s);
/* Product of dims [from, to). */
int64_t shape_prod(const sfp_shape_t *s, int from, int to);
/* Input i must have dtype dt (SFP_EUNSUPPORTED otherwise, naming the op). */
int exec_need_dtype(const sfp_exec_t *x, int i, sfp_dtype_t dt, sfp_error_t *err);
/* Output i must hold a fixed-size dtype (data movement ops). */
int exec_need_sized(const sfp_exec_t *x, int i, sfp_error_t *err);
/* Integer list of input i (int64 or int32 data), at most max entries. */
int exec_ints(const sfp_exec_t *x, int i, int64_t *out, int max, int *n, sfp_error_t *err);
/* Copies input 0 to output 0 (same bytes): Identity, Reshape, Flatten... */
int exec_copy_forward(const sfp_exec_t *x, sfp_error_t *err);
/* Its backward: din[0] += dout[0] (float32). */
int exec_copy_backward(const sfp_exec_t *x, sfp_error_t *err);

/* ---- graph passes of model_load ---- */
/* Inputs that copy an initializer or a Constant output through Identity
 * nodes read it directly; the Identity nodes left unread are removed
 * (value ids renumbered). alias.c */
int model_resolve_aliases(sfp_model_t *m, sfp_error_t *err);
/* Sizes for symbolic input dims from "[NAME:]1x3x224x224[,...]" (the batch
 * stays free); bad or contradicting specs give SFP_EUSAGE. input_shape.c */
int model_fix_input_shape(sfp_model_t *m, const char *spec, sfp_error_t *err);

#endif
