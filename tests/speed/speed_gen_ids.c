/* speed_gen_ids.c — test helper (not a test): runs one `prunebench bench` configuration
 * through pb_speed_run, the function the command calls, and prints the prompts it used and
 * the tokens it generated as JSON {"prompt": [[...]...], "tokens": [[...]...]}.
 *
 *   speed_gen_ids MODEL GEN_LEN ROW [ROW...]      ROW = comma-separated prompt ids (equal lengths)
 *   speed_gen_ids MODEL GEN_LEN --random B P SEED random prompts, as the command draws them */
#include "load.h"
#include "speed.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *rows(const int32_t *x, int B, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int b = 0; b < B; b++) {
        cJSON *r = cJSON_CreateArray();
        for (int i = 0; i < n; i++) cJSON_AddItemToArray(r, cJSON_CreateNumber(x[(size_t)b * n + i]));
        cJSON_AddItemToArray(a, r);
    }
    return a;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: speed_gen_ids MODEL GEN_LEN (ROW... | --random B P SEED)\n");
        return 2;
    }
    pb_err err = {0};
    pb_model *m = NULL;
    pb_load_opts lo = {0};
    if (pb_model_load(argv[1], &lo, &m, NULL, &err)) { fprintf(stderr, "speed_gen_ids: %s\n", err.msg); return 1; }
    pb_speed_opts o = {.gen_len = atoi(argv[2]), .reps = 1, .warmup = 0, .device = PB_SPEED_CPU};
    int32_t *given = NULL;
    if (!strcmp(argv[3], "--random")) {
        if (argc != 7) { fprintf(stderr, "speed_gen_ids: --random B P SEED\n"); return 2; }
        o.batch = atoi(argv[4]), o.prompt_len = atoi(argv[5]), o.seed = strtoull(argv[6], NULL, 10);
    } else {
        o.batch = argc - 3;
        for (int b = 0; b < o.batch; b++) {
            int n = 1;
            for (const char *p = argv[3 + b]; *p; p++) n += *p == ',';
            if (b == 0) {
                o.prompt_len = n;
                given = calloc((size_t)o.batch * n, sizeof *given);
                if (!given) return 1;
            } else if (n != o.prompt_len) {
                fprintf(stderr, "speed_gen_ids: rows differ in length\n");
                return 2;
            }
            const char *p = argv[3 + b];
            for (int i = 0; i < n; i++) {
                char *e;
                given[(size_t)b * n + i] = (int32_t)strtol(p, &e, 10);
                if (e == p || (*e && *e != ',')) { fprintf(stderr, "speed_gen_ids: bad row '%s'\n", argv[3 + b]); return 2; }
                p = *e ? e + 1 : e;
            }
        }
        o.prompt = given;
    }
    if (o.batch < 1 || o.prompt_len < 1 || o.gen_len < 1) { fprintf(stderr, "speed_gen_ids: bad sizes\n"); return 2; }
    int32_t *prompt = calloc((size_t)o.batch * o.prompt_len, sizeof *prompt);
    int32_t *toks = calloc((size_t)o.batch * o.gen_len, sizeof *toks);
    if (!prompt || !toks) return 1;
    o.prompt_out = prompt, o.tokens_out = toks;
    pb_speed_result r;
    if (pb_speed_run(m, &o, &r, &err)) { fprintf(stderr, "speed_gen_ids: %s\n", err.msg); return 1; }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "prompt", rows(prompt, o.batch, o.prompt_len));
    cJSON_AddItemToObject(j, "tokens", rows(toks, o.batch, o.gen_len));
    char *s = cJSON_PrintUnformatted(j);
    puts(s);
    free(s);
    cJSON_Delete(j);
    free(prompt);
    free(toks);
    free(given);
    pb_model_free(m);
    return 0;
}
