/* Image folders: one sub-folder per class (byte-wise sorted names give the
 * label order), optionally under train/ and test/ (or val/) split folders,
 * and lists of unlabelled image files. Images are recognised by extension;
 * other entries are skipped and counted, names starting with '.' ignored.
 * Every image is decoded, converted and fitted to one geometry at load. */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/data.h"
#include "util/util.h"

#define PROBED_MAX_PIXELS ((int64_t)1 << 20)

static const char *const image_extensions[] = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".pnm"};

typedef struct name_list {
    char **names;
    int n, cap;
} name_list_t;

static void names_clear(name_list_t *l)
{
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

static int names_add(name_list_t *l, char *owned, sfp_error_t *err)
{
    if (!owned) return sfp_errorf(err, SFP_ENOMEM, "out of memory listing a folder");
    int rc = sfp_grow((void **)&l->names, &l->cap, l->n + 1, sizeof *l->names, err);
    if (rc < 0) {
        free(owned);
        return rc;
    }
    l->names[l->n++] = owned;
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/') p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

/* The entries of dir not starting with '.', sorted byte-wise. */
static int list_folder(const char *dir, name_list_t *out, sfp_error_t *err)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) return sfp_errorf(err, SFP_EIO, "%s: cannot open the folder: %s", sfp_q(dir), strerror(errno));
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno) rc = sfp_errorf(err, SFP_EIO, "%s: cannot list the folder: %s", sfp_q(dir), strerror(errno));
            break;
        }
        if (e->d_name[0] == '.') continue;
        if ((rc = names_add(out, sfp_strdup(e->d_name), err)) < 0) break;
    }
    closedir(d);
    if (rc < 0) {
        names_clear(out);
        return rc;
    }
    if (out->n > 1) qsort(out->names, (size_t)out->n, sizeof *out->names, compare_names);
    return 0;
}

static int is_folder(const char *dir, const char *name, bool *yes, sfp_error_t *err)
{
    char *p = path_join(dir, name);
    if (!p) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    struct stat st;
    int rc = 0;
    if (stat(p, &st) != 0) rc = sfp_errorf(err, SFP_EIO, "%s: cannot open: %s", sfp_q(p), strerror(errno));
    else *yes = S_ISDIR(st.st_mode);
    free(p);
    return rc;
}

static bool has_image_extension(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return false;
    for (size_t i = 0; i < sizeof image_extensions / sizeof image_extensions[0]; i++)
        if (strcasecmp(dot, image_extensions[i]) == 0) return true;
    return false;
}

/* Model geometry from opts, zeros filled from the first image. */
static int pick_geometry(const char *first, const sfp_data_opts_t *opts, int *c, int *h, int *w, sfp_error_t *err)
{
    *c = opts->channels;
    *h = opts->height;
    *w = opts->width;
    if (*c > 0 && *h > 0 && *w > 0) return 0;
    int fc = 0, fh = 0, fw = 0;
    int rc = data_image_probe(first, &fc, &fh, &fw, err);
    if (rc < 0) return rc;
    if (*c <= 0) *c = fc;
    if (*h <= 0 || *w <= 0) {
        *h = fh;
        *w = fw;
    }
    /* Every image is stored at this size: without a model, only a modest one. */
    if ((int64_t)*h * *w > PROBED_MAX_PIXELS)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: %dx%d images need the model's input size to be given",
                          sfp_q(first), *h, *w);
    return 0;
}

/* Moves the files that did not decode out of ds's rows into the store's
 * list of unreadable files (all of them: ds->n becomes 0). */
static int leave_out_unreadable(sfp_dataset_t *ds, const data_image_info_t *infos, int n, sfp_error_t *err)
{
    sfp_data_store_t *st = ds->store;
    int64_t n_bad = 0, kept = 0;
    for (int i = 0; i < n; i++) n_bad += infos[i].rc != 0;
    if (n_bad == 0) return 0;
    st->bad_paths = calloc((size_t)n_bad, sizeof *st->bad_paths);
    st->bad_reasons = calloc((size_t)n_bad, sizeof *st->bad_reasons);
    if (!st->bad_paths || !st->bad_reasons) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        if (infos[i].rc == 0) {
            ds->rows[kept++] = i;
            continue;
        }
        int64_t j = st->n_bad++;
        st->bad_paths[j] = sfp_strdup(st->row_paths[i]);
        /* The reason without the path the message starts with. */
        const char *reason = infos[i].reason;
        size_t len = strlen(st->row_paths[i]);
        if (!strncmp(reason, st->row_paths[i], len) && !strncmp(reason + len, ": ", 2)) reason += len + 2;
        st->bad_reasons[j] = sfp_strdup(reason);
        if (!st->bad_paths[j] || !st->bad_reasons[j]) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    ds->n = kept;
    return 0;
}

/* Decodes the listed files into a new set (labels may be NULL: unlabelled). */
static int load_files(const char *format, const char *shown_path, const char *const *paths, const int32_t *labels,
                      int n, const sfp_data_opts_t *opts, sfp_dataset_t **out, sfp_error_t *err)
{
    int c = 0, h = 0, w = 0;
    int rc = pick_geometry(paths[0], opts, &c, &h, &w, err);
    if (rc < 0) return rc;
    if (c != 1 && c != 3)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: the model's input has %d channels; images convert to 1 or 3",
                          sfp_q(shown_path), c);
    sfp_dataset_t *ds = NULL;
    if ((rc = data_set_create(format, shown_path, n, c, h, w, &ds, err)) < 0) return rc;
    sfp_data_store_t *st = ds->store;
    data_image_info_t *infos = calloc((size_t)n, sizeof *infos);
    st->row_paths = calloc((size_t)n, sizeof *st->row_paths);
    st->row_geometry = calloc(3 * (size_t)n, sizeof *st->row_geometry);
    if (!st->row_paths || !st->row_geometry || !infos) rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int i = 0; i < n && rc == 0; i++) {
        if (!(st->row_paths[i] = sfp_strdup(paths[i]))) rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        st->labels[i] = labels ? labels[i] : -1;
    }
    if (rc == 0) rc = data_image_load_many(paths, n, c, h, w, st->pixels, infos, opts->skip_unreadable, err);
    for (int i = 0; i < n && rc == 0; i++) {
        st->row_geometry[3 * (size_t)i] = infos[i].channels;
        st->row_geometry[3 * (size_t)i + 1] = infos[i].height;
        st->row_geometry[3 * (size_t)i + 2] = infos[i].width;
    }
    if (rc == 0) rc = leave_out_unreadable(ds, infos, n, err);
    free(infos);
    if (rc < 0) {
        data_free(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

int data_open_images(const char *const *paths, int n_paths, const sfp_data_opts_t *opts, sfp_dataset_t **out,
                     sfp_error_t *err)
{
    sfp_data_opts_t none = {0};
    if (n_paths < 1) return sfp_errorf(err, SFP_EUSAGE, "no image files given");
    return load_files("images", paths[0], paths, NULL, n_paths, opts ? opts : &none, out, err);
}

/* root, or root/<split> when root's only sub-folders are train/ test/ val/. */
static int class_root(const char *root, const char *split, const name_list_t *entries, char **out,
                      int64_t *skipped, sfp_error_t *err)
{
    bool has_train = false, has_test = false, has_val = false, only_splits = true;
    int n_dirs = 0;
    for (int i = 0; i < entries->n; i++) {
        bool dir = false;
        int rc = is_folder(root, entries->names[i], &dir, err);
        if (rc < 0) return rc;
        if (!dir) continue;
        n_dirs++;
        const char *nm = entries->names[i];
        if (strcmp(nm, "train") == 0) has_train = true;
        else if (strcmp(nm, "test") == 0) has_test = true;
        else if (strcmp(nm, "val") == 0) has_val = true;
        else only_splits = false;
    }
    const char *sub = NULL;
    if (n_dirs > 0 && only_splits && has_train) {
        if (strcmp(split, "test") == 0) {
            sub = has_test ? "test" : has_val ? "val" : NULL;
            if (!sub)
                return sfp_errorf(err, SFP_EBADDATA, "%s: has a train/ folder but no test/ or val/ folder",
                                  sfp_q(root));
        } else sub = "train";
        *skipped += entries->n - n_dirs; /* files beside the split folders */
    }
    *out = sub ? path_join(root, sub) : sfp_strdup(root);
    return *out ? 0 : sfp_errorf(err, SFP_ENOMEM, "out of memory");
}

int data_open_imagefolder(const char *root, const char *split, const sfp_data_opts_t *opts, sfp_dataset_t **out,
                          sfp_error_t *err)
{
    name_list_t top = {0}, classes = {0}, files = {0}, paths = {0};
    int32_t *labels = NULL;
    int labels_cap = 0;
    char *croot = NULL;
    int64_t skipped = 0;
    int rc = list_folder(root, &top, err);
    if (rc < 0) goto done;
    if ((rc = class_root(root, split, &top, &croot, &skipped, err)) < 0) goto done;
    if (strcmp(croot, root) != 0) {
        names_clear(&top);
        if ((rc = list_folder(croot, &top, err)) < 0) goto done;
    }
    for (int i = 0; i < top.n; i++) {
        bool dir = false;
        if ((rc = is_folder(croot, top.names[i], &dir, err)) < 0) goto done;
        if (!dir) skipped++;
        else if ((rc = names_add(&classes, sfp_strdup(top.names[i]), err)) < 0) goto done;
    }
    if (classes.n < 2) {
        rc = sfp_errorf(err, SFP_EBADDATA,
                        "%s: not a dataset: no IDX files or CIFAR batches, and an image folder needs at least 2 "
                        "class sub-folders (found %d)",
                        sfp_q(croot), classes.n);
        goto done;
    }
    if (opts->n_classes > 0 && classes.n > opts->n_classes) {
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: %d class folders, beyond the %d classes of the model", sfp_q(croot),
                        classes.n, opts->n_classes);
        goto done;
    }
    for (int k = 0; k < classes.n; k++) {
        char *cdir = path_join(croot, classes.names[k]);
        if (!cdir) {
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
            goto done;
        }
        rc = list_folder(cdir, &files, err);
        int before = paths.n;
        int64_t other = 0;
        for (int i = 0; i < files.n && rc == 0; i++) {
            if (!has_image_extension(files.names[i])) {
                other++;
                continue;
            }
            if ((rc = names_add(&paths, path_join(cdir, files.names[i]), err)) < 0) break;
            if ((rc = sfp_grow((void **)&labels, &labels_cap, paths.n, sizeof *labels, err)) < 0) break;
            labels[paths.n - 1] = k;
        }
        names_clear(&files);
        if (rc == 0 && paths.n == before)
            rc = sfp_errorf(err, SFP_EBADDATA, "%s: class folder holds no images (%lld other entries)", sfp_q(cdir),
                            (long long)other);
        skipped += other;
        free(cdir);
        if (rc < 0) goto done;
    }
    rc = load_files("imagefolder", root, (const char *const *)paths.names, labels, paths.n, opts, out, err);
    if (rc < 0) goto done;
    if ((rc = data_set_class_names(*out, classes.n, (const char *const *)classes.names, err)) < 0) {
        data_free(*out);
        *out = NULL;
        goto done;
    }
    (*out)->n_skipped = skipped;
done:
    names_clear(&top);
    names_clear(&classes);
    names_clear(&files);
    names_clear(&paths);
    free(labels);
    free(croot);
    return rc;
}
