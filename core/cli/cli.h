/* cli.h — shared pieces of the prunebench command line: option parsing, model loading,
 * error reporting. Each subcommand lives in its own cmd_<name>.c. */
#ifndef PB_CLI_H
#define PB_CLI_H

#include "load.h"

#include <stdio.h>

/* Exit codes: 0 ok, 1 runtime error (bad input, failed computation), 2 usage error. */
enum { PB_EXIT_OK = 0, PB_EXIT_ERROR = 1, PB_EXIT_USAGE = 2 };

typedef enum { PB_OPT_FLAG, PB_OPT_STR, PB_OPT_INT, PB_OPT_FLOAT } pb_opt_kind;

typedef struct {
    const char *name;   /* long name without dashes: "threads" */
    pb_opt_kind kind;
    const char *metavar;/* "N", "FILE" (NULL for flags) */
    const char *help;
    /* filled by pb_cli_parse */
    bool set;
    const char *str;
    long ival;
    double fval;
} pb_opt;

typedef struct {
    const char *name;       /* "score" */
    const char *usage;      /* "MODEL --text FILE [--json]" */
    const char *summary;    /* one line for `prunebench --help` */
    const char *details;    /* paragraphs for `prunebench CMD --help`, or NULL */
    int n_positional;       /* exact number of positional arguments */
    int (*run)(int argc, char **argv);
} pb_cmd;

/* Parses argv[1..] (argv[0] is the subcommand) into opts (terminated by a {NULL} entry)
 * and up to n_pos positionals. On --help prints help and returns 1 with *exit_code 0;
 * on a usage error prints "prunebench CMD: usage error: ..." and returns 1 with exit 2. */
int pb_cli_parse(const pb_cmd *cmd, int argc, char **argv, pb_opt *opts, const char **pos, int *exit_code);
pb_opt *pb_cli_opt(pb_opt *opts, const char *name);

/* Prints "prunebench: error: MSG" (one line) and returns PB_EXIT_ERROR. */
int pb_cli_fail(const pb_err *err);
int pb_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Loads MODEL with the common --tokenizer, --threads and --lora options applied, and, in
 * commands that have PB_CLI_DEVICE_OPTS, moves it to --device / --dtype (the host copy is
 * freed). need_tok: fail with a clear message when the model carries no tokenizer. */
int pb_cli_load(const char *path, pb_opt *opts, bool need_tok, pb_model **m, pb_tokenizer **tok, pb_err *err);

/* Options every model-loading command accepts; spread into a command's table. */
#define PB_CLI_COMMON_OPTS \
    {"tokenizer", PB_OPT_STR, "FILE", "tokenizer file (required for llama2.c .bin models)", 0, 0, 0, 0}, \
    {"threads", PB_OPT_INT, "N", "CPU threads (default: all cores)", 0, 0, 0, 0}, \
    {"lora", PB_OPT_STR, "DIR", "apply a LoRA adapter (PEFT folder) without merging it", 0, 0, 0, 0}

/* The evaluation commands' backend (ppl, zeroshot, score, generate, bench). */
#define PB_CLI_DEVICE_OPTS \
    {"device", PB_OPT_STR, "D", "cpu (default) | cuda: where the forward pass runs", 0, 0, 0, 0}, \
    {"dtype", PB_OPT_STR, "T", "weight storage: f32 (cpu) | f16 | bf16 (cuda's default)", 0, 0, 0, 0}

/* Options of the training commands (finetune, pretrain); spread into their tables. */
#define PB_CLI_TRAIN_OPTS \
    {"data", PB_OPT_STR, "FILE", "training data: Alpaca JSON/JSONL or plain text", 0, 0, 0, 0}, \
    {"format", PB_OPT_STR, "F", "alpaca | text", 0, 0, 0, 0}, \
    {"cutoff", PB_OPT_INT, "N", "maximum tokens per example (default 256)", 0, 0, 0, 0}, \
    {"train-on-inputs", PB_OPT_FLAG, NULL, "alpaca: loss on the prompt too (default: response only)", 0, 0, 0, 0}, \
    {"val-size", PB_OPT_INT, "N", "examples held out for validation (default 0)", 0, 0, 0, 0}, \
    {"epochs", PB_OPT_INT, "N", "passes over the training examples", 0, 0, 0, 0}, \
    {"max-steps", PB_OPT_INT, "N", "stop after N optimiser steps (the schedule spans them)", 0, 0, 0, 0}, \
    {"batch", PB_OPT_INT, "N", "examples per optimiser step", 0, 0, 0, 0}, \
    {"micro-batch", PB_OPT_INT, "N", "examples per forward/backward pass (gradient accumulation)", 0, 0, 0, 0}, \
    {"lr", PB_OPT_FLOAT, "X", "peak learning rate", 0, 0, 0, 0}, \
    {"weight-decay", PB_OPT_FLOAT, "X", "AdamW weight decay (default 0, as HF Trainer)", 0, 0, 0, 0}, \
    {"max-grad-norm", PB_OPT_FLOAT, "X", "global gradient-norm clipping, 0 = off (default 1)", 0, 0, 0, 0}, \
    {"warmup", PB_OPT_INT, "N", "linear warm-up steps", 0, 0, 0, 0}, \
    {"schedule", PB_OPT_STR, "S", "linear | cosine | constant decay after warm-up", 0, 0, 0, 0}, \
    {"eval-every", PB_OPT_INT, "N", "validation loss every N steps (and at the end)", 0, 0, 0, 0}, \
    {"save-every", PB_OPT_INT, "N", "checkpoint every N steps (and at the end)", 0, 0, 0, 0}, \
    {"seed", PB_OPT_INT, "S", "seed of the split, the epoch order, dropout and initialisation", 0, 0, 0, 0}, \
    {"out", PB_OPT_STR, "DIR", "output folder (checkpoints, history, result)", 0, 0, 0, 0}, \
    {"resume", PB_OPT_FLAG, NULL, "continue the run in --out from its last checkpoint", 0, 0, 0, 0}, \
    {"save-dtype", PB_OPT_STR, "T", "f32 | f16 | bf16 for saved models (default f32)", 0, 0, 0, 0}

/* Fills the training options from parsed PB_CLI_TRAIN_OPTS over the defaults already in o;
 * -1 with err for a bad value (the commands exit 1). */
int pb_cli_train_opts(pb_opt *opts, void *train_opts, pb_err *err);

/* Options of `prune` and `importance`; spread into their tables. */
#define PB_CLI_PRUNE_OPTS \
    {"method", PB_OPT_STR, "M", "depth | llm-pruner | wanda-sp | flap | magnitude | random", 0, 0, 0, 0}, \
    {"criterion", PB_OPT_STR, "C", "depth: magnitude | taylor | ppl; llm-pruner: param_first | param_second | " \
     "param_mix | vectorize; magnitude: l1 | l2", 0, 0, 0, 0}, \
    {"granularity", PB_OPT_STR, "G", "block | attn | mlp | module (depth); head | channel (importance)", 0, 0, 0, 0}, \
    {"ratio", PB_OPT_FLOAT, "R", "fraction of all parameters to remove, in [0, 1)", 0, 0, 0, 0}, \
    {"num-blocks", PB_OPT_INT, "K", "depth: blocks (or modules) to remove", 0, 0, 0, 0}, \
    {"group-ratio", PB_OPT_FLOAT, "r", "llm-pruner: per-layer group ratio (its native setting)", 0, 0, 0, 0}, \
    {"p", PB_OPT_FLOAT, "p", "flap / wanda-sp: their native ratio of attention+MLP weights", 0, 0, 0, 0}, \
    {"protect-first", PB_OPT_INT, "N", "depth: never remove the first N blocks (Taylor+: 4)", 0, 0, 0, 0}, \
    {"protect-last", PB_OPT_INT, "N", "depth: never remove the last N blocks (Taylor+: 2)", 0, 0, 0, 0}, \
    {"iterative", PB_OPT_FLAG, NULL, "depth: re-score after each removal", 0, 0, 0, 0}, \
    {"layers", PB_OPT_STR, "A:B", "llm-pruner: prune layers A..B-1 (the paper: 4:30)", 0, 0, 0, 0}, \
    {"aggregation", PB_OPT_STR, "A", "llm-pruner: sum | mean | max | prod | first", 0, 0, 0, 0}, \
    {"structure", PB_OPT_STR, "S", "flap: al-am | ul-um", 0, 0, 0, 0}, \
    {"metric", PB_OPT_STR, "M", "flap: wifv | ifv | wifn", 0, 0, 0, 0}, \
    {"no-bias-compensation", PB_OPT_FLAG, NULL, "flap: no bias compensation", 0, 0, 0, 0}, \
    {"seed", PB_OPT_INT, "S", "seed of random calibration windows and of the random method", 0, 0, 0, 0}, \
    {"calib", PB_OPT_STR, "NAME|FILE", "calibration text: a dataset (wikitext2, ptb, tinystories, ...) or a file", \
     0, 0, 0, 0}, \
    {"calib-split", PB_OPT_STR, "S", "the dataset's split (default: its default)", 0, 0, 0, 0}, \
    {"calib-samples", PB_OPT_INT, "N", "calibration windows (default 10)", 0, 0, 0, 0}, \
    {"calib-seq-len", PB_OPT_INT, "T", "tokens per window, BOS included (default 128)", 0, 0, 0, 0}, \
    {"calib-sampling", PB_OPT_STR, "S", "random (default) | contiguous (window i = BOS + tokens i(T-1)..)", 0, 0, 0, 0}, \
    {"data-dir", PB_OPT_STR, "DIR", "data folder (default: $PRUNEBENCH_DATA, ../shared/data, ./data)", 0, 0, 0, 0}

/* Fills pruning options (pb_prune_opts over its defaults) from PB_CLI_PRUNE_OPTS; the method
 * follows from the criterion when --method is absent. -1 with err on a bad value. */
int pb_cli_prune_opts(pb_opt *opts, void *prune_opts, pb_err *err);
/* Loads the calibration windows --calib asks for (*loaded false when it is absent). */
struct pb_calib;
int pb_cli_calib(pb_opt *opts, const pb_tokenizer *tok, struct pb_calib *c, bool *loaded, pb_err *err);

#endif
