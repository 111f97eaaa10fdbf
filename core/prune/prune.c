/* prune.c — the pruning driver: options, the method table, parameter accounting, ratio
 * solving, the dry run, and the importance entry point. */
#include "prune_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const pb_pruner *const methods[] = {&pb_pruner_depth, &pb_pruner_llm_pruner, &pb_pruner_wanda_sp,
                                           &pb_pruner_flap,  &pb_pruner_magnitude,  &pb_pruner_random};
enum { N_METHODS = sizeof methods / sizeof methods[0] };

void pb_prune_opts_default(pb_prune_opts *o) {
    memset(o, 0, sizeof *o);
    o->granularity = PB_S_BLOCK;
    o->ratio = -1.0;
    o->count = -1;
    o->native = -1.0;
    o->layer_start = o->layer_end = -1;
}

void pb_prune_result_free(pb_prune_result *r) {
    free(r->removed);
    memset(r, 0, sizeof *r);
}

int pb_scores_alloc(pb_scores *s, const pb_model *m, pb_struct_kind kind, pb_err *err) {
    memset(s, 0, sizeof *s);
    int L = m->cfg.n_layers;
    s->kind = kind;
    s->n_layers = L;
    s->count = calloc((size_t)(L ? L : 1), sizeof(int));
    s->score = calloc((size_t)(L ? L : 1), sizeof(double *));
    if (!s->count || !s->score) goto oom;
    for (int l = 0; l < L; l++) {
        const pb_layer *Ly = &m->layers[l];
        int c = kind == PB_S_HEAD ? (Ly->has_attn ? Ly->n_kv_heads : 0)
              : kind == PB_S_CHANNEL ? (Ly->has_mlp ? Ly->ffn_dim : 0) : 1;
        s->count[l] = c;
        if (!(s->score[l] = calloc((size_t)(c ? c : 1), sizeof(double)))) goto oom;
        if (kind == PB_S_ATTN && !Ly->has_attn) s->score[l][0] = NAN;
        if (kind == PB_S_MLP && !Ly->has_mlp) s->score[l][0] = NAN;
    }
    return 0;
oom:
    pb_scores_free(s);
    return pb_err_set(err, "importance: out of memory");
}

void pb_scores_free(pb_scores *s) {
    for (int l = 0; s->score && l < s->n_layers; l++) free(s->score[l]);
    free(s->score);
    free(s->count);
    memset(s, 0, sizeof *s);
}

int pb_prune_remove(pb_model *m, const pb_prune_opts *o, const pb_struct *s, int n, const int *orig,
                    pb_prune_result *r, pb_err *err) {
    if (n <= 0) return 0;
    pb_struct *grown = realloc(r->removed, sizeof *grown * (size_t)(r->n_removed + n));
    PB_CHECK_ALLOC(grown, err);
    r->removed = grown;
    PB_TRY(o->mask_only ? pb_prune_mask(m, s, n, err) : pb_prune_apply(m, s, n, err));
    for (int i = 0; i < n; i++) {
        pb_struct x = s[i];
        if (orig) x.layer = orig[x.layer];
        r->removed[r->n_removed++] = x;
    }
    return 0;
}

int pb_prune_count(int C, double r) { return C - (int)((double)C * (1.0 - r)); }

int64_t pb_prune_block_params(const pb_model *m) {
    int64_t n = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        n += pb_head_unit_params(m, l) * (L->has_attn ? L->n_kv_heads : 0);
        n += pb_channel_params(m, l) * (L->has_mlp ? L->ffn_dim : 0);
    }
    return n;
}

double pb_prune_solve(double target, int64_t (*removed)(const pb_model *m, const pb_prune_opts *o, double x),
                      const pb_model *m, const pb_prune_opts *o) {
    /* removed() is a non-decreasing step function: bisect for the first grid point reaching
     * target, then compare it with its left neighbour */
    int64_t lo = 0, hi = 999999;
    if ((double)removed(m, o, 0.0) >= target) return 0.0;
    if ((double)removed(m, o, hi * 1e-6) < target) return hi * 1e-6;
    while (hi - lo > 1) {
        int64_t mid = (lo + hi) / 2;
        if ((double)removed(m, o, mid * 1e-6) >= target) hi = mid;
        else lo = mid;
    }
    double above = (double)removed(m, o, hi * 1e-6) - target, below = target - (double)removed(m, o, lo * 1e-6);
    return below <= above ? lo * 1e-6 : hi * 1e-6;
}

static const pb_pruner *find(const char *name, pb_err *err) {
    for (int i = 0; i < N_METHODS; i++)
        if (name && strcmp(name, methods[i]->name) == 0) return methods[i];
    pb_err_set(err, "prune: unknown method '%s' (depth, llm-pruner, wanda-sp, flap, magnitude, random)",
               name ? name : "(none)");
    return NULL;
}

static int check_common(const pb_model *m, const pb_prune_opts *o, pb_err *err) {
    if (o->ratio >= 0.0 && !(o->ratio < 1.0))
        return pb_err_set(err, "prune: --ratio %g is outside [0, 1)", o->ratio);
    if (o->ratio < 0.0 && o->ratio != -1.0) return pb_err_set(err, "prune: --ratio %g is outside [0, 1)", o->ratio);
    if (isnan(o->ratio)) return pb_err_set(err, "prune: --ratio is not a number");
    int L = m->cfg.n_layers;
    if (o->layer_start != -1 || o->layer_end != -1) {
        if (o->layer_start < 0 || o->layer_end > L || o->layer_start >= o->layer_end)
            return pb_err_set(err, "prune: --layers %d:%d is outside the model's layers 0:%d (half-open START:END)",
                              o->layer_start, o->layer_end, L);
    }
    if (o->protect_first < 0 || o->protect_last < 0 || o->protect_first + o->protect_last > L)
        return pb_err_set(err, "prune: --protect-first %d --protect-last %d do not fit %d layers", o->protect_first,
                          o->protect_last, L);
    return 0;
}

int pb_prune(pb_model *m, const pb_prune_opts *o, pb_prune_result *r, pb_err *err) {
    memset(r, 0, sizeof *r);
    const pb_pruner *p = find(o->method, err);
    if (!p) return -1;
    PB_TRY(check_common(m, o, err));
    if (p->check) PB_TRY(p->check(m, o, err));
    r->params_before = pb_model_params(m);
    r->params_before_no_embed = pb_model_params_no_embed(m);
    if (p->run(m, o, r, err) != 0) {
        pb_prune_result_free(r);
        return -1;
    }
    r->params_after = pb_model_params(m);
    r->params_after_no_embed = pb_model_params_no_embed(m);
    return 0;
}

int pb_importance(const pb_model *m, const pb_prune_opts *o, pb_scores *out, pb_err *err) {
    const pb_pruner *p = find(o->method, err);
    if (!p) return -1;
    PB_TRY(check_common(m, o, err));
    if (p->check) PB_TRY(p->check(m, o, err));
    if (!p->score) return pb_err_set(err, "importance: method %s has no importance scores of its own", p->name);
    /* with a memo: any method's scores once per key; the caller always gets its own copy.
     * Scores shaped for another model (a memo used against its contract) are not reused,
     * and what this model gives is then not stored either. */
    char key[PB_MEMO_KEY_MAX];
    pb_prune_opts plain = *o;
    plain.memo = NULL;
    if (!o->memo || pb_prune_memo_key(o, "importance", key, sizeof key) != 0) return p->score(m, o, out, err);
    const pb_scores *hit = pb_prune_memo_get(o->memo, key);
    if (hit && !pb_scores_fit(hit, m)) return p->score(m, &plain, out, err);
    if (hit) {
        pb_prune_memo_tally(o->memo, 1, 0);
        return pb_scores_copy(out, hit, err);
    }
    PB_TRY(p->score(m, o, out, err));
    pb_prune_memo_tally(o->memo, 0, 1);
    pb_scores *keep = malloc(sizeof *keep);
    pb_err ignored;
    /* a copy that cannot be kept only costs the reuse: the scores themselves are fine */
    if (keep && pb_scores_copy(keep, out, &ignored) == 0)
        (void)pb_prune_memo_put(o->memo, key, keep, pb_scores_free_heap, &ignored);
    else
        free(keep);
    return 0;
}

int pb_prune_dry_run(pb_model *shape, const pb_prune_opts *o, pb_prune_result *r, pb_err *err) {
    memset(r, 0, sizeof *r);
    const pb_pruner *p = find(o->method, err);
    if (!p) return -1;
    PB_TRY(check_common(shape, o, err));
    if (!p->plan)
        return pb_err_set(err, "prune --dry-run: method %s decides its structures from the weights; a plan needs them",
                          p->name);
    r->params_before = pb_model_params(shape);
    r->params_before_no_embed = pb_model_params_no_embed(shape);
    PB_TRY(p->plan(shape, o, err));
    r->params_after = pb_model_params(shape);
    r->params_after_no_embed = pb_model_params_no_embed(shape);
    return 0;
}
