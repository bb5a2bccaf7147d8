/* NumPy .npy files, the arrays `onnx-sfp run` reads and writes beside ONNX
 * TensorProto files (chosen by the .npy extension). */
#ifndef SFP_NPY_H
#define SFP_NPY_H

#include <stdbool.h>

#include "onnxsfp/tensor.h"

/* True when path ends in ".npy". */
bool npy_path(const char *path);
/* Reads a .npy file (format 1.0 to 3.0, C order, little-endian bool, int,
 * uint or float of 2, 4 or 8 bytes). A broken file is SFP_EBADDATA naming
 * it; Fortran order, big-endian and other dtypes are SFP_EUNSUPPORTED. */
int npy_load(const char *path, sfp_tensor_t **out, sfp_error_t *err);
/* Writes t as a format 1.0 .npy file through sfp_write_file_atomic. */
int npy_save(const sfp_tensor_t *t, const char *path, sfp_error_t *err);

#endif
