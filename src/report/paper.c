/* The literature's theoretical MAC count after pruning (SFP, FPGM and the
 * soft-smooth thesis count this way): every conv layer keeps (1 - rate) of
 * its filters and, where its input is another conv's output, of its input
 * channels too — as if residual outputs could shrink, which they cannot
 * without pruning the whole residual stream as one group. The fractions are
 * exact (1 - rate), not rounded to whole channels, as the papers' tables. */
#include <math.h>
#include <string.h>

#include "onnxsfp/report.h"
#include "ops/ops.h"


/* Ops through which a Conv's channels reach the next layer unchanged: the
 * channel-wise ones (BN, activations, pooling) and Flatten. */
static bool passes_channels(const sfp_graph_t *g, const sfp_node_t *n)
{
    return op_chan(g, n) == SFP_CHAN_SAME || op_is(n, SFP_OP_FLATTEN);
}

/* True when value v is (through channel-preserving ops) a Conv's output. */
static bool from_conv(const sfp_graph_t *g, int v)
{
    for (int hops = 0; v >= 0 && hops < g->n_nodes; hops++) {
        int p = g->values[v].producer;
        if (p < 0) return false;
        const sfp_node_t *n = &g->nodes[p];
        if (op_is(n, SFP_OP_CONV)) return true;
        if (!passes_channels(g, n) || n->n_inputs < 1) return false;
        v = n->inputs[0];
    }
    return false;
}

int sfp_report_paper_macs(const sfp_model_t *m, const sfp_report_t *rep, double rate, int64_t *macs, sfp_error_t *err)
{
    const sfp_graph_t *g = &m->graph;
    if (!(rate >= 0.0 && rate < 1.0)) return sfp_errorf(err, SFP_EUSAGE, "paper-style count: rate %g outside [0, 1)", rate);
    if (rep->n_rows != g->n_nodes)
        return sfp_errorf(err, SFP_EUSAGE, "paper-style count: the report is not of this model");
    double total = 0.0;
    for (int i = 0; i < g->n_nodes; i++) {
        const sfp_node_t *n = &g->nodes[i];
        double node_macs = (double)rep->rows[i].macs;
        const bool conv = op_is(n, SFP_OP_CONV);
        if (op_has(n, SFP_OPF_FILTERS) && node_macs > 0) {
            if (conv) {
                node_macs *= 1.0 - rate;
            }
            if (from_conv(g, n->inputs[0])) node_macs *= 1.0 - rate;
        }
        total += node_macs;
    }
    *macs = (int64_t)llround(total);
    return 0;
}
