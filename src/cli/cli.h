/* Command-line plumbing shared by the subcommands: option tables, parsing
 * into cli_args_t, number parsing with end-pointer checks, help text. */
#ifndef SFP_CLI_H
#define SFP_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "onnxsfp/error.h"

#define CLI_MAX_OPTS 64 /* options of one command's table; cli_parse refuses a longer table */
#define CLI_MAX_POS 64

typedef struct cli_opt {
    const char *name;   /* without the leading "--" */
    const char *arg;    /* argument name shown in help, NULL for a flag; ending in
                           "..." (e.g. "IN.pb...") the option takes every value up
                           to the next --option, and repeating it adds values */
    const char *help;
} cli_opt_t;

typedef struct cli_args {
    int n_pos;
    const char *pos[CLI_MAX_POS];
    const char *value[CLI_MAX_OPTS]; /* per option of the command's table (a list: its first value) */
    bool set[CLI_MAX_OPTS];
    const char *const *list[CLI_MAX_OPTS]; /* values of a "..." option (into argv, or value[]) */
    int n_list[CLI_MAX_OPTS];
    const char *pool[CLI_MAX_POS];   /* values of a list option given more than once */
    int n_pool;
    int threads;                      /* --threads, 0 = all cores */
    bool quiet;
} cli_args_t;

typedef struct cli_cmd {
    const char *name;
    const char *usage;     /* after "onnx-sfp NAME " */
    const char *summary;   /* one line */
    const char *details;   /* paragraph shown by NAME --help, may be NULL */
    const cli_opt_t *opts; /* terminated by {0} */
    int min_pos, max_pos;
    int (*run)(const struct cli_cmd *cmd, const cli_args_t *a, sfp_error_t *err);
} cli_cmd_t;

/* Parses argv (after the command name). Returns 1 when --help was shown. */
int cli_parse(const cli_cmd_t *cmd, int argc, char **argv, cli_args_t *a, sfp_error_t *err);
void cli_print_help(const cli_cmd_t *cmd);
/* Value of option name or NULL. */
const char *cli_get(const cli_cmd_t *cmd, const cli_args_t *a, const char *name);
bool cli_flag(const cli_cmd_t *cmd, const cli_args_t *a, const char *name);
/* Values of a "..." option: returns their count (0 when absent), *out at them. */
int cli_list(const cli_cmd_t *cmd, const cli_args_t *a, const char *name, const char *const **out);
int cli_int(const cli_cmd_t *cmd, const cli_args_t *a, const char *name, int64_t lo, int64_t hi, int64_t dflt,
            int64_t *out, sfp_error_t *err);
int cli_double(const cli_cmd_t *cmd, const cli_args_t *a, const char *name, double lo, double hi, double dflt,
               double *out, sfp_error_t *err);

/* The global --input-shape (cli_parse sets it) and the loader every command
 * uses for its input models. cli_model.c */
struct sfp_model;
void cli_set_input_shape(const char *spec);
int cli_load_model(const char *path, struct sfp_model **out, sfp_error_t *err);
/* The name in names[0..n) closest to word (its first len bytes): within one
 * edit for short words, two for longer ones, or word a prefix of it; NULL
 * when none is that close. For "did you mean" hints. */
const char *cli_closest(const char *word, size_t len, const char *const *names, int n);
/* The global options (--threads T, --quiet, --input-shape S) may come before the command:
 * true when argv[i] is one, *n_args set to how many words it takes (1 or 2). */
bool cli_is_global_opt(const char *arg, int *n_args);

/* True when a and b name the same file: the same string, or the same device
 * and inode (symlinks followed, hard links). "-" (stdout) is no file. */
bool cli_same_file(const char *a, const char *b);
/* SFP_EUSAGE when path is "-": models and checkpoints are binary, and the
 * command prints its figures on stdout. what names the option ("OUT"). */
int cli_model_out(const char *what, const char *path, sfp_error_t *err);

extern const cli_cmd_t cmd_report;
extern const cli_cmd_t cmd_init;
extern const cli_cmd_t cmd_compress;
extern const cli_cmd_t cmd_eval;
extern const cli_cmd_t cmd_bench;
extern const cli_cmd_t cmd_run;
extern const cli_cmd_t cmd_train;
extern const cli_cmd_t cmd_detect;
extern const cli_cmd_t cmd_sensitivity;

#endif
