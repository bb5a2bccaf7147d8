/* The report's HTML page (report_html.h). Numbers are formatted as in the
 * text outputs (thousands separators, percentages with 2 decimals); names
 * from the model are escaped (html_escape). Bars are inline SVG scaled to
 * the largest "before" value of the chart, so rows compare with each other;
 * the page's width follows the window (no horizontal scrolling at 1024 px). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/format.h"
#include "report/html.h"
#include "report/report_html.h"

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static int64_t get_int(json_object *o, const char *key)
{
    return json_object_get_int64(get(o, key));
}

/* The model entry i's node called name, NULL when absent. */
static json_object *node_named(json_object *root, int i, const char *name)
{
    json_object *nodes = get(json_object_array_get_idx(get(root, "models"), (size_t)i), "nodes");
    size_t n = nodes ? json_object_array_length(nodes) : 0;
    for (size_t k = 0; k < n && *name; k++) {
        json_object *node = json_object_array_get_idx(nodes, k);
        if (!strcmp(json_object_get_string(get(node, "name")), name)) return node;
    }
    return NULL;
}

static double kept_pct(int64_t before, int64_t after)
{
    return before > 0 ? 100.0 * (double)after / (double)before : 0.0;
}

static void total_row(sfp_buf_t *b, const char *label, const char *key, int64_t before, int64_t after)
{
    char n1[32], n2[32];
    html_printf(b, "<tr><th>%s</th><td data-key=\"%s-before\">%s</td><td data-key=\"%s-after\">%s</td>"
                   "<td data-key=\"%s-reduction\">%.2f%%</td></tr>\n",
                label, key, report_group3(before, n1, sizeof n1), key, report_group3(after, n2, sizeof n2), key,
                before > 0 ? 100.0 - kept_pct(before, after) : 0.0);
}

static void totals(sfp_buf_t *b, json_object *root)
{
    json_object *ta = get(json_object_array_get_idx(get(root, "models"), 0), "total");
    json_object *tb = get(json_object_array_get_idx(get(root, "models"), 1), "total");
    html_puts(b, "<table class=\"totals\">\n<tr><th></th><th>before</th><th>after</th><th>reduction</th></tr>\n");
    total_row(b, "parameters", "params", get_int(ta, "params"), get_int(tb, "params"));
    total_row(b, "MACs", "macs", get_int(ta, "macs"), get_int(tb, "macs"));
    total_row(b, "FLOPs (2 x MACs)", "flops", get_int(ta, "flops"), get_int(tb, "flops"));
    html_puts(b, "</table>\n");
}

/* Accuracies and the gate of compress --report-json, when measured. */
static void accuracy(sfp_buf_t *b, json_object *root)
{
    json_object *before = get(root, "accuracy_before"), *after = get(root, "accuracy_after"), *gate = get(root, "gate");
    if (!before || !after) return;
    double ab = 100.0 * json_object_get_double(before), aa = 100.0 * json_object_get_double(after);
    html_printf(b, "<table class=\"accuracy\">\n<tr><th>validation accuracy</th><td data-key=\"accuracy-before\">"
                   "%.2f%%</td><td data-key=\"accuracy-after\">%.2f%%</td><td data-key=\"accuracy-change\">%+.2f "
                   "points</td></tr>\n", ab, aa, aa - ab);
    if (gate) {
        bool passed = json_object_get_boolean(get(gate, "passed"));
        html_printf(b, "<tr><th>gate</th><td colspan=\"3\" data-key=\"gate\" class=\"%s\">--max-accuracy-drop %.2f "
                       "points: %s</td></tr>\n", passed ? "passed" : "failed",
                    json_object_get_double(get(gate, "max_accuracy_drop")), passed ? "passed" : "failed");
    }
    html_puts(b, "</table>\n");
}

/* One bar: before (grey, full) and after (colour) on a 0..scale axis. */
static void bar(sfp_buf_t *b, const char *kind, int64_t before, int64_t after, int64_t scale)
{
    char n1[32], n2[32];
    double wb = scale > 0 ? 100.0 * (double)before / (double)scale : 0.0;
    double wa = scale > 0 ? 100.0 * (double)(after > 0 ? after : 0) / (double)scale : 0.0;
    html_printf(b, "<td class=\"%s\"><svg viewBox=\"0 0 100 12\" preserveAspectRatio=\"none\" role=\"img\">"
                   "<rect class=\"before\" width=\"%.3f\" height=\"12\"/><rect class=\"after\" y=\"2\" width=\"%.3f\" "
                   "height=\"8\"/></svg>", kind, wb, wa);
    if (after < 0) {
        html_printf(b, "<span class=\"kept\" data-kept=\"0.00\">%s &rarr; removed</span></td>",
                    report_group3(before, n1, sizeof n1));
        return;
    }
    html_printf(b, "<span class=\"kept\" data-kept=\"%.2f\">%s &rarr; %s (%.2f%%)</span></td>", kept_pct(before, after),
                report_group3(before, n1, sizeof n1), report_group3(after, n2, sizeof n2), kept_pct(before, after));
}

static void layers(sfp_buf_t *b, json_object *root)
{
    json_object *ls = get(root, "layers");
    size_t n = ls ? json_object_array_length(ls) : 0;
    int64_t max_ch = 0, max_macs = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *l = json_object_array_get_idx(ls, i), *node = node_named(root, 0, json_object_get_string(get(l, "name")));
        if (get_int(l, "channels") > max_ch) max_ch = get_int(l, "channels");
        if (node && get_int(node, "macs") > max_macs) max_macs = get_int(node, "macs");
    }
    html_printf(b, "<h2>Layers (%zu)</h2>\n<p class=\"legend\"><span class=\"before\"></span> before "
                   "<span class=\"after\"></span> after; bars to scale within each column</p>\n"
                   "<table class=\"layers\">\n<tr><th class=\"name\">layer</th><th class=\"op\">op</th><th>output channels</th><th>MACs</th></tr>\n", n);
    for (size_t i = 0; i < n; i++) {
        json_object *l = json_object_array_get_idx(ls, i);
        const char *name = json_object_get_string(get(l, "name"));
        json_object *na = node_named(root, 0, name), *nb = node_named(root, 1, name);
        html_puts(b, "<tr class=\"layer\"><th class=\"name\">");
        html_escape(b, *name ? name : "(unnamed)");
        html_puts(b, "</th><td class=\"op\">");
        html_escape(b, json_object_get_string(get(l, "op_type")));
        html_puts(b, "</td>");
        bar(b, "channels", get_int(l, "channels"), get_int(l, "kept"), max_ch);
        if (na) bar(b, "macs", get_int(na, "macs"), nb ? get_int(nb, "macs") : -1, max_macs);
        else html_puts(b, "<td class=\"macs\">-</td>");
        html_puts(b, "</tr>\n");
    }
    html_puts(b, "</table>\n");
}

static const char style[] =
    "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:100%}"
    "h1{font-size:1.3em;word-break:break-all}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}"
    "table.layers{width:100%;table-layout:fixed}table.layers th{text-align:left}"
    "table.layers .name{word-break:break-all;width:22%}table.layers .op{width:9%;word-break:break-all;text-align:left}"
    "table.layers td.channels,table.layers td.macs{text-align:left}"
    "svg{display:block;width:100%;height:12px}rect.before{fill:#bbb}rect.after{fill:#2b7bb9}"
    ".kept{font-size:12px;white-space:nowrap}"
    ".legend span{display:inline-block;width:1em;height:.8em}.legend .before{background:#bbb}"
    ".legend .after{background:#2b7bb9}td.passed{color:#282}td.failed{color:#c22;font-weight:bold}";

void report_html_render(sfp_buf_t *b, json_object *root)
{
    json_object *models = get(root, "models");
    const char *pa = json_object_get_string(get(json_object_array_get_idx(models, 0), "path"));
    const char *pb = json_object_get_string(get(json_object_array_get_idx(models, 1), "path"));
    html_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 "<meta name=\"viewport\" content=\"width=device-width\">\n<title>onnx-sfp report: ");
    html_escape(b, pa ? pa : "");
    html_puts(b, " vs ");
    html_escape(b, pb ? pb : "");
    html_puts(b, "</title>\n<style>");
    html_puts(b, style);
    html_puts(b, "</style>\n</head>\n<body>\n<h1>onnx-sfp report: <span class=\"path\">");
    html_escape(b, pa ? pa : "");
    html_puts(b, "</span> &rarr; <span class=\"path\">");
    html_escape(b, pb ? pb : "");
    html_puts(b, "</span></h1>\n<p>Counts at batch 1: MACs of Conv, Gemm and MatMul; FLOPs = 2 x MACs.</p>\n");
    totals(b, root);
    accuracy(b, root);
    layers(b, root);
    html_puts(b, "</body>\n</html>\n");
}

int report_html_write(const char *path, json_object *root, sfp_error_t *err)
{
    sfp_buf_t b = {0};
    report_html_render(&b, root);
    int rc = b.failed ? sfp_errorf(err, SFP_ENOMEM, "%s: out of memory building the HTML page", sfp_q(path))
                      : sfp_write_file_atomic(path, (const uint8_t *)b.data, b.len, err);
    free(b.data);
    return rc;
}
