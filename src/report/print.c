/* report output: a text table (one model, or two side by side matched by
 * node name) and the JSON object of `report --json` (json-c). */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ops/ops.h"
#include "report/report_json.h"
#include "util/util.h"

/* 1234567 -> "1,234,567" into buf. */
static const char *group3(int64_t v, char *buf, size_t size)
{
    char raw[32];
    int n = snprintf(raw, sizeof raw, "%lld", (long long)(v < 0 ? -v : v));
    size_t o = 0;
    if (v < 0 && o + 1 < size) buf[o++] = '-';
    for (int i = 0; i < n && o + 2 < size; i++) {
        buf[o++] = raw[i];
        if ((n - i - 1) % 3 == 0 && i != n - 1) buf[o++] = ',';
    }
    buf[o] = '\0';
    return buf;
}

static const char *shape_str(const sfp_report_row_t *row, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int k = 0; k < row->ndim && o + 24 < size; k++)
        o += (size_t)snprintf(buf + o, size - o, k ? "x%lld" : "%lld", (long long)row->shape[k]);
    return buf;
}

static double reduction(int64_t before, int64_t after)
{
    return before > 0 ? 1.0 - (double)after / (double)before : 0.0;
}

static const sfp_report_row_t *find_row(const sfp_report_t *r, const char *name)
{
    for (int i = 0; i < r->n_rows; i++)
        if (!strcmp(r->rows[i].name, name)) return &r->rows[i];
    return NULL;
}

static void print_totals(FILE *f, const char *label, const sfp_report_t *r)
{
    char a[32], b[32], c[32], d[32];
    fprintf(f, "%s: params %s | MACs %s (FLOPs %s = 2 x MACs) | elementwise ops %s\n", label,
            group3(r->params, a, sizeof a), group3(r->macs, b, sizeof b), group3(2 * r->macs, c, sizeof c),
            group3(r->elem_ops, d, sizeof d));
}

void sfp_report_print_text(FILE *f, const sfp_report_t *a, const sfp_report_t *b)
{
    char s1[96], s2[96], n1[32], n2[32], n3[32], n4[32];
    if (!b) {
        fprintf(f, "model: %s (batch 1)\n", sfp_q(a->path));
        fprintf(f, "%-36s %-20s %-16s %12s %14s %12s\n", "node", "op", "output", "params", "MACs", "elem ops");
        for (int i = 0; i < a->n_rows; i++) {
            const sfp_report_row_t *r = &a->rows[i];
            fprintf(f, "%-36s %-20s %-16s %12s %14s %12s\n", sfp_q(r->name), sfp_q(r->op_type),
                    shape_str(r, s1, sizeof s1), group3(r->params, n1, sizeof n1), group3(r->macs, n2, sizeof n2),
                    group3(r->elem_ops, n3, sizeof n3));
        }
        print_totals(f, "total", a);
        return;
    }
    fprintf(f, "A: %s\nB: %s (batch 1)\n", sfp_q(a->path), sfp_q(b->path));
    fprintf(f, "%-36s %-20s %-14s %-14s %11s %11s %13s %13s\n", "node", "op", "output A", "output B", "params A",
            "params B", "MACs A", "MACs B");
    for (int i = 0; i < a->n_rows; i++) {
        const sfp_report_row_t *ra = &a->rows[i], *rb = find_row(b, ra->name);
        fprintf(f, "%-36s %-20s %-14s %-14s %11s %11s %13s %13s\n", sfp_q(ra->name), sfp_q(ra->op_type),
                shape_str(ra, s1, sizeof s1), rb ? shape_str(rb, s2, sizeof s2) : "-",
                group3(ra->params, n1, sizeof n1), rb ? group3(rb->params, n2, sizeof n2) : "-",
                group3(ra->macs, n3, sizeof n3), rb ? group3(rb->macs, n4, sizeof n4) : "-");
    }
    for (int i = 0; i < b->n_rows; i++) {
        const sfp_report_row_t *rb = &b->rows[i];
        if (find_row(a, rb->name)) continue;
        fprintf(f, "%-36s %-20s %-14s %-14s %11s %11s %13s %13s\n", sfp_q(rb->name), sfp_q(rb->op_type), "-",
                shape_str(rb, s2, sizeof s2), "-", group3(rb->params, n2, sizeof n2), "-",
                group3(rb->macs, n4, sizeof n4));
    }
    print_totals(f, "total A", a);
    print_totals(f, "total B", b);
    fprintf(f, "reduction: params %.2f%% | MACs %.2f%% | elementwise ops %.2f%%\n",
            100.0 * reduction(a->params, b->params), 100.0 * reduction(a->macs, b->macs),
            100.0 * reduction(a->elem_ops, b->elem_ops));
}

static json_object *model_json(const sfp_report_t *r)
{
    json_object *m = json_object_new_object();
    json_object *total = json_object_new_object();
    json_object *nodes = json_object_new_array();
    json_object_object_add(m, "path", json_object_new_string(r->path));
    json_object_object_add(total, "params", json_object_new_int64(r->params));
    json_object_object_add(total, "macs", json_object_new_int64(r->macs));
    json_object_object_add(total, "flops", json_object_new_int64(2 * r->macs));
    json_object_object_add(total, "elementwise_ops", json_object_new_int64(r->elem_ops));
    json_object_object_add(m, "total", total);
    for (int i = 0; i < r->n_rows; i++) {
        const sfp_report_row_t *row = &r->rows[i];
        json_object *n = json_object_new_object();
        json_object *shape = json_object_new_array();
        for (int k = 0; k < row->ndim; k++) json_object_array_add(shape, json_object_new_int64(row->shape[k]));
        json_object_object_add(n, "name", json_object_new_string(row->name));
        json_object_object_add(n, "op_type", json_object_new_string(row->op_type));
        json_object_object_add(n, "output_shape", shape);
        json_object_object_add(n, "params", json_object_new_int64(row->params));
        json_object_object_add(n, "macs", json_object_new_int64(row->macs));
        json_object_object_add(n, "elementwise_ops", json_object_new_int64(row->elem_ops));
        json_object_array_add(nodes, n);
    }
    json_object_object_add(m, "nodes", nodes);
    return m;
}

json_object *report_json_object(const sfp_report_t *a, const sfp_report_t *b)
{
    json_object *root = json_object_new_object();
    json_object *models = json_object_new_array();
    if (!root || !models) {
        json_object_put(root);
        json_object_put(models);
        return NULL;
    }
    json_object_object_add(root, "schema_version", json_object_new_int(SFP_JSON_SCHEMA_VERSION));
    json_object_array_add(models, model_json(a));
    if (b) json_object_array_add(models, model_json(b));
    json_object_object_add(root, "models", models);
    if (b) {
        json_object *red = json_object_new_object();
        json_object_object_add(red, "params", json_object_new_double(reduction(a->params, b->params)));
        json_object_object_add(red, "macs", json_object_new_double(reduction(a->macs, b->macs)));
        json_object_object_add(root, "reduction", red);
    } else {
        json_object_object_add(root, "reduction", NULL);
    }
    return root;
}

char *report_json_text(const json_object *root)
{
    const char *s = json_object_to_json_string_ext((json_object *)root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t len = strlen(s);
    char *text = malloc(len + 2);
    if (!text) return NULL;
    memcpy(text, s, len);
    text[len] = '\n';
    text[len + 1] = '\0';
    return text;
}

int sfp_report_to_json(const sfp_report_t *a, const sfp_report_t *b, char **out, sfp_error_t *err)
{
    json_object *root = report_json_object(a, b);
    if (!root) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    *out = sfp_strdup(s);
    json_object_put(root);
    if (!*out) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    return 0;
}

json_object *report_layers_json(const sfp_model_t *before, const sfp_model_t *after)
{
    json_object *arr = json_object_new_array();
    for (int i = 0; arr && i < before->graph.n_nodes; i++) {
        const sfp_node_t *n = &before->graph.nodes[i];
        if (!op_has(n, SFP_OPF_FILTERS)) continue;
        const sfp_value_t *y = &before->graph.values[n->outputs[0]];
        int64_t kept = -1;
        for (int k = 0; k < after->graph.n_nodes; k++)
            if (!strcmp(after->graph.nodes[k].name, n->name) && *n->name)
                kept = after->graph.values[after->graph.nodes[k].outputs[0]].dims[y->ndim > 1 ? 1 : 0];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(n->name));
        json_object_object_add(o, "op_type", json_object_new_string(n->op_type));
        json_object_object_add(o, "channels", json_object_new_int64(y->dims[y->ndim > 1 ? 1 : 0]));
        json_object_object_add(o, "kept", json_object_new_int64(kept));
        json_object_array_add(arr, o);
    }
    return arr;
}
