/* Test helper: loss_distill on numbers from stdin, for the PyTorch
 * comparison in tests/check_distill.py. Input (text): n k A T, then n*k
 * student logits, n*k teacher logits, n labels. Output: the loss, then the
 * n*k gradient entries, one per line (%.9g). */
#include <stdio.h>
#include <stdlib.h>

#include "train/train.h"

int main(void)
{
    long long n = 0, k = 0;
    sfp_distill_t d = {0.0, 1.0};
    if (scanf("%lld %lld %lf %lf", &n, &k, &d.weight, &d.temperature) != 4 || n < 1 || k < 1 || n * k > 1 << 20) {
        fprintf(stderr, "sfp-distill-loss: want n k A T, then the logits and labels\n");
        return 2;
    }
    float *z = malloc(sizeof(float) * (size_t)(n * k)), *t = malloc(sizeof(float) * (size_t)(n * k));
    float *g = malloc(sizeof(float) * (size_t)(n * k));
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)n);
    if (!z || !t || !g || !labels) return 1;
    for (long long i = 0; i < n * k; i++)
        if (scanf("%f", &z[i]) != 1) return 2;
    for (long long i = 0; i < n * k; i++)
        if (scanf("%f", &t[i]) != 1) return 2;
    for (long long i = 0; i < n; i++)
        if (scanf("%d", &labels[i]) != 1) return 2;
    sfp_error_t err = {0};
    double loss = 0.0;
    if (loss_distill(n, k, z, t, labels, &d, 0.0f, &loss, g, NULL, &err) < 0) {
        fprintf(stderr, "sfp-distill-loss: %s\n", err.msg);
        return 1;
    }
    printf("%.12g\n", loss);
    for (long long i = 0; i < n * k; i++) printf("%.9g\n", (double)g[i]);
    free(z);
    free(t);
    free(g);
    free(labels);
    return 0;
}
