/* test_act_bad.c — Wanda-sp and FLAP refuse bad options with one-line messages that name the
 * method and the problem, before touching the model: unknown metric / structure / criterion,
 * missing calibration, ratio and p both (or neither) given, p out of range, options of other
 * methods, a one-window fluctuation, an unreachable ratio, an importance granularity they do
 * not score, token ids outside the vocabulary, and the FLAP al-am dry run (needs weights). */
#include "pb_test_model.h"
#include "prune.h"

static const pb_config CFG = {.dim = 32, .vocab_size = 50, .max_seq_len = 64, .norm_eps = 1e-5f, .rope_theta = 10000.f,
                              .bos_id = 1, .eos_id = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8, .ffn_dim = 48,
                              .n_layers = 2};
static const rm_layer LAYERS[] = {{4, 2, 8, 48, ""}, {4, 2, 8, 48, "oD"}};

static uint64_t weights_hash(const pb_model *m) {
    uint64_t h = 1469598103934665603ull;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        const float *t[] = {L->wq, L->wo, L->w_down, L->w_gate, L->bo, L->b_down};
        size_t n[] = {(size_t)L->n_heads * L->head_dim * m->cfg.dim, (size_t)L->n_heads * L->head_dim * m->cfg.dim,
                      (size_t)L->ffn_dim * m->cfg.dim, (size_t)L->ffn_dim * m->cfg.dim, (size_t)m->cfg.dim,
                      (size_t)m->cfg.dim};
        for (int k = 0; k < 6; k++)
            for (size_t i = 0; t[k] && i < n[k]; i++) {
                uint32_t u;
                memcpy(&u, &t[k][i], 4);
                h = (h ^ u) * 1099511628211ull;
            }
        h = (h ^ (uint64_t)(L->n_heads * 131 + L->ffn_dim)) * 1099511628211ull;
        h = (h ^ (uint64_t)((L->bo != NULL) * 2 + (L->b_down != NULL))) * 1099511628211ull;
    }
    return h;
}

/* pb_prune must fail with a one-line message containing each of want[] and leave m as it was. */
static void expect_fail(const char *label, const pb_prune_opts *o, const char *want1, const char *want2) {
    pb_model *m = rm_build(&CFG, LAYERS, 1, RM_SCALED);
    uint64_t before = weights_hash(m);
    pb_prune_result r;
    pb_err err = {0};
    int rc = pb_prune(m, o, &r, &err);
    CHECK_MSG(rc != 0, "%s: accepted", label);
    if (rc == 0) pb_prune_result_free(&r);
    CHECK_MSG(strstr(err.msg, want1) && (!want2 || strstr(err.msg, want2)), "%s: message '%s' lacks '%s'%s%s", label,
              err.msg, want1, want2 ? " / " : "", want2 ? want2 : "");
    CHECK_MSG(!strchr(err.msg, '\n'), "%s: message spans lines", label);
    CHECK_MSG(weights_hash(m) == before, "%s: the model changed", label);
    fprintf(stderr, "ok %-34s %s\n", label, err.msg);
    pb_model_free(m);
}

static pb_prune_opts base(const char *method, const pb_calib *c) {
    pb_prune_opts o;
    pb_prune_opts_default(&o);
    o.method = method;
    o.native = 0.3;
    o.calib = c;
    return o;
}

int main(void) {
    int32_t ids[4 * 8];
    for (int i = 0; i < 4 * 8; i++) ids[i] = (i * 7 + 3) % CFG.vocab_size;
    pb_calib c = {.n = 4, .T = 8, .ids = ids}, one = {.n = 1, .T = 8, .ids = ids};
    pb_prune_opts o;
    const char *methods[] = {"wanda-sp", "flap"};
    for (int k = 0; k < 2; k++) {
        const char *M = methods[k];
        char label[96];
#define LABEL(x) (snprintf(label, sizeof label, "%s: %s", M, x), label)
        o = base(M, NULL);
        expect_fail(LABEL("no calibration"), &o, M, "calibration");
        o = base(M, &c);
        o.ratio = 0.2;
        expect_fail(LABEL("ratio and p"), &o, M, "not both");
        o = base(M, &c);
        o.native = -1.0;
        expect_fail(LABEL("neither ratio nor p"), &o, M, "--ratio");
        o = base(M, &c);
        o.native = 1.0;
        expect_fail(LABEL("p = 1"), &o, M, "outside [0, 1)");
        o = base(M, &c);
        o.native = NAN;
        expect_fail(LABEL("p = NaN"), &o, M, "outside [0, 1)");
        o = base(M, &c);
        o.count = 2;
        expect_fail(LABEL("--num-blocks"), &o, M, "--num-blocks");
        o = base(M, &c);
        o.layer_start = 0, o.layer_end = 1;
        expect_fail(LABEL("--layers"), &o, M, "--layers");
        o = base(M, &c);
        o.aggregation = "sum";
        expect_fail(LABEL("--aggregation"), &o, M, "--aggregation");
        o = base(M, &c);
        o.native = -1.0, o.ratio = 0.97; /* attention+MLP are ~70% of this model */
        expect_fail(LABEL("unreachable ratio"), &o, M, "out of reach");
        o = base(M, &c);
        int32_t bad[4 * 8];
        memcpy(bad, ids, sizeof bad);
        bad[13] = CFG.vocab_size;
        pb_calib cb = {.n = 4, .T = 8, .ids = bad};
        o.calib = &cb;
        expect_fail(LABEL("token outside vocabulary"), &o, M, "token id 50");
    }
    o = base("flap", &c);
    o.metric = "wanda";
    expect_fail("flap: unknown metric", &o, "flap", "unknown metric 'wanda'");
    o = base("flap", &c);
    o.structure = "ul-mm";
    expect_fail("flap: unknown structure", &o, "flap", "unknown structure 'ul-mm'");
    o = base("flap", &c);
    o.criterion = "ifv", o.metric = "wifv";
    expect_fail("flap: criterion vs metric", &o, "flap", "disagree");
    o = base("flap", &one);
    expect_fail("flap: wifv with one window", &o, "flap", "at least 2");
    o = base("wanda-sp", &c);
    o.metric = "wifv";
    expect_fail("wanda-sp: a FLAP option", &o, "wanda-sp", "FLAP");
    o = base("wanda-sp", &c);
    o.criterion = "l2";
    expect_fail("wanda-sp: unknown criterion", &o, "wanda-sp", "unknown criterion 'l2'");

    /* FLAP wifn needs no fluctuation: one window is fine; and the criterion may name the metric */
    pb_model *m = rm_build(&CFG, LAYERS, 1, RM_SCALED);
    pb_prune_result r;
    pb_err err;
    o = base("flap", &one);
    o.metric = "wifn";
    CHECK_MSG(pb_prune(m, &o, &r, &err) == 0, "flap wifn, one window: %s", err.msg);
    pb_prune_result_free(&r);
    pb_model_free(m);

    /* importance: head / channel only; counts follow the model */
    m = rm_build(&CFG, LAYERS, 1, RM_SCALED);
    pb_scores s;
    for (int k = 0; k < 2; k++) {
        o = base(methods[k], &c);
        o.native = -1.0; /* importance needs no amount */
        o.granularity = PB_S_BLOCK;
        CHECK_MSG(pb_importance(m, &o, &s, &err) != 0 && strstr(err.msg, "granularity head or channel"),
                  "%s importance at block: '%s'", methods[k], err.msg);
        o.granularity = PB_S_HEAD;
        if (k) o.criterion = "wifn";
        REQUIRE(pb_importance(m, &o, &s, &err) == 0, "%s", err.msg);
        CHECK(s.n_layers == 2 && s.count[0] == 2 && s.count[1] == 2);
        pb_scores_free(&s);
    }
    /* the dry run: FLAP al-am needs the weights; ul-um and wanda-sp plan */
    o = base("flap", NULL);
    CHECK_MSG(pb_prune_dry_run(m, &o, &r, &err) != 0 && strstr(err.msg, "al-am") && strstr(err.msg, "needs the weights"),
              "flap al-am dry run: '%s'", err.msg);
    pb_model_free(m);
    return pb_test_done("prune_act_bad");
}
