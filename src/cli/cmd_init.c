/* onnx-sfp init: writes a standard ResNet (CIFAR 6n+2 or torchvision 18/34/50)
 * with He-initialised weights, the starting point of the demo and tests. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "arch/arch.h"
#include "cli/cli.h"

static const cli_opt_t opts[] = {
    {"input", "CxHxW", "input size (CIFAR default 3x32x32, torchvision default 3x224x224)"},
    {"classes", "K", "number of classes (CIFAR default 10, torchvision default 1000)"},
    {"shortcut", "A|B", "CIFAR shortcut: A = zero-padding (SFP's AvgPool+Concat), B = 1x1 conv (default A)"},
    {"seed", "S", "random seed of the weights (default 1)"},
    {0},
};

/* torchvision-style (ImageNet) architectures take 3x224x224 and 1000 classes by default. */
static bool is_imagenet_arch(const char *arch)
{
    return !strcmp(arch, "resnet18") || !strcmp(arch, "resnet34") || !strcmp(arch, "resnet50");
}

static int parse_input(const char *s, sfp_arch_opts_t *o, sfp_error_t *err)
{
    long long c = 0, h = 0, w = 0;
    char tail = 0;
    if (sscanf(s, "%lldx%lldx%lld%c", &c, &h, &w, &tail) != 3 || c < 1 || h < 1 || w < 1 || c > 64 || h > 8192 ||
        w > 8192)
        return sfp_errorf(err, SFP_EUSAGE, "--input: '%s' is not CxHxW (e.g. 3x32x32)", s);
    o->in_c = c;
    o->in_h = h;
    o->in_w = w;
    return 0;
}

static int run(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    sfp_arch_opts_t o = {0};
    int64_t classes = 0, seed = 1;
    int rc;
    o.arch = a->pos[0];
    bool tv = is_imagenet_arch(o.arch);
    o.in_c = 3;
    o.in_h = o.in_w = tv ? 224 : 32;
    const char *input = cli_get(cmd, a, "input");
    if (input && (rc = parse_input(input, &o, err)) < 0) return rc;
    if ((rc = cli_int(cmd, a, "classes", 2, 100000, tv ? 1000 : 10, &classes, err)) < 0) return rc;
    if ((rc = cli_int(cmd, a, "seed", 0, INT64_MAX, 1, &seed, err)) < 0) return rc;
    o.classes = classes;
    o.seed = (uint64_t)seed;
    const char *sc = cli_get(cmd, a, "shortcut");
    o.shortcut = 'A';
    if (sc) {
        if (strcmp(sc, "A") && strcmp(sc, "B") && strcmp(sc, "a") && strcmp(sc, "b"))
            return sfp_errorf(err, SFP_EUSAGE, "--shortcut: '%s' is not A or B", sc);
        o.shortcut = (char)(sc[0] & ~0x20);
    }
    sfp_model_t *m = NULL;
    if ((rc = arch_build(&o, &m, err)) < 0) return rc;
    if ((rc = model_validate(m, err)) == 0 && (rc = model_infer_shapes(m, 1, err)) == 0)
        rc = sfp_model_save(m, a->pos[1], err);
    if (rc == 0 && !a->quiet)
        fprintf(stderr, "onnx-sfp: wrote %s (%s, input %lldx%lldx%lld, %lld classes)\n", a->pos[1], o.arch,
                (long long)o.in_c, (long long)o.in_h, (long long)o.in_w, (long long)o.classes);
    sfp_model_free(m);
    return rc;
}

const cli_cmd_t cmd_init = {
    "init", "ARCH OUT.onnx [--input CxHxW] [--classes K] [--shortcut A|B] [--seed S]",
    "write a standard ResNet with He-initialised weights",
    "ARCH: resnet20, resnet32, resnet44, resnet56, resnet110 (any CIFAR resnet6n+2),\n"
    "resnet18, resnet34, resnet50 (torchvision layout). BatchNormalization stays unfused.",
    opts, 2, 2, run,
};
