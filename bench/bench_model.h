/* bench_model.h — the ~110M-parameter random LLaMA model every CPU benchmark measures:
 * GPT-2-small-sized, 12 x (4*768^2 + 3*768*2048) = 85M in blocks + 24.6M tied embedding
 * (vocabulary 32000, LLaMA's). Weights are small uniform noise (norms near 1): speed does
 * not depend on the values, and the noise keeps activations finite and ordinary. */
#ifndef PB_BENCH_MODEL_H
#define PB_BENCH_MODEL_H

#include "model.h"

#include <string.h>

static uint64_t pb_bench_rng = 0x12345678ULL;

static inline void pb_bench_fill(float *p, size_t n, float base) {
    for (size_t i = 0; i < n; i++) {
        pb_bench_rng = pb_bench_rng * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = base + ((float)(pb_bench_rng >> 40) / (float)(1 << 24) - 0.5f) * 0.04f;
    }
}

/* The model, or NULL with err filled. */
static inline pb_model *pb_bench_model_110m(pb_err *err) {
    pb_config cfg = {.dim = 768, .n_layers = 12, .vocab_size = 32000, .max_seq_len = 2048, .norm_eps = 1e-5f,
                     .rope_theta = 10000.0f, .tied_embeddings = true, .bos_id = 1, .eos_id = 2,
                     .n_heads = 12, .n_kv_heads = 12, .head_dim = 64, .ffn_dim = 2048};
    strcpy(cfg.arch, "llama");
    pb_model *m = NULL;
    if (pb_model_create(&m, &cfg, true, err)) return NULL;
    pb_bench_fill(m->tok_emb, (size_t)cfg.vocab_size * cfg.dim, 0);
    pb_bench_fill(m->final_norm, (size_t)cfg.dim, 1);
    for (int l = 0; l < cfg.n_layers; l++) {
        pb_layer *L = &m->layers[l];
        size_t d = cfg.dim, q = (size_t)L->n_heads * L->head_dim, kv = (size_t)L->n_kv_heads * L->head_dim;
        size_t f = L->ffn_dim;
        pb_bench_fill(L->attn_norm, d, 1);
        pb_bench_fill(L->mlp_norm, d, 1);
        pb_bench_fill(L->wq, q * d, 0);
        pb_bench_fill(L->wk, kv * d, 0);
        pb_bench_fill(L->wv, kv * d, 0);
        pb_bench_fill(L->wo, d * q, 0);
        pb_bench_fill(L->w_gate, f * d, 0);
        pb_bench_fill(L->w_up, f * d, 0);
        pb_bench_fill(L->w_down, d * f, 0);
    }
    return m;
}

#endif
