/* onnx-sfp entry point: picks the subcommand, prints its one-line error as
 * "onnx-sfp: error: ..." and maps the error code to the exit status. Under
 * mpirun (MPI build) every process starts here; train and compress run on
 * all of them data-parallel, other commands on process 0 alone. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dist/dist.h"
#include "util/util.h"

static const cli_cmd_t *const commands[] = {&cmd_train, &cmd_compress, &cmd_eval, &cmd_report, &cmd_run,
                                            &cmd_init, &cmd_detect, &cmd_bench, &cmd_sensitivity};

static void usage(FILE *f)
{
    fprintf(f, "onnx-sfp: shrink ONNX convolutional networks by filter pruning\n\nusage: onnx-sfp COMMAND [ARGS] [--help]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f, "\nglobal options (before or after the command): --threads T, --quiet, --input-shape DIMS, --help\n"
               "exit status: 0 done, 1 failure while running, 2 usage, 3 bad model or data file, 4 unsupported,\n"
               "  5 a gate (--max-accuracy-drop) not met\n");
}

/* The commands that train data-parallel under mpirun (every process runs
 * them; process 0 alone prints and writes). The others run on process 0. */
static bool runs_distributed(const cli_cmd_t *cmd)
{
    return cmd == &cmd_train || cmd == &cmd_compress;
}

/* Makes this process a silent replica when it is not process 0 of a
 * data-parallel job, and shares the host's cores among the job's
 * processes there unless --threads says otherwise. */
static void join_job(cli_args_t *args)
{
    if (dist_size() == 1) return;
    if (args->threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        long share = cores > 0 ? cores / dist_local_size() : 1;
        args->threads = share >= 1 ? (int)share : 1;
    }
    if (dist_rank() == 0) return;
    args->quiet = true;
    sfp_set_replica(true);
    if (!freopen("/dev/null", "w", stdout)) fclose(stdout); /* either way process 0 alone prints figures */
}

/* Global options given before the command (onnx-sfp --quiet report M)
 * move to just after it, where every command parses them. */
static void command_first(int argc, char **argv)
{
    int first = 1, n = 0;
    while (first < argc && cli_is_global_opt(argv[first], &n)) first += n;
    if (first == 1 || first >= argc) return;
    char *command = argv[first];
    memmove(argv + 2, argv + 1, sizeof *argv * (size_t)(first - 1));
    argv[1] = command;
}

static int run(int argc, char **argv, sfp_error_t *err)
{
    command_first(argc, argv);
    int n_words = 0;
    if (argc < 2 || cli_is_global_opt(argv[1], &n_words)) { /* no command, or only global options */
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("onnx-sfp 0.1\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const cli_cmd_t *cmd = commands[i];
        if (strcmp(argv[1], cmd->name)) continue;
        if (dist_rank() != 0 && !runs_distributed(cmd)) return 0;
        cli_args_t args;
        int rc = cli_parse(cmd, argc - 2, argv + 2, &args, err);
        if (rc == 1) return 0;
        if (rc == 0 && runs_distributed(cmd)) join_job(&args);
        if (rc == 0) rc = cmd->run(cmd, &args, err);
        return rc < 0 ? rc : 0;
    }
    if (dist_rank() != 0) return 0;
    const char *names[sizeof commands / sizeof commands[0]];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) names[i] = commands[i]->name;
    const char *near = cli_closest(argv[1], strlen(argv[1]), names, (int)(sizeof names / sizeof names[0]));
    if (near) fprintf(stderr, "onnx-sfp: error: unknown command '%s' (did you mean '%s'?)\n", argv[1], near);
    else fprintf(stderr, "onnx-sfp: error: unknown command '%s' (see onnx-sfp --help)\n", argv[1]);
    return 2;
}

int main(int argc, char **argv)
{
    sfp_error_t err = {0};
    /* A file size limit (ulimit -f) must give a clear write error (EFBIG) and
     * the temp file removed, not a kill by SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    int rc = dist_init(&argc, &argv, &err);
    if (rc == 0) rc = run(argc, argv, &err);
    if (rc >= 0) { /* done, or usage printed (2) */
        dist_finalize();
        return rc;
    }
    /* A failure every process agreed on is printed by the lowest failing
     * one; any other ends the whole job, as the other processes may be
     * waiting for this one in a collective. */
    const int status = sfp_exit_status(rc);
    if (dist_size() == 1) fprintf(stderr, "onnx-sfp: error: %s\n", err.msg);
    else if (!dist_failed_elsewhere())
        fprintf(stderr, "onnx-sfp: error: process %d of %d: %s\n", dist_rank(), dist_size(), err.msg);
    if (!dist_failure_agreed()) dist_abort(status);
    dist_finalize();
    return status;
}
