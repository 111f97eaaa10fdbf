/* test_rope.c — RoPE conventions: the Meta -> HF q/k row reordering, the rotate-half op,
 * and the inverse frequencies with rope_scaling.
 *
 * - pb_rope_unpermute_rows against HF's conversion permute written out as index arithmetic
 *   (w.view(n_heads, hd/2, 2, cols).transpose(1, 2).reshape(n_heads*hd, cols)), plus
 *   literal small cases worked out by hand.
 * - Equivalence of the two RoPE conventions: Meta's interleaved rotation of W x equals,
 *   after reordering, the backend's rotate-half rotation of (unpermuted W) x.
 * - pb_rope_inv_freq against values printed by transformers 4.44.2's ROPE_INIT_FUNCTIONS
 *   (computed there in fp32, hence the 1e-6 relative tolerance: a few fp32 ulps; a wrong
 *   branch of the llama3 rule is off by a factor of up to 8). */
#include "model.h"
#include "ops.h"
#include "pb_test.h"
#include "rope.h"

static void test_literal(void) {
    pb_err err;
    /* one head, head_dim 4 / 6, one column: Meta rows (0,1) (2,3) [(4,5)] are RoPE pairs;
     * HF keeps the first members first: 0 2 [4] then 1 3 [5] */
    float a[4] = {0, 1, 2, 3}, want_a[4] = {0, 2, 1, 3};
    REQUIRE(pb_rope_unpermute_rows(a, 1, 4, 1, &err) == 0, "%s", err.msg);
    CHECK(memcmp(a, want_a, sizeof a) == 0);
    float b[12] = {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15}, want_b[12] = {0, 2, 4, 1, 3, 5, 10, 12, 14, 11, 13, 15};
    REQUIRE(pb_rope_unpermute_rows(b, 2, 6, 1, &err) == 0, "%s", err.msg);
    CHECK(memcmp(b, want_b, sizeof b) == 0);
    CHECK(pb_rope_unpermute_rows(b, 2, 5, 1, &err) != 0); /* odd head_dim */
}

static void test_hf_formula(void) {
    enum { NH = 3, HD = 8, COLS = 5 };
    float w[NH * HD * COLS], src[NH * HD * COLS];
    for (int i = 0; i < NH * HD * COLS; i++) src[i] = w[i] = (float)i;
    pb_err err;
    REQUIRE(pb_rope_unpermute_rows(w, NH, HD, COLS, &err) == 0, "%s", err.msg);
    /* out viewed as (NH, 2, HD/2, COLS) is src viewed as (NH, HD/2, 2, COLS) with axes 1, 2 swapped */
    int bad = 0;
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < HD / 2; j++)
                for (int c = 0; c < COLS; c++) {
                    float got = w[((h * 2 + i) * (HD / 2) + j) * COLS + c];
                    float exp = src[((h * (HD / 2) + j) * 2 + i) * COLS + c];
                    bad += got != exp;
                }
    CHECK_MSG(bad == 0, "%d elements differ from the HF permute", bad);
}

static void test_equivalence(void) {
    enum { NH = 2, HD = 8, COLS = 6, N = 3 };
    pb_config cfg = {.rope_theta = 10000.0f};
    float inv[HD / 2], w[NH * HD * COLS], x[N][COLS], meta[N][NH * HD], hf[N][NH * HD];
    int32_t pos[N] = {0, 3, 117};
    pb_err err;
    REQUIRE(pb_rope_inv_freq(&cfg, HD, inv, &err) == 0, "%s", err.msg);
    for (int i = 0; i < NH * HD * COLS; i++) w[i] = sinf(0.37f * i + 0.1f);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < COLS; c++) x[n][c] = cosf(1.3f * c + n);
    /* Meta: q = W x, rotate pairs (2j, 2j+1) of each head by pos * inv[j] (llama2.c run.c) */
    for (int n = 0; n < N; n++) {
        for (int r = 0; r < NH * HD; r++) {
            double s = 0;
            for (int c = 0; c < COLS; c++) s += (double)w[r * COLS + c] * x[n][c];
            meta[n][r] = (float)s;
        }
        for (int h = 0; h < NH; h++)
            for (int j = 0; j < HD / 2; j++) {
                double a = pos[n] * (double)inv[j], c = cos(a), s = sin(a);
                float *p = &meta[n][h * HD + 2 * j], v0 = p[0], v1 = p[1];
                p[0] = (float)(v0 * c - v1 * s);
                p[1] = (float)(v0 * s + v1 * c);
            }
    }
    REQUIRE(pb_rope_unpermute_rows(w, NH, HD, COLS, &err) == 0, "%s", err.msg);
    for (int n = 0; n < N; n++)
        for (int r = 0; r < NH * HD; r++) {
            double s = 0;
            for (int c = 0; c < COLS; c++) s += (double)w[r * COLS + c] * x[n][c];
            hf[n][r] = (float)s;
        }
    pb_ops_cpu()->rope(&hf[0][0], pos, inv, N, NH, HD);
    /* fp32 rounding of a product of O(1) values: a few ulps */
    for (int n = 0; n < N; n++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < HD / 2; j++)
                    CHECK_NEAR(hf[n][h * HD + i * HD / 2 + j], meta[n][h * HD + 2 * j + i], 1e-5);
}

static void check_freqs(const char *what, const pb_config *cfg, int hd, const double *want) {
    float got[64];
    pb_err err;
    REQUIRE(pb_rope_inv_freq(cfg, hd, got, &err) == 0, "%s: %s", what, err.msg);
    for (int j = 0; j < hd / 2; j++)
        CHECK_MSG(fabs(got[j] - want[j]) <= 1e-6 * want[j], "%s: inv_freq[%d] = %.9g, HF gives %.9g", what, j,
                  (double)got[j], want[j]);
}

static void test_inv_freq(void) {
    pb_config cfg = {.rope_theta = 500000.0f};
    cfg.rope_scaling = (pb_rope_scaling){PB_ROPE_LLAMA3, 8.0f, 1.0f, 4.0f, 64};
    /* j=0 kept (short wavelength), j=1 blended, j>=2 divided by 8 */
    const double llama3[8] = {1.0, 0.079403013, 0.00470075384, 0.000911583134, 0.000176776681, 3.42810235e-05,
                              6.64786967e-06, 1.28917316e-06};
    check_freqs("llama3", &cfg, 16, llama3);
    cfg.rope_theta = 10000.0f;
    cfg.rope_scaling = (pb_rope_scaling){PB_ROPE_LINEAR, 4.0f, 0, 0, 0};
    const double linear[8] = {0.25, 0.079056941, 0.0250000004, 0.00790569466, 0.00249999994, 0.000790569466,
                              0.000250000012, 7.90569466e-05};
    check_freqs("linear", &cfg, 16, linear);
    cfg.rope_scaling.type = PB_ROPE_NONE;
    const double plain[4] = {1.0, 0.1, 0.01, 0.001};
    check_freqs("default", &cfg, 8, plain);

    float f[8];
    pb_err err;
    CHECK(pb_rope_inv_freq(&cfg, 7, f, &err) != 0);
    cfg.rope_scaling = (pb_rope_scaling){PB_ROPE_LLAMA3, 8.0f, 2.0f, 2.0f, 64}; /* low == high: division by 0 */
    CHECK(pb_rope_inv_freq(&cfg, 8, f, &err) != 0);
    cfg.rope_scaling = (pb_rope_scaling){PB_ROPE_LINEAR, 0.0f, 0, 0, 0};
    CHECK(pb_rope_inv_freq(&cfg, 8, f, &err) != 0);
}

int main(void) {
    test_literal();
    test_hf_formula();
    test_equivalence();
    test_inv_freq();
    return pb_test_done("model_rope");
}
