/* sft_dump.c — test tool: prints what the training-data module (datasets/sft.h) produces,
 * as JSON on stdout, for the Python reference tests to compare with their own version.
 *
 *   sft_dump load TOKENIZER FILE alpaca|text CUTOFF [--train-on-inputs] [--no-eos] [--summary]
 *                 [--split VAL SEED] [--pack PAD I,J,K...]
 *       {"n", "n_tokens", "n_skipped", "examples": [{"ids": [...], "n_prompt": k}, ...],
 *        "split": {"train": [...], "val": [...]},
 *        "pack": {"T", "labelled", "tokens": [[...]], "targets": [[...]]}}
 *       (--summary leaves out "examples")
 *   sft_dump split N VAL SEED        {"train": [...], "val": [...]}
 *   sft_dump shuffle N SEED EPOCH    [...] (the identity 0..N-1 shuffled)
 *
 * Errors: the library's one-line message on stderr, exit 1 (2 for usage). */
#include "sft.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr, "usage: sft_dump load TOKENIZER FILE alpaca|text CUTOFF [--train-on-inputs] [--no-eos] "
                    "[--summary] [--split VAL SEED] [--pack PAD I,J,...] | split N VAL SEED | shuffle N SEED EPOCH\n");
    return 2;
}

static int fail(const pb_err *e) {
    fprintf(stderr, "%s\n", e->msg);
    return 1;
}

static cJSON *int_array(const int *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *i32_array(const int32_t *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static int print(cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) { fprintf(stderr, "out of memory printing JSON\n"); return 1; }
    puts(s);
    free(s);
    return 0;
}

static cJSON *split_json(int n, int val, uint64_t seed, pb_err *err) {
    int *tr, *va, nt, nv;
    if (pb_sft_split(n, val, seed, &tr, &nt, &va, &nv, err)) return NULL;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "train", int_array(tr, nt));
    cJSON_AddItemToObject(j, "val", int_array(va, nv));
    free(tr);
    free(va);
    return j;
}

static int load(int argc, char **argv) {
    pb_err err = {0};
    pb_sft_opts o = {.cutoff = atoi(argv[5]), .add_eos = true};
    if (!strcmp(argv[4], "alpaca")) o.format = PB_SFT_ALPACA;
    else if (!strcmp(argv[4], "text")) o.format = PB_SFT_TEXT;
    else return usage();
    bool summary = false;
    int split_val = -1, pad = 0, nsel = 0, sel[256];
    uint64_t split_seed = 0;
    for (int i = 6; i < argc; i++) {
        if (!strcmp(argv[i], "--train-on-inputs")) o.train_on_inputs = true;
        else if (!strcmp(argv[i], "--no-eos")) o.add_eos = false;
        else if (!strcmp(argv[i], "--summary")) summary = true;
        else if (!strcmp(argv[i], "--split") && i + 2 < argc) {
            split_val = atoi(argv[++i]);
            split_seed = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--pack") && i + 2 < argc) {
            pad = atoi(argv[++i]);
            for (char *p = argv[++i]; *p && nsel < 256; p += *p == ',') sel[nsel++] = (int)strtol(p, &p, 10);
        } else return usage();
    }
    pb_tokenizer *tok;
    if (pb_tok_load(argv[2], &tok, &err)) return fail(&err);
    pb_sft_set s;
    int rc = pb_sft_load(argv[3], tok, &o, &s, &err);
    pb_tok_free(tok);
    if (rc) return fail(&err);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "n", s.n);
    cJSON_AddNumberToObject(j, "n_tokens", (double)s.n_tokens);
    cJSON_AddNumberToObject(j, "n_skipped", (double)s.n_skipped);
    if (!summary) {
        cJSON *ex = cJSON_AddArrayToObject(j, "examples");
        for (int i = 0; i < s.n; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddItemToObject(e, "ids", i32_array(s.ids + s.off[i], s.len[i]));
            cJSON_AddNumberToObject(e, "n_prompt", s.n_prompt[i]);
            cJSON_AddItemToArray(ex, e);
        }
    }
    if (split_val >= 0) {
        cJSON *sp = split_json(s.n, split_val, split_seed, &err);
        if (!sp) { cJSON_Delete(j); pb_sft_free(&s); return fail(&err); }
        cJSON_AddItemToObject(j, "split", sp);
    }
    if (nsel) {
        /* the header asks for B * cutoff entries; fill the rest with a canary to see overruns */
        size_t cap = (size_t)nsel * (size_t)o.cutoff;
        int32_t *tokens = malloc((cap + 1) * sizeof *tokens), *targets = malloc((cap + 1) * sizeof *targets);
        const char *why = !tokens || !targets ? "out of memory" : NULL;
        for (int b = 0; b < nsel && !why; b++)
            if (sel[b] < 0 || sel[b] >= s.n) why = "pack index out of range";
        if (why) {
            fprintf(stderr, "%s\n", why);
            free(tokens);
            free(targets);
            cJSON_Delete(j);
            pb_sft_free(&s);
            return 2;
        }
        for (size_t i = 0; i <= cap; i++) tokens[i] = targets[i] = -777;
        int T = -1;
        int64_t lab = pb_sft_pack(&s, sel, nsel, pad, tokens, targets, &T);
        cJSON *p = cJSON_AddObjectToObject(j, "pack");
        cJSON_AddNumberToObject(p, "T", T);
        cJSON_AddNumberToObject(p, "labelled", (double)lab);
        cJSON *tk = cJSON_AddArrayToObject(p, "tokens"), *tg = cJSON_AddArrayToObject(p, "targets");
        for (int b = 0; b < nsel && T >= 0; b++) {
            cJSON_AddItemToArray(tk, i32_array(tokens + (size_t)b * T, T));
            cJSON_AddItemToArray(tg, i32_array(targets + (size_t)b * T, T));
        }
        /* entries past B * T must be untouched */
        size_t touched = 0;
        for (size_t i = (size_t)nsel * (size_t)(T > 0 ? T : 0); i <= cap; i++) touched += tokens[i] != -777 || targets[i] != -777;
        cJSON_AddNumberToObject(p, "written_past_end", (double)touched);
        free(tokens);
        free(targets);
    }
    pb_sft_free(&s);
    return print(j);
}

int main(int argc, char **argv) {
    pb_err err = {0};
    if (argc >= 6 && !strcmp(argv[1], "load")) return load(argc, argv);
    if (argc == 5 && !strcmp(argv[1], "split")) {
        cJSON *j = split_json(atoi(argv[2]), atoi(argv[3]), strtoull(argv[4], NULL, 10), &err);
        return j ? print(j) : fail(&err);
    }
    if (argc == 5 && !strcmp(argv[1], "shuffle")) {
        int n = atoi(argv[2]);
        if (n < 0 || n > 10000000) return usage();
        int *p = malloc((size_t)(n ? n : 1) * sizeof *p);
        if (!p) return 1;
        for (int i = 0; i < n; i++) p[i] = i;
        pb_sft_shuffle(p, n, strtoull(argv[3], NULL, 10), atoi(argv[4]));
        cJSON *j = int_array(p, n);
        free(p);
        return print(j);
    }
    return usage();
}
