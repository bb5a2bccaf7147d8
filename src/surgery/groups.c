/* Channel dependency groups: one union-find over the channel slots of every
 * activation, joined by per-op rules, then channels with the same footprint
 * gathered into groups. No rule is written for a network; each op says how
 * its output channels relate to its input channels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "surgery/surgery.h"

/* Upper bound of channel slots over all activations (a torchvision ResNet-50
 * has about 10^5); ~120 bytes each are allocated. */
#define GROUPS_MAX_SLOTS (1 << 20)

typedef struct uf_ctx {
    const sfp_graph_t *g;
    sfp_groups_t *gs;
    int64_t *base;       /* first slot id of each value */
    int64_t n_slots;
    int64_t *parent;
    bool *blocked;       /* per slot, folded into roots at the end */
    int *source;         /* per slot: producing Conv/Gemm/MatMul node or -1 */
    char (*block_reason)[96];
    int64_t *segments;   /* per value: equal parts a grouped conv reads or makes (1: none) */
} uf_ctx_t;

static int64_t uf_find(uf_ctx_t *u, int64_t a)
{
    while (u->parent[a] != a) {
        u->parent[a] = u->parent[u->parent[a]];
        a = u->parent[a];
    }
    return a;
}

static void uf_union(uf_ctx_t *u, int64_t a, int64_t b)
{
    a = uf_find(u, a);
    b = uf_find(u, b);
    if (a == b) return;
    if (a < b) u->parent[b] = a;
    else u->parent[a] = b;
}

static int64_t slots_of(const uf_ctx_t *u, int v)
{
    return v >= 0 ? u->gs->value_slots[v] : 0;
}

static int64_t slot(const uf_ctx_t *u, int v, int64_t i)
{
    return u->base[v] + i;
}

static void block_value(uf_ctx_t *u, int v, const char *why)
{
    for (int64_t i = 0; i < slots_of(u, v); i++) {
        int64_t s = slot(u, v, i);
        if (!u->blocked[s]) snprintf(u->block_reason[s], sizeof u->block_reason[s], "%s", why);
        u->blocked[s] = true;
    }
}

static void union_same(uf_ctx_t *u, int a, int b)
{
    for (int64_t i = 0; i < slots_of(u, a) && i < slots_of(u, b); i++) uf_union(u, slot(u, a, i), slot(u, b, i));
}

static bool const_all_zero(const sfp_graph_t *g, int v)
{
    const sfp_tensor_t *t = graph_const(g, v);
    if (!t) return false;
    for (int64_t i = 0; i < sfp_tensor_numel(t); i++)
        if (sfp_tensor_get_double(t, i) != 0.0) return false;
    return true;
}

static int cannot_see(const sfp_node_t *n, const char *why, sfp_error_t *err)
{
    return sfp_errorf(err, SFP_EUNSUPPORTED, "node '%s' (%s): channel dependencies cannot be traced through it: %s",
                      sfp_q(n->name), sfp_q(n->op_type), why);
}

/* Binary elementwise op: operands with the output's channel count are joined
 * to it, except the non-constant side of a multiplication by zero. */
static void rule_binary(uf_ctx_t *u, const sfp_node_t *n, const sfp_op_def_t *def)
{
    const sfp_graph_t *g = u->g;
    int out = n->outputs[0];
    bool mul_zero = (def->flags & SFP_OPF_ZERO_ABSORBS) && (const_all_zero(g, n->inputs[0]) || const_all_zero(g, n->inputs[1]) ||
                                                   u->gs->value_zero[n->inputs[0]] || u->gs->value_zero[n->inputs[1]]);
    if (mul_zero) {
        u->gs->value_zero[out] = true;
        return;
    }
    for (int k = 0; k < 2; k++) {
        int x = n->inputs[k];
        if (slots_of(u, x) == slots_of(u, out) && g->values[x].ndim == g->values[out].ndim) union_same(u, x, out);
    }
}

static int rule_conv(uf_ctx_t *u, const sfp_node_t *n, sfp_error_t *err)
{
    const sfp_graph_t *g = u->g;
    int x = n->inputs[0], y = n->outputs[0];
    int64_t group = node_attr_int(n, "group", 1), cin = g->values[x].dims[1], m = g->values[y].dims[1];
    for (int64_t o = 0; o < slots_of(u, y); o++) u->source[slot(u, y, o)] = (int)(n - g->nodes);
    if (group == 1) return 0;
    /* (slot counts checked: an input of another dtype has no channel slots) */
    if (group == cin && m % cin == 0 && slots_of(u, x) == cin && slots_of(u, y) == m) {
        /* depthwise: output o reads input o / multiplier */
        int64_t mult = m / cin;
        for (int64_t o = 0; o < m; o++) uf_union(u, slot(u, y, o), slot(u, x, o / mult));
        return 0;
    }
    (void)err;
    /* other groups: input and output channels come in `group` equal parts;
     * removing as many from each part keeps the conv a group-`group` conv */
    int vals[2] = {x, y};
    for (int k = 0; k < 2; k++) {
        int64_t have = u->segments[vals[k]], n_slots = slots_of(u, vals[k]);
        if (n_slots == 0 || n_slots % group != 0 || (have != 1 && have != group)) {
            block_value(u, x, "grouped convolutions split these channels in different ways");
            block_value(u, y, "grouped convolutions split these channels in different ways");
            return 0;
        }
        u->segments[vals[k]] = group;
    }
    return 0;
}

static void rule_concat(uf_ctx_t *u, const sfp_node_t *n)
{
    const sfp_graph_t *g = u->g;
    int out = n->outputs[0];
    const sfp_value_t *o = &g->values[out];
    int64_t axis = node_attr_int(n, "axis", 0);
    if (axis < 0) axis += o->ndim;
    bool all_zero = true;
    int64_t off = 0;
    for (int i = 0; i < n->n_inputs; i++) {
        int x = n->inputs[i];
        if (!u->gs->value_zero[x]) all_zero = false;
        if (axis == 1 && slots_of(u, x) > slots_of(u, out) - off) { /* mixed dtypes: not all are activations */
            block_value(u, x, "Concat of values that are not all activations");
            block_value(u, out, "Concat of values that are not all activations");
        } else if (axis == 1) {
            for (int64_t c = 0; c < slots_of(u, x); c++) uf_union(u, slot(u, out, off + c), slot(u, x, c));
            off += slots_of(u, x);
        } else {
            union_same(u, x, out);
        }
    }
    u->gs->value_zero[out] = all_zero;
}

static int rule_pad(uf_ctx_t *u, const sfp_node_t *n, sfp_error_t *err)
{
    const sfp_graph_t *g = u->g;
    int x = n->inputs[0], y = n->outputs[0];
    /* channel pads: the input's channel c lands at pads[1] + c */
    int64_t pb = 0;
    const sfp_tensor_t *p = n->n_inputs > 1 && n->inputs[1] >= 0 ? graph_const(g, n->inputs[1]) : NULL;
    if (p) pb = sfp_tensor_get_int(p, 1);
    else {
        const int64_t *pads = NULL;
        if (node_attr_ints(n, "pads", &pads) >= 2) pb = pads[1];
    }
    if (pb < 0 || pb > slots_of(u, y) - slots_of(u, x))
        return cannot_see(n, "negative channel pads (cropping)", err);
    for (int64_t c = 0; c < slots_of(u, x); c++) uf_union(u, slot(u, y, pb + c), slot(u, x, c));
    u->gs->value_zero[y] = u->gs->value_zero[x];
    return 0;
}

static void rule_slice(uf_ctx_t *u, const sfp_node_t *n)
{
    int x = n->inputs[0], y = n->outputs[0];
    if (slots_of(u, x) == slots_of(u, y) && u->g->values[x].ndim == u->g->values[y].ndim) {
        union_same(u, x, y); /* channel axis untouched: spatial slicing (A-pad shortcut) */
        u->gs->value_zero[y] = u->gs->value_zero[x];
        return;
    }
    block_value(u, x, "Slice on the channel axis");
    block_value(u, y, "Slice on the channel axis");
}

/* Flatten/Reshape: [N, C, rest...] -> [N, C * rest] maps feature c*rest+j to
 * channel c; a reshape that keeps [N, C, ...] keeps channels. */
static void rule_reshape(uf_ctx_t *u, const sfp_node_t *n)
{
    const sfp_graph_t *g = u->g;
    int x = n->inputs[0], y = n->outputs[0];
    const sfp_value_t *xv = &g->values[x], *yv = &g->values[y];
    if (!slots_of(u, x) && !slots_of(u, y)) return;
    if (xv->ndim >= 2 && yv->ndim >= 2 && xv->dims[0] == yv->dims[0] && slots_of(u, x) == xv->dims[1] &&
        slots_of(u, y) == yv->dims[1]) {
        int64_t rest = 1;
        for (int k = 2; k < xv->ndim; k++) rest *= xv->dims[k];
        if (yv->ndim == 2 && yv->dims[1] == xv->dims[1] * rest) {
            for (int64_t c = 0; c < xv->dims[1]; c++)
                for (int64_t j = 0; j < rest; j++) uf_union(u, slot(u, y, c * rest + j), slot(u, x, c));
            return;
        }
        if (yv->dims[1] == xv->dims[1]) {
            union_same(u, x, y);
            return;
        }
    }
    block_value(u, x, "reshape that mixes channels");
    block_value(u, y, "reshape that mixes channels");
}

/* Gemm/MatMul: output features are made here; input features are summed over. */
static void rule_dense(uf_ctx_t *u, const sfp_node_t *n)
{
    const sfp_graph_t *g = u->g;
    int x = n->inputs[0], y = n->outputs[0];
    if (node_attr_int(n, "transA", 0) || g->values[x].ndim != 2) block_value(u, x, "matrix product over a non-feature axis");
    for (int i = 1; i < n->n_inputs; i++)
        if (n->inputs[i] >= 0 && slots_of(u, n->inputs[i]) && !graph_const(g, n->inputs[i]))
            block_value(u, n->inputs[i], "product of two activations");
    if (g->values[y].ndim == 2)
        for (int64_t o = 0; o < slots_of(u, y); o++) u->source[slot(u, y, o)] = (int)(n - g->nodes);
    else block_value(u, y, "batched matrix product");
}

/* Joins the node's channel slots as its row's rule says. */
static int apply_rule(uf_ctx_t *u, const sfp_node_t *n, sfp_error_t *err)
{
    int x = n->n_inputs > 0 ? n->inputs[0] : -1, y = n->n_outputs > 0 ? n->outputs[0] : -1;
    /* Nodes that touch no channel-carrying value have nothing to say. */
    bool touches = false;
    for (int i = 0; i < n->n_inputs; i++)
        if (slots_of(u, n->inputs[i])) touches = true;
    for (int i = 0; i < n->n_outputs; i++)
        if (slots_of(u, n->outputs[i])) touches = true;
    if (!touches) return 0;
    const sfp_op_def_t *def = op_of(n);
    switch (def ? def->chan : SFP_CHAN_UNKNOWN) {
    case SFP_CHAN_NONE: return 0;
    case SFP_CHAN_SAME:
        union_same(u, x, y);
        if (def->flags & SFP_OPF_ZERO_KEEPS) u->gs->value_zero[y] = u->gs->value_zero[x];
        return 0;
    case SFP_CHAN_BROADCAST: rule_binary(u, n, def); return 0;
    case SFP_CHAN_CONV: return rule_conv(u, n, err);
    case SFP_CHAN_DENSE: rule_dense(u, n); return 0;
    case SFP_CHAN_CONCAT: rule_concat(u, n); return 0;
    case SFP_CHAN_PAD: return rule_pad(u, n, err);
    case SFP_CHAN_SLICE: rule_slice(u, n); return 0;
    case SFP_CHAN_RESHAPE: rule_reshape(u, n); return 0;
    case SFP_CHAN_MIXES: {
        char why[96];
        snprintf(why, sizeof why, "%.40s mixes or normalises across channels", n->op_type);
        block_value(u, x, why);
        block_value(u, y, why);
        return 0;
    }
    case SFP_CHAN_UNKNOWN: break;
    }
    /* Channels that cannot be followed through a node stay whole on both
     * sides; the rest of the network is still pruned. */
    char why[160];
    snprintf(why, sizeof why, "channels cannot be followed through node '%.60s' (%.40s)", n->name, n->op_type);
    for (int i = 0; i < n->n_inputs; i++) block_value(u, n->inputs[i], why);
    for (int i = 0; i < n->n_outputs; i++) block_value(u, n->outputs[i], why);
    return 0;
}

/* Whether a removed channel is exactly zero in value y of node n in the
 * masked model, given its inputs' (zero[]): layers make zeros (their filter
 * rows are zeroed) and so do normalisations (scale and shift zeroed);
 * zero-keeping ops and channel moves keep them; Mul keeps a zero operand's;
 * Add/Sub need every operand zero on the channel (a per-channel constant is
 * zeroed with it, a scalar is not); anything else (Sigmoid: f(0) = 0.5,
 * Softmax, Div) does not. */
static bool zero_after(const uf_ctx_t *u, const sfp_node_t *n, const sfp_op_def_t *def, const bool *zero)
{
    const sfp_graph_t *g = u->g;
    int x = n->n_inputs > 0 ? n->inputs[0] : -1;
    if (!def) return false;
    if (def->flags & (SFP_OPF_FILTERS | SFP_OPF_NORM)) return true;
    if (def->flags & SFP_OPF_ZERO_KEEPS) return x >= 0 && zero[x];
    if (def->chan == SFP_CHAN_BROADCAST && (def->flags & SFP_OPF_ZERO_ABSORBS)) {
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && zero[n->inputs[k]]) return true;
        return false;
    }
    if (def->chan == SFP_CHAN_BROADCAST && (def->flags & SFP_OPF_SHIFT)) {
        int y = n->outputs[0];
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0 || zero[v] || const_all_zero(g, v)) continue;
            const sfp_tensor_t *c = graph_const(g, v);
            int axis = c ? 1 - (g->values[y].ndim - c->ndim) : -1;
            /* a per-channel constant operand is scaled (zeroed) with its channel */
            if (c && axis >= 0 && axis < c->ndim && c->dims[axis] == slots_of(u, y) && slots_of(u, y) > 1) continue;
            return false;
        }
        return true;
    }
    if (def->chan == SFP_CHAN_CONCAT) {
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && slots_of(u, n->inputs[k]) && !zero[n->inputs[k]]) return false;
        return true;
    }
    if (def->chan == SFP_CHAN_PAD || def->chan == SFP_CHAN_SLICE || def->chan == SFP_CHAN_RESHAPE)
        return x >= 0 && zero[x];
    return false;
}

/* The masked model zeroes a removed channel where it is made; the pruned
 * model has no such channel at all. They compute the same function only if
 * the channel is still zero wherever a layer sums over channels: a channel
 * that passes an op with f(0) != 0 (Sigmoid, relu(x) + 1) before a layer's
 * input is left whole, naming that op. */
static int block_nonzero_reaching_layers(uf_ctx_t *u, sfp_error_t *err)
{
    const sfp_graph_t *g = u->g;
    bool *zero = calloc((size_t)g->n_values + 1, sizeof(bool));
    int *lost_at = malloc(sizeof(int) * ((size_t)g->n_values + 1));
    if (!zero || !lost_at) {
        free(zero);
        free(lost_at);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    for (int v = 0; v < g->n_values; v++) lost_at[v] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const sfp_node_t *n = &g->nodes[i];
        const sfp_op_def_t *def = op_of(n);
        if (def && (def->flags & SFP_OPF_FILTERS) && n->n_inputs > 0 && n->inputs[0] >= 0) {
            int x = n->inputs[0];
            if (slots_of(u, x) && !zero[x] && lost_at[x] >= 0) {
                const sfp_node_t *at = &g->nodes[lost_at[x]];
                char why[160];
                snprintf(why, sizeof why, "a removed channel would pass node '%.50s' (%.30s), where f(0) != 0, into a layer",
                         at->name, at->op_type);
                block_value(u, x, why);
            }
        }
        for (int o = 0; o < n->n_outputs; o++) {
            int y = n->outputs[o];
            if (y < 0 || !slots_of(u, y)) continue;
            zero[y] = o == 0 && zero_after(u, n, def, zero);
            if (zero[y]) continue;
            /* where zero was lost: here, unless an input had lost it already */
            lost_at[y] = i;
            for (int k = 0; k < n->n_inputs; k++)
                if (n->inputs[k] >= 0 && slots_of(u, n->inputs[k]) && !zero[n->inputs[k]] && lost_at[n->inputs[k]] >= 0)
                    lost_at[y] = lost_at[n->inputs[k]];
        }
    }
    free(zero);
    free(lost_at);
    return 0;
}

/* The activations whose channels index a parameter's dims 0 and 1 when node
 * n reads it as input k (-1: none): a Conv weight's rows are the output's
 * channels and (group 1) its columns the input's; a bias or BN parameter
 * follows the output; a Gemm weight follows transB. */
static void param_axes(const uf_ctx_t *u, const sfp_node_t *n, int k, int *axis0, int *axis1)
{
    const sfp_op_def_t *def = op_of(n);
    int x = n->inputs[0], y = n->outputs[0];
    *axis0 = *axis1 = -1;
    if (!def) return;
    if ((def->flags & SFP_OPF_FILTERS) && k == 1) {
        int *out_axis = def->weight_axis(n) == 0 ? axis0 : axis1, *in_axis = out_axis == axis0 ? axis1 : axis0;
        *out_axis = y;
        if (def->chan != SFP_CHAN_CONV || node_attr_int(n, "group", 1) == 1) *in_axis = x;
    } else if ((def->flags & SFP_OPF_FILTERS) && k == 2 && u->g->values[n->inputs[2]].ndim == 1) {
        *axis0 = y;
    } else if ((def->flags & SFP_OPF_NORM) && k >= 1) {
        *axis0 = y;
    }
}

/* One initializer read by several nodes (an nn.Conv2d called twice) is one
 * tensor in the output: the channels that index it are joined across all
 * its readers. (Copies an exporter made of equal values were untied on
 * load: model_untie_aliases.) */
static int join_shared_params(uf_ctx_t *u, sfp_error_t *err)
{
    const sfp_graph_t *g = u->g;
    int *first_node = malloc(sizeof(int) * ((size_t)g->n_values + 1));
    int *first_input = malloc(sizeof(int) * ((size_t)g->n_values + 1));
    if (!first_node || !first_input) {
        free(first_node);
        free(first_input);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    for (int v = 0; v < g->n_values; v++) first_node[v] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const sfp_node_t *n = &g->nodes[i];
        for (int k = 1; k < n->n_inputs && n->n_outputs > 0; k++) {
            int p = n->inputs[k], a0 = -1, a1 = -1, b0 = -1, b1 = -1;
            if (p < 0 || !g->values[p].init) continue;
            if (first_node[p] < 0) {
                first_node[p] = i;
                first_input[p] = k;
                continue;
            }
            param_axes(u, n, k, &a0, &a1);
            param_axes(u, &g->nodes[first_node[p]], first_input[p], &b0, &b1);
            if (a0 >= 0 && b0 >= 0) union_same(u, a0, b0);
            if (a1 >= 0 && b1 >= 0) union_same(u, a1, b1);
        }
    }
    free(first_node);
    free(first_input);
    return 0;
}

/* Sort key of a channel: the values it touches, then its first slot. */
typedef struct chan_rec {
    int64_t root;
    int n;        /* slot entries */
    int *vals;    /* sorted value ids (with repeats) */
    int64_t first_index;
} chan_rec_t;

static int cmp_chan(const void *pa, const void *pb)
{
    const chan_rec_t *a = pa, *b = pb;
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    for (int i = 0; i < a->n; i++)
        if (a->vals[i] != b->vals[i]) return a->vals[i] < b->vals[i] ? -1 : 1;
    if (a->first_index != b->first_index) return a->first_index < b->first_index ? -1 : 1;
    return 0;
}

static bool same_footprint(const chan_rec_t *a, const chan_rec_t *b)
{
    if (a->n != b->n) return false;
    for (int i = 0; i < a->n; i++)
        if (a->vals[i] != b->vals[i]) return false;
    return true;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void groups_free(sfp_groups_t *gs)
{
    if (!gs) return;
    for (int i = 0; i < gs->n; i++) {
        free(gs->g[i].slot_start);
        free(gs->g[i].slot_value);
        free(gs->g[i].slot_index);
        free(gs->g[i].values);
        free(gs->g[i].sources);
        free(gs->g[i].segment);
    }
    free(gs->g);
    free(gs->value_slots);
    free(gs->value_zero);
    free(gs);
}

/* The parts grouped convolutions split group grp into: channel j is in the
 * part its slots' index falls in, for every value a grouped conv splits. A
 * channel whose values disagree, or parts of unequal size, leave the group
 * whole. */
static int group_segments(const uf_ctx_t *u, sfp_chan_group_t *grp, sfp_error_t *err)
{
    grp->n_segments = 1;
    for (int k = 0; k < grp->slot_start[grp->n_channels]; k++)
        if (u->segments[grp->slot_value[k]] > grp->n_segments) grp->n_segments = (int)u->segments[grp->slot_value[k]];
    if (grp->n_segments == 1) return 0;
    grp->segment = malloc(sizeof(int) * (size_t)grp->n_channels);
    int *count = calloc((size_t)grp->n_segments, sizeof(int));
    if (!grp->segment || !count) {
        free(count);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    const char *why = NULL;
    for (int j = 0; j < grp->n_channels && !why; j++) {
        grp->segment[j] = -1;
        for (int k = grp->slot_start[j]; k < grp->slot_start[j + 1]; k++) {
            int v = grp->slot_value[k];
            int64_t parts = u->segments[v];
            if (parts == 1) continue;
            int seg = (int)(grp->slot_index[k] / (slots_of(u, v) / parts));
            if (parts != grp->n_segments || (grp->segment[j] >= 0 && grp->segment[j] != seg))
                why = "grouped convolutions split these channels in different ways";
            grp->segment[j] = seg;
        }
        if (!why && grp->segment[j] < 0) why = "grouped convolutions split only some of these channels";
        if (!why) count[grp->segment[j]]++;
    }
    for (int sgm = 1; sgm < grp->n_segments && !why; sgm++)
        if (count[sgm] != count[0]) why = "a grouped convolution's parts of these channels differ in size";
    free(count);
    if (why && grp->prunable) {
        grp->prunable = false;
        snprintf(grp->reason, sizeof grp->reason, "%s", why);
    }
    return 0;
}

/* Builds group records from the union-find: channels with equal footprints. */
static int collect(uf_ctx_t *u, sfp_error_t *err)
{
    const sfp_graph_t *g = u->g;
    sfp_groups_t *gs = u->gs;
    int64_t S = u->n_slots;
    int rc = 0;
    int64_t *root_chan = malloc(sizeof(int64_t) * (size_t)(S ? S : 1));
    int *owner = malloc(sizeof(int) * (size_t)(S ? S : 1)); /* slot -> value id */
    chan_rec_t *ch = calloc((size_t)(S ? S : 1), sizeof *ch);
    int *fill = calloc((size_t)(S ? S : 1), sizeof(int));
    if (!root_chan || !owner || !ch || !fill) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto out;
    }
    for (int v = 0; v < g->n_values; v++)
        for (int64_t i = 0; i < slots_of(u, v); i++) owner[slot(u, v, i)] = v;
    int64_t n_ch = 0;
    for (int64_t s = 0; s < S; s++) root_chan[s] = -1;
    for (int64_t s = 0; s < S; s++) {
        int64_t r = uf_find(u, s);
        if (root_chan[r] < 0) {
            root_chan[r] = n_ch;
            ch[n_ch].root = r;
            ch[n_ch].first_index = s - u->base[owner[s]];
            n_ch++;
        }
        ch[root_chan[r]].n++;
        if (u->blocked[s]) {
            if (!u->blocked[r]) memcpy(u->block_reason[r], u->block_reason[s], sizeof u->block_reason[r]);
            u->blocked[r] = true;
        }
    }
    for (int64_t c = 0; c < n_ch; c++) {
        ch[c].vals = malloc(sizeof(int) * (size_t)ch[c].n);
        if (!ch[c].vals) {
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
            goto out;
        }
    }
    for (int64_t s = 0; s < S; s++) {
        int64_t c = root_chan[uf_find(u, s)];
        ch[c].vals[fill[c]++] = owner[s];
    }
    for (int64_t c = 0; c < n_ch; c++) qsort(ch[c].vals, (size_t)ch[c].n, sizeof(int), cmp_int);
    /* remember each channel's root before sorting reorders records */
    qsort(ch, (size_t)n_ch, sizeof *ch, cmp_chan);
    int n_groups = 0;
    for (int64_t c = 0; c < n_ch; c++)
        if (c == 0 || !same_footprint(&ch[c - 1], &ch[c])) n_groups++;
    gs->g = calloc((size_t)(n_groups ? n_groups : 1), sizeof *gs->g);
    if (!gs->g) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto out;
    }
    gs->n = n_groups;
    for (int64_t c = 0; c < n_ch; c++) root_chan[ch[c].root] = c; /* root -> sorted position */
    int64_t start = 0;
    for (int gi = 0; gi < n_groups; gi++) {
        int64_t end = start + 1;
        while (end < n_ch && same_footprint(&ch[start], &ch[end])) end++;
        sfp_chan_group_t *grp = &gs->g[gi];
        int per = ch[start].n;
        grp->n_channels = (int)(end - start);
        grp->slot_start = malloc(sizeof(int) * (size_t)(grp->n_channels + 1));
        grp->slot_value = malloc(sizeof(int) * (size_t)(grp->n_channels * per));
        grp->slot_index = malloc(sizeof(int64_t) * (size_t)(grp->n_channels * per));
        grp->values = malloc(sizeof(int) * (size_t)per);
        grp->sources = malloc(sizeof(int) * (size_t)per);
        if (!grp->slot_start || !grp->slot_value || !grp->slot_index || !grp->values || !grp->sources) {
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
            goto out;
        }
        for (int j = 0; j < grp->n_channels; j++) grp->slot_start[j] = j * per;
        grp->slot_start[grp->n_channels] = grp->n_channels * per;
        for (int k = 0; k < per; k++)
            if (k == 0 || ch[start].vals[k] != ch[start].vals[k - 1]) grp->values[grp->n_values++] = ch[start].vals[k];
        bool blocked = false;
        const char *why = "";
        for (int64_t c = start; c < end; c++)
            if (u->blocked[ch[c].root]) {
                blocked = true;
                why = u->block_reason[ch[c].root];
            }
        grp->prunable = !blocked;
        snprintf(grp->reason, sizeof grp->reason, "%s", blocked ? why : "");
        start = end;
    }
    /* fill slots channel by channel, in slot order so index order is natural */
    int *pos = calloc((size_t)(n_ch ? n_ch : 1), sizeof(int));
    if (!pos) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto out;
    }
    int64_t *chan_group = malloc(sizeof(int64_t) * (size_t)(n_ch ? n_ch : 1));
    int *chan_local = malloc(sizeof(int) * (size_t)(n_ch ? n_ch : 1));
    if (!chan_group || !chan_local) {
        free(pos);
        free(chan_group);
        free(chan_local);
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto out;
    }
    for (int gi = 0, c = 0; gi < n_groups; gi++)
        for (int j = 0; j < gs->g[gi].n_channels; j++, c++) {
            chan_group[c] = gi;
            chan_local[c] = j;
        }
    for (int64_t s = 0; s < S; s++) {
        int64_t c = root_chan[uf_find(u, s)];
        sfp_chan_group_t *grp = &gs->g[chan_group[c]];
        int at = grp->slot_start[chan_local[c]] + pos[c]++;
        grp->slot_value[at] = owner[s];
        grp->slot_index[at] = s - u->base[owner[s]];
        int src = u->source[s];
        if (src >= 0) {
            bool seen = false;
            for (int k = 0; k < grp->n_sources; k++)
                if (grp->sources[k] == src) seen = true;
            if (!seen) grp->sources[grp->n_sources++] = src;
        }
    }
    free(pos);
    free(chan_group);
    free(chan_local);
    for (int gi = 0; gi < n_groups && rc == 0; gi++) rc = group_segments(u, &gs->g[gi], err);
    for (int gi = 0; gi < n_groups; gi++) {
        sfp_chan_group_t *grp = &gs->g[gi];
        qsort(grp->sources, (size_t)grp->n_sources, sizeof(int), cmp_int);
        if (grp->prunable && grp->n_sources == 0) {
            grp->prunable = false;
            snprintf(grp->reason, sizeof grp->reason, "no layer produces these channels (constant or zero)");
        }
        const char *first = grp->n_sources ? g->nodes[grp->sources[0]].name : g->values[grp->values[0]].name;
        if (grp->n_sources > 1)
            snprintf(grp->label, sizeof grp->label, "%s (+%d coupled)", first, grp->n_sources - 1);
        else
            snprintf(grp->label, sizeof grp->label, "%s", first);
    }
out:
    if (ch)
        for (int64_t c = 0; c < S; c++) free(ch[c].vals);
    free(ch);
    free(fill);
    free(owner);
    free(root_chan);
    return rc;
}

/* Groups in graph order: by their first producing layer, then first value. */
static int cmp_group(const void *pa, const void *pb)
{
    const sfp_chan_group_t *a = pa, *b = pb;
    int ka = a->n_sources ? a->sources[0] : 1 << 30, kb = b->n_sources ? b->sources[0] : 1 << 30;
    if (ka != kb) return ka < kb ? -1 : 1;
    return (a->values[0] > b->values[0]) - (a->values[0] < b->values[0]);
}

int groups_find(sfp_model_t *m, sfp_groups_t **out, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int rc = 0;
    if (g->batch != 1 && (rc = model_infer_shapes(m, 1, err)) < 0) return rc;
    sfp_groups_t *gs = calloc(1, sizeof *gs);
    uf_ctx_t u = {g, gs, NULL, 0, NULL, NULL, NULL, NULL, NULL};
    if (!gs) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    gs->n_values = g->n_values;
    gs->value_slots = calloc((size_t)g->n_values + 1, sizeof(int64_t));
    gs->value_zero = calloc((size_t)g->n_values + 1, sizeof(bool));
    u.base = calloc((size_t)g->n_values + 1, sizeof(int64_t));
    u.segments = malloc(sizeof(int64_t) * ((size_t)g->n_values + 1));
    if (!gs->value_slots || !gs->value_zero || !u.base || !u.segments) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto out;
    }
    for (int v = 0; v < g->n_values; v++) {
        const sfp_value_t *val = &g->values[v];
        u.segments[v] = 1;
        bool activation = !val->init && !val->folded && val->dtype == SFP_DT_FLOAT && val->ndim >= 2;
        gs->value_slots[v] = activation ? val->dims[1] : 0;
        u.base[v] = u.n_slots;
        u.n_slots += gs->value_slots[v];
        /* ~120 bytes per slot below; declared shapes alone (no weights in the
         * file) could otherwise ask for terabytes. */
        if (u.n_slots > GROUPS_MAX_SLOTS) {
            rc = sfp_errorf(err, SFP_EUNSUPPORTED, "more than %d channels and features to trace (value '%s' has %lld)",
                            GROUPS_MAX_SLOTS, sfp_q(val->name), (long long)gs->value_slots[v]);
            goto out;
        }
    }
    size_t S = (size_t)(u.n_slots ? u.n_slots : 1);
    u.parent = malloc(sizeof(int64_t) * S);
    u.blocked = calloc(S, sizeof(bool));
    u.source = malloc(sizeof(int) * S);
    u.block_reason = calloc(S, sizeof *u.block_reason);
    if (!u.parent || !u.blocked || !u.source || !u.block_reason) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto out;
    }
    for (int64_t s = 0; s < u.n_slots; s++) {
        u.parent[s] = s;
        u.source[s] = -1;
    }
    for (int i = 0; i < g->n_inputs; i++) block_value(&u, g->inputs[i], "model input channels are never pruned");
    for (int i = 0; i < g->n_outputs; i++) block_value(&u, g->outputs[i], "model output channels are never pruned");
    for (int i = 0; i < g->n_nodes && rc == 0; i++) rc = apply_rule(&u, &g->nodes[i], err);
    if (rc == 0) rc = join_shared_params(&u, err);
    if (rc == 0) rc = block_nonzero_reaching_layers(&u, err);
    if (rc == 0) rc = collect(&u, err);
    if (rc == 0) qsort(gs->g, (size_t)gs->n, sizeof *gs->g, cmp_group);
out:
    free(u.base);
    free(u.parent);
    free(u.blocked);
    free(u.source);
    free(u.block_reason);
    free(u.segments);
    if (rc < 0) {
        groups_free(gs);
        return rc;
    }
    *out = gs;
    return 0;
}
