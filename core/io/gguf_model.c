/* gguf_model.c — GGUF (llama.cpp) file -> fp32 pb_model in HF layout, plus its tokenizer.
 *
 * Only general.architecture "llama" is read. Shapes come from the llama.* metadata, which
 * may give head counts and FFN widths per layer (arrays) as pruned models need; each
 * tensor's shape and type are checked against them before it is used, and tensors the
 * model does not use are an error (as in llama.cpp). llama.cpp's converter stores the
 * q/k rows of each head in Meta's interleaved RoPE order, so they are reordered back to HF
 * rotate-half order here. F32 tensors point into the private copy-on-write map (q/k are
 * reordered in place there); other types are dequantized into the model arena. */
#include "gguf.h"
#include "load.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 65536

typedef struct {
    int n_heads, n_kv_heads, ffn_dim;
} layer_shape;

typedef struct {
    pb_gguf *g;
    pb_model *m;
    bool *used;     /* (n_tensors) consumed by the model; the rest are unexpected */
    bool map_used;  /* some weight points into the map */
    pb_err *err;
} loader;

/* ---- metadata -> pb_config ----------------------------------------------------------- */

static int need_int(const pb_gguf *g, const char *key, int64_t lo, int64_t hi, int *out, pb_err *err) {
    int64_t v;
    int rc = pb_gguf_get_int(g, key, lo, hi, &v, err);
    if (rc < 0) return -1;
    if (rc == 0) return pb_err_set(err, "%s: metadata %s is missing", g->path, key);
    *out = (int)v;
    return 0;
}

/* A per-layer value: one integer for all layers, or an array with one entry per layer. */
static int per_layer(const pb_gguf *g, const char *key, int n_layers, int hi, layer_shape *ls, size_t field,
                     bool required, pb_err *err) {
    const pb_gguf_kv *kv = pb_gguf_find(g, key);
    if (!kv) return required ? pb_err_set(err, "%s: metadata %s is missing", g->path, key) : 0;
    for (int l = 0; l < n_layers; l++) {
        int64_t v;
        if (kv->type == PB_GGUF_ARRAY) {
            if (!pb_gguf_vtype_is_int(kv->elem_type) || kv->count != (uint64_t)n_layers)
                return pb_err_set(err, "%s: metadata %s is an array of %llu %s, expected %d integers (one per layer)",
                                  g->path, key, (unsigned long long)kv->count, pb_gguf_vtype_name(kv->elem_type),
                                  n_layers);
            v = pb_gguf_arr_int(kv, (uint64_t)l);
        } else {
            if (pb_gguf_get_int(g, key, 0, hi, &v, err) < 0) return -1;
        }
        if (v < 0 || v > hi)
            return pb_err_set(err, "%s: metadata %s[%d] = %lld is out of range [0, %d]", g->path, key, l,
                              (long long)v, hi);
        *(int *)((char *)&ls[l] + field) = (int)v;
    }
    return 1;
}

/* llama.cpp writes llama3 RoPE scaling only as the per-frequency divisors of a rope_freqs
 * tensor. pb_config describes llama3 scaling by its parameters, so accept the tensor when it
 * equals what the standard parameters (Llama 3.1-3.3: low 1, high 4, original context 8192,
 * or the file's original_context_length) produce with its largest factor; otherwise refuse
 * rather than run with a different frequency table. */
static int check_llama3(loader *c, pb_config *cfg, const float *f, int half) {
    float fmax = 1;
    for (int i = 0; i < half; i++) fmax = f[i] > fmax ? f[i] : fmax;
    bool ones = true;
    for (int i = 0; i < half; i++) ones = ones && f[i] == 1;
    if (ones) return 0; /* no scaling */
    if (cfg->rope_scaling.type != PB_ROPE_NONE)
        return pb_err_set(c->err, "%s: both rope_freqs.weight and llama.rope.scaling.type are given", c->g->path);
    int64_t orig = 8192;
    if (pb_gguf_get_int(c->g, "llama.rope.scaling.original_context_length", 1, INT32_MAX, &orig, c->err) < 0)
        return -1;
    double lo_f = 1, hi_f = 4, lo_wl = (double)orig / lo_f, hi_wl = (double)orig / hi_f;
    for (int i = 0; i < half; i++) {
        /* the converter's frequencies are fp32 (torch), the rest double */
        double freq = 1.0f / powf(cfg->rope_theta, (float)(2 * i) / (float)cfg->head_dim);
        double wl = 2 * M_PI / freq, want;
        if (wl < hi_wl) want = 1;
        else if (wl > lo_wl) want = fmax;
        else {
            double s = ((double)orig / wl - lo_f) / (hi_f - lo_f);
            want = 1 / ((1 - s) / fmax + s);
        }
        /* 1e-5 relative: the stored fp32 value (2^-24 rounding) plus powf differing from
         * torch's pow by an ulp or two; other parameters move factors by far more. Written
         * as !(<=) so that a NaN factor fails too. */
        if (!(fabs(f[i] - want) <= 1e-5 * want))
            return pb_err_set(c->err, "%s: rope_freqs.weight[%d] = %g is not llama3 RoPE scaling (factor %g, "
                              "low/high frequency factors 1/4, original context %lld would give %g); custom RoPE "
                              "frequency factors are not supported", c->g->path, i, (double)f[i], (double)fmax,
                              (long long)orig, want);
    }
    cfg->rope_scaling = (pb_rope_scaling){PB_ROPE_LLAMA3, fmax, (float)lo_f, (float)hi_f, (int)orig};
    return 0;
}

static int rope_freqs(loader *c, pb_config *cfg) {
    const pb_gguf_tensor *t = pb_gguf_find_tensor(c->g, "rope_freqs.weight");
    if (!t) return 0;
    c->used[t - c->g->tensors] = true;
    int half = cfg->head_dim / 2;
    if (t->n_elems != (size_t)half || t->type != PB_GGML_F32)
        return pb_err_set(c->err, "%s: tensor rope_freqs.weight has %zu elements of type %s, expected %d F32",
                          c->g->path, t->n_elems, pb_gguf_type_name(t->type), half);
    float *f = malloc((size_t)half * sizeof *f);
    PB_CHECK_ALLOC(f, c->err);
    memcpy(f, t->data, (size_t)half * sizeof *f); /* general.alignment may leave the data unaligned */
    int rc = check_llama3(c, cfg, f, half);
    free(f);
    return rc;
}

/* dim, layer count, context, per-layer head counts and FFN widths, head_dim. Returns the
 * first layer with attention in *first (-1: none). */
static int read_shapes(const pb_gguf *g, pb_config *cfg, layer_shape **shapes, int *first, pb_err *err) {
    PB_TRY(need_int(g, "llama.embedding_length", 1, 1 << 20, &cfg->dim, err));
    PB_TRY(need_int(g, "llama.block_count", 0, MAX_LAYERS, &cfg->n_layers, err));
    PB_TRY(need_int(g, "llama.context_length", 1, INT32_MAX, &cfg->max_seq_len, err));
    int L = cfg->n_layers;
    layer_shape *ls = *shapes = calloc((size_t)(L ? L : 1), sizeof *ls);
    PB_CHECK_ALLOC(ls, err);
    if (per_layer(g, "llama.feed_forward_length", L, 1 << 24, ls, offsetof(layer_shape, ffn_dim), true, err) < 0 ||
        per_layer(g, "llama.attention.head_count", L, 1 << 16, ls, offsetof(layer_shape, n_heads), true, err) < 0)
        return -1;
    for (int l = 0; l < L; l++) ls[l].n_kv_heads = ls[l].n_heads;
    if (per_layer(g, "llama.attention.head_count_kv", L, 1 << 16, ls, offsetof(layer_shape, n_kv_heads), false,
                  err) < 0)
        return -1;
    *first = -1;
    for (int l = L - 1; l >= 0; l--) {
        if (ls[l].n_heads > 0) *first = l;
        if ((ls[l].n_heads > 0) != (ls[l].n_kv_heads > 0) || (ls[l].n_heads > 0 && ls[l].n_heads % ls[l].n_kv_heads))
            return pb_err_set(err, "%s: layer %d: %d heads and %d kv heads (heads must be a multiple of kv heads)",
                              g->path, l, ls[l].n_heads, ls[l].n_kv_heads);
    }
    /* defaults for pb_config: the first layer that has the part */
    for (int l = L - 1; l >= 0; l--) {
        if (ls[l].n_heads > 0) cfg->n_heads = ls[l].n_heads, cfg->n_kv_heads = ls[l].n_kv_heads;
        if (ls[l].ffn_dim > 0) cfg->ffn_dim = ls[l].ffn_dim;
    }
    int64_t hd = 0, v;
    int rc;
    if ((rc = pb_gguf_get_int(g, "llama.attention.key_length", 1, 1 << 16, &hd, err)) < 0) return -1;
    if (rc == 0 && *first >= 0) {
        if (cfg->dim % cfg->n_heads)
            return pb_err_set(err, "%s: embedding_length %d is not a multiple of head_count %d (and no key_length)",
                              g->path, cfg->dim, cfg->n_heads);
        hd = cfg->dim / cfg->n_heads;
    }
    cfg->head_dim = (int)hd;
    if ((rc = pb_gguf_get_int(g, "llama.attention.value_length", 0, 1 << 16, &v, err)) < 0) return -1;
    if (rc > 0 && v != hd)
        return pb_err_set(err, "%s: attention.value_length %lld differs from key_length %lld (not supported)", g->path,
                          (long long)v, (long long)hd);
    if (*first >= 0 && (hd & 1))
        return pb_err_set(err, "%s: head dimension %lld is odd (RoPE needs pairs)", g->path, (long long)hd);
    if ((rc = pb_gguf_get_int(g, "llama.rope.dimension_count", 0, 1 << 16, &v, err)) < 0) return -1;
    if (rc > 0 && *first >= 0 && v != hd)
        return pb_err_set(err, "%s: rope.dimension_count %lld differs from the head dimension %lld (partial rotary "
                          "embeddings are not supported)", g->path, (long long)v, (long long)hd);
    return 0;
}

/* RoPE base and scaling: llama.rope.scaling.type "linear" + factor (or the older
 * llama.rope.scale_linear), or llama3 through the rope_freqs tensor. */
static int read_rope(loader *c, pb_config *cfg, bool has_attn) {
    const pb_gguf *g = c->g;
    pb_err *err = c->err;
    double x;
    int rc;
    cfg->rope_theta = 10000;
    if ((rc = pb_gguf_get_float(g, "llama.rope.freq_base", &x, err)) < 0) return -1;
    if (rc > 0 && !(x > 1 && x < 1e12)) return pb_err_set(err, "%s: rope.freq_base %g is out of range", g->path, x);
    if (rc > 0) cfg->rope_theta = (float)x;
    const char *s;
    size_t n;
    if ((rc = pb_gguf_get_str(g, "llama.rope.scaling.type", &s, &n, err)) < 0) return -1;
    bool linear = rc > 0 && n == 6 && !memcmp(s, "linear", 6);
    if (rc > 0 && !linear && !(n == 4 && !memcmp(s, "none", 4)))
        return pb_err_set(err, "%s: rope scaling type '%.*s' is not supported (none, linear, or llama3 through "
                          "rope_freqs.weight)", g->path, (int)(n > 64 ? 64 : n), s);
    const char *fkey = linear ? "llama.rope.scaling.factor" : "llama.rope.scale_linear";
    if ((rc = pb_gguf_get_float(g, fkey, &x, err)) < 0) return -1;
    if (linear && rc == 0) return pb_err_set(err, "%s: metadata llama.rope.scaling.factor is missing", g->path);
    if (rc > 0 && !(x > 0 && x < 1e6)) return pb_err_set(err, "%s: %s %g is out of range", g->path, fkey, x);
    if (rc > 0 && x != 1) cfg->rope_scaling = (pb_rope_scaling){.type = PB_ROPE_LINEAR, .factor = (float)x};
    return has_attn ? rope_freqs(c, cfg) : 0;
}

static int read_config(loader *c, pb_config *cfg, layer_shape **shapes) {
    pb_gguf *g = c->g;
    pb_err *err = c->err;
    const char *s;
    size_t n;
    int rc = pb_gguf_get_str(g, "general.architecture", &s, &n, err), first = -1;
    if (rc < 0) return -1;
    if (rc == 0) return pb_err_set(err, "%s: metadata general.architecture is missing", g->path);
    if (n != 5 || memcmp(s, "llama", 5) != 0)
        return pb_err_set(err, "%s: architecture '%.*s' is not supported (only llama)", g->path,
                          (int)(n > 64 ? 64 : n), s);
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->arch, "llama");
    PB_TRY(read_shapes(g, cfg, shapes, &first, err));
    double x;
    if ((rc = pb_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &x, err)) < 0) return -1;
    if (rc == 0) return pb_err_set(err, "%s: metadata llama.attention.layer_norm_rms_epsilon is missing", g->path);
    if (!(x > 0 && x < 1)) return pb_err_set(err, "%s: layer_norm_rms_epsilon %g is out of range (0, 1)", g->path, x);
    cfg->norm_eps = (float)x;
    PB_TRY(read_rope(c, cfg, first >= 0));

    /* vocabulary size: explicit key, else the tokenizer's token count, else the embedding */
    const pb_gguf_kv *tk = pb_gguf_find(g, "tokenizer.ggml.tokens");
    const pb_gguf_tensor *emb = pb_gguf_find_tensor(g, "token_embd.weight");
    int64_t v;
    if ((rc = pb_gguf_get_int(g, "llama.vocab_size", 1, INT32_MAX, &v, err)) < 0) return -1;
    if (rc == 0 && tk && tk->type == PB_GGUF_ARRAY && tk->count > 0 && tk->count <= INT32_MAX) v = (int64_t)tk->count;
    else if (rc == 0 && emb && emb->ne[1] > 0 && emb->ne[1] <= INT32_MAX) v = (int64_t)emb->ne[1];
    else if (rc == 0)
        return pb_err_set(err, "%s: cannot tell the vocabulary size (no llama.vocab_size, tokens or "
                          "token_embd.weight)", g->path);
    cfg->vocab_size = (int)v;
    PB_TRY(pb_gguf_special_id(g, "bos", cfg->vocab_size, err, &cfg->bos_id));
    PB_TRY(pb_gguf_special_id(g, "eos", cfg->vocab_size, err, &cfg->eos_id));
    return 0;
}

/* ---- tensors --------------------------------------------------------------------------- */

/* Tensor `name` as fp32 (rows, cols) with ne = [cols, rows]; rope_heads > 0 reorders its
 * rows from interleaved to rotate-half order in groups of rope_heads heads. */
static int tensor(loader *c, const char *name, int64_t rows, int64_t cols, bool required, int rope_heads,
                  float **out) {
    pb_gguf *g = c->g;
    *out = NULL;
    const pb_gguf_tensor *t = pb_gguf_find_tensor(g, name);
    if (!t) return required ? pb_err_set(c->err, "%s: tensor %s is missing", g->path, name) : 0;
    c->used[t - g->tensors] = true;
    uint64_t want[4] = {(uint64_t)cols, (uint64_t)rows, 1, 1};
    if (memcmp(want, t->ne, sizeof want) != 0)
        return pb_err_set(c->err, "%s: tensor %s has shape [%llu, %llu, %llu, %llu] (ne[0] first), expected "
                          "[%lld, %lld] from the metadata", g->path, name, (unsigned long long)t->ne[0],
                          (unsigned long long)t->ne[1], (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                          (long long)cols, (long long)rows);
    if (!pb_gguf_type_supported(t->type))
        return pb_err_set(c->err, "%s: tensor %s has type %s (%u), which is not supported (F32, F16, BF16, Q8_0, "
                          "Q4_0, Q4_1)", g->path, name, pb_gguf_type_name(t->type), t->type);
    float *w;
    if (t->type == PB_GGML_F32 && ((uintptr_t)t->data & 3) == 0) {
        w = (float *)(void *)t->data;
        c->map_used = true;
    } else {
        w = pb_arena_alloc_n(&c->m->arena, t->n_elems, sizeof(float));
        if (!w) return pb_err_set(c->err, "%s: out of memory for tensor %s (%zu values)", g->path, name, t->n_elems);
        if (pb_gguf_dequantize(t->type, t->data, t->n_elems, w) != 0)
            return pb_err_set(c->err, "%s: cannot dequantize tensor %s", g->path, name);
    }
    if (rope_heads > 0 && pb_rope_unpermute_rows(w, rope_heads, (int)(rows / rope_heads), (int)cols, c->err) != 0)
        return pb_err_prefix(c->err, "%s: tensor %s: ", g->path, name);
    *out = w;
    return 0;
}

static int layer_tensors(loader *c, int l) {
    pb_layer *L = &c->m->layers[l];
    int64_t d = c->m->cfg.dim, q = (int64_t)L->n_heads * L->head_dim, kv = (int64_t)L->n_kv_heads * L->head_dim;
    int64_t f = L->ffn_dim;
    char nm[96];
#define T(suffix, rows, cols, req, heads, dst) \
    (snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix), tensor(c, nm, rows, cols, req, heads, dst))
    if (L->has_attn) {
        PB_TRY(T("attn_norm.weight", 1, d, true, 0, &L->attn_norm));
        PB_TRY(T("attn_q.weight", q, d, true, L->n_heads, &L->wq));
        PB_TRY(T("attn_k.weight", kv, d, true, L->n_kv_heads, &L->wk));
        PB_TRY(T("attn_v.weight", kv, d, true, 0, &L->wv));
        PB_TRY(T("attn_output.weight", d, q, true, 0, &L->wo));
        PB_TRY(T("attn_q.bias", 1, q, false, 0, &L->bq));
        PB_TRY(T("attn_k.bias", 1, kv, false, 0, &L->bk));
        PB_TRY(T("attn_v.bias", 1, kv, false, 0, &L->bv));
        PB_TRY(T("attn_output.bias", 1, d, false, 0, &L->bo));
        /* a bias is a (rows, 1) column for the reordering */
        if (L->bq) PB_TRY(pb_rope_unpermute_rows(L->bq, L->n_heads, L->head_dim, 1, c->err));
        if (L->bk) PB_TRY(pb_rope_unpermute_rows(L->bk, L->n_kv_heads, L->head_dim, 1, c->err));
    }
    if (L->has_mlp) {
        PB_TRY(T("ffn_norm.weight", 1, d, true, 0, &L->mlp_norm));
        PB_TRY(T("ffn_gate.weight", f, d, true, 0, &L->w_gate));
        PB_TRY(T("ffn_up.weight", f, d, true, 0, &L->w_up));
        PB_TRY(T("ffn_down.weight", d, f, true, 0, &L->w_down));
        PB_TRY(T("ffn_gate.bias", 1, f, false, 0, &L->b_gate));
        PB_TRY(T("ffn_up.bias", 1, f, false, 0, &L->b_up));
        PB_TRY(T("ffn_down.bias", 1, d, false, 0, &L->b_down));
    }
#undef T
    return 0;
}

static int load_model(loader *c) {
    pb_config cfg;
    layer_shape *ls = NULL;
    if (read_config(c, &cfg, &ls) != 0) {
        free(ls);
        return -1;
    }
    if (pb_model_create(&c->m, &cfg, false, c->err) != 0) {
        free(ls);
        return pb_err_prefix(c->err, "%s: ", c->g->path);
    }
    pb_model *m = c->m;
    strcpy(m->format, "gguf");
    m->path = strdup(c->g->path);
    PB_CHECK_ALLOC(m->path, c->err);
    for (int l = 0; l < cfg.n_layers; l++) {
        pb_layer *L = &m->layers[l];
        L->n_heads = ls[l].n_heads;
        L->n_kv_heads = ls[l].n_kv_heads;
        L->ffn_dim = ls[l].ffn_dim;
        L->head_dim = cfg.head_dim; /* as pb_model_create does, also for layers without attention */
        L->has_attn = L->n_heads > 0;
        L->has_mlp = L->ffn_dim > 0;
    }
    free(ls);
    int64_t d = cfg.dim, V = cfg.vocab_size;
    PB_TRY(tensor(c, "token_embd.weight", V, d, true, 0, &m->tok_emb));
    PB_TRY(tensor(c, "output_norm.weight", 1, d, true, 0, &m->final_norm));
    /* a tied model converted by a tool that writes the head anyway (stories260K's converter
     * does) stores two identical copies: share one, so that it counts and prunes as tied */
    const pb_gguf_tensor *e = pb_gguf_find_tensor(c->g, "token_embd.weight");
    const pb_gguf_tensor *o = pb_gguf_find_tensor(c->g, "output.weight");
    if (o && o->type == e->type && !memcmp(o->ne, e->ne, sizeof o->ne) && !memcmp(o->data, e->data, e->n_bytes)) {
        c->used[o - c->g->tensors] = true;
        o = NULL;
    }
    if (o) PB_TRY(tensor(c, "output.weight", V, d, true, 0, &m->lm_head));
    else m->lm_head = m->tok_emb;
    m->cfg.tied_embeddings = o == NULL;
    for (int l = 0; l < cfg.n_layers; l++) PB_TRY(layer_tensors(c, l));
    for (size_t i = 0; i < c->g->n_tensors; i++)
        if (!c->used[i])
            return pb_err_set(c->err, "%s: unexpected tensor %s (not part of a llama model with %d layers and these "
                              "shapes)", c->g->path, c->g->tensors[i].name, cfg.n_layers);
    if (pb_model_validate(m, c->err) != 0) return pb_err_prefix(c->err, "%s: ", c->g->path);
    return 0;
}

int pb_gguf_load(const char *path, const pb_load_opts *opts, pb_model **model, pb_tokenizer **tok, pb_err *err) {
    *model = NULL;
    if (tok) *tok = NULL;
    pb_gguf g;
    PB_TRY(pb_gguf_open(&g, path, err));
    loader c = {.g = &g, .err = err};
    c.used = calloc(g.n_tensors ? g.n_tensors : 1, sizeof *c.used);
    int rc = c.used ? load_model(&c) : pb_err_set(err, "out of memory loading %s", path);
    free(c.used);
    pb_tokenizer *t = NULL;
    if (rc == 0 && tok) {
        if (opts && opts->tokenizer_path) rc = pb_tok_load(opts->tokenizer_path, &t, err);
        else rc = pb_gguf_tokenizer(&g, &t, err);
    }
    if (rc == 0 && c.map_used) {
        c.m->maps = calloc(1, sizeof *c.m->maps);
        if (!c.m->maps) rc = pb_err_set(err, "out of memory loading %s", path);
        else {
            pb_gguf_take_map(&g, &c.m->maps[0]);
            c.m->n_maps = 1;
        }
    }
    pb_gguf_close(&g);
    if (rc != 0) {
        if (t) pb_tok_free(t);
        pb_model_free(c.m);
        return -1;
    }
    *model = c.m;
    if (tok) *tok = t;
    return 0;
}
