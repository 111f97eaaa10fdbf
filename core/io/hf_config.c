/* hf_config.c — config.json (LlamaConfig keys + "prunebench_layers") -> pb_config and
 * per-layer shapes.
 *
 * Defaults follow transformers' LlamaConfig where a key may be absent. Every wrong type,
 * missing required key or impossible value is one error naming the file and the key. */
#include "hf_internal.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const pb_hf_bias_names[PB_HF_N_BIAS] = {"q", "k", "v", "o", "gate", "up", "down"};

/* Generous bounds that keep every shape product far from int overflow. */
#define PB_HF_MAX_DIM (1 << 28)
#define PB_HF_MAX_COUNT (1 << 20)

typedef struct {
    const char *path;
    const char *where;   /* "" at top level, "prunebench_layers[3]." inside a layer entry */
    pb_err *err;
} cfg_ctx;

static bool absent(const cJSON *j) { return j == NULL || cJSON_IsNull(j); }

/* Integer key in [lo, hi]; absent/null gives def when !required. */
static int get_int(const cfg_ctx *c, const cJSON *obj, const char *key, bool required, int def, int lo, int hi,
                   int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (absent(j)) {
        if (required) return pb_err_set(c->err, "%s: missing required key \"%s%s\"", c->path, c->where, key);
        *out = def;
        return 0;
    }
    double v = j->valuedouble;
    if (!cJSON_IsNumber(j) || !isfinite(v) || v != floor(v))
        return pb_err_set(c->err, "%s: key \"%s%s\" must be an integer", c->path, c->where, key);
    if (v < lo || v > hi)
        return pb_err_set(c->err, "%s: key \"%s%s\" = %.17g is out of range [%d, %d]", c->path, c->where, key, v, lo, hi);
    *out = (int)v;
    return 0;
}

/* Positive finite number; absent/null gives def when !required. */
static int get_pos_float(const cfg_ctx *c, const cJSON *obj, const char *key, bool required, float def, float *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (absent(j)) {
        if (required) return pb_err_set(c->err, "%s: missing required key \"%s%s\"", c->path, c->where, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(j)) return pb_err_set(c->err, "%s: key \"%s%s\" must be a number", c->path, c->where, key);
    double d = j->valuedouble;
    /* range-check as a double first: converting an out-of-range double to float is undefined */
    float v = d > 0 && d <= FLT_MAX ? (float)d : 0.0f;
    if (!(v > 0))
        return pb_err_set(c->err, "%s: key \"%s%s\" = %g must be a positive number", c->path, c->where, key,
                          j->valuedouble);
    *out = v;
    return 0;
}

static int get_bool(const cfg_ctx *c, const cJSON *obj, const char *key, bool def, bool *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (absent(j)) { *out = def; return 0; }
    if (!cJSON_IsBool(j)) return pb_err_set(c->err, "%s: key \"%s%s\" must be true or false", c->path, c->where, key);
    *out = cJSON_IsTrue(j);
    return 0;
}

/* bos/eos: an int, a list of ints (the first is used), or null (unknown). */
static int get_token_id(const cfg_ctx *c, const cJSON *obj, const char *key, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = -1;
    if (cJSON_IsArray(j)) {
        j = cJSON_GetArrayItem(j, 0);
        if (!j) return 0;
    }
    if (absent(j)) return 0;
    double v = j->valuedouble;
    if (!cJSON_IsNumber(j) || !(v >= 0 && v <= INT32_MAX) || v != floor(v))
        return pb_err_set(c->err, "%s: key \"%s\" must be a non-negative integer, a list of them, or null", c->path, key);
    *out = (int)v;
    return 0;
}

static int parse_rope_scaling(const cfg_ctx *c, const cJSON *root, pb_rope_scaling *rs) {
    memset(rs, 0, sizeof *rs);
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (absent(j)) return 0;
    if (!cJSON_IsObject(j)) return pb_err_set(c->err, "%s: key \"rope_scaling\" must be an object or null", c->path);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "rope_type");
    if (absent(t)) t = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsString(t))
        return pb_err_set(c->err, "%s: key \"rope_scaling\" needs a string \"rope_type\" (or \"type\")", c->path);
    cfg_ctx sub = {c->path, "rope_scaling.", c->err};
    if (!strcmp(t->valuestring, "default")) return 0;
    if (!strcmp(t->valuestring, "linear")) {
        rs->type = PB_ROPE_LINEAR;
        return get_pos_float(&sub, j, "factor", true, 0, &rs->factor);
    }
    if (!strcmp(t->valuestring, "llama3")) {
        rs->type = PB_ROPE_LLAMA3;
        PB_TRY(get_pos_float(&sub, j, "factor", true, 0, &rs->factor));
        PB_TRY(get_pos_float(&sub, j, "low_freq_factor", true, 0, &rs->low_freq_factor));
        PB_TRY(get_pos_float(&sub, j, "high_freq_factor", true, 0, &rs->high_freq_factor));
        PB_TRY(get_int(&sub, j, "original_max_position_embeddings", true, 0, 1, INT32_MAX, &rs->original_max_position));
        /* the llama3 ramp divides by (high - low) */
        if (!(rs->high_freq_factor > rs->low_freq_factor))
            return pb_err_set(c->err, "%s: key \"rope_scaling\": high_freq_factor %g must exceed low_freq_factor %g",
                              c->path, (double)rs->high_freq_factor, (double)rs->low_freq_factor);
        return 0;
    }
    return pb_err_set(c->err, "%s: key \"rope_scaling\": unsupported rope_type \"%.64s\" (supported: llama3, linear)",
                      c->path, t->valuestring);
}

/* Checks one layer's attention shape; l < 0 for the global keys. */
static int check_attn_shape(const cfg_ctx *c, const pb_hf_layer_shape *s) {
    if (s->n_heads % s->n_kv_heads)
        return pb_err_set(c->err, "%s: %snum_attention_heads %d is not a multiple of num_key_value_heads %d", c->path,
                          c->where, s->n_heads, s->n_kv_heads);
    if (s->head_dim & 1)
        return pb_err_set(c->err, "%s: %shead_dim %d must be even (RoPE rotates pairs)", c->path, c->where, s->head_dim);
    if ((int64_t)s->n_heads * s->head_dim > PB_HF_MAX_DIM)
        return pb_err_set(c->err, "%s: %sheads x head_dim is too large", c->path, c->where);
    return 0;
}

static int parse_layer(const cfg_ctx *top, const cJSON *e, int l, const pb_hf_layer_shape *def, pb_hf_layer_shape *s) {
    char where[64];
    snprintf(where, sizeof where, "prunebench_layers[%d].", l);
    cfg_ctx c = {top->path, where, top->err};
    if (!cJSON_IsObject(e)) return pb_err_set(c.err, "%s: key \"prunebench_layers[%d]\" must be an object", c.path, l);
    PB_TRY(get_bool(&c, e, "attn", true, &s->attn));
    PB_TRY(get_bool(&c, e, "mlp", true, &s->mlp));
    PB_TRY(get_int(&c, e, "n_heads", false, s->attn ? def->n_heads : 0, 0, PB_HF_MAX_COUNT, &s->n_heads));
    PB_TRY(get_int(&c, e, "n_kv_heads", false, s->attn ? def->n_kv_heads : 0, 0, PB_HF_MAX_COUNT, &s->n_kv_heads));
    PB_TRY(get_int(&c, e, "head_dim", false, def->head_dim, 0, PB_HF_MAX_COUNT, &s->head_dim));
    PB_TRY(get_int(&c, e, "ffn_dim", false, s->mlp ? def->ffn_dim : 0, 0, PB_HF_MAX_DIM, &s->ffn_dim));
    if (s->attn) {
        if (s->n_heads < 1 || s->n_kv_heads < 1 || s->head_dim < 2)
            return pb_err_set(c.err, "%s: key \"%sn_heads\": a layer with attention needs n_heads, n_kv_heads >= 1 and "
                              "head_dim >= 2", c.path, where);
        PB_TRY(check_attn_shape(&c, s));
    } else if (s->n_heads != 0 || s->n_kv_heads != 0) {
        return pb_err_set(c.err, "%s: key \"%sn_heads\" must be 0 when \"attn\" is false", c.path, where);
    }
    if (s->mlp && s->ffn_dim < 1)
        return pb_err_set(c.err, "%s: key \"%sffn_dim\" must be >= 1 when \"mlp\" is true", c.path, where);
    if (!s->mlp && s->ffn_dim != 0)
        return pb_err_set(c.err, "%s: key \"%sffn_dim\" must be 0 when \"mlp\" is false", c.path, where);

    const cJSON *b = cJSON_GetObjectItemCaseSensitive(e, "bias");
    if (absent(b)) {
        s->bias = def->bias & ((s->attn ? PB_HF_BIAS_ATTN : 0) | (s->mlp ? PB_HF_BIAS_MLP : 0));
        return 0;
    }
    if (!cJSON_IsArray(b)) return pb_err_set(c.err, "%s: key \"%sbias\" must be a list of names", c.path, where);
    s->bias = 0;
    for (const cJSON *x = b->child; x; x = x->next) {
        int k = PB_HF_N_BIAS;
        if (cJSON_IsString(x))
            for (k = 0; k < PB_HF_N_BIAS && strcmp(x->valuestring, pb_hf_bias_names[k]); k++) {}
        if (k == PB_HF_N_BIAS)
            return pb_err_set(c.err, "%s: key \"%sbias\": entries must be among q, k, v, o, gate, up, down", c.path, where);
        unsigned bit = 1u << k;
        if ((bit & PB_HF_BIAS_ATTN && !s->attn) || (bit & PB_HF_BIAS_MLP && !s->mlp))
            return pb_err_set(c.err, "%s: key \"%sbias\": \"%s\" bias on a layer without that sublayer", c.path, where,
                              pb_hf_bias_names[k]);
        s->bias |= bit;
    }
    return 0;
}

static int parse_root(const cfg_ctx *c, const cJSON *root, pb_hf_config *out) {
    pb_config *cfg = &out->cfg;
    if (!cJSON_IsObject(root)) return pb_err_set(c->err, "%s: not a JSON object", c->path);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (absent(mt)) return pb_err_set(c->err, "%s: missing required key \"model_type\"", c->path);
    if (!cJSON_IsString(mt)) return pb_err_set(c->err, "%s: key \"model_type\" must be a string", c->path);
    if (strcmp(mt->valuestring, "llama") && strcmp(mt->valuestring, "mistral"))
        return pb_err_set(c->err, "%s: key \"model_type\": unsupported model type \"%.64s\" (supported: llama, mistral)",
                          c->path, mt->valuestring);
    snprintf(cfg->arch, sizeof cfg->arch, "%s", mt->valuestring);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (!absent(act) && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu")))
        return pb_err_set(c->err, "%s: key \"hidden_act\": only \"silu\" is supported", c->path);

    PB_TRY(get_int(c, root, "hidden_size", true, 0, 1, PB_HF_MAX_DIM, &cfg->dim));
    PB_TRY(get_int(c, root, "num_hidden_layers", true, 0, 0, PB_HF_MAX_COUNT, &cfg->n_layers));
    PB_TRY(get_int(c, root, "num_attention_heads", true, 0, 1, PB_HF_MAX_COUNT, &cfg->n_heads));
    PB_TRY(get_int(c, root, "num_key_value_heads", false, cfg->n_heads, 1, PB_HF_MAX_COUNT, &cfg->n_kv_heads));
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    if (absent(hd) && cfg->dim % cfg->n_heads)
        return pb_err_set(c->err, "%s: key \"hidden_size\" %d is not a multiple of num_attention_heads %d (and no "
                          "head_dim is given)", c->path, cfg->dim, cfg->n_heads);
    PB_TRY(get_int(c, root, "head_dim", false, cfg->dim / cfg->n_heads, 2, PB_HF_MAX_COUNT, &cfg->head_dim));
    PB_TRY(get_int(c, root, "intermediate_size", true, 0, 1, PB_HF_MAX_DIM, &cfg->ffn_dim));
    PB_TRY(get_int(c, root, "vocab_size", true, 0, 1, PB_HF_MAX_DIM, &cfg->vocab_size));
    PB_TRY(get_int(c, root, "max_position_embeddings", false, 2048, 1, INT32_MAX, &cfg->max_seq_len));
    PB_TRY(get_pos_float(c, root, "rms_norm_eps", false, 1e-6f, &cfg->norm_eps));
    PB_TRY(get_pos_float(c, root, "rope_theta", false, 10000.0f, &cfg->rope_theta));
    PB_TRY(parse_rope_scaling(c, root, &cfg->rope_scaling));
    PB_TRY(get_bool(c, root, "tie_word_embeddings", false, &cfg->tied_embeddings));
    PB_TRY(get_token_id(c, root, "bos_token_id", &cfg->bos_id));
    PB_TRY(get_token_id(c, root, "eos_token_id", &cfg->eos_id));
    bool attn_bias, mlp_bias;
    PB_TRY(get_bool(c, root, "attention_bias", false, &attn_bias));
    PB_TRY(get_bool(c, root, "mlp_bias", false, &mlp_bias));

    pb_hf_layer_shape def = {cfg->n_heads, cfg->n_kv_heads, cfg->head_dim, cfg->ffn_dim, true, true,
                             (attn_bias ? PB_HF_BIAS_ATTN : 0u) | (mlp_bias ? PB_HF_BIAS_MLP : 0u)};
    PB_TRY(check_attn_shape(c, &def));

    if (!strcmp(cfg->arch, "mistral")) {
        int sw = 0;
        PB_TRY(get_int(c, root, "sliding_window", false, 0, 0, INT32_MAX, &sw));
        if (sw > 0 && sw < cfg->max_seq_len)
            pb_log(PB_LOG_WARN, "%s: sliding_window %d is not implemented; attention is exact only up to %d tokens",
                   c->path, sw, sw);
    }

    out->layers = pb_calloc((size_t)(cfg->n_layers ? cfg->n_layers : 1), sizeof *out->layers);
    PB_CHECK_ALLOC(out->layers, c->err);
    const cJSON *pl = cJSON_GetObjectItemCaseSensitive(root, "prunebench_layers");
    if (absent(pl)) {
        for (int l = 0; l < cfg->n_layers; l++) out->layers[l] = def;
        return 0;
    }
    if (!cJSON_IsArray(pl)) return pb_err_set(c->err, "%s: key \"prunebench_layers\" must be a list", c->path);
    if (cJSON_GetArraySize(pl) != cfg->n_layers)
        return pb_err_set(c->err, "%s: key \"prunebench_layers\" has %d entries but num_hidden_layers is %d", c->path,
                          cJSON_GetArraySize(pl), cfg->n_layers);
    int l = 0;
    for (const cJSON *e = pl->child; e; e = e->next, l++) PB_TRY(parse_layer(c, e, l, &def, &out->layers[l]));
    return 0;
}

int pb_hf_config_parse(const char *path, const char *text, size_t len, pb_hf_config *out, pb_err *err) {
    memset(out, 0, sizeof *out);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        /* report a line number: config files are edited by hand */
        int line = 1, col = 1;
        for (const char *p = text; end && p < end && p < text + len; p++) {
            col = *p == '\n' ? 1 : col + 1;
            line += *p == '\n';
        }
        return pb_err_set(err, "%s:%d:%d: malformed JSON", path, line, col);
    }
    for (const char *p = end; p < text + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return pb_err_set(err, "%s: malformed JSON (trailing text after the object)", path);
        }
    cfg_ctx c = {path, "", err};
    int rc = parse_root(&c, root, out);
    cJSON_Delete(root);
    if (rc != 0) pb_hf_config_free(out);
    return rc;
}

void pb_hf_config_free(pb_hf_config *c) {
    free(c->layers);
    c->layers = NULL;
}

unsigned pb_hf_layer_bias(const pb_layer *L) {
    unsigned b = 0;
    if (L->has_attn) {
        if (L->bq) b |= PB_HF_BIAS_Q;
        if (L->bk) b |= PB_HF_BIAS_K;
        if (L->bv) b |= PB_HF_BIAS_V;
        if (L->bo) b |= PB_HF_BIAS_O;
    }
    if (L->has_mlp) {
        if (L->b_gate) b |= PB_HF_BIAS_GATE;
        if (L->b_up) b |= PB_HF_BIAS_UP;
        if (L->b_down) b |= PB_HF_BIAS_DOWN;
    }
    return b;
}
