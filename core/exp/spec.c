/* spec.c — pb_exp_load: an experiment file read, checked and expanded (see exp.h for the
 * layout). This file reads the top-level sections (name, models, calibration, evaluation,
 * recovery, published) and writes the parts of every run's canonical configuration they
 * decide; spec_methods.c reads the methods, spec_sweep.c expands the sweep.
 *
 * Paths in the file are resolved against the file's folder; a run's configuration records
 * them as written, so that its run_id does not change when the checkout moves. Everything
 * the experiment keeps lives in its arena; a failed load frees all of it. */
#include "spec_internal.h"
#include "pb_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_FILE = 16 << 20 };

static int oom(sp_ctx *c) { return pb_err_set(c->err, "%s: out of memory", c->file); }

/* Names that become parts of folder names and run labels. */
static int check_name(sp_ctx *c, const sp_node *v, const char *what, const char *extra) {
    if (v->len > 200) return sp_fail(c, v, "%s is longer than 200 characters", what);
    for (const char *p = v->s; *p; p++)
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') && !strchr(extra, *p))
            return sp_fail(c, v, "%s '%s' may only use letters, digits and %s", what, v->s, extra);
    if (!strcmp(v->s, ".") || !strcmp(v->s, ".."))
        return sp_fail(c, v, "%s '%s' is not a usable name", what, v->s);
    return 0;
}

static int read_models(sp_ctx *c, const sp_node *list) {
    static const char *const keys[] = {"name", "path", "tokenizer", NULL};
    pb_exp *e = c->e;
    PB_TRY(sp_want_seq(c, list, "'models'", true));
    e->models = pb_arena_alloc_n(&e->arena, (size_t)list->n, sizeof *e->models);
    c->model_path_src = pb_arena_alloc_n(&c->tmp, (size_t)list->n, sizeof(char *));
    c->model_tok_src = pb_arena_alloc_n(&c->tmp, (size_t)list->n, sizeof(char *));
    if (!e->models || !c->model_path_src || !c->model_tok_src) return oom(c);
    for (int i = 0; i < list->n; i++) {
        const sp_node *x = list->kid[i], *name, *path, *tok;
        pb_exp_model *m = &e->models[i];
        const char *s;
        PB_TRY(sp_want_map(c, x, "each entry of 'models'"));
        PB_TRY(sp_check_keys(c, x, keys, "a model entry"));
        if (!(name = sp_get(x, "name"))) return sp_fail(c, x, "a model entry has no 'name'");
        PB_TRY(sp_text(c, name, "name", &s));
        PB_TRY(check_name(c, name, "model name", "_.+-"));
        m->name = (char *)s;
        for (int j = 0; j < i; j++)
            if (!strcmp(e->models[j].name, s)) {
                const sp_node *first = sp_get(list->kid[j], "name");
                return sp_fail(c, name, "duplicate model name '%s' (first at line %d)", s, first->line);
            }
        if (!(path = sp_get(x, "path"))) return sp_fail(c, x, "model '%s' has no 'path'", s);
        PB_TRY(sp_text(c, path, "path", &c->model_path_src[i]));
        if (!(m->path = (char *)sp_resolve(c, path->s))) return oom(c);
        if ((tok = sp_get(x, "tokenizer")) && !sp_is_null(tok)) {
            PB_TRY(sp_text(c, tok, "tokenizer", &c->model_tok_src[i]));
            if (!(m->tokenizer = (char *)sp_resolve(c, tok->s))) return oom(c);
        }
        e->n_models = i + 1;
    }
    return 0;
}

static int read_calib(sp_ctx *c, const sp_node *x, sp_buf *y) {
    static const char *const keys[] = {"dataset", "split", "samples", "seq_len", "sampling", NULL};
    pb_exp_calib *k = &c->e->calib;
    const sp_node *v;
    bool file = false;
    k->dataset = "wikitext2";
    k->samples = 10;
    k->seq_len = 128;
    k->sampling = PB_CALIB_RANDOM;
    c->calib_dataset_src = "wikitext2";
    if (x && !sp_is_null(x)) {
        PB_TRY(sp_want_map(c, x, "'calibration'"));
        PB_TRY(sp_check_keys(c, x, keys, "calibration"));
        if ((v = sp_get(x, "dataset"))) {
            PB_TRY(sp_dataset(c, v, "dataset", "text", true, (const char **)&k->dataset, &file));
            c->calib_dataset_src = v->s;
        }
        if ((v = sp_get(x, "split")) && !sp_is_null(v)) {
            const char *canon;
            pb_err scratch = {0};
            if (file)
                return sp_fail(c, v, "'split' applies to registered datasets, not to the file %s", c->calib_dataset_src);
            if (v->kind != SP_SCALAR)
                return sp_fail(c, v, "'split' must be text, not %s", v->kind == SP_SEQ ? "a list" : "a mapping");
            if (pb_data_split_name(k->dataset, v->s, &canon, &scratch) != 0) return sp_fail(c, v, "%s", scratch.msg);
            k->split = (char *)canon;
        }
        PB_TRY(sp_get_int(c, x, "samples", 1, 1000000, &k->samples));
        PB_TRY(sp_get_int(c, x, "seq_len", 2, 1 << 20, &k->seq_len));
        if ((v = sp_get(x, "sampling"))) {
            char d[80];
            if (v->kind == SP_SCALAR && !strcmp(v->s, "contiguous")) k->sampling = PB_CALIB_CONTIGUOUS;
            else if (!(v->kind == SP_SCALAR && !strcmp(v->s, "random")))
                return sp_fail(c, v, "unknown sampling %s (random, contiguous)", sp_describe(v, d, sizeof d));
        }
    }
    const char *split = k->split;
    pb_err scratch = {0};
    if (!file && !split && pb_data_split_name(k->dataset, NULL, &split, &scratch) != 0) split = NULL;
    sp_puts(y, "calibration:\n");
    sp_kv_str(y, 2, "dataset", c->calib_dataset_src);
    sp_kv_str(y, 2, "split", file ? NULL : split);
    sp_kv_int(y, 2, "samples", k->samples);
    sp_kv_int(y, 2, "seq_len", k->seq_len);
    sp_kv_str(y, 2, "sampling", k->sampling == PB_CALIB_CONTIGUOUS ? "contiguous" : "random");
    return 0;
}

static int build(sp_ctx *c) {
    static const char *const top[] = {"name", "description", "models", "calibration", "methods", "sweep", "dense",
                                      "evaluation", "recovery", "published", NULL};
    const sp_node *r = c->root, *v;
    pb_exp *e = c->e;
    char d[80];
    if (!r || sp_is_null(r))
        return sp_fail(c, r, "the file holds no experiment; it needs at least 'name', 'models' and 'methods'");
    if (r->kind != SP_MAP)
        return sp_fail(c, r, "an experiment file must be a mapping of keys (name, models, methods, ...), not %s",
                       sp_describe(r, d, sizeof d));
    PB_TRY(sp_check_keys(c, r, top, "the experiment"));
    if (!(v = sp_get(r, "name")))
        return sp_fail(c, r, "'name' is missing (the experiment's name names its results folder)");
    PB_TRY(sp_text(c, v, "name", (const char **)&e->name));
    PB_TRY(check_name(c, v, "experiment name", "_.-"));
    if ((v = sp_get(r, "description")) && !sp_is_null(v))
        PB_TRY(sp_text(c, v, "description", (const char **)&e->description));
    if (!(v = sp_get(r, "models"))) return sp_fail(c, r, "'models' is missing (a list of {name, path})");
    PB_TRY(read_models(c, v));
    sp_buf y = {0}, ev = {0};
    int rc = read_calib(c, sp_get(r, "calibration"), &y);
    if (!rc && !(v = sp_get(r, "methods"))) rc = sp_fail(c, r, "'methods' is missing (a list of {name, method, ...})");
    if (!rc) rc = sp_methods(c, v);
    e->dense = true;
    if (!rc && (v = sp_get(r, "dense"))) rc = sp_bool(c, v, "dense", &e->dense);
    if (!rc) rc = sp_read_eval(c, sp_get(r, "evaluation"), &ev);
    if (!rc) sp_printf(&y, "%s", ev.p ? ev.p : "");
    if (!rc) rc = sp_read_recovery(c, sp_get(r, "recovery"), &y);
    if (!rc) rc = sp_read_published(c, sp_get(r, "published"));
    if (!rc) {
        c->common_yaml = sp_buf_take(c, &y, &c->tmp);
        c->dense_yaml = sp_buf_take(c, &ev, &c->tmp);
        rc = c->common_yaml && c->dense_yaml ? 0 : -1;
    }
    free(y.p);
    free(ev.p);
    return rc ? rc : sp_sweep(c, sp_get(r, "sweep"));
}

/* The whole file, at most MAX_FILE bytes (a device or a huge file is refused, not read on). */
static int read_file(const char *path, char **out, size_t *n, pb_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return pb_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 0, k = 0;
    char *buf = NULL;
    int rc = 0;
    for (;;) {
        if (k == cap) {
            if (cap > MAX_FILE) break;   /* refused below */
            cap = cap ? 2 * cap : 1 << 14;
            char *g = realloc(buf, cap + 1);
            if (!g) {
                rc = pb_err_set(err, "%s: out of memory", path);
                break;
            }
            buf = g;
        }
        size_t r = fread(buf + k, 1, cap - k, f);
        k += r;
        if (r == 0) {
            if (ferror(f))
                rc = pb_err_set(err, "%s: cannot read: %s", path, errno == EISDIR ? "it is a folder" : strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!rc && k > MAX_FILE)
        rc = pb_err_set(err, "%s: more than %d bytes; an experiment file is a few kilobytes of text", path, MAX_FILE);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[k] = 0;
    *out = buf;
    *n = k;
    return 0;
}

int pb_exp_load(const char *path, pb_exp **out, pb_err *err) {
    *out = NULL;
    char *text = NULL;
    size_t n = 0;
    PB_TRY(read_file(path, &text, &n, err));
    pb_arena a;
    pb_arena_init(&a, 1 << 16);
    pb_exp *e = pb_arena_alloc(&a, sizeof *e);
    if (!e) {
        free(text);
        pb_arena_free(&a);
        return pb_err_set(err, "%s: out of memory", path);
    }
    e->arena = a;   /* from here on only e->arena grows */
    sp_ctx c = {.file = path, .e = e, .err = err};
    pb_arena_init(&c.tmp, 1 << 16);
    /* the folder relative paths resolve against: "" for a bare file name */
    size_t k = strlen(path);
    while (k > 0 && path[k - 1] != '/') k--;
    while (k > 1 && path[k - 1] == '/') k--;
    char *dir = pb_arena_strndup(&c.tmp, path, k);
    e->path = pb_arena_strdup(&e->arena, path);
    int rc = dir && e->path ? 0 : pb_err_set(err, "%s: out of memory", path);
    c.dir = dir;
    if (!rc) rc = sp_parse(&c, text, n);
    if (!rc) rc = build(&c);
    free(text);
    pb_arena_free(&c.tmp);
    if (rc) {
        pb_arena mine = e->arena;
        pb_arena_free(&mine);
        return -1;
    }
    *out = e;
    return 0;
}

void pb_exp_free(pb_exp *e) {
    if (!e) return;
    pb_arena mine = e->arena;   /* e itself lives in the arena */
    pb_arena_free(&mine);
}

bool pb_exp_in_shard(int run, int k, int n) { return run >= 0 && n >= 1 && k >= 1 && k <= n && run % n + 1 == k; }
