/* spec_sections.c — the evaluation, recovery and published sections of an experiment file,
 * with the parts of the canonical run configuration they decide. */
#include "spec_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int oom(sp_ctx *c) { return pb_err_set(c->err, "%s: out of memory", c->file); }

/* A list of distinct dataset names (or files) into out (arena), written as a flow list to y;
 * v NULL: the defaults. */
static int read_sets(sp_ctx *c, const sp_node *v, const char *key, const char *kind, bool files,
                     const char *const *defaults, int n_defaults, char ***out, int *n, sp_buf *y) {
    sp_node *const *it = NULL;
    int k = n_defaults;
    if (v) PB_TRY(sp_items(c, v, key, &it, &k));
    *out = pb_arena_alloc_n(&c->e->arena, (size_t)k, sizeof(char *));
    if (!*out) return oom(c);
    sp_printf(y, "    %s: [", key);
    for (int i = 0; i < k; i++) {
        bool file;
        const char *written = it ? it[i]->s : defaults[i];
        if (it) {
            PB_TRY(sp_dataset(c, it[i], key, kind, files, (const char **)&(*out)[i], &file));
            for (int j = 0; j < i; j++)
                if (!strcmp(it[j]->s, written)) return sp_fail(c, it[i], "'%s' is listed twice in '%s'", written, key);
        } else {
            (*out)[i] = (char *)defaults[i];
        }
        sp_puts(y, i ? ", " : "");
        sp_put_str(y, written);
    }
    sp_puts(y, "]\n");
    *n = k;
    return 0;
}

int sp_read_eval(sp_ctx *c, const sp_node *x, sp_buf *y) {
    static const char *const keys[] = {"ppl", "zeroshot", "speed", "device", "dtype", NULL};
    static const char *const devices[] = {"cpu", "cuda"}, *const dtypes[] = {"f32", "f16", "bf16"};
    static const char *const kppl[] = {"datasets", "seq_len", "max_windows", "bos_per_window", NULL};
    static const char *const kzs[] = {"tasks", "limit", NULL};
    static const char *const ksp[] = {"batch", "prompt_len", "gen_len", "repeats", NULL};
    static const char *const ppl_default[] = {"wikitext2", "ptb"};
    static const char *const seven[] = {"boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge",
                                        "openbookqa"};
    pb_exp_eval *ev = &c->e->eval;
    const sp_node *s, *v;
    ev->ppl_seq_len = 128;
    ev->speed_prompt_len = ev->speed_gen_len = 128;
    ev->speed_repeats = 3;
    sp_puts(y, "evaluation:\n");
    PB_TRY(sp_section(c, x, "evaluation", keys));
    /* where the pruned model is evaluated: written into the resolved config (and so into
     * the run_id) only when it is not the CPU, so that CPU experiments keep their ids */
    char sug[96];
    if ((v = sp_get(x, "device"))) {
        PB_TRY(sp_text(c, v, "device", &ev->device));
        if (strcmp(ev->device, "cpu") != 0 && strcmp(ev->device, "cuda") != 0)
            return sp_fail(c, v, "unknown device '%s' (cpu, cuda)%s", ev->device,
                           sp_did_you_mean(ev->device, devices, 2, sug, sizeof sug));
    }
    if ((v = sp_get(x, "dtype"))) {
        PB_TRY(sp_text(c, v, "dtype", &ev->dtype));
        if (strcmp(ev->dtype, "f32") && strcmp(ev->dtype, "f16") && strcmp(ev->dtype, "bf16"))
            return sp_fail(c, v, "unknown dtype '%s' (f32, f16, bf16)%s", ev->dtype,
                           sp_did_you_mean(ev->dtype, dtypes, 3, sug, sizeof sug));
        if ((!ev->device || !strcmp(ev->device, "cpu")) && strcmp(ev->dtype, "f32") != 0)
            return sp_fail(c, v, "dtype %s needs device: cuda (the CPU evaluates in f32)", ev->dtype);
    }
    if (ev->device && !strcmp(ev->device, "cuda")) {
        if (!ev->dtype) ev->dtype = "bf16";
        sp_kv_str(y, 2, "device", ev->device);
        sp_kv_str(y, 2, "dtype", ev->dtype);
    }
    /* a section given (even empty) runs with its defaults; an absent one does not run */
    if ((s = sp_get(x, "ppl"))) {
        PB_TRY(sp_section(c, s, "ppl", kppl));
        sp_puts(y, "  ppl:\n");
        PB_TRY(read_sets(c, sp_get(s, "datasets"), "datasets", "text", true, ppl_default, 2, &ev->ppl_datasets,
                         &ev->n_ppl, y));
        PB_TRY(sp_get_int(c, s, "seq_len", 2, 1 << 20, &ev->ppl_seq_len));
        if ((v = sp_get(s, "max_windows"))) PB_TRY(sp_int(c, v, "max_windows", 0, INT64_MAX, &ev->ppl_max_windows));
        if ((v = sp_get(s, "bos_per_window"))) PB_TRY(sp_bool(c, v, "bos_per_window", &ev->ppl_bos_per_window));
        sp_kv_int(y, 4, "seq_len", ev->ppl_seq_len);
        sp_kv_int(y, 4, "max_windows", ev->ppl_max_windows);
        sp_kv_bool(y, 4, "bos_per_window", ev->ppl_bos_per_window);
    } else {
        sp_puts(y, "  ppl: null\n");
    }
    if ((s = sp_get(x, "zeroshot"))) {
        PB_TRY(sp_section(c, s, "zeroshot", kzs));
        sp_puts(y, "  zeroshot:\n");
        PB_TRY(read_sets(c, sp_get(s, "tasks"), "tasks", "task", false, seven, 7, &ev->tasks, &ev->n_tasks, y));
        if ((v = sp_get(s, "limit"))) PB_TRY(sp_int(c, v, "limit", 0, INT64_MAX, &ev->zs_limit));
        sp_kv_int(y, 4, "limit", ev->zs_limit);
    } else {
        sp_puts(y, "  zeroshot: null\n");
    }
    if ((s = sp_get(x, "speed"))) {
        PB_TRY(sp_section(c, s, "speed", ksp));
        sp_node *const *it = NULL;
        int n = 1;
        if ((v = sp_get(s, "batch"))) PB_TRY(sp_items(c, v, "batch", &it, &n));
        ev->speed_batch = pb_arena_alloc_n(&c->e->arena, (size_t)n, sizeof(int));
        if (!ev->speed_batch) return oom(c);
        sp_puts(y, "  speed:\n    batch: [");
        for (int b = 0; b < n; b++) {
            int64_t i = 1;
            if (it) PB_TRY(sp_int(c, it[b], "batch", 1, 65536, &i));
            for (int j = 0; j < b; j++)
                if (ev->speed_batch[j] == (int)i) return sp_fail(c, it[b], "batch %d is listed twice", (int)i);
            ev->speed_batch[b] = (int)i;
            sp_printf(y, "%s%d", b ? ", " : "", (int)i);
        }
        ev->n_speed = n;
        PB_TRY(sp_get_int(c, s, "prompt_len", 1, 1 << 20, &ev->speed_prompt_len));
        PB_TRY(sp_get_int(c, s, "gen_len", 1, 1 << 20, &ev->speed_gen_len));
        PB_TRY(sp_get_int(c, s, "repeats", 1, 1000000, &ev->speed_repeats));
        sp_puts(y, "]\n");
        sp_kv_int(y, 4, "prompt_len", ev->speed_prompt_len);
        sp_kv_int(y, 4, "gen_len", ev->speed_gen_len);
        sp_kv_int(y, 4, "repeats", ev->speed_repeats);
    } else {
        sp_puts(y, "  speed: null\n");
    }
    return 0;
}

int sp_read_recovery(sp_ctx *c, const sp_node *x, sp_buf *y) {
    static const char *const keys[] = {"lora", NULL};
    static const char *const kl[] = {"data", "format", "rank", "alpha", "dropout", "lr", "epochs", "max_steps",
                                     "batch", "micro_batch", "cutoff", "val_size", NULL};
    pb_exp_lora *l = &c->e->lora;
    const sp_node *s, *v;
    *l = (pb_exp_lora){false, NULL, "alpaca", 8, 2, 64, 4, 256, 0, 0, 16.0, 0.05, 1e-4};
    if (!x || sp_is_null(x)) {
        sp_puts(y, "recovery: null\n");
        return 0;
    }
    PB_TRY(sp_section(c, x, "recovery", keys));
    if (!(s = sp_get(x, "lora"))) return sp_fail(c, x, "'recovery' has no 'lora' (LoRA is the recovery there is)");
    if (sp_is_null(s)) return sp_fail(c, s, "'lora' needs at least 'data' (the fine-tuning file)");
    PB_TRY(sp_section(c, s, "lora", kl));
    if (!(v = sp_get(s, "data"))) return sp_fail(c, s, "'lora' has no 'data' (the fine-tuning file)");
    PB_TRY(sp_text(c, v, "data", &c->lora_data_src));
    if (!(l->data = (char *)sp_resolve(c, v->s))) return oom(c);
    if ((v = sp_get(s, "format"))) {
        char d[80];
        if (v->kind != SP_SCALAR || (strcmp(v->s, "alpaca") && strcmp(v->s, "text")))
            return sp_fail(c, v, "unknown format %s (alpaca, text)", sp_describe(v, d, sizeof d));
        l->format = !strcmp(v->s, "text") ? "text" : "alpaca";
    }
    PB_TRY(sp_get_int(c, s, "rank", 1, 65536, &l->rank));
    PB_TRY(sp_get_int(c, s, "epochs", 1, 1000000, &l->epochs));
    PB_TRY(sp_get_int(c, s, "batch", 1, 1000000, &l->batch));
    PB_TRY(sp_get_int(c, s, "micro_batch", 1, 1000000, &l->micro_batch));
    PB_TRY(sp_get_int(c, s, "cutoff", 2, 1 << 20, &l->cutoff));
    PB_TRY(sp_get_int(c, s, "val_size", 0, 1000000000, &l->val_size));
    if ((v = sp_get(s, "max_steps"))) PB_TRY(sp_int(c, v, "max_steps", 0, INT64_MAX, &l->max_steps));
    if ((v = sp_get(s, "alpha"))) PB_TRY(sp_num(c, v, "alpha", 0.0, INFINITY, true, false, &l->alpha));
    if ((v = sp_get(s, "dropout"))) PB_TRY(sp_num(c, v, "dropout", 0.0, 1.0, false, true, &l->dropout));
    if ((v = sp_get(s, "lr"))) PB_TRY(sp_num(c, v, "lr", 0.0, INFINITY, true, false, &l->lr));
    if (l->batch % l->micro_batch) {
        const sp_node *at = sp_get(s, "micro_batch") ? sp_get(s, "micro_batch") : s;
        return sp_fail(c, at, "'batch' %d is not a multiple of 'micro_batch' %d", l->batch, l->micro_batch);
    }
    l->enabled = true;
    sp_puts(y, "recovery:\n  lora:\n");
    sp_kv_str(y, 4, "data", c->lora_data_src);
    sp_kv_str(y, 4, "format", l->format);
    sp_kv_int(y, 4, "rank", l->rank);
    sp_kv_num(y, 4, "alpha", l->alpha);
    sp_kv_num(y, 4, "dropout", l->dropout);
    sp_kv_num(y, 4, "lr", l->lr);
    sp_kv_int(y, 4, "epochs", l->epochs);
    sp_kv_int(y, 4, "max_steps", l->max_steps);
    sp_kv_int(y, 4, "batch", l->batch);
    sp_kv_int(y, 4, "micro_batch", l->micro_batch);
    sp_kv_int(y, 4, "cutoff", l->cutoff);
    sp_kv_int(y, 4, "val_size", l->val_size);
    return 0;
}

/* A published value as written: a plain scalar stays plain (numbers stay numbers) when its
 * characters are safe after "key: "; anything else keeps its text and becomes a string. */
static void put_published(sp_buf *b, const sp_node *v) {
    bool safe = v->plain && v->len > 0 && v->s[0] != '-';
    for (const char *p = v->s; safe && *p; p++)
        safe = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("_./+-", *p);
    if (sp_is_null(v)) sp_puts(b, "null");
    else if (safe || (v->plain && v->s[0] == '-' && v->len > 1 && v->s[1] >= '0' && v->s[1] <= '9' &&
                      strspn(v->s + 1, "0123456789.eE+-") == v->len - 1))
        sp_puts(b, v->s);
    else sp_put_str(b, v->s);
}

int sp_read_published(sp_ctx *c, const sp_node *x) {
    if (!x || sp_is_null(x)) return 0;
    PB_TRY(sp_want_seq(c, x, "'published'", true));
    sp_buf b = {0};
    for (int i = 0; i < x->n; i++) {
        const sp_node *row = x->kid[i];
        char d[80];
        int rc = sp_want_map(c, row, "each row of 'published'");
        if (!rc && row->n == 0) rc = sp_fail(c, row, "an empty row in 'published'");
        for (int k = 0; !rc && k < row->n; k++) {
            const sp_node *v = row->kid[2 * k + 1];
            if (v->kind != SP_SCALAR) {
                rc = sp_fail(c, v, "published values must be single numbers or text, not %s",
                             sp_describe(v, d, sizeof d));
                break;
            }
            sp_puts(&b, k ? "  " : "- ");
            put_published(&b, row->kid[2 * k]);
            sp_puts(&b, ": ");
            put_published(&b, v);
            sp_puts(&b, "\n");
        }
        if (rc) {
            free(b.p);
            return -1;
        }
    }
    return (c->e->published_yaml = sp_buf_take(c, &b, &c->e->arena)) ? 0 : -1;
}

