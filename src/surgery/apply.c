/* Physical channel removal: every node is rewritten from the masks of its own
 * inputs and outputs, as its op row's shrink rule says: filter weights and
 * biases, normalisation parameters, per-channel constants, channel pads,
 * Reshape targets, Split sizes, channel ranges of Slice; then declared value
 * shapes, and adapters where an x.mul(0) branch no longer has its source's
 * channel count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "surgery/surgery.h"

/* Keeps the entries of axis `axis` of t for which drop(i) is false. */
static int tensor_keep(sfp_tensor_t *t, int axis, const bool *drop, int64_t n_drop_src, sfp_error_t *err)
{
    if (!drop || axis >= t->ndim) return 0;
    int64_t len = t->dims[axis];
    if (len != n_drop_src)
        return sfp_errorf(err, SFP_ERUNTIME, "internal: tensor '%s' axis %d has %lld entries, mask %lld", sfp_q(t->name),
                          axis, (long long)len, (long long)n_drop_src);
    int64_t outer = 1, inner = 1, kept = 0;
    for (int k = 0; k < axis; k++) outer *= t->dims[k];
    for (int k = axis + 1; k < t->ndim; k++) inner *= t->dims[k];
    for (int64_t i = 0; i < len; i++) kept += !drop[i];
    if (kept == len) return 0;
    size_t es = sfp_dtype_size(t->dtype), chunk = (size_t)inner * es;
    char *dst = t->data;
    const char *src = t->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < len; i++) {
            const char *from = src + ((size_t)(o * len + i)) * chunk;
            if (drop[i]) continue;
            if (dst != from) memmove(dst, from, chunk);
            dst += chunk;
        }
    t->dims[axis] = kept;
    t->nbytes = (size_t)(outer * kept) * chunk;
    return 0;
}

/* Exporters deduplicate equal constants (e.g. zero biases), so an
 * initializer shared with other nodes is copied before it is changed. */
int surgery_own_init(sfp_graph_t *g, sfp_node_t *n, int k, sfp_tensor_t **out, sfp_error_t *err)
{
    *out = NULL;
    if (k >= n->n_inputs || n->inputs[k] < 0) return 0;
    int vid = n->inputs[k], uses = 0, rc;
    bool folded = !g->values[vid].init && g->values[vid].folded && !g->values[vid].batch_dep;
    if (!g->values[vid].init && !folded)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "node '%s' (%s): input '%s' must be an initializer to remove channels",
                          sfp_q(n->name), sfp_q(n->op_type), sfp_q(g->values[vid].name));
    for (int i = 0; i < n->n_inputs; i++) uses += n->inputs[i] == vid;
    /* A constant computed by a node (e.g. Identity of a deduplicated bias) or
     * shared with other nodes becomes an initializer of this node's own. */
    if (folded || graph_count_consumers(g, vid) > uses || (g->values[vid].flags & (SFP_VAL_INPUT | SFP_VAL_OUTPUT))) {
        const char *base = g->values[vid].name, *owner = *n->name ? n->name : n->op_type;
        /* Sized to the names: a fixed buffer truncated every candidate to the
         * same string for long names, and the search never ended. */
        size_t cap = strlen(base) + strlen(owner) + 32;
        char *name = malloc(cap);
        sfp_tensor_t *copy = NULL;
        int nid = -1;
        if (!name) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        snprintf(name, cap, "%s_%s", base, owner);
        for (int i = 1; graph_find_value(g, name) >= 0; i++) snprintf(name, cap, "%s_%s_%d", base, owner, i);
        if ((rc = sfp_tensor_clone(graph_const(g, vid), &copy, err)) < 0) {
            free(name);
            return rc;
        }
        rc = graph_add_value(g, name, &nid, err);
        free(name);
        if (rc < 0) {
            sfp_tensor_free(copy);
            return rc;
        }
        if ((rc = graph_set_init(g, nid, copy, err)) < 0) return rc;
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] == vid) n->inputs[i] = nid;
        vid = nid;
    }
    *out = g->values[vid].init;
    return 0;
}

/* A grouped conv's weight (M', C/group, k...) after its rows were kept: row o
 * of part p (the rows come in `group` equal parts) reads input channels
 * [p C/group, (p + 1) C/group); each part keeps the columns of the input
 * channels its part kept. The selection took as many from every part, so
 * group stays. in_mask: the input's removed channels (NULL: none). */
static int keep_grouped_columns(sfp_tensor_t *w, const bool *in_mask, int64_t cin, int64_t group, sfp_error_t *err)
{
    if (!in_mask) return 0;
    const int64_t per_in = cin / group, rows = w->dims[0], rows_per_part = rows / group;
    int64_t inner = 1, kept = -1;
    for (int d = 2; d < w->ndim; d++) inner *= w->dims[d];
    for (int64_t part = 0; part < group; part++) {
        int64_t k = 0;
        for (int64_t j = 0; j < per_in; j++) k += !in_mask[part * per_in + j];
        if (kept >= 0 && k != kept)
            return sfp_errorf(err, SFP_ERUNTIME, "internal: tensor '%s': parts of a grouped conv keep %lld and %lld inputs",
                              sfp_q(w->name), (long long)kept, (long long)k);
        kept = k;
    }
    if (rows % group != 0 || w->dims[1] != per_in)
        return sfp_errorf(err, SFP_ERUNTIME, "internal: tensor '%s' does not fit group %lld", sfp_q(w->name), (long long)group);
    size_t chunk = (size_t)inner * sfp_dtype_size(w->dtype);
    char *dst = w->data;
    for (int64_t o = 0; o < rows; o++) {
        const int64_t part = o / rows_per_part;
        for (int64_t j = 0; j < per_in; j++) {
            const char *from = (const char *)w->data + (size_t)(o * per_in + j) * chunk;
            if (in_mask[part * per_in + j]) continue;
            if (dst != from) memmove(dst, from, chunk);
            dst += chunk;
        }
    }
    w->dims[1] = kept;
    w->nbytes = (size_t)(rows * kept) * chunk;
    return 0;
}

/* A conv weight (M, C/group, k...): rows by the output's mask; columns by the
 * input's (group 1), part by part (grouped), or the group count with a
 * depthwise input (group C: output o reads input o / multiplier). */
static int shrink_conv(sfp_graph_t *g, sfp_node_t *n, const sfp_groups_t *gs, const sfp_removal_t *r, sfp_error_t *err)
{
    int x = n->inputs[0], y = n->outputs[0], rc;
    sfp_tensor_t *w = NULL, *b = NULL;
    if ((rc = surgery_own_init(g, n, 0 + 1, &w, err)) < 0 || (rc = surgery_own_init(g, n, 2, &b, err)) < 0) return rc;
    int64_t group = node_attr_int(n, "group", 1), cin = gs->value_slots[x];
    if ((rc = tensor_keep(w, 0, r->masks[y], gs->value_slots[y], err)) < 0) return rc;
    if (b && (rc = tensor_keep(b, 0, r->masks[y], gs->value_slots[y], err)) < 0) return rc;
    if (group == 1) return tensor_keep(w, 1, r->masks[x], cin, err);
    if (group != cin) return keep_grouped_columns(w, r->masks[x], cin, group, err);
    int64_t new_in = cin - removal_removed(r, gs, x);
    if (new_in != group) return node_set_attr_int(n, "group", new_in, err);
    return 0;
}

/* A 2-D weight: output features on the row's weight axis, input features on
 * the other; a bias (input 2) whose last axis holds the output features. */
static int shrink_matrix(sfp_graph_t *g, sfp_node_t *n, int out_axis, const sfp_groups_t *gs, const sfp_removal_t *r,
                         sfp_error_t *err)
{
    int a = n->inputs[0], y = n->outputs[0], rc;
    sfp_tensor_t *w = NULL, *c = NULL;
    if (!r->masks[a] && !r->masks[y]) return 0;
    if ((rc = surgery_own_init(g, n, 1, &w, err)) < 0) return rc;
    if ((rc = tensor_keep(w, 1 - out_axis, r->masks[a], gs->value_slots[a], err)) < 0) return rc;
    if ((rc = tensor_keep(w, out_axis, r->masks[y], gs->value_slots[y], err)) < 0) return rc;
    if (r->masks[y] && n->n_inputs > 2 && n->inputs[2] >= 0) {
        if ((rc = surgery_own_init(g, n, 2, &c, err)) < 0) return rc;
        if (c->ndim >= 1 && c->dims[c->ndim - 1] == gs->value_slots[y])
            return tensor_keep(c, c->ndim - 1, r->masks[y], gs->value_slots[y], err);
    }
    return 0;
}

/* Filters ops: a conv weight has rank >= 3, a matrix product's rank 2. */
static int shrink_filters(sfp_graph_t *g, sfp_node_t *n, const sfp_op_def_t *def, const sfp_groups_t *gs,
                          const sfp_removal_t *r, sfp_error_t *err)
{
    if (def->chan == SFP_CHAN_CONV) return shrink_conv(g, n, gs, r, err);
    return shrink_matrix(g, n, def->weight_axis(n), gs, r, err);
}

static int shrink_norm(sfp_graph_t *g, sfp_node_t *n, const sfp_groups_t *gs, const sfp_removal_t *r, sfp_error_t *err)
{
    int x = n->inputs[0], rc;
    for (int k = 1; k < 5; k++) {
        sfp_tensor_t *p = NULL;
        if ((rc = surgery_own_init(g, n, k, &p, err)) < 0) return rc;
        if ((rc = tensor_keep(p, 0, r->masks[x], gs->value_slots[x], err)) < 0) return rc;
    }
    return 0;
}

/* Per-channel constant operands of elementwise ops follow the output's mask. */
static int shrink_binary(sfp_graph_t *g, sfp_node_t *n, const sfp_groups_t *gs, const sfp_removal_t *r, sfp_error_t *err)
{
    int y = n->outputs[0], rc;
    if (!r->masks[y]) return 0;
    const sfp_value_t *yv = &g->values[y];
    for (int k = 0; k < 2; k++) {
        const sfp_value_t *xv = &g->values[n->inputs[k]];
        if (!xv->init) continue;
        int axis = 1 - (yv->ndim - xv->init->ndim);
        if (axis < 0 || xv->init->dims[axis] == 1) continue;
        sfp_tensor_t *t = NULL;
        if ((rc = surgery_own_init(g, n, k, &t, err)) < 0) return rc;
        if ((rc = tensor_keep(t, axis, r->masks[y], gs->value_slots[y], err)) < 0) return rc;
    }
    return 0;
}

/* Channel pads count zero channels: drop the removed ones from the counts. */
static int shrink_pad(sfp_graph_t *g, sfp_node_t *n, const sfp_removal_t *r, sfp_error_t *err)
{
    int x = n->inputs[0], y = n->outputs[0], rank = g->values[x].ndim;
    int64_t in_c = g->values[x].dims[1], out_c = g->values[y].dims[1];
    if (!r->masks[y] || in_c == out_c) return 0;
    int64_t pb = 0, pe = 0;
    sfp_tensor_t *t = NULL;
    sfp_attr_t *a = NULL;
    if (n->n_inputs > 1 && n->inputs[1] >= 0) {
        int rc = surgery_own_init(g, n, 1, &t, err);
        if (rc < 0) return rc;
        pb = sfp_tensor_get_int(t, 1);
        pe = sfp_tensor_get_int(t, 1 + rank);
    } else {
        a = (sfp_attr_t *)node_attr(n, "pads");
        if (!a || a->n < (size_t)(2 * rank)) return sfp_errorf(err, SFP_EBADMODEL, "node '%s' (Pad): no pads", sfp_q(n->name));
        pb = a->ints[1];
        pe = a->ints[1 + rank];
    }
    int64_t gone_b = 0, gone_e = 0;
    for (int64_t i = 0; i < pb; i++) gone_b += removal_slot_removed(r, y, i);
    for (int64_t i = out_c - pe; i < out_c; i++) gone_e += removal_slot_removed(r, y, i);
    if (t && t->dtype == SFP_DT_INT32) { /* (ONNX says int64; int32 pads are read too) */
        ((int32_t *)t->data)[1] = (int32_t)(pb - gone_b);
        ((int32_t *)t->data)[1 + rank] = (int32_t)(pe - gone_e);
    } else if (t) {
        ((int64_t *)t->data)[1] = pb - gone_b;
        ((int64_t *)t->data)[1 + rank] = pe - gone_e;
    } else {
        a->ints[1] = pb - gone_b;
        a->ints[1 + rank] = pe - gone_e;
    }
    return 0;
}

/* A Reshape target that spells out the channel/feature count is rewritten. */
static int shrink_reshape(sfp_graph_t *g, sfp_node_t *n, const sfp_groups_t *gs, const sfp_removal_t *r, sfp_error_t *err)
{
    int y = n->outputs[0];
    int64_t gone = removal_removed(r, gs, y);
    if (!gone) return 0;
    const sfp_tensor_t *k = graph_const(g, n->inputs[1]);
    if (!k || sfp_tensor_numel(k) < 2 || sfp_tensor_get_int(k, 1) <= 0) return 0;
    sfp_tensor_t *t = NULL;
    int rc = surgery_own_init(g, n, 1, &t, err);
    if (rc < 0) return rc;
    if (t->dtype == SFP_DT_INT64) ((int64_t *)t->data)[1] -= gone;
    else ((int32_t *)t->data)[1] -= (int32_t)gone;
    return 0;
}

/* A new int64 initializer holding values[0..count), named after base; *id. */
static int add_int_init(sfp_graph_t *g, const char *base, const char *suffix, const int64_t *values, int64_t count,
                        int *id, sfp_error_t *err)
{
    size_t cap = strlen(base) + strlen(suffix) + 32;
    char *name = malloc(cap);
    sfp_tensor_t *t = NULL;
    if (!name) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    snprintf(name, cap, "%s%s", base, suffix);
    for (int i = 1; graph_find_value(g, name) >= 0; i++) snprintf(name, cap, "%s%s_%d", base, suffix, i);
    int rc = sfp_tensor_create(NULL, SFP_DT_INT64, 1, &count, &t, err);
    if (rc == 0) {
        if (count) memcpy(t->data, values, sizeof(int64_t) * (size_t)count);
        rc = graph_add_value(g, name, id, err);
        if (rc == 0) rc = graph_set_init(g, *id, t, err);
        else sfp_tensor_free(t);
    }
    free(name);
    return rc;
}

/* Split on the channel axis: every output's size drops by its removed
 * channels. Sizes that were implied (equal parts, num_outputs) are written
 * out: an attribute before opset 13, an initializer input from 13. */
static int shrink_split(sfp_model_t *m, sfp_node_t *n, const sfp_groups_t *gs, const sfp_removal_t *r,
                        sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int axis = 0, rc, count = n->n_outputs;
    int64_t *sizes = malloc(sizeof(int64_t) * (size_t)count);
    bool changed = false;
    if (!sizes) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    if ((rc = op_split_sizes(g, n, &axis, sizes, err)) < 0 || axis != 1) goto out;
    for (int i = 0; i < count; i++) {
        int64_t gone = removal_removed(r, gs, n->outputs[i]);
        sizes[i] -= gone;
        changed |= gone > 0;
    }
    if (!changed) goto out;
    sfp_tensor_t *t = NULL;
    if (n->n_inputs > 1 && n->inputs[1] >= 0) {
        if ((rc = surgery_own_init(g, n, 1, &t, err)) < 0) goto out;
        for (int i = 0; i < count; i++) {
            if (t->dtype == SFP_DT_INT32) ((int32_t *)t->data)[i] = (int32_t)sizes[i];
            else ((int64_t *)t->data)[i] = sizes[i];
        }
    } else if (sfp_model_opset(m, "") < 13) {
        rc = node_set_attr_ints(n, "split", sizes, (size_t)count, err);
    } else {
        int vid = -1;
        int *inputs = realloc(n->inputs, sizeof(int) * 2);
        if (!inputs) {
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
            goto out;
        }
        n->inputs = inputs;
        if ((rc = add_int_init(g, *n->name ? n->name : g->values[n->outputs[0]].name, "_split", sizes, count, &vid,
                               err)) < 0)
            goto out;
        n->inputs[1] = vid;
        n->n_inputs = 2;
        node_remove_attr(n, "num_outputs"); /* the split input replaces it (both are refused) */
    }
out:
    free(sizes);
    return rc;
}

/* A channel range (step 1) moves down by the removed channels before it and
 * shrinks by those inside it. Its start and end, often computed from the
 * input's shape (chunk), are written as the node's own constants. */
static int shrink_slice(sfp_graph_t *g, sfp_node_t *n, const sfp_removal_t *r, sfp_error_t *err)
{
    int x = n->inputs[0], index = -1, rc;
    int64_t start = 0, step = 1, count = 0, before = 0, inside = 0;
    if (!r->masks[x] || g->values[x].ndim < 2) return 0;
    if ((rc = op_slice_axis(g, n, 1, &index, &start, &step, &count, err)) < 0) return rc;
    if (index < 0 || step != 1) return 0; /* channels whole: nothing to move */
    for (int64_t i = 0; i < start; i++) before += removal_slot_removed(r, x, i);
    for (int64_t i = start; i < start + count; i++) inside += removal_slot_removed(r, x, i);
    if (!before && !inside) return 0;
    const int64_t new_start = start - before, new_end = new_start + count - inside;
    if (node_attr(n, "starts")) { /* before opset 10 */
        sfp_attr_t *s = (sfp_attr_t *)node_attr(n, "starts"), *e = (sfp_attr_t *)node_attr(n, "ends");
        if (!e || (size_t)index >= s->n || (size_t)index >= e->n)
            return sfp_errorf(err, SFP_ERUNTIME, "internal: node '%s' (Slice): starts and ends changed", sfp_q(n->name));
        s->ints[index] = new_start;
        e->ints[index] = new_end;
        return 0;
    }
    const sfp_tensor_t *ks = graph_const(g, n->inputs[1]), *ke = graph_const(g, n->inputs[2]);
    int64_t len = ks ? sfp_tensor_numel(ks) : 0, vals[2][SFP_MAX_DIMS];
    if (!ks || !ke || sfp_tensor_numel(ke) != len || len > SFP_MAX_DIMS || index >= len)
        return sfp_errorf(err, SFP_ERUNTIME, "internal: node '%s' (Slice): starts and ends changed", sfp_q(n->name));
    for (int64_t i = 0; i < len; i++) {
        vals[0][i] = sfp_tensor_get_int(ks, i);
        vals[1][i] = sfp_tensor_get_int(ke, i);
    }
    vals[0][index] = new_start;
    vals[1][index] = new_end;
    const char *base = *n->name ? n->name : g->values[n->outputs[0]].name;
    int ids[2] = {-1, -1};
    if ((rc = add_int_init(g, base, "_starts", vals[0], len, &ids[0], err)) < 0) return rc;
    if ((rc = add_int_init(g, base, "_ends", vals[1], len, &ids[1], err)) < 0) return rc;
    n->inputs[1] = ids[0];
    n->inputs[2] = ids[1];
    return 0;
}

/* Inserts a node after value v that gives it `want` channels: a zero value's
 * extra channels are sliced off or zero channels padded on. */
static int resize_zero_nodes(sfp_model_t *m, int v, int64_t have, int64_t want, char *name, size_t name_size,
                             char *tname, size_t tname_size, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int nv = -1, kv = -1, rc, nid = -1;
    int64_t opset = sfp_model_opset(m, "");
    int rank = g->values[v].ndim;
    snprintf(name, name_size, "%s_resized", g->values[v].name);
    for (int i = 1; graph_find_value(g, name) >= 0; i++) snprintf(name, name_size, "%s_resized_%d", g->values[v].name, i);
    if ((rc = graph_add_value(g, name, &nv, err)) < 0) return rc;
    /* consumers of v read the resized value */
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            if (g->nodes[i].inputs[k] == v) g->nodes[i].inputs[k] = nv;
    bool slice = want < have;
    snprintf(tname, tname_size, "%s_%s", name, slice ? "ends" : "pads");
    if (slice) {
        if (opset >= 10) {
            int64_t one = 1;
            sfp_tensor_t *starts = NULL, *ends = NULL, *axes = NULL;
            int ids[4] = {v, -1, -1, -1};
            if ((rc = sfp_tensor_create(NULL, SFP_DT_INT64, 1, &one, &starts, err)) < 0) return rc;
            if ((rc = sfp_tensor_create(NULL, SFP_DT_INT64, 1, &one, &ends, err)) < 0) return rc;
            if ((rc = sfp_tensor_create(NULL, SFP_DT_INT64, 1, &one, &axes, err)) < 0) return rc;
            ((int64_t *)ends->data)[0] = want;
            ((int64_t *)axes->data)[0] = 1;
            const char *suffix[3] = {"_starts", "_ends", "_axes"};
            sfp_tensor_t *ts[3] = {starts, ends, axes};
            for (int k = 0; k < 3; k++) {
                snprintf(tname, tname_size, "%s%s", name, suffix[k]);
                if ((rc = graph_add_value(g, tname, &kv, err)) < 0) return rc;
                if ((rc = graph_set_init(g, kv, ts[k], err)) < 0) return rc;
                ids[k + 1] = kv;
            }
            if ((rc = graph_add_node(g, "Slice", name, 4, ids, 1, &nv, &nid, err)) < 0) return rc;
        } else {
            if ((rc = graph_add_node(g, "Slice", name, 1, &v, 1, &nv, &nid, err)) < 0) return rc;
            int64_t s0 = 0, e0 = want, a0 = 1;
            if ((rc = node_set_attr_ints(&g->nodes[nid], "starts", &s0, 1, err)) < 0) return rc;
            if ((rc = node_set_attr_ints(&g->nodes[nid], "ends", &e0, 1, err)) < 0) return rc;
            if ((rc = node_set_attr_ints(&g->nodes[nid], "axes", &a0, 1, err)) < 0) return rc;
        }
    } else {
        int64_t pads[2 * SFP_MAX_DIMS] = {0}, np = 2 * rank;
        pads[rank + 1] = want - have;
        if (opset >= 11) {
            sfp_tensor_t *t = NULL;
            int ids[2] = {v, -1};
            if ((rc = sfp_tensor_create(NULL, SFP_DT_INT64, 1, &np, &t, err)) < 0) return rc;
            memcpy(t->data, pads, sizeof(int64_t) * (size_t)np);
            if ((rc = graph_add_value(g, tname, &kv, err)) < 0) return rc;
            if ((rc = graph_set_init(g, kv, t, err)) < 0) return rc;
            ids[1] = kv;
            if ((rc = graph_add_node(g, "Pad", name, 2, ids, 1, &nv, &nid, err)) < 0) return rc;
        } else {
            if ((rc = graph_add_node(g, "Pad", name, 1, &v, 1, &nv, &nid, err)) < 0) return rc;
            if ((rc = node_set_attr_ints(&g->nodes[nid], "pads", pads, (size_t)np, err)) < 0) return rc;
        }
    }
    return 0;
}

/* Wrapper owning the two name buffers, sized to v's name (a fixed buffer
 * truncated long names so that no candidate ever became unique). */
static int resize_zero_value(sfp_model_t *m, int v, int64_t have, int64_t want, sfp_error_t *err)
{
    size_t cap = strlen(m->graph.values[v].name) + 48;
    char *name = malloc(cap), *tname = malloc(cap + 16);
    int rc = 0;
    if (!name || !tname) rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
    else rc = resize_zero_nodes(m, v, have, want, name, cap, tname, cap + 16, err);
    free(name);
    free(tname);
    return rc;
}

/* Where x.mul(0) was decoupled from x, the zero branch may now have the wrong
 * channel count: compute both and insert an adapter where they differ. */
static int fix_zero_branches(sfp_model_t *m, const sfp_groups_t *gs, const sfp_removal_t *r, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int n_nodes = g->n_nodes, rc;
    for (int i = 0; i < n_nodes; i++) {
        const sfp_node_t *n = &g->nodes[i];
        if (!op_has(n, SFP_OPF_ZERO_ABSORBS)) continue;
        int y = n->outputs[0];
        if (!gs->value_slots[y] || !gs->value_zero[y]) continue;
        int src = -1;
        for (int k = 0; k < 2; k++)
            if (gs->value_slots[n->inputs[k]] == gs->value_slots[y] && !gs->value_zero[n->inputs[k]]) src = n->inputs[k];
        if (src < 0) continue;
        int64_t have = gs->value_slots[src] - removal_removed(r, gs, src);
        int64_t want = gs->value_slots[y] - removal_removed(r, gs, y);
        if (have != want && (rc = resize_zero_value(m, y, have, want, err)) < 0) return rc;
    }
    return 0;
}

static void shrink_decl(sfp_graph_t *g, const sfp_groups_t *gs, const sfp_removal_t *r)
{
    for (int v = 0; v < gs->n_values; v++) {
        sfp_value_t *val = &g->values[v];
        if (!r->masks[v] || val->decl.rank < 2 || val->decl.dims[1] < 0) continue;
        val->decl.dims[1] = gs->value_slots[v] - removal_removed(r, gs, v);
    }
}

int surgery_apply(sfp_model_t *m, const sfp_groups_t *gs, const sfp_removal_t *r, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int rc = 0;
    if (gs->n_values != g->n_values)
        return sfp_errorf(err, SFP_ERUNTIME, "internal: groups were computed for another graph");
    int n_nodes = g->n_nodes;
    for (int i = 0; i < n_nodes && rc == 0; i++) {
        sfp_node_t *n = &g->nodes[i];
        const sfp_op_def_t *def = op_of(n);
        switch (def ? def->shrink : SFP_SHRINK_NONE) {
        case SFP_SHRINK_NONE: break;
        case SFP_SHRINK_FILTERS: rc = shrink_filters(g, n, def, gs, r, err); break;
        case SFP_SHRINK_NORM: rc = shrink_norm(g, n, gs, r, err); break;
        case SFP_SHRINK_BROADCAST: rc = shrink_binary(g, n, gs, r, err); break;
        case SFP_SHRINK_PAD: rc = shrink_pad(g, n, r, err); break;
        case SFP_SHRINK_RESHAPE: rc = shrink_reshape(g, n, gs, r, err); break;
        case SFP_SHRINK_SPLIT: rc = shrink_split(m, n, gs, r, err); break;
        case SFP_SHRINK_SLICE: rc = shrink_slice(g, n, r, err); break;
        }
    }
    if (rc == 0) rc = fix_zero_branches(m, gs, r, err);
    if (rc < 0) return rc;
    shrink_decl(g, gs, r);
    if ((rc = graph_remove_unused(g, err)) < 0) return rc;
    if ((rc = graph_topo_sort(g, err)) < 0) return rc;
    /* The input was valid: a graph the removal broke is this tool's fault,
     * reported as unsupported (exit 4), never as a bad input. */
    if ((rc = model_validate(m, err)) < 0 || (rc = model_infer_shapes(m, 1, err)) < 0) {
        sfp_error_prefix(err, "after channel removal (a fault of onnx-sfp, not of the model)");
        if (err) err->code = SFP_EUNSUPPORTED;
        return SFP_EUNSUPPORTED;
    }
    return 0;
}
