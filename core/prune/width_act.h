/* width_act.h — private to the activation-based width methods (wanda_sp.c, flap.c): per-channel
 * statistics of each layer's o_proj input and down_proj input over the calibration windows,
 * collected layer by layer, and the option checks, ratio solving and selection both share.
 *
 * Statistics are per window, in window order, because FLAP's fluctuation estimator is an
 * online update per sample whose result depends on that order (see width_act.c). */
#ifndef PB_WIDTH_ACT_H
#define PB_WIDTH_ACT_H

#include "prune_internal.h"

typedef struct {
    int C;          /* channels: n_heads*head_dim (o_proj input) or ffn_dim (down_proj input); 0: no module */
    int n;          /* windows seen */
    double *mean;   /* (C) x̄_j: mean over all windows and tokens (FLAP's baseline) */
    double *sq;     /* (C) mean over windows of sum over tokens of X[n,t,j]^2 (Wanda's s_j, FLAP's WIFN scaler) */
    double *fluc;   /* (C) FLAP's fluctuation f_j (NULL unless asked for) */
} pb_act_stat;

typedef struct {
    pb_act_stat att, mlp;
} pb_act_layer;

/* Called once per layer l when its statistics are complete (the stats are freed after the
 * call). Setting *changed says the callback modified layer l (pruned it): the walker then
 * recomputes l's output with the modified layer before layer l+1 sees it (Wanda-sp's
 * sequential pruning). */
typedef int (*pb_act_fn)(void *ctx, int l, const pb_act_layer *st, bool *changed, pb_err *err);

/* Runs every calibration window through m layer by layer (pb_model_embed, then
 * pb_model_layer_forward at positions 0..T-1 per window, windows in chunks) and calls fn for
 * each layer. fluc: also FLAP's fluctuation. sequential: fn may change the layer (keeps a
 * copy of the layer's input, N*T*dim floats, to recompute its output). what: the method's
 * name for error messages. */
int pb_act_walk(const pb_model *m, const pb_calib *c, bool fluc, bool sequential, pb_act_fn fn, void *ctx,
                const char *what, pb_err *err);

/* out_j = mean_i |W_ij| (abs_mean) or sum_i W_ij^2 (sq) over the rows i of W (rows, C). */
void pb_act_col_abs_mean(const float *W, int rows, int C, double *out);
void pb_act_col_sq(const float *W, int rows, int C, double *out);

/* The k lowest of score[0..n) into out[0..k), ascending index order; ties between equal
 * scores go to the lower index first (the reference keeps every unit >= the k-th score, so
 * it removes fewer than k on ties; we remove exactly k). Returns -1 on out of memory. */
int pb_act_lowest(const double *score, int n, int k, int *out);

/* Options shared by wanda-sp and flap: at most one of ratio and native (need_amount:
 * exactly one), native in [0, 1), no count, no layer range, no protected layers. */
int pb_act_check_amount(const pb_prune_opts *o, const char *what, bool need_amount, pb_err *err);

/* The uniform per-layer plan (Wanda-sp, FLAP UL-UM): floor(p * units) head units and
 * floor(p * ffn_dim) channels of every layer; *removed params of it, counting a new o/down bias
 * of dim values for each module that loses some units and has none when new_bias. */
int pb_act_uniform_count(int units, double p);
int64_t pb_act_uniform_removed(const pb_model *m, double p, bool new_bias);

/* p from o: o->native, or the p on pb_prune_solve's grid whose uniform plan removes closest to
 * o->ratio * pb_model_params(m). Errors when the ratio is out of reach at p < 1. */
int pb_act_uniform_p(const pb_model *m, const pb_prune_opts *o, bool new_bias, const char *what, double *p,
                     pb_err *err);

/* Applies the uniform plan to a shape-only model (prune --dry-run). */
int pb_act_uniform_plan(pb_model *shape, double p, pb_err *err);

#endif
