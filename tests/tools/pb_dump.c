/* pb_dump.c — test tool: loads a model with pb_model_load (HF folder, GGUF or llama2.c file)
 * and reports what it got, for the Python reference tests in gguf/, io/ and model/.
 *
 *   pb_dump [OPTIONS] MODEL
 *     --tok                  also build the model's tokenizer ("tokenizer" in the info JSON)
 *     --tokenizer PATH       the tokenizer from PATH instead of the one beside the model (implies --tok)
 *     --threads N            CPU threads for --logits
 *     --info                 print the info JSON (below) on stdout
 *     --tensors DIR          write DIR/model.json (the info JSON) and one raw little-endian fp32
 *                            file per tensor, named as Hugging Face names it
 *                            (DIR/model.layers.0.self_attn.q_proj.weight.f32)
 *     --save DIR             write the model back with pb_hf_save
 *     --dtype f32|f16|bf16   the dtype --save writes (default f32); with --device, also the
 *                            backend's weight storage (default: the backend's, bf16 on cuda)
 *     --max-shard-bytes N    shard --save's output (default 0: one model.safetensors)
 *     --device cpu|cuda      run --logits on this backend (pb_ops_get + pb_model_to_backend);
 *                            --info, --tensors and --save still read the host model
 *     --logits IDS OUT       IDS: text "B T" followed by B*T token ids (row-major); OUT: the
 *                            raw little-endian fp32 logits (B, T, vocab_size). May be given up
 *                            to 16 times: the pairs run in order on the one loaded model (the
 *                            agreement tests pay a device start-up once, not per input)
 *     --decode               --logits run token by token through the KV cache, not in one forward
 *     --lora DIR             apply the LoRA adapter in DIR (PEFT layout), unmerged, to --logits
 * The actions run in the order listed; with none, pb_dump only loads. A load failure prints
 * the loader's message alone (one line, starting with the path) on stderr and exits 1, so
 * that tests can check the message; other failures print "pb_dump: error: ..." and exit 1;
 * bad usage exits 2.
 *
 * Info JSON: format, arch, dim, n_layers, vocab_size, max_seq_len, norm_eps, rope_theta,
 * rope_scaling {type, factor, low_freq_factor, high_freq_factor, original_max_position},
 * tied, lm_head_is_tok_emb, bos_id, eos_id, n_heads, n_kv_heads, head_dim, ffn_dim, n_maps,
 * params, layers [{n_heads, n_kv_heads, head_dim, ffn_dim, attn, mlp, bias: names among
 * q k v o gate up down}], tensors {HF name: {shape: [rows, cols] (vectors: [1, n]), mapped:
 * lies in a memory map}}, n_tensors, n_mapped_tensors, and with --tok tokenizer {vocab_size,
 * bos, eos, kind: "spm" or "bytelevel"}. */
#include "load.h"
#include "lora.h"
#include "ops.h"
#include "pb_test_model.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Calls fn for every tensor the model has, with its HF name and (rows, cols) shape. */
typedef void (*tensor_fn)(void *ctx, const char *name, const float *w, long rows, long cols);

static void for_each_tensor(const pb_model *m, tensor_fn fn, void *ctx) {
    long d = m->cfg.dim, V = m->cfg.vocab_size;
    fn(ctx, "model.embed_tokens.weight", m->tok_emb, V, d);
    fn(ctx, "model.norm.weight", m->final_norm, 1, d);
    if (m->lm_head != m->tok_emb) fn(ctx, "lm_head.weight", m->lm_head, V, d);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        long q = (long)L->n_heads * L->head_dim, kv = (long)L->n_kv_heads * L->head_dim, f = L->ffn_dim;
        const struct { const char *sfx; const float *w; long rows, cols; } t[] = {
            {"input_layernorm.weight", L->attn_norm, 1, d},  {"self_attn.q_proj.weight", L->wq, q, d},
            {"self_attn.k_proj.weight", L->wk, kv, d},       {"self_attn.v_proj.weight", L->wv, kv, d},
            {"self_attn.o_proj.weight", L->wo, d, q},        {"self_attn.q_proj.bias", L->bq, 1, q},
            {"self_attn.k_proj.bias", L->bk, 1, kv},         {"self_attn.v_proj.bias", L->bv, 1, kv},
            {"self_attn.o_proj.bias", L->bo, 1, d},          {"post_attention_layernorm.weight", L->mlp_norm, 1, d},
            {"mlp.gate_proj.weight", L->w_gate, f, d},       {"mlp.up_proj.weight", L->w_up, f, d},
            {"mlp.down_proj.weight", L->w_down, d, f},       {"mlp.gate_proj.bias", L->b_gate, 1, f},
            {"mlp.up_proj.bias", L->b_up, 1, f},             {"mlp.down_proj.bias", L->b_down, 1, d},
        };
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            char name[256];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, t[i].sfx);
            fn(ctx, name, t[i].w, t[i].rows, t[i].cols);
        }
    }
}

typedef struct {
    const pb_model *m;
    cJSON *tensors;
    int total, mapped;
} describe_ctx;

static void describe_tensor(void *ctx, const char *name, const float *w, long rows, long cols) {
    describe_ctx *c = ctx;
    if (!w) return;
    bool mapped = pb_test_in_maps(c->m, w, (size_t)(rows * cols));
    cJSON *t = cJSON_AddObjectToObject(c->tensors, name);
    cJSON *shape = cJSON_AddArrayToObject(t, "shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)rows));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)cols));
    cJSON_AddBoolToObject(t, "mapped", mapped);
    c->total++;
    c->mapped += mapped;
}

/* Adds numbers to a JSON object: ADD_NUMBERS(obj, {"key", value}, ...). */
typedef struct {
    const char *key;
    double value;
} num_field;
#define ADD_NUMBERS(obj, ...) do { cJSON *o_ = (obj); const num_field f_[] = {__VA_ARGS__}; \
    for (size_t i_ = 0; i_ < sizeof f_ / sizeof f_[0]; i_++) cJSON_AddNumberToObject(o_, f_[i_].key, f_[i_].value); \
    } while (0)

static cJSON *info(const pb_model *m, const pb_tokenizer *tok) {
    const pb_config *c = &m->cfg;
    const pb_rope_scaling *r = &c->rope_scaling;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", m->format);
    cJSON_AddStringToObject(o, "arch", c->arch);
    ADD_NUMBERS(o, {"dim", c->dim}, {"n_layers", c->n_layers}, {"vocab_size", c->vocab_size},
                {"max_seq_len", c->max_seq_len}, {"norm_eps", c->norm_eps}, {"rope_theta", c->rope_theta},
                {"bos_id", c->bos_id}, {"eos_id", c->eos_id}, {"n_heads", c->n_heads}, {"n_kv_heads", c->n_kv_heads},
                {"head_dim", c->head_dim}, {"ffn_dim", c->ffn_dim}, {"n_maps", m->n_maps},
                {"params", (double)pb_model_params(m)});
    ADD_NUMBERS(cJSON_AddObjectToObject(o, "rope_scaling"), {"type", r->type}, {"factor", r->factor},
                {"low_freq_factor", r->low_freq_factor}, {"high_freq_factor", r->high_freq_factor},
                {"original_max_position", r->original_max_position});
    cJSON_AddBoolToObject(o, "tied", c->tied_embeddings);
    cJSON_AddBoolToObject(o, "lm_head_is_tok_emb", m->lm_head == m->tok_emb);
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int l = 0; l < c->n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        cJSON *e = cJSON_CreateObject();
        ADD_NUMBERS(e, {"n_heads", L->n_heads}, {"n_kv_heads", L->n_kv_heads}, {"head_dim", L->head_dim},
                    {"ffn_dim", L->ffn_dim});
        cJSON_AddBoolToObject(e, "attn", L->has_attn);
        cJSON_AddBoolToObject(e, "mlp", L->has_mlp);
        const char *bn[] = {"q", "k", "v", "o", "gate", "up", "down"};
        const float *bp[] = {L->bq, L->bk, L->bv, L->bo, L->b_gate, L->b_up, L->b_down};
        cJSON *b = cJSON_AddArrayToObject(e, "bias");
        for (int k = 0; k < 7; k++)
            if (bp[k]) cJSON_AddItemToArray(b, cJSON_CreateString(bn[k]));
        cJSON_AddItemToArray(layers, e);
    }
    describe_ctx dc = {m, cJSON_AddObjectToObject(o, "tensors"), 0, 0};
    for_each_tensor(m, describe_tensor, &dc);
    cJSON_AddNumberToObject(o, "n_tensors", dc.total);
    cJSON_AddNumberToObject(o, "n_mapped_tensors", dc.mapped);
    if (tok) {
        cJSON *t = cJSON_AddObjectToObject(o, "tokenizer");
        ADD_NUMBERS(t, {"vocab_size", pb_tok_vocab_size(tok)}, {"bos", pb_tok_bos(tok)}, {"eos", pb_tok_eos(tok)});
        cJSON_AddStringToObject(t, "kind", pb_tok_kind_of(tok) == PB_TOK_SPM ? "spm" : "bytelevel");
    }
    return o;
}

/* "pb_dump: error: ..." on stderr; returns 1. */
__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pb_dump: error: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* Writes text to path, or fails naming it. */
static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    bool ok = f && text && fputs(text, f) >= 0;
    if (f && fclose(f) != 0) ok = false;
    return ok ? 0 : fail("cannot write %s", path);
}

typedef struct {
    const char *dir;
    int rc;
} raw_ctx;

static void write_raw(void *ctx, const char *name, const float *w, long rows, long cols) {
    raw_ctx *c = ctx;
    if (!w) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.f32", c->dir, name);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(w, sizeof(float), (size_t)(rows * cols), f) == (size_t)(rows * cols);
    if (f && fclose(f) != 0) ok = false;
    if (!ok) c->rc = fail("cannot write %s", path);
}

/* DIR/model.json and DIR/<name>.f32 per tensor. */
static int dump_tensors(const pb_model *m, const char *json, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.json", dir);
    raw_ctx rc = {dir, write_text(path, json)};
    for_each_tensor(m, write_raw, &rc);
    return rc.rc;
}

/* Reads "B T" and B*T ids; NULL (after saying why) when the file is not that. */
static int32_t *read_ids(const char *path, int *B, int *T) {
    FILE *f = fopen(path, "r");
    int32_t *ids = NULL;
    if (!f) {
        fail("cannot open %s", path);
        return NULL;
    }
    if (fscanf(f, "%d %d", B, T) != 2 || *B <= 0 || *T <= 0 || *B > 1024 || *T > 65536) {
        fail("%s: bad ids header", path);
    } else if (!(ids = malloc(sizeof(int32_t) * (size_t)*B * *T))) {
        fail("out of memory reading %s", path);
    } else {
        for (int i = 0; i < *B * *T; i++)
            if (fscanf(f, "%d", &ids[i]) != 1) {
                fail("%s: ids file too short", path);
                free(ids);
                ids = NULL;
                break;
            }
    }
    fclose(f);
    return ids;
}

/* Logits of the sequences in ids_path, in one batched forward or (decode) token by token
 * through the KV cache, written raw to out_path. */
static int dump_logits(pb_model *m, const char *ids_path, const char *out_path, bool decode) {
    int B, T;
    int32_t *ids = read_ids(ids_path, &B, &T);
    if (!ids) return 1;
    pb_err err = {0};
    size_t V = (size_t)m->cfg.vocab_size, n = (size_t)B * T * V;
    float *lg = malloc(sizeof(float) * n), *step = malloc(sizeof(float) * (size_t)B * V);
    int32_t *col = malloc(sizeof(int32_t) * (size_t)B);
    pb_fwd_state *st = pb_fwd_state_new();
    pb_kvcache *c = NULL;
    int rc = 1;
    if (!lg || !step || !col || !st) {
        fail("out of memory");
    } else if (!decode) {
        rc = pb_model_forward(m, st, ids, B, T, NULL, lg, false, &err) != 0;
    } else if (pb_kvcache_create(&c, m, B, T, &err) == 0) {
        rc = 0;
        for (int t = 0; t < T && !rc; t++) {
            for (int b = 0; b < B; b++) col[b] = ids[b * T + t];
            rc = pb_model_forward(m, st, col, B, 1, c, step, false, &err) != 0;
            for (int b = 0; b < B && !rc; b++)
                memcpy(lg + ((size_t)b * T + t) * V, step + (size_t)b * V, sizeof(float) * V);
        }
    }
    if (rc && err.msg[0]) fail("%s", err.msg);
    if (!rc) {
        FILE *o = fopen(out_path, "wb");
        bool ok = o && fwrite(lg, sizeof(float), n, o) == n;
        if (o && fclose(o) != 0) ok = false;
        if (!ok) rc = fail("cannot write %s", out_path);
    }
    pb_kvcache_free(c);
    pb_fwd_state_free(st);
    free(col);
    free(step);
    free(lg);
    free(ids);
    return rc;
}

static int usage(void) {
    fprintf(stderr, "usage: pb_dump [--tok] [--tokenizer PATH] [--threads N] [--info] [--tensors DIR]\n"
                    "               [--save DIR [--dtype f32|f16|bf16] [--max-shard-bytes N]]\n"
                    "               [--device cpu|cuda [--dtype f32|f16|bf16]]\n"
                    "               [--logits IDS_FILE OUT_FILE]... [--decode] [--lora DIR] MODEL\n");
    return 2;
}

/* Replaces host model *m by its copy on device (dtype NULL: the backend's default); the CPU
 * backend keeps the host model, as the CLI's --device does. */
static int to_device(pb_model **m, const char *device, const char *dtype) {
    pb_err err = {0};
    const pb_ops *ops = pb_ops_get(device, dtype, &err);
    if (!ops) return fail("%s", err.msg);
    if (ops == pb_ops_cpu()) return 0;
    pb_model *dm = NULL;
    if (pb_model_to_backend(*m, ops, &dm, &err) != 0) return fail("%s", err.msg);
    pb_model_free(*m);
    *m = dm;
    return 0;
}

enum { MAX_LOGITS = 16 };

int main(int argc, char **argv) {
    const char *model = NULL, *tensors_dir = NULL, *save_dir = NULL, *ids_path[MAX_LOGITS], *logits_path[MAX_LOGITS];
    const char *lora_dir = NULL, *device = NULL, *dtype = NULL;
    int n_logits = 0;
    bool want_tok = false, want_info = false, decode = false;
    pb_load_opts opts = {0};
    pb_save_opts so = {PB_DTYPE_F32, NULL, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (!strcmp(a, "--tok")) want_tok = true;
        else if (!strcmp(a, "--tokenizer") && more) opts.tokenizer_path = argv[++i], want_tok = true;
        else if (!strcmp(a, "--threads") && more) pb_set_threads(atoi(argv[++i]));
        else if (!strcmp(a, "--info")) want_info = true;
        else if (!strcmp(a, "--tensors") && more) tensors_dir = argv[++i];
        else if (!strcmp(a, "--save") && more) save_dir = argv[++i];
        else if (!strcmp(a, "--dtype") && more) {
            const char *d = argv[++i];
            if (!strcmp(d, "f32")) so.dtype = PB_DTYPE_F32;
            else if (!strcmp(d, "f16")) so.dtype = PB_DTYPE_F16;
            else if (!strcmp(d, "bf16")) so.dtype = PB_DTYPE_BF16;
            else return usage();
            dtype = d;
        } else if (!strcmp(a, "--device") && more) device = argv[++i];
        else if (!strcmp(a, "--max-shard-bytes") && more) so.max_shard_bytes = (size_t)strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--logits") && i + 2 < argc && n_logits < MAX_LOGITS) {
            ids_path[n_logits] = argv[i + 1], logits_path[n_logits] = argv[i + 2];
            n_logits++, i += 2;
        } else if (!strcmp(a, "--decode")) decode = true;
        else if (!strcmp(a, "--lora") && more) lora_dir = argv[++i];
        else if (a[0] != '-' && !model) model = a;
        else return usage();
    }
    if (!model) return usage();

    pb_err err = {0};
    pb_model *m = NULL;
    pb_tokenizer *tok = NULL;
    if (pb_model_load(model, &opts, &m, want_tok ? &tok : NULL, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (lora_dir) {
        if (pb_lora_load(&m->lora, m, lora_dir, false, &err) != 0) rc = fail("%s", err.msg);
        m->owns_lora = true;
    }
    if (!rc && (want_info || tensors_dir)) {
        cJSON *o = info(m, tok);
        char *s = cJSON_Print(o);
        if (!s) rc = fail("out of memory");
        if (s && want_info) puts(s);
        if (s && tensors_dir) rc |= dump_tensors(m, s, tensors_dir);
        free(s);
        cJSON_Delete(o);
    }
    if (!rc && save_dir && pb_hf_save(m, save_dir, &so, &err) != 0) rc = fail("%s", err.msg);
    if (!rc && device && n_logits) rc = to_device(&m, device, dtype);
    for (int k = 0; k < n_logits && !rc; k++) rc = dump_logits(m, ids_path[k], logits_path[k], decode);
    if (tok) pb_tok_free(tok);
    pb_model_free(m);
    return rc;
}
