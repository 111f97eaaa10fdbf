/* rope.h — RoPE inverse frequencies, private to the model module (forward driver and tests).
 *
 * Kept apart from the forward driver so that tests can check the llama3 / linear scaling
 * rules against Hugging Face's formulas directly, without running a model. */
#ifndef PB_ROPE_H
#define PB_ROPE_H

#include "model.h"

/* inv_freq (head_dim/2) = theta^(-2j/head_dim), then cfg->rope_scaling applied the way HF's
 * _compute_{linear_scaling,llama3}_rope_parameters do. Computed in double, stored as fp32.
 * Fails on an odd head_dim or nonsensical scaling parameters. */
int pb_rope_inv_freq(const pb_config *cfg, int head_dim, float *inv_freq, pb_err *err);

#endif
