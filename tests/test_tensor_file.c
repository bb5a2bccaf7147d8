/* TensorProto files (src/onnx/tensor_file.c): what sfp_tensor_save_pb writes,
 * sfp_tensor_load_pb reads back bit for bit; ONNX's own test files load with the
 * values numpy wrote; broken files are bad data naming the file. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700

#include "testutil.h"

#include <sys/stat.h>

#include "onnxsfp/tensor.h"

static void test_saved_tensors_load_back_identically(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    char dir[64], path[128];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/t.pb", dir);
    const sfp_dtype_t types[3] = {SFP_DT_FLOAT, SFP_DT_INT64, SFP_DT_BOOL};
    for (int t = 0; t < 3; t++) {
        const int64_t dims[3] = {2, 3, 4};
        sfp_tensor_t *a = NULL, *b = NULL;
        TU_OK(&err, sfp_tensor_create("logits", types[t], 3, dims, &a, &err));
        for (size_t i = 0; i < a->nbytes; i++) ((uint8_t *)a->data)[i] = (uint8_t)(i * 37 + 1) & (t == 2 ? 1 : 0xff);
        TU_OK(&err, sfp_tensor_save_pb(a, path, &err));
        TU_OK(&err, sfp_tensor_load_pb(path, &b, &err));
        assert_string_equal(b->name, "logits");
        assert_int_equal(b->dtype, types[t]);
        assert_int_equal(b->ndim, 3);
        for (int k = 0; k < 3; k++) assert_int_equal(b->dims[k], dims[k]);
        assert_int_equal(b->nbytes, a->nbytes);
        assert_memory_equal(a->data, b->data, a->nbytes);
        sfp_tensor_free(a);
        sfp_tensor_free(b);
    }
    struct stat st;
    mode_t mask = umask(0);
    umask(mask);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644 & ~mask); /* not mkstemp's 0600 */
    tu_rm_rf(dir);
}

/* output_0.pb of ONNX's test_relu: float32 [3, 4, 5] stored as raw_data; all
 * values are >= 0 (a Relu) and not all 0. */
static void test_onnx_test_data_files_load(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_tensor_t *t = NULL;
    const char *path = "/usr/share/libonnx-testdata/data/node/test_relu/test_data_set_0/output_0.pb";
    TU_OK(&err, sfp_tensor_load_pb(path, &t, &err));
    assert_int_equal(t->dtype, SFP_DT_FLOAT);
    assert_int_equal(t->ndim, 3);
    assert_true(t->dims[0] == 3 && t->dims[1] == 4 && t->dims[2] == 5);
    const float *v = t->data;
    int positive = 0;
    for (int i = 0; i < 60; i++) {
        assert_true(v[i] >= 0.0f);
        positive += v[i] > 0.0f;
    }
    assert_true(positive > 10);
    sfp_tensor_free(t);
}

static void test_broken_files_are_bad_data(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    char dir[64], path[128];
    sfp_tensor_t *t = NULL;
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/broken.pb", dir);
    /* dims (field 1) = [3], data_type (field 2) = float, raw_data (field 9): 4 bytes, 1 float for 3 */
    const uint8_t short_data[] = {0x08, 0x03, 0x10, 0x01, 0x4a, 0x04, 0, 0, 0x80, 0x3f};
    tu_write_file(path, short_data, sizeof short_data);
    int rc = sfp_tensor_load_pb(path, &t, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "broken.pb", "raw_data");
    const uint8_t garbage[] = {0xff, 0xff, 0xff};
    tu_write_file(path, garbage, sizeof garbage);
    rc = sfp_tensor_load_pb(path, &t, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "broken.pb", "not a TensorProto");
    snprintf(path, sizeof path, "%s/absent.pb", dir);
    rc = sfp_tensor_load_pb(path, &t, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EIO, "absent.pb");
    assert_null(t);
    tu_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_saved_tensors_load_back_identically),
        cmocka_unit_test(test_onnx_test_data_files_load),
        cmocka_unit_test(test_broken_files_are_bad_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
