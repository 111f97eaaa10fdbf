/* load.h — model readers (HF folders, GGUF, llama2.c .bin) and the HF folder writer.
 *
 * Every reader returns an fp32 pb_model whose q/k rows are in HF rotate-half order
 * (GGUF and llama2.c files store them interleaved, Meta style, and are converted here).
 * F32 tensors whose layout needs no conversion are memory-mapped, not copied. */
#ifndef PB_LOAD_H
#define PB_LOAD_H

#include "model.h"
#include "tokenizer.h"

typedef struct {
    const char *tokenizer_path; /* overrides the tokenizer found beside the model; required for llama2.c */
} pb_load_opts;

/* Dispatches on what `path` is: a directory (HF), *.gguf or GGUF magic, otherwise llama2.c.
 * tok may be NULL when the caller needs no tokenizer; *tok is set to NULL (no error) when
 * the model carries none. */
int pb_model_load(const char *path, const pb_load_opts *opts, pb_model **model, pb_tokenizer **tok,
                  pb_err *err);

int pb_hf_load(const char *dir, const pb_load_opts *opts, pb_model **model, pb_tokenizer **tok, pb_err *err);
int pb_gguf_load(const char *path, const pb_load_opts *opts, pb_model **model, pb_tokenizer **tok, pb_err *err);
int pb_llama2c_load(const char *path, const pb_load_opts *opts, pb_model **model, pb_tokenizer **tok,
                    pb_err *err);

/* A model with the shape a config.json describes (path: the file, or a folder holding it):
 * with alloc_weights, zero-filled weights (biases too where the config lists them), for
 * training from scratch; without, every tensor pointer NULL (a shape only, which forward
 * refuses), for planning a pruning without the weights. */
int pb_hf_config_load(const char *path, bool alloc_weights, pb_model **out, pb_err *err);

typedef enum { PB_DTYPE_F32 = 0, PB_DTYPE_F16 = 1, PB_DTYPE_BF16 = 2 } pb_save_dtype;

typedef struct {
    pb_save_dtype dtype;
    const char *tokenizer_from; /* HF folder whose tokenizer files are copied along, or NULL */
    size_t max_shard_bytes;     /* 0: one model.safetensors; else shards + model.safetensors.index.json */
} pb_save_opts;

/* Writes config.json + safetensors into dir (created if needed). Uniform models give a
 * standard LlamaConfig that HF transformers loads; non-uniform layer shapes, missing
 * sublayers and extra biases are recorded under "prunebench_layers" so that this program
 * reloads them exactly. Files are written under temporary names and renamed at the end. */
int pb_hf_save(const pb_model *m, const char *dir, const pb_save_opts *opts, pb_err *err);

#endif
