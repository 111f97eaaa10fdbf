/* cmd_info.c — `prunebench info MODEL`: shape and parameter counts of a model. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static int run(int argc, char **argv);

const pb_cmd pb_cmd_info = {
    .name = "info", .usage = "MODEL [--json]", .n_positional = 1, .run = run,
    .summary = "print a model's shape and parameter counts",
    .details = "params counts every tensor once (a tied head counts once); params_no_embed leaves out\n"
               "the token embedding and an untied LM head, as the papers' tables do.",
};

static cJSON *info_json(const pb_model *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", m->format);
    cJSON_AddNumberToObject(o, "dim", m->cfg.dim);
    cJSON_AddNumberToObject(o, "n_layers", m->cfg.n_layers);
    cJSON_AddNumberToObject(o, "vocab_size", m->cfg.vocab_size);
    cJSON_AddNumberToObject(o, "params", (double)pb_model_params(m));
    cJSON_AddNumberToObject(o, "params_no_embed", (double)pb_model_params_no_embed(m));
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "n_heads", L->has_attn ? L->n_heads : 0);
        cJSON_AddNumberToObject(e, "n_kv_heads", L->has_attn ? L->n_kv_heads : 0);
        cJSON_AddNumberToObject(e, "head_dim", L->head_dim);
        cJSON_AddNumberToObject(e, "ffn_dim", L->has_mlp ? L->ffn_dim : 0);
        cJSON_AddBoolToObject(e, "attn", L->has_attn);
        cJSON_AddBoolToObject(e, "mlp", L->has_mlp);
        cJSON_AddItemToArray(layers, e);
    }
    return o;
}

static void info_text(const pb_model *m) {
    const pb_config *c = &m->cfg;
    printf("format      %s\npath        %s\n", m->format, m->path ? m->path : "-");
    printf("dim         %d\nn_layers    %d\nvocab_size  %d\ncontext     %d\n", c->dim, c->n_layers, c->vocab_size,
           c->max_seq_len);
    printf("rope_theta  %g%s\nnorm_eps    %g\ntied head   %s\n", (double)c->rope_theta,
           c->rope_scaling.type == PB_ROPE_LLAMA3 ? " (llama3 scaling)" : c->rope_scaling.type == PB_ROPE_LINEAR ? " (linear scaling)" : "",
           (double)c->norm_eps, c->tied_embeddings ? "yes" : "no");
    printf("params      %lld\nparams w/o embeddings %lld\n\n", (long long)pb_model_params(m),
           (long long)pb_model_params_no_embed(m));
    printf("layer  heads  kv_heads  head_dim  ffn_dim  attn  mlp  params\n");
    for (int l = 0; l < c->n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        printf("%5d  %5d  %8d  %8d  %7d  %4s  %3s  %lld\n", l, L->has_attn ? L->n_heads : 0,
               L->has_attn ? L->n_kv_heads : 0, L->head_dim, L->has_mlp ? L->ffn_dim : 0, L->has_attn ? "yes" : "no",
               L->has_mlp ? "yes" : "no", (long long)pb_layer_params(m, l));
    }
}

static int run(int argc, char **argv) {
    pb_opt opts[] = {{"json", PB_OPT_FLAG, NULL, "print JSON on stdout", 0, 0, 0, 0}, PB_CLI_COMMON_OPTS, {0}};
    const char *pos[1];
    int code;
    if (pb_cli_parse(&pb_cmd_info, argc, argv, opts, pos, &code)) return code;
    pb_err err = {0};
    pb_model *m = NULL;
    if (pb_cli_load(pos[0], opts, false, &m, NULL, &err)) return pb_cli_fail(&err);
    if (pb_cli_opt(opts, "json")->set) {
        cJSON *o = info_json(m);
        char *s = cJSON_PrintUnformatted(o);
        if (s) puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        info_text(m);
    }
    pb_model_free(m);
    return 0;
}
