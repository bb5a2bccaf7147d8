/* BatchNormalization folded into convolutions and re-inserted (surgery's
 * bn_fold.c): folding keeps the function, every bare convolution is found,
 * a re-inserted BN is the identity in inference until trained, and the
 * round trip gives back the fused graph. Checked through real inference
 * plans on a CIFAR ResNet-8 with both shortcut styles, BN parameters set
 * away from their defaults so that folding has something to fold, and on a
 * small graph with a conv classifier (left alone) and two convs sharing one
 * weight (folding gives each its own). */
#define _XOPEN_SOURCE 700
#include <math.h>

#include "testutil.h"

#include "arch/arch.h"
#include "surgery/surgery.h"
#include "train/plan.h"

enum { BATCH = 2 };

static sfp_model_t *resnet8(char shortcut)
{
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    sfp_arch_opts_t o = {"resnet8", 3, 12, 12, 10, shortcut, 7};
    TU_OK(&err, arch_build(&o, &m, &err));
    TU_OK(&err, model_validate(m, &err));
    TU_OK(&err, model_infer_shapes(m, 1, &err));
    /* BN scale, bias, mean, var away from 1, 0, 0, 1 */
    sfp_graph_t *g = &m->graph;
    for (int i = 0; i < g->n_nodes; i++) {
        if (strcmp(g->nodes[i].op_type, "BatchNormalization")) continue;
        for (int k = 1; k < 5; k++) {
            sfp_tensor_t *t = g->values[g->nodes[i].inputs[k]].init;
            float *d = t->data;
            for (int64_t c = 0; c < sfp_tensor_numel(t); c++) {
                const double wave = sin(0.7 * (double)(c + 3 * k + i));
                d[c] = (float)(k == 1 ? 1.0 + 0.5 * wave : k == 4 ? 1.5 + wave : 0.3 * wave);
            }
        }
    }
    return m;
}

/* Logits of m on a fixed input batch (malloc'd, BATCH x 10). */
static float *logits(sfp_model_t *m)
{
    sfp_error_t err = {0};
    sfp_plan_t *p = NULL;
    TU_OK(&err, plan_create(m, BATCH, 0, 1, &p, &err));
    const int64_t n = BATCH * 3 * 12 * 12;
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * BATCH * 10);
    assert_non_null(x);
    assert_non_null(y);
    for (int64_t i = 0; i < n; i++) x[i] = (float)cos(0.37 * (double)i);
    const void *inputs[1] = {x};
    TU_OK(&err, plan_run(p, inputs, &err));
    memcpy(y, plan_output(p, 0), sizeof(float) * BATCH * 10);
    plan_free(p);
    free(x);
    return y;
}

static void expect_close(const float *a, const float *b, double tol)
{
    double scale = 0.0, diff = 0.0;
    for (int i = 0; i < BATCH * 10; i++) {
        scale = fmax(scale, fabs((double)a[i]));
        diff = fmax(diff, fabs((double)a[i] - (double)b[i]));
    }
    if (diff > tol * fmax(scale, 1.0)) fail_msg("logits differ by %g (scale %g)", diff, scale);
}

static int count_op(const sfp_model_t *m, const char *op)
{
    int n = 0;
    for (int i = 0; i < m->graph.n_nodes; i++) n += !strcmp(m->graph.nodes[i].op_type, op);
    return n;
}

/* Marks every BN as re-inserted, so bn_fold_reinserted folds them all. */
static void mark_all_bn(sfp_model_t *m)
{
    for (int i = 0; i < m->graph.n_nodes; i++) {
        sfp_node_t *n = &m->graph.nodes[i];
        if (strcmp(n->op_type, "BatchNormalization")) continue;
        char *name = malloc(strlen(BN_MARK) + strlen(n->name) + 1);
        assert_non_null(name);
        strcpy(name, BN_MARK);
        strcat(name, n->name);
        free(n->name);
        n->name = name;
    }
}

static void test_fold_keeps_function_and_leaves_bare_convs(void **state)
{
    (void)state;
    const char shortcuts[2] = {'A', 'B'};
    for (int s = 0; s < 2; s++) {
        sfp_error_t err = {0};
        sfp_model_t *m = resnet8(shortcuts[s]);
        const int convs = count_op(m, "Conv"), bns = count_op(m, "BatchNormalization");
        assert_int_equal(bns, convs);
        int *bare = NULL, n_bare = -1, folded = 0;
        TU_OK(&err, bn_bare_convs(m, &bare, &n_bare, &err));
        assert_int_equal(n_bare, 0);
        float *y0 = logits(m);
        /* nothing marked: nothing folded */
        TU_OK(&err, bn_fold_reinserted(m, &folded, &err));
        assert_int_equal(folded, 0);
        mark_all_bn(m);
        TU_OK(&err, bn_fold_reinserted(m, &folded, &err));
        assert_int_equal(folded, bns);
        assert_int_equal(count_op(m, "BatchNormalization"), 0);
        assert_int_equal(count_op(m, "Conv"), convs);
        TU_OK(&err, bn_bare_convs(m, &bare, &n_bare, &err));
        assert_int_equal(n_bare, convs);
        free(bare);
        float *y1 = logits(m);
        expect_close(y0, y1, 1e-5);
        /* the folded convs gained a bias (arch's convs have none) */
        for (int i = 0; i < m->graph.n_nodes; i++)
            if (!strcmp(m->graph.nodes[i].op_type, "Conv"))
                assert_true(m->graph.nodes[i].n_inputs == 3 && m->graph.nodes[i].inputs[2] >= 0);
        free(y0);
        free(y1);
        sfp_model_free(m);
    }
}

static void test_insert_is_identity_and_folds_back_to_the_fused_graph(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = resnet8('B');
    const int bns = count_op(m, "BatchNormalization");
    mark_all_bn(m);
    TU_OK(&err, bn_fold_reinserted(m, NULL, &err));
    const int nodes_fused = m->graph.n_nodes, values_fused = m->graph.n_values;
    float *y0 = logits(m);
    int *bare = NULL, n = 0;
    TU_OK(&err, bn_bare_convs(m, &bare, &n, &err));
    assert_int_equal(n, bns);
    double **mean = calloc((size_t)n, sizeof *mean), **var = calloc((size_t)n, sizeof *var);
    assert_non_null(mean);
    assert_non_null(var);
    for (int i = 0; i < n; i++) {
        const int64_t ch = m->graph.values[m->graph.nodes[bare[i]].outputs[0]].dims[1];
        mean[i] = malloc(sizeof(double) * (size_t)ch);
        var[i] = malloc(sizeof(double) * (size_t)ch);
        assert_non_null(mean[i]);
        assert_non_null(var[i]);
        for (int64_t c = 0; c < ch; c++) {
            mean[i][c] = 0.2 * sin((double)(c + i));
            var[i][c] = c == 0 ? 0.0 : 0.5 + 0.1 * (double)c; /* a dead channel too */
        }
    }
    TU_OK(&err, bn_insert(m, n, bare, (const double *const *)mean, (const double *const *)var, &err));
    assert_int_equal(count_op(m, "BatchNormalization"), bns);
    int *again = NULL, n_again = -1;
    TU_OK(&err, bn_bare_convs(m, &again, &n_again, &err));
    assert_int_equal(n_again, 0);
    for (int i = 0; i < m->graph.n_nodes; i++)
        if (!strcmp(m->graph.nodes[i].op_type, "BatchNormalization")) {
            assert_true(bn_is_reinserted(&m->graph.nodes[i]));
            /* the graph's outputs keep their names: the BN writes the conv's old output */
            assert_int_equal(m->graph.values[m->graph.nodes[i].inputs[0]].producer >= 0, 1);
        }
    float *y1 = logits(m);
    expect_close(y0, y1, 1e-5);
    int folded = 0;
    TU_OK(&err, bn_fold_reinserted(m, &folded, &err));
    assert_int_equal(folded, bns);
    assert_int_equal(m->graph.n_nodes, nodes_fused);
    assert_int_equal(m->graph.n_values, values_fused);
    float *y2 = logits(m);
    expect_close(y0, y2, 1e-5);
    for (int i = 0; i < n; i++) {
        free(mean[i]);
        free(var[i]);
    }
    free(mean);
    free(var);
    free(bare);
    free(y0);
    free(y1);
    free(y2);
    sfp_model_free(m);
}

/* Conv a -> Relu -> Conv b (shared weight with c) -> Add(b, c) -> Conv head
 * -> GlobalAveragePool: a, b and c get a BN, the head (no layer after it:
 * a classifier) does not; c reads a weight b shares, which folding copies. */
static void test_bare_convs_skip_the_classifier_and_fold_copies_shared_weights(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    const int64_t x_dims[4] = {1, 2, 5, 5};
    tu_input(m, "x", SFP_DT_FLOAT, 4, x_dims);
    tu_conv_b(m, "a", "x", "a_out", 2, 3, 3, 11, 1);
    tu_node(m, "Relu", "relu", "a_out", "r");
    tu_conv(m, "b", "r", "b_out", 3, 3, 3, 12);
    tu_node(m, "Conv", "c", "r,b.weight", "c_out");
    tu_attr_ints(&m->graph.nodes[m->graph.n_nodes - 1], "pads", 4, (const int64_t[]){1, 1, 1, 1});
    tu_node(m, "Add", "add", "b_out,c_out", "s");
    tu_conv(m, "head", "s", "h", 3, 4, 1, 13);
    tu_node(m, "GlobalAveragePool", "gap", "h", "y");
    tu_output(m, "y");
    TU_OK(&err, model_validate(m, &err));
    TU_OK(&err, model_infer_shapes(m, 1, &err));
    int *bare = NULL, n = 0;
    TU_OK(&err, bn_bare_convs(m, &bare, &n, &err));
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++) assert_string_not_equal(m->graph.nodes[bare[i]].name, "head");
    double mean[3] = {0.1, -0.2, 0.3}, var[3] = {0.5, 2.0, 1.0};
    const double *means[3] = {mean, mean, mean}, *vars[3] = {var, var, var};
    TU_OK(&err, bn_insert(m, n, bare, means, vars, &err));
    free(bare);
    /* training would change the BN parameters: make folding non-trivial */
    for (int i = 0; i < m->graph.n_nodes; i++)
        if (bn_is_reinserted(&m->graph.nodes[i])) {
            float *gamma = m->graph.values[m->graph.nodes[i].inputs[1]].init->data;
            gamma[1] = 0.25f * (float)(i + 1);
        }
    float *y0 = NULL;
    {
        sfp_plan_t *p = NULL;
        float x[50];
        for (int i = 0; i < 50; i++) x[i] = (float)sin(0.3 * i);
        const void *in[1] = {x};
        TU_OK(&err, plan_create(m, 1, 0, 1, &p, &err));
        TU_OK(&err, plan_run(p, in, &err));
        y0 = malloc(sizeof(float) * 4);
        assert_non_null(y0);
        memcpy(y0, plan_output(p, 0), sizeof(float) * 4);
        plan_free(p);
        int folded = 0;
        TU_OK(&err, bn_fold_reinserted(m, &folded, &err));
        assert_int_equal(folded, 3);
        assert_int_equal(count_op(m, "BatchNormalization"), 0);
        TU_OK(&err, plan_create(m, 1, 0, 1, &p, &err));
        TU_OK(&err, plan_run(p, in, &err));
        const float *y1 = plan_output(p, 0);
        for (int i = 0; i < 4; i++) assert_true(fabsf(y0[i] - y1[i]) <= 1e-5f * (1.0f + fabsf(y0[i])));
        plan_free(p);
    }
    /* b and c no longer share one weight: each was scaled by its own BN */
    int wb = -1, wc = -1;
    for (int i = 0; i < m->graph.n_nodes; i++) {
        if (!strcmp(m->graph.nodes[i].name, "b")) wb = m->graph.nodes[i].inputs[1];
        if (!strcmp(m->graph.nodes[i].name, "c")) wc = m->graph.nodes[i].inputs[1];
    }
    assert_true(wb >= 0 && wc >= 0 && wb != wc);
    free(y0);
    sfp_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_keeps_function_and_leaves_bare_convs),
        cmocka_unit_test(test_insert_is_identity_and_folds_back_to_the_fused_graph),
        cmocka_unit_test(test_bare_convs_skip_the_classifier_and_fold_copies_shared_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
