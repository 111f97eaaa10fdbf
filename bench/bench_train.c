/* bench_train.c — CPU training speed and memory on the ~110M-parameter random LLaMA
 * (bench_model.h): LoRA fine-tuning steps, full-parameter steps, and Taylor block
 * importance scoring, each against references measured in the same run.
 *
 * Every configuration runs in its own forked process, so that its peak resident memory
 * (getrusage of the child) is its own. References: a process that only builds the model
 * (the memory floor: the model's own size) and the forward pass alone over the same
 * micro-batch (the speed floor; a training step costs about three forwards: forward,
 * recomputation, backward with two GEMMs per linear layer).
 *
 *   bench_train [THREADS] [MICRO_BATCH] [SEQ_LEN]    (defaults 2, 4, 256: the papers' cutoff) */
#include "bench_model.h"
#include "grad.h"
#include "lora.h"
#include "ops.h"
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum { CFG_MODEL, CFG_FORWARD, CFG_LORA, CFG_FULL, CFG_TAYLOR, CFG_N };
static const char *const cfg_names[CFG_N] = {"model only (memory floor)", "forward only (speed floor)",
                                             "LoRA r8 step (q,k,v,o,gate,up,down)", "full-parameter step",
                                             "Taylor block scoring (10 x 128)"};

typedef struct {
    double tok_s;       /* tokens per second (0: not a speed measurement) */
    double grad_bytes;  /* the backward driver's scratch (pb_grad_state_bytes) */
} child_result;

static void die(const char *what, const pb_err *err) {
    fprintf(stderr, "bench_train: %s: %s\n", what, err->msg);
    exit(1);
}

/* full-parameter training: gradients land in one model-sized buffer */
typedef struct {
    float *g;
    size_t *off;   /* (n_layers + 1) * PB_G_COUNT */
} full_ctx;

static int add_grad(void *ctx, const pb_grad_event *ev, pb_err *err) {
    full_ctx *c = ctx;
    (void)err;
    float *g = c->g + c->off[(ev->layer + 1) * PB_G_COUNT + ev->kind];
    for (size_t i = 0; i < (size_t)ev->rows * ev->cols; i++) g[i] += ev->g[i];
    return 0;
}

static double taylor_sum;
static int taylor(void *ctx, const pb_grad_event *ev, pb_err *err) {
    (void)ctx;
    (void)err;
    for (size_t i = 0; i < (size_t)ev->rows * ev->cols; i++) taylor_sum += fabsf(ev->w[i] * ev->g[i]);
    return 0;
}

static child_result run_config(int cfg, int threads, int B, int T) {
    pb_err err = {0};
    pb_set_threads(threads);
    pb_model *m = pb_bench_model_110m(&err);
    if (!m) die("model", &err);
    child_result r = {0};
    if (cfg == CFG_MODEL) return r;
    if (cfg == CFG_TAYLOR) B = 10, T = 128;   /* Shortened LLaMA's calibration: 10 samples of 128 */
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)B * T), *tgt = malloc(sizeof(int32_t) * (size_t)B * T);
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)((i * 7919u) % 32000u);
    pb_batch_next_token(tok, B, T, tgt);
    pb_batch mb = {tok, tgt, B, T};
    int reps = 2;
    double t0 = 0;
    if (cfg == CFG_FORWARD) {
        pb_fwd_state *st = pb_fwd_state_new();
        float *logits = malloc(sizeof(float) * (size_t)B * T * 32000);
        for (int i = 0; i <= reps; i++) {
            if (i == 1) t0 = pb_time_now();   /* the first pass warms caches and allocations */
            if (pb_model_forward(m, st, tok, B, T, NULL, logits, false, &err)) die("forward", &err);
        }
        r.tok_s = (double)B * T * reps / (pb_time_now() - t0);
        return r;
    }
    pb_grad_state *gs = pb_grad_state_new();
    pb_param *ps = NULL;
    int n_ps = 0;
    pb_grad_opts o = {0};
    full_ctx fc = {0};
    if (cfg == CFG_LORA) {
        pb_lora *l;
        if (pb_lora_create(&l, m, 8, 16.0f, 0.05f, (1u << PB_LORA_N) - 1, 1, true, &err)) die("lora", &err);
        l->training = true;
        m->lora = l;
        ps = calloc((size_t)2 * m->cfg.n_layers * PB_LORA_N, sizeof *ps);
        for (int i = 0; i < l->n_layers; i++)
            for (int t = 0; t < PB_LORA_N; t++) {
                pb_lora_pair *p = &l->ad[i][t];
                size_t na = (size_t)l->rank * p->in, nb = (size_t)p->out * l->rank;
                ps[n_ps++] = (pb_param){p->A, p->dA, calloc(na, 4), calloc(na, 4), na, true};
                ps[n_ps++] = (pb_param){p->B, p->dB, calloc(nb, 4), calloc(nb, 4), nb, true};
            }
    } else if (cfg == CFG_FULL) {
        /* pass 0 lays the tensors out in one gradient buffer, pass 1 makes the parameters */
        size_t total = 0;
        fc.off = calloc((size_t)(m->cfg.n_layers + 1) * PB_G_COUNT, sizeof(size_t));
        ps = calloc((size_t)(m->cfg.n_layers + 1) * PB_G_COUNT, sizeof *ps);
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) fc.g = calloc(total, sizeof(float));
            for (int l = -1; l < m->cfg.n_layers; l++)
                for (int k = 0; k < PB_G_INPUT; k++) {
                    int rr, cc;
                    float *w = (k <= PB_G_FINAL_NORM) == (l < 0) ? pb_grad_tensor(m, (pb_grad_kind)k, l, &rr, &cc)
                                                                 : NULL;
                    if (!w) continue;
                    size_t n = (size_t)rr * cc, at = (size_t)(l + 1) * PB_G_COUNT + k;
                    if (pass == 0) {
                        fc.off[at] = total;
                        total += n;
                    } else {
                        ps[n_ps++] = (pb_param){w, fc.g + fc.off[at], calloc(n, 4), calloc(n, 4), n, cc > 1};
                    }
                }
        }
        o = (pb_grad_opts){.want = PB_G_ALL_WEIGHTS, .consumer = add_grad, .ctx = &fc};
    } else {
        o = (pb_grad_opts){.want = PB_G_BLOCK, .consumer = taylor};
    }
    pb_adamw ad = PB_ADAMW_DEFAULTS;
    for (int i = 0; i <= reps; i++) {
        if (i == 1) t0 = pb_time_now();
        if (m->lora) m->lora->dropout_key = (uint64_t)i;
        if (pb_grad_run(m, gs, &mb, 1, &o, NULL, NULL, &err)) die("backward", &err);
        if (n_ps) {
            pb_clip_grad_norm(ps, n_ps, 1.0);
            pb_adamw_step(&ad, ps, n_ps, 1e-4, i + 1);
            for (int k = 0; k < n_ps; k++) memset(ps[k].g, 0, ps[k].n * sizeof(float));
        }
    }
    r.tok_s = (double)B * T * reps / (pb_time_now() - t0);
    r.grad_bytes = (double)pb_grad_state_bytes(gs);
    return r;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, B = argc > 2 ? atoi(argv[2]) : 4, T = argc > 3 ? atoi(argv[3]) : 256;
    child_result res[CFG_N];
    double rss[CFG_N];
    for (int c = 0; c < CFG_N; c++) {
        int fd[2];
        if (pipe(fd) != 0) return 1;
        pid_t pid = fork();
        if (pid == 0) {
            child_result r = run_config(c, threads, B, T);
            if (write(fd[1], &r, sizeof r) != (ssize_t)sizeof r) _exit(1);
            _exit(0);
        }
        close(fd[1]);
        int status;
        struct rusage ru;
        ssize_t got = read(fd[0], &res[c], sizeof res[c]);
        close(fd[0]);
        if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) || got != sizeof res[c]) {
            fprintf(stderr, "bench_train: configuration '%s' failed\n", cfg_names[c]);
            return 1;
        }
        rss[c] = (double)ru.ru_maxrss * 1024.0;   /* kilobytes on Linux */
    }
    pb_err err = {0};
    pb_model *m = pb_bench_model_110m(&err);
    double model_bytes = (double)pb_model_params(m) * 4.0;
    printf("bench_train: %.1fM-parameter random LLaMA (%.0f MB fp32), %d threads, micro-batch %d x %d tokens\n\n",
           (double)pb_model_params(m) / 1e6, model_bytes / 1e6, threads, B, T);
    printf("| configuration | tokens/s | / forward | peak RSS MB | RSS / model size | backward scratch MB |\n");
    printf("|---|---:|---:|---:|---:|---:|\n");
    for (int c = 0; c < CFG_N; c++) {
        char ts[32] = "-", rel[32] = "-", gb[32] = "-";
        if (res[c].tok_s > 0) snprintf(ts, sizeof ts, "%.0f", res[c].tok_s);
        if (res[c].tok_s > 0 && c != CFG_FORWARD && c != CFG_TAYLOR)
            snprintf(rel, sizeof rel, "%.2f", res[c].tok_s / res[CFG_FORWARD].tok_s);
        if (res[c].grad_bytes > 0) snprintf(gb, sizeof gb, "%.0f", res[c].grad_bytes / 1e6);
        printf("| %s | %s | %s | %.0f | %.2f | %s |\n", cfg_names[c], ts, rel, rss[c] / 1e6, rss[c] / model_bytes, gb);
    }
    int64_t max_layer = 0;
    for (int l = 0; l < m->cfg.n_layers; l++)
        max_layer = pb_layer_params(m, l) > max_layer ? pb_layer_params(m, l) : max_layer;
    printf("\nTaylor scoring memory above the model: %.0f MB (one layer of fp32 gradients is %.0f MB; the\n"
           "rest is activations of 10 x 128 tokens and the %d-entry vocabulary's logits).\n",
           (rss[CFG_TAYLOR] - rss[CFG_MODEL]) / 1e6, (double)max_layer * 4 / 1e6, m->cfg.vocab_size);
    pb_model_free(m);
    return 0;
}
