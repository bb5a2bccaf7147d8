/* model_untie_aliases: PyTorch's exporter stores parameters with equal values
 * once and makes the other uses Identity copies of it (the equal BN biases of
 * a trained ResNet, the ones and zeros of every untrained BN). In the network
 * they were separate parameters: each such copy becomes an initializer of its
 * own again, so training updates each as PyTorch would, the pruned and the
 * masked model treat each use alone, and the report counts each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "ops/ops.h"

/* The tensor value v holds when it is an initializer or a Constant's output. */
static const sfp_tensor_t *constant_of(const sfp_graph_t *g, int v)
{
    const sfp_value_t *val = &g->values[v];
    if (val->init) return val->init;
    if (val->producer < 0) return NULL;
    const sfp_node_t *n = &g->nodes[val->producer];
    if (!op_is(n, SFP_OP_CONSTANT) || n->n_attrs != 1 || n->attrs[0].type != SFP_ATTR_TENSOR) return NULL;
    return n->attrs[0].t;
}

/* Identity node i copies a constant into a value that is not a graph output:
 * that value becomes an initializer holding a copy, and node i gets an
 * unread output of its own, so graph_remove_unused drops it. */
static int untie_one(sfp_graph_t *g, int i, bool *changed, sfp_error_t *err)
{
    sfp_node_t *n = &g->nodes[i];
    if (!op_is(n, SFP_OP_IDENTITY) || n->n_inputs != 1 || n->inputs[0] < 0 || n->n_outputs != 1 || n->outputs[0] < 0)
        return 0;
    int y = n->outputs[0];
    const sfp_tensor_t *t = constant_of(g, n->inputs[0]);
    if (!t || (g->values[y].flags & SFP_VAL_OUTPUT)) return 0;
    sfp_tensor_t *copy = NULL;
    size_t cap = strlen(g->values[y].name) + 32;
    char *name = malloc(cap);
    int dead = -1, rc = name ? sfp_tensor_clone(t, &copy, err) : sfp_errorf(err, SFP_ENOMEM, "out of memory");
    if (rc == 0) {
        snprintf(name, cap, "%s.untied", g->values[y].name);
        for (int k = 1; graph_find_value(g, name) >= 0; k++) snprintf(name, cap, "%s.untied_%d", g->values[y].name, k);
        rc = graph_add_value(g, name, &dead, err);
    }
    free(name);
    if (rc < 0) {
        sfp_tensor_free(copy);
        return rc;
    }
    n = &g->nodes[i]; /* (graph_add_value may have grown the value array, not the nodes) */
    n->outputs[0] = dead;
    g->values[dead].producer = i;
    g->values[y].producer = -1;
    *changed = true;
    return graph_set_init(g, y, copy, err);
}

int model_untie_aliases(sfp_model_t *m, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    bool changed = false;
    /* topological order: the first Identity of a chain turns into an
     * initializer before the next one looks at its input */
    for (int i = 0; i < g->n_nodes; i++) {
        int rc = untie_one(g, i, &changed, err);
        if (rc < 0) return rc;
    }
    return changed ? graph_remove_unused(g, err) : 0;
}
