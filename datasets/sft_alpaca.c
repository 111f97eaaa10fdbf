/* sft_alpaca.c — Alpaca instruction records (instruction, input, output) read from a JSON
 * array or JSON Lines, rendered with the Alpaca-LoRA prompt template (templates/alpaca.json)
 * and tokenized as LLM-Pruner's post_training.py and Shortened LLaMA's lora_retrain.py do:
 *
 *   full      = template(instruction, input) + output
 *   ids       = tokenize(full, add_eos)                       (sft_tokenize)
 *   n_prompt  = len(tokenize(template alone, add_eos=false))  when !train_on_inputs, else 0
 *
 * Both scripts run with --add_eos_token unset, under which the user prompt is measured
 * without EOS, as here; n_prompt is capped at len(ids) (the scripts' label list is then all
 * -100). A record with no labelled position left is skipped and counted, where the scripts
 * would keep it with no loss. Field rules: "instruction" and "output" must be strings;
 * "input" may be a string, null or absent (null, absent and "" all select the no-input
 * template, as Prompter's `if input:` does with the None that HF datasets fills in); other
 * keys are ignored. A JSON string holding \u0000 ends at it (cJSON strings are C strings).
 *
 * Errors name the file and the record: "FILE: record N: ..." with N the 0-based array index
 * (what jq '.[N]' shows), "FILE:LINE: ..." for JSON Lines, and "FILE:LINE:COL: not valid
 * JSON" where COL is where cJSON stopped (at or one byte after the offending byte). */
#include "sft_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char TPL_INPUT[] = "Below is an instruction that describes a task, paired with an input that provides "
                                "further context. Write a response that appropriately completes the request.\n\n"
                                "### Instruction:\n";
static const char TPL_NO_INPUT[] = "Below is an instruction that describes a task. Write a response that "
                                   "appropriately completes the request.\n\n### Instruction:\n";

/* A growing byte buffer for the rendered prompt, reused across records. */
typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static int sb_put(sbuf *s, const char *t, size_t k, pb_err *err) {
    if (k > SIZE_MAX / 4 - s->n) return pb_err_set(err, "record too large");
    if (s->n + k + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->n + k + 1) cap *= 2;
        char *np = realloc(s->p, cap);
        PB_CHECK_ALLOC(np, err);
        s->p = np;
        s->cap = cap;
    }
    memcpy(s->p + s->n, t, k);
    s->n += k;
    s->p[s->n] = 0;
    return 0;
}
#define SB_PUTS(s, str, err) sb_put((s), (str), strlen(str), (err))

typedef struct {
    const char *path;
    const pb_tokenizer *tok;
    const pb_sft_opts *o;
    sft_builder *b;
    sbuf text;
    char why[160]; /* what is wrong with a record, for the caller to place */
} alpaca_ctx;

/* The string value of field `name`, or NULL with c->why filled. optional: null/absent give "". */
static const char *field(alpaca_ctx *c, const cJSON *rec, const char *name, bool optional) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, name);
    if (cJSON_IsString(v) && v->valuestring) return v->valuestring;
    if (optional && (!v || cJSON_IsNull(v))) return "";
    if (!v) snprintf(c->why, sizeof c->why, "missing string field \"%s\"", name);
    else snprintf(c->why, sizeof c->why, "field \"%s\" is not a string", name);
    return NULL;
}

/* One record. Returns 1 when the record itself is bad (c->why says how), -1 on other errors
 * (err filled, without location), 0 when done (added or skipped). */
static int record(alpaca_ctx *c, const cJSON *rec, pb_err *err) {
    if (!cJSON_IsObject(rec)) {
        snprintf(c->why, sizeof c->why, "not a JSON object");
        return 1;
    }
    const char *ins = field(c, rec, "instruction", false), *in = ins ? field(c, rec, "input", true) : NULL;
    const char *out = in ? field(c, rec, "output", false) : NULL;
    if (!out) return 1;
    sbuf *t = &c->text;
    t->n = 0;
    if (SB_PUTS(t, *in ? TPL_INPUT : TPL_NO_INPUT, err) || SB_PUTS(t, ins, err)) return -1;
    if (*in && (SB_PUTS(t, "\n\n### Input:\n", err) || SB_PUTS(t, in, err))) return -1;
    if (SB_PUTS(t, "\n\n### Response:\n", err)) return -1;
    size_t n_tpl = t->n;
    if (SB_PUTS(t, out, err)) return -1;

    int32_t *ids = NULL;
    int n, eos, n_prompt = 0;
    if (sft_tokenize(c->tok, t->p, t->n, c->o->cutoff, c->o->add_eos, &ids, &n, &eos, err)) return -1;
    int len = n + (eos >= 0);
    if (!c->o->train_on_inputs) {
        int32_t *pids = NULL;
        int pn, peos;
        if (sft_tokenize(c->tok, t->p, n_tpl, c->o->cutoff, false, &pids, &pn, &peos, err)) {
            free(ids);
            return -1;
        }
        free(pids);
        n_prompt = pn < len ? pn : len;
    }
    /* position t is labelled iff n_prompt <= t + 1 < len: some exist iff max(n_prompt, 1) < len */
    int rc = 0;
    if ((n_prompt > 1 ? n_prompt : 1) < len) rc = sft_add_example(c->b, ids, n, eos, n_prompt, err);
    else c->b->s.n_skipped++;
    free(ids);
    return rc;
}

/* 1-based line and column of byte `at` of data. */
static void line_col(const char *data, size_t at, size_t *line, size_t *col) {
    size_t l = 1, start = 0;
    for (size_t i = 0; i < at; i++)
        if (data[i] == '\n') { l++; start = i + 1; }
    *line = l;
    *col = at - start + 1;
}

static bool json_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

/* A JSON array of records. */
static int load_array(alpaca_ctx *c, const char *data, size_t size, size_t start, pb_err *err) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data + start, size - start, &end, false);
    size_t line, col;
    if (!root) {
        size_t at = end && end >= data + start && end <= data + size ? (size_t)(end - data) : start;
        line_col(data, at, &line, &col);
        return pb_err_set(err, "%s:%zu:%zu: not valid JSON", c->path, line, col);
    }
    size_t at = (size_t)(end - data);
    while (at < size && json_space(data[at])) at++;
    if (at < size) {
        cJSON_Delete(root);
        line_col(data, at, &line, &col);
        return pb_err_set(err, "%s:%zu:%zu: text after the JSON array", c->path, line, col);
    }
    int i = 0, rc = 0;
    for (const cJSON *rec = root->child; rec && rc == 0; rec = rec->next, i++) {
        rc = record(c, rec, err);
        if (rc == 1) pb_err_set(err, "%s: record %d: %s", c->path, i, c->why);
        else if (rc) pb_err_prefix(err, "%s: record %d: ", c->path, i);
    }
    cJSON_Delete(root);
    return rc ? -1 : 0;
}

/* JSON Lines: one record per line ("\n" ends a line; a "\r" before it is JSON whitespace);
 * lines holding only whitespace are skipped. Columns count bytes from the line's start. */
static int load_jsonl(alpaca_ctx *c, const char *data, size_t size, size_t pos, pb_err *err) {
    size_t lineno = 0;
    while (pos < size) {
        const char *nl = memchr(data + pos, '\n', size - pos);
        size_t ls = pos, a = pos, e = nl ? (size_t)(nl - data) : size;
        pos = nl ? e + 1 : size;
        lineno++;
        while (a < e && json_space(data[a])) a++;
        if (a == e) continue;
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(data + a, e - a, &end, false);
        if (!j) {
            size_t at = end && end >= data + a && end <= data + e ? (size_t)(end - data) : a;
            return pb_err_set(err, "%s:%zu:%zu: not valid JSON", c->path, lineno, at - ls + 1);
        }
        size_t t = (size_t)(end - data);
        while (t < e && json_space(data[t])) t++;
        int rc;
        if (t < e) {
            rc = pb_err_set(err, "%s:%zu:%zu: text after the JSON value", c->path, lineno, t - ls + 1);
        } else {
            rc = record(c, j, err);
            if (rc == 1) rc = pb_err_set(err, "%s:%zu: %s", c->path, lineno, c->why);
            else if (rc) pb_err_prefix(err, "%s:%zu: ", c->path, lineno);
        }
        cJSON_Delete(j);
        if (rc) return -1;
    }
    return 0;
}

int sft_load_alpaca(const char *path, const char *data, size_t size, const pb_tokenizer *tok, const pb_sft_opts *o,
                    sft_builder *b, pb_err *err) {
    size_t bom = size >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3) ? 3 : 0; /* a UTF-8 byte-order mark */
    size_t start = bom;
    while (start < size && json_space(data[start])) start++;
    if (start == size) return pb_err_set(err, "%s: empty file (no Alpaca records)", path);
    alpaca_ctx c = {.path = path, .tok = tok, .o = o, .b = b};
    int rc = data[start] == '[' ? load_array(&c, data, size, start, err) : load_jsonl(&c, data, size, bom, err);
    free(c.text.p);
    if (rc) return -1;
    if (b->s.n == 0)
        return pb_err_set(err, "%s: no training example: %lld record(s), none with a labelled token within %d tokens",
                          path, (long long)b->s.n_skipped, o->cutoff);
    return 0;
}
