/* spec_yaml.c — the experiment file's text into a tree of positioned nodes, from libyaml's
 * event stream. Refused with a located error: syntax errors (libyaml's problem mark), anchors
 * and aliases (a sweep file has no use for them, and expanding them invites billion-laughs
 * inputs), explicit tags, non-text keys, duplicate keys, a NUL inside a value, a second
 * document, and nesting deeper than MAX_DEPTH. */
#include "spec_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

enum { MAX_DEPTH = 64, MAX_NODES = 1 << 20 };

typedef struct {
    sp_node *node;
    sp_node **items;
    int n, cap;
} frame;

/* Byte offset of libyaml's (0-based line, column in characters) in text, or n. */
static size_t offset_of(const char *text, size_t n, size_t line, size_t col) {
    size_t i = 0;
    for (size_t l = 0; l < line && i < n; i++)
        if (text[i] == '\n') l++;
    for (size_t k = 0; k < col && i < n; k++) {
        i++;
        while (i < n && ((unsigned char)text[i] & 0xC0) == 0x80) i++;   /* UTF-8 continuation bytes */
    }
    return i;
}

static int syntax_error(sp_ctx *c, const yaml_parser_t *p, const char *text, size_t n) {
    size_t line = p->problem_mark.line, col = p->problem_mark.column;
    if (p->error == YAML_READER_ERROR) {
        /* reader errors carry a byte offset, not a mark */
        line = col = 0;
        for (size_t i = 0; i < p->problem_offset && i < n; i++) {
            if (text[i] == '\n') line++, col = 0;
            else if (((unsigned char)text[i] & 0xC0) != 0x80) col++;
        }
    }
    const char *problem = p->problem ? p->problem : "malformed YAML";
    size_t at = p->error == YAML_READER_ERROR ? p->problem_offset : offset_of(text, n, line, col);
    bool tab = at < n && text[at] == '\t';
    if (!tab && at < n) {
        /* a tab earlier on the line, in the indentation, is the usual cause */
        size_t s = at;
        while (s > 0 && text[s - 1] != '\n') s--;
        for (size_t i = s; i < at && (text[i] == ' ' || text[i] == '\t'); i++) tab |= text[i] == '\t';
    }
    char ctx[160] = "";
    if (p->context)
        snprintf(ctx, sizeof ctx, " (%s at %zu:%zu)", p->context, (size_t)p->context_mark.line + 1,
                 (size_t)p->context_mark.column + 1);
    return sp_fail_at(c, (int)(line + 1), (int)(col + 1), "YAML syntax error: %s%s%s", problem, ctx,
                      tab ? "; YAML indents with spaces, not tabs" : "");
}

/* The anchor and tag an event carries (NULL when none). */
static void props(const yaml_event_t *ev, const char **anchor, const char **tag) {
    *anchor = *tag = NULL;
    if (ev->type == YAML_SCALAR_EVENT) {
        *anchor = (const char *)ev->data.scalar.anchor;
        *tag = (const char *)ev->data.scalar.tag;
    } else if (ev->type == YAML_SEQUENCE_START_EVENT) {
        *anchor = (const char *)ev->data.sequence_start.anchor;
        *tag = (const char *)ev->data.sequence_start.tag;
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        *anchor = (const char *)ev->data.mapping_start.anchor;
        *tag = (const char *)ev->data.mapping_start.tag;
    }
}

static int cmp_key(const void *a, const void *b) {
    const sp_node *x = *(sp_node *const *)a, *y = *(sp_node *const *)b;
    int r = strcmp(x->s, y->s);
    if (r) return r;
    return x->line != y->line ? (x->line < y->line ? -1 : 1) : (x->col < y->col ? -1 : x->col > y->col);
}

/* Keys must be text and unique; the error points at the later of the first repeated pair. */
static int check_map(sp_ctx *c, sp_node *m) {
    for (int i = 0; i < m->n; i++) {
        const sp_node *k = m->kid[2 * i];
        if (k->kind != SP_SCALAR)
            return sp_fail(c, k, "a key must be plain text, not a %s", k->kind == SP_SEQ ? "list" : "mapping");
    }
    if (m->n < 2) return 0;
    sp_node **keys = malloc(sizeof *keys * (size_t)m->n);
    if (!keys) return pb_err_set(c->err, "%s: out of memory", c->file);
    for (int i = 0; i < m->n; i++) keys[i] = m->kid[2 * i];
    qsort(keys, (size_t)m->n, sizeof *keys, cmp_key);
    const sp_node *dup = NULL, *first = NULL;
    for (int i = 1; i < m->n; i++)
        if (strcmp(keys[i]->s, keys[i - 1]->s) == 0 &&
            (!dup || keys[i]->line < dup->line || (keys[i]->line == dup->line && keys[i]->col < dup->col))) {
            dup = keys[i];
            first = keys[i - 1];
        }
    free(keys);
    if (dup) return sp_fail(c, dup, "duplicate key '%s' (first given at line %d)", dup->s, first->line);
    return 0;
}

static int push_item(sp_ctx *c, frame *f, sp_node *x) {
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 8;
        sp_node **g = realloc(f->items, sizeof *g * (size_t)cap);
        if (!g) return pb_err_set(c->err, "%s: out of memory", c->file);
        f->items = g;
        f->cap = cap;
    }
    f->items[f->n++] = x;
    return 0;
}

/* One event into the tree; *done at the end of the stream. */
static int on_event(sp_ctx *c, const yaml_event_t *ev, frame *st, int *depth, int *docs, int *nodes, bool *done) {
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    const char *anchor, *tag;
    props(ev, &anchor, &tag);
    switch (ev->type) {
    case YAML_STREAM_END_EVENT: *done = true; return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (++*docs > 1) return sp_fail_at(c, line, col, "a second YAML document; an experiment file holds one");
        return 0;
    case YAML_ALIAS_EVENT:
        return sp_fail_at(c, line, col, "aliases (*%s) are not supported; write the value out",
                          (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT:
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        if (anchor) return sp_fail_at(c, line, col, "anchors (&%s) are not supported; write the value out", anchor);
        if (tag) return sp_fail_at(c, line, col, "tags (%s) are not supported; write the plain value", tag);
        if (++*nodes > MAX_NODES) return sp_fail_at(c, line, col, "more than %d values in one file", MAX_NODES);
        sp_node *x = pb_arena_alloc(&c->tmp, sizeof *x);
        PB_CHECK_ALLOC(x, c->err);
        x->line = line;
        x->col = col;
        if (ev->type == YAML_SCALAR_EVENT) {
            x->kind = SP_SCALAR;
            x->len = ev->data.scalar.length;
            if (memchr(ev->data.scalar.value, 0, x->len)) return sp_fail(c, x, "a value contains a NUL character");
            char *s = pb_arena_strndup(&c->tmp, (const char *)ev->data.scalar.value, x->len);
            PB_CHECK_ALLOC(s, c->err);
            x->s = s;
            x->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        } else {
            x->kind = ev->type == YAML_SEQUENCE_START_EVENT ? SP_SEQ : SP_MAP;
            x->s = "";
        }
        if (*depth > 0) PB_TRY(push_item(c, &st[*depth - 1], x));
        else if (!c->root) c->root = x;
        if (x->kind != SP_SCALAR) {
            if (*depth == MAX_DEPTH) return sp_fail(c, x, "nested more than %d levels deep", MAX_DEPTH);
            st[(*depth)++] = (frame){x, NULL, 0, 0};
        }
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        if (*depth == 0) return sp_fail_at(c, line, col, "unbalanced YAML events");   /* libyaml never does this */
        frame *f = &st[--*depth];
        sp_node *x = f->node;
        x->kid = pb_arena_alloc_n(&c->tmp, (size_t)(f->n ? f->n : 1), sizeof *x->kid);
        if (!x->kid) return pb_err_set(c->err, "%s: out of memory", c->file);
        if (f->n) memcpy(x->kid, f->items, sizeof *x->kid * (size_t)f->n);
        x->n = x->kind == SP_MAP ? f->n / 2 : f->n;
        free(f->items);
        *f = (frame){0};
        return x->kind == SP_MAP ? check_map(c, x) : 0;
    }
    default: return 0;
    }
}

int sp_parse(sp_ctx *c, const char *text, size_t n) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return pb_err_set(c->err, "%s: cannot start the YAML parser", c->file);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, n);
    frame st[MAX_DEPTH];
    memset(st, 0, sizeof st);
    int depth = 0, docs = 0, nodes = 0, rc = 0;
    bool done = false;
    c->root = NULL;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = syntax_error(c, &p, text, n);
            break;
        }
        rc = on_event(c, &ev, st, &depth, &docs, &nodes, &done);
        yaml_event_delete(&ev);
        if (rc) break;
    }
    for (int i = 0; i < MAX_DEPTH; i++) free(st[i].items);
    yaml_parser_delete(&p);
    return rc;
}
