/* rand_model.h — test helper: random LLaMA models built in memory with per-layer shapes.
 *
 * Weights are uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)] (norm weights around 1), from a
 * fixed-seed generator, so that activations stay O(1) through the layers, as in a
 * trained model, and every run sees the same numbers. */
#ifndef PB_TEST_RAND_MODEL_H
#define PB_TEST_RAND_MODEL_H

#include "model.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int n_heads, n_kv_heads, head_dim, ffn_dim; /* n_heads 0: no attention; ffn_dim 0: no MLP */
    const char *bias;                           /* subset of "qkvoGUD" (gate, up, down in capitals) */
} rm_layer;

static uint64_t rm_state = 0x9E3779B97F4A7C15ull;
static inline float rm_uniform(void) { /* xorshift64*: [-1, 1) */
    rm_state ^= rm_state >> 12;
    rm_state ^= rm_state << 25;
    rm_state ^= rm_state >> 27;
    uint64_t r = rm_state * 2685821657736338717ull;
    return (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static inline void rm_fill(float *w, size_t n, float scale, float offset) {
    for (size_t i = 0; i < n; i++) w[i] = offset + scale * rm_uniform();
}

static int rm_oom;
static inline float *rm_bias(pb_model *m, const char *spec, char c, int n) {
    if (!spec || !strchr(spec, c)) return NULL;
    float *b = pb_arena_alloc_n(&m->arena, (size_t)n, sizeof(float));
    if (b) rm_fill(b, (size_t)n, 0.1f, 0.0f);
    else rm_oom = 1;
    return b;
}

/* A model with cfg's global fields and the given layers (cfg->n_layers entries). */
static inline pb_model *rm_build(const pb_config *cfg, const rm_layer *layers, uint64_t seed) {
    pb_err err;
    pb_model *m;
    rm_state = seed * 0x9E3779B97F4A7C15ull + 1;
    rm_oom = 0;
    if (pb_model_create(&m, cfg, false, &err) != 0) return NULL;
    size_t d = (size_t)cfg->dim, V = (size_t)cfg->vocab_size;
    m->tok_emb = pb_arena_alloc_n(&m->arena, V * d, sizeof(float));
    m->final_norm = pb_arena_alloc_n(&m->arena, d, sizeof(float));
    m->lm_head = cfg->tied_embeddings ? m->tok_emb : pb_arena_alloc_n(&m->arena, V * d, sizeof(float));
    if (!m->tok_emb || !m->final_norm || !m->lm_head) goto fail;
    rm_fill(m->tok_emb, V * d, 1.0f, 0.0f);
    rm_fill(m->final_norm, d, 0.2f, 1.0f);
    if (!cfg->tied_embeddings) rm_fill(m->lm_head, V * d, 1.0f / sqrtf((float)d), 0.0f);
    for (int l = 0; l < cfg->n_layers; l++) {
        const rm_layer *s = &layers[l];
        pb_layer *L = &m->layers[l];
        L->n_heads = s->n_heads, L->n_kv_heads = s->n_kv_heads, L->head_dim = s->head_dim, L->ffn_dim = s->ffn_dim;
        L->has_attn = s->n_heads > 0;
        L->has_mlp = s->ffn_dim > 0;
        if (pb_model_alloc_layer(m, l, &err) != 0) goto fail;
        int q = s->n_heads * s->head_dim, kv = s->n_kv_heads * s->head_dim, f = s->ffn_dim;
        if (L->has_attn) {
            rm_fill(L->attn_norm, d, 0.2f, 1.0f);
            rm_fill(L->wq, (size_t)q * d, 1.0f / sqrtf((float)d), 0.0f);
            rm_fill(L->wk, (size_t)kv * d, 1.0f / sqrtf((float)d), 0.0f);
            rm_fill(L->wv, (size_t)kv * d, 1.0f / sqrtf((float)d), 0.0f);
            rm_fill(L->wo, d * (size_t)q, 1.0f / sqrtf((float)q), 0.0f);
            L->bq = rm_bias(m, s->bias, 'q', q);
            L->bk = rm_bias(m, s->bias, 'k', kv);
            L->bv = rm_bias(m, s->bias, 'v', kv);
            L->bo = rm_bias(m, s->bias, 'o', (int)d);
        }
        if (L->has_mlp) {
            rm_fill(L->mlp_norm, d, 0.2f, 1.0f);
            rm_fill(L->w_gate, (size_t)f * d, 1.0f / sqrtf((float)d), 0.0f);
            rm_fill(L->w_up, (size_t)f * d, 1.0f / sqrtf((float)d), 0.0f);
            rm_fill(L->w_down, d * (size_t)f, 1.0f / sqrtf((float)f), 0.0f);
            L->b_gate = rm_bias(m, s->bias, 'G', f);
            L->b_up = rm_bias(m, s->bias, 'U', f);
            L->b_down = rm_bias(m, s->bias, 'D', (int)d);
        }
    }
    if (rm_oom || pb_model_validate(m, &err) != 0) goto fail;
    return m;
fail:
    pb_model_free(m);
    return NULL;
}

#endif
