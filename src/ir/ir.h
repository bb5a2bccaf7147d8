/* The graph IR's own API: building and querying values, nodes, attributes
 * and initializers of the types in onnxsfp/model.h. Knows nothing about ops
 * or protobuf; edges are integer ids, so passes can compact arrays. */
#ifndef SFP_IR_H
#define SFP_IR_H

#include "onnxsfp/model.h"

/* An empty model (no graph content). */
int model_create(sfp_model_t **out, sfp_error_t *err);

/* ---- graph building and queries ---- */
int graph_find_value(const sfp_graph_t *g, const char *name);
/* Adds a value; a name already present is an error (SFP_EBADMODEL). */
int graph_add_value(sfp_graph_t *g, const char *name, int *id, sfp_error_t *err);
/* Finds or adds. */
int graph_value(sfp_graph_t *g, const char *name, int *id, sfp_error_t *err);
/* Appends a node; inputs/outputs are value ids (-1 for an omitted input). */
int graph_add_node(sfp_graph_t *g, const char *op_type, const char *name, int n_in,
                   const int *inputs, int n_out, const int *outputs, int *node_id,
                   sfp_error_t *err);
/* Gives value id an initializer (takes ownership of t, renames it to the value). */
int graph_set_init(sfp_graph_t *g, int id, sfp_tensor_t *t, sfp_error_t *err);
int graph_add_input(sfp_graph_t *g, int id, sfp_error_t *err);
int graph_add_output(sfp_graph_t *g, int id, sfp_error_t *err);
/* Sorts nodes topologically (stable for an already sorted graph); fails on cycles. */
int graph_topo_sort(sfp_graph_t *g, sfp_error_t *err);
/* Drops nodes none of whose outputs is read (nor a graph output) and values
 * nothing refers to any more, renumbering ids. Ids held elsewhere go stale. */
int graph_remove_unused(sfp_graph_t *g, sfp_error_t *err);
/* Tensor known before running: initializer or folded constant, else NULL. */
const sfp_tensor_t *graph_const(const sfp_graph_t *g, int id);
/* Node count that read value id. */
int graph_count_consumers(const sfp_graph_t *g, int id);
/* The one real (non-initializer) graph input, or -1 when there is none or several. */
int graph_data_input(const sfp_graph_t *g);

/* ---- attributes ---- */
const sfp_attr_t *node_attr(const sfp_node_t *n, const char *name);
int64_t node_attr_int(const sfp_node_t *n, const char *name, int64_t dflt);
float node_attr_float(const sfp_node_t *n, const char *name, float dflt);
/* Returns the number of ints (0 when absent) and points *out at them. */
size_t node_attr_ints(const sfp_node_t *n, const char *name, const int64_t **out);
const char *node_attr_string(const sfp_node_t *n, const char *name, const char *dflt);
int node_set_attr_int(sfp_node_t *n, const char *name, int64_t v, sfp_error_t *err);
int node_set_attr_float(sfp_node_t *n, const char *name, float v, sfp_error_t *err);
int node_set_attr_ints(sfp_node_t *n, const char *name, const int64_t *v, size_t count,
                       sfp_error_t *err);
int node_set_attr_string(sfp_node_t *n, const char *name, const char *v, sfp_error_t *err);
/* Frees everything attribute a holds, its name too, and zeroes it. */
void attr_clear(sfp_attr_t *a);
/* Drops attribute name (nothing when absent). */
void node_remove_attr(sfp_node_t *n, const char *name);
/* Takes ownership of t. */
int node_set_attr_tensor(sfp_node_t *n, const char *name, sfp_tensor_t *t, sfp_error_t *err);

#endif
