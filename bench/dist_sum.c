/* The collectives of one data-parallel training step, timed alone (run under
 * mpirun; bench/mpi_scaling.sh): per BatchNormalization of C channels the
 * three sums synchronised BN makes (C, C and 2C doubles), then one sum of
 * the whole gradient block (floats). Prints, on process 0, the mean wall time
 * per step of each part in ms.
 *   usage: dist_sum GRAD_FLOATS STEPS C1 [C2 ...] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/dist.h"
#include "util/util.h"

static long parse_count(const char *s)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    return end && *end == 0 && v > 0 ? v : -1;
}

int main(int argc, char **argv)
{
    sfp_error_t err = {0};
    if (dist_init(&argc, &argv, &err) < 0 || argc < 4) {
        fprintf(stderr, "usage: mpirun -np P dist_sum GRAD_FLOATS STEPS C1 [C2 ...] %s\n", err.msg);
        return 2;
    }
    const long n_grad = parse_count(argv[1]), steps = parse_count(argv[2]);
    const int n_bn = argc - 3;
    long max_c = 0;
    for (int i = 0; i < n_bn; i++) {
        long c = parse_count(argv[3 + i]);
        if (c > max_c) max_c = c;
        if (c < 0) max_c = -1;
    }
    float *grad = n_grad > 0 ? calloc((size_t)n_grad, sizeof *grad) : NULL;
    double *stats = max_c > 0 ? calloc(2 * (size_t)max_c, sizeof *stats) : NULL, sync = 0.0;
    if (!grad || !stats || steps < 1) {
        fprintf(stderr, "dist_sum: bad sizes or out of memory\n");
        dist_abort(2);
    }
    double bn_s = 0.0, grad_s = 0.0;
    int rc = 0;
    for (long s = 0; s <= steps && rc == 0; s++) { /* step 0 warms up */
        rc = dist_sum_doubles(&sync, 1, &err); /* start together */
        const double t0 = sfp_now_seconds();
        for (int i = 0; i < n_bn && rc == 0; i++) {
            const size_t c = (size_t)parse_count(argv[3 + i]);
            rc = dist_sum_doubles(stats, c, &err);
            if (rc == 0) rc = dist_sum_doubles(stats, c, &err);
            if (rc == 0) rc = dist_sum_doubles(stats, 2 * c, &err);
        }
        const double t1 = sfp_now_seconds();
        if (rc == 0) rc = dist_sum_floats(grad, (size_t)n_grad, &err);
        if (s > 0) {
            bn_s += t1 - t0;
            grad_s += sfp_now_seconds() - t1;
        }
    }
    if (rc < 0) {
        fprintf(stderr, "dist_sum: %s\n", err.msg);
        dist_abort(1);
    }
    if (dist_rank() == 0)
        printf("%d processes: BN statistics %.3f ms/step (%d x 3 sums), gradients %.3f ms/step (%ld floats)\n",
               dist_size(), 1e3 * bn_s / (double)steps, n_bn, 1e3 * grad_s / (double)steps, n_grad);
    free(grad);
    free(stats);
    dist_finalize();
    return 0;
}
