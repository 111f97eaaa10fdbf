/* test_speed_unit.c — the pieces of `prunebench bench` on models built in memory:
 * list parsing, the per-configuration peak-RSS reset, random prompts, the KV cache bytes of
 * a pruned (non-uniform) model, the context check, and the greedy decode path against a
 * cache-free forward of the whole generated sequence. */
#include "pb_test_model.h"
#include "speed.h"

#include <sys/mman.h>

static void test_parse_list(void) {
    pb_err err = {0};
    int *v = NULL, n = 0;
    CHECK(pb_speed_parse_list("1,16,64", 100, &v, &n, &err) == 0 && n == 3 && v[0] == 1 && v[1] == 16 && v[2] == 64);
    free(v);
    CHECK(pb_speed_parse_list("7", 100, &v, &n, &err) == 0 && n == 1 && v[0] == 7);
    free(v);
    const char *bad[] = {"1,,2", "", ",", "1,", "0", "-3", "x", "2,3y", "101", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err.msg[0] = 0;
        v = (int *)&n; /* must come back NULL */
        CHECK_MSG(pb_speed_parse_list(bad[i], 100, &v, &n, &err) == -1 && v == NULL, "'%s' accepted", bad[i]);
        CHECK_MSG(err.msg[0] && !strchr(err.msg, '\n'), "'%s': message '%s'", bad[i], err.msg);
    }
}

/* The reset must make the peak forget memory that was resident before it: map and touch
 * 64 MiB, unmap it, reset, and the peak must be below the old one. mmap rather than malloc
 * because ASan's allocator keeps freed blocks resident (quarantine). */
static void test_mem_reset(void) {
    const size_t big = (size_t)64 << 20;
    int64_t rss0 = pb_speed_mem_current(PB_SPEED_CPU);
    REQUIRE(rss0 > 0, "VmRSS not readable");
    char *p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED, "mmap");
    memset(p, 1, big);
    int64_t peak1 = pb_speed_mem_peak(PB_SPEED_CPU);
    /* the touched pages are resident: the peak covers them (1 MiB slack for page-table rounding) */
    CHECK_MSG(peak1 >= rss0 + (int64_t)big - (1 << 20), "peak %lld after touching 64 MiB over rss %lld",
              (long long)peak1, (long long)rss0);
    munmap(p, big);
    if (!pb_speed_mem_reset(PB_SPEED_CPU)) {
        fprintf(stderr, "note: /proc/self/clear_refs not writable here; per-configuration peaks unavailable\n");
        return;
    }
    int64_t peak2 = pb_speed_mem_peak(PB_SPEED_CPU), rss2 = pb_speed_mem_current(PB_SPEED_CPU);
    /* after the reset the peak is the current RSS (plus whatever the probe itself touched) */
    CHECK_MSG(peak2 <= peak1 - (int64_t)big / 2, "peak %lld after reset, %lld before", (long long)peak2,
              (long long)peak1);
    CHECK_MSG(peak2 >= rss2 - (1 << 20), "peak %lld below current rss %lld", (long long)peak2, (long long)rss2);
}

static const pb_config base_cfg = {.dim = 32, .n_layers = 4, .vocab_size = 67, .max_seq_len = 40, .norm_eps = 1e-5f,
                                   .rope_theta = 10000.0f, .tied_embeddings = false, .bos_id = 1, .eos_id = 2,
                                   .n_heads = 4, .n_kv_heads = 2, .head_dim = 8, .ffn_dim = 48, .arch = "llama"};
/* a pruned shape: GQA, a layer with fewer heads, one without attention, one without MLP */
static const rm_layer pruned[4] = {{4, 2, 8, 48, NULL}, {3, 3, 8, 20, "qkv"}, {0, 0, 8, 48, NULL}, {2, 1, 16, 0, "o"}};

static void test_kv_bytes_and_check(pb_model *m) {
    pb_err err = {0};
    pb_speed_gen g;
    REQUIRE(pb_speed_gen_init(&g, m, 3, 11, &err) == 0, "%s", err.msg);
    /* per layer 2 (k, v) * batch * max_len * kv_heads * head_dim * 4 bytes; layer 2 has none */
    int64_t want = 2 * 3 * 11 * 4 * ((int64_t)2 * 8 + 3 * 8 + 0 + 1 * 16);
    CHECK_MSG(pb_speed_gen_kv_bytes(&g) == want, "%lld != %lld", (long long)pb_speed_gen_kv_bytes(&g), (long long)want);
    pb_speed_gen_free(&g);

    pb_speed_opts o = {.batch = 2, .prompt_len = 30, .gen_len = 10, .reps = 1};
    CHECK(pb_speed_check(m, &o, &err) == 0); /* 40 == context: fits */
    o.gen_len = 11;
    CHECK(pb_speed_check(m, &o, &err) == -1 && strstr(err.msg, "context of 40"));
    o.gen_len = 1, o.batch = 0;
    CHECK(pb_speed_check(m, &o, &err) == -1);
    o.batch = 1, o.reps = 0;
    CHECK(pb_speed_check(m, &o, &err) == -1);
    pb_speed_result r;
    o.reps = 1, o.prompt_len = 45;
    CHECK(pb_speed_run(m, &o, &r, &err) == -1 && strstr(err.msg, "exceeds"));
}

static void test_random_prompt(void) {
    pb_config c = base_cfg;
    c.vocab_size = 4; /* only ids 0 and 3 are neither BOS (1) nor EOS (2) */
    rm_layer L[4] = {{2, 2, 4, 8, NULL}, {2, 2, 4, 8, NULL}, {2, 2, 4, 8, NULL}, {2, 2, 4, 8, NULL}};
    c.dim = 8;
    pb_model *m = rm_build(&c, L, 5, RM_SCALED);
    pb_err err = {0};
    int32_t a[200], b[200];
    REQUIRE(pb_speed_random_prompt(m, 42, 4, 50, a, &err) == 0, "%s", err.msg);
    REQUIRE(pb_speed_random_prompt(m, 42, 4, 50, b, &err) == 0, "%s", err.msg);
    int n0 = 0, n3 = 0;
    for (int i = 0; i < 200; i++) {
        CHECK(a[i] == 0 || a[i] == 3);
        n0 += a[i] == 0, n3 += a[i] == 3;
    }
    CHECK(n0 > 0 && n3 > 0); /* both allowed ids occur: not a constant */
    CHECK(memcmp(a, b, sizeof a) == 0);  /* seeded: reproducible */
    REQUIRE(pb_speed_random_prompt(m, 43, 4, 50, b, &err) == 0, "%s", err.msg);
    CHECK(memcmp(a, b, sizeof a) != 0);
    m->cfg.vocab_size = 2, m->cfg.bos_id = 0, m->cfg.eos_id = 1;
    CHECK(pb_speed_random_prompt(m, 1, 1, 1, a, &err) == -1);
    m->cfg.vocab_size = 4;
    pb_model_free(m);
}

/* Greedy decode path: every generated token must be the argmax of a cache-free forward of
 * prompt + the tokens before it, and each row of a batch must equal its row run alone. */
static void test_decode_path(pb_model *m) {
    enum { B = 3, P = 5, G = 9 };
    pb_err err = {0};
    int V = m->cfg.vocab_size;
    int32_t prompt[B * P], out[B * G], solo[G];
    REQUIRE(pb_speed_random_prompt(m, 7, B, P, prompt, &err) == 0, "%s", err.msg);
    pb_speed_gen g, g1;
    REQUIRE(pb_speed_gen_init(&g, m, B, P + G, &err) == 0, "%s", err.msg);
    REQUIRE(pb_speed_gen_init(&g1, m, 1, P + G + 3, &err) == 0, "%s", err.msg);
    pb_speed_timing t;
    REQUIRE(pb_speed_gen_run(&g, prompt, P, G, out, &t, &err) == 0, "%s", err.msg);
    CHECK(t.prefill_s > 0 && t.decode_s > 0);
    /* one clock read three times: the parts add up to the whole up to double rounding of ~1e3 s stamps */
    CHECK_NEAR(t.total_s, t.prefill_s + t.decode_s, 1e-9);
    CHECK(pb_speed_gen_run(&g, prompt, P, G + 1, out, NULL, &err) == -1); /* does not fit the cache */
    REQUIRE(pb_speed_gen_run(&g, prompt, P, G, out, NULL, &err) == 0, "%s", err.msg); /* reruns after a reset */
    pb_fwd_state *st = pb_fwd_state_new();
    float *lg = malloc(sizeof(float) * (size_t)(P + G) * V);
    REQUIRE(st && lg, "oom");
    for (int b = 0; b < B; b++) {
        int32_t seq[P + G];
        memcpy(seq, prompt + b * P, sizeof(int32_t) * P);
        memcpy(seq + P, out + b * G, sizeof(int32_t) * G);
        REQUIRE(pb_model_forward(m, st, seq, 1, P + G, NULL, lg, false, &err) == 0, "%s", err.msg);
        for (int i = 0; i < G; i++) {
            const float *row = lg + (size_t)(P - 1 + i) * V;
            float mx = row[pb_test_argmax(row, V)];
            /* the cached and the cache-free forward sum in different orders (a few ulp at
             * O(1) logits): the chosen token must be the maximum within that, not bit-equal */
            CHECK_MSG(row[seq[P + i]] >= mx - 1e-4f, "row %d token %d: logit %g, max %g", b, i, row[seq[P + i]], mx);
        }
        REQUIRE(pb_speed_gen_run(&g1, prompt + b * P, P, G, solo, NULL, &err) == 0, "%s", err.msg);
        CHECK_MSG(memcmp(solo, out + b * G, sizeof solo) == 0, "row %d differs from its run alone", b);
    }
    free(lg);
    pb_fwd_state_free(st);
    pb_speed_gen_free(&g);
    pb_speed_gen_free(&g1);
}

/* pb_speed_run: records are consistent with themselves and with the decode path. */
static void test_run(pb_model *m) {
    enum { B = 2, P = 4, G = 6 };
    pb_err err = {0};
    int32_t prompt[B * P], toks[B * G], ref[B * G];
    double reps[3];
    pb_speed_opts o = {.batch = B, .prompt_len = P, .gen_len = G, .reps = 3, .warmup = 1, .seed = 9,
                       .tokens_out = toks, .prompt_out = prompt, .rep_total_s = reps};
    pb_speed_result r;
    REQUIRE(pb_speed_run(m, &o, &r, &err) == 0, "%s", err.msg);
    CHECK(r.batch == B && r.prompt_len == P && r.gen_len == G && r.reps == 3 && r.warmup == 1);
    CHECK(r.prefill_s > 0 && r.total_s > 0 && r.decode_ms_per_token > 0 && r.tokens_per_s > 0);
    CHECK(r.prefill_s_std >= 0 && r.total_s_std >= 0 && r.decode_ms_per_token_std >= 0 && r.tokens_per_s_std >= 0);
    CHECK_NEAR(r.tokens_per_s, (double)B * G / r.total_s, 1e-9 * r.tokens_per_s); /* same formula, rounding only */
    /* means are linear: total = prefill + (G-1) decode steps, to rounding */
    CHECK_NEAR(r.total_s, r.prefill_s + r.decode_ms_per_token * (G - 1) / 1e3, 1e-9);
    /* mean and population std (ddof 0, Shortened LLaMA's) of the timed runs */
    double mean = (reps[0] + reps[1] + reps[2]) / 3, var = 0;
    for (int i = 0; i < 3; i++) var += (reps[i] - mean) * (reps[i] - mean) / 3;
    CHECK_NEAR(r.total_s, mean, 1e-12);
    CHECK_NEAR(r.total_s_std, sqrt(var), 1e-12);
    CHECK(r.weights_bytes == pb_model_params(m) * 4);
    CHECK(r.peak_rss_bytes >= r.weights_bytes);
    CHECK(r.threads >= 1);
    int32_t want[B * P];
    REQUIRE(pb_speed_random_prompt(m, 9, B, P, want, &err) == 0, "%s", err.msg);
    CHECK(memcmp(want, prompt, sizeof want) == 0);
    pb_speed_gen g;
    REQUIRE(pb_speed_gen_init(&g, m, B, P + G, &err) == 0, "%s", err.msg);
    REQUIRE(pb_speed_gen_run(&g, prompt, P, G, ref, NULL, &err) == 0, "%s", err.msg);
    CHECK(memcmp(ref, toks, sizeof ref) == 0);
    pb_speed_gen_free(&g);
    /* given prompts are used as given, and ids outside the vocabulary are refused */
    prompt[3] = m->cfg.vocab_size;
    o.prompt = prompt;
    CHECK(pb_speed_run(m, &o, &r, &err) == -1 && strstr(err.msg, "outside the vocabulary"));
}

/* Ties go to the lowest id, as in `prunebench generate`: with a zero LM head every logit is
 * 0, so every generated token must be id 0. */
static void test_ties(pb_model *m) {
    pb_err err = {0};
    size_t n = (size_t)m->cfg.vocab_size * m->cfg.dim;
    float *saved = malloc(n * sizeof(float));
    REQUIRE(saved && !m->cfg.tied_embeddings, "setup");
    memcpy(saved, m->lm_head, n * sizeof(float));
    memset(m->lm_head, 0, n * sizeof(float));
    int32_t prompt[2 * 3] = {5, 6, 7, 8, 9, 10}, out[2 * 4];
    pb_speed_gen g;
    REQUIRE(pb_speed_gen_init(&g, m, 2, 7, &err) == 0, "%s", err.msg);
    REQUIRE(pb_speed_gen_run(&g, prompt, 3, 4, out, NULL, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 8; i++) CHECK_MSG(out[i] == 0, "tie resolved to %d", out[i]);
    pb_speed_gen_free(&g);
    memcpy(m->lm_head, saved, n * sizeof(float));
    free(saved);
}

int main(void) {
    test_parse_list();
    test_mem_reset();
    test_random_prompt();
    pb_model *m = rm_build(&base_cfg, pruned, 3, RM_SCALED);
    test_kv_bytes_and_check(m);
    test_decode_path(m);
    test_run(m);
    test_ties(m);
    pb_model_free(m);
    return pb_test_done("speed_unit");
}
