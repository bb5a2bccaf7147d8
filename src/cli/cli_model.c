/* What eval and detect share about a classifier: its input geometry and class
 * count, the normalisation (flags, else the model's metadata, else none), and
 * the clock they time runs with. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <time.h>

#include "cli/cli_model.h"

double cli_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_model_geometry_for(sfp_model_t *m, const char *path, const char *command, int *c, int *h, int *w, int *k,
                       sfp_error_t *err)
{
    const sfp_graph_t *g = &m->graph;
    int in = graph_data_input(g);
    if (in < 0) return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: %s needs a model with one data input", path, command);
    const sfp_value_t *x = &g->values[in];
    if (x->ndim != 4 || x->dtype != SFP_DT_FLOAT)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: input '%s' is not a float NCHW image batch", path, x->name);
    if (g->n_outputs < 1) return sfp_errorf(err, SFP_EBADMODEL, "%s: no output", path);
    const sfp_value_t *y = &g->values[g->outputs[0]];
    if (y->ndim != 2 || y->dtype != SFP_DT_FLOAT || y->dims[1] < 1)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: output '%s' is not [N, classes] float logits", path, y->name);
    *c = (int)x->dims[1];
    *h = (int)x->dims[2];
    *w = (int)x->dims[3];
    *k = (int)y->dims[1];
    return 0;
}

int cli_model_norm(const cli_cmd_t *cmd, const cli_args_t *a, const sfp_model_t *m, const char *path,
                   sfp_data_prep_t *prep, sfp_error_t *err)
{
    const char *mean_s = cli_get(cmd, a, "mean"), *std_s = cli_get(cmd, a, "std");
    const char *meta = model_meta_get(m, DATA_META_KEY);
    int rc;
    if (!mean_s && !std_s && meta) {
        sfp_data_desc_t d;
        memset(&d, 0, sizeof d);
        if ((rc = data_describe_parse(meta, path, &d, err)) < 0) return rc;
        rc = data_prep_set_norm(prep, d.prep.mean, d.prep.n_mean, d.prep.std, d.prep.n_std, err);
        data_desc_clear(&d);
        return rc;
    }
    float mean[DATA_MAX_CHANNELS] = {0}, std[DATA_MAX_CHANNELS] = {1, 1, 1};
    int n_mean = 1, n_std = 1;
    if (mean_s && (rc = data_parse_floats(mean_s, "--mean", mean, DATA_MAX_CHANNELS, &n_mean, err)) < 0) return rc;
    if (std_s && (rc = data_parse_floats(std_s, "--std", std, DATA_MAX_CHANNELS, &n_std, err)) < 0) return rc;
    return data_prep_set_norm(prep, mean, n_mean, std, n_std, err);
}
