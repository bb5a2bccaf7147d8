/* Conv: shape inference, MACs (also after a channel removal), its table row
 * (channel rules, filter axis), and the forward and backward kernels side by
 * side (the node adapters at the end). X (N,C,D1..Dk),
 * W (M, C/group, k1..kk), B (M) -> Y (N, M, O1..Ok). MACs = elements of Y *
 * (C/group) * prod(k). 2-D convolutions on CPUs the direct kernel supports run
 * it (conv_direct.c). Otherwise: per image and group, im2col into scratch and
 * one sgemm W_g (M/g, C/g*K) x col (C/g*K, O) straight into Y (1x1 stride-1
 * unpadded convolutions multiply X itself); small feature maps put several
 * images side by side in one sgemm; a batch is split by whole images over the
 * threads, each with its own slice of scratch. */
#include <string.h>

#include "ops/ops.h"

static const char *const conv_attrs[] = {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides", NULL};

static int conv_infer(const sfp_op_ctx_t *c, sfp_error_t *err)
{
    int rc;
    if ((rc = op_need_rank(c, 0, 3, 2 + SFP_MAX_SPATIAL, err)) < 0) return rc;
    const sfp_value_t *x = op_in(c, 0), *w = op_in(c, 1), *b = op_in(c, 2);
    if ((rc = op_need_rank(c, 1, x->ndim, x->ndim, err)) < 0) return rc;
    int64_t group = node_attr_int(c->node, "group", 1);
    int64_t m = w->dims[0], cin = x->dims[1];
    if (group < 1 || cin % group != 0 || m % group != 0)
        return op_errorf(c, err, SFP_EBADMODEL, "group %lld does not divide %lld input and %lld output channels",
                         (long long)group, (long long)cin, (long long)m);
    if (x->dtype != w->dtype || (b && b->dtype != x->dtype))
        return op_errorf(c, err, SFP_EBADMODEL, "input, weight and bias types differ (%s, %s)", sfp_dtype_name(x->dtype),
                         sfp_dtype_name(w->dtype));
    if (w->dims[1] * group != cin)
        return op_errorf(c, err, SFP_EBADMODEL, "weight '%s' expects %lld input channels, input '%s' has %lld",
                         sfp_q(w->name), (long long)(w->dims[1] * group), sfp_q(x->name), (long long)cin);
    if (b && (b->ndim != 1 || b->dims[0] != m))
        return op_errorf(c, err, SFP_EBADMODEL, "bias '%s' must have shape [%lld]", sfp_q(b->name), (long long)m);
    int ns = x->ndim - 2;
    const int64_t *ks = NULL;
    size_t nks = node_attr_ints(c->node, "kernel_shape", &ks);
    if (nks && ((int)nks != ns))
        return op_errorf(c, err, SFP_EBADMODEL, "kernel_shape lists %zu sizes for %d spatial dims", nks, ns);
    for (size_t k = 0; k < nks; k++)
        if (ks[k] != w->dims[2 + k])
            return op_errorf(c, err, SFP_EBADMODEL, "kernel_shape %lld differs from weight '%s' (%lld)", (long long)ks[k],
                             sfp_q(w->name), (long long)w->dims[2 + k]);
    sfp_window_t win;
    if ((rc = op_window(c, x->dims + 2, ns, w->dims + 2, false, &win, err)) < 0) return rc;
    int64_t dims[SFP_MAX_DIMS] = {x->dims[0], m};
    for (int k = 0; k < ns; k++) dims[2 + k] = win.out[k];
    return op_set_out(c, 0, x->dtype, x->ndim, dims, x->batch0, err);
}

static int64_t conv_work(const sfp_graph_t *g, const sfp_node_t *n)
{
    const sfp_value_t *w = &g->values[n->inputs[1]];
    int64_t per = w->dims[1];
    for (int k = 2; k < w->ndim; k++) per *= w->dims[k];
    return op_work_out_elems(g, n) * per;
}

/* Output elements scale with the kept output channels; each reads kept_in /
 * group input channels, except a depthwise conv, whose group shrinks with
 * its input and whose filters keep reading one channel each. */
static int64_t conv_work_kept(const sfp_graph_t *g, const sfp_node_t *n, int64_t kept_in, int64_t kept_out)
{
    const sfp_value_t *x = &g->values[n->inputs[0]], *y = &g->values[n->outputs[0]], *w = &g->values[n->inputs[1]];
    int64_t group = node_attr_int(n, "group", 1), cout = y->dims[1];
    int64_t per = group == x->dims[1] ? w->dims[1] : kept_in / group;
    for (int k = 2; k < w->ndim; k++) per *= w->dims[k];
    return cout > 0 ? op_work_out_elems(g, n) / cout * kept_out * per : 0;
}

/* ONNX Conv weight (M, C/group, k...): filters on axis 0. */
static int conv_weight_axis(const sfp_node_t *n)
{
    (void)n;
    return 0;
}

/* ---- forward ---- */
static int64_t prod_n(const int64_t *d, int n)
{
    int64_t p = 1;
    for (int k = 0; k < n; k++) p *= d[k];
    return p;
}

bool conv_is_pointwise(const sfp_conv_shape_t *s)
{
    for (int d = 0; d < s->n_spatial; d++)
        if (s->kernel[d] != 1 || s->stride[d] != 1 || s->pad_begin[d] != 0 || s->out[d] != s->in[d]) return false;
    return true;
}

/* Images per sgemm: enough columns (about 1024) that packing the weights and
 * the call itself are amortised on small feature maps. Depends on the shape
 * only, so the arithmetic of an image does not depend on the thread count. */
static int64_t conv_images_per_gemm(const sfp_conv_shape_t *s)
{
    int64_t ohw = prod_n(s->out, s->n_spatial);
    if (conv_is_pointwise(s) || ohw >= 1024 || ohw == 0) return 1;
    int64_t nb = 1024 / ohw;
    return nb > s->batch ? (s->batch > 0 ? s->batch : 1) : nb;
}

/* Workers that take whole images: every thread when the batch has two
 * images or more (sgemm then runs single-threaded inside each), else one
 * (sgemm and im2col use all threads). */
static int conv_workers(const sfp_conv_shape_t *s, int n_threads)
{
    if (n_threads < 2 || s->batch < 2) return 1;
    return s->batch < n_threads ? (int)s->batch : n_threads;
}

/* Per worker: col (C/g * prod(K), nb * prod(O)), plus the product
 * (M/g, nb * prod(O)) when several images share one sgemm. */
static bool conv_worker_floats(const sfp_conv_shape_t *s, size_t *out)
{
    size_t cols = 0, col = 0, tmp = 0;
    int64_t nb = conv_images_per_gemm(s);
    if (!sfp_mul_size((size_t)nb, (size_t)prod_n(s->out, s->n_spatial), &cols)) return false;
    if (!conv_is_pointwise(s) &&
        (!sfp_mul_size((size_t)(s->in_channels / s->group), (size_t)prod_n(s->kernel, s->n_spatial), &col) ||
         !sfp_mul_size(col, cols, &col)))
        return false;
    if (nb > 1 && !sfp_mul_size((size_t)(s->out_channels / s->group), cols, &tmp)) return false;
    if (col > SIZE_MAX - tmp) return false;
    *out = col + tmp;
    return true;
}

/* Scratch of conv_run (the im2col path, which the backward pass uses). */
static bool conv_im2col_scratch_floats(const sfp_conv_shape_t *s, int n_threads, size_t *out)
{
    size_t per = 0;
    if (!conv_worker_floats(s, &per)) return false;
    return sfp_mul_size(per, (size_t)conv_workers(s, n_threads), out);
}

bool conv_scratch_floats(const sfp_conv_shape_t *s, int n_threads, size_t *out)
{
    if (conv_direct_applies(s)) return conv_direct_scratch_floats(s, n_threads, out);
    return conv_im2col_scratch_floats(s, n_threads, out);
}

typedef struct im2col_job {
    const sfp_conv_shape_t *s;
    const float *x;     /* first channel of the range */
    float *col;
    int64_t ld;         /* row stride of col */
    int64_t kk, ohw, ihw;
} im2col_job_t;

/* 2-D, stride 1, output as large as the input ("same" padding): for one tap
 * the valid outputs form a rectangle whose rows are consecutive in both the
 * input and col, so one copy moves them all and the few columns that wrapped
 * into a neighbouring row are zeroed after. */
static void im2col_row_same(const sfp_conv_shape_t *s, const float *xc, float *dst, const int64_t *koff)
{
    const int64_t h = s->in[0], w = s->in[1];
    const int64_t dy = koff[0] * s->dilation[0] - s->pad_begin[0], dx = koff[1] * s->dilation[1] - s->pad_begin[1];
    int64_t y_lo = dy < 0 ? -dy : 0, y_hi = h - dy < h ? h - dy : h;
    int64_t x_lo = dx < 0 ? -dx : 0, x_hi = w - dx < w ? w - dx : w;
    if (y_hi < y_lo) y_hi = y_lo;
    if (x_hi <= x_lo || y_hi == y_lo) {
        memset(dst, 0, sizeof(float) * (size_t)(h * w));
        return;
    }
    if (y_lo > 0) memset(dst, 0, sizeof(float) * (size_t)(y_lo * w));
    if (y_hi < h) memset(dst + y_hi * w, 0, sizeof(float) * (size_t)((h - y_hi) * w));
    int64_t first = y_lo * w + x_lo, last = (y_hi - 1) * w + x_hi; /* [first, last) of dst */
    memcpy(dst + first, xc + first + dy * w + dx, sizeof(float) * (size_t)(last - first));
    for (int64_t y = y_lo; y < y_hi; y++) {
        float *row = dst + y * w;
        for (int64_t i = 0; i < x_lo; i++) row[i] = 0.0f;
        for (int64_t i = x_hi; i < w; i++) row[i] = 0.0f;
    }
}

/* Rows [r0, r1) of col: row r = (channel r / kk, kernel tap r % kk), one
 * column per output position. The last spatial dim is copied as a run with
 * its valid range computed once; outer dims step an odometer. */
static void im2col_rows(void *ctx, int64_t r0, int64_t r1)
{
    const im2col_job_t *j = ctx;
    const sfp_conv_shape_t *s = j->s;
    const int ns = s->n_spatial, last = ns - 1;
    const int64_t ow_n = s->out[last], in_last = s->in[last], st = s->stride[last];
    const int64_t n_outer = prod_n(s->out, last);
    const bool same = ns == 2 && s->stride[0] == 1 && s->stride[1] == 1 && s->out[0] == s->in[0] &&
                      s->out[1] == s->in[1];
    for (int64_t r = r0; r < r1; r++) {
        int64_t tap = r % j->kk, koff[SFP_MAX_SPATIAL];
        for (int d = last; d >= 0; d--) {
            koff[d] = tap % s->kernel[d];
            tap /= s->kernel[d];
        }
        const float *xc = j->x + (r / j->kk) * j->ihw;
        float *dst = j->col + r * j->ld;
        if (same) {
            im2col_row_same(s, xc, dst, koff);
            continue;
        }
        /* input column iw = ow * st + shift must lie in [0, in_last) */
        const int64_t shift = koff[last] * s->dilation[last] - s->pad_begin[last];
        int64_t lo = shift >= 0 ? 0 : (-shift + st - 1) / st;
        int64_t hi = in_last - 1 - shift < 0 ? 0 : (in_last - 1 - shift) / st + 1;
        if (hi > ow_n) hi = ow_n;
        if (lo > hi) lo = hi;
        int64_t pos[SFP_MAX_SPATIAL] = {0};
        for (int64_t o = 0; o < n_outer; o++) {
            float *restrict row = dst + o * ow_n;
            int64_t off = 0;
            bool inside = true;
            for (int d = 0; d < last; d++) {
                int64_t id = pos[d] * s->stride[d] - s->pad_begin[d] + koff[d] * s->dilation[d];
                if (id < 0 || id >= s->in[d]) inside = false;
                off = off * s->in[d] + id;
            }
            if (!inside) {
                memset(row, 0, sizeof(float) * (size_t)ow_n);
            } else {
                const float *restrict src = xc + off * in_last + shift;
                for (int64_t ow = 0; ow < lo; ow++) row[ow] = 0.0f;
                if (st == 1) {
                    memcpy(row + lo, src + lo, sizeof(float) * (size_t)(hi - lo));
                } else {
                    for (int64_t ow = lo; ow < hi; ow++) row[ow] = src[ow * st];
                }
                for (int64_t ow = hi; ow < ow_n; ow++) row[ow] = 0.0f;
            }
            for (int d = last - 1; d >= 0; d--) {
                if (++pos[d] < s->out[d]) break;
                pos[d] = 0;
            }
        }
    }
}

void conv_im2col(const sfp_conv_shape_t *s, const float *x_image, int64_t c0, int64_t n_channels, float *col,
                 int64_t ld, sfp_threads_t *threads)
{
    im2col_job_t j = {s, NULL, col, ld, prod_n(s->kernel, s->n_spatial), prod_n(s->out, s->n_spatial),
                      prod_n(s->in, s->n_spatial)};
    j.x = x_image + c0 * j.ihw;
    /* a row is about ohw copies; grain keeps tiny layers on one thread */
    int64_t grain = j.ohw >= 4096 ? 1 : 4096 / (j.ohw ? j.ohw : 1);
    sfp_threads_for(threads, n_channels * j.kk, grain, im2col_rows, &j);
}

typedef struct conv_job {
    const sfp_conv_shape_t *s;
    const float *x, *w, *b;
    float *y, *scratch;
    size_t per_worker;          /* floats of scratch per worker */
    sfp_threads_t *inner;       /* threads for im2col when one worker runs */
    bool accumulate;            /* y += conv (the backward's dX), no bias */
} conv_job_t;

/* Images [n0, n1) with the worker's own scratch. */
static void conv_images(void *ctx, int worker, int64_t n0, int64_t n1)
{
    const conv_job_t *j = ctx;
    const sfp_conv_shape_t *s = j->s;
    const int64_t groups = s->group, cg = s->in_channels / groups, mg = s->out_channels / groups;
    const int64_t kk = prod_n(s->kernel, s->n_spatial), ohw = prod_n(s->out, s->n_spatial);
    const int64_t ihw = prod_n(s->in, s->n_spatial), k = cg * kk, nb = conv_images_per_gemm(s);
    const bool pointwise = conv_is_pointwise(s);
    float *col = j->scratch + (size_t)worker * j->per_worker;
    float *tmp = col + (pointwise ? 0 : k * nb * ohw);
    for (int64_t n = n0; n < n1; n += nb) {
        const int64_t cnt = n1 - n < nb ? n1 - n : nb, cols = cnt * ohw;
        for (int64_t g = 0; g < groups; g++) {
            const float *wg = j->w + g * mg * k;
            const float *bg = j->b ? j->b + g * mg : NULL;
            if (cnt == 1) { /* straight into y, bias first */
                const float *x_image = j->x + n * s->in_channels * ihw;
                const float *in = pointwise ? x_image + g * cg * ihw : col;
                float *yg = j->y + (n * s->out_channels + g * mg) * ohw;
                if (!pointwise) conv_im2col(s, x_image, g * cg, cg, col, ohw, j->inner);
                for (int64_t m = 0; bg && m < mg; m++) {
                    float *restrict row = yg + m * ohw;
                    for (int64_t i = 0; i < ohw; i++) row[i] = bg[m];
                }
                sfp_sgemm(false, false, mg, ohw, k, 1.0f, wg, k, in, ohw, bg || j->accumulate ? 1.0f : 0.0f, yg, ohw);
                continue;
            }
            /* cnt images side by side in col, one product, then scattered */
            for (int64_t i = 0; i < cnt; i++)
                conv_im2col(s, j->x + (n + i) * s->in_channels * ihw, g * cg, cg, col + i * ohw, cols, j->inner);
            sfp_sgemm(false, false, mg, cols, k, 1.0f, wg, k, col, cols, 0.0f, tmp, cols);
            for (int64_t i = 0; i < cnt; i++)
                for (int64_t m = 0; m < mg; m++) {
                    const float *restrict src = tmp + m * cols + i * ohw;
                    float *restrict dst = j->y + ((n + i) * s->out_channels + g * mg + m) * ohw;
                    const float bias = bg ? bg[m] : 0.0f;
                    if (j->accumulate) {
                        for (int64_t p = 0; p < ohw; p++) dst[p] += src[p];
                    } else {
                        for (int64_t p = 0; p < ohw; p++) dst[p] = src[p] + bias;
                    }
                }
        }
    }
}

/* The forward's loops; accumulate: y += conv(x, w) (b must be NULL). */
static void conv_run(const sfp_conv_shape_t *s, const float *x, const float *w, const float *b, float *y,
                     bool accumulate, float *scratch, sfp_threads_t *threads)
{
    int n_threads = sfp_threads_count(threads), workers = conv_workers(s, n_threads);
    conv_job_t j = {s, x, w, b, y, scratch, 0, NULL, accumulate};
    if (!conv_worker_floats(s, &j.per_worker)) return; /* prepare refused such shapes */
    if (workers > 1) {
        sfp_blas_set_threads(1);
        sfp_threads_for_chunks(threads, s->batch, 1, conv_images, &j);
    } else {
        sfp_blas_set_threads(n_threads);
        j.inner = threads;
        conv_images(&j, 0, 0, s->batch);
    }
}

typedef struct epilogue_job {
    const sfp_conv_epilogue_t *e;
    int64_t channels, plane;
    float *y;
} epilogue_job_t;

/* Planes [p0, p1) of y (N*M, O): y = act(y * scale + shift + residual),
 * the shift already in y when there is no scale (conv_run's bias). */
static void epilogue_planes(void *ctx, int64_t p0, int64_t p1)
{
    const epilogue_job_t *j = ctx;
    const sfp_conv_epilogue_t *e = j->e;
    for (int64_t p = p0; p < p1; p++) {
        float *restrict row = j->y + p * j->plane;
        const float *restrict res = e->residual ? e->residual + p * j->plane : NULL;
        const int64_t m = p % j->channels;
        if (e->scale) {
            const float sc = e->scale[m], sh = e->shift ? e->shift[m] : 0.0f;
            for (int64_t i = 0; i < j->plane; i++) row[i] = row[i] * sc + sh;
        }
        if (res)
            for (int64_t i = 0; i < j->plane; i++) row[i] += res[i];
        if (e->relu)
            for (int64_t i = 0; i < j->plane; i++) row[i] = row[i] > 0.0f ? row[i] : 0.0f;
    }
}

/* x (N,C,D1..Dk), w (M,C/G,K1..Kk), e -> y (N,M,O1..Ok); scratch:
 * conv_scratch_floats(s, count(threads)) floats */
void conv_forward_fused(const sfp_conv_shape_t *s, const float *x, const float *w, const sfp_conv_epilogue_t *e,
                        float *y, float *scratch, sfp_threads_t *threads)
{
    conv_forward_packed(s, x, w, NULL, e, y, scratch, threads);
}

void conv_forward_packed(const sfp_conv_shape_t *s, const float *x, const float *w, const float *packed,
                         const sfp_conv_epilogue_t *e, float *y, float *scratch, sfp_threads_t *threads)
{
    if (conv_direct_applies(s)) {
        conv_direct_forward(s, x, w, packed, e, y, scratch, threads);
        return;
    }
    conv_run(s, x, w, e->scale ? NULL : e->shift, y, false, scratch, threads);
    if (!e->scale && !e->residual && !e->relu) return;
    epilogue_job_t j = {e, s->out_channels, prod_n(s->out, s->n_spatial), y};
    sfp_threads_for(threads, s->batch * s->out_channels, j.plane >= 4096 ? 1 : 4096 / (j.plane ? j.plane : 1),
                    epilogue_planes, &j);
}

/* x (N,C,D1..Dk), w (M,C/G,K1..Kk), b (M) or NULL -> y (N,M,O1..Ok);
 * scratch: conv_scratch_floats(s, count(threads)) floats */
void conv_forward(const sfp_conv_shape_t *s, const float *x, const float *w, const float *b, float *y,
                  float *scratch, sfp_threads_t *threads)
{
    const sfp_conv_epilogue_t e = {NULL, b, NULL, false};
    conv_forward_fused(s, x, w, &e, y, scratch, threads);
}

/* Direct convolution, one output element at a time, double accumulator. */
void conv_forward_ref(const sfp_conv_shape_t *s, const float *x, const float *w, const float *b, float *y)
{
    const int ns = s->n_spatial;
    const int64_t cg = s->in_channels / s->group, mg = s->out_channels / s->group;
    const int64_t kk = prod_n(s->kernel, ns), ohw = prod_n(s->out, ns), ihw = prod_n(s->in, ns);
    for (int64_t n = 0; n < s->batch; n++)
        for (int64_t m = 0; m < s->out_channels; m++) {
            int64_t g = m / mg;
            for (int64_t o = 0; o < ohw; o++) {
                int64_t opos[SFP_MAX_SPATIAL];
                for (int64_t d = ns - 1, t = o; d >= 0; d--) {
                    opos[d] = t % s->out[d];
                    t /= s->out[d];
                }
                double acc = b ? (double)b[m] : 0.0;
                for (int64_t ci = 0; ci < cg; ci++)
                    for (int64_t tap = 0; tap < kk; tap++) {
                        int64_t off = 0;
                        bool inside = true;
                        for (int64_t d = ns - 1, t = tap, stride = 1; d >= 0; d--) {
                            int64_t kd = t % s->kernel[d];
                            t /= s->kernel[d];
                            int64_t id = opos[d] * s->stride[d] - s->pad_begin[d] + kd * s->dilation[d];
                            if (id < 0 || id >= s->in[d]) inside = false;
                            off += id * stride;
                            stride *= s->in[d];
                        }
                        if (!inside) continue;
                        double xv = (double)x[(n * s->in_channels + g * cg + ci) * ihw + off];
                        acc += xv * (double)w[(m * cg + ci) * kk + tap];
                    }
                y[(n * s->out_channels + m) * ohw + o] = (float)acc;
            }
        }
}

/* ---- backward ---- */

/* Partial sums of dw and db: the batch's image chunks (conv_images_per_gemm
 * images each) are cut into at most this many contiguous ranges whatever the
 * thread count, each summed into its own buffer, then added in order; so dw
 * does not depend on the thread count. */
#define CONV_BWD_PARTIALS 8

static int64_t conv_bwd_chunks(const sfp_conv_shape_t *s)
{
    int64_t nb = conv_images_per_gemm(s);
    return (s->batch + nb - 1) / nb;
}

static int64_t conv_bwd_partials(const sfp_conv_shape_t *s)
{
    int64_t chunks = conv_bwd_chunks(s);
    if (chunks < 1) return 1;
    return chunks < CONV_BWD_PARTIALS ? chunks : CONV_BWD_PARTIALS;
}

/* Workers taking whole partials (sgemm single-threaded inside), or one
 * worker with multi-threaded sgemm and col2im. */
static int conv_bwd_workers(const sfp_conv_shape_t *s, int n_threads)
{
    int64_t partials = conv_bwd_partials(s);
    if (n_threads < 2 || partials < 2) return 1;
    return partials < n_threads ? (int)partials : n_threads;
}

/* Per worker: col (C/g * prod(K), nb * prod(O)), reused for dcol, plus dY of
 * the group gathered as (M/g, nb * prod(O)) when several images share one
 * sgemm. Pointwise convolutions need neither. */
static bool conv_bwd_worker_floats(const sfp_conv_shape_t *s, size_t *out)
{
    return conv_worker_floats(s, out); /* the same two matrices as the forward */
}

/* Per partial: dw (M, C/g * prod(K)) and db (M). */
static bool conv_bwd_partial_floats(const sfp_conv_shape_t *s, size_t *out)
{
    size_t dw = 0;
    if (!sfp_mul_size((size_t)s->out_channels, (size_t)(s->in_channels / s->group), &dw) ||
        !sfp_mul_size(dw, (size_t)prod_n(s->kernel, s->n_spatial), &dw) || dw > SIZE_MAX - (size_t)s->out_channels)
        return false;
    *out = dw + (size_t)s->out_channels;
    return true;
}

/* With stride 1, dX is itself a convolution: of dY (as input, M channels)
 * with the kernel flipped in every spatial dim and its two channel axes
 * swapped, pads (K-1)*dilation - pad on each side, giving C channels of the
 * input's size. That runs the forward's im2col + sgemm instead of the
 * scatter-adds of col2im. False (col2im then) for strides, pads wider than
 * the kernel span, and pointwise convolutions (one sgemm already). */
static bool conv_dx_as_conv(const sfp_conv_shape_t *s, sfp_conv_shape_t *t)
{
    if (conv_is_pointwise(s)) return false;
    memset(t, 0, sizeof *t);
    t->batch = s->batch;
    t->in_channels = s->out_channels;
    t->out_channels = s->in_channels;
    t->group = s->group;
    t->n_spatial = s->n_spatial;
    for (int d = 0; d < s->n_spatial; d++) {
        const int64_t span = (s->kernel[d] - 1) * s->dilation[d];
        const int64_t pad_end = s->out[d] - 1 + span + 1 - s->in[d] - s->pad_begin[d];
        if (s->stride[d] != 1 || s->pad_begin[d] > span || pad_end > span || pad_end < 0) return false;
        t->in[d] = s->out[d];
        t->out[d] = s->in[d];
        t->kernel[d] = s->kernel[d];
        t->stride[d] = 1;
        t->dilation[d] = s->dilation[d];
        t->pad_begin[d] = span - s->pad_begin[d];
    }
    return true;
}

/* The flipped, channel-swapped kernel: (C, M/g, K) from (M, C/g, K). */
static void conv_flip_kernel(const sfp_conv_shape_t *s, const float *w, float *wt)
{
    const int64_t cg = s->in_channels / s->group, mg = s->out_channels / s->group;
    const int64_t kk = prod_n(s->kernel, s->n_spatial);
    for (int64_t g = 0; g < s->group; g++)
        for (int64_t c = 0; c < cg; c++)
            for (int64_t m = 0; m < mg; m++) {
                const float *src = w + ((g * mg + m) * cg + c) * kk;
                float *dst = wt + ((g * cg + c) * mg + m) * kk;
                for (int64_t t = 0; t < kk; t++) dst[t] = src[kk - 1 - t];
            }
}

/* dW by the direct kernel: its shapes but 1x1 kernels, whose im2col is at
 * most a strided copy (measured 1 thread, 16 -> 32 channels 32x32 stride 2,
 * batch 128: 4.2 ms im2col + sgemm, 6.4 ms direct). */
static bool conv_dw_direct(const sfp_conv_shape_t *s)
{
    return prod_n(s->kernel, s->n_spatial) > 1 && conv_direct_applies(s);
}

/* Pass 1 (dW, db, and dX by col2im when not a convolution) and pass 2 (dX
 * as a convolution) run one after the other and share the scratch. */
bool conv_backward_scratch_floats(const sfp_conv_shape_t *s, int n_threads, size_t *out)
{
    size_t per = 0, workers = 0, part = 0, parts = 0, pass2 = 0, wt = 0;
    sfp_conv_shape_t t;
    if (!conv_bwd_worker_floats(s, &per) || !conv_bwd_partial_floats(s, &part)) return false;
    if (!sfp_mul_size(per, (size_t)conv_bwd_workers(s, n_threads), &workers) ||
        !sfp_mul_size(part, (size_t)conv_bwd_partials(s), &parts) || workers > SIZE_MAX - parts)
        return false;
    size_t dw_direct = 0;
    if (conv_dw_direct(s) && !conv_direct_dw_scratch_floats(s, n_threads, &dw_direct)) return false;
    if (conv_dx_as_conv(s, &t)) {
        wt = part - (size_t)s->out_channels; /* the size of w */
        size_t direct = 0;
        if (!conv_im2col_scratch_floats(&t, n_threads, &pass2) ||
            (conv_direct_applies(&t) && !conv_direct_scratch_floats(&t, n_threads, &direct)))
            return false;
        if (direct > pass2) pass2 = direct;
        if (pass2 > SIZE_MAX - wt) return false;
        pass2 += wt;
    }
    *out = workers + parts > pass2 ? workers + parts : pass2;
    if (dw_direct > *out) *out = dw_direct;
    return true;
}

typedef struct col2im_job {
    const sfp_conv_shape_t *s;
    const float *col;
    float *dx;          /* first channel of the range */
    int64_t ld, kk, ihw;
} col2im_job_t;

/* Channels [c0, c1): every kernel tap's row is added back at the input
 * positions im2col_rows read it from (same runs, same valid ranges). */
static void col2im_channels(void *ctx, int64_t c0, int64_t c1)
{
    const col2im_job_t *j = ctx;
    const sfp_conv_shape_t *s = j->s;
    const int ns = s->n_spatial, last = ns - 1;
    const int64_t ow_n = s->out[last], in_last = s->in[last], st = s->stride[last];
    const int64_t n_outer = prod_n(s->out, last);
    for (int64_t c = c0; c < c1; c++) {
        float *dxc = j->dx + c * j->ihw;
        for (int64_t tap_index = 0; tap_index < j->kk; tap_index++) {
            int64_t tap = tap_index, koff[SFP_MAX_SPATIAL];
            for (int d = last; d >= 0; d--) {
                koff[d] = tap % s->kernel[d];
                tap /= s->kernel[d];
            }
            const float *src_row = j->col + (c * j->kk + tap_index) * j->ld;
            const int64_t shift = koff[last] * s->dilation[last] - s->pad_begin[last];
            int64_t lo = shift >= 0 ? 0 : (-shift + st - 1) / st;
            int64_t hi = in_last - 1 - shift < 0 ? 0 : (in_last - 1 - shift) / st + 1;
            if (hi > ow_n) hi = ow_n;
            if (lo >= hi) continue;
            int64_t pos[SFP_MAX_SPATIAL] = {0};
            for (int64_t o = 0; o < n_outer; o++) {
                int64_t off = 0;
                bool inside = true;
                for (int d = 0; d < last; d++) {
                    int64_t id = pos[d] * s->stride[d] - s->pad_begin[d] + koff[d] * s->dilation[d];
                    if (id < 0 || id >= s->in[d]) inside = false;
                    off = off * s->in[d] + id;
                }
                if (inside) {
                    float *restrict dst = dxc + off * in_last + shift;
                    const float *restrict src = src_row + o * ow_n;
                    if (st == 1) {
                        for (int64_t ow = lo; ow < hi; ow++) dst[ow] += src[ow];
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++) dst[ow * st] += src[ow];
                    }
                }
                for (int d = last - 1; d >= 0; d--) {
                    if (++pos[d] < s->out[d]) break;
                    pos[d] = 0;
                }
            }
        }
    }
}

void conv_col2im(const sfp_conv_shape_t *s, const float *col, int64_t c0, int64_t n_channels, int64_t ld,
                 float *dx_image, sfp_threads_t *threads)
{
    col2im_job_t j = {s, col, NULL, ld, prod_n(s->kernel, s->n_spatial), prod_n(s->in, s->n_spatial)};
    j.dx = dx_image + c0 * j.ihw;
    int64_t per_channel = j.kk * prod_n(s->out, s->n_spatial);
    sfp_threads_for(threads, n_channels, per_channel >= 4096 ? 1 : 4096 / (per_channel ? per_channel : 1),
                    col2im_channels, &j);
}

typedef struct conv_bwd_job {
    const sfp_conv_shape_t *s;
    const float *x, *w, *dy;
    float *dx;
    float *partials;            /* conv_bwd_partials x (dw, db), zeroed by each partial */
    bool want_dw, want_db;
    float *scratch;
    size_t per_worker, per_partial;
    sfp_threads_t *inner;       /* threads for im2col/col2im when one worker runs */
} conv_bwd_job_t;

/* Images [n, n + cnt) into the partial sums dw_part (M, K) and db_part (M),
 * and their dx. */
static void conv_bwd_images(const conv_bwd_job_t *j, int worker, int64_t n, int64_t cnt, float *dw_part,
                            float *db_part)
{
    const sfp_conv_shape_t *s = j->s;
    const int64_t groups = s->group, cg = s->in_channels / groups, mg = s->out_channels / groups;
    const int64_t kk = prod_n(s->kernel, s->n_spatial), ohw = prod_n(s->out, s->n_spatial);
    const int64_t ihw = prod_n(s->in, s->n_spatial), k = cg * kk, cols = cnt * ohw;
    const bool pointwise = conv_is_pointwise(s);
    float *col = j->scratch + (size_t)worker * j->per_worker;
    float *dy_gathered = col + (pointwise ? 0 : k * conv_images_per_gemm(s) * ohw);
    for (int64_t g = 0; g < groups; g++) {
        /* dY of the group as one (mg, cols) matrix */
        const float *dyg = j->dy + (n * s->out_channels + g * mg) * ohw;
        int64_t ld_dy = ohw;
        if (cnt > 1) {
            for (int64_t i = 0; i < cnt; i++)
                for (int64_t m = 0; m < mg; m++)
                    memcpy(dy_gathered + m * cols + i * ohw, j->dy + ((n + i) * s->out_channels + g * mg + m) * ohw,
                           sizeof(float) * (size_t)ohw);
            dyg = dy_gathered;
            ld_dy = cols;
        }
        if (j->want_db)
            for (int64_t m = 0; m < mg; m++) {
                const float *restrict row = dyg + m * ld_dy;
                double sum = 0.0;
                for (int64_t i = 0; i < cols; i++) sum += (double)row[i];
                db_part[g * mg + m] += (float)sum;
            }
        /* the input patches: x itself for pointwise convolutions */
        const float *colg = col;
        int64_t ld_col = cols;
        if (pointwise) {
            colg = j->x + (n * s->in_channels + g * cg) * ihw;
            ld_col = ihw;
        } else if (j->want_dw) {
            for (int64_t i = 0; i < cnt; i++)
                conv_im2col(s, j->x + (n + i) * s->in_channels * ihw, g * cg, cg, col + i * ohw, cols, j->inner);
        }
        /* dW_g (mg, k) += dY_g (mg, cols) col^T (cols, k), on one BLAS thread
         * even when one worker runs: OpenBLAS's threaded split changes the
         * last bits, and dW must not depend on the thread count */
        if (j->want_dw) {
            if (j->inner) sfp_blas_set_threads(1);
            sfp_sgemm(false, true, mg, k, cols, 1.0f, dyg, ld_dy, colg, ld_col, 1.0f, dw_part + g * mg * k, k);
            if (j->inner) sfp_blas_set_threads(sfp_threads_count(j->inner));
        }
        if (!j->dx) continue;
        const float *wg = j->w + g * mg * k;
        if (pointwise) { /* dX_g (cg, ohw) += W_g^T (cg, mg) dY_g (mg, ohw) */
            sfp_sgemm(true, false, cg, ohw, mg, 1.0f, wg, k, dyg, ld_dy, 1.0f,
                      j->dx + (n * s->in_channels + g * cg) * ihw, ihw);
            continue;
        }
        /* dcol (k, cols) = W_g^T (k, mg) dY_g (mg, cols), then back to the images */
        sfp_sgemm(true, false, k, cols, mg, 1.0f, wg, k, dyg, ld_dy, 0.0f, col, cols);
        for (int64_t i = 0; i < cnt; i++)
            conv_col2im(s, col + i * ohw, g * cg, cg, cols, j->dx + (n + i) * s->in_channels * ihw, j->inner);
    }
}

/* Partials [p0, p1): each covers a fixed range of image chunks. */
static void conv_bwd_partials_run(void *ctx, int worker, int64_t p0, int64_t p1)
{
    const conv_bwd_job_t *j = ctx;
    const sfp_conv_shape_t *s = j->s;
    const int64_t nb = conv_images_per_gemm(s), chunks = conv_bwd_chunks(s), n_part = conv_bwd_partials(s);
    const size_t dw_floats = j->per_partial - (size_t)s->out_channels;
    for (int64_t p = p0; p < p1; p++) {
        float *dw_part = j->partials + (size_t)p * j->per_partial, *db_part = dw_part + dw_floats;
        memset(dw_part, 0, sizeof(float) * j->per_partial);
        int64_t c0 = chunks / n_part * p + chunks % n_part * p / n_part;
        int64_t c1 = chunks / n_part * (p + 1) + chunks % n_part * (p + 1) / n_part;
        for (int64_t c = c0; c < c1; c++) {
            int64_t n = c * nb, cnt = s->batch - n < nb ? s->batch - n : nb;
            conv_bwd_images(j, worker, n, cnt, dw_part, db_part);
        }
    }
}

/* x (N,C,D1..Dk), w (M,C/G,K1..Kk), dy (N,M,O1..Ok) -> dx +=, dw +=, db +=;
 * scratch: conv_backward_scratch_floats(s, count(threads)) floats. Pass 1:
 * dw, db (and dx by col2im); pass 2, stride 1: dx as a convolution. */
void conv_backward(const sfp_conv_shape_t *s, const float *x, const float *w, const float *dy, float *dx, float *dw,
                   float *db, bool dx_fresh, float *scratch, sfp_threads_t *threads)
{
    if (s->batch <= 0 || (!dx && !dw && !db)) return;
    sfp_conv_shape_t t;
    const bool dx_as_conv = dx && conv_dx_as_conv(s, &t);
    if (dx && dx_fresh && !(dx_as_conv && conv_direct_applies(&t))) { /* only the direct kernel writes dx whole */
        memset(dx, 0, sizeof(float) * (size_t)(s->batch * s->in_channels * prod_n(s->in, s->n_spatial)));
        dx_fresh = false;
    }
    int n_threads = sfp_threads_count(threads), workers = conv_bwd_workers(s, n_threads);
    conv_bwd_job_t j = {s, x, w, dy, dx_as_conv ? NULL : dx, NULL, dw != NULL, db != NULL, scratch, 0, 0, NULL};
    if (!conv_bwd_worker_floats(s, &j.per_worker) || !conv_bwd_partial_floats(s, &j.per_partial))
        return; /* prepare_backward refused such shapes */
    if ((dw || db) && conv_dw_direct(s)) { /* dW, db first; then dX alone, in the same scratch */
        conv_direct_backward_dw(s, x, dy, dw, db, scratch, threads);
        if (dx) conv_backward(s, x, w, dy, dx, NULL, NULL, dx_fresh, scratch, threads);
        return;
    }
    if (dx_as_conv) { /* pass 2 after pass 1, in the same scratch */
        if (dw || db) conv_backward(s, x, w, dy, NULL, dw, db, false, scratch, threads);
        float *wt = scratch, *rest = scratch + (j.per_partial - (size_t)s->out_channels);
        conv_flip_kernel(s, w, wt);
        if (conv_direct_applies(&t)) { /* dx += conv(dy, wt): dx is the residual of its own epilogue */
            const sfp_conv_epilogue_t e = {NULL, NULL, dx_fresh ? NULL : dx, false};
            conv_direct_forward(&t, dy, wt, NULL, &e, dx, rest, threads);
        } else {
            conv_run(&t, dy, wt, NULL, dx, true, rest, threads);
        }
        return;
    }
    const int64_t n_part = conv_bwd_partials(s);
    j.partials = scratch + j.per_worker * (size_t)workers;
    if (workers > 1) {
        sfp_blas_set_threads(1);
        sfp_threads_for_chunks(threads, n_part, 1, conv_bwd_partials_run, &j);
    } else {
        sfp_blas_set_threads(n_threads);
        j.inner = threads;
        conv_bwd_partials_run(&j, 0, 0, n_part);
    }
    const size_t dw_floats = j.per_partial - (size_t)s->out_channels;
    for (int64_t p = 0; p < n_part; p++) {
        const float *restrict part = j.partials + (size_t)p * j.per_partial;
        if (dw)
            for (size_t i = 0; i < dw_floats; i++) dw[i] += part[i];
        if (db)
            for (int64_t m = 0; m < s->out_channels; m++) db[m] += part[dw_floats + (size_t)m];
    }
}

/* The forward's definition differentiated tap by tap: double sums for dw and
 * db, dx accumulated term by term. */
void conv_backward_ref(const sfp_conv_shape_t *s, const float *x, const float *w, const float *dy, float *dx,
                       float *dw, float *db)
{
    const int ns = s->n_spatial;
    const int64_t cg = s->in_channels / s->group, mg = s->out_channels / s->group;
    const int64_t kk = prod_n(s->kernel, ns), ohw = prod_n(s->out, ns), ihw = prod_n(s->in, ns);
    for (int64_t m = 0; m < s->out_channels; m++) {
        const int64_t g = m / mg;
        double bias_sum = 0.0;
        for (int64_t ci = 0; ci < cg; ci++)
            for (int64_t tap = 0; tap < kk; tap++) {
                double w_sum = 0.0;
                for (int64_t n = 0; n < s->batch; n++)
                    for (int64_t o = 0; o < ohw; o++) {
                        int64_t off = 0;
                        bool inside = true;
                        for (int64_t d = ns - 1, t = tap, q = o, stride = 1; d >= 0; d--) {
                            int64_t kd = t % s->kernel[d], od = q % s->out[d];
                            t /= s->kernel[d];
                            q /= s->out[d];
                            int64_t id = od * s->stride[d] - s->pad_begin[d] + kd * s->dilation[d];
                            if (id < 0 || id >= s->in[d]) inside = false;
                            off += id * stride;
                            stride *= s->in[d];
                        }
                        if (!inside) continue;
                        const float g_out = dy[(n * s->out_channels + m) * ohw + o];
                        const int64_t xi = (n * s->in_channels + g * cg + ci) * ihw + off;
                        w_sum += (double)x[xi] * (double)g_out;
                        if (dx) dx[xi] += w[(m * cg + ci) * kk + tap] * g_out;
                    }
                if (dw) dw[(m * cg + ci) * kk + tap] += (float)w_sum;
            }
        for (int64_t n = 0; n < s->batch; n++)
            for (int64_t o = 0; o < ohw; o++) bias_sum += (double)dy[(n * s->out_channels + m) * ohw + o];
        if (db) db[m] += (float)bias_sum;
    }
}

/* ---- the node: shape, scratch, forward and backward ---- */
static int conv_shape_of(const sfp_exec_t *x, sfp_conv_shape_t *s, sfp_error_t *err)
{
    const sfp_shape_t *xs = x->in_shape[0], *ws = x->in_shape[1];
    sfp_op_ctx_t c = exec_ctx(x);
    sfp_window_t win;
    int rc = op_window(&c, xs->dims + 2, xs->ndim - 2, ws->dims + 2, false, &win, err);
    if (rc < 0) return rc;
    memset(s, 0, sizeof *s);
    s->batch = xs->dims[0];
    s->in_channels = xs->dims[1];
    s->out_channels = ws->dims[0];
    s->group = node_attr_int(x->node, "group", 1);
    s->n_spatial = win.n_spatial;
    for (int d = 0; d < win.n_spatial; d++) {
        s->in[d] = win.in[d];
        s->out[d] = win.out[d];
        s->kernel[d] = win.kernel[d];
        s->stride[d] = win.stride[d];
        s->dilation[d] = win.dilation[d];
        s->pad_begin[d] = win.pad_begin[d];
    }
    return 0;
}

/* Scratch floats before the kernel's: a fused BatchNormalization's scale and
 * shift per output channel (64-byte multiples, so the kernel's stays aligned). */
static int64_t conv_fold_floats(const sfp_conv_shape_t *s) { return 2 * ((s->out_channels + 15) / 16 * 16); }

static int conv_prepare(const sfp_exec_t *x, size_t *scratch_bytes, sfp_error_t *err)
{
    int rc;
    sfp_conv_shape_t s;
    for (int i = 0; i < 3; i++)
        if ((rc = exec_need_dtype(x, i, SFP_DT_FLOAT, err)) < 0) return rc;
    if ((rc = conv_shape_of(x, &s, err)) < 0) return rc;
    int64_t cg = s.in_channels / s.group, mg = s.out_channels / s.group;
    int64_t k = cg * prod_n(s.kernel, s.n_spatial), ohw = prod_n(s.out, s.n_spatial);
    size_t floats = 0;
    int64_t cols = ohw * (s.batch > 0 ? s.batch : 1); /* at most this many columns per sgemm */
    if (!sfp_sgemm_fits(mg, cols, k, k, cols, cols) ||
        !conv_scratch_floats(&s, sfp_threads_count(x->threads), &floats) ||
        floats > SIZE_MAX / sizeof(float) - (size_t)conv_fold_floats(&s) ||
        !sfp_mul_size(floats + (size_t)conv_fold_floats(&s), sizeof(float), scratch_bytes))
        return exec_errorf(x, err, SFP_EUNSUPPORTED, "the convolution is too large for the BLAS interface");
    return 0;
}

#define CONV_PERSIST_HEADER 64

static int conv_forward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    sfp_conv_shape_t s;
    int rc = conv_shape_of(x, &s, err);
    if (rc < 0) return rc;
    const float *bias = x->node->n_inputs > 2 ? x->in[2] : NULL;
    const sfp_fusion_t *f = x->fused;
    sfp_conv_epilogue_t e = {NULL, bias, NULL, false};
    float *scratch = x->scratch;
    if (f) { /* a fused BatchNormalization becomes a scale and shift per channel */
        if (f->bn) {
            float *a = scratch, *b = scratch + conv_fold_floats(&s) / 2;
            batchnorm_fold(s.out_channels, f->bn_param[0], f->bn_param[1], f->bn_param[2], f->bn_param[3],
                           node_attr_float(f->bn, "epsilon", 1e-5f), bias, a, b);
            e.scale = a;
            e.shift = b;
        }
        e.residual = f->residual;
        e.relu = f->relu;
    }
    const float *packed = NULL;
    if (x->persist) { /* the direct kernel's weights, packed at the plan's first run (conv_persist_bytes) */
        uint64_t *packed_once = x->persist;
        float *buf = (float *)((uint8_t *)x->persist + CONV_PERSIST_HEADER);
        if (!*packed_once) {
            conv_direct_pack(&s, x->in[1], buf);
            *packed_once = 1;
        }
        packed = buf;
    }
    conv_forward_packed(&s, x->in[0], x->in[1], packed, &e, x->out[0], scratch + conv_fold_floats(&s), x->threads);
    return 0;
}

/* Plans whose weights do not change: the weights in the direct kernel's
 * layout after a 64-byte header (non-zero once packed). */
static size_t conv_persist_bytes(const sfp_exec_t *x)
{
    sfp_conv_shape_t s;
    if (conv_shape_of(x, &s, NULL) < 0) return 0;
    const size_t bytes = conv_direct_packed_bytes(&s); /* 0 where the direct kernel does not apply */
    return bytes ? bytes + CONV_PERSIST_HEADER : 0;
}

static int conv_prepare_backward(const sfp_exec_t *x, size_t *saved_bytes, size_t *scratch_bytes, sfp_error_t *err)
{
    sfp_conv_shape_t s;
    int rc = conv_shape_of(x, &s, err);
    if (rc < 0) return rc;
    *saved_bytes = 0;
    int64_t cg = s.in_channels / s.group, mg = s.out_channels / s.group;
    int64_t k = cg * prod_n(s.kernel, s.n_spatial), cols = prod_n(s.out, s.n_spatial) * (s.batch > 0 ? s.batch : 1);
    size_t floats = 0;
    sfp_conv_shape_t t;
    bool fits = sfp_sgemm_fits(k, cols, mg, k, cols, cols) && sfp_sgemm_fits(mg, k, cols, cols, cols, k);
    if (fits && conv_dx_as_conv(&s, &t)) { /* dX as a convolution: (C/g, in positions) from (M/g * K) */
        int64_t kt = mg * prod_n(t.kernel, t.n_spatial), cols_t = prod_n(t.out, t.n_spatial) * (s.batch > 0 ? s.batch : 1);
        fits = sfp_sgemm_fits(cg, cols_t, kt, kt, cols_t, cols_t);
    }
    if (!fits || !conv_backward_scratch_floats(&s, sfp_threads_count(x->threads), &floats) ||
        !sfp_mul_size(floats, sizeof(float), scratch_bytes))
        return exec_errorf(x, err, SFP_EUNSUPPORTED, "the convolution's gradient is too large for the BLAS interface");
    return 0;
}

static int conv_backward_node(const sfp_exec_t *x, sfp_error_t *err)
{
    sfp_conv_shape_t s;
    int rc = conv_shape_of(x, &s, err);
    if (rc < 0) return rc;
    exec_fused_backward(x); /* a fused Add and Relu: dout[0] becomes the conv output's gradient */
    conv_backward(&s, x->in[0], x->in[1], x->dout[0], x->din[0], x->din[1], x->node->n_inputs > 2 ? x->din[2] : NULL,
                  (x->din_fresh & 1u) != 0, x->scratch, x->threads);
    return 0;
}

const sfp_op_def_t op_defs_conv[] = {
    {"Conv", 2, 3, 1, 1, conv_attrs, NULL, conv_infer, conv_work, SFP_WORK_DENSE, 0x6,
     {.forward = conv_forward_node, .prepare = conv_prepare, .backward = conv_backward_node,
      .prepare_backward = conv_prepare_backward, .keep_inputs = 0x3, .overwrite_din = 0x1, .fuse = true,
      .fuse_train = true, .persist_bytes = conv_persist_bytes},
     .id = SFP_OP_CONV, .chan = SFP_CHAN_CONV, .shrink = SFP_SHRINK_FILTERS, .flags = SFP_OPF_FILTERS, .weight_axis = conv_weight_axis, .work_kept = conv_work_kept},
    {0},
};
