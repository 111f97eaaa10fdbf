/* cmd_generate.c — `prunebench generate MODEL --prompt TEXT --steps N`: text continuation
 * through the KV-cache decode path (greedy unless --temperature is given). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const pb_cmd pb_cmd_generate = {
    .name = "generate", .usage = "MODEL --prompt TEXT --steps N [--temperature T] [--seed S]", .n_positional = 1,
    .run = run,
    .summary = "continue a prompt (greedy by default) and print the text",
    .details = "The prompt is encoded with BOS first. Generation stops after N new tokens, at the end of\n"
               "the context, or at EOS (unless --ignore-eos). With --json the ids and text are printed\n"
               "as one JSON object instead of streaming the text.",
};

/* xorshift64*: a small seeded generator so sampled runs are reproducible across platforms. */
static double rng_uniform(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0);
}

/* Greedy (ties to the lowest id, as argmax in llama2.c) or sampling at a temperature. */
static int pick(const float *logits, int V, double temperature, uint64_t *rng) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (temperature <= 0) return best;
    double z = 0;
    for (int v = 0; v < V; v++) z += exp(((double)logits[v] - logits[best]) / temperature);
    double r = rng_uniform(rng) * z, acc = 0;
    for (int v = 0; v < V; v++) {
        acc += exp(((double)logits[v] - logits[best]) / temperature);
        if (r < acc) return v;
    }
    return best;
}

static int generate(const pb_model *m, const pb_tokenizer *tok, const char *prompt, int steps, double temperature,
                    uint64_t seed, bool ignore_eos, bool stream, cJSON *json, pb_err *err) {
    int32_t *ids = NULL;
    size_t n_prompt = 0;
    PB_TRY(pb_tok_encode(tok, prompt, strlen(prompt), true, &ids, &n_prompt, err));
    int ctx = m->cfg.max_seq_len;
    if (n_prompt >= (size_t)ctx) {
        free(ids);
        return pb_err_set(err, "prompt of %zu tokens fills the model's context of %d", n_prompt, ctx);
    }
    int total = (int)n_prompt + steps < ctx ? (int)n_prompt + steps : ctx;
    int32_t *all = realloc(ids, (size_t)total * sizeof *all);
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof *logits);
    pb_kvcache *cache = NULL;
    pb_fwd_state *st = pb_fwd_state_new();
    int rc = -1;
    if (!all || !logits || !st) { pb_err_set(err, "out of memory"); if (!all) all = ids; goto out; }
    if (pb_kvcache_create(&cache, m, 1, total, err)) goto out;

    char piece[256];
    cJSON *jids = json ? cJSON_AddArrayToObject(json, "ids") : NULL;
    size_t text_cap = 4096, text_len = 0;
    char *text = json ? malloc(text_cap) : NULL;
    if (json && !text) { pb_err_set(err, "out of memory"); goto out; }
    if (stream) {
        for (size_t i = 1; i < n_prompt; i++) {
            size_t k = pb_tok_decode(tok, all[i - 1], all[i], piece, sizeof piece);
            fwrite(piece, 1, k, stdout);
        }
        fflush(stdout);
    }
    uint64_t rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
    int pos = (int)n_prompt;
    /* prefill the prompt in one batched pass, then one token per step */
    if (pb_model_forward(m, st, all, 1, pos, cache, logits, true, err)) { free(text); goto out; }
    while (pos < total) {
        int next = pick(logits, m->cfg.vocab_size, temperature, &rng);
        if (!ignore_eos && (next == pb_tok_eos(tok) || next == pb_tok_bos(tok))) break;
        all[pos] = next;
        size_t k = pb_tok_decode(tok, all[pos - 1], next, piece, sizeof piece);
        if (stream) { fwrite(piece, 1, k, stdout); fflush(stdout); }
        if (json) {
            cJSON_AddItemToArray(jids, cJSON_CreateNumber(next));
            if (text_len + k + 1 > text_cap) {
                char *nt = realloc(text, text_cap * 2 + k);
                if (!nt) { free(text); pb_err_set(err, "out of memory"); goto out; }
                text = nt;
                text_cap = text_cap * 2 + k;
            }
            memcpy(text + text_len, piece, k);
            text_len += k;
        }
        pos++;
        if (pos < total && pb_model_forward(m, st, &all[pos - 1], 1, 1, cache, logits, true, err)) {
            free(text);
            goto out;
        }
    }
    if (stream) putchar('\n');
    if (json) {
        text[text_len] = 0;
        cJSON_AddStringToObject(json, "text", text);
        free(text);
    }
    rc = 0;
out:
    free(all);
    free(logits);
    pb_kvcache_free(cache);
    pb_fwd_state_free(st);
    return rc;
}

static int run(int argc, char **argv) {
    pb_opt opts[] = {{"prompt", PB_OPT_STR, "TEXT", "text to continue (may be empty)", 0, 0, 0, 0},
                     {"steps", PB_OPT_INT, "N", "new tokens to generate (default 128)", 0, 0, 0, 0},
                     {"temperature", PB_OPT_FLOAT, "T", "sample at temperature T instead of greedy", 0, 0, 0, 0},
                     {"seed", PB_OPT_INT, "S", "random seed for sampling", 0, 0, 0, 0},
                     {"ignore-eos", PB_OPT_FLAG, NULL, "keep generating past EOS", 0, 0, 0, 0},
                     {"json", PB_OPT_FLAG, NULL, "print {\"ids\": [...], \"text\": ...} on stdout", 0, 0, 0, 0},
                     PB_CLI_COMMON_OPTS, PB_CLI_DEVICE_OPTS, {0}};
    const char *pos[1];
    int code;
    if (pb_cli_parse(&pb_cmd_generate, argc, argv, opts, pos, &code)) return code;
    pb_opt *steps = pb_cli_opt(opts, "steps"), *temp = pb_cli_opt(opts, "temperature");
    if (steps->set && steps->ival < 0) return pb_cli_usage_error("generate", "--steps must be >= 0");
    if (temp->set && !(temp->fval >= 0)) return pb_cli_usage_error("generate", "--temperature must be >= 0");
    const char *prompt = pb_cli_opt(opts, "prompt")->str;

    pb_err err = {0};
    pb_model *m = NULL;
    pb_tokenizer *tok = NULL;
    if (pb_cli_load(pos[0], opts, true, &m, &tok, &err)) return pb_cli_fail(&err);
    bool as_json = pb_cli_opt(opts, "json")->set;
    cJSON *json = as_json ? cJSON_CreateObject() : NULL;
    int rc = generate(m, tok, prompt ? prompt : "", steps->set ? (int)steps->ival : 128, temp->set ? temp->fval : 0,
                      (uint64_t)pb_cli_opt(opts, "seed")->ival, pb_cli_opt(opts, "ignore-eos")->set, !as_json, json, &err);
    if (rc) {
        rc = pb_cli_fail(&err);
    } else if (json) {
        char *s = cJSON_PrintUnformatted(json);
        if (s) puts(s);
        free(s);
    }
    cJSON_Delete(json);
    pb_tok_free(tok);
    pb_model_free(m);
    return rc;
}
