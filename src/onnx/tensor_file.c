/* TensorProto files (the input_N.pb / output_N.pb of ONNX's test data, and
 * what `onnx-sfp run` reads and writes): one serialized TensorProto per file.
 * Decoding reuses the model loader's checks (tensor_from_proto); a broken
 * file is bad data (SFP_EBADDATA), never a crash. Saving is atomic. */
#include <stdlib.h>

#include "onnx/onnx_io.h"
#include "util/util.h"

#define TENSOR_FILE_MAX ((size_t)2 << 30) /* protobuf's own 2 GiB limit */

int sfp_tensor_load_pb(const char *path, sfp_tensor_t **out, sfp_error_t *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = sfp_read_file(path, TENSOR_FILE_MAX, &buf, &len, err);
    if (rc < 0) return rc;
    budget_alloc_t alloc;
    budget_alloc_init(&alloc, len * 8 + ((size_t)1 << 20));
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(&alloc.base, len, buf);
    if (!tp) {
        size_t off = 0;
        const char *why = NULL;
        if (alloc.out_of_memory)
            rc = sfp_errorf(err, SFP_ENOMEM, "%s: out of memory decoding the TensorProto", sfp_q(path));
        else if (alloc.exhausted)
            rc = sfp_errorf(err, SFP_EBADDATA, "%s: not a TensorProto: it would need more memory than its size justifies",
                            sfp_q(path));
        else if (wire_scan(buf, len, &off, &why) < 0)
            rc = sfp_errorf(err, SFP_EBADDATA, "%s: not a TensorProto: byte %zu: %s", sfp_q(path), off, why);
        else
            rc = sfp_errorf(err, SFP_EBADDATA, "%s: not a TensorProto: protobuf decoding failed", sfp_q(path));
        free(buf);
        return rc;
    }
    rc = tensor_from_proto(tp, NULL, "tensor", out, err);
    onnx__tensor_proto__free_unpacked(tp, &alloc.base);
    free(buf);
    if (rc < 0) {
        if (err && err->code == SFP_EBADMODEL) err->code = rc = SFP_EBADDATA;
        sfp_error_prefix(err, "%s", sfp_q(path));
    }
    return rc;
}

int sfp_tensor_save_pb(const sfp_tensor_t *t, const char *path, sfp_error_t *err)
{
    if (t->ndim < 0 || t->ndim > SFP_MAX_DIMS || sfp_dtype_size(t->dtype) == 0)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: cannot write a tensor of type %s and rank %d", sfp_q(path),
                          sfp_dtype_name(t->dtype), t->ndim);
    Onnx__TensorProto tp;
    int64_t dims[SFP_MAX_DIMS];
    tensor_to_proto(t, &tp, dims);
    size_t size = protobuf_c_message_get_packed_size(&tp.base);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return sfp_errorf(err, SFP_ENOMEM, "%s: out of memory encoding %zu bytes", sfp_q(path), size);
    size_t len = protobuf_c_message_pack(&tp.base, buf);
    int rc = sfp_write_file_atomic(path, buf, len, err);
    free(buf);
    return rc;
}
