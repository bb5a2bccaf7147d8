/* CIFAR ResNet-(6n+2) of He et al. 2016 as the SFP code defines it: a 3x3 stem
 * of 16 channels, three stages of n BasicBlocks (16, 32, 64 channels, stride 2
 * entering stages 2 and 3), global average pooling and one linear layer. */
#include "arch/build.h"

int arch_resnet_cifar(arch_net_t *n, int x, int64_t in_c, int64_t blocks_per_stage, char shortcut, int64_t classes,
                      int *y)
{
    static const int64_t stage_channels[3] = {16, 32, 64};
    int conv = -1, bn = -1, h = -1, rc;
    if ((rc = arch_conv(n, "conv1", x, in_c, 16, 3, 1, 1, &conv)) < 0) return rc;
    if ((rc = arch_bn(n, "bn1", conv, 16, &bn)) < 0) return rc;
    if ((rc = arch_relu(n, "relu", bn, &h)) < 0) return rc;
    int64_t c_in = 16;
    for (int stage = 0; stage < 3; stage++) {
        for (int64_t block = 0; block < blocks_per_stage; block++) {
            char prefix[64];
            int64_t stride = stage > 0 && block == 0 ? 2 : 1;
            if ((rc = arch_name(n, prefix, sizeof prefix, "layer%d.%lld", stage + 1, (long long)block)) < 0)
                return rc;
            if ((rc = arch_basic_block(n, prefix, h, c_in, stage_channels[stage], stride, shortcut, &h)) < 0)
                return rc;
            c_in = stage_channels[stage];
        }
    }
    return arch_classifier(n, h, c_in, classes, y);
}
