/* Pruning schedules (src/prune/schedule.c) and channel scaling
 * (surgery_scale): which channels each method chooses, what it does to the
 * weights at epoch boundaries and after each step, that a run resumed from
 * weights continues exactly, and what pruner_finish hands to surgery. No
 * training here: "SGD" is either nothing or a fixed perturbation, so every
 * expected weight is known. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include <math.h>

#include "testutil.h"

#include "arch/arch.h"
#include "onnxsfp/compress.h"
#include "onnxsfp/report.h"
#include "prune/prune.h"
#include "surgery/surgery.h"
#include "train/plan.h"

/* x -> conv0 (3 -> 8, 3x3, bias) -> bn0 -> Add(add0.c [8,1,1]) -> Relu -> GAP
 * -> Flatten -> fc1 (Gemm transB, 6, bias) -> Relu -> fc2 (Gemm, 2) -> y.
 * Groups: conv0's 8 channels (one source, 27-element filters) and fc1's 6. */
static sfp_model_t *small_model(void)
{
    sfp_error_t err = {0};
    sfp_model_t *m = tu_model(13);
    int64_t in[4] = {-1, 3, 6, 6}, cd[3] = {8, 1, 1}, w1[2] = {6, 8}, b1 = 6, w2[2] = {2, 6};
    tu_input(m, "x", SFP_DT_FLOAT, 4, in);
    tu_conv_b(m, "conv0", "x", "c0", 3, 8, 3, 1, 1);
    tu_bn(m, "bn0", "c0", "b0", 8);
    tu_init_f32(m, "add0.c", 3, cd, NULL, 21);
    tu_node(m, "Add", "add0", "b0,add0.c", "a0");
    tu_node(m, "Relu", "relu0", "a0", "s0");
    tu_node(m, "GlobalAveragePool", "gap", "s0", "g");
    tu_node(m, "Flatten", "flat", "g", "f");
    tu_init_f32(m, "fc1.weight", 2, w1, NULL, 22);
    tu_init_f32(m, "fc1.bias", 1, &b1, NULL, 23);
    tu_attr_int(tu_node(m, "Gemm", "fc1", "f,fc1.weight,fc1.bias", "h"), "transB", 1);
    tu_node(m, "Relu", "relu1", "h", "hr");
    tu_init_f32(m, "fc2.weight", 2, w2, NULL, 24);
    tu_attr_int(tu_node(m, "Gemm", "fc2", "hr,fc2.weight", "y"), "transB", 1);
    tu_output(m, "y");
    TU_OK(&err, model_validate(m, &err));
    TU_OK(&err, model_infer_shapes(m, 1, &err));
    return m;
}

static float *data_of(const sfp_model_t *m, const char *name)
{
    int id = graph_find_value(&m->graph, name);
    if (id < 0 || !m->graph.values[id].init) fail_msg("no initializer '%s'", name);
    return m->graph.values[id].init->data;
}

/* The group holding value `value` (by name). */
static int group_with(const sfp_groups_t *gs, const sfp_model_t *m, const char *value)
{
    int v = graph_find_value(&m->graph, value);
    for (int gi = 0; gi < gs->n; gi++)
        for (int k = 0; k < gs->g[gi].n_values; k++)
            if (gs->g[gi].values[k] == v) return gi;
    fail_msg("no group holds '%s'", value);
    return -1;
}

/* Every element of conv0's filter j set to v: its L2 norm is |v| sqrt(27). */
static void set_filter(sfp_model_t *m, int j, float v)
{
    float *w = data_of(m, "conv0.weight");
    for (int e = 0; e < 27; e++) w[j * 27 + e] = v;
}

static sfp_model_t *clone(const sfp_model_t *m)
{
    sfp_error_t err = {0};
    sfp_model_t *copy = NULL;
    TU_OK(&err, sfp_model_clone(m, &copy, &err));
    return copy;
}

/* Elements of all initializers of m that differ (bitwise) from orig's. */
static int64_t count_changed(const sfp_model_t *m, const sfp_model_t *orig)
{
    int64_t changed = 0;
    for (int v = 0; v < m->graph.n_values; v++) {
        const sfp_tensor_t *t = m->graph.values[v].init;
        if (!t || t->dtype != SFP_DT_FLOAT) continue;
        const float *a = t->data, *b = data_of(orig, m->graph.values[v].name);
        for (int64_t i = 0; i < sfp_tensor_numel(t); i++) changed += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    }
    return changed;
}

/* Row j (axis 0) of initializer name must be orig's times factor: within 1e-6
 * relative (a few float roundings of the per-step ratios and products, each
 * at most 6e-8), and exactly +0 when factor is 0. */
static void expect_row(const sfp_model_t *m, const sfp_model_t *orig, const char *name, int j, double factor)
{
    const sfp_tensor_t *t = m->graph.values[graph_find_value(&m->graph, name)].init;
    int64_t inner = sfp_tensor_numel(t) / t->dims[0];
    const float *got = data_of(m, name) + j * inner, *was = data_of(orig, name) + j * inner;
    for (int64_t e = 0; e < inner; e++) {
        if (factor == 0.0) {
            if (got[e] != 0.0f || signbit(got[e])) fail_msg("%s row %d [%lld] = %g, want +0", name, j, (long long)e, (double)got[e]);
            continue;
        }
        double want = (double)was[e] * factor;
        if (fabs((double)got[e] - want) > 1e-6 * fabs(want))
            fail_msg("%s row %d [%lld] = %.9g, want %.9g", name, j, (long long)e, (double)got[e], want);
    }
}

/* Every place conv0's channel j lives in: filter, bias, BN scale and bias,
 * the Add constant (5 rows, 31 elements). */
static const char *const channel_rows[] = {"conv0.weight", "conv0.bias", "bn0.weight", "bn0.bias", "add0.c"};
#define CHANNEL_ELEMENTS 31

static void expect_channel(const sfp_model_t *m, const sfp_model_t *orig, int j, double factor)
{
    for (size_t k = 0; k < sizeof channel_rows / sizeof channel_rows[0]; k++) expect_row(m, orig, channel_rows[k], j, factor);
}

/* Pruner over m's groups (found here; freed by the caller). */
static sfp_pruner_t *pruner(sfp_model_t *m, sfp_groups_t **gs, sfp_prune_method_t method, double rate,
                            double cluster_rate, double decay_fraction, const char *skip, int64_t total_steps)
{
    sfp_error_t err = {0};
    sfp_pruner_t *p = NULL;
    sfp_prune_opts_t o = {method, rate, cluster_rate, decay_fraction, skip, NULL};
    TU_OK(&err, groups_find(m, gs, &err));
    TU_OK(&err, pruner_create(m, *gs, &o, total_steps, &p, &err));
    return p;
}

/* The chosen channels of group gi as a bit set. */
static unsigned chosen_bits(const sfp_pruner_t *p, const sfp_groups_t *gs, int gi)
{
    unsigned bits = 0;
    for (int j = 0; j < gs->g[gi].n_channels; j++)
        if (removal_has_channel(pruner_choice(p), gs, gi, j)) bits |= 1u << j;
    return bits;
}

/* conv0 filter norms proportional to 5 1 3 1 7 2 6 4. */
static void set_known_norms(sfp_model_t *m)
{
    const float v[8] = {5, 1, 3, 1, 7, 2, 6, 4};
    for (int j = 0; j < 8; j++) set_filter(m, j, v[j]);
}

/* small_model with the known norms and a pruner on it that leaves fc1 alone
 * ("fc*"); orig keeps the weights from before the pruner ran. */
typedef struct fixture {
    sfp_model_t *m, *orig;
    sfp_groups_t *gs;
    sfp_pruner_t *p;
    int g0; /* conv0's group */
} fixture_t;

static fixture_t fixture_open(sfp_prune_method_t method, double rate, double decay_fraction, int64_t total_steps)
{
    fixture_t f = {0};
    f.m = small_model();
    set_known_norms(f.m);
    f.orig = clone(f.m);
    f.p = pruner(f.m, &f.gs, method, rate, 0.0, decay_fraction, "fc*", total_steps);
    f.g0 = group_with(f.gs, f.m, "c0");
    return f;
}

static void fixture_close(fixture_t *f)
{
    pruner_free(f->p);
    groups_free(f->gs);
    sfp_model_free(f->orig);
    sfp_model_free(f->m);
}

static void test_surgery_scale_multiplies_rows_biases_bn_and_add_constants(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = small_model(), *orig = clone(m);
    sfp_groups_t *gs = NULL;
    sfp_removal_t *r = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    TU_OK(&err, removal_create(gs, &r, &err));
    int g0 = group_with(gs, m, "c0"), g1 = group_with(gs, m, "h");
    assert_int_equal(gs->g[g0].n_channels, 8);
    assert_int_equal(gs->g[g1].n_channels, 6);
    removal_add_channel(r, gs, g0, 2);
    removal_add_channel(r, gs, g1, 4);
    assert_int_equal(removal_n_channels(r, gs), 2);
    TU_OK(&err, surgery_scale(m, gs, r, 0.5f, &err));
    expect_channel(m, orig, 2, 0.5);
    expect_row(m, orig, "fc1.weight", 4, 0.5); /* transB: output 4 is row 4 */
    expect_row(m, orig, "fc1.bias", 4, 0.5);
    /* nothing else: not BN's statistics, not fc1's input column 2, not fc2 */
    assert_int_equal(count_changed(m, orig), CHANNEL_ELEMENTS + 8 + 1);
    removal_free(r);
    groups_free(gs);
    sfp_model_free(orig);
    sfp_model_free(m);
}

static void test_scale_by_zero_is_surgery_mask(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = small_model(), *a = clone(m), *b = clone(m);
    sfp_model_t *models[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        sfp_groups_t *gs = NULL;
        sfp_removal_t *r = NULL;
        TU_OK(&err, groups_find(models[i], &gs, &err));
        TU_OK(&err, removal_create(gs, &r, &err));
        removal_add_channel(r, gs, group_with(gs, models[i], "c0"), 6);
        removal_add_channel(r, gs, group_with(gs, models[i], "h"), 0);
        if (i == 0) TU_OK(&err, surgery_mask(models[i], gs, r, &err));
        else TU_OK(&err, surgery_scale(models[i], gs, r, 0.0f, &err));
        removal_free(r);
        groups_free(gs);
    }
    assert_int_equal(count_changed(a, b), 0);
    expect_channel(b, m, 6, 0.0);
    expect_row(b, m, "fc1.weight", 0, 0.0);
    assert_int_equal(count_changed(b, m), CHANNEL_ELEMENTS + 8 + 1);
    sfp_model_free(a);
    sfp_model_free(b);
    sfp_model_free(m);
}

static void test_l2_choice_takes_lowest_norms_ties_to_lower_index(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const double rates[3] = {0.125, 0.25, 0.375};
    const unsigned want[3] = {1u << 1, 1u << 1 | 1u << 3, 1u << 1 | 1u << 3 | 1u << 5};
    for (int k = 0; k < 3; k++) {
        fixture_t f = fixture_open(SFP_PRUNE_SMOOTH, rates[k], 0.5, 10);
        TU_OK(&err, pruner_epoch_begin(f.p, 0, 0, &err));
        assert_int_equal(chosen_bits(f.p, f.gs, f.g0), want[k]);
        assert_int_equal(chosen_bits(f.p, f.gs, group_with(f.gs, f.m, "h")), 0); /* skipped: fc1 matches "fc*" */
        assert_int_equal(pruner_n_chosen(f.p), k + 1);
        fixture_close(&f);
    }
}

static void test_sfp_zeroes_at_epoch_end_and_lets_filters_regrow(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    fixture_t f = fixture_open(SFP_PRUNE_SFP, 0.25, 0.0, 4);
    TU_OK(&err, pruner_epoch_begin(f.p, 0, 0, &err)); /* SFP masks once before training */
    assert_int_equal(chosen_bits(f.p, f.gs, f.g0), 1u << 1 | 1u << 3);
    expect_channel(f.m, f.orig, 1, 0.0);
    expect_channel(f.m, f.orig, 3, 0.0);
    assert_int_equal(count_changed(f.m, f.orig), 2 * CHANNEL_ELEMENTS);
    sfp_model_t *masked = clone(f.m);
    for (int64_t s = 0; s < 4; s++) {
        TU_OK(&err, pruner_after_step(f.p, s, &err)); /* sfp: no per-step mask */
        assert_true(pruner_alpha(f.p, s + 1) == 1.0);
    }
    assert_int_equal(count_changed(f.m, masked), 0);
    /* training regrows filters 1 and 3 and shrinks 0 and 5 */
    set_filter(f.m, 1, 8.0f);
    set_filter(f.m, 3, 9.0f);
    set_filter(f.m, 0, 0.5f);
    set_filter(f.m, 5, 0.25f);
    TU_OK(&err, pruner_epoch_end(f.p, 0, &err));
    assert_int_equal(chosen_bits(f.p, f.gs, f.g0), 1u << 0 | 1u << 5);
    expect_channel(f.m, f.orig, 0, 0.0);
    expect_channel(f.m, f.orig, 5, 0.0);
    assert_true(data_of(f.m, "conv0.weight")[1 * 27] == 8.0f); /* regrown, left alone */
    assert_true(data_of(f.m, "conv0.weight")[3 * 27] == 9.0f);
    sfp_model_free(masked);
    fixture_close(&f);
}

static void test_smooth_decays_each_step_to_exact_zero_and_holds_it(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    /* 8 steps, decay over half of them: alpha 1, .75, .5, .25, 0, 0, ... */
    fixture_t f = fixture_open(SFP_PRUNE_SMOOTH, 0.25, 0.5, 8);
    const double alpha[9] = {1, 0.75, 0.5, 0.25, 0, 0, 0, 0, 0};
    TU_OK(&err, pruner_epoch_begin(f.p, 0, 0, &err));
    assert_int_equal(chosen_bits(f.p, f.gs, f.g0), 1u << 1 | 1u << 3);
    assert_int_equal(count_changed(f.m, f.orig), 0); /* choosing alone changes nothing */
    for (int64_t s = 0; s < 8; s++) {
        assert_true(fabs(pruner_alpha(f.p, s) - alpha[s]) < 1e-15);
        if (s == 5) set_filter(f.m, 3, 0.3f); /* a gradient step moved a zeroed filter */
        TU_OK(&err, pruner_after_step(f.p, s, &err));
        expect_channel(f.m, f.orig, 1, alpha[s + 1]);
        expect_channel(f.m, f.orig, 3, alpha[s + 1]);
        assert_int_equal(count_changed(f.m, f.orig), 2 * CHANNEL_ELEMENTS);
    }
    assert_true(pruner_alpha(f.p, 1000) == 0.0);
    fixture_close(&f);
}

static void test_smooth_rechooses_at_epoch_begin_and_a_dropped_channel_stops_decaying(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    fixture_t f = fixture_open(SFP_PRUNE_SMOOTH, 0.125, 1.0, 8); /* alpha(s) = 1 - s/8 */
    TU_OK(&err, pruner_epoch_begin(f.p, 0, 0, &err));
    assert_int_equal(chosen_bits(f.p, f.gs, f.g0), 1u << 1);
    TU_OK(&err, pruner_after_step(f.p, 0, &err));
    TU_OK(&err, pruner_after_step(f.p, 1, &err)); /* filter 1: 1 -> 0.75 */
    set_filter(f.m, 5, 0.1f);                     /* now the smallest */
    sfp_model_t *before = clone(f.m);
    TU_OK(&err, pruner_epoch_begin(f.p, 1, 2, &err));
    assert_int_equal(chosen_bits(f.p, f.gs, f.g0), 1u << 5);
    TU_OK(&err, pruner_after_step(f.p, 2, &err)); /* x alpha(3)/alpha(2) = (5/8)/(6/8) */
    expect_channel(f.m, before, 5, 5.0 / 6.0);
    assert_int_equal(count_changed(f.m, before), CHANNEL_ELEMENTS); /* filter 1 stays at 0.75 */
    assert_true(fabsf(data_of(f.m, "conv0.weight")[27] - 0.75f) < 1e-6f);
    sfp_model_free(before);
    fixture_close(&f);
}

/* A fixed "SGD step": every float initializer moves by a small amount that
 * depends only on the step and the element. */
static void fake_sgd(sfp_model_t *m, int64_t step)
{
    for (int v = 0; v < m->graph.n_values; v++) {
        sfp_tensor_t *t = m->graph.values[v].init;
        if (!t || t->dtype != SFP_DT_FLOAT) continue;
        float *w = t->data;
        for (int64_t i = 0; i < sfp_tensor_numel(t); i++) {
            uint32_t h = (uint32_t)i * 2654435761u ^ (uint32_t)(step + 1) * 40503u;
            w[i] += 0.01f * ((float)(h >> 20 & 1023) / 1023.0f - 0.5f);
        }
    }
}

/* Epochs [first, last) of 4 steps each. */
static void run_epochs(sfp_model_t *m, sfp_pruner_t *p, int64_t first, int64_t last)
{
    sfp_error_t err = {0};
    for (int64_t e = first; e < last; e++) {
        TU_OK(&err, pruner_epoch_begin(p, e, 4 * e, &err));
        for (int64_t s = 4 * e; s < 4 * e + 4; s++) {
            fake_sgd(m, s);
            TU_OK(&err, pruner_after_step(p, s, &err));
        }
        TU_OK(&err, pruner_epoch_end(p, e, &err));
    }
}

/* One training run under test: weights, their groups and a pruner (rate 0.4,
 * cluster 0.2, decay fraction 0.5, 12 steps). */
typedef struct run {
    sfp_model_t *m;
    sfp_groups_t *gs;
    sfp_pruner_t *p;
} run_t;

static run_t run_open(sfp_model_t *m, sfp_prune_method_t method)
{
    run_t r = {m, NULL, NULL};
    r.p = pruner(m, &r.gs, method, 0.4, 0.2, 0.5, NULL, 12);
    return r;
}

static void run_close(run_t *r)
{
    pruner_free(r->p);
    groups_free(r->gs);
    sfp_model_free(r->m);
}

/* The same weights and the same channels chosen. */
static void expect_same_runs(const run_t *a, const run_t *b)
{
    assert_int_equal(count_changed(a->m, b->m), 0);
    assert_int_equal(pruner_n_chosen(a->p), pruner_n_chosen(b->p));
    const char *groups[2] = {"c0", "h"};
    for (int k = 0; k < 2; k++)
        assert_int_equal(chosen_bits(a->p, a->gs, group_with(a->gs, a->m, groups[k])),
                         chosen_bits(b->p, b->gs, group_with(b->gs, b->m, groups[k])));
}

static const sfp_prune_method_t all_methods[3] = {SFP_PRUNE_SFP, SFP_PRUNE_SMOOTH, SFP_PRUNE_HYBRID};

static void test_resume_from_weights_at_an_epoch_boundary_continues_exactly(void **state)
{
    (void)state;
    for (int k = 0; k < 3; k++) {
        run_t a = run_open(small_model(), all_methods[k]);
        run_epochs(a.m, a.p, 0, 1);
        run_t b = run_open(clone(a.m), all_methods[k]); /* the checkpoint: weights + "epoch 1" */
        run_epochs(a.m, a.p, 1, 3);
        run_epochs(b.m, b.p, 1, 3);
        expect_same_runs(&a, &b);
        run_close(&a);
        run_close(&b);
    }
}

/* Mid-epoch the smooth choice cannot be re-derived from the scaled weights:
 * a run resumed with the saved choice continues exactly, and states that do
 * not fit the model (truncated, other group counts, not a state) are refused. */
static void test_resume_mid_epoch_with_the_saved_choice_continues_exactly(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    for (int k = 0; k < 3; k++) {
        run_t a = run_open(small_model(), all_methods[k]);
        run_epochs(a.m, a.p, 0, 1);
        TU_OK(&err, pruner_epoch_begin(a.p, 1, 4, &err));
        for (int64_t s = 4; s < 6; s++) {
            fake_sgd(a.m, s);
            TU_OK(&err, pruner_after_step(a.p, s, &err));
        }
        uint8_t *st = NULL;
        size_t len = 0;
        TU_OK(&err, pruner_save_choice(a.p, &st, &len, &err));
        run_t b = run_open(clone(a.m), all_methods[k]); /* the checkpoint: two steps into epoch 1 */
        assert_int_equal(pruner_load_choice(b.p, st, len - 1, &err), SFP_EBADDATA);
        TU_OK(&err, pruner_load_choice(b.p, st, len, &err));
        for (int64_t s = 6; s < 8; s++) {
            fake_sgd(a.m, s);
            fake_sgd(b.m, s);
            TU_OK(&err, pruner_after_step(a.p, s, &err));
            TU_OK(&err, pruner_after_step(b.p, s, &err));
        }
        TU_OK(&err, pruner_epoch_end(a.p, 1, &err));
        TU_OK(&err, pruner_epoch_end(b.p, 1, &err));
        run_epochs(a.m, a.p, 2, 3);
        run_epochs(b.m, b.p, 2, 3);
        expect_same_runs(&a, &b);
        st[8 + 4] ^= 0x40; /* the group count */
        assert_int_equal(pruner_load_choice(b.p, st, len, &err), SFP_EBADDATA);
        assert_non_null(strstr(err.msg, "channel groups"));
        assert_int_equal(pruner_load_choice(b.p, (const uint8_t *)"garbage", 7, &err), SFP_EBADDATA);
        free(st);
        run_close(&a);
        run_close(&b);
    }
}

/* conv0's filter `copy` := 1.01 x filter `of`; filter 0 made the smallest. */
static sfp_model_t *twin_model(int copy, int of)
{
    sfp_model_t *m = small_model();
    float *w = data_of(m, "conv0.weight");
    for (int e = 0; e < 27; e++) {
        w[copy * 27 + e] = 1.01f * w[of * 27 + e];
        w[e] *= 0.01f;
    }
    return m;
}

static unsigned choose_c0(sfp_model_t *m, sfp_prune_method_t method, double rate, double cluster_rate)
{
    sfp_error_t err = {0};
    sfp_groups_t *gs = NULL;
    sfp_pruner_t *p = pruner(m, &gs, method, rate, cluster_rate, 0.5, "fc*", 10);
    TU_OK(&err, pruner_epoch_begin(p, 0, 0, &err));
    unsigned bits = chosen_bits(p, gs, group_with(gs, m, "c0"));
    pruner_free(p);
    groups_free(gs);
    return bits;
}

static void test_hybrid_chooses_the_smaller_twin_of_a_planted_duplicate(void **state)
{
    (void)state;
    sfp_model_t *m = twin_model(3, 5);
    assert_int_equal(choose_c0(m, SFP_PRUNE_SMOOTH, 0.125, 0.0), 1u << 0);    /* L2 alone: the small filter */
    assert_int_equal(choose_c0(m, SFP_PRUNE_HYBRID, 0.125, 0.125), 1u << 5);  /* redundancy: 5 (3 = 1.01 x 5) */
    assert_int_equal(choose_c0(m, SFP_PRUNE_HYBRID, 0.25, 0.125), 1u << 0 | 1u << 5);
    assert_int_equal(choose_c0(m, SFP_PRUNE_HYBRID, 0.25, 0.0), choose_c0(m, SFP_PRUNE_SMOOTH, 0.25, 0.0));
    assert_int_equal(choose_c0(m, SFP_PRUNE_HYBRID, 0.125, 0.5), 1u << 5); /* cluster part capped at the total */
    sfp_model_free(m);
    m = twin_model(5, 3);
    assert_int_equal(choose_c0(m, SFP_PRUNE_HYBRID, 0.125, 0.125), 1u << 3);
    sfp_model_free(m);
}

static void test_hybrid_chooses_the_same_channels_once_they_are_zero(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = small_model();
    sfp_groups_t *gs = NULL;
    /* 2 steps, decay over 1: zero after the first step */
    sfp_pruner_t *p = pruner(m, &gs, SFP_PRUNE_HYBRID, 0.5, 0.25, 0.5, "fc*", 2);
    int g0 = group_with(gs, m, "c0");
    TU_OK(&err, pruner_epoch_begin(p, 0, 0, &err));
    unsigned first = chosen_bits(p, gs, g0);
    assert_int_equal(__builtin_popcount(first), 4);
    TU_OK(&err, pruner_after_step(p, 0, &err));
    TU_OK(&err, pruner_epoch_begin(p, 1, 1, &err));
    assert_int_equal(chosen_bits(p, gs, g0), first);
    pruner_free(p);
    groups_free(gs);
    sfp_model_free(m);
}

static void test_short_decay_span_zeroes_after_the_first_step(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    fixture_t f = fixture_open(SFP_PRUNE_SMOOTH, 0.125, 0.2, 3); /* 0.6 steps */
    assert_true(pruner_alpha(f.p, 0) == 1.0);
    assert_true(pruner_alpha(f.p, 1) == 0.0);
    TU_OK(&err, pruner_epoch_begin(f.p, 0, 0, &err));
    TU_OK(&err, pruner_after_step(f.p, 0, &err));
    expect_channel(f.m, f.orig, 1, 0.0);
    fixture_close(&f);
}

static sfp_model_t *resnet20(void)
{
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    sfp_arch_opts_t o = {"resnet20", 3, 32, 32, 10, 'A', 1};
    TU_OK(&err, arch_build(&o, &m, &err));
    TU_OK(&err, model_validate(m, &err));
    TU_OK(&err, model_infer_shapes(m, 1, &err));
    return m;
}

static void test_finish_marks_prune_count_per_group_and_leaves_them_zero(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const sfp_prune_method_t methods[3] = {SFP_PRUNE_SFP, SFP_PRUNE_SMOOTH, SFP_PRUNE_HYBRID};
    const char *skip = "layer3.*";
    for (int k = 0; k < 3; k++) {
        sfp_model_t *m = resnet20();
        sfp_groups_t *gs = NULL;
        sfp_removal_t *r = NULL;
        sfp_pruner_t *p = pruner(m, &gs, methods[k], 0.3, 0.1, 0.5, skip, 10);
        TU_OK(&err, removal_create(gs, &r, &err));
        TU_OK(&err, pruner_epoch_begin(p, 0, 0, &err));
        TU_OK(&err, pruner_after_step(p, 0, &err)); /* smooth/hybrid: alpha 0.8, not zero yet */
        int64_t want_total = 0;
        int skipped = 0;
        for (int gi = 0; gi < gs->n; gi++)
            if (!prune_group_skipped(m, gs, gi, skip)) want_total += prune_count(gs->g[gi].n_channels, 0.3);
            else skipped += gs->g[gi].prunable;
        assert_true(want_total > 0 && skipped > 0);
        assert_int_equal(pruner_n_chosen(p), want_total);
        TU_OK(&err, pruner_finish(p, r, &err));
        for (int gi = 0; gi < gs->n; gi++) {
            int marked = 0;
            for (int j = 0; j < gs->g[gi].n_channels; j++) marked += removal_has_channel(r, gs, gi, j);
            assert_int_equal(marked, prune_group_skipped(m, gs, gi, skip) ? 0 : prune_count(gs->g[gi].n_channels, 0.3));
        }
        /* exactly zero already: masking again changes nothing */
        sfp_model_t *before = clone(m);
        TU_OK(&err, surgery_mask(m, gs, r, &err));
        assert_int_equal(count_changed(m, before), 0);
        /* the removal is ready for surgery: fewer MACs; the L2 methods agree with --rate */
        int64_t macs = 0, macs_rate = 0;
        sfp_report_t *rep = NULL;
        TU_OK(&err, sfp_report_build(m, NULL, &rep, &err));
        TU_OK(&err, prune_macs_removed(m, gs, r, &macs, &err));
        assert_true(macs < rep->macs);
        if (methods[k] != SFP_PRUNE_HYBRID) {
            TU_OK(&err, prune_macs_at_rate(m, gs, 0.3, skip, &macs_rate, &err));
            assert_int_equal(macs, macs_rate);
        }
        TU_OK(&err, surgery_apply(m, gs, r, &err));
        /* counted on the graph before removal = counted on the smaller model */
        sfp_report_free(rep);
        rep = NULL;
        TU_OK(&err, sfp_report_build(m, NULL, &rep, &err));
        assert_int_equal(rep->macs, macs);
        sfp_report_free(rep);
        sfp_model_free(before);
        removal_free(r);
        pruner_free(p);
        groups_free(gs);
        sfp_model_free(m);
    }
}

static void test_finish_without_an_epoch_chooses_from_the_weights(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    fixture_t f = fixture_open(SFP_PRUNE_SMOOTH, 0.25, 0.5, 1);
    sfp_removal_t *r = NULL;
    TU_OK(&err, removal_create(f.gs, &r, &err));
    TU_OK(&err, pruner_finish(f.p, r, &err));
    assert_int_equal(removal_n_channels(r, f.gs), 2);
    assert_true(removal_has_channel(r, f.gs, f.g0, 1));
    assert_true(removal_has_channel(r, f.gs, f.g0, 3));
    expect_channel(f.m, f.orig, 1, 0.0);
    expect_channel(f.m, f.orig, 3, 0.0);
    removal_free(r);
    fixture_close(&f);
}

static void test_bad_options_are_usage_errors_naming_the_option(void **state)
{
    (void)state;
    sfp_model_t *m = small_model();
    sfp_groups_t *gs = NULL;
    sfp_error_t err = {0};
    TU_OK(&err, groups_find(m, &gs, &err));
    struct {
        sfp_prune_method_t method;
        double rate, cluster_rate, decay_fraction;
        int64_t steps;
        const char *want;
    } bad[] = {
        {SFP_PRUNE_SMOOTH, 1.0, 0, 0.5, 10, "--rate"},
        {SFP_PRUNE_SMOOTH, -0.1, 0, 0.5, 10, "--rate"},
        {SFP_PRUNE_SFP, NAN, 0, 0.5, 10, "--rate"},
        {SFP_PRUNE_HYBRID, 0.5, 1.0, 0.5, 10, "--cluster-rate"},
        {SFP_PRUNE_HYBRID, 0.5, -0.5, 0.5, 10, "--cluster-rate"},
        {SFP_PRUNE_SMOOTH, 0.5, 0, 0.0, 10, "--decay-fraction"},
        {SFP_PRUNE_HYBRID, 0.5, 0.1, 1.5, 10, "--decay-fraction"},
        {SFP_PRUNE_SMOOTH, 0.5, 0, NAN, 10, "--decay-fraction"},
        {SFP_PRUNE_SMOOTH, 0.5, 0, 0.5, 0, "training steps"},
        {(sfp_prune_method_t)7, 0.5, 0, 0.5, 10, "--method"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sfp_prune_opts_t o = {bad[i].method, bad[i].rate, bad[i].cluster_rate, bad[i].decay_fraction, NULL, NULL};
        sfp_pruner_t *p = (sfp_pruner_t *)&o; /* must be reset to NULL */
        err = (sfp_error_t){0};
        int rc = pruner_create(m, gs, &o, bad[i].steps, &p, &err);
        TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, bad[i].want);
        assert_null(p);
    }
    /* sfp ignores the decay fraction; the defaults are valid */
    sfp_prune_opts_t o;
    pruner_opts_default(&o);
    assert_true(o.decay_fraction == 0.2 && o.method == SFP_PRUNE_SMOOTH);
    sfp_pruner_t *p = NULL;
    TU_OK(&err, pruner_create(m, gs, &o, 1, &p, &err));
    pruner_free(p);
    o.method = SFP_PRUNE_SFP;
    o.decay_fraction = 0.0;
    TU_OK(&err, pruner_create(m, gs, &o, 1, &p, &err));
    pruner_free(p);
    pruner_free(NULL);
    groups_free(gs);
    sfp_model_free(m);
}

/* Logits of m at batch 2 on a fixed input (malloc'd, 2 x 2). */
static float *small_model_logits(sfp_model_t *m)
{
    sfp_error_t err = {0};
    sfp_plan_t *p = NULL;
    float x[2 * 3 * 6 * 6], *y = malloc(sizeof(float) * 4);
    assert_non_null(y);
    for (int i = 0; i < 2 * 3 * 6 * 6; i++) x[i] = (float)sin(0.29 * (double)i);
    TU_OK(&err, plan_create(m, 2, 0, 1, &p, &err));
    const void *in[1] = {x};
    TU_OK(&err, plan_run(p, in, &err));
    memcpy(y, plan_output(p, 0), sizeof(float) * 4);
    plan_free(p);
    return y;
}

/* The library's one-call compress: fewer parameters and MACs, figures that
 * match the report of the result, the masked copy computing the same
 * function, and usage errors for options out of range or a skip pattern
 * that matches nothing. */
static void test_sfp_compress_prunes_and_the_masked_copy_agrees(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = small_model(), *masked = NULL;
    sfp_compress_opts_t o;
    sfp_compress_result_t res;
    sfp_compress_opts_default(&o);
    assert_true(o.rate == 0.5);
    TU_OK(&err, sfp_compress(m, &o, &masked, &res, &err));
    assert_true(res.groups_pruned > 0 && res.channels_removed > 0);
    assert_true(res.params_after < res.params_before && res.macs_after < res.macs_before);
    sfp_report_t *rep = NULL;
    TU_OK(&err, sfp_report_build(m, NULL, &rep, &err));
    assert_int_equal(rep->params, res.params_after);
    assert_int_equal(rep->macs, res.macs_after);
    sfp_report_free(rep);
    float *a = small_model_logits(masked), *b = small_model_logits(m);
    for (int i = 0; i < 4; i++) TU_EXPECT_NEAR(b[i], a[i], 1e-5 * (1.0 + fabs((double)a[i])));
    free(a);
    free(b);
    sfp_model_free(masked);
    sfp_model_free(m);

    m = small_model();
    o.rate = 1.0;
    TU_EXPECT_ERR(sfp_compress(m, &o, NULL, NULL, &err), &err, SFP_EUSAGE, "rate 1");
    o.rate = 0.5;
    o.skip = "no-such-layer*";
    TU_EXPECT_ERR(sfp_compress(m, &o, NULL, NULL, &err), &err, SFP_EUSAGE, "no-such-layer", "matches no layer");
    sfp_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_surgery_scale_multiplies_rows_biases_bn_and_add_constants),
        cmocka_unit_test(test_scale_by_zero_is_surgery_mask),
        cmocka_unit_test(test_l2_choice_takes_lowest_norms_ties_to_lower_index),
        cmocka_unit_test(test_sfp_zeroes_at_epoch_end_and_lets_filters_regrow),
        cmocka_unit_test(test_smooth_decays_each_step_to_exact_zero_and_holds_it),
        cmocka_unit_test(test_smooth_rechooses_at_epoch_begin_and_a_dropped_channel_stops_decaying),
        cmocka_unit_test(test_resume_from_weights_at_an_epoch_boundary_continues_exactly),
        cmocka_unit_test(test_resume_mid_epoch_with_the_saved_choice_continues_exactly),
        cmocka_unit_test(test_hybrid_chooses_the_smaller_twin_of_a_planted_duplicate),
        cmocka_unit_test(test_hybrid_chooses_the_same_channels_once_they_are_zero),
        cmocka_unit_test(test_short_decay_span_zeroes_after_the_first_step),
        cmocka_unit_test(test_finish_marks_prune_count_per_group_and_leaves_them_zero),
        cmocka_unit_test(test_finish_without_an_epoch_chooses_from_the_weights),
        cmocka_unit_test(test_bad_options_are_usage_errors_naming_the_option),
        cmocka_unit_test(test_sfp_compress_prunes_and_the_masked_copy_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
