/* tasks_internal.h — the table of task definitions shared by tasks.c (file reading) and
 * tasks_docs.c (one document builder per task). Private to datasets/. */
#ifndef PB_TASKS_INTERNAL_H
#define PB_TASKS_INTERNAL_H

#include "tasks.h"

#include <cjson/cJSON.h>

typedef enum {
    PB_LABELS_NONE = 0,     /* the document carries its answer */
    PB_LABELS_REQUIRED = 1, /* piqa: the answers are only in the labels file */
    PB_LABELS_OPTIONAL = 2  /* winogrande: labels file, else (and checked against) "answer" */
} pb_labels_kind;

typedef struct {
    const char *name;
    pb_labels_kind labels;
    bool has_norm, headline_norm;
    /* Fills d (n_choices, ctx, cont, choice_len, gold) from one parsed line; label is the
     * matching line of the labels file or NULL. Strings are copied into a. Errors carry no
     * location (the caller adds FILE:LINE); *bad_label says the labels line is at fault. */
    int (*build)(const cJSON *o, const char *label, pb_task_doc *d, pb_arena *a, bool *bad_label, pb_err *err);
} pb_task_def;

const pb_task_def *pb_task_def_find(const char *name);

#endif
