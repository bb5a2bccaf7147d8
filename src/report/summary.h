/* `report A B --summary`: the totals of A and B with their reductions, and
 * per channel group of A the channels B kept. */
#ifndef SFP_REPORT_SUMMARY_H
#define SFP_REPORT_SUMMARY_H

#include <stdio.h>

#include "onnxsfp/report.h"

/* Prints to f. b and rb may be NULL (one model: its totals and groups). The
 * groups are A's (groups_find); a group's kept count comes from the output
 * channels of its layers' nodes of the same name in B (as report_layers_json
 * matches layers); "-" where B does not tell (no such layer). */
int report_summary_print(FILE *f, sfp_model_t *a, const sfp_model_t *b, const sfp_report_t *ra,
                         const sfp_report_t *rb, sfp_error_t *err);

#endif
