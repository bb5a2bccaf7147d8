/* Layer builders shared by the ResNets: each appends the ONNX nodes PyTorch
 * exports for one module (Conv, BatchNormalization, Relu, pooling, the
 * classifier head) with its initializers, named after the module. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "arch/build.h"
#include "util/util.h"

int arch_name(arch_net_t *n, char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= size)
        return sfp_errorf(n->err, SFP_EUSAGE, "name '%s...' is longer than %zu bytes", sfp_q(buf), size - 1);
    return 0;
}

int arch_node(arch_net_t *n, const char *op, const char *name, const int *ins, int n_in, const char *out_name,
              int *y, sfp_node_t **node)
{
    sfp_graph_t *g = &n->m->graph;
    int out = -1, node_id = -1, rc;
    if ((rc = graph_add_value(g, out_name ? out_name : name, &out, n->err)) < 0) return rc;
    if ((rc = graph_add_node(g, op, name, n_in, ins, 1, &out, &node_id, n->err)) < 0) return rc;
    *y = out;
    if (node) *node = &g->nodes[node_id];
    return 0;
}

int arch_param(arch_net_t *n, const char *prefix, const char *leaf, int ndim, const int64_t *dims, int *id,
               sfp_tensor_t **t)
{
    char name[256];
    sfp_tensor_t *tensor = NULL;
    int value = -1, rc;
    if ((rc = arch_name(n, name, sizeof name, "%s.%s", prefix, leaf)) < 0) return rc;
    if ((rc = sfp_tensor_create(name, SFP_DT_FLOAT, ndim, dims, &tensor, n->err)) < 0) return rc;
    if ((rc = graph_add_value(&n->m->graph, name, &value, n->err)) < 0) {
        sfp_tensor_free(tensor);
        return rc;
    }
    /* graph_set_init takes tensor, also on failure. */
    if ((rc = graph_set_init(&n->m->graph, value, tensor, n->err)) < 0) return rc;
    *id = value;
    if (t) *t = tensor;
    return 0;
}

int arch_conv(arch_net_t *n, const char *name, int x, int64_t c_in, int64_t c_out, int64_t kernel, int64_t stride,
              int64_t pad, int *y)
{
    const int64_t w_dims[4] = {c_out, c_in, kernel, kernel};
    const int64_t kernel_shape[2] = {kernel, kernel}, strides[2] = {stride, stride},
                  pads[4] = {pad, pad, pad, pad}, dilations[2] = {1, 1};
    sfp_tensor_t *w = NULL;
    sfp_node_t *node = NULL;
    int ins[2] = {x, -1}, rc;
    if ((rc = arch_param(n, name, "weight", 4, w_dims, &ins[1], &w)) < 0) return rc;
    /* He et al. 2015, fan_out mode: std = sqrt(2 / (k*k*c_out)). */
    arch_fill_normal(&n->rng, w, sqrt(2.0 / (double)(kernel * kernel * c_out)));
    if ((rc = arch_node(n, "Conv", name, ins, 2, NULL, y, &node)) < 0) return rc;
    if ((rc = node_set_attr_ints(node, "dilations", dilations, 2, n->err)) < 0) return rc;
    if ((rc = node_set_attr_int(node, "group", 1, n->err)) < 0) return rc;
    if ((rc = node_set_attr_ints(node, "kernel_shape", kernel_shape, 2, n->err)) < 0) return rc;
    if ((rc = node_set_attr_ints(node, "pads", pads, 4, n->err)) < 0) return rc;
    return node_set_attr_ints(node, "strides", strides, 2, n->err);
}

int arch_bn(arch_net_t *n, const char *name, int x, int64_t channels, int *y)
{
    static const char *const leaves[4] = {"weight", "bias", "running_mean", "running_var"};
    static const float initial[4] = {1.0f, 0.0f, 0.0f, 1.0f};
    int ins[5] = {x, -1, -1, -1, -1}, rc;
    sfp_node_t *node = NULL;
    for (int k = 0; k < 4; k++) {
        sfp_tensor_t *t = NULL;
        if ((rc = arch_param(n, name, leaves[k], 1, &channels, &ins[k + 1], &t)) < 0) return rc;
        arch_fill_const(t, initial[k]);
    }
    if ((rc = arch_node(n, "BatchNormalization", name, ins, 5, NULL, y, &node)) < 0) return rc;
    if ((rc = node_set_attr_float(node, "epsilon", 1e-5f, n->err)) < 0) return rc;
    return node_set_attr_float(node, "momentum", 0.9f, n->err);
}

int arch_relu(arch_net_t *n, const char *name, int x, int *y) { return arch_node(n, "Relu", name, &x, 1, NULL, y, NULL); }

int arch_add(arch_net_t *n, const char *name, int a, int b, int *y)
{
    const int ins[2] = {a, b};
    return arch_node(n, "Add", name, ins, 2, NULL, y, NULL);
}

int arch_maxpool(arch_net_t *n, const char *name, int x, int64_t kernel, int64_t stride, int64_t pad, int *y)
{
    const int64_t kernel_shape[2] = {kernel, kernel}, strides[2] = {stride, stride}, pads[4] = {pad, pad, pad, pad};
    sfp_node_t *node = NULL;
    int rc;
    if ((rc = arch_node(n, "MaxPool", name, &x, 1, NULL, y, &node)) < 0) return rc;
    if ((rc = node_set_attr_ints(node, "kernel_shape", kernel_shape, 2, n->err)) < 0) return rc;
    if ((rc = node_set_attr_ints(node, "pads", pads, 4, n->err)) < 0) return rc;
    return node_set_attr_ints(node, "strides", strides, 2, n->err);
}

int arch_classifier(arch_net_t *n, int x, int64_t features, int64_t classes, int *y)
{
    const int64_t w_dims[2] = {classes, features};
    const double bound = 1.0 / sqrt((double)features);
    sfp_tensor_t *w = NULL, *b = NULL;
    sfp_node_t *node = NULL;
    int pooled = -1, flat = -1, rc;
    if ((rc = arch_node(n, "GlobalAveragePool", "avgpool", &x, 1, NULL, &pooled, NULL)) < 0) return rc;
    if ((rc = arch_node(n, "Flatten", "flatten", &pooled, 1, NULL, &flat, &node)) < 0) return rc;
    if ((rc = node_set_attr_int(node, "axis", 1, n->err)) < 0) return rc;
    int ins[3] = {flat, -1, -1};
    if ((rc = arch_param(n, "fc", "weight", 2, w_dims, &ins[1], &w)) < 0) return rc;
    if ((rc = arch_param(n, "fc", "bias", 1, &classes, &ins[2], &b)) < 0) return rc;
    /* nn.Linear: kaiming_uniform_(a=sqrt(5)) gives bound 1/sqrt(fan_in), the bias the same. */
    arch_fill_uniform(&n->rng, w, bound);
    arch_fill_uniform(&n->rng, b, bound);
    if ((rc = arch_node(n, "Gemm", "fc", ins, 3, "output", y, &node)) < 0) return rc;
    if ((rc = node_set_attr_float(node, "alpha", 1.0f, n->err)) < 0) return rc;
    if ((rc = node_set_attr_float(node, "beta", 1.0f, n->err)) < 0) return rc;
    return node_set_attr_int(node, "transB", 1, n->err);
}
