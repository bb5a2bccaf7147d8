/* Shared command-line plumbing of train, compress and eval: model geometry,
 * preprocessing, training and validation data, training flags. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_train.h"
#include "surgery/surgery.h"
#include "util/util.h"

int cli_model_geometry(sfp_model_t *m, const char *path, int *c, int *h, int *w, int *k, sfp_error_t *err)
{
    const sfp_graph_t *g = &m->graph;
    int in = graph_data_input(g);
    if (in < 0) return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: the model needs exactly one data input", sfp_q(path));
    const sfp_value_t *x = &g->values[in];
    if (x->ndim != 4 || x->dtype != SFP_DT_FLOAT)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: input '%s' is not a float NCHW image batch", sfp_q(path),
                          sfp_q(x->name));
    if (g->n_outputs < 1) return sfp_errorf(err, SFP_EBADMODEL, "%s: no output", sfp_q(path));
    const sfp_value_t *y = &g->values[g->outputs[0]];
    if (y->ndim != 2 || y->dtype != SFP_DT_FLOAT || y->dims[1] < 1)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: output '%s' is not [N, classes] float logits", sfp_q(path),
                          sfp_q(y->name));
    if (x->dims[1] < 1 || x->dims[1] > DATA_MAX_CHANNELS || x->dims[2] < 1 || x->dims[2] > DATA_MAX_SIDE ||
        x->dims[3] < 1 || x->dims[3] > DATA_MAX_SIDE || y->dims[1] < 1 || y->dims[1] > INT32_MAX)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: input %lldx%lldx%lld or %lld classes outside what images give",
                          sfp_q(path), (long long)x->dims[1], (long long)x->dims[2], (long long)x->dims[3],
                          (long long)y->dims[1]);
    *c = (int)x->dims[1];
    *h = (int)x->dims[2];
    *w = (int)x->dims[3];
    *k = (int)y->dims[1];
    return 0;
}

int cli_preprocessing(const cli_cmd_t *cmd, const cli_args_t *a, const sfp_model_t *m, const char *path,
                      const sfp_dataset_t *stats_from, sfp_data_prep_t *prep, const char **source, sfp_error_t *err)
{
    const char *mean_s = cli_get(cmd, a, "mean"), *std_s = cli_get(cmd, a, "std");
    const char *meta = sfp_model_meta_get(m, DATA_META_KEY);
    int rc;
    if (!mean_s && !std_s && meta) {
        sfp_data_desc_t d;
        memset(&d, 0, sizeof d);
        if ((rc = data_describe_parse(meta, path, &d, err)) < 0) return rc;
        rc = data_prep_set_norm(prep, d.prep.mean, d.prep.n_mean, d.prep.std, d.prep.n_std, err);
        data_desc_clear(&d);
        *source = "model metadata";
        return rc;
    }
    float mean[DATA_MAX_CHANNELS] = {0}, std[DATA_MAX_CHANNELS] = {1, 1, 1};
    int n_mean = 1, n_std = 1;
    *source = mean_s || std_s ? "--mean/--std" : "none";
    if (!mean_s && !std_s && stats_from) {
        if ((rc = data_channel_stats(stats_from, prep->channels, mean, std, err)) < 0) return rc;
        n_mean = n_std = prep->channels;
        for (int i = 0; i < n_std; i++)
            if (!(std[i] > 1e-6f)) std[i] = 1.0f; /* a constant channel: do not divide by zero */
        *source = "data statistics";
    }
    if (mean_s && (rc = data_parse_floats(mean_s, "--mean", mean, DATA_MAX_CHANNELS, &n_mean, err)) < 0) return rc;
    if (std_s && (rc = data_parse_floats(std_s, "--std", std, DATA_MAX_CHANNELS, &n_std, err)) < 0) return rc;
    return data_prep_set_norm(prep, mean, n_mean, std, n_std, err);
}

int cli_open_data(const char *path, const char *split, const sfp_data_opts_t *o, const char *model_path,
                  sfp_dataset_t **out, sfp_error_t *err)
{
    sfp_data_opts_t own = *o;
    own.n_classes = 0; /* the data's own class count, compared below */
    int rc = data_open(path, split, &own, out, err);
    if (rc < 0 || (*out)->n_classes == o->n_classes) return rc;
    rc = sfp_errorf(err, SFP_EBADDATA, "%s: the data has %d classes, the model %s has %d outputs", sfp_q(path),
                    (*out)->n_classes, sfp_q(model_path), o->n_classes);
    data_free(*out);
    *out = NULL;
    return rc;
}

void cli_train_setup_clear(cli_train_setup_t *s)
{
    data_free(s->train);
    data_free(s->val);
    s->train = s->val = NULL;
}

/* The first n examples of *ds (n <= 0: all), replacing it. */
static int limit_set(sfp_dataset_t **ds, int64_t n, sfp_error_t *err)
{
    if (n <= 0 || n >= (*ds)->n) return 0;
    sfp_dataset_t *sub = NULL;
    int rc = data_subset(*ds, n, &sub, err);
    if (rc < 0) return rc;
    data_free(*ds);
    *ds = sub;
    return 0;
}

static int parse_schedule(const cli_cmd_t *cmd, const cli_args_t *a, int64_t epochs, double lr, sfp_lr_schedule_t *s,
                          sfp_error_t *err)
{
    const char *name = cli_get(cmd, a, "schedule") ? cli_get(cmd, a, "schedule") : "cosine";
    const char *ms = cli_get(cmd, a, "milestones");
    double warmup = 0.0;
    int rc;
    memset(s, 0, sizeof *s);
    s->base_lr = lr;
    if (!strcmp(name, "constant")) s->kind = SFP_LR_CONSTANT;
    else if (!strcmp(name, "step")) s->kind = SFP_LR_STEP;
    else if (!strcmp(name, "cosine")) s->kind = SFP_LR_COSINE;
    else return sfp_errorf(err, SFP_EUSAGE, "--schedule: '%s' is not constant, step or cosine", name);
    if ((rc = cli_double(cmd, a, "gamma", 0.0, 1.0, 0.1, &s->gamma, err)) < 0) return rc;
    if ((rc = cli_double(cmd, a, "warmup", 0.0, (double)epochs, 0.0, &warmup, err)) < 0) return rc;
    if (warmup != floor(warmup)) return sfp_errorf(err, SFP_EUSAGE, "--warmup: give whole epochs");
    s->warmup_steps = (int64_t)warmup;
    s->warmup_start = 0.1;
    if (ms && s->kind != SFP_LR_STEP) return sfp_errorf(err, SFP_EUSAGE, "--milestones needs --schedule step");
    if (s->kind == SFP_LR_STEP && ms) {
        float v[SFP_LR_MAX_MILESTONES];
        int n = 0;
        if ((rc = data_parse_floats(ms, "--milestones", v, SFP_LR_MAX_MILESTONES, &n, err)) < 0) return rc;
        for (int i = 0; i < n; i++) {
            if (v[i] != floorf(v[i]) || v[i] < 1.0f || (double)v[i] > (double)epochs || (i && v[i] <= v[i - 1]))
                return sfp_errorf(err, SFP_EUSAGE, "--milestones: give increasing whole epochs in 1..%lld",
                                  (long long)epochs);
            s->milestones[i] = (int64_t)v[i];
        }
        s->n_milestones = n;
    } else if (s->kind == SFP_LR_STEP) { /* half and three quarters of the way */
        s->milestones[0] = epochs / 2 > 0 ? epochs / 2 : 1;
        s->milestones[1] = epochs * 3 / 4 > s->milestones[0] ? epochs * 3 / 4 : s->milestones[0] + 1;
        s->n_milestones = 2;
    }
    s->total_steps = epochs; /* the trainer counts it in steps */
    return 0;
}

int cli_train_setup(const cli_cmd_t *cmd, const cli_args_t *a, sfp_model_t *m, const char *model_path, double lr_default,
                    int64_t epochs_default, const char *method_desc, cli_train_setup_t *s, sfp_error_t *err)
{
    memset(s, 0, sizeof *s);
    const char *data_path = cli_get(cmd, a, "data"), *val_path = cli_get(cmd, a, "val-data");
    int64_t epochs = 0, batch = 0, limit = 0, seed = 0, crop_pad = -1;
    double lr = 0, momentum = 0, wd = 0, wd_bn = 0, smoothing = 0, val_split = 0;
    int rc;
    if (!data_path) return sfp_errorf(err, SFP_EUSAGE, "--data PATH is required for training");
    if (epochs_default < 0 && !cli_get(cmd, a, "epochs")) return sfp_errorf(err, SFP_EUSAGE, "--epochs N is required");
    if ((rc = cli_int(cmd, a, "epochs", 1, 100000, epochs_default, &epochs, err)) < 0 ||
        (rc = cli_int(cmd, a, "batch", 1, 65536, 128, &batch, err)) < 0 ||
        (rc = cli_int(cmd, a, "limit", 1, INT64_MAX, 0, &limit, err)) < 0 ||
        (rc = cli_int(cmd, a, "seed", 0, INT64_MAX, 1, &seed, err)) < 0 ||
        (rc = cli_int(cmd, a, "crop-pad", 0, 1024, -1, &crop_pad, err)) < 0 ||
        (rc = cli_double(cmd, a, "lr", 0.0, 100.0, lr_default, &lr, err)) < 0 ||
        (rc = cli_double(cmd, a, "momentum", 0.0, 0.999999, 0.9, &momentum, err)) < 0 ||
        (rc = cli_double(cmd, a, "wd", 0.0, 1.0, 5e-4, &wd, err)) < 0 ||
        (rc = cli_double(cmd, a, "wd-bn", 0.0, 1.0, wd, &wd_bn, err)) < 0 ||
        (rc = cli_double(cmd, a, "label-smoothing", 0.0, 0.999999, 0.0, &smoothing, err)) < 0 ||
        (rc = cli_double(cmd, a, "val-split", 0.0, 0.9, 0.1, &val_split, err)) < 0)
        return rc;
    if (val_path && cli_get(cmd, a, "val-split"))
        return sfp_errorf(err, SFP_EUSAGE, "give --val-data or --val-split, not both");
    const char *bn = cli_get(cmd, a, "bn") ? cli_get(cmd, a, "bn") : "fold";
    if (!strcmp(bn, "fold")) s->bn_mode = CLI_BN_FOLD;
    else if (!strcmp(bn, "keep")) s->bn_mode = CLI_BN_KEEP;
    else if (!strcmp(bn, "none")) s->bn_mode = CLI_BN_NONE;
    else return sfp_errorf(err, SFP_EUSAGE, "--bn: '%s' is not fold, keep or none", bn);
    if (cli_flag(cmd, a, "nesterov") && momentum <= 0.0)
        return sfp_errorf(err, SFP_EUSAGE, "--nesterov needs --momentum above 0");
    if ((rc = cli_model_geometry(m, model_path, &s->c, &s->h, &s->w, &s->k, err)) < 0) return rc;
    sfp_train_opts_t *o = &s->opts;
    if ((rc = parse_schedule(cmd, a, epochs, lr, &o->lr, err)) < 0) return rc;
    sfp_data_opts_t dopts = {s->c, s->h, s->w, s->k, false};
    if ((rc = cli_open_data(data_path, "train", &dopts, model_path, &s->train, err)) < 0) goto fail;
    if ((rc = limit_set(&s->train, limit, err)) < 0) goto fail;
    if (val_path) {
        if ((rc = data_open(val_path, "test", &dopts, &s->val, err)) < 0) goto fail;
        if ((rc = limit_set(&s->val, limit > 0 ? (limit + 9) / 10 : 0, err)) < 0) goto fail;
        snprintf(s->val_desc, sizeof s->val_desc, "%lld images of %s", (long long)s->val->n, val_path);
    } else if (val_split > 0.0 && s->train->n >= 2) {
        sfp_dataset_t *tr = NULL, *va = NULL;
        if ((rc = data_split(s->train, val_split, (uint64_t)seed, &tr, &va, err)) < 0) goto fail;
        data_free(s->train);
        s->train = tr;
        s->val = va;
        snprintf(s->val_desc, sizeof s->val_desc, "%lld images held out of the training data (--val-split %g)",
                 (long long)va->n, val_split);
    } else {
        snprintf(s->val_desc, sizeof s->val_desc, "none");
    }
    data_prep_init(&s->prep, s->c, s->h, s->w);
    if ((rc = cli_preprocessing(cmd, a, m, model_path, s->train, &s->prep, &s->prep_source, err)) < 0) goto fail;
    if ((rc = data_prep_check(&s->prep, s->train, err)) < 0) goto fail;
    o->epochs = epochs;
    o->batch = batch;
    o->sgd.momentum = (float)momentum;
    o->sgd.nesterov = cli_flag(cmd, a, "nesterov");
    o->sgd.weight_decay = (float)wd;
    o->sgd.wd_bn_bias = (float)wd_bn;
    o->label_smoothing = (float)smoothing;
    o->seed = (uint64_t)seed;
    o->threads = a->threads;
    o->augment.crop_pad = crop_pad >= 0 ? (int)crop_pad : (s->h >= 16 ? s->h / 8 : 0);
    o->augment.hflip = !cli_flag(cmd, a, "no-flip");
    o->checkpoint = cli_get(cmd, a, "checkpoint");
    o->local_bn = cli_flag(cmd, a, "local-bn");
    cli_progress_attach(&s->progress, a->quiet, o);
    /* What must be equal for a resumed run to continue the same run. */
    snprintf(s->fingerprint, sizeof s->fingerprint,
             "train=%lld val=%lld epochs=%lld batch=%lld lr=%g sched=%d/%d/%g/%lld momentum=%g%s wd=%g/%g ls=%g "
             "crop=%d flip=%d seed=%lld bn=%s%s%s",
             (long long)s->train->n, s->val ? (long long)s->val->n : 0LL, (long long)epochs, (long long)batch, lr,
             (int)o->lr.kind, o->lr.n_milestones, o->lr.gamma, (long long)o->lr.warmup_steps, momentum,
             o->sgd.nesterov ? "n" : "", wd, wd_bn, smoothing, o->augment.crop_pad, (int)o->augment.hflip,
             (long long)seed, bn, method_desc ? " " : "", method_desc ? method_desc : "");
    o->fingerprint = s->fingerprint;
    return 0;
fail:
    cli_train_setup_clear(s);
    return rc;
}

int cli_record_preprocessing(sfp_model_t *m, const cli_train_setup_t *s, sfp_error_t *err)
{
    char *json = NULL;
    int rc = data_describe(&s->prep, s->train, &json, err);
    if (rc == 0) rc = sfp_model_meta_set(m, DATA_META_KEY, json, err);
    free(json);
    return rc;
}

int cli_bn_reinsert(const cli_train_setup_t *s, sfp_model_t *m, bool quiet, int *n_inserted, sfp_error_t *err)
{
    int *convs = NULL, n = 0, rc;
    *n_inserted = 0;
    if (s->bn_mode == CLI_BN_NONE) return 0;
    if ((rc = bn_bare_convs(m, &convs, &n, err)) < 0 || n == 0) return rc;
    int *outputs = malloc(sizeof(int) * (size_t)n);
    double **stats = calloc(2 * (size_t)n, sizeof(double *));
    if (!outputs || !stats) rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < n; i++) outputs[i] = m->graph.nodes[convs[i]].outputs[0];
    if (rc == 0)
        rc = calibrate_channel_stats(m, s->train, &s->prep, CLI_BN_CALIB_IMAGES, s->opts.seed, s->opts.threads, n,
                                     outputs, stats, stats + n, err);
    if (rc == 0) rc = bn_insert(m, n, convs, (const double *const *)stats, (const double *const *)(stats + n), err);
    if (rc == 0) *n_inserted = n;
    if (rc == 0 && !quiet)
        fprintf(stderr,
                "onnx-sfp: %d convolutions have no BatchNormalization (folded by the exporter): re-inserted for "
                "training from their outputs' statistics on %lld images, %s (--bn)\n",
                n, (long long)(s->train->n < CLI_BN_CALIB_IMAGES ? s->train->n : CLI_BN_CALIB_IMAGES),
                s->bn_mode == CLI_BN_KEEP ? "kept in the output" : "folded back on export");
    for (int i = 0; stats && i < 2 * n; i++) free(stats[i]);
    free(stats);
    free(outputs);
    free(convs);
    return rc;
}

int cli_bn_finish(const cli_train_setup_t *s, sfp_model_t *m, int *n_folded, sfp_error_t *err)
{
    if (n_folded) *n_folded = 0;
    return s->bn_mode == CLI_BN_KEEP ? 0 : bn_fold_reinserted(m, n_folded, err);
}

int cli_resume_model(const char *ckpt_path, sfp_checkpoint_t *ck, sfp_model_t **out, sfp_error_t *err)
{
    int rc = checkpoint_read(ckpt_path, ck, err);
    if (rc < 0) return rc;
    char where[4200];
    snprintf(where, sizeof where, "%s (model in checkpoint)", ckpt_path);
    rc = sfp_model_load_bytes(ck->model, ck->model_len, where, out, err);
    if (rc < 0) checkpoint_clear(ck);
    return rc;
}

int cli_open_eval_data(const cli_cmd_t *cmd, const cli_args_t *a, sfp_model_t *m, const char *path,
                       const char *data_path, const char *split, int64_t limit, sfp_data_prep_t *prep,
                       const char **prep_source, sfp_dataset_t **out, sfp_error_t *err)
{
    int c = 0, h = 0, w = 0, k = 0;
    sfp_dataset_t *full = NULL, *ds = NULL;
    *out = NULL;
    int rc = cli_model_geometry(m, path, &c, &h, &w, &k, err);
    if (rc < 0) return rc;
    data_prep_init(prep, c, h, w);
    if ((rc = cli_preprocessing(cmd, a, m, path, NULL, prep, prep_source, err)) < 0) return rc;
    sfp_data_opts_t dopts = {c, h, w, k, false};
    if ((rc = data_open(data_path, split, &dopts, &full, err)) < 0) return rc;
    if (limit > 0) {
        rc = data_subset(full, limit, &ds, err);
        data_free(full); /* the view shares the store */
    } else {
        ds = full;
    }
    if (rc == 0) rc = data_prep_check(prep, ds, err);
    if (rc < 0) {
        data_free(ds);
        return rc;
    }
    *out = ds;
    return 0;
}
