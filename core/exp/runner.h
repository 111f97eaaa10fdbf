/* runner.h — running an expanded experiment: every selected run pruned, optionally recovered
 * with LoRA, evaluated, and recorded as one HDF5 file; then the experiment's index.
 *
 * Each base model is loaded once and cloned for each of its runs (pruning works in place);
 * evaluation texts and task files are read once; calibration windows once per seed; the
 * importance scores a method computes on the base model once per criterion and calibration
 * (a pb_prune_memo per base model: the runs of one criterion at other ratios reuse them, and
 * the progress line says "(scores reused)"). Each pruned run's file records those scores
 * under /importance; when they cannot be computed the file has none and the line says why,
 * and the run is not failed for it. A run
 * whose file already exists (done or failed) is skipped, so rerunning the same experiment
 * after an interruption only does what is missing; a run that fails is recorded as failed,
 * with its error, and the next one starts. */
#ifndef PB_RUNNER_H
#define PB_RUNNER_H

#include "exp.h"

#include <stdio.h>

typedef struct {
    const char *out_root;   /* results root (default "results"); the experiment writes OUT_ROOT/<name>/ */
    const char *data_dir;   /* evaluation and calibration data (pb_data_dir's rules) */
    int shard_k, shard_n;   /* this process runs shard k of n (1/1: everything) */
    const char *only;       /* run only the run with this run_id or label (NULL: all) */
    FILE *log;              /* progress lines (stderr) */
} pb_run_opts;

typedef struct {
    int selected;           /* runs in this shard (and --only) */
    int skipped;            /* already finished before this call */
    int done, failed;       /* finished by this call */
    int indexed;            /* rows in the rebuilt index */
} pb_run_summary;

/* OUT_ROOT/<experiment name> (malloc'd). */
char *pb_exp_dir(const pb_exp *e, const pb_run_opts *o);

/* Prints the runs this shard would do, with their state and what each will compute. */
void pb_exp_print_plan(const pb_exp *e, const pb_run_opts *o, FILE *f);

/* Runs every selected run that is not finished, then rebuilds the index. Returns -1 only for
 * errors that stop the whole experiment (the results folder cannot be written); a failing
 * run is recorded and counted in s->failed. */
int pb_exp_execute(const pb_exp *e, const pb_run_opts *o, pb_run_summary *s, pb_err *err);

#endif
