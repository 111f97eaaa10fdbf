/* cuda_elementwise.cu — the CUDA backend's memory-bound ops: RMSNorm, RoPE, SwiGLU, add,
 * scale, dropout, embedding lookup, KV-cache store and fp32 -> weight-type conversion.
 *
 * Each must give what the CPU backend (cpu_ops.c) gives, not merely something close, since
 * the agreement tests compare logits: the same operation order in fp32, double where the CPU
 * uses double (RMSNorm's sum of squares, RoPE angles and their cos/sin), __f*_rn intrinsics
 * where nvcc would otherwise fuse a multiply and an add into one FMA (which the CPU build
 * does not), and the same pb_mix64 hash for dropout masks. Kernels are grid-stride loops
 * with 64-bit indices: B*T*dim passes 2^31 at long contexts and large batches. */
#include "cuda_internal.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define THREADS 256

/* ---- element type helpers ------------------------------------------------------------------- */

template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

/* pb_mix64 of pb_base.h (splitmix64's finaliser), bit for bit. */
__device__ __forceinline__ uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#define GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* ---- RMSNorm ---------------------------------------------------------------------------------- */

/* One block per row (grid-stride over rows). The sum of squares is in double, as on the CPU:
 * a float square is exact in double, so only the order of the additions differs and the
 * scale 1/rms rounds to the same float in all but freak cases. y may alias x: every thread
 * reads all its inputs before the barrier and writes only its own elements after it. */
__global__ void __launch_bounds__(THREADS) rmsnorm_kernel(float *y, const float *x, const float *w, int n, int d,
                                                          float eps) {
    __shared__ double part[THREADS / 32];
    __shared__ float s_inv;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int r = blockIdx.x; r < n; r += gridDim.x) {
        const float *xr = x + (size_t)r * d;
        float *yr = y + (size_t)r * d;
        double ss = 0.0;
        for (int j = threadIdx.x; j < d; j += blockDim.x) {
            double v = (double)xr[j];
            ss += v * v;
        }
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if (lane == 0) part[warp] = ss;
        __syncthreads();
        if (threadIdx.x == 0) {
            double t = 0.0;
            for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += part[i];
            s_inv = (float)(1.0 / sqrt(t / d + (double)eps));
        }
        __syncthreads();
        float inv = s_inv;
        for (int j = threadIdx.x; j < d; j += blockDim.x) yr[j] = __fmul_rn(__fmul_rn(xr[j], inv), w[j]);
        __syncthreads(); /* part and s_inv are reused by the next row */
    }
}

extern "C" void pb_cuda_rmsnorm(float *y, const float *x, const float *w, int n, int d, float eps) {
    if (n <= 0 || d <= 0) return;
    rmsnorm_kernel<<<pb_cuda_blocks((int64_t)n * THREADS, THREADS), THREADS, 0, pb_cuda_stream()>>>(y, x, w, n, d,
                                                                                                     eps);
    PB_CU_LAUNCH("rmsnorm_kernel");
}

/* ---- RoPE ------------------------------------------------------------------------------------- */

/* One thread per (row, frequency): the angle and its cos/sin in double exactly as the CPU
 * computes them, then the rotation of that pair in every head. */
__global__ void rope_kernel(float *x, const int32_t *pos, const float *inv_freq, int n, int heads, int hd) {
    int half = hd / 2;
    GRID_STRIDE(idx, (int64_t)n * half) {
        int64_t i = idx / half;
        int j = (int)(idx % half);
        double a = (double)pos[i] * (double)inv_freq[j];
        float c = (float)cos(a), s = (float)sin(a);
        float *xr = x + (size_t)i * heads * hd + j;
        for (int h = 0; h < heads; h++) {
            float *x1 = xr + (size_t)h * hd, *x2 = x1 + half;
            float p = *x1, q = *x2;
            *x1 = __fsub_rn(__fmul_rn(p, c), __fmul_rn(q, s));
            *x2 = __fadd_rn(__fmul_rn(q, c), __fmul_rn(p, s));
        }
    }
}

extern "C" void pb_cuda_rope(float *x, const int32_t *pos, const float *inv_freq, int n, int heads, int head_dim) {
    if (n <= 0 || heads <= 0 || head_dim < 2) return;
    int64_t work = (int64_t)n * (head_dim / 2);
    rope_kernel<<<pb_cuda_blocks(work, THREADS), THREADS, 0, pb_cuda_stream()>>>(x, pos, inv_freq, n, heads,
                                                                                 head_dim);
    PB_CU_LAUNCH("rope_kernel");
}

/* ---- KV-cache store ----------------------------------------------------------------------------- */

/* One thread per element of k (B, T, n_kv, hd), which is also its index there. */
__global__ void kv_store_kernel(float *kc, float *vc, const float *k, const float *v, int B, int T, int p0, int n_kv,
                                int hd, int kv_stride, size_t batch_stride) {
    GRID_STRIDE(idx, (int64_t)B * T * n_kv * hd) {
        int64_t e = idx % hd, r = idx / hd;
        int64_t g = r % n_kv;
        r /= n_kv;
        int64_t t = r % T, b = r / T;
        size_t dst = (size_t)b * batch_stride + ((size_t)g * kv_stride + (size_t)(p0 + t)) * hd + e;
        kc[dst] = k[idx];
        vc[dst] = v[idx];
    }
}

extern "C" void pb_cuda_kv_store(float *kc, float *vc, const float *k, const float *v, int B, int T, int p0, int n_kv,
                                 int hd, int kv_stride, size_t batch_stride) {
    if (B <= 0 || T <= 0 || n_kv <= 0 || hd <= 0) return;
    int64_t n = (int64_t)B * T * n_kv * hd;
    kv_store_kernel<<<pb_cuda_blocks(n, THREADS), THREADS, 0, pb_cuda_stream()>>>(kc, vc, k, v, B, T, p0, n_kv, hd,
                                                                                  kv_stride, batch_stride);
    PB_CU_LAUNCH("kv_store_kernel");
}

/* ---- SwiGLU, add, scale, dropout ---------------------------------------------------------------- */

/* silu(g) * u as the CPU writes it: (g / (1 + expf(-g))) * u. CUDA's expf is within 2 ulp. */
__global__ void swiglu_kernel(float *h, const float *g, const float *u, int64_t n) {
    GRID_STRIDE(i, n) {
        float gi = g[i];
        h[i] = __fmul_rn(__fdiv_rn(gi, __fadd_rn(1.0f, expf(-gi))), u[i]);
    }
}

extern "C" void pb_cuda_swiglu(float *h, const float *g, const float *u, int64_t n) {
    if (n <= 0) return;
    swiglu_kernel<<<pb_cuda_blocks(n, THREADS), THREADS, 0, pb_cuda_stream()>>>(h, g, u, n);
    PB_CU_LAUNCH("swiglu_kernel");
}

__global__ void add_kernel(float *y, const float *x, int64_t n) {
    GRID_STRIDE(i, n) y[i] += x[i];
}

extern "C" void pb_cuda_add(float *y, const float *x, int64_t n) {
    if (n <= 0) return;
    add_kernel<<<pb_cuda_blocks(n, THREADS), THREADS, 0, pb_cuda_stream()>>>(y, x, n);
    PB_CU_LAUNCH("add_kernel");
}

__global__ void scale_kernel(float *x, float a, int64_t n) {
    GRID_STRIDE(i, n) x[i] *= a;
}

extern "C" void pb_cuda_scale(float *x, float a, int64_t n) {
    if (n <= 0) return;
    scale_kernel<<<pb_cuda_blocks(n, THREADS), THREADS, 0, pb_cuda_stream()>>>(x, a, n);
    PB_CU_LAUNCH("scale_kernel");
}

/* keep_i = [top 24 bits of mix64(key + i) >= thresh]: the CPU's mask, element for element. */
__global__ void dropout_kernel(float *y, const float *x, int64_t n, uint32_t thresh, float keep, uint64_t key) {
    GRID_STRIDE(i, n) {
        uint32_t r = (uint32_t)(mix64(key + (uint64_t)i) >> 40);
        y[i] = r >= thresh ? x[i] * keep : 0.0f;
    }
}

extern "C" void pb_cuda_dropout(float *y, const float *x, int64_t n, float p, uint64_t key) {
    if (n <= 0) return;
    /* threshold and scale computed on the host with the CPU backend's expressions */
    uint32_t thresh = (uint32_t)((double)p * 16777216.0);
    float keep = 1.0f / (1.0f - p);
    dropout_kernel<<<pb_cuda_blocks(n, THREADS), THREADS, 0, pb_cuda_stream()>>>(y, x, n, thresh, keep, key);
    PB_CU_LAUNCH("dropout_kernel");
}

/* ---- embedding ---------------------------------------------------------------------------------- */

/* The op has no vocabulary size, so a token cannot be range-checked here: the driver checks
 * tokens on the host before uploading them. A negative one gives a zero row, not a fault. */
template <typename T> __global__ void embedding_kernel(float *x, const T *table, const int32_t *tok, int n, int d) {
    GRID_STRIDE(idx, (int64_t)n * d) {
        int64_t i = idx / d, j = idx % d;
        int32_t t = tok[i];
        x[idx] = t >= 0 ? to_f32<T>(table[(int64_t)t * d + j]) : 0.0f;
    }
}

template <typename T> static void embedding_t(float *x, const void *table, const int32_t *tok, int n, int d) {
    if (n <= 0 || d <= 0) return;
    embedding_kernel<T><<<pb_cuda_blocks((int64_t)n * d, THREADS), THREADS, 0, pb_cuda_stream()>>>(
        x, (const T *)table, tok, n, d);
    PB_CU_LAUNCH("embedding_kernel");
}

extern "C" void pb_cuda_embedding_f32(float *x, const void *table, const int32_t *tok, int n, int d) {
    embedding_t<float>(x, table, tok, n, d);
}
extern "C" void pb_cuda_embedding_f16(float *x, const void *table, const int32_t *tok, int n, int d) {
    embedding_t<__half>(x, table, tok, n, d);
}
extern "C" void pb_cuda_embedding_bf16(float *x, const void *table, const int32_t *tok, int n, int d) {
    embedding_t<__nv_bfloat16>(x, table, tok, n, d);
}

/* ---- conversion ---------------------------------------------------------------------------------- */

template <typename T> __global__ void convert_kernel(T *dst, const float *src, int64_t n) {
    GRID_STRIDE(i, n) dst[i] = from_f32<T>(src[i]);
}

void pb_cuda_convert(void *dst, pb_dtype t, const float *src, int64_t n) {
    if (n <= 0) return;
    unsigned blocks = pb_cuda_blocks(n, THREADS);
    cudaStream_t s = pb_cuda_stream();
    switch (t) {
    case PB_DT_F32:
        PB_CU(cudaMemcpyAsync(dst, src, (size_t)n * sizeof(float), cudaMemcpyDeviceToDevice, s));
        return;
    case PB_DT_F16:
        convert_kernel<__half><<<blocks, THREADS, 0, s>>>((__half *)dst, src, n);
        break;
    case PB_DT_BF16:
        convert_kernel<__nv_bfloat16><<<blocks, THREADS, 0, s>>>((__nv_bfloat16 *)dst, src, n);
        break;
    default:
        pb_cuda_fail(__FILE__, __LINE__, "pb_cuda_convert", "unknown dtype");
        return;
    }
    PB_CU_LAUNCH("convert_kernel");
}

cudaError_t pb_cuda_probe_kernels(void) {
    cudaFuncAttributes a;
    return cudaFuncGetAttributes(&a, (const void *)scale_kernel);
}
