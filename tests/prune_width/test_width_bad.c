/* test_width_bad.c — bad options for llm-pruner, magnitude and random through pb_prune and
 * pb_importance: each must fail with a one-line message naming the problem and leave the
 * model untouched (the weights are compared bit for bit with an untouched twin), also under
 * ASan/UBSan. Cases: unknown criterion / aggregation, ratio and group ratio both set, no
 * amount, a block count, a group ratio outside [0, 1), a layer range outside the model,
 * missing or empty calibration, calibration ids outside the vocabulary, an aggregation given
 * to a method without one, depth pruning's --iterative / --protect-last, importance at a
 * granularity the methods do not score. */
#include "pb_test_model.h"
#include "prune.h"

static bool same_weights(const pb_model *a, const pb_model *b) {
    size_t d = (size_t)a->cfg.dim;
    for (int l = 0; l < a->cfg.n_layers; l++) {
        const pb_layer *x = &a->layers[l], *y = &b->layers[l];
        if (x->n_heads != y->n_heads || x->n_kv_heads != y->n_kv_heads || x->ffn_dim != y->ffn_dim) return false;
        size_t q = (size_t)x->n_heads * x->head_dim, kv = (size_t)x->n_kv_heads * x->head_dim, f = (size_t)x->ffn_dim;
        if (memcmp(x->wq, y->wq, q * d * 4) || memcmp(x->wk, y->wk, kv * d * 4) || memcmp(x->wv, y->wv, kv * d * 4) ||
            memcmp(x->wo, y->wo, q * d * 4) || memcmp(x->w_gate, y->w_gate, f * d * 4) ||
            memcmp(x->w_up, y->w_up, f * d * 4) || memcmp(x->w_down, y->w_down, f * d * 4))
            return false;
    }
    return true;
}

int main(void) {
    pb_config cfg = {0};
    cfg.dim = 32, cfg.n_layers = 2, cfg.vocab_size = 40, cfg.max_seq_len = 32, cfg.norm_eps = 1e-5f;
    cfg.rope_theta = 10000.0f, cfg.tied_embeddings = true, cfg.bos_id = 1, cfg.eos_id = 2;
    cfg.n_heads = 4, cfg.n_kv_heads = 2, cfg.head_dim = 8, cfg.ffn_dim = 48;
    rm_layer layers[2] = {{4, 2, 8, 48, NULL}, {4, 2, 8, 48, NULL}};
    int32_t ids[2 * 10], bad_ids[2 * 10];
    for (int i = 0; i < 20; i++) ids[i] = bad_ids[i] = (int32_t)(i * 7 % 40);
    bad_ids[13] = 40; /* one past the vocabulary */
    pb_calib calib = {2, 10, ids, NULL}, bad_calib = {2, 10, bad_ids, NULL}, empty = {0, 10, ids, NULL};

    struct {
        const char *method, *criterion, *aggregation;
        double native, ratio;
        int count, a, b;
        const pb_calib *calib;
        const char *want;
    } cases[] = {
        {"llm-pruner", "param_third", NULL, 0.5, -1, -1, -1, -1, &calib, "unknown --criterion 'param_third'"},
        {"llm-pruner", NULL, "median", 0.5, -1, -1, -1, -1, &calib, "unknown --aggregation 'median'"},
        {"llm-pruner", NULL, NULL, 0.5, 0.2, -1, -1, -1, &calib, "not both"},
        {"magnitude", NULL, NULL, 0.5, 0.2, -1, -1, -1, NULL, "not both"},
        {"random", NULL, NULL, 0.5, 0.2, -1, -1, -1, NULL, "not both"},
        {"llm-pruner", NULL, NULL, -1, -1, -1, -1, -1, &calib, "say how much"},
        {"llm-pruner", NULL, NULL, 0.5, -1, 1, -1, -1, &calib, "--num-blocks"},
        {"llm-pruner", NULL, NULL, 1.5, -1, -1, -1, -1, &calib, "outside [0, 1)"},
        {"llm-pruner", NULL, NULL, 0.5, -1, -1, 1, 3, &calib, "--layers 1:3"},
        {"llm-pruner", NULL, NULL, 0.5, -1, -1, 1, 1, &calib, "--layers 1:1"},
        {"llm-pruner", NULL, NULL, 0.5, -1, -1, -1, -1, NULL, "need calibration data"},
        {"llm-pruner", NULL, NULL, 0.5, -1, -1, -1, -1, &empty, "need calibration data"},
        {"llm-pruner", NULL, NULL, 0.5, -1, -1, -1, -1, &bad_calib, "40 outside [-1, 40)"},
        {"llm-pruner", "param_mix", NULL, 0.5, -1, -1, -1, -1, &bad_calib, "40 outside [-1, 40)"},
        {"magnitude", "l3", NULL, 0.5, -1, -1, -1, -1, NULL, "unknown --criterion 'l3'"},
        {"magnitude", "l2", "max", 0.5, -1, -1, -1, -1, NULL, "--aggregation is llm-pruner's"},
        {"random", "l2", NULL, 0.5, -1, -1, -1, -1, NULL, "random has no criterion"},
        {"random", NULL, "first", 0.5, -1, -1, -1, -1, NULL, "--aggregation is llm-pruner's"},
        {"llm-pruner", NULL, NULL, 0.5, -1, -1, -1, -1, &calib, "--iterative is depth"},
        {"magnitude", NULL, NULL, 0.5, -1, -1, -1, -1, NULL, "--protect-first/--protect-last are depth"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pb_model *m = rm_build(&cfg, layers, 3, RM_SCALED), *twin = rm_build(&cfg, layers, 3, RM_SCALED);
        pb_prune_opts o;
        pb_prune_opts_default(&o);
        o.method = cases[i].method;
        o.criterion = cases[i].criterion;
        o.aggregation = cases[i].aggregation;
        o.native = cases[i].native;
        o.ratio = cases[i].ratio;
        o.count = cases[i].count;
        o.layer_start = cases[i].a;
        o.layer_end = cases[i].b;
        o.calib = cases[i].calib;
        o.iterative = strstr(cases[i].want, "--iterative") != NULL;
        o.protect_last = strstr(cases[i].want, "--protect") ? 1 : 0;
        pb_prune_result r;
        pb_err err = {0};
        int rc = pb_prune(m, &o, &r, &err);
        CHECK_MSG(rc != 0 && strstr(err.msg, cases[i].want) && !strchr(err.msg, '\n'), "case %zu (%s): rc %d, '%s'", i,
                  cases[i].method, rc, err.msg);
        CHECK_MSG(same_weights(m, twin), "case %zu: the model changed", i);
        pb_model_free(m);
        pb_model_free(twin);
    }

    /* importance: only head and channel granularities; bad names fail there too */
    pb_model *m = rm_build(&cfg, layers, 3, RM_SCALED);
    const char *meths[] = {"llm-pruner", "magnitude", "random"};
    for (int i = 0; i < 3; i++) {
        pb_prune_opts o;
        pb_prune_opts_default(&o);
        o.method = meths[i];
        o.calib = &calib;
        pb_scores s;
        pb_err err = {0};
        o.granularity = PB_S_BLOCK;
        CHECK_MSG(pb_importance(m, &o, &s, &err) != 0 && strstr(err.msg, "--granularity head or channel"), "%s: '%s'",
                  meths[i], err.msg);
        o.granularity = PB_S_HEAD;
        REQUIRE(pb_importance(m, &o, &s, &err) == 0, "%s: %s", meths[i], err.msg);
        CHECK(s.n_layers == 2 && s.count[0] == 2 && s.count[1] == 2);
        pb_scores_free(&s);
    }
    pb_prune_opts o;
    pb_prune_opts_default(&o);
    o.method = "llm-pruner";
    o.granularity = PB_S_CHANNEL;
    o.aggregation = "avg";
    o.calib = &calib;
    pb_scores s;
    pb_err err = {0};
    CHECK(pb_importance(m, &o, &s, &err) != 0 && strstr(err.msg, "unknown --aggregation 'avg'"));
    o.aggregation = NULL;
    o.calib = NULL;
    CHECK(pb_importance(m, &o, &s, &err) != 0 && strstr(err.msg, "need calibration data"));
    pb_model_free(m);
    return pb_test_done("prune_width_bad");
}
