/* Private to src/arch: the weight generator, the layer builders every ResNet
 * shares, and the residual blocks. Layers take an input value id and give
 * their output value id; names are PyTorch module names ("layer1.0.conv1"). */
#ifndef SFP_ARCH_BUILD_H
#define SFP_ARCH_BUILD_H

#include <stdint.h>

#include "arch/arch.h"

/* ---- weights (init_weights.c) ---- */

/* xoshiro256** state seeded through splitmix64, plus the spare normal deviate
 * of the polar method. Only IEEE basic operations and sqrt are used, so a seed
 * gives the same numbers on every machine. */
typedef struct arch_rng {
    uint64_t s[4];
    int has_spare;
    double spare;
} arch_rng_t;

void arch_rng_seed(arch_rng_t *r, uint64_t seed);
uint64_t arch_rng_next(arch_rng_t *r);
/* Uniform in [0, 1) with 53 random bits. */
double arch_rng_uniform(arch_rng_t *r);
/* Standard normal deviate. */
double arch_rng_normal(arch_rng_t *r);

/* Float tensors: N(0, std^2), U(-bound, bound), or one value everywhere. */
void arch_fill_normal(arch_rng_t *r, sfp_tensor_t *t, double std);
void arch_fill_uniform(arch_rng_t *r, sfp_tensor_t *t, double bound);
void arch_fill_const(sfp_tensor_t *t, float value);

/* ---- layers (layers.c) ---- */

/* A graph under construction. Borrows m and err. */
typedef struct arch_net {
    sfp_model_t *m;
    arch_rng_t rng;
    sfp_error_t *err;
} arch_net_t;

/* snprintf into buf that fails (SFP_EUSAGE) instead of truncating. */
int arch_name(arch_net_t *n, char *buf, size_t size, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Node op named name reading values ins[0..n_in); its one output is a new
 * value named out_name (the node's name when NULL). *node stays valid until
 * the next node is added. */
int arch_node(arch_net_t *n, const char *op, const char *name, const int *ins, int n_in, const char *out_name,
              int *y, sfp_node_t **node);
/* New float initializer prefix + "." + leaf, zero-filled; *t is owned by the graph. */
int arch_param(arch_net_t *n, const char *prefix, const char *leaf, int ndim, const int64_t *dims, int *id,
               sfp_tensor_t **t);

/* Conv without bias, x [N,c_in,H,W] -> [N,c_out,H',W'], square kernel;
 * weight "name.weight" [c_out,c_in,k,k] ~ N(0, 2 / (k*k*c_out)) (He, fan_out). */
int arch_conv(arch_net_t *n, const char *name, int x, int64_t c_in, int64_t c_out, int64_t kernel, int64_t stride,
              int64_t pad, int *y);
/* BatchNormalization as PyTorch trains it: epsilon 1e-5, momentum 0.9 (ONNX's
 * convention, 1 - PyTorch's 0.1); weight 1, bias 0, running_mean 0, running_var 1. */
int arch_bn(arch_net_t *n, const char *name, int x, int64_t channels, int *y);
int arch_relu(arch_net_t *n, const char *name, int x, int *y);
int arch_add(arch_net_t *n, const char *name, int a, int b, int *y);
int arch_maxpool(arch_net_t *n, const char *name, int x, int64_t kernel, int64_t stride, int64_t pad, int *y);
/* GlobalAveragePool ("avgpool") + Flatten(axis 1) ("flatten") + Gemm(transB)
 * ("fc"), [N,features,H,W] -> "output" [N,classes]; fc.weight and fc.bias
 * ~ U(-1/sqrt(features), 1/sqrt(features)) as nn.Linear's default. */
int arch_classifier(arch_net_t *n, int x, int64_t features, int64_t classes, int *y);

/* ---- residual blocks (blocks.c) ---- */

/* BasicBlock "prefix": conv3x3(stride)-bn-relu-conv3x3-bn, Add shortcut, Relu.
 * When stride != 1 or c_in != c_out the shortcut is shortcut 'A' (SFP's
 * DownsampleA) or 'B' (conv1x1 + BN, "prefix.downsample.0/1"). */
int arch_basic_block(arch_net_t *n, const char *prefix, int x, int64_t c_in, int64_t c_out, int64_t stride,
                     char shortcut, int *y);
/* Bottleneck (torchvision v1.5, expansion 4, stride on the 3x3 conv):
 * conv1x1(width)-bn-relu-conv3x3(stride)-bn-relu-conv1x1(4*width)-bn, Add, Relu;
 * downsample conv1x1 + BN when stride != 1 or c_in != 4*width. */
int arch_bottleneck(arch_net_t *n, const char *prefix, int x, int64_t c_in, int64_t width, int64_t stride, int *y);

/* ---- networks (resnet_cifar.c, resnet_tv.c) ---- */

/* CIFAR ResNet-(6*blocks_per_stage+2) from x [N,in_c,H,W]; *y is "output". */
int arch_resnet_cifar(arch_net_t *n, int x, int64_t in_c, int64_t blocks_per_stage, char shortcut, int64_t classes,
                      int *y);

typedef enum arch_tv_block { ARCH_TV_BASIC, ARCH_TV_BOTTLENECK } arch_tv_block_t;
/* torchvision ResNet with four stages of blocks[0..3] blocks. */
int arch_resnet_tv(arch_net_t *n, int x, int64_t in_c, arch_tv_block_t block, const int blocks[4], int64_t classes,
                   int *y);

#endif
