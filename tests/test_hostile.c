/* Hostile-input regressions below the command line: wire-level checks before
 * protobuf-c (nesting depth, wire types, memory budget), escaping of control
 * characters, validation of empty required outputs and absurd input shapes,
 * and unique names built from very long names (once an endless loop).
 * The whole-file corpus lives in tests/bad (tests/e2e_bad_models.sh). */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include "testutil.h"

#include "onnxsfp/report.h"
#include "prune/prune.h"
#include "surgery/surgery.h"

/* ---- protobuf bytes by hand ---- */
typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf_t;

static void put(buf_t *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put_varint(buf_t *b, uint64_t v)
{
    uint8_t c[10];
    size_t n = 0;
    do {
        c[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) c[n] |= 0x80;
        n++;
    } while (v);
    put(b, c, n);
}

static void put_key(buf_t *b, unsigned field, unsigned wire_type)
{
    put_varint(b, ((uint64_t)field << 3) | wire_type);
}

/* Length-delimited field whose payload is inner (freed). */
static void put_msg(buf_t *b, unsigned field, buf_t *inner)
{
    put_key(b, field, 2);
    put_varint(b, inner->n);
    put(b, inner->p, inner->n);
    free(inner->p);
    memset(inner, 0, sizeof *inner);
}

/* ModelProto{ir_version 7, opset 13, graph{input{name "x", type: depth levels
 * of sequence(...) around tensor(float)}}}. */
static buf_t nested_type_model(int depth)
{
    buf_t t = {0};
    buf_t tensor = {0};
    put_key(&tensor, 1, 0); /* Tensor.elem_type = FLOAT */
    put_varint(&tensor, 1);
    put_msg(&t, 1, &tensor); /* TypeProto.tensor_type */
    for (int i = 0; i < depth; i++) {
        buf_t seq = {0}, outer = {0};
        put_msg(&seq, 1, &t);     /* Sequence.elem_type */
        put_msg(&outer, 4, &seq); /* TypeProto.sequence_type */
        t = outer;
    }
    buf_t vi = {0}, graph = {0}, opset = {0}, model = {0};
    put_key(&vi, 1, 2);
    put_varint(&vi, 1);
    put(&vi, "x", 1);
    put_msg(&vi, 2, &t);
    put_msg(&graph, 11, &vi);
    put_key(&model, 1, 0);
    put_varint(&model, 7);
    put_key(&opset, 2, 0);
    put_varint(&opset, 13);
    put_msg(&model, 8, &opset);
    put_msg(&model, 7, &graph);
    return model;
}

static void test_nesting_deeper_than_the_limit_is_refused_before_unpacking(void **state)
{
    (void)state;
    /* 20000 levels overflowed the stack inside protobuf-c's recursive unpack. */
    buf_t b = nested_type_model(20000);
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    int rc = onnx_decode_model(b.p, b.n, "deep.onnx", &m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "deep.onnx", "not a valid ONNX model", "messages nested deeper than 100");
    assert_null(m);
    free(b.p);
}

static void test_nesting_within_the_limit_reaches_the_loader(void **state)
{
    (void)state;
    buf_t b = nested_type_model(20);
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    int rc = onnx_decode_model(b.p, b.n, "seq.onnx", &m, &err);
    /* decoded by protobuf-c; refused by the loader for what it is */
    TU_EXPECT_ERR(rc, &err, SFP_EUNSUPPORTED, "value 'x': only tensor types are supported");
    free(b.p);
}

static void test_wrong_wire_type_names_the_byte_and_field(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x0a, 0x01, 0x07}; /* ir_version as length-delimited */
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    int rc = onnx_decode_model(bytes, sizeof bytes, "w.onnx", &m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "byte 0: field 1 (ModelProto.ir_version) has wire type 2, expected 0");
}

static void test_memory_budget_refusal_is_named_as_such(void **state)
{
    (void)state;
    /* 150000 empty nodes in 300 KB: protobuf-c would need ~60x the file. */
    buf_t graph = {0}, model = {0};
    for (int i = 0; i < 150000; i++) put(&graph, "\x0a\x00", 2);
    put_key(&model, 1, 0);
    put_varint(&model, 7);
    put_msg(&model, 7, &graph);
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    int rc = onnx_decode_model(model.p, model.n, "many.onnx", &m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "it would need more memory than its size justifies");
    free(model.p);
}

/* ---- escaping ---- */
static void test_escape_shows_c0_and_utf8_c1_controls(void **state)
{
    (void)state;
    char out[64];
    /* U+009B (CSI to some terminals) in UTF-8, ESC, newline; é stays as is */
    assert_string_equal(sfp_escape("a\xc2\x9b" "1m\x1b\n\xc3\xa9", out, sizeof out), "a\\xc2\\x9b1m\\x1b\\x0a\xc3\xa9");
    sfp_error_t err = {0};
    sfp_errorf(&err, SFP_EBADMODEL, "raw %s end", "x\xc2\x85y\r");
    assert_string_equal(err.msg, "raw x\\xc2\\x85y\\x0d end");
}

/* ---- validation ---- */
static void test_empty_required_output_is_refused(void **state)
{
    (void)state;
    sfp_model_t *m = tu_model(13);
    tu_input(m, "x", SFP_DT_FLOAT, 2, (int64_t[]){1, 4});
    tu_node(m, "Dropout", "drop", "x", ",mask"); /* output 0 omitted, mask given */
    tu_output(m, "mask");
    sfp_error_t err = {0};
    int rc = model_validate(m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "node 'drop' (Dropout): required output 0 is empty");
    sfp_model_free(m);
}

static void test_absurd_declared_input_is_refused(void **state)
{
    (void)state;
    sfp_model_t *m = tu_model(13);
    tu_input(m, "x", SFP_DT_FLOAT, 4, (int64_t[]){1, 1 << 21, 1 << 10, 1 << 10}); /* 2^41 elements */
    tu_node(m, "Relu", "relu", "x", "y");
    tu_output(m, "y");
    sfp_error_t err = {0};
    TU_OK(&err, model_validate(m, &err));
    int rc = model_infer_shapes(m, 1, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "graph input 'x' would hold an absurd number of elements");
    sfp_model_free(m);
}

/* ---- long names ---- */
static int add_node(sfp_model_t *m, const char *op, const char *name, int n_in, const char *const *ins,
                    const char *out)
{
    sfp_error_t err = {0};
    int ids[4], oid = tu_val(m, out), nid = -1;
    for (int i = 0; i < n_in; i++) ids[i] = tu_val(m, ins[i]);
    TU_OK(&err, graph_add_node(&m->graph, op, name, n_in, ids, 1, &oid, &nid, &err));
    return nid;
}

static void test_long_shared_bias_name_gets_unique_copies(void **state)
{
    (void)state;
    /* Three Convs share one bias with a 700-byte name; removing channels
     * gives each its own copy. Names were built in a 600-byte buffer, so
     * every candidate truncated to the same string: an endless loop. */
    char bias[701];
    memset(bias, 'B', 700);
    bias[700] = '\0';
    sfp_model_t *m = tu_model(13);
    tu_input(m, "x", SFP_DT_FLOAT, 4, (int64_t[]){1, 4, 6, 6});
    tu_init(m, bias, SFP_DT_FLOAT, 1, (int64_t[]){4}, NULL);
    const char *x = "x";
    const char *outs[3] = {"c0", "c1", "c2"}, *ws[3] = {"w0", "w1", "w2"};
    for (int i = 0; i < 3; i++) {
        tu_init_f32(m, ws[i], 4, (int64_t[]){4, 4, 1, 1}, NULL, (uint32_t)i + 1);
        const char *ins[3] = {x, ws[i], bias};
        int nid = add_node(m, "Conv", outs[i] /* node named like its output */, 3, ins, outs[i]);
        sfp_node_t *n = &m->graph.nodes[nid];
        tu_attr_ints(n, "kernel_shape", 2, (int64_t[]){1, 1});
        x = outs[i];
    }
    tu_init_f32(m, "fc.w", 2, (int64_t[]){2, 4}, NULL, 9);
    tu_node(m, "GlobalAveragePool", "gap", "c2", "p");
    tu_node(m, "Flatten", "flat", "p", "f");
    sfp_node_t *fc = tu_node(m, "Gemm", "fc", "f,fc.w", "y");
    tu_attr_int(fc, "transB", 1);
    tu_output(m, "y");
    sfp_error_t err = {0};
    sfp_groups_t *gs = NULL;
    sfp_removal_t *r = NULL;
    TU_OK(&err, model_validate(m, &err));
    TU_OK(&err, model_infer_shapes(m, 1, &err));
    TU_OK(&err, groups_find(m, &gs, &err));
    TU_OK(&err, removal_create(gs, &r, &err));
    TU_OK(&err, prune_select_l2(m, gs, 0.5, NULL, r, &err));
    TU_OK(&err, surgery_apply(m, gs, r, &err));
    /* each Conv now reads a bias of its own, of 2 channels */
    const sfp_graph_t *g = &m->graph;
    int seen[3];
    for (int i = 0; i < 3; i++) {
        int id = graph_find_value(g, outs[i]);
        const sfp_node_t *n = &g->nodes[g->values[id].producer];
        seen[i] = n->inputs[2];
        assert_int_equal(g->values[seen[i]].init->dims[0], 2);
        for (int k = 0; k < i; k++) assert_int_not_equal(seen[k], seen[i]);
    }
    removal_free(r);
    groups_free(gs);
    sfp_model_free(m);
}

static void test_long_shared_reshape_target_is_made_batch_free(void **state)
{
    (void)state;
    /* Three Reshapes share an int32 target [2, -1] of a 700-byte name that
     * froze the export batch 2: each gets its own batch-free copy. */
    char target[701];
    memset(target, 'S', 700);
    target[700] = '\0';
    sfp_model_t *m = tu_model(13);
    tu_input(m, "x", SFP_DT_FLOAT, 3, (int64_t[]){2, 3, 4});
    const int32_t shape[2] = {2, -1};
    tu_init(m, target, SFP_DT_INT32, 1, (int64_t[]){2}, shape);
    const char *outs[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        const char *ins[2] = {"x", target};
        add_node(m, "Reshape", outs[i], 2, ins, outs[i]);
    }
    tu_node(m, "Add", "ab", "a,b", "ab");
    tu_node(m, "Add", "abc", "ab,c", "y");
    tu_output(m, "y");
    sfp_error_t err = {0};
    TU_OK(&err, model_validate(m, &err));
    TU_OK(&err, model_free_batch(m, &err));
    TU_OK(&err, model_infer_shapes(m, 5, &err));
    TU_EXPECT_SHAPE(m, "y", 5, 12);
    sfp_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nesting_deeper_than_the_limit_is_refused_before_unpacking),
        cmocka_unit_test(test_nesting_within_the_limit_reaches_the_loader),
        cmocka_unit_test(test_wrong_wire_type_names_the_byte_and_field),
        cmocka_unit_test(test_memory_budget_refusal_is_named_as_such),
        cmocka_unit_test(test_escape_shows_c0_and_utf8_c1_controls),
        cmocka_unit_test(test_empty_required_output_is_refused),
        cmocka_unit_test(test_absurd_declared_input_is_refused),
        cmocka_unit_test(test_long_shared_bias_name_gets_unique_copies),
        cmocka_unit_test(test_long_shared_reshape_target_is_made_batch_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
