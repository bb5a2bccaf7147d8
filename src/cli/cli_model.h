/* Helpers shared by the commands that feed images to a classifier (eval,
 * detect): the model's input geometry and class count, the normalisation to
 * use, and a monotonic clock. */
#ifndef SFP_CLI_MODEL_H
#define SFP_CLI_MODEL_H

#include "cli/cli.h"
#include "data/data.h"
#include "onnxsfp/model.h"

/* Seconds on a monotonic clock. */
double cli_now_seconds(void);

/* Model input C x H x W and class count K from the inferred shapes at batch 1:
 * one float NCHW data input, output 0 float [N, K]. `command` names the caller
 * in messages. */
int cli_model_geometry_for(sfp_model_t *m, const char *path, const char *command, int *c, int *h, int *w, int *k,
                       sfp_error_t *err);

/* Normalisation into prep: --mean/--std of the command, else the model's
 * recorded preprocessing (metadata DATA_META_KEY), else mean 0 std 1. */
int cli_model_norm(const cli_cmd_t *cmd, const cli_args_t *a, const sfp_model_t *m, const char *path,
                   sfp_data_prep_t *prep, sfp_error_t *err);

#endif
