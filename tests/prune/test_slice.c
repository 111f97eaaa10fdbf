/* test_slice.c — the slicing routines (pb_prune_apply) against their masked twin
 * (pb_prune_mask): for random sets of head units, channels, attention and MLP modules and
 * blocks on random models (GQA and MHA, biases on every projection, non-uniform layers), the
 * sliced model's logits equal the masked model's, the parameter count drops by exactly what
 * pb_struct_params says, layers left without heads or channels lose their sublayer and still
 * run, and bad structures are refused without changing the model. */
#include "pb_test_model.h"
#include "prune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { L = 5, B = 2, T = 12 };

static float *logits_of(pb_model *m, const int32_t *tok) {
    pb_fwd_state *st = pb_fwd_state_new();
    float *lg = malloc(sizeof(float) * B * T * (size_t)m->cfg.vocab_size);
    pb_err err = {0};
    REQUIRE(st && lg, "out of memory");
    REQUIRE(pb_model_forward(m, st, tok, B, T, NULL, lg, false, &err) == 0, "%s", err.msg);
    pb_fwd_state_free(st);
    return lg;
}

/* max |a - b| / max |b| */
static double rel(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / den;
}

static uint64_t rs = 12345;
static int rnd(int n) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (int)((rs >> 33) % (uint64_t)n);
}

static const pb_config cfg_base = {.dim = 48, .vocab_size = 97, .max_seq_len = 64, .norm_eps = 1e-5f,
                                   .rope_theta = 10000.0f, .bos_id = 1, .eos_id = 2, .n_layers = L, .arch = "llama"};

static void one_case(const char *name, const rm_layer *layers, uint64_t seed, const pb_struct *s, int n,
                     bool width_only) {
    pb_model *a = rm_build(&cfg_base, layers, seed, RM_SCALED), *b = rm_build(&cfg_base, layers, seed, RM_SCALED);
    int32_t tok[B * T];
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)rnd(97);
    int64_t expect = 0;
    if (width_only) {
        /* distinct width structures: what each holds adds up (duplicates were avoided) */
        for (int i = 0; i < n; i++) expect += pb_struct_params(a, &s[i]);
    }
    int64_t before = pb_model_params(a);
    pb_err err = {0};
    REQUIRE(pb_prune_apply(a, s, n, &err) == 0, "%s: %s", name, err.msg);
    REQUIRE(pb_prune_mask(b, s, n, &err) == 0, "%s: %s", name, err.msg);
    float *la = logits_of(a, tok), *lb = logits_of(b, tok);
    double e = rel(la, lb, (size_t)B * T * 97);
    /* the same arithmetic minus exact zeros, except that GEMMs of different inner sizes may
     * block their sums differently: fp32 rounding only (measured ~1e-7); a wrong row or
     * column is off by 1e-2 or more */
    fprintf(stderr, "  %-28s %2d structures, %lld -> %lld params, sliced vs masked logits rel %.1e\n", name, n,
            (long long)before, (long long)pb_model_params(a), e);
    CHECK_MSG(e <= 1e-5, "%s: sliced logits differ from masked: %g", name, e);
    if (width_only)
        CHECK_MSG(before - pb_model_params(a) == expect, "%s: removed %lld params, structures hold %lld", name,
                  (long long)(before - pb_model_params(a)), (long long)expect);
    free(la);
    free(lb);
    pb_model_free(a);
    pb_model_free(b);
}

int main(void) {
    pb_set_threads(2);
    rm_layer gqa[L] = {{6, 2, 8, 40, "qkvoGUD"}, {6, 3, 8, 32, "qkvoGUD"}, {4, 4, 12, 24, NULL},
                       {8, 2, 8, 36, "oD"}, {6, 6, 8, 20, "qv"}};

    /* random head units and channels, each at most once; unit 0 and channel 0 always stay, so
     * that no sublayer disappears and the counts add up exactly (its norm goes with it
     * otherwise: that case comes next) */
    for (int round = 0; round < 6; round++) {
        pb_struct s[64];
        int n = 0;
        for (int l = 0; l < L; l++) {
            for (int g = 1; g < gqa[l].n_kv_heads; g++)
                if (rnd(3) == 0) s[n++] = (pb_struct){l, PB_S_HEAD, g};
            for (int c = 1; c < gqa[l].ffn_dim && n < 60; c += 1 + rnd(6))
                if (rnd(2) == 0) s[n++] = (pb_struct){l, PB_S_CHANNEL, c};
        }
        char name[32];
        snprintf(name, sizeof name, "heads+channels #%d", round);
        one_case(name, gqa, 10 + round, s, n, true);
    }

    /* every head of layer 1 and every channel of layer 3: those sublayers disappear */
    pb_struct all[64];
    int n = 0;
    for (int g = 0; g < 3; g++) all[n++] = (pb_struct){1, PB_S_HEAD, g};
    for (int c = 0; c < 36; c++) all[n++] = (pb_struct){3, PB_S_CHANNEL, c};
    one_case("all heads / all channels", gqa, 20, all, n, false);
    {
        pb_model *m = rm_build(&cfg_base, gqa, 20, RM_SCALED);
        pb_err err = {0};
        REQUIRE(pb_prune_apply(m, all, n, &err) == 0, "%s", err.msg);
        CHECK(!m->layers[1].has_attn && m->layers[1].has_mlp && m->layers[3].has_attn && !m->layers[3].has_mlp);
        pb_model_free(m);
    }

    /* modules and blocks, mixed with width structures and duplicates */
    pb_struct mix[] = {{0, PB_S_ATTN, 0}, {2, PB_S_MLP, 0}, {3, PB_S_BLOCK, 0}, {3, PB_S_HEAD, 1},
                       {4, PB_S_CHANNEL, 5}, {4, PB_S_CHANNEL, 5}, {1, PB_S_HEAD, 2}, {2, PB_S_MLP, 0}};
    one_case("modules, a block, duplicates", gqa, 30, mix, 8, false);
    {
        pb_model *m = rm_build(&cfg_base, gqa, 30, RM_SCALED);
        pb_err err = {0};
        REQUIRE(pb_prune_apply(m, mix, 8, &err) == 0, "%s", err.msg);
        /* 4 layers left; old layer 4 is now layer 3 with one channel fewer */
        CHECK(m->cfg.n_layers == 4 && !m->layers[0].has_attn && !m->layers[2].has_mlp && m->layers[3].ffn_dim == 19);
        pb_model_free(m);
    }

    /* bad structures: refused, model unchanged */
    {
        pb_model *m = rm_build(&cfg_base, gqa, 40, RM_SCALED);
        int64_t p0 = pb_model_params(m);
        pb_err err = {0};
        pb_struct bad[][2] = {{{0, PB_S_HEAD, 0}, {5, PB_S_BLOCK, 0}},   /* layer out of range */
                              {{0, PB_S_HEAD, 0}, {0, PB_S_HEAD, 2}},    /* layer 0 has 2 units */
                              {{0, PB_S_HEAD, 0}, {1, PB_S_CHANNEL, 32}}, /* layer 1 has 32 channels */
                              {{0, PB_S_HEAD, 0}, {2, PB_S_HEAD, -1}}};
        const char *want[] = {"outside the model", "no head 2", "no channel 32", "no head -1"};
        for (int i = 0; i < 4; i++) {
            CHECK_MSG(pb_prune_apply(m, bad[i], 2, &err) == -1 && strstr(err.msg, want[i]), "case %d: %s", i, err.msg);
            CHECK(pb_model_params(m) == p0);
        }
        pb_struct a1 = {0, PB_S_ATTN, 0}, h1 = {0, PB_S_HEAD, 0};
        REQUIRE(pb_prune_apply(m, &a1, 1, &err) == 0, "%s", err.msg);
        CHECK_MSG(pb_prune_apply(m, &h1, 1, &err) == -1 && strstr(err.msg, "no attention"), "%s", err.msg);
        pb_model_free(m);
    }
    return pb_test_done("test_slice");
}
