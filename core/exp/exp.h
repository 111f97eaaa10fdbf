/* exp.h — experiments: a YAML file that describes a sweep, expanded into runs.
 *
 * File layout (every key optional unless marked; unknown keys are errors with a suggestion):
 *
 *   name: quickstart                      # required; [A-Za-z0-9_.-]+, names the results folder
 *   description: "..."
 *   models:                               # required, non-empty list
 *     - name: stories260K                 # required, unique
 *       path: ../shared/models/stories260K/stories260K.gguf   # required; relative to the YAML file
 *       tokenizer: ../shared/models/stories260K/tok512.bin    # optional, relative to the YAML file
 *   calibration:                          # defaults shown
 *     dataset: wikitext2                  # a registered text set or a file (relative to the YAML)
 *     split: null
 *     samples: 10
 *     seq_len: 128
 *     sampling: random                    # random | contiguous
 *   methods:                              # required, non-empty list
 *     - name: taylor+                     # required, unique
 *       method: depth                     # depth | llm-pruner | wanda-sp | flap | magnitude | random
 *                                         #   (may be left out when the criterion implies it)
 *       criterion: taylor                 # the prune options of `prunebench prune`, snake_case:
 *       granularity: block                #   criterion, granularity, protect_first, protect_last,
 *       protect_first: 4                  #   iterative, layers ("4:30"), aggregation, structure,
 *       protect_last: 2                   #   metric, bias_compensation (bool)
 *   sweep:                                # the cartesian product of these axes...
 *     ratio: [0.2, 0.35]                  #   ratio (fraction of all parameters) | native | num_blocks
 *     model: [stories260K]                #   (default: every model)
 *     method: [taylor+, flap]             #   (default: every method)
 *     criterion: [taylor, magnitude]      #   overrides the method entries' criterion
 *     granularity: [block]                #   overrides granularity
 *     seed: [0]                           #   calibration / random seed (default [0])
 *     zip:                                #   ...times groups of axes that move together
 *       - {ratio: [0.2, 0.35], num_blocks: [6, 11]}
 *   dense: true                           # also evaluate every unpruned model (default true)
 *   evaluation:
 *     ppl: {datasets: [wikitext2, ptb], seq_len: 128, max_windows: 0, bos_per_window: false}
 *     zeroshot: {tasks: [boolq, piqa, hellaswag, winogrande, arc_easy, arc_challenge, openbookqa], limit: 0}
 *     speed: {batch: [1], prompt_len: 128, gen_len: 128, repeats: 3}
 *   recovery:                             # optional LoRA after pruning (finetune's options)
 *     lora: {data: FILE, format: alpaca, rank: 8, alpha: 16, dropout: 0.05, lr: 1e-4, epochs: 2,
 *            max_steps: 0, batch: 64, micro_batch: 4, cutoff: 256, val_size: 0}
 *   published:                            # the papers' numbers, for `compare` (free-form rows)
 *     - {model: LLaMA-7B, method: taylor+, ratio: 0.2, wikitext2: 20.2, ptb: 32.4, boolq: 75.8, ...}
 *
 * Errors name the file, line and column: "exp.yaml:12:5: unknown key 'ratios' (did you mean
 * 'ratio'?)", "exp.yaml:7:14: 'samples' must be a positive integer, not 'ten'". */
#ifndef PB_EXP_H
#define PB_EXP_H

#include "prune.h"

typedef struct {
    char *name, *path, *tokenizer;   /* path/tokenizer resolved against the YAML's folder */
} pb_exp_model;

typedef struct {
    char *name;
    pb_prune_opts prune;             /* method, criterion, granularity, options (strings owned by the spec) */
} pb_exp_method;

typedef struct {
    char *dataset, *split;
    int samples, seq_len;
    pb_calib_sampling sampling;
} pb_exp_calib;

typedef struct {
    char **ppl_datasets; int n_ppl;  /* empty: no perplexity */
    int ppl_seq_len; int64_t ppl_max_windows; bool ppl_bos_per_window;
    char **tasks; int n_tasks;       /* empty: no zero-shot */
    int64_t zs_limit;
    int *speed_batch; int n_speed;   /* empty: no speed */
    int speed_prompt_len, speed_gen_len, speed_repeats;
    const char *device, *dtype;      /* evaluation backend (NULL: cpu / its default dtype) */
} pb_exp_eval;

typedef struct {
    bool enabled;
    char *data, *format;
    int rank, epochs, batch, micro_batch, cutoff, val_size;
    int64_t max_steps;
    double alpha, dropout, lr;
} pb_exp_lora;

/* One run: a model, a method with its resolved options (NULL method: the dense model), an
 * amount and a seed. */
typedef struct {
    int model;                       /* index into spec models */
    int method;                      /* index into spec methods, -1 for the dense model */
    pb_prune_opts prune;             /* resolved: ratio / count / native, criterion, granularity, seed */
    double ratio, native;            /* the sweep's nominal amounts for this run (NaN where absent): a
                                        depth run zipped with {ratio, num_blocks} prunes by num_blocks
                                        but is still the ratio-0.2 point of the table */
    int num_blocks;                  /* -1 where absent */
    uint64_t seed;
    char *config_yaml;               /* the resolved configuration, canonical YAML (run_id hashes it) */
    char run_id[13];                 /* first 12 hex digits of sha256(config_yaml) */
    char *label;                     /* "stories260K/taylor+/ratio=0.2/seed=0" */
} pb_exp_run;

typedef struct {
    char *path;                      /* the YAML file */
    char *name, *description;
    pb_exp_model *models; int n_models;
    pb_exp_calib calib;
    pb_exp_method *methods; int n_methods;
    pb_exp_eval eval;
    pb_exp_lora lora;
    bool dense;
    char *published_yaml;            /* the published rows re-emitted as YAML (NULL: none) */
    pb_exp_run *runs; int n_runs;    /* the expanded sweep, dense runs first, in a fixed order */
    pb_arena arena;
} pb_exp;

/* Parses, validates and expands path. Every problem is one located error (see above). */
int  pb_exp_load(const char *path, pb_exp **out, pb_err *err);
void pb_exp_free(pb_exp *e);

/* Runs k of n shards: run i belongs to shard (i mod n) + 1, k in 1..n. */
bool pb_exp_in_shard(int run, int k, int n);

#endif
