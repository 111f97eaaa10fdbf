/* forward.c — the LLaMA forward driver: embeddings, per-layer attention and SwiGLU MLP
 * (each optional, each with its own shape), final norm and LM head, through the op table.
 *
 * All B*T rows go through every linear layer as one GEMM, and attention takes the whole
 * batch in one call. With a KV cache the new keys/values are written straight into the
 * cache and attention reads them from there; without one they are regrouped per KV head in
 * scratch. Every buffer is the model's backend's memory (host on the CPU, device on CUDA):
 * the driver only moves tokens, positions and frequencies in and logits out.
 * The per-layer steps are also the backward driver's (grad.c) recomputation, through
 * fwd_internal.h; LoRA adapters attached to the model are applied in every projection. */
#include "fwd_internal.h"
#include "rope.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

pb_fwd_state *pb_fwd_state_new(void) { return calloc(1, sizeof(pb_fwd_state)); }

static void release(pb_fwd_state *s) {
    for (int i = 0; i < N_BUF; i++) {
        if (s->ops) s->ops->free(s->buf[i]);
        s->buf[i] = NULL;
        s->cap[i] = 0;
    }
    s->inv_hd = 0;
}

void pb_fwd_state_free(pb_fwd_state *s) {
    if (!s) return;
    release(s);
    free(s->host);
    free(s);
}

/* Host staging of at least n bytes. */
static void *host_staging(pb_fwd_state *s, size_t n, pb_err *err) {
    if (n <= s->host_cap) return s->host;
    free(s->host);
    s->host = malloc(n);
    s->host_cap = s->host ? n : 0;
    if (!s->host) pb_err_set(err, "forward: out of memory for %zu bytes of staging", n);
    return s->host;
}

void pb_set_threads(int n) {
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int pb_fwd_grow(pb_fwd_state *s, int i, size_t a, size_t b, size_t elt, pb_err *err) {
    size_t n;
    if (!pb_mul_ok(a, b, &n) || !pb_mul_ok(n, elt, &n))
        return pb_err_set(err, "forward: scratch size overflows (%zu x %zu)", a, b);
    if (n <= s->cap[i]) return 0;
    if (!s->ops) s->ops = pb_ops_cpu();
    s->ops->free(s->buf[i]);
    s->buf[i] = s->ops->alloc(n, err);
    s->cap[i] = s->buf[i] ? n : 0;
    if (!s->buf[i]) return pb_err_prefix(err, "forward: %zu bytes of scratch: ", n);
    if (i == BUF_INV) s->inv_hd = 0;
    return 0;
}

const float *pb_fwd_inv_freq(pb_fwd_state *s, const pb_config *c, int hd, pb_err *err) {
    const pb_rope_scaling *r = &c->rope_scaling, *o = &s->inv_rs;
    if (s->inv_hd == hd && s->inv_theta == c->rope_theta && o->type == r->type && o->factor == r->factor &&
        o->low_freq_factor == r->low_freq_factor && o->high_freq_factor == r->high_freq_factor &&
        o->original_max_position == r->original_max_position)
        return s->buf[BUF_INV];
    s->inv_hd = 0;
    size_t bytes = ((size_t)hd / 2 + 1) * sizeof(float);
    float *h = host_staging(s, bytes, err);
    if (!h || pb_fwd_grow(s, BUF_INV, bytes, 1, 1, err) != 0) return NULL;
    if (pb_rope_inv_freq(c, hd, h, err) != 0 || s->ops->upload(s->buf[BUF_INV], h, bytes, err) != 0) return NULL;
    s->inv_hd = hd;
    s->inv_theta = c->rope_theta;
    s->inv_rs = *r;
    return s->buf[BUF_INV];
}

/* Checks tokens and cache before anything is modified, so a failed call changes nothing. */
static int check_inputs(const pb_model *m, const int32_t *tokens, int B, int T, const pb_kvcache *cache, int *p0,
                        pb_err *err) {
    if (B <= 0 || T <= 0 || !tokens) return pb_err_set(err, "forward: invalid batch shape B=%d T=%d", B, T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t id = tokens[(size_t)b * T + t];
            if (id < 0 || id >= m->cfg.vocab_size)
                return pb_err_set(err, "forward: token id %d (sequence %d, position %d) is outside the vocabulary "
                                  "[0, %d)", (int)id, b, t, m->cfg.vocab_size);
        }
    *p0 = 0;
    if (!cache) return 0;
    if (cache->n_layers != m->cfg.n_layers || B > cache->batch)
        return pb_err_set(err, "forward: KV cache made for %d layers x %d sequences, model has %d layers, batch %d",
                          cache->n_layers, cache->batch, m->cfg.n_layers, B);
    for (int l = 0; l < m->cfg.n_layers; l++)
        if (m->layers[l].has_attn &&
            (!cache->k[l] || cache->kv_heads[l] != m->layers[l].n_kv_heads || cache->head_dim[l] != m->layers[l].head_dim))
            return pb_err_set(err, "forward: KV cache layer %d was made for %d kv heads x %d, the model has %d x %d "
                              "(a cache from another model?)", l, cache->kv_heads[l], cache->head_dim[l],
                              m->layers[l].n_kv_heads, m->layers[l].head_dim);
    *p0 = cache->len[0];
    for (int b = 1; b < B; b++)
        if (cache->len[b] != *p0)
            return pb_err_set(err, "forward: KV cache lengths differ (sequence 0: %d, sequence %d: %d)", *p0, b,
                              cache->len[b]);
    if (*p0 < 0 || T > cache->max_len - *p0)
        return pb_err_set(err, "forward: KV cache overflow: %d cached + %d new positions exceed max_len %d", *p0, T,
                          cache->max_len);
    return 0;
}

/* Buffers live in one backend's memory: a state used with a model of another backend
 * lets its buffers go first. */
static void bind_state(pb_fwd_state *s, const pb_model *m) {
    const pb_ops *ops = pb_model_ops(m);
    if (s->ops != ops) {
        release(s);
        s->ops = ops;
    }
}

int pb_fwd_scratch(const pb_model *m, pb_fwd_state *s, int B, int T, int p0, pb_err *err) {
    bind_state(s, m);
    const pb_ops *ops = s->ops;
    size_t N = (size_t)B * T, mq, mkv, mf, d = (size_t)m->cfg.dim;
    pb_fwd_max_dims(m, &mq, &mkv, &mf);
    const size_t f = sizeof(float);
    PB_TRY(pb_fwd_grow(s, BUF_X, N, d, f, err));
    PB_TRY(pb_fwd_grow(s, BUF_XN, N, d, f, err));
    PB_TRY(pb_fwd_grow(s, BUF_Q, N, mq, f, err));
    PB_TRY(pb_fwd_grow(s, BUF_ATT, N, mq, f, err));
    PB_TRY(pb_fwd_grow(s, BUF_K, N, mkv, f, err));
    PB_TRY(pb_fwd_grow(s, BUF_V, N, mkv, f, err));
    PB_TRY(pb_fwd_grow(s, BUF_KT, N, mkv, f, err));
    PB_TRY(pb_fwd_grow(s, BUF_VT, N, mkv, f, err));
    PB_TRY(pb_fwd_grow(s, BUF_G, N, mf, f, err));
    PB_TRY(pb_fwd_grow(s, BUF_U, N, mf, f, err));
    PB_TRY(pb_fwd_grow(s, BUF_POS, N, 1, sizeof(int32_t), err));
    PB_TRY(pb_fwd_grow(s, BUF_TOK, N, 1, sizeof(int32_t), err));
    if (m->lora) {
        /* an adapter's input (dropout copy) is at most max(d, q, f) wide */
        size_t w = d > mq ? d : mq;
        w = w > mf ? w : mf;
        PB_TRY(pb_fwd_grow(s, BUF_LX, N, w, f, err));
        PB_TRY(pb_fwd_grow(s, BUF_LT, N, (size_t)m->lora->rank, f, err));
    }
    int32_t *pos = host_staging(s, N * sizeof(int32_t), err);
    if (!pos) return -1;
    for (size_t i = 0; i < N; i++) pos[i] = p0 + (int32_t)(i % (size_t)T);
    return ops->upload(s->buf[BUF_POS], pos, N * sizeof(int32_t), err);
}

void pb_fwd_linear(const pb_model *m, pb_fwd_state *s, int l, pb_lora_target t, float *y, const float *x,
                   const float *W, const float *b, int n, int in, int out, bool accumulate, const uint64_t *drop) {
    const pb_ops *ops = pb_model_ops(m);
    PB_OP(PB_OP_LINEAR, ops->linear(y, x, W, b, n, in, out, accumulate));
    const pb_lora *lo = m->lora;
    const pb_lora_pair *p = pb_lora_get(lo, l, t);
    if (!p) return;
    float *lt = s->buf[BUF_LT];
    if (drop && lo->dropout > 0.0f) {
        float *lx = s->buf[BUF_LX];
        ops->dropout(lx, x, (int64_t)n * in, lo->dropout, pb_lora_dropout_key(*drop, l, t));
        x = lx;
    }
    /* y += ((x A^T) * scale) B^T: scaling the (n, rank) product is the cheapest place */
    PB_OP(PB_OP_LINEAR, ops->linear(lt, x, p->A, NULL, n, in, lo->rank, false));
    ops->scale(lt, lo->scale, (int64_t)n * lo->rank);
    PB_OP(PB_OP_LINEAR, ops->linear(y, lt, p->B, NULL, n, lo->rank, out, true));
}

int pb_fwd_attention(const pb_model *m, pb_fwd_state *s, int l, int B, int T, int p0, pb_kvcache *cache, float *x,
                     const pb_layer_acts *a, const uint64_t *drop, pb_err *err) {
    const pb_ops *ops = pb_model_ops(m);
    const pb_layer *L = &m->layers[l];
    int d = m->cfg.dim, nh = L->n_heads, nkv = L->n_kv_heads, hd = L->head_dim, N = B * T;
    int qd = nh * hd, kd = nkv * hd;
    float *xn = a->xn_a, *q = a->q, *k = a->k, *v = a->v, *att = a->att;
    const float *inv = pb_fwd_inv_freq(s, &m->cfg, hd, err);
    if (!inv) return pb_err_prefix(err, "layer %d: ", l);

    PB_OP(PB_OP_RMSNORM, ops->rmsnorm(xn, x, L->attn_norm, N, d, m->cfg.norm_eps));
    pb_fwd_linear(m, s, l, PB_LORA_Q, q, xn, L->wq, L->bq, N, d, qd, false, drop);
    pb_fwd_linear(m, s, l, PB_LORA_K, k, xn, L->wk, L->bk, N, d, kd, false, drop);
    pb_fwd_linear(m, s, l, PB_LORA_V, v, xn, L->wv, L->bv, N, d, kd, false, drop);
    PB_OP(PB_OP_ROPE, ops->rope(q, s->buf[BUF_POS], inv, N, nh, hd));
    PB_OP(PB_OP_ROPE, ops->rope(k, s->buf[BUF_POS], inv, N, nkv, hd));

    /* (B, T, n_kv, hd) rows -> (n_kv, positions, hd) per sequence: the cache's layout, or
     * scratch of the same layout for this call's T positions */
    float *kb = s->buf[BUF_KT], *vb = s->buf[BUF_VT];
    int stride = T;
    if (cache) {
        stride = cache->max_len;
        kb = cache->k[l];
        vb = cache->v[l];
    }
    size_t bstride = (size_t)nkv * stride * hd;
    ops->kv_store(kb, vb, k, v, B, T, p0, nkv, hd, stride, bstride);
    PB_OP(PB_OP_ATTENTION, ops->attention(att, q, kb, vb, B, T, p0, nh, nkv, hd, stride, bstride));
    pb_fwd_linear(m, s, l, PB_LORA_O, x, att, L->wo, L->bo, N, qd, d, true, drop);
    return 0;
}

void pb_fwd_mlp(const pb_model *m, pb_fwd_state *s, int l, int N, float *x, const pb_layer_acts *a,
                const uint64_t *drop) {
    const pb_ops *ops = pb_model_ops(m);
    const pb_layer *L = &m->layers[l];
    int d = m->cfg.dim, f = L->ffn_dim;
    PB_OP(PB_OP_RMSNORM, ops->rmsnorm(a->xn_m, x, L->mlp_norm, N, d, m->cfg.norm_eps));
    pb_fwd_linear(m, s, l, PB_LORA_GATE, a->g, a->xn_m, L->w_gate, L->b_gate, N, d, f, false, drop);
    pb_fwd_linear(m, s, l, PB_LORA_UP, a->u, a->xn_m, L->w_up, L->b_up, N, d, f, false, drop);
    PB_OP(PB_OP_SWIGLU, ops->swiglu(a->h, a->g, a->u, (int64_t)N * f));
    pb_fwd_linear(m, s, l, PB_LORA_DOWN, x, a->h, L->w_down, L->b_down, N, f, d, true, drop);
}

/* The forward pass with the LM head's logits written to out (backend memory, rows B*T or
 * B with last_only) when out is not NULL. */
static int forward_pass(const pb_model *m, pb_fwd_state *s, const int32_t *tokens, int B, int T, pb_kvcache *cache,
                        float *out, bool last_only, pb_err *err) {
    int p0 = 0;
    PB_TRY(check_inputs(m, tokens, B, T, cache, &p0, err));
    int N = B * T, d = m->cfg.dim;
    PB_TRY(pb_fwd_scratch(m, s, B, T, p0, err));
    const pb_ops *ops = pb_model_ops(m);
    float *x = s->buf[BUF_X], *xn = s->buf[BUF_XN];
    int32_t *tok = s->buf[BUF_TOK];
    PB_TRY(ops->upload(tok, tokens, (size_t)N * sizeof(int32_t), err));
    /* inference: every activation is scratch that the next layer overwrites */
    pb_layer_acts a = {.xn_a = xn, .q = s->buf[BUF_Q], .k = s->buf[BUF_K], .v = s->buf[BUF_V], .att = s->buf[BUF_ATT],
                       .xn_m = xn, .g = s->buf[BUF_G], .u = s->buf[BUF_U], .h = s->buf[BUF_G]};

    PB_OP(PB_OP_EMBEDDING, ops->embedding(x, m->tok_emb, tok, N, d));
    for (int l = 0; l < m->cfg.n_layers; l++) {
        if (m->layers[l].has_attn) PB_TRY(pb_fwd_attention(m, s, l, B, T, p0, cache, x, &a, NULL, err));
        if (m->layers[l].has_mlp) pb_fwd_mlp(m, s, l, N, x, &a, NULL);
    }
    if (cache)
        for (int b = 0; b < B; b++) cache->len[b] = p0 + T;
    if (!out) return 0;
    int rows = N;
    if (last_only) {
        rows = B;
        size_t row = (size_t)d * sizeof(float);
        ops->copy2d(xn, row, x + (size_t)(T - 1) * d, (size_t)T * row, row, (size_t)B);
        PB_OP(PB_OP_RMSNORM, ops->rmsnorm(xn, xn, m->final_norm, rows, d, m->cfg.norm_eps));
    } else {
        PB_OP(PB_OP_RMSNORM, ops->rmsnorm(xn, x, m->final_norm, rows, d, m->cfg.norm_eps));
    }
    PB_OP(PB_OP_LINEAR, ops->linear(out, xn, m->lm_head, NULL, rows, d, m->cfg.vocab_size, false));
    return 0;
}

static int check_model(const pb_model *m, const pb_fwd_state *s, int B, int T, pb_err *err) {
    if (!m || !s) return pb_err_set(err, "forward: no model or no state");
    PB_TRY(pb_model_validate(m, err));
    if (m->lora) PB_TRY(pb_lora_check(m->lora, m, err));
    if (B > 0 && T > 0 && (int64_t)B * T > INT32_MAX / 2) return pb_err_set(err, "forward: batch too large (B=%d T=%d)", B, T);
    return 0;
}

int pb_model_forward(const pb_model *m, pb_fwd_state *s, const int32_t *tokens, int B, int T, pb_kvcache *cache,
                     float *logits, bool last_only, pb_err *err) {
    PB_TRY(check_model(m, s, B, T, err));
    const pb_ops *ops = pb_model_ops(m);
    if (!logits) {
        PB_TRY(forward_pass(m, s, tokens, B, T, cache, NULL, false, err));
        return ops->sync(err);
    }
    /* the CPU writes the caller's logits directly; a device computes them in its own memory */
    size_t rows = last_only ? (size_t)B : (size_t)B * T, V = (size_t)m->cfg.vocab_size;
    float *out = logits;
    if (ops->device) {
        if (B <= 0 || T <= 0) return pb_err_set(err, "forward: invalid batch shape B=%d T=%d", B, T);
        bind_state(s, m);
        PB_TRY(pb_fwd_grow(s, BUF_LOGITS, rows, V, sizeof(float), err));
        out = s->buf[BUF_LOGITS];
    }
    PB_TRY(forward_pass(m, s, tokens, B, T, cache, out, last_only, err));
    if (ops->device) PB_TRY(ops->download(logits, out, rows * V * sizeof(float), err));
    return 0;
}

int pb_model_score(const pb_model *m, pb_fwd_state *s, const int32_t *tokens, int B, int T, pb_kvcache *cache,
                   const int32_t *targets, double *nll, uint8_t *greedy, pb_err *err) {
    PB_TRY(check_model(m, s, B, T, err));
    if (B <= 0 || T <= 0 || !targets || !nll) return pb_err_set(err, "score: invalid call (B=%d T=%d)", B, T);
    int V = m->cfg.vocab_size;
    size_t N = (size_t)B * T;
    for (size_t i = 0; i < N; i++)
        if (targets[i] < -1 || targets[i] >= V)
            return pb_err_set(err, "score: target %d (sequence %zu, position %zu) is outside the vocabulary [0, %d)",
                              (int)targets[i], i / (size_t)T, i % (size_t)T, V);
    const pb_ops *ops = pb_model_ops(m);
    bind_state(s, m);
    PB_TRY(pb_fwd_grow(s, BUF_LOGITS, N, (size_t)V, sizeof(float), err));
    PB_TRY(pb_fwd_grow(s, BUF_TGT, N, 1, sizeof(int32_t), err));
    PB_TRY(pb_fwd_grow(s, BUF_NLL, N, 1, sizeof(double), err));
    PB_TRY(pb_fwd_grow(s, BUF_GREEDY, N, 1, 1, err));
    PB_TRY(forward_pass(m, s, tokens, B, T, cache, s->buf[BUF_LOGITS], false, err));
    PB_TRY(ops->upload(s->buf[BUF_TGT], targets, N * sizeof(int32_t), err));
    ops->token_nll(s->buf[BUF_NLL], greedy ? s->buf[BUF_GREEDY] : NULL, s->buf[BUF_LOGITS], s->buf[BUF_TGT],
                   (int64_t)N, V);
    PB_TRY(ops->download(nll, s->buf[BUF_NLL], N * sizeof(double), err));
    if (greedy) PB_TRY(ops->download(greedy, s->buf[BUF_GREEDY], N, err));
    for (size_t i = 0; i < N; i++)
        if (targets[i] >= 0 && !isfinite(nll[i]))
            return pb_err_set(err, "non-finite log-likelihood at sequence %zu position %zu (logits contain NaN or Inf)",
                              i / (size_t)T, i % (size_t)T);
    return 0;
}

int pb_model_embed(const pb_model *m, const int32_t *tokens, int n, float *x, pb_err *err) {
    if (!pb_model_on_host(m)) return pb_err_set(err, "forward: pb_model_embed needs a host model (this one is on %s)",
                                                m->backend->name);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.vocab_size)
            return pb_err_set(err, "forward: token id %d (row %d) is outside the vocabulary [0, %d)", (int)tokens[i], i,
                              m->cfg.vocab_size);
    pb_ops_cpu()->embedding(x, m->tok_emb, tokens, n, m->cfg.dim);
    return 0;
}

int pb_model_layer_forward(const pb_model *m, pb_fwd_state *s, int l, int B, int T, float *x, const float **att,
                           const float **h, pb_err *err) {
    if (l < 0 || l >= m->cfg.n_layers) return pb_err_set(err, "forward: no layer %d", l);
    if (!pb_model_on_host(m))
        return pb_err_set(err, "forward: layer-by-layer statistics need a host model (this one is on %s)",
                          m->backend->name);
    if (B <= 0 || T <= 0 || (int64_t)B * T > INT32_MAX / 2) return pb_err_set(err, "forward: bad shape B=%d T=%d", B, T);
    PB_TRY(pb_fwd_scratch(m, s, B, T, 0, err));
    pb_layer_acts a = {.xn_a = s->buf[BUF_XN], .q = s->buf[BUF_Q], .k = s->buf[BUF_K], .v = s->buf[BUF_V],
                       .att = s->buf[BUF_ATT], .xn_m = s->buf[BUF_XN], .g = s->buf[BUF_G], .u = s->buf[BUF_U],
                       .h = s->buf[BUF_G]};
    const pb_layer *L = &m->layers[l];
    if (L->has_attn) PB_TRY(pb_fwd_attention(m, s, l, B, T, 0, NULL, x, &a, NULL, err));
    if (L->has_mlp) pb_fwd_mlp(m, s, l, B * T, x, &a, NULL);
    if (att) *att = L->has_attn ? a.att : NULL;
    if (h) *h = L->has_mlp ? a.h : NULL;
    return 0;
}
