/* test_memo.c — the score memo (core/prune/memo.c and its use in depth.c, llm_pruner.c,
 * flap.c, wanda_sp.c, prune.c's pb_importance): pruning clones of one model at several
 * amounts with one shared memo must give exactly (bitwise) what pruning without a memo
 * gives — the same removed structures and the same weights — while the memo is hit where
 * scores can be reused (and not for Wanda-sp's sequential run); pb_importance with a memo
 * equals it without; a memo keeps criteria and calibration windows apart. On a random
 * in-memory model (GQA, some biases), and on stories260K with TinyStories windows when
 * ../shared is present, where the time of a 3-ratio sweep with and without reuse is printed.
 *
 * Comparisons are exact: with a memo the same functions run on the same inputs (or their
 * stored results are read back), so any difference is a bug, not rounding. */
#include "load.h"
#include "pb_test_model.h"
#include "prune_internal.h"

enum { D = 32, V = 50, NL = 8, CN = 4, CT = 16 };

static pb_model *random_model(void) {
    pb_config c = {.dim = D, .vocab_size = V, .max_seq_len = 64, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                   .bos_id = 1, .eos_id = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8, .ffn_dim = 48,
                   .n_layers = NL};
    rm_layer ly[NL];
    for (int l = 0; l < NL; l++) ly[l] = (rm_layer){4, 2, 8, 48, l % 3 == 1 ? "oD" : NULL};
    return rm_build(&c, ly, 7, RM_SCALED);
}

static int32_t ids_a[CN * CT], ids_b[CN * CT];

static void make_calib(pb_calib *a, pb_calib *b) {
    uint64_t s = 12345;
    for (int i = 0; i < CN * CT; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ids_a[i] = ids_b[i] = i % CT == 0 ? 1 : 3 + (int32_t)((s >> 33) % (V - 3));
    }
    ids_b[CN * CT - 1] = ids_a[CN * CT - 1] == 5 ? 6 : 5; /* one token differs */
    *a = (pb_calib){CN, CT, ids_a, "test"};
    *b = (pb_calib){CN, CT, ids_b, "test"};
}

/* ---- exact comparison of two models ------------------------------------------------------- */

static bool same_tensor(const float *a, const float *b, size_t n) {
    if (!a || !b) return a == b;
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static bool same_model(const pb_model *a, const pb_model *b) {
    if (a->cfg.n_layers != b->cfg.n_layers) return false;
    size_t d = (size_t)a->cfg.dim, V_ = (size_t)a->cfg.vocab_size;
    if (!same_tensor(a->tok_emb, b->tok_emb, V_ * d) || !same_tensor(a->final_norm, b->final_norm, d)) return false;
    for (int l = 0; l < a->cfg.n_layers; l++) {
        const pb_layer *x = &a->layers[l], *y = &b->layers[l];
        if (x->n_heads != y->n_heads || x->n_kv_heads != y->n_kv_heads || x->head_dim != y->head_dim ||
            x->ffn_dim != y->ffn_dim || x->has_attn != y->has_attn || x->has_mlp != y->has_mlp)
            return false;
        size_t q = (size_t)x->n_heads * x->head_dim, kv = (size_t)x->n_kv_heads * x->head_dim, f = (size_t)x->ffn_dim;
        if (x->has_attn &&
            !(same_tensor(x->attn_norm, y->attn_norm, d) && same_tensor(x->wq, y->wq, q * d) &&
              same_tensor(x->wk, y->wk, kv * d) && same_tensor(x->wv, y->wv, kv * d) &&
              same_tensor(x->wo, y->wo, d * q) && same_tensor(x->bq, y->bq, q) && same_tensor(x->bk, y->bk, kv) &&
              same_tensor(x->bv, y->bv, kv) && same_tensor(x->bo, y->bo, d)))
            return false;
        if (x->has_mlp &&
            !(same_tensor(x->mlp_norm, y->mlp_norm, d) && same_tensor(x->w_gate, y->w_gate, f * d) &&
              same_tensor(x->w_up, y->w_up, f * d) && same_tensor(x->w_down, y->w_down, d * f) &&
              same_tensor(x->b_gate, y->b_gate, f) && same_tensor(x->b_up, y->b_up, f) &&
              same_tensor(x->b_down, y->b_down, d)))
            return false;
    }
    return true;
}

static bool same_result(const pb_prune_result *a, const pb_prune_result *b) {
    if (a->n_removed != b->n_removed || a->params_after != b->params_after) return false;
    for (int i = 0; i < a->n_removed; i++)
        if (a->removed[i].layer != b->removed[i].layer || a->removed[i].kind != b->removed[i].kind ||
            a->removed[i].index != b->removed[i].index)
            return false;
    return true;
}

static bool same_scores(const pb_scores *a, const pb_scores *b) {
    if (a->kind != b->kind || a->n_layers != b->n_layers) return false;
    for (int l = 0; l < a->n_layers; l++) {
        if (a->count[l] != b->count[l]) return false;
        int n = a->count[l] ? a->count[l] : (a->kind <= PB_S_MLP ? 1 : 0);
        if (n && memcmp(a->score[l], b->score[l], sizeof(double) * (size_t)n) != 0) return false;
    }
    return true;
}

/* ---- one case: a sweep with and without a memo ---------------------------------------------- */

typedef struct {
    double ratio, native;
    int count;
} amount;

static void set_amount(pb_prune_opts *o, amount a) {
    o->ratio = a.ratio;
    o->native = a.native;
    o->count = a.count;
}

static double seconds_with, seconds_without; /* of the last sweep */

/* Prunes clones of base at each amount with one memo and without; returns the memo's hits
 * (misses in *misses). Importance at gran (when >= 0) is compared too, with and without. */
static int sweep(const char *label, const pb_model *base, pb_prune_opts o, const amount *am, int n, int gran,
                 int *misses) {
    pb_err err;
    pb_prune_memo *memo = pb_prune_memo_new();
    REQUIRE(memo, "out of memory");
    seconds_with = seconds_without = 0;
    for (int i = 0; i < n; i++) {
        set_amount(&o, am[i]);
        pb_model *a, *b;
        REQUIRE(pb_model_clone(base, &a, &err) == 0 && pb_model_clone(base, &b, &err) == 0, "%s", err.msg);
        pb_prune_result ra, rb;
        o.memo = memo;
        double t0 = pb_time_now();
        REQUIRE(pb_prune(a, &o, &ra, &err) == 0, "%s #%d with memo: %s", label, i, err.msg);
        double t1 = pb_time_now();
        o.memo = NULL;
        REQUIRE(pb_prune(b, &o, &rb, &err) == 0, "%s #%d without memo: %s", label, i, err.msg);
        seconds_with += t1 - t0;
        seconds_without += pb_time_now() - t1;
        CHECK_MSG(ra.n_removed > 0, "%s #%d: nothing removed (the case tests nothing)", label, i);
        CHECK_MSG(same_result(&ra, &rb), "%s #%d: removed structures differ with the memo (%d vs %d)", label, i,
                  ra.n_removed, rb.n_removed);
        CHECK_MSG(same_model(a, b), "%s #%d: weights differ with the memo", label, i);
        pb_prune_result_free(&ra);
        pb_prune_result_free(&rb);
        pb_model_free(a);
        pb_model_free(b);
    }
    int hits;
    pb_prune_memo_stats(memo, &hits, misses);
    if (gran >= 0) {
        o.granularity = (pb_struct_kind)gran;
        pb_scores with, again, without;
        o.memo = memo;
        REQUIRE(pb_importance(base, &o, &with, &err) == 0, "%s importance: %s", label, err.msg);
        int h1;
        pb_prune_memo_stats(memo, &h1, NULL);
        REQUIRE(pb_importance(base, &o, &again, &err) == 0, "%s importance again: %s", label, err.msg);
        int h2;
        pb_prune_memo_stats(memo, &h2, NULL);
        o.memo = NULL;
        REQUIRE(pb_importance(base, &o, &without, &err) == 0, "%s importance: %s", label, err.msg);
        CHECK_MSG(same_scores(&with, &without), "%s: importance with the memo differs", label);
        CHECK_MSG(same_scores(&again, &without), "%s: importance read back from the memo differs", label);
        CHECK_MSG(h2 > h1, "%s: a second importance call was not a memo hit", label);
        /* the copy handed out is the caller's own: changing it leaves the memo intact */
        if (with.count[0] > 0 || with.kind <= PB_S_MLP) with.score[0][0] = -12345.0;
        pb_scores_free(&again);
        o.memo = memo;
        REQUIRE(pb_importance(base, &o, &again, &err) == 0, "%s importance: %s", label, err.msg);
        CHECK_MSG(same_scores(&again, &without), "%s: the memo's scores changed through a copy", label);
        pb_scores_free(&with);
        pb_scores_free(&again);
        pb_scores_free(&without);
    }
    pb_prune_memo_free(memo);
    return hits;
}

static pb_prune_opts base_opts(const char *method, const char *crit, const pb_calib *c) {
    pb_prune_opts o;
    pb_prune_opts_default(&o);
    o.method = method;
    o.criterion = crit;
    o.calib = c;
    return o;
}

#define U (-1.0) /* unset ratio / native */

static void test_depth(const pb_model *m, const pb_calib *c) {
    static const char *const crits[] = {"magnitude", "taylor", "ppl"};
    amount ratios[] = {{0.15, U, -1}, {0.3, U, -1}, {0.45, U, -1}}, counts[] = {{U, U, 1}, {U, U, 2}, {U, U, 3}};
    for (int i = 0; i < 3; i++) {
        char label[96];
        int miss, hits;
        pb_prune_opts o = base_opts("depth", crits[i], c);
        snprintf(label, sizeof label, "depth %s block ratio", crits[i]);
        hits = sweep(label, m, o, ratios, 3, PB_S_BLOCK, &miss);
        CHECK_MSG(hits >= 2 && miss == 1, "%s: %d hits, %d misses (want >= 2, 1)", label, hits, miss);

        /* modules ranked together, protected ends: importance of attn is read from the same entry */
        o.module_joint = true;
        o.protect_first = 1;
        o.protect_last = 1;
        snprintf(label, sizeof label, "depth %s module count", crits[i]);
        hits = sweep(label, m, o, counts, 3, -1, &miss);
        CHECK_MSG(hits >= 2 && miss == 1, "%s: %d hits, %d misses", label, hits, miss);
        o.module_joint = false;
        o.granularity = PB_S_MLP;
        snprintf(label, sizeof label, "depth %s mlp count", crits[i]);
        hits = sweep(label, m, o, counts, 3, PB_S_ATTN, &miss);
        CHECK_MSG(hits >= 2, "%s: %d hits", label, hits);

        /* iterative: only its first step (the unpruned model) may read the memo */
        o.granularity = PB_S_BLOCK;
        o.iterative = true;
        snprintf(label, sizeof label, "depth %s iterative", crits[i]);
        hits = sweep(label, m, o, counts, 3, -1, &miss);
        CHECK_MSG(hits == 2 && miss == 1, "%s: %d hits, %d misses (want 2, 1: first steps only)", label, hits, miss);
    }
}

static void test_llm_pruner(const pb_model *m, const pb_calib *c) {
    amount am[] = {{U, 0.25, -1}, {U, 0.5, -1}, {0.05, U, -1}};
    int miss, hits;
    pb_prune_opts o = base_opts("llm-pruner", "param_first", c);
    o.layer_start = 2;
    o.layer_end = 6;
    hits = sweep("llm-pruner param_first layers 2:6", m, o, am, 3, PB_S_HEAD, &miss);
    CHECK_MSG(hits >= 2 && miss == 1, "llm-pruner param_first: %d hits, %d misses", hits, miss);
    o = base_opts("llm-pruner", "param_second", c);
    o.aggregation = "max";
    hits = sweep("llm-pruner param_second max", m, o, am, 3, PB_S_CHANNEL, &miss);
    CHECK_MSG(hits >= 2 && miss == 1, "llm-pruner param_second: %d hits, %d misses", hits, miss);
}

static void test_flap(const pb_model *m, const pb_calib *c) {
    amount am[] = {{0.05, U, -1}, {0.1, U, -1}, {U, 0.3, -1}};
    static const char *const st[] = {"al-am", "ul-um"};
    for (int i = 0; i < 2; i++) {
        char label[64];
        int miss;
        pb_prune_opts o = base_opts("flap", NULL, c);
        o.structure = st[i];
        snprintf(label, sizeof label, "flap %s", st[i]);
        int hits = sweep(label, m, o, am, 3, i ? PB_S_CHANNEL : PB_S_HEAD, &miss);
        CHECK_MSG(hits >= 2 && miss == 1, "%s: %d hits, %d misses", label, hits, miss);
    }
}

static void test_wanda(const pb_model *m, const pb_calib *c) {
    amount am[] = {{U, 0.25, -1}, {U, 0.5, -1}, {0.05, U, -1}};
    int miss;
    pb_prune_opts o = base_opts("wanda-sp", NULL, c);
    int hits = sweep("wanda-sp", m, o, am, 3, PB_S_HEAD, &miss);
    CHECK_MSG(hits == 0 && miss == 0, "wanda-sp's sequential run used the memo: %d hits, %d misses", hits, miss);
}

/* One memo, two criteria and two calibration sets: nothing leaks from one to the other. */
static void test_keys(const pb_model *m, const pb_calib *ca, const pb_calib *cb) {
    pb_err err;
    pb_prune_memo *memo = pb_prune_memo_new();
    REQUIRE(memo, "oom");
    const pb_calib *cal[] = {ca, cb, ca, cb};
    static const char *const crit[] = {"taylor", "taylor", "ppl", "ppl"};
    for (int i = 0; i < 4; i++) {
        pb_prune_opts o = base_opts("depth", crit[i], cal[i]);
        o.granularity = PB_S_ATTN;
        pb_scores with, without;
        o.memo = memo;
        REQUIRE(pb_importance(m, &o, &with, &err) == 0, "%s", err.msg);
        o.memo = NULL;
        REQUIRE(pb_importance(m, &o, &without, &err) == 0, "%s", err.msg);
        CHECK_MSG(same_scores(&with, &without), "key case %d (%s, calibration %c): the memo gave another entry's "
                  "scores", i, crit[i], i % 2 ? 'b' : 'a');
        pb_scores_free(&with);
        pb_scores_free(&without);
    }
    int hits, misses;
    pb_prune_memo_stats(memo, &hits, &misses);
    CHECK_MSG(hits == 0, "distinct keys hit each other: %d hits, %d misses", hits, misses);
    pb_prune_memo_free(memo);

    /* the key itself: nothing about the amount, everything about the windows */
    char ka[PB_MEMO_KEY_MAX], kb[PB_MEMO_KEY_MAX];
    pb_prune_opts oa = base_opts("depth", "taylor", ca), ob = oa;
    oa.ratio = 0.1;
    ob.count = 3;
    ob.native = 0.5;
    ob.protect_first = ob.protect_last = 2;
    ob.iterative = ob.mask_only = true;
    REQUIRE(pb_prune_memo_key(&oa, "x", ka, sizeof ka) == 0 && pb_prune_memo_key(&ob, "x", kb, sizeof kb) == 0, "key");
    CHECK_MSG(strcmp(ka, kb) == 0, "the amount entered the key: %s vs %s", ka, kb);
    const pb_prune_opts *changed[6];
    pb_prune_opts v[6];
    for (int i = 0; i < 6; i++) v[i] = oa, changed[i] = &v[i];
    v[0].calib = cb;
    v[1].criterion = "ppl";
    v[2].aggregation = "sum";
    v[3].seed = 1;
    v[4].layer_start = 0, v[4].layer_end = 4;
    v[5].granularity = PB_S_MLP;
    for (int i = 0; i < 6; i++) {
        REQUIRE(pb_prune_memo_key(changed[i], "x", kb, sizeof kb) == 0, "key");
        CHECK_MSG(strcmp(ka, kb) != 0, "change %d did not change the key: %s", i, kb);
    }
    CHECK(pb_prune_memo_key(&oa, "x", ka, 20) == -1); /* too small: refused, not cut */
}

/* stories260K on TinyStories windows: the same checks, and the time a sweep saves. */
static void test_stories(void) {
    const char *shared = getenv("PB_SHARED");
    char gguf[4096], data[4096];
    snprintf(gguf, sizeof gguf, "%s/models/stories260K/stories260K.gguf", shared ? shared : "../shared");
    snprintf(data, sizeof data, "%s/data", shared ? shared : "../shared");
    if (access(gguf, R_OK) != 0) {
        fprintf(stderr, "note: %s not found; stories260K cases skipped\n", gguf);
        return;
    }
    pb_err err;
    pb_model *m;
    pb_tokenizer *tok;
    REQUIRE(pb_model_load(gguf, NULL, &m, &tok, &err) == 0 && tok, "%s", err.msg);
    pb_calib c;
    REQUIRE(pb_calib_load(&c, "tinystories", NULL, data, tok, 8, 128, PB_CALIB_CONTIGUOUS, 0, &err) == 0, "%s",
            err.msg);
    amount am[] = {{0.1, U, -1}, {0.2, U, -1}, {0.3, U, -1}};
    int miss;
    pb_prune_opts o = base_opts("depth", "ppl", &c);
    o.module_joint = true;
    int hits = sweep("stories260K depth ppl module", m, o, am, 3, -1, &miss);
    CHECK(hits >= 2 && miss == 1);
    printf("stories260K depth ppl (module), ratios 0.1/0.2/0.3: %.3f s with the memo, %.3f s without\n",
           seconds_with, seconds_without);
    o = base_opts("llm-pruner", "param_second", &c);
    hits = sweep("stories260K llm-pruner param_second", m, o, am, 3, PB_S_HEAD, &miss);
    CHECK(hits >= 2 && miss == 1);
    printf("stories260K llm-pruner param_second, ratios 0.1/0.2/0.3: %.3f s with the memo, %.3f s without\n",
           seconds_with, seconds_without);
    pb_calib_free(&c);
    pb_tok_free(tok);
    pb_model_free(m);
}

int main(void) {
    pb_model *m = random_model();
    pb_calib ca, cb;
    make_calib(&ca, &cb);
    test_depth(m, &ca);
    test_llm_pruner(m, &ca);
    test_flap(m, &ca);
    test_wanda(m, &ca);
    test_keys(m, &ca, &cb);
    pb_model_free(m);
    test_stories();
    return pb_test_done("prune_memo");
}
