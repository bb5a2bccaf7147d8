/* model_load: decode (src/onnx), validate, read constants directly instead of
 * through Identity, make the batch free, infer shapes for batch 1. What every
 * command calls to get a model it can trust. */
#include "ops/ops.h"
#include <stdlib.h>

#include "util/util.h"

#define MODEL_FILE_MAX ((size_t)2 << 30) /* protobuf's own 2 GiB limit */

static int load_once(const uint8_t *buf, size_t len, const char *path, const char *input_shape, bool free_batch,
                     sfp_model_t **out, sfp_error_t *err)
{
    sfp_model_t *m = NULL;
    int rc = model_decode(buf, len, path, &m, err);
    if (rc < 0) return rc;
    if ((input_shape && (rc = model_fix_input_shape(m, input_shape, err)) < 0) || (rc = model_validate(m, err)) < 0 || (rc = model_resolve_aliases(m, err)) < 0 ||
        (free_batch && (rc = model_free_batch(m, err)) != 0) || (rc = model_infer_shapes(m, 1, err)) < 0) {
        if (rc > 0) { /* not batch-free: the caller loads it as declared */
            model_free(m);
            return rc;
        }
        sfp_error_prefix(err, "%s", sfp_q(path ? path : "(memory)"));
        model_free(m);
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

int model_load_bytes(const uint8_t *buf, size_t len, const char *path, sfp_model_t **out, sfp_error_t *err)
{
    return load_bytes(buf, len, path, NULL, out, err);
}

int model_load_shaped(const char *path, const char *input_shape, sfp_model_t **out, sfp_error_t *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = sfp_read_file(path, MODEL_FILE_MAX, &buf, &len, err);
    if (rc < 0) return rc;
    rc = load_bytes(buf, len, path, input_shape, out, err);
    free(buf);
    return rc;
}

int model_load(const char *path, sfp_model_t **out, sfp_error_t *err)
{
    return model_load_shaped(path, NULL, out, err);
}
