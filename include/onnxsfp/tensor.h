/* Dense tensors: element type (ONNX's numbering), dims and one owned buffer. */
#ifndef ONNXSFP_TENSOR_H
#define ONNXSFP_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "onnxsfp/error.h"

#define SFP_MAX_DIMS 8

/* Same numbers as onnx.TensorProto.DataType. */
typedef enum sfp_dtype {
    SFP_DT_UNDEFINED = 0,
    SFP_DT_FLOAT = 1,
    SFP_DT_UINT8 = 2,
    SFP_DT_INT8 = 3,
    SFP_DT_UINT16 = 4,
    SFP_DT_INT16 = 5,
    SFP_DT_INT32 = 6,
    SFP_DT_INT64 = 7,
    SFP_DT_STRING = 8,
    SFP_DT_BOOL = 9,
    SFP_DT_FLOAT16 = 10,
    SFP_DT_DOUBLE = 11,
    SFP_DT_UINT32 = 12,
    SFP_DT_UINT64 = 13,
    SFP_DT_BFLOAT16 = 16
} sfp_dtype_t;

/* Owns name and data. data is little-endian, row-major, nbytes long. */
typedef struct sfp_tensor {
    char *name;
    sfp_dtype_t dtype;
    int ndim;
    int64_t dims[SFP_MAX_DIMS];
    void *data;
    size_t nbytes;
} sfp_tensor_t;

/* Bytes of one element, 0 for types without a fixed size (string, undefined). */
size_t sfp_dtype_size(sfp_dtype_t dt);
const char *sfp_dtype_name(sfp_dtype_t dt);

/* Number of elements; fails (SFP_EBADMODEL) on negative dims or overflow. */
int sfp_shape_numel(int ndim, const int64_t *dims, int64_t *out, sfp_error_t *err);

/* New zero-filled tensor; name may be NULL. */
int sfp_tensor_create(const char *name, sfp_dtype_t dt, int ndim, const int64_t *dims,
                      sfp_tensor_t **out, sfp_error_t *err);
int sfp_tensor_clone(const sfp_tensor_t *t, sfp_tensor_t **out, sfp_error_t *err);
void sfp_tensor_free(sfp_tensor_t *t);
int64_t sfp_tensor_numel(const sfp_tensor_t *t);

/* Reads element i of an integer tensor (int64/int32/...) as int64; 0 if out of range. */
int64_t sfp_tensor_get_int(const sfp_tensor_t *t, int64_t i);
/* Reads element i of a float/double/integer tensor as double. */
double sfp_tensor_get_double(const sfp_tensor_t *t, int64_t i);

/* ---- TensorProto files (src/onnx/tensor_file.c) ---- */
/* Reads one serialized onnx.TensorProto (ONNX test data's input_N.pb).
 * Broken files give SFP_EBADDATA naming the file; external data is refused. */
int sfp_tensor_load_pb(const char *path, sfp_tensor_t **out, sfp_error_t *err);
/* Writes t (name included, data as raw_data) atomically. */
int sfp_tensor_save_pb(const sfp_tensor_t *t, const char *path, sfp_error_t *err);

#endif
