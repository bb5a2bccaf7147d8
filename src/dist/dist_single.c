/* The process group of a build without MPI: one process, rank 0, and
 * collectives that leave their buffers unchanged (the sum over one process
 * is its own value). `make MPI=1` builds dist_mpi.c instead. */
#include <stdlib.h>

#include "dist/dist.h"

int dist_init(int *argc, char ***argv, sfp_error_t *err)
{
    (void)argc;
    (void)argv;
    (void)err;
    return 0;
}

void dist_finalize(void) {}

void dist_abort(int status)
{
    exit(status);
}

int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
int dist_local_size(void) { return 1; }

int dist_sum_floats(float *buf, size_t n, sfp_error_t *err)
{
    (void)buf;
    (void)n;
    (void)err;
    return 0;
}

int dist_sum_doubles(double *buf, size_t n, sfp_error_t *err)
{
    (void)buf;
    (void)n;
    (void)err;
    return 0;
}

int dist_broadcast(void *buf, size_t n, int root, sfp_error_t *err)
{
    (void)buf;
    (void)n;
    (void)root;
    (void)err;
    return 0;
}

int dist_agree(int rc, sfp_error_t *err)
{
    (void)err;
    return rc;
}

bool dist_failure_agreed(void) { return true; }
bool dist_failed_elsewhere(void) { return false; }
double dist_comm_seconds(void) { return 0.0; }
uint64_t dist_sum_bytes(void) { return 0; }
