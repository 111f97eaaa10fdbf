/* sft_internal.h — what the training-data files (sft.c, sft_alpaca.c) share: the growing
 * example set and the Alpaca-LoRA tokenize() step. Not part of the public interface. */
#ifndef PB_SFT_INTERNAL_H
#define PB_SFT_INTERNAL_H

#include "sft.h"

/* An example set under construction: pb_sft_set plus the capacities of its arrays. */
typedef struct {
    pb_sft_set s;
    size_t ids_len;   /* entries used in s.ids (the text format's stream may end with a
                         last token that no window keeps) */
    size_t ids_cap;   /* entries allocated in s.ids */
    size_t ex_cap;    /* entries allocated in s.off, s.len, s.n_prompt */
} sft_builder;

/* Appends n ids to the token stream without starting an example (text format). */
int sft_push_ids(sft_builder *b, const int32_t *ids, size_t n, pb_err *err);
/* Appends one example: ids[0..n), then `eos` when eos >= 0; its first n_prompt tokens carry
 * no label. */
int sft_add_example(sft_builder *b, const int32_t *ids, int n, int eos, int n_prompt, pb_err *err);

/* Alpaca-LoRA's tokenize(): encodes text[0..len) with BOS first (when the tokenizer has one)
 * and keeps the first `cutoff` ids. *ids is malloc'd; *n is the kept count; *eos is the id to
 * append (the tokenizer's EOS when add_eos, the cut left room, and the last kept id is not
 * already EOS), else -1. */
int sft_tokenize(const pb_tokenizer *tok, const char *text, size_t len, int cutoff, bool add_eos, int32_t **ids,
                 int *n, int *eos, pb_err *err);

/* Reads an Alpaca file (JSON array or JSON Lines) into b. */
int sft_load_alpaca(const char *path, const char *data, size_t size, const pb_tokenizer *tok, const pb_sft_opts *o,
                    sft_builder *b, pb_err *err);

#endif
