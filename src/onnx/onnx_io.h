/* Internal header of the ONNX I/O module: protobuf-c helpers shared by the
 * loader and the saver. Only files in src/onnx include the generated schema. */
#ifndef SFP_ONNX_IO_H
#define SFP_ONNX_IO_H

#include <protobuf-c/protobuf-c.h>

#include "onnx.pb-c.h"
#include "ir/ir.h"
#include "onnx/onnx.h"

/* Allocator for protobuf-c with a byte budget, so a small hostile file cannot
 * make the parser allocate without bound. */
typedef struct budget_alloc {
    ProtobufCAllocator base;
    size_t used;
    size_t budget;
    int exhausted;      /* set once a request was refused (stays set after frees) */
    int out_of_memory;  /* set once malloc itself failed */
} budget_alloc_t;
void budget_alloc_init(budget_alloc_t *b, size_t budget);

/* Packs msg (with the modelled fields already cleared by the caller) into
 * residue bytes; an empty message gives an empty residue. */
int residue_pack(const ProtobufCMessage *msg, sfp_blob_t *out, sfp_error_t *err);

/* Splits residue bytes into protobuf-c unknown fields that point into blob
 * (valid while blob lives). *out is malloc'ed (NULL when empty). */
int residue_fields(const sfp_blob_t *blob, ProtobufCMessageUnknownField **out, size_t *n,
                   sfp_error_t *err);

/* Walks the wire format of buf once without a schema: returns 0, or the byte
 * offset (>= 0) of the first field that cannot be read in *bad_offset with a
 * reason. Used to explain files that protobuf-c refuses. */
int wire_scan(const uint8_t *buf, size_t len, size_t *bad_offset, const char **reason);

/* Deepest message nesting accepted (protobuf's own default recursion limit). */
#define WIRE_MAX_DEPTH 100

/* The same walk with the schema: descends into known message fields (without
 * recursion), checks each known field's wire type and refuses nesting deeper
 * than WIRE_MAX_DEPTH, which would exhaust the stack of protobuf-c's
 * recursive unpack. Run before unpacking. *reason may point into a static
 * buffer. */
int wire_check(const uint8_t *buf, size_t len, const ProtobufCMessageDescriptor *desc, size_t *bad_offset,
               const char **reason);

/* TensorProto -> tensor. base_dir resolves external data (NULL: refuse it).
 * what names the tensor's role in messages (e.g. "initializer"). */
int tensor_from_proto(const Onnx__TensorProto *tp, const char *base_dir, const char *what,
                      sfp_tensor_t **out, sfp_error_t *err);
/* Fills a TensorProto (raw_data pointing at t->data; name borrowed). */
void tensor_to_proto(const sfp_tensor_t *t, Onnx__TensorProto *tp, int64_t *dims_buf);

/* ---- model-local functions (functions.c) ---- */
/* The function of mp that node np calls (same name and domain), or NULL. */
const Onnx__FunctionProto *function_of(const Onnx__ModelProto *mp, const Onnx__NodeProto *np);
/* Receives one node of an inlined body (borrowed for the call) with its
 * label and nesting depth; it may inline again. */
typedef int (*function_take_fn)(void *ctx, const Onnx__NodeProto *np, const char *label, int depth);
/* Hands every node of f as called by `call` (labelled `label`, at nesting
 * `depth`) to take(), in body order: inner values become new values of g
 * named "<label>/<name>", formal inputs and outputs the call's, attributes
 * with ref_attr_name the caller's attribute (dropped when the caller has
 * none). Refuses a function importing another ONNX opset than the model. */
int function_inline(sfp_graph_t *g, const Onnx__ModelProto *mp, const Onnx__FunctionProto *f,
                    const Onnx__NodeProto *call, const char *label, int depth, function_take_fn take, void *ctx,
                    sfp_error_t *err);

#endif
