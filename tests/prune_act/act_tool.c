/* act_tool.c — test tool for the activation-based width methods (wanda-sp, flap): runs the
 * library directly (no CLI) and writes what test_act_reference.py compares with its float64
 * PyTorch reference.
 *
 *   act_tool MODEL --method wanda-sp|flap --out DIR [OPTIONS]
 *     --tokenizer PATH     tokenizer for --calib (a GGUF carries its own)
 *     --ids FILE           calibration windows: "N T" then N*T token ids
 *     --calib NAME --n N --T T [--split S] [--data-dir DIR] [--random SEED]
 *                          calibration windows from pb_calib_load (contiguous unless --random)
 *     --metric M --structure S --p P | --ratio R --no-bias --mask --threads N
 *   Writes DIR/windows.txt (the windows used), DIR/scores_head.txt and DIR/scores_channel.txt
 *   (pb_importance; one line per layer: count, then the scores), then prunes and writes
 *   DIR/result.txt (the p-independent facts: params before/after, then one "layer kind index"
 *   line per removed structure) and DIR/model (pb_hf_save, F32). Exit 1 with the library's
 *   message on failure, 2 on bad usage. */
#include "load.h"
#include "prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr, "usage: act_tool MODEL --method M --out DIR (--ids FILE | --calib NAME --n N --T T) [options]\n");
    return 2;
}

static int fail(const char *what, const pb_err *e) {
    fprintf(stderr, "act_tool: %s: %s\n", what, e->msg);
    return 1;
}

static int read_ids(const char *path, pb_calib *c) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n, T;
    if (fscanf(f, "%d %d", &n, &T) != 2 || n < 1 || T < 1 || n > 100000 || T > 100000) {
        fclose(f);
        return -1;
    }
    c->ids = malloc(sizeof(int32_t) * (size_t)n * T);
    if (!c->ids) {
        fclose(f);
        return -1;
    }
    for (long i = 0; i < (long)n * T; i++) {
        int v;
        if (fscanf(f, "%d", &v) != 1) {
            fclose(f);
            return -1;
        }
        c->ids[i] = v;
    }
    fclose(f);
    c->n = n;
    c->T = T;
    return 0;
}

static void write_scores(const char *dir, const char *name, const pb_scores *s) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) return;
    for (int l = 0; l < s->n_layers; l++) {
        fprintf(f, "%d", s->count[l]);
        for (int i = 0; i < s->count[l]; i++) fprintf(f, " %.17g", s->score[l][i]);
        fprintf(f, "\n");
    }
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    const char *model = argv[1], *tokp = NULL, *ids = NULL, *calib = NULL, *split = NULL, *data_dir = NULL, *out = NULL;
    int n = 0, T = 0;
    bool random = false;
    uint64_t seed = 0;
    pb_prune_opts o;
    pb_prune_opts_default(&o);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (!strcmp(a, "--tokenizer") && more) tokp = argv[++i];
        else if (!strcmp(a, "--ids") && more) ids = argv[++i];
        else if (!strcmp(a, "--calib") && more) calib = argv[++i];
        else if (!strcmp(a, "--split") && more) split = argv[++i];
        else if (!strcmp(a, "--data-dir") && more) data_dir = argv[++i];
        else if (!strcmp(a, "--n") && more) n = atoi(argv[++i]);
        else if (!strcmp(a, "--T") && more) T = atoi(argv[++i]);
        else if (!strcmp(a, "--random") && more) random = true, seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--method") && more) o.method = argv[++i];
        else if (!strcmp(a, "--metric") && more) o.metric = argv[++i];
        else if (!strcmp(a, "--structure") && more) o.structure = argv[++i];
        else if (!strcmp(a, "--p") && more) o.native = atof(argv[++i]);
        else if (!strcmp(a, "--ratio") && more) o.ratio = atof(argv[++i]);
        else if (!strcmp(a, "--no-bias")) o.no_bias_compensation = true;
        else if (!strcmp(a, "--mask")) o.mask_only = true;
        else if (!strcmp(a, "--threads") && more) pb_set_threads(atoi(argv[++i]));
        else if (!strcmp(a, "--out") && more) out = argv[++i];
        else return usage();
    }
    if (!o.method || !out || (!ids && !calib)) return usage();
    pb_err err = {0};
    pb_model *m = NULL;
    pb_tokenizer *tok = NULL;
    pb_load_opts lo = {.tokenizer_path = tokp};
    if (pb_model_load(model, &lo, &m, calib ? &tok : NULL, &err) != 0) return fail("load", &err);
    pb_calib c = {0};
    if (ids) {
        if (read_ids(ids, &c) != 0) {
            fprintf(stderr, "act_tool: cannot read windows from %s\n", ids);
            return 1;
        }
    } else {
        if (!tok) {
            fprintf(stderr, "act_tool: the model has no tokenizer; give --tokenizer\n");
            return 1;
        }
        if (pb_calib_load(&c, calib, split, data_dir, tok, n, T, random ? PB_CALIB_RANDOM : PB_CALIB_CONTIGUOUS, seed,
                          &err) != 0)
            return fail("calibration", &err);
    }
    o.calib = &c;
    char p[4096];
    snprintf(p, sizeof p, "%s/windows.txt", out);
    FILE *f = fopen(p, "w");
    if (!f) return fprintf(stderr, "act_tool: cannot write %s\n", p), 1;
    fprintf(f, "%d %d\n", c.n, c.T);
    for (int i = 0; i < c.n; i++)
        for (int t = 0; t < c.T; t++) fprintf(f, "%d%c", c.ids[(size_t)i * c.T + t], t + 1 < c.T ? ' ' : '\n');
    fclose(f);

    const pb_struct_kind kinds[2] = {PB_S_HEAD, PB_S_CHANNEL};
    const char *names[2] = {"scores_head.txt", "scores_channel.txt"};
    for (int k = 0; k < 2; k++) {
        pb_scores s;
        o.granularity = kinds[k];
        if (pb_importance(m, &o, &s, &err) != 0) return fail("importance", &err);
        write_scores(out, names[k], &s);
        pb_scores_free(&s);
    }
    pb_prune_result r;
    if (pb_prune(m, &o, &r, &err) != 0) return fail("prune", &err);
    snprintf(p, sizeof p, "%s/result.txt", out);
    if (!(f = fopen(p, "w"))) return fprintf(stderr, "act_tool: cannot write %s\n", p), 1;
    fprintf(f, "%lld %lld %lld %lld\n", (long long)r.params_before, (long long)r.params_after,
            (long long)r.params_before_no_embed, (long long)r.params_after_no_embed);
    for (int i = 0; i < r.n_removed; i++)
        fprintf(f, "%d %s %d\n", r.removed[i].layer, pb_struct_kind_names[r.removed[i].kind], r.removed[i].index);
    fclose(f);
    snprintf(p, sizeof p, "%s/model", out);
    pb_save_opts so = {0};
    if (pb_hf_save(m, p, &so, &err) != 0) return fail("save", &err);
    pb_prune_result_free(&r);
    pb_calib_free(&c);
    pb_tok_free(tok);
    pb_model_free(m);
    return 0;
}
