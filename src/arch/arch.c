/* arch_build: checks the options, maps the architecture name to a builder and
 * wraps the network in a model (ir_version 8, opset 13, graph input "input"
 * [N,C,H,W] and output "output" [N,classes] with a symbolic batch N). */
#include <stdlib.h>
#include <string.h>

#include "arch/build.h"
#include "util/util.h"

static const char known_names[] =
    "resnet20, resnet32, resnet44, resnet56, resnet110 (CIFAR; any resnetN with N = 6n+2), "
    "resnet18, resnet34, resnet50 (torchvision)";

const char *arch_names(void) { return known_names; }

/* A network to build: CIFAR blocks per stage, or a torchvision layout. */
typedef struct arch_choice {
    int torchvision;
    int64_t cifar_blocks;
    arch_tv_block_t tv_block;
    int tv_blocks[4];
} arch_choice_t;

/* Depth of "resnetN": N written in decimal without sign or leading zero; -1 otherwise. */
static int64_t resnet_depth(const char *arch)
{
    static const char prefix[] = "resnet";
    if (strncmp(arch, prefix, sizeof prefix - 1) != 0) return -1;
    const char *digits = arch + sizeof prefix - 1;
    size_t len = strlen(digits);
    if (len == 0 || len > 9 || digits[0] == '0') return -1;
    int64_t depth = 0;
    for (size_t i = 0; i < len; i++) {
        if (digits[i] < '0' || digits[i] > '9') return -1;
        depth = depth * 10 + (digits[i] - '0');
    }
    return depth;
}

static int choose(const char *arch, arch_choice_t *c, sfp_error_t *err)
{
    static const struct {
        const char *name;
        arch_tv_block_t block;
        int blocks[4];
    } tv[] = {
        {"resnet18", ARCH_TV_BASIC, {2, 2, 2, 2}},
        {"resnet34", ARCH_TV_BASIC, {3, 4, 6, 3}},
        {"resnet50", ARCH_TV_BOTTLENECK, {3, 4, 6, 3}},
    };
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < sizeof tv / sizeof tv[0]; i++)
        if (!strcmp(arch, tv[i].name)) {
            c->torchvision = 1;
            c->tv_block = tv[i].block;
            memcpy(c->tv_blocks, tv[i].blocks, sizeof c->tv_blocks);
            return 0;
        }
    int64_t depth = resnet_depth(arch);
    if (depth >= 8 && depth <= ARCH_MAX_CIFAR_DEPTH && (depth - 2) % 6 == 0) {
        c->cifar_blocks = (depth - 2) / 6;
        return 0;
    }
    if (depth > 0)
        return sfp_errorf(err, SFP_EUSAGE,
                          "unknown architecture '%s': CIFAR ResNets have depth 6n+2 between 8 and %d; known: %s",
                          sfp_q(arch), ARCH_MAX_CIFAR_DEPTH, known_names);
    return sfp_errorf(err, SFP_EUSAGE, "unknown architecture '%s'; known: %s", sfp_q(arch), known_names);
}

static int check_range(const char *what, int64_t v, int64_t max, sfp_error_t *err)
{
    if (v < 1 || v > max)
        return sfp_errorf(err, SFP_EUSAGE, "%s is %lld, expected 1 to %lld", what, (long long)v, (long long)max);
    return 0;
}

/* Declared type float [N, d1, ...] with dim 0 the symbolic "N". */
static int declare_batched(sfp_value_t *v, int rank, const int64_t *dims, sfp_error_t *err)
{
    v->decl.dtype = SFP_DT_FLOAT;
    v->decl.rank = rank;
    for (int i = 0; i < rank; i++) v->decl.dims[i] = dims[i];
    v->decl.dims[0] = -1;
    free(v->decl.params[0]);
    v->decl.params[0] = sfp_strdup("N");
    if (!v->decl.params[0]) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    return 0;
}

/* Empty model: ir_version 8, default-domain opset 13, producer "onnx-sfp". */
static int model_shell(const char *graph_name, sfp_model_t **out, sfp_error_t *err)
{
    sfp_model_t *m = NULL;
    int rc = model_create(&m, err);
    if (rc < 0) return rc;
    m->ir_version = 8;
    m->opsets = calloc(1, sizeof *m->opsets);
    if (m->opsets) {
        m->n_opsets = 1;
        m->opsets[0].domain = sfp_strdup("");
        m->opsets[0].version = 13;
    }
    m->producer_name = sfp_strdup("onnx-sfp");
    m->graph.name = sfp_strdup(graph_name);
    if (!m->opsets || !m->opsets[0].domain || !m->producer_name || !m->graph.name) {
        sfp_model_free(m);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    *out = m;
    return 0;
}

static int build(const sfp_arch_opts_t *o, const arch_choice_t *c, sfp_model_t *m, sfp_error_t *err)
{
    arch_net_t net = {.m = m, .err = err};
    arch_rng_seed(&net.rng, o->seed);
    const int64_t in_dims[4] = {-1, o->in_c, o->in_h, o->in_w}, out_dims[2] = {-1, o->classes};
    int x = -1, y = -1, rc;
    if ((rc = graph_add_value(&m->graph, "input", &x, err)) < 0) return rc;
    if ((rc = declare_batched(&m->graph.values[x], 4, in_dims, err)) < 0) return rc;
    if ((rc = graph_add_input(&m->graph, x, err)) < 0) return rc;
    if (c->torchvision)
        rc = arch_resnet_tv(&net, x, o->in_c, c->tv_block, c->tv_blocks, o->classes, &y);
    else
        rc = arch_resnet_cifar(&net, x, o->in_c, c->cifar_blocks, o->shortcut ? o->shortcut : 'A', o->classes, &y);
    if (rc < 0) return rc;
    if ((rc = declare_batched(&m->graph.values[y], 2, out_dims, err)) < 0) return rc;
    return graph_add_output(&m->graph, y, err);
}

int arch_build(const sfp_arch_opts_t *o, sfp_model_t **out, sfp_error_t *err)
{
    arch_choice_t choice;
    sfp_model_t *m = NULL;
    int rc;
    if (!o || !o->arch || !out) return sfp_errorf(err, SFP_EUSAGE, "arch_build: no architecture given");
    if ((rc = choose(o->arch, &choice, err)) < 0) return rc;
    if ((rc = check_range("input channels", o->in_c, ARCH_MAX_IN_CHANNELS, err)) < 0 ||
        (rc = check_range("input height", o->in_h, ARCH_MAX_IN_SIZE, err)) < 0 ||
        (rc = check_range("input width", o->in_w, ARCH_MAX_IN_SIZE, err)) < 0 ||
        (rc = check_range("number of classes", o->classes, ARCH_MAX_CLASSES, err)) < 0)
        return rc;
    if (!choice.torchvision && o->shortcut != 0 && o->shortcut != 'A' && o->shortcut != 'B')
        return sfp_errorf(err, SFP_EUSAGE, "shortcut '%c' is not A or B",
                          o->shortcut >= 0x20 && o->shortcut < 0x7f ? o->shortcut : '?');
    if ((rc = model_shell(o->arch, &m, err)) < 0) return rc;
    if ((rc = build(o, &choice, m, err)) < 0) {
        sfp_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}
