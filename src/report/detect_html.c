/* detect's HTML page, built in memory and written atomically. Everything is
 * inline (CSS, thumbnails as base64 PNG data: URIs made with stb_image_write),
 * so the page opens offline. Text from outside (file names, class names) is
 * HTML-escaped, control characters and invalid UTF-8 become U+FFFD. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/detect_html.h"
#include "report/html.h"
#include "util/util.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#if defined(__GNUC__)
/* stb's static writers we do not call are reported at the end of the file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb/stb_image_write.h>

static void buf_base64(sfp_buf_t *b, const unsigned char *bytes, size_t n)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)bytes[i] << 16;
        if (i + 1 < n) v |= (uint32_t)bytes[i + 1] << 8;
        if (i + 2 < n) v |= bytes[i + 2];
        char quad[4] = {digits[v >> 18], digits[(v >> 12) & 63], i + 1 < n ? digits[(v >> 6) & 63] : '=',
                        i + 2 < n ? digits[v & 63] : '='};
        sfp_buf_append(b, quad, 4);
    }
}

static void png_sink(void *context, void *data, int size)
{
    sfp_buf_append(context, data, (size_t)size);
}

/* Thumbnail side lengths: the image's own, or scaled so the longer side is
 * DETECT_HTML_THUMB (aspect kept, at least 1). */
static void thumb_size(int h, int w, int *th, int *tw)
{
    int longer = h > w ? h : w;
    *th = h;
    *tw = w;
    if (longer <= DETECT_HTML_THUMB) return;
    *th = (int)((int64_t)h * DETECT_HTML_THUMB / longer);
    *tw = (int)((int64_t)w * DETECT_HTML_THUMB / longer);
    if (*th < 1) *th = 1;
    if (*tw < 1) *tw = 1;
}

/* <img> of CHW pixels as a base64 PNG, downscaled by averaging the source
 * pixels that fall into each thumbnail pixel. */
static void buf_thumbnail(sfp_buf_t *b, const detect_summary_t *s, const uint8_t *chw, const char *alt)
{
    int c = s->channels, h = s->height, w = s->width, th = 0, tw = 0;
    thumb_size(h, w, &th, &tw);
    size_t n = (size_t)th * (size_t)tw * (size_t)c;
    uint32_t *sum = calloc(n, sizeof *sum), *count = calloc((size_t)th * (size_t)tw, sizeof *count);
    uint8_t *hwc = malloc(n);
    sfp_buf_t png = {0};
    if (!sum || !count || !hwc) b->failed = true;
    for (int y = 0; y < h && !b->failed; y++) {
        int ty = (int)((int64_t)y * th / h);
        for (int x = 0; x < w; x++) {
            size_t t = (size_t)ty * (size_t)tw + (size_t)((int64_t)x * tw / w);
            count[t]++;
            for (int k = 0; k < c; k++) sum[t * (size_t)c + (size_t)k] += chw[((size_t)k * (size_t)h + (size_t)y) * (size_t)w + (size_t)x];
        }
    }
    if (!b->failed) {
        for (size_t i = 0; i < n; i++) {
            uint32_t cnt = count[i / (size_t)c];
            hwc[i] = (uint8_t)((sum[i] + cnt / 2) / cnt);
        }
        bool gray = true; /* a gray image fed to an RGB model: write one channel */
        for (size_t i = 0; c == 3 && i < n && gray; i += 3) gray = hwc[i] == hwc[i + 1] && hwc[i] == hwc[i + 2];
        if (c == 3 && gray)
            for (size_t i = 0; i < n / 3; i++) hwc[i] = hwc[3 * i];
        int comp = c == 3 && gray ? 1 : c;
        if (!stbi_write_png_to_func(png_sink, &png, tw, th, comp, hwc, tw * comp) || png.failed) b->failed = true;
    }
    if (!b->failed) {
        int longer = th > tw ? th : tw;
        html_printf(b, "<img width=\"%d\" height=\"%d\" alt=\"", tw * DETECT_HTML_THUMB / longer,
                   th * DETECT_HTML_THUMB / longer);
        html_escape(b, alt);
        html_puts(b, "\" src=\"data:image/png;base64,");
        buf_base64(b, (const unsigned char *)png.data, png.len);
        html_puts(b, "\">");
    }
    free(png.data);
    free(sum);
    free(count);
    free(hwc);
}

static bool misclassified(const detect_result_t *r)
{
    return r->truth >= 0 && r->predicted != r->truth;
}

static void buf_item(sfp_buf_t *b, const detect_summary_t *s, const detect_result_t *r)
{
    const char *kind = r->truth < 0 ? "unknown" : misclassified(r) ? "wrong" : "right";
    const char *slash = strrchr(r->path, '/');
    const char *name = slash && slash[1] ? slash + 1 : r->path;
    html_printf(b, "<figure class=\"%s\">", kind);
    buf_thumbnail(b, s, r->pixels, name);
    html_puts(b, "<figcaption><span class=\"file\" title=\"");
    html_escape(b, r->path);
    html_puts(b, "\">");
    html_escape(b, name);
    html_puts(b, "</span><br>predicted <b>");
    html_escape(b, s->class_names[r->predicted]);
    html_printf(b, "</b> %.1f%%<br>", 100.0 * r->confidence);
    if (r->truth >= 0) {
        html_puts(b, "true ");
        html_escape(b, s->class_names[r->truth]);
    } else {
        html_puts(b, "true class unknown");
    }
    html_printf(b, "<br>%.2f ms</figcaption></figure>\n", r->ms);
}

static void buf_summary(sfp_buf_t *b, const detect_summary_t *s)
{
    html_printf(b, "<h2>Summary</h2>\n<table class=\"summary\">\n<tr><th>images</th><td>%lld</td></tr>\n",
               (long long)s->n_images);
    if (s->n_labelled > 0) {
        html_printf(b, "<tr><th>accuracy</th><td>%.2f%% (%lld of %lld labelled)</td></tr>\n",
                   100.0 * (double)s->n_correct / (double)s->n_labelled, (long long)s->n_correct,
                   (long long)s->n_labelled);
        html_printf(b, "<tr><th>balanced accuracy</th><td>%.2f%%</td></tr>\n", 100.0 * s->balanced_accuracy);
    } else {
        html_puts(b, "<tr><th>accuracy</th><td>no labelled images</td></tr>\n");
    }
    html_printf(b, "<tr><th>images/s</th><td>%.1f</td></tr>\n</table>\n", s->images_per_s);
    if (!s->confusion || s->n_labelled == 0) return;
    html_puts(b, "<table class=\"confusion\">\n<caption>confusion matrix: rows true class, columns predicted"
                "</caption>\n<tr><th></th>");
    for (int j = 0; j < s->n_classes; j++) {
        html_puts(b, "<th>");
        html_escape(b, s->class_names[j]);
        html_puts(b, "</th>");
    }
    html_puts(b, "</tr>\n");
    for (int i = 0; i < s->n_classes; i++) {
        html_puts(b, "<tr><th>");
        html_escape(b, s->class_names[i]);
        html_puts(b, "</th>");
        for (int j = 0; j < s->n_classes; j++) {
            int64_t v = s->confusion[(size_t)i * (size_t)s->n_classes + (size_t)j];
            html_printf(b, "<td class=\"%s\">%lld</td>", i == j ? "diag" : v ? "off" : "zero", (long long)v);
        }
        html_puts(b, "</tr>\n");
    }
    html_puts(b, "</table>\n");
}

static const char style[] =
    "body{font-family:sans-serif;margin:1.5em;color:#222}"
    "figure{display:inline-block;width:120px;margin:4px;padding:6px;border:2px solid #ccc;"
    "vertical-align:top;font-size:12px;text-align:center}"
    "figure img{image-rendering:pixelated;background:#000}"
    "figure.wrong{border-color:#c33;background:#fee}figure.right{border-color:#3a3}"
    ".file{word-break:break-all}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}"
    "td.diag{background:#dfd}td.off{background:#fdd}td.zero{color:#aaa}";

int detect_html_write(const char *path, const detect_result_t *results, int64_t n, const detect_summary_t *s,
                      sfp_error_t *err)
{
    sfp_buf_t b = {0};
    int64_t n_wrong = 0;
    for (int64_t i = 0; i < n; i++) n_wrong += misclassified(&results[i]);
    html_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>onnx-sfp detect: ");
    html_escape(&b, s->model_path);
    html_puts(&b, "</title>\n<style>");
    html_puts(&b, style);
    html_puts(&b, "</style>\n</head>\n<body>\n<h1>onnx-sfp detect: ");
    html_escape(&b, s->model_path);
    html_printf(&b, "</h1>\n<p>%lld images, %lld labelled, %lld misclassified (shown first).</p>\n",
               (long long)n, (long long)s->n_labelled, (long long)n_wrong);
    html_puts(&b, "<div class=\"images\">\n");
    for (int pass = 0; pass < 2; pass++)
        for (int64_t i = 0; i < n; i++)
            if (misclassified(&results[i]) == (pass == 0)) buf_item(&b, s, &results[i]);
    html_puts(&b, "</div>\n");
    buf_summary(&b, s);
    html_puts(&b, "</body>\n</html>\n");
    int rc = b.failed ? sfp_errorf(err, SFP_ENOMEM, "%s: out of memory building the HTML page", sfp_q(path))
                      : sfp_write_file_atomic(path, (const uint8_t *)b.data, b.len, err);
    free(b.data);
    return rc;
}
