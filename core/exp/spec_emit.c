/* spec_emit.c — canonical YAML text for run configurations and the published rows: fixed key
 * order, strings plain only where they read back as the same string, numbers as the shortest
 * text that reads back as the same double. */
#include "spec_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- YAML text -------------------------------------------------------------------------- */

void sp_puts(sp_buf *b, const char *s) { sp_printf(b, "%s", s); }

void sp_printf(sp_buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap <= b->n + (size_t)k) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* Reads back as the same string when written plain: starts with a letter, '_', '/' or a
 * '.' not followed by a digit; only [A-Za-z0-9_./+-]; not a word YAML 1.1 reads as a boolean
 * or null, nor .inf / .nan. */
static bool plain_ok(const char *s) {
    static const char *const words[] = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", ".inf", ".nan"};
    if (!s[0]) return false;
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == '/' || (s[0] == '.' && !isdigit((unsigned char)s[1]))))
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_./+-", *p)) return false;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t k = strlen(words[i]);
        if (strlen(s) == k) {
            size_t j = 0;
            while (j < k && tolower((unsigned char)s[j]) == words[i][j]) j++;
            if (j == k) return false;
        }
    }
    return true;
}

void sp_put_str(sp_buf *b, const char *s) {
    if (plain_ok(s)) {
        sp_puts(b, s);
        return;
    }
    sp_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') sp_printf(b, "\\%c", *p);
        else if (*p == '\n') sp_puts(b, "\\n");
        else if (*p == '\t') sp_puts(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f) sp_printf(b, "\\x%02x", *p);
        else sp_printf(b, "%c", *p);
    }
    sp_puts(b, "\"");
}

void sp_put_opt_str(sp_buf *b, const char *s) {
    if (s) sp_put_str(b, s);
    else sp_puts(b, "null");
}

void sp_put_num(sp_buf *b, double x) {
    char t[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(t, sizeof t, "%.*g", p, x);
        if (strtod(t, NULL) == x) break;
    }
    /* a '.' in every number: YAML 1.1 readers (PyYAML) take 1e-05 for text and 16 for an
     * integer; 1.0e-05 and 16.0 read back as the floats they are */
    char *e = strchr(t, 'e');
    if (strchr(t, '.') || !isfinite(x)) sp_puts(b, t);
    else if (e) sp_printf(b, "%.*s.0%s", (int)(e - t), t, e);
    else sp_printf(b, "%s.0", t);
}

void sp_kv_str(sp_buf *b, int indent, const char *key, const char *s) {
    sp_printf(b, "%*s%s: ", indent, "", key);
    sp_put_opt_str(b, s);
    sp_puts(b, "\n");
}

void sp_kv_num(sp_buf *b, int indent, const char *key, double x) {
    sp_printf(b, "%*s%s: ", indent, "", key);
    sp_put_num(b, x);
    sp_puts(b, "\n");
}

void sp_kv_int(sp_buf *b, int indent, const char *key, int64_t x) {
    sp_printf(b, "%*s%s: %lld\n", indent, "", key, (long long)x);
}

void sp_kv_bool(sp_buf *b, int indent, const char *key, bool x) {
    sp_printf(b, "%*s%s: %s\n", indent, "", key, x ? "true" : "false");
}

char *sp_buf_take(sp_ctx *c, sp_buf *b, pb_arena *a) {
    char *s = b->oom ? NULL : pb_arena_strndup(a, b->p ? b->p : "", b->n);
    free(b->p);
    *b = (sp_buf){0};
    if (!s) pb_err_set(c->err, "%s: out of memory", c->file);
    return s;
}
