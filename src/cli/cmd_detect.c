/* onnx-sfp detect: classifies image files and folders with a model, or with
 * two (the original and the compressed one, side by side on the same
 * images): predicted class, softmax confidence, time per image. A folder of
 * class sub-folders is labelled data: its folder names are matched to the
 * model's class names (ignoring case, spaces, '-', '_' and '/'; a
 * classes.txt in the folder or --labels maps anything else), and the run
 * ends with accuracy, balanced accuracy, escape rate, per-class recall and
 * the confusion matrix. Files that cannot be decoded are skipped and named;
 * every input is decoded before anything runs. */
#define _DEFAULT_SOURCE
#include <ctype.h>
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
#include "onnxsfp/report.h"
#include "report/detect_html.h"
#include "train/plan.h"
#include "util/util.h"

#define LABELS_MAX_BYTES ((size_t)4 << 20)
#define FOLDER_LABELS "classes.txt" /* in a labelled folder: its folder name for each model class */
#define OK_CLASS "ok"               /* the class of defect-free parts (escape rate) */

static const cli_opt_t opts[] = {
    {"labels", "FILE", "the model's class names, one per line (default: the model's metadata, else indices)"},
    {"split", "NAME", "a folder holding train/ and test/: which one to read (default test)"},
    {"batch", "B", "images per forward pass (default 1: ms is each image's own latency)"},
    {"min-confidence", "P", "calls below confidence P (0..1) go to an 'uncertain' bucket, not counted as calls"},
    {"ok-threshold", "P", "call 'ok' only when its probability is at least P (0..1), else the likeliest defect (default: argmax)"},
    {"strict", NULL, "exit 3 (after all output) when a file could not be decoded"},
    {"mean", "LIST", "per-channel mean after scaling pixels to [0, 1] (default: model metadata, else 0)"},
    {"std", "LIST", "per-channel std (default: model metadata, else 1)"},
    {"json", NULL, "print one JSON object (images, scores, skipped files; docs/json.md)"},
    {"html", "FILE", "also write a self-contained HTML page: summary, skipped files, thumbnails"},
    {0},
};

static const char *const image_extensions[] = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".pnm"};

/* One argument's images: a labelled folder (map set) or files. */
typedef struct detect_source {
    sfp_dataset_t *ds;  /* owns */
    int *to_model;      /* owns: folder class -> model class; NULL when unlabelled */
} detect_source_t;

/* One model of the run. */
typedef struct detect_model {
    const char *path;
    sfp_model_t *m;           /* owns */
    sfp_data_prep_t prep;
    double seconds;           /* preprocessing + forward, all images */
    double forward_ms;        /* forward, all images */
} detect_model_t;

typedef struct detect_run {
    int c, h, w, k;
    char **class_names;    /* owns: k names (given, recorded or "0".."k-1") */
    bool names_known;      /* from --labels or the model's metadata */
    detect_model_t models[DETECT_MAX_MODELS];
    int n_models;
    double min_confidence;
    double ok_threshold;   /* > 0: 'ok' needs at least this probability */
    int ok;                /* the ok class, or -1 */
    detect_source_t *sources;
    int n_sources;
    int64_t n_images;
    detect_image_t *images;   /* n_images; paths borrowed from the sources */
    uint8_t **thumbs;         /* owns: n_images thumbnails (--html), NULL entries when none */
    int64_t n_skipped;
    const char **skipped_paths, **skipped_reasons; /* borrowed from the sources */
} detect_run_t;

static void run_clear(detect_run_t *r)
{
    for (int i = 0; r->class_names && i < r->k; i++) free(r->class_names[i]);
    free(r->class_names);
    for (int i = 0; i < r->n_sources; i++) {
        data_free(r->sources[i].ds);
        free(r->sources[i].to_model);
    }
    for (int i = 0; i < r->n_models; i++) sfp_model_free(r->models[i].m);
    for (int64_t i = 0; r->thumbs && i < r->n_images; i++) free(r->thumbs[i]);
    free(r->thumbs);
    free(r->sources);
    free(r->images);
    free((void *)r->skipped_paths);
    free((void *)r->skipped_reasons);
}

/* ------------------------------------------------------------------------ */
/* Class names                                                              */

/* k names, one per line of the file at path (CRLF accepted), into out
 * (k slots, filled with owned copies). */
static int read_names(const char *path, int k, char **out, sfp_error_t *err)
{
    uint8_t *text = NULL;
    size_t len = 0;
    int rc = sfp_read_file(path, LABELS_MAX_BYTES, &text, &len, err);
    if (rc < 0) return rc;
    if (memchr(text, '\0', len)) rc = sfp_errorf(err, SFP_EBADDATA, "%s: class names file holds a NUL byte", sfp_q(path));
    int n = 0;
    size_t start = 0;
    while (rc == 0 && start < len) {
        const uint8_t *nl = memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) : len, stop = end;
        if (stop > start && text[stop - 1] == '\r') stop--;
        if (stop == start) {
            rc = sfp_errorf(err, SFP_EBADDATA, "%s: line %d is empty (one class name per line)", sfp_q(path), n + 1);
        } else if (n >= k) {
            rc = sfp_errorf(err, SFP_EBADDATA, "%s: more than the model's %d class names", sfp_q(path), k);
        } else if (!(out[n] = sfp_strndup((const char *)text + start, stop - start))) {
            rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
        } else {
            for (int j = 0; j < n && rc == 0; j++)
                if (!strcmp(out[j], out[n]))
                    rc = sfp_errorf(err, SFP_EBADDATA, "%s: class name '%s' appears twice", sfp_q(path),
                                    sfp_q(out[n]));
            n++;
        }
        start = end + 1;
    }
    if (rc == 0 && n != k)
        rc = sfp_errorf(err, SFP_EBADDATA, "%s: %d class names, the model has %d outputs", sfp_q(path), n, k);
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
        int rc = read_names(labels_path, r->k, r->class_names, err);
        if (rc < 0) sfp_error_prefix(err, "--labels");
        return rc;
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

/* a and b equal ignoring ASCII case, spaces, '-', '_' and '/' ("Ankle boot"
 * = "ankle-boot", "T-shirt/top" = "tshirt_top"). */
static bool same_class_name(const char *a, const char *b)
{
    for (;;) {
        while (*a && strchr(" -_/", *a)) a++;
        while (*b && strchr(" -_/", *b)) b++;
        if (!*a || !*b) return !*a && !*b;
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
        a++;
        b++;
    }
}

/* Folder class -> model class: by name when the model's names are known
 * (aliases, from a classes.txt in the folder, first), else by position. A
 * folder class matching no model class is refused. */
static int map_labels(const detect_run_t *r, detect_source_t *src, char *const *aliases, const char *aliases_path,
                      sfp_error_t *err)
{
    const sfp_dataset_t *ds = src->ds;
    if (!(src->to_model = malloc(sizeof(int) * (size_t)ds->n_classes)))
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int f = 0; f < ds->n_classes; f++) {
        src->to_model[f] = r->names_known || aliases ? -1 : f;
        for (int j = 0; aliases && j < r->k && src->to_model[f] < 0; j++)
            if (same_class_name(ds->class_names[f], aliases[j])) src->to_model[f] = j;
        for (int j = 0; r->names_known && j < r->k && src->to_model[f] < 0; j++)
            if (same_class_name(ds->class_names[f], r->class_names[j])) src->to_model[f] = j;
        if (src->to_model[f] >= 0) continue;
        char known[256] = "";
        size_t used = 0;
        for (int j = 0; j < r->k && used < sizeof known - 1; j++) {
            int n = snprintf(known + used, sizeof known - used, "%s%s", j ? ", " : "", r->class_names[j]);
            used += n > 0 ? (size_t)n : 0;
        }
        return sfp_errorf(err, SFP_EBADDATA, "%s: class folder '%s' is not one of the model's classes (%s)%s%s; "
                          "map it in %s (line i: the folder of class i) or give --labels",
                          sfp_q(ds->path), sfp_q(ds->class_names[f]), sfp_q(known),
                          aliases ? " nor in " : "", aliases ? sfp_q(aliases_path) : "", FOLDER_LABELS);
    }
    return 0;
}

/* A second model must name its classes as the first does (when both name
 * them): its calls are read with the first one's names. */
static int same_classes(const detect_run_t *r, sfp_error_t *err)
{
    sfp_data_desc_t d[DETECT_MAX_MODELS];
    memset(d, 0, sizeof d);
    int rc = 0;
    for (int m = 0; m < r->n_models && rc == 0; m++) {
        const char *meta = sfp_model_meta_get(r->models[m].m, DATA_META_KEY);
        if (meta) rc = data_describe_parse(meta, r->models[m].path, &d[m], err);
    }
    if (rc == 0 && r->n_models == 2 && d[0].n_classes == r->k && d[1].n_classes == r->k)
        for (int j = 0; j < r->k && rc == 0; j++)
            if (strcmp(d[0].class_names[j], d[1].class_names[j]) != 0)
                rc = sfp_errorf(err, SFP_EUSAGE, "%s names class %d '%s', %s names it '%s': give two models of the "
                                "same task", sfp_q(r->models[0].path), j, sfp_q(d[0].class_names[j]),
                                sfp_q(r->models[1].path), sfp_q(d[1].class_names[j]));
    for (int m = 0; m < DETECT_MAX_MODELS; m++) data_desc_clear(&d[m]);
    return rc;
}

/* FOLDER/classes.txt, when present: k folder names in the model's class order. */
static int folder_aliases(const detect_run_t *r, const char *dir, char ***out, char **path_out, sfp_error_t *err)
{
    *out = NULL;
    *path_out = NULL;
    size_t n = strlen(dir) + sizeof FOLDER_LABELS + 2;
    char *path = malloc(n);
    if (!path) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    snprintf(path, n, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", FOLDER_LABELS);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        free(path);
        return 0;
    }
    char **names = calloc((size_t)r->k, sizeof *names);
    int rc = names ? read_names(path, r->k, names, err) : sfp_errorf(err, SFP_ENOMEM, "out of memory");
    if (rc < 0) {
        for (int i = 0; names && i < r->k; i++) free(names[i]);
        free(names);
        free(path);
        return rc;
    }
    *out = names;
    *path_out = path;
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
        char **aliases = NULL, *aliases_path = NULL;
        if (rc == 0 && (rc = add_source(r, ds, err)) == 0 &&
            (rc = folder_aliases(r, dir, &aliases, &aliases_path, err)) == 0)
            rc = map_labels(r, &r->sources[r->n_sources - 1], aliases, aliases_path, err);
        for (int i = 0; aliases && i < r->k; i++) free(aliases[i]);
        free(aliases);
        free(aliases_path);
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
    /* Descriptions without a "filter" recorded the size image files were
     * fitted to, not their own: nothing to compare with. */
    if (!d.data_filter[0] && (!strcmp(d.data_format, "imagefolder") || !strcmp(d.data_format, "images")))
        d.data_height = 0;
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

/* Predicted class and its softmax probability from k logits. With ok >= 0
 * and ok_threshold > 0 the ok class is called only when its probability
 * reaches ok_threshold, else the likeliest other class: an operating point
 * that trades false alarms for fewer escapes. */
static int decide(const float *z, int k, int ok, double ok_threshold, double *confidence)
{
    int best = 0;
    for (int j = 1; j < k; j++)
        if (z[j] > z[best]) best = j;
    double sum = 0.0;
    for (int j = 0; j < k; j++) sum += exp((double)z[j] - (double)z[best]);
    *confidence = 1.0 / sum;
    if (best != ok || ok_threshold <= 0.0 || *confidence >= ok_threshold || k < 2) return best;
    int other = ok == 0 ? 1 : 0;
    for (int j = 0; j < k; j++)
        if (j != ok && z[j] > z[other]) other = j;
    *confidence = exp((double)z[other] - (double)z[best]) / sum;
    return other;
}

/* The images of every source, in order, with their true classes. */
static int list_images(detect_run_t *r, sfp_error_t *err)
{
    if (!(r->images = calloc((size_t)(r->n_images > 0 ? r->n_images : 1), sizeof *r->images)))
        return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    int64_t done = 0, n_bad = 0;
    for (int s = 0; s < r->n_sources; s++) {
        const detect_source_t *src = &r->sources[s];
        for (int64_t i = 0; i < src->ds->n; i++) {
            detect_image_t *im = &r->images[done + i];
            im->path = data_source_path(src->ds, i);
            im->truth = src->to_model ? src->to_model[data_label(src->ds, i)] : -1;
        }
        done += src->ds->n;
        n_bad += data_n_unreadable(src->ds);
    }
    r->skipped_paths = calloc((size_t)(n_bad > 0 ? n_bad : 1), sizeof *r->skipped_paths);
    r->skipped_reasons = calloc((size_t)(n_bad > 0 ? n_bad : 1), sizeof *r->skipped_reasons);
    if (!r->skipped_paths || !r->skipped_reasons) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    for (int s = 0; s < r->n_sources; s++)
        for (int64_t j = 0; j < data_n_unreadable(r->sources[s].ds); j++, r->n_skipped++)
            r->skipped_paths[r->n_skipped] =
                data_unreadable(r->sources[s].ds, j, &r->skipped_reasons[r->n_skipped]);
    if (r->n_images == 0)
        return sfp_errorf(err, SFP_EBADDATA, "%s: no image could be decoded (%s)",
                          sfp_q(r->n_skipped ? r->skipped_paths[0] : "input"),
                          r->n_skipped ? r->skipped_reasons[0] : "no images");
    return 0;
}

/* Model mi's call on every image. */
static int classify(detect_run_t *r, int mi, int64_t batch, int threads, sfp_error_t *err)
{
    detect_model_t *dm = &r->models[mi];
    sfp_plan_t *plan = NULL, *tail = NULL;
    sfp_data_iter_t *it = NULL;
    int64_t done = 0;
    int rc = 0;
    for (int s = 0; s < r->n_sources && rc == 0; s++) {
        const detect_source_t *src = &r->sources[s];
        if (src->ds->n == 0) continue;
        if ((rc = data_prep_check(&dm->prep, src->ds, err)) < 0) break;
        sfp_data_iter_opts_t iopts = {batch < src->ds->n ? batch : src->ds->n, false, false, true, 0, {0, false}, 0, 0};
        if ((rc = data_iter_create(src->ds, &dm->prep, &iopts, &it, err)) < 0) break;
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
            if (!*slot && (rc = plan_create(dm->m, b.n, SFP_PLAN_CONST_WEIGHTS, threads, slot, err)) < 0) break;
            double t_run = sfp_now_seconds();
            t0 += t_run - t_plan; /* plan creation is set-up, not per-image time */
            const void *inputs[1] = {b.x};
            if ((rc = plan_run(*slot, inputs, err)) < 0) break;
            double ms = 1e3 * (sfp_now_seconds() - t_run) / (double)b.n;
            dm->forward_ms += ms * (double)b.n;
            const float *logits = plan_output(*slot, 0);
            for (int64_t i = 0; i < b.n; i++) {
                detect_call_t *c = &r->images[done + b.examples[i]].call[mi];
                c->predicted = decide(logits + i * r->k, r->k, r->ok, r->ok_threshold, &c->confidence);
                c->uncertain = c->confidence < r->min_confidence;
                c->ms = ms;
            }
        }
        dm->seconds += sfp_now_seconds() - t0;
        done += src->ds->n;
        data_iter_free(it);
        it = NULL;
    }
    data_iter_free(it);
    plan_free(tail);
    plan_free(plan);
    return rc;
}

/* Thumbnails of the original files (the page shows what a person sees, not
 * the model's input): the longer side DETECT_HTML_THUMB at most, aspect
 * kept. Consecutive files of one size are decoded by one child. */
static int make_thumbnails(detect_run_t *r, sfp_error_t *err)
{
    if (!(r->thumbs = calloc((size_t)r->n_images, sizeof *r->thumbs))) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    int64_t first = 0;
    for (int s = 0; s < r->n_sources; s++) {
        const sfp_dataset_t *ds = r->sources[s].ds;
        int64_t i = 0;
        while (i < ds->n) {
            int c = 1, h = 1, w = 1;
            data_source_geometry(ds, i, &c, &h, &w);
            int longer = h > w ? h : w, th = h, tw = w;
            if (longer > DETECT_HTML_THUMB) {
                th = (int)((int64_t)h * DETECT_HTML_THUMB / longer);
                tw = (int)((int64_t)w * DETECT_HTML_THUMB / longer);
                th = th < 1 ? 1 : th;
                tw = tw < 1 ? 1 : tw;
            }
            int64_t end = i + 1;
            for (int c2 = 0, h2 = 0, w2 = 0; end < ds->n && data_source_geometry(ds, end, &c2, &h2, &w2) &&
                                              c2 == c && h2 == h && w2 == w;)
                end++;
            size_t row = (size_t)c * (size_t)th * (size_t)tw;
            uint8_t *pixels = malloc(row * (size_t)(end - i));
            const char **paths = malloc(sizeof *paths * (size_t)(end - i));
            int rc = pixels && paths ? 0 : sfp_errorf(err, SFP_ENOMEM, "out of memory");
            for (int64_t j = i; j < end && rc == 0; j++) paths[j - i] = data_source_path(ds, j);
            if (rc == 0) rc = data_image_load_many(paths, end - i, c, th, tw, pixels, NULL, false, err);
            free(paths);
            for (int64_t j = i; j < end && rc == 0; j++) {
                detect_image_t *im = &r->images[first + j];
                if (!(r->thumbs[first + j] = malloc(row))) {
                    rc = sfp_errorf(err, SFP_ENOMEM, "out of memory");
                    break;
                }
                memcpy(r->thumbs[first + j], pixels + (size_t)(j - i) * row, row);
                im->thumb = r->thumbs[first + j];
                im->thumb_c = c;
                im->thumb_h = th;
                im->thumb_w = tw;
            }
            free(pixels);
            if (rc < 0) return rc;
            i = end;
        }
        first += ds->n;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Scores and output                                                        */

static int ok_class(const detect_run_t *r)
{
    for (int j = 0; j < r->k; j++)
        if (same_class_name(r->class_names[j], OK_CLASS)) return j;
    return -1;
}

static int summarise(const detect_run_t *r, int mi, detect_model_summary_t *s, sfp_error_t *err)
{
    const int k = r->k, ok = ok_class(r);
    memset(s, 0, sizeof *s);
    s->path = r->models[mi].path;
    s->recall = calloc((size_t)k, sizeof *s->recall);
    s->confusion = calloc((size_t)k * (size_t)k, sizeof *s->confusion);
    if (!s->recall || !s->confusion) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    int64_t defects = 0, escapes = 0;
    for (int64_t i = 0; i < r->n_images; i++) {
        const detect_image_t *im = &r->images[i];
        const detect_call_t *c = &im->call[mi];
        s->n_uncertain += c->uncertain;
        if (im->truth < 0) continue;
        s->n_labelled++;
        if (ok >= 0 && im->truth != ok) {
            defects++;
            escapes += !c->uncertain && c->predicted == ok;
        }
        if (c->uncertain) continue;
        s->n_decided++;
        s->n_correct += c->predicted == im->truth;
        s->confusion[(size_t)im->truth * (size_t)k + (size_t)c->predicted]++;
    }
    s->accuracy = s->n_decided ? (double)s->n_correct / (double)s->n_decided : (double)NAN;
    s->escape_rate = defects ? (double)escapes / (double)defects : (double)NAN;
    int present = 0;
    double sum = 0.0;
    for (int t = 0; t < k; t++) {
        int64_t row = 0;
        for (int p = 0; p < k; p++) row += s->confusion[(size_t)t * (size_t)k + (size_t)p];
        s->recall[t] = row ? (double)s->confusion[(size_t)t * (size_t)k + (size_t)t] / (double)row : (double)NAN;
        if (row) {
            present++;
            sum += s->recall[t];
        }
    }
    s->balanced_accuracy = present ? sum / present : (double)NAN;
    s->ms_per_image = r->n_images ? r->models[mi].forward_ms / (double)r->n_images : 0.0;
    s->images_per_s = r->models[mi].seconds > 0 ? (double)r->n_images / r->models[mi].seconds : 0.0;
    sfp_report_t *rep = NULL;
    s->macs = s->params = -1;
    if (sfp_report_build(r->models[mi].m, s->path, &rep, NULL) == 0) {
        s->macs = rep->macs;
        s->params = rep->params;
    }
    sfp_report_free(rep);
    return 0;
}

static double agreement(const detect_run_t *r)
{
    if (r->n_models < 2 || r->n_images == 0) return (double)NAN;
    int64_t same = 0;
    for (int64_t i = 0; i < r->n_images; i++) same += r->images[i].call[0].predicted == r->images[i].call[1].predicted;
    return (double)same / (double)r->n_images;
}

static json_object *json_fraction(double v)
{
    return isnan(v) ? NULL : json_object_new_double(v);
}

/* One call's keys, into o (a new object when NULL). */
static json_object *json_call(const detect_run_t *r, const detect_call_t *c, json_object *o)
{
    if (!o) o = json_object_new_object();
    json_object_object_add(o, "class", json_object_new_string(r->class_names[c->predicted]));
    json_object_object_add(o, "confidence", json_object_new_double(c->confidence));
    json_object_object_add(o, "ms", json_object_new_double(c->ms));
    json_object_object_add(o, "uncertain", json_object_new_boolean(c->uncertain));
    return o;
}

/* The scores of one model into o. */
static void json_scores(const detect_run_t *r, const detect_model_summary_t *s, json_object *o)
{
    json_object *recall = json_object_new_object(), *confusion = json_object_new_array();
    json_object_object_add(o, "accuracy", json_fraction(s->accuracy));
    json_object_object_add(o, "balanced_accuracy", json_fraction(s->balanced_accuracy));
    json_object_object_add(o, "escape_rate", json_fraction(s->escape_rate));
    json_object_object_add(o, "labelled", json_object_new_int64(s->n_labelled));
    json_object_object_add(o, "decided", json_object_new_int64(s->n_decided));
    json_object_object_add(o, "uncertain", json_object_new_int64(s->n_uncertain));
    json_object_object_add(o, "images_per_s", json_object_new_double(s->images_per_s));
    json_object_object_add(o, "ms_per_image", json_object_new_double(s->ms_per_image));
    json_object_object_add(o, "macs", s->macs >= 0 ? json_object_new_int64(s->macs) : NULL);
    json_object_object_add(o, "params", s->params >= 0 ? json_object_new_int64(s->params) : NULL);
    for (int t = 0; t < r->k; t++) {
        json_object_object_add(recall, r->class_names[t], json_fraction(s->recall[t]));
        json_object *row = json_object_new_array();
        for (int p = 0; p < r->k; p++)
            json_object_array_add(row, json_object_new_int64(s->confusion[(size_t)t * (size_t)r->k + (size_t)p]));
        json_object_array_add(confusion, row);
    }
    json_object_object_add(o, "recall", s->n_labelled > 0 ? recall : NULL);
    if (s->n_labelled == 0) json_object_put(recall);
    json_object_object_add(o, "confusion", s->n_labelled > 0 ? confusion : NULL);
    if (s->n_labelled == 0) json_object_put(confusion);
}

static int print_json(const detect_run_t *r, const detect_model_summary_t *ms, sfp_error_t *err)
{
    json_object *root = json_object_new_object(), *images = json_object_new_array();
    json_object *classes = json_object_new_array(), *skipped = json_object_new_array();
    json_object_object_add(root, "schema_version", json_object_new_int(SFP_JSON_SCHEMA_VERSION));
    json_object_object_add(root, "model", json_object_new_string(ms[0].path));
    json_object_object_add(root, "images", images);
    for (int64_t i = 0; i < r->n_images; i++) {
        const detect_image_t *im = &r->images[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "path", json_object_new_string(im->path));
        json_call(r, &im->call[0], o);
        if (im->truth >= 0) json_object_object_add(o, "true_class", json_object_new_string(r->class_names[im->truth]));
        if (r->n_models == 2) json_object_object_add(o, "second", json_call(r, &im->call[1], NULL));
        json_object_array_add(images, o);
    }
    json_scores(r, &ms[0], root);
    for (int t = 0; t < r->k; t++) json_object_array_add(classes, json_object_new_string(r->class_names[t]));
    json_object_object_add(root, "classes", classes);
    int ok = ok_class(r);
    json_object_object_add(root, "ok_class", ok >= 0 ? json_object_new_string(r->class_names[ok]) : NULL);
    json_object_object_add(root, "min_confidence", json_object_new_double(r->min_confidence));
    json_object_object_add(root, "ok_threshold", r->ok_threshold > 0.0 ? json_object_new_double(r->ok_threshold) : NULL);
    for (int64_t i = 0; i < r->n_skipped; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "path", json_object_new_string(r->skipped_paths[i]));
        json_object_object_add(o, "reason", json_object_new_string(r->skipped_reasons[i]));
        json_object_array_add(skipped, o);
    }
    json_object_object_add(root, "skipped", skipped);
    if (r->n_models == 2) {
        json_object *second = json_object_new_object();
        json_object_object_add(second, "model", json_object_new_string(ms[1].path));
        json_scores(r, &ms[1], second);
        json_object_object_add(root, "second", second);
        json_object_object_add(root, "agreement", json_fraction(agreement(r)));
    }
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    int rc = text ? 0 : sfp_errorf(err, SFP_ENOMEM, "out of memory writing JSON");
    if (text) printf("%s\n", text);
    json_object_put(root);
    return rc;
}

static void print_call(const detect_run_t *r, const detect_call_t *c)
{
    printf(" %s %.4f %.3f ms%s", sfp_q(r->class_names[c->predicted]), c->confidence, c->ms,
           c->uncertain ? " UNCERTAIN" : "");
}

static void print_scores(const detect_run_t *r, const detect_model_summary_t *s, const char *tag)
{
    printf("%s%s: ", tag, sfp_q(s->path));
    if (s->n_labelled == 0) {
        printf("no labelled images");
    } else {
        printf("accuracy %.2f%% (%lld of %lld decided), balanced accuracy %.2f%%", 100.0 * s->accuracy,
               (long long)s->n_correct, (long long)s->n_decided, 100.0 * s->balanced_accuracy);
        if (!isnan(s->escape_rate)) printf(", escape rate %.2f%%", 100.0 * s->escape_rate);
    }
    printf(", %lld uncertain, %.3f ms/image, %.1f images/s", (long long)s->n_uncertain, s->ms_per_image,
           s->images_per_s);
    if (s->macs >= 0) printf(", %lld MACs, %lld params", (long long)s->macs, (long long)s->params);
    printf("\n");
    if (s->n_labelled == 0) return;
    printf("recall:");
    for (int t = 0; t < r->k; t++)
        if (!isnan(s->recall[t])) printf(" %s %.2f%%", sfp_q(r->class_names[t]), 100.0 * s->recall[t]);
    printf("\nconfusion matrix (rows: true class, columns: predicted class number)\n%24s", "");
    for (int p = 0; p < r->k; p++) printf(" %6d", p);
    printf("\n");
    for (int t = 0; t < r->k; t++) {
        printf("%3d %-20.20s", t, sfp_q(r->class_names[t]));
        for (int p = 0; p < r->k; p++) printf(" %6lld", (long long)s->confusion[(size_t)t * (size_t)r->k + (size_t)p]);
        printf("\n");
    }
}

static void print_text(const detect_run_t *r, const detect_model_summary_t *ms)
{
    for (int64_t i = 0; i < r->n_images; i++) {
        const detect_image_t *im = &r->images[i];
        printf("%s:", sfp_q(im->path));
        print_call(r, &im->call[0]);
        if (r->n_models == 2) {
            printf(" |");
            print_call(r, &im->call[1]);
        }
        if (im->truth >= 0) {
            bool wrong = false;
            for (int m = 0; m < r->n_models; m++)
                wrong = wrong || (!im->call[m].uncertain && im->call[m].predicted != im->truth);
            printf(" (true %s%s)", sfp_q(r->class_names[im->truth]), wrong ? ", WRONG" : "");
        }
        printf("\n");
    }
    for (int64_t i = 0; i < r->n_skipped; i++)
        printf("skipped %s: %s\n", sfp_q(r->skipped_paths[i]), sfp_q(r->skipped_reasons[i]));
    for (int m = 0; m < r->n_models; m++) print_scores(r, &ms[m], r->n_models == 2 ? (m ? "B " : "A ") : "");
    if (r->n_models == 2) printf("agreement %.2f%% (same class)\n", 100.0 * agreement(r));
    printf("%lld images, %lld skipped (not decoded)\n", (long long)r->n_images, (long long)r->n_skipped);
}

/* ------------------------------------------------------------------------ */
/* The command                                                              */

static bool is_model_path(const char *p)
{
    size_t n = strlen(p);
    struct stat st;
    return n > 5 && strcasecmp(p + n - 5, ".onnx") == 0 && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int load_model(const cli_cmd_t *cmd, const cli_args_t *a, detect_run_t *r, const char *path, sfp_error_t *err)
{
    detect_model_t *dm = &r->models[r->n_models];
    int c = 0, h = 0, w = 0, k = 0, rc;
    dm->path = path;
    if ((rc = cli_load_model(path, &dm->m, err)) < 0) return rc;
    r->n_models++;
    if ((rc = cli_model_geometry(dm->m, path, &c, &h, &w, &k, err)) < 0) return rc;
    if (r->n_models == 1) {
        r->c = c;
        r->h = h;
        r->w = w;
        r->k = k;
    } else if (c != r->c || h != r->h || w != r->w || k != r->k) {
        return sfp_errorf(err, SFP_EUSAGE, "%s: input %dx%dx%d and %d classes, %s has %dx%dx%d and %d: give two "
                          "models of the same task (the original and its compressed copy)", sfp_q(path), c, h, w, k,
                          sfp_q(r->models[0].path), r->c, r->h, r->w, r->k);
    }
    const char *prep_source = NULL;
    data_prep_init(&dm->prep, c, h, w);
    return cli_preprocessing(cmd, a, dm->m, path, NULL, &dm->prep, &prep_source, err);
}

static int run(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    const char *html = cli_get(cmd, a, "html");
    const char *split = cli_get(cmd, a, "split") ? cli_get(cmd, a, "split") : "test";
    int64_t batch = 1;
    int rc;
    detect_run_t r;
    memset(&r, 0, sizeof r);
    detect_model_summary_t ms[DETECT_MAX_MODELS];
    memset(ms, 0, sizeof ms);
    if (strcmp(split, "test") && strcmp(split, "train"))
        return sfp_errorf(err, SFP_EUSAGE, "--split: '%s' is not test or train", split);
    if ((rc = cli_int(cmd, a, "batch", 1, 4096, 1, &batch, err)) < 0) return rc;
    if ((rc = cli_double(cmd, a, "min-confidence", 0.0, 1.0, 0.0, &r.min_confidence, err)) < 0) return rc;
    if ((rc = cli_double(cmd, a, "ok-threshold", 0.0, 1.0, 0.0, &r.ok_threshold, err)) < 0) return rc;
    int first_input = a->n_pos > 2 && is_model_path(a->pos[1]) ? 2 : 1;
    for (int i = 0; i < first_input && rc == 0; i++) rc = load_model(cmd, a, &r, a->pos[i], err);
    if (rc < 0) goto done;
    if ((rc = same_classes(&r, err)) < 0) goto done;
    if ((rc = class_names(&r, cli_get(cmd, a, "labels"), r.models[0].m, r.models[0].path, err)) < 0) goto done;
    if ((rc = open_inputs(&r, a->pos + first_input, a->n_pos - first_input, split, err)) < 0) goto done;
    if ((rc = list_images(&r, err)) < 0) goto done;
    r.ok = ok_class(&r);
    if (r.ok_threshold > 0.0 && r.ok < 0) {
        rc = sfp_errorf(err, SFP_EUSAGE, "--ok-threshold: the model has no class named 'ok'");
        goto done;
    }
    if (!a->quiet) {
        warn_unlike_training(&r, r.models[0].m, r.models[0].path);
        fprintf(stderr, "onnx-sfp: detect %s%s%s on %lld images (%d sources, %lld not decoded, input %dx%dx%d, %d "
                "classes, batch %lld)\n", sfp_q(r.models[0].path), r.n_models == 2 ? " and " : "",
                r.n_models == 2 ? sfp_q(r.models[1].path) : "", (long long)r.n_images, r.n_sources,
                (long long)r.n_skipped, r.c, r.h, r.w, r.k, (long long)batch);
    }
    for (int m = 0; m < r.n_models && rc == 0; m++) rc = classify(&r, m, batch, a->threads, err);
    for (int m = 0; m < r.n_models && rc == 0; m++) rc = summarise(&r, m, &ms[m], err);
    if (rc == 0 && html && (rc = make_thumbnails(&r, err)) == 0) {
        int ok = ok_class(&r);
        detect_page_t page = {r.k, (const char *const *)r.class_names, ok, r.min_confidence, r.ok_threshold, r.n_models, ms,
                              agreement(&r), r.n_images, r.images, r.n_skipped, r.skipped_paths, r.skipped_reasons};
        rc = detect_html_write(html, &page, err);
    }
    if (rc < 0) goto done;
    if (cli_flag(cmd, a, "json")) rc = print_json(&r, ms, err);
    else print_text(&r, ms);
    if (rc == 0 && r.n_skipped > 0 && cli_flag(cmd, a, "strict"))
        rc = sfp_errorf(err, SFP_EBADDATA, "%lld file(s) could not be decoded (--strict), the first %s: %s",
                        (long long)r.n_skipped, sfp_q(r.skipped_paths[0]), r.skipped_reasons[0]);
done:
    for (int m = 0; m < DETECT_MAX_MODELS; m++) {
        free(ms[m].recall);
        free(ms[m].confusion);
    }
    run_clear(&r);
    return rc;
}

const cli_cmd_t cmd_detect = {
    "detect",
    "MODEL.onnx [COMPRESSED.onnx] IMAGE|FOLDER... [--labels FILE] [--min-confidence P] [--strict] [--json] "
    "[--html FILE] [--batch B] [--mean LIST --std LIST]",
    "classify images (e.g. surface defects): class, confidence and ms per image; scores on labelled folders",
    "A FOLDER of class sub-folders (optionally under train/ and test/, see --split) is labelled: its\n"
    "folder names are matched to the model's class names ignoring case, spaces, '-', '_' and '/'\n"
    "(a classes.txt in the folder, line i the folder name of class i, maps others), and the run ends\n"
    "with accuracy, balanced accuracy (mean recall per class), escape rate (defect images called 'ok'),\n"
    "per-class recall and the confusion matrix. Other folders and files are classified without labels.\n"
    "Class names come from --labels, else the model's metadata, else are indices. A second model\n"
    "(a path ending in .onnx right after the first) runs on the same images, side by side.\n"
    "Files that cannot be decoded are skipped and listed ('skipped'); --strict then exits 3.\n"
    "--min-confidence P: calls below P are 'uncertain', counted apart, not as right or wrong.\n"
    "--ok-threshold P: 'ok' is called only when the model gives it probability P or more, else the\n"
    "likeliest defect class: fewer escapes for more false alarms (an operating point chosen on validation images).\n"
    "Preprocessing as in train and eval (same loader): pixels scaled to [0, 1], --mean/--std (default:\n"
    "the model's metadata), images fitted to the model's input (smaller ones padded and centred, others\n"
    "resized); a warning when the images differ from those the model was trained on.\n"
    "ms is the forward pass of the image's batch divided by its size; images/s counts preprocessing too.",
    opts, 2, CLI_MAX_POS, run,
};
