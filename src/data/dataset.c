/* Datasets: the shared store of pixels and labels, the views over it (subset,
 * split), and data_open, which detects the format from a path and hands the
 * files to the IDX, CIFAR or image-folder reader. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data.h"
#include "util/util.h"

const char *const data_fashion_mnist_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

const char *const data_cifar10_names[10] = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

/* The fine labels of CIFAR-100 (fine_label_names.txt: alphabetical). */
const char *const data_cifar100_names[100] = {
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup",
    "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house",
    "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
    "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"};

/* ------------------------------------------------------------------------ */
/* Store and views                                                          */

static void store_release(sfp_data_store_t *st)
{
    if (!st || __atomic_sub_fetch(&st->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
    free(st->pixels);
    free(st->labels);
    if (st->class_names)
        for (int i = 0; i < st->n_classes; i++) free(st->class_names[i]);
    free(st->class_names);
    if (st->row_paths)
        for (int64_t i = 0; i < st->n_rows; i++) free(st->row_paths[i]);
    free(st->row_paths);
    free(st->row_geometry);
    for (int64_t i = 0; i < st->n_bad; i++) {
        free(st->bad_paths[i]);
        free(st->bad_reasons[i]);
    }
    free(st->bad_paths);
    free(st->bad_reasons);
    free(st);
}

void data_free(sfp_dataset_t *ds)
{
    if (!ds) return;
    store_release(ds->store);
    free(ds->path);
    free(ds->rows);
    free(ds);
}

/* A view of ds's store with n rows (uninitialised) and ds's metadata. */
static int view_create(const sfp_dataset_t *ds, int64_t n, sfp_dataset_t **out, sfp_error_t *err)
{
    size_t rows_bytes = 0;
    if (n < 1 || !sfp_mul_size((size_t)n, sizeof(int64_t), &rows_bytes))
        return sfp_errorf(err, SFP_ENOMEM, "%s: view of %lld examples is too large", sfp_q(ds->path), (long long)n);
    sfp_dataset_t *v = calloc(1, sizeof *v);
    if (!v) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    *v = *ds;
    v->path = sfp_strdup(ds->path);
    v->rows = malloc(rows_bytes);
    v->store = NULL;
    if (!v->path || !v->rows) {
        data_free(v);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory for a view of %lld examples", (long long)n);
    }
    __atomic_add_fetch(&ds->store->refs, 1, __ATOMIC_ACQ_REL);
    v->store = ds->store;
    v->n = n;
    *out = v;
    return 0;
}

int data_set_create(const char *format, const char *path, int64_t n, int c, int h, int w, sfp_dataset_t **out,
                    sfp_error_t *err)
{
    size_t row_bytes = 0, pixel_bytes = 0, label_bytes = 0, rows_bytes = 0;
    if (n < 1 || c < 1 || h < 1 || w < 1 || !sfp_mul_size((size_t)c, (size_t)h, &row_bytes) ||
        !sfp_mul_size(row_bytes, (size_t)w, &row_bytes) || !sfp_mul_size(row_bytes, (size_t)n, &pixel_bytes) ||
        !sfp_mul_size((size_t)n, sizeof(int32_t), &label_bytes) ||
        !sfp_mul_size((size_t)n, sizeof(int64_t), &rows_bytes))
        return sfp_errorf(err, SFP_EBADDATA, "%s: %lld examples of %dx%dx%d do not fit in memory", sfp_q(path),
                          (long long)n, c, h, w);
    sfp_dataset_t *ds = calloc(1, sizeof *ds);
    sfp_data_store_t *st = calloc(1, sizeof *st);
    if (!ds || !st) {
        free(ds);
        free(st);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    st->refs = 1;
    st->n_rows = n;
    st->row_bytes = row_bytes;
    st->pixels = calloc(pixel_bytes, 1);
    st->labels = malloc(label_bytes);
    ds->store = st;
    ds->path = sfp_strdup(path);
    ds->rows = malloc(rows_bytes);
    if (!st->pixels || !st->labels || !ds->path || !ds->rows) {
        data_free(ds);
        return sfp_errorf(err, SFP_ENOMEM, "%s: out of memory for %lld examples (%zu bytes)", sfp_q(path),
                          (long long)n, pixel_bytes);
    }
    for (int64_t i = 0; i < n; i++) {
        st->labels[i] = -1;
        ds->rows[i] = i;
    }
    ds->format = format;
    ds->n = n;
    ds->channels = c;
    ds->height = h;
    ds->width = w;
    *out = ds;
    return 0;
}

int data_set_class_names(sfp_dataset_t *ds, int n_classes, const char *const *names, sfp_error_t *err)
{
    sfp_data_store_t *st = ds->store;
    st->class_names = calloc((size_t)(n_classes > 0 ? n_classes : 1), sizeof(char *));
    if (!st->class_names) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    st->n_classes = n_classes;
    for (int i = 0; i < n_classes; i++) {
        char number[16];
        snprintf(number, sizeof number, "%d", i);
        st->class_names[i] = sfp_strdup(names ? names[i] : number);
        if (!st->class_names[i]) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    ds->n_classes = n_classes;
    ds->class_names = st->class_names;
    return 0;
}

const uint8_t *data_pixels(const sfp_dataset_t *ds, int64_t i)
{
    return ds->store->pixels + (size_t)ds->rows[i] * ds->store->row_bytes;
}

int data_label(const sfp_dataset_t *ds, int64_t i)
{
    return ds->store->labels[ds->rows[i]];
}

const char *data_source_path(const sfp_dataset_t *ds, int64_t i)
{
    return ds->store->row_paths ? ds->store->row_paths[ds->rows[i]] : NULL;
}

bool data_source_geometry(const sfp_dataset_t *ds, int64_t i, int *c, int *h, int *w)
{
    if (!ds->store->row_geometry) return false;
    const int32_t *g = ds->store->row_geometry + 3 * (size_t)ds->rows[i];
    *c = g[0];
    *h = g[1];
    *w = g[2];
    return true;
}

bool data_common_source_geometry(const sfp_dataset_t *ds, int *c, int *h, int *w, int64_t *n_other)
{
    if (!ds->store->row_geometry || ds->n < 1) return false;
    /* Boyer-Moore majority vote, then a count: the majority when there is
     * one, else some frequent geometry (enough for a one-line warning). */
    int64_t best = 0, votes = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        const int32_t *g = ds->store->row_geometry + 3 * (size_t)ds->rows[i];
        const int32_t *b = ds->store->row_geometry + 3 * (size_t)ds->rows[best];
        if (votes == 0) {
            best = i;
            votes = 1;
        } else if (memcmp(g, b, 3 * sizeof *g) == 0) votes++;
        else votes--;
    }
    const int32_t *b = ds->store->row_geometry + 3 * (size_t)ds->rows[best];
    int64_t other = 0;
    for (int64_t i = 0; i < ds->n; i++)
        other += memcmp(ds->store->row_geometry + 3 * (size_t)ds->rows[i], b, 3 * sizeof *b) != 0;
    *c = b[0];
    *h = b[1];
    *w = b[2];
    *n_other = other;
    return true;
}

int64_t data_n_unreadable(const sfp_dataset_t *ds)
{
    return ds->store->n_bad;
}

const char *data_unreadable(const sfp_dataset_t *ds, int64_t j, const char **reason)
{
    *reason = ds->store->bad_reasons[j];
    return ds->store->bad_paths[j];
}

int data_subset(const sfp_dataset_t *ds, int64_t first_n, sfp_dataset_t **out, sfp_error_t *err)
{
    if (first_n < 1)
        return sfp_errorf(err, SFP_EUSAGE, "a subset needs at least 1 example (asked for %lld)", (long long)first_n);
    return data_range(ds, 0, first_n, out, err);
}

int data_range(const sfp_dataset_t *ds, int64_t first, int64_t n, sfp_dataset_t **out, sfp_error_t *err)
{
    if (first > ds->n) first = ds->n;
    if (n > ds->n - first) n = ds->n - first;
    if (first < 0 || n < 1)
        return sfp_errorf(err, SFP_EUSAGE, "%s: range [%lld, +%lld) of %lld examples is empty", sfp_q(ds->path),
                          (long long)first, (long long)n, (long long)ds->n);
    sfp_dataset_t *v = NULL;
    int rc = view_create(ds, n, &v, err);
    if (rc < 0) return rc;
    memcpy(v->rows, ds->rows + first, (size_t)n * sizeof *v->rows);
    *out = v;
    return 0;
}

int data_split(const sfp_dataset_t *ds, double val_fraction, uint64_t seed, sfp_dataset_t **train, sfp_dataset_t **val,
               sfp_error_t *err)
{
    if (!(val_fraction > 0.0 && val_fraction < 1.0))
        return sfp_errorf(err, SFP_EUSAGE, "validation fraction %g is not in (0, 1)", val_fraction);
    if (ds->n < 2)
        return sfp_errorf(err, SFP_EBADDATA, "%s: %lld example(s) cannot be split into training and validation",
                          sfp_q(ds->path), (long long)ds->n);
    int64_t n_val = (int64_t)llround((double)ds->n * val_fraction);
    if (n_val < 1) n_val = 1;
    if (n_val > ds->n - 1) n_val = ds->n - 1;

    /* Positions 0..n-1 shuffled by the seed; the first n_val go to validation. */
    uint8_t *is_val = calloc((size_t)ds->n, 1);
    int64_t *order = malloc((size_t)ds->n * sizeof *order);
    sfp_dataset_t *t = NULL, *v = NULL;
    int rc = 0;
    if (!is_val || !order) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory splitting %lld examples", (long long)ds->n);
        goto done;
    }
    sfp_data_rng_t rng = data_rng_key(seed, 0x73706c6974ULL /* "split" */, 0);
    for (int64_t i = 0; i < ds->n; i++) order[i] = i;
    for (int64_t i = ds->n - 1; i > 0; i--) {
        int64_t j = (int64_t)data_rng_below(&rng, (uint64_t)i + 1);
        int64_t swap = order[i];
        order[i] = order[j];
        order[j] = swap;
    }
    for (int64_t i = 0; i < n_val; i++) is_val[order[i]] = 1;
    if ((rc = view_create(ds, ds->n - n_val, &t, err)) < 0 || (rc = view_create(ds, n_val, &v, err)) < 0)
        goto done;
    int64_t nt = 0, nv = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        if (is_val[i]) v->rows[nv++] = ds->rows[i];
        else t->rows[nt++] = ds->rows[i];
    }
    *train = t;
    *val = v;
    t = v = NULL;
done:
    data_free(t);
    data_free(v);
    free(is_val);
    free(order);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Format detection                                                         */

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

static bool is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* dir/prefix-kind-idxN-ubyte in its spellings (raw first, then .gz); NULL
 * when none exists or out of memory (*oom set). */
static char *find_idx(const char *dir, const char *prefix, const char *kind, int ndims, bool *oom)
{
    static const char *const forms[] = {"%s-%s-idx%d-ubyte", "%s-%s.idx%d-ubyte", "%s-%s-idx%d-ubyte.gz",
                                        "%s-%s.idx%d-ubyte.gz"};
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        char name[64];
        snprintf(name, sizeof name, forms[f], prefix, kind, ndims);
        char *p = path_join(dir, name);
        if (!p) {
            *oom = true;
            return NULL;
        }
        if (is_regular(p)) return p;
        free(p);
    }
    return NULL;
}

static int open_idx_folder(const char *dir, const char *split, const sfp_data_opts_t *opts, bool *found,
                           sfp_dataset_t **out, sfp_error_t *err)
{
    bool oom = false;
    const char *prefix = strcmp(split, "test") == 0 ? "t10k" : "train";
    const char *other = strcmp(split, "test") == 0 ? "train" : "t10k";
    char *images = find_idx(dir, prefix, "images", 3, &oom);
    char *labels = find_idx(dir, prefix, "labels", 1, &oom);
    char *other_images = images ? NULL : find_idx(dir, other, "images", 3, &oom);
    int rc = 0;
    *found = images || labels || other_images;
    if (oom) rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
    else if (!*found) rc = 0;
    else if (!images)
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: holds IDX files but no %s split (%s-images-idx3-ubyte[.gz])",
                        sfp_q(dir), split, prefix);
    else if (!labels)
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: no labels beside it (%s-labels-idx1-ubyte[.gz])", sfp_q(images),
                        prefix);
    else rc = data_open_idx(images, labels, opts, out, err);
    free(images);
    free(labels);
    free(other_images);
    return rc;
}

/* The labels file beside an IDX images file: "images" -> "labels", "idx3" ->
 * "idx1", with or without ".gz". */
static int open_idx_file(const char *images, const sfp_data_opts_t *opts, sfp_dataset_t **out, sfp_error_t *err)
{
    size_t len = strlen(images);
    char *labels = malloc(len + 4);
    if (!labels) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    memcpy(labels, images, len + 1);
    const char *base = strrchr(labels, '/');
    char *kind = strstr(base ? base : labels, "images");
    char *idx3 = kind ? strstr(kind, "idx3") : NULL;
    if (kind && idx3) {
        memcpy(kind, "labels", 6);
        idx3[3] = '1';
        if (!is_regular(labels)) {
            if (len > 3 && strcmp(labels + len - 3, ".gz") == 0) labels[len - 3] = '\0';
            else memcpy(labels + len, ".gz", 4);
        }
    }
    int rc = 0;
    if (!kind || !idx3 || !is_regular(labels))
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: no labels file beside it (...-labels-idx1-ubyte[.gz])", sfp_q(images));
    else rc = data_open_idx(images, labels, opts, out, err);
    free(labels);
    return rc;
}

/* CIFAR batches of the split in dir or its tarball sub-folder. */
static int open_cifar_folder(const char *dir, const char *split, const sfp_data_opts_t *opts, bool *found,
                             sfp_dataset_t **out, sfp_error_t *err)
{
    static const char *const sub10[] = {"", "cifar-10-batches-bin"};
    static const char *const sub100[] = {"", "cifar-100-binary"};
    bool test = strcmp(split, "test") == 0;
    char *files[5] = {NULL};
    int n_files = 0, rc = 0;
    *found = false;
    for (int pass = 0; pass < 4 && !*found; pass++) {
        bool c100 = pass >= 2;
        char *base = path_join(dir, c100 ? sub100[pass - 2] : sub10[pass]);
        if (!base) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        const char *names10[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                                 "data_batch_5.bin", "test_batch.bin"};
        const char *names100[] = {"train.bin", "test.bin"};
        int n_names = c100 ? 2 : 6;
        for (int i = 0; i < n_names && rc == 0; i++) {
            char *p = path_join(base, c100 ? names100[i] : names10[i]);
            if (!p) {
                rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
                break;
            }
            if (!is_regular(p)) {
                free(p);
                continue;
            }
            *found = true;
            bool is_test = c100 ? i == 1 : i == 5;
            if (is_test == test) files[n_files++] = p;
            else free(p);
        }
        if (rc == 0 && *found) {
            if (n_files == 0)
                rc = sfp_errorf(err, SFP_EBADDATA, "%s: holds %s batches but none of the %s split (%s)", sfp_q(base),
                                c100 ? "CIFAR-100" : "CIFAR-10", split,
                                c100 ? (test ? "test.bin" : "train.bin")
                                     : (test ? "test_batch.bin" : "data_batch_1..5.bin"));
            else rc = data_open_cifar(base, (const char *const *)files, n_files, c100, opts, out, err);
        }
        free(base);
    }
    for (int i = 0; i < n_files; i++) free(files[i]);
    return rc;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int data_open(const char *path, const char *split, const sfp_data_opts_t *opts, sfp_dataset_t **out,
              sfp_error_t *err)
{
    sfp_data_opts_t none = {0};
    if (!opts) opts = &none;
    if (!split) split = "train";
    if (strcmp(split, "train") != 0 && strcmp(split, "test") != 0)
        return sfp_errorf(err, SFP_EUSAGE, "unknown data split '%s' (train or test)", sfp_q(split));
    if (opts->channels < 0 || opts->height < 0 || opts->width < 0 || opts->n_classes < 0 ||
        opts->height > DATA_MAX_SIDE || opts->width > DATA_MAX_SIDE)
        return sfp_errorf(err, SFP_EUSAGE, "bad data options (input %dx%dx%d, %d classes)", opts->channels,
                          opts->height, opts->width, opts->n_classes);
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return sfp_errorf(err, SFP_EIO, "%s: cannot open: %s", sfp_q(path), strerror(errno));
    if (S_ISREG(st.st_mode)) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (strstr(base, "-images-idx3-ubyte") || strstr(base, "-images.idx3-ubyte"))
            return open_idx_file(path, opts, out, err);
        if (has_suffix(base, ".bin")) {
            bool c100 = strcmp(base, "train.bin") == 0 || strcmp(base, "test.bin") == 0;
            return data_open_cifar(path, &path, 1, c100, opts, out, err);
        }
        return sfp_errorf(err, SFP_EBADDATA,
                          "%s: not a dataset: expected a folder (IDX files, CIFAR batches or one sub-folder per "
                          "class), an IDX images file or a CIFAR .bin batch",
                          sfp_q(path));
    }
    if (!S_ISDIR(st.st_mode))
        return sfp_errorf(err, SFP_EIO, "%s: neither a file nor a folder", sfp_q(path));
    bool found = false;
    int rc = open_idx_folder(path, split, opts, &found, out, err);
    if (found || rc < 0) return rc;
    rc = open_cifar_folder(path, split, opts, &found, out, err);
    if (found || rc < 0) return rc;
    return data_open_imagefolder(path, split, opts, out, err);
}

