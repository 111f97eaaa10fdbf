/* cpu_internal.h — functions shared between the CPU backend's source files. */
#ifndef PB_CPU_INTERNAL_H
#define PB_CPU_INTERNAL_H

#include "ops.h"

/* The pb_ops.attention entry (see ops.h for shapes). */
void pb_cpu_attention(float *out, const float *q, const float *k, const float *v, int T, int p0, int n_heads,
                      int n_kv, int hd, int kv_stride);

#endif
