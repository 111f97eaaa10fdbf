/* tokenizer.h — text <-> token ids for LLaMA-family models.
 *
 * Two algorithms behind one type:
 *  - SentencePiece BPE (LLaMA-1/2, Vicuna, llama2.c): score-ordered merges over code
 *    points, "▁" for spaces, an optional dummy-prefix space, byte fallback to <0xNN>.
 *  - byte-level BPE (GPT-2 style: SmolLM2, LLaMA-3): regex pre-tokenizer, bytes mapped to
 *    printable code points, rank-ordered merges.
 * Sources: sentencepiece tokenizer.model, llama2.c tokenizer.bin, HF tokenizer.json, and the
 * vocabulary embedded in GGUF files (through pb_tok_from_vocab). Encoding must equal the
 * reference libraries (sentencepiece, HF tokenizers) id for id. */
#ifndef PB_TOKENIZER_H
#define PB_TOKENIZER_H

#include "pb_base.h"

typedef struct pb_tokenizer pb_tokenizer;

typedef enum { PB_TOK_SPM = 0, PB_TOK_BYTELEVEL = 1 } pb_tok_kind;

/* Token types as sentencepiece and GGUF number them. */
enum { PB_TOKT_NORMAL = 1, PB_TOKT_UNKNOWN = 2, PB_TOKT_CONTROL = 3, PB_TOKT_USER_DEFINED = 4,
       PB_TOKT_UNUSED = 5, PB_TOKT_BYTE = 6 };

/* A vocabulary handed over by a model reader (GGUF metadata tokenizer.ggml.*). */
typedef struct {
    const char *model;          /* "llama" (SentencePiece) or "gpt2" (byte-level BPE) */
    const char *pre;            /* gpt2 pre-tokenizer name ("gpt2", "llama-bpe", "smollm", ...), or NULL */
    int n_tokens;
    const char *const *tokens;  /* (n_tokens) UTF-8 pieces */
    const int *token_lens;      /* (n_tokens) byte lengths, or NULL if NUL-terminated */
    const float *scores;        /* (n_tokens) or NULL */
    const int32_t *types;       /* (n_tokens) PB_TOKT_*, or NULL */
    int n_merges;
    const char *const *merges;  /* (n_merges) "a b", rank = index; gpt2 only */
    int bos_id, eos_id, unk_id; /* -1 when absent */
    int add_bos;                /* -1 unknown (use the model type's default), 0, 1 */
    int add_space_prefix;       /* -1 unknown (default: true for llama), 0, 1 */
} pb_tok_vocab_spec;

/* Loads by content: a sentencepiece .model (protobuf), a tokenizer.json, or a llama2.c
 * tokenizer.bin. Every malformed or cut-short file gives one error naming the file. */
int pb_tok_load(const char *path, pb_tokenizer **out, pb_err *err);
int pb_tok_load_spm(const char *path, pb_tokenizer **out, pb_err *err);
int pb_tok_load_hf_json(const char *path, pb_tokenizer **out, pb_err *err);
int pb_tok_load_llama2c(const char *path, int vocab_size, pb_tokenizer **out, pb_err *err);
int pb_tok_from_vocab(const pb_tok_vocab_spec *spec, pb_tokenizer **out, pb_err *err);
void pb_tok_free(pb_tokenizer *t);

/* Encodes len bytes of UTF-8 text. *ids is malloc'd (caller frees); BOS first when add_bos.
 * Special/control tokens written in the text are NOT interpreted (sentencepiece semantics)
 * except for the added tokens of a tokenizer.json, which HF tokenizers also match. */
int pb_tok_encode(const pb_tokenizer *t, const char *text, size_t len, bool add_bos,
                  int32_t **ids, size_t *n_ids, pb_err *err);

/* The bytes that token `id` contributes when it follows token `prev` (prev < 0 at the
 * start): "▁" becomes a space, <0xNN> the byte, byte-level code points their bytes; the
 * dummy-prefix space after BOS is dropped as sentencepiece does. Writes at most cap bytes,
 * returns the byte count (control tokens give 0). */
size_t pb_tok_decode(const pb_tokenizer *t, int prev, int id, char *buf, size_t cap);

int pb_tok_vocab_size(const pb_tokenizer *t);
int pb_tok_bos(const pb_tokenizer *t);          /* -1 when none */
int pb_tok_eos(const pb_tokenizer *t);
bool pb_tok_default_add_bos(const pb_tokenizer *t);
pb_tok_kind pb_tok_kind_of(const pb_tokenizer *t);
const char *pb_tok_piece(const pb_tokenizer *t, int id); /* raw piece, NULL if out of range */

#endif
