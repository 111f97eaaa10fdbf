/* cmd_ppl.c — `prunebench ppl MODEL --dataset D`: perplexity with the papers' protocols.
 *
 * The dataset is read and checked before the model is loaded, so that a missing or corrupt
 * data file fails in a second rather than after loading a 7B model. */
#include "cli.h"
#include "pb_data.h"
#include "ppl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const pb_cmd pb_cmd_ppl = {
    .name = "ppl", .n_positional = 1, .run = run,
    .usage = "MODEL --dataset wikitext2|ptb|c4|tinystories|FILE [--split S] [--seq-len N] [--stride N] "
             "[--bos-per-window] [--max-windows N] [--batch N] [--data-dir DIR] [--json]",
    .summary = "perplexity on WikiText-2, PTB, C4, TinyStories or a text file (LLM-Pruner / GPTQ protocols)",
    .details =
        "Default protocol (LLM-Pruner, Shortened LLaMA, FLAP): WikiText-2 test / PTB validation, rows joined\n"
        "with \"\\n\\n\", tokenized once with one BOS at the very start, non-overlapping windows of --seq-len 128\n"
        "(tail dropped), each window scored on its positions 1..N-1; PPL = exp(mean NLL over predicted tokens).\n"
        "GPTQ / SparseGPT / Wanda: --seq-len 2048 (or the model's context). C4 (GPTQ c4-new): \" \".join of the\n"
        "first 1100 validation documents, cut to 256 windows. --bos-per-window: Shortened LLaMA's ppl_bos (text\n"
        "without BOS, each window run as [BOS] + seq-len tokens, all seq-len tokens predicted).\n"
        "--stride S < seq-len: sliding windows (Hugging Face's fixed-length perplexity): a window every S tokens,\n"
        "each scoring only the tokens not scored before, with the rest of the window as context.\n"
        "FILE: .jsonl/.json = one JSON object per line with a \"text\" field; anything else = plain text.\n"
        "Data folder: --data-dir, else $PRUNEBENCH_DATA, else ../shared/data or ./data.\n"
        "tokens = predicted tokens; nll_stderr = sample std of the per-token NLL / sqrt(tokens).",
};

/* "\n" and "\t" written as two characters on a command line become the characters. */
static char *unescape(const char *s) {
    char *o = malloc(strlen(s) + 1), *p = o;
    if (!o) return NULL;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1]) {
            s++;
            *p++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s == 'r' ? '\r' : *s;
        } else {
            *p++ = *s;
        }
    }
    *p = 0;
    return o;
}

static void print_result(const pb_text_set *ts, const pb_ppl_opts *po, const pb_ppl_result *r, bool json) {
    bool sliding = po->stride > 0 && po->stride < po->seq_len;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dataset", ts->name);
        if (ts->split) cJSON_AddStringToObject(o, "split", ts->split);
        else cJSON_AddNullToObject(o, "split");
        cJSON_AddNumberToObject(o, "seq_len", po->seq_len);
        cJSON_AddNumberToObject(o, "stride", sliding ? po->stride : po->seq_len);
        cJSON_AddBoolToObject(o, "bos_per_window", po->bos_per_window);
        cJSON_AddNumberToObject(o, "windows", (double)r->windows);
        cJSON_AddNumberToObject(o, "tokens", (double)r->tokens);
        cJSON_AddNumberToObject(o, "ppl", r->ppl);
        cJSON_AddNumberToObject(o, "nll_mean", r->nll_mean);
        if (isfinite(r->nll_stderr)) cJSON_AddNumberToObject(o, "nll_stderr", r->nll_stderr);
        else cJSON_AddNullToObject(o, "nll_stderr");
        cJSON_AddNumberToObject(o, "seconds", r->seconds);
        char *s = cJSON_PrintUnformatted(o);
        if (s) puts(s);
        free(s);
        cJSON_Delete(o);
        return;
    }
    printf("dataset     %s%s%s%s\n", ts->name, ts->split ? " (" : "", ts->split ? ts->split : "", ts->split ? ")" : "");
    if (sliding)
        printf("windows     %lld of %d tokens, stride %d (sliding)\n", (long long)r->windows, po->seq_len, po->stride);
    else printf("windows     %lld of %d tokens%s\n", (long long)r->windows, po->seq_len,
                po->bos_per_window ? " + BOS each" : ", non-overlapping");
    printf("tokens      %lld predicted\nnll_mean    %.6f\nnll_stderr  %.6f\nppl         %.4f\nseconds     %.2f\n",
           (long long)r->tokens, r->nll_mean, r->nll_stderr, r->ppl, r->seconds);
}

static int run(int argc, char **argv) {
    pb_opt opts[] = {
        {"dataset", PB_OPT_STR, "NAME|FILE", "wikitext2, ptb, c4, tinystories, or a .txt / .jsonl file", 0, 0, 0, 0},
        {"split", PB_OPT_STR, "S", "split (wikitext2: test, ptb: valid, c4: validation, tinystories: valid)", 0, 0, 0, 0},
        {"seq-len", PB_OPT_INT, "N", "window length in tokens (default 128; GPTQ/Wanda: 2048)", 0, 0, 0, 0},
        {"stride", PB_OPT_INT, "N", "sliding windows every N tokens (N < seq-len)", 0, 0, 0, 0},
        {"bos-per-window", PB_OPT_FLAG, NULL, "BOS before every window (Shortened LLaMA ppl_bos)", 0, 0, 0, 0},
        {"max-windows", PB_OPT_INT, "N", "evaluate only the first N windows", 0, 0, 0, 0},
        {"batch", PB_OPT_INT, "N", "windows per forward pass (default: automatic)", 0, 0, 0, 0},
        {"join", PB_OPT_STR, "SEP", "row separator, e.g. ' ' or '\\n\\n' (default: the dataset's)", 0, 0, 0, 0},
        {"data-dir", PB_OPT_STR, "DIR", "data folder (default: $PRUNEBENCH_DATA, ../shared/data, ./data)", 0, 0, 0, 0},
        {"no-verify", PB_OPT_FLAG, NULL, "skip the sha256 check of registered files (size is still checked)", 0, 0, 0, 0},
        {"json", PB_OPT_FLAG, NULL, "print JSON on stdout", 0, 0, 0, 0},
        PB_CLI_COMMON_OPTS, PB_CLI_DEVICE_OPTS, {0}};
    const char *pos[1];
    int code;
    if (pb_cli_parse(&pb_cmd_ppl, argc, argv, opts, pos, &code)) return code;
    pb_opt *ds = pb_cli_opt(opts, "dataset"), *sl = pb_cli_opt(opts, "seq-len"), *sd = pb_cli_opt(opts, "stride"),
           *mw = pb_cli_opt(opts, "max-windows"), *bt = pb_cli_opt(opts, "batch"), *jn = pb_cli_opt(opts, "join");
    if (!ds->set) return pb_cli_usage_error("ppl", "--dataset is required");
    pb_ppl_opts po = {.seq_len = sl->set ? (int)sl->ival : 128, .bos_per_window = pb_cli_opt(opts, "bos-per-window")->set};
    if (sl->set && (sl->ival < 2 || sl->ival > (1 << 24))) return pb_cli_usage_error("ppl", "--seq-len must be at least 2");
    if (sd->set && (sd->ival < 1 || sd->ival > po.seq_len))
        return pb_cli_usage_error("ppl", "--stride must be between 1 and --seq-len (%d)", po.seq_len);
    if (sd->set) po.stride = (int)sd->ival;
    if (po.bos_per_window && po.stride > 0 && po.stride < po.seq_len)
        return pb_cli_usage_error("ppl", "--bos-per-window cannot be combined with a sliding --stride");
    if (mw->set && mw->ival < 1) return pb_cli_usage_error("ppl", "--max-windows must be at least 1");
    if (bt->set && (bt->ival < 1 || bt->ival > 4096))
        return pb_cli_usage_error("ppl", "--batch must be between 1 and 4096");
    po.max_windows = mw->set ? mw->ival : 0;
    po.batch = bt->set ? (int)bt->ival : 0;

    pb_err err = {0};
    pb_text_set ts = {0};
    pb_model *m = NULL;
    pb_tokenizer *tok = NULL;
    pb_ppl_result r;
    char label[160];
    int rc = 0;
    char *join = jn->set ? unescape(jn->str) : NULL;
    if (jn->set && !join) { pb_err_set(&err, "out of memory"); rc = pb_cli_fail(&err); goto out; }
    if (pb_data_text(pb_cli_opt(opts, "data-dir")->str, ds->str, pb_cli_opt(opts, "split")->str, join,
                     !pb_cli_opt(opts, "no-verify")->set, &ts, &err) ||
        pb_cli_load(pos[0], opts, true, &m, &tok, &err)) {
        rc = pb_cli_fail(&err);
        goto out;
    }
    int need = po.seq_len + (po.bos_per_window ? 1 : 0);
    if (m->cfg.max_seq_len > 0 && need > m->cfg.max_seq_len) {
        pb_err_set(&err, "%s: --seq-len %d%s is longer than the model's context of %d tokens", pos[0], po.seq_len,
                   po.bos_per_window ? " (+1 BOS per window)" : "", m->cfg.max_seq_len);
        rc = pb_cli_fail(&err);
        goto out;
    }
    po.truncate_windows = ts.truncate_windows;
    snprintf(label, sizeof label, "ppl %s", ts.name);
    po.label = label;
    if (pb_ppl_text(m, tok, ts.text, ts.len, &po, &r, &err)) {
        pb_err_prefix(&err, "%s: ", ts.path);
        rc = pb_cli_fail(&err);
        goto out;
    }
    print_result(&ts, &po, &r, pb_cli_opt(opts, "json")->set);
out:
    free(join);
    pb_text_set_free(&ts);
    pb_tok_free(tok);
    pb_model_free(m);
    return rc;
}
