/* width_common.h — private to llm_pruner.c and width_simple.c: LLM-Pruner's block-wise
 * selection, which its baselines (magnitude "L2", random) share with it: the same coupled
 * groups (head units, FFN channels), the same per-layer counts and the same layer range.
 * Only the scores differ. Implemented in width_simple.c.
 *
 * Counts (horseee/LLM-Pruner, MetaPruner with consecutive_groups = head_dim): in each
 * pruned layer at group ratio r, n_prune = C - int(C (1 - r)) of C = n_kv_heads * head_dim
 * root channels (q rows for MHA, the LLaMA-1 root q_proj; k rows for GQA, llama3.py's
 * root k_proj: both are n_kv_heads * head_dim), so n_prune / head_dim head units go; and
 * C - int(C (1 - r)) of C = ffn_dim channels. The lowest scores go, ties to the lower
 * index. A layer may lose every unit (it then has no attention / no MLP). */
#ifndef PB_WIDTH_COMMON_H
#define PB_WIDTH_COMMON_H

#include "prune_internal.h"

/* Whether layer l is in o's half-open range [layer_start, layer_end) (-1/-1: every layer). */
bool pb_width_in_range(const pb_prune_opts *o, int l);

/* Head units and channels removed from layer l of m at group ratio r (0 outside the range
 * or where the layer has no such module). */
void pb_width_counts(const pb_model *m, const pb_prune_opts *o, int l, double r, int *units, int *chans);

/* The option checks the three methods share (`who` names the method in messages): count
 * unset, not both ratio and native, native in [0, 1), the layer range inside m, and none of
 * depth pruning's --iterative / --protect-* (which would otherwise be silently ignored). */
int pb_width_check_amount(const pb_model *m, const pb_prune_opts *o, const char *who, pb_err *err);

/* The group ratio r to prune with: o->native, or, with o->ratio (a fraction of all of m's
 * parameters, embeddings included), the r on pb_prune_solve's 1e-6 grid whose removal is
 * closest to ratio * pb_model_params(m) (the smallest such r). Error when neither is set. */
int pb_width_group_ratio(const pb_model *m, const pb_prune_opts *o, const char *who, double *r, pb_err *err);

/* Removes (o->mask_only: zeroes) the lowest-scoring head units and channels of every layer
 * in range, pb_width_counts of each, from heads (PB_S_HEAD) and chans (PB_S_CHANNEL) scores
 * of m's current layers, and records them in res. */
int pb_width_select(pb_model *m, const pb_prune_opts *o, double r, const pb_scores *heads, const pb_scores *chans,
                    pb_prune_result *res, pb_err *err);

/* The dry-run plan: the layer shapes pb_width_select would leave (the counts need no
 * weights). */
int pb_width_plan(pb_model *shape, const pb_prune_opts *o, const char *who, pb_err *err);

#endif
