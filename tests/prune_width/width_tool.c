/* width_tool.c — test tool for test_width_reference.py: loads a model, takes calibration
 * windows (a file of ids, or pb_calib_load's own windows, printed so that the reference sees
 * exactly the same tokens), and prints importance scores and/or the structures a pruning
 * removes, as JSON on stdout.
 *
 *   width_tool MODEL [--tokenizer PATH]
 *       (--ids FILE | --calib NAME [--split S] [--data-dir D] --n N --T T [--sampling contiguous|random])
 *       [--method M] [--criterion C] [--aggregation A] [--seed S]
 *       [--print-calib] [--scores] [--prune (--native r | --ratio x) [--layers A:B]]
 *
 * FILE: "N T" followed by N*T ids. JSON: {"calib": [[ids]...]} with --print-calib,
 * "heads" / "channels" (per layer, the pb_importance scores at that granularity) with
 * --scores, "removed": [[layer, kind, index]...] (kind 3 head, 4 channel), "params_before",
 * "params_after", "layers": [[n_heads, n_kv_heads, ffn_dim]...] with --prune (the model is
 * sliced). Errors: "width_tool: error: ..." on stderr, exit 1. */
#include "load.h"
#include "pb_data.h"
#include "prune.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *msg) {
    fprintf(stderr, "width_tool: error: %s\n", msg);
    return 1;
}

static int read_ids(const char *path, pb_calib *c) {
    FILE *f = fopen(path, "r");
    if (!f) return fail("cannot open the ids file");
    int n, T;
    if (fscanf(f, "%d %d", &n, &T) != 2 || n < 1 || T < 2 || n > 100000 || T > 100000) {
        fclose(f);
        return fail("bad ids header");
    }
    c->ids = malloc(sizeof(int32_t) * (size_t)n * (size_t)T);
    if (!c->ids) {
        fclose(f);
        return fail("out of memory");
    }
    for (size_t i = 0; i < (size_t)n * T; i++)
        if (fscanf(f, "%d", &c->ids[i]) != 1) {
            fclose(f);
            return fail("too few ids");
        }
    fclose(f);
    c->n = n;
    c->T = T;
    return 0;
}

static cJSON *scores_json(const pb_scores *s) {
    cJSON *a = cJSON_CreateArray();
    for (int l = 0; l < s->n_layers; l++) {
        cJSON *row = cJSON_CreateArray();
        for (int i = 0; i < s->count[l]; i++) cJSON_AddItemToArray(row, cJSON_CreateNumber(s->score[l][i]));
        cJSON_AddItemToArray(a, row);
    }
    return a;
}

int main(int argc, char **argv) {
    const char *model = NULL, *tokp = NULL, *ids = NULL, *calib = NULL, *split = NULL, *ddir = NULL;
    int n = 0, T = 0;
    bool print_calib = false, do_scores = false, do_prune = false, contiguous = true;
    pb_prune_opts o;
    pb_prune_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (!strcmp(a, "--tokenizer")) tokp = v;
        else if (!strcmp(a, "--ids")) ids = v;
        else if (!strcmp(a, "--calib")) calib = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--data-dir")) ddir = v;
        else if (!strcmp(a, "--n")) n = v ? atoi(v) : 0;
        else if (!strcmp(a, "--T")) T = v ? atoi(v) : 0;
        else if (!strcmp(a, "--sampling")) contiguous = v && !strcmp(v, "contiguous");
        else if (!strcmp(a, "--method")) o.method = v;
        else if (!strcmp(a, "--criterion")) o.criterion = v;
        else if (!strcmp(a, "--aggregation")) o.aggregation = v;
        else if (!strcmp(a, "--seed")) o.seed = v ? strtoull(v, NULL, 10) : 0;
        else if (!strcmp(a, "--native")) o.native = v ? atof(v) : -1;
        else if (!strcmp(a, "--ratio")) o.ratio = v ? atof(v) : -1;
        else if (!strcmp(a, "--layers")) {
            if (!v || sscanf(v, "%d:%d", &o.layer_start, &o.layer_end) != 2) return fail("--layers A:B");
        } else {
            takes = false;
            if (!strcmp(a, "--print-calib")) print_calib = true;
            else if (!strcmp(a, "--scores")) do_scores = true;
            else if (!strcmp(a, "--prune")) do_prune = true;
            else if (a[0] != '-' && !model) model = a;
            else return fail("unknown argument (see the header of width_tool.c)");
        }
        if (takes && !v) return fail("option without a value");
        i += takes;
    }
    if (!model) return fail("no model");
    if (!o.method) o.method = "llm-pruner";
    pb_err err;
    pb_model *m;
    pb_tokenizer *tok = NULL;
    pb_load_opts lo = {tokp};
    if (pb_model_load(model, &lo, &m, calib ? &tok : NULL, &err) != 0) return fail(err.msg);
    pb_calib c = {0};
    if (ids && read_ids(ids, &c) != 0) return 1;
    if (calib) {
        if (!tok) return fail("--calib needs a tokenizer");
        if (pb_calib_load(&c, calib, split, ddir, tok, n, T, contiguous ? PB_CALIB_CONTIGUOUS : PB_CALIB_RANDOM, o.seed,
                          &err) != 0)
            return fail(err.msg);
    }
    if (c.n) o.calib = &c;
    cJSON *out = cJSON_CreateObject();
    if (print_calib) {
        cJSON *a = cJSON_AddArrayToObject(out, "calib");
        for (int i = 0; i < c.n; i++) cJSON_AddItemToArray(a, cJSON_CreateIntArray(c.ids + (size_t)i * c.T, c.T));
    }
    for (int k = 0; do_scores && k < 2; k++) {
        pb_scores s;
        o.granularity = k == 0 ? PB_S_HEAD : PB_S_CHANNEL;
        if (pb_importance(m, &o, &s, &err) != 0) return fail(err.msg);
        cJSON_AddItemToObject(out, k == 0 ? "heads" : "channels", scores_json(&s));
        pb_scores_free(&s);
    }
    if (do_prune) {
        pb_prune_result r;
        if (pb_prune(m, &o, &r, &err) != 0) return fail(err.msg);
        cJSON *a = cJSON_AddArrayToObject(out, "removed");
        for (int i = 0; i < r.n_removed; i++) {
            int x[3] = {r.removed[i].layer, (int)r.removed[i].kind, r.removed[i].index};
            cJSON_AddItemToArray(a, cJSON_CreateIntArray(x, 3));
        }
        cJSON_AddNumberToObject(out, "params_before", (double)r.params_before);
        cJSON_AddNumberToObject(out, "params_after", (double)r.params_after);
        cJSON *ls = cJSON_AddArrayToObject(out, "layers");
        for (int l = 0; l < m->cfg.n_layers; l++) {
            int x[3] = {m->layers[l].n_heads, m->layers[l].n_kv_heads, m->layers[l].ffn_dim};
            cJSON_AddItemToArray(ls, cJSON_CreateIntArray(x, 3));
        }
        pb_prune_result_free(&r);
    }
    char *txt = cJSON_PrintUnformatted(out);
    if (!txt) return fail("out of memory");
    puts(txt);
    free(txt);
    cJSON_Delete(out);
    if (calib) pb_calib_free(&c);
    else free(c.ids);
    pb_tok_free(tok);
    pb_model_free(m);
    return 0;
}
