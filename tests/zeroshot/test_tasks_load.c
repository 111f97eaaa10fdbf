/* test_tasks_load.c — the seven task files load through the dataset registry with exactly
 * the official item counts (BoolQ 3270, PIQA 1838, WinoGrande 1267, ARC-e 2376, ARC-c 1172,
 * OBQA 500, HellaSwag: every item of the bundled 1000-item file), the ARC 3- and 5-choice
 * counts of eval-protocol.md, and sane golds. Skips without ../shared. */
#include "pb_test.h"
#include "tasks.h"

typedef struct {
    const char *name;
    int n, n3, n5, n_gold1; /* n_gold1 < 0: not checked */
    int choices;            /* usual number of choices */
} expect;

int main(void) {
    const char *shared = pb_test_shared_or_skip();
    char data[4096];
    pb_test_join(data, sizeof data, shared, "data");
    const expect ex[] = {
        {"boolq", 3270, 0, 0, 2033, 2}, {"piqa", 1838, 0, 0, -1, 2}, {"hellaswag", 1000, 0, 0, -1, 4},
        {"winogrande", 1267, 0, 0, -1, 2}, {"arc_easy", 2376, 7, 4, -1, 4}, {"arc_challenge", 1172, 4, 3, -1, 4},
        {"openbookqa", 500, 0, 0, -1, 4},
    };
    CHECK(pb_task_count == 7);
    for (size_t k = 0; k < sizeof ex / sizeof ex[0]; k++) {
        pb_task *t = NULL;
        pb_err err = {0};
        if (pb_task_open(ex[k].name, data, &t, &err)) {
            CHECK_MSG(0, "%s: %s", ex[k].name, err.msg);
            continue;
        }
        CHECK_MSG(t->n_docs == ex[k].n, "%s: %d documents, expected %d", ex[k].name, t->n_docs, ex[k].n);
        int n3 = 0, n5 = 0, g1 = 0, other = 0;
        for (int i = 0; i < t->n_docs; i++) {
            const pb_task_doc *d = &t->docs[i];
            n3 += d->n_choices == 3;
            n5 += d->n_choices == 5;
            other += d->n_choices != 3 && d->n_choices != 5 && d->n_choices != ex[k].choices;
            g1 += d->gold == 1;
            CHECK_MSG(d->gold >= 0 && d->gold < d->n_choices, "%s doc %d: gold %d", ex[k].name, i, d->gold);
            CHECK_MSG(d->line == i + 1, "%s doc %d: line %d", ex[k].name, i, d->line);
            for (int c = 0; c < d->n_choices; c++)
                CHECK_MSG(d->cont[c][0] == ' ' && d->ctx[c][0], "%s doc %d choice %d: empty or undelimited", ex[k].name, i, c);
        }
        CHECK_MSG(n3 == ex[k].n3 && n5 == ex[k].n5 && other == 0, "%s: %d 3-choice, %d 5-choice, %d other", ex[k].name,
                  n3, n5, other);
        if (ex[k].n_gold1 >= 0) CHECK_MSG(g1 == ex[k].n_gold1, "%s: %d true answers", ex[k].name, g1);
        pb_task_free(t);
    }
    pb_task *t = NULL;
    pb_err err = {0};
    CHECK(pb_task_open("nosuch", data, &t, &err) == -1 && strstr(err.msg, "unknown task 'nosuch'"));
    return pb_test_done("zeroshot_tasks_load");
}
