/* cuda_internal.h — what the CUDA backend's .cu files share (CUDA C++ only, never C):
 * the device context, sticky asynchronous errors and their check macros, backend scratch
 * buffers, and the entry points one file defines for another's op table.
 *
 * Ops return void and run asynchronously on one stream, so a failure inside an op cannot
 * be returned where it happens: it is recorded (the first one wins) and reported, then
 * cleared, by the next sync / download / upload as one line "cuda: FILE:LINE: WHAT: DETAIL". */
#ifndef PB_CUDA_INTERNAL_H
#define PB_CUDA_INTERNAL_H

/* The C headers pb_base.h pulls in, first, so that their own C++ handling applies. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cuda_runtime.h>
#include <cublasLt.h>

extern "C" {
#include "pb_base.h"
#include "ops.h"
}

/* The one device this process uses, set up by the first successful pb_ops_cuda. */
struct pb_cuda_ctx {
    cudaStream_t stream;          /* every op and copy of the backend runs on it, in call order */
    cublasLtHandle_t lt;
    void *lt_workspace;           /* cuBLASLt workspace (counted in mem_peak) */
    size_t lt_workspace_bytes;
    int device, sm_count, cc_major, cc_minor;
    size_t smem_per_block_optin;  /* cudaDevAttrMaxSharedMemoryPerBlockOptin */
    size_t total_mem;             /* bytes of device memory */
    bool gemv;                    /* the decode GEMV kernel for n <= 8 (PB_CUDA_GEMV=0 turns it off) */
    char name[256];               /* device name, for messages */
};

/* The context; valid after pb_ops_cuda succeeded once (NULL before). */
pb_cuda_ctx *pb_cuda_ctx_get(void);
/* Its stream (ops are only reachable through a table pb_ops_cuda handed out, so it exists). */
static inline cudaStream_t pb_cuda_stream(void) { return pb_cuda_ctx_get()->stream; }

/* ---- sticky errors ---------------------------------------------------------------------- */

/* Records a failure inside an op (the first one since the last report wins); thread-safe.
 * what is the failing call's text (cut at its '('), detail the library's message. */
void pb_cuda_fail(const char *file, int line, const char *what, const char *detail);
/* 0 when nothing was recorded; otherwise fills err with the recorded line, clears it, -1. */
int pb_cuda_take_error(pb_err *err);

static inline bool pb_cuda_check_rt(cudaError_t e, const char *file, int line, const char *what) {
    if (e == cudaSuccess) return false;
    /* A failed runtime call also becomes the thread's "last error"; clear it so that the next
     * launch check does not blame a kernel for it. (Sticky faults stay in the context.) */
    (void)cudaGetLastError();
    pb_cuda_fail(file, line, what, cudaGetErrorString(e));
    return true;
}

static inline bool pb_cuda_check_blas(cublasStatus_t s, const char *file, int line, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return false;
    pb_cuda_fail(file, line, what, cublasLtGetStatusName(s));
    return true;
}

static inline bool pb_cuda_check_launch(const char *file, int line, const char *kernel) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return false;
    pb_cuda_fail(file, line, kernel[0] ? kernel : "kernel launch", cudaGetErrorString(e));
    return true;
}

/* Each evaluates to true on failure (after recording it), so callers can bail out:
 * `if (PB_CU(cudaMemcpyAsync(...))) return;`. */
#define PB_CU(call) pb_cuda_check_rt((call), __FILE__, __LINE__, #call)
#define PB_CUBLAS(call) pb_cuda_check_blas((call), __FILE__, __LINE__, #call)
/* Needs cudnn.h (or cudnn_graph.h) included before its first use. */
#define PB_CUDNN(call)                                                                    \
    ([&]() -> bool {                                                                      \
        cudnnStatus_t pb_dnn_s_ = (call);                                                 \
        if (pb_dnn_s_ == CUDNN_STATUS_SUCCESS) return false;                              \
        pb_cuda_fail(__FILE__, __LINE__, #call, cudnnGetErrorString(pb_dnn_s_));          \
        return true;                                                                      \
    }())
/* After a kernel launch: PB_CU_LAUNCH() or PB_CU_LAUNCH("kernel_name") for a better message. */
#define PB_CU_LAUNCH(...) pb_cuda_check_launch(__FILE__, __LINE__, "" __VA_ARGS__)

/* ---- scratch ------------------------------------------------------------------------------ */

/* Backend-private device buffers, one per slot, grown on demand (never shrunk; freed at
 * exit); counted in mem_peak. The pointer stays valid until the same slot is grown. */
enum { PB_CS_LINEAR_X, PB_CS_ATT_0, PB_CS_ATT_1, PB_CS_ATT_2, PB_CS_ATT_3, PB_CS_ATT_4, PB_CS_COUNT };
/* At least bytes of slot; NULL after recording a failure. */
void *pb_cuda_scratch(int slot, size_t bytes);

/* Blocks for a grid-stride loop over n items with `threads` per block: enough to fill the
 * device, never more than the items need (and at least one; callers skip n <= 0). */
static inline unsigned pb_cuda_blocks(int64_t n, int threads) {
    int64_t need = (n + threads - 1) / threads;
    const pb_cuda_ctx *c = pb_cuda_ctx_get();
    int64_t cap = (int64_t)(c && c->sm_count > 0 ? c->sm_count : 80) * 16;
    if (need > cap) need = cap;
    return need < 1 ? 1u : (unsigned)need;
}

/* ---- entry points shared between files --------------------------------------------------- */

/* fp32 -> t (round to nearest even) on the stream; a device-to-device copy for f32. */
void pb_cuda_convert(void *dst, pb_dtype t, const float *src, int64_t n);
/* y (n, out): y = b (or 0 when b is NULL), or y += b when accumulate (b not NULL). */
void pb_cuda_bias_rows(float *y, const float *b, int n, int out, bool accumulate);
/* Launches nothing but asks the runtime for a kernel of ours: fails with "no kernel image"
 * when this build has no code for the device's architecture. */
cudaError_t pb_cuda_probe_kernels(void);

extern "C" {
/* cuda_attention.cu: the tables' attention (see ops.h). The f32 table's runs only the fp32
 * paths (its results are compared with the CPU's at fp32 tolerance); the f16 / bf16 tables'
 * may use cuDNN's half-precision SDPA and TF32 GEMMs. */
void pb_cuda_attention(float *out, const float *q, const float *k, const float *v, int B, int T, int p0, int n_heads,
                       int n_kv, int hd, int kv_stride, size_t batch_stride);
void pb_cuda_attention_f16(float *out, const float *q, const float *k, const float *v, int B, int T, int p0,
                           int n_heads, int n_kv, int hd, int kv_stride, size_t batch_stride);
void pb_cuda_attention_bf16(float *out, const float *q, const float *k, const float *v, int B, int T, int p0,
                            int n_heads, int n_kv, int hd, int kv_stride, size_t batch_stride);

/* cuda_elementwise.cu */
void pb_cuda_rmsnorm(float *y, const float *x, const float *w, int n, int d, float eps);
void pb_cuda_rope(float *x, const int32_t *pos, const float *inv_freq, int n, int heads, int head_dim);
void pb_cuda_kv_store(float *kc, float *vc, const float *k, const float *v, int B, int T, int p0, int n_kv, int hd,
                      int kv_stride, size_t batch_stride);
void pb_cuda_swiglu(float *h, const float *g, const float *u, int64_t n);
void pb_cuda_add(float *y, const float *x, int64_t n);
void pb_cuda_scale(float *x, float a, int64_t n);
void pb_cuda_dropout(float *y, const float *x, int64_t n, float p, uint64_t key);
void pb_cuda_embedding_f32(float *x, const void *table, const int32_t *tok, int n, int d);
void pb_cuda_embedding_f16(float *x, const void *table, const int32_t *tok, int n, int d);
void pb_cuda_embedding_bf16(float *x, const void *table, const int32_t *tok, int n, int d);

/* cuda_loss.cu: the tables' token_nll (see ops.h) */
void pb_cuda_token_nll(double *nll, uint8_t *greedy, const float *logits, const int32_t *target, int64_t n, int vocab);

/* cuda_linear.cu */
void pb_cuda_linear_f32(float *y, const float *x, const void *W, const float *b, int n, int in, int out,
                        bool accumulate);
void pb_cuda_linear_f16(float *y, const float *x, const void *W, const float *b, int n, int in, int out,
                        bool accumulate);
void pb_cuda_linear_bf16(float *y, const float *x, const void *W, const float *b, int n, int in, int out,
                         bool accumulate);
}

/* cuda_linear.cu: drops the cached cuBLASLt plans (at exit, before the handle goes). */
void pb_cuda_linear_release(void);

#endif
