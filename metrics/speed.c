/* speed.c — greedy generation with the KV cache, timed, and the peak memory it needs
 * (see speed.h for the protocol). */
#include "speed.h"
#include "ops.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

const char *pb_speed_device_name(pb_speed_device dev) {
    switch (dev) {
    case PB_SPEED_CPU: return "cpu";
    case PB_SPEED_CUDA: return "cuda";
    }
    return "unknown";
}

pb_speed_device pb_speed_device_of(const pb_model *m) {
    return pb_model_on_host(m) ? PB_SPEED_CPU : PB_SPEED_CUDA;
}

/* The CUDA backend's memory counters (one set for all its tables; NULL when absent). */
static const pb_ops *cuda_ops(void) {
    pb_err e = {0};
    return pb_ops_get("cuda", NULL, &e);
}

/* ---- the decode path ------------------------------------------------------------------ */

int pb_speed_gen_init(pb_speed_gen *g, const pb_model *m, int batch, int max_len, pb_err *err) {
    memset(g, 0, sizeof *g);
    g->m = m;
    g->batch = batch;
    g->max_len = max_len;
    if (pb_kvcache_create(&g->cache, m, batch, max_len, err)) return -1;
    g->st = pb_fwd_state_new();
    g->logits = pb_calloc((size_t)batch * (size_t)m->cfg.vocab_size, sizeof(float));
    g->step = pb_calloc((size_t)batch, sizeof(int32_t));
    if (!g->st || !g->logits || !g->step) {
        pb_speed_gen_free(g);
        return pb_err_set(err, "bench: out of memory for batch %d (vocabulary %d)", batch, m->cfg.vocab_size);
    }
    return 0;
}

void pb_speed_gen_free(pb_speed_gen *g) {
    pb_kvcache_free(g->cache);
    pb_fwd_state_free(g->st);
    free(g->logits);
    free(g->step);
    memset(g, 0, sizeof *g);
}

/* Ties go to the lowest id, as in `prunebench generate` and llama2.c, so that both paths
 * produce the same tokens. */
static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int pb_speed_gen_run(pb_speed_gen *g, const int32_t *prompt, int P, int G, int32_t *out, pb_speed_timing *t,
                     pb_err *err) {
    if (P < 1 || G < 1 || P > g->max_len - G)
        return pb_err_set(err, "bench: prompt %d + generation %d tokens do not fit the cache of %d", P, G, g->max_len);
    const int B = g->batch, V = g->m->cfg.vocab_size;
    pb_kvcache_reset(g->cache);
    double t0 = pb_time_now();
    PB_TRY(pb_model_forward(g->m, g->st, prompt, B, P, g->cache, g->logits, true, err));
    for (int b = 0; b < B; b++) out[(size_t)b * G] = argmax(g->logits + (size_t)b * V, V);
    double t1 = pb_time_now();
    /* a run of a 7B model takes minutes on a CPU: progress per step, at the cost of a
     * clock read per forward pass */
    if (g->progress) pb_progress_update(g->progress, ++g->progress_done);
    /* the last new token is never fed back: G tokens take the prefill and G - 1 steps */
    for (int i = 1; i < G; i++) {
        for (int b = 0; b < B; b++) g->step[b] = out[(size_t)b * G + i - 1];
        PB_TRY(pb_model_forward(g->m, g->st, g->step, B, 1, g->cache, g->logits, true, err));
        for (int b = 0; b < B; b++) out[(size_t)b * G + i] = argmax(g->logits + (size_t)b * V, V);
        if (g->progress) pb_progress_update(g->progress, ++g->progress_done);
    }
    double t2 = pb_time_now();
    if (t) *t = (pb_speed_timing){.prefill_s = t1 - t0, .decode_s = t2 - t1, .total_s = t2 - t0};
    return 0;
}

int64_t pb_speed_gen_kv_bytes(const pb_speed_gen *g) {
    const pb_kvcache *c = g->cache;
    int64_t n = 0;
    for (int l = 0; c && l < c->n_layers; l++)
        if (c->k[l]) n += 2 * (int64_t)c->batch * c->max_len * c->kv_heads[l] * c->head_dim[l] * (int64_t)sizeof(float);
    return n;
}

/* ---- memory probes ---------------------------------------------------------------------- */

/* A "Key:   123 kB" line of /proc/self/status in bytes, or -1. */
static int64_t proc_status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    int64_t v = -1;
    size_t k = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, k) == 0 && line[k] == ':') {
            long long kb = strtoll(line + k + 1, NULL, 10);
            v = kb >= 0 ? (int64_t)kb * 1024 : -1;
            break;
        }
    fclose(f);
    return v;
}

bool pb_speed_mem_reset(pb_speed_device dev) {
    if (dev == PB_SPEED_CUDA) {
        const pb_ops *c = cuda_ops();
        if (!c || !c->mem_reset_peak) return false;
        c->mem_reset_peak();
        return true;
    }
    if (dev != PB_SPEED_CPU) return false;
#ifdef __GLIBC__
    /* hand freed heap back to the kernel first, or an earlier configuration's buffers
     * would count in this one's resident set */
    malloc_trim(0);
#endif
    /* Linux >= 4.0: writing 5 resets VmHWM to the current resident set */
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    bool ok = fputs("5", f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return ok;
}

int64_t pb_speed_mem_peak(pb_speed_device dev) {
    if (dev == PB_SPEED_CUDA) {
        const pb_ops *c = cuda_ops();
        return c && c->mem_peak ? c->mem_peak() : -1;
    }
    return dev == PB_SPEED_CPU ? proc_status_kb("VmHWM") : -1;
}
int64_t pb_speed_mem_current(pb_speed_device dev) { return dev == PB_SPEED_CPU ? proc_status_kb("VmRSS") : -1; }

/* ---- one configuration -------------------------------------------------------------------- */

int pb_speed_check(const pb_model *m, const pb_speed_opts *o, pb_err *err) {
    if (o->batch < 1 || o->prompt_len < 1 || o->gen_len < 1)
        return pb_err_set(err, "bench: batch, prompt-len and gen-len must be >= 1 (got %d, %d, %d)", o->batch,
                          o->prompt_len, o->gen_len);
    if (o->reps < 1 || o->warmup < 0)
        return pb_err_set(err, "bench: need reps >= 1 and warmup >= 0 (got %d, %d)", o->reps, o->warmup);
    if ((int64_t)o->prompt_len + o->gen_len > m->cfg.max_seq_len)
        return pb_err_set(err, "bench: prompt-len %d + gen-len %d = %lld tokens exceeds the model's context of %d",
                          o->prompt_len, o->gen_len, (long long)o->prompt_len + o->gen_len, m->cfg.max_seq_len);
    return 0;
}

/* splitmix64: a fixed, portable sequence for a given seed */
static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

int pb_speed_random_prompt(const pb_model *m, uint64_t seed, int batch, int P, int32_t *prompt, pb_err *err) {
    int V = m->cfg.vocab_size, bos = m->cfg.bos_id, eos = m->cfg.eos_id;
    int excluded = (bos >= 0 && bos < V) + (eos >= 0 && eos < V && eos != bos);
    if (V - excluded < 1) return pb_err_set(err, "bench: vocabulary of %d has no token other than BOS/EOS", V);
    uint64_t s = seed;
    for (size_t i = 0; i < (size_t)batch * (size_t)P; i++) {
        int32_t id;
        do id = (int32_t)(splitmix(&s) % (uint64_t)V); /* modulo bias is irrelevant for speed */
        while (id == bos || id == eos);
        prompt[i] = id;
    }
    return 0;
}

/* mean and population std (ddof 0, as Shortened LLaMA's tables) */
static void mean_std(const double *x, int n, double *mean, double *std) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (x[i] - *mean) * (x[i] - *mean);
    *std = sqrt(q / n);
}

int pb_speed_run(const pb_model *m, const pb_speed_opts *o, pb_speed_result *r, pb_err *err) {
    PB_TRY(pb_speed_check(m, o, err));
    const int B = o->batch, P = o->prompt_len, G = o->gen_len;
    memset(r, 0, sizeof *r);
    r->batch = B, r->prompt_len = P, r->gen_len = G, r->reps = o->reps, r->warmup = o->warmup;
    /* the model's backend decides; o->device is kept for callers that name it */
    r->device = pb_speed_device_of(m);
    r->threads = omp_get_max_threads();
    /* norms and biases are fp32 on every backend, a rounding error next to the matrices */
    r->weights_bytes = pb_model_params(m) * (int64_t)pb_dtype_size(pb_model_ops(m)->wtype);

    int32_t *prompt = pb_calloc((size_t)B * P, sizeof *prompt), *out = pb_calloc((size_t)B * G, sizeof *out);
    double *x = pb_calloc((size_t)o->reps * 4, sizeof *x);
    pb_speed_gen g = {0};
    int rc = -1;
    if (!prompt || !out || !x) { pb_err_set(err, "bench: out of memory for batch %d", B); goto done; }
    if (o->prompt) {
        for (size_t i = 0; i < (size_t)B * P; i++)
            if (o->prompt[i] < 0 || o->prompt[i] >= m->cfg.vocab_size) {
                pb_err_set(err, "bench: prompt id %d at %zu outside the vocabulary [0, %d)", o->prompt[i], i,
                           m->cfg.vocab_size);
                goto done;
            }
        memcpy(prompt, o->prompt, (size_t)B * P * sizeof *prompt);
    } else if (pb_speed_random_prompt(m, o->seed, B, P, prompt, err)) {
        goto done;
    }

    /* the window opens before the cache and scratch exist, so they count in the peak */
    r->peak_rss_per_config = pb_speed_mem_reset(r->device);
    if (pb_speed_gen_init(&g, m, B, P + G, err)) goto done;
    r->kv_cache_bytes = pb_speed_gen_kv_bytes(&g);
    g.progress = o->progress;
    g.progress_done = o->progress_base;
    double *pre = x, *dec = x + o->reps, *tot = x + 2 * o->reps, *tps = x + 3 * o->reps;
    for (int i = 0; i < o->warmup + o->reps; i++) {
        pb_speed_timing t;
        if (pb_speed_gen_run(&g, prompt, P, G, out, &t, err)) goto done;
        if (i >= o->warmup) {
            int k = i - o->warmup;
            pre[k] = t.prefill_s;
            dec[k] = G > 1 ? 1e3 * t.decode_s / (G - 1) : 0;
            tot[k] = t.total_s;
            tps[k] = (double)B * G / t.total_s;
        }
    }
    r->peak_rss_bytes = pb_speed_mem_peak(r->device);
    double unused;
    mean_std(pre, o->reps, &r->prefill_s, &r->prefill_s_std);
    mean_std(dec, o->reps, &r->decode_ms_per_token, &r->decode_ms_per_token_std);
    mean_std(tot, o->reps, &r->total_s, &r->total_s_std);
    mean_std(tps, o->reps, &unused, &r->tokens_per_s_std);
    r->tokens_per_s = (double)B * G / r->total_s;
    if (o->rep_total_s) memcpy(o->rep_total_s, tot, (size_t)o->reps * sizeof *tot);
    if (o->tokens_out) memcpy(o->tokens_out, out, (size_t)B * G * sizeof *out);
    if (o->prompt_out) memcpy(o->prompt_out, prompt, (size_t)B * P * sizeof *prompt);
    rc = 0;
done:
    pb_speed_gen_free(&g);
    free(prompt);
    free(out);
    free(x);
    return rc;
}

/* ---- option lists --------------------------------------------------------------------------- */

int pb_speed_parse_list(const char *s, int max, int **vals, int *n, pb_err *err) {
    *vals = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int *v = pb_calloc(cap, sizeof *v);
    PB_CHECK_ALLOC(v, err);
    const char *p = s;
    for (size_t k = 0; k < cap; k++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) {
            free(v);
            return pb_err_set(err, "'%s': item %zu is empty", s, k + 1);
        }
        char buf[32], *e;
        if (len >= sizeof buf) {
            free(v);
            return pb_err_set(err, "'%s': item %zu is not a number", s, k + 1);
        }
        memcpy(buf, p, len);
        buf[len] = 0;
        errno = 0;
        long x = strtol(buf, &e, 10);
        if (*e || e == buf || errno) {
            free(v);
            return pb_err_set(err, "'%s': item %zu ('%s') is not an integer", s, k + 1, buf);
        }
        if (x < 1 || x > max) {
            free(v);
            return pb_err_set(err, "'%s': item %zu (%ld) must be between 1 and %d", s, k + 1, x, max);
        }
        v[k] = (int)x;
        p = end ? end + 1 : p + len;
    }
    *vals = v;
    *n = (int)cap;
    return 0;
}
