/* A model in and out of bytes and files: load = decode (src/onnx), input
 * sizes, validate, untie exporter aliases, make the batch free, infer shapes
 * for batch 1 (what every command calls to get a model it can trust); save
 * is atomic; clone goes through the codec. */
#include <stdlib.h>

#include "model/model.h"
#include "onnx/onnx.h"
#include "util/util.h"

#define MODEL_FILE_MAX ((size_t)2 << 30) /* protobuf's own 2 GiB limit */

/* Decode, input sizes, validate, untie exporter aliases, batch-free form
 * (unless free_batch is false), shapes at batch 1. Returns 1 (nothing in
 * *out) when the batch cannot be made free: the caller loads as declared. */
static int load_once(const uint8_t *buf, size_t len, const char *path, const char *input_shape, bool free_batch,
                     sfp_model_t **out, sfp_error_t *err)
{
    sfp_model_t *m = NULL;
    int rc = onnx_decode_model(buf, len, path, &m, err);
    if (rc < 0) return rc;
    if ((input_shape && (rc = model_fix_input_shape(m, input_shape, err)) < 0) || (rc = model_validate(m, err)) < 0 ||
        (rc = model_untie_aliases(m, err)) < 0 || (free_batch && (rc = model_free_batch(m, err)) != 0) ||
        (rc = model_infer_shapes(m, 1, err)) < 0) {
        if (rc < 0) sfp_error_prefix(err, "%s", sfp_q(path ? path : "(memory)"));
        sfp_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

static int load_bytes(const uint8_t *buf, size_t len, const char *path, const char *input_shape, sfp_model_t **out,
                      sfp_error_t *err)
{
    int rc = load_once(buf, len, path, input_shape, true, out, err);
    return rc > 0 ? load_once(buf, len, path, input_shape, false, out, err) : rc;
}

int sfp_model_load_bytes(const uint8_t *buf, size_t len, const char *path, sfp_model_t **out, sfp_error_t *err)
{
    return load_bytes(buf, len, path, NULL, out, err);
}

int sfp_model_load_shaped(const char *path, const char *input_shape, sfp_model_t **out, sfp_error_t *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = sfp_read_file(path, MODEL_FILE_MAX, &buf, &len, err);
    if (rc < 0) return rc;
    rc = load_bytes(buf, len, path, input_shape, out, err);
    free(buf);
    return rc;
}

int sfp_model_load(const char *path, sfp_model_t **out, sfp_error_t *err)
{
    return sfp_model_load_shaped(path, NULL, out, err);
}

int sfp_model_encode(const sfp_model_t *m, uint8_t **out, size_t *out_len, sfp_error_t *err)
{
    return onnx_encode_model(m, out, out_len, err);
}

int sfp_model_save(const sfp_model_t *m, const char *path, sfp_error_t *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = onnx_encode_model(m, &buf, &len, err);
    if (rc < 0) return rc;
    rc = sfp_write_file_atomic(path, buf, len, err);
    free(buf);
    return rc;
}

int sfp_model_clone(const sfp_model_t *m, sfp_model_t **out, sfp_error_t *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = onnx_encode_model(m, &buf, &len, err);
    if (rc < 0) return rc;
    rc = sfp_model_load_bytes(buf, len, m->path, out, err);
    free(buf);
    return rc;
}
