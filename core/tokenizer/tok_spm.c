/* tok_spm.c — sentencepiece BPE encoding (the algorithm of sentencepiece 0.1.97's
 * normalizer.cc, bpe_model.cc and the byte-fallback / unknown handling of
 * sentencepiece_processor.cc), shared by tokenizer.model, llama2.c and GGUF "llama" vocabs. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

int tok_spm_finish(pb_tokenizer *t, bool strict, pb_err *err) {
    static const int32_t normal_types[] = {PB_TOKT_NORMAL, PB_TOKT_USER_DEFINED, PB_TOKT_UNUSED};
    static const int32_t reserved_types[] = {PB_TOKT_CONTROL, PB_TOKT_UNKNOWN, PB_TOKT_BYTE};
    int n_unk = 0, first_unk = -1;
    for (int i = 0; i < t->n; i++) {
        if (!t->piece[i] || t->piece_len[i] == 0)
            return pb_err_set(err, "%s: piece %d is empty", t->path, i);
        int ty = t->type[i];
        if (ty < PB_TOKT_NORMAL || ty > PB_TOKT_BYTE)
            return pb_err_set(err, "%s: piece %d has unknown type %d", t->path, i, ty);
        if (ty == PB_TOKT_UNKNOWN && n_unk++ == 0) first_unk = i;
        if (ty == PB_TOKT_UNUSED) t->has_unused = true;
        if (ty == PB_TOKT_USER_DEFINED) t->n_user++;
        if (ty == PB_TOKT_BYTE) {
            int b = tok_byte_piece(t->piece[i], t->piece_len[i]);
            if (b < 0) return pb_err_set(err, "%s: byte piece %d '%s' is not of the form <0xNN>", t->path, i, t->piece[i]);
            if (strict && !t->byte_fallback)
                return pb_err_set(err, "%s: byte piece %d found although byte_fallback is false", t->path, i);
            t->byte_id[b] = i;
        }
    }
    if (strict && n_unk != 1)
        return pb_err_set(err, "%s: %s", t->path, n_unk ? "more than one unknown piece" : "no unknown piece (<unk>)");
    t->unk = first_unk;
    if (t->byte_fallback) {
        for (int b = 0; b < 256; b++) {
            if (t->byte_id[b] >= 0) continue;
            if (strict) return pb_err_set(err, "%s: byte_fallback is set but piece <0x%02X> is missing", t->path, b);
            t->byte_fallback = false; /* a partial byte set cannot spell every byte */
            break;
        }
    }
    if (t->unk < 0 && !t->byte_fallback)
        return pb_err_set(err, "%s: vocabulary has neither an unknown piece nor byte fallback", t->path);
    int d1 = tok_map_build(t, &t->normal, normal_types, 3, NULL, err);
    if (d1 < 0) return -1;
    int d2 = tok_map_build(t, &t->reserved, reserved_types, 3, NULL, err);
    if (d2 < 0) return -1;
    if (strict && d1 + d2) return pb_err_set(err, "%s: %d duplicate pieces", t->path, d1 + d2);

    bool inside[256] = {false};
    for (int i = 0; i < t->n; i++) {
        int ty = t->type[i];
        if (t->piece_len[i] > 1 && (ty == PB_TOKT_NORMAL || ty == PB_TOKT_USER_DEFINED || ty == PB_TOKT_UNUSED))
            for (uint32_t k = 0; k < t->piece_len[i]; k++) inside[(uint8_t)t->piece[i][k]] = true;
    }
    for (int c = 0; c < 128; c++) t->splitter[c] = !inside[c];
    if (t->n_user) {
        t->user_ids = pb_arena_alloc_n(&t->arena, (size_t)t->n_user, sizeof *t->user_ids);
        PB_CHECK_ALLOC(t->user_ids, err);
    }
    int k = 0;
    for (int b = 0; b < 256; b++) { /* counting sort by first byte */
        t->user_off[b] = k;
        for (int i = 0; i < t->n; i++)
            if (t->type[i] == PB_TOKT_USER_DEFINED && (uint8_t)t->piece[i][0] == b) t->user_ids[k++] = i;
        if (k == t->n_user) {
            for (int c = b + 1; c <= 256; c++) t->user_off[c] = k;
            break;
        }
    }
    t->user_off[256] = k;
    return 0;
}

/* Longest user-defined piece that prefixes s (sentencepiece's PrefixMatcher), 0 if none. */
static size_t user_match(const pb_tokenizer *t, const char *s, size_t n) {
    if (!t->n_user || !n) return 0;
    uint8_t b = (uint8_t)s[0];
    size_t best = 0;
    for (int k = t->user_off[b]; k < t->user_off[b + 1]; k++) {
        int id = t->user_ids[k];
        size_t l = t->piece_len[id];
        if (l > best && l <= n && !memcmp(t->piece[id], s, l)) best = l;
    }
    return best;
}

static int add_ws(const pb_tokenizer *t, tok_buf *o, pb_err *err) {
    return t->escape_ws ? tok_buf_put(o, TOK_SPACE, TOK_SPACE_LEN, err) : tok_buf_put(o, " ", 1, err);
}

/* normalizer.cc's Normalize for an identity normalizer (no precompiled charsmap). */
static int spm_normalize(const pb_tokenizer *t, const char *in, size_t len, tok_buf *o, pb_err *err) {
    size_t pos = 0;
    /* one "prefix": a user-defined piece, one valid UTF-8 character, or one bad byte -> U+FFFD */
#define NEXT_PREFIX(sp, spn, used) do { \
        size_t u_ = user_match(t, in + pos, len - pos); uint32_t cp_; \
        if (u_) { sp = in + pos; spn = u_; used = u_; } \
        else { int l_ = tok_utf8_valid_len((const unsigned char *)in + pos, len - pos, &cp_); \
               if (l_) { sp = in + pos; spn = (size_t)l_; used = (size_t)l_; } \
               else { sp = "\xEF\xBF\xBD"; spn = 3; used = 1; } } } while (0)
    const char *sp;
    size_t spn, used;
    if (t->remove_extra_ws) {
        while (pos < len) {
            NEXT_PREFIX(sp, spn, used);
            if (!(spn == 1 && sp[0] == ' ')) break;
            pos += used;
        }
    }
    if (pos == len) return 0;
    if (!t->ws_suffix && t->add_dummy_prefix) PB_TRY(add_ws(t, o, err));
    bool prev_space = t->remove_extra_ws;
    while (pos < len) {
        NEXT_PREFIX(sp, spn, used);
        while (prev_space && spn && sp[0] == ' ') { sp++; spn--; }
        if (spn) {
            for (size_t i = 0; i < spn; i++) {
                if (t->escape_ws && sp[i] == ' ') PB_TRY(tok_buf_put(o, TOK_SPACE, TOK_SPACE_LEN, err));
                else PB_TRY(tok_buf_put(o, sp + i, 1, err));
            }
            prev_space = sp[spn - 1] == ' ';
        }
        pos += used;
        if (!t->remove_extra_ws) prev_space = false;
    }
#undef NEXT_PREFIX
    if (t->remove_extra_ws) {
        const char *ws = t->escape_ws ? TOK_SPACE : " ";
        size_t wl = t->escape_ws ? TOK_SPACE_LEN : 1;
        while (o->n >= wl && !memcmp(o->v + o->n - wl, ws, wl)) o->n -= wl;
    }
    if (t->ws_suffix && t->add_dummy_prefix) PB_TRY(add_ws(t, o, err));
    return 0;
}

typedef struct {
    int32_t start;     /* byte offset in the normalized text */
    int32_t len;       /* 0 once merged into its left neighbour */
    int32_t prev, next;
    bool freeze;       /* a user-defined piece: never merged */
} sym;

typedef struct { int32_t *start, *len, *left; uint32_t mask, n; } revmap;

static int32_t rev_find(const revmap *r, const char *txt, int32_t s, int32_t l, uint32_t *slot) {
    uint32_t h = tok_hash(txt + s, (size_t)l) & r->mask;
    for (;;) {
        if (r->len[h] == 0) { *slot = h; return -1; }
        if (r->len[h] == l && !memcmp(txt + r->start[h], txt + s, (size_t)l)) { *slot = h; return r->left[h]; }
        h = (h + 1) & r->mask;
    }
}

static int rev_put(revmap *r, const char *txt, int32_t s, int32_t l, int32_t left, pb_err *err) {
    if (2 * (r->n + 1) > r->mask + 1 || !r->len) {
        revmap g = {0};
        g.mask = r->len ? 2 * r->mask + 1 : 63;
        g.start = calloc((size_t)g.mask + 1, sizeof *g.start);
        g.len = calloc((size_t)g.mask + 1, sizeof *g.len);
        g.left = calloc((size_t)g.mask + 1, sizeof *g.left);
        if (!g.start || !g.len || !g.left) {
            free(g.start); free(g.len); free(g.left);
            return pb_err_set(err, "tokenizer: out of memory");
        }
        for (uint32_t i = 0; r->len && i <= r->mask; i++) {
            if (!r->len[i]) continue;
            uint32_t slot;
            rev_find(&g, txt, r->start[i], r->len[i], &slot);
            g.start[slot] = r->start[i]; g.len[slot] = r->len[i]; g.left[slot] = r->left[i];
            g.n++;
        }
        free(r->start); free(r->len); free(r->left);
        *r = g;
    }
    uint32_t slot;
    if (rev_find(r, txt, s, l, &slot) < 0) r->n++;
    r->start[slot] = s; r->len[slot] = l; r->left[slot] = left;
    return 0;
}

typedef struct {
    const pb_tokenizer *t;
    const char *txt;
    sym *sy;
    tok_heap h;    /* agenda of bpe_model.cc: highest score first, then the leftmost pair */
    revmap rev;
} bpe_state;

static int maybe_add(bpe_state *st, int32_t l, int32_t r, pb_err *err) {
    if (l < 0 || r < 0 || st->sy[l].freeze || st->sy[r].freeze) return 0;
    const pb_tokenizer *t = st->t;
    int32_t size = st->sy[l].len + st->sy[r].len;
    if ((uint32_t)size > t->max_piece_len) return 0;
    int id = tok_map_get(t, &t->normal, st->txt + st->sy[l].start, (size_t)size);
    if (id < 0) return 0;
    /* key -score: the heap takes the smallest key first; pos l: leftmost on ties */
    PB_TRY(tok_heap_push(&st->h, (tok_cand){-(double)t->score[id], l, r, size}, err));
    if (t->type[id] == PB_TOKT_UNUSED) PB_TRY(rev_put(&st->rev, st->txt, st->sy[l].start, size, st->sy[l].len, err));
    return 0;
}

/* PieceToId: reserved pieces first, then normal ones; -1 when unknown. */
static int piece_id(const pb_tokenizer *t, const char *s, size_t n) {
    int id = tok_map_get(t, &t->reserved, s, n);
    return id >= 0 ? id : tok_map_get(t, &t->normal, s, n);
}

/* Emits one final piece as sentencepiece_processor.cc does: byte fallback for unknown
 * pieces, or consecutive unknowns merged into one. */
static int emit(const pb_tokenizer *t, const char *s, size_t n, int id, bool *prev_unk, tok_ids *out, pb_err *err) {
    bool unk = id < 0 || t->type[id] == PB_TOKT_UNKNOWN;
    if (!unk && t->type[id] == PB_TOKT_CONTROL) {
        PB_TRY(tok_ids_push(out, id, err));
    } else if (unk && t->byte_fallback) {
        for (size_t i = 0; i < n; i++) PB_TRY(tok_ids_push(out, t->byte_id[(uint8_t)s[i]], err));
    } else if (!(unk && *prev_unk)) {
        PB_TRY(tok_ids_push(out, unk ? t->unk : id, err));
    }
    *prev_unk = unk;
    return 0;
}

static int bpe_run(bpe_state *st, int32_t nsym, tok_ids *out, pb_err *err) {
    const pb_tokenizer *t = st->t;
    sym *sy = st->sy;
    /* Stretches end at a splitter character, which never merges: no pair crosses it, so
     * each stretch runs to completion on its own with the same result as one global agenda. */
    for (int32_t a = 0, b; a < nsym; a = b + 1) {
        for (b = a; b + 1 < nsym; b++) {
            const sym *s = &sy[b];
            if (s->len == 1 && !s->freeze && (uint8_t)st->txt[s->start] < 128 && t->splitter[(uint8_t)st->txt[s->start]])
                break;
        }
        for (int32_t i = a + 1; i <= b; i++) PB_TRY(maybe_add(st, i - 1, i, err));
        while (st->h.n) {
            tok_cand top = tok_heap_pop(&st->h);   /* pos: left symbol, a: right, b: merged size */
            sym *L = &sy[top.pos], *R = &sy[top.a];
            if (L->len == 0 || R->len == 0 || L->len + R->len != top.b) continue; /* stale */
            L->len += R->len;
            L->next = R->next;
            if (R->next >= 0) sy[R->next].prev = top.pos;
            R->len = 0;
            PB_TRY(maybe_add(st, L->prev, top.pos, err));
            PB_TRY(maybe_add(st, top.pos, L->next, err));
        }
    }
    /* resegment unused pieces (explicit stack of (start, len)), then emit */
    tok_ids stack = {0};
    bool prev_unk = false;
    int rc = 0;
    for (int32_t i = 0; nsym && i != -1 && rc == 0; i = sy[i].next) {
        stack.n = 0;
        rc = tok_ids_push(&stack, sy[i].start, err);
        if (rc == 0) rc = tok_ids_push(&stack, sy[i].len, err);
        while (rc == 0 && stack.n) {
            int32_t l = stack.v[--stack.n], s = stack.v[--stack.n];
            int id = piece_id(t, st->txt + s, (size_t)l);
            uint32_t slot;
            int32_t left = (id >= 0 && t->type[id] == PB_TOKT_UNUSED && st->rev.len)
                               ? rev_find(&st->rev, st->txt, s, l, &slot) : -1;
            if (left <= 0 || left >= l) {
                rc = emit(t, st->txt + s, (size_t)l, id, &prev_unk, out, err);
                continue;
            }
            /* right half pushed first so that the left half comes out first */
            int32_t v[4] = {s + left, l - left, s, left};
            for (int k = 0; k < 4 && rc == 0; k++) rc = tok_ids_push(&stack, v[k], err);
        }
    }
    free(stack.v);
    return rc;
}

int tok_spm_encode(const pb_tokenizer *t, const char *text, size_t len, tok_ids *out, pb_err *err) {
    tok_buf nb = {0};
    if (spm_normalize(t, text, len, &nb, err) != 0) { free(nb.v); return -1; }
    if (nb.n == 0) { free(nb.v); return 0; }
    if (nb.n > INT32_MAX / 2) { free(nb.v); return pb_err_set(err, "tokenizer: text of %zu bytes is too long", len); }
    bpe_state st = {t, nb.v, NULL, {0}, {0}};
    st.sy = malloc(nb.n * sizeof *st.sy);
    if (!st.sy) { free(nb.v); return pb_err_set(err, "tokenizer: out of memory for %zu symbols", nb.n); }
    static const char one_char_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    int32_t nsym = 0;
    for (size_t pos = 0; pos < nb.n; nsym++) {
        size_t l = user_match(t, nb.v + pos, nb.n - pos);
        bool freeze = l > 0;
        if (!l) {
            l = (size_t)one_char_len[(uint8_t)nb.v[pos] >> 4];
            if (l > nb.n - pos) l = nb.n - pos;
        }
        st.sy[nsym] = (sym){(int32_t)pos, (int32_t)l, nsym - 1, -1, freeze};
        if (nsym > 0) st.sy[nsym - 1].next = nsym;
        pos += l;
    }
    int rc = bpe_run(&st, nsym, out, err);
    free(st.h.v);
    free(st.rev.start); free(st.rev.len); free(st.rev.left);
    free(st.sy);
    free(nb.v);
    return rc;
}
