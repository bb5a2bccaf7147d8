/* How training progress is shown on stderr: a bar redrawn in place and fitted
 * to the terminal's width when stderr is a terminal, otherwise a line at most
 * every CLI_PROGRESS_LINE_SECONDS within an epoch and one per epoch. */
#ifndef SFP_CLI_PROGRESS_H
#define SFP_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

#include "train/train.h"

enum { CLI_PROGRESS_LINE_SECONDS = 30 };

typedef struct cli_progress {
    FILE *f;
    bool bar;           /* a terminal: redraw in place */
    bool drawn;         /* a bar is on the current line */
    double last_line;   /* lines mode: when the last step line was written (0: none yet) */
    double started;     /* lines mode: the first step event */
} cli_progress_t;

/* Sets up p for stderr (quiet: nothing is shown) and points the trainer's
 * options at it. p must outlive the trainer. */
void cli_progress_attach(cli_progress_t *p, bool quiet, sfp_train_opts_t *o);
/* The trainer's progress callback (ctx: a cli_progress_t). */
void cli_progress_show(void *ctx, const sfp_progress_t *e);

#endif
