/* model.h — the LLaMA-family model as per-layer structs, and its forward driver.
 *
 * Per-layer structs (not stacked (L, ...) tensors) because width pruning gives every layer
 * its own head count, KV-head count and FFN width, and depth pruning removes layers or just
 * a layer's attention or MLP. Weights are fp32, row-major (out_features, in_features), as
 * Hugging Face stores them; q/k rows are in HF rotate-half order whatever the file format.
 *
 * A weight pointer may point into a memory-mapped file (see pb_model.maps) or into the
 * model's arena; in either case the model owns it and pb_model_free releases it. */
#ifndef PB_MODEL_H
#define PB_MODEL_H

#include "pb_base.h"

typedef enum { PB_ROPE_NONE = 0, PB_ROPE_LLAMA3 = 1, PB_ROPE_LINEAR = 2 } pb_rope_scaling_type;

typedef struct {
    pb_rope_scaling_type type;
    float factor;                     /* llama3 and linear */
    float low_freq_factor;            /* llama3 */
    float high_freq_factor;           /* llama3 */
    int original_max_position;        /* llama3: original_max_position_embeddings */
} pb_rope_scaling;

typedef struct {
    /* shape of this layer (may differ from layer to layer after pruning) */
    int n_heads;       /* query heads; 0 allowed only with has_attn == false */
    int n_kv_heads;    /* divides n_heads */
    int head_dim;
    int ffn_dim;       /* SwiGLU intermediate size; 0 allowed only with has_mlp == false */
    bool has_attn, has_mlp;

    /* attention (NULL when !has_attn) */
    float *attn_norm;  /* (dim) */
    float *wq;         /* (n_heads*head_dim, dim) */
    float *wk;         /* (n_kv_heads*head_dim, dim) */
    float *wv;         /* (n_kv_heads*head_dim, dim) */
    float *wo;         /* (dim, n_heads*head_dim) */
    float *bq, *bk, *bv; /* optional biases (attention_bias): (n_heads*head_dim), (n_kv*hd), (n_kv*hd) */
    float *bo;         /* optional (dim): attention_bias, or FLAP's bias compensation */

    /* MLP (NULL when !has_mlp) */
    float *mlp_norm;   /* (dim) */
    float *w_gate;     /* (ffn_dim, dim) */
    float *w_up;       /* (ffn_dim, dim) */
    float *w_down;     /* (dim, ffn_dim) */
    float *b_gate, *b_up; /* optional (ffn_dim) (mlp_bias) */
    float *b_down;     /* optional (dim): mlp_bias, or FLAP's bias compensation */
} pb_layer;

typedef struct {
    int dim;
    int n_layers;
    int vocab_size;
    int max_seq_len;        /* context length the model was trained for */
    float norm_eps;         /* RMSNorm epsilon */
    float rope_theta;
    pb_rope_scaling rope_scaling;
    bool tied_embeddings;   /* lm_head == tok_emb */
    int bos_id, eos_id;     /* -1 when unknown */
    /* defaults the loader uses to fill layers; per-layer values are authoritative */
    int n_heads, n_kv_heads, head_dim, ffn_dim;
    char arch[32];          /* "llama" */
} pb_config;

struct pb_ops;

typedef struct pb_model {
    pb_config cfg;
    float *tok_emb;    /* (vocab_size, dim) */
    float *final_norm; /* (dim) */
    float *lm_head;    /* (vocab_size, dim); == tok_emb when tied */
    pb_layer *layers;  /* (n_layers) */
    /* LoRA adapters every forward and backward pass applies (see lora.h); freed with the
     * model only when owns_lora */
    struct pb_lora *lora;
    bool owns_lora;

    /* The backend holding the tensors: NULL for host fp32 (the CPU backend). A model made
     * by pb_model_to_backend has its weight matrices and embedding table in backend->wtype
     * and its norms and biases in fp32, all in one backend allocation (dev_block); only the
     * forward pass (pb_model_forward, KV caches, pb_model_params) works on it. */
    const struct pb_ops *backend;
    void *dev_block;

    char format[16];   /* "hf", "gguf", "llama2c", "memory", "device" */
    char *path;        /* what it was loaded from (owned) */
    pb_arena arena;    /* every tensor not in a map, and the layers array */
    pb_mmap *maps;     /* files the weights point into */
    int n_maps;
} pb_model;

/* An empty model with cfg copied and every layer sized from cfg (allocates zeroed weights
 * when alloc_weights; otherwise leaves pointers NULL for a loader to fill). */
int  pb_model_create(pb_model **out, const pb_config *cfg, bool alloc_weights, pb_err *err);
/* Allocates the weights of one layer at its current shape (used by create and by slicing). */
int  pb_model_alloc_layer(pb_model *m, int layer, pb_err *err);
void pb_model_free(pb_model *m);
/* A deep copy with every tensor in the copy's own arena (no maps, no adapters): pruning,
 * which works in place, can start again from one loaded model. */
int  pb_model_clone(const pb_model *m, pb_model **out, pb_err *err);
/* A copy of host model m on backend ops (pb_ops_get): weight matrices and the embedding table
 * converted to ops->wtype, norms and biases fp32, LoRA adapters merged in (the copy computes
 * what m with its adapters computes), every tensor in one backend allocation. Errors: m is
 * itself on a backend, or the backend's memory is short (the message gives the bytes). */
int  pb_model_to_backend(const pb_model *m, const struct pb_ops *ops, pb_model **out, pb_err *err);
/* m's backend (the CPU's when m->backend is NULL). */
const struct pb_ops *pb_model_ops(const pb_model *m);
/* Whether m's tensors are host memory the caller may read (false on a device backend:
 * pruning, training and statistics need a host model). */
bool pb_model_on_host(const pb_model *m);

/* Checks shapes and invariants (n_heads % n_kv_heads, non-NULL tensors, ...). */
int  pb_model_validate(const pb_model *m, pb_err *err);

/* Parameter counts: all tensors including biases and norms; no_embed excludes tok_emb and
 * (untied) lm_head, as the papers' "#Params w/o embedding" columns do. A tied head counts once. */
int64_t pb_model_params(const pb_model *m);
int64_t pb_model_params_no_embed(const pb_model *m);
int64_t pb_layer_params(const pb_model *m, int layer);

/* Reorders the rows of a q or k projection (n_heads*head_dim, cols) in place from the
 * interleaved RoPE order of Meta/GGUF/llama2.c files (pairs (2j, 2j+1)) to the HF
 * rotate-half order (pairs (j, j + head_dim/2)). */
int pb_rope_unpermute_rows(float *w, int n_heads, int head_dim, int cols, pb_err *err);

/* ---- forward ------------------------------------------------------------------------- */

/* Per-layer key/value cache for incremental decoding. Sized per layer, since KV-head counts
 * differ after pruning. Layout per layer: (batch, n_kv_heads, max_len, head_dim), in the
 * model's backend memory (ops). */
typedef struct {
    int batch, max_len;
    int n_layers;
    int *len;          /* (batch) positions already cached for each sequence */
    int *kv_heads, *head_dim; /* (n_layers) shape each layer's buffers were made for (0: none) */
    float **k, **v;    /* (n_layers) -> (batch, n_kv_heads, max_len, head_dim), NULL for attn-less layers */
    const struct pb_ops *ops; /* where k and v live */
    void *block;       /* the one backend allocation holding every layer's k and v */
    pb_arena arena;
} pb_kvcache;

int  pb_kvcache_create(pb_kvcache **out, const pb_model *m, int batch, int max_len, pb_err *err);
void pb_kvcache_reset(pb_kvcache *c);
/* Makes sequence dst a copy of sequence src (its cached positions and length), so that a
 * shared prefix (a zero-shot question's context) is computed once and continued several
 * ways (its choices) in one batch. */
int  pb_kvcache_copy(pb_kvcache *c, int src, int dst, pb_err *err);
/* Forgets the positions of sequence seq from len on (keeps the first len), so that a
 * shared prefix can be continued again another way. len may not exceed what is cached. */
int  pb_kvcache_truncate(pb_kvcache *c, int seq, int len, pb_err *err);
void pb_kvcache_free(pb_kvcache *c);

/* Scratch buffers for a forward pass, grown on demand, in the memory of the backend of the
 * model it last ran (a state moves with the model it is used for); one per thread of control. */
typedef struct pb_fwd_state pb_fwd_state;
pb_fwd_state *pb_fwd_state_new(void);
void pb_fwd_state_free(pb_fwd_state *s);

/* Forward over tokens (B, T) (row-major, B sequences of T tokens).
 * Without a cache: positions 0..T-1, causal attention within each sequence.
 * With a cache: positions start at cache->len[b] (all equal), keys/values are appended and
 * attention covers the cached prefix too; T may be 1 (decode) or more (chunked prefill).
 * logits: (B, T, vocab_size) fp32, or NULL to skip the LM head; when last_only, only the
 * last position of each sequence is projected and logits is (B, vocab_size). tokens and
 * logits are host memory whatever the backend (the driver moves them).
 * Returns -1 (with err) on invalid tokens or a cache overflow. */
int pb_model_forward(const pb_model *m, pb_fwd_state *s, const int32_t *tokens, int B, int T,
                     pb_kvcache *cache, float *logits, bool last_only, pb_err *err);

/* Next-token scoring that moves no logits: the forward pass of pb_model_forward (with or
 * without a cache), then for every row i = b*T + t with targets[i] >= 0 (-1: not scored)
 * nll[i] = -log softmax(logits[i])[targets[i]] (double, pb_logits_nll's formula) and, when
 * greedy is not NULL, greedy[i] = whether targets[i] is the row's first argmax; unscored
 * rows get 0. The log-softmax runs where the logits are (on a device only nll and greedy
 * come back). Fails on a target outside [-1, vocab) or, naming the row, on a non-finite
 * log-likelihood. */
int pb_model_score(const pb_model *m, pb_fwd_state *s, const int32_t *tokens, int B, int T, pb_kvcache *cache,
                   const int32_t *targets, double *nll, uint8_t *greedy, pb_err *err);

/* One layer at a time, for methods that collect statistics layer by layer (Wanda-sp,
 * FLAP): x (B*T, dim) holds the residual stream of B sequences of T tokens at positions
 * 0..T-1 and is updated in place by layer l (x += attn(x), then x += mlp(x)). When not NULL,
 * *att gets the o_proj input (B*T, n_heads*head_dim) and *h the down_proj input
 * (B*T, ffn_dim) of this call (scratch of s, valid until its next use; NULL for a missing
 * sublayer). pb_model_embed fills x with the token embeddings. Host models only. */
int pb_model_embed(const pb_model *m, const int32_t *tokens, int n, float *x, pb_err *err);
int pb_model_layer_forward(const pb_model *m, pb_fwd_state *s, int l, int B, int T, float *x, const float **att,
                           const float **h, pb_err *err);

/* nll[i] = -log softmax(logits[i])[targets[i]] for n rows of vocab logits (targets must be
 * in range); *sum (optional) is their sum in row order. Fails, naming the first row, when a
 * value is not finite. */
int pb_logits_nll(const float *logits, const int32_t *targets, int64_t n, int vocab, double *nll, double *sum,
                  pb_err *err);

/* Threads used by the CPU backend (OpenMP and OpenBLAS); <= 0 keeps the default. */
void pb_set_threads(int n);

#endif
