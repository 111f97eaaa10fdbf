/* test_backend_copy.c — the driver's device paths, checked on the CPU through an emulated
 * device backend.
 *
 * "emu" is the CPU op table with device = true and an allocator that fills fresh memory
 * with NaN: the driver must then keep every buffer in backend memory, move tokens and
 * positions in and logits out through the table, and never compute from memory it did not
 * write (a stray read shows up as NaN logits). Because emu computes with the CPU's own
 * kernels, the copy made by pb_model_to_backend must give BITWISE the host model's logits:
 * batched, last_only, decode with the KV cache, chunked prefill and a copied shared prefix.
 * A LoRA adapter attached to the host model is merged into the copy: merged and unmerged
 * differ only in fp32 rounding (W + sBA rounded once vs two GEMMs added), which stays
 * below 1e-5 of the largest logit (the test's other tolerance, test_kvcache.c, explains
 * the scale); a missing or doubled adapter moves logits by > 1e-2.
 * Also: what must refuse a device model does (clone, statistics, backward), and
 * pb_ops_get's errors name the bad device or dtype. */
#include "grad.h"
#include "lora.h"
#include "model.h"
#include "ops.h"
#include "pb_test.h"
#include "pb_test_model.h"

#include <stdlib.h>
#include <string.h>

#define NB 3
#define NT 70
#define TOL_LORA 1e-5

static pb_ops emu;
static int64_t emu_live; /* allocations not yet freed */

static void *emu_alloc(size_t bytes, pb_err *err) {
    float *p = malloc(bytes ? bytes : 1);
    if (!p) {
        pb_err_set(err, "emu: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < bytes / sizeof(float); i++) p[i] = NAN;
    emu_live++;
    return p;
}

static void emu_free(void *p) {
    if (p) emu_live--;
    free(p);
}

static void same_bits(const char *what, const char *name, const float *a, const float *b, size_t n) {
    CHECK_MSG(memcmp(a, b, n * sizeof(float)) == 0, "%s: %s: device copy differs from the host model", name, what);
}

static void check_model(const char *name, pb_model *m) {
    REQUIRE(m, "%s: could not build the model", name);
    int V = m->cfg.vocab_size;
    pb_err err = {0};
    pb_model *d;
    REQUIRE(pb_model_to_backend(m, &emu, &d, &err) == 0, "%s: %s", name, err.msg);
    CHECK(!pb_model_on_host(d) && pb_model_on_host(m) && pb_model_ops(d) == &emu && pb_model_ops(m) == pb_ops_cpu());
    CHECK(pb_model_params(d) == pb_model_params(m) && pb_model_params_no_embed(d) == pb_model_params_no_embed(m));
    CHECK((d->lm_head == d->tok_emb) == (m->lm_head == m->tok_emb));

    /* one state alternates between the two models: it must rebind its scratch each time */
    pb_fwd_state *st = pb_fwd_state_new();
    int32_t tok[NB * NT], col[NB], buf[NB * NT];
    for (int i = 0; i < NB * NT; i++) tok[i] = (int32_t)((rm_uniform() + 1.0f) * 0.5f * V) % V;
    size_t n = (size_t)NB * NT * V;
    float *ref = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    float *r1 = malloc(n * sizeof(float)), *o1 = malloc(n * sizeof(float));
    REQUIRE(st && ref && out && r1 && o1, "out of memory");
    REQUIRE(pb_model_forward(m, st, tok, NB, NT, NULL, ref, false, &err) == 0, "%s", err.msg);
    REQUIRE(pb_model_forward(d, st, tok, NB, NT, NULL, out, false, &err) == 0, "%s", err.msg);
    same_bits("batched forward", name, out, ref, n);
    REQUIRE(pb_model_forward(m, st, tok, NB, NT, NULL, r1, true, &err) == 0, "%s", err.msg);
    REQUIRE(pb_model_forward(d, st, tok, NB, NT, NULL, o1, true, &err) == 0, "%s", err.msg);
    same_bits("last_only", name, o1, r1, (size_t)NB * V);

    /* scoring: pb_model_score equals pb_logits_nll over the host logits (same formula, same
     * order), on the host and on the copy, and greedy is the first argmax */
    {
        size_t N = (size_t)NB * NT;
        int32_t *tg = malloc(N * sizeof *tg);
        double *s1 = malloc(N * sizeof *s1), *s2 = malloc(N * sizeof *s2);
        uint8_t *g1 = malloc(N), *g2 = malloc(N);
        REQUIRE(tg && s1 && s2 && g1 && g2, "out of memory");
        REQUIRE(pb_model_forward(m, st, tok, NB, NT, NULL, ref, false, &err) == 0, "%s", err.msg);
        for (size_t i = 0; i < N; i++) {
            /* every third row unscored; some targets are the argmax, so greedy is exercised both ways */
            int am = 0;
            for (int v = 1; v < V; v++) am = ref[i * V + v] > ref[i * V + am] ? v : am;
            tg[i] = i % 3 == 2 ? -1 : i % 3 == 1 ? am : (int32_t)((i * 7) % (size_t)V);
        }
        REQUIRE(pb_model_score(m, st, tok, NB, NT, NULL, tg, s1, g1, &err) == 0, "%s", err.msg);
        REQUIRE(pb_model_score(d, st, tok, NB, NT, NULL, tg, s2, g2, &err) == 0, "%s", err.msg);
        for (size_t i = 0; i < N; i++) {
            if (tg[i] < 0) {
                CHECK(s1[i] == 0 && g1[i] == 0);
                continue;
            }
            double one;
            REQUIRE(pb_logits_nll(ref + i * V, &tg[i], 1, V, &one, NULL, &err) == 0, "%s", err.msg);
            int first = 0;
            for (int v = 1; v < V; v++) first = ref[i * V + v] > ref[i * V + first] ? v : first;
            CHECK_MSG(s1[i] == one && g1[i] == (first == tg[i]), "%s: score row %zu: %g vs %g, greedy %d", name, i,
                      s1[i], one, g1[i]);
        }
        CHECK_MSG(memcmp(s1, s2, N * sizeof *s1) == 0 && memcmp(g1, g2, N) == 0, "%s: scores differ on the copy", name);
        tg[5] = V;
        CHECK(pb_model_score(d, st, tok, NB, NT, NULL, tg, s2, g2, &err) != 0 && strstr(err.msg, "vocabulary"));
        free(tg), free(s1), free(s2), free(g1), free(g2);
    }

    /* decode with caches of both models, step by step */
    pb_kvcache *ch, *cd;
    REQUIRE(pb_kvcache_create(&ch, m, NB, NT, &err) == 0 && pb_kvcache_create(&cd, d, NB, NT, &err) == 0, "%s", err.msg);
    CHECK(cd->ops == &emu && ch->ops == pb_ops_cpu());
    for (int t = 0; t < NT; t++) {
        for (int b = 0; b < NB; b++) col[b] = tok[b * NT + t];
        REQUIRE(pb_model_forward(m, st, col, NB, 1, ch, r1, false, &err) == 0, "%s", err.msg);
        REQUIRE(pb_model_forward(d, st, col, NB, 1, cd, o1, false, &err) == 0, "%s", err.msg);
        same_bits("decode step", name, o1, r1, (size_t)NB * V);
    }
    /* chunked prefill */
    pb_kvcache_reset(ch);
    pb_kvcache_reset(cd);
    static const int chunks[] = {5, 17, 1, 30, 17};
    for (int i = 0, t0 = 0; i < 5; t0 += chunks[i++]) {
        int k = chunks[i];
        for (int b = 0; b < NB; b++) memcpy(buf + b * k, tok + b * NT + t0, sizeof(int32_t) * k);
        REQUIRE(pb_model_forward(m, st, buf, NB, k, ch, ref, false, &err) == 0, "%s", err.msg);
        REQUIRE(pb_model_forward(d, st, buf, NB, k, cd, out, false, &err) == 0, "%s", err.msg);
        same_bits("chunked prefill", name, out, ref, (size_t)NB * k * V);
    }
    /* a shared prefix copied between cache slots (pb_kvcache_copy through copy2d) */
    pb_kvcache_reset(ch);
    pb_kvcache_reset(cd);
    REQUIRE(pb_model_forward(m, st, tok, 1, 40, ch, NULL, false, &err) == 0, "%s", err.msg);
    REQUIRE(pb_model_forward(d, st, tok, 1, 40, cd, NULL, false, &err) == 0, "%s", err.msg);
    for (int b = 1; b < NB; b++) CHECK(pb_kvcache_copy(ch, 0, b, &err) == 0 && pb_kvcache_copy(cd, 0, b, &err) == 0);
    for (int b = 0; b < NB; b++) memcpy(buf + b * (NT - 40), tok + 40, sizeof(int32_t) * (NT - 40));
    REQUIRE(pb_model_forward(m, st, buf, NB, NT - 40, ch, ref, false, &err) == 0, "%s", err.msg);
    REQUIRE(pb_model_forward(d, st, buf, NB, NT - 40, cd, out, false, &err) == 0, "%s", err.msg);
    same_bits("shared prefix", name, out, ref, (size_t)NB * (NT - 40) * V);
    for (int b = 1; b < NB; b++)   /* and every slot continued as slot 0 did */
        same_bits("shared prefix slot", name, out + (size_t)b * (NT - 40) * V, out, (size_t)(NT - 40) * V);
    pb_kvcache_free(ch);
    pb_kvcache_free(cd);

    /* what needs host memory refuses the copy with a message */
    pb_model *c = NULL;
    CHECK(pb_model_clone(d, &c, &err) != 0 && strstr(err.msg, "emu") && !c);
    float x[64];
    CHECK(pb_model_embed(d, tok, 1, x, &err) != 0 && strstr(err.msg, "host"));
    CHECK(pb_model_layer_forward(d, st, 0, 1, 1, x, NULL, NULL, &err) != 0 && strstr(err.msg, "host"));
    pb_grad_state *gs = pb_grad_state_new();
    int32_t tg[4] = {1, 2, 3, -1};
    pb_batch mb = {.tokens = tok, .targets = tg, .B = 1, .T = 4};
    pb_grad_opts go = {0};
    double loss;
    int64_t nl;
    CHECK(gs && pb_grad_run(d, gs, &mb, 1, &go, &loss, &nl, &err) != 0 && strstr(err.msg, "CPU"));
    pb_grad_state_free(gs);
    CHECK(pb_model_to_backend(d, &emu, &c, &err) != 0 && strstr(err.msg, "already"));

    /* LoRA: the copy merges the host model's adapter */
    pb_lora *l;
    REQUIRE(pb_lora_create(&l, m, 4, 8.0f, 0.0f, (1u << PB_LORA_N) - 1, 7, false, &err) == 0, "%s", err.msg);
    for (int i = 0; i < l->n_layers; i++)
        for (int t = 0; t < PB_LORA_N; t++)
            if (l->ad[i][t].B) rm_fill(l->ad[i][t].B, (size_t)l->ad[i][t].out * l->rank, 0.5f, 0.0f);
    m->lora = l;
    pb_model *dl;
    REQUIRE(pb_model_to_backend(m, &emu, &dl, &err) == 0, "%s", err.msg);
    CHECK(dl->lora == NULL);
    REQUIRE(pb_model_forward(m, st, tok, NB, NT, NULL, ref, false, &err) == 0, "%s", err.msg);
    REQUIRE(pb_model_forward(dl, st, tok, NB, NT, NULL, out, false, &err) == 0, "%s", err.msg);
    double e = pb_test_rel_err(out, ref, n);
    CHECK_MSG(e <= TOL_LORA, "%s: LoRA merged into the copy: relative error %.3g", name, e);
    /* and the adapter matters: without it the logits move far more than the tolerance */
    REQUIRE(pb_model_forward(d, st, tok, NB, NT, NULL, o1, false, &err) == 0, "%s", err.msg);
    CHECK_MSG(pb_test_rel_err(o1, ref, n) > 1e-2, "%s: the adapter changed nothing: the check above is void", name);
    m->lora = NULL;
    pb_lora_free(l);
    pb_model_free(dl);

    pb_fwd_state_free(st);
    free(ref);
    free(out);
    free(r1);
    free(o1);
    pb_model_free(d);
    pb_model_free(m);
    printf("%s: device copy bitwise equal; LoRA merged within %.2g\n", name, e);
}

int main(void) {
    pb_set_threads(2);
    emu = *pb_ops_cpu();
    emu.name = "emu";
    emu.device = true;
    emu.alloc = emu_alloc;
    emu.free = emu_free;

    pb_config cfg = {.dim = 48, .vocab_size = 97, .max_seq_len = 128, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                     .bos_id = 1, .eos_id = 2, .arch = "llama"};
    cfg.n_layers = 3;
    rm_layer gqa[3] = {{6, 2, 8, 96, "qkvoGUD"}, {6, 2, 8, 96, "qkvoGUD"}, {6, 2, 8, 96, "qkvoGUD"}};
    check_model("gqa", rm_build(&cfg, gqa, 1, RM_SCALED));
    cfg.n_layers = 2;
    cfg.tied_embeddings = true;
    rm_layer mha[2] = {{4, 4, 12, 64, NULL}, {4, 4, 12, 64, NULL}};
    check_model("mha tied", rm_build(&cfg, mha, 2, RM_SCALED));
    cfg.n_layers = 5;
    cfg.tied_embeddings = false;
    cfg.rope_scaling = (pb_rope_scaling){PB_ROPE_LLAMA3, 8.0f, 1.0f, 4.0f, 64};
    rm_layer pruned[5] = {{6, 3, 8, 64, "oD"}, {0, 0, 0, 40, "D"}, {2, 1, 16, 0, "o"}, {4, 4, 8, 72, "qkv"},
                          {1, 1, 8, 8, "GU"}};
    check_model("pruned+llama3", rm_build(&cfg, pruned, 3, RM_SCALED));
    CHECK_MSG(emu_live == 0, "%lld emulated device allocations were not freed", (long long)emu_live);

    /* choosing a backend by name */
    pb_err err = {0};
    CHECK(pb_ops_get("cpu", NULL, &err) == pb_ops_cpu() && pb_ops_get(NULL, "f32", &err) == pb_ops_cpu());
    CHECK(!pb_ops_get("gpu", NULL, &err) && strstr(err.msg, "'gpu'"));
    CHECK(!pb_ops_get("cuda", "f8", &err) && strstr(err.msg, "'f8'"));
    CHECK(!pb_ops_get("cpu", "bf16", &err) && strstr(err.msg, "bf16"));
    const pb_ops *cu = pb_ops_get("cuda", NULL, &err);
    if (!cu) {
        CHECK(err.msg[0] != 0);
        printf("cuda backend unavailable here: %s\n", err.msg);
    } else {
        CHECK(cu->device && cu->wtype == PB_DT_BF16);
    }
    return pb_test_done("model_backend_copy");
}
