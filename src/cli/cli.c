/* Option parsing for every subcommand: --name value, --name=value, flags,
 * lists (--name V1 V2 ... up to the next --option, for options whose argument
 * name ends in "..."), positionals, and the global --input-shape/--threads/
 * --quiet/--help. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "util/util.h"

static const cli_opt_t global_opts[] = {
    {"input-shape", "DIMS", "sizes of symbolic input dims: 1x3x224x224, or NAME:1x3x224x224 (the batch stays free)"},
    {"threads", "T", "worker threads (default: all cores)"},
    {"quiet", NULL, "no progress output"},
    {"help", NULL, "show this help"},
    {0},
};

/* Edit distance of a (la bytes) and b: insertions, deletions, substitutions
 * and swaps of two neighbours (--jsno for --json), capped at 3: only "close"
 * matters. */
static int distance(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b);
    if (la > 40 || lb > 40) return 3;
    int d[41][41];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb] < 3 ? d[la][lb] : 3;
}

const char *cli_closest(const char *word, size_t len, const char *const *names, int n)
{
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; i < n; i++) {
        int d = distance(word, len, names[i]);
        bool prefix = len >= 3 && !strncmp(names[i], word, len); /* --epoch for --epochs */
        if (prefix) d = 1;
        if (d < best_d || (d == best_d && best && strlen(names[i]) < strlen(best))) {
            best_d = d;
            best = names[i];
        }
    }
    return best_d <= (len > 4 ? 2 : 1) ? best : NULL;
}

/* The closest option name of the command (and the global ones) to name. */
static const char *closest_opt(const cli_cmd_t *cmd, const char *name, size_t len)
{
    const char *names[CLI_MAX_OPTS + 8];
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (const cli_opt_t *o = pass ? global_opts : cmd->opts; o && o->name && n < CLI_MAX_OPTS + 8; o++)
            names[n++] = o->name;
    return cli_closest(name, len, names, n);
}

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
            printf("  %-24s ", left);
            for (const char *h = opts[i].help; *h; h++) { /* continuation lines under the first */
                if (*h == '\n') printf("\n%27s", "");
                else putchar(*h);
            }
            printf("\n");
        }
    }
}

static bool takes_list(const cli_opt_t *o)
{
    size_t n = o->arg ? strlen(o->arg) : 0;
    return n > 3 && !strcmp(o->arg + n - 3, "...");
}

bool cli_is_global_opt(const char *arg, int *n_args)
{
    *n_args = 1;
    if (strncmp(arg, "--", 2) != 0) return false;
    const char *name = arg + 2, *eq = strchr(name, '=');
    int g = find_opt(global_opts, name, eq ? (size_t)(eq - name) : strlen(name));
    if (g < 0 || !strcmp(global_opts[g].name, "help")) return false;
    *n_args = global_opts[g].arg && !eq ? 2 : 1;
    return true;
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
    int n_opts = 0;
    while (cmd->opts && cmd->opts[n_opts].name) n_opts++;
    if (n_opts > CLI_MAX_OPTS) /* a table the per-option arrays cannot hold: a fault of the tool */
        return sfp_errorf(err, SFP_ERUNTIME, "internal: command '%s' has %d options, at most %d fit", cmd->name, n_opts,
                          CLI_MAX_OPTS);
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
        if (k < 0 && g < 0) {
            const char *near = closest_opt(cmd, name, len);
            return sfp_errorf(err, SFP_EUSAGE, "%s: unknown option '%s'%s%s%s", cmd->name, s, near ? " (did you mean --" : "",
                              near ? near : "", near ? "?)" : "");
        }
        const cli_opt_t *o = k >= 0 ? &cmd->opts[k] : &global_opts[g];
        const char *val = NULL;
        if (k >= 0 && takes_list(o)) {
            const char *const *before = a->list[k];
            int n_before = a->set[k] ? a->n_list[k] : 0, count = eq ? 1 : 0;
            if (n_before > 0 && before == &a->value[k]) { /* --input=A: value[k] is about to change */
                if (a->n_pool >= CLI_MAX_POS) return sfp_errorf(err, SFP_EUSAGE, "%s: too many values", cmd->name);
                a->pool[a->n_pool] = a->value[k];
                before = &a->pool[a->n_pool++];
            }
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
            if (n_before > 0) { /* --input A --input B: the values so far, then these, in the pool */
                if (a->n_pool + n_before + count > CLI_MAX_POS)
                    return sfp_errorf(err, SFP_EUSAGE, "%s: too many values for --%s", cmd->name, o->name);
                const char **joined = a->pool + a->n_pool;
                for (int j = 0; j < n_before; j++) joined[j] = before[j];
                for (int j = 0; j < count; j++) joined[n_before + j] = a->list[k][j];
                a->n_pool += n_before + count;
                a->list[k] = joined;
                a->value[k] = joined[0];
                count += n_before;
            }
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

/* Where a file that does not exist yet would be created: its links
 * followed, its folder's real path, its name. Malloc'd; NULL when unknown. */
static char *future_path(const char *path)
{
    sfp_error_t err = {0};
    char *target = NULL, dir[PATH_MAX], *out = NULL;
    if (sfp_follow_links(path, &target, &err) < 0) return NULL;
    char *slash = strrchr(target, '/');
    const char *name = slash ? slash + 1 : target;
    if (slash == target) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - target) : 1, slash ? target : ".");
    char real[PATH_MAX];
    size_t size = strlen(name) + PATH_MAX + 2;
    if (realpath(dir, real) && (out = malloc(size))) snprintf(out, size, "%s/%s", real, name);
    free(target);
    return out;
}

bool cli_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!strcmp(a, b)) return true;
    if (!strcmp(a, "-") || !strcmp(b, "-")) return false;
    /* any other name: symlinks followed, hard links (same device and inode) */
    bool ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ea || eb) return false;
    /* neither exists yet: two names (links) of the same new file? */
    char *fa = future_path(a), *fb = future_path(b);
    bool same = fa && fb && !strcmp(fa, fb);
    free(fa);
    free(fb);
    return same;
}

int cli_model_out(const char *what, const char *path, sfp_error_t *err)
{
    if (path && !strcmp(path, "-"))
        return sfp_errorf(err, SFP_EUSAGE, "%s '-': a model is not written to stdout; give a file name", what);
    return 0;
}
