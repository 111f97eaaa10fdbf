/* test_depth.c — depth pruning (core/prune/depth.c) through the library on random in-memory
 * models: iterative re-scoring against a hand-run sequence of one-shot removals, protection,
 * ties, ratio -> block count (on a LLaMA-7B-shaped config and against the dry run), module
 * removal leaving layers that still run, masked against sliced logits, importance leaving
 * the model untouched, and every bad option (each failing before the model changes). */
#include "load.h"
#include "pb_test_model.h"
#include "prune.h"

#include <stdarg.h>

/* Masked and sliced pruning compute the same function with different shapes: a masked
 * module's o_proj/down_proj rows are zero, so it adds exact zeros to the residual stream
 * (observed difference: exactly 0). The bound allows for BLAS reassociating the kept
 * GEMMs differently at other shapes (~1e-7 relative); 1e-5 is 100x that, while a wrongly
 * chosen or missed structure moves logits by 1e-2 or more. */
#define MASK_TOL 1e-5

enum { D = 32, V = 50, NL = 8, CN = 3, CT = 16 };

static double worst_mask_err = 0; /* reported at the end */

static pb_config base_cfg(int n_layers) {
    pb_config c = {.dim = D, .vocab_size = V, .max_seq_len = 64, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                   .bos_id = 1, .eos_id = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8, .ffn_dim = 48};
    c.n_layers = n_layers;
    return c;
}

static pb_model *model(uint64_t seed) {
    pb_config c = base_cfg(NL);
    rm_layer ly[NL];
    for (int l = 0; l < NL; l++) ly[l] = (rm_layer){4, 2, 8, 48, l % 3 == 1 ? "oD" : NULL};
    return rm_build(&c, ly, seed, RM_SCALED);
}

static int32_t calib_ids[CN * CT];
static pb_calib calib(void) {
    uint64_t s = 12345;
    for (int i = 0; i < CN * CT; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        calib_ids[i] = i % CT == 0 ? 1 : 3 + (int32_t)((s >> 33) % (V - 3));
    }
    return (pb_calib){CN, CT, calib_ids, "test"};
}

static pb_prune_opts opts(const char *crit, const pb_calib *c) {
    pb_prune_opts o;
    pb_prune_opts_default(&o);
    o.method = "depth";
    o.criterion = crit;
    o.calib = c;
    return o;
}

static void logits_of(const pb_model *m, float *out) {
    pb_err err;
    pb_fwd_state *st = pb_fwd_state_new();
    REQUIRE(st, "oom");
    REQUIRE(pb_model_forward(m, st, calib_ids, CN, CT, NULL, out, false, &err) == 0, "%s", err.msg);
    pb_fwd_state_free(st);
}

static bool all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

/* Prunes a fresh model(seed); returns it (r filled). */
static pb_model *pruned(uint64_t seed, const pb_prune_opts *o, pb_prune_result *r) {
    pb_err err;
    pb_model *m = model(seed);
    REQUIRE(pb_prune(m, o, r, &err) == 0, "%s", err.msg);
    return m;
}

static bool same_removed(const pb_prune_result *a, const pb_prune_result *b) {
    if (a->n_removed != b->n_removed) return false;
    for (int i = 0; i < a->n_removed; i++)
        if (a->removed[i].layer != b->removed[i].layer || a->removed[i].kind != b->removed[i].kind) return false;
    return true;
}

/* Iterative = remove the lowest, re-score, repeat: the same as running one-shot k = 1 on
 * the pruned model each time, with the current numbering mapped back by hand. */
static void test_iterative(const char *crit) {
    pb_calib c = calib();
    pb_err err;
    int differ = 0;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        pb_prune_opts o = opts(crit, &c);
        o.count = 3;
        o.protect_first = 1;
        o.protect_last = 1;
        o.iterative = true;
        pb_prune_result it, one;
        pb_model_free(pruned(seed, &o, &it));
        o.iterative = false;
        pb_model_free(pruned(seed, &o, &one));
        CHECK(it.n_removed == 3 && one.n_removed == 3);

        pb_model *m = model(seed);
        int orig[NL];
        for (int l = 0; l < NL; l++) orig[l] = l;
        o.count = 1;
        for (int step = 0; step < 3; step++) {
            pb_prune_result r;
            REQUIRE(pb_prune(m, &o, &r, &err) == 0, "%s", err.msg);
            REQUIRE(r.n_removed == 1, "step %d removed %d", step, r.n_removed);
            int cur = r.removed[0].layer, L = m->cfg.n_layers;
            CHECK_MSG(orig[cur] == it.removed[step].layer, "%s seed %d step %d: by hand layer %d, iterative %d", crit,
                      (int)seed, step, orig[cur], it.removed[step].layer);
            for (int l = cur; l < L; l++) orig[l] = orig[l + 1];
            pb_prune_result_free(&r);
        }
        CHECK(m->cfg.n_layers == NL - 3);
        pb_model_free(m);

        /* mask mode keeps every layer: the same sequence, and the same function */
        o.count = 3;
        o.iterative = true;
        o.mask_only = true;
        pb_prune_result mk;
        pb_model *mm = pruned(seed, &o, &mk);
        CHECK_MSG(same_removed(&mk, &it), "%s seed %d: masked iterative removed another sequence", crit, (int)seed);
        CHECK(mm->cfg.n_layers == NL);
        o.mask_only = false;
        pb_prune_result sl;
        pb_model *ms = pruned(seed, &o, &sl);
        static float a[CN * CT * V], b[CN * CT * V];
        logits_of(mm, a);
        logits_of(ms, b);
        double e = pb_test_rel_err(a, b, sizeof a / sizeof a[0]);
        worst_mask_err = e > worst_mask_err ? e : worst_mask_err;
        CHECK_MSG(e <= MASK_TOL, "%s seed %d: masked vs sliced iterative logits differ by %.2e", crit, (int)seed, e);
        pb_model_free(mm);
        pb_model_free(ms);

        bool same_set = true;
        for (int i = 0; i < 3; i++) {
            bool found = false;
            for (int j = 0; j < 3; j++) found |= it.removed[i].layer == one.removed[j].layer;
            same_set &= found;
        }
        differ += !same_set;
        pb_prune_result_free(&it);
        pb_prune_result_free(&one);
        pb_prune_result_free(&mk);
        pb_prune_result_free(&sl);
    }
    /* the re-scoring must matter somewhere, or this test could not tell iterative from
     * one-shot (magnitude never re-ranks: its scores do not depend on other blocks) */
    if (strcmp(crit, "magnitude") == 0) CHECK_MSG(differ == 0, "magnitude: iterative differs from one-shot");
    else CHECK_MSG(differ > 0, "%s: iterative equals one-shot on every seed", crit);
    fprintf(stderr, "iterative %s: %d of 4 seeds remove another set than one-shot\n", crit, differ);
}

/* Scales a layer's weights so its magnitude score is the lowest. */
static void shrink(pb_model *m, int l, float f) {
    pb_layer *L = &m->layers[l];
    size_t d = D, q = (size_t)L->n_heads * L->head_dim, kv = (size_t)L->n_kv_heads * L->head_dim, ff = L->ffn_dim;
    float *t[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
    size_t n[] = {q * d, kv * d, kv * d, d * q, ff * d, ff * d, d * ff};
    for (int i = 0; i < 7; i++)
        for (size_t j = 0; j < n[i]; j++) t[i][j] *= f;
}

static void test_protection_and_ties(void) {
    pb_err err;
    pb_prune_result r;
    /* blocks 0 and 7 have the lowest magnitude: removed without protection, kept with it */
    pb_model *m = model(3);
    shrink(m, 0, 0.01f), shrink(m, 7, 0.02f), shrink(m, 5, 0.5f);
    pb_prune_opts o = opts("magnitude", NULL);
    o.count = 2;
    REQUIRE(pb_prune(m, &o, &r, &err) == 0, "%s", err.msg);
    CHECK(r.n_removed == 2 && r.removed[0].layer == 0 && r.removed[1].layer == 7);
    pb_prune_result_free(&r);
    pb_model_free(m);
    m = model(3);
    shrink(m, 0, 0.01f), shrink(m, 7, 0.02f), shrink(m, 5, 0.5f);
    o.protect_first = 1;
    o.protect_last = 1;
    o.count = 1;
    REQUIRE(pb_prune(m, &o, &r, &err) == 0, "%s", err.msg);
    CHECK(r.n_removed == 1 && r.removed[0].layer == 5 && r.removed[0].kind == PB_S_BLOCK);
    CHECK(m->cfg.n_layers == NL - 1);
    pb_prune_result_free(&r);
    pb_model_free(m);

    /* exact ties: layers 2 and 6 made identical (and lowest); the lower layer goes first */
    m = model(4);
    pb_layer l2 = m->layers[2];
    size_t d = D, q = 32, kv = 16, ff = 48;
    memcpy(m->layers[6].attn_norm, l2.attn_norm, d * 4), memcpy(m->layers[6].mlp_norm, l2.mlp_norm, d * 4);
    memcpy(m->layers[6].wq, l2.wq, q * d * 4), memcpy(m->layers[6].wk, l2.wk, kv * d * 4);
    memcpy(m->layers[6].wv, l2.wv, kv * d * 4), memcpy(m->layers[6].wo, l2.wo, q * d * 4);
    memcpy(m->layers[6].w_gate, l2.w_gate, ff * d * 4), memcpy(m->layers[6].w_up, l2.w_up, ff * d * 4);
    memcpy(m->layers[6].w_down, l2.w_down, ff * d * 4);
    shrink(m, 2, 0.1f), shrink(m, 6, 0.1f);
    o = opts("magnitude", NULL);
    o.count = 1;
    REQUIRE(pb_prune(m, &o, &r, &err) == 0, "%s", err.msg);
    CHECK_MSG(r.n_removed == 1 && r.removed[0].layer == 2, "tie went to layer %d", r.removed[0].layer);
    pb_prune_result_free(&r);
    pb_model_free(m);
}

static void expect_error(pb_model *m, const pb_prune_opts *o, const char *want, bool importance) {
    pb_err err = {0};
    int64_t before = pb_model_params(m);
    int L = m->cfg.n_layers;
    int rc;
    if (importance) {
        pb_scores s;
        rc = pb_importance(m, o, &s, &err);
        if (rc == 0) pb_scores_free(&s);
    } else {
        pb_prune_result r;
        rc = pb_prune(m, o, &r, &err);
        if (rc == 0) pb_prune_result_free(&r);
    }
    CHECK_MSG(rc != 0 && strstr(err.msg, want), "expected an error containing '%s', got rc %d '%s'", want, rc,
              err.msg);
    CHECK_MSG(!strchr(err.msg, '\n'), "multi-line error: %s", err.msg);
    CHECK_MSG(m->cfg.n_layers == L && pb_model_params(m) == before, "the failed call changed the model");
}

static void test_bad_options(void) {
    pb_calib c = calib();
    pb_model *m = model(5);
    pb_prune_opts o = opts("nonsense", &c);
    o.count = 1;
    expect_error(m, &o, "prune: unknown depth criterion 'nonsense' (magnitude, taylor, ppl)", false);
    expect_error(m, &o, "unknown depth criterion", true);
    o = opts("taylor", NULL);
    o.count = 1;
    expect_error(m, &o, "prune: criterion taylor needs calibration data (--calib NAME|FILE)", false);
    expect_error(m, &o, "criterion taylor needs calibration data", true);
    o.criterion = NULL; /* the default is taylor */
    expect_error(m, &o, "prune: criterion taylor needs calibration data", false);
    o.criterion = "ppl";
    expect_error(m, &o, "prune: criterion ppl needs calibration data (--calib NAME|FILE)", false);
    o = opts("magnitude", NULL);
    o.count = 7;
    o.protect_first = 4, o.protect_last = 2;
    expect_error(m, &o, "prune: removing 7 blocks needs more than the 2 unprotected ones (--protect-first 4 "
                        "--protect-last 2)", false);
    o.iterative = true;
    expect_error(m, &o, "removing 7 blocks needs more than the 2 unprotected ones", false);
    o.iterative = false;
    o.granularity = PB_S_ATTN;
    o.count = 3;
    expect_error(m, &o, "prune: removing 3 attention modules needs more than the 2 unprotected ones", false);
    o.granularity = PB_S_BLOCK;
    o.module_joint = true;
    o.count = 5;
    expect_error(m, &o, "prune: removing 5 modules needs more than the 4 unprotected ones", false);
    o.module_joint = false;
    /* a ratio that needs protected blocks: a block is 7,744 parameters (7,808 with the o and
     * down biases of layers 1, 4, 7) of 65,376; 0.9 of them is 58,838, which 7 blocks fit */
    o.count = -1;
    o.ratio = 0.9;
    CHECK(pb_model_params(m) == 65376 && pb_layer_params(m, 0) == 7744 && pb_layer_params(m, 1) == 7808);
    expect_error(m, &o, "prune: removing 7 blocks needs more than the 2 unprotected ones", false);
    o.iterative = true;
    expect_error(m, &o, "prune: removing 7 blocks needs more than the 2 unprotected ones", false);
    o = opts("magnitude", NULL);
    o.count = 1;
    o.native = 0.5;
    expect_error(m, &o, "prune: method depth takes --ratio or --num-blocks, not --group-ratio / --p", false);
    o.native = -1;
    o.granularity = PB_S_HEAD;
    expect_error(m, &o, "granularity block, attn, mlp or module), not head", false);
    expect_error(m, &o, "not head", true);
    o.granularity = PB_S_BLOCK;
    o.count = -1;
    expect_error(m, &o, "prune: method depth needs --num-blocks K or --ratio R", false);
    o.count = 1;
    o.ratio = 0.1;
    expect_error(m, &o, "prune: method depth takes --num-blocks or --ratio, not both", false);
    o.ratio = -1;
    o.layer_start = 0, o.layer_end = 4;
    expect_error(m, &o, "does not take --layers", false);
    o.layer_start = o.layer_end = -1;
    o.module_joint = true;
    expect_error(m, &o, "ask for granularity attn and mlp separately", true);
    o.module_joint = false;
    o.protect_first = 5, o.protect_last = 4;
    expect_error(m, &o, "do not fit 8 layers", false);
    pb_model_free(m);
}

/* Importance never changes the model (the ppl criterion switches modules off in a copy). */
static void test_importance_untouched(void) {
    pb_calib c = calib();
    pb_err err;
    pb_model *m = model(6);
    static float a[CN * CT * V], b[CN * CT * V];
    logits_of(m, a);
    const char *crits[] = {"magnitude", "taylor", "ppl"};
    pb_struct_kind kinds[] = {PB_S_BLOCK, PB_S_ATTN, PB_S_MLP};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) {
            pb_prune_opts o = opts(crits[i], &c);
            o.granularity = kinds[k];
            pb_scores s;
            REQUIRE(pb_importance(m, &o, &s, &err) == 0, "%s", err.msg);
            CHECK(s.kind == kinds[k] && s.n_layers == NL);
            for (int l = 0; l < NL; l++) CHECK(s.count[l] == 1 && isfinite(s.score[l][0]) && s.score[l][0] > 0);
            pb_scores_free(&s);
        }
    for (int l = 0; l < NL; l++) CHECK(m->layers[l].has_attn && m->layers[l].has_mlp);
    logits_of(m, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    pb_model_free(m);
}

/* Module removal keeps the layers (without attention or MLP) and they still run; masked
 * and sliced give the same function for blocks, modules and the joint ranking. */
static void test_modules_and_mask(void) {
    pb_calib c = calib();
    static float a[CN * CT * V], b[CN * CT * V];
    struct { pb_struct_kind g; bool joint; int count; } cases[] = {
        {PB_S_BLOCK, false, 2}, {PB_S_ATTN, false, 3}, {PB_S_MLP, false, 3}, {PB_S_BLOCK, true, 4}};
    const char *crits[] = {"magnitude", "taylor", "ppl"};
    for (int ci = 0; ci < 3; ci++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            pb_prune_opts o = opts(crits[ci], &c);
            o.granularity = cases[i].g;
            o.module_joint = cases[i].joint;
            o.count = cases[i].count;
            o.protect_first = 1;
            pb_prune_result rs, rm;
            pb_model *ms = pruned(7, &o, &rs);
            o.mask_only = true;
            pb_model *mm = pruned(7, &o, &rm);
            CHECK_MSG(same_removed(&rs, &rm), "%s case %zu: masked removed another set", crits[ci], i);
            CHECK(rs.n_removed == cases[i].count);
            int n_attn = 0, n_mlp = 0;
            for (int l = 0; l < ms->cfg.n_layers; l++) {
                n_attn += !ms->layers[l].has_attn;
                n_mlp += !ms->layers[l].has_mlp;
            }
            int want_attn = 0, want_mlp = 0;
            for (int j = 0; j < rs.n_removed; j++) {
                want_attn += rs.removed[j].kind == PB_S_ATTN;
                want_mlp += rs.removed[j].kind == PB_S_MLP;
                CHECK(rs.removed[j].layer >= 1);
                CHECK(cases[i].joint ? rs.removed[j].kind != PB_S_BLOCK : rs.removed[j].kind == cases[i].g);
            }
            CHECK(n_attn == want_attn && n_mlp == want_mlp);
            CHECK(ms->cfg.n_layers == NL - (cases[i].g == PB_S_BLOCK && !cases[i].joint ? cases[i].count : 0));
            int64_t gone = rs.params_before - rs.params_after;
            CHECK(gone > 0 && rm.params_before == rm.params_after); /* masked keeps every shape */
            logits_of(ms, a);
            logits_of(mm, b);
            CHECK_MSG(all_finite(a, sizeof a / sizeof a[0]), "%s case %zu: non-finite logits", crits[ci], i);
            double e = pb_test_rel_err(a, b, sizeof a / sizeof a[0]);
            worst_mask_err = e > worst_mask_err ? e : worst_mask_err;
            CHECK_MSG(e <= MASK_TOL, "%s case %zu: masked vs sliced logits differ by %.2e", crits[ci], i, e);
            /* and the pruned model is a different function from the original */
            pb_model *orig = model(7);
            logits_of(orig, b);
            CHECK(pb_test_rel_err(a, b, sizeof a / sizeof a[0]) > 1e-3);
            pb_model_free(orig);
            pb_model_free(ms);
            pb_model_free(mm);
            pb_prune_result_free(&rs);
            pb_prune_result_free(&rm);
        }
    /* a layer without attention has no attention candidate: prune every attention module,
     * then one more must fail, naming 0 candidates */
    pb_prune_opts o = opts("magnitude", NULL);
    o.granularity = PB_S_ATTN;
    o.count = NL;
    pb_prune_result r;
    pb_err err;
    pb_model *m = pruned(8, &o, &r);
    CHECK(r.n_removed == NL);
    for (int l = 0; l < NL; l++) CHECK(!m->layers[l].has_attn && m->layers[l].has_mlp);
    logits_of(m, a);
    CHECK(all_finite(a, sizeof a / sizeof a[0]));
    pb_prune_result_free(&r);
    o.count = 1;
    expect_error(m, &o, "removing 1 attention modules needs more than the 0 unprotected ones", false);
    o.granularity = PB_S_MLP;
    o.count = NL;
    REQUIRE(pb_prune(m, &o, &r, &err) == 0, "%s", err.msg);
    for (int l = 0; l < NL; l++) CHECK(!m->layers[l].has_attn && !m->layers[l].has_mlp);
    logits_of(m, a); /* only embedding, final norm and head are left */
    CHECK(all_finite(a, sizeof a / sizeof a[0]));
    pb_prune_result_free(&r);
    pb_model_free(m);
}

/* Ratio -> count: the real run on weights against the dry run on the shape alone. */
static void test_ratio_matches_plan(void) {
    pb_err err;
    const double ratios[] = {0.0, 0.05, 0.2, 0.3, 0.5};
    for (size_t i = 0; i < sizeof ratios / sizeof ratios[0]; i++) {
        pb_prune_opts o = opts("magnitude", NULL);
        o.ratio = ratios[i];
        o.protect_first = 1;
        o.protect_last = 1;
        /* blocks alike in shape (no biases): the model(…) layers with biases would differ */
        pb_config c = base_cfg(NL);
        rm_layer ly[NL];
        for (int l = 0; l < NL; l++) ly[l] = (rm_layer){4, 2, 8, 48, NULL};
        pb_model *m = rm_build(&c, ly, 9, RM_SCALED), *shape;
        pb_prune_result r, p;
        REQUIRE(pb_prune(m, &o, &r, &err) == 0, "%s", err.msg);
        REQUIRE(pb_model_create(&shape, &c, false, &err) == 0, "%s", err.msg);
        REQUIRE(pb_prune_dry_run(shape, &o, &p, &err) == 0, "%s", err.msg);
        int64_t block = pb_layer_params(shape, 0);
        int k = (int)(ratios[i] * (double)r.params_before / (double)block);
        CHECK_MSG(r.n_removed == k && shape->cfg.n_layers == NL - k && m->cfg.n_layers == NL - k,
                  "ratio %g: removed %d, plan %d blocks, arithmetic %d", ratios[i], r.n_removed,
                  NL - shape->cfg.n_layers, k);
        CHECK(r.params_before == p.params_before && r.params_after == p.params_after);
        CHECK(r.params_after == r.params_before - k * block);
        o.iterative = true;
        pb_prune_result ri;
        pb_model *mi = rm_build(&c, ly, 9, RM_SCALED);
        REQUIRE(pb_prune(mi, &o, &ri, &err) == 0, "%s", err.msg);
        CHECK(ri.n_removed == k);
        pb_prune_result_free(&ri);
        pb_model_free(mi);
        pb_prune_result_free(&r);
        pb_prune_result_free(&p);
        pb_model_free(m);
        pb_model_free(shape);
    }
}

/* Shortened LLaMA's labels on LLaMA-7B (reference §1.3): 20% -> 6 blocks -> 5,524,115,456
 * parameters, 35% -> 11. One block is 4*4096^2 + 3*4096*11008 weights + 2*4096 gains. */
static void test_llama7b_plan(void) {
    char dir[4096], path[4096];
    pb_test_fresh_dir(dir, sizeof dir, "prune_depth_llama7b");
    pb_test_join(path, sizeof path, dir, "config.json");
    const char *cfg = "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 4096, "
                      "\"intermediate_size\": 11008, \"num_hidden_layers\": 32, \"num_attention_heads\": 32, "
                      "\"num_key_value_heads\": 32, \"vocab_size\": 32000, \"rms_norm_eps\": 1e-6, "
                      "\"max_position_embeddings\": 2048, \"tie_word_embeddings\": false, \"hidden_act\": \"silu\"}";
    pb_test_write_file(path, cfg, strlen(cfg));
    const int64_t total = 6738415616LL, block = 202383360LL;
    CHECK(4LL * 4096 * 4096 + 3LL * 4096 * 11008 + 2 * 4096 == block);
    struct { double ratio; int count, pf, pl, k; int64_t after; } cases[] = {
        {0.20, -1, 0, 0, 6, 5524115456LL},  {0.35, -1, 0, 0, 11, 4512198656LL}, {0.20, -1, 4, 2, 6, 5524115456LL},
        {0.35, -1, 4, 2, 11, 4512198656LL}, {-1, 9, 4, 2, 9, total - 9 * block},  {0.0, -1, 4, 2, 0, total},
        {0.8, -1, 4, 2, 26, total - 26 * block}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pb_model *m;
        pb_err err;
        REQUIRE(pb_hf_config_load(path, false, &m, &err) == 0, "%s", err.msg);
        CHECK(pb_model_params(m) == total && pb_layer_params(m, 0) == block);
        pb_prune_opts o = opts(NULL, NULL); /* default criterion taylor: the plan needs no data */
        o.ratio = cases[i].ratio;
        o.count = cases[i].count;
        o.protect_first = cases[i].pf;
        o.protect_last = cases[i].pl;
        pb_prune_result r;
        REQUIRE(pb_prune_dry_run(m, &o, &r, &err) == 0, "case %zu: %s", i, err.msg);
        CHECK_MSG(m->cfg.n_layers == 32 - cases[i].k, "case %zu: %d layers left", i, m->cfg.n_layers);
        CHECK_MSG(r.params_before == total && r.params_after == cases[i].after, "case %zu: %lld -> %lld", i,
                  (long long)r.params_before, (long long)r.params_after);
        CHECK(r.params_after_no_embed == r.params_before_no_embed - cases[i].k * block);
        pb_prune_result_free(&r);
        pb_model_free(m);
    }
    /* plans it cannot make */
    struct {
        double ratio;
        int count;
        pb_struct_kind g;
        bool joint;
        int pf, pl;
        const char *criterion, *want;
    } bad[] = {
        {0.85, -1, PB_S_BLOCK, false, 4, 2, NULL,
         "prune: removing 28 blocks needs more than the 26 unprotected ones (--protect-first 4 --protect-last 2)"},
        {-1, 27, PB_S_BLOCK, false, 4, 2, NULL, "removing 27 blocks needs more than the 26 unprotected ones"},
        {0.2, -1, PB_S_ATTN, false, 0, 0, NULL, "plans whole blocks only"},
        {0.2, -1, PB_S_BLOCK, true, 0, 0, NULL, "plans whole blocks only"},
        {-1, -1, PB_S_BLOCK, false, 0, 0, NULL, "needs --num-blocks K or --ratio R"},
        {0.2, -1, PB_S_BLOCK, false, 0, 0, "l2", "unknown depth criterion 'l2'"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pb_model *m;
        pb_err err = {0};
        REQUIRE(pb_hf_config_load(path, false, &m, &err) == 0, "%s", err.msg);
        pb_prune_opts o = opts(bad[i].criterion, NULL);
        o.ratio = bad[i].ratio, o.count = bad[i].count, o.granularity = bad[i].g, o.module_joint = bad[i].joint;
        o.protect_first = bad[i].pf, o.protect_last = bad[i].pl;
        pb_prune_result r;
        int rc = pb_prune_dry_run(m, &o, &r, &err);
        CHECK_MSG(rc != 0 && strstr(err.msg, bad[i].want), "bad plan %zu: rc %d '%s'", i, rc, err.msg);
        CHECK(m->cfg.n_layers == 32);
        pb_model_free(m);
    }
    /* blocks of different shapes: the plan needs the weights */
    pb_config c = base_cfg(3);
    pb_model *m;
    pb_err err = {0};
    REQUIRE(pb_model_create(&m, &c, false, &err) == 0, "%s", err.msg);
    m->layers[1].ffn_dim = 24;
    pb_prune_opts o = opts("magnitude", NULL);
    o.count = 1;
    pb_prune_result r;
    CHECK(pb_prune_dry_run(m, &o, &r, &err) != 0 && strstr(err.msg, "layer 1 differs from layer 0"));
    pb_model_free(m);
}

int main(void) {
    pb_set_threads(2);
    test_iterative("ppl");
    test_iterative("taylor");
    test_iterative("magnitude");
    test_protection_and_ties();
    test_bad_options();
    test_importance_untouched();
    test_modules_and_mask();
    test_ratio_matches_plan();
    test_llama7b_plan();
    fprintf(stderr, "masked vs sliced logits: worst relative difference %.2e (tolerance %g)\n", worst_mask_err, MASK_TOL);
    return pb_test_done("prune_depth");
}
