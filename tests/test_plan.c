/* Execution plans (src/train/plan.c): buffer reuse never changes results,
 * plans at different batch sizes live side by side on one model (shape
 * computations folded per batch), the model's inferred shapes are left as
 * they were, activations are kept on request, and what cannot run is refused
 * when planning with the node named. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700

#include "testutil.h"

#include <math.h>

#include "ops/ops.h"
#include "train/plan.h"

static float *pattern(int64_t n, uint32_t seed)
{
    float *p = malloc(sizeof(float) * (size_t)n);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(tu_rand(&seed) % 2001) / 1000.0f - 1.0f;
    return p;
}

/* x (N,4,6,6) -> conv 3x3 -> relu -> conv 1x1 -> add(relu) -> relu -> flatten
 * via Reshape(x, Concat(Shape(x)[0:1], [-1])) (the export pattern whose
 * target is folded per batch) -> gemm -> y (N,5). Several values die early,
 * so buffers are reused. */
static sfp_model_t *chain_model(void)
{
    sfp_model_t *m = tu_model(13);
    const int64_t x_dims[4] = {-1, 4, 6, 6};
    tu_input(m, "x", SFP_DT_FLOAT, 4, x_dims);
    const int64_t w1[4] = {4, 4, 3, 3}, w2[4] = {4, 4, 1, 1}, fc[2] = {5, 144}, c5[1] = {5};
    tu_init_f32(m, "w1", 4, w1, NULL, 11);
    tu_init_f32(m, "w2", 4, w2, NULL, 12);
    tu_init_f32(m, "fc_w", 2, fc, NULL, 13);
    tu_init_f32(m, "fc_b", 1, c5, NULL, 14);
    const int64_t zero = 0, one = 1, minus1 = -1;
    tu_init_i64(m, "start", 1, &zero);
    tu_init_i64(m, "end", 1, &one);
    tu_init_i64(m, "rest", 1, &minus1);
    sfp_node_t *n = tu_node(m, "Conv", "conv1", "x,w1", "c1");
    tu_attr_ints(n, "pads", 4, (const int64_t[]){1, 1, 1, 1});
    tu_node(m, "Relu", "relu1", "c1", "r1");
    tu_node(m, "Conv", "conv2", "r1,w2", "c2");
    tu_node(m, "Add", "add", "c2,r1", "s");
    tu_node(m, "Relu", "relu2", "s", "r2");
    tu_node(m, "Shape", "shape", "r2", "shp");
    tu_node(m, "Slice", "first", "shp,start,end", "n");
    n = tu_node(m, "Concat", "target", "n,rest", "tgt");
    tu_attr_int(n, "axis", 0);
    tu_node(m, "Reshape", "flat", "r2,tgt", "f");
    n = tu_node(m, "Gemm", "fc", "f,fc_w,fc_b", "y");
    tu_attr_int(n, "transB", 1);
    tu_output(m, "y");
    sfp_error_t err = {0};
    TU_OK(&err, model_validate(m, &err));
    return m;
}

static void run_plan(sfp_plan_t *p, const float *x)
{
    sfp_error_t err = {0};
    const void *in[1] = {x};
    TU_OK(&err, plan_run(p, in, &err));
}

static void test_buffer_reuse_gives_the_same_outputs_in_less_memory(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = chain_model();
    sfp_plan_t *reuse = NULL, *keep = NULL;
    TU_OK(&err, plan_create(m, 3, 0, 1, &reuse, &err));
    TU_OK(&err, plan_create(m, 3, SFP_PLAN_KEEP_ACTIVATIONS, 1, &keep, &err));
    assert_true(plan_arena_bytes(reuse) < plan_arena_bytes(keep));
    /* Shape, Slice and Concat are folded: they are not steps; relu1 is fused
     * into conv1, add and relu2 into conv2 (the plan with kept activations
     * runs all 7 nodes) */
    assert_int_equal(plan_n_steps(reuse), 4);
    assert_int_equal(plan_n_steps(keep), 7);
    float *x = pattern(3 * 4 * 6 * 6, 5);
    run_plan(reuse, x);
    run_plan(keep, x);
    const float *a = plan_output(reuse, 0), *b = plan_output(keep, 0);
    for (int i = 0; i < 15; i++) assert_float_equal(a[i], b[i], 0.0f);
    /* kept activations are readable: relu1 = max(conv1, 0) */
    const sfp_graph_t *g = &m->graph;
    const float *c1 = plan_value_data(keep, graph_find_value(g, "c1"));
    const float *r1 = plan_value_data(keep, graph_find_value(g, "r1"));
    assert_non_null(c1);
    assert_non_null(r1);
    for (int i = 0; i < 3 * 4 * 36; i++) assert_float_equal(r1[i], c1[i] > 0.0f ? c1[i] : 0.0f, 0.0f);
    plan_free(reuse);
    plan_free(keep);
    free(x);
    sfp_model_free(m);
}

/* Each image's output does not depend on the batch it is run in; a plan made
 * for batch 5 leaves the batch-2 plan (and its folded Reshape target) intact. */
static void test_plans_at_two_batches_coexist(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = chain_model();
    TU_OK(&err, model_infer_shapes(m, 1, &err));
    sfp_plan_t *p2 = NULL, *p5 = NULL;
    TU_OK(&err, plan_create(m, 2, 0, 2, &p2, &err));
    TU_OK(&err, plan_create(m, 5, 0, 2, &p5, &err));
    assert_int_equal(plan_batch(p2), 2);
    assert_int_equal(plan_batch(p5), 5);
    assert_int_equal(plan_output_shape(p5, 0)->dims[0], 5);
    /* the model is still inferred for batch 1 */
    assert_int_equal(m->graph.batch, 1);
    TU_EXPECT_SHAPE(m, "f", 1, 144);
    const int64_t image = 4 * 6 * 6;
    float *x = pattern(5 * image, 9);
    run_plan(p5, x);
    run_plan(p2, x + 3 * image); /* images 3 and 4 */
    const float *y5 = plan_output(p5, 0), *y2 = plan_output(p2, 0);
    float first_two[10];
    for (int i = 0; i < 10; i++) assert_float_equal(y2[i], y5[15 + i], 1e-5f);
    memcpy(first_two, y5, sizeof first_two);
    plan_free(p5);
    TU_OK(&err, model_infer_shapes(m, 7, &err)); /* replaces the graph's folded values */
    run_plan(p2, x); /* images 0 and 1, with the plan's own copy of the Reshape target */
    for (int i = 0; i < 10; i++) assert_float_equal(y2[i], first_two[i], 1e-5f);
    plan_free(p2);
    free(x);
    sfp_model_free(m);
}

static void test_missing_input_data_is_refused(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = chain_model();
    sfp_plan_t *p = NULL;
    TU_OK(&err, plan_create(m, 1, 0, 1, &p, &err));
    assert_int_equal(plan_n_inputs(p), 1);
    const void *in[1] = {NULL};
    int rc = plan_run(p, in, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "'x'");
    plan_free(p);
    sfp_model_free(m);
}

/* Relu computes float32 only: an int64 Relu is refused while planning. */
static void test_unsupported_types_are_refused_when_planning(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    const int64_t dims[2] = {2, 3};
    tu_input(m, "x", SFP_DT_INT64, 2, dims);
    tu_node(m, "Relu", "int_relu", "x", "y");
    tu_output(m, "y");
    TU_OK(&err, model_validate(m, &err));
    sfp_plan_t *p = NULL;
    int rc = plan_create(m, 0, 0, 1, &p, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUNSUPPORTED, "int_relu", "Relu", "int64");
    assert_null(p);
    sfp_model_free(m);
}

/* An integer division by zero in the data is an error naming the node, not a crash. */
static void test_integer_division_by_zero_is_an_error(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    const int64_t dims[1] = {3};
    tu_input(m, "a", SFP_DT_INT64, 1, dims);
    tu_input(m, "b", SFP_DT_INT64, 1, dims);
    tu_node(m, "Div", "idiv", "a,b", "y");
    tu_output(m, "y");
    TU_OK(&err, model_validate(m, &err));
    sfp_plan_t *p = NULL;
    TU_OK(&err, plan_create(m, 0, 0, 1, &p, &err));
    int64_t a[3] = {6, -7, 8}, b[3] = {3, 2, 0};
    const void *in[2] = {a, b};
    int rc = plan_run(p, in, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "idiv", "division by zero");
    b[2] = -4;
    TU_OK(&err, plan_run(p, in, &err));
    const int64_t *y = plan_output(p, 0);
    assert_true(y[0] == 2 && y[1] == -3 && y[2] == -2);
    plan_free(p);
    sfp_model_free(m);
}

/* A graph output that is a constant or a graph input is served in place. */
static void test_outputs_may_be_inputs_or_constants(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    const int64_t dims[1] = {4};
    tu_input(m, "x", SFP_DT_FLOAT, 1, dims);
    tu_node(m, "Shape", "shape", "x", "s");
    tu_output(m, "x");
    tu_output(m, "s");
    TU_OK(&err, model_validate(m, &err));
    sfp_plan_t *p = NULL;
    TU_OK(&err, plan_create(m, 0, 0, 1, &p, &err));
    assert_int_equal(plan_n_steps(p), 0);
    float x[4] = {1, 2, 3, 4};
    const void *in[1] = {x};
    TU_OK(&err, plan_run(p, in, &err));
    assert_ptr_equal(plan_output(p, 0), x);
    assert_true(((const int64_t *)plan_output(p, 1))[0] == 4);
    plan_free(p);
    sfp_model_free(m);
}

/* Runs node n's forward on the graph's constant inputs and compares each
 * output with what shape inference folded. */
static void expect_forward_matches_folding(const sfp_model_t *m, const sfp_node_t *n)
{
    const sfp_graph_t *g = &m->graph;
    sfp_error_t err = {0};
    sfp_shape_t in_shape[8], out_shape[4];
    const sfp_shape_t *in_sp[8] = {0}, *out_sp[4] = {0};
    const void *in[8] = {0};
    void *out[4] = {0};
    assert_true(n->n_inputs <= 8 && n->n_outputs <= 4);
    for (int k = 0; k < n->n_inputs; k++) {
        if (n->inputs[k] < 0) continue;
        const sfp_tensor_t *t = graph_const(g, n->inputs[k]);
        const sfp_value_t *v = &g->values[n->inputs[k]];
        /* Shape reads only the shape of its input, which is not a constant */
        in_shape[k].dtype = v->dtype;
        in_shape[k].ndim = v->ndim;
        memcpy(in_shape[k].dims, v->dims, sizeof v->dims);
        in_sp[k] = &in_shape[k];
        in[k] = t ? t->data : NULL;
        if (!t) assert_string_equal(n->op_type, "Shape");
    }
    for (int o = 0; o < n->n_outputs; o++) {
        const sfp_tensor_t *t = graph_const(g, n->outputs[o]);
        assert_non_null(t);
        out_shape[o].dtype = t->dtype;
        out_shape[o].ndim = t->ndim;
        memcpy(out_shape[o].dims, t->dims, sizeof t->dims);
        out_sp[o] = &out_shape[o];
        out[o] = calloc(t->nbytes + 1, 1);
        assert_non_null(out[o]);
    }
    const sfp_op_def_t *def = op_find(n->op_type, n->domain);
    sfp_exec_t x = {.g = g, .node = n, .opset = sfp_model_opset(m, ""), .in_shape = in_sp, .out_shape = out_sp,
                    .in = in, .out = out};
    size_t scratch = 0;
    if (def->run.prepare) TU_OK(&err, def->run.prepare(&x, &scratch, &err));
    x.scratch = malloc(scratch + 1);
    x.scratch_bytes = scratch;
    TU_OK(&err, def->run.forward(&x, &err));
    for (int o = 0; o < n->n_outputs; o++) {
        const sfp_tensor_t *t = graph_const(g, n->outputs[o]);
        if (t->nbytes && memcmp(out[o], t->data, t->nbytes) != 0)
            fail_msg("node '%s' (%s): forward differs from the folded value", n->name, n->op_type);
        free(out[o]);
    }
    free(x.scratch);
}

/* Ops that shape inference folds (Constant, ConstantOfShape, Shape, Gather,
 * Unsqueeze, Squeeze, Concat, Reshape, Slice, Cast, Transpose, int64 Add...)
 * also have forward code for inputs only known while running: both must give
 * the same bytes. */
static void test_forward_of_folded_ops_matches_their_folding(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    const int64_t x_dims[4] = {-1, 3, 4, 5};
    tu_input(m, "x", SFP_DT_FLOAT, 4, x_dims);
    const int64_t zero = 0, axes0 = 0, two[2] = {2, 3};
    tu_init(m, "idx", SFP_DT_INT64, 0, NULL, &zero); /* scalar index: Gather drops the axis */
    tu_init_i64(m, "ax0", 1, &axes0);
    tu_init_i64(m, "two", 2, two);
    tu_init_i64(m, "s0", 1, (const int64_t[]){1});
    tu_init_i64(m, "s1", 1, (const int64_t[]){-1});
    tu_init_i64(m, "step", 1, (const int64_t[]){-1});
    tu_node(m, "Shape", "shape", "x", "shp");
    sfp_node_t *n = tu_node(m, "Gather", "gather", "shp,idx", "b");
    tu_attr_int(n, "axis", 0);
    tu_node(m, "Unsqueeze", "unsq", "b,ax0", "b1");
    tu_node(m, "Squeeze", "sq", "b1,ax0", "b2");
    tu_node(m, "Add", "add", "shp,shp", "twice");
    tu_node(m, "Mul", "mul", "twice,s1", "neg");
    tu_node(m, "Div", "div", "neg,s1", "back");
    tu_node(m, "Slice", "slice", "back,s1,s0,ax0,step", "rev");
    n = tu_node(m, "Concat", "cat", "b1,two,rev", "tgt");
    tu_attr_int(n, "axis", 0);
    tu_node(m, "Cast", "cast", "tgt", "tgt_f");
    tu_attr_int(m->graph.nodes + m->graph.n_nodes - 1, "to", SFP_DT_FLOAT);
    tu_node(m, "ConstantOfShape", "cos", "two", "ones");
    sfp_tensor_t *one = NULL;
    TU_OK(&err, sfp_tensor_create(NULL, SFP_DT_FLOAT, 1, (const int64_t[]){1}, &one, &err));
    ((float *)one->data)[0] = 1.5f;
    TU_OK(&err, node_set_attr_tensor(m->graph.nodes + m->graph.n_nodes - 1, "value", one, &err));
    n = tu_node(m, "Transpose", "tr", "ones", "ones_t");
    n = tu_node(m, "Constant", "const", "", "k");
    TU_OK(&err, node_set_attr_ints(n, "value_ints", (const int64_t[]){4, 5, 6}, 3, &err));
    tu_node(m, "Identity", "ident", "k", "k2");
    n = tu_node(m, "Reshape", "reshape", "ones_t,s1", "flat");
    tu_output(m, "tgt_f");
    tu_output(m, "flat");
    tu_output(m, "k2");
    tu_output(m, "b2");
    TU_OK(&err, model_validate(m, &err));
    TU_OK(&err, model_infer_shapes(m, 6, &err));
    int checked = 0;
    for (int i = 0; i < m->graph.n_nodes; i++) {
        const sfp_node_t *node = &m->graph.nodes[i];
        expect_forward_matches_folding(m, node);
        checked++;
    }
    assert_int_equal(checked, 15);
    /* and the values are what the graph computes: batch 6, [2, 3], then dims
     * 3 and 2 of x doubled (Slice from -1 down to 1 exclusive) */
    const sfp_tensor_t *t = graph_const(&m->graph, graph_find_value(&m->graph, "tgt"));
    const int64_t want[5] = {6, 2, 3, 10, 8};
    assert_int_equal(sfp_tensor_numel(t), 5);
    for (int k = 0; k < 5; k++) assert_true(((const int64_t *)t->data)[k] == want[k]);
    sfp_model_free(m);
}

/* Two residual blocks as PyTorch exports them: conv-BN-relu, conv-BN, add,
 * relu; the second block's shortcut is a strided 1x1 conv-BN computed after
 * the main branch (so the main branch's fused step must wait for it), and
 * the first block's middle BN output is also a graph output (so its Relu may
 * not fuse). */
static sfp_model_t *fusion_model(void)
{
    sfp_model_t *m = tu_model(13);
    const int64_t x_dims[4] = {-1, 3, 9, 10};
    tu_input(m, "x", SFP_DT_FLOAT, 4, x_dims);
    tu_conv_b(m, "c0", "x", "h0", 3, 8, 3, 1, 1);
    tu_bn(m, "bn0", "h0", "n0", 8);
    tu_node(m, "Relu", "r0", "n0", "a0");
    tu_conv(m, "c1", "a0", "h1", 8, 8, 3, 2);
    tu_bn(m, "bn1", "h1", "n1", 8);
    tu_node(m, "Relu", "r1", "n1", "a1");
    tu_conv_b(m, "c2", "a1", "h2", 8, 8, 3, 3, 1);
    tu_bn(m, "bn2", "h2", "n2", 8);
    tu_node(m, "Add", "add1", "n2,a0", "s1");
    tu_node(m, "Relu", "r2", "s1", "a2");
    sfp_node_t *n = tu_node(m, "Conv", "c3", "a2,c1.weight", "h3"); /* stride 2, reuses a weight */
    tu_attr_ints(n, "pads", 4, (const int64_t[]){1, 1, 1, 1});
    tu_attr_ints(n, "strides", 2, (const int64_t[]){2, 2});
    tu_conv(m, "c4", "h3", "h4", 8, 8, 3, 4);
    const int64_t w5[4] = {8, 8, 1, 1};
    tu_init_f32(m, "c5.weight", 4, w5, NULL, 5);
    n = tu_node(m, "Conv", "c5", "a2,c5.weight", "h5");
    tu_attr_ints(n, "strides", 2, (const int64_t[]){2, 2});
    tu_bn(m, "bn5", "h5", "n5", 8);
    tu_node(m, "Add", "add2", "h4,n5", "s2");
    tu_node(m, "Relu", "r3", "s2", "y");
    tu_output(m, "y");
    tu_output(m, "n1");
    sfp_error_t err = {0};
    TU_OK(&err, model_validate(m, &err));
    return m;
}

/* max |a - b| over n elements, relative to max |b| (at least 1). */
static double max_scaled_diff(const float *a, const float *b, int64_t n)
{
    double worst = 0.0, scale = 1.0;
    for (int64_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return worst / scale;
}

/* The fused inference plan gives what the node-by-node plan gives (the
 * same kernels; only the BN factors are applied in the conv's epilogue, a
 * rounding or two per element: 1e-5 of the outputs' largest magnitude),
 * fuses what it may (c0+bn0+r0, c1+bn1, r1, c2+bn2+add1+r2, c3, c5+bn5,
 * then c4+add2+r3 where add2 was: 7 steps), and reads the BN parameters at
 * every run, as the validation plans of a trainer that updates them in
 * place need. */
static void test_fused_plan_matches_unfused_and_follows_weight_updates(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = fusion_model();
    sfp_plan_t *fused = NULL, *plain = NULL;
    TU_OK(&err, plan_create(m, 3, 0, 2, &fused, &err));
    TU_OK(&err, plan_create(m, 3, SFP_PLAN_KEEP_ACTIVATIONS, 2, &plain, &err));
    assert_int_equal(plan_n_steps(fused), 7);
    assert_int_equal(plan_n_steps(plain), 16);
    float *x = pattern(3 * 3 * 9 * 10, 21);
    const int64_t out_n[2] = {3 * 8 * 5 * 5, 3 * 8 * 9 * 10};
    for (int round = 0; round < 2; round++) {
        run_plan(fused, x);
        run_plan(plain, x);
        for (int o = 0; o < 2; o++) {
            double d = max_scaled_diff(plan_output(fused, o), plan_output(plain, o), out_n[o]);
            if (!(d <= 1e-5)) fail_msg("round %d output %d: fused and unfused differ by %g", round, o, d);
        }
        /* an SGD step would change these in place */
        float *gamma = m->graph.values[graph_find_value(&m->graph, "bn2.weight")].init->data;
        float *mean = m->graph.values[graph_find_value(&m->graph, "bn5.mean")].init->data;
        for (int c = 0; c < 8; c++) {
            gamma[c] *= -1.5f;
            mean[c] += 0.25f;
        }
    }
    plan_free(fused);
    plan_free(plain);
    free(x);
    sfp_model_free(m);
}

/* SFP_PLAN_CONST_WEIGHTS: the convolutions pack their weights at the first
 * run and keep them; every run gives what a plan packing on each call gives
 * (bit for bit: same panels, same kernel), and a plan made after a weight
 * change sees the new weights. */
static void test_const_weight_plan_packs_once_and_matches(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = fusion_model();
    sfp_plan_t *packed = NULL, *plain = NULL;
    TU_OK(&err, plan_create(m, 3, SFP_PLAN_CONST_WEIGHTS, 2, &packed, &err));
    TU_OK(&err, plan_create(m, 3, 0, 2, &plain, &err));
    float *x = pattern(3 * 3 * 9 * 10, 23);
    const int64_t out_n[2] = {3 * 8 * 5 * 5, 3 * 8 * 9 * 10};
    for (int round = 0; round < 3; round++) {
        run_plan(packed, x);
        run_plan(plain, x);
        for (int o = 0; o < 2; o++)
            assert_memory_equal(plan_output(packed, o), plan_output(plain, o), sizeof(float) * (size_t)out_n[o]);
    }
    plan_free(packed);
    /* the weights change (a fine-tuning step): a new plan packs them anew */
    float *w = m->graph.values[graph_find_value(&m->graph, "c1.weight")].init->data;
    for (int i = 0; i < 8; i++) w[i] = -2.0f * w[i] + 0.125f;
    TU_OK(&err, plan_create(m, 3, SFP_PLAN_CONST_WEIGHTS, 2, &packed, &err));
    run_plan(packed, x);
    run_plan(plain, x);
    for (int o = 0; o < 2; o++)
        assert_memory_equal(plan_output(packed, o), plan_output(plain, o), sizeof(float) * (size_t)out_n[o]);
    plan_free(packed);
    plan_free(plain);
    free(x);
    sfp_model_free(m);
}

/* A fused BN whose parameters are not initializers: its bias is an Identity
 * of another BN's bias (how PyTorch's exporter dedups equal tensors of a
 * trained ResNet) and its scale a Constant node. Shape inference keeps such
 * values as folded tensors, which the next inference (another plan's batch)
 * frees and rebuilds; a plan must not keep pointers into them. The source
 * bias is changed in place between the two inferences, so a plan reading
 * the rebuilt (or freed) tensor differs from the node-by-node plan made at
 * the same time, which holds its own copy. Tolerance as in the test above. */
static void test_fused_bn_reading_folded_parameters_survives_reinference(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    const int64_t x_dims[4] = {-1, 3, 6, 6}, c8 = 8;
    tu_input(m, "x", SFP_DT_FLOAT, 4, x_dims);
    tu_conv(m, "c0", "x", "h0", 3, 8, 1, 1);
    tu_bn(m, "bn0", "h0", "n0", 8);
    tu_conv(m, "c1", "x", "h1", 3, 8, 1, 2);
    tu_node(m, "Identity", "alias", "bn0.bias", "bn1.bias");
    float scale[8];
    for (int c = 0; c < 8; c++) scale[c] = 0.5f + 0.25f * (float)c;
    sfp_tensor_t *t = NULL;
    TU_OK(&err, sfp_tensor_create("k", SFP_DT_FLOAT, 1, &c8, &t, &err));
    memcpy(t->data, scale, sizeof scale);
    sfp_node_t *k = tu_node(m, "Constant", "k", "", "bn1.weight");
    TU_OK(&err, node_set_attr_tensor(k, "value", t, &err));
    tu_init_f32(m, "bn1.mean", 1, &c8, NULL, 31);
    tu_init_f32(m, "bn1.var", 1, &c8, (const float[]){1, 2, 3, 4, 1, 2, 3, 4}, 0);
    tu_node(m, "BatchNormalization", "bn1", "h1,bn1.weight,bn1.bias,bn1.mean,bn1.var", "n1");
    tu_node(m, "Add", "add", "n0,n1", "y");
    tu_output(m, "y");
    TU_OK(&err, model_validate(m, &err));
    sfp_plan_t *fused = NULL, *plain = NULL;
    TU_OK(&err, plan_create(m, 3, 0, 2, &fused, &err));
    TU_OK(&err, plan_create(m, 3, SFP_PLAN_KEEP_ACTIVATIONS, 2, &plain, &err));
    float *bias = m->graph.values[graph_find_value(&m->graph, "bn0.bias")].init->data;
    float *x = pattern(3 * 3 * 6 * 6, 5);
    run_plan(plain, x);
    float expected[3 * 8 * 6 * 6];
    memcpy(expected, plan_output(plain, 0), sizeof expected);
    for (int c = 0; c < 8; c++) bias[c] += 100.0f; /* the plans hold their own copy of bn1.bias */
    TU_OK(&err, model_infer_shapes(m, 2, &err));
    for (int c = 0; c < 8; c++) bias[c] -= 100.0f; /* bn0 reads it in place */
    run_plan(fused, x);
    double d = max_scaled_diff(plan_output(fused, 0), expected, 3 * 8 * 6 * 6);
    if (!(d <= 1e-5)) fail_msg("fused plan after re-inference differs from the plain plan by %g", d);
    plan_free(fused);
    plan_free(plain);
    free(x);
    sfp_model_free(m);
}

/* Inference plans with threads split the batch: each thread runs its slice
 * through the whole graph. The outputs are the single plan's (up to the
 * order in which sgemm sums at another batch: 1e-6 of the largest), at
 * batches that do and do not divide by the thread count, with weights packed
 * once or per run; a graph whose Softmax normalises over the batch (axis 0)
 * or that reorders it (Transpose) keeps one plan, and so does a training
 * plan. */
static sfp_model_t *softmax_model(int64_t axis, bool transpose)
{
    sfp_model_t *m = tu_model(11);
    const int64_t x_dims[2] = {-1, 6};
    tu_input(m, "x", SFP_DT_FLOAT, 2, x_dims);
    sfp_node_t *n = tu_node(m, "Softmax", "sm", "x", transpose ? "s" : "y");
    tu_attr_int(n, "axis", axis);
    if (transpose) {
        n = tu_node(m, "Transpose", "t", "s", "y");
        tu_attr_ints(n, "perm", 2, (const int64_t[]){1, 0});
    }
    tu_output(m, "y");
    sfp_error_t err = {0};
    TU_OK(&err, model_validate(m, &err));
    return m;
}

static void test_batch_split_plan_matches_single_plan(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = chain_model();
    static const int64_t batches[] = {2, 5, 7};
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
        const int64_t batch = batches[b];
        float *x = pattern(batch * 4 * 6 * 6, 31 + (uint32_t)b);
        sfp_plan_t *single = NULL;
        TU_OK(&err, plan_create(m, batch, 0, 1, &single, &err));
        assert_int_equal(plan_slices(single), 1);
        run_plan(single, x);
        for (int threads = 2; threads <= 3; threads++)
            for (int packed = 0; packed < 2; packed++) {
                sfp_plan_t *split = NULL;
                TU_OK(&err, plan_create(m, batch, packed ? SFP_PLAN_CONST_WEIGHTS : 0, threads, &split, &err));
                assert_int_equal(plan_slices(split), batch >= threads ? threads : 1);
                assert_int_equal(plan_output_shape(split, 0)->dims[0], batch);
                for (int round = 0; round < 2; round++) { /* the Gemm's sgemm may sum in another order */
                    run_plan(split, x);
                    assert_true(max_scaled_diff(plan_output(split, 0), plan_output(single, 0), batch * 5) <= 1e-6);
                }
                plan_free(split);
            }
        sfp_plan_t *train = NULL;
        TU_OK(&err, plan_create(m, batch, SFP_PLAN_TRAIN, 2, &train, &err));
        assert_int_equal(plan_slices(train), 1);
        plan_free(train);
        plan_free(single);
        free(x);
    }
    sfp_model_free(m);
    /* Softmax over the batch, over the features, and a Transpose after it */
    static const struct { int64_t axis; bool transpose; int slices; } cases[] = {{0, false, 1}, {1, false, 2}, {1, true, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        m = softmax_model(cases[c].axis, cases[c].transpose);
        float *x = pattern(4 * 6, 41);
        sfp_plan_t *single = NULL, *two = NULL;
        TU_OK(&err, plan_create(m, 4, 0, 1, &single, &err));
        TU_OK(&err, plan_create(m, 4, 0, 2, &two, &err));
        assert_int_equal(plan_slices(two), cases[c].slices);
        run_plan(single, x);
        run_plan(two, x);
        assert_memory_equal(plan_output(two, 0), plan_output(single, 0), sizeof(float) * 24);
        plan_free(single);
        plan_free(two);
        free(x);
        sfp_model_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buffer_reuse_gives_the_same_outputs_in_less_memory),
        cmocka_unit_test(test_plans_at_two_batches_coexist),
        cmocka_unit_test(test_missing_input_data_is_refused),
        cmocka_unit_test(test_unsupported_types_are_refused_when_planning),
        cmocka_unit_test(test_integer_division_by_zero_is_an_error),
        cmocka_unit_test(test_outputs_may_be_inputs_or_constants),
        cmocka_unit_test(test_forward_of_folded_ops_matches_their_folding),
        cmocka_unit_test(test_fused_plan_matches_unfused_and_follows_weight_updates),
        cmocka_unit_test(test_fused_bn_reading_folded_parameters_survives_reinference),
        cmocka_unit_test(test_const_weight_plan_packs_once_and_matches),
        cmocka_unit_test(test_batch_split_plan_matches_single_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
