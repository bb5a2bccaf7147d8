/* Data pipeline (src/data): Fashion-MNIST from Debian's package checked
 * against values read with Python's gzip module, .gz and raw IDX giving the
 * same data, CIFAR-10/100 batches and image folders written here, the
 * preprocessing arithmetic (normalisation, centred padding, bilinear resize,
 * channel conversion), seeded augmentation and shuffling, the loader thread
 * against the synchronous path, the metadata description, and every kind of
 * bad data refused with a message naming the file. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include <math.h>
#include <sys/stat.h>
#include <zlib.h>

#include "testutil.h"

#include "data/data.h"

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* ------------------------------------------------------------------------ */
/* Writers for test data                                                    */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* IDX bytes: magic, ndims big-endian dims, then body (body_len bytes). */
static uint8_t *idx_bytes(uint32_t magic, int ndims, const uint32_t *dims, const uint8_t *body, size_t body_len,
                          size_t *len)
{
    *len = 4 + 4 * (size_t)ndims + body_len;
    uint8_t *b = malloc(*len);
    assert_non_null(b);
    put_be32(b, magic);
    for (int d = 0; d < ndims; d++) put_be32(b + 4 + 4 * d, dims[d]);
    if (body_len) memcpy(b + 4 + 4 * ndims, body, body_len);
    return b;
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile gz = gzopen(path, "wb9");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, data, (unsigned)len), (int)len);
    assert_int_equal(gzclose(gz), Z_OK);
}

static char *join(const char *dir, const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

/* Pixel pattern of synthetic IDX images: never 0, so padding is visible. */
static uint8_t idx_pixel(int64_t image, int y, int x)
{
    return (uint8_t)(1 + (image * 31 + y * 7 + x * 3) % 250);
}

/* train-images/labels for n images of rows x cols with the given labels. */
static void write_idx_pair(const char *dir, const char *prefix, uint32_t n, uint32_t rows, uint32_t cols,
                           const uint8_t *labels, bool gz)
{
    size_t body = (size_t)n * rows * cols, len = 0;
    uint8_t *pixels = malloc(body);
    assert_non_null(pixels);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t y = 0; y < rows; y++)
            for (uint32_t x = 0; x < cols; x++)
                pixels[((size_t)i * rows + y) * cols + x] = idx_pixel(i, (int)y, (int)x);
    uint32_t dims[3] = {n, rows, cols};
    char name[128];
    uint8_t *b = idx_bytes(0x803, 3, dims, pixels, body, &len);
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
    if (gz) write_gz(join(dir, name), b, len);
    else tu_write_file(join(dir, name), b, len);
    free(b);
    free(pixels);
    b = idx_bytes(0x801, 1, dims, labels, n, &len);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, gz ? ".gz" : "");
    if (gz) write_gz(join(dir, name), b, len);
    else tu_write_file(join(dir, name), b, len);
    free(b);
}

/* CIFAR pixel of record r, channel c at (y, x): not linear in x and y, so
 * interpolation errors show. */
static uint8_t cifar_pixel(int64_t r, int c, int y, int x)
{
    return (uint8_t)((r * 13 + c * 71 + y * y * 3 + x * x * 5 + x * y) & 0xff);
}

/* CIFAR-10 (or -100 with coarse label 3) records first..first+n-1. */
static void write_cifar(const char *path, int64_t first, int n, const uint8_t *labels, bool cifar100)
{
    size_t rec = 3072 + (cifar100 ? 2 : 1);
    uint8_t *b = malloc(rec * (size_t)n);
    assert_non_null(b);
    for (int i = 0; i < n; i++) {
        uint8_t *r = b + rec * (size_t)i;
        if (cifar100) {
            r[0] = 3;
            r[1] = labels[i];
        } else r[0] = labels[i];
        uint8_t *px = r + rec - 3072;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++) px[c * 1024 + y * 32 + x] = cifar_pixel(first + i, c, y, x);
    }
    tu_write_file(path, b, rec * (size_t)n);
    free(b);
}

/* A CIFAR-10 set of n records with labels i % 10, written to a new folder. */
static sfp_dataset_t *cifar_set(int n)
{
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    uint8_t *labels = malloc((size_t)n);
    assert_non_null(labels);
    for (int i = 0; i < n; i++) labels[i] = (uint8_t)(i % 10);
    write_cifar(join(dir, "data_batch_1.bin"), 0, n, labels, false);
    free(labels);
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    TU_OK(&err, data_open(dir, "train", NULL, &ds, &err));
    return ds;
}

static void write_pgm(const char *path, int w, int h, const uint8_t *gray)
{
    char header[64];
    int hl = snprintf(header, sizeof header, "P5\n%d %d\n255\n", w, h);
    uint8_t *b = malloc((size_t)hl + (size_t)w * (size_t)h);
    assert_non_null(b);
    memcpy(b, header, (size_t)hl);
    memcpy(b + hl, gray, (size_t)w * (size_t)h);
    tu_write_file(path, b, (size_t)hl + (size_t)w * (size_t)h);
    free(b);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* 24-bit uncompressed BMP of an RGB (HWC) image; rows bottom-up, BGR, padded to 4. */
static void write_bmp(const char *path, int w, int h, const uint8_t *rgb)
{
    size_t stride = ((size_t)w * 3 + 3) & ~(size_t)3, size = 54 + stride * (size_t)h;
    uint8_t *b = calloc(size, 1);
    assert_non_null(b);
    b[0] = 'B';
    b[1] = 'M';
    put_le32(b + 2, (uint32_t)size);
    put_le32(b + 10, 54);
    put_le32(b + 14, 40);
    put_le32(b + 18, (uint32_t)w);
    put_le32(b + 22, (uint32_t)h);
    b[26] = 1;  /* planes */
    b[28] = 24; /* bits per pixel */
    put_le32(b + 34, (uint32_t)(stride * (size_t)h));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *s = rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;
            uint8_t *d = b + 54 + (size_t)(h - 1 - y) * stride + (size_t)x * 3;
            d[0] = s[2];
            d[1] = s[1];
            d[2] = s[0];
        }
    tu_write_file(path, b, size);
    free(b);
}

static uint8_t luminance(const uint8_t *rgb)
{
    return (uint8_t)((299u * rgb[0] + 587u * rgb[1] + 114u * rgb[2] + 500u) / 1000u);
}

/* |got - want| <= tol, reported with both values (cmocka's assert_float_equal
 * casts only the first token of an expression and compares in float). */
#define expect_near(got, want, tol) expect_near_((got), (want), (tol), __FILE__, __LINE__)
static void expect_near_(double got, double want, double tol, const char *file, int line)
{
    if (!(fabs(got - want) <= tol)) {
        print_error("%s:%d: %.9g differs from %.9g by more than %g\n", file, line, got, want, tol);
        _fail(file, line);
    }
}

static bool fashion_present(void)
{
    struct stat st;
    return stat(FASHION_DIR "/train-images-idx3-ubyte.gz", &st) == 0;
}

static uint64_t pixel_sum(const sfp_dataset_t *ds)
{
    uint64_t sum = 0;
    size_t bytes = (size_t)ds->channels * (size_t)ds->height * (size_t)ds->width;
    for (int64_t i = 0; i < ds->n; i++) {
        const uint8_t *p = data_pixels(ds, i);
        for (size_t k = 0; k < bytes; k++) sum += p[k];
    }
    return sum;
}

/* ------------------------------------------------------------------------ */
/* Fashion-MNIST (Debian's fashion-mnist package)                           */

/* Reference values from /usr/bin/python3 with gzip: first labels of each
 * split, non-zero pixels of the first image, pixel sums per image and split. */
static void test_fashion_mnist_loads_with_the_labels_and_pixels_python_reads(void **state)
{
    (void)state;
    if (!fashion_present()) skip();
    sfp_error_t err = {0};
    sfp_dataset_t *train = NULL, *test = NULL;
    TU_OK(&err, data_open(FASHION_DIR, "train", NULL, &train, &err));
    TU_OK(&err, data_open(FASHION_DIR, "test", NULL, &test, &err));
    assert_string_equal(train->format, "idx.gz");
    assert_int_equal(train->n, 60000);
    assert_int_equal(test->n, 10000);
    assert_int_equal(train->channels, 1);
    assert_int_equal(train->height, 28);
    assert_int_equal(train->width, 28);
    assert_int_equal(train->n_classes, 10);
    assert_string_equal(train->class_names[0], "T-shirt/top");
    assert_string_equal(train->class_names[9], "Ankle boot");

    const int train_labels[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, test_labels[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(data_label(train, i), train_labels[i]);
        assert_int_equal(data_label(test, i), test_labels[i]);
    }
    const uint8_t *first = data_pixels(train, 0);
    for (int k = 0; k < 96; k++) assert_int_equal(first[k], 0);
    assert_int_equal(first[96], 1);
    assert_int_equal(first[99], 13);
    assert_int_equal(first[100], 73);
    assert_int_equal(first[103], 1);
    assert_int_equal(first[104], 4);
    uint64_t sum = 0;
    for (int k = 0; k < 784; k++) sum += first[k];
    assert_int_equal(sum, 76247);
    const uint8_t *last = data_pixels(train, 59999);
    const uint8_t last_run[10] = {19, 47, 72, 95, 109, 59, 0, 0, 0, 0};
    assert_memory_equal(last + 300, last_run, 10);
    assert_int_equal(pixel_sum(train), 3431114169ULL);
    assert_int_equal(pixel_sum(test), 573469082ULL);
    data_free(train);
    data_free(test);
}

/* numpy over all 47,040,000 training pixels: mean 0.2860405969887955, std
 * 0.3530242445149226. We sum exact histograms in double, so only the final
 * rounding to float differs: 1e-7 is 3 float ulps at these magnitudes. */
static void test_fashion_mnist_channel_stats_match_numpy(void **state)
{
    (void)state;
    if (!fashion_present()) skip();
    sfp_error_t err = {0};
    sfp_dataset_t *train = NULL;
    TU_OK(&err, data_open(FASHION_DIR, "train", NULL, &train, &err));
    float mean[3] = {0}, std[3] = {0};
    TU_OK(&err, data_channel_stats(train, 1, mean, std, &err));
    expect_near((double)mean[0], 0.2860405969887955, 1e-7);
    expect_near((double)std[0], 0.3530242445149226, 1e-7);
    /* Gray -> RGB replicates, so the three channels have the same statistics. */
    TU_OK(&err, data_channel_stats(train, 3, mean, std, &err));
    assert_true(mean[2] == mean[0] && std[2] == std[0]);
    data_free(train);
}

static void gunzip_to(const char *from, const char *to)
{
    gzFile gz = gzopen(from, "rb");
    assert_non_null(gz);
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        int r = gzread(gz, buf + n, (unsigned)(cap - n));
        assert_true(r >= 0);
        if (r == 0) break;
        n += (size_t)r;
    }
    gzclose(gz);
    tu_write_file(to, buf, n);
    free(buf);
}

static void test_idx_gz_and_raw_give_identical_data(void **state)
{
    (void)state;
    if (!fashion_present()) skip();
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    gunzip_to(FASHION_DIR "/t10k-images-idx3-ubyte.gz", join(dir, "t10k-images-idx3-ubyte"));
    gunzip_to(FASHION_DIR "/t10k-labels-idx1-ubyte.gz", join(dir, "t10k-labels-idx1-ubyte"));
    sfp_error_t err = {0};
    sfp_dataset_t *gz = NULL, *raw = NULL;
    TU_OK(&err, data_open(FASHION_DIR, "test", NULL, &gz, &err));
    TU_OK(&err, data_open(dir, "test", NULL, &raw, &err));
    assert_string_equal(raw->format, "idx");
    assert_string_equal(gz->format, "idx.gz");
    assert_int_equal(raw->n, gz->n);
    assert_int_equal(raw->n_classes, 10);
    assert_memory_equal(data_pixels(raw, 0), data_pixels(gz, 0), (size_t)raw->n * 784);
    for (int64_t i = 0; i < raw->n; i++) assert_int_equal(data_label(raw, i), data_label(gz, i));
    /* The raw copy's path does not say "fashion": classes are named by number. */
    assert_string_equal(raw->class_names[9], "9");
    data_free(gz);
    data_free(raw);
}

static void test_fashion_labels_beyond_the_model_classes_are_refused(void **state)
{
    (void)state;
    if (!fashion_present()) skip();
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    sfp_data_opts_t opts = {.n_classes = 5};
    int rc = data_open(FASHION_DIR, "train", &opts, &ds, &err);
    /* Record 0 has label 9. */
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "train-labels-idx1-ubyte.gz", "label 9 of record 0", "5 classes");
    assert_null(ds);
}

/* ------------------------------------------------------------------------ */
/* IDX written here                                                          */

static void test_idx_single_file_path_finds_its_labels(void **state)
{
    (void)state;
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    const uint8_t labels[3] = {1, 0, 2};
    write_idx_pair(dir, "train", 3, 5, 4, labels, true);
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    TU_OK(&err, data_open(join(dir, "train-images-idx3-ubyte.gz"), NULL, NULL, &ds, &err));
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->height, 5);
    assert_int_equal(ds->width, 4);
    assert_int_equal(ds->n_classes, 3); /* max label + 1 without a model */
    assert_int_equal(data_label(ds, 2), 2);
    assert_int_equal(data_pixels(ds, 2)[4 * 4 + 3], idx_pixel(2, 4, 3));
    data_free(ds);
}

/* Opens dir's train split and expects SFP_EBADDATA naming file and what. */
static void expect_bad_idx(const char *dir, const sfp_data_opts_t *opts, const char *file, const char *what)
{
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    int rc = data_open(dir, "train", opts, &ds, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, file, what);
    assert_null(ds);
}

/* A valid train pair of 2 images of 4x4 in dir, then its file `name`
 * replaced by an IDX file of `magic` with ndims of the dims {2, 4, 4} and
 * body_len zero bytes. */
static void write_idx_pair_replacing(const char *dir, const char *name, uint32_t magic, int ndims, size_t body_len)
{
    const uint8_t labels[2] = {0, 1};
    const uint32_t dims[3] = {2, 4, 4};
    uint8_t *body = calloc(body_len + 1, 1);
    assert_non_null(body);
    write_idx_pair(dir, "train", 2, 4, 4, labels, false);
    size_t len = 0;
    uint8_t *b = idx_bytes(magic, ndims, dims, body, body_len, &len);
    tu_write_file(join(dir, name), b, len);
    free(b);
    free(body);
}

static void test_idx_with_a_wrong_magic_is_refused(void **state)
{
    (void)state;
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    write_idx_pair_replacing(dir, "train-images-idx3-ubyte", 0x00000a03 /* no IDX type has code 0x0a */, 3, 32);
    expect_bad_idx(dir, NULL, "train-images-idx3-ubyte", "wrong magic 0x00000a03");
    /* Labels holding an images header. */
    write_idx_pair_replacing(dir, "train-labels-idx1-ubyte", 0x803, 3, 32);
    expect_bad_idx(dir, NULL, "train-labels-idx1-ubyte", "wrong magic");
}

/* IDX types other than unsigned bytes are valid files this version does not
 * read: SFP_EUNSUPPORTED (exit 4), naming the type. */
static void test_idx_of_another_element_type_is_unsupported(void **state)
{
    (void)state;
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    write_idx_pair_replacing(dir, "train-images-idx3-ubyte", 0x00000d03, 3, 2 * 4 * 4 * 4);
    int rc = data_open(dir, "train", NULL, &ds, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUNSUPPORTED, "train-images-idx3-ubyte", "0x0d (float32)", "only unsigned bytes");
    write_idx_pair_replacing(dir, "train-labels-idx1-ubyte", 0x00000c01, 1, 2 * 4);
    rc = data_open(dir, "train", NULL, &ds, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUNSUPPORTED, "train-labels-idx1-ubyte", "0x0c (int32)");
    assert_null(ds);
}

static void test_idx_truncated_images_or_labels_are_refused(void **state)
{
    (void)state;
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    const uint8_t labels[3] = {0, 1, 2};
    uint32_t dims[3] = {3, 4, 4};
    uint8_t body[48] = {0};
    size_t len = 0;

    write_idx_pair(dir, "train", 3, 4, 4, labels, false);
    uint8_t *b = idx_bytes(0x803, 3, dims, body, 40, &len); /* 8 bytes short */
    tu_write_file(join(dir, "train-images-idx3-ubyte"), b, len);
    free(b);
    expect_bad_idx(dir, NULL, "train-images-idx3-ubyte", "truncated");

    write_idx_pair(dir, "train", 3, 4, 4, labels, false);
    b = idx_bytes(0x801, 1, dims, labels, 2, &len);
    tu_write_file(join(dir, "train-labels-idx1-ubyte"), b, len);
    free(b);
    expect_bad_idx(dir, NULL, "train-labels-idx1-ubyte", "truncated");

    /* Header itself cut short. */
    write_idx_pair(dir, "train", 3, 4, 4, labels, false);
    b = idx_bytes(0x803, 3, dims, NULL, 0, &len);
    tu_write_file(join(dir, "train-images-idx3-ubyte"), b, 9);
    free(b);
    expect_bad_idx(dir, NULL, "train-images-idx3-ubyte", "truncated");

    /* A .gz whose stream stops halfway. */
    char gzdir[64];
    tu_tmpdir(gzdir, sizeof gzdir);
    write_idx_pair(gzdir, "train", 3, 16, 16, labels, true);
    size_t glen = 0;
    uint8_t *g = tu_read_file(join(gzdir, "train-images-idx3-ubyte.gz"), &glen);
    assert_non_null(g);
    tu_write_file(join(gzdir, "train-images-idx3-ubyte.gz"), g, glen / 2);
    free(g);
    expect_bad_idx(gzdir, NULL, "train-images-idx3-ubyte.gz", "truncated");
}

static void test_idx_trailing_data_is_refused_raw_and_gz(void **state)
{
    (void)state;
    const uint8_t labels[2] = {0, 1};
    uint32_t dims[3] = {2, 4, 4};
    uint8_t body[40] = {0};
    size_t len = 0;
    uint8_t *b = idx_bytes(0x803, 3, dims, body, 40, &len); /* 8 bytes too many */
    for (int gz = 0; gz < 2; gz++) {
        char dir[64];
        tu_tmpdir(dir, sizeof dir);
        write_idx_pair(dir, "train", 2, 4, 4, labels, gz);
        const char *name = gz ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte";
        if (gz) write_gz(join(dir, name), b, len);
        else tu_write_file(join(dir, name), b, len);
        expect_bad_idx(dir, NULL, name, gz ? "more data than" : "trailing data");
    }
    free(b);
}

static void test_idx_count_mismatch_is_refused(void **state)
{
    (void)state;
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    const uint8_t labels[3] = {0, 1, 1};
    write_idx_pair(dir, "train", 3, 4, 4, labels, false);
    uint32_t dims[1] = {2};
    size_t len = 0;
    uint8_t *b = idx_bytes(0x801, 1, dims, labels, 2, &len);
    tu_write_file(join(dir, "train-labels-idx1-ubyte"), b, len);
    free(b);
    expect_bad_idx(dir, NULL, "train-images-idx3-ubyte", "holds 3 images but");
}

static void test_idx_labels_beyond_the_class_count_are_refused(void **state)
{
    (void)state;
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    const uint8_t labels[4] = {0, 1, 7, 2};
    write_idx_pair(dir, "train", 4, 4, 4, labels, false);
    sfp_data_opts_t opts = {.n_classes = 5};
    expect_bad_idx(dir, &opts, "train-labels-idx1-ubyte", "label 7 of record 2 is beyond the 5 classes");
    /* A single class is not a classification problem. */
    const uint8_t same[3] = {4, 4, 4};
    write_idx_pair(dir, "train", 3, 4, 4, same, false);
    expect_bad_idx(dir, NULL, "train-labels-idx1-ubyte", "at least 2 classes");
}

/* A 1 KB file claiming a gigabyte is refused from its header, before any
 * allocation: raw by the file size, .gz by the ratio image data compresses to. */
static void test_idx_dims_beyond_the_file_size_are_refused_before_allocating(void **state)
{
    (void)state;
    const uint8_t labels[4] = {0, 1, 0, 1};
    uint32_t dims[3] = {1000000, 1000, 1000};
    uint8_t body[1024] = {0};
    size_t len = 0;
    uint8_t *b = idx_bytes(0x803, 3, dims, body, sizeof body, &len);
    for (int gz = 0; gz < 2; gz++) {
        char dir[64];
        tu_tmpdir(dir, sizeof dir);
        write_idx_pair(dir, "train", 4, 4, 4, labels, gz);
        const char *name = gz ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte";
        if (gz) write_gz(join(dir, name), b, len);
        else tu_write_file(join(dir, name), b, len);
        expect_bad_idx(dir, NULL, name, gz ? "gzip bomb" : "1000000 images of 1000x1000");
    }
    free(b);
    /* Once allocated: a 130 KB .gz declaring 100 MiB (a ratio deflate can
     * reach, as a real gzip bomb does) made us allocate the 100 MiB. */
    char bomb[64];
    tu_tmpdir(bomb, sizeof bomb);
    uint32_t many[3] = {100, 1024, 1024};
    size_t noise_len = 130000;
    uint8_t *noise = malloc(noise_len);
    assert_non_null(noise);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < noise_len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise[i] = (uint8_t)(x >> 56);
    }
    b = idx_bytes(0x803, 3, many, noise, noise_len, &len);
    write_idx_pair(bomb, "train", 4, 4, 4, labels, true);
    write_gz(join(bomb, "train-images-idx3-ubyte.gz"), b, len);
    free(b);
    free(noise);
    struct stat st;
    assert_int_equal(stat(join(bomb, "train-images-idx3-ubyte.gz"), &st), 0);
    assert_true(st.st_size * 1032 > (100 << 20)); /* within deflate's reach */
    expect_bad_idx(bomb, NULL, "train-images-idx3-ubyte.gz", "gzip bomb");
    /* Dimensions whose product overflows size_t are caught too. */
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    uint32_t huge[3] = {0xffffffffu, 0xffffffffu, 0xffffffffu};
    b = idx_bytes(0x803, 3, huge, body, 16, &len);
    write_idx_pair(dir, "train", 4, 4, 4, labels, false);
    tu_write_file(join(dir, "train-images-idx3-ubyte"), b, len);
    free(b);
    expect_bad_idx(dir, NULL, "train-images-idx3-ubyte", "overflows");
}

static void test_idx_corrupt_gzip_is_refused(void **state)
{
    (void)state;
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    const uint8_t labels[3] = {0, 1, 2};
    write_idx_pair(dir, "train", 3, 28, 28, labels, true);
    size_t glen = 0;
    uint8_t *g = tu_read_file(join(dir, "train-images-idx3-ubyte.gz"), &glen);
    assert_non_null(g);
    for (size_t i = 20; i < glen - 8; i += 3) g[i] ^= 0x5a;
    tu_write_file(join(dir, "train-images-idx3-ubyte.gz"), g, glen);
    free(g);
    expect_bad_idx(dir, NULL, "train-images-idx3-ubyte.gz", "train-images");
}

static void test_idx_folder_without_the_split_or_labels_is_refused(void **state)
{
    (void)state;
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    const uint8_t labels[2] = {0, 1};
    write_idx_pair(dir, "train", 2, 4, 4, labels, false);
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    int rc = data_open(dir, "test", NULL, &ds, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, dir, "no test split", "t10k-images-idx3-ubyte");
    assert_int_equal(remove(join(dir, "train-labels-idx1-ubyte")), 0);
    expect_bad_idx(dir, NULL, "train-images-idx3-ubyte", "no labels");
    rc = data_open(dir, "validation", NULL, &ds, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "validation");
}

/* ------------------------------------------------------------------------ */
/* CIFAR                                                                     */

static void test_cifar10_batches_load_with_labels_and_chw_order(void **state)
{
    (void)state;
    char dir[64], sub[128];
    tu_tmpdir(dir, sizeof dir);
    /* The tarball's layout: the batches in cifar-10-batches-bin/. */
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    const uint8_t l1[3] = {6, 9, 9}, l2[2] = {4, 1}, lt[1] = {3};
    write_cifar(join(sub, "data_batch_1.bin"), 0, 3, l1, false);
    write_cifar(join(sub, "data_batch_2.bin"), 3, 2, l2, false);
    write_cifar(join(sub, "test_batch.bin"), 100, 1, lt, false);
    sfp_error_t err = {0};
    sfp_dataset_t *train = NULL, *test = NULL;
    TU_OK(&err, data_open(dir, "train", NULL, &train, &err));
    TU_OK(&err, data_open(dir, "test", NULL, &test, &err));
    assert_string_equal(train->format, "cifar10");
    assert_int_equal(train->n, 5);
    assert_int_equal(test->n, 1);
    assert_int_equal(train->channels, 3);
    assert_int_equal(train->height, 32);
    assert_int_equal(train->n_classes, 10);
    assert_string_equal(train->class_names[0], "airplane");
    assert_string_equal(train->class_names[9], "truck");
    const int want[5] = {6, 9, 9, 4, 1};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(data_label(train, i), want[i]);
        const uint8_t *p = data_pixels(train, i);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y += 7)
                for (int x = 0; x < 32; x += 5) assert_int_equal(p[c * 1024 + y * 32 + x], cifar_pixel(i, c, y, x));
    }
    assert_int_equal(data_label(test, 0), 3);
    assert_int_equal(data_pixels(test, 0)[2 * 1024 + 31 * 32 + 31], cifar_pixel(100, 2, 31, 31));
    data_free(train);
    data_free(test);
}

static void test_cifar100_uses_the_fine_label(void **state)
{
    (void)state;
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    const uint8_t fine[2] = {19, 99};
    write_cifar(join(dir, "train.bin"), 0, 2, fine, true);
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    TU_OK(&err, data_open(dir, "train", NULL, &ds, &err));
    assert_string_equal(ds->format, "cifar100");
    assert_int_equal(ds->n_classes, 100);
    assert_int_equal(data_label(ds, 0), 19);
    assert_string_equal(ds->class_names[19], "cattle");
    assert_string_equal(ds->class_names[99], "worm");
    assert_int_equal(data_pixels(ds, 1)[1024 + 33], cifar_pixel(1, 1, 1, 1));
    data_free(ds);
    /* A single .bin file path works too, split ignored. */
    TU_OK(&err, data_open(join(dir, "train.bin"), "test", NULL, &ds, &err));
    assert_int_equal(ds->n, 2);
    data_free(ds);
}

static void test_cifar_partial_record_or_bad_label_is_refused(void **state)
{
    (void)state;
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    const uint8_t labels[2] = {1, 2};
    write_cifar(join(dir, "data_batch_1.bin"), 0, 2, labels, false);
    size_t len = 0;
    uint8_t *b = tu_read_file(join(dir, "data_batch_1.bin"), &len);
    assert_non_null(b);
    tu_write_file(join(dir, "data_batch_1.bin"), b, len - 100);
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    int rc = data_open(dir, "train", NULL, &ds, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "data_batch_1.bin", "partial record", "3073");
    b[3073] = 10; /* label of record 1 */
    tu_write_file(join(dir, "data_batch_1.bin"), b, len);
    free(b);
    rc = data_open(dir, "train", NULL, &ds, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "data_batch_1.bin", "record 1 has label 10", "10 classes of CIFAR-10");
    /* The model's class count is a tighter limit. */
    write_cifar(join(dir, "data_batch_1.bin"), 0, 2, labels, false);
    sfp_data_opts_t opts = {.n_classes = 2};
    rc = data_open(dir, "train", &opts, &ds, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "data_batch_1.bin", "label 2", "the model");
    /* Train batches but no test batch. */
    rc = data_open(dir, "test", NULL, &ds, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, dir, "test_batch.bin");
    assert_null(ds);
}

/* ------------------------------------------------------------------------ */
/* Image folders                                                             */

/* root/{zebra: 1.pgm 4x4, 2.pgm 4x4, notes.txt, nested/}, {Moose: a.bmp 16x16
 * red}, {ant: x.png 8x8 RGB gradient}, README.txt, .hidden. */
static void make_image_folder(const char *root)
{
    char path[512];
    snprintf(path, sizeof path, "%s/zebra", root);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/zebra/nested", root);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/Moose", root);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/ant", root);
    assert_int_equal(mkdir(path, 0755), 0);
    uint8_t gray[16];
    for (int i = 0; i < 16; i++) gray[i] = (uint8_t)(10 + i * 15);
    write_pgm(join(root, "zebra/1.pgm"), 4, 4, gray);
    for (int i = 0; i < 16; i++) gray[i] = 200;
    write_pgm(join(root, "zebra/2.PGM"), 4, 4, gray);
    tu_write_file(join(root, "zebra/notes.txt"), "not an image\n", 13);
    uint8_t red[16 * 16 * 3];
    for (int i = 0; i < 16 * 16; i++) {
        red[i * 3] = 255;
        red[i * 3 + 1] = 0;
        red[i * 3 + 2] = 0;
    }
    write_bmp(join(root, "Moose/a.bmp"), 16, 16, red);
    uint8_t rgb[8 * 8 * 3];
    for (int i = 0; i < 64; i++) {
        rgb[i * 3] = (uint8_t)(i * 4);
        rgb[i * 3 + 1] = (uint8_t)(255 - i * 3);
        rgb[i * 3 + 2] = (uint8_t)(i * 2 + 7);
    }
    assert_true(stbi_write_png(join(root, "ant/x.png"), 8, 8, 3, rgb, 8 * 3) != 0);
    tu_write_file(join(root, "README.txt"), "classes\n", 8);
    tu_write_file(join(root, ".hidden"), "x", 1);
}

/* make_image_folder in a new temporary root, opened for a 1x8x8 model. */
static sfp_dataset_t *open_made_folder_8x8(char *root, size_t size)
{
    tu_tmpdir(root, size);
    make_image_folder(root);
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    sfp_data_opts_t opts = {.channels = 1, .height = 8, .width = 8};
    TU_OK(&err, data_open(root, "train", &opts, &ds, &err));
    return ds;
}

static void test_image_folder_loads_sorted_classes_padded_and_resized(void **state)
{
    (void)state;
    char root[64];
    sfp_error_t err = {0};
    sfp_dataset_t *ds = open_made_folder_8x8(root, sizeof root);
    sfp_data_opts_t opts = {.channels = 1, .height = 8, .width = 8};
    assert_string_equal(ds->format, "imagefolder");
    assert_int_equal(ds->n_classes, 3);
    /* Byte-wise order: upper case before lower case. */
    assert_string_equal(ds->class_names[0], "Moose");
    assert_string_equal(ds->class_names[1], "ant");
    assert_string_equal(ds->class_names[2], "zebra");
    assert_int_equal(ds->n, 4);
    assert_int_equal(ds->n_skipped, 3); /* README.txt, zebra/notes.txt, zebra/nested */
    assert_int_equal(data_label(ds, 0), 0);
    assert_int_equal(data_label(ds, 1), 1);
    assert_int_equal(data_label(ds, 2), 2);
    assert_int_equal(data_label(ds, 3), 2);
    const char *src = data_source_path(ds, 2);
    assert_non_null(src);
    assert_non_null(strstr(src, "zebra/1.pgm"));

    /* 16x16 red BMP resized to 8x8 gray: luminance 76 everywhere; stb's
     * filter on a constant image may round by one level. */
    const uint8_t *moose = data_pixels(ds, 0);
    for (int k = 0; k < 64; k++) assert_true(moose[k] >= 75 && moose[k] <= 77);
    /* Same-size PNG: exact rounded BT.601 luminance. */
    const uint8_t *ant = data_pixels(ds, 1);
    for (int i = 0; i < 64; i++) {
        uint8_t rgb[3] = {(uint8_t)(i * 4), (uint8_t)(255 - i * 3), (uint8_t)(i * 2 + 7)};
        assert_int_equal(ant[i], luminance(rgb));
    }
    /* 4x4 PGM into 8x8: centred with 2 black pixels on each side. */
    const uint8_t *zebra = data_pixels(ds, 2);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            bool inside = y >= 2 && y < 6 && x >= 2 && x < 6;
            assert_int_equal(zebra[y * 8 + x], inside ? 10 + ((y - 2) * 4 + (x - 2)) * 15 : 0);
        }
    data_free(ds);

    /* As RGB: gray replicated, colour kept in CHW planes. */
    opts.channels = 3;
    TU_OK(&err, data_open(root, NULL, &opts, &ds, &err));
    const uint8_t *z3 = data_pixels(ds, 2);
    assert_int_equal(z3[2 * 8 + 2], 10);
    assert_int_equal(z3[64 + 2 * 8 + 2], 10);
    assert_int_equal(z3[128 + 5 * 8 + 5], 10 + 15 * 15);
    const uint8_t *a3 = data_pixels(ds, 1);
    assert_int_equal(a3[9], 9 * 4);
    assert_int_equal(a3[64 + 9], 255 - 9 * 3);
    assert_int_equal(a3[128 + 9], 9 * 2 + 7);
    data_free(ds);

    /* Without a model geometry the first image decides (16x16 RGB BMP). */
    TU_OK(&err, data_open(root, NULL, NULL, &ds, &err));
    assert_int_equal(ds->channels, 3);
    assert_int_equal(ds->height, 16);
    assert_int_equal(ds->width, 16);
    data_free(ds);
}

static void test_image_folder_with_split_folders_uses_the_split(void **state)
{
    (void)state;
    char root[64];
    tu_tmpdir(root, sizeof root);
    const char *const dirs[] = {"train", "val", "train/cat", "train/dog", "val/cat", "val/dog"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) assert_int_equal(mkdir(join(root, dirs[i]), 0755), 0);
    uint8_t px[4] = {1, 2, 3, 4};
    write_pgm(join(root, "train/cat/a.pgm"), 2, 2, px);
    write_pgm(join(root, "train/cat/b.pgm"), 2, 2, px);
    write_pgm(join(root, "train/dog/c.pgm"), 2, 2, px);
    write_pgm(join(root, "val/cat/d.pgm"), 2, 2, px);
    write_pgm(join(root, "val/dog/e.pgm"), 2, 2, px);
    sfp_error_t err = {0};
    sfp_dataset_t *train = NULL, *test = NULL;
    TU_OK(&err, data_open(root, "train", NULL, &train, &err));
    TU_OK(&err, data_open(root, "test", NULL, &test, &err)); /* val/ stands in for test/ */
    assert_int_equal(train->n, 3);
    assert_int_equal(test->n, 2);
    assert_string_equal(test->class_names[1], "dog");
    assert_non_null(strstr(data_source_path(test, 1), "val/dog/e.pgm"));
    data_free(train);
    data_free(test);
}

static void expect_bad_folder(const char *root, int code, const char *name, const char *what)
{
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    sfp_data_opts_t opts = {.channels = 1, .height = 8, .width = 8};
    int rc = data_open(root, "train", &opts, &ds, &err);
    TU_EXPECT_ERR(rc, &err, code, name, what);
    assert_null(ds);
}

static void test_image_folder_bad_contents_are_refused(void **state)
{
    (void)state;
    char root[64];
    tu_tmpdir(root, sizeof root);
    make_image_folder(root);

    /* A file with an image extension that does not decode. */
    tu_write_file(join(root, "ant/broken.png"), "this is no png", 14);
    expect_bad_folder(root, SFP_EBADDATA, "ant/broken.png", "not a readable");
    assert_int_equal(remove(join(root, "ant/broken.png")), 0);

    /* A PNG whose header declares 10000x10000 RGB (300 MB) in 45 bytes. */
    uint8_t png[45] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    put_be32(png + 16, 10000);
    put_be32(png + 20, 10000);
    png[24] = 8; /* bit depth */
    png[25] = 2; /* RGB */
    put_be32(png + 29, (uint32_t)crc32(0, png + 12, 17));
    put_be32(png + 33, 0);
    memcpy(png + 37, "IDAT", 4);
    tu_write_file(join(root, "ant/bomb.png"), png, sizeof png);
    expect_bad_folder(root, SFP_EBADDATA, "ant/bomb.png", "declares 10000x10000");
    assert_int_equal(remove(join(root, "ant/bomb.png")), 0);

    /* A JPEG whose Huffman table declares 16 x 255 codes: stb_image 2.27
     * writes past its tables (nothings/stb#1289), so the table is checked
     * before stb_image sees it (the decoding child was the only guard). */
    uint8_t jpeg[2 + 4 + 17 + 2] = {0xff, 0xd8, 0xff, 0xc4, 0x00, 19, 0x00};
    memset(jpeg + 7, 0xff, 16);
    jpeg[23] = 0xff;
    jpeg[24] = 0xd9;
    tu_write_file(join(root, "ant/evil.jpg"), jpeg, sizeof jpeg);
    expect_bad_folder(root, SFP_EBADDATA, "ant/evil.jpg: ", "Huffman table at byte 6 declares 4080 codes");
    assert_int_equal(remove(join(root, "ant/evil.jpg")), 0);

    /* A PNG whose IDAT chunk declares 2 GB in 57 bytes: stb_image grew its
     * buffer to the declared length before reading (found by fuzz_image). */
    uint8_t idat[57];
    memcpy(idat, png, 33);
    put_be32(idat + 16, 8);
    put_be32(idat + 20, 8);
    put_be32(idat + 29, (uint32_t)crc32(0, idat + 12, 17));
    put_be32(idat + 33, 0x7ffffff0u);
    memcpy(idat + 37, "IDAT", 4);
    memset(idat + 41, 0, 16);
    tu_write_file(join(root, "ant/idat.png"), idat, sizeof idat);
    expect_bad_folder(root, SFP_EBADDATA, "ant/idat.png", "PNG chunk 'IDAT' at byte 33 declares 2147483632 bytes");
    assert_int_equal(remove(join(root, "ant/idat.png")), 0);

    /* An image that cannot be read at all: a dangling symlink. */
    assert_int_equal(symlink("/nonexistent/sfp-image.png", join(root, "ant/gone.png")), 0);
    expect_bad_folder(root, SFP_EIO, "ant/gone.png", "cannot open");
    assert_int_equal(remove(join(root, "ant/gone.png")), 0);

    /* An empty class folder. */
    assert_int_equal(mkdir(join(root, "empty"), 0755), 0);
    tu_write_file(join(root, "empty/labels.csv"), "a,b\n", 4);
    expect_bad_folder(root, SFP_EBADDATA, "empty", "holds no images");
    tu_rm_rf(join(root, "empty"));

    /* More classes than the model has. */
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    sfp_data_opts_t opts = {.channels = 1, .height = 8, .width = 8, .n_classes = 2};
    int rc = data_open(root, "train", &opts, &ds, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, root, "3 class folders", "2 classes of the model");

    /* Fewer than 2 classes. */
    tu_rm_rf(join(root, "ant"));
    tu_rm_rf(join(root, "Moose"));
    expect_bad_folder(root, SFP_EBADDATA, root, "at least 2 class sub-folders (found 1)");

    /* Not a dataset path at all. */
    rc = data_open(join(root, "README.txt"), NULL, NULL, &ds, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "README.txt", "not a dataset");
    rc = data_open(join(root, "missing"), NULL, NULL, &ds, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EIO, "missing", "cannot open");
}

/* What stb_image 2.27 mishandles is refused before it decodes (found by
 * fuzz_image; tests/bad_data/regress/image holds the fuzzer's files). */
static void test_image_files_stb_mishandles_are_refused_before_decoding(void **state)
{
    (void)state;
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    uint8_t out[8 * 8];
    sfp_error_t err = {0};
    /* A DHT segment 2 bytes long whose table stb_image reads anyway, past
     * the segment: counts 0x10, 0x13... sum to 512. */
    const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xc4, 0x00, 0x04, 0x11, 0x10, 0x13, 0x18, 0x24, 0x1a, 0x18, 0x16,
                            0x16, 0x18, 0x31, 0x23, 0x25, 0x1d, 0x28, 0x3a, 0x33, 0xff, 0xd9};
    tu_write_file(join(dir, "short.jpg"), jpeg, sizeof jpeg);
    int rc = data_image_load(join(dir, "short.jpg"), 1, 8, 8, out, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "short.jpg", "Huffman table at byte 6 declares 512 codes");
    /* The same behind 0xFF fill bytes, which stb_image skips before SOI. */
    uint8_t filled[3 + sizeof jpeg] = {0xff, 0xff, 0xff};
    memcpy(filled + 3, jpeg, sizeof jpeg);
    tu_write_file(join(dir, "filled.jpg"), filled, sizeof filled);
    rc = data_image_load(join(dir, "filled.jpg"), 1, 8, 8, out, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "filled.jpg", "Huffman table at byte 9 declares 512 codes");
    /* A baseline scan decoding with AC table 0, which no DHT defined: stb_image
     * indexed out of its arrays with the uninitialised table. */
    const uint8_t scan[] = {0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00,
                            0xff, 0xc4, 0x00, 0x14, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00,
                            0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x00, 0xff, 0xd9};
    tu_write_file(join(dir, "scan.jpg"), scan, sizeof scan);
    rc = data_image_load(join(dir, "scan.jpg"), 1, 8, 8, out, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "scan.jpg", "scan at byte 37 decodes with a Huffman table that was never");
    /* PGM sizes of 10 digits overflowed stb_image's int parser. */
    tu_write_file(join(dir, "long.pgm"), "P5 9999999999 1 255\n\0", 22);
    rc = data_image_load(join(dir, "long.pgm"), 1, 8, 8, out, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "long.pgm", "more than 9 digits");
    /* A PGM with a comment, 4x4 declared, 10 of 16 pixels present: stb_image
     * returned the missing 6 uninitialised. */
    tu_write_file(join(dir, "short.pgm"), "P5\n# c\n4 4\n255\n0123456789", 25);
    rc = data_image_load(join(dir, "short.pgm"), 1, 8, 8, out, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "short.pgm", "PNM header declares 4x4 pixels, the file holds 10 bytes");
    /* The same with all 16 pixels loads. */
    tu_write_file(join(dir, "ok.pgm"), "P5\n# c\n4 4\n255\n0123456789abcdef", 31);
    TU_OK(&err, data_image_load(join(dir, "ok.pgm"), 1, 8, 8, out, &err));
    assert_int_equal(out[2 * 8 + 2], '0');
    assert_int_equal(out[5 * 8 + 5], 'f');
}

static void test_image_files_load_unlabelled_for_detect(void **state)
{
    (void)state;
    char root[64];
    tu_tmpdir(root, sizeof root);
    make_image_folder(root);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s", join(root, "ant/x.png"));
    snprintf(b, sizeof b, "%s", join(root, "zebra/1.pgm"));
    const char *paths[2] = {a, b};
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    sfp_data_opts_t opts = {.channels = 3, .height = 4, .width = 4};
    TU_OK(&err, data_open_images(paths, 2, &opts, &ds, &err));
    assert_string_equal(ds->format, "images");
    assert_int_equal(ds->n, 2);
    assert_int_equal(ds->n_classes, 0);
    assert_int_equal(data_label(ds, 0), -1);
    assert_string_equal(data_source_path(ds, 1), b);
    /* The 4x4 PGM fits exactly: no padding. */
    assert_int_equal(data_pixels(ds, 1)[0], 10);
    assert_int_equal(data_pixels(ds, 1)[2 * 16 + 15], 10 + 15 * 15);
    data_free(ds);
}

/* Image data remembers each file's own size (what a model records as its
 * training data, and what detect compares with); detect's skip_unreadable
 * leaves out a fake PNG, a truncated one and a crafted JPEG, naming each,
 * and loads the rest, where training refuses the folder. */
static void test_image_folder_records_source_sizes_and_can_skip_unreadable_files(void **state)
{
    (void)state;
    char root[64];
    sfp_error_t err = {0};
    sfp_dataset_t *ds = open_made_folder_8x8(root, sizeof root);
    sfp_data_opts_t opts = {.channels = 1, .height = 8, .width = 8};
    int c = 0, h = 0, w = 0;
    int64_t other = -1;
    assert_true(data_source_geometry(ds, 0, &c, &h, &w)); /* Moose/a.bmp, RGB 16x16 */
    assert_int_equal(c, 3);
    assert_int_equal(h, 16);
    assert_int_equal(w, 16);
    /* 4 files: 16x16 RGB, 8x8 RGB and two 4x4 gray: 1x4x4 is the most common. */
    assert_true(data_common_source_geometry(ds, &c, &h, &w, &other));
    assert_int_equal(c, 1);
    assert_int_equal(h, 4);
    assert_int_equal(other, 2);
    sfp_data_prep_t prep;
    data_prep_init(&prep, 1, 8, 8);
    assert_string_equal(data_prep_fit_name(&prep, ds), "pad-center");
    assert_string_equal(data_prep_filter_name(&prep, ds), "none");
    data_prep_init(&prep, 1, 3, 3);
    assert_string_equal(data_prep_fit_name(&prep, ds), "resize");
    assert_string_equal(data_prep_filter_name(&prep, ds), DATA_RESIZE_FILTER_DOWN);
    assert_int_equal(data_n_unreadable(ds), 0);
    data_free(ds);

    tu_write_file(join(root, "ant/fake.png"), "not an image\n", 13);
    const uint8_t png_head[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    tu_write_file(join(root, "zebra/cut.png"), png_head, sizeof png_head);
    const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xc4, 0x00, 0x04, 0x11, 0x10, 0x13, 0x18, 0x24, 0x1a, 0x18, 0x16,
                            0x16, 0x18, 0x31, 0x23, 0x25, 0x1d, 0x28, 0x3a, 0x33, 0xff, 0xd9};
    tu_write_file(join(root, "zebra/crafted.jpg"), jpeg, sizeof jpeg);
    expect_bad_folder(root, SFP_EBADDATA, "ant/fake.png", "not a readable");
    opts.skip_unreadable = true;
    TU_OK(&err, data_open(root, "train", &opts, &ds, &err));
    assert_int_equal(ds->n, 4);
    assert_int_equal(data_n_unreadable(ds), 3);
    const char *reason = NULL;
    assert_non_null(strstr(data_unreadable(ds, 0, &reason), "ant/fake.png"));
    assert_non_null(strstr(reason, "not a readable")); /* the path is not repeated */
    assert_null(strstr(reason, "fake.png"));
    assert_non_null(strstr(data_unreadable(ds, 1, &reason), "zebra/crafted.jpg"));
    assert_non_null(strstr(reason, "Huffman table"));
    assert_non_null(strstr(data_unreadable(ds, 2, &reason), "zebra/cut.png"));
    /* The files that decode keep their labels, pixels and sizes. */
    assert_int_equal(data_label(ds, 1), 1);
    assert_non_null(strstr(data_source_path(ds, 1), "ant/x.png"));
    assert_true(data_source_geometry(ds, 1, &c, &h, &w));
    assert_int_equal(h, 8);
    assert_int_equal(data_label(ds, 3), 2);
    assert_int_equal(data_pixels(ds, 2)[2 * 8 + 2], 10); /* zebra/1.pgm, padded */
    data_free(ds);
}

/* ------------------------------------------------------------------------ */
/* Preprocessing                                                             */

/* mean/std chosen so 0 and 255 map to exactly representable values; every
 * other value must equal the formula (p/255 - mean)/std evaluated in float,
 * bit for bit (same operations, no contraction under -std=c11). */
static void test_normalisation_values_are_exact(void **state)
{
    (void)state;
    sfp_dataset_t *ds = cifar_set(3);
    sfp_data_prep_t prep;
    data_prep_init(&prep, 3, 32, 32);
    sfp_error_t err = {0};
    const float mean[3] = {0.5f, 0.25f, 0.0f}, std[3] = {0.25f, 0.5f, 1.0f};
    TU_OK(&err, data_prep_set_norm(&prep, mean, 3, std, 3, &err));
    float *out = malloc(3 * 1024 * sizeof *out);
    assert_non_null(out);
    for (int64_t i = 0; i < ds->n; i++) {
        data_prep_example(&prep, ds, i, out);
        const uint8_t *p = data_pixels(ds, i);
        for (int k = 0; k < 3 * 1024; k++) {
            int c = k / 1024;
            float want = ((float)p[k] / 255.0f - mean[c]) / std[c];
            assert_true(out[k] == want);
            if (p[k] == 255) assert_true(out[k] == (c == 0 ? 2.0f : c == 1 ? 1.5f : 1.0f));
            if (p[k] == 0) assert_true(out[k] == (c == 0 ? -2.0f : c == 1 ? -0.5f : 0.0f));
        }
    }
    /* One value applies to every channel. */
    const float one_mean = 0.5f, one_std = 0.5f;
    TU_OK(&err, data_prep_set_norm(&prep, &one_mean, 1, &one_std, 1, &err));
    data_prep_example(&prep, ds, 0, out);
    const uint8_t *p = data_pixels(ds, 0);
    for (int k = 0; k < 3 * 1024; k++) assert_true(out[k] == ((float)p[k] / 255.0f - 0.5f) / 0.5f);
    free(out);
    data_free(ds);
}

static void test_idx_28x28_into_a_32x32_model_is_zero_padded_and_centred(void **state)
{
    (void)state;
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    const uint8_t labels[2] = {0, 1};
    write_idx_pair(dir, "train", 2, 28, 28, labels, false);
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    TU_OK(&err, data_open(dir, NULL, NULL, &ds, &err));
    sfp_data_prep_t prep;
    data_prep_init(&prep, 1, 32, 32);
    const float mean = 0.25f, std = 0.5f;
    TU_OK(&err, data_prep_set_norm(&prep, &mean, 1, &std, 1, &err));
    TU_OK(&err, data_prep_check(&prep, ds, &err));
    assert_string_equal(data_prep_fit_name(&prep, ds), "pad-center");
    float out[32 * 32];
    data_prep_example(&prep, ds, 1, out);
    const float black = (0.0f - mean) / std; /* padding is a black pixel before normalisation */
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            bool inside = y >= 2 && y < 30 && x >= 2 && x < 30;
            float want = inside ? ((float)idx_pixel(1, y - 2, x - 2) / 255.0f - mean) / std : black;
            assert_true(out[y * 32 + x] == want);
        }
    /* Odd margins: 28 into 31 puts 1 row/column top/left and 2 bottom/right. */
    data_prep_init(&prep, 1, 31, 31);
    float odd[31 * 31];
    data_prep_example(&prep, ds, 0, odd);
    assert_true(odd[0 * 31 + 5] == 0.0f);
    assert_true(odd[1 * 31 + 1] == (float)idx_pixel(0, 0, 0) / 255.0f);
    assert_true(odd[28 * 31 + 28] == (float)idx_pixel(0, 27, 27) / 255.0f);
    assert_true(odd[29 * 31 + 29] == 0.0f);
    data_free(ds);
}

/* 32x32 -> 16x16 with half-pixel centres samples at 2y + 0.5: the mean of
 * each 2x2 block. Float interpolation vs exact sums: 1e-6 covers the few
 * roundings of values below 1. */
static void test_larger_source_is_resized_bilinearly(void **state)
{
    (void)state;
    sfp_dataset_t *ds = cifar_set(2);
    sfp_data_prep_t prep;
    data_prep_init(&prep, 3, 16, 16);
    assert_string_equal(data_prep_fit_name(&prep, ds), "resize");
    float out[3 * 256];
    data_prep_example(&prep, ds, 1, out);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++) {
                int sum = cifar_pixel(1, c, 2 * y, 2 * x) + cifar_pixel(1, c, 2 * y, 2 * x + 1) +
                          cifar_pixel(1, c, 2 * y + 1, 2 * x) + cifar_pixel(1, c, 2 * y + 1, 2 * x + 1);
                expect_near((double)out[c * 256 + y * 16 + x], (double)sum / 4.0 / 255.0, 1e-6);
            }
    data_free(ds);
}

/* Reference from PyTorch 1.13: x = cifar_pixel(1, c, y, x) / 255 as a
 * 1x3x32x32 float tensor, F.interpolate(x, size=(20, 24), mode="bilinear",
 * align_corners=False, antialias=False). We interpolate 0..255 and divide
 * afterwards, so results differ by a few float ulps: 1e-6 (16 ulps at 1.0). */
static void test_resize_matches_pytorch_bilinear(void **state)
{
    (void)state;
    static const float row_c1_y7[24] = {
        0.393137127f, 0.499019474f, 0.251960784f, 0.411437988f, 0.475490123f, 0.186601296f, 0.471568644f, 0.326470524f,
        0.665032864f, 0.322549284f, 0.553921461f, 0.432352901f, 0.549999893f, 0.404902071f, 0.743464231f, 0.568300605f,
        0.381372541f, 0.259803951f, 0.210130796f, 0.232353047f, 0.319934785f, 0.479411989f, 0.459803611f, 0.505555689f};
    static const float row_c2_y19[24] = {
        0.561503589f, 0.182156742f, 0.453790754f, 0.747124195f, 0.560196161f, 0.689607799f, 0.238366023f, 0.360980153f,
        0.548954368f, 0.306862861f, 0.638627172f, 0.199150085f, 0.584510148f, 0.539803743f, 0.309476942f, 0.151045606f,
        0.415882915f, 0.746078849f, 0.0940522552f, 0.216666684f, 0.404640585f, 0.664509892f, 0.494313002f,
        0.389477342f};
    sfp_dataset_t *ds = cifar_set(2);
    sfp_data_prep_t prep;
    data_prep_init(&prep, 3, 20, 24);
    float out[3 * 20 * 24];
    data_prep_example(&prep, ds, 1, out);
    for (int x = 0; x < 24; x++) {
        expect_near((double)out[1 * 480 + 7 * 24 + x], (double)row_c1_y7[x], 1e-6);
        expect_near((double)out[2 * 480 + 19 * 24 + x], (double)row_c2_y19[x], 1e-6);
    }
    double sum = 0.0;
    for (int k = 0; k < 3 * 480; k++) sum += (double)out[k];
    expect_near(sum, 717.358445, 1e-4); /* 1440 values, each within 1e-6 */
    data_free(ds);
}

static void test_channels_gray_to_rgb_replicates_and_rgb_to_gray_uses_luminance(void **state)
{
    (void)state;
    sfp_dataset_t *ds = cifar_set(2);
    sfp_data_prep_t prep;
    data_prep_init(&prep, 1, 32, 32);
    float gray[1024];
    data_prep_example(&prep, ds, 1, gray);
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            double want = (0.299 * cifar_pixel(1, 0, y, x) + 0.587 * cifar_pixel(1, 1, y, x) +
                           0.114 * cifar_pixel(1, 2, y, x)) / 255.0;
            expect_near((double)gray[y * 32 + x], want, 1e-6); /* float coefficients vs double */
        }
    data_free(ds);

    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    const uint8_t labels[2] = {0, 1};
    write_idx_pair(dir, "train", 2, 28, 28, labels, true);
    sfp_error_t err = {0};
    TU_OK(&err, data_open(dir, NULL, NULL, &ds, &err));
    data_prep_init(&prep, 3, 28, 28);
    const float mean[3] = {0.1f, 0.2f, 0.3f}, std[3] = {0.5f, 0.5f, 0.5f};
    TU_OK(&err, data_prep_set_norm(&prep, mean, 3, std, 3, &err));
    float rgb[3 * 784];
    data_prep_example(&prep, ds, 0, rgb);
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 784; k++)
            assert_true(rgb[c * 784 + k] == ((float)idx_pixel(0, k / 28, k % 28) / 255.0f - mean[c]) / std[c]);
    data_free(ds);
}

static void test_bad_preprocessing_options_are_refused(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    float v[3];
    int n = 0;
    TU_OK(&err, data_parse_floats("0.4914,0.4822, 0.4465", "--mean", v, 3, &n, &err));
    assert_int_equal(n, 3);
    assert_true(v[1] == 0.4822f);
    int rc = data_parse_floats("0.5,abc", "--mean", v, 3, &n, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "--mean", "0.5,abc");
    rc = data_parse_floats("1,2,3,4", "--std", v, 3, &n, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "--std", "more than 3");
    rc = data_parse_floats("1e999", "--std", v, 3, &n, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "--std");
    rc = data_parse_floats(" , ", "--std", v, 3, &n, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "no values");

    sfp_data_prep_t prep;
    data_prep_init(&prep, 3, 32, 32);
    const float mean2[2] = {0.5f, 0.5f}, zero = 0.0f, one = 1.0f;
    rc = data_prep_set_norm(&prep, mean2, 2, &one, 1, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "--mean has 2 values");
    rc = data_prep_set_norm(&prep, &one, 1, &zero, 1, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "--std");
    data_prep_init(&prep, 4, 32, 32);
    rc = data_prep_check(&prep, NULL, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUNSUPPORTED, "4 channels");
}

/* ------------------------------------------------------------------------ */
/* Shuffling, augmentation, batches                                          */

static void test_epoch_order_is_a_seeded_permutation(void **state)
{
    (void)state;
    enum { N = 1000 };
    int64_t a[N], b[N], c[N], d[N];
    data_epoch_order(N, 42, 0, a);
    data_epoch_order(N, 42, 0, b);
    data_epoch_order(N, 43, 0, c);
    data_epoch_order(N, 42, 1, d);
    uint8_t seen[N] = {0};
    int fixed = 0;
    for (int i = 0; i < N; i++) {
        assert_true(a[i] >= 0 && a[i] < N);
        assert_int_equal(seen[a[i]], 0);
        seen[a[i]] = 1;
        fixed += a[i] == i;
    }
    /* A uniform permutation has 1 fixed point on average; 10 would be a bug. */
    assert_true(fixed < 10);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    assert_memory_not_equal(a, d, sizeof a);
    /* Pinned: the same on every machine (integer-only generator); the values
     * come from a Python transcription of splitmix64 + Fisher-Yates. */
    int64_t small[10];
    const int64_t pinned[10] = {2, 8, 1, 5, 3, 7, 9, 6, 0, 4};
    data_epoch_order(10, 1, 0, small);
    assert_memory_equal(small, pinned, sizeof small);
}

/* Collects every batch of one epoch: x, labels and examples concatenated. */
typedef struct epoch_dump {
    float *x;
    int32_t *labels;
    int64_t *examples;
    int64_t n, n_batches, last_n;
} epoch_dump_t;

static epoch_dump_t run_epoch(sfp_data_iter_t *it, int64_t epoch, size_t example_floats, int64_t max_examples)
{
    epoch_dump_t d = {0};
    d.x = malloc((size_t)max_examples * example_floats * sizeof(float));
    d.labels = malloc((size_t)max_examples * sizeof(int32_t));
    d.examples = malloc((size_t)max_examples * sizeof(int64_t));
    assert_true(d.x && d.labels && d.examples);
    data_iter_start_epoch(it, epoch);
    sfp_data_batch_t b;
    while (data_iter_next(it, &b)) {
        assert_int_equal(b.index, d.n_batches);
        assert_true(d.n + b.n <= max_examples);
        memcpy(d.x + (size_t)d.n * example_floats, b.x, (size_t)b.n * example_floats * sizeof(float));
        memcpy(d.labels + d.n, b.labels, (size_t)b.n * sizeof(int32_t));
        memcpy(d.examples + d.n, b.examples, (size_t)b.n * sizeof(int64_t));
        d.n += b.n;
        d.n_batches++;
        d.last_n = b.n;
    }
    assert_int_equal(data_iter_next(it, &b), 0); /* stays at the end */
    return d;
}

static void dump_free(epoch_dump_t *d)
{
    free(d->x);
    free(d->labels);
    free(d->examples);
}

static void expect_same_epoch(const epoch_dump_t *a, const epoch_dump_t *b, size_t example_floats)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->n_batches, b->n_batches);
    assert_memory_equal(a->x, b->x, (size_t)a->n * example_floats * sizeof(float));
    assert_memory_equal(a->labels, b->labels, (size_t)a->n * sizeof(int32_t));
    assert_memory_equal(a->examples, b->examples, (size_t)a->n * sizeof(int64_t));
}

static sfp_data_iter_t *make_iter(const sfp_dataset_t *ds, const sfp_data_prep_t *prep, int64_t batch, bool shuffle,
                              bool drop_last, bool threaded, uint64_t seed, int crop_pad, bool hflip)
{
    sfp_data_iter_opts_t opts = {.batch_size = batch, .shuffle = shuffle, .drop_last = drop_last,
                             .threaded = threaded, .seed = seed, .augment = {.crop_pad = crop_pad, .hflip = hflip}};
    sfp_error_t err = {0};
    sfp_data_iter_t *it = NULL;
    TU_OK(&err, data_iter_create(ds, prep, &opts, &it, &err));
    return it;
}

static void test_batches_follow_the_epoch_order_and_keep_or_drop_the_last(void **state)
{
    (void)state;
    sfp_dataset_t *ds = cifar_set(23);
    sfp_data_prep_t prep;
    data_prep_init(&prep, 3, 32, 32);
    const size_t ef = 3 * 1024;
    sfp_data_iter_t *it = make_iter(ds, &prep, 5, true, false, false, 9, 0, false);
    assert_int_equal(data_iter_n_batches(it), 5);
    epoch_dump_t d = run_epoch(it, 2, ef, 23);
    assert_int_equal(d.n, 23);
    assert_int_equal(d.last_n, 3);
    int64_t order[23];
    data_epoch_order(23, 9, 2, order);
    float ref[3 * 1024];
    for (int i = 0; i < 23; i++) {
        assert_int_equal(d.examples[i], order[i]);
        assert_int_equal(d.labels[i], data_label(ds, order[i]));
        data_prep_example(&prep, ds, order[i], ref);
        assert_memory_equal(d.x + (size_t)i * ef, ref, sizeof ref);
    }
    dump_free(&d);
    data_iter_free(it);

    it = make_iter(ds, &prep, 5, false, true, true, 9, 0, false);
    assert_int_equal(data_iter_n_batches(it), 4);
    d = run_epoch(it, 0, ef, 23);
    assert_int_equal(d.n, 20);
    assert_int_equal(d.last_n, 5);
    for (int i = 0; i < 20; i++) assert_int_equal(d.examples[i], i);
    dump_free(&d);
    data_iter_free(it);

    /* A batch larger than the set: one partial batch, or none when dropped. */
    it = make_iter(ds, &prep, 64, false, false, true, 9, 0, false);
    assert_int_equal(data_iter_n_batches(it), 1);
    data_iter_free(it);
    it = make_iter(ds, &prep, 64, false, true, true, 9, 0, false);
    assert_int_equal(data_iter_n_batches(it), 0);
    sfp_data_batch_t b;
    data_iter_start_epoch(it, 0);
    assert_int_equal(data_iter_next(it, &b), 0);
    data_iter_free(it);
    data_free(ds);
}

/* Finds a crop offset and flip that reproduce aug from the plain example. */
static bool is_crop_flip_of(const sfp_data_prep_t *prep, const sfp_dataset_t *ds, int64_t ex, int pad, const float *aug,
                            int *dy_out, int *dx_out, bool *flip_out)
{
    size_t ef = (size_t)prep->channels * (size_t)prep->height * (size_t)prep->width;
    float *ref = malloc(ef * sizeof *ref);
    assert_non_null(ref);
    bool found = false;
    for (int dy = 0; dy <= 2 * pad && !found; dy++)
        for (int dx = 0; dx <= 2 * pad && !found; dx++)
            for (int flip = 0; flip < 2 && !found; flip++) {
                data_prep_pixels(prep, data_pixels(ds, ex), ds->channels, ds->height, ds->width, pad, dy, dx,
                                 flip, ref);
                if (memcmp(ref, aug, ef * sizeof *ref) == 0) {
                    found = true;
                    *dy_out = dy;
                    *dx_out = dx;
                    *flip_out = flip;
                }
            }
    free(ref);
    return found;
}

static void test_augmentation_is_deterministic_per_seed_and_a_crop_or_flip(void **state)
{
    (void)state;
    sfp_dataset_t *ds = cifar_set(40);
    sfp_data_prep_t prep;
    data_prep_init(&prep, 3, 32, 32);
    const float mean = 0.5f, std = 0.25f;
    sfp_error_t err = {0};
    TU_OK(&err, data_prep_set_norm(&prep, &mean, 1, &std, 1, &err));
    const size_t ef = 3 * 1024;
    sfp_data_iter_t *a = make_iter(ds, &prep, 8, true, false, false, 7, 4, true);
    sfp_data_iter_t *b = make_iter(ds, &prep, 8, true, false, false, 7, 4, true);
    sfp_data_iter_t *c = make_iter(ds, &prep, 8, true, false, false, 8, 4, true);
    epoch_dump_t da = run_epoch(a, 0, ef, 40), db = run_epoch(b, 0, ef, 40), dc = run_epoch(c, 0, ef, 40);
    epoch_dump_t da1 = run_epoch(a, 1, ef, 40);
    expect_same_epoch(&da, &db, ef);
    assert_memory_not_equal(da.x, dc.x, 40 * ef * sizeof(float));
    assert_memory_not_equal(da.x, da1.x, 40 * ef * sizeof(float));

    /* Every augmented example is its plain version cropped and maybe flipped,
     * and over 40 draws both flips and several offsets occur. */
    int flips = 0, offsets_seen = 0;
    bool seen[9][9] = {{false}};
    for (int i = 0; i < 40; i++) {
        int dy = 0, dx = 0;
        bool flip = false;
        assert_true(is_crop_flip_of(&prep, ds, da.examples[i], 4, da.x + (size_t)i * ef, &dy, &dx, &flip));
        flips += flip;
        if (!seen[dy][dx]) offsets_seen++;
        seen[dy][dx] = true;
    }
    assert_true(flips > 5 && flips < 35);
    assert_true(offsets_seen > 10);
    dump_free(&da);
    dump_free(&db);
    dump_free(&dc);
    dump_free(&da1);
    data_iter_free(a);
    data_iter_free(b);
    data_iter_free(c);
    data_free(ds);
}

static void test_loader_thread_gives_the_same_batches_as_the_synchronous_path(void **state)
{
    (void)state;
    sfp_dataset_t *ds = cifar_set(103);
    sfp_data_prep_t prep;
    data_prep_init(&prep, 1, 28, 28); /* luminance + bilinear resize on the way */
    const size_t ef = 28 * 28;
    sfp_data_iter_t *sync = make_iter(ds, &prep, 10, true, false, false, 5, 2, true);
    sfp_data_iter_t *thr = make_iter(ds, &prep, 10, true, false, true, 5, 2, true);
    const int64_t epochs[] = {0, 1, 0, 7};
    for (size_t e = 0; e < sizeof epochs / sizeof epochs[0]; e++) {
        epoch_dump_t s = run_epoch(sync, epochs[e], ef, 103), t = run_epoch(thr, epochs[e], ef, 103);
        assert_int_equal(t.n_batches, 11);
        assert_int_equal(t.last_n, 3);
        expect_same_epoch(&s, &t, ef);
        dump_free(&s);
        dump_free(&t);
    }
    /* Restarting mid-epoch drops what was prepared. */
    sfp_data_batch_t b;
    data_iter_start_epoch(thr, 3);
    assert_int_equal(data_iter_next(thr, &b), 1);
    assert_int_equal(data_iter_next(thr, &b), 1);
    epoch_dump_t s = run_epoch(sync, 4, ef, 103), t = run_epoch(thr, 4, ef, 103);
    expect_same_epoch(&s, &t, ef);
    dump_free(&s);
    dump_free(&t);
    /* Freeing mid-epoch (loader busy or waiting) shuts down cleanly. */
    data_iter_start_epoch(thr, 5);
    assert_int_equal(data_iter_next(thr, &b), 1);
    data_iter_free(thr);
    data_iter_free(sync);
    /* No epoch started: nothing to give. */
    thr = make_iter(ds, &prep, 10, true, false, true, 5, 0, false);
    assert_int_equal(data_iter_next(thr, &b), 0);
    data_iter_free(thr);
    data_free(ds);
}

/* Data parallelism: shares [0, 3), [3, 7), [7, 10) of shuffled, augmented
 * batches of 10 are, side by side, exactly the whole batches. */
static void test_batch_shares_make_up_the_whole_batches(void **state)
{
    (void)state;
    sfp_dataset_t *ds = cifar_set(43);
    sfp_data_prep_t prep;
    data_prep_init(&prep, 3, 32, 32);
    const size_t ef = 3 * 1024;
    sfp_error_t err = {0};
    sfp_data_iter_t *whole = make_iter(ds, &prep, 10, true, true, true, 5, 4, true), *part[3];
    const int64_t first[3] = {0, 3, 7}, count[3] = {3, 4, 3};
    for (int r = 0; r < 3; r++) {
        sfp_data_iter_opts_t o = {.batch_size = 10, .shuffle = true, .drop_last = true, .threaded = r != 1, .seed = 5,
                                  .augment = {.crop_pad = 4, .hflip = true}, .share_first = first[r],
                                  .share_n = count[r]};
        TU_OK(&err, data_iter_create(ds, &prep, &o, &part[r], &err));
        assert_int_equal(data_iter_n_batches(part[r]), 4);
        data_iter_start_epoch_at(part[r], 2, 1);
    }
    data_iter_start_epoch_at(whole, 2, 1);
    sfp_data_batch_t w, b;
    int batches = 0;
    while (data_iter_next(whole, &w)) {
        for (int r = 0; r < 3; r++) {
            assert_int_equal(data_iter_next(part[r], &b), 1);
            assert_int_equal(b.index, w.index);
            assert_int_equal(b.n, count[r]);
            assert_memory_equal(b.x, w.x + (size_t)first[r] * ef, (size_t)count[r] * ef * sizeof(float));
            assert_memory_equal(b.labels, w.labels + first[r], (size_t)count[r] * sizeof(int32_t));
            assert_memory_equal(b.examples, w.examples + first[r], (size_t)count[r] * sizeof(int64_t));
        }
        batches++;
    }
    assert_int_equal(batches, 3);
    for (int r = 0; r < 3; r++) assert_int_equal(data_iter_next(part[r], &b), 0);
    sfp_data_iter_opts_t bad = {.batch_size = 10, .share_first = 8, .share_n = 3};
    sfp_data_iter_t *it = NULL;
    int rc = data_iter_create(ds, &prep, &bad, &it, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "not inside a batch of 10");
    for (int r = 0; r < 3; r++) data_iter_free(part[r]);
    data_iter_free(whole);
    data_free(ds);
}

static void test_subset_and_split_share_pixels_and_are_deterministic(void **state)
{
    (void)state;
    sfp_dataset_t *ds = cifar_set(103);
    sfp_error_t err = {0};
    sfp_dataset_t *sub = NULL, *train = NULL, *val = NULL, *train2 = NULL, *val2 = NULL, *train3 = NULL, *val3 = NULL;
    TU_OK(&err, data_subset(ds, 5, &sub, &err));
    assert_int_equal(sub->n, 5);
    assert_ptr_equal(data_pixels(sub, 4), data_pixels(ds, 4));
    TU_OK(&err, data_split(ds, 0.2, 3, &train, &val, &err));
    TU_OK(&err, data_split(ds, 0.2, 3, &train2, &val2, &err));
    TU_OK(&err, data_split(ds, 0.2, 4, &train3, &val3, &err));
    assert_int_equal(val->n, 21); /* round(103 * 0.2) */
    assert_int_equal(train->n, 82);
    uint8_t seen[103] = {0};
    for (int64_t i = 0; i < train->n; i++) seen[train->rows[i]]++;
    for (int64_t i = 0; i < val->n; i++) seen[val->rows[i]]++;
    for (int i = 0; i < 103; i++) assert_int_equal(seen[i], 1);
    for (int64_t i = 1; i < val->n; i++) assert_true(val->rows[i] > val->rows[i - 1]);
    assert_memory_equal(val->rows, val2->rows, (size_t)val->n * sizeof(int64_t));
    assert_memory_not_equal(val->rows, val3->rows, (size_t)val->n * sizeof(int64_t));
    /* Views outlive the set they came from. */
    int64_t row = val->rows[3];
    data_free(ds);
    assert_int_equal(data_label(val, 3), (int)(row % 10));
    assert_int_equal(data_pixels(val, 3)[5], cifar_pixel(row, 0, 0, 5));
    int rc = data_split(val, 1.5, 3, &train2, &val2, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "1.5");
    rc = data_subset(val, 0, &sub, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "at least 1");
    /* A range is clipped to the set; an empty one is refused. */
    sfp_dataset_t *range = NULL;
    TU_OK(&err, data_range(val, 19, 5, &range, &err));
    assert_int_equal(range->n, 2);
    assert_int_equal(range->rows[0], val->rows[19]);
    assert_int_equal(range->rows[1], val->rows[20]);
    data_free(range);
    rc = data_range(val, 21, 5, &range, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "is empty");
    data_free(train);
    data_free(val);
    data_free(train2);
    data_free(val2);
    data_free(train3);
    data_free(val3);
    data_free(sub);
}

/* ------------------------------------------------------------------------ */
/* Description in the model's metadata                                       */

static void test_description_round_trips(void **state)
{
    (void)state;
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/Fashion-MNIST", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    uint8_t labels[10];
    for (int i = 0; i < 10; i++) labels[i] = (uint8_t)i;
    write_idx_pair(sub, "train", 10, 28, 28, labels, false);
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    TU_OK(&err, data_open(sub, NULL, NULL, &ds, &err));
    assert_string_equal(ds->class_names[0], "T-shirt/top"); /* the path names Fashion-MNIST */
    sfp_data_prep_t prep;
    data_prep_init(&prep, 1, 32, 32);
    const float mean = 0.2860f, std = 0.3530f;
    TU_OK(&err, data_prep_set_norm(&prep, &mean, 1, &std, 1, &err));
    char *json = NULL;
    TU_OK(&err, data_describe(&prep, ds, &json, &err));
    assert_non_null(strstr(json, "\"mean\":[0.286]"));
    assert_non_null(strstr(json, "\"std\":[0.353]"));
    assert_non_null(strstr(json, "\"input\":\"1x32x32\""));
    assert_non_null(strstr(json, "\"pad\":\"center\""));
    assert_non_null(strstr(json, "\"T-shirt/top\""));
    assert_non_null(strstr(json, "\"fit\":\"pad-center\""));
    assert_null(strchr(json, '\n'));
    sfp_data_desc_t desc;
    TU_OK(&err, data_describe_parse(json, "model.onnx", &desc, &err));
    assert_int_equal(desc.prep.channels, 1);
    assert_int_equal(desc.prep.height, 32);
    assert_int_equal(desc.prep.width, 32);
    assert_int_equal(desc.prep.n_mean, 1);
    assert_true(desc.prep.mean[0] == mean);
    assert_true(desc.prep.std[0] == std);
    assert_int_equal(desc.n_classes, 10);
    assert_string_equal(desc.class_names[9], "Ankle boot");
    /* The training data: IDX 28x28, padded, no filter. */
    assert_int_equal(desc.data_channels, 1);
    assert_int_equal(desc.data_height, 28);
    assert_int_equal(desc.data_width, 28);
    assert_string_equal(desc.data_format, "idx");
    assert_string_equal(desc.data_fit, "pad-center");
    assert_string_equal(desc.data_filter, "none");
    data_desc_clear(&desc);
    free(json);
    data_free(ds);

    /* Three channels, no data set: no classes. */
    data_prep_init(&prep, 3, 32, 32);
    const float m3[3] = {0.4914f, 0.4822f, 0.4465f}, s3[3] = {0.247f, 0.2435f, 0.2616f};
    TU_OK(&err, data_prep_set_norm(&prep, m3, 3, s3, 3, &err));
    TU_OK(&err, data_describe(&prep, NULL, &json, &err));
    TU_OK(&err, data_describe_parse(json, "model.onnx", &desc, &err));
    assert_int_equal(desc.n_classes, 0);
    assert_memory_equal(desc.prep.mean, m3, sizeof m3);
    assert_memory_equal(desc.prep.std, s3, sizeof s3);
    data_desc_clear(&desc);
    free(json);
}

static void test_description_parse_refuses_malformed_text(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int code;
        const char *what;
    } cases[] = {
        {"not json", SFP_EBADMODEL, "not valid JSON"},
        {"{\"mean\":[0.5],\"std\":[0.5],\"input\":\"1x28x28\"} trailing", SFP_EBADMODEL, "after the JSON"},
        {"[1,2]", SFP_EBADMODEL, "not a JSON object"},
        {"{\"mean\":[0.5],\"std\":[0.5]}", SFP_EBADMODEL, "\"input\""},
        {"{\"mean\":[0.5],\"std\":[0.5],\"input\":\"1x28\"}", SFP_EBADMODEL, "\"input\""},
        {"{\"mean\":[0.5],\"std\":[0],\"input\":\"1x28x28\"}", SFP_EBADMODEL, "std 0"},
        {"{\"mean\":[0.5,0.5],\"std\":[0.5],\"input\":\"3x28x28\"}", SFP_EBADMODEL, "mean/std have 2/1"},
        {"{\"mean\":[\"a\"],\"std\":[0.5],\"input\":\"1x28x28\"}", SFP_EBADMODEL, "non-number"},
        {"{\"mean\":[0.5],\"std\":[0.5],\"input\":\"1x28x28\",\"pad\":\"edge\"}", SFP_EUNSUPPORTED, "edge"},
        {"{\"mean\":[0.5],\"std\":[0.5],\"input\":\"1x28x28\",\"classes\":[1]}", SFP_EBADMODEL, "class 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sfp_error_t err = {0};
        sfp_data_desc_t desc;
        int rc = data_describe_parse(cases[i].json, "m.onnx", &desc, &err);
        TU_EXPECT_ERR(rc, &err, cases[i].code, "m.onnx", cases[i].what);
        assert_null(desc.class_names);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fashion_mnist_loads_with_the_labels_and_pixels_python_reads),
        cmocka_unit_test(test_fashion_mnist_channel_stats_match_numpy),
        cmocka_unit_test(test_idx_gz_and_raw_give_identical_data),
        cmocka_unit_test(test_fashion_labels_beyond_the_model_classes_are_refused),
        cmocka_unit_test(test_idx_single_file_path_finds_its_labels),
        cmocka_unit_test(test_idx_with_a_wrong_magic_is_refused),
        cmocka_unit_test(test_idx_of_another_element_type_is_unsupported),
        cmocka_unit_test(test_idx_truncated_images_or_labels_are_refused),
        cmocka_unit_test(test_idx_trailing_data_is_refused_raw_and_gz),
        cmocka_unit_test(test_idx_count_mismatch_is_refused),
        cmocka_unit_test(test_idx_labels_beyond_the_class_count_are_refused),
        cmocka_unit_test(test_idx_dims_beyond_the_file_size_are_refused_before_allocating),
        cmocka_unit_test(test_idx_corrupt_gzip_is_refused),
        cmocka_unit_test(test_idx_folder_without_the_split_or_labels_is_refused),
        cmocka_unit_test(test_cifar10_batches_load_with_labels_and_chw_order),
        cmocka_unit_test(test_cifar100_uses_the_fine_label),
        cmocka_unit_test(test_cifar_partial_record_or_bad_label_is_refused),
        cmocka_unit_test(test_image_folder_loads_sorted_classes_padded_and_resized),
        cmocka_unit_test(test_image_folder_with_split_folders_uses_the_split),
        cmocka_unit_test(test_image_folder_bad_contents_are_refused),
        cmocka_unit_test(test_image_files_stb_mishandles_are_refused_before_decoding),
        cmocka_unit_test(test_image_files_load_unlabelled_for_detect),
        cmocka_unit_test(test_image_folder_records_source_sizes_and_can_skip_unreadable_files),
        cmocka_unit_test(test_normalisation_values_are_exact),
        cmocka_unit_test(test_idx_28x28_into_a_32x32_model_is_zero_padded_and_centred),
        cmocka_unit_test(test_larger_source_is_resized_bilinearly),
        cmocka_unit_test(test_resize_matches_pytorch_bilinear),
        cmocka_unit_test(test_channels_gray_to_rgb_replicates_and_rgb_to_gray_uses_luminance),
        cmocka_unit_test(test_bad_preprocessing_options_are_refused),
        cmocka_unit_test(test_epoch_order_is_a_seeded_permutation),
        cmocka_unit_test(test_batches_follow_the_epoch_order_and_keep_or_drop_the_last),
        cmocka_unit_test(test_augmentation_is_deterministic_per_seed_and_a_crop_or_flip),
        cmocka_unit_test(test_loader_thread_gives_the_same_batches_as_the_synchronous_path),
        cmocka_unit_test(test_batch_shares_make_up_the_whole_batches),
        cmocka_unit_test(test_subset_and_split_share_pixels_and_are_deterministic),
        cmocka_unit_test(test_description_round_trips),
        cmocka_unit_test(test_description_parse_refuses_malformed_text),
    };
    return cmocka_run_group_tests(tests, NULL, tu_cleanup_tmpdirs);
}
