/* Shuffling and batches. Two batch buffers: the caller holds batch k while the
 * loader thread fills batch k+1 into the other; a buffer returns to the loader
 * when the caller asks for the next batch. Every random draw comes from a
 * counter-based PRNG keyed by (seed, epoch, position), so the batches do not
 * depend on timing or on which thread prepared them. */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "util/util.h"

/* ------------------------------------------------------------------------ */
/* PRNG: splitmix64 (Steele, Lea, Flood 2014) over a mixed key.              */

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ULL
#define ORDER_STREAM 0x6f72646572ULL /* "order" */
#define AUGMENT_STREAM 0x6175676dULL /* "augm" */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

sfp_data_rng_t data_rng_key(uint64_t seed, uint64_t a, uint64_t b)
{
    sfp_data_rng_t r = {mix64(mix64(mix64(seed + GOLDEN_GAMMA) ^ a) + b)};
    return r;
}

uint64_t data_rng_next(sfp_data_rng_t *r)
{
    r->state += GOLDEN_GAMMA;
    return mix64(r->state);
}

uint64_t data_rng_below(sfp_data_rng_t *r, uint64_t bound)
{
    /* Rejects the lowest 2^64 mod bound values so every residue is equally likely. */
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t x = data_rng_next(r);
        if (x >= threshold) return x % bound;
    }
}

void data_epoch_order(int64_t n, uint64_t seed, int64_t epoch, int64_t *order)
{
    sfp_data_rng_t rng = data_rng_key(seed, ORDER_STREAM, (uint64_t)epoch);
    for (int64_t i = 0; i < n; i++) order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)data_rng_below(&rng, (uint64_t)i + 1);
        int64_t swap = order[i];
        order[i] = order[j];
        order[j] = swap;
    }
}

/* ------------------------------------------------------------------------ */
/* Iterator                                                                 */

enum slot_state { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD };

typedef struct batch_slot {
    float *x;           /* batch_size x C x H x W */
    int32_t *labels;    /* batch_size */
    int64_t *examples;  /* batch_size */
    int64_t batch;      /* batch index it holds */
    int64_t n;          /* examples it holds */
    enum slot_state state;
} batch_slot_t;

struct sfp_data_iter {
    const sfp_dataset_t *ds;
    sfp_data_prep_t prep;
    sfp_data_iter_opts_t opts;
    int64_t n_batches;
    size_t example_floats;
    int64_t *order;         /* the epoch's order; written only while the loader is idle */
    int64_t epoch;
    bool active;            /* an epoch was started */
    batch_slot_t slots[2];  /* batch k lives in slot k % 2 */
    int64_t next_fill;      /* next batch the loader prepares */
    int64_t next_deliver;   /* next batch data_iter_next returns */
    int held;               /* slot the caller holds, -1 */
    bool stop;
    bool thread_started;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* Prepares batch b of the current epoch into slot s. Reads only what stays
 * unchanged while an epoch runs (ds, prep, order). */
static void fill_batch(const sfp_data_iter_t *it, batch_slot_t *s, int64_t b)
{
    const sfp_dataset_t *ds = it->ds;
    const int64_t first = b * it->opts.batch_size + it->opts.share_first;
    const int64_t share = it->opts.share_n ? it->opts.share_n : it->opts.batch_size;
    int64_t n = ds->n - first;
    if (n > share) n = share;
    if (n < 0) n = 0;
    const int pad = it->opts.augment.crop_pad;
    for (int64_t k = 0; k < n; k++) {
        const int64_t pos = first + k, ex = it->order[pos];
        int dy = 0, dx = 0;
        bool flip = false;
        if (pad > 0 || it->opts.augment.hflip) {
            sfp_data_rng_t rng = data_rng_key(it->opts.seed, AUGMENT_STREAM ^ (uint64_t)it->epoch, (uint64_t)pos);
            dy = pad > 0 ? (int)data_rng_below(&rng, 2 * (uint64_t)pad + 1) : pad;
            dx = pad > 0 ? (int)data_rng_below(&rng, 2 * (uint64_t)pad + 1) : pad;
            flip = it->opts.augment.hflip && (data_rng_next(&rng) >> 63);
        }
        data_prep_pixels(&it->prep, data_pixels(ds, ex), ds->channels, ds->height, ds->width, pad, dy, dx, flip,
                         s->x + (size_t)k * it->example_floats);
        s->labels[k] = data_label(ds, ex);
        s->examples[k] = ex;
    }
    s->batch = b;
    s->n = n;
}

static void *loader_main(void *arg)
{
    sfp_data_iter_t *it = arg;
    pthread_mutex_lock(&it->mu);
    for (;;) {
        while (!it->stop &&
               !(it->active && it->next_fill < it->n_batches && it->slots[it->next_fill % 2].state == SLOT_FREE))
            pthread_cond_wait(&it->cv, &it->mu);
        if (it->stop) break;
        int64_t b = it->next_fill++;
        batch_slot_t *s = &it->slots[b % 2];
        s->state = SLOT_FILLING;
        pthread_mutex_unlock(&it->mu);
        fill_batch(it, s, b);
        pthread_mutex_lock(&it->mu);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&it->cv);
    }
    pthread_mutex_unlock(&it->mu);
    return NULL;
}

int64_t data_iter_n_batches(const sfp_data_iter_t *it)
{
    return it->n_batches;
}

void data_iter_free(sfp_data_iter_t *it)
{
    if (!it) return;
    if (it->thread_started) {
        pthread_mutex_lock(&it->mu);
        it->stop = true;
        pthread_cond_broadcast(&it->cv);
        pthread_mutex_unlock(&it->mu);
        pthread_join(it->thread, NULL);
    }
    pthread_cond_destroy(&it->cv);
    pthread_mutex_destroy(&it->mu);
    for (int s = 0; s < 2; s++) {
        free(it->slots[s].x);
        free(it->slots[s].labels);
        free(it->slots[s].examples);
    }
    free(it->order);
    free(it);
}

int data_iter_create(const sfp_dataset_t *ds, const sfp_data_prep_t *prep, const sfp_data_iter_opts_t *opts,
                     sfp_data_iter_t **out, sfp_error_t *err)
{
    int rc = data_prep_check(prep, ds, err);
    if (rc < 0) return rc;
    if (opts->batch_size < 1)
        return sfp_errorf(err, SFP_EUSAGE, "batch size %lld is below 1", (long long)opts->batch_size);
    if (opts->share_first < 0 || opts->share_n < 0 || opts->share_first + opts->share_n > opts->batch_size)
        return sfp_errorf(err, SFP_EUSAGE, "share [%lld, +%lld) is not inside a batch of %lld",
                          (long long)opts->share_first, (long long)opts->share_n, (long long)opts->batch_size);
    if (opts->augment.crop_pad < 0 || opts->augment.crop_pad > DATA_MAX_SIDE)
        return sfp_errorf(err, SFP_EUSAGE, "crop padding %d is outside 0..%d", opts->augment.crop_pad,
                          DATA_MAX_SIDE);
    int64_t batch = opts->share_n ? opts->share_n : opts->batch_size; /* examples a buffer can hold */
    if (batch > ds->n) batch = ds->n;
    if (batch < 1) batch = 1;
    size_t example_floats = 0, batch_floats = 0, batch_bytes = 0;
    if (!sfp_mul_size((size_t)prep->channels, (size_t)prep->height, &example_floats) ||
        !sfp_mul_size(example_floats, (size_t)prep->width, &example_floats) ||
        !sfp_mul_size(example_floats, (size_t)batch, &batch_floats) ||
        !sfp_mul_size(batch_floats, sizeof(float), &batch_bytes))
        return sfp_errorf(err, SFP_EUSAGE, "a batch of %lld inputs of %dx%dx%d is too large",
                          (long long)opts->batch_size, prep->channels, prep->height, prep->width);
    sfp_data_iter_t *it = calloc(1, sizeof *it);
    if (!it) return sfp_errorf(err, SFP_ENOMEM, "out of memory");
    pthread_mutex_init(&it->mu, NULL);
    pthread_cond_init(&it->cv, NULL);
    it->ds = ds;
    it->prep = *prep;
    it->opts = *opts;
    it->example_floats = example_floats;
    it->n_batches = opts->drop_last ? ds->n / opts->batch_size : (ds->n + opts->batch_size - 1) / opts->batch_size;
    it->held = -1;
    it->order = malloc((size_t)ds->n * sizeof *it->order);
    bool ok = it->order != NULL;
    for (int s = 0; s < 2 && ok; s++) {
        it->slots[s].x = malloc(batch_bytes);
        it->slots[s].labels = malloc((size_t)batch * sizeof(int32_t));
        it->slots[s].examples = malloc((size_t)batch * sizeof(int64_t));
        ok = it->slots[s].x && it->slots[s].labels && it->slots[s].examples;
    }
    if (!ok) {
        data_iter_free(it);
        return sfp_errorf(err, SFP_ENOMEM, "out of memory for two batches of %lld inputs (%zu bytes each)",
                          (long long)batch, batch_bytes);
    }
    if (opts->threaded) {
        /* The loader takes no signals: SIGINT and friends stay with the caller. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int prc = pthread_create(&it->thread, NULL, loader_main, it);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (prc != 0) {
            data_iter_free(it);
            return sfp_errorf(err, SFP_ERUNTIME, "cannot start the data loader thread: %s", strerror(prc));
        }
        it->thread_started = true;
    }
    *out = it;
    return 0;
}

void data_iter_start_epoch(sfp_data_iter_t *it, int64_t epoch)
{
    data_iter_start_epoch_at(it, epoch, 0);
}

void data_iter_start_epoch_at(sfp_data_iter_t *it, int64_t epoch, int64_t first_batch)
{
    if (first_batch < 0) first_batch = 0;
    pthread_mutex_lock(&it->mu);
    while (it->slots[0].state == SLOT_FILLING || it->slots[1].state == SLOT_FILLING)
        pthread_cond_wait(&it->cv, &it->mu);
    for (int s = 0; s < 2; s++) it->slots[s].state = SLOT_FREE;
    it->held = -1;
    it->next_fill = it->next_deliver = first_batch;
    it->epoch = epoch;
    it->active = true;
    if (it->opts.shuffle) data_epoch_order(it->ds->n, it->opts.seed, epoch, it->order);
    else for (int64_t i = 0; i < it->ds->n; i++) it->order[i] = i;
    pthread_cond_broadcast(&it->cv);
    pthread_mutex_unlock(&it->mu);
}

int data_iter_next(sfp_data_iter_t *it, sfp_data_batch_t *batch)
{
    pthread_mutex_lock(&it->mu);
    if (it->held >= 0) {
        it->slots[it->held].state = SLOT_FREE;
        it->held = -1;
        pthread_cond_broadcast(&it->cv);
    }
    if (!it->active || it->next_deliver >= it->n_batches) {
        pthread_mutex_unlock(&it->mu);
        memset(batch, 0, sizeof *batch);
        return 0;
    }
    int64_t b = it->next_deliver++;
    batch_slot_t *s = &it->slots[b % 2];
    if (it->thread_started) {
        while (!(s->state == SLOT_READY && s->batch == b)) pthread_cond_wait(&it->cv, &it->mu);
    } else {
        fill_batch(it, s, b);
    }
    s->state = SLOT_HELD;
    it->held = (int)(b % 2);
    pthread_mutex_unlock(&it->mu);
    batch->index = b;
    batch->n = s->n;
    batch->x = s->x;
    batch->labels = s->labels;
    batch->examples = s->examples;
    return 1;
}
