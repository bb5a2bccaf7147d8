/* onnx-sfp eval: top-1 accuracy, mean cross-entropy and images/s of a model
 * on a dataset (IDX, CIFAR binary, image folders). Preprocessing comes from
 * --mean/--std, else from the model's metadata (written by train/compress),
 * else mean 0 / std 1 (pixels in [0, 1]). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "data/data.h"
#include "train/plan.h"

static const cli_opt_t opts[] = {
    {"data", "PATH", "dataset: IDX folder, CIFAR binary batches or class sub-folders of images"},
    {"split", "NAME", "test (default) or train"},
    {"batch", "B", "images per forward pass (default 128)"},
    {"limit", "N", "evaluate only the first N examples"},
    {"mean", "LIST", "per-channel mean after scaling pixels to [0, 1] (default: model metadata, else 0)"},
    {"std", "LIST", "per-channel std (default: model metadata, else 1)"},
    {"json", NULL, "print {\"accuracy\", \"loss\", \"images\", \"images_per_s\"}"},
    {0},
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Model input C x H x W and class count K from the inferred shapes at batch 1. */
static int model_geometry(sfp_model_t *m, const char *path, int *c, int *h, int *w, int *k, sfp_error_t *err)
{
    const sfp_graph_t *g = &m->graph;
    int in = graph_data_input(g);
    if (in < 0) return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: eval needs a model with one data input", path);
    const sfp_value_t *x = &g->values[in];
    if (x->ndim != 4 || x->dtype != SFP_DT_FLOAT)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: input '%s' is not a float NCHW image batch", path, x->name);
    if (g->n_outputs < 1) return sfp_errorf(err, SFP_EBADMODEL, "%s: no output", path);
    const sfp_value_t *y = &g->values[g->outputs[0]];
    if (y->ndim != 2 || y->dtype != SFP_DT_FLOAT)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: output '%s' is not [N, classes] float logits", path, y->name);
    *c = (int)x->dims[1];
    *h = (int)x->dims[2];
    *w = (int)x->dims[3];
    *k = (int)y->dims[1];
    return 0;
}

/* --mean/--std, else the model's recorded preprocessing, else mean 0 std 1. */
static int preprocessing(const cli_cmd_t *cmd, const cli_args_t *a, const sfp_model_t *m, const char *path,
                         sfp_data_prep_t *prep, sfp_error_t *err)
{
    const char *mean_s = cli_get(cmd, a, "mean"), *std_s = cli_get(cmd, a, "std");
    const char *meta = model_meta_get(m, DATA_META_KEY);
    int rc;
    if (!mean_s && !std_s && meta) {
        sfp_data_desc_t d;
        memset(&d, 0, sizeof d);
        if ((rc = data_describe_parse(meta, path, &d, err)) < 0) return rc;
        rc = data_prep_set_norm(prep, d.prep.mean, d.prep.n_mean, d.prep.std, d.prep.n_std, err);
        data_desc_clear(&d);
        return rc;
    }
    float mean[DATA_MAX_CHANNELS] = {0}, std[DATA_MAX_CHANNELS] = {1, 1, 1};
    int n_mean = 1, n_std = 1;
    if (mean_s && (rc = data_parse_floats(mean_s, "--mean", mean, DATA_MAX_CHANNELS, &n_mean, err)) < 0) return rc;
    if (std_s && (rc = data_parse_floats(std_s, "--std", std, DATA_MAX_CHANNELS, &n_std, err)) < 0) return rc;
    return data_prep_set_norm(prep, mean, n_mean, std, n_std, err);
}

/* Adds the batch's summed loss and correct count from logits (n x k). */
static void score(const float *logits, const int32_t *labels, int64_t n, int k, double *loss, int64_t *correct)
{
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + i * k;
        int best = 0;
        float zmax = z[0];
        for (int j = 1; j < k; j++)
            if (z[j] > zmax) {
                zmax = z[j];
                best = j;
            }
        double sum = 0.0;
        for (int j = 0; j < k; j++) sum += exp((double)(z[j] - zmax));
        *loss += log(sum) - (double)(z[labels[i]] - zmax);
        *correct += best == labels[i];
    }
}

static int run(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    const char *path = a->pos[0], *data_path = cli_get(cmd, a, "data");
    const char *split = cli_get(cmd, a, "split") ? cli_get(cmd, a, "split") : "test";
    int64_t batch = 128, limit = 0;
    int rc, c = 0, h = 0, w = 0, k = 0;
    if (!data_path) return sfp_errorf(err, SFP_EUSAGE, "usage: onnx-sfp eval MODEL.onnx --data PATH (--data is required)");
    if (strcmp(split, "test") && strcmp(split, "train"))
        return sfp_errorf(err, SFP_EUSAGE, "--split: '%s' is not test or train", split);
    if ((rc = cli_int(cmd, a, "batch", 1, 65536, 128, &batch, err)) < 0) return rc;
    if ((rc = cli_int(cmd, a, "limit", 1, INT64_MAX, 0, &limit, err)) < 0) return rc;
    sfp_model_t *m = NULL;
    sfp_dataset_t *full = NULL, *ds = NULL;
    sfp_data_iter_t *it = NULL;
    sfp_plan_t *plan = NULL, *tail_plan = NULL;
    if ((rc = model_load(path, &m, err)) < 0) return rc;
    if ((rc = model_geometry(m, path, &c, &h, &w, &k, err)) < 0) goto done;
    sfp_data_prep_t prep;
    data_prep_init(&prep, c, h, w);
    if ((rc = preprocessing(cmd, a, m, path, &prep, err)) < 0) goto done;
    sfp_data_opts_t dopts = {c, h, w, k};
    if ((rc = data_open(data_path, split, &dopts, &full, err)) < 0) goto done;
    if (limit > 0) {
        if ((rc = data_subset(full, limit, &ds, err)) < 0) goto done;
    } else {
        ds = full;
        full = NULL;
    }
    if ((rc = data_prep_check(&prep, ds, err)) < 0) goto done;
    if (batch > ds->n) batch = ds->n;
    sfp_data_iter_opts_t iopts = {batch, false, false, true, 0, {0, false}};
    if ((rc = data_iter_create(ds, &prep, &iopts, &it, err)) < 0) goto done;
    if ((rc = plan_create(m, batch, 0, a->threads, &plan, err)) < 0) goto done;
    if (!a->quiet)
        fprintf(stderr, "onnx-sfp: eval %s on %s (%s, %s split, %lld images, fit %s)\n", path, data_path, ds->format,
                split, (long long)ds->n, data_prep_fit_name(&prep, ds));
    double loss = 0.0, t0 = now_seconds();
    int64_t correct = 0, seen = 0;
    sfp_data_batch_t b;
    data_iter_start_epoch(it, 0);
    while (data_iter_next(it, &b)) {
        sfp_plan_t *p = plan;
        if (b.n != batch) {
            if (!tail_plan && (rc = plan_create(m, b.n, 0, a->threads, &tail_plan, err)) < 0) goto done;
            p = tail_plan;
        }
        const void *inputs[1] = {b.x};
        if ((rc = plan_run(p, inputs, err)) < 0) goto done;
        score(plan_output(p, 0), b.labels, b.n, k, &loss, &correct);
        seen += b.n;
    }
    double seconds = now_seconds() - t0;
    double acc = seen ? (double)correct / (double)seen : 0.0, mean_loss = seen ? loss / (double)seen : 0.0;
    double ips = seconds > 0 ? (double)seen / seconds : 0.0;
    if (cli_flag(cmd, a, "json"))
        printf("{\"accuracy\": %.6f, \"loss\": %.6f, \"images\": %lld, \"images_per_s\": %.1f}\n", acc, mean_loss,
               (long long)seen, ips);
    else
        printf("accuracy %.2f%% (%lld of %lld), mean loss %.4f, %.1f images/s\n", 100.0 * acc, (long long)correct,
               (long long)seen, mean_loss, ips);
done:
    plan_free(tail_plan);
    plan_free(plan);
    data_iter_free(it);
    data_free(ds);
    data_free(full);
    model_free(m);
    return rc;
}

const cli_cmd_t cmd_eval = {
    "eval", "MODEL.onnx --data PATH [--split test|train] [--batch B] [--limit N] [--mean LIST --std LIST] [--json]",
    "top-1 accuracy, mean cross-entropy loss and images/s on a dataset",
    "Pixels are scaled to [0, 1], then normalised by --mean/--std (default: what the model's metadata\n"
    "records, written by train/compress; else 0 and 1). Images are fitted to the model's input: smaller\n"
    "ones padded and centred (28x28 IDX into 32x32), others resized; gray/RGB converted.",
    opts, 1, 1, run,
};
