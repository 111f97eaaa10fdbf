/* tok_encode.c — test-only driver for the Python tokenizer tests: loads a tokenizer and
 * encodes records, or decodes id lists, printing results the scripts compare with
 * sentencepiece / HF tokenizers.
 *
 *   tok_encode [--bos] [--llama2c N] [--vocab-json] TOKENIZER MODE INPUT
 *     TOKENIZER  a tokenizer file (pb_tok_load), a llama2.c file (--llama2c N), or a JSON
 *                description of a pb_tok_vocab_spec (--vocab-json), as a GGUF reader hands over
 *     MODE records  INPUT holds records (uint32 LE length + bytes); prints one line of ids each
 *          whole    INPUT is one text; prints its ids on one line, the encode time on stderr
 *          decode   INPUT has one line of ids per record; writes each decoded record as
 *                   uint32 LE length + bytes
 *          info     prints vocab size, bos, eos, kind, default add_bos */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

static int die(const char *msg) {
    fprintf(stderr, "tok_encode: error: %s\n", msg);
    return 1;
}

static int print_ids(const pb_tokenizer *t, const char *s, size_t n, bool bos) {
    int32_t *ids;
    size_t k;
    pb_err err;
    if (pb_tok_encode(t, s, n, bos, &ids, &k, &err) != 0) return die(err.msg);
    for (size_t i = 0; i < k; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    free(ids);
    return 0;
}

/* Reads a vocab spec JSON: {"model", "pre", "tokens": [...], "scores", "types", "merges",
 * "bos_id", "eos_id", "unk_id", "add_bos", "add_space_prefix"}. */
static int load_spec(const char *path, pb_tokenizer **t, pb_err *err) {
    char *text;
    size_t size;
    if (pb_file_read_all(path, &text, &size, err) != 0) return -1;
    cJSON *j = cJSON_ParseWithLength(text, size);
    free(text);
    if (!j) return pb_err_set(err, "%s: bad JSON", path);
    pb_tok_vocab_spec s = {0};
    const cJSON *toks = cJSON_GetObjectItem(j, "tokens"), *sc = cJSON_GetObjectItem(j, "scores");
    const cJSON *ty = cJSON_GetObjectItem(j, "types"), *mg = cJSON_GetObjectItem(j, "merges");
    s.model = cJSON_GetStringValue(cJSON_GetObjectItem(j, "model"));
    s.pre = cJSON_GetStringValue(cJSON_GetObjectItem(j, "pre"));
    s.n_tokens = cJSON_GetArraySize(toks);
    s.n_merges = mg ? cJSON_GetArraySize(mg) : 0;
    const char **tk = calloc((size_t)s.n_tokens + 1, sizeof *tk);
    float *scores = sc ? calloc((size_t)s.n_tokens + 1, sizeof *scores) : NULL;
    int32_t *types = ty ? calloc((size_t)s.n_tokens + 1, sizeof *types) : NULL;
    const char **merges = calloc((size_t)s.n_merges + 1, sizeof *merges);
    for (int i = 0; i < s.n_tokens; i++) {
        tk[i] = cJSON_GetStringValue(cJSON_GetArrayItem(toks, i));
        if (scores) scores[i] = (float)cJSON_GetArrayItem(sc, i)->valuedouble;
        if (types) types[i] = (int32_t)cJSON_GetArrayItem(ty, i)->valueint;
    }
    for (int i = 0; i < s.n_merges; i++) merges[i] = cJSON_GetStringValue(cJSON_GetArrayItem(mg, i));
    s.tokens = tk;
    s.scores = scores;
    s.types = types;
    s.merges = merges;
    const char *keys[] = {"bos_id", "eos_id", "unk_id", "add_bos", "add_space_prefix"};
    int *vals[] = {&s.bos_id, &s.eos_id, &s.unk_id, &s.add_bos, &s.add_space_prefix};
    for (int k = 0; k < 5; k++) {
        const cJSON *v = cJSON_GetObjectItem(j, keys[k]);
        *vals[k] = cJSON_IsNumber(v) ? v->valueint : -1;
    }
    int rc = pb_tok_from_vocab(&s, t, err);
    free(tk); free(scores); free(types); free(merges);
    cJSON_Delete(j);
    return rc;
}

int main(int argc, char **argv) {
    bool bos = false, spec = false;
    int l2c = 0, a = 1;
    for (; a < argc && !strncmp(argv[a], "--", 2); a++) {
        if (!strcmp(argv[a], "--bos")) bos = true;
        else if (!strcmp(argv[a], "--vocab-json")) spec = true;
        else if (!strcmp(argv[a], "--llama2c") && a + 1 < argc) l2c = atoi(argv[++a]);
        else return die("unknown option");
    }
    if (argc - a < 2) return die("usage: tok_encode [--bos] [--llama2c N] [--vocab-json] TOKENIZER MODE [INPUT]");
    const char *tpath = argv[a], *mode = argv[a + 1], *in = argc - a > 2 ? argv[a + 2] : NULL;
    pb_tokenizer *t;
    pb_err err;
    int rc = spec ? load_spec(tpath, &t, &err) : l2c ? pb_tok_load_llama2c(tpath, l2c, &t, &err)
                                                     : pb_tok_load(tpath, &t, &err);
    if (rc != 0) return die(err.msg);
    if (!strcmp(mode, "info")) {
        printf("%d %d %d %d %d\n", pb_tok_vocab_size(t), pb_tok_bos(t), pb_tok_eos(t), (int)pb_tok_kind_of(t),
               (int)pb_tok_default_add_bos(t));
        pb_tok_free(t);
        return 0;
    }
    char *data;
    size_t size;
    if (!in || pb_file_read_all(in, &data, &size, &err) != 0) { pb_tok_free(t); return die(in ? err.msg : "no input"); }
    rc = 0;
    if (!strcmp(mode, "whole")) {
        double t0 = pb_time_now();
        int32_t *ids;
        size_t k;
        if (pb_tok_encode(t, data, size, bos, &ids, &k, &err) != 0) rc = die(err.msg);
        double dt = pb_time_now() - t0;
        if (rc == 0) {
            fprintf(stderr, "encode_seconds %.4f bytes %zu tokens %zu\n", dt, size, k);
            for (size_t i = 0; i < k; i++) printf(i ? " %d" : "%d", ids[i]);
            putchar('\n');
            free(ids);
        }
    } else if (!strcmp(mode, "records")) {
        for (size_t p = 0; rc == 0 && p < size;) {
            if (size - p < 4) { rc = die("truncated record"); break; }
            uint32_t n = (uint32_t)(uint8_t)data[p] | (uint32_t)(uint8_t)data[p + 1] << 8 |
                         (uint32_t)(uint8_t)data[p + 2] << 16 | (uint32_t)(uint8_t)data[p + 3] << 24;
            if (n > size - p - 4) { rc = die("truncated record"); break; }
            rc = print_ids(t, data + p + 4, n, bos);
            p += 4 + (size_t)n;
        }
    } else if (!strcmp(mode, "decode")) {
        char buf[4096];
        for (char *line = data, *nl; line < data + size; line = nl + 1) {
            nl = memchr(line, '\n', (size_t)(data + size - line));
            if (!nl) break; /* every record line ends in a newline, empty ones included */
            *nl = 0;
            size_t cap = 1 << 16, n = 0;
            char *out = malloc(cap);
            int prev = -1;
            for (char *q = line, *e; *q; q = e) {
                long id = strtol(q, &e, 10);
                if (e == q) break;
                size_t k = pb_tok_decode(t, prev, (int)id, buf, sizeof buf);
                if (n + k > cap) { cap = 2 * (n + k); out = realloc(out, cap); }
                memcpy(out + n, buf, k);
                n += k;
                prev = (int)id;
            }
            uint8_t h[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
            fwrite(h, 1, 4, stdout);
            fwrite(out, 1, n, stdout);
            free(out);
        }
    } else {
        rc = die("unknown mode");
    }
    free(data);
    pb_tok_free(t);
    return rc;
}
