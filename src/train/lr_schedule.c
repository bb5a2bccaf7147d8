/* Learning-rate schedules: constant, step (multiply by gamma at milestones)
 * and cosine annealing to a floor, each optionally under a linear warm-up
 * factor. Pure functions of the step number, so a resumed run gets the same
 * rates. */
#include <math.h>

#include "train/train.h"

static const double pi = 3.14159265358979323846;

int lr_schedule_check(const sfp_lr_schedule_t *s, sfp_error_t *err)
{
    if (!(s->base_lr >= 0.0) || !isfinite(s->base_lr))
        return sfp_errorf(err, SFP_EUSAGE, "learning rate %g must be finite and >= 0", s->base_lr);
    if (s->warmup_steps < 0) return sfp_errorf(err, SFP_EUSAGE, "negative warm-up length");
    if (s->warmup_steps > 0 && !(s->warmup_start >= 0.0 && s->warmup_start <= 1.0))
        return sfp_errorf(err, SFP_EUSAGE, "warm-up start factor %g outside [0, 1]", s->warmup_start);
    switch (s->kind) {
    case SFP_LR_CONSTANT:
        return 0;
    case SFP_LR_STEP:
        if (!(s->gamma > 0.0) || !isfinite(s->gamma))
            return sfp_errorf(err, SFP_EUSAGE, "step schedule: gamma %g must be > 0", s->gamma);
        if (s->n_milestones < 0 || s->n_milestones > SFP_LR_MAX_MILESTONES)
            return sfp_errorf(err, SFP_EUSAGE, "step schedule: %d milestones (at most %d)", s->n_milestones,
                              SFP_LR_MAX_MILESTONES);
        for (int i = 0; i < s->n_milestones; i++)
            if (s->milestones[i] < 0 || (i > 0 && s->milestones[i] <= s->milestones[i - 1]))
                return sfp_errorf(err, SFP_EUSAGE, "step schedule: milestones must increase from 0");
        return 0;
    case SFP_LR_COSINE:
        if (s->total_steps < 1)
            return sfp_errorf(err, SFP_EUSAGE, "cosine schedule: total steps %lld must be > 0",
                              (long long)s->total_steps);
        if (!(s->min_lr >= 0.0 && s->min_lr <= s->base_lr))
            return sfp_errorf(err, SFP_EUSAGE, "cosine schedule: floor %g outside [0, %g]", s->min_lr, s->base_lr);
        return 0;
    }
    return sfp_errorf(err, SFP_EUSAGE, "unknown learning-rate schedule %d", (int)s->kind);
}

double lr_at(const sfp_lr_schedule_t *s, int64_t step)
{
    if (step < 0) step = 0;
    double lr = s->base_lr;
    if (s->kind == SFP_LR_STEP) {
        for (int i = 0; i < s->n_milestones && s->milestones[i] <= step; i++) lr *= s->gamma;
    } else if (s->kind == SFP_LR_COSINE) {
        const double t = (double)(step < s->total_steps ? step : s->total_steps) / (double)s->total_steps;
        lr = s->min_lr + (s->base_lr - s->min_lr) * 0.5 * (1.0 + cos(pi * t));
    }
    if (step < s->warmup_steps)
        lr *= s->warmup_start + (1.0 - s->warmup_start) * (double)step / (double)s->warmup_steps;
    return lr;
}
