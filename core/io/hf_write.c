/* hf_write.c — pb_hf_save: a pb_model -> config.json + safetensors (single or sharded).
 *
 * Every file is first written under a hidden temporary name in the target folder and all
 * are renamed only once everything was written, so a failure (full disk, bad tokenizer
 * folder) leaves the folder as it was. Uniform models get a plain LlamaConfig that HF
 * transformers loads; anything else also gets "prunebench_layers" (hf_config.c reads it). */
#include "hf_internal.h"
#include "hf_weights.h"
#include "load.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- pending files: temporary name -> final name ------------------------------------ */

typedef struct {
    char *tmp, *final;
} pending;

typedef struct {
    const char *dir;
    pending *p;
    int n, cap;
    pb_err *err;
} save_ctx;

/* Registers a new output file and returns its temporary path (NULL + err on OOM). */
static const char *add_pending(save_ctx *s, const char *name) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        pending *np = realloc(s->p, sizeof *np * (size_t)cap);
        if (!np) { pb_err_set(s->err, "out of memory"); return NULL; }
        s->p = np;
        s->cap = cap;
    }
    char tmpname[512];
    snprintf(tmpname, sizeof tmpname, ".%s.pbtmp%ld", name, (long)getpid());
    pending *e = &s->p[s->n];
    e->tmp = pb_path_join(s->dir, tmpname);
    e->final = pb_path_join(s->dir, name);
    if (!e->tmp || !e->final) {
        free(e->tmp);
        free(e->final);
        pb_err_set(s->err, "out of memory");
        return NULL;
    }
    s->n++;
    return e->tmp;
}

static void free_pending(save_ctx *s, bool remove_tmp) {
    for (int i = 0; i < s->n; i++) {
        if (remove_tmp) unlink(s->p[i].tmp);
        free(s->p[i].tmp);
        free(s->p[i].final);
    }
    free(s->p);
    s->p = NULL;
    s->n = 0;
}

/* ---- tensor list ------------------------------------------------------------------ */

typedef struct {
    pb_st_out_tensor *t;
    int n, cap;
    pb_arena names;
} tensor_list;

static int add_t(tensor_list *tl, const char *name, const float *data, int64_t rows, int64_t cols) {
    if (tl->n == tl->cap) return -1; /* capacity is computed exactly by the caller */
    pb_st_out_tensor *t = &tl->t[tl->n];
    t->name = pb_arena_strdup(&tl->names, name);
    if (!t->name) return -1;
    t->data = data;
    t->ndim = cols < 0 ? 1 : 2;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->numel = (size_t)rows * (size_t)(cols < 0 ? 1 : cols);
    tl->n++;
    return 0;
}

static int build_tensors(const pb_model *m, bool tied, tensor_list *tl, pb_err *err) {
    int64_t d = m->cfg.dim, v = m->cfg.vocab_size;
    tl->cap = 3 + 16 * m->cfg.n_layers;
    tl->t = pb_calloc((size_t)tl->cap, sizeof *tl->t);
    pb_arena_init(&tl->names, (size_t)64 << 10);
    PB_CHECK_ALLOC(tl->t, err);
    int rc = add_t(tl, "model.embed_tokens.weight", m->tok_emb, v, d);
    char n[128];
#define ADD(suffix, ptr, r, c) \
    (snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix), rc |= add_t(tl, n, (ptr), (r), (c)))
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        int64_t q = (int64_t)L->n_heads * L->head_dim, kv = (int64_t)L->n_kv_heads * L->head_dim, f = L->ffn_dim;
        if (L->has_attn) {
            ADD("input_layernorm.weight", L->attn_norm, d, -1);
            ADD("self_attn.q_proj.weight", L->wq, q, d);
            ADD("self_attn.k_proj.weight", L->wk, kv, d);
            ADD("self_attn.v_proj.weight", L->wv, kv, d);
            ADD("self_attn.o_proj.weight", L->wo, d, q);
            if (L->bq) ADD("self_attn.q_proj.bias", L->bq, q, -1);
            if (L->bk) ADD("self_attn.k_proj.bias", L->bk, kv, -1);
            if (L->bv) ADD("self_attn.v_proj.bias", L->bv, kv, -1);
            if (L->bo) ADD("self_attn.o_proj.bias", L->bo, d, -1);
        }
        if (L->has_mlp) {
            ADD("post_attention_layernorm.weight", L->mlp_norm, d, -1);
            ADD("mlp.gate_proj.weight", L->w_gate, f, d);
            ADD("mlp.up_proj.weight", L->w_up, f, d);
            ADD("mlp.down_proj.weight", L->w_down, d, f);
            if (L->b_gate) ADD("mlp.gate_proj.bias", L->b_gate, f, -1);
            if (L->b_up) ADD("mlp.up_proj.bias", L->b_up, f, -1);
            if (L->b_down) ADD("mlp.down_proj.bias", L->b_down, d, -1);
        }
    }
#undef ADD
    rc |= add_t(tl, "model.norm.weight", m->final_norm, d, -1);
    if (!tied) rc |= add_t(tl, "lm_head.weight", m->lm_head, v, d);
    return rc ? pb_err_set(err, "out of memory") : 0;
}

/* ---- config.json --------------------------------------------------------------------- */

/* Shortest decimal that reads back as the same float ("1e-05", not "9.99999974737875e-06"),
 * with ".0" kept on integral values as Python's json writes floats. */
static cJSON *raw_float(float v) {
    char buf[48];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    /* integral values as 500000.0 rather than 5e+05 */
    if (strchr(buf, 'e') && v == floorf(v) && fabsf(v) < 1e15f) snprintf(buf, sizeof buf, "%.1f", (double)v);
    if (!strpbrk(buf, ".eE")) strcat(buf, ".0");
    return cJSON_CreateRaw(buf);
}

static cJSON *token_id(int id) { return id >= 0 ? cJSON_CreateNumber(id) : cJSON_CreateNull(); }

static bool valid_std(int nh, int nkv, int hd, int ffn) {
    return nh >= 1 && nkv >= 1 && nh % nkv == 0 && hd >= 2 && hd % 2 == 0 && ffn >= 1;
}

/* Uniform: every layer has both sublayers, the same shape and all-or-nothing biases, which
 * a plain LlamaConfig (attention_bias, mlp_bias) can express. */
static bool is_uniform(const pb_model *m) {
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l], *F = &m->layers[0];
        unsigned b = pb_hf_layer_bias(L), ab = b & PB_HF_BIAS_ATTN, mb = b & PB_HF_BIAS_MLP;
        if (!L->has_attn || !L->has_mlp || L->n_heads != F->n_heads || L->n_kv_heads != F->n_kv_heads ||
            L->head_dim != F->head_dim || L->ffn_dim != F->ffn_dim || b != pb_hf_layer_bias(F) ||
            (ab && ab != PB_HF_BIAS_ATTN) || (mb && mb != PB_HF_BIAS_MLP))
            return false;
    }
    return true;
}

static cJSON *layer_entry(const pb_layer *L) {
    cJSON *e = cJSON_CreateObject(), *b = cJSON_CreateArray();
    if (!e || !b) { cJSON_Delete(e); cJSON_Delete(b); return NULL; }
    cJSON_AddNumberToObject(e, "n_heads", L->has_attn ? L->n_heads : 0);
    cJSON_AddNumberToObject(e, "n_kv_heads", L->has_attn ? L->n_kv_heads : 0);
    cJSON_AddNumberToObject(e, "head_dim", L->head_dim > 0 ? L->head_dim : 0);
    cJSON_AddNumberToObject(e, "ffn_dim", L->has_mlp ? L->ffn_dim : 0);
    cJSON_AddBoolToObject(e, "attn", L->has_attn);
    cJSON_AddBoolToObject(e, "mlp", L->has_mlp);
    unsigned bias = pb_hf_layer_bias(L);
    for (int k = 0; k < PB_HF_N_BIAS; k++)
        if (bias & (1u << k)) cJSON_AddItemToArray(b, cJSON_CreateString(pb_hf_bias_names[k]));
    cJSON_AddItemToObject(e, "bias", b);
    return e;
}

static char *config_text(const pb_model *m, bool tied, pb_st_dtype dt) {
    const pb_config *c = &m->cfg;
    bool uniform = is_uniform(m);
    int nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim, ffn = c->ffn_dim;
    unsigned bias = 0;
    if (uniform && c->n_layers > 0) {
        const pb_layer *F = &m->layers[0];
        nh = F->n_heads, nkv = F->n_kv_heads, hd = F->head_dim, ffn = F->ffn_dim;
        bias = pb_hf_layer_bias(F);
    } else if (!valid_std(nh, nkv, hd, ffn)) {
        /* the standard keys only need to be valid: prunebench_layers is authoritative */
        nh = nkv = 1, hd = 2, ffn = 1;
        for (int l = 0; l < c->n_layers; l++)
            if (m->layers[l].has_attn) { nh = m->layers[l].n_heads, nkv = m->layers[l].n_kv_heads, hd = m->layers[l].head_dim; break; }
        for (int l = 0; l < c->n_layers; l++)
            if (m->layers[l].has_mlp) { ffn = m->layers[l].ffn_dim; break; }
    }
    static const char *const dtype_names[] = {"float32", "float16", "bfloat16"};
    cJSON *r = cJSON_CreateObject(), *arch = cJSON_CreateStringArray((const char *const[]){"LlamaForCausalLM"}, 1);
    if (!r || !arch) { cJSON_Delete(r); cJSON_Delete(arch); return NULL; }
    cJSON_AddItemToObject(r, "architectures", arch);
    cJSON_AddBoolToObject(r, "attention_bias", (bias & PB_HF_BIAS_ATTN) != 0);
    cJSON_AddItemToObject(r, "attention_dropout", cJSON_CreateRaw("0.0"));
    cJSON_AddItemToObject(r, "bos_token_id", token_id(c->bos_id));
    cJSON_AddItemToObject(r, "eos_token_id", token_id(c->eos_id));
    cJSON_AddNumberToObject(r, "head_dim", hd);
    cJSON_AddStringToObject(r, "hidden_act", "silu");
    cJSON_AddNumberToObject(r, "hidden_size", c->dim);
    cJSON_AddItemToObject(r, "initializer_range", cJSON_CreateRaw("0.02"));
    cJSON_AddNumberToObject(r, "intermediate_size", ffn);
    cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_seq_len > 0 ? c->max_seq_len : 2048);
    cJSON_AddBoolToObject(r, "mlp_bias", (bias & PB_HF_BIAS_MLP) != 0);
    cJSON_AddStringToObject(r, "model_type", "llama");
    cJSON_AddNumberToObject(r, "num_attention_heads", nh);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(r, "num_key_value_heads", nkv);
    cJSON_AddNumberToObject(r, "pretraining_tp", 1);
    if (!uniform) {
        cJSON *pl = cJSON_AddArrayToObject(r, "prunebench_layers");
        for (int l = 0; pl && l < c->n_layers; l++) cJSON_AddItemToArray(pl, layer_entry(&m->layers[l]));
        if (!pl || cJSON_GetArraySize(pl) != c->n_layers) { cJSON_Delete(r); return NULL; }
    }
    cJSON_AddItemToObject(r, "rms_norm_eps", raw_float(c->norm_eps));
    const pb_rope_scaling *rs = &c->rope_scaling;
    if (rs->type == PB_ROPE_NONE) {
        cJSON_AddNullToObject(r, "rope_scaling");
    } else {
        cJSON *o = cJSON_AddObjectToObject(r, "rope_scaling");
        if (o) {
            cJSON_AddItemToObject(o, "factor", raw_float(rs->factor));
            if (rs->type == PB_ROPE_LLAMA3) {
                cJSON_AddItemToObject(o, "high_freq_factor", raw_float(rs->high_freq_factor));
                cJSON_AddItemToObject(o, "low_freq_factor", raw_float(rs->low_freq_factor));
                cJSON_AddNumberToObject(o, "original_max_position_embeddings", rs->original_max_position);
            }
            cJSON_AddStringToObject(o, "rope_type", rs->type == PB_ROPE_LLAMA3 ? "llama3" : "linear");
        }
    }
    cJSON_AddItemToObject(r, "rope_theta", raw_float(c->rope_theta));
    cJSON_AddBoolToObject(r, "tie_word_embeddings", tied);
    cJSON_AddStringToObject(r, "torch_dtype", dtype_names[dt]);
    cJSON_AddBoolToObject(r, "use_cache", true);
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab_size);
    /* cJSON silently drops items it could not allocate: the last key tells if all went in */
    char *s = cJSON_GetObjectItemCaseSensitive(r, "vocab_size") ? cJSON_Print(r) : NULL;
    cJSON_Delete(r);
    return s;
}

static int write_text(const char *path, const char *text, pb_err *err) {
    FILE *f = fopen(path, "w");
    if (!f) return pb_err_set(err, "%s: cannot create: %s", path, strerror(errno));
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, f) == n && fputc('\n', f) != EOF && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = false;
    return ok ? 0 : pb_err_set(err, "%s: write error: %s", path, strerror(errno));
}

/* ---- weights ----------------------------------------------------------------------- */

static int write_sharded(save_ctx *s, const tensor_list *tl, pb_st_dtype dt, size_t max_bytes) {
    size_t esz = pb_st_dtype_size(dt);
    /* greedy packing in tensor order, as transformers does; an oversized tensor goes alone */
    int *start = pb_calloc((size_t)tl->n + 1, sizeof *start), ns = 0;
    PB_CHECK_ALLOC(start, s->err);
    size_t cur = 0, total = 0;
    for (int i = 0; i < tl->n; i++) {
        size_t b = tl->t[i].numel * esz;
        if (i == 0 || (cur > 0 && cur + b > max_bytes)) { start[ns++] = i; cur = 0; }
        cur += b;
        total += b;
    }
    start[ns] = tl->n;
    cJSON *root = cJSON_CreateObject(), *meta = root ? cJSON_AddObjectToObject(root, "metadata") : NULL;
    cJSON *wm = root ? cJSON_AddObjectToObject(root, "weight_map") : NULL;
    int rc = meta && wm ? 0 : pb_err_set(s->err, "out of memory");
    char tsz[32];
    snprintf(tsz, sizeof tsz, "%zu", total);
    if (rc == 0) cJSON_AddItemToObject(meta, "total_size", cJSON_CreateRaw(tsz));
    for (int k = 0; k < ns && rc == 0; k++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, ns);
        const char *tmp = add_pending(s, name);
        if (!tmp || pb_st_write(tmp, tl->t + start[k], start[k + 1] - start[k], dt, s->err) != 0) rc = -1;
        for (int i = start[k]; i < start[k + 1] && rc == 0; i++)
            if (!cJSON_AddStringToObject(wm, tl->t[i].name, name)) rc = pb_err_set(s->err, "out of memory");
    }
    if (rc == 0) {
        char *txt = cJSON_Print(root);
        const char *tmp = txt ? add_pending(s, PB_HF_INDEX_NAME) : NULL;
        rc = !txt ? pb_err_set(s->err, "out of memory") : !tmp ? -1 : write_text(tmp, txt, s->err);
        cJSON_free(txt);
    }
    cJSON_Delete(root);
    free(start);
    return rc;
}

/* ---- tokenizer files --------------------------------------------------------------- */

static int copy_file(const char *src, const char *dst, pb_err *err) {
    FILE *in = fopen(src, "rb");
    if (!in) return pb_err_set(err, "%s: cannot open: %s", src, strerror(errno));
    FILE *out = fopen(dst, "wb");
    if (!out) { fclose(in); return pb_err_set(err, "%s: cannot create: %s", dst, strerror(errno)); }
    char buf[1 << 16];
    size_t n;
    bool ok = true;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) { ok = false; break; }
    bool rerr = ferror(in);
    fclose(in);
    if (ok && (fflush(out) != 0 || fsync(fileno(out)) != 0)) ok = false;
    if (fclose(out) != 0) ok = false;
    if (rerr) return pb_err_set(err, "%s: read error", src);
    return ok ? 0 : pb_err_set(err, "%s: write error: %s", dst, strerror(errno));
}

static int copy_tokenizer(save_ctx *s, const char *from) {
    static const char *const files[] = {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "added_tokens.json"};
    if (!pb_is_dir(from)) return pb_err_set(s->err, "%s: not a directory (tokenizer files are copied from an HF folder)", from);
    int copied = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *src = pb_path_join(from, files[i]);
        PB_CHECK_ALLOC(src, s->err);
        int rc = 0;
        if (pb_file_exists(src)) {
            const char *tmp = add_pending(s, files[i]);
            rc = tmp ? copy_file(src, tmp, s->err) : -1;
            copied += i < 2;
        }
        free(src);
        PB_TRY(rc);
    }
    if (!copied) return pb_err_set(s->err, "%s: no tokenizer.model or tokenizer.json to copy", from);
    return 0;
}

/* ---- entry point ------------------------------------------------------------------- */

static int save_all(save_ctx *s, const pb_model *m, const pb_save_opts *o, bool tied) {
    pb_st_dtype dt = o->dtype == PB_DTYPE_F16 ? PB_ST_F16 : o->dtype == PB_DTYPE_BF16 ? PB_ST_BF16 : PB_ST_F32;
    tensor_list tl = {0};
    int rc = build_tensors(m, tied, &tl, s->err);
    if (rc == 0) {
        if (o->max_shard_bytes > 0) {
            rc = write_sharded(s, &tl, dt, o->max_shard_bytes);
        } else {
            const char *tmp = add_pending(s, PB_HF_SINGLE_NAME);
            rc = tmp ? pb_st_write(tmp, tl.t, tl.n, dt, s->err) : -1;
        }
    }
    free(tl.t);
    pb_arena_free(&tl.names);
    PB_TRY(rc);
    char *cfg = config_text(m, tied, dt);
    const char *tmp = cfg ? add_pending(s, "config.json") : NULL;
    rc = !cfg ? pb_err_set(s->err, "out of memory") : !tmp ? -1 : write_text(tmp, cfg, s->err);
    cJSON_free(cfg);
    PB_TRY(rc);
    if (o->tokenizer_from) PB_TRY(copy_tokenizer(s, o->tokenizer_from));
    return 0;
}

int pb_hf_save(const pb_model *m, const char *dir, const pb_save_opts *opts, pb_err *err) {
    pb_save_opts o = opts ? *opts : (pb_save_opts){PB_DTYPE_F32, NULL, 0};
    if (o.dtype != PB_DTYPE_F32 && o.dtype != PB_DTYPE_F16 && o.dtype != PB_DTYPE_BF16)
        return pb_err_set(err, "%s: unknown save dtype %d", dir, (int)o.dtype);
    if (pb_model_validate(m, err) != 0) return pb_err_prefix(err, "%s: cannot save: ", dir);
    const pb_config *c = &m->cfg;
    if (!isfinite(c->rope_theta) || !(c->rope_theta > 0))
        return pb_err_set(err, "%s: cannot save: invalid rope_theta %g", dir, (double)c->rope_theta);
    bool tied = c->tied_embeddings || m->lm_head == m->tok_emb, created = false;
    PB_TRY(pb_mkdir_p(dir, &created, err));
    save_ctx s = {dir, NULL, 0, 0, err};
    int rc = save_all(&s, m, &o, tied);
    for (int i = 0; i < s.n && rc == 0; i++)
        if (rename(s.p[i].tmp, s.p[i].final) != 0)
            rc = pb_err_set(err, "%s: cannot rename into place: %s", s.p[i].final, strerror(errno));
    if (rc == 0) {
        /* a stale file of the other layout would shadow or contradict what was just written */
        char *stale = pb_path_join(dir, o.max_shard_bytes > 0 ? PB_HF_SINGLE_NAME : PB_HF_INDEX_NAME);
        if (stale) unlink(stale);
        free(stale);
    }
    free_pending(&s, rc != 0);
    if (rc != 0 && created) rmdir(dir);
    return rc;
}
