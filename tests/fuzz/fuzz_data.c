/* libFuzzer harnesses of the data readers, one per format, chosen at compile
 * time (tests/fuzz/fuzz.mk builds this file three times):
 *   FUZZ_DATA_IDX    IDX images + labels, raw or .gz, through data_open
 *   FUZZ_DATA_CIFAR  one CIFAR-10/100 binary batch through data_open
 *   FUZZ_DATA_IMAGE  one image file through data_image_load, data_open_images
 *                    and an image folder of two classes through data_open
 * The input's first byte picks the variant (file names, compression, split,
 * the model's classes and geometry); the rest becomes the file(s), written
 * into a private temporary folder. A failure must be one clean error line
 * with a known code; what loads is read through (pixels, labels, one
 * preprocessed example), so a size lie would show as an out-of-bounds read.
 * The image decoder runs in this process in the fuzzing build
 * (SFP_IMAGE_IN_PROCESS), so the fuzzer sees its coverage. */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/data.h"
#include "fuzz_check.h"

static char dir[256];
static bool verbose; /* FUZZ_DATA_VERBOSE=1: each input's outcome on stderr (for checking seeds) */

static void die(const char *what)
{
    fprintf(stderr, "fuzz_data: %s\n", what);
    abort();
}

/* check_error, and bad data or I/O failures must name what they read. */
static void check_data_error(int rc, const sfp_error_t *err, const char *where)
{
    if (verbose) fprintf(stderr, "%s: %s\n", where, rc >= 0 ? "loaded" : err->msg);
    check_error(rc, err, where);
    if ((rc == SFP_EBADDATA || rc == SFP_EIO) && !strstr(err->msg, dir)) {
        fprintf(stderr, "%s: the error line does not name the file: %s\n", where, err->msg);
        abort();
    }
}

__attribute__((unused)) static void make_dir(const char *sub)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    if (mkdir(p, 0700) != 0) die("mkdir failed");
}

static void remove_dirs(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/a", dir);
    rmdir(p);
    snprintf(p, sizeof p, "%s/b", dir);
    rmdir(p);
    rmdir(dir);
}

/* One temporary folder per process, emptied between inputs by the callers
 * (each writes the same names every time) and removed at exit. */
static void setup_dir(void)
{
    if (dir[0]) return;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz-data-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) die("mkdtemp failed");
    atexit(remove_dirs);
    verbose = getenv("FUZZ_DATA_VERBOSE") != NULL;
}

static void write_file(const char *name, const uint8_t *data, size_t size)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) die("cannot write the input file");
}

static void remove_file(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
}

/* gzip of data (valid stream, so the reader's size checks get exercised). */
__attribute__((unused)) static uint8_t *gzip_bytes(const uint8_t *data, size_t size, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) die("deflateInit2");
    size_t cap = deflateBound(&z, (uLong)size) + 64;
    uint8_t *out = malloc(cap);
    if (!out) die("out of memory");
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) die("deflate");
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

/* Reads every example of what loaded and preprocesses the first and last
 * into the model geometry (c, h, w); labels must be in range. */
static void read_through(const sfp_dataset_t *ds, int c, int h, int w)
{
    unsigned sum = 0;
    size_t row = (size_t)ds->channels * (size_t)ds->height * (size_t)ds->width;
    for (int64_t i = 0; i < ds->n; i++) {
        const uint8_t *px = data_pixels(ds, i);
        for (size_t k = 0; k < row; k += 97) sum += px[k];
        sum += px[row - 1];
        int label = data_label(ds, i);
        if (ds->n_classes > 0 && (label < 0 || label >= ds->n_classes)) die("label out of range");
    }
    if (sum == 0x7fffffffu) fputc('.', stderr); /* keep the reads */
    sfp_data_prep_t prep;
    sfp_error_t err = {0};
    data_prep_init(&prep, c, h, w);
    if (data_prep_check(&prep, ds, &err) < 0) return;
    float *x = malloc((size_t)c * (size_t)h * (size_t)w * sizeof *x);
    if (!x) die("out of memory");
    data_prep_example(&prep, ds, 0, x);
    data_prep_example(&prep, ds, ds->n - 1, x);
    free(x);
}

static const int geometries[4][3] = {{1, 28, 28}, {3, 32, 32}, {1, 5, 7}, {3, 64, 48}};

/* data_open of the folder, or of its file `name` when as_file, for a model of
 * geometry geo and n_classes; what loads must have `channels` channels (and
 * sides `side` unless 0) and is read through. */
__attribute__((unused)) static void open_and_read(const char *name, bool as_file, bool test, const int *geo,
                                                  int n_classes, int channels, int side, const char *where)
{
    sfp_data_opts_t opts = {geo[0], geo[1], geo[2], n_classes, false};
    char path[512];
    if (as_file) snprintf(path, sizeof path, "%s/%s", dir, name);
    else snprintf(path, sizeof path, "%s", dir);
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    int rc = data_open(path, test ? "test" : "train", &opts, &ds, &err);
    check_data_error(rc, &err, where);
    if (rc < 0) return;
    if (ds->channels != channels || (side && (ds->height != side || ds->width != side)) || ds->n < 1)
        die("data set of a bad geometry");
    read_through(ds, geo[0], geo[1], geo[2]);
    data_free(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if defined(FUZZ_DATA_IDX)
/* byte 0: bit 0 images as .gz, bit 1 labels as .gz, bit 2 gzip them here
 * (else the bytes are the .gz file as is), bit 3 test split, bit 4 open the
 * images file rather than the folder, bits 5-6 the model's classes (0, 10, 2,
 * 255), bit 7 the second model geometry; bytes 1-2: length of the images
 * file (little-endian), the rest is the labels file. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int classes[4] = {0, 10, 2, 255};
    static const char *const names[2][2] = {{"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
                                            {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}};
    if (size < 3) return 0;
    setup_dir();
    unsigned flags = data[0];
    size_t n_images = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (n_images > size) n_images = size;
    bool test = flags & 8;
    const uint8_t *part[2] = {data, data + n_images};
    size_t part_len[2] = {n_images, size - n_images};
    char name[2][64];
    for (int f = 0; f < 2; f++) {
        bool gz = flags & (1u << f);
        snprintf(name[f], sizeof name[f], "%s%s", names[test][f], gz ? ".gz" : "");
        if (gz && (flags & 4)) {
            size_t len = 0;
            uint8_t *z = gzip_bytes(part[f], part_len[f], &len);
            write_file(name[f], z, len);
            free(z);
        } else write_file(name[f], part[f], part_len[f]);
    }
    open_and_read(name[0], flags & 16, test, geometries[(flags >> 7) & 1], classes[(flags >> 5) & 3], 1, 0,
                  "data_open (IDX)");
    for (int f = 0; f < 2; f++) remove_file(name[f]);
    return 0;
}

#elif defined(FUZZ_DATA_CIFAR)
/* byte 0: bit 0 CIFAR-100 (train.bin / test.bin) else CIFAR-10
 * (data_batch_1.bin / test_batch.bin), bit 1 test split, bit 2 open the file
 * rather than the folder, bits 3-4 the model's classes (0, 10, 3, 100),
 * bit 5 the second model geometry; the rest is the batch file. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int classes[4] = {0, 10, 3, 100};
    if (size < 1) return 0;
    setup_dir();
    unsigned flags = data[0];
    bool c100 = flags & 1, test = flags & 2;
    const char *name = c100 ? (test ? "test.bin" : "train.bin") : (test ? "test_batch.bin" : "data_batch_1.bin");
    write_file(name, data + 1, size - 1);
    open_and_read(name, flags & 4, test, geometries[(flags >> 5) & 1], classes[(flags >> 3) & 3], 3, 32,
                  "data_open (CIFAR)");
    remove_file(name);
    return 0;
}

#elif defined(FUZZ_DATA_IMAGE)
/* byte 0: bits 0-2 the file's extension, bits 3-4 the model geometry, bits
 * 5-6 the entry point (data_image_load; data_open_images without a geometry;
 * an image folder a/ b/ holding the file twice, with and without the
 * model's geometry); the rest is the image file. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const exts[8] = {"png", "jpg", "JPEG", "bmp", "gif", "pgm", "ppm", "pnm"};
    static bool folders;
    if (size < 1) return 0;
    setup_dir();
    if (!folders) {
        make_dir("a");
        make_dir("b");
        folders = true;
    }
    unsigned flags = data[0];
    const int *geo = geometries[(flags >> 3) & 3];
    char name[3][32];
    snprintf(name[0], sizeof name[0], "x.%s", exts[flags & 7]);
    snprintf(name[1], sizeof name[1], "a/x.%s", exts[flags & 7]);
    snprintf(name[2], sizeof name[2], "b/y.%s", exts[flags & 7]);
    sfp_error_t err = {0};
    sfp_dataset_t *ds = NULL;
    char path[512];
    int rc = 0, mode = (flags >> 5) & 3;
    if (mode == 0) {
        write_file(name[0], data + 1, size - 1);
        snprintf(path, sizeof path, "%s/%s", dir, name[0]);
        size_t row = (size_t)geo[0] * (size_t)geo[1] * (size_t)geo[2];
        uint8_t *out = malloc(row);
        if (!out) die("out of memory");
        check_data_error(rc = data_image_load(path, geo[0], geo[1], geo[2], out, &err), &err, "data_image_load");
        free(out);
    } else if (mode == 1) {
        write_file(name[0], data + 1, size - 1);
        snprintf(path, sizeof path, "%s/%s", dir, name[0]);
        const char *paths[1] = {path};
        check_data_error(rc = data_open_images(paths, 1, NULL, &ds, &err), &err, "data_open_images");
        if (rc == 0) read_through(ds, geo[0], geo[1], geo[2]);
    } else {
        write_file(name[1], data + 1, size - 1);
        write_file(name[2], data + 1, size - 1);
        sfp_data_opts_t opts = {0};
        if (mode == 3) opts = (sfp_data_opts_t){geo[0], geo[1], geo[2], 2, false};
        check_data_error(rc = data_open(dir, "train", &opts, &ds, &err), &err, "data_open (image folder)");
        if (rc == 0) {
            if (ds->n != 2 || ds->n_classes != 2) die("image folder of a bad size");
            read_through(ds, geo[0], geo[1], geo[2]);
        }
    }
    data_free(ds);
    for (int i = 0; i < 3; i++) remove_file(name[i]);
    return 0;
}

#else
#error "define FUZZ_DATA_IDX, FUZZ_DATA_CIFAR or FUZZ_DATA_IMAGE"
#endif
