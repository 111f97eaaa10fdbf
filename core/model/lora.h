/* lora.h — low-rank adapters (LoRA) on the projections of a model.
 *
 * For a target projection y = x W^T + b with W (out, in), the adapter adds
 *     y += scale * (dropout(x) A^T) B^T,   A (rank, in), B (out, rank), scale = alpha / rank,
 * as PEFT's LoRA Linear does (dropout on the adapter's input only, in training only). A
 * starts as PEFT's kaiming_uniform(a = sqrt(5)), i.e. uniform(-1/sqrt(in), 1/sqrt(in)), and
 * B as zeros, so a fresh adapter leaves the model unchanged.
 *
 * Adapters are attached to a model by pointing pb_model.lora at them; every forward pass
 * (pb_model_forward, so ppl, zeroshot and generation too) and the backward driver then
 * apply them. Dropout masks come from a counter-based hash of (key, layer, target,
 * element), so the backward pass and a resumed run regenerate exactly the same masks
 * without storing them. */
#ifndef PB_LORA_H
#define PB_LORA_H

#include "pb_base.h"

struct pb_model;

typedef enum { PB_LORA_Q, PB_LORA_K, PB_LORA_V, PB_LORA_O, PB_LORA_GATE, PB_LORA_UP, PB_LORA_DOWN,
               PB_LORA_N } pb_lora_target;

extern const char *const pb_lora_target_names[PB_LORA_N];   /* "q", "k", ..., "down" */

typedef struct {
    int in, out;          /* the projection's shape; 0 when this adapter is absent */
    float *A;             /* (rank, in) */
    float *B;             /* (out, rank) */
    float *dA, *dB;       /* gradients, same shapes (NULL unless made with grads); accumulate */
} pb_lora_pair;

typedef struct pb_lora {
    int rank;
    float alpha, dropout; /* dropout probability in [0, 1) */
    float scale;          /* alpha / rank */
    unsigned targets;     /* bitmask of (1u << pb_lora_target) */
    int n_layers;
    pb_lora_pair (*ad)[PB_LORA_N]; /* (n_layers); absent where the layer lacks the sublayer */
    /* dropout is applied only while training is set; the masks depend on dropout_key */
    bool training;
    uint64_t dropout_key;
    pb_arena arena;
} pb_lora;

/* "q,k,v,o,gate,up,down" (any subset, comma-separated; "all" for every one) -> bitmask.
 * Unknown names are errors listing the valid ones. */
int pb_lora_parse_targets(const char *s, unsigned *mask, pb_err *err);

/* Adapters for every layer of m that has the targeted projections (the shapes are taken
 * from m, so pruned non-uniform models work). seed initialises A. with_grads allocates
 * dA, dB (zeroed). Errors: rank < 1, dropout outside [0, 1), no target, no targeted
 * projection in the model. */
int  pb_lora_create(pb_lora **out, const struct pb_model *m, int rank, float alpha, float dropout, unsigned targets,
                    uint64_t seed, bool with_grads, pb_err *err);
void pb_lora_free(pb_lora *l);
void pb_lora_zero_grad(pb_lora *l);
/* Trainable parameter count (sum of A and B sizes). */
int64_t pb_lora_params(const pb_lora *l);
/* Checks that l fits m (layer count and every adapter's shape). */
int pb_lora_check(const pb_lora *l, const struct pb_model *m, pb_err *err);

/* W (p's projection shape) += scale * B A for one adapter: the merge of pb_lora_merge, also
 * applied to copies (pb_model_to_backend). */
void pb_lora_pair_merge(const pb_lora *l, const pb_lora_pair *p, float *W);

/* W += scale * B A for every adapter, then detaches l from m (m->lora = NULL when it was l).
 * The model's weights must be writable (loaded models are: files are mapped copy-on-write). */
int pb_lora_merge(pb_lora *l, struct pb_model *m, pb_err *err);

/* PEFT's layout: DIR/adapter_config.json (r, lora_alpha, lora_dropout, target_modules,
 * peft_type "LORA", bias "none") and DIR/adapter_model.safetensors with tensors
 * "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight" (rank, in) and
 * "...lora_B.weight" (out, rank), fp32. Written under temporary names and renamed, so a
 * folder never holds half an adapter. Load checks every shape against m. */
int pb_lora_save(const pb_lora *l, const char *dir, pb_err *err);
int pb_lora_load(pb_lora **out, const struct pb_model *m, const char *dir, bool with_grads, pb_err *err);

/* ---- used by the forward and backward drivers ------------------------------------------ */

/* The adapter of layer `layer`, target t, or NULL when there is none. */
static inline const pb_lora_pair *pb_lora_get(const pb_lora *l, int layer, pb_lora_target t) {
    if (!l || layer < 0 || layer >= l->n_layers || !(l->targets & (1u << t))) return NULL;
    const pb_lora_pair *p = &l->ad[layer][t];
    return p->A ? p : NULL;
}

/* The dropout key (see pb_ops.dropout) of adapter (layer, t) for a pass keyed by key. */
static inline uint64_t pb_lora_dropout_key(uint64_t key, int layer, pb_lora_target t) {
    return pb_mix64(key ^ pb_mix64(((uint64_t)(uint32_t)layer << 8) | (uint64_t)t));
}

#endif
