/* What train, compress and eval share on the command line: the model's input
 * geometry, the preprocessing (flags, else the model's metadata, else the
 * data's own statistics), opening the training and validation data, and the
 * training flags turned into sfp_train_opts_t. */
#ifndef SFP_CLI_TRAIN_H
#define SFP_CLI_TRAIN_H

#include "cli/cli.h"
#include "cli/progress.h"
#include "data/data.h"
#include "train/train.h"

/* The training flags, spliced into a command's option table. */
#define CLI_TRAIN_OPTS                                                                                              \
    {"data", "PATH", "training data: IDX folder, CIFAR binary batches or class sub-folders of images"},             \
    {"val-data", "PATH", "validation data (its test split); default: a --val-split of the training data"},         \
    {"val-split", "F", "fraction of the training data held out for validation when no --val-data (default 0.1, 0: none)"}, \
    {"limit", "N", "use only the first N training examples (and the first N/10 of --val-data)"},                  \
    {"epochs", "N", "epochs of training"},                                                                         \
    {"batch", "B", "images per SGD step (default 128); the last partial batch of an epoch is dropped"},             \
    {"lr", "LR", "base learning rate"},                                                                            \
    {"schedule", "NAME", "constant, step or cosine (default cosine)"},                                             \
    {"milestones", "LIST", "step schedule: epochs where the rate is multiplied by --gamma (default 50%,75%)"},     \
    {"gamma", "G", "step schedule factor (default 0.1)"},                                                          \
    {"warmup", "E", "epochs of linear warm-up from 0.1 x LR (default 0)"},                                          \
    {"momentum", "M", "SGD momentum (default 0.9)"},                                                               \
    {"nesterov", NULL, "Nesterov momentum"},                                                                       \
    {"wd", "WD", "weight decay of conv/linear weights (default 5e-4)"},                                            \
    {"wd-bn", "WD", "weight decay of biases and BatchNormalization scale/bias (default: --wd)"},                   \
    {"label-smoothing", "S", "cross-entropy label smoothing in [0, 1) (default 0)"},                                \
    {"crop-pad", "P", "random crop with P pixels of padding (default H/8, 0: off)"},                               \
    {"no-flip", NULL, "no random horizontal flip"},                                                                \
    {"seed", "S", "shuffling and augmentation seed (default 1)"},                                                  \
    {"mean", "LIST", "per-channel mean after scaling pixels to [0, 1] (default: model metadata, else the data's)"}, \
    {"std", "LIST", "per-channel std (default: model metadata, else the data's)"},                                 \
    {"checkpoint", "FILE", "write a checkpoint after every epoch (and on Ctrl-C)"},                                \
    {"resume", "FILE", "continue a run from its checkpoint (same options; any number of MPI processes)"},           \
    {"local-bn", NULL, "under mpirun: BatchNormalization by each process's share of the batch (default: whole batch)"}, \
    {"bn", "MODE", "convolutions without BatchNormalization (BN folded by the exporter): fold (default: BN re-inserted " \
                   "for training, folded back into OUT), keep (kept in OUT) or none (trained as they are)"}

/* Model input C x H x W and class count K (the inferred shapes at batch 1);
 * SFP_EUNSUPPORTED naming path when it is not one NCHW input -> [N, K]. */
int cli_model_geometry(sfp_model_t *m, const char *path, int *c, int *h, int *w, int *k, sfp_error_t *err);

/* Evaluation data for m (read from path): the `split` of data_path fitted
 * to m's input, its first `limit` examples (0: all), and m's preprocessing
 * (cli_preprocessing without statistics: --mean/--std, metadata or 0/1)
 * checked against it. *out is owned by the caller (data_free). */
int cli_open_eval_data(const cli_cmd_t *cmd, const cli_args_t *a, sfp_model_t *m, const char *path,
                       const char *data_path, const char *split, int64_t limit, sfp_data_prep_t *prep,
                       const char **prep_source, sfp_dataset_t **out, sfp_error_t *err);

/* --mean/--std, else the model's recorded preprocessing (metadata), else
 * (stats_from non-NULL) the per-channel statistics of stats_from, else 0/1.
 * *source says which ("--mean/--std", "model metadata", "data statistics",
 * "none"). */
int cli_preprocessing(const cli_cmd_t *cmd, const cli_args_t *a, const sfp_model_t *m, const char *path,
                      const sfp_dataset_t *stats_from, sfp_data_prep_t *prep, const char **source, sfp_error_t *err);

/* data_open of path's split, refused (SFP_EBADDATA naming both counts) when
 * the data's own class count is not o->n_classes, the model's outputs. */
int cli_open_data(const char *path, const char *split, const sfp_data_opts_t *o, const char *model_path,
                  sfp_dataset_t **out, sfp_error_t *err);

/* --bn: what training does with convolutions an exporter left without
 * their BatchNormalization. */
typedef enum cli_bn_mode { CLI_BN_FOLD = 0, CLI_BN_KEEP, CLI_BN_NONE } cli_bn_mode_t;

/* Everything a training run needs, opened from the flags. Owns the datasets. */
typedef struct cli_train_setup {
    int c, h, w, k;
    sfp_data_prep_t prep;
    const char *prep_source;
    sfp_dataset_t *train;        /* owns */
    sfp_dataset_t *val;          /* owns; NULL without validation */
    sfp_train_opts_t opts;       /* strings point into argv / fingerprint below */
    cli_progress_t progress;     /* opts.progress_ctx points here */
    cli_bn_mode_t bn_mode;
    char fingerprint[512];
    char val_desc[160];          /* where validation data comes from, for the log */
} cli_train_setup_t;

/* Parses the training flags (lr_default: --lr when absent; epochs_default:
 * --epochs when absent, -1: required), opens --data (train split) and the
 * validation data, fixes the preprocessing. method_desc goes into the
 * fingerprint (compress's pruning options). */
int cli_train_setup(const cli_cmd_t *cmd, const cli_args_t *a, sfp_model_t *m, const char *model_path, double lr_default,
                    int64_t epochs_default, const char *method_desc, cli_train_setup_t *s, sfp_error_t *err);
void cli_train_setup_clear(cli_train_setup_t *s);

/* Writes the preprocessing description (and class names) into m's metadata. */
int cli_record_preprocessing(sfp_model_t *m, const cli_train_setup_t *s, sfp_error_t *err);

/* Bare convolutions (bn_bare_convs) get a BatchNormalization back unless
 * --bn none, initialised from their outputs' statistics on up to
 * CLI_BN_CALIB_IMAGES training images so the function is unchanged; says so
 * on stderr unless quiet. *n_inserted: how many (0 for models that have
 * their BN, and for a resumed model, which has them already). */
enum { CLI_BN_CALIB_IMAGES = 1024 };
int cli_bn_reinsert(const cli_train_setup_t *s, sfp_model_t *m, bool quiet, int *n_inserted, sfp_error_t *err);
/* Before writing: the re-inserted BatchNormalization folded back into its
 * convolution, unless --bn keep. *n_folded (may be NULL): how many. */
int cli_bn_finish(const cli_train_setup_t *s, sfp_model_t *m, int *n_folded, sfp_error_t *err);

/* The model a --resume continues: decoded from the checkpoint (*ck filled). */
int cli_resume_model(const char *ckpt_path, sfp_checkpoint_t *ck, sfp_model_t **out, sfp_error_t *err);

#endif
