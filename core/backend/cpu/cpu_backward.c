/* cpu_backward.c — backward of the CPU backend's element-wise ops, linear layers and the
 * cross-entropy loss (attention's backward is in cpu_attention_bwd.c).
 *
 * Same precision policy as the forward: fp32 with double only in cheap per-row
 * reductions (RMSNorm statistics, the loss's log-sum-exp). Weight gradients accumulate and
 * are skipped when NULL (see ops.h), so a frozen model pays only for the input gradients. */
#include "cpu_internal.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Below this many elements an OpenMP fork costs more than the loop itself. */
#define PAR_MIN 32768

void pb_cpu_linear_bwd(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int n,
                       int in, int out, bool accumulate_dx) {
    if (n <= 0 || in < 0 || out < 0) return;
    if (dx) {
        if (out == 0 || in == 0) {
            if (!accumulate_dx && in > 0) memset(dx, 0, (size_t)n * in * sizeof(float));
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, W, in,
                        accumulate_dx ? 1.0f : 0.0f, dx, in);
        }
    }
    if (dW && in > 0 && out > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, x, in, 1.0f, dW, in);
    if (db)
        /* column sums, one output per iteration so threads never share a db element */
#pragma omp parallel for schedule(static) if ((int64_t)n * out >= PAR_MIN)
        for (int o = 0; o < out; o++) {
            float s = 0.0f;
            for (int i = 0; i < n; i++) s += dy[(size_t)i * out + o];
            db[o] += s;
        }
}

/* 1/rms of one row, in double as the forward computes it. */
static double row_inv_rms(const float *xr, int d, float eps) {
    double ss = 0.0;
    for (int j = 0; j < d; j++) ss += (double)xr[j] * xr[j];
    return 1.0 / sqrt(ss / d + (double)eps);
}

/* y = x * inv * w with inv = (mean(x^2) + eps)^-1/2, so
 * dx_k = inv * w_k dy_k - x_k * inv^3 / d * sum_j dy_j w_j x_j  and  dw_j += dy_j x_j inv. */
void pb_cpu_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, int n, int d,
                        float eps) {
    if (n <= 0 || d <= 0) return;
    /* dw first: dx may overwrite dy. Rows run serially because every row adds into all of dw;
     * this pass costs O(n d), small next to the GEMMs on either side. */
    if (dw)
        for (int i = 0; i < n; i++) {
            const float *xr = x + (size_t)i * d, *gr = dy + (size_t)i * d;
            float inv = (float)row_inv_rms(xr, d, eps);
            for (int j = 0; j < d; j++) dw[j] += gr[j] * (xr[j] * inv);
        }
    if (!dx) return;
#pragma omp parallel for schedule(static) if ((int64_t)n * d >= PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d, *gr = dy + (size_t)i * d;
        float *dr = dx + (size_t)i * d;
        double inv = row_inv_rms(xr, d, eps);
        double s = 0.0;
        for (int j = 0; j < d; j++) s += (double)gr[j] * w[j] * xr[j];
        float a = (float)inv, c = (float)(inv * inv * inv * s / d);
        for (int j = 0; j < d; j++) dr[j] = a * (w[j] * gr[j]) - c * xr[j];
    }
}

/* The forward rotates each pair (x1, x2) by +angle; the transpose of a rotation is the
 * rotation by -angle: d1' = c d1 + s d2, d2' = c d2 - s d1. */
void pb_cpu_rope_bwd(float *dx, const int32_t *pos, const float *inv_freq, int n, int heads, int head_dim) {
    int half = head_dim / 2;
#pragma omp parallel for schedule(static) if ((int64_t)n * heads * head_dim >= PAR_MIN)
    for (int i = 0; i < n; i++) {
        float *xr = dx + (size_t)i * heads * head_dim;
        for (int j = 0; j < half; j++) {
            /* same angle, in double then rounded, as the forward's cos/sin */
            double a = (double)pos[i] * (double)inv_freq[j];
            float c = (float)cos(a), s = (float)sin(a);
            for (int h = 0; h < heads; h++) {
                float *x1 = xr + (size_t)h * head_dim + j, *x2 = x1 + half;
                float d1 = *x1, d2 = *x2;
                *x1 = d1 * c + d2 * s;
                *x2 = d2 * c - d1 * s;
            }
        }
    }
}

/* h = silu(g) u, silu(g) = g sig(g), silu'(g) = sig(g) (1 + g (1 - sig(g))). */
void pb_cpu_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i], sg = 1.0f / (1.0f + expf(-gi)), d = dh[i];
        float gu = d * u[i] * (sg * (1.0f + gi * (1.0f - sg)));
        float uu = d * gi * sg;
        dg[i] = gu;
        du[i] = uu;
    }
}

void pb_cpu_embedding_bwd(float *d_table, const float *dx, const int32_t *tok, int n, int d) {
    /* serial: a token may repeat, and its rows must add into the same table row */
    for (int i = 0; i < n; i++) {
        float *t = d_table + (size_t)tok[i] * d;
        const float *r = dx + (size_t)i * d;
        for (int j = 0; j < d; j++) t[j] += r[j];
    }
}

int pb_cpu_cross_entropy(double *loss, int64_t *n_selected, float *d_logits, const float *logits,
                         const int32_t *target, int64_t n, int vocab, pb_err *err) {
    if (n < 0 || vocab <= 0) return pb_err_set(err, "cross-entropy: bad shape (n=%lld vocab=%d)", (long long)n, vocab);
    int64_t sel = 0;
    for (int64_t i = 0; i < n; i++) {
        if (target[i] < -1 || target[i] >= vocab)
            return pb_err_set(err, "cross-entropy: target %d at row %lld outside [-1, %d)", (int)target[i],
                              (long long)i, vocab);
        sel += target[i] >= 0;
    }
    /* the scale is known before the rows run, so each row is done in one visit */
    float scale = sel > 0 ? (float)(1.0 / (double)sel) : 0.0f;
    int64_t bad = -1;
    double sum = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : sum) if (n * vocab >= 65536)
    for (int64_t i = 0; i < n; i++) {
        const float *r = logits + i * (int64_t)vocab;
        float *dr = d_logits ? d_logits + i * (int64_t)vocab : NULL;
        int32_t t = target[i];
        if (t < 0) {
            if (dr) memset(dr, 0, (size_t)vocab * sizeof(float));
            continue;
        }
        float mx = r[0];
        for (int v = 1; v < vocab; v++) mx = r[v] > mx ? r[v] : mx;
        double z = 0;
        for (int v = 0; v < vocab; v++) z += exp((double)r[v] - mx);
        double x = (double)mx + log(z) - (double)r[t];
        if (!isfinite(x)) {
#pragma omp critical
            if (bad < 0 || i < bad) bad = i;
            continue;
        }
        sum += x;
        if (dr) {
            double iz = 1.0 / z;
            for (int v = 0; v < vocab; v++) dr[v] = (float)(exp((double)r[v] - mx) * iz) * scale;
            dr[t] -= scale;
        }
    }
    if (bad >= 0)
        return pb_err_set(err, "cross-entropy: non-finite log-likelihood at row %lld (logits contain NaN or Inf)",
                          (long long)bad);
    *loss = sel > 0 ? sum / (double)sel : 0.0;
    if (n_selected) *n_selected = sel;
    return 0;
}
