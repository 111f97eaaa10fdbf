/* spec_util.c — located errors, typed values read from the tree (strictly: a quoted "10" is
 * text, not a number), near-miss suggestions, path resolution, dataset names. */
#include "spec_internal.h"
#include "pb_data.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors --------------------------------------------------------------------------- */

static int vfail(sp_ctx *c, int line, int col, const char *fmt, va_list ap) {
    char msg[900];
    vsnprintf(msg, sizeof msg, fmt, ap);
    for (char *p = msg; *p; p++)   /* text from the file may hold line breaks; the error is one line */
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = *p == '\t' ? ' ' : '?';
    return pb_err_set(c->err, "%s:%d:%d: %s", c->file, line, col, msg);
}

int sp_fail_at(sp_ctx *c, int line, int col, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vfail(c, line, col, fmt, ap);
    va_end(ap);
    return r;
}

int sp_fail(sp_ctx *c, const sp_node *at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vfail(c, at ? at->line : 1, at ? at->col : 1, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- values ----------------------------------------------------------------------------- */

bool sp_is_null(const sp_node *v) {
    if (!v || v->kind != SP_SCALAR || !v->plain) return false;
    return v->len == 0 || !strcmp(v->s, "~") || !strcmp(v->s, "null") || !strcmp(v->s, "Null") || !strcmp(v->s, "NULL");
}

const char *sp_describe(const sp_node *v, char *buf, size_t cap) {
    if (!v || sp_is_null(v)) return "null (no value)";
    if (v->kind == SP_SEQ) return "a list";
    if (v->kind == SP_MAP) return "a mapping";
    /* quoted, at most 40 characters, control characters as '?' (one line) */
    size_t w = 0;
    if (cap < 8) return "a value";
    buf[w++] = '\'';
    for (size_t i = 0; i < v->len && w + 5 < cap && i < 40; i++)
        buf[w++] = (unsigned char)v->s[i] < 0x20 || v->s[i] == 0x7f ? '?' : v->s[i];
    if (v->len > 40 && w + 5 < cap) buf[w++] = '.', buf[w++] = '.', buf[w++] = '.';
    buf[w++] = '\'';
    buf[w] = 0;
    return buf;
}

const sp_node *sp_get(const sp_node *map, const char *key) {
    if (!map || map->kind != SP_MAP) return NULL;
    for (int i = 0; i < map->n; i++)
        if (!strcmp(map->kid[2 * i]->s, key)) return map->kid[2 * i + 1];
    return NULL;
}

/* Optimal string alignment distance (an adjacent transposition counts as one edit), capped. */
static int distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int x = d[i - 1][j] + 1, y = d[i][j - 1] + 1, z = d[i - 1][j - 1] + cost;
            int best = x < y ? x : y;
            best = best < z ? best : z;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

const char *sp_suggest(const char *s, const char *const *names, int n) {
    const char *best = NULL;
    int bd = 99;
    size_t ls = strlen(s);
    for (int i = 0; i < n; i++) {
        int d = distance(s, names[i]);
        size_t ln = strlen(names[i]);
        int limit = ln <= 2 ? 0 : ln <= 4 ? 1 : ln <= 8 ? 2 : 3;   /* "n" is no misspelling of "m" */
        /* a prefix of at least 3 characters ("calib" for "calibration") is a near miss too */
        if (d > limit && ls >= 3 && ls < ln && !strncmp(s, names[i], ls)) d = limit;
        if (d <= limit && d < bd) bd = d, best = names[i];
    }
    return best;
}

const char *sp_did_you_mean(const char *s, const char *const *names, int n, char *buf, size_t cap) {
    const char *g = sp_suggest(s, names, n);
    if (!g) return "";
    snprintf(buf, cap, " (did you mean '%.100s'?)", g);
    return buf;
}

int sp_check_keys(sp_ctx *c, const sp_node *map, const char *const *allowed, const char *where) {
    int n = 0;
    while (allowed[n]) n++;
    for (int i = 0; i < map->n; i++) {
        const sp_node *k = map->kid[2 * i];
        int j = 0;
        while (j < n && strcmp(k->s, allowed[j])) j++;
        if (j < n) continue;
        char b[200], d[80];
        const char *g = sp_did_you_mean(k->s, allowed, n, b, sizeof b);
        if (*g) return sp_fail(c, k, "unknown key %s in %s%s", sp_describe(k, d, sizeof d), where, g);
        char list[400];
        size_t w = 0;
        for (j = 0; j < n && w < sizeof list; j++)
            w += (size_t)snprintf(list + w, sizeof list - w, "%s%s", j ? ", " : "", allowed[j]);
        return sp_fail(c, k, "unknown key %s in %s (known: %s)", sp_describe(k, d, sizeof d), where, list);
    }
    return 0;
}

int sp_want_map(sp_ctx *c, const sp_node *v, const char *what) {
    if (v && v->kind == SP_MAP) return 0;
    char d[80];
    return sp_fail(c, v, "%s must be a mapping of keys, not %s", what, sp_describe(v, d, sizeof d));
}

int sp_want_seq(sp_ctx *c, const sp_node *v, const char *what, bool nonempty) {
    char d[80];
    if (!v || v->kind != SP_SEQ) return sp_fail(c, v, "%s must be a list, not %s", what, sp_describe(v, d, sizeof d));
    if (nonempty && v->n == 0) return sp_fail(c, v, "%s is an empty list", what);
    return 0;
}

int sp_text(sp_ctx *c, const sp_node *v, const char *key, const char **out) {
    char d[80];
    if (!v || v->kind != SP_SCALAR || sp_is_null(v))
        return sp_fail(c, v, "'%s' must be text, not %s", key, sp_describe(v, d, sizeof d));
    char *s = pb_arena_strdup(&c->e->arena, v->s);
    PB_CHECK_ALLOC(s, c->err);
    *out = s;
    return 0;
}

/* Numbers and booleans are plain scalars; a quoted one is text, and the message says so. */
static const char *quoted(const sp_node *v) {
    return v && v->kind == SP_SCALAR && !v->plain ? " (quoted, so text)" : "";
}

int sp_int(sp_ctx *c, const sp_node *v, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    char d[80], k[96];
    bool ok = v && v->kind == SP_SCALAR && v->plain && v->len > 0 && v->len < 20;
    const char *s = ok ? v->s : "";
    size_t i = (s[0] == '+' || s[0] == '-') ? 1 : 0;
    ok = ok && s[i];
    for (; ok && s[i]; i++) ok = isdigit((unsigned char)s[i]) != 0;
    long long x = 0;
    if (ok) {
        errno = 0;
        x = strtoll(s, NULL, 10);
        ok = errno == 0;
    }
    if (ok && x >= lo && x <= hi) {
        *out = x;
        return 0;
    }
    if (ok && hi < INT64_MAX / 2) snprintf(k, sizeof k, "an integer from %lld to %lld", (long long)lo, (long long)hi);
    else if (lo == 1) snprintf(k, sizeof k, "a positive integer");
    else if (lo == 0) snprintf(k, sizeof k, "a non-negative integer");
    else snprintf(k, sizeof k, "an integer of at least %lld", (long long)lo);
    return sp_fail(c, v, "'%s' must be %s, not %s%s", key, k, sp_describe(v, d, sizeof d), quoted(v));
}

/* [+-] digits [. digits] [e [+-] digits], or [+-] . digits [...]: what YAML and strtod agree on
 * (no hex, inf or nan). */
static bool number_text(const char *s) {
    size_t i = 0, dig = 0;
    if (s[i] == '+' || s[i] == '-') i++;
    while (isdigit((unsigned char)s[i])) i++, dig++;
    if (s[i] == '.') {
        i++;
        while (isdigit((unsigned char)s[i])) i++, dig++;
    }
    if (!dig) return false;
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-') i++;
        if (!isdigit((unsigned char)s[i])) return false;
        while (isdigit((unsigned char)s[i])) i++;
    }
    return s[i] == 0;
}

int sp_num(sp_ctx *c, const sp_node *v, const char *key, double lo, double hi, bool lo_open, bool hi_open,
           double *out) {
    char d[80];
    bool ok = v && v->kind == SP_SCALAR && v->plain && number_text(v->s);
    double x = ok ? strtod(v->s, NULL) : 0.0;
    ok = ok && isfinite(x) && (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
    if (!ok) {
        if (isinf(hi) && lo == 0.0)
            return sp_fail(c, v, "'%s' must be a %s number, not %s%s", key, lo_open ? "positive" : "non-negative",
                           sp_describe(v, d, sizeof d), quoted(v));
        return sp_fail(c, v, "'%s' must be a number in %c%g, %g%c, not %s%s", key, lo_open ? '(' : '[', lo, hi,
                       hi_open ? ')' : ']', sp_describe(v, d, sizeof d), quoted(v));
    }
    *out = x;
    return 0;
}

int sp_bool(sp_ctx *c, const sp_node *v, const char *key, bool *out) {
    static const char *const t[] = {"true", "True", "TRUE"}, *const f[] = {"false", "False", "FALSE"};
    for (int i = 0; v && v->kind == SP_SCALAR && v->plain && i < 3; i++) {
        if (!strcmp(v->s, t[i])) return *out = true, 0;
        if (!strcmp(v->s, f[i])) return *out = false, 0;
    }
    char d[80];
    return sp_fail(c, v, "'%s' must be true or false, not %s%s", key, sp_describe(v, d, sizeof d), quoted(v));
}

const char *sp_resolve(sp_ctx *c, const char *path) {
    if (path[0] == '/' || !c->dir[0]) return pb_arena_strdup(&c->e->arena, path);
    size_t a = strlen(c->dir), b = strlen(path);
    bool slash = c->dir[a - 1] != '/';   /* the folder "/" has its slash */
    char *s = pb_arena_alloc(&c->e->arena, a + b + 2);
    if (!s) return NULL;
    memcpy(s, c->dir, a);
    if (slash) s[a] = '/';
    memcpy(s + a + slash, path, b + 1);
    return s;
}

int sp_dataset(sp_ctx *c, const sp_node *v, const char *key, const char *kind, bool allow_file, const char **out,
               bool *is_file) {
    char d[80];
    if (!v || v->kind != SP_SCALAR || sp_is_null(v))
        return sp_fail(c, v, "'%s' must be a dataset name%s, not %s", key, allow_file ? " or a file" : "",
                       sp_describe(v, d, sizeof d));
    const pb_data_info *info;
    pb_err scratch = {0};
    *is_file = false;
    if (pb_data_info_get(v->s, &info, &scratch) == 0) {
        if (strcmp(info->kind, kind) != 0)
            return sp_fail(c, v, "'%s' is a %s dataset; '%s' takes a %s dataset", v->s, info->kind, key, kind);
        return sp_text(c, v, key, out);
    }
    /* a path has a folder or an extension; a bare word is a dataset name, maybe misspelt */
    if (allow_file && (strchr(v->s, '/') || strchr(v->s, '.'))) {
        *is_file = true;
        *out = sp_resolve(c, v->s);
        PB_CHECK_ALLOC(*out, c->err);
        return 0;
    }
    char names[512], *list[32] = {0};
    pb_data_names(kind, names, sizeof names);
    int n = 0;
    for (char *t = strtok(names, ", "); t && n < 32; t = strtok(NULL, ", ")) list[n++] = t;
    char g[200], known[520];
    const char *dm = sp_did_you_mean(v->s, (const char *const *)list, n, g, sizeof g);
    if (*dm) return sp_fail(c, v, "unknown %s dataset %s%s", kind, sp_describe(v, d, sizeof d), dm);
    size_t w = 0;
    known[0] = 0;
    for (int i = 0; i < n && w < sizeof known; i++)
        w += (size_t)snprintf(known + w, sizeof known - w, "%s%s", i ? ", " : "", list[i]);
    return sp_fail(c, v, "unknown %s dataset %s (known: %s%s)", kind, sp_describe(v, d, sizeof d), known,
                   allow_file ? "; a file path needs a '/' or an extension" : "");
}

/* A list, or one value standing for a one-element list. */
int sp_items(sp_ctx *c, const sp_node *v, const char *what, sp_node *const **out, int *n) {
    if (v && v->kind == SP_SCALAR && !sp_is_null(v)) {
        sp_node **x = pb_arena_alloc(&c->tmp, sizeof *x);
        if (!x) return pb_err_set(c->err, "%s: out of memory", c->file);
        *x = (sp_node *)v;
        *out = x;
        *n = 1;
        return 0;
    }
    PB_TRY(sp_want_seq(c, v, what, true));
    *out = v->kid;
    *n = v->n;
    return 0;
}

/* An optional section: absent (NULL), given empty (null: its defaults), or a mapping of keys. */
int sp_section(sp_ctx *c, const sp_node *s, const char *name, const char *const *keys) {
    if (!s || sp_is_null(s)) return 0;
    char what[64];
    snprintf(what, sizeof what, "'%s'", name);
    PB_TRY(sp_want_map(c, s, what));
    return sp_check_keys(c, s, keys, name);
}

int sp_get_int(sp_ctx *c, const sp_node *s, const char *key, int64_t lo, int64_t hi, int *out) {
    const sp_node *v = sp_get(s, key);
    int64_t i;
    if (!v) return 0;
    PB_TRY(sp_int(c, v, key, lo, hi, &i));
    *out = (int)i;
    return 0;
}
