/* hf_weights.h — private to core/io: the safetensors files of an HF folder, single or sharded. */
#ifndef PB_HF_WEIGHTS_H
#define PB_HF_WEIGHTS_H

#include "safetensors.h"

#define PB_HF_SINGLE_NAME "model.safetensors"
#define PB_HF_INDEX_NAME "model.safetensors.index.json"

typedef struct {
    const char *name;
    int file;                   /* index into pb_hf_weights.files */
} pb_hf_index_entry;

typedef struct {
    pb_st_file *files;          /* (n_files) all validated */
    int n_files;
    bool sharded;
    char *index_path;           /* DIR/model.safetensors.index.json (owned) */
    pb_hf_index_entry *idx;     /* (n_idx) sorted by name; sharded only */
    int n_idx;
    pb_arena arena;
} pb_hf_weights;

int pb_hf_weights_open(pb_hf_weights *w, const char *dir, pb_err *err);
void pb_hf_weights_close(pb_hf_weights *w);
/* The tensor called name (NULL if absent) and the index of its file. */
pb_st_tensor *pb_hf_weights_find(pb_hf_weights *w, const char *name, int *file);
/* The path to name in "missing tensor" messages: the single file, or the index. */
const char *pb_hf_weights_where(const pb_hf_weights *w);

#endif
