/* memo.c — the score memo (pb_prune_memo, prune.h): entries keyed by a string that names
 * everything a score depends on, owned by the memo, and counters of reuse.
 *
 * Entries sit in a flat array searched by strcmp: a sweep keeps a handful (one per method and
 * criterion, one per importance granularity), and each holds scores, not weights, so memory
 * and lookup time do not matter next to the passes they save.
 *
 * The key is built from the options by pb_prune_memo_key. Its strings are length-prefixed
 * ("6:taylor"), so that no value can imitate a field boundary, and the calibration windows
 * enter through their source, shape and a pb_mix64 hash of every id: two sets of windows that
 * differ in one token do not share scores. */
#include "prune_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key;
    void *value;
    void (*free_fn)(void *);
} memo_entry;

struct pb_prune_memo {
    memo_entry *e;
    int n, cap;
    int hits, misses;
};

pb_prune_memo *pb_prune_memo_new(void) { return calloc(1, sizeof(pb_prune_memo)); }

void pb_prune_memo_free(pb_prune_memo *memo) {
    if (!memo) return;
    for (int i = 0; i < memo->n; i++) {
        if (memo->e[i].free_fn) memo->e[i].free_fn(memo->e[i].value);
        free(memo->e[i].key);
    }
    free(memo->e);
    free(memo);
}

void pb_prune_memo_stats(const pb_prune_memo *memo, int *hits, int *misses) {
    if (hits) *hits = memo ? memo->hits : 0;
    if (misses) *misses = memo ? memo->misses : 0;
}

void pb_prune_memo_tally(pb_prune_memo *memo, int hits, int misses) {
    if (!memo) return;
    memo->hits += hits;
    memo->misses += misses;
}

static memo_entry *find(pb_prune_memo *memo, const char *key) {
    for (int i = 0; memo && key && i < memo->n; i++)
        if (strcmp(memo->e[i].key, key) == 0) return &memo->e[i];
    return NULL;
}

void *pb_prune_memo_get(pb_prune_memo *memo, const char *key) {
    memo_entry *e = find(memo, key);
    return e ? e->value : NULL;
}

int pb_prune_memo_put(pb_prune_memo *memo, const char *key, void *value, void (*free_fn)(void *), pb_err *err) {
    if (!memo || !key) {
        if (free_fn) free_fn(value);
        return pb_err_set(err, "prune: internal: score memo entry without a memo or a key");
    }
    memo_entry *e = find(memo, key);
    if (e) { /* replaced: the old value goes */
        if (e->value != value && e->free_fn) e->free_fn(e->value);
        e->value = value;
        e->free_fn = free_fn;
        return 0;
    }
    char *k = strdup(key);
    if (k && memo->n == memo->cap) {
        int cap = memo->cap ? 2 * memo->cap : 8;
        memo_entry *grown = realloc(memo->e, sizeof *grown * (size_t)cap);
        if (grown) memo->e = grown, memo->cap = cap;
    }
    if (!k || memo->n == memo->cap) {
        free(k);
        if (free_fn) free_fn(value);
        return pb_err_set(err, "prune: out of memory for the score memo");
    }
    memo->e[memo->n++] = (memo_entry){k, value, free_fn};
    return 0;
}

/* ---- keys --------------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t cap, len;
    bool ok;
} keybuf;

static void addf(keybuf *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(keybuf *k, const char *fmt, ...) {
    if (!k->ok) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(k->buf + k->len, k->cap - k->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= k->cap - k->len) k->ok = false;
    else k->len += (size_t)n;
}

/* "|name=LEN:value", or "|name=-" for NULL */
static void add_str(keybuf *k, const char *name, const char *v) {
    if (v) addf(k, "|%s=%zu:%s", name, strlen(v), v);
    else addf(k, "|%s=-", name);
}

uint64_t pb_calib_fingerprint(const pb_calib *c) {
    if (!c) return 0;
    uint64_t h = pb_mix64(((uint64_t)(uint32_t)c->n << 32) | (uint32_t)c->T);
    size_t n = c->ids && c->n > 0 && c->T > 0 ? (size_t)c->n * (size_t)c->T : 0;
    for (size_t i = 0; i < n; i++) h = pb_mix64(h ^ (uint32_t)c->ids[i]) + i;
    return h;
}

int pb_prune_memo_key(const pb_prune_opts *o, const char *what, char *buf, size_t cap) {
    if (!buf || cap == 0) return -1;
    keybuf k = {buf, cap, 0, true};
    buf[0] = 0;
    add_str(&k, "what", what);
    add_str(&k, "method", o->method);
    add_str(&k, "criterion", o->criterion);
    addf(&k, "|granularity=%d|joint=%d|layers=%d:%d", (int)o->granularity, (int)o->module_joint, o->layer_start,
         o->layer_end);
    add_str(&k, "aggregation", o->aggregation);
    add_str(&k, "structure", o->structure);
    add_str(&k, "metric", o->metric);
    addf(&k, "|seed=%llu", (unsigned long long)o->seed);
    if (o->calib) {
        add_str(&k, "calib", o->calib->source);
        addf(&k, "|n=%d|T=%d|ids=%016llx", o->calib->n, o->calib->T,
             (unsigned long long)pb_calib_fingerprint(o->calib));
    } else {
        addf(&k, "|calib=none");
    }
    return k.ok ? 0 : -1;
}

/* ---- scores as memo values ----------------------------------------------------------------- */

bool pb_scores_fit(const pb_scores *s, const pb_model *m) {
    if (!s || s->n_layers != m->cfg.n_layers || !s->count || !s->score) return false;
    for (int l = 0; l < s->n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        int want = s->kind == PB_S_HEAD ? (L->has_attn ? L->n_kv_heads : 0)
                 : s->kind == PB_S_CHANNEL ? (L->has_mlp ? L->ffn_dim : 0) : 1;
        if (s->count[l] != want || !s->score[l]) return false;
    }
    return true;
}

int pb_scores_copy(pb_scores *dst, const pb_scores *src, pb_err *err) {
    memset(dst, 0, sizeof *dst);
    int L = src->n_layers;
    dst->kind = src->kind;
    dst->n_layers = L;
    dst->count = calloc((size_t)(L ? L : 1), sizeof(int));
    dst->score = calloc((size_t)(L ? L : 1), sizeof(double *));
    bool ok = dst->count && dst->score;
    for (int l = 0; ok && l < L; l++) {
        int c = src->count[l];
        dst->count[l] = c;
        ok = (dst->score[l] = malloc(sizeof(double) * (size_t)(c ? c : 1))) != NULL;
        if (ok) memcpy(dst->score[l], src->score[l], sizeof(double) * (size_t)(c ? c : 1));
    }
    if (ok) return 0;
    pb_scores_free(dst);
    return pb_err_set(err, "importance: out of memory");
}

void pb_scores_free_heap(void *s) {
    if (!s) return;
    pb_scores_free(s);
    free(s);
}
