/* optim.h — the optimiser side of training: AdamW with torch.optim.AdamW's update, the
 * learning-rate schedules of Hugging Face's get_{linear,cosine}_schedule_with_warmup, and
 * torch.nn.utils.clip_grad_norm_'s global-norm clipping.
 *
 * A parameter is a flat fp32 tensor with its gradient and the two Adam moments; the
 * caller owns the memory (LoRA adapters, or a model's weights for full training). */
#ifndef PB_OPTIM_H
#define PB_OPTIM_H

#include "pb_base.h"

typedef struct {
    float *p;            /* (n) the parameter */
    float *g;            /* (n) its gradient (accumulated by the backward pass) */
    float *m, *v;        /* (n) first and second moments, zero at the start */
    size_t n;
    bool decay;          /* weight decay applies (HF Trainer exempts biases and norm weights) */
} pb_param;

typedef struct {
    double beta1, beta2, eps, weight_decay;
} pb_adamw;

/* torch's defaults: betas (0.9, 0.999), eps 1e-8; HF Trainer's weight_decay default is 0 */
#define PB_ADAMW_DEFAULTS ((pb_adamw){0.9, 0.999, 1e-8, 0.0})

/* One AdamW update of every parameter at learning rate lr; step is the 1-based count of
 * updates so far including this one (bias correction). As torch.optim.AdamW:
 *   p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps). */
void pb_adamw_step(const pb_adamw *o, pb_param *ps, int n, double lr, int64_t step);

typedef enum { PB_SCHED_LINEAR = 0, PB_SCHED_COSINE = 1, PB_SCHED_CONSTANT = 2 } pb_sched_kind;

typedef struct {
    pb_sched_kind kind;
    int64_t warmup;      /* steps of linear warm-up from 0 */
    int64_t total;       /* total optimiser steps */
} pb_sched;

/* The learning-rate multiplier for update `step` (0-based): HF's lambda, which the
 * trainer applies before the scheduler's first step() (so update 0 uses lambda(0), i.e.
 * lr 0 when there is a warm-up):
 *   step < warmup: step / warmup;
 *   linear: max(0, (total - step) / max(1, total - warmup));
 *   cosine: max(0, 0.5 (1 + cos(pi * (step - warmup) / max(1, total - warmup)))). */
double pb_sched_factor(const pb_sched *s, int64_t step);
/* "linear" | "cosine" | "constant" */
int pb_sched_parse(const char *name, pb_sched_kind *kind, pb_err *err);

/* sqrt of the sum of squared gradients of every parameter (in double). */
double pb_grad_global_norm(const pb_param *ps, int n);
/* Scales every gradient by max_norm / (norm + 1e-6) when that is below 1 (torch's rule)
 * and returns the norm before clipping. max_norm <= 0 only measures. A non-finite norm is
 * returned as is, and nothing is scaled. */
double pb_clip_grad_norm(pb_param *ps, int n, double max_norm);

#endif
