/* tasks_text.c — string operations with Python's semantics, as lm-eval applies them to the
 * task documents: str.strip / str.isspace / str.capitalize on code points, len() in code
 * points, HellaSwag's preprocess and WinoGrande's partial-context split.
 *
 * Strings are UTF-8 bytes. A byte that does not start a valid UTF-8 sequence counts as one
 * code point and is never case-mapped (cJSON hands over whatever the file holds). */
#include "pb_data.h" /* pb_py_isspace */
#include "tasks.h"

#include <stdlib.h>
#include <string.h>

/* Decodes the code point at s[i] (i < len); returns its byte length (1 for invalid bytes,
 * with *cp = 0xFFFFFFFF so that no mapping or class applies to it). */
static size_t utf8_next(const unsigned char *s, size_t len, size_t i, uint32_t *cp) {
    unsigned c = s[i];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) { *cp = c; return 1; }
    if ((c & 0xE0) == 0xC0) { n = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = 0xFFFFFFFFu; return 1; }
    if (n > len - i) { *cp = 0xFFFFFFFFu; return 1; }
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xC0) != 0x80) { *cp = 0xFFFFFFFFu; return 1; }
        v = (v << 6) | (s[i + k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = 0xFFFFFFFFu; return 1; }
    *cp = v;
    return n;
}

static size_t utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int64_t pb_utf8_len(const char *s, size_t len) {
    int64_t n = 0;
    uint32_t cp;
    for (size_t i = 0; i < len; n++) i += utf8_next((const unsigned char *)s, len, i, &cp);
    return n;
}

/* Start of the code point that ends at s[e-1] (e > 0). */
static size_t utf8_prev(const unsigned char *s, size_t e) {
    size_t i = e - 1;
    for (int k = 0; k < 3 && i > 0 && (s[i] & 0xC0) == 0x80; k++) i--;
    uint32_t cp;
    /* a stray continuation byte is its own (invalid) code point */
    if (i + utf8_next(s, e, i, &cp) != e) i = e - 1;
    return i;
}

size_t pb_py_rstrip_len(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t e = len;
    while (e > 0) {
        size_t p = utf8_prev(u, e);
        uint32_t cp;
        utf8_next(u, e, p, &cp);
        if (!pb_py_isspace(cp)) break;
        e = p;
    }
    return e;
}

void pb_py_strip(const char *s, size_t len, size_t *b, size_t *e) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_next(u, len, i, &cp);
        if (!pb_py_isspace(cp)) break;
        i += n;
    }
    *b = i;
    *e = i + pb_py_rstrip_len(s + i, len - i);
}

/* ---- case mapping ------------------------------------------------------------------ */

static uint32_t to_lower(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0xC0) return c;
    if (c <= 0xDE) return c == 0xD7 ? c : c + 32;                          /* Latin-1 */
    if (c >= 0x100 && c <= 0x17F) {                                        /* Latin Extended-A */
        if (c == 0x130 || c == 0x138 || c == 0x149 || c == 0x17F) return c; /* İ (-> i̇), ĸ, ŉ, ſ */
        if (c == 0x178) return 0xFF;
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c + 1 : c;
        return (c & 1) ? c : c + 1;
    }
    if (c == 0x386) return 0x3AC;                                          /* Greek */
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 63;
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;                           /* Cyrillic */
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    return c;
}

/* Title case of one code point; writes up to two code points (ß -> "Ss") and returns how many. */
static int to_title(uint32_t c, uint32_t out[2]) {
    out[0] = c;
    if (c >= 'a' && c <= 'z') out[0] = c - 32;
    else if (c == 0xB5) out[0] = 0x39C;                                    /* µ -> Μ */
    else if (c == 0xDF) { out[0] = 'S'; out[1] = 's'; return 2; }
    else if (c >= 0xE0 && c <= 0xFE && c != 0xF7) out[0] = c - 32;
    else if (c == 0xFF) out[0] = 0x178;
    else if (c >= 0x100 && c <= 0x17F) {
        if (c == 0x131) out[0] = 'I';
        else if (c == 0x17F) out[0] = 'S';
        else if (c == 0x130 || c == 0x138 || c == 0x149 || c == 0x178) out[0] = c;
        else if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) out[0] = (c & 1) ? c : c - 1;
        else out[0] = (c & 1) ? c - 1 : c;
    } else if (c == 0x3AC) out[0] = 0x386;
    else if (c >= 0x3AD && c <= 0x3AF) out[0] = c - 37;
    else if (c == 0x3CC) out[0] = 0x38C;
    else if (c == 0x3CD || c == 0x3CE) out[0] = c - 63;
    else if (c == 0x3C2) out[0] = 0x3A3;                                   /* final sigma */
    else if (c >= 0x3B1 && c <= 0x3C9) out[0] = c - 32;
    else if (c >= 0x430 && c <= 0x44F) out[0] = c - 32;
    else if (c >= 0x450 && c <= 0x45F) out[0] = c - 80;
    return 1;
}

char *pb_py_capitalize(const char *s) {
    size_t len = strlen(s);
    /* a mapped code point never needs more than twice its bytes + 2 (ß -> "Ss") */
    char *out = malloc(2 * len + 3);
    if (!out) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    bool first = true;
    while (i < len) {
        uint32_t cp, m[2];
        size_t n = utf8_next(u, len, i, &cp);
        if (cp == 0xFFFFFFFFu) {
            out[o++] = s[i];
        } else if (first) {
            int k = to_title(cp, m);
            for (int j = 0; j < k; j++) o += utf8_put(m[j], out + o);
        } else {
            o += utf8_put(to_lower(cp), out + o);
        }
        first = false;
        i += n;
    }
    out[o] = 0;
    return out;
}

/* ---- task preprocessing --------------------------------------------------------------- */

char *pb_hellaswag_preprocess(const char *s) {
    size_t b, e;
    pb_py_strip(s, strlen(s), &b, &e);
    /* " [title]" -> ". " never grows the text, nor do the later steps */
    char *t = malloc(e - b + 1), *u;
    if (!t) return NULL;
    size_t n = 0;
    for (size_t i = b; i < e;) {
        if (e - i >= 8 && memcmp(s + i, " [title]", 8) == 0) { t[n++] = '.'; t[n++] = ' '; i += 8; }
        else t[n++] = s[i++];
    }
    /* re.sub(r"\[.*?\]", "", t): from each "[", the first "]" unless a newline comes first */
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        if (t[i] == '[') {
            size_t j = i + 1;
            while (j < n && t[j] != ']' && t[j] != '\n') j++;
            if (j < n && t[j] == ']') { i = j + 1; continue; }
        }
        t[m++] = t[i++];
    }
    /* str.replace("  ", " "): one left-to-right pass over non-overlapping pairs */
    u = t;
    size_t k = 0;
    for (size_t i = 0; i < m;) {
        if (i + 1 < m && u[i] == ' ' && u[i + 1] == ' ') { u[k++] = ' '; i += 2; }
        else u[k++] = u[i++];
    }
    u[k] = 0;
    return u;
}

int pb_winogrande_split(const char *sentence, const char *option, char **ctx, char **cont, pb_err *err) {
    *ctx = *cont = NULL;
    const char *us = strchr(sentence, '_');
    if (!us) return pb_err_set(err, "sentence has no \"_\" blank");
    size_t idx = (size_t)(us - sentence), ol = strlen(option), rl = strlen(us + 1), b, e;
    pb_py_strip(us + 1, rl, &b, &e);
    *ctx = malloc(idx + ol + 1);
    *cont = malloc(e - b + 2);
    if (!*ctx || !*cont) {
        free(*ctx);
        free(*cont);
        *ctx = *cont = NULL;
        return pb_err_set(err, "out of memory");
    }
    memcpy(*ctx, sentence, idx);
    memcpy(*ctx + idx, option, ol + 1);
    (*cont)[0] = ' ';
    memcpy(*cont + 1, us + 1 + b, e - b);
    (*cont)[e - b + 1] = 0;
    return 0;
}
