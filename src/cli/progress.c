/* Training progress on stderr (see progress.h). The one place that decides
 * what a terminal or a CI log sees while a model trains. */
#define _DEFAULT_SOURCE
#include "cli/progress.h"

#include <math.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/util.h"

void cli_progress_attach(cli_progress_t *p, bool quiet, sfp_train_opts_t *o)
{
    memset(p, 0, sizeof *p);
    p->f = stderr;
    p->bar = isatty(STDERR_FILENO);
    o->progress = quiet ? NULL : cli_progress_show;
    o->progress_ctx = quiet ? NULL : p;
}

static void format_duration(double s, char *buf, size_t len)
{
    long v = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (v >= 3600) snprintf(buf, len, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
    else snprintf(buf, len, "%ld:%02ld", v / 60, v % 60);
}

/* Columns of the terminal on stderr (80 when unknown). */
static int terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
    return 80;
}

static void show_bar(cli_progress_t *p, const sfp_progress_t *e, const char *eta)
{
    int width = terminal_width();
    /* the bar itself takes what the words leave, between 8 and 24 columns */
    int bar_w = width >= 120 ? 24 : width >= 100 ? 16 : 8;
    int fill = (int)(bar_w * e->steps_done / (e->steps_per_epoch ? e->steps_per_epoch : 1));
    char bar[32], line[512];
    for (int i = 0; i < bar_w; i++) bar[i] = i < fill ? '#' : '.';
    bar[bar_w] = 0;
    snprintf(line, sizeof line, "epoch %lld/%lld [%s] %lld/%lld loss %.4f acc %.2f%% %.0f img/s ETA %s%s%s",
             (long long)e->epoch + 1, (long long)e->epochs, bar, (long long)e->steps_done,
             (long long)e->steps_per_epoch, e->loss, 100.0 * e->accuracy, e->images_per_s, eta, *e->status ? "  " : "",
             e->status);
    /* one column short of the width: writing the last column wraps on some terminals */
    if ((int)strlen(line) > width - 1) line[width - 1] = 0;
    fprintf(p->f, "\r\033[K%s", line);
    fflush(p->f);
    p->drawn = true;
}

static void show_step_line(cli_progress_t *p, const sfp_progress_t *e, const char *eta)
{
    double now = sfp_now_seconds();
    if (p->started == 0) p->started = now;
    if (now - (p->last_line ? p->last_line : p->started) < CLI_PROGRESS_LINE_SECONDS) return;
    p->last_line = now;
    fprintf(p->f, "epoch %lld/%lld step %lld/%lld loss %.4f acc %.2f%% %.0f img/s ETA %s%s%s\n",
            (long long)e->epoch + 1, (long long)e->epochs, (long long)e->steps_done, (long long)e->steps_per_epoch,
            e->loss, 100.0 * e->accuracy, e->images_per_s, eta, *e->status ? "  " : "", e->status);
    fflush(p->f);
}

static void show_epoch(cli_progress_t *p, const sfp_progress_t *e, const char *eta)
{
    const sfp_epoch_stats_t *s = e->stats;
    char val[64] = "", comm[48] = "";
    if (isfinite(s->val_accuracy))
        snprintf(val, sizeof val, " val_loss %.4f val_acc %.2f%%", s->val_loss, 100.0 * s->val_accuracy);
    if (e->processes > 1)
        snprintf(comm, sizeof comm, " (%d processes, %.1f%% in collectives)", e->processes,
                 s->seconds > 0 ? 100.0 * s->comm_seconds / s->seconds : 0.0);
    if (p->drawn) fprintf(p->f, "\r\033[K");
    p->drawn = false;
    fprintf(p->f, "epoch %lld/%lld loss %.4f acc %.2f%%%s lr %.4g %.1fs %.0f img/s%s ETA %s%s%s\n",
            (long long)e->epoch + 1, (long long)e->epochs, s->loss, 100.0 * s->accuracy, val, s->lr, s->seconds,
            s->images_per_s, comm, eta, *e->status ? "  " : "", e->status);
    fflush(p->f);
    p->last_line = sfp_now_seconds();
}

void cli_progress_show(void *ctx, const sfp_progress_t *e)
{
    cli_progress_t *p = ctx;
    char eta[32];
    format_duration(e->eta_seconds, eta, sizeof eta);
    switch (e->kind) {
    case SFP_PROGRESS_STEP:
        if (p->bar) show_bar(p, e, eta);
        else show_step_line(p, e, eta);
        break;
    case SFP_PROGRESS_EPOCH: show_epoch(p, e, eta); break;
    case SFP_PROGRESS_STOP:
        if (p->drawn) fprintf(p->f, "\n");
        p->drawn = false;
        break;
    }
}
