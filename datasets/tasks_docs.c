/* tasks_docs.c — one builder per task: a parsed line of the original file -> the contexts,
 * continuations and gold index that lm-eval (0-shot) would build from the same document.
 *
 * Each builder follows the v0.3 task file and the v0.4 YAML (identical for these tasks,
 * ../shared/reference/eval-protocol.md section 2) reading the original files rather than the
 * HF dataset rows, so the field mapping of the HF loading scripts is reproduced here too. */
#include "tasks_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int field(const cJSON *o, const char *key, int type, const cJSON **out, pb_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return pb_err_set(err, "missing field \"%s\"", key);
    bool ok = (type == cJSON_String && cJSON_IsString(v) && v->valuestring) ||
              (type == cJSON_Object && cJSON_IsObject(v)) || (type == cJSON_Array && cJSON_IsArray(v));
    if (!ok)
        return pb_err_set(err, "field \"%s\" is not %s", key,
                          type == cJSON_String ? "a string" : type == cJSON_Object ? "an object" : "an array");
    *out = v;
    return 0;
}

static int field_str(const cJSON *o, const char *key, const char **s, pb_err *err) {
    const cJSON *v = NULL;
    PB_TRY(field(o, key, cJSON_String, &v, err));
    *s = v->valuestring;
    return 0;
}

/* Concatenation of n strings, copied into the arena. */
static char *cat(pb_arena *a, int n, const char *const *parts) {
    size_t len = 0;
    for (int i = 0; i < n; i++) len += strlen(parts[i]);
    char *s = pb_arena_alloc(a, len + 1), *p = s;
    if (!s) return NULL;
    for (int i = 0; i < n; i++) {
        size_t k = strlen(parts[i]);
        memcpy(p, parts[i], k);
        p += k;
    }
    *p = 0;
    return s;
}
#define CAT(a, ...) cat((a), (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)), \
                        (const char *const[]){__VA_ARGS__})

static int doc_alloc(pb_task_doc *d, int n, pb_arena *a, pb_err *err) {
    if (n < 1) return pb_err_set(err, "document has no choices");
    d->n_choices = n;
    d->ctx = pb_arena_alloc_n(a, (size_t)n, sizeof *d->ctx);
    d->cont = pb_arena_alloc_n(a, (size_t)n, sizeof *d->cont);
    d->choice_len = pb_arena_alloc_n(a, (size_t)n, sizeof *d->choice_len);
    if (!d->ctx || !d->cont || !d->choice_len) return pb_err_set(err, "out of memory");
    return 0;
}

/* Choice i: context ctx (already in the arena), continuation " " + choice. */
static int set_choice(pb_task_doc *d, int i, const char *ctx, const char *choice, pb_arena *a, pb_err *err) {
    d->ctx[i] = ctx;
    d->cont[i] = CAT(a, " ", choice);
    if (!d->cont[i]) return pb_err_set(err, "out of memory");
    int64_t n = pb_utf8_len(choice, strlen(choice));
    if (n > INT32_MAX) return pb_err_set(err, "choice %d is too long", i);
    d->choice_len[i] = (int)n;
    return 0;
}

/* A whole decimal integer ("1", " 2"), as Python int() accepts it. */
static bool parse_int(const char *s, long *v) {
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    while (*end == ' ' || *end == '\t') end++;
    return !errno && end != s && !*end;
}

/* BoolQ: f"{passage}\nQuestion: {question}?\nAnswer:", choices ["no", "yes"], gold = label.
 * Google's dev.jsonl (question, title, answer, passage) becomes SuperGLUE's row as its HF
 * script builds it: passage = title + " -- " + passage, label = answer. A SuperGLUE row
 * (question, passage, label) is taken as it is. */
static int build_boolq(const cJSON *o, const char *label, pb_task_doc *d, pb_arena *a, bool *bad_label, pb_err *err) {
    (void)label;
    (void)bad_label;
    const char *q, *p, *title = NULL;
    PB_TRY(field_str(o, "question", &q, err));
    PB_TRY(field_str(o, "passage", &p, err));
    const cJSON *ans;
    if (cJSON_GetObjectItemCaseSensitive(o, "title")) {
        PB_TRY(field_str(o, "title", &title, err));
        ans = cJSON_GetObjectItemCaseSensitive(o, "answer");
        if (!ans) return pb_err_set(err, "missing field \"answer\"");
        if (!cJSON_IsBool(ans)) return pb_err_set(err, "field \"answer\" is not true or false");
        d->gold = cJSON_IsTrue(ans) ? 1 : 0;
    } else {
        ans = cJSON_GetObjectItemCaseSensitive(o, "label");
        if (!ans) return pb_err_set(err, "missing field \"title\" (Google format) or \"label\" (SuperGLUE format)");
        if (cJSON_IsBool(ans)) d->gold = cJSON_IsTrue(ans) ? 1 : 0;
        else if (cJSON_IsNumber(ans) && (ans->valuedouble == 0 || ans->valuedouble == 1)) d->gold = (int)ans->valuedouble;
        else return pb_err_set(err, "field \"label\" is not 0/1 or true/false");
    }
    const char *ctx = title ? CAT(a, title, " -- ", p, "\nQuestion: ", q, "?\nAnswer:")
                            : CAT(a, p, "\nQuestion: ", q, "?\nAnswer:");
    if (!ctx) return pb_err_set(err, "out of memory");
    PB_TRY(doc_alloc(d, 2, a, err));
    PB_TRY(set_choice(d, 0, ctx, "no", a, err));
    return set_choice(d, 1, ctx, "yes", a, err);
}

/* PIQA: "Question: " + goal + "\nAnswer:", choices [sol1, sol2], gold from the labels line. */
static int build_piqa(const cJSON *o, const char *label, pb_task_doc *d, pb_arena *a, bool *bad_label, pb_err *err) {
    const char *goal, *s1, *s2;
    PB_TRY(field_str(o, "goal", &goal, err));
    PB_TRY(field_str(o, "sol1", &s1, err));
    PB_TRY(field_str(o, "sol2", &s2, err));
    long v;
    if (!label || !parse_int(label, &v) || (v != 0 && v != 1)) {
        *bad_label = true;
        return pb_err_set(err, "label \"%s\" is not 0 or 1", label ? label : "");
    }
    d->gold = (int)v;
    const char *ctx = CAT(a, "Question: ", goal, "\nAnswer:");
    if (!ctx) return pb_err_set(err, "out of memory");
    PB_TRY(doc_alloc(d, 2, a, err));
    PB_TRY(set_choice(d, 0, ctx, s1, a, err));
    return set_choice(d, 1, ctx, s2, a, err);
}

/* HellaSwag: preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()), choices
 * [preprocess(e) for e in endings], gold = int(label). */
static int build_hellaswag(const cJSON *o, const char *label, pb_task_doc *d, pb_arena *a, bool *bad_label,
                           pb_err *err) {
    (void)label;
    (void)bad_label;
    const char *act, *ca, *cb;
    const cJSON *ends, *lab;
    PB_TRY(field_str(o, "activity_label", &act, err));
    PB_TRY(field_str(o, "ctx_a", &ca, err));
    PB_TRY(field_str(o, "ctx_b", &cb, err));
    PB_TRY(field(o, "endings", cJSON_Array, &ends, err));
    lab = cJSON_GetObjectItemCaseSensitive(o, "label");
    if (!lab) return pb_err_set(err, "missing field \"label\"");
    long g;
    if (cJSON_IsNumber(lab) && lab->valuedouble == (double)(long)lab->valuedouble) g = (long)lab->valuedouble;
    else if (!cJSON_IsString(lab) || !lab->valuestring || !parse_int(lab->valuestring, &g))
        return pb_err_set(err, "field \"label\" is not an integer");
    int n = cJSON_GetArraySize(ends);
    if (g < 0 || g >= n) return pb_err_set(err, "label %ld is outside the %d endings", g, n);
    d->gold = (int)g;

    char *cap = pb_py_capitalize(cb);
    if (!cap) return pb_err_set(err, "out of memory");
    const char *raw = CAT(a, act, ": ", ca, " ", cap);
    free(cap);
    char *q = raw ? pb_hellaswag_preprocess(raw) : NULL;
    const char *ctx = q ? pb_arena_strdup(a, q) : NULL;
    free(q);
    if (!ctx) return pb_err_set(err, "out of memory");
    PB_TRY(doc_alloc(d, n, a, err));
    int i = 0;
    for (const cJSON *e = ends->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e) || !e->valuestring) return pb_err_set(err, "endings[%d] is not a string", i);
        char *pe = pb_hellaswag_preprocess(e->valuestring);
        if (!pe) return pb_err_set(err, "out of memory");
        int rc = set_choice(d, i, ctx, pe, a, err);
        free(pe);
        PB_TRY(rc);
    }
    return 0;
}

/* WinoGrande partial scoring: one context per option (sentence before "_" + option), one
 * continuation " " + (sentence after "_").strip(); gold from "1"/"2" (labels file, checked
 * against the document's "answer" when it has one). */
static int build_winogrande(const cJSON *o, const char *label, pb_task_doc *d, pb_arena *a, bool *bad_label,
                            pb_err *err) {
    const char *sent, *opt[2], *ans = NULL;
    PB_TRY(field_str(o, "sentence", &sent, err));
    PB_TRY(field_str(o, "option1", &opt[0], err));
    PB_TRY(field_str(o, "option2", &opt[1], err));
    if (cJSON_GetObjectItemCaseSensitive(o, "answer")) PB_TRY(field_str(o, "answer", &ans, err));
    long v;
    if (label) {
        if (!parse_int(label, &v) || (v != 1 && v != 2)) {
            *bad_label = true;
            return pb_err_set(err, "label \"%s\" is not 1 or 2", label);
        }
        long va;
        if (ans && (!parse_int(ans, &va) || va != v)) {
            *bad_label = true;
            return pb_err_set(err, "label \"%s\" disagrees with the document's answer \"%s\"", label, ans);
        }
    } else {
        if (!ans) return pb_err_set(err, "missing field \"answer\" (and no labels file)");
        if (!parse_int(ans, &v) || (v != 1 && v != 2)) return pb_err_set(err, "field \"answer\" is not \"1\" or \"2\"");
    }
    d->gold = (int)v - 1;
    PB_TRY(doc_alloc(d, 2, a, err));
    for (int i = 0; i < 2; i++) {
        char *ctx, *cont;
        PB_TRY(pb_winogrande_split(sent, opt[i], &ctx, &cont, err));
        d->ctx[i] = pb_arena_strdup(a, ctx);
        d->cont[i] = pb_arena_strdup(a, cont);
        free(ctx);
        free(cont);
        if (!d->ctx[i] || !d->cont[i]) return pb_err_set(err, "out of memory");
        d->choice_len[i] = (int)pb_utf8_len(opt[i], strlen(opt[i]));
    }
    return 0;
}

/* ARC-V1 / OBQA: {"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}. */
static int mc_fields(const cJSON *o, const char **stem, const cJSON **choices, const char **key, pb_err *err) {
    const cJSON *q;
    PB_TRY(field(o, "question", cJSON_Object, &q, err));
    if (field_str(q, "stem", stem, err) || field(q, "choices", cJSON_Array, choices, err))
        return pb_err_prefix(err, "question: ");
    return field_str(o, "answerKey", key, err);
}

static int mc_choices(const cJSON *choices, const char *ctx, pb_task_doc *d, pb_arena *a, pb_err *err) {
    PB_TRY(doc_alloc(d, cJSON_GetArraySize(choices), a, err));
    int i = 0;
    for (const cJSON *c = choices->child; c; c = c->next, i++) {
        const char *text;
        if (!cJSON_IsObject(c) || field_str(c, "text", &text, err))
            return pb_err_set(err, "question: choices[%d] has no \"text\" string", i);
        PB_TRY(set_choice(d, i, ctx, text, a, err));
    }
    return 0;
}

/* ARC: "Question: " + stem + "\nAnswer:"; gold = the position of answerKey among the choice
 * labels (v0.4). v0.3 maps "1".."5" to "A".."E" and indexes "ABCDE"; both must agree. */
static int build_arc(const cJSON *o, const char *label, pb_task_doc *d, pb_arena *a, bool *bad_label, pb_err *err) {
    (void)label;
    (void)bad_label;
    const char *stem, *key;
    const cJSON *choices;
    PB_TRY(mc_fields(o, &stem, &choices, &key, err));
    const char *ctx = CAT(a, "Question: ", stem, "\nAnswer:");
    if (!ctx) return pb_err_set(err, "out of memory");
    PB_TRY(mc_choices(choices, ctx, d, a, err));
    d->gold = -1;
    int i = 0;
    for (const cJSON *c = choices->child; c; c = c->next, i++) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(c, "label");
        if (!cJSON_IsString(l) || !l->valuestring) return pb_err_set(err, "question: choices[%d] has no \"label\" string", i);
        if (d->gold < 0 && strcmp(l->valuestring, key) == 0) d->gold = i;
    }
    if (d->gold < 0) return pb_err_set(err, "answerKey \"%s\" is not one of the choice labels", key);
    const char *letters = "ABCDE", *digits = "12345";
    const char *pos = strlen(key) == 1 ? strchr(letters, key[0]) : NULL;
    if (!pos && strlen(key) == 1 && strchr(digits, key[0])) pos = letters + (strchr(digits, key[0]) - digits);
    if (!pos || pos - letters != d->gold)
        return pb_err_set(err, "answerKey \"%s\" is choice %d, but lm-eval v0.3 would take %s", key, d->gold,
                          pos ? "another position" : "no position");
    return 0;
}

/* OBQA: the bare question stem (no "Question:" prefix); gold = "ABCD".index(answerKey.strip()). */
static int build_obqa(const cJSON *o, const char *label, pb_task_doc *d, pb_arena *a, bool *bad_label, pb_err *err) {
    (void)label;
    (void)bad_label;
    const char *stem, *key;
    const cJSON *choices;
    PB_TRY(mc_fields(o, &stem, &choices, &key, err));
    const char *ctx = pb_arena_strdup(a, stem);
    if (!ctx) return pb_err_set(err, "out of memory");
    PB_TRY(mc_choices(choices, ctx, d, a, err));
    size_t b, e;
    pb_py_strip(key, strlen(key), &b, &e);
    const char *letters = "ABCD", *pos = e - b == 1 ? strchr(letters, key[b]) : NULL;
    if (!pos || !*pos) return pb_err_set(err, "answerKey \"%s\" is not A, B, C or D", key);
    d->gold = (int)(pos - letters);
    if (d->gold >= d->n_choices)
        return pb_err_set(err, "answerKey \"%s\" but only %d choices", key, d->n_choices);
    return 0;
}

static const pb_task_def defs[] = {
    {"boolq", PB_LABELS_NONE, false, false, build_boolq},
    {"piqa", PB_LABELS_REQUIRED, true, false, build_piqa},
    {"hellaswag", PB_LABELS_NONE, true, true, build_hellaswag},
    {"winogrande", PB_LABELS_OPTIONAL, false, false, build_winogrande},
    {"arc_easy", PB_LABELS_NONE, true, false, build_arc},
    {"arc_challenge", PB_LABELS_NONE, true, true, build_arc},
    {"openbookqa", PB_LABELS_NONE, true, true, build_obqa},
};

const pb_task_def *pb_task_def_find(const char *name) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        if (name && strcmp(defs[i].name, name) == 0) return &defs[i];
    return NULL;
}
