/* The operator table: for every supported ONNX op, its arity, the attributes
 * it understands, attribute checks, shape inference (with folding of the small
 * int64 shape computations) and its MAC count. One file per op family
 * registers its entries; graph-level passes (validate, infer, batch) use it. */
#ifndef SFP_OPS_H
#define SFP_OPS_H

#include "ir/ir.h"
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

/* What a plan fused into a node whose op takes it (run.fuse; in training
 * plans run.fuse_train, and never a BatchNormalization), in this order on
 * output 0: a BatchNormalization (inference form; its node for epsilon and
 * its scale, B, mean, var data), a residual added (same shape as output 0,
 * never the output's own buffer), Relu. out[0] is then the last fused
 * node's output; the intermediate values are never made. In training the
 * backward starts with exec_fused_backward. */
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
    /* Inference plans whose initializers stay unchanged while they live:
     * persist_bytes (run.persist_bytes) private to the node, zero at plan
     * creation, kept from run to run; else NULL. */
    void *persist;
    size_t persist_bytes;
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
    /* training plans may fuse a residual Add and a Relu into it too: forward
     * in both modes and backward honour sfp_exec_t.fused (the backward calls
     * exec_fused_backward first) */
    bool fuse_train;
    /* Plans whose weights do not change (SFP_PLAN_CONST_WEIGHTS): bytes the
     * node keeps between runs (sfp_exec_t.persist), e.g. its weights in the
     * kernel's layout, made at the first run. NULL or 0: none. */
    size_t (*persist_bytes)(const sfp_exec_t *x);
} sfp_op_run_t;

/* One id per supported op: what code outside src/ops asks instead of
 * comparing op type strings (op_is, op_of(n)->id). ops.c names each. */
typedef enum sfp_op_id {
    SFP_OP_ADD, SFP_OP_AVERAGE_POOL, SFP_OP_BATCH_NORMALIZATION, SFP_OP_CAST, SFP_OP_CLIP, SFP_OP_CONCAT, SFP_OP_CONSTANT,
    SFP_OP_CONSTANT_OF_SHAPE, SFP_OP_CONV, SFP_OP_CONV_TRANSPOSE, SFP_OP_DIV, SFP_OP_DROPOUT, SFP_OP_FLATTEN, SFP_OP_GATHER, SFP_OP_GEMM,
    SFP_OP_GLOBAL_AVERAGE_POOL, SFP_OP_GLOBAL_MAX_POOL, SFP_OP_HARD_SIGMOID, SFP_OP_HARD_SWISH, SFP_OP_IDENTITY,
    SFP_OP_LAYER_NORMALIZATION, SFP_OP_LEAKY_RELU, SFP_OP_MATMUL, SFP_OP_MAX_POOL, SFP_OP_MUL,
    SFP_OP_PAD, SFP_OP_REDUCE_MEAN, SFP_OP_RELU, SFP_OP_RESHAPE, SFP_OP_RESIZE, SFP_OP_SHAPE, SFP_OP_SIGMOID, SFP_OP_SLICE, SFP_OP_SOFTMAX,
    SFP_OP_SPLIT, SFP_OP_SQUEEZE, SFP_OP_SUB, SFP_OP_TRANSPOSE, SFP_OP_UNSQUEEZE, SFP_OP_UPSAMPLE,
    SFP_OP_COUNT
} sfp_op_id_t;

/* How an op couples the channels (axis 1; features of a 2-D value) of the
 * activations it reads and writes: the rule src/surgery/groups.c applies. */
typedef enum sfp_chan_rule {
    SFP_CHAN_UNKNOWN = 0, /* cannot be traced: the channels on every side stay whole, the rest is pruned */
    SFP_CHAN_NONE,        /* reads only shapes (Shape): nothing to couple */
    SFP_CHAN_SAME,        /* output channel c is input 0's channel c (unary, BN, pooling) */
    SFP_CHAN_BROADCAST,   /* elementwise binary: operands with the output's channel count join it */
    SFP_CHAN_CONV,        /* makes its output channels from filters; depthwise joins out o to in o/mult,
                             other groups > 1 keep both sides whole */
    SFP_CHAN_DENSE,       /* Gemm/MatMul: makes its output features; 2-D input features are summed over */
    SFP_CHAN_CONCAT,      /* channel ranges of the output join the inputs' (axis 1), else same */
    SFP_CHAN_PAD,         /* input channel c lands at channel pad + c */
    SFP_CHAN_SLICE,       /* spatial slicing passes channels; a channel range (step 1) maps onto the input's,
                             other steps keep both sides whole */
    SFP_CHAN_RESHAPE,     /* [N, C, rest] -> [N, C * rest] maps features to channels; [N, C, ...] kept */
    SFP_CHAN_MIXES,       /* mixes or normalises across channels (Softmax): both sides stay whole */
    SFP_CHAN_REDUCE,      /* reduction: channels pass when axis 1 is kept (op_reduce_axes), else both sides
                             stay whole */
    SFP_CHAN_SPLIT        /* channel ranges of the input go to the outputs in turn (axis 1), else same */
} sfp_chan_rule_t;

/* What removing channels rewrites in the op's own inputs (src/surgery/apply.c). */
typedef enum sfp_shrink_rule {
    SFP_SHRINK_NONE = 0,  /* nothing stored per channel */
    SFP_SHRINK_FILTERS,   /* weight (input 1) rows on op_weight_axis and columns on the other axis (Conv:
                             group for depthwise), bias (input 2, last axis) */
    SFP_SHRINK_NORM,      /* per-channel inputs 1..4 (scale, bias, mean, variance), axis 0 */
    SFP_SHRINK_BROADCAST, /* constant operands that hold one entry per channel */
    SFP_SHRINK_PAD,       /* the channel pad counts */
    SFP_SHRINK_RESHAPE,   /* a channel/feature count spelled out in the target shape */
    SFP_SHRINK_SPLIT,     /* the split sizes on the channel axis (written out where they were implied) */
    SFP_SHRINK_SLICE      /* a channel range's start and end (written as constants of the node's own) */
} sfp_shrink_rule_t;

/* Facts about an op that pruning, masking and reporting need. */
enum {
    SFP_OPF_FILTERS = 1u << 0,    /* a layer: its output channels are weight rows (Conv, Gemm, MatMul) */
    SFP_OPF_ZERO_KEEPS = 1u << 1, /* channel-wise f(0) = 0: a channel that is zero stays zero */
    SFP_OPF_ZERO_ABSORBS = 1u << 2, /* binary: an all-zero operand makes the output zero (Mul) */
    SFP_OPF_SHIFT = 1u << 3,      /* binary: a constant operand is added (Add, Sub); it is scaled with its channel */
    SFP_OPF_NORM = 1u << 4        /* normalisation: its parameters are scale and shift (no weight decay class) */
};

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
    /* ---- what pruning and the report know (designated in the rows) ---- */
    sfp_op_id_t id;
    sfp_chan_rule_t chan;
    sfp_shrink_rule_t shrink;
    unsigned flags;                  /* SFP_OPF_* */
    /* Filters ops: the axis of the weight (input 1) that indexes output
     * channels (the other axis of a 2-D weight, axis 1 of a conv weight,
     * indexes input channels). */
    int (*weight_axis)(const sfp_node_t *n);
    /* Dense ops: MACs at batch 1 when input 0 keeps kept_in of its channels
     * (features) and output 0 keeps kept_out, counted as work() counts. */
    int64_t (*work_kept)(const sfp_graph_t *g, const sfp_node_t *n, int64_t kept_in, int64_t kept_out);
    /* Channel-wise ops whose f(0) = 0 depends on the node (Clip: min <= 0 <=
     * max, bounds known); NULL: the SFP_OPF_ZERO_KEEPS flag alone decides. */
    bool (*keeps_zero)(const sfp_graph_t *g, const sfp_node_t *n);
    /* Ops whose channel rule depends on the node (LayerNormalization: which
     * axes it normalises; Resize: whether it scales N and C); NULL: .chan. */
    sfp_chan_rule_t (*chan_of)(const sfp_graph_t *g, const sfp_node_t *n);
} sfp_op_def_t;

const sfp_op_def_t *op_find(const char *op_type, const char *domain);
/* The row of node n (NULL for an op the table does not hold). */
const sfp_op_def_t *op_of(const sfp_node_t *n);
/* True when n is the op id. */
bool op_is(const sfp_node_t *n, sfp_op_id_t id);
/* True when n's row has every flag in flags. */
bool op_has(const sfp_node_t *n, unsigned flags);
/* True when node n maps a zero channel to zero: its row's flag, or its
 * row's keeps_zero for this node. */
bool op_keeps_zero(const sfp_graph_t *g, const sfp_node_t *n);
/* The channel rule of node n (its row's chan_of, else .chan; UNKNOWN for an
 * op the table does not hold). */
sfp_chan_rule_t op_chan(const sfp_graph_t *g, const sfp_node_t *n);
/* NULL-terminated list of supported op types (for --help and messages), by id. */
const char *const *op_names(void);
/* The row of an id (every id has exactly one; tests/test_ops.c checks). */
const sfp_op_def_t *op_by_id(sfp_op_id_t id);

/* Each family file exposes its table. */
extern const sfp_op_def_t op_defs_conv[];
extern const sfp_op_def_t op_defs_norm[];
extern const sfp_op_def_t op_defs_elementwise[];
extern const sfp_op_def_t op_defs_pool[];
extern const sfp_op_def_t op_defs_shape[];
extern const sfp_op_def_t op_defs_pad_slice[];
extern const sfp_op_def_t op_defs_gemm[];
extern const sfp_op_def_t op_defs_transpose[];
extern const sfp_op_def_t op_defs_activation[];
extern const sfp_op_def_t op_defs_reduce[];
extern const sfp_op_def_t op_defs_split[];
extern const sfp_op_def_t op_defs_conv_transpose[];
extern const sfp_op_def_t op_defs_resize[];
extern const sfp_op_def_t op_defs_layer_norm[];

/* Reductions (SFP_CHAN_REDUCE): reduced[k] for every axis k of input 0
 * (SFP_MAX_DIMS entries; shapes inferred) and whether reduced axes stay as
 * dims of 1. */
int op_reduce_axes(const sfp_graph_t *g, const sfp_node_t *n, bool *reduced, bool *keepdims, sfp_error_t *err);

/* Split: the normalised axis and the size of every output on it
 * (n->n_outputs entries; shapes inferred, sizes known before running). */
int op_split_sizes(const sfp_graph_t *g, const sfp_node_t *n, int *axis, int64_t *sizes, sfp_error_t *err);

/* Slice: what it keeps of axis `axis` of input 0 (start, step, count after
 * ONNX's clamping) and the index of that axis in its starts/ends lists (-1
 * when the lists leave it whole). Shapes inferred, lists known. */
int op_slice_axis(const sfp_graph_t *g, const sfp_node_t *n, int axis, int *index, int64_t *start, int64_t *step,
                  int64_t *count, sfp_error_t *err);

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
/* The backward of what a training plan fused after a node (run.fuse_train):
 * dout[0], the gradient of the last fused output, is masked in place by
 * out[0] > 0 for a fused Relu (a plan never reads that gradient again), and
 * added to din[n_inputs], the fused residual's gradient (written whole when
 * din_fresh says so); dout[0] is then the gradient of the node's own output. */
void exec_fused_backward(const sfp_exec_t *x);
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

#endif
