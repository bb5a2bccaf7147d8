/* Dense tensor helpers: element sizes, checked element counts, create/clone/free. */
#include <stdlib.h>
#include <string.h>

#include "onnxsfp/tensor.h"
#include "util/util.h"

size_t sfp_dtype_size(sfp_dtype_t dt)
{
    switch (dt) {
    case SFP_DT_FLOAT: case SFP_DT_INT32: case SFP_DT_UINT32: return 4;
    case SFP_DT_UINT8: case SFP_DT_INT8: case SFP_DT_BOOL: return 1;
    case SFP_DT_UINT16: case SFP_DT_INT16: case SFP_DT_FLOAT16: case SFP_DT_BFLOAT16: return 2;
    case SFP_DT_INT64: case SFP_DT_DOUBLE: case SFP_DT_UINT64: return 8;
    default: return 0;
    }
}

const char *sfp_dtype_name(sfp_dtype_t dt)
{
    switch (dt) {
    case SFP_DT_FLOAT: return "float32";
    case SFP_DT_UINT8: return "uint8";
    case SFP_DT_INT8: return "int8";
    case SFP_DT_UINT16: return "uint16";
    case SFP_DT_INT16: return "int16";
    case SFP_DT_INT32: return "int32";
    case SFP_DT_INT64: return "int64";
    case SFP_DT_STRING: return "string";
    case SFP_DT_BOOL: return "bool";
    case SFP_DT_FLOAT16: return "float16";
    case SFP_DT_DOUBLE: return "float64";
    case SFP_DT_UINT32: return "uint32";
    case SFP_DT_UINT64: return "uint64";
    case SFP_DT_BFLOAT16: return "bfloat16";
    default: return "undefined";
    }
}

int sfp_shape_numel(int ndim, const int64_t *dims, int64_t *out, sfp_error_t *err)
{
    int64_t n = 1;
    if (ndim < 0 || ndim > SFP_MAX_DIMS)
        return sfp_errorf(err, SFP_EBADMODEL, "rank %d outside 0..%d", ndim, SFP_MAX_DIMS);
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0)
            return sfp_errorf(err, SFP_EBADMODEL, "negative dimension %lld", (long long)dims[i]);
        if (!sfp_mul_i64(n, dims[i], &n))
            return sfp_errorf(err, SFP_EBADMODEL, "element count overflows");
    }
    *out = n;
    return 0;
}

int sfp_tensor_create(const char *name, sfp_dtype_t dt, int ndim, const int64_t *dims,
                      sfp_tensor_t **out, sfp_error_t *err)
{
    int64_t numel = 0;
    int rc = sfp_shape_numel(ndim, dims, &numel, err);
    if (rc < 0) return rc;
    size_t esize = sfp_dtype_size(dt);
    if (esize == 0)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "tensor type %s is not supported", sfp_dtype_name(dt));
    size_t nbytes = 0;
    if ((uint64_t)numel > SIZE_MAX || !sfp_mul_size((size_t)numel, esize, &nbytes))
        return sfp_errorf(err, SFP_ENOMEM, "tensor of %lld elements is too large", (long long)numel);
    sfp_tensor_t *t = calloc(1, sizeof *t);
    if (!t) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    t->data = calloc(nbytes ? nbytes : 1, 1);
    t->name = name ? sfp_strdup(name) : NULL;
    if (!t->data || (name && !t->name)) {
        sfp_tensor_free(t);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory allocating %zu bytes", nbytes);
    }
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->dims[i] = dims[i];
    t->nbytes = nbytes;
    *out = t;
    return 0;
}

int sfp_tensor_clone(const sfp_tensor_t *t, sfp_tensor_t **out, sfp_error_t *err)
{
    int rc = sfp_tensor_create(t->name, t->dtype, t->ndim, t->dims, out, err);
    if (rc < 0) return rc;
    if (t->nbytes) memcpy((*out)->data, t->data, t->nbytes);
    return 0;
}

void sfp_tensor_free(sfp_tensor_t *t)
{
    if (!t) return;
    free(t->name);
    free(t->data);
    free(t);
}

int64_t sfp_tensor_numel(const sfp_tensor_t *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->dims[i];
    return n;
}

int64_t sfp_tensor_get_int(const sfp_tensor_t *t, int64_t i)
{
    size_t es = sfp_dtype_size(t->dtype);
    if (i < 0 || es == 0 || (uint64_t)(i + 1) * es > t->nbytes) return 0;
    const char *p = (const char *)t->data + (size_t)i * es;
    switch (t->dtype) {
    case SFP_DT_INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    case SFP_DT_UINT64: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
    case SFP_DT_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case SFP_DT_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case SFP_DT_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case SFP_DT_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case SFP_DT_INT8: return (int8_t)*p;
    case SFP_DT_UINT8: case SFP_DT_BOOL: return (uint8_t)*p;
    case SFP_DT_FLOAT: { float v; memcpy(&v, p, 4); return (int64_t)v; }
    case SFP_DT_DOUBLE: { double v; memcpy(&v, p, 8); return (int64_t)v; }
    default: return 0;
    }
}

double sfp_tensor_get_double(const sfp_tensor_t *t, int64_t i)
{
    size_t es = sfp_dtype_size(t->dtype);
    if (i < 0 || es == 0 || (uint64_t)(i + 1) * es > t->nbytes) return 0.0;
    const char *p = (const char *)t->data + (size_t)i * es;
    if (t->dtype == SFP_DT_FLOAT) { float v; memcpy(&v, p, 4); return (double)v; }
    if (t->dtype == SFP_DT_DOUBLE) { double v; memcpy(&v, p, 8); return v; }
    return (double)sfp_tensor_get_int(t, i);
}
