/* bwd_test.h — shared helpers of the backward tests: random fp32 inputs with exact float64
 * copies, central finite differences of a float64 loss, and the error checks. */
#ifndef PB_BWD_TEST_H
#define PB_BWD_TEST_H

#include "ops.h"
#include "pb_test.h"

/* Central-difference step. The float64 losses are smooth with O(1) derivatives on O(1)
 * inputs, so the truncation error is O(h^2) ~ 1e-12 and the cancellation error
 * ~ 1e-16 / h ~ 1e-10: the reference gradient is exact to far below what fp32 can show. */
#define FD_H 1e-6

/* Tolerance on max|g - g_fd| / max|g_fd|. The fp32 backward rounds at ~6e-8 per operation
 * and sums at most a few dozen terms per output here: measured errors are 3e-8 to 5e-7.
 * 1e-5 leaves a margin of 20 or more, while a wrong sign, factor or index gives errors of
 * order 0.1 to 2. */
#define GRAD_TOL 1e-5

/* The fp32 forward against the float64 one on the same inputs: per-op rounding only. */
#define FWD_TOL 1e-5

static uint64_t bwd_rng = 0x9e3779b97f4a7c15ull;

/* Uniform in [-scale, scale): f gets fp32 values and d their exact double copies, so that
 * both forwards see the same inputs. */
static inline void rnd_fill(float *f, double *d, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) {
        bwd_rng ^= bwd_rng << 13;
        bwd_rng ^= bwd_rng >> 7;
        bwd_rng ^= bwd_rng << 17;
        f[i] = scale * (float)((double)(bwd_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
        if (d) d[i] = f[i];
    }
}

static inline double dotd(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static inline double rel_err_d(const float *g, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)g[i] - ref[i]), r = fabs(ref[i]);
        if (!isfinite(e)) return INFINITY;
        num = e > num ? e : num;
        den = r > den ? r : den;
    }
    return den > 0 ? num / den : num;
}

static inline void check_fwd(const char *what, const float *y, const double *ref, size_t n) {
    double e = rel_err_d(y, ref, n);
    CHECK_MSG(e <= FWD_TOL, "%s forward: fp32 vs float64 rel err %.3g", what, e);
}

typedef double (*bwd_loss_fn)(void *ctx);

/* g (fp32 backward) against central differences of f in every `every`-th of the n doubles
 * at p (a sample, where a full sweep of a larger case would cost too much). */
static inline void check_fd_every(const char *what, const float *g, double *p, size_t n, size_t every,
                                  bwd_loss_fn f, void *ctx) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i += every) {
        double save = p[i];
        p[i] = save + FD_H;
        double lp = f(ctx);
        p[i] = save - FD_H;
        double lm = f(ctx);
        p[i] = save;
        double fd = (lp - lm) / (2 * FD_H), e = fabs((double)g[i] - fd);
        num = isfinite(e) ? (e > num ? e : num) : INFINITY;
        den = fabs(fd) > den ? fabs(fd) : den;
    }
    double e = den > 0 ? num / den : num;
    fprintf(stderr, "  %-26s FD rel err %.3g\n", what, e);
    CHECK_MSG(e <= GRAD_TOL, "%s: rel err %.3g > %g", what, e, GRAD_TOL);
}

static inline void check_fd(const char *what, const float *g, double *p, size_t n, bwd_loss_fn f, void *ctx) {
    check_fd_every(what, g, p, n, 1, f, ctx);
}

static inline int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* a == k * b, i.e. k calls summed into a. Not bitwise: a GEMM with beta = 1 may fold the old
 * value into its partial sums in any order, so allow fp32 rounding (1e-5) at the scale of
 * the largest entry; an overwrite instead of an add is off by a factor (k-1)/k. */
static inline int scaled(const float *a, const float *b, size_t n, float k) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)k * b[i]), r = fabs((double)k * b[i]);
        if (!isfinite(e)) return 0;
        num = e > num ? e : num;
        den = r > den ? r : den;
    }
    return den > 0 && num <= 1e-5 * den;
}

#endif
