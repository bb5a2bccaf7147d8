/* NumPy .npy files: the magic "\x93NUMPY", major and minor version, the
 * header length (2 bytes little-endian in 1.x, 4 in 2.x and 3.x), a Python
 * dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces to a multiple of 64 bytes and ending in '\n', then the
 * data in C order. Reference: numpy/lib/format.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/npy.h"
#include "util/util.h"

#define NPY_MAX_FILE ((size_t)2 << 30)
#define NPY_MAX_HEADER 65536

/* numpy's type strings, the byte order written as '<' (or '|' for one byte). */
static const struct {
    const char *descr;
    sfp_dtype_t dtype;
} npy_types[] = {
    {"f4", SFP_DT_FLOAT}, {"f8", SFP_DT_DOUBLE}, {"f2", SFP_DT_FLOAT16}, {"i1", SFP_DT_INT8},
    {"u1", SFP_DT_UINT8}, {"i2", SFP_DT_INT16}, {"u2", SFP_DT_UINT16}, {"i4", SFP_DT_INT32},
    {"u4", SFP_DT_UINT32}, {"i8", SFP_DT_INT64}, {"u8", SFP_DT_UINT64}, {"b1", SFP_DT_BOOL},
};

bool npy_path(const char *path)
{
    size_t n = strlen(path);
    return n > 4 && !strcmp(path + n - 4, ".npy");
}

/* The text after 'key': in the header (NUL-terminated), NULL when absent. */
static const char *header_value(const char *header, const char *key)
{
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    const char *p = strstr(header, quoted);
    if (!p) return NULL;
    p += strlen(quoted);
    while (*p == ' ') p++;
    if (*p++ != ':') return NULL;
    while (*p == ' ') p++;
    return p;
}

static int parse_header(const char *path, const char *header, sfp_dtype_t *dtype, int *ndim, int64_t *dims,
                        sfp_error_t *err)
{
    const char *descr = header_value(header, "descr"), *order = header_value(header, "fortran_order");
    const char *shape = header_value(header, "shape");
    if (!descr || !order || !shape || *descr != '\'')
        return sfp_errorf(err, SFP_EBADDATA, "%s: not a .npy header (descr, fortran_order and shape expected)",
                          sfp_q(path));
    const char *end = strchr(descr + 1, '\'');
    size_t len = end ? (size_t)(end - descr - 1) : 0;
    *dtype = SFP_DT_UNDEFINED;
    if (len == 3 && (descr[1] == '<' || descr[1] == '|' || descr[1] == '='))
        for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
            if (!strncmp(descr + 2, npy_types[i].descr, 2)) *dtype = npy_types[i].dtype;
    if (*dtype == SFP_DT_UNDEFINED)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: dtype '%.*s' is not a little-endian bool, int, uint or float",
                          sfp_q(path), (int)(len < 16 ? len : 16), descr + 1);
    if (!strncmp(order, "True", 4))
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: Fortran order (save with np.ascontiguousarray)", sfp_q(path));
    if (strncmp(order, "False", 5)) return sfp_errorf(err, SFP_EBADDATA, "%s: bad fortran_order", sfp_q(path));
    if (*shape++ != '(') return sfp_errorf(err, SFP_EBADDATA, "%s: shape is not a tuple", sfp_q(path));
    *ndim = 0;
    for (;;) {
        while (*shape == ' ' || *shape == ',') shape++;
        if (*shape == ')') break;
        char *after = NULL;
        long long d = strtoll(shape, &after, 10);
        if (after == shape || d < 0) return sfp_errorf(err, SFP_EBADDATA, "%s: bad shape", sfp_q(path));
        if (*ndim == SFP_MAX_DIMS)
            return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: more than %d dimensions", sfp_q(path), SFP_MAX_DIMS);
        dims[(*ndim)++] = d;
        shape = after;
    }
    return 0;
}

int npy_load(const char *path, sfp_tensor_t **out, sfp_error_t *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = sfp_read_file(path, NPY_MAX_FILE, &buf, &len, err);
    if (rc < 0) return rc;
    size_t header_len = 0, start = 0;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0 || buf[6] < 1 || buf[6] > 3) {
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: not a .npy file (format 1.0 to 3.0)", sfp_q(path));
    } else if (buf[6] == 1) {
        header_len = (size_t)buf[8] | (size_t)buf[9] << 8;
        start = 10;
    } else if (len >= 12) {
        header_len = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        start = 12;
    }
    if (rc == 0 && (start == 0 || header_len > NPY_MAX_HEADER || header_len > len - start))
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: .npy header runs past the end of the file", sfp_q(path));
    char *header = rc == 0 ? sfp_strndup((const char *)buf + start, header_len) : NULL;
    if (rc == 0 && !header) rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
    sfp_dtype_t dtype = SFP_DT_UNDEFINED;
    int ndim = 0;
    int64_t dims[SFP_MAX_DIMS] = {0};
    sfp_tensor_t *t = NULL;
    if (rc == 0) rc = parse_header(path, header, &dtype, &ndim, dims, err);
    if (rc == 0 && (rc = sfp_tensor_create(NULL, dtype, ndim, dims, &t, err)) < 0) sfp_error_prefix(err, "%s", sfp_q(path));
    size_t data_at = start + header_len;
    if (rc == 0 && t->nbytes != len - data_at)
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: shape and dtype need %zu bytes of data, the file has %zu", sfp_q(path),
                        t->nbytes, len - data_at);
    if (rc == 0 && t->nbytes) memcpy(t->data, buf + data_at, t->nbytes);
    if (rc == 0) *out = t;
    else sfp_tensor_free(t);
    free(header);
    free(buf);
    return rc;
}

int npy_save(const sfp_tensor_t *t, const char *path, sfp_error_t *err)
{
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (npy_types[i].dtype == t->dtype) descr = npy_types[i].descr;
    if (!descr || t->ndim < 0 || t->ndim > SFP_MAX_DIMS)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: cannot write a tensor of type %s as .npy", sfp_q(path),
                          sfp_dtype_name(t->dtype));
    char header[512];
    int n = snprintf(header, sizeof header, "{'descr': '%c%s', 'fortran_order': False, 'shape': (",
                     sfp_dtype_size(t->dtype) == 1 ? '|' : '<', descr);
    for (int k = 0; k < t->ndim; k++) /* as numpy writes it: (3,) and (2, 3) */
        n += snprintf(header + n, sizeof header - (size_t)n, "%s%lld", k ? ", " : "", (long long)t->dims[k]);
    n += snprintf(header + n, sizeof header - (size_t)n, "%s), }", t->ndim == 1 ? "," : "");
    size_t total_header = ((size_t)n + 10 + 1 + 63) / 64 * 64; /* magic..length, the dict, '\n', to 64 bytes */
    size_t pad = total_header - 10 - (size_t)n - 1;
    sfp_buf_t b = {0};
    uint8_t lead[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)((total_header - 10) & 0xff),
                        (uint8_t)((total_header - 10) >> 8)};
    sfp_buf_append(&b, lead, sizeof lead);
    sfp_buf_append(&b, header, (size_t)n);
    for (size_t i = 0; i < pad; i++) sfp_buf_append(&b, " ", 1);
    sfp_buf_append(&b, "\n", 1);
    sfp_buf_append(&b, t->data, t->nbytes);
    int rc = b.failed ? sfp_errorf(err, SFP_ENOMEM, "%s: out of memory", sfp_q(path))
                      : sfp_write_file_atomic(path, b.data, b.len, err);
    free(b.data);
    return rc;
}
