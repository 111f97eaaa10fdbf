/* test_act_slice.c — Wanda-sp and FLAP: the sliced model computes what the masked model
 * (plus FLAP's compensated biases) computes; a layer that loses all its head units runs
 * without attention; --ratio picks the p whose removal is closest; the dry-run plan gives the
 * run's shapes; p = 0 removes nothing. Random in-memory models (MHA, GQA, biases, a one-unit
 * layer) and, when ../shared is present, stories260K on TinyStories windows. */
#include "load.h"
#include "pb_test_model.h"
#include "prune.h"

/* Sliced against masked logits, max|a - b| / max|b|: both models compute the same sums, the
 * masked one with extra exact zeros; only the fp32 summation order of GEMMs of different
 * widths differs (~1e-7 relative after a few layers, as in tests/model). 1e-5 is that with
 * margin; a structure left in one model and not the other moves logits by 1e-3 or more. */
#define SLICE_TOL 1e-5
/* Removing structures or adding FLAP's bias must move the logits by far more than rounding. */
#define MOVED 1e-3

static const pb_config CFG = {.dim = 32, .vocab_size = 50, .max_seq_len = 64, .norm_eps = 1e-5f, .rope_theta = 10000.f,
                              .bos_id = 1, .eos_id = 2, .n_heads = 4, .n_kv_heads = 4, .head_dim = 8, .ffn_dim = 48};
static const rm_layer MHA[] = {{4, 4, 8, 48, ""}, {4, 4, 8, 48, ""}, {4, 4, 8, 48, ""}};
/* GQA with every bias, plain GQA, and a layer with one KV unit (its FLAP head score is 0, so
 * a large p takes its whole attention) */
static const rm_layer GQA[] = {{8, 2, 8, 64, "qkvoGUD"}, {8, 2, 8, 64, ""}, {4, 1, 8, 40, "oD"}, {4, 4, 8, 40, ""}};

typedef struct {
    const rm_layer *layers;
    int n_layers;
    uint64_t seed;
    const char *path; /* a real model instead */
} model_src;

static pb_model *make(const model_src *s) {
    if (s->path) {
        pb_model *m;
        pb_err err;
        REQUIRE(pb_model_load(s->path, NULL, &m, NULL, &err) == 0, "%s", err.msg);
        return m;
    }
    pb_config c = CFG;
    c.n_layers = s->n_layers;
    return rm_build(&c, s->layers, s->seed, RM_SCALED);
}

static void random_ids(int32_t *ids, int n, int V, uint64_t seed) {
    uint64_t st = seed;
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(pb_rng_next(&st) % (uint64_t)V);
}

static float *logits(const pb_model *m, const int32_t *ids, int B, int T) {
    float *out = malloc(sizeof(float) * (size_t)B * T * m->cfg.vocab_size);
    pb_fwd_state *st = pb_fwd_state_new();
    pb_err err;
    REQUIRE(out && st, "oom");
    REQUIRE(pb_model_forward(m, st, ids, B, T, NULL, out, false, &err) == 0, "forward: %s", err.msg);
    pb_fwd_state_free(st);
    return out;
}

static pb_prune_opts opts(const char *method, const char *metric, const char *structure, double p, const pb_calib *c) {
    pb_prune_opts o;
    pb_prune_opts_default(&o);
    o.method = method;
    o.metric = metric;
    o.structure = structure;
    o.native = p;
    o.calib = c;
    return o;
}

static int count_kind(const pb_prune_result *r, pb_struct_kind k) {
    int n = 0;
    for (int i = 0; i < r->n_removed; i++) n += r->removed[i].kind == k;
    return n;
}

/* Prunes a sliced and a masked copy; compares structures and logits; returns the sliced model. */
static pb_model *slice_vs_mask(const char *label, const model_src *src, const pb_prune_opts *o0, const int32_t *ids,
                               int B, int T, pb_prune_result *out) {
    pb_model *dense = make(src), *sl = make(src), *mk = make(src);
    pb_prune_opts o = *o0;
    pb_prune_result rs, rm;
    pb_err err;
    REQUIRE(pb_prune(sl, &o, &rs, &err) == 0, "%s: %s", label, err.msg);
    o.mask_only = true;
    REQUIRE(pb_prune(mk, &o, &rm, &err) == 0, "%s (mask): %s", label, err.msg);
    CHECK_MSG(rs.n_removed > 0, "%s: nothing removed", label);
    CHECK_MSG(rs.n_removed == rm.n_removed && !memcmp(rs.removed, rm.removed, sizeof(pb_struct) * (size_t)rs.n_removed),
              "%s: sliced and masked runs removed different structures", label);
    float *a = logits(sl, ids, B, T), *b = logits(mk, ids, B, T), *d = logits(dense, ids, B, T);
    size_t n = (size_t)B * T * sl->cfg.vocab_size;
    double e = pb_test_rel_err(a, b, n), moved = pb_test_rel_err(d, b, n);
    CHECK_MSG(e <= SLICE_TOL, "%s: sliced vs masked logits %.2e", label, e);
    CHECK_MSG(moved > MOVED, "%s: pruning left the logits unchanged (%.2e)", label, moved);
    fprintf(stderr, "%-44s removed %3d heads %4d channels, sliced vs masked %.1e (dense vs pruned %.1e)\n", label,
            count_kind(&rs, PB_S_HEAD), count_kind(&rs, PB_S_CHANNEL), e, moved);
    free(a), free(b), free(d);
    pb_model_free(mk);
    pb_model_free(dense);
    pb_prune_result_free(&rm);
    *out = rs;
    return sl;
}

static void layer_loses_attention(const pb_calib *c, const int32_t *ids, int B, int T) {
    model_src src = {GQA, 4, 7, NULL};
    pb_prune_opts o = opts("flap", NULL, NULL, 0.6, c);
    pb_prune_result r;
    pb_model *m = slice_vs_mask("flap al-am p=0.6 (one layer loses its heads)", &src, &o, ids, B, T, &r);
    REQUIRE(!m->layers[2].has_attn, "test setup: layer 2 (one KV unit, head score 0) should lose its attention at p=0.6");
    CHECK(m->layers[2].bo == NULL && m->layers[2].has_mlp);
    /* the compensation of the other layers is there: same run without it differs */
    pb_model *nb = make(&src);
    pb_prune_result r2;
    pb_err err;
    o.no_bias_compensation = true;
    REQUIRE(pb_prune(nb, &o, &r2, &err) == 0, "%s", err.msg);
    float *a = logits(m, ids, B, T), *b = logits(nb, ids, B, T);
    size_t n = (size_t)B * T * m->cfg.vocab_size;
    for (size_t i = 0; i < n; i++) CHECK_MSG(isfinite(a[i]), "logit %zu not finite", i);
    double e = pb_test_rel_err(a, b, n);
    CHECK_MSG(e > MOVED, "bias compensation changed nothing (%.2e)", e);
    CHECK(m->layers[1].bo != NULL && nb->layers[1].bo == NULL);
    free(a), free(b);
    pb_model_free(m);
    pb_model_free(nb);
    pb_prune_result_free(&r);
    pb_prune_result_free(&r2);
}

/* --ratio: the removal is the closest to ratio * params among native p on a 1/200 grid (and
 * the removal with p = 0 is nothing). */
static void ratio_closest(const char *method, const char *structure, const pb_calib *c) {
    model_src src = {GQA, 4, 11, NULL};
    pb_model *m = make(&src);
    pb_prune_opts o = opts(method, NULL, structure, -1.0, c);
    o.ratio = 0.3;
    pb_prune_result r;
    pb_err err;
    REQUIRE(pb_prune(m, &o, &r, &err) == 0, "%s", err.msg);
    double target = 0.3 * (double)r.params_before, got = fabs((double)(r.params_before - r.params_after) - target);
    double best_grid = INFINITY;
    for (int k = 0; k < 200; k++) {
        pb_model *g = make(&src);
        pb_prune_opts q = opts(method, NULL, structure, k / 200.0, c);
        pb_prune_result rg;
        REQUIRE(pb_prune(g, &q, &rg, &err) == 0, "%s", err.msg);
        double e = fabs((double)(rg.params_before - rg.params_after) - target);
        if (e < best_grid) best_grid = e;
        if (k == 0) CHECK_MSG(rg.n_removed == 0 && rg.params_after == rg.params_before, "%s p=0 removed something", method);
        pb_prune_result_free(&rg);
        pb_model_free(g);
    }
    CHECK_MSG(got <= best_grid, "%s %s --ratio 0.3: off by %.0f params, a grid p gets within %.0f", method,
              structure ? structure : "", got, best_grid);
    fprintf(stderr, "%-44s removed %lld of %lld params (target %.0f, off by %.0f; best on the p grid %.0f)\n",
            structure ? structure : method, (long long)(r.params_before - r.params_after), (long long)r.params_before,
            target, got, best_grid);
    pb_prune_result_free(&r);
    pb_model_free(m);
}

/* prune --dry-run on a shape gives the run's layer shapes (uniform per-layer counts). */
static void plan_matches_run(const char *method, const char *structure, const pb_calib *c) {
    model_src src = {MHA, 3, 5, NULL};
    pb_model *m = make(&src), *shape = make(&src);
    pb_prune_opts o = opts(method, NULL, structure, -1.0, c);
    o.ratio = 0.25;
    pb_prune_result r, rp;
    pb_err err;
    REQUIRE(pb_prune(m, &o, &r, &err) == 0, "%s", err.msg);
    REQUIRE(pb_prune_dry_run(shape, &o, &rp, &err) == 0, "%s", err.msg);
    for (int l = 0; l < m->cfg.n_layers; l++)
        CHECK_MSG(m->layers[l].n_kv_heads == shape->layers[l].n_kv_heads &&
                      m->layers[l].n_heads == shape->layers[l].n_heads && m->layers[l].ffn_dim == shape->layers[l].ffn_dim,
                  "%s: plan and run disagree on layer %d", method, l);
    /* the run adds FLAP's biases, which a shape cannot hold; wanda-sp adds none */
    if (!strcmp(method, "wanda-sp")) CHECK(rp.params_after == r.params_after);
    pb_prune_result_free(&r);
    pb_prune_result_free(&rp);
    pb_model_free(m);
    pb_model_free(shape);
}

int main(void) {
    pb_set_threads(2);
    enum { N = 5, TC = 16, B = 2, T = 20 };
    int32_t cal[N * TC], ids[B * T];
    random_ids(cal, N * TC, CFG.vocab_size, 3);
    random_ids(ids, B * T, CFG.vocab_size, 4);
    pb_calib c = {.n = N, .T = TC, .ids = cal};
    model_src mha = {MHA, 3, 1, NULL}, gqa = {GQA, 4, 2, NULL};
    struct { const char *label, *method, *metric, *structure; double p; bool nobias; } cases[] = {
        {"wanda-sp p=0.4", "wanda-sp", NULL, NULL, 0.4, false},
        {"flap wifv al-am p=0.4", "flap", "wifv", "al-am", 0.4, false},
        {"flap ifv ul-um p=0.3", "flap", "ifv", "ul-um", 0.3, false},
        {"flap wifn al-am p=0.5", "flap", "wifn", "al-am", 0.5, false},
        {"flap wifv al-am p=0.4 no bias", "flap", "wifv", "al-am", 0.4, true},
    };
    const model_src *srcs[2] = {&mha, &gqa};
    for (int s = 0; s < 2; s++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            char label[128];
            snprintf(label, sizeof label, "%s %s", s ? "gqa" : "mha", cases[k].label);
            pb_prune_opts o = opts(cases[k].method, cases[k].metric, cases[k].structure, cases[k].p, &c);
            o.no_bias_compensation = cases[k].nobias;
            pb_prune_result r;
            pb_model *m = slice_vs_mask(label, srcs[s], &o, ids, B, T, &r);
            pb_prune_result_free(&r);
            pb_model_free(m);
        }
    layer_loses_attention(&c, ids, B, T);
    ratio_closest("wanda-sp", NULL, &c);
    ratio_closest("flap", "ul-um", &c);
    ratio_closest("flap", "al-am", &c);
    plan_matches_run("wanda-sp", NULL, &c);
    plan_matches_run("flap", "ul-um", &c);

    const char *shared = getenv("PB_SHARED");
    char gguf[4096], data[4096];
    snprintf(gguf, sizeof gguf, "%s/models/stories260K/stories260K.gguf", shared ? shared : "../shared");
    snprintf(data, sizeof data, "%s/data", shared ? shared : "../shared");
    FILE *f = fopen(gguf, "rb");
    if (!f) {
        fprintf(stderr, "note: %s not found; stories260K cases skipped\n", gguf);
        return pb_test_done("prune_act_slice");
    }
    fclose(f);
    pb_model *m;
    pb_tokenizer *tok;
    pb_err err;
    REQUIRE(pb_model_load(gguf, NULL, &m, &tok, &err) == 0 && tok, "%s", err.msg);
    pb_calib sc;
    REQUIRE(pb_calib_load(&sc, "tinystories", NULL, data, tok, 8, 64, PB_CALIB_CONTIGUOUS, 0, &err) == 0,
            "%s", err.msg);
    int32_t sids[2 * 48];
    random_ids(sids, 2 * 48, m->cfg.vocab_size, 9);
    model_src st = {NULL, 0, 0, gguf};
    const char *sm[][3] = {{"wanda-sp", NULL, NULL}, {"flap", "wifv", "al-am"}, {"flap", "wifn", "ul-um"}};
    for (int k = 0; k < 3; k++) {
        char label[128];
        snprintf(label, sizeof label, "stories260K %s %s p=0.3", sm[k][0], sm[k][2] ? sm[k][2] : "");
        pb_prune_opts o = opts(sm[k][0], sm[k][1], sm[k][2], 0.3, &sc);
        pb_prune_result r;
        pb_model *p = slice_vs_mask(label, &st, &o, sids, 2, 48, &r);
        pb_prune_result_free(&r);
        pb_model_free(p);
    }
    pb_calib_free(&sc);
    pb_tok_free(tok);
    pb_model_free(m);
    return pb_test_done("prune_act_slice");
}
