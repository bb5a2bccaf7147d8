/* onnx-sfp bench: inference speed of one or two models on synthetic input
 * (latency at batch 1, throughput at --batch), side by side with the MAC
 * reduction when two are given (original vs compressed). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "onnxsfp/report.h"
#include "train/plan.h"

static const cli_opt_t opts[] = {
    {"batch", "B", "throughput batch size (default 64)"},
    {"seconds", "S", "minimum time per measurement (default 1)"},
    {"json", NULL, "print {\"models\": [{\"path\", \"batch\", \"infer_images_per_s\", \"latency_ms_batch1\"}]}"},
    {0},
};

typedef struct bench_result {
    double latency_ms;     /* median at batch 1 */
    double images_per_s;   /* at the throughput batch */
    int64_t macs;
} bench_result_t;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds per run of a plan at `batch` over at least min_seconds. */
static int time_plan(sfp_model_t *m, int64_t batch, int threads, double min_seconds, double *median, sfp_error_t *err)
{
    sfp_plan_t *p = NULL;
    int rc = plan_create(m, batch, 0, threads, &p, err);
    if (rc < 0) return rc;
    const sfp_shape_t *s = plan_input_shape(p, 0);
    int64_t n = 1;
    for (int k = 0; k < s->ndim; k++) n *= s->dims[k];
    float *x = malloc(sizeof(float) * (size_t)n);
    double *times = malloc(sizeof(double) * 10000);
    if (!x || !times) {
        free(x);
        free(times);
        plan_free(p);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    for (int64_t i = 0; i < n; i++) x[i] = (float)sin(0.37 * (double)i);
    const void *inputs[1] = {x};
    int runs = 0;
    double start = now_seconds();
    for (int warm = 0; warm < 2 && rc == 0; warm++) rc = plan_run(p, inputs, err);
    while (rc == 0 && runs < 10000 && (runs < 5 || now_seconds() - start < min_seconds)) {
        double t0 = now_seconds();
        rc = plan_run(p, inputs, err);
        times[runs++] = now_seconds() - t0;
    }
    if (rc == 0) {
        qsort(times, (size_t)runs, sizeof(double), cmp_double);
        *median = times[runs / 2];
    }
    free(x);
    free(times);
    plan_free(p);
    return rc;
}

static int bench_model(const char *path, int64_t batch, int threads, double seconds, bench_result_t *r,
                       sfp_error_t *err)
{
    sfp_model_t *m = NULL;
    sfp_report_t *rep = NULL;
    double t1 = 0, tb = 0;
    int rc = model_load(path, &m, err);
    if (rc == 0 && graph_data_input(&m->graph) < 0)
        rc = sfp_errorf(err, SFP_EUNSUPPORTED, "%s: bench needs a model with one data input", path);
    if (rc == 0) rc = report_build(m, path, &rep, err);
    if (rc == 0) rc = time_plan(m, 1, threads, seconds, &t1, err);
    if (rc == 0) rc = time_plan(m, batch, threads, seconds, &tb, err);
    if (rc == 0) {
        r->latency_ms = 1e3 * t1;
        r->images_per_s = (double)batch / tb;
        r->macs = rep->macs;
    }
    report_free(rep);
    model_free(m);
    return rc;
}

static int run(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    int64_t batch = 64;
    double seconds = 1.0;
    bench_result_t r[2] = {{0}};
    int rc;
    if ((rc = cli_int(cmd, a, "batch", 1, 4096, 64, &batch, err)) < 0) return rc;
    if ((rc = cli_double(cmd, a, "seconds", 0.01, 600.0, 1.0, &seconds, err)) < 0) return rc;
    for (int i = 0; i < a->n_pos; i++)
        if ((rc = bench_model(a->pos[i], batch, a->threads, seconds, &r[i], err)) < 0) return rc;
    if (cli_flag(cmd, a, "json")) {
        json_object *root = json_object_new_object(), *models = json_object_new_array();
        for (int i = 0; i < a->n_pos; i++) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "path", json_object_new_string(a->pos[i]));
            json_object_object_add(o, "batch", json_object_new_int64(batch));
            json_object_object_add(o, "infer_images_per_s", json_object_new_double(r[i].images_per_s));
            json_object_object_add(o, "latency_ms_batch1", json_object_new_double(r[i].latency_ms));
            json_object_object_add(o, "macs", json_object_new_int64(r[i].macs));
            json_object_array_add(models, o);
        }
        json_object_object_add(root, "models", models);
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(root);
        return 0;
    }
    printf("%-40s %14s %18s %14s\n", "model", "MACs", "latency b1 (ms)", "images/s b" );
    for (int i = 0; i < a->n_pos; i++)
        printf("%-40s %14lld %18.3f %14.1f\n", a->pos[i], (long long)r[i].macs, r[i].latency_ms, r[i].images_per_s);
    if (a->n_pos == 2 && r[0].macs > 0)
        printf("MACs -%.1f%%, latency %.2fx faster, throughput %.2fx (batch %lld)\n",
               100.0 * (1.0 - (double)r[1].macs / (double)r[0].macs), r[0].latency_ms / r[1].latency_ms,
               r[1].images_per_s / r[0].images_per_s, (long long)batch);
    return 0;
}

const cli_cmd_t cmd_bench = {
    "bench", "MODEL.onnx [OTHER.onnx] [--batch B] [--seconds S] [--json]",
    "inference speed: median latency at batch 1 and throughput at --batch, two models side by side",
    "Synthetic input, after two warm-up runs; each measurement runs at least --seconds and 5 times.",
    opts, 1, 2, run,
};
