/* test_gguf_stories.c — the real stories260K GGUF file (llama.cpp's converter output).
 *
 * - Shape: dim 64, 5 layers, 8 heads, 4 kv heads, ffn 172, vocab 512; the file stores an
 *   output.weight identical to token_embd.weight, which must load as a tied head.
 * - Weights equal, bit for bit, those of stories260K.bin through the llama2.c reader: both
 *   files hold the same fp32 values with q/k rows in Meta's interleaved order, and both
 *   readers must reorder them the same way (no tolerance: nothing is computed).
 * - Greedy decoding from BOS for 256 steps with the KV cache gives exactly llama2.c's ids.
 * - The embedded tokenizer encodes every line of tinystories.txt to the same ids as
 *   tok512.bin through the llama2.c tokenizer reader; opts.tokenizer_path is honoured.
 * Skips (77) without the shared folder. */
#include "load.h"
#include "pb_test.h"
#include "pb_test_model.h"

#define N_IDS 257

static int same(const float *a, const float *b, size_t n) {
    return (a == NULL) == (b == NULL) && (!a || !memcmp(a, b, n * 4));
}

static void compare_weights(const pb_model *g, const pb_model *b) {
    const pb_config *c = &g->cfg;
    size_t d = (size_t)c->dim;
    CHECK(same(g->tok_emb, b->tok_emb, (size_t)c->vocab_size * d));
    CHECK(same(g->final_norm, b->final_norm, d));
    for (int l = 0; l < c->n_layers; l++) {
        const pb_layer *x = &g->layers[l], *y = &b->layers[l];
        size_t q = (size_t)x->n_heads * x->head_dim, kv = (size_t)x->n_kv_heads * x->head_dim, f = (size_t)x->ffn_dim;
        CHECK_MSG(x->n_heads == y->n_heads && x->n_kv_heads == y->n_kv_heads && x->head_dim == y->head_dim &&
                  x->ffn_dim == y->ffn_dim, "layer %d shapes differ", l);
        CHECK_MSG(same(x->attn_norm, y->attn_norm, d) && same(x->mlp_norm, y->mlp_norm, d), "layer %d norms", l);
        CHECK_MSG(same(x->wq, y->wq, q * d), "layer %d wq", l);
        CHECK_MSG(same(x->wk, y->wk, kv * d), "layer %d wk", l);
        CHECK_MSG(same(x->wv, y->wv, kv * d), "layer %d wv", l);
        CHECK_MSG(same(x->wo, y->wo, d * q), "layer %d wo", l);
        CHECK_MSG(same(x->w_gate, y->w_gate, f * d) && same(x->w_up, y->w_up, f * d) && same(x->w_down, y->w_down, d * f),
                  "layer %d mlp", l);
    }
}

static void check_tokenizer(const pb_tokenizer *emb, const char *shared) {
    char tokbin[4096], text[4096];
    snprintf(tokbin, sizeof tokbin, "%s/models/stories260K/tok512.bin", shared);
    snprintf(text, sizeof text, "%s/data/tinystories/tinystories.txt", shared);
    pb_tokenizer *ref;
    pb_err err;
    REQUIRE(pb_tok_load_llama2c(tokbin, 512, &ref, &err) == 0, "%s", err.msg);
    CHECK(pb_tok_vocab_size(emb) == 512 && pb_tok_bos(emb) == 1 && pb_tok_eos(emb) == 2);
    CHECK(pb_tok_kind_of(emb) == PB_TOK_SPM);
    char *buf;
    size_t size;
    REQUIRE(pb_file_read_all(text, &buf, &size, &err) == 0, "%s", err.msg);
    int lines = 0, bad = 0;
    for (char *p = buf, *end = buf + size; p < end; lines++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        int32_t *a, *b;
        size_t na, nb;
        REQUIRE(pb_tok_encode(emb, p, len, true, &a, &na, &err) == 0, "line %d: %s", lines + 1, err.msg);
        REQUIRE(pb_tok_encode(ref, p, len, true, &b, &nb, &err) == 0, "line %d: %s", lines + 1, err.msg);
        if (na != nb || memcmp(a, b, na * sizeof *a)) {
            if (bad++ < 3)
                fprintf(stderr, "line %d: embedded tokenizer gives %zu ids, tok512.bin %zu\n", lines + 1, na, nb);
        }
        free(a);
        free(b);
        p += len + 1;
    }
    CHECK_MSG(bad == 0, "%d of %d lines encode differently", bad, lines);
    CHECK(lines > 2000);
    free(buf);
    pb_tok_free(ref);
}

int main(void) {
    const char *shared = pb_test_shared_or_skip();
    char gguf[4096], bin[4096], ref[4096], tokbin[4096];
    snprintf(gguf, sizeof gguf, "%s/models/stories260K/stories260K.gguf", shared);
    snprintf(bin, sizeof bin, "%s/models/stories260K/stories260K.bin", shared);
    snprintf(ref, sizeof ref, "%s/models/stories260K/stories260K.greedy_ids.txt", shared);
    snprintf(tokbin, sizeof tokbin, "%s/models/stories260K/tok512.bin", shared);
    pb_set_threads(2);

    pb_model *m;
    pb_tokenizer *tok;
    pb_err err;
    REQUIRE(pb_gguf_load(gguf, NULL, &m, &tok, &err) == 0, "%s", err.msg);
    REQUIRE(tok != NULL, "no embedded tokenizer");
    const pb_config *c = &m->cfg;
    CHECK(!strcmp(m->format, "gguf") && !strcmp(c->arch, "llama"));
    CHECK(c->dim == 64 && c->n_layers == 5 && c->vocab_size == 512 && c->head_dim == 8);
    CHECK(c->n_heads == 8 && c->n_kv_heads == 4 && c->ffn_dim == 172);
    CHECK(c->tied_embeddings && m->lm_head == m->tok_emb);
    CHECK(c->bos_id == 1 && c->eos_id == 2 && c->max_seq_len == 2048);
    CHECK(c->norm_eps == 1e-5f && c->rope_theta == 10000.0f && c->rope_scaling.type == PB_ROPE_NONE);
    for (int l = 0; l < c->n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        CHECK(L->n_heads == 8 && L->n_kv_heads == 4 && L->head_dim == 8 && L->ffn_dim == 172 && L->has_attn && L->has_mlp);
    }
    /* every tensor is F32: all of them point into the one map, none was copied */
    CHECK(m->n_maps == 1 && m->arena.total < 4096);
    CHECK(m->n_maps == 1 && (uint8_t *)m->layers[4].w_down > m->maps[0].data &&
          (uint8_t *)m->layers[4].w_down < m->maps[0].data + m->maps[0].size);

    pb_model *b;
    REQUIRE(pb_llama2c_load(bin, NULL, &b, NULL, &err) == 0, "%s", err.msg);
    compare_weights(m, b);
    CHECK(pb_model_params(m) == pb_model_params(b));
    pb_model_free(b);

    /* greedy decoding with the KV cache */
    int32_t want[N_IDS + 1];
    int n = pb_test_read_ids(ref, want, N_IDS + 1);
    REQUIRE(n == N_IDS && want[0] == 1, "%s: expected %d ids starting with BOS, found %d", ref, N_IDS, n);
    int first_bad = pb_test_greedy_mismatch(m, want[0], want, N_IDS);
    CHECK_MSG(first_bad < 0, "greedy decoding diverges from llama2.c at step %d", first_bad);

    check_tokenizer(tok, shared);
    pb_tok_free(tok);
    pb_model_free(m);

    /* an explicit tokenizer path replaces the embedded one */
    pb_load_opts opts = {.tokenizer_path = tokbin};
    REQUIRE(pb_gguf_load(gguf, &opts, &m, &tok, &err) == 0, "%s", err.msg);
    CHECK(tok && pb_tok_vocab_size(tok) == 512);
    if (tok) pb_tok_free(tok);
    pb_model_free(m);
    /* tok == NULL: no tokenizer is built */
    REQUIRE(pb_gguf_load(gguf, NULL, &m, NULL, &err) == 0, "%s", err.msg);
    pb_model_free(m);
    return pb_test_done("gguf_stories");
}
