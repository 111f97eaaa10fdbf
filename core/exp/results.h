/* results.h — run results in HDF5: one file per run, written under a temporary name and
 * renamed when complete, and an index.h5 per experiment with one summary row per run.
 *
 * Run file RESULTS/<experiment>/<run_id>.h5:
 *   root attributes: run_id, experiment, label, config (the resolved YAML), model, method,
 *     criterion, granularity, ratio, native, num_blocks, seed, status ("done" |
 *     "failed"), error (failed runs), prunebench_version, git_revision, hardware (CPU model,
 *     threads), started, finished (ISO 8601 UTC), seconds
 *   /params      attributes params_before, params_after, params_before_no_embed, params_after_no_embed
 *   /structure   datasets n_heads, n_kv_heads, ffn_dim (int32, one per kept layer), removed (int32
 *                (n, 3): layer, kind, index in the original numbering), kept_layers (original indices)
 *   /ppl/<dataset>        attributes ppl, nll_mean, nll_stderr, tokens, windows, seq_len
 *   /zeroshot/<task>      attributes acc, acc_stderr, acc_norm, acc_norm_stderr, headline, n
 *   /zeroshot             attribute mean (the papers' headline mean over the tasks, x100)
 *   /latency/batch_<B>    attributes prefill_ms, decode_ms_per_token, tokens_per_s, peak_bytes
 *   /importance           the scores the method ranks by, computed on the unpruned model:
 *                         dataset scores (float64): depth block / attn / mlp one per layer
 *                         (NaN where a layer lacks the module), depth "module" (layers, 2)
 *                         with columns attn, mlp, width methods head-unit scores (layers,
 *                         max units) padded with NaN; width methods also dataset channels
 *                         (layers, max FFN channels), NaN padded; attribute granularity
 *                         (block | attn | mlp | module | head) on the group, and on each
 *                         dataset its own (channel for channels). Absent where the scores could
 *                         not be computed (the run itself is unaffected).
 *   /training             datasets step, loss, lr, grad_norm, val_loss (NaN where not evaluated)
 *
 * index.h5: dataset "summary", compound, one row per run file in the folder (sorted by run_id):
 *   run_id, model, method, criterion, granularity (strings), ratio, native (float64), num_blocks
 *   (int32), seed (int64), status (string), params_before, params_after, params_after_no_embed
 *   (int64), ppl_wikitext2, ppl_ptb, ppl_c4, ppl_tinystories, acc_boolq, acc_piqa,
 *   acc_hellaswag, acc_winogrande, acc_arc_easy, acc_arc_challenge, acc_openbookqa, acc_mean,
 *   latency_ms (batch 1 decode per token), throughput (largest batch tokens/s) (float64; NaN
 *   where not measured). */
#ifndef PB_RESULTS_H
#define PB_RESULTS_H

#include "pb_base.h"

#include <stdint.h>

typedef struct pb_result pb_result;  /* a run file being written */

/* What identifies a run: root attributes of its file and the index's first columns. */
typedef struct {
    const char *run_id, *experiment, *label, *config_yaml;
    const char *model, *method, *criterion, *granularity;   /* method "dense" for the unpruned model */
    double ratio, native;            /* NaN where not used */
    int num_blocks;                  /* -1 where not used */
    int64_t seed;
} pb_result_id;

/* Starts a run file: DIR/<run_id>.h5.pbtmp<pid>, with the identity attributes (strings may
 * be NULL: written as ""). */
int  pb_result_begin(pb_result **out, const char *dir, const pb_result_id *id, pb_err *err);
int  pb_result_params(pb_result *r, int64_t before, int64_t after, int64_t before_ne, int64_t after_ne, pb_err *err);
int  pb_result_structure(pb_result *r, const int32_t *n_heads, const int32_t *n_kv, const int32_t *ffn, int n_layers,
                         const int32_t *removed, int n_removed, pb_err *err);
int  pb_result_ppl(pb_result *r, const char *dataset, double ppl, double nll, double nll_stderr, int64_t tokens,
                   int64_t windows, int seq_len, pb_err *err);
int  pb_result_zeroshot(pb_result *r, const char *task, double acc, double acc_se, double acc_norm,
                        double acc_norm_se, double headline, int64_t n, pb_err *err);
int  pb_result_zeroshot_mean(pb_result *r, double mean, pb_err *err);
int  pb_result_latency(pb_result *r, int batch, double prefill_ms, double decode_ms_per_token, double tokens_per_s,
                       int64_t peak_bytes, pb_err *err);
/* /importance/<name> (NULL: "scores"), a (rows) vector when cols == 1, else (rows, cols);
 * granularity (may be NULL) becomes the dataset's attribute, and the group's for "scores". */
int  pb_result_importance(pb_result *r, const char *name, const char *granularity, const double *scores, int rows,
                          int cols, pb_err *err);
int  pb_result_training(pb_result *r, const int64_t *step, const double *loss, const double *lr, const double *gnorm,
                        const double *val, int n, pb_err *err);
/* Writes status ("done", or "failed" with error), the times, closes and renames the file into
 * place (for a failed run too: it is recorded as failed). Frees r. */
int  pb_result_end(pb_result *r, const char *error, pb_err *err);
/* Closes and deletes the temporary file (an interrupted write). Frees r. */
void pb_result_abort(pb_result *r);

/* Whether DIR/<run_id>.h5 exists and is complete (status done or failed). */
bool pb_result_exists(const char *dir, const char *run_id);

/* Rebuilds DIR/index.h5 from the run files in DIR (temporary file + rename); *n_runs gets
 * the row count. Temporary files (*.pbtmp*) left by killed runs are ignored. */
int  pb_results_index(const char *dir, int *n_runs, pb_err *err);

#endif
