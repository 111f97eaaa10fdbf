/* flap.c — FLAP (CASIA-IVA-Lab/FLAP lib/prune.py::prune_flap, lib/layerwrapper.py::BiasGPT;
 * ../shared/reference/width-pruning.md section 2).
 *
 * Statistics come from the DENSE model (each layer's dense output feeds the next; pruning
 * happens at the end), per input channel j of o_proj and down_proj: the baseline x̄_j, the
 * fluctuation f_j (the code's online estimator, spelled out in width_act.c) and, for WIFN,
 * mean_n ||X[n,:,j]||^2. Metrics: wifv = f_j * ||W[:,j]||^2 (default), ifv = f_j,
 * wifn = mean_i |W_ij| * sqrt(mean_n ||X[n,:,j]||^2). The attention metric is squared again
 * (the code's `W_metric ** 2`), the MLP metric not. Both are standardised within their layer
 * and module, (S - mean) / std with torch.std's default, the unbiased (n - 1) estimator; a
 * module whose scores do not vary (std 0, or one channel) standardises to all zeros. A head
 * unit (KV group; one head with MHA, FLAP's case) scores the mean of its channels.
 *
 * Structures: al-am (default) sorts every head unit and channel of all layers by score,
 * descending, with costs head unit = its parameters / (3 * dim) and channel = 1, and takes the
 * threshold at the index where the cumulative cost is closest to (1 - p) * total (the first
 * such index); units scoring > threshold stay. (The code stores the head cost 512/3 in an
 * integer tensor, i.e. 170 for LLaMA-7B; we use the exact ratio.) Ties in the sort go head
 * units first, then by layer and index. p = 0 removes nothing (the code would still remove
 * the lowest unit). A layer may lose all its head units (or channels): its attention (MLP)
 * then goes. ul-um: each layer loses its floor(p * units) lowest head units and floor(p *
 * ffn_dim) lowest channels (the code ranks heads by the sum of the unstandardised channel
 * scores, which orders them as the mean of the standardised ones; ties: lower index first).
 *
 * Bias compensation (default on): b_o += W_o[:, removed] x̄[removed] and b_down likewise,
 * with the weights before slicing, in a zero bias allocated in the model's arena where the
 * layer had none (the code zero-initialises both and assigns); the baseline is kept in double
 * (the code rounds it to fp16). A module that loses every unit goes whole, its bias with it
 * (our layers have no attention without heads; the code would keep W_o x̄ as a constant);
 * pb_prune_mask zeroes that bias too, so that masked and sliced models agree.
 *
 * p is --p (o->native), a fraction of the attention+MLP weights (pb_prune_block_params), or
 * comes from --ratio, a fraction of ALL parameters: the p on pb_prune_solve's 1e-6 grid whose
 * actual removal (units' parameters, minus the new biases, plus the norms and biases of
 * modules that go whole) is closest to ratio * pb_model_params; that p is close to
 * ratio * pb_model_params / pb_prune_block_params.
 *
 * With o->memo, the dense model's statistics and scores (one activation pass) are collected
 * once per metric and calibration and read by every run (either structure, any p or ratio)
 * and by importance; nothing writes to them after collection. */
#include "width_act.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WHAT "flap"

typedef enum { FLAP_WIFV, FLAP_IFV, FLAP_WIFN } flap_metric;

typedef struct {
    flap_metric metric;
    bool ulum;                 /* options() only (false: al-am); not part of a collected state */
    int L;
    int *G, *F;                /* (L) head units, channels (0: no such module) */
    double **head, **chan;     /* (L) -> (G[l]), (F[l]) standardised scores */
    double **att_mean, **mlp_mean; /* (L) -> o_proj / down_proj input baselines x̄ */
} flap_state;

static void state_free(flap_state *f) {
    for (int l = 0; l < f->L; l++) {
        if (f->head) free(f->head[l]);
        if (f->chan) free(f->chan[l]);
        if (f->att_mean) free(f->att_mean[l]);
        if (f->mlp_mean) free(f->mlp_mean[l]);
    }
    free(f->G);
    free(f->F);
    free(f->head);
    free(f->chan);
    free(f->att_mean);
    free(f->mlp_mean);
    memset(f, 0, sizeof *f);
}

static void standardise(double *x, int n) {
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n > 0 ? n : 1;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    double sd = n > 1 ? sqrt(var / (n - 1)) : 0.0;
    for (int i = 0; i < n; i++) x[i] = sd > 0 && isfinite(sd) ? (x[i] - mean) / sd : 0.0;
}

/* The metric of one module's channels into s (C), unstandardised. */
static void metric(flap_metric k, const pb_act_stat *st, const float *W, int D, double *s) {
    int C = st->C;
    if (k == FLAP_WIFN) {
        pb_act_col_abs_mean(W, D, C, s);
        for (int j = 0; j < C; j++) s[j] *= sqrt(st->sq[j]);
    } else if (k == FLAP_WIFV) {
        pb_act_col_sq(W, D, C, s);
        for (int j = 0; j < C; j++) s[j] *= st->fluc[j];
    } else {
        memcpy(s, st->fluc, sizeof(double) * (size_t)C);
    }
}

static double *copy_of(const double *x, int n) {
    double *y = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (y && n > 0) memcpy(y, x, sizeof(double) * (size_t)n);
    return y;
}

typedef struct {
    const pb_model *m;
    flap_state *f;
} collect_ctx;

static int layer_cb(void *vctx, int l, const pb_act_layer *st, bool *changed, pb_err *err) {
    collect_ctx *c = vctx;
    flap_state *f = c->f;
    const pb_layer *L = &c->m->layers[l];
    int D = c->m->cfg.dim, Q = st->att.C, F = st->mlp.C, G = Q ? L->n_kv_heads : 0, per = G ? Q / G : 0;
    *changed = false;
    f->G[l] = G;
    f->F[l] = F;
    double *sa = malloc(sizeof(double) * (size_t)(Q + 1));
    f->head[l] = calloc((size_t)G + 1, sizeof(double));
    f->chan[l] = malloc(sizeof(double) * (size_t)(F + 1));
    f->att_mean[l] = copy_of(st->att.mean, Q);
    f->mlp_mean[l] = copy_of(st->mlp.mean, F);
    if (!sa || !f->head[l] || !f->chan[l] || !f->att_mean[l] || !f->mlp_mean[l]) {
        free(sa);
        return pb_err_set(err, WHAT ": out of memory");
    }
    if (Q) {
        metric(f->metric, &st->att, L->wo, D, sa);
        for (int j = 0; j < Q; j++) sa[j] *= sa[j];
        standardise(sa, Q);
        for (int g = 0; g < G; g++) {
            for (int j = 0; j < per; j++) f->head[l][g] += sa[g * per + j];
            f->head[l][g] /= per;
        }
    }
    if (F) {
        metric(f->metric, &st->mlp, L->w_down, D, f->chan[l]);
        standardise(f->chan[l], F);
    }
    free(sa);
    return 0;
}

static int collect(const pb_model *m, const pb_prune_opts *o, flap_state *f, pb_err *err) {
    int L = m->cfg.n_layers;
    f->L = L;
    size_t n = (size_t)(L ? L : 1);
    f->G = calloc(n, sizeof(int));
    f->F = calloc(n, sizeof(int));
    f->head = calloc(n, sizeof(double *));
    f->chan = calloc(n, sizeof(double *));
    f->att_mean = calloc(n, sizeof(double *));
    f->mlp_mean = calloc(n, sizeof(double *));
    if (!f->G || !f->F || !f->head || !f->chan || !f->att_mean || !f->mlp_mean) {
        state_free(f);
        return pb_err_set(err, WHAT ": out of memory");
    }
    collect_ctx c = {m, f};
    if (pb_act_walk(m, o->calib, f->metric != FLAP_WIFN, false, layer_cb, &c, WHAT, err) != 0) {
        state_free(f);
        return -1;
    }
    return 0;
}

/* ---- the score memo ------------------------------------------------------------------ */

/* The collected state (standardised scores and baselines of the dense model) depends on the
 * metric and the calibration windows only, and nothing reads it but to rank, select and
 * compensate: the memo keeps one per metric for every structure, p and ratio. */
static const char *const metric_names[] = {"wifv", "ifv", "wifn"};

static void state_free_heap(void *p) {
    if (p) state_free(p);
    free(p);
}

/* Whether f was collected on a model shaped like m. */
static bool state_fits(const flap_state *f, const pb_model *m) {
    if (f->L != m->cfg.n_layers) return false;
    for (int l = 0; l < f->L; l++) {
        const pb_layer *L = &m->layers[l];
        if (f->G[l] != (L->has_attn ? L->n_kv_heads : 0) || f->F[l] != (L->has_mlp ? L->ffn_dim : 0)) return false;
    }
    return true;
}

/* *out: m's state under metric, from o->memo (collected and kept there when absent) or, with
 * no memo or one made for another shape, collected into own (which the caller frees). */
static int state_of(const pb_model *m, const pb_prune_opts *o, flap_metric metric, flap_state *own,
                    const flap_state **out, pb_err *err) {
    pb_prune_opts k = *o; /* only what changes the state */
    k.criterion = k.structure = k.aggregation = NULL;
    k.metric = metric_names[metric];
    k.granularity = PB_S_HEAD;
    k.module_joint = false;
    k.layer_start = k.layer_end = -1;
    k.seed = 0;
    char key[PB_MEMO_KEY_MAX];
    if (o->memo && pb_prune_memo_key(&k, "flap", key, sizeof key) == 0) {
        flap_state *e = pb_prune_memo_get(o->memo, key);
        if (e && state_fits(e, m)) {
            pb_prune_memo_tally(o->memo, 1, 0);
            *out = e;
            return 0;
        }
        if (!e) {
            e = calloc(1, sizeof *e);
            PB_CHECK_ALLOC(e, err);
            e->metric = metric;
            if (collect(m, o, e, err) != 0) {
                free(e);
                return -1;
            }
            PB_TRY(pb_prune_memo_put(o->memo, key, e, state_free_heap, err));
            pb_prune_memo_tally(o->memo, 0, 1);
            *out = e;
            return 0;
        }
    }
    own->metric = metric;
    PB_TRY(collect(m, o, own, err));
    *out = own;
    return 0;
}

/* ---- AL-AM: one global ranking --------------------------------------------------------- */

typedef struct {
    double s, cost;
    int layer, kind, index; /* kind 0: head unit, 1: channel */
} unit;

typedef struct {
    unit *u;                /* sorted by score, descending */
    double *cum;            /* cumulative cost along u */
    int n;
} ranking;

static int by_score_desc(const void *a, const void *b) {
    const unit *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    if (x->kind != y->kind) return x->kind - y->kind;
    if (x->layer != y->layer) return x->layer - y->layer;
    return x->index - y->index;
}

static int rank_all(const pb_model *m, const flap_state *f, ranking *rk, pb_err *err) {
    int n = 0;
    for (int l = 0; l < f->L; l++) n += f->G[l] + f->F[l];
    rk->n = n;
    rk->u = malloc(sizeof(unit) * (size_t)(n + 1));
    rk->cum = malloc(sizeof(double) * (size_t)(n + 1));
    if (!rk->u || !rk->cum) return pb_err_set(err, WHAT ": out of memory");
    int k = 0;
    for (int l = 0; l < f->L; l++) {
        double hc = (double)pb_head_unit_params(m, l) / (3.0 * m->cfg.dim);
        for (int g = 0; g < f->G[l]; g++) rk->u[k++] = (unit){f->head[l][g], hc, l, 0, g};
        for (int j = 0; j < f->F[l]; j++) rk->u[k++] = (unit){f->chan[l][j], 1.0, l, 1, j};
    }
    qsort(rk->u, (size_t)n, sizeof(unit), by_score_desc);
    double c = 0;
    for (int i = 0; i < n; i++) rk->cum[i] = c += rk->u[i].cost;
    return 0;
}

/* First index of the removed tail rk->u[from..n) at p. */
static int cut(const ranking *rk, double p) {
    if (rk->n == 0 || !(p > 0)) return rk->n;
    double target = rk->cum[rk->n - 1] * (1.0 - p), best = INFINITY;
    int at = 0;
    for (int i = 0; i < rk->n; i++) {
        double e = fabs(rk->cum[i] - target);
        if (e < best) best = e, at = i;
    }
    double thr = rk->u[at].s;
    while (at > 0 && rk->u[at - 1].s <= thr) at--; /* equal scores go with the threshold */
    return at;
}

/* Net parameters removed by taking away kh[l] head units and kc[l] channels per layer. */
static int64_t net_removed(const pb_model *m, const int *kh, const int *kc, bool comp) {
    int64_t n = 0, d = m->cfg.dim;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        if (kh[l] > 0 && kh[l] == L->n_kv_heads) n += pb_struct_params(m, &(pb_struct){l, PB_S_ATTN, 0});
        else if (kh[l] > 0) n += kh[l] * pb_head_unit_params(m, l) - (comp && !L->bo ? d : 0);
        if (kc[l] > 0 && kc[l] == L->ffn_dim) n += pb_struct_params(m, &(pb_struct){l, PB_S_MLP, 0});
        else if (kc[l] > 0) n += kc[l] * pb_channel_params(m, l) - (comp && !L->b_down ? d : 0);
    }
    return n;
}

/* pb_prune_solve's callback sees only (m, o, x): the ranking travels in a struct whose first
 * member is the options (a pointer to a struct converts to one to its first member and back). */
typedef struct {
    pb_prune_opts o;
    const ranking *rk;
    int *kh, *kc;              /* scratch (L) */
    bool comp;
} alam_solve;

static void tally(const ranking *rk, int from, int L, int *kh, int *kc) {
    memset(kh, 0, sizeof(int) * (size_t)L);
    memset(kc, 0, sizeof(int) * (size_t)L);
    for (int i = from; i < rk->n; i++) (rk->u[i].kind ? kc : kh)[rk->u[i].layer]++;
}

static int64_t alam_removed_cb(const pb_model *m, const pb_prune_opts *o, double x) {
    const alam_solve *a = (const alam_solve *)(const void *)o;
    tally(a->rk, cut(a->rk, x), m->cfg.n_layers, a->kh, a->kc);
    return net_removed(m, a->kh, a->kc, a->comp);
}

/* ---- selection, compensation, removal ------------------------------------------------ */

typedef struct {
    int *kh, *kc;                  /* (L) head units / channels removed */
    bool **head_gone, **chan_gone; /* (L) -> (G[l]), (F[l]) */
} selection;

static void sel_free(selection *s, int L) {
    for (int l = 0; l < L; l++) {
        if (s->head_gone) free(s->head_gone[l]);
        if (s->chan_gone) free(s->chan_gone[l]);
    }
    free(s->head_gone);
    free(s->chan_gone);
    free(s->kh);
    free(s->kc);
    memset(s, 0, sizeof *s);
}

static int sel_alloc(selection *s, const flap_state *f, pb_err *err) {
    size_t n = (size_t)(f->L ? f->L : 1);
    s->kh = calloc(n, sizeof(int));
    s->kc = calloc(n, sizeof(int));
    s->head_gone = calloc(n, sizeof(bool *));
    s->chan_gone = calloc(n, sizeof(bool *));
    bool ok = s->kh && s->kc && s->head_gone && s->chan_gone;
    for (int l = 0; ok && l < f->L; l++) {
        s->head_gone[l] = calloc((size_t)f->G[l] + 1, sizeof(bool));
        s->chan_gone[l] = calloc((size_t)f->F[l] + 1, sizeof(bool));
        ok = s->head_gone[l] && s->chan_gone[l];
    }
    return ok ? 0 : pb_err_set(err, WHAT ": out of memory");
}

static int select_ulum(const flap_state *f, double p, selection *s, pb_err *err) {
    for (int l = 0; l < f->L; l++) {
        int kh = pb_act_uniform_count(f->G[l], p), kc = pb_act_uniform_count(f->F[l], p);
        int *idx = malloc(sizeof(int) * (size_t)(kh + kc + 1));
        if (!idx || pb_act_lowest(f->head[l], f->G[l], kh, idx) || pb_act_lowest(f->chan[l], f->F[l], kc, idx + kh)) {
            free(idx);
            return pb_err_set(err, WHAT ": out of memory");
        }
        for (int i = 0; i < kh; i++) s->head_gone[l][idx[i]] = true;
        for (int i = 0; i < kc; i++) s->chan_gone[l][idx[kh + i]] = true;
        s->kh[l] = kh;
        s->kc[l] = kc;
        free(idx);
    }
    return 0;
}

static void select_alam(const ranking *rk, int from, selection *s) {
    for (int i = from; i < rk->n; i++) {
        const unit *u = &rk->u[i];
        if (u->kind == 0) s->head_gone[u->layer][u->index] = true, s->kh[u->layer]++;
        else s->chan_gone[u->layer][u->index] = true, s->kc[u->layer]++;
    }
}

/* b[i] += sum over removed columns j of W[i, j] * mean[j]; column j belongs to unit j / per. */
static void add_bias(float *b, const float *W, int D, int C, int per, const bool *gone, const double *mean) {
    for (int i = 0; i < D; i++) {
        const float *row = W + (size_t)i * C;
        double acc = 0;
        for (int j = 0; j < C; j++)
            if (gone[j / per]) acc += (double)row[j] * mean[j];
        b[i] += (float)acc;
    }
}

static int compensate(pb_model *m, int l, const flap_state *f, const selection *s, pb_err *err) {
    pb_layer *L = &m->layers[l];
    size_t D = (size_t)m->cfg.dim;
    if (s->kh[l] > 0 && s->kh[l] < f->G[l]) {
        int Q = L->n_heads * L->head_dim;
        if (!L->bo && !(L->bo = pb_arena_alloc_n(&m->arena, D, sizeof(float))))
            return pb_err_set(err, WHAT ": out of memory for layer %d's o_proj bias", l);
        add_bias(L->bo, L->wo, (int)D, Q, Q / f->G[l], s->head_gone[l], f->att_mean[l]);
    }
    if (s->kc[l] > 0 && s->kc[l] < f->F[l]) {
        if (!L->b_down && !(L->b_down = pb_arena_alloc_n(&m->arena, D, sizeof(float))))
            return pb_err_set(err, WHAT ": out of memory for layer %d's down_proj bias", l);
        add_bias(L->b_down, L->w_down, (int)D, f->F[l], 1, s->chan_gone[l], f->mlp_mean[l]);
    }
    return 0;
}

static int remove_selected(pb_model *m, const pb_prune_opts *o, const flap_state *f, const selection *s,
                           pb_prune_result *r, pb_err *err) {
    int n = 0;
    for (int l = 0; l < f->L; l++) n += s->kh[l] + s->kc[l];
    pb_struct *list = malloc(sizeof *list * (size_t)(n + 1));
    PB_CHECK_ALLOC(list, err);
    n = 0;
    for (int l = 0; l < f->L; l++) {
        for (int g = 0; g < f->G[l]; g++)
            if (s->head_gone[l][g]) list[n++] = (pb_struct){l, PB_S_HEAD, g};
        for (int j = 0; j < f->F[l]; j++)
            if (s->chan_gone[l][j]) list[n++] = (pb_struct){l, PB_S_CHANNEL, j};
    }
    int rc = pb_prune_remove(m, o, list, n, NULL, r, err);
    free(list);
    return rc;
}

/* ---- options and entry points ---------------------------------------------------------- */

static int options(const pb_prune_opts *o, bool need_amount, flap_state *f, pb_err *err) {
    const char *metric = o->metric, *crit = o->criterion, *st = o->structure ? o->structure : "al-am";
    if (crit && metric && strcmp(crit, metric) != 0)
        return pb_err_set(err, WHAT ": --criterion %s and --metric %s disagree", crit, metric);
    if (!metric) metric = crit ? crit : "wifv";
    if (strcmp(metric, "wifv") == 0) f->metric = FLAP_WIFV;
    else if (strcmp(metric, "ifv") == 0) f->metric = FLAP_IFV;
    else if (strcmp(metric, "wifn") == 0) f->metric = FLAP_WIFN;
    else return pb_err_set(err, WHAT ": unknown metric '%s' (wifv, ifv, wifn)", metric);
    if (strcmp(st, "al-am") == 0) f->ulum = false;
    else if (strcmp(st, "ul-um") == 0) f->ulum = true;
    else return pb_err_set(err, WHAT ": unknown structure '%s' (al-am, ul-um; FLAP's ul-mm and al-mm are not implemented)", st);
    return pb_act_check_amount(o, WHAT, need_amount, err);
}

static int check(const pb_model *m, const pb_prune_opts *o, pb_err *err) {
    (void)m;
    flap_state f = {0};
    PB_TRY(options(o, false, &f, err));
    if (!o->calib || o->calib->n < 1)
        return pb_err_set(err, WHAT ": needs calibration data (--calib NAME|FILE): its scores come from activations");
    if (f.metric != FLAP_WIFN && o->calib->n < 2)
        return pb_err_set(err, WHAT ": metric %s needs at least 2 calibration windows (FLAP's fluctuation estimator "
                               "gives 0 for one)", f.metric == FLAP_WIFV ? "wifv" : "ifv");
    return 0;
}

static int run(pb_model *m, const pb_prune_opts *o, pb_prune_result *r, pb_err *err) {
    flap_state cfg = {0}, own = {0};
    const flap_state *f;
    PB_TRY(options(o, true, &cfg, err));
    PB_TRY(state_of(m, o, cfg.metric, &own, &f, err));
    bool comp = !o->no_bias_compensation;
    ranking rk = {0};
    selection s = {0};
    double p = o->native;
    int rc = sel_alloc(&s, f, err);
    if (rc == 0 && cfg.ulum) {
        rc = pb_act_uniform_p(m, o, comp, WHAT, &p, err);
        if (rc == 0) rc = select_ulum(f, p, &s, err);
    } else if (rc == 0) {
        rc = rank_all(m, f, &rk, err);
        if (rc == 0 && o->native < 0.0) {
            size_t L = (size_t)(f->L ? f->L : 1);
            alam_solve a = {*o, &rk, calloc(L, sizeof(int)), calloc(L, sizeof(int)), comp};
            if (!a.kh || !a.kc) rc = pb_err_set(err, WHAT ": out of memory");
            double target = o->ratio * (double)pb_model_params(m);
            if (rc == 0) p = pb_prune_solve(target, alam_removed_cb, m, &a.o);
            if (rc == 0 && p >= 0.999999 && (double)alam_removed_cb(m, &a.o, p) < target)
                rc = pb_err_set(err, WHAT ": --ratio %g is out of reach (attention and MLP weights are %lld of %lld "
                                      "parameters)", o->ratio, (long long)pb_prune_block_params(m),
                                (long long)pb_model_params(m));
            free(a.kh);
            free(a.kc);
        }
        if (rc == 0) select_alam(&rk, cut(&rk, p), &s);
    }
    for (int l = 0; rc == 0 && comp && l < f->L; l++) rc = compensate(m, l, f, &s, err);
    if (rc == 0) rc = remove_selected(m, o, f, &s, r, err);
    free(rk.u);
    free(rk.cum);
    sel_free(&s, f->L);
    state_free(&own); /* the memo's state stays in the memo */
    return rc;
}

static int score(const pb_model *m, const pb_prune_opts *o, pb_scores *out, pb_err *err) {
    if (o->granularity != PB_S_HEAD && o->granularity != PB_S_CHANNEL)
        return pb_err_set(err, WHAT ": scores head units and FFN channels (--granularity head or channel), not %s",
                          (unsigned)o->granularity < 5 ? pb_struct_kind_names[o->granularity] : "?");
    flap_state cfg = {0}, own = {0};
    const flap_state *f;
    PB_TRY(options(o, false, &cfg, err));
    PB_TRY(state_of(m, o, cfg.metric, &own, &f, err));
    int rc = pb_scores_alloc(out, m, o->granularity, err);
    for (int l = 0; rc == 0 && l < f->L; l++) {
        bool head = o->granularity == PB_S_HEAD;
        memcpy(out->score[l], head ? f->head[l] : f->chan[l], sizeof(double) * (size_t)(head ? f->G[l] : f->F[l]));
    }
    state_free(&own);
    return rc;
}

static int plan(pb_model *shape, const pb_prune_opts *o, pb_err *err) {
    flap_state f = {0};
    PB_TRY(options(o, true, &f, err));
    if (!f.ulum)
        return pb_err_set(err, WHAT ": --structure al-am ranks the head units and channels of all layers together by "
                               "their activation scores, so its plan needs the weights and calibration data "
                               "(--structure ul-um can be planned without)");
    double p;
    PB_TRY(pb_act_uniform_p(shape, o, !o->no_bias_compensation, WHAT, &p, err));
    return pb_act_uniform_plan(shape, p, err);
}

const pb_pruner pb_pruner_flap = {WHAT, check, run, score, plan};
