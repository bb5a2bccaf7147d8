/* Option parsing for every subcommand: --name value, --name=value, flags,
 * lists (--name V1 V2 ... up to the next --option, for options whose argument
 * name ends in "..."), positionals, and the global --input-shape/--threads/
 * --quiet/--help. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const cli_opt_t global_opts[] = {
    {"input-shape", "DIMS", "sizes of symbolic input dims: 1x3x224x224, or NAME:1x3x224x224 (the batch stays free)"},
    {"threads", "T", "worker threads (default: all cores)"},
    {"quiet", NULL, "no progress output"},
    {"help", NULL, "show this help"},
    {0},
};

static int find_opt(const cli_opt_t *opts, const char *name, size_t len)
{
    for (int i = 0; opts && opts[i].name; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len)) return i;
    return -1;
}

void cli_print_help(const cli_cmd_t *cmd)
{
    printf("usage: onnx-sfp %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
    if (cmd->details) printf("\n%s\n", cmd->details);
    printf("\noptions:\n");
    for (int pass = 0; pass < 2; pass++) {
        const cli_opt_t *opts = pass ? global_opts : cmd->opts;
        for (int i = 0; opts && opts[i].name; i++) {
            char left[64];
            snprintf(left, sizeof left, "--%s%s%s", opts[i].name, opts[i].arg ? " " : "", opts[i].arg ? opts[i].arg : "");
            printf("  %-24s %s\n", left, opts[i].help);
        }
    }
}

static bool takes_list(const cli_opt_t *o)
{
    size_t n = o->arg ? strlen(o->arg) : 0;
    return n > 3 && !strcmp(o->arg + n - 3, "...");
}

static int parse_threads(const char *v, int *out, sfp_error_t *err)
{
    char *end = NULL;
    errno = 0;
    long t = strtol(v, &end, 10);
    if (errno || end == v || *end || t < 1 || t > 1024)
        return sfp_errorf(err, SFP_EUSAGE, "--threads: '%s' is not a thread count (1 to 1024)", v);
    *out = (int)t;
    return 0;
}

int cli_parse(const cli_cmd_t *cmd, int argc, char **argv, cli_args_t *a, sfp_error_t *err)
{
    memset(a, 0, sizeof *a);
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (only_pos || s[0] != '-' || s[1] == '\0') {
            if (a->n_pos >= CLI_MAX_POS) return sfp_errorf(err, SFP_EUSAGE, "too many arguments");
            a->pos[a->n_pos++] = s;
            continue;
        }
        if (!strcmp(s, "--")) {
            only_pos = true;
            continue;
        }
        if (s[1] != '-') return sfp_errorf(err, SFP_EUSAGE, "unknown option '%s' (options are spelled --name)", s);
        const char *name = s + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int k = find_opt(cmd->opts, name, len), g = k < 0 ? find_opt(global_opts, name, len) : -1;
        if (k < 0 && g < 0) return sfp_errorf(err, SFP_EUSAGE, "%s: unknown option '%s'", cmd->name, s);
        const cli_opt_t *o = k >= 0 ? &cmd->opts[k] : &global_opts[g];
        const char *val = NULL;
        if (k >= 0 && takes_list(o)) {
            if (a->set[k])
                return sfp_errorf(err, SFP_EUSAGE, "%s: option --%s given twice (list every value after one --%s)",
                                  cmd->name, o->name, o->name);
            int count = eq ? 1 : 0;
            if (eq) {
                a->value[k] = eq + 1;
                a->list[k] = &a->value[k]; /* valid while a lives */
            } else {
                a->list[k] = (const char *const *)argv + i + 1;
                while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                    i++;
                    count++;
                }
                a->value[k] = count ? a->list[k][0] : NULL;
            }
            if (count == 0)
                return sfp_errorf(err, SFP_EUSAGE, "%s: option --%s needs at least one value (%s)", cmd->name,
                                  o->name, o->arg);
            a->set[k] = true;
            a->n_list[k] = count;
            continue;
        }
        if (o->arg) {
            if (eq) val = eq + 1;
            else if (i + 1 < argc) val = argv[++i];
            else return sfp_errorf(err, SFP_EUSAGE, "%s: option --%s needs a value (%s)", cmd->name, o->name, o->arg);
        } else if (eq) {
            return sfp_errorf(err, SFP_EUSAGE, "%s: option --%s takes no value", cmd->name, o->name);
        }
        if (k >= 0) {
            a->set[k] = true;
            a->value[k] = val;
            continue;
        }
        if (!strcmp(o->name, "help")) {
            cli_print_help(cmd);
            return 1;
        }
        if (!strcmp(o->name, "quiet")) a->quiet = true;
        if (!strcmp(o->name, "input-shape")) cli_set_input_shape(val);
        if (!strcmp(o->name, "threads")) {
            int rc = parse_threads(val, &a->threads, err);
            if (rc < 0) return rc;
        }
    }
    if (a->n_pos < cmd->min_pos || a->n_pos > cmd->max_pos)
        return sfp_errorf(err, SFP_EUSAGE, "usage: onnx-sfp %s %s", cmd->name, cmd->usage);
    return 0;
}

const char *cli_get(const cli_cmd_t *cmd, const cli_args_t *a, const char *name)
{
    int k = find_opt(cmd->opts, name, strlen(name));
    return k >= 0 && a->set[k] ? a->value[k] : NULL;
}

bool cli_flag(const cli_cmd_t *cmd, const cli_args_t *a, const char *name)
{
    int k = find_opt(cmd->opts, name, strlen(name));
    return k >= 0 && a->set[k];
}

int cli_list(const cli_cmd_t *cmd, const cli_args_t *a, const char *name, const char *const **out)
{
    int k = find_opt(cmd->opts, name, strlen(name));
    *out = NULL;
    if (k < 0 || !a->set[k]) return 0;
    *out = a->list[k];
    return a->n_list[k];
}

int cli_int(const cli_cmd_t *cmd, const cli_args_t *a, const char *name, int64_t lo, int64_t hi, int64_t dflt,
            int64_t *out, sfp_error_t *err)
{
    const char *v = cli_get(cmd, a, name);
    if (!v) {
        *out = dflt;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return sfp_errorf(err, SFP_EUSAGE, "--%s: '%s' is not an integer in [%lld, %lld]", name, v, (long long)lo,
                          (long long)hi);
    *out = x;
    return 0;
}

int cli_double(const cli_cmd_t *cmd, const cli_args_t *a, const char *name, double lo, double hi, double dflt,
               double *out, sfp_error_t *err)
{
    const char *v = cli_get(cmd, a, name);
    if (!v) {
        *out = dflt;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        return sfp_errorf(err, SFP_EUSAGE, "--%s: '%s' is not a number in [%g, %g]", name, v, lo, hi);
    *out = x;
    return 0;
}

bool cli_same_file(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    if (!strcmp(a, b)) return true;
    return realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}
