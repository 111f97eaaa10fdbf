/* calib.c — calibration windows for importance scores, and the two passes over them that
 * methods share: the mean next-token NLL (the PPL criterion) and the loss gradient
 * streamed to a consumer (Taylor criteria). */
#include "ops.h"
#include "pb_data.h"
#include "prune_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pb_calib_load(pb_calib *c, const char *name, const char *split, const char *data_dir, const pb_tokenizer *tok,
                  int n, int T, pb_calib_sampling sampling, uint64_t seed, pb_err *err) {
    memset(c, 0, sizeof *c);
    if (n < 1 || T < 2) return pb_err_set(err, "calibration: need at least 1 window of at least 2 tokens (got %d x %d)", n, T);
    int bos = pb_tok_bos(tok);
    if (bos < 0) return pb_err_set(err, "calibration: the tokenizer has no BOS token, which every window starts with");
    pb_text_set ts;
    PB_TRY(pb_data_text(data_dir, name, split, NULL, true, &ts, err));
    int32_t *s = NULL;
    size_t ns = 0;
    int rc = pb_tok_encode(tok, ts.text, ts.len, false, &s, &ns, err);
    size_t w = (size_t)T - 1, need = sampling == PB_CALIB_CONTIGUOUS ? (size_t)n * w : w;
    if (rc == 0 && ns < need)
        rc = pb_err_set(err, "calibration: %s%s%s has %zu tokens, too few for %d %s windows of %d", ts.name,
                        ts.split ? ":" : "", ts.split ? ts.split : "", ns, n,
                        sampling == PB_CALIB_CONTIGUOUS ? "contiguous" : "random", T);
    if (rc == 0) {
        c->ids = malloc(sizeof(int32_t) * (size_t)n * (size_t)T);
        size_t sl = strlen(ts.name) + (ts.split ? strlen(ts.split) : 0) + 2;
        c->source = malloc(sl);
        if (!c->ids || !c->source) rc = pb_err_set(err, "calibration: out of memory");
        else snprintf(c->source, sl, "%s%s%s", ts.name, ts.split ? ":" : "", ts.split ? ts.split : "");
    }
    if (rc == 0) {
        uint64_t st = seed;
        for (int i = 0; i < n; i++) {
            size_t off;
            if (sampling == PB_CALIB_CONTIGUOUS) {
                off = (size_t)i * w;
            } else {
                /* uniform in [0, ns - w]: an unbiased bounded draw by rejection */
                uint64_t m = (uint64_t)(ns - w) + 1, lim = (0 - m) % m, x;
                do x = pb_rng_next(&st);
                while (x < lim);
                off = (size_t)(x % m);
            }
            int32_t *win = c->ids + (size_t)i * T;
            win[0] = bos;
            memcpy(win + 1, s + off, w * sizeof(int32_t));
        }
        c->n = n;
        c->T = T;
    }
    free(s);
    pb_text_set_free(&ts);
    if (rc) pb_calib_free(c);
    return rc;
}

void pb_calib_free(pb_calib *c) {
    free(c->ids);
    free(c->source);
    memset(c, 0, sizeof *c);
}

int pb_calib_nll(const pb_model *m, const pb_calib *c, double *nll, pb_err *err) {
    const pb_ops *ops = pb_ops_cpu();
    int V = m->cfg.vocab_size, T = c->T, per = c->n < 8 ? c->n : 8;
    float *logits = malloc(sizeof(float) * (size_t)per * T * V);
    int32_t *tg = malloc(sizeof(int32_t) * (size_t)per * T);
    pb_fwd_state *st = pb_fwd_state_new();
    int rc = 0;
    double sum = 0;
    int64_t cnt = 0;
    if (!logits || !tg || !st) rc = pb_err_set(err, "calibration: out of memory");
    for (int i = 0; rc == 0 && i < c->n; i += per) {
        int B = c->n - i < per ? c->n - i : per;
        const int32_t *ids = c->ids + (size_t)i * T;
        pb_batch_next_token(ids, B, T, tg);
        rc = pb_model_forward(m, st, ids, B, T, NULL, logits, false, err);
        double l;
        int64_t k;
        if (rc == 0) rc = ops->cross_entropy(&l, &k, NULL, logits, tg, (int64_t)B * T, V, err);
        if (rc == 0) {
            sum += l * (double)k;
            cnt += k;
        } else {
            pb_err_prefix(err, "calibration windows %d..%d: ", i, i + B - 1);
        }
    }
    if (rc == 0) *nll = sum / (double)cnt;
    free(logits);
    free(tg);
    pb_fwd_state_free(st);
    return rc;
}

int pb_calib_grads(const pb_model *m, const pb_calib *c, int per, const pb_grad_opts *o, pb_err *err) {
    if (per <= 0) per = c->n;
    int n_mb = (c->n + per - 1) / per, T = c->T;
    pb_batch *mb = calloc((size_t)n_mb, sizeof *mb);
    int32_t *tg = malloc(sizeof(int32_t) * (size_t)c->n * T);
    pb_grad_state *gs = pb_grad_state_new();
    int rc = 0;
    if (!mb || !tg || !gs) rc = pb_err_set(err, "calibration: out of memory");
    if (rc == 0) {
        pb_batch_next_token(c->ids, c->n, T, tg);
        for (int i = 0; i < n_mb; i++) {
            int B = c->n - i * per < per ? c->n - i * per : per;
            mb[i] = (pb_batch){c->ids + (size_t)i * per * T, tg + (size_t)i * per * T, B, T};
        }
        rc = pb_grad_run(m, gs, mb, n_mb, o, NULL, NULL, err);
    }
    free(mb);
    free(tg);
    pb_grad_state_free(gs);
    return rc;
}
