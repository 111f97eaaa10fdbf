/* cuda_attention.cu — causal grouped-query attention on CUDA: the op table's `attention`.
 *
 * Same semantics as cpu_attention.c (ops.h): query row t of sequence b sits at position
 * p0 + t and sees keys 0..p0+t of its KV head (query head h uses KV head h / (n_heads/n_kv));
 * softmax scale 1/sqrt(hd), fp32 softmax with max subtraction. Three paths, chosen per call:
 *  1. decode (T <= PB_ATT_DECODE_MAX_T): one block per (sequence, KV head, some of its query
 *     heads, slice of the keys) runs an online softmax over its keys in fp32 (a block reads
 *     each key row once for all its query rows); when there are too few blocks to fill
 *     the GPU (batch 1) the keys are split across blocks and a second kernel merges the
 *     partial (max, sum, output) triples, as flash-decoding does.
 *  2. scoring (longer T): per (sequence, KV group) S = Q K^T and O = P V are strided-batched
 *     cuBLASLt GEMMs with a fused causal-mask + softmax kernel between them. The query rows of
 *     the group's heads are stacked, so one GEMM serves all heads sharing a KV head: q is
 *     first permuted from (B, T, n_kv, G, hd) to (B, n_kv, T, G, hd) and the result back. Query
 *     rows are tiled so that the fp32 scores stay within PB_ATT_SCORE_BUDGET, and each tile
 *     only computes the keys its last row can see. GEMMs are fp32 (FFMA) for the f32 weight
 *     table, whose results the tests compare with the CPU at ~1e-5; TF32 tensor cores for the
 *     f16/bf16 tables (10-bit mantissa inputs, fp32 accumulation: no worse than converting q
 *     and k to fp16).
 *  3. cuDNN fused SDPA (cuda_sdpa.cu), for the f16/bf16 tables only and when the installed
 *     cuDNN supports the shape (probed once per shape); PB_CUDA_SDPA=0 turns it off.
 * Scratch lives in the PB_CS_ATT_* slots of cuda-core. Errors go to pb_cuda_fail. */
#include "cuda_internal.h"

#include <cuda_runtime.h>
#include <cublasLt.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PB_ATT_DECODE_MAX_T 4                      /* query rows at or below which path 1 runs */
#define PB_ATT_DECODE_MAX_HD 256                   /* head_dim the decode kernel handles */
#define PB_ATT_SCORE_BUDGET ((size_t)256 << 20)    /* bytes of fp32 scores per tile (path 2) */
#define DEC_WARPS 4                                /* warps per decode block */
#define DEC_MIN_KEYS_PER_SPLIT 64                  /* smaller key slices cost more to merge than they save */

/* Defined in cuda_sdpa.cu (C++ linkage on purpose: a signature mismatch fails to link).
 * 0: done; 1: cuDNN cannot take this call (the caller runs its own kernels); -1: a CUDA
 * error, already reported. */
int pb_cuda_sdpa_attention(float *out, const float *q, const float *k, const float *v, int B, int T, int p0,
                           int n_heads, int n_kv, int hd, int kv_stride, size_t batch_stride, pb_dtype wtype);

/* Which path the last call took (1 decode, 2 own GEMMs, 3 cuDNN): the GPU test reads it to
 * know that a forced path really ran. */
static int att_last_path = 0;
extern "C" int pb_cuda_attention_last_path(void) { return att_last_path; }

/* ---- path 1: decode ---------------------------------------------------------------- */

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

/* Block (x: split + splits * b, y: KV head g and chunk of its query heads). Each of its R =
 * nh * T rows (r = head-in-chunk * T + t) is one query; lane owns dims lane + 32 i (i < DPL)
 * of every row, so each key row is read by one warp with coalesced loads and dotted with all
 * R queries. Warps take keys round-robin, each keeping (max, sum, output) per row; the block
 * merges its warps through shared memory, then writes the normalised row (one split) or the
 * unnormalised partial triple (several splits, merged by att_decode_combine). */
template <int DPL, int RMAX>
__global__ void __launch_bounds__(DEC_WARPS * 32)
att_decode_kernel(float *out, float *part, const float *q, const float *k, const float *v, int T, int p0, int H,
                  int n_kv, int hd, int kv_stride, size_t batch_stride, int heads_per_block, int keys_per_split,
                  int splits, float scale) {
    extern __shared__ float sm[];
    const int G = H / n_kv, chunks = (G + heads_per_block - 1) / heads_per_block;
    const int split = (int)(blockIdx.x % (unsigned)splits), b = (int)(blockIdx.x / (unsigned)splits);
    const int g = (int)blockIdx.y / chunks, chunk = (int)blockIdx.y % chunks;
    const int h0 = g * G + chunk * heads_per_block;
    const int nh = min(heads_per_block, g * G + G - h0), R = nh * T;
    const int Tk = p0 + T, j0 = split * keys_per_split, j1 = min(Tk, j0 + keys_per_split);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const size_t kv_off = (size_t)b * batch_stride + (size_t)g * kv_stride * hd;
    const float *kg = k + kv_off, *vg = v + kv_off;

    float qr[RMAX][DPL], o[RMAX][DPL], m[RMAX], l[RMAX];
#pragma unroll
    for (int r = 0; r < RMAX; r++) {
        const float *row = r < R ? q + (((size_t)b * T + r % T) * H + h0 + r / T) * hd : q;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = i * 32 + lane;
            qr[r][i] = (r < R && d < hd) ? row[d] : 0.0f;
            o[r][i] = 0.0f;
        }
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }

    for (int j = j0 + warp; j < j1; j += DEC_WARPS) {
        float kf[DPL], vf[DPL];
        const float *kr = kg + (size_t)j * hd, *vr = vg + (size_t)j * hd;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = i * 32 + lane;
            kf[i] = d < hd ? kr[d] : 0.0f;
            vf[i] = d < hd ? vr[d] : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < RMAX; r++) {
            /* warp-uniform: j and r are the same on every lane, so the shuffles are safe */
            if (r >= R || j > p0 + r % T) continue; /* causal: row t sees keys 0..p0+t */
            float dot = 0.0f;
#pragma unroll
            for (int i = 0; i < DPL; i++) dot += qr[r][i] * kf[i];
            const float s = warp_sum(dot) * scale;
            if (s > m[r]) { /* new maximum: rescale what was accumulated against the old one */
                const float c = expf(m[r] - s);
                l[r] *= c;
#pragma unroll
                for (int i = 0; i < DPL; i++) o[r][i] *= c;
                m[r] = s;
            }
            const float p = expf(s - m[r]);
            l[r] += p;
#pragma unroll
            for (int i = 0; i < DPL; i++) o[r][i] += p * vf[i];
        }
    }

    /* merge the warps: sm = [DEC_WARPS][RMAX] maxima, then sums, then [DEC_WARPS][RMAX][hd] outputs */
    float *sm_m = sm, *sm_l = sm + DEC_WARPS * RMAX, *sm_o = sm + 2 * DEC_WARPS * RMAX;
#pragma unroll
    for (int r = 0; r < RMAX; r++) {
        if (r >= R) continue;
        if (lane == 0) {
            sm_m[warp * RMAX + r] = m[r];
            sm_l[warp * RMAX + r] = l[r];
        }
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = i * 32 + lane;
            if (d < hd) sm_o[(size_t)(warp * RMAX + r) * hd + d] = o[r][i];
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < R * hd; idx += blockDim.x) {
        const int r = idx / hd, d = idx % hd, t = r % T, h = h0 + r / T;
        float M = -INFINITY;
        for (int w = 0; w < DEC_WARPS; w++) M = fmaxf(M, sm_m[w * RMAX + r]);
        float L = 0.0f, O = 0.0f;
        if (M != -INFINITY) /* else no key of this slice is visible to the row: (-inf, 0, 0) */
            for (int w = 0; w < DEC_WARPS; w++) {
                const float mw = sm_m[w * RMAX + r];
                if (mw == -INFINITY) continue; /* an idle warp: exp(-inf - M) is 0 anyway */
                const float c = expf(mw - M);
                L += sm_l[w * RMAX + r] * c;
                O += sm_o[(size_t)(w * RMAX + r) * hd + d] * c;
            }
        if (splits == 1) {
            out[(((size_t)b * T + t) * H + h) * hd + d] = O / L; /* key 0 is always visible: L > 0 */
        } else {
            float *pp = part + ((((size_t)b * H + h) * T + t) * splits + split) * (size_t)(hd + 2);
            pp[d] = O;
            if (d == 0) {
                pp[hd] = M;
                pp[hd + 1] = L;
            }
        }
    }
}

/* One block per query row (b, h, t): merges the splits' (output, max, sum) triples. */
__global__ void att_decode_combine(float *out, const float *part, int T, int H, int hd, int splits) {
    const size_t row = blockIdx.x; /* = (b * H + h) * T + t */
    const size_t t = row % T, h = (row / T) % H, b = row / ((size_t)T * H);
    const float *pr = part + row * splits * (size_t)(hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < splits; s++) M = fmaxf(M, pr[(size_t)s * (hd + 2) + hd]);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float L = 0.0f, O = 0.0f;
        for (int s = 0; s < splits; s++) {
            const float *ps = pr + (size_t)s * (hd + 2);
            if (ps[hd] == -INFINITY) continue; /* a slice beyond this row's causal limit */
            const float c = expf(ps[hd] - M);
            L += ps[hd + 1] * c;
            O += ps[d] * c;
        }
        out[((b * T + t) * H + h) * hd + d] = O / L;
    }
}

template <int DPL, int RMAX>
static bool decode_launch(dim3 grid, size_t smem, cudaStream_t st, float *out, float *part, const float *q,
                          const float *k, const float *v, int T, int p0, int H, int n_kv, int hd, int kv_stride,
                          size_t batch_stride, int hpb, int kps, int splits, float scale) {
    att_decode_kernel<DPL, RMAX><<<grid, DEC_WARPS * 32, smem, st>>>(out, part, q, k, v, T, p0, H, n_kv, hd, kv_stride,
                                                                     batch_stride, hpb, kps, splits, scale);
    return PB_CU_LAUNCH();
}

static void att_decode(const pb_cuda_ctx *ctx, float *out, const float *q, const float *k, const float *v, int B,
                       int T, int p0, int H, int n_kv, int hd, int kv_stride, size_t batch_stride) {
    /* DPL dims per lane; RMAX rows per block, so that the per-thread q and o arrays stay
     * within 2 * 32 registers */
    const int dpl = hd <= 32 ? 1 : hd <= 64 ? 2 : hd <= 128 ? 4 : 8;
    const int rmax = dpl <= 2 ? 16 : dpl == 4 ? 8 : 4;
    const int G = H / n_kv, hpb = G < rmax / T ? G : (rmax / T > 0 ? rmax / T : 1);
    const int chunks = (G + hpb - 1) / hpb, Tk = p0 + T;
    const float scale = (float)(1.0 / sqrt((double)hd));

    /* enough blocks for two waves; more slices only when each keeps DEC_MIN_KEYS_PER_SPLIT keys */
    const int64_t blocks = (int64_t)B * n_kv * chunks;
    const int64_t target = 2 * (int64_t)(ctx->sm_count > 0 ? ctx->sm_count : 100);
    int64_t splits = 1;
    if (blocks < target) {
        int64_t want = (target + blocks - 1) / blocks, cap = (Tk + DEC_MIN_KEYS_PER_SPLIT - 1) / DEC_MIN_KEYS_PER_SPLIT;
        splits = want < cap ? want : cap;
        if (splits < 1) splits = 1;
    }
    const int kps = (int)((Tk + splits - 1) / splits);
    splits = (Tk + kps - 1) / kps; /* no empty trailing slice */

    if ((int64_t)B * splits > INT32_MAX || (int64_t)n_kv * chunks > 65535 || (int64_t)B * H * T > INT32_MAX) {
        char why[160];
        snprintf(why, sizeof why, "decode grid too large (B %d, n_heads %d, T %d, %lld key slices)", B, H, T,
                 (long long)splits);
        pb_cuda_fail(__FILE__, __LINE__, "attention", why);
        return;
    }
    float *part = nullptr;
    if (splits > 1) {
        size_t bytes = (size_t)B * H * T * (size_t)splits * (size_t)(hd + 2) * sizeof(float);
        part = (float *)pb_cuda_scratch(PB_CS_ATT_0, bytes);
        if (!part) {
            pb_cuda_fail(__FILE__, __LINE__, "attention", "cannot allocate the decode partials");
            return;
        }
    }
    dim3 grid((unsigned)(B * splits), (unsigned)(n_kv * chunks), 1);
    size_t smem = (size_t)DEC_WARPS * rmax * (hd + 2) * sizeof(float);
    bool bad;
    switch (dpl) {
    case 1: bad = decode_launch<1, 16>(grid, smem, ctx->stream, out, part, q, k, v, T, p0, H, n_kv, hd, kv_stride,
                                       batch_stride, hpb, kps, (int)splits, scale); break;
    case 2: bad = decode_launch<2, 16>(grid, smem, ctx->stream, out, part, q, k, v, T, p0, H, n_kv, hd, kv_stride,
                                       batch_stride, hpb, kps, (int)splits, scale); break;
    case 4: bad = decode_launch<4, 8>(grid, smem, ctx->stream, out, part, q, k, v, T, p0, H, n_kv, hd, kv_stride,
                                      batch_stride, hpb, kps, (int)splits, scale); break;
    default: bad = decode_launch<8, 4>(grid, smem, ctx->stream, out, part, q, k, v, T, p0, H, n_kv, hd, kv_stride,
                                       batch_stride, hpb, kps, (int)splits, scale); break;
    }
    if (bad || splits == 1) return;
    att_decode_combine<<<(unsigned)((int64_t)B * H * T), 128, 0, ctx->stream>>>(out, part, T, H, hd, (int)splits);
    PB_CU_LAUNCH();
}

/* ---- path 2: GEMMs + fused causal softmax ------------------------------------------ */

/* dst (n0, a2, a1, c) = src (n0, a1, a2, c) with the middle axes swapped */
__global__ void att_swap12(float *dst, const float *src, int64_t n0, int64_t a1, int64_t a2, int64_t c) {
    const int64_t n = n0 * a1 * a2 * c;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t e = i % c, r = i / c;
        const int64_t x2 = r % a2;
        r /= a2;
        const int64_t x1 = r % a1, x0 = r / a1;
        dst[((x0 * a2 + x2) * a1 + x1) * c + e] = src[i];
    }
}

template <bool MAX>
__device__ float block_reduce(float x, float *red) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float y = __shfl_xor_sync(0xffffffffu, x, o);
        x = MAX ? fmaxf(x, y) : x + y;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads(); /* red is reused between calls */
    if (lane == 0) red[warp] = x;
    __syncthreads();
    x = red[0];
    for (int w = 1; w < nw; w++) x = MAX ? fmaxf(x, red[w]) : x + red[w];
    return x;
}

/* One block per score row of a tile: rows (b, g, t - t0, j) with ncols = p0 + t1 keys. Row t
 * keeps keys 0..p0+t (softmax in fp32 with max subtraction, as the CPU does); the masked
 * rest of the row is set to exactly 0, so that P V adds nothing for them. */
__global__ void att_causal_softmax(float *S, int rows_per_batch, int G, int t0, int p0, int ncols) {
    __shared__ float red[32];
    const size_t row = blockIdx.x;
    const int t = t0 + (int)(row % rows_per_batch) / G, valid = p0 + t + 1;
    float *s = S + row * ncols;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < valid; j += blockDim.x) mx = fmaxf(mx, s[j]);
    mx = block_reduce<true>(mx, red);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < valid; j += blockDim.x) {
        const float e = expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    sum = block_reduce<false>(sum, red);
    const float inv = 1.0f / sum;
    for (int j = threadIdx.x; j < ncols; j += blockDim.x) s[j] = j < valid ? s[j] * inv : 0.0f;
}

/* Largest power of two (<= 256) dividing the address and the byte strides: what cuBLASLt may
 * assume about the alignment of every matrix of the batch. */
static uint32_t lt_align(const void *p, int64_t ld, int64_t stride) {
    uint64_t x = (uint64_t)(uintptr_t)p | (uint64_t)ld * sizeof(float) | (uint64_t)stride * sizeof(float) | 256u;
    return (uint32_t)(x & (~x + 1));
}

struct lt_objects { /* destroyed on every exit path */
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    ~lt_objects() {
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
        if (c) cublasLtMatrixLayoutDestroy(c);
        if (b) cublasLtMatrixLayoutDestroy(b);
        if (a) cublasLtMatrixLayoutDestroy(a);
        if (op) cublasLtMatmulDescDestroy(op);
    }
};

static bool lt_layout(cublasLtMatrixLayout_t *l, uint64_t rows, uint64_t cols, int64_t ld, int batch, int64_t stride) {
    if (PB_CUBLAS(cublasLtMatrixLayoutCreate(l, CUDA_R_32F, rows, cols, ld))) return true;
    if (batch <= 1) return false;
    int32_t n = batch;
    return PB_CUBLAS(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &n, sizeof n)) ||
           PB_CUBLAS(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                      sizeof stride));
}

/* Column-major, batched: C (m, n) = op(A) (m, k) * B (k, n), fp32 in and out; A is stored
 * (k, m) when transA, else (m, k); B is stored (k, n). True on failure (reported). */
static bool lt_gemm(const pb_cuda_ctx *ctx, cublasComputeType_t ct, bool transA, uint64_t m, uint64_t n, uint64_t k,
                    float alpha, const float *A, int64_t lda, int64_t sA, const float *Bm, int64_t ldb, int64_t sB,
                    float *C, int64_t ldc, int64_t sC, int batch) {
    lt_objects o;
    const cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N, opB = CUBLAS_OP_N;
    if (PB_CUBLAS(cublasLtMatmulDescCreate(&o.op, ct, CUDA_R_32F)) ||
        PB_CUBLAS(cublasLtMatmulDescSetAttribute(o.op, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA)) ||
        PB_CUBLAS(cublasLtMatmulDescSetAttribute(o.op, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB)))
        return true;
    if (lt_layout(&o.a, transA ? k : m, transA ? m : k, lda, batch, sA) || lt_layout(&o.b, k, n, ldb, batch, sB) ||
        lt_layout(&o.c, m, n, ldc, batch, sC))
        return true;
    const uint64_t ws = ctx->lt_workspace ? (uint64_t)ctx->lt_workspace_bytes : 0;
    const uint32_t al_a = lt_align(A, lda, sA), al_b = lt_align(Bm, ldb, sB), al_c = lt_align(C, ldc, sC);
    if (PB_CUBLAS(cublasLtMatmulPreferenceCreate(&o.pref)) ||
        PB_CUBLAS(cublasLtMatmulPreferenceSetAttribute(o.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                       sizeof ws)) ||
        PB_CUBLAS(cublasLtMatmulPreferenceSetAttribute(o.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a,
                                                       sizeof al_a)) ||
        PB_CUBLAS(cublasLtMatmulPreferenceSetAttribute(o.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b,
                                                       sizeof al_b)) ||
        PB_CUBLAS(cublasLtMatmulPreferenceSetAttribute(o.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c,
                                                       sizeof al_c)) ||
        PB_CUBLAS(cublasLtMatmulPreferenceSetAttribute(o.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c,
                                                       sizeof al_c)))
        return true;
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (PB_CUBLAS(cublasLtMatmulAlgoGetHeuristic(ctx->lt, o.op, o.a, o.b, o.c, o.c, o.pref, 1, &res, &found)))
        return true;
    if (found < 1) {
        char why[160];
        snprintf(why, sizeof why, "no cuBLASLt algorithm for the attention GEMM (m %llu, n %llu, k %llu, batch %d)",
                 (unsigned long long)m, (unsigned long long)n, (unsigned long long)k, batch);
        pb_cuda_fail(__FILE__, __LINE__, "cublasLtMatmulAlgoGetHeuristic", why);
        return true;
    }
    const float beta = 0.0f;
    return PB_CUBLAS(cublasLtMatmul(ctx->lt, o.op, &alpha, A, o.a, Bm, o.b, &beta, C, o.c, C, o.c, &res.algo,
                                    ctx->lt_workspace, ws, ctx->stream));
}

/* PB_ATT_SCORE_BUDGET, or PB_CUDA_ATT_SCORE_BYTES when set (a test hook: a tiny budget makes
 * the GPU test exercise the row tiling and batch chunking on small shapes) */
static size_t score_budget(void) {
    const char *e = getenv("PB_CUDA_ATT_SCORE_BYTES");
    if (e && *e) {
        char *end;
        unsigned long long b = strtoull(e, &end, 10);
        if (*end == '\0' && b > 0) return (size_t)b;
    }
    return PB_ATT_SCORE_BUDGET;
}

static void att_scoring(const pb_cuda_ctx *ctx, bool tf32, float *out, const float *q, const float *k, const float *v,
                        int B, int T, int p0, int H, int n_kv, int hd, int kv_stride, size_t batch_stride) {
    const int G = H / n_kv, Tk = p0 + T;
    const float scale = (float)(1.0 / sqrt((double)hd));
    const cublasComputeType_t ct = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const size_t nq = (size_t)B * T * H * hd;

    /* query rows per tile: (sequences per chunk) * H * (rows of T per tile) scores rows of Tk */
    const size_t budget_rows = score_budget() / ((size_t)Tk * sizeof(float));
    const size_t rows_fit = budget_rows > 0 ? budget_rows : 1;
    int nb, nt;
    if ((size_t)B * H <= rows_fit) {
        nb = B;
        size_t fit = rows_fit / ((size_t)B * H);
        nt = fit < (size_t)T ? (int)fit : T;
    } else { /* even one row per head of every sequence is over budget: chunk the batch too */
        nt = 1;
        size_t fit = rows_fit / (size_t)H;
        nb = fit < 1 ? 1 : (fit < (size_t)B ? (int)fit : B);
    }
    const size_t s_floats = (size_t)nb * H * nt * (size_t)Tk;
    if ((size_t)nb * H * nt > INT32_MAX) { /* one block per score row */
        pb_cuda_fail(__FILE__, __LINE__, "attention", "score tile has too many rows");
        return;
    }

    float *Qr = (float *)pb_cuda_scratch(PB_CS_ATT_0, nq * sizeof(float));
    float *S = (float *)pb_cuda_scratch(PB_CS_ATT_1, s_floats * sizeof(float));
    float *Or = (float *)pb_cuda_scratch(PB_CS_ATT_2, nq * sizeof(float));
    if (!Qr || !S || !Or) {
        char why[160];
        snprintf(why, sizeof why, "cannot allocate attention scratch (%zu + %zu bytes)", 2 * nq * sizeof(float),
                 s_floats * sizeof(float));
        pb_cuda_fail(__FILE__, __LINE__, "attention", why);
        return;
    }
    /* q (B, T, n_kv, G*hd) -> Qr (B, n_kv, T, G*hd): the G heads sharing a KV head become one
     * stack of T*G rows (t, j), so that one GEMM serves the whole group */
    att_swap12<<<pb_cuda_blocks((int64_t)nq, 256), 256, 0, ctx->stream>>>(Qr, q, B, T, n_kv, (int64_t)G * hd);
    if (PB_CU_LAUNCH()) return;

    /* One strided batch over (b, g) needs K and V of consecutive sequences one n_kv * kv_stride *
     * hd block apart (the KV cache's layout); otherwise one batch of n_kv per sequence. */
    const size_t head_floats = (size_t)kv_stride * hd;
    const bool uniform = B == 1 || batch_stride == (size_t)n_kv * head_floats;
    const int64_t qg_stride = (int64_t)T * G * hd; /* floats between (b, g) stacks in Qr / Or */
    for (int b0 = 0; b0 < B; b0 += nb) {
        const int nbc = B - b0 < nb ? B - b0 : nb;
        for (int t0 = 0; t0 < T; t0 += nt) {
            const int t1 = T - t0 < nt ? T : t0 + nt;
            const int M = (t1 - t0) * G, N = p0 + t1; /* the tile's last row sees N keys */
            const int launches = uniform ? 1 : nbc, batch = uniform ? nbc * n_kv : n_kv;
            for (int u = 0; u < launches; u++) {
                const size_t bb = (size_t)b0 + u;
                const float *Kb = k + bb * batch_stride;
                const float *Qb = Qr + (bb * n_kv * qg_stride) + (size_t)t0 * G * hd;
                float *Sb = S + (size_t)u * n_kv * M * (size_t)N;
                /* S (M, N) row-major = Q K^T, i.e. column-major S^T (N, M) = K (N, hd) * Q^T (hd, M) */
                if (lt_gemm(ctx, ct, true, N, M, hd, scale, Kb, hd, (int64_t)head_floats, Qb, hd, qg_stride, Sb, N,
                            (int64_t)M * N, batch))
                    return;
            }
            const int64_t rows = (int64_t)nbc * n_kv * M;
            att_causal_softmax<<<(unsigned)rows, 256, 0, ctx->stream>>>(S, M, G, t0, p0, N);
            if (PB_CU_LAUNCH()) return;
            for (int u = 0; u < launches; u++) {
                const size_t bb = (size_t)b0 + u;
                const float *Vb = v + bb * batch_stride;
                const float *Sb = S + (size_t)u * n_kv * M * (size_t)N;
                float *Ob = Or + (bb * n_kv * qg_stride) + (size_t)t0 * G * hd;
                /* O (M, hd) row-major = P V, i.e. column-major O^T (hd, M) = V^T (hd, N) * P^T (N, M) */
                if (lt_gemm(ctx, ct, false, hd, M, N, 1.0f, Vb, hd, (int64_t)head_floats, Sb, N, (int64_t)M * N, Ob,
                            hd, qg_stride, batch))
                    return;
            }
        }
    }
    /* Or (B, n_kv, T, G*hd) -> out (B, T, n_kv, G*hd) = (B, T, n_heads, hd) */
    att_swap12<<<pb_cuda_blocks((int64_t)nq, 256), 256, 0, ctx->stream>>>(out, Or, B, n_kv, T, (int64_t)G * hd);
    PB_CU_LAUNCH();
}

/* ---- entry -------------------------------------------------------------------------- */

static bool sdpa_enabled(void) {
    const char *e = getenv("PB_CUDA_SDPA");
    return !(e && e[0] == '0' && e[1] == '\0');
}

/* The attention op for a table of weight type wtype (f32: only the fp32 paths). */
extern "C" void pb_cuda_attention_wt(float *out, const float *q, const float *k, const float *v, int B, int T, int p0,
                                     int n_heads, int n_kv, int hd, int kv_stride, size_t batch_stride,
                                     pb_dtype wtype) {
    if (B <= 0 || T <= 0 || n_heads <= 0 || n_kv <= 0 || hd <= 0) return; /* nothing to attend, as on the CPU */
    char why[200];
    why[0] = '\0';
    if (n_heads % n_kv != 0)
        snprintf(why, sizeof why, "n_heads %d is not a multiple of n_kv %d", n_heads, n_kv);
    else if (p0 < 0 || (int64_t)p0 + T > kv_stride)
        snprintf(why, sizeof why, "positions %d..%lld do not fit kv_stride %d", p0, (long long)p0 + T - 1, kv_stride);
    else if (B > 1 && batch_stride < (size_t)n_kv * kv_stride * hd)
        snprintf(why, sizeof why, "batch_stride %zu is below one sequence's keys (%zu floats)", batch_stride,
                 (size_t)n_kv * kv_stride * hd);
    else if (n_heads > 65535)
        snprintf(why, sizeof why, "n_heads %d exceeds 65535", n_heads);
    if (why[0]) {
        pb_cuda_fail(__FILE__, __LINE__, "attention", why);
        return;
    }
    const pb_cuda_ctx *ctx = pb_cuda_ctx_get();
    if (!ctx) {
        pb_cuda_fail(__FILE__, __LINE__, "attention", "no CUDA context");
        return;
    }
    if (T <= PB_ATT_DECODE_MAX_T && hd <= PB_ATT_DECODE_MAX_HD) {
        att_last_path = 1;
        att_decode(ctx, out, q, k, v, B, T, p0, n_heads, n_kv, hd, kv_stride, batch_stride);
        return;
    }
    /* half-precision attention only where the table is itself half precision: the f32 table's
     * results are compared with the CPU's at fp32 tolerance */
    if (wtype != PB_DT_F32 && sdpa_enabled()) {
        int r = pb_cuda_sdpa_attention(out, q, k, v, B, T, p0, n_heads, n_kv, hd, kv_stride, batch_stride, wtype);
        if (r <= 0) {
            att_last_path = 3;
            return; /* done, or a CUDA error already reported */
        }
    }
    att_last_path = 2;
    att_scoring(ctx, wtype != PB_DT_F32, out, q, k, v, B, T, p0, n_heads, n_kv, hd, kv_stride, batch_stride);
}

/* The f16 and bf16 tables' entries (the f32 table's is pb_cuda_attention). */
extern "C" void pb_cuda_attention_f16(float *out, const float *q, const float *k, const float *v, int B, int T, int p0,
                                      int n_heads, int n_kv, int hd, int kv_stride, size_t batch_stride) {
    pb_cuda_attention_wt(out, q, k, v, B, T, p0, n_heads, n_kv, hd, kv_stride, batch_stride, PB_DT_F16);
}

extern "C" void pb_cuda_attention_bf16(float *out, const float *q, const float *k, const float *v, int B, int T, int p0,
                                       int n_heads, int n_kv, int hd, int kv_stride, size_t batch_stride) {
    pb_cuda_attention_wt(out, q, k, v, B, T, p0, n_heads, n_kv, hd, kv_stride, batch_stride, PB_DT_BF16);
}

/* The f32 table's entry: only the fp32 paths. */
extern "C" void pb_cuda_attention(float *out, const float *q, const float *k, const float *v, int B, int T, int p0,
                                  int n_heads, int n_kv, int hd, int kv_stride, size_t batch_stride) {
    pb_cuda_attention_wt(out, q, k, v, B, T, p0, n_heads, n_kv, hd, kv_stride, batch_stride, PB_DT_F32);
}
