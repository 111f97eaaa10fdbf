/* tok_core.c — tokenizer object, piece tables and hash maps, loading by content,
 * encoding dispatch and decoding. */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tok_ids_push(tok_ids *a, int32_t id, pb_err *err) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        PB_CHECK_ALLOC(v, err);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return 0;
}

int tok_buf_put(tok_buf *b, const void *p, size_t n, pb_err *err) {
    if (n > SIZE_MAX / 2 - b->n) return pb_err_set(err, "tokenizer: text too long");
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *v = realloc(b->v, cap);
        PB_CHECK_ALLOC(v, err);
        b->v = v;
        b->cap = cap;
    }
    if (n) memcpy(b->v + b->n, p, n);
    b->n += n;
    b->v[b->n] = 0;
    return 0;
}

static bool cand_before(const tok_cand *x, const tok_cand *y) {
    return x->key < y->key || (x->key == y->key && x->pos < y->pos);
}

int tok_heap_push(tok_heap *h, tok_cand c, pb_err *err) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        tok_cand *v = realloc(h->v, cap * sizeof *v);
        PB_CHECK_ALLOC(v, err);
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && cand_before(&c, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = c;
    return 0;
}

tok_cand tok_heap_pop(tok_heap *h) {
    tok_cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && cand_before(&h->v[c + 1], &h->v[c])) c++;
        if (!cand_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

pb_tokenizer *tok_new(const char *path) {
    pb_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    pb_arena_init(&t->arena, (size_t)1 << 20);
    snprintf(t->path, sizeof t->path, "%s", path ? path : "(vocabulary)");
    t->unk = t->bos = t->eos = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    return t;
}

int tok_alloc_vocab(pb_tokenizer *t, int n, pb_err *err) {
    if (n <= 0 || n > (1 << 24)) return pb_err_set(err, "%s: bad vocabulary size %d", t->path, n);
    t->n = n;
    t->piece = pb_arena_alloc_n(&t->arena, (size_t)n, sizeof *t->piece);
    t->piece_len = pb_arena_alloc_n(&t->arena, (size_t)n, sizeof *t->piece_len);
    t->score = pb_arena_alloc_n(&t->arena, (size_t)n, sizeof *t->score);
    t->type = pb_arena_alloc_n(&t->arena, (size_t)n, sizeof *t->type);
    if (!t->piece || !t->piece_len || !t->score || !t->type)
        return pb_err_set(err, "%s: out of memory for %d pieces", t->path, n);
    for (int i = 0; i < n; i++) t->type[i] = PB_TOKT_NORMAL;
    return 0;
}

int tok_set_piece(pb_tokenizer *t, int id, const char *s, size_t len, pb_err *err) {
    if (len > (1u << 20)) return pb_err_set(err, "%s: piece %d is %zu bytes long", t->path, id, len);
    char *d = pb_arena_strndup(&t->arena, s, len);
    PB_CHECK_ALLOC(d, err);
    t->piece[id] = d;
    t->piece_len[id] = (uint32_t)len;
    if (len > t->max_piece_len) t->max_piece_len = (uint32_t)len;
    return 0;
}

uint32_t tok_hash(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

int tok_map_build(pb_tokenizer *t, tok_map *m, const int32_t *type_filter, int n_filter, const uint8_t *only,
                  pb_err *err) {
    uint32_t cap = 16;
    while (cap < (uint32_t)t->n * 2u) cap <<= 1;
    m->slots = pb_arena_alloc_n(&t->arena, cap, sizeof *m->slots);
    PB_CHECK_ALLOC(m->slots, err);
    m->mask = cap - 1;
    int dups = 0;
    for (int id = 0; id < t->n; id++) {
        if (!t->piece[id] || (only && !only[id])) continue;
        if (n_filter) {
            bool ok = false;
            for (int k = 0; k < n_filter; k++) ok |= t->type[id] == type_filter[k];
            if (!ok) continue;
        }
        uint32_t len = t->piece_len[id];
        uint32_t h = tok_hash(t->piece[id], len) & m->mask;
        for (;;) {
            uint32_t s = m->slots[h];
            if (!s) { m->slots[h] = (uint32_t)id + 1; break; }
            if (t->piece_len[s - 1] == len && !memcmp(t->piece[s - 1], t->piece[id], len)) { dups++; break; }
            h = (h + 1) & m->mask;
        }
    }
    return dups;
}

int tok_map_get(const pb_tokenizer *t, const tok_map *m, const char *s, size_t len) {
    if (!m->slots) return -1;
    uint32_t h = tok_hash(s, len) & m->mask;
    for (;;) {
        uint32_t v = m->slots[h];
        if (!v) return -1;
        if (t->piece_len[v - 1] == len && !memcmp(t->piece[v - 1], s, len)) return (int)v - 1;
        h = (h + 1) & m->mask;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int tok_byte_piece(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

int tok_utf8_valid_len(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint32_t c;
    if (s[0] < 0x80) { *cp = s[0]; return 1; }
    if (n >= 2 && (s[0] & 0xE0) == 0xC0 && (s[1] & 0xC0) == 0x80) {
        c = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        if (c >= 0x80) { *cp = c; return 2; }
    } else if (n >= 3 && (s[0] & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        c = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (c >= 0x800 && (c < 0xD800 || c > 0xDFFF)) { *cp = c; return 3; }
    } else if (n >= 4 && (s[0] & 0xF8) == 0xF0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
               (s[3] & 0xC0) == 0x80) {
        c = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
            ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (c >= 0x10000 && c <= 0x10FFFF) { *cp = c; return 4; }
    }
    return 0;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68
 * bytes take code points 256.. in byte order, so every byte string is printable text. */
void tok_bytelevel_tables(pb_tokenizer *t) {
    int extra = 0;
    for (int i = 0; i < 324; i++) t->cp2byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = printable ? (uint32_t)b : 256u + (uint32_t)extra++;
        t->byte2cp[b] = cp;
        t->cp2byte[cp] = (int16_t)b;
    }
}

void pb_tok_free(pb_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_pre; i++) pcre2_code_free(t->pre[i].re);
    pb_arena_free(&t->arena);
    free(t);
}

/* ---- loading by content ---- */

int pb_tok_load(const char *path, pb_tokenizer **out, pb_err *err) {
    *out = NULL;
    pb_mmap m;
    PB_TRY(pb_mmap_open(&m, path, false, err));
    size_t i = 0;
    while (i < m.size && (m.data[i] == ' ' || m.data[i] == '\t' || m.data[i] == '\n' || m.data[i] == '\r')) i++;
    bool json = i < m.size && m.data[i] == '{';
    /* A ModelProto starts with field 1 (pieces), length-delimited: tag 0x0A and a non-zero
     * length. A llama2.c file starts with a little-endian uint32 max_token_length, whose
     * second byte is 0 for any real vocabulary (lengths < 256). */
    bool spm = m.size >= 2 && m.data[0] == 0x0A && m.data[1] != 0;
    size_t size = m.size;
    pb_mmap_close(&m);
    if (size < 4 && !json) return pb_err_set(err, "%s: %zu bytes: too short to be a tokenizer", path, size);
    if (json) return pb_tok_load_hf_json(path, out, err);
    if (spm) return pb_tok_load_spm(path, out, err);
    return pb_tok_load_llama2c(path, 0, out, err);
}

/* ---- encoding ---- */

static bool is_ws_cp(uint32_t c) {
    /* Unicode White_Space, which Rust's char::is_whitespace tests (HF lstrip/rstrip) */
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Leftmost-longest search for an added token in s[from..len), as HF's aho-corasick
 * (MatchKind::LeftmostLongest) does; `normalized` picks which set (and which content). */
static bool added_find(const pb_tokenizer *t, const char *s, size_t len, size_t from, bool normalized,
                       size_t *ms, size_t *me, int *id) {
    for (size_t i = from; i < len; i++) {
        if (!t->added_first[normalized][(uint8_t)s[i]]) continue;
        int best = -1;
        uint32_t best_len = 0;
        for (int k = 0; k < t->n_added; k++) {
            const tok_added *a = &t->added[k];
            if (a->normalized != normalized) continue;
            const char *c = normalized ? a->ns : a->s;
            uint32_t cl = normalized ? a->nlen : a->len;
            if (cl == 0 || cl <= best_len || cl > len - i || c[0] != s[i] || memcmp(c, s + i, cl)) continue;
            best = k;
            best_len = cl;
        }
        if (best < 0) continue;
        size_t st = i, en = i + best_len;
        const tok_added *a = &t->added[best];
        if (a->lstrip) {
            while (st > from) { /* step back over whole whitespace characters */
                size_t b = st - 1;
                while (b > from && ((unsigned char)s[b] & 0xC0) == 0x80) b--;
                uint32_t cp;
                int l = tok_utf8_valid_len((const unsigned char *)s + b, st - b, &cp);
                if (l != (int)(st - b) || !is_ws_cp(cp)) break;
                st = b;
            }
        }
        if (a->rstrip) {
            uint32_t cp;
            int l;
            while (en < len && (l = tok_utf8_valid_len((const unsigned char *)s + en, len - en, &cp)) > 0 &&
                   is_ws_cp(cp))
                en += (size_t)l;
        }
        *ms = st;
        *me = en;
        *id = a->id;
        return true;
    }
    return false;
}

/* Splits text on added tokens of one set; gaps go to the next stage. */
int tok_added_split(const pb_tokenizer *t, const char *s, size_t len, bool first, bool normalized, tok_ids *out,
                    pb_err *err, tok_gap_fn gap) {
    size_t pos = 0, ms, me;
    int id;
    bool any = false;
    for (int k = 0; k < t->n_added; k++) any |= t->added[k].normalized == normalized;
    while (any && pos < len && added_find(t, s, len, pos, normalized, &ms, &me, &id)) {
        if (ms > pos) PB_TRY(gap(t, s + pos, ms - pos, first && pos == 0, out, err));
        PB_TRY(tok_ids_push(out, id, err));
        pos = me;
    }
    if (pos < len) PB_TRY(gap(t, s + pos, len - pos, first && pos == 0, out, err));
    return 0;
}

int pb_tok_encode(const pb_tokenizer *t, const char *text, size_t len, bool add_bos, int32_t **ids,
                  size_t *n_ids, pb_err *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return pb_err_set(err, "tokenizer: NULL text");
    tok_ids out = {0};
    int rc = 0;
    if (add_bos && t->bos >= 0) rc = tok_ids_push(&out, t->bos, err);
    if (rc == 0 && len) {
        if (t->alg == TOK_ALG_SCORE) rc = tok_spm_encode(t, text, len, &out, err);
        else rc = tok_added_split(t, text, len, true, false, &out, err, tok_rank_encode);
    }
    if (rc != 0) {
        free(out.v);
        return -1;
    }
    if (!out.v) { /* callers may free() the result whatever its length */
        out.v = malloc(sizeof *out.v);
        PB_CHECK_ALLOC(out.v, err);
    }
    *ids = out.v;
    *n_ids = out.n;
    return 0;
}

/* ---- decoding ---- */

static size_t put(char *buf, size_t cap, size_t at, const char *s, size_t n) {
    if (at >= cap) return at;
    size_t k = n < cap - at ? n : cap - at;
    memcpy(buf + at, s, k);
    return at + k;
}

/* Returns the bytes written (at most cap): a caller that advances by the result never runs
 * past its buffer. The dummy prefix is dropped after BOS and at the start (prev < 0), as
 * sentencepiece's decode drops the first piece's leading space. */
size_t pb_tok_decode(const pb_tokenizer *t, int prev, int id, char *buf, size_t cap) {
    if (id < 0 || id >= t->n || !t->piece[id]) return 0;
    const char *p = t->piece[id];
    size_t n = t->piece_len[id], o = 0;
    switch (t->type[id]) {
    case PB_TOKT_CONTROL: return 0;
    case PB_TOKT_UNKNOWN:
        /* sentencepiece shows unknown pieces as its unk_surface */
        return t->kind == PB_TOK_SPM ? put(buf, cap, 0, " \xE2\x81\x87 ", 5) : put(buf, cap, 0, p, n);
    case PB_TOKT_BYTE: {
        int b = tok_byte_piece(p, n);
        if (b >= 0) {
            char c = (char)b;
            return put(buf, cap, 0, &c, 1);
        }
        break;
    }
    default: break;
    }
    if (t->kind == PB_TOK_BYTELEVEL) {
        if (t->type[id] == PB_TOKT_USER_DEFINED) return put(buf, cap, 0, p, n);
        /* HF's ByteLevel decoder: a token whose characters all belong to the byte alphabet
         * becomes those bytes; any other token passes through as it is written. */
        bool mapped = true;
        for (size_t i = 0; i < n && mapped;) {
            uint32_t cp;
            int l = tok_utf8_valid_len((const unsigned char *)p + i, n - i, &cp);
            if (l == 0 || cp >= 324 || t->cp2byte[cp] < 0) { mapped = false; break; }
            char c = (char)t->cp2byte[cp];
            o = put(buf, cap, o, &c, 1);
            i += (size_t)l;
        }
        return mapped ? o : put(buf, cap, 0, p, n);
    }
    size_t i = 0;
    bool at_start = prev < 0 || prev == t->bos;
    if (t->add_dummy_prefix && !t->ws_suffix && at_start && n >= TOK_SPACE_LEN && !memcmp(p, TOK_SPACE, TOK_SPACE_LEN))
        i = TOK_SPACE_LEN;
    while (i < n) {
        if (n - i >= TOK_SPACE_LEN && !memcmp(p + i, TOK_SPACE, TOK_SPACE_LEN)) {
            o = put(buf, cap, o, " ", 1);
            i += TOK_SPACE_LEN;
        } else {
            o = put(buf, cap, o, p + i, 1);
            i++;
        }
    }
    return o;
}

/* ---- accessors ---- */

int pb_tok_vocab_size(const pb_tokenizer *t) { return t->n; }
int pb_tok_bos(const pb_tokenizer *t) { return t->bos; }
int pb_tok_eos(const pb_tokenizer *t) { return t->eos; }
bool pb_tok_default_add_bos(const pb_tokenizer *t) { return t->add_bos_default && t->bos >= 0; }
pb_tok_kind pb_tok_kind_of(const pb_tokenizer *t) { return t->kind; }
const char *pb_tok_piece(const pb_tokenizer *t, int id) {
    return id >= 0 && id < t->n ? t->piece[id] : NULL;
}
