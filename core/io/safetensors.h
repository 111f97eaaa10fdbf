/* safetensors.h — private to core/io: a validating safetensors reader and a writer.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end)}, "__metadata__": {...}}, then the
 * data; offsets are relative to the first byte after the header. The reader maps the file
 * privately (copy-on-write) and validates every tensor up front, so that later code can
 * trust sizes and offsets. Only F32, F16 and BF16 are accepted: the models this program
 * handles are stored in those, and anything else would need a real dequantiser. */
#ifndef PB_SAFETENSORS_H
#define PB_SAFETENSORS_H

#include "pb_base.h"

#define PB_ST_MAX_DIMS 8

typedef enum { PB_ST_F32 = 0, PB_ST_F16 = 1, PB_ST_BF16 = 2 } pb_st_dtype;

typedef struct {
    const char *name;            /* points into the owning pb_st_file's arena */
    pb_st_dtype dtype;
    int ndim;
    int64_t shape[PB_ST_MAX_DIMS];
    size_t numel;
    size_t begin, end;           /* byte range relative to the data start */
    const uint8_t *data;         /* = map.data + data_start + begin */
    bool used;                   /* set by the model loader, to report tensors nobody claimed */
} pb_st_tensor;

typedef struct {
    pb_mmap map;
    char *path;                  /* owned; used in every message about this file */
    size_t data_start;           /* 8 + N */
    int n;
    pb_st_tensor *t;             /* (n), sorted by name */
    pb_arena arena;              /* names and the tensor array */
    bool has_inplace;            /* some tensor is used in place: keep the map alive */
} pb_st_file;

/* Maps and validates path. On failure nothing is left open. */
int pb_st_open(pb_st_file *f, const char *path, pb_err *err);
void pb_st_close(pb_st_file *f);
/* Binary search by name; NULL when absent. */
pb_st_tensor *pb_st_find(pb_st_file *f, const char *name);
const char *pb_st_dtype_name(pb_st_dtype d);
size_t pb_st_dtype_size(pb_st_dtype d);

/* Converts n elements of a tensor's data (any supported dtype) to fp32. dst may be any
 * float buffer (not aliasing src); large conversions run in parallel with OpenMP. */
void pb_st_to_f32(pb_st_dtype d, const uint8_t *src, float *dst, size_t n);
/* Converts n fp32 values to dtype d (round to nearest even) into dst. */
void pb_st_from_f32(pb_st_dtype d, const float *src, uint8_t *dst, size_t n);

/* ---- writer ---------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    const float *data;           /* fp32 source */
    int ndim;
    int64_t shape[2];
    size_t numel;
} pb_st_out_tensor;

/* Writes tensors (in the given order) to path as dtype d, header padded to 8 bytes. On
 * failure the partial file is removed. */
int pb_st_write(const char *path, const pb_st_out_tensor *t, int n, pb_st_dtype d, pb_err *err);

#endif
