/* sft.h — training examples for fine-tuning and pretraining: Alpaca instruction records
 * (instruction, input, output) rendered with the Alpaca-LoRA prompt template and with the
 * loss on the response only, or plain text cut into fixed windows; a seeded held-out split;
 * and packing of examples into right-padded micro-batches with per-token targets.
 *
 * Semantics follow the recovery scripts of LLM-Pruner and Shortened LLaMA (Alpaca-LoRA's
 * finetune.py): full = template(instruction, input) + output, encoded with BOS, cut at
 * `cutoff` tokens, EOS appended when the cut left room and the last token is not EOS; with
 * train_on_inputs false the first n_prompt tokens (the encoded template alone, without EOS,
 * also cut at cutoff) carry no label. */
#ifndef PB_SFT_H
#define PB_SFT_H

#include "pb_base.h"
#include "tokenizer.h"

typedef enum { PB_SFT_ALPACA = 0, PB_SFT_TEXT = 1 } pb_sft_format;

typedef struct {
    pb_sft_format format;
    int cutoff;             /* maximum tokens per example (256 in the papers' scripts); >= 2 */
    bool train_on_inputs;   /* alpaca: loss on the prompt too (false in the papers) */
    bool add_eos;           /* alpaca: append EOS as above (true in the papers) */
} pb_sft_opts;

/* Example i is ids[off[i] .. off[i] + len[i]); its first n_prompt[i] tokens carry no label,
 * i.e. position t (predicting token t+1) has a loss iff t + 1 >= n_prompt[i]. */
typedef struct {
    int n;                  /* examples */
    int32_t *ids;           /* all tokens, concatenated */
    int64_t *off;           /* (n) */
    int *len;               /* (n), each in [1, cutoff] */
    int *n_prompt;          /* (n) */
    int64_t n_tokens;       /* sum of len */
    int64_t n_skipped;      /* alpaca records left with no labelled token after the cut (skipped) */
} pb_sft_set;

/* Reads a training file.
 * alpaca: a JSON array of objects, or JSON Lines (one object per line), each with string
 *   fields "instruction" and "output" and an optional string "input" (empty or missing: the
 *   no-input template). A record that is not an object or lacks a field is an error
 *   "FILE: record N: ..." (JSONL: "FILE:LINE: ...").
 * text: documents (a ".jsonl" file: the "text" field of each line; any other file: the
 *   whole file is one document), each encoded with BOS (when the tokenizer has one),
 *   concatenated into one stream and cut into consecutive windows of cutoff tokens (the
 *   last, shorter window is kept when it has at least 2 tokens); n_prompt = 0.
 * An empty result is an error naming the file. */
int  pb_sft_load(const char *path, const pb_tokenizer *tok, const pb_sft_opts *o, pb_sft_set *out, pb_err *err);
void pb_sft_free(pb_sft_set *s);

/* Held-out split: a seeded permutation of 0..n-1 (the same for the same n and seed on
 * every machine); its first val_size entries, in that order, are the validation indices,
 * the rest (in permutation order) the training indices. Arrays are malloc'd. val_size must
 * leave at least one training example. */
int pb_sft_split(int n, int val_size, uint64_t seed, int **train_idx, int *n_train, int **val_idx, int *n_val,
                 pb_err *err);

/* A seeded permutation of idx (n) in place, for the order of one epoch: seed and epoch
 * give the same order on every machine, independently of earlier epochs. */
void pb_sft_shuffle(int *idx, int n, uint64_t seed, int epoch);

/* Packs examples sel[0..B) into tokens (B, T) and targets (B, T), T = the longest of them:
 * tokens right-padded with pad_id, targets[b][t] = ids[t+1] where labelled, else -1
 * (padding, the last position, and prompt positions). tokens and targets must hold
 * B * cutoff entries. Returns the number of labelled positions. */
int64_t pb_sft_pack(const pb_sft_set *s, const int *sel, int B, int pad_id, int32_t *tokens, int32_t *targets,
                    int *T);

#endif
