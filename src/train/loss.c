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
