/* dump_weights.c — test helper: loads a model with pb_model_load, prints what the loader
 * understood (config, per-layer shapes, how many tensors live in a memory map) as JSON on
 * stdout, and optionally writes every weight back with pb_hf_save so that a Python test
 * can compare them with the originals.
 *
 * usage: io_dump_weights MODEL [OUT_DIR [f32|f16|bf16 [MAX_SHARD_BYTES]]]
 *        io_dump_weights MODEL --logits ID...   (JSON {"logits": [[...] per position]}) */
#include "load.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int in_maps(const pb_model *m, const float *p, size_t n) {
    for (int i = 0; i < m->n_maps; i++) {
        const uint8_t *b = m->maps[i].data, *q = (const uint8_t *)p;
        if (q >= b && q + n * sizeof(float) <= b + m->maps[i].size) return 1;
    }
    return 0;
}

/* Counts tensors, and how many point into a map. */
static void count(const pb_model *m, const float *p, size_t n, int *total, int *mapped) {
    if (!p) return;
    (*total)++;
    *mapped += in_maps(m, p, n);
}

static cJSON *info(const pb_model *m) {
    const pb_config *c = &m->cfg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", m->format);
    cJSON_AddStringToObject(o, "arch", c->arch);
    cJSON_AddNumberToObject(o, "dim", c->dim);
    cJSON_AddNumberToObject(o, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "max_seq_len", c->max_seq_len);
    cJSON_AddNumberToObject(o, "norm_eps", c->norm_eps);
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(o, "rope_scaling_type", c->rope_scaling.type);
    cJSON_AddNumberToObject(o, "rope_factor", c->rope_scaling.factor);
    cJSON_AddNumberToObject(o, "rope_low_freq_factor", c->rope_scaling.low_freq_factor);
    cJSON_AddNumberToObject(o, "rope_high_freq_factor", c->rope_scaling.high_freq_factor);
    cJSON_AddNumberToObject(o, "rope_original_max_position", c->rope_scaling.original_max_position);
    cJSON_AddBoolToObject(o, "tied", c->tied_embeddings);
    cJSON_AddBoolToObject(o, "lm_head_is_tok_emb", m->lm_head == m->tok_emb);
    cJSON_AddNumberToObject(o, "bos_id", c->bos_id);
    cJSON_AddNumberToObject(o, "eos_id", c->eos_id);
    cJSON_AddNumberToObject(o, "n_maps", m->n_maps);
    int total = 0, mapped = 0;
    size_t d = (size_t)c->dim, v = (size_t)c->vocab_size;
    count(m, m->tok_emb, v * d, &total, &mapped);
    count(m, m->final_norm, d, &total, &mapped);
    if (m->lm_head != m->tok_emb) count(m, m->lm_head, v * d, &total, &mapped);
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int l = 0; l < c->n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        size_t q = (size_t)L->n_heads * L->head_dim, kv = (size_t)L->n_kv_heads * L->head_dim, f = L->ffn_dim;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "n_heads", L->n_heads);
        cJSON_AddNumberToObject(e, "n_kv_heads", L->n_kv_heads);
        cJSON_AddNumberToObject(e, "head_dim", L->head_dim);
        cJSON_AddNumberToObject(e, "ffn_dim", L->ffn_dim);
        cJSON_AddBoolToObject(e, "attn", L->has_attn);
        cJSON_AddBoolToObject(e, "mlp", L->has_mlp);
        const char *bn[] = {"q", "k", "v", "o", "gate", "up", "down"};
        const float *bp[] = {L->bq, L->bk, L->bv, L->bo, L->b_gate, L->b_up, L->b_down};
        size_t bl[] = {q, kv, kv, d, f, f, d};
        cJSON *b = cJSON_AddArrayToObject(e, "bias");
        for (int k = 0; k < 7; k++)
            if (bp[k]) {
                cJSON_AddItemToArray(b, cJSON_CreateString(bn[k]));
                count(m, bp[k], bl[k], &total, &mapped);
            }
        count(m, L->attn_norm, d, &total, &mapped);
        count(m, L->wq, q * d, &total, &mapped);
        count(m, L->wk, kv * d, &total, &mapped);
        count(m, L->wv, kv * d, &total, &mapped);
        count(m, L->wo, q * d, &total, &mapped);
        count(m, L->mlp_norm, d, &total, &mapped);
        count(m, L->w_gate, f * d, &total, &mapped);
        count(m, L->w_up, f * d, &total, &mapped);
        count(m, L->w_down, f * d, &total, &mapped);
        cJSON_AddItemToArray(layers, e);
    }
    cJSON_AddNumberToObject(o, "n_tensors", total);
    cJSON_AddNumberToObject(o, "n_mapped_tensors", mapped);
    return o;
}

/* Logits of one sequence through pb_model_forward: checks that what the loader built means
 * what transformers means by the same folder. */
static int logits(pb_model *m, int n, char **ids_txt) {
    pb_err err = {0};
    int V = m->cfg.vocab_size;
    int32_t *ids = malloc(sizeof *ids * (size_t)n);
    float *lg = malloc(sizeof *lg * (size_t)n * (size_t)V);
    pb_fwd_state *st = pb_fwd_state_new();
    int rc = 1;
    if (ids && lg && st) {
        for (int i = 0; i < n; i++) ids[i] = atoi(ids_txt[i]);
        if (pb_model_forward(m, st, ids, 1, n, NULL, lg, false, &err) == 0) {
            printf("{\"logits\": [");
            for (int t = 0; t < n; t++) {
                printf("%s[", t ? ", " : "");
                for (int v = 0; v < V; v++) printf("%s%.9g", v ? ", " : "", (double)lg[(size_t)t * V + v]);
                printf("]");
            }
            printf("]}\n");
            rc = 0;
        } else {
            fprintf(stderr, "io_dump_weights: error: %s\n", err.msg);
        }
    }
    pb_fwd_state_free(st);
    free(lg);
    free(ids);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [OUT_DIR [f32|f16|bf16 [MAX_SHARD_BYTES]]]\n", argv[0]);
        return 2;
    }
    pb_err err = {0};
    pb_model *m = NULL;
    if (pb_model_load(argv[1], NULL, &m, NULL, &err) != 0) {
        fprintf(stderr, "io_dump_weights: error: %s\n", err.msg);
        return 1;
    }
    if (argc >= 3 && !strcmp(argv[2], "--logits")) {
        int rc = logits(m, argc - 3, argv + 3);
        pb_model_free(m);
        return rc;
    }
    cJSON *o = info(m);
    char *s = cJSON_Print(o);
    if (s) puts(s);
    free(s);
    cJSON_Delete(o);
    int rc = 0;
    if (argc >= 3) {
        pb_save_opts so = {PB_DTYPE_F32, NULL, 0};
        if (argc >= 4) so.dtype = !strcmp(argv[3], "f16") ? PB_DTYPE_F16 : !strcmp(argv[3], "bf16") ? PB_DTYPE_BF16 : PB_DTYPE_F32;
        if (argc >= 5) so.max_shard_bytes = (size_t)strtoull(argv[4], NULL, 10);
        if (pb_hf_save(m, argv[2], &so, &err) != 0) {
            fprintf(stderr, "io_dump_weights: error: %s\n", err.msg);
            rc = 1;
        }
    }
    pb_model_free(m);
    return rc;
}
