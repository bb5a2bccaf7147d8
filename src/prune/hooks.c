/* The pruning schedule as the trainer's hooks (train.h): each hook calls the
 * pruner; the status words name the channels chosen and the MACs before and
 * after the removal the schedule heads for. */
#include <stdio.h>

#include "prune/prune.h"

static sfp_pruner_t *pruner_of(void *ctx)
{
    return *(sfp_pruner_t **)ctx;
}

static int hook_epoch_begin(void *ctx, int64_t epoch, int64_t step, sfp_error_t *err)
{
    return pruner_epoch_begin(pruner_of(ctx), epoch, step, err);
}

static int hook_after_step(void *ctx, int64_t step, sfp_error_t *err)
{
    return pruner_after_step(pruner_of(ctx), step, err);
}

static int hook_epoch_end(void *ctx, int64_t epoch, sfp_error_t *err)
{
    return pruner_epoch_end(pruner_of(ctx), epoch, err);
}

static void hook_status(void *ctx, char *buf, size_t len)
{
    const sfp_pruner_t *p = pruner_of(ctx);
    int64_t before = 0, after = 0;
    pruner_macs(p, &before, &after);
    snprintf(buf, len, "chosen %lld ch%s, MACs %.1fM -> %.1fM", (long long)pruner_n_chosen(p),
             pruner_decays(p) ? " (decaying)" : "", (double)before / 1e6, (double)after / 1e6);
}

static int hook_save_state(void *ctx, uint8_t **out, size_t *len, sfp_error_t *err)
{
    return pruner_save_choice(pruner_of(ctx), out, len, err);
}

static int hook_load_state(void *ctx, const uint8_t *buf, size_t len, sfp_error_t *err)
{
    return pruner_load_choice(pruner_of(ctx), buf, len, err);
}

void pruner_train_hooks(sfp_pruner_t **p, sfp_train_hooks_t *out)
{
    *out = (sfp_train_hooks_t){p, hook_epoch_begin, hook_after_step, hook_epoch_end, hook_status, hook_save_state,
                               hook_load_state};
}
