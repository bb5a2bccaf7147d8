/* Architecture builders of `onnx-sfp init`: standard ResNets built straight into
 * the IR with PyTorch's layer shapes, module names and initialisation, so a
 * model made here equals what the PyTorch definition would export. */
#ifndef SFP_ARCH_H
#define SFP_ARCH_H

#include <stdint.h>

#include "onnxsfp/error.h"
#include "model/model.h"

/* What to build. Borrows arch. The CLI chooses the defaults (CIFAR 3x32x32 and
 * 10 classes, torchvision 3x224x224 and 1000 classes).
 * shortcut: CIFAR ResNets only; 'A' (or 0) = SFP's DownsampleA, AvgPool(1, s2)
 * and Concat(x, x*0); 'B' = Conv1x1 stride 2 + BN. torchvision ResNets always
 * use the Conv1x1 + BN downsample and ignore it. */
typedef struct sfp_arch_opts {
    const char *arch;
    int64_t in_c, in_h, in_w;
    int64_t classes;
    char shortcut;
    uint64_t seed;
} sfp_arch_opts_t;

/* Largest accepted sizes (the IR could take more; nobody needs more). */
#define ARCH_MAX_IN_CHANNELS 4096
#define ARCH_MAX_IN_SIZE 65536
#define ARCH_MAX_CLASSES 1000000
#define ARCH_MAX_CIFAR_DEPTH 20000

/* Builds the model o->arch names, with graph input "input" [N, C, H, W] and
 * output "output" [N, classes] (float, N symbolic), ir_version 8, opset 13.
 * Names: "resnet20/32/44/56/110" or any "resnetN" with N = 6n+2 (CIFAR layout),
 * "resnet18/34/50" (torchvision layout; resnet50 is never the CIFAR one).
 * An unknown name or a bad size gives SFP_EUSAGE. *out is set only on success
 * and owned by the caller (sfp_model_free). The same options give the same
 * weights, bit for bit, on every machine. */
int arch_build(const sfp_arch_opts_t *o, sfp_model_t **out, sfp_error_t *err);

/* The accepted names, one line, for --help text and error messages. */
const char *arch_names(void);

#endif
