/* hf.c — Hugging Face model folder reader: config.json + safetensors (+ tokenizer) -> pb_model.
 *
 * Every tensor's shape is checked against what config.json implies before it is used. F32
 * tensors whose data is 4-byte aligned are used in place from the (copy-on-write) map,
 * which then moves into pb_model.maps; everything else is converted into the model arena. */
#include "hf_internal.h"
#include "hf_weights.h"
#include "load.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pb_model *m;
    pb_hf_weights w;
    pb_err *err;
} hf_ctx;

static void fmt_shape(char *buf, size_t cap, int nd, const int64_t *s) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < nd && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* Claims tensor `name` of shape (rows) or (rows, cols) (cols < 0: 1-D) as fp32 data. */
static int take(hf_ctx *c, const char *name, int64_t rows, int64_t cols, float **out) {
    int nd = cols < 0 ? 1 : 2, fi = 0;
    int64_t want[2] = {rows, cols};
    char ws[64], hs[160];
    fmt_shape(ws, sizeof ws, nd, want);
    pb_st_tensor *t = pb_hf_weights_find(&c->w, name, &fi);
    if (!t)
        return pb_err_set(c->err, "%s: missing tensor %s (config.json implies %s)", pb_hf_weights_where(&c->w), name, ws);
    pb_st_file *f = &c->w.files[fi];
    if (t->ndim != nd || t->shape[0] != rows || (nd == 2 && t->shape[1] != cols)) {
        fmt_shape(hs, sizeof hs, t->ndim, t->shape);
        return pb_err_set(c->err, "%s: tensor %s has shape %s but config.json implies %s", f->path, name, hs, ws);
    }
    t->used = true;
    if (t->dtype == PB_ST_F32 && ((uintptr_t)t->data & 3u) == 0) {
        /* the map is MAP_PRIVATE + writable, so dropping const here cannot reach the file */
        *out = (float *)(uintptr_t)t->data;
        f->has_inplace = true;
        return 0;
    }
    float *dst = pb_arena_alloc_n(&c->m->arena, t->numel ? t->numel : 1, sizeof(float));
    if (!dst) return pb_err_set(c->err, "%s: out of memory for tensor %s", f->path, name);
    pb_st_to_f32(t->dtype, t->data, dst, t->numel);
    *out = dst;
    return 0;
}

/* Optional tensor: present iff `want`. Biases are declared by config.json, so an
 * undeclared one is reported as unexpected later (see check_unused). */
static int take_opt(hf_ctx *c, bool want, const char *name, int64_t n, float **out) {
    *out = NULL;
    return want ? take(c, name, n, -1, out) : 0;
}

static int take_layer(hf_ctx *c, int l, const pb_hf_layer_shape *s) {
    pb_layer *L = &c->m->layers[l];
    int64_t d = c->m->cfg.dim, q = (int64_t)s->n_heads * s->head_dim, kv = (int64_t)s->n_kv_heads * s->head_dim;
    int64_t f = s->ffn_dim;
    char n[128];
#define NAME(suffix) (snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix), n)
    if (s->attn) {
        PB_TRY(take(c, NAME("input_layernorm.weight"), d, -1, &L->attn_norm));
        PB_TRY(take(c, NAME("self_attn.q_proj.weight"), q, d, &L->wq));
        PB_TRY(take(c, NAME("self_attn.k_proj.weight"), kv, d, &L->wk));
        PB_TRY(take(c, NAME("self_attn.v_proj.weight"), kv, d, &L->wv));
        PB_TRY(take(c, NAME("self_attn.o_proj.weight"), d, q, &L->wo));
        PB_TRY(take_opt(c, s->bias & PB_HF_BIAS_Q, NAME("self_attn.q_proj.bias"), q, &L->bq));
        PB_TRY(take_opt(c, s->bias & PB_HF_BIAS_K, NAME("self_attn.k_proj.bias"), kv, &L->bk));
        PB_TRY(take_opt(c, s->bias & PB_HF_BIAS_V, NAME("self_attn.v_proj.bias"), kv, &L->bv));
        PB_TRY(take_opt(c, s->bias & PB_HF_BIAS_O, NAME("self_attn.o_proj.bias"), d, &L->bo));
    }
    if (s->mlp) {
        PB_TRY(take(c, NAME("post_attention_layernorm.weight"), d, -1, &L->mlp_norm));
        PB_TRY(take(c, NAME("mlp.gate_proj.weight"), f, d, &L->w_gate));
        PB_TRY(take(c, NAME("mlp.up_proj.weight"), f, d, &L->w_up));
        PB_TRY(take(c, NAME("mlp.down_proj.weight"), d, f, &L->w_down));
        PB_TRY(take_opt(c, s->bias & PB_HF_BIAS_GATE, NAME("mlp.gate_proj.bias"), f, &L->b_gate));
        PB_TRY(take_opt(c, s->bias & PB_HF_BIAS_UP, NAME("mlp.up_proj.bias"), f, &L->b_up));
        PB_TRY(take_opt(c, s->bias & PB_HF_BIAS_DOWN, NAME("mlp.down_proj.bias"), d, &L->b_down));
    }
#undef NAME
    return 0;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Tensors nobody claimed. Under model./lm_head. they mean config.json and the weights
 * disagree (an undeclared bias, a sublayer marked absent, an extra layer): computing without
 * them would silently give another model, so that is an error. Other names (heads of other
 * tasks, e.g. score.weight) are ignored with a debug note, as transformers does. */
static int check_unused(hf_ctx *c, bool tied) {
    for (int i = 0; i < c->w.n_files; i++) {
        pb_st_file *f = &c->w.files[i];
        for (int k = 0; k < f->n; k++) {
            pb_st_tensor *t = &f->t[k];
            if (t->used) continue;
            /* buffers old checkpoints saved; recomputed from rope_theta */
            if (has_suffix(t->name, ".rotary_emb.inv_freq")) continue;
            if (tied && !strcmp(t->name, "lm_head.weight")) {
                pb_log(PB_LOG_DEBUG, "%s: ignoring lm_head.weight (tie_word_embeddings is true)", f->path);
                continue;
            }
            if (!strncmp(t->name, "model.", 6) || !strncmp(t->name, "lm_head.", 8))
                return pb_err_set(c->err, "%s: unexpected tensor %s (not implied by config.json)", f->path, t->name);
            pb_log(PB_LOG_DEBUG, "%s: ignoring unknown tensor %s", f->path, t->name);
        }
    }
    return 0;
}

/* Moves the maps that tensors point into over to the model; closes the rest. */
static int adopt_maps(hf_ctx *c) {
    pb_model *m = c->m;
    m->maps = pb_calloc((size_t)(c->w.n_files ? c->w.n_files : 1), sizeof *m->maps);
    PB_CHECK_ALLOC(m->maps, c->err);
    for (int i = 0; i < c->w.n_files; i++) {
        pb_st_file *f = &c->w.files[i];
        if (!f->has_inplace) continue;
        m->maps[m->n_maps++] = f->map;
        memset(&f->map, 0, sizeof f->map);
    }
    return 0;
}

static int load_weights(hf_ctx *c, const pb_hf_config *hc) {
    pb_model *m = c->m;
    const pb_config *cfg = &m->cfg;
    int64_t v = cfg->vocab_size, d = cfg->dim;
    PB_TRY(take(c, "model.embed_tokens.weight", v, d, &m->tok_emb));
    for (int l = 0; l < cfg->n_layers; l++) PB_TRY(take_layer(c, l, &hc->layers[l]));
    PB_TRY(take(c, "model.norm.weight", d, -1, &m->final_norm));
    if (cfg->tied_embeddings) m->lm_head = m->tok_emb;
    else PB_TRY(take(c, "lm_head.weight", v, d, &m->lm_head));
    PB_TRY(check_unused(c, cfg->tied_embeddings));
    return adopt_maps(c);
}

/* The model a config.json describes, with every layer's own shape; weights NULL. */
static int model_from_config(const char *cpath, pb_hf_config *hc, pb_model **out, pb_err *err) {
    char *text = NULL;
    size_t len = 0;
    memset(hc, 0, sizeof *hc);
    *out = NULL;
    int rc = pb_file_read_all(cpath, &text, &len, err);
    if (rc == 0) rc = pb_hf_config_parse(cpath, text, len, hc, err);
    free(text);
    if (rc == 0) rc = pb_model_create(out, &hc->cfg, false, err);
    if (rc != 0) return -1;
    for (int l = 0; l < hc->cfg.n_layers; l++) {
        pb_layer *L = &(*out)->layers[l];
        const pb_hf_layer_shape *s = &hc->layers[l];
        L->n_heads = s->n_heads;
        L->n_kv_heads = s->n_kv_heads;
        L->head_dim = s->head_dim;
        L->ffn_dim = s->ffn_dim;
        L->has_attn = s->attn;
        L->has_mlp = s->mlp;
    }
    return 0;
}

int pb_hf_config_load(const char *path, bool alloc_weights, pb_model **out, pb_err *err) {
    *out = NULL;
    char *cpath = pb_is_dir(path) ? pb_path_join(path, "config.json") : strdup(path);
    PB_CHECK_ALLOC(cpath, err);
    pb_hf_config hc;
    pb_model *m = NULL;
    int rc = model_from_config(cpath, &hc, &m, err);
    size_t d = m ? (size_t)m->cfg.dim : 0, ve = d * (m ? (size_t)m->cfg.vocab_size : 0);
    if (rc == 0 && alloc_weights) {
        m->tok_emb = pb_arena_alloc_n(&m->arena, ve, sizeof(float));
        m->final_norm = pb_arena_alloc_n(&m->arena, d, sizeof(float));
        m->lm_head = m->cfg.tied_embeddings ? m->tok_emb : pb_arena_alloc_n(&m->arena, ve, sizeof(float));
        if (!m->tok_emb || !m->final_norm || !m->lm_head) rc = pb_err_set(err, "%s: out of memory", cpath);
    }
    for (int l = 0; rc == 0 && alloc_weights && l < hc.cfg.n_layers; l++) {
        pb_layer *L = &m->layers[l];
        size_t q = (size_t)L->n_heads * L->head_dim, kv = (size_t)L->n_kv_heads * L->head_dim, f = (size_t)L->ffn_dim;
        rc = pb_model_alloc_layer(m, l, err);
        float **b[PB_HF_N_BIAS] = {&L->bq, &L->bk, &L->bv, &L->bo, &L->b_gate, &L->b_up, &L->b_down};
        size_t bn[PB_HF_N_BIAS] = {q, kv, kv, d, f, f, d};
        for (int i = 0; rc == 0 && i < PB_HF_N_BIAS; i++)
            if (hc.layers[l].bias & (1u << i) && !(*b[i] = pb_arena_alloc_n(&m->arena, bn[i], sizeof(float))))
                rc = pb_err_set(err, "%s: out of memory", cpath);
    }
    if (rc == 0) {
        m->path = strdup(cpath);
        if (!m->path) rc = pb_err_set(err, "out of memory");
    }
    if (rc == 0 && alloc_weights && pb_model_validate(m, err) != 0) rc = pb_err_prefix(err, "%s: ", cpath);
    pb_hf_config_free(&hc);
    free(cpath);
    if (rc != 0) {
        pb_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

static int load_model(const char *dir, pb_model **out, pb_err *err) {
    char *cpath = pb_path_join(dir, "config.json");
    PB_CHECK_ALLOC(cpath, err);
    pb_hf_config hc;
    hf_ctx c = {NULL, {0}, err};
    int rc = model_from_config(cpath, &hc, &c.m, err);
    free(cpath);
    if (rc == 0) rc = pb_hf_weights_open(&c.w, dir, err);
    if (rc == 0) {
        snprintf(c.m->format, sizeof c.m->format, "hf");
        c.m->path = strdup(dir);
        rc = c.m->path ? load_weights(&c, &hc) : pb_err_set(err, "out of memory");
    }
    if (rc == 0 && pb_model_validate(c.m, err) != 0) rc = pb_err_prefix(err, "%s: ", dir);
    /* safe in every state: closed files are zeroed, adopted maps were moved out */
    if (c.w.files) pb_hf_weights_close(&c.w);
    pb_hf_config_free(&hc);
    if (rc != 0) {
        pb_model_free(c.m);
        return -1;
    }
    *out = c.m;
    return 0;
}

static int load_tokenizer(const char *dir, const pb_load_opts *opts, pb_tokenizer **tok, pb_err *err) {
    if (opts && opts->tokenizer_path) return pb_tok_load(opts->tokenizer_path, tok, err);
    char *spm = pb_path_join(dir, "tokenizer.model"), *js = pb_path_join(dir, "tokenizer.json");
    int rc = 0;
    if (!spm || !js) rc = pb_err_set(err, "out of memory");
    else if (pb_file_exists(spm)) rc = pb_tok_load_spm(spm, tok, err);
    else if (pb_file_exists(js)) rc = pb_tok_load_hf_json(js, tok, err);
    free(spm);
    free(js);
    return rc;
}

int pb_hf_load(const char *dir, const pb_load_opts *opts, pb_model **model, pb_tokenizer **tok, pb_err *err) {
    *model = NULL;
    if (tok) *tok = NULL;
    if (!pb_is_dir(dir)) return pb_err_set(err, "%s: not a directory", dir);
    pb_model *m = NULL;
    PB_TRY(load_model(dir, &m, err));
    if (tok && load_tokenizer(dir, opts, tok, err) != 0) {
        pb_model_free(m);
        *tok = NULL;
        return -1;
    }
    *model = m;
    return 0;
}
