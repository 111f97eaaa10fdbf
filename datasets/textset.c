/* textset.c — one evaluation text from a registered dataset or a user's file: find and
 * check the file, read its rows in the dataset's format, join them with the protocol's
 * separator (LLM-Pruner / GPTQ: "\n\n"; GPTQ c4 and SparseGPT's ptb: " "). */
#include "pb_data.h"

#include <stdlib.h>
#include <string.h>

void pb_text_set_free(pb_text_set *t) {
    if (!t) return;
    free(t->name);
    free(t->split);
    free(t->path);
    free(t->text);
    memset(t, 0, sizeof *t);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool registered(const char *name) {
    pb_err e;
    const pb_data_info *in;
    return pb_data_info_get(name, &in, &e) == 0;
}

static bool all_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n\v\f", s[i])) return false;
    return true;
}

int pb_data_text(const char *data_dir_opt, const char *dataset, const char *split, const char *join, bool verify,
                 pb_text_set *out, pb_err *err) {
    memset(out, 0, sizeof *out);
    if (!dataset || !*dataset) return pb_err_set(err, "no dataset given");
    pb_text_format fmt;
    const char *field = "text", *sep = join;
    int64_t max_docs = 0;
    if (registered(dataset)) {
        const pb_data_info *in;
        PB_TRY(pb_data_info_get(dataset, &in, err));
        if (strcmp(in->kind, "text") != 0) {
            char known[256];
            pb_data_names("text", known, sizeof known);
            return pb_err_set(err, "dataset '%s' is a %s set, not a text corpus; text corpora: %s (or a .txt/.jsonl file)",
                              dataset, in->kind, known);
        }
        const char *sname;
        PB_TRY(pb_data_split_name(dataset, split, &sname, err));
        char *dir = NULL;
        PB_TRY(pb_data_dir(data_dir_opt, &dir, err));
        int rc = pb_data_path(dir, dataset, sname, NULL, verify, &out->path, err);
        free(dir);
        if (rc) return -1;
        out->split = strdup(sname);
        fmt = in->format;
        if (in->field) field = in->field;
        if (!sep) sep = in->join;
        max_docs = in->max_docs;
        out->truncate_windows = in->truncate_windows;
    } else if (pb_file_exists(dataset)) {
        if (split) return pb_err_set(err, "%s: --split applies to registered datasets, not to a file", dataset);
        out->path = strdup(dataset);
        fmt = ends_with(dataset, ".jsonl") || ends_with(dataset, ".json") ? PB_TEXT_JSONL : PB_TEXT_PLAIN;
        if (!sep) sep = "\n\n";
    } else {
        char known[256];
        pb_data_names("text", known, sizeof known);
        if (strchr(dataset, '/') || strchr(dataset, '.'))
            return pb_err_set(err, "%s: no such file (and not a registered dataset: %s)", dataset, known);
        return pb_err_set(err, "unknown dataset '%s'; known text corpora: %s (or the path of a .txt/.jsonl file)", dataset,
                          known);
    }
    out->name = strdup(dataset);
    if (!out->name || !out->path || (!out->split && registered(dataset))) {
        pb_text_set_free(out);
        return pb_err_set(err, "out of memory");
    }
    pb_rows rows;
    if (pb_rows_read(out->path, fmt, field, max_docs, &rows, err)) { pb_text_set_free(out); return -1; }
    int rc = pb_rows_join(&rows, sep, &out->text, &out->len, err);
    out->n_rows = rows.n;
    pb_rows_free(&rows);
    if (rc) { pb_text_set_free(out); return -1; }
    if (out->n_rows == 0 || all_space(out->text, out->len)) {
        pb_err_set(err, "%s: empty dataset (no text%s)", out->path, fmt == PB_TEXT_JSONL ? " in any JSON line" : "");
        pb_text_set_free(out);
        return -1;
    }
    return 0;
}
