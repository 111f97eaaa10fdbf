/* ppl.c — windowed perplexity (see ppl.h for the protocols).
 *
 * Windows of equal length run B at a time through one forward pass; each window's scored
 * rows go through pb_model_score (pb_logits_nll's log-softmax in double, computed where the
 * logits are, so a device returns only the NLLs). Sums run in window order, so the result
 * does not depend on the batch size or the thread count. */
#include "ppl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One window: input = [BOS if bos] + ids[start .. start+len); rows r0 .. T-2 of its logits
 * are scored (row r predicts input position r+1). */
typedef struct {
    int64_t start;
    int len, T, r0;
    bool bos;
} window;

typedef struct {
    int64_t n;        /* stream tokens after truncation */
    int64_t count;    /* windows to evaluate */
    int L, stride;
    bool sliding, bos;
} plan;

static window window_at(const plan *p, int64_t k) {
    window w = {0};
    if (!p->sliding) {
        w.start = k * p->L;
        w.len = p->L;
        w.bos = p->bos;
        w.T = w.len + (w.bos ? 1 : 0);
        w.r0 = 0;
        return w;
    }
    int64_t begin = k * p->stride, end = begin + p->L < p->n ? begin + p->L : p->n;
    int64_t prev_end = k == 0 ? 0 : ((k - 1) * p->stride + p->L < p->n ? (k - 1) * p->stride + p->L : p->n);
    int64_t first = prev_end - begin > 1 ? prev_end - begin : 1; /* first predicted input position */
    w.start = begin;
    w.len = (int)(end - begin);
    w.T = w.len;
    w.r0 = (int)(first - 1);
    return w;
}

static int make_plan(const pb_model *m, size_t n_ids, const pb_ppl_opts *o, plan *p, pb_err *err) {
    memset(p, 0, sizeof *p);
    int ctx = m->cfg.max_seq_len;
    if (o->seq_len < 2) return pb_err_set(err, "--seq-len must be at least 2, got %d", o->seq_len);
    if (o->stride < 0 || o->stride > o->seq_len)
        return pb_err_set(err, "--stride must be between 1 and --seq-len (%d), got %d", o->seq_len, o->stride);
    p->L = o->seq_len;
    p->sliding = o->stride > 0 && o->stride < o->seq_len;
    p->stride = p->sliding ? o->stride : o->seq_len;
    p->bos = o->bos_per_window;
    if (p->sliding && p->bos) return pb_err_set(err, "--bos-per-window cannot be combined with a sliding --stride");
    int64_t need = (int64_t)p->L + (p->bos ? 1 : 0);
    if (ctx > 0 && need > ctx)
        return pb_err_set(err, "--seq-len %d%s is longer than the model's context of %d tokens", p->L,
                          p->bos ? " (+1 BOS per window)" : "", ctx);
    p->n = (int64_t)n_ids;
    if (o->truncate_windows > 0 && p->n / p->L > o->truncate_windows) p->n = o->truncate_windows * p->L;
    if (p->sliding) {
        if (p->n < 2) return pb_err_set(err, "the text has %lld tokens; at least 2 are needed", (long long)p->n);
        p->count = p->n <= p->L ? 1 : (p->n - p->L + p->stride - 1) / p->stride + 1;
    } else {
        p->count = p->n / p->L;
        if (p->count == 0)
            return pb_err_set(err, "the text has %lld tokens, fewer than one window of %d", (long long)p->n, p->L);
    }
    if (o->max_windows > 0 && p->count > o->max_windows) p->count = o->max_windows;
    return 0;
}

/* Chan et al.'s pairwise update of (count, mean, sum of squared deviations). */
static void merge_moments(int64_t *n, double *mean, double *m2, const double *x, int64_t k) {
    if (k <= 0) return;
    double s = 0;
    for (int64_t i = 0; i < k; i++) s += x[i];
    double mb = s / (double)k, q = 0;
    for (int64_t i = 0; i < k; i++) q += (x[i] - mb) * (x[i] - mb);
    int64_t nt = *n + k;
    double d = mb - *mean;
    *mean += d * (double)k / (double)nt;
    *m2 += q + d * d * (double)*n * (double)k / (double)nt;
    *n = nt;
}

int pb_ppl_ids(const pb_model *m, const int32_t *ids, size_t n, int bos, const pb_ppl_opts *o, pb_ppl_result *r,
               pb_err *err) {
    memset(r, 0, sizeof *r);
    plan p;
    PB_TRY(make_plan(m, n, o, &p, err));
    if (p.bos && bos < 0) return pb_err_set(err, "--bos-per-window: the tokenizer has no BOS token");
    int Tmax = p.L + (p.bos ? 1 : 0), V = m->cfg.vocab_size;
    size_t row_bytes = (size_t)Tmax * (size_t)V * sizeof(float);
    int B = o->batch;
    if (B <= 0) {
        size_t fit = ((size_t)256 << 20) / (row_bytes ? row_bytes : 1);
        B = fit < 1 ? 1 : fit > 8 ? 8 : (int)fit;
    }
    if (B > p.count) B = (int)p.count;
    size_t n_logits;
    if (!pb_mul_ok(row_bytes / sizeof(float), (size_t)B, &n_logits)) return pb_err_set(err, "--batch %d is too large", B);
    int32_t *tok = pb_calloc((size_t)B * (size_t)Tmax, sizeof *tok), *tgt = pb_calloc((size_t)B * (size_t)Tmax, sizeof *tgt);
    double *nll = pb_calloc((size_t)B * (size_t)Tmax, sizeof *nll);
    pb_fwd_state *st = pb_fwd_state_new();
    if (!tok || !tgt || !nll || !st) {
        free(tok); free(tgt); free(nll); pb_fwd_state_free(st);
        return pb_err_set(err, "out of memory for %d windows of %d tokens (vocabulary %d); try --batch 1", B, Tmax, V);
    }

    pb_progress prog;
    if (o->label) pb_progress_start(&prog, o->label, "windows", p.count);
    double t0 = pb_time_now(), sum = 0, mean = 0, m2 = 0;
    int64_t cnt = 0;
    int rc = 0;
    for (int64_t k = 0; k < p.count && !rc;) {
        window w0 = window_at(&p, k);
        int nb = 0; /* windows in this batch: consecutive, same input length */
        while (nb < B && k + nb < p.count && window_at(&p, k + nb).T == w0.T) {
            window w = window_at(&p, k + nb);
            int32_t *dst = tok + (size_t)nb * (size_t)w.T;
            if (w.bos) *dst++ = bos;
            memcpy(dst, ids + w.start, (size_t)w.len * sizeof *ids);
            nb++;
        }
        /* row r of a window predicts its input position r + 1; rows before r0 are context */
        for (int b = 0; b < nb; b++) {
            window w = window_at(&p, k + b);
            for (int r = 0; r < w.T; r++)
                tgt[(size_t)b * w.T + r] = r >= w.r0 && r < w.T - 1 ? tok[(size_t)b * w.T + r + 1] : -1;
        }
        if (pb_model_score(m, st, tok, nb, w0.T, NULL, tgt, nll, NULL, err)) {
            /* a non-finite row is reported by window; any other failure as it is */
            for (int b = 0; b < nb && rc == 0; b++) {
                window w = window_at(&p, k + b);
                for (int r = w.r0; r < w.T - 1; r++)
                    if (!isfinite(nll[(size_t)b * w.T + r])) {
                        pb_err_set(err, "window %lld of %lld (stream tokens %lld..%lld): the logits at window position "
                                        "%d are not finite (NaN or Inf)", (long long)(k + b), (long long)p.count,
                                   (long long)w.start, (long long)(w.start + w.len - 1), r);
                        rc = -1;
                        break;
                    }
            }
            if (rc == 0) pb_err_prefix(err, "windows %lld..%lld: ", (long long)k, (long long)(k + nb - 1));
            rc = -1;
            break;
        }
        for (int b = 0; b < nb; b++) {
            window w = window_at(&p, k + b);
            int cntw = w.T - 1 - w.r0;
            const double *x = nll + (size_t)b * w.T + w.r0;
            double s = 0;
            for (int i = 0; i < cntw; i++) s += x[i];   /* in row order, as pb_logits_nll sums */
            sum += s;
            merge_moments(&cnt, &mean, &m2, x, cntw);
        }
        k += nb;
        if (o->label) pb_progress_update(&prog, k);
    }
    if (o->label) {
        if (!rc) pb_progress_end(&prog);
        else if (prog.printed && prog.tty) fputc('\n', stderr);
    }
    free(tok);
    free(tgt);
    free(nll);
    pb_fwd_state_free(st);
    if (rc) return -1;
    r->windows = p.count;
    r->tokens = cnt;
    r->stream_tokens = p.n;
    r->nll_sum = sum;
    r->nll_mean = sum / (double)cnt;
    r->nll_stderr = cnt >= 2 ? sqrt(m2 / (double)(cnt - 1) / (double)cnt) : NAN;
    r->ppl = exp(r->nll_mean);
    r->seconds = pb_time_now() - t0;
    return 0;
}

int pb_ppl_text(const pb_model *m, const pb_tokenizer *tok, const char *text, size_t len, const pb_ppl_opts *o,
                pb_ppl_result *r, pb_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    bool add_bos = !o->bos_per_window && pb_tok_default_add_bos(tok);
    PB_TRY(pb_tok_encode(tok, text, len, add_bos, &ids, &n, err));
    int rc = pb_ppl_ids(m, ids, n, pb_tok_bos(tok), o, r, err);
    free(ids);
    return rc;
}
