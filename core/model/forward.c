/* forward.c — the LLaMA forward driver: embeddings, per-layer attention and SwiGLU MLP
 * (each optional, each with its own shape), final norm and LM head, through the op table.
 *
 * All B*T rows go through every linear layer as one GEMM; only attention runs per
 * sequence. With a KV cache the new keys/values are written straight into the cache and
 * attention reads them from there; without one they are regrouped per KV head in scratch. */
#include "model.h"
#include "ops.h"
#include "rope.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { BUF_X, BUF_XN, BUF_Q, BUF_K, BUF_V, BUF_ATT, BUF_KT, BUF_VT, BUF_G, BUF_U, BUF_INV, BUF_POS, N_BUF };

struct pb_fwd_state {
    void *buf[N_BUF];
    size_t cap[N_BUF];    /* bytes */
    /* inv_freq in buf[BUF_INV] is valid for these RoPE settings (inv_hd == 0: none yet) */
    int inv_hd;
    float inv_theta;
    pb_rope_scaling inv_rs;
};

pb_fwd_state *pb_fwd_state_new(void) { return calloc(1, sizeof(pb_fwd_state)); }

void pb_fwd_state_free(pb_fwd_state *s) {
    if (!s) return;
    for (int i = 0; i < N_BUF; i++) free(s->buf[i]);
    free(s);
}

void pb_set_threads(int n) {
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

/* Makes buf[i] hold at least a*b elements of elt bytes (contents not kept). */
static int grow(pb_fwd_state *s, int i, size_t a, size_t b, size_t elt, pb_err *err) {
    size_t n;
    if (!pb_mul_ok(a, b, &n) || !pb_mul_ok(n, elt, &n))
        return pb_err_set(err, "forward: scratch size overflows (%zu x %zu)", a, b);
    if (n <= s->cap[i]) return 0;
    free(s->buf[i]);
    s->buf[i] = malloc(n);
    s->cap[i] = s->buf[i] ? n : 0;
    if (!s->buf[i]) return pb_err_set(err, "forward: out of memory for %zu bytes of scratch", n);
    return 0;
}

static const float *inv_freq_for(pb_fwd_state *s, const pb_config *c, int hd, pb_err *err) {
    const pb_rope_scaling *r = &c->rope_scaling, *o = &s->inv_rs;
    if (s->inv_hd == hd && s->inv_theta == c->rope_theta && o->type == r->type && o->factor == r->factor &&
        o->low_freq_factor == r->low_freq_factor && o->high_freq_factor == r->high_freq_factor &&
        o->original_max_position == r->original_max_position)
        return s->buf[BUF_INV];
    s->inv_hd = 0;
    if (grow(s, BUF_INV, (size_t)hd / 2 + 1, 1, sizeof(float), err) != 0) return NULL;
    if (pb_rope_inv_freq(c, hd, s->buf[BUF_INV], err) != 0) return NULL;
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

static int alloc_scratch(const pb_model *m, pb_fwd_state *s, size_t N, int T, pb_err *err) {
    size_t mq = 0, mkv = 0, mf = 0, d = (size_t)m->cfg.dim;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        if (L->has_attn) {
            size_t q = (size_t)L->n_heads * L->head_dim, kv = (size_t)L->n_kv_heads * L->head_dim;
            mq = q > mq ? q : mq;
            mkv = kv > mkv ? kv : mkv;
        }
        if (L->has_mlp && (size_t)L->ffn_dim > mf) mf = (size_t)L->ffn_dim;
    }
    const size_t f = sizeof(float);
    PB_TRY(grow(s, BUF_X, N, d, f, err));
    PB_TRY(grow(s, BUF_XN, N, d, f, err));
    PB_TRY(grow(s, BUF_Q, N, mq, f, err));
    PB_TRY(grow(s, BUF_ATT, N, mq, f, err));
    PB_TRY(grow(s, BUF_K, N, mkv, f, err));
    PB_TRY(grow(s, BUF_V, N, mkv, f, err));
    PB_TRY(grow(s, BUF_KT, (size_t)T, mkv, f, err));
    PB_TRY(grow(s, BUF_VT, (size_t)T, mkv, f, err));
    PB_TRY(grow(s, BUF_G, N, mf, f, err));
    PB_TRY(grow(s, BUF_U, N, mf, f, err));
    PB_TRY(grow(s, BUF_POS, N, 1, sizeof(int32_t), err));
    return 0;
}

static int attention_block(const pb_model *m, pb_fwd_state *s, int l, int B, int T, int p0, pb_kvcache *cache,
                           pb_err *err) {
    const pb_ops *ops = pb_ops_cpu();
    const pb_layer *L = &m->layers[l];
    int d = m->cfg.dim, nh = L->n_heads, nkv = L->n_kv_heads, hd = L->head_dim, N = B * T;
    int qd = nh * hd, kd = nkv * hd;
    float *x = s->buf[BUF_X], *xn = s->buf[BUF_XN], *q = s->buf[BUF_Q], *k = s->buf[BUF_K], *v = s->buf[BUF_V];
    float *att = s->buf[BUF_ATT];
    const float *inv = inv_freq_for(s, &m->cfg, hd, err);
    if (!inv) return pb_err_prefix(err, "layer %d: ", l);

    PB_OP(PB_OP_RMSNORM, ops->rmsnorm(xn, x, L->attn_norm, N, d, m->cfg.norm_eps));
    PB_OP(PB_OP_LINEAR, ops->linear(q, xn, L->wq, L->bq, N, d, qd, false));
    PB_OP(PB_OP_LINEAR, ops->linear(k, xn, L->wk, L->bk, N, d, kd, false));
    PB_OP(PB_OP_LINEAR, ops->linear(v, xn, L->wv, L->bv, N, d, kd, false));
    PB_OP(PB_OP_ROPE, ops->rope(q, s->buf[BUF_POS], inv, N, nh, hd));
    PB_OP(PB_OP_ROPE, ops->rope(k, s->buf[BUF_POS], inv, N, nkv, hd));

    size_t row = (size_t)hd * sizeof(float);
    for (int b = 0; b < B; b++) {
        float *kb, *vb;
        int stride;
        if (cache) {
            stride = cache->max_len;
            kb = cache->k[l] + (size_t)b * nkv * stride * hd;
            vb = cache->v[l] + (size_t)b * nkv * stride * hd;
        } else {
            stride = T;
            kb = s->buf[BUF_KT];
            vb = s->buf[BUF_VT];
        }
        /* (T, n_kv, hd) rows -> (n_kv, positions, hd) */
        for (int g = 0; g < nkv; g++)
            for (int t = 0; t < T; t++) {
                size_t src = (((size_t)b * T + t) * nkv + g) * hd, dst = ((size_t)g * stride + p0 + t) * hd;
                memcpy(kb + dst, k + src, row);
                memcpy(vb + dst, v + src, row);
            }
        size_t qo = (size_t)b * T * qd;
        PB_OP(PB_OP_ATTENTION, ops->attention(att + qo, q + qo, kb, vb, T, p0, nh, nkv, hd, stride));
    }
    PB_OP(PB_OP_LINEAR, ops->linear(x, att, L->wo, L->bo, N, qd, d, true));
    return 0;
}

static void mlp_block(const pb_model *m, pb_fwd_state *s, int l, int N) {
    const pb_ops *ops = pb_ops_cpu();
    const pb_layer *L = &m->layers[l];
    int d = m->cfg.dim, f = L->ffn_dim;
    float *x = s->buf[BUF_X], *xn = s->buf[BUF_XN], *g = s->buf[BUF_G], *u = s->buf[BUF_U];
    PB_OP(PB_OP_RMSNORM, ops->rmsnorm(xn, x, L->mlp_norm, N, d, m->cfg.norm_eps));
    PB_OP(PB_OP_LINEAR, ops->linear(g, xn, L->w_gate, L->b_gate, N, d, f, false));
    PB_OP(PB_OP_LINEAR, ops->linear(u, xn, L->w_up, L->b_up, N, d, f, false));
    PB_OP(PB_OP_SWIGLU, ops->swiglu(g, g, u, (int64_t)N * f));
    PB_OP(PB_OP_LINEAR, ops->linear(x, g, L->w_down, L->b_down, N, f, d, true));
}

int pb_model_forward(const pb_model *m, pb_fwd_state *s, const int32_t *tokens, int B, int T, pb_kvcache *cache,
                     float *logits, bool last_only, pb_err *err) {
    if (!m || !s) return pb_err_set(err, "forward: no model or no state");
    PB_TRY(pb_model_validate(m, err));
    int p0 = 0;
    PB_TRY(check_inputs(m, tokens, B, T, cache, &p0, err));
    if ((int64_t)B * T > INT32_MAX / 2) return pb_err_set(err, "forward: batch too large (B=%d T=%d)", B, T);
    int N = B * T, d = m->cfg.dim;
    PB_TRY(alloc_scratch(m, s, (size_t)N, T, err));
    const pb_ops *ops = pb_ops_cpu();
    int32_t *pos = s->buf[BUF_POS];
    for (int i = 0; i < N; i++) pos[i] = p0 + i % T;
    float *x = s->buf[BUF_X], *xn = s->buf[BUF_XN];

    PB_OP(PB_OP_EMBEDDING, ops->embedding(x, m->tok_emb, tokens, N, d));
    for (int l = 0; l < m->cfg.n_layers; l++) {
        if (m->layers[l].has_attn) PB_TRY(attention_block(m, s, l, B, T, p0, cache, err));
        if (m->layers[l].has_mlp) mlp_block(m, s, l, N);
    }
    if (cache)
        for (int b = 0; b < B; b++) cache->len[b] = p0 + T;
    if (!logits) return 0;

    int rows = N;
    if (last_only) {
        rows = B;
        for (int b = 0; b < B; b++)
            memcpy(xn + (size_t)b * d, x + ((size_t)b * T + T - 1) * d, (size_t)d * sizeof(float));
        PB_OP(PB_OP_RMSNORM, ops->rmsnorm(xn, xn, m->final_norm, rows, d, m->cfg.norm_eps));
    } else {
        PB_OP(PB_OP_RMSNORM, ops->rmsnorm(xn, x, m->final_norm, rows, d, m->cfg.norm_eps));
    }
    PB_OP(PB_OP_LINEAR, ops->linear(logits, xn, m->lm_head, NULL, rows, d, m->cfg.vocab_size, false));
    return 0;
}
