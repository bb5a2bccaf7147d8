/* The page of `report A B --html` and `compress --report-html`: one
 * self-contained HTML file (inline CSS and SVG, no network) drawn from the
 * report JSON object (report_json.h) with its "layers" array: the totals
 * before and after, the accuracies and the gate when the object has them,
 * and per Conv/Gemm/MatMul layer bars of output channels and MACs before
 * (grey) and after (colour) with the kept percentage. */
#ifndef SFP_REPORT_HTML_H
#define SFP_REPORT_HTML_H

#include <json-c/json.h>

#include "onnxsfp/error.h"
#include "util/util.h"

/* Appends the page to b (b->failed on a failed allocation). root has two
 * "models" and "layers"; it is only read. */
void report_html_render(sfp_buf_t *b, json_object *root);
/* Renders root and writes the page to path (sfp_write_file_atomic: "-" is
 * stdout, a regular file is replaced atomically). */
int report_html_write(const char *path, json_object *root, sfp_error_t *err);

#endif
