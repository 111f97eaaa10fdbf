/* test_sft_batch.c — pb_sft_split, pb_sft_shuffle and pb_sft_pack on hand-built inputs:
 * determinism, that orders are permutations, pinned values of the fixed algorithm (a change
 * of generator or shuffle must be noticed: it changes every run's data order), argument
 * errors, and the exact tokens / targets / labelled count of a packed batch. */
#include "pb_test.h"
#include "sft.h"

static bool same(const int *a, const int *b, int n) { return n == 0 || memcmp(a, b, (size_t)n * sizeof *a) == 0; }

/* Whether train ∪ val holds every index of 0..n-1 exactly once. */
static bool covers(const int *tr, int nt, const int *va, int nv, int n) {
    if (nt + nv != n) return false;
    int *seen = calloc((size_t)n, sizeof *seen);
    REQUIRE(seen, "oom");
    bool ok = true;
    for (int i = 0; i < nt + nv; i++) {
        int v = i < nt ? tr[i] : va[i - nt];
        if (v < 0 || v >= n || seen[v]++) ok = false;
    }
    free(seen);
    return ok;
}

static void test_split(void) {
    pb_err err;
    int *tr, *va, nt, nv, *tr2, *va2, nt2, nv2;
    /* pinned: computed once from the algorithm documented in sft_batch.c and checked against
     * the independent Python implementation in test_sft_ref.py (which also pins them) */
    REQUIRE(pb_sft_split(10, 3, 42, &tr, &nt, &va, &nv, &err) == 0, "%s", err.msg);
    static const int want_val[] = {0, 9, 5}, want_tr[] = {8, 6, 4, 7, 2, 1, 3};
    CHECK(nv == 3 && nt == 7);
    CHECK(same(va, want_val, 3));
    CHECK(same(tr, want_tr, 7));
    CHECK(covers(tr, nt, va, nv, 10));
    REQUIRE(pb_sft_split(10, 3, 42, &tr2, &nt2, &va2, &nv2, &err) == 0, "%s", err.msg);
    CHECK(nt2 == nt && nv2 == nv && same(tr, tr2, nt) && same(va, va2, nv));
    free(tr2);
    free(va2);
    /* another seed: another order (10! orders; a collision would be a defect of seeding) */
    REQUIRE(pb_sft_split(10, 3, 43, &tr2, &nt2, &va2, &nv2, &err) == 0, "%s", err.msg);
    CHECK(!(same(tr, tr2, nt) && same(va, va2, nv)));
    free(tr);
    free(va);
    free(tr2);
    free(va2);

    /* the validation part is the head of the permutation for every val_size */
    int ns[] = {1, 2, 7, 1000};
    for (int k = 0; k < 4; k++) {
        int n = ns[k];
        int *full_tr, *full_va, fnt, fnv;
        REQUIRE(pb_sft_split(n, 0, 7, &full_tr, &fnt, &full_va, &fnv, &err) == 0, "%s", err.msg);
        CHECK(fnv == 0 && fnt == n && covers(full_tr, fnt, full_va, fnv, n));
        int vs[] = {0, 1, n / 2, n - 1};
        for (int q = 0; q < 4; q++) {
            if (vs[q] >= n) continue;
            REQUIRE(pb_sft_split(n, vs[q], 7, &tr, &nt, &va, &nv, &err) == 0, "%s", err.msg);
            CHECK_MSG(covers(tr, nt, va, nv, n), "n=%d val=%d", n, vs[q]);
            CHECK(nv == vs[q] && same(va, full_tr, nv) && same(tr, full_tr + nv, nt));
            free(tr);
            free(va);
        }
        free(full_tr);
        free(full_va);
    }

    /* errors leave the outputs empty */
    int bad[][2] = {{10, -1}, {10, 10}, {10, 11}, {0, 0}, {-3, 0}, {1, 1}};
    for (int k = 0; k < 6; k++) {
        tr = va = (int *)&nt;
        err.msg[0] = 0;
        CHECK(pb_sft_split(bad[k][0], bad[k][1], 1, &tr, &nt, &va, &nv, &err) == -1);
        CHECK(tr == NULL && va == NULL && nt == 0 && nv == 0);
        CHECK_MSG(!strncmp(err.msg, "split: ", 7) && !strchr(err.msg, '\n'), "%s", err.msg);
    }
    pb_sft_split(10, 10, 1, &tr, &nt, &va, &nv, &err);
    CHECK_MSG(strstr(err.msg, "validation size 10 out of range for 10 examples"), "%s", err.msg);
}

static void test_shuffle(void) {
    int a[12], b[12];
    for (int i = 0; i < 12; i++) a[i] = b[i] = i;
    pb_sft_shuffle(a, 12, 1234, 0);
    static const int want0[] = {0, 2, 8, 3, 7, 5, 4, 11, 9, 10, 1, 6}, want1[] = {1, 4, 10, 6, 2, 11, 0, 7, 8, 5, 9, 3};
    CHECK(same(a, want0, 12));
    pb_sft_shuffle(b, 12, 1234, 0);
    CHECK(same(a, b, 12));
    for (int i = 0; i < 12; i++) b[i] = i;
    pb_sft_shuffle(b, 12, 1234, 1); /* independent of epoch 0: from the identity again */
    CHECK(same(b, want1, 12));
    CHECK(!same(a, b, 12));
    for (int i = 0; i < 12; i++) b[i] = i;
    pb_sft_shuffle(b, 12, 1235, 0);
    CHECK(!same(a, b, 12));
    for (int i = 0; i < 12; i++) b[i] = i;
    pb_sft_shuffle(b, 12, 1234, -1); /* negative epochs are valid and distinct */
    CHECK(!same(a, b, 12));

    /* it permutes the given values (a training index list), not positions 0..n-1 */
    int v[5] = {40, 10, 30, 20, 50}, seen = 0;
    pb_sft_shuffle(v, 5, 9, 3);
    for (int i = 0; i < 5; i++) seen |= 1 << (v[i] / 10);
    CHECK(seen == 0x3E);
    pb_sft_shuffle(NULL, 0, 1, 0);
    int one = 7;
    pb_sft_shuffle(&one, 1, 1, 0);
    CHECK(one == 7);

    /* Fisher-Yates must reach every order equally often: 60000 shuffles of 3 items over
     * epochs. Each of the 6 orders expects 10000 with sd sqrt(60000 * 1/6 * 5/6) = 91; the
     * bound 500 (5.5 sd) fails on a wrong loop (Sattolo's j < i gives only the 2 cyclic
     * orders, an off-by-one in the draw skews counts by thousands) but not by chance. */
    int count[6] = {0};
    for (int e = 0; e < 60000; e++) {
        int p[3] = {0, 1, 2};
        pb_sft_shuffle(p, 3, 5, e);
        count[p[0] * 2 + (p[1] > p[2])]++;
    }
    for (int k = 0; k < 6; k++) CHECK_MSG(abs(count[k] - 10000) <= 500, "order %d seen %d times", k, count[k]);
}

static void test_pack(void) {
    /* ex0: prompt 3 of 5; ex1: prompt 0 of 3; ex2: prompt covers all 7 (no label);
     * ex3: n_prompt 1 labels the same positions as 0 (position t predicts token t+1 >= 1) */
    int32_t ids[] = {1, 10, 11, 12, 2, /**/ 1, 20, 21, /**/ 1, 30, 31, 32, 33, 34, 2, /**/ 1, 40};
    int64_t off[] = {0, 5, 8, 15};
    int len[] = {5, 3, 7, 2}, np[] = {3, 0, 7, 1};
    pb_sft_set s = {.n = 4, .ids = ids, .off = off, .len = len, .n_prompt = np, .n_tokens = 17};
    int sel[] = {1, 0, 2, 0, 3};
    enum { B = 5, CUT = 9, PAD = 99 };
    int32_t tok[B * CUT + 1], tgt[B * CUT + 1];
    for (int i = 0; i <= B * CUT; i++) tok[i] = tgt[i] = -777;
    int T = -1;
    int64_t lab = pb_sft_pack(&s, sel, B, PAD, tok, tgt, &T);
    CHECK(T == 7);
    static const int32_t want_tok[B][7] = {
        {1, 20, 21, PAD, PAD, PAD, PAD}, {1, 10, 11, 12, 2, PAD, PAD}, {1, 30, 31, 32, 33, 34, 2},
        {1, 10, 11, 12, 2, PAD, PAD},    {1, 40, PAD, PAD, PAD, PAD, PAD}};
    static const int32_t want_tgt[B][7] = {
        {20, 21, -1, -1, -1, -1, -1}, {-1, -1, 12, 2, -1, -1, -1}, {-1, -1, -1, -1, -1, -1, -1},
        {-1, -1, 12, 2, -1, -1, -1},  {40, -1, -1, -1, -1, -1, -1}};
    CHECK(memcmp(tok, want_tok, sizeof want_tok) == 0);
    CHECK(memcmp(tgt, want_tgt, sizeof want_tgt) == 0);
    CHECK(lab == 7);
    for (int i = B * 7; i <= B * CUT; i++) CHECK_MSG(tok[i] == -777 && tgt[i] == -777, "wrote past B*T at %d", i);

    /* one example: T is its length, the last position never has a target */
    int one[] = {2};
    lab = pb_sft_pack(&s, one, 1, 0, tok, tgt, &T);
    CHECK(T == 7 && lab == 0 && tgt[6] == -1);
    T = -1;
    CHECK(pb_sft_pack(&s, one, 0, 0, tok, tgt, &T) == 0 && T == 0);
}

int main(void) {
    test_split();
    test_shuffle();
    test_pack();
    return pb_test_done("train_data_batch");
}
