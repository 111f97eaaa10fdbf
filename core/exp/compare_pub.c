/* compare_pub.c — the papers' published numbers for `prunebench compare`: DIR/published.yaml
 * (the experiment file's `published:` rows, written next to index.h5 by the runner), parsed
 * with libyaml into rows marked as published. Keys are checked: a misspelt metric would
 * otherwise vanish from the comparison without a word. Errors are FILE:LINE:COL. */
#include "compare.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Perplexity datasets a published row may name without the ppl_ prefix. */
static const char *const ppl_sets[] = {"wikitext2", "ptb", "c4", "tinystories", "wikitext103", "lambada"};

typedef struct {
    const char *path;
    yaml_document_t *doc;
    pb_err *err;
} pub_ctx;

static int at(const pub_ctx *x, const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int at(const pub_ctx *x, const yaml_node_t *n, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pb_err_set(x->err, "%s:%zu:%zu: %s", x->path, n->start_mark.line + 1, n->start_mark.column + 1, msg);
}

static bool is_none(const char *s) {
    static const char *const none[] = {"", "~", "null", "Null", "NULL", "-", "\u2013", "\u2014", "n/a", "N/A", "nan", "NaN"};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++)
        if (strcmp(s, none[i]) == 0) return true;
    return false;
}

/* A number, optionally with a unit suffix: '%' (a ratio is divided by 100) or K/M/B/G
 * (counts). Bold markers (**60.07**) copied from a markdown table are tolerated. */
static int number(const pub_ctx *x, const yaml_node_t *n, const char *key, bool ratio, double *out) {
    if (n->type != YAML_SCALAR_NODE) return at(x, n, "'%s' must be a number", key);
    char buf[128];
    const char *s = (const char *)n->data.scalar.value;
    if (n->data.scalar.length >= sizeof buf) return at(x, n, "'%s' must be a number, not long text", key);
    while (*s == '*') s++;
    snprintf(buf, sizeof buf, "%s", s);
    size_t len = strlen(buf);
    while (len && (buf[len - 1] == '*' || isspace((unsigned char)buf[len - 1]))) buf[--len] = 0;
    if (is_none(buf)) {
        *out = NAN;
        return 0;
    }
    errno = 0;
    char *end;
    double v = strtod(buf, &end);
    if (end == buf || errno) return at(x, n, "'%s' must be a number, not '%s'", key, buf);
    double scale = 1;
    if (*end == '%') scale = ratio ? 0.01 : 1, end++;   /* "75.8%" is an accuracy x100 already */
    else if (*end && strchr("kK", *end)) scale = 1e3, end++;
    else if (*end == 'M') scale = 1e6, end++;
    else if (*end && strchr("BG", *end)) scale = 1e9, end++;
    if (*end) return at(x, n, "'%s' must be a number, not '%s'", key, buf);
    *out = v * scale;
    if (!isfinite(*out)) return at(x, n, "'%s' must be a finite number, not '%s'", key, buf);
    if (ratio && (*out < 0 || *out >= 1))
        return at(x, n, "'%s' must be a fraction in [0, 1) or a percentage such as 20%%, not '%s'", key, buf);
    return 0;
}

static int text(const pub_ctx *x, const yaml_node_t *n, const char *key, char **dst) {
    if (n->type != YAML_SCALAR_NODE) return at(x, n, "'%s' must be a string", key);
    char *v = strdup((const char *)n->data.scalar.value);
    if (!v) return pb_err_set(x->err, "out of memory");
    free(*dst);
    *dst = v;
    return 0;
}

static int task_of(const char *k) {
    if (strncmp(k, "acc_", 4) == 0) k += 4;
    for (int t = 0; t < PB_CMP_TASKS; t++)
        if (strcmp(k, pb_cmp_task_names[t]) == 0) return t;
    return -1;
}

static int row(pub_ctx *x, pb_cmp *c, int dir, yaml_node_t *map) {
    if (map->type != YAML_MAPPING_NODE) return at(x, map, "a published row must be a mapping (model: ..., method: ...)");
    pb_cmp_row *r = pb_cmp_add_row(c, dir);
    if (!r) return pb_err_set(x->err, "out of memory");
    r->paper = true;
    if (strcmp(r->status, "") == 0) {
        char *d = strdup("done");
        if (!d) return pb_err_set(x->err, "out of memory");
        free(r->status);
        r->status = d;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key), *vn = yaml_document_get_node(x->doc, p->value);
        if (!kn || !vn) return pb_err_set(x->err, "%s: damaged YAML document", x->path);
        if (kn->type != YAML_SCALAR_NODE) return at(x, kn, "keys must be plain names");
        const char *k = (const char *)kn->data.scalar.value;
        int t = task_of(k);
        double v;
        if (strcmp(k, "model") == 0) PB_TRY(text(x, vn, k, &r->model));
        else if (strcmp(k, "method") == 0) PB_TRY(text(x, vn, k, &r->method));
        else if (strcmp(k, "criterion") == 0) PB_TRY(text(x, vn, k, &r->criterion));
        else if (strcmp(k, "granularity") == 0) PB_TRY(text(x, vn, k, &r->granularity));
        else if (!strcmp(k, "note") || !strcmp(k, "source") || !strcmp(k, "setting")) PB_TRY(text(x, vn, k, &r->note));
        else if (strcmp(k, "ratio") == 0) PB_TRY(number(x, vn, k, true, &r->ratio));
        else if (strcmp(k, "num_blocks") == 0) PB_TRY(number(x, vn, k, false, &r->num_blocks));
        else if (strcmp(k, "native") == 0) PB_TRY(number(x, vn, k, false, &r->native));
        else if (strcmp(k, "params") == 0) PB_TRY(number(x, vn, k, false, &r->params_after));
        else if (strcmp(k, "params_no_embed") == 0) PB_TRY(number(x, vn, k, false, &r->params_after_ne));
        else if (strcmp(k, "latency_ms") == 0) PB_TRY(number(x, vn, k, false, &r->latency_ms));
        else if (strcmp(k, "throughput") == 0) PB_TRY(number(x, vn, k, false, &r->throughput));
        else if (!strcmp(k, "mean") || !strcmp(k, "avg") || !strcmp(k, "acc_mean")) PB_TRY(number(x, vn, k, false, &r->mean));
        else if (t >= 0) PB_TRY(number(x, vn, k, false, &r->acc[t]));
        else {
            const char *set = strncmp(k, "ppl_", 4) == 0 && k[4] ? k + 4 : NULL;
            for (size_t i = 0; !set && i < sizeof ppl_sets / sizeof *ppl_sets; i++)
                if (strcmp(k, ppl_sets[i]) == 0) set = k;
            for (int i = 0; !set && i < c->n_ppl; i++)
                if (strcmp(k, c->ppl_names[i]) == 0) set = k;
            if (!set)
                return at(x, kn, "unknown key '%s' in a published row (perplexities are ppl_<dataset>, or wikitext2, ptb, c4, ...)", k);
            int col = pb_cmp_ppl_index(c, set);
            if (col < 0) return at(x, kn, "'%s': too many perplexity datasets", k);
            PB_TRY(number(x, vn, k, false, &v));
            r->ppl[col] = v;
        }
    }
    if (!r->model[0]) return at(x, map, "a published row needs 'model'");
    if (!r->method[0]) return at(x, map, "a published row needs 'method'");
    /* the papers give accuracies x100; a fraction is converted as for our own index */
    for (int i = 0; i < PB_CMP_TASKS; i++)
        if (isfinite(r->acc[i]) && r->acc[i] <= 1.0) r->acc[i] *= 100;
    if (isfinite(r->mean) && r->mean <= 1.0) r->mean *= 100;
    return 0;
}

int pb_cmp_read_published(pb_cmp *c, int dir, const char *path, pb_err *err) {
    char *s = NULL;
    size_t size = 0;
    PB_TRY(pb_file_read_all(path, &s, &size, err));
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        free(s);
        return pb_err_set(err, "out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)s, size);
    int rc = -1;
    if (!yaml_parser_load(&parser, &doc)) {
        rc = pb_err_set(err, "%s:%zu:%zu: %s", path, parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                        parser.problem ? parser.problem : "malformed YAML");
        yaml_parser_delete(&parser);
        free(s);
        return rc;
    }
    pub_ctx x = {.path = path, .doc = &doc, .err = err};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    rc = 0;
    if (root && root->type == YAML_MAPPING_NODE) {
        /* the experiment file's shape: published: [rows] (other keys are not ours to read) */
        yaml_node_t *seq = NULL;
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(&doc, p->key);
            if (k && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, "published") == 0)
                seq = yaml_document_get_node(&doc, p->value);
        }
        if (!seq) rc = at(&x, root, "expected a list of published rows, or a 'published:' key holding one");
        root = seq;
    }
    if (rc == 0 && root && root->type == YAML_SCALAR_NODE && is_none((const char *)root->data.scalar.value)) root = NULL;
    if (rc == 0 && root && root->type != YAML_SEQUENCE_NODE)
        rc = at(&x, root, "expected a list of published rows");
    for (yaml_node_item_t *it = root && rc == 0 ? root->data.sequence.items.start : NULL;
         it && rc == 0 && it < root->data.sequence.items.top; it++) {
        yaml_node_t *n = yaml_document_get_node(&doc, *it);
        rc = n ? row(&x, c, dir, n) : pb_err_set(err, "%s: damaged YAML document", path);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(s);
    return rc;
}
