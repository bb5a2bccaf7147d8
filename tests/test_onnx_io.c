/* ONNX I/O (src/onnx): IR <-> ModelProto round trips, what the IR does not
 * model (doc strings, unknown fields) surviving decode -> encode, the tensor
 * encodings (raw_data, typed fields, external data confined to the model's
 * folder), hostile bytes, and the atomic save. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "testutil.h"

#include "onnx.pb-c.h"

#ifdef __SANITIZE_ADDRESS__
/* The huge-dims test expects the library to refuse before allocating; if it
 * does allocate, let malloc return NULL instead of ASan aborting the run. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
#endif

/* ------------------------------------------------------------------------ */
/* A model built through the IR API with a bit of everything.               */

static const uint32_t nan_payload_bits = 0x7fc01234u; /* quiet NaN with a payload */

static sfp_model_t *build_rich_model(void)
{
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    m->ir_version = 7;
    sfp_opset_t *ops = realloc(m->opsets, 2 * sizeof *ops);
    assert_non_null(ops);
    m->opsets = ops;
    m->opsets[1].domain = strdup("com.example");
    m->opsets[1].version = 1;
    m->n_opsets = 2;
    free(m->producer_name);
    m->producer_name = strdup("pytorch");
    m->producer_version = strdup("2.1.0");
    TU_OK(&err, sfp_model_meta_set(m, "onnx_sfp.mean", "0.5,0.5,0.5", &err));
    TU_OK(&err, sfp_model_meta_set(m, "author", "tests", &err));

    const int64_t x_dims[] = {-1, 3, 8, 8}, w_dims[] = {4, 3, 3, 3}, b_dims[] = {4};
    tu_input(m, "x", SFP_DT_FLOAT, 4, x_dims);
    int w = tu_init_f32(m, "w", 4, w_dims, NULL, 1);
    float *wp = m->graph.values[w].init->data;
    wp[0] = -0.0f;
    wp[1] = 1e-40f; /* subnormal */
    wp[2] = FLT_MAX;
    wp[3] = -INFINITY;
    memcpy(&wp[4], &nan_payload_bits, 4);
    tu_init_f32(m, "b", 1, b_dims, NULL, 2);
    const int8_t q[] = {-128, -1, 0, 1, 127};
    const int64_t q_dims[] = {5};
    tu_init(m, "q", SFP_DT_INT8, 1, q_dims, q);
    const int64_t target[] = {0, -1};
    tu_init_i64(m, "shape", 2, target);
    const uint8_t flags[] = {1, 0, 1};
    const int64_t f_dims[] = {3};
    tu_init(m, "flags", SFP_DT_BOOL, 1, f_dims, flags);
    const uint16_t halves[] = {0x3c00, 0xc000};
    const int64_t h_dims[] = {2};
    tu_init(m, "h", SFP_DT_FLOAT16, 1, h_dims, halves);
    const double doubles[] = {1.0 / 3.0, -2.5e300};
    tu_init(m, "d", SFP_DT_DOUBLE, 1, h_dims, doubles);
    const float maxv = 6.0f;
    tu_init(m, "maxv", SFP_DT_FLOAT, 0, NULL, &maxv);

    sfp_node_t *n = tu_node(m, "Conv", "conv0", "x,w,b", "c");
    const int64_t k33[] = {3, 3}, p1[] = {1, 1, 1, 1}, s1[] = {1, 1};
    tu_attr_ints(n, "kernel_shape", 2, k33);
    tu_attr_ints(n, "pads", 4, p1);
    tu_attr_ints(n, "strides", 2, s1);
    tu_attr_int(n, "group", 1);
    tu_attr_string(n, "auto_pad", "NOTSET");
    n = tu_node(m, "LeakyRelu", "act", "c", "r");
    tu_attr_float(n, "alpha", 0.1f);
    tu_node(m, "Clip", "clip", "r,,maxv", "k"); /* omitted optional input in the middle */
    n = tu_node(m, "Constant", "const0", "", "k2");
    sfp_tensor_t *t = NULL;
    const int64_t three = 3;
    TU_OK(&err, sfp_tensor_create("const0_value", SFP_DT_INT64, 1, &three, &t, &err));
    ((int64_t *)t->data)[0] = 7;
    ((int64_t *)t->data)[1] = -8;
    ((int64_t *)t->data)[2] = INT64_MAX;
    TU_OK(&err, node_set_attr_tensor(n, "value", t, &err));
    tu_node(m, "Identity", "", "c", "c2"); /* a node without a name */
    n = tu_node(m, "Custom", "custom", "k,k2,q,flags,h,d,c2,shape", "y");
    free(n->domain);
    n->domain = strdup("com.example");
    const int64_t extremes[] = {INT64_MIN, -1, 0, INT64_MAX};
    tu_attr_ints(n, "extremes", 4, extremes);
    tu_attr_string(n, "label", "tab\there \"quoted\"");
    tu_attr_float(n, "tiny", -1e-30f);
    tu_attr_int(n, "big", INT64_MIN);

    const int64_t y_dims[] = {-1, 4, 8, 8};
    tu_output(m, "y");
    tu_declare(m, "y", SFP_DT_FLOAT, 4, y_dims);
    tu_declare(m, "r", SFP_DT_FLOAT, 4, y_dims);
    m->graph.values[graph_find_value(&m->graph, "r")].flags |= SFP_VAL_VINFO;
    return m;
}

static void expect_same_tensor(const sfp_tensor_t *a, const sfp_tensor_t *b, const char *what)
{
    if (!a || !b) {
        print_error("%s: tensor missing on one side\n", what);
        fail();
    }
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->ndim, b->ndim);
    for (int k = 0; k < a->ndim; k++) assert_int_equal(a->dims[k], b->dims[k]);
    assert_int_equal(a->nbytes, b->nbytes);
    if (a->nbytes && memcmp(a->data, b->data, a->nbytes) != 0) {
        print_error("%s: tensor bytes differ\n", what);
        fail();
    }
}

static void expect_same_attr(const sfp_attr_t *a, const sfp_attr_t *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->type, b->type);
    switch (a->type) {
    case SFP_ATTR_INT: assert_true(a->i == b->i); break;
    case SFP_ATTR_FLOAT: assert_memory_equal(&a->f, &b->f, sizeof a->f); break;
    case SFP_ATTR_STRING:
        assert_int_equal(a->s_len, b->s_len);
        assert_memory_equal(a->s, b->s, a->s_len);
        break;
    case SFP_ATTR_INTS:
        assert_int_equal(a->n, b->n);
        for (size_t i = 0; i < a->n; i++) assert_true(a->ints[i] == b->ints[i]);
        break;
    case SFP_ATTR_TENSOR: expect_same_tensor(a->t, b->t, a->name); break;
    default: fail_msg("attribute type %d not expected in this test", (int)a->type);
    }
}

/* Same IR up to value ids (the decoder numbers values in file order). */
static void expect_same_model(const sfp_model_t *a, const sfp_model_t *b)
{
    const sfp_graph_t *ga = &a->graph, *gb = &b->graph;
    assert_true(a->ir_version == b->ir_version);
    assert_int_equal(a->n_opsets, b->n_opsets);
    for (int i = 0; i < a->n_opsets; i++) {
        assert_string_equal(a->opsets[i].domain, b->opsets[i].domain);
        assert_true(a->opsets[i].version == b->opsets[i].version);
    }
    assert_int_equal(a->n_meta, b->n_meta);
    for (int i = 0; i < a->n_meta; i++) {
        assert_string_equal(a->meta[i].key, b->meta[i].key);
        assert_string_equal(a->meta[i].value, b->meta[i].value);
    }
    assert_string_equal(a->producer_name, b->producer_name);
    assert_string_equal(a->producer_version, b->producer_version);
    assert_string_equal(ga->name, gb->name);

    assert_int_equal(ga->n_values, gb->n_values);
    for (int i = 0; i < ga->n_values; i++) {
        const sfp_value_t *va = &ga->values[i];
        int j = graph_find_value(gb, va->name);
        if (j < 0) fail_msg("value '%s' lost", va->name);
        const sfp_value_t *vb = &gb->values[j];
        assert_int_equal(va->flags, vb->flags);
        assert_int_equal(va->decl.dtype, vb->decl.dtype);
        assert_int_equal(va->decl.rank, vb->decl.rank);
        for (int k = 0; k < va->decl.rank; k++) {
            assert_true(va->decl.dims[k] == vb->decl.dims[k]);
            if (va->decl.params[k]) assert_string_equal(va->decl.params[k], vb->decl.params[k]);
            else assert_null(vb->decl.params[k]);
        }
        assert_int_equal(!!va->init, !!vb->init);
        if (va->init) {
            expect_same_tensor(va->init, vb->init, va->name);
            assert_string_equal(vb->init->name, va->name);
        }
    }
    assert_int_equal(ga->n_inputs, gb->n_inputs);
    for (int i = 0; i < ga->n_inputs; i++)
        assert_string_equal(ga->values[ga->inputs[i]].name, gb->values[gb->inputs[i]].name);
    assert_int_equal(ga->n_outputs, gb->n_outputs);
    for (int i = 0; i < ga->n_outputs; i++)
        assert_string_equal(ga->values[ga->outputs[i]].name, gb->values[gb->outputs[i]].name);
    assert_int_equal(ga->n_inits, gb->n_inits);
    for (int i = 0; i < ga->n_inits; i++)
        assert_string_equal(ga->values[ga->inits[i]].name, gb->values[gb->inits[i]].name);

    assert_int_equal(ga->n_nodes, gb->n_nodes);
    for (int i = 0; i < ga->n_nodes; i++) {
        const sfp_node_t *na = &ga->nodes[i], *nb = &gb->nodes[i];
        assert_string_equal(na->name, nb->name);
        assert_string_equal(na->op_type, nb->op_type);
        assert_string_equal(na->domain, nb->domain);
        assert_int_equal(na->n_inputs, nb->n_inputs);
        for (int k = 0; k < na->n_inputs; k++) {
            if (na->inputs[k] < 0) assert_int_equal(nb->inputs[k], -1);
            else assert_string_equal(ga->values[na->inputs[k]].name, gb->values[nb->inputs[k]].name);
        }
        assert_int_equal(na->n_outputs, nb->n_outputs);
        for (int k = 0; k < na->n_outputs; k++)
            assert_string_equal(ga->values[na->outputs[k]].name, gb->values[nb->outputs[k]].name);
        assert_int_equal(na->n_attrs, nb->n_attrs);
        for (int k = 0; k < na->n_attrs; k++) expect_same_attr(&na->attrs[k], &nb->attrs[k]);
        int p = graph_find_value(gb, ga->values[na->outputs[0]].name);
        assert_int_equal(gb->values[p].producer, i);
    }
}

static void test_ir_model_survives_encode_and_decode(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = build_rich_model(), *back = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    TU_OK(&err, sfp_model_encode(m, &buf, &len, &err));
    TU_OK(&err, onnx_decode_model(buf, len, "rich.onnx", &back, &err));
    expect_same_model(m, back);
    assert_string_equal(back->path, "rich.onnx");
    free(buf);
    sfp_model_free(back);
    sfp_model_free(m);
}

/* A second encode of the decoded model gives the same bytes: nothing drifts
 * when a model goes through the tool twice. */
static void test_encode_after_decode_gives_identical_bytes(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = build_rich_model(), *back = NULL;
    uint8_t *first = NULL, *second = NULL;
    size_t first_len = 0, second_len = 0;
    TU_OK(&err, sfp_model_encode(m, &first, &first_len, &err));
    TU_OK(&err, onnx_decode_model(first, first_len, NULL, &back, &err));
    TU_OK(&err, sfp_model_encode(back, &second, &second_len, &err));
    assert_int_equal(first_len, second_len);
    assert_memory_equal(first, second, first_len);
    free(first);
    free(second);
    sfp_model_free(back);
    sfp_model_free(m);
}

/* ------------------------------------------------------------------------ */
/* A minimal ModelProto as protobuf-c structs: x [1,4] + w [4] -> y (Add),   */
/* opset 13. Tests edit fields, then pack.                                   */

typedef struct kit {
    Onnx__ModelProto model;
    Onnx__OperatorSetIdProto opset, *opsets[1];
    Onnx__GraphProto graph;
    Onnx__NodeProto node, *nodes[1];
    char *node_in[2], *node_out[1];
    Onnx__TensorProto init, *inits[1];
    int64_t init_dims[1];
    float init_floats[4];
    Onnx__ValueInfoProto vin, vout, *ins[1], *outs[1];
    Onnx__TypeProto tin, tout;
    Onnx__TypeProto__Tensor ttin, ttout;
    Onnx__TensorShapeProto sin, sout;
    Onnx__TensorShapeProto__Dimension din[2], dout[2], *pdin[2], *pdout[2];
} kit_t;

static void kit_value_info(Onnx__ValueInfoProto *vi, const char *name, Onnx__TypeProto *tp,
                           Onnx__TypeProto__Tensor *tt, Onnx__TensorShapeProto *sp,
                           Onnx__TensorShapeProto__Dimension *d, Onnx__TensorShapeProto__Dimension **pd)
{
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sp);
    vi->name = (char *)name;
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sp;
    sp->n_dim = 2;
    sp->dim = pd;
    for (int i = 0; i < 2; i++) {
        onnx__tensor_shape_proto__dimension__init(&d[i]);
        d[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d[i].dim_value = i == 0 ? 1 : 4;
        pd[i] = &d[i];
    }
}

static void kit_init(kit_t *k)
{
    memset(k, 0, sizeof *k);
    onnx__model_proto__init(&k->model);
    k->model.has_ir_version = 1;
    k->model.ir_version = 8;
    k->model.producer_name = (char *)"kit";
    onnx__operator_set_id_proto__init(&k->opset);
    k->opset.domain = (char *)"";
    k->opset.has_version = 1;
    k->opset.version = 13;
    k->opsets[0] = &k->opset;
    k->model.n_opset_import = 1;
    k->model.opset_import = k->opsets;
    onnx__graph_proto__init(&k->graph);
    k->graph.name = (char *)"g";
    k->model.graph = &k->graph;

    onnx__node_proto__init(&k->node);
    k->node.op_type = (char *)"Add";
    k->node.name = (char *)"add0";
    k->node_in[0] = (char *)"x";
    k->node_in[1] = (char *)"w";
    k->node_out[0] = (char *)"y";
    k->node.n_input = 2;
    k->node.input = k->node_in;
    k->node.n_output = 1;
    k->node.output = k->node_out;
    k->nodes[0] = &k->node;
    k->graph.n_node = 1;
    k->graph.node = k->nodes;

    onnx__tensor_proto__init(&k->init);
    k->init.name = (char *)"w";
    k->init_dims[0] = 4;
    k->init.n_dims = 1;
    k->init.dims = k->init_dims;
    k->init.has_data_type = 1;
    k->init.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    const float values[4] = {0.5f, -1.25f, 3.0f, 1e-3f};
    memcpy(k->init_floats, values, sizeof values);
    k->init.has_raw_data = 1;
    k->init.raw_data.data = (uint8_t *)k->init_floats;
    k->init.raw_data.len = sizeof k->init_floats;
    k->inits[0] = &k->init;
    k->graph.n_initializer = 1;
    k->graph.initializer = k->inits;

    kit_value_info(&k->vin, "x", &k->tin, &k->ttin, &k->sin, k->din, k->pdin);
    kit_value_info(&k->vout, "y", &k->tout, &k->ttout, &k->sout, k->dout, k->pdout);
    k->ins[0] = &k->vin;
    k->outs[0] = &k->vout;
    k->graph.n_input = 1;
    k->graph.input = k->ins;
    k->graph.n_output = 1;
    k->graph.output = k->outs;
}

static uint8_t *kit_pack(const kit_t *k, size_t *len)
{
    *len = onnx__model_proto__get_packed_size(&k->model);
    uint8_t *buf = malloc(*len + 64); /* room for bytes appended by tests */
    assert_non_null(buf);
    assert_int_equal(onnx__model_proto__pack(&k->model, buf), *len);
    return buf;
}

/* Decodes the kit's bytes; the test fails when decoding fails. */
static sfp_model_t *kit_decode(const kit_t *k)
{
    sfp_error_t err = {0};
    size_t len = 0;
    uint8_t *buf = kit_pack(k, &len);
    sfp_model_t *m = NULL;
    TU_OK(&err, onnx_decode_model(buf, len, "kit.onnx", &m, &err));
    free(buf);
    return m;
}

static int kit_decode_rc(const kit_t *k, const char *path, sfp_error_t *err)
{
    size_t len = 0;
    uint8_t *buf = kit_pack(k, &len);
    sfp_model_t *m = NULL;
    int rc = onnx_decode_model(buf, len, path, &m, err);
    free(buf);
    sfp_model_free(m);
    return rc;
}

static const sfp_tensor_t *init_of(const sfp_model_t *m, const char *name)
{
    int id = graph_find_value(&m->graph, name);
    assert_true(id >= 0);
    assert_non_null(m->graph.values[id].init);
    return m->graph.values[id].init;
}

/* Decode, encode, unpack with protobuf-c (caller frees with free_unpacked). */
static Onnx__ModelProto *round_trip_proto(const uint8_t *buf, size_t len, uint8_t **out, size_t *out_len)
{
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    TU_OK(&err, onnx_decode_model(buf, len, "in.onnx", &m, &err));
    TU_OK(&err, sfp_model_encode(m, out, out_len, &err));
    sfp_model_free(m);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, *out_len, *out);
    assert_non_null(mp);
    return mp;
}

static int contains_bytes(const uint8_t *hay, size_t hay_len, const uint8_t *needle, size_t n)
{
    for (size_t i = 0; i + n <= hay_len; i++)
        if (memcmp(hay + i, needle, n) == 0) return 1;
    return 0;
}

static void test_unknown_field_appended_to_model_survives(void **state)
{
    (void)state;
    kit_t k;
    kit_init(&k);
    size_t len = 0;
    uint8_t *buf = kit_pack(&k, &len);
    /* field 99, wire type 0 (varint): tag (99 << 3) = 792 = 0x98 0x06; value 12345 = 0xb9 0x60 */
    const uint8_t field99[] = {0x98, 0x06, 0xb9, 0x60};
    memcpy(buf + len, field99, sizeof field99);
    len += sizeof field99;
    uint8_t *out = NULL;
    size_t out_len = 0;
    Onnx__ModelProto *mp = round_trip_proto(buf, len, &out, &out_len);
    assert_true(contains_bytes(out, out_len, field99, sizeof field99));
    assert_int_equal(mp->base.n_unknown_fields, 1);
    assert_int_equal(mp->base.unknown_fields[0].tag, 99);
    assert_int_equal(mp->base.unknown_fields[0].wire_type, PROTOBUF_C_WIRE_TYPE_VARINT);
    assert_int_equal(mp->base.unknown_fields[0].len, 2);
    assert_memory_equal(mp->base.unknown_fields[0].data, field99 + 2, 2);
    onnx__model_proto__free_unpacked(mp, NULL);
    free(out);
    free(buf);
}

/* Unknown fields of newer ONNX inside the graph, a node and an initializer
 * (three wire types) come back in the same messages. */
static void test_unknown_fields_of_nested_messages_survive(void **state)
{
    (void)state;
    kit_t k;
    kit_init(&k);
    uint8_t node_body[] = {3, 'a', 'b', 'c'}; /* length-prefixed: length then bytes */
    uint8_t init_body[] = {0x01, 0x02, 0x03, 0x04};
    uint8_t graph_body[] = {0x2a};
    ProtobufCMessageUnknownField node_f = {1000, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, sizeof node_body, node_body};
    ProtobufCMessageUnknownField init_f = {77, PROTOBUF_C_WIRE_TYPE_32BIT, sizeof init_body, init_body};
    ProtobufCMessageUnknownField graph_f = {500, PROTOBUF_C_WIRE_TYPE_VARINT, sizeof graph_body, graph_body};
    k.node.base.n_unknown_fields = 1;
    k.node.base.unknown_fields = &node_f;
    k.init.base.n_unknown_fields = 1;
    k.init.base.unknown_fields = &init_f;
    k.graph.base.n_unknown_fields = 1;
    k.graph.base.unknown_fields = &graph_f;
    size_t len = 0, out_len = 0;
    uint8_t *buf = kit_pack(&k, &len), *out = NULL;
    Onnx__ModelProto *mp = round_trip_proto(buf, len, &out, &out_len);
    const ProtobufCMessageUnknownField *expect[3] = {&graph_f, &node_f, &init_f};
    const ProtobufCMessage *where[3] = {&mp->graph->base, &mp->graph->node[0]->base, &mp->graph->initializer[0]->base};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(where[i]->n_unknown_fields, 1);
        const ProtobufCMessageUnknownField *f = &where[i]->unknown_fields[0];
        assert_int_equal(f->tag, expect[i]->tag);
        assert_int_equal(f->wire_type, expect[i]->wire_type);
        assert_int_equal(f->len, expect[i]->len);
        assert_memory_equal(f->data, expect[i]->data, f->len);
    }
    onnx__model_proto__free_unpacked(mp, NULL);
    free(out);
    free(buf);
}

/* Doc strings and other fields the IR does not model, on every level. */
static void test_doc_strings_and_unmodelled_fields_survive(void **state)
{
    (void)state;
    kit_t k;
    kit_init(&k);
    k.model.doc_string = (char *)"model doc";
    k.model.domain = (char *)"ai.tests";
    k.model.has_model_version = 1;
    k.model.model_version = 42;
    k.graph.doc_string = (char *)"graph doc";
    k.node.doc_string = (char *)"node doc";
    k.init.doc_string = (char *)"initializer doc";
    k.vin.doc_string = (char *)"input doc";
    Onnx__AttributeProto attr, *attrs[1] = {&attr};
    onnx__attribute_proto__init(&attr);
    attr.name = (char *)"tag";
    attr.has_type = 1;
    attr.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    attr.has_i = 1;
    attr.i = 5;
    attr.doc_string = (char *)"attribute doc";
    k.node.n_attribute = 1;
    k.node.attribute = attrs;
    size_t len = 0, out_len = 0;
    uint8_t *buf = kit_pack(&k, &len), *out = NULL;
    Onnx__ModelProto *mp = round_trip_proto(buf, len, &out, &out_len);
    assert_string_equal(mp->doc_string, "model doc");
    assert_string_equal(mp->domain, "ai.tests");
    assert_true(mp->has_model_version && mp->model_version == 42);
    assert_string_equal(mp->graph->doc_string, "graph doc");
    assert_string_equal(mp->graph->node[0]->doc_string, "node doc");
    assert_string_equal(mp->graph->initializer[0]->doc_string, "initializer doc");
    assert_string_equal(mp->graph->input[0]->doc_string, "input doc");
    assert_int_equal(mp->graph->node[0]->n_attribute, 1);
    assert_string_equal(mp->graph->node[0]->attribute[0]->doc_string, "attribute doc");
    assert_true(mp->graph->node[0]->attribute[0]->i == 5);
    /* the modelled fields are written once, not duplicated by the residue */
    assert_int_equal(mp->n_opset_import, 1);
    assert_int_equal(mp->graph->n_node, 1);
    assert_int_equal(mp->graph->node[0]->n_input, 2);
    assert_int_equal(mp->graph->initializer[0]->raw_data.len, 16);
    assert_int_equal(mp->graph->initializer[0]->n_dims, 1);
    onnx__model_proto__free_unpacked(mp, NULL);
    free(out);
    free(buf);
}

/* ------------------------------------------------------------------------ */
/* Tensor encodings                                                          */

static void test_raw_data_and_float_data_decode_to_same_floats(void **state)
{
    (void)state;
    kit_t k;
    kit_init(&k);
    sfp_model_t *raw = kit_decode(&k);
    k.init.has_raw_data = 0;
    k.init.n_float_data = 4;
    k.init.float_data = k.init_floats;
    sfp_model_t *typed = kit_decode(&k);
    const sfp_tensor_t *a = init_of(raw, "w"), *b = init_of(typed, "w");
    expect_same_tensor(a, b, "w");
    assert_memory_equal(a->data, k.init_floats, sizeof k.init_floats); /* bit-exact */
    sfp_model_free(raw);
    sfp_model_free(typed);
}

static void test_int64_data_decodes_like_raw_data(void **state)
{
    (void)state;
    kit_t k;
    kit_init(&k);
    int64_t values[4] = {INT64_MIN, -1, 0, INT64_MAX};
    k.init.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    k.init.raw_data.data = (uint8_t *)values;
    k.init.raw_data.len = sizeof values;
    sfp_model_t *raw = kit_decode(&k);
    k.init.has_raw_data = 0;
    k.init.n_int64_data = 4;
    k.init.int64_data = values;
    sfp_model_t *typed = kit_decode(&k);
    expect_same_tensor(init_of(raw, "w"), init_of(typed, "w"), "w");
    assert_memory_equal(init_of(typed, "w")->data, values, sizeof values);
    sfp_model_free(raw);
    sfp_model_free(typed);
}

/* ONNX stores int8, uint8 and bool in int32_data, one value per int32. */
static void test_int32_data_holds_int8_uint8_and_bool(void **state)
{
    (void)state;
    static const struct {
        int32_t dtype;
        int32_t stored[4];
        uint8_t expect[4];
    } cases[] = {
        {ONNX__TENSOR_PROTO__DATA_TYPE__INT8, {-128, -1, 0, 127}, {0x80, 0xff, 0x00, 0x7f}},
        {ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, {0, 1, 200, 255}, {0, 1, 200, 255}},
        {ONNX__TENSOR_PROTO__DATA_TYPE__BOOL, {1, 0, 0, 1}, {1, 0, 0, 1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        kit_t k;
        kit_init(&k);
        int32_t stored[4];
        memcpy(stored, cases[c].stored, sizeof stored);
        k.init.data_type = cases[c].dtype;
        k.init.has_raw_data = 0;
        k.init.n_int32_data = 4;
        k.init.int32_data = stored;
        sfp_model_t *typed = kit_decode(&k);
        const sfp_tensor_t *t = init_of(typed, "w");
        assert_int_equal(t->nbytes, 4);
        assert_memory_equal(t->data, cases[c].expect, 4);
        /* and raw_data with the same bytes decodes identically */
        uint8_t raw[4];
        memcpy(raw, cases[c].expect, 4);
        k.init.n_int32_data = 0;
        k.init.has_raw_data = 1;
        k.init.raw_data.data = raw;
        k.init.raw_data.len = 4;
        sfp_model_t *rawm = kit_decode(&k);
        expect_same_tensor(t, init_of(rawm, "w"), "w");
        sfp_model_free(typed);
        sfp_model_free(rawm);
    }
}

static void test_raw_data_length_mismatch_is_bad_model_naming_tensor(void **state)
{
    (void)state;
    kit_t k;
    kit_init(&k);
    k.init.name = (char *)"conv1.weight";
    k.node_in[1] = (char *)"conv1.weight";
    k.init.raw_data.len = 12; /* dims [4] need 16 bytes */
    sfp_error_t err = {0};
    int rc = kit_decode_rc(&k, "short.onnx", &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "conv1.weight", "short.onnx");
    assert_true(tu_msg_has_number(err.msg, 12) && tu_msg_has_number(err.msg, 16));
}

static void test_typed_value_count_mismatch_is_bad_model(void **state)
{
    (void)state;
    kit_t k;
    kit_init(&k);
    k.init.has_raw_data = 0;
    k.init.n_float_data = 3;
    k.init.float_data = k.init_floats;
    sfp_error_t err = {0};
    int rc = kit_decode_rc(&k, "few.onnx", &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'w'", "few.onnx");
}

static void test_negative_dims_are_bad_model(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    kit_t k;
    kit_init(&k);
    int64_t dims[2] = {-2, -2};
    k.init.n_dims = 2;
    k.init.dims = dims;
    k.init.raw_data.len = 16;
    int rc = kit_decode_rc(&k, "neg.onnx", &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'w'", "neg.onnx");

    kit_init(&k); /* and in a declared graph input shape */
    k.din[1].dim_value = -4;
    memset(&err, 0, sizeof err);
    rc = kit_decode_rc(&k, "neg_decl.onnx", &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'x'", "neg_decl.onnx");
}

/* ------------------------------------------------------------------------ */
/* Hostile bytes                                                             */

static void test_empty_buffer_is_bad_model_naming_path(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    uint8_t byte = 0;
    int rc = onnx_decode_model(&byte, 0, "empty.onnx", &m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "empty.onnx");
    assert_null(m);
    memset(&err, 0, sizeof err);
    rc = sfp_model_load_bytes(&byte, 0, "empty.onnx", &m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "empty.onnx");
}

/* rc of a hostile load: success, or a bad/unsupported model whose one-line
 * message names the source. */
static void expect_clean_outcome(int rc, const sfp_error_t *err, const char *path, const char *what, size_t at)
{
    if (rc == 0) return;
    if ((rc != SFP_EBADMODEL && rc != SFP_EUNSUPPORTED) || !strstr(err->msg, path) || !tu_msg_is_clean(err->msg))
        fail_msg("%s %zu: rc %d: %s", what, at, rc, err->msg);
}

static void test_random_bytes_are_refused_cleanly(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    uint8_t buf[512];
    for (int round = 0; round < 3000; round++) {
        size_t len = 1 + tu_rand(&seed) % sizeof buf;
        for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)tu_rand(&seed);
        sfp_error_t err = {0};
        sfp_model_t *m = NULL;
        int rc = sfp_model_load_bytes(buf, len, "random.onnx", &m, &err);
        if (rc == 0) fail_msg("random buffer %d loaded as a model", round);
        expect_clean_outcome(rc, &err, "random.onnx", "random buffer", (size_t)round);
    }
}

/* A small valid CNN (Conv, BN, Relu, GAP, Flatten, Gemm) with metadata. */
static sfp_model_t *build_small_cnn(void)
{
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    const int64_t x_dims[] = {1, 3, 8, 8}, w_dims[] = {4, 3, 3, 3}, c4[] = {4}, fc_dims[] = {5, 4}, c5[] = {5};
    tu_input(m, "x", SFP_DT_FLOAT, 4, x_dims);
    tu_init_f32(m, "w", 4, w_dims, NULL, 1);
    tu_init_f32(m, "gamma", 1, c4, NULL, 2);
    tu_init_f32(m, "beta", 1, c4, NULL, 3);
    tu_init_f32(m, "mean", 1, c4, NULL, 4);
    const float var[] = {1.0f, 0.5f, 2.0f, 0.25f};
    tu_init_f32(m, "var", 1, c4, var, 0);
    tu_init_f32(m, "fc_w", 2, fc_dims, NULL, 5);
    tu_init_f32(m, "fc_b", 1, c5, NULL, 6);
    sfp_node_t *n = tu_node(m, "Conv", "conv", "x,w", "c");
    const int64_t p1[] = {1, 1, 1, 1};
    tu_attr_ints(n, "pads", 4, p1);
    tu_node(m, "BatchNormalization", "bn", "c,gamma,beta,mean,var", "b");
    tu_node(m, "Relu", "relu", "b", "r");
    tu_node(m, "GlobalAveragePool", "gap", "r", "g");
    tu_node(m, "Flatten", "flat", "g", "f");
    n = tu_node(m, "Gemm", "fc", "f,fc_w,fc_b", "y");
    tu_attr_int(n, "transB", 1);
    tu_output(m, "y");
    TU_OK(&err, sfp_model_meta_set(m, "onnx_sfp.std", "0.25", &err));
    return m;
}

/* Reads a varint at buf[*p] (the buffer is one we encoded: well formed). */
static uint64_t wire_varint(const uint8_t *buf, size_t *p)
{
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
        uint8_t byte = buf[(*p)++];
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) return v;
    }
}

/* Offsets where top-level ModelProto fields end: cutting there leaves a
 * well-formed (if incomplete) message. Returns the count. */
static size_t top_level_boundaries(const uint8_t *buf, size_t len, size_t *out, size_t max)
{
    size_t p = 0, n = 0;
    while (p < len && n < max) {
        uint64_t tag = wire_varint(buf, &p);
        switch (tag & 7) {
        case 0: wire_varint(buf, &p); break;
        case 1: p += 8; break;
        case 5: p += 4; break;
        case 2: {
            uint64_t body = wire_varint(buf, &p);
            p += (size_t)body;
            break;
        }
        default: fail_msg("unexpected wire type in a model we encoded");
        }
        out[n++] = p;
    }
    return n;
}

static void test_truncated_model_is_refused_at_every_cut(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = build_small_cnn();
    uint8_t *buf = NULL;
    size_t len = 0, bounds[64];
    TU_OK(&err, sfp_model_encode(m, &buf, &len, &err));
    sfp_model_free(m);
    size_t n_bounds = top_level_boundaries(buf, len, bounds, 64);
    /* The whole buffer loads (the control for every cut below). */
    TU_OK(&err, sfp_model_load_bytes(buf, len, "cut.onnx", &m, &err));
    sfp_model_free(m);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* exact size, so ASan sees any over-read */
        assert_non_null(copy);
        memcpy(copy, buf, cut);
        memset(&err, 0, sizeof err);
        m = NULL;
        int rc = sfp_model_load_bytes(copy, cut, "cut.onnx", &m, &err);
        free(copy);
        if (rc == 0) {
            int at_boundary = 0;
            for (size_t b = 0; b < n_bounds; b++) at_boundary |= bounds[b] == cut;
            sfp_model_free(m);
            if (!at_boundary) fail_msg("model cut at byte %zu of %zu loaded", cut, len);
            continue;
        }
        expect_clean_outcome(rc, &err, "cut.onnx", "cut at byte", cut);
    }
    free(buf);
}

/* Byte mutations of a valid model: any outcome but a crash, a leak or an
 * error other than bad/unsupported model. */
static void test_mutated_model_never_crashes(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = build_small_cnn();
    uint8_t *buf = NULL;
    size_t len = 0;
    TU_OK(&err, sfp_model_encode(m, &buf, &len, &err));
    sfp_model_free(m);
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    uint32_t seed = 777;
    int loaded = 0, refused = 0;
    for (int round = 0; round < 20000; round++) {
        memcpy(copy, buf, len);
        int flips = 1 + (int)(tu_rand(&seed) % 3);
        for (int f = 0; f < flips; f++) copy[tu_rand(&seed) % len] = (uint8_t)tu_rand(&seed);
        memset(&err, 0, sizeof err);
        m = NULL;
        int rc = sfp_model_load_bytes(copy, len, "mutant.onnx", &m, &err);
        if (rc == 0) sfp_model_free(m);
        expect_clean_outcome(rc, &err, "mutant.onnx", "mutation round", (size_t)round);
        rc == 0 ? loaded++ : refused++;
    }
    /* both outcomes occur: the mutants reach validation and shape inference */
    assert_true(loaded > 100 && refused > 100);
    free(copy);
    free(buf);
}

static void test_endless_varint_names_byte_offset(void **state)
{
    (void)state;
    uint8_t endless[10];
    memset(endless, 0xff, sizeof endless);
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    int rc = onnx_decode_model(endless, sizeof endless, "varint.onnx", &m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "varint.onnx", "byte 0");

    /* after a valid model: the offset is where the valid part ends */
    kit_t k;
    kit_init(&k);
    size_t len = 0;
    uint8_t *buf = kit_pack(&k, &len);
    memcpy(buf + len, endless, sizeof endless);
    char want[32];
    snprintf(want, sizeof want, "byte %zu", len);
    memset(&err, 0, sizeof err);
    rc = onnx_decode_model(buf, len + sizeof endless, "varint.onnx", &m, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "varint.onnx", want);
    free(buf);
}

/* ------------------------------------------------------------------------ */
/* External data                                                             */

typedef struct ext {
    char root[64];          /* temp folder */
    char model_dir[128];    /* root/m: the model's folder */
    char model_path[160];   /* root/m/model.onnx (need not exist for decode) */
    Onnx__StringStringEntryProto kv[3], *kvp[3];
} ext_t;

static void ext_setup(ext_t *e, kit_t *k, const char *location, const char *offset, const char *length)
{
    tu_tmpdir(e->root, sizeof e->root);
    snprintf(e->model_dir, sizeof e->model_dir, "%s/m", e->root);
    assert_int_equal(mkdir(e->model_dir, 0755), 0);
    snprintf(e->model_path, sizeof e->model_path, "%s/model.onnx", e->model_dir);
    kit_init(k);
    k->init.has_raw_data = 0;
    k->init.has_data_location = 1;
    k->init.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    const char *keys[3] = {"location", "offset", "length"}, *vals[3] = {location, offset, length};
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        if (!vals[i]) continue;
        onnx__string_string_entry_proto__init(&e->kv[n]);
        e->kv[n].key = (char *)keys[i];
        e->kv[n].value = (char *)vals[i];
        e->kvp[n] = &e->kv[n];
        n++;
    }
    k->init.n_external_data = n;
    k->init.external_data = e->kvp;
}

static void ext_write(const ext_t *e, const char *rel, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", e->root, rel);
    tu_write_file(path, data, len);
}

static const float ext_floats[4] = {1.5f, -2.0f, 0.125f, 1e-7f};

static void test_external_data_loads_floats_from_model_folder(void **state)
{
    (void)state;
    ext_t e;
    kit_t k;
    ext_setup(&e, &k, "w.bin", NULL, NULL);
    ext_write(&e, "m/w.bin", ext_floats, sizeof ext_floats);
    size_t len = 0;
    uint8_t *buf = kit_pack(&k, &len);
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    TU_OK(&err, onnx_decode_model(buf, len, e.model_path, &m, &err));
    const sfp_tensor_t *t = init_of(m, "w");
    assert_int_equal(t->nbytes, sizeof ext_floats);
    assert_memory_equal(t->data, ext_floats, sizeof ext_floats); /* bit-exact */
    sfp_model_free(m);
    free(buf);
    tu_rm_rf(e.root);
}

static void test_external_data_honours_offset_and_length(void **state)
{
    (void)state;
    ext_t e;
    kit_t k;
    ext_setup(&e, &k, "sub/w.bin", "8", "16");
    char sub[200];
    snprintf(sub, sizeof sub, "%s/sub", e.model_dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    uint8_t file[8 + sizeof ext_floats + 4];
    memset(file, 0xee, sizeof file);
    memcpy(file + 8, ext_floats, sizeof ext_floats);
    ext_write(&e, "m/sub/w.bin", file, sizeof file);
    size_t len = 0;
    uint8_t *buf = kit_pack(&k, &len);
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    TU_OK(&err, onnx_decode_model(buf, len, e.model_path, &m, &err));
    assert_memory_equal(init_of(m, "w")->data, ext_floats, sizeof ext_floats);
    sfp_model_free(m);
    free(buf);
    tu_rm_rf(e.root);
}

/* Decoding must fail with SFP_EBADMODEL naming tensor 'w' (a macro, so a
 * failure points at the test's line). */
#define expect_external_refused(e, k)                                      \
    do {                                                                   \
        sfp_error_t ext_err_ = {0};                                        \
        int ext_rc_ = kit_decode_rc((k), (e)->model_path, &ext_err_);      \
        TU_EXPECT_ERR(ext_rc_, &ext_err_, SFP_EBADMODEL, "'w'");           \
    } while (0)

static void test_external_data_parent_folder_refused(void **state)
{
    (void)state;
    ext_t e;
    kit_t k;
    ext_setup(&e, &k, "../w.bin", NULL, NULL);
    ext_write(&e, "w.bin", ext_floats, sizeof ext_floats); /* exists, but outside */
    expect_external_refused(&e, &k);
    tu_rm_rf(e.root);
}

static void test_external_data_absolute_path_refused(void **state)
{
    (void)state;
    ext_t e;
    kit_t k;
    char abs_path[256];
    ext_setup(&e, &k, "placeholder", NULL, NULL);
    snprintf(abs_path, sizeof abs_path, "%s/w.bin", e.model_dir); /* even inside the folder */
    e.kv[0].value = abs_path;
    ext_write(&e, "m/w.bin", ext_floats, sizeof ext_floats);
    expect_external_refused(&e, &k);
    tu_rm_rf(e.root);
}

static void test_external_data_symlink_out_of_folder_refused(void **state)
{
    (void)state;
    ext_t e;
    kit_t k;
    ext_setup(&e, &k, "w.bin", NULL, NULL);
    ext_write(&e, "secret.bin", ext_floats, sizeof ext_floats);
    char link_path[256];
    snprintf(link_path, sizeof link_path, "%s/w.bin", e.model_dir);
    assert_int_equal(symlink("../secret.bin", link_path), 0);
    expect_external_refused(&e, &k);
    tu_rm_rf(e.root);
}

static void test_external_data_naming_a_folder_refused(void **state)
{
    (void)state;
    ext_t e;
    kit_t k;
    ext_setup(&e, &k, ".", NULL, NULL); /* the model's folder itself */
    expect_external_refused(&e, &k);
    tu_rm_rf(e.root);
}

static void test_external_data_past_end_of_file_refused(void **state)
{
    (void)state;
    ext_t e;
    kit_t k;
    ext_setup(&e, &k, "w.bin", "4", NULL); /* 4 + 16 bytes from a 16-byte file */
    ext_write(&e, "m/w.bin", ext_floats, sizeof ext_floats);
    expect_external_refused(&e, &k);
    tu_rm_rf(e.root);

    ext_setup(&e, &k, "w.bin", NULL, NULL); /* 16 bytes needed, 12 present */
    ext_write(&e, "m/w.bin", ext_floats, 12);
    expect_external_refused(&e, &k);
    tu_rm_rf(e.root);

    ext_setup(&e, &k, "w.bin", "18446744073709551615", NULL); /* offset near 2^64 */
    ext_write(&e, "m/w.bin", ext_floats, sizeof ext_floats);
    expect_external_refused(&e, &k);
    tu_rm_rf(e.root);
}

/* Dims promising 64 GiB against a 16-byte file: the file cannot hold the
 * data, so the answer is a bad model -- found before allocating anything,
 * as for raw_data (ARCHITECTURE: "tensors are allocated only after their
 * stored data was checked to match the dims"). */
static void test_external_data_huge_dims_refused_before_allocating(void **state)
{
    (void)state;
    ext_t e;
    kit_t k;
    ext_setup(&e, &k, "w.bin", NULL, NULL);
    k.init_dims[0] = (int64_t)1 << 34; /* 2^34 floats = 64 GiB */
    ext_write(&e, "m/w.bin", ext_floats, sizeof ext_floats);
    expect_external_refused(&e, &k);
    tu_rm_rf(e.root);
}

static void test_external_data_refused_without_a_model_folder(void **state)
{
    (void)state;
    kit_t k;
    ext_t e;
    ext_setup(&e, &k, "w.bin", NULL, NULL);
    ext_write(&e, "m/w.bin", ext_floats, sizeof ext_floats);
    sfp_error_t err = {0};
    int rc = kit_decode_rc(&k, NULL, &err); /* bytes from memory: no folder to read from */
    TU_EXPECT_ERR(rc, &err, SFP_EBADMODEL, "'w'");
    tu_rm_rf(e.root);
}

/* ------------------------------------------------------------------------ */
/* Atomic save                                                               */

/* Names in dir other than . and .. (joined with spaces) into out. */
static int list_dir(const char *dir, char *out, size_t size)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int count = 0;
    size_t o = 0;
    out[0] = '\0';
    for (struct dirent *de = readdir(d); de; de = readdir(d)) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        count++;
        o += (size_t)snprintf(out + o, o < size ? size - o : 0, "%s ", de->d_name);
    }
    closedir(d);
    return count;
}

static void test_model_save_replaces_file_and_leaves_no_temp(void **state)
{
    (void)state;
    char dir[64], path[128], names[512];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    tu_write_file(path, "old content", 11);
    sfp_error_t err = {0};
    sfp_model_t *m = build_small_cnn();
    uint8_t *want = NULL;
    size_t want_len = 0, got_len = 0;
    TU_OK(&err, sfp_model_encode(m, &want, &want_len, &err));
    TU_OK(&err, sfp_model_save(m, path, &err));
    uint8_t *got = tu_read_file(path, &got_len);
    assert_non_null(got);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    int n = list_dir(dir, names, sizeof names);
    if (n != 1) fail_msg("folder holds %d entries after the save: %s", n, names);
    /* and what was saved loads back as the same model */
    sfp_model_t *back = NULL;
    TU_OK(&err, sfp_model_load(path, &back, &err));
    assert_int_equal(back->graph.n_nodes, m->graph.n_nodes);
    assert_string_equal(sfp_model_meta_get(back, "onnx_sfp.std"), "0.25");
    sfp_model_free(back);
    free(got);
    free(want);
    sfp_model_free(m);
    tu_rm_rf(dir);
}

static void test_model_save_mode_is_0644_minus_umask(void **state)
{
    (void)state;
    const mode_t masks[] = {022, 027, 077, 002};
    char dir[64], path[128];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    sfp_model_t *m = build_small_cnn();
    sfp_error_t err = {0};
    mode_t saved = umask(022);
    for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++) {
        umask(masks[i]);
        TU_OK(&err, sfp_model_save(m, path, &err));
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        mode_t want = 0644 & ~masks[i];
        if ((st.st_mode & 07777) != want)
            fail_msg("umask %03o: mode %03o, expected %03o", (unsigned)masks[i], (unsigned)(st.st_mode & 07777),
                     (unsigned)want);
    }
    umask(saved);
    sfp_model_free(m);
    tu_rm_rf(dir);
}

/* While a child process saves two different models over one path again and
 * again, every read of the path sees one of them complete. */
static void test_model_save_readers_never_see_a_partial_file(void **state)
{
    (void)state;
    char dir[64], path[128], names[512];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    sfp_error_t err = {0};
    sfp_model_t *a = build_small_cnn(), *b = build_small_cnn();
    TU_OK(&err, sfp_model_meta_set(b, "padding", "make b longer than a, and different", &err));
    uint8_t *bytes_a = NULL, *bytes_b = NULL;
    size_t len_a = 0, len_b = 0;
    TU_OK(&err, sfp_model_encode(a, &bytes_a, &len_a, &err));
    TU_OK(&err, sfp_model_encode(b, &bytes_b, &len_b, &err));
    TU_OK(&err, sfp_model_save(a, path, &err));
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        for (int i = 0; i < 300; i++)
            if (sfp_model_save(i % 2 ? a : b, path, NULL) != 0) _exit(1);
        _exit(0);
    }
    int reads = 0, status = 0;
    for (;;) {
        pid_t done = waitpid(child, &status, WNOHANG);
        size_t len = 0;
        uint8_t *got = tu_read_file(path, &len);
        assert_non_null(got); /* the path never disappears */
        int is_a = len == len_a && !memcmp(got, bytes_a, len);
        int is_b = len == len_b && !memcmp(got, bytes_b, len);
        free(got);
        if (!is_a && !is_b) {
            if (!done) kill(child, SIGKILL), waitpid(child, &status, 0);
            fail_msg("read %d saw %zu bytes that are neither model", reads, len);
        }
        reads++;
        if (done == child) break;
    }
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int n = list_dir(dir, names, sizeof names);
    if (n != 1) fail_msg("folder holds %d entries after the saves: %s", n, names);
    free(bytes_a);
    free(bytes_b);
    sfp_model_free(a);
    sfp_model_free(b);
    tu_rm_rf(dir);
}

static void test_model_save_failure_leaves_target_and_no_temp(void **state)
{
    (void)state;
    char dir[64], target[128], names[512];
    tu_tmpdir(dir, sizeof dir);
    snprintf(target, sizeof target, "%s/model.onnx", dir);
    assert_int_equal(mkdir(target, 0755), 0); /* a folder where the file should go: rename fails */
    sfp_model_t *m = build_small_cnn();
    sfp_error_t err = {0};
    int rc = sfp_model_save(m, target, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EIO, "model.onnx");
    struct stat st;
    assert_int_equal(stat(target, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    int n = list_dir(dir, names, sizeof names);
    if (n != 1) fail_msg("folder holds %d entries after the failed save: %s", n, names);
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/folder/model.onnx", dir);
    memset(&err, 0, sizeof err);
    rc = sfp_model_save(m, missing, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EIO, "model.onnx");
    sfp_model_free(m);
    tu_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ir_model_survives_encode_and_decode),
        cmocka_unit_test(test_encode_after_decode_gives_identical_bytes),
        cmocka_unit_test(test_unknown_field_appended_to_model_survives),
        cmocka_unit_test(test_unknown_fields_of_nested_messages_survive),
        cmocka_unit_test(test_doc_strings_and_unmodelled_fields_survive),
        cmocka_unit_test(test_raw_data_and_float_data_decode_to_same_floats),
        cmocka_unit_test(test_int64_data_decodes_like_raw_data),
        cmocka_unit_test(test_int32_data_holds_int8_uint8_and_bool),
        cmocka_unit_test(test_raw_data_length_mismatch_is_bad_model_naming_tensor),
        cmocka_unit_test(test_typed_value_count_mismatch_is_bad_model),
        cmocka_unit_test(test_negative_dims_are_bad_model),
        cmocka_unit_test(test_empty_buffer_is_bad_model_naming_path),
        cmocka_unit_test(test_random_bytes_are_refused_cleanly),
        cmocka_unit_test(test_truncated_model_is_refused_at_every_cut),
        cmocka_unit_test(test_mutated_model_never_crashes),
        cmocka_unit_test(test_endless_varint_names_byte_offset),
        cmocka_unit_test(test_external_data_loads_floats_from_model_folder),
        cmocka_unit_test(test_external_data_honours_offset_and_length),
        cmocka_unit_test(test_external_data_parent_folder_refused),
        cmocka_unit_test(test_external_data_absolute_path_refused),
        cmocka_unit_test(test_external_data_symlink_out_of_folder_refused),
        cmocka_unit_test(test_external_data_naming_a_folder_refused),
        cmocka_unit_test(test_external_data_past_end_of_file_refused),
        cmocka_unit_test(test_external_data_huge_dims_refused_before_allocating),
        cmocka_unit_test(test_external_data_refused_without_a_model_folder),
        cmocka_unit_test(test_model_save_replaces_file_and_leaves_no_temp),
        cmocka_unit_test(test_model_save_mode_is_0644_minus_umask),
        cmocka_unit_test(test_model_save_readers_never_see_a_partial_file),
        cmocka_unit_test(test_model_save_failure_leaves_target_and_no_temp),
    };
    return cmocka_run_group_tests(tests, NULL, tu_cleanup_tmpdirs);
}
