/* safetensors.c — validating safetensors reader and dtype conversions (see safetensors.h).
 *
 * Every size and offset in the header is checked against the file before any pointer into
 * the data is formed, so a truncated or hostile file gives one error line, never a crash. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integers in JSON arrive as doubles; beyond 2^53 they are no longer exact. */
#define PB_ST_MAX_JSON_INT 9007199254740992.0

static const char *const dtype_names[] = {"F32", "F16", "BF16"};
static const size_t dtype_sizes[] = {4, 2, 2};

const char *pb_st_dtype_name(pb_st_dtype d) { return dtype_names[d]; }
size_t pb_st_dtype_size(pb_st_dtype d) { return dtype_sizes[d]; }

static bool json_uint(const cJSON *j, size_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double v = j->valuedouble;
    if (!(v >= 0 && v < PB_ST_MAX_JSON_INT) || v != (double)(uint64_t)v) return false;
    if ((uint64_t)v > SIZE_MAX) return false;
    *out = (size_t)v;
    return true;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const pb_st_tensor *)a)->name, ((const pb_st_tensor *)b)->name);
}

static int cmp_begin(const void *a, const void *b) {
    const pb_st_tensor *x = *(const pb_st_tensor *const *)a, *y = *(const pb_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* Parses one header entry into t; data_size is the byte count after the header. */
static int parse_entry(pb_st_file *f, const cJSON *e, pb_st_tensor *t, size_t data_size, pb_err *err) {
    const char *path = f->path, *name = t->name;
    if (!cJSON_IsObject(e)) return pb_err_set(err, "%s: tensor %s: header entry is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return pb_err_set(err, "%s: tensor %s: missing or non-string \"dtype\"", path, name);
    if (!strcmp(dt->valuestring, "F32")) t->dtype = PB_ST_F32;
    else if (!strcmp(dt->valuestring, "F16")) t->dtype = PB_ST_F16;
    else if (!strcmp(dt->valuestring, "BF16")) t->dtype = PB_ST_BF16;
    else
        return pb_err_set(err, "%s: tensor %s has unsupported dtype %.32s (supported: F32, F16, BF16)", path, name,
                          dt->valuestring);
    if (!cJSON_IsArray(sh)) return pb_err_set(err, "%s: tensor %s: missing or non-array \"shape\"", path, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > PB_ST_MAX_DIMS) return pb_err_set(err, "%s: tensor %s has %d dimensions (at most %d supported)", path, name, nd, PB_ST_MAX_DIMS);
    t->ndim = nd;
    size_t numel = 1;
    for (int i = 0; i < nd; i++) {
        size_t d;
        if (!json_uint(cJSON_GetArrayItem(sh, i), &d) || d > INT64_MAX)
            return pb_err_set(err, "%s: tensor %s: shape[%d] is not a non-negative integer", path, name, i);
        t->shape[i] = (int64_t)d;
        if (!pb_mul_ok(numel, d, &numel)) return pb_err_set(err, "%s: tensor %s: shape overflows", path, name);
    }
    t->numel = numel;
    size_t b, en, bytes;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_uint(cJSON_GetArrayItem(off, 0), &b) ||
        !json_uint(cJSON_GetArrayItem(off, 1), &en))
        return pb_err_set(err, "%s: tensor %s: \"data_offsets\" is not a pair of non-negative integers", path, name);
    if (b > en || en > data_size)
        return pb_err_set(err, "%s: tensor %s: data_offsets [%zu, %zu) out of range (data section is %zu bytes)", path,
                          name, b, en, data_size);
    if (!pb_mul_ok(numel, dtype_sizes[t->dtype], &bytes))
        return pb_err_set(err, "%s: tensor %s: size overflows", path, name);
    if (en - b != bytes)
        return pb_err_set(err, "%s: tensor %s: data_offsets span %zu bytes but shape and dtype %s need %zu", path, name,
                          en - b, dtype_names[t->dtype], bytes);
    t->begin = b;
    t->end = en;
    t->data = f->map.data + f->data_start + b;
    return 0;
}

static int parse_header(pb_st_file *f, pb_err *err) {
    const char *path = f->path;
    size_t size = f->map.size;
    if (size < 8) return pb_err_set(err, "%s: truncated safetensors file (%zu bytes, need at least 8)", path, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->map.data[i]; /* little-endian, whatever the host */
    if (n > size - 8)
        return pb_err_set(err, "%s: header length %llu exceeds the file size (%zu bytes): truncated or not safetensors",
                          path, (unsigned long long)n, size);
    f->data_start = 8 + (size_t)n;
    size_t data_size = size - f->data_start;
    const char *hdr = (const char *)f->map.data + 8, *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, false);
    if (!root) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        return pb_err_set(err, "%s: malformed JSON header (near byte %zu of the %llu-byte header)", path, at,
                          (unsigned long long)n);
    }
    /* the spec allows trailing spaces as padding, nothing else */
    for (const char *p = end; p && p < hdr + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
            cJSON_Delete(root);
            return pb_err_set(err, "%s: malformed JSON header (trailing bytes after the object)", path);
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return pb_err_set(err, "%s: malformed JSON header (not an object)", path);
    }
    int count = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) count++;
    f->t = pb_arena_alloc_n(&f->arena, (size_t)(count ? count : 1), sizeof(pb_st_tensor));
    if (!f->t) { cJSON_Delete(root); return pb_err_set(err, "%s: out of memory", path); }
    int k = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) continue;
        pb_st_tensor *t = &f->t[k++];
        t->name = pb_arena_strdup(&f->arena, e->string);
        if (!t->name) { cJSON_Delete(root); return pb_err_set(err, "%s: out of memory", path); }
        if (parse_entry(f, e, t, data_size, err) != 0) { cJSON_Delete(root); return -1; }
    }
    cJSON_Delete(root);
    f->n = count;
    qsort(f->t, (size_t)count, sizeof *f->t, cmp_name);
    for (int i = 1; i < count; i++)
        if (!strcmp(f->t[i - 1].name, f->t[i].name))
            return pb_err_set(err, "%s: tensor %s appears twice in the header", path, f->t[i].name);

    /* overlap check on the non-empty tensors, in offset order */
    pb_st_tensor **by = malloc(sizeof *by * (size_t)(count ? count : 1));
    if (!by) return pb_err_set(err, "%s: out of memory", path);
    int m = 0;
    for (int i = 0; i < count; i++)
        if (f->t[i].end > f->t[i].begin) by[m++] = &f->t[i];
    qsort(by, (size_t)m, sizeof *by, cmp_begin);
    for (int i = 1; i < m; i++)
        if (by[i]->begin < by[i - 1]->end) {
            pb_err_set(err, "%s: tensors %s [%zu, %zu) and %s [%zu, %zu) overlap", path, by[i - 1]->name,
                       by[i - 1]->begin, by[i - 1]->end, by[i]->name, by[i]->begin, by[i]->end);
            free(by);
            return -1;
        }
    free(by);
    return 0;
}

int pb_st_open(pb_st_file *f, const char *path, pb_err *err) {
    memset(f, 0, sizeof *f);
    pb_arena_init(&f->arena, (size_t)64 << 10);
    f->path = strdup(path);
    if (!f->path) return pb_err_set(err, "out of memory");
    /* copy-on-write: slicing and other in-place edits of mapped tensors never reach the file */
    if (pb_mmap_open(&f->map, path, true, err) != 0 || parse_header(f, err) != 0) {
        pb_st_close(f);
        return -1;
    }
    return 0;
}

void pb_st_close(pb_st_file *f) {
    pb_mmap_close(&f->map);
    free(f->path);
    pb_arena_free(&f->arena);
    memset(f, 0, sizeof *f);
}

pb_st_tensor *pb_st_find(pb_st_file *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(f->t[mid].name, name);
        if (c == 0) return &f->t[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* Below this many elements, starting a parallel region costs more than it saves. */
#define PB_ST_PAR_MIN ((size_t)1 << 16)

void pb_st_to_f32(pb_st_dtype d, const uint8_t *src, float *dst, size_t n) {
    if (d == PB_ST_F32) {
        memcpy(dst, src, n * 4);
        return;
    }
    /* the source may be only 1-byte aligned (2-byte dtypes at odd offsets are legal) */
    long long nn = (long long)n;
    if (d == PB_ST_F16) {
#pragma omp parallel for schedule(static) if (n > PB_ST_PAR_MIN)
        for (long long i = 0; i < nn; i++) {
            uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
            dst[i] = pb_f16_to_f32(h);
        }
    } else {
#pragma omp parallel for schedule(static) if (n > PB_ST_PAR_MIN)
        for (long long i = 0; i < nn; i++) {
            uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
            dst[i] = pb_bf16_to_f32(h);
        }
    }
}

void pb_st_from_f32(pb_st_dtype d, const float *src, uint8_t *dst, size_t n) {
    if (d == PB_ST_F32) {
        memcpy(dst, src, n * 4);
        return;
    }
    long long nn = (long long)n;
    if (d == PB_ST_F16) {
#pragma omp parallel for schedule(static) if (n > PB_ST_PAR_MIN)
        for (long long i = 0; i < nn; i++) {
            uint16_t h = pb_f32_to_f16(src[i]);
            dst[2 * i] = (uint8_t)h;
            dst[2 * i + 1] = (uint8_t)(h >> 8);
        }
    } else {
#pragma omp parallel for schedule(static) if (n > PB_ST_PAR_MIN)
        for (long long i = 0; i < nn; i++) {
            uint16_t h = pb_f32_to_bf16(src[i]);
            dst[2 * i] = (uint8_t)h;
            dst[2 * i + 1] = (uint8_t)(h >> 8);
        }
    }
}
