/* onnx-sfp report: parameters and MACs per node and in total, for one model
 * or two side by side; text or the JSON schema of docs/report-json.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "onnxsfp/report.h"
#include "prune/prune.h"
#include "util/util.h"

static const cli_opt_t opts[] = {
    {"json", NULL, "print the report --json object instead of text"},
    {"groups", NULL, "also list the channel dependency groups (what is pruned together); with --json, per channel\n"
                     "the tensor rows pruning it zeroes"},
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

static int cmp_row_name(const void *pa, const void *pb)
{
    const sfp_channel_row_t *a = pa, *b = pb;
    int c = strcmp(a->t->name, b->t->name);
    if (c) return c;
    if (a->axis != b->axis) return a->axis - b->axis;
    return (a->row > b->row) - (a->row < b->row);
}

/* Channel j's rows as [{"tensor", "axis", "row", "filter"}]: what pruning
 * the channel zeroes; "filter" marks the source weight rows whose L2 norms
 * sum to the channel's score (prune_score_l2). */
static int channel_rows_json(sfp_model_t *m, const sfp_groups_t *gs, int gi, int j, json_object *arr, sfp_error_t *err)
{
    sfp_channel_row_t *rows = NULL;
    size_t n = 0;
    int rc = groups_channel_rows(m, gs, gi, j, &rows, &n, err);
    if (n) qsort(rows, n, sizeof *rows, cmp_row_name); /* by name: the same text on every run */
    const sfp_chan_group_t *grp = &gs->g[gi];
    for (size_t r = 0; r < n && rc == 0; r++) {
        bool filter = false;
        for (int k = grp->slot_start[j]; k < grp->slot_start[j + 1] && rc == 0 && !filter; k++) {
            sfp_filter_row_t fr;
            rc = prune_filter_row(m, gs, gi, k, &fr, err);
            filter = rc == 0 && fr.w == rows[r].t->data && fr.row == rows[r].row;
        }
        json_object *o = json_object_new_object();
        json_object_object_add(o, "tensor", json_object_new_string(rows[r].t->name));
        json_object_object_add(o, "axis", json_object_new_int(rows[r].axis));
        json_object_object_add(o, "row", json_object_new_int64(rows[r].row));
        json_object_object_add(o, "filter", json_object_new_boolean(filter));
        json_object_array_add(arr, o);
    }
    free(rows);
    return rc;
}

/* The groups of m as JSON: label, channels, prunable, reason, layers and,
 * per channel, the rows pruning it zeroes (docs/report-json.md). */
static int groups_json(sfp_model_t *m, json_object **out, sfp_error_t *err)
{
    sfp_groups_t *gs = NULL;
    int rc = groups_find(m, &gs, err);
    if (rc < 0) return rc;
    json_object *arr = json_object_new_array();
    for (int i = 0; i < gs->n && rc == 0; i++) {
        const sfp_chan_group_t *grp = &gs->g[i];
        json_object *o = json_object_new_object(), *layers = json_object_new_array(), *chans = json_object_new_array();
        json_object_object_add(o, "label", json_object_new_string(grp->label));
        json_object_object_add(o, "channels", json_object_new_int(grp->n_channels));
        json_object_object_add(o, "prunable", json_object_new_boolean(grp->prunable));
        json_object_object_add(o, "reason", grp->prunable ? NULL : json_object_new_string(grp->reason));
        for (int k = 0; k < grp->n_sources; k++)
            json_object_array_add(layers, json_object_new_string(m->graph.nodes[grp->sources[k]].name));
        json_object_object_add(o, "layers", layers);
        for (int j = 0; j < grp->n_channels && rc == 0; j++) {
            json_object *rows = json_object_new_array();
            rc = channel_rows_json(m, gs, i, j, rows, err);
            json_object_array_add(chans, rows);
        }
        json_object_object_add(o, "channel_rows", chans);
        json_object_array_add(arr, o);
    }
    groups_free(gs);
    if (rc < 0) json_object_put(arr);
    else *out = arr;
    return rc;
}

/* The report --json object, with each model's "groups" when asked. */
static int print_json(sfp_model_t **m, sfp_report_t **r, int n, bool groups, sfp_error_t *err)
{
    char *text = NULL;
    int rc = sfp_report_to_json(r[0], r[1], &text, err);
    if (rc < 0) return rc;
    if (!groups) {
        printf("%s\n", text);
        free(text);
        return 0;
    }
    json_object *root = json_tokener_parse(text), *models = NULL;
    free(text);
    if (!root || !json_object_object_get_ex(root, "models", &models)) {
        json_object_put(root);
        return sfp_errorf(err, SFP_ERUNTIME, "internal: report JSON did not parse");
    }
    for (int i = 0; i < n && rc == 0; i++) {
        json_object *g = NULL;
        if ((rc = groups_json(m[i], &g, err)) == 0)
            json_object_object_add(json_object_array_get_idx(models, (size_t)i), "groups", g);
    }
    if (rc == 0) printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
    return rc;
}

static int run(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    sfp_model_t *m[2] = {0};
    sfp_report_t *r[2] = {0};
    int rc = 0;
    for (int i = 0; i < a->n_pos && rc == 0; i++) {
        rc = cli_load_model(a->pos[i], &m[i], err);
        if (rc == 0 && (rc = sfp_report_build(m[i], a->pos[i], &r[i], err)) < 0) sfp_error_prefix(err, "%s", sfp_q(a->pos[i]));
    }
    if (rc == 0) {
        bool json = cli_flag(cmd, a, "json");
        if (json) {
            rc = print_json(m, r, a->n_pos, cli_flag(cmd, a, "groups"), err);
        } else {
            sfp_report_print_text(stdout, r[0], r[1]);
        }
        double paper_rate = -1.0;
        rc = cli_double(cmd, a, "paper-rate", 0.0, 0.999999, -1.0, &paper_rate, err);
        for (int i = 0; i < a->n_pos && rc == 0 && paper_rate >= 0.0; i++) {
            int64_t paper = 0;
            if ((rc = sfp_report_paper_macs(m[i], r[i], paper_rate, &paper, err)) < 0) break;
            printf("paper-style MACs of %s at rate %.3f: %lld (-%.2f%%), counting every conv's filters as removed,\n"
                   "  residual block outputs included; no emitted model has this count (see README, FLOPs honesty)\n",
                   a->pos[i], paper_rate, (long long)paper,
                   r[i]->macs > 0 ? 100.0 * (1.0 - (double)paper / (double)r[i]->macs) : 0.0);
        }
        for (int i = 0; i < a->n_pos && rc == 0 && !json && cli_flag(cmd, a, "groups"); i++)
            if ((rc = print_groups(m[i], a->pos[i], err)) < 0) sfp_error_prefix(err, "%s", sfp_q(a->pos[i]));
        if (fflush(stdout) != 0) rc = sfp_errorf(err, SFP_EIO, "writing the report to stdout failed");
    }
    for (int i = 0; i < 2; i++) {
        sfp_report_free(r[i]);
        sfp_model_free(m[i]);
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
