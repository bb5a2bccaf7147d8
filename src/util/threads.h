/* A tiny worker pool for the runtime's parallel loops (im2col, BN, elementwise,
 * pooling): one static partition of [0, n) per call, the calling thread takes
 * the first chunk. The split depends only on n, grain and the thread count, so
 * every output element is computed the same way whatever the thread count. */
#ifndef SFP_THREADS_H
#define SFP_THREADS_H

#include <stdint.h>

#include "onnxsfp/error.h"

typedef struct sfp_threads sfp_threads_t;

/* Processes [begin, end) of the iteration space; ctx is the caller's. */
typedef void (*sfp_range_fn)(void *ctx, int64_t begin, int64_t end);
/* The same with the chunk's index in [0, count(t)), e.g. to pick a private
 * slice of scratch memory. */
typedef void (*sfp_chunk_fn)(void *ctx, int chunk, int64_t begin, int64_t end);

/* Online cores (at least 1). */
int sfp_cpu_count(void);

/* Pool of n_threads (<= 0: all cores) including the caller, so n_threads - 1
 * workers are started. */
int sfp_threads_create(int n_threads, sfp_threads_t **out, sfp_error_t *err);
void sfp_threads_free(sfp_threads_t *t);
/* Threads taking part in a loop (1 for NULL). */
int sfp_threads_count(const sfp_threads_t *t);

/* Runs fn over [0, n) cut into at most count(t) contiguous chunks of at least
 * grain items (grain < 1 counts as 1); returns when all are done. t may be
 * NULL (runs inline). Not reentrant: fn must not call sfp_threads_for on the
 * same pool. */
void sfp_threads_for(sfp_threads_t *t, int64_t n, int64_t grain, sfp_range_fn fn, void *ctx);
void sfp_threads_for_chunks(sfp_threads_t *t, int64_t n, int64_t grain, sfp_chunk_fn fn, void *ctx);

#endif
