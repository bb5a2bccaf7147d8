/* Data-parallel training across processes: who this process is among the
 * job's processes and the few collectives training needs. Built without MPI
 * (dist_single.c) the world is this one process and every collective leaves
 * its buffer as it is; built with `make MPI=1` (dist_mpi.c) the calls go to
 * MPI_COMM_WORLD. The rest of the code calls only these functions.
 *
 * Collectives must be called by every process in the same order with the
 * same sizes. Only the thread that called dist_init calls them. */
#ifndef SFP_DIST_H
#define SFP_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnxsfp/error.h"

/* Starts the process group (MPI_Init_thread, funneled: the loader and
 * kernel threads never call MPI). Call once, first thing in main. */
int dist_init(int *argc, char ***argv, sfp_error_t *err);
/* Ends it after a run where every process got here (MPI_Finalize). */
void dist_finalize(void);
/* Ends the whole job at once with exit status `status`: for a failure the
 * other processes did not take part in (they may wait in a collective). */
void dist_abort(int status);

int dist_rank(void);        /* 0 .. dist_size() - 1 */
int dist_size(void);        /* 1 without MPI or for a single process */
int dist_local_size(void);  /* processes of the job on this host (sharing its cores) */

/* In place: buf[i] becomes the sum over the processes of their buf[i]; the
 * same result on every process. */
int dist_sum_floats(float *buf, size_t n, sfp_error_t *err);
int dist_sum_doubles(double *buf, size_t n, sfp_error_t *err);
/* root's n bytes into every process's buf. */
int dist_broadcast(void *buf, size_t n, int root, sfp_error_t *err);

/* Agreement on a status: every process passes its own rc. 0 when all are 0.
 * Otherwise every process returns an error: the lowest failing process its
 * own rc and err, the others that process's code with a message naming it
 * (dist_failed_elsewhere() then says not to print it again). After a
 * failed agreement the processes may end on their own (no dist_abort). */
int dist_agree(int rc, sfp_error_t *err);
bool dist_failure_agreed(void);
bool dist_failed_elsewhere(void);

/* Wall time spent in the collectives above since dist_init, and bytes
 * this process contributed to sums (for the scaling benchmark). */
double dist_comm_seconds(void);
uint64_t dist_sum_bytes(void);

#endif
