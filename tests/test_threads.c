/* The worker pool (src/util/threads.c): every index of every loop is run
 * exactly once, loops follow each other closely (the spinning hand-over) and
 * after pauses longer than the spin (the sleeping one), with more threads
 * than cores, and results written by workers are seen by the caller. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "util/threads.h"

typedef struct count_job {
    int *hits;
    int64_t n;
} count_job_t;

static void count_range(void *ctx, int chunk, int64_t begin, int64_t end)
{
    count_job_t *j = ctx;
    (void)chunk;
    for (int64_t i = begin; i < end; i++) j->hits[i]++;
}

static void pause_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void run_loops(int n_threads)
{
    sfp_error_t err = {0};
    sfp_threads_t *t = NULL;
    assert_int_equal(sfp_threads_create(n_threads, &t, &err), 0);
    assert_int_equal(sfp_threads_count(t), n_threads);
    enum { N = 257 };
    int *hits = calloc(N, sizeof *hits);
    assert_non_null(hits);
    count_job_t j = {hits, N};
    int rounds = 0;
    for (int loop = 0; loop < 3000; loop++) {
        const int64_t n = 1 + loop % N;
        sfp_threads_for_chunks(t, n, 1, count_range, &j);
        rounds++;
        for (int64_t i = 0; i < n; i++)
            if (hits[i] != 1) fail_msg("%d threads, loop %d: index %lld ran %d times", n_threads, loop, (long long)i, hits[i]);
        for (int64_t i = 0; i < n; i++) hits[i] = 0;
        if (loop % 500 == 499) pause_ms(2); /* longer than the spin: the workers sleep */
    }
    assert_int_equal(rounds, 3000);
    free(hits);
    sfp_threads_free(t);
}

static void test_every_index_once_two_threads(void **state)
{
    (void)state;
    run_loops(2);
}

static void test_every_index_once_more_threads_than_cores(void **state)
{
    (void)state;
    run_loops(5);
}

/* A pool freed while its workers sleep, and one freed right after a loop
 * (workers still spinning), both end. */
static void test_free_while_sleeping_or_spinning(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    int hits[4] = {0};
    count_job_t j = {hits, 4};
    for (int k = 0; k < 2; k++) {
        sfp_threads_t *t = NULL;
        assert_int_equal(sfp_threads_create(3, &t, &err), 0);
        sfp_threads_for_chunks(t, 4, 1, count_range, &j);
        if (k == 0) pause_ms(5);
        sfp_threads_free(t);
    }
    for (int i = 0; i < 4; i++) assert_int_equal(hits[i], 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_index_once_two_threads),
        cmocka_unit_test(test_every_index_once_more_threads_than_cores),
        cmocka_unit_test(test_free_while_sleeping_or_spinning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
