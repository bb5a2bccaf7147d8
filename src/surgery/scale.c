/* In-place scaling of marked channels at full size (the soft-smooth decay,
 * SFP's reset and the --keep-masked model): the rows that make a channel
 * (filter rows and biases, normalisation scale and shift, added constants),
 * each tensor row once however many nodes read it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "surgery/surgery.h"

/* One row to scale: entry `row` of axis `axis` of tensor t. */
typedef sfp_channel_row_t scale_row_t;

typedef struct scale_list {
    scale_row_t *rows;
    size_t n, cap;
} scale_list_t;

static int scale_list_add(scale_list_t *l, sfp_tensor_t *t, int axis, int64_t row, sfp_error_t *err)
{
    if (!t || axis < 0 || axis >= t->ndim) return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64, bytes = 0;
        if (!sfp_mul_size(cap, sizeof *l->rows, &bytes)) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        scale_row_t *grown = realloc(l->rows, bytes);
        if (!grown) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        l->rows = grown;
        l->cap = cap;
    }
    l->rows[l->n++] = (scale_row_t){t, axis, row};
    return 0;
}

static int cmp_scale_row(const void *pa, const void *pb)
{
    const scale_row_t *a = pa, *b = pb;
    uintptr_t ta = (uintptr_t)a->t, tb = (uintptr_t)b->t;
    if (ta != tb) return ta < tb ? -1 : 1;
    if (a->axis != b->axis) return a->axis - b->axis;
    return (a->row > b->row) - (a->row < b->row);
}

/* Multiplies row o of axis `axis` of t by factor; factor 0 writes zero bytes. */
static void scale_one_row(sfp_tensor_t *t, int axis, int64_t o, float factor)
{
    int64_t outer = 1, inner = 1, len = t->dims[axis];
    for (int k = 0; k < axis; k++) outer *= t->dims[k];
    for (int k = axis + 1; k < t->ndim; k++) inner *= t->dims[k];
    size_t es = sfp_dtype_size(t->dtype);
    for (int64_t i = 0; i < outer; i++) {
        char *at = (char *)t->data + (size_t)((i * len + o) * inner) * es;
        if (factor == 0.0f) {
            memset(at, 0, (size_t)inner * es);
            continue;
        }
        float *p = (float *)(void *)at;
        for (int64_t e = 0; e < inner; e++) p[e] *= factor;
    }
}

/* Sorts l and drops repeated rows (a tensor read by several nodes). */
static void scale_list_unique(scale_list_t *l)
{
    if (!l->n) return;
    qsort(l->rows, l->n, sizeof *l->rows, cmp_scale_row);
    size_t kept = 1;
    for (size_t k = 1; k < l->n; k++)
        if (cmp_scale_row(&l->rows[kept - 1], &l->rows[k]) != 0) l->rows[kept++] = l->rows[k];
    l->n = kept;
}

/* The rows surgery_scale touches for marked slot o of node n's output y:
 * a filters op's weight row and bias entry, a normalisation's scale and
 * shift, an added constant's entry. */
static int collect_rows(sfp_graph_t *g, const sfp_node_t *n, const sfp_groups_t *gs, int y, int64_t o,
                        scale_list_t *l, sfp_error_t *err)
{
    const sfp_op_def_t *def = op_of(n);
    unsigned flags = def ? def->flags : 0;
    int rc = 0;
    if (flags & SFP_OPF_FILTERS) {
        if ((rc = scale_list_add(l, g->values[n->inputs[1]].init, def->weight_axis(n), o, err)) < 0) return rc;
        sfp_tensor_t *c = n->n_inputs > 2 && n->inputs[2] >= 0 ? g->values[n->inputs[2]].init : NULL;
        if (c && c->ndim >= 1 && c->dims[c->ndim - 1] == gs->value_slots[y]) rc = scale_list_add(l, c, c->ndim - 1, o, err);
    } else if (flags & SFP_OPF_NORM) {
        if ((rc = scale_list_add(l, g->values[n->inputs[1]].init, 0, o, err)) < 0) return rc; /* scale */
        rc = scale_list_add(l, g->values[n->inputs[2]].init, 0, o, err);                       /* bias */
    } else if (flags & SFP_OPF_SHIFT) {
        for (int k = 0; k < 2 && rc == 0; k++) {
            sfp_tensor_t *t = g->values[n->inputs[k]].init;
            int axis = t ? 1 - (g->values[y].ndim - t->ndim) : -1;
            if (t && axis >= 0 && t->dims[axis] == gs->value_slots[y]) rc = scale_list_add(l, t, axis, o, err);
        }
    }
    return rc;
}

int surgery_scale(sfp_model_t *m, const sfp_groups_t *gs, const sfp_removal_t *r, float factor, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    scale_list_t l = {0};
    int rc = 0;
    for (int i = 0; i < g->n_nodes && rc == 0; i++) {
        const sfp_node_t *n = &g->nodes[i];
        int y = n->n_outputs ? n->outputs[0] : -1;
        if (y < 0 || y >= r->n_values || !r->masks[y]) continue;
        size_t first = l.n;
        for (int64_t o = 0; o < gs->value_slots[y] && rc == 0; o++)
            if (r->masks[y][o]) rc = collect_rows(g, n, gs, y, o, &l, err);
        for (size_t k = first; k < l.n && rc == 0 && factor != 0.0f; k++)
            if (l.rows[k].t->dtype != SFP_DT_FLOAT)
                rc = sfp_errorf(err, SFP_EUNSUPPORTED, "node '%s' (%s): '%s' is not float; only zeroing is possible",
                                sfp_q(n->name), sfp_q(n->op_type), sfp_q(l.rows[k].t->name));
    }
    if (rc == 0) {
        /* A tensor read by several nodes (shared initializer) is listed once per reader. */
        scale_list_unique(&l);
        for (size_t k = 0; k < l.n; k++) scale_one_row(l.rows[k].t, l.rows[k].axis, l.rows[k].row, factor);
    }
    free(l.rows);
    return rc;
}

int groups_channel_rows(sfp_model_t *m, const sfp_groups_t *gs, int gi, int j, sfp_channel_row_t **out, size_t *n,
                        sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    const sfp_chan_group_t *grp = &gs->g[gi];
    scale_list_t l = {0};
    int rc = 0;
    *out = NULL;
    *n = 0;
    for (int k = grp->slot_start[j]; k < grp->slot_start[j + 1] && rc == 0; k++)
        for (int i = 0; i < g->n_nodes && rc == 0; i++) {
            const sfp_node_t *nd = &g->nodes[i];
            if (nd->n_outputs && nd->outputs[0] == grp->slot_value[k])
                rc = collect_rows(g, nd, gs, grp->slot_value[k], grp->slot_index[k], &l, err);
        }
    if (rc < 0) {
        free(l.rows);
        return rc;
    }
    scale_list_unique(&l);
    *out = l.rows;
    *n = l.n;
    return 0;
}

int surgery_mask(sfp_model_t *m, const sfp_groups_t *gs, const sfp_removal_t *r, sfp_error_t *err)
{
    return surgery_scale(m, gs, r, 0.0f, err);
}
