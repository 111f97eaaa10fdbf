/* bench_eval.c — CPU throughput of the evaluation metrics on a ~110M-parameter random LLaMA
 * model with the real LLaMA tokenizer (vocabulary 32000): perplexity tokens/s on WikiText-2
 * test (the LLM-Pruner protocol: 128-token windows, a fixed number of them) and zero-shot
 * items/s on the papers' tasks in three scheduling modes timed on the same requests in the
 * same run: shared-context batching (the default), no prefix sharing (pb_zs_sched.no_share),
 * and every choice scored alone in its own forward pass (lm-eval with batch size 1).
 *
 * The numbers that transfer between machines are the ratios (alone / shared time, positions
 * run through the model); absolute rates depend on the CPU and its load. Weights are random:
 * accuracies are meaningless here, only the work is real. The modes compute the same
 * loglikelihoods; the largest difference between them is printed as a check. */
#include "bench_model.h"
#include "pb_data.h"
#include "ppl.h"
#include "zeroshot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, const pb_err *err) {
    fprintf(stderr, "bench_eval: %s: %s\n", what, err->msg);
    exit(1);
}

static pb_model *make_model(void) {
    pb_err err = {0};
    pb_model *m = pb_bench_model_110m(&err);
    if (!m) die("model", &err);
    return m;
}

enum { SHARED, NO_SHARE, ALONE, N_MODES };
static const char *const mode_names[N_MODES] = {"shared", "no-share", "alone"};

typedef struct {
    const char *task;
    int n, n_req;
    double run_s;                /* pb_zs_run (encoding + shared scoring), for items/s end to end */
    double s[N_MODES];           /* seconds of pb_zs_score alone, same requests in every mode */
    pb_zs_stats st[N_MODES];     /* forward passes and positions run */
    double max_dll;              /* largest |ll - ll_shared| over every choice and mode */
} zs_row;

/* Scores req in one mode: SHARED and NO_SHARE as one pb_zs_score call (prefix sharing on /
 * off, batching across questions either way), ALONE as one call per request with batch 1,
 * as lm-eval runs with batch size 1 (Shortened LLaMA's setting). */
static double score_mode(const pb_model *m, pb_zs_req *req, const int *first, int n_q, int batch, int mode,
                         pb_zs_stats *st) {
    pb_err err = {0};
    pb_zs_sched s = {.batch = mode == ALONE ? 1 : batch, .no_share = mode != SHARED};
    double t0 = pb_time_now();
    if (mode != ALONE) {
        if (pb_zs_score(m, req, first, n_q, &s, NULL, st, &err)) die(mode_names[mode], &err);
    } else {
        const int one[2] = {0, 1};
        for (int i = 0; i < first[n_q]; i++)
            if (pb_zs_score(m, &req[i], one, 1, &s, NULL, st, &err)) die(mode_names[mode], &err);
    }
    return pb_time_now() - t0;
}

static void zs_bench(const pb_model *m, const pb_tokenizer *tok, const char *data_dir, const char *task, int limit,
                     int batch, zs_row *row) {
    pb_err err = {0};
    pb_task *t = NULL;
    if (pb_task_open(task, data_dir, &t, &err)) die(task, &err);
    pb_zs_opts o = {.encode = PB_ZS_WHOLE, .limit = limit, .sched = {.batch = batch}, .progress = true};
    pb_zs_result r;
    if (pb_zs_run(m, tok, t, &o, &r, &err)) die(task, &err);
    memset(row, 0, sizeof *row);
    row->task = task;
    row->n = r.n;
    row->run_s = r.seconds;
    int n_req = 0;
    for (int i = 0; i < r.n; i++) n_req += r.items[i].n_choices;
    row->n_req = n_req;
    pb_zs_req *req = calloc((size_t)n_req, sizeof *req);
    int *first = malloc(((size_t)r.n + 1) * sizeof *first);
    if (!req || !first) { fprintf(stderr, "bench_eval: out of memory\n"); exit(1); }
    for (int mode = 0; mode < N_MODES; mode++) {
        int k = 0;
        for (int i = 0; i < r.n; i++) {
            const pb_zs_item *it = &r.items[i];
            first[i] = k;
            for (int c = 0; c < it->n_choices; c++, k++)
                req[k] = (pb_zs_req){it->ctx_ids[c], it->cont_ids[c], it->n_ctx[c], it->n_cont[c], 0, false};
        }
        first[r.n] = k;
        fprintf(stderr, "bench_eval: %s: scoring %d requests (%s)\n", task, n_req, mode_names[mode]);
        row->s[mode] = score_mode(m, req, first, r.n, batch, mode, &row->st[mode]);
        k = 0;
        for (int i = 0; i < r.n; i++)
            for (int c = 0; c < r.items[i].n_choices; c++, k++) {
                double d = fabs(req[k].ll - r.items[i].ll[c]);
                row->max_dll = d > row->max_dll || isnan(d) ? d : row->max_dll;
            }
    }
    free(req);
    free(first);
    pb_zs_result_free(&r);
    pb_task_free(t);
}

int main(int argc, char **argv) {
    int threads = 0, windows = 16, limit = 16, batch = 32;
    const char *data_dir = NULL, *tasks = "boolq,piqa,hellaswag,winogrande,arc_easy,arc_challenge,openbookqa";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--windows") && i + 1 < argc) windows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--limit") && i + 1 < argc) limit = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--data-dir") && i + 1 < argc) data_dir = argv[++i];
        else if (!strcmp(argv[i], "--tasks") && i + 1 < argc) tasks = argv[++i];
        else {
            fprintf(stderr, "usage: bench_eval [--threads N] [--windows N] [--limit N] [--batch N] [--tasks LIST] "
                            "[--data-dir DIR]\n");
            return 2;
        }
    }
    if (windows < 1 || limit < 1 || batch < 1) { fprintf(stderr, "bench_eval: sizes must be >= 1\n"); return 2; }
    if (threads > 0) pb_set_threads(threads);
    pb_err err = {0};
    char *dir = NULL;
    if (pb_data_dir(data_dir, &dir, &err)) die("data folder", &err);
    char *tok_path = pb_path_join(dir, "tokenizer/tokenizer.model");
    pb_tokenizer *tok = NULL;
    if (!tok_path || pb_tok_load(tok_path, &tok, &err)) die("tokenizer", &err);
    pb_model *m = make_model();

    /* ---- perplexity: WikiText-2 test, tokenized once, the first `windows` windows of 128 */
    pb_text_set ts;
    if (pb_data_text(dir, "wikitext2", "test", NULL, false, &ts, &err)) die("wikitext2", &err);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    double t0 = pb_time_now();
    if (pb_tok_encode(tok, ts.text, ts.len, pb_tok_default_add_bos(tok), &ids, &n_ids, &err)) die("encode", &err);
    double tok_s = pb_time_now() - t0;
    pb_ppl_opts po = {.seq_len = 128, .max_windows = windows, .label = "ppl wikitext2"};
    pb_ppl_result pr;
    if (pb_ppl_ids(m, ids, n_ids, pb_tok_bos(tok), &po, &pr, &err)) die("ppl", &err);

    /* ---- zero-shot, each task shared and alone */
    int n_tasks = 1;
    for (const char *p = tasks; *p; p++) n_tasks += *p == ',';
    zs_row *rows = calloc((size_t)n_tasks, sizeof *rows);
    char *list = strdup(tasks);
    if (!rows || !list) { fprintf(stderr, "bench_eval: out of memory\n"); return 1; }
    int k = 0;
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save))
        zs_bench(m, tok, dir, name, limit, batch, &rows[k++]);
    n_tasks = k;

    char th[16];
    snprintf(th, sizeof th, "%d", threads);
    printf("bench_eval: %lld params (%lld w/o embeddings), vocab %d, threads %s, zero-shot batch %d\n",
           (long long)pb_model_params(m), (long long)pb_model_params_no_embed(m), m->cfg.vocab_size,
           threads > 0 ? th : "default", batch);
    printf("\n## Perplexity (WikiText-2 test, %lld-token stream, windows of 128)\n\n", (long long)n_ids);
    printf("| what | windows | tokens | seconds | tokens/s |\n|---|---:|---:|---:|---:|\n");
    printf("| tokenize the whole test set | | %zu | %.3f | %.0f |\n", n_ids, tok_s, n_ids / tok_s);
    printf("| ppl (predicted tokens) | %lld | %lld | %.3f | %.1f |\n", (long long)pr.windows, (long long)pr.tokens,
           pr.seconds, pr.tokens / pr.seconds);
    printf("| ppl (input tokens) | %lld | %lld | %.3f | %.1f |\n", (long long)pr.windows, (long long)pr.windows * 128,
           pr.seconds, pr.windows * 128 / pr.seconds);

    printf("\n## Zero-shot (first %d items per task, encode whole; scoring time only, same requests in each mode)\n\n",
           limit);
    printf("modes: shared = a question's context run once and continued per choice, questions batched "
           "(batch %d); no-share = every request run whole, batched; alone = one request per forward pass\n\n",
           batch);
    printf("| task | items | requests | items/s shared | items/s no-share | items/s alone | alone/shared time "
           "| no-share/shared time | positions shared | positions alone | max abs ll diff |\n"
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    double sum_s[N_MODES] = {0}, pos[N_MODES] = {0}, run_s = 0;
    int items = 0, reqs = 0;
    for (int i = 0; i < n_tasks; i++) {
        const zs_row *r = &rows[i];
        printf("| %s | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %lld | %lld | %.1e |\n", r->task, r->n, r->n_req,
               r->n / r->s[SHARED], r->n / r->s[NO_SHARE], r->n / r->s[ALONE], r->s[ALONE] / r->s[SHARED],
               r->s[NO_SHARE] / r->s[SHARED], (long long)r->st[SHARED].tokens, (long long)r->st[ALONE].tokens,
               r->max_dll);
        for (int mo = 0; mo < N_MODES; mo++) sum_s[mo] += r->s[mo], pos[mo] += (double)r->st[mo].tokens;
        run_s += r->run_s;
        items += r->n, reqs += r->n_req;
    }
    printf("| **all** | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f | |\n", items, reqs,
           items / sum_s[SHARED], items / sum_s[NO_SHARE], items / sum_s[ALONE], sum_s[ALONE] / sum_s[SHARED],
           sum_s[NO_SHARE] / sum_s[SHARED], pos[SHARED], pos[ALONE]);
    printf("\nzero-shot end to end (pb_zs_run: encoding + shared scoring): %.2f items/s\n", items / run_s);
    printf("shared-context batching saves: time alone / shared = %.2f, no-share / shared = %.2f; "
           "positions run alone / shared = %.2f\n",
           sum_s[ALONE] / sum_s[SHARED], sum_s[NO_SHARE] / sum_s[SHARED], pos[ALONE] / pos[SHARED]);
    printf("model throughput, positions/s: ppl %.1f, zero-shot shared %.1f, no-share %.1f, alone %.1f\n",
           pr.windows * 128 / pr.seconds, pos[SHARED] / sum_s[SHARED], pos[NO_SHARE] / sum_s[NO_SHARE],
           pos[ALONE] / sum_s[ALONE]);

    free(rows);
    free(list);
    free(ids);
    pb_text_set_free(&ts);
    pb_tok_free(tok);
    pb_model_free(m);
    free(tok_path);
    free(dir);
    return 0;
}
