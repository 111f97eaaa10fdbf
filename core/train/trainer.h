/* trainer.h — the training loop shared by `finetune` (LoRA adapters on a frozen model, the
 * papers' recovery stage) and `pretrain` (every weight of a small model).
 *
 * One optimiser step takes `batch` examples in micro-batches of `micro_batch`, each run
 * through the backward driver with its gradient scaled by 1/(micro-batches in the step),
 * which is HF Trainer's gradient accumulation; then global-norm clipping, the schedule's
 * learning rate and AdamW. The epoch order is a seeded shuffle and dropout masks are keyed
 * by (seed, step, micro-batch), so a run is a pure function of its options and thread
 * count: a checkpoint needs only the step, the parameters and the Adam moments, and a
 * resumed run repeats an uninterrupted one's losses exactly.
 *
 * Output folder: checkpoint.json + checkpoint-STEP.safetensors (the latest checkpoint;
 * each file replaced atomically), history.json (one record per step and evaluation),
 * and at the end the adapter in PEFT layout (finetune; the best one by validation loss
 * unless select_last) or the model (pretrain), plus merged/ with --merge. */
#ifndef PB_TRAINER_H
#define PB_TRAINER_H

#include "load.h"
#include "lora.h"
#include "model.h"
#include "optim.h"
#include "sft.h"
#include "tokenizer.h"

#include <stdio.h>

typedef struct {
    const char *command;      /* "finetune" or "pretrain" (messages, checkpoint identity) */
    const char *model_path;   /* recorded, and checked on resume */
    /* data */
    const char *data_path;
    pb_sft_opts data;
    int val_size;             /* held-out examples (0: no validation) */
    /* schedule */
    int epochs;
    int64_t max_steps;        /* > 0: stop after this many steps (the schedule spans them) */
    int batch, micro_batch;   /* examples per step and per backward call; batch % micro_batch == 0 */
    double lr, max_grad_norm; /* max_grad_norm <= 0: no clipping */
    pb_adamw adam;
    pb_sched_kind sched;
    int64_t warmup;
    int eval_every, save_every; /* steps; 0: only at the end */
    uint64_t seed;
    /* what is trained */
    bool lora;                /* false: every weight of the model */
    int rank;
    float alpha, dropout;
    unsigned targets;
    bool select_last;         /* finetune: keep the last adapter, not the best by validation loss */
    bool merge;               /* finetune: also write the merged model to OUT/merged */
    pb_save_dtype save_dtype;
    const char *tokenizer_from; /* HF folder whose tokenizer files go along with saved models */
    /* output */
    const char *out_dir;
    bool resume;
    FILE *log;                /* one line per step and evaluation (stdout) */
} pb_train_opts;

/* Defaults of the papers' recovery stage: LoRA r 8, alpha 16, dropout 0.05 on q,k,v,o,
 * gate,up,down; lr 1e-4, 2 epochs, batch 64 in micro-batches of 4, 100 warm-up steps,
 * linear decay, clipping at 1.0, cutoff 256, loss on the response only, seed 42. */
void pb_train_defaults(pb_train_opts *o);

typedef struct {
    int64_t steps;            /* optimiser steps done in total (including before a resume) */
    double first_loss, last_loss;
    double val_before, val_best, val_last; /* NAN when there is no validation set */
    int64_t best_step;
    double tokens_per_s;      /* training tokens (B*T of every micro-batch) per second, this run */
    int64_t trainable;        /* trainable parameters */
} pb_train_result;

/* Checks the options alone (before a model is loaded): ranges, batch vs micro-batch. */
int pb_train_check(const pb_train_opts *o, pb_err *err);

/* Trains m (LoRA adapters are attached to it for the run and detached at the end). */
int pb_train_run(pb_model *m, const pb_tokenizer *tok, const pb_train_opts *o, pb_train_result *r, pb_err *err);

#endif
