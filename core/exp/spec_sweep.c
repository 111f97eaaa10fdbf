/* spec_sweep.c — the sweep axes and their expansion into runs.
 *
 * Axes, in this fixed order: model, method, criterion, granularity, ratio, native,
 * num_blocks, seed. An axis is either cartesian (its own list) or in one zip group (whose
 * lists advance together); the product runs over "dimensions" in axis order, the last
 * fastest, where a zip group is one dimension placed at its first axis. Absent axes: model
 * and method range over every entry in file order, seed is [0], criterion and granularity are
 * the method entry's own, and an amount axis is simply not set. Dense runs (one per model, in
 * file order) come first.
 *
 * Amount: a depth run removes num_blocks blocks when it has that axis, else ratio; a width
 * run prunes at native (group ratio / p) when it has that axis, else ratio. So one sweep can
 * zip {ratio: [0.2, 0.35], num_blocks: [6, 11]} for depth and width methods alike; the label
 * names every amount axis the run has, the configuration only the amount the method uses.
 *
 * Labels: "MODEL/METHOD[/criterion=C][/granularity=G][/ratio=R][/native=P][/num_blocks=K]/seed=S"
 * (criterion and granularity when they are sweep axes), "MODEL/dense" for dense runs; they are
 * unique, since two runs with one label would have one configuration, which is an error. */
#include "spec_internal.h"

#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { AX_MODEL, AX_METHOD, AX_CRITERION, AX_GRANULARITY, AX_RATIO, AX_NATIVE, AX_NUM_BLOCKS, AX_SEED, N_AX };
static const char *const ax_names[] = {"model", "method", "criterion", "granularity", "ratio", "native",
                                       "num_blocks", "seed", "zip", NULL};
enum { MAX_RUNS = 50000 };

typedef struct {
    int group;             /* -1: cartesian; else its zip group */
    const sp_node *key;    /* NULL: not in the file */
    int n;                 /* values (0: the axis is absent) */
    sp_node *const *v;     /* (n) value nodes; NULL for defaults */
    int *idx;              /* model / method index of each value */
    double *num;           /* ratio / native */
    int64_t *i64;          /* num_blocks / seed */
} axis;

typedef struct {
    int ax[N_AX], n_ax, len;
} dim;

static int oom(sp_ctx *c) { return pb_err_set(c->err, "%s: out of memory", c->file); }

static int name_index(sp_ctx *c, const sp_node *v, const char *what, const char *const *names, int n, int *out) {
    char d[80], g[200], list[600];
    if (v->kind != SP_SCALAR || sp_is_null(v))
        return sp_fail(c, v, "a sweep %s must be a %s name, not %s", what, what, sp_describe(v, d, sizeof d));
    for (int i = 0; i < n; i++)
        if (!strcmp(v->s, names[i])) return *out = i, 0;
    size_t w = 0;
    list[0] = 0;
    for (int i = 0; i < n && w < sizeof list; i++)
        w += (size_t)snprintf(list + w, sizeof list - w, "%s%s", i ? ", " : "", names[i]);
    const char *dm = sp_did_you_mean(v->s, names, n, g, sizeof g);
    if (*dm) return sp_fail(c, v, "the sweep names an unknown %s %s%s", what, sp_describe(v, d, sizeof d), dm);
    return sp_fail(c, v, "the sweep names an unknown %s %s (%ss: %s)", what, sp_describe(v, d, sizeof d), what, list);
}

/* The values of axis a from node v (a list, or one value). */
static int read_axis(sp_ctx *c, int a, const sp_node *key, const sp_node *v, int group, axis *x) {
    pb_exp *e = c->e;
    char what[64];
    snprintf(what, sizeof what, "sweep axis '%s'", ax_names[a]);
    if (v && v->kind == SP_SCALAR && !sp_is_null(v)) {
        sp_node **one = pb_arena_alloc(&c->tmp, sizeof *one);
        if (!one) return oom(c);
        *one = (sp_node *)v;
        x->v = one;
        x->n = 1;
    } else {
        PB_TRY(sp_want_seq(c, v, what, true));
        x->v = v->kid;
        x->n = v->n;
    }
    x->key = key;
    x->group = group;
    x->idx = pb_arena_alloc_n(&c->tmp, (size_t)x->n, sizeof(int));
    x->num = pb_arena_alloc_n(&c->tmp, (size_t)x->n, sizeof(double));
    x->i64 = pb_arena_alloc_n(&c->tmp, (size_t)x->n, sizeof(int64_t));
    const char **names = pb_arena_alloc_n(&c->tmp, (size_t)(e->n_models > e->n_methods ? e->n_models : e->n_methods),
                                          sizeof(char *));
    if (!x->idx || !x->num || !x->i64 || !names) return oom(c);
    for (int i = 0; i < x->n; i++) {
        const sp_node *y = x->v[i];
        switch (a) {
        case AX_MODEL:
            for (int k = 0; k < e->n_models; k++) names[k] = e->models[k].name;
            PB_TRY(name_index(c, y, "model", names, e->n_models, &x->idx[i]));
            break;
        case AX_METHOD:
            for (int k = 0; k < e->n_methods; k++) names[k] = e->methods[k].name;
            PB_TRY(name_index(c, y, "method", names, e->n_methods, &x->idx[i]));
            break;
        case AX_CRITERION:
        case AX_GRANULARITY: PB_TRY(sp_check_choice(c, y, ax_names[a])); break;
        case AX_RATIO:
        case AX_NATIVE: PB_TRY(sp_num(c, y, ax_names[a], 0.0, 1.0, false, true, &x->num[i])); break;
        case AX_NUM_BLOCKS: PB_TRY(sp_int(c, y, "num_blocks", 0, 1000000, &x->i64[i])); break;
        default: PB_TRY(sp_int(c, y, "seed", 0, INT64_MAX, &x->i64[i])); break;
        }
        /* a cartesian axis listing a value twice would only give duplicate runs */
        for (int j = 0; group < 0 && j < i; j++) {
            bool same = a == AX_RATIO || a == AX_NATIVE ? x->num[j] == x->num[i]
                      : a == AX_NUM_BLOCKS || a == AX_SEED ? x->i64[j] == x->i64[i]
                      : !strcmp(x->v[j]->s, y->s);
            if (same) return sp_fail(c, y, "%s lists %s twice (first at line %d)", what, y->s, x->v[j]->line);
        }
    }
    return 0;
}

static int axis_index(const char *s) {
    for (int a = 0; a < N_AX; a++)
        if (!strcmp(s, ax_names[a])) return a;
    return -1;
}

static int read_zip(sp_ctx *c, const sp_node *zip, axis *ax) {
    PB_TRY(sp_want_seq(c, zip, "'zip'", true));
    for (int g = 0; g < zip->n; g++) {
        const sp_node *grp = zip->kid[g];
        PB_TRY(sp_want_map(c, grp, "each zip group"));
        if (grp->n == 0) return sp_fail(c, grp, "an empty zip group");
        PB_TRY(sp_check_keys(c, grp, ax_names, "a zip group"));
        const axis *first = NULL;
        for (int k = 0; k < grp->n; k++) {
            const sp_node *key = grp->kid[2 * k];
            int a = axis_index(key->s);
            if (a < 0) return sp_fail(c, key, "a zip group cannot hold 'zip'");
            if (ax[a].key && ax[a].group < 0)
                return sp_fail(c, key, "'%s' is both a sweep axis (line %d) and in a zip group", key->s,
                               ax[a].key->line);
            if (ax[a].key)
                return sp_fail(c, key, "'%s' is in two zip groups (first at line %d)", key->s, ax[a].key->line);
            PB_TRY(read_axis(c, a, key, grp->kid[2 * k + 1], g, &ax[a]));
            if (first && ax[a].n != first->n)
                return sp_fail(c, key, "the lists of a zip group differ in length: '%s' has %d value%s, '%s' has %d",
                               key->s, ax[a].n, ax[a].n == 1 ? "" : "s", first->key->s, first->n);
            if (!first) first = &ax[a];
        }
    }
    return 0;
}

/* ---- one run ------------------------------------------------------------------------------ */

static void put_model(sp_buf *b, const sp_ctx *c, int mo) {
    sp_puts(b, "model:\n");
    sp_kv_str(b, 2, "name", c->e->models[mo].name);
    sp_kv_str(b, 2, "path", c->model_path_src[mo]);
    sp_kv_str(b, 2, "tokenizer", c->model_tok_src[mo]);
}

static int finish(sp_ctx *c, pb_exp_run *r, sp_buf *cfg, sp_buf *label) {
    if (!(r->config_yaml = sp_buf_take(c, cfg, &c->e->arena))) return -1;
    if (!(r->label = sp_buf_take(c, label, &c->e->arena))) return -1;
    char hex[65];
    pb_sha256_hex(r->config_yaml, strlen(r->config_yaml), hex);
    memcpy(r->run_id, hex, 12);
    r->run_id[12] = 0;
    return 0;
}

static int dense_run(sp_ctx *c, int mo, pb_exp_run *r) {
    sp_buf cfg = {0}, label = {0};
    r->model = mo;
    r->method = -1;
    r->ratio = r->native = NAN;
    r->num_blocks = -1;
    pb_prune_opts_default(&r->prune);
    put_model(&cfg, c, mo);
    sp_puts(&cfg, "prune: null\n");
    sp_puts(&cfg, c->dense_yaml);
    sp_printf(&label, "%s/dense", c->e->models[mo].name);
    return finish(c, r, &cfg, &label);
}

/* The pruned run at value indices vi (-1: the axis is absent). */
static int pruned_run(sp_ctx *c, const axis *ax, const int *vi, const sp_node *where, pb_exp_run *r) {
    const pb_exp *e = c->e;
    int mo = ax[AX_MODEL].idx[vi[AX_MODEL]], mi = ax[AX_METHOD].idx[vi[AX_METHOD]];
    const sp_node *crit = vi[AX_CRITERION] >= 0 ? ax[AX_CRITERION].v[vi[AX_CRITERION]] : NULL;
    const sp_node *gran = vi[AX_GRANULARITY] >= 0 ? ax[AX_GRANULARITY].v[vi[AX_GRANULARITY]] : NULL;
    uint64_t seed = vi[AX_SEED] >= 0 ? (uint64_t)ax[AX_SEED].i64[vi[AX_SEED]] : 0;
    sp_buf cfg = {0}, label = {0};
    sp_printf(&label, "%s/%s", e->models[mo].name, e->methods[mi].name);
    if (crit) sp_printf(&label, "/criterion=%s", crit->s);
    if (gran) sp_printf(&label, "/granularity=%s", gran->s);
    for (int a = AX_RATIO; a <= AX_NUM_BLOCKS; a++) {
        if (vi[a] < 0) continue;
        sp_printf(&label, "/%s=", ax_names[a]);
        if (a == AX_NUM_BLOCKS) sp_printf(&label, "%lld", (long long)ax[a].i64[vi[a]]);
        else sp_put_num(&label, ax[a].num[vi[a]]);
    }
    sp_printf(&label, "/seed=%llu", (unsigned long long)seed);
    r->model = mo;
    r->method = mi;
    r->seed = seed;
    r->ratio = vi[AX_RATIO] >= 0 ? ax[AX_RATIO].num[vi[AX_RATIO]] : NAN;
    r->native = vi[AX_NATIVE] >= 0 ? ax[AX_NATIVE].num[vi[AX_NATIVE]] : NAN;
    r->num_blocks = vi[AX_NUM_BLOCKS] >= 0 ? (int)ax[AX_NUM_BLOCKS].i64[vi[AX_NUM_BLOCKS]] : -1;
    int rc = sp_method_resolve(c, mi, crit, gran, &r->prune);
    pb_prune_opts *o = &r->prune;
    bool depth = sp_method_is_depth(o->method);
    int own = depth ? AX_NUM_BLOCKS : AX_NATIVE, other = depth ? AX_NATIVE : AX_NUM_BLOCKS;
    if (!rc && vi[own] >= 0) {
        if (depth) o->count = (int)ax[own].i64[vi[own]];
        else o->native = ax[own].num[vi[own]];
    } else if (!rc && vi[AX_RATIO] >= 0) {
        o->ratio = ax[AX_RATIO].num[vi[AX_RATIO]];
    } else if (!rc) {
        const sp_node *at = vi[other] >= 0 ? ax[other].v[vi[other]] : where;
        rc = sp_fail(c, at, "run %s: method %s takes 'ratio' or '%s', not '%s'%s", label.p ? label.p : "?", o->method,
                     ax_names[own], ax_names[other],
                     depth ? " (the per-layer ratio of width methods)" : " (depth pruning's)");
    }
    o->seed = seed;
    if (!rc) {
        put_model(&cfg, c, mo);
        sp_method_yaml(&cfg, o, c, mi, gran);
        if (o->ratio >= 0) sp_kv_num(&cfg, 2, "ratio", o->ratio);
        else sp_puts(&cfg, "  ratio: null\n");
        if (o->native >= 0) sp_kv_num(&cfg, 2, "native", o->native);
        else sp_puts(&cfg, "  native: null\n");
        if (o->count >= 0) sp_kv_int(&cfg, 2, "num_blocks", o->count);
        else sp_puts(&cfg, "  num_blocks: null\n");
        sp_printf(&cfg, "seed: %llu\n", (unsigned long long)seed);
        sp_puts(&cfg, c->common_yaml);
        return finish(c, r, &cfg, &label);
    }
    free(cfg.p);
    free(label.p);
    return rc;
}

/* ---- the product -------------------------------------------------------------------------- */

typedef struct {
    const char *cfg;
    int i;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    int k = strcmp(x->cfg, y->cfg);
    return k ? k : (x->i > y->i) - (x->i < y->i);
}

/* Two runs with one configuration would share a run_id (and a results file): an error naming
 * the first run that repeats an earlier one. */
static int no_duplicates(sp_ctx *c, const sp_node *where) {
    pb_exp *e = c->e;
    int n = e->n_runs, bi = -1, bj = -1;
    keyed *k = malloc(sizeof *k * (size_t)(n ? n : 1));
    if (!k) return oom(c);
    for (int i = 0; i < n; i++) k[i] = (keyed){e->runs[i].config_yaml, i};
    qsort(k, (size_t)n, sizeof *k, cmp_keyed);
    for (int i = 1; i < n; i++)
        if (!strcmp(k[i - 1].cfg, k[i].cfg) && (bj < 0 || k[i].i < bj)) bi = k[i - 1].i, bj = k[i].i;
    free(k);
    if (bj < 0) return 0;
    return sp_fail(c, where, "runs %d (%s) and %d (%s) would be the same run (run_id %s): the sweep repeats a point, or "
                   "varies a value the method does not use (ratio beside num_blocks / native, two entries with the "
                   "same options)", bi, e->runs[bi].label, bj, e->runs[bj].label, e->runs[bi].run_id);
}

int sp_sweep(sp_ctx *c, const sp_node *sweep) {
    pb_exp *e = c->e;
    axis ax[N_AX];
    memset(ax, 0, sizeof ax);
    for (int a = 0; a < N_AX; a++) ax[a].group = -1;
    const sp_node *where = sweep ? sweep : c->root;
    if (sweep && !sp_is_null(sweep)) {
        PB_TRY(sp_want_map(c, sweep, "'sweep'"));
        PB_TRY(sp_check_keys(c, sweep, ax_names, "the sweep"));
        for (int k = 0; k < sweep->n; k++) {
            int a = axis_index(sweep->kid[2 * k]->s);
            if (a >= 0) PB_TRY(read_axis(c, a, sweep->kid[2 * k], sweep->kid[2 * k + 1], -1, &ax[a]));
        }
        const sp_node *zip = sp_get(sweep, "zip");
        if (zip) PB_TRY(read_zip(c, zip, ax));
    }
    /* defaults: every model, every method, seed 0 */
    static const sp_node zero = {SP_SCALAR, 0, 0, "0", 1, true, NULL, 0};
    for (int a = AX_MODEL; a <= AX_METHOD; a++)
        if (!ax[a].key) {
            int n = a == AX_MODEL ? e->n_models : e->n_methods;
            ax[a].n = n;
            ax[a].idx = pb_arena_alloc_n(&c->tmp, (size_t)n, sizeof(int));
            if (!ax[a].idx) return oom(c);
            for (int i = 0; i < n; i++) ax[a].idx[i] = i;
        }
    if (!ax[AX_SEED].key) {
        sp_node **zk = pb_arena_alloc(&c->tmp, sizeof *zk);
        ax[AX_SEED].i64 = pb_arena_alloc(&c->tmp, sizeof(int64_t));   /* zeroed: seed 0 */
        if (!zk || !ax[AX_SEED].i64) return oom(c);
        *zk = (sp_node *)&zero;
        ax[AX_SEED].n = 1;
        ax[AX_SEED].v = zk;
    }
    if (!ax[AX_RATIO].n && !ax[AX_NATIVE].n && !ax[AX_NUM_BLOCKS].n)
        return sp_fail(c, where, "the sweep gives no amount to prune: add 'ratio', 'native' or 'num_blocks'");
    /* dimensions in axis order; a zip group is one, at its first axis */
    dim dims[N_AX];
    int nd = 0;
    int64_t total = 1;
    for (int a = 0; a < N_AX; a++) {
        if (!ax[a].n) continue;
        int g = ax[a].group;
        bool placed = false;
        for (int d = 0; g >= 0 && d < nd; d++)
            if (ax[dims[d].ax[0]].group == g) placed = true, dims[d].ax[dims[d].n_ax++] = a;
        if (placed) continue;
        dims[nd] = (dim){{a}, 1, ax[a].n};
        total *= ax[a].n;
        if (total > MAX_RUNS) return sp_fail(c, where, "the sweep expands to more than %d runs", MAX_RUNS);
        nd++;
    }
    int n_dense = e->dense ? e->n_models : 0;
    e->runs = pb_arena_alloc_n(&e->arena, (size_t)(n_dense + total), sizeof *e->runs);
    if (!e->runs) return oom(c);
    for (int m = 0; m < n_dense; m++) {
        PB_TRY(dense_run(c, m, &e->runs[m]));
        e->n_runs++;
    }
    int pos[N_AX] = {0}, vi[N_AX];
    for (int64_t r = 0; r < total; r++) {
        for (int a = 0; a < N_AX; a++) vi[a] = -1;
        for (int d = 0; d < nd; d++)
            for (int k = 0; k < dims[d].n_ax; k++) vi[dims[d].ax[k]] = pos[d];
        PB_TRY(pruned_run(c, ax, vi, where, &e->runs[e->n_runs]));
        e->n_runs++;
        for (int d = nd - 1; d >= 0 && ++pos[d] == dims[d].len; d--) pos[d] = 0;
    }
    /* method entries no run uses are still checked as written */
    for (int mi = 0; mi < e->n_methods; mi++) {
        bool used = false;
        for (int i = 0; i < ax[AX_METHOD].n && !used; i++) used = ax[AX_METHOD].idx[i] == mi;
        pb_prune_opts o;
        if (!used) PB_TRY(sp_method_resolve(c, mi, NULL, NULL, &o));
    }
    return no_duplicates(c, where);
}
