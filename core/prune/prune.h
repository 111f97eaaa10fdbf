/* prune.h — structured pruning: the structures every method addresses, the one slicing
 * routine per kind of structure, calibration windows, importance scores, and the method
 * interface (one file per method: depth.c, llm_pruner.c, wanda_sp.c, flap.c, width_simple.c).
 *
 * Structures are named {layer, kind, index} in the numbering of the model they are applied
 * to (results report the original model's numbering): a block, a layer's attention or MLP
 * module, a head unit, or an FFN channel. A head unit is a KV group: KV head g with its n_heads/n_kv_heads query heads
 * (q/k/v rows and o columns); with MHA that is one head. An FFN channel is a gate/up row and
 * its down column. Slicing is physical: shapes shrink, so pruned models are measured at their
 * real size and speed; a layer may end with no heads (no attention) or no channels (no MLP). */
#ifndef PB_PRUNE_H
#define PB_PRUNE_H

#include "model.h"
#include "tokenizer.h"

typedef enum { PB_S_BLOCK = 0, PB_S_ATTN = 1, PB_S_MLP = 2, PB_S_HEAD = 3, PB_S_CHANNEL = 4 } pb_struct_kind;
extern const char *const pb_struct_kind_names[5];   /* "block", "attn", "mlp", "head", "channel" */

typedef struct {
    int layer;
    pb_struct_kind kind;
    int index;           /* head unit (KV group) or channel; 0 for block/attn/mlp */
} pb_struct;

/* ---- slicing ------------------------------------------------------------------------------- */

/* Removes the structures (any mix of kinds, m's current numbering, duplicates ignored) from m
 * in place: rows and columns are compacted inside the existing buffers, so no second copy
 * of the weights is made. Width first, then modules, then blocks. A layer left with no head
 * unit loses its attention, one left with no channel its MLP. Biases of removed rows go
 * with them; o_proj/down_proj biases (per output) stay unless their module goes (which
 * includes losing every head unit / channel: a module cannot be only a bias). Errors:
 * a structure outside the model, or one the model no longer has. */
int pb_prune_apply(pb_model *m, const pb_struct *s, int n, pb_err *err);

/* The masked counterpart of pb_prune_apply: zeroes what removal takes away (head units:
 * q/k/v rows and biases, o columns; channels: gate/up rows and biases, down columns;
 * modules and blocks: o_proj / down_proj weights and biases, which makes them the identity
 * on the residual stream) and keeps every shape. A sliced model's logits equal the masked
 * model's; tests and `prune --mask` use it. */
int pb_prune_mask(pb_model *m, const pb_struct *s, int n, pb_err *err);

/* Parameters one structure holds in m (its current shape; a head unit with its query heads,
 * k and v rows, o columns and biases; a channel with its three vectors and biases). */
int64_t pb_struct_params(const pb_model *m, const pb_struct *s);

/* ---- calibration ------------------------------------------------------------------------- */

typedef enum { PB_CALIB_RANDOM = 0, PB_CALIB_CONTIGUOUS = 1 } pb_calib_sampling;

typedef struct pb_calib {
    int n, T;            /* n windows of T tokens */
    int32_t *ids;        /* (n, T), each window BOS first */
    char *source;        /* what they came from (dataset:split or file) */
} pb_calib;

/* The text of `name` (a registered text dataset, split `split` or its default; or a file)
 * tokenized once without BOS into a stream S. contiguous: window i = BOS + S[i(T-1),
 * (i+1)(T-1)). random: window i = BOS + S[o_i, o_i + T - 1) with o_i uniform in
 * [0, |S| - T + 1), drawn from splitmix64 seeded by seed (the papers sample random windows).
 * Errors name the dataset when the text is too short for n windows (contiguous) or one. */
int  pb_calib_load(pb_calib *c, const char *name, const char *split, const char *data_dir, const pb_tokenizer *tok,
                   int n, int T, pb_calib_sampling sampling, uint64_t seed, pb_err *err);
void pb_calib_free(pb_calib *c);

/* ---- importance scores -------------------------------------------------------------------- */

/* Scores at one granularity: one per layer for block/attn/mlp (NAN where the layer has no
 * such module), one per head unit or channel of each layer for head/channel. Lower = less
 * important = pruned first. Layers are the model's current layers. */
typedef struct {
    pb_struct_kind kind;
    int n_layers;
    int *count;          /* (n_layers) */
    double **score;      /* (n_layers) -> (count[l]) */
} pb_scores;

int  pb_scores_alloc(pb_scores *s, const pb_model *m, pb_struct_kind kind, pb_err *err);
void pb_scores_free(pb_scores *s);

/* ---- reusing scores across amounts ------------------------------------------------------- */

/* What the methods computed on one model (unpruned, same weights) for one amount, kept for
 * another: a sweep over ratios of one criterion scores the model once. Each entry is keyed
 * by everything that may change a score (method, criterion, aggregation, metric, seed, the
 * calibration windows, ...) and nothing about the amount (ratio, count, native, protection,
 * mask_only), so a result with a memo is identical to one without. A memo is valid for ONE
 * model: the caller frees it when the model changes. Not thread-safe. */
typedef struct pb_prune_memo pb_prune_memo;

pb_prune_memo *pb_prune_memo_new(void);      /* NULL: out of memory */
void pb_prune_memo_free(pb_prune_memo *memo);
/* Lookups that reused something (hits) and that computed something (misses), so far. */
void pb_prune_memo_stats(const pb_prune_memo *memo, int *hits, int *misses);

/* ---- methods -------------------------------------------------------------------------------- */

typedef struct {
    const char *method;      /* depth | llm-pruner | wanda-sp | flap | magnitude | random */
    const char *criterion;   /* depth: magnitude | taylor | ppl; llm-pruner: param_first | param_second |
                                param_mix | vectorize; magnitude: l1 | l2 (NULL: the method's default) */
    pb_struct_kind granularity; /* depth: BLOCK, ATTN or MLP (modules of one kind); width: HEAD / CHANNEL
                                   for `importance` (pruning removes both) */
    bool module_joint;       /* depth: attention and MLP modules ranked together ("module") */
    /* how much: exactly one of these is used, in this order of precedence */
    double ratio;            /* fraction of all parameters to remove, in [0, 1); < 0: unset */
    int count;               /* depth: blocks / modules to remove; < 0: unset */
    double native;           /* llm-pruner: per-layer group ratio; flap / wanda-sp: p; < 0: unset */
    /* depth */
    int protect_first, protect_last;
    bool iterative;          /* re-score after each removal */
    /* width */
    int layer_start, layer_end; /* half-open range of layers to prune (llm-pruner); -1: all */
    const char *aggregation; /* llm-pruner group reduction: sum | mean | max | prod | first */
    const char *structure;   /* flap: al-am | ul-um */
    const char *metric;      /* flap: wifv | ifv | wifn */
    bool no_bias_compensation; /* flap */
    uint64_t seed;           /* random */
    bool mask_only;          /* zero the structures instead of slicing them (tests, masks) */
    const pb_calib *calib;   /* methods and criteria that need data */
    pb_prune_memo *memo;     /* NULL: none. What a method computed on this same model (unpruned, same
                                weights) for another amount, reused: valid for one model; the caller
                                frees it when the model changes */
} pb_prune_opts;

/* Defaults: ratio/count/native unset, protect 0/0, one-shot, all layers, sum, al-am, wifv, no memo. */
void pb_prune_opts_default(pb_prune_opts *o);

typedef struct {
    pb_struct *removed;      /* malloc'd, the original model's numbering, in removal order */
    int n_removed;
    int64_t params_before, params_after, params_before_no_embed, params_after_no_embed;
} pb_prune_result;

void pb_prune_result_free(pb_prune_result *r);

/* Runs o->method on m (in place) and fills r. Validates every option first: a ratio outside
 * [0, 1), a count or range outside the model, a protected block that would have to go, an
 * unknown method / criterion / aggregation / structure / metric, missing calibration. */
int pb_prune(pb_model *m, const pb_prune_opts *o, pb_prune_result *r, pb_err *err);

/* Importance scores as the method and criterion of o compute them, at o->granularity,
 * without pruning (the `importance` command). With o->memo, the scores of m are computed
 * once per memo and key and copied out (out is always the caller's own). */
int pb_importance(const pb_model *m, const pb_prune_opts *o, pb_scores *out, pb_err *err);

/* What can be planned without weights (`prune --dry-run` on a config-only folder, loaded
 * with pb_hf_config_load(..., false, ...)): for methods whose numbers do not depend on the
 * weights (llm-pruner, wanda-sp, magnitude and random at per-layer ratios: the kept head
 * units and channels of each layer; depth: how many blocks, taken from the end when the
 * blocks are all alike), the layer shapes of `shape` are set as pruning would leave them
 * and r gets the parameter counts (removed stays empty). Other plans are an error saying
 * that they need the weights. */
int pb_prune_dry_run(pb_model *shape, const pb_prune_opts *o, pb_prune_result *r, pb_err *err);

#endif
