/* Per-channel mean and variance of chosen activations over a sample of a
 * dataset, in inference mode: what a BatchNormalization re-inserted after a
 * convolution (surgery's bn_insert) starts from. The sample is a fixed
 * shuffle of the whole set (the seed's), so every process of a data-
 * parallel run computes the same figures without talking to the others. */
#include <stdlib.h>
#include <string.h>

#include "train/train.h"
#include "util/util.h"

/* Floats of all targets per image, at most this many per run of the plan. */
enum { CALIB_MAX_FLOATS = 1 << 26, CALIB_MAX_BATCH = 64 };

static void free_stats(int n, double **mean, double **var)
{
    for (int i = 0; i < n; i++) {
        free(mean[i]);
        free(var[i]);
        mean[i] = var[i] = NULL;
    }
}

/* A copy of m with the targets as graph outputs (in order, after the
 * model's own): a plan keeps graph outputs and fuses nothing into them. */
static int copy_with_outputs(const sfp_model_t *m, int n, const int *values, sfp_model_t **out, int *first,
                             sfp_error_t *err)
{
    sfp_model_t *c = NULL;
    int rc = sfp_model_clone(m, &c, err);
    if (rc < 0) return rc;
    *first = c->graph.n_outputs;
    for (int i = 0; i < n && rc == 0; i++) {
        int id = graph_find_value(&c->graph, m->graph.values[values[i]].name);
        if (id < 0) rc = sfp_errorf(err, SFP_ERUNTIME, "internal: value '%s' lost in a copy", m->graph.values[values[i]].name);
        else rc = graph_add_output(&c->graph, id, err);
    }
    if (rc < 0) {
        sfp_model_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int calibrate_channel_stats(const sfp_model_t *m, const sfp_dataset_t *ds, const sfp_data_prep_t *prep,
                            int64_t max_images, uint64_t seed, int threads, int n, const int *values, double **mean,
                            double **var, sfp_error_t *err)
{
    for (int i = 0; i < n; i++) mean[i] = var[i] = NULL;
    if (n == 0) return 0;
    int64_t per_image = 0;
    for (int i = 0; i < n; i++) {
        const sfp_value_t *v = &m->graph.values[values[i]];
        if (v->ndim < 2 || v->dims[1] < 1) return sfp_errorf(err, SFP_ERUNTIME, "internal: '%s' has no channel axis", v->name);
        int64_t numel = 1;
        for (int d = 1; d < v->ndim; d++) numel *= v->dims[d];
        per_image += numel;
    }
    int64_t batch = CALIB_MAX_FLOATS / (per_image > 0 ? per_image : 1);
    batch = batch < 1 ? 1 : batch > CALIB_MAX_BATCH ? CALIB_MAX_BATCH : batch;
    if (batch > ds->n) batch = ds->n;
    const int64_t sample = max_images < ds->n ? max_images : ds->n;
    const int64_t n_batches = sample / batch > 0 ? sample / batch : 1;
    sfp_model_t *c = NULL;
    sfp_plan_t *p = NULL;
    sfp_data_iter_t *it = NULL;
    double **sum = mean, **sq = var; /* accumulated in place, turned into mean / variance at the end */
    int first = 0, rc;
    if ((rc = copy_with_outputs(m, n, values, &c, &first, err)) < 0) return rc;
    sfp_data_iter_opts_t io = {batch, true, true, false, seed, {0, false}, 0, 0};
    if ((rc = plan_create(c, batch, SFP_PLAN_CONST_WEIGHTS, threads, &p, err)) < 0 || (rc = data_iter_create(ds, prep, &io, &it, err)) < 0)
        goto out;
    for (int i = 0; i < n; i++) {
        const int64_t ch = m->graph.values[values[i]].dims[1];
        if (!(sum[i] = calloc((size_t)ch, sizeof(double))) || !(sq[i] = calloc((size_t)ch, sizeof(double)))) {
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
            goto out;
        }
    }
    data_iter_start_epoch(it, 0);
    sfp_data_batch_t b;
    int64_t done = 0;
    for (; done < n_batches && data_iter_next(it, &b); done++) {
        const void *inputs[1] = {b.x};
        if ((rc = plan_run(p, inputs, err)) < 0) goto out;
        for (int i = 0; i < n; i++) {
            const sfp_shape_t *s = plan_output_shape(p, first + i);
            const float *y = plan_output(p, first + i);
            const int64_t ch = s->dims[1];
            int64_t inner = 1;
            for (int d = 2; d < s->ndim; d++) inner *= s->dims[d];
            for (int64_t img = 0; img < s->dims[0]; img++)
                for (int64_t k = 0; k < ch; k++) {
                    const float *restrict row = y + (img * ch + k) * inner;
                    double s1 = 0.0, s2 = 0.0;
                    for (int64_t e = 0; e < inner; e++) {
                        s1 += (double)row[e];
                        s2 += (double)row[e] * (double)row[e];
                    }
                    sum[i][k] += s1;
                    sq[i][k] += s2;
                }
        }
    }
    const double count_per_channel = (double)(done * batch);
    for (int i = 0; i < n; i++) {
        const sfp_value_t *v = &m->graph.values[values[i]];
        int64_t inner = 1;
        for (int d = 2; d < v->ndim; d++) inner *= v->dims[d];
        const double count = count_per_channel * (double)inner;
        for (int64_t k = 0; k < v->dims[1]; k++) {
            const double mu = count > 0 ? sum[i][k] / count : 0.0, m2 = count > 0 ? sq[i][k] / count : 0.0;
            mean[i][k] = mu;
            var[i][k] = m2 - mu * mu > 0.0 ? m2 - mu * mu : 0.0;
        }
    }
out:
    if (rc < 0) free_stats(n, mean, var);
    data_iter_free(it);
    plan_free(p);
    sfp_model_free(c);
    return rc;
}
