/* sft.c — training examples: the example set's storage, Alpaca-LoRA's tokenize() step, the
 * plain-text format (documents cut into fixed windows), and pb_sft_load / pb_sft_free.
 * The Alpaca reader is in sft_alpaca.c; split, shuffle and packing in sft_batch.c.
 *
 * Text format, precisely: a ".jsonl" file holds one document per line (its "text" field,
 * read as pb_rows_read(PB_TEXT_JSONL) reads it); any other file is ONE document, byte for
 * byte (PB_TEXT_PLAIN), as the perplexity protocols read WikiText-2 and TinyStories: a
 * blank line inside a story or an article is not a document boundary, and a BOS in the
 * middle of a story would teach the model a format that evaluation never shows it.
 * Each document is encoded with BOS (when the tokenizer has one) and no EOS, the documents'
 * ids are concatenated in file order into one stream, and the stream is cut into consecutive
 * non-overlapping windows of `cutoff` ids; a last, shorter window is kept when it has at
 * least 2 ids (one labelled position). Every position of a window is labelled (n_prompt 0):
 * windows cut documents anywhere, as pretraining on packed text does. */
#include "sft_internal.h"

#include "pb_data.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- the example set ----------------------------------------------------------------- */

static int grow_ids(sft_builder *b, size_t need, pb_err *err) {
    if (need <= b->ids_cap) return 0;
    size_t cap = b->ids_cap ? b->ids_cap : 4096;
    while (cap < need) {
        if (cap > SIZE_MAX / 2 / sizeof *b->s.ids) return pb_err_set(err, "training data too large");
        cap *= 2;
    }
    int32_t *ni = realloc(b->s.ids, cap * sizeof *ni);
    PB_CHECK_ALLOC(ni, err);
    b->s.ids = ni;
    b->ids_cap = cap;
    return 0;
}

int sft_push_ids(sft_builder *b, const int32_t *ids, size_t n, pb_err *err) {
    if (n > SIZE_MAX / 4 - b->ids_len) return pb_err_set(err, "training data too large");
    PB_TRY(grow_ids(b, b->ids_len + n, err));
    if (n) memcpy(b->s.ids + b->ids_len, ids, n * sizeof *ids);
    b->ids_len += n;
    return 0;
}

/* Records example [off, off + len) of the stream. */
static int add_meta(sft_builder *b, size_t off, int len, int n_prompt, pb_err *err) {
    if (b->s.n == INT_MAX) return pb_err_set(err, "more than %d training examples", INT_MAX);
    if ((size_t)b->s.n == b->ex_cap) {
        size_t cap = b->ex_cap ? 2 * b->ex_cap : 1024;
        if (cap > (size_t)INT_MAX) cap = (size_t)INT_MAX;
        int64_t *no = realloc(b->s.off, cap * sizeof *no);
        if (no) b->s.off = no;
        int *nl = no ? realloc(b->s.len, cap * sizeof *nl) : NULL;
        if (nl) b->s.len = nl;
        int *np = nl ? realloc(b->s.n_prompt, cap * sizeof *np) : NULL;
        if (np) b->s.n_prompt = np;
        /* each array keeps a valid pointer on failure, so pb_sft_free still releases all */
        PB_CHECK_ALLOC(np, err);
        b->ex_cap = cap;
    }
    b->s.off[b->s.n] = (int64_t)off;
    b->s.len[b->s.n] = len;
    b->s.n_prompt[b->s.n] = n_prompt;
    b->s.n++;
    b->s.n_tokens += len;
    return 0;
}

int sft_add_example(sft_builder *b, const int32_t *ids, int n, int eos, int n_prompt, pb_err *err) {
    size_t off = b->ids_len;
    PB_TRY(sft_push_ids(b, ids, (size_t)n, err));
    if (eos >= 0) {
        int32_t e = eos;
        PB_TRY(sft_push_ids(b, &e, 1, err));
    }
    return add_meta(b, off, n + (eos >= 0), n_prompt, err);
}

/* ---- tokenize -------------------------------------------------------------------------- */

int sft_tokenize(const pb_tokenizer *tok, const char *text, size_t len, int cutoff, bool add_eos, int32_t **ids,
                 int *n, int *eos, pb_err *err) {
    size_t k;
    /* HF LlamaTokenizer puts BOS first; pb_tok_encode adds it only when the tokenizer has one */
    PB_TRY(pb_tok_encode(tok, text, len, pb_tok_bos(tok) >= 0, ids, &k, err));
    if (k > (size_t)cutoff) k = (size_t)cutoff; /* truncation=True, max_length=cutoff keeps the head */
    int e = pb_tok_eos(tok);
    /* finetune.py: input_ids[-1] != eos_token_id and len < cutoff_len and add_eos_token. An
     * empty list (no BOS, empty text) would raise IndexError there; we append. */
    *eos = add_eos && e >= 0 && k < (size_t)cutoff && (k == 0 || (*ids)[k - 1] != e) ? e : -1;
    *n = (int)k;
    return 0;
}

/* ---- text format ----------------------------------------------------------------------- */

static int load_text(const char *path, const pb_tokenizer *tok, const pb_sft_opts *o, sft_builder *b, pb_err *err) {
    pb_rows rows;
    size_t pl = strlen(path);
    bool jsonl = pl >= 6 && strcmp(path + pl - 6, ".jsonl") == 0;
    PB_TRY(pb_rows_read(path, jsonl ? PB_TEXT_JSONL : PB_TEXT_PLAIN, NULL, 0, &rows, err));
    int rc = 0;
    for (size_t i = 0; i < rows.n && rc == 0; i++) {
        int32_t *ids = NULL;
        size_t k = 0;
        rc = pb_tok_encode(tok, rows.buf + rows.off[i], rows.off[i + 1] - rows.off[i], pb_tok_bos(tok) >= 0, &ids, &k,
                           err);
        if (rc == 0) rc = sft_push_ids(b, ids, k, err);
        else pb_err_prefix(err, "%s: document %zu: ", path, i + 1);
        free(ids);
    }
    size_t nd = rows.n;
    pb_rows_free(&rows);
    if (rc) return -1;
    for (size_t at = 0; at < b->ids_len; at += (size_t)o->cutoff) {
        size_t w = b->ids_len - at < (size_t)o->cutoff ? b->ids_len - at : (size_t)o->cutoff;
        if (w >= 2) PB_TRY(add_meta(b, at, (int)w, 0, err));
    }
    if (b->s.n == 0)
        return pb_err_set(err, "%s: no training window: %zu document(s) gave %zu token(s), fewer than 2", path, nd,
                          b->ids_len);
    return 0;
}

/* ---- load / free ----------------------------------------------------------------------- */

void pb_sft_free(pb_sft_set *s) {
    if (!s) return;
    free(s->ids);
    free(s->off);
    free(s->len);
    free(s->n_prompt);
    memset(s, 0, sizeof *s);
}

int pb_sft_load(const char *path, const pb_tokenizer *tok, const pb_sft_opts *o, pb_sft_set *out, pb_err *err) {
    memset(out, 0, sizeof *out);
    if (!path || !tok || !o) return pb_err_set(err, "pb_sft_load: NULL %s", !path ? "path" : !tok ? "tokenizer" : "options");
    if (o->cutoff < 2) return pb_err_set(err, "%s: cutoff %d is too small (at least 2 tokens)", path, o->cutoff);
    if (o->format != PB_SFT_ALPACA && o->format != PB_SFT_TEXT)
        return pb_err_set(err, "%s: unknown training-data format %d", path, (int)o->format);
    sft_builder b;
    memset(&b, 0, sizeof b);
    int rc;
    if (o->format == PB_SFT_TEXT) {
        rc = load_text(path, tok, o, &b, err);
    } else {
        char *data = NULL;
        size_t size = 0;
        rc = pb_file_read_all(path, &data, &size, err);
        if (rc == 0) rc = sft_load_alpaca(path, data, size, tok, o, &b, err);
        free(data);
    }
    if (rc) {
        pb_sft_free(&b.s);
        return -1;
    }
    *out = b.s;
    return 0;
}
