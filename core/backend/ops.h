/* ops.h — the op table every backend implements; the model driver only calls these.
 *
 * Shapes are given per call; all tensors are fp32 row-major on the CPU backend. Weight
 * matrices are (out, in) as Hugging Face stores them, so a linear layer is y = x W^T + b. */
#ifndef PB_OPS_H
#define PB_OPS_H

#include "pb_base.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *name;
    /* y (n, out) = x (n, in) @ W^T (in, out) [+ b (out)]; accumulate: y += instead of = */
    void (*linear)(float *y, const float *x, const float *W, const float *b, int n, int in, int out,
                   bool accumulate);
    /* y (n, d) = x / rms(x) * w */
    void (*rmsnorm)(float *y, const float *x, const float *w, int n, int d, float eps);
    /* rotate-half RoPE in place on x (n, heads, head_dim) with per-row positions pos (n);
     * inv_freq (head_dim/2) already includes any rope scaling */
    void (*rope)(float *x, const int32_t *pos, const float *inv_freq, int n, int heads, int head_dim);
    /* causal GQA attention for one sequence:
     * q (T, n_heads, hd) at positions p0..p0+T-1; k, v (n_kv, Tk, hd) with Tk = p0 + T keys,
     * stored with row stride kv_stride (>= Tk) per head; out (T, n_heads, hd) */
    void (*attention)(float *out, const float *q, const float *k, const float *v, int T, int p0,
                      int n_heads, int n_kv, int hd, int kv_stride);
    /* h (n, f) = silu(g) * u */
    void (*swiglu)(float *h, const float *g, const float *u, int64_t n);
    /* y += x (n) */
    void (*add)(float *y, const float *x, int64_t n);
    /* x (n, d) = table[tok] */
    void (*embedding)(float *x, const float *table, const int32_t *tok, int n, int d);
    /* x (n) *= a */
    void (*scale)(float *x, float a, int64_t n);
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
