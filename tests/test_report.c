/* Reports (src/report): parameter, MAC and elementwise counts of a small
 * hand-built CNN worked out by hand with DESIGN.md's conventions, and the
 * `report --json` object (docs/json.md) read back with json-c. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include <math.h>

#include <json-c/json.h>

#include "testutil.h"

#include "onnxsfp/report.h"

/* x [N,3,16,16] -> Conv(3->width, k3, pad 1, no bias) -> BN -> Relu
 * -> GlobalAveragePool -> Flatten -> Gemm(width->10, transB, bias) -> y */
static sfp_model_t *small_cnn(int64_t width)
{
    const int64_t x_dims[] = {-1, 3, 16, 16}, w_dims[] = {width, 3, 3, 3}, c[] = {width}, fc_dims[] = {10, width},
                  c10[] = {10}, p1[] = {1, 1, 1, 1}, k3[] = {3, 3};
    sfp_model_t *m = tu_model(13);
    tu_input(m, "x", SFP_DT_FLOAT, 4, x_dims);
    tu_init_f32(m, "conv.weight", 4, w_dims, NULL, 1);
    tu_init_f32(m, "bn.weight", 1, c, NULL, 2);
    tu_init_f32(m, "bn.bias", 1, c, NULL, 3);
    tu_init_f32(m, "bn.running_mean", 1, c, NULL, 4);
    float var[64];
    for (int i = 0; i < width; i++) var[i] = 1.0f + (float)i;
    tu_init_f32(m, "bn.running_var", 1, c, var, 0);
    tu_init_f32(m, "fc.weight", 2, fc_dims, NULL, 5);
    tu_init_f32(m, "fc.bias", 1, c10, NULL, 6);
    sfp_node_t *n = tu_node(m, "Conv", "conv", "x,conv.weight", "c");
    tu_attr_ints(n, "pads", 4, p1);
    tu_attr_ints(n, "kernel_shape", 2, k3);
    tu_node(m, "BatchNormalization", "bn", "c,bn.weight,bn.bias,bn.running_mean,bn.running_var", "b");
    tu_node(m, "Relu", "relu", "b", "r");
    tu_node(m, "GlobalAveragePool", "gap", "r", "g");
    tu_node(m, "Flatten", "flatten", "g", "f");
    n = tu_node(m, "Gemm", "fc", "f,fc.weight,fc.bias", "y");
    tu_attr_int(n, "transB", 1);
    tu_output(m, "y");
    return m;
}

/* Hand-worked figures of small_cnn(width) at batch 1. */
static int64_t expected_conv_macs(int64_t width) { return 16 * 16 * width * 3 * 9; } /* out elems x C_in x k area */
static int64_t expected_fc_macs(int64_t width) { return width * 10; }
static int64_t expected_macs(int64_t width) { return expected_conv_macs(width) + expected_fc_macs(width); }
static int64_t expected_params(int64_t width)
{
    return width * 3 * 9 /* conv weight */ + 2 * width /* BN scale, bias */ + 10 * width + 10 /* fc */;
}
/* BN and Relu: one op per output element; GlobalAveragePool: one per input element. */
static int64_t expected_elem_ops(int64_t width) { return 3 * width * 16 * 16; }

static sfp_report_t *build_report(sfp_model_t *m, const char *path)
{
    sfp_error_t err = {0};
    sfp_report_t *r = NULL;
    TU_OK(&err, sfp_report_build(m, path, &r, &err));
    return r;
}

static void test_report_totals_follow_design_conventions(void **state)
{
    (void)state;
    sfp_model_t *m = small_cnn(8);
    sfp_report_t *r = build_report(m, "small.onnx");
    /* 16*16*8*3*9 + 8*10 = 55296 + 80 */
    assert_true(r->macs == 55376);
    assert_true(r->macs == expected_macs(8));
    /* 8*3*9 + 2*8 + 8*10 + 10 = 216 + 16 + 80 + 10; BN running stats not counted */
    assert_true(r->params == 322);
    assert_true(r->params == expected_params(8));
    assert_true(r->elem_ops == expected_elem_ops(8));
    assert_string_equal(r->path, "small.onnx");
    sfp_report_free(r);
    sfp_model_free(m);
}

/* Counts are for batch 1 whatever batch the shapes were last inferred for. */
static void test_report_counts_at_batch_one(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = small_cnn(8);
    TU_OK(&err, model_infer_shapes(m, 32, &err));
    sfp_report_t *r = build_report(m, "small.onnx");
    assert_true(r->macs == expected_macs(8));
    assert_true(r->elem_ops == expected_elem_ops(8));
    assert_true(r->rows[0].shape[0] == 1);
    sfp_report_free(r);
    sfp_model_free(m);
}

static void test_report_rows_give_each_node_its_share(void **state)
{
    (void)state;
    sfp_model_t *m = small_cnn(8);
    sfp_report_t *r = build_report(m, "small.onnx");
    static const struct {
        const char *name, *op;
        int ndim;
        int64_t shape[4], params, macs, elem_ops;
    } want[] = {
        {"conv", "Conv", 4, {1, 8, 16, 16}, 216, 55296, 0},
        {"bn", "BatchNormalization", 4, {1, 8, 16, 16}, 16, 0, 2048},
        {"relu", "Relu", 4, {1, 8, 16, 16}, 0, 0, 2048},
        {"gap", "GlobalAveragePool", 4, {1, 8, 1, 1}, 0, 0, 2048},
        {"flatten", "Flatten", 2, {1, 8}, 0, 0, 0},
        {"fc", "Gemm", 2, {1, 10}, 90, 80, 0},
    };
    assert_int_equal(r->n_rows, 6);
    for (int i = 0; i < 6; i++) {
        const sfp_report_row_t *row = &r->rows[i];
        assert_string_equal(row->name, want[i].name);
        assert_string_equal(row->op_type, want[i].op);
        assert_int_equal(row->ndim, want[i].ndim);
        for (int k = 0; k < row->ndim; k++) assert_true(row->shape[k] == want[i].shape[k]);
        if (row->params != want[i].params || row->macs != want[i].macs || row->elem_ops != want[i].elem_ops)
            fail_msg("row '%s': params %lld macs %lld elem %lld, expected %lld %lld %lld", row->name,
                     (long long)row->params, (long long)row->macs, (long long)row->elem_ops,
                     (long long)want[i].params, (long long)want[i].macs, (long long)want[i].elem_ops);
    }
    sfp_report_free(r);
    sfp_model_free(m);
}

/* A weight read by two Convs is one set of parameters; an unnamed node is
 * listed as "#index". */
static void test_report_counts_shared_weight_once_and_names_unnamed_nodes(void **state)
{
    (void)state;
    const int64_t x_dims[] = {1, 4, 8, 8}, w_dims[] = {4, 4, 1, 1};
    sfp_model_t *m = tu_model(13);
    tu_input(m, "x", SFP_DT_FLOAT, 4, x_dims);
    tu_init_f32(m, "shared.weight", 4, w_dims, NULL, 1);
    tu_node(m, "Conv", "first", "x,shared.weight", "a");
    tu_node(m, "Conv", "", "a,shared.weight", "y");
    tu_output(m, "y");
    sfp_report_t *r = build_report(m, "shared.onnx");
    assert_true(r->params == 16);
    assert_true(r->macs == 2 * (4 * 8 * 8) * 4);
    assert_string_equal(r->rows[1].name, "#1");
    sfp_report_free(r);
    sfp_model_free(m);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

static json_object *get(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v)) fail_msg("JSON object lacks key \"%s\"", key);
    return v;
}

static int64_t get_int(json_object *obj, const char *key)
{
    json_object *v = get(obj, key);
    if (!json_object_is_type(v, json_type_int)) fail_msg("\"%s\" is not an integer", key);
    return json_object_get_int64(v);
}

static json_object *parse_report_json(const sfp_report_t *a, const sfp_report_t *b)
{
    sfp_error_t err = {0};
    char *text = NULL;
    TU_OK(&err, sfp_report_to_json(a, b, &text, &err));
    json_object *root = json_tokener_parse(text);
    if (!root) fail_msg("sfp_report_to_json gave text json-c cannot parse: %s", text);
    free(text);
    return root;
}

/* The model entry must match report r node by node. */
static void expect_model_json(json_object *model, const sfp_report_t *r)
{
    assert_string_equal(json_object_get_string(get(model, "path")), r->path);
    json_object *total = get(model, "total");
    assert_true(get_int(total, "params") == r->params);
    assert_true(get_int(total, "macs") == r->macs);
    assert_true(get_int(total, "flops") == 2 * r->macs);
    json_object *nodes = get(model, "nodes");
    assert_true(json_object_is_type(nodes, json_type_array));
    assert_int_equal(json_object_array_length(nodes), (size_t)r->n_rows);
    for (int i = 0; i < r->n_rows; i++) {
        json_object *n = json_object_array_get_idx(nodes, (size_t)i);
        assert_string_equal(json_object_get_string(get(n, "name")), r->rows[i].name);
        assert_string_equal(json_object_get_string(get(n, "op_type")), r->rows[i].op_type);
        json_object *shape = get(n, "output_shape");
        assert_true(json_object_is_type(shape, json_type_array));
        assert_int_equal(json_object_array_length(shape), (size_t)r->rows[i].ndim);
        for (int k = 0; k < r->rows[i].ndim; k++)
            assert_true(json_object_get_int64(json_object_array_get_idx(shape, (size_t)k)) == r->rows[i].shape[k]);
        assert_true(get_int(n, "params") == r->rows[i].params);
        assert_true(get_int(n, "macs") == r->rows[i].macs);
    }
}

static void test_report_json_one_model_has_totals_nodes_and_null_reduction(void **state)
{
    (void)state;
    sfp_model_t *m = small_cnn(8);
    sfp_report_t *r = build_report(m, "small.onnx");
    json_object *root = parse_report_json(r, NULL);
    json_object *models = get(root, "models");
    assert_int_equal(json_object_array_length(models), 1);
    json_object *model = json_object_array_get_idx(models, 0);
    expect_model_json(model, r);
    json_object *total = get(model, "total");
    assert_true(get_int(total, "macs") == 55376);
    assert_true(get_int(total, "flops") == 2 * 55376);
    assert_true(get_int(total, "params") == 322);
    json_object *conv = json_object_array_get_idx(get(model, "nodes"), 0);
    assert_string_equal(json_object_get_string(get(conv, "name")), "conv");
    assert_true(get_int(conv, "macs") == 55296);
    assert_null(get(root, "reduction")); /* present, and null */
    json_object_put(root);
    sfp_report_free(r);
    sfp_model_free(m);
}

/* Two models: reduction = 1 - second/first for params and MACs. Halving the
 * width halves every MAC here (55376 -> 27688), so macs is exactly 0.5;
 * params 322 -> 166 gives 156/322. Tolerance 1e-12: one double rounding. */
static void test_report_json_two_models_give_reduction_fractions(void **state)
{
    (void)state;
    sfp_model_t *big = small_cnn(8), *small = small_cnn(4);
    sfp_report_t *a = build_report(big, "big.onnx"), *b = build_report(small, "small.onnx");
    assert_true(b->macs == 27688 && b->params == 166);
    json_object *root = parse_report_json(a, b);
    json_object *models = get(root, "models");
    assert_int_equal(json_object_array_length(models), 2);
    expect_model_json(json_object_array_get_idx(models, 0), a);
    expect_model_json(json_object_array_get_idx(models, 1), b);
    json_object *red = get(root, "reduction");
    assert_non_null(red);
    double params = json_object_get_double(get(red, "params")), macs = json_object_get_double(get(red, "macs"));
    if (fabs(params - 156.0 / 322.0) > 1e-12 || fabs(macs - 0.5) > 1e-12)
        fail_msg("reduction params %.17g macs %.17g, expected %.17g and 0.5", params, macs, 156.0 / 322.0);
    json_object_put(root);
    sfp_report_free(a);
    sfp_report_free(b);
    sfp_model_free(big);
    sfp_model_free(small);
}

/* Node names from a file are data: quotes, backslashes and control bytes
 * must come back intact through JSON, not break it. */
static void test_report_json_keeps_awkward_names_intact(void **state)
{
    (void)state;
    const char *awkward = "conv \"1\"\\path\n\x1b[0m";
    sfp_model_t *m = small_cnn(4);
    free(m->graph.nodes[0].name);
    m->graph.nodes[0].name = strdup(awkward);
    sfp_report_t *r = build_report(m, "dir/with \"quotes\".onnx");
    json_object *root = parse_report_json(r, NULL);
    json_object *model = json_object_array_get_idx(get(root, "models"), 0);
    assert_string_equal(json_object_get_string(get(model, "path")), "dir/with \"quotes\".onnx");
    json_object *conv = json_object_array_get_idx(get(model, "nodes"), 0);
    assert_string_equal(json_object_get_string(get(conv, "name")), awkward);
    json_object_put(root);
    sfp_report_free(r);
    sfp_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_totals_follow_design_conventions),
        cmocka_unit_test(test_report_counts_at_batch_one),
        cmocka_unit_test(test_report_rows_give_each_node_its_share),
        cmocka_unit_test(test_report_counts_shared_weight_once_and_names_unnamed_nodes),
        cmocka_unit_test(test_report_json_one_model_has_totals_nodes_and_null_reduction),
        cmocka_unit_test(test_report_json_two_models_give_reduction_fractions),
        cmocka_unit_test(test_report_json_keeps_awkward_names_intact),
    };
    return cmocka_run_group_tests(tests, NULL, tu_cleanup_tmpdirs);
}
