/* TensorProto <-> sfp_tensor_t: raw_data, the typed fields, and external data
 * confined to the model's folder. Sizes are checked against the data present
 * before anything is allocated, so dims cannot make us allocate more than the
 * file holds. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx/onnx_io.h"
#include "util/util.h"

static int bad(sfp_error_t *err, const char *what, const char *name, const char *fmt_reason)
{
    return sfp_errorf(err, SFP_EBADMODEL, "%s '%s': %s", what, sfp_q(name), fmt_reason);
}

/* Opens the external data file of a tensor (location relative to base_dir) and
 * checks that [offset, offset + length) lies inside it. Nothing is allocated
 * for the tensor before this succeeds. Returns the open descriptor in *fd. */
static int external_open(const char *base_dir, const char *name, const char *location, uint64_t offset,
                         uint64_t length, int *fd_out, sfp_error_t *err)
{
    char base_real[PATH_MAX], file_real[PATH_MAX];
    if (!location || !*location)
        return sfp_errorf(err, SFP_EBADMODEL, "tensor '%s': external data without a location", sfp_q(name));
    if (location[0] == '/')
        return sfp_errorf(err, SFP_EBADMODEL, "tensor '%s': external data path '%s' is absolute; only files inside the model's folder are read",
                          sfp_q(name), sfp_q(location));
    if (!base_dir)
        return sfp_errorf(err, SFP_EBADMODEL, "tensor '%s': external data but the model has no folder", sfp_q(name));
    if (!realpath(base_dir, base_real))
        return sfp_errorf(err, SFP_EIO, "tensor '%s': cannot resolve the model folder: %s", sfp_q(name), strerror(errno));
    size_t need = strlen(base_real) + strlen(location) + 2;
    char *joined = malloc(need);
    if (!joined) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    snprintf(joined, need, "%s/%s", base_real, location);
    char *ok = realpath(joined, file_real);
    free(joined);
    if (!ok)
        return sfp_errorf(err, SFP_EBADMODEL, "tensor '%s': external data file '%s': %s", sfp_q(name),
                          sfp_q(location), strerror(errno));
    size_t bl = strlen(base_real);
    if (strncmp(file_real, base_real, bl) != 0 || (file_real[bl] != '/' && bl != 1))
        return sfp_errorf(err, SFP_EBADMODEL, "tensor '%s': external data '%s' lies outside the model's folder",
                          sfp_q(name), sfp_q(location));
    int fd = open(file_real, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return sfp_errorf(err, SFP_EBADMODEL, "tensor '%s': cannot open external data '%s': %s", sfp_q(name),
                          sfp_q(location), strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = sfp_errorf(err, SFP_EBADMODEL, "tensor '%s': external data '%s' is not a regular file", sfp_q(name),
                        sfp_q(location));
    else if (offset > (uint64_t)st.st_size || length > (uint64_t)st.st_size - offset)
        rc = sfp_errorf(err, SFP_EBADMODEL, "tensor '%s': external data '%s' has %lld bytes, offset %llu + length %llu runs past its end",
                        sfp_q(name), sfp_q(location), (long long)st.st_size, (unsigned long long)offset,
                        (unsigned long long)length);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

static int external_read(int fd, const char *name, uint64_t offset, void *dst, size_t length, sfp_error_t *err)
{
    size_t got = 0;
    while (got < length) {
        ssize_t r = pread(fd, (char *)dst + got, length - got, (off_t)(offset + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return sfp_errorf(err, SFP_EIO, "tensor '%s': reading external data failed", sfp_q(name));
        got += (size_t)r;
    }
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || s[0] == '-') return -1;
    *out = v;
    return 0;
}

/* Location and offset of a tensor's external data, its length checked against
 * nbytes, and the file opened and bounds-checked. */
static int external_prepare(const Onnx__TensorProto *tp, const char *base_dir, const char *name, uint64_t nbytes,
                            int *fd, uint64_t *offset, sfp_error_t *err)
{
    const char *location = NULL;
    uint64_t length = nbytes;
    int has_length = 0;
    *offset = 0;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *kv = tp->external_data[i];
        if (!kv->key) continue;
        if (strcmp(kv->key, "location") == 0) {
            location = kv->value;
        } else if (strcmp(kv->key, "offset") == 0) {
            if (parse_u64(kv->value, offset) < 0) return bad(err, "tensor", name, "external data offset is not a number");
        } else if (strcmp(kv->key, "length") == 0) {
            if (parse_u64(kv->value, &length) < 0) return bad(err, "tensor", name, "external data length is not a number");
            has_length = 1;
        }
    }
    if (has_length && length != nbytes)
        return sfp_errorf(err, SFP_EBADMODEL, "tensor '%s': external data length %llu does not match its dims (%llu bytes)",
                          sfp_q(name), (unsigned long long)length, (unsigned long long)nbytes);
    return external_open(base_dir, name, location, *offset, nbytes, fd, err);
}

/* Copies the typed field that ONNX uses for this dtype into t. */
static int copy_typed(const Onnx__TensorProto *tp, sfp_tensor_t *t, int64_t numel, const char *what,
                      const char *name, sfp_error_t *err)
{
    size_t have = 0;
    switch (t->dtype) {
    case SFP_DT_FLOAT: have = tp->n_float_data; break;
    case SFP_DT_DOUBLE: have = tp->n_double_data; break;
    case SFP_DT_INT64: have = tp->n_int64_data; break;
    case SFP_DT_UINT32: case SFP_DT_UINT64: have = tp->n_uint64_data; break;
    default: have = tp->n_int32_data; break;
    }
    if ((uint64_t)have != (uint64_t)numel)
        return sfp_errorf(err, SFP_EBADMODEL, "%s '%s': holds %zu values of its data type but its dims need %lld",
                          what, sfp_q(name), have, (long long)numel);
    for (int64_t i = 0; i < numel; i++) {
        char *dst = (char *)t->data + (size_t)i * sfp_dtype_size(t->dtype);
        switch (t->dtype) {
        case SFP_DT_FLOAT: memcpy(dst, &tp->float_data[i], 4); break;
        case SFP_DT_DOUBLE: memcpy(dst, &tp->double_data[i], 8); break;
        case SFP_DT_INT64: memcpy(dst, &tp->int64_data[i], 8); break;
        case SFP_DT_UINT64: memcpy(dst, &tp->uint64_data[i], 8); break;
        case SFP_DT_UINT32: { uint32_t v = (uint32_t)tp->uint64_data[i]; memcpy(dst, &v, 4); break; }
        case SFP_DT_INT32: memcpy(dst, &tp->int32_data[i], 4); break;
        case SFP_DT_INT16: case SFP_DT_UINT16: case SFP_DT_FLOAT16: case SFP_DT_BFLOAT16: {
            uint16_t v = (uint16_t)tp->int32_data[i];
            memcpy(dst, &v, 2);
            break;
        }
        default: *dst = (char)(uint8_t)tp->int32_data[i]; break;
        }
    }
    return 0;
}

int tensor_from_proto(const Onnx__TensorProto *tp, const char *base_dir, const char *what,
                      sfp_tensor_t **out, sfp_error_t *err)
{
    const char *name = tp->name ? tp->name : "";
    sfp_dtype_t dt = tp->has_data_type ? (sfp_dtype_t)tp->data_type : SFP_DT_UNDEFINED;
    /* TensorProto.DataType of ONNX 1.12..1.16 ends at 20 (float8 variants). */
    if (dt < SFP_DT_UNDEFINED || dt > 20)
        return sfp_errorf(err, SFP_EBADMODEL, "%s '%s': data type %d is not an ONNX data type", what, sfp_q(name),
                          (int)dt);
    if (sfp_dtype_size(dt) == 0)
        return sfp_errorf(err, dt == SFP_DT_UNDEFINED ? SFP_EBADMODEL : SFP_EUNSUPPORTED,
                          "%s '%s': data type %d (%s) is not supported", what, sfp_q(name), (int)dt,
                          sfp_dtype_name(dt));
    if (tp->segment)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s '%s': segmented tensors are not supported", what, sfp_q(name));
    if (tp->n_dims > SFP_MAX_DIMS)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s '%s': rank %zu above the %d supported", what,
                          sfp_q(name), tp->n_dims, SFP_MAX_DIMS);
    int64_t numel = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0)
            return sfp_errorf(err, SFP_EBADMODEL, "%s '%s': dimension %zu is negative (%lld)", what,
                              sfp_q(name), i, (long long)tp->dims[i]);
        if (!sfp_mul_i64(numel, tp->dims[i], &numel) || numel > (INT64_MAX >> 4))
            return sfp_errorf(err, SFP_EBADMODEL, "%s '%s': dims overflow", what, sfp_q(name));
    }
    size_t esize = sfp_dtype_size(dt);
    uint64_t nbytes = (uint64_t)numel * esize;
    int external = tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    size_t typed = tp->n_float_data + tp->n_int32_data + tp->n_int64_data + tp->n_double_data +
                   tp->n_uint64_data;
    if ((external && (tp->has_raw_data || typed)) || (tp->has_raw_data && typed))
        return sfp_errorf(err, SFP_EBADMODEL, "%s '%s': holds its values twice (%s and %s); ONNX allows one of them",
                          what, sfp_q(name), tp->has_raw_data ? "raw_data" : "typed data fields",
                          external ? "an external data location" : "typed data fields");
    if (!external) {
        /* The file must hold the data: check before allocating. */
        if (tp->has_raw_data) {
            if (tp->raw_data.len != nbytes)
                return sfp_errorf(err, SFP_EBADMODEL, "%s '%s': raw_data has %zu bytes but its dims need %lld %s values = %llu bytes",
                                  what, sfp_q(name), tp->raw_data.len, (long long)numel, sfp_dtype_name(dt),
                                  (unsigned long long)nbytes);
        } else if ((uint64_t)typed != (uint64_t)numel) {
            return sfp_errorf(err, SFP_EBADMODEL, "%s '%s': holds %zu values but its dims need %lld", what,
                              sfp_q(name), typed, (long long)numel);
        }
    } else if (!base_dir) {
        return sfp_errorf(err, SFP_EBADMODEL, "%s '%s': external data is not allowed here", what, sfp_q(name));
    }
    int fd = -1, rc;
    uint64_t ext_offset = 0;
    if (external && (rc = external_prepare(tp, base_dir, name, nbytes, &fd, &ext_offset, err)) < 0) return rc;
    sfp_tensor_t *t = NULL;
    rc = sfp_tensor_create(name, dt, (int)tp->n_dims, tp->dims, &t, err);
    if (rc < 0) {
        if (fd >= 0) close(fd);
        return rc;
    }
    if (external) {
        rc = external_read(fd, name, ext_offset, t->data, t->nbytes, err);
        close(fd);
    } else if (tp->has_raw_data) {
        if (nbytes) memcpy(t->data, tp->raw_data.data, (size_t)nbytes);
    } else {
        rc = copy_typed(tp, t, numel, what, name, err);
    }
    if (rc < 0) {
        sfp_tensor_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void tensor_to_proto(const sfp_tensor_t *t, Onnx__TensorProto *tp, int64_t *dims_buf)
{
    onnx__tensor_proto__init(tp);
    for (int i = 0; i < t->ndim; i++) dims_buf[i] = t->dims[i];
    tp->n_dims = (size_t)t->ndim;
    tp->dims = dims_buf;
    tp->has_data_type = 1;
    tp->data_type = (int32_t)t->dtype;
    tp->name = t->name;
    tp->has_raw_data = 1;
    tp->raw_data.len = t->nbytes;
    tp->raw_data.data = t->data;
}
