/* The training step around the gradients: the cross-entropy loss, the SGD
 * update (PyTorch's rule, weight decay by parameter kind, momentum and
 * Nesterov), learning-rate schedules, a few steps that fit a small batch,
 * and - when SFP_TRAIN_STEP_DIR names a folder prepared by
 * `tools/torch_step.py --prepare` (tests/e2e_train_step.sh does) - the SGD
 * steps of the PyTorch comparison on real ResNet exports: this driver writes
 * our losses, ReLU branches and updated initializers there, PyTorch then
 * runs the same steps and tests/check_train_step.py compares. With the
 * variable set only that test runs. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700

#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <sys/stat.h>

#include "ops/ops.h"
#include "train/plan.h"
#include "train/train.h"



/* ---- loss ---- */
/* Written out for one row: -sum_j t_j log(softmax_j), t = (1-s) onehot + s/k. */
static double xent_row(const float *z, int64_t k, int label, double s)
{
    double sum = 0.0, loss = 0.0;
    for (int64_t j = 0; j < k; j++) sum += exp((double)z[j]);
    for (int64_t j = 0; j < k; j++) {
        double t = (j == label ? 1.0 - s : 0.0) + s / (double)k;
        loss -= t * log(exp((double)z[j]) / sum);
    }
    return loss;
}

static void test_cross_entropy_matches_definition(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const float logits[12] = {1.0f, 2.0f, 0.5f, -1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 3.0f, -2.0f, 3.0f, 1.0f};
    const int32_t labels[3] = {1, 2, 0};
    const float smoothing[2] = {0.0f, 0.1f};
    for (int si = 0; si < 2; si++) {
        double loss = 0.0;
        int64_t correct = -1;
        float dlogits[12];
        TU_OK(&err, loss_softmax_xent(3, 4, logits, labels, smoothing[si], &loss, dlogits, &correct, &err));
        double want = 0.0;
        for (int r = 0; r < 3; r++) want += xent_row(logits + r * 4, 4, labels[r], (double)smoothing[si]) / 3.0;
        TU_EXPECT_NEAR(loss, want, 1e-12);
        /* row 0: argmax 1 = label; row 1: tie at 0 (first) != 2; row 2: tie at 0 (first) = label */
        assert_int_equal(correct, 2);
        /* dlogits against central differences of the loss (double, so tight) */
        for (int i = 0; i < 12; i++) {
            float z[12];
            memcpy(z, logits, sizeof z);
            double up = 0.0, down = 0.0;
            z[i] = logits[i] + 1e-3f;
            TU_OK(&err, loss_softmax_xent(3, 4, z, labels, smoothing[si], &up, NULL, NULL, &err));
            z[i] = logits[i] - 1e-3f;
            TU_OK(&err, loss_softmax_xent(3, 4, z, labels, smoothing[si], &down, NULL, NULL, &err));
            double h = (double)(logits[i] + 1e-3f) - (double)(logits[i] - 1e-3f);
            TU_EXPECT_NEAR(dlogits[i], (up - down) / h, 1e-6);
        }
        /* each row of the gradient sums to zero */
        for (int r = 0; r < 3; r++) TU_EXPECT_NEAR(dlogits[r * 4] + dlogits[r * 4 + 1] + dlogits[r * 4 + 2] + dlogits[r * 4 + 3], 0.0, 1e-7);
    }
    /* large logits: no overflow (the row max is taken out) */
    const float big[2] = {1000.0f, 0.0f};
    const int32_t zero[1] = {0};
    double loss = -1.0;
    TU_OK(&err, loss_softmax_xent(1, 2, big, zero, 0.0f, &loss, NULL, NULL, &err));
    TU_EXPECT_NEAR(loss, 0.0, 1e-12);
}

/* The distillation loss: its gradient against central differences (the
 * loss sums in double: 1e-6 holds), A = 0 is the cross-entropy, a student
 * equal to its teacher at A = 1 has loss and gradient 0, and out-of-range
 * A or T are usage errors. */
static void test_distill_gradient_matches_finite_differences(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const float logits[12] = {1.0f, 2.0f, 0.5f, -1.0f, 0.0f, 0.3f, 0.0f, 0.0f, 3.0f, -2.0f, 3.0f, 1.0f};
    const float teacher[12] = {0.5f, 2.5f, 0.0f, -2.0f, 1.0f, -0.5f, 0.2f, 0.0f, 4.0f, -1.0f, 1.0f, 0.5f};
    const int32_t labels[3] = {1, 2, 0};
    const sfp_distill_t cases[3] = {{0.5, 4.0}, {0.9, 1.0}, {1.0, 0.7}};
    for (int c = 0; c < 3; c++) {
        double loss = 0.0;
        float dlogits[12];
        TU_OK(&err, loss_distill(3, 4, logits, teacher, labels, &cases[c], 0.0f, &loss, dlogits, NULL, &err));
        for (int i = 0; i < 12; i++) {
            float z[12];
            memcpy(z, logits, sizeof z);
            double up = 0.0, down = 0.0;
            z[i] = logits[i] + 1e-3f;
            TU_OK(&err, loss_distill(3, 4, z, teacher, labels, &cases[c], 0.0f, &up, NULL, NULL, &err));
            z[i] = logits[i] - 1e-3f;
            TU_OK(&err, loss_distill(3, 4, z, teacher, labels, &cases[c], 0.0f, &down, NULL, NULL, &err));
            double h = (double)(logits[i] + 1e-3f) - (double)(logits[i] - 1e-3f);
            TU_EXPECT_NEAR(dlogits[i], (up - down) / h, 1e-6);
        }
    }
    double ce = 0.0, kd = 0.0;
    float g_ce[12], g_kd[12];
    const sfp_distill_t none = {0.0, 3.0}, only = {1.0, 3.0};
    TU_OK(&err, loss_softmax_xent(3, 4, logits, labels, 0.0f, &ce, g_ce, NULL, &err));
    TU_OK(&err, loss_distill(3, 4, logits, teacher, labels, &none, 0.0f, &kd, g_kd, NULL, &err));
    TU_EXPECT_NEAR(kd, ce, 1e-12);
    for (int i = 0; i < 12; i++) TU_EXPECT_NEAR(g_kd[i], g_ce[i], 1e-7);
    TU_OK(&err, loss_distill(3, 4, logits, logits, labels, &only, 0.0f, &kd, g_kd, NULL, &err));
    TU_EXPECT_NEAR(kd, 0.0, 1e-12);
    for (int i = 0; i < 12; i++) TU_EXPECT_NEAR(g_kd[i], 0.0, 1e-7);
    const sfp_distill_t bad_a = {1.5, 4.0}, bad_t = {0.5, 0.0};
    TU_EXPECT_ERR(loss_distill(3, 4, logits, teacher, labels, &bad_a, 0.0f, &kd, NULL, NULL, &err), &err, SFP_EUSAGE,
                  "--distill-weight");
    TU_EXPECT_ERR(loss_distill(3, 4, logits, teacher, labels, &bad_t, 0.0f, &kd, NULL, NULL, &err), &err, SFP_EUSAGE,
                  "--temperature");
}

static void test_cross_entropy_refuses_bad_labels_and_diverged_logits(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const float logits[4] = {0, 1, 2, 3};
    const int32_t bad[2] = {1, 2};
    double loss = 0.0;
    int rc = loss_softmax_xent(2, 2, logits, bad, 0.0f, &loss, NULL, NULL, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EBADDATA, "label 2 of row 1", "[0, 2)");
    const float nan_logits[2] = {NAN, 0.0f};
    const int32_t ok[1] = {0};
    rc = loss_softmax_xent(1, 2, nan_logits, ok, 0.0f, &loss, NULL, NULL, &err);
    TU_EXPECT_ERR(rc, &err, SFP_ERUNTIME, "not finite");
    rc = loss_softmax_xent(1, 2, logits, ok, 1.5f, &loss, NULL, NULL, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "label smoothing");
}

/* ---- SGD ---- */
/* x -> Conv(w, b) -> BN(g, beta): one parameter of each kind. */
static sfp_model_t *tiny_model(void)
{
    sfp_model_t *m = tu_model(13);
    const int64_t x[4] = {2, 2, 3, 3}, w[4] = {3, 2, 1, 1}, c3[1] = {3};
    tu_input(m, "x", SFP_DT_FLOAT, 4, x);
    tu_init_f32(m, "w", 4, w, NULL, 1);
    tu_init_f32(m, "b", 1, c3, NULL, 2);
    tu_init_f32(m, "g", 1, c3, NULL, 3);
    tu_init_f32(m, "beta", 1, c3, NULL, 4);
    tu_init_f32(m, "mean", 1, c3, NULL, 5);
    const float var[3] = {1, 2, 3};
    tu_init_f32(m, "var", 1, c3, var, 0);
    tu_node(m, "Conv", "conv", "x,w,b", "c");
    tu_node(m, "BatchNormalization", "bn", "c,g,beta,mean,var", "y");
    tu_output(m, "y");
    sfp_error_t err = {0};
    TU_OK(&err, model_validate(m, &err));
    return m;
}

/* Three steps with made-up gradients against the update written out in
 * double: g = grad + wd w; buf = momentum buf + g (first: buf = g);
 * g = nesterov ? g + momentum buf : buf; w -= lr g. */
static void test_sgd_follows_the_pytorch_update_rule(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    const sfp_sgd_opts_t configs[4] = {
        {0.0f, false, 0.0f, 0.0f},      /* plain */
        {0.9f, false, 5e-4f, 5e-4f},    /* PyTorch's ResNet recipe */
        {0.9f, true, 1e-2f, 0.0f},      /* Nesterov, no decay on BN/bias */
        {0.5f, false, 0.0f, 3e-2f},     /* decay on BN/bias only */
    };
    for (int ci = 0; ci < 4; ci++) {
        const sfp_sgd_opts_t *o = &configs[ci];
        sfp_model_t *m = tiny_model();
        sfp_plan_t *p = NULL;
        sfp_sgd_t *sgd = NULL;
        TU_OK(&err, plan_create(m, 0, SFP_PLAN_TRAIN, 1, &p, &err));
        TU_OK(&err, sgd_create(p, o, &sgd, &err));
        assert_int_equal(plan_n_params(p), 4);
        double w[4][6], buf[4][6];
        for (int i = 0; i < 4; i++)
            for (int64_t e = 0; e < plan_param(p, i)->numel; e++) w[i][e] = (double)plan_param(p, i)->data[e];
        uint32_t seed = 10 + (uint32_t)ci;
        const float lrs[3] = {0.1f, 0.05f, 0.2f};
        for (int step = 0; step < 3; step++) {
            for (int i = 0; i < 4; i++) {
                const sfp_param_t *prm = plan_param(p, i);
                double wd = prm->kind == SFP_PARAM_WEIGHT ? (double)o->weight_decay : (double)o->wd_bn_bias;
                for (int64_t e = 0; e < prm->numel; e++) {
                    prm->grad[e] = (float)(tu_rand(&seed) % 2001) / 1000.0f - 1.0f;
                    double g = (double)prm->grad[e] + wd * w[i][e];
                    if (o->momentum > 0.0f) {
                        buf[i][e] = step == 0 ? g : (double)o->momentum * buf[i][e] + g;
                        g = o->nesterov ? g + (double)o->momentum * buf[i][e] : buf[i][e];
                    }
                    w[i][e] -= (double)lrs[step] * g;
                }
            }
            TU_OK(&err, sgd_step(sgd, lrs[step], &err));
            for (int i = 0; i < 4; i++) {
                const sfp_param_t *prm = plan_param(p, i);
                const float *mom = sgd_momentum(sgd, i);
                assert_true((mom != NULL) == (o->momentum > 0.0f));
                for (int64_t e = 0; e < prm->numel; e++) {
                    TU_EXPECT_NEAR(prm->data[e], w[i][e], 1e-6);
                    if (mom) TU_EXPECT_NEAR(mom[e], buf[i][e], 1e-6);
                    assert_true(prm->grad[e] == 0.0f); /* the step zeroes the gradients */
                }
            }
        }
        /* kinds: conv weight, conv bias, BN scale and bias */
        assert_int_equal(plan_param(p, 0)->kind, SFP_PARAM_WEIGHT);
        assert_int_equal(plan_param(p, 1)->kind, SFP_PARAM_BIAS);
        assert_int_equal(plan_param(p, 2)->kind, SFP_PARAM_NORM);
        assert_int_equal(plan_param(p, 3)->kind, SFP_PARAM_NORM);
        /* after a reset the next step starts the buffers again (buf = g) */
        if (o->momentum > 0.0f) {
            sgd_reset(sgd);
            assert_null(sgd_momentum(sgd, 0));
            const sfp_param_t *prm = plan_param(p, 0);
            float before = prm->data[0];
            prm->grad[0] = 1.0f;
            TU_OK(&err, sgd_step(sgd, 0.1f, &err));
            float g = 1.0f + o->weight_decay * before;
            TU_EXPECT_NEAR(sgd_momentum(sgd, 0)[0], g, 1e-7);
        }
        sgd_free(sgd);
        plan_free(p);
        sfp_model_free(m);
    }
}

static void test_sgd_refuses_bad_settings(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = tiny_model();
    sfp_plan_t *p = NULL, *inference = NULL;
    sfp_sgd_t *sgd = NULL;
    TU_OK(&err, plan_create(m, 0, SFP_PLAN_TRAIN, 1, &p, &err));
    TU_OK(&err, plan_create(m, 0, 0, 1, &inference, &err));
    sfp_sgd_opts_t o = {0.0f, true, 0.0f, 0.0f};
    int rc = sgd_create(p, &o, &sgd, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "Nesterov");
    o.nesterov = false;
    o.weight_decay = -1.0f;
    rc = sgd_create(p, &o, &sgd, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "weight decay");
    o.weight_decay = 0.0f;
    rc = sgd_create(inference, &o, &sgd, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "no trainable parameters");
    TU_OK(&err, sgd_create(p, &o, &sgd, &err));
    rc = sgd_step(sgd, NAN, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "learning rate");
    sgd_free(sgd);
    sgd_free(NULL);
    plan_free(p);
    plan_free(inference);
    sfp_model_free(m);
}

/* ---- learning-rate schedules ---- */
static void test_lr_schedules(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_lr_schedule_t c = {.kind = SFP_LR_CONSTANT, .base_lr = 0.1};
    TU_OK(&err, lr_schedule_check(&c, &err));
    TU_EXPECT_NEAR(lr_at(&c, 0), 0.1, 0);
    TU_EXPECT_NEAR(lr_at(&c, 1000000), 0.1, 0);

    sfp_lr_schedule_t s = {.kind = SFP_LR_STEP, .base_lr = 0.1, .gamma = 0.1, .n_milestones = 2,
                           .milestones = {2, 4}};
    TU_OK(&err, lr_schedule_check(&s, &err));
    const double step_want[6] = {0.1, 0.1, 0.01, 0.01, 0.001, 0.001};
    for (int i = 0; i < 6; i++) TU_EXPECT_NEAR(lr_at(&s, i), step_want[i], 1e-15);

    sfp_lr_schedule_t cs = {.kind = SFP_LR_COSINE, .base_lr = 0.1, .total_steps = 100, .min_lr = 0.001};
    TU_OK(&err, lr_schedule_check(&cs, &err));
    TU_EXPECT_NEAR(lr_at(&cs, 0), 0.1, 1e-15);
    TU_EXPECT_NEAR(lr_at(&cs, 50), (0.1 + 0.001) / 2, 1e-15);
    TU_EXPECT_NEAR(lr_at(&cs, 25), 0.001 + 0.099 * (1 + cos(M_PI / 4)) / 2, 1e-15);
    TU_EXPECT_NEAR(lr_at(&cs, 100), 0.001, 1e-15);
    TU_EXPECT_NEAR(lr_at(&cs, 250), 0.001, 1e-15);
    for (int i = 1; i <= 100; i++) assert_true(lr_at(&cs, i) < lr_at(&cs, i - 1));

    /* warm-up: factor 0.1 -> 1 over 10 steps on top of the cosine */
    cs.warmup_steps = 10;
    cs.warmup_start = 0.1;
    TU_OK(&err, lr_schedule_check(&cs, &err));
    TU_EXPECT_NEAR(lr_at(&cs, 0), 0.1 * 0.1, 1e-15);
    TU_EXPECT_NEAR(lr_at(&cs, 5), (0.001 + 0.099 * (1 + cos(M_PI * 0.05)) / 2) * 0.55, 1e-15);
    TU_EXPECT_NEAR(lr_at(&cs, 10), 0.001 + 0.099 * (1 + cos(M_PI * 0.1)) / 2, 1e-15);
    c.warmup_steps = 4;
    c.warmup_start = 0.0;
    TU_EXPECT_NEAR(lr_at(&c, 0), 0.0, 0);
    TU_EXPECT_NEAR(lr_at(&c, 2), 0.05, 1e-15);
    TU_EXPECT_NEAR(lr_at(&c, 4), 0.1, 0);

    /* refusals name what is wrong */
    sfp_lr_schedule_t bad = s;
    bad.milestones[1] = 2;
    int rc = lr_schedule_check(&bad, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "milestones");
    bad = cs;
    bad.total_steps = 0;
    rc = lr_schedule_check(&bad, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "total steps");
    bad = cs;
    bad.min_lr = 0.5;
    rc = lr_schedule_check(&bad, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "floor");
    bad = c;
    bad.warmup_start = 2.0;
    rc = lr_schedule_check(&bad, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "warm-up");
    bad = c;
    bad.base_lr = -1.0;
    rc = lr_schedule_check(&bad, &err);
    TU_EXPECT_ERR(rc, &err, SFP_EUSAGE, "learning rate");
}

/* ---- a few steps on one batch ---- */
/* A small classifier with BN, a residual Add and a Gemm fits 8 random
 * images with 4 labels: forward, loss, backward and SGD together make the
 * loss fall (to under a third in 40 steps of lr 0.1), and validation mode (running
 * statistics) still runs afterwards. */
/* conv -> BN -> relu -> conv (+ residual) -> relu -> pool -> fc: 4 classes of 3x8x8. */
static sfp_model_t *small_resnet(void)
{
    const tu_resnet_spec_t spec = {.batch = -1, .in_c = 3, .hw = 8, .width = 8, .classes = 4};
    return tu_small_resnet(&spec);
}

static void test_sgd_steps_fit_a_small_batch(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *m = small_resnet();
    sfp_plan_t *p = NULL;
    sfp_sgd_t *sgd = NULL;
    TU_OK(&err, plan_create(m, 8, SFP_PLAN_TRAIN, 2, &p, &err));
    const sfp_sgd_opts_t o = {0.9f, false, 5e-4f, 0.0f};
    TU_OK(&err, sgd_create(p, &o, &sgd, &err));
    uint32_t seed = 9;
    float *x = tu_uniform(&seed, 8 * 3 * 64, -1, 1), dlogits[32];
    const int32_t labels[8] = {0, 1, 2, 3, 3, 2, 1, 0};
    const void *in[1] = {x};
    double first = 0.0, loss = 0.0;
    for (int step = 0; step < 40; step++) {
        TU_OK(&err, plan_run(p, in, &err));
        TU_OK(&err, loss_softmax_xent(8, 4, plan_output(p, 0), labels, 0.0f, &loss, dlogits, NULL, &err));
        if (step == 0) first = loss;
        TU_OK(&err, plan_backward(p, dlogits, &err));
        TU_OK(&err, sgd_step(sgd, 0.1f, &err));
    }
    print_message("    cross-entropy %.4f -> %.4f in 40 steps\n", first, loss);
    assert_true(loss < first / 3.0);
    plan_set_training(p, false);
    TU_OK(&err, plan_run(p, in, &err));
    TU_OK(&err, loss_softmax_xent(8, 4, plan_output(p, 0), labels, 0.0f, &loss, NULL, NULL, &err));
    assert_true(isfinite(loss));
    sgd_free(sgd);
    plan_free(p);
    free(x);
    sfp_model_free(m);
}

/* ---- data parallelism: a batch shared by plans (plan_share_batch) ---- */
/* Two "processes" as two threads: the sum callback adds both threads'
 * buffers once both have arrived, as MPI_Allreduce would. */
typedef struct two_shares {
    pthread_barrier_t barrier;
    double *values[2];
    int calls[2];
} two_shares_t;

typedef struct share_ctx {
    two_shares_t *both;
    int rank;
} share_ctx_t;

static int sum_two(void *ctx, double *values, int64_t n, sfp_error_t *err)
{
    (void)err;
    share_ctx_t *c = ctx;
    double sums[64];
    assert_true(n <= 64);
    c->both->values[c->rank] = values;
    c->both->calls[c->rank]++;
    pthread_barrier_wait(&c->both->barrier);
    for (int64_t i = 0; i < n; i++) sums[i] = c->both->values[0][i] + c->both->values[1][i];
    pthread_barrier_wait(&c->both->barrier); /* both have read before either writes */
    memcpy(values, sums, (size_t)n * sizeof *sums);
    return 0;
}

typedef struct share_job {
    sfp_plan_t *plan;
    const float *x;
    const int32_t *labels;
    int rc;
} share_job_t;

/* Forward, loss scaled by share/batch (4 of 8), backward: what the trainer does per process. */
static void *share_step(void *arg)
{
    share_job_t *j = arg;
    sfp_error_t err = {0};
    float dlogits[16];
    double loss = 0.0;
    const void *in[1] = {j->x};
    j->rc = plan_run(j->plan, in, &err);
    if (j->rc == 0) j->rc = loss_softmax_xent(4, 4, plan_output(j->plan, 0), j->labels, 0.0f, &loss, dlogits, NULL, &err);
    for (int i = 0; i < 16; i++) dlogits[i] *= 0.5f;
    if (j->rc == 0) j->rc = plan_backward(j->plan, dlogits, &err);
    return NULL;
}

/* Training plans fuse a residual Add and a Relu into the Conv or the
 * BatchNormalization before them (forward epilogue; backward: the mask and
 * the residual's gradient first). A plan with SFP_PLAN_KEEP_ACTIVATIONS
 * fuses nothing: both must give the same logits, parameter and input
 * gradients, in training and in inference mode, for every block shape
 * (BN or not before the Add, shortcut from the block input or from the
 * graph input, which then also gets the conv's gradient). */
static void test_fused_training_plan_matches_unfused(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    for (int variant = 0; variant < 4; variant++) {
        const tu_resnet_spec_t spec = {.batch = 6, .in_c = 8, .hw = 8, .width = 8, .classes = 4,
                                       .bn2 = (variant & 1) != 0, .from_input = (variant & 2) != 0};
        sfp_model_t *m = tu_small_resnet(&spec);
        sfp_plan_t *fused = NULL, *plain = NULL;
        TU_OK(&err, plan_create(m, 6, SFP_PLAN_TRAIN | SFP_PLAN_INPUT_GRADS, 2, &fused, &err));
        TU_OK(&err, plan_create(m, 6, SFP_PLAN_TRAIN | SFP_PLAN_INPUT_GRADS | SFP_PLAN_KEEP_ACTIVATIONS, 2, &plain, &err));
        if (plan_n_steps(fused) >= plan_n_steps(plain))
            fail_msg("variant %d: %d fused steps, %d unfused", variant, plan_n_steps(fused), plan_n_steps(plain));
        uint32_t seed = 40u + (uint32_t)variant;
        float *x = tu_uniform(&seed, 6 * 8 * 64, -1, 1), dlogits[24];
        const int32_t labels[6] = {0, 1, 2, 3, 1, 2};
        const void *in[1] = {x};
        double loss = 0.0;
        for (int mode = 0; mode < 2; mode++) { /* training form, then running statistics */
            plan_set_training(fused, mode == 0);
            plan_set_training(plain, mode == 0);
            sfp_plan_t *both[2] = {fused, plain};
            for (int k = 0; k < 2; k++) {
                plan_zero_grad(both[k]);
                TU_OK(&err, plan_run(both[k], in, &err));
                TU_OK(&err, loss_softmax_xent(6, 4, plan_output(both[k], 0), labels, 0.0f, &loss, dlogits, NULL, &err));
                TU_OK(&err, plan_backward(both[k], dlogits, &err));
            }
            for (int i = 0; i < 24; i++)
                TU_EXPECT_NEAR(((const float *)plan_output(fused, 0))[i], ((const float *)plan_output(plain, 0))[i], 1e-5);
            size_t n = 0, n2 = 0;
            const float *gf = plan_grad_block(fused, &n), *gp = plan_grad_block(plain, &n2);
            assert_true(n > 0 && n == n2);
            double scale = 0.0;
            for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)gp[i]));
            for (size_t i = 0; i < n; i++) TU_EXPECT_NEAR(gf[i], gp[i], 1e-5 * scale);
            const float *dxf = plan_value_grad(fused, plan_input_value(fused, 0));
            const float *dxp = plan_value_grad(plain, plan_input_value(plain, 0));
            assert_true(dxf && dxp);
            scale = 0.0;
            for (int i = 0; i < 6 * 8 * 64; i++) scale = fmax(scale, fabs((double)dxp[i]));
            for (int i = 0; i < 6 * 8 * 64; i++) TU_EXPECT_NEAR(dxf[i], dxp[i], 1e-5 * scale);
        }
        plan_free(fused);
        plan_free(plain);
        sfp_model_free(m);
        free(x);
    }
}

static void test_shared_batch_plans_match_the_whole_batch(void **state)
{
    (void)state;
    sfp_error_t err = {0};
    sfp_model_t *whole = small_resnet(), *part[2] = {small_resnet(), small_resnet()};
    sfp_plan_t *pw = NULL, *pp[2] = {NULL, NULL};
    TU_OK(&err, plan_create(whole, 8, SFP_PLAN_TRAIN, 1, &pw, &err));
    two_shares_t both;
    memset(&both, 0, sizeof both);
    pthread_barrier_init(&both.barrier, NULL, 2);
    share_ctx_t ctx[2] = {{&both, 0}, {&both, 1}};
    for (int r = 0; r < 2; r++) {
        TU_OK(&err, plan_create(part[r], 4, SFP_PLAN_TRAIN, 1, &pp[r], &err));
        const sfp_batch_share_t share = {8, sum_two, &ctx[r]};
        plan_share_batch(pp[r], &share);
    }
    uint32_t seed = 21;
    float *x = tu_uniform(&seed, 8 * 3 * 64, -1, 1), dlogits[32];
    const int32_t labels[8] = {0, 1, 2, 3, 3, 2, 1, 0};
    const void *in[1] = {x};
    double loss = 0.0;
    TU_OK(&err, plan_run(pw, in, &err));
    TU_OK(&err, loss_softmax_xent(8, 4, plan_output(pw, 0), labels, 0.0f, &loss, dlogits, NULL, &err));
    TU_OK(&err, plan_backward(pw, dlogits, &err));
    share_job_t jobs[2] = {{pp[0], x, labels, -1}, {pp[1], x + 4 * 3 * 64, labels + 4, -1}};
    pthread_t th[2];
    for (int r = 0; r < 2; r++) assert_int_equal(pthread_create(&th[r], NULL, share_step, &jobs[r]), 0);
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    assert_int_equal(jobs[0].rc, 0);
    assert_int_equal(jobs[1].rc, 0);
    /* one BN: two sums forward (mean, variance), one backward */
    assert_int_equal(both.calls[0], 3);
    /* Logits of each half are the whole batch's rows: BN normalised by the
     * whole batch's statistics. Float rounding of the reordered sums: 1e-5. */
    const float *lw = plan_output(pw, 0);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 16; i++) TU_EXPECT_NEAR(((const float *)plan_output(pp[r], 0))[i], lw[16 * r + i], 1e-5);
    /* The two shares' parameter gradients add up to the whole batch's (the
     * process sum the trainer does), to 1e-5 of the gradient's scale. */
    size_t n = 0, n0 = 0, n1 = 0;
    const float *gw = plan_grad_block(pw, &n), *g0 = plan_grad_block(pp[0], &n0), *g1 = plan_grad_block(pp[1], &n1);
    assert_true(n > 0 && n == n0 && n == n1);
    double scale = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)gw[i]));
    for (size_t i = 0; i < n; i++) TU_EXPECT_NEAR((double)g0[i] + (double)g1[i], gw[i], 1e-5 * scale);
    /* Running statistics: every share updated them with the whole batch's. */
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < 2; k++) {
            const char *name = k ? "v1" : "m1";
            const sfp_tensor_t *a = part[r]->graph.values[graph_find_value(&part[r]->graph, name)].init;
            const sfp_tensor_t *b = whole->graph.values[graph_find_value(&whole->graph, name)].init;
            for (int c = 0; c < 8; c++) TU_EXPECT_NEAR(((float *)a->data)[c], ((float *)b->data)[c], 1e-6);
        }
    pthread_barrier_destroy(&both.barrier);
    for (int r = 0; r < 2; r++) {
        plan_free(pp[r]);
        sfp_model_free(part[r]);
    }
    plan_free(pw);
    sfp_model_free(whole);
    free(x);
}

/* ---- the same steps as PyTorch (tools/torch_step.py) ---- */
/* One line of DIR/models.txt: name, model file, steps, batch, lr, momentum,
 * weight decay, weight decay of BN/bias, nesterov (0/1). */
typedef struct step_job {
    char name[128], path[1024];
    int steps, nesterov;
    long batch;
    double lr, momentum, wd, wd_bn_bias;
} step_job_t;

static void path_join(char *out, size_t size, const char *dir, const char *name, const char *leaf)
{
    int n = snprintf(out, size, "%s/%s/%s", dir, name, leaf);
    assert_true(n > 0 && (size_t)n < size);
}

static void write_text(const char *path, const char *text)
{
    tu_write_file(path, text, strlen(text));
}

/* The branch every Relu took in the last run, for tools/torch_step.py: per
 * Relu node in node order an int64 count, then one byte per element (1 where
 * the output is positive). Relu outputs are all alive between plan_run and
 * plan_backward (their backward, or that of the step they are fused into,
 * reads them). */
static void write_relu_masks(const sfp_plan_t *p, const sfp_model_t *m, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    for (int node = 0; node < m->graph.n_nodes; node++) { /* node order: a fused Relu is no step of its own */
        const sfp_node_t *n = &m->graph.nodes[node];
        if (strcmp(n->op_type, "Relu") != 0) continue;
        const float *y = plan_value_data(p, n->outputs[0]);
        int64_t count = shape_numel(plan_value_shape(p, n->outputs[0]));
        uint8_t *mask = malloc((size_t)count + 1);
        assert_true(y && mask);
        for (int64_t i = 0; i < count; i++) mask[i] = y[i] > 0.0f;
        assert_int_equal(fwrite(&count, sizeof count, 1, f), 1);
        assert_int_equal(fwrite(mask, 1, (size_t)count, f), (size_t)count);
        free(mask);
    }
    assert_int_equal(fclose(f), 0);
}

/* Runs job's steps on the inputs in DIR/NAME, writing DIR/NAME/sfp_loss.txt
 * (the losses, space-separated), the Relu branches of step k as
 * DIR/NAME/sfp_relu_<k>.bin and every float initializer after step k as
 * DIR/NAME/sfp_step<k>/init_<i>.pb (i: initializer index in the file). */
static void run_job(const char *dir, const step_job_t *job)
{
    sfp_error_t err = {0};
    sfp_model_t *m = NULL;
    sfp_plan_t *p = NULL;
    sfp_sgd_t *sgd = NULL;
    TU_OK(&err, sfp_model_load(job->path, &m, &err));
    TU_OK(&err, plan_create(m, job->batch, SFP_PLAN_TRAIN, 2, &p, &err));
    const sfp_sgd_opts_t o = {(float)job->momentum, job->nesterov != 0, (float)job->wd, (float)job->wd_bn_bias};
    TU_OK(&err, sgd_create(p, &o, &sgd, &err));
    const sfp_shape_t *ys = plan_output_shape(p, 0);
    const int64_t n = ys->dims[0], k = ys->dims[1];
    float *dlogits = malloc(sizeof(float) * (size_t)(n * k));
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)n);
    assert_true(dlogits && labels);
    char losses[4096] = "", path[2048], leaf[64];
    size_t used = 0;
    for (int step = 0; step < job->steps; step++) {
        sfp_tensor_t *x = NULL, *y = NULL;
        snprintf(leaf, sizeof leaf, "input_%d.pb", step);
        path_join(path, sizeof path, dir, job->name, leaf);
        TU_OK(&err, sfp_tensor_load_pb(path, &x, &err));
        snprintf(leaf, sizeof leaf, "labels_%d.pb", step);
        path_join(path, sizeof path, dir, job->name, leaf);
        TU_OK(&err, sfp_tensor_load_pb(path, &y, &err));
        assert_int_equal(x->nbytes, (size_t)shape_numel(plan_input_shape(p, 0)) * sizeof(float));
        assert_int_equal(sfp_tensor_numel(y), n);
        for (int64_t i = 0; i < n; i++) labels[i] = (int32_t)sfp_tensor_get_int(y, i);
        const void *in[1] = {x->data};
        double loss = 0.0;
        TU_OK(&err, plan_run(p, in, &err));
        snprintf(leaf, sizeof leaf, "sfp_relu_%d.bin", step);
        path_join(path, sizeof path, dir, job->name, leaf);
        write_relu_masks(p, m, path);
        TU_OK(&err, loss_softmax_xent(n, k, plan_output(p, 0), labels, 0.0f, &loss, dlogits, NULL, &err));
        TU_OK(&err, plan_backward(p, dlogits, &err));
        TU_OK(&err, sgd_step(sgd, (float)job->lr, &err));
        used += (size_t)snprintf(losses + used, sizeof losses - used, "%.17g%s", loss,
                                 step + 1 < job->steps ? " " : "\n");
        assert_true(used < sizeof losses);
        snprintf(leaf, sizeof leaf, "sfp_step%d", step);
        path_join(path, sizeof path, dir, job->name, leaf);
        if (mkdir(path, 0755) != 0 && errno != EEXIST) fail_msg("cannot create %s", path);
        const sfp_graph_t *g = &m->graph;
        for (int i = 0; i < g->n_inits; i++) {
            const sfp_tensor_t *t = g->values[g->inits[i]].init;
            if (t->dtype != SFP_DT_FLOAT) continue;
            char file[2200];
            snprintf(file, sizeof file, "%s/init_%d.pb", path, i);
            TU_OK(&err, sfp_tensor_save_pb(t, file, &err));
        }
        sfp_tensor_free(x);
        sfp_tensor_free(y);
    }
    path_join(path, sizeof path, dir, job->name, "sfp_loss.txt");
    write_text(path, losses);
    print_message("    %s: %d steps, batch %ld, %d parameters, losses %s", job->name, job->steps, job->batch,
                  plan_n_params(p), losses);
    free(dlogits);
    free(labels);
    sgd_free(sgd);
    plan_free(p);
    sfp_model_free(m);
}

static void test_train_steps_for_pytorch_comparison(void **state)
{
    (void)state;
    const char *dir = getenv("SFP_TRAIN_STEP_DIR");
    if (!dir || !*dir) {
        print_message("    SFP_TRAIN_STEP_DIR not set: run tests/e2e_train_step.sh for the PyTorch comparison\n");
        skip();
    }
    char list[2048];
    snprintf(list, sizeof list, "%s/models.txt", dir);
    FILE *f = fopen(list, "r");
    if (!f) fail_msg("cannot read %s", list);
    char line[2048];
    int jobs = 0;
    while (fgets(line, sizeof line, f)) {
        step_job_t job;
        memset(&job, 0, sizeof job);
        if (line[0] == '#' || line[0] == '\n') continue;
        if (sscanf(line, "%127s %1023s %d %ld %lf %lf %lf %lf %d", job.name, job.path, &job.steps, &job.batch, &job.lr,
                   &job.momentum, &job.wd, &job.wd_bn_bias, &job.nesterov) != 9 ||
            job.steps < 1 || job.steps > 100 || job.batch < 1)
            fail_msg("%s: bad line: %s", list, line);
        run_job(dir, &job);
        jobs++;
    }
    fclose(f);
    assert_true(jobs > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_entropy_matches_definition),
        cmocka_unit_test(test_cross_entropy_refuses_bad_labels_and_diverged_logits),
        cmocka_unit_test(test_distill_gradient_matches_finite_differences),
        cmocka_unit_test(test_sgd_follows_the_pytorch_update_rule),
        cmocka_unit_test(test_sgd_refuses_bad_settings),
        cmocka_unit_test(test_lr_schedules),
        cmocka_unit_test(test_sgd_steps_fit_a_small_batch),
        cmocka_unit_test(test_shared_batch_plans_match_the_whole_batch),
        cmocka_unit_test(test_fused_training_plan_matches_unfused),
        cmocka_unit_test(test_train_steps_for_pytorch_comparison),
    };
    const char *dir = getenv("SFP_TRAIN_STEP_DIR");
    if (dir && *dir) cmocka_set_test_filter("test_train_steps_for_pytorch_comparison");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
