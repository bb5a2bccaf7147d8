/* IR -> ModelProto bytes and the atomic file write. Every message gets back the
 * residue the loader kept (doc strings, unknown fields of newer ONNX), attached
 * as protobuf-c unknown fields, so nothing the IR does not model is lost. */
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_io.h"
#include "util/util.h"

/* Every allocation made while building the message tree, freed together. */
typedef struct arena {
    void **ptrs;
    size_t n, cap;
    int failed;
} arena_t;

static void *arena_alloc(arena_t *a, size_t count, size_t size)
{
    if (a->failed) return NULL;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        void **p = realloc(a->ptrs, cap * sizeof *p);
        if (!p) {
            a->failed = 1;
            return NULL;
        }
        a->ptrs = p;
        a->cap = cap;
    }
    void *mem = calloc(count ? count : 1, size);
    if (!mem) {
        a->failed = 1;
        return NULL;
    }
    a->ptrs[a->n++] = mem;
    return mem;
}

/* Hands a malloc'ed block to the arena (freed with the rest). */
static void arena_keep(arena_t *a, void *mem)
{
    void **slot = arena_alloc(a, 1, 1);
    if (!slot) {
        free(mem);
        return;
    }
    free(a->ptrs[a->n - 1]);
    a->ptrs[a->n - 1] = mem;
}

static void arena_free(arena_t *a)
{
    for (size_t i = 0; i < a->n; i++) free(a->ptrs[i]);
    free(a->ptrs);
}

static void attach_residue(arena_t *a, ProtobufCMessage *msg, const sfp_blob_t *res, sfp_error_t *err)
{
    ProtobufCMessageUnknownField *f = NULL;
    size_t n = 0;
    if (!res->len || a->failed) return;
    if (residue_fields(res, &f, &n, err) < 0) {
        a->failed = 1;
        return;
    }
    arena_keep(a, f);
    if (a->failed) return;
    msg->n_unknown_fields = (unsigned)n;
    msg->unknown_fields = f;
}

static Onnx__TensorProto *build_tensor(arena_t *a, const sfp_tensor_t *t, const sfp_blob_t *res,
                                       sfp_error_t *err)
{
    Onnx__TensorProto *tp = arena_alloc(a, 1, sizeof *tp);
    int64_t *dims = arena_alloc(a, SFP_MAX_DIMS, sizeof(int64_t));
    if (!tp || !dims) return NULL;
    tensor_to_proto(t, tp, dims);
    if (res) attach_residue(a, &tp->base, res, err);
    return tp;
}

static Onnx__ValueInfoProto *build_value_info(arena_t *a, const sfp_value_t *v, sfp_error_t *err)
{
    Onnx__ValueInfoProto *vi = arena_alloc(a, 1, sizeof *vi);
    if (!vi) return NULL;
    onnx__value_info_proto__init(vi);
    vi->name = v->name;
    attach_residue(a, &vi->base, &v->decl_residue, err);
    /* An initializer's own type (surgery may have resized it); else the
     * declared type, or the inferred one when the file declared none. */
    sfp_dtype_t dtype = v->decl.dtype;
    int rank = v->decl.rank;
    int64_t dims[SFP_MAX_DIMS];
    const char *params[SFP_MAX_DIMS] = {0};
    if (v->init) {
        dtype = v->init->dtype;
        rank = v->init->ndim;
        for (int i = 0; i < rank; i++) dims[i] = v->init->dims[i];
    } else if (dtype != SFP_DT_UNDEFINED || rank >= 0) {
        for (int i = 0; i < rank; i++) {
            dims[i] = v->decl.dims[i];
            params[i] = v->decl.params[i];
        }
    } else if (v->ndim >= 0) {
        dtype = v->dtype;
        rank = v->ndim;
        for (int i = 0; i < rank; i++) dims[i] = v->dims[i];
        if (v->batch0 && rank > 0) {
            dims[0] = -1;
            params[0] = "N";
        }
    } else {
        return vi;
    }
    Onnx__TypeProto *tp = arena_alloc(a, 1, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = arena_alloc(a, 1, sizeof *tt);
    if (!tp || !tt) return NULL;
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->type = tp;
    tt->has_elem_type = dtype != SFP_DT_UNDEFINED;
    tt->elem_type = (int32_t)dtype;
    if (rank >= 0) {
        Onnx__TensorShapeProto *sp = arena_alloc(a, 1, sizeof *sp);
        Onnx__TensorShapeProto__Dimension **dv = arena_alloc(a, (size_t)rank, sizeof *dv);
        if (!sp || !dv) return NULL;
        onnx__tensor_shape_proto__init(sp);
        sp->n_dim = (size_t)rank;
        sp->dim = dv;
        for (int i = 0; i < rank; i++) {
            Onnx__TensorShapeProto__Dimension *d = arena_alloc(a, 1, sizeof *d);
            if (!d) return NULL;
            onnx__tensor_shape_proto__dimension__init(d);
            if (params[i]) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = (char *)(uintptr_t)params[i];
            } else if (dims[i] >= 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = dims[i];
            }
            dv[i] = d;
        }
        tt->shape = sp;
    }
    return vi;
}

static Onnx__AttributeProto *build_attr(arena_t *a, const sfp_attr_t *at, sfp_error_t *err)
{
    Onnx__AttributeProto *ap = arena_alloc(a, 1, sizeof *ap);
    if (!ap) return NULL;
    onnx__attribute_proto__init(ap);
    ap->name = at->name;
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)at->type;
    switch (at->type) {
    case SFP_ATTR_FLOAT: ap->has_f = 1; ap->f = at->f; break;
    case SFP_ATTR_INT: ap->has_i = 1; ap->i = at->i; break;
    case SFP_ATTR_STRING:
        ap->has_s = 1;
        ap->s.data = (uint8_t *)at->s;
        ap->s.len = at->s_len;
        break;
    case SFP_ATTR_TENSOR: ap->t = build_tensor(a, at->t, NULL, err); break;
    case SFP_ATTR_FLOATS: ap->n_floats = at->n; ap->floats = at->floats; break;
    case SFP_ATTR_INTS: ap->n_ints = at->n; ap->ints = at->ints; break;
    case SFP_ATTR_STRINGS: {
        ProtobufCBinaryData *s = arena_alloc(a, at->n, sizeof *s);
        if (!s) return NULL;
        for (size_t i = 0; i < at->n; i++) {
            s[i].data = (uint8_t *)at->strings[i];
            s[i].len = strlen(at->strings[i]);
        }
        ap->n_strings = at->n;
        ap->strings = s;
        break;
    }
    default: break;
    }
    attach_residue(a, &ap->base, &at->residue, err);
    return ap;
}

static Onnx__NodeProto *build_node(arena_t *a, const sfp_graph_t *g, const sfp_node_t *n, sfp_error_t *err)
{
    Onnx__NodeProto *np = arena_alloc(a, 1, sizeof *np);
    char **in = arena_alloc(a, (size_t)n->n_inputs, sizeof(char *));
    char **out = arena_alloc(a, (size_t)n->n_outputs, sizeof(char *));
    Onnx__AttributeProto **attrs = arena_alloc(a, (size_t)n->n_attrs, sizeof *attrs);
    if (!np || !in || !out || !attrs) return NULL;
    onnx__node_proto__init(np);
    static char empty[] = "";
    for (int i = 0; i < n->n_inputs; i++) in[i] = n->inputs[i] >= 0 ? g->values[n->inputs[i]].name : empty;
    for (int i = 0; i < n->n_outputs; i++) out[i] = n->outputs[i] >= 0 ? g->values[n->outputs[i]].name : empty;
    for (int i = 0; i < n->n_attrs; i++) attrs[i] = build_attr(a, &n->attrs[i], err);
    np->n_input = (size_t)n->n_inputs;
    np->input = in;
    np->n_output = (size_t)n->n_outputs;
    np->output = out;
    np->n_attribute = (size_t)n->n_attrs;
    np->attribute = attrs;
    np->name = n->name && *n->name ? n->name : NULL;
    np->op_type = n->op_type;
    np->domain = n->domain && *n->domain ? n->domain : NULL;
    attach_residue(a, &np->base, &n->residue, err);
    return np;
}

/* IR version 3 wants every initializer listed among the graph inputs too
 * (inits_as_inputs), the ones surgery added included. */
static Onnx__GraphProto *build_graph(arena_t *a, const sfp_graph_t *g, bool inits_as_inputs, sfp_error_t *err)
{
    Onnx__GraphProto *gp = arena_alloc(a, 1, sizeof *gp);
    int n_vinfo = 0, n_ins = g->n_inputs;
    for (int i = 0; inits_as_inputs && i < g->n_inits; i++)
        if (!(g->values[g->inits[i]].flags & SFP_VAL_INPUT)) n_ins++;
    for (int i = 0; i < g->n_values; i++)
        if ((g->values[i].flags & SFP_VAL_VINFO) && !(g->values[i].flags & (SFP_VAL_INPUT | SFP_VAL_OUTPUT)))
            n_vinfo++;
    Onnx__NodeProto **nodes = arena_alloc(a, (size_t)g->n_nodes, sizeof *nodes);
    Onnx__TensorProto **inits = arena_alloc(a, (size_t)g->n_inits, sizeof *inits);
    Onnx__ValueInfoProto **ins = arena_alloc(a, (size_t)n_ins, sizeof *ins);
    Onnx__ValueInfoProto **outs = arena_alloc(a, (size_t)g->n_outputs, sizeof *outs);
    Onnx__ValueInfoProto **vinfo = arena_alloc(a, (size_t)n_vinfo, sizeof *vinfo);
    if (!gp || !nodes || !inits || !ins || !outs || !vinfo) return NULL;
    onnx__graph_proto__init(gp);
    gp->name = g->name && *g->name ? g->name : NULL;
    for (int i = 0; i < g->n_nodes; i++) nodes[i] = build_node(a, g, &g->nodes[i], err);
    for (int i = 0; i < g->n_inits; i++) {
        const sfp_value_t *v = &g->values[g->inits[i]];
        inits[i] = build_tensor(a, v->init, &v->init_residue, err);
        if (inits[i]) inits[i]->name = v->name;
    }
    for (int i = 0; i < g->n_inputs; i++) ins[i] = build_value_info(a, &g->values[g->inputs[i]], err);
    for (int i = 0, at = g->n_inputs; inits_as_inputs && i < g->n_inits; i++)
        if (!(g->values[g->inits[i]].flags & SFP_VAL_INPUT)) ins[at++] = build_value_info(a, &g->values[g->inits[i]], err);
    for (int i = 0; i < g->n_outputs; i++) outs[i] = build_value_info(a, &g->values[g->outputs[i]], err);
    int k = 0;
    for (int i = 0; i < g->n_values; i++)
        if ((g->values[i].flags & SFP_VAL_VINFO) && !(g->values[i].flags & (SFP_VAL_INPUT | SFP_VAL_OUTPUT)))
            vinfo[k++] = build_value_info(a, &g->values[i], err);
    gp->n_node = (size_t)g->n_nodes;
    gp->node = nodes;
    gp->n_initializer = (size_t)g->n_inits;
    gp->initializer = inits;
    gp->n_input = (size_t)n_ins;
    gp->input = ins;
    gp->n_output = (size_t)g->n_outputs;
    gp->output = outs;
    gp->n_value_info = (size_t)n_vinfo;
    gp->value_info = vinfo;
    attach_residue(a, &gp->base, &g->residue, err);
    return gp;
}

int onnx_encode_model(const sfp_model_t *m, uint8_t **out, size_t *out_len, sfp_error_t *err_out)
{
    arena_t a = {0};
    sfp_error_t local = {0}, *err = &local;
    Onnx__ModelProto mp;
    onnx__model_proto__init(&mp);
    mp.has_ir_version = 1;
    mp.ir_version = m->ir_version;
    Onnx__OperatorSetIdProto **ops = arena_alloc(&a, (size_t)m->n_opsets, sizeof *ops);
    Onnx__StringStringEntryProto **meta = arena_alloc(&a, (size_t)m->n_meta, sizeof *meta);
    if (ops)
        for (int i = 0; i < m->n_opsets; i++) {
            Onnx__OperatorSetIdProto *o = arena_alloc(&a, 1, sizeof *o);
            if (!o) break;
            onnx__operator_set_id_proto__init(o);
            o->domain = m->opsets[i].domain;
            o->has_version = 1;
            o->version = m->opsets[i].version;
            ops[i] = o;
        }
    if (meta)
        for (int i = 0; i < m->n_meta; i++) {
            Onnx__StringStringEntryProto *kv = arena_alloc(&a, 1, sizeof *kv);
            if (!kv) break;
            onnx__string_string_entry_proto__init(kv);
            kv->key = m->meta[i].key;
            kv->value = m->meta[i].value;
            meta[i] = kv;
        }
    mp.n_opset_import = (size_t)m->n_opsets;
    mp.opset_import = ops;
    mp.n_metadata_props = (size_t)m->n_meta;
    mp.metadata_props = meta;
    mp.producer_name = m->producer_name;
    mp.producer_version = m->producer_version;
    mp.graph = build_graph(&a, &m->graph, m->ir_version < 4, err);
    attach_residue(&a, &mp.base, &m->residue, err);
    int rc = 0;
    if (a.failed || !mp.graph) {
        if (!local.code) sfp_errorf(err, SFP_ENOMEM, "out of memory while encoding the model");
        rc = local.code;
        goto done;
    }
    size_t size = protobuf_c_message_get_packed_size(&mp.base);
    if (size > ((size_t)2 << 30) - 1) {
        rc = sfp_errorf(err, SFP_EUNSUPPORTED, "model of %zu bytes exceeds protobuf's 2 GiB limit", size);
        goto done;
    }
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory (%zu bytes)", size);
        goto done;
    }
    *out_len = protobuf_c_message_pack(&mp.base, buf);
    *out = buf;
done:
    arena_free(&a);
    if (rc < 0 && err_out) *err_out = local;
    return rc;
}
