/* zeroshot.c — a task's documents -> lm-eval loglikelihood requests -> acc and acc_norm.
 *
 * Encoding (eval-protocol.md section 1):
 *  - whole (lm-eval >= 0.4, shortened-llm's _encode_pair): the context's trailing whitespace
 *    moves to the front of the continuation; ctx_enc = enc(ctx), whole = enc(ctx + cont),
 *    cont_enc = whole[len(ctx_enc):].
 *  - separate (lm-eval v0.3, LLM-Pruner): ctx_enc = enc(ctx), cont_enc = enc(cont), so with
 *    LLaMA's dummy prefix every continuation starts with a lone "▁".
 *  - --bos puts BOS before the context, in ctx_enc and in whole alike; an empty context is
 *    [EOS] (lm-eval's eot token), or [BOS] with --bos.
 * Metrics: acc = argmax ll == gold; acc_norm = argmax ll / len(choice) == gold (code points,
 * no delimiter); numpy's argmax (first maximum); stderr = sqrt(var(ddof=1) / n). */
#include "zeroshot.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int pb_zs_argmax(const double *x, int n) {
    int best = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(x[i])) return i;
        if (x[i] > x[best]) best = i;
    }
    return best;
}

double pb_zs_mean_stderr(const double *x, int n) {
    if (n < 2) return NAN;
    double mu = 0, ss = 0;
    for (int i = 0; i < n; i++) mu += x[i];
    mu /= n;
    for (int i = 0; i < n; i++) ss += (x[i] - mu) * (x[i] - mu);
    return sqrt(ss / (n - 1)) / sqrt((double)n);
}

const char *pb_zs_headline_metric(const pb_zs_result *r) { return r->headline_norm ? "acc_norm" : "acc"; }
double pb_zs_headline(const pb_zs_result *r) { return r->headline_norm ? r->acc_norm : r->acc; }

static int encode(const pb_tokenizer *tok, const char *s, size_t len, bool bos, int32_t **ids, int *n, pb_err *err) {
    size_t k;
    PB_TRY(pb_tok_encode(tok, s, len, bos, ids, &k, err));
    if (k > INT_MAX / 2) {
        free(*ids);
        *ids = NULL;
        return pb_err_set(err, "text of %zu bytes gives too many tokens", len);
    }
    *n = (int)k;
    return 0;
}

static int32_t *dup_ids(const int32_t *x, int n) {
    int32_t *y = malloc((size_t)(n > 0 ? n : 1) * sizeof *y);
    if (y && n) memcpy(y, x, (size_t)n * sizeof *y);
    return y;
}

/* Encodes choice c of doc d into it->ctx_ids[c] / cont_ids[c]. prev_ctx / prev_ids cache the
 * previous choice's context encoding (choices usually share their context). */
static int encode_choice(const pb_tokenizer *tok, const pb_zs_opts *o, const pb_task_doc *d, int c, pb_zs_item *it,
                         const char **prev_ctx, int32_t **prev_ids, int *prev_n, pb_err *err) {
    const char *ctx = d->ctx[c], *cont = d->cont[c];
    size_t lc = strlen(ctx), lk = strlen(cont);
    if (lc == 0) {
        int first = o->bos ? pb_tok_bos(tok) : pb_tok_eos(tok);
        if (first < 0) return pb_err_set(err, "empty context and the tokenizer has no %s token", o->bos ? "BOS" : "EOS");
        it->ctx_ids[c] = dup_ids((const int32_t[]){first}, 1);
        PB_CHECK_ALLOC(it->ctx_ids[c], err);
        it->n_ctx[c] = 1;
        return encode(tok, cont, lk, false, &it->cont_ids[c], &it->n_cont[c], err);
    }
    /* whole: the context loses its trailing whitespace (it joins the continuation) */
    size_t keep = o->encode == PB_ZS_WHOLE ? pb_py_rstrip_len(ctx, lc) : lc;
    if (*prev_ctx != ctx) {
        free(*prev_ids);
        *prev_ids = NULL;
        *prev_ctx = NULL;
        PB_TRY(encode(tok, ctx, keep, o->bos, prev_ids, prev_n, err));
        *prev_ctx = ctx;
    }
    if (*prev_n == 0) return pb_err_set(err, "choice %d: the context is only whitespace", c);
    it->ctx_ids[c] = dup_ids(*prev_ids, *prev_n);
    PB_CHECK_ALLOC(it->ctx_ids[c], err);
    it->n_ctx[c] = *prev_n;
    if (o->encode == PB_ZS_SEPARATE) return encode(tok, cont, lk, false, &it->cont_ids[c], &it->n_cont[c], err);

    /* ctx + moved whitespace + cont is the original ctx + cont */
    char *s = malloc(lc + lk + 1);
    PB_CHECK_ALLOC(s, err);
    memcpy(s, ctx, lc);
    memcpy(s + lc, cont, lk + 1);
    int32_t *whole;
    int nw;
    int rc = encode(tok, s, lc + lk, o->bos, &whole, &nw, err);
    free(s);
    PB_TRY(rc);
    int nk = nw > *prev_n ? nw - *prev_n : 0;
    it->cont_ids[c] = dup_ids(whole + (nw > *prev_n ? *prev_n : nw), nk);
    free(whole);
    PB_CHECK_ALLOC(it->cont_ids[c], err);
    it->n_cont[c] = nk;
    return 0;
}

static int alloc_item(pb_zs_item *it, const pb_task_doc *d, pb_arena *a, pb_err *err) {
    size_t n = (size_t)d->n_choices;
    it->line = d->line;
    it->gold = d->gold;
    it->n_choices = d->n_choices;
    it->ll = pb_arena_alloc_n(a, n, sizeof *it->ll);
    it->greedy = pb_arena_alloc_n(a, n, sizeof *it->greedy);
    it->ctx_ids = pb_arena_alloc_n(a, n, sizeof *it->ctx_ids);
    it->cont_ids = pb_arena_alloc_n(a, n, sizeof *it->cont_ids);
    it->n_ctx = pb_arena_alloc_n(a, n, sizeof *it->n_ctx);
    it->n_cont = pb_arena_alloc_n(a, n, sizeof *it->n_cont);
    if (!it->ll || !it->greedy || !it->ctx_ids || !it->cont_ids || !it->n_ctx || !it->n_cont)
        return pb_err_set(err, "out of memory");
    return 0;
}

/* Encodes every chosen document, in parallel (the tokenizer is read-only). */
static int encode_all(const pb_tokenizer *tok, const pb_task *t, const pb_zs_opts *o, pb_zs_result *r, pb_err *err) {
    int bad = INT_MAX;
#pragma omp parallel
    {
        const char *prev_ctx = NULL;
        int32_t *prev_ids = NULL;
        int prev_n = 0;
        pb_err e = {0};
#pragma omp for schedule(dynamic, 8)
        for (int i = 0; i < r->n; i++) {
            const pb_task_doc *d = &t->docs[i];
            int rc = 0;
            for (int c = 0; c < d->n_choices && !rc; c++)
                rc = encode_choice(tok, o, d, c, &r->items[i], &prev_ctx, &prev_ids, &prev_n, &e);
            if (rc) {
#pragma omp critical(pb_zs_encode_err)
                if (i < bad) {
                    bad = i;
                    *err = e;
                    pb_err_prefix(err, "%s:%d: ", t->docs_path, d->line);
                }
            }
        }
        free(prev_ids);
    }
    return bad == INT_MAX ? 0 : -1;
}

int pb_zs_run(const pb_model *m, const pb_tokenizer *tok, const pb_task *t, const pb_zs_opts *o, pb_zs_result *r,
              pb_err *err) {
    memset(r, 0, sizeof *r);
    pb_arena_init(&r->arena, (size_t)1 << 20);
    r->task = t->name;
    r->has_norm = t->has_norm;
    r->headline_norm = t->headline_norm;
    r->acc = r->acc_stderr = r->acc_norm = r->acc_norm_stderr = NAN;
    r->n = o->limit > 0 && o->limit < t->n_docs ? o->limit : t->n_docs;
    if (r->n <= 0) return pb_err_set(err, "%s: no documents", t->docs_path);
    if (o->bos && pb_tok_bos(tok) < 0) return pb_err_set(err, "--bos: the tokenizer has no BOS token");
    if (o->sched.batch < 1) return pb_err_set(err, "zeroshot: batch must be at least 1");
    double t0 = pb_time_now();
    r->items = pb_arena_alloc_n(&r->arena, (size_t)r->n, sizeof *r->items);
    PB_CHECK_ALLOC(r->items, err);
    int n_req = 0;
    for (int i = 0; i < r->n; i++) {
        PB_TRY(alloc_item(&r->items[i], &t->docs[i], &r->arena, err));
        if (n_req > INT_MAX - t->docs[i].n_choices) return pb_err_set(err, "%s: too many choices", t->docs_path);
        n_req += t->docs[i].n_choices;
    }
    PB_TRY(encode_all(tok, t, o, r, err));
    /* a tokenizer that does not belong to the model shows here first: name the document */
    for (int i = 0; i < r->n; i++)
        for (int c = 0; c < r->items[i].n_choices; c++)
            for (int side = 0; side < 2; side++) {
                const int32_t *ids = side ? r->items[i].cont_ids[c] : r->items[i].ctx_ids[c];
                int n = side ? r->items[i].n_cont[c] : r->items[i].n_ctx[c];
                for (int k = 0; k < n; k++)
                    if (ids[k] < 0 || ids[k] >= m->cfg.vocab_size)
                        return pb_err_set(err, "%s:%d: the tokenizer gives id %d, outside the model's vocabulary "
                                          "[0, %d) (a tokenizer of another model?)", t->docs_path,
                                          r->items[i].line, (int)ids[k], m->cfg.vocab_size);
            }

    pb_zs_req *req = calloc((size_t)n_req, sizeof *req);
    int *first = malloc(((size_t)r->n + 1) * sizeof *first);
    double *acc = malloc((size_t)r->n * sizeof *acc), *accn = malloc((size_t)r->n * sizeof *accn);
    double *v = NULL;
    int rc = -1, k = 0, max_choices = 1;
    if (!req || !first || !acc || !accn) { pb_err_set(err, "out of memory"); goto out; }
    for (int i = 0; i < r->n; i++) {
        pb_zs_item *it = &r->items[i];
        first[i] = k;
        for (int c = 0; c < it->n_choices; c++, k++)
            req[k] = (pb_zs_req){it->ctx_ids[c], it->cont_ids[c], it->n_ctx[c], it->n_cont[c], 0, false};
        max_choices = it->n_choices > max_choices ? it->n_choices : max_choices;
    }
    first[r->n] = k;
    pb_progress prog;
    if (o->progress) pb_progress_start(&prog, t->name, "items", r->n);
    rc = pb_zs_score(m, req, first, r->n, &o->sched, o->progress ? &prog : NULL, &r->stats, err);
    if (o->progress) pb_progress_end(&prog);
    if (rc) {
        pb_err_prefix(err, "%s: ", t->name);
        goto out;
    }
    rc = -1;
    v = malloc((size_t)max_choices * sizeof *v);
    if (!v) { pb_err_set(err, "out of memory"); goto out; }
    for (int i = 0; i < r->n; i++) {
        pb_zs_item *it = &r->items[i];
        const pb_task_doc *d = &t->docs[i];
        for (int c = 0; c < it->n_choices; c++) {
            it->ll[c] = req[first[i] + c].ll;
            it->greedy[c] = req[first[i] + c].greedy;
            v[c] = it->ll[c] / (double)d->choice_len[c]; /* IEEE: a 0-length choice gives -inf or NaN, as numpy */
        }
        it->pred = pb_zs_argmax(it->ll, it->n_choices);
        it->pred_norm = t->has_norm ? pb_zs_argmax(v, it->n_choices) : -1;
        acc[i] = it->pred == it->gold;
        accn[i] = it->pred_norm == it->gold;
    }
    double sa = 0, sn = 0;
    for (int i = 0; i < r->n; i++) sa += acc[i], sn += accn[i];
    r->acc = sa / r->n;
    r->acc_stderr = pb_zs_mean_stderr(acc, r->n);
    if (t->has_norm) {
        r->acc_norm = sn / r->n;
        r->acc_norm_stderr = pb_zs_mean_stderr(accn, r->n);
    }
    r->seconds = pb_time_now() - t0;
    rc = 0;
out:
    free(req);
    free(first);
    free(acc);
    free(accn);
    free(v);
    return rc;
}

void pb_zs_result_free(pb_zs_result *r) {
    if (!r) return;
    for (int i = 0; r->items && i < r->n; i++)
        for (int c = 0; c < r->items[i].n_choices; c++) {
            free(r->items[i].ctx_ids[c]);
            free(r->items[i].cont_ids[c]);
        }
    pb_arena_free(&r->arena);
    memset(r, 0, sizeof *r);
}
