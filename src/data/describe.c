/* The preprocessing description written into a trained model's metadata_props
 * (key DATA_META_KEY) and read back by eval, compress and detect, so a model
 * carries how its inputs were made. One line of JSON through json-c. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "data/data.h"
#include "util/util.h"

#define DESC_MAX_CLASSES 100000

/* Shortest decimal text that reads back as the same float (so 0.286f is
 * written "0.286", not "0.28600001335144043"). */
static void float_text(float v, char *buf, size_t size)
{
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, size, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

static int add_floats(json_object *obj, const char *key, const float *v, int n)
{
    json_object *arr = json_object_new_array();
    if (!arr) return -1;
    json_object_object_add(obj, key, arr);
    for (int i = 0; i < n; i++) {
        char text[32];
        float_text(v[i], text, sizeof text);
        json_object *num = json_object_new_double_s((double)v[i], text);
        if (!num || json_object_array_add(arr, num) != 0) {
            json_object_put(num);
            return -1;
        }
    }
    return 0;
}

static int add_string(json_object *obj, const char *key, const char *value)
{
    json_object *s = json_object_new_string(value);
    if (!s) return -1;
    json_object_object_add(obj, key, s);
    return 0;
}

int data_describe(const sfp_data_prep_t *prep, const sfp_dataset_t *ds, char **out_json, sfp_error_t *err)
{
    int rc = data_prep_check(prep, NULL, err);
    if (rc < 0) return rc;
    json_object *obj = json_object_new_object();
    char geometry[64];
    bool failed = !obj;
    snprintf(geometry, sizeof geometry, "%dx%dx%d", prep->channels, prep->height, prep->width);
    failed = failed || add_floats(obj, "mean", prep->mean, prep->n_mean) < 0 ||
             add_floats(obj, "std", prep->std, prep->n_std) < 0 || add_string(obj, "input", geometry) < 0 ||
             add_string(obj, "pad", "center") < 0 || add_string(obj, "resize", "bilinear") < 0;
    if (!failed && ds && ds->n_classes > 0) {
        json_object *classes = json_object_new_array();
        failed = !classes;
        if (classes) json_object_object_add(obj, "classes", classes);
        for (int k = 0; k < ds->n_classes && !failed; k++) {
            json_object *name = json_object_new_string(ds->class_names[k]);
            if (!name || json_object_array_add(classes, name) != 0) {
                json_object_put(name);
                failed = true;
            }
        }
    }
    if (!failed && ds) {
        json_object *data = json_object_new_object();
        char source[64];
        int c = ds->channels, h = ds->height, w = ds->width;
        int64_t other = 0;
        bool files = data_common_source_geometry(ds, &c, &h, &w, &other);
        snprintf(source, sizeof source, "%dx%dx%d", c, h, w);
        failed = !data;
        if (data) json_object_object_add(obj, "data", data);
        failed = failed || add_string(data, "format", ds->format) < 0 || add_string(data, "geometry", source) < 0 ||
                 add_string(data, "fit", data_prep_fit_name(prep, ds)) < 0 ||
                 add_string(data, "filter", data_prep_filter_name(prep, ds)) < 0;
        if (!failed && files) {
            json_object *n = json_object_new_int64(other);
            failed = !n;
            if (n) json_object_object_add(data, "other_sizes", n);
        }
    }
    const char *text = failed ? NULL
                              : json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                                                        JSON_C_TO_STRING_NOSLASHESCAPE);
    *out_json = text ? sfp_strdup(text) : NULL;
    json_object_put(obj);
    if (!*out_json) return sfp_errorf(err, SFP_ENOMEM, "out of memory describing the preprocessing");
    return 0;
}

void data_desc_clear(sfp_data_desc_t *d)
{
    if (!d) return;
    for (int i = 0; i < d->n_classes; i++) free(d->class_names[i]);
    free(d->class_names);
    memset(d, 0, sizeof *d);
}

/* "CxHxW" with 1 <= H, W <= DATA_MAX_SIDE. */
static bool parse_geometry(const char *s, int *c, int *h, int *w)
{
    long v[3];
    for (int i = 0; i < 3; i++) {
        char *end = NULL;
        if (*s < '0' || *s > '9') return false;
        errno = 0;
        v[i] = strtol(s, &end, 10);
        if (errno || v[i] < 1 || v[i] > DATA_MAX_SIDE) return false;
        if (*end != (i < 2 ? 'x' : '\0')) return false;
        s = end + (i < 2);
    }
    *c = (int)v[0];
    *h = (int)v[1];
    *w = (int)v[2];
    return true;
}

static int parse_floats(json_object *obj, const char *key, const char *where, float *out, int *n,
                        sfp_error_t *err)
{
    json_object *arr = NULL;
    if (!json_object_object_get_ex(obj, key, &arr) || !json_object_is_type(arr, json_type_array))
        return sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing description lacks a \"%s\" array", sfp_q(where),
                          key);
    size_t len = json_object_array_length(arr);
    if (len < 1 || len > DATA_MAX_CHANNELS)
        return sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing \"%s\" has %zu values (1 to %d)", sfp_q(where), key,
                          len, DATA_MAX_CHANNELS);
    for (size_t i = 0; i < len; i++) {
        json_object *num = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(num, json_type_double) && !json_object_is_type(num, json_type_int))
            return sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing \"%s\" holds a non-number", sfp_q(where), key);
        double v = json_object_get_double(num);
        if (!isfinite(v) || !isfinite((float)v))
            return sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing \"%s\" holds a non-finite value", sfp_q(where),
                              key);
        out[i] = (float)v;
    }
    *n = (int)len;
    return 0;
}

/* An optional string member that, when present, must equal want. */
static int check_rule(json_object *obj, const char *key, const char *want, const char *where, sfp_error_t *err)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v)) return 0;
    if (!json_object_is_type(v, json_type_string))
        return sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing \"%s\" is not a string", sfp_q(where), key);
    if (strcmp(json_object_get_string(v), want) != 0)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "%s: preprocessing rule \"%s\": \"%s\" is not known (only \"%s\")",
                          sfp_q(where), key, sfp_q(json_object_get_string(v)), want);
    return 0;
}

/* An optional string member of at most size - 1 bytes into out. */
static int copy_string(json_object *obj, const char *key, char *out, size_t size, const char *where, sfp_error_t *err)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v)) return 0;
    if (!json_object_is_type(v, json_type_string) || strlen(json_object_get_string(v)) >= size)
        return sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing data \"%s\" is not a short string", sfp_q(where),
                          key);
    snprintf(out, size, "%s", json_object_get_string(v));
    return 0;
}

/* The optional "data" object: the training data's geometry and fit. */
static int parse_data(json_object *obj, const char *where, sfp_data_desc_t *out, sfp_error_t *err)
{
    json_object *data = NULL, *v = NULL;
    if (!json_object_object_get_ex(obj, "data", &data)) return 0;
    if (!json_object_is_type(data, json_type_object))
        return sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing \"data\" is not an object", sfp_q(where));
    if (json_object_object_get_ex(data, "geometry", &v) &&
        (!json_object_is_type(v, json_type_string) ||
         !parse_geometry(json_object_get_string(v), &out->data_channels, &out->data_height, &out->data_width)))
        return sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing data \"geometry\" is not CxHxW", sfp_q(where));
    int rc = copy_string(data, "format", out->data_format, sizeof out->data_format, where, err);
    if (rc == 0) rc = copy_string(data, "fit", out->data_fit, sizeof out->data_fit, where, err);
    if (rc == 0) rc = copy_string(data, "filter", out->data_filter, sizeof out->data_filter, where, err);
    return rc;
}

static int parse_object(json_object *obj, const char *where, sfp_data_desc_t *out, sfp_error_t *err)
{
    json_object *v = NULL;
    sfp_data_prep_t *p = &out->prep;
    if (!json_object_object_get_ex(obj, "input", &v) || !json_object_is_type(v, json_type_string) ||
        !parse_geometry(json_object_get_string(v), &p->channels, &p->height, &p->width))
        return sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing \"input\" is missing or not CxHxW", sfp_q(where));
    int rc = parse_floats(obj, "mean", where, p->mean, &p->n_mean, err);
    if (rc == 0) rc = parse_floats(obj, "std", where, p->std, &p->n_std, err);
    if (rc == 0) rc = check_rule(obj, "pad", "center", where, err);
    if (rc == 0) rc = check_rule(obj, "resize", "bilinear", where, err);
    if (rc < 0) return rc;
    if ((rc = data_prep_check(p, NULL, err)) < 0) {
        if (rc == SFP_EUSAGE) rc = SFP_EBADMODEL; /* inconsistent values in the file, not on the command line */
        if (err) err->code = rc;
        sfp_error_prefix(err, "%s: preprocessing description", sfp_q(where));
        return rc;
    }
    if ((rc = parse_data(obj, where, out, err)) < 0) return rc;
    if (!json_object_object_get_ex(obj, "classes", &v)) return 0;
    if (!json_object_is_type(v, json_type_array))
        return sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing \"classes\" is not an array", sfp_q(where));
    size_t n = json_object_array_length(v);
    if (n > DESC_MAX_CLASSES)
        return sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing lists %zu classes (at most %d)", sfp_q(where), n,
                          DESC_MAX_CLASSES);
    out->class_names = calloc(n ? n : 1, sizeof *out->class_names);
    if (!out->class_names) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
        json_object *name = json_object_array_get_idx(v, k);
        if (!json_object_is_type(name, json_type_string))
            return sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing class %zu is not a string", sfp_q(where), k);
        if (!(out->class_names[k] = sfp_strdup(json_object_get_string(name))))
            return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        out->n_classes = (int)k + 1;
    }
    return 0;
}

int data_describe_parse(const char *json, const char *where, sfp_data_desc_t *out, sfp_error_t *err)
{
    memset(out, 0, sizeof *out);
    json_tokener *tok = json_tokener_new();
    if (!tok) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    size_t len = strlen(json);
    json_object *obj = len <= (size_t)0x7fffffff ? json_tokener_parse_ex(tok, json, (int)len) : NULL;
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    int rc = 0;
    while (obj && end < len && (json[end] == ' ' || json[end] == '\n' || json[end] == '\t' || json[end] == '\r'))
        end++;
    if (!obj || jerr != json_tokener_success)
        rc = sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing description is not valid JSON: %s", sfp_q(where),
                        jerr == json_tokener_continue ? "unexpected end" : json_tokener_error_desc(jerr));
    else if (end != len)
        rc = sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing description has text after the JSON object",
                        sfp_q(where));
    else if (!json_object_is_type(obj, json_type_object))
        rc = sfp_errorf(err, SFP_EBADMODEL, "%s: preprocessing description is not a JSON object", sfp_q(where));
    else rc = parse_object(obj, where, out, err);
    json_object_put(obj);
    if (rc < 0) data_desc_clear(out);
    return rc;
}
