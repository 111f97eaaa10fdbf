/* test_width_plan.c — LLM-Pruner's per-layer counts through pb_prune_dry_run on shape-only
 * models (pb_hf_config_load without weights), for llm-pruner and its baselines:
 *   - LLaMA-7B, group ratio 0.25 on layers 4:30 -> exactly 5,422,977,024 parameters (the
 *     count LLM-Pruner logs, issue #34; 8 of 32 heads, 2,752 of 11,008 channels per layer);
 *   - Llama-3-8B, same setting -> 6,612,586,496 of 8,030,261,248 (2 of 8 KV groups, 3,584
 *     of 14,336 channels);
 *   - the same 7B result from --ratio (a fraction of all parameters) through the solver;
 *   - a small GQA model worked out by hand, including int() truncation that removes a
 *     layer's whole MLP;
 *   - option errors a plan must report.
 * Counts are integers: every comparison is exact. */
#include "load.h"
#include "pb_test.h"
#include "prune.h"

static pb_model *config_model(const char *name, const char *json) {
    char dir[4096], path[4096];
    pb_test_fresh_dir(dir, sizeof dir, name);
    pb_test_join(path, sizeof path, dir, "config.json");
    pb_test_write_file(path, json, strlen(json));
    pb_model *m;
    pb_err err;
    REQUIRE(pb_hf_config_load(dir, false, &m, &err) == 0, "%s", err.msg);
    return m;
}

static const char *llama7b =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_act\": \"silu\","
    " \"hidden_size\": 4096, \"intermediate_size\": 11008, \"num_hidden_layers\": 32,"
    " \"num_attention_heads\": 32, \"num_key_value_heads\": 32, \"vocab_size\": 32000,"
    " \"rms_norm_eps\": 1e-06, \"tie_word_embeddings\": false, \"max_position_embeddings\": 2048,"
    " \"bos_token_id\": 1, \"eos_token_id\": 2}";

static const char *llama3_8b =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_act\": \"silu\","
    " \"hidden_size\": 4096, \"intermediate_size\": 14336, \"num_hidden_layers\": 32,"
    " \"num_attention_heads\": 32, \"num_key_value_heads\": 8, \"vocab_size\": 128256,"
    " \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"tie_word_embeddings\": false,"
    " \"max_position_embeddings\": 8192, \"bos_token_id\": 128000, \"eos_token_id\": 128001}";

/* hidden 64, 3 layers, 8 query heads in 4 KV groups of head_dim 8, ffn 10, vocab 50, untied */
static const char *small =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 64,"
    " \"intermediate_size\": 10, \"num_hidden_layers\": 3, \"num_attention_heads\": 8,"
    " \"num_key_value_heads\": 4, \"vocab_size\": 50, \"rms_norm_eps\": 1e-05, \"tie_word_embeddings\": false}";

static const char *const methods[] = {"llm-pruner", "magnitude", "random"};

static void plan(const char *name, const char *json, const char *method, double native, double ratio, int a, int b,
                 pb_model **out, pb_prune_result *r) {
    pb_model *m = config_model(name, json);
    pb_prune_opts o;
    pb_prune_opts_default(&o);
    o.method = method;
    o.native = native;
    o.ratio = ratio;
    o.layer_start = a;
    o.layer_end = b;
    pb_err err;
    REQUIRE(pb_prune_dry_run(m, &o, r, &err) == 0, "%s: %s", method, err.msg);
    *out = m;
}

static void acceptance(void) {
    for (int i = 0; i < 3; i++) {
        pb_model *m;
        pb_prune_result r;
        plan("prune_width_7b", llama7b, methods[i], 0.25, -1, 4, 30, &m, &r);
        CHECK(r.params_before == 6738415616LL);
        CHECK_MSG(r.params_after == 5422977024LL, "%s: %lld", methods[i], (long long)r.params_after);
        for (int l = 0; l < 32; l++) {
            bool in = l >= 4 && l < 30;
            const pb_layer *L = &m->layers[l];
            CHECK(L->n_heads == (in ? 24 : 32) && L->n_kv_heads == L->n_heads && L->ffn_dim == (in ? 8256 : 11008));
            CHECK(L->has_attn && L->has_mlp);
        }
        pb_prune_result_free(&r);
        pb_model_free(m);

        plan("prune_width_l3", llama3_8b, methods[i], 0.25, -1, 4, 30, &m, &r);
        CHECK(r.params_before == 8030261248LL);
        CHECK_MSG(r.params_after == 6612586496LL, "%s: %lld", methods[i], (long long)r.params_after);
        for (int l = 0; l < 32; l++) {
            bool in = l >= 4 && l < 30;
            const pb_layer *L = &m->layers[l];
            CHECK(L->n_kv_heads == (in ? 6 : 8) && L->n_heads == 4 * L->n_kv_heads);
            CHECK(L->ffn_dim == (in ? 14336 - 3584 : 14336));
        }
        pb_prune_result_free(&r);
        pb_model_free(m);
    }
    /* --ratio: 1 - 5,422,977,024 / 6,738,415,616 of all parameters must land on the same
     * step (any r in (0.2499.., 0.25] gives 8 heads and 2,752 channels) */
    pb_model *m;
    pb_prune_result r;
    plan("prune_width_7b_ratio", llama7b, "llm-pruner", -1, (6738415616.0 - 5422977024.0) / 6738415616.0, 4, 30, &m,
         &r);
    CHECK_MSG(r.params_after == 5422977024LL, "%lld", (long long)r.params_after);
    pb_prune_result_free(&r);
    pb_model_free(m);
}

static void small_by_hand(void) {
    /* per layer: attention 64 (norm) + q 64*64 + k 32*64 + v 32*64 + o 64*64 = 12352;
     * MLP 64 (norm) + 3*10*64 = 1984; three layers 43008; + embed 3200 + head 3200 + norm 64
     * = 49472. r = 0.25 on layers 1:3: C = 4*8 = 32 k rows, 32 - int(24.0) = 8 -> 1 unit
     * (q rows 16*64 + o columns 64*16 + k, v rows 2*8*64 = 3072); channels 10 - int(7.5) = 3
     * (3*64 each = 576); two layers remove 2*(3072+576) = 7296 -> 42176. */
    for (int i = 0; i < 3; i++) {
        pb_model *m;
        pb_prune_result r;
        plan("prune_width_small", small, methods[i], 0.25, -1, 1, 3, &m, &r);
        CHECK(r.params_before == 49472);
        CHECK_MSG(r.params_after == 42176, "%s: %lld", methods[i], (long long)r.params_after);
        CHECK(m->layers[0].n_heads == 8 && m->layers[0].n_kv_heads == 4 && m->layers[0].ffn_dim == 10);
        for (int l = 1; l < 3; l++)
            CHECK(m->layers[l].n_heads == 6 && m->layers[l].n_kv_heads == 3 && m->layers[l].ffn_dim == 7);
        pb_prune_result_free(&r);
        pb_model_free(m);
    }
    /* r = 0.9 on every layer: 1 - 0.9 is 0.09999999999999998 in double, so channels:
     * 10 - int(0.9999999999999998) = 10 (the whole MLP goes, as LLM-Pruner's formula does);
     * units: 32 - int(3.1999999999999993) = 29 -> 29 / 8 = 3 of 4. A layer left is norm 64
     * + q 16*64 + k, v 8*64 each + o 64*16 = 3136; 3*3136 + 6464 = 15872. */
    pb_model *m;
    pb_prune_result r;
    plan("prune_width_small9", small, "llm-pruner", 0.9, -1, -1, -1, &m, &r);
    for (int l = 0; l < 3; l++) {
        const pb_layer *L = &m->layers[l];
        CHECK(!L->has_mlp && L->ffn_dim == 0 && L->has_attn && L->n_kv_heads == 1 && L->n_heads == 2);
    }
    CHECK_MSG(r.params_after == 15872, "%lld", (long long)r.params_after);
    pb_prune_result_free(&r);
    pb_model_free(m);
}

static void plan_errors(void) {
    struct {
        const char *method, *criterion, *aggregation;
        double native, ratio;
        int count, a, b;
        const char *want;
    } bad[] = {
        {"llm-pruner", NULL, NULL, 0.25, 0.2, -1, -1, -1, "not both"},
        {"llm-pruner", NULL, NULL, -1, -1, -1, -1, -1, "say how much"},
        {"magnitude", NULL, NULL, 0.25, -1, 3, -1, -1, "--num-blocks"},
        {"llm-pruner", "param_third", NULL, 0.25, -1, -1, -1, -1, "unknown --criterion"},
        {"llm-pruner", NULL, "median", 0.25, -1, -1, -1, -1, "unknown --aggregation"},
        {"magnitude", "l3", NULL, 0.25, -1, -1, -1, -1, "unknown --criterion"},
        {"random", NULL, NULL, 1.0, -1, -1, -1, -1, "outside [0, 1)"},
        {"random", NULL, NULL, 0.25, -1, -1, 2, 5, "--layers 2:5"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pb_model *m = config_model("prune_width_bad", small);
        pb_prune_opts o;
        pb_prune_opts_default(&o);
        o.method = bad[i].method;
        o.criterion = bad[i].criterion;
        o.aggregation = bad[i].aggregation;
        o.native = bad[i].native;
        o.ratio = bad[i].ratio;
        o.count = bad[i].count;
        o.layer_start = bad[i].a;
        o.layer_end = bad[i].b;
        pb_prune_result r;
        pb_err err = {0};
        int rc = pb_prune_dry_run(m, &o, &r, &err);
        CHECK_MSG(rc != 0 && strstr(err.msg, bad[i].want), "case %zu: rc %d, '%s'", i, rc, err.msg);
        CHECK(m->layers[1].n_kv_heads == 4 && m->layers[1].ffn_dim == 10);
        pb_model_free(m);
    }
}

int main(void) {
    acceptance();
    small_by_hand();
    plan_errors();
    return pb_test_done("prune_width_plan");
}
