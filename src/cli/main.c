/* onnx-sfp entry point: picks the subcommand, prints its one-line error as
 * "onnx-sfp: error: ..." and maps the error code to the exit status. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const cli_cmd_t *const commands[] = {&cmd_train, &cmd_compress, &cmd_eval, &cmd_report, &cmd_run,
                                            &cmd_init, &cmd_detect, &cmd_bench};

static void usage(FILE *f)
{
    fprintf(f, "onnx-sfp: shrink ONNX convolutional networks by filter pruning\n\nusage: onnx-sfp COMMAND [ARGS] [--help]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f, "\nglobal options: --threads T, --quiet, --help\n"
               "exit status: 0 done, 1 failure while running, 2 usage, 3 bad model or data file, 4 unsupported\n");
}

int main(int argc, char **argv)
{
    sfp_error_t err = {0};
    /* A file size limit (ulimit -f) must give a clear write error (EFBIG) and
     * the temp file removed, not a kill by SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
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
        cli_args_t args;
        int rc = cli_parse(cmd, argc - 2, argv + 2, &args, &err);
        if (rc == 1) return 0;
        if (rc == 0) rc = cmd->run(cmd, &args, &err);
        if (rc < 0) {
            fprintf(stderr, "onnx-sfp: error: %s\n", err.msg);
            return sfp_exit_status(rc);
        }
        return 0;
    }
    fprintf(stderr, "onnx-sfp: error: unknown command '%s' (see onnx-sfp --help)\n", argv[1]);
    return 2;
}
