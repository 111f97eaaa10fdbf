/* test_width_mask.c — slicing equals masking for llm-pruner (param_first, param_mix,
 * vectorize), magnitude and random: two identical random models (pb_test_model.h), one
 * pruned with mask_only, one sliced, must remove the same structures (their scores come from
 * the same weights) and give the same logits; the sliced model must have exactly
 * LLM-Pruner's per-layer counts, and the pruning must change the logits (so the comparison
 * is not between two untouched models). Models: GQA (2 query heads per KV group), MHA with
 * every bias, and a non-uniform one (a layer without attention, one without MLP); every
 * layer and a layer range. Also: random is a function of its seed, and magnitude's head
 * score is the L2 norm of the unit's weights computed here directly. */
#include "pb_test_model.h"
#include "prune.h"

/* Masked and sliced models compute the same sums, the sliced ones without the exact zeros;
 * only the summation order (BLAS blocking over a different inner dimension) differs, which
 * moves fp32 logits by ~1e-7 relative over a few layers. 1e-5 is 100x that; a wrong
 * column/row pairing (o columns vs q rows, a GQA group's query heads) changes logits by
 * 1e-2 or more. */
#define MASK_TOL 1e-5
/* Pruning half the units must move the logits by far more than rounding: at least 1e-3. */
#define CHANGED 1e-3

typedef struct {
    const char *name;
    pb_config cfg;
    rm_layer layers[4];
} model_spec;

static pb_config cfg_of(int dim, int n_layers, int vocab, bool tied) {
    pb_config c = {0};
    c.dim = dim;
    c.n_layers = n_layers;
    c.vocab_size = vocab;
    c.max_seq_len = 64;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.tied_embeddings = tied;
    c.bos_id = 1;
    c.eos_id = 2;
    c.n_heads = 8, c.n_kv_heads = 4, c.head_dim = 8, c.ffn_dim = 96;
    return c;
}

static void logits_of(pb_model *m, const int32_t *ids, int B, int T, float *out) {
    pb_err err;
    pb_fwd_state *st = pb_fwd_state_new();
    REQUIRE(st && pb_model_forward(m, st, ids, B, T, NULL, out, false, &err) == 0, "%s", err.msg);
    pb_fwd_state_free(st);
}

static int count_kind(const pb_prune_result *r, int layer, pb_struct_kind k) {
    int n = 0;
    for (int i = 0; i < r->n_removed; i++) n += r->removed[i].layer == layer && r->removed[i].kind == k;
    return n;
}

static void one(const model_spec *s, uint64_t seed, const char *method, const char *criterion, int a, int b,
                const pb_calib *c, const int32_t *ids, int B, int T) {
    double r = 0.5;
    pb_model *ref = rm_build(&s->cfg, s->layers, seed, RM_SCALED), *mk = rm_build(&s->cfg, s->layers, seed, RM_SCALED),
             *sl = rm_build(&s->cfg, s->layers, seed, RM_SCALED);
    pb_prune_opts o;
    pb_prune_opts_default(&o);
    o.method = method;
    o.criterion = criterion;
    o.native = r;
    o.layer_start = a;
    o.layer_end = b;
    o.calib = c;
    o.seed = 7;
    pb_err err;
    pb_prune_result rm, rs;
    o.mask_only = true;
    REQUIRE(pb_prune(mk, &o, &rm, &err) == 0, "%s %s: %s", s->name, method, err.msg);
    o.mask_only = false;
    REQUIRE(pb_prune(sl, &o, &rs, &err) == 0, "%s %s: %s", s->name, method, err.msg);
    const char *what = criterion ? criterion : method;

    CHECK_MSG(rm.n_removed == rs.n_removed, "%s %s: %d vs %d removed", s->name, what, rm.n_removed, rs.n_removed);
    for (int i = 0; i < rm.n_removed && i < rs.n_removed; i++)
        CHECK_MSG(rm.removed[i].layer == rs.removed[i].layer && rm.removed[i].kind == rs.removed[i].kind &&
                      rm.removed[i].index == rs.removed[i].index,
                  "%s %s: structure %d differs", s->name, what, i);
    /* LLM-Pruner's counts at r = 0.5: C - int(C / 2) of C = n_kv * head_dim -> / head_dim */
    int64_t removed_params = 0;
    for (int l = 0; l < s->cfg.n_layers; l++) {
        const rm_layer *x = &s->layers[l];
        const pb_layer *L = &sl->layers[l];
        bool in = a < 0 || (l >= a && l < b);
        int units = 0, chans = 0;
        if (in && x->n_heads) units = (x->n_kv_heads * x->head_dim - (x->n_kv_heads * x->head_dim) / 2) / x->head_dim;
        if (in && x->ffn_dim) chans = x->ffn_dim - x->ffn_dim / 2;
        CHECK_MSG(count_kind(&rs, l, PB_S_HEAD) == units && count_kind(&rs, l, PB_S_CHANNEL) == chans,
                  "%s %s layer %d: %d units, %d channels removed, want %d, %d", s->name, what, l,
                  count_kind(&rs, l, PB_S_HEAD), count_kind(&rs, l, PB_S_CHANNEL), units, chans);
        if (x->n_heads) {
            CHECK(L->n_kv_heads == x->n_kv_heads - units && L->n_heads == L->n_kv_heads * (x->n_heads / x->n_kv_heads));
            pb_struct h = {l, PB_S_HEAD, 0};
            removed_params += (int64_t)units * pb_struct_params(ref, &h);
        }
        if (x->ffn_dim) {
            CHECK(L->ffn_dim == x->ffn_dim - chans);
            pb_struct ch = {l, PB_S_CHANNEL, 0};
            removed_params += (int64_t)chans * pb_struct_params(ref, &ch);
        }
    }
    CHECK(rs.params_before == pb_model_params(ref) && rs.params_after == rs.params_before - removed_params);
    CHECK(rm.params_after == rm.params_before);

    size_t nl = (size_t)B * T * s->cfg.vocab_size;
    float *l0 = malloc(nl * sizeof(float)), *l1 = malloc(nl * sizeof(float)), *l2 = malloc(nl * sizeof(float));
    REQUIRE(l0 && l1 && l2, "oom");
    logits_of(ref, ids, B, T, l0);
    logits_of(mk, ids, B, T, l1);
    logits_of(sl, ids, B, T, l2);
    double e = pb_test_rel_err(l2, l1, nl), moved = pb_test_rel_err(l1, l0, nl);
    CHECK_MSG(e <= MASK_TOL, "%s %s %d:%d: sliced vs masked logits %.3g", s->name, what, a, b, e);
    CHECK_MSG(moved >= CHANGED, "%s %s: pruning moved the logits by only %.3g", s->name, what, moved);
    fprintf(stderr, "ok   %-8s %-12s layers %2d:%-2d sliced vs masked %.2e (pruning moved logits %.2f)\n", s->name,
            what, a, b, e, moved);
    free(l0);
    free(l1);
    free(l2);
    pb_prune_result_free(&rm);
    pb_prune_result_free(&rs);
    pb_model_free(ref);
    pb_model_free(mk);
    pb_model_free(sl);
}

/* Random: the same seed removes the same structures, another seed others. */
static void random_seeds(const model_spec *s) {
    pb_prune_result r[3];
    uint64_t seeds[3] = {1, 1, 2};
    for (int i = 0; i < 3; i++) {
        pb_model *m = rm_build(&s->cfg, s->layers, 5, RM_SCALED);
        pb_prune_opts o;
        pb_prune_opts_default(&o);
        o.method = "random";
        o.native = 0.5;
        o.seed = seeds[i];
        o.mask_only = true;
        pb_err err;
        REQUIRE(pb_prune(m, &o, &r[i], &err) == 0, "%s", err.msg);
        pb_model_free(m);
    }
    bool same01 = r[0].n_removed == r[1].n_removed, same02 = r[0].n_removed == r[2].n_removed;
    for (int i = 0; i < r[0].n_removed; i++) {
        same01 &= same01 && r[0].removed[i].index == r[1].removed[i].index;
        same02 &= same02 && r[0].removed[i].index == r[2].removed[i].index;
    }
    CHECK_MSG(same01, "random: seed 1 twice removed different structures");
    CHECK_MSG(!same02, "random: seeds 1 and 2 removed the same structures");
    for (int i = 0; i < 3; i++) pb_prune_result_free(&r[i]);
}

/* magnitude's head score against the L2 norm of the unit's weights summed here: q rows
 * [g r hd, (g+1) r hd), k and v rows [g hd, (g+1) hd), o columns [g r hd, (g+1) r hd). Both
 * sums are in double over the same fp32 values, in different orders: 1e-12 relative. */
static void magnitude_by_hand(const model_spec *s) {
    pb_model *m = rm_build(&s->cfg, s->layers, 9, RM_SCALED);
    pb_prune_opts o;
    pb_prune_opts_default(&o);
    o.method = "magnitude";
    o.granularity = PB_S_HEAD;
    pb_scores sc;
    pb_err err;
    REQUIRE(pb_importance(m, &o, &sc, &err) == 0, "%s", err.msg);
    const pb_layer *L = &m->layers[0];
    int d = s->cfg.dim, hd = L->head_dim, rq = L->n_heads / L->n_kv_heads, qd = L->n_heads * hd;
    for (int g = 0; g < L->n_kv_heads; g++) {
        double ss = 0;
        for (int i = g * rq * hd; i < (g + 1) * rq * hd; i++)
            for (int j = 0; j < d; j++) {
                ss += (double)L->wq[(size_t)i * d + j] * L->wq[(size_t)i * d + j];
                ss += (double)L->wo[(size_t)j * qd + i] * L->wo[(size_t)j * qd + i];
            }
        for (int i = g * hd; i < (g + 1) * hd; i++)
            for (int j = 0; j < d; j++)
                ss += (double)L->wk[(size_t)i * d + j] * L->wk[(size_t)i * d + j] +
                      (double)L->wv[(size_t)i * d + j] * L->wv[(size_t)i * d + j];
        CHECK_NEAR(sc.score[0][g], sqrt(ss), 1e-12 * sqrt(ss));
    }
    pb_scores_free(&sc);
    pb_model_free(m);
}

int main(void) {
    static const char ALL[] = "qkvoGUD";
    model_spec specs[3] = {
        {"gqa", cfg_of(64, 3, 97, true), {{8, 4, 8, 96, NULL}, {8, 4, 8, 96, NULL}, {8, 4, 8, 96, NULL}}},
        {"mha_bias", cfg_of(48, 3, 61, false), {{4, 4, 12, 64, ALL}, {4, 4, 12, 64, ALL}, {4, 4, 12, 64, ALL}}},
        {"mixed", cfg_of(64, 4, 80, false),
         {{8, 2, 8, 72, "oD"}, {0, 0, 8, 40, NULL}, {6, 6, 8, 0, "q"}, {4, 2, 16, 50, ALL}}},
    };
    /* calibration: 3 windows of 20 tokens; logits on 2 sequences of 24 */
    enum { CN = 3, CT = 20, B = 2, T = 24 };
    for (int si = 0; si < 3; si++) {
        model_spec *s = &specs[si];
        rm_state = 1234 + (uint64_t)si;
        int32_t cids[CN * CT], ids[B * T];
        for (int i = 0; i < CN * CT; i++) cids[i] = (int32_t)((rm_next() >> 11) % (uint64_t)s->cfg.vocab_size);
        for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((rm_next() >> 11) % (uint64_t)s->cfg.vocab_size);
        pb_calib c = {CN, CT, cids, NULL};
        int ranges[2][2] = {{-1, -1}, {1, s->cfg.n_layers}};
        for (int ri = 0; ri < 2; ri++) {
            int a = ranges[ri][0], b = ranges[ri][1];
            one(s, 11, "llm-pruner", "param_first", a, b, &c, ids, B, T);
            one(s, 11, "llm-pruner", "param_mix", a, b, &c, ids, B, T);
            one(s, 11, "llm-pruner", "vectorize", a, b, &c, ids, B, T);
            one(s, 11, "magnitude", NULL, a, b, &c, ids, B, T);
            one(s, 11, "random", NULL, a, b, &c, ids, B, T);
        }
        random_seeds(s);
        magnitude_by_hand(s);
    }
    return pb_test_done("prune_width_mask");
}
