/* ONNX I/O as the model layer sees it: bytes <-> IR. Only src/model calls it
 * (and tests); nothing here exposes protobuf. */
#ifndef SFP_ONNX_H
#define SFP_ONNX_H

#include "onnxsfp/model.h"

/* Decodes only, no validation: ModelProto bytes -> IR. path (may be NULL)
 * names the source in messages and is the base folder for external data. */
int onnx_decode_model(const uint8_t *buf, size_t len, const char *path, sfp_model_t **out, sfp_error_t *err);
/* IR -> ModelProto bytes (all tensors inline). *out is malloc'ed. */
int onnx_encode_model(const sfp_model_t *m, uint8_t **out, size_t *out_len, sfp_error_t *err);

#endif
