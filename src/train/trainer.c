/* The training loop: epochs of shuffled, augmented batches through a
 * training plan (forward, cross-entropy, backward, SGD), the caller's hooks
 * around the steps (pruning schedules), validation after each epoch, the best
 * model kept, checkpoints after each epoch and on SIGINT/SIGTERM, and a stop
 * with a clear error when the loss or the weights stop being finite.
 * Everything random comes from (seed, epoch, position), so a run resumed from
 * a checkpoint continues exactly as the uninterrupted run would have. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "train/train.h"
#include "util/util.h"

#define TRAIN_LOSS_LIMIT 1e4

struct sfp_trainer {
    sfp_model_t *m;
    const sfp_dataset_t *train, *val;
    sfp_data_prep_t prep;
    sfp_train_opts_t o;
    sfp_train_hooks_t h;
    sfp_lr_schedule_t lr;           /* in steps */
    sfp_plan_t *plan;
    sfp_sgd_t *sgd;
    sfp_data_iter_t *it;
    sfp_evaluator_t *ev;
    float *dlogits;
    int64_t batch, n_classes, steps_per_epoch;
    int64_t epoch, first_batch, step;   /* where the next step starts */
    bool resumed_mid_epoch;
    double best_acc;
    int64_t best_epoch;
    uint8_t *best;
    size_t best_len;
    sfp_epoch_stats_t *history;     /* o.epochs entries */
    double t_start;
    int64_t steps_at_start;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- SIGINT/SIGTERM: a flag checked after every step ---- */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

typedef struct saved_handlers {
    struct sigaction intr, term;
} saved_handlers_t;

static void signals_catch(saved_handlers_t *saved)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; /* a second signal ends the process the usual way */
    stop_signal = 0;
    sigaction(SIGINT, &sa, &saved->intr);
    sigaction(SIGTERM, &sa, &saved->term);
}

static void signals_restore(const saved_handlers_t *saved)
{
    sigaction(SIGINT, &saved->intr, NULL);
    sigaction(SIGTERM, &saved->term, NULL);
}

/* ---- creation ---- */
void trainer_free(sfp_trainer_t *t)
{
    if (!t) return;
    evaluator_free(t->ev);
    data_iter_free(t->it);
    sgd_free(t->sgd);
    plan_free(t->plan);
    free(t->dlogits);
    free(t->best);
    free(t->history);
    free(t);
}

int trainer_create(sfp_model_t *m, const sfp_dataset_t *train, const sfp_dataset_t *val, const sfp_data_prep_t *prep,
                   const sfp_train_opts_t *opts, const sfp_train_hooks_t *hooks, sfp_trainer_t **out, sfp_error_t *err)
{
    if (opts->epochs < 1) return sfp_errorf(err, SFP_EUSAGE, "--epochs must be at least 1");
    if (opts->batch < 1) return sfp_errorf(err, SFP_EUSAGE, "--batch must be at least 1");
    sfp_trainer_t *t = calloc(1, sizeof *t);
    if (!t) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    t->m = m;
    t->train = train;
    t->val = val;
    t->prep = *prep;
    t->o = *opts;
    if (hooks) t->h = *hooks;
    t->best_acc = (double)NAN;
    t->best_epoch = -1;
    t->batch = opts->batch < train->n ? opts->batch : train->n;
    t->steps_per_epoch = train->n / t->batch;
    int rc = 0;
    /* The schedule in steps; an epoch's fraction counts by steps. */
    t->lr = opts->lr;
    const int64_t spe = t->steps_per_epoch;
    for (int i = 0; i < t->lr.n_milestones; i++) t->lr.milestones[i] *= spe;
    t->lr.warmup_steps *= spe;
    t->lr.total_steps = opts->epochs * spe;
    if ((rc = lr_schedule_check(&t->lr, err)) < 0) goto fail;
    t->history = calloc((size_t)opts->epochs, sizeof *t->history);
    if (!t->history) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto fail;
    }
    sfp_data_iter_opts_t io = {t->batch, true, true, true, opts->seed, opts->augment};
    if ((rc = data_iter_create(train, prep, &io, &t->it, err)) < 0) goto fail;
    if ((rc = plan_create(m, t->batch, SFP_PLAN_TRAIN, opts->threads, &t->plan, err)) < 0) goto fail;
    if ((rc = sgd_create(t->plan, &opts->sgd, &t->sgd, err)) < 0) goto fail;
    const sfp_shape_t *ys = plan_output_shape(t->plan, 0);
    if (ys->ndim != 2 || ys->dims[0] != t->batch) {
        rc = sfp_errorf(err, SFP_EUNSUPPORTED, "training needs [N, classes] logits as the model's first output");
        goto fail;
    }
    t->n_classes = ys->dims[1];
    t->dlogits = malloc((size_t)(t->batch * t->n_classes) * sizeof(float));
    if (!t->dlogits) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto fail;
    }
    if (val && (rc = evaluator_create(m, val, prep, t->batch, opts->threads, &t->ev, err)) < 0) goto fail;
    *out = t;
    return 0;
fail:
    trainer_free(t);
    return rc;
}

/* ---- checkpoints ---- */
static json_object *history_json(const sfp_trainer_t *t)
{
    json_object *arr = json_object_new_array();
    for (int64_t e = 0; e < t->epoch; e++) {
        const sfp_epoch_stats_t *s = &t->history[e];
        json_object *o = json_object_new_object();
        const double v[7] = {s->loss, s->accuracy, s->val_loss, s->val_accuracy, s->lr, s->seconds, s->images_per_s};
        const char *k[7] = {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "images_per_s"};
        for (int i = 0; i < 7; i++)
            json_object_object_add(o, k[i], isfinite(v[i]) ? json_object_new_double(v[i]) : NULL);
        json_object_array_add(arr, o);
    }
    return arr;
}

static int write_checkpoint(sfp_trainer_t *t, const char *path, sfp_error_t *err)
{
    sfp_checkpoint_t ck;
    memset(&ck, 0, sizeof ck);
    json_object *st = json_object_new_object();
    json_object_object_add(st, "format", json_object_new_string("onnx-sfp checkpoint"));
    json_object_object_add(st, "epoch", json_object_new_int64(t->epoch));
    json_object_object_add(st, "batch", json_object_new_int64(t->first_batch));
    json_object_object_add(st, "step", json_object_new_int64(t->step));
    json_object_object_add(st, "epochs", json_object_new_int64(t->o.epochs));
    json_object_object_add(st, "fingerprint", json_object_new_string(t->o.fingerprint ? t->o.fingerprint : ""));
    json_object_object_add(st, "best_accuracy", isfinite(t->best_acc) ? json_object_new_double(t->best_acc) : NULL);
    json_object_object_add(st, "best_epoch", json_object_new_int64(t->best_epoch));
    json_object_object_add(st, "momentum_started", json_object_new_boolean(sgd_started(t->sgd)));
    json_object_object_add(st, "history", history_json(t));
    int n = plan_n_params(t->plan), rc = 0;
    ck.state_json = sfp_strdup(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN));
    json_object_put(st);
    ck.buffer_names = calloc((size_t)n + 1, sizeof *ck.buffer_names);
    ck.buffers = calloc((size_t)n + 1, sizeof *ck.buffers);
    ck.buffer_numel = calloc((size_t)n + 1, sizeof *ck.buffer_numel);
    if (!ck.state_json || !ck.buffer_names || !ck.buffers || !ck.buffer_numel) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n && sgd_momentum(t->sgd, i); i++) { /* borrowed: not freed below */
        const sfp_param_t *p = plan_param(t->plan, i);
        ck.buffer_names[i] = (char *)p->name;
        ck.buffers[i] = (float *)sgd_momentum(t->sgd, i);
        ck.buffer_numel[i] = p->numel;
        ck.n_buffers = i + 1;
    }
    ck.best = t->best;
    ck.best_len = t->best_len;
    if ((rc = model_encode(t->m, &ck.model, &ck.model_len, err)) < 0) goto done;
    if (t->h.save_state && (rc = t->h.save_state(t->h.ctx, &ck.extra, &ck.extra_len, err)) < 0) goto done;
    rc = checkpoint_write(path, &ck, err);
done:
    free(ck.state_json);
    free(ck.model);
    free(ck.extra);
    free(ck.buffer_names);
    free(ck.buffers);
    free(ck.buffer_numel);
    return rc;
}

static int64_t json_int(json_object *o, const char *key, int64_t dflt)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int) ? json_object_get_int64(v)
                                                                                          : dflt;
}

static double json_num(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !v) return (double)NAN;
    return json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int) ? json_object_get_double(v)
                                                                                           : (double)NAN;
}

int trainer_resume(sfp_trainer_t *t, const sfp_checkpoint_t *ck, const char *path, sfp_error_t *err)
{
    json_object *st = json_tokener_parse(ck->state_json), *v = NULL;
    int rc = 0;
    if (!st || !json_object_is_type(st, json_type_object)) {
        rc = sfp_errorf(err, SFP_EBADDATA, "checkpoint %s: state is not a JSON object", sfp_q(path));
        goto done;
    }
    const char *fp = json_object_object_get_ex(st, "fingerprint", &v) ? json_object_get_string(v) : "";
    if (strcmp(fp ? fp : "", t->o.fingerprint ? t->o.fingerprint : "")) {
        rc = sfp_errorf(err, SFP_EUSAGE,
                        "--resume %s: the checkpoint was made with other options (%s); run with the same ones (%s)",
                        sfp_q(path), sfp_q(fp), sfp_q(t->o.fingerprint ? t->o.fingerprint : ""));
        goto done;
    }
    int64_t epoch = json_int(st, "epoch", -1), batch = json_int(st, "batch", -1), step = json_int(st, "step", -1);
    if (epoch < 0 || epoch > t->o.epochs || batch < 0 || batch >= t->steps_per_epoch ||
        step != epoch * t->steps_per_epoch + batch) {
        rc = sfp_errorf(err, SFP_EBADDATA,
                        "checkpoint %s: position epoch %lld batch %lld step %lld does not fit %lld epochs of %lld steps",
                        sfp_q(path), (long long)epoch, (long long)batch, (long long)step, (long long)t->o.epochs,
                        (long long)t->steps_per_epoch);
        goto done;
    }
    /* Momentum buffers by parameter name and size. */
    int n = plan_n_params(t->plan);
    bool started = json_object_object_get_ex(st, "momentum_started", &v) && json_object_get_boolean(v);
    if (started) {
        if (ck->n_buffers != n && sgd_momentum_mut(t->sgd, 0)) {
            rc = sfp_errorf(err, SFP_EUSAGE, "--resume %s: %d momentum buffers for %d parameters", sfp_q(path),
                            ck->n_buffers, n);
            goto done;
        }
        for (int i = 0; i < n && sgd_momentum_mut(t->sgd, i); i++) {
            const sfp_param_t *p = plan_param(t->plan, i);
            if (strcmp(ck->buffer_names[i], p->name) || ck->buffer_numel[i] != p->numel) {
                rc = sfp_errorf(err, SFP_EUSAGE, "--resume %s: momentum of '%s' does not match parameter '%s'",
                                sfp_q(path), sfp_q(ck->buffer_names[i]), sfp_q(p->name));
                goto done;
            }
            memcpy(sgd_momentum_mut(t->sgd, i), ck->buffers[i], (size_t)p->numel * sizeof(float));
        }
        sgd_mark_started(t->sgd);
    }
    if (ck->best_len) {
        if (!(t->best = malloc(ck->best_len))) {
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
            goto done;
        }
        memcpy(t->best, ck->best, ck->best_len);
        t->best_len = ck->best_len;
    }
    t->best_acc = json_num(st, "best_accuracy");
    t->best_epoch = json_int(st, "best_epoch", -1);
    json_object *hist = NULL;
    if (json_object_object_get_ex(st, "history", &hist) && json_object_is_type(hist, json_type_array))
        for (int64_t e = 0; e < epoch && e < (int64_t)json_object_array_length(hist); e++) {
            json_object *o = json_object_array_get_idx(hist, (size_t)e);
            sfp_epoch_stats_t *s = &t->history[e];
            s->loss = json_num(o, "loss");
            s->accuracy = json_num(o, "accuracy");
            s->val_loss = json_num(o, "val_loss");
            s->val_accuracy = json_num(o, "val_accuracy");
            s->lr = json_num(o, "lr");
            s->seconds = json_num(o, "seconds");
            s->images_per_s = json_num(o, "images_per_s");
        }
    t->epoch = epoch;
    t->first_batch = batch;
    t->step = step;
    t->resumed_mid_epoch = batch > 0;
    if (t->resumed_mid_epoch && t->h.load_state &&
        (rc = t->h.load_state(t->h.ctx, ck->extra, ck->extra_len, err)) < 0)
        sfp_error_prefix(err, "checkpoint %s", sfp_q(path));
done:
    json_object_put(st);
    return rc;
}

/* ---- progress ---- */
static void format_duration(double s, char *buf, size_t len)
{
    long v = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (v >= 3600) snprintf(buf, len, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
    else snprintf(buf, len, "%ld:%02ld", v / 60, v % 60);
}

static void progress_bar(const sfp_trainer_t *t, int64_t batch_done, double loss, double acc, double ips)
{
    char eta[32], status[160] = "";
    const int64_t total = t->o.epochs * t->steps_per_epoch, done = t->step - t->steps_at_start;
    const double elapsed = now_seconds() - t->t_start;
    format_duration(done > 0 ? elapsed / (double)done * (double)(total - t->step) : 0.0, eta, sizeof eta);
    if (t->h.status) t->h.status(t->h.ctx, status, sizeof status);
    const int width = 24, fill = (int)(width * batch_done / (t->steps_per_epoch ? t->steps_per_epoch : 1));
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s] %lld/%lld loss %.4f acc %.2f%% %.0f img/s ETA %s%s%s",
            (long long)t->epoch + 1, (long long)t->o.epochs, bar, (long long)batch_done, (long long)t->steps_per_epoch,
            loss, 100.0 * acc, ips, eta, *status ? "  " : "", status);
    fflush(stderr);
}

static void progress_epoch(const sfp_trainer_t *t, const sfp_epoch_stats_t *s)
{
    char status[160] = "", val[64] = "", eta[32];
    if (t->h.status) t->h.status(t->h.ctx, status, sizeof status);
    if (isfinite(s->val_accuracy))
        snprintf(val, sizeof val, " val_loss %.4f val_acc %.2f%%", s->val_loss, 100.0 * s->val_accuracy);
    const int64_t total = t->o.epochs * t->steps_per_epoch, done = t->step - t->steps_at_start;
    const double elapsed = now_seconds() - t->t_start;
    format_duration(done > 0 ? elapsed / (double)done * (double)(total - t->step) : 0.0, eta, sizeof eta);
    if (t->o.progress == SFP_PROGRESS_BAR) fprintf(stderr, "\r\033[K");
    fprintf(stderr, "epoch %lld/%lld loss %.4f acc %.2f%%%s lr %.4g %.1fs %.0f img/s ETA %s%s%s\n",
            (long long)t->epoch + 1, (long long)t->o.epochs, s->loss, 100.0 * s->accuracy, val, s->lr, s->seconds,
            s->images_per_s, eta, *status ? "  " : "", status);
    fflush(stderr);
}

/* ---- the loop ---- */
static int check_weights_finite(const sfp_trainer_t *t, sfp_error_t *err)
{
    for (int i = 0; i < plan_n_params(t->plan); i++) {
        const sfp_param_t *p = plan_param(t->plan, i);
        for (int64_t k = 0; k < p->numel; k++)
            if (!isfinite(p->data[k]))
                return sfp_errorf(err, SFP_ERUNTIME, "weight '%s' is not finite", sfp_q(p->name));
    }
    return 0;
}

static int interrupted(sfp_trainer_t *t, sfp_error_t *err)
{
    const char *path = t->o.checkpoint ? t->o.checkpoint : t->o.interrupt_path;
    const char *name = stop_signal == SIGTERM ? "SIGTERM" : "SIGINT";
    if (t->o.progress == SFP_PROGRESS_BAR) fprintf(stderr, "\n");
    if (!path)
        return sfp_errorf(err, SFP_EINTERRUPTED, "interrupted by %s at epoch %lld step %lld (no checkpoint written)",
                          name, (long long)t->epoch + 1, (long long)t->step);
    int rc = write_checkpoint(t, path, err);
    if (rc < 0) return rc;
    return sfp_errorf(err, SFP_EINTERRUPTED, "interrupted by %s at epoch %lld step %lld: checkpoint %s written, continue with --resume %s",
                      name, (long long)t->epoch + 1, (long long)t->step, sfp_q(path), sfp_q(path));
}

/* One epoch's remaining steps; the training loss/accuracy go to s. */
static int run_epoch(sfp_trainer_t *t, sfp_epoch_stats_t *s, sfp_error_t *err)
{
    const double t0 = now_seconds();
    double loss_sum = 0.0, last_draw = 0.0;
    int64_t correct = 0, seen = 0;
    int rc = 0;
    if (!t->resumed_mid_epoch && t->h.epoch_begin &&
        (rc = t->h.epoch_begin(t->h.ctx, t->epoch, t->step, err)) < 0)
        return rc;
    t->resumed_mid_epoch = false;
    data_iter_start_epoch_at(t->it, t->epoch, t->first_batch);
    sfp_data_batch_t b;
    while (data_iter_next(t->it, &b)) {
        const void *inputs[1] = {b.x};
        double loss = 0.0;
        int64_t hits = 0;
        const double lr = lr_at(&t->lr, t->step);
        if ((rc = plan_run(t->plan, inputs, err)) < 0) return rc;
        if ((rc = loss_softmax_xent(b.n, t->n_classes, plan_output(t->plan, 0), b.labels, t->o.label_smoothing, &loss,
                                    t->dlogits, &hits, err)) < 0)
            return rc;
        /* Not only NaN/Inf: a cross-entropy this large means logits apart by
         * more than 1e4, which no trainable network recovers from. */
        if (!isfinite(loss) || loss > TRAIN_LOSS_LIMIT)
            return sfp_errorf(err, SFP_ERUNTIME, "the loss is %g (limit %g)", loss, TRAIN_LOSS_LIMIT);
        if ((rc = plan_backward(t->plan, t->dlogits, err)) < 0) return rc;
        if ((rc = sgd_step(t->sgd, (float)lr, err)) < 0) return rc;
        if (t->h.after_step && (rc = t->h.after_step(t->h.ctx, t->step, err)) < 0) return rc;
        t->step++;
        t->first_batch = b.index + 1 < t->steps_per_epoch ? b.index + 1 : 0;
        loss_sum += loss * (double)b.n;
        correct += hits;
        seen += b.n;
        s->lr = lr;
        if (stop_signal && t->first_batch != 0) return SFP_EINTERRUPTED; /* else the epoch ends first */
        double now = now_seconds();
        if (t->o.progress == SFP_PROGRESS_BAR && (now - last_draw > 0.25 || b.index + 1 == t->steps_per_epoch)) {
            progress_bar(t, b.index + 1, loss_sum / (double)seen, (double)correct / (double)seen,
                         (double)seen / (now - t0));
            last_draw = now;
        }
    }
    t->first_batch = 0;
    s->seconds = now_seconds() - t0;
    s->loss = seen ? loss_sum / (double)seen : (double)NAN;
    s->accuracy = seen ? (double)correct / (double)seen : (double)NAN;
    s->images_per_s = s->seconds > 0 ? (double)seen / s->seconds : 0.0;
    if (t->h.epoch_end && (rc = t->h.epoch_end(t->h.ctx, t->epoch, err)) < 0) return rc;
    return check_weights_finite(t, err);
}

int trainer_run(sfp_trainer_t *t, sfp_error_t *err)
{
    saved_handlers_t saved;
    signals_catch(&saved);
    t->t_start = now_seconds();
    t->steps_at_start = t->step;
    int rc = 0;
    while (t->epoch < t->o.epochs) {
        sfp_epoch_stats_t *s = &t->history[t->epoch];
        const int64_t resumed_at = t->first_batch;
        if (resumed_at == 0) memset(s, 0, sizeof *s);
        rc = run_epoch(t, s, err);
        if (rc == SFP_EINTERRUPTED) {
            rc = interrupted(t, err);
            break;
        }
        if (rc < 0) {
            if (rc == SFP_ERUNTIME)
                sfp_error_prefix(err, "training diverged at epoch %lld step %lld (try a lower --lr)",
                                 (long long)t->epoch + 1, (long long)t->step);
            break;
        }
        s->val_accuracy = s->val_loss = NAN;
        if (t->ev) {
            sfp_eval_result_t r;
            if ((rc = evaluator_run(t->ev, &r, err)) < 0) {
                if (rc == SFP_ERUNTIME)
                    sfp_error_prefix(err, "training diverged at epoch %lld (validation)", (long long)t->epoch + 1);
                break;
            }
            s->val_accuracy = r.accuracy;
            s->val_loss = r.loss;
            if (!isfinite(t->best_acc) || r.accuracy > t->best_acc) {
                t->best_acc = r.accuracy;
                t->best_epoch = t->epoch;
                if (t->o.keep_best) {
                    free(t->best);
                    t->best = NULL;
                    t->best_len = 0;
                    if ((rc = model_encode(t->m, &t->best, &t->best_len, err)) < 0) break;
                }
            }
        }
        t->epoch++;
        if (t->o.progress != SFP_PROGRESS_QUIET) {
            t->epoch--;
            progress_epoch(t, s);
            t->epoch++;
        }
        if (t->o.checkpoint && (rc = write_checkpoint(t, t->o.checkpoint, err)) < 0) break;
        if (stop_signal) {
            rc = interrupted(t, err);
            break;
        }
    }
    signals_restore(&saved);
    return rc;
}

int64_t trainer_steps_per_epoch(const sfp_trainer_t *t)
{
    return t->steps_per_epoch;
}

int64_t trainer_epochs_done(const sfp_trainer_t *t)
{
    return t->epoch;
}

const sfp_epoch_stats_t *trainer_history(const sfp_trainer_t *t)
{
    return t->history;
}

double trainer_best_accuracy(const sfp_trainer_t *t, int64_t *epoch)
{
    if (epoch) *epoch = t->best_epoch;
    return t->best_acc;
}

const uint8_t *trainer_best_model(const sfp_trainer_t *t, size_t *len)
{
    *len = t->best_len;
    return t->best;
}
