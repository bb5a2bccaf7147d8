/* torchvision's ResNet-18/34 (BasicBlock) and ResNet-50 (Bottleneck, v1.5:
 * stride on the 3x3 conv): 7x7/2 stem and 3x3/2 max pooling, four stages of
 * 64, 128, 256, 512 (x4 for Bottleneck) channels, pooling and one linear layer. */
#include "arch/build.h"

int arch_resnet_tv(arch_net_t *n, int x, int64_t in_c, arch_tv_block_t block, const int blocks[4], int64_t classes,
                   int *y)
{
    static const int64_t stage_width[4] = {64, 128, 256, 512};
    const int64_t expansion = block == ARCH_TV_BOTTLENECK ? 4 : 1;
    int conv = -1, bn = -1, relu = -1, h = -1, rc;
    if ((rc = arch_conv(n, "conv1", x, in_c, 64, 7, 2, 3, &conv)) < 0) return rc;
    if ((rc = arch_bn(n, "bn1", conv, 64, &bn)) < 0) return rc;
    if ((rc = arch_relu(n, "relu", bn, &relu)) < 0) return rc;
    if ((rc = arch_maxpool(n, "maxpool", relu, 3, 2, 1, &h)) < 0) return rc;
    int64_t c_in = 64;
    for (int stage = 0; stage < 4; stage++) {
        for (int i = 0; i < blocks[stage]; i++) {
            char prefix[64];
            int64_t stride = stage > 0 && i == 0 ? 2 : 1;
            if ((rc = arch_name(n, prefix, sizeof prefix, "layer%d.%d", stage + 1, i)) < 0) return rc;
            if (block == ARCH_TV_BOTTLENECK)
                rc = arch_bottleneck(n, prefix, h, c_in, stage_width[stage], stride, &h);
            else
                rc = arch_basic_block(n, prefix, h, c_in, stage_width[stage], stride, 'B', &h);
            if (rc < 0) return rc;
            c_in = stage_width[stage] * expansion;
        }
    }
    return arch_classifier(n, h, c_in, classes, y);
}
