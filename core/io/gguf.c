/* gguf.c — GGUF v2/v3 parsing and validation (see gguf.h).
 *
 * The file is untrusted: every length and count is checked against the bytes that remain
 * before it is used, so a cut-short or corrupted file gives one error line naming the file
 * and the place, never a read past the map. Layout (little-endian throughout):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv, n_kv x (string key, u32 type, value),
 *   n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset),
 *   padding to general.alignment, then the data section the offsets point into. */
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader decodes little-endian fields by memcpy and needs a little-endian host"
#endif

/* ---- ggml type table: block size (elements) and bytes per block ---------------------- */

typedef struct { const char *name; uint32_t blck, size; } ggml_type_info;

static const ggml_type_info TYPES[] = {
    [0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},         [2] = {"Q4_0", 32, 18},     [3] = {"Q4_1", 32, 20},
    [6] = {"Q5_0", 32, 22},     [7] = {"Q5_1", 32, 24},      [8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 40},
    [10] = {"Q2_K", 256, 84},   [11] = {"Q3_K", 256, 110},   [12] = {"Q4_K", 256, 144},  [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292},   [16] = {"IQ2_XXS", 256, 66}, [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},  [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110},
    [22] = {"IQ2_S", 256, 82},  [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},        [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},        [28] = {"F64", 1, 8},       [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},      [34] = {"TQ1_0", 256, 54},   [35] = {"TQ2_0", 256, 66},  [39] = {"MXFP4", 32, 17},
};
#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

const char *pb_gguf_type_name(uint32_t t) { return t < N_TYPES ? TYPES[t].name : NULL; }

static const char *const VTYPE_NAMES[PB_GGUF_N_VTYPES] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                          "bool", "string", "array", "u64", "i64", "f64"};
static const uint8_t VTYPE_SIZE[PB_GGUF_N_VTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *pb_gguf_vtype_name(uint32_t t) { return t < PB_GGUF_N_VTYPES ? VTYPE_NAMES[t] : "unknown"; }

bool pb_gguf_vtype_is_int(uint32_t t) {
    return t <= PB_GGUF_I32 || t == PB_GGUF_U64 || t == PB_GGUF_I64;
}

/* ---- bounded reader ------------------------------------------------------------------ */

typedef struct {
    const char *path;
    const uint8_t *d;
    size_t size, pos;
    char place[256]; /* "metadata key 3 (general.name)": where an error is reported */
    pb_err *err;
} reader;

static int past_end(reader *r, const char *what, uint64_t need) {
    return pb_err_set(r->err, "%s: %s: %s runs past end of file (%llu bytes needed at offset %zu, file size %zu)",
                      r->path, r->place, what, (unsigned long long)need, r->pos, r->size);
}

static int rd_bytes(reader *r, uint64_t n, const char *what, const uint8_t **out) {
    if (n > r->size - r->pos) return past_end(r, what, n);
    *out = r->d + r->pos;
    r->pos += (size_t)n;
    return 0;
}

static int rd_u32(reader *r, const char *what, uint32_t *v) {
    const uint8_t *p = NULL;
    PB_TRY(rd_bytes(r, 4, what, &p));
    memcpy(v, p, 4);
    return 0;
}

static int rd_u64(reader *r, const char *what, uint64_t *v) {
    const uint8_t *p = NULL;
    PB_TRY(rd_bytes(r, 8, what, &p));
    memcpy(v, p, 8);
    return 0;
}

/* A length-prefixed string; what names it in errors ("key", "string value"). */
static int rd_str(reader *r, const char *what, const uint8_t **s, uint64_t *len) {
    char buf[96];
    snprintf(buf, sizeof buf, "%s length", what);
    PB_TRY(rd_u64(r, buf, len));
    if (*len > r->size - r->pos)
        return pb_err_set(r->err, "%s: %s: %s of %llu bytes runs past end of file (offset %zu, file size %zu)",
                          r->path, r->place, what, (unsigned long long)*len, r->pos, r->size);
    *s = r->d + r->pos;
    r->pos += (size_t)*len;
    return 0;
}

/* One scalar or string metadata value of type t. */
static int rd_value(reader *r, uint32_t t) {
    const uint8_t *p = NULL;
    if (t == PB_GGUF_STRING) {
        uint64_t len;
        return rd_str(r, "string value", &p, &len);
    }
    if (t >= PB_GGUF_N_VTYPES) return pb_err_set(r->err, "%s: %s: unknown value type %u", r->path, r->place, t);
    char what[32];
    snprintf(what, sizeof what, "%s value", VTYPE_NAMES[t]);
    return rd_bytes(r, VTYPE_SIZE[t], what, &p);
}

static int rd_kv(reader *r, pb_gguf *g, size_t i) {
    pb_gguf_kv *kv = &g->kv[i];
    snprintf(r->place, sizeof r->place, "metadata key %zu", i);
    const uint8_t *ks;
    uint64_t klen;
    PB_TRY(rd_str(r, "key", &ks, &klen));
    kv->key = pb_arena_strndup(&g->arena, (const char *)ks, (size_t)klen);
    PB_CHECK_ALLOC(kv->key, r->err);
    snprintf(r->place, sizeof r->place, "metadata key %zu (%.200s)", i, kv->key);
    PB_TRY(rd_u32(r, "value type", &kv->type));
    kv->count = 1;
    if (kv->type != PB_GGUF_ARRAY) {
        kv->val = r->d + r->pos;
        return rd_value(r, kv->type);
    }
    PB_TRY(rd_u32(r, "array element type", &kv->elem_type));
    PB_TRY(rd_u64(r, "array length", &kv->count));
    uint32_t et = kv->elem_type;
    if (et >= PB_GGUF_N_VTYPES || et == PB_GGUF_ARRAY)
        return pb_err_set(r->err, "%s: %s: %s array element type %u", r->path, r->place,
                          et == PB_GGUF_ARRAY ? "unsupported nested" : "unknown", et);
    kv->val = r->d + r->pos;
    size_t left = r->size - r->pos;
    /* each string needs at least its 8-byte length: reject absurd counts before walking */
    uint64_t min_each = et == PB_GGUF_STRING ? 8 : VTYPE_SIZE[et];
    if (kv->count > left / min_each)
        return pb_err_set(r->err, "%s: %s: array of %llu %s runs past end of file (offset %zu, file size %zu)",
                          r->path, r->place, (unsigned long long)kv->count,
                          et == PB_GGUF_STRING ? "strings" : VTYPE_NAMES[et], r->pos, r->size);
    if (et != PB_GGUF_STRING) {
        r->pos += (size_t)(kv->count * min_each);
        return 0;
    }
    for (uint64_t j = 0; j < kv->count; j++) {
        uint64_t len;
        if (r->size - r->pos < 8 || (memcpy(&len, r->d + r->pos, 8), len > r->size - r->pos - 8))
            return pb_err_set(r->err, "%s: %s: string %llu of %llu runs past end of file (offset %zu, file size %zu)",
                              r->path, r->place, (unsigned long long)j, (unsigned long long)kv->count, r->pos,
                              r->size);
        r->pos += 8 + (size_t)len;
    }
    return 0;
}

static int rd_tensor_info(reader *r, pb_gguf *g, size_t i) {
    pb_gguf_tensor *t = &g->tensors[i];
    snprintf(r->place, sizeof r->place, "tensor info %zu", i);
    const uint8_t *ns;
    uint64_t nlen;
    PB_TRY(rd_str(r, "tensor name", &ns, &nlen));
    t->name = pb_arena_strndup(&g->arena, (const char *)ns, (size_t)nlen);
    PB_CHECK_ALLOC(t->name, r->err);
    snprintf(r->place, sizeof r->place, "tensor info %zu (%.200s)", i, t->name);
    PB_TRY(rd_u32(r, "dimension count", &t->n_dims));
    if (t->n_dims < 1 || t->n_dims > 4)
        return pb_err_set(r->err, "%s: %s: %u dimensions (1 to 4 supported)", r->path, r->place, t->n_dims);
    uint64_t n = 1;
    bool overflow = false;
    for (uint32_t j = 0; j < 4; j++) t->ne[j] = 1;
    for (uint32_t j = 0; j < t->n_dims; j++) {
        PB_TRY(rd_u64(r, "dimension", &t->ne[j]));
        if (t->ne[j] != 0 && n > (uint64_t)INT64_MAX / t->ne[j]) overflow = true;
        else n *= t->ne[j];
    }
    if (overflow)
        return pb_err_set(r->err, "%s: %s: dimensions [%llu, %llu, %llu, %llu] overflow", r->path, r->place,
                          (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                          (unsigned long long)t->ne[3]);
    PB_TRY(rd_u32(r, "tensor type", &t->type));
    const char *tn = pb_gguf_type_name(t->type);
    if (!tn) return pb_err_set(r->err, "%s: %s: unknown ggml tensor type %u", r->path, r->place, t->type);
    const ggml_type_info *ti = &TYPES[t->type];
    if (t->ne[0] % ti->blck)
        return pb_err_set(r->err, "%s: %s: row of %llu elements is not a multiple of the %s block size %u", r->path,
                          r->place, (unsigned long long)t->ne[0], tn, ti->blck);
    uint64_t nb = n / ti->blck;
    if (nb > (uint64_t)SIZE_MAX / ti->size || n > SIZE_MAX)
        return pb_err_set(r->err, "%s: %s: tensor of %llu elements is too large", r->path, r->place,
                          (unsigned long long)n);
    t->n_elems = (size_t)n;
    t->n_bytes = (size_t)(nb * ti->size);
    return rd_u64(r, "tensor offset", &t->offset);
}

/* ---- duplicate names and overlapping data --------------------------------------------- */

static int cmp_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Rejects a repeated name among n records whose first member is the name (pb_gguf_kv.key,
 * pb_gguf_tensor.name); sorting keeps this O(n log n) for files with millions of entries. */
static int check_unique(reader *r, const void *recs, size_t n, size_t stride, const char *what) {
    if (n < 2) return 0;
    const char **names = malloc(n * sizeof *names);
    PB_CHECK_ALLOC(names, r->err);
    for (size_t i = 0; i < n; i++) memcpy(&names[i], (const uint8_t *)recs + i * stride, sizeof names[i]);
    qsort(names, n, sizeof *names, cmp_name);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++)
        if (!strcmp(names[i - 1], names[i]))
            rc = pb_err_set(r->err, "%s: %s %.200s appears twice", r->path, what, names[i]);
    free(names);
    return rc;
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const pb_gguf_tensor *x = *(const pb_gguf_tensor *const *)a, *y = *(const pb_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int check_layout(reader *r, pb_gguf *g) {
    if (g->n_tensors == 0) return 0;
    size_t avail = g->data_start <= r->size ? r->size - g->data_start : 0;
    if (g->data_start > r->size)
        return pb_err_set(r->err, "%s: tensor data section starts at offset %zu, past end of file (size %zu)",
                          r->path, g->data_start, r->size);
    pb_gguf_tensor **ix = malloc(g->n_tensors * sizeof *ix);
    PB_CHECK_ALLOC(ix, r->err);
    int rc = 0;
    for (size_t i = 0; i < g->n_tensors && rc == 0; i++) {
        pb_gguf_tensor *t = &g->tensors[i];
        ix[i] = t;
        if (t->offset % g->alignment)
            rc = pb_err_set(r->err, "%s: tensor %zu (%s): data offset %llu is not a multiple of the alignment %zu",
                            r->path, i, t->name, (unsigned long long)t->offset, g->alignment);
        else if (t->offset > avail || t->n_bytes > avail - t->offset)
            rc = pb_err_set(r->err, "%s: tensor %zu (%s): data [%llu, +%zu) runs past end of file (data section "
                            "has %zu bytes)", r->path, i, t->name, (unsigned long long)t->offset, t->n_bytes, avail);
        else
            t->data = g->map.data + g->data_start + t->offset;
    }
    if (rc == 0) {
        qsort(ix, g->n_tensors, sizeof *ix, cmp_tensor_offset);
        const pb_gguf_tensor *prev = NULL;
        for (size_t i = 0; i < g->n_tensors && rc == 0; i++) {
            if (ix[i]->n_bytes == 0) continue;
            if (prev && prev->offset + prev->n_bytes > ix[i]->offset)
                rc = pb_err_set(r->err, "%s: tensors %s [%llu, +%zu) and %s [%llu, +%zu) overlap", r->path,
                                prev->name, (unsigned long long)prev->offset, prev->n_bytes, ix[i]->name,
                                (unsigned long long)ix[i]->offset, ix[i]->n_bytes);
            prev = ix[i];
        }
    }
    free(ix);
    return rc;
}

static int parse(reader *r, pb_gguf *g) {
    snprintf(r->place, sizeof r->place, "header");
    if (r->size < 4)
        return pb_err_set(r->err, "%s: not a GGUF file (%zu bytes, too short for a header)", r->path, r->size);
    if (memcmp(r->d, "GGUF", 4) != 0) {
        char m[20] = "";
        for (size_t i = 0; i < 4; i++)
            snprintf(m + strlen(m), sizeof m - strlen(m), (r->d[i] >= 32 && r->d[i] < 127) ? "%c" : "\\x%02x", r->d[i]);
        return pb_err_set(r->err, "%s: not a GGUF file (starts with '%s', expected 'GGUF')", r->path, m);
    }
    r->pos = 4;
    PB_TRY(rd_u32(r, "version", &g->version));
    uint32_t swapped = __builtin_bswap32(g->version);
    if (g->version > 0xffff && swapped >= 1 && swapped <= 3)
        return pb_err_set(r->err, "%s: big-endian GGUF file (version %u byte-swapped); only little-endian files "
                          "are supported", r->path, swapped);
    if (g->version != 2 && g->version != 3)
        return pb_err_set(r->err, "%s: GGUF version %u is not supported (only versions 2 and 3)", r->path,
                          g->version);
    uint64_t nt, nkv;
    PB_TRY(rd_u64(r, "tensor count", &nt));
    PB_TRY(rd_u64(r, "metadata count", &nkv));
    /* smallest encodings: a key/value is >= 13 bytes (length, type, a u8), a tensor info
     * >= 32 (name length, n_dims, one dim, type, offset) */
    size_t left = r->size - r->pos;
    if (nt > left / 32 || nkv > left / 13 || nt * 32 + nkv * 13 > left)
        return pb_err_set(r->err, "%s: header claims %llu tensors and %llu metadata keys, more than the %zu-byte "
                          "file can hold", r->path, (unsigned long long)nt, (unsigned long long)nkv, r->size);
    g->n_tensors = (size_t)nt;
    g->n_kv = (size_t)nkv;
    g->kv = pb_arena_alloc_n(&g->arena, g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = pb_arena_alloc_n(&g->arena, g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    PB_CHECK_ALLOC(g->kv, r->err);
    PB_CHECK_ALLOC(g->tensors, r->err);

    for (size_t i = 0; i < g->n_kv; i++) PB_TRY(rd_kv(r, g, i));
    PB_TRY(check_unique(r, g->kv, g->n_kv, sizeof *g->kv, "metadata key"));
    g->alignment = 32;
    int64_t al;
    int rc = pb_gguf_get_int(g, "general.alignment", 1, (int64_t)1 << 30, &al, r->err);
    if (rc < 0) return -1;
    if (rc > 0) {
        if (al & (al - 1))
            return pb_err_set(r->err, "%s: general.alignment %lld is not a power of two", r->path, (long long)al);
        g->alignment = (size_t)al;
    }
    for (size_t i = 0; i < g->n_tensors; i++) PB_TRY(rd_tensor_info(r, g, i));
    /* pos <= size and alignment <= 2^30, so this cannot overflow size_t */
    g->data_start = (r->pos + g->alignment - 1) / g->alignment * g->alignment;

    PB_TRY(check_unique(r, g->tensors, g->n_tensors, sizeof *g->tensors, "tensor"));
    return check_layout(r, g);
}

int pb_gguf_open(pb_gguf *g, const char *path, pb_err *err) {
    memset(g, 0, sizeof *g);
    pb_arena_init(&g->arena, (size_t)1 << 16);
    g->path = pb_arena_strdup(&g->arena, path);
    if (!g->path) {
        pb_arena_free(&g->arena);
        return pb_err_set(err, "out of memory opening %s", path);
    }
    if (pb_mmap_open(&g->map, path, true, err) != 0) {
        pb_arena_free(&g->arena);
        return -1;
    }
    reader r = {.path = path, .d = g->map.data, .size = g->map.size, .err = err};
    if (parse(&r, g) != 0) {
        pb_gguf_close(g);
        return -1;
    }
    return 0;
}

void pb_gguf_close(pb_gguf *g) {
    pb_mmap_close(&g->map);
    pb_arena_free(&g->arena);
    memset(g, 0, sizeof *g);
}

void pb_gguf_take_map(pb_gguf *g, pb_mmap *out) {
    *out = g->map;
    memset(&g->map, 0, sizeof g->map);
}

/* ---- lookups and typed getters -------------------------------------------------------- */

const pb_gguf_kv *pb_gguf_find(const pb_gguf *g, const char *key) {
    for (size_t i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const pb_gguf_tensor *pb_gguf_find_tensor(const pb_gguf *g, const char *name) {
    for (size_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

/* Integer elements are decoded to int64 except u64 values above INT64_MAX, which clamp to
 * INT64_MAX so that range checks reject them. */
static int64_t load_int(uint32_t t, const uint8_t *p) {
    switch (t) {
    case PB_GGUF_U8: return p[0];
    case PB_GGUF_I8: return (int8_t)p[0];
    case PB_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case PB_GGUF_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case PB_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case PB_GGUF_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case PB_GGUF_U64: { uint64_t v; memcpy(&v, p, 8); return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v; }
    case PB_GGUF_I64: { int64_t v; memcpy(&v, p, 8); return v; }
    case PB_GGUF_BOOL: return p[0] != 0;
    default: return 0;
    }
}

static double load_float(uint32_t t, const uint8_t *p) {
    if (t == PB_GGUF_F32) { float v; memcpy(&v, p, 4); return v; }
    if (t == PB_GGUF_F64) { double v; memcpy(&v, p, 8); return v; }
    return (double)load_int(t, p);
}

int64_t pb_gguf_arr_int(const pb_gguf_kv *kv, uint64_t i) {
    return load_int(kv->elem_type, kv->val + i * VTYPE_SIZE[kv->elem_type]);
}

double pb_gguf_arr_float(const pb_gguf_kv *kv, uint64_t i) {
    return load_float(kv->elem_type, kv->val + i * VTYPE_SIZE[kv->elem_type]);
}

static int wrong_type(const pb_gguf *g, const pb_gguf_kv *kv, const char *want, pb_err *err) {
    return pb_err_set(err, "%s: metadata %s has type %s%s%s, expected %s", g->path, kv->key,
                      pb_gguf_vtype_name(kv->type), kv->type == PB_GGUF_ARRAY ? " of " : "",
                      kv->type == PB_GGUF_ARRAY ? pb_gguf_vtype_name(kv->elem_type) : "", want);
}

int pb_gguf_get_int(const pb_gguf *g, const char *key, int64_t lo, int64_t hi, int64_t *out, pb_err *err) {
    const pb_gguf_kv *kv = pb_gguf_find(g, key);
    if (!kv) return 0;
    if (!pb_gguf_vtype_is_int(kv->type)) return wrong_type(g, kv, "an integer", err);
    int64_t v = load_int(kv->type, kv->val);
    if (v < lo || v > hi)
        return pb_err_set(err, "%s: metadata %s = %lld is out of range [%lld, %lld]", g->path, key, (long long)v,
                          (long long)lo, (long long)hi);
    *out = v;
    return 1;
}

int pb_gguf_get_float(const pb_gguf *g, const char *key, double *out, pb_err *err) {
    const pb_gguf_kv *kv = pb_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != PB_GGUF_F32 && kv->type != PB_GGUF_F64 && !pb_gguf_vtype_is_int(kv->type))
        return wrong_type(g, kv, "a number", err);
    *out = load_float(kv->type, kv->val);
    return 1;
}

int pb_gguf_get_bool(const pb_gguf *g, const char *key, bool *out, pb_err *err) {
    const pb_gguf_kv *kv = pb_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != PB_GGUF_BOOL) return wrong_type(g, kv, "bool", err);
    *out = kv->val[0] != 0;
    return 1;
}

int pb_gguf_get_str(const pb_gguf *g, const char *key, const char **s, size_t *len, pb_err *err) {
    const pb_gguf_kv *kv = pb_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != PB_GGUF_STRING) return wrong_type(g, kv, "string", err);
    uint64_t n;
    memcpy(&n, kv->val, 8);
    *s = (const char *)kv->val + 8;
    *len = (size_t)n;
    return 1;
}

int pb_gguf_arr_strings(const pb_gguf *g, const pb_gguf_kv *kv, const char ***strs, int **lens, pb_err *err) {
    *strs = NULL;
    *lens = NULL;
    if (kv->type != PB_GGUF_ARRAY || kv->elem_type != PB_GGUF_STRING) return wrong_type(g, kv, "array of string", err);
    if (kv->count > INT32_MAX) return pb_err_set(err, "%s: metadata %s: too many strings", g->path, kv->key);
    const char **s = malloc((kv->count ? kv->count : 1) * sizeof *s);
    int *l = malloc((kv->count ? kv->count : 1) * sizeof *l);
    if (!s || !l) {
        free(s);
        free(l);
        return pb_err_set(err, "out of memory reading %s", g->path);
    }
    const uint8_t *p = kv->val; /* validated by the parser: every length fits in the file */
    for (uint64_t i = 0; i < kv->count; i++) {
        uint64_t n;
        memcpy(&n, p, 8);
        if (n > INT32_MAX) {
            free(s);
            free(l);
            return pb_err_set(err, "%s: metadata %s: string %llu is too long", g->path, kv->key, (unsigned long long)i);
        }
        s[i] = (const char *)p + 8;
        l[i] = (int)n;
        p += 8 + n;
    }
    *strs = s;
    *lens = l;
    return 0;
}
