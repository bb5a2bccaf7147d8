/* Channel dependency groups and removal on small hand-built graphs: residual
 * chains, the zero-padding shortcuts (Concat with x*0, channel Pad), grouped
 * and depthwise convs, Gemm/MatMul/Reshape heads, ops that cannot be traced. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include "testutil.h"

#include <math.h>

#include "prune/prune.h"
#include "train/plan.h"
#include "surgery/surgery.h"

/* input -> conv0(8) -> bn -> relu = s0; block: conv1 -> relu -> conv2 -> add(s0) -> relu = s1;
 * GlobalAveragePool -> Flatten -> Gemm(10). */
static sfp_model_t *residual_model(void)
{
    sfp_model_t *m = tu_model(13);
    int64_t in[4] = {-1, 3, 8, 8};
    tu_input(m, "x", SFP_DT_FLOAT, 4, in);
    tu_conv(m, "conv0", "x", "c0", 3, 8, 3, 1);
    tu_bn(m, "bn0", "c0", "b0", 8);
    tu_node(m, "Relu", "relu0", "b0", "s0");
    tu_conv(m, "conv1", "s0", "c1", 8, 6, 3, 2);
    tu_node(m, "Relu", "relu1", "c1", "r1");
    tu_conv(m, "conv2", "r1", "c2", 6, 8, 3, 3);
    tu_node(m, "Add", "add", "c2,s0", "a");
    tu_node(m, "Relu", "relu2", "a", "s1");
    tu_node(m, "GlobalAveragePool", "gap", "s1", "g");
    tu_node(m, "Flatten", "flat", "g", "f");
    int64_t wd[2] = {10, 8}, bd = 10;
    tu_init_f32(m, "fc.weight", 2, wd, NULL, 4);
    tu_init_f32(m, "fc.bias", 1, &bd, NULL, 5);
    sfp_node_t *fc = tu_node(m, "Gemm", "fc", "f,fc.weight,fc.bias", "y");
    tu_attr_int(fc, "transB", 1);
    tu_output(m, "y");
    return m;
}

static int find_group(const sfp_groups_t *gs, const sfp_model_t *m, const char *source)
{
    for (int i = 0; i < gs->n; i++)
        for (int k = 0; k < gs->g[i].n_sources; k++)
            if (!strcmp(m->graph.nodes[gs->g[i].sources[k]].name, source)) return i;
    return -1;
}

/* The group made by `source` but not by `other`. */
static int find_group_without(const sfp_groups_t *gs, const sfp_model_t *m, const char *source, const char *other)
{
    for (int i = 0; i < gs->n; i++) {
        bool has = false, has_other = false;
        for (int k = 0; k < gs->g[i].n_sources; k++) {
            const char *name = m->graph.nodes[gs->g[i].sources[k]].name;
            has |= !strcmp(name, source);
            has_other |= !strcmp(name, other);
        }
        if (has && !has_other) return i;
    }
    return -1;
}

static void load_checked(sfp_model_t *m)
{
    sfp_error_t err = {0};
    TU_OK(&err, model_validate(m, &err));
    TU_OK(&err, model_infer_shapes(m, 1, &err));
}

static void test_residual_add_couples_stream_and_gemm_columns(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = residual_model();
    load_checked(m);
    sfp_groups_t *gs = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    int stream = find_group(gs, m, "conv0"), inner = find_group(gs, m, "conv1");
    assert_true(stream >= 0 && inner >= 0 && stream != inner);
    assert_int_equal(find_group(gs, m, "conv2"), stream); /* the Add couples conv2 with conv0 */
    assert_int_equal(gs->g[stream].n_channels, 8);
    assert_int_equal(gs->g[stream].n_sources, 2);
    assert_true(gs->g[stream].prunable);
    assert_int_equal(gs->g[inner].n_channels, 6);
    int fc = find_group(gs, m, "fc");
    assert_false(gs->g[fc].prunable); /* model output */
    /* the Flatten output (features) belongs to the stream */
    int f = graph_find_value(&m->graph, "f"), seen = 0;
    for (int k = 0; k < gs->g[stream].n_values; k++) seen |= gs->g[stream].values[k] == f;
    assert_true(seen);
    groups_free(gs);
    sfp_model_free(m);
}

static void test_removal_shrinks_every_member(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = residual_model();
    load_checked(m);
    sfp_groups_t *gs = NULL;
    sfp_removal_t *r = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    TU_OK(&err, removal_create(gs, &r, &err));
    TU_OK(&err, prune_select_l2(m, gs, 0.5, NULL, r, &err)); /* 8 -> 4 stream, 6 -> 3 inner */
    TU_OK(&err, surgery_apply(m, gs, r, &err));
    TU_EXPECT_SHAPE(m, "s0", 1, 4, 8, 8);
    TU_EXPECT_SHAPE(m, "r1", 1, 3, 8, 8);
    TU_EXPECT_SHAPE(m, "f", 1, 4);
    const sfp_tensor_t *w1 = m->graph.values[graph_find_value(&m->graph, "conv1.weight")].init;
    assert_int_equal(w1->dims[0], 3);
    assert_int_equal(w1->dims[1], 4);
    const sfp_tensor_t *fc = m->graph.values[graph_find_value(&m->graph, "fc.weight")].init;
    assert_int_equal(fc->dims[0], 10);
    assert_int_equal(fc->dims[1], 4);
    const sfp_tensor_t *var = m->graph.values[graph_find_value(&m->graph, "bn0.var")].init;
    assert_int_equal(var->dims[0], 4);
    removal_free(r);
    groups_free(gs);
    sfp_model_free(m);
}

static void test_l2_selection_removes_smallest_summed_norms(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = residual_model();
    load_checked(m);
    /* make stream channel 5 tiny in both producing convs: it must go first */
    float *w0 = m->graph.values[graph_find_value(&m->graph, "conv0.weight")].init->data;
    float *w2 = m->graph.values[graph_find_value(&m->graph, "conv2.weight")].init->data;
    for (int i = 0; i < 3 * 9; i++) w0[5 * 27 + i] *= 1e-3f;
    for (int i = 0; i < 6 * 9; i++) w2[5 * 54 + i] *= 1e-3f;
    sfp_groups_t *gs = NULL;
    sfp_removal_t *r = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    int stream = find_group(gs, m, "conv0");
    double scores[8];
    TU_OK(&err, prune_score_l2(m, gs, stream, scores, &err));
    for (int j = 0; j < 8; j++)
        if (j != 5) assert_true(scores[5] < scores[j]);
    TU_OK(&err, removal_create(gs, &r, &err));
    TU_OK(&err, prune_select_l2(m, gs, 0.125, NULL, r, &err)); /* floor(0.125 * 8) = 1 */
    int s0 = graph_find_value(&m->graph, "s0");
    for (int j = 0; j < 8; j++) assert_int_equal(r->masks[s0][j], j == 5);
    removal_free(r);
    groups_free(gs);
    sfp_model_free(m);
}

/* conv0 (4ch) -> AveragePool(1, s2) -> Concat(d, d*0) (8ch) + conv1(8, stride 2);
 * with a head, Relu -> GlobalAveragePool -> Flatten -> Gemm(2) follow the Add. */
static sfp_model_t *zero_concat_model(bool head)
{
    sfp_model_t *m = tu_model(13);
    int64_t in[4] = {-1, 3, 8, 8};
    tu_input(m, "x", SFP_DT_FLOAT, 4, in);
    tu_conv(m, "conv0", "x", "s0", 3, 4, 3, 1);
    sfp_node_t *ap = tu_node(m, "AveragePool", "avg", "s0", "d");
    int64_t k1[2] = {1, 1}, s2[2] = {2, 2};
    tu_attr_ints(ap, "kernel_shape", 2, k1);
    tu_attr_ints(ap, "strides", 2, s2);
    float zero = 0.0f;
    tu_init(m, "zero", SFP_DT_FLOAT, 0, NULL, &zero);
    tu_node(m, "Mul", "mul0", "d,zero", "z");
    sfp_node_t *cat = tu_node(m, "Concat", "cat", "d,z", "sc");
    tu_attr_int(cat, "axis", 1);
    tu_conv(m, "conv1", "s0", "c1", 4, 8, 3, 2);
    tu_attr_ints(&m->graph.nodes[m->graph.n_nodes - 1], "strides", 2, s2);
    tu_node(m, "Add", "add", "c1,sc", head ? "a" : "y");
    if (head) {
        tu_node(m, "Relu", "relu", "a", "s1");
        tu_node(m, "GlobalAveragePool", "gap", "s1", "g");
        tu_node(m, "Flatten", "flat", "g", "f");
        int64_t wd[2] = {2, 8};
        tu_init_f32(m, "fc.weight", 2, wd, NULL, 4);
        sfp_node_t *fc = tu_node(m, "Gemm", "fc", "f,fc.weight", "y");
        tu_attr_int(fc, "transB", 1);
    }
    tu_output(m, "y");
    load_checked(m);
    return m;
}

static void test_concat_with_zero_half_splits_the_stream(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = zero_concat_model(false);
    sfp_groups_t *gs = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    int lower = find_group(gs, m, "conv0");
    assert_true(lower >= 0);
    assert_int_equal(gs->g[lower].n_channels, 4);
    assert_int_equal(gs->g[lower].n_sources, 2); /* conv0 and conv1's lower half */
    int c1g = find_group_without(gs, m, "conv1", "conv0");
    assert_true(c1g >= 0 && c1g != lower);
    assert_int_equal(gs->g[c1g].n_channels, 4); /* upper half: conv1 + the zero branch */
    assert_true(gs->value_zero[graph_find_value(&m->graph, "z")]);
    groups_free(gs);
    sfp_model_free(m);
}

static void test_zero_branch_gets_an_adapter_when_halves_prune_differently(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = zero_concat_model(true);
    sfp_groups_t *gs = NULL;
    sfp_removal_t *r = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    TU_OK(&err, removal_create(gs, &r, &err));
    int lower = find_group(gs, m, "conv0");
    removal_add_channel(r, gs, lower, 0); /* only the lower half loses channels */
    removal_add_channel(r, gs, lower, 1);
    TU_OK(&err, surgery_apply(m, gs, r, &err));
    TU_EXPECT_SHAPE(m, "sc", 1, 6, 4, 4);
    TU_EXPECT_SHAPE(m, "f", 1, 6);
    int pads = 0;
    for (int i = 0; i < m->graph.n_nodes; i++) pads += !strcmp(m->graph.nodes[i].op_type, "Pad");
    assert_int_equal(pads, 1); /* the zero branch (2 channels now) is padded back to 4 */
    removal_free(r);
    groups_free(gs);
    sfp_model_free(m);
}

static void test_channel_pad_maps_ranges_and_shrinks_pads(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    int64_t in[4] = {-1, 3, 8, 8};
    tu_input(m, "x", SFP_DT_FLOAT, 4, in);
    tu_conv(m, "conv0", "x", "s0", 3, 4, 3, 1);
    int64_t pads[8] = {0, 2, 0, 0, 0, 2, 0, 0};
    tu_init_i64(m, "pads", 8, pads);
    tu_node(m, "Pad", "pad", "s0,pads", "p");
    tu_conv(m, "conv1", "s0", "c1", 4, 8, 3, 2);
    tu_node(m, "Add", "add", "c1,p", "a");
    tu_node(m, "Relu", "relu", "a", "s1");
    tu_node(m, "GlobalAveragePool", "gap", "s1", "g");
    tu_node(m, "Flatten", "flat", "g", "f");
    int64_t wd[2] = {2, 8};
    tu_init_f32(m, "fc.weight", 2, wd, NULL, 4);
    sfp_node_t *fc = tu_node(m, "Gemm", "fc", "f,fc.weight", "y");
    tu_attr_int(fc, "transB", 1);
    tu_output(m, "y");
    load_checked(m);
    sfp_groups_t *gs = NULL;
    sfp_removal_t *r = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    int middle = find_group(gs, m, "conv0");
    assert_int_equal(gs->g[middle].n_channels, 4); /* conv0's 4 land on channels 2..5 of the stream */
    int outer = find_group_without(gs, m, "conv1", "conv0");
    assert_true(outer >= 0); /* channels 0,1,6,7: conv1 + pad zeros */
    assert_int_equal(gs->g[outer].n_channels, 4);
    TU_OK(&err, removal_create(gs, &r, &err));
    removal_add_channel(r, gs, outer, 0);  /* stream channel 0: a begin pad */
    removal_add_channel(r, gs, middle, 3); /* stream channel 5 */
    TU_OK(&err, surgery_apply(m, gs, r, &err));
    TU_EXPECT_SHAPE(m, "p", 1, 6, 8, 8);
    const sfp_node_t *pad = NULL;
    for (int i = 0; i < m->graph.n_nodes; i++)
        if (!strcmp(m->graph.nodes[i].name, "pad")) pad = &m->graph.nodes[i];
    const sfp_tensor_t *pt = graph_const(&m->graph, pad->inputs[1]);
    assert_int_equal(sfp_tensor_get_int(pt, 1), 1);
    assert_int_equal(sfp_tensor_get_int(pt, 5), 2);
    removal_free(r);
    groups_free(gs);
    sfp_model_free(m);
}

/* Outputs (n floats) of m on a fixed batch of 2 images of 3x8x8. */
static float *run_on_fixed_input(sfp_model_t *m, int64_t n)
{
    sfp_error_t err = {0};
    sfp_plan_t *p = NULL;
    TU_OK(&err, plan_create(m, 2, 0, 1, &p, &err));
    float x[2 * 3 * 8 * 8], *y = malloc(sizeof(float) * (size_t)n);
    assert_non_null(y);
    for (int i = 0; i < 2 * 3 * 8 * 8; i++) x[i] = (float)cos(0.37 * (double)i);
    const void *in[1] = {x};
    TU_OK(&err, plan_run(p, in, &err));
    memcpy(y, plan_output(p, 0), sizeof(float) * (size_t)n);
    plan_free(p);
    return y;
}

/* A depthwise conv couples its output with its input; a group-2 conv splits
 * its input and output channels into two parts that lose as many each, so
 * it stays a group-2 conv, and the pruned model computes what the masked
 * one does. */
static void test_grouped_conv_keeps_its_groups_and_depthwise_couples(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    int64_t in[4] = {-1, 3, 8, 8};
    tu_input(m, "x", SFP_DT_FLOAT, 4, in);
    tu_conv(m, "conv0", "x", "s0", 3, 4, 3, 1);
    int64_t dw[4] = {4, 1, 3, 3}, gw[4] = {6, 2, 3, 3};
    tu_init_f32(m, "dw.weight", 4, dw, NULL, 2);
    sfp_node_t *d = tu_node(m, "Conv", "dw", "s0,dw.weight", "s1");
    tu_attr_int(d, "group", 4);
    tu_attr_ints(d, "pads", 4, (const int64_t[]){1, 1, 1, 1});
    tu_init_f32(m, "gc.weight", 4, gw, NULL, 3);
    sfp_node_t *gc = tu_node(m, "Conv", "gc", "s1,gc.weight", "s2");
    tu_attr_int(gc, "group", 2);
    tu_node(m, "Relu", "relu", "s2", "r2");
    tu_conv(m, "conv3", "r2", "s3", 6, 5, 1, 4);
    tu_node(m, "GlobalAveragePool", "gap", "s3", "y");
    tu_output(m, "y");
    load_checked(m);
    /* as compress does: groups of a loaded copy, whose copies keep its value ids */
    sfp_model_t *built = m;
    TU_OK(&err, sfp_model_clone(built, &m, &err));
    sfp_model_free(built);
    sfp_groups_t *gs = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    int g0 = find_group(gs, m, "conv0"), g2 = find_group(gs, m, "gc");
    assert_int_equal(find_group(gs, m, "dw"), g0); /* depthwise: out c reads in c */
    assert_true(gs->g[g0].prunable);
    assert_int_equal(gs->g[g0].n_segments, 2);     /* ...and feeds a group-2 conv */
    assert_true(gs->g[g2].prunable);
    assert_int_equal(gs->g[g2].n_segments, 2);
    assert_int_equal(prune_group_count(&gs->g[g0], 0.5), 2);
    assert_int_equal(prune_group_count(&gs->g[g2], 0.34), 2); /* one of each part of 3 */
    sfp_removal_t *r = NULL;
    TU_OK(&err, removal_create(gs, &r, &err));
    TU_OK(&err, prune_select_l2(m, gs, 0.5, NULL, r, &err));
    for (int part = 0; part < 2; part++) { /* as many from each part */
        int n_part[2] = {0, 0};
        const int gis[2] = {g0, g2};
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < gs->g[gis[k]].n_channels; j++)
                n_part[k] += gs->g[gis[k]].segment[j] == part && removal_has_channel(r, gs, gis[k], j);
        assert_int_equal(n_part[0], 1);
        assert_int_equal(n_part[1], 1);
    }
    sfp_model_t *masked = NULL;
    TU_OK(&err, sfp_model_clone(m, &masked, &err));
    TU_OK(&err, surgery_mask(masked, gs, r, &err));
    TU_OK(&err, surgery_apply(m, gs, r, &err));
    const sfp_tensor_t *w = m->graph.values[graph_find_value(&m->graph, "gc.weight")].init;
    assert_int_equal(w->dims[0], 4);
    assert_int_equal(w->dims[1], 1);
    assert_int_equal(node_attr_int(&m->graph.nodes[2], "group", 0), 2);
    assert_int_equal(node_attr_int(&m->graph.nodes[1], "group", 0), 2); /* depthwise over 2 channels */
    float *a = run_on_fixed_input(masked, 2 * 5), *b = run_on_fixed_input(m, 2 * 5);
    for (int i = 0; i < 2 * 5; i++) assert_true(fabsf(a[i] - b[i]) <= 1e-5f * (1.0f + fabsf(a[i])));
    free(a);
    free(b);
    removal_free(r);
    groups_free(gs);
    sfp_model_free(masked);
    sfp_model_free(m);
}

static void test_reshape_and_matmul_head_map_features_to_channels(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    int64_t in[4] = {-1, 3, 4, 4};
    tu_input(m, "x", SFP_DT_FLOAT, 4, in);
    tu_conv(m, "conv0", "x", "s0", 3, 5, 3, 1);
    int64_t shape[2] = {0, -1};
    tu_init_i64(m, "shape", 2, shape);
    tu_node(m, "Reshape", "view", "s0,shape", "f"); /* [N, 5*16] */
    int64_t wd[2] = {80, 3}, bd = 3;
    tu_init_f32(m, "W", 2, wd, NULL, 4);
    tu_init_f32(m, "b", 1, &bd, NULL, 5);
    tu_node(m, "MatMul", "mm", "f,W", "h");
    tu_node(m, "Add", "bias", "h,b", "y");
    tu_output(m, "y");
    load_checked(m);
    sfp_groups_t *gs = NULL;
    sfp_removal_t *r = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    int g0 = find_group(gs, m, "conv0");
    assert_true(gs->g[g0].prunable);
    assert_int_equal(gs->g[g0].n_channels, 5);
    /* each channel owns its 16 features of f */
    assert_int_equal(gs->g[g0].slot_start[1] - gs->g[g0].slot_start[0], 1 + 16);
    TU_OK(&err, removal_create(gs, &r, &err));
    removal_add_channel(r, gs, g0, 2);
    TU_OK(&err, surgery_apply(m, gs, r, &err));
    TU_EXPECT_SHAPE(m, "f", 1, 64);
    assert_int_equal(m->graph.values[graph_find_value(&m->graph, "W")].init->dims[0], 64);
    removal_free(r);
    groups_free(gs);
    sfp_model_free(m);
}

/* The group holding value `name`, and its record. */
static const sfp_chan_group_t *group_of(const sfp_groups_t *gs, const sfp_model_t *m, const char *name)
{
    int v = graph_find_value(&m->graph, name);
    for (int gi = 0; gi < gs->n; gi++)
        for (int k = 0; k < gs->g[gi].n_values; k++)
            if (gs->g[gi].values[k] == v) return &gs->g[gi];
    fail_msg("no group holds '%s'", name);
    return NULL;
}

static void test_channels_through_an_untraceable_op_stay_whole_and_the_rest_is_pruned(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    int64_t in[4] = {-1, 3, 4, 4};
    tu_input(m, "x", SFP_DT_FLOAT, 4, in);
    tu_conv(m, "conv0", "x", "c0", 3, 5, 3, 1);
    tu_node(m, "Relu", "relu0", "c0", "r0");
    tu_conv(m, "conv1", "r0", "s0", 5, 6, 3, 3);
    sfp_node_t *t = tu_node(m, "Transpose", "swap", "s0", "t");
    int64_t perm[4] = {0, 2, 1, 3};
    tu_attr_ints(t, "perm", 4, perm);
    tu_node(m, "Relu", "relu", "t", "y");
    tu_output(m, "y");
    load_checked(m);
    sfp_groups_t *gs = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    const sfp_chan_group_t *blocked = group_of(gs, m, "s0"), *free_group = group_of(gs, m, "r0");
    assert_false(blocked->prunable);
    assert_non_null(strstr(blocked->reason, "swap"));
    assert_non_null(strstr(blocked->reason, "Transpose"));
    assert_true(free_group->prunable);
    assert_int_equal(free_group->n_channels, 5);
    groups_free(gs);
    sfp_model_free(m);
}

/* A removed channel is zero in the masked model; through Sigmoid it becomes
 * 0.5 and the next layer would see it, while the pruned model has nothing:
 * such a group is left whole, naming the Sigmoid. Gating (x * sigmoid(s), as
 * in squeeze-excitation) keeps the zero and stays prunable. */
static void test_channels_through_f0_nonzero_into_a_layer_stay_whole(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    int64_t in[4] = {-1, 3, 4, 4};
    tu_input(m, "x", SFP_DT_FLOAT, 4, in);
    tu_conv(m, "conv0", "x", "c0", 3, 5, 3, 1);
    tu_node(m, "Sigmoid", "sig0", "c0", "s0");
    tu_conv(m, "conv1", "s0", "c1", 5, 6, 3, 3);
    tu_node(m, "Sigmoid", "gate", "c1", "g1");
    tu_node(m, "Mul", "se", "c1,g1", "m1");
    tu_conv(m, "conv2", "m1", "c2", 6, 4, 3, 5);
    tu_node(m, "Relu", "relu", "c2", "y");
    tu_output(m, "y");
    load_checked(m);
    sfp_groups_t *gs = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    const sfp_chan_group_t *through = group_of(gs, m, "c0"), *gated = group_of(gs, m, "c1");
    assert_false(through->prunable);
    assert_non_null(strstr(through->reason, "sig0"));
    assert_true(gated->prunable);
    groups_free(gs);
    sfp_model_free(m);
}

/* One conv weight read by two Conv nodes (an nn.Conv2d called twice): the
 * two outputs' channels (rows of the weight) and the two inputs' channels
 * (its columns) are each one group, so the single tensor is pruned one way;
 * a BN bias two BNs share joins their channels too. */
static void test_uses_of_one_weight_are_one_group(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    int64_t in[4] = {-1, 3, 8, 8}, c4 = 4;
    tu_input(m, "x", SFP_DT_FLOAT, 4, in);
    tu_conv(m, "stem", "x", "s0", 3, 4, 1, 1);
    tu_conv(m, "a", "s0", "s1", 4, 4, 1, 2);       /* weight a.weight */
    tu_node(m, "Relu", "r1", "s1", "s2");
    tu_node(m, "Conv", "a_again", "s2,a.weight", "s3");
    tu_conv(m, "b", "s3", "s4", 4, 4, 1, 3);
    tu_bn(m, "bn_b", "s4", "s5", 4);
    tu_conv(m, "c", "s3", "s6", 4, 4, 1, 4);
    tu_init_f32(m, "bn_c.weight", 1, &c4, NULL, 11);
    tu_init_f32(m, "bn_c.mean", 1, &c4, NULL, 12);
    tu_init_f32(m, "bn_c.var", 1, &c4, (const float[]){1, 2, 3, 4}, 0);
    tu_node(m, "BatchNormalization", "bn_c", "s6,bn_c.weight,bn_b.bias,bn_c.mean,bn_c.var", "s7");
    tu_node(m, "Concat", "cat", "s5,s7", "s8");
    sfp_node_t *cat = &m->graph.nodes[m->graph.n_nodes - 1];
    tu_attr_int(cat, "axis", 1);
    tu_node(m, "GlobalAveragePool", "gap", "s8", "y");
    tu_output(m, "y");
    load_checked(m);
    sfp_groups_t *gs = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    int ga = find_group(gs, m, "a");
    assert_true(ga >= 0);
    assert_int_equal(find_group(gs, m, "a_again"), ga); /* rows: both outputs */
    assert_int_equal(find_group(gs, m, "stem"), ga);    /* columns: both inputs (s0 and s2, which is a's output) */
    assert_true(gs->g[ga].prunable);
    assert_int_equal(find_group(gs, m, "c"), find_group(gs, m, "b")); /* the shared BN bias */
    assert_true(find_group(gs, m, "b") != ga);
    groups_free(gs);
    sfp_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_residual_add_couples_stream_and_gemm_columns),
        cmocka_unit_test(test_removal_shrinks_every_member),
        cmocka_unit_test(test_l2_selection_removes_smallest_summed_norms),
        cmocka_unit_test(test_concat_with_zero_half_splits_the_stream),
        cmocka_unit_test(test_zero_branch_gets_an_adapter_when_halves_prune_differently),
        cmocka_unit_test(test_channel_pad_maps_ranges_and_shrinks_pads),
        cmocka_unit_test(test_grouped_conv_keeps_its_groups_and_depthwise_couples),
        cmocka_unit_test(test_uses_of_one_weight_are_one_group),
        cmocka_unit_test(test_reshape_and_matmul_head_map_features_to_channels),
        cmocka_unit_test(test_channels_through_an_untraceable_op_stay_whole_and_the_rest_is_pruned),
        cmocka_unit_test(test_channels_through_f0_nonzero_into_a_layer_stay_whole),
    };
    return cmocka_run_group_tests(tests, NULL, tu_cleanup_tmpdirs);
}
