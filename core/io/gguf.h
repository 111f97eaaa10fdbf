/* gguf.h — a validating reader for GGUF v2/v3 files (llama.cpp's model format).
 *
 * pb_gguf_open maps the file (private copy-on-write, so loaders may edit F32 tensors in
 * place) and checks every count, length, type, dimension and offset against the file size
 * before anything is used; afterwards the metadata and tensor tables can be read without
 * further bounds checks on the file. Metadata values are decoded on demand from the map.
 * Strings inside the file are not NUL-terminated: they come as (pointer, length). */
#ifndef PB_GGUF_H
#define PB_GGUF_H

#include "pb_base.h"
#include "tokenizer.h"

/* Metadata value types, numbered as in the file. */
typedef enum {
    PB_GGUF_U8 = 0, PB_GGUF_I8 = 1, PB_GGUF_U16 = 2, PB_GGUF_I16 = 3, PB_GGUF_U32 = 4, PB_GGUF_I32 = 5,
    PB_GGUF_F32 = 6, PB_GGUF_BOOL = 7, PB_GGUF_STRING = 8, PB_GGUF_ARRAY = 9, PB_GGUF_U64 = 10,
    PB_GGUF_I64 = 11, PB_GGUF_F64 = 12, PB_GGUF_N_VTYPES
} pb_gguf_vtype;

/* ggml tensor types this reader dequantizes (the file may hold others; see pb_gguf_type_name). */
enum { PB_GGML_F32 = 0, PB_GGML_F16 = 1, PB_GGML_Q4_0 = 2, PB_GGML_Q4_1 = 3, PB_GGML_Q8_0 = 8, PB_GGML_BF16 = 30 };

typedef struct {
    const char *key;        /* NUL-terminated copy (owned by the pb_gguf); first member, see check_unique */
    uint32_t type;          /* pb_gguf_vtype */
    uint32_t elem_type;     /* arrays: element type */
    uint64_t count;         /* arrays: element count; 1 otherwise */
    const uint8_t *val;     /* into the map: the value (arrays: the first element) */
} pb_gguf_kv;

typedef struct {
    const char *name;       /* NUL-terminated copy; first member, see check_unique */
    uint32_t n_dims;
    uint64_t ne[4];         /* ne[0] varies fastest (in_features of a weight); unused dims are 1 */
    uint32_t type;          /* ggml type */
    uint64_t offset;        /* relative to the data section */
    size_t n_elems, n_bytes;
    uint8_t *data;          /* into the (copy-on-write) map */
} pb_gguf_tensor;

typedef struct {
    const char *path;
    pb_mmap map;
    uint32_t version;
    size_t alignment, data_start;
    size_t n_kv, n_tensors;
    pb_gguf_kv *kv;          /* (n_kv) */
    pb_gguf_tensor *tensors; /* (n_tensors) in file order */
    pb_arena arena;          /* tables and name copies */
} pb_gguf;

/* Maps and validates path. On failure everything is released and err names the file and
 * the place ("f.gguf: metadata key 3 (general.name): string of 99 bytes runs past end of file"). */
int  pb_gguf_open(pb_gguf *g, const char *path, pb_err *err);
/* Releases the tables and, unless pb_gguf_take_map moved it out, the map. */
void pb_gguf_close(pb_gguf *g);
/* Moves the map out (for a model whose weights point into it); close then leaves it alone. */
void pb_gguf_take_map(pb_gguf *g, pb_mmap *out);

const pb_gguf_kv *pb_gguf_find(const pb_gguf *g, const char *key);
const pb_gguf_tensor *pb_gguf_find_tensor(const pb_gguf *g, const char *name);

/* Typed getters. Each returns 1 when found and converted, 0 when the key is absent
 * (out untouched), -1 with err naming the file and key on a type or range mismatch. */
int pb_gguf_get_int(const pb_gguf *g, const char *key, int64_t lo, int64_t hi, int64_t *out, pb_err *err);
int pb_gguf_get_float(const pb_gguf *g, const char *key, double *out, pb_err *err);
int pb_gguf_get_bool(const pb_gguf *g, const char *key, bool *out, pb_err *err);
/* The string is not NUL-terminated; *len is its byte length. */
int pb_gguf_get_str(const pb_gguf *g, const char *key, const char **s, size_t *len, pb_err *err);

/* Element i of an integer or float array (any numeric element type); i < kv->count. */
int64_t pb_gguf_arr_int(const pb_gguf_kv *kv, uint64_t i);
double  pb_gguf_arr_float(const pb_gguf_kv *kv, uint64_t i);
bool    pb_gguf_vtype_is_int(uint32_t t);
/* Pointers to the strings of a string array, and their byte lengths (malloc'd, caller frees). */
int pb_gguf_arr_strings(const pb_gguf *g, const pb_gguf_kv *kv, const char ***strs, int **lens, pb_err *err);

const char *pb_gguf_vtype_name(uint32_t t);
/* ggml type name ("Q4_K"), or NULL for a type number ggml does not define. */
const char *pb_gguf_type_name(uint32_t t);

/* Dequantizes n elements (a multiple of the type's block size) of a supported type to fp32.
 * Returns -1 for an unsupported type. dst must not alias src. */
int pb_gguf_dequantize(uint32_t type, const void *src, size_t n, float *dst);
bool pb_gguf_type_supported(uint32_t type);

/* The tokenizer described by the tokenizer.ggml.* metadata (gguf_vocab.c). *tok is NULL
 * (no error) when the file carries none. */
int pb_gguf_tokenizer(const pb_gguf *g, pb_tokenizer **tok, pb_err *err);
/* Special token id from tokenizer.ggml.<name>_token_id: -1 when absent or not below vocab_size. */
int pb_gguf_special_id(const pb_gguf *g, const char *name, int vocab_size, pb_err *err, int *id);

#endif
