/* io_testutil.h — helpers for the core/io tests: random in-memory models with per-layer
 * shapes, exact model comparison (optionally through fp16/bf16 rounding), file helpers. */
#ifndef PB_IO_TESTUTIL_H
#define PB_IO_TESTUTIL_H

#include "load.h"
#include "pb_test.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    int n_heads, n_kv_heads, head_dim, ffn_dim; /* n_heads 0: no attention; ffn_dim 0: no MLP */
    const char *bias;                           /* subset of "qkvoGUD" (gate, up, down in capitals) */
} io_layer;

static uint64_t io_rng = 1;
/* xorshift64*, mapped to floats spanning many binades plus the values that exercise the
 * fp16/bf16 rounding paths (zero, -0, half subnormals, halfway cases, overflow to inf). */
static inline float io_rand(void) {
    io_rng ^= io_rng >> 12;
    io_rng ^= io_rng << 25;
    io_rng ^= io_rng >> 27;
    uint64_t r = io_rng * 2685821657736338717ull;
    switch (r & 63) {
    case 0: return 0.0f;
    case 1: return -0.0f;
    case 2: return 3e-6f;            /* fp16 subnormal */
    case 3: return 1.0f + 1.0f / 2048; /* fp16 tie: rounds to even (1.0) */
    case 4: return 1.0f + 3.0f / 2048; /* fp16 tie: rounds up */
    case 5: return 70000.0f;         /* fp16 overflow: inf */
    case 6: return -1e-30f;          /* fp16 underflow, bf16 keeps it */
    default: break;
    }
    double u = (double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0;
    return (float)ldexp(u, (int)((r >> 6) & 15) - 8);
}

static inline void io_fill(float *w, size_t n) { for (size_t i = 0; i < n; i++) w[i] = io_rand(); }

static inline float *io_alloc(pb_model *m, size_t n) {
    float *p = pb_arena_alloc_n(&m->arena, n, sizeof(float));
    REQUIRE(p, "out of memory");
    io_fill(p, n);
    return p;
}

static inline float *io_bias(pb_model *m, const char *spec, char c, int n) {
    return spec && strchr(spec, c) ? io_alloc(m, (size_t)n) : NULL;
}

static inline pb_model *io_build(const pb_config *cfg, const io_layer *layers, uint64_t seed) {
    pb_err err;
    pb_model *m;
    io_rng = seed * 0x9E3779B97F4A7C15ull + 1;
    REQUIRE(pb_model_create(&m, cfg, false, &err) == 0, "%s", err.msg);
    size_t d = (size_t)cfg->dim, V = (size_t)cfg->vocab_size;
    m->tok_emb = io_alloc(m, V * d);
    m->final_norm = io_alloc(m, d);
    m->lm_head = cfg->tied_embeddings ? m->tok_emb : io_alloc(m, V * d);
    for (int l = 0; l < cfg->n_layers; l++) {
        const io_layer *s = &layers[l];
        pb_layer *L = &m->layers[l];
        L->n_heads = s->n_heads, L->n_kv_heads = s->n_kv_heads, L->head_dim = s->head_dim, L->ffn_dim = s->ffn_dim;
        L->has_attn = s->n_heads > 0;
        L->has_mlp = s->ffn_dim > 0;
        REQUIRE(pb_model_alloc_layer(m, l, &err) == 0, "%s", err.msg);
        size_t q = (size_t)L->n_heads * L->head_dim, kv = (size_t)L->n_kv_heads * L->head_dim, f = (size_t)L->ffn_dim;
        if (L->has_attn) {
            io_fill(L->attn_norm, d), io_fill(L->wq, q * d), io_fill(L->wk, kv * d), io_fill(L->wv, kv * d);
            io_fill(L->wo, d * q);
            L->bq = io_bias(m, s->bias, 'q', (int)q), L->bk = io_bias(m, s->bias, 'k', (int)kv);
            L->bv = io_bias(m, s->bias, 'v', (int)kv), L->bo = io_bias(m, s->bias, 'o', (int)d);
        }
        if (L->has_mlp) {
            io_fill(L->mlp_norm, d), io_fill(L->w_gate, f * d), io_fill(L->w_up, f * d), io_fill(L->w_down, d * f);
            L->b_gate = io_bias(m, s->bias, 'G', (int)f), L->b_up = io_bias(m, s->bias, 'U', (int)f);
            L->b_down = io_bias(m, s->bias, 'D', (int)d);
        }
    }
    REQUIRE(pb_model_validate(m, &err) == 0, "%s", err.msg);
    return m;
}

/* What a value becomes after a save in dtype and a load: RNE rounding, exact widening. */
static inline float io_round(float x, pb_save_dtype dt) {
    if (dt == PB_DTYPE_F16) return pb_f16_to_f32(pb_f32_to_f16(x));
    if (dt == PB_DTYPE_BF16) return pb_bf16_to_f32(pb_f32_to_bf16(x));
    return x;
}

/* Tensor b must equal tensor a rounded through dt, bit for bit (both NULL is fine). */
static inline int io_same_tensor(const char *what, int layer, const float *a, const float *b, size_t n, pb_save_dtype dt) {
    if (!a || !b) {
        if (a != b) { fprintf(stderr, "layer %d %s: present in one model only\n", layer, what); return 1; }
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        float want = io_round(a[i], dt);
        if (memcmp(&want, &b[i], 4) != 0) {
            fprintf(stderr, "layer %d %s[%zu]: want %.9g (from %.9g), got %.9g\n", layer, what, i, (double)want,
                    (double)a[i], (double)b[i]);
            return 1;
        }
    }
    return 0;
}

/* Counts differences between a and b (b loaded from a saved in dt). */
static inline int io_same_model(const pb_model *a, const pb_model *b, pb_save_dtype dt) {
    const pb_config *x = &a->cfg, *y = &b->cfg;
    int bad = 0;
#define SAME(f) do { if (x->f != y->f) { fprintf(stderr, "cfg." #f " differs\n"); bad++; } } while (0)
    SAME(dim); SAME(n_layers); SAME(vocab_size); SAME(max_seq_len); SAME(norm_eps); SAME(rope_theta);
    SAME(rope_scaling.type); SAME(rope_scaling.factor); SAME(rope_scaling.low_freq_factor);
    SAME(rope_scaling.high_freq_factor); SAME(rope_scaling.original_max_position); SAME(tied_embeddings);
    SAME(bos_id); SAME(eos_id);
#undef SAME
    if (bad) return bad;
    size_t d = (size_t)x->dim, V = (size_t)x->vocab_size;
    bad += io_same_tensor("tok_emb", -1, a->tok_emb, b->tok_emb, V * d, dt);
    bad += io_same_tensor("final_norm", -1, a->final_norm, b->final_norm, d, dt);
    bad += io_same_tensor("lm_head", -1, a->lm_head, b->lm_head, V * d, dt);
    if ((a->lm_head == a->tok_emb) != (b->lm_head == b->tok_emb)) { fprintf(stderr, "tying differs\n"); bad++; }
    for (int l = 0; l < x->n_layers; l++) {
        const pb_layer *P = &a->layers[l], *Q = &b->layers[l];
        if (P->has_attn != Q->has_attn || P->has_mlp != Q->has_mlp || (P->has_attn && (P->n_heads != Q->n_heads ||
            P->n_kv_heads != Q->n_kv_heads || P->head_dim != Q->head_dim)) || (P->has_mlp && P->ffn_dim != Q->ffn_dim)) {
            fprintf(stderr, "layer %d: shape differs\n", l);
            bad++;
            continue;
        }
        size_t q = (size_t)P->n_heads * P->head_dim, kv = (size_t)P->n_kv_heads * P->head_dim, f = (size_t)P->ffn_dim;
        if (P->has_attn) {
            bad += io_same_tensor("attn_norm", l, P->attn_norm, Q->attn_norm, d, dt);
            bad += io_same_tensor("wq", l, P->wq, Q->wq, q * d, dt);
            bad += io_same_tensor("wk", l, P->wk, Q->wk, kv * d, dt);
            bad += io_same_tensor("wv", l, P->wv, Q->wv, kv * d, dt);
            bad += io_same_tensor("wo", l, P->wo, Q->wo, d * q, dt);
            bad += io_same_tensor("bq", l, P->bq, Q->bq, q, dt);
            bad += io_same_tensor("bk", l, P->bk, Q->bk, kv, dt);
            bad += io_same_tensor("bv", l, P->bv, Q->bv, kv, dt);
            bad += io_same_tensor("bo", l, P->bo, Q->bo, d, dt);
        }
        if (P->has_mlp) {
            bad += io_same_tensor("mlp_norm", l, P->mlp_norm, Q->mlp_norm, d, dt);
            bad += io_same_tensor("w_gate", l, P->w_gate, Q->w_gate, f * d, dt);
            bad += io_same_tensor("w_up", l, P->w_up, Q->w_up, f * d, dt);
            bad += io_same_tensor("w_down", l, P->w_down, Q->w_down, d * f, dt);
            bad += io_same_tensor("b_gate", l, P->b_gate, Q->b_gate, f, dt);
            bad += io_same_tensor("b_up", l, P->b_up, Q->b_up, f, dt);
            bad += io_same_tensor("b_down", l, P->b_down, Q->b_down, d, dt);
        }
    }
    return bad;
}

/* True when [p, p+n floats) lies inside one of m's memory maps. */
static inline bool io_in_maps(const pb_model *m, const float *p, size_t n) {
    for (int i = 0; i < m->n_maps; i++) {
        const uint8_t *b = m->maps[i].data, *q = (const uint8_t *)p;
        if (q >= b && q + n * sizeof(float) <= b + m->maps[i].size) return true;
    }
    return false;
}

/* buf = a/b; the test stops when that does not fit. */
static inline void io_join(char *buf, size_t cap, const char *a, const char *b) {
    int n = snprintf(buf, cap, "%s/%s", a, b);
    REQUIRE(n >= 0 && (size_t)n < cap, "path too long: %s/%s", a, b);
}

static inline void io_rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { unlink(dir); return; }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[4096];
        io_join(p, sizeof p, dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) io_rm_rf(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* A fresh empty directory PB_TMP/name (path in buf). */
static inline const char *io_fresh_dir(char *buf, size_t cap, const char *name) {
    io_join(buf, cap, pb_test_tmp(), name);
    io_rm_rf(buf);
    REQUIRE(mkdir(buf, 0777) == 0, "cannot create %s", buf);
    return buf;
}

static inline void io_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "cannot create %s", path);
    REQUIRE(fwrite(data, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

#endif
