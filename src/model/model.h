/* The model as a whole, above the op table, the ONNX codec and the IR:
 * loading (decode, validate, batch-free form, shape inference), cloning and
 * saving are in onnxsfp/model.h; the passes they are made of are here. */
#ifndef SFP_MODEL_H
#define SFP_MODEL_H

#include "ir/ir.h"
#include "onnxsfp/model.h"

/* Structure: names, dangling inputs, cycles, supported ops and attributes,
 * tensor sizes, non-finite weights. */
int model_validate(sfp_model_t *m, sfp_error_t *err);
/* Concrete shape of every value for this batch size (folds shape-computing ops). */
int model_infer_shapes(sfp_model_t *m, int64_t batch, sfp_error_t *err);
/* Makes a model exported with a fixed batch batch-free (graph input/output dim 0
 * symbolic, Reshape targets that froze the export batch rewritten to copy it). */
int model_free_batch(sfp_model_t *m, sfp_error_t *err);

#endif
