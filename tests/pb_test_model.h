/* pb_test_model.h — test helpers that need a model (core/model only, no readers):
 *
 * - rm_build: random LLaMA models built in memory with per-layer shapes (layers without
 *   attention or MLP, any subset of biases), from a fixed-seed xorshift64* generator, so
 *   that every run sees the same numbers. Two kinds of values:
 *     RM_SCALED   uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)] (norm weights around 1,
 *                 biases within 0.1), so that activations stay O(1) through the layers, as
 *                 in a trained model: for forward-pass tests;
 *     RM_EXTREME  floats spanning many binades plus the values that exercise the fp16/bf16
 *                 rounding paths (zero, -0, half subnormals, halfway cases, overflow to
 *                 inf): for reader/writer tests, where values only travel.
 * - pb_test_in_maps: whether a tensor lies inside one of the model's memory maps.
 * - pb_test_greedy_mismatch: greedy decoding with the KV cache against reference ids. */
#ifndef PB_TEST_MODEL_H
#define PB_TEST_MODEL_H

#include "model.h"
#include "pb_test.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int n_heads, n_kv_heads, head_dim, ffn_dim; /* n_heads 0: no attention; ffn_dim 0: no MLP */
    const char *bias;                           /* subset of "qkvoGUD" (gate, up, down in capitals) */
} rm_layer;

typedef enum { RM_SCALED, RM_EXTREME } rm_values;

static uint64_t rm_state = 0x9E3779B97F4A7C15ull;
static rm_values rm_mode = RM_SCALED;

static inline uint64_t rm_next(void) { /* xorshift64* */
    rm_state ^= rm_state >> 12;
    rm_state ^= rm_state << 25;
    rm_state ^= rm_state >> 27;
    return rm_state * 2685821657736338717ull;
}

/* Uniform in [-1, 1). */
static inline float rm_uniform(void) { return (float)((double)(rm_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

/* RM_EXTREME's values: one in 64 is each special value, the rest span 2^-8..2^8. */
static inline float rm_extreme(void) {
    uint64_t r = rm_next();
    switch (r & 63) {
    case 0: return 0.0f;
    case 1: return -0.0f;
    case 2: return 3e-6f;              /* fp16 subnormal */
    case 3: return 1.0f + 1.0f / 2048; /* fp16 tie: rounds to even (1.0) */
    case 4: return 1.0f + 3.0f / 2048; /* fp16 tie: rounds up */
    case 5: return 70000.0f;           /* fp16 overflow: inf */
    case 6: return -1e-30f;            /* fp16 underflow, bf16 keeps it */
    default: break;
    }
    double u = (double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0;
    return (float)ldexp(u, (int)((r >> 6) & 15) - 8);
}

/* n values: offset + scale * uniform for RM_SCALED; RM_EXTREME ignores scale and offset. */
static inline void rm_fill(float *w, size_t n, float scale, float offset) {
    for (size_t i = 0; i < n; i++) w[i] = rm_mode == RM_EXTREME ? rm_extreme() : offset + scale * rm_uniform();
}

static inline float *rm_alloc(pb_model *m, size_t n) {
    float *p = pb_arena_alloc_n(&m->arena, n, sizeof(float));
    REQUIRE(p, "out of memory");
    return p;
}

static inline float *rm_bias(pb_model *m, const char *spec, char c, int n) {
    if (!spec || !strchr(spec, c)) return NULL;
    float *b = rm_alloc(m, (size_t)n);
    rm_fill(b, (size_t)n, 0.1f, 0.0f);
    return b;
}

/* A model with cfg's global fields and the given layers (cfg->n_layers entries); the test
 * stops when it cannot be built. The generator is left where the model ends, so that a
 * test can draw more numbers (token ids) from it with rm_uniform. */
static inline pb_model *rm_build(const pb_config *cfg, const rm_layer *layers, uint64_t seed, rm_values values) {
    pb_err err;
    pb_model *m;
    rm_state = seed * 0x9E3779B97F4A7C15ull + 1;
    rm_mode = values;
    REQUIRE(pb_model_create(&m, cfg, false, &err) == 0, "%s", err.msg);
    size_t d = (size_t)cfg->dim, V = (size_t)cfg->vocab_size;
    m->tok_emb = rm_alloc(m, V * d);
    m->final_norm = rm_alloc(m, d);
    m->lm_head = cfg->tied_embeddings ? m->tok_emb : rm_alloc(m, V * d);
    rm_fill(m->tok_emb, V * d, 1.0f, 0.0f);
    rm_fill(m->final_norm, d, 0.2f, 1.0f);
    if (!cfg->tied_embeddings) rm_fill(m->lm_head, V * d, 1.0f / sqrtf((float)d), 0.0f);
    for (int l = 0; l < cfg->n_layers; l++) {
        const rm_layer *s = &layers[l];
        pb_layer *L = &m->layers[l];
        L->n_heads = s->n_heads, L->n_kv_heads = s->n_kv_heads, L->head_dim = s->head_dim, L->ffn_dim = s->ffn_dim;
        L->has_attn = s->n_heads > 0;
        L->has_mlp = s->ffn_dim > 0;
        REQUIRE(pb_model_alloc_layer(m, l, &err) == 0, "%s", err.msg);
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
    REQUIRE(pb_model_validate(m, &err) == 0, "%s", err.msg);
    return m;
}

/* True when [p, p+n floats) lies inside one of m's memory maps. */
static inline bool pb_test_in_maps(const pb_model *m, const float *p, size_t n) {
    for (int i = 0; i < m->n_maps; i++) {
        const uint8_t *b = m->maps[i].data, *q = (const uint8_t *)p;
        if (q >= b && q + n * sizeof(float) <= b + m->maps[i].size) return true;
    }
    return false;
}

/* Greedy decoding of one sequence through the KV cache: feeds `start`, then each argmax,
 * for n - 1 steps. Returns the first step i (1..n-1) whose argmax is not want[i], or -1
 * when every step gives the reference id. */
static inline int pb_test_greedy_mismatch(pb_model *m, int32_t start, const int32_t *want, int n) {
    pb_err err;
    pb_fwd_state *st = pb_fwd_state_new();
    pb_kvcache *c;
    REQUIRE(st && pb_kvcache_create(&c, m, 1, n, &err) == 0, "%s", err.msg);
    int V = m->cfg.vocab_size;
    float *lg = malloc(sizeof(float) * (size_t)V);
    REQUIRE(lg, "oom");
    int32_t cur = start;
    int first_bad = -1;
    for (int i = 1; i < n; i++) {
        REQUIRE(pb_model_forward(m, st, &cur, 1, 1, c, lg, true, &err) == 0, "step %d: %s", i, err.msg);
        cur = pb_test_argmax(lg, V);
        if (cur != want[i] && first_bad < 0) first_bad = i;
    }
    free(lg);
    pb_kvcache_free(c);
    pb_fwd_state_free(st);
    return first_bad;
}

#endif
