/* grad.c — the backward driver (see grad.h): residual checkpoints, per-layer recomputation
 * through the forward driver's own layer steps, and the backward of every op through the
 * op table, with LoRA adapters and dropout. */
#include "grad.h"
#include "fwd_internal.h"

#include <stdlib.h>
#include <string.h>

const char *const pb_grad_kind_names[PB_G_COUNT] = {
    "embed", "lm_head", "final_norm", "attn_norm", "q", "k", "v", "o", "q_bias", "k_bias", "v_bias", "o_bias",
    "mlp_norm", "gate", "up", "down", "gate_bias", "up_bias", "down_bias", "input"};

enum {
    G_CKPT,                   /* per micro-batch (L+1, N, d): each layer's input, then the final one */
    G_DX,                     /* per micro-batch (N, d): d loss / d residual stream */
    G_LOGITS,                 /* (N, V), then d logits in place */
    G_XMID, G_XTMP,           /* (N, d): input of the MLP; throwaway output of the recomputed MLP */
    G_XNA, G_Q, G_K, G_V, G_ATT, G_XNM, G_G, G_U, G_H,   /* the recomputed layer (pb_layer_acts) */
    G_DXN, G_DATT, G_DQ, G_DK, G_DV, G_DKT, G_DVT, G_DG, G_DU, G_DLT, G_DLX,
    G_GLAYER,                 /* one layer's wanted weight gradients */
    G_GHEAD,                  /* (V, d): LM head, and with a tied head the embedding too */
    G_GEMB,                   /* (V, d): the untied embedding */
    G_GNORM,                  /* (d): final norm */
    G_N
};

struct pb_grad_state {
    pb_fwd_state *fs;
    void *buf[G_N];
    size_t cap[G_N];
    size_t peak;
};

pb_grad_state *pb_grad_state_new(void) {
    pb_grad_state *s = calloc(1, sizeof *s);
    if (s && !(s->fs = pb_fwd_state_new())) {
        free(s);
        return NULL;
    }
    return s;
}

void pb_grad_state_free(pb_grad_state *s) {
    if (!s) return;
    for (int i = 0; i < G_N; i++) free(s->buf[i]);
    pb_fwd_state_free(s->fs);
    free(s);
}

size_t pb_grad_state_bytes(const pb_grad_state *s) { return s->peak; }

static int grow(pb_grad_state *s, int i, size_t a, size_t b, pb_err *err) {
    size_t n;
    if (!pb_mul_ok(a, b, &n) || !pb_mul_ok(n, sizeof(float), &n))
        return pb_err_set(err, "backward: scratch size overflows (%zu x %zu)", a, b);
    if (n > s->cap[i]) {
        free(s->buf[i]);
        s->buf[i] = malloc(n);
        s->cap[i] = s->buf[i] ? n : 0;
        if (!s->buf[i]) return pb_err_set(err, "backward: out of memory for %zu bytes of scratch", n);
    }
    size_t total = 0;
    for (int j = 0; j < G_N; j++) total += s->cap[j];
    for (int j = 0; j < N_BUF; j++) total += s->fs->cap[j];
    if (total > s->peak) s->peak = total;
    return 0;
}

#define F(s, i) ((float *)(s)->buf[i])

void pb_batch_next_token(const int32_t *tokens, int B, int T, int32_t *targets) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) targets[(size_t)b * T + t] = t + 1 < T ? tokens[(size_t)b * T + t + 1] : -1;
}

float *pb_grad_tensor(const pb_model *m, pb_grad_kind k, int l, int *rows, int *cols) {
    *rows = *cols = 0;
    if (k == PB_G_INPUT || k >= PB_G_COUNT) return NULL;
    if (k <= PB_G_FINAL_NORM) {
        bool norm = k == PB_G_FINAL_NORM;
        if (k == PB_G_LM_HEAD && m->cfg.tied_embeddings) return NULL;
        *rows = norm ? m->cfg.dim : m->cfg.vocab_size;
        *cols = norm ? 1 : m->cfg.dim;
        return norm ? m->final_norm : k == PB_G_EMBED ? m->tok_emb : m->lm_head;
    }
    if (l < 0 || l >= m->cfg.n_layers) return NULL;
    const pb_layer *L = &m->layers[l];
    int d = m->cfg.dim, q = L->n_heads * L->head_dim, kv = L->n_kv_heads * L->head_dim, f = L->ffn_dim;
    bool attn = k >= PB_G_ATTN_NORM && k <= PB_G_BO;
    if (attn ? !L->has_attn : !L->has_mlp) return NULL;
    *cols = 1;
    switch (k) {
    case PB_G_ATTN_NORM: *rows = d; return L->attn_norm;
    case PB_G_Q: *rows = q; *cols = d; return L->wq;
    case PB_G_K: *rows = kv; *cols = d; return L->wk;
    case PB_G_V: *rows = kv; *cols = d; return L->wv;
    case PB_G_O: *rows = d; *cols = q; return L->wo;
    case PB_G_BQ: *rows = q; return L->bq;
    case PB_G_BK: *rows = kv; return L->bk;
    case PB_G_BV: *rows = kv; return L->bv;
    case PB_G_BO: *rows = d; return L->bo;
    case PB_G_MLP_NORM: *rows = d; return L->mlp_norm;
    case PB_G_GATE: *rows = f; *cols = d; return L->w_gate;
    case PB_G_UP: *rows = f; *cols = d; return L->w_up;
    case PB_G_DOWN: *rows = d; *cols = f; return L->w_down;
    case PB_G_BGATE: *rows = f; return L->b_gate;
    case PB_G_BUP: *rows = f; return L->b_up;
    case PB_G_BDOWN: *rows = d; return L->b_down;
    default: return NULL;
    }
}

/* Per-layer gradient slots: where kind k's gradient lives in G_GLAYER (NULL: not wanted). */
typedef struct { float *g[PB_G_COUNT]; size_t n; } layer_grads;

static size_t layer_grad_layout(const pb_model *m, int l, unsigned want, float *base, layer_grads *lg) {
    size_t off = 0;
    memset(lg, 0, sizeof *lg);
    for (int k = PB_G_ATTN_NORM; k <= PB_G_BDOWN; k++) {
        int r, c;
        if (!(want & (1u << k)) || !pb_grad_tensor(m, (pb_grad_kind)k, l, &r, &c)) continue;
        if (base) lg->g[k] = base + off;
        off += (size_t)r * c;
    }
    lg->n = off;
    return off;
}

static int emit(const pb_grad_opts *o, pb_grad_kind k, int layer, int micro, const float *w, const float *g,
                int rows, int cols, pb_err *err) {
    pb_grad_event ev = {k, layer, micro, w, g, rows, cols};
    if (o->consumer(o->ctx, &ev, err) != 0)
        return pb_err_prefix(err, "gradient consumer (%s, layer %d): ", pb_grad_kind_names[k], layer);
    return 0;
}

static int emit_layer(const pb_model *m, int l, int micro, const layer_grads *lg, const pb_grad_opts *o,
                      pb_err *err) {
    for (int k = PB_G_ATTN_NORM; k <= PB_G_BDOWN; k++) {
        int r, c;
        if (!lg->g[k]) continue;
        const float *w = pb_grad_tensor(m, (pb_grad_kind)k, l, &r, &c);
        PB_TRY(emit(o, (pb_grad_kind)k, l, micro, w, lg->g[k], r, c, err));
    }
    return 0;
}

/* The backward of pb_fwd_linear: the base projection (dW, db when not NULL) and its LoRA
 * adapter (dA, dB accumulate when the adapter has gradient buffers). dx (may be NULL)
 * is overwritten, or accumulated into when acc_dx. */
static void lin_bwd(const pb_model *m, pb_grad_state *s, int l, pb_lora_target t, float *dx, float *dW, float *db,
                    const float *dy, const float *x, const float *W, int n, int in, int out, bool acc_dx,
                    const uint64_t *drop) {
    const pb_ops *ops = pb_ops_cpu();
    ops->linear_bwd(dx, dW, db, dy, x, W, n, in, out, acc_dx);
    const pb_lora *lo = m->lora;
    const pb_lora_pair *p = pb_lora_get(lo, l, t);
    if (!p || (!dx && !p->dA)) return;
    int r = lo->rank;
    float *lt = s->fs->buf[BUF_LT], *dlt = F(s, G_DLT);
    const float *xd = x;
    bool dropped = drop && lo->dropout > 0.0f;
    uint64_t key = dropped ? pb_lora_dropout_key(*drop, l, t) : 0;
    if (dropped) {
        float *lx = s->fs->buf[BUF_LX];
        ops->dropout(lx, x, (int64_t)n * in, lo->dropout, key);
        xd = lx;
    }
    /* forward was y += (scale * xd A^T) B^T with lt = scale * xd A^T */
    ops->linear(lt, xd, p->A, NULL, n, in, r, false);
    ops->scale(lt, lo->scale, (int64_t)n * r);
    ops->linear_bwd(dlt, p->dB, NULL, dy, lt, p->B, n, r, out, false);   /* dlt = dy B; dB += dy^T lt */
    ops->scale(dlt, lo->scale, (int64_t)n * r);                            /* d(xd A^T) */
    if (!dropped) {
        ops->linear_bwd(dx, p->dA, NULL, dlt, xd, p->A, n, in, r, true);
        return;
    }
    float *dlx = F(s, G_DLX);
    ops->linear_bwd(dx ? dlx : NULL, p->dA, NULL, dlt, xd, p->A, n, in, r, false);
    if (!dx) return;
    ops->dropout(dlx, dlx, (int64_t)n * in, lo->dropout, key);   /* the same mask and 1/(1-p) */
    ops->add(dx, dlx, (int64_t)n * in);
}

/* Recomputes layer l of one micro-batch from its input xin, leaving the activations in the
 * state's G_* buffers and the MLP's input in G_XMID. */
static int recompute_layer(const pb_model *m, pb_grad_state *s, int l, int B, int T, const float *xin,
                           const uint64_t *drop, pb_err *err) {
    size_t nd = (size_t)B * T * m->cfg.dim;
    pb_layer_acts a = {F(s, G_XNA), F(s, G_Q), F(s, G_K), F(s, G_V), F(s, G_ATT), F(s, G_XNM), F(s, G_G), F(s, G_U),
                       F(s, G_H)};
    memcpy(F(s, G_XMID), xin, nd * sizeof(float));
    if (m->layers[l].has_attn) PB_TRY(pb_fwd_attention(m, s->fs, l, B, T, 0, NULL, F(s, G_XMID), &a, drop, err));
    if (m->layers[l].has_mlp) {
        memcpy(F(s, G_XTMP), F(s, G_XMID), nd * sizeof(float));
        pb_fwd_mlp(m, s->fs, l, B * T, F(s, G_XTMP), &a, drop);
    }
    return 0;
}

static void mlp_bwd(const pb_model *m, pb_grad_state *s, int l, int N, float *dx, const layer_grads *lg,
                    const uint64_t *drop) {
    const pb_ops *ops = pb_ops_cpu();
    const pb_layer *L = &m->layers[l];
    int d = m->cfg.dim, f = L->ffn_dim;
    float *dg = F(s, G_DG), *du = F(s, G_DU), *dxn = F(s, G_DXN);
    lin_bwd(m, s, l, PB_LORA_DOWN, dg, lg->g[PB_G_DOWN], lg->g[PB_G_BDOWN], dx, F(s, G_H), L->w_down, N, f, d, false,
            drop);
    ops->swiglu_bwd(dg, du, dg, F(s, G_G), F(s, G_U), (int64_t)N * f);
    lin_bwd(m, s, l, PB_LORA_GATE, dxn, lg->g[PB_G_GATE], lg->g[PB_G_BGATE], dg, F(s, G_XNM), L->w_gate, N, d, f,
            false, drop);
    lin_bwd(m, s, l, PB_LORA_UP, dxn, lg->g[PB_G_UP], lg->g[PB_G_BUP], du, F(s, G_XNM), L->w_up, N, d, f, true, drop);
    ops->rmsnorm_bwd(dxn, lg->g[PB_G_MLP_NORM], dxn, F(s, G_XMID), L->mlp_norm, N, d, m->cfg.norm_eps);
    ops->add(dx, dxn, (int64_t)N * d);
}

static int attn_bwd(const pb_model *m, pb_grad_state *s, int l, int B, int T, const float *xin, float *dx,
                    const layer_grads *lg, const uint64_t *drop, pb_err *err) {
    const pb_ops *ops = pb_ops_cpu();
    const pb_layer *L = &m->layers[l];
    int d = m->cfg.dim, nh = L->n_heads, nkv = L->n_kv_heads, hd = L->head_dim, N = B * T;
    int qd = nh * hd, kd = nkv * hd;
    float *datt = F(s, G_DATT), *dq = F(s, G_DQ), *dk = F(s, G_DK), *dv = F(s, G_DV), *dxn = F(s, G_DXN);
    float *k = F(s, G_K), *v = F(s, G_V), *kt = s->fs->buf[BUF_KT], *vt = s->fs->buf[BUF_VT];
    float *dkt = F(s, G_DKT), *dvt = F(s, G_DVT);
    const float *inv = pb_fwd_inv_freq(s->fs, &m->cfg, hd, err);
    if (!inv) return pb_err_prefix(err, "layer %d: ", l);

    lin_bwd(m, s, l, PB_LORA_O, datt, lg->g[PB_G_O], lg->g[PB_G_BO], dx, F(s, G_ATT), L->wo, N, qd, d, false, drop);
    size_t row = (size_t)hd * sizeof(float);
    for (int b = 0; b < B; b++) {
        /* (T, n_kv, hd) rows <-> (n_kv, T, hd), as the forward regrouped them */
        for (int g = 0; g < nkv; g++)
            for (int t = 0; t < T; t++) {
                size_t src = (((size_t)b * T + t) * nkv + g) * hd, dst = ((size_t)g * T + t) * hd;
                memcpy(kt + dst, k + src, row);
                memcpy(vt + dst, v + src, row);
            }
        size_t qo = (size_t)b * T * qd;
        if (ops->attention_bwd(dq + qo, dkt, dvt, datt + qo, F(s, G_Q) + qo, kt, vt, T, 0, nh, nkv, hd, T, err) != 0)
            return pb_err_prefix(err, "layer %d: ", l);
        for (int g = 0; g < nkv; g++)
            for (int t = 0; t < T; t++) {
                size_t dst = (((size_t)b * T + t) * nkv + g) * hd, src = ((size_t)g * T + t) * hd;
                memcpy(dk + dst, dkt + src, row);
                memcpy(dv + dst, dvt + src, row);
            }
    }
    int32_t *pos = s->fs->buf[BUF_POS];
    ops->rope_bwd(dq, pos, inv, N, nh, hd);
    ops->rope_bwd(dk, pos, inv, N, nkv, hd);
    const float *xn = F(s, G_XNA);
    lin_bwd(m, s, l, PB_LORA_Q, dxn, lg->g[PB_G_Q], lg->g[PB_G_BQ], dq, xn, L->wq, N, d, qd, false, drop);
    lin_bwd(m, s, l, PB_LORA_K, dxn, lg->g[PB_G_K], lg->g[PB_G_BK], dk, xn, L->wk, N, d, kd, true, drop);
    lin_bwd(m, s, l, PB_LORA_V, dxn, lg->g[PB_G_V], lg->g[PB_G_BV], dv, xn, L->wv, N, d, kd, true, drop);
    ops->rmsnorm_bwd(dxn, lg->g[PB_G_ATTN_NORM], dxn, xin, L->attn_norm, N, d, m->cfg.norm_eps);
    ops->add(dx, dxn, (int64_t)N * d);
    return 0;
}

/* Scratch for micro-batches of at most maxN rows and maxT positions. */
static int alloc_layer_scratch(const pb_model *m, pb_grad_state *s, size_t maxN, size_t maxT, unsigned want,
                               pb_err *err) {
    size_t d = (size_t)m->cfg.dim, mq, mkv, mf, mg = 0;
    pb_fwd_max_dims(m, &mq, &mkv, &mf);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        layer_grads lg;
        size_t n = layer_grad_layout(m, l, want, NULL, &lg);
        if (n > mg) mg = n;
    }
    size_t w = d > mq ? d : mq;
    w = w > mf ? w : mf;
    int r = m->lora ? m->lora->rank : 1;
    PB_TRY(grow(s, G_XMID, maxN, d, err));
    PB_TRY(grow(s, G_XTMP, maxN, d, err));
    PB_TRY(grow(s, G_XNA, maxN, d, err));
    PB_TRY(grow(s, G_XNM, maxN, d, err));
    PB_TRY(grow(s, G_DXN, maxN, d, err));
    PB_TRY(grow(s, G_Q, maxN, mq, err));
    PB_TRY(grow(s, G_ATT, maxN, mq, err));
    PB_TRY(grow(s, G_DATT, maxN, mq, err));
    PB_TRY(grow(s, G_DQ, maxN, mq, err));
    PB_TRY(grow(s, G_K, maxN, mkv, err));
    PB_TRY(grow(s, G_V, maxN, mkv, err));
    PB_TRY(grow(s, G_DK, maxN, mkv, err));
    PB_TRY(grow(s, G_DV, maxN, mkv, err));
    PB_TRY(grow(s, G_DKT, maxT, mkv, err));
    PB_TRY(grow(s, G_DVT, maxT, mkv, err));
    PB_TRY(grow(s, G_G, maxN, mf, err));
    PB_TRY(grow(s, G_U, maxN, mf, err));
    PB_TRY(grow(s, G_H, maxN, mf, err));
    PB_TRY(grow(s, G_DG, maxN, mf, err));
    PB_TRY(grow(s, G_DU, maxN, mf, err));
    PB_TRY(grow(s, G_DLT, maxN, (size_t)r, err));
    if (m->lora) PB_TRY(grow(s, G_DLX, maxN, w, err));
    PB_TRY(grow(s, G_GLAYER, mg ? mg : 1, 1, err));
    PB_TRY(grow(s, G_LOGITS, maxN, (size_t)m->cfg.vocab_size, err));
    return 0;
}

static int check_batches(const pb_model *m, const pb_batch *mb, int n_micro, const pb_grad_opts *o, int64_t *n_lab,
                         size_t *maxN, size_t *maxT, size_t *totN, pb_err *err) {
    if (n_micro <= 0) return pb_err_set(err, "backward: no micro-batch");
    if (o->want && !o->consumer) return pb_err_set(err, "backward: gradients asked for without a consumer");
    if (o->per_micro_batch && m->cfg.tied_embeddings && (o->want & ((1u << PB_G_EMBED) | (1u << PB_G_LM_HEAD))))
        return pb_err_set(err, "backward: per-micro-batch gradients of a tied embedding are not supported");
    *n_lab = 0;
    *maxN = *maxT = *totN = 0;
    int V = m->cfg.vocab_size;
    for (int i = 0; i < n_micro; i++) {
        const pb_batch *b = &mb[i];
        if (b->B <= 0 || b->T <= 0 || !b->tokens || !b->targets || (int64_t)b->B * b->T > INT32_MAX / 2)
            return pb_err_set(err, "backward: micro-batch %d has an invalid shape B=%d T=%d", i, b->B, b->T);
        size_t N = (size_t)b->B * b->T;
        for (size_t j = 0; j < N; j++) {
            if (b->tokens[j] < 0 || b->tokens[j] >= V)
                return pb_err_set(err, "backward: micro-batch %d, row %zu: token id %d outside [0, %d)", i, j,
                                  (int)b->tokens[j], V);
            if (b->targets[j] < -1 || b->targets[j] >= V)
                return pb_err_set(err, "backward: micro-batch %d, row %zu: target %d outside [-1, %d)", i, j,
                                  (int)b->targets[j], V);
            *n_lab += b->targets[j] >= 0;
        }
        if (N > *maxN) *maxN = N;
        if ((size_t)b->T > *maxT) *maxT = (size_t)b->T;
        *totN += N;
    }
    if (*n_lab == 0) return pb_err_set(err, "backward: no labelled position in %d micro-batch(es)", n_micro);
    return 0;
}

/* Phase 1 for micro-batch i: forward with checkpoints, loss, and the backward through the
 * LM head and final norm into dx. */
static int head_pass(const pb_model *m, pb_grad_state *s, const pb_batch *b, int i, float *ck, float *dx,
                     double factor, float *ghead, float *gnorm, const uint64_t *drop, double *loss_i,
                     int64_t *sel_i, pb_err *err) {
    const pb_ops *ops = pb_ops_cpu();
    int L = m->cfg.n_layers, d = m->cfg.dim, V = m->cfg.vocab_size, N = b->B * b->T;
    size_t nd = (size_t)N * d;
    pb_layer_acts a = {F(s, G_XNA), F(s, G_Q), F(s, G_K), F(s, G_V), F(s, G_ATT), F(s, G_XNM), F(s, G_G), F(s, G_U),
                       F(s, G_H)};
    PB_TRY(pb_fwd_scratch(m, s->fs, b->B, b->T, 0, err));
    ops->embedding(ck, m->tok_emb, b->tokens, N, d);
    for (int l = 0; l < L; l++) {
        float *x = ck + (size_t)(l + 1) * nd;
        memcpy(x, ck + (size_t)l * nd, nd * sizeof(float));
        if (m->layers[l].has_attn) PB_TRY(pb_fwd_attention(m, s->fs, l, b->B, b->T, 0, NULL, x, &a, drop, err));
        if (m->layers[l].has_mlp) pb_fwd_mlp(m, s->fs, l, N, x, &a, drop);
    }
    float *xL = ck + (size_t)L * nd, *xn = F(s, G_XNA), *lg = F(s, G_LOGITS);
    ops->rmsnorm(xn, xL, m->final_norm, N, d, m->cfg.norm_eps);
    ops->linear(lg, xn, m->lm_head, NULL, N, d, V, false);
    if (ops->cross_entropy(loss_i, sel_i, lg, lg, b->targets, N, V, err) != 0)
        return pb_err_prefix(err, "micro-batch %d: ", i);
    ops->scale(lg, (float)factor, (int64_t)N * V);
    ops->linear_bwd(F(s, G_DXN), ghead, NULL, lg, xn, m->lm_head, N, d, V, false);
    ops->rmsnorm_bwd(dx, gnorm, F(s, G_DXN), xL, m->final_norm, N, d, m->cfg.norm_eps);
    return 0;
}

int pb_grad_run(const pb_model *m, pb_grad_state *s, const pb_batch *mb, int n_micro, const pb_grad_opts *o,
                double *loss, int64_t *n_labelled, pb_err *err) {
    if (!m || !s || !o) return pb_err_set(err, "backward: no model, state or options");
    if (m->backend)
        return pb_err_set(err, "backward: runs on the CPU backend's host model (this model is on %s)", m->backend->name);
    PB_TRY(pb_model_validate(m, err));
    if (m->lora) PB_TRY(pb_lora_check(m->lora, m, err));
    int64_t n_lab = 0;
    size_t maxN = 0, maxT = 0, totN = 0;
    PB_TRY(check_batches(m, mb, n_micro, o, &n_lab, &maxN, &maxT, &totN, err));
    const pb_ops *ops = pb_ops_cpu();
    int L = m->cfg.n_layers, d = m->cfg.dim, V = m->cfg.vocab_size;
    bool tied = m->cfg.tied_embeddings;
    unsigned want = o->want;
    if (tied && (want & (1u << PB_G_LM_HEAD))) want = (want & ~(1u << PB_G_LM_HEAD)) | (1u << PB_G_EMBED);
    bool w_head = tied ? (want & (1u << PB_G_EMBED)) : (want & (1u << PB_G_LM_HEAD));
    bool w_emb = want & (1u << PB_G_EMBED), w_norm = want & (1u << PB_G_FINAL_NORM);
    bool per = o->per_micro_batch;
    size_t ve = (size_t)V * d;

    size_t ckn, dxn;
    if (!pb_mul_ok(totN, (size_t)(L + 1) * d, &ckn) || !pb_mul_ok(totN, (size_t)d, &dxn))
        return pb_err_set(err, "backward: batch too large");
    PB_TRY(grow(s, G_CKPT, ckn, 1, err));
    PB_TRY(grow(s, G_DX, dxn, 1, err));
    PB_TRY(alloc_layer_scratch(m, s, maxN, maxT, want, err));
    if (w_head) PB_TRY(grow(s, G_GHEAD, ve, 1, err));
    if (w_emb && !tied) PB_TRY(grow(s, G_GEMB, ve, 1, err));
    PB_TRY(grow(s, G_GNORM, (size_t)d, 1, err));
    float *ghead = w_head ? F(s, G_GHEAD) : NULL, *gnorm = w_norm ? F(s, G_GNORM) : NULL;
    float *gemb = w_emb ? (tied ? F(s, G_GHEAD) : F(s, G_GEMB)) : NULL;
    if (ghead) memset(ghead, 0, ve * sizeof(float));
    if (gemb) memset(gemb, 0, ve * sizeof(float));
    if (gnorm) memset(gnorm, 0, (size_t)d * sizeof(float));

    uint64_t *keys = malloc((size_t)n_micro * sizeof *keys);
    size_t *off = malloc((size_t)n_micro * sizeof *off);
    if (!keys || !off) {
        free(keys);
        free(off);
        return pb_err_set(err, "backward: out of memory");
    }
    bool dropping = m->lora && m->lora->training && m->lora->dropout > 0.0f;
#define DROP(i) (dropping ? &keys[i] : NULL)
#define CK(i, l) (F(s, G_CKPT) + off[i] * (size_t)(L + 1) + (size_t)(l) * mb[i].B * mb[i].T * (size_t)d)
#define DX(i) (F(s, G_DX) + off[i])
    int rc = -1;
    double total = 0.0;
    for (int i = 0, o_ = 0; i < n_micro; i++) {
        keys[i] = dropping ? pb_mix64(m->lora->dropout_key + (uint64_t)i) : 0;
        off[i] = (size_t)o_ * d;
        o_ += mb[i].B * mb[i].T;
    }

    /* phase 1: forward, loss, LM head and final norm, per micro-batch */
    for (int i = 0; i < n_micro; i++) {
        double li;
        int64_t si = 0;
        for (int64_t j = 0; j < (int64_t)mb[i].B * mb[i].T; j++) si += mb[i].targets[j] >= 0;
        double factor = o->norm == PB_LOSS_MEAN_MICRO ? 1.0 / n_micro : (double)si / (double)n_lab;
        if (o->loss_scale > 0.0) factor *= o->loss_scale;
        if (head_pass(m, s, &mb[i], i, CK(i, 0), DX(i), factor, ghead, gnorm, DROP(i), &li, &si, err) != 0) goto done;
        total += o->norm == PB_LOSS_MEAN_MICRO ? li / n_micro : li * (double)si / (double)n_lab;
        if (per) {
            if (ghead && !tied && emit(o, PB_G_LM_HEAD, -1, i, m->lm_head, ghead, V, d, err) != 0) goto done;
            if (gnorm && emit(o, PB_G_FINAL_NORM, -1, i, m->final_norm, gnorm, d, 1, err) != 0) goto done;
            if (ghead && !tied) memset(ghead, 0, ve * sizeof(float));
            if (gnorm) memset(gnorm, 0, (size_t)d * sizeof(float));
        }
    }
    if (!per) {
        if (ghead && !tied && emit(o, PB_G_LM_HEAD, -1, -1, m->lm_head, ghead, V, d, err) != 0) goto done;
        if (gnorm && emit(o, PB_G_FINAL_NORM, -1, -1, m->final_norm, gnorm, d, 1, err) != 0) goto done;
    }

    /* the lowest layer the backward must reach */
    bool need_input = want & ((1u << PB_G_EMBED) | (1u << PB_G_INPUT));
    int lowest = need_input ? 0 : L;
    for (int l = 0; l < L && lowest == L; l++) {
        layer_grads lg;
        bool lora_here = false;
        for (int t = 0; m->lora && t < PB_LORA_N; t++) {
            const pb_lora_pair *p = pb_lora_get(m->lora, l, (pb_lora_target)t);
            lora_here |= p && p->dA;
        }
        if (layer_grad_layout(m, l, want, NULL, &lg) > 0 || lora_here) lowest = l;
    }

    /* phase 2: layers, top down, each over every micro-batch */
    for (int l = L - 1; l >= lowest; l--) {
        layer_grads lg;
        size_t ng = layer_grad_layout(m, l, want, F(s, G_GLAYER), &lg);
        memset(F(s, G_GLAYER), 0, ng * sizeof(float));
        for (int i = 0; i < n_micro; i++) {
            int B = mb[i].B, T = mb[i].T;
            if (pb_fwd_scratch(m, s->fs, B, T, 0, err) != 0) goto done;
            if (recompute_layer(m, s, l, B, T, CK(i, l), DROP(i), err) != 0) goto done;
            if (m->layers[l].has_mlp) mlp_bwd(m, s, l, B * T, DX(i), &lg, DROP(i));
            if (m->layers[l].has_attn && attn_bwd(m, s, l, B, T, CK(i, l), DX(i), &lg, DROP(i), err) != 0) goto done;
            if (per && ng) {
                if (emit_layer(m, l, i, &lg, o, err) != 0) goto done;
                memset(F(s, G_GLAYER), 0, ng * sizeof(float));
            }
        }
        if (!per && ng && emit_layer(m, l, -1, &lg, o, err) != 0) goto done;
    }

    /* phase 3: the input embeddings and the embedding table */
    if (need_input) {
        for (int i = 0; i < n_micro; i++) {
            int N = mb[i].B * mb[i].T;
            if ((want & (1u << PB_G_INPUT)) && emit(o, PB_G_INPUT, -1, i, NULL, DX(i), N, d, err) != 0) goto done;
            if (!gemb) continue;
            ops->embedding_bwd(gemb, DX(i), mb[i].tokens, N, d);
            if (per) {
                if (emit(o, PB_G_EMBED, -1, i, m->tok_emb, gemb, V, d, err) != 0) goto done;
                memset(gemb, 0, ve * sizeof(float));
            }
        }
        if (gemb && !per && emit(o, PB_G_EMBED, -1, -1, m->tok_emb, gemb, V, d, err) != 0) goto done;
    }
    if (loss) *loss = total;
    if (n_labelled) *n_labelled = n_lab;
    rc = 0;
done:
#undef DROP
#undef CK
#undef DX
    free(keys);
    free(off);
    return rc;
}
