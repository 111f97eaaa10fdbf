/* kvcache.c — per-layer key/value cache for incremental decoding.
 *
 * Each layer gets its own (batch, n_kv_heads, max_len, head_dim) buffer because pruning
 * leaves layers with different KV-head counts (and attention-less layers need none). The
 * buffers are one allocation in the model's backend memory; lengths stay on the host. */
#include "model.h"
#include "ops.h"

#include <string.h>

int pb_kvcache_create(pb_kvcache **out, const pb_model *m, int batch, int max_len, pb_err *err) {
    *out = NULL;
    if (batch <= 0 || max_len <= 0)
        return pb_err_set(err, "KV cache: invalid size batch=%d max_len=%d", batch, max_len);
    pb_arena a;
    pb_arena_init(&a, (size_t)1 << 16);
    pb_kvcache *c = pb_arena_alloc(&a, sizeof *c);
    if (!c) { pb_arena_free(&a); return pb_err_set(err, "KV cache: out of memory"); }
    c->batch = batch;
    c->max_len = max_len;
    c->n_layers = m->cfg.n_layers;
    int nl = c->n_layers > 0 ? c->n_layers : 1;
    c->len = pb_arena_alloc_n(&a, (size_t)batch, sizeof(int));
    c->k = pb_arena_alloc_n(&a, (size_t)nl, sizeof(float *));
    c->v = pb_arena_alloc_n(&a, (size_t)nl, sizeof(float *));
    c->kv_heads = pb_arena_alloc_n(&a, (size_t)nl, sizeof(int));
    c->head_dim = pb_arena_alloc_n(&a, (size_t)nl, sizeof(int));
    bool ok = c->len && c->k && c->v && c->kv_heads && c->head_dim;
    size_t total = 0; /* floats of every layer's k (and as many of v) */
    for (int l = 0; ok && l < c->n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        if (!L->has_attn) continue;
        size_t n;
        if (L->n_kv_heads <= 0 || L->head_dim <= 0 || !pb_mul_ok((size_t)batch, (size_t)L->n_kv_heads, &n) ||
            !pb_mul_ok(n, (size_t)max_len, &n) || !pb_mul_ok(n, (size_t)L->head_dim, &n) || n > SIZE_MAX / 16 - total) {
            pb_arena_free(&a);
            return pb_err_set(err, "KV cache: layer %d: invalid or too large shape (batch %d, kv_heads %d, "
                              "max_len %d, head_dim %d)", l, batch, L->n_kv_heads, max_len, L->head_dim);
        }
        c->kv_heads[l] = L->n_kv_heads;
        c->head_dim[l] = L->head_dim;
        total += n;
    }
    if (!ok) {
        pb_arena_free(&a);
        return pb_err_set(err, "KV cache: out of memory (batch %d, max_len %d)", batch, max_len);
    }
    c->ops = pb_model_ops(m);
    pb_err aerr = {0};
    c->block = total ? c->ops->alloc(2 * total * sizeof(float), &aerr) : NULL;
    if (total && !c->block) {
        pb_arena_free(&a);
        return pb_err_set(err, "KV cache: %s: %zu bytes for batch %d x %d positions: %s", c->ops->name,
                          2 * total * sizeof(float), batch, max_len, aerr.msg);
    }
    float *p = c->block;
    for (int l = 0; l < c->n_layers; l++) {
        if (!c->kv_heads[l]) continue;
        size_t n = (size_t)batch * c->kv_heads[l] * (size_t)max_len * c->head_dim[l];
        c->k[l] = p;
        c->v[l] = p + n;
        p += 2 * n;
    }
    /* The arena that holds the struct is the struct's own member: copy its bookkeeping in. */
    c->arena = a;
    *out = c;
    return 0;
}

void pb_kvcache_reset(pb_kvcache *c) {
    if (c) memset(c->len, 0, (size_t)c->batch * sizeof(int));
}

int pb_kvcache_copy(pb_kvcache *c, int src, int dst, pb_err *err) {
    if (src < 0 || dst < 0 || src >= c->batch || dst >= c->batch)
        return pb_err_set(err, "KV cache: copy from sequence %d to %d outside batch %d", src, dst, c->batch);
    if (src == dst) return 0;
    size_t n = (size_t)c->len[src];
    for (int l = 0; l < c->n_layers; l++) {
        if (!c->k[l]) continue;
        /* the first n positions of every KV head: kv_heads rows of n * hd floats, one
         * max_len * hd apart */
        size_t hd = (size_t)c->head_dim[l], seq = (size_t)c->kv_heads[l] * c->max_len * hd;
        size_t pitch = (size_t)c->max_len * hd * sizeof(float), width = n * hd * sizeof(float);
        if (!n) continue;
        c->ops->copy2d(c->k[l] + dst * seq, pitch, c->k[l] + src * seq, pitch, width, (size_t)c->kv_heads[l]);
        c->ops->copy2d(c->v[l] + dst * seq, pitch, c->v[l] + src * seq, pitch, width, (size_t)c->kv_heads[l]);
    }
    c->len[dst] = c->len[src];
    return 0;
}

int pb_kvcache_truncate(pb_kvcache *c, int seq, int len, pb_err *err) {
    if (seq < 0 || seq >= c->batch) return pb_err_set(err, "KV cache: sequence %d outside batch %d", seq, c->batch);
    if (len < 0 || len > c->len[seq])
        return pb_err_set(err, "KV cache: cannot truncate sequence %d of %d positions to %d", seq, c->len[seq], len);
    c->len[seq] = len;
    return 0;
}

void pb_kvcache_free(pb_kvcache *c) {
    if (!c) return;
    if (c->ops) c->ops->free(c->block);
    pb_arena a = c->arena; /* c itself lives in the arena */
    pb_arena_free(&a);
}
