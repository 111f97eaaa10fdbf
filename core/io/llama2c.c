/* llama2c.c — reader for llama2.c checkpoints (.bin): the legacy v0 layout and export.py's
 * version 1 (fp32 with a 256-byte "ak42" header). Version 2 (int8) is refused.
 *
 * The file is mapped privately (copy-on-write) and the weights point into the map; only the
 * q/k rows, stored in Meta's interleaved RoPE order, are reordered in place (the private
 * mapping keeps the file itself untouched). Sizes are computed in 64 bits with overflow
 * checks and must equal the file size exactly, so a lying header cannot send a pointer out
 * of the map. */
#include "load.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LLAMA2C_MAGIC 0x616b3432u /* "ak42" */
#define V1_HEADER_BYTES 256

typedef struct {
    int32_t dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len;
    int version;      /* 0 (legacy) or 1 */
    bool shared;      /* classifier == token embedding */
    size_t offset;    /* where the weights start */
} l2c_header;

static int read_header(const pb_mmap *map, const char *path, l2c_header *h, pb_err *err) {
    memset(h, 0, sizeof *h);
    if (map->size < 7 * sizeof(int32_t))
        return pb_err_set(err, "%s: too small for a llama2.c header (%zu bytes)", path, map->size);
    uint32_t magic;
    memcpy(&magic, map->data, sizeof magic);
    int32_t hv[7];
    if (magic == LLAMA2C_MAGIC) {
        int32_t version;
        if (map->size < V1_HEADER_BYTES)
            return pb_err_set(err, "%s: truncated llama2.c header: %zu bytes, expected at least %d", path, map->size,
                              V1_HEADER_BYTES);
        memcpy(&version, map->data + 4, sizeof version);
        if (version == 2)
            return pb_err_set(err, "%s: llama2.c version 2 (int8-quantized) files are not supported; export with "
                              "--version 1 (fp32)", path);
        if (version != 1) return pb_err_set(err, "%s: unknown llama2.c file version %d", path, (int)version);
        memcpy(hv, map->data + 8, sizeof hv);
        h->version = 1;
        h->shared = map->data[8 + sizeof hv] != 0;
        h->offset = V1_HEADER_BYTES;
    } else {
        memcpy(hv, map->data, sizeof hv);
        h->version = 0;
        h->offset = sizeof hv;
    }
    h->dim = hv[0], h->hidden = hv[1], h->n_layers = hv[2], h->n_heads = hv[3], h->n_kv = hv[4];
    h->vocab = hv[5], h->seq_len = hv[6];
    if (h->version == 0) {
        /* legacy files flag an unshared classifier with a negative vocabulary size */
        h->shared = h->vocab > 0;
        if (h->vocab < 0 && h->vocab != INT32_MIN) h->vocab = -h->vocab;
    }
    if (h->dim <= 0 || h->hidden <= 0 || h->n_layers <= 0 || h->n_heads <= 0 || h->n_kv <= 0 || h->vocab <= 0 ||
        h->seq_len <= 0)
        return pb_err_set(err, "%s: invalid llama2.c header: dim=%d hidden_dim=%d n_layers=%d n_heads=%d "
                          "n_kv_heads=%d vocab_size=%d seq_len=%d", path, hv[0], hv[1], hv[2], hv[3], hv[4], hv[5],
                          hv[6]);
    if (h->dim % h->n_heads || (h->dim / h->n_heads) % 2 || h->n_heads % h->n_kv)
        return pb_err_set(err, "%s: invalid llama2.c header: dim %d, %d heads, %d kv heads (dim must split into "
                          "heads of even size, heads into kv groups)", path, h->dim, h->n_heads, h->n_kv);
    return 0;
}

/* acc += a*b*c in 64 bits; false on overflow. */
static bool add_prod(uint64_t *acc, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t p;
    if (__builtin_mul_overflow(a, b, &p) || __builtin_mul_overflow(p, c, &p)) return false;
    return !__builtin_add_overflow(*acc, p, acc);
}

/* Number of floats the header promises. */
static bool expected_floats(const l2c_header *h, uint64_t *n) {
    uint64_t d = (uint64_t)h->dim, L = (uint64_t)h->n_layers, f = (uint64_t)h->hidden, V = (uint64_t)h->vocab;
    uint64_t hs = d / (uint64_t)h->n_heads, kv = hs * (uint64_t)h->n_kv;
    *n = 0;
    bool ok = add_prod(n, V, d, 1)                 /* token embedding */
              && add_prod(n, L, d, 2)              /* rms_att, rms_ffn */
              && add_prod(n, L, d, 2 * d)          /* wq, wo */
              && add_prod(n, L, kv, 2 * d)         /* wk, wv */
              && add_prod(n, L, f, 3 * d)          /* w1, w2, w3 */
              && add_prod(n, d, 1, 1);             /* rms_final */
    if (ok && h->version == 0) ok = add_prod(n, (uint64_t)h->seq_len, hs / 2, 2); /* freq_cis real, imag */
    if (ok && !h->shared) ok = add_prod(n, V, d, 1);                           /* wcls */
    return ok;
}

typedef struct {
    float *p;
} cursor;

static float *take(cursor *c, size_t n) {
    float *r = c->p;
    c->p += n;
    return r;
}

/* Points the model's tensors into the map, in the file's order. */
static void assign(pb_model *m, const l2c_header *h, uint8_t *data) {
    size_t d = (size_t)h->dim, f = (size_t)h->hidden, V = (size_t)h->vocab, L = (size_t)h->n_layers;
    size_t kv = d / (size_t)h->n_heads * (size_t)h->n_kv;
    cursor c = {(float *)(void *)(data + h->offset)};
    pb_layer *ly = m->layers;
    if (h->version == 0) {
        m->tok_emb = take(&c, V * d);
        for (size_t l = 0; l < L; l++) ly[l].attn_norm = take(&c, d);
    } else {
        for (size_t l = 0; l < L; l++) ly[l].attn_norm = take(&c, d);
        for (size_t l = 0; l < L; l++) ly[l].mlp_norm = take(&c, d);
        m->final_norm = take(&c, d);
        m->tok_emb = take(&c, V * d);
    }
    for (size_t l = 0; l < L; l++) ly[l].wq = take(&c, d * d);
    for (size_t l = 0; l < L; l++) ly[l].wk = take(&c, kv * d);
    for (size_t l = 0; l < L; l++) ly[l].wv = take(&c, kv * d);
    for (size_t l = 0; l < L; l++) ly[l].wo = take(&c, d * d);
    if (h->version == 0)
        for (size_t l = 0; l < L; l++) ly[l].mlp_norm = take(&c, d);
    for (size_t l = 0; l < L; l++) ly[l].w_gate = take(&c, f * d);  /* w1 */
    for (size_t l = 0; l < L; l++) ly[l].w_down = take(&c, d * f);  /* w2 */
    for (size_t l = 0; l < L; l++) ly[l].w_up = take(&c, f * d);    /* w3 */
    if (h->version == 0) {
        m->final_norm = take(&c, d);
        take(&c, (size_t)h->seq_len * (d / (size_t)h->n_heads)); /* freq_cis: we compute our own */
    }
    m->lm_head = h->shared ? m->tok_emb : take(&c, V * d);
}

int pb_llama2c_load(const char *path, const pb_load_opts *opts, pb_model **model, pb_tokenizer **tok,
                    pb_err *err) {
    *model = NULL;
    if (tok) *tok = NULL;
    pb_mmap map;
    PB_TRY(pb_mmap_open(&map, path, true, err));
    l2c_header h;
    uint64_t nf = 0;
    if (read_header(&map, path, &h, err) != 0) goto fail_map;
    uint64_t expect;
    if (!expected_floats(&h, &nf) || __builtin_mul_overflow(nf, (uint64_t)sizeof(float), &expect) ||
        __builtin_add_overflow(expect, (uint64_t)h.offset, &expect)) {
        pb_err_set(err, "%s: llama2.c header implies an impossibly large file (dim=%d hidden_dim=%d n_layers=%d "
                   "vocab_size=%d seq_len=%d)", path, h.dim, h.hidden, h.n_layers, h.vocab, h.seq_len);
        goto fail_map;
    }
    if (expect != (uint64_t)map.size) {
        pb_err_set(err, "%s: file size %zu bytes does not match its llama2.c v%d header (dim=%d hidden_dim=%d "
                   "n_layers=%d n_heads=%d n_kv_heads=%d vocab_size=%d seq_len=%d%s): expected %" PRIu64 " bytes",
                   path, map.size, h.version, h.dim, h.hidden, h.n_layers, h.n_heads, h.n_kv, h.vocab, h.seq_len,
                   h.shared ? "" : ", unshared classifier", expect);
        goto fail_map;
    }

    pb_config cfg = {0};
    cfg.dim = h.dim;
    cfg.n_layers = h.n_layers;
    cfg.vocab_size = h.vocab;
    cfg.max_seq_len = h.seq_len;
    cfg.norm_eps = 1e-5f;     /* llama2.c's model.py default, not stored in the file */
    cfg.rope_theta = 10000.0f;
    cfg.tied_embeddings = h.shared;
    cfg.bos_id = 1, cfg.eos_id = 2; /* the LLaMA SentencePiece ids llama2.c hard-codes */
    cfg.n_heads = h.n_heads, cfg.n_kv_heads = h.n_kv, cfg.head_dim = h.dim / h.n_heads, cfg.ffn_dim = h.hidden;
    strcpy(cfg.arch, "llama");
    pb_model *m;
    if (pb_model_create(&m, &cfg, false, err) != 0) {
        pb_err_prefix(err, "%s: ", path);
        goto fail_map;
    }
    m->maps = malloc(sizeof *m->maps);
    m->path = strdup(path);
    if (!m->maps || !m->path) {
        pb_model_free(m);
        pb_err_set(err, "%s: out of memory", path);
        goto fail_map;
    }
    m->maps[0] = map; /* the model owns the map from here on */
    m->n_maps = 1;
    strcpy(m->format, "llama2c");
    assign(m, &h, map.data);
    for (int l = 0; l < h.n_layers; l++) {
        pb_layer *L = &m->layers[l];
        if (pb_rope_unpermute_rows(L->wq, L->n_heads, L->head_dim, h.dim, err) != 0 ||
            pb_rope_unpermute_rows(L->wk, L->n_kv_heads, L->head_dim, h.dim, err) != 0) {
            pb_err_prefix(err, "%s: ", path);
            pb_model_free(m);
            return -1;
        }
    }
    if (pb_model_validate(m, err) != 0) {
        pb_err_prefix(err, "%s: ", path);
        pb_model_free(m);
        return -1;
    }
    if (tok && opts && opts->tokenizer_path && pb_tok_load_llama2c(opts->tokenizer_path, h.vocab, tok, err) != 0) {
        pb_model_free(m);
        return -1;
    }
    *model = m;
    return 0;

fail_map:
    pb_mmap_close(&map);
    return -1;
}
