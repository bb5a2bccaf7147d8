/* onnx-sfp eval: top-1 accuracy, mean cross-entropy and images/s of a model
 * on a dataset (IDX, CIFAR binary, image folders). Preprocessing comes from
 * --mean/--std, else from the model's metadata (written by train/compress),
 * else mean 0 / std 1 (pixels in [0, 1]). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_train.h"

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
    sfp_evaluator_t *ev = NULL;
    const char *prep_source = NULL;
    if ((rc = cli_load_model(path, &m, err)) < 0) return rc;
    if ((rc = cli_model_geometry(m, path, &c, &h, &w, &k, err)) < 0) goto done;
    sfp_data_prep_t prep;
    data_prep_init(&prep, c, h, w);
    if ((rc = cli_preprocessing(cmd, a, m, path, NULL, &prep, &prep_source, err)) < 0) goto done;
    sfp_data_opts_t dopts = {c, h, w, k, false};
    if ((rc = data_open(data_path, split, &dopts, &full, err)) < 0) goto done;
    if (limit > 0) {
        if ((rc = data_subset(full, limit, &ds, err)) < 0) goto done;
    } else {
        ds = full;
        full = NULL;
    }
    if ((rc = data_prep_check(&prep, ds, err)) < 0) goto done;
    if ((rc = evaluator_create(m, ds, &prep, batch, a->threads, &ev, err)) < 0) goto done;
    if (!a->quiet)
        fprintf(stderr, "onnx-sfp: eval %s on %s (%s, %s split, %lld images, fit %s, preprocessing from %s)\n", path,
                data_path, ds->format, split, (long long)ds->n, data_prep_fit_name(&prep, ds), prep_source);
    sfp_eval_result_t r;
    if ((rc = evaluator_run(ev, &r, err)) < 0) goto done;
    double ips = r.seconds > 0 ? (double)r.images / r.seconds : 0.0;
    if (cli_flag(cmd, a, "json"))
        printf("{\"accuracy\": %.6f, \"loss\": %.6f, \"images\": %lld, \"images_per_s\": %.1f}\n", r.accuracy, r.loss,
               (long long)r.images, ips);
    else
        printf("accuracy %.2f%% (%lld of %lld), mean loss %.4f, %.1f images/s\n", 100.0 * r.accuracy,
               (long long)r.correct, (long long)r.images, r.loss, ips);
done:
    evaluator_free(ev);
    data_free(ds);
    data_free(full);
    sfp_model_free(m);
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
