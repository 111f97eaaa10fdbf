/* test_llama2c.c — the real stories260K checkpoint through the llama2.c reader and the forward.
 *
 * - Greedy decoding from BOS for 256 steps with the KV cache must give exactly the ids that
 *   llama2.c's own run.c produced (stories260K.greedy_ids.txt). This checks the reader, the
 *   q/k row reordering from Meta's interleaved RoPE to rotate-half, and the whole forward.
 * - The batched forward over those 257 ids: the argmax at every position is the next id.
 * - Loaded with tok512.bin as tokenizer_path, the ids decode to llama2.c's printed text
 *   (stories260K.greedy.txt); a missing tokenizer file fails the load.
 * - The same weights rewritten as an export.py version-1 file, and as a legacy file with an
 *   unshared classifier (negative vocab_size), give the same logits: same floats, same code
 *   path after loading. They are usually bit-identical; BLAS kernels may still sum in another
 *   order when the weights sit at another alignment in the map, hence LAYOUT_TOL (max abs
 *   difference over max |logit|) of 1e-6, ~10 fp32 ulps, while a layout mistake (a tensor
 *   read from the wrong offset) changes logits by O(1).
 * Skips (77) without the shared folder. */
#include "load.h"
#include "pb_test.h"
#include "pb_test_model.h"

#define N_IDS 257
#define LAYOUT_TOL 1e-6

static void write_file(const char *path, const void *a, size_t na, const void *b, size_t nb, const void *c,
                       size_t nc) {
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "cannot write %s", path);
    REQUIRE(fwrite(a, 1, na, f) == na && (!nb || fwrite(b, 1, nb, f) == nb) && (!nc || fwrite(c, 1, nc, f) == nc),
            "write %s", path);
    REQUIRE(fclose(f) == 0, "close %s", path);
}

/* The stories260K v0 file rewritten as version 1 and as v0 with an unshared classifier. */
static void make_variants(const char *src, const char *v1, const char *unshared) {
    char *data;
    size_t size;
    pb_err err;
    REQUIRE(pb_file_read_all(src, &data, &size, &err) == 0, "%s", err.msg);
    int32_t h[7];
    memcpy(h, data, sizeof h);
    size_t d = h[0], f = h[1], L = h[2], nh = h[3], nkv = h[4], V = h[5], S = h[6], hs = d / nh, kv = hs * nkv;
    const float *w = (const float *)(data + 28);
    /* v0 offsets (in floats) */
    size_t emb = 0, att = emb + V * d, wq = att + L * d, wk = wq + L * d * d, wv = wk + L * kv * d;
    size_t wo = wv + L * kv * d, ffn = wo + L * d * d, w1 = ffn + L * d, w2 = w1 + L * f * d, w3 = w2 + L * d * f;
    size_t fin = w3 + L * f * d, fcis = fin + d, end = fcis + S * hs;
    REQUIRE(28 + end * 4 == size, "unexpected stories260K layout");

    /* version 1: norms first, then embedding and matrices, no freq_cis */
    uint8_t hdr[256] = {0};
    uint32_t magic = 0x616b3432;
    int32_t version = 1;
    memcpy(hdr, &magic, 4);
    memcpy(hdr + 4, &version, 4);
    memcpy(hdr + 8, h, sizeof h);
    hdr[36] = 1; /* shared classifier */
    float *body = malloc(end * 4);
    REQUIRE(body, "oom");
    size_t o = 0;
#define PUT(off, n) (memcpy(body + o, w + (off), (n) * 4), o += (n))
    PUT(att, L * d);
    PUT(ffn, L * d);
    PUT(fin, d);
    PUT(emb, V * d);
    PUT(wq, L * d * d);
    PUT(wk, L * kv * d);
    PUT(wv, L * kv * d);
    PUT(wo, L * d * d);
    PUT(w1, L * f * d);
    PUT(w2, L * d * f);
    PUT(w3, L * f * d);
#undef PUT
    write_file(v1, hdr, sizeof hdr, body, o * 4, NULL, 0);

    /* legacy, unshared classifier: negative vocab_size and a copy of the embedding at the end */
    int32_t hu[7];
    memcpy(hu, h, sizeof hu);
    hu[5] = -hu[5];
    write_file(unshared, hu, sizeof hu, data + 28, size - 28, w + emb, V * d * 4);
    free(body);
    free(data);
}

static float *all_logits(const char *path, const int32_t *ids, int n, int *V) {
    pb_model *m;
    pb_err err;
    REQUIRE(pb_llama2c_load(path, NULL, &m, NULL, &err) == 0, "%s", err.msg);
    *V = m->cfg.vocab_size;
    float *lg = malloc(sizeof(float) * n * *V);
    pb_fwd_state *st = pb_fwd_state_new();
    REQUIRE(lg && st, "oom");
    REQUIRE(pb_model_forward(m, st, ids, 1, n, NULL, lg, false, &err) == 0, "%s", err.msg);
    pb_fwd_state_free(st);
    pb_model_free(m);
    return lg;
}

int main(void) {
    const char *shared = pb_test_shared_or_skip();
    char bin[4096], ref[4096];
    snprintf(bin, sizeof bin, "%s/models/stories260K/stories260K.bin", shared);
    snprintf(ref, sizeof ref, "%s/models/stories260K/stories260K.greedy_ids.txt", shared);
    int32_t want[N_IDS + 1];
    int n = pb_test_read_ids(ref, want, N_IDS + 1);
    REQUIRE(n == N_IDS, "%s: expected %d ids, found %d", ref, N_IDS, n);

    pb_set_threads(2);
    pb_model *m;
    pb_tokenizer *tok = (pb_tokenizer *)&n; /* must be reset to NULL: no tokenizer path given */
    pb_err err;
    REQUIRE(pb_llama2c_load(bin, NULL, &m, &tok, &err) == 0, "%s", err.msg);
    CHECK(tok == NULL);
    CHECK(strcmp(m->format, "llama2c") == 0);
    CHECK(m->cfg.dim == 64 && m->cfg.n_layers == 5 && m->cfg.vocab_size == 512 && m->cfg.n_kv_heads == 4);
    CHECK(m->lm_head == m->tok_emb && m->n_maps == 1);
    int V = m->cfg.vocab_size;

    /* greedy decoding with the cache */
    int first_bad = pb_test_greedy_mismatch(m, 1, want, N_IDS);
    CHECK_MSG(first_bad < 0, "greedy decoding diverges from llama2.c at step %d", first_bad);

    /* batched forward over the reference ids */
    float *all = all_logits(bin, want, N_IDS, &V);
    int mism = 0;
    for (int t = 0; t + 1 < N_IDS; t++) mism += pb_test_argmax(all + (size_t)t * V, V) != want[t + 1];
    CHECK_MSG(mism == 0, "batched forward: %d of %d argmaxes differ from the next id", mism, N_IDS - 1);

    /* with the tokenizer: the decoded greedy ids are the text llama2.c printed */
    char tokp[4096], txtp[4096];
    snprintf(tokp, sizeof tokp, "%s/models/stories260K/tok512.bin", shared);
    snprintf(txtp, sizeof txtp, "%s/models/stories260K/stories260K.greedy.txt", shared);
    pb_load_opts opts = {.tokenizer_path = tokp};
    pb_model *mt;
    REQUIRE(pb_llama2c_load(bin, &opts, &mt, &tok, &err) == 0, "%s", err.msg);
    REQUIRE(tok != NULL, "tokenizer not loaded");
    CHECK(pb_tok_vocab_size(tok) == V);
    char *want_txt, text[8192];
    size_t want_len, len = 0;
    REQUIRE(pb_file_read_all(txtp, &want_txt, &want_len, &err) == 0, "%s", err.msg);
    for (int i = 1; i < N_IDS && len < sizeof text; i++)
        len += pb_tok_decode(tok, want[i - 1], want[i], text + len, sizeof text - len);
    while (want_len && (want_txt[want_len - 1] == '\n')) want_len--; /* file may end with a newline */
    CHECK_MSG(len == want_len && memcmp(text, want_txt, len) == 0, "decoded greedy text differs from %s", txtp);
    free(want_txt);
    pb_tok_free(tok);
    pb_model_free(mt);
    opts.tokenizer_path = "/nonexistent/tok.bin";
    mt = (pb_model *)&n;
    CHECK(pb_llama2c_load(bin, &opts, &mt, &tok, &err) != 0 && mt == NULL && tok == NULL);

    /* other layouts of the same weights */
    char v1[4096], un[4096];
    snprintf(v1, sizeof v1, "%s/stories260K_v1.bin", pb_test_tmp());
    snprintf(un, sizeof un, "%s/stories260K_unshared.bin", pb_test_tmp());
    make_variants(bin, v1, un);
    int V1, V2;
    float *a1 = all_logits(v1, want, N_IDS, &V1), *a2 = all_logits(un, want, N_IDS, &V2);
    CHECK(V1 == V && V2 == V);
    double e1 = pb_test_rel_err(a1, all, (size_t)N_IDS * V), e2 = pb_test_rel_err(a2, all, (size_t)N_IDS * V);
    CHECK_MSG(e1 <= LAYOUT_TOL, "version-1 file gives different logits (relative error %.3g)", e1);
    CHECK_MSG(e2 <= LAYOUT_TOL, "unshared-classifier file gives different logits (relative error %.3g)", e2);
    pb_model *mu;
    REQUIRE(pb_llama2c_load(un, NULL, &mu, NULL, &err) == 0, "%s", err.msg);
    CHECK(mu->lm_head != mu->tok_emb && !mu->cfg.tied_embeddings);
    pb_model_free(mu);
    remove(v1);
    remove(un);

    free(a1);
    free(a2);
    free(all);
    pb_model_free(m);
    return pb_test_done("model_llama2c");
}
