/* optim.c — AdamW, learning-rate schedules and gradient clipping (see optim.h). */
#include "optim.h"

#include <math.h>
#include <string.h>

void pb_adamw_step(const pb_adamw *o, pb_param *ps, int n, double lr, int64_t step) {
    double bc1 = 1.0 - pow(o->beta1, (double)step), bc2 = 1.0 - pow(o->beta2, (double)step);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = (float)o->eps;
    float b1 = (float)o->beta1, b2 = (float)o->beta2, decay = (float)(1.0 - lr * o->weight_decay);
    for (int i = 0; i < n; i++) {
        pb_param *p = &ps[i];
        float dk = p->decay ? decay : 1.0f;
#pragma omp parallel for schedule(static) if (p->n >= 65536)
        for (size_t j = 0; j < p->n; j++) {
            float g = p->g[j];
            float m = p->m[j] = b1 * p->m[j] + (1.0f - b1) * g;
            float v = p->v[j] = b2 * p->v[j] + (1.0f - b2) * g * g;
            p->p[j] = p->p[j] * dk - step_size * m / (sqrtf(v) / bc2_sqrt + eps);
        }
    }
}

double pb_sched_factor(const pb_sched *s, int64_t step) {
    if (step < s->warmup) return (double)step / (double)(s->warmup > 1 ? s->warmup : 1);
    double span = (double)(s->total - s->warmup > 1 ? s->total - s->warmup : 1);
    double progress = (double)(step - s->warmup) / span;
    switch (s->kind) {
    case PB_SCHED_LINEAR: return fmax(0.0, 1.0 - progress);
    case PB_SCHED_COSINE: return fmax(0.0, 0.5 * (1.0 + cos(M_PI * progress)));
    default: return 1.0;
    }
}

int pb_sched_parse(const char *name, pb_sched_kind *kind, pb_err *err) {
    static const char *const names[] = {"linear", "cosine", "constant"};
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0) {
            *kind = (pb_sched_kind)i;
            return 0;
        }
    return pb_err_set(err, "unknown learning-rate schedule '%s' (linear, cosine or constant)", name);
}

double pb_grad_global_norm(const pb_param *ps, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) {
        double si = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : si) if (ps[i].n >= 65536)
        for (size_t j = 0; j < ps[i].n; j++) si += (double)ps[i].g[j] * ps[i].g[j];
        s += si;
    }
    return sqrt(s);
}

double pb_clip_grad_norm(pb_param *ps, int n, double max_norm) {
    double norm = pb_grad_global_norm(ps, n);
    if (max_norm <= 0.0 || !isfinite(norm)) return norm;
    double coef = max_norm / (norm + 1e-6);
    if (coef >= 1.0) return norm;
    float c = (float)coef;
    for (int i = 0; i < n; i++)
#pragma omp parallel for schedule(static) if (ps[i].n >= 65536)
        for (size_t j = 0; j < ps[i].n; j++) ps[i].g[j] *= c;
    return norm;
}
