/* runner.c — executes an experiment's runs (see runner.h). */
#include "runner.h"

#include "load.h"
#include "ops.h"
#include "lora.h"
#include "pb_data.h"
#include "ppl.h"
#include "results.h"
#include "runner_internal.h"
#include "speed.h"
#include "tasks.h"
#include "trainer.h"
#include "zeroshot.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *pb_exp_dir(const pb_exp *e, const pb_run_opts *o) {
    return pb_path_join(o->out_root ? o->out_root : "results", e->name);
}

static bool selected(const pb_exp *e, const pb_run_opts *o, int i) {
    int k = o->shard_n > 0 ? o->shard_k : 1, n = o->shard_n > 0 ? o->shard_n : 1;
    if (!pb_exp_in_shard(i, k, n)) return false;
    return !o->only || strcmp(o->only, e->runs[i].run_id) == 0 || strcmp(o->only, e->runs[i].label) == 0;
}

/* Whether a method needs calibration data (Taylor, PPL, and every activation method). */
static bool needs_calib(const pb_prune_opts *p) {
    if (!p->method) return false;
    if (!strcmp(p->method, "depth")) return !p->criterion || strcmp(p->criterion, "magnitude") != 0;
    return !strcmp(p->method, "llm-pruner") || !strcmp(p->method, "wanda-sp") || !strcmp(p->method, "flap");
}

void pb_exp_print_plan(const pb_exp *e, const pb_run_opts *o, FILE *f) {
    char *dir = pb_exp_dir(e, o);
    int n = 0, done = 0;
    fprintf(f, "experiment %s: %d runs in the sweep, results in %s\n", e->name, e->n_runs, dir ? dir : "?");
    fprintf(f, "%-4s %-12s %-6s %-44s %s\n", "#", "run_id", "state", "run", "computes");
    for (int i = 0; i < e->n_runs; i++) {
        if (!selected(e, o, i)) continue;
        const pb_exp_run *r = &e->runs[i];
        bool fin = dir && pb_result_exists(dir, r->run_id);
        char what[256];
        int w = snprintf(what, sizeof what, "%s", r->method < 0 ? "load" : needs_calib(&r->prune) ? "calibrate+prune" : "prune");
        if (e->lora.enabled && r->method >= 0 && w < (int)sizeof what)
            w += snprintf(what + w, sizeof what - (size_t)w, "+lora");
        if (e->eval.n_ppl && w < (int)sizeof what) w += snprintf(what + w, sizeof what - (size_t)w, ", ppl x%d", e->eval.n_ppl);
        if (e->eval.n_tasks && w < (int)sizeof what)
            w += snprintf(what + w, sizeof what - (size_t)w, ", zeroshot x%d", e->eval.n_tasks);
        if (e->eval.n_speed && w < (int)sizeof what) snprintf(what + w, sizeof what - (size_t)w, ", speed x%d", e->eval.n_speed);
        fprintf(f, "%-4d %-12s %-6s %-44s %s\n", i, r->run_id, fin ? "done" : "todo", r->label, what);
        n++;
        done += fin;
    }
    fprintf(f, "%d selected, %d already finished, %d to run\n", n, done, n - done);
    free(dir);
}

/* ---- shared inputs: texts, tasks, calibration ------------------------------------------- */

typedef struct {
    pb_text_set *texts;      /* (n_ppl) */
    pb_task **tasks;         /* (n_tasks) */
    pb_calib *calib;         /* per model, lazily, for the current model and seed */
    uint64_t calib_seed;
    bool have_calib;
    const pb_ops *ops;       /* where runs are evaluated (evaluation.device / dtype) */
} inputs;

static int load_inputs(const pb_exp *e, const pb_run_opts *o, inputs *in, pb_err *err) {
    memset(in, 0, sizeof *in);
    /* a backend that cannot be had stops the experiment before any run is recorded as failed */
    if (!(in->ops = pb_ops_get(e->eval.device, e->eval.dtype, err)))
        return pb_err_prefix(err, "%s: evaluation: ", e->path ? e->path : e->name);
    in->texts = calloc((size_t)e->eval.n_ppl + 1, sizeof *in->texts);
    in->tasks = calloc((size_t)e->eval.n_tasks + 1, sizeof *in->tasks);
    in->calib = calloc(1, sizeof *in->calib);
    if (!in->texts || !in->tasks || !in->calib) return pb_err_set(err, "out of memory");
    for (int i = 0; i < e->eval.n_ppl; i++)
        PB_TRY(pb_data_text(o->data_dir, e->eval.ppl_datasets[i], NULL, NULL, true, &in->texts[i], err));
    for (int i = 0; i < e->eval.n_tasks; i++) PB_TRY(pb_task_open(e->eval.tasks[i], o->data_dir, &in->tasks[i], err));
    return 0;
}

static void free_inputs(const pb_exp *e, inputs *in) {
    for (int i = 0; in->texts && i < e->eval.n_ppl; i++) pb_text_set_free(&in->texts[i]);
    for (int i = 0; in->tasks && i < e->eval.n_tasks; i++) pb_task_free(in->tasks[i]);
    if (in->calib) pb_calib_free(in->calib);
    free(in->texts);
    free(in->tasks);
    free(in->calib);
}

/* ---- one run ---------------------------------------------------------------------------- */

static int evaluate(const pb_exp *e, inputs *in, const pb_model *m, const pb_tokenizer *tok, pb_result *res,
                    pb_err *err) {
    for (int i = 0; i < e->eval.n_ppl; i++) {
        pb_ppl_opts po = {.seq_len = e->eval.ppl_seq_len, .bos_per_window = e->eval.ppl_bos_per_window,
                          .max_windows = e->eval.ppl_max_windows, .truncate_windows = in->texts[i].truncate_windows};
        pb_ppl_result pr;
        if (pb_ppl_text(m, tok, in->texts[i].text, in->texts[i].len, &po, &pr, err) != 0)
            return pb_err_prefix(err, "ppl %s: ", e->eval.ppl_datasets[i]);
        PB_TRY(pb_result_ppl(res, e->eval.ppl_datasets[i], pr.ppl, pr.nll_mean, pr.nll_stderr, pr.tokens, pr.windows,
                             po.seq_len, err));
    }
    double sum = 0;
    for (int i = 0; i < e->eval.n_tasks; i++) {
        pb_zs_opts zo = {.encode = PB_ZS_WHOLE, .sched = {.batch = 32},
                         .limit = (int)(e->eval.zs_limit > 1000000000 ? 1000000000 : e->eval.zs_limit)};
        pb_zs_result zr;
        if (pb_zs_run(m, tok, in->tasks[i], &zo, &zr, err) != 0) return pb_err_prefix(err, "zeroshot %s: ", e->eval.tasks[i]);
        double h = pb_zs_headline(&zr);
        sum += h;
        /* acc / acc_norm as lm-eval reports them (fractions); the headline as the papers' tables
         * print it (percent), like the mean */
        int rc = pb_result_zeroshot(res, e->eval.tasks[i], zr.acc, zr.acc_stderr, zr.acc_norm, zr.acc_norm_stderr,
                                    100.0 * h, zr.n, err);
        pb_zs_result_free(&zr);
        PB_TRY(rc);
    }
    if (e->eval.n_tasks) PB_TRY(pb_result_zeroshot_mean(res, 100.0 * sum / e->eval.n_tasks, err));
    for (int i = 0; i < e->eval.n_speed; i++) {
        pb_speed_opts so = {.batch = e->eval.speed_batch[i], .prompt_len = e->eval.speed_prompt_len,
                            .gen_len = e->eval.speed_gen_len, .reps = e->eval.speed_repeats, .warmup = 1, .seed = 1};
        pb_speed_result sr;
        if (pb_speed_run(m, &so, &sr, err) != 0) return pb_err_prefix(err, "speed batch %d: ", so.batch);
        PB_TRY(pb_result_latency(res, so.batch, sr.prefill_s * 1e3, sr.decode_ms_per_token, sr.tokens_per_s,
                                 sr.peak_rss_bytes, err));
    }
    return 0;
}

/* The training curve of a recovery run, from its history.json. */
static int record_training(pb_result *res, const char *dir, pb_err *err) {
    char *p = pb_path_join(dir, "history.json"), *text = NULL;
    size_t len;
    PB_CHECK_ALLOC(p, err);
    int rc = pb_file_read_all(p, &text, &len, err);
    free(p);
    if (rc) return -1;
    cJSON *h = cJSON_ParseWithLength(text, len);
    free(text);
    int n = cJSON_GetArraySize(h);
    int64_t *step = calloc((size_t)n + 1, sizeof *step);
    double *v[4];
    for (int k = 0; k < 4; k++) v[k] = calloc((size_t)n + 1, sizeof(double));
    static const char *const keys[4] = {"loss", "lr", "grad_norm", "val_loss"};
    rc = (step && v[0] && v[1] && v[2] && v[3]) ? 0 : pb_err_set(err, "out of memory");
    for (int i = 0; rc == 0 && i < n; i++) {
        const cJSON *r = cJSON_GetArrayItem(h, i), *s = cJSON_GetObjectItemCaseSensitive(r, "step");
        step[i] = cJSON_IsNumber(s) ? (int64_t)s->valuedouble : i + 1;
        for (int k = 0; k < 4; k++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(r, keys[k]);
            v[k][i] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
        }
    }
    if (rc == 0) rc = pb_result_training(res, step, v[0], v[1], v[2], v[3], n, err);
    cJSON_Delete(h);
    free(step);
    for (int k = 0; k < 4; k++) free(v[k]);
    return rc;
}

/* LoRA recovery of the pruned model m; the chosen adapter is attached to m afterwards. */
static int recover(const pb_exp *e, const pb_exp_run *run, const char *dir, pb_model *m, const pb_tokenizer *tok,
                   pb_result *res, pb_err *err) {
    const pb_exp_lora *l = &e->lora;
    pb_train_opts t;
    pb_train_defaults(&t);
    char sub[64];
    snprintf(sub, sizeof sub, "%s.lora", run->run_id);
    char *out = pb_path_join(dir, sub);
    PB_CHECK_ALLOC(out, err);
    t.data_path = l->data;
    t.data.format = l->format && !strcmp(l->format, "text") ? PB_SFT_TEXT : PB_SFT_ALPACA;
    t.data.cutoff = l->cutoff;
    t.rank = l->rank;
    t.alpha = (float)l->alpha;
    t.dropout = (float)l->dropout;
    t.lr = l->lr;
    t.epochs = l->epochs;
    t.max_steps = l->max_steps;
    t.batch = l->batch;
    t.micro_batch = l->micro_batch;
    t.val_size = l->val_size;
    t.seed = run->seed;
    t.out_dir = out;
    t.resume = true;   /* an interrupted recovery continues from its checkpoint */
    t.log = stderr;
    pb_train_result tr;
    int rc = pb_train_run(m, tok, &t, &tr, err);
    if (rc == 0) rc = record_training(res, out, err);
    pb_lora *ad = NULL;
    if (rc == 0) rc = pb_lora_load(&ad, m, out, false, err);
    if (rc == 0) {
        m->lora = ad;
        m->owns_lora = true;
    }
    free(out);
    return rc;
}

static int record_structure(pb_result *res, const pb_model *m, const pb_prune_result *pr, pb_err *err) {
    int L = m->cfg.n_layers;
    int32_t *h = calloc((size_t)L + 1, 4), *kv = calloc((size_t)L + 1, 4), *f = calloc((size_t)L + 1, 4);
    int32_t *rm = calloc((size_t)pr->n_removed * 3 + 1, 4);
    int rc = (h && kv && f && rm) ? 0 : pb_err_set(err, "out of memory");
    for (int l = 0; rc == 0 && l < L; l++) {
        const pb_layer *Ly = &m->layers[l];
        h[l] = Ly->has_attn ? Ly->n_heads : 0;
        kv[l] = Ly->has_attn ? Ly->n_kv_heads : 0;
        f[l] = Ly->has_mlp ? Ly->ffn_dim : 0;
    }
    for (int i = 0; rc == 0 && i < pr->n_removed; i++) {
        rm[3 * i] = pr->removed[i].layer;
        rm[3 * i + 1] = (int32_t)pr->removed[i].kind;
        rm[3 * i + 2] = pr->removed[i].index;
    }
    if (rc == 0) rc = pb_result_structure(res, h, kv, f, L, rm, pr->n_removed, err);
    free(h);
    free(kv);
    free(f);
    free(rm);
    return rc;
}

/* note: what the progress line adds about the run's scores (reused from an earlier run of
 * the same model, or no /importance and why), "" otherwise. */
static int run_one(const pb_exp *e, const pb_exp_run *run, const char *dir, const pb_model *base,
                   const pb_tokenizer *tok, inputs *in, const pb_run_opts *o, pb_prune_memo *memo, pb_result *res,
                   char *note, size_t note_cap, pb_err *err) {
    pb_model *m = NULL;
    pb_prune_result pr = {0};
    note[0] = 0;
    PB_TRY(pb_model_clone(base, &m, err));
    int rc = 0;
    if (run->method >= 0) {
        pb_prune_opts po = run->prune;
        po.memo = memo;
        if (needs_calib(&po)) {
            if (!in->have_calib || in->calib_seed != run->seed) {
                pb_calib_free(in->calib);
                in->have_calib = false;
                rc = pb_calib_load(in->calib, e->calib.dataset, e->calib.split, o->data_dir, tok, e->calib.samples,
                                   e->calib.seq_len, e->calib.sampling, run->seed, err);
                in->have_calib = rc == 0;
                in->calib_seed = run->seed;
            }
            po.calib = in->calib;
        }
        int hits0, hits1;
        pb_prune_memo_stats(memo, &hits0, NULL);
        if (rc == 0) rc = pb_prune(m, &po, &pr, err);
        pb_prune_memo_stats(memo, &hits1, NULL);
        if (rc == 0 && hits1 > hits0) snprintf(note, note_cap, " (scores reused)");
        /* the scores ranked by, for the file: from the memo when the pruning computed them.
         * Without them the run is still a run: the file has no /importance, the line says why */
        pb_err ierr = {0};
        if (rc == 0 && pb_run_record_importance(res, base, &po, &ierr) != 0) {
            size_t used = strlen(note);
            snprintf(note + used, note_cap - used, " (no importance: %s)", ierr.msg);
        }
    } else {
        pr.params_before = pr.params_after = pb_model_params(m);
        pr.params_before_no_embed = pr.params_after_no_embed = pb_model_params_no_embed(m);
    }
    if (rc == 0) rc = pb_result_params(res, pr.params_before, pr.params_after, pr.params_before_no_embed,
                                       pr.params_after_no_embed, err);
    if (rc == 0) rc = record_structure(res, m, &pr, err);
    if (rc == 0 && e->lora.enabled && run->method >= 0) rc = recover(e, run, dir, m, tok, res, err);
    if (rc == 0 && in->ops->device) {
        /* evaluation on the device: a copy of the pruned (and recovered) model, adapters merged */
        pb_model *dm = NULL;
        rc = pb_model_to_backend(m, in->ops, &dm, err);
        if (rc == 0) rc = evaluate(e, in, dm, tok, res, err);
        pb_model_free(dm);
    } else if (rc == 0) {
        rc = evaluate(e, in, m, tok, res, err);
    }
    pb_prune_result_free(&pr);
    pb_model_free(m);
    return rc;
}

/* The criterion a method uses when none is named (for tables: what was actually computed). */
static const char *criterion_of(const pb_prune_opts *p) {
    if (p->criterion) return p->criterion;
    if (p->metric) return p->metric;
    static const char *const def[][2] = {{"depth", "taylor"},   {"llm-pruner", "param_first"}, {"wanda-sp", "wanda"},
                                         {"flap", "wifv"},      {"magnitude", "l2"},           {"random", "random"}};
    for (size_t i = 0; p->method && i < sizeof def / sizeof def[0]; i++)
        if (!strcmp(p->method, def[i][0])) return def[i][1];
    return "";
}

static void identity(const pb_exp *e, const pb_exp_run *r, pb_result_id *id) {
    const pb_prune_opts *p = &r->prune;
    static const char *const gran[] = {"block", "attn", "mlp", "head", "channel"};
    bool depth = p->method && !strcmp(p->method, "depth");
    *id = (pb_result_id){.run_id = r->run_id, .experiment = e->name, .label = r->label, .config_yaml = r->config_yaml,
                         .model = e->models[r->model].name,
                         .method = r->method < 0 ? "dense" : e->methods[r->method].name,
                         .criterion = r->method < 0 ? "" : criterion_of(p),
                         /* width methods remove heads and channels together */
                         .granularity = r->method < 0 ? "" : !depth ? "width" : p->module_joint ? "module"
                                                                                     : gran[p->granularity],
                         .ratio = r->method < 0 ? 0.0 : r->ratio, .native = r->native,
                         .num_blocks = r->num_blocks, .seed = (int64_t)r->seed};
}

int pb_exp_execute(const pb_exp *e, const pb_run_opts *o, pb_run_summary *s, pb_err *err) {
    memset(s, 0, sizeof *s);
    char *dir = pb_exp_dir(e, o);
    PB_CHECK_ALLOC(dir, err);
    bool created;
    if (pb_mkdir_p(dir, &created, err) != 0) {
        free(dir);
        return -1;
    }
    pb_remove_stale_tmp(dir);
    /* the papers' numbers for `compare`, beside the index (and gone when the file has none) */
    char *pub = pb_path_join(dir, "published.yaml");
    if (!pub) {
        free(dir);
        return pb_err_set(err, "out of memory");
    }
    int prc = e->published_yaml ? pb_file_write_atomic(pub, e->published_yaml, strlen(e->published_yaml), err)
                                : (unlink(pub), 0);
    free(pub);
    if (prc != 0) {
        free(dir);
        return -1;
    }
    FILE *log = o->log ? o->log : stderr;
    int todo = 0;
    for (int i = 0; i < e->n_runs; i++) {
        if (!selected(e, o, i)) continue;
        s->selected++;
        if (pb_result_exists(dir, e->runs[i].run_id)) s->skipped++;
        else todo++;
    }
    inputs in;
    int rc = todo ? load_inputs(e, o, &in, err) : (memset(&in, 0, sizeof in), 0);
    double t0 = pb_time_now();
    int finished = 0;
    for (int mi = 0; rc == 0 && mi < e->n_models; mi++) {
        pb_model *base = NULL;
        pb_tokenizer *tok = NULL;
        /* scores of this base model, shared by its runs (keys tell criteria and calibration
         * windows apart); freed with the model */
        pb_prune_memo *memo = NULL;
        pb_err lerr = {0};
        bool loaded = false, tried = false;
        in.have_calib = false;
        for (int i = 0; rc == 0 && i < e->n_runs; i++) {
            const pb_exp_run *r = &e->runs[i];
            if (r->model != mi || !selected(e, o, i) || pb_result_exists(dir, r->run_id)) continue;
            if (!tried) {
                tried = true;
                pb_load_opts lo = {.tokenizer_path = e->models[mi].tokenizer};
                loaded = pb_model_load(e->models[mi].path, &lo, &base, &tok, &lerr) == 0;
                if (loaded && !tok) {
                    pb_err_set(&lerr, "%s: model carries no tokenizer; give tokenizer: in the experiment file",
                               e->models[mi].path);
                    loaded = false;
                }
                if (loaded && !(memo = pb_prune_memo_new())) {
                    pb_err_set(&lerr, "%s: out of memory for the score memo", e->models[mi].path);
                    loaded = false;
                }
            }
            pb_result_id id;
            identity(e, r, &id);
            pb_result *res;
            if (pb_result_begin(&res, dir, &id, err) != 0) {
                rc = -1;   /* the results folder cannot be written: nothing else can be recorded */
                break;
            }
            pb_err rerr = {0};
            char note[sizeof rerr.msg + 64] = "";
            double ts = pb_time_now();
            int ok = loaded ? run_one(e, r, dir, base, tok, &in, o, memo, res, note, sizeof note, &rerr)
                            : (rerr = lerr, -1);
            if (pb_result_end(res, ok == 0 ? NULL : rerr.msg, err) != 0) {
                rc = -1;
                break;
            }
            if (ok == 0) s->done++;
            else s->failed++;
            finished++;
            double el = pb_time_now() - t0, eta = el / finished * (todo - finished);
            fprintf(log, "[%d/%d] %s: %s%s (%.1f s; ETA %.0f s)%s%s\n", finished, todo, r->label,
                    ok == 0 ? "done" : "FAILED", ok == 0 ? note : "", pb_time_now() - ts, eta, ok == 0 ? "" : ": ",
                    ok == 0 ? "" : rerr.msg);
            fflush(log);
        }
        pb_prune_memo_free(memo);
        pb_tok_free(tok);
        pb_model_free(base);
    }
    if (todo) free_inputs(e, &in);
    if (rc == 0) rc = pb_results_index(dir, &s->indexed, err);
    free(dir);
    return rc;
}
