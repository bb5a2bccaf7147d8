/* Graph IR (src/ir) and model_validate (src/ops/validate.c): topological
 * order, name and producer uniqueness, and the structural checks every loaded
 * model passes, with messages that name what is wrong and stay one clean line. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include <math.h>

#include "testutil.h"

#include "onnx.pb-c.h"

/* Names of the nodes in their current order, joined by spaces, into out. */
static const char *node_order(const sfp_model_t *m, char *out, size_t size)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < m->graph.n_nodes && o < size; i++)
        o += (size_t)snprintf(out + o, size - o, i ? " %s" : "%s", m->graph.nodes[i].name);
    return out;
}

/* Every node input is a graph input, an initializer, or the output of an
 * earlier node; every producer id points at the node listing the value. */
static void expect_topological(const sfp_model_t *m)
{
    const sfp_graph_t *g = &m->graph;
    for (int i = 0; i < g->n_nodes; i++) {
        const sfp_node_t *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++) {
            if (n->inputs[k] < 0) continue;
            int p = g->values[n->inputs[k]].producer;
            if (p >= i) fail_msg("node '%s' (#%d) reads '%s' produced by node #%d", n->name, i,
                                 g->values[n->inputs[k]].name, p);
        }
        for (int k = 0; k < n->n_outputs; k++) assert_int_equal(g->values[n->outputs[k]].producer, i);
    }
}

/* x -> a -> b -> c -> y, added last node first. */
static sfp_model_t *reversed_chain(void)
{
    sfp_model_t *m = tu_model(13);
    const int64_t dims[] = {1, 4};
    tu_input(m, "x", SFP_DT_FLOAT, 2, dims);
    tu_node(m, "Relu", "n4", "c", "y");
    tu_node(m, "Relu", "n3", "b", "c");
    tu_node(m, "Relu", "n2", "a", "b");
    tu_node(m, "Relu", "n1", "x", "a");
    tu_output(m, "y");
    return m;
}

static void test_topo_sort_orders_reversed_chain(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    char order[256];
    sfp_model_t *m = reversed_chain();
    TU_OK(&err, graph_topo_sort(&m->graph, &err));
    assert_string_equal(node_order(m, order, sizeof order), "n1 n2 n3 n4");
    expect_topological(m);
    sfp_model_free(m);
}

/* A diamond with two independent branches keeps the file order among ready
 * nodes, and running the sort again changes nothing. */
static void test_topo_sort_leaves_sorted_graph_unchanged(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    char before[256], after[256];
    sfp_model_t *m = tu_model(13);
    const int64_t dims[] = {1, 4};
    tu_input(m, "x", SFP_DT_FLOAT, 2, dims);
    tu_node(m, "Relu", "stem", "x", "s");
    tu_node(m, "Sigmoid", "right", "s", "r");
    tu_node(m, "Relu", "left", "s", "l");
    tu_node(m, "Add", "join", "l,r", "j");
    tu_node(m, "Add", "twice", "j,j", "y"); /* the same value read twice */
    tu_output(m, "y");
    node_order(m, before, sizeof before);
    TU_OK(&err, graph_topo_sort(&m->graph, &err));
    assert_string_equal(node_order(m, after, sizeof after), before);
    expect_topological(m);
    TU_OK(&err, graph_topo_sort(&m->graph, &err));
    assert_string_equal(node_order(m, after, sizeof after), before);
    sfp_model_free(m);
}

static void test_topo_sort_orders_shuffled_diamond(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    char order[256];
    sfp_model_t *m = tu_model(13);
    const int64_t dims[] = {1, 4};
    tu_input(m, "x", SFP_DT_FLOAT, 2, dims);
    tu_node(m, "Add", "join", "l,r", "y");
    tu_node(m, "Relu", "left", "s", "l");
    tu_node(m, "Relu", "stem", "x", "s");
    tu_node(m, "Sigmoid", "right", "s", "r");
    tu_output(m, "y");
    TU_OK(&err, graph_topo_sort(&m->graph, &err));
    /* ready nodes are taken in file order: left before right */
    assert_string_equal(node_order(m, order, sizeof order), "stem left right join");
    expect_topological(m);
    sfp_model_free(m);
}

static void test_topo_sort_cycle_is_bad_model_naming_a_node(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    const int64_t dims[] = {1, 4};
    tu_input(m, "x", SFP_DT_FLOAT, 2, dims);
    tu_node(m, "Add", "loop_add", "x,b", "a");
    tu_node(m, "Relu", "loop_relu", "a", "b");
    tu_node(m, "Relu", "tail", "b", "y");
    tu_output(m, "y");
    int rc = graph_topo_sort(&m->graph, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "cycle");
    assert_true(strstr(err.msg, "'loop_add'") || strstr(err.msg, "'loop_relu'") || strstr(err.msg, "'tail'"));
    /* model_validate reports the same */
    memset(&err, 0, sizeof err);
    rc = model_validate(m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "cycle");
    sfp_model_free(m);
}

static void test_duplicate_value_name_is_bad_model(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    int id = -1;
    TU_OK(&err, graph_add_value(&m->graph, "conv1.weight", &id, &err));
    int rc = graph_add_value(&m->graph, "conv1.weight", &id, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "conv1.weight");
    assert_int_equal(m->graph.n_values, 1);
    sfp_model_free(m);
}

static void test_value_produced_twice_is_bad_model(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    const int64_t dims[] = {1, 4};
    int x = tu_input(m, "x", SFP_DT_FLOAT, 2, dims);
    int y = tu_val(m, "y");
    tu_node(m, "Relu", "first", "x", "y");
    int rc = graph_add_node(&m->graph, "Sigmoid", "second", 1, &x, 1, &y, NULL, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'y'", "second");
    assert_int_equal(m->graph.n_nodes, 1);
    assert_int_equal(m->graph.values[y].producer, 0);
    /* A refused node leaves no trace: its other outputs keep no producer
     * (one would point at a node that does not exist). */
    int outs[2] = {tu_val(m, "z"), y};
    memset(&err, 0, sizeof err);
    rc = graph_add_node(&m->graph, "Split", "third", 1, &x, 2, outs, NULL, &err);
    int n_nodes = m->graph.n_nodes, z_producer = m->graph.values[outs[0]].producer;
    sfp_model_free(m); /* under ASan/LSan: nothing of the refused nodes may leak */
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'y'", "third");
    assert_int_equal(n_nodes, 1);
    if (z_producer != -1) fail_msg("value 'z' of the refused node has producer %d (graph has 1 node)", z_producer);
}

static void test_initializer_written_by_a_node_is_bad_model(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    const int64_t dims[] = {4};
    int x = tu_input(m, "x", SFP_DT_FLOAT, 1, dims);
    int w = tu_init_f32(m, "w", 1, dims, NULL, 1);
    int rc = graph_add_node(&m->graph, "Relu", "overwrite", 1, &x, 1, &w, NULL, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'w'");
    assert_int_equal(m->graph.n_nodes, 0);
    sfp_model_free(m);
}

/* The same checks reached through the decoder, from ModelProto bytes. */
static int decode_graph(Onnx__GraphProto *gp, const char *path, sfp_error_t *err)
{
    Onnx__ModelProto mp;
    Onnx__OperatorSetIdProto opset, *opsets[1] = {&opset};
    onnx__model_proto__init(&mp);
    onnx__operator_set_id_proto__init(&opset);
    opset.has_version = 1;
    opset.version = 13;
    mp.has_ir_version = 1;
    mp.ir_version = 8;
    mp.n_opset_import = 1;
    mp.opset_import = opsets;
    mp.graph = gp;
    size_t len = onnx__model_proto__get_packed_size(&mp);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    onnx__model_proto__pack(&mp, buf);
    sfp_model_t *m = NULL;
    int rc = onnx_decode_model(buf, len, path, &m, err);
    free(buf);
    sfp_model_free(m);
    return rc;
}

static void test_decoded_value_produced_twice_is_bad_model(void **state)
{
    (void)state;
    Onnx__GraphProto gp;
    Onnx__NodeProto a, b, *nodes[2] = {&a, &b};
    char *in[1] = {(char *)"x"}, *out[1] = {(char *)"y"};
    onnx__graph_proto__init(&gp);
    onnx__node_proto__init(&a);
    onnx__node_proto__init(&b);
    a.name = (char *)"first";
    b.name = (char *)"second";
    a.op_type = b.op_type = (char *)"Relu";
    a.n_input = b.n_input = 1;
    a.input = b.input = in;
    a.n_output = b.n_output = 1;
    a.output = b.output = out;
    gp.n_node = 2;
    gp.node = nodes;
    sfp_error_t err = {0};
    int rc = decode_graph(&gp, "twice.onnx", &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "twice.onnx", "'y'");
}

static void test_decoded_duplicate_initializer_is_bad_model(void **state)
{
    (void)state;
    Onnx__GraphProto gp;
    Onnx__TensorProto t, *inits[2] = {&t, &t};
    float data[2] = {1.0f, 2.0f};
    int64_t dims[1] = {2};
    onnx__graph_proto__init(&gp);
    onnx__tensor_proto__init(&t);
    t.name = (char *)"dup.weight";
    t.n_dims = 1;
    t.dims = dims;
    t.has_data_type = 1;
    t.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t.has_raw_data = 1;
    t.raw_data.data = (uint8_t *)data;
    t.raw_data.len = sizeof data;
    gp.n_initializer = 2;
    gp.initializer = inits;
    sfp_error_t err = {0};
    int rc = decode_graph(&gp, "dup.onnx", &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "dup.onnx", "dup.weight");
}

/* ------------------------------------------------------------------------ */
/* model_validate                                                            */

/* x [1,3,8,8] -> Conv(w [4,3,3,3], pads 1) -> BN -> Relu -> y: valid. */
static sfp_model_t *valid_model(void)
{
    sfp_model_t *m = tu_model(13);
    const int64_t x_dims[] = {1, 3, 8, 8}, w_dims[] = {4, 3, 3, 3}, c4[] = {4};
    tu_input(m, "x", SFP_DT_FLOAT, 4, x_dims);
    tu_init_f32(m, "w", 4, w_dims, NULL, 1);
    const float ones[] = {1, 1, 1, 1}, zeros[] = {0, 0, 0, 0};
    tu_init_f32(m, "gamma", 1, c4, ones, 0);
    tu_init_f32(m, "beta", 1, c4, zeros, 0);
    tu_init_f32(m, "mean", 1, c4, zeros, 0);
    tu_init_f32(m, "var", 1, c4, ones, 0);
    sfp_node_t *n = tu_node(m, "Conv", "conv", "x,w", "c");
    const int64_t p1[] = {1, 1, 1, 1};
    tu_attr_ints(n, "pads", 4, p1);
    tu_node(m, "BatchNormalization", "bn", "c,gamma,beta,mean,var", "b");
    tu_node(m, "Relu", "relu", "b", "y");
    tu_output(m, "y");
    return m;
}

static void test_validate_accepts_small_valid_model(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = valid_model();
    TU_OK(&err, model_validate(m, &err));
    /* the supported range includes its ends */
    m->ir_version = 3;
    m->opsets[0].version = 7;
    TU_OK(&err, model_validate(m, &err));
    m->ir_version = 10;
    m->opsets[0].version = 21;
    TU_OK(&err, model_validate(m, &err));
    sfp_model_free(m);
}

static void test_validate_dangling_input_names_node_and_value(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = valid_model();
    tu_node(m, "Add", "adder", "y,ghost_value", "z");
    int rc = model_validate(m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'adder'", "'ghost_value'");
    sfp_model_free(m);
}

static void test_validate_unsupported_op_names_node_and_op(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = valid_model();
    tu_node(m, "LSTM", "rnn0", "y", "h");
    int rc = model_validate(m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUNSUPPORTED, "'rnn0'", "LSTM");
    sfp_model_free(m);
}

static void test_validate_op_of_foreign_domain_is_unsupported(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = valid_model();
    sfp_node_t *n = &m->graph.nodes[2];
    free(n->domain);
    n->domain = strdup("com.microsoft");
    int rc = model_validate(m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUNSUPPORTED, "'relu'", "com.microsoft");
    sfp_model_free(m);
}

static void test_validate_unsupported_attribute_names_it(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = valid_model();
    tu_attr_float(&m->graph.nodes[2], "alpha", 0.1f); /* Relu has no attributes */
    int rc = model_validate(m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUNSUPPORTED, "'relu'", "'alpha'");
    sfp_model_free(m);
}

static void test_validate_ir_version_out_of_range_is_unsupported(void **state)
{
    (void)state;
    const int64_t versions[] = {2, 99};
    for (size_t i = 0; i < 2; i++) {
        sfp_error_t err = {0};
        sfp_model_t *m = valid_model();
        m->ir_version = versions[i];
        int rc = model_validate(m, &err);
        TU_EXPECT_ERR(rc, &err, SFP_EUNSUPPORTED, "ir_version");
        assert_true(tu_msg_has_number(err.msg, versions[i]));
        sfp_model_free(m);
    }
}

static void test_validate_opset_out_of_range_is_unsupported(void **state)
{
    (void)state;
    const int64_t versions[] = {3, 99};
    for (size_t i = 0; i < 2; i++) {
        sfp_error_t err = {0};
        sfp_model_t *m = valid_model();
        m->opsets[0].version = versions[i];
        int rc = model_validate(m, &err);
        TU_EXPECT_ERR(rc, &err, SFP_EUNSUPPORTED, "opset");
        assert_true(tu_msg_has_number(err.msg, versions[i]));
        sfp_model_free(m);
    }
}

static void test_validate_missing_default_opset_is_bad_model(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = valid_model();
    free(m->opsets[0].domain);
    m->opsets[0].domain = strdup("com.example");
    int rc = model_validate(m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "opset");
    sfp_model_free(m);
}

static void test_validate_nan_weight_names_initializer(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = valid_model();
    float *w = m->graph.values[graph_find_value(&m->graph, "w")].init->data;
    w[17] = NAN;
    int rc = model_validate(m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'w'", "NaN");
    assert_true(tu_msg_has_number(err.msg, 17));
    sfp_model_free(m);
}

static void test_validate_infinite_weight_is_bad_model(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = valid_model();
    float *gamma = m->graph.values[graph_find_value(&m->graph, "gamma")].init->data;
    gamma[2] = -INFINITY;
    int rc = model_validate(m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'gamma'");
    sfp_model_free(m);
}

static void test_validate_negative_bn_variance_is_bad_model(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = valid_model();
    float *var = m->graph.values[graph_find_value(&m->graph, "var")].init->data;
    var[3] = -0.5f;
    int rc = model_validate(m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'bn'", "'var'");
    assert_true(tu_msg_has_number(err.msg, 3)); /* the channel */
    sfp_model_free(m);
}

/* Names from a file are shown escaped: no raw control byte reaches the
 * message (it would forge terminal output), the escape shows what was there. */
static void test_control_characters_in_names_are_escaped(void **state)
{
    (void)state;
    const char *evil = "\x1b[31mevil\n";
    /* an unsupported op on a node with that name, and that op type */
    {
        sfp_error_t err = {0};
        sfp_model_t *m = valid_model();
        tu_node(m, evil, evil, "y", "h");
        int rc = model_validate(m, &err);
        TU_EXPECT_ERR(rc, &err, SFP_EUNSUPPORTED, "\\x1b[31mevil\\x0a");
        sfp_model_free(m);
    }
    /* a dangling input with that name */
    {
        sfp_error_t err = {0};
        sfp_model_t *m = valid_model();
        int ids[2] = {graph_find_value(&m->graph, "y"), tu_val(m, evil)}, out = tu_val(m, "z");
        TU_OK(&err, graph_add_node(&m->graph, "Add", "adder", 2, ids, 1, &out, NULL, &err));
        int rc = model_validate(m, &err);
        TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'adder'", "\\x1b[31mevil\\x0a");
        sfp_model_free(m);
    }
    /* a NaN in an initializer with that name */
    {
        sfp_error_t err = {0};
        sfp_model_t *m = valid_model();
        const int64_t one = 1;
        const float nan_value = NAN;
        tu_init_f32(m, evil, 1, &one, &nan_value, 0);
        int rc = model_validate(m, &err);
        TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "\\x1b[31mevil\\x0a");
        sfp_model_free(m);
    }
    /* a duplicate value name */
    {
        sfp_error_t err = {0};
        sfp_model_t *m = tu_model(13);
        int id = -1;
        tu_val(m, evil);
        int rc = graph_add_value(&m->graph, evil, &id, &err);
        TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "\\x1b[31mevil\\x0a");
        sfp_model_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topo_sort_orders_reversed_chain),
        cmocka_unit_test(test_topo_sort_leaves_sorted_graph_unchanged),
        cmocka_unit_test(test_topo_sort_orders_shuffled_diamond),
        cmocka_unit_test(test_topo_sort_cycle_is_bad_model_naming_a_node),
        cmocka_unit_test(test_duplicate_value_name_is_bad_model),
        cmocka_unit_test(test_value_produced_twice_is_bad_model),
        cmocka_unit_test(test_initializer_written_by_a_node_is_bad_model),
        cmocka_unit_test(test_decoded_value_produced_twice_is_bad_model),
        cmocka_unit_test(test_decoded_duplicate_initializer_is_bad_model),
        cmocka_unit_test(test_validate_accepts_small_valid_model),
        cmocka_unit_test(test_validate_dangling_input_names_node_and_value),
        cmocka_unit_test(test_validate_unsupported_op_names_node_and_op),
        cmocka_unit_test(test_validate_op_of_foreign_domain_is_unsupported),
        cmocka_unit_test(test_validate_unsupported_attribute_names_it),
        cmocka_unit_test(test_validate_ir_version_out_of_range_is_unsupported),
        cmocka_unit_test(test_validate_opset_out_of_range_is_unsupported),
        cmocka_unit_test(test_validate_missing_default_opset_is_bad_model),
        cmocka_unit_test(test_validate_nan_weight_names_initializer),
        cmocka_unit_test(test_validate_infinite_weight_is_bad_model),
        cmocka_unit_test(test_validate_negative_bn_variance_is_bad_model),
        cmocka_unit_test(test_control_characters_in_names_are_escaped),
    };
    return cmocka_run_group_tests(tests, NULL, tu_cleanup_tmpdirs);
}
