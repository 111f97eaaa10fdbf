/* io_testutil.h — helpers for the core/io tests: exact comparison of two models, the second
 * loaded from the first saved in F32, F16 or BF16 (values compared after that rounding).
 * Random models (rm_build with RM_EXTREME values) and file helpers come from the common
 * test headers. */
#ifndef PB_IO_TESTUTIL_H
#define PB_IO_TESTUTIL_H

#include "load.h"
#include "pb_test.h"
#include "pb_test_model.h"

/* What a value becomes after a save in dtype and a load: RNE rounding, exact widening. */
static inline float io_round(float x, pb_save_dtype dt) {
    if (dt == PB_DTYPE_F16) return pb_f16_to_f32(pb_f32_to_f16(x));
    if (dt == PB_DTYPE_BF16) return pb_bf16_to_f32(pb_f32_to_bf16(x));
    return x;
}

/* Tensor b must equal tensor a rounded through dt, bit for bit (both NULL is fine). */
static inline int io_same_tensor(const char *what, int layer, const float *a, const float *b, size_t n, pb_save_dtype dt) {
    if (!a || !b) {
        if (a != b) { fprintf(stderr, "layer %d %s: present in one model only\n", layer, what); return 1; }
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        float want = io_round(a[i], dt);
        if (memcmp(&want, &b[i], 4) != 0) {
            fprintf(stderr, "layer %d %s[%zu]: want %.9g (from %.9g), got %.9g\n", layer, what, i, (double)want,
                    (double)a[i], (double)b[i]);
            return 1;
        }
    }
    return 0;
}

/* Counts differences between a and b (b loaded from a saved in dt). */
static inline int io_same_model(const pb_model *a, const pb_model *b, pb_save_dtype dt) {
    const pb_config *x = &a->cfg, *y = &b->cfg;
    int bad = 0;
#define SAME(f) do { if (x->f != y->f) { fprintf(stderr, "cfg." #f " differs\n"); bad++; } } while (0)
    SAME(dim); SAME(n_layers); SAME(vocab_size); SAME(max_seq_len); SAME(norm_eps); SAME(rope_theta);
    SAME(rope_scaling.type); SAME(rope_scaling.factor); SAME(rope_scaling.low_freq_factor);
    SAME(rope_scaling.high_freq_factor); SAME(rope_scaling.original_max_position); SAME(tied_embeddings);
    SAME(bos_id); SAME(eos_id);
#undef SAME
    if (bad) return bad;
    size_t d = (size_t)x->dim, V = (size_t)x->vocab_size;
    bad += io_same_tensor("tok_emb", -1, a->tok_emb, b->tok_emb, V * d, dt);
    bad += io_same_tensor("final_norm", -1, a->final_norm, b->final_norm, d, dt);
    bad += io_same_tensor("lm_head", -1, a->lm_head, b->lm_head, V * d, dt);
    if ((a->lm_head == a->tok_emb) != (b->lm_head == b->tok_emb)) { fprintf(stderr, "tying differs\n"); bad++; }
    for (int l = 0; l < x->n_layers; l++) {
        const pb_layer *P = &a->layers[l], *Q = &b->layers[l];
        if (P->has_attn != Q->has_attn || P->has_mlp != Q->has_mlp || (P->has_attn && (P->n_heads != Q->n_heads ||
            P->n_kv_heads != Q->n_kv_heads || P->head_dim != Q->head_dim)) || (P->has_mlp && P->ffn_dim != Q->ffn_dim)) {
            fprintf(stderr, "layer %d: shape differs\n", l);
            bad++;
            continue;
        }
        size_t q = (size_t)P->n_heads * P->head_dim, kv = (size_t)P->n_kv_heads * P->head_dim, f = (size_t)P->ffn_dim;
        if (P->has_attn) {
            bad += io_same_tensor("attn_norm", l, P->attn_norm, Q->attn_norm, d, dt);
            bad += io_same_tensor("wq", l, P->wq, Q->wq, q * d, dt);
            bad += io_same_tensor("wk", l, P->wk, Q->wk, kv * d, dt);
            bad += io_same_tensor("wv", l, P->wv, Q->wv, kv * d, dt);
            bad += io_same_tensor("wo", l, P->wo, Q->wo, d * q, dt);
            bad += io_same_tensor("bq", l, P->bq, Q->bq, q, dt);
            bad += io_same_tensor("bk", l, P->bk, Q->bk, kv, dt);
            bad += io_same_tensor("bv", l, P->bv, Q->bv, kv, dt);
            bad += io_same_tensor("bo", l, P->bo, Q->bo, d, dt);
        }
        if (P->has_mlp) {
            bad += io_same_tensor("mlp_norm", l, P->mlp_norm, Q->mlp_norm, d, dt);
            bad += io_same_tensor("w_gate", l, P->w_gate, Q->w_gate, f * d, dt);
            bad += io_same_tensor("w_up", l, P->w_up, Q->w_up, f * d, dt);
            bad += io_same_tensor("w_down", l, P->w_down, Q->w_down, d * f, dt);
            bad += io_same_tensor("b_gate", l, P->b_gate, Q->b_gate, f, dt);
            bad += io_same_tensor("b_up", l, P->b_up, Q->b_up, f, dt);
            bad += io_same_tensor("b_down", l, P->b_down, Q->b_down, d, dt);
        }
    }
    return bad;
}

#endif
