/* Pooling: MaxPool and AveragePool over a kernel_shape window (pads,
 * strides, dilations, ceil_mode, count_include_pad), GlobalAveragePool and
 * GlobalMaxPool to (N,C,1,...,1). Work = output elements * window size.
 * Forward: planes (N*C) split over the thread pool; per output position the
 * valid taps of each dim form one range, computed before the loop. Backward
 * walks the same windows: max sends the gradient to the window's first
 * maximum, average spreads it over the taps it divided by. */
#include <float.h>
#include <string.h>

#include "ops/ops.h"

static const char *const maxpool_attrs[] = {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads",
                                            "storage_order", "strides", NULL};
static const char *const avgpool_attrs[] = {"auto_pad", "ceil_mode", "count_include_pad", "dilations",
                                            "kernel_shape", "pads", "strides", NULL};
static const char *const no_attrs[] = {NULL};

static int pool_check(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    if (c->node->n_outputs > 1 && c->node->outputs[1] >= 0)
        return op_errorf(c, err, SFP_EUNSUPPORTED, "the Indices output is not supported");
    return op_check_auto_pad(c, err);
}

static int pool_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 3, 2 + SFP_MAX_SPATIAL, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    sfp_window_t win;
    bool ceil_mode = node_attr_int(c->node, "ceil_mode", 0) != 0;
    if ((rc = op_window(c, x->dims + 2, x->ndim - 2, NULL, ceil_mode, &win, err)) < 0) return rc;
    for (int k = 0; k < win.n_spatial; k++)
        if (win.pad_begin[k] >= win.kernel[k] * win.dilation[k] || win.pad_end[k] >= win.kernel[k] * win.dilation[k])
            return op_errorf(c, err, SFP_EBADMODEL, "pads must be smaller than the kernel");
    int64_t dims[SFP_MAX_DIMS] = {x->dims[0], x->dims[1]};
    for (int k = 0; k < win.n_spatial; k++) dims[2 + k] = win.out[k];
    return op_set_out(c, 0, x->dtype, x->ndim, dims, x->batch0, err);
}

static int64_t pool_work(const sfp_graph_t *g, const sfp_node_t *n)
{
    const int64_t *ks = NULL;
    size_t nk = node_attr_ints(n, "kernel_shape", &ks);
    int64_t win = 1;
    for (size_t k = 0; k < nk; k++) win *= ks[k];
    return op_work_out_elems(g, n) * win;
}

static int global_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 3, SFP_MAX_DIMS, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0);
    int64_t dims[SFP_MAX_DIMS] = {x->dims[0], x->dims[1]};
    for (int k = 2; k < x->ndim; k++) dims[k] = 1;
    return op_set_out(c, 0, x->dtype, x->ndim, dims, x->batch0, err);
}

static int64_t global_work(const sfp_graph_t *g, const sfp_node_t *n)
{
    const sfp_value_t *x = &g->values[n->inputs[0]];
    return x->ndim >= 0 ? op_numel(x) : 0;
}

/* ---- forward ---- */
static int64_t prod_n(const int64_t *d, int n)
{
    int64_t p = 1;
    for (int k = 0; k < n; k++) p *= d[k];
    return p;
}

/* Taps k in [0, kernel) with start + k * dil in [0, size): [*lo, *hi). */
static void tap_range(int64_t start, int64_t dil, int64_t kernel, int64_t size, int64_t *lo, int64_t *hi)
{
    int64_t l = start < 0 ? (-start + dil - 1) / dil : 0;
    int64_t h = size - 1 - start < 0 ? 0 : (size - 1 - start) / dil + 1;
    if (h > kernel) h = kernel;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* Row-major strides of one input plane. */
static void pool_in_strides(const sfp_pool_shape_t *s, int64_t *in_stride)
{
    int64_t st = 1;
    for (int d = s->n_spatial - 1; d >= 0; d--) {
        in_stride[d] = st;
        st *= s->in[d];
    }
}

/* The window of the output at pos (shared by forward and backward): valid taps
 * [lo, hi) per spatial dim, their count, the count with padding taps (for
 * count_include_pad), and the plane offset of the first valid tap. */
static void pool_window_at(const sfp_pool_shape_t *s, const int64_t *pos, const int64_t *in_stride, int64_t *lo,
                           int64_t *hi, int64_t *taps, int64_t *padded_taps, int64_t *base)
{
    *taps = *padded_taps = 1;
    *base = 0;
    for (int d = 0; d < s->n_spatial; d++) {
        int64_t plo = 0, phi = 0, start = pos[d] * s->stride[d] - s->pad_begin[d];
        tap_range(start, s->dilation[d], s->kernel[d], s->in[d], &lo[d], &hi[d]);
        tap_range(start + s->pad_begin[d], s->dilation[d], s->kernel[d], s->in[d] + s->pad_begin[d] + s->pad_end[d],
                  &plo, &phi);
        *taps *= hi[d] - lo[d];
        *padded_taps *= phi - plo;
        *base += (start + lo[d] * s->dilation[d]) * in_stride[d];
    }
}

typedef struct pool_job {
    const sfp_pool_shape_t *s;
    const float *x;
    float *y;
    bool is_max;
} pool_job_t;

/* 2-D windows that all lie inside the input (no pads, no dilation): no
 * bounds per tap. Same taps in the same order as the general loop. */
static bool pool_all_inside_2d(const sfp_pool_shape_t *s)
{
    if (s->n_spatial != 2) return false;
    for (int d = 0; d < 2; d++)
        if (s->pad_begin[d] != 0 || s->pad_end[d] != 0 || s->dilation[d] != 1 ||
            (s->out[d] - 1) * s->stride[d] + s->kernel[d] > s->in[d])
            return false;
    return true;
}

static void pool_planes_inside_2d(const pool_job_t *j, int64_t p0, int64_t p1)
{
    const sfp_pool_shape_t *s = j->s;
    const int64_t ih = s->in[0], iw = s->in[1], oh = s->out[0], ow = s->out[1];
    const int64_t kh = s->kernel[0], kw = s->kernel[1], sh = s->stride[0], sw = s->stride[1];
    const double taps = (double)(kh * kw);
    for (int64_t p = p0; p < p1; p++) {
        const float *x = j->x + p * ih * iw;
        float *y = j->y + p * oh * ow;
        if (!j->is_max && kh == 1 && kw == 1) { /* a strided copy (the average of one tap is the tap) */
            for (int64_t oy = 0; oy < oh; oy++) {
                const float *restrict src = x + oy * sh * iw;
                float *restrict dst = y + oy * ow;
                for (int64_t ox = 0; ox < ow; ox++) dst[ox] = src[ox * sw];
            }
            continue;
        }
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                const float *win = x + oy * sh * iw + ox * sw;
                if (j->is_max) {
                    float best = -FLT_MAX;
                    for (int64_t ky = 0; ky < kh; ky++)
                        for (int64_t kx = 0; kx < kw; kx++)
                            if (win[ky * iw + kx] > best) best = win[ky * iw + kx];
                    y[oy * ow + ox] = best;
                } else {
                    double sum = 0.0;
                    for (int64_t ky = 0; ky < kh; ky++)
                        for (int64_t kx = 0; kx < kw; kx++) sum += (double)win[ky * iw + kx];
                    y[oy * ow + ox] = (float)(sum / taps);
                }
            }
    }
}

static void pool_planes(void *ctx, int64_t p0, int64_t p1)
{
    const pool_job_t *j = ctx;
    const sfp_pool_shape_t *s = j->s;
    if (pool_all_inside_2d(s)) {
        pool_planes_inside_2d(j, p0, p1);
        return;
    }
    const int ns = s->n_spatial, last = ns - 1;
    const int64_t ihw = prod_n(s->in, ns), ohw = prod_n(s->out, ns);
    int64_t in_stride[SFP_MAX_SPATIAL];
    pool_in_strides(s, in_stride);
    for (int64_t p = p0; p < p1; p++) {
        const float *x = j->x + p * ihw;
        float *y = j->y + p * ohw;
        int64_t pos[SFP_MAX_SPATIAL] = {0};
        for (int64_t o = 0; o < ohw; o++) {
            int64_t lo[SFP_MAX_SPATIAL], hi[SFP_MAX_SPATIAL], taps = 0, padded_taps = 0, base = 0;
            pool_window_at(s, pos, in_stride, lo, hi, &taps, &padded_taps, &base);
            float best = -FLT_MAX;
            double sum = 0.0;
            if (taps > 0) {
                /* odometer over the outer dims' valid taps; the last dim is a run */
                int64_t k[SFP_MAX_SPATIAL];
                for (int d = 0; d < ns; d++) k[d] = lo[d];
                const int64_t run = hi[last] - lo[last], step = s->dilation[last];
                for (;;) {
                    int64_t off = 0;
                    for (int d = 0; d < last; d++) off += (k[d] - lo[d]) * s->dilation[d] * in_stride[d];
                    const float *src = x + base + off;
                    if (j->is_max) {
                        for (int64_t t = 0; t < run; t++)
                            if (src[t * step] > best) best = src[t * step];
                    } else {
                        for (int64_t t = 0; t < run; t++) sum += (double)src[t * step];
                    }
                    int d = last - 1;
                    for (; d >= 0; d--) {
                        if (++k[d] < hi[d]) break;
                        k[d] = lo[d];
                    }
                    if (d < 0) break;
                }
            }
            if (j->is_max) {
                y[o] = best;
            } else {
                int64_t div = s->count_include_pad ? padded_taps : taps;
                y[o] = div > 0 ? (float)(sum / (double)div) : 0.0f;
            }
            for (int d = last; d >= 0; d--) {
                if (++pos[d] < s->out[d]) break;
                pos[d] = 0;
            }
        }
    }
}

static void pool_run(const sfp_pool_shape_t *s, const float *x, float *y, bool is_max, sfp_threads_t *threads)
{
    pool_job_t j = {s, x, y, is_max};
    int64_t per_plane = prod_n(s->out, s->n_spatial) * prod_n(s->kernel, s->n_spatial);
    sfp_threads_for(threads, s->batch * s->channels, per_plane >= 8192 ? 1 : 8192 / (per_plane ? per_plane : 1),
                    pool_planes, &j);
}

/* x (N, C, D1..Dk) -> y (N, C, O1..Ok) */
void maxpool_forward(const sfp_pool_shape_t *s, const float *x, float *y, sfp_threads_t *threads)
{
    pool_run(s, x, y, true, threads);
}

void avgpool_forward(const sfp_pool_shape_t *s, const float *x, float *y, sfp_threads_t *threads)
{
    pool_run(s, x, y, false, threads);
}

/* Tap by tap with a bounds check each, the definition read literally. */
static void pool_ref(const sfp_pool_shape_t *s, const float *x, float *y, bool is_max)
{
    const int ns = s->n_spatial;
    const int64_t ihw = prod_n(s->in, ns), ohw = prod_n(s->out, ns), kk = prod_n(s->kernel, ns);
    for (int64_t p = 0; p < s->batch * s->channels; p++)
        for (int64_t o = 0; o < ohw; o++) {
            int64_t opos[SFP_MAX_SPATIAL];
            for (int64_t d = ns - 1, t = o; d >= 0; d--) {
                opos[d] = t % s->out[d];
                t /= s->out[d];
            }
            float best = -FLT_MAX;
            double sum = 0.0;
            int64_t taps = 0, padded_taps = 0;
            for (int64_t tap = 0; tap < kk; tap++) {
                int64_t off = 0;
                bool inside = true, in_padded = true;
                for (int64_t d = ns - 1, t = tap, stride = 1; d >= 0; d--) {
                    int64_t kd = t % s->kernel[d];
                    t /= s->kernel[d];
                    int64_t id = opos[d] * s->stride[d] - s->pad_begin[d] + kd * s->dilation[d];
                    if (id < 0 || id >= s->in[d]) inside = false;
                    if (id < -s->pad_begin[d] || id >= s->in[d] + s->pad_end[d]) in_padded = false;
                    off += id * stride;
                    stride *= s->in[d];
                }
                padded_taps += in_padded;
                if (!inside) continue;
                float v = x[p * ihw + off];
                taps++;
                if (v > best) best = v;
                sum += (double)v;
            }
            int64_t div = s->count_include_pad ? padded_taps : taps;
            y[p * ohw + o] = is_max ? best : div > 0 ? (float)(sum / (double)div) : 0.0f;
        }
}

void maxpool_forward_ref(const sfp_pool_shape_t *s, const float *x, float *y)
{
    pool_ref(s, x, y, true);
}

void avgpool_forward_ref(const sfp_pool_shape_t *s, const float *x, float *y)
{
    pool_ref(s, x, y, false);
}

typedef struct global_job {
    int64_t spatial;
    const float *x;
    float *y;
    bool is_max;
} global_job_t;

static void global_planes(void *ctx, int64_t p0, int64_t p1)
{
    const global_job_t *j = ctx;
    for (int64_t p = p0; p < p1; p++) {
        const float *x = j->x + p * j->spatial;
        if (j->is_max) {
            float best = -FLT_MAX;
            for (int64_t i = 0; i < j->spatial; i++)
                if (x[i] > best) best = x[i];
            j->y[p] = best;
        } else {
            double sum = 0.0;
            for (int64_t i = 0; i < j->spatial; i++) sum += (double)x[i];
            j->y[p] = j->spatial ? (float)(sum / (double)j->spatial) : 0.0f;
        }
    }
}

/* x (planes, spatial) -> y (planes) */
void global_avgpool_forward(int64_t planes, int64_t spatial, const float *x, float *y, sfp_threads_t *threads)
{
    global_job_t j = {spatial, x, y, false};
    sfp_threads_for(threads, planes, spatial >= 8192 ? 1 : 8192 / (spatial ? spatial : 1), global_planes, &j);
}

void global_maxpool_forward(int64_t planes, int64_t spatial, const float *x, float *y, sfp_threads_t *threads)
{
    global_job_t j = {spatial, x, y, true};
    sfp_threads_for(threads, planes, spatial >= 8192 ? 1 : 8192 / (spatial ? spatial : 1), global_planes, &j);
}

static int pool_shape_of(const sfp_exec_t *x, sfp_pool_shape_t *s, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0];
    sfp_op_ctx_t c = exec_ctx(x);
    sfp_window_t win;
    bool ceil_mode = node_attr_int(x->node, "ceil_mode", 0) != 0;
    int rc = op_window(&c, xs->dims + 2, xs->ndim - 2, NULL, ceil_mode, &win, err);
    if (rc < 0) return rc;
    memset(s, 0, sizeof *s);
    s->batch = xs->dims[0];
    s->channels = xs->dims[1];
    s->n_spatial = win.n_spatial;
    for (int d = 0; d < win.n_spatial; d++) {
        s->in[d] = win.in[d];
        s->out[d] = win.out[d];
        s->kernel[d] = win.kernel[d];
        s->stride[d] = win.stride[d];
        s->dilation[d] = win.dilation[d];
        s->pad_begin[d] = win.pad_begin[d];
        s->pad_end[d] = win.pad_end[d];
    }
    s->count_include_pad = node_attr_int(x->node, "count_include_pad", 0) != 0;
    return 0;
}

static int pool_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    *scratch_bytes = 0;
    return exec_need_dtype(x, 0, SFP_DT_FLOAT, err);
}

static int maxpool_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    sfp_pool_shape_t s;
    int rc = pool_shape_of(x, &s, err);
    if (rc == 0) maxpool_forward(&s, x->in[0], x->out[0], x->threads);
    return rc;
}

static int avgpool_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    sfp_pool_shape_t s;
    int rc = pool_shape_of(x, &s, err);
    if (rc == 0) avgpool_forward(&s, x->in[0], x->out[0], x->threads);
    return rc;
}

static int global_avg_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    const sfp_shape_t *xs = x->in_shape[0];
    global_avgpool_forward(xs->dims[0] * xs->dims[1], shape_prod(xs, 2, xs->ndim), x->in[0], x->out[0], x->threads);
    return 0;
}

static int global_max_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    const sfp_shape_t *xs = x->in_shape[0];
    global_maxpool_forward(xs->dims[0] * xs->dims[1], shape_prod(xs, 2, xs->ndim), x->in[0], x->out[0], x->threads);
    return 0;
}

/* ---- backward ---- */
typedef struct pool_bwd_job {
    const sfp_pool_shape_t *s;
    const float *x, *dy;
    float *dx;
    bool is_max;
} pool_bwd_job_t;

/* The same for 2-D windows all inside the input (pool_all_inside_2d): the
 * taps in the same order, no bounds; a 1x1 average (a downsampling
 * shortcut's) is a strided add. */
static void pool_bwd_planes_inside_2d(const pool_bwd_job_t *j, int64_t p0, int64_t p1)
{
    const sfp_pool_shape_t *s = j->s;
    const int64_t ih = s->in[0], iw = s->in[1], oh = s->out[0], ow = s->out[1];
    const int64_t kh = s->kernel[0], kw = s->kernel[1], sh = s->stride[0], sw = s->stride[1];
    const double taps = (double)(kh * kw);
    for (int64_t p = p0; p < p1; p++) {
        const float *x = j->is_max ? j->x + p * ih * iw : NULL;
        const float *dy = j->dy + p * oh * ow;
        float *dx = j->dx + p * ih * iw;
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                const int64_t at = oy * sh * iw + ox * sw;
                if (!j->is_max) {
                    const float g = (float)((double)dy[oy * ow + ox] / taps);
                    for (int64_t ky = 0; ky < kh; ky++)
                        for (int64_t kx = 0; kx < kw; kx++) dx[at + ky * iw + kx] += g;
                    continue;
                }
                int64_t best_at = at;
                for (int64_t ky = 0; ky < kh; ky++)
                    for (int64_t kx = 0; kx < kw; kx++)
                        if (x[at + ky * iw + kx] > x[best_at]) best_at = at + ky * iw + kx;
                dx[best_at] += dy[oy * ow + ox];
            }
    }
}

/* Planes [p0, p1): the forward's window walk; max finds the first largest
 * tap (strictly greater replaces), average adds dy / divisor to every tap. */
static void pool_bwd_planes(void *ctx, int64_t p0, int64_t p1)
{
    const pool_bwd_job_t *j = ctx;
    const sfp_pool_shape_t *s = j->s;
    if (pool_all_inside_2d(s)) {
        pool_bwd_planes_inside_2d(j, p0, p1);
        return;
    }
    const int ns = s->n_spatial, last = ns - 1;
    const int64_t ihw = prod_n(s->in, ns), ohw = prod_n(s->out, ns);
    int64_t in_stride[SFP_MAX_SPATIAL];
    pool_in_strides(s, in_stride);
    for (int64_t p = p0; p < p1; p++) {
        const float *x = j->is_max ? j->x + p * ihw : NULL;
        const float *dy = j->dy + p * ohw;
        float *dx = j->dx + p * ihw;
        int64_t pos[SFP_MAX_SPATIAL] = {0};
        for (int64_t o = 0; o < ohw; o++) {
            int64_t lo[SFP_MAX_SPATIAL], hi[SFP_MAX_SPATIAL], taps = 0, padded_taps = 0, base = 0;
            pool_window_at(s, pos, in_stride, lo, hi, &taps, &padded_taps, &base);
            int64_t div = s->count_include_pad ? padded_taps : taps;
            if (taps > 0 && (j->is_max || div > 0)) {
                const float g = j->is_max ? dy[o] : (float)((double)dy[o] / (double)div);
                int64_t k[SFP_MAX_SPATIAL], best_at = -1;
                float best = 0.0f;
                for (int d = 0; d < ns; d++) k[d] = lo[d];
                const int64_t run = hi[last] - lo[last], step = s->dilation[last];
                for (;;) {
                    int64_t off = base;
                    for (int d = 0; d < last; d++) off += (k[d] - lo[d]) * s->dilation[d] * in_stride[d];
                    if (j->is_max) {
                        for (int64_t t = 0; t < run; t++)
                            if (best_at < 0 || x[off + t * step] > best) {
                                best = x[off + t * step];
                                best_at = off + t * step;
                            }
                    } else {
                        for (int64_t t = 0; t < run; t++) dx[off + t * step] += g;
                    }
                    int d = last - 1;
                    for (; d >= 0; d--) {
                        if (++k[d] < hi[d]) break;
                        k[d] = lo[d];
                    }
                    if (d < 0) break;
                }
                if (j->is_max && best_at >= 0) dx[best_at] += g;
            }
            for (int d = last; d >= 0; d--) {
                if (++pos[d] < s->out[d]) break;
                pos[d] = 0;
            }
        }
    }
}

static void pool_bwd_run(const sfp_pool_shape_t *s, const float *x, const float *dy, float *dx, bool is_max,
                         sfp_threads_t *threads)
{
    pool_bwd_job_t j = {s, x, dy, dx, is_max};
    int64_t per_plane = prod_n(s->out, s->n_spatial) * prod_n(s->kernel, s->n_spatial);
    sfp_threads_for(threads, s->batch * s->channels, per_plane >= 8192 ? 1 : 8192 / (per_plane ? per_plane : 1),
                    pool_bwd_planes, &j);
}

/* x, dx (N, C, D1..Dk), dy (N, C, O1..Ok) */
void maxpool_backward(const sfp_pool_shape_t *s, const float *x, const float *dy, float *dx, sfp_threads_t *threads)
{
    pool_bwd_run(s, x, dy, dx, true, threads);
}

void avgpool_backward(const sfp_pool_shape_t *s, const float *dy, float *dx, sfp_threads_t *threads)
{
    pool_bwd_run(s, NULL, dy, dx, false, threads);
}

/* Tap by tap with a bounds check each, as pool_ref. */
static void pool_bwd_ref(const sfp_pool_shape_t *s, const float *x, const float *dy, float *dx, bool is_max)
{
    const int ns = s->n_spatial;
    const int64_t ihw = prod_n(s->in, ns), ohw = prod_n(s->out, ns), kk = prod_n(s->kernel, ns);
    for (int64_t p = 0; p < s->batch * s->channels; p++)
        for (int64_t o = 0; o < ohw; o++) {
            int64_t opos[SFP_MAX_SPATIAL];
            for (int64_t d = ns - 1, t = o; d >= 0; d--) {
                opos[d] = t % s->out[d];
                t /= s->out[d];
            }
            /* two passes over the window: divisor or argmax, then the gradient */
            int64_t taps = 0, padded_taps = 0, best_at = -1;
            float best = -FLT_MAX;
            for (int pass = 0; pass < 2; pass++)
                for (int64_t tap = 0; tap < kk; tap++) {
                    int64_t off = 0;
                    bool inside = true, in_padded = true;
                    for (int64_t d = ns - 1, t = tap, stride = 1; d >= 0; d--) {
                        int64_t kd = t % s->kernel[d];
                        t /= s->kernel[d];
                        int64_t id = opos[d] * s->stride[d] - s->pad_begin[d] + kd * s->dilation[d];
                        if (id < 0 || id >= s->in[d]) inside = false;
                        if (id < -s->pad_begin[d] || id >= s->in[d] + s->pad_end[d]) in_padded = false;
                        off += id * stride;
                        stride *= s->in[d];
                    }
                    if (pass == 0) {
                        padded_taps += in_padded;
                        if (!inside) continue;
                        taps++;
                        if (is_max && (best_at < 0 || x[p * ihw + off] > best)) {
                            best = x[p * ihw + off];
                            best_at = off;
                        }
                    } else if (inside && !is_max) {
                        int64_t div = s->count_include_pad ? padded_taps : taps;
                        dx[p * ihw + off] += (float)((double)dy[p * ohw + o] / (double)div);
                    }
                }
            if (is_max && best_at >= 0) dx[p * ihw + best_at] += dy[p * ohw + o];
        }
}

void maxpool_backward_ref(const sfp_pool_shape_t *s, const float *x, const float *dy, float *dx)
{
    pool_bwd_ref(s, x, dy, dx, true);
}

void avgpool_backward_ref(const sfp_pool_shape_t *s, const float *dy, float *dx)
{
    pool_bwd_ref(s, NULL, dy, dx, false);
}

typedef struct global_bwd_job {
    int64_t spatial;
    const float *x, *dy;
    float *dx;
} global_bwd_job_t;

static void global_avg_bwd_planes(void *ctx, int64_t p0, int64_t p1)
{
    const global_bwd_job_t *j = ctx;
    for (int64_t p = p0; p < p1; p++) {
        const float g = (float)((double)j->dy[p] / (double)j->spatial);
        float *restrict dx = j->dx + p * j->spatial;
        for (int64_t i = 0; i < j->spatial; i++) dx[i] += g;
    }
}

static void global_max_bwd_planes(void *ctx, int64_t p0, int64_t p1)
{
    const global_bwd_job_t *j = ctx;
    for (int64_t p = p0; p < p1; p++) {
        const float *x = j->x + p * j->spatial;
        int64_t best_at = 0;
        for (int64_t i = 1; i < j->spatial; i++)
            if (x[i] > x[best_at]) best_at = i;
        j->dx[p * j->spatial + best_at] += j->dy[p];
    }
}

/* dy (planes) -> dx (planes, spatial) += dy / spatial */
void global_avgpool_backward(int64_t planes, int64_t spatial, const float *dy, float *dx, sfp_threads_t *threads)
{
    global_bwd_job_t j = {spatial, NULL, dy, dx};
    if (spatial > 0)
        sfp_threads_for(threads, planes, spatial >= 8192 ? 1 : 8192 / spatial, global_avg_bwd_planes, &j);
}

/* x (planes, spatial), dy (planes) -> dx += dy at each plane's first maximum */
void global_maxpool_backward(int64_t planes, int64_t spatial, const float *x, const float *dy, float *dx,
                             sfp_threads_t *threads)
{
    global_bwd_job_t j = {spatial, x, dy, dx};
    if (spatial > 0)
        sfp_threads_for(threads, planes, spatial >= 8192 ? 1 : 8192 / spatial, global_max_bwd_planes, &j);
}

static int maxpool_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    sfp_pool_shape_t s;
    int rc = pool_shape_of(x, &s, err);
    if (rc == 0 && x->din[0]) maxpool_backward(&s, x->in[0], x->dout[0], x->din[0], x->threads);
    return rc;
}

static int avgpool_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    sfp_pool_shape_t s;
    int rc = pool_shape_of(x, &s, err);
    if (rc == 0 && x->din[0]) avgpool_backward(&s, x->dout[0], x->din[0], x->threads);
    return rc;
}

static int global_avg_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    const sfp_shape_t *xs = x->in_shape[0];
    if (x->din[0])
        global_avgpool_backward(xs->dims[0] * xs->dims[1], shape_prod(xs, 2, xs->ndim), x->dout[0], x->din[0],
                                x->threads);
    return 0;
}

static int global_max_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    (void)err;
    const sfp_shape_t *xs = x->in_shape[0];
    if (x->din[0])
        global_maxpool_backward(xs->dims[0] * xs->dims[1], shape_prod(xs, 2, xs->ndim), x->in[0], x->dout[0],
                                x->din[0], x->threads);
    return 0;
}

const sfp_op_def_t op_defs_pool[] = {
    {"MaxPool", 1, 1, 1, 2, maxpool_attrs, pool_check, pool_infer, pool_work, SFP_WORK_ELEMENTWISE, 0,
     {.forward = maxpool_forward_node, .prepare = pool_prepare, .backward = maxpool_backward_node,
      .keep_inputs = 0x1},
     .id = SFP_OP_MAX_POOL, .chan = SFP_CHAN_SAME, .flags = SFP_OPF_ZERO_KEEPS},
    {"AveragePool", 1, 1, 1, 1, avgpool_attrs, pool_check, pool_infer, pool_work, SFP_WORK_ELEMENTWISE, 0,
     {.forward = avgpool_forward_node, .prepare = pool_prepare, .backward = avgpool_backward_node},
     .id = SFP_OP_AVERAGE_POOL, .chan = SFP_CHAN_SAME, .flags = SFP_OPF_ZERO_KEEPS},
    {"GlobalAveragePool", 1, 1, 1, 1, no_attrs, NULL, global_infer, global_work, SFP_WORK_ELEMENTWISE, 0,
     {.forward = global_avg_forward_node, .prepare = pool_prepare, .backward = global_avg_backward_node},
     .id = SFP_OP_GLOBAL_AVERAGE_POOL, .chan = SFP_CHAN_SAME, .flags = SFP_OPF_ZERO_KEEPS},
    {"GlobalMaxPool", 1, 1, 1, 1, no_attrs, NULL, global_infer, global_work, SFP_WORK_ELEMENTWISE, 0,
     {.forward = global_max_forward_node, .prepare = pool_prepare, .backward = global_max_backward_node,
      .keep_inputs = 0x1},
     .id = SFP_OP_GLOBAL_MAX_POOL, .chan = SFP_CHAN_SAME, .flags = SFP_OPF_ZERO_KEEPS},
    {0},
};
