/* Reverse mode over an execution plan. A value gets a gradient when it
 * depends on a trainable parameter (or is a float plan input, with
 * SFP_PLAN_INPUT_GRADS) and plan output 0 depends on it through float
 * values; a step runs backward when one of its outputs and one of its inputs
 * have gradients. Gradients accumulate (+=): an activation's gradient is
 * zeroed just before the first backward step that writes it, or written
 * whole by that step when its op can (run.overwrite_din, din_fresh);
 * output 0's is seeded with dloss; parameters' are zeroed by plan_zero_grad
 * only. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "train/plan_impl.h"
#include "util/util.h"

/* din entries prepare_backward sees for the wanted gradients: not NULL, never
 * dereferenced. */
static float wanted_marker;

static bool is_float(const sfp_plan_t *p, int v)
{
    return p->shapes[v].dtype == SFP_DT_FLOAT;
}

static sfp_param_kind_t param_kind_of(const sfp_node_t *n, int input)
{
    if (op_has(n, SFP_OPF_NORM)) return SFP_PARAM_NORM;
    return input >= 2 ? SFP_PARAM_BIAS : SFP_PARAM_WEIGHT;
}

/* Initializers at a param_inputs position of a step, in initializer order. */
static int find_params(sfp_plan_t *p, sfp_error_t *err)
{
    const sfp_graph_t *g = &p->m->graph;
    sfp_param_kind_t *kind = calloc((size_t)g->n_values + 1, sizeof *kind);
    bool *is_param = calloc((size_t)g->n_values + 1, sizeof *is_param);
    if (!kind || !is_param) {
        free(kind);
        free(is_param);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    int count = 0;
    for (int s = 0; s < p->n_steps; s++) {
        const plan_step_t *st = &p->steps[s];
        const sfp_node_t *n = st->x.node;
        for (int k = 0; k < n->n_inputs && k < 32; k++) {
            int v = n->inputs[k];
            if (v < 0 || !(st->def->param_inputs >> k & 1u) || !g->values[v].init || !is_float(p, v) || is_param[v])
                continue;
            is_param[v] = true;
            kind[v] = param_kind_of(n, k);
            count++;
        }
    }
    p->params = calloc((size_t)count + 1, sizeof *p->params);
    if (!p->params) {
        free(kind);
        free(is_param);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    for (int i = 0; i < g->n_inits; i++) {
        int v = g->inits[i];
        if (!is_param[v] || p->param_index[v] >= 0) continue;
        sfp_param_t *prm = &p->params[p->n_params];
        prm->value = v;
        prm->name = g->values[v].name;
        prm->kind = kind[v];
        prm->numel = sfp_tensor_numel(g->values[v].init);
        p->param_index[v] = p->n_params++;
    }
    free(kind);
    free(is_param);
    return 0;
}

/* has_grad, grad_birth and each step's backward flag. */
static int find_gradients(sfp_plan_t *p, sfp_error_t *err)
{
    const sfp_graph_t *g = &p->m->graph;
    bool *depends = calloc((size_t)g->n_values + 1, sizeof *depends);
    bool *reaches = calloc((size_t)g->n_values + 1, sizeof *reaches);
    if (!depends || !reaches) {
        free(depends);
        free(reaches);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    for (int v = 0; v < g->n_values; v++) {
        depends[v] = p->param_index[v] >= 0 ||
                     ((p->flags & SFP_PLAN_INPUT_GRADS) && p->kind[v] == VK_INPUT && is_float(p, v));
        p->grad_birth[v] = -1;
    }
    for (int s = 0; s < p->n_steps; s++) {
        const plan_step_t *st = &p->steps[s];
        bool any = false;
        for (int k = 0; k < step_n_inputs(st); k++) any = any || (step_input(st, k) >= 0 && depends[step_input(st, k)]);
        for (int o = 0; any && o < st->x.node->n_outputs; o++)
            if (step_output(st, o) >= 0 && is_float(p, step_output(st, o))) depends[step_output(st, o)] = true;
    }
    if (p->n_outputs > 0) reaches[p->output_ids[0]] = true;
    for (int s = p->n_steps - 1; s >= 0; s--) {
        const plan_step_t *st = &p->steps[s];
        bool any = false;
        for (int o = 0; o < st->x.node->n_outputs; o++) {
            int v = step_output(st, o);
            any = any || (v >= 0 && reaches[v] && depends[v] && is_float(p, v));
        }
        for (int k = 0; any && k < step_n_inputs(st); k++)
            if (step_input(st, k) >= 0) reaches[step_input(st, k)] = true;
    }
    for (int v = 0; v < g->n_values; v++) p->has_grad[v] = depends[v] && reaches[v] && is_float(p, v);
    free(depends);
    free(reaches);
    for (int s = p->n_steps - 1; s >= 0; s--) {
        plan_step_t *st = &p->steps[s];
        const sfp_node_t *n = st->x.node;
        bool out_grad = false, in_grad = false;
        for (int o = 0; o < n->n_outputs; o++) out_grad = out_grad || (step_output(st, o) >= 0 && p->has_grad[step_output(st, o)]);
        for (int k = 0; k < step_n_inputs(st); k++) in_grad = in_grad || (step_input(st, k) >= 0 && p->has_grad[step_input(st, k)]);
        st->backward = out_grad && in_grad;
        if (!st->backward) continue;
        if (!st->def->run.backward)
            return sfp_errorf(err, SFP_EUNSUPPORTED,
                              "node '%s' (%s): training cannot pass gradients through this operator",
                              sfp_q(n->name), sfp_q(n->op_type));
        for (int k = 0; k < step_n_inputs(st); k++) {
            int v = step_input(st, k);
            /* the last step in forward order is the first backward writer */
            if (v >= 0 && p->has_grad[v] && p->grad_birth[v] < 0) p->grad_birth[v] = s;
        }
    }
    if (p->n_outputs > 0) p->grad_birth[p->output_ids[0]] = -1; /* seeded with dloss */
    return 0;
}

/* The steps' dout/din/in_init arrays and, for the steps that run backward,
 * prepare_backward (saved state and backward scratch). */
static int prepare_backward_steps(sfp_plan_t *p, sfp_error_t *err)
{
    size_t n_in = 0, n_out = 0;
    for (int s = 0; s < p->n_steps; s++) {
        n_in += (size_t)step_n_inputs(&p->steps[s]);
        n_out += (size_t)p->steps[s].x.node->n_outputs;
    }
    p->in_init_ptrs = calloc(n_in + 1, sizeof *p->in_init_ptrs);
    p->din_ptrs = calloc(n_in + 1, sizeof *p->din_ptrs);
    p->dout_ptrs = calloc(n_out + 1, sizeof *p->dout_ptrs);
    if (!p->in_init_ptrs || !p->din_ptrs || !p->dout_ptrs) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    size_t ii = 0, oi = 0, saved_total = 0;
    for (int s = 0; s < p->n_steps; s++) {
        plan_step_t *st = &p->steps[s];
        const sfp_node_t *n = st->x.node;
        st->in_init = p->in_init_ptrs + ii;
        st->din = p->din_ptrs + ii;
        ii += (size_t)step_n_inputs(st);
        st->dout = p->dout_ptrs + oi;
        oi += (size_t)n->n_outputs;
        st->x.in_init = st->in_init;
        st->x.din = st->din;
        st->x.dout = st->dout;
        for (int k = 0; k < step_n_inputs(st); k++)
            st->din[k] = st->backward && step_input(st, k) >= 0 && p->has_grad[step_input(st, k)] ? &wanted_marker : NULL;
        for (int o = 0; o < n->n_outputs; o++)
            st->dout[o] = step_output(st, o) >= 0 && p->has_grad[step_output(st, o)] ? &wanted_marker : NULL;
        if (!st->backward || !st->def->run.prepare_backward) continue;
        /* prepare sees the constant inputs only, as the forward's prepare */
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            const sfp_tensor_t *t = v >= 0 && p->kind[v] == VK_CONST ? graph_const(&p->m->graph, v) : NULL;
            st->in[k] = t ? t->data : NULL;
        }
        size_t saved = 0, scratch = 0, aligned = 0;
        int rc = st->def->run.prepare_backward(&st->x, &saved, &scratch, err);
        if (rc < 0) return rc;
        if (!plan_align_up(saved, &aligned) || !plan_add_size(saved_total, aligned, &saved_total))
            return sfp_errorf(err, SFP_ENOMEM, "node '%s': saved state too large", sfp_q(n->name));
        st->saved_offset = saved_total - aligned;
        st->x.saved_bytes = saved;
        if (scratch > p->scratch_bytes) p->scratch_bytes = scratch;
    }
    p->saved_bytes_total = saved_total;
    return 0;
}

int autograd_analyse(sfp_plan_t *p, sfp_error_t *err)
{
    size_t nv = (size_t)p->n_values + 1;
    int rc;
    p->has_grad = calloc(nv, sizeof *p->has_grad);
    p->grad_birth = calloc(nv, sizeof *p->grad_birth);
    p->grad = calloc(nv, sizeof *p->grad);
    p->grad_offset = calloc(nv, sizeof *p->grad_offset);
    p->param_index = malloc(nv * sizeof *p->param_index);
    p->producer_step = malloc(nv * sizeof *p->producer_step);
    if (!p->has_grad || !p->grad_birth || !p->grad || !p->grad_offset || !p->param_index || !p->producer_step)
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int v = 0; v < p->n_values; v++) p->param_index[v] = p->producer_step[v] = -1;
    for (int s = 0; s < p->n_steps; s++) {
        const plan_step_t *st = &p->steps[s];
        for (int o = 0; o < st->x.node->n_outputs; o++)
            if (step_output(st, o) >= 0) p->producer_step[step_output(st, o)] = s;
    }
    if ((rc = find_params(p, err)) < 0) return rc;
    if ((rc = find_gradients(p, err)) < 0) return rc;
    /* parameters always have a gradient (zero when nothing reaches them) */
    for (int i = 0; i < p->n_params; i++) p->has_grad[p->params[i].value] = true;
    return prepare_backward_steps(p, err);
}

void autograd_lifetimes(const sfp_plan_t *p, int32_t *birth, int32_t *death)
{
    const int nv = p->n_values;
    const bool keep = (p->flags & SFP_PLAN_KEEP_ACTIVATIONS) != 0;
    for (int v = 0; v < nv; v++) birth[nv + v] = death[nv + v] = -1;
    for (int s = 0; s < p->n_steps; s++) {
        const plan_step_t *st = &p->steps[s];
        const sfp_node_t *n = st->x.node;
        if (!st->backward) continue;
        const int32_t t = plan_backward_time(p, s);
        /* forward values backward reads stay until then */
        for (int k = 0; k < n->n_inputs && k < 32; k++) {
            int v = n->inputs[k];
            if (v >= 0 && (st->def->run.keep_inputs >> k & 1u) && birth[v] >= 0 && death[v] != PLAN_NEVER_FREED &&
                death[v] < t)
                death[v] = t;
        }
        for (int o = 0; o < n->n_outputs && o < 32; o++) {
            int v = step_output(st, o);
            if (v >= 0 && (step_keep_outputs(st) >> o & 1u) && birth[v] >= 0 && death[v] != PLAN_NEVER_FREED &&
                death[v] < t)
                death[v] = t;
        }
    }
    /* activation gradients: from their first writer (output 0: the start of
     * the backward pass) to their producer's backward */
    for (int v = 0; v < nv; v++) {
        if (!p->has_grad[v] || p->param_index[v] >= 0) continue;
        birth[nv + v] = p->grad_birth[v] >= 0 ? plan_backward_time(p, p->grad_birth[v]) : p->n_steps;
        int producer = p->producer_step[v];
        death[nv + v] = keep || producer < 0 ? PLAN_NEVER_FREED : plan_backward_time(p, producer);
    }
}

int autograd_place_persistent(sfp_plan_t *p, size_t *at, sfp_error_t *err)
{
    size_t pos = 0;
    if (!plan_align_up(*at, &pos)) return sfp_errorf(err, SFP_ENOMEM, "the plan does not fit in memory");
    for (int s = 0; s < p->n_steps; s++) p->steps[s].saved_offset += pos;
    if (!plan_add_size(pos, p->saved_bytes_total, &pos)) return sfp_errorf(err, SFP_ENOMEM, "the plan does not fit in memory");
    p->params_offset = pos;
    for (int i = 0; i < p->n_params; i++) {
        size_t bytes = 0, need = 0;
        int rc = plan_value_bytes(p, p->params[i].value, &bytes, err);
        if (rc < 0) return rc;
        if (!plan_align_up(bytes, &need) || !plan_add_size(pos, need, &pos))
            return sfp_errorf(err, SFP_ENOMEM, "the parameter gradients do not fit in memory");
        p->grad_offset[p->params[i].value] = pos - need;
    }
    p->params_bytes = pos - p->params_offset;
    *at = pos;
    return 0;
}

void autograd_bind(sfp_plan_t *p)
{
    const sfp_graph_t *g = &p->m->graph;
    for (int v = 0; v < p->n_values; v++)
        if (p->has_grad[v]) p->grad[v] = p->arena + p->grad_offset[v];
    for (int i = 0; i < p->n_params; i++) {
        sfp_param_t *prm = &p->params[i];
        prm->data = g->values[prm->value].init->data;
        prm->grad = p->grad[prm->value];
    }
    for (int s = 0; s < p->n_steps; s++) {
        plan_step_t *st = &p->steps[s];
        const sfp_node_t *n = st->x.node;
        st->x.saved = st->x.saved_bytes ? p->arena + st->saved_offset : NULL;
        for (int k = 0; k < step_n_inputs(st); k++) {
            int v = step_input(st, k);
            st->in_init[k] = v >= 0 && g->values[v].init ? g->values[v].init->data : NULL;
            st->din[k] = st->din[k] ? p->grad[v] : NULL;
        }
        for (int o = 0; o < n->n_outputs; o++) st->dout[o] = st->dout[o] ? p->grad[step_output(st, o)] : NULL;
    }
    plan_zero_grad(p);
}

void autograd_free(sfp_plan_t *p)
{
    free(p->has_grad);
    free(p->grad_birth);
    free(p->grad);
    free(p->grad_offset);
    free(p->param_index);
    free(p->producer_step);
    free(p->params);
    free(p->in_init_ptrs);
    free(p->din_ptrs);
    free(p->dout_ptrs);
}

/* ---- public ---- */
int plan_backward(sfp_plan_t *p, const float *dloss_doutput, sfp_error_t *err)
{
    if (!(p->flags & SFP_PLAN_TRAIN))
        return sfp_errorf(err, SFP_EUSAGE, "plan_backward needs a plan made with SFP_PLAN_TRAIN");
    if (!p->backward_ready)
        return sfp_errorf(err, SFP_EUSAGE, "plan_backward needs a plan_run first (one backward pass per run)");
    if (!dloss_doutput) return sfp_errorf(err, SFP_EUSAGE, "plan_backward: no gradient for output 0");
    p->backward_ready = false;
    const bool profile = (p->flags & SFP_PLAN_PROFILE) != 0;
    if (p->n_outputs > 0 && p->has_grad[p->output_ids[0]]) {
        int v = p->output_ids[0];
        memcpy(p->grad[v], dloss_doutput, sizeof(float) * (size_t)shape_numel(&p->shapes[v]));
    }
    for (int s = p->n_steps - 1; s >= 0; s--) {
        plan_step_t *st = &p->steps[s];
        if (!st->backward) continue;
        st->x.din_fresh = 0;
        for (int k = 0; k < step_n_inputs(st); k++) {
            int v = step_input(st, k);
            if (v < 0 || !st->din[k] || p->grad_birth[v] != s || p->param_index[v] >= 0) continue;
            bool first = true, repeated = false; /* x op x: zeroed once, the slots add */
            for (int j = 0; j < step_n_inputs(st); j++) {
                if (j < k && step_input(st, j) == v) first = false;
                if (j != k && step_input(st, j) == v) repeated = true;
            }
            if (!first) continue;
            if (!repeated && (step_overwrite_din(st) >> k & 1u))
                st->x.din_fresh |= 1u << k; /* the op writes it whole: no memset, no read */
            else
                memset(p->grad[v], 0, sizeof(float) * (size_t)shape_numel(&p->shapes[v]));
        }
        st->x.training = p->ran_training;
        double start = profile ? sfp_now_seconds() : 0.0;
        int rc = st->def->run.backward(&st->x, err);
        if (rc < 0) return rc;
        if (profile) st->backward_seconds += sfp_now_seconds() - start;
    }
    return 0;
}

/* One memset over the whole block, padding included (plan_grad_block). */
void plan_zero_grad(sfp_plan_t *p)
{
    if (p->params_bytes) memset(p->arena + p->params_offset, 0, p->params_bytes);
}

float *plan_grad_block(sfp_plan_t *p, size_t *n_floats)
{
    *n_floats = p->params_bytes / sizeof(float);
    return p->params_bytes ? (float *)(void *)(p->arena + p->params_offset) : NULL;
}

int plan_n_params(const sfp_plan_t *p)
{
    return p->n_params;
}

const sfp_param_t *plan_param(const sfp_plan_t *p, int i)
{
    return i >= 0 && i < p->n_params ? &p->params[i] : NULL;
}

void plan_set_training(sfp_plan_t *p, bool training)
{
    p->training = training && (p->flags & SFP_PLAN_TRAIN);
}

bool plan_training(const sfp_plan_t *p)
{
    return p->training;
}

const float *plan_value_grad(const sfp_plan_t *p, int value_id)
{
    if (!p->grad || value_id < 0 || value_id >= p->n_values) return NULL;
    return p->grad[value_id];
}

double plan_step_backward_seconds(const sfp_plan_t *p, int step)
{
    return p->steps[step].backward_seconds;
}
