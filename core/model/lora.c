/* lora.c — LoRA adapters: creation with PEFT's initialisation, checks, merging. */
#include "lora.h"
#include "model.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const pb_lora_target_names[PB_LORA_N] = {"q", "k", "v", "o", "gate", "up", "down"};

int pb_lora_parse_targets(const char *s, unsigned *mask, pb_err *err) {
    *mask = 0;
    if (!s || !*s) return pb_err_set(err, "LoRA targets: empty list (choose from q,k,v,o,gate,up,down or all)");
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int found = -1;
        if (n == 3 && strncmp(p, "all", 3) == 0) {
            *mask |= (1u << PB_LORA_N) - 1;
            found = PB_LORA_N;
        }
        for (int t = 0; t < PB_LORA_N && found < 0; t++)
            if (strlen(pb_lora_target_names[t]) == n && strncmp(p, pb_lora_target_names[t], n) == 0) {
                *mask |= 1u << t;
                found = t;
            }
        if (found < 0)
            return pb_err_set(err, "LoRA targets: unknown target '%.*s' (choose from q,k,v,o,gate,up,down or all)",
                              (int)n, p);
        p += n;
        if (*p == ',') p++;
    }
    return 0;
}

/* The projection's (out, in) for target t of layer L, or 0, 0 when the layer lacks it. */
static void proj_shape(const pb_model *m, const pb_layer *L, pb_lora_target t, int *out, int *in) {
    int d = m->cfg.dim, q = L->n_heads * L->head_dim, kv = L->n_kv_heads * L->head_dim, f = L->ffn_dim;
    *out = *in = 0;
    bool attn = t <= PB_LORA_O;
    if (attn ? !L->has_attn : !L->has_mlp) return;
    switch (t) {
    case PB_LORA_Q: *out = q; *in = d; break;
    case PB_LORA_K: case PB_LORA_V: *out = kv; *in = d; break;
    case PB_LORA_O: *out = d; *in = q; break;
    case PB_LORA_GATE: case PB_LORA_UP: *out = f; *in = d; break;
    case PB_LORA_DOWN: *out = d; *in = f; break;
    default: break;
    }
}

int pb_lora_create(pb_lora **out, const pb_model *m, int rank, float alpha, float dropout, unsigned targets,
                   uint64_t seed, bool with_grads, pb_err *err) {
    *out = NULL;
    if (rank < 1) return pb_err_set(err, "LoRA: rank must be at least 1 (got %d)", rank);
    if (!(dropout >= 0.0f && dropout < 1.0f)) return pb_err_set(err, "LoRA: dropout must be in [0, 1) (got %g)", dropout);
    if (!(alpha > 0.0f) || !isfinite(alpha)) return pb_err_set(err, "LoRA: alpha must be positive (got %g)", alpha);
    if (!targets || targets >= (1u << PB_LORA_N)) return pb_err_set(err, "LoRA: no target projection chosen");
    pb_lora *l = calloc(1, sizeof *l);
    PB_CHECK_ALLOC(l, err);
    pb_arena_init(&l->arena, (size_t)1 << 20);
    l->rank = rank;
    l->alpha = alpha;
    l->dropout = dropout;
    l->scale = alpha / (float)rank;
    l->targets = targets;
    l->n_layers = m->cfg.n_layers;
    l->ad = pb_arena_alloc_n(&l->arena, (size_t)(l->n_layers ? l->n_layers : 1), sizeof *l->ad);
    if (!l->ad) goto oom;
    int64_t made = 0;
    for (int i = 0; i < l->n_layers; i++)
        for (int t = 0; t < PB_LORA_N; t++) {
            if (!(targets & (1u << t))) continue;
            pb_lora_pair *p = &l->ad[i][t];
            proj_shape(m, &m->layers[i], (pb_lora_target)t, &p->out, &p->in);
            if (!p->out || !p->in) { p->out = p->in = 0; continue; }
            size_t na = (size_t)rank * p->in, nb = (size_t)p->out * rank;
            p->A = pb_arena_alloc_n(&l->arena, na, sizeof(float));
            p->B = pb_arena_alloc_n(&l->arena, nb, sizeof(float));   /* zeroed */
            if (!p->A || !p->B) goto oom;
            if (with_grads) {
                p->dA = pb_arena_alloc_n(&l->arena, na, sizeof(float));
                p->dB = pb_arena_alloc_n(&l->arena, nb, sizeof(float));
                if (!p->dA || !p->dB) goto oom;
            }
            /* kaiming_uniform_(a=sqrt(5)) on (rank, in): bound = sqrt(6 / ((1 + 5) * in)) */
            double bound = 1.0 / sqrt((double)p->in);
            uint64_t st = pb_mix64(seed ^ pb_mix64(((uint64_t)i << 8) | (uint64_t)t));
            for (size_t j = 0; j < na; j++) p->A[j] = (float)((2.0 * pb_rng_uniform(&st) - 1.0) * bound);
            made++;
        }
    if (!made) {
        pb_lora_free(l);
        return pb_err_set(err, "LoRA: the model has none of the targeted projections");
    }
    *out = l;
    return 0;
oom:
    pb_lora_free(l);
    return pb_err_set(err, "LoRA: out of memory");
}

void pb_lora_free(pb_lora *l) {
    if (!l) return;
    pb_arena_free(&l->arena);
    free(l);
}

void pb_lora_zero_grad(pb_lora *l) {
    for (int i = 0; i < l->n_layers; i++)
        for (int t = 0; t < PB_LORA_N; t++) {
            pb_lora_pair *p = &l->ad[i][t];
            if (p->dA) memset(p->dA, 0, (size_t)l->rank * p->in * sizeof(float));
            if (p->dB) memset(p->dB, 0, (size_t)p->out * l->rank * sizeof(float));
        }
}

int64_t pb_lora_params(const pb_lora *l) {
    int64_t n = 0;
    for (int i = 0; i < l->n_layers; i++)
        for (int t = 0; t < PB_LORA_N; t++)
            if (l->ad[i][t].A) n += (int64_t)l->rank * (l->ad[i][t].in + l->ad[i][t].out);
    return n;
}

int pb_lora_check(const pb_lora *l, const pb_model *m, pb_err *err) {
    if (l->n_layers != m->cfg.n_layers)
        return pb_err_set(err, "LoRA: adapters for %d layers, the model has %d", l->n_layers, m->cfg.n_layers);
    for (int i = 0; i < l->n_layers; i++)
        for (int t = 0; t < PB_LORA_N; t++) {
            const pb_lora_pair *p = &l->ad[i][t];
            if (!p->A) continue;
            int out, in;
            proj_shape(m, &m->layers[i], (pb_lora_target)t, &out, &in);
            if (out != p->out || in != p->in)
                return pb_err_set(err, "LoRA: layer %d %s adapter is for a (%d, %d) projection, the model's is (%d, %d)",
                                  i, pb_lora_target_names[t], p->out, p->in, out, in);
        }
    return 0;
}

static float *proj_weight(pb_layer *L, pb_lora_target t) {
    switch (t) {
    case PB_LORA_Q: return L->wq;
    case PB_LORA_K: return L->wk;
    case PB_LORA_V: return L->wv;
    case PB_LORA_O: return L->wo;
    case PB_LORA_GATE: return L->w_gate;
    case PB_LORA_UP: return L->w_up;
    case PB_LORA_DOWN: return L->w_down;
    default: return NULL;
    }
}

void pb_lora_pair_merge(const pb_lora *l, const pb_lora_pair *p, float *W) {
    /* W (out, in) += scale * B (out, r) @ A (r, in) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->out, p->in, l->rank, l->scale, p->B, l->rank, p->A, p->in,
                1.0f, W, p->in);
}

int pb_lora_merge(pb_lora *l, pb_model *m, pb_err *err) {
    PB_TRY(pb_lora_check(l, m, err));
    for (int i = 0; i < l->n_layers; i++)
        for (int t = 0; t < PB_LORA_N; t++) {
            const pb_lora_pair *p = &l->ad[i][t];
            if (!p->A) continue;
            pb_lora_pair_merge(l, p, proj_weight(&m->layers[i], (pb_lora_target)t));
        }
    if (m->lora == l) m->lora = NULL;
    return 0;
}
