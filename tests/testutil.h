/* Shared helpers of the CMocka unit tests: small models built through the IR
 * API, checks of error codes and messages, temporary folders. Header-only
 * (static inline) because the Makefile links each tests/test_*.c alone with
 * the library; a helper that fails ends the current test with its location. */
#ifndef SFP_TESTUTIL_H
#define SFP_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"
#include "onnx/onnx.h"

/* Ends the test when call (an expression returning 0 or SFP_E*) fails,
 * printing the library's message from err. */
#define TU_OK(err, call)                                                                          \
    do {                                                                                          \
        int tu_rc_ = (call);                                                                      \
        if (tu_rc_ != 0) {                                                                        \
            print_error("%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #call, tu_rc_,         \
                        (err)->msg);                                                              \
            _fail(__FILE__, __LINE__);                                                            \
        }                                                                                         \
    } while (0)

/* True when msg holds no byte below 0x20 and no DEL (one printable line). */
static inline int tu_msg_is_clean(const char *msg)
{
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return 0;
    return 1;
}

/* True when the decimal number appears in msg as a whole token (not inside a
 * longer number). */
static inline int tu_msg_has_number(const char *msg, long long number)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", number);
    size_t n = strlen(digits);
    for (const char *p = strstr(msg, digits); p; p = strstr(p + 1, digits)) {
        int before = p > msg && p[-1] >= '0' && p[-1] <= '9';
        int after = p[n] >= '0' && p[n] <= '9';
        if (!before && !after) return 1;
    }
    return 0;
}

/* rc and err->code must equal code, err->msg must contain every string of
 * the NULL-terminated list and be one clean line. Use TU_EXPECT_ERR. */
static inline void tu_expect_err_(int rc, const sfp_error_t *err, int code, const char *file, int line, ...)
{
    if (rc != code || err->code != code) {
        print_error("%s:%d: expected code %d, got rc %d (err.code %d): %s\n", file, line, code, rc, err->code,
                    err->msg);
        _fail(file, line);
    }
    va_list ap;
    va_start(ap, line);
    for (const char *want = va_arg(ap, const char *); want; want = va_arg(ap, const char *))
        if (!strstr(err->msg, want)) {
            va_end(ap);
            print_error("%s:%d: message lacks \"%s\": %s\n", file, line, want, err->msg);
            _fail(file, line);
        }
    va_end(ap);
    if (!tu_msg_is_clean(err->msg)) {
        print_error("%s:%d: message holds control bytes\n", file, line);
        _fail(file, line);
    }
}
#define TU_EXPECT_ERR(rc, err, code, ...) tu_expect_err_((rc), (err), (code), __FILE__, __LINE__, __VA_ARGS__, (const char *)NULL)

/* ---- model building (each helper ends the test on failure) ---- */

/* Empty model: ir_version 8, default-domain opset, producer "sfp-tests". */
static inline sfp_model_t *tu_model(int64_t opset)
{
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    TU_OK(&err, model_create(&m, &err));
    m->ir_version = 8;
    m->opsets = calloc(1, sizeof *m->opsets);
    assert_non_null(m->opsets);
    m->opsets[0].domain = strdup("");
    m->opsets[0].version = opset;
    m->n_opsets = 1;
    m->producer_name = strdup("sfp-tests");
    m->graph.name = strdup("test_graph");
    return m;
}

/* Value id of name, added when missing. */
static inline int tu_val(sfp_model_t *m, const char *name)
{
    sfp_error_t err = {0};
    int id = -1;
    TU_OK(&err, graph_value(&m->graph, name, &id, &err));
    return id;
}

/* Declared type of value name: dims[i] < 0 is unknown; dim 0 < 0 is named "N". */
static inline void tu_declare(sfp_model_t *m, const char *name, sfp_dtype_t dt, int rank, const int64_t *dims)
{
    sfp_value_t *v = &m->graph.values[tu_val(m, name)];
    v->decl.dtype = dt;
    v->decl.rank = rank;
    for (int i = 0; i < rank; i++) {
        v->decl.dims[i] = dims[i] < 0 ? -1 : dims[i];
        free(v->decl.params[i]);
        v->decl.params[i] = i == 0 && dims[i] < 0 ? strdup("N") : NULL;
    }
}

/* Graph input with a declared type; returns its value id. */
static inline int tu_input(sfp_model_t *m, const char *name, sfp_dtype_t dt, int rank, const int64_t *dims)
{
    sfp_error_t err = {0};
    int id = tu_val(m, name);
    tu_declare(m, name, dt, rank, dims);
    TU_OK(&err, graph_add_input(&m->graph, id, &err));
    return id;
}

static inline int tu_output(sfp_model_t *m, const char *name)
{
    sfp_error_t err = {0};
    int id = tu_val(m, name);
    TU_OK(&err, graph_add_output(&m->graph, id, &err));
    return id;
}

/* Initializer of any type; data (nbytes of the tensor, may be NULL = zeros). */
static inline int tu_init(sfp_model_t *m, const char *name, sfp_dtype_t dt, int ndim, const int64_t *dims,
                          const void *data)
{
    sfp_error_t err = {0};
    sfp_tensor_t *t = NULL;
    TU_OK(&err, sfp_tensor_create(name, dt, ndim, dims, &t, &err));
    if (data && t->nbytes) memcpy(t->data, data, t->nbytes);
    int id = tu_val(m, name);
    TU_OK(&err, graph_set_init(&m->graph, id, t, &err));
    return id;
}

/* float32 initializer filled with a fixed pseudo-random pattern in [-1, 1)
 * (seeded by seed) when data is NULL. */
static inline int tu_init_f32(sfp_model_t *m, const char *name, int ndim, const int64_t *dims, const float *data,
                              uint32_t seed)
{
    int id = tu_init(m, name, SFP_DT_FLOAT, ndim, dims, data);
    if (!data) {
        sfp_tensor_t *t = m->graph.values[id].init;
        float *p = t->data;
        uint32_t s = seed * 2654435761u + 12345u;
        for (size_t i = 0; i < t->nbytes / sizeof(float); i++) {
            s = s * 1664525u + 1013904223u;
            p[i] = (float)(s >> 8) / (float)(1u << 23) - 1.0f;
        }
    }
    return id;
}

static inline int tu_init_i64(sfp_model_t *m, const char *name, int64_t count, const int64_t *values)
{
    return tu_init(m, name, SFP_DT_INT64, 1, &count, values);
}

/* Appends a node. ins/outs: comma-separated value names, an empty entry is an
 * omitted input ("x,,b"), "" is no input at all. Returns the node, valid until
 * the next node is added. */
static inline sfp_node_t *tu_node(sfp_model_t *m, const char *op, const char *name, const char *ins,
                                  const char *outs)
{
    sfp_error_t err = {0};
    int ids[2][64];
    int counts[2] = {0, 0};
    const char *lists[2] = {ins, outs};
    for (int l = 0; l < 2; l++) {
        const char *p = lists[l];
        if (!*p) continue;
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char one[256];
            assert_true(len < sizeof one && counts[l] < 64);
            memcpy(one, p, len);
            one[len] = '\0';
            ids[l][counts[l]++] = len ? tu_val(m, one) : -1;
            if (!comma) break;
            p = comma + 1;
        }
    }
    int nid = -1;
    TU_OK(&err, graph_add_node(&m->graph, op, name, counts[0], ids[0], counts[1], ids[1], &nid, &err));
    return &m->graph.nodes[nid];
}

static inline void tu_attr_int(sfp_node_t *n, const char *name, int64_t v)
{
    sfp_error_t err = {0};
    TU_OK(&err, node_set_attr_int(n, name, v, &err));
}

static inline void tu_attr_ints(sfp_node_t *n, const char *name, size_t count, const int64_t *v)
{
    sfp_error_t err = {0};
    TU_OK(&err, node_set_attr_ints(n, name, v, count, &err));
}

static inline void tu_attr_float(sfp_node_t *n, const char *name, float v)
{
    sfp_error_t err = {0};
    TU_OK(&err, node_set_attr_float(n, name, v, &err));
}

static inline void tu_attr_string(sfp_node_t *n, const char *name, const char *v)
{
    sfp_error_t err = {0};
    TU_OK(&err, node_set_attr_string(n, name, v, &err));
}

/* Conv "name" (k x k, stride 1, same padding) from in to out with weight
 * "name.weight" (cout, cin, k, k) filled by tu_init_f32(seed), and with a bias
 * "name.bias" (seed + 1) when bias is true. */
static inline void tu_conv_b(sfp_model_t *m, const char *name, const char *in, const char *out, int64_t cin,
                             int64_t cout, int64_t k, uint32_t seed, int bias)
{
    char w[128], b[128], ins[400];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    int64_t dims[4] = {cout, cin, k, k};
    tu_init_f32(m, w, 4, dims, NULL, seed);
    if (bias) tu_init_f32(m, b, 1, &cout, NULL, seed + 1);
    snprintf(ins, sizeof ins, "%s,%s%s%s", in, w, bias ? "," : "", bias ? b : "");
    sfp_node_t *n = tu_node(m, "Conv", name, ins, out);
    int64_t pads[4] = {k / 2, k / 2, k / 2, k / 2};
    tu_attr_ints(n, "pads", 4, pads);
}

static inline void tu_conv(sfp_model_t *m, const char *name, const char *in, const char *out, int64_t cin,
                           int64_t cout, int64_t k, uint32_t seed)
{
    tu_conv_b(m, name, in, out, cin, cout, k, seed, 0);
}

/* BatchNormalization "name" over c channels with "name.weight/bias/mean/var"
 * (pseudo-random; var in [0.5, 1.5)). */
static inline void tu_bn(sfp_model_t *m, const char *name, const char *in, const char *out, int64_t c)
{
    char p[4][128], ins[600];
    const char *suffix[4] = {"weight", "bias", "mean", "var"};
    for (int i = 0; i < 4; i++) {
        snprintf(p[i], sizeof p[i], "%s.%s", name, suffix[i]);
        int id = tu_init_f32(m, p[i], 1, &c, NULL, (uint32_t)(i + 7));
        if (i == 3) {
            float *v = m->graph.values[id].init->data;
            for (int64_t j = 0; j < c; j++) v[j] = 1.0f + 0.5f * v[j];
        }
    }
    snprintf(ins, sizeof ins, "%s,%s,%s,%s,%s", in, p[0], p[1], p[2], p[3]);
    tu_node(m, "BatchNormalization", name, ins, out);
}

/* The small residual network several suites run (kernels, gradients, the
 * training step): conv1 (3x3, pad 1, width channels) - bn1 - relu1 - conv2
 * (3x3, pad 1) [- bn2] - add (the shortcut: relu1's output, or the input
 * itself with from_input) - relu2 [- 3x3/2 MaxPool] - GlobalAveragePool -
 * Flatten - fc (Gemm, transB) -> "logits" [and "prob" = Softmax(logits),
 * listed first]. Initializers in this order, pseudo-random with seeds 1, 2...:
 * w1, w2, g1, b1, m1, v1, [g2, b2, m2, v2,] fc_w, fc_b; gammas 1 + 0.1 *
 * (i % 4 - 1), variances 0.5 + 0.1 * i. Validated, not yet inferred. */
typedef struct tu_resnet_spec {
    int64_t batch;    /* -1: symbolic */
    int64_t in_c, hw; /* input channels, height = width */
    int64_t width;    /* conv channels (== in_c with from_input) */
    int64_t classes;
    bool bn2, from_input, maxpool, softmax;
} tu_resnet_spec_t;

static inline void tu_bn_params(sfp_model_t *m, int k, int64_t c, uint32_t *seed)
{
    char name[4][8];
    float gamma[64], var[64];
    assert_true(c <= 64);
    for (int64_t i = 0; i < c; i++) {
        gamma[i] = 1.0f + 0.1f * (float)(i % 4 - 1);
        var[i] = 0.5f + 0.1f * (float)i;
    }
    snprintf(name[0], sizeof name[0], "g%d", k);
    snprintf(name[1], sizeof name[1], "b%d", k);
    snprintf(name[2], sizeof name[2], "m%d", k);
    snprintf(name[3], sizeof name[3], "v%d", k);
    tu_init_f32(m, name[0], 1, &c, gamma, 0);
    tu_init_f32(m, name[1], 1, &c, NULL, (*seed)++);
    tu_init_f32(m, name[2], 1, &c, NULL, (*seed)++);
    tu_init_f32(m, name[3], 1, &c, var, 0);
}

static inline sfp_model_t *tu_small_resnet(const tu_resnet_spec_t *s)
{
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    const int64_t x_dims[4] = {s->batch, s->in_c, s->hw, s->hw}, w1[4] = {s->width, s->in_c, 3, 3};
    const int64_t w2[4] = {s->width, s->width, 3, 3}, fc[2] = {s->classes, s->width};
    const int64_t pads[4] = {1, 1, 1, 1};
    uint32_t seed = 1;
    tu_input(m, "x", SFP_DT_FLOAT, 4, x_dims);
    tu_init_f32(m, "w1", 4, w1, NULL, seed++);
    tu_init_f32(m, "w2", 4, w2, NULL, seed++);
    tu_bn_params(m, 1, s->width, &seed);
    if (s->bn2) tu_bn_params(m, 2, s->width, &seed);
    tu_init_f32(m, "fc_w", 2, fc, NULL, seed++);
    tu_init_f32(m, "fc_b", 1, &s->classes, NULL, seed++);
    tu_attr_ints(tu_node(m, "Conv", "conv1", "x,w1", "c1"), "pads", 4, pads);
    tu_node(m, "BatchNormalization", "bn1", "c1,g1,b1,m1,v1", "n1");
    tu_node(m, "Relu", "relu1", "n1", "r1");
    tu_attr_ints(tu_node(m, "Conv", "conv2", "r1,w2", "c2"), "pads", 4, pads);
    if (s->bn2) tu_node(m, "BatchNormalization", "bn2", "c2,g2,b2,m2,v2", "n2");
    tu_node(m, "Add", "add", s->bn2 ? (s->from_input ? "n2,x" : "n2,r1") : (s->from_input ? "c2,x" : "c2,r1"), "s");
    tu_node(m, "Relu", "relu2", "s", "r2");
    if (s->maxpool) {
        sfp_node_t *n = tu_node(m, "MaxPool", "pool", "r2", "p");
        tu_attr_ints(n, "kernel_shape", 2, (const int64_t[]){3, 3});
        tu_attr_ints(n, "strides", 2, (const int64_t[]){2, 2});
        tu_attr_ints(n, "pads", 4, pads);
    }
    tu_node(m, "GlobalAveragePool", "gap", s->maxpool ? "p" : "r2", "gp");
    tu_node(m, "Flatten", "flat", "gp", "f");
    tu_attr_int(tu_node(m, "Gemm", "fc", "f,fc_w,fc_b", "logits"), "transB", 1);
    if (s->softmax) {
        tu_node(m, "Softmax", "softmax", "logits", "prob");
        tu_output(m, "prob");
    }
    tu_output(m, "logits");
    TU_OK(&err, model_validate(m, &err));
    return m;
}

/* The inferred value of name (fails the test when absent). */
static inline const sfp_value_t *tu_value(const sfp_model_t *m, const char *name)
{
    int id = graph_find_value(&m->graph, name);
    if (id < 0) {
        print_error("no value named '%s'\n", name);
        fail();
    }
    return &m->graph.values[id];
}

/* Inferred shape of name must be exactly dims (rank ndim). */
static inline void tu_expect_shape_(const sfp_model_t *m, const char *name, int ndim, const int64_t *dims,
                                    const char *file, int line)
{
    const sfp_value_t *v = tu_value(m, name);
    int same = v->ndim == ndim;
    for (int k = 0; same && k < ndim; k++) same = v->dims[k] == dims[k];
    if (same) return;
    char got[256] = "", want[256] = "";
    size_t o = 0;
    for (int k = 0; k < v->ndim && o < 200; k++) o += (size_t)snprintf(got + o, sizeof got - o, " %lld", (long long)v->dims[k]);
    o = 0;
    for (int k = 0; k < ndim && o < 200; k++) o += (size_t)snprintf(want + o, sizeof want - o, " %lld", (long long)dims[k]);
    print_error("%s:%d: value '%s' has shape [%s ] (rank %d), expected [%s ]\n", file, line, name, got, v->ndim,
                want);
    _fail(file, line);
}
#define TU_EXPECT_SHAPE(m, name, ...)                                                              \
    do {                                                                                           \
        const int64_t tu_dims_[] = {__VA_ARGS__};                                                  \
        tu_expect_shape_((m), (name), (int)(sizeof tu_dims_ / sizeof tu_dims_[0]), tu_dims_,       \
                         __FILE__, __LINE__);                                                      \
    } while (0)

/* ---- files ---- */

static inline int tu_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes a folder and everything in it (symlinks are not followed). */
static inline void tu_rm_rf(const char *dir)
{
    nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Folders made by tu_tmpdir, removed by tu_cleanup_tmpdirs even when a test
 * failed halfway. */
static char tu_tmpdirs_[64][64];
static int tu_n_tmpdirs_;

/* New empty folder under /tmp; path written into buf (at least 32 bytes). */
static inline void tu_tmpdir(char *buf, size_t size)
{
    snprintf(buf, size, "/tmp/sfp-test-XXXXXX");
    assert_non_null(mkdtemp(buf));
    if (tu_n_tmpdirs_ < 64) snprintf(tu_tmpdirs_[tu_n_tmpdirs_++], sizeof tu_tmpdirs_[0], "%s", buf);
}

/* Group teardown: cmocka_run_group_tests(tests, NULL, tu_cleanup_tmpdirs). */
static inline int tu_cleanup_tmpdirs(void **state)
{
    (void)state;
    for (int i = 0; i < tu_n_tmpdirs_; i++) tu_rm_rf(tu_tmpdirs_[i]);
    tu_n_tmpdirs_ = 0;
    return 0;
}

static inline void tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Whole file into a malloc'ed buffer; NULL when it cannot be read. */
static inline uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        cap *= 2;
        buf = realloc(buf, cap);
        assert_non_null(buf);
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Deterministic generator for fuzz-style loops (xorshift32, never 0). */
static inline uint32_t tu_rand(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

/* n floats in [lo, hi] from tu_rand (malloc'd; the test frees them). */
static inline float *tu_uniform(uint32_t *seed, int64_t n, float lo, float hi)
{
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (float)(tu_rand(seed) % 100001) / 100000.0f;
    return p;
}

/* |a - b| <= tol in double, with the figures in the failure message. */
#define TU_EXPECT_NEAR(a, b, tol)                                                                   \
    do {                                                                                            \
        double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);                              \
        if (!(fabs(a_ - b_) <= t_)) fail_msg("%s = %.9g, expected %.9g (tolerance %g)", #a, a_, b_, t_); \
    } while (0)

#endif
