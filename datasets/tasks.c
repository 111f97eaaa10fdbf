/* tasks.c — reading the task files line by line and the table of known tasks.
 *
 * The per-task document builders are in tasks_docs.c; this file owns the jsonl and labels
 * readers, their error messages ("FILE:LINE: problem") and the registry lookup. */
#include "tasks.h"
#include "tasks_internal.h"
#include "pb_data.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

const char *const pb_task_names[] = {"boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge",
                                     "openbookqa"};
const int pb_task_count = (int)(sizeof pb_task_names / sizeof pb_task_names[0]);

const char *pb_task_names_joined(void) {
    return "boolq, piqa, hellaswag, winogrande, arc_easy, arc_challenge, openbookqa";
}

bool pb_task_known(const char *name) { return pb_task_def_find(name) != NULL; }

bool pb_task_needs_labels(const char *name) {
    const pb_task_def *d = pb_task_def_find(name);
    return d && d->labels != PB_LABELS_NONE;
}

/* One line of a text file: [b, e) without the "\n" (and without a "\r" before it). */
typedef struct {
    const char *text;
    size_t size, pos;
    int line;
} line_reader;

static bool next_line(line_reader *r, const char **b, size_t *n) {
    if (r->pos >= r->size) return false;
    const char *s = r->text + r->pos, *nl = memchr(s, '\n', r->size - r->pos);
    size_t len = nl ? (size_t)(nl - s) : r->size - r->pos;
    r->pos += len + (nl ? 1 : 0);
    r->line++;
    if (len > 0 && s[len - 1] == '\r') len--;
    *b = s;
    *n = len;
    return true;
}

static bool blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n", s[i])) return false;
    return true;
}

/* Whether everything after the reader's position is whitespace (trailing blank lines). */
static bool rest_blank(const line_reader *r) { return blank(r->text + r->pos, r->size - r->pos); }

typedef struct {
    char **items;  /* (n) NUL-terminated label lines, trimmed */
    int n;
} label_list;

static void labels_free(label_list *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static int read_labels(const char *path, label_list *out, pb_err *err) {
    char *text = NULL;
    size_t size = 0;
    PB_TRY(pb_file_read_all(path, &text, &size, err));
    line_reader r = {text, size, 0, 0};
    const char *b;
    size_t n;
    int cap = 0;
    while (next_line(&r, &b, &n)) {
        if (blank(b, n)) {
            if (rest_blank(&r)) break;
            labels_free(out);
            free(text);
            return pb_err_set(err, "%s:%d: empty line where a label was expected", path, r.line);
        }
        while (n > 0 && strchr(" \t", b[n - 1])) n--;
        while (n > 0 && strchr(" \t", *b)) { b++; n--; }
        if (out->n == cap) {
            int nc = cap ? 2 * cap : 1024;
            char **ni = realloc(out->items, (size_t)nc * sizeof *ni);
            if (!ni) { labels_free(out); free(text); return pb_err_set(err, "%s: out of memory", path); }
            out->items = ni;
            cap = nc;
        }
        out->items[out->n] = malloc(n + 1);
        if (!out->items[out->n]) { labels_free(out); free(text); return pb_err_set(err, "%s: out of memory", path); }
        memcpy(out->items[out->n], b, n);
        out->items[out->n++][n] = 0;
    }
    free(text);
    return 0;
}

int pb_task_load(const char *name, const char *docs_path, const char *labels_path, pb_task **out, pb_err *err) {
    *out = NULL;
    const pb_task_def *def = pb_task_def_find(name);
    if (!def) return pb_err_set(err, "unknown task '%s' (known: %s)", name, pb_task_names_joined());
    if (def->labels == PB_LABELS_REQUIRED && !labels_path)
        return pb_err_set(err, "task %s needs a labels file next to %s", name, docs_path);
    if (def->labels == PB_LABELS_NONE && labels_path)
        return pb_err_set(err, "%s: task %s takes no labels file (its documents carry the answers)", labels_path, name);

    label_list labels = {0};
    if (labels_path) PB_TRY(read_labels(labels_path, &labels, err));
    char *text = NULL;
    size_t size = 0;
    if (pb_file_read_all(docs_path, &text, &size, err)) { labels_free(&labels); return -1; }

    pb_task *t = calloc(1, sizeof *t);
    if (!t) { free(text); labels_free(&labels); return pb_err_set(err, "out of memory"); }
    pb_arena_init(&t->arena, (size_t)1 << 20);
    t->name = def->name;
    t->has_norm = def->has_norm;
    t->headline_norm = def->headline_norm;
    t->docs_path = pb_arena_strdup(&t->arena, docs_path);
    t->labels_path = labels_path ? pb_arena_strdup(&t->arena, labels_path) : NULL;
    int cap = 0, rc = 0;
    line_reader r = {text, size, 0, 0};
    const char *b;
    size_t n;
    if (!t->docs_path || (labels_path && !t->labels_path)) { rc = pb_err_set(err, "out of memory"); goto out; }
    while (next_line(&r, &b, &n)) {
        if (blank(b, n)) {
            if (rest_blank(&r)) break;
            rc = pb_err_set(err, "%s:%d: empty line where a JSON document was expected", docs_path, r.line);
            goto out;
        }
        if (t->n_docs == cap) {
            int nc = cap ? 2 * cap : 1024;
            pb_task_doc *nd = realloc(t->docs, (size_t)nc * sizeof *nd);
            if (!nd) { rc = pb_err_set(err, "%s: out of memory", docs_path); goto out; }
            t->docs = nd;
            cap = nc;
        }
        const char *jerr = NULL;
        cJSON *o = cJSON_ParseWithLengthOpts(b, n, &jerr, false);
        if (!o || !cJSON_IsObject(o)) {
            if (o) rc = pb_err_set(err, "%s:%d: expected a JSON object", docs_path, r.line);
            else rc = pb_err_set(err, "%s:%d:%zu: not valid JSON", docs_path, r.line,
                                 (size_t)(jerr && jerr >= b && jerr <= b + n ? jerr - b : 0) + 1);
            cJSON_Delete(o);
            goto out;
        }
        if (labels_path && t->n_docs >= labels.n) {
            cJSON_Delete(o);
            rc = pb_err_set(err, "%s: has %d labels, fewer than the documents of %s (line %d has none)", labels_path,
                            labels.n, docs_path, r.line);
            goto out;
        }
        const char *label = labels_path ? labels.items[t->n_docs] : NULL;
        pb_task_doc *d = &t->docs[t->n_docs];
        memset(d, 0, sizeof *d);
        d->line = r.line;
        bool bad_label = false;
        rc = def->build(o, label, d, &t->arena, &bad_label, err);
        cJSON_Delete(o);
        if (rc) {
            if (bad_label) pb_err_prefix(err, "%s:%d: ", labels_path, t->n_docs + 1);
            else pb_err_prefix(err, "%s:%d: ", docs_path, r.line);
            goto out;
        }
        t->n_docs++;
    }
    if (t->n_docs == 0) { rc = pb_err_set(err, "%s: no documents", docs_path); goto out; }
    if (labels_path && labels.n != t->n_docs) {
        rc = pb_err_set(err, "%s: has %d labels for the %d documents of %s", labels_path, labels.n, t->n_docs,
                        docs_path);
        goto out;
    }
out:
    free(text);
    labels_free(&labels);
    if (rc) { pb_task_free(t); return -1; }
    *out = t;
    return 0;
}

int pb_task_open(const char *name, const char *data_dir, pb_task **out, pb_err *err) {
    *out = NULL;
    const pb_task_def *def = pb_task_def_find(name);
    if (!def) return pb_err_set(err, "unknown task '%s' (known: %s)", name, pb_task_names_joined());
    char *dir = NULL, *docs = NULL, *labels = NULL;
    int rc = pb_data_dir(data_dir, &dir, err);
    if (!rc) rc = pb_data_path(dir, name, NULL, "docs", true, &docs, err);
    if (!rc && def->labels != PB_LABELS_NONE) rc = pb_data_path(dir, name, NULL, "labels", true, &labels, err);
    if (!rc) rc = pb_task_load(name, docs, labels, out, err);
    free(dir);
    free(docs);
    free(labels);
    return rc;
}

void pb_task_free(pb_task *t) {
    if (!t) return;
    free(t->docs);
    pb_arena_free(&t->arena);
    free(t);
}
