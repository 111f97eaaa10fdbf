/* cpu_attention_bwd.c — backward of causal GQA attention for one sequence, fp32.
 *
 * Nothing from the forward is stored: the softmax P is recomputed from q and k, as
 * flash-attention does, so training memory does not grow with T^2 per head. With
 * S = scale q k^T, P = softmax(S), O = P V:
 *     dV = P^T dO,   dP = dO V^T,   dS = P * (dP - delta),   delta_t = sum_j P_tj dP_tj,
 *     dQ = scale dS K,   dK = scale dS^T Q.
 * Two parallel passes, so that no two threads ever write the same element:
 *  A. per (head, query row): the row's log-sum-exp and delta, then dq of that row;
 *  B. per (KV head, key row): dk and dv of that key, summed over the group's heads and
 *     the query rows that see it (causal: query position >= key position).
 * Only keys a row may see are ever read, so NaN/Inf in masked positions stays masked, as in
 * the forward. This is the straightforward O(T^2 hd) form with dot products; GEMM tiling
 * like the forward's prefill path is a later optimisation. */
#include "cpu_internal.h"

#include <math.h>
#include <stdlib.h>

#define PAR_MIN_WORK 65536 /* multiply-adds below which threads cost more than they save */

int pb_cpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                         const float *v, int T, int p0, int n_heads, int n_kv, int hd, int kv_stride, pb_err *err) {
    if (T <= 0 || n_heads <= 0 || n_kv <= 0 || hd <= 0) return 0;
    int group = n_heads / n_kv, Tk = p0 + T;
    float scale = (float)(1.0 / sqrt((double)hd));
    size_t kv_head = (size_t)kv_stride * hd;
    double work = (double)n_heads * T * Tk * hd;
    /* per (head, row): log-sum-exp of the scaled scores, and delta */
    float *stats = malloc((size_t)n_heads * T * 2 * sizeof(float));
    if (!stats)
        return pb_err_set(err, "attention backward: cannot allocate %zu bytes of scratch",
                          (size_t)n_heads * T * 2 * sizeof(float));

    int rows = n_heads * T;
#pragma omp parallel for schedule(dynamic, 4) if (work >= PAR_MIN_WORK && rows > 1)
    for (int task = 0; task < rows; task++) {
        int h = task / T, t = task % T, nk = p0 + t + 1;
        const float *kg = k + (h / group) * kv_head, *vg = v + (h / group) * kv_head;
        size_t off = ((size_t)t * n_heads + h) * hd;
        const float *qr = q + off, *dor = dout + off;
        float *dqr = dq + off;
        float m = -INFINITY;
        for (int j = 0; j < nk; j++) {
            float s = pb_cpu_dot(qr, kg + (size_t)j * hd, hd) * scale;
            m = s > m ? s : m;
        }
        float l = 0.0f, pdp = 0.0f;
        for (int j = 0; j < nk; j++) {
            float p = expf(pb_cpu_dot(qr, kg + (size_t)j * hd, hd) * scale - m);
            l += p;
            pdp += p * pb_cpu_dot(dor, vg + (size_t)j * hd, hd);
        }
        float lse = m + logf(l), delta = pdp / l;
        stats[2 * (size_t)task] = lse;
        stats[2 * (size_t)task + 1] = delta;
        for (int d = 0; d < hd; d++) dqr[d] = 0.0f;
        for (int j = 0; j < nk; j++) {
            const float *kr = kg + (size_t)j * hd;
            float p = expf(pb_cpu_dot(qr, kr, hd) * scale - lse);
            float ds = p * (pb_cpu_dot(dor, vg + (size_t)j * hd, hd) - delta) * scale;
            for (int d = 0; d < hd; d++) dqr[d] += ds * kr[d];
        }
    }

    int keys = n_kv * Tk;
#pragma omp parallel for schedule(dynamic, 4) if (work >= PAR_MIN_WORK && keys > 1)
    for (int task = 0; task < keys; task++) {
        int g = task / Tk, j = task % Tk;
        size_t koff = g * kv_head + (size_t)j * hd;
        const float *kr = k + koff, *vr = v + koff;
        float *dkr = dk + koff, *dvr = dv + koff;
        for (int d = 0; d < hd; d++) dkr[d] = dvr[d] = 0.0f;
        int t0 = j - p0 > 0 ? j - p0 : 0; /* first query row at a position >= j */
        for (int h = g * group; h < (g + 1) * group; h++)
            for (int t = t0; t < T; t++) {
                size_t off = ((size_t)t * n_heads + h) * hd;
                const float *qr = q + off, *dor = dout + off;
                const float *st = stats + 2 * ((size_t)h * T + t);
                float p = expf(pb_cpu_dot(qr, kr, hd) * scale - st[0]);
                float ds = p * (pb_cpu_dot(dor, vr, hd) - st[1]) * scale;
                for (int d = 0; d < hd; d++) {
                    dvr[d] += p * dor[d];
                    dkr[d] += ds * qr[d];
                }
            }
    }
    free(stats);
    return 0;
}
