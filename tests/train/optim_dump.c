/* optim_dump.c — test tool: runs pb_clip_grad_norm, pb_sched_factor and pb_adamw_step over
 * given gradients, for test_optim_torch.py.
 *
 *   optim_dump SPEC.json      SPEC: {"params": [[...], ...], "decay": [true, ...],
 *                             "grads": [[[...], ...] per step], "lr", "beta1", "beta2", "eps",
 *                             "weight_decay", "max_grad_norm", "schedule", "warmup", "total"}
 * Prints {"params": [[...]] after every step, "norms": [...], "lrs": [...]} (%.9g floats). */
#include "optim.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double num(const cJSON *j, const char *k) { return cJSON_GetObjectItemCaseSensitive(j, k)->valuedouble; }

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    char *text;
    size_t len;
    pb_err err = {0};
    if (pb_file_read_all(argv[1], &text, &len, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    cJSON *j = cJSON_Parse(text), *P = cJSON_GetObjectItemCaseSensitive(j, "params");
    cJSON *D = cJSON_GetObjectItemCaseSensitive(j, "decay"), *G = cJSON_GetObjectItemCaseSensitive(j, "grads");
    int n = cJSON_GetArraySize(P), steps = cJSON_GetArraySize(G);
    pb_param *ps = calloc((size_t)n, sizeof *ps);
    for (int i = 0; i < n; i++) {
        cJSON *a = cJSON_GetArrayItem(P, i);
        size_t k = (size_t)cJSON_GetArraySize(a);
        ps[i] = (pb_param){calloc(k, 4), calloc(k, 4), calloc(k, 4), calloc(k, 4), k,
                           cJSON_IsTrue(cJSON_GetArrayItem(D, i))};
        for (size_t e = 0; e < k; e++) ps[i].p[e] = (float)cJSON_GetArrayItem(a, (int)e)->valuedouble;
    }
    pb_adamw o = {num(j, "beta1"), num(j, "beta2"), num(j, "eps"), num(j, "weight_decay")};
    pb_sched_kind kind;
    if (pb_sched_parse(cJSON_GetObjectItemCaseSensitive(j, "schedule")->valuestring, &kind, &err) != 0) return 1;
    pb_sched sc = {kind, (int64_t)num(j, "warmup"), (int64_t)num(j, "total")};
    printf("{\"params\": [");
    char sep_s = ' ';
    cJSON *norms = cJSON_CreateArray(), *lrs = cJSON_CreateArray();
    for (int s = 0; s < steps; s++) {
        cJSON *gs = cJSON_GetArrayItem(G, s);
        for (int i = 0; i < n; i++)
            for (size_t e = 0; e < ps[i].n; e++)
                ps[i].g[e] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(gs, i), (int)e)->valuedouble;
        double norm = pb_clip_grad_norm(ps, n, num(j, "max_grad_norm"));
        double lr = num(j, "lr") * pb_sched_factor(&sc, s);
        pb_adamw_step(&o, ps, n, lr, s + 1);
        cJSON_AddItemToArray(norms, cJSON_CreateNumber(norm));
        cJSON_AddItemToArray(lrs, cJSON_CreateNumber(lr));
        printf("%c[", sep_s);
        sep_s = ',';
        for (int i = 0; i < n; i++) {
            printf("%s[", i ? "," : "");
            for (size_t e = 0; e < ps[i].n; e++) printf("%s%.9g", e ? "," : "", ps[i].p[e]);
            printf("]");
        }
        printf("]");
    }
    char *a = cJSON_PrintUnformatted(norms), *b = cJSON_PrintUnformatted(lrs);
    printf("], \"norms\": %s, \"lrs\": %s}\n", a, b);
    for (int i = 0; i < n; i++) {
        free(ps[i].p);
        free(ps[i].g);
        free(ps[i].m);
        free(ps[i].v);
    }
    free(ps);
    free(a);
    free(b);
    cJSON_Delete(norms);
    cJSON_Delete(lrs);
    cJSON_Delete(j);
    free(text);
    return 0;
}
