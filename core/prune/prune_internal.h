/* prune_internal.h — private to core/prune: the method interface and the helpers methods share.
 *
 * A method is one file defining one pb_pruner. pb_prune (prune.c) validates the common
 * options, counts parameters before and after, and calls the method's run, which scores,
 * decides and removes through pb_prune_remove (slicing, or zeroing with mask_only). */
#ifndef PB_PRUNE_INTERNAL_H
#define PB_PRUNE_INTERNAL_H

#include "grad.h"
#include "prune.h"

typedef struct {
    const char *name;
    /* method-specific option checks (criterion names, calibration present, ...) */
    int (*check)(const pb_model *m, const pb_prune_opts *o, pb_err *err);
    /* scores, decides and removes; appends to r->removed in the original numbering */
    int (*run)(pb_model *m, const pb_prune_opts *o, pb_prune_result *r, pb_err *err);
    /* importance at o->granularity without pruning (NULL: none of its own) */
    int (*score)(const pb_model *m, const pb_prune_opts *o, pb_scores *s, pb_err *err);
    /* the shape-only plan of pb_prune_dry_run (NULL: needs the weights) */
    int (*plan)(pb_model *shape, const pb_prune_opts *o, pb_err *err);
} pb_pruner;

extern const pb_pruner pb_pruner_depth, pb_pruner_llm_pruner, pb_pruner_wanda_sp, pb_pruner_flap,
    pb_pruner_magnitude, pb_pruner_random;

/* Removes (or, with o->mask_only, zeroes) the structures, given in m's current numbering,
 * and appends them to r->removed translated through orig (orig[l] = the original index of
 * m's layer l; NULL when m still has the original layers). */
int pb_prune_remove(pb_model *m, const pb_prune_opts *o, const pb_struct *s, int n, const int *orig,
                    pb_prune_result *r, pb_err *err);

/* ---- sizes and ratios --------------------------------------------------------------------- */

/* Query heads per head unit (n_heads / n_kv_heads) and the parameters of one head unit and
 * of one channel in layer l (weights and biases). */
int64_t pb_head_unit_params(const pb_model *m, int l);
int64_t pb_channel_params(const pb_model *m, int l);
/* LLM-Pruner's per-layer count: C - int(C * (1 - r)) of C units (int() truncates). */
int pb_prune_count(int C, double r);
/* Parameters in every layer's attention and MLP weights (FLAP's and Wanda-sp's p base). */
int64_t pb_prune_block_params(const pb_model *m);

/* The smallest x in [0, 1) on a grid of 1e-6 whose removed(x) (non-decreasing in x) is
 * closest to target; ties go to the smaller x. */
double pb_prune_solve(double target, int64_t (*removed)(const pb_model *m, const pb_prune_opts *o, double x),
                      const pb_model *m, const pb_prune_opts *o);

/* ---- the score memo (memo.c) ------------------------------------------------------------ */

/* The value stored under key, or NULL (also when memo is NULL). Lookups do not count: the
 * caller says what it reused and what it computed with pb_prune_memo_tally. */
void *pb_prune_memo_get(pb_prune_memo *memo, const char *key);
/* Stores value under key (replacing and freeing an entry of that key); the memo owns value
 * afterwards and frees it with free_fn (also when storing fails). */
int pb_prune_memo_put(pb_prune_memo *memo, const char *key, void *value, void (*free_fn)(void *), pb_err *err);
/* Adds to the counters of pb_prune_memo_stats: every reuse counts a hit, every computation a
 * miss (NULL memo: nothing). */
void pb_prune_memo_tally(pb_prune_memo *memo, int hits, int misses);

/* The key of what o computes: what (the kind of entry, e.g. "depth"), method, criterion,
 * granularity, module_joint, layer range, aggregation, structure, metric, seed, and the
 * calibration windows (source, n, T, a hash of every id); nothing about the amount (ratio,
 * count, native, protect_*, iterative, mask_only). A method whose entry does not depend on
 * some of these fields normalises them in a copy of o first, so that more runs share it
 * (and one whose entry depends on more would append its fields to the key).
 * -1 when the key does not fit cap (the caller then goes without the memo). */
int pb_prune_memo_key(const pb_prune_opts *o, const char *what, char *buf, size_t cap);
/* A pb_mix64 hash of the windows' shape and every id (0 for NULL). */
uint64_t pb_calib_fingerprint(const pb_calib *c);

/* Room for any key (a calibration file's path is its longest part). */
#define PB_MEMO_KEY_MAX 4608

/* Whether s has m's shape at s->kind (per layer: n_kv_heads / ffn_dim, 0 without the
 * module; 1 for block / attn / mlp), i.e. was computed on a model shaped like m. */
bool pb_scores_fit(const pb_scores *s, const pb_model *m);
/* A deep copy of src into dst (dst's previous content is not freed). */
int pb_scores_copy(pb_scores *dst, const pb_scores *src, pb_err *err);
/* pb_scores_free + free, as a memo entry's free_fn. */
void pb_scores_free_heap(void *s);

/* ---- calibration passes ------------------------------------------------------------------ */

/* Mean next-token NLL over every calibration window (positions 1..T-1), the PPL criterion's
 * log; windows run in batches of up to 8. */
int pb_calib_nll(const pb_model *m, const pb_calib *c, double *nll, pb_err *err);

/* pb_grad_run over the calibration windows as micro-batches of `per` windows (per = 1 for
 * per-sample gradients, 0 for one batch): the gradient of the mean next-token loss over all
 * windows, streamed to the consumer. */
int pb_calib_grads(const pb_model *m, const pb_calib *c, int per, const pb_grad_opts *o, pb_err *err);

#endif
