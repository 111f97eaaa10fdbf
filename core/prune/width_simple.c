/* width_simple.c — LLM-Pruner's two data-free baselines, "L2" (magnitude) and "Random",
 * and the block-wise selection all three LLM-Pruner variants share (width_common.h).
 *
 * magnitude: a head unit's score is the L1 or L2 norm (criterion l1 | l2, default l2, the
 * paper's "L2" row) of all its weights: the q rows of its query heads, its k and v rows and
 * its o columns; a channel's, of its gate and up rows and its down column. Biases are not
 * scored (LLM-Pruner's MagnitudeImportance reads .weight only). Ranking by the norm equals
 * ranking by LLM-Pruner's score for MHA, sum_c mean_members sum |w|^p over a head's channels,
 * since that is the same sum of |w|^p over the group divided by the member count. (FLAP's
 * Mag-sp is different: ||W_{:,j}|| of o_proj / down_proj columns alone.)
 * random: scores uniform in [0, 1) from splitmix64, one stream per (layer, kind) keyed by
 * o->seed, so that a layer's scores do not depend on the range or the granularity asked. */
#include "width_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared block-wise selection ------------------------------------------------------ */

bool pb_width_in_range(const pb_prune_opts *o, int l) {
    if (o->layer_start == -1 && o->layer_end == -1) return true;
    return l >= o->layer_start && l < o->layer_end;
}

void pb_width_counts(const pb_model *m, const pb_prune_opts *o, int l, double r, int *units, int *chans) {
    const pb_layer *L = &m->layers[l];
    *units = *chans = 0;
    if (!pb_width_in_range(o, l)) return;
    if (L->has_attn && L->n_kv_heads > 0 && L->head_dim > 0) {
        int C = L->n_kv_heads * L->head_dim;
        *units = pb_prune_count(C, r) / L->head_dim;
    }
    if (L->has_mlp && L->ffn_dim > 0) *chans = pb_prune_count(L->ffn_dim, r);
}

int pb_width_check_amount(const pb_model *m, const pb_prune_opts *o, const char *who, pb_err *err) {
    if (o->count >= 0)
        return pb_err_set(err, "%s: --num-blocks is depth pruning's; give --ratio or --group-ratio", who);
    if (o->iterative)
        return pb_err_set(err, "%s: prunes one-shot, as LLM-Pruner's block strategy does; --iterative is depth "
                               "pruning's", who);
    if (o->protect_first || o->protect_last)
        return pb_err_set(err, "%s: --protect-first/--protect-last are depth pruning's; --layers START:END says "
                               "which layers are pruned", who);
    if (o->ratio >= 0.0 && o->native >= 0.0)
        return pb_err_set(err, "%s: give one of --ratio (a fraction of all parameters) and --group-ratio "
                               "(the per-layer ratio), not both", who);
    if (isnan(o->native) || (o->native >= 0.0 && !(o->native < 1.0)) || (o->native < 0.0 && o->native != -1.0))
        return pb_err_set(err, "%s: --group-ratio %g is outside [0, 1)", who, o->native);
    int L = m->cfg.n_layers;
    if ((o->layer_start != -1 || o->layer_end != -1) &&
        (o->layer_start < 0 || o->layer_end > L || o->layer_start >= o->layer_end))
        return pb_err_set(err, "%s: --layers %d:%d is outside the model's layers 0:%d (half-open START:END)", who,
                          o->layer_start, o->layer_end, L);
    return 0;
}

static int64_t removed_at(const pb_model *m, const pb_prune_opts *o, double r) {
    int64_t n = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        int u, c;
        pb_width_counts(m, o, l, r, &u, &c);
        n += (int64_t)u * pb_head_unit_params(m, l) + (int64_t)c * pb_channel_params(m, l);
    }
    return n;
}

int pb_width_group_ratio(const pb_model *m, const pb_prune_opts *o, const char *who, double *r, pb_err *err) {
    if (o->native >= 0.0) {
        *r = o->native;
        return 0;
    }
    if (o->ratio < 0.0)
        return pb_err_set(err, "%s: say how much to prune: --ratio (a fraction of all parameters) or --group-ratio "
                               "(LLM-Pruner's per-layer ratio)", who);
    *r = pb_prune_solve(o->ratio * (double)pb_model_params(m), removed_at, m, o);
    return 0;
}

typedef struct { double s; int i; } ranked;

/* Ascending score, ties to the lower index; NaN after every number, so a broken score
 * keeps its unit rather than silently choosing it. */
static int cmp_ranked(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    bool xn = isnan(x->s), yn = isnan(y->s);
    if (xn != yn) return xn ? 1 : -1;
    if (!xn && x->s != y->s) return x->s < y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Appends the k lowest of sc[0..n) to out as (layer, kind, index). */
static int lowest(const double *sc, int n, int k, int layer, pb_struct_kind kind, pb_struct *out, int *nout,
                  pb_err *err) {
    if (k <= 0) return 0;
    ranked *rk = malloc(sizeof *rk * (size_t)n);
    PB_CHECK_ALLOC(rk, err);
    for (int i = 0; i < n; i++) rk[i] = (ranked){sc[i], i};
    qsort(rk, (size_t)n, sizeof *rk, cmp_ranked);
    for (int i = 0; i < k && i < n; i++) out[(*nout)++] = (pb_struct){layer, kind, rk[i].i};
    free(rk);
    return 0;
}

int pb_width_select(pb_model *m, const pb_prune_opts *o, double r, const pb_scores *heads, const pb_scores *chans,
                    pb_prune_result *res, pb_err *err) {
    int L = m->cfg.n_layers;
    size_t total = 0;
    for (int l = 0; l < L; l++) {
        int u, c;
        pb_width_counts(m, o, l, r, &u, &c);
        total += (size_t)u + (size_t)c;
    }
    if (total == 0) return 0;
    pb_struct *s = malloc(sizeof *s * total);
    PB_CHECK_ALLOC(s, err);
    int n = 0, rc = 0;
    for (int l = 0; rc == 0 && l < L; l++) {
        int u, c;
        pb_width_counts(m, o, l, r, &u, &c);
        const pb_layer *Ly = &m->layers[l];
        if ((u > 0 && heads->count[l] != Ly->n_kv_heads) || (c > 0 && chans->count[l] != Ly->ffn_dim)) {
            rc = pb_err_set(err, "prune: internal: layer %d's scores do not match its shape", l);
            break;
        }
        rc = lowest(heads->score[l], heads->count[l], u, l, PB_S_HEAD, s, &n, err);
        if (rc == 0) rc = lowest(chans->score[l], chans->count[l], c, l, PB_S_CHANNEL, s, &n, err);
    }
    if (rc == 0) rc = pb_prune_remove(m, o, s, n, NULL, res, err);
    free(s);
    return rc;
}

int pb_width_plan(pb_model *shape, const pb_prune_opts *o, const char *who, pb_err *err) {
    PB_TRY(pb_width_check_amount(shape, o, who, err));
    double r;
    PB_TRY(pb_width_group_ratio(shape, o, who, &r, err));
    for (int l = 0; l < shape->cfg.n_layers; l++) {
        pb_layer *L = &shape->layers[l];
        int u, c;
        pb_width_counts(shape, o, l, r, &u, &c);
        if (u > 0) {
            int q = L->n_heads / L->n_kv_heads;
            L->n_kv_heads -= u;
            L->n_heads = L->n_kv_heads * q;
            if (L->n_kv_heads == 0) L->has_attn = false;
        }
        if (c > 0) {
            L->ffn_dim -= c;
            if (L->ffn_dim == 0) L->has_mlp = false;
        }
    }
    return 0;
}

/* ---- magnitude ------------------------------------------------------------------------ */

static int mag_p(const pb_prune_opts *o, pb_err *err) {
    if (!o->criterion || strcmp(o->criterion, "l2") == 0) return 2;
    if (strcmp(o->criterion, "l1") == 0) return 1;
    return pb_err_set(err, "magnitude: unknown --criterion '%s' (l1, l2)", o->criterion), 0;
}

/* aggregation is llm-pruner's reduction over a group's members; these methods have none */
static int no_aggregation(const pb_prune_opts *o, const char *who, pb_err *err) {
    if (o->aggregation && strcmp(o->aggregation, "sum") != 0)
        return pb_err_set(err, "%s: --aggregation is llm-pruner's group reduction; %s has none", who, who);
    return 0;
}

static int check_magnitude(const pb_model *m, const pb_prune_opts *o, pb_err *err) {
    if (mag_p(o, err) == 0) return -1;
    PB_TRY(no_aggregation(o, "magnitude", err));
    return pb_width_check_amount(m, o, "magnitude", err);
}

/* below this many elements a loop stays on one thread: a parallel region costs more */
#define PAR_MIN ((size_t)1 << 18)

static double pw(double x, int p) { return p == 1 ? fabs(x) : x * x; }

/* sum |w|^p over rows [r0, r0 + nr) of a (rows, cols) matrix */
static double rows_pow(const float *w, size_t r0, size_t nr, size_t cols, int p) {
    double s = 0;
    for (size_t i = r0 * cols; i < (r0 + nr) * cols; i++) s += pw(w[i], p);
    return s;
}

/* out[c] = sum over rows of |w[r][c]|^p, column blocks in parallel (each column summed in row
 * order by one thread, so the result does not depend on the thread count) */
static void cols_pow(const float *w, size_t rows, size_t cols, int p, double *out) {
    long nb = (long)((cols + 63) / 64);
#pragma omp parallel for schedule(static) if (rows * cols >= PAR_MIN)
    for (long b = 0; b < nb; b++) {
        size_t c0 = (size_t)b * 64, c1 = c0 + 64 < cols ? c0 + 64 : cols;
        for (size_t c = c0; c < c1; c++) out[c] = 0;
        for (size_t r = 0; r < rows; r++)
            for (size_t c = c0; c < c1; c++) out[c] += pw(w[r * cols + c], p);
    }
}

static double finish(double s, int p) { return p == 1 ? s : sqrt(s); }

static int magnitude_layer(const pb_model *m, int l, int p, double *heads, double *chans, pb_err *err) {
    const pb_layer *L = &m->layers[l];
    size_t d = (size_t)m->cfg.dim;
    if (heads && L->has_attn) {
        size_t hd = (size_t)L->head_dim, rq = (size_t)(L->n_heads / L->n_kv_heads), qd = (size_t)L->n_heads * hd;
        double *oc = malloc(sizeof(double) * qd);
        PB_CHECK_ALLOC(oc, err);
        cols_pow(L->wo, d, qd, p, oc);
#pragma omp parallel for schedule(static) if (4 * qd * d >= PAR_MIN)
        for (int g = 0; g < L->n_kv_heads; g++) {
            double s = rows_pow(L->wq, (size_t)g * rq * hd, rq * hd, d, p) + rows_pow(L->wk, (size_t)g * hd, hd, d, p) +
                       rows_pow(L->wv, (size_t)g * hd, hd, d, p);
            for (size_t c = (size_t)g * rq * hd; c < (size_t)(g + 1) * rq * hd; c++) s += oc[c];
            heads[g] = finish(s, p);
        }
        free(oc);
    }
    if (chans && L->has_mlp) {
        size_t f = (size_t)L->ffn_dim;
        PB_TRY(f > 0 ? 0 : pb_err_set(err, "magnitude: layer %d has an MLP without channels", l));
        cols_pow(L->w_down, d, f, p, chans);
#pragma omp parallel for schedule(static) if (2 * f * d >= PAR_MIN)
        for (long c = 0; c < (long)f; c++) {
            double s = chans[c] + rows_pow(L->w_gate, (size_t)c, 1, d, p) + rows_pow(L->w_up, (size_t)c, 1, d, p);
            chans[c] = finish(s, p);
        }
    }
    return 0;
}

/* Scores of every layer (heads / chans may be NULL when not wanted). */
static int magnitude_scores(const pb_model *m, const pb_prune_opts *o, pb_scores *heads, pb_scores *chans,
                            pb_err *err) {
    int p = mag_p(o, err);
    if (p == 0) return -1;
    for (int l = 0; l < m->cfg.n_layers; l++)
        PB_TRY(magnitude_layer(m, l, p, heads ? heads->score[l] : NULL, chans ? chans->score[l] : NULL, err));
    return 0;
}

/* ---- random --------------------------------------------------------------------------- */

static void random_scores(const pb_model *m, const pb_prune_opts *o, pb_scores *heads, pb_scores *chans) {
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < 2; k++) {
            pb_scores *s = k == 0 ? heads : chans;
            if (!s) continue;
            uint64_t st = o->seed ^ pb_mix64(((uint64_t)l << 8) | (uint64_t)(k == 0 ? PB_S_HEAD : PB_S_CHANNEL));
            for (int i = 0; i < s->count[l]; i++) s->score[l][i] = pb_rng_uniform(&st);
        }
}

static int check_random(const pb_model *m, const pb_prune_opts *o, pb_err *err) {
    if (o->criterion && strcmp(o->criterion, "random") != 0)
        return pb_err_set(err, "random: unknown --criterion '%s' (random has no criterion)", o->criterion);
    PB_TRY(no_aggregation(o, "random", err));
    return pb_width_check_amount(m, o, "random", err);
}

/* ---- the two methods ------------------------------------------------------------------ */

/* Both kinds of scores for run (is_random picks the scorer). */
static int both_scores(const pb_model *m, const pb_prune_opts *o, bool is_random, pb_scores *h, pb_scores *c,
                       pb_err *err) {
    memset(c, 0, sizeof *c);
    PB_TRY(pb_scores_alloc(h, m, PB_S_HEAD, err));
    if (pb_scores_alloc(c, m, PB_S_CHANNEL, err) != 0) {
        pb_scores_free(h);
        return -1;
    }
    if (is_random) random_scores(m, o, h, c);
    else if (magnitude_scores(m, o, h, c, err) != 0) {
        pb_scores_free(h);
        pb_scores_free(c);
        return -1;
    }
    return 0;
}

static int run_simple(pb_model *m, const pb_prune_opts *o, pb_prune_result *r, bool is_random, pb_err *err) {
    const char *who = is_random ? "random" : "magnitude";
    double ratio;
    PB_TRY(pb_width_group_ratio(m, o, who, &ratio, err));
    pb_scores h, c;
    PB_TRY(both_scores(m, o, is_random, &h, &c, err));
    int rc = pb_width_select(m, o, ratio, &h, &c, r, err);
    pb_scores_free(&h);
    pb_scores_free(&c);
    return rc;
}

static int score_simple(const pb_model *m, const pb_prune_opts *o, pb_scores *s, bool is_random, pb_err *err) {
    const char *who = is_random ? "random" : "magnitude";
    if (o->granularity != PB_S_HEAD && o->granularity != PB_S_CHANNEL)
        return pb_err_set(err, "importance: %s scores head units and channels (--granularity head or channel), not %s",
                          who, pb_struct_kind_names[o->granularity]);
    PB_TRY(pb_scores_alloc(s, m, o->granularity, err));
    pb_scores *h = o->granularity == PB_S_HEAD ? s : NULL, *c = h ? NULL : s;
    if (is_random) random_scores(m, o, h, c);
    else if (magnitude_scores(m, o, h, c, err) != 0) {
        pb_scores_free(s);
        return -1;
    }
    return 0;
}

static int run_magnitude(pb_model *m, const pb_prune_opts *o, pb_prune_result *r, pb_err *err) {
    return run_simple(m, o, r, false, err);
}
static int score_magnitude(const pb_model *m, const pb_prune_opts *o, pb_scores *s, pb_err *err) {
    return score_simple(m, o, s, false, err);
}
static int plan_magnitude(pb_model *shape, const pb_prune_opts *o, pb_err *err) {
    if (mag_p(o, err) == 0) return -1;
    PB_TRY(no_aggregation(o, "magnitude", err));
    return pb_width_plan(shape, o, "magnitude", err);
}
const pb_pruner pb_pruner_magnitude = {"magnitude", check_magnitude, run_magnitude, score_magnitude, plan_magnitude};

static int run_random(pb_model *m, const pb_prune_opts *o, pb_prune_result *r, pb_err *err) {
    return run_simple(m, o, r, true, err);
}
static int score_random(const pb_model *m, const pb_prune_opts *o, pb_scores *s, pb_err *err) {
    return score_simple(m, o, s, true, err);
}
static int plan_random(pb_model *shape, const pb_prune_opts *o, pb_err *err) {
    if (o->criterion && strcmp(o->criterion, "random") != 0)
        return pb_err_set(err, "random: unknown --criterion '%s' (random has no criterion)", o->criterion);
    PB_TRY(no_aggregation(o, "random", err));
    return pb_width_plan(shape, o, "random", err);
}
const pb_pruner pb_pruner_random = {"random", check_random, run_random, score_random, plan_random};
