/* exp_dump.c — test tool: loads an experiment file with pb_exp_load and prints its expanded
 * runs ("INDEX RUN_ID LABEL", one a line), with --config each run's canonical configuration
 * after it, with --published the published rows. An error is printed as
 * "exp_dump: error: MSG" and exits 1, as `prunebench run --dry-run` does. */
#include "exp.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: exp_dump EXP.yaml [--config] [--published]\n");
        return 2;
    }
    bool config = false, published = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) config = true;
        else if (!strcmp(argv[i], "--published")) published = true;
        else {
            fprintf(stderr, "exp_dump: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    pb_err err = {0};
    pb_exp *e = NULL;
    if (pb_exp_load(argv[1], &e, &err) != 0) {
        fprintf(stderr, "exp_dump: error: %s\n", err.msg);
        return 1;
    }
    printf("experiment %s: %d models, %d methods, %d runs\n", e->name, e->n_models, e->n_methods, e->n_runs);
    for (int i = 0; i < e->n_runs; i++) {
        printf("%d %s %s\n", i, e->runs[i].run_id, e->runs[i].label);
        if (config) printf("%s---\n", e->runs[i].config_yaml);
    }
    if (published && e->published_yaml) printf("published:\n%s", e->published_yaml);
    pb_exp_free(e);
    return 0;
}
