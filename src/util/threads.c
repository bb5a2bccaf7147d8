/* Static-partition parallel-for over pthreads. Workers sleep on a condition
 * variable between loops; a loop bumps a generation counter, each worker runs
 * the chunk with its own index, the last one to finish wakes the caller. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/threads.h"

#define MAX_THREADS 256

typedef struct worker {
    sfp_threads_t *pool;
    int index;          /* chunk index this worker runs (1..n-1) */
    pthread_t thread;
} worker_t;

struct sfp_threads {
    int n_threads;
    int n_started;      /* workers actually running */
    worker_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* workers wait here for a new generation */
    pthread_cond_t done;    /* the caller waits here for pending == 0 */
    uint64_t generation;
    int pending;            /* chunks handed to workers and not finished */
    int n_chunks;
    int64_t n, grain;
    sfp_chunk_fn fn;
    void *ctx;
    int stop;
};

int sfp_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) return 1;
    return n > MAX_THREADS ? MAX_THREADS : (int)n;
}

static void chunk_range(int64_t n, int n_chunks, int k, int64_t *begin, int64_t *end)
{
    /* n * k / n_chunks without overflow for any realistic n (n < 2^40) */
    *begin = n / n_chunks * k + (n % n_chunks) * k / n_chunks;
    *end = n / n_chunks * (k + 1) + (n % n_chunks) * (k + 1) / n_chunks;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    sfp_threads_t *t = w->pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (!t->stop && t->generation == seen) pthread_cond_wait(&t->wake, &t->lock);
        if (t->stop) break;
        seen = t->generation;
        if (w->index >= t->n_chunks) continue;
        int n_chunks = t->n_chunks;
        int64_t n = t->n;
        sfp_chunk_fn fn = t->fn;
        void *ctx = t->ctx;
        pthread_mutex_unlock(&t->lock);
        int64_t begin = 0, end = 0;
        chunk_range(n, n_chunks, w->index, &begin, &end);
        if (end > begin) fn(ctx, w->index, begin, end);
        pthread_mutex_lock(&t->lock);
        if (--t->pending == 0) pthread_cond_signal(&t->done);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int sfp_threads_create(int n_threads, sfp_threads_t **out, sfp_error_t *err)
{
    if (n_threads <= 0) n_threads = sfp_cpu_count();
    if (n_threads > MAX_THREADS) n_threads = MAX_THREADS;
    sfp_threads_t *t = calloc(1, sizeof *t);
    if (!t) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    t->n_threads = n_threads;
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        return sfp_errorf(err, SFP_ERUNTIME, "cannot create a mutex");
    }
    if (pthread_cond_init(&t->wake, NULL) != 0) {
        pthread_mutex_destroy(&t->lock);
        free(t);
        return sfp_errorf(err, SFP_ERUNTIME, "cannot create a condition variable");
    }
    if (pthread_cond_init(&t->done, NULL) != 0) {
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return sfp_errorf(err, SFP_ERUNTIME, "cannot create a condition variable");
    }
    if (n_threads > 1) {
        t->workers = calloc((size_t)n_threads - 1, sizeof *t->workers);
        if (!t->workers) {
            sfp_threads_free(t);
            return sfp_errorf(err, SFP_ENOMEM, "out of memory");
        }
        for (int i = 0; i < n_threads - 1; i++) {
            t->workers[i].pool = t;
            t->workers[i].index = i + 1;
            if (pthread_create(&t->workers[i].thread, NULL, worker_main, &t->workers[i]) != 0) {
                sfp_threads_free(t);
                return sfp_errorf(err, SFP_ERUNTIME, "cannot start worker thread %d of %d", i + 1, n_threads - 1);
            }
            t->n_started++;
        }
    }
    *out = t;
    return 0;
}

void sfp_threads_free(sfp_threads_t *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->lock);
    t->stop = 1;
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    for (int i = 0; i < t->n_started; i++) pthread_join(t->workers[i].thread, NULL);
    free(t->workers);
    pthread_cond_destroy(&t->done);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int sfp_threads_count(const sfp_threads_t *t)
{
    return t ? t->n_started + 1 : 1;
}

void sfp_threads_for_chunks(sfp_threads_t *t, int64_t n, int64_t grain, sfp_chunk_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t max_chunks = (n + grain - 1) / grain;
    int n_chunks = sfp_threads_count(t);
    if (max_chunks < n_chunks) n_chunks = (int)max_chunks;
    if (n_chunks <= 1) {
        fn(ctx, 0, 0, n);
        return;
    }
    pthread_mutex_lock(&t->lock);
    t->n_chunks = n_chunks;
    t->n = n;
    t->grain = grain;
    t->fn = fn;
    t->ctx = ctx;
    t->pending = n_chunks - 1;
    t->generation++;
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    int64_t begin = 0, end = 0;
    chunk_range(n, n_chunks, 0, &begin, &end);
    fn(ctx, 0, begin, end);
    pthread_mutex_lock(&t->lock);
    while (t->pending > 0) pthread_cond_wait(&t->done, &t->lock);
    pthread_mutex_unlock(&t->lock);
}

typedef struct range_call {
    sfp_range_fn fn;
    void *ctx;
} range_call_t;

static void range_trampoline(void *ctx, int chunk, int64_t begin, int64_t end)
{
    (void)chunk;
    const range_call_t *c = ctx;
    c->fn(c->ctx, begin, end);
}

void sfp_threads_for(sfp_threads_t *t, int64_t n, int64_t grain, sfp_range_fn fn, void *ctx)
{
    range_call_t c = {fn, ctx};
    sfp_threads_for_chunks(t, n, grain, range_trampoline, &c);
}
