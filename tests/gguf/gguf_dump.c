/* gguf_dump.c — test helper: loads a GGUF file with pb_gguf_load and dumps what it got.
 *
 *   gguf_dump [--tok] [--tokenizer PATH] MODEL.gguf [OUTDIR]
 *
 * On failure prints the error message (one line) on stderr and exits 1, so that tests can
 * check the message. With OUTDIR, writes OUTDIR/model.json (config, per-layer shapes,
 * which tensors are memory-mapped, tokenizer facts) and one raw little-endian fp32 file
 * per tensor, named as Hugging Face names it (OUTDIR/model.layers.0.self_attn.q_proj.weight.f32). */
#include "load.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pb_model *g_model;
static const char *g_dir;
static cJSON *g_tensors;
static int g_fail;

static bool in_map(const float *p) {
    for (int i = 0; i < g_model->n_maps; i++) {
        const pb_mmap *mp = &g_model->maps[i];
        if ((const uint8_t *)p >= mp->data && (const uint8_t *)p < mp->data + mp->size) return true;
    }
    return false;
}

static void dump(const char *name, const float *w, long rows, long cols) {
    if (!w) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.f32", g_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(w, sizeof(float), (size_t)(rows * cols), f) != (size_t)(rows * cols)) {
        fprintf(stderr, "gguf_dump: cannot write %s\n", path);
        g_fail = 1;
    }
    if (f) fclose(f);
    cJSON *t = cJSON_AddObjectToObject(g_tensors, name);
    cJSON *shape = cJSON_AddArrayToObject(t, "shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)rows));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)cols));
    cJSON_AddBoolToObject(t, "mapped", in_map(w));
}

static void dump_layer(int l) {
    const pb_layer *L = &g_model->layers[l];
    long d = g_model->cfg.dim, q = (long)L->n_heads * L->head_dim, kv = (long)L->n_kv_heads * L->head_dim;
    long f = L->ffn_dim;
    char n[256];
#define D(sfx, w, r, c) (snprintf(n, sizeof n, "model.layers.%d.%s", l, sfx), dump(n, w, r, c))
    D("input_layernorm.weight", L->attn_norm, 1, d);
    D("self_attn.q_proj.weight", L->wq, q, d);
    D("self_attn.k_proj.weight", L->wk, kv, d);
    D("self_attn.v_proj.weight", L->wv, kv, d);
    D("self_attn.o_proj.weight", L->wo, d, q);
    D("self_attn.q_proj.bias", L->bq, 1, q);
    D("self_attn.k_proj.bias", L->bk, 1, kv);
    D("self_attn.v_proj.bias", L->bv, 1, kv);
    D("self_attn.o_proj.bias", L->bo, 1, d);
    D("post_attention_layernorm.weight", L->mlp_norm, 1, d);
    D("mlp.gate_proj.weight", L->w_gate, f, d);
    D("mlp.up_proj.weight", L->w_up, f, d);
    D("mlp.down_proj.weight", L->w_down, d, f);
    D("mlp.gate_proj.bias", L->b_gate, 1, f);
    D("mlp.up_proj.bias", L->b_up, 1, f);
    D("mlp.down_proj.bias", L->b_down, 1, d);
#undef D
}

static int write_json(const pb_model *m, const pb_tokenizer *tok) {
    const pb_config *c = &m->cfg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", m->format);
    cJSON_AddStringToObject(o, "arch", c->arch);
    cJSON_AddNumberToObject(o, "dim", c->dim);
    cJSON_AddNumberToObject(o, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "max_seq_len", c->max_seq_len);
    cJSON_AddNumberToObject(o, "norm_eps", c->norm_eps);
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
    cJSON_AddNumberToObject(rs, "type", c->rope_scaling.type);
    cJSON_AddNumberToObject(rs, "factor", c->rope_scaling.factor);
    cJSON_AddNumberToObject(rs, "low_freq_factor", c->rope_scaling.low_freq_factor);
    cJSON_AddNumberToObject(rs, "high_freq_factor", c->rope_scaling.high_freq_factor);
    cJSON_AddNumberToObject(rs, "original_max_position", c->rope_scaling.original_max_position);
    cJSON_AddBoolToObject(o, "tied", c->tied_embeddings);
    cJSON_AddBoolToObject(o, "lm_head_is_tok_emb", m->lm_head == m->tok_emb);
    cJSON_AddNumberToObject(o, "bos_id", c->bos_id);
    cJSON_AddNumberToObject(o, "eos_id", c->eos_id);
    cJSON_AddNumberToObject(o, "n_heads", c->n_heads);
    cJSON_AddNumberToObject(o, "n_kv_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(o, "ffn_dim", c->ffn_dim);
    cJSON_AddNumberToObject(o, "n_maps", m->n_maps);
    cJSON_AddNumberToObject(o, "params", (double)pb_model_params(m));
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int l = 0; l < c->n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "n_heads", L->n_heads);
        cJSON_AddNumberToObject(j, "n_kv_heads", L->n_kv_heads);
        cJSON_AddNumberToObject(j, "head_dim", L->head_dim);
        cJSON_AddNumberToObject(j, "ffn_dim", L->ffn_dim);
        cJSON_AddBoolToObject(j, "has_attn", L->has_attn);
        cJSON_AddBoolToObject(j, "has_mlp", L->has_mlp);
        cJSON_AddItemToArray(layers, j);
    }
    if (tok) {
        cJSON *t = cJSON_AddObjectToObject(o, "tokenizer");
        cJSON_AddNumberToObject(t, "vocab_size", pb_tok_vocab_size(tok));
        cJSON_AddNumberToObject(t, "bos", pb_tok_bos(tok));
        cJSON_AddNumberToObject(t, "eos", pb_tok_eos(tok));
        cJSON_AddStringToObject(t, "kind", pb_tok_kind_of(tok) == PB_TOK_SPM ? "spm" : "bytelevel");
    }
    g_tensors = cJSON_AddObjectToObject(o, "tensors");
    long d = c->dim, V = c->vocab_size;
    dump("model.embed_tokens.weight", m->tok_emb, V, d);
    dump("model.norm.weight", m->final_norm, 1, d);
    if (m->lm_head != m->tok_emb) dump("lm_head.weight", m->lm_head, V, d);
    for (int l = 0; l < c->n_layers; l++) dump_layer(l);

    char path[4096];
    snprintf(path, sizeof path, "%s/model.json", g_dir);
    char *s = cJSON_Print(o);
    FILE *f = fopen(path, "w");
    if (!s || !f || fputs(s, f) < 0) {
        fprintf(stderr, "gguf_dump: cannot write %s\n", path);
        g_fail = 1;
    }
    if (f) fclose(f);
    free(s);
    cJSON_Delete(o);
    return g_fail;
}

int main(int argc, char **argv) {
    bool want_tok = false;
    pb_load_opts opts = {0};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--tok")) want_tok = true;
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) opts.tokenizer_path = argv[++i], want_tok = true;
        else break;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: gguf_dump [--tok] [--tokenizer PATH] MODEL.gguf [OUTDIR]\n");
        return 2;
    }
    pb_err err = {0};
    pb_model *m = NULL;
    pb_tokenizer *tok = NULL;
    if (pb_gguf_load(argv[i], &opts, &m, want_tok ? &tok : NULL, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (i + 1 < argc) {
        g_model = m;
        g_dir = argv[i + 1];
        rc = write_json(m, tok);
    }
    if (tok) pb_tok_free(tok);
    pb_model_free(m);
    return rc;
}
