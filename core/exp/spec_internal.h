/* spec_internal.h — private to core/exp/spec*.c: the experiment file as a tree of YAML nodes
 * with their positions, the checked readers of typed values, and the canonical YAML writer.
 *
 * spec_yaml.c builds the tree from libyaml's events (refusing anchors, aliases, tags, duplicate
 * keys, a second document); spec_util.c reads typed values; spec_emit.c writes canonical YAML
 * text; spec.c loads the file and reads name, models and calibration; spec_sections.c
 * evaluation, recovery and published; spec_methods.c the method entries and their prune
 * options; spec_sweep.c the sweep axes and the expansion into runs. Every error is one line
 * "FILE:LINE:COL: message" (1-based, the position of the offending node). */
#ifndef PB_SPEC_INTERNAL_H
#define PB_SPEC_INTERNAL_H

#include "exp.h"

#include <stdarg.h>

/* ---- the tree -------------------------------------------------------------------------- */

typedef enum { SP_SCALAR, SP_SEQ, SP_MAP } sp_kind;

typedef struct sp_node {
    sp_kind kind;
    int line, col;              /* 1-based start of the node */
    const char *s;              /* scalar text, NUL-terminated (no NUL inside) */
    size_t len;
    bool plain;                 /* a plain (unquoted) scalar: only these are numbers, booleans, null */
    struct sp_node **kid;       /* seq: n items; map: 2n nodes, key i at 2i, its value at 2i+1 */
    int n;
} sp_node;

/* ---- parse state ------------------------------------------------------------------------ */

typedef struct sp_method_src sp_method_src;   /* spec_methods.c: one method entry as written */

typedef struct {
    const char *file;           /* the path as given (messages) */
    const char *dir;            /* its folder, "" when it has none (relative paths resolve against it) */
    pb_exp *e;                  /* being filled; strings and arrays in e->arena */
    pb_arena tmp;               /* the tree and everything only the parse needs */
    pb_err *err;
    const sp_node *root;
    /* as written, for the canonical run configuration */
    const char **model_path_src, **model_tok_src;   /* (n_models) */
    const char *calib_dataset_src;
    const char *lora_data_src;
    sp_method_src *msrc;        /* (n_methods) */
    char *common_yaml;          /* calibration, evaluation, recovery sections (tmp) */
    char *dense_yaml;           /* evaluation only (tmp) */
} sp_ctx;

/* One located error: "FILE:LINE:COL: message"; returns -1. at NULL: line 1, column 1. */
int sp_fail(sp_ctx *c, const sp_node *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sp_fail_at(sp_ctx *c, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* spec_yaml.c: text (n bytes) into c->root (NULL for a file without a document). */
int sp_parse(sp_ctx *c, const char *text, size_t n);

/* ---- typed readers (spec_util.c) --------------------------------------------------------- */

bool sp_is_null(const sp_node *v);
/* "'ten'", "a list", "a mapping", "null": how a wrong value is named in messages (buf: 80 bytes). */
const char *sp_describe(const sp_node *v, char *buf, size_t cap);
/* The value of key in map, NULL when absent. */
const sp_node *sp_get(const sp_node *map, const char *key);
/* Every key of map must be one of allowed (NULL-terminated); an unknown key is an error at that
 * key naming `where` and, for a near miss, the key meant. */
int sp_check_keys(sp_ctx *c, const sp_node *map, const char *const *allowed, const char *where);
/* v must be a mapping / a list (what: "'calibration'", "each model"). */
int sp_want_map(sp_ctx *c, const sp_node *v, const char *what);
int sp_want_seq(sp_ctx *c, const sp_node *v, const char *what, bool nonempty);
/* Text: any scalar but null; copied into the experiment's arena. */
int sp_text(sp_ctx *c, const sp_node *v, const char *key, const char **out);
/* Integers in [lo, hi] (plain decimal), numbers in [lo, hi] or [lo, hi) (hi_open), booleans. */
int sp_int(sp_ctx *c, const sp_node *v, const char *key, int64_t lo, int64_t hi, int64_t *out);
int sp_num(sp_ctx *c, const sp_node *v, const char *key, double lo, double hi, bool lo_open, bool hi_open,
           double *out);
int sp_bool(sp_ctx *c, const sp_node *v, const char *key, bool *out);
/* The name in names (n of them) that s was probably meant to be, or NULL. */
const char *sp_suggest(const char *s, const char *const *names, int n);
/* " (did you mean 'x'?)" or "" for messages (buf: at least 160 bytes). */
const char *sp_did_you_mean(const char *s, const char *const *names, int n, char *buf, size_t cap);
/* path resolved against the YAML file's folder unless absolute (in the experiment's arena). */
const char *sp_resolve(sp_ctx *c, const char *path);
/* A data set value: a registered dataset of `kind` ("text" or "task") stays a name; otherwise a
 * path (resolved) when it looks like one, else an unknown-name error at v. *is_file tells which. */
int sp_dataset(sp_ctx *c, const sp_node *v, const char *key, const char *kind, bool allow_file, const char **out,
               bool *is_file);

/* A list, or one value standing for a one-element list (non-empty). */
int sp_items(sp_ctx *c, const sp_node *v, const char *what, sp_node *const **out, int *n);
/* An optional section: absent (NULL), given empty (null: its defaults), or a mapping of keys. */
int sp_section(sp_ctx *c, const sp_node *s, const char *name, const char *const *keys);
/* An optional integer key of mapping s into *out (unchanged when absent). */
int sp_get_int(sp_ctx *c, const sp_node *s, const char *key, int64_t lo, int64_t hi, int *out);

/* ---- YAML text (spec_emit.c) ------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sp_buf;

void sp_puts(sp_buf *b, const char *s);
void sp_printf(sp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A string as a YAML scalar: plain when that reads back as the same string, else double-quoted. */
void sp_put_str(sp_buf *b, const char *s);
/* NULL as "null". */
void sp_put_opt_str(sp_buf *b, const char *s);
/* The shortest text that reads back as exactly x, always with a '.' (16.0, 1.0e-05): a float. */
void sp_put_num(sp_buf *b, double x);
/* "key: value\n" with indent spaces first. */
void sp_kv_str(sp_buf *b, int indent, const char *key, const char *s);
void sp_kv_num(sp_buf *b, int indent, const char *key, double x);
void sp_kv_int(sp_buf *b, int indent, const char *key, int64_t x);
void sp_kv_bool(sp_buf *b, int indent, const char *key, bool x);
/* Moves the text into the arena (NULL and an error when out of memory). */
char *sp_buf_take(sp_ctx *c, sp_buf *b, pb_arena *a);

/* ---- sections ---------------------------------------------------------------------------- */

/* spec_sections.c: evaluation and recovery (their configuration sections appended to y), and
 * the published rows (e->published_yaml). */
int sp_read_eval(sp_ctx *c, const sp_node *x, sp_buf *y);
int sp_read_recovery(sp_ctx *c, const sp_node *x, sp_buf *y);
int sp_read_published(sp_ctx *c, const sp_node *x);

/* spec_methods.c: the `methods` list into e->methods (each entry's options resolved when the
 * entry is complete by itself, as written when it needs the sweep's criterion). */
int sp_methods(sp_ctx *c, const sp_node *list);
/* The prune options of method entry mi with the sweep's criterion / granularity (NULL: the
 * entry's own), resolved and checked as `prunebench prune` would read them; errors at the
 * node that gave the offending value. */
int sp_method_resolve(sp_ctx *c, int mi, const sp_node *criterion, const sp_node *granularity, pb_prune_opts *o);
/* v is a known criterion / granularity name (key "criterion" or "granularity"). */
int sp_check_choice(sp_ctx *c, const sp_node *v, const char *key);
/* The prune section of a run's configuration (amount and seed excluded). */
void sp_method_yaml(sp_buf *b, const pb_prune_opts *o, const sp_ctx *c, int mi, const sp_node *granularity);
/* Whether method name m removes blocks / modules (depth) rather than heads and channels. */
bool sp_method_is_depth(const char *m);

/* spec_sweep.c: the sweep (NULL: absent) expanded into e->runs. */
int sp_sweep(sp_ctx *c, const sp_node *sweep);

#endif
