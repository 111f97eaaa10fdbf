/* device.c — a host model's copy on a backend (pb_model_to_backend): what `--device cuda`
 * evaluates.
 *
 * The copy shares the host model's shapes; its tensors live in one backend allocation
 * (dev_block), each aligned to 256 bytes, weight matrices and the embedding table in the
 * backend's wtype, norms and biases in fp32. LoRA adapters attached to the host model are
 * merged on the way (W + scale * B A, computed in fp32 on the host before rounding), so
 * the copy computes what the host model with its adapters computes. Pruning, training and
 * statistics keep working on the host model; only the forward pass runs on the copy. */
#include "lora.h"
#include "model.h"
#include "ops.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN 256

typedef struct {
    const float *src;     /* host fp32 */
    float **dst;          /* where the copy's pointer goes */
    size_t n;             /* elements */
    bool weight;          /* stored in wtype (else fp32) */
    int layer;            /* for LoRA: the layer and target, or -1 */
    pb_lora_target target;
    size_t off;           /* byte offset in the block */
} tensor_job;

/* Every tensor of m with its destination in c (same order for sizing and copying). */
static int list_tensors(const pb_model *m, pb_model *c, tensor_job **out, int *n_out, pb_err *err) {
    int L = m->cfg.n_layers, n = 0;
    tensor_job *t = calloc((size_t)L * 16 + 3, sizeof *t);
    PB_CHECK_ALLOC(t, err);
    size_t d = (size_t)m->cfg.dim, ve = (size_t)m->cfg.vocab_size * d;
    t[n++] = (tensor_job){m->tok_emb, &c->tok_emb, ve, true, -1, 0, 0};
    t[n++] = (tensor_job){m->final_norm, &c->final_norm, d, false, -1, 0, 0};
    if (m->lm_head != m->tok_emb) t[n++] = (tensor_job){m->lm_head, &c->lm_head, ve, true, -1, 0, 0};
    for (int l = 0; l < L; l++) {
        const pb_layer *S = &m->layers[l];
        pb_layer *D = &c->layers[l];
        size_t q = (size_t)S->n_heads * S->head_dim, kv = (size_t)S->n_kv_heads * S->head_dim, f = (size_t)S->ffn_dim;
        tensor_job lt[] = {
            {S->attn_norm, &D->attn_norm, d, false, -1, 0, 0},  {S->wq, &D->wq, q * d, true, l, PB_LORA_Q, 0},
            {S->wk, &D->wk, kv * d, true, l, PB_LORA_K, 0},      {S->wv, &D->wv, kv * d, true, l, PB_LORA_V, 0},
            {S->wo, &D->wo, d * q, true, l, PB_LORA_O, 0},       {S->bq, &D->bq, q, false, -1, 0, 0},
            {S->bk, &D->bk, kv, false, -1, 0, 0},                {S->bv, &D->bv, kv, false, -1, 0, 0},
            {S->bo, &D->bo, d, false, -1, 0, 0},                 {S->mlp_norm, &D->mlp_norm, d, false, -1, 0, 0},
            {S->w_gate, &D->w_gate, f * d, true, l, PB_LORA_GATE, 0}, {S->w_up, &D->w_up, f * d, true, l, PB_LORA_UP, 0},
            {S->w_down, &D->w_down, d * f, true, l, PB_LORA_DOWN, 0}, {S->b_gate, &D->b_gate, f, false, -1, 0, 0},
            {S->b_up, &D->b_up, f, false, -1, 0, 0},             {S->b_down, &D->b_down, d, false, -1, 0, 0}};
        for (size_t i = 0; i < sizeof lt / sizeof lt[0]; i++)
            if (lt[i].src) t[n++] = lt[i];
    }
    *out = t;
    *n_out = n;
    return 0;
}

/* The host values of job j: the tensor itself, or (with an adapter) a merged copy in *tmp. */
static const float *host_values(const pb_model *m, const tensor_job *j, float **tmp, pb_err *err) {
    const pb_lora_pair *p = j->layer >= 0 ? pb_lora_get(m->lora, j->layer, j->target) : NULL;
    if (!p) return j->src;
    float *w = malloc(j->n * sizeof(float));
    if (!w) return pb_err_set(err, "to device: out of memory merging a LoRA adapter"), NULL;
    memcpy(w, j->src, j->n * sizeof(float));
    pb_lora_pair_merge(m->lora, p, w);
    *tmp = w;
    return w;
}

int pb_model_to_backend(const pb_model *m, const pb_ops *ops, pb_model **out, pb_err *err) {
    *out = NULL;
    if (m->backend) return pb_err_set(err, "to device: the model is already on %s", m->backend->name);
    PB_TRY(pb_model_validate(m, err));
    if (m->lora) PB_TRY(pb_lora_check(m->lora, m, err));
    pb_model *c;
    PB_TRY(pb_model_create(&c, &m->cfg, false, err));
    for (int l = 0; l < m->cfg.n_layers; l++) c->layers[l] = m->layers[l]; /* shapes; pointers replaced below */
    tensor_job *t;
    int n;
    if (list_tensors(m, c, &t, &n, err) != 0) {
        pb_model_free(c);
        return -1;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        t[i].off = total;
        size_t bytes = t[i].n * (t[i].weight ? pb_dtype_size(ops->wtype) : sizeof(float));
        total += (bytes + ALIGN - 1) / ALIGN * ALIGN;
    }
    int rc = 0;
    c->dev_block = ops->alloc(total, err);
    if (!c->dev_block) rc = pb_err_prefix(err, "to device: %s: %.2f GiB of weights: ", ops->name, total / 1073741824.0);
    c->backend = ops;   /* from here pb_model_free releases the block */
    for (int i = 0; rc == 0 && i < n; i++) {
        float *tmp = NULL;
        const float *v = host_values(m, &t[i], &tmp, err);
        void *dst = (char *)c->dev_block + t[i].off;
        if (!v) rc = -1;
        else if (t[i].weight) rc = ops->upload_weights(dst, v, t[i].n, err);
        else rc = ops->upload(dst, v, t[i].n * sizeof(float), err);
        *t[i].dst = dst;
        free(tmp);
    }
    if (rc == 0 && m->lm_head == m->tok_emb) c->lm_head = c->tok_emb;
    if (rc == 0) rc = ops->sync(err);
    free(t);
    if (rc != 0) {
        pb_model_free(c);
        return -1;
    }
    strcpy(c->format, "device");
    if (m->path && !(c->path = strdup(m->path))) {
        pb_model_free(c);
        return pb_err_set(err, "to device: out of memory");
    }
    *out = c;
    return 0;
}
