/* pb_data.h — where evaluation and calibration data live, and how they are read.
 *
 * Files are never bundled: they are found in a data folder (--data-dir, else
 * $PRUNEBENCH_DATA, else ../shared/data or ./data relative to the working directory), under
 * the relative paths that datasets/registry.json gives, with their size and sha256. A
 * missing or corrupt file is an error that names the file, what was expected and where to
 * get it (the registry's source, or `datasets/fetch NAME`). */
#ifndef PB_DATA_H
#define PB_DATA_H

#include "pb_base.h"

typedef struct {
    const char *dataset;   /* "wikitext2" */
    const char *split;     /* "test" */
    const char *role;      /* "docs", "labels", or NULL for text sets */
    const char *path;      /* relative to the data folder: "wikitext2/wiki.test.raw" */
    const char *sha256;    /* 64 hex digits */
    int64_t bytes;
    const char *source;    /* "owner/repo@commit:path" */
    const char *url;       /* canonical download, or NULL */
    /* additions (the fields above keep their meaning; sha256 NULL and bytes -1 mean "not
     * recorded", and the corresponding check is skipped) */
    bool gunzip;           /* url serves the file gzip-compressed; datasets/fetch unpacks it */
} pb_data_file;

/* The data folder: opt if given, else $PRUNEBENCH_DATA, else the first of ../shared/data and
 * ./data that exists. *dir is malloc'd. The error lists what was tried and how to set it. */
int pb_data_dir(const char *opt, char **dir, pb_err *err);

/* Registry lookups. split NULL means the dataset's default split. The returned pointers live
 * as long as the program (the registry is compiled in). Unknown names list the known ones. */
int pb_data_files(const char *dataset, const char *split, const pb_data_file **files, int *n, pb_err *err);
const char *pb_data_default_split(const char *dataset); /* NULL if unknown */

/* Full path of one registered file after checking that it exists and has the registered
 * size (verify: also the sha256, cached per process). role selects among a split's files
 * ("docs" / "labels"; NULL when the split has one file). *path is malloc'd. */
int pb_data_path(const char *dir, const char *dataset, const char *split, const char *role, bool verify,
                 char **path, pb_err *err);

/* ---- additions: dataset descriptions, text corpora ------------------------------------ */

/* How the rows of a text file are read (the HF dataset scripts' semantics, where one exists).
 * "Strip" is Python's str.strip(): Unicode whitespace at both ends. Line ends are Python's
 * universal newlines (\n, \r\n, \r), each read as one "\n". */
typedef enum {
    PB_TEXT_PLAIN = 0,   /* the whole file is one row, byte for byte */
    PB_TEXT_WIKITEXT,    /* HF wikitext: one row per line; the line with its "\n" if it has
                            non-whitespace text, else "" */
    PB_TEXT_LINES,       /* HF ptb_text_only: one row per line, line.strip() */
    PB_TEXT_PARAGRAPHS,  /* blocks separated by blank lines, each stripped; no empty rows */
    PB_TEXT_JSONL,       /* one JSON object per line, a string field ("text"); blank lines skipped */
} pb_text_format;

/* One registered dataset (registry.json). Text sets carry how perplexity builds its text. */
typedef struct {
    const char *name;          /* "wikitext2" */
    const char *kind;          /* "text", "task", "tokenizer" */
    const char *description;
    const char *default_split;
    pb_text_format format;     /* text sets */
    const char *field;         /* PB_TEXT_JSONL: the string field ("text") */
    const char *join;          /* separator between rows ("\n\n", " ") */
    int64_t max_docs;          /* use only the first max_docs rows (C4: 1100); 0 = all */
    int64_t truncate_windows;  /* the token stream is cut to this many windows (GPTQ c4: 256); 0 = no cut */
    int64_t count;             /* task sets: official item count, 0 if not recorded */
    int n_splits;
    const char *const *splits; /* (n_splits) split names in registry order */
} pb_data_info;

/* The registry entry of a dataset; unknown names list the known ones. */
int pb_data_info_get(const char *dataset, const pb_data_info **info, pb_err *err);
/* Comma-separated names of the registered datasets of one kind (NULL: all), in registry
 * order; writes at most cap bytes (NUL-terminated). */
void pb_data_names(const char *kind, char *buf, size_t cap);
/* The registry's own name for a split, accepting the usual synonyms ("validation", "val",
 * "dev" for "valid" and the reverse); NULL split means the default. Unknown splits list the
 * dataset's splits. */
int pb_data_split_name(const char *dataset, const char *split, const char **name, pb_err *err);

/* Rows of a text file. Row i is buf[off[i] .. off[i+1]) (NUL bytes of the file stay in
 * their rows); buf is NUL-terminated after the last row. */
typedef struct {
    char *buf;
    size_t *off;  /* (n + 1) */
    size_t n;
} pb_rows;

/* Reads rows in a format. field: the JSONL field (NULL means "text"); max_rows 0 = all.
 * A JSONL line that is not a JSON object, or lacks the string field, is an error
 * "FILE:LINE: ...". */
int  pb_rows_read(const char *path, pb_text_format fmt, const char *field, int64_t max_rows, pb_rows *out,
                  pb_err *err);
void pb_rows_free(pb_rows *r);
/* Joins the rows with sep into one malloc'd NUL-terminated text. */
int  pb_rows_join(const pb_rows *r, const char *sep, char **text, size_t *len, pb_err *err);

/* One evaluation text, built from a registered dataset or from a file. */
typedef struct {
    char *name;                /* the dataset name, or the file path as given */
    char *split;               /* the registry's split name; NULL for a file */
    char *path;                /* the file read */
    char *text;                /* rows joined */
    size_t len;                /* bytes of text */
    size_t n_rows;
    int64_t truncate_windows;  /* from the registry; 0 = none */
} pb_text_set;

/* dataset: a registered text set, or a file path (".jsonl"/".json": JSONL with a "text"
 * field; anything else: plain text, one row). Registered sets are found in the data folder
 * chosen by data_dir_opt (see pb_data_dir) and checked (verify: sha256 too). join NULL uses
 * the registry's separator ("\n\n" for files). An unknown name that is not an existing file
 * lists the known text sets; an empty text is an error naming the file. */
int  pb_data_text(const char *data_dir_opt, const char *dataset, const char *split, const char *join, bool verify,
                  pb_text_set *out, pb_err *err);
void pb_text_set_free(pb_text_set *t);

/* Python's str.isspace() for one code point (what str.strip() removes). */
bool pb_py_isspace(uint32_t cp);

#endif
