/* cmd_bench.c — `prunebench bench MODEL --batch 1,16,64 --prompt-len 128 --gen-len 128`:
 * generation latency, throughput and peak memory for every combination of the lists
 * (metrics/speed.h has the protocol). */
#include "cli.h"
#include "speed.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const pb_cmd pb_cmd_bench = {
    .name = "bench", .n_positional = 1, .run = run,
    .usage = "MODEL [--batch LIST] [--prompt-len LIST] [--gen-len LIST] [--reps N] [--warmup N] [--json]",
    .summary = "generation latency, throughput (output tokens/s) and peak memory",
    .details =
        "Every combination of the comma lists is run: random prompts (seeded, no BOS/EOS ids) of\n"
        "prompt-len tokens are continued greedily for exactly gen-len tokens with the KV cache, EOS\n"
        "ignored. The whole generation is timed (Shortened LLaMA's protocol): prefill_s is the prompt\n"
        "pass and the first new token, decode_ms_per_token the mean time of one decode step (a token\n"
        "for each sequence of the batch), tokens_per_s = batch * gen_len / total_s. Mean and\n"
        "population std over --reps timed runs after --warmup runs (Shortened LLaMA used --warmup 10\n"
        "--reps 20). peak_rss_bytes is the peak resident set during the configuration (weights\n"
        "included); peak_rss_scope is \"config\" when the peak could be reset per configuration,\n"
        "\"process\" when only the process-lifetime peak was readable; with --device cuda it is the\n"
        "device memory allocated by the backend (weights, cache, scratch). kv_cache_bytes is the fp32\n"
        "cache for batch x (prompt-len + gen-len) positions. prompt-len + gen-len must fit the\n"
        "model's context.",
};

/* Parses a list option; a malformed list is a usage error. */
static int list_opt(pb_opt *o, const char *dflt, int max, int **vals, int *n) {
    pb_err err = {0};
    if (pb_speed_parse_list(o->set ? o->str : dflt, max, vals, n, &err))
        return pb_cli_usage_error("bench", "--%s %s", o->name, err.msg);
    return 0;
}

static void add_record(cJSON *arr, const pb_speed_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "batch", r->batch);
    cJSON_AddNumberToObject(o, "prompt_len", r->prompt_len);
    cJSON_AddNumberToObject(o, "gen_len", r->gen_len);
    cJSON_AddNumberToObject(o, "reps", r->reps);
    cJSON_AddNumberToObject(o, "warmup", r->warmup);
    cJSON_AddNumberToObject(o, "prefill_s", r->prefill_s);
    cJSON_AddNumberToObject(o, "prefill_s_std", r->prefill_s_std);
    cJSON_AddNumberToObject(o, "decode_ms_per_token", r->decode_ms_per_token);
    cJSON_AddNumberToObject(o, "decode_ms_per_token_std", r->decode_ms_per_token_std);
    cJSON_AddNumberToObject(o, "total_s", r->total_s);
    cJSON_AddNumberToObject(o, "total_s_std", r->total_s_std);
    cJSON_AddNumberToObject(o, "tokens_per_s", r->tokens_per_s);
    cJSON_AddNumberToObject(o, "tokens_per_s_std", r->tokens_per_s_std);
    if (r->peak_rss_bytes >= 0) cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)r->peak_rss_bytes);
    else cJSON_AddNullToObject(o, "peak_rss_bytes");
    cJSON_AddStringToObject(o, "peak_rss_scope", r->peak_rss_per_config ? "config" : "process");
    cJSON_AddNumberToObject(o, "weights_bytes", (double)r->weights_bytes);
    cJSON_AddNumberToObject(o, "kv_cache_bytes", (double)r->kv_cache_bytes);
    cJSON_AddStringToObject(o, "device", pb_speed_device_name(r->device));
    cJSON_AddNumberToObject(o, "threads", r->threads);
    cJSON_AddItemToArray(arr, o);
}

static void print_header(void) {
    printf("%5s %6s %5s %4s  %-19s %-19s %-19s %-19s %10s %10s %10s\n", "batch", "prompt", "gen", "reps",
           "prefill_s", "decode_ms/token", "total_s", "tokens/s", "peak_MiB", "weight_MiB", "kv_MiB");
}

static void print_row(const pb_speed_result *r) {
    char c[4][40];
    snprintf(c[0], sizeof c[0], "%.4f ± %.4f", r->prefill_s, r->prefill_s_std);
    snprintf(c[1], sizeof c[1], "%.3f ± %.3f", r->decode_ms_per_token, r->decode_ms_per_token_std);
    snprintf(c[2], sizeof c[2], "%.4f ± %.4f", r->total_s, r->total_s_std);
    snprintf(c[3], sizeof c[3], "%.1f ± %.1f", r->tokens_per_s, r->tokens_per_s_std);
    /* "±" is two bytes: pad by hand so the columns line up in a UTF-8 terminal */
    printf("%5d %6d %5d %4d ", r->batch, r->prompt_len, r->gen_len, r->reps);
    for (int i = 0; i < 4; i++) printf(" %-20s", c[i]);
    printf("%10.1f %10.1f %10.2f%s\n", r->peak_rss_bytes / 1048576.0, r->weights_bytes / 1048576.0,
           r->kv_cache_bytes / 1048576.0, r->peak_rss_per_config ? "" : " (process peak)");
}

static int run(int argc, char **argv) {
    pb_opt opts[] = {{"batch", PB_OPT_STR, "LIST", "batch sizes, comma-separated (default 1)", 0, 0, 0, 0},
                     {"prompt-len", PB_OPT_STR, "LIST", "prompt lengths in tokens (default 128)", 0, 0, 0, 0},
                     {"gen-len", PB_OPT_STR, "LIST", "generated tokens per sequence (default 128)", 0, 0, 0, 0},
                     {"reps", PB_OPT_INT, "N", "timed runs per configuration (default 5)", 0, 0, 0, 0},
                     {"warmup", PB_OPT_INT, "N", "untimed runs first (default 1)", 0, 0, 0, 0},
                     {"seed", PB_OPT_INT, "S", "seed of the random prompts (default 0)", 0, 0, 0, 0},
                     {"json", PB_OPT_FLAG, NULL, "print a JSON list of records on stdout", 0, 0, 0, 0},
                     PB_CLI_COMMON_OPTS, PB_CLI_DEVICE_OPTS, {0}};
    const char *pos[1];
    int code;
    if (pb_cli_parse(&pb_cmd_bench, argc, argv, opts, pos, &code)) return code;
    pb_opt *reps = pb_cli_opt(opts, "reps"), *warm = pb_cli_opt(opts, "warmup");
    if (reps->set && (reps->ival < 1 || reps->ival > 1000000)) return pb_cli_usage_error("bench", "--reps must be >= 1");
    if (warm->set && (warm->ival < 0 || warm->ival > 1000000)) return pb_cli_usage_error("bench", "--warmup must be >= 0");

    int *bs = NULL, *ps = NULL, *gs = NULL, nb = 0, np = 0, ng = 0;
    int rc = list_opt(pb_cli_opt(opts, "batch"), "1", 1 << 20, &bs, &nb);
    if (!rc) rc = list_opt(pb_cli_opt(opts, "prompt-len"), "128", 1 << 24, &ps, &np);
    if (!rc) rc = list_opt(pb_cli_opt(opts, "gen-len"), "128", 1 << 24, &gs, &ng);
    if (rc) goto out_lists;

    pb_err err = {0};
    pb_model *m = NULL;
    cJSON *arr = NULL;
    if (pb_cli_load(pos[0], opts, false, &m, NULL, &err)) { rc = pb_cli_fail(&err); goto out_lists; }
    pb_speed_opts so = {.reps = reps->set ? (int)reps->ival : 5, .warmup = warm->set ? (int)warm->ival : 1,
                        .seed = (uint64_t)pb_cli_opt(opts, "seed")->ival, .device = PB_SPEED_CPU};
    /* every configuration is checked before the first one runs: a long sweep must not fail late */
    for (int i = 0; i < nb * np * ng; i++) {
        so.batch = bs[i / (np * ng)], so.prompt_len = ps[i / ng % np], so.gen_len = gs[i % ng];
        if (pb_speed_check(m, &so, &err)) { rc = pb_cli_fail(&err); goto out; }
    }
    bool as_json = pb_cli_opt(opts, "json")->set;
    arr = cJSON_CreateArray();
    if (!arr) { pb_err_set(&err, "out of memory"); rc = pb_cli_fail(&err); goto out; }
    pb_progress prog;
    int64_t total = 0, done = 0;
    for (int i = 0; i < ng; i++) total += ((int64_t)so.warmup + so.reps) * gs[i] * nb * np;
    pb_progress_start(&prog, "bench", "steps", total);
    so.progress = &prog;
    if (!as_json) print_header();
    for (int i = 0; i < nb * np * ng; i++) {
        so.batch = bs[i / (np * ng)], so.prompt_len = ps[i / ng % np], so.gen_len = gs[i % ng];
        so.progress_base = done;
        done += ((int64_t)so.warmup + so.reps) * so.gen_len;
        pb_speed_result r;
        if (pb_speed_run(m, &so, &r, &err)) {
            pb_err_prefix(&err, "%s: batch %d, prompt-len %d, gen-len %d: ", pos[0], so.batch, so.prompt_len, so.gen_len);
            rc = pb_cli_fail(&err);
            goto out;
        }
        add_record(arr, &r);
        if (!as_json) { print_row(&r); fflush(stdout); }
    }
    pb_progress_end(&prog);
    if (as_json) {
        char *s = cJSON_PrintUnformatted(arr);
        if (!s) { pb_err_set(&err, "out of memory"); rc = pb_cli_fail(&err); goto out; }
        puts(s);
        free(s);
    }
out:
    cJSON_Delete(arr);
    pb_model_free(m);
out_lists:
    free(bs);
    free(ps);
    free(gs);
    return rc;
}
