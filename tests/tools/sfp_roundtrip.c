/* Test helper: load a model through the full loader (validate, batch-free,
 * shape inference) and save it again. Used by tests/refs.sh to compare the
 * saved file with the original in onnx.checker and ONNX Runtime. */
#include <stdio.h>

#include "onnxsfp/model.h"

int main(int argc, char **argv)
{
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    if (argc != 3) {
        fprintf(stderr, "usage: sfp-roundtrip IN.onnx OUT.onnx\n");
        return 2;
    }
    int rc = model_load(argv[1], &m, &err);
    if (rc == 0) rc = model_save(m, argv[2], &err);
    model_free(m);
    if (rc < 0) {
        fprintf(stderr, "sfp-roundtrip: error: %s\n", err.msg);
        return sfp_exit_status(rc);
    }
    return 0;
}
