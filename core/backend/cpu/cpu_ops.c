/* cpu_ops.c — the fp32 CPU backend: GEMMs through OpenBLAS, element-wise ops with OpenMP.
 *
 * This backend is the numerical reference for every other path, so it stays in fp32 and
 * uses double only where a reduction is cheap compared with the GEMMs around it (RMSNorm's
 * sum of squares, RoPE angles). Attention lives in cpu_attention.c, the backward of every
 * op in cpu_backward.c and cpu_attention_bwd.c. */
#include "cpu_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Below this many elements an OpenMP fork costs more than the loop itself. */
#define PAR_MIN 32768

static void cpu_linear(float *y, const float *x, const void *Wv, const float *b, int n, int in, int out,
                       bool accumulate) {
    const float *W = Wv;
    if (n <= 0 || out <= 0) return;
    float beta = accumulate ? 1.0f : 0.0f;
    if (b) {
        /* Put the bias into y first and let the GEMM accumulate onto it. */
        for (int i = 0; i < n; i++) {
            float *yr = y + (size_t)i * out;
            if (accumulate)
                for (int o = 0; o < out; o++) yr[o] += b[o];
            else
                memcpy(yr, b, (size_t)out * sizeof(float));
        }
        beta = 1.0f;
    }
    if (in <= 0) {
        if (beta == 0.0f) memset(y, 0, (size_t)n * out * sizeof(float));
        return;
    }
    if (n == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, W, in, x, 1, beta, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, W, in, beta, y, out);
}

static void cpu_rmsnorm(float *y, const float *x, const float *w, int n, int d, float eps) {
#pragma omp parallel for schedule(static) if ((int64_t)n * d >= PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        float *yr = y + (size_t)i * d;
        double ss = 0.0;
        for (int j = 0; j < d; j++) ss += (double)xr[j] * xr[j];
        float inv = (float)(1.0 / sqrt(ss / d + (double)eps));
        for (int j = 0; j < d; j++) yr[j] = (xr[j] * inv) * w[j];
    }
}

/* cos/sin are computed once per row and chunk of frequencies, then applied to every head. */
#define ROPE_CHUNK 128

static void cpu_rope(float *x, const int32_t *pos, const float *inv_freq, int n, int heads, int head_dim) {
    int half = head_dim / 2;
#pragma omp parallel for schedule(static) if ((int64_t)n * heads * head_dim >= PAR_MIN)
    for (int i = 0; i < n; i++) {
        float c[ROPE_CHUNK], s[ROPE_CHUNK];
        float *xr = x + (size_t)i * heads * head_dim;
        for (int j0 = 0; j0 < half; j0 += ROPE_CHUNK) {
            int nj = half - j0 < ROPE_CHUNK ? half - j0 : ROPE_CHUNK;
            for (int j = 0; j < nj; j++) {
                double a = (double)pos[i] * (double)inv_freq[j0 + j];
                c[j] = (float)cos(a);
                s[j] = (float)sin(a);
            }
            for (int h = 0; h < heads; h++) {
                float *x1 = xr + (size_t)h * head_dim + j0, *x2 = x1 + half;
                for (int j = 0; j < nj; j++) {
                    float a = x1[j], b = x2[j];
                    x1[j] = a * c[j] - b * s[j];
                    x2[j] = b * c[j] + a * s[j];
                }
            }
        }
    }
}

static void cpu_swiglu(float *h, const float *g, const float *u, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void cpu_add(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static void cpu_scale(float *x, float a, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) x[i] *= a;
}

/* Element i is kept iff the top 24 bits of mix64(key + i) are >= p * 2^24: exact for any p
 * on a 2^-24 grid, and independent of how the loop is split among threads. */
static void cpu_dropout(float *y, const float *x, int64_t n, float p, uint64_t key) {
    uint32_t thresh = (uint32_t)((double)p * 16777216.0);
    float keep = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        y[i] = (uint32_t)(pb_mix64(key + (uint64_t)i) >> 40) >= thresh ? x[i] * keep : 0.0f;
}

static void cpu_embedding(float *x, const void *tablev, const int32_t *tok, int n, int d) {
    const float *table = tablev;
    for (int i = 0; i < n; i++) memcpy(x + (size_t)i * d, table + (size_t)tok[i] * d, (size_t)d * sizeof(float));
}

static void cpu_kv_store(float *kc, float *vc, const float *k, const float *v, int B, int T, int p0, int n_kv, int hd,
                         int kv_stride, size_t batch_stride) {
    size_t row = (size_t)hd * sizeof(float);
    for (int b = 0; b < B; b++)
        for (int g = 0; g < n_kv; g++)
            for (int t = 0; t < T; t++) {
                size_t src = (((size_t)b * T + t) * n_kv + g) * hd;
                size_t dst = (size_t)b * batch_stride + ((size_t)g * kv_stride + p0 + t) * hd;
                memcpy(kc + dst, k + src, row);
                memcpy(vc + dst, v + src, row);
            }
}

static void cpu_token_nll(double *nll, uint8_t *greedy, const float *logits, const int32_t *target, int64_t n,
                          int vocab) {
#pragma omp parallel for schedule(static) if (n * vocab >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        int tg = target[i];
        if (tg < 0) {
            nll[i] = 0.0;
            if (greedy) greedy[i] = 0;
            continue;
        }
        const float *r = logits + i * (int64_t)vocab;
        float mx = r[0];
        for (int v = 1; v < vocab; v++) mx = r[v] > mx ? r[v] : mx;
        double z = 0;
        for (int v = 0; v < vocab; v++) z += exp((double)r[v] - mx);
        nll[i] = (double)mx + log(z) - (double)r[tg];
        if (greedy) {
            /* the first maximum is the target iff nothing beats it and nothing before it ties */
            float xt = r[tg];
            int beat = 0;
            for (int v = 0; v < vocab; v++) beat += r[v] > xt;
            for (int v = 0; v < tg; v++) beat += r[v] == xt;
            greedy[i] = beat == 0;
        }
    }
}

/* ---- memory: the host's own ------------------------------------------------------------ */

static void *cpu_alloc(size_t bytes, pb_err *err) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) pb_err_set(err, "cpu: out of memory for %zu bytes", bytes);
    return p;
}

static void cpu_free(void *p) { free(p); }

static int cpu_copy_in(void *dst, const void *src, size_t bytes, pb_err *err) {
    (void)err;
    if (bytes) memcpy(dst, src, bytes);
    return 0;
}

static int cpu_upload_weights(void *dst, const float *src, size_t n, pb_err *err) {
    return cpu_copy_in(dst, src, n * sizeof(float), err);
}

static void cpu_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height) {
    for (size_t i = 0; i < height; i++) memmove((char *)dst + i * dpitch, (const char *)src + i * spitch, width);
}

static int cpu_sync(pb_err *err) {
    (void)err;
    return 0;
}

static const pb_ops cpu_ops = {
    .name = "cpu",
    .device = false,
    .wtype = PB_DT_F32,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy_in,
    .download = cpu_copy_in,
    .upload_weights = cpu_upload_weights,
    .copy2d = cpu_copy2d,
    .sync = cpu_sync,
    .kv_store = cpu_kv_store,
    .token_nll = cpu_token_nll,
    .linear = cpu_linear,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .attention = pb_cpu_attention,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
    .embedding = cpu_embedding,
    .scale = cpu_scale,
    .dropout = cpu_dropout,
    .linear_bwd = pb_cpu_linear_bwd,
    .rmsnorm_bwd = pb_cpu_rmsnorm_bwd,
    .rope_bwd = pb_cpu_rope_bwd,
    .attention_bwd = pb_cpu_attention_bwd,
    .swiglu_bwd = pb_cpu_swiglu_bwd,
    .embedding_bwd = pb_cpu_embedding_bwd,
    .cross_entropy = pb_cpu_cross_entropy,
};

const pb_ops *pb_ops_cpu(void) { return &cpu_ops; }
