/* depth.c — depth pruning as Shortened LLaMA does it (Kim et al. 2024; the specification is
 * reference/shortened-llama.md §1.1-1.4): whole transformer blocks, or single attention or
 * MLP modules, scored and removed.
 *
 * Criteria (o->criterion; NULL means "taylor", the paper's main Taylor+ criterion):
 *   magnitude  Σ|w| over the candidate's projections (q,k,v,o / gate,up,down) and its RMSNorm
 *              gain (input_layernorm / post_attention_layernorm); a block has all 7 + 2.
 *              Biases are not counted: the specification names only these tensors.
 *   taylor     Σ|w · ∂L/∂w| over the same tensors, L the mean next-token loss over all
 *              calibration windows as one batch (so the paper's sum-then-abs over batches is moot).
 *   ppl        exp(mean NLL over the calibration windows) of the model without the candidate.
 * Lower scores go first; equal scores go by the lower original layer, then attention before MLP.
 *
 * Candidates: o->granularity BLOCK, ATTN or MLP (modules of one kind), or o->module_joint
 * (attention and MLP modules in one ranking; o->granularity is then ignored). A layer that
 * lacks a module has no candidate of that kind. Layers [0, protect_first) and
 * [L - protect_last, L) of the ORIGINAL model are never candidates.
 *
 * How many (exactly one of count and ratio): o->count structures, or with o->ratio the
 * largest k whose k lowest-ranked candidates hold at most ratio * (all parameters before)
 * parameters. One-shot ranks once and removes the k lowest together; iterative removes the
 * lowest, re-scores the pruned model and repeats (with a ratio, until the lowest no longer
 * fits the budget). A ratio or count that would need protected structures fails before
 * anything is scored or changed.
 *
 * Importance (pb_importance) gives one kind per call, for every layer (protection does not
 * apply): the joint "module" ranking is asked as attn and mlp separately, since one pb_scores
 * holds one kind. The dry run plans whole blocks of a model whose blocks are all alike.
 *
 * With o->memo, the scores of the unpruned model (one-shot ranking, the first step of an
 * iterative one, importance) are kept per criterion and calibration and reused at every
 * amount and granularity; PPL then runs one forward pass per candidate per memo, not per run. */
#include "prune_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { C_MAGNITUDE, C_TAYLOR, C_PPL };

typedef struct {
    int layer;           /* in m's current numbering */
    int orig;            /* in the original model's numbering */
    pb_struct_kind kind; /* BLOCK, ATTN or MLP */
    int64_t params;
    double score;
    bool prot;           /* protected (never removed) */
} cand;

static const char *crit_name(const pb_prune_opts *o) { return o->criterion ? o->criterion : "taylor"; }

static int crit_id(const pb_prune_opts *o) {
    const char *c = crit_name(o);
    return strcmp(c, "magnitude") == 0 ? C_MAGNITUDE : strcmp(c, "taylor") == 0 ? C_TAYLOR
         : strcmp(c, "ppl") == 0 ? C_PPL : -1;
}

static const char *noun(const pb_prune_opts *o) {
    if (o->module_joint) return "modules";
    return o->granularity == PB_S_ATTN ? "attention modules" : o->granularity == PB_S_MLP ? "MLP modules" : "blocks";
}

/* Option checks that need no weights and no data (shared with the dry run). */
static int check_names(const pb_prune_opts *o, pb_err *err) {
    if (crit_id(o) < 0)
        return pb_err_set(err, "prune: unknown depth criterion '%s' (magnitude, taylor, ppl)", crit_name(o));
    if (!o->module_joint && o->granularity != PB_S_BLOCK && o->granularity != PB_S_ATTN && o->granularity != PB_S_MLP)
        return pb_err_set(err, "prune: method depth removes blocks or attention / MLP modules (granularity block, "
                          "attn, mlp or module), not %s",
                          o->granularity >= 0 && o->granularity <= PB_S_CHANNEL ? pb_struct_kind_names[o->granularity]
                                                                               : "(invalid)");
    if (o->native >= 0.0)
        return pb_err_set(err, "prune: method depth takes --ratio or --num-blocks, not --group-ratio / --p");
    if (o->layer_start != -1 || o->layer_end != -1)
        return pb_err_set(err, "prune: method depth does not take --layers; --protect-first / --protect-last keep "
                          "blocks");
    return 0;
}

static int check_depth(const pb_model *m, const pb_prune_opts *o, pb_err *err) {
    (void)m;
    PB_TRY(check_names(o, err));
    if (crit_id(o) != C_MAGNITUDE && (!o->calib || o->calib->n < 1 || o->calib->T < 2 || !o->calib->ids))
        return pb_err_set(err, "prune: criterion %s needs calibration data (--calib NAME|FILE)", crit_name(o));
    return 0;
}

/* Exactly one of count and ratio (the driver has already checked the ratio's range). */
static int check_amount(const pb_prune_opts *o, pb_err *err) {
    if (o->count < 0 && o->ratio < 0.0) return pb_err_set(err, "prune: method depth needs --num-blocks K or --ratio R");
    if (o->count >= 0 && o->ratio >= 0.0)
        return pb_err_set(err, "prune: method depth takes --num-blocks or --ratio, not both");
    return 0;
}

static int too_many(const pb_prune_opts *o, int k, int n, pb_err *err) {
    return pb_err_set(err, "prune: removing %d %s needs more than the %d unprotected ones (--protect-first %d "
                      "--protect-last %d)", k, noun(o), n, o->protect_first, o->protect_last);
}

/* ---- scores --------------------------------------------------------------------------- */

/* Σ|w_i| (g NULL) or Σ|w_i g_i| in double. Fixed chunks summed in order make the result
 * independent of the thread count, so rankings (and their ties) are reproducible. */
static double abs_sum(const float *w, const float *g, size_t n) {
    enum { MAX_CHUNKS = 1024 };
    double part[MAX_CHUNKS];
    size_t ch = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    if (ch < 16384) ch = 16384;
    int nch = (int)((n + ch - 1) / ch);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nch > 1)
#endif
    for (int c = 0; c < nch; c++) {
        size_t a = (size_t)c * ch, b = a + ch < n ? a + ch : n;
        double s = 0;
        if (g)
            for (size_t i = a; i < b; i++) s += fabs((double)w[i] * (double)g[i]);
        else
            for (size_t i = a; i < b; i++) s += fabs((double)w[i]);
        part[c] = s;
    }
    double s = 0;
    for (int c = 0; c < nch; c++) s += part[c];
    return s;
}

static double magnitude_attn(const pb_model *m, int l) {
    const pb_layer *L = &m->layers[l];
    if (!L->has_attn) return 0;
    size_t d = (size_t)m->cfg.dim, q = (size_t)L->n_heads * L->head_dim, kv = (size_t)L->n_kv_heads * L->head_dim;
    return abs_sum(L->attn_norm, NULL, d) + abs_sum(L->wq, NULL, q * d) + abs_sum(L->wk, NULL, kv * d) +
           abs_sum(L->wv, NULL, kv * d) + abs_sum(L->wo, NULL, d * q);
}

static double magnitude_mlp(const pb_model *m, int l) {
    const pb_layer *L = &m->layers[l];
    if (!L->has_mlp) return 0;
    size_t d = (size_t)m->cfg.dim, f = (size_t)L->ffn_dim;
    return abs_sum(L->mlp_norm, NULL, d) + abs_sum(L->w_gate, NULL, f * d) + abs_sum(L->w_up, NULL, f * d) +
           abs_sum(L->w_down, NULL, d * f);
}

typedef struct {
    double *attn, *mlp; /* (n_layers) */
} taylor_ctx;

static int taylor_consume(void *ctx, const pb_grad_event *ev, pb_err *err) {
    (void)err;
    taylor_ctx *t = ctx;
    if (ev->layer < 0 || !ev->w) return 0;
    double s = abs_sum(ev->w, ev->g, (size_t)ev->rows * (size_t)ev->cols);
    if (ev->kind >= PB_G_ATTN_NORM && ev->kind <= PB_G_BO) t->attn[ev->layer] += s;
    else t->mlp[ev->layer] += s;
    return 0;
}

/* Per layer Σ|w·g| of the attention part and of the MLP part, from one backward pass. */
static int taylor_layers(const pb_model *m, const pb_calib *c, double *attn, double *mlp, pb_err *err) {
    taylor_ctx t = {attn, mlp};
    pb_grad_opts go = {.want = PB_G_BLOCK, .consumer = taylor_consume, .ctx = &t, .norm = PB_LOSS_MEAN_TOKENS};
    if (pb_calib_grads(m, c, 0, &go, err) != 0) return pb_err_prefix(err, "prune: depth taylor scores: ");
    return 0;
}

/* The perplexity of m with candidate x switched off in a shallow copy: the copy shares every
 * weight and only its layer flags differ (the forward skips a missing sublayer), so the
 * caller's model is never touched and no weight is copied. ly is an (n_layers) scratch. */
static int ppl_without(const pb_model *m, pb_layer *ly, const cand *x, const pb_calib *c, double *out, pb_err *err) {
    pb_model v = *m;
    memcpy(ly, m->layers, sizeof *ly * (size_t)m->cfg.n_layers);
    if (x->kind != PB_S_MLP) ly[x->layer].has_attn = false;
    if (x->kind != PB_S_ATTN) ly[x->layer].has_mlp = false;
    v.layers = ly;
    double nll;
    if (pb_calib_nll(&v, c, &nll, err) != 0)
        return pb_err_prefix(err, "prune: depth ppl without layer %d's %s: ", x->orig, pb_struct_kind_names[x->kind]);
    *out = exp(nll);
    return 0;
}

/* Fills x[i].score for the n candidates of m with o's criterion. */
static int compute_cands(const pb_model *m, const pb_prune_opts *o, cand *x, int n, pb_err *err) {
    int L = m->cfg.n_layers, crit = crit_id(o);
    if (n == 0) return 0;
    if (crit == C_MAGNITUDE) {
        for (int i = 0; i < n; i++)
            x[i].score = (x[i].kind != PB_S_MLP ? magnitude_attn(m, x[i].layer) : 0) +
                         (x[i].kind != PB_S_ATTN ? magnitude_mlp(m, x[i].layer) : 0);
    } else if (crit == C_TAYLOR) {
        double *a = calloc((size_t)L, sizeof *a), *f = calloc((size_t)L, sizeof *f);
        int rc = a && f ? taylor_layers(m, o->calib, a, f, err) : pb_err_set(err, "prune: out of memory");
        for (int i = 0; rc == 0 && i < n; i++)
            x[i].score = (x[i].kind != PB_S_MLP ? a[x[i].layer] : 0) + (x[i].kind != PB_S_ATTN ? f[x[i].layer] : 0);
        free(a);
        free(f);
        if (rc) return rc;
    } else {
        pb_layer *ly = malloc(sizeof *ly * (size_t)L);
        PB_CHECK_ALLOC(ly, err);
        pb_progress pr;
        pb_progress_start(&pr, "depth ppl", "candidates", n);
        int rc = 0;
        for (int i = 0; rc == 0 && i < n; i++) {
            rc = ppl_without(m, ly, &x[i], o->calib, &x[i].score, err);
            pb_progress_update(&pr, i + 1);
        }
        pb_progress_end(&pr);
        free(ly);
        if (rc) return rc;
    }
    for (int i = 0; i < n; i++)
        if (isnan(x[i].score))
            return pb_err_set(err, "prune: depth %s score of layer %d's %s is not a number", crit_name(o), x[i].orig,
                              pb_struct_kind_names[x[i].kind]);
    return 0;
}

/* ---- the score memo ------------------------------------------------------------------- */

/* One memo entry per criterion and calibration: every candidate's score on the unpruned
 * model, by original layer * 3 + kind (BLOCK, ATTN, MLP), NAN until computed. A score does
 * not depend on the granularity asked, the protection or the amount, so block, attn, mlp
 * and module runs at every ratio share it, and pb_importance's tables come from it too. */
typedef struct {
    int L;
    double *v; /* (L * 3) */
} depth_memo;

static void depth_memo_free(void *p) {
    depth_memo *d = p;
    if (d) free(d->v);
    free(d);
}

/* The entry of o's criterion for m (created empty when absent); *out NULL when there is no
 * memo, when the key does not fit, or when the entry was made for a model of another depth. */
static int memo_entry(const pb_model *m, const pb_prune_opts *o, depth_memo **out, pb_err *err) {
    *out = NULL;
    pb_prune_opts k = *o; /* only what changes a depth score */
    k.criterion = crit_name(o);
    k.granularity = PB_S_BLOCK;
    k.module_joint = false;
    k.aggregation = k.structure = k.metric = NULL;
    k.seed = 0;
    if (crit_id(o) == C_MAGNITUDE) k.calib = NULL;
    char key[PB_MEMO_KEY_MAX];
    if (!o->memo || pb_prune_memo_key(&k, "depth", key, sizeof key) != 0) return 0;
    depth_memo *d = pb_prune_memo_get(o->memo, key);
    if (d) {
        *out = d->L == m->cfg.n_layers ? d : NULL;
        return 0;
    }
    int L = m->cfg.n_layers;
    d = calloc(1, sizeof *d);
    if (d && !(d->v = malloc(sizeof(double) * (size_t)(3 * L + 1)))) d = (free(d), NULL);
    PB_CHECK_ALLOC(d, err);
    d->L = L;
    for (int i = 0; i < 3 * L; i++) d->v[i] = NAN;
    PB_TRY(pb_prune_memo_put(o->memo, key, d, depth_memo_free, err));
    *out = d;
    return 0;
}

/* Every structure of m, of every kind, in layer order: what one Taylor pass (or the cheap
 * magnitude sums) scores at once. */
static int all_cands(const pb_model *m, cand **out, int *n_out, pb_err *err) {
    int L = m->cfg.n_layers, n = 0;
    cand *x = malloc(sizeof *x * (size_t)(3 * L + 1));
    PB_CHECK_ALLOC(x, err);
    for (int l = 0; l < L; l++) {
        const pb_layer *Ly = &m->layers[l];
        for (int k = PB_S_BLOCK; k <= PB_S_MLP; k++) {
            if ((k == PB_S_ATTN && !Ly->has_attn) || (k == PB_S_MLP && !Ly->has_mlp)) continue;
            x[n++] = (cand){l, l, (pb_struct_kind)k, 0, 0.0, false};
        }
    }
    *out = x;
    *n_out = n;
    return 0;
}

/* compute_cands through the memo: scores it already holds are read, the missing ones are
 * computed and kept. m must be the unpruned model (current numbering = original) when
 * use_memo: the one-shot run before any removal, and importance. PPL computes only the
 * missing candidates (a forward pass each); magnitude and Taylor fill every structure of
 * every kind, as one pass gives them all. */
static int score_cands(const pb_model *m, const pb_prune_opts *o, cand *x, int n, bool use_memo, pb_err *err) {
    if (n == 0) return 0;
    depth_memo *d = NULL;
    for (int i = 0; use_memo && i < n; i++) use_memo = x[i].layer == x[i].orig;
    if (use_memo) PB_TRY(memo_entry(m, o, &d, err));
    if (!d) return compute_cands(m, o, x, n, err);
    cand *y = NULL;
    int ny = 0, rc = 0;
    for (int i = 0; i < n; i++) ny += isnan(d->v[x[i].orig * 3 + x[i].kind]);
    int missing = ny;
    if (missing && crit_id(o) == C_PPL) {
        y = malloc(sizeof *y * (size_t)missing);
        PB_CHECK_ALLOC(y, err);
        ny = 0;
        for (int i = 0; i < n; i++)
            if (isnan(d->v[x[i].orig * 3 + x[i].kind])) y[ny++] = x[i];
    } else if (missing) {
        PB_TRY(all_cands(m, &y, &ny, err));
    }
    if (missing) rc = compute_cands(m, o, y, ny, err);
    for (int i = 0; rc == 0 && i < ny; i++) d->v[y[i].orig * 3 + y[i].kind] = y[i].score;
    free(y);
    PB_TRY(rc);
    for (int i = 0; i < n; i++) x[i].score = d->v[x[i].orig * 3 + x[i].kind];
    pb_prune_memo_tally(o->memo, missing < n, missing > 0);
    return 0;
}

static int cand_cmp(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (a->score != b->score) return a->score < b->score ? -1 : 1;
    if (a->orig != b->orig) return a->orig < b->orig ? -1 : 1;
    return (a->kind > b->kind) - (a->kind < b->kind);
}

/* Every structure of the candidates' kinds in m (orig: original index of each current layer;
 * gone: (L0 * 3) flags of structures already masked, NULL when none), unscored, protected ones
 * flagged; returns them in layer order, unprotected first. */
static int gather(const pb_model *m, const pb_prune_opts *o, const int *orig, int L0, const bool *gone, cand **out,
                  int *n_out, int *n_free, pb_err *err) {
    int L = m->cfg.n_layers, n = 0;
    cand *x = malloc(sizeof *x * (size_t)(2 * L + 1));
    PB_CHECK_ALLOC(x, err);
    pb_struct_kind kinds[2] = {o->granularity, PB_S_MLP};
    int nk = 1;
    if (o->module_joint) kinds[0] = PB_S_ATTN, nk = 2;
    for (int l = 0; l < L; l++) {
        int og = orig ? orig[l] : l;
        for (int j = 0; j < nk; j++) {
            pb_struct_kind k = kinds[j];
            const pb_layer *Ly = &m->layers[l];
            if ((k == PB_S_ATTN && !Ly->has_attn) || (k == PB_S_MLP && !Ly->has_mlp)) continue;
            if (gone && gone[og * 3 + k]) continue;
            pb_struct s = {l, k, 0};
            bool prot = og < o->protect_first || og >= L0 - o->protect_last;
            x[n++] = (cand){l, og, k, pb_struct_params(m, &s), 0.0, prot};
        }
    }
    int f = 0; /* stable partition: the unprotected first */
    cand *tmp = malloc(sizeof *x * (size_t)(n + 1));
    if (!tmp) {
        free(x);
        return pb_err_set(err, "prune: out of memory");
    }
    for (int i = 0; i < n; i++)
        if (!x[i].prot) tmp[f++] = x[i];
    for (int i = 0, j = f; i < n; i++)
        if (x[i].prot) tmp[j++] = x[i];
    free(x);
    *out = tmp;
    *n_out = n;
    *n_free = f;
    return 0;
}

/* ---- importance ------------------------------------------------------------------------- */

static int score_depth(const pb_model *m, const pb_prune_opts *o, pb_scores *s, pb_err *err) {
    memset(s, 0, sizeof *s);
    if (o->module_joint)
        return pb_err_set(err, "importance: depth's 'module' ranking compares attention and MLP module scores, which "
                          "do not fit one score table; ask for granularity attn and mlp separately");
    cand *x;
    int n, n_free; /* importance covers protected layers too */
    PB_TRY(gather(m, o, NULL, m->cfg.n_layers, NULL, &x, &n, &n_free, err));
    int rc = score_cands(m, o, x, n, true, err);
    if (rc == 0) rc = pb_scores_alloc(s, m, o->granularity, err);
    for (int i = 0; rc == 0 && i < n; i++) s->score[x[i].layer][0] = x[i].score;
    free(x);
    return rc;
}

/* ---- pruning ------------------------------------------------------------------------- */

typedef struct {
    const pb_prune_opts *o;
    int L0;
    int *orig;     /* (L0) original index of each current layer */
    bool *gone;    /* (L0 * 3) structures removed so far, by original layer and kind (a masked
                      one stays in the model and must not be chosen again) */
    double budget; /* ratio mode: parameters that may go; < 0 in count mode */
} depth_run;

/* Removes x[0..k) and keeps orig/gone up to date. */
static int remove_cands(pb_model *m, depth_run *d, const cand *x, int k, pb_prune_result *r, pb_err *err) {
    if (k == 0) return 0;
    pb_struct *s = calloc((size_t)k, sizeof *s);
    PB_CHECK_ALLOC(s, err);
    for (int i = 0; i < k; i++) s[i] = (pb_struct){x[i].layer, x[i].kind, 0};
    int rc = pb_prune_remove(m, d->o, s, k, d->orig, r, err);
    free(s);
    PB_TRY(rc);
    for (int i = 0; i < k; i++) d->gone[x[i].orig * 3 + x[i].kind] = true;
    if (!d->o->mask_only) { /* sliced blocks leave the numbering: rebuild orig from what is left */
        int kept = 0;
        for (int og = 0; og < d->L0; og++)
            if (!d->gone[og * 3 + PB_S_BLOCK]) d->orig[kept++] = og;
    }
    return 0;
}

static int64_t smallest(const cand *x, int n) {
    int64_t p = -1;
    for (int i = 0; i < n; i++)
        if (p < 0 || x[i].params < p) p = x[i].params;
    return p;
}

static int run_one_shot(pb_model *m, depth_run *d, cand *x, int n, int k, pb_prune_result *r, pb_err *err) {
    if (d->budget >= 0 && (n == 0 || (double)smallest(x, n) > d->budget)) return 0; /* nothing fits: no scoring */
    /* the model is still the unpruned one here: its scores may come from (and go to) the memo */
    PB_TRY(score_cands(m, d->o, x, n, true, err));
    qsort(x, (size_t)n, sizeof *x, cand_cmp);
    if (d->budget >= 0) {
        double sum = 0;
        for (k = 0; k < n && sum + (double)x[k].params <= d->budget; k++) sum += (double)x[k].params;
    }
    return remove_cands(m, d, x, k, r, err);
}

static int run_iterative(pb_model *m, depth_run *d, int k, pb_prune_result *r, pb_err *err) {
    double removed = 0;
    for (int step = 0; d->budget >= 0 || step < k; step++) {
        cand *x;
        int n_all, n;
        PB_TRY(gather(m, d->o, d->orig, d->L0, d->gone, &x, &n_all, &n, err));
        if (n == 0 || (d->budget >= 0 && removed + (double)smallest(x, n) > d->budget)) {
            free(x);
            return 0;
        }
        /* the memo only for the first step: later ones re-score the model as the removals
         * so far left it */
        int rc = score_cands(m, d->o, x, n, step == 0, err), best = 0;
        for (int i = 1; rc == 0 && i < n; i++)
            if (cand_cmp(&x[i], &x[best]) < 0) best = i;
        bool fits = d->budget < 0 || removed + (double)x[best].params <= d->budget;
        if (rc == 0 && fits) rc = remove_cands(m, d, &x[best], 1, r, err);
        removed += (double)x[best].params;
        free(x);
        if (rc || !fits) return rc;
    }
    return 0;
}

static int params_cmp(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    return (a->params > b->params) - (a->params < b->params);
}

/* With a ratio, the structures the budget would take when every unprotected one goes
 * first (the only case where it reaches the protected ones, whatever the ranking): the
 * protected ones follow, smallest first. Returns how many that is (n_free when the budget
 * does not reach past the unprotected). Sorts x[n_free..n) by size. */
static int ratio_needs(cand *x, int n, int n_free, double budget) {
    double all = 0;
    for (int i = 0; i < n_free; i++) all += (double)x[i].params;
    if (all > budget) return n_free;
    qsort(x + n_free, (size_t)(n - n_free), sizeof *x, params_cmp);
    int need = n_free;
    while (need < n && all + (double)x[need].params <= budget) all += (double)x[need++].params;
    return need;
}

static int run_depth(pb_model *m, const pb_prune_opts *o, pb_prune_result *r, pb_err *err) {
    PB_TRY(check_amount(o, err));
    int L0 = m->cfg.n_layers;
    depth_run d = {o, L0, malloc(sizeof(int) * (size_t)(L0 ? L0 : 1)), calloc((size_t)L0 * 3 + 1, sizeof(bool)), -1.0};
    cand *x = NULL;
    int n = 0, n_free = 0, rc = 0, k = o->count;
    if (!d.orig || !d.gone) rc = pb_err_set(err, "prune: out of memory");
    for (int l = 0; rc == 0 && l < L0; l++) d.orig[l] = l;
    if (rc == 0) rc = gather(m, o, d.orig, L0, NULL, &x, &n, &n_free, err);
    if (rc == 0 && o->ratio >= 0.0) {
        /* checked before any work or change: ranking cannot alter whether everything
         * unprotected fits the budget */
        d.budget = o->ratio * (double)pb_model_params(m);
        int need = ratio_needs(x, n, n_free, d.budget);
        if (need > n_free) rc = too_many(o, need, n_free, err);
    } else if (rc == 0 && k > n_free) {
        rc = too_many(o, k, n_free, err);
    }
    if (rc == 0 && (k > 0 || d.budget >= 0)) {
        if (o->iterative) rc = run_iterative(m, &d, k, r, err);
        else rc = run_one_shot(m, &d, x, n_free, k, r, err);
    }
    free(x);
    free(d.orig);
    free(d.gone);
    return rc;
}

/* ---- dry run ------------------------------------------------------------------------- */

static int plan_depth(pb_model *shape, const pb_prune_opts *o, pb_err *err) {
    PB_TRY(check_names(o, err));
    PB_TRY(check_amount(o, err));
    if (o->module_joint || o->granularity != PB_S_BLOCK)
        return pb_err_set(err, "prune --dry-run: method depth plans whole blocks only; which %s go depends on the "
                          "weights", noun(o));
    int L = shape->cfg.n_layers, n = L - o->protect_first - o->protect_last;
    for (int l = 1; l < L; l++) {
        const pb_layer *a = &shape->layers[0], *b = &shape->layers[l];
        if (a->n_heads != b->n_heads || a->n_kv_heads != b->n_kv_heads || a->head_dim != b->head_dim ||
            a->ffn_dim != b->ffn_dim || a->has_attn != b->has_attn || a->has_mlp != b->has_mlp ||
            pb_layer_params(shape, 0) != pb_layer_params(shape, l))
            return pb_err_set(err, "prune --dry-run: method depth needs the weights when blocks differ in shape "
                              "(layer %d differs from layer 0): which blocks go decides the size", l);
    }
    int k = o->count;
    if (o->ratio >= 0.0) {
        /* all blocks alike: the largest k with k blocks within the budget */
        int64_t bp = L ? pb_layer_params(shape, 0) : 0;
        double budget = o->ratio * (double)pb_model_params(shape);
        k = 0;
        while (bp > 0 && k < L && (double)(bp * (k + 1)) <= budget) k++;
    }
    if (k > n) return too_many(o, k, n, err);
    shape->cfg.n_layers -= k;
    return 0;
}

const pb_pruner pb_pruner_depth = {"depth", check_depth, run_depth, score_depth, plan_depth};
