/* cpu_attention.c — causal grouped-query attention for a batch of sequences, fp32.
 *
 * Two paths with the same semantics:
 *  - prefill (many query rows): per (head, tile of query rows), scores = Q K^T and
 *    out = P V are GEMMs, so that long prompts run at BLAS speed. The tile bounds the score
 *    buffer and skips most of the masked upper triangle; inside a tile the causal triangle
 *    of P V is added row by row, so masked positions are never read (NaN stays causal).
 *  - decode (few rows), or when the score buffer cannot be allocated: one pass per query
 *    row with an online softmax, which needs no memory beyond the output row.
 * Both use softmax with max subtraction in fp32. The KV-cache test compares them (decode
 * against a batched forward), so each checks the other. */
#include "cpu_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TILE_Q 64           /* query rows per score tile */
#define GEMM_MIN_ROWS 8     /* fewer query rows than this: the row path is cheaper */
#define PAR_MIN_WORK 65536  /* multiply-adds below which threads cost more than they save */

/* One query row against keys 0..nk-1 of one KV head; o (hd) receives the result. */
static void attend_row(float *o, const float *qr, const float *k, const float *v, int nk, int hd, float scale) {
    float m = -INFINITY, l = 0.0f;
    memset(o, 0, (size_t)hd * sizeof(float));
    for (int j = 0; j < nk; j++) {
        float s = pb_cpu_dot(qr, k + (size_t)j * hd, hd) * scale;
        if (s > m) {
            /* new maximum: rescale what was accumulated against the old one */
            float c = expf(m - s);
            l *= c;
            for (int d = 0; d < hd; d++) o[d] *= c;
            m = s;
        }
        float p = expf(s - m);
        l += p;
        const float *vr = v + (size_t)j * hd;
        for (int d = 0; d < hd; d++) o[d] += p * vr[d];
    }
    float inv = 1.0f / l;
    for (int d = 0; d < hd; d++) o[d] *= inv;
}

static void attend_rows(float *out, const float *q, const float *k, const float *v, int t0, int t1, int p0, int h,
                        int n_heads, int hd, float scale) {
    for (int t = t0; t < t1; t++) {
        size_t off = ((size_t)t * n_heads + h) * hd;
        attend_row(out + off, q + off, k, v, p0 + t + 1, hd, scale);
    }
}

/* Rows t0..t1-1 of head h with GEMMs; S is a (t1-t0, p0+t1) scratch. */
static void attend_tile(float *out, const float *q, const float *k, const float *v, float *S, int t0, int t1,
                        int p0, int h, int n_heads, int hd, float scale) {
    int rows = t1 - t0, nk = p0 + t1, ld = n_heads * hd;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, hd, scale, q + ((size_t)t0 * n_heads + h) * hd,
                ld, k, hd, 0.0f, S, nk);
    for (int i = 0; i < rows; i++) {
        float *s = S + (size_t)i * nk;
        int valid = p0 + t0 + i + 1; /* causal: keys up to this row's own position */
        float m = s[0];
        for (int j = 1; j < valid; j++) m = s[j] > m ? s[j] : m;
        float sum = 0.0f;
        for (int j = 0; j < valid; j++) {
            s[j] = expf(s[j] - m);
            sum += s[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < valid; j++) s[j] *= inv;
    }
    /* out = P V in two parts, so that no row ever touches a value row it may not see (a
     * masked 0 times a NaN or Inf in a future position would still give NaN): a GEMM over
     * the keys that every row of the tile sees, then each row's own few causal keys. */
    int common = p0 + t0 + 1;
    float *o0 = out + ((size_t)t0 * n_heads + h) * hd;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, common, 1.0f, S, nk, v, hd, 0.0f, o0, ld);
    for (int i = 1; i < rows; i++) {
        const float *s = S + (size_t)i * nk;
        float *o = o0 + (size_t)i * ld;
        for (int j = common; j < common + i; j++) {
            const float *vr = v + (size_t)j * hd;
            float p = s[j];
            for (int d = 0; d < hd; d++) o[d] += p * vr[d];
        }
    }
}

/* One sequence: q, out (T, n_heads, hd); k, v (n_kv, kv_stride, hd). */
static void attention_seq(float *out, const float *q, const float *k, const float *v, int T, int p0, int n_heads,
                          int n_kv, int hd, int kv_stride) {
    if (T <= 0 || n_heads <= 0 || n_kv <= 0 || hd <= 0) return;
    int group = n_heads / n_kv;
    float scale = (float)(1.0 / sqrt((double)hd));
    size_t kv_head = (size_t)kv_stride * hd; /* floats between consecutive KV heads */
    double work = (double)n_heads * T * (p0 + T) * hd;

    if (T < GEMM_MIN_ROWS) {
        int tasks = n_heads * T;
#pragma omp parallel for schedule(static) if (work >= PAR_MIN_WORK && tasks > 1)
        for (int task = 0; task < tasks; task++) {
            int h = task / T, t = task % T, g = h / group;
            attend_rows(out, q, k + g * kv_head, v + g * kv_head, t, t + 1, p0, h, n_heads, hd, scale);
        }
        return;
    }

    int tiles = (T + TILE_Q - 1) / TILE_Q, tasks = n_heads * tiles;
    size_t s_cap = (size_t)TILE_Q * (size_t)(p0 + T);
#pragma omp parallel if (work >= PAR_MIN_WORK)
    {
        /* Each thread owns one score buffer; OpenBLAS runs single-threaded inside the
         * parallel region, so the threads split heads and tiles among themselves. */
        float *S = malloc(s_cap * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < tasks; task++) {
            int h = task / tiles, tile = task % tiles, g = h / group;
            int t0 = tile * TILE_Q, t1 = t0 + TILE_Q < T ? t0 + TILE_Q : T;
            const float *kg = k + g * kv_head, *vg = v + g * kv_head;
            if (S)
                attend_tile(out, q, kg, vg, S, t0, t1, p0, h, n_heads, hd, scale);
            else
                attend_rows(out, q, kg, vg, t0, t1, p0, h, n_heads, hd, scale);
        }
        free(S);
    }
}

void pb_cpu_attention(float *out, const float *q, const float *k, const float *v, int B, int T, int p0, int n_heads,
                      int n_kv, int hd, int kv_stride, size_t batch_stride) {
    if (B <= 0 || T <= 0 || n_heads <= 0 || n_kv <= 0 || hd <= 0) return;
    size_t qs = (size_t)T * n_heads * hd; /* floats per sequence of q and out */
    if (T < GEMM_MIN_ROWS && B > 1) {
        /* batched decode: every (sequence, head, row) is one task, so that a batch of
         * single-row sequences fills the threads as well as one long sequence does */
        int group = n_heads / n_kv, tasks = B * n_heads * T;
        float scale = (float)(1.0 / sqrt((double)hd));
        size_t kv_head = (size_t)kv_stride * hd;
        double work = (double)B * n_heads * T * (p0 + T) * hd;
#pragma omp parallel for schedule(static) if (work >= PAR_MIN_WORK)
        for (int task = 0; task < tasks; task++) {
            int b = task / (n_heads * T), r = task % (n_heads * T), h = r / T, t = r % T, g = h / group;
            const float *kb = k + (size_t)b * batch_stride + g * kv_head, *vb = v + (size_t)b * batch_stride + g * kv_head;
            attend_rows(out + b * qs, q + b * qs, kb, vb, t, t + 1, p0, h, n_heads, hd, scale);
        }
        return;
    }
    for (int b = 0; b < B; b++)
        attention_seq(out + b * qs, q + b * qs, k + (size_t)b * batch_stride, v + (size_t)b * batch_stride, T, p0,
                      n_heads, n_kv, hd, kv_stride);
}
