/* gguf_vocab.c — the tokenizer embedded in GGUF metadata (tokenizer.ggml.*) as a
 * pb_tok_vocab_spec for pb_tok_from_vocab.
 *
 * Token strings are handed over as (pointer into the map, length) pairs, since GGUF strings
 * are not NUL-terminated; every array is checked to hold one entry per token first. */
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pb_gguf_special_id(const pb_gguf *g, const char *name, int vocab_size, pb_err *err, int *id) {
    char key[64];
    snprintf(key, sizeof key, "tokenizer.ggml.%s_token_id", name);
    int64_t v = -1;
    /* converters write 0xffffffff (or an id past the vocabulary) for "none", as llama.cpp
     * tolerates; treat those as absent */
    if (pb_gguf_get_int(g, key, INT64_MIN, INT64_MAX, &v, err) < 0) return -1;
    *id = v >= 0 && v < vocab_size ? (int)v : -1;
    return 0;
}

/* An optional bool as -1 (absent), 0 or 1. */
static int tri_bool(const pb_gguf *g, const char *key, int *out, pb_err *err) {
    bool b;
    int rc = pb_gguf_get_bool(g, key, &b, err);
    if (rc < 0) return -1;
    *out = rc ? (int)b : -1;
    return 0;
}

/* A NUL-terminated copy of an optional string key (NULL when absent). */
static int str_copy(const pb_gguf *g, const char *key, char **out, pb_err *err) {
    const char *s;
    size_t n;
    *out = NULL;
    int rc = pb_gguf_get_str(g, key, &s, &n, err);
    if (rc <= 0) return rc;
    *out = malloc(n + 1);
    PB_CHECK_ALLOC(*out, err);
    memcpy(*out, s, n);
    (*out)[n] = 0;
    return 0;
}

/* A numeric array with exactly n entries, or absent. */
static const pb_gguf_kv *num_array(const pb_gguf *g, const char *key, int n, pb_err *err, int *rc) {
    const pb_gguf_kv *kv = pb_gguf_find(g, key);
    *rc = 0;
    if (!kv) return NULL;
    uint32_t et = kv->elem_type;
    bool numeric = pb_gguf_vtype_is_int(et) || et == PB_GGUF_F32 || et == PB_GGUF_F64;
    if (kv->type != PB_GGUF_ARRAY || !numeric || kv->count != (uint64_t)n) {
        *rc = pb_err_set(err, "%s: metadata %s is %s of %llu %s, expected an array of %d numbers (one per token)",
                         g->path, key, kv->type == PB_GGUF_ARRAY ? "an array" : pb_gguf_vtype_name(kv->type),
                         (unsigned long long)kv->count, pb_gguf_vtype_name(et), n);
        return NULL;
    }
    return kv;
}

typedef struct {
    char *model, *pre;
    const char **tokens, **merges;
    int *token_lens, *merge_lens;
    float *scores;
    int32_t *types;
    char **merge_z; /* NUL-terminated merges (the spec has no lengths for them) */
    int n_merges;
} vocab_bufs;

static void free_bufs(vocab_bufs *b) {
    free(b->model);
    free(b->pre);
    free(b->tokens);
    free(b->token_lens);
    free(b->merges);
    free(b->merge_lens);
    free(b->scores);
    free(b->types);
    if (b->merge_z)
        for (int i = 0; i < b->n_merges; i++) free(b->merge_z[i]);
    free(b->merge_z);
}

static int build(const pb_gguf *g, vocab_bufs *b, pb_tokenizer **tok, pb_err *err) {
    PB_TRY(str_copy(g, "tokenizer.ggml.model", &b->model, err));
    if (!b->model || !strcmp(b->model, "none") || !strcmp(b->model, "no_vocab")) return 0;
    if (strcmp(b->model, "llama") != 0 && strcmp(b->model, "gpt2") != 0)
        return pb_err_set(err, "%s: tokenizer.ggml.model '%.64s' is not supported (llama or gpt2)", g->path, b->model);
    PB_TRY(str_copy(g, "tokenizer.ggml.pre", &b->pre, err));
    const pb_gguf_kv *kv = pb_gguf_find(g, "tokenizer.ggml.tokens");
    if (!kv) return pb_err_set(err, "%s: metadata tokenizer.ggml.tokens is missing", g->path);
    PB_TRY(pb_gguf_arr_strings(g, kv, &b->tokens, &b->token_lens, err));
    if (kv->count == 0) return pb_err_set(err, "%s: metadata tokenizer.ggml.tokens is empty", g->path);
    int n = (int)kv->count, rc;

    pb_tok_vocab_spec spec = {.model = b->model, .pre = b->pre, .n_tokens = n, .tokens = b->tokens,
                              .token_lens = b->token_lens};
    const pb_gguf_kv *sc = num_array(g, "tokenizer.ggml.scores", n, err, &rc);
    if (rc) return -1;
    if (sc) {
        b->scores = malloc((size_t)n * sizeof *b->scores);
        PB_CHECK_ALLOC(b->scores, err);
        for (int i = 0; i < n; i++) b->scores[i] = (float)pb_gguf_arr_float(sc, (uint64_t)i);
        spec.scores = b->scores;
    }
    const pb_gguf_kv *ty = num_array(g, "tokenizer.ggml.token_type", n, err, &rc);
    if (rc) return -1;
    if (ty) {
        b->types = malloc((size_t)n * sizeof *b->types);
        PB_CHECK_ALLOC(b->types, err);
        for (int i = 0; i < n; i++) {
            int64_t t = pb_gguf_arr_int(ty, (uint64_t)i);
            if (t < 0 || t > PB_TOKT_BYTE)
                return pb_err_set(err, "%s: metadata tokenizer.ggml.token_type[%d] = %lld is not a token type", g->path,
                                  i, (long long)t);
            b->types[i] = (int32_t)t;
        }
        spec.types = b->types;
    }
    if ((kv = pb_gguf_find(g, "tokenizer.ggml.merges"))) {
        PB_TRY(pb_gguf_arr_strings(g, kv, &b->merges, &b->merge_lens, err));
        b->n_merges = (int)kv->count;
        b->merge_z = calloc((size_t)(b->n_merges ? b->n_merges : 1), sizeof *b->merge_z);
        PB_CHECK_ALLOC(b->merge_z, err);
        for (int i = 0; i < b->n_merges; i++) {
            b->merge_z[i] = malloc((size_t)b->merge_lens[i] + 1);
            PB_CHECK_ALLOC(b->merge_z[i], err);
            memcpy(b->merge_z[i], b->merges[i], (size_t)b->merge_lens[i]);
            b->merge_z[i][b->merge_lens[i]] = 0;
        }
        spec.n_merges = b->n_merges;
        spec.merges = (const char *const *)b->merge_z;
    }
    PB_TRY(pb_gguf_special_id(g, "bos", n, err, &spec.bos_id));
    PB_TRY(pb_gguf_special_id(g, "eos", n, err, &spec.eos_id));
    PB_TRY(pb_gguf_special_id(g, "unknown", n, err, &spec.unk_id));
    PB_TRY(tri_bool(g, "tokenizer.ggml.add_bos_token", &spec.add_bos, err));
    PB_TRY(tri_bool(g, "tokenizer.ggml.add_space_prefix", &spec.add_space_prefix, err));
    if (pb_tok_from_vocab(&spec, tok, err) != 0) return pb_err_prefix(err, "%s: embedded tokenizer: ", g->path);
    return 0;
}

int pb_gguf_tokenizer(const pb_gguf *g, pb_tokenizer **tok, pb_err *err) {
    vocab_bufs b = {0};
    *tok = NULL;
    int rc = build(g, &b, tok, err);
    free_bufs(&b);
    return rc;
}
