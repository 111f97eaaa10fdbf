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
