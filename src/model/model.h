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
 * symbolic, Reshape targets that froze the export batch rewritten to copy it).
 * Returns 1, with the model half changed, when the batch is mixed into the
 * outputs' other dims (Flatten with axis 0): such a model must be used as
 * decoded (sfp_model_load does so). */
int model_free_batch(sfp_model_t *m, sfp_error_t *err);
/* Parameters an exporter stored once because their values were equal, and
 * made the other uses Identity copies of (PyTorch: equal BN biases of a
 * trained ResNet, the ones and zeros of an untrained one), become tensors of
 * their own again, as they were in the network: every Identity of an
 * initializer or Constant that a node reads turns into an initializer with
 * the copied values, and the Identity nodes go (value ids renumbered). A
 * tensor two nodes read directly stays shared (one module called twice).
 * alias.c */
int model_untie_aliases(sfp_model_t *m, sfp_error_t *err);
/* Sizes for symbolic input dims from "[NAME:]1x3x224x224[,...]" (the batch
 * stays free); bad or contradicting specs give SFP_EUSAGE. input_shape.c */
int model_fix_input_shape(sfp_model_t *m, const char *spec, sfp_error_t *err);

#endif
