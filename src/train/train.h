/* The training module beside the execution plan (plan.h): the loss at the
 * model's output, the SGD optimiser over a training plan's parameters, and
 * learning-rate schedules. The loss writes the gradient plan_backward
 * starts from; sgd_step applies and then zeroes the parameter gradients. */
#ifndef SFP_TRAIN_H
#define SFP_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "onnxsfp/error.h"
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

#endif
