/* Using libonnxsfp from C: load a model, print its report, prune it by the
 * L2 norm of its filters (or to a MAC target), and save the smaller model.
 *
 *   cc example.c $(pkg-config --cflags --libs onnxsfp) -o example
 *   ./example in.onnx out.onnx [rate]
 */
#include <stdio.h>
#include <stdlib.h>

#include <onnxsfp/compress.h>
#include <onnxsfp/model.h>
#include <onnxsfp/report.h>

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s IN.onnx OUT.onnx [RATE]\n", argv[0]);
        return 2;
    }
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    sfp_report_t *rep = NULL;
    sfp_compress_opts_t opts;
    sfp_compress_result_t res;
    sfp_compress_opts_default(&opts);
    if (argc == 4) opts.rate = strtod(argv[3], NULL);
    int rc = sfp_model_load(argv[1], &m, &err);
    if (rc == 0) rc = sfp_report_build(m, argv[1], &rep, &err);
    if (rc == 0) {
        printf("%s: %lld parameters, %lld MACs\n", argv[1], (long long)rep->params, (long long)rep->macs);
        rc = sfp_compress(m, &opts, NULL, &res, &err);
    }
    if (rc == 0) rc = sfp_model_save(m, argv[2], &err);
    if (rc == 0)
        printf("%s: %lld parameters, %lld MACs (rate %.3f, %d of %d channel groups pruned)\n", argv[2],
               (long long)res.params_after, (long long)res.macs_after, res.rate, res.groups_pruned, res.groups);
    sfp_report_free(rep);
    sfp_model_free(m);
    if (rc < 0) {
        fprintf(stderr, "example: %s\n", err.msg);
        return sfp_exit_status(rc);
    }
    return 0;
}
