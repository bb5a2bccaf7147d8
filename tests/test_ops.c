/* The op table (src/ops/ops.c and the family files): every op id has exactly
 * one row under its ONNX name, and each row carries what pruning and the
 * report ask of it, so code outside src/ops never needs an op's name. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700

#include "testutil.h"

#include "ops/ops.h"

static void test_every_id_has_one_row_under_its_name(void **state)
{
    (void)state;
    const char *const *names = op_names();
    int n = 0;
    for (; names[n]; n++) {
        const sfp_op_def_t *d = op_find(names[n], "");
        assert_non_null(d);
        assert_int_equal(d->id, n);
        assert_string_equal(d->op_type, names[n]);
        assert_ptr_equal(op_by_id((sfp_op_id_t)n), d);
        assert_ptr_equal(op_find(names[n], "ai.onnx"), d);
    }
    assert_int_equal(n, SFP_OP_COUNT);
    assert_null(op_by_id(SFP_OP_COUNT));
    assert_null(op_find("Conv", "com.microsoft"));
}

static void test_rows_carry_what_pruning_asks(void **state)
{
    (void)state;
    for (int id = 0; id < SFP_OP_COUNT; id++) {
        const sfp_op_def_t *d = op_by_id((sfp_op_id_t)id);
        /* a layer makes channels from filters: pruning needs the filter axis
         * and the report the MACs after a removal */
        if (d->flags & SFP_OPF_FILTERS) {
            assert_non_null(d->weight_axis);
            assert_non_null(d->work_kept);
            assert_int_equal(d->shrink, SFP_SHRINK_FILTERS);
            assert_int_equal(d->work_kind, SFP_WORK_DENSE);
        }
        if (d->work_kind == SFP_WORK_DENSE) assert_true(d->flags & SFP_OPF_FILTERS);
        if (d->shrink == SFP_SHRINK_BROADCAST) assert_int_equal(d->chan, SFP_CHAN_BROADCAST);
        /* zero-keeping is a channel-wise property */
        if ((d->flags & SFP_OPF_ZERO_KEEPS) || d->keeps_zero) assert_int_equal(d->chan, SFP_CHAN_SAME);
    }
    /* f(0) != 0: a zero channel does not stay zero through these */
    assert_false(op_by_id(SFP_OP_SIGMOID)->flags & SFP_OPF_ZERO_KEEPS);
    assert_false(op_by_id(SFP_OP_BATCH_NORMALIZATION)->flags & SFP_OPF_ZERO_KEEPS);
    assert_true(op_by_id(SFP_OP_RELU)->flags & SFP_OPF_ZERO_KEEPS);
    /* Clip keeps zero only when min <= 0 <= max, a fact of the node */
    assert_false(op_by_id(SFP_OP_CLIP)->flags & SFP_OPF_ZERO_KEEPS);
    assert_non_null(op_by_id(SFP_OP_CLIP)->keeps_zero);
    assert_int_equal(op_by_id(SFP_OP_CLIP)->chan, SFP_CHAN_SAME);
    assert_false(op_by_id(SFP_OP_HARD_SIGMOID)->flags & SFP_OPF_ZERO_KEEPS); /* f(0) = beta */
    assert_true(op_by_id(SFP_OP_HARD_SWISH)->flags & SFP_OPF_ZERO_KEEPS);
    assert_true(op_by_id(SFP_OP_LEAKY_RELU)->flags & SFP_OPF_ZERO_KEEPS);
}

static void test_weight_axis_follows_trans_b(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    TU_OK(&err, model_create(&m, &err));
    int ids[2] = {-1, -1}, y = -1, node = -1;
    TU_OK(&err, graph_value(&m->graph, "a", &ids[0], &err));
    TU_OK(&err, graph_value(&m->graph, "b", &ids[1], &err));
    TU_OK(&err, graph_value(&m->graph, "y", &y, &err));
    TU_OK(&err, graph_add_node(&m->graph, "Gemm", "fc", 2, ids, 1, &y, &node, &err));
    const sfp_op_def_t *gemm = op_by_id(SFP_OP_GEMM);
    assert_int_equal(gemm->weight_axis(&m->graph.nodes[node]), 1);
    TU_OK(&err, node_set_attr_int(&m->graph.nodes[node], "transB", 1, &err));
    assert_int_equal(gemm->weight_axis(&m->graph.nodes[node]), 0);
    assert_true(op_is(&m->graph.nodes[node], SFP_OP_GEMM));
    assert_true(op_has(&m->graph.nodes[node], SFP_OPF_FILTERS));
    assert_false(op_has(&m->graph.nodes[node], SFP_OPF_FILTERS | SFP_OPF_NORM));
    sfp_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_id_has_one_row_under_its_name),
        cmocka_unit_test(test_rows_carry_what_pruning_asks),
        cmocka_unit_test(test_weight_axis_follows_trans_b),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
