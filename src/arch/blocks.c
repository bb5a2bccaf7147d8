/* Residual blocks: the BasicBlock (CIFAR ResNets and torchvision 18/34), the
 * Bottleneck (torchvision 50) and their shortcuts, including SFP's parameter-free
 * DownsampleA, exported as torch exports torch.cat((x, x.mul(0)), 1). */
#include "arch/build.h"

/* SFP's DownsampleA: AveragePool(kernel 1, stride) then Concat(axis 1) of the
 * pooled x and Mul(pooled x, 0), doubling the channels with zeros.
 * x [N,C,H,W] -> [N,2C,H',W']. */
static int shortcut_zero_pad(arch_net_t *n, const char *prefix, int x, int64_t stride, int *y)
{
    const int64_t kernel_shape[2] = {1, 1}, strides[2] = {stride, stride}, pads[4] = {0, 0, 0, 0};
    char name[256], zero_name[256];
    sfp_node_t *node = NULL;
    sfp_tensor_t *zero = NULL;
    int pooled = -1, zeros = -1, zero_id = -1, rc;
    if ((rc = arch_name(n, name, sizeof name, "%s.downsample.avg", prefix)) < 0) return rc;
    if ((rc = arch_node(n, "AveragePool", name, &x, 1, NULL, &pooled, &node)) < 0) return rc;
    if ((rc = node_set_attr_ints(node, "kernel_shape", kernel_shape, 2, n->err)) < 0) return rc;
    if ((rc = node_set_attr_ints(node, "pads", pads, 4, n->err)) < 0) return rc;
    if ((rc = node_set_attr_ints(node, "strides", strides, 2, n->err)) < 0) return rc;

    /* The scalar 0 of x.mul(0): a rank-0 float initializer, already zero. */
    if ((rc = arch_name(n, zero_name, sizeof zero_name, "%s.downsample", prefix)) < 0) return rc;
    if ((rc = arch_param(n, zero_name, "zero", 0, NULL, &zero_id, &zero)) < 0) return rc;
    if ((rc = arch_name(n, name, sizeof name, "%s.downsample.mul", prefix)) < 0) return rc;
    const int mul_in[2] = {pooled, zero_id};
    if ((rc = arch_node(n, "Mul", name, mul_in, 2, NULL, &zeros, NULL)) < 0) return rc;

    if ((rc = arch_name(n, name, sizeof name, "%s.downsample.concat", prefix)) < 0) return rc;
    const int cat_in[2] = {pooled, zeros};
    if ((rc = arch_node(n, "Concat", name, cat_in, 2, NULL, y, &node)) < 0) return rc;
    return node_set_attr_int(node, "axis", 1, n->err);
}

/* torchvision's downsample: Sequential(conv1x1(stride), BatchNorm2d). */
static int shortcut_conv(arch_net_t *n, const char *prefix, int x, int64_t c_in, int64_t c_out, int64_t stride,
                         int *y)
{
    char name[256];
    int conv = -1, rc;
    if ((rc = arch_name(n, name, sizeof name, "%s.downsample.0", prefix)) < 0) return rc;
    if ((rc = arch_conv(n, name, x, c_in, c_out, 1, stride, 0, &conv)) < 0) return rc;
    if ((rc = arch_name(n, name, sizeof name, "%s.downsample.1", prefix)) < 0) return rc;
    return arch_bn(n, name, conv, c_out, y);
}

/* Conv (kernel, stride, pad) then BN, as prefix.convK / prefix.bnK, then a Relu
 * prefix.reluK when relu is set. */
static int conv_bn(arch_net_t *n, const char *prefix, int k, int x, int64_t c_in, int64_t c_out, int64_t kernel,
                   int64_t stride, int relu, int *y)
{
    char name[256];
    int conv = -1, bn = -1, rc;
    if ((rc = arch_name(n, name, sizeof name, "%s.conv%d", prefix, k)) < 0) return rc;
    if ((rc = arch_conv(n, name, x, c_in, c_out, kernel, stride, kernel / 2, &conv)) < 0) return rc;
    if ((rc = arch_name(n, name, sizeof name, "%s.bn%d", prefix, k)) < 0) return rc;
    if ((rc = arch_bn(n, name, conv, c_out, relu ? &bn : y)) < 0) return rc;
    if (!relu) return 0;
    if ((rc = arch_name(n, name, sizeof name, "%s.relu%d", prefix, k)) < 0) return rc;
    return arch_relu(n, name, bn, y);
}

/* prefix.add = residual + shortcut, then prefix.relu. */
static int add_relu(arch_net_t *n, const char *prefix, int residual, int shortcut, int *y)
{
    char name[256];
    int sum = -1, rc;
    if ((rc = arch_name(n, name, sizeof name, "%s.add", prefix)) < 0) return rc;
    if ((rc = arch_add(n, name, residual, shortcut, &sum)) < 0) return rc;
    if ((rc = arch_name(n, name, sizeof name, "%s.relu", prefix)) < 0) return rc;
    return arch_relu(n, name, sum, y);
}

int arch_basic_block(arch_net_t *n, const char *prefix, int x, int64_t c_in, int64_t c_out, int64_t stride,
                     char shortcut, int *y)
{
    int a = -1, b = -1, identity = x, rc;
    if ((rc = conv_bn(n, prefix, 1, x, c_in, c_out, 3, stride, 1, &a)) < 0) return rc;
    if ((rc = conv_bn(n, prefix, 2, a, c_out, c_out, 3, 1, 0, &b)) < 0) return rc;
    if (stride != 1 || c_in != c_out) {
        if (shortcut == 'A') {
            /* Zero padding doubles the channels; SFP's ResNets only ever double them. */
            if (c_out != 2 * c_in)
                return sfp_errorf(n->err, SFP_EUSAGE, "block '%s': shortcut A needs %lld = 2 x %lld channels",
                                  prefix, (long long)c_out, (long long)c_in);
            rc = shortcut_zero_pad(n, prefix, x, stride, &identity);
        } else {
            rc = shortcut_conv(n, prefix, x, c_in, c_out, stride, &identity);
        }
        if (rc < 0) return rc;
    }
    return add_relu(n, prefix, b, identity, y);
}

int arch_bottleneck(arch_net_t *n, const char *prefix, int x, int64_t c_in, int64_t width, int64_t stride, int *y)
{
    const int64_t c_out = 4 * width;
    int a = -1, b = -1, c = -1, identity = x, rc;
    if ((rc = conv_bn(n, prefix, 1, x, c_in, width, 1, 1, 1, &a)) < 0) return rc;
    if ((rc = conv_bn(n, prefix, 2, a, width, width, 3, stride, 1, &b)) < 0) return rc;
    if ((rc = conv_bn(n, prefix, 3, b, width, c_out, 1, 1, 0, &c)) < 0) return rc;
    if (stride != 1 || c_in != c_out)
        if ((rc = shortcut_conv(n, prefix, x, c_in, c_out, stride, &identity)) < 0) return rc;
    return add_relu(n, prefix, c, identity, y);
}
