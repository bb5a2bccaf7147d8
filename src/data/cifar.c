/* CIFAR binary batches: CIFAR-10 records are <label><3072 pixels>, CIFAR-100
 * records <coarse label><fine label><3072 pixels>; pixels are already CHW
 * (1024 red, 1024 green, 1024 blue, rows of 32). Sizes come from stat, are
 * checked to be whole records, and the store is allocated once for all files. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data.h"
#include "util/util.h"

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_MAX_FILE_BYTES ((size_t)1 << 30)

int data_open_cifar(const char *shown_path, const char *const *files, int n_files, bool cifar100,
                    const sfp_data_opts_t *opts, sfp_dataset_t **out, sfp_error_t *err)
{
    const char *name = cifar100 ? "CIFAR-100" : "CIFAR-10";
    const size_t record = CIFAR_PIXELS + (cifar100 ? 2 : 1);
    const int format_classes = cifar100 ? 100 : 10;
    int64_t total = 0;
    for (int f = 0; f < n_files; f++) {
        struct stat st;
        if (stat(files[f], &st) != 0)
            return sfp_errorf(err, SFP_EIO, "%s: cannot open: %s", sfp_q(files[f]), strerror(errno));
        if (!S_ISREG(st.st_mode)) return sfp_errorf(err, SFP_EIO, "%s: not a regular file", sfp_q(files[f]));
        size_t size = (size_t)st.st_size;
        if (size == 0)
            return sfp_errorf(err, SFP_EBADDATA, "%s: empty file, no %s records", sfp_q(files[f]), name);
        if (size % record != 0)
            return sfp_errorf(err, SFP_EBADDATA,
                              "%s: %zu bytes is not a whole number of %zu-byte %s records (%zu bytes of a partial "
                              "record at the end)",
                              sfp_q(files[f]), size, record, name, size % record);
        if (size > CIFAR_MAX_FILE_BYTES)
            return sfp_errorf(err, SFP_EBADDATA, "%s: %zu bytes is larger than a CIFAR batch can be",
                              sfp_q(files[f]), size);
        total += (int64_t)(size / record);
    }
    sfp_dataset_t *ds = NULL;
    int rc = data_set_create(cifar100 ? "cifar100" : "cifar10", shown_path, total, 3, CIFAR_SIDE, CIFAR_SIDE, &ds,
                             err);
    if (rc < 0) return rc;
    int limit = opts->n_classes > 0 && opts->n_classes < format_classes ? opts->n_classes : format_classes;
    int64_t row = 0;
    for (int f = 0; f < n_files && rc == 0; f++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        if ((rc = sfp_read_file(files[f], CIFAR_MAX_FILE_BYTES, &buf, &len, err)) < 0) break;
        if (len % record != 0 || row + (int64_t)(len / record) > total) {
            rc = sfp_errorf(err, SFP_EIO, "%s: changed size while being read", sfp_q(files[f]));
            free(buf);
            break;
        }
        for (size_t r = 0; r < len / record; r++, row++) {
            const uint8_t *rec = buf + r * record;
            int label = rec[cifar100 ? 1 : 0];
            if (label >= limit) {
                rc = sfp_errorf(err, SFP_EBADDATA, "%s: record %zu has label %d, beyond the %d classes of %s",
                                sfp_q(files[f]), r, label, limit, limit < format_classes ? "the model" : name);
                break;
            }
            ds->store->labels[row] = label;
            memcpy(ds->store->pixels + (size_t)row * CIFAR_PIXELS, rec + record - CIFAR_PIXELS, CIFAR_PIXELS);
        }
        free(buf);
    }
    if (rc == 0 && row != total) rc = sfp_errorf(err, SFP_EIO, "%s: files changed while being read", sfp_q(shown_path));
    if (rc == 0)
        rc = data_set_class_names(ds, format_classes, cifar100 ? data_cifar100_names : data_cifar10_names, err);
    if (rc < 0) {
        data_free(ds);
        return rc;
    }
    *out = ds;
    return 0;
}
