/* ops.h — the op table every backend implements; the model driver only calls these.
 *
 * One driver (core/model/forward.c) serves every backend: it allocates its buffers, moves
 * tokens in and logits out, and runs each layer through this table. On the CPU backend
 * every pointer is host memory and every tensor fp32. On a device backend (CUDA) every
 * pointer the driver passes to a compute op is device memory; activations are still fp32,
 * weight matrices and the embedding table are stored in the table's wtype (fp16 / bf16 /
 * fp32) and norms and biases stay fp32. Weight matrices are (out, in) as Hugging Face
 * stores them, so a linear layer is y = x W^T + b. */
#ifndef PB_OPS_H
#define PB_OPS_H

#include "pb_base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Storage type of weight matrices and the embedding table. */
typedef enum { PB_DT_F32 = 0, PB_DT_F16 = 1, PB_DT_BF16 = 2 } pb_dtype;
extern const char *const pb_dtype_names[3];   /* "f32", "f16", "bf16" */
size_t pb_dtype_size(pb_dtype t);

typedef struct pb_ops {
    const char *name;        /* "cpu", "cuda" */
    bool device;             /* pointers are not host memory: the driver never dereferences them */
    pb_dtype wtype;          /* storage type of weight matrices and the embedding table */

    /* ---- Memory. The CPU backend's are malloc / free / memcpy. Compute ops may run
     * asynchronously in call order on one queue; download waits for what was queued
     * before it, so results read after a download are complete. */
    void *(*alloc)(size_t bytes, pb_err *err);           /* NULL (err set) when out of memory */
    void (*free)(void *p);                               /* NULL is allowed */
    int (*upload)(void *dst, const void *src, size_t bytes, pb_err *err);   /* host -> backend */
    int (*download)(void *dst, const void *src, size_t bytes, pb_err *err); /* backend -> host */
    /* n fp32 host values into backend memory of type wtype (round to nearest even) */
    int (*upload_weights)(void *dst, const float *src, size_t n, pb_err *err);
    /* height rows of width bytes, from src (row pitch spitch bytes) to dst (pitch dpitch),
     * within the backend */
    void (*copy2d)(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height);
    /* waits for queued work; reports an asynchronous failure (a kernel fault) as an error */
    int (*sync)(pb_err *err);
    /* bytes currently allocated through alloc and the most since reset_peak (device
     * backends; NULL on the CPU, whose memory the speed metric reads from the process) */
    int64_t (*mem_peak)(void);
    void (*mem_reset_peak)(void);

    /* ---- Forward */
    /* y (n, out) = x (n, in) @ W^T (in, out) [+ b (out)]; W is wtype; accumulate: y += instead of = */
    void (*linear)(float *y, const float *x, const void *W, const float *b, int n, int in, int out,
                   bool accumulate);
    /* y (n, d) = x / rms(x) * w; y may alias x */
    void (*rmsnorm)(float *y, const float *x, const float *w, int n, int d, float eps);
    /* rotate-half RoPE in place on x (n, heads, head_dim) with per-row positions pos (n);
     * inv_freq (head_dim/2) already includes any rope scaling */
    void (*rope)(float *x, const int32_t *pos, const float *inv_freq, int n, int heads, int head_dim);
    /* kc, vc (B sequences, each at kc + b * batch_stride floats: (n_kv, kv_stride, hd)) get
     * rows p0..p0+T-1 of every KV head from k, v (B, T, n_kv, hd) */
    void (*kv_store)(float *kc, float *vc, const float *k, const float *v, int B, int T, int p0, int n_kv, int hd,
                     int kv_stride, size_t batch_stride);
    /* causal GQA attention for B sequences: q (B, T, n_heads, hd) at positions p0..p0+T-1;
     * sequence b's keys and values at k + b * batch_stride, v + b * batch_stride, laid out
     * (n_kv, kv_stride, hd) with Tk = p0 + T valid rows per head (kv_stride >= Tk);
     * out (B, T, n_heads, hd); softmax scale 1/sqrt(hd) */
    void (*attention)(float *out, const float *q, const float *k, const float *v, int B, int T, int p0,
                      int n_heads, int n_kv, int hd, int kv_stride, size_t batch_stride);
    /* h (n, f) = silu(g) * u */
    void (*swiglu)(float *h, const float *g, const float *u, int64_t n);
    /* y += x (n) */
    void (*add)(float *y, const float *x, int64_t n);
    /* x (n, d) = table[tok] (table (vocab, d) in wtype; tok in backend memory) */
    void (*embedding)(float *x, const void *table, const int32_t *tok, int n, int d);
    /* x (n) *= a */
    void (*scale)(float *x, float a, int64_t n);
    /* Scoring without moving logits: for each row i with target[i] >= 0, nll[i] = -log
     * softmax(logits[i])[target[i]] = max + log(sum exp(x - max)) - x[target] with the sum
     * in double (pb_logits_nll's formula; NaN or Inf when the row is not finite) and, when
     * greedy is not NULL, greedy[i] = 1 iff target[i] is the row's FIRST maximum
     * (torch.argmax); rows with target -1 get nll 0 and greedy 0. logits (n, vocab),
     * target, nll and greedy are backend memory. */
    void (*token_nll)(double *nll, uint8_t *greedy, const float *logits, const int32_t *target, int64_t n, int vocab);
    /* y (n) = x * keep_i / (1 - p), keep_i = [top 24 bits of pb_mix64(key + i) >= p * 2^24]:
     * a mask that is a pure function of (key, i), so a backward pass or a resumed run
     * regenerates it; y may alias x (the backward applies the same call to a gradient) */
    void (*dropout)(float *y, const float *x, int64_t n, float p, uint64_t key);

    /* ---- Backward (cpu_backward.c, cpu_attention_bwd.c). Conventions: weight gradients
     * (dW, db, dw, d_table) ACCUMULATE (+=), so that micro-batches add up without a copy, and
     * NULL means "not wanted" (frozen weights cost no GEMM); input gradients OVERWRITE unless
     * a flag says otherwise. Shapes are those of the forward call with the same arguments. */
    /* dx (n, in) = dy (n, out) @ W (out, in), += when accumulate_dx (q/k/v and gate/up share
     * one input, whose gradient is the sum); dx may be NULL;
     * dW (out, in) += dy^T @ x; db (out) += sum over rows of dy */
    /* (NULL on backends without a backward pass) */
    void (*linear_bwd)(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int n,
                       int in, int out, bool accumulate_dx);
    /* dx (n, d) from dy (n, d), x, w; dw (d) += ...; dx may alias dy (not x) */
    void (*rmsnorm_bwd)(float *dx, float *dw, const float *dy, const float *x, const float *w, int n, int d,
                        float eps);
    /* in place on dx (n, heads, head_dim): the inverse rotation (RoPE is orthogonal) */
    void (*rope_bwd)(float *dx, const int32_t *pos, const float *inv_freq, int n, int heads, int head_dim);
    /* the attention call's backward: dout (T, n_heads, hd) -> dq (T, n_heads, hd) and dk, dv
     * in k/v's layout (n_kv, kv_stride, hd), of which rows 0..p0+T-1 of each head are
     * written (cached prefix keys get their gradient too) and rows beyond left alone.
     * The softmax is recomputed from q, k. Returns -1 (err set) only if scratch cannot be
     * allocated. */
    int (*attention_bwd)(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                         const float *v, int T, int p0, int n_heads, int n_kv, int hd, int kv_stride, pb_err *err);
    /* dg, du (n) from dh (n), g, u; either may alias dh (each element is read before written) */
    void (*swiglu_bwd)(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n);
    /* d_table (vocab, d) += dx (n, d) scattered to rows tok (n); tokens must be in range */
    void (*embedding_bwd)(float *d_table, const float *dx, const int32_t *tok, int n, int d);
    /* Cross-entropy over the rows with target >= 0 (-1 = ignored): *loss = mean NLL over those
     * rows (log-softmax in double, as pb_logits_nll; 0 when none), *n_selected (may be NULL)
     * = their count. d_logits (n, vocab), when not NULL, is overwritten with
     * (softmax - onehot) / n_selected on selected rows and 0 on ignored ones; it may alias
     * logits (the LM head's logits are the biggest buffer). Returns -1 on a target outside
     * [-1, vocab) or a non-finite row. */
    int (*cross_entropy)(double *loss, int64_t *n_selected, float *d_logits, const float *logits,
                         const int32_t *target, int64_t n, int vocab, pb_err *err);
} pb_ops;

const pb_ops *pb_ops_cpu(void);

/* The CUDA backend with weights stored as wtype, on the current device (CUDA_VISIBLE_DEVICES
 * picks it). NULL with err set when prunebench was built without CUDA, when no device is
 * present, or when the device cannot be initialised. */
const pb_ops *pb_ops_cuda(pb_dtype wtype, pb_err *err);

/* "cpu" (wtype must be f32) or "cuda"; the dtype name as given by --dtype (NULL: f32 on
 * the CPU, bf16 on CUDA). Errors name the unknown device or dtype. */
const pb_ops *pb_ops_get(const char *device, const char *dtype, pb_err *err);

/* Wall time per op kind, accumulated by the model driver while `enabled` (benchmarks only:
 * the timing calls cost nothing measurable next to a GEMM, but stay off by default). */
typedef enum { PB_OP_LINEAR, PB_OP_RMSNORM, PB_OP_ROPE, PB_OP_ATTENTION, PB_OP_SWIGLU, PB_OP_ADD,
               PB_OP_EMBEDDING, PB_OP_COUNT } pb_op_id;
typedef struct {
    bool enabled;
    double seconds[PB_OP_COUNT];
    long calls[PB_OP_COUNT];
} pb_op_profile;
extern pb_op_profile pb_profile;
extern const char *const pb_op_names[PB_OP_COUNT];

/* Runs one op call, timing it into pb_profile when profiling is on. */
#define PB_OP(id, call) do {                                                        \
        double pb_op_t0_ = pb_profile.enabled ? pb_time_now() : 0.0;               \
        call;                                                                       \
        if (pb_profile.enabled) {                                                   \
            pb_profile.seconds[id] += pb_time_now() - pb_op_t0_;                    \
            pb_profile.calls[id]++;                                                 \
        }                                                                           \
    } while (0)

#endif
