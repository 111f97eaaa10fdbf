/* results_gen.c — test tool: writes the run files that a JSON spec describes through the
 * results library, then builds the index, so that test_results_h5py.py can check every field
 * it asked for with h5py. Usage: exp_results_gen SPEC.json DIR. Prints the index row count.
 *
 * Spec: {"runs": [{"run_id", "experiment", "label", "config", "model", "method", "criterion",
 * "granularity" (strings or null), "ratio", "native" (number or null = NaN), "num_blocks",
 * "seed", optional "params": [4], "structure": {"n_heads", "n_kv", "ffn", "removed": [[l,k,i]]},
 * "ppl": {name: [ppl, nll, se, tokens, windows, seq_len]}, "zeroshot": {task: [acc, se,
 * acc_norm, se, headline, n]}, "zeroshot_mean", "latency": {"B": [prefill, decode, tok/s,
 * peak]}, "importance": {"rows", "cols", "scores"}, "training": {"step", "loss", "lr",
 * "grad_norm", "val_loss"}, "error"}]}. Integers may be strings (int64 beyond 2^53); null
 * numbers are NaN. */
#include "results.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, const char *msg) {
    fprintf(stderr, "exp_results_gen: %s: %s\n", what, msg);
    exit(1);
}

static double num(const cJSON *j) {
    return cJSON_IsNumber(j) ? j->valuedouble : NAN;
}

static int64_t i64(const cJSON *j) {
    if (cJSON_IsString(j)) return strtoll(j->valuestring, NULL, 10);
    if (!cJSON_IsNumber(j)) die("spec", "an integer is missing");
    return (int64_t)j->valuedouble;
}

static const char *str(const cJSON *o, const char *k) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* n numbers of array a (null: NaN); NULL when a is absent or null. */
static double *f64s(const cJSON *a, int *n) {
    if (!cJSON_IsArray(a)) return NULL;
    *n = cJSON_GetArraySize(a);
    double *v = calloc((size_t)*n + 1, sizeof *v);
    for (int i = 0; v && i < *n; i++) v[i] = num(cJSON_GetArrayItem(a, i));
    return v;
}

static int32_t *i32s(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    int32_t *v = calloc((size_t)*n + 1, sizeof *v);
    for (int i = 0; v && i < *n; i++) v[i] = (int32_t)i64(cJSON_GetArrayItem(a, i));
    return v;
}

static double at(const cJSON *a, int i) { return num(cJSON_GetArrayItem(a, i)); }
static int64_t iat(const cJSON *a, int i) { return i64(cJSON_GetArrayItem(a, i)); }

static void write_run(const char *dir, const cJSON *o) {
    pb_err err;
    pb_result_id id = {.run_id = str(o, "run_id"), .experiment = str(o, "experiment"), .label = str(o, "label"),
                       .config_yaml = str(o, "config"), .model = str(o, "model"), .method = str(o, "method"),
                       .criterion = str(o, "criterion"), .granularity = str(o, "granularity"),
                       .ratio = num(cJSON_GetObjectItem(o, "ratio")), .native = num(cJSON_GetObjectItem(o, "native")),
                       .num_blocks = (int)i64(cJSON_GetObjectItem(o, "num_blocks")),
                       .seed = i64(cJSON_GetObjectItem(o, "seed"))};
    pb_result *r;
    if (pb_result_begin(&r, dir, &id, &err)) die("begin", err.msg);
    const cJSON *j, *e;
    int rc = 0;
    if ((j = cJSON_GetObjectItem(o, "params")))
        rc |= pb_result_params(r, iat(j, 0), iat(j, 1), iat(j, 2), iat(j, 3), &err);
    if (!rc && (j = cJSON_GetObjectItem(o, "structure"))) {
        const cJSON *rj = cJSON_GetObjectItem(j, "removed");
        int nl, nk, nf, nr = cJSON_GetArraySize(rj);
        int32_t *h = i32s(cJSON_GetObjectItem(j, "n_heads"), &nl), *kv = i32s(cJSON_GetObjectItem(j, "n_kv"), &nk);
        int32_t *ff = i32s(cJSON_GetObjectItem(j, "ffn"), &nf), *rm = calloc(3 * (size_t)nr + 1, sizeof *rm);
        for (int i = 0; rm && i < nr; i++)
            for (int c = 0; c < 3; c++) rm[3 * i + c] = (int32_t)iat(cJSON_GetArrayItem(rj, i), c);
        if (!h || !kv || !ff || !rm) die("spec", "out of memory");
        rc |= pb_result_structure(r, h, kv, ff, nl, rm, nr, &err);
        free(h), free(kv), free(ff), free(rm);
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(o, "ppl")) {
        if (!rc)
            rc = pb_result_ppl(r, e->string, at(e, 0), at(e, 1), at(e, 2), iat(e, 3), iat(e, 4), (int)iat(e, 5), &err);
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(o, "zeroshot")) {
        if (!rc)
            rc = pb_result_zeroshot(r, e->string, at(e, 0), at(e, 1), at(e, 2), at(e, 3), at(e, 4), iat(e, 5), &err);
    }
    if (!rc && (j = cJSON_GetObjectItem(o, "zeroshot_mean"))) rc = pb_result_zeroshot_mean(r, num(j), &err);
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(o, "latency")) {
        if (!rc) rc = pb_result_latency(r, atoi(e->string), at(e, 0), at(e, 1), at(e, 2), iat(e, 3), &err);
    }
    if (!rc && (j = cJSON_GetObjectItem(o, "importance"))) {
        int n = 0;
        double *s = f64s(cJSON_GetObjectItem(j, "scores"), &n);
        int rows = (int)i64(cJSON_GetObjectItem(j, "rows")), cols = (int)i64(cJSON_GetObjectItem(j, "cols"));
        const cJSON *nm = cJSON_GetObjectItem(j, "name"), *gr = cJSON_GetObjectItem(j, "granularity");
        rc = pb_result_importance(r, cJSON_IsString(nm) ? nm->valuestring : NULL,
                                  cJSON_IsString(gr) ? gr->valuestring : NULL, s, rows, cols, &err);
        free(s);
        /* a second table beside the main one (width methods' channel scores) */
        const cJSON *ch = cJSON_GetObjectItem(j, "channels");
        if (!rc && ch) {
            s = f64s(cJSON_GetObjectItem(ch, "scores"), &n);
            rows = (int)i64(cJSON_GetObjectItem(ch, "rows"));
            cols = (int)i64(cJSON_GetObjectItem(ch, "cols"));
            rc = pb_result_importance(r, "channels", "channel", s, rows, cols, &err);
            free(s);
        }
    }
    if (!rc && (j = cJSON_GetObjectItem(o, "training"))) {
        int n = 0, m;
        const cJSON *sa = cJSON_GetObjectItem(j, "step");
        int64_t *step = calloc((size_t)cJSON_GetArraySize(sa) + 1, sizeof *step);
        for (int i = 0; step && i < cJSON_GetArraySize(sa); i++) step[i] = iat(sa, i);
        double *loss = f64s(cJSON_GetObjectItem(j, "loss"), &n), *lr = f64s(cJSON_GetObjectItem(j, "lr"), &m);
        double *gn = f64s(cJSON_GetObjectItem(j, "grad_norm"), &m), *val = f64s(cJSON_GetObjectItem(j, "val_loss"), &m);
        rc = pb_result_training(r, step, loss, lr, gn, val, n, &err);
        free(step), free(loss), free(lr), free(gn), free(val);
    }
    if (rc) {
        pb_result_abort(r);
        die(id.run_id, err.msg);
    }
    if (pb_result_end(r, str(o, "error"), &err)) die("end", err.msg);
}

int main(int argc, char **argv) {
    if (argc != 3) die("usage", "exp_results_gen SPEC.json DIR");
    FILE *f = fopen(argv[1], "rb");
    if (!f) die(argv[1], "cannot open");
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *spec = cJSON_Parse(buf);
    if (!spec) die(argv[1], "invalid JSON");
    const cJSON *run;
    cJSON_ArrayForEach(run, cJSON_GetObjectItem(spec, "runs")) write_run(argv[2], run);
    cJSON_Delete(spec);
    pb_err err;
    int rows;
    if (pb_results_index(argv[2], &rows, &err)) die("index", err.msg);
    printf("%d\n", rows);
    return 0;
}
