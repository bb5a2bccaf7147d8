/* libFuzzer harness of the model loader: any byte string goes through
 * sfp_model_load_bytes (decode, validate, batch-free, shape inference); what
 * loads is reported, traced into channel groups, pruned at rate 0.5 and
 * encoded again, and the encoding must load. Failures must be one clean
 * error line; anything else (crash, sanitizer report, abort) is a finding.
 * No file system access: without a path, external data is refused.
 * A custom mutator edits decoded models (op types, edges, attribute values,
 * dims, node order) besides libFuzzer's byte-level mutations, so that the
 * passes behind the decoder (validation, shapes, groups, surgery) see many
 * nearly valid models rather than only broken bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_io.h"

#include "model/model.h"
#include "onnx/onnx.h"
#include "onnxsfp/report.h"
#include "prune/prune.h"
#include "surgery/surgery.h"

#include "fuzz_check.h"

static void prune_and_encode(sfp_model_t *m)
{
    sfp_error_t err = {0};
    sfp_groups_t *gs = NULL;
    sfp_removal_t *r = NULL;
    sfp_report_t *rep = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = groups_find(m, &gs, &err);
    check_error(rc, &err, "groups_find");
    if (rc == 0) check_error(rc = removal_create(gs, &r, &err), &err, "removal_create");
    if (rc == 0) check_error(rc = prune_select_l2(m, gs, 0.5, NULL, r, &err), &err, "prune_select_l2");
    if (rc == 0) check_error(rc = surgery_apply(m, gs, r, &err), &err, "surgery_apply");
    if (rc == 0) check_error(rc = sfp_report_build(m, NULL, &rep, &err), &err, "sfp_report_build (pruned)");
    if (rc == 0) check_error(rc = sfp_model_encode(m, &buf, &len, &err), &err, "sfp_model_encode (pruned)");
    if (rc == 0) {
        sfp_model_t *again = NULL;
        rc = sfp_model_load_bytes(buf, len, NULL, &again, &err);
        if (rc < 0) {
            fprintf(stderr, "the pruned model does not load again: %s\n", err.msg);
            abort();
        }
        sfp_model_free(again);
    }
    free(buf);
    sfp_report_free(rep);
    removal_free(r);
    groups_free(gs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    int rc = sfp_model_load_bytes(data, size, NULL, &m, &err);
    check_error(rc, &err, "sfp_model_load_bytes");
    if (rc < 0) return 0;
    sfp_report_t *rep = NULL;
    check_error(rc = sfp_report_build(m, NULL, &rep, &err), &err, "sfp_report_build");
    sfp_report_free(rep);
    /* What loads must survive a round trip through the encoder. */
    uint8_t *buf = NULL;
    size_t len = 0;
    check_error(rc = sfp_model_encode(m, &buf, &len, &err), &err, "sfp_model_encode");
    if (rc == 0) {
        sfp_model_t *again = NULL;
        if (sfp_model_load_bytes(buf, len, NULL, &again, &err) < 0) {
            fprintf(stderr, "the re-encoded model does not load: %s\n", err.msg);
            abort();
        }
        sfp_model_free(again);
    }
    free(buf);
    prune_and_encode(m);
    sfp_model_free(m);
    return 0;
}

/* ---- structure-aware mutations ---- */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

static const char *const op_types[] = {
    "Conv", "Relu", "BatchNormalization", "Add", "Mul", "Sub", "Div", "Concat", "Pad", "Slice", "Reshape", "Flatten",
    "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool", "Identity", "Dropout", "Shape", "Gather",
    "Unsqueeze", "Squeeze", "Constant", "ConstantOfShape", "Transpose", "Softmax", "Sigmoid", "Cast", "LSTM",
};
static const int64_t interesting[] = {-1, 0, 1, 2, 3, 4, 7, 8, 64, -2, 1 << 20, (int64_t)1 << 40, INT64_MAX, INT64_MIN};

static unsigned next_rand(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return (*state >> 8) & 0xffffff;
}

/* Pointer edits are undone before free_unpacked (it frees what it allocated). */
typedef struct undo {
    char **slot;
    char *old;
} undo_t;

static int64_t pick_int(unsigned *r, int64_t old)
{
    switch (next_rand(r) % 4) {
    case 0: return (int64_t)((uint64_t)old + 1);
    case 1: return (int64_t)((uint64_t)old - 1);
    default: return interesting[next_rand(r) % (sizeof interesting / sizeof interesting[0])];
    }
}

static void mutate_once(Onnx__GraphProto *g, unsigned *r, undo_t *undo, int *n_undo, size_t *n_node_saved)
{
    unsigned what = next_rand(r) % 9;
    Onnx__NodeProto *n = g->n_node ? g->node[next_rand(r) % g->n_node] : NULL;
    switch (what) {
    case 0: /* op type */
        if (n && *n_undo < 16) {
            undo[*n_undo] = (undo_t){&n->op_type, n->op_type};
            (*n_undo)++;
            n->op_type = (char *)(uintptr_t)op_types[next_rand(r) % (sizeof op_types / sizeof op_types[0])];
        }
        break;
    case 1: { /* an input reads another node's output or another input */
        Onnx__NodeProto *m = g->n_node ? g->node[next_rand(r) % g->n_node] : NULL;
        if (n && m && n->n_input && m->n_output && *n_undo < 16) {
            char **slot = &n->input[next_rand(r) % n->n_input];
            undo[*n_undo] = (undo_t){slot, *slot};
            (*n_undo)++;
            *slot = m->output[next_rand(r) % m->n_output];
        }
        break;
    }
    case 2: /* an int or ints attribute value */
        if (n && n->n_attribute) {
            Onnx__AttributeProto *a = n->attribute[next_rand(r) % n->n_attribute];
            if (a->n_ints) a->ints[next_rand(r) % a->n_ints] = pick_int(r, a->ints[next_rand(r) % a->n_ints]);
            else if (a->has_i) a->i = pick_int(r, a->i);
            else if (a->has_f) a->f = (float)pick_int(r, a->f > -1e15f && a->f < 1e15f ? (int64_t)a->f : 0);
        }
        break;
    case 3: /* an initializer dim */
        if (g->n_initializer) {
            Onnx__TensorProto *t = g->initializer[next_rand(r) % g->n_initializer];
            if (t->n_dims) t->dims[next_rand(r) % t->n_dims] = pick_int(r, t->dims[0]);
        }
        break;
    case 4: /* an int64 initializer value (shapes, pads, axes) */
        if (g->n_initializer) {
            Onnx__TensorProto *t = g->initializer[next_rand(r) % g->n_initializer];
            if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && t->raw_data.len >= 8) {
                size_t k = next_rand(r) % (t->raw_data.len / 8);
                int64_t v = 0;
                memcpy(&v, t->raw_data.data + 8 * k, 8);
                v = pick_int(r, v);
                memcpy(t->raw_data.data + 8 * k, &v, 8);
            } else if (t->n_int64_data) {
                size_t k = next_rand(r) % t->n_int64_data;
                t->int64_data[k] = pick_int(r, t->int64_data[k]);
            }
        }
        break;
    case 5: /* a graph input dim */
        if (g->n_input) {
            Onnx__ValueInfoProto *v = g->input[next_rand(r) % g->n_input];
            Onnx__TypeProto__Tensor *tt =
                v->type && v->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? v->type->tensor_type : NULL;
            if (tt && tt->shape && tt->shape->n_dim) {
                Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[next_rand(r) % tt->shape->n_dim];
                if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
                    d->dim_value = pick_int(r, d->dim_value);
            }
        }
        break;
    case 6: /* swap two nodes */
        if (g->n_node > 1) {
            size_t i = next_rand(r) % g->n_node, k = next_rand(r) % g->n_node;
            Onnx__NodeProto *tmp = g->node[i];
            g->node[i] = g->node[k];
            g->node[k] = tmp;
        }
        break;
    case 7: /* drop a node (moved to the end, hidden by the count) */
        if (g->n_node > 1) {
            size_t i = next_rand(r) % g->n_node;
            if (*n_node_saved == 0) *n_node_saved = g->n_node;
            Onnx__NodeProto *tmp = g->node[i];
            g->node[i] = g->node[g->n_node - 1];
            g->node[g->n_node - 1] = tmp;
            g->n_node--;
        }
        break;
    default: /* an output of one node becomes the name of another's output */
        if (n && n->n_output && g->n_output && *n_undo < 16) {
            char **slot = &g->output[next_rand(r) % g->n_output]->name;
            undo[*n_undo] = (undo_t){slot, *slot};
            (*n_undo)++;
            *slot = n->output[next_rand(r) % n->n_output];
        }
        break;
    }
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    unsigned r = seed;
    if (next_rand(&r) % 3 == 0) return LLVMFuzzerMutate(data, size, max_size);
    size_t bad_offset = 0;
    const char *why = NULL;
    if (wire_check(data, size, &onnx__model_proto__descriptor, &bad_offset, &why) < 0) /* deep nesting */
        return LLVMFuzzerMutate(data, size, max_size);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, size, data);
    if (!mp || !mp->graph) {
        if (mp) onnx__model_proto__free_unpacked(mp, NULL);
        return LLVMFuzzerMutate(data, size, max_size);
    }
    undo_t undo[16];
    int n_undo = 0;
    size_t n_node_saved = 0;
    int rounds = 1 + (int)(next_rand(&r) % 3);
    for (int i = 0; i < rounds; i++) mutate_once(mp->graph, &r, undo, &n_undo, &n_node_saved);
    size_t need = onnx__model_proto__get_packed_size(mp);
    size_t out = 0;
    if (need <= max_size) out = onnx__model_proto__pack(mp, data);
    for (int i = n_undo - 1; i >= 0; i--) *undo[i].slot = undo[i].old;
    if (n_node_saved) mp->graph->n_node = n_node_saved;
    onnx__model_proto__free_unpacked(mp, NULL);
    return out ? out : LLVMFuzzerMutate(data, size, max_size);
}
