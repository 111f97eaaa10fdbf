/* compare.h — paper-style comparison tables from experiment folders.
 *
 * Reads DIR/index.h5 (the compound `summary` table that results.h documents; columns are
 * matched by name, strings may be fixed-length or variable-length, extra columns are
 * ignored, absent optional columns read as "not measured") and, when present,
 * DIR/published.yaml (the experiment's `published:` rows: the papers' numbers). Prints one
 * table in the shape of the pruning papers: model, method, criterion, ratio, #params, the
 * perplexities, the seven zero-shot tasks (headline metric x100), their mean, latency and
 * throughput; rows grouped by model, the dense run first, deltas to the dense run of the same
 * model (or to one chosen baseline run), and published rows with ours − paper.
 *
 * published.yaml: either a sequence of mappings or a mapping whose `published` key holds
 * one. Row keys: model, method (required), ratio (a fraction, or "20%"), num_blocks, native,
 * criterion, granularity, note, params, params_no_embed ("5.47B" or a number), the task
 * names (boolq, piqa, hellaswag, winogrande, arc_easy, arc_challenge, openbookqa; x100),
 * mean (or avg), latency_ms, throughput, and perplexities as <dataset> or ppl_<dataset>
 * (wikitext2, ptb, c4, ...). null, "-" and "–" mean not reported. */
#ifndef PB_COMPARE_H
#define PB_COMPARE_H

#include "pb_base.h"

#include <stdio.h>

enum { PB_CMP_TASKS = 7, PB_CMP_MAX_PPL = 16 };

/* The papers' seven tasks, in their table order (index names). */
extern const char *const pb_cmp_task_names[PB_CMP_TASKS];

typedef enum { PB_CMP_MD, PB_CMP_TEX, PB_CMP_CSV } pb_cmp_format;

/* One row: a run of ours (from an index) or a published row. Strings are never NULL
 * ("" where absent); numbers are NaN where not measured or not applicable. */
typedef struct {
    int dir;                      /* index into pb_cmp.dirs */
    bool paper;                   /* a published row */
    char *run_id, *label, *model, *method, *criterion, *granularity, *status, *error, *note;
    double ratio, native, num_blocks, seed;
    double params_before, params_after, params_after_ne;
    double ppl[PB_CMP_MAX_PPL];   /* by pb_cmp.ppl_names */
    double acc[PB_CMP_TASKS];     /* headline metric x100 */
    double mean;                  /* x100 */
    double latency_ms, throughput;
} pb_cmp_row;

typedef struct {
    char **dirs; int n_dirs;
    char *ppl_names[PB_CMP_MAX_PPL]; int n_ppl;   /* wikitext2 and ptb first when present */
    pb_cmp_row *rows; int n_rows, cap;
} pb_cmp;

/* Reads the index (and published.yaml) of each folder. Errors name the file. */
int  pb_cmp_load(pb_cmp **out, const char *const *dirs, int n_dirs, pb_err *err);
void pb_cmp_free(pb_cmp *c);

/* Prints the table. baseline: a run_id or label of a finished run (NULL: the dense run of
 * each row's model). */
int  pb_cmp_print(const pb_cmp *c, FILE *f, pb_cmp_format fmt, const char *baseline, pb_err *err);

/* Internal to compare*.c: published.yaml of folder `dir` into c. */
int  pb_cmp_read_published(pb_cmp *c, int dir, const char *path, pb_err *err);
/* Internal: checks the layout and string references of an index's summary table (HDF5 ids
 * of the file, the dataset and its type; n rows) before HDF5 reads it. */
int  pb_cmp_check_summary(const char *path, int64_t file, int64_t dataset, int64_t type, uint64_t n, pb_err *err);
/* Internal: label (need_label) and error of failed runs (need_error) of rows first.. from
 * their run files, where still empty; best effort, in a child process. */
void pb_cmp_fill_from_runs(pb_cmp *c, int first, bool need_label, bool need_error);
/* Internal: a fresh row (all numbers NaN, strings ""), or NULL when out of memory. */
pb_cmp_row *pb_cmp_add_row(pb_cmp *c, int dir);
/* Internal: the column of perplexity dataset name (added when new), -1 when too many. */
int  pb_cmp_ppl_index(pb_cmp *c, const char *name);

#endif
