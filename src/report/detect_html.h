/* What `onnx-sfp detect` found, and the page `detect --html` writes: one
 * self-contained HTML file (no network: thumbnails are PNG data: URIs). The
 * summary comes first (per model: accuracy, balanced accuracy, escape rate,
 * uncertain calls, per-class recall, confusion matrix, ms per image, MACs and
 * parameters; with two models their agreement), then the files that could
 * not be decoded, then the images, those needing a look first (wrong,
 * uncertain, the models disagreeing). */
#ifndef SFP_DETECT_HTML_H
#define SFP_DETECT_HTML_H

#include <stdbool.h>
#include <stdint.h>

#include "onnxsfp/error.h"

#define DETECT_MAX_MODELS 2

/* One model's call on one image. */
typedef struct detect_call {
    int predicted;          /* model class */
    double confidence;      /* softmax probability of the predicted class */
    double ms;              /* forward time spent on this image */
    bool uncertain;         /* confidence below --min-confidence: not counted as a call */
} detect_call_t;

/* One image. Borrows path and thumb. */
typedef struct detect_image {
    const char *path;
    int truth;                             /* model class, -1 when unknown */
    detect_call_t call[DETECT_MAX_MODELS]; /* one per model */
    const uint8_t *thumb;                  /* the original image downscaled, thumb_c x thumb_h x thumb_w
                                              bytes (CHW); NULL when not made */
    int thumb_c, thumb_h, thumb_w;
} detect_image_t;

/* One model's scores over the images. Owns recall and confusion. Counts:
 * labelled images, of them those called with confidence (decided), correct
 * among those, and uncertain calls over all images. accuracy, recall and the
 * confusion matrix count decided images; escape_rate is the labelled defect
 * images (true class not ok_class) confidently called ok_class, over all
 * labelled defect images. Fractions are NAN when undefined. */
typedef struct detect_model_summary {
    const char *path;
    int64_t n_labelled, n_decided, n_correct, n_uncertain;
    double accuracy, balanced_accuracy, escape_rate;
    double *recall;         /* n_classes, NAN for a class without decided images */
    int64_t *confusion;     /* n_classes x n_classes, row = true, column = predicted (decided images) */
    double ms_per_image;    /* mean forward time */
    double images_per_s;    /* with preprocessing */
    int64_t macs, params;   /* at batch 1; -1 when not counted */
} detect_model_summary_t;

/* The whole run. Borrows every pointer. */
typedef struct detect_page {
    int n_classes;
    const char *const *class_names;
    int ok_class;               /* class of defect-free parts ("ok"), -1 when the model has none */
    double min_confidence;      /* 0: every call counts */
    double ok_threshold;        /* > 0: ok called only at this probability or more */
    int n_models;
    const detect_model_summary_t *models;
    double agreement;           /* two models: fraction of images given the same class; NAN otherwise */
    int64_t n_images;
    const detect_image_t *images;
    int64_t n_skipped;          /* files that could not be decoded */
    const char *const *skipped_paths, *const *skipped_reasons;
} detect_page_t;

/* Longer side of a thumbnail, in pixels. */
#define DETECT_HTML_THUMB 128

/* Writes the page to path atomically (temporary file, rename). */
int detect_html_write(const char *path, const detect_page_t *p, sfp_error_t *err);

#endif
