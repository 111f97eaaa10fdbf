/* tok_internal.h — the pb_tokenizer struct and the helpers shared by the tokenizer's files.
 *
 * One struct serves every source. Two merge algorithms sit behind it:
 *  - TOK_ALG_SCORE: sentencepiece's bpe_model.cc (highest piece score first, over code
 *    points, user-defined pieces as units, unused pieces resegmented). Used for
 *    tokenizer.model, llama2.c tokenizer.bin and GGUF "llama" vocabularies.
 *  - TOK_ALG_RANK: HF tokenizers' BPE model (lowest merge rank first over the symbols of a
 *    pre-tokenized word). Used for byte-level vocabularies and for tokenizer.json files,
 *    including the SentencePiece-like ones LLaMA-2 HF folders ship.
 * `kind` is independent of the algorithm: it tells how pieces map to bytes (▁ and <0xNN>,
 * or the GPT-2 byte alphabet). */
#ifndef PB_TOK_INTERNAL_H
#define PB_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer.h"

#define TOK_SPACE "\xE2\x96\x81" /* U+2581, sentencepiece's visible space */
#define TOK_SPACE_LEN 3

typedef enum { TOK_ALG_SCORE = 0, TOK_ALG_RANK = 1 } tok_alg;

/* The merge agenda both algorithms share: a binary min-heap of candidate merges, best
 * first. key orders them (TOK_ALG_SCORE stores -score so that the highest score comes
 * first; TOK_ALG_RANK the merge rank; both exact in a double), then pos (the leftmost
 * candidate wins ties, as both reference implementations do); a and b are the algorithm's
 * payload. */
typedef struct {
    double key;
    int32_t pos, a, b;
} tok_cand;
typedef struct { tok_cand *v; size_t n, cap; } tok_heap;

int tok_heap_push(tok_heap *h, tok_cand c, pb_err *err);
tok_cand tok_heap_pop(tok_heap *h); /* h->n > 0 */

/* String -> id hash set over the tokenizer's own piece array (open addressing, linear
 * probing); slots hold id+1 so that 0 means empty. */
typedef struct {
    uint32_t *slots;   /* (mask+1) */
    uint32_t mask;
} tok_map;

/* (left id, right id) -> (rank, merged id): HF BPE merges. */
typedef struct {
    uint64_t *keys;    /* (mask+1) left<<32|right, UINT64_MAX empty */
    uint32_t *rank;    /* (mask+1) */
    int32_t *merged;   /* (mask+1) */
    uint32_t mask;
} tok_merges;

/* An added token of a tokenizer.json, matched in the text before the model runs. */
typedef struct {
    int id;
    const char *s;     /* content as written (UTF-8), len bytes */
    uint32_t len;
    const char *ns;    /* content after the normalizer (normalized tokens only) */
    uint32_t nlen;
    bool special, lstrip, rstrip, normalized;
} tok_added;

/* HF normalizer steps that LLaMA-style tokenizer.json files use. */
typedef enum { TOK_NORM_PREPEND = 0, TOK_NORM_REPLACE = 1 } tok_norm_kind;
typedef struct {
    tok_norm_kind kind;
    const char *a; uint32_t alen;  /* prepend text, or replace pattern */
    const char *b; uint32_t blen;  /* replace content */
} tok_norm;

/* HF pre-tokenizer steps; a list applies in order, each splitting the pieces it is given. */
typedef enum { TOK_PRE_SPLIT = 0, TOK_PRE_BYTELEVEL = 1, TOK_PRE_METASPACE = 2 } tok_pre_kind;
enum { TOK_PREPEND_ALWAYS = 0, TOK_PREPEND_FIRST = 1, TOK_PREPEND_NEVER = 2 };
typedef struct {
    tok_pre_kind kind;
    pcre2_code *re;         /* SPLIT: pattern whose matches are isolated; BYTELEVEL: regex or NULL */
    bool add_prefix_space;  /* BYTELEVEL */
    int prepend_scheme;     /* METASPACE: TOK_PREPEND_* */
} tok_pre;

#define TOK_MAX_STEPS 8

struct pb_tokenizer {
    pb_arena arena;          /* every piece string and table below lives here */
    char path[512];          /* source, for error messages */
    pb_tok_kind kind;
    tok_alg alg;

    int n;                   /* vocabulary size (ids 0..n-1) */
    const char **piece;      /* (n) NUL-terminated pieces; NULL for a hole in the id range */
    uint32_t *piece_len;     /* (n) */
    float *score;            /* (n) */
    int32_t *type;           /* (n) PB_TOKT_* */
    uint32_t max_piece_len;

    int unk, bos, eos;
    bool add_bos_default;

    /* SCORE algorithm (sentencepiece semantics) */
    tok_map normal;          /* NORMAL, USER_DEFINED, UNUSED pieces */
    tok_map reserved;        /* CONTROL, UNKNOWN, BYTE pieces: looked up first */
    bool byte_fallback;
    int byte_id[256];        /* <0xNN> ids, -1 when absent */
    bool add_dummy_prefix, remove_extra_ws, escape_ws, ws_suffix;
    bool has_unused;
    bool splitter[128];      /* ASCII bytes in no multi-byte NORMAL/USER_DEFINED/UNUSED piece:
                                no merge can cross them, so the text splits there into
                                independent stretches (a small heap, same result) */
    int *user_ids;           /* (n_user) USER_DEFINED ids sorted by first byte; matched
                                longest-first as units */
    int n_user;
    int user_off[257];       /* user_ids[user_off[b]..user_off[b+1]) start with byte b */

    /* RANK algorithm (HF tokenizers semantics) */
    tok_map vocab;           /* the BPE model's vocabulary */
    tok_merges merges;
    uint8_t *in_merge;       /* (n) id is the left or right side of some merge; a symbol that
                                is not never merges, so words split there into stretches */
    bool ignore_merges, fuse_unk;
    bool byte_level;         /* words are byte-mapped before the model (GPT-2 alphabet) */
    tok_norm norm[TOK_MAX_STEPS];
    int n_norm;
    tok_pre pre[TOK_MAX_STEPS];
    int n_pre;
    tok_added *added;        /* (n_added) */
    int n_added;
    bool has_normalized_added;
    bool added_first[2][256];/* [normalized][b]: some added token of that set starts with byte b */
    uint32_t byte2cp[256];   /* GPT-2 bytes_to_unicode */
    int16_t cp2byte[324];    /* inverse for code points < 324, -1 otherwise */
};

/* A growing id array. */
typedef struct { int32_t *v; size_t n, cap; } tok_ids;
int tok_ids_push(tok_ids *a, int32_t id, pb_err *err);

/* A growing byte buffer. */
typedef struct { char *v; size_t n, cap; } tok_buf;
int tok_buf_put(tok_buf *b, const void *p, size_t n, pb_err *err);

/* ---- tok_core.c ---- */
pb_tokenizer *tok_new(const char *path);
/* Allocates the per-id arrays for n ids (pieces NULL, scores 0, types NORMAL). */
int tok_alloc_vocab(pb_tokenizer *t, int n, pb_err *err);
int tok_set_piece(pb_tokenizer *t, int id, const char *s, size_t len, pb_err *err);
uint32_t tok_hash(const char *s, size_t len);
/* Builds m over the ids whose type is in type_filter (every type when n_filter is 0) and,
 * when `only` is not NULL, whose only[id] is set. The first id of a piece wins; returns the
 * number of duplicates skipped, or -1. */
int tok_map_build(pb_tokenizer *t, tok_map *m, const int32_t *type_filter, int n_filter, const uint8_t *only,
                  pb_err *err);
int tok_map_get(const pb_tokenizer *t, const tok_map *m, const char *s, size_t len);
/* Parses "<0xNN>" (upper or lower hex) into 0..255, -1 when s is not a byte piece. */
int tok_byte_piece(const char *s, size_t len);
/* Length of the UTF-8 character at s as sentencepiece's DecodeUTF8 judges it: 0 when the
 * bytes are not a valid, minimal encoding of a scalar value. */
int tok_utf8_valid_len(const unsigned char *s, size_t n, uint32_t *cp);
void tok_bytelevel_tables(pb_tokenizer *t);
/* Splits s on the added tokens of one set (raw-text or normalized-text ones), pushing their
 * ids and handing the gaps to `gap`. */
typedef int (*tok_gap_fn)(const pb_tokenizer *t, const char *s, size_t len, bool first, tok_ids *out, pb_err *err);
/* `first`: s starts at offset 0 of the caller's text (Metaspace's prepend_scheme "first"). */
int tok_added_split(const pb_tokenizer *t, const char *s, size_t len, bool first, bool normalized, tok_ids *out,
                    pb_err *err, tok_gap_fn gap);

/* ---- tok_spm.c ---- */
/* Fills the maps, byte table and user list from piece/type; checks what sentencepiece checks. */
int tok_spm_finish(pb_tokenizer *t, bool strict_dups, pb_err *err);
int tok_spm_encode(const pb_tokenizer *t, const char *text, size_t len, tok_ids *out, pb_err *err);

/* ---- tok_bpe.c, tok_pretok.c ---- */
int tok_merges_init(pb_tokenizer *t, size_t n, pb_err *err);
/* Adds a merge (later duplicates overwrite earlier ones, as a Rust HashMap collect does). */
void tok_merges_put(tok_merges *m, int a, int b, uint32_t rank, int merged);
/* Applies the HF normalizer steps to s, appending to o. */
int tok_normalize(const pb_tokenizer *t, const char *s, size_t n, tok_buf *o, pb_err *err);
int tok_rank_word(const pb_tokenizer *t, const char *w, size_t len, tok_ids *out, pb_err *err);
/* Runs normalizer, pre-tokenizer and model on one segment free of added tokens. */
int tok_rank_encode(const pb_tokenizer *t, const char *text, size_t len, bool first, tok_ids *out, pb_err *err);
int tok_pre_add(pb_tokenizer *t, tok_pre_kind kind, const char *pat, size_t len, bool literal, bool add_prefix_space,
                int scheme, pb_err *err);
/* Adds merge "a b" with the given rank; a, b and a+b must be in t->vocab. */
int tok_merge_add(pb_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, uint32_t rank, pb_err *err);
/* After vocab map, merges and added tokens: byte tables, byte-fallback ids, normalized
 * forms of normalized added tokens. */
int tok_rank_finish(pb_tokenizer *t, pb_err *err);
/* The pre-tokenizer regexes by name ("gpt2", "llama3", "digits"); NULL for an unknown name. */
const char *tok_pre_regex(const char *name);
/* Compiles an onig-syntax pattern with PCRE2 (\s, \S rewritten to onig's White_Space set). */
pcre2_code *tok_regex_compile(const char *pat, size_t len, bool literal, pb_err *err, const char *path);

#endif
