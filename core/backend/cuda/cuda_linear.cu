/* cuda_linear.cu — linear layers y (n, out) = x (n, in) @ W^T [+ b]: cuBLASLt GEMMs, and a
 * GEMV kernel for decode-sized n.
 *
 * The GEMM: W (out, in) row-major is column-major (in, out), so with op(A) = A^T it is the
 * (out, in) operand; x (n, in) row-major is column-major (in, n); y (n, out) row-major is
 * column-major (out, n) = op(A) @ B. Weights in f16/bf16 need x in the same type, so x is
 * rounded into backend scratch first; accumulation and y stay fp32 (CUBLAS_COMPUTE_32F).
 * f32 weights use plain fp32 compute, never TF32: that table is the exact one the agreement
 * tests hold against the CPU. A bias is put into y before the GEMM, which then accumulates
 * onto it (beta = 1), as the CPU backend does.
 *
 * The GEMV (n <= 8, f16/bf16 weights, PB_CUDA_GEMV=0 turns it off): decode reads every weight
 * once per token, so its time is the weight bytes over memory bandwidth. One warp per output
 * row streams the row with 16-byte loads, several in flight per lane, reads x in fp32 (no
 * rounding, no conversion launch) and keeps all n rows' sums in registers. */
#include "cuda_internal.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <mutex>

/* ---- bias / fill ------------------------------------------------------------------------------ */

__global__ void bias_rows_kernel(float *y, const float *b, int n, int out, bool accumulate) {
    int64_t total = (int64_t)n * out;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        float v = b ? b[i % out] : 0.0f;
        y[i] = accumulate ? y[i] + v : v;
    }
}

void pb_cuda_bias_rows(float *y, const float *b, int n, int out, bool accumulate) {
    if (n <= 0 || out <= 0 || (accumulate && !b)) return;
    bias_rows_kernel<<<pb_cuda_blocks((int64_t)n * out, 256), 256, 0, pb_cuda_stream()>>>(y, b, n, out, accumulate);
    PB_CU_LAUNCH("bias_rows_kernel");
}

/* ---- GEMV ------------------------------------------------------------------------------------- */

#define GEMV_WARPS 8   /* warps (output rows at a time) per block */
#define GEMV_UNROLL 4  /* 16-byte loads of W each lane has in flight */

/* 16 bytes of W as fp32 */
template <typename T> __device__ __forceinline__ void unpack16(const uint4 &r, float *f);
template <> __device__ __forceinline__ void unpack16<float>(const uint4 &r, float *f) {
    f[0] = __uint_as_float(r.x);
    f[1] = __uint_as_float(r.y);
    f[2] = __uint_as_float(r.z);
    f[3] = __uint_as_float(r.w);
}
template <> __device__ __forceinline__ void unpack16<__half>(const uint4 &r, float *f) {
    const __half2 *h = reinterpret_cast<const __half2 *>(&r);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 t = __half22float2(h[k]);
        f[2 * k] = t.x;
        f[2 * k + 1] = t.y;
    }
}
template <> __device__ __forceinline__ void unpack16<__nv_bfloat16>(const uint4 &r, float *f) {
    const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&r);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 t = __bfloat1622float2(h[k]);
        f[2 * k] = t.x;
        f[2 * k + 1] = t.y;
    }
}

template <typename T> __device__ __forceinline__ float elem_f32(T v);
template <> __device__ __forceinline__ float elem_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float elem_f32<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float elem_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

/* y[r, o] (=|+=) sum_k W[o, k] x[r, k] (+ b[o]) for r < NB. vec: rows of W and x are
 * 16-byte aligned (in is a multiple of 16 / sizeof(T) and both bases aligned); otherwise
 * one element per lane per step. Every lane of a warp has the same o, so the shuffles are
 * warp-uniform. */
template <typename T, int NB>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    gemv_kernel(float *y, const float *__restrict__ x, const T *__restrict__ W, const float *__restrict__ b, int in,
                int out, bool accumulate, bool vec) {
    constexpr int VW = 16 / (int)sizeof(T); /* elements per 16-byte load */
    const int lane = threadIdx.x & 31;
    for (int64_t o = (int64_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5); o < out;
         o += (int64_t)gridDim.x * GEMV_WARPS) {
        const T *w = W + o * in;
        float acc[NB];
#pragma unroll
        for (int r = 0; r < NB; r++) acc[r] = 0.0f;
        if (vec) {
            const uint4 *w4 = reinterpret_cast<const uint4 *>(w);
            const int nv = in / VW;
            for (int c0 = lane; c0 < nv; c0 += 32 * GEMV_UNROLL) {
                uint4 raw[GEMV_UNROLL];
#pragma unroll
                for (int u = 0; u < GEMV_UNROLL; u++) {
                    int c = c0 + u * 32;
                    raw[u] = c < nv ? __ldg(w4 + c) : make_uint4(0u, 0u, 0u, 0u);
                }
#pragma unroll
                for (int u = 0; u < GEMV_UNROLL; u++) {
                    int c = c0 + u * 32;
                    if (c >= nv) break;
                    float wf[VW];
                    unpack16<T>(raw[u], wf);
#pragma unroll
                    for (int r = 0; r < NB; r++) {
                        const float4 *xr = reinterpret_cast<const float4 *>(x + (size_t)r * in + (size_t)c * VW);
#pragma unroll
                        for (int q = 0; q < VW / 4; q++) {
                            float4 xv = __ldg(xr + q);
                            acc[r] = fmaf(wf[4 * q], xv.x, acc[r]);
                            acc[r] = fmaf(wf[4 * q + 1], xv.y, acc[r]);
                            acc[r] = fmaf(wf[4 * q + 2], xv.z, acc[r]);
                            acc[r] = fmaf(wf[4 * q + 3], xv.w, acc[r]);
                        }
                    }
                }
            }
        } else {
            for (int k = lane; k < in; k += 32) {
                float wk = elem_f32<T>(w[k]);
#pragma unroll
                for (int r = 0; r < NB; r++) acc[r] = fmaf(wk, __ldg(x + (size_t)r * in + k), acc[r]);
            }
        }
#pragma unroll
        for (int r = 0; r < NB; r++)
            for (int s = 16; s > 0; s >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], s);
        if (lane == 0) {
            float bo = b ? b[o] : 0.0f;
#pragma unroll
            for (int r = 0; r < NB; r++) {
                float *yo = y + (size_t)r * out + o;
                float v = acc[r] + bo;
                *yo = accumulate ? *yo + v : v;
            }
        }
    }
}

static inline bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* Any n: groups of up to 8 rows of x, one launch each. */
template <typename T>
static void gemv(float *y, const float *x, const T *W, const float *b, int n, int in, int out, bool accumulate) {
    constexpr int VW = 16 / (int)sizeof(T);
    unsigned blocks = (unsigned)((out + GEMV_WARPS - 1) / GEMV_WARPS);
    cudaStream_t s = pb_cuda_stream();
    for (int r0 = 0; r0 < n; r0 += 8) {
        int nb = n - r0 < 8 ? n - r0 : 8;
        float *yr = y + (size_t)r0 * out;
        const float *xr = x + (size_t)r0 * in;
        bool vec = in % VW == 0 && aligned16(W) && aligned16(xr);
        dim3 g(blocks), t(GEMV_WARPS * 32);
        switch (nb) {
        case 1: gemv_kernel<T, 1><<<g, t, 0, s>>>(yr, xr, W, b, in, out, accumulate, vec); break;
        case 2: gemv_kernel<T, 2><<<g, t, 0, s>>>(yr, xr, W, b, in, out, accumulate, vec); break;
        case 3: gemv_kernel<T, 3><<<g, t, 0, s>>>(yr, xr, W, b, in, out, accumulate, vec); break;
        case 4: gemv_kernel<T, 4><<<g, t, 0, s>>>(yr, xr, W, b, in, out, accumulate, vec); break;
        case 5: gemv_kernel<T, 5><<<g, t, 0, s>>>(yr, xr, W, b, in, out, accumulate, vec); break;
        case 6: gemv_kernel<T, 6><<<g, t, 0, s>>>(yr, xr, W, b, in, out, accumulate, vec); break;
        case 7: gemv_kernel<T, 7><<<g, t, 0, s>>>(yr, xr, W, b, in, out, accumulate, vec); break;
        default: gemv_kernel<T, 8><<<g, t, 0, s>>>(yr, xr, W, b, in, out, accumulate, vec); break;
        }
        if (PB_CU_LAUNCH("gemv_kernel")) return;
    }
}

/* ---- cuBLASLt plans ------------------------------------------------------------------------------ */

/* Descriptors, layouts and the heuristic's algorithm for one GEMM shape, pointer alignment
 * and beta, cached because the heuristic query costs more than a small GEMM. A forward pass
 * has a handful of shapes (q, k/v, o, gate/up, down, head, times the n in use); the table
 * is replaced round-robin when full. */
#define PLAN_CAP 64

struct lt_plan {
    bool used, has_algo;
    int wt, n, in, out;
    bool beta1;
    uint32_t align_a, align_b, align_c;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
};

static lt_plan g_plans[PLAN_CAP];
static int g_plan_next;
static std::mutex g_plan_mu;

static void plan_destroy(lt_plan *p) {
    if (p->lc) (void)cublasLtMatrixLayoutDestroy(p->lc);
    if (p->lb) (void)cublasLtMatrixLayoutDestroy(p->lb);
    if (p->la) (void)cublasLtMatrixLayoutDestroy(p->la);
    if (p->op) (void)cublasLtMatmulDescDestroy(p->op);
    memset(p, 0, sizeof *p);
}

void pb_cuda_linear_release(void) {
    std::lock_guard<std::mutex> lock(g_plan_mu);
    for (int i = 0; i < PLAN_CAP; i++)
        if (g_plans[i].used) plan_destroy(&g_plans[i]);
}

/* The largest power of two up to 256 dividing the address: cuBLASLt's default assumes 256,
 * which a tensor at an offset inside the model's one allocation need not have. */
static uint32_t align_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    if (a == 0) return 256;
    uintptr_t low = a & (~a + 1);
    return low >= 256 ? 256u : (uint32_t)low;
}

/* Fills p for its key; false after recording a failure (p left empty). has_algo is false
 * when cuBLASLt offers no algorithm for the case, which is not a failure: the caller runs
 * the GEMV kernel instead. */
static bool plan_make(lt_plan *p) {
    pb_cuda_ctx *c = pb_cuda_ctx_get();
    cudaDataType_t ab = p->wt == PB_DT_F32 ? CUDA_R_32F : p->wt == PB_DT_F16 ? CUDA_R_16F : CUDA_R_16BF;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulPreference_t pref = NULL;
    uint64_t ws = c->lt_workspace_bytes;
    cublasLtMatmulHeuristicResult_t res;
    int got = 0;
    cublasStatus_t hs;
    if (PB_CUBLAS(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F)) ||
        PB_CUBLAS(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta)) ||
        PB_CUBLAS(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb)) ||
        PB_CUBLAS(cublasLtMatrixLayoutCreate(&p->la, ab, (uint64_t)p->in, (uint64_t)p->out, p->in)) ||
        PB_CUBLAS(cublasLtMatrixLayoutCreate(&p->lb, ab, (uint64_t)p->in, (uint64_t)p->n, p->in)) ||
        PB_CUBLAS(cublasLtMatrixLayoutCreate(&p->lc, CUDA_R_32F, (uint64_t)p->out, (uint64_t)p->n, p->out)) ||
        PB_CUBLAS(cublasLtMatmulPreferenceCreate(&pref)) ||
        PB_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                       sizeof ws)) ||
        PB_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &p->align_a,
                                                       sizeof p->align_a)) ||
        PB_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &p->align_b,
                                                       sizeof p->align_b)) ||
        PB_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &p->align_c,
                                                       sizeof p->align_c)) ||
        PB_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &p->align_c,
                                                       sizeof p->align_c)))
        goto fail;
    memset(&res, 0, sizeof res);
    hs = cublasLtMatmulAlgoGetHeuristic(c->lt, p->op, p->la, p->lb, p->lc, p->lc, pref, 1, &res, &got);
    if (hs == CUBLAS_STATUS_SUCCESS && got > 0 && res.state == CUBLAS_STATUS_SUCCESS) {
        p->algo = res.algo;
        p->has_algo = true;
    } else if (hs == CUBLAS_STATUS_SUCCESS || hs == CUBLAS_STATUS_NOT_SUPPORTED) {
        p->has_algo = false;
        pb_log(PB_LOG_WARN, "cuda: cuBLASLt has no algorithm for linear n=%d in=%d out=%d (%s weights); using the "
               "slower GEMV kernel", p->n, p->in, p->out, p->wt == PB_DT_F32 ? "f32" : p->wt == PB_DT_F16 ? "f16" : "bf16");
    } else {
        PB_CUBLAS(hs);
        goto fail;
    }
    (void)cublasLtMatmulPreferenceDestroy(pref);
    p->used = true;
    return true;
fail:
    if (pref) (void)cublasLtMatmulPreferenceDestroy(pref);
    plan_destroy(p);
    return false;
}

/* The cached plan for this key, made on a miss; NULL after recording a failure. Called with
 * g_plan_mu held. */
static lt_plan *plan_get(int wt, int n, int in, int out, bool beta1, const void *A, const void *B, const void *C) {
    uint32_t aa = align_of(A), ab = align_of(B), ac = align_of(C);
    for (int i = 0; i < PLAN_CAP; i++) {
        lt_plan *p = &g_plans[i];
        if (p->used && p->wt == wt && p->n == n && p->in == in && p->out == out && p->beta1 == beta1 &&
            p->align_a == aa && p->align_b == ab && p->align_c == ac)
            return p;
    }
    lt_plan *p = &g_plans[g_plan_next];
    g_plan_next = (g_plan_next + 1) % PLAN_CAP;
    if (p->used) plan_destroy(p);
    p->wt = wt;
    p->n = n;
    p->in = in;
    p->out = out;
    p->beta1 = beta1;
    p->align_a = aa;
    p->align_b = ab;
    p->align_c = ac;
    return plan_make(p) ? p : NULL;
}

/* ---- linear ------------------------------------------------------------------------------------ */

template <typename T>
static void linear_t(pb_dtype wt, float *y, const float *x, const void *Wv, const float *b, int n, int in, int out,
                     bool accumulate) {
    if (n <= 0 || out <= 0) return;
    const T *W = (const T *)Wv;
    if (in <= 0) {
        /* an empty sum: y = b (or 0), or y += b */
        pb_cuda_bias_rows(y, b, n, out, accumulate);
        return;
    }
    pb_cuda_ctx *c = pb_cuda_ctx_get();
    if (wt != PB_DT_F32 && n <= 8 && c->gemv) {
        gemv<T>(y, x, W, b, n, in, out, accumulate);
        return;
    }
    bool beta1 = accumulate;
    if (b) {
        pb_cuda_bias_rows(y, b, n, out, accumulate);
        beta1 = true;
    }
    const void *xB = x;
    if (wt != PB_DT_F32) {
        void *xs = pb_cuda_scratch(PB_CS_LINEAR_X, (size_t)n * in * sizeof(T));
        if (!xs) return;
        pb_cuda_convert(xs, wt, x, (int64_t)n * in);
        xB = xs;
    }
    std::lock_guard<std::mutex> lock(g_plan_mu);
    lt_plan *p = plan_get((int)wt, n, in, out, beta1, W, xB, y);
    if (!p) return;
    if (!p->has_algo) {
        gemv<T>(y, x, W, NULL, n, in, out, beta1);
        return;
    }
    float alpha = 1.0f, beta = beta1 ? 1.0f : 0.0f;
    PB_CUBLAS(cublasLtMatmul(c->lt, p->op, &alpha, W, p->la, xB, p->lb, &beta, y, p->lc, y, p->lc, &p->algo,
                             c->lt_workspace, c->lt_workspace_bytes, c->stream));
}

extern "C" void pb_cuda_linear_f32(float *y, const float *x, const void *W, const float *b, int n, int in, int out,
                                   bool accumulate) {
    linear_t<float>(PB_DT_F32, y, x, W, b, n, in, out, accumulate);
}
extern "C" void pb_cuda_linear_f16(float *y, const float *x, const void *W, const float *b, int n, int in, int out,
                                   bool accumulate) {
    linear_t<__half>(PB_DT_F16, y, x, W, b, n, in, out, accumulate);
}
extern "C" void pb_cuda_linear_bf16(float *y, const float *x, const void *W, const float *b, int n, int in, int out,
                                    bool accumulate) {
    linear_t<__nv_bfloat16>(PB_DT_BF16, y, x, W, b, n, in, out, accumulate);
}
