/* test_kvcache.c — incremental decoding with the KV cache must reproduce one batched forward.
 *
 * For several tiny random models (GQA, MHA, non-uniform per-layer shapes, a layer without
 * attention, one without MLP, biases, scaled RoPE) and B=3 sequences, compares against the
 * batched, cache-less forward:
 *   - token-by-token decode (the attention op's row path, positions from the cache), of
 *     all sequences at once and of one sequence alone,
 *   - chunked prefill with uneven chunks (the GEMM path with a non-zero start position),
 *   - a logits-less prefill followed by a chunk, and last_only projections,
 *   - each sequence run alone (B=1) against its row of the batch.
 * And that bad calls (cache overflow, token ids outside the vocabulary, mismatched cache
 * lengths or batch) fail with a message and leave the cache as it was.
 *
 * Error measure: per sequence, max|x - ref| / max|ref| over all its compared logits. Both
 * sides evaluate the same fp32 formulas and differ only in summation order (GEMM vs GEMV
 * blocking, two-pass vs online softmax), so the expected difference is a few fp32 ulps
 * of the logit scale (~1e-7..1e-6); scaling by the largest logit keeps near-zero logits
 * from inflating the measure. 1e-5 leaves a 10x margin over that rounding while any real
 * defect (wrong position, missing or extra key, wrong KV head) moves logits by >1e-3. */
#include "model.h"
#include "pb_test.h"
#include "pb_test_model.h"

#define TOL 1e-5
#define B 3
#define T 70 /* more than one 64-row attention tile */

/* Compares logits of sequence b at positions [t0, t0+n) (stored contiguously in x) with ref. */
static void compare(const char *what, const char *model, int b, const float *x, const float *ref, int t0, int n,
                    int V) {
    double e = pb_test_rel_err(x, ref + ((size_t)b * T + t0) * V, (size_t)n * V);
    CHECK_MSG(e <= TOL, "%s: %s: sequence %d positions %d..%d: relative error %.3g", model, what, b, t0, t0 + n - 1, e);
}

static void check_model(const char *name, pb_model *m) {
    REQUIRE(m, "%s: could not build the model", name);
    int V = m->cfg.vocab_size;
    pb_err err;
    pb_fwd_state *st = pb_fwd_state_new();
    REQUIRE(st, "out of memory");
    int32_t tok[B * T], col[B];
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)((rm_uniform() + 1.0f) * 0.5f * V) % V;
    float *ref = malloc(sizeof(float) * B * T * V), *out = malloc(sizeof(float) * B * T * V);
    REQUIRE(ref && out, "out of memory");
    REQUIRE(pb_model_forward(m, st, tok, B, T, NULL, ref, false, &err) == 0, "%s: %s", name, err.msg);

    /* each sequence alone gives its row of the batch */
    for (int b = 0; b < B; b++) {
        REQUIRE(pb_model_forward(m, st, tok + b * T, 1, T, NULL, out, false, &err) == 0, "%s", err.msg);
        compare("alone vs batch", name, b, out, ref, 0, T, V);
    }
    /* last_only without cache */
    REQUIRE(pb_model_forward(m, st, tok, B, T, NULL, out, true, &err) == 0, "%s", err.msg);
    for (int b = 0; b < B; b++) compare("last_only", name, b, out + (size_t)b * V, ref, T - 1, 1, V);

    pb_kvcache *c;
    REQUIRE(pb_kvcache_create(&c, m, B, T, &err) == 0, "%s", err.msg);
    /* token-by-token decode */
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) col[b] = tok[b * T + t];
        REQUIRE(pb_model_forward(m, st, col, B, 1, c, out, false, &err) == 0, "%s: step %d: %s", name, t, err.msg);
        for (int b = 0; b < B; b++) compare("decode", name, b, out + (size_t)b * V, ref, t, 1, V);
    }
    for (int b = 0; b < B; b++) CHECK(c->len[b] == T);

    /* full cache: one more token overflows, fails and changes nothing */
    CHECK(pb_model_forward(m, st, col, B, 1, c, out, false, &err) != 0 && strstr(err.msg, "overflow"));
    for (int b = 0; b < B; b++) CHECK(c->len[b] == T);

    /* a single sequence decoded alone (the GEMV path of the linear op) */
    pb_kvcache *c1;
    REQUIRE(pb_kvcache_create(&c1, m, 1, T, &err) == 0, "%s", err.msg);
    for (int t = 0; t < T; t++) {
        REQUIRE(pb_model_forward(m, st, &tok[T + t], 1, 1, c1, out, true, &err) == 0, "%s", err.msg);
        compare("decode alone", name, 1, out, ref, t, 1, V);
    }
    pb_kvcache_free(c1);

    /* chunked prefill with uneven chunks */
    static const int chunks[] = {5, 17, 1, 30, 17};
    pb_kvcache_reset(c);
    int32_t buf[B * T];
    for (int i = 0, t0 = 0; i < 5; t0 += chunks[i++]) {
        int n = chunks[i];
        for (int b = 0; b < B; b++) memcpy(buf + b * n, tok + b * T + t0, sizeof(int32_t) * n);
        REQUIRE(pb_model_forward(m, st, buf, B, n, c, out, false, &err) == 0, "%s: %s", name, err.msg);
        for (int b = 0; b < B; b++) compare("chunked prefill", name, b, out + (size_t)b * n * V, ref, t0, n, V);
    }

    /* prefill without logits, then a last_only chunk */
    pb_kvcache_reset(c);
    int n1 = 50, n2 = T - 50;
    for (int b = 0; b < B; b++) memcpy(buf + b * n1, tok + b * T, sizeof(int32_t) * n1);
    REQUIRE(pb_model_forward(m, st, buf, B, n1, c, NULL, false, &err) == 0, "%s", err.msg);
    for (int b = 0; b < B; b++) memcpy(buf + b * n2, tok + b * T + n1, sizeof(int32_t) * n2);
    REQUIRE(pb_model_forward(m, st, buf, B, n2, c, out, true, &err) == 0, "%s", err.msg);
    for (int b = 0; b < B; b++) compare("prefill + last_only", name, b, out + (size_t)b * V, ref, T - 1, 1, V);

    /* shared prefix: sequence 0's first 40 tokens prefilled once in slot 0, copied into
     * slots 1 and 2, then all three continue with sequence 0's remaining tokens: every slot
     * must give sequence 0's logits */
    pb_kvcache_reset(c);
    REQUIRE(pb_model_forward(m, st, tok, 1, 40, c, NULL, false, &err) == 0, "%s", err.msg);
    CHECK(c->len[0] == 40 && c->len[1] == 0);
    CHECK(pb_kvcache_copy(c, 0, 1, &err) == 0 && pb_kvcache_copy(c, 0, 2, &err) == 0);
    CHECK(c->len[1] == 40 && c->len[2] == 40);
    CHECK(pb_kvcache_copy(c, 0, B, &err) != 0); /* outside the batch */
    CHECK(pb_kvcache_truncate(c, 1, 41, &err) != 0 && c->len[1] == 40); /* cannot grow */
    CHECK(pb_kvcache_truncate(c, B, 0, &err) != 0);
    for (int b = 0; b < B; b++) memcpy(buf + b * (T - 40), tok + 40, sizeof(int32_t) * (T - 40));
    REQUIRE(pb_model_forward(m, st, buf, B, T - 40, c, out, false, &err) == 0, "%s", err.msg);
    for (int b = 0; b < B; b++) compare("shared prefix", name, 0, out + (size_t)b * (T - 40) * V, ref, 40, T - 40, V);
    /* cut every slot back to the prefix and continue once more: the same logits again */
    for (int b = 0; b < B; b++) CHECK(pb_kvcache_truncate(c, b, 40, &err) == 0);
    REQUIRE(pb_model_forward(m, st, buf, B, T - 40, c, out, false, &err) == 0, "%s", err.msg);
    for (int b = 0; b < B; b++) compare("truncated prefix", name, 0, out + (size_t)b * (T - 40) * V, ref, 40, T - 40, V);

    /* bad calls leave the cache alone */
    pb_kvcache_reset(c);
    col[0] = 0, col[1] = V, col[2] = 1;
    CHECK(pb_model_forward(m, st, col, B, 1, c, out, false, &err) != 0 && strstr(err.msg, "vocabulary"));
    col[1] = -1;
    CHECK(pb_model_forward(m, st, col, B, 1, c, out, false, &err) != 0 && strstr(err.msg, "vocabulary"));
    CHECK(pb_model_forward(m, st, col, 1, 1, c, out, false, &err) == 0); /* slot 0 only */
    col[1] = 2;
    CHECK(pb_model_forward(m, st, col, B, 1, c, out, false, &err) != 0 && strstr(err.msg, "differ"));
    CHECK(c->len[0] == 1 && c->len[1] == 0 && c->len[2] == 0);
    int32_t four[4] = {1, 2, 3, 4};
    CHECK(pb_model_forward(m, st, four, 4, 1, c, out, false, &err) != 0);
    CHECK(pb_model_forward(m, st, four, 0, 1, NULL, out, false, &err) != 0);

    pb_kvcache_free(c);
    free(ref);
    free(out);
    pb_fwd_state_free(st);
    pb_model_free(m);
}

/* A NaN embedding at position 65 of a 100-token sequence (past the first 64-row attention
 * tile): every earlier position's logits must stay finite and equal to the same sequence
 * with an ordinary token there, in the batched (tiled GEMM) path. Causality must hold for
 * NaN too, or a perplexity run cannot say which window went wrong. */
static void check_nan_stays_causal(pb_model *m) {
    enum { TN = 100, AT = 65 };
    int V = m->cfg.vocab_size, d = m->cfg.dim, poison = V - 1;
    int32_t tok[TN];
    for (int t = 0; t < TN; t++) tok[t] = (int32_t)((t * 31 + 7) % (V - 1));
    float *ref = malloc((size_t)TN * V * sizeof(float)), *out = malloc((size_t)TN * V * sizeof(float));
    pb_fwd_state *st = pb_fwd_state_new();
    pb_err err = {0};
    REQUIRE(ref && out && st, "out of memory");
    REQUIRE(pb_model_forward(m, st, tok, 1, TN, NULL, ref, false, &err) == 0, "%s", err.msg);
    for (int j = 0; j < d; j++) m->tok_emb[(size_t)poison * d + j] = NAN;
    tok[AT] = poison;
    REQUIRE(pb_model_forward(m, st, tok, 1, TN, NULL, out, false, &err) == 0, "%s", err.msg);
    double e = pb_test_rel_err(out, ref, (size_t)AT * V);
    CHECK_MSG(e <= TOL, "NaN at position %d changed earlier logits: relative error %g", AT, e);
    CHECK(isnan(out[(size_t)AT * V]));
    pb_fwd_state_free(st);
    free(ref);
    free(out);
    pb_model_free(m);
}

int main(void) {
    pb_set_threads(2);
    pb_config cfg = {.dim = 48, .vocab_size = 97, .max_seq_len = 128, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                     .bos_id = 1, .eos_id = 2, .arch = "llama"};

    cfg.n_layers = 3;
    rm_layer gqa[3] = {{6, 2, 8, 96, "qkvoGUD"}, {6, 2, 8, 96, "qkvoGUD"}, {6, 2, 8, 96, "qkvoGUD"}};
    check_model("gqa", rm_build(&cfg, gqa, 1, RM_SCALED));

    cfg.n_layers = 2;
    cfg.tied_embeddings = true;
    cfg.rope_theta = 500000.0f;
    rm_layer mha[2] = {{4, 4, 12, 64, NULL}, {4, 4, 12, 64, NULL}};
    check_model("mha", rm_build(&cfg, mha, 2, RM_SCALED));

    cfg.n_layers = 5;
    cfg.tied_embeddings = false;
    cfg.rope_scaling = (pb_rope_scaling){PB_ROPE_LLAMA3, 8.0f, 1.0f, 4.0f, 64};
    rm_layer pruned[5] = {{6, 3, 8, 64, "oD"},   {0, 0, 0, 40, "D"}, {2, 1, 16, 0, "o"},
                          {4, 4, 8, 72, "qkv"}, {1, 1, 8, 8, "GU"}};
    check_model("pruned+llama3", rm_build(&cfg, pruned, 3, RM_SCALED));

    cfg.rope_scaling = (pb_rope_scaling){PB_ROPE_LINEAR, 4.0f, 0, 0, 0};
    check_model("pruned+linear", rm_build(&cfg, pruned, 4, RM_SCALED));
    check_nan_stays_causal(rm_build(&cfg, pruned, 6, RM_SCALED));

    /* a cache made for one pruned model is refused by another with the same layer count
     * but fewer KV heads in a layer, instead of being read with the wrong strides */
    pb_model *a = rm_build(&cfg, pruned, 5, RM_SCALED);
    rm_layer narrower[5] = {{6, 3, 8, 64, "oD"}, {0, 0, 0, 40, "D"}, {2, 1, 16, 0, "o"},
                            {2, 2, 8, 72, "qkv"}, {1, 1, 8, 8, "GU"}};
    pb_model *b = rm_build(&cfg, narrower, 5, RM_SCALED);
    REQUIRE(a && b, "building models");
    pb_kvcache *ca;
    pb_err err = {0};
    pb_fwd_state *st = pb_fwd_state_new();
    float *logits = malloc((size_t)cfg.vocab_size * sizeof *logits);
    int32_t one = 3;
    REQUIRE(st && logits && pb_kvcache_create(&ca, a, 1, 8, &err) == 0, "%s", err.msg);
    CHECK(pb_model_forward(a, st, &one, 1, 1, ca, logits, true, &err) == 0);
    CHECK(pb_model_forward(b, st, &one, 1, 1, ca, logits, true, &err) != 0 && strstr(err.msg, "layer 3"));
    CHECK(ca->len[0] == 1);
    pb_kvcache_free(ca);
    pb_fwd_state_free(st);
    free(logits);
    pb_model_free(a);
    pb_model_free(b);
    return pb_test_done("model_kvcache");
}
