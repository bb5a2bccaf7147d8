/* 2-D convolution without im2col: each image (one group at a time) is
 * copied once into a zero-padded buffer, split by stride into phase planes
 * (padded row y, column x goes to phase (y % sh, x % sw) at (y / sh, x / sw),
 * planes Wq = ceil(Wp / sw) wide; stride 1 has one phase). Output (oy, ox)
 * then reads kernel tap (c, ky, kx) at flat position oy * Wq + ox plus a
 * constant offset per tap, so every tap is the same buffer shifted, and the
 * convolution is a matrix product whose B rows are shifted views of one
 * buffer: no 9x copy, no packing of B. A tile of MR output channels x NR
 * positions of one output row lives in registers (AVX-512 or AVX2 + FMA,
 * chosen at run time, util/cpu.h; the tiles are in conv_direct_avx512.c and
 * conv_direct_avx2.c); its epilogue adds the bias or a per-channel scale and shift (a
 * BatchNormalization folded in by the plan), a residual, and Relu before
 * the one store. Every output element is one FMA chain over the taps in a
 * fixed order, so results do not depend on threads or tiling. The weight
 * gradient (conv_direct_backward_dw, at the end) reads the same planes. */
#include <stdatomic.h>
#include <string.h>

#include "ops/conv_direct_impl.h"
#include "ops/kernels.h"
#include "util/cpu.h"
#include "util/util.h"

/* tile_shape_for picks per layer the shape with the least work per useful
 * output (rows rounded up to whole vectors, channels to whole tiles after
 * the narrower last tile); shapes with fewer accumulators than the ISA
 * needs to hide the FMA latency (12 of AVX2's 16 registers, 16 of
 * AVX-512's 32) count 20% dearer, as measured on ResNet-20's layers. */
typedef struct direct_geom {
    const conv_direct_isa_t *isa;
    int64_t cg, mg, kk, k;     /* input channels and outputs per group, taps, cg * kk */
    int64_t hp, wp;            /* the padded image */
    int64_t sh, sw, hq, wq;    /* strides; a phase plane: hq rows of wq */
    int64_t plane;             /* hq * wq */
    int64_t oh, ow, ohw;
    int shape, last_shape;     /* index in isa->shapes: every channel tile, a group's last one */
    int64_t mr, nr, tr;        /* tile: channels, positions per row, output rows */
    int64_t last_mr;           /* channels of a group's last tile (its panel's width) */
    int64_t x_tiles, m_tiles;  /* tiles per output row, channel tiles per group */
    int64_t pad_floats;        /* padded buffer incl. the zeroed tail the last tile reads */
    int64_t pack_floats;       /* packed weights of all groups */
} direct_geom_t;

/* The tiles of the instruction set in use, NULL without AVX2. */
static const conv_direct_isa_t *direct_isa(void)
{
    switch (sfp_cpu_isa()) {
    case SFP_ISA_AVX512: return conv_direct_avx512.fns ? &conv_direct_avx512 : NULL;
    case SFP_ISA_AVX2: return conv_direct_avx2.fns ? &conv_direct_avx2 : NULL;
    default: return NULL;
    }
}

/* Positions per output row of a tile shape. */
static int64_t shape_nr(const conv_direct_isa_t *isa, const tile_shape_t *t)
{
    return t->rows == 2 ? isa->lanes / 2 : (int64_t)isa->lanes * t->nv;
}

/* The narrowest shape of the same vectors that holds n channels (a group's
 * last channel tile), starting from shape i. */
static int narrow_shape(const conv_direct_isa_t *isa, int i, int64_t n)
{
    int best = i;
    for (int j = 0; j < isa->n_shapes; j++)
        if (isa->shapes[j].nv == isa->shapes[i].nv && isa->shapes[j].rows == isa->shapes[i].rows &&
            isa->shapes[j].mr >= n && isa->shapes[j].mr < isa->shapes[best].mr)
            best = j;
    return best;
}

/* Work computed per useful output: rows rounded up to whole vectors, output
 * rows to whole tiles, channels to whole tiles (the last one narrowed). */
static int tile_shape_for(const conv_direct_isa_t *isa, int64_t mg, int64_t oh, int64_t ow)
{
    int best = 0;
    double best_waste = 0.0;
    for (int i = 0; i < isa->n_choosable; i++) {
        const tile_shape_t *t = &isa->shapes[i];
        const int64_t mr = t->mr, nr = shape_nr(isa, t), tr = t->rows;
        const int64_t tiles = (mg + mr - 1) / mr, last = mg - (tiles - 1) * mr;
        const int64_t rows = (tiles - 1) * mr + isa->shapes[narrow_shape(isa, i, last)].mr;
        double waste = (double)((ow + nr - 1) / nr * nr) / (double)ow * (double)((oh + tr - 1) / tr * tr) /
                       (double)oh * (double)rows / (double)mg;
        if (mr * t->nv < (isa->lanes == 16 ? 16 : 12)) waste *= 1.2;
        if (i == 0 || waste < best_waste * 0.999) {
            best = i;
            best_waste = waste;
        }
    }
    return best;
}

/* False when the shape is not for this path (then nothing else is set). */
static bool direct_geom(const sfp_conv_shape_t *s, direct_geom_t *g)
{
    if (s->n_spatial != 2 || s->group < 1 || s->stride[0] < 1 || s->stride[1] < 1) return false;
    memset(g, 0, sizeof *g);
    g->isa = direct_isa();
    if (!g->isa) return false;
    g->cg = s->in_channels / s->group;
    g->mg = s->out_channels / s->group;
    g->kk = s->kernel[0] * s->kernel[1];
    g->k = g->cg * g->kk;
    g->oh = s->out[0];
    g->ow = s->out[1];
    g->ohw = g->oh * g->ow;
    g->sh = s->stride[0];
    g->sw = s->stride[1];
    /* the padded image just holds the last window (the end pad ONNX implies) */
    const int64_t span_h = (g->oh - 1) * g->sh + (s->kernel[0] - 1) * s->dilation[0] + 1;
    const int64_t span_w = (g->ow - 1) * g->sw + (s->kernel[1] - 1) * s->dilation[1] + 1;
    const int64_t in_h = s->in[0] + s->pad_begin[0], in_w = s->in[1] + s->pad_begin[1];
    if (s->pad_begin[0] < 0 || s->pad_begin[1] < 0 || g->oh < 1 || g->ow < 1 || g->k < 1 || g->mg < 1 ||
        g->sh > 64 || g->sw > 64)
        return false;
    g->hp = span_h > in_h ? span_h : in_h;
    g->wp = span_w > in_w ? span_w : in_w;
    g->hq = (g->hp + g->sh - 1) / g->sh;
    g->wq = (g->wp + g->sw - 1) / g->sw;
    /* everything indexes with int32 offsets and stays far below 2^31 */
    const int64_t limit = (int64_t)1 << 30;
    if (g->hq > limit || g->wq > limit || g->hq * g->wq > limit / (g->cg * g->sh * g->sw + 1) ||
        g->k > limit / MAX_MR || g->mg > limit / g->k)
        return false;
    g->plane = g->hq * g->wq;
    g->shape = tile_shape_for(g->isa, g->mg, g->oh, g->ow);
    g->mr = g->isa->shapes[g->shape].mr;
    g->nr = shape_nr(g->isa, &g->isa->shapes[g->shape]);
    g->tr = g->isa->shapes[g->shape].rows;
    g->x_tiles = (g->ow + g->nr - 1) / g->nr;
    g->m_tiles = (g->mg + g->mr - 1) / g->mr;
    g->last_shape = narrow_shape(g->isa, g->shape, g->mg - (g->m_tiles - 1) * g->mr);
    g->last_mr = g->isa->shapes[g->last_shape].mr;
    /* the last tile of the last row reads up to reach past the last phase's
     * last channel (a whole plane at most plus a tile, a kernel row and, for
     * two-row tiles, one more row) */
    const int64_t images = g->sh * g->sw * g->cg * g->plane;
    const int64_t reach = images + g->plane + g->x_tiles * g->nr + s->kernel[1] * s->dilation[1] + g->wq * g->tr;
    g->pad_floats = reach + 16;
    g->pack_floats = s->group * g->m_tiles * g->k * g->mr;
    return g->pad_floats < limit && g->pack_floats < limit;
}

bool conv_direct_applies(const sfp_conv_shape_t *s)
{
    direct_geom_t g;
    return direct_geom(s, &g);
}

/* Workers taking whole images (each with its own padded buffer), as the
 * im2col path: every thread when the batch has two images or more. */
static int direct_workers(const sfp_conv_shape_t *s, int n_threads)
{
    if (n_threads < 2 || s->batch < 2) return 1;
    return s->batch < n_threads ? (int)s->batch : n_threads;
}

/* Scratch: packed weights, the tap offsets, a padded image per worker; each
 * part a multiple of 16 floats (64 bytes). */
static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

typedef struct direct_scratch {
    float *pack, *pads;
    int32_t *off;
} direct_scratch_t;

static int64_t direct_layout(const sfp_conv_shape_t *s, const direct_geom_t *g, int n_threads, float *scratch,
                             direct_scratch_t *out)
{
    const int64_t pads = round16(g->pack_floats) + round16(g->k);
    if (out) {
        out->pack = scratch;
        out->off = (int32_t *)(scratch + round16(g->pack_floats));
        out->pads = scratch + pads;
    }
    /* one padded image per worker; at batch 1 one per thread (direct_band) */
    const int64_t copies = s->batch < 2 && n_threads > 1 ? n_threads : direct_workers(s, n_threads);
    return pads + round16(g->pad_floats) * copies;
}

bool conv_direct_scratch_floats(const sfp_conv_shape_t *s, int n_threads, size_t *out)
{
    direct_geom_t g;
    if (!direct_geom(s, &g)) return false;
    *out = (size_t)direct_layout(s, &g, n_threads, NULL, NULL);
    return true;
}

typedef struct direct_job {
    const sfp_conv_shape_t *s;
    direct_geom_t g;
    const float *x;
    const sfp_conv_epilogue_t *e;
    float *y;
    direct_scratch_t scr;       /* pack (group, m_tile, k, mr), off (k), pads */
    int64_t n, group;           /* row-parallel mode: the image and group at hand */
} direct_job_t;

/* What the next image will read first (its input, to be padded, and its
 * residual), asked into L2 a slice per output row tile while this image
 * computes: at large batches a layer's input was written a whole batch
 * slice ago and has left L2. Measured on a Zen 4 EPYC, batch 64 a thread,
 * alternating: ResNet-20 1 thread 1092 -> 1153 images/s, ResNet-56 1
 * thread 377 -> 390, 2 threads 731 -> 765 (into L1 or L3 instead: slower). */
typedef struct ahead {
    const char *x, *res;
    int64_t x_bytes, res_bytes;
} ahead_t;

/* Share i of n of the lines of [p, p + bytes) asked into L2. */
static inline void prefetch_share(const char *p, int64_t bytes, int64_t i, int64_t n)
{
    for (int64_t b = bytes * i / n / 64 * 64; b < bytes * (i + 1) / n; b += 64) __builtin_prefetch(p + b, 0, 2);
}

/* n floats, 16 at a time by fixed-size copies the compiler inlines as vector
 * moves: rows of a CIFAR map are 8-32 floats, where a memcpy call costs more
 * than the copy. */
static inline void copy_floats(float *restrict dst, const float *restrict src, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) memcpy(dst + i, src + i, 16 * sizeof(float));
    if (i + 8 <= n) {
        memcpy(dst + i, src + i, 8 * sizeof(float));
        i += 8;
    }
    for (; i < n; i++) dst[i] = src[i];
}

/* One padded row of a stride-1 plane: left zeros, cols floats of src, zeros
 * to wq (the pads are a float or two: no library call). */
static inline void pad_row(float *restrict row, const float *restrict src, int64_t left, int64_t cols, int64_t wq)
{
    for (int64_t i = 0; i < left; i++) row[i] = 0.0f;
    copy_floats(row + left, src, cols);
    for (int64_t i = left + cols; i < wq; i++) row[i] = 0.0f;
}

/* Channels [c0, c1) of group grp of image n into their padded phase planes
 * (phase, channel, hq, wq), the padding around them zero. At stride 1 only
 * the border is zeroed (the rest is overwritten); strided phase planes are
 * cleared whole first. */
static void pad_channels(const sfp_conv_shape_t *s, const direct_geom_t *g, const float *image_x, int64_t n,
                         int64_t grp, float *pad, int64_t c0, int64_t c1)
{
    const int64_t h = s->in[0], w = s->in[1], top = s->pad_begin[0], left = s->pad_begin[1];
    const int64_t cols = w < g->wp - left ? w : g->wp - left;
    const int64_t rows = h < g->hp - top ? h : g->hp - top;
    const size_t row_bytes = sizeof(float) * (size_t)g->wq;
    for (int64_t c = c0; c < c1; c++) {
        const float *src = image_x + ((n * s->in_channels + grp * g->cg + c) * h) * w;
        if (g->sh == 1 && g->sw == 1) {
            float *plane = pad + c * g->plane;
            memset(plane, 0, row_bytes * (size_t)top);
            for (int64_t r = 0; r < rows; r++) pad_row(plane + (top + r) * g->wq, src + r * w, left, cols, g->wq);
            memset(plane + (top + rows) * g->wq, 0, row_bytes * (size_t)(g->hq - top - rows));
            continue;
        }
        for (int64_t ph = 0; ph < g->sh * g->sw; ph++)
            memset(pad + (ph * g->cg + c) * g->plane, 0, sizeof(float) * (size_t)g->plane);
        for (int64_t r = 0; r < rows; r++) {
            const int64_t y = top + r;
            float *row = pad + ((y % g->sh * g->sw * g->cg + c) * g->hq + y / g->sh) * g->wq;
            const float *restrict in = src + r * w;
            if (g->sw == 2) { /* input column i is padded column left + i: phase (left + i) % 2 */
                conv_direct_split2(in, cols, row + left % 2 * g->cg * g->plane + left / 2,
                                   row + (left + 1) % 2 * g->cg * g->plane + (left + 1) / 2);
                continue;
            }
            for (int64_t px = 0; px < g->sw; px++) { /* padded columns x = px, px + sw, ... */
                float *restrict dst = row + px * g->cg * g->plane;
                int64_t x = px < left ? px + (left - px + g->sw - 1) / g->sw * g->sw : px;
                for (int64_t q = x / g->sw; x < left + cols; x += g->sw, q++) dst[q] = in[x - left];
            }
        }
    }
}

/* The zeroed tail after the phase planes that the last tiles read into. */
static void pad_tail(const direct_geom_t *g, float *pad)
{
    const int64_t images = g->sh * g->sw * g->cg * g->plane;
    memset(pad + images, 0, sizeof(float) * (size_t)(g->pad_floats - images));
}

/* Channels of group grp of image n into the padded phase planes. */
static void pad_image(const sfp_conv_shape_t *s, const direct_geom_t *g, const float *image_x, int64_t n, int64_t grp,
                      float *pad)
{
    pad_channels(s, g, image_x, n, grp, pad, 0, g->cg);
    pad_tail(g, pad);
}

/* Output rows [r0, r1) of image n, group grp, from its padded buffer;
 * next (or NULL): lines to ask into L2 meanwhile (ahead_t). */
static void direct_rows(const direct_job_t *j, int64_t n, int64_t grp, const float *pad, int64_t r0, int64_t r1,
                        const ahead_t *next)
{
    const sfp_conv_shape_t *s = j->s;
    const direct_geom_t *g = &j->g;
    const sfp_conv_epilogue_t *e = j->e;
    const int64_t base = (n * s->out_channels + grp * g->mg) * g->ohw;
    const int64_t row_tiles = (r1 - r0 + g->tr - 1) / g->tr;
    for (int64_t oy = r0; oy < r1; oy += g->tr) {
        if (next) { /* this row tile's share of the next image's lines */
            prefetch_share(next->x, next->x_bytes, (oy - r0) / g->tr, row_tiles);
            prefetch_share(next->res, next->res_bytes, (oy - r0) / g->tr, row_tiles);
        }
        for (int64_t xt = 0; xt < g->x_tiles; xt++) {
            const int64_t x0 = xt * g->nr, at = base + oy * g->ow + x0;
            const float *src = pad + oy * g->wq + x0;
            for (int64_t mt = 0; mt < g->m_tiles; mt++) {
                const int64_t m0 = mt * g->mr, mi = grp * g->mg + m0;
                tile_out_t o = {j->y + at + m0 * g->ohw,
                                e->residual ? e->residual + at + m0 * g->ohw : NULL,
                                e->scale ? e->scale + mi : NULL,
                                e->shift ? e->shift + mi : NULL,
                                g->ohw,
                                g->ow,
                                g->wq,
                                (int)(g->ow - x0 < g->nr ? g->ow - x0 : g->nr),
                                (int)(g->mg - m0 < g->mr ? g->mg - m0 : g->mr),
                                (int)(r1 - oy < g->tr ? r1 - oy : g->tr),
                                e->relu};
                /* the lines the epilogue reads and writes, asked for now: they
                 * arrive during the tile's FMA loop instead of stalling it after */
                for (int i = 0; i < o.rows; i++)
                    for (int64_t q = 0; q < o.out_rows; q++) {
                        if (o.res) {
                            __builtin_prefetch(o.res + i * o.ld + q * o.row_ld);
                            __builtin_prefetch(o.res + i * o.ld + q * o.row_ld + o.valid - 1);
                        }
                        __builtin_prefetch(o.y + i * o.ld + q * o.row_ld, 1);
                        __builtin_prefetch(o.y + i * o.ld + q * o.row_ld + o.valid - 1, 1);
                    }
                const tile_fn tile = g->isa->fns[mt == g->m_tiles - 1 ? g->last_shape : g->shape];
                tile(g->k, j->scr.pack + (grp * g->m_tiles + mt) * g->k * g->mr, src, j->scr.off, &o);
            }
        }
    }
}

/* Work is dealt, not claimed: with images split over the threads, thread w
 * takes images [w0, w1) of the batch in every layer, and with rows split
 * (fewer images than threads), the same band of rows of each image. Each
 * thread then reads mostly what it wrote itself in the layer before: on
 * machines whose cores share no cache (two vCPUs on different core complexes)
 * reading the other core's output costs more than the convolution. */

/* One worker: images [n0, n1). */
static void direct_images(void *ctx, int worker, int64_t n0, int64_t n1)
{
    direct_job_t *j = ctx;
    float *pad = j->scr.pads + worker * round16(j->g.pad_floats);
    const sfp_conv_shape_t *s = j->s;
    const int64_t x_image = s->in_channels * s->in[0] * s->in[1], y_image = s->out_channels * j->g.ohw;
    for (int64_t n = n0; n < n1; n++) {
        const ahead_t next = {(const char *)(j->x + (n + 1) * x_image),
                              j->e->residual ? (const char *)(j->e->residual + (n + 1) * y_image) : NULL,
                              (int64_t)sizeof(float) * x_image, j->e->residual ? (int64_t)sizeof(float) * y_image : 0};
        for (int64_t grp = 0; grp < s->group; grp++) {
            pad_image(s, &j->g, j->x, n, grp, pad);
            direct_rows(j, n, grp, pad, 0, j->g.oh, n + 1 < n1 && grp == s->group - 1 ? &next : NULL);
        }
    }
}

/* Channels [c0, c1) of the row-parallel mode's image and group padded
 * (strided convolutions: their phase planes interleave the rows). */
static void pad_range(void *ctx, int64_t c0, int64_t c1)
{
    const direct_job_t *j = ctx;
    pad_channels(j->s, &j->g, j->x, j->n, j->group, j->scr.pads, c0, c1);
}

/* Channels per pad chunk: at least ~16k floats of planes each. */
static int64_t pad_grain(const direct_geom_t *g)
{
    const int64_t per = g->sh * g->sw * g->plane;
    return per >= 16384 ? 1 : 16384 / per;
}

/* One worker on one image and group: output row tiles [t0, t1) from the
 * padded planes all workers filled (strided convolutions). */
static void direct_row_band(void *ctx, int worker, int64_t t0, int64_t t1)
{
    direct_job_t *j = ctx;
    (void)worker;
    const int64_t r1 = t1 * j->g.tr;
    direct_rows(j, j->n, j->group, j->scr.pads, t0 * j->g.tr, r1 < j->g.oh ? r1 : j->g.oh, NULL);
}

/* The same at stride 1, in one loop: the worker pads into its own copy of
 * the padded planes (same layout) just the rows its tiles read, halo
 * included, and zeroes what the tiles read past them (the last tile of a row
 * runs into the next rows), so no thread reads what another wrote in this
 * layer and no barrier separates padding from computing. */
static void direct_band(void *ctx, int worker, int64_t t0, int64_t t1)
{
    direct_job_t *j = ctx;
    const sfp_conv_shape_t *s = j->s;
    const direct_geom_t *g = &j->g;
    float *pad = j->scr.pads + worker * round16(g->pad_floats);
    const int64_t oy0 = t0 * g->tr, oy1 = t1 * g->tr < g->oh ? t1 * g->tr : g->oh;
    const int64_t h = s->in[0], w = s->in[1], top = s->pad_begin[0], left = s->pad_begin[1];
    const int64_t cols = w < g->wp - left ? w : g->wp - left;
    const int64_t rows = h < g->hp - top ? h : g->hp - top;
    const int64_t last = t1 * g->tr + (s->kernel[0] - 1) * s->dilation[0]; /* whole tiles' rows */
    const int64_t py1 = last < g->hq ? last : g->hq;
    const int64_t spill = g->x_tiles * g->nr + s->kernel[1] * s->dilation[1] + g->wq * g->tr;
    for (int64_t c = 0; c < g->cg; c++) {
        const float *src = j->x + ((j->n * s->in_channels + j->group * g->cg + c) * h) * w;
        float *plane = pad + c * g->plane;
        for (int64_t py = oy0; py < py1; py++) {
            const int64_t r = py - top;
            if (r >= 0 && r < rows)
                pad_row(plane + py * g->wq, src + r * w, left, cols, g->wq);
            else
                memset(plane + py * g->wq, 0, sizeof(float) * (size_t)g->wq);
        }
        /* into the next plane's first rows when py1 is the last: those are
         * written again below when that plane's own rows are */
        const int64_t z0 = c * g->plane + py1 * g->wq, z1 = z0 + spill < g->pad_floats ? z0 + spill : g->pad_floats;
        memset(pad + z0, 0, sizeof(float) * (size_t)(z1 - z0));
    }
    direct_rows(j, j->n, j->group, pad, oy0, oy1, NULL);
}

/* panel (k, mr) = the mr rows side by side: written in order, read from
 * mr sequential rows. */
static inline void pack_panel(int64_t k, int64_t mr, const float *const *rows, float *restrict panel)
{
    for (int64_t r = 0; r < k; r++, panel += mr)
#pragma GCC unroll 12
        for (int64_t i = 0; i < mr; i++) panel[i] = rows[i][r];
}

/* off (cg * kk): where tap (c, ky, kx) of output 0 lies in the padded phase
 * planes; output (oy, ox) reads it oy * wq + ox further. */
static void tap_offsets(const sfp_conv_shape_t *s, const direct_geom_t *g, int32_t *off)
{
    for (int64_t ky = 0; ky < s->kernel[0]; ky++) /* channel 0, then the others a plane apart */
        for (int64_t kx = 0; kx < s->kernel[1]; kx++) {
            const int64_t dy = ky * s->dilation[0], dx = kx * s->dilation[1];
            const int64_t phase = dy % g->sh * g->sw + dx % g->sw;
            off[ky * s->kernel[1] + kx] = (int32_t)(phase * g->cg * g->plane + dy / g->sh * g->wq + dx / g->sw);
        }
    for (int64_t c = 1; c < g->cg; c++)
        for (int64_t t = 0; t < g->kk; t++) off[c * g->kk + t] = off[t] + (int32_t)(c * g->plane);
}

/* Weights (M, C/G, KH, KW) as panels (group, m_tile, tap, mr); the offset of
 * each tap in the padded image. */
static void direct_pack(const sfp_conv_shape_t *s, const direct_geom_t *g, const float *w, float *pack, int32_t *off)
{
    for (int64_t grp = 0; grp < s->group; grp++)
        for (int64_t mt = 0; mt < g->m_tiles; mt++) {
            float *restrict panel = pack + (grp * g->m_tiles + mt) * g->k * g->mr;
            const float *rows[MAX_MR];
            const int64_t m0 = mt * g->mr, n_rows = g->mg - m0 < g->mr ? g->mg - m0 : g->mr;
            const int64_t mr = mt == g->m_tiles - 1 ? g->last_mr : g->mr;
            /* the last tile of a group repeats its last channel (computed, never stored) */
            for (int64_t i = 0; i < mr; i++) rows[i] = w + (grp * g->mg + m0 + (i < n_rows ? i : n_rows - 1)) * g->k;
            switch (mr) { /* a constant row count, so the inner loop unrolls */
            case 6: pack_panel(g->k, 6, rows, panel); break;
            case 4: pack_panel(g->k, 4, rows, panel); break;
            case 2: pack_panel(g->k, 2, rows, panel); break;
            case 8: pack_panel(g->k, 8, rows, panel); break;
            case 12: pack_panel(g->k, 12, rows, panel); break;
            default: pack_panel(g->k, mr, rows, panel); break;
            }
        }
    tap_offsets(s, g, off);
}

size_t conv_direct_packed_bytes(const sfp_conv_shape_t *s)
{
    direct_geom_t g;
    if (!direct_geom(s, &g)) return 0;
    return sizeof(float) * (size_t)(round16(g.pack_floats) + round16(g.k));
}

void conv_direct_pack(const sfp_conv_shape_t *s, const float *w, float *packed)
{
    direct_geom_t g;
    if (!direct_geom(s, &g)) return;
    direct_pack(s, &g, w, packed, (int32_t *)(packed + round16(g.pack_floats)));
}

void conv_direct_forward(const sfp_conv_shape_t *s, const float *x, const float *w, const float *packed,
                         const sfp_conv_epilogue_t *e, float *y, float *scratch, sfp_threads_t *threads)
{
    direct_job_t j = {s, {0}, x, e, y, {0}, 0, 0};
    if (!direct_geom(s, &j.g) || s->batch < 1) return;
    const int n_threads = sfp_threads_count(threads), workers = direct_workers(s, n_threads);
    direct_layout(s, &j.g, n_threads, scratch, &j.scr);
    if (packed) { /* packed once by conv_direct_pack: panels, then tap offsets */
        j.scr.pack = (float *)packed;
        j.scr.off = (int32_t *)(packed + round16(j.g.pack_floats));
    } else {
        direct_pack(s, &j.g, w, j.scr.pack, j.scr.off);
    }
    if (workers > 1 || n_threads < 2) {
        sfp_threads_for_chunks(threads, s->batch, 1, direct_images, &j);
        return;
    }
    /* fewer images than threads: bands of output rows of each image are
     * shared out, at least ~64k multiply-adds each so tiny layers stay on one
     * thread */
    const int64_t per_row = j.g.k * j.g.mg * j.g.ow;
    const int64_t rows_per_band = per_row >= 65536 ? 1 : 65536 / per_row;
    const int64_t row_tiles = (j.g.oh + j.g.tr - 1) / j.g.tr, tiles_per_band = (rows_per_band + j.g.tr - 1) / j.g.tr;
    const int64_t max_bands = (row_tiles + tiles_per_band - 1) / tiles_per_band;
    const int64_t bands = max_bands < n_threads ? max_bands : n_threads;
    const bool by_rows = j.g.sh == 1 && j.g.sw == 1;
    for (int64_t n = 0; n < s->batch; n++)
        for (int64_t grp = 0; grp < s->group; grp++) {
            j.n = n;
            j.group = grp;
            if (by_rows) {
                sfp_threads_for_chunks(threads, row_tiles, (row_tiles + bands - 1) / bands, direct_band, &j);
                continue;
            }
            sfp_threads_for(threads, j.g.cg, pad_grain(&j.g), pad_range, &j);
            pad_tail(&j.g, j.scr.pads);
            sfp_threads_for_chunks(threads, row_tiles, (row_tiles + bands - 1) / bands, direct_row_band, &j);
        }
}

/* ---- dW on the same padded planes ----
 * dW[m][r] = sum over images and outputs (oy, ox) of dY[m][oy, ox] *
 * pad[off[r] + oy * wq + ox]: the forward's product with the position axis
 * as the sum. dY of a chunk of images is first transposed to (position,
 * channel) so that a tile, dw_kind's channels x taps in registers
 * (conv_direct_avx*.c), takes per position a load of dY per vector and
 * one broadcast of x per tap:
 * every dW element is one FMA chain over the chunk's positions in order.
 * The chunks of the batch are cut into at most DW_PARTIALS contiguous
 * ranges fixed by the shape, each summed into its own dw and db, which are
 * added in order at the end, so dW does not depend on the thread count;
 * workers claim whole partials. */
#define DW_PARTIALS 8
#define DW_CHUNK_POSITIONS 512

/* Images per chunk: about DW_CHUNK_POSITIONS outputs per pass over the taps. */
static int64_t dw_chunk_images(const sfp_conv_shape_t *s, const direct_geom_t *g)
{
    const int64_t nb = g->ohw >= DW_CHUNK_POSITIONS ? 1 : DW_CHUNK_POSITIONS / g->ohw;
    return nb < s->batch ? nb : (s->batch > 1 ? s->batch : 1);
}

static int64_t dw_chunks(const sfp_conv_shape_t *s, const direct_geom_t *g)
{
    const int64_t nb = dw_chunk_images(s, g);
    return (s->batch + nb - 1) / nb;
}

static int64_t dw_partials(const sfp_conv_shape_t *s, const direct_geom_t *g)
{
    const int64_t chunks = dw_chunks(s, g);
    return chunks < 1 ? 1 : chunks < DW_PARTIALS ? chunks : DW_PARTIALS;
}

static int dw_workers(const sfp_conv_shape_t *s, const direct_geom_t *g, int n_threads)
{
    const int64_t partials = dw_partials(s, g);
    return partials < n_threads ? (int)partials : n_threads;
}

/* Channels of a group rounded up to whole tiles (the transposed dY's row). */
static const dw_tile_kind_t *dw_kind(const direct_geom_t *g)
{
    return g->mg % g->isa->dw->channels == 0 ? g->isa->dw : g->isa->dw_other;
}

static int64_t dw_channels(const direct_geom_t *g)
{
    const int64_t c = dw_kind(g)->channels;
    return (g->mg + c - 1) / c * c;
}

/* Scratch: tap offsets, the partials (dw (M, cg * kk) then db (M) each),
 * and per worker the padded images of a chunk and its transposed dY; each
 * part 64-byte aligned. */
typedef struct dw_scratch {
    int32_t *off;
    float *partials, *work;
    int64_t per_partial, per_worker, pads_floats;
} dw_scratch_t;

static int64_t dw_layout(const sfp_conv_shape_t *s, const direct_geom_t *g, int n_threads, float *scratch,
                         dw_scratch_t *out)
{
    const int64_t nb = dw_chunk_images(s, g);
    const int64_t per_partial = round16(s->out_channels * g->k + s->out_channels);
    const int64_t pads_floats = nb * round16(g->pad_floats);
    const int64_t per_worker = pads_floats + round16(nb * g->ohw * dw_channels(g));
    const int64_t partials_at = round16(g->k), work_at = partials_at + dw_partials(s, g) * per_partial;
    if (out) {
        out->off = (int32_t *)scratch;
        out->partials = scratch + partials_at;
        out->work = scratch + work_at;
        out->per_partial = per_partial;
        out->per_worker = per_worker;
        out->pads_floats = pads_floats;
    }
    return work_at + per_worker * dw_workers(s, g, n_threads > 1 ? n_threads : 1);
}

bool conv_direct_dw_scratch_floats(const sfp_conv_shape_t *s, int n_threads, size_t *out)
{
    direct_geom_t g;
    if (!direct_geom(s, &g)) return false;
    const int64_t limit = (int64_t)1 << 40, nb = dw_chunk_images(s, &g);
    if (s->out_channels > limit / (g.k + 1) || nb > limit / (g.pad_floats + 16) ||
        nb * g.ohw > limit / (dw_channels(&g) + 16))
        return false;
    *out = (size_t)dw_layout(s, &g, n_threads, NULL, NULL);
    return true;
}

typedef struct dw_job {
    const sfp_conv_shape_t *s;
    direct_geom_t g;
    const float *x, *dy;
    bool want_dw, want_db;
    dw_scratch_t scr;
    atomic_llong next;          /* the next partial not yet taken */
} dw_job_t;

/* dY of images [n, n + cnt), group grp, as dyt (image, position, ld
 * channels), the channels past the group's zero. */
static void dw_transpose(const dw_job_t *j, int64_t n, int64_t cnt, int64_t grp, float *dyt)
{
    const sfp_conv_shape_t *s = j->s;
    const direct_geom_t *g = &j->g;
    const int64_t ld = dw_channels(g);
    for (int64_t i = 0; i < cnt; i++) {
        const float *src = j->dy + ((n + i) * s->out_channels + grp * g->mg) * g->ohw;
        float *dst = dyt + i * g->ohw * ld;
        conv_direct_transpose(src, g->ohw, g->mg, g->ohw, dst, ld);
        for (int64_t p = 0; p < g->ohw && g->mg < ld; p++)
            memset(dst + p * ld + g->mg, 0, sizeof(float) * (size_t)(ld - g->mg));
    }
}

/* Images [n, n + cnt), group grp, padded in pads and transposed in dyt:
 * their sums added into dw_part (M, k) and db_part (M). */
static void dw_chunk(const dw_job_t *j, int64_t n, int64_t cnt, int64_t grp, const float *pads, const float *dyt,
                     float *dw_part, float *db_part)
{
    const sfp_conv_shape_t *s = j->s;
    const direct_geom_t *g = &j->g;
    if (j->want_db)
        for (int64_t m = 0; m < g->mg; m++) {
            /* eight running sums (position p into sum p % 8), then added
             * pairwise: one chain of dependent adds per channel was ~5% of a
             * ResNet-56 training step */
            double sum[8] = {0.0};
            for (int64_t i = 0; i < cnt; i++) {
                const float *restrict row = j->dy + ((n + i) * s->out_channels + grp * g->mg + m) * g->ohw;
                int64_t p = 0;
                for (; p + 8 <= g->ohw; p += 8)
                    for (int q = 0; q < 8; q++) sum[q] += (double)row[p + q];
                for (; p < g->ohw; p++) sum[p % 8] += (double)row[p];
            }
            db_part[grp * g->mg + m] +=
                (float)(((sum[0] + sum[1]) + (sum[2] + sum[3])) + ((sum[4] + sum[5]) + (sum[6] + sum[7])));
        }
    if (!j->want_dw) return;
    const int64_t ld = dw_channels(g);
    const dw_tile_kind_t *kind = dw_kind(g);
    const int nr = kind->nr, cw = kind->channels;
    dw_tile_in_t t = {dyt, pads, {0}, ld, cnt, g->ohw * ld, round16(g->pad_floats), g->oh, g->ow, g->wq};
    for (int64_t r0 = 0; r0 < g->k; r0 += nr) {
        const int64_t taps = g->k - r0 < nr ? g->k - r0 : nr;
        for (int r = 0; r < nr; r++) t.off[r] = j->scr.off[r0 + (r < taps ? r : taps - 1)];
        for (int64_t m0 = 0; m0 < g->mg; m0 += cw) {
            const int64_t rows = g->mg - m0 < cw ? g->mg - m0 : cw;
            float sums[DW_MAX_NR][DW_MAX_CHANNELS];
            t.dyt = dyt + m0;
            kind->fn(&t, sums);
            for (int64_t i = 0; i < rows; i++) {
                float *restrict dst = dw_part + (grp * g->mg + m0 + i) * g->k + r0;
                for (int64_t r = 0; r < taps; r++) dst[r] += sums[r][i];
            }
        }
    }
}

/* One worker: whole partials, taken one at a time. */
static void dw_worker(void *ctx, int worker, int64_t w0, int64_t w1)
{
    dw_job_t *j = ctx;
    (void)w0, (void)w1;
    const sfp_conv_shape_t *s = j->s;
    const int64_t nb = dw_chunk_images(s, &j->g), chunks = dw_chunks(s, &j->g), n_part = dw_partials(s, &j->g);
    const int64_t pad_stride = round16(j->g.pad_floats), dw_floats = s->out_channels * j->g.k;
    float *pads = j->scr.work + worker * j->scr.per_worker, *dyt = pads + j->scr.pads_floats;
    for (int64_t p; (p = (int64_t)atomic_fetch_add(&j->next, 1)) < n_part;) {
        float *dw_part = j->scr.partials + p * j->scr.per_partial, *db_part = dw_part + dw_floats;
        memset(dw_part, 0, sizeof(float) * (size_t)j->scr.per_partial);
        const int64_t c0 = chunks / n_part * p + chunks % n_part * p / n_part;
        const int64_t c1 = chunks / n_part * (p + 1) + chunks % n_part * (p + 1) / n_part;
        for (int64_t c = c0; c < c1; c++) {
            const int64_t n = c * nb, cnt = s->batch - n < nb ? s->batch - n : nb;
            for (int64_t grp = 0; grp < s->group; grp++) {
                if (j->want_dw) {
                    for (int64_t i = 0; i < cnt; i++) pad_image(s, &j->g, j->x, n + i, grp, pads + i * pad_stride);
                    dw_transpose(j, n, cnt, grp, dyt);
                }
                dw_chunk(j, n, cnt, grp, pads, dyt, dw_part, db_part);
            }
        }
    }
}

void conv_direct_backward_dw(const sfp_conv_shape_t *s, const float *x, const float *dy, float *dw, float *db,
                             float *scratch, sfp_threads_t *threads)
{
    dw_job_t j = {s, {0}, x, dy, dw != NULL, db != NULL, {0}, 0};
    if (!direct_geom(s, &j.g) || s->batch < 1 || (!dw && !db)) return;
    const int n_threads = sfp_threads_count(threads);
    dw_layout(s, &j.g, n_threads, scratch, &j.scr);
    tap_offsets(s, &j.g, j.scr.off);
    atomic_store(&j.next, 0);
    sfp_threads_for_chunks(threads, dw_workers(s, &j.g, n_threads), 1, dw_worker, &j);
    const int64_t dw_floats = s->out_channels * j.g.k;
    for (int64_t p = 0; p < dw_partials(s, &j.g); p++) {
        const float *restrict part = j.scr.partials + p * j.scr.per_partial;
        if (dw)
            for (int64_t i = 0; i < dw_floats; i++) dw[i] += part[i];
        if (db)
            for (int64_t m = 0; m < s->out_channels; m++) db[m] += part[dw_floats + m];
    }
}
