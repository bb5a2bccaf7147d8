/* The training loop: epochs of shuffled, augmented batches through a
 * training plan (forward, cross-entropy, backward, SGD), the caller's hooks
 * around the steps (pruning schedules), validation after each epoch, the best
 * model kept, checkpoints after each epoch and on SIGINT/SIGTERM, and a stop
 * with a clear error when the loss or the weights stop being finite.
 * Everything random comes from (seed, epoch, position), so a run resumed from
 * a checkpoint continues exactly as the uninterrupted run would have.
 * Several processes (src/dist) train one model data-parallel: each takes a
 * fixed share of every batch and the gradients are summed (train.h). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "dist/dist.h"
#include "ops/ops.h"
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
    sfp_plan_t *teacher_plan;       /* inference mode; NULL without a teacher */
    sfp_sgd_t *sgd;
    sfp_data_iter_t *it;
    sfp_evaluator_t *ev;            /* on this process's share of val; NULL when it has none */
    sfp_dataset_t *val_share;       /* owns (several processes) */
    float *dlogits;
    int64_t batch, n_classes, steps_per_epoch;
    /* data parallelism: this process's share [share_first, +share_n) of every
     * batch (the whole batch for one process) */
    int rank, world;
    int64_t share_first, share_n;
    bool stop_agreed;               /* some process was asked to stop */
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

/* ---- data parallelism ---- */
static int sum_over_processes(void *ctx, double *values, int64_t n, sfp_error_t *err)
{
    (void)ctx;
    return dist_sum_doubles(values, (size_t)n, err);
}

/* The BatchNormalization running mean and variance of m, one callback each. */
static int for_each_bn_stat(sfp_model_t *m, int (*fn)(sfp_tensor_t *t, void *ctx, sfp_error_t *err), void *ctx,
                            sfp_error_t *err)
{
    const sfp_graph_t *g = &m->graph;
    for (int i = 0; i < g->n_nodes; i++) {
        const sfp_node_t *n = &g->nodes[i];
        if (!op_is(n, SFP_OP_BATCH_NORMALIZATION) || n->n_inputs < 5) continue;
        for (int k = 3; k < 5; k++) {
            const int v = n->inputs[k];
            sfp_tensor_t *stat = v >= 0 ? g->values[v].init : NULL;
            int rc = stat && stat->dtype == SFP_DT_FLOAT ? fn(stat, ctx, err) : 0;
            if (rc < 0) return rc;
        }
    }
    return 0;
}

static int average_tensor(sfp_tensor_t *stat, void *ctx, sfp_error_t *err)
{
    const int world = *(const int *)ctx;
    const int64_t n = sfp_tensor_numel(stat);
    double *sum = malloc((size_t)(n > 0 ? n : 1) * sizeof *sum);
    float *f = stat->data;
    if (!sum) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) sum[i] = (double)f[i];
    int rc = dist_sum_doubles(sum, (size_t)n, err);
    for (int64_t i = 0; rc == 0 && i < n; i++) f[i] = (float)(sum[i] / world);
    free(sum);
    return rc;
}

static int broadcast_tensor(sfp_tensor_t *stat, void *ctx, sfp_error_t *err)
{
    (void)ctx;
    return dist_broadcast(stat->data, (size_t)sfp_tensor_numel(stat) * sizeof(float), 0, err);
}

/* End of an epoch with several processes: (local BN) running statistics
 * averaged, then process 0's weights, running statistics and momentum
 * copied to all, so replicas are bit-identical before the pruning hooks and
 * validation look at them, whatever order the sums were added in. */
static int synchronise_replicas(sfp_trainer_t *t, sfp_error_t *err)
{
    int rc = 0;
    if (t->o.local_bn && (rc = for_each_bn_stat(t->m, average_tensor, &t->world, err)) < 0) return rc;
    if ((rc = for_each_bn_stat(t->m, broadcast_tensor, NULL, err)) < 0) return rc;
    for (int i = 0; i < plan_n_params(t->plan); i++) {
        const sfp_param_t *p = plan_param(t->plan, i);
        float *mom = sgd_momentum_mut(t->sgd, i);
        if ((rc = dist_broadcast(p->data, (size_t)p->numel * sizeof(float), 0, err)) < 0) return rc;
        if (mom && sgd_started(t->sgd) && (rc = dist_broadcast(mom, (size_t)p->numel * sizeof(float), 0, err)) < 0)
            return rc;
    }
    return 0;
}

/* Whether any process was asked to stop (SIGINT/SIGTERM), agreed by all. */
static int agree_stop(sfp_trainer_t *t, sfp_error_t *err)
{
    double flag = stop_signal ? 1.0 : 0.0;
    int rc = dist_sum_doubles(&flag, 1, err);
    if (rc == 0) t->stop_agreed = t->stop_agreed || flag > 0.0;
    return rc;
}

/* ---- creation ---- */
void trainer_free(sfp_trainer_t *t)
{
    if (!t) return;
    evaluator_free(t->ev);
    data_free(t->val_share);
    data_iter_free(t->it);
    sgd_free(t->sgd);
    plan_free(t->plan);
    plan_free(t->teacher_plan);
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
    t->rank = dist_rank();
    t->world = dist_size();
    int rc = 0;
    if (t->batch < t->world) {
        rc = sfp_errorf(err, SFP_EUSAGE, "a batch of %lld cannot be shared by %d processes (--batch below the process count)",
                        (long long)t->batch, t->world);
        goto fail;
    }
    t->share_first = t->batch * t->rank / t->world;
    t->share_n = t->batch * (t->rank + 1) / t->world - t->share_first;
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
    sfp_data_iter_opts_t io = {t->batch, true, true, true, opts->seed, opts->augment, t->share_first, t->share_n};
    if ((rc = data_iter_create(train, prep, &io, &t->it, err)) < 0) goto fail;
    if ((rc = plan_create(m, t->share_n, SFP_PLAN_TRAIN, opts->threads, &t->plan, err)) < 0) goto fail;
    if (t->world > 1 && !opts->local_bn) {
        const sfp_batch_share_t share = {t->batch, sum_over_processes, NULL};
        plan_share_batch(t->plan, &share);
    }
    if (opts->teacher && (rc = plan_create(opts->teacher, t->share_n, SFP_PLAN_CONST_WEIGHTS, opts->threads, &t->teacher_plan, err)) < 0) {
        sfp_error_prefix(err, "teacher");
        goto fail;
    }
    if ((rc = sgd_create(t->plan, &opts->sgd, &t->sgd, err)) < 0) goto fail;
    const sfp_shape_t *ys = plan_output_shape(t->plan, 0);
    if (ys->ndim != 2 || ys->dims[0] != t->share_n) {
        rc = sfp_errorf(err, SFP_EUNSUPPORTED, "training needs [N, classes] logits as the model's first output");
        goto fail;
    }
    t->n_classes = ys->dims[1];
    if (t->teacher_plan) {
        const sfp_shape_t *ts = plan_output_shape(t->teacher_plan, 0);
        if (ts->ndim != 2 || ts->dims[0] != t->share_n || ts->dims[1] != t->n_classes) {
            rc = sfp_errorf(err, SFP_EUNSUPPORTED, "teacher: its first output must be [N, %lld] logits like the student's",
                            (long long)t->n_classes);
            goto fail;
        }
    }
    t->dlogits = malloc((size_t)(t->share_n * t->n_classes) * sizeof(float));
    if (!t->dlogits) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto fail;
    }
    if (val && t->world > 1) { /* validation split over the processes, results summed */
        const int64_t first = val->n * t->rank / t->world, n = val->n * (t->rank + 1) / t->world - first;
        if (n > 0 && (rc = data_range(val, first, n, &t->val_share, err)) < 0) goto fail;
        val = t->val_share;
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

/* Process 0's (the others' replicas are the same). */
static int write_checkpoint(sfp_trainer_t *t, const char *path, sfp_error_t *err)
{
    if (t->rank != 0) return 0;
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
    if ((rc = sfp_model_encode(t->m, &ck.model, &ck.model_len, err)) < 0) goto done;
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
static double eta_seconds(const sfp_trainer_t *t)
{
    const int64_t total = t->o.epochs * t->steps_per_epoch, done = t->step - t->steps_at_start;
    const double elapsed = sfp_now_seconds() - t->t_start;
    return done > 0 ? elapsed / (double)done * (double)(total - t->step) : 0.0;
}

static void progress_send(const sfp_trainer_t *t, sfp_progress_t *p)
{
    char status[160] = "";
    if (!t->o.progress) return;
    if (t->h.status) t->h.status(t->h.ctx, status, sizeof status);
    p->epoch = t->epoch;
    p->epochs = t->o.epochs;
    p->steps_per_epoch = t->steps_per_epoch;
    p->eta_seconds = eta_seconds(t);
    p->processes = t->world;
    p->status = status;
    t->o.progress(t->o.progress_ctx, p);
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
    sfp_progress_t stop = {.kind = SFP_PROGRESS_STOP};
    progress_send(t, &stop);
    if (!path)
        return sfp_errorf(err, SFP_EINTERRUPTED, "interrupted by %s at epoch %lld step %lld (no checkpoint written)",
                          name, (long long)t->epoch + 1, (long long)t->step);
    int rc = write_checkpoint(t, path, err);
    if (rc < 0) return rc;
    return sfp_errorf(err, SFP_EINTERRUPTED, "interrupted by %s at epoch %lld step %lld: checkpoint %s written, continue with --resume %s",
                      name, (long long)t->epoch + 1, (long long)t->step, sfp_q(path), sfp_q(path));
}

/* Several processes: the step's loss and hits summed over them (so every
 * process takes the same divergence decision), the stop requests agreed,
 * and dlogits scaled by share / batch so that the gradients summed over
 * the processes are those of the mean loss over the whole batch. A failed
 * loss (non-finite logits) on one process makes the global loss NaN. */
static int reduce_step(sfp_trainer_t *t, int loss_rc, double *loss, int64_t *hits, sfp_error_t *err)
{
    double v[4] = {loss_rc < 0 ? (double)NAN : *loss * (double)t->share_n, (double)*hits, stop_signal ? 1.0 : 0.0,
                   loss_rc < 0 ? 1.0 : 0.0};
    int rc = dist_sum_doubles(v, 4, err);
    if (rc < 0) return rc;
    if (loss_rc < 0) return loss_rc;
    if (v[3] > 0.0) return sfp_errorf(err, SFP_ERUNTIME, "the loss is not finite on another process");
    *loss = v[0] / (double)t->batch;
    *hits = (int64_t)llround(v[1]);
    t->stop_agreed = t->stop_agreed || v[2] > 0.0;
    const float scale = (float)t->share_n / (float)t->batch;
    for (int64_t i = 0; i < t->share_n * t->n_classes; i++) t->dlogits[i] *= scale;
    return 0;
}

/* One epoch's remaining steps; the training loss/accuracy go to s. */
static int run_epoch(sfp_trainer_t *t, sfp_epoch_stats_t *s, sfp_error_t *err)
{
    const double t0 = sfp_now_seconds(), comm0 = dist_comm_seconds();
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
        if (t->teacher_plan) {
            if ((rc = plan_run(t->teacher_plan, inputs, err)) < 0) return rc;
            rc = loss_distill(b.n, t->n_classes, plan_output(t->plan, 0), plan_output(t->teacher_plan, 0), b.labels,
                              &t->o.distill, t->o.label_smoothing, &loss, t->dlogits, &hits, err);
        } else {
            rc = loss_softmax_xent(b.n, t->n_classes, plan_output(t->plan, 0), b.labels, t->o.label_smoothing, &loss,
                                   t->dlogits, &hits, err);
        }
        if (t->world > 1) rc = reduce_step(t, rc, &loss, &hits, err);
        if (rc < 0) return rc;
        /* Not only NaN/Inf: a cross-entropy this large means logits apart by
         * more than 1e4, which no trainable network recovers from. */
        if (!isfinite(loss) || loss > TRAIN_LOSS_LIMIT)
            return sfp_errorf(err, SFP_ERUNTIME, "the loss is %g (limit %g)", loss, TRAIN_LOSS_LIMIT);
        if ((rc = plan_backward(t->plan, t->dlogits, err)) < 0) return rc;
        if (t->world > 1) { /* one flat sum of every parameter gradient */
            size_t n_grad = 0;
            float *grad = plan_grad_block(t->plan, &n_grad);
            if ((rc = dist_sum_floats(grad, n_grad, err)) < 0) return rc;
        }
        if ((rc = sgd_step(t->sgd, (float)lr, err)) < 0) return rc;
        if (t->h.after_step && (rc = t->h.after_step(t->h.ctx, t->step, err)) < 0) return rc;
        t->step++;
        t->first_batch = b.index + 1 < t->steps_per_epoch ? b.index + 1 : 0;
        const int64_t images = t->world > 1 ? t->batch : b.n;
        loss_sum += loss * (double)images;
        correct += hits;
        seen += images;
        s->lr = lr;
        const bool stop = t->world > 1 ? t->stop_agreed : stop_signal != 0;
        if (stop && t->first_batch != 0) return SFP_EINTERRUPTED; /* else the epoch ends first */
        double now = sfp_now_seconds();
        if (t->o.progress && (now - last_draw > 0.25 || b.index + 1 == t->steps_per_epoch)) {
            sfp_progress_t p = {.kind = SFP_PROGRESS_STEP, .steps_done = b.index + 1,
                                .loss = loss_sum / (double)seen, .accuracy = (double)correct / (double)seen,
                                .images_per_s = (double)seen / (now - t0)};
            progress_send(t, &p);
            last_draw = now;
        }
    }
    t->first_batch = 0;
    s->seconds = sfp_now_seconds() - t0;
    s->loss = seen ? loss_sum / (double)seen : (double)NAN;
    s->accuracy = seen ? (double)correct / (double)seen : (double)NAN;
    s->images_per_s = s->seconds > 0 ? (double)seen / s->seconds : 0.0;
    if (t->world > 1 && (rc = synchronise_replicas(t, err)) < 0) return rc;
    s->comm_seconds = dist_comm_seconds() - comm0;
    if (t->h.epoch_end && (rc = t->h.epoch_end(t->h.ctx, t->epoch, err)) < 0) return rc;
    return check_weights_finite(t, err);
}

/* Validation on this process's share, summed over the processes. */
static int validate(sfp_trainer_t *t, sfp_eval_result_t *r, sfp_error_t *err)
{
    int rc = 0;
    memset(r, 0, sizeof *r);
    if (t->ev) rc = evaluator_run(t->ev, r, err);
    if (t->world == 1) return rc;
    double v[4] = {(double)r->correct, r->loss * (double)r->images, (double)r->images, rc < 0 ? 1.0 : 0.0};
    int sum_rc = dist_sum_doubles(v, 4, err);
    if (rc < 0 || sum_rc < 0) return rc < 0 ? rc : sum_rc;
    if (v[3] > 0.0) return sfp_errorf(err, SFP_ERUNTIME, "validation failed on another process");
    r->correct = (int64_t)llround(v[0]);
    r->images = (int64_t)llround(v[2]);
    r->accuracy = r->images ? v[0] / v[2] : 0.0;
    r->loss = r->images ? v[1] / v[2] : 0.0;
    return 0;
}

int trainer_run(sfp_trainer_t *t, sfp_error_t *err)
{
    saved_handlers_t saved;
    signals_catch(&saved);
    t->t_start = sfp_now_seconds();
    t->steps_at_start = t->step;
    int rc = 0;
    bool agreed = false; /* the processes already agreed on rc */
    while (t->epoch < t->o.epochs) {
        sfp_epoch_stats_t *s = &t->history[t->epoch];
        int local_rc = 0; /* what only process 0 does (keeping the best model, checkpoints) */
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
        if (t->ev || (t->val && t->world > 1)) {
            sfp_eval_result_t r;
            if ((rc = validate(t, &r, err)) < 0) {
                if (rc == SFP_ERUNTIME)
                    sfp_error_prefix(err, "training diverged at epoch %lld (validation)", (long long)t->epoch + 1);
                break;
            }
            s->val_accuracy = r.accuracy;
            s->val_loss = r.loss;
            if (!isfinite(t->best_acc) || r.accuracy > t->best_acc) {
                t->best_acc = r.accuracy;
                t->best_epoch = t->epoch;
                if (t->o.keep_best && t->rank == 0) {
                    free(t->best);
                    t->best = NULL;
                    t->best_len = 0;
                    local_rc = sfp_model_encode(t->m, &t->best, &t->best_len, err);
                }
            }
        }
        t->epoch++;
        if (t->o.progress) {
            sfp_progress_t p = {.kind = SFP_PROGRESS_EPOCH, .steps_done = t->steps_per_epoch, .stats = s};
            t->epoch--;
            progress_send(t, &p);
            t->epoch++;
        }
        if (local_rc == 0 && t->o.checkpoint) local_rc = write_checkpoint(t, t->o.checkpoint, err);
        if ((rc = dist_agree(local_rc, err)) < 0) {
            agreed = true;
            break;
        }
        if (t->world > 1 && (rc = agree_stop(t, err)) < 0) break;
        if (t->world > 1 ? t->stop_agreed : stop_signal != 0) {
            rc = interrupted(t, err);
            break;
        }
    }
    /* Every other way out of the loop is taken by all processes alike;
     * process 0's interruption checkpoint is agreed here. */
    if (!agreed) rc = dist_agree(rc, err);
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
