/* cmd_score.c — `prunebench score MODEL --text FILE`: NLL and perplexity of one sequence.
 *
 * The text is encoded with BOS first and scored as one causal sequence: every token after
 * the first is predicted from its prefix (pb_logits_nll does the log-softmax in double). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const pb_cmd pb_cmd_score = {
    .name = "score", .usage = "MODEL (--text FILE | --ids FILE) [--json]", .n_positional = 1, .run = run,
    .summary = "negative log-likelihood and perplexity of a text as one causal sequence",
    .details = "--text: the file is encoded with BOS first. --ids: whitespace-separated token ids, scored\n"
               "as given. tokens = number of predicted tokens (sequence length - 1).\n"
               "A sequence longer than the model's context is an error.",
};

/* Parses whitespace-separated ids; every id must be in [0, vocab). */
static int read_ids(const char *path, int vocab, int32_t **out, size_t *n, pb_err *err) {
    char *s = NULL;
    PB_TRY(pb_file_read_all(path, &s, NULL, err));
    size_t cap = 1024, k = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) { free(s); return pb_err_set(err, "out of memory"); }
    char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && !strchr(" \t\r\n", *end))) {
            pb_err_set(err, "%s: byte %zu: expected a token id", path, (size_t)(p - s));
            goto fail;
        }
        if (v < 0 || v >= vocab) {
            pb_err_set(err, "%s: byte %zu: token id %ld outside the vocabulary [0, %d)", path, (size_t)(p - s), v, vocab);
            goto fail;
        }
        if (k == cap) {
            int32_t *nb = realloc(ids, 2 * cap * sizeof *ids);
            if (!nb) { pb_err_set(err, "out of memory"); goto fail; }
            ids = nb;
            cap *= 2;
        }
        ids[k++] = (int32_t)v;
        p = end;
    }
    free(s);
    *out = ids;
    *n = k;
    return 0;
fail:
    free(s);
    free(ids);
    return -1;
}

typedef struct { double nll_sum; size_t n; } score_result;

static int score_ids(const pb_model *m, const int32_t *ids, size_t n, score_result *r, pb_err *err) {
    if (n < 2) return pb_err_set(err, "need at least 2 tokens to score, got %zu", n);
    if (n > (size_t)m->cfg.max_seq_len)
        return pb_err_set(err, "sequence of %zu tokens is longer than the model's context of %d", n, m->cfg.max_seq_len);
    size_t V = (size_t)m->cfg.vocab_size;
    float *logits = pb_calloc(n * V, sizeof(float));
    PB_CHECK_ALLOC(logits, err);
    pb_fwd_state *st = pb_fwd_state_new();
    if (!st) { free(logits); return pb_err_set(err, "out of memory"); }
    int rc = pb_model_forward(m, st, ids, 1, (int)n, NULL, logits, false, err);
    pb_fwd_state_free(st);
    if (rc) { free(logits); return -1; }
    double sum = 0, *nll = malloc((n - 1) * sizeof *nll);
    if (!nll) { free(logits); return pb_err_set(err, "out of memory"); }
    /* row t of the logits predicts token t+1 */
    rc = pb_logits_nll(logits, ids + 1, (int64_t)n - 1, (int)V, nll, &sum, err);
    free(nll);
    free(logits);
    if (rc) return -1;
    r->nll_sum = sum;
    r->n = n - 1;
    return 0;
}

static int run(int argc, char **argv) {
    pb_opt opts[] = {{"text", PB_OPT_STR, "FILE", "UTF-8 text, encoded with BOS first", 0, 0, 0, 0},
                     {"ids", PB_OPT_STR, "FILE", "token ids instead of text", 0, 0, 0, 0},
                     {"json", PB_OPT_FLAG, NULL, "print JSON on stdout", 0, 0, 0, 0},
                     PB_CLI_COMMON_OPTS, PB_CLI_DEVICE_OPTS, {0}};
    const char *pos[1];
    int code;
    if (pb_cli_parse(&pb_cmd_score, argc, argv, opts, pos, &code)) return code;
    const char *text_path = pb_cli_opt(opts, "text")->str, *ids_path = pb_cli_opt(opts, "ids")->str;
    if (!text_path == !ids_path) return pb_cli_usage_error("score", "give exactly one of --text FILE and --ids FILE");

    pb_err err = {0};
    pb_model *m = NULL;
    pb_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    char *text = NULL;
    size_t len = 0;
    score_result r = {0};
    int rc = 0;
    if (pb_cli_load(pos[0], opts, text_path != NULL, &m, text_path ? &tok : NULL, &err)) { rc = pb_cli_fail(&err); goto out; }
    if (text_path) {
        if (pb_file_read_all(text_path, &text, &len, &err) || pb_tok_encode(tok, text, len, true, &ids, &n, &err)) {
            rc = pb_cli_fail(&err);
            goto out;
        }
    } else if (read_ids(ids_path, m->cfg.vocab_size, &ids, &n, &err)) {
        rc = pb_cli_fail(&err);
        goto out;
    }
    if (score_ids(m, ids, n, &r, &err)) {
        pb_err_prefix(&err, "%s: ", text_path ? text_path : ids_path);
        rc = pb_cli_fail(&err);
        goto out;
    }
    double mean = r.nll_sum / (double)r.n;
    if (pb_cli_opt(opts, "json")->set) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "tokens", (double)r.n);
        cJSON_AddNumberToObject(o, "nll_sum", r.nll_sum);
        cJSON_AddNumberToObject(o, "nll_mean", mean);
        cJSON_AddNumberToObject(o, "ppl", exp(mean));
        char *s = cJSON_PrintUnformatted(o);
        if (s) puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("tokens    %zu\nnll_sum   %.6f\nnll_mean  %.6f\nppl       %.4f\n", r.n, r.nll_sum, mean, exp(mean));
    }
out:
    free(text);
    free(ids);
    pb_tok_free(tok);
    pb_model_free(m);
    return rc;
}
