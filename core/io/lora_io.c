/* lora_io.c — LoRA adapters in PEFT's folder layout (adapter_config.json +
 * adapter_model.safetensors), so that adapters trained here load in PEFT and back. */
#include "lora.h"
#include "model.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const hf_module[PB_LORA_N] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                 "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                 "mlp.down_proj"};

static void tensor_name(char *buf, size_t cap, int layer, int t, char ab) {
    snprintf(buf, cap, "base_model.model.model.layers.%d.%s.lora_%c.weight", layer, hf_module[t], ab);
}

int pb_lora_save(const pb_lora *l, const char *dir, pb_err *err) {
    bool created;
    PB_TRY(pb_mkdir_p(dir, &created, err));
    int n = 0;
    for (int i = 0; i < l->n_layers; i++)
        for (int t = 0; t < PB_LORA_N; t++) n += l->ad[i][t].A ? 2 : 0;
    pb_st_out_tensor *ts = calloc((size_t)(n ? n : 1), sizeof *ts);
    char *names = calloc((size_t)(n ? n : 1), 96);
    char *st_path = pb_path_join(dir, "adapter_model.safetensors"), *cfg_path = pb_path_join(dir, "adapter_config.json");
    char *tmp = st_path ? malloc(strlen(st_path) + 32) : NULL;
    cJSON *cfg = cJSON_CreateObject();
    char *json = NULL;
    int rc = -1;
    if (!ts || !names || !st_path || !cfg_path || !tmp || !cfg) {
        pb_err_set(err, "%s: out of memory", dir);
        goto done;
    }
    int k = 0;
    for (int i = 0; i < l->n_layers; i++)
        for (int t = 0; t < PB_LORA_N; t++) {
            const pb_lora_pair *p = &l->ad[i][t];
            if (!p->A) continue;
            for (int ab = 0; ab < 2; ab++, k++) {
                char *nm = names + (size_t)k * 96;
                tensor_name(nm, 96, i, t, ab ? 'B' : 'A');
                ts[k] = (pb_st_out_tensor){nm, ab ? p->B : p->A, 2, {ab ? p->out : l->rank, ab ? l->rank : p->in},
                                           (size_t)l->rank * (ab ? p->out : p->in)};
            }
        }
    cJSON *tm = cJSON_AddArrayToObject(cfg, "target_modules");
    for (int t = 0; t < PB_LORA_N; t++)
        if (l->targets & (1u << t)) cJSON_AddItemToArray(tm, cJSON_CreateString(strchr(hf_module[t], '.') + 1));
    cJSON_AddStringToObject(cfg, "peft_type", "LORA");
    cJSON_AddStringToObject(cfg, "task_type", "CAUSAL_LM");
    cJSON_AddNumberToObject(cfg, "r", l->rank);
    cJSON_AddNumberToObject(cfg, "lora_alpha", l->alpha);
    cJSON_AddNumberToObject(cfg, "lora_dropout", l->dropout);
    cJSON_AddStringToObject(cfg, "bias", "none");
    cJSON_AddBoolToObject(cfg, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(cfg, "inference_mode", 1);
    json = cJSON_Print(cfg);
    if (!json) {
        pb_err_set(err, "%s: out of memory", dir);
        goto done;
    }
    /* weights first, then the config that describes them: each rename is atomic */
    snprintf(tmp, strlen(st_path) + 32, "%s.pbtmp%ld", st_path, (long)getpid());
    if (pb_st_write(tmp, ts, n, PB_ST_F32, err) != 0) goto done;
    if (rename(tmp, st_path) != 0) {
        unlink(tmp);
        pb_err_set(err, "%s: cannot rename into place", st_path);
        goto done;
    }
    if (pb_file_write_atomic(cfg_path, json, strlen(json), err) != 0) goto done;
    rc = 0;
done:
    free(ts);
    free(names);
    free(st_path);
    free(cfg_path);
    free(tmp);
    free(json);
    cJSON_Delete(cfg);
    return rc;
}

static int read_config(const char *path, int *rank, float *alpha, float *dropout, unsigned *targets, pb_err *err) {
    char *text;
    size_t len;
    PB_TRY(pb_file_read_all(path, &text, &len, err));
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return pb_err_set(err, "%s: not a JSON object", path);
    }
    int rc = -1;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "r"), *a = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "lora_dropout");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    if (!cJSON_IsNumber(r) || !cJSON_IsNumber(a)) {
        pb_err_set(err, "%s: \"r\" and \"lora_alpha\" must be numbers", path);
        goto done;
    }
    if (r->valuedouble < 1 || r->valuedouble > 65536 || r->valuedouble != (int)r->valuedouble) {
        pb_err_set(err, "%s: \"r\" must be a positive integer", path);
        goto done;
    }
    *rank = (int)r->valuedouble;
    *alpha = (float)a->valuedouble;
    *dropout = cJSON_IsNumber(d) ? (float)d->valuedouble : 0.0f;
    *targets = 0;
    if (!cJSON_IsArray(tm) || cJSON_GetArraySize(tm) == 0) {
        pb_err_set(err, "%s: \"target_modules\" must be a non-empty list", path);
        goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, tm) {
        int found = -1;
        for (int t = 0; t < PB_LORA_N && cJSON_IsString(it); t++)
            if (strcmp(it->valuestring, strchr(hf_module[t], '.') + 1) == 0) found = t;
        if (found < 0) {
            pb_err_set(err, "%s: unsupported target module %s (expected q_proj, k_proj, v_proj, o_proj, gate_proj, "
                       "up_proj, down_proj)", path, cJSON_IsString(it) ? it->valuestring : "(not a string)");
            goto done;
        }
        *targets |= 1u << found;
    }
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

int pb_lora_load(pb_lora **out, const pb_model *m, const char *dir, bool with_grads, pb_err *err) {
    *out = NULL;
    char *cfg_path = pb_path_join(dir, "adapter_config.json"), *st_path = pb_path_join(dir, "adapter_model.safetensors");
    pb_lora *l = NULL;
    pb_st_file f;
    bool opened = false;
    int rc = -1, rank = 0;
    float alpha = 0, dropout = 0;
    unsigned targets = 0;
    if (!cfg_path || !st_path) {
        pb_err_set(err, "%s: out of memory", dir);
        goto done;
    }
    if (read_config(cfg_path, &rank, &alpha, &dropout, &targets, err) != 0) goto done;
    if (pb_lora_create(&l, m, rank, alpha, dropout, targets, 0, with_grads, err) != 0) {
        pb_err_prefix(err, "%s: ", cfg_path);
        goto done;
    }
    if (pb_st_open(&f, st_path, err) != 0) goto done;
    opened = true;
    for (int i = 0; i < l->n_layers; i++)
        for (int t = 0; t < PB_LORA_N; t++) {
            pb_lora_pair *p = &l->ad[i][t];
            if (!p->A) continue;
            for (int ab = 0; ab < 2; ab++) {
                char nm[96];
                tensor_name(nm, sizeof nm, i, t, ab ? 'B' : 'A');
                pb_st_tensor *x = pb_st_find(&f, nm);
                int64_t r0 = ab ? p->out : rank, r1 = ab ? rank : p->in;
                if (!x) {
                    pb_err_set(err, "%s: missing tensor %s", st_path, nm);
                    goto done;
                }
                if (x->ndim != 2 || x->shape[0] != r0 || x->shape[1] != r1) {
                    pb_err_set(err, "%s: %s has %d dims (%lld, ...), expected (%lld, %lld) for this model", st_path,
                               nm, x->ndim, (long long)(x->ndim ? x->shape[0] : 0), (long long)r0, (long long)r1);
                    goto done;
                }
                x->used = true;
                pb_st_to_f32(x->dtype, x->data, ab ? p->B : p->A, x->numel);
            }
        }
    for (int i = 0; i < f.n; i++)
        if (!f.t[i].used) {
            pb_err_set(err, "%s: tensor %s does not belong to any adapter of this model", st_path, f.t[i].name);
            goto done;
        }
    *out = l;
    l = NULL;
    rc = 0;
done:
    if (opened) pb_st_close(&f);
    pb_lora_free(l);
    free(cfg_path);
    free(st_path);
    return rc;
}
