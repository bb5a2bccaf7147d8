/* IDX files (the MNIST layout), raw or gzip-compressed, through zlib's gz
 * reader (which also reads raw files). Headers of both files are read and
 * checked first; nothing is allocated before the sizes they declare are
 * justified: a raw file must be exactly header + data, and a .gz file may
 * declare up to 64 MiB, or more only at a ratio image data can compress to
 * (far below deflate's 1032:1, which a gzip bomb reaches). Inflation stops
 * at the declared size; extra data is refused. */
#define _DEFAULT_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/data.h"
#include "util/util.h"

/* What a .gz file may declare: any size up to GZ_FREE_BYTES (the whole of
 * MNIST), beyond that at most GZ_MAX_RATIO times the file (MNIST and
 * Fashion-MNIST images compress 4.8:1 and 1.8:1; deflate's limit is 1032:1). */
#define GZ_FREE_BYTES (64ull << 20)
#define GZ_MAX_RATIO 64ull

typedef struct idx_reader {
    const char *path;
    gzFile gz;
    bool compressed;
    int ndims;
    uint32_t dims[3];
    size_t body_bytes; /* product of dims */
} idx_reader_t;

static void idx_close(idx_reader_t *r)
{
    if (r->gz) gzclose(r->gz);
    r->gz = NULL;
}

/* Reads up to len bytes; *got is what arrived. Errors other than a short
 * stream (reported by the caller as truncation) are returned. */
static int gz_read_some(idx_reader_t *r, uint8_t *buf, size_t len, size_t *got, sfp_error_t *err)
{
    *got = 0;
    while (*got < len) {
        size_t chunk = len - *got;
        if (chunk > (1u << 30)) chunk = 1u << 30;
        int n = gzread(r->gz, buf + *got, (unsigned)chunk);
        if (n < 0) {
            int errnum = Z_OK;
            const char *msg = gzerror(r->gz, &errnum);
            if (errnum == Z_ERRNO)
                return sfp_errorf(err, SFP_EIO, "%s: read failed: %s", sfp_q(r->path), strerror(errno));
            if (errnum == Z_BUF_ERROR) return 0; /* unexpected end of the stream */
            return sfp_errorf(err, SFP_EBADDATA, "%s: corrupt gzip data: %s", sfp_q(r->path), sfp_q(msg));
        }
        if (n == 0) break;
        *got += (size_t)n;
    }
    return 0;
}

/* The name of an IDX element type other than unsigned bytes (magic
 * 0x0000TTNN with NN = ndims), or NULL. */
static const char *idx_type_name(uint32_t magic, int ndims)
{
    static const struct {
        uint8_t code;
        const char *name;
    } types[] = {{0x09, "int8"}, {0x0B, "int16"}, {0x0C, "int32"}, {0x0D, "float32"}, {0x0E, "float64"}};
    if ((magic & 0xffff00ffu) != (uint32_t)ndims) return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (((magic >> 8) & 0xffu) == types[i].code) return types[i].name;
    return NULL;
}

/* Opens path and reads its header: magic 0x000008NN (unsigned bytes, NN
 * dims) and NN big-endian uint32 dims. role is "images" or "labels". */
static int idx_open(const char *path, int ndims, const char *role, idx_reader_t *r, sfp_error_t *err)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->ndims = ndims;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sfp_errorf(err, SFP_EIO, "%s: cannot open: %s", sfp_q(path), strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return sfp_errorf(err, SFP_EIO, "%s: not a readable regular file", sfp_q(path));
    }
    r->gz = gzdopen(fd, "rb");
    if (!r->gz) {
        close(fd);
        return sfp_errorf(err, SFP_ENOMEM, "%s: cannot start reading (out of memory)", sfp_q(path));
    }
    gzbuffer(r->gz, 1u << 17);

    uint8_t header[4 + 4 * 3];
    size_t header_bytes = 4 + 4 * (size_t)ndims, got = 0;
    int rc = gz_read_some(r, header, header_bytes, &got, err);
    if (rc < 0) return rc;
    r->compressed = !gzdirect(r->gz);
    if (got < 4)
        return sfp_errorf(err, SFP_EBADDATA, "%s: truncated: %zu bytes, shorter than an IDX header", sfp_q(path),
                          got);
    uint32_t magic = (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 | (uint32_t)header[2] << 8 | header[3];
    uint32_t want = 0x0800u | (uint32_t)ndims;
    const char *type = idx_type_name(magic, ndims);
    if (type)
        return sfp_errorf(err, SFP_EUNSUPPORTED,
                          "%s: IDX data type 0x%02x (%s) is not supported for %s: only unsigned bytes (0x08)",
                          sfp_q(path), (magic >> 8) & 0xffu, type, role);
    if (magic != want)
        return sfp_errorf(err, SFP_EBADDATA,
                          "%s: wrong magic 0x%08x for IDX %s (expected 0x%08x: unsigned bytes, %d dims)",
                          sfp_q(path), magic, role, want, ndims);
    if (got < header_bytes)
        return sfp_errorf(err, SFP_EBADDATA, "%s: truncated in the header (%zu of %zu bytes)", sfp_q(path), got,
                          header_bytes);
    size_t body = 1;
    for (int d = 0; d < ndims; d++) {
        const uint8_t *b = header + 4 + 4 * d;
        r->dims[d] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (r->dims[d] == 0)
            return sfp_errorf(err, SFP_EBADDATA, "%s: header declares an empty dimension (dim %d is 0)",
                              sfp_q(path), d);
        if (!sfp_mul_size(body, r->dims[d], &body))
            return sfp_errorf(err, SFP_EBADDATA, "%s: header declares dimensions whose product overflows",
                              sfp_q(path));
    }
    r->body_bytes = body;
    char what[96];
    if (ndims == 3)
        snprintf(what, sizeof what, "%u images of %ux%u", r->dims[0], r->dims[1], r->dims[2]);
    else snprintf(what, sizeof what, "%u labels", r->dims[0]);
    unsigned long long total = (unsigned long long)header_bytes + body;
    unsigned long long file_bytes = (unsigned long long)st.st_size;
    if (!r->compressed && total != file_bytes)
        return sfp_errorf(err, SFP_EBADDATA, "%s: header declares %s (%llu bytes with the header) but the file holds "
                          "%llu bytes (%s)",
                          sfp_q(path), what, total, file_bytes, total > file_bytes ? "truncated" : "trailing data");
    if (r->compressed && total > GZ_FREE_BYTES && total / GZ_MAX_RATIO >= file_bytes)
        return sfp_errorf(err, SFP_EBADDATA,
                          "%s: header declares %s (%llu bytes), more than %llu times the %llu-byte gzip file: "
                          "refused as a gzip bomb (image data does not compress that far)",
                          sfp_q(path), what, total, GZ_MAX_RATIO, file_bytes);
    return 0;
}

/* Reads the body (body_bytes) into dst and checks nothing follows it. */
static int idx_read_body(idx_reader_t *r, uint8_t *dst, sfp_error_t *err)
{
    size_t got = 0;
    int rc = gz_read_some(r, dst, r->body_bytes, &got, err);
    if (rc < 0) return rc;
    if (got < r->body_bytes)
        return sfp_errorf(err, SFP_EBADDATA, "%s: truncated: %s to %zu data bytes, the header declares %zu",
                          sfp_q(r->path), r->compressed ? "inflates" : "holds", got, r->body_bytes);
    uint8_t extra = 0;
    if ((rc = gz_read_some(r, &extra, 1, &got, err)) < 0) return rc;
    if (got != 0)
        return sfp_errorf(err, SFP_EBADDATA, "%s: holds more data than the %zu bytes its header declares",
                          sfp_q(r->path), r->body_bytes);
    return 0;
}

static bool mentions_fashion(const char *path)
{
    static const char word[] = "fashion";
    for (const char *p = path; *p; p++) {
        size_t i = 0;
        while (word[i] && p[i] && tolower((unsigned char)p[i]) == word[i]) i++;
        if (!word[i]) return true;
    }
    return false;
}

int data_open_idx(const char *images_path, const char *labels_path, const sfp_data_opts_t *opts,
                  sfp_dataset_t **out, sfp_error_t *err)
{
    idx_reader_t images, labels;
    uint8_t *label_bytes = NULL;
    sfp_dataset_t *ds = NULL;
    memset(&labels, 0, sizeof labels);
    int rc = idx_open(images_path, 3, "images", &images, err);
    if (rc < 0) goto done;
    if ((rc = idx_open(labels_path, 1, "labels", &labels, err)) < 0) goto done;
    if (images.dims[0] != labels.dims[0]) {
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: holds %u images but %s holds %u labels", sfp_q(images_path),
                        images.dims[0], sfp_q(labels_path), labels.dims[0]);
        goto done;
    }
    if (images.dims[1] > DATA_MAX_SIDE || images.dims[2] > DATA_MAX_SIDE) {
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: images of %ux%u are beyond the %d-pixel limit", sfp_q(images_path),
                        images.dims[1], images.dims[2], DATA_MAX_SIDE);
        goto done;
    }
    int64_t n = images.dims[0];
    label_bytes = malloc(labels.body_bytes);
    if (!label_bytes) {
        rc = sfp_errorf(err, SFP_ENOMEM, "%s: out of memory for %lld labels", sfp_q(labels_path), (long long)n);
        goto done;
    }
    if ((rc = idx_read_body(&labels, label_bytes, err)) < 0) goto done;
    int max_label = 0, n_distinct = 0;
    bool present[256] = {false};
    for (int64_t i = 0; i < n; i++) {
        if (opts->n_classes > 0 && label_bytes[i] >= opts->n_classes) {
            rc = sfp_errorf(err, SFP_EBADDATA, "%s: label %d of record %lld is beyond the %d classes of the model",
                            sfp_q(labels_path), label_bytes[i], (long long)i, opts->n_classes);
            goto done;
        }
        if (label_bytes[i] > max_label) max_label = label_bytes[i];
        n_distinct += !present[label_bytes[i]];
        present[label_bytes[i]] = true;
    }
    /* Without the model's class count, the labels must show a classification. */
    if (opts->n_classes <= 0 && n_distinct < 2) {
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: every label is %d; at least 2 classes are needed",
                        sfp_q(labels_path), max_label);
        goto done;
    }
    int n_classes = opts->n_classes > 0 ? opts->n_classes : max_label + 1;
    const char *format = images.compressed || labels.compressed ? "idx.gz" : "idx";
    if ((rc = data_set_create(format, images_path, n, 1, (int)images.dims[1], (int)images.dims[2], &ds, err)) < 0)
        goto done;
    for (int64_t i = 0; i < n; i++) ds->store->labels[i] = label_bytes[i];
    bool fashion = n_classes == 10 && mentions_fashion(images_path);
    if ((rc = data_set_class_names(ds, n_classes, fashion ? data_fashion_mnist_names : NULL, err)) < 0) goto done;
    if ((rc = idx_read_body(&images, ds->store->pixels, err)) < 0) goto done;
    *out = ds;
    ds = NULL;
done:
    idx_close(&images);
    idx_close(&labels);
    free(label_bytes);
    data_free(ds);
    return rc;
}
