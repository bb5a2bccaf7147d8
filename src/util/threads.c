/* Static-partition parallel-for over pthreads. A loop publishes its work and
 * bumps a generation counter; each worker runs the chunk with its own index
 * (if the loop has one) and the last worker to finish releases the caller. Between loops, and while
 * the caller waits for the last chunk, both sides spin for a short while
 * (0.2 ms by default) before sleeping on a condition variable: a batch-1 inference
 * hands work over once per layer, every ~20-100 us, and a futex wake-up per
 * hand-over cost more than the second thread saved. The spin is bounded, so
 * a pool between jobs sleeps and a busy machine loses at most that much of a
 * core per hand-over. A pool with more threads than online cores never spins
 * (a spinning thread would hold the core the working one waits for), nor
 * does any with SFP_SPIN_US=0 in the environment (valgrind, shared
 * machines); SFP_SPIN_US=N sets the spin to N microseconds. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "util/threads.h"

#define MAX_THREADS 256
#define SPIN_NS_DEFAULT 200000 /* 0.2 ms */

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
    pthread_cond_t wake;    /* workers sleep here for a new generation */
    pthread_cond_t done;    /* the caller sleeps here for pending == 0 */
    atomic_uint_fast64_t generation; /* stored (release) after the loop's fields */
    atomic_int pending;     /* workers that have not finished the current loop */
    atomic_int stop;
    int64_t spin_ns;        /* how long either side spins before sleeping */
    int n_chunks;
    int64_t n, grain;
    sfp_chunk_fn fn;
    void *ctx;
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

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool new_loop(sfp_threads_t *t, uint64_t seen)
{
    return atomic_load_explicit(&t->generation, memory_order_acquire) != seen ||
           atomic_load_explicit(&t->stop, memory_order_relaxed);
}

static bool loop_done(sfp_threads_t *t, uint64_t unused)
{
    (void)unused;
    return atomic_load_explicit(&t->pending, memory_order_acquire) == 0;
}

/* Spins until ready(t, arg) holds, for at most spin_ns (no time at all with
 * spin_ns 0); true when it did. */
static bool spin_until(sfp_threads_t *t, bool (*ready)(sfp_threads_t *, uint64_t), uint64_t arg)
{
    if (ready(t, arg)) return true;
    if (t->spin_ns <= 0) return false;
    const int64_t until = now_ns() + t->spin_ns;
    for (unsigned i = 1;; i++) {
        cpu_relax();
        if (ready(t, arg)) return true;
        if (i % 64 == 0 && now_ns() > until) return false;
    }
}

static int64_t spin_ns_for(int n_threads)
{
    if (n_threads > sfp_cpu_count()) return 0;
    const char *env = getenv("SFP_SPIN_US");
    if (env && *env) {
        char *end = NULL;
        long long us = strtoll(env, &end, 10);
        if (end && *end == '\0' && us >= 0 && us <= 1000000) return (int64_t)us * 1000;
    }
    return SPIN_NS_DEFAULT;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    sfp_threads_t *t = w->pool;
    uint64_t seen = 0;
    for (;;) {
        if (!spin_until(t, new_loop, seen)) {
            pthread_mutex_lock(&t->lock);
            while (!atomic_load(&t->stop) && atomic_load(&t->generation) == seen) pthread_cond_wait(&t->wake, &t->lock);
            pthread_mutex_unlock(&t->lock);
        }
        if (atomic_load(&t->stop)) break;
        seen = atomic_load_explicit(&t->generation, memory_order_acquire);
        /* the loop's fields were written before generation was stored, and
         * the caller changes them only after every worker, with a chunk or
         * without, has counted itself off: none reads them mid-change */
        if (w->index < t->n_chunks) {
            int64_t begin = 0, end = 0;
            chunk_range(t->n, t->n_chunks, w->index, &begin, &end);
            if (end > begin) t->fn(t->ctx, w->index, begin, end);
        }
        if (atomic_fetch_sub_explicit(&t->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&t->lock); /* the caller checks pending under the lock before it sleeps */
            pthread_cond_signal(&t->done);
            pthread_mutex_unlock(&t->lock);
        }
    }
    return NULL;
}

int sfp_threads_create(int n_threads, sfp_threads_t **out, sfp_error_t *err)
{
    if (n_threads <= 0) n_threads = sfp_cpu_count();
    if (n_threads > MAX_THREADS) n_threads = MAX_THREADS;
    sfp_threads_t *t = calloc(1, sizeof *t);
    if (!t) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    t->n_threads = n_threads;
    t->spin_ns = spin_ns_for(n_threads);
    atomic_init(&t->generation, 0);
    atomic_init(&t->pending, 0);
    atomic_init(&t->stop, 0);
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
    atomic_store(&t->stop, 1);
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
    pthread_mutex_lock(&t->lock); /* a worker about to sleep checks generation under it */
    t->n_chunks = n_chunks;
    t->n = n;
    t->grain = grain;
    t->fn = fn;
    t->ctx = ctx;
    atomic_store_explicit(&t->pending, t->n_started, memory_order_relaxed); /* every worker counts itself off */
    atomic_fetch_add_explicit(&t->generation, 1, memory_order_release);
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    int64_t begin = 0, end = 0;
    chunk_range(n, n_chunks, 0, &begin, &end);
    fn(ctx, 0, begin, end);
    if (spin_until(t, loop_done, 0)) return;
    pthread_mutex_lock(&t->lock);
    while (atomic_load(&t->pending) > 0) pthread_cond_wait(&t->done, &t->lock);
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
