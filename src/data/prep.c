/* Preprocessing of one example into the model's float CHW input: fit (copy,
 * centred zero padding or bilinear resize), channel conversion, the crop and
 * flip of augmentation, then (p/255 - mean) / std. Also the mean/std options
 * and the per-channel statistics of a dataset. Nothing here allocates. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "util/util.h"

typedef enum fit_kind { FIT_NONE, FIT_PAD, FIT_RESIZE } fit_kind_t;

static fit_kind_t fit_kind(int src_h, int src_w, int h, int w)
{
    if (src_h == h && src_w == w) return FIT_NONE;
    if (src_h <= h && src_w <= w) return FIT_PAD;
    return FIT_RESIZE;
}

void data_prep_init(sfp_data_prep_t *prep, int channels, int height, int width)
{
    memset(prep, 0, sizeof *prep);
    prep->channels = channels;
    prep->height = height;
    prep->width = width;
    prep->n_mean = 1;
    prep->n_std = 1;
    prep->mean[0] = 0.0f;
    prep->std[0] = 1.0f;
}

int data_prep_set_norm(sfp_data_prep_t *prep, const float *mean, int n_mean, const float *std, int n_std,
                       sfp_error_t *err)
{
    if (n_mean != 1 && n_mean != prep->channels)
        return sfp_errorf(err, SFP_EUSAGE, "--mean has %d values; give 1 or %d (one per channel)", n_mean,
                          prep->channels);
    if (n_std != 1 && n_std != prep->channels)
        return sfp_errorf(err, SFP_EUSAGE, "--std has %d values; give 1 or %d (one per channel)", n_std,
                          prep->channels);
    for (int c = 0; c < n_mean; c++)
        if (!isfinite(mean[c])) return sfp_errorf(err, SFP_EUSAGE, "--mean value %d is not finite", c + 1);
    for (int c = 0; c < n_std; c++)
        if (!isfinite(std[c]) || !(std[c] > 0.0f))
            return sfp_errorf(err, SFP_EUSAGE, "--std value %g must be finite and above 0", (double)std[c]);
    prep->n_mean = n_mean;
    prep->n_std = n_std;
    memcpy(prep->mean, mean, (size_t)n_mean * sizeof *mean);
    memcpy(prep->std, std, (size_t)n_std * sizeof *std);
    return 0;
}

int data_parse_floats(const char *text, const char *what, float *out, int max, int *n_out, sfp_error_t *err)
{
    int n = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        char *end = NULL;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno == ERANGE || !isfinite(v) || !isfinite((float)v) || (*end && *end != ',' && *end != ' '))
            return sfp_errorf(err, SFP_EUSAGE, "%s: '%s' is not a list of numbers", what, sfp_q(text));
        if (n == max)
            return sfp_errorf(err, SFP_EUSAGE, "%s: more than %d values in '%s'", what, max, sfp_q(text));
        out[n++] = (float)v;
        p = end;
    }
    if (n == 0) return sfp_errorf(err, SFP_EUSAGE, "%s: no values given", what);
    *n_out = n;
    return 0;
}

int data_prep_check(const sfp_data_prep_t *prep, const sfp_dataset_t *ds, sfp_error_t *err)
{
    if (prep->channels != 1 && prep->channels != 3)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "the model's input has %d channels; the data pipeline feeds 1 or 3",
                          prep->channels);
    if (prep->height < 1 || prep->width < 1 || prep->height > DATA_MAX_SIDE || prep->width > DATA_MAX_SIDE)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "the model's input of %dx%d pixels is outside 1..%d",
                          prep->height, prep->width, DATA_MAX_SIDE);
    if ((prep->n_mean != 1 && prep->n_mean != prep->channels) || (prep->n_std != 1 && prep->n_std != prep->channels))
        return sfp_errorf(err, SFP_EUSAGE, "mean/std have %d/%d values for a %d-channel input; give 1 or %d",
                          prep->n_mean, prep->n_std, prep->channels, prep->channels);
    for (int c = 0; c < prep->n_std; c++)
        if (!isfinite(prep->std[c]) || !(prep->std[c] > 0.0f))
            return sfp_errorf(err, SFP_EUSAGE, "std %g must be finite and above 0", (double)prep->std[c]);
    for (int c = 0; c < prep->n_mean; c++)
        if (!isfinite(prep->mean[c])) return sfp_errorf(err, SFP_EUSAGE, "mean %d is not finite", c + 1);
    if (ds && ds->channels != 1 && ds->channels != 3)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: examples of %d channels cannot be converted",
                          sfp_q(ds->path), ds->channels);
    return 0;
}

/* The geometry ds's examples had before fitting: the files' own for image
 * data (the most common one), else the stored one. */
static void source_geometry(const sfp_dataset_t *ds, int *c, int *h, int *w)
{
    int64_t other = 0;
    if (data_common_source_geometry(ds, c, h, w, &other)) return;
    *c = ds->channels;
    *h = ds->height;
    *w = ds->width;
}

const char *data_prep_fit_name(const sfp_data_prep_t *prep, const sfp_dataset_t *ds)
{
    static const char *const names[] = {"none", "pad-center", "resize"};
    int c = 0, h = 0, w = 0;
    source_geometry(ds, &c, &h, &w);
    return names[fit_kind(h, w, prep->height, prep->width)];
}

const char *data_prep_filter_name(const sfp_data_prep_t *prep, const sfp_dataset_t *ds)
{
    int c = 0, h = 0, w = 0;
    source_geometry(ds, &c, &h, &w);
    if (fit_kind(h, w, prep->height, prep->width) != FIT_RESIZE) return "none";
    if (!ds->store->row_geometry) return "bilinear";
    bool down_h = h > prep->height, down_w = w > prep->width;
    if (down_h == down_w) return down_h ? DATA_RESIZE_FILTER_DOWN : DATA_RESIZE_FILTER_UP;
    return DATA_RESIZE_FILTER_DOWN "+" DATA_RESIZE_FILTER_UP;
}

/* Value 0..255 of model channel c at source pixel offset off (y * w + x). */
static inline float source_value(const uint8_t *src, int src_c, int dst_c, size_t plane, int c, size_t off)
{
    if (src_c == dst_c) return (float)src[(size_t)c * plane + off];
    if (src_c == 1) return (float)src[off];
    return 0.299f * (float)src[off] + 0.587f * (float)src[plane + off] + 0.114f * (float)src[2 * plane + off];
}

/* Source coordinate of output coordinate i for a resize of n_src -> n_dst with
 * half-pixel centres (PyTorch's bilinear, align_corners=False). */
static inline void bilinear_tap(int i, int n_src, int n_dst, int *i0, int *i1, float *frac)
{
    float s = ((float)i + 0.5f) * ((float)n_src / (float)n_dst) - 0.5f;
    if (s < 0.0f) s = 0.0f;
    int lo = (int)s;
    if (lo > n_src - 1) lo = n_src - 1;
    *i0 = lo;
    *i1 = lo < n_src - 1 ? lo + 1 : lo;
    *frac = s - (float)lo;
}

void data_prep_pixels(const sfp_data_prep_t *prep, const uint8_t *src, int src_c, int src_h, int src_w, int crop_pad,
                      int dy, int dx, bool flip, float *out)
{
    const int C = prep->channels, H = prep->height, W = prep->width;
    const size_t plane = (size_t)src_h * (size_t)src_w;
    const fit_kind_t kind = fit_kind(src_h, src_w, H, W);
    const int top = (H - src_h) / 2, left = (W - src_w) / 2;
    for (int c = 0; c < C; c++) {
        const float mean = prep->mean[prep->n_mean == 1 ? 0 : c];
        const float std = prep->std[prep->n_std == 1 ? 0 : c];
        float *o = out + (size_t)c * (size_t)H * (size_t)W;
        for (int y = 0; y < H; y++) {
            /* (fy, fx): the pixel of the fitted H x W image this output reads */
            const int fy = y + dy - crop_pad;
            for (int x = 0; x < W; x++) {
                const int fx = (flip ? W - 1 - x : x) + dx - crop_pad;
                float v = 0.0f;
                if (fy >= 0 && fy < H && fx >= 0 && fx < W) {
                    if (kind == FIT_NONE) {
                        v = source_value(src, src_c, C, plane, c, (size_t)fy * (size_t)src_w + (size_t)fx);
                    } else if (kind == FIT_PAD) {
                        const int sy = fy - top, sx = fx - left;
                        if (sy >= 0 && sy < src_h && sx >= 0 && sx < src_w)
                            v = source_value(src, src_c, C, plane, c, (size_t)sy * (size_t)src_w + (size_t)sx);
                    } else {
                        int y0 = 0, y1 = 0, x0 = 0, x1 = 0;
                        float wy = 0.0f, wx = 0.0f;
                        bilinear_tap(fy, src_h, H, &y0, &y1, &wy);
                        bilinear_tap(fx, src_w, W, &x0, &x1, &wx);
                        const size_t r0 = (size_t)y0 * (size_t)src_w, r1 = (size_t)y1 * (size_t)src_w;
                        const float a = source_value(src, src_c, C, plane, c, r0 + (size_t)x0);
                        const float b = source_value(src, src_c, C, plane, c, r0 + (size_t)x1);
                        const float d = source_value(src, src_c, C, plane, c, r1 + (size_t)x0);
                        const float e = source_value(src, src_c, C, plane, c, r1 + (size_t)x1);
                        const float upper = (1.0f - wx) * a + wx * b;
                        const float lower = (1.0f - wx) * d + wx * e;
                        v = (1.0f - wy) * upper + wy * lower;
                    }
                }
                o[(size_t)y * (size_t)W + (size_t)x] = (v / 255.0f - mean) / std;
            }
        }
    }
}

void data_prep_example(const sfp_data_prep_t *prep, const sfp_dataset_t *ds, int64_t i, float *out)
{
    data_prep_pixels(prep, data_pixels(ds, i), ds->channels, ds->height, ds->width, 0, 0, 0, false, out);
}

int data_channel_stats(const sfp_dataset_t *ds, int channels, float *mean, float *std, sfp_error_t *err)
{
    if (channels != 1 && channels != 3)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "statistics for %d channels (1 or 3)", channels);
    const size_t plane = (size_t)ds->height * (size_t)ds->width;
    double count = (double)ds->n * (double)plane;
    if (ds->channels == 3 && channels == 1) {
        double sum = 0.0, sum_sq = 0.0;
        for (int64_t i = 0; i < ds->n; i++) {
            const uint8_t *p = data_pixels(ds, i);
            for (size_t k = 0; k < plane; k++) {
                double v = (double)source_value(p, 3, 1, plane, 0, k) / 255.0;
                sum += v;
                sum_sq += v * v;
            }
        }
        double m = sum / count, var = sum_sq / count - m * m;
        mean[0] = (float)m;
        std[0] = (float)sqrt(var > 0.0 ? var : 0.0);
        return 0;
    }
    /* Exact integer histograms of each source channel. */
    uint64_t hist[DATA_MAX_CHANNELS][256];
    memset(hist, 0, sizeof hist);
    for (int64_t i = 0; i < ds->n; i++) {
        const uint8_t *p = data_pixels(ds, i);
        for (int c = 0; c < ds->channels; c++)
            for (size_t k = 0; k < plane; k++) hist[c][p[(size_t)c * plane + k]]++;
    }
    for (int c = 0; c < channels; c++) {
        int sc = ds->channels == 1 ? 0 : c;
        double sum = 0.0, sum_sq = 0.0;
        for (int v = 0; v < 256; v++) {
            sum += (double)hist[sc][v] * v;
            sum_sq += (double)hist[sc][v] * v * v;
        }
        double m = sum / count / 255.0, var = sum_sq / count / (255.0 * 255.0) - m * m;
        mean[c] = (float)m;
        std[c] = (float)sqrt(var > 0.0 ? var : 0.0);
    }
    return 0;
}
