/* text.c — rows of text corpora exactly as the Hugging Face dataset scripts build them.
 *
 * Perplexity numbers depend on every byte of the evaluated string (a different newline
 * count is a different token stream), so the readers reproduce Python: text-mode universal
 * newlines ("\r\n" and "\r" read as "\n"), str.strip() with Unicode whitespace, and the
 * wikitext rule that a blank line becomes "" while any other line keeps its "\n". */
#include "pb_data.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

bool pb_py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Decodes one UTF-8 code point at s[0..n); returns its byte length. Malformed input gives
 * one byte and a code point that is not whitespace (Python would refuse the file; we keep
 * the bytes, which the tokenizer then sees unchanged). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n) { *cp = 0xFFFFFFFFu; return 1; }
    uint32_t v = len == 1 ? c : c & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = 0xFFFFFFFFu; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

/* Narrows [*a, *b) of s by Python's strip(). */
static void py_strip(const char *s, size_t *a, size_t *b) {
    const unsigned char *u = (const unsigned char *)s;
    while (*a < *b) {
        uint32_t cp;
        size_t k = utf8_next(u + *a, *b - *a, &cp);
        if (!pb_py_isspace(cp)) break;
        *a += k;
    }
    while (*b > *a) {
        size_t st = *b - 1; /* back up to the lead byte of the last code point (at most 3 steps) */
        while (st > *a && *b - st < 4 && (u[st] & 0xC0) == 0x80) st--;
        uint32_t cp;
        size_t k = utf8_next(u + st, *b - st, &cp);
        if (st + k != *b || !pb_py_isspace(cp)) break;
        *b = st;
    }
}

/* ---- row buffer ------------------------------------------------------------------------ */

typedef struct {
    pb_rows r;
    size_t len, cap;      /* bytes used / allocated in r.buf */
    size_t ocap;          /* entries allocated in r.off */
} rows_builder;

static int rb_init(rows_builder *b, size_t cap, pb_err *err) {
    memset(b, 0, sizeof *b);
    b->cap = cap + 1;
    b->ocap = 1024;
    b->r.buf = malloc(b->cap);
    b->r.off = malloc(b->ocap * sizeof *b->r.off);
    if (!b->r.buf || !b->r.off) { free(b->r.buf); free(b->r.off); return pb_err_set(err, "out of memory"); }
    b->r.off[0] = 0;
    return 0;
}

/* Appends bytes to the row being built. */
static int rb_put(rows_builder *b, const char *s, size_t n, pb_err *err) {
    if (n > SIZE_MAX / 2 - b->len) return pb_err_set(err, "text too large");
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap;
        while (b->len + n + 1 > nc) nc *= 2;
        char *nb = realloc(b->r.buf, nc);
        PB_CHECK_ALLOC(nb, err);
        b->r.buf = nb;
        b->cap = nc;
    }
    memcpy(b->r.buf + b->len, s, n);
    b->len += n;
    return 0;
}

/* Ends the current row. */
static int rb_end(rows_builder *b, pb_err *err) {
    if (b->r.n + 2 > b->ocap) {
        size_t *no = realloc(b->r.off, 2 * b->ocap * sizeof *no);
        PB_CHECK_ALLOC(no, err);
        b->r.off = no;
        b->ocap *= 2;
    }
    b->r.off[++b->r.n] = b->len;
    return 0;
}

static void rb_fail(rows_builder *b) {
    free(b->r.buf);
    free(b->r.off);
    memset(b, 0, sizeof *b);
}

/* Next line of s[pos..n): content [*a, *b), whether a terminator followed, new position. */
static bool next_line(const char *s, size_t n, size_t *pos, size_t *a, size_t *b, bool *term) {
    if (*pos >= n) return false;
    size_t i = *pos;
    while (i < n && s[i] != '\n' && s[i] != '\r') i++;
    *a = *pos;
    *b = i;
    *term = i < n;
    if (i < n) i += (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
    *pos = i;
    return true;
}

/* ---- formats --------------------------------------------------------------------------- */

static int read_jsonl_line(const char *path, size_t lineno, const char *s, size_t a, size_t b, const char *field,
                           rows_builder *rb, pb_err *err) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s + a, b - a, &end, false);
    if (!j) {
        size_t col = end && end >= s + a ? (size_t)(end - (s + a)) + 1 : 1;
        return pb_err_set(err, "%s:%zu:%zu: not valid JSON", path, lineno, col);
    }
    size_t ea = (size_t)(end - s), eb = b;
    py_strip(s, &ea, &eb);
    int rc = 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, field);
    if (ea != eb) rc = pb_err_set(err, "%s:%zu:%zu: text after the JSON value", path, lineno, ea - a + 1);
    else if (!cJSON_IsObject(j)) rc = pb_err_set(err, "%s:%zu: not a JSON object", path, lineno);
    else if (!cJSON_IsString(v)) rc = pb_err_set(err, "%s:%zu: no string field \"%s\"", path, lineno, field);
    else rc = rb_put(rb, v->valuestring, strlen(v->valuestring), err) || rb_end(rb, err) ? -1 : 0;
    cJSON_Delete(j);
    return rc;
}

/* Ends a paragraph row: its text since the previous row end, stripped in place. */
static int close_paragraph(rows_builder *rb, pb_err *err) {
    size_t start = rb->r.off[rb->r.n], a = start, b = rb->len;
    py_strip(rb->r.buf, &a, &b);
    memmove(rb->r.buf + start, rb->r.buf + a, b - a);
    rb->len = start + (b - a);
    return rb_end(rb, err);
}

static int read_rows(const char *path, const char *s, size_t n, pb_text_format fmt, const char *field,
                     int64_t max_rows, rows_builder *rb, pb_err *err) {
    size_t pos = 0, a, b, lineno = 0;
    bool term, in_par = false;
    if (fmt == PB_TEXT_PLAIN) return n ? (rb_put(rb, s, n, err) || rb_end(rb, err) ? -1 : 0) : 0;
    while ((max_rows <= 0 || (int64_t)rb->r.n < max_rows) && next_line(s, n, &pos, &a, &b, &term)) {
        lineno++;
        size_t sa = a, sb = b;
        py_strip(s, &sa, &sb);
        switch (fmt) {
        case PB_TEXT_WIKITEXT:
            if (sa < sb) PB_TRY(rb_put(rb, s + a, b - a, err));
            if (sa < sb && term) PB_TRY(rb_put(rb, "\n", 1, err));
            PB_TRY(rb_end(rb, err));
            break;
        case PB_TEXT_LINES:
            PB_TRY(rb_put(rb, s + sa, sb - sa, err));
            PB_TRY(rb_end(rb, err));
            break;
        case PB_TEXT_PARAGRAPHS:
            if (sa == sb) { /* a blank line closes the paragraph */
                if (in_par) PB_TRY(close_paragraph(rb, err));
                in_par = false;
                break;
            }
            if (in_par) PB_TRY(rb_put(rb, "\n", 1, err));
            PB_TRY(rb_put(rb, s + a, b - a, err));
            in_par = true;
            break;
        case PB_TEXT_JSONL:
            if (sa == sb) break;
            PB_TRY(read_jsonl_line(path, lineno, s, a, b, field, rb, err));
            break;
        default:
            return pb_err_set(err, "%s: unknown text format %d", path, (int)fmt);
        }
    }
    if (fmt == PB_TEXT_PARAGRAPHS && in_par) PB_TRY(close_paragraph(rb, err));
    return 0;
}

int pb_rows_read(const char *path, pb_text_format fmt, const char *field, int64_t max_rows, pb_rows *out,
                 pb_err *err) {
    memset(out, 0, sizeof *out);
    char *s = NULL;
    size_t n = 0;
    PB_TRY(pb_file_read_all(path, &s, &n, err));
    rows_builder rb;
    if (rb_init(&rb, n + n / 64 + 16, err)) { free(s); return -1; }
    int rc = read_rows(path, s, n, fmt, field ? field : "text", max_rows, &rb, err);
    free(s);
    if (rc) { rb_fail(&rb); return -1; }
    rb.r.buf[rb.len] = 0;
    *out = rb.r;
    return 0;
}

void pb_rows_free(pb_rows *r) {
    if (!r) return;
    free(r->buf);
    free(r->off);
    memset(r, 0, sizeof *r);
}

int pb_rows_join(const pb_rows *r, const char *sep, char **text, size_t *len, pb_err *err) {
    size_t sl = strlen(sep), body = r->n ? r->off[r->n] : 0, total;
    if (!pb_mul_ok(r->n ? r->n - 1 : 0, sl, &total) || total > SIZE_MAX - body - 1)
        return pb_err_set(err, "text too large");
    total += body;
    char *t = malloc(total + 1), *p = t;
    PB_CHECK_ALLOC(t, err);
    for (size_t i = 0; i < r->n; i++) {
        if (i) { memcpy(p, sep, sl); p += sl; }
        memcpy(p, r->buf + r->off[i], r->off[i + 1] - r->off[i]);
        p += r->off[i + 1] - r->off[i];
    }
    *p = 0;
    *text = t;
    *len = total;
    return 0;
}
