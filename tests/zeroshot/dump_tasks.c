/* dump_tasks.c — test tool: loads tasks through the registry and prints every document's
 * requests as JSON lines {"task", "line", "gold", "ctx": [...], "cont": [...],
 * "choice_len": [...]}, for test_tasks_full.py to compare with lmeval_ref.py.
 *   dump_tasks DATA_DIR TASK... */
#include "tasks.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: dump_tasks DATA_DIR TASK...\n"); return 2; }
    for (int a = 2; a < argc; a++) {
        pb_task *t = NULL;
        pb_err err = {0};
        if (pb_task_open(argv[a], argv[1], &t, &err)) { fprintf(stderr, "dump_tasks: error: %s\n", err.msg); return 1; }
        for (int i = 0; i < t->n_docs; i++) {
            const pb_task_doc *d = &t->docs[i];
            cJSON *o = cJSON_CreateObject(), *ctx = cJSON_CreateArray(), *cont = cJSON_CreateArray(),
                  *len = cJSON_CreateArray();
            if (!o || !ctx || !cont || !len) { fprintf(stderr, "dump_tasks: out of memory\n"); return 1; }
            cJSON_AddStringToObject(o, "task", t->name);
            cJSON_AddNumberToObject(o, "line", d->line);
            cJSON_AddNumberToObject(o, "gold", d->gold);
            for (int c = 0; c < d->n_choices; c++) {
                cJSON_AddItemToArray(ctx, cJSON_CreateString(d->ctx[c]));
                cJSON_AddItemToArray(cont, cJSON_CreateString(d->cont[c]));
                cJSON_AddItemToArray(len, cJSON_CreateNumber(d->choice_len[c]));
            }
            cJSON_AddItemToObject(o, "ctx", ctx);
            cJSON_AddItemToObject(o, "cont", cont);
            cJSON_AddItemToObject(o, "choice_len", len);
            char *s = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            if (!s) { fprintf(stderr, "dump_tasks: out of memory\n"); return 1; }
            puts(s);
            free(s);
        }
        pb_task_free(t);
    }
    return 0;
}
