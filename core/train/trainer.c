/* trainer.c — the training loop (see trainer.h): parameters, steps with gradient
 * accumulation, clipping, schedule and AdamW, validation, and the final outputs. */
#include "grad.h"
#include "load.h"
#include "ops.h"
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void pb_train_defaults(pb_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->command = "finetune";
    o->data = (pb_sft_opts){PB_SFT_ALPACA, 256, false, true};
    o->epochs = 2;
    o->batch = 64;
    o->micro_batch = 4;
    o->lr = 1e-4;
    o->max_grad_norm = 1.0;
    o->adam = PB_ADAMW_DEFAULTS;
    o->sched = PB_SCHED_LINEAR;
    o->warmup = 100;
    o->eval_every = 100;
    o->save_every = 200;
    o->seed = 42;
    o->lora = true;
    o->rank = 8;
    o->alpha = 16.0f;
    o->dropout = 0.05f;
    o->targets = (1u << PB_LORA_N) - 1;
    o->log = stdout;
}

/* ---- parameters ----------------------------------------------------------------------- */

static int add_param(pb_trainer *t, float *p, float *g, size_t n, bool decay, pb_err *err) {
    pb_param *x = &t->ps[t->n_ps++];
    x->p = p;
    x->n = n;
    x->decay = decay;
    x->g = g ? g : pb_arena_alloc_n(&t->arena, n, sizeof(float));
    x->m = pb_arena_alloc_n(&t->arena, n, sizeof(float));
    x->v = pb_arena_alloc_n(&t->arena, n, sizeof(float));
    if (!x->g || !x->m || !x->v) return pb_err_set(err, "%s: out of memory for optimiser state", t->o->command);
    return 0;
}

static int setup_params(pb_trainer *t, pb_err *err) {
    const pb_train_opts *o = t->o;
    pb_model *m = t->m;
    int L = m->cfg.n_layers, cap;
    if (o->lora) {
        PB_TRY(pb_lora_create(&t->lora, m, o->rank, o->alpha, o->dropout, o->targets, o->seed, true, err));
        cap = 2 * L * PB_LORA_N;
    } else {
        cap = (L + 1) * PB_G_COUNT;
    }
    t->ps = pb_arena_alloc_n(&t->arena, (size_t)cap, sizeof *t->ps);
    if (!t->ps) return pb_err_set(err, "out of memory");
    if (o->lora) {
        /* every adapter matrix decays: none is a bias or a norm weight (HF's exemptions) */
        for (int l = 0; l < L; l++)
            for (int k = 0; k < PB_LORA_N; k++) {
                pb_lora_pair *p = &t->lora->ad[l][k];
                if (!p->A) continue;
                PB_TRY(add_param(t, p->A, p->dA, (size_t)o->rank * p->in, true, err));
                PB_TRY(add_param(t, p->B, p->dB, (size_t)p->out * o->rank, true, err));
            }
        m->lora = t->lora;
        return 0;
    }
    t->param_of = pb_arena_alloc_n(&t->arena, (size_t)cap, sizeof(int));
    if (!t->param_of) return pb_err_set(err, "out of memory");
    for (int i = 0; i < cap; i++) t->param_of[i] = -1;
    for (int l = -1; l < L; l++)
        for (int k = 0; k < PB_G_INPUT; k++) {
            bool global = k <= PB_G_FINAL_NORM;
            if (global != (l < 0)) continue;
            int r, c;
            float *w = pb_grad_tensor(m, (pb_grad_kind)k, l, &r, &c);
            if (!w) continue;
            t->param_of[(l + 1) * PB_G_COUNT + k] = t->n_ps;
            /* HF Trainer exempts biases and norm weights (all vectors here) from decay */
            PB_TRY(add_param(t, w, NULL, (size_t)r * c, c > 1, err));
        }
    return 0;
}

/* pretrain: the backward driver's gradients, added into the parameters' buffers */
static int accumulate(void *ctx, const pb_grad_event *ev, pb_err *err) {
    pb_trainer *t = ctx;
    int i = t->param_of[(ev->layer + 1) * PB_G_COUNT + ev->kind];
    if (i < 0) return pb_err_set(err, "no parameter for gradient %s", pb_grad_kind_names[ev->kind]);
    float *g = t->ps[i].g;
    size_t n = t->ps[i].n;
    for (size_t j = 0; j < n; j++) g[j] += ev->g[j];
    return 0;
}

static void zero_grads(pb_trainer *t) {
    for (int i = 0; i < t->n_ps; i++) memset(t->ps[i].g, 0, t->ps[i].n * sizeof(float));
}

/* ---- data ------------------------------------------------------------------------------ */

typedef struct {
    pb_sft_set set;
    int *train, *val, n_train, n_val;
    int *order;                /* this epoch's order of train */
    int order_epoch;
    int32_t *tok, *tgt;        /* (micro_batch, cutoff) */
} train_data;

static void data_free(train_data *d) {
    pb_sft_free(&d->set);
    free(d->train);
    free(d->val);
    free(d->order);
    free(d->tok);
    free(d->tgt);
}

static int data_load(train_data *d, const pb_tokenizer *tok, const pb_train_opts *o, pb_err *err) {
    memset(d, 0, sizeof *d);
    d->order_epoch = -1;
    PB_TRY(pb_sft_load(o->data_path, tok, &o->data, &d->set, err));
    if (o->val_size >= d->set.n)
        return pb_err_set(err, "%s: --val-size %d leaves no training example (%d examples)", o->data_path, o->val_size,
                          d->set.n);
    PB_TRY(pb_sft_split(d->set.n, o->val_size, o->seed, &d->train, &d->n_train, &d->val, &d->n_val, err));
    size_t cells = (size_t)o->micro_batch * o->data.cutoff;
    d->order = malloc((size_t)d->n_train * sizeof(int));
    d->tok = malloc(cells * sizeof(int32_t));
    d->tgt = malloc(cells * sizeof(int32_t));
    if (!d->order || !d->tok || !d->tgt) return pb_err_set(err, "out of memory");
    return 0;
}

static const int *epoch_order(train_data *d, uint64_t seed, int epoch) {
    if (d->order_epoch != epoch) {
        memcpy(d->order, d->train, (size_t)d->n_train * sizeof(int));
        pb_sft_shuffle(d->order, d->n_train, seed, epoch);
        d->order_epoch = epoch;
    }
    return d->order;
}

/* Mean NLL over every labelled position of the validation examples (no dropout). */
static int val_loss(pb_trainer *t, train_data *d, pb_fwd_state *fs, float **logits, size_t *cap, double *out,
                    pb_err *err) {
    const pb_ops *ops = pb_ops_cpu();
    int V = t->m->cfg.vocab_size, mb = t->o->micro_batch;
    double sum = 0.0;
    int64_t n = 0;
    for (int i = 0; i < d->n_val; i += mb) {
        int B = d->n_val - i < mb ? d->n_val - i : mb, T;
        pb_sft_pack(&d->set, d->val + i, B, 0, d->tok, d->tgt, &T);
        size_t need = (size_t)B * T * V;
        if (need > *cap) {
            free(*logits);
            *logits = malloc(need * sizeof(float));
            *cap = *logits ? need : 0;
            if (!*logits) return pb_err_set(err, "out of memory for validation logits");
        }
        PB_TRY(pb_model_forward(t->m, fs, d->tok, B, T, NULL, *logits, false, err));
        double l;
        int64_t k;
        if (ops->cross_entropy(&l, &k, NULL, *logits, d->tgt, (int64_t)B * T, V, err) != 0)
            return pb_err_prefix(err, "validation examples %d..%d: ", i, i + B - 1);
        sum += l * (double)k;
        n += k;
    }
    *out = n ? sum / (double)n : NAN;
    return 0;
}

/* ---- the loop ------------------------------------------------------------------------- */

static cJSON *fingerprint(const pb_train_opts *o, const pb_model *m) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "command", o->command);
    cJSON_AddStringToObject(j, "model", o->model_path ? o->model_path : "");
    cJSON_AddNumberToObject(j, "model_params", (double)pb_model_params(m));
    cJSON_AddStringToObject(j, "data", o->data_path);
    cJSON_AddStringToObject(j, "format", o->data.format == PB_SFT_TEXT ? "text" : "alpaca");
    cJSON_AddNumberToObject(j, "cutoff", o->data.cutoff);
    cJSON_AddBoolToObject(j, "train_on_inputs", o->data.train_on_inputs);
    cJSON_AddNumberToObject(j, "val_size", o->val_size);
    cJSON_AddNumberToObject(j, "epochs", o->epochs);
    cJSON_AddNumberToObject(j, "max_steps", (double)o->max_steps);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "micro_batch", o->micro_batch);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "max_grad_norm", o->max_grad_norm);
    cJSON_AddNumberToObject(j, "weight_decay", o->adam.weight_decay);
    cJSON_AddNumberToObject(j, "beta1", o->adam.beta1);
    cJSON_AddNumberToObject(j, "beta2", o->adam.beta2);
    cJSON_AddNumberToObject(j, "eps", o->adam.eps);
    cJSON_AddNumberToObject(j, "schedule", o->sched);
    cJSON_AddNumberToObject(j, "warmup", (double)o->warmup);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddBoolToObject(j, "lora", o->lora);
    if (o->lora) {
        cJSON_AddNumberToObject(j, "rank", o->rank);
        cJSON_AddNumberToObject(j, "alpha", o->alpha);
        cJSON_AddNumberToObject(j, "dropout", o->dropout);
        cJSON_AddNumberToObject(j, "targets", o->targets);
    }
    return j;
}

int pb_train_check(const pb_train_opts *o, pb_err *err) {
    if (o->batch < 1 || o->micro_batch < 1 || o->batch % o->micro_batch)
        return pb_err_set(err, "%s: --batch %d must be a positive multiple of --micro-batch %d", o->command, o->batch,
                          o->micro_batch);
    if (o->epochs < 1 && o->max_steps < 1) return pb_err_set(err, "%s: --epochs must be at least 1", o->command);
    if (!(o->lr > 0) || !isfinite(o->lr)) return pb_err_set(err, "%s: --lr must be positive", o->command);
    if (o->data.cutoff < 2) return pb_err_set(err, "%s: --cutoff must be at least 2", o->command);
    if (o->val_size < 0) return pb_err_set(err, "%s: --val-size must not be negative", o->command);
    if (o->warmup < 0) return pb_err_set(err, "%s: --warmup must not be negative", o->command);
    if (o->lora && o->rank < 1) return pb_err_set(err, "%s: --lora-rank must be at least 1 (got %d)", o->command, o->rank);
    if (o->lora && !(o->dropout >= 0.0f && o->dropout < 1.0f))
        return pb_err_set(err, "%s: --lora-dropout must be in [0, 1) (got %g)", o->command, o->dropout);
    if (o->lora && !(o->alpha > 0.0f)) return pb_err_set(err, "%s: --lora-alpha must be positive", o->command);
    if (!o->data_path || !o->out_dir) return pb_err_set(err, "%s: --data and --out are required", o->command);
    return 0;
}

/* Creates the output folder and proves it writable before any work is done. */
static int prepare_out(const pb_train_opts *o, pb_err *err) {
    bool created;
    PB_TRY(pb_mkdir_p(o->out_dir, &created, err));
    char *best = pb_path_join(o->out_dir, "best");
    pb_remove_stale_tmp(o->out_dir);
    if (best) pb_remove_stale_tmp(best);
    free(best);
    char *probe = pb_path_join(o->out_dir, ".pbprobe"), *ck = pb_path_join(o->out_dir, "checkpoint.json");
    int rc = -1;
    if (!probe || !ck) pb_err_set(err, "out of memory");
    else if (!o->resume && pb_file_exists(ck))
        pb_err_set(err, "%s: already holds a training run (add --resume to continue it, or choose another --out)",
                   o->out_dir);
    else if (pb_file_write_atomic(probe, "", 0, err) == 0) {
        unlink(probe);
        rc = 0;
    }
    free(probe);
    free(ck);
    return rc;
}

static int one_step(pb_trainer *t, train_data *d, pb_grad_state *gs, int64_t spe, double *loss, double *gnorm,
                    int64_t *tokens, pb_err *err) {
    const pb_train_opts *o = t->o;
    int epoch = (int)(t->step / spe);
    int64_t first = (t->step % spe) * o->batch;
    int n = (int)(d->n_train - first < o->batch ? d->n_train - first : o->batch);
    int n_micro = (n + o->micro_batch - 1) / o->micro_batch;
    const int *order = epoch_order(d, o->seed, epoch);
    pb_grad_opts go = {.want = o->lora ? 0 : PB_G_ALL_WEIGHTS, .consumer = o->lora ? NULL : accumulate, .ctx = t,
                       .norm = PB_LOSS_MEAN_TOKENS, .loss_scale = 1.0 / n_micro};
    zero_grads(t);
    *loss = 0.0;
    for (int j = 0; j < n_micro; j++) {
        int B = n - j * o->micro_batch < o->micro_batch ? n - j * o->micro_batch : o->micro_batch, T;
        const int *sel = order + first + (int64_t)j * o->micro_batch;
        pb_sft_pack(&d->set, sel, B, 0, d->tok, d->tgt, &T);
        for (int b = 0; b < B; b++) *tokens += d->set.len[sel[b]];
        if (t->lora) {
            t->lora->training = true;
            t->lora->dropout_key = pb_mix64(o->seed ^ pb_mix64((uint64_t)t->step * 4096u + (uint64_t)j));
        }
        pb_batch b = {d->tok, d->tgt, B, T};
        double lj;
        int rc = pb_grad_run(t->m, gs, &b, 1, &go, &lj, NULL, err);
        if (t->lora) t->lora->training = false;
        if (rc != 0) return pb_err_prefix(err, "step %lld: ", (long long)t->step + 1);
        *loss += lj / n_micro;
    }
    *gnorm = pb_clip_grad_norm(t->ps, t->n_ps, o->max_grad_norm);
    if (!isfinite(*loss) || !isfinite(*gnorm))
        return pb_err_set(err, "step %lld: training diverged (loss %g, gradient norm %g); the last checkpoint is kept",
                          (long long)t->step + 1, *loss, *gnorm);
    return 0;
}

static int finish(pb_trainer *t, const pb_tokenizer *tok, pb_err *err);

int pb_train_run(pb_model *m, const pb_tokenizer *tok, const pb_train_opts *o, pb_train_result *r, pb_err *err) {
    memset(r, 0, sizeof *r);
    PB_TRY(pb_train_check(o, err));
    if (m->lora) return pb_err_set(err, "%s: the model already has adapters attached", o->command);
    pb_trainer t = {.o = o, .m = m, .best_val = NAN, .val_before = NAN, .first_loss = NAN, .best_step = -1};
    pb_arena_init(&t.arena, (size_t)1 << 20);
    train_data d;
    pb_grad_state *gs = NULL;
    pb_fwd_state *fs = NULL;
    float *vlog = NULL;
    size_t vcap = 0;
    int rc = -1;
    if (data_load(&d, tok, o, err) != 0) goto done;
    if (setup_params(&t, err) != 0) goto done;
    t.history = cJSON_CreateArray();
    t.fingerprint = fingerprint(o, m);
    gs = pb_grad_state_new();
    fs = pb_fwd_state_new();
    if (!t.history || !t.fingerprint || !gs || !fs) {
        pb_err_set(err, "out of memory");
        goto done;
    }
    if (prepare_out(o, err) != 0) goto done;
    bool resumed = false;
    if (o->resume && pb_ckpt_load(&t, &resumed, err) != 0) goto done;

    int64_t spe = (d.n_train + o->batch - 1) / o->batch;
    int64_t total = o->max_steps > 0 ? o->max_steps : (int64_t)o->epochs * spe;
    pb_sched sched = {o->sched, o->warmup, total};
    for (int i = 0; i < t.n_ps; i++) r->trainable += (int64_t)t.ps[i].n;
    fprintf(o->log, "%s: %d training and %d validation examples (%lld tokens), %lld trainable parameters, "
            "%lld steps of %d (micro-batches of %d)\n", o->command, d.n_train, d.n_val,
            (long long)d.set.n_tokens, (long long)r->trainable, (long long)total, o->batch, o->micro_batch);
    if (resumed) fprintf(o->log, "resumed from step %lld\n", (long long)t.step);
    if (!resumed && d.n_val) {
        if (val_loss(&t, &d, fs, &vlog, &vcap, &t.val_before, err) != 0) goto done;
        fprintf(o->log, "eval step 0 val_loss %.6f\n", t.val_before);
    }
    double t0 = pb_time_now();
    int64_t tokens = 0;
    double loss = NAN;
    while (t.step < total) {
        double gnorm = 0.0, ts = pb_time_now();
        int64_t tk0 = tokens;
        if (one_step(&t, &d, gs, spe, &loss, &gnorm, &tokens, err) != 0) goto done;
        double lr = o->lr * pb_sched_factor(&sched, t.step);
        pb_adamw_step(&o->adam, t.ps, t.n_ps, lr, t.step + 1);
        t.step++;
        double tps = (double)(tokens - tk0) / fmax(pb_time_now() - ts, 1e-9);
        if (!isfinite(t.first_loss)) t.first_loss = loss;
        fprintf(o->log, "step %lld/%lld epoch %.3f loss %.6f lr %.4g grad_norm %.4f tok/s %.0f\n",
                (long long)t.step, (long long)total, (double)t.step / (double)spe, loss, lr, gnorm, tps);
        fflush(o->log);
        cJSON *h = cJSON_CreateObject();
        cJSON_AddNumberToObject(h, "step", (double)t.step);
        cJSON_AddNumberToObject(h, "loss", loss);
        cJSON_AddNumberToObject(h, "lr", lr);
        cJSON_AddNumberToObject(h, "grad_norm", gnorm);
        cJSON_AddItemToArray(t.history, h);
        bool last = t.step == total;
        if (d.n_val && (last || (o->eval_every > 0 && t.step % o->eval_every == 0))) {
            double v;
            if (val_loss(&t, &d, fs, &vlog, &vcap, &v, err) != 0) goto done;
            cJSON_AddNumberToObject(h, "val_loss", v);
            fprintf(o->log, "eval step %lld val_loss %.6f\n", (long long)t.step, v);
            if (!(v >= t.best_val)) {
                t.best_val = v;
                t.best_step = t.step;
                if (t.lora) {
                    char *bd = pb_path_join(o->out_dir, "best");
                    int s = bd ? pb_lora_save(t.lora, bd, err) : pb_err_set(err, "out of memory");
                    free(bd);
                    if (s != 0) goto done;
                }
            }
        }
        if (last || (o->save_every > 0 && t.step % o->save_every == 0))
            if (pb_ckpt_save(&t, err) != 0) goto done;
    }
    r->tokens_per_s = (double)tokens / fmax(pb_time_now() - t0, 1e-9);
    r->last_loss = loss;
    if (finish(&t, tok, err) != 0) goto done;
    r->steps = t.step;
    r->first_loss = t.first_loss;
    r->val_before = t.val_before;
    r->val_best = t.best_val;
    r->best_step = t.best_step;
    const cJSON *lastrec = cJSON_GetArrayItem(t.history, cJSON_GetArraySize(t.history) - 1);
    const cJSON *lv = cJSON_GetObjectItemCaseSensitive(lastrec, "val_loss");
    r->val_last = cJSON_IsNumber(lv) ? lv->valuedouble : NAN;
    rc = 0;
done:
    if (m->lora == t.lora) m->lora = NULL;
    pb_lora_free(t.lora);
    data_free(&d);
    pb_grad_state_free(gs);
    pb_fwd_state_free(fs);
    free(vlog);
    cJSON_Delete(t.history);
    cJSON_Delete(t.fingerprint);
    pb_arena_free(&t.arena);
    return rc;
}

/* The outputs: history.json; finetune: the chosen adapter in OUT (PEFT layout) and with
 * --merge the merged model in OUT/merged; pretrain: the model in OUT. */
static int finish(pb_trainer *t, const pb_tokenizer *tok, pb_err *err) {
    const pb_train_opts *o = t->o;
    (void)tok;
    PB_TRY(pb_ckpt_write_history(t, err));
    pb_save_opts so = {o->save_dtype, o->tokenizer_from, 0};
    if (!t->lora) return pb_hf_save(t->m, o->out_dir, &so, err);
    t->m->lora = NULL;   /* the outputs are plain weights and adapter files */
    pb_lora *chosen = t->lora, *best = NULL;
    if (!o->select_last && t->best_step >= 0) {
        char *bd = pb_path_join(o->out_dir, "best");
        int s = bd ? pb_lora_load(&best, t->m, bd, false, err) : pb_err_set(err, "out of memory");
        free(bd);
        PB_TRY(s);
        chosen = best;
        fprintf(o->log, "selected the adapter of step %lld (best val_loss %.6f)\n", (long long)t->best_step,
                t->best_val);
    }
    int rc = pb_lora_save(chosen, o->out_dir, err);
    if (rc == 0 && o->merge) {
        char *md = pb_path_join(o->out_dir, "merged");
        rc = md ? pb_lora_merge(chosen, t->m, err) : pb_err_set(err, "out of memory");
        if (rc == 0) rc = pb_hf_save(t->m, md, &so, err);
        free(md);
    }
    pb_lora_free(best);
    return rc;
}
