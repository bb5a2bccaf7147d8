/* The training module beside the execution plan (plan.h): the loss at the
 * model's output, the SGD optimiser over a training plan's parameters, and
 * learning-rate schedules. The loss writes the gradient plan_backward
 * starts from; sgd_step applies and then zeroes the parameter gradients. */
#ifndef SFP_TRAIN_H
#define SFP_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "onnxsfp/error.h"
#include "data/data.h"
#include "train/plan.h"

/* ---- loss (loss.c) ---- */
/* Softmax cross-entropy of logits (n, k) against labels in [0, k), as
 * PyTorch's CrossEntropyLoss(label_smoothing=s): the target of a row is
 * (1 - s) one-hot + s / k, the loss is the mean over rows of
 * -sum_j target_j log softmax(logits)_j (log-sum-exp with the max taken out,
 * in double). Writes *loss, dlogits (n, k) = (softmax - target) / n (NULL: not
 * wanted; written, not accumulated: it seeds plan_backward) and *correct (may
 * be NULL) = rows whose largest logit is at the label (first one on ties). A
 * label outside [0, k) is SFP_EBADDATA naming the row; s outside [0, 1] and
 * non-finite logits are SFP_ERUNTIME (training diverged). */
int loss_softmax_xent(int64_t n, int64_t k, const float *logits, const int32_t *labels, float label_smoothing,
                      double *loss, float *dlogits, int64_t *correct, sfp_error_t *err);

/* Distillation from a teacher's logits (loss_distill, the trainer's teacher). */
typedef struct sfp_distill {
    double weight;       /* A in [0, 1]: the share of the distillation term */
    double temperature;  /* T > 0 */
} sfp_distill_t;

/* A T^2 KL(softmax(teacher / T) || softmax(logits / T)) + (1 - A) times
 * loss_softmax_xent's loss, each the mean over the n rows (PyTorch:
 * A * T**2 * kl_div(log_softmax(z / T), log_softmax(t / T), log_target=True,
 * reduction="batchmean") + (1 - A) * cross_entropy). dlogits as
 * loss_softmax_xent (written, divided by n); *correct counts the student's
 * hits. A or T out of range is SFP_EUSAGE; non-finite teacher logits are
 * SFP_ERUNTIME. */
int loss_distill(int64_t n, int64_t k, const float *logits, const float *teacher, const int32_t *labels,
                 const sfp_distill_t *d, float label_smoothing, double *loss, float *dlogits, int64_t *correct,
                 sfp_error_t *err);

/* ---- SGD (sgd.c) ---- */
typedef struct sfp_sgd_opts {
    float momentum;         /* 0: plain SGD, no buffers */
    bool nesterov;          /* needs momentum > 0 */
    float weight_decay;     /* L2 on weights (SFP_PARAM_WEIGHT) */
    float wd_bn_bias;       /* L2 on biases and normalisation scale/bias */
} sfp_sgd_opts_t;

/* Owns the momentum buffers (one per parameter of the plan, one
 * allocation); borrows the plan, which must outlive it. */
typedef struct sfp_sgd sfp_sgd_t;

int sgd_create(sfp_plan_t *plan, const sfp_sgd_opts_t *opts, sfp_sgd_t **out, sfp_error_t *err);
void sgd_free(sfp_sgd_t *s);
/* PyTorch's torch.optim.SGD update of every parameter (dampening 0), then
 * the gradients are zeroed:
 *   g = grad + wd * w;  buf = momentum * buf + g  (first step: buf = g);
 *   g = nesterov ? g + momentum * buf : buf;  w -= lr * g.
 * Allocates nothing. */
int sgd_step(sfp_sgd_t *s, float lr, sfp_error_t *err);
/* Forgets the momentum: the next step starts the buffers afresh. */
void sgd_reset(sfp_sgd_t *s);
/* Momentum buffer of parameter i (plan_param order), NULL before the first
 * step or without momentum. */
const float *sgd_momentum(const sfp_sgd_t *s, int i);
/* For restoring a checkpoint: parameter i's momentum buffer to write into
 * (NULL without momentum), then sgd_mark_started once all are written. */
float *sgd_momentum_mut(sfp_sgd_t *s, int i);
void sgd_mark_started(sfp_sgd_t *s);
bool sgd_started(const sfp_sgd_t *s);

/* ---- learning-rate schedules (lr_schedule.c) ---- */
typedef enum sfp_lr_kind {
    SFP_LR_CONSTANT = 0,    /* base_lr */
    SFP_LR_STEP,            /* base_lr * gamma^(milestones passed: milestone <= step) */
    SFP_LR_COSINE           /* min_lr + (base_lr - min_lr) (1 + cos(pi min(step, total) / total)) / 2 */
} sfp_lr_kind_t;

#define SFP_LR_MAX_MILESTONES 16

/* Steps are whatever unit the caller counts (iterations or epochs), from 0.
 * A linear warm-up multiplies the schedule by a factor rising from
 * warmup_start (at step 0) to 1 (at warmup_steps and after). */
typedef struct sfp_lr_schedule {
    sfp_lr_kind_t kind;
    double base_lr;
    double gamma;                       /* step */
    int n_milestones;                   /* step: increasing */
    int64_t milestones[SFP_LR_MAX_MILESTONES];
    int64_t total_steps;                /* cosine: > 0 */
    double min_lr;                      /* cosine */
    int64_t warmup_steps;               /* 0: none */
    double warmup_start;                /* factor at step 0, in [0, 1] */
} sfp_lr_schedule_t;

/* SFP_EUSAGE naming the field when the schedule cannot be used. */
int lr_schedule_check(const sfp_lr_schedule_t *s, sfp_error_t *err);
/* Learning rate for step (>= 0) of a checked schedule. */
double lr_at(const sfp_lr_schedule_t *s, int64_t step);

/* ---- checkpoints (checkpoint.c) ---- */
/* A checkpoint file: magic "SFPCKPT1", then length-prefixed blocks (state
 * JSON, model ONNX, best model ONNX or empty, schedule state), the momentum
 * buffers by parameter name, and a CRC-32 of everything before it. All owned. */
typedef struct sfp_checkpoint {
    char *state_json;
    uint8_t *model;
    size_t model_len;
    uint8_t *best;
    size_t best_len;
    uint8_t *extra;
    size_t extra_len;
    int n_buffers;
    char **buffer_names;
    float **buffers;
    int64_t *buffer_numel;
} sfp_checkpoint_t;

/* Atomic. */
int checkpoint_write(const char *path, const sfp_checkpoint_t *ck, sfp_error_t *err);
/* A damaged or foreign file is SFP_EBADDATA naming it; on error ck is empty. */
int checkpoint_read(const char *path, sfp_checkpoint_t *ck, sfp_error_t *err);
void checkpoint_clear(sfp_checkpoint_t *ck);

/* ---- evaluation (evaluate.c) ---- */
typedef struct sfp_eval_result {
    double accuracy;        /* top-1, fraction */
    double loss;            /* mean cross-entropy */
    int64_t images;
    int64_t correct;
    double seconds;
} sfp_eval_result_t;

/* Inference-mode plans over a model for a dataset, made once and run as
 * often as wanted (the model's weights are read in place, so a trainer can
 * validate after each epoch). Borrows m, ds and prep. */
typedef struct sfp_evaluator sfp_evaluator_t;
int evaluator_create(sfp_model_t *m, const sfp_dataset_t *ds, const sfp_data_prep_t *prep, int64_t batch, int threads,
                     sfp_evaluator_t **out, sfp_error_t *err);
int evaluator_run(sfp_evaluator_t *ev, sfp_eval_result_t *res, sfp_error_t *err);
void evaluator_free(sfp_evaluator_t *ev);

/* ---- activation statistics (calibrate.c) ---- */
/* Mean and biased variance per channel (axis 1) of each of m's values
 * values[0..n) over up to max_images images of ds (a shuffle by seed;
 * whole batches; inference mode, prep without augmentation). mean[i] and
 * var[i] are malloc'd arrays of the value's channel count (the caller frees
 * them); on error all are NULL. The values' shapes must be inferred. */
int calibrate_channel_stats(const sfp_model_t *m, const sfp_dataset_t *ds, const sfp_data_prep_t *prep,
                            int64_t max_images, uint64_t seed, int threads, int n, const int *values, double **mean,
                            double **var, sfp_error_t *err);

/* ---- the training loop (trainer.c) ---- */
/* What a caller (compress's pruning schedule) does around the SGD steps.
 * Every member may be NULL. Steps count from 0 over the whole run. */
typedef struct sfp_train_hooks {
    void *ctx;
    /* before the first step of an epoch (not called for a resumed half epoch) */
    int (*epoch_begin)(void *ctx, int64_t epoch, int64_t step, sfp_error_t *err);
    /* after each SGD step */
    int (*after_step)(void *ctx, int64_t step, sfp_error_t *err);
    /* after the last step of an epoch, before validation */
    int (*epoch_end)(void *ctx, int64_t epoch, sfp_error_t *err);
    /* a few words for the progress line (e.g. "pruned 120 ch, MACs -48%") */
    void (*status)(void *ctx, char *buf, size_t len);
    /* state that cannot be re-derived from the weights mid-epoch, for checkpoints */
    int (*save_state)(void *ctx, uint8_t **out, size_t *len, sfp_error_t *err);
    int (*load_state)(void *ctx, const uint8_t *buf, size_t len, sfp_error_t *err);
} sfp_train_hooks_t;

typedef struct sfp_progress sfp_progress_t; /* below */
typedef void (*sfp_progress_fn)(void *ctx, const sfp_progress_t *p);

typedef struct sfp_train_opts {
    int64_t epochs;              /* >= 1 */
    int64_t batch;               /* >= 1; the last partial batch of an epoch is dropped */
    sfp_lr_schedule_t lr;        /* milestones, total and warm-up counted in EPOCHS here; the
                                    trainer applies it per step (fractional epochs) */
    sfp_sgd_opts_t sgd;
    float label_smoothing;
    uint64_t seed;               /* shuffling and augmentation */
    int threads;
    sfp_data_augment_t augment;
    const char *checkpoint;      /* written after every epoch and on interruption (NULL: none) */
    const char *interrupt_path;  /* where an interruption writes when checkpoint is NULL (NULL: nowhere) */
    bool keep_best;              /* keep the best-validation model (trainer_best_model) */
    /* Called as training goes (NULL: silent); the trainer never prints. */
    sfp_progress_fn progress;
    void *progress_ctx;
    const char *fingerprint;     /* the run's options as text; a resume must match it */
    /* Data parallelism (more than one process, src/dist): false: every
     * BatchNormalization normalises by the whole global batch (statistics
     * summed over the processes), so training equals the one-process run;
     * true: by each process's share alone, running statistics averaged
     * over the processes at the end of every epoch. */
    bool local_bn;
    /* Distillation (NULL: none): the teacher, borrowed, runs in inference
     * mode on each step's batch (each process on its share, after the same
     * augmentation) with a plan of its own, and the loss is loss_distill's.
     * It must take the student's input and give logits of the same shape. */
    sfp_model_t *teacher;
    sfp_distill_t distill;
} sfp_train_opts_t;

typedef struct sfp_epoch_stats {
    double loss, accuracy;       /* training, over the epoch's batches */
    double val_loss, val_accuracy; /* NaN without validation data */
    double lr;                   /* at the epoch's last step */
    double seconds, images_per_s;
    double comm_seconds;         /* of seconds, spent in collectives (0 for one process) */
} sfp_epoch_stats_t;

/* What the training loop tells its caller as it goes; the caller chooses
 * how (and whether) to show it. Borrowed for the call only. */
typedef enum sfp_progress_kind {
    SFP_PROGRESS_STEP = 0,  /* within an epoch, at most every 0.25 s and at its last step */
    SFP_PROGRESS_EPOCH,     /* an epoch ended (training and validation figures in stats) */
    SFP_PROGRESS_STOP       /* interrupted (a signal): whatever was drawn ends here */
} sfp_progress_kind_t;

struct sfp_progress {
    sfp_progress_kind_t kind;
    int64_t epoch, epochs;          /* epoch 0-based */
    int64_t steps_done, steps_per_epoch; /* in the current epoch */
    double loss, accuracy;          /* STEP: running over the epoch so far */
    double images_per_s;            /* STEP: so far in the epoch */
    double eta_seconds;             /* to the end of the run */
    int processes;                  /* data-parallel processes (1: one) */
    const sfp_epoch_stats_t *stats; /* EPOCH only */
    const char *status;             /* the hooks' status words, "" when none */
};

typedef struct sfp_trainer sfp_trainer_t;

/* Borrows m (trained in place), the datasets (val may be NULL), prep and
 * hooks (may be NULL); copies opts.
 * Run by every process of a data-parallel job (dist_size() > 1), each with
 * the same model, data and options: opts->batch is the global batch; each
 * process trains on its fixed share of every shuffled batch (positions
 * [r B / P, (r + 1) B / P)), the parameter gradients are summed over the
 * processes before every SGD step, the loss and accuracy are global, and
 * at every epoch end the weights, BN statistics and momentum of process 0
 * are broadcast (replicas stay bit-identical whatever the reduction
 * order). Validation is split over the processes and summed. Only process
 * 0 writes checkpoints and prints progress. */
int trainer_create(sfp_model_t *m, const sfp_dataset_t *train, const sfp_dataset_t *val, const sfp_data_prep_t *prep,
                   const sfp_train_opts_t *opts, const sfp_train_hooks_t *hooks, sfp_trainer_t **out, sfp_error_t *err);
/* Continues from a checkpoint whose model m was decoded from (ck->model):
 * restores the epoch, step, momentum, best model, history and hook state.
 * A checkpoint of another run (fingerprint, parameters) is SFP_EUSAGE. */
int trainer_resume(sfp_trainer_t *t, const sfp_checkpoint_t *ck, const char *path, sfp_error_t *err);
/* Trains to the last epoch. SIGINT/SIGTERM stop it after the current step:
 * a checkpoint is written (opts.checkpoint or opts.interrupt_path) and
 * SFP_EINTERRUPTED returned naming it. Divergence (non-finite loss or
 * weights) is SFP_ERUNTIME naming the epoch and step. */
int trainer_run(sfp_trainer_t *t, sfp_error_t *err);
void trainer_free(sfp_trainer_t *t);

int64_t trainer_steps_per_epoch(const sfp_trainer_t *t);
/* Epochs finished (including those before a resume) and their statistics. */
int64_t trainer_epochs_done(const sfp_trainer_t *t);
const sfp_epoch_stats_t *trainer_history(const sfp_trainer_t *t);
/* Best validation accuracy so far (NaN: none) and its epoch (0-based, -1). */
double trainer_best_accuracy(const sfp_trainer_t *t, int64_t *epoch);
/* The best-validation model's ONNX bytes (keep_best), NULL when none. */
const uint8_t *trainer_best_model(const sfp_trainer_t *t, size_t *len);

#endif
