/* onnx-sfp compress: prune channels per dependency group — by L2 norm at once
 * (--epochs 0), or while fine-tuning with the sfp / smooth / hybrid
 * schedules (--epochs N) — remove them from every place they live, check the
 * accuracy gate, write the smaller ONNX atomically, print the reduction. */
#define _DEFAULT_SOURCE
#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_train.h"
#include "dist/dist.h"
#include "onnxsfp/report.h"
#include "prune/prune.h"
#include "report/format.h"
#include "report/report_html.h"
#include "report/report_json.h"
#include "util/util.h"

static const cli_opt_t opts[] = {
    CLI_TRAIN_OPTS,
    {"rate", "R", "fraction of channels removed in each prunable group, in [0, 1) (default 0.5)"},
    {"flops", "F", "instead of --rate: smallest uniform rate that removes at least this fraction of MACs"},
    {"method", "M", "smooth (default), sfp or hybrid; with --epochs 0 all choose by L2 norm"},
    {"cluster-rate", "C", "hybrid: the part of --rate chosen as near-duplicate filters (default min(0.1, R))"},
    {"decay-fraction", "D", "smooth/hybrid: chosen channels fall to zero over this fraction of the steps (default 0.2)"},
    {"max-accuracy-drop", "P", "exit 5 and write nothing but --report-json when validation accuracy falls more than P points"},
    {"skip", "PATTERN", "leave groups whose layer names match this shell pattern alone"},
    {"keep-masked", "FILE", "also write the full-size model with the removed channels zeroed"},
    {"round-to", "N", "every group that loses channels keeps a multiple of N (a group below N stays whole; default 1)"},
    {"global", NULL, "rank channels across groups (L2 over the group's mean): one --rate or --flops, a rate per group"},
    {"distill", NULL, "fine-tune with the input model as teacher (knowledge distillation)"},
    {"distill-weight", "A", "--distill: loss = A T^2 KL(teacher || student at T) + (1 - A) cross-entropy (default 0.5)"},
    {"temperature", "T", "--distill: softmax temperature (default 4)"},
    {"rates", "FILE", "JSON {\"pattern\": rate}: the first pattern matching a group's layer sets its rate"},
    {"report-json", "FILE", "write the report of input vs output, method, rate and channels kept"},
    {"report-html", "FILE", "write the report as a self-contained HTML page: totals, accuracies, gate and per layer\n"
                            "bars of output channels and MACs before and after"},
    {0},
};

/* Fine-tuning epochs when --data is given without --epochs. */
enum { COMPRESS_EPOCHS = 10 };
/* Without --max-accuracy-drop, a loss above this many points is warned about. */
#define COMPRESS_WARN_DROP 5.0

static double ratio_removed(int64_t before, int64_t after)
{
    return before > 0 ? 1.0 - (double)after / (double)before : 0.0;
}

/* The command's options, parsed. */
typedef struct compress_args {
    const char *in, *out, *skip, *masked_path, *json_path, *html_path, *resume;
    double rate, flops, cluster_rate, decay_fraction, max_drop;
    int64_t epochs;
    sfp_prune_method_t method;
    const char *method_name;
    int64_t round_to;
    bool global;
    const char *rates_path;
    const int *remove;      /* channels removed per group (prune_counts_make) */
    bool distill;
    double distill_weight, temperature;
} compress_args_t;

/* What a run did, for --report-json and the summary. acc_* NaN: not measured. */
typedef struct run_summary {
    const char *method;
    double rate, cluster_rate;
    int64_t epochs;
    double acc_before, acc_after;
    int bn_reinserted;      /* BatchNormalization put back for fine-tuning */
    double max_drop;        /* --max-accuracy-drop in points, negative without */
    const compress_args_t *args; /* the options, for the report's "policy" */
} run_summary_t;

/* Validation accuracy lost, in points (NaN when not measured). */
static double drop_points(const run_summary_t *rs)
{
    return 100.0 * (rs->acc_before - rs->acc_after);
}

static bool gate_passed(const run_summary_t *rs)
{
    return rs->max_drop < 0.0 || !isfinite(rs->acc_before) || drop_points(rs) <= rs->max_drop;
}

/* {"max_accuracy_drop", "accuracy_drop", "passed"} (points), null without a gate. */
static json_object *gate_json(const run_summary_t *rs)
{
    if (rs->max_drop < 0.0) return NULL;
    json_object *g = json_object_new_object();
    json_object_object_add(g, "max_accuracy_drop", json_object_new_double(rs->max_drop));
    json_object_object_add(g, "accuracy_drop", isfinite(drop_points(rs)) ? json_object_new_double(drop_points(rs)) : NULL);
    json_object_object_add(g, "passed", json_object_new_boolean(gate_passed(rs)));
    return g;
}

static json_object *json_fraction(double v)
{
    return isfinite(v) ? json_object_new_double(v) : NULL;
}

/* The channel groups that layers make and that were left whole, and why:
 * [{"group", "channels", "reason"}]. */
static json_object *groups_left_whole(const sfp_groups_t *gs)
{
    json_object *arr = json_object_new_array();
    for (int gi = 0; arr && gi < gs->n; gi++) {
        const sfp_chan_group_t *grp = &gs->g[gi];
        if (grp->prunable || grp->n_sources == 0) continue;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "group", json_object_new_string(grp->label));
        json_object_object_add(o, "channels", json_object_new_int(grp->n_channels));
        json_object_object_add(o, "reason", json_object_new_string(grp->reason));
        json_object_array_add(arr, o);
    }
    return arr;
}

/* The channels each prunable group lost: [{"group", "channels", "removed", "rate"}]. */
static json_object *group_rates_json(const sfp_groups_t *gs, const sfp_prune_counts_t *pc)
{
    json_object *arr = json_object_new_array();
    for (int gi = 0; arr && gi < gs->n; gi++) {
        const sfp_chan_group_t *grp = &gs->g[gi];
        if (!grp->prunable) continue;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "group", json_object_new_string(grp->label));
        json_object_object_add(o, "channels", json_object_new_int(grp->n_channels));
        json_object_object_add(o, "removed", json_object_new_int(pc->remove[gi]));
        json_object_object_add(o, "rate", json_object_new_double((double)pc->remove[gi] / grp->n_channels));
        json_object_array_add(arr, o);
    }
    return arr;
}

/* stderr: one line per prunable group that lost channels. */
static void print_group_rates(const sfp_groups_t *gs, const sfp_prune_counts_t *pc)
{
    for (int gi = 0; gi < gs->n; gi++)
        if (gs->g[gi].prunable && pc->remove[gi] > 0)
            fprintf(stderr, "onnx-sfp:   %-40s %4d -> %4d channels (rate %.3f)\n", gs->g[gi].label, gs->g[gi].n_channels,
                    gs->g[gi].n_channels - pc->remove[gi], (double)pc->remove[gi] / gs->g[gi].n_channels);
}

/* How the channels to remove were chosen and how the model was fine-tuned:
 * {"flops", "round_to", "global", "rates_file", "distill"}. */
static json_object *policy_json(const compress_args_t *ca)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "flops", ca->flops > 0.0 ? json_object_new_double(ca->flops) : NULL);
    json_object_object_add(o, "round_to", json_object_new_int64(ca->round_to));
    json_object_object_add(o, "global", json_object_new_boolean(ca->global));
    json_object_object_add(o, "rates_file", ca->rates_path ? json_object_new_string(ca->rates_path) : NULL);
    json_object *d = NULL;
    if (ca->distill && ca->epochs > 0) {
        d = json_object_new_object();
        json_object_object_add(d, "weight", json_object_new_double(ca->distill_weight));
        json_object_object_add(d, "temperature", json_object_new_double(ca->temperature));
    }
    json_object_object_add(o, "distill", d);
    return o;
}

/* The --report-json object to json_path and its page (report_html.h) to
 * html_path; either may be NULL. */
static int write_report_json(const char *path, const char *html_path, const sfp_report_t *a, const sfp_report_t *b,
                             const run_summary_t *rs, const sfp_model_t *before, const sfp_model_t *after,
                             const sfp_groups_t *gs, const sfp_prune_counts_t *pc, sfp_error_t *err)
{
    json_object *root = report_json_object(a, b);
    if (!root) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    json_object_object_add(root, "method", json_object_new_string(rs->method));
    json_object_object_add(root, "rate", json_object_new_double(rs->rate));
    if (!strcmp(rs->method, "hybrid")) json_object_object_add(root, "cluster_rate", json_object_new_double(rs->cluster_rate));
    json_object_object_add(root, "epochs", json_object_new_int64(rs->epochs));
    json_object_object_add(root, "accuracy_before", json_fraction(rs->acc_before));
    json_object_object_add(root, "accuracy_after", json_fraction(rs->acc_after));
    json_object_object_add(root, "bn_reinserted", json_object_new_int(rs->bn_reinserted));
    json_object_object_add(root, "gate", gate_json(rs));
    json_object_object_add(root, "layers", report_layers_json(before, after));
    json_object_object_add(root, "groups_left_whole", groups_left_whole(gs));
    json_object_object_add(root, "group_rates", group_rates_json(gs, pc));
    json_object_object_add(root, "policy", policy_json(rs->args));
    char *text = path ? report_json_text(root) : NULL;
    int rc = path && !text ? sfp_errorf(err, SFP_ENOMEM, "out of memory")
             : path        ? sfp_write_file_atomic(path, (const uint8_t *)text, strlen(text), err)
                           : 0;
    if (rc == 0 && html_path) rc = report_html_write(html_path, root, err);
    free(text);
    json_object_put(root);
    return rc;
}

/* Accuracy of m on ds (validation), NaN without ds. */
static int accuracy_of(sfp_model_t *m, const sfp_dataset_t *ds, const sfp_data_prep_t *prep, int64_t batch,
                       int threads, double *acc, sfp_error_t *err)
{
    *acc = (double)NAN;
    if (!ds) return 0;
    sfp_evaluator_t *ev = NULL;
    sfp_eval_result_t r;
    int rc = evaluator_create(m, ds, prep, batch, threads, &ev, err);
    if (rc == 0) rc = evaluator_run(ev, &r, err);
    evaluator_free(ev);
    if (rc == 0) *acc = r.accuracy;
    return rc;
}


/* The training setup of a fine-tuning run on *work (a clone of the input,
 * or the checkpoint's model): data, flags, preprocessing recorded, and BN
 * re-inserted where the exporter folded it (then *work is replaced by a
 * fresh copy, so its value ids are those a copy of it will have). */
static int fine_tune_setup(const cli_cmd_t *cmd, const cli_args_t *a, const compress_args_t *ca, sfp_model_t **work,
                           cli_train_setup_t *s, run_summary_t *rs, sfp_error_t *err)
{
    char method_desc[400];
    snprintf(method_desc, sizeof method_desc,
             "method=%s rate=%g cluster=%g decay=%g skip=%s round=%lld global=%d rates=%s distill=%d/%g/%g",
             ca->method_name, ca->rate, ca->cluster_rate, ca->decay_fraction, ca->skip ? ca->skip : "",
             (long long)ca->round_to, (int)ca->global, ca->rates_path ? ca->rates_path : "", (int)ca->distill,
             ca->distill_weight, ca->temperature);
    sfp_model_t *copy = NULL;
    int inserted = 0;
    int rc = cli_train_setup(cmd, a, *work, ca->in, 0.01, COMPRESS_EPOCHS, method_desc, s, err);
    if (rc == 0) rc = cli_record_preprocessing(*work, s, err);
    if (rc == 0) rc = cli_bn_reinsert(s, *work, a->quiet, &inserted, err);
    /* counted in the model: a resumed run's checkpoint has them already */
    for (int i = 0; rc == 0 && i < (*work)->graph.n_nodes; i++) rs->bn_reinserted += bn_is_reinserted(&(*work)->graph.nodes[i]);
    if (rc < 0 || inserted == 0) return rc;
    if ((rc = sfp_model_clone(*work, &copy, err)) < 0) return rc;
    sfp_model_free(*work);
    *work = copy;
    return 0;
}

/* Fine-tunes `work` with the pruning schedule, then marks the chosen
 * channels in r. Measures accuracy before (orig). */
static int fine_tune(const cli_args_t *a, const compress_args_t *ca, sfp_model_t *orig, sfp_model_t *work,
                     const sfp_checkpoint_t *ck, sfp_groups_t *gs, sfp_removal_t *r, cli_train_setup_t *s,
                     run_summary_t *rs, sfp_error_t *err)
{
    sfp_trainer_t *t = NULL;
    sfp_pruner_t *pruner = NULL;
    char interrupt_path[PATH_MAX];
    int rc = 0;
    snprintf(interrupt_path, sizeof interrupt_path, "%s.ckpt", ca->out);
    s->opts.interrupt_path = interrupt_path;
    sfp_train_hooks_t hooks;
    pruner_train_hooks(&pruner, &hooks);
    sfp_prune_opts_t po = {ca->method, ca->rate, ca->cluster_rate, ca->decay_fraction, ca->skip, ca->remove};
    if ((rc = accuracy_of(orig, s->val, &s->prep, s->opts.batch, a->threads, &rs->acc_before, err)) < 0) goto done;
    s->opts.teacher = ca->distill ? orig : NULL;
    s->opts.distill = (sfp_distill_t){ca->distill_weight, ca->temperature};
    if ((rc = trainer_create(work, s->train, s->val, &s->prep, &s->opts, &hooks, &t, err)) < 0) goto done_setup;
    const int64_t total_steps = s->opts.epochs * trainer_steps_per_epoch(t);
    if ((rc = pruner_create(work, gs, &po, total_steps, &pruner, err)) < 0) goto done_setup;
    if (ck && (rc = trainer_resume(t, ck, ca->resume, err)) < 0) goto done_setup;
done_setup:
    /* Data-parallel: every process has its model, data and pruner, or all stop here. */
    if ((rc = dist_agree(rc, err)) < 0) goto done;
    if (!a->quiet) {
        fprintf(stderr, "onnx-sfp: compress %s: %s pruning at rate %.3f%s while fine-tuning %lld epochs on %s (%s, %lld images, "
                        "fit %s, preprocessing from %s)\n",
                ca->in, ca->method_name, ca->rate, ca->method == SFP_PRUNE_HYBRID ? " (part by redundancy)" : "",
                (long long)s->opts.epochs, s->train->path, s->train->format, (long long)s->train->n,
                data_prep_fit_name(&s->prep, s->train), s->prep_source);
        fprintf(stderr, "onnx-sfp: validation: %s; accuracy before: %s%.2f%%\n", s->val_desc,
                isfinite(rs->acc_before) ? "" : "n/a ", isfinite(rs->acc_before) ? 100.0 * rs->acc_before : 0.0);
    }
    if ((rc = trainer_run(t, err)) < 0) goto done;
    rc = pruner_finish(pruner, r, err);
done:
    pruner_free(pruner);
    trainer_free(t);
    return rc;
}

static int parse_args(const cli_cmd_t *cmd, const cli_args_t *a, compress_args_t *ca, sfp_error_t *err)
{
    memset(ca, 0, sizeof *ca);
    ca->in = a->pos[0];
    ca->out = a->pos[1];
    ca->method_name = cli_get(cmd, a, "method") ? cli_get(cmd, a, "method") : "smooth";
    ca->skip = cli_get(cmd, a, "skip");
    ca->masked_path = cli_get(cmd, a, "keep-masked");
    ca->json_path = cli_get(cmd, a, "report-json");
    ca->html_path = cli_get(cmd, a, "report-html");
    ca->resume = cli_get(cmd, a, "resume");
    ca->global = cli_flag(cmd, a, "global");
    ca->distill = cli_flag(cmd, a, "distill");
    ca->rates_path = cli_get(cmd, a, "rates");
    int rc;
    if (!strcmp(ca->method_name, "smooth")) ca->method = SFP_PRUNE_SMOOTH;
    else if (!strcmp(ca->method_name, "sfp")) ca->method = SFP_PRUNE_SFP;
    else if (!strcmp(ca->method_name, "hybrid")) ca->method = SFP_PRUNE_HYBRID;
    else return sfp_errorf(err, SFP_EUSAGE, "--method: '%s' is not smooth, sfp or hybrid", ca->method_name);
    if (cli_get(cmd, a, "rate") && cli_get(cmd, a, "flops"))
        return sfp_errorf(err, SFP_EUSAGE, "give --rate or --flops, not both");
    if ((rc = cli_double(cmd, a, "rate", 0.0, 0.999999, 0.5, &ca->rate, err)) < 0 ||
        (rc = cli_double(cmd, a, "flops", 0.0, 0.999999, 0.0, &ca->flops, err)) < 0 ||
        (rc = cli_double(cmd, a, "decay-fraction", 0.0, 1.0, 0.2, &ca->decay_fraction, err)) < 0 ||
        (rc = cli_double(cmd, a, "max-accuracy-drop", 0.0, 100.0, -1.0, &ca->max_drop, err)) < 0 ||
        (rc = cli_int(cmd, a, "round-to", 1, 4096, 1, &ca->round_to, err)) < 0 ||
        (rc = cli_double(cmd, a, "distill-weight", 0.0, 1.0, 0.5, &ca->distill_weight, err)) < 0 ||
        (rc = cli_double(cmd, a, "temperature", 1e-3, 1000.0, 4.0, &ca->temperature, err)) < 0 ||
        (rc = cli_int(cmd, a, "epochs", 0, 100000, cli_get(cmd, a, "data") ? COMPRESS_EPOCHS : 0, &ca->epochs, err)) < 0)
        return rc;
    if ((cli_get(cmd, a, "distill-weight") || cli_get(cmd, a, "temperature")) && !ca->distill)
        return sfp_errorf(err, SFP_EUSAGE, "--distill-weight and --temperature need --distill");
    if (ca->distill && ca->epochs == 0)
        return sfp_errorf(err, SFP_EUSAGE, "--distill applies to fine-tuning (--epochs N with --data)");
    if (cli_get(cmd, a, "cluster-rate") && ca->method != SFP_PRUNE_HYBRID)
        return sfp_errorf(err, SFP_EUSAGE, "--cluster-rate needs --method hybrid");
    if (ca->epochs > 0 && !cli_get(cmd, a, "data"))
        return sfp_errorf(err, SFP_EUSAGE, "--epochs %lld: fine-tuning needs --data PATH (--epochs 0 prunes without it)",
                          (long long)ca->epochs);
    if (ca->epochs == 0 && ca->resume) return sfp_errorf(err, SFP_EUSAGE, "--resume needs --epochs N (N > 0)");
    if (ca->epochs == 0 && cli_get(cmd, a, "bn"))
        return sfp_errorf(err, SFP_EUSAGE, "--bn applies to fine-tuning (--epochs N with --data); --epochs 0 trains nothing");
    if (ca->epochs == 0 && ca->max_drop >= 0.0 && !cli_get(cmd, a, "data") && !cli_get(cmd, a, "val-data"))
        return sfp_errorf(err, SFP_EUSAGE, "--max-accuracy-drop needs validation data (--data or --val-data)");
    if ((rc = cli_model_out("OUT", ca->out, err)) < 0 || (rc = cli_model_out("--keep-masked", ca->masked_path, err)) < 0 ||
        (rc = cli_model_out("--checkpoint", cli_get(cmd, a, "checkpoint"), err)) < 0)
        return rc;
    if (cli_same_file(ca->in, ca->out))
        return sfp_errorf(err, SFP_EUSAGE, "OUT must differ from IN (%s): the input is never overwritten", sfp_q(ca->out));
    /* The other files written must not be IN nor OUT nor each other either. */
    const char *extra[4][2] = {{"--keep-masked", ca->masked_path}, {"--report-json", ca->json_path},
                               {"--report-html", ca->html_path},
                               {"--checkpoint", cli_get(cmd, a, "checkpoint")}};
    for (int i = 0; i < 4; i++) {
        const char *p = extra[i][1];
        if (!p) continue;
        if (cli_same_file(ca->in, p))
            return sfp_errorf(err, SFP_EUSAGE, "%s %s: would overwrite IN; the input is never overwritten", extra[i][0],
                              sfp_q(p));
        if (cli_same_file(ca->out, p)) return sfp_errorf(err, SFP_EUSAGE, "%s %s: is also OUT", extra[i][0], sfp_q(p));
        for (int j = 0; j < i; j++)
            if (extra[j][1] && cli_same_file(extra[j][1], p))
                return sfp_errorf(err, SFP_EUSAGE, "%s and %s name the same file (%s)", extra[j][0], extra[i][0],
                                  sfp_q(p));
    }
    return 0;
}

/* --epochs 0 with --data/--val-data: accuracy before and after on the test
 * split of the data (no training happens, so nothing needs holding out). */
static int measure_without_training(const cli_cmd_t *cmd, const cli_args_t *a, const char *in, sfp_model_t *orig,
                                    sfp_model_t *pruned, run_summary_t *rs, sfp_error_t *err)
{
    const char *path = cli_get(cmd, a, "val-data") ? cli_get(cmd, a, "val-data") : cli_get(cmd, a, "data");
    if (!path) return 0;
    int c = 0, h = 0, w = 0, k = 0, rc;
    int64_t limit = 0;
    const char *src = NULL;
    sfp_dataset_t *full = NULL, *ds = NULL;
    sfp_data_prep_t prep;
    if ((rc = cli_int(cmd, a, "limit", 1, INT64_MAX, 0, &limit, err)) < 0) return rc;
    if ((rc = cli_model_geometry(orig, in, &c, &h, &w, &k, err)) < 0) return rc;
    data_prep_init(&prep, c, h, w);
    sfp_data_opts_t dopts = {c, h, w, k, false};
    if ((rc = cli_open_data(path, "test", &dopts, in, &full, err)) < 0) return rc;
    if (limit > 0 && (rc = data_subset(full, limit, &ds, err)) < 0) goto done;
    if ((rc = cli_preprocessing(cmd, a, orig, in, ds ? ds : full, &prep, &src, err)) < 0) goto done;
    if ((rc = accuracy_of(orig, ds ? ds : full, &prep, 128, a->threads, &rs->acc_before, err)) < 0) goto done;
    rc = accuracy_of(pruned, ds ? ds : full, &prep, 128, a->threads, &rs->acc_after, err);
done:
    data_free(ds);
    data_free(full);
    return rc;
}

static int run(const cli_cmd_t *cmd, const cli_args_t *a, sfp_error_t *err)
{
    compress_args_t ca;
    int rc = parse_args(cmd, a, &ca, err);
    if (rc < 0) return rc;
    const char *in = ca.in, *out = ca.out;
    const bool json_to_stdout = (ca.json_path && sfp_path_is_stdout(ca.json_path)) ||
                                (ca.html_path && sfp_path_is_stdout(ca.html_path));
    sfp_model_t *orig = NULL, *pruned = NULL, *masked = NULL;
    sfp_groups_t *gs = NULL;
    sfp_removal_t *r = NULL;
    sfp_report_t *rep_in = NULL, *rep_out = NULL;
    sfp_checkpoint_t ck;
    memset(&ck, 0, sizeof ck);
    cli_train_setup_t setup;
    memset(&setup, 0, sizeof setup);
    run_summary_t rs = {ca.method_name, 0, 0, ca.epochs, (double)NAN, (double)NAN, 0, ca.max_drop, &ca};
    sfp_rate_rule_t *rules = NULL;
    int n_rules = 0;
    sfp_prune_counts_t *pc = NULL;
    if ((rc = cli_load_model(in, &orig, err)) < 0) return rc;
    if (ca.rates_path && (rc = prune_rules_load(ca.rates_path, &rules, &n_rules, err)) < 0) goto done;
    sfp_rate_opts_t ro = {ca.rate, ca.flops, ca.global, (int)ca.round_to, ca.skip, rules, n_rules};
    /* Errors of the pruning steps name the input file, as loading errors do. */
    if (cli_get(cmd, a, "flops") && (rc = prune_rate_for_flops(orig, &ro, &ca.rate, err)) < 0) {
        sfp_error_prefix(err, "%s", sfp_q(in));
        goto done;
    }
    if ((rc = cli_double(cmd, a, "cluster-rate", 0.0, ca.rate, ca.rate < 0.1 ? ca.rate : 0.1, &ca.cluster_rate, err)) < 0)
        goto done;
    rs.rate = ca.rate;
    rs.cluster_rate = ca.cluster_rate;
    if (ca.resume) rc = cli_resume_model(ca.resume, &ck, &pruned, err);
    else rc = sfp_model_clone(orig, &pruned, err);
    if (rc < 0) goto done;
    if (ca.epochs > 0 && (rc = fine_tune_setup(cmd, a, &ca, &pruned, &setup, &rs, err)) < 0) goto done;
    if (ca.epochs > 0 && ca.max_drop >= 0.0 && !setup.val) {
        rc = sfp_errorf(err, SFP_EUSAGE, "--max-accuracy-drop needs validation data (--val-data, or --val-split above 0)");
        goto done;
    }
    if ((rc = groups_find(pruned, &gs, err)) < 0 || (rc = removal_create(gs, &r, err)) < 0) {
        if (strncmp(err->msg, in, strlen(in)) != 0) sfp_error_prefix(err, "%s", sfp_q(in));
        goto done;
    }
    if (ca.skip && !prune_skip_matches(pruned, gs, ca.skip)) {
        rc = sfp_errorf(err, SFP_EUSAGE, "--skip '%s' matches no layer of %s (report --groups lists them)",
                        sfp_q(ca.skip), sfp_q(in));
        goto done;
    }
    ro.rate = ca.rate;
    ro.flops = 0.0;
    if ((rc = prune_counts_make(pruned, gs, &ro, &pc, err)) < 0) {
        if (strncmp(err->msg, in, strlen(in)) != 0) sfp_error_prefix(err, "%s", sfp_q(in));
        goto done;
    }
    ca.remove = pc->remove;
    if (ca.epochs > 0) {
        if ((rc = fine_tune(a, &ca, orig, pruned, ca.resume ? &ck : NULL, gs, r, &setup, &rs, err)) < 0) goto done;
    } else if ((rc = prune_select_counts(pruned, gs, pc->remove, r, err)) < 0) {
        if (strncmp(err->msg, in, strlen(in)) != 0) sfp_error_prefix(err, "%s", sfp_q(in));
        goto done;
    }
    if (ca.masked_path) {
        if ((rc = sfp_model_clone(pruned, &masked, err)) < 0) goto done;
        if ((rc = surgery_mask(masked, gs, r, err)) < 0) goto done;
    }
    if ((rc = surgery_apply(pruned, gs, r, err)) < 0) {
        sfp_error_prefix(err, "%s", sfp_q(in));
        goto done;
    }
    /* the output in the input's form: re-inserted BN folded back (unless --bn keep) */
    if (ca.epochs > 0 && ((rc = cli_bn_finish(&setup, pruned, NULL, err)) < 0 ||
                          (masked && (rc = cli_bn_finish(&setup, masked, NULL, err)) < 0)))
        goto done;
    if ((rc = sfp_report_build(orig, in, &rep_in, err)) < 0 || (rc = sfp_report_build(pruned, out, &rep_out, err)) < 0) {
        sfp_error_prefix(err, "%s", sfp_q(in));
        goto done;
    }
    if (ca.epochs > 0)
        rc = accuracy_of(pruned, setup.val, &setup.prep, setup.opts.batch, a->threads, &rs.acc_after, err);
    else
        rc = measure_without_training(cmd, a, in, orig, pruned, &rs, err);
    if (rc < 0) goto done;
    if (isfinite(rs.acc_before) && !a->quiet)
        fprintf(stderr, "onnx-sfp: validation accuracy %.2f%% -> %.2f%% (%+.2f points)\n", 100.0 * rs.acc_before,
                100.0 * rs.acc_after, 100.0 * (rs.acc_after - rs.acc_before));
    if (!gate_passed(&rs)) { /* the report says why; no model is written */
        if (ca.json_path || ca.html_path)
            rc = write_report_json(ca.json_path, ca.html_path, rep_in, rep_out, &rs, orig, pruned, gs, pc, err);
        if (rc == 0)
            rc = sfp_errorf(err, SFP_EGATE,
                            "--max-accuracy-drop %g: validation accuracy fell %.2f points (%.2f%% -> %.2f%%); nothing "
                            "written%s",
                            ca.max_drop, drop_points(&rs), 100.0 * rs.acc_before, 100.0 * rs.acc_after,
                            ca.json_path || ca.html_path ? " but the report" : "");
        goto done;
    }
    if (ca.max_drop < 0.0 && drop_points(&rs) > COMPRESS_WARN_DROP)
        fprintf(stderr, "onnx-sfp: warning: validation accuracy fell %.2f points; --max-accuracy-drop P turns such a "
                        "loss into exit 5 with nothing written\n", drop_points(&rs));
    if (masked) rc = sfp_model_save(masked, ca.masked_path, err);
    if (rc == 0) rc = sfp_model_save(pruned, out, err);
    if (rc == 0 && (ca.json_path || ca.html_path))
        rc = write_report_json(ca.json_path, ca.html_path, rep_in, rep_out, &rs, orig, pruned, gs, pc, err);
    /* Process 0 writes (the others' writes are no-ops); all learn whether it could. */
    if ((rc = dist_agree(rc, err)) < 0) goto done;
    /* figures on stdout, unless the report JSON goes there: then stdout is the JSON alone */
    FILE *figures = json_to_stdout ? stderr : stdout;
    if (!a->quiet) { /* progress and summary on stderr */
        int pruned_groups = 0, prunable = 0;
        for (int gi = 0; gi < gs->n; gi++) {
            prunable += gs->g[gi].prunable;
            pruned_groups += pc->remove[gi] > 0;
        }
        fprintf(stderr, "onnx-sfp: pruned %d of %d prunable channel groups at %s %.3f%s%s (%s)\n", pruned_groups, prunable,
                ca.global ? "global rate" : "rate", ca.rate, ca.rates_path ? " and --rates" : "",
                ca.round_to > 1 ? ", kept counts rounded" : "", ca.epochs > 0 ? ca.method_name : "L2 norm, no fine-tuning");
        if (ca.global || ca.rates_path || ca.round_to > 1) print_group_rates(gs, pc);
        /* the groups left whole for a reason other than being the model's own inputs and outputs */
        for (int gi = 0, shown = 0; gi < gs->n; gi++) {
            const sfp_chan_group_t *grp = &gs->g[gi];
            if (grp->prunable || grp->n_sources == 0 || strstr(grp->reason, "never pruned")) continue;
            if (shown++ < 5) fprintf(stderr, "onnx-sfp: left whole: %s (%d channels): %s\n", grp->label, grp->n_channels, grp->reason);
            else if (shown == 6) fprintf(stderr, "onnx-sfp: (more groups left whole: --report-json lists them all)\n");
        }
    }
    char n1[32], n2[32], n3[32], n4[32];
    fprintf(figures, "params: %s -> %s (-%.2f%%)\nMACs:   %s -> %s (-%.2f%%)\n", report_group3(rep_in->params, n1, sizeof n1),
            report_group3(rep_out->params, n2, sizeof n2), 100.0 * ratio_removed(rep_in->params, rep_out->params),
            report_group3(rep_in->macs, n3, sizeof n3), report_group3(rep_out->macs, n4, sizeof n4),
            100.0 * ratio_removed(rep_in->macs, rep_out->macs));
    if (isfinite(rs.acc_before))
        fprintf(figures, "accuracy: %.2f%% -> %.2f%% (%+.2f points)\n", 100.0 * rs.acc_before, 100.0 * rs.acc_after,
               100.0 * (rs.acc_after - rs.acc_before));
    fprintf(figures, "wrote %s\n", out);
done:
    sfp_report_free(rep_in);
    sfp_report_free(rep_out);
    removal_free(r);
    prune_counts_free(pc);
    prune_rules_free(rules, n_rules);
    groups_free(gs);
    cli_train_setup_clear(&setup);
    checkpoint_clear(&ck);
    sfp_model_free(masked);
    sfp_model_free(pruned);
    sfp_model_free(orig);
    return rc;
}

const cli_cmd_t cmd_compress = {
    "compress",
    "IN.onnx OUT.onnx [--data PATH [--epochs N] ...] [--rate R | --flops F] [--method smooth|sfp|hybrid] "
    "[--skip PATTERN] [--keep-masked FILE] [--report-json FILE] [--report-html FILE] [--max-accuracy-drop P]",
    "prune channels while fine-tuning on --data (or at once with --epochs 0) and write a smaller ONNX",
    "Channels that must go together (residual streams, shortcut Concat/Pad, BN, the Gemm after pooling) form\n"
    "groups (see report --groups); a group of C channels loses floor(R * C) of them (never all), scored by the\n"
    "summed L2 norms of the filters that produce each channel. --flops F searches the smallest uniform rate\n"
    "(to 0.001) whose output has at most (1 - F) of the input's MACs. Model inputs and outputs keep their channels.\n"
    "With --data the model is fine-tuned for --epochs N (default 10; 0: prune at once, data only measures) while\n"
    "pruning: sfp zeroes the lowest-norm channels after\n"
    "every epoch (they may regrow); smooth (default) chooses them again every epoch and shrinks them a little\n"
    "after every step until they reach zero at --decay-fraction of the run; hybrid also prunes near-duplicate\n"
    "filters (--cluster-rate of the channels, part of --rate). Training flags as for `train` (default --lr 0.01).\n"
    "Validation accuracy before and after is printed and gated by --max-accuracy-drop.",
    opts, 2, 2, run,
};
