/* onnx-sfp sensitivity: each prunable channel group pruned alone at a few
 * rates (lowest L2, no fine-tuning), and the validation accuracy drop of
 * each: a text table, or JSON with --json. */
#define _POSIX_C_SOURCE 200809L
#include <json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_train.h"
#include "prune/prune.h"

static const cli_opt_t opts[] = {
    {"data", "PATH", "validation data (its test split): IDX folder, CIFAR binary batches or class sub-folders"},
    {"rates", "LIST", "comma-separated rates to try per group (default 0.25,0.5,0.75)"},
    {"limit", "N", "evaluate on the first N images only (default: all)"},
    {"batch", "B", "images per forward pass (default 128)"},
    {"skip", "PATTERN", "leave groups whose layer names match this shell pattern out"},
    {"round-to", "N", "round each group's kept channels to a multiple of N, as compress --round-to (default 1)"},
    {"mean", "LIST", "per-channel mean after scaling pixels to [0, 1] (default: model metadata, else 0)"},
    {"std", "LIST", "per-channel std (default: model metadata, else 1)"},
    {"json", NULL, "print JSON (schema in docs/json.md) instead of the table"},
    {0},
};

enum { MAX_RATES = 16 };

static int parse_rates(const char *text, double *rates, int *n, sfp_error_t *err)
{
    *n = 0;
    const char *at = text;
    while (*at) {
        char *end = NULL;
        double v = strtod(at, &end);
        if (end == at || (*end && *end != ',') || !(v >= 0.0 && v < 1.0) || *n == MAX_RATES)
            return sfp_errorf(err, SFP_EUSAGE, "--rates '%s': want up to %d comma-separated rates in [0, 1)", text,
                              MAX_RATES);
        rates[(*n)++] = v;
        at = *end ? end + 1 : end;
    }
    if (*n == 0) return sfp_errorf(err, SFP_EUSAGE, "--rates '%s': no rate", text);
    return 0;
}

static void show_progress(void *ctx, int done, int total)
{
    if (!*(bool *)ctx) fprintf(stderr, "\ronnx-sfp: sensitivity: %d of %d groups%s", done, total, done == total ? "\n" : "");
}

static void print_json(const char *path, const sfp_groups_t *gs, const sfp_sensitivity_t *s, const double *rates,
                       int round_to)
{
    json_object *root = json_object_new_object(), *arr = json_object_new_array(), *ra = json_object_new_array();
    json_object_object_add(root, "schema_version", json_object_new_int(1));
    json_object_object_add(root, "model", json_object_new_string(path));
    json_object_object_add(root, "images", json_object_new_int64(s->images));
    json_object_object_add(root, "accuracy", json_object_new_double(s->base_accuracy));
    for (int k = 0; k < s->n_rates; k++) json_object_array_add(ra, json_object_new_double(rates[k]));
    json_object_object_add(root, "rates", ra);
    json_object_object_add(root, "round_to", json_object_new_int(round_to));
    for (int gi = 0; gi < gs->n; gi++) {
        if (isnan(s->accuracy[(size_t)gi * (size_t)s->n_rates])) continue;
        json_object *g = json_object_new_object(), *res = json_object_new_array();
        json_object_object_add(g, "group", json_object_new_string(gs->g[gi].label));
        json_object_object_add(g, "channels", json_object_new_int(gs->g[gi].n_channels));
        for (int k = 0; k < s->n_rates; k++) {
            size_t at = (size_t)gi * (size_t)s->n_rates + (size_t)k;
            json_object *r = json_object_new_object();
            json_object_object_add(r, "rate", json_object_new_double(rates[k]));
            json_object_object_add(r, "removed", json_object_new_int(s->removed[at]));
            json_object_object_add(r, "accuracy", json_object_new_double(s->accuracy[at]));
            json_object_object_add(r, "drop_points", json_object_new_double(100.0 * (s->base_accuracy - s->accuracy[at])));
            json_object_array_add(res, r);
        }
        json_object_object_add(g, "results", res);
        json_object_array_add(arr, g);
    }
    json_object_object_add(root, "groups", arr);
    printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
}

static void print_table(const sfp_groups_t *gs, const sfp_sensitivity_t *s, const double *rates)
{
    printf("accuracy %.2f%% on %lld images; accuracy drop in points with one group pruned alone (channels removed)\n",
           100.0 * s->base_accuracy, (long long)s->images);
    printf("%-44s %8s", "group", "channels");
    for (int k = 0; k < s->n_rates; k++) printf("   rate %-6.3g", rates[k]);
    printf("\n");
    for (int gi = 0; gi < gs->n; gi++) {
        if (isnan(s->accuracy[(size_t)gi * (size_t)s->n_rates])) continue;
        printf("%-44s %8d", gs->g[gi].label, gs->g[gi].n_channels);
        for (int k = 0; k < s->n_rates; k++) {
            size_t at = (size_t)gi * (size_t)s->n_rates + (size_t)k;
            printf("  %+7.2f (%3d)", 100.0 * (s->base_accuracy - s->accuracy[at]), s->removed[at]);
        }
        printf("\n");
    }
}

static int run(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    const char *path = a->pos[0], *data_path = cli_get(cmd, a, "data"), *skip = cli_get(cmd, a, "skip");
    double rates[MAX_RATES];
    int n_rates = 0, rc;
    int64_t batch = 128, limit = 0, round_to = 1;
    bool quiet = a->quiet || !isatty(STDERR_FILENO);
    if (!data_path) return sfp_errorf(err, SFP_EUSAGE, "usage: onnx-sfp sensitivity MODEL.onnx --data PATH (--data is required)");
    if ((rc = parse_rates(cli_get(cmd, a, "rates") ? cli_get(cmd, a, "rates") : "0.25,0.5,0.75", rates, &n_rates, err)) < 0 ||
        (rc = cli_int(cmd, a, "batch", 1, 65536, 128, &batch, err)) < 0 ||
        (rc = cli_int(cmd, a, "limit", 1, INT64_MAX, 0, &limit, err)) < 0 ||
        (rc = cli_int(cmd, a, "round-to", 1, 4096, 1, &round_to, err)) < 0)
        return rc;
    sfp_model_t *m = NULL;
    sfp_dataset_t *ds = NULL;
    sfp_groups_t *gs = NULL;
    sfp_sensitivity_t s = {0};
    const char *prep_source = NULL;
    if ((rc = cli_load_model(path, &m, err)) < 0) return rc;
    sfp_data_prep_t prep;
    if ((rc = cli_open_eval_data(cmd, a, m, path, data_path, "test", limit, &prep, &prep_source, &ds, err)) < 0) goto done;
    if ((rc = groups_find(m, &gs, err)) < 0) {
        sfp_error_prefix(err, "%s", sfp_q(path));
        goto done;
    }
    if (skip && !prune_skip_matches(m, gs, skip)) {
        rc = sfp_errorf(err, SFP_EUSAGE, "--skip '%s' matches no layer", sfp_q(skip));
        goto done;
    }
    if (!a->quiet)
        fprintf(stderr, "onnx-sfp: sensitivity of %s on %s (%s, %lld images, preprocessing from %s)\n", path, data_path,
                (ds)->format, (long long)(ds)->n, prep_source);
    if ((rc = prune_sensitivity(m, gs, rates, n_rates, (int)round_to, skip, ds, &prep, batch, a->threads, show_progress,
                                &quiet, &s, err)) < 0) {
        sfp_error_prefix(err, "%s", sfp_q(path));
        goto done;
    }
    if (cli_flag(cmd, a, "json")) print_json(path, gs, &s, rates, (int)round_to);
    else print_table(gs, &s, rates);
done:
    prune_sensitivity_clear(&s);
    groups_free(gs);
    data_free(ds);
    sfp_model_free(m);
    return rc;
}

const cli_cmd_t cmd_sensitivity = {
    "sensitivity", "MODEL.onnx --data PATH [--rates 0.25,0.5,0.75] [--round-to N] [--limit N] [--skip PATTERN] [--json]",
    "accuracy drop of each channel group pruned alone at a few rates (no fine-tuning)",
    "Each prunable group (see report --groups) loses its lowest-L2 floor(R * C) channels while every other\n"
    "group stays whole, and the model is evaluated on the test split of --data (the first --limit N images).\n"
    "The drop in points tells which groups tolerate pruning: give them higher rates in compress --rates FILE.",
    opts, 1, 1, run,
};
