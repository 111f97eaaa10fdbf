/* cmd_importance.c — `prunebench importance MODEL --criterion C --granularity G`: the scores a
 * pruning criterion gives every block, module, head unit or channel, without pruning. */
#include "cli.h"
#include "prune.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

static int run(int argc, char **argv);

const pb_cmd pb_cmd_importance = {
    .name = "importance", .n_positional = 1, .run = run,
    .usage = "MODEL --criterion magnitude|taylor|ppl|l1|l2|param_mix|vectorize|wanda|wifv|random "
             "--granularity block|attn|mlp|module|head|channel [--calib NAME|FILE --calib-samples 10 "
             "--calib-seq-len 128 --calib-sampling random|contiguous] [--seed S] [--json]",
    .summary = "importance scores of blocks, modules, heads or channels under a pruning criterion",
    .details =
        "Lower scores are pruned first. block/attn/mlp: one score per layer (Shortened LLaMA's criteria:\n"
        "magnitude = sum |w| over the 7 projections and 2 norms, taylor = sum |w dL/dw|, ppl = calibration\n"
        "perplexity with that block removed); module = attn and mlp scores side by side. head/channel: one\n"
        "list per layer (head units are KV groups): l1/l2 norms, LLM-Pruner's Taylor estimators\n"
        "(taylor = param_first, param_second, param_mix, vectorize), wanda (Wanda-sp), wifv/ifv/wifn (FLAP).\n"
        "JSON: {\"criterion\", \"granularity\", \"method\", \"scores\": [...]} with null where a layer lacks\n"
        "the module.",
};

static cJSON *scores_json(const pb_scores *s) {
    cJSON *a = cJSON_CreateArray();
    for (int l = 0; l < s->n_layers; l++) {
        if (s->kind == PB_S_HEAD || s->kind == PB_S_CHANNEL) {
            cJSON *row = cJSON_CreateArray();
            for (int i = 0; i < s->count[l]; i++) cJSON_AddItemToArray(row, cJSON_CreateNumber(s->score[l][i]));
            cJSON_AddItemToArray(a, row);
        } else {
            double v = s->score[l][0];
            cJSON_AddItemToArray(a, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
        }
    }
    return a;
}

static void print_text(const char *title, const pb_scores *s) {
    printf("%s\n", title);
    for (int l = 0; l < s->n_layers; l++) {
        printf("  layer %3d:", l);
        int n = s->count[l] < 8 ? s->count[l] : 8;
        for (int i = 0; i < n; i++) printf(" %.6g", s->score[l][i]);
        if (s->count[l] > n) printf(" ... (%d)", s->count[l]);
        printf("\n");
    }
}

static int run(int argc, char **argv) {
    pb_opt opts[] = {PB_CLI_PRUNE_OPTS, {"json", PB_OPT_FLAG, NULL, "print JSON on stdout", 0, 0, 0, 0},
                     PB_CLI_COMMON_OPTS, {0}};
    const char *pos[1];
    int code;
    if (pb_cli_parse(&pb_cmd_importance, argc, argv, opts, pos, &code)) return code;
    pb_prune_opts o;
    pb_prune_opts_default(&o);
    pb_err err = {0};
    if (!pb_cli_opt(opts, "criterion")->set || !pb_cli_opt(opts, "granularity")->set)
        return pb_cli_usage_error("importance", "--criterion and --granularity are required");
    if (pb_cli_prune_opts(opts, &o, &err) != 0) return pb_cli_fail(&err);
    pb_model *m = NULL;
    pb_tokenizer *tok = NULL;
    pb_calib c = {0};
    bool have_calib = false;
    pb_scores s[2] = {{0}, {0}};
    int rc = pb_cli_load(pos[0], opts, false, &m, &tok, &err);
    if (rc == 0 && pb_cli_opt(opts, "calib")->set && !tok)
        rc = pb_err_set(&err, "%s: model carries no tokenizer for the calibration text; give --tokenizer FILE", pos[0]);
    if (rc == 0) rc = pb_cli_calib(opts, tok, &c, &have_calib, &err);
    if (rc == 0) {
        o.calib = have_calib ? &c : NULL;
        bool joint = o.module_joint;
        o.module_joint = false;
        o.granularity = joint ? PB_S_ATTN : o.granularity;
        rc = pb_importance(m, &o, &s[0], &err);
        if (rc == 0 && joint) {
            o.granularity = PB_S_MLP;
            rc = pb_importance(m, &o, &s[1], &err);
        }
        if (rc == 0) {
            const char *crit = o.criterion ? o.criterion : o.metric ? o.metric : pb_cli_opt(opts, "criterion")->str;
            const char *gran = pb_cli_opt(opts, "granularity")->str;
            if (pb_cli_opt(opts, "json")->set) {
                cJSON *j = cJSON_CreateObject();
                cJSON_AddStringToObject(j, "criterion", crit);
                cJSON_AddStringToObject(j, "granularity", gran);
                cJSON_AddStringToObject(j, "method", o.method);
                if (joint) {
                    cJSON *both = cJSON_AddObjectToObject(j, "scores");
                    cJSON_AddItemToObject(both, "attn", scores_json(&s[0]));
                    cJSON_AddItemToObject(both, "mlp", scores_json(&s[1]));
                } else {
                    cJSON_AddItemToObject(j, "scores", scores_json(&s[0]));
                }
                if (have_calib) cJSON_AddStringToObject(j, "calibration", c.source);
                char *t = cJSON_PrintUnformatted(j);
                if (t) puts(t);
                free(t);
                cJSON_Delete(j);
            } else {
                printf("criterion %s, granularity %s (method %s)%s%s\n", crit, gran, o.method,
                       have_calib ? ", calibration " : "", have_calib ? c.source : "");
                print_text(joint ? "attention modules:" : "scores (lower = pruned first):", &s[0]);
                if (joint) print_text("MLP modules:", &s[1]);
            }
        }
    }
    pb_scores_free(&s[0]);
    pb_scores_free(&s[1]);
    pb_calib_free(&c);
    pb_tok_free(tok);
    pb_model_free(m);
    return rc == 0 ? PB_EXIT_OK : pb_cli_fail(&err);
}
