/* train_internal.h — private to core/train: the trainer's state shared by the loop
 * (trainer.c) and its checkpoints (checkpoint.c). */
#ifndef PB_TRAIN_INTERNAL_H
#define PB_TRAIN_INTERNAL_H

#include "trainer.h"

#include <cjson/cJSON.h>

typedef struct {
    const pb_train_opts *o;
    pb_model *m;
    pb_lora *lora;            /* finetune: the adapters being trained (attached to m) */
    pb_param *ps;             /* trainable tensors */
    int n_ps;
    int *param_of;            /* pretrain: (n_layers + 1) * PB_G_COUNT -> index in ps, or -1 */
    pb_arena arena;           /* moments and (pretrain) gradients */
    int64_t step;             /* optimiser steps done */
    double best_val, val_before, first_loss;
    int64_t best_step;
    cJSON *history;           /* array of {step, ...} records */
    cJSON *fingerprint;       /* the options that decide the trajectory */
} pb_trainer;

/* OUT/checkpoint.json: the latest checkpoint's step, file, fingerprint and history. */
int pb_ckpt_save(pb_trainer *t, pb_err *err);
/* Restores t from OUT's checkpoint; *found false (and nothing changed) when there is none.
 * A checkpoint made with other options is an error naming the first differing one. */
int pb_ckpt_load(pb_trainer *t, bool *found, pb_err *err);
/* Writes OUT/history.json. */
int pb_ckpt_write_history(const pb_trainer *t, pb_err *err);

#endif
