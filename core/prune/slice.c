/* slice.c — the one slicing routine per kind of structure (and its masked twin).
 *
 * Rows of a (rows, cols) row-major matrix are contiguous, so removing rows is moving kept
 * rows down; removing columns is compacting every row to the new width, front to back,
 * which never overwrites data not yet moved. Both work inside the existing buffers (the
 * model's arena, or a copy-on-write map), so slicing a 7B model needs no second copy. */
#include "prune_internal.h"

#include <stdlib.h>
#include <string.h>

const char *const pb_struct_kind_names[5] = {"block", "attn", "mlp", "head", "channel"};

/* Keeps the row blocks of `unit` rows whose keep[] is set: (n_units * unit, cols). */
static void keep_rows(float *w, const bool *keep, int n_units, size_t unit, size_t cols) {
    if (!w) return;
    size_t dst = 0;
    for (int u = 0; u < n_units; u++) {
        if (!keep[u]) continue;
        if (dst != (size_t)u) memmove(w + dst * unit * cols, w + (size_t)u * unit * cols, unit * cols * sizeof(float));
        dst++;
    }
}

/* Keeps the column blocks of `unit` columns whose keep[] is set, in each of `rows` rows. */
static void keep_cols(float *w, const bool *keep, int n_units, size_t unit, size_t rows) {
    if (!w) return;
    size_t cols = (size_t)n_units * unit, out = 0;
    for (size_t r = 0; r < rows; r++) {
        const float *src = w + r * cols;
        for (int u = 0; u < n_units; u++)
            if (keep[u]) {
                memmove(w + out, src + (size_t)u * unit, unit * sizeof(float));
                out += unit;
            }
    }
}

static void drop_attn(pb_layer *L) {
    L->has_attn = false;
    L->n_heads = L->n_kv_heads = 0;
    L->attn_norm = L->wq = L->wk = L->wv = L->wo = L->bq = L->bk = L->bv = L->bo = NULL;
}

static void drop_mlp(pb_layer *L) {
    L->has_mlp = false;
    L->ffn_dim = 0;
    L->mlp_norm = L->w_gate = L->w_up = L->w_down = L->b_gate = L->b_up = L->b_down = NULL;
}

/* Per-layer removal requests, gathered and checked before anything changes. */
typedef struct {
    bool block, attn, mlp;
    bool *head_gone, *chan_gone;   /* (n_kv_heads), (ffn_dim); NULL when none asked */
} layer_req;

static void free_reqs(layer_req *q, int n) {
    for (int l = 0; q && l < n; l++) {
        free(q[l].head_gone);
        free(q[l].chan_gone);
    }
    free(q);
}

static int gather(const pb_model *m, const pb_struct *s, int n, layer_req **out, pb_err *err) {
    int L = m->cfg.n_layers;
    layer_req *q = calloc((size_t)(L ? L : 1), sizeof *q);
    PB_CHECK_ALLOC(q, err);
    for (int i = 0; i < n; i++) {
        const pb_struct *x = &s[i];
        if (x->layer < 0 || x->layer >= L || x->kind < PB_S_BLOCK || x->kind > PB_S_CHANNEL) {
            free_reqs(q, L);
            return pb_err_set(err, "prune: structure %d (layer %d) is outside the model's %d layers", i, x->layer, L);
        }
        const pb_layer *Ly = &m->layers[x->layer];
        layer_req *r = &q[x->layer];
        bool ok = true;
        switch (x->kind) {
        case PB_S_BLOCK: r->block = true; break;
        case PB_S_ATTN: ok = Ly->has_attn; r->attn = true; break;
        case PB_S_MLP: ok = Ly->has_mlp; r->mlp = true; break;
        case PB_S_HEAD:
            ok = Ly->has_attn && x->index >= 0 && x->index < Ly->n_kv_heads;
            if (ok && !r->head_gone && !(r->head_gone = calloc((size_t)Ly->n_kv_heads, sizeof(bool)))) goto oom;
            if (ok) r->head_gone[x->index] = true;
            break;
        case PB_S_CHANNEL:
            ok = Ly->has_mlp && x->index >= 0 && x->index < Ly->ffn_dim;
            if (ok && !r->chan_gone && !(r->chan_gone = calloc((size_t)Ly->ffn_dim, sizeof(bool)))) goto oom;
            if (ok) r->chan_gone[x->index] = true;
            break;
        }
        if (!ok) {
            free_reqs(q, L);
            return pb_err_set(err, "prune: layer %d has no %s %d (it has %d KV head units, %d channels%s%s)", x->layer,
                              pb_struct_kind_names[x->kind], x->index, Ly->has_attn ? Ly->n_kv_heads : 0,
                              Ly->has_mlp ? Ly->ffn_dim : 0, Ly->has_attn ? "" : ", no attention",
                              Ly->has_mlp ? "" : ", no MLP");
        }
    }
    *out = q;
    return 0;
oom:
    free_reqs(q, L);
    return pb_err_set(err, "prune: out of memory");
}

static int slice_heads(pb_model *m, pb_layer *L, const bool *gone) {
    int G = L->n_kv_heads, r = L->n_heads / L->n_kv_heads, hd = L->head_dim, kept = 0;
    size_t d = (size_t)m->cfg.dim;
    bool *keep = malloc((size_t)G * sizeof(bool));
    if (!keep) return -1;
    for (int g = 0; g < G; g++) kept += (keep[g] = !gone[g]);
    if (!kept) {
        free(keep);
        drop_attn(L);
        return 0;
    }
    size_t qu = (size_t)r * hd;     /* rows of q (and columns of o) per unit */
    keep_rows(L->wq, keep, G, qu, d);
    keep_rows(L->wk, keep, G, (size_t)hd, d);
    keep_rows(L->wv, keep, G, (size_t)hd, d);
    keep_rows(L->bq, keep, G, qu, 1);
    keep_rows(L->bk, keep, G, (size_t)hd, 1);
    keep_rows(L->bv, keep, G, (size_t)hd, 1);
    keep_cols(L->wo, keep, G, qu, d);
    L->n_kv_heads = kept;
    L->n_heads = kept * r;
    free(keep);
    return 0;
}

static int slice_channels(pb_model *m, pb_layer *L, const bool *gone) {
    int F = L->ffn_dim, kept = 0;
    size_t d = (size_t)m->cfg.dim;
    bool *keep = malloc((size_t)F * sizeof(bool));
    if (!keep) return -1;
    for (int c = 0; c < F; c++) kept += (keep[c] = !gone[c]);
    if (!kept) {
        free(keep);
        drop_mlp(L);
        return 0;
    }
    keep_rows(L->w_gate, keep, F, 1, d);
    keep_rows(L->w_up, keep, F, 1, d);
    keep_rows(L->b_gate, keep, F, 1, 1);
    keep_rows(L->b_up, keep, F, 1, 1);
    keep_cols(L->w_down, keep, F, 1, d);
    L->ffn_dim = kept;
    free(keep);
    return 0;
}

int pb_prune_apply(pb_model *m, const pb_struct *s, int n, pb_err *err) {
    layer_req *q;
    PB_TRY(gather(m, s, n, &q, err));
    int L = m->cfg.n_layers, kept = 0;
    for (int l = 0; l < L; l++) {
        pb_layer *Ly = &m->layers[l];
        /* out of memory for a few bools leaves this layer as it was and stops */
        if ((q[l].head_gone && Ly->has_attn && slice_heads(m, Ly, q[l].head_gone) != 0) ||
            (q[l].chan_gone && Ly->has_mlp && slice_channels(m, Ly, q[l].chan_gone) != 0)) {
            free_reqs(q, L);
            return pb_err_set(err, "prune: out of memory");
        }
        if (q[l].attn) drop_attn(Ly);
        if (q[l].mlp) drop_mlp(Ly);
    }
    for (int l = 0; l < L; l++)
        if (!q[l].block) m->layers[kept++] = m->layers[l];
    m->cfg.n_layers = kept;
    free_reqs(q, L);
    return pb_model_validate(m, err);
}

static void zero_rows(float *w, size_t row0, size_t rows, size_t cols) {
    if (w) memset(w + row0 * cols, 0, rows * cols * sizeof(float));
}

static void zero_cols(float *w, size_t col0, size_t ncols, size_t rows, size_t cols) {
    for (size_t r = 0; w && r < rows; r++) memset(w + r * cols + col0, 0, ncols * sizeof(float));
}

int pb_prune_mask(pb_model *m, const pb_struct *s, int n, pb_err *err) {
    layer_req *q;
    PB_TRY(gather(m, s, n, &q, err));
    size_t d = (size_t)m->cfg.dim;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        pb_layer *L = &m->layers[l];
        size_t qd = (size_t)L->n_heads * L->head_dim, f = (size_t)L->ffn_dim;
        /* a layer that loses every head unit (channel) loses its attention (MLP) module,
         * o_proj (down_proj) bias included: the model has no place for a module that is
         * only a bias */
        int gone_h = 0, gone_c = 0;
        for (int g = 0; L->has_attn && q[l].head_gone && g < L->n_kv_heads; g++) gone_h += q[l].head_gone[g];
        for (size_t c = 0; L->has_mlp && q[l].chan_gone && c < f; c++) gone_c += q[l].chan_gone[c];
        if (L->has_attn && gone_h == L->n_kv_heads) q[l].attn = true;
        if (L->has_mlp && gone_c == L->ffn_dim) q[l].mlp = true;
        if (L->has_attn && (q[l].block || q[l].attn)) {
            zero_rows(L->wo, 0, d, qd);
            zero_rows(L->bo, 0, d, 1);
        }
        if (L->has_mlp && (q[l].block || q[l].mlp)) {
            zero_rows(L->w_down, 0, d, f);
            zero_rows(L->b_down, 0, d, 1);
        }
        for (int g = 0; L->has_attn && q[l].head_gone && g < L->n_kv_heads; g++) {
            if (!q[l].head_gone[g]) continue;
            size_t r = (size_t)(L->n_heads / L->n_kv_heads), hd = (size_t)L->head_dim;
            zero_rows(L->wq, g * r * hd, r * hd, d);
            zero_rows(L->bq, g * r * hd, r * hd, 1);
            zero_rows(L->wk, g * hd, hd, d);
            zero_rows(L->bk, g * hd, hd, 1);
            zero_rows(L->wv, g * hd, hd, d);
            zero_rows(L->bv, g * hd, hd, 1);
            zero_cols(L->wo, g * r * hd, r * hd, d, qd);
        }
        for (size_t c = 0; L->has_mlp && q[l].chan_gone && c < f; c++) {
            if (!q[l].chan_gone[c]) continue;
            zero_rows(L->w_gate, c, 1, d);
            zero_rows(L->w_up, c, 1, d);
            zero_rows(L->b_gate, c, 1, 1);
            zero_rows(L->b_up, c, 1, 1);
            zero_cols(L->w_down, c, 1, d, f);
        }
    }
    free_reqs(q, m->cfg.n_layers);
    return 0;
}

int64_t pb_head_unit_params(const pb_model *m, int l) {
    const pb_layer *L = &m->layers[l];
    if (!L->has_attn || L->n_kv_heads <= 0) return 0;
    int64_t d = m->cfg.dim, r = L->n_heads / L->n_kv_heads, hd = L->head_dim;
    int64_t n = 2 * r * hd * d + 2 * hd * d;   /* q rows and o columns; k and v rows */
    if (L->bq) n += r * hd;
    if (L->bk) n += hd;
    if (L->bv) n += hd;
    return n;
}

int64_t pb_channel_params(const pb_model *m, int l) {
    const pb_layer *L = &m->layers[l];
    if (!L->has_mlp) return 0;
    return 3 * (int64_t)m->cfg.dim + (L->b_gate ? 1 : 0) + (L->b_up ? 1 : 0);
}

int64_t pb_struct_params(const pb_model *m, const pb_struct *s) {
    if (s->layer < 0 || s->layer >= m->cfg.n_layers) return 0;
    const pb_layer *L = &m->layers[s->layer];
    int64_t d = m->cfg.dim;
    switch (s->kind) {
    case PB_S_BLOCK: return pb_layer_params(m, s->layer);
    case PB_S_HEAD: return pb_head_unit_params(m, s->layer);
    case PB_S_CHANNEL: return pb_channel_params(m, s->layer);
    case PB_S_ATTN:
        return L->has_attn ? d + pb_head_unit_params(m, s->layer) * L->n_kv_heads + (L->bo ? d : 0) : 0;
    case PB_S_MLP:
        return L->has_mlp ? d + pb_channel_params(m, s->layer) * L->ffn_dim + (L->b_down ? d : 0) : 0;
    }
    return 0;
}
