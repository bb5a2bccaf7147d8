/* Shape inference (model_infer_shapes, src/ops) against the ONNX operator
 * specification's formulas, folding of Shape-based computations for each
 * batch size, and model_free_batch on a model exported with a fixed batch. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700

#include "testutil.h"

#include "ops/ops.h"

/* x of the given dims (dim 0 < 0: the batch) as the graph's data input. */
static sfp_model_t *model_with_input(int64_t opset, int rank, const int64_t *dims)
{
    sfp_model_t *m = tu_model(opset);
    tu_input(m, "x", SFP_DT_FLOAT, rank, dims);
    return m;
}

static void infer(sfp_model_t *m, int64_t batch)
{
    sfp_error_t err = {0};
    TU_OK(&err, model_infer_shapes(m, batch, &err));
}

/* ------------------------------------------------------------------------ */
/* Conv                                                                      */

/* ONNX Conv/pool output size per spatial axis (operator docs):
 *   explicit pads: floor((in + pad_begin + pad_end - dilation*(k-1) - 1) / stride) + 1
 *   SAME_UPPER/SAME_LOWER: ceil(in / stride)
 *   VALID: ceil((in - dilation*(k-1)) / stride) */
static int64_t spec_conv_out(int64_t in, int64_t k, int64_t stride, int64_t dilation, int64_t pad_begin,
                             int64_t pad_end, const char *auto_pad)
{
    if (auto_pad && !strncmp(auto_pad, "SAME", 4)) return (in + stride - 1) / stride;
    if (auto_pad && !strcmp(auto_pad, "VALID")) return (in - dilation * (k - 1) + stride - 1) / stride;
    return (in + pad_begin + pad_end - dilation * (k - 1) - 1) / stride + 1;
}

typedef struct conv_case {
    const char *label;
    int64_t in_c, in_h, in_w, out_c, k_h, k_w, group;
    int64_t strides[2], dilations[2], pads[4]; /* all 0: attribute not set */
    const char *auto_pad;                      /* NULL: not set */
    int64_t want_h, want_w;                    /* worked out by hand */
} conv_case_t;

static const conv_case_t conv_cases[] = {
    {"3x3 pad 1", 3, 32, 32, 8, 3, 3, 1, {0}, {0}, {1, 1, 1, 1}, NULL, 32, 32},
    {"3x3 stride 2 pad 1", 3, 32, 32, 8, 3, 3, 1, {2, 2}, {0}, {1, 1, 1, 1}, NULL, 16, 16},
    {"3x1 strides 2,3", 2, 7, 9, 4, 3, 1, 1, {2, 3}, {0}, {0}, NULL, 3, 3},
    {"asymmetric pads", 2, 9, 9, 4, 3, 3, 1, {2, 1}, {0}, {0, 1, 1, 0}, NULL, 4, 8},
    {"dilation 2", 2, 10, 10, 4, 3, 3, 1, {0}, {2, 2}, {0}, NULL, 6, 6},
    {"dilation 2 pad 2", 2, 10, 10, 4, 3, 3, 1, {0}, {2, 2}, {2, 2, 2, 2}, NULL, 10, 10},
    {"group 2", 4, 8, 8, 6, 3, 3, 2, {0}, {0}, {1, 1, 1, 1}, NULL, 8, 8},
    {"depthwise stride 2", 4, 8, 8, 4, 3, 3, 4, {2, 2}, {0}, {1, 1, 1, 1}, NULL, 4, 4},
    {"1x1 stride 2 (shortcut B)", 16, 32, 32, 32, 1, 1, 1, {2, 2}, {0}, {0}, NULL, 16, 16},
    {"SAME_UPPER stride 2", 3, 7, 8, 4, 3, 3, 1, {2, 2}, {0}, {0}, "SAME_UPPER", 4, 4},
    {"SAME_UPPER dilation 2", 3, 7, 7, 4, 3, 3, 1, {0}, {2, 2}, {0}, "SAME_UPPER", 7, 7},
    {"SAME_LOWER 4x4 stride 3", 3, 7, 8, 4, 4, 4, 1, {3, 3}, {0}, {0}, "SAME_LOWER", 3, 3},
    {"VALID stride 2", 3, 7, 8, 4, 3, 3, 1, {2, 2}, {0}, {0}, "VALID", 3, 3},
    {"VALID dilation 3", 3, 11, 12, 4, 2, 3, 1, {0}, {3, 3}, {0}, "VALID", 8, 6},
};

static void test_conv_output_follows_onnx_formula(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
        const conv_case_t *c = &conv_cases[i];
        const int64_t x_dims[] = {-1, c->in_c, c->in_h, c->in_w};
        const int64_t w_dims[] = {c->out_c, c->in_c / c->group, c->k_h, c->k_w};
        sfp_model_t *m = model_with_input(13, 4, x_dims);
        tu_init_f32(m, "w", 4, w_dims, NULL, 1);
        sfp_node_t *n = tu_node(m, "Conv", "conv", "x,w", "y");
        if (c->strides[0]) tu_attr_ints(n, "strides", 2, c->strides);
        if (c->dilations[0]) tu_attr_ints(n, "dilations", 2, c->dilations);
        if (c->pads[0] || c->pads[1] || c->pads[2] || c->pads[3]) tu_attr_ints(n, "pads", 4, c->pads);
        if (c->group != 1) tu_attr_int(n, "group", c->group);
        if (c->auto_pad) tu_attr_string(n, "auto_pad", c->auto_pad);
        tu_output(m, "y");
        infer(m, 2);
        int64_t s_h = c->strides[0] ? c->strides[0] : 1, s_w = c->strides[0] ? c->strides[1] : 1;
        int64_t d_h = c->dilations[0] ? c->dilations[0] : 1, d_w = c->dilations[0] ? c->dilations[1] : 1;
        int64_t spec_h = spec_conv_out(c->in_h, c->k_h, s_h, d_h, c->pads[0], c->pads[2], c->auto_pad);
        int64_t spec_w = spec_conv_out(c->in_w, c->k_w, s_w, d_w, c->pads[1], c->pads[3], c->auto_pad);
        if (spec_h != c->want_h || spec_w != c->want_w)
            fail_msg("%s: hand-worked %lldx%lld disagrees with the formula %lldx%lld", c->label,
                     (long long)c->want_h, (long long)c->want_w, (long long)spec_h, (long long)spec_w);
        const sfp_value_t *y = tu_value(m, "y");
        if (y->ndim != 4 || y->dims[0] != 2 || y->dims[1] != c->out_c || y->dims[2] != c->want_h ||
            y->dims[3] != c->want_w)
            fail_msg("%s: inferred [%lld,%lld,%lld,%lld], expected [2,%lld,%lld,%lld]", c->label,
                     (long long)y->dims[0], (long long)y->dims[1], (long long)y->dims[2], (long long)y->dims[3],
                     (long long)c->out_c, (long long)c->want_h, (long long)c->want_w);
        assert_true(y->batch0);
        sfp_model_free(m);
    }
}

static void test_conv1d_output_follows_onnx_formula(void **state)
{
    (void)state;
    const int64_t x_dims[] = {-1, 2, 10}, w_dims[] = {3, 2, 3}, s3[] = {3};
    sfp_model_t *m = model_with_input(13, 3, x_dims);
    tu_init_f32(m, "w", 3, w_dims, NULL, 1);
    sfp_node_t *n = tu_node(m, "Conv", "conv", "x,w", "y");
    tu_attr_ints(n, "strides", 1, s3);
    tu_output(m, "y");
    infer(m, 1);
    TU_EXPECT_SHAPE(m, "y", 1, 3, 3); /* floor((10 - 3) / 3) + 1 */
    sfp_model_free(m);
}

/* SAME_UPPER puts the odd padding pixel at the end, SAME_LOWER at the start
 * (ONNX Conv: "the extra padding is added at the end for SAME_UPPER and at
 * the beginning for SAME_LOWER"). */
static void test_conv_auto_pad_same_places_odd_pad(void **state)
{
    (void)state;
    const int64_t x_dims[] = {1, 1, 8, 7}, w_dims[] = {1, 1, 4, 3};
    const char *modes[] = {"SAME_UPPER", "SAME_LOWER"};
    const int64_t want_begin[2][2] = {{1, 1}, {2, 1}}, want_end[2][2] = {{2, 1}, {1, 1}};
    for (int mode = 0; mode < 2; mode++) {
        sfp_error_t err = {0};
        sfp_model_t *m = model_with_input(13, 4, x_dims);
        tu_init_f32(m, "w", 4, w_dims, NULL, 1);
        sfp_node_t *n = tu_node(m, "Conv", "conv", "x,w", "y");
        tu_attr_string(n, "auto_pad", modes[mode]);
        tu_output(m, "y");
        infer(m, 1);
        TU_EXPECT_SHAPE(m, "y", 1, 1, 8, 7);
        /* height: total pad 3 (kernel 4, stride 1); width: total 2 (kernel 3) */
        sfp_op_ctx_t ctx = {m, &m->graph, &m->graph.nodes[0], 13};
        sfp_window_t win;
        TU_OK(&err, op_window(&ctx, x_dims + 2, 2, w_dims + 2, false, &win, &err));
        for (int k = 0; k < 2; k++) {
            if (win.pad_begin[k] != want_begin[mode][k] || win.pad_end[k] != want_end[mode][k])
                fail_msg("%s axis %d: pads %lld/%lld, expected %lld/%lld", modes[mode], k,
                         (long long)win.pad_begin[k], (long long)win.pad_end[k], (long long)want_begin[mode][k],
                         (long long)want_end[mode][k]);
        }
        sfp_model_free(m);
    }
}

static void test_conv_channel_mismatch_names_both_counts(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const int64_t x_dims[] = {1, 5, 9, 9}, w_dims[] = {8, 7, 3, 3};
    sfp_model_t *m = model_with_input(13, 4, x_dims);
    tu_init_f32(m, "w", 4, w_dims, NULL, 1);
    tu_node(m, "Conv", "conv_bad", "x,w", "y");
    tu_output(m, "y");
    int rc = model_infer_shapes(m, 1, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'conv_bad'", "'w'");
    if (!tu_msg_has_number(err.msg, 7) || !tu_msg_has_number(err.msg, 5))
        fail_msg("message should give 7 (weight) and 5 (input) channels: %s", err.msg);
    sfp_model_free(m);
}

/* ------------------------------------------------------------------------ */
/* Pooling                                                                   */

typedef struct pool_case {
    int64_t in, k, stride, pad;
    int64_t want_floor, want_ceil;
} pool_case_t;

/* ceil_mode: ceil((in + 2*pad - k) / stride) + 1, except that a last window
 * starting inside the end padding is dropped (PyTorch's pooling_output_shape,
 * which ONNX Runtime and the ONNX reference implementation follow). */
static const pool_case_t pool_cases[] = {
    {32, 3, 2, 1, 16, 17}, /* windows start at -1,1,...,31: the 17th starts at pixel 31, inside */
    {7, 2, 2, 0, 3, 4},    /* 7x7 k2 s2: the 4th window covers pixel 6 alone */
    {5, 2, 2, 1, 3, 3},    /* a 4th window would start at 5, in the end padding: dropped */
    {8, 2, 2, 0, 4, 4},    /* exact fit: ceil changes nothing */
    {6, 3, 3, 0, 2, 2},
    {32, 3, 2, 0, 15, 16},
};

static void test_pool_ceil_mode_follows_pytorch_rule(void **state)
{
    (void)state;
    const char *ops[] = {"MaxPool", "AveragePool"};
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++)
        for (int op = 0; op < 2; op++)
            for (int ceil_mode = 0; ceil_mode < 2; ceil_mode++) {
                const pool_case_t *c = &pool_cases[i];
                const int64_t x_dims[] = {-1, 4, c->in, c->in}, k[] = {c->k, c->k}, s[] = {c->stride, c->stride};
                const int64_t p[] = {c->pad, c->pad, c->pad, c->pad};
                sfp_model_t *m = model_with_input(13, 4, x_dims);
                sfp_node_t *n = tu_node(m, ops[op], "pool", "x", "y");
                tu_attr_ints(n, "kernel_shape", 2, k);
                tu_attr_ints(n, "strides", 2, s);
                if (c->pad) tu_attr_ints(n, "pads", 4, p);
                tu_attr_int(n, "ceil_mode", ceil_mode);
                tu_output(m, "y");
                infer(m, 3);
                int64_t want = ceil_mode ? c->want_ceil : c->want_floor;
                const sfp_value_t *y = tu_value(m, "y");
                if (y->ndim != 4 || y->dims[0] != 3 || y->dims[1] != 4 || y->dims[2] != want || y->dims[3] != want)
                    fail_msg("%s in %lld k%lld s%lld p%lld ceil_mode %d: got %lldx%lld, expected %lld", ops[op],
                             (long long)c->in, (long long)c->k, (long long)c->stride, (long long)c->pad, ceil_mode,
                             (long long)y->dims[2], (long long)y->dims[3], (long long)want);
                sfp_model_free(m);
            }
}

static void test_global_average_pool_keeps_batch_and_channels(void **state)
{
    (void)state;
    const int64_t x_dims[] = {-1, 8, 7, 5};
    sfp_model_t *m = model_with_input(13, 4, x_dims);
    tu_node(m, "GlobalAveragePool", "gap", "x", "y");
    tu_output(m, "y");
    infer(m, 6);
    TU_EXPECT_SHAPE(m, "y", 6, 8, 1, 1);
    assert_true(tu_value(m, "y")->batch0);
    sfp_model_free(m);
}

static void test_flatten_splits_at_axis(void **state)
{
    (void)state;
    const int64_t x_dims[] = {-1, 4, 3, 2};
    sfp_model_t *m = model_with_input(13, 4, x_dims);
    const char *outs[] = {"f1", "f0", "f2", "fm1"};
    const int64_t axes[] = {1, 0, 2, -1};
    for (int i = 0; i < 4; i++) {
        char name[8];
        snprintf(name, sizeof name, "flat%d", i);
        sfp_node_t *n = tu_node(m, "Flatten", name, "x", outs[i]);
        if (i) tu_attr_int(n, "axis", axes[i]); /* flat0: the default axis 1 */
        tu_output(m, outs[i]);
    }
    infer(m, 3);
    TU_EXPECT_SHAPE(m, "f1", 3, 24);
    TU_EXPECT_SHAPE(m, "f0", 1, 72);
    TU_EXPECT_SHAPE(m, "f2", 12, 6);
    TU_EXPECT_SHAPE(m, "fm1", 36, 2);
    assert_true(tu_value(m, "f1")->batch0);
    assert_false(tu_value(m, "f0")->batch0);
    sfp_model_free(m);
}

/* ------------------------------------------------------------------------ */
/* Gemm and MatMul                                                           */

static void test_gemm_trans_b_gives_batch_by_units(void **state)
{
    (void)state;
    const int64_t x_dims[] = {-1, 8}, w_dims[] = {10, 8}, b_dims[] = {10}, wt_dims[] = {8, 10};
    sfp_model_t *m = model_with_input(13, 2, x_dims);
    tu_init_f32(m, "w", 2, w_dims, NULL, 1);
    tu_init_f32(m, "wt", 2, wt_dims, NULL, 2);
    tu_init_f32(m, "b", 1, b_dims, NULL, 3);
    sfp_node_t *n = tu_node(m, "Gemm", "fc", "x,w,b", "y");
    tu_attr_int(n, "transB", 1);
    tu_node(m, "Gemm", "fc_plain", "x,wt", "z"); /* B already (K, N), no C */
    tu_output(m, "y");
    tu_output(m, "z");
    infer(m, 3);
    TU_EXPECT_SHAPE(m, "y", 3, 10);
    TU_EXPECT_SHAPE(m, "z", 3, 10);
    assert_true(tu_value(m, "y")->batch0);
    sfp_model_free(m);
}

static void test_gemm_inner_mismatch_is_bad_model(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const int64_t x_dims[] = {-1, 8}, w_dims[] = {10, 9};
    sfp_model_t *m = model_with_input(13, 2, x_dims);
    tu_init_f32(m, "w", 2, w_dims, NULL, 1);
    sfp_node_t *n = tu_node(m, "Gemm", "fc", "x,w", "y");
    tu_attr_int(n, "transB", 1);
    tu_output(m, "y");
    int rc = model_infer_shapes(m, 1, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'fc'");
    assert_true(tu_msg_has_number(err.msg, 8) && tu_msg_has_number(err.msg, 9));
    sfp_model_free(m);
}

/* numpy.matmul: the batch dims broadcast, 1-D operands are promoted and the
 * promoted axis removed again. */
static void test_matmul_broadcasts_batch_dims(void **state)
{
    (void)state;
    const int64_t x_dims[] = {-1, 4}, a_dims[] = {2, 1, 3, 4}, b_dims[] = {5, 4, 6}, v_dims[] = {4},
                  m45_dims[] = {4, 5}, c_dims[] = {3, 4};
    sfp_model_t *m = model_with_input(13, 2, x_dims);
    tu_input(m, "a", SFP_DT_FLOAT, 4, a_dims);
    tu_input(m, "c", SFP_DT_FLOAT, 2, c_dims);
    tu_init_f32(m, "b", 3, b_dims, NULL, 1);
    tu_init_f32(m, "v", 1, v_dims, NULL, 2);
    tu_init_f32(m, "m45", 2, m45_dims, NULL, 3);
    tu_node(m, "MatMul", "batched", "a,b", "ab");
    tu_node(m, "MatMul", "mat_vec", "c,v", "cv");
    tu_node(m, "MatMul", "vec_mat", "v,m45", "vm");
    tu_node(m, "MatMul", "rows", "x,m45", "xm");
    const char *outs[] = {"ab", "cv", "vm", "xm"};
    for (int i = 0; i < 4; i++) tu_output(m, outs[i]);
    infer(m, 7);
    TU_EXPECT_SHAPE(m, "ab", 2, 5, 3, 6);
    TU_EXPECT_SHAPE(m, "cv", 3);
    TU_EXPECT_SHAPE(m, "vm", 5);
    TU_EXPECT_SHAPE(m, "xm", 7, 5);
    assert_true(tu_value(m, "xm")->batch0);
    sfp_model_free(m);
}

static void test_matmul_inner_mismatch_is_bad_model(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const int64_t x_dims[] = {-1, 4}, w_dims[] = {5, 6};
    sfp_model_t *m = model_with_input(13, 2, x_dims);
    tu_init_f32(m, "w", 2, w_dims, NULL, 1);
    tu_node(m, "MatMul", "mm", "x,w", "y");
    tu_output(m, "y");
    int rc = model_infer_shapes(m, 1, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'mm'");
    sfp_model_free(m);
}

/* ------------------------------------------------------------------------ */
/* Channel-axis ops: Concat, Pad, Slice                                      */

static void test_concat_adds_channel_counts(void **state)
{
    (void)state;
    const int64_t x_dims[] = {-1, 3, 8, 8};
    sfp_model_t *m = model_with_input(13, 4, x_dims);
    tu_node(m, "Relu", "relu", "x", "a");
    sfp_node_t *n = tu_node(m, "Conv", "conv", "x,w", "b");
    const int64_t w_dims[] = {5, 3, 1, 1};
    tu_init_f32(m, "w", 4, w_dims, NULL, 1);
    n = tu_node(m, "Concat", "cat", "a,b,x", "y");
    tu_attr_int(n, "axis", 1);
    n = tu_node(m, "Concat", "cat_neg", "b,a", "z");
    tu_attr_int(n, "axis", -3);
    tu_output(m, "y");
    tu_output(m, "z");
    infer(m, 4);
    TU_EXPECT_SHAPE(m, "y", 4, 11, 8, 8);
    TU_EXPECT_SHAPE(m, "z", 4, 8, 8, 8);
    assert_true(tu_value(m, "y")->batch0);
    sfp_model_free(m);
}

static void test_concat_spatial_mismatch_is_bad_model(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const int64_t x_dims[] = {-1, 3, 8, 8};
    sfp_model_t *m = model_with_input(13, 4, x_dims);
    sfp_node_t *n = tu_node(m, "MaxPool", "pool", "x", "p");
    const int64_t k2[] = {2, 2}, s2[] = {2, 2};
    tu_attr_ints(n, "kernel_shape", 2, k2);
    tu_attr_ints(n, "strides", 2, s2);
    n = tu_node(m, "Concat", "cat", "x,p", "y");
    tu_attr_int(n, "axis", 1);
    tu_output(m, "y");
    int rc = model_infer_shapes(m, 1, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'cat'");
    sfp_model_free(m);
}

/* The zero-padding shortcut (option A): channels padded on both sides. */
static void test_pad_opset11_pads_channels_from_input(void **state)
{
    (void)state;
    const int64_t x_dims[] = {-1, 3, 8, 8};
    const int64_t pads[] = {0, 2, 0, 0, 0, 3, 0, 0};
    sfp_model_t *m = model_with_input(11, 4, x_dims);
    tu_init_i64(m, "pads", 8, pads);
    const float zero = 0.0f;
    tu_init(m, "value", SFP_DT_FLOAT, 0, NULL, &zero);
    tu_node(m, "Pad", "pad", "x,pads,value", "y");
    tu_output(m, "y");
    infer(m, 5);
    TU_EXPECT_SHAPE(m, "y", 5, 8, 8, 8);
    assert_true(tu_value(m, "y")->batch0);
    sfp_model_free(m);

    /* opset 2..10: the same pads as an attribute */
    m = model_with_input(9, 4, x_dims);
    sfp_node_t *n = tu_node(m, "Pad", "pad", "x", "y");
    tu_attr_ints(n, "pads", 8, pads);
    tu_output(m, "y");
    infer(m, 5);
    TU_EXPECT_SHAPE(m, "y", 5, 8, 8, 8);
    sfp_model_free(m);
}

/* ONNX Slice (opset 10+): negative starts/ends count from the end; then
 * starts clamp to [0, dim] (step > 0) or [0, dim-1] (step < 0), ends to
 * [0, dim] or [-1, dim-1]; the count is ceil((end - start) / step), at least 0. */
typedef struct slice_case {
    const char *label;
    int64_t start, end, axis, step; /* step 0: no steps input */
    int64_t want_channels;          /* of 8 */
} slice_case_t;

static const slice_case_t slice_cases[] = {
    {"negative start, end past the dim, step 2", -6, 100, 1, 2, 3},  /* 2,4,6 */
    {"reverse, step -2", -1, -100, 1, -2, 4},                         /* 7,5,3,1 */
    {"to INT64_MAX, axis -3", 1, INT64_MAX, -3, 0, 7},                /* 1..7 */
    {"start after end", 5, 2, 1, 1, 0},
    {"start past the dim", 100, 200, 1, 1, 0},
    {"full reverse, INT64_MAX to INT64_MIN", INT64_MAX, INT64_MIN, 1, -1, 8},
    {"reverse from below the start", -100, -200, 1, -1, 1},          /* start clamps to 0: element 0 */
    {"step larger than the dim", 0, 8, 1, 20, 1},
};

static void test_slice_opset10_steps_negative_indices_and_clamping(void **state)
{
    (void)state;
    const int64_t x_dims[] = {-1, 8, 6, 6};
    char failures[1024] = "";
    size_t o = 0;
    for (size_t i = 0; i < sizeof slice_cases / sizeof slice_cases[0]; i++) {
        const slice_case_t *c = &slice_cases[i];
        sfp_model_t *m = model_with_input(10, 4, x_dims);
        tu_init_i64(m, "starts", 1, &c->start);
        tu_init_i64(m, "ends", 1, &c->end);
        tu_init_i64(m, "axes", 1, &c->axis);
        if (c->step) tu_init_i64(m, "steps", 1, &c->step);
        tu_node(m, "Slice", "slice", c->step ? "x,starts,ends,axes,steps" : "x,starts,ends,axes", "y");
        tu_output(m, "y");
        infer(m, 2);
        const sfp_value_t *y = tu_value(m, "y");
        if ((y->ndim != 4 || y->dims[0] != 2 || y->dims[1] != c->want_channels || y->dims[2] != 6 ||
             y->dims[3] != 6 || !y->batch0) && o < sizeof failures)
            o += (size_t)snprintf(failures + o, sizeof failures - o, "\n  %s: got [%lld,%lld,%lld,%lld], expected [2,%lld,6,6]",
                                  c->label, (long long)y->dims[0], (long long)y->dims[1], (long long)y->dims[2],
                                  (long long)y->dims[3], (long long)c->want_channels);
        sfp_model_free(m);
    }
    if (failures[0]) fail_msg("Slice cases off the ONNX rule:%s", failures);
}

/* x[:, :, ::2, ::2] as PyTorch exports it (the subsampling of shortcut A). */
static void test_slice_subsamples_spatial_axes(void **state)
{
    (void)state;
    const int64_t x_dims[] = {-1, 16, 32, 31};
    const int64_t starts[] = {0, 0}, ends[] = {INT64_MAX, INT64_MAX}, axes[] = {2, 3}, steps[] = {2, 2};
    sfp_model_t *m = model_with_input(13, 4, x_dims);
    tu_init_i64(m, "starts", 2, starts);
    tu_init_i64(m, "ends", 2, ends);
    tu_init_i64(m, "axes", 2, axes);
    tu_init_i64(m, "steps", 2, steps);
    tu_node(m, "Slice", "sub", "x,starts,ends,axes,steps", "y");
    tu_output(m, "y");
    infer(m, 1);
    TU_EXPECT_SHAPE(m, "y", 1, 16, 16, 16);
    sfp_model_free(m);
}

/* Slice of constant N-D data is folded: rows -1 and -3 (step -2), all columns
 * reversed, of [[0..3],[4..7],[8..11]] = [[11,10,9,8],[3,2,1,0]]. */
static void test_slice_folds_constant_2d_data_with_negative_steps(void **state)
{
    (void)state;
    const int64_t x_dims[] = {-1, 4}, data_dims[] = {3, 4};
    const int64_t data[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    const int64_t starts[] = {-1, 3}, ends[] = {INT64_MIN, INT64_MIN}, axes[] = {0, 1}, steps[] = {-2, -1};
    sfp_model_t *m = model_with_input(13, 2, x_dims);
    tu_init(m, "data", SFP_DT_INT64, 2, data_dims, data);
    tu_init_i64(m, "starts", 2, starts);
    tu_init_i64(m, "ends", 2, ends);
    tu_init_i64(m, "axes", 2, axes);
    tu_init_i64(m, "steps", 2, steps);
    tu_node(m, "Slice", "slice", "data,starts,ends,axes,steps", "y");
    tu_output(m, "y");
    infer(m, 1);
    TU_EXPECT_SHAPE(m, "y", 2, 4);
    const sfp_tensor_t *y = graph_const(&m->graph, graph_find_value(&m->graph, "y"));
    assert_non_null(y);
    const int64_t want[8] = {11, 10, 9, 8, 3, 2, 1, 0};
    for (int i = 0; i < 8; i++)
        if (sfp_tensor_get_int(y, i) != want[i])
            fail_msg("folded element %d is %lld, expected %lld", i, (long long)sfp_tensor_get_int(y, i),
                     (long long)want[i]);
    sfp_model_free(m);
}

/* ------------------------------------------------------------------------ */
/* Shape computations and the batch                                          */

/* PyTorch's x.view(x.size(0), -1): Shape -> Gather(0) -> Unsqueeze ->
 * Concat([.., -1]) -> Reshape. opset 11 gives Unsqueeze its axes as an
 * attribute, opset 13 as an input. */
static sfp_model_t *shape_chain_model(int64_t opset)
{
    const int64_t x_dims[] = {-1, 3, 4, 4}, zero_axis = 0, minus_one = -1;
    sfp_model_t *m = model_with_input(opset, 4, x_dims);
    const int64_t zero = 0;
    tu_init(m, "idx0", SFP_DT_INT64, 0, NULL, &zero);
    tu_init_i64(m, "minus1", 1, &minus_one);
    tu_node(m, "Relu", "relu", "x", "r");
    tu_node(m, "Shape", "shape", "r", "s");
    tu_node(m, "Gather", "gather", "s,idx0", "g");
    if (opset >= 13) {
        tu_init_i64(m, "axes0", 1, &zero_axis);
        tu_node(m, "Unsqueeze", "unsqueeze", "g,axes0", "u");
    } else {
        sfp_node_t *n = tu_node(m, "Unsqueeze", "unsqueeze", "g", "u");
        tu_attr_ints(n, "axes", 1, &zero_axis);
    }
    sfp_node_t *n = tu_node(m, "Concat", "cat", "u,minus1", "target");
    tu_attr_int(n, "axis", 0);
    tu_node(m, "Reshape", "reshape", "r,target", "y");
    tu_output(m, "y");
    return m;
}

static void test_shape_chain_reshape_follows_batch(void **state)
{
    (void)state;
    const int64_t opsets[] = {11, 13};
    const int64_t batches[] = {1, 7, 1};
    for (int o = 0; o < 2; o++) {
        sfp_model_t *m = shape_chain_model(opsets[o]);
        for (int b = 0; b < 3; b++) {
            infer(m, batches[b]);
            TU_EXPECT_SHAPE(m, "y", batches[b], 48);
            const sfp_value_t *target = tu_value(m, "target");
            const sfp_tensor_t *k = graph_const(&m->graph, graph_find_value(&m->graph, "target"));
            assert_non_null(k);
            assert_true(sfp_tensor_get_int(k, 0) == batches[b]);
            assert_true(sfp_tensor_get_int(k, 1) == -1);
            assert_true(target->batch_dep);
            assert_true(tu_value(m, "y")->batch0);
            assert_true(m->graph.batch == batches[b]);
        }
        sfp_model_free(m);
    }
}

/* Entries whose product overflows int64 must be refused, without signed
 * overflow along the way (run under UBSan to see it). */
static void test_reshape_target_with_overflowing_product_is_bad_model(void **state)
{
    (void)state;
    const int64_t x_dims[] = {1, 3, 8, 8};
    const int64_t targets[2][3] = {{-1, (int64_t)1 << 62, 4}, {(int64_t)1 << 62, 8, 3}};
    for (int t = 0; t < 2; t++) {
        sfp_error_t err = {0};
        sfp_model_t *m = model_with_input(13, 4, x_dims);
        tu_init_i64(m, "target", 3, targets[t]);
        tu_node(m, "Reshape", "reshape", "x,target", "y");
        tu_output(m, "y");
        int rc = model_infer_shapes(m, 1, &err);
        TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'reshape'");
        sfp_model_free(m);
    }
}

/* A model exported at batch 2 with x.view(2, -1) frozen into an initializer. */
static sfp_model_t *frozen_batch_model(void)
{
    const int64_t x_dims[] = {2, 3, 8, 8}, frozen[] = {2, -1}, y_dims[] = {2, 192};
    sfp_model_t *m = model_with_input(13, 4, x_dims);
    tu_init_i64(m, "target", 2, frozen);
    tu_node(m, "Relu", "relu", "x", "r");
    tu_node(m, "Reshape", "reshape", "r,target", "y");
    tu_output(m, "y");
    tu_declare(m, "y", SFP_DT_FLOAT, 2, y_dims);
    return m;
}

static void expect_batch_param(const sfp_model_t *m, const char *name)
{
    const sfp_value_t *v = tu_value(m, name);
    if (v->decl.rank < 1 || v->decl.dims[0] != -1 || !v->decl.params[0] || strcmp(v->decl.params[0], "N"))
        fail_msg("declared dim 0 of '%s' is %lld ('%s'), expected symbolic 'N'", name, (long long)v->decl.dims[0],
                 v->decl.params[0] ? v->decl.params[0] : "(none)");
}

static void test_free_batch_makes_frozen_reshape_follow_batch(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = frozen_batch_model();
    TU_OK(&err, model_free_batch(m, &err));
    expect_batch_param(m, "x");
    expect_batch_param(m, "y");
    const sfp_value_t *x = tu_value(m, "x");
    for (int k = 1; k < 4; k++) assert_true(x->decl.dims[k] == (k == 1 ? 3 : 8)); /* the rest stays */
    assert_true(tu_value(m, "y")->decl.dims[1] == 192);
    infer(m, 5);
    TU_EXPECT_SHAPE(m, "y", 5, 192);
    infer(m, 1);
    TU_EXPECT_SHAPE(m, "y", 1, 192);
    sfp_model_free(m);

    /* Without model_free_batch the export batch stays frozen in. */
    m = frozen_batch_model();
    infer(m, 5);
    TU_EXPECT_SHAPE(m, "y", 2, 192);
    sfp_model_free(m);
}

/* One frozen target read by two Reshapes, and one held by a Constant node. */
static void test_free_batch_rewrites_shared_and_constant_targets(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const int64_t x_dims[] = {2, 3, 8, 8}, frozen[] = {2, -1}, two = 2;
    sfp_model_t *m = model_with_input(13, 4, x_dims);
    tu_init_i64(m, "target", 2, frozen);
    tu_node(m, "Relu", "relu", "x", "r");
    tu_node(m, "Reshape", "reshape_a", "x,target", "ya");
    tu_node(m, "Reshape", "reshape_b", "r,target", "yb");
    sfp_node_t *n = tu_node(m, "Constant", "const_target", "", "ctarget");
    sfp_tensor_t *t = NULL;
    TU_OK(&err, sfp_tensor_create(NULL, SFP_DT_INT64, 1, &two, &t, &err));
    memcpy(t->data, frozen, sizeof frozen);
    TU_OK(&err, node_set_attr_tensor(n, "value", t, &err));
    tu_node(m, "Reshape", "reshape_c", "r,ctarget", "yc");
    tu_output(m, "ya");
    tu_output(m, "yb");
    tu_output(m, "yc");
    TU_OK(&err, model_free_batch(m, &err));
    infer(m, 5);
    TU_EXPECT_SHAPE(m, "ya", 5, 192);
    TU_EXPECT_SHAPE(m, "yb", 5, 192);
    TU_EXPECT_SHAPE(m, "yc", 5, 192);
    sfp_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_output_follows_onnx_formula),
        cmocka_unit_test(test_conv1d_output_follows_onnx_formula),
        cmocka_unit_test(test_conv_auto_pad_same_places_odd_pad),
        cmocka_unit_test(test_conv_channel_mismatch_names_both_counts),
        cmocka_unit_test(test_pool_ceil_mode_follows_pytorch_rule),
        cmocka_unit_test(test_global_average_pool_keeps_batch_and_channels),
        cmocka_unit_test(test_flatten_splits_at_axis),
        cmocka_unit_test(test_gemm_trans_b_gives_batch_by_units),
        cmocka_unit_test(test_gemm_inner_mismatch_is_bad_model),
        cmocka_unit_test(test_matmul_broadcasts_batch_dims),
        cmocka_unit_test(test_matmul_inner_mismatch_is_bad_model),
        cmocka_unit_test(test_concat_adds_channel_counts),
        cmocka_unit_test(test_concat_spatial_mismatch_is_bad_model),
        cmocka_unit_test(test_pad_opset11_pads_channels_from_input),
        cmocka_unit_test(test_slice_opset10_steps_negative_indices_and_clamping),
        cmocka_unit_test(test_slice_subsamples_spatial_axes),
        cmocka_unit_test(test_slice_folds_constant_2d_data_with_negative_steps),
        cmocka_unit_test(test_shape_chain_reshape_follows_batch),
        cmocka_unit_test(test_reshape_target_with_overflowing_product_is_bad_model),
        cmocka_unit_test(test_free_batch_makes_frozen_reshape_follow_batch),
        cmocka_unit_test(test_free_batch_rewrites_shared_and_constant_targets),
    };
    return cmocka_run_group_tests(tests, NULL, tu_cleanup_tmpdirs);
}
