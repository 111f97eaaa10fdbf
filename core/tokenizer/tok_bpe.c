/* tok_bpe.c — HF tokenizers' BPE model (rank-ordered merges, byte fallback, unknown
 * fusing, ignore_merges) on one pre-tokenized word, and the merge table behind it. */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- merges table ---- */

int tok_merges_init(pb_tokenizer *t, size_t n, pb_err *err) {
    uint32_t cap = 16;
    while (cap < 2 * n + 2) {
        if (cap >= (1u << 30)) return pb_err_set(err, "%s: too many merges (%zu)", t->path, n);
        cap <<= 1;
    }
    tok_merges *m = &t->merges;
    m->keys = pb_arena_alloc_n(&t->arena, cap, sizeof *m->keys);
    m->rank = pb_arena_alloc_n(&t->arena, cap, sizeof *m->rank);
    m->merged = pb_arena_alloc_n(&t->arena, cap, sizeof *m->merged);
    if (!m->keys || !m->rank || !m->merged) return pb_err_set(err, "%s: out of memory for %zu merges", t->path, n);
    memset(m->keys, 0xFF, cap * sizeof *m->keys);
    m->mask = cap - 1;
    t->in_merge = pb_arena_alloc_n(&t->arena, (size_t)t->n, 1);
    PB_CHECK_ALLOC(t->in_merge, err);
    return 0;
}

static uint32_t key_hash(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdULL; k ^= k >> 33;
    return (uint32_t)k;
}

void tok_merges_put(tok_merges *m, int a, int b, uint32_t rank, int merged) {
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t h = key_hash(k) & m->mask;
    while (m->keys[h] != UINT64_MAX && m->keys[h] != k) h = (h + 1) & m->mask;
    m->keys[h] = k;
    m->rank[h] = rank;
    m->merged[h] = merged;
}

static bool merges_get(const tok_merges *m, int a, int b, uint32_t *rank, int *merged) {
    if (!m->keys) return false;
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t h = key_hash(k) & m->mask;
    for (;;) {
        if (m->keys[h] == UINT64_MAX) return false;
        if (m->keys[h] == k) { *rank = m->rank[h]; *merged = m->merged[h]; return true; }
        h = (h + 1) & m->mask;
    }
}

/* ---- the BPE model on one word (tokenizers/src/models/bpe/{model,word}.rs) ---- */

typedef struct { int32_t id, prev, next; bool dead; } wsym;
static int wsym_add(wsym **sy, size_t *n, size_t *cap, int32_t id, pb_err *err) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 32;
        wsym *v = realloc(*sy, c * sizeof *v);
        PB_CHECK_ALLOC(v, err);
        *sy = v;
        *cap = c;
    }
    (*sy)[*n] = (wsym){id, (int32_t)*n - 1, -1, false};
    if (*n > 0) (*sy)[*n - 1].next = (int32_t)*n;
    (*n)++;
    return 0;
}

static int word_symbols(const pb_tokenizer *t, const char *w, size_t len, wsym **sy, size_t *n, size_t *cap,
                        pb_err *err) {
    int pending_unk = -1; /* an unknown run not yet added (fuse_unk) */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int l = tok_utf8_valid_len((const unsigned char *)w + i, len - i, &cp);
        size_t cl = l ? (size_t)l : 1;
        int id = tok_map_get(t, &t->vocab, w + i, cl);
        if (id >= 0) {
            if (pending_unk >= 0) PB_TRY(wsym_add(sy, n, cap, pending_unk, err));
            pending_unk = -1;
            PB_TRY(wsym_add(sy, n, cap, id, err));
        } else {
            int bids[4], nb = 0;
            if (t->byte_fallback) {
                for (size_t k = 0; k < cl; k++) {
                    int b = t->byte_id[(uint8_t)w[i + k]];
                    if (b < 0) { nb = -1; break; }
                    bids[nb++] = b;
                }
            }
            if (t->byte_fallback && nb > 0) {
                /* as tokenizers 0.19 does, a pending unknown is only added later */
                for (int k = 0; k < nb; k++) PB_TRY(wsym_add(sy, n, cap, bids[k], err));
            } else if (t->unk >= 0) {
                if (pending_unk >= 0 && !t->fuse_unk) PB_TRY(wsym_add(sy, n, cap, pending_unk, err));
                pending_unk = t->unk;
            }
        }
        i += cl;
    }
    if (pending_unk >= 0) PB_TRY(wsym_add(sy, n, cap, pending_unk, err));
    return 0;
}

int tok_rank_word(const pb_tokenizer *t, const char *w, size_t len, tok_ids *out, pb_err *err) {
    if (len == 0) return 0;
    if (t->ignore_merges) {
        int id = tok_map_get(t, &t->vocab, w, len);
        if (id >= 0) return tok_ids_push(out, id, err);
    }
    wsym *sy = NULL;
    size_t n = 0, cap = 0;
    tok_heap h = {0};   /* key: merge rank (lowest first), pos: left symbol, a: merged id */
    int rc = word_symbols(t, w, len, &sy, &n, &cap, err);
    if (rc == 0 && n > (size_t)INT32_MAX) rc = pb_err_set(err, "tokenizer: word too long");
    uint32_t rank;
    int merged;
    /* Stretches end at a symbol that is in no merge: it never merges, no pair crosses it, and
     * each stretch reaches the result one global queue would. Keeps the queue small on long
     * words (a whole text for SentencePiece-like files). */
    for (size_t a = 0, b; rc == 0 && a < n; a = b + 1) {
        for (b = a; b + 1 < n && t->in_merge[sy[b].id]; b++) {}
        for (size_t i = a; rc == 0 && i < b; i++)
            if (merges_get(&t->merges, sy[i].id, sy[i + 1].id, &rank, &merged))
                rc = tok_heap_push(&h, (tok_cand){rank, (int32_t)i, merged, 0}, err);
        while (rc == 0 && h.n) {
            tok_cand top = tok_heap_pop(&h);
            wsym *s = &sy[top.pos];
            if (s->dead || s->next < 0) continue;
            wsym *r = &sy[s->next];
            /* skip entries made stale by an earlier merge */
            if (!merges_get(&t->merges, s->id, r->id, &rank, &merged) || merged != top.a) continue;
            s->id = top.a;
            r->dead = true;
            s->next = r->next;
            if (r->next >= 0) sy[r->next].prev = top.pos;
            if (s->prev >= 0 && merges_get(&t->merges, sy[s->prev].id, s->id, &rank, &merged))
                rc = tok_heap_push(&h, (tok_cand){rank, s->prev, merged, 0}, err);
            if (rc == 0 && s->next >= 0 && merges_get(&t->merges, s->id, sy[s->next].id, &rank, &merged))
                rc = tok_heap_push(&h, (tok_cand){rank, top.pos, merged, 0}, err);
        }
    }
    for (int32_t i = 0; rc == 0 && n && i >= 0; i = sy[i].next) rc = tok_ids_push(out, sy[i].id, err);
    free(sy);
    free(h.v);
    return rc;
}

/* ---- building a RANK tokenizer (shared by tokenizer.json and GGUF "gpt2" vocabs) ---- */

int tok_merge_add(pb_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, uint32_t rank, pb_err *err) {
    int ia = tok_map_get(t, &t->vocab, a, alen), ib = tok_map_get(t, &t->vocab, b, blen);
    if (ia < 0 || ib < 0)
        return pb_err_set(err, "%s: merge %u '%.*s %.*s' uses a token that is not in the vocabulary", t->path, rank,
                          (int)alen, a, (int)blen, b);
    if (alen + blen > t->max_piece_len)
        return pb_err_set(err, "%s: merge %u '%.*s %.*s' makes a token that is not in the vocabulary", t->path, rank,
                          (int)alen, a, (int)blen, b);
    char buf[1024], *cat = alen + blen <= sizeof buf ? buf : malloc(alen + blen);
    PB_CHECK_ALLOC(cat, err);
    memcpy(cat, a, alen);
    memcpy(cat + alen, b, blen);
    int im = tok_map_get(t, &t->vocab, cat, alen + blen);
    if (cat != buf) free(cat);
    if (im < 0)
        return pb_err_set(err, "%s: merge %u '%.*s %.*s' makes a token that is not in the vocabulary", t->path, rank,
                          (int)alen, a, (int)blen, b);
    tok_merges_put(&t->merges, ia, ib, rank, im);
    t->in_merge[ia] = t->in_merge[ib] = 1;
    return 0;
}

int tok_rank_finish(pb_tokenizer *t, pb_err *err) {
    tok_bytelevel_tables(t);
    if (t->byte_fallback) { /* HF looks bytes up as format!("<{:#04X}>") */
        for (int b = 0; b < 256; b++) {
            char s[8];
            snprintf(s, sizeof s, "<0x%02X>", b);
            t->byte_id[b] = tok_map_get(t, &t->vocab, s, 6);
            if (t->byte_id[b] >= 0 && t->kind == PB_TOK_SPM) t->type[t->byte_id[b]] = PB_TOKT_BYTE;
        }
    }
    for (int k = 0; k < t->n_added; k++) {
        tok_added *a = &t->added[k];
        if (!a->normalized) continue;
        t->has_normalized_added = true;
        tok_buf nb = {0};
        if (tok_normalize(t, a->s, a->len, &nb, err) != 0) { free(nb.v); return -1; }
        a->ns = pb_arena_strndup(&t->arena, nb.v ? nb.v : "", nb.n);
        a->nlen = (uint32_t)nb.n;
        free(nb.v);
        PB_CHECK_ALLOC(a->ns, err);
    }
    for (int k = 0; k < t->n_added; k++) {
        const tok_added *a = &t->added[k];
        if (a->len) t->added_first[0][(uint8_t)a->s[0]] |= !a->normalized;
        if (a->nlen) t->added_first[1][(uint8_t)a->ns[0]] |= a->normalized;
    }
    return 0;
}
