/* Removal masks: per value, which channel slots go; a group's channel is
 * marked on every slot it owns at once. */
#include <stdlib.h>
#include <string.h>

#include "surgery/surgery.h"

int removal_create(const sfp_groups_t *gs, sfp_removal_t **out, sfp_error_t *err)
{
    sfp_removal_t *r = calloc(1, sizeof *r);
    if (!r) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    r->n_values = gs->n_values;
    r->masks = calloc((size_t)gs->n_values + 1, sizeof *r->masks);
    if (!r->masks) {
        free(r);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    for (int v = 0; v < gs->n_values; v++) {
        if (!gs->value_slots[v]) continue;
        r->masks[v] = calloc((size_t)gs->value_slots[v], sizeof(bool));
        if (!r->masks[v]) {
            removal_free(r);
            return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        }
    }
    *out = r;
    return 0;
}

void removal_add_channel(sfp_removal_t *r, const sfp_groups_t *gs, int gi, int j)
{
    const sfp_chan_group_t *g = &gs->g[gi];
    for (int k = g->slot_start[j]; k < g->slot_start[j + 1]; k++) r->masks[g->slot_value[k]][g->slot_index[k]] = true;
}

bool removal_has_channel(const sfp_removal_t *r, const sfp_groups_t *gs, int gi, int j)
{
    const sfp_chan_group_t *g = &gs->g[gi];
    int k = g->slot_start[j];
    return r->masks[g->slot_value[k]][g->slot_index[k]];
}

int64_t removal_n_channels(const sfp_removal_t *r, const sfp_groups_t *gs)
{
    int64_t n = 0;
    for (int gi = 0; gi < gs->n; gi++)
        for (int j = 0; j < gs->g[gi].n_channels; j++) n += removal_has_channel(r, gs, gi, j);
    return n;
}

void removal_clear(sfp_removal_t *r, const sfp_groups_t *gs)
{
    for (int v = 0; v < r->n_values; v++)
        if (r->masks[v]) memset(r->masks[v], 0, (size_t)gs->value_slots[v] * sizeof(bool));
}

void removal_free(sfp_removal_t *r)
{
    if (!r) return;
    for (int v = 0; v < r->n_values; v++) free(r->masks[v]);
    free(r->masks);
    free(r);
}

int64_t removal_removed(const sfp_removal_t *r, const sfp_groups_t *gs, int v)
{
    int64_t n = 0;
    if (v < 0 || !r->masks[v]) return 0;
    for (int64_t i = 0; i < gs->value_slots[v]; i++) n += r->masks[v][i];
    return n;
}

bool removal_slot_removed(const sfp_removal_t *r, int v, int64_t i)
{
    return v >= 0 && r->masks[v] && r->masks[v][i];
}
