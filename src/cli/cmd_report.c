/* onnx-sfp report: parameters and MACs per node and in total, for one model
 * or two side by side; text or the JSON schema of docs/report-json.md. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "onnxsfp/report.h"
#include "surgery/surgery.h"
#include "util/util.h"

static const cli_opt_t opts[] = {
    {"json", NULL, "print the report --json object instead of text"},
    {"groups", NULL, "also list the channel dependency groups (what is pruned together)"},
    {"paper-rate", "R", "also print the literature's theoretical MACs at pruning rate R (labelled; see README)"},
    {0},
};

/* One line per group: label, channel count, prunable or why not, members. */
static int print_groups(sfp_model_t *m, const char *path, sfp_error_t *err)
{
    sfp_groups_t *gs = NULL;
    int rc = groups_find(m, &gs, err);
    if (rc < 0) return rc;
    const sfp_graph_t *g = &m->graph;
    printf("channel groups of %s: %d\n", path, gs->n);
    for (int i = 0; i < gs->n; i++) {
        const sfp_chan_group_t *grp = &gs->g[i];
        printf("group %d: %s: %d channels, %s%s%s\n  layers:", i, grp->label, grp->n_channels,
               grp->prunable ? "prunable" : "fixed", grp->prunable ? "" : " - ", grp->reason);
        for (int k = 0; k < grp->n_sources; k++) printf(" %s", g->nodes[grp->sources[k]].name);
        printf("\n  values (%d):", grp->n_values);
        for (int k = 0; k < grp->n_values && k < 12; k++) printf(" %s", g->values[grp->values[k]].name);
        printf("%s\n", grp->n_values > 12 ? " ..." : "");
    }
    groups_free(gs);
    return 0;
}

static int run(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    sfp_model_t *m[2] = {0};
    sfp_report_t *r[2] = {0};
    int rc = 0;
    for (int i = 0; i < a->n_pos && rc == 0; i++) {
        rc = model_load(a->pos[i], &m[i], err);
        if (rc == 0 && (rc = report_build(m[i], a->pos[i], &r[i], err)) < 0) sfp_error_prefix(err, "%s", sfp_q(a->pos[i]));
    }
    if (rc == 0) {
        if (cli_flag(cmd, a, "json")) {
            char *json = NULL;
            rc = report_to_json(r[0], r[1], &json, err);
            if (rc == 0) printf("%s\n", json);
            free(json);
        } else {
            report_print_text(stdout, r[0], r[1]);
        }
        double paper_rate = -1.0;
        rc = cli_double(cmd, a, "paper-rate", 0.0, 0.999999, -1.0, &paper_rate, err);
        for (int i = 0; i < a->n_pos && rc == 0 && paper_rate >= 0.0; i++) {
            int64_t paper = 0;
            if ((rc = report_paper_macs(m[i], r[i], paper_rate, &paper, err)) < 0) break;
            printf("paper-style MACs of %s at rate %.3f: %lld (-%.2f%%), counting every conv's filters as removed,\n"
                   "  residual block outputs included; no emitted model has this count (see README, FLOPs honesty)\n",
                   a->pos[i], paper_rate, (long long)paper,
                   r[i]->macs > 0 ? 100.0 * (1.0 - (double)paper / (double)r[i]->macs) : 0.0);
        }
        for (int i = 0; i < a->n_pos && rc == 0 && cli_flag(cmd, a, "groups"); i++)
            if ((rc = print_groups(m[i], a->pos[i], err)) < 0) sfp_error_prefix(err, "%s", sfp_q(a->pos[i]));
        if (fflush(stdout) != 0) rc = sfp_errorf(err, SFP_EIO, "writing the report to stdout failed");
    }
    for (int i = 0; i < 2; i++) {
        report_free(r[i]);
        model_free(m[i]);
    }
    return rc;
}

const cli_cmd_t cmd_report = {
    "report", "MODEL.onnx [OTHER.onnx] [--json] [--groups] [--paper-rate R]",
    "parameters and MACs per node and in total; with two models, side by side with reductions",
    "MACs: Conv = output elements x input channels per group x kernel area; Gemm/MatMul = M x N x K;\n"
    "FLOPs = 2 x MACs. Elementwise work (BN, Relu, Add, pooling) is counted on its own line.\n"
    "Parameters: conv/linear weights and biases and BN scale/bias (as PyTorch counts), at batch 1.",
    opts, 1, 2, run,
};
