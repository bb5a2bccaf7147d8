/* Node attributes: typed lookups with defaults, and setters that replace or add. */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "util/util.h"

const sfp_attr_t *node_attr(const sfp_node_t *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

int64_t node_attr_int(const sfp_node_t *n, const char *name, int64_t dflt)
{
    const sfp_attr_t *a = node_attr(n, name);
    return a && a->type == SFP_ATTR_INT ? a->i : dflt;
}

float node_attr_float(const sfp_node_t *n, const char *name, float dflt)
{
    const sfp_attr_t *a = node_attr(n, name);
    return a && a->type == SFP_ATTR_FLOAT ? a->f : dflt;
}

size_t node_attr_ints(const sfp_node_t *n, const char *name, const int64_t **out)
{
    const sfp_attr_t *a = node_attr(n, name);
    if (!a || a->type != SFP_ATTR_INTS) {
        *out = NULL;
        return 0;
    }
    *out = a->ints;
    return a->n;
}

const char *node_attr_string(const sfp_node_t *n, const char *name, const char *dflt)
{
    const sfp_attr_t *a = node_attr(n, name);
    return a && a->type == SFP_ATTR_STRING ? a->s : dflt;
}

void node_remove_attr(sfp_node_t *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++) {
        if (strcmp(n->attrs[i].name, name) != 0) continue;
        attr_clear(&n->attrs[i]);
        memmove(&n->attrs[i], &n->attrs[i + 1], sizeof *n->attrs * (size_t)(n->n_attrs - i - 1));
        n->n_attrs--;
        return;
    }
}

/* Slot for attribute name, emptied (old value freed) or newly appended. */
static int attr_slot(sfp_node_t *n, const char *name, sfp_attr_t **out, sfp_error_t *err)
{
    for (int i = 0; i < n->n_attrs; i++) {
        sfp_attr_t *a = &n->attrs[i];
        if (strcmp(a->name, name) != 0) continue;
        char *keep = a->name; /* the value goes, the name stays */
        a->name = NULL;
        attr_clear(a);
        a->name = keep;
        *out = a;
        return 0;
    }
    sfp_attr_t *p = realloc(n->attrs, sizeof *p * (size_t)(n->n_attrs + 1));
    if (!p) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    n->attrs = p;
    sfp_attr_t *a = &p[n->n_attrs];
    memset(a, 0, sizeof *a);
    a->name = sfp_strdup(name);
    if (!a->name) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    n->n_attrs++;
    *out = a;
    return 0;
}

int node_set_attr_int(sfp_node_t *n, const char *name, int64_t v, sfp_error_t *err)
{
    sfp_attr_t *a = NULL;
    int rc = attr_slot(n, name, &a, err);
    if (rc < 0) return rc;
    a->type = SFP_ATTR_INT;
    a->i = v;
    return 0;
}

int node_set_attr_float(sfp_node_t *n, const char *name, float v, sfp_error_t *err)
{
    sfp_attr_t *a = NULL;
    int rc = attr_slot(n, name, &a, err);
    if (rc < 0) return rc;
    a->type = SFP_ATTR_FLOAT;
    a->f = v;
    return 0;
}

int node_set_attr_ints(sfp_node_t *n, const char *name, const int64_t *v, size_t count,
                       sfp_error_t *err)
{
    sfp_attr_t *a = NULL;
    int rc = attr_slot(n, name, &a, err);
    if (rc < 0) return rc;
    a->type = SFP_ATTR_INTS;
    a->ints = malloc(sizeof(int64_t) * (count ? count : 1));
    if (!a->ints) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    if (count) memcpy(a->ints, v, sizeof(int64_t) * count);
    a->n = count;
    return 0;
}

int node_set_attr_string(sfp_node_t *n, const char *name, const char *v, sfp_error_t *err)
{
    sfp_attr_t *a = NULL;
    int rc = attr_slot(n, name, &a, err);
    if (rc < 0) return rc;
    a->type = SFP_ATTR_STRING;
    a->s = sfp_strdup(v);
    if (!a->s) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    a->s_len = strlen(v);
    return 0;
}

int node_set_attr_tensor(sfp_node_t *n, const char *name, sfp_tensor_t *t, sfp_error_t *err)
{
    sfp_attr_t *a = NULL;
    int rc = attr_slot(n, name, &a, err);
    if (rc < 0) {
        sfp_tensor_free(t);
        return rc;
    }
    a->type = SFP_ATTR_TENSOR;
    a->t = t;
    return 0;
}
