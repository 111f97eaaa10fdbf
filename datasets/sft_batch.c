/* sft_batch.c — the held-out split, the per-epoch order, and packing examples into
 * right-padded micro-batches with per-token targets.
 *
 * Orders must be the same on every machine and compiler, so the generator and the shuffle
 * are fixed here, exactly (a change of any step changes every run's data order; the tests
 * pin values):
 *   next():      splitmix64 (pb_rng_next in pb_base.h) — state += 0x9E3779B97F4A7C15; z = state;
 *                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
 *                return z ^ (z >> 31)                                   (all mod 2^64)
 *   below(m):    an unbiased draw in [0, m): with r = (2^64 - m) mod m, draw x = next() until
 *                x >= r, return x mod m (the accepted range [r, 2^64) holds a multiple of m values)
 *   permute(p):  Fisher-Yates: for i = n-1 down to 1: j = below(i + 1); swap p[i], p[j]
 *   split:       state = seed; permute the identity 0..n-1
 *   shuffle:     state = seed XOR (0xA0761D6478BD642F * (uint32(epoch) + 1)); permute idx in place.
 *                The multiplier is odd, so distinct epochs give distinct states, and the XOR
 *                term is never 0, so epoch orders differ from the split's stream. */
#include "sft.h"

#include <stdlib.h>
#include <string.h>

static uint64_t below(uint64_t *state, uint64_t m) {
    uint64_t r = (0 - m) % m, x;
    do x = pb_rng_next(state);   /* next() above */
    while (x < r);
    return x % m;
}

static void permute(int *p, int n, uint64_t state) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)below(&state, (uint64_t)i + 1);
        int t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

int pb_sft_split(int n, int val_size, uint64_t seed, int **train_idx, int *n_train, int **val_idx, int *n_val,
                 pb_err *err) {
    *train_idx = *val_idx = NULL;
    *n_train = *n_val = 0;
    if (n < 1) return pb_err_set(err, "split: no examples to split");
    if (val_size < 0 || val_size >= n)
        return pb_err_set(err, "split: validation size %d out of range for %d examples (0..%d, leaving one to train on)",
                          val_size, n, n - 1);
    int *p = malloc((size_t)n * sizeof *p);
    int *v = malloc((size_t)(val_size ? val_size : 1) * sizeof *v);
    if (!p || !v) {
        free(p);
        free(v);
        return pb_err_set(err, "split: out of memory for %d indices", n);
    }
    for (int i = 0; i < n; i++) p[i] = i;
    permute(p, n, seed);
    memcpy(v, p, (size_t)val_size * sizeof *v);
    memmove(p, p + val_size, (size_t)(n - val_size) * sizeof *p); /* the training part, in place */
    *train_idx = p;
    *n_train = n - val_size;
    *val_idx = v;
    *n_val = val_size;
    return 0;
}

void pb_sft_shuffle(int *idx, int n, uint64_t seed, int epoch) {
    if (!idx || n < 2) return;
    permute(idx, n, seed ^ (0xA0761D6478BD642Full * ((uint64_t)(uint32_t)epoch + 1)));
}

/* Row b of tokens and targets starts at b * T (the (B, T) layout, T the longest selected). */
int64_t pb_sft_pack(const pb_sft_set *s, const int *sel, int B, int pad_id, int32_t *tokens, int32_t *targets,
                    int *T) {
    int tm = 0;
    for (int b = 0; b < B; b++) {
        PB_ASSERT(sel[b] >= 0 && sel[b] < s->n);
        if (s->len[sel[b]] > tm) tm = s->len[sel[b]];
    }
    *T = tm;
    int64_t labelled = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *ids = s->ids + s->off[sel[b]];
        int len = s->len[sel[b]], np = s->n_prompt[sel[b]];
        int32_t *tok = tokens + (size_t)b * (size_t)tm, *tgt = targets + (size_t)b * (size_t)tm;
        for (int t = 0; t < tm; t++) {
            tok[t] = t < len ? ids[t] : pad_id;
            bool lab = t + 1 < len && t + 1 >= np;
            tgt[t] = lab ? ids[t + 1] : -1;
            labelled += lab;
        }
    }
    return labelled;
}
