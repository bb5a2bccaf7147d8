/* detect's HTML page, built in memory and written atomically. Everything is
 * inline (CSS, thumbnails as base64 PNG data: URIs made with stb_image_write),
 * so the page opens offline. Text from outside (file names, class names) is
 * HTML-escaped, control characters and invalid UTF-8 become U+FFFD. */
#include <math.h>
#include <stdarg.h>
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


/* A file name that may wrap after its separators (/ _ - . and space) and
 * nowhere else unless one part is wider than its box. */
static void buf_file_name(sfp_buf_t *b, const char *name)
{
    size_t start = 0, n = strlen(name);
    for (size_t i = 0; i < n; i++) {
        if (!strchr("/_-. ", name[i]) || i + 1 == n) continue;
        html_escape_n(b, name + start, i + 1 - start);
        html_puts(b, "<wbr>");
        start = i + 1;
    }
    html_escape_n(b, name + start, n - start);
}

static void png_sink(void *context, void *data, int size)
{
    sfp_buf_append(context, data, (size_t)size);
}

/* <img> of the image's thumbnail (CHW bytes) as a base64 PNG; a gray box
 * when there is none. */
static void buf_thumbnail(sfp_buf_t *b, const detect_image_t *im, const char *alt)
{
    if (!im->thumb) {
        html_puts(b, "<div class=\"nothumb\"></div>");
        return;
    }
    int c = im->thumb_c, h = im->thumb_h, w = im->thumb_w;
    size_t n = (size_t)h * (size_t)w * (size_t)c;
    uint8_t *hwc = malloc(n);
    sfp_buf_t png = {0};
    if (!hwc) {
        b->failed = true;
        return;
    }
    for (int k = 0; k < c; k++)
        for (size_t i = 0; i < (size_t)h * (size_t)w; i++) hwc[i * (size_t)c + (size_t)k] = im->thumb[(size_t)k * (size_t)h * (size_t)w + i];
    if (!stbi_write_png_to_func(png_sink, &png, w, h, c, hwc, w * c) || png.failed) b->failed = true;
    if (!b->failed) {
        html_printf(b, "<img width=\"%d\" height=\"%d\" alt=\"", w, h);
        html_escape(b, alt);
        html_puts(b, "\" src=\"data:image/png;base64,");
        buf_base64(b, (const unsigned char *)png.data, png.len);
        html_puts(b, "\">");
    }
    free(png.data);
    free(hwc);
}

static bool call_wrong(const detect_image_t *im, int m)
{
    return im->truth >= 0 && !im->call[m].uncertain && im->call[m].predicted != im->truth;
}

/* "wrong", "uncertain", "disagree" (two models, different classes), "right" or "unknown". */
static const char *image_kind(const detect_page_t *p, const detect_image_t *im)
{
    for (int m = 0; m < p->n_models; m++)
        if (call_wrong(im, m)) return "wrong";
    for (int m = 0; m < p->n_models; m++)
        if (im->call[m].uncertain) return "uncertain";
    if (p->n_models == 2 && im->call[0].predicted != im->call[1].predicted) return "disagree";
    return im->truth >= 0 ? "right" : "unknown";
}

static void buf_item(sfp_buf_t *b, const detect_page_t *p, const detect_image_t *im, const char *kind)
{
    const char *slash = strrchr(im->path, '/');
    const char *name = slash && slash[1] ? slash + 1 : im->path;
    html_printf(b, "<figure class=\"%s\">", kind);
    buf_thumbnail(b, im, name);
    html_puts(b, "<figcaption><span class=\"file\" title=\"");
    html_escape(b, im->path);
    html_puts(b, "\">");
    buf_file_name(b, name);
    html_puts(b, "</span>");
    if (im->truth >= 0) {
        html_puts(b, "<span class=\"truth\">true ");
        html_escape(b, p->class_names[im->truth]);
        html_puts(b, "</span>");
    }
    for (int m = 0; m < p->n_models; m++) {
        const detect_call_t *c = &im->call[m];
        const char *mark = c->uncertain ? "uncertain" : im->truth < 0 ? "call" : c->predicted == im->truth ? "ok" : "bad";
        html_printf(b, "<span class=\"%s\">", mark);
        if (p->n_models == 2) html_puts(b, m == 0 ? "A: " : "B: ");
        html_puts(b, "<b>");
        html_escape(b, p->class_names[c->predicted]);
        html_printf(b, "</b> %.1f%%%s <small>%.2f ms</small></span>", 100.0 * c->confidence,
                   c->uncertain ? " (uncertain)" : "", c->ms);
    }
    html_puts(b, "</figcaption></figure>\n");
}

static void buf_percent(sfp_buf_t *b, double v)
{
    if (isnan(v)) html_puts(b, "<td>&ndash;</td>");
    else html_printf(b, "<td>%.2f%%</td>", 100.0 * v);
}

static void buf_count(sfp_buf_t *b, int64_t v)
{
    if (v < 0) html_puts(b, "<td>&ndash;</td>");
    else html_printf(b, "<td>%lld</td>", (long long)v);
}

static void buf_summary(sfp_buf_t *b, const detect_page_t *p)
{
    const detect_model_summary_t *ms = p->models;
    html_puts(b, "<table class=\"summary\">\n<tr><th></th>");
    for (int m = 0; m < p->n_models; m++) {
        html_printf(b, "<th>%s", p->n_models == 2 ? (m == 0 ? "A: " : "B: ") : "");
        html_escape(b, ms[m].path);
        html_puts(b, "</th>");
    }
    html_puts(b, "</tr>\n<tr><th>accuracy</th>");
    for (int m = 0; m < p->n_models; m++) buf_percent(b, ms[m].accuracy);
    html_puts(b, "</tr>\n<tr><th>balanced accuracy</th>");
    for (int m = 0; m < p->n_models; m++) buf_percent(b, ms[m].balanced_accuracy);
    html_puts(b, "</tr>\n<tr><th>escape rate (defects called ");
    html_escape(b, p->ok_class >= 0 ? p->class_names[p->ok_class] : "ok");
    html_puts(b, ")");
    if (p->ok_threshold > 0) html_printf(b, " at ok threshold %.0f%%", 100.0 * p->ok_threshold);
    html_puts(b, "</th>");
    for (int m = 0; m < p->n_models; m++) buf_percent(b, ms[m].escape_rate);
    html_puts(b, "</tr>\n<tr><th>labelled / decided / correct</th>");
    for (int m = 0; m < p->n_models; m++)
        html_printf(b, "<td>%lld / %lld / %lld</td>", (long long)ms[m].n_labelled, (long long)ms[m].n_decided,
                   (long long)ms[m].n_correct);
    html_puts(b, "</tr>\n<tr><th>uncertain");
    if (p->min_confidence > 0) html_printf(b, " (confidence below %.0f%%)", 100.0 * p->min_confidence);
    html_puts(b, "</th>");
    for (int m = 0; m < p->n_models; m++) buf_count(b, ms[m].n_uncertain);
    html_puts(b, "</tr>\n<tr><th>ms per image (forward, batch as run)</th>");
    for (int m = 0; m < p->n_models; m++) html_printf(b, "<td>%.3f</td>", ms[m].ms_per_image);
    html_puts(b, "</tr>\n<tr><th>images/s (with decoding)</th>");
    for (int m = 0; m < p->n_models; m++) html_printf(b, "<td>%.1f</td>", ms[m].images_per_s);
    html_puts(b, "</tr>\n<tr><th>MACs</th>");
    for (int m = 0; m < p->n_models; m++) buf_count(b, ms[m].macs);
    html_puts(b, "</tr>\n<tr><th>parameters</th>");
    for (int m = 0; m < p->n_models; m++) buf_count(b, ms[m].params);
    html_puts(b, "</tr>\n");
    if (p->n_models == 2)
        html_printf(b, "<tr><th>agreement (same class)</th><td colspan=\"2\">%.2f%%</td></tr>\n",
                   100.0 * p->agreement);
    html_puts(b, "</table>\n");
    if (ms[0].n_labelled == 0) return;

    html_puts(b, "<table class=\"recall\">\n<caption>recall per class</caption>\n<tr><th>class</th>");
    for (int m = 0; m < p->n_models; m++) html_puts(b, p->n_models == 2 ? (m == 0 ? "<th>A</th>" : "<th>B</th>") : "<th>recall</th>");
    html_puts(b, "</tr>\n");
    for (int k = 0; k < p->n_classes; k++) {
        html_puts(b, "<tr><th>");
        html_escape(b, p->class_names[k]);
        html_puts(b, "</th>");
        for (int m = 0; m < p->n_models; m++) buf_percent(b, ms[m].recall[k]);
        html_puts(b, "</tr>\n");
    }
    html_puts(b, "</table>\n");
    for (int m = 0; m < p->n_models; m++) {
        html_printf(b, "<table class=\"confusion\">\n<caption>%sconfusion matrix: rows true class, columns predicted"
                      "</caption>\n<tr><th></th>", p->n_models == 2 ? (m == 0 ? "A: " : "B: ") : "");
        for (int j = 0; j < p->n_classes; j++) {
            html_puts(b, "<th>");
            html_escape(b, p->class_names[j]);
            html_puts(b, "</th>");
        }
        html_puts(b, "</tr>\n");
        for (int i = 0; i < p->n_classes; i++) {
            html_puts(b, "<tr><th>");
            html_escape(b, p->class_names[i]);
            html_puts(b, "</th>");
            for (int j = 0; j < p->n_classes; j++) {
                int64_t v = ms[m].confusion[(size_t)i * (size_t)p->n_classes + (size_t)j];
                html_printf(b, "<td class=\"%s\">%lld</td>", i == j ? "diag" : v ? "off" : "zero", (long long)v);
            }
            html_puts(b, "</tr>\n");
        }
        html_puts(b, "</table>\n");
    }
}

static const char style[] =
    "body{font-family:sans-serif;margin:1.5em;color:#222}"
    "figure{display:inline-block;width:150px;margin:4px;padding:6px;border:2px solid #ccc;"
    "vertical-align:top;font-size:12px;text-align:center}"
    "figure img,.nothumb{background:#000;max-width:100%;height:auto}.nothumb{width:128px;height:128px}"
    "figure.wrong{border-color:#c33;background:#fee}figure.right{border-color:#3a3}"
    "figure.uncertain{border-color:#d90;background:#ffd}figure.disagree{border-color:#36c;background:#eef}"
    "figcaption span{display:block}.file{overflow-wrap:break-word}"
    "span.bad{color:#b00}span.uncertain{color:#a60}small{white-space:nowrap}"
    "table{border-collapse:collapse;margin:1em 1em 1em 0;display:inline-table;vertical-align:top}"
    "th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}caption{text-align:left}"
    "td.diag{background:#dfd}td.off{background:#fdd}td.zero{color:#aaa}";

int detect_html_write(const char *path, const detect_page_t *p, sfp_error_t *err)
{
    sfp_buf_t b = {0};
    const char *kinds[] = {"wrong", "uncertain", "disagree", "right", "unknown"};
    int64_t counts[5] = {0};
    for (int64_t i = 0; i < p->n_images; i++)
        for (int k = 0; k < 5; k++) counts[k] += strcmp(image_kind(p, &p->images[i]), kinds[k]) == 0;
    html_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>onnx-sfp detect: ");
    html_escape(&b, p->models[0].path);
    html_puts(&b, "</title>\n<style>");
    html_puts(&b, style);
    html_puts(&b, "</style>\n</head>\n<body>\n<h1>onnx-sfp detect: ");
    html_escape(&b, p->models[0].path);
    if (p->n_models == 2) {
        html_puts(&b, " and ");
        html_escape(&b, p->models[1].path);
    }
    html_printf(&b, "</h1>\n<h2>Summary</h2>\n<p>%lld images, %lld could not be decoded; %lld misclassified, "
               "%lld uncertain", (long long)p->n_images, (long long)p->n_skipped, (long long)counts[0],
               (long long)counts[1]);
    if (p->n_models == 2) {
        int64_t disagree = 0;
        for (int64_t i = 0; i < p->n_images; i++)
            disagree += p->images[i].call[0].predicted != p->images[i].call[1].predicted;
        html_printf(&b, ", %lld where the models disagree", (long long)disagree);
    }
    html_puts(&b, " (shown first, in that order).</p>\n");
    buf_summary(&b, p);
    if (p->n_skipped > 0) {
        html_puts(&b, "<h2>Not decoded (skipped)</h2>\n<ul class=\"skipped\">\n");
        for (int64_t i = 0; i < p->n_skipped; i++) {
            html_puts(&b, "<li><span class=\"file\" title=\"");
            html_escape(&b, p->skipped_paths[i]);
            html_puts(&b, "\">");
            buf_file_name(&b, p->skipped_paths[i]);
            html_puts(&b, "</span>: ");
            html_escape(&b, p->skipped_reasons[i]);
            html_puts(&b, "</li>\n");
        }
        html_puts(&b, "</ul>\n");
    }
    html_puts(&b, "<h2>Images</h2>\n<div class=\"images\">\n");
    for (int k = 0; k < 5; k++)
        for (int64_t i = 0; i < p->n_images; i++)
            if (!strcmp(image_kind(p, &p->images[i]), kinds[k])) buf_item(&b, p, &p->images[i], kinds[k]);
    html_puts(&b, "</div>\n</body>\n</html>\n");
    int rc = b.failed ? sfp_errorf(err, SFP_ENOMEM, "%s: out of memory building the HTML page", sfp_q(path))
                      : sfp_write_file_atomic(path, (const uint8_t *)b.data, b.len, err);
    free(b.data);
    return rc;
}
