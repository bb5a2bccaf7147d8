/* Benchmark: GFLOP/s of the convolution kernels per layer shape and
 * instruction set (forward with a fused BN + residual + Relu epilogue, and
 * the backward's dW and dX), of CIFAR ResNet-20/56's unpruned layers and of
 * the channel counts a rate-0.3 pruning leaves (11, 22, 44; 13, 26), beside
 * OpenBLAS sgemm on a square product: the CPU's reachable limit. Each
 * figure is the best of --iters runs; the instruction sets alternate.
 *
 * Usage: conv_gflops [--threads 1] [--batch 32] [--iters 5] [--sgemm]
 * Prints a table (--sgemm: only the sgemm line); exit 1 on an allocation
 * failure. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernels.h"
#include "util/cpu.h"
#include "util/util.h"

static long parse_long(const char *s, const char *what)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1) {
        fprintf(stderr, "conv_gflops: %s must be a positive integer, got '%s'\n", what, s);
        exit(2);
    }
    return v;
}

static float *filled(size_t n, uint32_t seed)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / (float)(1u << 23) - 1.0f;
    }
    return p;
}

/* OpenBLAS sgemm, n x n x n, best of iters: GFLOP/s. */
static double sgemm_gflops(int n, int threads, int iters)
{
    float *a = filled((size_t)n * (size_t)n, 1), *b = filled((size_t)n * (size_t)n, 2);
    float *c = filled((size_t)n * (size_t)n, 3);
    double best = 0.0;
    if (!a || !b || !c) goto out;
    sfp_blas_set_threads(threads);
    for (int it = -1; it < iters; it++) {
        const double t0 = sfp_now_seconds();
        sfp_sgemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        const double dt = sfp_now_seconds() - t0;
        if (it >= 0 && 2.0 * n * n * (double)n / dt / 1e9 > best) best = 2.0 * n * n * (double)n / dt / 1e9;
    }
out:
    free(a);
    free(b);
    free(c);
    return best;
}

typedef struct layer {
    const char *what;
    int64_t in_c, out_c, hw, stride;
} layer_t;

int main(int argc, char **argv)
{
    long threads = 1, batch = 32, iters = 5;
    int sgemm_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = parse_long(argv[++i], "--threads");
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = parse_long(argv[++i], "--batch");
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = parse_long(argv[++i], "--iters");
        else if (!strcmp(argv[i], "--sgemm")) sgemm_only = 1;
        else {
            fprintf(stderr, "usage: conv_gflops [--threads T] [--batch B] [--iters N] [--sgemm]\n");
            return 2;
        }
    }
    static const layer_t layers[] = {
        {"3->16 32x32", 3, 16, 32, 1},   {"16->16 32x32", 16, 16, 32, 1}, {"32->32 16x16", 32, 32, 16, 1},
        {"64->64 8x8", 64, 64, 8, 1},
        {"16->32 32x32 s2", 16, 32, 32, 2}, {"32->64 16x16 s2", 32, 64, 16, 2},
        {"11->11 32x32", 11, 11, 32, 1}, {"22->22 16x16", 22, 22, 16, 1}, {"44->44 8x8", 44, 44, 8, 1},
        {"13->13 32x32", 13, 13, 32, 1}, {"26->26 16x16", 26, 26, 16, 1},
    };
    sfp_error_t err = {0};
    sfp_threads_t *pool = NULL;
    if (sfp_threads_create((int)threads, &pool, &err) < 0) {
        fprintf(stderr, "conv_gflops: %s\n", err.msg);
        return 1;
    }
    const sfp_isa_t best_isa = sfp_cpu_isa_supported();
    if (sgemm_only) {
        printf("OpenBLAS sgemm 1024x1024x1024, %ld thread(s), best of %ld: %.1f GFLOP/s\n", threads, iters,
               sgemm_gflops(1024, (int)threads, iters));
        sfp_threads_free(pool);
        return 0;
    }
    printf("cpu: %s; instruction sets: up to %s; %ld thread(s), batch %ld, best of %ld\n", sfp_cpu_model(),
           sfp_isa_name(best_isa), threads, batch, iters);
    printf("OpenBLAS sgemm 1024x1024x1024: %.1f GFLOP/s\n", sgemm_gflops(1024, (int)threads, iters));
    printf("%-18s %-7s %10s %10s %10s\n", "layer (3x3)", "isa", "forward", "dW", "dX");
    int rc = 0;
    for (size_t l = 0; l < sizeof layers / sizeof layers[0] && rc == 0; l++) {
        const layer_t *ly = &layers[l];
        sfp_conv_shape_t s = {.batch = batch, .in_channels = ly->in_c, .out_channels = ly->out_c, .group = 1,
                              .n_spatial = 2};
        for (int d = 0; d < 2; d++) {
            s.in[d] = ly->hw;
            s.kernel[d] = 3;
            s.stride[d] = ly->stride;
            s.dilation[d] = 1;
            s.pad_begin[d] = 1;
            s.out[d] = ly->hw / ly->stride;
        }
        const size_t x_n = (size_t)(batch * ly->in_c * ly->hw * ly->hw);
        const size_t y_n = (size_t)(batch * ly->out_c * s.out[0] * s.out[1]);
        const size_t w_n = (size_t)(ly->out_c * ly->in_c * 9);
        const double flops = 2.0 * (double)y_n * (double)(ly->in_c * 9);
        float *x = filled(x_n, 1), *w = filled(w_n, 2), *y = filled(y_n, 3), *res = filled(y_n, 4);
        float *dx = filled(x_n, 5), *dw = filled(w_n, 6), *sc = filled((size_t)ly->out_c, 7);
        float *sh = filled((size_t)ly->out_c, 8), *scratch = NULL;
        double best[3][3] = {{0}};
        if (!x || !w || !y || !res || !dx || !dw || !sc || !sh) rc = 1;
        size_t scratch_n = 0;
        for (int isa = SFP_ISA_AVX2; isa <= (int)best_isa && rc == 0; isa++) { /* the largest, once */
            size_t f_n = 0, b_n = 0;
            sfp_cpu_set_isa((sfp_isa_t)isa);
            if (!conv_scratch_floats(&s, (int)threads, &f_n) || !conv_backward_scratch_floats(&s, (int)threads, &b_n))
                rc = 1;
            if (f_n > scratch_n) scratch_n = f_n;
            if (b_n > scratch_n) scratch_n = b_n;
        }
        if (rc == 0 && !(scratch = filled(scratch_n, 9))) rc = 1;
        for (int it = -1; it < iters && rc == 0; it++)
            for (int isa = SFP_ISA_AVX2; isa <= (int)best_isa && rc == 0; isa++) {
                sfp_cpu_set_isa((sfp_isa_t)isa);
                const sfp_conv_epilogue_t e = {sc, sh, res, true};
                double t0 = sfp_now_seconds();
                conv_forward_fused(&s, x, w, &e, y, scratch, pool);
                double t1 = sfp_now_seconds();
                conv_backward(&s, x, w, y, NULL, dw, NULL, false, scratch, pool);
                double t2 = sfp_now_seconds();
                conv_backward(&s, x, w, y, dx, NULL, NULL, true, scratch, pool);
                double t3 = sfp_now_seconds();
                const double g[3] = {flops / (t1 - t0) / 1e9, flops / (t2 - t1) / 1e9, flops / (t3 - t2) / 1e9};
                for (int k = 0; k < 3 && it >= 0; k++)
                    if (g[k] > best[isa][k]) best[isa][k] = g[k];
            }
        for (int isa = SFP_ISA_AVX2; isa <= (int)best_isa && rc == 0; isa++)
            printf("%-18s %-7s %10.1f %10.1f %10.1f\n", ly->what, sfp_isa_name((sfp_isa_t)isa), best[isa][0],
                   best[isa][1], best[isa][2]);
        free(x);
        free(w);
        free(y);
        free(res);
        free(dx);
        free(dw);
        free(sc);
        free(sh);
        free(scratch);
    }
    sfp_threads_free(pool);
    if (rc) fprintf(stderr, "conv_gflops: out of memory or a shape too large\n");
    return rc;
}
