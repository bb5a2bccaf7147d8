/* Test helper: load a model through the full loader (validate, batch-free,
 * shape inference) and save it again. Used by tests/refs.sh to compare the
 * saved file with the original in onnx.checker and ONNX Runtime. */
#include <stdio.h>

#include "model/model.h"
#include "onnx/onnx.h"

int main(int argc, char **argv)
{
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    if (argc != 3) {
        fprintf(stderr, "usage: sfp-roundtrip IN.onnx OUT.onnx\n");
        return 2;
    }
    int rc = sfp_model_load(argv[1], &m, &err);
    if (rc == 0) rc = sfp_model_save(m, argv[2], &err);
    sfp_model_free(m);
    if (rc < 0) {
        fprintf(stderr, "sfp-roundtrip: error: %s\n", err.msg);
        return sfp_exit_status(rc);
    }
    return 0;
}
