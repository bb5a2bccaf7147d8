/* model_validate: the structural checks every loaded model passes before any
 * other module sees it: versions, supported ops and attributes (and their
 * ONNX types), defined inputs, no cycles, finite weights, non-negative BN
 * variance. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/model.h"
#include "ops/ops.h"
#include "util/util.h"

#define IR_VERSION_MIN 3
#define IR_VERSION_MAX 10
/* 6: PyTorch 0.3-era exports (ONNX test data pytorch-converted); the ops we run
 * mean the same there, except the legacy broadcast attributes and is_test=0,
 * which the op checks refuse. */
#define OPSET_MIN 6
#define OPSET_MAX 21

static int check_versions(const sfp_model_t *m, sfp_error_t *err)
{
    if (m->ir_version < IR_VERSION_MIN || m->ir_version > IR_VERSION_MAX)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "ir_version %lld is outside the supported %d..%d",
                          (long long)m->ir_version, IR_VERSION_MIN, IR_VERSION_MAX);
    int64_t opset = sfp_model_opset(m, "");
    if (opset == 0) {
        /* Nodes of the default domain without its import: broken. Only other
         * domains' ops (e.g. ai.onnx.preview.training): valid, not ours. */
        bool default_nodes = m->graph.n_nodes == 0;
        for (int i = 0; i < m->graph.n_nodes; i++) {
            const char *d = m->graph.nodes[i].domain;
            if (!d || !*d || !strcmp(d, "ai.onnx")) default_nodes = true;
        }
        if (default_nodes || m->n_opsets == 0)
            return sfp_errorf(err, SFP_EBADMODEL, "no opset_import for the default ONNX domain");
        return sfp_errorf(err, SFP_EUNSUPPORTED, "the model only uses operators of other domains ('%s'...)",
                          sfp_q(m->opsets[0].domain ? m->opsets[0].domain : ""));
    }
    if (opset < OPSET_MIN || opset > OPSET_MAX)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "opset %lld is outside the supported %d..%d", (long long)opset,
                          OPSET_MIN, OPSET_MAX);
    return 0;
}

/* The ONNX type of each attribute the op table understands; the names mean
 * the same type in every op that has them, except Pad's 'value' (a FLOAT
 * before opset 11; ConstantOfShape's is a TENSOR). */
static const struct {
    const char *name;
    sfp_attr_type_t type;
} attr_types[] = {
    {"auto_pad", SFP_ATTR_STRING}, {"mode", SFP_ATTR_STRING},
    {"dilations", SFP_ATTR_INTS}, {"kernel_shape", SFP_ATTR_INTS}, {"pads", SFP_ATTR_INTS},
    {"strides", SFP_ATTR_INTS}, {"perm", SFP_ATTR_INTS}, {"starts", SFP_ATTR_INTS}, {"ends", SFP_ATTR_INTS},
    {"axes", SFP_ATTR_INTS}, {"value_ints", SFP_ATTR_INTS},
    {"group", SFP_ATTR_INT}, {"axis", SFP_ATTR_INT}, {"ceil_mode", SFP_ATTR_INT},
    {"count_include_pad", SFP_ATTR_INT}, {"storage_order", SFP_ATTR_INT}, {"transA", SFP_ATTR_INT},
    {"transB", SFP_ATTR_INT}, {"broadcast", SFP_ATTR_INT}, {"spatial", SFP_ATTR_INT},
    {"training_mode", SFP_ATTR_INT}, {"is_test", SFP_ATTR_INT}, {"seed", SFP_ATTR_INT}, {"to", SFP_ATTR_INT},
    {"saturate", SFP_ATTR_INT}, {"allowzero", SFP_ATTR_INT}, {"start", SFP_ATTR_INT}, {"end", SFP_ATTR_INT},
    {"value_int", SFP_ATTR_INT},
    {"epsilon", SFP_ATTR_FLOAT}, {"momentum", SFP_ATTR_FLOAT}, {"alpha", SFP_ATTR_FLOAT},
    {"beta", SFP_ATTR_FLOAT}, {"ratio", SFP_ATTR_FLOAT}, {"value_float", SFP_ATTR_FLOAT},
    {"value_floats", SFP_ATTR_FLOATS},
    {"value", SFP_ATTR_TENSOR},
};

static const char *attr_type_name(sfp_attr_type_t t)
{
    static const char *const names[] = {"UNDEFINED", "FLOAT", "INT", "STRING", "TENSOR", "GRAPH", "FLOATS", "INTS",
                                        "STRINGS", "TENSORS", "GRAPHS", "SPARSE_TENSOR", "SPARSE_TENSORS",
                                        "TYPE_PROTO", "TYPE_PROTOS"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* An attribute of another type than ONNX defines for it: SFP_EBADMODEL (one
 * holding no value at all reads as absent, as before). */
static int check_attr_type(const sfp_node_t *n, const char *name, const sfp_attr_t *a, sfp_error_t *err)
{
    sfp_attr_type_t want = SFP_ATTR_UNDEFINED;
    for (size_t i = 0; i < sizeof attr_types / sizeof attr_types[0]; i++)
        if (!strcmp(attr_types[i].name, a->name)) want = attr_types[i].type;
    if (!strcmp(n->op_type, "Pad") && !strcmp(a->name, "value")) want = SFP_ATTR_FLOAT;
    if (want == SFP_ATTR_UNDEFINED || a->type == want || a->type == SFP_ATTR_UNDEFINED) return 0;
    return sfp_errorf(err, SFP_EBADMODEL, "node '%s' (%s): attribute '%s' has type %s, ONNX defines it as %s",
                      sfp_q(name), sfp_q(n->op_type), sfp_q(a->name), attr_type_name(a->type), attr_type_name(want));
}

static int check_node(const sfp_model_t *m, const sfp_node_t *n, int index, sfp_error_t *err)
{
    const sfp_graph_t *g = &m->graph;
    char label[32];
    snprintf(label, sizeof label, "#%d", index);
    const char *name = *n->name ? n->name : label;
    if (!*n->op_type) return sfp_errorf(err, SFP_EBADMODEL, "node '%s' (): empty op_type", sfp_q(name));
    const sfp_op_def_t *def = op_find(n->op_type, n->domain);
    if (!def) {
        if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx"))
            return sfp_errorf(err, SFP_EUNSUPPORTED, "node '%s' (%s): operator domain '%s' is not supported", sfp_q(name),
                              sfp_q(n->op_type), sfp_q(n->domain));
        return sfp_errorf(err, SFP_EUNSUPPORTED, "node '%s' (%s): operator not supported", sfp_q(name), sfp_q(n->op_type));
    }
    if (n->n_inputs < def->min_inputs || n->n_inputs > def->max_inputs)
        return sfp_errorf(err, SFP_EBADMODEL, "node '%s' (%s): %d inputs, expected %d to %d", sfp_q(name),
                          sfp_q(n->op_type), n->n_inputs, def->min_inputs, def->max_inputs);
    if (n->n_outputs < def->min_outputs || n->n_outputs > def->max_outputs)
        return sfp_errorf(err, SFP_EBADMODEL, "node '%s' (%s): %d outputs, expected %d to %d", sfp_q(name),
                          sfp_q(n->op_type), n->n_outputs, def->min_outputs, def->max_outputs);
    for (int i = 0; i < n->n_attrs; i++) {
        int known = 0;
        for (const char *const *a = def->attrs; *a; a++)
            if (!strcmp(*a, n->attrs[i].name)) known = 1;
        if (!known)
            return sfp_errorf(err, SFP_EUNSUPPORTED, "node '%s' (%s): attribute '%s' is not supported", sfp_q(name),
                              sfp_q(n->op_type), sfp_q(n->attrs[i].name));
        if (n->attrs[i].type == SFP_ATTR_GRAPH || n->attrs[i].type == SFP_ATTR_GRAPHS)
            return sfp_errorf(err, SFP_EUNSUPPORTED, "node '%s' (%s): subgraph attributes are not supported", sfp_q(name),
                              sfp_q(n->op_type));
        int rc = check_attr_type(n, name, &n->attrs[i], err);
        if (rc < 0) return rc;
    }
    for (int i = 0; i < n->n_inputs; i++) {
        int v = n->inputs[i];
        if (v < 0) {
            if (i < def->min_inputs)
                return sfp_errorf(err, SFP_EBADMODEL, "node '%s' (%s): required input %d is empty", sfp_q(name),
                                  sfp_q(n->op_type), i);
            continue;
        }
        const sfp_value_t *val = &g->values[v];
        if (val->producer < 0 && !val->init && !(val->flags & SFP_VAL_INPUT))
            return sfp_errorf(err, SFP_EBADMODEL, "node '%s' (%s): input '%s' is not produced by any node, initializer or graph input",
                              sfp_q(name), sfp_q(n->op_type), sfp_q(val->name));
    }
    for (int i = 0; i < n->n_outputs; i++) {
        int v = n->outputs[i];
        if (v < 0 && i < def->min_outputs)
            return sfp_errorf(err, SFP_EBADMODEL, "node '%s' (%s): required output %d is empty", sfp_q(name),
                              sfp_q(n->op_type), i);
        if (v >= 0 && (g->values[v].flags & SFP_VAL_INPUT))
            return sfp_errorf(err, SFP_EBADMODEL, "node '%s' (%s): output '%s' is also a graph input", sfp_q(name),
                              sfp_q(n->op_type), sfp_q(g->values[v].name));
    }
    return 0;
}

static int check_tensor_finite(const sfp_tensor_t *t, sfp_error_t *err)
{
    int64_t n = sfp_tensor_numel(t);
    if (t->dtype == SFP_DT_FLOAT) {
        const float *p = t->data;
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(p[i]))
                return sfp_errorf(err, SFP_EBADMODEL, "initializer '%s': element %lld is %s", sfp_q(t->name), (long long)i,
                                  isnan(p[i]) ? "NaN" : "infinite");
    } else if (t->dtype == SFP_DT_DOUBLE) {
        const double *p = t->data;
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(p[i]))
                return sfp_errorf(err, SFP_EBADMODEL, "initializer '%s': element %lld is not finite", sfp_q(t->name),
                                  (long long)i);
    }
    return 0;
}

static int check_bn_variance(const sfp_graph_t *g, const sfp_node_t *n, sfp_error_t *err)
{
    if (strcmp(n->op_type, "BatchNormalization") || n->n_inputs < 5) return 0;
    const sfp_tensor_t *var = graph_const(g, n->inputs[4]);
    if (!var) return 0;
    float eps = node_attr_float(n, "epsilon", 1e-5f);
    for (int64_t i = 0; i < sfp_tensor_numel(var); i++) {
        double v = sfp_tensor_get_double(var, i);
        if (v < 0.0 || v + (double)eps <= 0.0)
            return sfp_errorf(err, SFP_EBADMODEL, "node '%s' (BatchNormalization): variance '%s' channel %lld is %g with epsilon %g",
                              sfp_q(n->name), sfp_q(var->name), (long long)i, v, (double)eps);
    }
    return 0;
}

int model_validate(sfp_model_t *m, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int rc;
    if ((rc = check_versions(m, err)) < 0) return rc;
    if (g->n_outputs == 0) return sfp_errorf(err, SFP_EBADMODEL, "the graph has no outputs");
    for (int i = 0; i < g->n_nodes; i++)
        if ((rc = check_node(m, &g->nodes[i], i, err)) < 0) return rc;
    for (int i = 0; i < g->n_outputs; i++) {
        const sfp_value_t *v = &g->values[g->outputs[i]];
        if (v->producer < 0 && !v->init && !(v->flags & SFP_VAL_INPUT))
            return sfp_errorf(err, SFP_EBADMODEL, "graph output '%s' is not produced by anything", sfp_q(v->name));
    }
    for (int i = 0; i < g->n_inits; i++)
        if ((rc = check_tensor_finite(g->values[g->inits[i]].init, err)) < 0) return rc;
    if ((rc = graph_topo_sort(g, err)) < 0) return rc;
    sfp_op_ctx_t c = {m, g, NULL, sfp_model_opset(m, "")};
    for (int i = 0; i < g->n_nodes; i++) {
        c.node = &g->nodes[i];
        const sfp_op_def_t *def = op_find(c.node->op_type, c.node->domain);
        if (def->check && (rc = def->check(&c, err)) < 0) return rc;
        if ((rc = check_bn_variance(g, c.node, err)) < 0) return rc;
    }
    return 0;
}
