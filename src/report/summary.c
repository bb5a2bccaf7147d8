/* report --summary (summary.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/format.h"
#include "report/summary.h"
#include "surgery/surgery.h"
#include "util/util.h"

/* Output channels of b's node called name (axis 1, or 0 for a vector), -1
 * when b has no such node. */
static int64_t channels_in(const sfp_model_t *b, const char *name)
{
    for (int k = 0; b && *name && k < b->graph.n_nodes; k++) {
        const sfp_node_t *n = &b->graph.nodes[k];
        if (strcmp(n->name, name) || n->n_outputs < 1) continue;
        const sfp_value_t *y = &b->graph.values[n->outputs[0]];
        return y->ndim > 0 ? y->dims[y->ndim > 1 ? 1 : 0] : -1;
    }
    return -1;
}

static double pct(int64_t part, int64_t whole)
{
    return whole > 0 ? 100.0 * (double)part / (double)whole : 0.0;
}

static void total_line(FILE *f, const char *what, int64_t va, const sfp_report_t *rb, int64_t vb)
{
    char n1[32], n2[32];
    if (!rb) {
        fprintf(f, "%-8s %s\n", what, report_group3(va, n1, sizeof n1));
        return;
    }
    fprintf(f, "%-8s %s -> %s (-%.2f%%)\n", what, report_group3(va, n1, sizeof n1), report_group3(vb, n2, sizeof n2),
            100.0 - pct(vb, va));
}

/* How many of group g's channels have a slot on value v. */
static int channels_on(const sfp_chan_group_t *g, int v)
{
    int n = 0;
    for (int j = 0; j < g->n_channels; j++)
        for (int k = g->slot_start[j]; k < g->slot_start[j + 1]; k++)
            if (g->slot_value[k] == v) {
                n++;
                break;
            }
    return n;
}

/* Channels of each group that b kept (-1: unknown). A layer's output value
 * may hold several groups side by side (a shortcut padded with zeros next to
 * new channels): b's channel count of a source layer, less the kept counts of
 * the other groups wholly on that value, is the group's. Repeated until no
 * count is learnt. */
static void kept_counts(const sfp_model_t *a, const sfp_model_t *b, const sfp_groups_t *gs, int64_t *kept)
{
    for (int i = 0; i < gs->n; i++) kept[i] = -1;
    for (bool learnt = true; learnt;) {
        learnt = false;
        for (int i = 0; i < gs->n; i++) {
            const sfp_chan_group_t *g = &gs->g[i];
            for (int s = 0; s < g->n_sources && kept[i] < 0; s++) {
                const sfp_node_t *n = &a->graph.nodes[g->sources[s]];
                int v = n->outputs[0];
                int64_t left = channels_in(b, n->name);
                if (left < 0 || channels_on(g, v) != g->n_channels) continue;
                for (int o = 0; o < gs->n && left >= 0; o++) {
                    int on = o == i ? 0 : channels_on(&gs->g[o], v);
                    if (on == 0) continue;
                    if (on != gs->g[o].n_channels || kept[o] < 0) left = -1; /* not known yet */
                    else left -= kept[o];
                }
                if (left >= 0) {
                    kept[i] = left;
                    learnt = true;
                }
            }
        }
    }
}

int report_summary_print(FILE *f, sfp_model_t *a, const sfp_model_t *b, const sfp_report_t *ra,
                         const sfp_report_t *rb, sfp_error_t *err)
{
    sfp_groups_t *gs = NULL;
    int rc = groups_find(a, &gs, err);
    if (rc < 0) return rc;
    if (rb) fprintf(f, "A: %s\nB: %s (batch 1)\n", sfp_q(ra->path), sfp_q(rb->path));
    else fprintf(f, "model: %s (batch 1)\n", sfp_q(ra->path));
    total_line(f, "params", ra->params, rb, rb ? rb->params : 0);
    total_line(f, "MACs", ra->macs, rb, rb ? rb->macs : 0);
    total_line(f, "FLOPs", 2 * ra->macs, rb, rb ? 2 * rb->macs : 0);
    int64_t all = 0, kept_all = 0, *kept_of = b ? calloc((size_t)gs->n + 1, sizeof *kept_of) : NULL;
    if (b && !kept_of) {
        groups_free(gs);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    if (b) kept_counts(a, b, gs, kept_of);
    char n1[32], n2[32];
    fprintf(f, "channel groups: %d\n", gs->n);
    fprintf(f, "%-36s %10s %10s %8s  %s\n", "group", "channels", "kept", "kept %", "layers");
    for (int i = 0; i < gs->n; i++) {
        const sfp_chan_group_t *grp = &gs->g[i];
        int64_t kept = b ? kept_of[i] : grp->n_channels;
        if (kept >= 0) { /* the total counts the groups whose kept count is known */
            all += grp->n_channels;
            kept_all += kept;
        }
        char kept_s[32] = "-", pct_s[16] = "-";
        if (kept >= 0) {
            report_group3(kept, kept_s, sizeof kept_s);
            snprintf(pct_s, sizeof pct_s, "%.2f%%", pct(kept, grp->n_channels));
        }
        fprintf(f, "%-36s %10s %10s %8s  %d%s\n", sfp_q(grp->label), report_group3(grp->n_channels, n1, sizeof n1),
                kept_s, pct_s, grp->n_sources, grp->prunable ? "" : " (fixed)");
    }
    fprintf(f, "%-36s %10s %10s %7.2f%%\n", "total", report_group3(all, n1, sizeof n1),
            report_group3(kept_all, n2, sizeof n2), pct(kept_all, all));
    free(kept_of);
    groups_free(gs);
    return 0;
}
