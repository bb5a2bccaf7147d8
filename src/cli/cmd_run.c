/* onnx-sfp run: one forward pass of a model on TensorProto files (the format
 * of ONNX's test data) or NumPy .npy files (by extension), writing each graph
 * output to a file of either kind. The batch follows the first input's dim 0
 * when the model's batch is free. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "model/model.h"
#include "train/plan.h"
#include "util/npy.h"
#include "util/util.h"

#define MAX_FILES 64

static const cli_opt_t opts[] = {
    {"input", "IN.pb...", "input tensors, one file per graph input, in the model's order: TensorProto, or NumPy\n"
                          "when the name ends in .npy; a list, or --input repeated"},
    {"output", "OUT.pb...", "files to write, one per graph output, in the model's order (.npy: NumPy)"},
    {0},
};

/* "float32 [2, 3, 32, 32]" into buf. */
static const char *describe(sfp_dtype_t dt, int ndim, const int64_t *dims, char *buf, size_t size)
{
    size_t o = (size_t)snprintf(buf, size, "%s [", sfp_dtype_name(dt));
    for (int k = 0; k < ndim && o < size; k++)
        o += (size_t)snprintf(buf + o, size - o, "%s%lld", k ? ", " : "", (long long)dims[k]);
    if (o < size) snprintf(buf + o, size - o, "]");
    return buf;
}

/* The plan input's dtype and dims must be the file's. */
static int check_input(const sfp_plan_t *plan, const sfp_graph_t *g, int i, const sfp_tensor_t *t, const char *path,
                       sfp_error_t *err)
{
    const sfp_shape_t *s = plan_input_shape(plan, i);
    bool same = s->dtype == t->dtype && s->ndim == t->ndim;
    for (int k = 0; same && k < s->ndim; k++) same = s->dims[k] == t->dims[k];
    if (same) return 0;
    char want[256], got[256];
    return sfp_errorf(err, SFP_EBADDATA, "%s: input '%s' expects %s, the file holds %s", sfp_q(path),
                      sfp_q(g->values[plan_input_value(plan, i)].name),
                      describe(s->dtype, s->ndim, s->dims, want, sizeof want),
                      describe(t->dtype, t->ndim, t->dims, got, sizeof got));
}

/* Batch for the plan: the first input's dim 0 when the model leaves it free. */
static int64_t choose_batch(const sfp_graph_t *g, sfp_tensor_t *const *in)
{
    for (int i = 0; i < g->n_inputs; i++) {
        const sfp_value_t *v = &g->values[g->inputs[i]];
        if (v->init) continue;
        if (v->decl.rank > 0 && v->decl.dims[0] < 0 && in[0]->ndim > 0) return in[0]->dims[0];
        return 0;
    }
    return 0;
}

static int run(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    const char *const *in_paths = NULL, *const *out_paths = NULL;
    int n_in = cli_list(cmd, a, "input", &in_paths), n_out = cli_list(cmd, a, "output", &out_paths);
    sfp_model_t *m = NULL;
    sfp_plan_t *plan = NULL;
    sfp_tensor_t *in[MAX_FILES] = {0};
    const void *data[MAX_FILES] = {0};
    int rc = 0;
    if (n_in == 0 || n_out == 0)
        return sfp_errorf(err, SFP_EUSAGE, "usage: onnx-sfp run %s (--input and --output are required)", cmd->usage);
    if (n_in > MAX_FILES || n_out > MAX_FILES)
        return sfp_errorf(err, SFP_EUSAGE, "at most %d input and %d output files", MAX_FILES, MAX_FILES);
    if ((rc = cli_load_model(a->pos[0], &m, err)) < 0) return rc;
    const sfp_graph_t *g = &m->graph;
    int n_data = 0;
    for (int i = 0; i < g->n_inputs; i++) n_data += !g->values[g->inputs[i]].init;
    if (n_in != n_data) {
        rc = sfp_errorf(err, SFP_EUSAGE, "%s: the model has %d inputs, --input lists %d files", sfp_q(a->pos[0]), n_data,
                        n_in);
        goto out;
    }
    if (n_out != g->n_outputs) {
        rc = sfp_errorf(err, SFP_EUSAGE, "%s: the model has %d outputs, --output lists %d files", sfp_q(a->pos[0]),
                        g->n_outputs, n_out);
        goto out;
    }
    for (int i = 0; i < n_in; i++)
        if ((rc = npy_path(in_paths[i]) ? npy_load(in_paths[i], &in[i], err) : sfp_tensor_load_pb(in_paths[i], &in[i], err)) < 0)
            goto out;
    if ((rc = plan_create(m, choose_batch(g, in), SFP_PLAN_CONST_WEIGHTS, a->threads, &plan, err)) < 0) {
        sfp_error_prefix(err, "%s", sfp_q(a->pos[0]));
        goto out;
    }
    for (int i = 0; i < n_in; i++) {
        if ((rc = check_input(plan, g, i, in[i], in_paths[i], err)) < 0) goto out;
        data[i] = in[i]->data;
    }
    if ((rc = plan_run(plan, data, err)) < 0) {
        sfp_error_prefix(err, "%s", sfp_q(a->pos[0]));
        goto out;
    }
    for (int i = 0; i < n_out; i++) {
        const sfp_shape_t *s = plan_output_shape(plan, i);
        sfp_tensor_t t = {0};
        int64_t numel = 0;
        t.name = g->values[plan_output_value(plan, i)].name;
        t.dtype = s->dtype;
        t.ndim = s->ndim;
        for (int k = 0; k < s->ndim; k++) t.dims[k] = s->dims[k];
        t.data = (void *)plan_output(plan, i); /* only read by the saver */
        if ((rc = sfp_shape_numel(s->ndim, s->dims, &numel, err)) < 0) goto out;
        t.nbytes = (size_t)numel * sfp_dtype_size(s->dtype);
        if ((rc = npy_path(out_paths[i]) ? npy_save(&t, out_paths[i], err) : sfp_tensor_save_pb(&t, out_paths[i], err)) < 0)
            goto out;
        if (!a->quiet) {
            char shape[256];
            printf("%s: '%s' %s\n", out_paths[i], t.name, describe(t.dtype, t.ndim, t.dims, shape, sizeof shape));
        }
    }
    if (fflush(stdout) != 0) rc = sfp_errorf(err, SFP_EIO, "writing to stdout failed");
out:
    for (int i = 0; i < n_in; i++) sfp_tensor_free(in[i]);
    plan_free(plan);
    sfp_model_free(m);
    return rc;
}

const cli_cmd_t cmd_run = {
    "run", "MODEL.onnx --input IN.pb... --output OUT.pb...",
    "one forward pass on TensorProto (.pb) or NumPy (.npy) files, outputs written as either",
    "Inputs and outputs follow the model's order of graph inputs (without initializers) and outputs.\n"
    "Each list runs up to the next --option (or repeat the option: --input A --input B). A file whose\n"
    "name ends in .npy is NumPy's format (C order, little-endian numbers), any other a TensorProto.\n"
    "When the model's batch dimension is free, the batch\n"
    "is dim 0 of the first input; every input must then match the model's shape exactly.",
    opts, 1, 1, run,
};
