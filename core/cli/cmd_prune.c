/* cmd_prune.c — `prunebench prune MODEL --method M --ratio R --out DIR`: structured pruning with
 * real slicing, writing a loadable (smaller) Hugging Face folder. */
#include "cli.h"
#include "prune.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const pb_cmd pb_cmd_prune = {
    .name = "prune", .n_positional = 1, .run = run,
    .usage = "MODEL --method depth|llm-pruner|wanda-sp|flap|magnitude|random [--criterion C] [--granularity G] "
             "(--ratio R | --num-blocks K | --group-ratio r | --p p) [method options] [--calib NAME|FILE ...] "
             "--out DIR [--json] [--dry-run] [--mask]",
    .summary = "structured pruning (depth: blocks/modules; width: heads/channels) into a smaller model",
    .details =
        "--ratio is a fraction of ALL parameters (embeddings included); each method's own setting is there too:\n"
        "--num-blocks (depth), --group-ratio (LLM-Pruner's per-layer ratio, e.g. 0.25 with --layers 4:30),\n"
        "--p (FLAP / Wanda-sp: fraction of attention+MLP weights).\n"
        "depth (Shortened LLaMA): --criterion magnitude|taylor|ppl, --granularity block|attn|mlp|module,\n"
        "  --protect-first 4 --protect-last 2 for the \"+\" variants, --iterative to re-score after each removal.\n"
        "llm-pruner: --criterion param_first|param_second|param_mix|vectorize, --aggregation sum|mean|max|prod|first.\n"
        "flap: --structure al-am|ul-um, --metric wifv|ifv|wifn, bias compensation unless --no-bias-compensation.\n"
        "wanda-sp: sequential |W|*||X|| per channel. magnitude: --criterion l1|l2. random: --seed.\n"
        "Taylor, PPL, LLM-Pruner, Wanda-sp and FLAP need --calib (a dataset name or a text file).\n"
        "--mask zeroes the structures instead of slicing (same shapes; for checks). --dry-run on a folder with\n"
        "only a config.json plans the counts (per-layer ratios and block counts) without weights.\n"
        "JSON: {method, removed: [{layer, kind, index}], params_before, params_after, params_before_no_embed,\n"
        "params_after_no_embed, layers: [{n_heads, n_kv_heads, ffn_dim, attn, mlp}]}. Layers are numbered as\n"
        "in the input model.",
};

static cJSON *result_json(const pb_model *m, const pb_prune_opts *o, const pb_prune_result *r, bool dry) {
    cJSON *j = cJSON_CreateObject(), *rem = cJSON_CreateArray(), *ls = cJSON_CreateArray();
    cJSON_AddStringToObject(j, "method", o->method);
    if (o->criterion) cJSON_AddStringToObject(j, "criterion", o->criterion);
    for (int i = 0; i < r->n_removed; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "layer", r->removed[i].layer);
        cJSON_AddStringToObject(x, "kind", pb_struct_kind_names[r->removed[i].kind]);
        cJSON_AddNumberToObject(x, "index", r->removed[i].index);
        cJSON_AddItemToArray(rem, x);
    }
    cJSON_AddItemToObject(j, "removed", rem);
    cJSON_AddNumberToObject(j, "params_before", (double)r->params_before);
    cJSON_AddNumberToObject(j, "params_after", (double)r->params_after);
    cJSON_AddNumberToObject(j, "params_before_no_embed", (double)r->params_before_no_embed);
    cJSON_AddNumberToObject(j, "params_after_no_embed", (double)r->params_after_no_embed);
    cJSON_AddNumberToObject(j, "removed_fraction",
                            r->params_before ? 1.0 - (double)r->params_after / (double)r->params_before : 0.0);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "n_heads", L->has_attn ? L->n_heads : 0);
        cJSON_AddNumberToObject(x, "n_kv_heads", L->has_attn ? L->n_kv_heads : 0);
        cJSON_AddNumberToObject(x, "ffn_dim", L->has_mlp ? L->ffn_dim : 0);
        cJSON_AddBoolToObject(x, "attn", L->has_attn);
        cJSON_AddBoolToObject(x, "mlp", L->has_mlp);
        cJSON_AddItemToArray(ls, x);
    }
    cJSON_AddItemToObject(j, "layers", ls);
    if (dry) cJSON_AddBoolToObject(j, "dry_run", 1);
    return j;
}

static void print_text(const pb_model *m, const pb_prune_opts *o, const pb_prune_result *r, const char *out) {
    printf("method        %s%s%s\n", o->method, o->criterion ? " / " : "", o->criterion ? o->criterion : "");
    printf("removed       %d structure(s)\n", r->n_removed);
    printf("params        %lld -> %lld (%.2f%% removed)\n", (long long)r->params_before, (long long)r->params_after,
           r->params_before ? 100.0 * (1.0 - (double)r->params_after / (double)r->params_before) : 0.0);
    printf("w/o embedding %lld -> %lld\n", (long long)r->params_before_no_embed, (long long)r->params_after_no_embed);
    printf("layers        %d:", m->cfg.n_layers);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        printf(" %dh/%df", L->has_attn ? L->n_kv_heads : 0, L->has_mlp ? L->ffn_dim : 0);
    }
    printf("\n");
    if (out) printf("written to    %s\n", out);
}

static bool is_config(const char *path) {
    size_t n = strlen(path);
    return pb_is_dir(path) || (n >= 5 && strcmp(path + n - 5, ".json") == 0);
}

static int run(int argc, char **argv) {
    pb_opt opts[] = {PB_CLI_PRUNE_OPTS,
                     {"out", PB_OPT_STR, "DIR", "where the pruned model is written (a Hugging Face folder)", 0, 0, 0, 0},
                     {"dry-run", PB_OPT_FLAG, NULL, "plan from the config alone; write nothing", 0, 0, 0, 0},
                     {"mask", PB_OPT_FLAG, NULL, "zero the structures instead of removing them", 0, 0, 0, 0},
                     {"save-dtype", PB_OPT_STR, "T", "f32 | f16 | bf16 (default f32)", 0, 0, 0, 0},
                     {"json", PB_OPT_FLAG, NULL, "print JSON on stdout", 0, 0, 0, 0},
                     PB_CLI_COMMON_OPTS, {0}};
    const char *pos[1];
    int code;
    if (pb_cli_parse(&pb_cmd_prune, argc, argv, opts, pos, &code)) return code;
    pb_prune_opts o;
    pb_prune_opts_default(&o);
    pb_err err = {0};
    bool dry = pb_cli_opt(opts, "dry-run")->set, json = pb_cli_opt(opts, "json")->set;
    const char *out = pb_cli_opt(opts, "out")->str;
    if (!pb_cli_opt(opts, "method")->set) return pb_cli_usage_error("prune", "--method is required");
    if (!out && !dry) return pb_cli_usage_error("prune", "--out DIR is required (or --dry-run)");
    if (pb_cli_prune_opts(opts, &o, &err) != 0) return pb_cli_fail(&err);
    o.mask_only = pb_cli_opt(opts, "mask")->set;
    pb_save_opts so = {PB_DTYPE_F32, NULL, 0};
    pb_opt *sd = pb_cli_opt(opts, "save-dtype");
    if (sd->set) {
        if (!strcmp(sd->str, "f16")) so.dtype = PB_DTYPE_F16;
        else if (!strcmp(sd->str, "bf16")) so.dtype = PB_DTYPE_BF16;
        else if (strcmp(sd->str, "f32")) {
            pb_err_set(&err, "unknown --save-dtype '%s' (f32, f16 or bf16)", sd->str);
            return pb_cli_fail(&err);
        }
    }

    pb_model *m = NULL;
    pb_tokenizer *tok = NULL;
    pb_calib c = {0};
    pb_prune_result r = {0};
    bool have_calib = false;
    int rc;
    if (dry) {
        rc = is_config(pos[0]) ? pb_hf_config_load(pos[0], false, &m, &err)
                               : pb_cli_load(pos[0], opts, false, &m, NULL, &err);
        if (rc == 0) rc = pb_prune_dry_run(m, &o, &r, &err);
    } else {
        rc = pb_cli_load(pos[0], opts, false, &m, &tok, &err);
        if (rc == 0 && pb_cli_opt(opts, "calib")->set && !tok)
            rc = pb_err_set(&err, "%s: model carries no tokenizer for the calibration text; give --tokenizer FILE", pos[0]);
        if (rc == 0) rc = pb_cli_calib(opts, tok, &c, &have_calib, &err);
        o.calib = have_calib ? &c : NULL;
        if (rc == 0) rc = pb_prune(m, &o, &r, &err);
        if (rc == 0) {
            so.tokenizer_from = pb_is_dir(pos[0]) ? pos[0] : NULL;
            rc = pb_hf_save(m, out, &so, &err);
        }
    }
    if (rc == 0) {
        if (json) {
            cJSON *j = result_json(m, &o, &r, dry);
            char *t = cJSON_PrintUnformatted(j);
            if (t) puts(t);
            free(t);
            cJSON_Delete(j);
        } else {
            print_text(m, &o, &r, dry ? NULL : out);
        }
    }
    pb_prune_result_free(&r);
    pb_calib_free(&c);
    pb_tok_free(tok);
    pb_model_free(m);
    return rc == 0 ? PB_EXIT_OK : pb_cli_fail(&err);
}
