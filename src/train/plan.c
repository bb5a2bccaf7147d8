/* Execution plan: shape snapshot, step list, buffer placement by lifetime and
 * the run loop. Buffers are "slots" of an arena: a value takes the best-
 * fitting free slot when its producer runs and gives it back after its last
 * reader (outputs are placed before inputs are released, so a kernel never
 * reads and writes the same bytes). Training plans extend the time line with
 * the backward steps (autograd.c says when gradients are born and die and
 * which activations backward still reads). Offsets are fixed once all slots
 * are sized; the arena, the scratch, the constant copies, the saved state
 * and the parameter gradients are one allocation. */
#define _DEFAULT_SOURCE /* madvise's MADV_HUGEPAGE */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <sys/mman.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "train/plan_impl.h"
#include "util/threads.h"
#include "util/util.h"

#define ALIGN PLAN_ALIGN

/* ---- small helpers ---- */
bool plan_align_up(size_t n, size_t *out)
{
    if (n > SIZE_MAX - (ALIGN - 1)) return false;
    *out = (n + ALIGN - 1) / ALIGN * ALIGN;
    return true;
}

bool plan_add_size(size_t a, size_t b, size_t *out)
{
    if (a > SIZE_MAX - b) return false;
    *out = a + b;
    return true;
}

int plan_value_bytes(const sfp_plan_t *p, int id, size_t *out, sfp_error_t *err)
{
    const sfp_shape_t *s = &p->shapes[id];
    const char *name = p->m->graph.values[id].name;
    size_t es = sfp_dtype_size(s->dtype);
    int64_t numel = 0;
    if (es == 0)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "value '%s' has type %s, which the runtime cannot hold", sfp_q(name),
                          sfp_dtype_name(s->dtype));
    if (sfp_shape_numel(s->ndim, s->dims, &numel, err) < 0 || (uint64_t)numel > SIZE_MAX ||
        !sfp_mul_size((size_t)numel, es, out))
        return sfp_errorf(err, SFP_ENOMEM, "value '%s' is too large", sfp_q(name));
    return 0;
}

/* The data of a constant value as the graph holds it now (for prepare and
 * for the copy into the arena). */
static const sfp_tensor_t *const_tensor(const sfp_graph_t *g, int id)
{
    return graph_const(g, id);
}

/* Constant nodes keep their value in the node's attribute, which outlives any
 * re-inference: such values are borrowed instead of copied. */
static const void *constant_node_data(const sfp_graph_t *g, int id)
{
    const sfp_value_t *v = &g->values[id];
    if (v->producer < 0) return NULL;
    const sfp_node_t *n = &g->nodes[v->producer];
    if (!op_is(n, SFP_OP_CONSTANT) || n->n_attrs != 1 || n->attrs[0].type != SFP_ATTR_TENSOR) return NULL;
    return n->attrs[0].t->data;
}

/* ---- planning ---- */
int plan_snapshot_shapes(sfp_plan_t *p, sfp_error_t *err)
{
    const sfp_graph_t *g = &p->m->graph;
    p->n_values = g->n_values;
    size_t nv = (size_t)g->n_values + 1;
    p->shapes = calloc(nv, sizeof *p->shapes);
    p->kind = calloc(nv, sizeof *p->kind);
    p->data = calloc(nv, sizeof *p->data);
    p->offset = calloc(nv, sizeof *p->offset);
    p->copied = calloc(nv, sizeof *p->copied);
    if (!p->shapes || !p->kind || !p->data || !p->offset || !p->copied)
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int i = 0; i < g->n_values; i++) {
        const sfp_value_t *v = &g->values[i];
        p->shapes[i].dtype = v->dtype;
        p->shapes[i].ndim = v->ndim;
        if (v->ndim > 0) memcpy(p->shapes[i].dims, v->dims, sizeof(int64_t) * (size_t)v->ndim);
    }
    p->batch = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        const sfp_value_t *v = &g->values[g->inputs[i]];
        if (!v->init && v->batch0 && v->ndim > 0) {
            p->batch = v->dims[0];
            break;
        }
    }
    return 0;
}

/* Which nodes run: those with a needed output that is not a constant. A
 * value is needed when it is a graph output or read by a running node. */
static int choose_steps(sfp_plan_t *p, int *run_node, sfp_error_t *err)
{
    const sfp_graph_t *g = &p->m->graph;
    bool *needed = calloc((size_t)g->n_values + 1, sizeof *needed);
    if (!needed) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int i = 0; i < g->n_outputs; i++) needed[g->outputs[i]] = true;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const sfp_node_t *n = &g->nodes[i];
        run_node[i] = 0;
        for (int o = 0; o < n->n_outputs; o++) {
            int v = n->outputs[o];
            if (v >= 0 && needed[v] && !graph_const(g, v)) run_node[i] = 1;
        }
        if (!run_node[i]) continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0) needed[n->inputs[k]] = true;
    }
    /* kinds: inputs, constants, buffers */
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        if (!g->values[v].init) p->kind[v] = VK_INPUT;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        if (!run_node[i]) continue;
        const sfp_node_t *n = &g->nodes[i];
        for (int o = 0; o < n->n_outputs; o++)
            if (n->outputs[o] >= 0) p->kind[n->outputs[o]] = VK_BUFFER;
    }
    for (int v = 0; v < g->n_values; v++)
        if (needed[v] && p->kind[v] == VK_NONE && graph_const(g, v)) p->kind[v] = VK_CONST;
    free(needed);
    return 0;
}

/* Per node, what fuse_steps folded into it. */
typedef struct fuse_info {
    int at;         /* place in the order where its step runs (itself unless deferred) */
    int run;        /* node whose step runs at this node's place, or -1 */
    int out0;       /* value its step writes as output 0 (-1: its own) */
    int bn;         /* fused BatchNormalization node, or -1 */
    int residual;   /* value added, or -1 */
    bool relu;
} fuse_info_t;

/* The one running node reading v through one input slot, or -1 (none,
 * several, or v is a graph output). */
static int sole_reader(const sfp_graph_t *g, const int *run_node, const int *n_readers, int from, int v)
{
    if (n_readers[v] != 1) return -1;
    for (int i = from; i < g->n_nodes; i++) {
        if (!run_node[i]) continue;
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            if (g->nodes[i].inputs[k] == v) return i;
    }
    return -1;
}

static bool same_shape(const sfp_shape_t *a, const sfp_shape_t *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d]) return false;
    return true;
}

/* A node whose op takes fusion (run.fuse: Conv, BatchNormalization) absorbs
 * what follows it alone, in this order: BatchNormalization (inference
 * plans only: inference form, constant parameters), Add (same shapes, no
 * broadcast), Relu. Training plans fuse the Add and the Relu only, into
 * ops with run.fuse_train; their backward masks and routes the gradient
 * (exec_fused_backward), and the Relu's output stays for it. Plans with
 * SFP_PLAN_KEEP_ACTIVATIONS fuse nothing. Each
 * absorbed node must be the only reader of the value before it, which is not
 * a graph output; that value is then never made. Absorbed nodes stop
 * running (run_node 0). When the Add's other operand is computed after the
 * head (a shortcut branch exported after the main one), the fused step runs
 * at the place of its last absorbed node instead, where every input it
 * reads exists and nothing has read its output yet. The weights are not
 * touched: the fused step reads the BN parameters at every run, so plans
 * that read weights in place (validation during training) stay right. */
static void fuse_steps(sfp_plan_t *p, int *run_node, int *n_readers, fuse_info_t *info)
{
    const sfp_graph_t *g = &p->m->graph;
    for (int i = 0; i < g->n_nodes; i++) info[i] = (fuse_info_t){i, run_node[i] ? i : -1, -1, -1, -1, false};
    if (p->flags & SFP_PLAN_KEEP_ACTIVATIONS) return;
    const bool train = (p->flags & SFP_PLAN_TRAIN) != 0;
    for (int v = 0; v < g->n_values; v++) n_readers[v] = 0;
    for (int i = 0; i < g->n_outputs; i++) n_readers[g->outputs[i]] += 2; /* never "sole" */
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; run_node[i] && k < g->nodes[i].n_inputs; k++)
            if (g->nodes[i].inputs[k] >= 0) n_readers[g->nodes[i].inputs[k]]++;
    for (int i = 0; i < g->n_nodes; i++) {
        const sfp_node_t *head = &g->nodes[i];
        const sfp_op_def_t *def = op_find(head->op_type, head->domain);
        if (!run_node[i] || !def || !(train ? def->run.fuse_train : def->run.fuse) || head->n_outputs != 1 ||
            head->outputs[0] < 0)
            continue;
        int v = head->outputs[0], r = sole_reader(g, run_node, n_readers, i + 1, v), last = i;
        bool defer = false;
        if (!train && r >= 0 && op_is(&g->nodes[r], SFP_OP_BATCH_NORMALIZATION) && g->nodes[r].n_inputs == 5 &&
            g->nodes[r].inputs[0] == v && g->nodes[r].n_outputs >= 1 && g->nodes[r].outputs[0] >= 0) {
            bool consts = true;
            for (int k = 1; k < 5; k++) {
                int c = g->nodes[r].inputs[k];
                consts = consts && c >= 0 && p->kind[c] == VK_CONST && p->shapes[c].dtype == SFP_DT_FLOAT;
            }
            if (consts) {
                info[i].bn = r;
                last = r;
                run_node[r] = 0;
                p->kind[v] = VK_NONE;
                v = g->nodes[r].outputs[0];
                r = sole_reader(g, run_node, n_readers, r + 1, v);
            }
        }
        if (r >= 0 && op_is(&g->nodes[r], SFP_OP_ADD) && g->nodes[r].n_inputs == 2 && g->nodes[r].outputs[0] >= 0) {
            const sfp_node_t *add = &g->nodes[r];
            int other = add->inputs[0] == v ? add->inputs[1] : add->inputs[0];
            int producer = other >= 0 ? g->values[other].producer : -1;
            if (other >= 0 && other != v && p->kind[other] != VK_NONE &&
                same_shape(&p->shapes[other], &p->shapes[v]) && same_shape(&p->shapes[add->outputs[0]], &p->shapes[v])) {
                info[i].residual = other;
                defer = p->kind[other] == VK_BUFFER && producer > i;
                last = r;
                run_node[r] = 0;
                p->kind[v] = VK_NONE;
                v = add->outputs[0];
                r = sole_reader(g, run_node, n_readers, r + 1, v);
            }
        }
        if (r >= 0 && op_is(&g->nodes[r], SFP_OP_RELU) && g->nodes[r].n_outputs == 1 && g->nodes[r].outputs[0] >= 0 &&
            same_shape(&p->shapes[g->nodes[r].outputs[0]], &p->shapes[v])) {
            info[i].relu = true;
            last = r;
            run_node[r] = 0;
            p->kind[v] = VK_NONE;
            v = g->nodes[r].outputs[0];
        }
        if (v != head->outputs[0]) info[i].out0 = v;
        if (defer) info[i].at = last;
    }
    for (int i = 0; i < g->n_nodes; i++) info[i].run = -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (run_node[i]) info[info[i].at].run = i;
}

static int build_steps(sfp_plan_t *p, const int *run_node, const fuse_info_t *info, sfp_error_t *err)
{
    const sfp_graph_t *g = &p->m->graph;
    int n_steps = 0;
    size_t n_in = 0, n_out = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (run_node[i]) {
            n_steps++;
            n_in += (size_t)g->nodes[i].n_inputs;
            n_out += (size_t)g->nodes[i].n_outputs;
        }
    p->steps = calloc((size_t)n_steps + 1, sizeof *p->steps);
    p->shape_ptrs = calloc(n_in + n_out + 1, sizeof *p->shape_ptrs);
    p->in_ptrs = calloc(n_in + 1, sizeof *p->in_ptrs);
    p->out_ptrs = calloc(n_out + 1, sizeof *p->out_ptrs);
    if (!p->steps || !p->shape_ptrs || !p->in_ptrs || !p->out_ptrs) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    size_t si = 0, ii = 0, oi = 0;
    int64_t opset = sfp_model_opset(p->m, "");
    for (int at = 0; at < g->n_nodes; at++) {
        const int i = info[at].run;
        if (i < 0) continue;
        const sfp_node_t *n = &g->nodes[i];
        plan_step_t *st = &p->steps[p->n_steps];
        st->node = i;
        st->def = op_find(n->op_type, n->domain);
        if (!st->def)
            return sfp_errorf(err, SFP_EUNSUPPORTED, "node '%s' (%s): operator not supported", sfp_q(n->name),
                              sfp_q(n->op_type));
        if (!st->def->run.forward)
            return sfp_errorf(err, SFP_EUNSUPPORTED, "node '%s' (%s): the runtime cannot execute this operator",
                              sfp_q(n->name), sfp_q(n->op_type));
        st->in_shape = p->shape_ptrs + si;
        si += (size_t)n->n_inputs;
        st->out_shape = p->shape_ptrs + si;
        si += (size_t)n->n_outputs;
        st->in = p->in_ptrs + ii;
        ii += (size_t)n->n_inputs;
        st->out = p->out_ptrs + oi;
        oi += (size_t)n->n_outputs;
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0) continue;
            if (p->kind[v] == VK_NONE || (p->kind[v] == VK_BUFFER && g->values[v].producer >= i))
                return sfp_errorf(err, SFP_EBADMODEL, "node '%s' (%s): input '%s' is not available when the node runs",
                                  sfp_q(n->name), sfp_q(n->op_type), sfp_q(g->values[v].name));
            st->in_shape[k] = &p->shapes[v];
        }
        for (int o = 0; o < n->n_outputs; o++)
            if (n->outputs[o] >= 0) st->out_shape[o] = &p->shapes[n->outputs[o]];
        st->x.g = g;
        st->x.node = n;
        st->x.opset = opset;
        st->x.in_shape = st->in_shape;
        st->x.out_shape = st->out_shape;
        st->x.in = st->in;
        st->x.out = st->out;
        st->out0 = n->n_outputs > 0 ? n->outputs[0] : -1;
        st->residual = info[i].residual;
        if (info[i].out0 >= 0) {
            const sfp_node_t *bn = info[i].bn >= 0 ? &g->nodes[info[i].bn] : NULL;
            st->out0 = info[i].out0;
            st->fusion.bn = bn;
            st->fusion.relu = info[i].relu;
            st->x.fused = &st->fusion;
        }
        p->n_steps++;
    }
    return 0;
}

/* Each step's prepare: refusals and the scratch it needs (the maximum is kept). */
static int prepare_steps(sfp_plan_t *p, sfp_error_t *err)
{
    const sfp_graph_t *g = &p->m->graph;
    p->scratch_bytes = 0;
    for (int s = 0; s < p->n_steps; s++) {
        plan_step_t *st = &p->steps[s];
        const sfp_node_t *n = st->x.node;
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            const sfp_tensor_t *t = v >= 0 && p->kind[v] == VK_CONST ? const_tensor(g, v) : NULL;
            st->in[k] = t ? t->data : NULL;
        }
        for (int o = 0; o < n->n_outputs; o++) st->out[o] = NULL;
        for (int o = 0; o < n->n_outputs; o++) {
            int rc, v = n->outputs[o];
            size_t bytes = 0;
            if (v >= 0 && (rc = plan_value_bytes(p, v, &bytes, err)) < 0)
                return sfp_error_prefix(err, "node '%s' (%s)", sfp_q(n->name), sfp_q(n->op_type));
        }
        size_t need = 0;
        if (st->def->run.prepare) {
            int rc = st->def->run.prepare(&st->x, &need, err);
            if (rc < 0) return rc;
        }
        if (need > p->scratch_bytes) p->scratch_bytes = need;
        if ((p->flags & SFP_PLAN_CONST_WEIGHTS) && !(p->flags & SFP_PLAN_TRAIN) && st->def->run.persist_bytes)
            st->x.persist_bytes = st->def->run.persist_bytes(&st->x);
    }
    return 0;
}

/* Each step's persist memory after end (SFP_PLAN_CONST_WEIGHTS). */
static int place_persist(sfp_plan_t *p, size_t *end, sfp_error_t *err)
{
    for (int s = 0; s < p->n_steps; s++) {
        plan_step_t *st = &p->steps[s];
        if (!st->x.persist_bytes) continue;
        if (!plan_align_up(*end, &st->persist_offset) || !plan_add_size(st->persist_offset, st->x.persist_bytes, end))
            return sfp_errorf(err, SFP_ENOMEM, "the plan does not fit in memory");
    }
    return 0;
}

typedef struct slot {
    size_t bytes;
    bool busy;
} slot_t;

/* Best fit among free slots; else the largest free one grows; else a new one. */
static int take_slot(slot_t *slots, int *n_slots, size_t need)
{
    int best = -1, largest = -1;
    for (int i = 0; i < *n_slots; i++) {
        if (slots[i].busy) continue;
        if (slots[i].bytes >= need && (best < 0 || slots[i].bytes < slots[best].bytes)) best = i;
        if (largest < 0 || slots[i].bytes > slots[largest].bytes) largest = i;
    }
    int at = best >= 0 ? best : largest >= 0 ? largest : (*n_slots)++;
    if (slots[at].bytes < need) slots[at].bytes = need;
    slots[at].busy = true;
    return at;
}

/* Birth and death time of every forward buffer (index = value id): born
 * when its producer runs, dead after its last reader (at once when nothing
 * reads it); graph outputs and SFP_PLAN_KEEP_ACTIVATIONS never die. */
static void forward_lifetimes(const sfp_plan_t *p, int32_t *birth, int32_t *death)
{
    const sfp_graph_t *g = &p->m->graph;
    bool keep = (p->flags & SFP_PLAN_KEEP_ACTIVATIONS) != 0;
    for (int v = 0; v < g->n_values; v++) birth[v] = death[v] = -1;
    for (int s = 0; s < p->n_steps; s++) {
        const sfp_node_t *n = p->steps[s].x.node;
        for (int o = 0; o < n->n_outputs; o++) {
            int v = o == 0 ? p->steps[s].out0 : n->outputs[o];
            if (v >= 0) birth[v] = death[v] = s;
        }
    }
    for (int s = 0; s < p->n_steps; s++) {
        const sfp_node_t *n = p->steps[s].x.node;
        for (int k = 0; k <= n->n_inputs; k++) {
            int v = k < n->n_inputs ? n->inputs[k] : p->steps[s].residual;
            if (v >= 0 && birth[v] >= 0 && death[v] < s) death[v] = s;
        }
    }
    for (int v = 0; v < g->n_values; v++)
        if (birth[v] >= 0 && keep) death[v] = PLAN_NEVER_FREED;
    for (int i = 0; i < g->n_outputs; i++)
        if (birth[g->outputs[i]] >= 0) death[g->outputs[i]] = PLAN_NEVER_FREED;
}

/* Buckets of buffer indices by time (a singly linked list per time). */
typedef struct time_lists {
    int32_t *head;      /* per time: first buffer, -1 */
    int32_t *next;      /* per buffer */
} time_lists_t;

static void lists_add(time_lists_t *l, int32_t t, int32_t b)
{
    l->next[b] = l->head[t];
    l->head[t] = b;
}

/* Slots by lifetime: at each time, buffers born then take a slot (best fit),
 * then buffers dying then give theirs back. Buffers are placed in index
 * order within a time, so the result depends only on the graph. */
static int place_buffers(sfp_plan_t *p, size_t *buffers_bytes, sfp_error_t *err)
{
    const sfp_graph_t *g = &p->m->graph;
    const bool train = (p->flags & SFP_PLAN_TRAIN) != 0;
    const size_t n_buf = (size_t)g->n_values * (train ? 2 : 1);
    const int32_t n_times = 2 * p->n_steps + 1;
    int rc = 0, n_slots = 0;
    int32_t *birth = malloc(sizeof(int32_t) * (n_buf + 1));
    int32_t *death = malloc(sizeof(int32_t) * (n_buf + 1));
    int *slot_of = malloc(sizeof(int) * (n_buf + 1));
    slot_t *slots = calloc(n_buf + 1, sizeof *slots);
    size_t *slot_offset = calloc(n_buf + 1, sizeof *slot_offset);
    time_lists_t born = {malloc(sizeof(int32_t) * ((size_t)n_times + 1)), malloc(sizeof(int32_t) * (n_buf + 1))};
    time_lists_t dies = {malloc(sizeof(int32_t) * ((size_t)n_times + 1)), malloc(sizeof(int32_t) * (n_buf + 1))};
    if (!birth || !death || !slot_of || !slots || !slot_offset || !born.head || !born.next || !dies.head ||
        !dies.next) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto out;
    }
    forward_lifetimes(p, birth, death);
    if (train) autograd_lifetimes(p, birth, death);
    for (int32_t t = 0; t < n_times; t++) born.head[t] = dies.head[t] = -1;
    /* listed backwards so each list runs in increasing buffer order */
    for (int32_t b = (int32_t)n_buf - 1; b >= 0; b--) {
        slot_of[b] = -1;
        if (birth[b] < 0) continue;
        lists_add(&born, birth[b], b);
        if (death[b] != PLAN_NEVER_FREED) lists_add(&dies, death[b] > birth[b] ? death[b] : birth[b], b);
    }
    for (int32_t t = 0; t < n_times; t++) {
        for (int32_t b = born.head[t]; b >= 0; b = born.next[b]) {
            int v = b % g->n_values;
            size_t bytes = 0, need = 0;
            if ((rc = plan_value_bytes(p, v, &bytes, err)) < 0) goto out;
            if (b >= g->n_values) bytes = bytes / sfp_dtype_size(p->shapes[v].dtype) * sizeof(float);
            if (!plan_align_up(bytes, &need)) {
                rc = sfp_errorf(err, SFP_ENOMEM, "value '%s' is too large", sfp_q(g->values[v].name));
                goto out;
            }
            slot_of[b] = take_slot(slots, &n_slots, need);
        }
        for (int32_t b = dies.head[t]; b >= 0; b = dies.next[b]) slots[slot_of[b]].busy = false;
    }
    size_t total = 0;
    for (int i = 0; i < n_slots; i++) {
        slot_offset[i] = total;
        if (!plan_add_size(total, slots[i].bytes, &total)) {
            rc = sfp_errorf(err, SFP_ENOMEM, "the activations of this plan do not fit in memory");
            goto out;
        }
    }
    for (int v = 0; v < g->n_values; v++) {
        if (slot_of[v] >= 0) p->offset[v] = slot_offset[slot_of[v]];
        if (train && slot_of[g->n_values + v] >= 0) p->grad_offset[v] = slot_offset[slot_of[g->n_values + v]];
    }
    *buffers_bytes = total;
out:
    free(birth);
    free(death);
    free(slot_of);
    free(slots);
    free(slot_offset);
    free(born.head);
    free(born.next);
    free(dies.head);
    free(dies.next);
    return rc;
}

/* Folded constants (other than Constant nodes' values) are copied: another
 * plan's inference replaces the graph's folded tensors. */
static int place_constants(sfp_plan_t *p, size_t start, size_t *end, sfp_error_t *err)
{
    const sfp_graph_t *g = &p->m->graph;
    size_t at = start;
    for (int v = 0; v < g->n_values; v++) {
        if (p->kind[v] != VK_CONST || g->values[v].init || constant_node_data(g, v)) continue;
        size_t bytes = const_tensor(g, v)->nbytes, need = 0;
        if (!plan_align_up(bytes, &need) || !plan_add_size(at, need, &at))
            return sfp_errorf(err, SFP_ENOMEM, "constant '%s' is too large", sfp_q(g->values[v].name));
        p->offset[v] = at - need;
        p->copied[v] = true;
    }
    *end = at;
    return 0;
}

/* The arena. Large ones are 2 MiB aligned and offered to transparent huge
 * pages (Linux's madvise mode): the passes over activations and gradients
 * stream through hundreds of MB, and 4 KiB pages cost TLB misses. */
#define HUGE_PAGE ((size_t)2 << 20)

static uint8_t *alloc_arena(size_t bytes)
{
    if (bytes < 4 * HUGE_PAGE) return aligned_alloc(ALIGN, bytes ? bytes : ALIGN);
    size_t rounded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    if (rounded < bytes) return NULL;
    uint8_t *arena = aligned_alloc(HUGE_PAGE, rounded);
#ifdef MADV_HUGEPAGE
    if (arena) madvise(arena, rounded, MADV_HUGEPAGE); /* a hint: failure changes nothing */
#endif
    return arena;
}

static int allocate(sfp_plan_t *p, sfp_error_t *err)
{
    const sfp_graph_t *g = &p->m->graph;
    size_t buffers = 0, scratch = 0, end = 0;
    int rc = place_buffers(p, &buffers, err);
    if (rc < 0) return rc;
    if (!plan_align_up(buffers, &p->scratch_offset) || !plan_align_up(p->scratch_bytes, &scratch) ||
        !plan_add_size(p->scratch_offset, scratch, &end))
        return sfp_errorf(err, SFP_ENOMEM, "the plan does not fit in memory");
    if ((rc = place_constants(p, end, &end, err)) < 0) return rc;
    if ((rc = place_persist(p, &end, err)) < 0) return rc;
    if ((p->flags & SFP_PLAN_TRAIN) && (rc = autograd_place_persistent(p, &end, err)) < 0) return rc;
    p->arena_bytes = end;
    p->arena = alloc_arena(end);
    if (!p->arena)
        return sfp_errorf(err, SFP_ENOMEM, "out of memory allocating %zu bytes for the plan's activations", end);
    for (int v = 0; v < g->n_values; v++) {
        if (p->kind[v] == VK_BUFFER || p->copied[v]) p->data[v] = p->arena + p->offset[v];
        if (p->copied[v]) {
            const sfp_tensor_t *t = const_tensor(g, v);
            if (t->nbytes) memcpy(p->data[v], t->data, t->nbytes);
        } else if (p->kind[v] == VK_CONST) {
            const void *d = g->values[v].init ? g->values[v].init->data : constant_node_data(g, v);
            p->data[v] = (void *)d; /* read-only: only ever passed as a const input */
        }
    }
    return 0;
}

static int list_io(sfp_plan_t *p, sfp_error_t *err)
{
    const sfp_graph_t *g = &p->m->graph;
    p->input_ids = calloc((size_t)g->n_inputs + 1, sizeof(int));
    p->output_ids = calloc((size_t)g->n_outputs + 1, sizeof(int));
    if (!p->input_ids || !p->output_ids) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int i = 0; i < g->n_inputs; i++)
        if (!g->values[g->inputs[i]].init) p->input_ids[p->n_inputs++] = g->inputs[i];
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        if (p->kind[v] == VK_NONE)
            return sfp_errorf(err, SFP_EBADMODEL, "graph output '%s' is not computed by anything",
                              sfp_q(g->values[v].name));
        p->output_ids[p->n_outputs++] = v;
    }
    return 0;
}

int plan_create(sfp_model_t *m, int64_t batch, unsigned flags, int threads, sfp_plan_t **out, sfp_error_t *err)
{
    sfp_graph_t *g = &m->graph;
    int64_t old_batch = g->batch;
    int rc = plan_split_create(m, batch, flags, threads, out, err);
    if (rc <= 0) return rc;
    int *run_node = NULL, *n_readers = NULL;
    fuse_info_t *fuse = NULL;
    sfp_plan_t *p = calloc(1, sizeof *p);
    if (!p) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    p->m = m;
    if (flags & SFP_PLAN_INPUT_GRADS) flags |= SFP_PLAN_TRAIN;
    p->flags = flags;
    p->training = (flags & SFP_PLAN_TRAIN) != 0;
    if ((rc = graph_topo_sort(g, err)) < 0) goto fail;
    if ((rc = model_infer_shapes(m, batch > 0 ? batch : 0, err)) < 0) goto fail;
    if ((rc = plan_snapshot_shapes(p, err)) < 0) goto fail;
    run_node = calloc((size_t)g->n_nodes + 1, sizeof *run_node);
    if (!run_node) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = choose_steps(p, run_node, err)) < 0) goto fail;
    fuse = malloc(sizeof *fuse * ((size_t)g->n_nodes + 1));
    n_readers = malloc(sizeof *n_readers * ((size_t)g->n_values + 1));
    if (!fuse || !n_readers) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto fail;
    }
    fuse_steps(p, run_node, n_readers, fuse);
    if ((rc = build_steps(p, run_node, fuse, err)) < 0) goto fail;
    if ((rc = list_io(p, err)) < 0) goto fail;
    if ((rc = sfp_threads_create(threads, &p->threads, err)) < 0) goto fail;
    p->n_threads = sfp_threads_count(p->threads);
    for (int s = 0; s < p->n_steps; s++) p->steps[s].x.threads = p->threads;
    if ((rc = prepare_steps(p, err)) < 0) goto fail;
    if ((flags & SFP_PLAN_TRAIN) && (rc = autograd_analyse(p, err)) < 0) goto fail;
    if ((rc = allocate(p, err)) < 0) goto fail;
    for (int s = 0; s < p->n_steps; s++) {
        plan_step_t *st = &p->steps[s];
        st->x.scratch = p->arena + p->scratch_offset;
        st->x.scratch_bytes = p->scratch_bytes;
        if (st->x.persist_bytes) {
            st->x.persist = p->arena + st->persist_offset;
            memset(st->x.persist, 0, st->x.persist_bytes);
        }
        /* the plan's own view of the BN parameters: an initializer in place,
         * a folded value (Identity of an initializer, Constant) as copied
         * into the arena, never the graph's folded tensor, which the next
         * shape inference frees */
        for (int k = 0; st->fusion.bn && k < 4; k++) st->fusion.bn_param[k] = p->data[st->fusion.bn->inputs[1 + k]];
    }
    if (flags & SFP_PLAN_TRAIN) autograd_bind(p);
    free(run_node);
    free(fuse);
    free(n_readers);
    run_node = n_readers = NULL;
    fuse = NULL;
    if (old_batch > 0 && old_batch != g->batch && (rc = model_infer_shapes(m, old_batch, err)) < 0) goto fail;
    *out = p;
    return 0;
fail:
    free(run_node);
    free(fuse);
    free(n_readers);
    plan_free(p);
    if (old_batch > 0 && g->batch != old_batch) model_infer_shapes(m, old_batch, NULL); /* best effort */
    return rc;
}

void plan_free(sfp_plan_t *p)
{
    if (!p) return;
    for (int i = 0; p->sub && i < p->n_sub; i++) plan_free(p->sub[i]);
    free(p->sub);
    for (int o = 0; p->out_bufs && o < p->n_outputs; o++) free(p->out_bufs[o]);
    free(p->out_bufs);
    free(p->split_in);
    free(p->split_err);
    free(p->split_rc);
    autograd_free(p);
    sfp_threads_free(p->threads);
    free(p->arena);
    free(p->steps);
    free(p->shape_ptrs);
    free(p->in_ptrs);
    free(p->out_ptrs);
    free(p->input_ids);
    free(p->output_ids);
    free(p->shapes);
    free(p->kind);
    free(p->data);
    free(p->offset);
    free(p->copied);
    free(p);
}

int plan_run(sfp_plan_t *p, const void *const *inputs, sfp_error_t *err)
{
    bool profile = (p->flags & SFP_PLAN_PROFILE) != 0;
    for (int i = 0; i < p->n_inputs; i++) {
        if (!inputs || !inputs[i])
            return sfp_errorf(err, SFP_EUSAGE, "plan input %d ('%s') has no data", i,
                              sfp_q(p->m->graph.values[p->input_ids[i]].name));
        p->data[p->input_ids[i]] = (void *)inputs[i]; /* read-only: only passed as const inputs */
    }
    if (p->n_sub) return plan_split_run(p, err);
    p->backward_ready = false;
    for (int s = 0; s < p->n_steps; s++) {
        plan_step_t *st = &p->steps[s];
        const sfp_node_t *n = st->x.node;
        for (int k = 0; k < n->n_inputs; k++) st->in[k] = n->inputs[k] >= 0 ? p->data[n->inputs[k]] : NULL;
        for (int o = 0; o < n->n_outputs; o++) {
            int v = o == 0 ? st->out0 : n->outputs[o];
            st->out[o] = v >= 0 ? p->data[v] : NULL;
        }
        if (st->residual >= 0) st->fusion.residual = p->data[st->residual];
        st->x.training = p->training;
        st->x.share = p->shared && p->training ? &p->share : NULL;
        double start = profile ? sfp_now_seconds() : 0.0;
        int rc = st->def->run.forward(&st->x, err);
        if (rc < 0) return rc;
        if (profile) st->seconds += sfp_now_seconds() - start;
    }
    p->ran_training = p->training;
    p->backward_ready = (p->flags & SFP_PLAN_TRAIN) != 0;
    return 0;
}

void plan_share_batch(sfp_plan_t *p, const sfp_batch_share_t *share)
{
    p->shared = share != NULL;
    if (share) p->share = *share;
}

/* ---- accessors ---- */
int plan_n_inputs(const sfp_plan_t *p) { return p->n_inputs; }
int plan_input_value(const sfp_plan_t *p, int i) { return p->input_ids[i]; }
const sfp_shape_t *plan_input_shape(const sfp_plan_t *p, int i) { return &p->shapes[p->input_ids[i]]; }
int plan_n_outputs(const sfp_plan_t *p) { return p->n_outputs; }
int plan_output_value(const sfp_plan_t *p, int i) { return p->output_ids[i]; }
const sfp_shape_t *plan_output_shape(const sfp_plan_t *p, int i) { return &p->shapes[p->output_ids[i]]; }
const void *plan_output(const sfp_plan_t *p, int i) { return p->data[p->output_ids[i]]; }
int64_t plan_batch(const sfp_plan_t *p) { return p->batch; }
int plan_threads(const sfp_plan_t *p) { return p->n_threads; }
int plan_slices(const sfp_plan_t *p) { return p->n_sub ? p->n_sub : 1; }
/* a split plan answers for its slices: the steps are theirs (all the same) */
int plan_n_steps(const sfp_plan_t *p) { return p->n_sub ? plan_n_steps(p->sub[0]) : p->n_steps; }
int plan_step_node(const sfp_plan_t *p, int step) { return p->n_sub ? plan_step_node(p->sub[0], step) : p->steps[step].node; }
double plan_step_seconds(const sfp_plan_t *p, int step) { return p->n_sub ? 0.0 : p->steps[step].seconds; }

size_t plan_arena_bytes(const sfp_plan_t *p)
{
    size_t n = p->arena_bytes;
    for (int i = 0; i < p->n_sub; i++) n += plan_arena_bytes(p->sub[i]);
    return n;
}

const sfp_shape_t *plan_value_shape(const sfp_plan_t *p, int value_id)
{
    return value_id >= 0 && value_id < p->n_values ? &p->shapes[value_id] : NULL;
}

const void *plan_value_data(const sfp_plan_t *p, int value_id)
{
    return value_id >= 0 && value_id < p->n_values ? p->data[value_id] : NULL;
}
