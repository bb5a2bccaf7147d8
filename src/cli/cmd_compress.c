/* onnx-sfp compress: choose channels by L2 norm per dependency group, remove
 * them from every place they live, write the smaller ONNX atomically, print
 * the achieved reduction. (--epochs 0 path: no fine-tuning.) */
#define _DEFAULT_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "onnxsfp/report.h"
#include "prune/prune.h"
#include "util/util.h"

static const cli_opt_t opts[] = {
    {"rate", "R", "fraction of channels removed in each prunable group, in [0, 1) (default 0.5)"},
    {"flops", "F", "instead of --rate: smallest uniform rate that removes at least this fraction of MACs"},
    {"method", "M", "smooth (default), sfp or hybrid; with --epochs 0 all choose by L2 norm"},
    {"epochs", "N", "fine-tuning epochs (only 0 is available in this version)"},
    {"skip", "PATTERN", "leave groups whose layer names match this shell pattern alone"},
    {"keep-masked", "FILE", "also write the full-size model with the removed channels zeroed"},
    {"report-json", "FILE", "write the report of input vs output, method, rate and channels kept"},
    {0},
};

static double ratio_removed(int64_t before, int64_t after)
{
    return before > 0 ? 1.0 - (double)after / (double)before : 0.0;
}

/* Output channels of every Conv/Gemm/MatMul before and after, by node name. */
static json_object *channels_kept(const sfp_model_t *before, const sfp_model_t *after)
{
    json_object *arr = json_object_new_array();
    for (int i = 0; i < before->graph.n_nodes; i++) {
        const sfp_node_t *n = &before->graph.nodes[i];
        if (strcmp(n->op_type, "Conv") && strcmp(n->op_type, "Gemm") && strcmp(n->op_type, "MatMul")) continue;
        const sfp_value_t *y = &before->graph.values[n->outputs[0]];
        int64_t kept = -1;
        for (int k = 0; k < after->graph.n_nodes; k++)
            if (!strcmp(after->graph.nodes[k].name, n->name) && *n->name)
                kept = after->graph.values[after->graph.nodes[k].outputs[0]].dims[y->ndim > 1 ? 1 : 0];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(n->name));
        json_object_object_add(o, "op_type", json_object_new_string(n->op_type));
        json_object_object_add(o, "channels", json_object_new_int64(y->dims[y->ndim > 1 ? 1 : 0]));
        json_object_object_add(o, "kept", json_object_new_int64(kept));
        json_object_array_add(arr, o);
    }
    return arr;
}

static int write_report_json(const char *path, const sfp_report_t *a, const sfp_report_t *b, const char *method,
                             double rate, const sfp_model_t *before, const sfp_model_t *after, sfp_error_t *err)
{
    char *text = NULL;
    int rc = report_to_json(a, b, &text, err);
    if (rc < 0) return rc;
    json_object *root = json_tokener_parse(text);
    free(text);
    if (!root) return sfp_errorf(err, SFP_ERUNTIME, "internal: report JSON did not parse");
    json_object_object_add(root, "method", json_object_new_string(method));
    json_object_object_add(root, "rate", json_object_new_double(rate));
    json_object_object_add(root, "epochs", json_object_new_int(0));
    json_object_object_add(root, "accuracy_before", NULL);
    json_object_object_add(root, "accuracy_after", NULL);
    json_object_object_add(root, "layers", channels_kept(before, after));
    const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t len = strlen(s);
    char *withnl = malloc(len + 2);
    if (!withnl) rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
    else {
        memcpy(withnl, s, len);
        withnl[len] = '\n';
        rc = sfp_write_file_atomic(path, (const uint8_t *)withnl, len + 1, err);
        free(withnl);
    }
    json_object_put(root);
    return rc;
}

static int run(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    const char *in = a->pos[0], *out = a->pos[1];
    const char *method = cli_get(cmd, a, "method") ? cli_get(cmd, a, "method") : "smooth";
    const char *skip = cli_get(cmd, a, "skip"), *masked_path = cli_get(cmd, a, "keep-masked");
    const char *json_path = cli_get(cmd, a, "report-json");
    double rate = 0.5, flops = 0.0;
    int64_t epochs = 0;
    int rc;
    if (strcmp(method, "smooth") && strcmp(method, "sfp") && strcmp(method, "hybrid"))
        return sfp_errorf(err, SFP_EUSAGE, "--method: '%s' is not smooth, sfp or hybrid", method);
    if (cli_get(cmd, a, "rate") && cli_get(cmd, a, "flops"))
        return sfp_errorf(err, SFP_EUSAGE, "give --rate or --flops, not both");
    if ((rc = cli_double(cmd, a, "rate", 0.0, 0.999999, 0.5, &rate, err)) < 0) return rc;
    if ((rc = cli_double(cmd, a, "flops", 0.0, 0.999999, 0.0, &flops, err)) < 0) return rc;
    if ((rc = cli_int(cmd, a, "epochs", 0, 100000, 0, &epochs, err)) < 0) return rc;
    if (epochs > 0)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "--epochs %lld: fine-tuning is not available in this version (use --epochs 0)",
                          (long long)epochs);
    if (cli_same_file(in, out))
        return sfp_errorf(err, SFP_EUSAGE, "OUT must differ from IN (%s): the input is never overwritten", sfp_q(out));
    /* The other files written must not be IN nor OUT nor each other either. */
    const char *extra[2][2] = {{"--keep-masked", masked_path}, {"--report-json", json_path}};
    for (int i = 0; i < 2; i++) {
        const char *p = extra[i][1];
        if (!p) continue;
        if (cli_same_file(in, p))
            return sfp_errorf(err, SFP_EUSAGE, "%s %s: would overwrite IN; the input is never overwritten", extra[i][0],
                              sfp_q(p));
        if (cli_same_file(out, p))
            return sfp_errorf(err, SFP_EUSAGE, "%s %s: is also OUT", extra[i][0], sfp_q(p));
    }
    if (masked_path && json_path && (cli_same_file(masked_path, json_path)))
        return sfp_errorf(err, SFP_EUSAGE, "--keep-masked and --report-json name the same file (%s)", sfp_q(json_path));
    sfp_model_t *orig = NULL, *pruned = NULL, *masked = NULL;
    sfp_groups_t *gs = NULL;
    sfp_removal_t *r = NULL;
    sfp_report_t *rep_in = NULL, *rep_out = NULL;
    if ((rc = model_load(in, &orig, err)) < 0) return rc;
    /* Errors of the pruning steps name the input file, as loading errors do. */
    if ((cli_get(cmd, a, "flops") && (rc = prune_rate_for_flops(orig, flops, skip, &rate, err)) < 0) ||
        (rc = model_clone(orig, &pruned, err)) < 0 || (rc = groups_find(pruned, &gs, err)) < 0 ||
        (rc = removal_create(gs, &r, err)) < 0 || (rc = prune_select_l2(pruned, gs, rate, skip, r, err)) < 0) {
        if (strncmp(err->msg, in, strlen(in)) != 0) sfp_error_prefix(err, "%s", sfp_q(in));
        goto done;
    }
    if (masked_path) {
        if ((rc = model_clone(pruned, &masked, err)) < 0) goto done;
        if ((rc = surgery_mask(masked, gs, r, err)) < 0 || (rc = model_save(masked, masked_path, err)) < 0) goto done;
    }
    if ((rc = surgery_apply(pruned, gs, r, err)) < 0 || (rc = report_build(orig, in, &rep_in, err)) < 0 ||
        (rc = report_build(pruned, out, &rep_out, err)) < 0) {
        sfp_error_prefix(err, "%s", sfp_q(in));
        goto done;
    }
    if ((rc = model_save(pruned, out, err)) < 0) goto done;
    if (json_path && (rc = write_report_json(json_path, rep_in, rep_out, method, rate, orig, pruned, err)) < 0) goto done;
    if (!a->quiet) { /* progress and summary on stderr, figures on stdout */
        int pruned_groups = 0, prunable = 0;
        for (int gi = 0; gi < gs->n; gi++) {
            prunable += gs->g[gi].prunable;
            if (!prune_group_skipped(pruned, gs, gi, skip) && prune_count(gs->g[gi].n_channels, rate) > 0) pruned_groups++;
        }
        fprintf(stderr, "onnx-sfp: pruned %d of %d prunable channel groups at rate %.3f (L2 norm, no fine-tuning)\n",
                pruned_groups, prunable, rate);
    }
    printf("params: %lld -> %lld (-%.2f%%)\nMACs:   %lld -> %lld (-%.2f%%)\nwrote %s\n", (long long)rep_in->params,
           (long long)rep_out->params, 100.0 * ratio_removed(rep_in->params, rep_out->params), (long long)rep_in->macs,
           (long long)rep_out->macs, 100.0 * ratio_removed(rep_in->macs, rep_out->macs), out);
done:
    report_free(rep_in);
    report_free(rep_out);
    removal_free(r);
    groups_free(gs);
    model_free(masked);
    model_free(pruned);
    model_free(orig);
    return rc;
}

const cli_cmd_t cmd_compress = {
    "compress", "IN.onnx OUT.onnx [--rate R | --flops F] [--epochs 0] [--skip PATTERN] [--keep-masked FILE] [--report-json FILE]",
    "remove the lowest-L2-norm channels of every dependency group and write a smaller ONNX",
    "Channels that must go together (residual streams, shortcut Concat/Pad, BN, the Gemm after pooling) form\n"
    "groups (see report --groups); a group of C channels loses floor(R * C) of them (never all), scored by the\n"
    "summed L2 norms of the filters that produce each channel. --flops F searches the smallest uniform rate\n"
    "(to 0.001) whose output has at most (1 - F) of the input's MACs. Model inputs and outputs keep their channels.",
    opts, 2, 2, run,
};
