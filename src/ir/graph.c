/* Graph IR storage: model lifetime, values with a name index, nodes, graph
 * inputs/outputs/initializers. Edges are value ids; nodes refer to them. */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "util/util.h"

/* ---- name index: open addressing, FNV-1a, value ids + 1 in slots ---- */
typedef struct name_index {
    int cap;      /* power of two */
    int *slots;   /* 0 = empty, else value id + 1 */
} name_index_t;

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int index_rebuild(sfp_graph_t *g, int cap, sfp_error_t *err)
{
    name_index_t *ix = g->name_index;
    if (!ix) {
        ix = calloc(1, sizeof *ix);
        if (!ix) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        g->name_index = ix;
    }
    int *slots = calloc((size_t)cap, sizeof *slots);
    if (!slots) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    for (int id = 0; id < g->n_values; id++) {
        size_t h = (size_t)hash_name(g->values[id].name) & (size_t)(cap - 1);
        while (slots[h]) h = (h + 1) & (size_t)(cap - 1);
        slots[h] = id + 1;
    }
    return 0;
}

int graph_find_value(const sfp_graph_t *g, const char *name)
{
    const name_index_t *ix = g->name_index;
    if (!ix || !name) return -1;
    size_t h = (size_t)hash_name(name) & (size_t)(ix->cap - 1);
    while (ix->slots[h]) {
        int id = ix->slots[h] - 1;
        if (strcmp(g->values[id].name, name) == 0) return id;
        h = (h + 1) & (size_t)(ix->cap - 1);
    }
    return -1;
}

int graph_add_value(sfp_graph_t *g, const char *name, int *id, sfp_error_t *err)
{
    int rc;
    if (!name || !*name) return sfp_errorf(err, SFP_EBADMODEL, "value with an empty name");
    if (graph_find_value(g, name) >= 0)
        return sfp_errorf(err, SFP_EBADMODEL, "duplicate value name '%s'", sfp_q(name));
    if ((rc = sfp_grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof *g->values, err)) < 0)
        return rc;
    sfp_value_t *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = sfp_strdup(name);
    if (!v->name) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    v->producer = -1;
    v->ndim = -1;
    v->decl.rank = -1;
    g->n_values++;
    name_index_t *ix = g->name_index;
    if (!ix || g->n_values * 2 > ix->cap) {
        int cap = ix ? ix->cap * 2 : 64;
        while (cap < g->n_values * 2) cap *= 2;
        if ((rc = index_rebuild(g, cap, err)) < 0) return rc;
    } else {
        size_t h = (size_t)hash_name(name) & (size_t)(ix->cap - 1);
        while (ix->slots[h]) h = (h + 1) & (size_t)(ix->cap - 1);
        ix->slots[h] = g->n_values;
    }
    *id = g->n_values - 1;
    return 0;
}

int graph_value(sfp_graph_t *g, const char *name, int *id, sfp_error_t *err)
{
    int found = graph_find_value(g, name);
    if (found >= 0) {
        *id = found;
        return 0;
    }
    return graph_add_value(g, name, id, err);
}

int graph_add_node(sfp_graph_t *g, const char *op_type, const char *name, int n_in, const int *inputs, int n_out,
                   const int *outputs, int *node_id, sfp_error_t *err)
{
    /* Every check before any allocation, so a refused node leaves no trace. */
    for (int i = 0; i < n_in; i++)
        if (inputs[i] < -1 || inputs[i] >= g->n_values)
            return sfp_errorf(err, SFP_EBADMODEL, "node '%s': input id %d out of range", sfp_q(name), inputs[i]);
    for (int i = 0; i < n_out; i++) {
        if (outputs[i] < -1 || outputs[i] >= g->n_values)
            return sfp_errorf(err, SFP_EBADMODEL, "node '%s': output id %d out of range", sfp_q(name), outputs[i]);
        if (outputs[i] < 0) continue;
        const sfp_value_t *v = &g->values[outputs[i]];
        bool twice_here = false;
        for (int k = 0; k < i; k++) twice_here |= outputs[k] == outputs[i];
        if (v->producer >= 0 || v->init || twice_here)
            return sfp_errorf(err, SFP_EBADMODEL, "value '%s' is produced twice (node '%s')", sfp_q(v->name),
                              sfp_q(name));
    }
    int rc = sfp_grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes, err);
    if (rc < 0) return rc;
    sfp_node_t *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op_type = sfp_strdup(op_type ? op_type : "");
    n->name = sfp_strdup(name ? name : "");
    n->domain = sfp_strdup("");
    n->inputs = malloc(sizeof(int) * (size_t)(n_in > 0 ? n_in : 1));
    n->outputs = malloc(sizeof(int) * (size_t)(n_out > 0 ? n_out : 1));
    if (!n->op_type || !n->name || !n->domain || !n->inputs || !n->outputs) {
        free(n->op_type);
        free(n->name);
        free(n->domain);
        free(n->inputs);
        free(n->outputs);
        memset(n, 0, sizeof *n);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    if (n_in) memcpy(n->inputs, inputs, sizeof(int) * (size_t)n_in);
    if (n_out) memcpy(n->outputs, outputs, sizeof(int) * (size_t)n_out);
    n->n_inputs = n_in;
    n->n_outputs = n_out;
    for (int i = 0; i < n_out; i++)
        if (outputs[i] >= 0) g->values[outputs[i]].producer = g->n_nodes;
    if (node_id) *node_id = g->n_nodes;
    g->n_nodes++;
    return 0;
}

static int append_id(int **arr, int *n, int id, sfp_error_t *err)
{
    int *p = realloc(*arr, sizeof(int) * (size_t)(*n + 1));
    if (!p) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    p[*n] = id;
    *arr = p;
    (*n)++;
    return 0;
}

int graph_set_init(sfp_graph_t *g, int id, sfp_tensor_t *t, sfp_error_t *err)
{
    sfp_value_t *v = &g->values[id];
    if (v->init) {
        sfp_tensor_free(t);
        return sfp_errorf(err, SFP_EBADMODEL, "duplicate initializer '%s'", sfp_q(v->name));
    }
    if (v->producer >= 0) {
        sfp_tensor_free(t);
        return sfp_errorf(err, SFP_EBADMODEL, "initializer '%s' is also a node output", sfp_q(v->name));
    }
    int rc = append_id(&g->inits, &g->n_inits, id, err);
    if (rc < 0) {
        sfp_tensor_free(t);
        return rc;
    }
    free(t->name);
    t->name = sfp_strdup(v->name);
    v->init = t;
    if (!t->name) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    return 0;
}

int graph_add_input(sfp_graph_t *g, int id, sfp_error_t *err)
{
    if (g->values[id].flags & SFP_VAL_INPUT)
        return sfp_errorf(err, SFP_EBADMODEL, "graph input '%s' listed twice", sfp_q(g->values[id].name));
    g->values[id].flags |= SFP_VAL_INPUT;
    return append_id(&g->inputs, &g->n_inputs, id, err);
}

int graph_add_output(sfp_graph_t *g, int id, sfp_error_t *err)
{
    if (g->values[id].flags & SFP_VAL_OUTPUT)
        return sfp_errorf(err, SFP_EBADMODEL, "graph output '%s' listed twice", sfp_q(g->values[id].name));
    g->values[id].flags |= SFP_VAL_OUTPUT;
    return append_id(&g->outputs, &g->n_outputs, id, err);
}

const sfp_tensor_t *graph_const(const sfp_graph_t *g, int id)
{
    if (id < 0 || id >= g->n_values) return NULL;
    return g->values[id].init ? g->values[id].init : g->values[id].folded;
}

int graph_count_consumers(const sfp_graph_t *g, int id)
{
    int count = 0;
    for (int n = 0; n < g->n_nodes; n++)
        for (int i = 0; i < g->nodes[n].n_inputs; i++)
            if (g->nodes[n].inputs[i] == id) count++;
    return count;
}

int graph_data_input(const sfp_graph_t *g)
{
    int found = -1;
    for (int i = 0; i < g->n_inputs; i++) {
        int id = g->inputs[i];
        if (g->values[id].init) continue;
        if (found >= 0) return -1;
        found = id;
    }
    return found;
}

/* Min-heap of node ids: Kahn's algorithm always takes the ready node that came
 * first in the file, so an already sorted graph keeps its order. */
static void heap_push(int *h, int *n, int v)
{
    int i = (*n)++;
    h[i] = v;
    while (i > 0 && h[(i - 1) / 2] > h[i]) {
        int p = (i - 1) / 2, t = h[p];
        h[p] = h[i];
        h[i] = t;
        i = p;
    }
}

static int heap_pop(int *h, int *n)
{
    int top = h[0];
    h[0] = h[--(*n)];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && h[l] < h[m]) m = l;
        if (r < *n && h[r] < h[m]) m = r;
        if (m == i) break;
        int t = h[m];
        h[m] = h[i];
        h[i] = t;
        i = m;
    }
    return top;
}

int graph_topo_sort(sfp_graph_t *g, sfp_error_t *err)
{
    int n = g->n_nodes, nv = g->n_values;
    if (n == 0) return 0;
    int rc = 0, count = 0, n_ready = 0, n_edges = 0;
    for (int i = 0; i < n; i++) n_edges += g->nodes[i].n_inputs;
    int *pending = calloc((size_t)n, sizeof(int));
    int *order = malloc(sizeof(int) * (size_t)n);
    int *heap = malloc(sizeof(int) * (size_t)n);
    int *new_id = malloc(sizeof(int) * (size_t)n);
    int *cons_start = calloc((size_t)nv + 1, sizeof(int)); /* CSR: value -> consumer nodes */
    int *cons = malloc(sizeof(int) * (size_t)(n_edges + 1));
    sfp_node_t *sorted = malloc(sizeof *sorted * (size_t)n);
    if (!pending || !order || !heap || !new_id || !cons_start || !cons || !sorted) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            if (v < 0) continue;
            cons_start[v + 1]++;
            if (g->values[v].producer >= 0) pending[i]++;
        }
    for (int v = 0; v < nv; v++) cons_start[v + 1] += cons_start[v];
    {
        int *fill = calloc((size_t)nv, sizeof(int));
        if (!fill) {
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
            goto out;
        }
        for (int i = 0; i < n; i++)
            for (int k = 0; k < g->nodes[i].n_inputs; k++) {
                int v = g->nodes[i].inputs[k];
                if (v >= 0) cons[cons_start[v] + fill[v]++] = i;
            }
        free(fill);
    }
    for (int i = 0; i < n; i++)
        if (pending[i] == 0) heap_push(heap, &n_ready, i);
    while (n_ready > 0) {
        int i = heap_pop(heap, &n_ready);
        order[count++] = i;
        for (int o = 0; o < g->nodes[i].n_outputs; o++) {
            int v = g->nodes[i].outputs[o];
            if (v < 0) continue;
            for (int c = cons_start[v]; c < cons_start[v + 1]; c++)
                if (--pending[cons[c]] == 0) heap_push(heap, &n_ready, cons[c]);
        }
    }
    if (count < n) {
        int culprit = 0;
        while (culprit < n && pending[culprit] == 0) culprit++;
        rc = sfp_errorf(err, SFP_EBADMODEL, "node '%s' (%s) is part of a cycle or waits on one",
                        sfp_q(g->nodes[culprit].name), sfp_q(g->nodes[culprit].op_type));
        goto out;
    }
    for (int i = 0; i < n; i++) {
        sorted[i] = g->nodes[order[i]];
        new_id[order[i]] = i;
    }
    memcpy(g->nodes, sorted, sizeof *sorted * (size_t)n);
    for (int v = 0; v < nv; v++)
        if (g->values[v].producer >= 0) g->values[v].producer = new_id[g->values[v].producer];
out:
    free(pending);
    free(order);
    free(heap);
    free(new_id);
    free(cons_start);
    free(cons);
    free(sorted);
    return rc;
}

/* ---- model ---- */
int model_create(sfp_model_t **out, sfp_error_t *err)
{
    sfp_model_t *m = calloc(1, sizeof *m);
    if (!m) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    m->ir_version = 8;
    *out = m;
    return 0;
}

void attr_clear(sfp_attr_t *a)
{
    free(a->name);
    free(a->s);
    free(a->floats);
    free(a->ints);
    if (a->strings)
        for (size_t i = 0; i < a->n; i++) free(a->strings[i]);
    free(a->strings);
    sfp_tensor_free(a->t);
    free(a->residue.data);
    memset(a, 0, sizeof *a);
}

void node_clear(sfp_node_t *n);
void node_clear(sfp_node_t *n)
{
    free(n->name);
    free(n->op_type);
    free(n->domain);
    free(n->inputs);
    free(n->outputs);
    for (int i = 0; i < n->n_attrs; i++) attr_clear(&n->attrs[i]);
    free(n->attrs);
    free(n->residue.data);
    memset(n, 0, sizeof *n);
}

void value_clear(sfp_value_t *v);
void value_clear(sfp_value_t *v)
{
    free(v->name);
    sfp_tensor_free(v->init);
    sfp_tensor_free(v->folded);
    for (int i = 0; i < SFP_MAX_DIMS; i++) free(v->decl.params[i]);
    free(v->decl_residue.data);
    free(v->init_residue.data);
    memset(v, 0, sizeof *v);
}

void sfp_model_free(sfp_model_t *m)
{
    if (!m) return;
    sfp_graph_t *g = &m->graph;
    for (int i = 0; i < g->n_values; i++) value_clear(&g->values[i]);
    for (int i = 0; i < g->n_nodes; i++) node_clear(&g->nodes[i]);
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    free(g->inits);
    free(g->name);
    free(g->residue.data);
    name_index_t *ix = g->name_index;
    if (ix) free(ix->slots);
    free(ix);
    for (int i = 0; i < m->n_opsets; i++) free(m->opsets[i].domain);
    free(m->opsets);
    for (int i = 0; i < m->n_meta; i++) {
        free(m->meta[i].key);
        free(m->meta[i].value);
    }
    free(m->meta);
    free(m->producer_name);
    free(m->producer_version);
    free(m->residue.data);
    free(m->path);
    free(m);
}

int64_t sfp_model_opset(const sfp_model_t *m, const char *domain)
{
    for (int i = 0; i < m->n_opsets; i++) {
        const char *d = m->opsets[i].domain ? m->opsets[i].domain : "";
        if (strcmp(d, domain) == 0 || (!*domain && strcmp(d, "ai.onnx") == 0))
            return m->opsets[i].version;
    }
    return 0;
}

const char *sfp_model_meta_get(const sfp_model_t *m, const char *key)
{
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta[i].key, key) == 0) return m->meta[i].value;
    return NULL;
}

int sfp_model_meta_set(sfp_model_t *m, const char *key, const char *value, sfp_error_t *err)
{
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta[i].key, key) == 0) {
            char *v = sfp_strdup(value);
            if (!v) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
            free(m->meta[i].value);
            m->meta[i].value = v;
            return 0;
        }
    sfp_kv_t *p = realloc(m->meta, sizeof *p * (size_t)(m->n_meta + 1));
    if (!p) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    m->meta = p;
    p[m->n_meta].key = sfp_strdup(key);
    p[m->n_meta].value = sfp_strdup(value);
    m->n_meta++;
    if (!p[m->n_meta - 1].key || !p[m->n_meta - 1].value)
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    return 0;
}

/* ---- compaction ---- */
int graph_remove_unused(sfp_graph_t *g, sfp_error_t *err)
{
    int nv = g->n_values, nn = g->n_nodes, rc = 0;
    int *uses = calloc((size_t)nv + 1, sizeof(int));
    char *dead = calloc((size_t)nn + 1, 1);
    int *new_id = malloc(sizeof(int) * (size_t)(nv + 1));
    int *new_node = malloc(sizeof(int) * (size_t)(nn + 1));
    if (!uses || !dead || !new_id || !new_node) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            if (g->nodes[i].inputs[k] >= 0) uses[g->nodes[i].inputs[k]]++;
    /* Remove dead nodes from the back: a node's removal can free its producers. */
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = nn - 1; i >= 0; i--) {
            const sfp_node_t *n = &g->nodes[i];
            if (dead[i]) continue;
            bool live = false;
            for (int o = 0; o < n->n_outputs; o++) {
                int v = n->outputs[o];
                if (v >= 0 && (uses[v] > 0 || (g->values[v].flags & SFP_VAL_OUTPUT))) live = true;
            }
            if (live) continue;
            dead[i] = 1;
            changed = 1;
            for (int k = 0; k < n->n_inputs; k++)
                if (n->inputs[k] >= 0) uses[n->inputs[k]]--;
        }
    }
    int kept_nodes = 0;
    for (int i = 0; i < nn; i++) {
        if (dead[i]) {
            node_clear(&g->nodes[i]);
            new_node[i] = -1;
            continue;
        }
        new_node[i] = kept_nodes;
        g->nodes[kept_nodes++] = g->nodes[i];
    }
    g->n_nodes = kept_nodes;
    int kept_values = 0;
    for (int v = 0; v < nv; v++) {
        sfp_value_t *val = &g->values[v];
        bool keep = uses[v] > 0 || (val->flags & (SFP_VAL_INPUT | SFP_VAL_OUTPUT)) ||
                    (val->producer >= 0 && new_node[val->producer] >= 0);
        if (!keep) {
            value_clear(val);
            new_id[v] = -1;
            continue;
        }
        new_id[v] = kept_values;
        if (val->producer >= 0) val->producer = new_node[val->producer];
        g->values[kept_values++] = *val;
    }
    g->n_values = kept_values;
    for (int i = 0; i < g->n_nodes; i++) {
        sfp_node_t *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0) n->inputs[k] = new_id[n->inputs[k]];
        for (int o = 0; o < n->n_outputs; o++)
            if (n->outputs[o] >= 0) n->outputs[o] = new_id[n->outputs[o]];
    }
    int *lists[3] = {g->inputs, g->outputs, g->inits};
    int *counts[3] = {&g->n_inputs, &g->n_outputs, &g->n_inits};
    for (int l = 0; l < 3; l++) {
        int k = 0;
        for (int i = 0; i < *counts[l]; i++)
            if (new_id[lists[l][i]] >= 0) lists[l][k++] = new_id[lists[l][i]];
        *counts[l] = k;
    }
    rc = index_rebuild(g, ((name_index_t *)g->name_index)->cap, err);
out:
    free(uses);
    free(dead);
    free(new_id);
    free(new_node);
    return rc;
}
