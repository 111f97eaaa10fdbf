/* spec_methods.c — the `methods` entries of an experiment file and their prune options, read
 * the way `prunebench prune` reads its command line (core/cli/prune_args.c): a criterion
 * without a method implies one (taylor / magnitude at block, attn, mlp, module: depth; at
 * head, channel: llm-pruner / magnitude; ppl: depth; l1, l2: magnitude; param_*, vectorize:
 * llm-pruner; wanda: wanda-sp; wifv, ifv, wifn: flap, as its metric; random: random), and
 * granularity "module" is attention with module_joint. Beyond the command line, an option the
 * method would reject or ignore (protect_first for a width method, layers for depth, ...) is a
 * located error here rather than a failed run later. */
#include "spec_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sp_method_src {
    const sp_node *node, *name, *method, *criterion, *granularity, *protect_first, *protect_last, *iterative,
        *layers, *aggregation, *structure, *metric, *bias_compensation;
    int protect_first_v, protect_last_v, layer_start, layer_end;
    bool iterative_v, bias_comp_v;
    pb_prune_opts written;      /* the options as written, before a criterion implies a method */
};

enum { M_DEPTH, M_LLM, M_WANDA, M_FLAP, M_MAGNITUDE, M_RANDOM, N_METHODS };
static const char *const method_names[N_METHODS] = {"depth", "llm-pruner", "wanda-sp", "flap", "magnitude", "random"};
static const char *const method_criteria[N_METHODS][6] = {
    {"magnitude", "taylor", "ppl"}, {"taylor", "param_first", "param_second", "param_mix", "vectorize"},
    {"wanda"}, {"wifv", "ifv", "wifn"}, {"l1", "l2"}, {"random"}};
static const char *const all_criteria[] = {"magnitude", "taylor", "ppl", "param_first", "param_second", "param_mix",
                                           "vectorize", "wanda", "wifv", "ifv", "wifn", "l1", "l2", "random"};
enum { N_CRITERIA = sizeof all_criteria / sizeof all_criteria[0] };
static const char *const granularities[] = {"block", "attn", "mlp", "head", "channel", "module"};
static const char *const aggregations[] = {"sum", "mean", "max", "prod", "first"};
static const char *const structures[] = {"al-am", "ul-um"};
static const char *const metrics[] = {"wifv", "ifv", "wifn"};

bool sp_method_is_depth(const char *m) { return m && !strcmp(m, "depth"); }

static int find(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (names[i] && !strcmp(s, names[i])) return i;
    return -1;
}

static void join(char *buf, size_t cap, const char *const *names, int n) {
    size_t w = 0;
    buf[0] = 0;
    for (int i = 0; i < n && names[i] && w < cap; i++)
        w += (size_t)snprintf(buf + w, cap - w, "%s%s", i ? ", " : "", names[i]);
}

/* A value that must be one of names: its index, or a located error with a suggestion. */
static int one_of(sp_ctx *c, const sp_node *v, const char *key, const char *const *names, int n, int *out) {
    char d[80], g[200], list[300];
    if (!v || v->kind != SP_SCALAR || sp_is_null(v))
        return sp_fail(c, v, "'%s' must be text, not %s", key, sp_describe(v, d, sizeof d));
    if ((*out = find(v->s, names, n)) >= 0) return 0;
    const char *dm = sp_did_you_mean(v->s, names, n, g, sizeof g);
    if (*dm) return sp_fail(c, v, "unknown %s %s%s", key, sp_describe(v, d, sizeof d), dm);
    join(list, sizeof list, names, n);
    return sp_fail(c, v, "unknown %s %s (known: %s)", key, sp_describe(v, d, sizeof d), list);
}

int sp_check_choice(sp_ctx *c, const sp_node *v, const char *key) {
    int k;
    if (!strcmp(key, "criterion")) return one_of(c, v, key, all_criteria, N_CRITERIA, &k);
    return one_of(c, v, "granularity", granularities, 6, &k);
}

static int read_entry(sp_ctx *c, const sp_node *x, int i) {
    static const char *const keys[] = {"name", "method", "criterion", "granularity", "protect_first", "protect_last",
                                       "iterative", "layers", "aggregation", "structure", "metric",
                                       "bias_compensation", NULL};
    sp_method_src *m = &c->msrc[i];
    pb_exp_method *em = &c->e->methods[i];
    int k;
    int64_t v;
    PB_TRY(sp_want_map(c, x, "each entry of 'methods'"));
    PB_TRY(sp_check_keys(c, x, keys, "a method entry"));
    m->node = x;
    /* an option given as null is an option not given */
#define GET(f) m->f = sp_is_null(sp_get(x, #f)) ? NULL : sp_get(x, #f)
    GET(name), GET(method), GET(criterion), GET(granularity), GET(protect_first), GET(protect_last);
    GET(iterative), GET(layers), GET(aggregation), GET(structure), GET(metric), GET(bias_compensation);
#undef GET
    if (!m->name) return sp_fail(c, x, "a method entry has no 'name'");
    const char *nm;
    PB_TRY(sp_text(c, m->name, "name", &nm));
    em->name = (char *)nm;
    for (const char *p = em->name; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-", *p))
            return sp_fail(c, m->name, "method name '%s' may only use letters, digits and _ . + - (it is part of run "
                           "labels)", em->name);
    for (int j = 0; j < i; j++)
        if (!strcmp(c->e->methods[j].name, em->name))
            return sp_fail(c, m->name, "duplicate method name '%s' (first at line %d)", em->name,
                           c->msrc[j].name->line);
    pb_prune_opts_default(&em->prune);
    if (m->method) {
        PB_TRY(one_of(c, m->method, "method", method_names, N_METHODS, &k));
        em->prune.method = method_names[k];
    }
    if (m->criterion) {
        PB_TRY(one_of(c, m->criterion, "criterion", all_criteria, N_CRITERIA, &k));
        em->prune.criterion = all_criteria[k];
    }
    if (m->granularity) PB_TRY(one_of(c, m->granularity, "granularity", granularities, 6, &k));
    if (m->aggregation) {
        PB_TRY(one_of(c, m->aggregation, "aggregation", aggregations, 5, &k));
        em->prune.aggregation = aggregations[k];
    }
    if (m->structure) {
        PB_TRY(one_of(c, m->structure, "structure", structures, 2, &k));
        em->prune.structure = structures[k];
    }
    if (m->metric) {
        PB_TRY(one_of(c, m->metric, "metric", metrics, 3, &k));
        em->prune.metric = metrics[k];
    }
    if (m->protect_first) {
        PB_TRY(sp_int(c, m->protect_first, "protect_first", 0, 1000000, &v));
        m->protect_first_v = (int)v;
    }
    if (m->protect_last) {
        PB_TRY(sp_int(c, m->protect_last, "protect_last", 0, 1000000, &v));
        m->protect_last_v = (int)v;
    }
    if (m->iterative) PB_TRY(sp_bool(c, m->iterative, "iterative", &m->iterative_v));
    m->bias_comp_v = true;
    if (m->bias_compensation) PB_TRY(sp_bool(c, m->bias_compensation, "bias_compensation", &m->bias_comp_v));
    m->layer_start = m->layer_end = -1;
    if (m->layers) {
        char d[80];
        const sp_node *l = m->layers;
        long a = -1, b = -1;
        int used = 0;
        bool ok = l->kind == SP_SCALAR && !sp_is_null(l) && sscanf(l->s, "%ld:%ld%n", &a, &b, &used) == 2 &&
                  (size_t)used == l->len && l->s[0] >= '0' && l->s[0] <= '9';
        if (!ok)
            return sp_fail(c, l, "'layers' must be START:END (half-open, e.g. \"4:30\"), not %s",
                           sp_describe(l, d, sizeof d));
        if (a < 0 || b > 1000000 || a >= b)
            return sp_fail(c, l, "'layers' %s is an empty or negative range (START:END with START < END)", l->s);
        m->layer_start = (int)a;
        m->layer_end = (int)b;
    }
    em->prune.protect_first = m->protect_first_v;
    em->prune.protect_last = m->protect_last_v;
    em->prune.iterative = m->iterative_v;
    em->prune.layer_start = m->layer_start;
    em->prune.layer_end = m->layer_end;
    em->prune.no_bias_compensation = !m->bias_comp_v;
    if (m->granularity) {
        int g = find(m->granularity->s, granularities, 6);
        em->prune.granularity = g == 5 ? PB_S_ATTN : (pb_struct_kind)g;
        em->prune.module_joint = g == 5;
    }
    m->written = em->prune;
    return 0;
}

int sp_methods(sp_ctx *c, const sp_node *list) {
    PB_TRY(sp_want_seq(c, list, "'methods'", true));
    pb_exp *e = c->e;
    e->methods = pb_arena_alloc_n(&e->arena, (size_t)list->n, sizeof *e->methods);
    c->msrc = pb_arena_alloc_n(&c->tmp, (size_t)list->n, sizeof *c->msrc);
    if (!e->methods || !c->msrc) return pb_err_set(c->err, "%s: out of memory", c->file);
    for (int i = 0; i < list->n; i++) {
        PB_TRY(read_entry(c, list->kid[i], i));
        e->n_methods = i + 1;
    }
    /* an entry that is complete by itself holds its resolved options (one that needs the
     * sweep's criterion keeps them as written; its runs are checked one by one) */
    pb_err *keep = c->err, scratch = {0};
    c->err = &scratch;
    for (int i = 0; i < e->n_methods; i++) {
        pb_prune_opts o;
        if (sp_method_resolve(c, i, NULL, NULL, &o) == 0) e->methods[i].prune = o;
    }
    c->err = keep;
    return 0;
}

/* The method a criterion implies at a granularity (prune_args.c's table). */
static int implied(const char *crit, bool depth_gran) {
    if (!strcmp(crit, "taylor")) return depth_gran ? M_DEPTH : M_LLM;
    if (!strcmp(crit, "magnitude")) return depth_gran ? M_DEPTH : M_MAGNITUDE;
    for (int m = 0; m < N_METHODS; m++)
        if (find(crit, method_criteria[m], 6) >= 0) return m;
    return -1;
}

static int not_for(sp_ctx *c, const sp_node *at, const char *key, int m, const char *why) {
    return sp_fail(c, at, "'%s' does not apply to method %s (%s)", key, method_names[m], why);
}

int sp_method_resolve(sp_ctx *c, int mi, const sp_node *crit_node, const sp_node *gran_node, pb_prune_opts *o) {
    const sp_method_src *s = &c->msrc[mi];
    const pb_exp_method *em = &c->e->methods[mi];
    *o = s->written;
    const sp_node *cn = crit_node ? crit_node : s->criterion, *gn = gran_node ? gran_node : s->granularity;
    int g = gn ? find(gn->s, granularities, 6) : 0;   /* validated when read */
    o->granularity = g == 5 ? PB_S_ATTN : (pb_struct_kind)g;
    o->module_joint = g == 5;
    bool depth_gran = g <= 2 || g == 5;
    int ci = cn ? find(cn->s, all_criteria, N_CRITERIA) : -1;
    o->criterion = ci >= 0 ? all_criteria[ci] : NULL;
    int m = s->method ? find(s->method->s, method_names, N_METHODS) : -1;
    char list[200];
    if (m < 0) {
        if (!o->criterion)
            return sp_fail(c, s->node, "method entry '%s' gives neither 'method' nor a 'criterion' that implies one",
                           em->name);
        m = implied(o->criterion, depth_gran);
        if (m == M_FLAP) {   /* the criterion names FLAP's metric */
            if (o->metric && strcmp(o->metric, o->criterion))
                return sp_fail(c, cn, "criterion '%s' and metric '%s' disagree (the criterion is FLAP's metric)",
                               o->criterion, o->metric);
            o->metric = o->criterion;
            o->criterion = NULL;
        } else if (m == M_WANDA || m == M_RANDOM || (m == M_MAGNITUDE && !strcmp(o->criterion, "magnitude"))) {
            o->criterion = NULL;
        }
    } else if (o->criterion) {
        if (find(o->criterion, method_criteria[m], 6) < 0) {
            join(list, sizeof list, method_criteria[m], 6);
            return sp_fail(c, cn, "criterion '%s' does not apply to method %s (%s)", o->criterion, method_names[m],
                           list);
        }
        if (m == M_FLAP && o->metric && strcmp(o->metric, o->criterion))
            return sp_fail(c, cn, "criterion '%s' and metric '%s' disagree", o->criterion, o->metric);
    }
    o->method = method_names[m];
    if (m == M_DEPTH) {
        if (!depth_gran)
            return sp_fail(c, gn, "granularity '%s' does not apply to method depth (block, attn, mlp, module)", gn->s);
        if (s->layers) return not_for(c, s->layers, "layers", m, "protect_first / protect_last keep blocks");
        if (s->aggregation) return not_for(c, s->aggregation, "aggregation", m, "it is llm-pruner's");
    } else {
        if (gn && depth_gran)
            return sp_fail(c, gn, "granularity '%s' does not apply to method %s (it removes heads and channels: head, "
                           "channel)", gn->s, method_names[m]);
        if (s->protect_first_v) return not_for(c, s->protect_first, "protect_first", m, "it is depth pruning's");
        if (s->protect_last_v) return not_for(c, s->protect_last, "protect_last", m, "it is depth pruning's");
        if (s->iterative_v) return not_for(c, s->iterative, "iterative", m, "it is depth pruning's");
        if ((m == M_WANDA || m == M_FLAP) && s->layers)
            return not_for(c, s->layers, "layers", m, "the method prunes every layer");
        if ((m == M_WANDA || m == M_FLAP) && s->aggregation)
            return not_for(c, s->aggregation, "aggregation", m, "it is llm-pruner's");
        if ((m == M_MAGNITUDE || m == M_RANDOM) && o->aggregation && strcmp(o->aggregation, "sum"))
            return not_for(c, s->aggregation, "aggregation", m, "it is llm-pruner's group reduction");
    }
    if (m != M_FLAP) {
        if (s->structure) return not_for(c, s->structure, "structure", m, "it is FLAP's");
        if (s->metric) return not_for(c, s->metric, "metric", m, "it is FLAP's");
        if (!s->bias_comp_v) return not_for(c, s->bias_compensation, "bias_compensation", m, "it is FLAP's");
    }
    return 0;
}

void sp_method_yaml(sp_buf *b, const pb_prune_opts *o, const sp_ctx *c, int mi, const sp_node *gran_node) {
    const sp_node *gn = gran_node ? gran_node : c->msrc[mi].granularity;
    sp_puts(b, "prune:\n");
    sp_kv_str(b, 2, "method", o->method);
    sp_kv_str(b, 2, "criterion", o->criterion);
    sp_kv_str(b, 2, "granularity", gn ? gn->s : NULL);
    sp_kv_int(b, 2, "protect_first", o->protect_first);
    sp_kv_int(b, 2, "protect_last", o->protect_last);
    sp_kv_bool(b, 2, "iterative", o->iterative);
    if (o->layer_start >= 0) sp_printf(b, "  layers: \"%d:%d\"\n", o->layer_start, o->layer_end);
    else sp_puts(b, "  layers: null\n");
    sp_kv_str(b, 2, "aggregation", o->aggregation);
    sp_kv_str(b, 2, "structure", o->structure);
    sp_kv_str(b, 2, "metric", o->metric);
    sp_kv_bool(b, 2, "bias_compensation", !o->no_bias_compensation);
}
