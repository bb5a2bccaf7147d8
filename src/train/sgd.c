/* SGD with momentum, Nesterov and decoupled-by-kind weight decay, written to
 * give PyTorch's torch.optim.SGD (dampening 0) update step for step. The
 * momentum buffers are one allocation, one slice per parameter. */
#include <stdlib.h>
#include <string.h>

#include "train/train.h"
#include "util/util.h"

struct sfp_sgd {
    sfp_plan_t *plan;
    sfp_sgd_opts_t opts;
    float *buffers;         /* momentum, sum of the parameters' sizes (NULL without momentum) */
    size_t *offset;         /* per parameter, into buffers */
    bool started;           /* the buffers hold a momentum */
};

int sgd_create(sfp_plan_t *plan, const sfp_sgd_opts_t *opts, sfp_sgd_t **out, sfp_error_t *err)
{
    if (!(opts->momentum >= 0.0f) || !(opts->weight_decay >= 0.0f) || !(opts->wd_bn_bias >= 0.0f))
        return sfp_errorf(err, SFP_EUSAGE, "SGD: momentum and weight decay must be >= 0");
    if (opts->nesterov && opts->momentum <= 0.0f)
        return sfp_errorf(err, SFP_EUSAGE, "SGD: Nesterov momentum needs momentum > 0");
    if (plan_n_params(plan) == 0)
        return sfp_errorf(err, SFP_EUSAGE, "SGD: the plan has no trainable parameters (made without SFP_PLAN_TRAIN?)");
    sfp_sgd_t *s = calloc(1, sizeof *s);
    if (!s) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    s->plan = plan;
    s->opts = *opts;
    const int n = plan_n_params(plan);
    s->offset = calloc((size_t)n + 1, sizeof *s->offset);
    if (!s->offset) {
        sgd_free(s);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        s->offset[i] = total;
        size_t numel = (size_t)plan_param(plan, i)->numel;
        if (total > SIZE_MAX / sizeof(float) - numel) {
            sgd_free(s);
            return sfp_errorf(err, SFP_ENOMEM, "SGD: the momentum buffers do not fit in memory");
        }
        total += numel;
    }
    if (opts->momentum > 0.0f) {
        size_t bytes = 0;
        if (!sfp_mul_size(total ? total : 1, sizeof(float), &bytes) || !(s->buffers = malloc(bytes))) {
            sgd_free(s);
            return sfp_errorf(err, SFP_ENOMEM, "out of memory for %zu momentum values", total);
        }
    }
    *out = s;
    return 0;
}

void sgd_free(sfp_sgd_t *s)
{
    if (!s) return;
    free(s->buffers);
    free(s->offset);
    free(s);
}

void sgd_reset(sfp_sgd_t *s)
{
    s->started = false;
}

const float *sgd_momentum(const sfp_sgd_t *s, int i)
{
    if (!s->buffers || !s->started || i < 0 || i >= plan_n_params(s->plan)) return NULL;
    return s->buffers + s->offset[i];
}

float *sgd_momentum_mut(sfp_sgd_t *s, int i)
{
    if (!s->buffers || i < 0 || i >= plan_n_params(s->plan)) return NULL;
    return s->buffers + s->offset[i];
}

void sgd_mark_started(sfp_sgd_t *s)
{
    s->started = s->buffers != NULL;
}

bool sgd_started(const sfp_sgd_t *s)
{
    return s->started;
}

/* w, g, buf (n): one parameter's update; buf NULL without momentum. */
static void sgd_update(int64_t n, float *restrict w, const float *restrict grad, float *restrict buf, float lr,
                       float momentum, float wd, bool nesterov, bool first)
{
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] + wd * w[i];
        if (buf) {
            buf[i] = first ? g : momentum * buf[i] + g;
            g = nesterov ? g + momentum * buf[i] : buf[i];
        }
        w[i] -= lr * g;
    }
}

int sgd_step(sfp_sgd_t *s, float lr, sfp_error_t *err)
{
    if (!(lr >= 0.0f)) return sfp_errorf(err, SFP_EUSAGE, "SGD: learning rate %g", (double)lr);
    const int n = plan_n_params(s->plan);
    for (int i = 0; i < n; i++) {
        const sfp_param_t *prm = plan_param(s->plan, i);
        float wd = prm->kind == SFP_PARAM_WEIGHT ? s->opts.weight_decay : s->opts.wd_bn_bias;
        sgd_update(prm->numel, prm->data, prm->grad, s->buffers ? s->buffers + s->offset[i] : NULL, lr,
                   s->opts.momentum, wd, s->opts.nesterov, !s->started);
    }
    s->started = s->buffers != NULL;
    plan_zero_grad(s->plan);
    return 0;
}
