/* model_resolve_aliases: nodes read constants directly instead of through
 * Identity chains. PyTorch's exporter stores equal tensors once and makes
 * the others Identity outputs (a trained ResNet's equal BN biases), so a
 * parameter can reach a node through Identity; rewired, every reader sees
 * one tensor: training sums the gradients of all its uses and writes the
 * function it trained, and pruning sees that the uses share it. */
#include <string.h>

#include "ops/ops.h"

static bool is_identity(const sfp_node_t *n)
{
    return !strcmp(n->op_type, "Identity") && (!n->domain || !*n->domain || !strcmp(n->domain, "ai.onnx")) &&
           n->n_inputs == 1 && n->inputs[0] >= 0;
}

/* The initializer or Constant output that v copies through Identity nodes,
 * or -1 when v is not such a copy. Chains are bounded by the node count. */
static int alias_root(const sfp_graph_t *g, int v)
{
    int hops = 0, u = v;
    while (hops <= g->n_nodes && !g->values[u].init && g->values[u].producer >= 0 &&
           is_identity(&g->nodes[g->values[u].producer])) {
        u = g->nodes[g->values[u].producer].inputs[0];
        hops++;
    }
    if (hops == 0 || hops > g->n_nodes) return -1;
    const sfp_value_t *root = &g->values[u];
    bool constant = root->init || (root->producer >= 0 && !strcmp(g->nodes[root->producer].op_type, "Constant"));
    return constant ? u : -1;
}

int model_resolve_aliases(sfp_model_t *m, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int rewired = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        sfp_node_t *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++) {
            int root = n->inputs[k] >= 0 ? alias_root(g, n->inputs[k]) : -1;
            if (root < 0) continue;
            n->inputs[k] = root;
            rewired++;
        }
    }
    /* the Identity nodes nothing reads any more (graph outputs stay) */
    return rewired ? graph_remove_unused(g, err) : 0;
}
