/* The process group over MPI (built by `make MPI=1` with mpicc): every
 * process of `mpirun -np N` is one replica of the training; collectives are
 * MPI_Allreduce / MPI_Bcast on MPI_COMM_WORLD, which returns errors instead
 * of aborting (MPI_ERRORS_RETURN) so they reach the one-line error path. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <time.h>

#include <mpi.h>

#include "dist/dist.h"
#include "util/util.h"

static int world_rank, world_size = 1, local_size = 1;
static bool started, agreed_failure, failed_elsewhere;
static double comm_seconds;
static uint64_t sum_bytes;

/* Chunks for MPI's int counts. */
#define DIST_CHUNK ((size_t)1 << 30)

static int mpi_failed(int code, const char *what, sfp_error_t *err)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
    text[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING - 1] = 0;
    return sfp_errorf(err, SFP_ERUNTIME, "process %d of %d: %s failed: %s", world_rank, world_size, what, text);
}

int dist_init(int *argc, char ***argv, sfp_error_t *err)
{
    int provided = 0, code = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (code != MPI_SUCCESS) return mpi_failed(code, "MPI_Init_thread", err);
    started = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    MPI_Comm host;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host) == MPI_SUCCESS) {
        MPI_Comm_size(host, &local_size);
        MPI_Comm_free(&host);
    }
    if (provided < MPI_THREAD_FUNNELED)
        return sfp_errorf(err, SFP_EUNSUPPORTED, "the MPI library does not allow threads (MPI_THREAD_FUNNELED)");
    return 0;
}

void dist_finalize(void)
{
    if (started) MPI_Finalize();
    started = false;
}

void dist_abort(int status)
{
    MPI_Abort(MPI_COMM_WORLD, status);
}

int dist_rank(void) { return world_rank; }
int dist_size(void) { return world_size; }
int dist_local_size(void) { return local_size; }

static int sum_in_place(void *buf, size_t n, size_t elem, MPI_Datatype type, sfp_error_t *err)
{
    if (world_size == 1 || n == 0) return 0;
    const double t0 = sfp_now_seconds();
    for (size_t at = 0; at < n; at += DIST_CHUNK) {
        const size_t count = n - at < DIST_CHUNK ? n - at : DIST_CHUNK;
        int code = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + at * elem, (int)count, type, MPI_SUM, MPI_COMM_WORLD);
        if (code != MPI_SUCCESS) return mpi_failed(code, "MPI_Allreduce", err);
    }
    comm_seconds += sfp_now_seconds() - t0;
    sum_bytes += (uint64_t)(n * elem);
    return 0;
}

int dist_sum_floats(float *buf, size_t n, sfp_error_t *err)
{
    return sum_in_place(buf, n, sizeof *buf, MPI_FLOAT, err);
}

int dist_sum_doubles(double *buf, size_t n, sfp_error_t *err)
{
    return sum_in_place(buf, n, sizeof *buf, MPI_DOUBLE, err);
}

int dist_broadcast(void *buf, size_t n, int root, sfp_error_t *err)
{
    if (world_size == 1 || n == 0) return 0;
    const double t0 = sfp_now_seconds();
    for (size_t at = 0; at < n; at += DIST_CHUNK) {
        const size_t count = n - at < DIST_CHUNK ? n - at : DIST_CHUNK;
        int code = MPI_Bcast((char *)buf + at, (int)count, MPI_BYTE, root, MPI_COMM_WORLD);
        if (code != MPI_SUCCESS) return mpi_failed(code, "MPI_Bcast", err);
    }
    comm_seconds += sfp_now_seconds() - t0;
    return 0;
}

int dist_agree(int rc, sfp_error_t *err)
{
    if (world_size == 1) return rc;
    /* lowest failing rank (world_size: none), then its code */
    int mine = rc < 0 ? world_rank : world_size, first = world_size;
    int code = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (code != MPI_SUCCESS) return mpi_failed(code, "MPI_Allreduce", err);
    if (first == world_size) return rc;
    int failed_rc = rc;
    if ((code = MPI_Bcast(&failed_rc, 1, MPI_INT, first, MPI_COMM_WORLD)) != MPI_SUCCESS)
        return mpi_failed(code, "MPI_Bcast", err);
    agreed_failure = true;
    if (first == world_rank) return rc;
    failed_elsewhere = true;
    return sfp_errorf(err, failed_rc, "process %d of %d failed", first, world_size);
}

bool dist_failure_agreed(void) { return world_size == 1 || agreed_failure; }
bool dist_failed_elsewhere(void) { return failed_elsewhere; }
double dist_comm_seconds(void) { return comm_seconds; }
uint64_t dist_sum_bytes(void) { return sum_bytes; }
