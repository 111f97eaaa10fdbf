/* cpu_internal.h — functions shared between the CPU backend's source files. */
#ifndef PB_CPU_INTERNAL_H
#define PB_CPU_INTERNAL_H

#include "ops.h"

/* A head_dim-long dot product with four partial sums: the compiler vectorises it without
 * -ffast-math, and forward and backward attention round identically. */
static inline float pb_cpu_dot(const float *a, const float *b, int n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* The pb_ops.attention entry (see ops.h for shapes). */
void pb_cpu_attention(float *out, const float *q, const float *k, const float *v, int B, int T, int p0, int n_heads,
                      int n_kv, int hd, int kv_stride, size_t batch_stride);

/* The backward entries defined in cpu_backward.c / cpu_attention_bwd.c (see ops.h). */
void pb_cpu_linear_bwd(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int n,
                       int in, int out, bool accumulate_dx);
void pb_cpu_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, int n, int d,
                        float eps);
void pb_cpu_rope_bwd(float *dx, const int32_t *pos, const float *inv_freq, int n, int heads, int head_dim);
int pb_cpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                         const float *v, int T, int p0, int n_heads, int n_kv, int hd, int kv_stride, pb_err *err);
void pb_cpu_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n);
void pb_cpu_embedding_bwd(float *d_table, const float *dx, const int32_t *tok, int n, int d);
int pb_cpu_cross_entropy(double *loss, int64_t *n_selected, float *d_logits, const float *logits,
                         const int32_t *target, int64_t n, int vocab, pb_err *err);

#endif
