/* fwd_internal.h — the forward driver's per-layer steps, shared with the backward driver
 * (private to core/model).
 *
 * One implementation of a layer's forward serves inference (activations left in scratch,
 * overwritten by the next layer) and training (activations written where the backward
 * pass will read them); the caller chooses through pb_layer_acts. */
#ifndef PB_FWD_INTERNAL_H
#define PB_FWD_INTERNAL_H

#include "lora.h"
#include "model.h"
#include "ops.h"

enum { BUF_X, BUF_XN, BUF_Q, BUF_K, BUF_V, BUF_ATT, BUF_KT, BUF_VT, BUF_G, BUF_U, BUF_INV, BUF_POS, BUF_LX, BUF_LT,
       BUF_TOK, BUF_LOGITS, BUF_TGT, BUF_NLL, BUF_GREEDY, N_BUF };

struct pb_fwd_state {
    const pb_ops *ops;    /* whose memory buf[] is (NULL until the first pass) */
    void *buf[N_BUF];
    size_t cap[N_BUF];    /* bytes */
    void *host;           /* host staging for positions and inverse frequencies */
    size_t host_cap;
    /* inv_freq in buf[BUF_INV] is valid for these RoPE settings (inv_hd == 0: none yet) */
    int inv_hd;
    float inv_theta;
    pb_rope_scaling inv_rs;
};

/* Where one layer's forward leaves its intermediates, rows N = B*T. */
typedef struct {
    float *xn_a;          /* (N, d) attention RMSNorm output */
    float *q, *k, *v;     /* (N, qd), (N, kd), (N, kd); q and k after RoPE */
    float *att;           /* (N, qd) attention output, o_proj's input */
    float *xn_m;          /* (N, d) MLP RMSNorm output (may alias xn_a) */
    float *g, *u;         /* (N, f) gate and up projections, before SwiGLU */
    float *h;             /* (N, f) silu(g) * u, down_proj's input (may alias g) */
} pb_layer_acts;

/* The widest layer's q (n_heads*head_dim), k/v (n_kv_heads*head_dim) and FFN widths: what
 * every per-layer scratch buffer must hold, forward and backward alike. */
static inline void pb_fwd_max_dims(const pb_model *m, size_t *mq, size_t *mkv, size_t *mf) {
    *mq = *mkv = *mf = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        size_t q = (size_t)L->n_heads * L->head_dim, kv = (size_t)L->n_kv_heads * L->head_dim;
        if (L->has_attn && q > *mq) *mq = q;
        if (L->has_attn && kv > *mkv) *mkv = kv;
        if (L->has_mlp && (size_t)L->ffn_dim > *mf) *mf = (size_t)L->ffn_dim;
    }
}

/* Makes buf[i] hold at least a*b elements of elt bytes (contents not kept), in the memory of
 * the backend the state was last bound to (pb_fwd_scratch binds it to the model's). */
int pb_fwd_grow(pb_fwd_state *s, int i, size_t a, size_t b, size_t elt, pb_err *err);
/* Binds s to m's backend (freeing buffers of another backend), then sizes every scratch
 * buffer for B sequences of T rows, with positions p0.. in buf[BUF_POS]. */
int pb_fwd_scratch(const pb_model *m, pb_fwd_state *s, int B, int T, int p0, pb_err *err);
/* RoPE inverse frequencies for head_dim hd, in the backend's memory, cached in the state. */
const float *pb_fwd_inv_freq(pb_fwd_state *s, const pb_config *c, int hd, pb_err *err);

/* y (n, out) [+]= x W^T + b, plus scale * (dropout(x) A^T) B^T when m->lora has an adapter
 * for (l, t). drop: NULL for no dropout, else the pass's dropout key (see lora.h). */
void pb_fwd_linear(const pb_model *m, pb_fwd_state *s, int l, pb_lora_target t, float *y, const float *x,
                   const float *W, const float *b, int n, int in, int out, bool accumulate, const uint64_t *drop);

/* x (N, d) += attention(layer l) of x, for B sequences of T tokens at positions p0.. (p0 > 0
 * only with a cache, whose keys/values it extends). */
int pb_fwd_attention(const pb_model *m, pb_fwd_state *s, int l, int B, int T, int p0, pb_kvcache *cache, float *x,
                     const pb_layer_acts *a, const uint64_t *drop, pb_err *err);
/* x (N, d) += MLP(layer l) of x. */
void pb_fwd_mlp(const pb_model *m, pb_fwd_state *s, int l, int N, float *x, const pb_layer_acts *a,
                const uint64_t *drop);

#endif
