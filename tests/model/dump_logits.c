/* dump_logits.c — test helper: load a model with pb_model_load and write its logits.
 *
 * usage: dump_logits MODEL IDS_FILE OUT_FILE [--decode] [--threads N]
 *   IDS_FILE: text "B T" followed by B*T token ids (row-major).
 *   OUT_FILE: raw little-endian float32 logits (B, T, vocab_size).
 *   --decode: run token by token through the KV cache instead of one batched forward.
 * Prints "vocab_size N" on stdout. Errors: one line on stderr, exit 1. */
#include "load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *msg) {
    fprintf(stderr, "dump_logits: error: %s\n", msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) return fail("usage: dump_logits MODEL IDS_FILE OUT_FILE [--decode] [--threads N]");
    bool decode = false;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--decode")) decode = true;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) pb_set_threads(atoi(argv[++i]));
        else return fail("unknown option");
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) return fail("cannot open the ids file");
    int B, T;
    if (fscanf(f, "%d %d", &B, &T) != 2 || B <= 0 || T <= 0 || B > 1024 || T > 65536) { fclose(f); return fail("bad ids header"); }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * T);
    if (!ids) { fclose(f); return fail("out of memory"); }
    for (int i = 0; i < B * T; i++)
        if (fscanf(f, "%d", &ids[i]) != 1) { fclose(f); return fail("ids file too short"); }
    fclose(f);

    pb_err err;
    pb_model *m;
    if (pb_model_load(argv[1], NULL, &m, NULL, &err) != 0) return fail(err.msg);
    int V = m->cfg.vocab_size;
    float *lg = malloc(sizeof(float) * (size_t)B * T * V);
    pb_fwd_state *st = pb_fwd_state_new();
    if (!lg || !st) return fail("out of memory");
    if (!decode) {
        if (pb_model_forward(m, st, ids, B, T, NULL, lg, false, &err) != 0) return fail(err.msg);
    } else {
        pb_kvcache *c;
        int32_t *col = malloc(sizeof(int32_t) * B);
        float *step = malloc(sizeof(float) * (size_t)B * V);
        if (!col || !step) return fail("out of memory");
        if (pb_kvcache_create(&c, m, B, T, &err) != 0) return fail(err.msg);
        for (int t = 0; t < T; t++) {
            for (int b = 0; b < B; b++) col[b] = ids[b * T + t];
            if (pb_model_forward(m, st, col, B, 1, c, step, false, &err) != 0) return fail(err.msg);
            for (int b = 0; b < B; b++)
                memcpy(lg + ((size_t)b * T + t) * V, step + (size_t)b * V, sizeof(float) * V);
        }
        pb_kvcache_free(c);
        free(col);
        free(step);
    }
    FILE *o = fopen(argv[3], "wb");
    if (!o || fwrite(lg, sizeof(float), (size_t)B * T * V, o) != (size_t)B * T * V || fclose(o) != 0)
        return fail("cannot write the output file");
    printf("vocab_size %d\n", V);
    free(lg);
    free(ids);
    pb_fwd_state_free(st);
    pb_model_free(m);
    return 0;
}
