/* llm_pruner.c — LLM-Pruner (Ma et al., NeurIPS 2023), block strategy, as horseee/LLM-Pruner
 * implements it (hf_prune.py for MHA LLaMA, llama3.py for GQA; TaylorImportance in
 * LLMPruner/pruner/hf_llama_pruner.py). Selection is shared with its baselines
 * (width_common.h): local per layer, one-shot, a group ratio r inside [layer_start, layer_end).
 *
 * Element salience of every weight w of q, k, v, o, gate, up, down (biases are not scored:
 * TaylorImportance reads .weight only), with g the gradient of the mean next-token loss over
 * all calibration windows and F = (1/N) sum_j g_j^2, g_j the gradient of window j's own mean
 * loss (a diagonal Fisher):
 *     param_first (= taylor, the default)  s = w g
 *     param_second                         s = w^2 F
 *     param_mix                            s = w g - w^2 F / 2
 *     vectorize                            s = w g, reduced as |sum s| instead of sum |s|
 * Member scores per channel: out-channel (row) scores of q, k, v, gate, up sum |s| over the
 * input dimension; in-channel (column) scores of o and down over the output dimension.
 *
 * Group score (aggregation sum | mean | max | prod | first over the members, per channel):
 *   FFN channel c: members gate[c], up[c], down[c]; first = gate (the root gate_proj).
 *   Head unit g (KV group g: its r = n_heads/n_kv_heads query heads, k and v head g): for
 *   each c in [0, head_dim) the members are q_c = sum_{j<r} q row (g r + j) head_dim + c,
 *   k row g head_dim + c, v row g head_dim + c, and o_c = sum_{j<r} o column (g r + j)
 *   head_dim + c; the unit's score is the sum over c of the reduced value. So with sum, it
 *   is the sum over every q row of the group's query heads, its k and v rows and its o
 *   columns. first = the root: q for MHA (hf_prune.py's root q_proj, with r = 1 this is
 *   exactly LLM-Pruner's per-head sum of reduced channel scores), k for GQA (llama3.py's
 *   root k_proj). LLM-Pruner aligns q's longer vector to k's by folding q channel i onto
 *   i mod (n_kv_heads head_dim), which pairs query head h with KV head h mod n_kv rather
 *   than the h / r it attends with; we fold within the group, the structure actually removed.
 *
 * Memory. Gradients stream through a consumer, one layer at a time (grad.h); nothing
 * model-sized is held. param_first / vectorize: one backward over all windows as one batch,
 * each tensor reduced to its channel scores as it arrives. param_second / param_mix: one
 * backward with per-window gradients (N micro-batches); the driver finishes a layer over
 * every window before the next, so sum_j g_j and sum_j g_j^2 of the layer in progress sit
 * in two layer-sized fp32 buffers (LLM-Pruner's acc_grad is model-sized). g is taken as
 * (1/N) sum_j g_j: every window has the same T-1 labelled positions, so the mean of the
 * per-window means is the batch token mean that LLM-Pruner differentiates (up to rounding).
 *
 * With o->memo, one pass scores head units and channels of every layer of the unpruned model
 * and the memo keeps both tables: every group ratio, ratio and layer range of the same
 * criterion and aggregation, and the importance of either granularity, read them. */
#include "width_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { CR_FIRST, CR_SECOND, CR_MIX, CR_VECTOR } lp_crit;
typedef enum { AG_SUM, AG_MEAN, AG_MAX, AG_PROD, AG_FIRST } lp_agg;

static const char *const cn[] = {"param_first", "param_second", "param_mix", "vectorize"};
static const char *const an[] = {"sum", "mean", "max", "prod", "first"};

static int parse_names(const pb_prune_opts *o, lp_crit *c, lp_agg *a, pb_err *err) {
    *c = CR_FIRST;
    *a = AG_SUM;
    if (o->criterion && strcmp(o->criterion, "taylor") != 0) {
        int i = 0;
        while (i < 4 && strcmp(o->criterion, cn[i]) != 0) i++;
        if (i == 4)
            return pb_err_set(err, "llm-pruner: unknown --criterion '%s' (param_first, taylor, param_second, "
                                   "param_mix, vectorize)", o->criterion);
        *c = (lp_crit)i;
    }
    if (o->aggregation) {
        int i = 0;
        while (i < 5 && strcmp(o->aggregation, an[i]) != 0) i++;
        if (i == 5)
            return pb_err_set(err, "llm-pruner: unknown --aggregation '%s' (sum, mean, max, prod, first)",
                              o->aggregation);
        *a = (lp_agg)i;
    }
    return 0;
}

/* ---- gradients to member channel scores --------------------------------------------- */

#define HEAD_KINDS ((1u << PB_G_Q) | (1u << PB_G_K) | (1u << PB_G_V) | (1u << PB_G_O))
#define CHAN_KINDS ((1u << PB_G_GATE) | (1u << PB_G_UP) | (1u << PB_G_DOWN))

/* below this many elements a tensor is reduced on one thread: a parallel region costs more */
#define PAR_MIN ((size_t)1 << 18)

static bool by_column(pb_grad_kind k) { return k == PB_G_O || k == PB_G_DOWN; }

typedef struct {
    const pb_model *m;
    lp_crit crit;
    unsigned want;
    const bool *layer_on;       /* (n_layers) layers to score */
    double *(*mem)[PB_G_COUNT]; /* (n_layers) x kind -> channel scores (rows, or columns of o/down) */
    /* per-window pass: the layer in progress */
    int n, cur;
    bool seen[PB_G_COUNT];
    float *sg[PB_G_COUNT], *sf[PB_G_COUNT]; /* sum_j g_j, sum_j g_j^2 */
    size_t cap[PB_G_COUNT];
    const float *w[PB_G_COUNT];
    int rows[PB_G_COUNT], cols[PB_G_COUNT];
} lp_ctx;

/* The salience of one element: g and F already divided by N where they are sums. */
static inline double salience(lp_crit c, double w, double g, double f) {
    switch (c) {
    case CR_SECOND: return w * w * f;
    case CR_MIX: return w * g - 0.5 * w * w * f;
    default: return w * g;
    }
}

/* Channel scores of one (rows, cols) tensor into out: rows, or columns when by_col. gs and
 * fs turn the sums of the per-window pass into means (1 and 0 for one batch). Each
 * channel is summed in index order by one thread: the result does not depend on threads. */
static void tensor_scores(lp_crit c, const float *w, const float *g, const float *f, double gs, double fs, size_t rows,
                          size_t cols, bool by_col, double *out) {
    bool vec = c == CR_VECTOR, par = rows * cols >= PAR_MIN;
    if (!by_col) {
#pragma omp parallel for schedule(static) if (par)
        for (long r = 0; r < (long)rows; r++) {
            double acc = 0;
            for (size_t i = (size_t)r * cols; i < ((size_t)r + 1) * cols; i++) {
                double s = salience(c, w[i], g[i] * gs, f ? f[i] * fs : 0.0);
                acc += vec ? s : fabs(s);
            }
            out[r] = vec ? fabs(acc) : acc;
        }
        return;
    }
    long nb = (long)((cols + 63) / 64);
#pragma omp parallel for schedule(static) if (par)
    for (long b = 0; b < nb; b++) {
        size_t c0 = (size_t)b * 64, c1 = c0 + 64 < cols ? c0 + 64 : cols;
        double acc[64] = {0};
        for (size_t r = 0; r < rows; r++)
            for (size_t j = c0; j < c1; j++) {
                size_t i = r * cols + j;
                double s = salience(c, w[i], g[i] * gs, f ? f[i] * fs : 0.0);
                acc[j - c0] += vec ? s : fabs(s);
            }
        for (size_t j = c0; j < c1; j++) out[j] = vec ? fabs(acc[j - c0]) : acc[j - c0];
    }
}

static int to_member(lp_ctx *c, int l, pb_grad_kind k, const float *w, const float *g, const float *f, double gs,
                     double fs, int rows, int cols, pb_err *err) {
    double *out = c->mem[l][k];
    int er, ec;
    const float *mw = pb_grad_tensor(c->m, k, l, &er, &ec);
    if (!out || mw != w || rows != er || cols != ec)
        return pb_err_set(err, "llm-pruner: gradient of %s in layer %d does not match the model",
                          pb_grad_kind_names[k], l);
    tensor_scores(c->crit, w, g, f, gs, fs, (size_t)rows, (size_t)cols, by_column(k), out);
    return 0;
}

/* Scores of the layer whose per-window sums are complete. */
static int flush(lp_ctx *c, pb_err *err) {
    for (int k = 0; c->cur >= 0 && k < PB_G_COUNT; k++) {
        if (!c->seen[k]) continue;
        c->seen[k] = false;
        PB_TRY(to_member(c, c->cur, (pb_grad_kind)k, c->w[k], c->sg[k], c->sf[k], 1.0 / c->n, 1.0 / c->n, c->rows[k],
                         c->cols[k], err));
    }
    c->cur = -1;
    return 0;
}

static int consume(void *vctx, const pb_grad_event *ev, pb_err *err) {
    lp_ctx *c = vctx;
    if (ev->layer < 0 || ev->layer >= c->m->cfg.n_layers || !c->layer_on[ev->layer] || !(c->want & (1u << ev->kind)))
        return 0;
    if (c->n == 0) return to_member(c, ev->layer, ev->kind, ev->w, ev->g, NULL, 1.0, 0.0, ev->rows, ev->cols, err);
    if (ev->layer != c->cur) {
        PB_TRY(flush(c, err));
        c->cur = ev->layer;
    }
    int k = ev->kind;
    size_t n = (size_t)ev->rows * (size_t)ev->cols;
    if (n > c->cap[k]) {
        float *a = realloc(c->sg[k], n * sizeof(float)), *b = a ? realloc(c->sf[k], n * sizeof(float)) : NULL;
        if (a) c->sg[k] = a;
        if (b) c->sf[k] = b;
        if (!a || !b) return pb_err_set(err, "llm-pruner: out of memory for the Fisher sums of one layer");
        c->cap[k] = n;
    }
    float *sg = c->sg[k], *sf = c->sf[k];
    const float *g = ev->g;
    bool first = !c->seen[k];
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (long i = 0; i < (long)n; i++) {
        sg[i] = first ? g[i] : sg[i] + g[i];
        sf[i] = first ? g[i] * g[i] : sf[i] + g[i] * g[i];
    }
    c->seen[k] = true;
    c->w[k] = ev->w;
    c->rows[k] = ev->rows;
    c->cols[k] = ev->cols;
    return 0;
}

/* ---- member scores to unit scores ---------------------------------------------------- */

static double reduce(const double *v, int n, lp_agg a) {
    double x = v[0];
    for (int i = 1; i < n; i++) {
        switch (a) {
        case AG_MAX: x = v[i] > x ? v[i] : x; break;
        case AG_PROD: x *= v[i]; break;
        case AG_FIRST: break;
        default: x += v[i]; break;
        }
    }
    return a == AG_MEAN ? x / n : x;
}

static void head_scores(const pb_layer *L, double *const *mm, lp_agg a, double *out) {
    int G = L->n_kv_heads, rq = L->n_heads / G, hd = L->head_dim;
    for (int g = 0; g < G; g++) {
        double acc = 0;
        for (int ch = 0; ch < hd; ch++) {
            double q = 0, o = 0;
            for (int j = 0; j < rq; j++) {
                q += mm[PB_G_Q][(size_t)(g * rq + j) * hd + ch];
                o += mm[PB_G_O][(size_t)(g * rq + j) * hd + ch];
            }
            double k = mm[PB_G_K][(size_t)g * hd + ch], v = mm[PB_G_V][(size_t)g * hd + ch];
            double mha[4] = {q, k, v, o}, gqa[4] = {k, q, v, o};
            acc += reduce(rq == 1 ? mha : gqa, 4, a);
        }
        out[g] = acc;
    }
}

static void channel_scores(const pb_layer *L, double *const *mm, lp_agg a, double *out) {
    for (int c = 0; c < L->ffn_dim; c++) {
        double v[3] = {mm[PB_G_GATE][c], mm[PB_G_UP][c], mm[PB_G_DOWN][c]};
        out[c] = reduce(v, 3, a);
    }
}

/* Scores of the layers in layer_on: heads and/or chans (NULL: not wanted), allocated by
 * the caller with pb_scores_alloc. */
static int lp_scores(const pb_model *m, const pb_prune_opts *o, const bool *layer_on, pb_scores *heads,
                     pb_scores *chans, pb_err *err) {
    lp_crit crit;
    lp_agg agg;
    PB_TRY(parse_names(o, &crit, &agg, err));
    int L = m->cfg.n_layers;
    lp_ctx c = {0};
    c.m = m;
    c.crit = crit;
    c.cur = -1;
    c.layer_on = layer_on;
    c.want = (heads ? HEAD_KINDS : 0) | (chans ? CHAN_KINDS : 0);
    c.mem = calloc((size_t)(L ? L : 1), sizeof *c.mem);
    int rc = c.mem ? 0 : pb_err_set(err, "llm-pruner: out of memory");
    for (int l = 0; rc == 0 && l < L; l++) {
        for (int k = 0; rc == 0 && layer_on[l] && k < PB_G_COUNT; k++) {
            int rows, cols;
            if (!(c.want & (1u << k)) || !pb_grad_tensor(m, (pb_grad_kind)k, l, &rows, &cols)) continue;
            size_t n = (size_t)(by_column((pb_grad_kind)k) ? cols : rows);
            if (!(c.mem[l][k] = calloc(n ? n : 1, sizeof(double)))) rc = pb_err_set(err, "llm-pruner: out of memory");
        }
    }
    if (rc == 0) {
        pb_grad_opts go = {0};
        go.want = c.want;
        go.consumer = consume;
        go.ctx = &c;
        if (crit == CR_SECOND || crit == CR_MIX) {
            /* per-window gradients: MEAN_MICRO over N micro-batches scaled by N gives g_j */
            c.n = o->calib->n;
            go.per_micro_batch = true;
            go.norm = PB_LOSS_MEAN_MICRO;
            go.loss_scale = (double)o->calib->n;
            rc = pb_calib_grads(m, o->calib, 1, &go, err);
            if (rc == 0) rc = flush(&c, err);
        } else {
            rc = pb_calib_grads(m, o->calib, 0, &go, err);
        }
    }
    for (int l = 0; rc == 0 && l < L; l++) {
        const pb_layer *Ly = &m->layers[l];
        if (!layer_on[l]) continue;
        if (heads && Ly->has_attn) head_scores(Ly, c.mem[l], agg, heads->score[l]);
        if (chans && Ly->has_mlp) channel_scores(Ly, c.mem[l], agg, chans->score[l]);
    }
    for (int l = 0; c.mem && l < L; l++)
        for (int k = 0; k < PB_G_COUNT; k++) free(c.mem[l][k]);
    free(c.mem);
    for (int k = 0; k < PB_G_COUNT; k++) {
        free(c.sg[k]);
        free(c.sf[k]);
    }
    return rc;
}

/* ---- the score memo ------------------------------------------------------------------ */

/* Head-unit and channel scores of every layer of the unpruned model, from one gradient pass:
 * a layer's scores depend only on its own tensors' gradients, so scoring every layer gives
 * the in-range layers exactly what a range-limited pass gives, and the layer range (which
 * pb_width_select applies: layers outside get no count) stays out of the key. */
typedef struct {
    pb_scores heads, chans;
} lp_memo;

static void lp_memo_free(void *p) {
    lp_memo *e = p;
    if (!e) return;
    pb_scores_free(&e->heads);
    pb_scores_free(&e->chans);
    free(e);
}

/* o's entry for m, computed and kept when absent; *out NULL without a memo, when the key does
 * not fit, or when the entry does not have m's shape (then the caller computes as without). */
static int lp_memo_scores(const pb_model *m, const pb_prune_opts *o, const lp_memo **out, pb_err *err) {
    *out = NULL;
    lp_crit crit;
    lp_agg agg;
    PB_TRY(parse_names(o, &crit, &agg, err));
    pb_prune_opts k = *o; /* only what changes a score, spelt one way ("taylor" is param_first) */
    k.criterion = cn[crit];
    k.aggregation = an[agg];
    k.granularity = PB_S_HEAD;
    k.module_joint = false;
    k.layer_start = k.layer_end = -1;
    k.structure = k.metric = NULL;
    k.seed = 0;
    char key[PB_MEMO_KEY_MAX];
    if (!o->memo || pb_prune_memo_key(&k, "llm-pruner", key, sizeof key) != 0) return 0;
    lp_memo *e = pb_prune_memo_get(o->memo, key);
    if (e) {
        if (pb_scores_fit(&e->heads, m) && pb_scores_fit(&e->chans, m)) {
            pb_prune_memo_tally(o->memo, 1, 0);
            *out = e;
        }
        return 0;
    }
    int L = m->cfg.n_layers;
    bool *on = malloc(sizeof(bool) * (size_t)(L ? L : 1));
    e = calloc(1, sizeof *e);
    int rc = on && e ? 0 : pb_err_set(err, "llm-pruner: out of memory");
    for (int l = 0; rc == 0 && l < L; l++) on[l] = true;
    if (rc == 0) rc = pb_scores_alloc(&e->heads, m, PB_S_HEAD, err);
    if (rc == 0) rc = pb_scores_alloc(&e->chans, m, PB_S_CHANNEL, err);
    if (rc == 0) rc = lp_scores(m, o, on, &e->heads, &e->chans, err);
    free(on);
    if (rc) {
        lp_memo_free(e);
        return -1;
    }
    PB_TRY(pb_prune_memo_put(o->memo, key, e, lp_memo_free, err));
    pb_prune_memo_tally(o->memo, 0, 1);
    *out = e;
    return 0;
}

/* ---- the method ------------------------------------------------------------------------- */

static int check_llm(const pb_model *m, const pb_prune_opts *o, pb_err *err) {
    lp_crit c;
    lp_agg a;
    PB_TRY(parse_names(o, &c, &a, err));
    if (!o->calib || o->calib->n < 1 || o->calib->T < 2 || !o->calib->ids)
        return pb_err_set(err, "llm-pruner: the Taylor criteria need calibration data (--calib)");
    return pb_width_check_amount(m, o, "llm-pruner", err);
}

static int run_llm(pb_model *m, const pb_prune_opts *o, pb_prune_result *r, pb_err *err) {
    double ratio;
    PB_TRY(pb_width_group_ratio(m, o, "llm-pruner", &ratio, err));
    const lp_memo *e;
    PB_TRY(lp_memo_scores(m, o, &e, err));
    if (e) return pb_width_select(m, o, ratio, &e->heads, &e->chans, r, err);
    int L = m->cfg.n_layers;
    bool *on = calloc((size_t)(L ? L : 1), sizeof(bool));
    PB_CHECK_ALLOC(on, err);
    for (int l = 0; l < L; l++) on[l] = pb_width_in_range(o, l);
    pb_scores h, c;
    memset(&c, 0, sizeof c);
    int rc = pb_scores_alloc(&h, m, PB_S_HEAD, err);
    if (rc == 0 && (rc = pb_scores_alloc(&c, m, PB_S_CHANNEL, err)) != 0) pb_scores_free(&h);
    if (rc == 0) {
        rc = lp_scores(m, o, on, &h, &c, err);
        if (rc == 0) rc = pb_width_select(m, o, ratio, &h, &c, r, err);
        pb_scores_free(&h);
        pb_scores_free(&c);
    }
    free(on);
    return rc;
}

static int score_llm(const pb_model *m, const pb_prune_opts *o, pb_scores *s, pb_err *err) {
    if (o->granularity != PB_S_HEAD && o->granularity != PB_S_CHANNEL)
        return pb_err_set(err, "importance: llm-pruner scores head units and channels (--granularity head or "
                               "channel), not %s", pb_struct_kind_names[o->granularity]);
    const lp_memo *e;
    PB_TRY(lp_memo_scores(m, o, &e, err));
    if (e) return pb_scores_copy(s, o->granularity == PB_S_HEAD ? &e->heads : &e->chans, err);
    int L = m->cfg.n_layers;
    bool *on = malloc(sizeof(bool) * (size_t)(L ? L : 1));
    PB_CHECK_ALLOC(on, err);
    for (int l = 0; l < L; l++) on[l] = true;
    int rc = pb_scores_alloc(s, m, o->granularity, err);
    if (rc == 0) {
        bool h = o->granularity == PB_S_HEAD;
        rc = lp_scores(m, o, on, h ? s : NULL, h ? NULL : s, err);
        if (rc) pb_scores_free(s);
    }
    free(on);
    return rc;
}

static int plan_llm(pb_model *shape, const pb_prune_opts *o, pb_err *err) {
    lp_crit c;
    lp_agg a;
    PB_TRY(parse_names(o, &c, &a, err));
    return pb_width_plan(shape, o, "llm-pruner", err);
}

const pb_pruner pb_pruner_llm_pruner = {"llm-pruner", check_llm, run_llm, score_llm, plan_llm};
