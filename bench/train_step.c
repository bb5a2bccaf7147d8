/* Benchmark (issue 4): images per second of one training step (forward in
 * training mode, cross-entropy, backward, SGD with momentum and weight
 * decay) of an ONNX model at a batch size, on random inputs and labels.
 * --profile adds the time per op type, forward and backward (and per step
 * with TRAIN_STEP_PER_NODE=1 in the environment). --infer times an
 * inference plan instead (forward only, fused as plan_create fuses).
 *
 * Usage: train_step MODEL.onnx [--batch 128] [--threads 2] [--iters 10] [--lr 0.01] [--profile] [--infer]
 * Prints one JSON object; exit 1 on any error. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model.h"
#include "onnx/onnx.h"
#include "train/plan.h"
#include "train/train.h"
#include "util/cpu.h"
#include "util/util.h"

static long parse_long(const char *s, const char *what)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1) {
        fprintf(stderr, "train_step: %s must be a positive integer, got '%s'\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long batch = 128, threads = 2, iters = 10;
    float lr = 0.01f;
    int profile = 0, infer = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = parse_long(argv[++i], "--batch");
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = parse_long(argv[++i], "--threads");
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = parse_long(argv[++i], "--iters");
        else if (!strcmp(argv[i], "--lr") && i + 1 < argc) lr = strtof(argv[++i], NULL);
        else if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (!strcmp(argv[i], "--infer")) infer = 1;
        else if (!path && argv[i][0] != '-') path = argv[i];
        else {
            fprintf(stderr, "usage: train_step MODEL.onnx [--batch B] [--threads T] [--iters N] [--lr LR] [--profile] [--infer]\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: train_step MODEL.onnx [--batch B] [--threads T] [--iters N] [--lr LR] [--profile] [--infer]\n");
        return 2;
    }
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    sfp_plan_t *p = NULL;
    sfp_sgd_t *sgd = NULL;
    float *x = NULL, *dlogits = NULL;
    int32_t *labels = NULL;
    int rc = sfp_model_load(path, &m, &err);
    if (rc == 0)
        rc = plan_create(m, batch, (infer ? 0 : SFP_PLAN_TRAIN) | (profile ? SFP_PLAN_PROFILE : 0), (int)threads, &p,
                         &err);
    const sfp_sgd_opts_t opts = {0.9f, false, 5e-4f, 5e-4f};
    if (rc == 0 && !infer) rc = sgd_create(p, &opts, &sgd, &err);
    if (rc < 0) {
        fprintf(stderr, "train_step: %s\n", err.msg);
        goto out;
    }
    const sfp_shape_t *xs = plan_input_shape(p, 0), *ys = plan_output_shape(p, 0);
    int64_t x_n = 1;
    for (int k = 0; k < xs->ndim; k++) x_n *= xs->dims[k];
    const int64_t n = ys->dims[0], k = ys->dims[1];
    x = malloc(sizeof(float) * (size_t)x_n);
    dlogits = malloc(sizeof(float) * (size_t)(n * k));
    labels = malloc(sizeof(int32_t) * (size_t)n);
    if (!x || !dlogits || !labels) {
        fprintf(stderr, "train_step: out of memory\n");
        rc = SFP_ENOMEM;
        goto out;
    }
    uint32_t seed = 1;
    for (int64_t i = 0; i < x_n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / (float)(1u << 23) - 1.0f;
    }
    for (int64_t i = 0; i < n; i++) labels[i] = (int32_t)(i % k);
    const void *in[1] = {x};
    double t_fwd = 0, t_bwd = 0, t_sgd = 0, loss = 0;
    for (long it = -2; it < iters; it++) { /* two warm-up steps */
        double t0 = sfp_now_seconds();
        if ((rc = plan_run(p, in, &err)) < 0) break;
        double t1 = sfp_now_seconds();
        if (infer) {
            if (it >= 0) t_fwd += t1 - t0;
            continue;
        }
        if ((rc = loss_softmax_xent(n, k, plan_output(p, 0), labels, 0.0f, &loss, dlogits, NULL, &err)) < 0) break;
        t1 = sfp_now_seconds();
        if ((rc = plan_backward(p, dlogits, &err)) < 0) break;
        double t2 = sfp_now_seconds();
        if ((rc = sgd_step(sgd, lr, &err)) < 0) break;
        double t3 = sfp_now_seconds();
        if (it >= 0) {
            t_fwd += t1 - t0;
            t_bwd += t2 - t1;
            t_sgd += t3 - t2;
        }
    }
    if (rc < 0) {
        fprintf(stderr, "train_step: %s\n", err.msg);
        goto out;
    }
    double step = (t_fwd + t_bwd + t_sgd) / (double)iters;
    printf("{\"model\": \"%s\", \"batch\": %ld, \"threads\": %d, \"images_per_s\": %.1f, \"ms_per_step\": %.1f, "
           "\"forward_ms\": %.1f, \"backward_ms\": %.1f, \"sgd_ms\": %.2f, \"arena_mb\": %.1f, \"cpu\": \"%s\", "
           "\"isa\": \"%s\"}\n",
           path, batch, plan_threads(p), (double)batch / step, step * 1e3, t_fwd / (double)iters * 1e3,
           t_bwd / (double)iters * 1e3, t_sgd / (double)iters * 1e3, (double)plan_arena_bytes(p) / 1048576.0,
           sfp_cpu_model(), sfp_isa_name(sfp_cpu_isa()));
    if (profile) { /* per op type, summed over warm-up and timed steps */
        const char *types[64];
        double fwd[64] = {0}, bwd[64] = {0};
        int n_types = 0;
        for (int s = 0; s < plan_n_steps(p); s++) {
            const char *op = m->graph.nodes[plan_step_node(p, s)].op_type;
            int t = 0;
            while (t < n_types && strcmp(types[t], op)) t++;
            if (t == n_types && n_types < 64) types[n_types++] = op;
            if (t < 64) {
                fwd[t] += plan_step_seconds(p, s);
                bwd[t] += infer ? 0.0 : plan_step_backward_seconds(p, s);
            }
        }
        if (getenv("TRAIN_STEP_PER_NODE"))
            for (int s = 0; s < plan_n_steps(p); s++) {
                const sfp_node_t *nd = &m->graph.nodes[plan_step_node(p, s)];
                const sfp_shape_t *os = plan_value_shape(p, nd->outputs[0]);
                fprintf(stderr, "%-12s %-40s out %lldx%lldx%lld %8.2f ms\n", nd->op_type, nd->name,
                        (long long)(os->ndim > 1 ? os->dims[1] : 0), (long long)(os->ndim > 2 ? os->dims[2] : 0),
                        (long long)(os->ndim > 3 ? os->dims[3] : 0),
                        plan_step_seconds(p, s) / (double)(iters + 2) * 1e3);
            }
        for (int t = 0; t < n_types; t++)
            fprintf(stderr, "%-20s forward %8.1f ms  backward %8.1f ms per step\n", types[t],
                    fwd[t] / (double)(iters + 2) * 1e3, bwd[t] / (double)(iters + 2) * 1e3);
    }
out:
    free(x);
    free(dlogits);
    free(labels);
    sgd_free(sgd);
    plan_free(p);
    sfp_model_free(m);
    return rc < 0 ? 1 : 0;
}
