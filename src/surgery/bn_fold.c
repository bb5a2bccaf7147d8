/* BatchNormalization for convolutions whose exporter folded it away
 * (PyTorch's default export folds BN into the preceding Conv's weight and
 * bias). Training such a network as it is works for plain fine-tuning but
 * not for pruning (see docs/architecture.md), so the training commands put
 * a BN back after every bare convolution, initialised to leave the
 * function unchanged, and fold it into the convolution again on export.
 * The re-inserted nodes carry BN_MARK in their names, so a checkpoint's
 * model (which has them) is folded the same way when a run resumes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "surgery/surgery.h"
#include "util/util.h"

static const float bn_epsilon = 1e-5f;

bool bn_is_reinserted(const sfp_node_t *n)
{
    return op_is(n, SFP_OP_BATCH_NORMALIZATION) && !strncmp(n->name, BN_MARK, strlen(BN_MARK));
}

/* A float initializer of exactly `elems` elements (ndim >= 1), or NULL. */
static const sfp_tensor_t *float_init(const sfp_graph_t *g, int id, int64_t elems)
{
    if (id < 0 || id >= g->n_values || !g->values[id].init) return NULL;
    const sfp_tensor_t *t = g->values[id].init;
    return t->dtype == SFP_DT_FLOAT && t->ndim >= 1 && sfp_tensor_numel(t) == elems ? t : NULL;
}

/* Output channels of a Conv whose weight (M, C/g, K..) and bias are float
 * initializers, else 0. */
static int64_t conv_channels(const sfp_graph_t *g, const sfp_node_t *n)
{
    if (!op_is(n, SFP_OP_CONV) || n->n_inputs < 2 || n->n_outputs != 1 || n->outputs[0] < 0)
        return 0;
    const int wid = n->inputs[1];
    if (wid < 0 || !g->values[wid].init) return 0;
    const sfp_tensor_t *w = g->values[wid].init;
    if (w->dtype != SFP_DT_FLOAT || w->ndim < 3 || w->dims[0] < 1) return 0;
    if (n->n_inputs >= 3 && n->inputs[2] >= 0 && !float_init(g, n->inputs[2], w->dims[0])) return 0;
    return w->dims[0];
}

/* feeds[i]: some Conv/Gemm/MatMul reads what node i computes, directly or
 * through other nodes. Nodes are in topological order, so one pass
 * backwards settles each node after all its readers. */
static bool *layers_downstream(const sfp_graph_t *g)
{
    bool *feeds = calloc((size_t)g->n_nodes + 1, sizeof(bool));
    bool *value_feeds = calloc((size_t)g->n_values + 1, sizeof(bool));
    if (!feeds || !value_feeds) {
        free(feeds);
        free(value_feeds);
        return NULL;
    }
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const sfp_node_t *n = &g->nodes[i];
        for (int o = 0; o < n->n_outputs; o++) feeds[i] |= n->outputs[o] >= 0 && value_feeds[n->outputs[o]];
        if (op_has(n, SFP_OPF_FILTERS) || feeds[i])
            for (int k = 0; k < n->n_inputs; k++)
                if (n->inputs[k] >= 0) value_feeds[n->inputs[k]] = true;
    }
    free(value_feeds);
    return feeds;
}

int bn_bare_convs(const sfp_model_t *m, int **nodes, int *n, sfp_error_t *err)
{
    const sfp_graph_t *g = &m->graph;
    *nodes = NULL;
    *n = 0;
    int *list = malloc(sizeof(int) * (size_t)(g->n_nodes + 1));
    bool *feeds = layers_downstream(g), *normalised = calloc((size_t)g->n_values + 1, sizeof(bool));
    if (!list || !feeds || !normalised) {
        free(list);
        free(feeds);
        free(normalised);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    for (int k = 0; k < g->n_nodes; k++)
        if (op_has(&g->nodes[k], SFP_OPF_NORM) && g->nodes[k].n_inputs > 0 && g->nodes[k].inputs[0] >= 0)
            normalised[g->nodes[k].inputs[0]] = true;
    /* a conv no layer follows is a classifier: its logits stay unnormalised */
    for (int i = 0; i < g->n_nodes; i++)
        if (conv_channels(g, &g->nodes[i]) && feeds[i] && !normalised[g->nodes[i].outputs[0]]) list[(*n)++] = i;
    free(normalised);
    free(feeds);
    if (*n == 0) free(list);
    else *nodes = list;
    return 0;
}

/* A value name not yet in g: base + suffix, then base + suffix + "_N". */
static char *unique_name(const sfp_graph_t *g, const char *base, const char *suffix, sfp_error_t *err)
{
    size_t cap = strlen(base) + strlen(suffix) + 24;
    char *name = malloc(cap);
    if (!name) {
        sfp_errorf(err, SFP_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(name, cap, "%s%s", base, suffix);
    for (int i = 1; graph_find_value(g, name) >= 0; i++) snprintf(name, cap, "%s%s_%d", base, suffix, i);
    return name;
}

/* A new float initializer [channels] named base + suffix with values v. */
static int add_param(sfp_graph_t *g, const char *base, const char *suffix, int64_t channels, const double *v, int *id,
                     sfp_error_t *err)
{
    sfp_tensor_t *t = NULL;
    char *name = unique_name(g, base, suffix, err);
    if (!name) return SFP_ENOMEM;
    int rc = sfp_tensor_create(name, SFP_DT_FLOAT, 1, &channels, &t, err);
    if (rc == 0) {
        float *d = t->data;
        for (int64_t c = 0; c < channels; c++) d[c] = (float)v[c];
        if ((rc = graph_add_value(g, name, id, err)) < 0) sfp_tensor_free(t);
        else rc = graph_set_init(g, *id, t, err); /* takes t */
    }
    free(name);
    return rc;
}

/* After conv node ci: pre = conv(x), y = BN(pre) where y is the conv's old
 * output, so its readers are unchanged. */
static int insert_one(sfp_graph_t *g, int ci, const double *mean, const double *var, sfp_error_t *err)
{
    const int64_t channels = conv_channels(g, &g->nodes[ci]);
    const int y = g->nodes[ci].outputs[0];
    double *p = malloc(sizeof(double) * (size_t)(2 * channels));
    if (!p) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    /* eval: (x - mean) / sqrt(var + eps) * sqrt(var + eps) + mean = x */
    for (int64_t c = 0; c < channels; c++) {
        p[c] = sqrt((var[c] > 0.0 ? var[c] : 0.0) + (double)bn_epsilon);
        p[channels + c] = var[c] > 0.0 ? var[c] : 0.0;
    }
    char *base = NULL, *pre_name = NULL;
    size_t cap = strlen(BN_MARK) + strlen(g->values[y].name) + 1;
    int ins[5] = {-1, -1, -1, -1, -1}, node_id = -1, rc = 0;
    if (!(base = malloc(cap))) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(base, cap, "%s%s", BN_MARK, g->values[y].name);
    if (!(pre_name = unique_name(g, g->values[y].name, ".pre_bn", err))) {
        rc = SFP_ENOMEM;
        goto out;
    }
    if ((rc = add_param(g, base, ".scale", channels, p, &ins[1], err)) < 0 ||
        (rc = add_param(g, base, ".bias", channels, mean, &ins[2], err)) < 0 ||
        (rc = add_param(g, base, ".mean", channels, mean, &ins[3], err)) < 0 ||
        (rc = add_param(g, base, ".var", channels, p + channels, &ins[4], err)) < 0 ||
        (rc = graph_add_value(g, pre_name, &ins[0], err)) < 0)
        goto out;
    g->nodes[ci].outputs[0] = ins[0];
    g->values[ins[0]].producer = ci;
    g->values[y].producer = -1;
    if ((rc = graph_add_node(g, "BatchNormalization", base, 5, ins, 1, &y, &node_id, err)) < 0) goto out;
    if ((rc = node_set_attr_float(&g->nodes[node_id], "epsilon", bn_epsilon, err)) < 0) goto out;
    rc = node_set_attr_float(&g->nodes[node_id], "momentum", 0.9f, err);
out:
    free(p);
    free(base);
    free(pre_name);
    return rc;
}

/* Topological order, checks and shapes after an edit. */
static int graph_settle(sfp_model_t *m, const char *what, sfp_error_t *err)
{
    int rc;
    if ((rc = graph_remove_unused(&m->graph, err)) < 0 || (rc = graph_topo_sort(&m->graph, err)) < 0 ||
        (rc = model_validate(m, err)) < 0 || (rc = model_infer_shapes(m, 1, err)) < 0)
        return sfp_error_prefix(err, "%s", what);
    return 0;
}

int bn_insert(sfp_model_t *m, int n, const int *convs, const double *const *mean, const double *const *var,
              sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    for (int i = 0; i < n; i++) {
        if (convs[i] < 0 || convs[i] >= g->n_nodes || !conv_channels(g, &g->nodes[convs[i]]))
            return sfp_errorf(err, SFP_ERUNTIME, "internal: node %d is not a convolution to normalise", convs[i]);
        int rc = insert_one(g, convs[i], mean[i], var[i], err);
        if (rc < 0) return rc;
    }
    return n > 0 ? graph_settle(m, "after re-inserting BatchNormalization", err) : 0;
}

/* The conv bias of node n as a writable initializer of its own, created
 * (zeros) when the conv has none. */
static int own_bias(sfp_graph_t *g, int ni, int64_t channels, sfp_tensor_t **out, sfp_error_t *err)
{
    sfp_node_t *n = &g->nodes[ni];
    if (n->n_inputs >= 3 && n->inputs[2] >= 0) return surgery_own_init(g, n, 2, out, err);
    int *inputs = realloc(n->inputs, sizeof(int) * 3);
    if (!inputs) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    n->inputs = inputs;
    for (int k = n->n_inputs; k < 3; k++) inputs[k] = -1;
    n->n_inputs = 3;
    double *zeros = calloc((size_t)channels, sizeof(double));
    if (!zeros) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    const char *owner = *n->name ? n->name : g->values[n->inputs[1]].name;
    int id = -1, rc = add_param(g, owner, ".bias", channels, zeros, &id, err);
    free(zeros);
    if (rc < 0) return rc;
    g->nodes[ni].inputs[2] = id;
    *out = g->values[id].init;
    return 0;
}

/* W[m] *= s[m], b[m] = (b[m] - mean[m]) * s[m] + beta[m], s = gamma / sqrt(var + eps). */
static int fold_one(sfp_graph_t *g, int bi, int *folded, sfp_error_t *err)
{
    const sfp_node_t *bn = &g->nodes[bi];
    if (bn->n_inputs != 5 || bn->n_outputs < 1 || bn->outputs[0] < 0 || bn->inputs[0] < 0) return 0;
    for (int o = 1; o < bn->n_outputs; o++)
        if (bn->outputs[o] >= 0) return 0; /* training outputs: not one of ours */
    const int x = bn->inputs[0], ci = g->values[x].producer;
    if (ci < 0 || graph_count_consumers(g, x) != 1 || (g->values[x].flags & SFP_VAL_OUTPUT)) return 0;
    const int64_t channels = conv_channels(g, &g->nodes[ci]);
    const sfp_tensor_t *gamma = float_init(g, bn->inputs[1], channels), *beta = float_init(g, bn->inputs[2], channels),
                       *mean = float_init(g, bn->inputs[3], channels), *var = float_init(g, bn->inputs[4], channels);
    if (!channels || !gamma || !beta || !mean || !var) return 0; /* left as it is: still the same function */
    const double eps = (double)node_attr_float(bn, "epsilon", 1e-5f);
    sfp_tensor_t *w = NULL, *b = NULL;
    int rc;
    if ((rc = surgery_own_init(g, &g->nodes[ci], 1, &w, err)) < 0 || (rc = own_bias(g, ci, channels, &b, err)) < 0)
        return rc;
    const int64_t per = sfp_tensor_numel(w) / channels;
    float *wd = w->data, *bd = b->data;
    const float *gd = gamma->data, *betad = beta->data, *md = mean->data, *vd = var->data;
    for (int64_t c = 0; c < channels; c++) {
        const double s = (double)gd[c] / sqrt((double)vd[c] + eps);
        for (int64_t e = 0; e < per; e++) wd[c * per + e] = (float)((double)wd[c * per + e] * s);
        bd[c] = (float)(((double)bd[c] - (double)md[c]) * s + (double)betad[c]);
    }
    /* the conv writes y again; the BN loses its output and dies */
    sfp_node_t *bnw = &g->nodes[bi];
    const int y = bnw->outputs[0];
    bnw->outputs[0] = -1;
    g->values[x].producer = -1;
    g->nodes[ci].outputs[0] = y;
    g->values[y].producer = ci;
    (*folded)++;
    return 0;
}

int bn_fold_reinserted(sfp_model_t *m, int *n_folded, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int folded = 0, rc = 0;
    for (int i = 0; i < g->n_nodes && rc == 0; i++)
        if (bn_is_reinserted(&g->nodes[i])) rc = fold_one(g, i, &folded, err);
    if (rc == 0 && folded > 0) rc = graph_settle(m, "after folding BatchNormalization back", err);
    if (n_folded) *n_folded = folded;
    return rc;
}
