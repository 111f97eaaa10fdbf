/* hf_internal.h — private to core/io: the HF config.json model, shared by reader and writer.
 *
 * A parsed config is the global pb_config plus one shape per layer, because pruned models
 * record per-layer shapes under "prunebench_layers" (see notes: the convention is shared by
 * hf_config.c, which reads it, and hf_write.c, which writes it). */
#ifndef PB_HF_INTERNAL_H
#define PB_HF_INTERNAL_H

#include "model.h"

/* Which linear layers carry a bias, as a bit set; order matches pb_hf_bias_names. */
enum {
    PB_HF_BIAS_Q = 1 << 0, PB_HF_BIAS_K = 1 << 1, PB_HF_BIAS_V = 1 << 2, PB_HF_BIAS_O = 1 << 3,
    PB_HF_BIAS_GATE = 1 << 4, PB_HF_BIAS_UP = 1 << 5, PB_HF_BIAS_DOWN = 1 << 6,
};
#define PB_HF_N_BIAS 7
#define PB_HF_BIAS_ATTN (PB_HF_BIAS_Q | PB_HF_BIAS_K | PB_HF_BIAS_V | PB_HF_BIAS_O)
#define PB_HF_BIAS_MLP (PB_HF_BIAS_GATE | PB_HF_BIAS_UP | PB_HF_BIAS_DOWN)
extern const char *const pb_hf_bias_names[PB_HF_N_BIAS]; /* "q", "k", "v", "o", "gate", "up", "down" */

typedef struct {
    int n_heads, n_kv_heads, head_dim, ffn_dim;
    bool attn, mlp;
    unsigned bias;   /* PB_HF_BIAS_* */
} pb_hf_layer_shape;

typedef struct {
    pb_config cfg;
    pb_hf_layer_shape *layers; /* (cfg.n_layers), malloc'd */
} pb_hf_config;

/* Parses config.json text; path is used in messages ("DIR/config.json: key ..."). */
int pb_hf_config_parse(const char *path, const char *text, size_t len, pb_hf_config *out, pb_err *err);
void pb_hf_config_free(pb_hf_config *c);

/* The bias set of a model layer (from its non-NULL bias pointers). */
unsigned pb_hf_layer_bias(const pb_layer *L);

#endif
