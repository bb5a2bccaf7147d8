/* The page `onnx-sfp detect --html` writes: one self-contained HTML file (no
 * network: thumbnails are PNG data: URIs), misclassified images first, then
 * the summary (accuracy, balanced accuracy, confusion matrix, images/s). */
#ifndef SFP_DETECT_HTML_H
#define SFP_DETECT_HTML_H

#include <stdint.h>

#include "onnxsfp/error.h"

/* One classified image. Borrows path and pixels. */
typedef struct detect_result {
    const char *path;
    int predicted;          /* model class */
    int truth;              /* model class, -1 when unknown */
    double confidence;      /* softmax probability of the predicted class */
    double ms;              /* forward time spent on this image */
    const uint8_t *pixels;  /* what the model saw: channels x height x width bytes (CHW) */
} detect_result_t;

/* The whole run. Borrows every pointer. */
typedef struct detect_summary {
    const char *model_path;
    int n_classes;
    const char *const *class_names; /* n_classes */
    int channels, height, width;    /* of every result's pixels; channels 1 or 3 */
    int64_t n_images, n_labelled, n_correct;
    double balanced_accuracy;       /* mean recall over classes with labelled images */
    const int64_t *confusion;       /* n_classes x n_classes, row = true, column = predicted; NULL without labels */
    double images_per_s;
} detect_summary_t;

/* Writes the page to path atomically (temporary file, rename). Thumbnails are
 * downscaled to at most DETECT_HTML_THUMB pixels a side. */
#define DETECT_HTML_THUMB 96
int detect_html_write(const char *path, const detect_result_t *results, int64_t n, const detect_summary_t *s,
                      sfp_error_t *err);

#endif
