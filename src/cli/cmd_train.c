/* onnx-sfp train: fine-tune (or train from `init`) a model on a dataset with
 * SGD, validate after every epoch, write the last model to OUT (and the best
 * by validation accuracy to --best), atomically and only when training ends
 * well. The preprocessing used goes into the output's metadata. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_train.h"
#include "dist/dist.h"
#include "util/util.h"

static const cli_opt_t opts[] = {
    CLI_TRAIN_OPTS,
    {"best", "FILE", "also write the model of the epoch with the best validation accuracy"},
    {0},
};

/* IN is never overwritten and the files written are distinct. */
static int check_files(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    const char *in = a->pos[0], *out = a->pos[1], *best_path = cli_get(cmd, a, "best");
    const char *ckpt = cli_get(cmd, a, "checkpoint");
    const char *files[3][2] = {{"OUT", out}, {"--best", best_path}, {"--checkpoint", ckpt}};
    for (int i = 0; i < 3; i++) {
        if (!files[i][1]) continue;
        if (cli_same_file(in, files[i][1]))
            return sfp_errorf(err, SFP_EUSAGE, "%s %s is IN: the input is never overwritten", files[i][0],
                              sfp_q(files[i][1]));
        for (int j = 0; j < i; j++)
            if (files[j][1] && cli_same_file(files[j][1], files[i][1]))
                return sfp_errorf(err, SFP_EUSAGE, "%s and %s name the same file %s", files[j][0], files[i][0],
                                  sfp_q(files[i][1]));
    }
    return 0;
}

/* The best epoch's model (serialised by the trainer) in OUT's form: as it
 * is unless it has re-inserted BatchNormalization to fold. */
static int save_best(const cli_train_setup_t *s, const uint8_t *best, size_t len, const char *path, sfp_error_t *err)
{
    sfp_model_t *m = NULL;
    int folded = 0, rc = 0;
    if (s->bn_mode != CLI_BN_KEEP) {
        rc = sfp_model_load_bytes(best, len, path, &m, err);
        if (rc == 0) rc = cli_bn_finish(s, m, &folded, err);
    }
    if (rc == 0) rc = folded > 0 ? sfp_model_save(m, path, err) : sfp_write_file_atomic(path, best, len, err);
    sfp_model_free(m);
    return rc;
}

static int run(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    const char *in = a->pos[0], *out = a->pos[1], *best_path = cli_get(cmd, a, "best");
    const char *resume = cli_get(cmd, a, "resume");
    sfp_model_t *m = NULL;
    sfp_checkpoint_t ck;
    memset(&ck, 0, sizeof ck);
    cli_train_setup_t s;
    memset(&s, 0, sizeof s);
    sfp_trainer_t *t = NULL;
    char interrupt_path[PATH_MAX];
    int rc = check_files(cmd, a, err);
    if (rc == 0) rc = resume ? cli_resume_model(resume, &ck, &m, err) : cli_load_model(in, &m, err);
    int n_bn = 0;
    if (rc == 0) rc = cli_train_setup(cmd, a, m, in, 0.1, -1, NULL, &s, err);
    if (rc == 0) rc = cli_bn_reinsert(&s, m, a->quiet, &n_bn, err);
    if (rc == 0) rc = cli_record_preprocessing(m, &s, err);
    snprintf(interrupt_path, sizeof interrupt_path, "%s.ckpt", out);
    s.opts.interrupt_path = interrupt_path;
    s.opts.keep_best = best_path != NULL;
    if (rc == 0) rc = trainer_create(m, s.train, s.val, &s.prep, &s.opts, NULL, &t, err);
    if (rc == 0 && resume) rc = trainer_resume(t, &ck, resume, err);
    /* Data-parallel: every process has its model and data, or all stop here. */
    if ((rc = dist_agree(rc, err)) < 0) goto done;
    if (!a->quiet) {
        fprintf(stderr, "onnx-sfp: train %s on %s (%s, %lld images, fit %s, preprocessing from %s)\n", in, s.train->path,
                s.train->format, (long long)s.train->n, data_prep_fit_name(&s.prep, s.train), s.prep_source);
        fprintf(stderr, "onnx-sfp: validation: %s; %lld epochs of %lld steps at batch %lld%s\n", s.val_desc,
                (long long)s.opts.epochs, (long long)trainer_steps_per_epoch(t), (long long)s.opts.batch,
                resume ? " (resumed)" : "");
    }
    if ((rc = trainer_run(t, err)) < 0) goto done;
    /* Process 0 writes (the others' writes are no-ops); all learn whether it could. */
    rc = cli_bn_finish(&s, m, NULL, err);
    if (rc == 0) rc = sfp_model_save(m, out, err);
    size_t best_len = 0;
    const uint8_t *best = trainer_best_model(t, &best_len);
    if (rc == 0 && best_path && best) rc = save_best(&s, best, best_len, best_path, err);
    if ((rc = dist_agree(rc, err)) < 0) goto done;
    const int64_t done_epochs = trainer_epochs_done(t);
    const sfp_epoch_stats_t *last = done_epochs > 0 ? &trainer_history(t)[done_epochs - 1] : NULL;
    int64_t best_epoch = -1;
    double best_acc = trainer_best_accuracy(t, &best_epoch);
    if (last && isfinite(last->val_accuracy))
        printf("validation accuracy %.2f%% (last epoch), best %.2f%% (epoch %lld)\n", 100.0 * last->val_accuracy,
               100.0 * best_acc, (long long)best_epoch + 1);
    else if (last)
        printf("training accuracy %.2f%% (last epoch, no validation data)\n", 100.0 * last->accuracy);
    printf("wrote %s%s%s\n", out, best_path && best ? " and " : "", best_path && best ? best_path : "");
done:
    trainer_free(t);
    cli_train_setup_clear(&s);
    checkpoint_clear(&ck);
    sfp_model_free(m);
    return rc;
}

const cli_cmd_t cmd_train = {
    "train",
    "IN.onnx OUT.onnx --data PATH --epochs N [--lr LR] [--batch B] [--schedule S] [--val-data PATH] "
    "[--checkpoint FILE] [--resume FILE] [--best FILE] ...",
    "train a model with SGD on a dataset (fine-tuning, or from `init`)",
    "Cross-entropy, SGD with momentum and weight decay, an LR schedule stepped every iteration, random crop\n"
    "and flip; validation after every epoch on --val-data or a held-out --val-split. OUT gets the last epoch's\n"
    "model, --best the best-validation one; both carry the preprocessing in their metadata. Ctrl-C writes a\n"
    "checkpoint (--checkpoint, else OUT.ckpt) that --resume continues exactly; the loss or weights turning\n"
    "NaN/Inf stop with exit 1 and write nothing.",
    opts, 2, 2, run,
};
