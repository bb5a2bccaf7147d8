/* Data pipeline of the training runtime: datasets (IDX incl. .gz, CIFAR-10/100
 * binary batches, image folders) held in memory as uint8 CHW pixels + int
 * labels, preprocessing into float NCHW batches (fit to the model's input,
 * channel conversion, seeded augmentation, normalisation), and a batch
 * iterator whose loader thread prepares batch k+1 while the caller trains on
 * batch k.
 *
 * Rules every command shares (train, eval, compress, detect):
 * - Pixels are scaled to [0, 1], then normalised per channel: (p/255 - mean) / std.
 * - Fitting a source of h x w into the model's H x W: same size is copied;
 *   a source that fits (h <= H and w <= W) is zero-padded and centred (top =
 *   (H - h) / 2, left = (W - w) / 2, the odd row/column goes bottom/right), so
 *   IDX 28x28 into a 32x32 model gets 2 black pixels on every side; anything
 *   else is resized to H x W without keeping the aspect ratio (bilinear with
 *   half-pixel centres for IDX/CIFAR at batch time; stb_image_resize at load
 *   time for image files). Padding is black pixels (0) before normalisation,
 *   as torchvision's Pad/RandomCrop do before Normalize: they become -mean/std.
 * - Channels: gray -> RGB replicates; RGB -> gray is BT.601 luminance
 *   0.299 R + 0.587 G + 0.114 B; alpha is dropped. Other counts are refused.
 * - Augmentation (training only): random crop with padding P (pad P black
 *   pixels on each side of the fitted image, crop H x W at a random offset),
 *   then horizontal flip with p = 0.5. Draws come from a counter-based PRNG
 *   keyed by (seed, epoch, position in the epoch), so batches are the same on
 *   every machine and whichever thread prepares them.
 * - Image folders: one sub-folder per class, class order = byte-wise sorted
 *   folder names. Files are recognised by extension (.png .jpg .jpeg .bmp
 *   .gif .pgm .ppm .pnm, any case); other entries (text files, nested
 *   folders) are skipped and counted in n_skipped for the log; names starting
 *   with '.' are ignored. A file with an image extension that does not
 *   decode is refused (or, with skip_unreadable, left out and listed), as
 *   are empty class folders and fewer than 2 classes.
 * - Image files are fitted at load with stb_image_resize (Mitchell when a
 *   side shrinks, Catmull-Rom when it grows); each row keeps its file's own
 *   geometry, which a trained model records (data_describe). */
#ifndef SFP_DATA_H
#define SFP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnxsfp/error.h"

#define DATA_MAX_CHANNELS 3
#define DATA_MAX_SIDE 16384         /* model input height/width limit */
#define DATA_META_KEY "onnx_sfp.preprocess" /* metadata_props key of the description */
/* The filters that fit image files to the model's input at load (stb_image_resize, per axis). */
#define DATA_RESIZE_FILTER_DOWN "mitchell"
#define DATA_RESIZE_FILTER_UP "catmull-rom"

/* ------------------------------------------------------------------------ */
/* Datasets                                                                 */

typedef struct sfp_data_store sfp_data_store_t; /* pixels + labels shared by views */

/* A view of a dataset. Owns path and rows; shares the store (pixels, labels,
 * class names, source paths) with the views made from it by data_subset and
 * data_split (reference counted, so views may be freed in any order).
 * Example i is channels x height x width bytes, CHW, label in [0, n_classes)
 * (-1 for unlabelled image files). */
typedef struct sfp_dataset {
    const char *format;        /* static: "idx", "idx.gz", "cifar10", "cifar100", "imagefolder", "images" */
    char *path;                /* owns: the file or folder opened */
    int64_t n;                 /* examples in this view */
    int channels, height, width;
    int n_classes;             /* 0 for unlabelled image files */
    char *const *class_names;  /* borrowed from the store: n_classes names */
    int64_t n_skipped;         /* image folders: entries skipped (not images) */
    sfp_data_store_t *store;       /* shared */
    int64_t *rows;             /* owns: example i is row rows[i] of the store */
} sfp_dataset_t;

/* What the model expects of the data; zeros mean "unknown". */
typedef struct sfp_data_opts {
    int channels, height, width; /* model input. Image files are converted and fitted
                                    to it at load (0: the first image's own). IDX and
                                    CIFAR keep their geometry; batches fit it. */
    int n_classes;               /* model outputs: a label at or beyond it is refused;
                                    also the class count of IDX data (0: max label + 1) */
    bool skip_unreadable;        /* image files: a file that does not decode is left out
                                    and listed (data_unreadable) instead of refused; the
                                    set may then have no examples (n 0) */
} sfp_data_opts_t;

/* Opens a dataset, detecting the format from path:
 * - a folder holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (IDX;
 *   "-images.idx3-ubyte" spellings accepted; raw preferred over .gz);
 * - a folder (or its cifar-10-batches-bin/ sub-folder) holding data_batch_N.bin
 *   (N = 1..5, those present) / test_batch.bin: CIFAR-10, 3073-byte records;
 * - a folder (or cifar-100-binary/) holding train.bin / test.bin: CIFAR-100,
 *   3074-byte records, fine labels;
 * - otherwise a folder of class sub-folders; when its only sub-folders are
 *   train/ and test/ (or val/), the split's folder is used, else the split is
 *   ignored (the folder is both);
 * - a single IDX images file (labels beside it) or .bin file (train.bin and
 *   test.bin are CIFAR-100, others CIFAR-10); the split is then ignored.
 * split: "train" (NULL) or "test". opts may be NULL. Bad data gives
 * SFP_EBADDATA, unreadable files SFP_EIO, naming the file. */
int data_open(const char *path, const char *split, const sfp_data_opts_t *opts, sfp_dataset_t **out,
              sfp_error_t *err);
/* Unlabelled images (detect): n_paths files, fitted to opts' geometry. */
int data_open_images(const char *const *paths, int n_paths, const sfp_data_opts_t *opts, sfp_dataset_t **out,
                     sfp_error_t *err);
void data_free(sfp_dataset_t *ds);

/* Example i's pixels (CHW), label, and for image data the file it came from (else NULL). */
const uint8_t *data_pixels(const sfp_dataset_t *ds, int64_t i);
int data_label(const sfp_dataset_t *ds, int64_t i);
const char *data_source_path(const sfp_dataset_t *ds, int64_t i);

/* Image data: the geometry the file of example i had before it was fitted
 * (channels after dropping alpha); false for IDX/CIFAR. */
bool data_source_geometry(const sfp_dataset_t *ds, int64_t i, int *c, int *h, int *w);
/* The geometry most of ds's files had (ties: the first seen) and how many
 * differ from it; false when ds is not image data. */
bool data_common_source_geometry(const sfp_dataset_t *ds, int *c, int *h, int *w, int64_t *n_other);
/* Image data opened with skip_unreadable: the files left out, and why. */
int64_t data_n_unreadable(const sfp_dataset_t *ds);
const char *data_unreadable(const sfp_dataset_t *ds, int64_t j, const char **reason);

/* The first min(first_n, n) examples (first_n >= 1). */
int data_subset(const sfp_dataset_t *ds, int64_t first_n, sfp_dataset_t **out, sfp_error_t *err);
/* Examples [first, first + n) clipped to the set; SFP_EUSAGE when that
 * leaves none. */
int data_range(const sfp_dataset_t *ds, int64_t first, int64_t n, sfp_dataset_t **out, sfp_error_t *err);
/* Deterministic random split: val gets round(n * val_fraction) examples (at
 * least 1, leaving train at least 1), chosen by seed; both keep the original
 * order. val_fraction in (0, 1), n >= 2. */
int data_split(const sfp_dataset_t *ds, double val_fraction, uint64_t seed, sfp_dataset_t **train, sfp_dataset_t **val,
               sfp_error_t *err);

/* Decodes one image file (PNG/JPEG/BMP/GIF/PGM/PPM) into channels x height x
 * width CHW bytes at out_chw, converted and fitted by the rules above.
 * Files that declare more pixels than their size can hold are refused before
 * decoding. Decoding runs in a child process (stb_image has known bugs on
 * crafted files): a crash there is reported as SFP_EBADDATA naming the file. */
int data_image_load(const char *path, int channels, int height, int width, uint8_t *out_chw, sfp_error_t *err);

/* Per-channel mean and population std of ds's pixels in [0, 1], converted to
 * `channels` (1 or 3) by the rules above; no padding counted. */
int data_channel_stats(const sfp_dataset_t *ds, int channels, float *mean, float *std, sfp_error_t *err);

/* ------------------------------------------------------------------------ */
/* Preprocessing                                                            */

typedef struct sfp_data_prep {
    int channels, height, width; /* model input; channels 1 or 3 */
    int n_mean, n_std;           /* 1 (every channel) or channels */
    float mean[DATA_MAX_CHANNELS];
    float std[DATA_MAX_CHANNELS];
} sfp_data_prep_t;

typedef struct sfp_data_augment {
    int crop_pad;  /* P > 0: random crop with P black pixels of padding; 0: off */
    bool hflip;    /* horizontal flip with probability 0.5 */
} sfp_data_augment_t;

/* Model input C x H x W, mean 0, std 1. */
void data_prep_init(sfp_data_prep_t *prep, int channels, int height, int width);
/* Sets mean/std (n 1 or channels; std > 0, all finite); SFP_EUSAGE otherwise. */
int data_prep_set_norm(sfp_data_prep_t *prep, const float *mean, int n_mean, const float *std, int n_std,
                       sfp_error_t *err);
/* Parses "0.49,0.48,0.45" (comma or space separated, at most max values) for
 * option `what` (e.g. "--mean"); SFP_EUSAGE naming it on bad input. */
int data_parse_floats(const char *text, const char *what, float *out, int max, int *n_out, sfp_error_t *err);
/* Checks prep is usable with ds (channels, sizes, mean/std counts). */
int data_prep_check(const sfp_data_prep_t *prep, const sfp_dataset_t *ds, sfp_error_t *err);
/* How ds's examples reach the model's H x W: "none", "pad-center" or
 * "resize" (for image data: what the files' most common size gets). */
const char *data_prep_fit_name(const sfp_data_prep_t *prep, const sfp_dataset_t *ds);
/* The resize filter of that fit: "none" when not resized, "bilinear" for
 * IDX/CIFAR (at batch time), for image files DATA_RESIZE_FILTER_DOWN or _UP
 * (both joined by '+' when one axis shrinks and the other grows). */
const char *data_prep_filter_name(const sfp_data_prep_t *prep, const sfp_dataset_t *ds);
/* Example i of ds, preprocessed without augmentation: out holds C x H x W floats. */
void data_prep_example(const sfp_data_prep_t *prep, const sfp_dataset_t *ds, int64_t i, float *out);

/* Description of the preprocessing for the model's metadata_props (key
 * DATA_META_KEY), one line of JSON, e.g.
 * {"mean":[0.286],"std":[0.353],"input":"1x32x32","pad":"center","resize":"bilinear",
 *  "classes":["T-shirt/top",...],"data":{"format":"idx.gz","geometry":"1x28x28","fit":"pad-center",
 *  "filter":"none"}}
 * "data" describes the training data: "geometry" the examples' size before
 * fitting (for image files the most common one, "other_sizes" counting the
 * files of another size), "fit" and "filter" how that size reached "input". 
 * ds may be NULL (no classes, no "data"). *out_json is malloc'd. */
int data_describe(const sfp_data_prep_t *prep, const sfp_dataset_t *ds, char **out_json, sfp_error_t *err);

/* A parsed description. Owns class_names. */
typedef struct sfp_data_desc {
    sfp_data_prep_t prep;
    int n_classes;       /* 0 when the description has no classes */
    char **class_names;
    /* The training data ("data"; zeros / empty when not recorded): the
     * geometry its examples had before fitting, how they were fitted. */
    int data_channels, data_height, data_width;
    char data_format[16], data_fit[16], data_filter[32];
} sfp_data_desc_t;
/* Parses a description; where names its source for messages (e.g. the model
 * file). Malformed text gives SFP_EBADMODEL, a rule this version does not
 * know (pad other than "center"...) SFP_EUNSUPPORTED. */
int data_describe_parse(const char *json, const char *where, sfp_data_desc_t *out, sfp_error_t *err);
void data_desc_clear(sfp_data_desc_t *d);

/* ------------------------------------------------------------------------ */
/* Shuffling and batches                                                    */

/* Order of the n examples in epoch `epoch`: a Fisher-Yates permutation drawn
 * from (seed, epoch) alone, so any epoch can be reproduced on its own. */
void data_epoch_order(int64_t n, uint64_t seed, int64_t epoch, int64_t *order);

typedef struct sfp_data_iter_opts {
    int64_t batch_size;     /* >= 1 */
    bool shuffle;           /* new order each epoch; else the set's order */
    bool drop_last;         /* drop the last partial batch; else keep it */
    bool threaded;          /* a loader thread prepares the next batch */
    uint64_t seed;
    sfp_data_augment_t augment; /* all zero: none */
    /* Data parallelism: this process's share of every batch, positions
     * [share_first, share_first + share_n) of it (share_n 0: the whole
     * batch). Batches are still counted, shuffled and augmented as whole
     * batches of batch_size, so the shares of all processes make up exactly
     * the batches one process would see. */
    int64_t share_first, share_n;
} sfp_data_iter_opts_t;

/* A batch; borrowed from the iterator, valid until the next data_iter_next,
 * data_iter_start_epoch or data_iter_free. */
typedef struct sfp_data_batch {
    int64_t index;           /* batch number in the epoch */
    int64_t n;               /* examples (batch_size or share_n, or fewer for a kept last batch) */
    const float *x;          /* n x C x H x W */
    const int32_t *labels;   /* n labels (-1: unlabelled) */
    const int64_t *examples; /* n positions in the data set */
} sfp_data_batch_t;

typedef struct sfp_data_iter sfp_data_iter_t;

/* Borrows ds (must outlive the iterator), copies prep and opts, allocates
 * both batch buffers and starts the loader thread; nothing is allocated per
 * batch afterwards. The iterator is idle until data_iter_start_epoch. */
int data_iter_create(const sfp_dataset_t *ds, const sfp_data_prep_t *prep, const sfp_data_iter_opts_t *opts,
                     sfp_data_iter_t **out, sfp_error_t *err);
/* Starts epoch `epoch` (any number, any order): drops whatever was prepared,
 * draws the epoch's order and lets the loader start on batch 0. */
void data_iter_start_epoch(sfp_data_iter_t *it, int64_t epoch);
/* The same, delivering batches from first_batch on (a resumed epoch): the
 * batches are those the full epoch would have given at those positions. */
void data_iter_start_epoch_at(sfp_data_iter_t *it, int64_t epoch, int64_t first_batch);
/* 1 and the next batch, or 0 at the end of the epoch (or before the first
 * data_iter_start_epoch). */
int data_iter_next(sfp_data_iter_t *it, sfp_data_batch_t *batch);
int64_t data_iter_n_batches(const sfp_data_iter_t *it);
/* Stops and joins the loader thread (also mid-epoch); NULL is a no-op. */
void data_iter_free(sfp_data_iter_t *it);

/* ------------------------------------------------------------------------ */
/* Internal to src/data (shared between its files; not for other modules).  */

struct sfp_data_store {
    int refs;              /* atomically updated */
    int64_t n_rows;
    size_t row_bytes;      /* channels * height * width */
    uint8_t *pixels;       /* n_rows * row_bytes */
    int32_t *labels;       /* n_rows */
    int n_classes;
    char **class_names;    /* n_classes */
    char **row_paths;      /* image data: the file of each row; else NULL */
    int32_t *row_geometry; /* image data: 3 per row, the file's own C, H, W; else NULL */
    int64_t n_bad;         /* skip_unreadable: files left out (not rows) */
    char **bad_paths, **bad_reasons;
};

/* A new set owning a new store of n rows of c x h x w (pixels zeroed, labels
 * -1), rows = identity. */
int data_set_create(const char *format, const char *path, int64_t n, int c, int h, int w, sfp_dataset_t **out,
                    sfp_error_t *err);
/* Sets the store's class names: names (copied) or, when NULL, "0".."n-1". */
int data_set_class_names(sfp_dataset_t *ds, int n_classes, const char *const *names, sfp_error_t *err);
extern const char *const data_fashion_mnist_names[10];
extern const char *const data_cifar10_names[10];
extern const char *const data_cifar100_names[100];

int data_open_idx(const char *images_path, const char *labels_path, const sfp_data_opts_t *opts,
                  sfp_dataset_t **out, sfp_error_t *err);
int data_open_cifar(const char *shown_path, const char *const *files, int n_files, bool cifar100,
                    const sfp_data_opts_t *opts, sfp_dataset_t **out, sfp_error_t *err);
int data_open_imagefolder(const char *root, const char *split, const sfp_data_opts_t *opts, sfp_dataset_t **out,
                          sfp_error_t *err);
/* Size and channel count (1 or 3 after dropping alpha) an image file declares. */
int data_image_probe(const char *path, int *channels, int *height, int *width, sfp_error_t *err);
/* What decoding one file found. */
typedef struct data_image_info {
    int channels, height, width; /* the file's own geometry (channels 1 or 3 after alpha) */
    int rc;                      /* skip_bad: 0, or the error of a file that did not decode */
    char reason[SFP_ERROR_MSG_MAX];
} data_image_info_t;
/* data_image_load of n files into out_chw (n rows of C x H x W bytes);
 * infos (NULL: not wanted) gets n entries. With skip_bad (needs infos) a
 * file that does not decode, or crashes the decoder, leaves its row zero and
 * its reason in infos, and the others are still decoded. */
int data_image_load_many(const char *const *paths, int64_t n, int channels, int height, int width,
                         uint8_t *out_chw, data_image_info_t *infos, bool skip_bad, sfp_error_t *err);

/* Counter-based PRNG (splitmix64 over a key): same numbers on every machine. */
typedef struct sfp_data_rng {
    uint64_t state;
} sfp_data_rng_t;
sfp_data_rng_t data_rng_key(uint64_t seed, uint64_t a, uint64_t b);
uint64_t data_rng_next(sfp_data_rng_t *r);
uint64_t data_rng_below(sfp_data_rng_t *r, uint64_t bound); /* uniform in [0, bound), bound >= 1 */

/* Preprocesses src (src_c x src_h x src_w bytes, CHW) into out (prep's
 * C x H x W) with a crop offset (dy, dx in [0, 2 * crop_pad]) and a flip. */
void data_prep_pixels(const sfp_data_prep_t *prep, const uint8_t *src, int src_c, int src_h, int src_w, int crop_pad,
                      int dy, int dx, bool flip, float *out);

#endif
