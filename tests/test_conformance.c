/* Conformance of the forward runtime against ONNX's own test data
 * (/usr/share/libonnx-testdata/data/{node,pytorch-converted,pytorch-operator}):
 * every folder holds model.onnx and test_data_set_K with input_N.pb and output_N.pb. A
 * case is skipped, with its reason, when validation or the plan says
 * SFP_EUNSUPPORTED or an input is neither float32 nor int64; every other case
 * must reproduce each output. The summary lists ran/passed/skipped and the
 * skip reasons with counts. Set SFP_CONFORMANCE_FILTER=substring to run only
 * the folders whose name contains it, SFP_CONFORMANCE_VERBOSE=1 to list every
 * case. */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "onnx/onnx.h"
#include "onnxsfp/tensor.h"
#include "train/plan.h"
#include "util/util.h"

#define DATA_ROOT "/usr/share/libonnx-testdata/data"
#define MAX_IO 32
#define MAX_REASONS 512

/* Tolerance: |ours - expected| <= 1e-4 * max(1, |expected|). The references
 * are float32 results of numpy/PyTorch; our kernels sum in a different order
 * (BLAS blocking, im2col) and fold BN into one multiply-add, which moves a
 * result by a few ulps per accumulated term: 1e-4 relative (absolute near
 * zero) leaves room for sums of thousands of terms while still catching any
 * wrong index, window or broadcast. NaN must match NaN, infinities their sign;
 * integer and bool outputs must match exactly. */
#define TOL 1e-4

typedef struct reason {
    char text[200];
    int count;
} reason_t;

static struct {
    int cases, ran, passed, failed, skipped;
    int n_reasons;
    reason_t reasons[MAX_REASONS];
} stats;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_reason(const void *a, const void *b)
{
    const reason_t *x = a, *y = b;
    if (x->count != y->count) return y->count - x->count;
    return strcmp(x->text, y->text);
}

/* Groups skip messages by what they say, without the node name. */
static void add_reason(const char *msg)
{
    char key[200];
    const char *p = strstr(msg, "node '");
    const char *q = p ? strstr(p + 6, "' (") : NULL;
    if (p && q)
        snprintf(key, sizeof key, "%.*s%s", (int)(p - msg), msg, q + 2);
    else {
        size_t n = strnlen(msg, sizeof key - 1); /* truncation wanted: keys are short labels */
        memcpy(key, msg, n);
        key[n] = '\0';
    }
    stats.skipped++;
    for (int i = 0; i < stats.n_reasons; i++)
        if (!strcmp(stats.reasons[i].text, key)) {
            stats.reasons[i].count++;
            return;
        }
    if (stats.n_reasons < MAX_REASONS) {
        snprintf(stats.reasons[stats.n_reasons].text, sizeof stats.reasons[0].text, "%s", key);
        stats.reasons[stats.n_reasons++].count = 1;
    }
}

/* Sorted entries of dir whose name starts with prefix (malloc'ed strings). */
static int list_dir(const char *dir, const char *prefix, char **names, int max)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) || n >= max) continue;
        names[n] = strdup(e->d_name);
        assert_non_null(names[n]);
        n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    return n;
}

/* input_N.pb / output_N.pb in N order (N may exceed 9). */
static int load_set(const char *dir, const char *kind, sfp_tensor_t **out, int max, sfp_error_t *err)
{
    int n = 0;
    for (; n < max; n++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s_%d.pb", dir, kind, n);
        FILE *f = fopen(path, "rb");
        if (!f) break;
        fclose(f);
        if (sfp_tensor_load_pb(path, &out[n], err) < 0) {
            for (int i = 0; i < n; i++) sfp_tensor_free(out[i]);
            return -1;
        }
    }
    return n;
}

static void free_set(sfp_tensor_t **t, int n)
{
    for (int i = 0; i < n; i++) sfp_tensor_free(t[i]);
}

static double elem_double(const sfp_tensor_t *t, int64_t i)
{
    return sfp_tensor_get_double(t, i);
}

/* 0 when ours matches want; else prints why and returns -1. */
static int compare(const char *label, const sfp_tensor_t *want, const sfp_shape_t *shape, const void *data)
{
    if (want->dtype != shape->dtype) {
        printf("  FAIL %s: type %s, expected %s\n", label, sfp_dtype_name(shape->dtype), sfp_dtype_name(want->dtype));
        return -1;
    }
    bool same = want->ndim == shape->ndim;
    for (int k = 0; same && k < want->ndim; k++) same = want->dims[k] == shape->dims[k];
    if (!same) {
        printf("  FAIL %s: shape differs (rank %d vs expected %d)\n", label, shape->ndim, want->ndim);
        return -1;
    }
    sfp_tensor_t view = *want;
    view.data = (void *)data;
    int64_t n = sfp_tensor_numel(want), bad = 0, worst_at = -1;
    double worst = 0.0;
    bool is_float = want->dtype == SFP_DT_FLOAT || want->dtype == SFP_DT_DOUBLE;
    for (int64_t i = 0; i < n; i++) {
        double a = elem_double(&view, i), b = elem_double(want, i);
        bool ok;
        double diff = 0.0;
        if (!is_float) {
            ok = sfp_tensor_get_int(&view, i) == sfp_tensor_get_int(want, i);
            diff = ok ? 0.0 : fabs(a - b);
        } else if (isnan(b) || isnan(a)) {
            ok = isnan(a) && isnan(b);
            diff = ok ? 0.0 : HUGE_VAL;
        } else if (isinf(b) || isinf(a)) {
            ok = a == b;
            diff = ok ? 0.0 : HUGE_VAL;
        } else {
            diff = fabs(a - b);
            ok = diff <= TOL * fmax(1.0, fabs(b));
        }
        if (!ok) bad++;
        if (!ok && (worst_at < 0 || diff > worst)) {
            worst = diff;
            worst_at = i;
        }
    }
    if (bad == 0) return 0;
    printf("  FAIL %s: %lld of %lld elements off, max error %g at %lld (got %g, expected %g)\n", label,
           (long long)bad, (long long)n, worst, (long long)worst_at, elem_double(&view, worst_at),
           elem_double(want, worst_at));
    return -1;
}

/* Copies src into dst (size bytes), truncating. */
static void set_text(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size) n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

typedef enum outcome { CASE_PASS, CASE_FAIL, CASE_SKIP } outcome_t;

/* Gives the int64 graph inputs their test values as initializers: shapes are
 * static per plan, so the int64 lists that set them (Reshape targets, Slice
 * bounds, Pad pads, axes) must be known when planning, as they are in
 * exported models (initializers or Shape computations). */
static void bind_int64_inputs(sfp_model_t *m, sfp_tensor_t **in, int n_in, bool *bound_mask)
{
    sfp_graph_t *g = &m->graph;
    sfp_error_t err = {0};
    for (int i = 0, k = 0; i < g->n_inputs && k < n_in; i++) {
        int id = g->inputs[i];
        if (g->values[id].init) continue;
        if (in[k]->dtype == SFP_DT_INT64) {
            sfp_tensor_t *t = NULL;
            assert_int_equal(sfp_tensor_clone(in[k], &t, &err), 0);
            assert_int_equal(graph_set_init(g, id, t, &err), 0);
            bound_mask[id] = true;
        }
        k++;
    }
}

/* model.onnx loaded as every command loads it (sfp_model_load: validated, batch
 * made free where the model allows it), or only decoded and validated when
 * sfp_model_load refuses it as unsupported; a skip fills reason. */
static outcome_t load_model(const char *case_dir, sfp_model_t **out, char *reason, size_t reason_size)
{
    char model_path[2048];
    uint8_t *buf = NULL;
    size_t len = 0;
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    snprintf(model_path, sizeof model_path, "%s/model.onnx", case_dir);
    int rc = sfp_read_file(model_path, (size_t)1 << 30, &buf, &len, &err);
    if (rc == 0) rc = sfp_model_load_bytes(buf, len, model_path, &m, &err);
    if (rc == SFP_EUNSUPPORTED) { /* e.g. a Reshape target given as an input: bound later, see run_set */
        rc = onnx_decode_model(buf, len, model_path, &m, &err);
        if (rc == 0) rc = model_validate(m, &err);
    }
    free(buf);
    if (rc == 0) {
        *out = m;
        return CASE_PASS;
    }
    sfp_model_free(m);
    if (rc == SFP_EUNSUPPORTED) {
        const char *cut = strstr(err.msg, "model.onnx: ");
        set_text(reason, reason_size, cut ? cut + 12 : err.msg);
        return CASE_SKIP;
    }
    printf("  FAIL %s: %s\n", case_dir, err.msg);
    return CASE_FAIL;
}

/* One test_data_set folder. *reason is set on a skip. */
static outcome_t run_set(const char *case_dir, const char *set_dir, char *reason, size_t reason_size)
{
    sfp_error_t err = {0};
    sfp_tensor_t *in[MAX_IO] = {0}, *want[MAX_IO] = {0};
    int n_in = 0, n_want = 0;
    outcome_t result = CASE_FAIL;
    sfp_model_t *m = NULL;
    sfp_plan_t *plan = NULL;
    bool bound = false, *bound_mask = NULL;
    outcome_t loaded = load_model(case_dir, &m, reason, reason_size);
    if (loaded != CASE_PASS) return loaded;
    n_in = load_set(set_dir, "input", in, MAX_IO, &err);
    if (n_in >= 0) n_want = load_set(set_dir, "output", want, MAX_IO, &err);
    if ((n_in < 0 || n_want < 0) && err.code == SFP_EUNSUPPORTED) {
        const char *cut = strstr(err.msg, ".pb: ");
        set_text(reason, reason_size, cut ? cut + 5 : err.msg);
        result = CASE_SKIP;
        goto done;
    }
    if (n_in < 0 || n_want < 0) {
        printf("  FAIL %s: %s\n", set_dir, err.msg);
        goto done;
    }
    for (int i = 0; i < n_in; i++)
        if (in[i]->dtype != SFP_DT_FLOAT && in[i]->dtype != SFP_DT_INT64) {
            snprintf(reason, reason_size, "input of type %s (only float32 and int64 inputs are run)",
                     sfp_dtype_name(in[i]->dtype));
            result = CASE_SKIP;
            goto done;
        }
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = 0;
        if (attempt == 1) { /* a fresh copy with the int64 inputs bound */
            sfp_model_free(m);
            m = NULL;
            if (load_model(case_dir, &m, reason, reason_size) != CASE_PASS) goto done;
            bound_mask = calloc((size_t)m->graph.n_values + 1, sizeof *bound_mask);
            assert_non_null(bound_mask);
            bind_int64_inputs(m, in, n_in, bound_mask);
            bound = true;
        }
        int64_t batch = 0;
        int first = -1;
        for (int i = 0; first < 0 && i < m->graph.n_inputs; i++)
            if (!m->graph.values[m->graph.inputs[i]].init) first = m->graph.inputs[i];
        if (first >= 0 && m->graph.values[first].decl.rank > 0 && m->graph.values[first].decl.dims[0] < 0 &&
            n_in > 0 && in[0]->ndim > 0)
            batch = in[0]->dims[0];
        rc = plan_create(m, batch, 0, 2, &plan, &err);
        if (rc == 0) break;
        if (rc != SFP_EUNSUPPORTED) {
            printf("  FAIL %s: %s\n", case_dir, err.msg);
            goto done;
        }
        if (attempt == 1) {
            const char *cut = strstr(err.msg, "model.onnx: ");
            set_text(reason, reason_size, cut ? cut + 12 : err.msg);
            result = CASE_SKIP;
            goto done;
        }
    }
    if (plan_n_inputs(plan) > n_in || plan_n_outputs(plan) != n_want) {
        printf("  FAIL %s: the plan has %d inputs and %d outputs, the data set %d and %d\n", set_dir,
               plan_n_inputs(plan), plan_n_outputs(plan), n_in, n_want);
        goto done;
    }
    const void *data[MAX_IO] = {0};
    for (int i = 0; i < plan_n_inputs(plan); i++) {
        /* input_K.pb belongs to the K-th graph input without an initializer in
         * the file (bound int64 inputs have one now, so count them too) */
        int k = -1, id = plan_input_value(plan, i);
        for (int j = 0, seen = 0; j < m->graph.n_inputs; j++) {
            int v = m->graph.inputs[j];
            if (m->graph.values[v].init && !(bound && bound_mask[v])) continue;
            if (v == id) k = seen;
            seen++;
        }
        const sfp_shape_t *s = plan_input_shape(plan, i);
        bool same = k >= 0 && k < n_in && s->dtype == in[k]->dtype && s->ndim == in[k]->ndim;
        for (int d = 0; same && d < s->ndim; d++) same = s->dims[d] == in[k]->dims[d];
        if (!same) {
            printf("  FAIL %s: input %d does not match the plan's input shape\n", set_dir, i);
            goto done;
        }
        data[i] = in[k]->data;
    }
    if (plan_run(plan, data, &err) < 0) {
        printf("  FAIL %s: %s\n", set_dir, err.msg);
        goto done;
    }
    result = CASE_PASS;
    for (int i = 0; i < n_want; i++) {
        char label[4096];
        snprintf(label, sizeof label, "%s output %d ('%s')", set_dir, i,
                 m->graph.values[plan_output_value(plan, i)].name);
        if (compare(label, want[i], plan_output_shape(plan, i), plan_output(plan, i)) < 0) result = CASE_FAIL;
    }
done:
    free(bound_mask);
    plan_free(plan);
    sfp_model_free(m);
    free_set(in, n_in > 0 ? n_in : 0);
    free_set(want, n_want > 0 ? n_want : 0);
    return result;
}

static void run_root(const char *sub)
{
    char root[512];
    char *cases[2048];
    const char *filter = getenv("SFP_CONFORMANCE_FILTER");
    int failed_before = stats.failed;
    snprintf(root, sizeof root, "%s/%s", DATA_ROOT, sub);
    int n = list_dir(root, "test_", cases, 2048);
    if (n == 0) {
        print_message("no test folders under %s (package libonnx-testdata)\n", root);
        fail();
    }
    for (int c = 0; c < n; c++) {
        if (filter && !strstr(cases[c], filter)) {
            free(cases[c]);
            continue;
        }
        char case_dir[1024];
        char *sets[64];
        snprintf(case_dir, sizeof case_dir, "%s/%s", root, cases[c]);
        int n_sets = list_dir(case_dir, "test_data_set_", sets, 64);
        outcome_t outcome = CASE_PASS;
        char reason[512] = "";
        for (int s = 0; s < n_sets; s++) {
            char set_dir[1280];
            snprintf(set_dir, sizeof set_dir, "%s/%s", case_dir, sets[s]);
            outcome_t o = outcome == CASE_SKIP ? CASE_SKIP : run_set(case_dir, set_dir, reason, sizeof reason);
            if (o == CASE_FAIL) outcome = CASE_FAIL;
            if (o == CASE_SKIP && outcome != CASE_FAIL) outcome = CASE_SKIP;
            free(sets[s]);
        }
        stats.cases++;
        if (getenv("SFP_CONFORMANCE_VERBOSE"))
            printf("  %s %s/%s%s%s\n", outcome == CASE_PASS ? "pass" : outcome == CASE_SKIP ? "skip" : "FAIL", sub,
                   cases[c], outcome == CASE_SKIP ? ": " : "", outcome == CASE_SKIP ? reason : "");
        if (outcome == CASE_SKIP) {
            add_reason(reason);
        } else {
            stats.ran++;
            if (outcome == CASE_PASS) stats.passed++;
            else {
                stats.failed++;
                printf("  FAILED CASE %s/%s\n", sub, cases[c]);
            }
        }
        free(cases[c]);
    }
    if (stats.failed > failed_before) fail_msg("%d supported cases of %s failed", stats.failed - failed_before, sub);
}

static void test_node_cases_match_onnx_outputs(void **state)
{
    (void)state;
    run_root("node");
}

static void test_pytorch_converted_cases_match(void **state)
{
    (void)state;
    run_root("pytorch-converted");
}

static void test_pytorch_operator_cases_match(void **state)
{
    (void)state;
    run_root("pytorch-operator");
}

static int print_summary(void **state)
{
    (void)state;
    printf("conformance: %d cases, %d ran, %d passed, %d failed, %d skipped\n", stats.cases, stats.ran, stats.passed,
           stats.failed, stats.skipped);
    qsort(stats.reasons, (size_t)stats.n_reasons, sizeof stats.reasons[0], cmp_reason);
    printf("skip reasons (%d kinds):\n", stats.n_reasons);
    for (int i = 0; i < stats.n_reasons; i++) printf("  %4d  %s\n", stats.reasons[i].count, stats.reasons[i].text);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_cases_match_onnx_outputs),
        cmocka_unit_test(test_pytorch_converted_cases_match),
        cmocka_unit_test(test_pytorch_operator_cases_match),
    };
    return cmocka_run_group_tests(tests, NULL, print_summary);
}
