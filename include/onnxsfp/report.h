/* Parameter and MAC counts per node and in total, for one model or two side by
 * side; text and JSON output (schema in docs/json.md).
 * Conventions: MACs count Conv (output elements x input channels per group x
 * kernel area) and Gemm/MatMul (M x N x K); FLOPs = 2 x MACs; elementwise work
 * (BN, Relu, Add, pooling) is counted apart; parameters are what PyTorch counts
 * (conv/linear weights and biases, BN scale and bias), each tensor once. */
#ifndef ONNXSFP_REPORT_H
#define ONNXSFP_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "onnxsfp/model.h"

typedef struct sfp_report_row {
    char *name;          /* node name, or "#index" when the node has none */
    char *op_type;
    int ndim;            /* output 0 shape at batch 1 */
    int64_t shape[SFP_MAX_DIMS];
    int64_t params;
    int64_t macs;        /* dense work (Conv, Gemm, MatMul) */
    int64_t elem_ops;    /* elementwise work (BN, Relu, Add, pooling...) */
} sfp_report_row_t;

/* Owns path and rows. */
typedef struct sfp_report {
    char *path;
    int n_rows;
    sfp_report_row_t *rows;
    int64_t params, macs, elem_ops;
} sfp_report_t;

/* Counts m at batch 1 (re-infers shapes for batch 1 if needed). */
int sfp_report_build(sfp_model_t *m, const char *path, sfp_report_t **out, sfp_error_t *err);
void sfp_report_free(sfp_report_t *r);

/* Text table of one model (b == NULL) or two side by side with reductions. */
void sfp_report_print_text(FILE *f, const sfp_report_t *a, const sfp_report_t *b);
/* "schema_version" of every JSON object the tool prints (docs/json.md): raised
 * when a documented key is removed or changes meaning, not when one is added. */
#define SFP_JSON_SCHEMA_VERSION 1

/* The report --json object; *out is malloc'ed, NUL-terminated. */
int sfp_report_to_json(const sfp_report_t *a, const sfp_report_t *b, char **out, sfp_error_t *err);

/* The "paper-style" MAC count at a pruning rate, as the SFP/FPGM papers
 * count it: EVERY Conv keeps (1 - rate) of its output channels (residual
 * block outputs included, which the emitted graph cannot remove), and a
 * Conv or Gemm loses the same fraction of its input channels when its input
 * comes straight from a Conv (through BN, Relu and pooling; not through Add,
 * Concat or Pad). Exact fractions, not whole channels, as the papers' tables.
 * rep is sfp_report_build(m). For comparison with the literature only: it is
 * not the count of any model we write. */
int sfp_report_paper_macs(const sfp_model_t *m, const sfp_report_t *rep, double rate, int64_t *macs, sfp_error_t *err);

#endif
