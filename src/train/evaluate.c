/* Evaluation: top-1 accuracy and mean cross-entropy of a model on a dataset,
 * in inference mode (BatchNormalization by running statistics). The plans
 * are made once (one for full batches, one for a shorter last batch) and
 * read the weights in place, so a trainer validates after every epoch
 * without rebuilding them. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "train/train.h"
#include "util/util.h"

struct sfp_evaluator {
    sfp_model_t *m;
    const sfp_dataset_t *ds;
    sfp_data_iter_t *it;
    sfp_plan_t *plan, *tail_plan;
    int64_t batch;
    int threads;
};

void evaluator_free(sfp_evaluator_t *ev)
{
    if (!ev) return;
    plan_free(ev->tail_plan);
    plan_free(ev->plan);
    data_iter_free(ev->it);
    free(ev);
}

int evaluator_create(sfp_model_t *m, const sfp_dataset_t *ds, const sfp_data_prep_t *prep, int64_t batch, int threads,
                     sfp_evaluator_t **out, sfp_error_t *err)
{
    sfp_evaluator_t *ev = calloc(1, sizeof *ev);
    if (!ev) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    ev->m = m;
    ev->ds = ds;
    ev->threads = threads;
    ev->batch = batch < ds->n ? batch : ds->n;
    sfp_data_iter_opts_t io = {ev->batch, false, false, true, 0, {0, false}, 0, 0};
    int rc = data_iter_create(ds, prep, &io, &ev->it, err);
    if (rc == 0) rc = plan_create(m, ev->batch, 0, threads, &ev->plan, err);
    if (rc == 0 && ds->n % ev->batch) rc = plan_create(m, ds->n % ev->batch, 0, threads, &ev->tail_plan, err);
    if (rc < 0) {
        evaluator_free(ev);
        return rc;
    }
    *out = ev;
    return 0;
}

int evaluator_run(sfp_evaluator_t *ev, sfp_eval_result_t *res, sfp_error_t *err)
{
    const sfp_shape_t *ys = plan_output_shape(ev->plan, 0);
    const int64_t k = ys->dims[ys->ndim - 1];
    double loss = 0.0, t0 = sfp_now_seconds();
    int64_t correct = 0, seen = 0;
    sfp_data_batch_t b;
    data_iter_start_epoch(ev->it, 0);
    while (data_iter_next(ev->it, &b)) {
        sfp_plan_t *p = b.n == ev->batch ? ev->plan : ev->tail_plan;
        const void *inputs[1] = {b.x};
        int rc = plan_run(p, inputs, err);
        if (rc < 0) return rc;
        double batch_loss = 0.0;
        int64_t batch_correct = 0;
        /* mean over the batch, times its size: the sum of the rows' losses */
        if ((rc = loss_softmax_xent(b.n, k, plan_output(p, 0), b.labels, 0.0f, &batch_loss, NULL, &batch_correct,
                                    err)) < 0)
            return rc;
        loss += batch_loss * (double)b.n;
        correct += batch_correct;
        seen += b.n;
    }
    res->seconds = sfp_now_seconds() - t0;
    res->images = seen;
    res->correct = correct;
    res->accuracy = seen ? (double)correct / (double)seen : 0.0;
    res->loss = seen ? loss / (double)seen : 0.0;
    return 0;
}
