/* checkpoint.c — the trainer's checkpoints: parameters and Adam moments in
 * OUT/checkpoint-STEP.safetensors, step/fingerprint/history in OUT/checkpoint.json.
 *
 * The tensor file is written and renamed into place first, then checkpoint.json (which
 * names it) is replaced atomically, then the previous tensor file is removed: a kill at
 * any moment leaves a checkpoint.json whose file exists and is complete. */
#include "safetensors.h"
#include "train_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *out_path(const pb_trainer *t, const char *name) { return pb_path_join(t->o->out_dir, name); }

static int write_json(const pb_trainer *t, const char *name, const cJSON *j, pb_err *err) {
    char *text = cJSON_Print(j), *path = out_path(t, name);
    int rc = -1;
    if (!text || !path) pb_err_set(err, "%s: out of memory", t->o->out_dir);
    else rc = pb_file_write_atomic(path, text, strlen(text), err);
    free(text);
    free(path);
    return rc;
}

int pb_ckpt_write_history(const pb_trainer *t, pb_err *err) { return write_json(t, "history.json", t->history, err); }

/* JSON numbers cannot be NaN or infinite: those are written as null. */
static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static double get_num(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

int pb_ckpt_save(pb_trainer *t, pb_err *err) {
    int n = 3 * t->n_ps, rc = -1;
    char fname[64], prev[64] = "";
    snprintf(fname, sizeof fname, "checkpoint-%lld.safetensors", (long long)t->step);
    pb_st_out_tensor *ts = calloc((size_t)n, sizeof *ts);
    char (*names)[24] = calloc((size_t)n, sizeof *names);
    char *path = out_path(t, fname), *tmp = path ? malloc(strlen(path) + 32) : NULL;
    char *jpath = out_path(t, "checkpoint.json");
    cJSON *j = cJSON_CreateObject();
    if (!ts || !names || !path || !tmp || !jpath || !j) {
        pb_err_set(err, "%s: out of memory", t->o->out_dir);
        goto done;
    }
    for (int i = 0; i < t->n_ps; i++) {
        const float *src[3] = {t->ps[i].p, t->ps[i].m, t->ps[i].v};
        for (int k = 0; k < 3; k++) {
            int x = 3 * i + k;
            snprintf(names[x], sizeof names[x], "%c.%d", "pmv"[k], i);
            ts[x] = (pb_st_out_tensor){names[x], src[k], 1, {(int64_t)t->ps[i].n, 0}, t->ps[i].n};
        }
    }
    /* the previous checkpoint's file, removed once the new one is in place */
    char *old = NULL;
    size_t olen;
    if (pb_file_exists(jpath) && pb_file_read_all(jpath, &old, &olen, NULL) == 0) {
        cJSON *oj = cJSON_Parse(old);
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(oj, "file");
        if (cJSON_IsString(f) && strlen(f->valuestring) < sizeof prev && strchr(f->valuestring, '/') == NULL)
            snprintf(prev, sizeof prev, "%s", f->valuestring);
        cJSON_Delete(oj);
        free(old);
    }
    snprintf(tmp, strlen(path) + 32, "%s.pbtmp%ld", path, (long)getpid());
    if (pb_st_write(tmp, ts, n, PB_ST_F32, err) != 0) goto done;
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        pb_err_set(err, "%s: cannot rename into place", path);
        goto done;
    }
    cJSON_AddStringToObject(j, "command", t->o->command);
    cJSON_AddNumberToObject(j, "step", (double)t->step);
    cJSON_AddStringToObject(j, "file", fname);
    add_num(j, "best_val", t->best_val);
    cJSON_AddNumberToObject(j, "best_step", (double)t->best_step);
    add_num(j, "val_before", t->val_before);
    add_num(j, "first_loss", t->first_loss);
    cJSON_AddItemToObject(j, "fingerprint", cJSON_Duplicate(t->fingerprint, 1));
    cJSON_AddItemToObject(j, "history", cJSON_Duplicate(t->history, 1));
    if (write_json(t, "checkpoint.json", j, err) != 0) goto done;
    if (prev[0] && strcmp(prev, fname) != 0) {
        char *pp = out_path(t, prev);
        if (pp) unlink(pp);
        free(pp);
    }
    rc = 0;
done:
    free(ts);
    free(names);
    free(path);
    free(tmp);
    free(jpath);
    cJSON_Delete(j);
    return rc;
}

/* The first key whose value differs between the saved and the current fingerprint. */
static int compare_fingerprints(const char *path, const cJSON *saved, const cJSON *now, pb_err *err) {
    const cJSON *it;
    cJSON_ArrayForEach(it, now) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(saved, it->string);
        if (s && cJSON_Compare(s, it, 1)) continue;
        char *a = s ? cJSON_PrintUnformatted(s) : NULL, *b = cJSON_PrintUnformatted(it);
        pb_err_set(err, "%s: cannot resume: %s was %s, now %s (use the same options, or another --out)", path,
                   it->string, a ? a : "(absent)", b ? b : "?");
        free(a);
        free(b);
        return -1;
    }
    return 0;
}

int pb_ckpt_load(pb_trainer *t, bool *found, pb_err *err) {
    *found = false;
    char *jpath = out_path(t, "checkpoint.json"), *text = NULL, *tpath = NULL;
    cJSON *j = NULL;
    pb_st_file f;
    bool opened = false;
    int rc = -1;
    size_t len;
    PB_CHECK_ALLOC(jpath, err);
    if (!pb_file_exists(jpath)) {
        free(jpath);
        return 0;
    }
    if (pb_file_read_all(jpath, &text, &len, err) != 0) goto done;
    j = cJSON_ParseWithLength(text, len);
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(j, "step"), *file = cJSON_GetObjectItemCaseSensitive(j, "file");
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(j, "fingerprint"), *hist = cJSON_GetObjectItemCaseSensitive(j, "history");
    if (!cJSON_IsObject(j) || !cJSON_IsNumber(step) || step->valuedouble < 0 || !cJSON_IsString(file) ||
        strchr(file->valuestring, '/') || !cJSON_IsObject(fp) || !cJSON_IsArray(hist)) {
        pb_err_set(err, "%s: not a prunebench checkpoint (step, file, fingerprint, history)", jpath);
        goto done;
    }
    if (compare_fingerprints(jpath, fp, t->fingerprint, err) != 0) goto done;
    if (!(tpath = out_path(t, file->valuestring))) {
        pb_err_set(err, "out of memory");
        goto done;
    }
    if (pb_st_open(&f, tpath, err) != 0) goto done;
    opened = true;
    for (int i = 0; i < t->n_ps; i++) {
        float *dst[3] = {t->ps[i].p, t->ps[i].m, t->ps[i].v};
        for (int k = 0; k < 3; k++) {
            char nm[24];
            snprintf(nm, sizeof nm, "%c.%d", "pmv"[k], i);
            pb_st_tensor *x = pb_st_find(&f, nm);
            if (!x || x->ndim != 1 || x->shape[0] != (int64_t)t->ps[i].n || x->dtype != PB_ST_F32) {
                pb_err_set(err, "%s: tensor %s is missing or has the wrong shape for this model", tpath, nm);
                goto done;
            }
            memcpy(dst[k], x->data, t->ps[i].n * sizeof(float));
        }
    }
    t->step = (int64_t)step->valuedouble;
    t->best_val = get_num(j, "best_val");
    t->best_step = (int64_t)(isfinite(get_num(j, "best_step")) ? get_num(j, "best_step") : -1);
    t->val_before = get_num(j, "val_before");
    t->first_loss = get_num(j, "first_loss");
    cJSON_Delete(t->history);
    t->history = cJSON_Duplicate(hist, 1);
    if (!t->history) {
        pb_err_set(err, "out of memory");
        goto done;
    }
    *found = true;
    rc = 0;
done:
    if (opened) pb_st_close(&f);
    cJSON_Delete(j);
    free(text);
    free(jpath);
    free(tpath);
    return rc;
}
