/* Softmax cross-entropy with optional label smoothing: the loss at a
 * classifier's logits and the gradient that seeds the backward pass. One row
 * at a time in double (log-sum-exp with the row's max taken out). */
#include <math.h>

#include "train/train.h"

int loss_softmax_xent(int64_t n, int64_t k, const float *logits, const int32_t *labels, float label_smoothing,
                      double *loss, float *dlogits, int64_t *correct, sfp_error_t *err)
{
    if (n < 1 || k < 1) return sfp_errorf(err, SFP_EUSAGE, "cross-entropy of %lld rows of %lld classes", (long long)n,
                                          (long long)k);
    if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f))
        return sfp_errorf(err, SFP_EUSAGE, "label smoothing %g outside [0, 1]", (double)label_smoothing);
    const double smooth = (double)label_smoothing, off = smooth / (double)k, on = 1.0 - smooth + off;
    double total = 0.0;
    int64_t hits = 0;
    for (int64_t r = 0; r < n; r++) {
        const float *z = logits + r * k;
        const int32_t label = labels[r];
        if (label < 0 || label >= k)
            return sfp_errorf(err, SFP_EBADDATA, "label %d of row %lld is outside [0, %lld)", (int)label,
                              (long long)r, (long long)k);
        int64_t best = 0;
        for (int64_t j = 1; j < k; j++)
            if (z[j] > z[best]) best = j;
        const double top = (double)z[best];
        double sum = 0.0, sum_z = 0.0;
        for (int64_t j = 0; j < k; j++) {
            sum += exp((double)z[j] - top);
            sum_z += (double)z[j];
        }
        const double log_sum = top + log(sum);
        if (!isfinite(log_sum) || !isfinite(sum_z))
            return sfp_errorf(err, SFP_ERUNTIME, "logits of row %lld are not finite",
                              (long long)r);
        /* -sum_j t_j (z_j - log_sum) with t = off everywhere and on at the label */
        total += log_sum - (on - off) * (double)z[label] - off * sum_z;
        hits += best == label;
        if (dlogits) {
            float *d = dlogits + r * k;
            for (int64_t j = 0; j < k; j++) {
                double prob = exp((double)z[j] - log_sum), target = j == label ? on : off;
                d[j] = (float)((prob - target) / (double)n);
            }
        }
    }
    *loss = total / (double)n;
    if (correct) *correct = hits;
    return 0;
}

/* Knowledge distillation (Hinton et al. 2015): with p = softmax(z / T) of
 * the student and q = softmax(t / T) of the teacher, the loss of a row is
 * A T^2 KL(q || p) + (1 - A) CE(z, label), and its gradient by z is
 * A T (p - q) + (1 - A) (softmax(z) - target), both over n. */
int loss_distill(int64_t n, int64_t k, const float *logits, const float *teacher, const int32_t *labels,
                 const sfp_distill_t *d, float label_smoothing, double *loss, float *dlogits, int64_t *correct,
                 sfp_error_t *err)
{
    if (!(d->weight >= 0.0 && d->weight <= 1.0))
        return sfp_errorf(err, SFP_EUSAGE, "--distill-weight %g: must be in [0, 1]", d->weight);
    if (!(d->temperature > 0.0 && d->temperature <= 1000.0))
        return sfp_errorf(err, SFP_EUSAGE, "--temperature %g: must be above 0 and at most 1000", d->temperature);
    double ce = 0.0, kl = 0.0;
    int rc = loss_softmax_xent(n, k, logits, labels, label_smoothing, &ce, dlogits, correct, err);
    if (rc < 0) return rc;
    const double a = d->weight, temp = d->temperature;
    for (int64_t r = 0; r < n; r++) {
        const float *z = logits + r * k, *t = teacher + r * k;
        double zmax = (double)z[0], tmax = (double)t[0], zsum = 0.0, tsum = 0.0;
        for (int64_t j = 1; j < k; j++) {
            zmax = fmax(zmax, (double)z[j]);
            tmax = fmax(tmax, (double)t[j]);
        }
        for (int64_t j = 0; j < k; j++) {
            zsum += exp(((double)z[j] - zmax) / temp);
            tsum += exp(((double)t[j] - tmax) / temp);
        }
        if (!isfinite(tsum) || !isfinite(tmax))
            return sfp_errorf(err, SFP_ERUNTIME, "teacher logits of row %lld are not finite", (long long)r);
        const double zlog = log(zsum), tlog = log(tsum);
        for (int64_t j = 0; j < k; j++) {
            const double log_p = ((double)z[j] - zmax) / temp - zlog, log_q = ((double)t[j] - tmax) / temp - tlog;
            const double q = exp(log_q);
            if (q > 0.0) kl += q * (log_q - log_p);
            if (dlogits) {
                float *g = dlogits + r * k;
                g[j] = (float)((1.0 - a) * (double)g[j] + a * temp * (exp(log_p) - q) / (double)n);
            }
        }
    }
    *loss = a * temp * temp * kl / (double)n + (1.0 - a) * ce;
    return 0;
}
