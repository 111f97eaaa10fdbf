/* cuda_loss.cu — next-token scoring where the logits are (the tables' token_nll, see ops.h):
 * per scored row, -log softmax[target] and whether the target is the first argmax, so that
 * ppl and zero-shot move (n) doubles back instead of (n, vocab) floats.
 *
 * The formula is the CPU's (pb_logits_nll): max in fp32, sum of exp(x - max) in double,
 * nll = max + log(sum) - x[target]. Only the summation order differs (a block's tree
 * instead of a left-to-right loop), which in double is far below anything the callers
 * compare. A NaN anywhere in a row makes its sum NaN, so a non-finite row stays non-finite
 * (the callers report it). */
#include "cuda_internal.h"

#include <math.h>

#define THREADS 256

/* Block-wide reductions through warp shuffles and one shared slot per warp. */
__device__ static float block_max(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads(); /* sh may still be read by a previous reduction */
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x / 32) ? sh[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ static double block_sum(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x / 32) ? sh[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ static int block_count(int v, int *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x / 32) ? sh[lane] : 0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__global__ static void token_nll_kernel(double *nll, uint8_t *greedy, const float *logits, const int32_t *target,
                                        int64_t n, int vocab) {
    __shared__ float shf[THREADS / 32];
    __shared__ double shd[THREADS / 32];
    __shared__ int shi[THREADS / 32];
    for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
        int tg = target[i];
        if (tg < 0) { /* uniform across the block: every thread skips together */
            if (threadIdx.x == 0) {
                nll[i] = 0.0;
                if (greedy) greedy[i] = 0;
            }
            continue;
        }
        const float *r = logits + i * (int64_t)vocab;
        /* fmaxf drops NaN like the CPU's `x > mx ? x : mx` (unless everything is NaN); the
         * NaN still reaches the sum below */
        float mx = -INFINITY;
        for (int v = threadIdx.x; v < vocab; v += blockDim.x) mx = fmaxf(mx, r[v]);
        mx = block_max(mx, shf);
        double z = 0.0;
        for (int v = threadIdx.x; v < vocab; v += blockDim.x) z += exp((double)r[v] - (double)mx);
        z = block_sum(z, shd);
        float xt = r[tg];
        int beat = 0;
        if (greedy) {
            for (int v = threadIdx.x; v < vocab; v += blockDim.x) beat += (r[v] > xt) + (v < tg && r[v] == xt);
            beat = block_count(beat, shi);
        }
        if (threadIdx.x == 0) {
            nll[i] = (double)mx + log(z) - (double)xt;
            if (greedy) greedy[i] = beat == 0;
        }
    }
}

extern "C" void pb_cuda_token_nll(double *nll, uint8_t *greedy, const float *logits, const int32_t *target, int64_t n,
                                  int vocab) {
    if (n <= 0 || vocab <= 0) return;
    token_nll_kernel<<<pb_cuda_blocks(n * THREADS, THREADS), THREADS, 0, pb_cuda_stream()>>>(nll, greedy, logits,
                                                                                          target, n, vocab);
    PB_CU_LAUNCH("token_nll_kernel");
}
