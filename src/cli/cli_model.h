/* A monotonic clock for the commands that time runs (detect). Model
 * geometry and normalisation: cli_train.h. */
#ifndef SFP_CLI_MODEL_H
#define SFP_CLI_MODEL_H

/* Seconds on a monotonic clock. */
double cli_now_seconds(void);

#endif
