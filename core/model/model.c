/* model.c — model lifetime, per-layer allocation, validation and parameter counts. */
#include "model.h"
#include "lora.h"
#include "ops.h"

#include <stdlib.h>
#include <string.h>

int pb_model_create(pb_model **out, const pb_config *cfg, bool alloc_weights, pb_err *err) {
    *out = NULL;
    if (cfg->dim <= 0 || cfg->n_layers < 0 || cfg->vocab_size <= 0)
        return pb_err_set(err, "invalid model shape: dim=%d n_layers=%d vocab_size=%d", cfg->dim, cfg->n_layers,
                          cfg->vocab_size);
    pb_model *m = calloc(1, sizeof *m);
    PB_CHECK_ALLOC(m, err);
    m->cfg = *cfg;
    pb_arena_init(&m->arena, (size_t)1 << 20);
    strcpy(m->format, "memory");
    m->layers = pb_arena_alloc_n(&m->arena, (size_t)(cfg->n_layers ? cfg->n_layers : 1), sizeof(pb_layer));
    if (!m->layers) { pb_model_free(m); return pb_err_set(err, "out of memory"); }
    for (int l = 0; l < cfg->n_layers; l++) {
        pb_layer *L = &m->layers[l];
        L->n_heads = cfg->n_heads;
        L->n_kv_heads = cfg->n_kv_heads;
        L->head_dim = cfg->head_dim;
        L->ffn_dim = cfg->ffn_dim;
        L->has_attn = cfg->n_heads > 0;
        L->has_mlp = cfg->ffn_dim > 0;
    }
    if (alloc_weights) {
        size_t ve = (size_t)cfg->vocab_size * (size_t)cfg->dim;
        m->tok_emb = pb_arena_alloc_n(&m->arena, ve, sizeof(float));
        m->final_norm = pb_arena_alloc_n(&m->arena, (size_t)cfg->dim, sizeof(float));
        m->lm_head = cfg->tied_embeddings ? m->tok_emb : pb_arena_alloc_n(&m->arena, ve, sizeof(float));
        if (!m->tok_emb || !m->final_norm || !m->lm_head) { pb_model_free(m); return pb_err_set(err, "out of memory"); }
        for (int l = 0; l < cfg->n_layers; l++)
            if (pb_model_alloc_layer(m, l, err) != 0) { pb_model_free(m); return -1; }
    }
    *out = m;
    return 0;
}

static float *alloc_f(pb_model *m, size_t a, size_t b) { return pb_arena_alloc_n(&m->arena, a * b, sizeof(float)); }

int pb_model_alloc_layer(pb_model *m, int l, pb_err *err) {
    pb_layer *L = &m->layers[l];
    size_t d = (size_t)m->cfg.dim, q = (size_t)L->n_heads * L->head_dim, kv = (size_t)L->n_kv_heads * L->head_dim;
    size_t f = (size_t)L->ffn_dim;
    if (L->has_attn) {
        L->attn_norm = alloc_f(m, d, 1);
        L->wq = alloc_f(m, q, d);
        L->wk = alloc_f(m, kv, d);
        L->wv = alloc_f(m, kv, d);
        L->wo = alloc_f(m, d, q);
        if (!L->attn_norm || !L->wq || !L->wk || !L->wv || !L->wo) return pb_err_set(err, "out of memory");
    }
    if (L->has_mlp) {
        L->mlp_norm = alloc_f(m, d, 1);
        L->w_gate = alloc_f(m, f, d);
        L->w_up = alloc_f(m, f, d);
        L->w_down = alloc_f(m, d, f);
        if (!L->mlp_norm || !L->w_gate || !L->w_up || !L->w_down) return pb_err_set(err, "out of memory");
    }
    return 0;
}

const pb_ops *pb_model_ops(const pb_model *m) { return m->backend ? m->backend : pb_ops_cpu(); }

bool pb_model_on_host(const pb_model *m) { return !m->backend || !m->backend->device; }

void pb_model_free(pb_model *m) {
    if (!m) return;
    if (m->backend) m->backend->free(m->dev_block);
    if (m->owns_lora) pb_lora_free(m->lora);
    for (int i = 0; i < m->n_maps; i++) pb_mmap_close(&m->maps[i]);
    free(m->maps);
    free(m->path);
    pb_arena_free(&m->arena);
    free(m);
}

static int clone_tensor(pb_model *c, float **dst, const float *src, size_t n, pb_err *err) {
    if (!src) {
        *dst = NULL;
        return 0;
    }
    *dst = pb_arena_alloc_n(&c->arena, n, sizeof(float));
    if (!*dst) return pb_err_set(err, "clone: out of memory");
    memcpy(*dst, src, n * sizeof(float));
    return 0;
}

int pb_model_clone(const pb_model *m, pb_model **out, pb_err *err) {
    if (m->backend) return pb_err_set(err, "clone: the model is on %s; clone the host model", m->backend->name);
    pb_model *c;
    PB_TRY(pb_model_create(&c, &m->cfg, false, err));
    size_t d = (size_t)m->cfg.dim, ve = (size_t)m->cfg.vocab_size * d;
    bool tied = m->lm_head == m->tok_emb;
    int rc = clone_tensor(c, &c->tok_emb, m->tok_emb, ve, err);
    if (rc == 0) rc = clone_tensor(c, &c->final_norm, m->final_norm, d, err);
    if (rc == 0) rc = tied ? (c->lm_head = c->tok_emb, 0) : clone_tensor(c, &c->lm_head, m->lm_head, ve, err);
    for (int l = 0; rc == 0 && l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        pb_layer *K = &c->layers[l];
        *K = *L;
        size_t q = (size_t)L->n_heads * L->head_dim, kv = (size_t)L->n_kv_heads * L->head_dim, f = (size_t)L->ffn_dim;
        struct { float **dst; const float *src; size_t n; } t[] = {
            {&K->attn_norm, L->attn_norm, d}, {&K->wq, L->wq, q * d}, {&K->wk, L->wk, kv * d}, {&K->wv, L->wv, kv * d},
            {&K->wo, L->wo, d * q}, {&K->bq, L->bq, q}, {&K->bk, L->bk, kv}, {&K->bv, L->bv, kv}, {&K->bo, L->bo, d},
            {&K->mlp_norm, L->mlp_norm, d}, {&K->w_gate, L->w_gate, f * d}, {&K->w_up, L->w_up, f * d},
            {&K->w_down, L->w_down, d * f}, {&K->b_gate, L->b_gate, f}, {&K->b_up, L->b_up, f}, {&K->b_down, L->b_down, d}};
        for (size_t i = 0; rc == 0 && i < sizeof t / sizeof t[0]; i++) rc = clone_tensor(c, t[i].dst, t[i].src, t[i].n, err);
    }
    if (rc == 0 && m->path && !(c->path = strdup(m->path))) rc = pb_err_set(err, "clone: out of memory");
    if (rc != 0) {
        pb_model_free(c);
        return -1;
    }
    memcpy(c->format, m->format, sizeof c->format);
    *out = c;
    return 0;
}

int pb_model_validate(const pb_model *m, pb_err *err) {
    const pb_config *c = &m->cfg;
    if (c->dim <= 0 || c->vocab_size <= 0 || c->n_layers < 0)
        return pb_err_set(err, "invalid model shape: dim=%d vocab_size=%d n_layers=%d", c->dim, c->vocab_size, c->n_layers);
    if (!m->tok_emb || !m->final_norm || !m->lm_head) return pb_err_set(err, "model lacks embeddings, final norm or head");
    if (!(c->norm_eps > 0)) return pb_err_set(err, "invalid rms_norm_eps %g", (double)c->norm_eps);
    for (int l = 0; l < c->n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        if (L->has_attn) {
            if (L->n_heads <= 0 || L->n_kv_heads <= 0 || L->head_dim <= 0 || (L->head_dim & 1))
                return pb_err_set(err, "layer %d: invalid attention shape (heads=%d kv_heads=%d head_dim=%d)", l,
                                  L->n_heads, L->n_kv_heads, L->head_dim);
            if (L->n_heads % L->n_kv_heads)
                return pb_err_set(err, "layer %d: %d heads are not a multiple of %d kv heads", l, L->n_heads, L->n_kv_heads);
            if (!L->attn_norm || !L->wq || !L->wk || !L->wv || !L->wo)
                return pb_err_set(err, "layer %d: attention weights missing", l);
        }
        if (L->has_mlp) {
            if (L->ffn_dim <= 0) return pb_err_set(err, "layer %d: invalid ffn_dim %d", l, L->ffn_dim);
            if (!L->mlp_norm || !L->w_gate || !L->w_up || !L->w_down)
                return pb_err_set(err, "layer %d: MLP weights missing", l);
        }
    }
    return 0;
}

int64_t pb_layer_params(const pb_model *m, int l) {
    const pb_layer *L = &m->layers[l];
    int64_t d = m->cfg.dim, n = 0;
    if (L->has_attn) {
        int64_t q = (int64_t)L->n_heads * L->head_dim, kv = (int64_t)L->n_kv_heads * L->head_dim;
        n += d + 2 * q * d + 2 * kv * d;
        if (L->bq) n += q;
        if (L->bk) n += kv;
        if (L->bv) n += kv;
        if (L->bo) n += d;
    }
    if (L->has_mlp) {
        int64_t f = L->ffn_dim;
        n += d + 3 * f * d;
        if (L->b_gate) n += f;
        if (L->b_up) n += f;
        if (L->b_down) n += d;
    }
    return n;
}

int64_t pb_model_params_no_embed(const pb_model *m) {
    int64_t n = m->cfg.dim; /* final norm */
    for (int l = 0; l < m->cfg.n_layers; l++) n += pb_layer_params(m, l);
    return n;
}

int64_t pb_model_params(const pb_model *m) {
    int64_t ve = (int64_t)m->cfg.vocab_size * m->cfg.dim;
    /* a shape-only model (no tensors) counts by its config */
    bool tied = m->tok_emb ? m->lm_head == m->tok_emb : m->cfg.tied_embeddings;
    return pb_model_params_no_embed(m) + ve + (tied ? 0 : ve);
}

int pb_rope_unpermute_rows(float *w, int n_heads, int head_dim, int cols, pb_err *err) {
    if (head_dim <= 0 || (head_dim & 1)) return pb_err_set(err, "cannot reorder RoPE rows: odd head_dim %d", head_dim);
    size_t row = (size_t)cols * sizeof(float), hsz = row * (size_t)head_dim;
    float *tmp = malloc(hsz);
    PB_CHECK_ALLOC(tmp, err);
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *base = w + (size_t)h * head_dim * cols;
        memcpy(tmp, base, hsz);
        /* HF row i*half + j  <-  Meta row 2j + i */
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < half; j++)
                memcpy(base + (size_t)(i * half + j) * cols, tmp + (size_t)(2 * j + i) * cols, row);
    }
    free(tmp);
    return 0;
}
