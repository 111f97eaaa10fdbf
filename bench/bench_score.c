/* bench_score.c — CPU throughput of `score` (forward + log-softmax NLL) on a ~110M-parameter
 * random LLaMA model, and how much of it is GEMM.
 *
 * Reference measured in the same run: the same GEMMs (every linear layer's shape, same
 * threads) timed alone with cblas_sgemm. score_time / gemm_only_time says how close the
 * whole forward is to its GEMM floor; absolute numbers depend on the machine. */
#include "bench_model.h"
#include "ops.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What `prunebench score` does for one sequence: the forward, then the NLL of every next token. */
static double score_once(const pb_model *m, pb_fwd_state *st, const int32_t *ids, int T, float *logits, double *nll) {
    pb_err err = {0};
    double sum = 0;
    if (pb_model_forward(m, st, ids, 1, T, NULL, logits, false, &err) ||
        pb_logits_nll(logits, ids + 1, T - 1, m->cfg.vocab_size, nll, &sum, &err)) {
        fprintf(stderr, "bench_score: %s\n", err.msg);
        exit(1);
    }
    return sum;
}

/* The GEMMs of one forward, alone: per layer q,k,v,o, gate, up, down, then the LM head. */
static void gemm_only(const pb_model *m, int T, float *x, float *y) {
    const pb_config *c = &m->cfg;
    for (int l = 0; l < c->n_layers; l++) {
        const pb_layer *L = &m->layers[l];
        int q = L->n_heads * L->head_dim, kv = L->n_kv_heads * L->head_dim, f = L->ffn_dim, d = c->dim;
        const struct { const float *w; int in, out; } g[7] = {
            {L->wq, d, q}, {L->wk, d, kv}, {L->wv, d, kv}, {L->wo, q, d}, {L->w_gate, d, f}, {L->w_up, d, f}, {L->w_down, f, d}};
        for (int i = 0; i < 7; i++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, g[i].out, g[i].in, 1.0f, x, g[i].in, g[i].w, g[i].in,
                        0.0f, y, g[i].out);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, c->vocab_size, c->dim, 1.0f, x, c->dim, m->lm_head, c->dim,
                0.0f, y, c->vocab_size);
}

int main(int argc, char **argv) {
    int threads = 0, T = 512, reps = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seq-len") && i + 1 < argc) T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else { fprintf(stderr, "usage: bench_score [--threads N] [--seq-len T] [--reps R]\n"); return 2; }
    }
    if (threads > 0) pb_set_threads(threads);
    pb_err err = {0};
    pb_model *m = pb_bench_model_110m(&err);
    if (!m) { fprintf(stderr, "bench_score: %s\n", err.msg); return 1; }
    const pb_config cfg = m->cfg;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    float *logits = malloc((size_t)T * cfg.vocab_size * sizeof *logits);
    double *nll = malloc((size_t)T * sizeof *nll);
    size_t big = (size_t)T * (cfg.vocab_size > cfg.ffn_dim ? cfg.vocab_size : cfg.ffn_dim);
    float *gx = calloc(big, sizeof *gx), *gy = calloc(big, sizeof *gy);
    pb_fwd_state *st = pb_fwd_state_new();
    if (!ids || !logits || !nll || !gx || !gy || !st) { fprintf(stderr, "bench_score: out of memory\n"); return 1; }
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((t * 7919u + 1) % (unsigned)cfg.vocab_size);
    pb_bench_fill(gx, big, 0);

    score_once(m, st, ids, T, logits, nll); /* warm-up: page in weights, grow scratch buffers */
    memset(&pb_profile, 0, sizeof pb_profile);
    pb_profile.enabled = true;
    double t0 = pb_time_now();
    for (int r = 0; r < reps; r++) score_once(m, st, ids, T, logits, nll);
    double score_s = (pb_time_now() - t0) / reps;
    pb_profile.enabled = false;
    gemm_only(m, T, gx, gy);
    t0 = pb_time_now();
    for (int r = 0; r < reps; r++) gemm_only(m, T, gx, gy);
    double gemm_s = (pb_time_now() - t0) / reps;

    double flops = 2.0 * (double)pb_model_params(m) * T; /* tied head counted once, used once */
    char th[16];
    snprintf(th, sizeof th, "%d", threads);
    printf("bench_score: %lld params (%lld w/o embeddings), seq_len %d, %d reps, threads %s\n",
           (long long)pb_model_params(m), (long long)pb_model_params_no_embed(m), T, reps, threads > 0 ? th : "default");
    printf("\n| what | seconds/seq | tokens/s | GFLOP/s |\n|---|---:|---:|---:|\n");
    printf("| score (forward + NLL) | %.4f | %.1f | %.1f |\n", score_s, T / score_s, flops / score_s * 1e-9);
    printf("| GEMMs alone (reference) | %.4f | %.1f | %.1f |\n", gemm_s, T / gemm_s, flops / gemm_s * 1e-9);
    printf("\nscore / GEMM-only time ratio: %.3f\n", score_s / gemm_s);
    double total = 0;
    for (int i = 0; i < PB_OP_COUNT; i++) total += pb_profile.seconds[i];
    printf("\n| op | share of score time | calls/seq |\n|---|---:|---:|\n");
    for (int i = 0; i < PB_OP_COUNT; i++)
        printf("| %s | %.1f%% | %ld |\n", pb_op_names[i], 100.0 * pb_profile.seconds[i] / (score_s * reps),
               pb_profile.calls[i] / reps);
    printf("| (outside ops: log-softmax NLL, glue) | %.1f%% | |\n", 100.0 * (1 - total / (score_s * reps)));
    printf("\nGEMM share of score time: %.1f%%\n", 100.0 * pb_profile.seconds[PB_OP_LINEAR] / (score_s * reps));
    free(ids); free(logits); free(nll); free(gx); free(gy);
    pb_fwd_state_free(st);
    pb_model_free(m);
    return 0;
}
