/* depth_dump.c — test tool for test_depth_reference.py: runs depth pruning (core/prune/depth.c)
 * through the library on a model and reports, as JSON, everything the Python reference
 * recomputes: the calibration windows, the importance scores of every criterion at block,
 * attn and mlp granularity, and the structures one-shot and iterative pruning remove.
 *
 *   depth_dump MODEL (--ids FILE | --calib NAME --data-dir DIR --n N --T T) [--protect A B]
 *              [--threads N] --out JSON
 *     --ids FILE    "n T" then n*T token ids: the calibration windows themselves
 *     --calib ...   windows from pb_calib_load (contiguous sampling) with the model's tokenizer
 *     --protect     the protect_first / protect_last of the protected prune cases (default 1 1)
 *     --windows-only  write only {"windows": ...} (the CLI test feeds them to its reference)
 *
 * JSON: {"windows": [[ids]...], "params": N, "scores": {criterion: {granularity: [score or
 * null per layer]}}, "prune": [{"criterion", "granularity" (block|attn|mlp|module), "k",
 * "protect": [a, b], "iterative", "removed": [[layer, kind]...] or "error": message,
 * "params_before", "params_after"}]}. Every prune case starts from a freshly loaded model. */
#include "load.h"
#include "pb_test.h"
#include "prune.h"

#include <cjson/cJSON.h>

static const char *const CRITS[] = {"magnitude", "taylor", "ppl"};
static const char *const GRANS[] = {"block", "attn", "mlp", "module"};

static pb_model *load(const char *path, pb_tokenizer **tok) {
    pb_err err;
    pb_model *m;
    REQUIRE(pb_model_load(path, NULL, &m, tok, &err) == 0, "%s", err.msg);
    return m;
}

static void set_gran(pb_prune_opts *o, int g) {
    o->module_joint = g == 3;
    o->granularity = g == 1 ? PB_S_ATTN : g == 2 ? PB_S_MLP : PB_S_BLOCK;
}

static void add_prune(cJSON *arr, const char *path, const pb_calib *c, int crit, int gran, int k, int pf, int pl,
                      bool iterative) {
    pb_model *m = load(path, NULL);
    pb_prune_opts o;
    pb_prune_opts_default(&o);
    o.method = "depth";
    o.criterion = CRITS[crit];
    set_gran(&o, gran);
    o.count = k;
    o.protect_first = pf;
    o.protect_last = pl;
    o.iterative = iterative;
    o.calib = c;
    pb_prune_result r;
    pb_err err;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "criterion", CRITS[crit]);
    cJSON_AddStringToObject(j, "granularity", GRANS[gran]);
    cJSON_AddNumberToObject(j, "k", k);
    cJSON *p = cJSON_AddArrayToObject(j, "protect");
    cJSON_AddItemToArray(p, cJSON_CreateNumber(pf));
    cJSON_AddItemToArray(p, cJSON_CreateNumber(pl));
    cJSON_AddBoolToObject(j, "iterative", iterative);
    if (pb_prune(m, &o, &r, &err) != 0) {
        cJSON_AddStringToObject(j, "error", err.msg);
    } else {
        cJSON *rm = cJSON_AddArrayToObject(j, "removed");
        for (int i = 0; i < r.n_removed; i++) {
            cJSON *e = cJSON_CreateArray();
            cJSON_AddItemToArray(e, cJSON_CreateNumber(r.removed[i].layer));
            cJSON_AddItemToArray(e, cJSON_CreateString(pb_struct_kind_names[r.removed[i].kind]));
            cJSON_AddItemToArray(rm, e);
        }
        cJSON_AddNumberToObject(j, "params_before", (double)r.params_before);
        cJSON_AddNumberToObject(j, "params_after", (double)r.params_after);
        pb_prune_result_free(&r);
    }
    cJSON_AddItemToArray(arr, j);
    pb_model_free(m);
}

int main(int argc, char **argv) {
    const char *model = NULL, *ids = NULL, *calib = NULL, *data_dir = NULL, *out = NULL;
    int n = 0, T = 0, pf = 1, pl = 1;
    bool windows_only = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (!strcmp(a, "--ids") && more) ids = argv[++i];
        else if (!strcmp(a, "--calib") && more) calib = argv[++i];
        else if (!strcmp(a, "--data-dir") && more) data_dir = argv[++i];
        else if (!strcmp(a, "--n") && more) n = atoi(argv[++i]);
        else if (!strcmp(a, "--T") && more) T = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && more) pb_set_threads(atoi(argv[++i]));
        else if (!strcmp(a, "--out") && more) out = argv[++i];
        else if (!strcmp(a, "--windows-only")) windows_only = true;
        else if (!strcmp(a, "--protect") && i + 2 < argc) pf = atoi(argv[++i]), pl = atoi(argv[++i]);
        else if (a[0] != '-' && !model) model = a;
        else {
            fprintf(stderr, "depth_dump: bad argument %s\n", a);
            return 2;
        }
    }
    if (!model || !out || (!ids && !calib)) {
        fprintf(stderr, "usage: depth_dump MODEL (--ids FILE | --calib NAME --data-dir DIR --n N --T T) --out JSON\n");
        return 2;
    }
    pb_err err;
    pb_tokenizer *tok = NULL;
    pb_model *m = load(model, calib ? &tok : NULL);
    pb_calib c = {0};
    if (calib) {
        REQUIRE(tok, "%s carries no tokenizer", model);
        REQUIRE(pb_calib_load(&c, calib, NULL, data_dir, tok, n, T, PB_CALIB_CONTIGUOUS, 0, &err) == 0, "%s", err.msg);
    } else {
        FILE *f = fopen(ids, "r");
        REQUIRE(f && fscanf(f, "%d %d", &c.n, &c.T) == 2 && c.n > 0 && c.T > 1 && c.n < 1000 && c.T < 10000,
                "bad ids file %s", ids);
        c.ids = malloc(sizeof(int32_t) * (size_t)c.n * c.T);
        REQUIRE(c.ids, "oom");
        for (int i = 0; i < c.n * c.T; i++) REQUIRE(fscanf(f, "%d", &c.ids[i]) == 1, "short ids file %s", ids);
        fclose(f);
    }

    cJSON *root = cJSON_CreateObject();
    cJSON *win = cJSON_AddArrayToObject(root, "windows");
    for (int i = 0; i < c.n; i++) cJSON_AddItemToArray(win, cJSON_CreateIntArray(c.ids + (size_t)i * c.T, c.T));
    cJSON_AddNumberToObject(root, "params", (double)pb_model_params(m));
    cJSON *sc = cJSON_AddObjectToObject(root, "scores");
    for (int ci = 0; ci < 3 && !windows_only; ci++) {
        cJSON *cj = cJSON_AddObjectToObject(sc, CRITS[ci]);
        for (int g = 0; g < 3; g++) {
            pb_prune_opts o;
            pb_prune_opts_default(&o);
            o.method = "depth";
            o.criterion = CRITS[ci];
            set_gran(&o, g);
            o.calib = &c;
            pb_scores s;
            REQUIRE(pb_importance(m, &o, &s, &err) == 0, "%s %s: %s", CRITS[ci], GRANS[g], err.msg);
            cJSON *a = cJSON_AddArrayToObject(cj, GRANS[g]);
            for (int l = 0; l < s.n_layers; l++) {
                REQUIRE(s.count[l] == 1, "layer %d has %d scores", l, s.count[l]);
                double v = s.score[l][0];
                cJSON_AddItemToArray(a, isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v));
            }
            pb_scores_free(&s);
        }
    }
    pb_model_free(m);
    cJSON *pr = cJSON_AddArrayToObject(root, "prune");
    for (int ci = 0; ci < 3 && !windows_only; ci++)
        for (int g = 0; g < 4; g++)
            for (int prot = 0; prot < 2; prot++) {
                for (int k = 1; k <= 2; k++) add_prune(pr, model, &c, ci, g, k, prot ? pf : 0, prot ? pl : 0, false);
                add_prune(pr, model, &c, ci, g, 2, prot ? pf : 0, prot ? pl : 0, true);
            }
    char *txt = cJSON_Print(root);
    REQUIRE(txt, "oom");
    pb_test_write_file(out, txt, strlen(txt));
    free(txt);
    cJSON_Delete(root);
    if (calib) pb_calib_free(&c);
    else free(c.ids);
    pb_tok_free(tok);
    return 0;
}
