/* wanda_sp.c — Wanda-sp, the structured Wanda of FLAP's repository (lib/prune.py::prune_wanda_sp;
 * ../shared/reference/width-pruning.md section 3).
 *
 * Per layer, from the o_proj and down_proj inputs X over the calibration windows:
 *   s_j = (1/N) sum_n ||X[n,:,j]||^2, M_ij = |W_ij| sqrt(s_j) for W = o_proj / down_proj,
 *   channel score = mean over rows i of M_ij, head unit score = sum over its channels
 * (a head unit is a KV group: with GQA its o_proj columns are all its query heads' channels;
 * with MHA it is one head, the reference's case). Each layer loses its floor(p * units) lowest
 * head units and floor(p * ffn_dim) lowest channels; where scores tie, the lower index goes
 * first (the reference keeps every unit >= the k-th lowest score, which removes fewer than k
 * on ties). Sequential, as the reference: layer l's statistics are taken with layers < l
 * already pruned; both modules of layer l are scored from one pass through the dense layer l,
 * then pruned, and the pruned layer's output feeds layer l+1. No bias compensation.
 *
 * p is --p (o->native) or comes from --ratio (a fraction of ALL parameters, embeddings
 * included): the p on pb_prune_solve's 1e-6 grid whose per-layer counts remove closest to
 * ratio * pb_model_params (the counts do not depend on the weights). importance scores are
 * the dense model's (no sequential pruning).
 *
 * The score memo (o->memo) cannot serve a run: layer l's statistics come from the model with
 * layers < l already pruned at this run's p, so they differ from one amount to the next.
 * The dense importance scores can: with a memo, one activation pass gives both head-unit
 * and channel scores, and the memo keeps them for either granularity. */
#include "width_act.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WHAT "wanda-sp"

typedef struct {
    pb_model *m;            /* run: the model pruned in place; NULL for scores */
    const pb_model *cm;     /* the model read */
    const pb_prune_opts *o;
    double p;
    pb_prune_result *r;     /* run */
    pb_scores *heads, *chans; /* scores (either may be NULL); both NULL for a run */
} wanda_ctx;

/* c_j = mean_i |W_ij| * sqrt(s_j) for W (D, C). */
static void channel_scores(const pb_act_stat *st, const float *W, int D, double *c) {
    pb_act_col_abs_mean(W, D, st->C, c);
    for (int j = 0; j < st->C; j++) c[j] *= sqrt(st->sq[j]);
}

static int layer_cb(void *vctx, int l, const pb_act_layer *st, bool *changed, pb_err *err) {
    wanda_ctx *c = vctx;
    const pb_layer *L = &c->cm->layers[l];
    int D = c->cm->cfg.dim, Q = st->att.C, F = st->mlp.C, G = Q ? L->n_kv_heads : 0;
    int per = G ? Q / G : 0; /* o_proj columns per head unit */
    double *ca = malloc(sizeof(double) * (size_t)(Q + 1)), *head = calloc((size_t)G + 1, sizeof(double));
    double *chan = malloc(sizeof(double) * (size_t)(F + 1));
    int *idx = malloc(sizeof(int) * (size_t)(G + F + 1));
    pb_struct *s = malloc(sizeof *s * (size_t)(G + F + 1));
    int rc = 0;
    if (!ca || !head || !chan || !idx || !s) rc = pb_err_set(err, WHAT ": out of memory");
    if (rc == 0 && Q) {
        channel_scores(&st->att, L->wo, D, ca);
        for (int g = 0; g < G; g++)
            for (int j = 0; j < per; j++) head[g] += ca[g * per + j];
    }
    if (rc == 0 && F) channel_scores(&st->mlp, L->w_down, D, chan);
    if (rc == 0 && (c->heads || c->chans)) {
        if (c->heads) memcpy(c->heads->score[l], head, sizeof(double) * (size_t)c->heads->count[l]);
        if (c->chans) memcpy(c->chans->score[l], chan, sizeof(double) * (size_t)c->chans->count[l]);
    } else if (rc == 0) {
        int kh = pb_act_uniform_count(G, c->p), kc = pb_act_uniform_count(F, c->p), n = 0;
        if (pb_act_lowest(head, G, kh, idx) || pb_act_lowest(chan, F, kc, idx + kh)) {
            rc = pb_err_set(err, WHAT ": out of memory");
        } else {
            for (int i = 0; i < kh; i++) s[n++] = (pb_struct){l, PB_S_HEAD, idx[i]};
            for (int i = 0; i < kc; i++) s[n++] = (pb_struct){l, PB_S_CHANNEL, idx[kh + i]};
            rc = pb_prune_remove(c->m, c->o, s, n, NULL, c->r, err);
            *changed = n > 0;
        }
    }
    free(ca);
    free(head);
    free(chan);
    free(idx);
    free(s);
    return rc;
}

static int options(const pb_prune_opts *o, bool need_amount, pb_err *err) {
    if (o->criterion && strcmp(o->criterion, "wanda") != 0)
        return pb_err_set(err, WHAT ": unknown criterion '%s' (wanda)", o->criterion);
    if (o->structure || o->metric || o->no_bias_compensation)
        return pb_err_set(err, WHAT ": --structure, --metric and --no-bias-compensation are FLAP's options");
    return pb_act_check_amount(o, WHAT, need_amount, err);
}

static int check(const pb_model *m, const pb_prune_opts *o, pb_err *err) {
    (void)m;
    PB_TRY(options(o, false, err));
    if (!o->calib || o->calib->n < 1)
        return pb_err_set(err, WHAT ": needs calibration data (--calib NAME|FILE): its scores weigh the weights by "
                               "activations");
    return 0;
}

static int run(pb_model *m, const pb_prune_opts *o, pb_prune_result *r, pb_err *err) {
    /* no memo: each layer's statistics depend on this run's p through the layers before it */
    PB_TRY(options(o, true, err));
    wanda_ctx c = {.m = m, .cm = m, .o = o, .r = r};
    PB_TRY(pb_act_uniform_p(m, o, false, WHAT, &c.p, err));
    return pb_act_walk(m, o->calib, false, true, layer_cb, &c, WHAT, err);
}

typedef struct {
    pb_scores heads, chans;
} wanda_memo;

static void wanda_memo_free(void *p) {
    wanda_memo *e = p;
    if (!e) return;
    pb_scores_free(&e->heads);
    pb_scores_free(&e->chans);
    free(e);
}

/* Both tables of the dense model in one pass, kept in o->memo (*out NULL without a memo, when
 * the key does not fit, or when the entry has another model's shape). */
static int memo_scores(const pb_model *m, const pb_prune_opts *o, const wanda_memo **out, pb_err *err) {
    *out = NULL;
    pb_prune_opts k = *o; /* only the calibration windows change these scores */
    k.criterion = k.aggregation = k.structure = k.metric = NULL;
    k.granularity = PB_S_HEAD;
    k.module_joint = false;
    k.layer_start = k.layer_end = -1;
    k.seed = 0;
    char key[PB_MEMO_KEY_MAX];
    if (!o->memo || pb_prune_memo_key(&k, WHAT, key, sizeof key) != 0) return 0;
    wanda_memo *e = pb_prune_memo_get(o->memo, key);
    if (e) {
        if (pb_scores_fit(&e->heads, m) && pb_scores_fit(&e->chans, m)) {
            pb_prune_memo_tally(o->memo, 1, 0);
            *out = e;
        }
        return 0;
    }
    e = calloc(1, sizeof *e);
    PB_CHECK_ALLOC(e, err);
    wanda_ctx c = {.cm = m, .o = o, .heads = &e->heads, .chans = &e->chans};
    if (pb_scores_alloc(&e->heads, m, PB_S_HEAD, err) != 0 || pb_scores_alloc(&e->chans, m, PB_S_CHANNEL, err) != 0 ||
        pb_act_walk(m, o->calib, false, false, layer_cb, &c, WHAT, err) != 0) {
        wanda_memo_free(e);
        return -1;
    }
    PB_TRY(pb_prune_memo_put(o->memo, key, e, wanda_memo_free, err));
    pb_prune_memo_tally(o->memo, 0, 1);
    *out = e;
    return 0;
}

static int score(const pb_model *m, const pb_prune_opts *o, pb_scores *out, pb_err *err) {
    if (o->granularity != PB_S_HEAD && o->granularity != PB_S_CHANNEL)
        return pb_err_set(err, WHAT ": scores head units and FFN channels (--granularity head or channel), not %s",
                          (unsigned)o->granularity < 5 ? pb_struct_kind_names[o->granularity] : "?");
    bool head = o->granularity == PB_S_HEAD;
    const wanda_memo *e;
    PB_TRY(memo_scores(m, o, &e, err));
    if (e) return pb_scores_copy(out, head ? &e->heads : &e->chans, err);
    PB_TRY(pb_scores_alloc(out, m, o->granularity, err));
    wanda_ctx c = {.cm = m, .o = o, .heads = head ? out : NULL, .chans = head ? NULL : out};
    if (pb_act_walk(m, o->calib, false, false, layer_cb, &c, WHAT, err) != 0) {
        pb_scores_free(out);
        return -1;
    }
    return 0;
}

static int plan(pb_model *shape, const pb_prune_opts *o, pb_err *err) {
    PB_TRY(options(o, true, err));
    double p;
    PB_TRY(pb_act_uniform_p(shape, o, false, WHAT, &p, err));
    return pb_act_uniform_plan(shape, p, err);
}

const pb_pruner pb_pruner_wanda_sp = {WHAT, check, run, score, plan};
