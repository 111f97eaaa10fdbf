/* tasks.h — the seven zero-shot tasks of the pruning papers, read from their original files
 * and turned into lm-evaluation-harness requests (0-shot).
 *
 * A document becomes one (context, continuation) pair per choice exactly as lm-eval builds
 * them (../shared/reference/eval-protocol.md, sections 1-2): doc_to_text, the target
 * delimiter " ", HellaSwag's preprocessing, WinoGrande's partial scoring (one context per
 * option, one shared continuation), BoolQ's passage = title + " -- " + passage, ARC's numeric
 * answer keys, OBQA without a "Question:" prefix. Tokenization and scoring live in
 * metrics/zeroshot.h; this module only deals in strings. */
#ifndef PB_TASKS_H
#define PB_TASKS_H

#include "pb_base.h"

typedef struct {
    int n_choices;
    const char **ctx;    /* (n_choices) context of each choice; the same pointer when shared */
    const char **cont;   /* (n_choices) continuation, starting with the target delimiter " " */
    int *choice_len;     /* (n_choices) code points of the choice text without the delimiter
                          * (acc_norm divides by this, as Python len() does) */
    int gold;            /* index of the correct choice */
    int line;            /* 1-based line of the document in its file */
} pb_task_doc;

typedef struct {
    const char *name;     /* registry / lm-eval name: "boolq" */
    bool has_norm;        /* acc_norm is defined (not for boolq, winogrande) */
    bool headline_norm;   /* the papers report acc_norm (hellaswag, arc_challenge, openbookqa) */
    const char *docs_path, *labels_path; /* what was read (labels NULL when none) */
    int n_docs;
    pb_task_doc *docs;    /* (n_docs) in file order */
    pb_arena arena;       /* owns every string and array above */
} pb_task;

/* Known task names, in the papers' column order, and their count. */
extern const char *const pb_task_names[];
extern const int pb_task_count;
/* "boolq, piqa, ..." for messages. */
const char *pb_task_names_joined(void);
bool pb_task_known(const char *name);
/* Whether the task reads a separate labels file (piqa, winogrande). */
bool pb_task_needs_labels(const char *name);

/* Reads a task from explicit files (labels_path NULL for tasks without a labels file). Every
 * malformed line gives "FILE:LINE: problem"; a labels file whose line count differs from the
 * documents', or a file without documents, is an error naming the file. */
int pb_task_load(const char *name, const char *docs_path, const char *labels_path, pb_task **out, pb_err *err);
/* Reads a task through the dataset registry (pb_data_path, roles "docs" / "labels") from the
 * data folder data_dir (NULL: the default folder, see pb_data_dir). */
int pb_task_open(const char *name, const char *data_dir, pb_task **out, pb_err *err);
void pb_task_free(pb_task *t);

/* ---- text helpers with Python semantics (exposed for tests) ----------------------------
 * Whitespace is Python's str.isspace() (pb_py_isspace in pb_data.h). */

/* Number of code points of len bytes of UTF-8 (invalid bytes count one each, as a
 * surrogateescape decode would). */
int64_t pb_utf8_len(const char *s, size_t len);
/* str.strip() / str.rstrip(): returns the kept byte range [*b, *e) of s[0..len). */
void pb_py_strip(const char *s, size_t len, size_t *b, size_t *e);
size_t pb_py_rstrip_len(const char *s, size_t len);
/* str.capitalize(): first code point title-cased, the rest lower-cased. Case mapping covers
 * ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (other code points are kept); the
 * task files' ctx_b fields are pure ASCII. Returns a malloc'd string, NULL on OOM. */
char *pb_py_capitalize(const char *s);
/* lm-eval's HellaSwag preprocess: strip; " [title]" -> ". "; remove "[...]" tags (non-greedy,
 * not across a newline, like re.sub(r"\[.*?\]", "")); one pass of "  " -> " ". malloc'd. */
char *pb_hellaswag_preprocess(const char *s);
/* WinoGrande partial scoring: for sentence with a "_" and an option, *ctx = sentence up to
 * the first "_" + option, *cont = " " + (rest after the "_").strip(). Both malloc'd; -1 with
 * err when the sentence has no "_". */
int pb_winogrande_split(const char *sentence, const char *option, char **ctx, char **cont, pb_err *err);

#endif
