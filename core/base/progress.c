/* progress.c — progress lines for long loops (perplexity windows, zero-shot items, sweeps). */
#include "pb_base.h"

#include <stdio.h>
#include <unistd.h>

static void fmt_secs(char *buf, size_t cap, double s) {
    if (s < 0 || s > 1e7) snprintf(buf, cap, "?");
    else if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

static void draw(pb_progress *p, double now, bool final) {
    double el = now - p->t0, rate = el > 0 ? (double)p->done / el : 0;
    char eta[32], tot[32];
    fmt_secs(eta, sizeof eta, rate > 0 ? (double)(p->total - p->done) / rate : -1);
    fmt_secs(tot, sizeof tot, el);
    fprintf(stderr, "%s%s: %lld/%lld %s (%.1f/s, %s %s)%s", p->tty ? "\r" : "", p->label, (long long)p->done,
            (long long)p->total, p->unit, rate, final ? "took" : "ETA", final ? tot : eta,
            p->tty && !final ? "\033[K" : "\n");
    fflush(stderr);
    p->printed = true;
    p->last = now;
}

void pb_progress_start(pb_progress *p, const char *label, const char *unit, int64_t total) {
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->done = 0;
    p->t0 = p->last = pb_time_now();
    p->tty = isatty(2);
    p->printed = false;
}

void pb_progress_update(pb_progress *p, int64_t done) {
    p->done = done;
    if (pb_log_verbosity < PB_LOG_INFO) return;
    double now = pb_time_now();
    /* nothing for short jobs; then a redraw per 0.5 s on a terminal, a line per 10 s in logs */
    if (now - p->t0 < 2.0 || now - p->last < (p->tty ? 0.5 : 10.0)) return;
    draw(p, now, false);
}

void pb_progress_end(pb_progress *p) {
    if (pb_log_verbosity < PB_LOG_INFO || !p->printed) return;
    draw(p, pb_time_now(), true);
}
