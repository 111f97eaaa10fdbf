/* zeroshot.h — zero-shot multiple-choice accuracy with lm-evaluation-harness semantics.
 *
 * Two layers:
 *  - pb_zs_score: loglikelihoods of token-level requests (context ids, continuation ids), as
 *    lm-eval computes them: input = (ctx + cont)[-(max_len+1):][:-1], the last len(cont)
 *    positions scored, sum of log-softmax. Requests of one question share the forward pass
 *    of their common token prefix (a question's context): it is prefilled once into a KV
 *    cache slot, copied to the other choices' slots, and all continuations run as one batch;
 *    questions with similar prefix lengths are batched together.
 *  - pb_zs_run: a task's documents -> requests (encode whole|separate, optional BOS) ->
 *    acc / acc_norm and their standard errors (../shared/reference/eval-protocol.md). */
#ifndef PB_ZEROSHOT_H
#define PB_ZEROSHOT_H

#include "model.h"
#include "tasks.h"
#include "tokenizer.h"

/* ---- token-level scoring --------------------------------------------------------------- */

typedef struct {
    const int32_t *ctx;   /* (n_ctx) context ids, n_ctx >= 1 */
    const int32_t *cont;  /* (n_cont) continuation ids; n_cont 0 scores 0 */
    int n_ctx, n_cont;
    double ll;            /* out: sum of log p(cont[i] | ...) */
    bool greedy;          /* out: every continuation token is the argmax */
} pb_zs_req;

typedef struct {
    int batch;            /* most sequences in one forward pass (>= 1) */
    bool no_share;        /* no prefix sharing: every request runs its whole input (still
                           * batched with others where it pays; with batch 1, alone): the
                           * baseline a benchmark compares against */
    int64_t kv_bytes;     /* budget for the KV cache (0: 512 MiB) */
    int64_t logits_bytes; /* budget for one pass's logits (0: 256 MiB) */
    double pass_tokens;   /* the scheduler's cost of one forward pass, in positions of work:
                           * 0 = automatic (from the weights' size), < 0 = none (tests, tuning) */
} pb_zs_sched;

typedef struct {
    int64_t passes;         /* forward calls */
    int64_t tokens;         /* positions run through the model, padding included */
    int64_t scored;         /* continuation tokens scored */
} pb_zs_stats;

/* Scores n_req requests; question q owns req[first[q] .. first[q+1]) (first has n_q + 1
 * entries). Identical requests of a question are computed once. progress (optional) is
 * advanced by questions. stats (optional) is added to. */
int pb_zs_score(const pb_model *m, pb_zs_req *req, const int *first, int n_q, const pb_zs_sched *s,
                pb_progress *progress, pb_zs_stats *stats, pb_err *err);

/* ---- tasks ----------------------------------------------------------------------------- */

typedef enum {
    PB_ZS_WHOLE = 0,    /* lm-eval >= 0.4 / shortened-llm _encode_pair: whole string encoded, then split */
    PB_ZS_SEPARATE = 1  /* lm-eval v0.3 / LLM-Pruner: context and continuation encoded apart */
} pb_zs_encode;

typedef struct {
    pb_zs_encode encode;
    bool bos;           /* BOS before the context (in both encodings of whole) */
    int limit;          /* first N documents; <= 0: all */
    pb_zs_sched sched;
    bool progress;      /* pb_progress lines on stderr */
} pb_zs_opts;

typedef struct {
    int line, gold;
    int n_choices;
    double *ll;          /* (n_choices) */
    bool *greedy;        /* (n_choices) */
    int pred, pred_norm; /* argmax of ll, of ll / choice_len (first maximum); pred_norm -1 without acc_norm */
    int32_t **ctx_ids, **cont_ids; /* (n_choices) the encoded request */
    int *n_ctx, *n_cont;
} pb_zs_item;

typedef struct {
    const char *task;
    int n;
    bool has_norm, headline_norm;
    double acc, acc_stderr, acc_norm, acc_norm_stderr; /* NAN where undefined */
    pb_zs_item *items;   /* (n) */
    double seconds;      /* wall time of encoding + scoring */
    pb_zs_stats stats;
    pb_arena arena;      /* owns items */
} pb_zs_result;

int pb_zs_run(const pb_model *m, const pb_tokenizer *tok, const pb_task *t, const pb_zs_opts *o, pb_zs_result *r,
              pb_err *err);
void pb_zs_result_free(pb_zs_result *r);

/* The metric the pruning papers report for a task, and its value. */
const char *pb_zs_headline_metric(const pb_zs_result *r);
double pb_zs_headline(const pb_zs_result *r);

/* lm-eval's mean_stderr: sqrt(var(x, ddof=1) / n); NAN for n < 2. */
double pb_zs_mean_stderr(const double *x, int n);
/* numpy.argmax: the first maximum, or the first NaN if there is one. */
int pb_zs_argmax(const double *x, int n);

#endif
