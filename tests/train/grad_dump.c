/* grad_dump.c — test tool: the loss and gradients of a batch through pb_grad_run, written as
 * a safetensors file under Hugging Face / PEFT names, for test_grad_torch.py.
 *
 *   grad_dump MODEL IDS OUT.safetensors [--targets FILE] [--micro K] [--lora DIR]
 *             [--dropout-key N] [--lora-only] [--per-micro] [--norm tokens|micro] [--threads N]
 *
 * IDS and --targets: text "B T" then B*T ids (targets may be -1); without --targets the
 * targets are the next tokens. --micro K splits the B sequences into K equal micro-batches.
 * --lora loads a PEFT adapter (gradients for A and B are written as "...lora_A.weight");
 * --dropout-key turns on LoRA dropout with that key; --lora-only asks for no weight
 * gradient (frozen base). --per-micro asks for per-micro-batch gradients and writes their
 * sum (without a tied embedding's, which the driver refuses per micro-batch). Prints {"loss": L, "n": labelled positions} on stdout. Errors: one line, exit 1. */
#include "grad.h"
#include "load.h"
#include "lora.h"
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const layer_names[PB_G_COUNT] = {
    [PB_G_ATTN_NORM] = "input_layernorm.weight", [PB_G_Q] = "self_attn.q_proj.weight",
    [PB_G_K] = "self_attn.k_proj.weight", [PB_G_V] = "self_attn.v_proj.weight", [PB_G_O] = "self_attn.o_proj.weight",
    [PB_G_BQ] = "self_attn.q_proj.bias", [PB_G_BK] = "self_attn.k_proj.bias", [PB_G_BV] = "self_attn.v_proj.bias",
    [PB_G_BO] = "self_attn.o_proj.bias", [PB_G_MLP_NORM] = "post_attention_layernorm.weight",
    [PB_G_GATE] = "mlp.gate_proj.weight", [PB_G_UP] = "mlp.up_proj.weight", [PB_G_DOWN] = "mlp.down_proj.weight",
    [PB_G_BGATE] = "mlp.gate_proj.bias", [PB_G_BUP] = "mlp.up_proj.bias", [PB_G_BDOWN] = "mlp.down_proj.bias"};

typedef struct {
    char name[128];
    float *g;
    size_t n;
    int rows, cols;
} slot;

typedef struct {
    slot s[1024];
    int n;
} store;

/* Adds the event's gradient into the slot of its name (per-micro events sum up). */
static int collect(void *ctx, const pb_grad_event *ev, pb_err *err) {
    store *st = ctx;
    char name[128];
    if (ev->kind == PB_G_EMBED) snprintf(name, sizeof name, "model.embed_tokens.weight");
    else if (ev->kind == PB_G_LM_HEAD) snprintf(name, sizeof name, "lm_head.weight");
    else if (ev->kind == PB_G_FINAL_NORM) snprintf(name, sizeof name, "model.norm.weight");
    else if (ev->kind == PB_G_INPUT) snprintf(name, sizeof name, "input_grad.%d", ev->micro);
    else snprintf(name, sizeof name, "model.layers.%d.%s", ev->layer, layer_names[ev->kind]);
    size_t n = (size_t)ev->rows * ev->cols;
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->s[i].name, name) == 0) {
            for (size_t j = 0; j < n; j++) st->s[i].g[j] += ev->g[j];
            return 0;
        }
    if (st->n == 1024) return pb_err_set(err, "too many tensors");
    slot *s = &st->s[st->n++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->g = malloc(n * sizeof(float));
    if (!s->g) return pb_err_set(err, "out of memory");
    memcpy(s->g, ev->g, n * sizeof(float));
    s->n = n;
    s->rows = ev->rows;
    s->cols = ev->cols;
    return 0;
}

static int32_t *read_ids(const char *path, int *B, int *T, pb_err *err) {
    FILE *f = fopen(path, "r");
    if (!f) {
        pb_err_set(err, "cannot open %s", path);
        return NULL;
    }
    int32_t *ids = NULL;
    if (fscanf(f, "%d %d", B, T) != 2 || *B <= 0 || *T <= 0 || *B > 1024 || *T > 65536) {
        pb_err_set(err, "%s: bad header", path);
    } else if ((ids = malloc(sizeof(int32_t) * (size_t)*B * *T))) {
        for (int i = 0; i < *B * *T; i++)
            if (fscanf(f, "%d", &ids[i]) != 1) {
                pb_err_set(err, "%s: too short", path);
                free(ids);
                ids = NULL;
                break;
            }
    }
    fclose(f);
    return ids;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: grad_dump MODEL IDS OUT [options]\n");
        return 2;
    }
    const char *tpath = NULL, *lora_dir = NULL;
    int micro = 1, threads = 2;
    bool lora_only = false, per = false, have_key = false;
    uint64_t key = 0;
    pb_loss_norm norm = PB_LOSS_MEAN_TOKENS;
    for (int i = 4; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--lora-only")) lora_only = true;
        else if (!strcmp(a, "--per-micro")) per = true;
        else if (!v) { fprintf(stderr, "grad_dump: %s needs a value\n", a); return 2; }
        else if (!strcmp(a, "--targets")) tpath = argv[++i];
        else if (!strcmp(a, "--micro")) micro = atoi(argv[++i]);
        else if (!strcmp(a, "--lora")) lora_dir = argv[++i];
        else if (!strcmp(a, "--dropout-key")) { key = strtoull(argv[++i], NULL, 10); have_key = true; }
        else if (!strcmp(a, "--norm")) norm = !strcmp(argv[++i], "micro") ? PB_LOSS_MEAN_MICRO : PB_LOSS_MEAN_TOKENS;
        else if (!strcmp(a, "--threads")) threads = atoi(argv[++i]);
        else { fprintf(stderr, "grad_dump: unknown option %s\n", a); return 2; }
    }
    pb_set_threads(threads);
    pb_err err = {0};
    pb_model *m = NULL;
    pb_lora *lo = NULL;
    pb_grad_state *gs = NULL;
    int32_t *ids = NULL, *tg = NULL;
    store *st = calloc(1, sizeof *st);
    pb_batch *mb = NULL;
    int rc = 1, B, T;
    if (!st || pb_model_load(argv[1], NULL, &m, NULL, &err) != 0) goto out;
    if (!(ids = read_ids(argv[2], &B, &T, &err))) goto out;
    if (tpath) {
        int B2, T2;
        if (!(tg = read_ids(tpath, &B2, &T2, &err))) goto out;
        if (B2 != B || T2 != T) { pb_err_set(&err, "targets shape differs"); goto out; }
    } else {
        if (!(tg = malloc(sizeof(int32_t) * (size_t)B * T))) goto out;
        pb_batch_next_token(ids, B, T, tg);
    }
    if (micro < 1 || B % micro) { pb_err_set(&err, "--micro must divide B"); goto out; }
    if (lora_dir) {
        if (pb_lora_load(&lo, m, lora_dir, true, &err) != 0) goto out;
        m->lora = lo;
        lo->training = have_key;
        lo->dropout_key = key;
    }
    mb = calloc((size_t)micro, sizeof *mb);
    gs = pb_grad_state_new();
    if (!mb || !gs) { pb_err_set(&err, "out of memory"); goto out; }
    int bm = B / micro;
    for (int i = 0; i < micro; i++)
        mb[i] = (pb_batch){ids + (size_t)i * bm * T, tg + (size_t)i * bm * T, bm, T};
    pb_grad_opts o = {.want = lora_only ? 0 : PB_G_ALL_WEIGHTS | (1u << PB_G_INPUT), .consumer = collect, .ctx = st,
                      .per_micro_batch = per, .norm = norm};
    if (per && m->cfg.tied_embeddings) o.want &= ~((1u << PB_G_EMBED) | (1u << PB_G_LM_HEAD));  /* refused */
    double loss;
    int64_t n;
    if (pb_grad_run(m, gs, mb, micro, &o, &loss, &n, &err) != 0) goto out;

    /* LoRA gradients under PEFT's names */
    static const char *const mod[PB_LORA_N] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                               "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    int nt = st->n + (lo ? 2 * lo->n_layers * PB_LORA_N : 0);
    pb_st_out_tensor *ts = calloc((size_t)nt, sizeof *ts);
    char (*names)[128] = calloc((size_t)nt, 128);
    if (!ts || !names) { free(ts); free(names); goto out; }
    int k = 0;
    for (int i = 0; i < st->n; i++, k++)
        ts[k] = (pb_st_out_tensor){st->s[i].name, st->s[i].g, 2, {st->s[i].rows, st->s[i].cols}, st->s[i].n};
    for (int l = 0; lo && l < lo->n_layers; l++)
        for (int t = 0; t < PB_LORA_N; t++) {
            const pb_lora_pair *p = pb_lora_get(lo, l, (pb_lora_target)t);
            if (!p) continue;
            snprintf(names[k], 128, "base_model.model.model.layers.%d.%s.lora_A.weight", l, mod[t]);
            ts[k] = (pb_st_out_tensor){names[k], p->dA, 2, {lo->rank, p->in}, (size_t)lo->rank * p->in};
            k++;
            snprintf(names[k], 128, "base_model.model.model.layers.%d.%s.lora_B.weight", l, mod[t]);
            ts[k] = (pb_st_out_tensor){names[k], p->dB, 2, {p->out, lo->rank}, (size_t)lo->rank * p->out};
            k++;
        }
    int w = pb_st_write(argv[3], ts, k, PB_ST_F32, &err);
    free(ts);
    free(names);
    if (w != 0) goto out;
    printf("{\"loss\": %.17g, \"n\": %lld, \"state_bytes\": %zu}\n", loss, (long long)n, pb_grad_state_bytes(gs));
    rc = 0;
out:
    if (rc) fprintf(stderr, "grad_dump: error: %s\n", err.msg[0] ? err.msg : "out of memory");
    for (int i = 0; st && i < st->n; i++) free(st->s[i].g);
    free(st);
    free(mb);
    free(ids);
    free(tg);
    pb_grad_state_free(gs);
    pb_lora_free(lo);
    pb_model_free(m);
    return rc;
}
