/* tok_pretok.c — what runs before HF's BPE model: the normalizer steps (Prepend, Replace)
 * and pre-tokenizer steps (Split, Digits, ByteLevel, Metaspace) that LLaMA-2
 * (SentencePiece-like), LLaMA-3 and SmolLM2 tokenizer.json files use. Regexes are the
 * tokenizers' own (Oniguruma syntax), run with PCRE2 in UTF + UCP mode. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

const char *tok_pre_regex(const char *name) {
    /* GPT-2 (HF ByteLevel's built-in regex) */
    if (!strcmp(name, "gpt2"))
        return "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    /* LLaMA-3's Split pattern */
    if (!strcmp(name, "llama3"))
        return "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    /* HF Digits splits on Rust's char::is_numeric, which is Unicode 15 in tokenizers 0.19.1;
     * PCRE2 10.42's \p{N} is Unicode 14 and lacks these three digit sets. */
    if (!strcmp(name, "digits")) return "[\\p{N}\\x{11F50}-\\x{11F59}\\x{1D2C0}-\\x{1D2D3}\\x{1E4F0}-\\x{1E4F9}]";
    if (!strcmp(name, "digits+")) return "[\\p{N}\\x{11F50}-\\x{11F59}\\x{1D2C0}-\\x{1D2D3}\\x{1E4F0}-\\x{1E4F9}]+";
    return NULL;
}

/* Oniguruma's \s in Unicode mode is the White_Space property; PCRE2 10.42's UCP \s also
 * takes U+180E. Rewriting \s to the explicit set keeps the splits identical. */
#define WS_SET "\\t\\n\\x0b\\f\\r\\x20\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"

pcre2_code *tok_regex_compile(const char *pat, size_t len, bool literal, pb_err *err, const char *path) {
    tok_buf b = {0};
    int rc = 0;
    bool in_class = false;
    for (size_t i = 0; rc == 0 && !literal && i < len; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < len) {
            char d = pat[++i];
            if (d == 's') rc = in_class ? tok_buf_put(&b, WS_SET, strlen(WS_SET), err)
                                        : tok_buf_put(&b, "[" WS_SET "]", strlen(WS_SET) + 2, err);
            else if (d == 'S' && !in_class) rc = tok_buf_put(&b, "[^" WS_SET "]", strlen(WS_SET) + 3, err);
            else if (d == 'S') rc = pb_err_set(err, "%s: regex uses \\S inside a character class (unsupported)", path);
            else rc = tok_buf_put(&b, pat + i - 1, 2, err);
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            rc = tok_buf_put(&b, &c, 1, err);
            /* a ']' right after '[' or '[^' is a literal member */
            if (rc == 0 && i + 1 < len && pat[i + 1] == '^') rc = tok_buf_put(&b, pat + ++i, 1, err);
            if (rc == 0 && i + 1 < len && pat[i + 1] == ']') rc = tok_buf_put(&b, pat + ++i, 1, err);
            continue;
        }
        if (in_class && c == '[' && i + 1 < len && pat[i + 1] == ':') { /* POSIX class [:name:] */
            const char *e = NULL;
            for (size_t k = i + 2; k + 1 < len; k++) if (pat[k] == ':' && pat[k + 1] == ']') { e = pat + k + 2; break; }
            if (!e) { rc = pb_err_set(err, "%s: regex has an unterminated [: class", path); break; }
            rc = tok_buf_put(&b, pat + i, (size_t)(e - (pat + i)), err);
            i = (size_t)(e - pat) - 1;
            continue;
        }
        if (in_class && c == ']') in_class = false;
        rc = tok_buf_put(&b, &c, 1, err);
    }
    if (rc == 0 && literal) rc = tok_buf_put(&b, pat, len, err);
    if (rc != 0) { free(b.v); return NULL; }
    int ec;
    PCRE2_SIZE eo;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(b.v ? b.v : ""), b.n, opts, &ec, &eo, NULL);
    free(b.v);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        pb_err_set(err, "%s: cannot compile regex '%.*s': %s at offset %zu", path, (int)(len > 200 ? 200 : len), pat,
                   (const char *)msg, (size_t)eo);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up; the interpreter is the fallback */
    return re;
}

int tok_pre_add(pb_tokenizer *t, tok_pre_kind kind, const char *pat, size_t len, bool literal, bool add_prefix_space,
                int scheme, pb_err *err) {
    if (t->n_pre == TOK_MAX_STEPS) return pb_err_set(err, "%s: more than %d pre-tokenizer steps", t->path, TOK_MAX_STEPS);
    tok_pre *p = &t->pre[t->n_pre];
    *p = (tok_pre){kind, NULL, add_prefix_space, scheme};
    if (pat) {
        p->re = tok_regex_compile(pat, len, literal, err, t->path);
        if (!p->re) return -1;
    }
    t->n_pre++;
    return 0;
}

/* ---- pre-tokenization ---- */

typedef struct { size_t off, len; } span;
typedef struct { tok_buf text; span *sp; size_t n, cap; } pieces;

static int pieces_add(pieces *p, const char *s, size_t n, const char *prefix, size_t plen, pb_err *err) {
    if (n + plen == 0) return 0;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        span *v = realloc(p->sp, cap * sizeof *v);
        PB_CHECK_ALLOC(v, err);
        p->sp = v;
        p->cap = cap;
    }
    size_t off = p->text.n;
    PB_TRY(tok_buf_put(&p->text, prefix, plen, err));
    PB_TRY(tok_buf_put(&p->text, s, n, err));
    p->sp[p->n++] = (span){off, n + plen};
    return 0;
}

static void pieces_free(pieces *p) { free(p->text.v); free(p->sp); }

/* Isolates every match of re (HF SplitDelimiterBehavior::Isolated); empty matches split nothing. */
static int split_isolated(const pcre2_code *re, const char *s, size_t n, pieces *out, pb_err *err) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    PB_CHECK_ALLOC(md, err);
    size_t pos = 0, last = 0;
    int rc = 0;
    while (rc == 0 && pos <= n) {
        int m = pcre2_match(re, (PCRE2_SPTR)s, n, pos, 0, md, NULL);
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0) { rc = pb_err_set(err, "tokenizer: regex match failed (PCRE2 error %d)", m); break; }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* step over one character */
            pos = ms + 1;
            while (pos < n && ((unsigned char)s[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        if (ms > last) rc = pieces_add(out, s + last, ms - last, "", 0, err);
        if (rc == 0) rc = pieces_add(out, s + ms, me - ms, "", 0, err);
        last = pos = me;
    }
    if (rc == 0 && last < n) rc = pieces_add(out, s + last, n - last, "", 0, err);
    pcre2_match_data_free(md);
    return rc;
}

static int model_piece(const pb_tokenizer *t, const char *s, size_t n, tok_ids *out, pb_err *err) {
    if (!t->byte_level) return tok_rank_word(t, s, n, out, err);
    tok_buf m = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint32_t cp = t->byte2cp[(uint8_t)s[i]];
        char u[2];
        if (cp < 0x80) { u[0] = (char)cp; rc = tok_buf_put(&m, u, 1, err); }
        else { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); rc = tok_buf_put(&m, u, 2, err); }
    }
    if (rc == 0) rc = tok_rank_word(t, m.v, m.n, out, err);
    free(m.v);
    return rc;
}

static int pretok_and_model(const pb_tokenizer *t, const char *s, size_t n, bool first, tok_ids *out, pb_err *err) {
    pieces cur = {0}, nxt = {0};
    int rc = pieces_add(&cur, s, n, "", 0, err);
    for (int k = 0; rc == 0 && k < t->n_pre; k++) {
        const tok_pre *p = &t->pre[k];
        nxt.text.n = nxt.n = 0;
        for (size_t i = 0; rc == 0 && i < cur.n; i++) {
            const char *ps = cur.text.v + cur.sp[i].off;
            size_t pn = cur.sp[i].len;
            if (p->kind == TOK_PRE_SPLIT) {
                rc = split_isolated(p->re, ps, pn, &nxt, err);
            } else if (p->kind == TOK_PRE_BYTELEVEL) {
                /* HF prepends the space to every piece it is given, not only the first */
                bool pre = p->add_prefix_space && ps[0] != ' ';
                if (!p->re) { rc = pieces_add(&nxt, ps, pn, " ", pre ? 1 : 0, err); continue; }
                tok_buf tmp = {0};
                rc = tok_buf_put(&tmp, " ", pre ? 1 : 0, err);
                if (rc == 0) rc = tok_buf_put(&tmp, ps, pn, err);
                if (rc == 0) rc = split_isolated(p->re, tmp.v, tmp.n, &nxt, err);
                free(tmp.v);
            } else { /* METASPACE, split=false: spaces become ▁, then the prepend scheme */
                tok_buf tmp = {0};
                bool pre = p->prepend_scheme == TOK_PREPEND_ALWAYS || (p->prepend_scheme == TOK_PREPEND_FIRST && first && i == 0);
                for (size_t j = 0; rc == 0 && j < pn; j++)
                    rc = ps[j] == ' ' ? tok_buf_put(&tmp, TOK_SPACE, TOK_SPACE_LEN, err) : tok_buf_put(&tmp, ps + j, 1, err);
                if (rc == 0) pre = pre && !(tmp.n >= TOK_SPACE_LEN && !memcmp(tmp.v, TOK_SPACE, TOK_SPACE_LEN));
                if (rc == 0) rc = pieces_add(&nxt, tmp.v ? tmp.v : "", tmp.n, TOK_SPACE, pre ? TOK_SPACE_LEN : 0, err);
                free(tmp.v);
            }
        }
        pieces sw = cur; cur = nxt; nxt = sw;
    }
    for (size_t i = 0; rc == 0 && i < cur.n; i++) rc = model_piece(t, cur.text.v + cur.sp[i].off, cur.sp[i].len, out, err);
    pieces_free(&cur);
    pieces_free(&nxt);
    return rc;
}

/* ---- normalizer ---- */

int tok_normalize(const pb_tokenizer *t, const char *s, size_t n, tok_buf *o, pb_err *err) {
    PB_TRY(tok_buf_put(o, s, n, err));
    for (int k = 0; k < t->n_norm; k++) {
        const tok_norm *z = &t->norm[k];
        if (z->kind == TOK_NORM_PREPEND) {
            if (o->n == 0) continue; /* HF Prepend leaves empty text alone */
            tok_buf r = {0};
            int rc = tok_buf_put(&r, z->a, z->alen, err);
            if (rc == 0) rc = tok_buf_put(&r, o->v, o->n, err);
            if (rc != 0) { free(r.v); return -1; }
            free(o->v);
            *o = r;
        } else {
            if (z->alen == 0) continue;
            tok_buf r = {0};
            int rc = tok_buf_put(&r, "", 0, err);
            for (size_t i = 0; rc == 0 && i < o->n;) {
                if (o->n - i >= z->alen && !memcmp(o->v + i, z->a, z->alen)) {
                    rc = tok_buf_put(&r, z->b, z->blen, err);
                    i += z->alen;
                } else {
                    rc = tok_buf_put(&r, o->v + i, 1, err);
                    i++;
                }
            }
            if (rc != 0) { free(r.v); return -1; }
            free(o->v);
            *o = r;
        }
    }
    return 0;
}

int tok_rank_encode(const pb_tokenizer *t, const char *text, size_t len, bool first, tok_ids *out, pb_err *err) {
    if (t->n_norm == 0) {
        if (!t->has_normalized_added) return pretok_and_model(t, text, len, first, out, err);
        return tok_added_split(t, text, len, first, true, out, err, pretok_and_model);
    }
    tok_buf nb = {0};
    int rc = tok_normalize(t, text, len, &nb, err);
    if (rc == 0 && nb.n) rc = tok_added_split(t, nb.v, nb.n, first, true, out, err, pretok_and_model);
    free(nb.v);
    return rc;
}

