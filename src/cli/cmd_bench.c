/* onnx-sfp bench: inference speed of one or two models (latency at batch 1,
 * throughput at --batch) and with --train their training speed, side by
 * side with the MAC reduction when two are given (original vs compressed).
 * Input is synthetic, or with --data the same preprocessed images (and
 * labels) for every model, cycled through run after run. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli_train.h"
#include "onnxsfp/report.h"
#include "train/plan.h"
#include "train/train.h"
#include "util/cpu.h"
#include "util/util.h"

#define BENCH_MAX_RUNS 10000

static const cli_opt_t opts[] = {
    {"batch", "B", "throughput batch size (default 64)"},
    {"seconds", "S", "minimum time per measurement (default 1)"},
    {"data", "PATH", "run on these images (IDX, CIFAR or class sub-folders; its test split) instead of synthetic input"},
    {"limit", "N", "with --data: use the first N images (default 256)"},
    {"train", NULL, "also time training steps at --batch (forward, cross-entropy, backward, SGD with momentum)"},
    {"json", NULL, "print {\"schema_version\", \"models\": [{\"path\", \"batch\", \"infer_images_per_s\",\n"
                   "\"latency_ms_batch1\", \"train_images_per_s\" (--train), \"macs\", \"params\"}], \"input\", \"reduction\",\n"
                   "\"speedup\", \"cpu\", \"isa\"} (docs/json.md)"},
    {0},
};

typedef struct bench_result {
    double latency_ms;     /* median at batch 1 */
    double images_per_s;   /* at the throughput batch */
    double train_images_per_s; /* --train: training steps at the throughput batch; else 0 */
    int64_t macs, params;
} bench_result_t;

/* The images every timed run reads: n_buf examples of example_floats each
 * and their labels (owns x and labels). With data, examples n..n_buf-1
 * repeat the first ones so that any batch up to n_buf is contiguous;
 * synthetic examples are labelled i % classes. */
typedef struct bench_input {
    float *x;
    int32_t *labels;
    int64_t n_buf;
    size_t example_floats;
    int64_t n_images;      /* distinct images (0: synthetic) */
    char format[32];       /* the data's format, "" when synthetic */
} bench_input_t;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The first `limit` images of data_path, preprocessed for m (its metadata's
 * mean/std), or one synthetic batch without data_path. */
static int input_load(const cli_cmd_t *cmd, const cli_args_t *a, sfp_model_t *m, const char *path,
                       const char *data_path, int64_t limit, int64_t batch, bench_input_t *in, sfp_error_t *err)
{
    int c = 0, h = 0, w = 0, k = 0, rc;
    const char *prep_source = NULL;
    sfp_dataset_t *full = NULL, *ds = NULL;
    sfp_data_prep_t prep;
    size_t bytes = 0;
    memset(in, 0, sizeof *in);
    if ((rc = cli_model_geometry(m, path, &c, &h, &w, &k, err)) < 0) return rc;
    in->example_floats = (size_t)c * (size_t)h * (size_t)w;
    if (data_path) {
        sfp_data_opts_t dopts = {c, h, w, k, false};
        data_prep_init(&prep, c, h, w);
        if ((rc = cli_preprocessing(cmd, a, m, path, NULL, &prep, &prep_source, err)) < 0) return rc;
        if ((rc = data_open(data_path, "test", &dopts, &full, err)) < 0) return rc;
        if ((rc = data_subset(full, limit, &ds, err)) < 0) goto done;
        if ((rc = data_prep_check(&prep, ds, err)) < 0) goto done;
        in->n_images = ds->n;
        snprintf(in->format, sizeof in->format, "%s", ds->format);
    }
    in->n_buf = in->n_images > batch ? in->n_images : batch;
    if (!sfp_mul_size(in->example_floats * sizeof(float), (size_t)in->n_buf, &bytes) || !(in->x = malloc(bytes)) ||
        !(in->labels = malloc(sizeof(int32_t) * (size_t)in->n_buf))) {
        rc = sfp_errorf(err, SFP_ENOMEM, "%s: out of memory for %lld input images", sfp_q(path), (long long)in->n_buf);
        goto done;
    }
    for (int64_t i = 0; i < in->n_buf; i++) {
        float *dst = in->x + (size_t)i * in->example_floats;
        in->labels[i] = ds ? (int32_t)data_label(ds, i % in->n_images) : (int32_t)(i % k);
        if (ds) data_prep_example(&prep, ds, i % in->n_images, dst);
        else
            for (size_t j = 0; j < in->example_floats; j++)
                dst[j] = (float)sin(0.37 * (double)((size_t)i * in->example_floats + j));
    }
done:
    data_free(ds);
    data_free(full);
    return rc;
}

/* Median seconds per run of a plan at `batch` over at least min_seconds; run r
 * reads the r-th batch-sized slice of the input, cyclically. */
static int time_plan(sfp_model_t *m, const bench_input_t *in, int64_t batch, int threads, double min_seconds,
                     double *median, sfp_error_t *err)
{
    sfp_plan_t *p = NULL;
    int rc = plan_create(m, batch, SFP_PLAN_CONST_WEIGHTS, threads, &p, err);
    if (rc < 0) return rc;
    double *times = malloc(sizeof(double) * BENCH_MAX_RUNS);
    if (!times) {
        plan_free(p);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    int64_t n_slices = in->n_buf / batch;
    int runs = 0;
    double start = sfp_now_seconds();
    for (int i = 0; i < 2 + BENCH_MAX_RUNS && rc == 0; i++) {
        bool timed = i >= 2; /* runs 0 and 1 warm up */
        if (timed && runs >= 5 && sfp_now_seconds() - start >= min_seconds) break;
        const void *inputs[1] = {in->x + (size_t)((i % n_slices) * batch) * in->example_floats};
        double t0 = sfp_now_seconds();
        rc = plan_run(p, inputs, err);
        if (timed) times[runs++] = sfp_now_seconds() - t0;
    }
    if (rc == 0) {
        qsort(times, (size_t)runs, sizeof(double), cmp_double);
        *median = times[runs / 2];
    }
    free(times);
    plan_free(p);
    return rc;
}

/* Median seconds per training step at `batch` over at least min_seconds:
 * forward in training mode, cross-entropy, backward, SGD (lr 0.01, momentum
 * 0.9, weight decay 5e-4). Updates m's weights (the bench's own copy). */
static int time_train(sfp_model_t *m, const bench_input_t *in, int64_t batch, int threads, double min_seconds,
                      double *median, sfp_error_t *err)
{
    sfp_plan_t *p = NULL;
    sfp_sgd_t *sgd = NULL;
    const sfp_sgd_opts_t sgd_opts = {0.9f, false, 5e-4f, 5e-4f};
    float *dlogits = NULL;
    double *times = malloc(sizeof(double) * BENCH_MAX_RUNS);
    int rc = times ? 0 : sfp_errorf(err, SFP_ENOMEM, "out of memory");
    if (rc == 0) rc = plan_create(m, batch, SFP_PLAN_TRAIN, threads, &p, err);
    if (rc == 0) rc = sgd_create(p, &sgd_opts, &sgd, err);
    const sfp_shape_t *ys = rc == 0 ? plan_output_shape(p, 0) : NULL;
    if (rc == 0 && (ys->ndim != 2 || ys->dims[0] != batch))
        rc = sfp_errorf(err, SFP_EUNSUPPORTED, "bench --train: the model's output is not [batch, classes]");
    if (rc == 0 && !(dlogits = malloc(sizeof(float) * (size_t)(batch * ys->dims[1]))))
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
    const int64_t n_slices = in->n_buf / batch;
    int runs = 0;
    double start = sfp_now_seconds(), loss = 0.0;
    for (int i = 0; i < 2 + BENCH_MAX_RUNS && rc == 0; i++) {
        bool timed = i >= 2; /* steps 0 and 1 warm up */
        if (timed && runs >= 3 && sfp_now_seconds() - start >= min_seconds) break;
        const int64_t first = (i % n_slices) * batch;
        const void *inputs[1] = {in->x + (size_t)first * in->example_floats};
        double t0 = sfp_now_seconds();
        plan_zero_grad(p);
        if ((rc = plan_run(p, inputs, err)) < 0 ||
            (rc = loss_softmax_xent(batch, ys->dims[1], plan_output(p, 0), in->labels + first, 0.0f, &loss, dlogits,
                                    NULL, err)) < 0 ||
            (rc = plan_backward(p, dlogits, err)) < 0 || (rc = sgd_step(sgd, 0.01f, err)) < 0)
            break;
        if (timed) times[runs++] = sfp_now_seconds() - t0;
    }
    if (rc == 0) {
        qsort(times, (size_t)runs, sizeof(double), cmp_double);
        *median = times[runs / 2];
    }
    free(dlogits);
    free(times);
    sgd_free(sgd);
    plan_free(p);
    return rc;
}

static int bench_model(const cli_cmd_t *cmd, const cli_args_t *a, const char *path, const char *data_path,
                       int64_t limit, int64_t batch, double seconds, bench_result_t *r, bench_input_t *in,
                       sfp_error_t *err)
{
    sfp_model_t *m = NULL;
    sfp_report_t *rep = NULL;
    double t1 = 0, tb = 0, tt = 0;
    int rc = cli_load_model(path, &m, err);
    if (rc == 0 && graph_data_input(&m->graph) < 0)
        rc = sfp_errorf(err, SFP_EUNSUPPORTED, "%s: bench needs a model with one data input", sfp_q(path));
    if (rc == 0) rc = sfp_report_build(m, path, &rep, err);
    if (rc == 0) rc = input_load(cmd, a, m, path, data_path, limit, batch, in, err);
    if (rc == 0 && !a->quiet) {
        if (data_path)
            fprintf(stderr, "onnx-sfp: bench %s on %lld images of %s (%s, test split), batch 1 and %lld\n",
                    sfp_q(path), (long long)in->n_images, sfp_q(data_path), in->format, (long long)batch);
        else
            fprintf(stderr, "onnx-sfp: bench %s on synthetic input, batch 1 and %lld\n", sfp_q(path),
                    (long long)batch);
    }
    if (rc == 0) rc = time_plan(m, in, 1, a->threads, seconds, &t1, err);
    if (rc == 0) rc = time_plan(m, in, batch, a->threads, seconds, &tb, err);
    if (rc == 0 && cli_flag(cmd, a, "train")) rc = time_train(m, in, batch, a->threads, seconds, &tt, err);
    if (rc == 0) {
        r->train_images_per_s = tt > 0 ? (double)batch / tt : 0.0;
        r->latency_ms = 1e3 * t1;
        r->images_per_s = (double)batch / tb;
        r->macs = rep->macs;
        r->params = rep->params;
    }
    sfp_report_free(rep);
    sfp_model_free(m);
    return rc;
}

static double fraction_removed(int64_t before, int64_t after)
{
    return before > 0 ? 1.0 - (double)after / (double)before : 0.0;
}

static int print_json(const cli_args_t *a, const bench_result_t *r, const bench_input_t *in, const char *data_path,
                      int64_t batch, sfp_error_t *err)
{
    json_object *root = json_object_new_object(), *models = json_object_new_array();
    json_object *input = json_object_new_object();
    json_object_object_add(root, "schema_version", json_object_new_int(SFP_JSON_SCHEMA_VERSION));
    for (int i = 0; i < a->n_pos; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "path", json_object_new_string(a->pos[i]));
        json_object_object_add(o, "batch", json_object_new_int64(batch));
        json_object_object_add(o, "infer_images_per_s", json_object_new_double(r[i].images_per_s));
        json_object_object_add(o, "latency_ms_batch1", json_object_new_double(r[i].latency_ms));
        if (r[i].train_images_per_s > 0)
            json_object_object_add(o, "train_images_per_s", json_object_new_double(r[i].train_images_per_s));
        json_object_object_add(o, "macs", json_object_new_int64(r[i].macs));
        json_object_object_add(o, "params", json_object_new_int64(r[i].params));
        json_object_array_add(models, o);
    }
    json_object_object_add(root, "models", models);
    json_object_object_add(input, "data", data_path ? json_object_new_string(data_path) : NULL);
    json_object_object_add(input, "images", data_path ? json_object_new_int64(in->n_images) : NULL);
    json_object_object_add(root, "input", input);
    json_object *reduction = NULL, *speedup = NULL;
    if (a->n_pos == 2) {
        reduction = json_object_new_object();
        json_object_object_add(reduction, "params", json_object_new_double(fraction_removed(r[0].params, r[1].params)));
        json_object_object_add(reduction, "macs", json_object_new_double(fraction_removed(r[0].macs, r[1].macs)));
        speedup = json_object_new_object();
        json_object_object_add(speedup, "latency_batch1", json_object_new_double(r[0].latency_ms / r[1].latency_ms));
        json_object_object_add(speedup, "throughput", json_object_new_double(r[1].images_per_s / r[0].images_per_s));
        if (r[0].train_images_per_s > 0)
            json_object_object_add(speedup, "training",
                                   json_object_new_double(r[1].train_images_per_s / r[0].train_images_per_s));
    }
    json_object_object_add(root, "reduction", reduction);
    json_object_object_add(root, "speedup", speedup);
    json_object_object_add(root, "cpu", json_object_new_string(sfp_cpu_model()));
    json_object_object_add(root, "isa", json_object_new_string(sfp_isa_name(sfp_cpu_isa())));
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    int rc = text ? 0 : sfp_errorf(err, SFP_ENOMEM, "out of memory writing JSON");
    if (text) printf("%s\n", text);
    json_object_put(root);
    return rc;
}

static void print_text(const cli_args_t *a, const bench_result_t *r, int64_t batch)
{
    char images_col[32], train_col[32];
    const bool train = r[0].train_images_per_s > 0;
    snprintf(images_col, sizeof images_col, "images/s b%lld", (long long)batch);
    snprintf(train_col, sizeof train_col, "train img/s b%lld", (long long)batch);
    printf("cpu: %s; kernels: %s\n", sfp_cpu_model(), sfp_isa_name(sfp_cpu_isa()));
    printf("%-40s %14s %12s %18s %16s%*s\n", "model", "MACs", "params", "latency b1 (ms)", images_col, train ? 18 : 0,
           train ? train_col : "");
    for (int i = 0; i < a->n_pos; i++) {
        printf("%-40s %14lld %12lld %18.3f %16.1f", sfp_q(a->pos[i]), (long long)r[i].macs, (long long)r[i].params,
               r[i].latency_ms, r[i].images_per_s);
        if (train) printf(" %17.1f", r[i].train_images_per_s);
        printf("\n");
    }
    if (a->n_pos == 2) {
        printf("MACs -%.1f%%, params -%.1f%%: latency %.2fx faster (batch 1), throughput %.2fx (batch %lld)",
               100.0 * fraction_removed(r[0].macs, r[1].macs), 100.0 * fraction_removed(r[0].params, r[1].params),
               r[0].latency_ms / r[1].latency_ms, r[1].images_per_s / r[0].images_per_s, (long long)batch);
        if (train) printf(", training %.2fx", r[1].train_images_per_s / r[0].train_images_per_s);
        printf("\n");
    }
}

static int run(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    int64_t batch = 64, limit = 256;
    double seconds = 1.0;
    const char *data_path = cli_get(cmd, a, "data");
    bench_result_t r[2] = {{0}};
    bench_input_t in[2];
    int rc = 0;
    memset(in, 0, sizeof in);
    if ((rc = cli_int(cmd, a, "batch", 1, 4096, 64, &batch, err)) < 0) return rc;
    if ((rc = cli_double(cmd, a, "seconds", 0.01, 600.0, 1.0, &seconds, err)) < 0) return rc;
    if ((rc = cli_int(cmd, a, "limit", 1, 65536, 256, &limit, err)) < 0) return rc;
    if (cli_get(cmd, a, "limit") && !data_path) return sfp_errorf(err, SFP_EUSAGE, "--limit needs --data");
    for (int i = 0; i < a->n_pos && rc == 0; i++)
        rc = bench_model(cmd, a, a->pos[i], data_path, limit, batch, seconds, &r[i], &in[i], err);
    if (rc == 0 && a->n_pos == 2 && in[0].n_images != in[1].n_images)
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: %lld images for %s but %lld for %s", sfp_q(data_path),
                        (long long)in[0].n_images, sfp_q(a->pos[0]), (long long)in[1].n_images, sfp_q(a->pos[1]));
    if (rc == 0 && cli_flag(cmd, a, "json")) rc = print_json(a, r, &in[0], data_path, batch, err);
    else if (rc == 0) print_text(a, r, batch);
    for (int i = 0; i < 2; i++) {
        free(in[i].x);
        free(in[i].labels);
    }
    return rc;
}

const cli_cmd_t cmd_bench = {
    "bench", "MODEL.onnx [OTHER.onnx] [--batch B] [--train] [--seconds S] [--data PATH [--limit N]] [--json]",
    "inference (and --train: training) speed: median latency at batch 1 and throughput at --batch, two models side by side",
    "Each measurement runs after two warm-up runs, for at least --seconds and 5 runs. Input is synthetic,\n"
    "or with --data the first --limit images of a dataset, preprocessed for each model as eval does\n"
    "(mean/std from the model's metadata), so both models run on the same images. With two models\n"
    "(original and compressed) the MAC and parameter reduction is printed next to the speed-up. --train also\n"
    "times training steps at --batch (forward in training mode, cross-entropy, backward, SGD) on the same input.",
    opts, 1, 2, run,
};
