/* Model-local functions (ModelProto.functions, what PyTorch's
 * export_modules_as_functions writes) are inlined on load: every call
 * becomes its body's nodes, the body's inner values renamed uniquely under
 * the call's name, formal inputs and outputs bound to the call's, and
 * attributes that refer to the caller's (ref_attr_name) bound to them. The
 * rest of the tool then sees a plain graph. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_io.h"
#include "util/util.h"

/* Calls nested deeper than this are refused (a function calling itself). */
#define FUNCTION_MAX_DEPTH 32

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* The default domain is "" or "ai.onnx". */
static bool same_domain(const char *a, const char *b)
{
    a = str_or_empty(a);
    b = str_or_empty(b);
    if (!strcmp(a, "ai.onnx")) a = "";
    if (!strcmp(b, "ai.onnx")) b = "";
    return strcmp(a, b) == 0;
}

const Onnx__FunctionProto *function_of(const Onnx__ModelProto *mp, const Onnx__NodeProto *np)
{
    for (size_t i = 0; mp && i < mp->n_functions; i++) {
        const Onnx__FunctionProto *f = mp->functions[i];
        if (f->name && np->op_type && !strcmp(f->name, np->op_type) && same_domain(f->domain, np->domain)) return f;
    }
    return NULL;
}

/* One call's renaming: body name -> graph name (owned). */
typedef struct rename_map {
    size_t n, cap;
    const char **from;
    char **to;
} rename_map_t;

static void map_free(rename_map_t *m)
{
    for (size_t i = 0; i < m->n; i++) free(m->to[i]);
    free(m->from);
    free(m->to);
}

static int map_add(rename_map_t *m, const char *from, const char *to, sfp_error_t *err)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        const char **f = realloc(m->from, sizeof *f * cap);
        if (f) m->from = f;
        char **t = realloc(m->to, sizeof *t * cap);
        if (t) m->to = t;
        if (!f || !t) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        m->cap = cap;
    }
    m->from[m->n] = from;
    m->to[m->n] = sfp_strdup(to);
    if (!m->to[m->n]) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    m->n++;
    return 0;
}

static const char *map_find(const rename_map_t *m, const char *from)
{
    for (size_t i = m->n; i-- > 0;)
        if (!strcmp(m->from[i], from)) return m->to[i];
    return NULL;
}

/* The graph name of body value `local`: bound, or a new value
 * "<prefix>/<local>" (with _N when taken), reserved in g at once. */
static int map_value(sfp_graph_t *g, rename_map_t *m, const char *prefix, const char *local, const char **out,
                     sfp_error_t *err)
{
    if (!*local) {
        *out = "";
        return 0;
    }
    if ((*out = map_find(m, local)) != NULL) return 0;
    size_t cap = strlen(prefix) + strlen(local) + 32;
    char *name = malloc(cap);
    int rc = 0, id = -1;
    if (!name) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    snprintf(name, cap, "%s/%s", prefix, local);
    for (int i = 1; graph_find_value(g, name) >= 0; i++) snprintf(name, cap, "%s/%s_%d", prefix, local, i);
    if ((rc = graph_value(g, name, &id, err)) == 0) rc = map_add(m, local, name, err);
    free(name);
    if (rc == 0) *out = m->to[m->n - 1];
    return rc;
}

/* The body node np of f as called: inputs, outputs and attributes bound,
 * named "<prefix>/<its name>"; handed to take(). */
static int inline_node(sfp_graph_t *g, rename_map_t *m, const Onnx__NodeProto *call, const char *prefix,
                       const Onnx__NodeProto *np, size_t index, int depth, function_take_fn take, void *ctx,
                       sfp_error_t *err)
{
    Onnx__NodeProto copy = *np;
    const char **in = calloc(np->n_input + 1, sizeof *in), **out = calloc(np->n_output + 1, sizeof *out);
    Onnx__AttributeProto **attrs = calloc(np->n_attribute + 1, sizeof *attrs);
    Onnx__AttributeProto *bound = calloc(np->n_attribute + 1, sizeof *bound);
    size_t cap = strlen(prefix) + strlen(str_or_empty(np->name)) + strlen(str_or_empty(np->op_type)) + 32;
    char *name = malloc(cap);
    int rc = 0;
    if (!in || !out || !attrs || !bound || !name) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < np->n_input && rc == 0; i++)
        rc = map_value(g, m, prefix, str_or_empty(np->input[i]), &in[i], err);
    for (size_t i = 0; i < np->n_output && rc == 0; i++)
        rc = map_value(g, m, prefix, str_or_empty(np->output[i]), &out[i], err);
    if (rc < 0) goto done;
    size_t n_attrs = 0;
    for (size_t i = 0; i < np->n_attribute; i++) {
        const Onnx__AttributeProto *a = np->attribute[i];
        if (!a->ref_attr_name || !*a->ref_attr_name) {
            attrs[n_attrs++] = (Onnx__AttributeProto *)a;
            continue;
        }
        /* the caller's value under the body's name; absent: the op's default */
        for (size_t k = 0; k < call->n_attribute; k++)
            if (call->attribute[k]->name && !strcmp(call->attribute[k]->name, a->ref_attr_name)) {
                bound[n_attrs] = *call->attribute[k];
                bound[n_attrs].name = a->name;
                bound[n_attrs].ref_attr_name = NULL;
                attrs[n_attrs] = &bound[n_attrs];
                n_attrs++;
                break;
            }
    }
    if (np->name && *np->name) snprintf(name, cap, "%s/%s", prefix, np->name);
    else snprintf(name, cap, "%s/%s_%zu", prefix, str_or_empty(np->op_type), index);
    copy.name = name;
    copy.input = (char **)in;
    copy.output = (char **)out;
    copy.attribute = attrs;
    copy.n_attribute = n_attrs;
    rc = take(ctx, &copy, name, depth + 1);
done:
    free(in);
    free(out);
    free(attrs);
    free(bound);
    free(name);
    return rc;
}

int function_inline(sfp_graph_t *g, const Onnx__ModelProto *mp, const Onnx__FunctionProto *f,
                    const Onnx__NodeProto *call, const char *label, int depth, function_take_fn take, void *ctx,
                    sfp_error_t *err)
{
    const char *fname = str_or_empty(f->name);
    if (depth >= FUNCTION_MAX_DEPTH)
        return sfp_errorf(err, SFP_EBADMODEL, "node '%s' (%s): function calls nest deeper than %d (a function calling itself?)",
                          sfp_q(label), sfp_q(fname), FUNCTION_MAX_DEPTH);
    int64_t model_opset = -1, fn_opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++)
        if (same_domain(mp->opset_import[i]->domain, "")) model_opset = mp->opset_import[i]->version;
    for (size_t i = 0; i < f->n_opset_import; i++)
        if (same_domain(f->opset_import[i]->domain, "")) fn_opset = f->opset_import[i]->version;
    if (fn_opset >= 0 && fn_opset != model_opset)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "function '%s' imports ONNX opset %lld, the model %lld", sfp_q(fname),
                          (long long)fn_opset, (long long)model_opset);
    if (call->n_input > f->n_input || call->n_output > f->n_output)
        return sfp_errorf(err, SFP_EBADMODEL, "node '%s' (%s): %zu inputs and %zu outputs, the function has %zu and %zu",
                          sfp_q(label), sfp_q(fname), call->n_input, call->n_output, f->n_input, f->n_output);
    rename_map_t m = {0};
    int rc = 0;
    /* formal inputs and outputs bind to the call's (an omitted one to ""
     * for inputs, to a fresh inner value for outputs) */
    for (size_t i = 0; i < f->n_input && rc == 0; i++)
        rc = map_add(&m, str_or_empty(f->input[i]), i < call->n_input ? str_or_empty(call->input[i]) : "", err);
    for (size_t i = 0; i < f->n_output && rc == 0; i++) {
        const char *actual = i < call->n_output ? str_or_empty(call->output[i]) : "";
        const char *ignored = NULL;
        if (*actual) rc = map_add(&m, str_or_empty(f->output[i]), actual, err);
        else rc = map_value(g, &m, label, str_or_empty(f->output[i]), &ignored, err);
    }
    for (size_t k = 0; k < f->n_node && rc == 0; k++)
        rc = inline_node(g, &m, call, label, f->node[k], k, depth, take, ctx, err);
    map_free(&m);
    return rc;
}
