/* test_grad_consumer.c — the gradient consumer interface of the backward driver.
 *
 * - Taylor block importance, sum over a block's 7 projections and 2 norms of |w * g|,
 *   streamed through a consumer that keeps one number per block, equals the value computed
 *   from a full copy of every gradient;
 * - the per-micro-batch gradients sum to the accumulated gradient;
 * - the driver's gradient memory for that streamed scoring is one layer: the state grows by
 *   at most the largest layer's size in fp32 over a run that asks for no gradient at all;
 * - the layer buffer is handed out complete and once: every block gets exactly its 9
 *   tensors, in layer order from the top;
 * - a consumer's error stops the run with a message naming the tensor. */
#include "grad.h"
#include "pb_test_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { L = 5 };

/* ---- a full copy of every gradient ------------------------------------------------------ */

typedef struct {
    float *g[L + 1][PB_G_COUNT];   /* [layer + 1][kind] */
    size_t n[L + 1][PB_G_COUNT];
    int calls;
} full_store;

static int store_all(void *ctx, const pb_grad_event *ev, pb_err *err) {
    full_store *s = ctx;
    size_t n = (size_t)ev->rows * ev->cols;
    float **dst = &s->g[ev->layer + 1][ev->kind];
    if (!*dst) {
        *dst = calloc(n, sizeof(float));
        if (!*dst) return pb_err_set(err, "out of memory");
        s->n[ev->layer + 1][ev->kind] = n;
    }
    for (size_t i = 0; i < n; i++) (*dst)[i] += ev->g[i];   /* per-micro-batch events add up */
    s->calls++;
    return 0;
}

static void store_free(full_store *s) {
    for (int l = 0; l <= L; l++)
        for (int k = 0; k < PB_G_COUNT; k++) free(s->g[l][k]);
}

/* ---- streamed block importance ------------------------------------------------------------ */

typedef struct {
    double score[L];
    int tensors[L];
    int last_layer;   /* layers must arrive top-down */
    bool order_ok;
} taylor;

static int taylor_block(void *ctx, const pb_grad_event *ev, pb_err *err) {
    taylor *t = ctx;
    (void)err;
    if (ev->layer < 0 || !(PB_G_BLOCK & (1u << ev->kind))) {
        t->order_ok = false;   /* asked only for block tensors */
        return 0;
    }
    if (ev->layer > t->last_layer) t->order_ok = false;
    t->last_layer = ev->layer;
    double s = 0;
    for (size_t i = 0; i < (size_t)ev->rows * ev->cols; i++) s += fabs((double)ev->w[i] * ev->g[i]);
    t->score[ev->layer] += s;
    t->tensors[ev->layer]++;
    return 0;
}

static int refuse(void *ctx, const pb_grad_event *ev, pb_err *err) {
    (void)ctx;
    return ev->kind == PB_G_UP && ev->layer == 3 ? pb_err_set(err, "full disk") : 0;
}

int main(void) {
    pb_set_threads(2);
    pb_config cfg = {.dim = 48, .vocab_size = 97, .max_seq_len = 128, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                     .bos_id = 1, .eos_id = 2, .n_layers = L, .arch = "llama"};
    /* GQA and MHA layers of different widths: every block a full one, so that PB_G_BLOCK
     * finds all 9 tensors in each */
    rm_layer layers[L] = {{6, 2, 8, 96, NULL}, {4, 4, 12, 64, "o"}, {6, 3, 8, 40, NULL}, {2, 1, 16, 80, "D"},
                          {6, 6, 8, 24, NULL}};
    pb_model *m = rm_build(&cfg, layers, 7, RM_SCALED);
    enum { B = 4, T = 20 };
    int32_t tok[B * T], tgt[B * T];
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)((rm_uniform() + 1.0f) * 0.5f * 96.0f);
    pb_batch_next_token(tok, B, T, tgt);
    pb_batch mb[2] = {{tok, tgt, 2, T}, {tok + 2 * T, tgt + 2 * T, 2, T}};
    pb_err err = {0};
    pb_grad_state *gs = pb_grad_state_new();
    REQUIRE(gs, "out of memory");

    /* nothing asked: the loss alone; the state then holds checkpoints and scratch only */
    double loss0, loss1, loss2;
    pb_grad_opts none = {0};
    REQUIRE(pb_grad_run(m, gs, mb, 2, &none, &loss0, NULL, &err) == 0, "%s", err.msg);
    size_t base = pb_grad_state_bytes(gs);
    pb_grad_state_free(gs);

    /* streamed Taylor scores, on a fresh state to measure what they add */
    gs = pb_grad_state_new();
    taylor tay = {.last_layer = L, .order_ok = true};
    pb_grad_opts o = {.want = PB_G_BLOCK, .consumer = taylor_block, .ctx = &tay};
    REQUIRE(pb_grad_run(m, gs, mb, 2, &o, &loss1, NULL, &err) == 0, "%s", err.msg);
    size_t streamed = pb_grad_state_bytes(gs);
    int64_t max_layer = 0;
    for (int l = 0; l < L; l++) {
        int64_t p = pb_layer_params(m, l);
        max_layer = p > max_layer ? p : max_layer;
    }
    fprintf(stderr, "  scratch without gradients %zu bytes, with streamed block gradients %zu (+%zu; largest "
            "layer %lld bytes, model %lld bytes)\n", base, streamed, streamed - base, (long long)max_layer * 4,
            (long long)pb_model_params(m) * 4);
    CHECK_MSG(streamed - base <= (size_t)max_layer * sizeof(float),
              "streamed scoring added %zu bytes, more than one layer (%lld)", streamed - base,
              (long long)max_layer * 4);
    CHECK(tay.order_ok);
    for (int l = 0; l < L; l++) CHECK_MSG(tay.tensors[l] == 9, "block %d: %d tensors", l, tay.tensors[l]);
    /* the same batches: the same loss to the last bit */
    CHECK(loss1 == loss0);

    /* full gradients, then the same scores from them */
    full_store full = {0};
    pb_grad_opts of = {.want = PB_G_ALL_WEIGHTS, .consumer = store_all, .ctx = &full};
    REQUIRE(pb_grad_run(m, gs, mb, 2, &of, &loss2, NULL, &err) == 0, "%s", err.msg);
    for (int l = 0; l < L; l++) {
        double s = 0;
        for (int k = 0; k < PB_G_COUNT; k++) {
            int r, c;
            const float *w = pb_grad_tensor(m, (pb_grad_kind)k, l, &r, &c);
            if (!(PB_G_BLOCK & (1u << k)) || !w) continue;
            REQUIRE(full.g[l + 1][k], "no full gradient for layer %d %s", l, pb_grad_kind_names[k]);
            for (size_t i = 0; i < (size_t)r * c; i++) s += fabs((double)w[i] * full.g[l + 1][k][i]);
        }
        /* the same GEMMs on the same inputs, only the consumer differs: measured bitwise
         * equal; 1e-12 allows only for the order of the double sums */
        double e = fabs(s - tay.score[l]) / s;
        fprintf(stderr, "  block %d: sum|w*g| full %.9g, streamed %.9g (rel %.1e)\n", l, s, tay.score[l], e);
        CHECK_MSG(e <= 1e-12, "block %d: %g vs %g", l, s, tay.score[l]);
    }

    /* per-micro-batch gradients sum to the accumulated ones */
    full_store per = {0};
    pb_grad_opts op = {.want = PB_G_ALL_WEIGHTS & ~((1u << PB_G_EMBED) | (1u << PB_G_LM_HEAD)), .consumer = store_all,
                       .ctx = &per, .per_micro_batch = true};
    REQUIRE(pb_grad_run(m, gs, mb, 2, &op, NULL, NULL, &err) == 0, "%s", err.msg);
    double worst = 0;
    for (int l = 0; l <= L; l++)
        for (int k = 0; k < PB_G_COUNT; k++) {
            if (!per.g[l][k]) continue;
            double num = 0, den = 0;
            for (size_t i = 0; i < per.n[l][k]; i++) {
                num = fmax(num, fabs((double)per.g[l][k][i] - full.g[l][k][i]));
                den = fmax(den, fabs((double)full.g[l][k][i]));
            }
            worst = fmax(worst, num / den);
        }
    /* fp32 sums of two terms in a different order: a few ulps (measured ~1e-7) */
    fprintf(stderr, "  per-micro-batch sum vs accumulated: worst rel %.2e\n", worst);
    CHECK(worst <= 1e-5 && per.calls == 2 * (full.calls - 2));   /* two micro-batches; no embed, lm_head */

    /* a consumer's error stops the run, naming the tensor */
    pb_grad_opts oe = {.want = PB_G_BLOCK, .consumer = refuse};
    CHECK(pb_grad_run(m, gs, mb, 2, &oe, NULL, NULL, &err) == -1);
    CHECK_MSG(strstr(err.msg, "up, layer 3") && strstr(err.msg, "full disk"), "got: %s", err.msg);

    /* bad targets and a batch without labels are errors, not crashes */
    int32_t bad[B * T];
    memcpy(bad, tgt, sizeof bad);
    bad[5] = 97;
    pb_batch mbad = {tok, bad, B, T};
    CHECK(pb_grad_run(m, gs, &mbad, 1, &none, NULL, NULL, &err) == -1 && strstr(err.msg, "target 97"));
    for (int i = 0; i < B * T; i++) bad[i] = -1;
    CHECK(pb_grad_run(m, gs, &mbad, 1, &none, NULL, NULL, &err) == -1 && strstr(err.msg, "no labelled position"));

    store_free(&full);
    store_free(&per);
    pb_grad_state_free(gs);
    pb_model_free(m);
    return pb_test_done("test_grad_consumer");
}
