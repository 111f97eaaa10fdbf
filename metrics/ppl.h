/* ppl.h — perplexity of a model on one token stream, with the papers' windowing protocols.
 *
 * Modes (eval-protocol.md section 4):
 *  - non-overlapping (default; LLM-Pruner, Shortened LLaMA, FLAP with seq_len 128; GPTQ,
 *    SparseGPT, Wanda with 2048 / the model's context): the text is tokenized once (BOS at
 *    the very start when the tokenizer adds one by default), cut into n / seq_len windows
 *    (tail dropped), each window run on its own, positions 1..seq_len-1 predicted;
 *  - bos_per_window (Shortened LLaMA's ppl_bos): the text tokenized without BOS, the same
 *    windows, each run as [BOS] + window, so all seq_len tokens are predicted, BOS never;
 *  - sliding (stride < seq_len; HF's "perplexity of fixed-length models"): windows start
 *    every stride tokens, the last one ends at the end of the text; each window predicts
 *    only the tokens no earlier window predicted, with the tokens before them in the window
 *    as context. Every token but the first is predicted exactly once.
 * PPL = exp(mean NLL over all predicted tokens). */
#ifndef PB_PPL_H
#define PB_PPL_H

#include "model.h"
#include "tokenizer.h"

typedef struct {
    int seq_len;              /* window length in text tokens (without the BOS of bos_per_window) */
    int stride;               /* 0 or seq_len: non-overlapping windows; 1..seq_len-1: sliding */
    bool bos_per_window;      /* not with sliding */
    int64_t max_windows;      /* evaluate only the first max_windows windows; 0 = all */
    int64_t truncate_windows; /* first cut the stream to truncate_windows * seq_len tokens (GPTQ c4: 256); 0 = no cut */
    int batch;                /* windows per forward pass; 0 = automatic (logits buffer <= 256 MiB, at most 8) */
    const char *label;        /* progress label ("ppl wikitext2"), or NULL for no progress lines */
} pb_ppl_opts;

typedef struct {
    int64_t windows;          /* windows evaluated */
    int64_t tokens;           /* predicted tokens */
    int64_t stream_tokens;    /* tokens in the stream the windows were cut from (after truncation) */
    double nll_sum, nll_mean; /* over predicted tokens, natural log */
    /* Standard error of nll_mean: the sample standard deviation of the per-token NLLs
     * (divisor tokens - 1) divided by sqrt(tokens). It treats tokens as independent draws,
     * which they are not (neighbouring tokens share context), so it understates the spread
     * a different text sample would show; it is what lm-eval style "stderr" columns mean
     * for a mean. NaN when fewer than 2 tokens. */
    double nll_stderr;
    double ppl;               /* exp(nll_mean) */
    double seconds;           /* wall time of the forward passes and NLLs */
} pb_ppl_result;

/* Windows over an already-tokenized stream. ids is exactly the stream windows are cut from
 * (for the default mode it starts with BOS; for bos_per_window it has no BOS and bos is
 * prepended to each window). Errors: fewer tokens than one window, a window longer than the
 * model's context, a non-finite logit (naming the window). */
int pb_ppl_ids(const pb_model *m, const int32_t *ids, size_t n, int bos, const pb_ppl_opts *o, pb_ppl_result *r,
               pb_err *err);

/* Tokenizes text as the protocol does (once; BOS first when the tokenizer adds one by
 * default, none in bos_per_window mode) and runs pb_ppl_ids. */
int pb_ppl_text(const pb_model *m, const pb_tokenizer *tok, const char *text, size_t len, const pb_ppl_opts *o,
                pb_ppl_result *r, pb_err *err);

#endif
