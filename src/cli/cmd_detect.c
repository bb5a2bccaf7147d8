/* onnx-sfp detect: classifies image files and folders with a model (predicted
 * class, softmax confidence, time per image). A folder of class sub-folders is
 * labelled data: its class names are matched to the model's by name, and the
 * run ends with accuracy, balanced accuracy and the confusion matrix. Every
 * input is decoded before anything runs, so bad input fails before output. */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "cli/cli_train.h"
#include "report/detect_html.h"
#include "train/plan.h"
#include "util/util.h"

#define LABELS_MAX_BYTES ((size_t)4 << 20)

static const cli_opt_t opts[] = {
    {"labels", "FILE", "class names, one per line (default: the model's metadata, else indices)"},
    {"split", "NAME", "a folder holding train/ and test/: which one to read (default test)"},
    {"batch", "B", "images per forward pass (default 1: ms is each image's own latency)"},
    {"mean", "LIST", "per-channel mean after scaling pixels to [0, 1] (default: model metadata, else 0)"},
    {"std", "LIST", "per-channel std (default: model metadata, else 1)"},
    {"json", NULL, "print {\"images\": [{\"path\", \"class\", \"confidence\", \"ms\"}], \"accuracy\", \"images_per_s\"}"},
    {"html", "FILE", "also write a self-contained HTML page with thumbnails and the summary"},
    {0},
};

static const char *const image_extensions[] = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".pnm"};

/* One argument's images: a labelled folder (map set) or files. */
typedef struct detect_source {
    sfp_dataset_t *ds;  /* owns */
    int *to_model;      /* owns: folder class -> model class; NULL when unlabelled */
} detect_source_t;

typedef struct detect_run {
    int c, h, w, k;
    char **class_names;    /* owns: k names (given, recorded or "0".."k-1") */
    bool names_known;      /* from --labels or the model's metadata */
    detect_source_t *sources;
    int n_sources;
    int64_t n_images;
    detect_result_t *results; /* n_images; paths and pixels borrowed from the sources */
    int64_t *confusion;       /* k x k */
    double seconds;           /* preprocessing + forward, all images */
} detect_run_t;

static void run_clear(detect_run_t *r)
{
    for (int i = 0; r->class_names && i < r->k; i++) free(r->class_names[i]);
    free(r->class_names);
    for (int i = 0; i < r->n_sources; i++) {
        data_free(r->sources[i].ds);
        free(r->sources[i].to_model);
    }
    free(r->sources);
    free(r->results);
    free(r->confusion);
}

/* ------------------------------------------------------------------------ */
/* Class names                                                              */

static int names_from_labels_file(detect_run_t *r, const char *path, sfp_error_t *err)
{
    uint8_t *text = NULL;
    size_t len = 0;
    int rc = sfp_read_file(path, LABELS_MAX_BYTES, &text, &len, err);
    if (rc < 0) return rc;
    if (memchr(text, '\0', len)) rc = sfp_errorf(err, SFP_EBADDATA, "%s: --labels file holds a NUL byte", sfp_q(path));
    int n = 0;
    size_t start = 0;
    while (rc == 0 && start < len) {
        const uint8_t *nl = memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) : len, stop = end;
        if (stop > start && text[stop - 1] == '\r') stop--;
        if (stop == start) {
            rc = sfp_errorf(err, SFP_EBADDATA, "%s: line %d is empty (one class name per line)", sfp_q(path), n + 1);
        } else if (n >= r->k) {
            rc = sfp_errorf(err, SFP_EBADDATA, "%s: more than the model's %d class names", sfp_q(path), r->k);
        } else if (!(r->class_names[n] = sfp_strndup((const char *)text + start, stop - start))) {
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        } else {
            for (int j = 0; j < n && rc == 0; j++)
                if (!strcmp(r->class_names[j], r->class_names[n]))
                    rc = sfp_errorf(err, SFP_EBADDATA, "%s: class name '%s' appears twice", sfp_q(path),
                                    sfp_q(r->class_names[n]));
            n++;
        }
        start = end + 1;
    }
    if (rc == 0 && n != r->k)
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: %d class names, the model has %d outputs", sfp_q(path), n, r->k);
    free(text);
    return rc;
}

/* --labels, else the model's metadata, else "0".."k-1". */
static int class_names(detect_run_t *r, const char *labels_path, const sfp_model_t *m, const char *model_path,
                       sfp_error_t *err)
{
    if (!(r->class_names = calloc((size_t)r->k, sizeof *r->class_names)))
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    if (labels_path) {
        r->names_known = true;
        return names_from_labels_file(r, labels_path, err);
    }
    const char *meta = sfp_model_meta_get(m, DATA_META_KEY);
    sfp_data_desc_t d;
    memset(&d, 0, sizeof d);
    int rc = meta ? data_describe_parse(meta, model_path, &d, err) : 0;
    if (rc < 0) return rc;
    if (d.n_classes > 0 && d.n_classes != r->k)
        rc = sfp_errorf(err, SFP_EBADMODEL, "%s: metadata names %d classes, the output has %d", sfp_q(model_path),
                        d.n_classes, r->k);
    r->names_known = d.n_classes > 0;
    for (int i = 0; i < r->k && rc == 0; i++) {
        char index[24];
        snprintf(index, sizeof index, "%d", i);
        if (!(r->class_names[i] = sfp_strdup(r->names_known ? d.class_names[i] : index)))
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    data_desc_clear(&d);
    return rc;
}

/* Folder class -> model class: by name when the model's names are known
 * (a folder class the model lacks is refused), else by position. */
static int map_labels(const detect_run_t *r, detect_source_t *src, sfp_error_t *err)
{
    const sfp_dataset_t *ds = src->ds;
    if (!(src->to_model = malloc(sizeof(int) * (size_t)ds->n_classes)))
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int f = 0; f < ds->n_classes; f++) {
        src->to_model[f] = r->names_known ? -1 : f;
        for (int j = 0; j < r->k && src->to_model[f] < 0; j++)
            if (!strcmp(ds->class_names[f], r->class_names[j])) src->to_model[f] = j;
        if (src->to_model[f] >= 0) continue;
        char known[256] = "";
        size_t used = 0;
        for (int j = 0; j < r->k && used < sizeof known - 1; j++) {
            int n = snprintf(known + used, sizeof known - used, "%s%s", j ? ", " : "", r->class_names[j]);
            used += n > 0 ? (size_t)n : 0;
        }
        return sfp_errorf(err, SFP_EBADDATA, "%s: class folder '%s' is not one of the model's classes (%s)",
                          sfp_q(ds->path), sfp_q(ds->class_names[f]), sfp_q(known));
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Inputs                                                                   */

static bool has_image_extension(const char *name)
{
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof image_extensions / sizeof image_extensions[0]; i++)
        if (strcasecmp(dot, image_extensions[i]) == 0) return true;
    return false;
}

static int visible(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static void free_entries(struct dirent **entries, int n)
{
    for (int i = 0; i < n; i++) free(entries[i]);
    free(entries);
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) snprintf(p, a + b + 2, "%s%s%s", dir, a && dir[a - 1] == '/' ? "" : "/", name);
    return p;
}

static int add_source(detect_run_t *r, sfp_dataset_t *ds, sfp_error_t *err)
{
    detect_source_t *grown = realloc(r->sources, sizeof *grown * (size_t)(r->n_sources + 1));
    if (!grown) {
        data_free(ds);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    }
    r->sources = grown;
    r->sources[r->n_sources++] = (detect_source_t){ds, NULL};
    r->n_images += ds->n;
    return 0;
}

/* A folder: class sub-folders (data_open, labelled) or plain image files. */
static int open_folder(detect_run_t *r, const char *dir, const char *split, sfp_error_t *err)
{
    struct dirent **entries = NULL;
    int n = scandir(dir, &entries, visible, alphasort);
    if (n < 0) return sfp_errorf(err, SFP_EIO, "%s: cannot list the folder: %s", sfp_q(dir), strerror(errno));
    char **images = calloc((size_t)n + 1, sizeof *images);
    int n_images = 0, rc = images ? 0 : sfp_errorf(err, SFP_ENOMEM, "out of memory");
    bool subfolders = false;
    for (int i = 0; i < n && rc == 0 && !subfolders; i++) {
        char *p = path_join(dir, entries[i]->d_name);
        struct stat st;
        if (!p) rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        else if (stat(p, &st) != 0) rc = sfp_errorf(err, SFP_EIO, "%s: cannot open: %s", sfp_q(p), strerror(errno));
        else if (S_ISDIR(st.st_mode)) subfolders = true;
        else if (S_ISREG(st.st_mode) && has_image_extension(entries[i]->d_name)) {
            images[n_images++] = p;
            p = NULL;
        }
        free(p);
    }
    sfp_dataset_t *ds = NULL;
    sfp_data_opts_t dopts = {r->c, r->h, r->w, r->k, true};
    if (rc == 0 && subfolders) {
        if ((rc = data_open(dir, split, &dopts, &ds, err)) == 0 && strcmp(ds->format, "imagefolder") != 0) {
            rc = sfp_errorf(err, SFP_EUNSUPPORTED, "%s: holds %s data; detect reads image files (use eval)",
                            sfp_q(dir), ds->format);
            data_free(ds);
        }
        if (rc == 0 && (rc = add_source(r, ds, err)) == 0) rc = map_labels(r, &r->sources[r->n_sources - 1], err);
    } else if (rc == 0 && n_images == 0) {
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: no image files (.png .jpg .jpeg .bmp .gif .pgm .ppm .pnm) and no "
                        "class sub-folders", sfp_q(dir));
    } else if (rc == 0 && (rc = data_open_images((const char *const *)images, n_images, &dopts, &ds, err)) == 0) {
        rc = add_source(r, ds, err);
    }
    for (int i = 0; i < n_images; i++) free(images[i]);
    free(images);
    free_entries(entries, n);
    return rc;
}

/* Every positional after the model, in order; consecutive files share a source. */
static int open_inputs(detect_run_t *r, const char *const *args, int n_args, const char *split, sfp_error_t *err)
{
    sfp_data_opts_t dopts = {r->c, r->h, r->w, r->k, true};
    int i = 0, rc = 0;
    while (i < n_args && rc == 0) {
        struct stat st;
        if (stat(args[i], &st) != 0)
            return sfp_errorf(err, SFP_EIO, "%s: cannot open: %s", sfp_q(args[i]), strerror(errno));
        if (S_ISDIR(st.st_mode)) {
            rc = open_folder(r, args[i++], split, err);
            continue;
        }
        int first = i;
        while (i < n_args && stat(args[i], &st) == 0 && !S_ISDIR(st.st_mode)) i++;
        sfp_dataset_t *ds = NULL;
        if ((rc = data_open_images(args + first, i - first, &dopts, &ds, err)) == 0) rc = add_source(r, ds, err);
    }
    return rc;
}

/* One line on stderr when a source's images are not like the training
 * data the model recorded: other channels, another fit (padded instead of
 * resized...), or a scale to the model's input off by more than 25 %. The
 * model still runs: the line says why its accuracy may not hold. */
static void warn_unlike_training(const detect_run_t *r, const sfp_model_t *m, const char *model_path)
{
    const char *meta = sfp_model_meta_get(m, DATA_META_KEY);
    sfp_data_desc_t d;
    if (!meta || data_describe_parse(meta, model_path, &d, NULL) < 0) return;
    sfp_data_prep_t model_in;
    data_prep_init(&model_in, r->c, r->h, r->w);
    for (int s = 0; s < r->n_sources && d.data_height > 0; s++) {
        const sfp_dataset_t *ds = r->sources[s].ds;
        int c = 0, h = 0, w = 0;
        int64_t other = 0;
        if (!data_common_source_geometry(ds, &c, &h, &w, &other)) continue;
        double scale = (double)h / (double)d.data_height, scale_w = (double)w / (double)d.data_width;
        const char *fit = data_prep_fit_name(&model_in, ds);
        bool unlike = c != d.data_channels || (d.data_fit[0] && strcmp(fit, d.data_fit) != 0) || scale > 1.25 ||
                      scale < 0.8 || scale_w > 1.25 || scale_w < 0.8;
        if (!unlike) continue;
        fprintf(stderr,
                "onnx-sfp: warning: %s: images are %dx%dx%d (%s to %dx%d), the model was trained on %dx%dx%d "
                "images (%s%s%s): expect lower accuracy than at training\n",
                sfp_q(ds->path), c, h, w, fit, r->h, r->w, d.data_channels, d.data_height, d.data_width,
                d.data_fit[0] ? d.data_fit : "fit unknown", d.data_filter[0] && strcmp(d.data_filter, "none") ? ", " : "",
                d.data_filter[0] && strcmp(d.data_filter, "none") ? d.data_filter : "");
        break;
    }
    data_desc_clear(&d);
}

/* ------------------------------------------------------------------------ */
/* Running                                                                  */

/* Predicted class and its softmax probability from k logits. */
static int top1(const float *z, int k, double *confidence)
{
    int best = 0;
    for (int j = 1; j < k; j++)
        if (z[j] > z[best]) best = j;
    double sum = 0.0;
    for (int j = 0; j < k; j++) sum += exp((double)z[j] - (double)z[best]);
    *confidence = 1.0 / sum;
    return best;
}

static int classify(detect_run_t *r, sfp_model_t *m, const sfp_data_prep_t *prep, int64_t batch, int threads,
                    sfp_error_t *err)
{
    sfp_plan_t *plan = NULL, *tail = NULL;
    sfp_data_iter_t *it = NULL;
    int64_t done = 0;
    int rc = 0;
    r->results = calloc((size_t)r->n_images, sizeof *r->results);
    r->confusion = calloc((size_t)r->k * (size_t)r->k, sizeof *r->confusion);
    if (!r->results || !r->confusion) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int s = 0; s < r->n_sources && rc == 0; s++) {
        const detect_source_t *src = &r->sources[s];
        if ((rc = data_prep_check(prep, src->ds, err)) < 0) break;
        sfp_data_iter_opts_t iopts = {batch < src->ds->n ? batch : src->ds->n, false, false, true, 0, {0, false}, 0, 0};
        if ((rc = data_iter_create(src->ds, prep, &iopts, &it, err)) < 0) break;
        data_iter_start_epoch(it, 0);
        double t0 = sfp_now_seconds();
        sfp_data_batch_t b;
        while (rc == 0 && data_iter_next(it, &b)) {
            sfp_plan_t **slot = b.n == batch ? &plan : &tail;
            if (*slot && plan_input_shape(*slot, 0)->dims[0] != b.n) {
                plan_free(*slot);
                *slot = NULL;
            }
            double t_plan = sfp_now_seconds();
            if (!*slot && (rc = plan_create(m, b.n, 0, threads, slot, err)) < 0) break;
            double t_run = sfp_now_seconds();
            t0 += t_run - t_plan; /* plan creation is set-up, not per-image time */
            const void *inputs[1] = {b.x};
            if ((rc = plan_run(*slot, inputs, err)) < 0) break;
            double ms = 1e3 * (sfp_now_seconds() - t_run) / (double)b.n;
            const float *logits = plan_output(*slot, 0);
            for (int64_t i = 0; i < b.n; i++) {
                detect_result_t *res = &r->results[done + b.examples[i]];
                int label = src->to_model ? src->to_model[data_label(src->ds, b.examples[i])] : -1;
                res->path = data_source_path(src->ds, b.examples[i]);
                res->pixels = data_pixels(src->ds, b.examples[i]);
                res->predicted = top1(logits + i * r->k, r->k, &res->confidence);
                res->truth = label;
                res->ms = ms;
                if (label >= 0) r->confusion[(size_t)label * (size_t)r->k + (size_t)res->predicted]++;
            }
        }
        r->seconds += sfp_now_seconds() - t0;
        done += src->ds->n;
        data_iter_free(it);
        it = NULL;
    }
    data_iter_free(it);
    plan_free(tail);
    plan_free(plan);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */

static detect_summary_t summarise(const detect_run_t *r, const char *model_path)
{
    detect_summary_t s = {model_path, r->k, (const char *const *)r->class_names, r->c, r->h, r->w, r->n_images,
                          0, 0, 0.0, r->confusion, r->seconds > 0 ? (double)r->n_images / r->seconds : 0.0};
    int present = 0;
    for (int t = 0; t < r->k; t++) {
        int64_t row = 0;
        for (int p = 0; p < r->k; p++) row += r->confusion[(size_t)t * (size_t)r->k + (size_t)p];
        s.n_labelled += row;
        s.n_correct += r->confusion[(size_t)t * (size_t)r->k + (size_t)t];
        if (row > 0) {
            present++;
            s.balanced_accuracy += (double)r->confusion[(size_t)t * (size_t)r->k + (size_t)t] / (double)row;
        }
    }
    if (present) s.balanced_accuracy /= present;
    return s;
}

static json_object *json_fraction(const detect_summary_t *s, double value)
{
    return s->n_labelled > 0 ? json_object_new_double(value) : NULL;
}

static int print_json(const detect_run_t *r, const detect_summary_t *s, sfp_error_t *err)
{
    json_object *root = json_object_new_object(), *images = json_object_new_array();
    json_object *classes = json_object_new_array(), *confusion = json_object_new_array();
    json_object_object_add(root, "images", images);
    for (int64_t i = 0; i < r->n_images; i++) {
        const detect_result_t *res = &r->results[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "path", json_object_new_string(res->path));
        json_object_object_add(o, "class", json_object_new_string(r->class_names[res->predicted]));
        json_object_object_add(o, "confidence", json_object_new_double(res->confidence));
        json_object_object_add(o, "ms", json_object_new_double(res->ms));
        if (res->truth >= 0) json_object_object_add(o, "true_class", json_object_new_string(r->class_names[res->truth]));
        json_object_array_add(images, o);
    }
    json_object_object_add(root, "accuracy",
                           json_fraction(s, s->n_labelled ? (double)s->n_correct / (double)s->n_labelled : 0.0));
    json_object_object_add(root, "images_per_s", json_object_new_double(s->images_per_s));
    json_object_object_add(root, "balanced_accuracy", json_fraction(s, s->balanced_accuracy));
    json_object_object_add(root, "labelled", json_object_new_int64(s->n_labelled));
    for (int t = 0; t < r->k; t++) {
        json_object *row = json_object_new_array();
        json_object_array_add(classes, json_object_new_string(r->class_names[t]));
        for (int p = 0; p < r->k; p++)
            json_object_array_add(row, json_object_new_int64(r->confusion[(size_t)t * (size_t)r->k + (size_t)p]));
        json_object_array_add(confusion, row);
    }
    json_object_object_add(root, "classes", classes);
    if (s->n_labelled > 0) {
        json_object_object_add(root, "confusion", confusion);
    } else {
        json_object_put(confusion);
        json_object_object_add(root, "confusion", NULL);
    }
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    int rc = text ? 0 : sfp_errorf(err, SFP_ENOMEM, "out of memory writing JSON");
    if (text) printf("%s\n", text);
    json_object_put(root);
    return rc;
}

static void print_text(const detect_run_t *r, const detect_summary_t *s)
{
    for (int64_t i = 0; i < r->n_images; i++) {
        const detect_result_t *res = &r->results[i];
        printf("%s: %s %.4f %.3f ms", sfp_q(res->path), sfp_q(r->class_names[res->predicted]), res->confidence,
               res->ms);
        if (res->truth >= 0)
            printf(" (true %s%s)", sfp_q(r->class_names[res->truth]), res->truth == res->predicted ? "" : ", WRONG");
        printf("\n");
    }
    if (s->n_labelled > 0) {
        printf("accuracy %.2f%% (%lld of %lld labelled), balanced accuracy %.2f%%\n",
               100.0 * (double)s->n_correct / (double)s->n_labelled, (long long)s->n_correct,
               (long long)s->n_labelled, 100.0 * s->balanced_accuracy);
        printf("confusion matrix (rows: true class, columns: predicted class number)\n%24s", "");
        for (int p = 0; p < r->k; p++) printf(" %6d", p);
        printf("\n");
        for (int t = 0; t < r->k; t++) {
            printf("%3d %-20.20s", t, sfp_q(r->class_names[t]));
            for (int p = 0; p < r->k; p++) printf(" %6lld", (long long)r->confusion[(size_t)t * (size_t)r->k + (size_t)p]);
            printf("\n");
        }
    }
    printf("%lld images, %.1f images/s\n", (long long)r->n_images, s->images_per_s);
}

static int run(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    const char *path = a->pos[0], *html = cli_get(cmd, a, "html");
    const char *split = cli_get(cmd, a, "split") ? cli_get(cmd, a, "split") : "test";
    int64_t batch = 1;
    int rc;
    if (strcmp(split, "test") && strcmp(split, "train"))
        return sfp_errorf(err, SFP_EUSAGE, "--split: '%s' is not test or train", split);
    if ((rc = cli_int(cmd, a, "batch", 1, 4096, 1, &batch, err)) < 0) return rc;
    sfp_model_t *m = NULL;
    detect_run_t r;
    memset(&r, 0, sizeof r);
    if ((rc = sfp_model_load(path, &m, err)) < 0) return rc;
    if ((rc = cli_model_geometry(m, path, &r.c, &r.h, &r.w, &r.k, err)) < 0) goto done;
    sfp_data_prep_t prep;
    const char *prep_source = NULL;
    data_prep_init(&prep, r.c, r.h, r.w);
    if ((rc = cli_preprocessing(cmd, a, m, path, NULL, &prep, &prep_source, err)) < 0) goto done;
    if ((rc = class_names(&r, cli_get(cmd, a, "labels"), m, path, err)) < 0) goto done;
    if ((rc = open_inputs(&r, a->pos + 1, a->n_pos - 1, split, err)) < 0) goto done;
    if (!a->quiet) warn_unlike_training(&r, m, path);
    if (!a->quiet)
        fprintf(stderr, "onnx-sfp: detect %s on %lld images (%d sources, input %dx%dx%d, %d classes, batch %lld)\n",
                sfp_q(path), (long long)r.n_images, r.n_sources, r.c, r.h, r.w, r.k, (long long)batch);
    if ((rc = classify(&r, m, &prep, batch, a->threads, err)) < 0) goto done;
    detect_summary_t s = summarise(&r, path);
    if (html && (rc = detect_html_write(html, r.results, r.n_images, &s, err)) < 0) goto done;
    if (cli_flag(cmd, a, "json")) rc = print_json(&r, &s, err);
    else print_text(&r, &s);
done:
    run_clear(&r);
    sfp_model_free(m);
    return rc;
}

const cli_cmd_t cmd_detect = {
    "detect", "MODEL.onnx IMAGE|FOLDER... [--labels FILE] [--json] [--html FILE] [--batch B] [--mean LIST --std LIST]",
    "classify images (e.g. surface defects): class, confidence and ms per image; accuracy on labelled folders",
    "A FOLDER of class sub-folders (optionally under train/ and test/, see --split) is labelled: its\n"
    "folder names are matched to the model's class names, and the run ends with accuracy, balanced\n"
    "accuracy (mean recall per class) and the confusion matrix. Other folders and files are classified\n"
    "without labels. Class names come from --labels, else the model's metadata, else are indices.\n"
    "Preprocessing as in eval: pixels scaled to [0, 1], --mean/--std (default: the model's metadata),\n"
    "images fitted to the model's input (smaller ones padded and centred, others resized).\n"
    "ms is the forward pass of the image's batch divided by its size; images/s counts preprocessing too.",
    opts, 2, CLI_MAX_POS, run,
};
