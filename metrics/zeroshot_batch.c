/* zeroshot_batch.c — loglikelihood requests scored in shared, batched forward passes.
 *
 * A request's input is lm-eval's (ctx + cont)[-(max_len+1):][:-1]; its last n_cont
 * positions are scored. The requests of one question (its choices) usually share a long
 * token prefix, the context, so a question is a "unit": its prefix of p tokens (p stops one
 * token before the first scored position, so every scored logit comes from the second pass)
 * is prefilled once into a KV cache slot, copied to one slot per choice, and the choices'
 * remaining tokens run as a batch, right-padded (causal attention: padding after a
 * sequence's real tokens cannot change their logits; the padded ids are valid and their
 * logits ignored).
 *
 * How much to batch is decided by a cost model in multiply-adds: linear layers per
 * position, attention per (query, key) pair, and a fixed cost per forward pass that grows
 * with the weights that must stream from memory (large models: a pass over a few positions
 * costs about as much as ~16 positions; a model that fits in cache pays almost nothing):
 *  - within a unit, choices are sorted by length and one joins the current pass while its
 *    padding costs less than a pass of its own (padding wins on large models, separate
 *    passes on tiny ones); all of a unit's slots hold its prefix, and after each pass the
 *    cache is cut back to the prefix (len = p), which restores it without copying again;
 *  - across units: the forward pass needs every sequence at the same cache position, so
 *    units batched together share p = the smallest of their prefixes. Units are sorted by
 *    prefix length and neighbours merge into one prefill and one continuation pass while
 *    that costs less than running them apart. */
#include "zeroshot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A forward pass over a model whose weights do not fit in the CPU caches costs about this
 * many positions of work whatever its size (the weights stream from memory once per pass);
 * measured with bench/bench_eval (110M parameters). Smaller models pay in proportion to
 * their weight bytes over PASS_STREAM_BYTES. */
#define PASS_OVERHEAD_TOKENS 16.0
#define PASS_STREAM_BYTES (256.0 * 1024 * 1024)
/* An exp in the attention softmax costs about this many multiply-adds. */
#define ATT_EXP_COST 16.0

typedef struct {
    int *rows;      /* request indices */
    int n_rows;
    int p;          /* shareable prefix length */
    int t_rest;     /* longest remainder: max(n_in - p) over rows */
    int q;          /* question */
} unit;

typedef struct {
    const pb_model *m;
    pb_zs_req *req;
    int32_t **in;   /* (n_req) input ids */
    int *n_in;      /* (n_req) */
    pb_kvcache *cache;
    pb_fwd_state *st;
    int slots;
    int64_t logits_cap_rows; /* rows of logits one pass may produce */
    int32_t *tgt;            /* (score_rows) targets of a pass, -1 where not scored */
    uint8_t *greedy;         /* (score_rows) */
    size_t score_rows;       /* allocated rows of tgt, nll, greedy */
    int32_t *tok;
    size_t tok_cap;
    double *nll;
    int *grp_rows, *grp_base; /* (n_req) scratch for merged groups */
    pb_zs_stats *stats;
    double c_tok, c_head;    /* cost of a position through the body, through the LM head */
    double c_att, c_pass;    /* cost of one attention (query, key) pair; of one forward pass */
} engine;

static int grow_tok(engine *e, size_t n, pb_err *err) {
    if (n <= e->tok_cap) return 0;
    int32_t *t = realloc(e->tok, n * sizeof *t);
    PB_CHECK_ALLOC(t, err);
    e->tok = t;
    e->tok_cap = n;
    return 0;
}

static int grow_score(engine *e, size_t rows, pb_err *err) {
    if (rows <= e->score_rows) return 0;
    free(e->tgt);
    free(e->nll);
    free(e->greedy);
    e->tgt = malloc(rows * sizeof *e->tgt);
    e->nll = malloc(rows * sizeof *e->nll);
    e->greedy = malloc(rows);
    e->score_rows = e->tgt && e->nll && e->greedy ? rows : 0;
    if (!e->score_rows) return pb_err_set(err, "zeroshot: out of memory for %zu scored rows", rows);
    return 0;
}

/* Scores rows [r0, r1) of unit u, which sit in cache slots 0.. (r1-r0-1) at position p. */
static int run_rest(engine *e, const unit *u, int r0, int r1, int p, pb_err *err) {
    int B = r1 - r0, T = 0;
    for (int r = r0; r < r1; r++) {
        int t = e->n_in[u->rows[r]] - p;
        T = t > T ? t : T;
    }
    PB_TRY(grow_tok(e, (size_t)B * T, err));
    PB_TRY(grow_score(e, (size_t)B * T, err));
    for (size_t i = 0; i < (size_t)B * T; i++) e->tgt[i] = -1;
    for (int r = r0; r < r1; r++) {
        int i = u->rows[r], n = e->n_in[i] - p;
        int32_t *row = e->tok + (size_t)(r - r0) * T;
        memcpy(row, e->in[i] + p, (size_t)n * sizeof *row);
        for (int t = n; t < T; t++) row[t] = e->in[i][e->n_in[i] - 1];
        /* the continuation's tokens are predicted by the rows just before them */
        const pb_zs_req *q = &e->req[i];
        int off = n - q->n_cont;
        memcpy(e->tgt + (size_t)(r - r0) * T + off, q->cont, (size_t)q->n_cont * sizeof *q->cont);
    }
    PB_TRY(pb_model_score(e->m, e->st, e->tok, B, T, e->cache, e->tgt, e->nll, e->greedy, err));
    e->stats->passes++;
    e->stats->tokens += (int64_t)B * T;
    for (int r = r0; r < r1; r++) {
        pb_zs_req *q = &e->req[u->rows[r]];
        size_t off = (size_t)(r - r0) * T + (size_t)(e->n_in[u->rows[r]] - q->n_cont - p);
        double sum = 0; /* in position order, as pb_logits_nll sums */
        q->greedy = true;
        for (int k = 0; k < q->n_cont; k++) {
            sum += e->nll[off + k];
            q->greedy = q->greedy && e->greedy[off + k];
        }
        q->ll = -sum;
        e->stats->scored += q->n_cont;
    }
    return 0;
}

/* Work (multiply-adds, roughly) of one row of t positions continuing a cached prefix of p:
 * linear layers and LM head per position, attention per (query, key) pair. */
static double row_cost(const engine *e, int p, int t) {
    return (double)t * (e->c_tok + e->c_head) + e->c_att * ((double)t * p + (double)t * (t + 1) / 2);
}

/* Work of prefilling k prefixes of p positions (no LM head). */
static double prefill_cost(const engine *e, int k, int p) {
    return p > 0 ? (double)k * (p * e->c_tok + e->c_att * (double)p * (p + 1) / 2) + e->c_pass : 0;
}

/* How many rows, from row r0 of unit u (rows sorted longest first), the next pass takes:
 * a row joins while the slots and the logits budget allow and padding it to the pass's
 * length costs less than a pass of its own. */
static int next_chunk(const engine *e, const unit *u, int p, int r0) {
    int t0 = e->n_in[u->rows[r0]] - p, c = 1;
    while (r0 + c < u->n_rows && c < e->slots && (int64_t)(c + 1) * t0 <= e->logits_cap_rows &&
           row_cost(e, p, t0) - row_cost(e, p, e->n_in[u->rows[r0 + c]] - p) <= e->c_pass)
        c++;
    return c;
}

/* Work of running unit u on its own, with the passes run_group would make. */
static double unit_cost(const engine *e, const unit *u) {
    double w = prefill_cost(e, 1, u->p);
    for (int r0 = 0; r0 < u->n_rows;) {
        int c = next_chunk(e, u, u->p, r0);
        w += c * row_cost(e, u->p, e->n_in[u->rows[r0]] - u->p) + e->c_pass;
        r0 += c;
    }
    return w;
}

/* Work of units merged at prefix p: one prefill, one pass of rows rows padded to t. */
static double merged_cost(const engine *e, int k, int p, int rows, int t) {
    return prefill_cost(e, k, p) + rows * row_cost(e, p, t) + e->c_pass;
}

/* Runs units us[0..k) together at prefix length p (p <= every unit's own prefix). */
static int run_group(engine *e, const unit *us, int k, int p, pb_err *err) {
    pb_kvcache_reset(e->cache);
    if (p > 0) {
        PB_TRY(grow_tok(e, (size_t)k * p, err));
        for (int j = 0; j < k; j++) memcpy(e->tok + (size_t)j * p, e->in[us[j].rows[0]], (size_t)p * sizeof(int32_t));
        PB_TRY(pb_model_forward(e->m, e->st, e->tok, k, p, e->cache, NULL, false, err));
        e->stats->passes++;
        e->stats->tokens += (int64_t)k * p;
    }
    if (k == 1) {
        /* one unit: its rows (longest first) in passes chosen by next_chunk; every slot that
         * a pass uses must hold the prefix */
        const unit *u = &us[0];
        int copied = 1;
        for (int r0 = 0; r0 < u->n_rows;) {
            int c = next_chunk(e, u, p, r0);
            for (; copied < c && p > 0; copied++) PB_TRY(pb_kvcache_copy(e->cache, 0, copied, err));
            for (int s = 0; s < c; s++) PB_TRY(pb_kvcache_truncate(e->cache, s, p, err)); /* back to the prefix */
            PB_TRY(run_rest(e, u, r0, r0 + c, p, err));
            r0 += c;
        }
        return 0;
    }
    /* several units: unit j's prefix is in slot j; its rows go to slots base_j.. (base_j >= j).
     * Copy from the last unit backwards so that no source slot is overwritten before use. */
    int total = 0, *base = e->grp_base, *rows = e->grp_rows;
    for (int j = 0; j < k; j++) { base[j] = total; total += us[j].n_rows; }
    if (p > 0)
        for (int j = k - 1; j >= 0; j--)
            for (int r = us[j].n_rows - 1; r >= 0; r--) PB_TRY(pb_kvcache_copy(e->cache, j, base[j] + r, err));
    /* one batch over all rows: a merged unit view */
    unit all = {rows, total, p, 0, -1};
    for (int j = 0; j < k; j++) memcpy(rows + base[j], us[j].rows, (size_t)us[j].n_rows * sizeof(int));
    return run_rest(e, &all, 0, total, p, err);
}

static int cmp_unit(const void *a, const void *b) {
    const unit *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    if (x->t_rest != y->t_rest) return x->t_rest > y->t_rest ? -1 : 1;
    return x->q - y->q;
}

/* Request i's input ids, built in place: (ctx + cont)[-(L+1):][:-1]. */
static int build_input(const pb_model *m, const pb_zs_req *q, int i, int32_t **in, int *n_in, pb_err *err) {
    int L = m->cfg.max_seq_len, V = m->cfg.vocab_size;
    if (q->n_ctx < 1 || q->n_cont < 0 || (q->n_ctx && !q->ctx) || (q->n_cont && !q->cont))
        return pb_err_set(err, "zeroshot: request %d has no context", i);
    for (int k = 0; k < q->n_ctx + q->n_cont; k++) {
        int32_t id = k < q->n_ctx ? q->ctx[k] : q->cont[k - q->n_ctx];
        if (id < 0 || id >= V)
            return pb_err_set(err, "zeroshot: request %d: token id %d is outside the model's vocabulary [0, %d) "
                              "(a tokenizer that does not belong to the model?)", i, (int)id, V);
    }
    if (q->n_cont > L)
        return pb_err_set(err, "zeroshot: request %d: continuation of %d tokens does not fit the model's context of %d",
                          i, q->n_cont, L);
    int64_t total = (int64_t)q->n_ctx + q->n_cont, keep = total < (int64_t)L + 1 ? total : (int64_t)L + 1;
    int64_t start = total - keep;
    *n_in = (int)(keep - 1);
    *in = malloc((size_t)(*n_in > 0 ? *n_in : 1) * sizeof **in);
    PB_CHECK_ALLOC(*in, err);
    for (int64_t k = 0; k < keep - 1; k++) {
        int64_t s = start + k;
        (*in)[k] = s < q->n_ctx ? q->ctx[s] : q->cont[s - q->n_ctx];
    }
    return 0;
}

static bool same_request(const engine *e, int a, int b) {
    const pb_zs_req *x = &e->req[a], *y = &e->req[b];
    return e->n_in[a] == e->n_in[b] && x->n_cont == y->n_cont &&
           !memcmp(e->in[a], e->in[b], (size_t)e->n_in[a] * sizeof(int32_t)) &&
           !memcmp(x->cont, y->cont, (size_t)x->n_cont * sizeof(int32_t));
}

int pb_zs_score(const pb_model *m, pb_zs_req *req, const int *first, int n_q, const pb_zs_sched *s,
                pb_progress *progress, pb_zs_stats *stats, pb_err *err) {
    pb_zs_stats dummy = {0};
    int n_req = n_q > 0 ? first[n_q] : 0, rc = -1, max_in = 1;
    if (n_q <= 0) return 0;
    if (first[0] != 0) return pb_err_set(err, "zeroshot: request groups must start at 0");
    for (int q = 0; q < n_q; q++)
        if (first[q + 1] < first[q]) return pb_err_set(err, "zeroshot: request groups out of order at %d", q);
    engine e = {.m = m, .req = req, .stats = stats ? stats : &dummy};
    e.in = calloc((size_t)n_req + 1, sizeof *e.in);
    e.n_in = calloc((size_t)n_req + 1, sizeof *e.n_in);
    int *dup = malloc(((size_t)n_req + 1) * sizeof *dup), *unit_rows = malloc(((size_t)n_req + 1) * sizeof(int));
    unit *units = calloc((size_t)n_req + 1, sizeof *units);
    int *left = calloc((size_t)n_q, sizeof *left);
    int n_units = 0, done_q = 0;
    if (!e.in || !e.n_in || !dup || !unit_rows || !units || !left) { pb_err_set(err, "out of memory"); goto out; }

    for (int i = 0; i < n_req; i++) {
        if (build_input(m, &req[i], i, &e.in[i], &e.n_in[i], err)) goto out;
        max_in = e.n_in[i] > max_in ? e.n_in[i] : max_in;
    }
    /* units: one per question (its distinct scored requests), or one per request */
    int nr = 0;
    for (int q = 0; q < n_q; q++) {
        unit *u = NULL;
        for (int i = first[q]; i < first[q + 1]; i++) {
            dup[i] = -1;
            for (int j = first[q]; j < i && dup[i] < 0; j++)
                if (dup[j] < 0 && same_request(&e, i, j)) dup[i] = j;
            if (dup[i] >= 0 || req[i].n_cont == 0) {
                req[i].ll = 0;
                req[i].greedy = true;
                continue;
            }
            if (!u || s->no_share) {
                u = &units[n_units++];
                *u = (unit){unit_rows + nr, 0, e.n_in[i], 0, q};
                left[q]++;
            }
            u->rows[u->n_rows++] = i;
            nr++;
            /* the prefix ends before the first scored position and within the common prefix */
            int lim = e.n_in[i] - req[i].n_cont, p = 0, i0 = u->rows[0];
            while (p < lim && p < u->p && e.in[i][p] == e.in[i0][p]) p++;
            u->p = p;
        }
        if (!left[q] && progress) pb_progress_update(progress, ++done_q);
    }
    for (int j = 0; j < n_units; j++) {
        /* rows longest first (insertion sort: a unit has a handful) */
        unit *u = &units[j];
        for (int r = 1; r < u->n_rows; r++)
            for (int k = r; k > 0 && e.n_in[u->rows[k]] > e.n_in[u->rows[k - 1]]; k--) {
                int x = u->rows[k];
                u->rows[k] = u->rows[k - 1];
                u->rows[k - 1] = x;
            }
        u->t_rest = e.n_in[u->rows[0]] - u->p;
    }
    qsort(units, (size_t)n_units, sizeof *units, cmp_unit);

    /* cache slots within the KV budget; logits rows within the logits budget */
    int64_t per_tok = 0;
    for (int l = 0; l < m->cfg.n_layers; l++)
        if (m->layers[l].has_attn) per_tok += 2 * (int64_t)m->layers[l].n_kv_heads * m->layers[l].head_dim * 4;
    int64_t kv_bytes = s->kv_bytes > 0 ? s->kv_bytes : (int64_t)512 << 20;
    int64_t lg_bytes = s->logits_bytes > 0 ? s->logits_bytes : (int64_t)256 << 20;
    int64_t fit = per_tok > 0 ? kv_bytes / (per_tok * max_in) : s->batch;
    e.slots = (int)(fit < s->batch ? fit : s->batch);
    e.slots = e.slots < 1 ? 1 : e.slots;
    e.logits_cap_rows = lg_bytes / ((int64_t)m->cfg.vocab_size * 4);
    if (e.logits_cap_rows < max_in) e.logits_cap_rows = max_in;
    e.c_tok = (double)pb_model_params_no_embed(m);
    e.c_head = (double)m->cfg.vocab_size * m->cfg.dim;
    for (int l = 0; l < m->cfg.n_layers; l++)   /* q.k and p.v per head, plus the exp */
        if (m->layers[l].has_attn) e.c_att += (double)m->layers[l].n_heads * (2.0 * m->layers[l].head_dim + ATT_EXP_COST);
    double wbytes = 4.0 * (double)pb_model_params(m);
    e.c_pass = PASS_OVERHEAD_TOKENS * (e.c_tok + e.c_head) * (wbytes < PASS_STREAM_BYTES ? wbytes / PASS_STREAM_BYTES : 1);
    if (s->pass_tokens != 0) e.c_pass = s->pass_tokens > 0 ? s->pass_tokens * (e.c_tok + e.c_head) : 0;
    e.grp_rows = malloc(((size_t)n_req + 1) * sizeof *e.grp_rows);
    e.grp_base = malloc(((size_t)n_req + 1) * sizeof *e.grp_base);
    e.st = pb_fwd_state_new();
    if (!e.grp_rows || !e.grp_base || !e.st) { pb_err_set(err, "out of memory"); goto out; }
    if (pb_kvcache_create(&e.cache, m, e.slots, max_in, err)) goto out;

    for (int a = 0; a < n_units;) {
        /* grow the group [a, b) while merging is cheaper than running apart */
        int b = a + 1, p = units[a].p, rows = units[a].n_rows, t = units[a].t_rest;
        double apart = unit_cost(&e, &units[a]);
        while (b < n_units && rows <= e.slots) {
            const unit *u = &units[b];
            int p2 = u->p < p ? u->p : p, rows2 = rows + u->n_rows;
            int t2 = t + (p - p2) > u->t_rest + (u->p - p2) ? t + (p - p2) : u->t_rest + (u->p - p2);
            double apart2 = apart + unit_cost(&e, u);
            if (rows2 > e.slots || (int64_t)rows2 * t2 > e.logits_cap_rows ||
                merged_cost(&e, b + 1 - a, p2, rows2, t2) > apart2)
                break;
            p = p2, rows = rows2, t = t2, apart = apart2;
            b++;
        }
        if (run_group(&e, units + a, b - a, p, err)) goto out;
        for (int j = a; j < b; j++)
            if (--left[units[j].q] == 0 && progress) pb_progress_update(progress, ++done_q);
        a = b;
    }
    for (int i = 0; i < n_req; i++)
        if (dup[i] >= 0) {
            req[i].ll = req[dup[i]].ll;
            req[i].greedy = req[dup[i]].greedy;
        }
    rc = 0;
out:
    if (e.in)
        for (int i = 0; i < n_req; i++) free(e.in[i]);
    free(e.in);
    free(e.n_in);
    free(dup);
    free(unit_rows);
    free(units);
    free(left);
    free(e.tok);
    free(e.tgt);
    free(e.nll);
    free(e.greedy);
    free(e.grp_rows);
    free(e.grp_base);
    pb_fwd_state_free(e.st);
    pb_kvcache_free(e.cache);
    return rc;
}
