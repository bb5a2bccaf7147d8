/* Channels removed per group (src/prune/rates.c): --round-to keeps
 * multiples of N, --global meets one rate (or a MAC target) with a rate per
 * group and never empties a group, --rates rules (first match wins), and the
 * pruner removes exactly the counts it is given, also after a resume. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include <math.h>

#include "testutil.h"

#include "arch/arch.h"
#include "onnxsfp/report.h"
#include "prune/prune.h"
#include "surgery/surgery.h"

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

static sfp_prune_counts_t *counts(sfp_model_t *m, const sfp_groups_t *gs, const sfp_rate_opts_t *o)
{
    sfp_error_t err = {0};
    sfp_prune_counts_t *pc = NULL;
    TU_OK(&err, prune_counts_make(m, gs, o, &pc, &err));
    assert_int_equal(pc->n, gs->n);
    return pc;
}

static void test_round_kept_is_a_multiple_of_n_and_small_groups_stay_whole(void **state)
{
    (void)state;
    /* n, parts, asked, N -> removed */
    const int cases[][5] = {
        {16, 1, 4, 8, 0},    /* keep 12 -> nearest multiple 16 (tie upwards): whole */
        {16, 1, 5, 8, 8},    /* keep 11 -> 8 */
        {32, 1, 9, 8, 8},    /* keep 23 -> 24 */
        {64, 1, 19, 8, 16},  /* keep 45 -> 48 */
        {64, 1, 63, 8, 56},  /* keep 1 -> at least 8 */
        {20, 1, 1, 8, 4},    /* keep 19 -> 16: at most the largest multiple below 20 */
        {6, 1, 3, 8, 0},     /* a group smaller than N stays whole */
        {16, 1, 0, 8, 0},    /* nothing asked: nothing removed, whatever N */
        {32, 2, 10, 8, 16},  /* two parts of 16, 5 each asked: keep 11 -> 8 per part */
        {12, 3, 6, 8, 0},    /* parts of 4 < N: whole */
        {16, 1, 5, 1, 5},    /* N 1: as asked */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *c = cases[i];
        int got = prune_round_kept(c[0], c[1], c[2], c[3]);
        if (got != c[4]) fail_msg("case %zu: %d of %d (parts %d, N %d): removed %d, want %d", i, c[2], c[0], c[1], c[3], got, c[4]);
    }
}

/* Every group that loses channels keeps a multiple of 8, at every rate,
 * and the removal takes exactly those counts. */
static void test_round_to_keeps_multiples_in_every_group(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const double rates[3] = {0.3, 0.5, 0.7};
    for (int k = 0; k < 3; k++) {
        sfp_model_t *m = resnet20();
        sfp_groups_t *gs = NULL;
        sfp_removal_t *r = NULL;
        TU_OK(&err, groups_find(m, &gs, &err));
        sfp_rate_opts_t o = {.rate = rates[k], .round_to = 8};
        sfp_prune_counts_t *pc = counts(m, gs, &o);
        int losing = 0;
        for (int gi = 0; gi < gs->n; gi++) {
            int n = gs->g[gi].n_channels, kept = n - pc->remove[gi];
            if (pc->remove[gi] == 0) continue;
            losing++;
            assert_true(kept >= 8);
            assert_int_equal(kept % 8, 0);
        }
        assert_true(losing > 0);
        TU_OK(&err, removal_create(gs, &r, &err));
        TU_OK(&err, prune_select_counts(m, gs, pc->remove, r, &err));
        for (int gi = 0; gi < gs->n; gi++) {
            int marked = 0;
            for (int j = 0; j < gs->g[gi].n_channels; j++) marked += removal_has_channel(r, gs, gi, j);
            assert_int_equal(marked, pc->remove[gi]);
        }
        removal_free(r);
        prune_counts_free(pc);
        groups_free(gs);
        sfp_model_free(m);
    }
}

/* The conv that is the only source of a group of 16 channels: its filters
 * 8..15 shrunk 100 times (the normalised importance cannot cancel that: it
 * is within the group). */
static int plant_weak_half(sfp_model_t *m, const sfp_groups_t *gs)
{
    for (int gi = 0; gi < gs->n; gi++) {
        const sfp_chan_group_t *grp = &gs->g[gi];
        if (!grp->prunable || grp->n_sources != 1 || grp->n_channels != 16) continue;
        const sfp_node_t *n = &m->graph.nodes[grp->sources[0]];
        sfp_tensor_t *w = m->graph.values[n->inputs[1]].init;
        int64_t row = sfp_tensor_numel(w) / w->dims[0];
        float *data = w->data;
        for (int64_t e = 8 * row; e < 16 * row; e++) data[e] *= 0.01f;
        return gi;
    }
    fail_msg("no 16-channel group with one source");
    return -1;
}

static void test_global_meets_the_rate_with_a_rate_per_group_and_never_empties_one(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = resnet20();
    sfp_groups_t *gs = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    int weak = plant_weak_half(m, gs);
    sfp_rate_opts_t o = {.rate = 0.3, .global = true};
    sfp_prune_counts_t *pc = counts(m, gs, &o);
    int64_t total = 0, removed = 0;
    double lo = 1.0, hi = 0.0;
    for (int gi = 0; gi < gs->n; gi++) {
        if (!gs->g[gi].prunable) {
            assert_int_equal(pc->remove[gi], 0);
            continue;
        }
        total += gs->g[gi].n_channels;
        removed += pc->remove[gi];
        assert_true(pc->remove[gi] < gs->g[gi].n_channels);
        double rate = (double)pc->remove[gi] / gs->g[gi].n_channels;
        lo = fmin(lo, rate);
        hi = fmax(hi, rate);
    }
    /* no grouped convolutions here: exactly floor(0.3 N) of all prunable channels */
    assert_int_equal(removed, (int64_t)floor(0.3 * (double)total + 1e-9));
    assert_true(hi > lo);
    /* the planted weak half goes first: importance 0.02 of the mean, below any even group's */
    assert_true(pc->remove[weak] >= 8);
    prune_counts_free(pc);
    /* at rate 0.99 every group keeps at least one channel */
    o.rate = 0.99;
    pc = counts(m, gs, &o);
    for (int gi = 0; gi < gs->n; gi++)
        if (gs->g[gi].prunable) assert_int_equal(pc->remove[gi], gs->g[gi].n_channels - 1);
    prune_counts_free(pc);
    groups_free(gs);
    sfp_model_free(m);
}

/* --flops with --global (and with --round-to): the MACs counted after the
 * removal, and on the smaller model, are at most (1 - F) of the input's. */
static void test_flops_target_is_met_by_global_and_rounded_counts(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    for (int k = 0; k < 3; k++) {
        sfp_model_t *m = resnet20();
        sfp_groups_t *gs = NULL;
        sfp_removal_t *r = NULL;
        sfp_report_t *before = NULL, *after = NULL;
        TU_OK(&err, sfp_report_build(m, NULL, &before, &err));
        TU_OK(&err, groups_find(m, &gs, &err));
        sfp_rate_opts_t o = {.flops = 0.5, .global = k != 1, .round_to = k >= 1 ? 8 : 1};
        sfp_prune_counts_t *pc = counts(m, gs, &o);
        assert_true(pc->rate > 0.0 && pc->rate < 0.99);
        TU_OK(&err, removal_create(gs, &r, &err));
        TU_OK(&err, prune_select_counts(m, gs, pc->remove, r, &err));
        TU_OK(&err, surgery_apply(m, gs, r, &err));
        TU_OK(&err, sfp_report_build(m, NULL, &after, &err));
        assert_true((double)after->macs <= 0.5 * (double)before->macs);
        sfp_report_free(before);
        sfp_report_free(after);
        removal_free(r);
        prune_counts_free(pc);
        groups_free(gs);
        sfp_model_free(m);
    }
}

static void test_rates_rules_first_match_wins_and_bad_files_are_usage_errors(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_rate_rule_t *rules = NULL;
    int n = 0;
    TU_OK(&err, prune_rules_parse("{\"*layer2.0*\": 0.25, \"*layer2*\": 0.75, \"*\": 0}", "r.json", &rules, &n, &err));
    assert_int_equal(n, 3);
    assert_string_equal(rules[0].pattern, "*layer2.0*");
    sfp_model_t *m = resnet20();
    sfp_groups_t *gs = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    sfp_rate_opts_t o = {.rate = 0.5, .rules = rules, .n_rules = 2};
    sfp_prune_counts_t *pc = counts(m, gs, &o);
    int seen[3] = {0, 0, 0};
    for (int gi = 0; gi < gs->n; gi++) {
        if (!gs->g[gi].prunable) continue;
        double want = prune_group_matches(m, gs, gi, "*layer2.0*") ? 0.25
                      : prune_group_matches(m, gs, gi, "*layer2*") ? 0.75
                                                                    : 0.5;
        seen[want == 0.25 ? 0 : want == 0.75 ? 1 : 2]++;
        assert_int_equal(pc->remove[gi], prune_group_count(&gs->g[gi], want));
    }
    assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
    prune_counts_free(pc);
    /* the third rule "*" at 0: nothing else is pruned */
    o.n_rules = 3;
    pc = counts(m, gs, &o);
    for (int gi = 0; gi < gs->n; gi++)
        if (!prune_group_matches(m, gs, gi, "*layer2*")) assert_int_equal(pc->remove[gi], 0);
    prune_counts_free(pc);
    prune_rules_free(rules, n);
    const char *bad[] = {"[0.5]", "{\"a\": 1.0}", "{\"a\": \"half\"}", "{\"a\": -0.1}", "{", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        TU_EXPECT_ERR(prune_rules_parse(bad[i], "r.json", &rules, &n, &err), &err, SFP_EUSAGE, "r.json");
        assert_null(rules);
    }
    groups_free(gs);
    sfp_model_free(m);
}

static int chosen_in(const sfp_pruner_t *p, const sfp_groups_t *gs, int gi)
{
    int c = 0;
    for (int j = 0; j < gs->g[gi].n_channels; j++) c += removal_has_channel(pruner_choice(p), gs, gi, j);
    return c;
}

/* Every schedule chooses exactly the given per-group counts; a pruner
 * state carries them, so a resumed run keeps the first run's counts even
 * when its own (made from other weights) differ. */
static void test_schedules_take_the_given_counts_and_a_state_restores_them(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const sfp_prune_method_t methods[3] = {SFP_PRUNE_SFP, SFP_PRUNE_SMOOTH, SFP_PRUNE_HYBRID};
    for (int k = 0; k < 3; k++) {
        sfp_model_t *m = resnet20();
        sfp_groups_t *gs = NULL;
        TU_OK(&err, groups_find(m, &gs, &err));
        plant_weak_half(m, gs);
        sfp_rate_opts_t ro = {.rate = 0.4, .global = true, .round_to = 4};
        sfp_prune_counts_t *pc = counts(m, gs, &ro);
        sfp_prune_opts_t po;
        pruner_opts_default(&po);
        po.method = methods[k];
        po.rate = 0.4;
        po.cluster_rate = 0.1;
        po.remove = pc->remove;
        sfp_pruner_t *a = NULL, *b = NULL;
        TU_OK(&err, pruner_create(m, gs, &po, 10, &a, &err));
        TU_OK(&err, pruner_epoch_begin(a, 0, 0, &err));
        int64_t total = 0;
        for (int gi = 0; gi < gs->n; gi++) {
            assert_int_equal(chosen_in(a, gs, gi), pc->remove[gi]);
            total += pc->remove[gi];
        }
        assert_int_equal(pruner_n_chosen(a), total);
        uint8_t *st = NULL;
        size_t len = 0;
        TU_OK(&err, pruner_save_choice(a, &st, &len, &err));
        po.remove = NULL; /* uniform 0.4: other counts */
        TU_OK(&err, pruner_create(m, gs, &po, 10, &b, &err));
        TU_OK(&err, pruner_load_choice(b, st, len, &err));
        int64_t before_a = 0, after_a = 0, before_b = 0, after_b = 0;
        pruner_macs(a, &before_a, &after_a);
        pruner_macs(b, &before_b, &after_b);
        assert_int_equal(after_a, after_b);
        TU_OK(&err, pruner_epoch_begin(b, 1, 10, &err));
        for (int gi = 0; gi < gs->n; gi++) assert_int_equal(chosen_in(b, gs, gi), pc->remove[gi]);
        free(st);
        pruner_free(a);
        pruner_free(b);
        prune_counts_free(pc);
        groups_free(gs);
        sfp_model_free(m);
    }
}

static void test_bad_rate_options_are_usage_errors(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = resnet20();
    sfp_groups_t *gs = NULL;
    sfp_prune_counts_t *pc = NULL;
    TU_OK(&err, groups_find(m, &gs, &err));
    sfp_rate_opts_t o = {.rate = 1.0};
    TU_EXPECT_ERR(prune_counts_make(m, gs, &o, &pc, &err), &err, SFP_EUSAGE, "--rate");
    o = (sfp_rate_opts_t){.rate = 0.5, .round_to = -2};
    TU_EXPECT_ERR(prune_counts_make(m, gs, &o, &pc, &err), &err, SFP_EUSAGE, "--round-to");
    o = (sfp_rate_opts_t){.flops = 0.9999, .skip = "*"};
    TU_EXPECT_ERR(prune_counts_make(m, gs, &o, &pc, &err), &err, SFP_ERUNTIME, "--flops");
    assert_null(pc);
    groups_free(gs);
    sfp_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_kept_is_a_multiple_of_n_and_small_groups_stay_whole),
        cmocka_unit_test(test_round_to_keeps_multiples_in_every_group),
        cmocka_unit_test(test_global_meets_the_rate_with_a_rate_per_group_and_never_empties_one),
        cmocka_unit_test(test_flops_target_is_met_by_global_and_rounded_counts),
        cmocka_unit_test(test_rates_rules_first_match_wins_and_bad_files_are_usage_errors),
        cmocka_unit_test(test_schedules_take_the_given_counts_and_a_state_restores_them),
        cmocka_unit_test(test_bad_rate_options_are_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
