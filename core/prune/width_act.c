/* width_act.c — activation statistics of o_proj / down_proj inputs, layer by layer, and the
 * option checks, ratio solving and selection that Wanda-sp and FLAP share (width_act.h).
 *
 * Per window n (in order, n = 1..N) and channel j, with m_n = mean over the window's T tokens:
 *   mean_n = mean_{n-1} * (n-1)/n + m_n / n          (FLAP's baseline; = mean over all tokens)
 *   sq_n   = sq_{n-1} * (n-1)/n + sum_t X[n,t,j]^2 / n (Wanda's s_j and FLAP's WIFN scaler)
 *   fluc_1 = 0,  fluc_n = fluc_{n-1} * (n-2)/(n-1) + sum_t (X[n,t,j] - mean_n)^2 / n
 * The last is FLAP's BiasGPT.add_batch with one sample per call, as its pruning loop calls it.
 * It is not Welford's update: the code's `old_baseline_inp` aliases the baseline tensor that
 * the in-place `*=` / `+=` then update, so both factors use the NEW mean. Unrolled,
 *   f_j = 1/(N-1) * sum_{n=2..N} (n-1)/n * sum_t (X[n,t,j] - mean_n,j)^2,
 * with mean_n the running mean over the first n windows: the first window contributes 0,
 * and with N = 1 every f_j is 0. */
#include "width_act.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void stat_free(pb_act_stat *s) {
    free(s->mean);
    free(s->sq);
    free(s->fluc);
    memset(s, 0, sizeof *s);
}

static int stat_init(pb_act_stat *s, int C, bool fluc) {
    memset(s, 0, sizeof *s);
    s->C = C;
    if (C <= 0) return 0;
    s->mean = calloc((size_t)C, sizeof(double));
    s->sq = calloc((size_t)C, sizeof(double));
    if (fluc) s->fluc = calloc((size_t)C, sizeof(double));
    if (!s->mean || !s->sq || (fluc && !s->fluc)) {
        stat_free(s);
        return -1;
    }
    return 0;
}

/* Adds one window x (T, C) to s; tmp holds 2*C doubles. */
static void stat_add(pb_act_stat *s, const float *x, int T, double *tmp) {
    int C = s->C;
    double *sum = tmp, *sq = tmp + C;
    memset(tmp, 0, sizeof(double) * 2 * (size_t)C);
    for (int t = 0; t < T; t++) {
        const float *row = x + (size_t)t * C;
        for (int j = 0; j < C; j++) {
            double v = row[j];
            sum[j] += v;
            sq[j] += v * v;
        }
    }
    int n = ++s->n;
    double keep = (double)(n - 1) / n;
    for (int j = 0; j < C; j++) {
        s->mean[j] = s->mean[j] * keep + sum[j] / T / n;
        s->sq[j] = s->sq[j] * keep + sq[j] / n;
    }
    if (!s->fluc) return;
    if (n == 1) return; /* the first window contributes 0 (fluc stays zeroed) */
    double *dev = tmp;
    memset(dev, 0, sizeof(double) * (size_t)C);
    for (int t = 0; t < T; t++) {
        const float *row = x + (size_t)t * C;
        for (int j = 0; j < C; j++) {
            double e = row[j] - s->mean[j];
            dev[j] += e * e;
        }
    }
    double shrink = (double)(n - 2) / (n - 1);
    for (int j = 0; j < C; j++) s->fluc[j] = s->fluc[j] * shrink + dev[j] / n;
}

/* Rows of windows per layer call: enough for efficient GEMMs, small scratch. */
enum { ACT_CHUNK_ROWS = 2048 };

int pb_act_walk(const pb_model *m, const pb_calib *c, bool fluc, bool sequential, pb_act_fn fn, void *ctx,
                const char *what, pb_err *err) {
    if (!c || c->n < 1 || c->T < 1 || !c->ids) return pb_err_set(err, "%s: no calibration windows", what);
    PB_TRY(pb_model_validate(m, err));
    int N = c->n, T = c->T, d = m->cfg.dim, per = ACT_CHUNK_ROWS / T;
    if (per < 1) per = 1;
    if (per > N) per = N;
    size_t rows = (size_t)N * T, xs;
    if (rows > INT32_MAX / 2 || !pb_mul_ok(rows, (size_t)d, &xs) || !pb_mul_ok(xs, sizeof(float), &xs))
        return pb_err_set(err, "%s: calibration batch too large", what);
    float *x = malloc(xs), *x_in = sequential ? malloc(xs) : NULL;
    double *tmp = NULL;
    pb_fwd_state *st = pb_fwd_state_new();
    pb_act_layer ls;
    memset(&ls, 0, sizeof ls);
    int rc = 0;
    if (!x || (sequential && !x_in) || !st) rc = pb_err_set(err, "%s: out of memory for %zu calibration tokens", what, rows);
    if (rc == 0 && pb_model_embed(m, c->ids, (int)rows, x, err) != 0)
        rc = pb_err_prefix(err, "%s: calibration windows: ", what);
    for (int l = 0; rc == 0 && l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        int Q = L->has_attn ? L->n_heads * L->head_dim : 0, F = L->has_mlp ? L->ffn_dim : 0;
        int widest = Q > F ? Q : F;
        free(tmp);
        tmp = malloc(sizeof(double) * 2 * (size_t)(widest > 0 ? widest : 1));
        if (!tmp || stat_init(&ls.att, Q, fluc) || stat_init(&ls.mlp, F, fluc)) {
            rc = pb_err_set(err, "%s: out of memory", what);
            break;
        }
        if (sequential) memcpy(x_in, x, xs);
        for (int i = 0; rc == 0 && i < N; i += per) {
            int B = N - i < per ? N - i : per;
            const float *att = NULL, *h = NULL;
            if (pb_model_layer_forward(m, st, l, B, T, x + (size_t)i * T * d, &att, &h, err) != 0)
                rc = pb_err_prefix(err, "%s: layer %d: ", what, l);
            for (int b = 0; rc == 0 && b < B; b++) {
                if (att) stat_add(&ls.att, att + (size_t)b * T * Q, T, tmp);
                if (h) stat_add(&ls.mlp, h + (size_t)b * T * F, T, tmp);
            }
        }
        bool changed = false;
        if (rc == 0) rc = fn(ctx, l, &ls, &changed, err);
        if (rc == 0 && changed && !sequential) rc = pb_err_set(err, "%s: layer %d changed in a dense pass", what, l);
        stat_free(&ls.att);
        stat_free(&ls.mlp);
        /* the pruned layer's output feeds the next layer (not needed after the last) */
        if (rc == 0 && changed && l + 1 < m->cfg.n_layers) {
            memcpy(x, x_in, xs);
            for (int i = 0; rc == 0 && i < N; i += per) {
                int B = N - i < per ? N - i : per;
                if (pb_model_layer_forward(m, st, l, B, T, x + (size_t)i * T * d, NULL, NULL, err) != 0)
                    rc = pb_err_prefix(err, "%s: layer %d: ", what, l);
            }
        }
    }
    stat_free(&ls.att);
    stat_free(&ls.mlp);
    free(tmp);
    free(x);
    free(x_in);
    pb_fwd_state_free(st);
    return rc;
}

void pb_act_col_abs_mean(const float *W, int rows, int C, double *out) {
    memset(out, 0, sizeof(double) * (size_t)C);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < C; j++) out[j] += fabs((double)W[(size_t)i * C + j]);
    for (int j = 0; j < C; j++) out[j] /= rows;
}

void pb_act_col_sq(const float *W, int rows, int C, double *out) {
    memset(out, 0, sizeof(double) * (size_t)C);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < C; j++) {
            double w = W[(size_t)i * C + j];
            out[j] += w * w;
        }
}

typedef struct {
    double s;
    int i;
} ranked;

static int by_score_then_index(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int by_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int pb_act_lowest(const double *score, int n, int k, int *out) {
    if (k <= 0 || n <= 0) return 0;
    if (k > n) k = n;
    ranked *r = malloc(sizeof *r * (size_t)n);
    if (!r) return -1;
    for (int i = 0; i < n; i++) r[i] = (ranked){score[i], i};
    qsort(r, (size_t)n, sizeof *r, by_score_then_index);
    for (int i = 0; i < k; i++) out[i] = r[i].i;
    qsort(out, (size_t)k, sizeof *out, by_int);
    free(r);
    return 0;
}

int pb_act_check_amount(const pb_prune_opts *o, const char *what, bool need_amount, pb_err *err) {
    bool has_ratio = o->ratio >= 0.0, has_p = !(o->native < 0.0); /* NaN p counts as given (and is refused) */
    if (has_ratio && has_p) return pb_err_set(err, "%s: give one of --ratio and --p, not both", what);
    if (need_amount && !has_ratio && !has_p)
        return pb_err_set(err, "%s: say how much to prune with --ratio (fraction of all parameters) or --p", what);
    if (has_p && !(o->native >= 0.0 && o->native < 1.0))
        return pb_err_set(err, "%s: --p %g is outside [0, 1)", what, o->native);
    if (o->count >= 0) return pb_err_set(err, "%s: --num-blocks does not apply (use --ratio or --p)", what);
    if (o->layer_start != -1 || o->layer_end != -1)
        return pb_err_set(err, "%s: --layers does not apply (the method prunes every layer)", what);
    if (o->aggregation || o->iterative || o->module_joint)
        return pb_err_set(err, "%s: --aggregation, --iterative and module granularity do not apply", what);
    if (o->protect_first || o->protect_last)
        return pb_err_set(err, "%s: --protect-first/--protect-last do not apply (the method prunes every layer)", what);
    return 0;
}

int pb_act_uniform_count(int units, double p) { return units > 0 ? (int)(p * (double)units) : 0; }

int64_t pb_act_uniform_removed(const pb_model *m, double p, bool new_bias) {
    int64_t n = 0, d = m->cfg.dim;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        int kh = L->has_attn ? pb_act_uniform_count(L->n_kv_heads, p) : 0;
        int kc = L->has_mlp ? pb_act_uniform_count(L->ffn_dim, p) : 0;
        n += kh * pb_head_unit_params(m, l) + kc * pb_channel_params(m, l);
        if (new_bias && kh > 0 && !L->bo) n -= d;
        if (new_bias && kc > 0 && !L->b_down) n -= d;
    }
    return n;
}

/* pb_prune_solve's callback sees only (m, o, x); the flag travels in a struct whose first
 * member is the options (a pointer to a struct converts to one to its first member and back). */
typedef struct {
    pb_prune_opts o;
    bool new_bias;
} uniform_solve;

static int64_t uniform_removed_cb(const pb_model *m, const pb_prune_opts *o, double x) {
    const uniform_solve *u = (const uniform_solve *)(const void *)o;
    return pb_act_uniform_removed(m, x, u->new_bias);
}

int pb_act_uniform_p(const pb_model *m, const pb_prune_opts *o, bool new_bias, const char *what, double *p,
                     pb_err *err) {
    if (!(o->native < 0.0)) {
        *p = o->native;
        return 0;
    }
    uniform_solve u = {*o, new_bias};
    double target = o->ratio * (double)pb_model_params(m);
    *p = pb_prune_solve(target, uniform_removed_cb, m, &u.o);
    int64_t got = pb_act_uniform_removed(m, *p, new_bias);
    if (*p >= 0.999999 && (double)got < target)
        return pb_err_set(err, "%s: --ratio %g is out of reach: removing floor(p * units) per layer at p < 1 takes at "
                               "most %lld of %lld parameters", what, o->ratio, (long long)got,
                          (long long)pb_model_params(m));
    return 0;
}

int pb_act_uniform_plan(pb_model *shape, double p, pb_err *err) {
    for (int l = 0; l < shape->cfg.n_layers; l++) {
        pb_layer *L = &shape->layers[l];
        if (L->has_attn && L->n_kv_heads > 0) {
            int r = L->n_heads / L->n_kv_heads;
            L->n_kv_heads -= pb_act_uniform_count(L->n_kv_heads, p);
            L->n_heads = L->n_kv_heads * r;
        }
        if (L->has_mlp) L->ffn_dim -= pb_act_uniform_count(L->ffn_dim, p);
    }
    (void)err;
    return 0;
}
