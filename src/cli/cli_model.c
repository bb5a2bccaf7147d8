/* The clock detect times its runs with. (Model geometry and normalisation
 * live in cli_train.c, shared by train, compress, eval and detect.) */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "cli/cli_model.h"

double cli_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
