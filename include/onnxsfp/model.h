/* The graph IR: one model = values, nodes, initializers, and what the file
 * carried that the IR does not model (kept as "residue" bytes and written back).
 * Edges are integer ids (value and node indices), never pointers. */
#ifndef ONNXSFP_MODEL_H
#define ONNXSFP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnxsfp/error.h"
#include "onnxsfp/tensor.h"

/* Serialized protobuf fields the IR does not model (doc strings, unknown
 * fields of newer ONNX versions...). Owns data. Written back verbatim. */
typedef struct sfp_blob {
    uint8_t *data;
    size_t len;
} sfp_blob_t;

/* Same numbers as onnx.AttributeProto.AttributeType. */
typedef enum sfp_attr_type {
    SFP_ATTR_UNDEFINED = 0,
    SFP_ATTR_FLOAT = 1,
    SFP_ATTR_INT = 2,
    SFP_ATTR_STRING = 3,
    SFP_ATTR_TENSOR = 4,
    SFP_ATTR_GRAPH = 5,
    SFP_ATTR_FLOATS = 6,
    SFP_ATTR_INTS = 7,
    SFP_ATTR_STRINGS = 8,
    SFP_ATTR_TENSORS = 9,
    SFP_ATTR_GRAPHS = 10,
    SFP_ATTR_SPARSE_TENSOR = 11,
    SFP_ATTR_SPARSE_TENSORS = 12,
    SFP_ATTR_TYPE_PROTO = 13,
    SFP_ATTR_TYPE_PROTOS = 14
} sfp_attr_type_t;

/* One attribute. Owns every pointer. Only the member of its type is used;
 * types the IR does not model (graphs, sparse tensors) live whole in residue. */
typedef struct sfp_attr {
    char *name;
    sfp_attr_type_t type;
    float f;
    int64_t i;
    char *s;            /* STRING: bytes plus a terminating NUL */
    size_t s_len;
    size_t n;           /* element count of floats / ints / strings */
    float *floats;
    int64_t *ints;
    char **strings;
    sfp_tensor_t *t;    /* TENSOR */
    sfp_blob_t residue;
} sfp_attr_t;

/* One node. Owns its strings and arrays. Input id -1 = omitted optional input. */
typedef struct sfp_node {
    char *name;
    char *op_type;
    char *domain;       /* "" for the default ONNX domain */
    int n_inputs;
    int *inputs;
    int n_outputs;
    int *outputs;
    int n_attrs;
    sfp_attr_t *attrs;
    sfp_blob_t residue;
} sfp_node_t;

enum {
    SFP_VAL_INPUT = 1u << 0,   /* listed in graph.input */
    SFP_VAL_OUTPUT = 1u << 1,  /* listed in graph.output */
    SFP_VAL_VINFO = 1u << 2    /* had a graph.value_info entry */
};

/* A declared type (graph input/output/value_info). rank -1: unknown rank.
 * dims[i] == -1 is unknown or symbolic; params[i] names a symbolic dim (owned). */
typedef struct sfp_decl_type {
    sfp_dtype_t dtype;
    int rank;
    int64_t dims[SFP_MAX_DIMS];
    char *params[SFP_MAX_DIMS];
} sfp_decl_type_t;

/* One value (edge). Owns name, init, folded, params and residues. */
typedef struct sfp_value {
    char *name;
    int producer;            /* node id, or -1 */
    unsigned flags;          /* SFP_VAL_* */
    sfp_tensor_t *init;      /* initializer data, or NULL */
    sfp_decl_type_t decl;    /* from the file; dtype 0 when undeclared */
    sfp_blob_t decl_residue; /* ValueInfoProto fields not modelled */
    sfp_blob_t init_residue; /* TensorProto fields not modelled (doc_string...) */
    /* Filled by shape inference for graph.batch: */
    sfp_dtype_t dtype;
    int ndim;                /* -1 until inferred */
    int64_t dims[SFP_MAX_DIMS];
    bool batch0;             /* dim 0 is the batch dimension */
    sfp_tensor_t *folded;    /* value known before running (Constant, shape ops) */
    bool batch_dep;          /* folded from the batch size (e.g. Shape of a batched value) */
} sfp_value_t;

typedef struct sfp_graph {
    char *name;
    int n_values, cap_values;
    sfp_value_t *values;
    int n_nodes, cap_nodes;
    sfp_node_t *nodes;       /* kept in topological order by graph_topo_sort */
    int n_inputs;
    int *inputs;             /* value ids, file order (old exports list initializers too) */
    int n_outputs;
    int *outputs;
    int n_inits;
    int *inits;              /* value ids holding initializers, in file order */
    sfp_blob_t residue;
    int64_t batch;           /* batch the inferred shapes are for; 0 = not inferred */
    void *name_index;        /* private: name -> value id */
} sfp_graph_t;

typedef struct sfp_opset {
    char *domain;
    int64_t version;
} sfp_opset_t;

typedef struct sfp_kv {
    char *key;
    char *value;
} sfp_kv_t;

/* Owns everything. */
typedef struct sfp_model {
    char *path;              /* file it was loaded from, or NULL */
    int64_t ir_version;
    int n_opsets;
    sfp_opset_t *opsets;
    int n_meta;
    sfp_kv_t *meta;          /* metadata_props */
    char *producer_name;
    char *producer_version;
    sfp_graph_t graph;
    sfp_blob_t residue;      /* ModelProto fields not modelled */
} sfp_model_t;

/* ---- the public API: a model as a whole (src/model, src/ir) ---- */
void sfp_model_free(sfp_model_t *m);          /* NULL is a no-op */
/* Loads, validates, normalises the batch dimension and infers shapes for batch 1.
 * Errors name the file; unsupported ops give SFP_EUNSUPPORTED. */
int sfp_model_load(const char *path, sfp_model_t **out, sfp_error_t *err);
/* sfp_model_load with sizes for the inputs' symbolic dims: input_shape is
 * "1x3x224x224" (the one data input; the sizes after the batch alone also
 * do) or "NAME:1x3x224x224", several separated by commas; NULL = none. Dim 0
 * stays the free batch. A bad or contradicting spec gives SFP_EUSAGE. */
int sfp_model_load_shaped(const char *path, const char *input_shape, sfp_model_t **out, sfp_error_t *err);
/* Same from bytes; path (may be NULL) names the source in messages and is the
 * base folder for external data. */
int sfp_model_load_bytes(const uint8_t *buf, size_t len, const char *path, sfp_model_t **out,
                         sfp_error_t *err);
/* Serialises the model (all tensors inline). *out is malloc'ed. */
int sfp_model_encode(const sfp_model_t *m, uint8_t **out, size_t *out_len, sfp_error_t *err);
/* Atomic: temporary file in the same folder, fsync, rename. */
int sfp_model_save(const sfp_model_t *m, const char *path, sfp_error_t *err);
/* Deep copy (through the encoder: the copy is validated, batch-free and
 * inferred for batch 1). */
int sfp_model_clone(const sfp_model_t *m, sfp_model_t **out, sfp_error_t *err);
/* Opset version imported for domain ("" = default ONNX), 0 when absent. */
int64_t sfp_model_opset(const sfp_model_t *m, const char *domain);
const char *sfp_model_meta_get(const sfp_model_t *m, const char *key);
int sfp_model_meta_set(sfp_model_t *m, const char *key, const char *value, sfp_error_t *err);

#endif
