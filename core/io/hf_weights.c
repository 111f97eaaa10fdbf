/* hf_weights.c — the safetensors files of an HF folder: one model.safetensors, or shards
 * listed by model.safetensors.index.json. Every shard is opened and validated up front, and
 * every tensor the index names must be in its shard. */
#include "hf_weights.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const pb_hf_index_entry *)a)->name, ((const pb_hf_index_entry *)b)->name);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A shard name must stay inside the folder. */
static bool plain_name(const char *s) {
    return s[0] && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int open_index(pb_hf_weights *w, const char *dir, pb_err *err) {
    const char *ip = w->index_path;
    char *text = NULL;
    size_t len = 0;
    PB_TRY(pb_file_read_all(ip, &text, &len, err));
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return pb_err_set(err, "%s: malformed JSON", ip);
    int rc = -1;
    char **names = NULL;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) { pb_err_set(err, "%s: missing or non-object \"weight_map\"", ip); goto done; }
    int n = cJSON_GetArraySize(wm);
    w->idx = pb_arena_alloc_n(&w->arena, (size_t)(n ? n : 1), sizeof *w->idx);
    names = pb_calloc((size_t)(n ? n : 1), sizeof *names);
    if (!w->idx || !names) { pb_err_set(err, "%s: out of memory", ip); goto done; }
    int k = 0;
    for (const cJSON *e = wm->child; e; e = e->next, k++) {
        if (!cJSON_IsString(e) || !plain_name(e->valuestring)) {
            pb_err_set(err, "%s: weight_map entry for %s is not a file name in this folder", ip, e->string);
            goto done;
        }
        w->idx[k].name = pb_arena_strdup(&w->arena, e->string);
        names[k] = pb_arena_strdup(&w->arena, e->valuestring);
        if (!w->idx[k].name || !names[k]) { pb_err_set(err, "%s: out of memory", ip); goto done; }
    }
    w->n_idx = n;
    /* distinct shard names, sorted */
    char **uniq = pb_arena_alloc_n(&w->arena, (size_t)(n ? n : 1), sizeof *uniq);
    if (!uniq) { pb_err_set(err, "%s: out of memory", ip); goto done; }
    memcpy(uniq, names, sizeof *names * (size_t)n);
    qsort(uniq, (size_t)n, sizeof *uniq, cmp_str);
    int nu = 0;
    for (int i = 0; i < n; i++)
        if (nu == 0 || strcmp(uniq[nu - 1], uniq[i])) uniq[nu++] = uniq[i];
    w->files = pb_calloc((size_t)(nu ? nu : 1), sizeof *w->files);
    if (!w->files) { pb_err_set(err, "%s: out of memory", ip); goto done; }
    for (int i = 0; i < nu; i++) {
        char *sp = pb_path_join(dir, uniq[i]);
        if (!sp) { pb_err_set(err, "out of memory"); goto done; }
        if (!pb_file_exists(sp)) {
            pb_err_set(err, "%s: shard %s does not exist", ip, uniq[i]);
            free(sp);
            goto done;
        }
        int r = pb_st_open(&w->files[i], sp, err);
        free(sp);
        if (r != 0) goto done;
        w->n_files++;
    }
    for (int i = 0; i < n; i++) {
        const char *key = names[i];
        char **hit = bsearch(&key, uniq, (size_t)nu, sizeof *uniq, cmp_str);
        w->idx[i].file = (int)(hit - uniq);
    }
    qsort(w->idx, (size_t)n, sizeof *w->idx, cmp_entry);
    for (int i = 0; i < n; i++) {
        if (i > 0 && !strcmp(w->idx[i - 1].name, w->idx[i].name)) {
            pb_err_set(err, "%s: tensor %s is listed twice in weight_map", ip, w->idx[i].name);
            goto done;
        }
        pb_st_file *f = &w->files[w->idx[i].file];
        if (!pb_st_find(f, w->idx[i].name)) {
            pb_err_set(err, "%s: tensor %s, listed in %s, is missing from this shard", f->path, w->idx[i].name,
                       PB_HF_INDEX_NAME);
            goto done;
        }
    }
    rc = 0;
done:
    free(names);
    cJSON_Delete(root);
    return rc;
}

int pb_hf_weights_open(pb_hf_weights *w, const char *dir, pb_err *err) {
    memset(w, 0, sizeof *w);
    pb_arena_init(&w->arena, (size_t)64 << 10);
    char *single = pb_path_join(dir, PB_HF_SINGLE_NAME);
    w->index_path = pb_path_join(dir, PB_HF_INDEX_NAME);
    if (!single || !w->index_path) {
        free(single);
        pb_hf_weights_close(w);
        return pb_err_set(err, "out of memory");
    }
    int rc;
    /* the single file wins when both exist, as in transformers */
    if (pb_file_exists(single)) {
        w->files = pb_calloc(1, sizeof *w->files);
        rc = w->files ? pb_st_open(&w->files[0], single, err) : pb_err_set(err, "out of memory");
        if (rc == 0) w->n_files = 1;
    } else if (pb_file_exists(w->index_path)) {
        w->sharded = true;
        rc = open_index(w, dir, err);
    } else {
        rc = pb_err_set(err, "%s: no %s or %s (only safetensors checkpoints are supported)", dir, PB_HF_SINGLE_NAME,
                        PB_HF_INDEX_NAME);
    }
    free(single);
    if (rc != 0) pb_hf_weights_close(w);
    return rc;
}

void pb_hf_weights_close(pb_hf_weights *w) {
    for (int i = 0; i < w->n_files; i++) pb_st_close(&w->files[i]);
    free(w->files);
    free(w->index_path);
    pb_arena_free(&w->arena);
    memset(w, 0, sizeof *w);
}

pb_st_tensor *pb_hf_weights_find(pb_hf_weights *w, const char *name, int *file) {
    if (!w->sharded) {
        *file = 0;
        return pb_st_find(&w->files[0], name);
    }
    pb_hf_index_entry key = {name, 0};
    pb_hf_index_entry *e = bsearch(&key, w->idx, (size_t)w->n_idx, sizeof *w->idx, cmp_entry);
    if (!e) return NULL;
    *file = e->file;
    return pb_st_find(&w->files[e->file], name);
}

const char *pb_hf_weights_where(const pb_hf_weights *w) {
    return w->sharded ? w->index_path : w->files[0].path;
}
