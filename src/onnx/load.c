/* ModelProto -> IR. protobuf-c tokenizes (with a byte budget); this file turns
 * the message into values, nodes and initializers, keeping every field the IR
 * does not model as residue bytes. Validation happens afterwards (src/ir). */
#define _POSIX_C_SOURCE 200809L
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_io.h"
#include "util/util.h"

typedef struct load_ctx {
    sfp_model_t *m;
    const char *base_dir;
    sfp_error_t *err;
} load_ctx_t;

static int decl_from_type(const Onnx__ValueInfoProto *vi, sfp_decl_type_t *d, sfp_error_t *err)
{
    const char *name = vi->name ? vi->name : "";
    if (!vi->type) return 0; /* no type: leave undeclared */
    if (vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "value '%s': only tensor types are supported", sfp_q(name));
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    if (!tt) return 0;
    d->dtype = tt->has_elem_type ? (sfp_dtype_t)tt->elem_type : SFP_DT_UNDEFINED;
    if (d->dtype < SFP_DT_UNDEFINED || d->dtype > 20) /* TensorProto.DataType ends at 20 */
        return sfp_errorf(err, SFP_EBADMODEL, "value '%s': element type %d is not an ONNX data type", sfp_q(name),
                          (int)d->dtype);
    if (!tt->shape) {
        d->rank = -1;
        return 0;
    }
    if (tt->shape->n_dim > SFP_MAX_DIMS)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "value '%s': rank %zu above the %d supported", sfp_q(name),
                          tt->shape->n_dim, SFP_MAX_DIMS);
    d->rank = (int)tt->shape->n_dim;
    for (int i = 0; i < d->rank; i++) {
        const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[i];
        d->dims[i] = -1;
        if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (dim->dim_value < 0)
                return sfp_errorf(err, SFP_EBADMODEL, "value '%s': dimension %d is negative (%lld)", sfp_q(name),
                                  i, (long long)dim->dim_value);
            d->dims[i] = dim->dim_value;
        } else if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && dim->dim_param) {
            d->params[i] = sfp_strdup(dim->dim_param);
            if (!d->params[i]) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        }
    }
    return 0;
}

/* Declared type and residue of a ValueInfoProto onto value id. */
static int take_value_info(load_ctx_t *c, const Onnx__ValueInfoProto *vi, int *id_out)
{
    sfp_graph_t *g = &c->m->graph;
    if (!vi->name || !*vi->name)
        return sfp_errorf(c->err, SFP_EBADMODEL, "graph input/output/value_info without a name");
    int id = -1, rc = graph_value(g, vi->name, &id, c->err);
    if (rc < 0) return rc;
    sfp_value_t *v = &g->values[id];
    /* The first entry that says something wins (a value may be listed as
     * input, value_info and output; an untyped entry leaves room for a later one). */
    if (v->decl.dtype == SFP_DT_UNDEFINED && v->decl.rank < 0 && !v->decl_residue.data) {
        if ((rc = decl_from_type(vi, &v->decl, c->err)) < 0) return rc;
        Onnx__ValueInfoProto tmp = *vi;
        tmp.name = NULL;
        tmp.type = NULL;
        if ((rc = residue_pack(&tmp.base, &v->decl_residue, c->err)) < 0) return rc;
    }
    *id_out = id;
    return 0;
}

static int take_attr(load_ctx_t *c, const Onnx__AttributeProto *ap, sfp_attr_t *a, const char *node_name)
{
    sfp_error_t *err = c->err;
    if (!ap->name || !*ap->name)
        return sfp_errorf(err, SFP_EBADMODEL, "node '%s': attribute without a name", sfp_q(node_name));
    a->name = sfp_strdup(ap->name);
    if (!a->name) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    sfp_attr_type_t type = ap->has_type ? (sfp_attr_type_t)ap->type : SFP_ATTR_UNDEFINED;
    if (type == SFP_ATTR_UNDEFINED) { /* very old files: infer from the field set */
        if (ap->has_f) type = SFP_ATTR_FLOAT;
        else if (ap->has_i) type = SFP_ATTR_INT;
        else if (ap->has_s) type = SFP_ATTR_STRING;
        else if (ap->t) type = SFP_ATTR_TENSOR;
        else if (ap->g) type = SFP_ATTR_GRAPH;
        else if (ap->n_floats) type = SFP_ATTR_FLOATS;
        else if (ap->n_ints) type = SFP_ATTR_INTS;
        else if (ap->n_strings) type = SFP_ATTR_STRINGS;
    }
    a->type = type;
    Onnx__AttributeProto rest = *ap; /* what the IR does not model */
    rest.name = NULL;
    rest.has_type = 0;
    switch (type) {
    case SFP_ATTR_FLOAT:
        a->f = ap->f;
        rest.has_f = 0;
        break;
    case SFP_ATTR_INT:
        a->i = ap->i;
        rest.has_i = 0;
        break;
    case SFP_ATTR_STRING:
        a->s = sfp_strndup((const char *)ap->s.data, ap->s.len);
        a->s_len = ap->s.len;
        if (!a->s) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        rest.has_s = 0;
        break;
    case SFP_ATTR_TENSOR: {
        if (!ap->t)
            return sfp_errorf(err, SFP_EBADMODEL, "node '%s': tensor attribute '%s' has no tensor", sfp_q(node_name),
                              sfp_q(ap->name));
        int rc = tensor_from_proto(ap->t, c->base_dir, "attribute tensor", &a->t, err);
        if (rc < 0) return rc;
        rest.t = NULL;
        break;
    }
    case SFP_ATTR_FLOATS:
        a->n = ap->n_floats;
        a->floats = malloc(sizeof(float) * (a->n ? a->n : 1));
        if (!a->floats) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        if (a->n) memcpy(a->floats, ap->floats, sizeof(float) * a->n);
        rest.n_floats = 0;
        break;
    case SFP_ATTR_INTS:
        a->n = ap->n_ints;
        a->ints = malloc(sizeof(int64_t) * (a->n ? a->n : 1));
        if (!a->ints) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        if (a->n) memcpy(a->ints, ap->ints, sizeof(int64_t) * a->n);
        rest.n_ints = 0;
        break;
    case SFP_ATTR_STRINGS:
        a->n = ap->n_strings;
        a->strings = calloc(a->n ? a->n : 1, sizeof(char *));
        if (!a->strings) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        for (size_t i = 0; i < a->n; i++) {
            a->strings[i] = sfp_strndup((const char *)ap->strings[i].data, ap->strings[i].len);
            if (!a->strings[i]) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        }
        rest.n_strings = 0;
        break;
    default:
        break; /* graphs, sparse tensors, type protos: kept whole in the residue */
    }
    return residue_pack(&rest.base, &a->residue, err);
}

static int take_node(load_ctx_t *c, const Onnx__NodeProto *np, int index)
{
    sfp_graph_t *g = &c->m->graph;
    sfp_error_t *err = c->err;
    int rc = 0;
    int *in = calloc(np->n_input + 1, sizeof(int));
    int *out = calloc(np->n_output + 1, sizeof(int));
    char label[32];
    snprintf(label, sizeof label, "#%d", index);
    const char *nname = np->name && *np->name ? np->name : label;
    if (!in || !out) {
        rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        goto done;
    }
    if (np->n_input > 1u << 20 || np->n_output > 1u << 20) {
        rc = sfp_errorf(err, SFP_EBADMODEL, "node '%s': too many inputs or outputs", sfp_q(nname));
        goto done;
    }
    for (size_t i = 0; i < np->n_input; i++) {
        in[i] = -1;
        if (np->input[i] && *np->input[i] && (rc = graph_value(g, np->input[i], &in[i], err)) < 0) goto done;
    }
    for (size_t i = 0; i < np->n_output; i++) {
        out[i] = -1;
        if (np->output[i] && *np->output[i] && (rc = graph_value(g, np->output[i], &out[i], err)) < 0) goto done;
    }
    int nid = -1;
    if ((rc = graph_add_node(g, np->op_type ? np->op_type : "", np->name ? np->name : "", (int)np->n_input, in,
                             (int)np->n_output, out, &nid, err)) < 0)
        goto done;
    sfp_node_t *n = &g->nodes[nid];
    if (np->domain) {
        free(n->domain);
        n->domain = sfp_strdup(np->domain);
        if (!n->domain) {
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
            goto done;
        }
    }
    if (np->n_attribute) {
        n->attrs = calloc(np->n_attribute, sizeof *n->attrs);
        if (!n->attrs) {
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < np->n_attribute; i++) {
            n->n_attrs = (int)i + 1;
            if ((rc = take_attr(c, np->attribute[i], &n->attrs[i], nname)) < 0) goto done;
            for (size_t k = 0; k < i; k++)
                if (strcmp(n->attrs[k].name, n->attrs[i].name) == 0) {
                    rc = sfp_errorf(err, SFP_EBADMODEL, "node '%s' (%s): attribute '%s' given twice", sfp_q(nname),
                                    sfp_q(n->op_type), sfp_q(n->attrs[i].name));
                    goto done;
                }
        }
    }
    Onnx__NodeProto rest = *np;
    rest.name = NULL;
    rest.op_type = NULL;
    rest.domain = NULL;
    rest.n_input = rest.n_output = rest.n_attribute = 0;
    rc = residue_pack(&rest.base, &n->residue, err);
done:
    free(in);
    free(out);
    return rc;
}

static int take_graph(load_ctx_t *c, const Onnx__GraphProto *gp)
{
    sfp_graph_t *g = &c->m->graph;
    sfp_error_t *err = c->err;
    int rc = 0, id = -1;
    g->name = sfp_strdup(gp->name ? gp->name : "");
    if (!g->name) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (size_t i = 0; i < gp->n_input; i++) {
        if ((rc = take_value_info(c, gp->input[i], &id)) < 0) return rc;
        if ((rc = graph_add_input(g, id, err)) < 0) return rc;
    }
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        if (!tp->name || !*tp->name) return sfp_errorf(err, SFP_EBADMODEL, "initializer #%zu has no name", i);
        sfp_tensor_t *t = NULL;
        if ((rc = graph_value(g, tp->name, &id, err)) < 0) return rc;
        if ((rc = tensor_from_proto(tp, c->base_dir, "initializer", &t, err)) < 0) return rc;
        if ((rc = graph_set_init(g, id, t, err)) < 0) return rc;
        Onnx__TensorProto rest = *tp;
        rest.name = NULL;
        rest.n_dims = 0;
        rest.has_data_type = 0;
        rest.n_float_data = rest.n_int32_data = rest.n_int64_data = rest.n_double_data = rest.n_uint64_data = 0;
        rest.n_string_data = 0;
        rest.has_raw_data = 0;
        rest.n_external_data = 0;
        rest.has_data_location = 0;
        if ((rc = residue_pack(&rest.base, &g->values[id].init_residue, err)) < 0) return rc;
    }
    if (c->m->ir_version < 4) {
        /* IR 3 lists every initializer as a graph input too (no intent to
         * let callers override them): held as IR 4 holds them, the saver
         * lists them again for IR < 4. */
        int kept = 0;
        for (int i = 0; i < g->n_inputs; i++) {
            sfp_value_t *v = &g->values[g->inputs[i]];
            if (v->init) v->flags &= ~(unsigned)SFP_VAL_INPUT;
            else g->inputs[kept++] = g->inputs[i];
        }
        g->n_inputs = kept;
    }
    for (size_t i = 0; i < gp->n_value_info; i++) {
        if ((rc = take_value_info(c, gp->value_info[i], &id)) < 0) return rc;
        g->values[id].flags |= SFP_VAL_VINFO;
    }
    for (size_t i = 0; i < gp->n_output; i++) {
        if ((rc = take_value_info(c, gp->output[i], &id)) < 0) return rc;
        if ((rc = graph_add_output(g, id, err)) < 0) return rc;
    }
    for (size_t i = 0; i < gp->n_node; i++)
        if ((rc = take_node(c, gp->node[i], (int)i)) < 0) return rc;
    Onnx__GraphProto rest = *gp;
    rest.name = NULL;
    rest.n_node = rest.n_initializer = rest.n_input = rest.n_output = rest.n_value_info = 0;
    return residue_pack(&rest.base, &g->residue, err);
}

static int take_model(load_ctx_t *c, const Onnx__ModelProto *mp)
{
    sfp_model_t *m = c->m;
    sfp_error_t *err = c->err;
    int rc = 0;
    if (!mp->graph) return sfp_errorf(err, SFP_EBADMODEL, "the file holds no graph (is it an ONNX model?)");
    m->ir_version = mp->has_ir_version ? mp->ir_version : 0;
    if (mp->n_opset_import) {
        m->opsets = calloc(mp->n_opset_import, sizeof *m->opsets);
        if (!m->opsets) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        for (size_t i = 0; i < mp->n_opset_import; i++) {
            m->opsets[i].domain = sfp_strdup(mp->opset_import[i]->domain ? mp->opset_import[i]->domain : "");
            m->opsets[i].version = mp->opset_import[i]->has_version ? mp->opset_import[i]->version : 0;
            m->n_opsets = (int)i + 1;
            if (!m->opsets[i].domain) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < mp->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *kv = mp->metadata_props[i];
        if ((rc = sfp_model_meta_set(m, kv->key ? kv->key : "", kv->value ? kv->value : "", err)) < 0) return rc;
    }
    if (mp->producer_name && !(m->producer_name = sfp_strdup(mp->producer_name)))
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    if (mp->producer_version && !(m->producer_version = sfp_strdup(mp->producer_version)))
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    if ((rc = take_graph(c, mp->graph)) < 0) return rc;
    Onnx__ModelProto rest = *mp;
    rest.has_ir_version = 0;
    rest.n_opset_import = 0;
    rest.n_metadata_props = 0;
    rest.producer_name = NULL;
    rest.producer_version = NULL;
    rest.graph = NULL;
    return residue_pack(&rest.base, &m->residue, err);
}

int onnx_decode_model(const uint8_t *buf, size_t len, const char *path, sfp_model_t **out, sfp_error_t *err)
{
    const char *shown = path ? path : "(memory)";
    if (len == 0) return sfp_errorf(err, SFP_EBADMODEL, "%s: empty file, not an ONNX model", sfp_q(shown));
    size_t off = 0;
    const char *why = NULL;
    /* Before protobuf-c: it recurses per nested message and would overflow
     * the stack on hostile nesting; this walk also names the broken byte. */
    if (wire_check(buf, len, &onnx__model_proto__descriptor, &off, &why) < 0)
        return sfp_errorf(err, SFP_EBADMODEL, "%s: not a valid ONNX model: byte %zu: %s", sfp_q(shown), off, why);
    budget_alloc_t alloc;
    /* Parsed structures never need more than a small multiple of the input. */
    budget_alloc_init(&alloc, len * 8 + ((size_t)1 << 20));
    Onnx__ModelProto *mp = onnx__model_proto__unpack(&alloc.base, len, buf);
    if (!mp) {
        if (alloc.out_of_memory)
            return sfp_errorf(err, SFP_ENOMEM, "%s: out of memory decoding %zu bytes", sfp_q(shown), len);
        if (alloc.exhausted)
            return sfp_errorf(err, SFP_EBADMODEL, "%s: not a valid ONNX model: it would need more memory than its size justifies", sfp_q(shown));
        return sfp_errorf(err, SFP_EBADMODEL, "%s: not a valid ONNX model: protobuf decoding failed (wrong field types or a broken nested message)", sfp_q(shown));
    }
    sfp_model_t *m = NULL;
    int rc = model_create(&m, err);
    char *dir_copy = NULL;
    if (rc < 0) goto done;
    if (path) {
        m->path = sfp_strdup(path);
        dir_copy = sfp_strdup(path);
        if (!m->path || !dir_copy) {
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
            goto done;
        }
    }
    load_ctx_t c = {m, dir_copy ? dirname(dir_copy) : NULL, err};
    rc = take_model(&c, mp);
    if (rc < 0) sfp_error_prefix(err, "%s", sfp_q(shown));
done:
    free(dir_copy);
    onnx__model_proto__free_unpacked(mp, &alloc.base);
    if (rc < 0) {
        sfp_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}
