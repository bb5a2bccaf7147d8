/* The report's JSON as a json-c object, for commands that add keys of their
 * own (compress --report-json) and serialise it once. Internal to the tool:
 * the public header offers only text (sfp_report_to_json). */
#ifndef SFP_REPORT_JSON_H
#define SFP_REPORT_JSON_H

#include <json-c/json.h>

#include "onnxsfp/report.h"

/* The report --json object of a (and b); NULL when out of memory. The
 * caller owns it (json_object_put). */
json_object *report_json_object(const sfp_report_t *a, const sfp_report_t *b);
/* Output channels of every filters layer (Conv, Gemm, MatMul) of before and
 * what after kept, matched by node name (-1: gone): [{"name", "op_type",
 * "channels", "kept"}]. */
json_object *report_layers_json(const sfp_model_t *before, const sfp_model_t *after);
/* Pretty text with a final newline; malloc'd, NULL when out of memory. */
char *report_json_text(const json_object *root);

#endif
