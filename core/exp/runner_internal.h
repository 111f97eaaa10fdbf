/* runner_internal.h — private to the runner (runner.c, runner_importance.c): what a run
 * records beside its evaluation. */
#ifndef PB_RUNNER_INTERNAL_H
#define PB_RUNNER_INTERNAL_H

#include "prune.h"
#include "results.h"

/* Writes /importance for a run pruned with po: the scores its method ranks by, computed by
 * pb_importance on base (the unpruned model) through po->memo, so that a run whose pruning
 * already scored the model pays nothing more. Depth: its granularity (block, attn or mlp:
 * one per layer; "module": (layers, 2), columns attn, mlp). Width methods: head-unit scores
 * as "scores" and channel scores as "channels", (layers, max units) padded with NaN. -1 with
 * err when the scores cannot be computed or written (the caller notes it; the run goes on). */
int pb_run_record_importance(pb_result *res, const pb_model *base, const pb_prune_opts *po, pb_err *err);

#endif
