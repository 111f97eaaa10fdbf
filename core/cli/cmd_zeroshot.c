/* cmd_zeroshot.c — `prunebench zeroshot MODEL --tasks ...`: zero-shot accuracy on the
 * papers' seven tasks with lm-evaluation-harness semantics (metrics/zeroshot.h), one table
 * row (or JSON object) per task plus the papers' headline mix and its mean. */
#include "cli.h"
#include "tasks.h"
#include "zeroshot.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const pb_cmd pb_cmd_zeroshot = {
    .name = "zeroshot",
    .usage = "MODEL [--tasks LIST] [--limit N] [--encode whole|separate] [--bos] [--batch N] [--data-dir DIR] [--json]",
    .n_positional = 1,
    .run = run,
    .summary = "zero-shot accuracy (BoolQ, PIQA, HellaSwag, WinoGrande, ARC-e/c, OBQA) as lm-eval computes it",
    .details =
        "Tasks (default: all): boolq, piqa, hellaswag, winogrande, arc_easy, arc_challenge, openbookqa, read\n"
        "from their original files in the data folder (--data-dir, PRUNEBENCH_DATA). 0-shot, lm-eval's\n"
        "doc_to_text, choices and target delimiter \" \"; loglikelihood = sum of log-softmax over the\n"
        "continuation tokens. acc = argmax == gold; acc_norm divides by the choice's length in characters\n"
        "(not for boolq, winogrande); stderr = sqrt(var(ddof=1)/n).\n"
        "--encode whole (default): lm-eval >= 0.4 (and shortened-llm): the whole string is encoded and split\n"
        "after the context's tokens. --encode separate: lm-eval v0.3 (LLM-Pruner's numbers): context and\n"
        "continuation encoded apart. No BOS unless --bos.\n"
        "Headline: acc for boolq, piqa, winogrande, arc_easy; acc_norm for hellaswag, arc_challenge,\n"
        "openbookqa (the pruning papers' convention), and their mean.\n"
        "The bundled HellaSwag file holds 1000 of the 10042 validation items: its score is not the full\n"
        "HellaSwag number. --limit takes the first N documents of each file (BoolQ's file order differs\n"
        "from SuperGLUE's).\n"
        "A question's choices share the forward pass of their common context (KV cache copied per\n"
        "choice) and questions are batched where a cost model says it pays. --no-share runs every\n"
        "request's whole input (no sharing); with --batch 1 each choice is scored alone (the baseline\n"
        "for benchmarks). The results agree to float rounding whatever the schedule.\n"
        "--samples writes one JSON line per item: task, doc, line, gold, pred, pred_norm, ll, greedy,\n"
        "choice_len, ctx_ids, cont_ids. --docs/--labels read one task from files of the original format\n"
        "(no registry checksum).",
};

static int split_tasks(const char *list, const char **names, int *n, pb_err *err) {
    static char buf[512];
    size_t len = strlen(list);
    if (len >= sizeof buf) return pb_err_set(err, "--tasks: list too long");
    memcpy(buf, list, len + 1);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        if (!pb_task_known(tok)) return pb_err_set(err, "unknown task '%s' (known: %s)", tok, pb_task_names_joined());
        for (int i = 0; i < *n; i++)
            if (!strcmp(names[i], tok)) return pb_err_set(err, "task '%s' is listed twice", tok);
        names[(*n)++] = tok;
    }
    if (*n == 0) return pb_err_set(err, "--tasks: no task named (known: %s)", pb_task_names_joined());
    return 0;
}

static cJSON *num_or_null(double x) { return isnan(x) ? cJSON_CreateNull() : cJSON_CreateNumber(x); }

static cJSON *ids_json(const int32_t *ids, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

/* One JSON line per item: what a reference implementation needs to compare item by item. */
static int write_samples(FILE *f, const pb_zs_result *r, const pb_task *t, pb_err *err) {
    for (int i = 0; i < r->n; i++) {
        const pb_zs_item *it = &r->items[i];
        cJSON *o = cJSON_CreateObject(), *ll = cJSON_CreateArray(), *gr = cJSON_CreateArray();
        cJSON *cl = cJSON_CreateArray(), *ci = cJSON_CreateArray(), *ki = cJSON_CreateArray();
        if (!o || !ll || !gr || !cl || !ci || !ki) {
            cJSON_Delete(o), cJSON_Delete(ll), cJSON_Delete(gr), cJSON_Delete(cl), cJSON_Delete(ci), cJSON_Delete(ki);
            return pb_err_set(err, "out of memory");
        }
        cJSON_AddStringToObject(o, "task", r->task);
        cJSON_AddNumberToObject(o, "doc", i);
        cJSON_AddNumberToObject(o, "line", it->line);
        cJSON_AddNumberToObject(o, "gold", it->gold);
        cJSON_AddNumberToObject(o, "pred", it->pred);
        cJSON_AddItemToObject(o, "pred_norm", it->pred_norm < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(it->pred_norm));
        for (int c = 0; c < it->n_choices; c++) {
            cJSON_AddItemToArray(ll, cJSON_CreateNumber(it->ll[c]));
            cJSON_AddItemToArray(gr, cJSON_CreateBool(it->greedy[c]));
            cJSON_AddItemToArray(cl, cJSON_CreateNumber(t->docs[i].choice_len[c]));
            cJSON_AddItemToArray(ci, ids_json(it->ctx_ids[c], it->n_ctx[c]));
            cJSON_AddItemToArray(ki, ids_json(it->cont_ids[c], it->n_cont[c]));
        }
        cJSON_AddItemToObject(o, "ll", ll);
        cJSON_AddItemToObject(o, "greedy", gr);
        cJSON_AddItemToObject(o, "choice_len", cl);
        cJSON_AddItemToObject(o, "ctx_ids", ci);
        cJSON_AddItemToObject(o, "cont_ids", ki);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!s) return pb_err_set(err, "out of memory");
        int bad = fprintf(f, "%s\n", s) < 0;
        free(s);
        if (bad) return pb_err_set(err, "cannot write the samples file");
    }
    return 0;
}

static void print_json(const char *model, const pb_zs_opts *o, const pb_zs_result *res, int n) {
    cJSON *root = cJSON_CreateObject(), *tasks = cJSON_CreateArray(), *head = cJSON_CreateArray();
    cJSON_AddStringToObject(root, "model", model);
    cJSON_AddStringToObject(root, "encode", o->encode == PB_ZS_WHOLE ? "whole" : "separate");
    cJSON_AddBoolToObject(root, "bos", o->bos);
    cJSON_AddItemToObject(root, "limit", o->limit > 0 ? cJSON_CreateNumber(o->limit) : cJSON_CreateNull());
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const pb_zs_result *r = &res[i];
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "task", r->task);
        cJSON_AddNumberToObject(t, "n", r->n);
        cJSON_AddItemToObject(t, "acc", num_or_null(r->acc));
        cJSON_AddItemToObject(t, "acc_stderr", num_or_null(r->acc_stderr));
        cJSON_AddItemToObject(t, "acc_norm", num_or_null(r->acc_norm));
        cJSON_AddItemToObject(t, "acc_norm_stderr", num_or_null(r->acc_norm_stderr));
        cJSON_AddNumberToObject(t, "seconds", r->seconds);
        cJSON_AddNumberToObject(t, "forward_passes", (double)r->stats.passes);
        cJSON_AddNumberToObject(t, "forward_positions", (double)r->stats.tokens);
        cJSON_AddItemToArray(tasks, t);
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "task", r->task);
        cJSON_AddStringToObject(h, "metric", pb_zs_headline_metric(r));
        cJSON_AddItemToObject(h, "value", num_or_null(pb_zs_headline(r)));
        cJSON_AddItemToArray(head, h);
        sum += pb_zs_headline(r);
    }
    cJSON_AddItemToObject(root, "tasks", tasks);
    cJSON_AddItemToObject(root, "headline", head);
    cJSON_AddItemToObject(root, "headline_mean", num_or_null(sum / n));
    char *s = cJSON_PrintUnformatted(root);
    if (s) puts(s);
    free(s);
    cJSON_Delete(root);
}

static void print_table(const pb_zs_result *res, int n) {
    printf("%-14s %6s %8s %8s %9s %8s   %-9s %7s\n", "task", "n", "acc", "stderr", "acc_norm", "stderr", "headline", "");
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const pb_zs_result *r = &res[i];
        printf("%-14s %6d %8.4f %8.4f", r->task, r->n, r->acc, r->acc_stderr);
        if (r->has_norm) printf(" %9.4f %8.4f", r->acc_norm, r->acc_norm_stderr);
        else printf(" %9s %8s", "-", "-");
        printf("   %-9s %7.2f\n", pb_zs_headline_metric(r), 100 * pb_zs_headline(r));
        sum += pb_zs_headline(r);
    }
    printf("%-14s %6s %8s %8s %9s %8s   %-9s %7.2f\n", "mean", "", "", "", "", "", "headline", 100 * sum / n);
}

static int run(int argc, char **argv) {
    pb_opt opts[] = {
        {"tasks", PB_OPT_STR, "LIST", "comma-separated task names (default: all seven)", 0, 0, 0, 0},
        {"limit", PB_OPT_INT, "N", "only the first N documents of each task", 0, 0, 0, 0},
        {"encode", PB_OPT_STR, "MODE", "whole (lm-eval >= 0.4, default) or separate (v0.3)", 0, 0, 0, 0},
        {"bos", PB_OPT_FLAG, NULL, "put BOS before every context", 0, 0, 0, 0},
        {"batch", PB_OPT_INT, "N", "sequences per forward pass (default 32)", 0, 0, 0, 0},
        {"no-share", PB_OPT_FLAG, NULL, "no shared context: every request runs its whole input (benchmarks)", 0, 0, 0, 0},
        {"pass-overhead", PB_OPT_FLOAT, "X", "scheduler: cost of a forward pass in positions (default: from the "
                                             "model size; tests, tuning)", 0, 0, 0, 0},
        {"data-dir", PB_OPT_STR, "DIR", "data folder (default: PRUNEBENCH_DATA, ../shared/data, ./data)", 0, 0, 0, 0},
        {"docs", PB_OPT_STR, "FILE", "read the (single) task from this file instead of the registry", 0, 0, 0, 0},
        {"labels", PB_OPT_STR, "FILE", "labels file for --docs (piqa, winogrande)", 0, 0, 0, 0},
        {"samples", PB_OPT_STR, "FILE", "write per-item results (JSON lines) to FILE", 0, 0, 0, 0},
        {"json", PB_OPT_FLAG, NULL, "print JSON on stdout", 0, 0, 0, 0},
        PB_CLI_COMMON_OPTS, PB_CLI_DEVICE_OPTS, {0}};
    const char *pos[1];
    int code;
    if (pb_cli_parse(&pb_cmd_zeroshot, argc, argv, opts, pos, &code)) return code;
    pb_zs_opts zo = {.encode = PB_ZS_WHOLE, .sched = {.batch = 32}, .progress = true};
    const char *enc = pb_cli_opt(opts, "encode")->str;
    if (enc && !strcmp(enc, "separate")) zo.encode = PB_ZS_SEPARATE;
    else if (enc && strcmp(enc, "whole")) return pb_cli_usage_error("zeroshot", "--encode must be whole or separate");
    pb_opt *lim = pb_cli_opt(opts, "limit"), *bat = pb_cli_opt(opts, "batch");
    if (lim->set && lim->ival < 1) return pb_cli_usage_error("zeroshot", "--limit must be at least 1");
    if (bat->set && (bat->ival < 1 || bat->ival > 65536))
        return pb_cli_usage_error("zeroshot", "--batch must be between 1 and 65536");
    zo.limit = lim->set ? (int)(lim->ival > 1000000000 ? 1000000000 : lim->ival) : 0;
    if (bat->set) zo.sched.batch = (int)bat->ival;
    zo.bos = pb_cli_opt(opts, "bos")->set;
    zo.sched.no_share = pb_cli_opt(opts, "no-share")->set;
    pb_opt *po = pb_cli_opt(opts, "pass-overhead");
    if (po->set && !(po->fval >= 0 && po->fval <= 1e9))
        return pb_cli_usage_error("zeroshot", "--pass-overhead must be between 0 and 1e9");
    if (po->set) zo.sched.pass_tokens = po->fval > 0 ? po->fval : -1;
    const char *docs = pb_cli_opt(opts, "docs")->str, *labels = pb_cli_opt(opts, "labels")->str;
    const char *samples = pb_cli_opt(opts, "samples")->str;
    if (labels && !docs) return pb_cli_usage_error("zeroshot", "--labels needs --docs");

    pb_err err = {0};
    const char *names[16];
    int n = 0, rc = PB_EXIT_OK;
    pb_task *tasks[16] = {0};
    pb_zs_result res[16];
    int n_res = 0;
    pb_model *m = NULL;
    pb_tokenizer *tok = NULL;
    FILE *sf = NULL;
    const char *list = pb_cli_opt(opts, "tasks")->str;
    if (split_tasks(list ? list : "boolq,piqa,hellaswag,winogrande,arc_easy,arc_challenge,openbookqa", names, &n, &err))
        return pb_cli_fail(&err);
    if (docs && n != 1) return pb_cli_usage_error("zeroshot", "--docs reads one task: give exactly one in --tasks");
    /* every data file is read before the model: a bad file fails fast */
    for (int i = 0; i < n; i++) {
        int r = docs ? pb_task_load(names[i], docs, labels, &tasks[i], &err)
                     : pb_task_open(names[i], pb_cli_opt(opts, "data-dir")->str, &tasks[i], &err);
        if (r) { rc = pb_cli_fail(&err); goto out; }
    }
    if (pb_cli_load(pos[0], opts, true, &m, &tok, &err)) { rc = pb_cli_fail(&err); goto out; }
    if (samples && !(sf = fopen(samples, "w"))) {
        pb_err_set(&err, "%s: cannot create the samples file", samples);
        rc = pb_cli_fail(&err);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        int r = pb_zs_run(m, tok, tasks[i], &zo, &res[n_res++], &err);
        if (!r && sf) r = write_samples(sf, &res[n_res - 1], tasks[i], &err);
        if (r) { rc = pb_cli_fail(&err); goto out; }
    }
    if (sf) {
        int bad = fclose(sf) != 0;
        sf = NULL;
        if (bad) { pb_err_set(&err, "%s: cannot write the samples file", samples); rc = pb_cli_fail(&err); goto out; }
    }
    if (pb_cli_opt(opts, "json")->set) print_json(pos[0], &zo, res, n_res);
    else print_table(res, n_res);
out:
    if (sf) fclose(sf);
    for (int i = 0; i < n_res; i++) pb_zs_result_free(&res[i]);
    for (int i = 0; i < n; i++) pb_task_free(tasks[i]);
    pb_tok_free(tok);
    pb_model_free(m);
    return rc;
}
